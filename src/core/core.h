/*
 * core.h - the ground floor: errors, logging, memory, arenas, half floats,
 * checked arithmetic and timing. Knows nothing of diffusion.
 *
 * Errors: a function that fails calls lmx_err(status, fmt, ...) which stores
 * a thread-local message and returns the status, so the usual idiom is
 *
 *     if (n < 0) return lmx_err(LMX_ERR_ARG, "--steps: expected >= 1, got %d", n);
 *
 * A caller that adds context uses lmx_err_prefix("model.safetensors: ").
 * Asserts (LMX_ASSERT) are for loramix's own bugs only, never for input.
 */
#ifndef LMX_CORE_H
#define LMX_CORE_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "loramix.h"

#if defined(__GNUC__)
#define LMX_PRINTF(a, b) __attribute__((format(printf, a, b)))
#define LMX_UNLIKELY(x) __builtin_expect(!!(x), 0)
#else
#define LMX_PRINTF(a, b)
#define LMX_UNLIKELY(x) (x)
#endif

#define LMX_MIN(a, b) ((a) < (b) ? (a) : (b))
#define LMX_MAX(a, b) ((a) > (b) ? (a) : (b))
#define LMX_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* ---- errors ---- */

/* Set this thread's error message and return `st`. */
lmx_status lmx_err(lmx_status st, const char *fmt, ...) LMX_PRINTF(2, 3);
/* Prepend text to the current message (e.g. the file name). Returns nothing. */
void lmx_err_prefix(const char *fmt, ...) LMX_PRINTF(1, 2);
void lmx_err_clear(void);

