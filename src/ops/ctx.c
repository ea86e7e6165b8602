/*
 * ctx.c - op_ctx (oneDNN engine, stream, primitive cache, scratch buffers)
 * and the shared oneDNN glue declared in dnnl_util.h: error mapping, cached
 * primitives with their memory objects, and prepacked weights with layout
 * variants.
 *
 * Mirrors the oneDNN 2.6 C API programming model (dnnl.h): a primitive
 * descriptor (pd) is created from an op descriptor, the primitive is
 * JIT-compiled from the pd, and executed with one memory object per argument.
 * Creating a primitive costs milliseconds, executing a small one a few
 * microseconds, so everything created here is cached and re-pointed at the
 * caller's buffers on each call (dnnl_memory_set_data_handle).
 *
 * Scratchpads are user-managed (dnnl_scratchpad_mode_user): one growing
 * buffer per context instead of one per primitive.
 */
#include "ops/dnnl_util.h"

#include <omp.h>
#include <string.h>
#include <sys/mman.h>

#if defined(__AVX512BF16__) && defined(__AVX512BW__) && defined(__AVX512VL__)
#include <immintrin.h>
#define HAVE_BF16_CVT 1
#endif

#include <oneapi/dnnl/dnnl_debug.h>

/* ---- errors and the shared engine ---- */

lmx_status op_dnnl_err(dnnl_status_t st, const char *what, const char *call) {
    if (st == dnnl_out_of_memory)
        return lmx_err(LMX_ERR_NOMEM, "%s: %s: out of memory", what, call);
    return lmx_err(LMX_ERR_BACKEND, "%s: %s: %s", what, call, dnnl_status2str(st));
}

int op_dnnl_room(void) {
    void *p = mmap(NULL, OP_DNNL_HEADROOM, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) return 0;
    munmap(p, OP_DNNL_HEADROOM);
    return 1;
}

static dnnl_engine_t g_engine;
static dnnl_status_t g_engine_status = dnnl_success;
static pthread_once_t g_engine_once = PTHREAD_ONCE_INIT;

static void engine_init(void) {
    g_engine_status = op_dnnl_room() ? dnnl_engine_create(&g_engine, dnnl_cpu, 0) : dnnl_out_of_memory;
}

dnnl_engine_t op_dnnl_engine(void) {
    pthread_once(&g_engine_once, engine_init);
    if (g_engine_status != dnnl_success) {
        op_dnnl_err(g_engine_status, "oneDNN", "dnnl_engine_create(cpu)");
        return NULL;
    }
    return g_engine;
}

int op_nthr(void) { return omp_get_max_threads(); }

/* ---- bf16 capability ----
 * oneDNN 2.6 has bf16 kernels only from AVX-512 (avx512_core) up; on an
 * AVX2-only CPU every bf16 primitive descriptor is "unimplemented". Probe
 * once with a tiny matmul so callers can say so up front. */
static int g_bf16_ok = -1;
static pthread_once_t g_bf16_once = PTHREAD_ONCE_INIT;

static void bf16_probe(void) {
    g_bf16_ok = 0;
    dnnl_engine_t eng = op_dnnl_engine();
    if (!eng) return;
    dnnl_memory_desc_t a, b, c;
    dnnl_dims_t da = {4, 16}, db = {16, 16}, dc = {4, 16};
    if (dnnl_memory_desc_init_by_tag(&a, 2, da, dnnl_bf16, dnnl_ab) != dnnl_success ||
        dnnl_memory_desc_init_by_tag(&b, 2, db, dnnl_bf16, dnnl_format_tag_any) != dnnl_success ||
        dnnl_memory_desc_init_by_tag(&c, 2, dc, dnnl_f32, dnnl_ab) != dnnl_success)
        return;
    dnnl_matmul_desc_t md;
    if (dnnl_matmul_desc_init(&md, &a, &b, NULL, &c) != dnnl_success) return;
    dnnl_primitive_desc_t pd = NULL;
    if (!op_dnnl_room()) {
        return; /* no room to ask: bf16 stays refused for this process */
    }
    if (dnnl_primitive_desc_create(&pd, &md, NULL, eng, NULL) == dnnl_success) {
        g_bf16_ok = 1;
        dnnl_primitive_desc_destroy(pd);
    }
}

