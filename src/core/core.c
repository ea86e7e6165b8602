/*
 * core.c - errors, logging, allocation with fault injection, arenas,
 * half-float conversion, atomic file writes, a tiny PRNG.
 */
#define _GNU_SOURCE /* pthread_getattr_default_np */
#include "core/core.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <omp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#ifndef LMX_VERSION_STRING
#define LMX_VERSION_STRING "0.0.0"
#endif

const char *lmx_version(void) { return LMX_VERSION_STRING; }

/* ---- errors ---------------------------------------------------------- */

static _Thread_local char g_errmsg[2048];

const char *lmx_status_name(lmx_status st) {
    static const char *names[LMX_STATUS_COUNT] = {
        "ok", "bad argument", "i/o error", "bad file format", "shape mismatch",
        "unsupported", "out of memory", "backend error", "internal error",
        "non-finite numbers", "cancelled",
    };
    if ((int)st < 0 || st >= LMX_STATUS_COUNT) return "unknown status";
    return names[st];
}

const char *lmx_errmsg(void) { return g_errmsg; }

void lmx_err_clear(void) { g_errmsg[0] = 0; }

/* Store the message s[n]: whole when it fits, else its head and its tail
 * around " ... " (the tail usually says what went wrong), cut between
 * UTF-8 characters. */
static void set_errmsg(const char *s, size_t n) {
    static const char mid[] = " ... ";
    if (n < sizeof g_errmsg) {
        memcpy(g_errmsg, s, n);
        g_errmsg[n] = 0;
        return;
    }
    size_t keep = (sizeof g_errmsg - sizeof mid) / 2;
    size_t head = keep, tail = n - keep;
    while (head > 0 && ((unsigned char)s[head] & 0xC0) == 0x80) head--;
    while (tail < n && ((unsigned char)s[tail] & 0xC0) == 0x80) tail++;
    memcpy(g_errmsg, s, head);
    memcpy(g_errmsg + head, mid, sizeof mid - 1);
    memcpy(g_errmsg + head + sizeof mid - 1, s + tail, n - tail);
    g_errmsg[head + sizeof mid - 1 + n - tail] = 0;
}

lmx_status lmx_err(lmx_status st, const char *fmt, ...) {
    va_list ap, aq;
    va_start(ap, fmt);
    va_copy(aq, ap);
    int w = vsnprintf(g_errmsg, sizeof g_errmsg, fmt, ap);
    va_end(ap);
    if (w > 0 && (size_t)w >= sizeof g_errmsg) {
        /* Too long (a long path): format it whole, then keep both ends. Plain
         * malloc, outside the fault-injection count; on failure the head stays. */
        char *t = malloc((size_t)w + 1);
        if (t) {
            vsnprintf(t, (size_t)w + 1, fmt, aq);
            set_errmsg(t, (size_t)w);
            free(t);
        }
    }
    va_end(aq);
    return st;
}

void lmx_err_prefix(const char *fmt, ...) {
    char buf[512 + sizeof g_errmsg];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, 512, fmt, ap);
    va_end(ap);
    size_t k = n < 0 ? 0 : LMX_MIN((size_t)n, 511);
    size_t m = strlen(g_errmsg);
    memcpy(buf + k, g_errmsg, m);
    set_errmsg(buf, k + m);
}

_Noreturn void lmx_assert_fail(const char *expr, const char *file, int line) {
    fprintf(stderr, "loramix: internal error: assertion '%s' failed at %s:%d\n", expr, file, line);
    abort();
}

/* ---- logging --------------------------------------------------------- */

static lmx_log_level g_log_level = LMX_LOG_WARN;
static lmx_log_fn g_log_fn = NULL;
static void *g_log_user = NULL;

void lmx_log_set(lmx_log_level level, lmx_log_fn cb, void *user) {
    g_log_level = level;
    g_log_fn = cb;
    g_log_user = user;
}

int lmx_log_enabled(lmx_log_level level) { return level <= g_log_level; }