/* Our own bugs: always on, prints and aborts. Never used for input. */
#define LMX_ASSERT(x)                                                       \
    do {                                                                    \
        if (LMX_UNLIKELY(!(x))) lmx_assert_fail(#x, __FILE__, __LINE__);    \
    } while (0)
_Noreturn void lmx_assert_fail(const char *expr, const char *file, int line);

/* ---- logging ---- */

void lmx_log(lmx_log_level level, const char *fmt, ...) LMX_PRINTF(2, 3);
#define lmx_warn(...) lmx_log(LMX_LOG_WARN, __VA_ARGS__)
#define lmx_info(...) lmx_log(LMX_LOG_INFO, __VA_ARGS__)
#define lmx_debug(...) lmx_log(LMX_LOG_DEBUG, __VA_ARGS__)
int lmx_log_enabled(lmx_log_level level);

/* ---- memory ----
 * lmx_malloc/lmx_calloc/lmx_realloc return NULL on failure (never abort).
 * Tests can make the Nth allocation fail with lmx_fault_set_fail_at(n)
 * (n = 0 disables) to check every error path. lmx_alloc_aligned gives
 * 64-byte aligned memory released with lmx_free. */
void *lmx_malloc(size_t n);
void *lmx_calloc(size_t count, size_t size);
void *lmx_realloc(void *p, size_t n);
void *lmx_alloc_aligned(size_t n);
void lmx_free(void *p);
char *lmx_strdup(const char *s);
void lmx_fault_set_fail_at(long n);
long lmx_fault_alloc_count(void);

/* ---- string builder: text of any length on the heap ----
 *     lmx_sb sb = LMX_SB_INIT;
 *     lmx_sb_printf(&sb, "%s\n", prompt);
 *     lmx_sb_cat(&sb, ", VAE: ");
 *     char *s = lmx_sb_take(&sb);   // NULL (sb emptied) if any append ran out of memory
 * Appends never truncate and never fail loudly: a failed allocation sets the
 * sticky `oom` flag, later appends do nothing, and the caller checks once
 * at the end (lmx_sb_take returns NULL, or lmx_sb_failed). lmx_sb_str
 * gives the text so far ("" before the first append); lmx_sb_take hands
 * the buffer over (free with lmx_free) and leaves the builder empty. */
typedef struct lmx_sb {
    char *s;
    size_t len, cap;
    int oom;
} lmx_sb;
#define LMX_SB_INIT {NULL, 0, 0, 0}

void lmx_sb_printf(lmx_sb *sb, const char *fmt, ...) LMX_PRINTF(2, 3);
void lmx_sb_vprintf(lmx_sb *sb, const char *fmt, va_list ap);
void lmx_sb_cat(lmx_sb *sb, const char *s);
void lmx_sb_catn(lmx_sb *sb, const char *s, size_t n);
static inline const char *lmx_sb_str(const lmx_sb *sb) { return sb->s ? sb->s : ""; }
static inline size_t lmx_sb_len(const lmx_sb *sb) { return sb->len; }
static inline int lmx_sb_failed(const lmx_sb *sb) { return sb->oom; }
char *lmx_sb_take(lmx_sb *sb);
void lmx_sb_free(lmx_sb *sb);

/* ---- headroom: fail with a status where a library would crash ----
 * Some code we call cannot report a failed allocation: oneDNN 2.6's JIT
 * writes into a NULL code buffer (SIGSEGV), its C++ internals may throw
 * std::bad_alloc through the C API (abort), and libgomp exits the process
 * when it cannot create a thread. lmx_headroom maps `bytes` of address
 * space and unmaps it at once: LMX_ERR_NOMEM ("<what>: ...") when that
 * fails, so the caller stops before handing the library a shortfall.
 * lmx_threads_start makes sure the OpenMP pool of lmx_get_threads() threads
 * exists (their stacks checked with lmx_headroom first); call it before the
 * first parallel region of a long job. */
lmx_status lmx_headroom(size_t bytes, const char *what);
lmx_status lmx_threads_start(void);

/* ---- arena: bump allocator for activations, sized once ---- */

typedef struct lmx_arena {
    uint8_t *base;
    size_t size;
    size_t used;
    size_t peak;
} lmx_arena;

lmx_status lmx_arena_init(lmx_arena *a, size_t size);
void lmx_arena_free(lmx_arena *a);
/* Empty the arena and make it at least `bytes` large: reallocated only
 * when it must grow (its contents are lost either way). */
lmx_status lmx_arena_reserve(lmx_arena *a, size_t bytes);
/* 64-byte aligned; NULL (with an error set) when the arena is full. */
void *lmx_arena_alloc(lmx_arena *a, size_t n);
static inline size_t lmx_arena_mark(const lmx_arena *a) { return a->used; }
static inline void lmx_arena_reset(lmx_arena *a, size_t mark) { a->used = mark; }

/* ---- checked arithmetic (returns 0 on overflow) ---- */

static inline int lmx_mul_u64(uint64_t a, uint64_t b, uint64_t *out) {
    return !__builtin_mul_overflow(a, b, out);
}
static inline int lmx_add_u64(uint64_t a, uint64_t b, uint64_t *out) {
    return !__builtin_add_overflow(a, b, out);
}

/* ---- half precision ---- */

float lmx_f16_to_f32(uint16_t h);
uint16_t lmx_f32_to_f16(float f);      /* round to nearest even */
float lmx_bf16_to_f32(uint16_t h);
uint16_t lmx_f32_to_bf16(float f);     /* round to nearest even */
void lmx_f16_to_f32_n(const uint16_t *src, float *dst, size_t n);
void lmx_bf16_to_f32_n(const uint16_t *src, float *dst, size_t n);

/* ---- time and files ---- */

double lmx_now(void);                  /* monotonic seconds */
/* Write `n` bytes to `path` atomically: a temporary file in the same
 * directory, fsync, then rename. Nothing half-written on failure. */
lmx_status lmx_write_file_atomic(const char *path, const void *data, size_t n);
/* Read a whole (small) file; *out is NUL-terminated, free with lmx_free. */
lmx_status lmx_read_file(const char *path, char **out, size_t *n_out, size_t max_size);

/* ---- deterministic pseudo-random numbers for tests and benchmarks ---- */

typedef struct lmx_prng {
    uint64_t s;
} lmx_prng;
uint64_t lmx_prng_next(lmx_prng *r);
float lmx_prng_uniform(lmx_prng *r);  /* [0, 1) */
float lmx_prng_normal(lmx_prng *r);   /* N(0, 1) */

#endif /* LMX_CORE_H */