int op_bf16_supported(void) {
    pthread_once(&g_bf16_once, bf16_probe);
    return g_bf16_ok == 1;
}

const char *op_cpu_isa_name(void) {
    switch (dnnl_get_effective_cpu_isa()) {
    case dnnl_cpu_isa_sse41: return "sse4.1";
    case dnnl_cpu_isa_avx: return "avx";
    case dnnl_cpu_isa_avx2: return "avx2";
    case dnnl_cpu_isa_avx512_core: return "avx512_core";
    case dnnl_cpu_isa_avx512_core_vnni: return "avx512_core_vnni";
    case dnnl_cpu_isa_avx512_core_bf16: return "avx512_core_bf16";
    case dnnl_cpu_isa_avx512_core_amx: return "avx512_core_amx";
    case dnnl_cpu_isa_avx2_vnni: return "avx2_vnni";
    default: return "other";
    }
}

lmx_status op_bf16_check(const char *what) {
    if (op_bf16_supported()) return LMX_OK;
    return lmx_err(LMX_ERR_UNSUPPORTED,
                   "%s: bf16 precision needs a CPU with AVX-512 (oneDNN has no bf16 kernels for "
                   "this CPU's '%s'); use fp32",
                   what, op_cpu_isa_name());
}

/* ---- memory descriptors ---- */

static uint64_t fnv(uint64_t h, int64_t v) {
    for (int i = 0; i < 8; i++) {
        h ^= (uint64_t)(v >> (8 * i)) & 0xff;
        h *= 1099511628211ull;
    }
    return h;
}

uint64_t op_md_hash(const dnnl_memory_desc_t *md) {
    uint64_t h = 1469598103934665603ull;
    h = fnv(h, md->ndims);
    h = fnv(h, md->data_type);
    h = fnv(h, md->format_kind);
    for (int i = 0; i < md->ndims; i++) {
        h = fnv(h, md->dims[i]);
        h = fnv(h, md->padded_dims[i]);
    }
    if (md->format_kind == dnnl_blocked) {
        const dnnl_blocking_desc_t *b = &md->format_desc.blocking;
        for (int i = 0; i < md->ndims; i++) h = fnv(h, b->strides[i]);
        h = fnv(h, b->inner_nblks);
        for (int i = 0; i < b->inner_nblks; i++)
            h = fnv(h, b->inner_blks[i] * 16 + b->inner_idxs[i]);
    } else if (md->format_kind == dnnl_format_kind_wino) {
        const dnnl_wino_desc_t *w = &md->format_desc.wino_desc;
        int64_t f[] = {w->wino_format, w->r,        w->alpha,     w->ic,        w->oc,
                       w->ic_block,    w->oc_block, w->ic2_block, w->oc2_block, (int64_t)w->size};
        for (size_t i = 0; i < LMX_ARRAY_LEN(f); i++) h = fnv(h, f[i]);
    }
    return h;
}

void op_md_str(char *buf, size_t n, const dnnl_memory_desc_t *md) {
    size_t o = 0;
    int k;
#define PUT(...)                                                                                   \
    do {                                                                                           \
        k = snprintf(o < n ? buf + o : NULL, o < n ? n - o : 0, __VA_ARGS__);                      \
        if (k > 0) o += (size_t)k;                                                                 \
    } while (0)
    if (!n) return;
    buf[0] = 0;
    PUT("%s", dnnl_dt2str(md->data_type));
    if (md->format_kind == dnnl_blocked) {
        const dnnl_blocking_desc_t *b = &md->format_desc.blocking;
        PUT(" strides(");
        for (int i = 0; i < md->ndims; i++) PUT("%s%lld", i ? "," : "", (long long)b->strides[i]);
        PUT(")");
        for (int i = 0; i < b->inner_nblks; i++)
            PUT("%lld%c", (long long)b->inner_blks[i], (char)('a' + b->inner_idxs[i]));
    } else {
        PUT(" %s", dnnl_fmt_kind2str(md->format_kind));
    }
#undef PUT
}

