/*
 * dnnl_util.h - internal glue between the ops and oneDNN 2.6 (C API).
 *
 * Not part of the ops contract: only the .c files of src/ops include it. It holds
 *   - the op_ctx layout: engine, stream, primitive cache, scratch buffers;
 *   - the primitive cache: entries keyed by a flat array of integers
 *     (op kind, shapes, strides, precision, beta, thread count, weight-layout
 *     hash) so each primitive is created (JIT-compiled) once per context;
 *   - op_prim: a primitive with its argument memory objects, created once
 *     and re-pointed at the caller's buffers on every call;
 *   - op_wpack: prepacked weights. The primary copy is reordered once at
 *     *_create into the layout oneDNN preferred for a reference shape. A call
 *     whose primitive wants another layout gets a "variant" reordered from
 *     the primary (kept next to it, counted in its bytes), never the primary
 *     reinterpreted: a layout mismatch cannot silently produce wrong numbers.
 *
 * Engines are shared: one process-wide CPU engine (oneDNN engines are
 * thread-safe); each op_ctx has its own stream and cache.
 */
#ifndef LMX_OPS_DNNL_UTIL_H
#define LMX_OPS_DNNL_UTIL_H

#include <pthread.h>

#include <oneapi/dnnl/dnnl.h>

#include "ops/ops.h"

/* ---- errors ---- */

/* LMX_ERR_BACKEND with "<what>: <call>: <dnnl status name>". */
lmx_status op_dnnl_err(dnnl_status_t st, const char *what, const char *call);

/* oneDNN 2.6 does not survive every failed allocation: its JIT writes
 * into a NULL code buffer (SIGSEGV) and C++ containers may throw
 * std::bad_alloc through the C API. So every call that can create a
 * primitive (pd and primitive creation, the first execution, where lazy
 * kernels are generated) first checks that OP_DNNL_HEADROOM bytes of address
 * space can still be mapped, and fails with LMX_ERR_NOMEM when not. JIT code
 * buffers are 256 KiB each and a primitive holds a few, so 16 MiB leaves a
 * wide margin. op_dnnl_room: 1 when there is room (sets no error). */
#define OP_DNNL_HEADROOM ((size_t)16 << 20)
int op_dnnl_room(void);

/* The process-wide CPU engine (created on first use; NULL + error on failure). */
dnnl_engine_t op_dnnl_engine(void);

/* ---- cache keys ---- */

enum { OP_KEY_LEN = 24 };
typedef struct op_key {
    int64_t v[OP_KEY_LEN]; /* zero-filled, then op-specific fields */
} op_key;

enum { OP_KIND_LINEAR = 1, OP_KIND_MATMUL, OP_KIND_CONV };

/* Stable hash of the parts of a memory descriptor that define its layout. */
uint64_t op_md_hash(const dnnl_memory_desc_t *md);
/* "f32 16a64b strides(1024,20480)" style text for logs. */
void op_md_str(char *buf, size_t n, const dnnl_memory_desc_t *md);

/* ---- primitives with their memories ---- */

enum { OP_PRIM_MAX_ARGS = 6 };
typedef struct op_prim {
    dnnl_primitive_t p; /* NULL when unused */
    int n;
    int arg[OP_PRIM_MAX_ARGS];           /* DNNL_ARG_* */
    dnnl_memory_t mem[OP_PRIM_MAX_ARGS]; /* created without a buffer */
    int ran;                             /* executed once (lazy kernels exist) */
} op_prim;

/* Create the primitive of `pd` and one memory object per arg (its md taken
 * from the pd). Does not take ownership of pd. */
lmx_status op_prim_make(op_prim *pr, const_dnnl_primitive_desc_t pd, const int *args, int n,
                        const char *what);
/* Point arg i at ptrs[i] and execute on ctx's stream (synchronously). */
lmx_status op_prim_run(op_ctx *ctx, op_prim *pr, void *const *ptrs, const char *what);
void op_prim_release(op_prim *pr);

/* A reorder primitive src_md -> dst_md (args FROM, TO, SCRATCHPAD). */
lmx_status op_reorder_make(op_prim *pr, const dnnl_memory_desc_t *src_md,
                           const dnnl_memory_desc_t *dst_md, size_t *scratch_bytes,
                           const char *what);

/* Attribute with a user-managed scratchpad, optional output scale (alpha !=
 * 1) and optional sum post-op (beta != 0). Destroy with
 * dnnl_primitive_attr_destroy. */
lmx_status op_attr_make(dnnl_primitive_attr_t *attr, float alpha, float beta, const char *what);

/* Implementation name of a pd ("brg:avx512_core", "ref:any", ...). */
const char *op_pd_impl(const_dnnl_primitive_desc_t pd);
size_t op_pd_scratch_bytes(const_dnnl_primitive_desc_t pd);

/* ---- cache entries ---- */