void lmx_log(lmx_log_level level, const char *fmt, ...) {
    if (level > g_log_level) return;
    char msg[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (g_log_fn) {
        g_log_fn(level, msg, g_log_user);
        return;
    }
    static const char *pre[] = {"error: ", "warning: ", "", "debug: "};
    fprintf(stderr, "loramix: %s%s\n", pre[level], msg);
}

/* ---- threads --------------------------------------------------------- */

void lmx_set_threads(int n_threads) {
    if (n_threads <= 0) n_threads = omp_get_num_procs();
    omp_set_num_threads(n_threads);
}

int lmx_get_threads(void) { return omp_get_max_threads(); }

lmx_status lmx_headroom(size_t bytes, const char *what) {
    void *p = mmap(NULL, bytes ? bytes : 1, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED)
        return lmx_err(LMX_ERR_NOMEM, "%s: out of memory (%zu MiB more address space not available)",
                       what, (bytes + ((size_t)1 << 20) - 1) >> 20);
    munmap(p, bytes ? bytes : 1);
    return LMX_OK;
}

/* The stack size libgomp gives its threads: OMP_STACKSIZE / GOMP_STACKSIZE
 * (a number with an optional B, K, M or G suffix, K by default), else the
 * process's default thread stack size. */
static size_t omp_stack_bytes(void) {
    const char *names[] = {"OMP_STACKSIZE", "GOMP_STACKSIZE"};
    for (int i = 0; i < 2; i++) {
        const char *v = getenv(names[i]);
        char *end;
        unsigned long long n;
        if (!v || !*v) continue;
        n = strtoull(v, &end, 10);
        while (*end == ' ') end++;
        switch (*end) {
        case 'b': case 'B': break;
        case 'm': case 'M': n <<= 20; break;
        case 'g': case 'G': n <<= 30; break;
        default: n <<= 10; break;
        }
        if (n) return (size_t)n;
    }
    size_t sz = 0;
    pthread_attr_t a;
    if (pthread_getattr_default_np(&a) == 0) {
        pthread_attr_getstacksize(&a, &sz);
        pthread_attr_destroy(&a);
    }
    return sz ? sz : (size_t)8 << 20;
}

static int g_threads_started = 1; /* the largest pool known to exist */

lmx_status lmx_threads_start(void) {
    int n = omp_get_max_threads(), started;
#pragma omp atomic read
    started = g_threads_started;
    if (n <= started) return LMX_OK;
    /* Stacks plus a little for each thread's own bookkeeping. */
    size_t need = (size_t)(n - started) * (omp_stack_bytes() + ((size_t)1 << 20));
    char what[64];
    snprintf(what, sizeof what, "starting %d threads", n);
    lmx_status rc = lmx_headroom(need, what);
    if (rc != LMX_OK) return rc;
    int got = 0;
#pragma omp parallel
    {
#pragma omp atomic
        got++;
    }
#pragma omp atomic write
    g_threads_started = got > started ? got : started;
    return LMX_OK;
}

/* ---- memory ---------------------------------------------------------- */

static long g_fail_at = 0;  /* 0: never fail */
static long g_alloc_count = 0;

void lmx_fault_set_fail_at(long n) {
    g_fail_at = n;
    g_alloc_count = 0;
}

long lmx_fault_alloc_count(void) { return g_alloc_count; }

static int should_fail(void) {
    long c;
#pragma omp atomic capture
    c = ++g_alloc_count;
    return g_fail_at > 0 && c == g_fail_at;
}

void *lmx_malloc(size_t n) {
    if (should_fail()) return NULL;
    return malloc(n ? n : 1);
}

void *lmx_calloc(size_t count, size_t size) {
    if (should_fail()) return NULL;
    return calloc(count ? count : 1, size ? size : 1);
}

void *lmx_realloc(void *p, size_t n) {
    if (should_fail()) return NULL;
    return realloc(p, n ? n : 1);
}

void *lmx_alloc_aligned(size_t n) {
    if (should_fail()) return NULL;
    void *p = NULL;
    size_t rounded = (n + 63) & ~(size_t)63;
    if (rounded < n) return NULL;
    if (posix_memalign(&p, 64, rounded ? rounded : 64) != 0) return NULL;
    return p;
}

void lmx_free(void *p) { free(p); }

char *lmx_strdup(const char *s) {
    if (!s) return NULL;
    size_t n = strlen(s) + 1;
    char *d = lmx_malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

/* ---- string builder -------------------------------------------------- */

/* Room for `extra` more bytes plus the NUL; sets the sticky flag on failure. */
static int sb_reserve(lmx_sb *sb, size_t extra) {
    if (sb->oom) return 0;
    if (extra >= SIZE_MAX / 2 - sb->len) {
        sb->oom = 1;
        return 0;
    }
    size_t need = sb->len + extra + 1;
    if (need <= sb->cap) return 1;
    size_t cap = sb->cap ? sb->cap : 64;
    while (cap < need) cap *= 2;
    char *s = lmx_realloc(sb->s, cap);
    if (!s) {
        sb->oom = 1;
        return 0;
    }
    sb->s = s;
    sb->cap = cap;
    return 1;
}

void lmx_sb_catn(lmx_sb *sb, const char *s, size_t n) {
    if (!sb_reserve(sb, n)) return;
    memcpy(sb->s + sb->len, s, n);
    sb->len += n;
    sb->s[sb->len] = 0;
}

void lmx_sb_cat(lmx_sb *sb, const char *s) { lmx_sb_catn(sb, s, strlen(s)); }

void lmx_sb_vprintf(lmx_sb *sb, const char *fmt, va_list ap) {
    if (sb->oom) return;
    va_list aq;
    va_copy(aq, ap);
    size_t room = sb->cap > sb->len ? sb->cap - sb->len : 0;
    int w = vsnprintf(room ? sb->s + sb->len : NULL, room, fmt, aq);
    va_end(aq);
    if (w < 0) { /* an encoding error: nothing appended */
        if (room) sb->s[sb->len] = 0;
        return;
    }
    if ((size_t)w >= room) {
        if (!sb_reserve(sb, (size_t)w)) {
            if (room) sb->s[sb->len] = 0;
            return;
        }
        va_copy(aq, ap);
        vsnprintf(sb->s + sb->len, sb->cap - sb->len, fmt, aq);
        va_end(aq);
    }
    sb->len += (size_t)w;
}

void lmx_sb_printf(lmx_sb *sb, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    lmx_sb_vprintf(sb, fmt, ap);
    va_end(ap);
}

char *lmx_sb_take(lmx_sb *sb) {
    char *s = NULL;
    if (!sb->oom) s = sb->s ? sb->s : lmx_strdup("");
    else lmx_free(sb->s);
    sb->s = NULL;
    sb->len = sb->cap = 0;
    sb->oom = 0;
    return s;
}

void lmx_sb_free(lmx_sb *sb) {
    lmx_free(sb->s);
    sb->s = NULL;
    sb->len = sb->cap = 0;
    sb->oom = 0;
}

/* ---- arena ----------------------------------------------------------- */

lmx_status lmx_arena_init(lmx_arena *a, size_t size) {
    memset(a, 0, sizeof *a);
    if (size == 0) return LMX_OK;
    a->base = lmx_alloc_aligned(size);
    if (!a->base) return lmx_err(LMX_ERR_NOMEM, "arena: cannot allocate %zu bytes", size);
    a->size = size;
    return LMX_OK;
}

void lmx_arena_free(lmx_arena *a) {
    lmx_free(a->base);
    memset(a, 0, sizeof *a);
}

lmx_status lmx_arena_reserve(lmx_arena *a, size_t bytes) {
    if (a->size >= bytes) {
        a->used = 0;
        return LMX_OK;
    }
    size_t peak = a->peak;
    lmx_arena_free(a);
    lmx_status st = lmx_arena_init(a, bytes);
    a->peak = peak;
    return st;
}

void *lmx_arena_alloc(lmx_arena *a, size_t n) {
    size_t start = (a->used + 63) & ~(size_t)63;
    size_t end = start + ((n + 63) & ~(size_t)63);
    if (end < start || end > a->size) {
        lmx_err(LMX_ERR_NOMEM, "arena: %zu bytes requested, %zu of %zu in use", n, a->used, a->size);
        return NULL;
    }
    a->used = end;
    if (end > a->peak) a->peak = end;
    return a->base + start;
}

/* ---- half precision -------------------------------------------------- */

float lmx_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t man = h & 0x3ff;
    uint32_t bits;
    if (exp == 0) {
        if (man == 0) {
            bits = sign;
        } else { /* subnormal: normalise */
            int e = -1;
            do {
                e++;
                man <<= 1;
            } while (!(man & 0x400));
            bits = sign | ((uint32_t)(127 - 15 - e) << 23) | ((man & 0x3ff) << 13);
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | (man << 13);
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t lmx_f32_to_f16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000;
    uint32_t absx = x & 0x7fffffffu;
    if (absx >= 0x7f800000u) /* inf or nan */
        return (uint16_t)(sign | 0x7c00 | (absx > 0x7f800000u ? 0x200 : 0));
    if (absx >= 0x477ff000u) return (uint16_t)(sign | 0x7c00); /* overflow -> inf */
    if (absx < 0x38800000u) { /* subnormal or zero in f16 */
        if (absx < 0x33000000u) return (uint16_t)sign;
        uint32_t man = (absx & 0x7fffff) | 0x800000;
        int shift = 113 - (int)(absx >> 23) + 13;
        uint32_t r = man >> shift;
        uint32_t rem = man & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (r & 1))) r++;
        return (uint16_t)(sign | r);
    }
    uint32_t r = ((absx >> 13) - (112u << 10));
    uint32_t rem = absx & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (r & 1))) r++;
    return (uint16_t)(sign | r);
}