/* ---- primitives ---- */

const char *op_pd_impl(const_dnnl_primitive_desc_t pd) {
    const char *s = NULL;
    if (dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &s) != dnnl_success || !s)
        return "?";
    return s;
}

size_t op_pd_scratch_bytes(const_dnnl_primitive_desc_t pd) {
    const dnnl_memory_desc_t *md = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    return md ? dnnl_memory_desc_get_size(md) : 0;
}

void op_prim_release(op_prim *pr) {
    for (int i = 0; i < pr->n; i++)
        if (pr->mem[i]) dnnl_memory_destroy(pr->mem[i]);
    if (pr->p) dnnl_primitive_destroy(pr->p);
    memset(pr, 0, sizeof *pr);
}

lmx_status op_entry_init_main(op_entry *e, const_dnnl_primitive_desc_t pd, int has_bias,
                              const char *what) {
    e->wei_md = *dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    snprintf(e->impl, sizeof e->impl, "%s", op_pd_impl(pd));
    e->scratch_bytes = op_pd_scratch_bytes(pd);
    int args[5], n = 0;
    args[n++] = DNNL_ARG_SRC;
    args[n++] = DNNL_ARG_WEIGHTS;
    if (has_bias) args[n++] = DNNL_ARG_BIAS;
    args[n++] = DNNL_ARG_DST;
    args[n++] = DNNL_ARG_SCRATCHPAD;
    return op_prim_make(&e->main, pd, args, n, what);
}

lmx_status op_prim_make(op_prim *pr, const_dnnl_primitive_desc_t pd, const int *args, int n,
                        const char *what) {
    dnnl_status_t st;
    dnnl_engine_t eng = op_dnnl_engine();
    LMX_ASSERT(n <= OP_PRIM_MAX_ARGS);
    memset(pr, 0, sizeof *pr);
    if (!eng) return LMX_ERR_BACKEND;
    st = op_dnnl_room() ? dnnl_primitive_create(&pr->p, pd) : dnnl_out_of_memory;
    if (st != dnnl_success) {
        pr->p = NULL;
        return op_dnnl_err(st, what, "dnnl_primitive_create");
    }
    for (int i = 0; i < n; i++) {
        const dnnl_memory_desc_t *md =
            dnnl_primitive_desc_query_md(pd, dnnl_query_exec_arg_md, args[i]);
        dnnl_memory_desc_t zero;
        if (!md) { /* an argument the pd does not use: an empty md */
            memset(&zero, 0, sizeof zero);
            md = &zero;
        }
        pr->arg[i] = args[i];
        st = dnnl_memory_create(&pr->mem[i], md, eng, DNNL_MEMORY_NONE);
        if (st != dnnl_success) {
            pr->mem[i] = NULL;
            pr->n = i;
            op_prim_release(pr);
            return op_dnnl_err(st, what, "dnnl_memory_create");
        }
        pr->n = i + 1;
    }
    return LMX_OK;
}

lmx_status op_prim_run(op_ctx *ctx, op_prim *pr, void *const *ptrs, const char *what) {
    dnnl_exec_arg_t a[OP_PRIM_MAX_ARGS];
    dnnl_status_t st;
    for (int i = 0; i < pr->n; i++) {
        /* Note: oneDNN 2.x writes zeros into the padding of a padded layout
         * here; our packed weights already hold zeros there. */
        st = dnnl_memory_set_data_handle_v2(pr->mem[i], ptrs[i], ctx->stream);
        if (st != dnnl_success) return op_dnnl_err(st, what, "dnnl_memory_set_data_handle");
        a[i].arg = pr->arg[i];
        a[i].memory = pr->mem[i];
    }
    if (!pr->ran && !op_dnnl_room())
        return op_dnnl_err(dnnl_out_of_memory, what, "dnnl_primitive_execute");
    st = dnnl_primitive_execute(pr->p, ctx->stream, pr->n, a);
    if (st != dnnl_success) return op_dnnl_err(st, what, "dnnl_primitive_execute");
    pr->ran = 1;
    st = dnnl_stream_wait(ctx->stream);
    if (st != dnnl_success) return op_dnnl_err(st, what, "dnnl_stream_wait");
    return LMX_OK;
}