typedef struct op_entry {
    op_key key;
    op_prim main;
    op_prim pre_src;           /* reorder: caller's src -> temporary (layout/precision) */
    op_prim pre_dst;           /* reorder: caller's dst -> temporary (beta != 0)       */
    op_prim post_dst;          /* reorder: temporary dst -> caller's dst               */
    dnnl_memory_desc_t wei_md; /* the weights layout `main` expects            */
    size_t scratch_bytes;      /* user scratchpad, max over the primitives      */
    size_t src_bytes;          /* temporary for pre_src's output                */
    size_t dst_bytes;          /* temporary dst                                 */
    int mode;                  /* op-specific                                   */
    char impl[64];
} op_entry;

/* Fill a new entry from its primitive desc: the weights layout, the
 * implementation name, the scratchpad size, and the main primitive with the
 * standard arguments SRC, WEIGHTS, [BIAS], DST, SCRATCHPAD. */
lmx_status op_entry_init_main(op_entry *e, const_dnnl_primitive_desc_t pd, int has_bias,
                              const char *what);

op_entry *op_cache_find(op_ctx *ctx, const op_key *k);
/* Takes ownership of e (freed on failure). */
lmx_status op_cache_insert(op_ctx *ctx, op_entry *e);
void op_entry_free(op_entry *e);

/* ---- scratch buffers of a context ----
 * Slots are independent 64-byte aligned buffers that only grow (contents are
 * not kept across growth). OP_SCRATCH_USER0.. are free for other kernels. */
enum {
    OP_SCRATCH_DNNL = 0, /* oneDNN scratchpads */
    OP_SCRATCH_SRC,      /* converted/reordered source */
    OP_SCRATCH_DST,      /* temporary destination */
    OP_SCRATCH_USER0,
    OP_SCRATCH_N = OP_SCRATCH_USER0 + 4
};
void *op_ctx_scratch(op_ctx *ctx, int slot, size_t bytes);

struct op_ctx {
    dnnl_engine_t eng; /* the shared engine (not owned) */
    dnnl_stream_t stream;
    op_entry **tab; /* open addressing, linear probing; cap is a power of 2 */
    size_t cap, n;
    void *scratch[OP_SCRATCH_N];
    size_t scratch_cap[OP_SCRATCH_N];
    uint64_t hits, misses;
};

/* Number of cached primitives and the bytes held by scratch buffers. */
size_t op_ctx_n_prims(const op_ctx *ctx);

/* ---- prepacked weights ---- */

typedef struct op_wvar {
    dnnl_memory_desc_t md;
    void *buf;
    size_t bytes;
} op_wvar;

typedef struct op_wpack {
    dnnl_memory_desc_t md; /* primary layout */
    void *buf;
    size_t bytes;
    uint64_t hash;        /* op_md_hash(&md); read with op_wpack_hash */
    pthread_mutex_t lock; /* guards everything while !used, and var/n_var */
    int used;             /* the primary was handed to a primitive: frozen */
    op_wvar *var;
    int n_var;
    int lock_ok;
} op_wpack;

/* Reorder `user` (described by user_md) into a new buffer laid out as
 * packed_md. The caller's buffer is not kept. */
lmx_status op_wpack_init(op_wpack *wp, const dnnl_memory_desc_t *user_md, const void *user,
                         const dnnl_memory_desc_t *packed_md, const char *what);
void op_wpack_release(op_wpack *wp);
/* The weights laid out as md: the primary buffer when md is its layout.
 * Otherwise, while the primary was never handed out and both layouts are
 * plain/blocked, the primary is re-packed into md in place (a layer usually
 * sees one input size, so this keeps a single copy in the layout its
 * primitive wants); else a variant, created on first use by reordering the
 * primary and kept until op_wpack_release. */
lmx_status op_wpack_get(op_ctx *ctx, const op_wpack *wp, const dnnl_memory_desc_t *md,
                        const void **out, const char *what);
/* The current primary layout and its hash (a consistent snapshot). */
void op_wpack_layout(const op_wpack *wp, dnnl_memory_desc_t *md, uint64_t *hash);
uint64_t op_wpack_hash(const op_wpack *wp);
size_t op_wpack_bytes(const op_wpack *wp);

/* Current OpenMP thread count (a primitive is tuned for it at creation). */
int op_nthr(void);

/* Row copies for the strided and bf16 paths (oneDNN's reorders for row
 * strides are generic loops, 20x slower). dst rows are dense (n), src rows
 * have stride ld_src; bf16 rounds to nearest even (vcvtneps2bf16 when the
 * build has AVX512-BF16: denormals flush to zero there). Threaded. */
void op_copy_rows(float *dst, int64_t ld_dst, const float *src, int64_t ld_src, int64_t m,
                  int64_t n);
void op_cvt_rows_bf16(uint16_t *dst, const float *src, int64_t ld_src, int64_t m, int64_t n);

#endif /* LMX_OPS_DNNL_UTIL_H */