float lmx_bf16_to_f32(uint16_t h) {
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t lmx_f32_to_bf16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40); /* quiet nan */
    uint32_t lsb = (x >> 16) & 1;
    x += 0x7fff + lsb;
    return (uint16_t)(x >> 16);
}

void lmx_f16_to_f32_n(const uint16_t *src, float *dst, size_t n) {
#pragma omp parallel for if (n > 65536) schedule(static)
    for (size_t i = 0; i < n; i++) dst[i] = lmx_f16_to_f32(src[i]);
}

void lmx_bf16_to_f32_n(const uint16_t *src, float *dst, size_t n) {
#pragma omp parallel for if (n > 65536) schedule(static)
    for (size_t i = 0; i < n; i++) dst[i] = lmx_bf16_to_f32(src[i]);
}

/* ---- time and files -------------------------------------------------- */

double lmx_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

lmx_status lmx_write_file_atomic(const char *path, const void *data, size_t n) {
    size_t plen = strlen(path);
    char *tmp = lmx_malloc(plen + 32);
    if (!tmp) return lmx_err(LMX_ERR_NOMEM, "%s: out of memory", path);
    snprintf(tmp, plen + 32, "%s.tmp.%ld", path, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        lmx_status st = lmx_err(LMX_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
        lmx_free(tmp);
        return st;
    }
    const uint8_t *p = data;
    size_t left = n;
    while (left > 0) {
        ssize_t w = write(fd, p, left);
        if (w < 0) {
            if (errno == EINTR) continue;
            lmx_status st = lmx_err(LMX_ERR_IO, "%s: write failed: %s", path, strerror(errno));
            close(fd);
            unlink(tmp);
            lmx_free(tmp);
            return st;
        }
        p += w;
        left -= (size_t)w;
    }
    if (fsync(fd) != 0 || close(fd) != 0) {
        lmx_status st = lmx_err(LMX_ERR_IO, "%s: cannot flush: %s", path, strerror(errno));
        unlink(tmp);
        lmx_free(tmp);
        return st;
    }
    if (rename(tmp, path) != 0) {
        lmx_status st = lmx_err(LMX_ERR_IO, "%s: cannot rename into place: %s", path, strerror(errno));
        unlink(tmp);
        lmx_free(tmp);
        return st;
    }
    lmx_free(tmp);
    return LMX_OK;
}

lmx_status lmx_read_file(const char *path, char **out, size_t *n_out, size_t max_size) {
    *out = NULL;
    if (n_out) *n_out = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return lmx_err(LMX_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        return lmx_err(LMX_ERR_IO, "%s: not a regular file", path);
    }
    if ((uint64_t)st.st_size > max_size) {
        fclose(f);
        return lmx_err(LMX_ERR_FORMAT, "%s: file is %lld bytes, more than the %zu allowed", path,
                       (long long)st.st_size, max_size);
    }
    size_t n = (size_t)st.st_size;
    char *buf = lmx_malloc(n + 1);
    if (!buf) {
        fclose(f);
        return lmx_err(LMX_ERR_NOMEM, "%s: out of memory", path);
    }
    if (fread(buf, 1, n, f) != n) {
        fclose(f);
        lmx_free(buf);
        return lmx_err(LMX_ERR_IO, "%s: short read", path);
    }
    fclose(f);
    buf[n] = 0;
    *out = buf;
    if (n_out) *n_out = n;
    return LMX_OK;
}

/* ---- prng (splitmix64) ----------------------------------------------- */

uint64_t lmx_prng_next(lmx_prng *r) {
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

float lmx_prng_uniform(lmx_prng *r) { return (float)(lmx_prng_next(r) >> 40) * (1.0f / 16777216.0f); }

float lmx_prng_normal(lmx_prng *r) {
    float u1 = 1.0f - lmx_prng_uniform(r), u2 = lmx_prng_uniform(r);
    return sqrtf(-2.0f * logf(u1)) * cosf(6.2831853f * u2);
}