lmx_status op_attr_make(dnnl_primitive_attr_t *attr, float alpha, float beta, const char *what) {
    dnnl_post_ops_t po = NULL;
    dnnl_status_t st = dnnl_primitive_attr_create(attr);
    if (st != dnnl_success) {
        *attr = NULL;
        return op_dnnl_err(st, what, "dnnl_primitive_attr_create");
    }
    st = dnnl_primitive_attr_set_scratchpad_mode(*attr, dnnl_scratchpad_mode_user);
    if (st != dnnl_success) goto fail;
    if (alpha != 1.0f) {
        st = dnnl_primitive_attr_set_output_scales(*attr, 1, 0, &alpha);
        if (st != dnnl_success) goto fail;
    }
    if (beta != 0.0f) {
        st = dnnl_post_ops_create(&po);
        if (st != dnnl_success) goto fail;
        st = dnnl_post_ops_append_sum(po, beta);
        if (st == dnnl_success) st = dnnl_primitive_attr_set_post_ops(*attr, po);
        dnnl_post_ops_destroy(po);
        if (st != dnnl_success) goto fail;
    }
    return LMX_OK;
fail:
    dnnl_primitive_attr_destroy(*attr);
    *attr = NULL;
    return op_dnnl_err(st, what, "primitive attributes");
}

lmx_status op_reorder_make(op_prim *pr, const dnnl_memory_desc_t *src_md,
                           const dnnl_memory_desc_t *dst_md, size_t *scratch_bytes,
                           const char *what) {
    dnnl_primitive_attr_t attr = NULL;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_engine_t eng = op_dnnl_engine();
    static const int args[] = {DNNL_ARG_FROM, DNNL_ARG_TO, DNNL_ARG_SCRATCHPAD};
    lmx_status rc = LMX_OK;
    dnnl_status_t st;
    memset(pr, 0, sizeof *pr);
    if (!eng) return LMX_ERR_BACKEND;
    rc = op_attr_make(&attr, 1.0f, 0.0f, what);
    if (rc != LMX_OK) return rc;
    st = op_dnnl_room() ? dnnl_reorder_primitive_desc_create(&pd, src_md, eng, dst_md, eng, attr)
                        : dnnl_out_of_memory;
    if (st != dnnl_success) {
        pd = NULL;
        rc = op_dnnl_err(st, what, "reorder primitive desc");
        goto done;
    }
    rc = op_prim_make(pr, pd, args, 3, what);
    if (rc == LMX_OK && scratch_bytes) {
        size_t s = op_pd_scratch_bytes(pd);
        if (s > *scratch_bytes) *scratch_bytes = s;
    }
done:
    if (pd) dnnl_primitive_desc_destroy(pd);
    dnnl_primitive_attr_destroy(attr);
    return rc;
}

/* ---- the cache ---- */

static uint64_t key_hash(const op_key *k) {
    uint64_t h = 1469598103934665603ull;
    for (int i = 0; i < OP_KEY_LEN; i++) h = fnv(h, k->v[i]);
    return h;
}

void op_entry_free(op_entry *e) {
    if (!e) return;
    op_prim_release(&e->main);
    op_prim_release(&e->pre_src);
    op_prim_release(&e->pre_dst);
    op_prim_release(&e->post_dst);
    lmx_free(e);
}

op_entry *op_cache_find(op_ctx *ctx, const op_key *k) {
    if (!ctx->cap) return NULL;
    size_t mask = ctx->cap - 1;
    for (size_t i = (size_t)key_hash(k) & mask;; i = (i + 1) & mask) {
        op_entry *e = ctx->tab[i];
        if (!e) break;
        if (!memcmp(&e->key, k, sizeof *k)) {
            ctx->hits++;
            return e;
        }
    }
    ctx->misses++;
    return NULL;
}

static void tab_put(op_entry **tab, size_t cap, op_entry *e) {
    size_t mask = cap - 1;
    size_t i = (size_t)key_hash(&e->key) & mask;
    while (tab[i]) i = (i + 1) & mask;
    tab[i] = e;
}

lmx_status op_cache_insert(op_ctx *ctx, op_entry *e) {
    if (2 * (ctx->n + 1) > ctx->cap) {
        size_t ncap = ctx->cap ? 2 * ctx->cap : 64;
        op_entry **nt = lmx_calloc(ncap, sizeof *nt);
        if (!nt) {
            op_entry_free(e);
            return lmx_err(LMX_ERR_NOMEM, "op_ctx: primitive cache of %zu entries", ncap);
        }
        for (size_t i = 0; i < ctx->cap; i++)
            if (ctx->tab[i]) tab_put(nt, ncap, ctx->tab[i]);
        lmx_free(ctx->tab);
        ctx->tab = nt;
        ctx->cap = ncap;
    }
    tab_put(ctx->tab, ctx->cap, e);
    ctx->n++;
    return LMX_OK;
}

size_t op_ctx_n_prims(const op_ctx *ctx) { return ctx ? ctx->n : 0; }

/* ---- context ---- */

lmx_status op_ctx_create(op_ctx **out) {
    if (!out) return lmx_err(LMX_ERR_ARG, "op_ctx_create: out is NULL");
    *out = NULL;
    dnnl_engine_t eng = op_dnnl_engine();
    if (!eng) return LMX_ERR_BACKEND;
    op_ctx *ctx = lmx_calloc(1, sizeof *ctx);
    if (!ctx) return lmx_err(LMX_ERR_NOMEM, "op_ctx_create: %zu bytes", sizeof *ctx);
    ctx->eng = eng;
    dnnl_status_t st = op_dnnl_room()
                           ? dnnl_stream_create(&ctx->stream, eng, dnnl_stream_default_flags)
                           : dnnl_out_of_memory;
    if (st != dnnl_success) {
        lmx_free(ctx);
        return op_dnnl_err(st, "op_ctx_create", "dnnl_stream_create");
    }
    *out = ctx;
    return LMX_OK;
}

void op_ctx_free(op_ctx *ctx) {
    if (!ctx) return;
    for (size_t i = 0; i < ctx->cap; i++) op_entry_free(ctx->tab[i]);
    lmx_free(ctx->tab);
    for (int i = 0; i < OP_SCRATCH_N; i++) lmx_free(ctx->scratch[i]);
    if (ctx->stream) dnnl_stream_destroy(ctx->stream);
    lmx_free(ctx);
}

void *op_ctx_scratch(op_ctx *ctx, int slot, size_t bytes) {
    LMX_ASSERT(slot >= 0 && slot < OP_SCRATCH_N);
    if (bytes == 0) bytes = 64;
    if (bytes > ctx->scratch_cap[slot]) {
        /* Grow by at least 1/4 so a slowly rising size does not realloc each call. */
        size_t want = LMX_MAX(bytes, ctx->scratch_cap[slot] + ctx->scratch_cap[slot] / 4);
        want = (want + 4095) & ~(size_t)4095;
        lmx_free(ctx->scratch[slot]);
        ctx->scratch_cap[slot] = 0;
        ctx->scratch[slot] = lmx_alloc_aligned(want);
        if (!ctx->scratch[slot]) {
            lmx_err(LMX_ERR_NOMEM, "op_ctx: scratch buffer of %zu bytes", want);
            return NULL;
        }
        ctx->scratch_cap[slot] = want;
    }
    return ctx->scratch[slot];
}

size_t op_ctx_bytes(const op_ctx *ctx) {
    size_t b = 0;
    if (!ctx) return 0;
    for (int i = 0; i < OP_SCRATCH_N; i++) b += ctx->scratch_cap[i];
    return b;
}

/* ---- prepacked weights ---- */

/* One-off reorder (not cached): src -> dst on a temporary stream. */
static lmx_status reorder_once(const dnnl_memory_desc_t *src_md, const void *src,
                               const dnnl_memory_desc_t *dst_md, void *dst, const char *what) {
    dnnl_engine_t eng = op_dnnl_engine();
    dnnl_primitive_desc_t pd = NULL;
    dnnl_primitive_t p = NULL;
    dnnl_memory_t ms = NULL, md = NULL;
    dnnl_stream_t s = NULL;
    lmx_status rc = LMX_OK;
    dnnl_status_t st;
    if (!eng) return LMX_ERR_BACKEND;
    const char *call = "reorder primitive desc";
    st = op_dnnl_room() ? dnnl_reorder_primitive_desc_create(&pd, src_md, eng, dst_md, eng, NULL)
                        : dnnl_out_of_memory;
    if (st != dnnl_success) {
        pd = NULL;
        goto fail;
    }
    call = "reorder primitive";
    st = op_dnnl_room() ? dnnl_primitive_create(&p, pd) : dnnl_out_of_memory;
    if (st != dnnl_success) {
        p = NULL;
        goto fail;
    }
    call = "memory";
    if ((st = dnnl_memory_create(&ms, src_md, eng, (void *)src)) != dnnl_success) {
        ms = NULL;
        goto fail;
    }
    if ((st = dnnl_memory_create(&md, dst_md, eng, dst)) != dnnl_success) {
        md = NULL;
        goto fail;
    }
    call = "stream";
    if ((st = dnnl_stream_create(&s, eng, dnnl_stream_default_flags)) != dnnl_success) {
        s = NULL;
        goto fail;
    }
    {
        dnnl_exec_arg_t a[2] = {{DNNL_ARG_FROM, ms}, {DNNL_ARG_TO, md}};
        call = "reorder execute";
        st = op_dnnl_room() ? dnnl_primitive_execute(p, s, 2, a) : dnnl_out_of_memory;
        if (st == dnnl_success) st = dnnl_stream_wait(s);
        if (st != dnnl_success) goto fail;
    }
    goto done;
fail:
    rc = op_dnnl_err(st, what, call);
done:
    if (s) dnnl_stream_destroy(s);
    if (md) dnnl_memory_destroy(md);
    if (ms) dnnl_memory_destroy(ms);
    if (p) dnnl_primitive_destroy(p);
    if (pd) dnnl_primitive_desc_destroy(pd);
    return rc;
}

/* A zeroed 64-byte aligned buffer for a layout. */
static void *alloc_md(const dnnl_memory_desc_t *md, size_t *bytes, const char *what) {
    size_t n = dnnl_memory_desc_get_size(md);
    void *p = lmx_alloc_aligned(n ? n : 64);
    if (!p) {
        lmx_err(LMX_ERR_NOMEM, "%s: packed weights of %zu bytes", what, n);
        return NULL;
    }
    memset(p, 0, n);
    *bytes = n;
    return p;
}

lmx_status op_wpack_init(op_wpack *wp, const dnnl_memory_desc_t *user_md, const void *user,
                         const dnnl_memory_desc_t *packed_md, const char *what) {
    memset(wp, 0, sizeof *wp);
    wp->md = *packed_md;
    wp->hash = op_md_hash(packed_md);
    wp->buf = alloc_md(packed_md, &wp->bytes, what);
    if (!wp->buf) return LMX_ERR_NOMEM;
    lmx_status rc = reorder_once(user_md, user, packed_md, wp->buf, what);
    if (rc != LMX_OK) goto fail;
    if (pthread_mutex_init(&wp->lock, NULL) != 0) {
        rc = lmx_err(LMX_ERR_INTERNAL, "%s: pthread_mutex_init failed", what);
        goto fail;
    }
    wp->lock_ok = 1;
    return LMX_OK;
fail:
    lmx_free(wp->buf);
    memset(wp, 0, sizeof *wp);
    return rc;
}

void op_wpack_release(op_wpack *wp) {
    if (!wp) return;
    for (int i = 0; i < wp->n_var; i++) lmx_free(wp->var[i].buf);
    lmx_free(wp->var);
    lmx_free(wp->buf);
    if (wp->lock_ok) pthread_mutex_destroy(&wp->lock);
    memset(wp, 0, sizeof *wp);
}

size_t op_wpack_bytes(const op_wpack *wp) {
    op_wpack *w = (op_wpack *)wp;
    if (w->lock_ok) pthread_mutex_lock(&w->lock);
    size_t b = w->bytes;
    for (int i = 0; i < w->n_var; i++) b += w->var[i].bytes;
    if (w->lock_ok) pthread_mutex_unlock(&w->lock);
    return b;
}

uint64_t op_wpack_hash(const op_wpack *wp) { return __atomic_load_n(&wp->hash, __ATOMIC_RELAXED); }

void op_wpack_layout(const op_wpack *wp, dnnl_memory_desc_t *md, uint64_t *hash) {
    op_wpack *w = (op_wpack *)wp;
    pthread_mutex_lock(&w->lock);
    *md = w->md;
    *hash = w->hash;
    pthread_mutex_unlock(&w->lock);
}

/* Make a variant laid out as md from the primary: a direct reorder, or
 * through the plain layout when oneDNN has no direct one (Winograd). */
static lmx_status make_variant(const op_wpack *wp, const dnnl_memory_desc_t *md, void *dst,
                               const char *what) {
    lmx_status rc = reorder_once(&wp->md, wp->buf, md, dst, what);
    if (rc == LMX_OK) return rc;
    dnnl_memory_desc_t plain;
    static const dnnl_format_tag_t tags[] = {dnnl_a, dnnl_ab, dnnl_abc, dnnl_abcd, dnnl_abcde};
    if (wp->md.ndims < 1 || wp->md.ndims > 5) return rc;
    dnnl_status_t st = dnnl_memory_desc_init_by_tag(&plain, wp->md.ndims, wp->md.dims,
                                                    md->data_type, tags[wp->md.ndims - 1]);
    if (st != dnnl_success) return op_dnnl_err(st, what, "plain weights desc");
    size_t nb = 0;
    void *tmp = alloc_md(&plain, &nb, what);
    if (!tmp) return LMX_ERR_NOMEM;
    rc = reorder_once(&wp->md, wp->buf, &plain, tmp, what);
    if (rc == LMX_OK) rc = reorder_once(&plain, tmp, md, dst, what);
    lmx_free(tmp);
    return rc;
}

lmx_status op_wpack_get(op_ctx *ctx, const op_wpack *wp, const dnnl_memory_desc_t *md,
                        const void **out, const char *what) {
    (void)ctx;
    op_wpack *w = (op_wpack *)wp; /* re-packing and variants are a cache: logically const */
    /* Once used, the primary never changes: no lock on the common path. */
    if (__atomic_load_n(&w->used, __ATOMIC_ACQUIRE) && dnnl_memory_desc_equal(md, &w->md)) {
        *out = w->buf;
        return LMX_OK;
    }
    lmx_status rc = LMX_OK;
    char a[160], b[160];
    pthread_mutex_lock(&w->lock);
    if (dnnl_memory_desc_equal(md, &w->md)) {
        __atomic_store_n(&w->used, 1, __ATOMIC_RELEASE);
        *out = w->buf;
        goto done;
    }
    for (int i = 0; i < w->n_var; i++) {
        if (dnnl_memory_desc_equal(md, &w->var[i].md)) {
            *out = w->var[i].buf;
            goto done;
        }
    }
    if (lmx_log_enabled(LMX_LOG_DEBUG)) {
        op_md_str(a, sizeof a, &w->md);
        op_md_str(b, sizeof b, md);
    }
    if (!w->used && w->md.format_kind == dnnl_blocked && md->format_kind == dnnl_blocked) {
        size_t nb = 0;
        void *nbuf = alloc_md(md, &nb, what);
        if (!nbuf) {
            rc = LMX_ERR_NOMEM;
            goto done;
        }
        rc = reorder_once(&w->md, w->buf, md, nbuf, what);
        if (rc != LMX_OK) {
            lmx_free(nbuf);
            goto done;
        }
        lmx_debug("%s: re-packed weights from %s to %s (%zu bytes), the layout this input size "
                  "wants",
                  what, a, b, nb);
        lmx_free(w->buf);
        w->buf = nbuf;
        w->bytes = nb;
        w->md = *md;
        __atomic_store_n(&w->hash, op_md_hash(md), __ATOMIC_RELAXED);
        __atomic_store_n(&w->used, 1, __ATOMIC_RELEASE);
        *out = nbuf;
        goto done;
    }
    {
        op_wvar *nv = lmx_realloc(w->var, sizeof *nv * (size_t)(w->n_var + 1));
        if (!nv) {
            rc = lmx_err(LMX_ERR_NOMEM, "%s: weight variant list", what);
            goto done;
        }
        w->var = nv;
        op_wvar v;
        v.md = *md;
        v.buf = alloc_md(md, &v.bytes, what);
        if (!v.buf) {
            rc = LMX_ERR_NOMEM;
            goto done;
        }
        rc = make_variant(w, md, v.buf, what);
        if (rc != LMX_OK) {
            lmx_free(v.buf);
            goto done;
        }
        lmx_debug("%s: primitive wants weights as %s (packed as %s): keeping a %zu-byte copy", what,
                  b, a, v.bytes);
        w->var[w->n_var++] = v;
        *out = v.buf;
    }
done:
    pthread_mutex_unlock(&w->lock);
    return rc;
}

/* ---- row copies ---- */

void op_copy_rows(float *dst, int64_t ld_dst, const float *src, int64_t ld_src, int64_t m,
                  int64_t n) {
#pragma omp parallel for schedule(static) if (m * n > 32768)
    for (int64_t i = 0; i < m; i++)
        memcpy(dst + i * ld_dst, src + i * ld_src, sizeof(float) * (size_t)n);
}

static void cvt_row(uint16_t *d, const float *s, int64_t n) {
#if defined(HAVE_BF16_CVT)
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256bh v = _mm512_cvtneps_pbh(_mm512_loadu_ps(s + i));
        _mm256_storeu_si256((__m256i *)(void *)(d + i), (__m256i)v);
    }
    if (i < n) { /* the same instruction on the tail, masked */
        __mmask16 k = (__mmask16)((1u << (n - i)) - 1);
        __m256bh v = _mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(k, s + i));
        _mm256_mask_storeu_epi16((void *)(d + i), k, (__m256i)v);
    }
#else
    for (int64_t i = 0; i < n; i++) d[i] = lmx_f32_to_bf16(s[i]);
#endif
}

void op_cvt_rows_bf16(uint16_t *dst, const float *src, int64_t ld_src, int64_t m, int64_t n) {
    if (ld_src == n) { /* one long row per thread chunk */
        n *= m;
        const int64_t blk = 4096;
        const int64_t nb = (n + blk - 1) / blk;
#pragma omp parallel for schedule(static) if (n > 32768)
        for (int64_t b = 0; b < nb; b++)
            cvt_row(dst + b * blk, src + b * blk, LMX_MIN(blk, n - b * blk));
        return;
    }
#pragma omp parallel for schedule(static) if (m * n > 32768)
    for (int64_t i = 0; i < m; i++) cvt_row(dst + i * n, src + i * ld_src, n);
}
