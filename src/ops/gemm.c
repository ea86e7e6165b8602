/*
 * gemm.c - op_linear_* (prepacked weights) and op_matmul (dynamic operands)
 * on oneDNN 2.6 matmul primitives. Naive twins: ref_linear, ref_matmul
 * (ops/ref/ref_gemm.c); semantics of torch.nn.functional.linear and
 * torch.matmul with BLAS-style alpha/beta.
 *
 * op_linear
 *   The torch weight W[N, K] is the matmul operand [K, N] with strides
 *   (1, K). At create, a matmul pd for a reference M with weights
 *   "format_tag_any" tells which blocked layout oneDNN's brgemm kernel wants
 *   (16a64b for f32, 16a64b2a for bf16 on AVX-512: it depends on K and N,
 *   not M); the weights are reordered into it once and the caller's copy is
 *   not kept. Each call asks for a primitive with that exact weights layout,
 *   so a layout mismatch is impossible; should oneDNN refuse it for some M,
 *   the primitive is created with "any" and the weights get a second packed
 *   copy in the layout it chose (op_wpack_get). Bias is a [1, N] f32 operand;
 *   beta != 0 is a sum post-op (dst = acc + bias + beta·dst, in that order).
 *
 *   brgemm matmul in 2.6 needs dense src/dst rows and f32 src for f32
 *   weights, so row-strided x/y (views into fused buffers) and OP_PREC_BF16
 *   go through dense scratch buffers (our own threaded row copies and
 *   bf16 conversion: oneDNN's strided reorders are generic loops), a block
 *   of rows at a time (about 4 MiB of src+dst per block, so the copies stay
 *   in cache).
 *   OP_PREC_BF16: bf16 weights and src (round to nearest even), f32
 *   accumulation and dst.
 *
 * op_matmul
 *   One 3-D matmul primitive over the batch when oneDNN has a real
 *   (non-reference) kernel for the strides; otherwise (broadcast batch
 *   stride 0, interleaved strides it rejects) a 2-D primitive run once per
 *   batch with offset pointers. alpha is an output scale, beta a sum post-op
 *   (omitted for beta = 0 so C is never read).
 *
 * Primitives are cached in op_ctx per (shape, strides, precision, beta,
 * alpha, thread count, weights layout).
 */
#include <string.h>

#include <oneapi/dnnl/dnnl_debug.h>

#include "ops/dnnl_util.h"

struct op_linear {
    int64_t n_out, n_in; /* N, K */
    op_prec prec;
    float *bias; /* [N] or NULL */
    op_wpack w;  /* [K, N] packed */
};

enum { LIN_REF_M = 256 };           /* the M used to pick the packed layout */
enum { LIN_BLOCK_BYTES = 4 << 20 }; /* src+dst bytes per row block on copy paths */

static dnnl_data_type_t dt_of(op_prec p) { return p == OP_PREC_BF16 ? dnnl_bf16 : dnnl_f32; }

static int64_t fbits(float f) {
    uint32_t u;
    if (f == 0.0f) f = 0.0f; /* -0 and +0 are the same key */
    memcpy(&u, &f, sizeof u);
    return u;
}

static int is_ref_impl(const char *impl) { return !strncmp(impl, "ref", 3); }

/* ------------------------------------------------------------------ */
/* op_linear                                                           */
/* ------------------------------------------------------------------ */

/* A matmul pd: src [M, K] dense (dt), weights [K, N] as wmd (NULL: any),
 * bias [1, N] f32 (optional), dst [M, N] dense f32. Returns the dnnl status
 * without setting an error (callers may retry). */
static dnnl_status_t linear_pd(dnnl_primitive_desc_t *pd, int64_t M, int64_t K, int64_t N,
                               op_prec prec, int has_bias, const dnnl_memory_desc_t *wmd,
                               float beta) {
    dnnl_memory_desc_t s, w, b, d;
    dnnl_dims_t sd = {M, K}, wd = {K, N}, bd = {1, N}, dd = {M, N};
    dnnl_matmul_desc_t desc;
    dnnl_primitive_attr_t attr = NULL;
    dnnl_status_t st;
    *pd = NULL;
    if ((st = dnnl_memory_desc_init_by_tag(&s, 2, sd, dt_of(prec), dnnl_ab)) != dnnl_success)
        return st;
    if (wmd)
        w = *wmd;
    else if ((st = dnnl_memory_desc_init_by_tag(&w, 2, wd, dt_of(prec), dnnl_format_tag_any)) !=
             dnnl_success)
        return st;
    if ((st = dnnl_memory_desc_init_by_tag(&b, 2, bd, dnnl_f32, dnnl_ab)) != dnnl_success)
        return st;
    if ((st = dnnl_memory_desc_init_by_tag(&d, 2, dd, dnnl_f32, dnnl_ab)) != dnnl_success)
        return st;
    if ((st = dnnl_matmul_desc_init(&desc, &s, &w, has_bias ? &b : NULL, &d)) != dnnl_success)
        return st;
    if (op_attr_make(&attr, 1.0f, beta, "op_linear") != LMX_OK) return dnnl_runtime_error;
    st = op_dnnl_room() ? dnnl_primitive_desc_create(pd, &desc, attr, op_dnnl_engine(), NULL)
                        : dnnl_out_of_memory;
    if (st != dnnl_success) *pd = NULL;
    dnnl_primitive_attr_destroy(attr);
    return st;
}

lmx_status op_linear_create(op_linear **out, const float *w, const float *bias, int64_t n_out,
                            int64_t n_in, op_prec prec) {
    static const char *what = "op_linear_create";
    dnnl_primitive_desc_t pd = NULL;
    lmx_status rc = LMX_OK;
    op_linear *l = NULL;
    if (!out) return lmx_err(LMX_ERR_ARG, "%s: out is NULL", what);
    *out = NULL;
    if (!w) return lmx_err(LMX_ERR_ARG, "%s: weights are NULL", what);
    if (n_out < 1 || n_in < 1 || n_out > ((int64_t)1 << 40) / n_in)
        return lmx_err(LMX_ERR_SHAPE, "%s: bad weight shape [%lld, %lld]", what, (long long)n_out,
                       (long long)n_in);
    if (prec != OP_PREC_F32 && prec != OP_PREC_BF16)
        return lmx_err(LMX_ERR_ARG, "%s: unknown precision %d", what, (int)prec);
    if (prec == OP_PREC_BF16 && op_bf16_check(what) != LMX_OK) return LMX_ERR_UNSUPPORTED;
    if (!op_dnnl_engine()) return LMX_ERR_BACKEND;

    l = lmx_calloc(1, sizeof *l);
    if (!l) return lmx_err(LMX_ERR_NOMEM, "%s: %zu bytes", what, sizeof *l);
    l->n_out = n_out;
    l->n_in = n_in;
    l->prec = prec;
    if (bias) {
        l->bias = lmx_alloc_aligned(sizeof(float) * (size_t)n_out);
        if (!l->bias) {
            rc = lmx_err(LMX_ERR_NOMEM, "%s: bias [%lld]", what, (long long)n_out);
            goto fail;
        }
        memcpy(l->bias, bias, sizeof(float) * (size_t)n_out);
    }
    dnnl_status_t st = linear_pd(&pd, LIN_REF_M, n_in, n_out, prec, bias != NULL, NULL, 0.0f);
    if (st != dnnl_success) {
        rc = lmx_err(st == dnnl_out_of_memory ? LMX_ERR_NOMEM : LMX_ERR_BACKEND, "%s: [%lld, %lld] %s: matmul primitive desc: %s", what,
                     (long long)n_out, (long long)n_in, prec == OP_PREC_BF16 ? "bf16" : "f32",
                     dnnl_status2str(st));
        goto fail;
    }
    {
        dnnl_memory_desc_t umd;
        dnnl_dims_t ud = {n_in, n_out}, us = {1, n_in}; /* W[N, K] viewed as [K, N] */
        const dnnl_memory_desc_t *pmd = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
        st = dnnl_memory_desc_init_by_strides(&umd, 2, ud, dnnl_f32, us);
        if (st != dnnl_success) {
            rc = op_dnnl_err(st, what, "weights desc");
            goto fail;
        }
        rc = op_wpack_init(&l->w, &umd, w, pmd, what);
        if (rc != LMX_OK) goto fail;
        if (lmx_log_enabled(LMX_LOG_DEBUG)) {
            char buf[160];
            op_md_str(buf, sizeof buf, pmd);
            lmx_debug("%s: [%lld, %lld] packed as %s (%zu bytes) for %s", what, (long long)n_out,
                      (long long)n_in, buf, l->w.bytes, op_pd_impl(pd));
        }
    }
    dnnl_primitive_desc_destroy(pd);
    *out = l;
    return LMX_OK;
fail:
    if (pd) dnnl_primitive_desc_destroy(pd);
    op_linear_free(l);
    return rc;
}

void op_linear_free(op_linear *l) {
    if (!l) return;
    op_wpack_release(&l->w);
    lmx_free(l->bias);
    lmx_free(l);
}

int64_t op_linear_n_out(const op_linear *l) { return l->n_out; }
int64_t op_linear_n_in(const op_linear *l) { return l->n_in; }

size_t op_linear_bytes(const op_linear *l) {
    if (!l) return 0;
    return op_wpack_bytes(&l->w) + (l->bias ? sizeof(float) * (size_t)l->n_out : 0);
}

/* Rows per block on the copy paths. */
static int64_t linear_block(int64_t K, int64_t N, int64_t M) {
    int64_t rows = (int64_t)LIN_BLOCK_BYTES / (4 * (K + N));
    rows = rows / 32 * 32;
    if (rows < 64) rows = 64;
    return rows >= M ? M : rows;
}

/* The cached entry for m rows (one block) of l. */
static lmx_status linear_entry(op_ctx *ctx, const op_linear *l, int64_t m, int64_t ldx, int64_t ldy,
                               float beta, op_entry **out) {
    static const char *what = "op_linear_fwd";
    const int64_t K = l->n_in, N = l->n_out;
    op_key k;
    memset(&k, 0, sizeof k);
    k.v[0] = OP_KIND_LINEAR;
    k.v[1] = m;
    k.v[2] = K;
    k.v[3] = N;
    k.v[4] = l->prec;
    k.v[5] = l->bias != NULL;
    k.v[6] = fbits(beta);
    k.v[7] = ldx != K; /* the primitive is dense; only whether rows are copied */
    k.v[8] = ldy != N;
    k.v[9] = op_nthr();
    k.v[10] = (int64_t)op_wpack_hash(&l->w);
    op_entry *e = op_cache_find(ctx, &k);
    if (e) {
        *out = e;
        return LMX_OK;
    }

    dnnl_primitive_desc_t pd = NULL;
    lmx_status rc = LMX_OK;
    dnnl_status_t st;
    e = lmx_calloc(1, sizeof *e);
    if (!e) return lmx_err(LMX_ERR_NOMEM, "%s: cache entry", what);
    e->key = k;
    /* The packed layout, unless only oneDNN's reference kernel takes it for
     * this M or it costs the kernel oneDNN would pick: then oneDNN's choice,
     * and the weights get a second packed copy (not seen with oneDNN 2.6 on
     * AVX-512: brgemm's layout depends on K and N only). */
    {
        dnnl_primitive_desc_t pany = NULL;
        dnnl_memory_desc_t wmd;
        uint64_t wh;
        op_wpack_layout(&l->w, &wmd, &wh);
        st = linear_pd(&pd, m, K, N, l->prec, l->bias != NULL, &wmd, beta);
        dnnl_status_t st2 = linear_pd(&pany, m, K, N, l->prec, l->bias != NULL, NULL, beta);
        if (st2 == dnnl_success &&
            (st != dnnl_success || strcmp(op_pd_impl(pd), op_pd_impl(pany)) != 0)) {
            lmx_debug("%s: M=%lld K=%lld N=%lld: packed layout gives %s, oneDNN prefers %s with "
                      "another weights layout (weights re-packed or copied)",
                      what, (long long)m, (long long)K, (long long)N,
                      st == dnnl_success ? op_pd_impl(pd) : "nothing", op_pd_impl(pany));
            if (pd) dnnl_primitive_desc_destroy(pd);
            pd = pany;
            st = st2;
        } else if (pany) {
            dnnl_primitive_desc_destroy(pany);
        }
    }
    if (st != dnnl_success) {
        rc = lmx_err(st == dnnl_out_of_memory ? LMX_ERR_NOMEM : LMX_ERR_BACKEND, "%s: M=%lld K=%lld N=%lld %s: matmul primitive desc: %s",
                     what, (long long)m, (long long)K, (long long)N,
                     l->prec == OP_PREC_BF16 ? "bf16" : "f32", dnnl_status2str(st));
        goto fail;
    }
    rc = op_entry_init_main(e, pd, l->bias != NULL, what);
    if (rc != LMX_OK) goto fail;
    /* Copy paths: caller's rows <-> dense (bf16) blocks (op_copy_rows). */
    if (l->prec == OP_PREC_BF16 || ldx != K)
        e->src_bytes = (size_t)(m * K) * (l->prec == OP_PREC_BF16 ? 2 : 4);
    if (ldy != N) e->dst_bytes = sizeof(float) * (size_t)(m * N);
    if (is_ref_impl(e->impl))
        lmx_warn("%s: M=%lld K=%lld N=%lld runs on oneDNN's slow reference kernel (%s)", what,
                 (long long)m, (long long)K, (long long)N, e->impl);
    lmx_debug("%s: new primitive M=%lld K=%lld N=%lld ldx=%lld ldy=%lld %s%s beta=%g: %s", what,
              (long long)m, (long long)K, (long long)N, (long long)ldx, (long long)ldy,
              l->prec == OP_PREC_BF16 ? "bf16" : "f32", l->bias ? " bias" : "", (double)beta,
              e->impl);
    dnnl_primitive_desc_destroy(pd);
    pd = NULL;
    rc = op_cache_insert(ctx, e);
    if (rc != LMX_OK) return rc;
    *out = e;
    return LMX_OK;
fail:
    if (pd) dnnl_primitive_desc_destroy(pd);
    op_entry_free(e);
    return rc;
}

lmx_status op_linear_fwd(op_ctx *ctx, const op_linear *l, const float *x, int64_t ldx, float *y,
                         int64_t ldy, int64_t M, float beta) {
    static const char *what = "op_linear_fwd";
    if (!ctx || !l) return lmx_err(LMX_ERR_ARG, "%s: NULL context or linear", what);
    const int64_t K = l->n_in, N = l->n_out;
    if (ldx == 0) ldx = K;
    if (ldy == 0) ldy = N;
    if (M < 0 || ldx < K || ldy < N)
        return lmx_err(LMX_ERR_ARG, "%s: M=%lld K=%lld N=%lld ldx=%lld ldy=%lld: bad sizes", what,
                       (long long)M, (long long)K, (long long)N, (long long)ldx, (long long)ldy);
    if (M == 0) return LMX_OK;
    if (!x || !y) return lmx_err(LMX_ERR_ARG, "%s: NULL x or y", what);
    if (beta == 0.0f) beta = 0.0f;

    const int copy = l->prec != OP_PREC_F32 || ldx != K || ldy != N;
    const int64_t rows = copy ? linear_block(K, N, M) : M;
    for (int64_t r = 0; r < M; r += rows) {
        const int64_t m = LMX_MIN(rows, M - r);
        op_entry *e = NULL;
        const void *w = NULL;
        lmx_status rc = linear_entry(ctx, l, m, ldx, ldy, beta, &e);
        if (rc != LMX_OK) return rc;
        rc = op_wpack_get(ctx, &l->w, &e->wei_md, &w, what);
        if (rc != LMX_OK) return rc;
        void *scr = op_ctx_scratch(ctx, OP_SCRATCH_DNNL, e->scratch_bytes);
        if (!scr) return LMX_ERR_NOMEM;
        float *xs = (float *)(x + r * ldx), *ys = y + r * ldy;
        void *src = xs, *dst = ys;
        if (e->src_bytes) {
            src = op_ctx_scratch(ctx, OP_SCRATCH_SRC, e->src_bytes);
            if (!src) return LMX_ERR_NOMEM;
            if (l->prec == OP_PREC_BF16)
                op_cvt_rows_bf16(src, xs, ldx, m, K);
            else
                op_copy_rows(src, K, xs, ldx, m, K);
        }
        if (e->dst_bytes) {
            dst = op_ctx_scratch(ctx, OP_SCRATCH_DST, e->dst_bytes);
            if (!dst) return LMX_ERR_NOMEM;
            if (beta != 0.0f) op_copy_rows(dst, N, ys, ldy, m, N);
        }
        {
            void *p[5];
            int n = 0;
            p[n++] = src;
            p[n++] = (void *)w;
            if (l->bias) p[n++] = l->bias;
            p[n++] = dst;
            p[n++] = scr;
            if ((rc = op_prim_run(ctx, &e->main, p, what)) != LMX_OK) return rc;
        }
        if (e->dst_bytes) op_copy_rows(ys, ldy, dst, N, m, N);
    }
    return LMX_OK;
}

/* ------------------------------------------------------------------ */
/* op_matmul                                                           */
/* ------------------------------------------------------------------ */

enum { MM_ONE = 0, MM_LOOP = 1 };

/* A [rows, cols] operand (optionally stored transposed) with a batch dim
 * when nb > 0. */
static dnnl_status_t mm_md(dnnl_memory_desc_t *md, int64_t nb, int64_t rows, int64_t cols,
                           int64_t ld, int64_t sbatch, int trans) {
    if (nb > 0) {
        dnnl_dims_t d = {nb, rows, cols}, s = {sbatch, trans ? 1 : ld, trans ? ld : 1};
        return dnnl_memory_desc_init_by_strides(md, 3, d, dnnl_f32, s);
    }
    dnnl_dims_t d = {rows, cols}, s = {trans ? 1 : ld, trans ? ld : 1};
    return dnnl_memory_desc_init_by_strides(md, 2, d, dnnl_f32, s);
}

static dnnl_status_t mm_pd(dnnl_primitive_desc_t *pd, int64_t nb, int64_t M, int64_t N, int64_t K,
                           float alpha, int64_t lda, int64_t sa, int ta, int64_t ldb, int64_t sb,
                           int tb, float beta, int64_t ldc, int64_t sc) {
    dnnl_memory_desc_t a, b, c;
    dnnl_matmul_desc_t desc;
    dnnl_primitive_attr_t attr = NULL;
    dnnl_status_t st;
    *pd = NULL;
    if ((st = mm_md(&a, nb, M, K, lda, sa, ta)) != dnnl_success) return st;
    if ((st = mm_md(&b, nb, K, N, ldb, sb, tb)) != dnnl_success) return st;
    if ((st = mm_md(&c, nb, M, N, ldc, sc, 0)) != dnnl_success) return st;
    if ((st = dnnl_matmul_desc_init(&desc, &a, &b, NULL, &c)) != dnnl_success) return st;
    if (op_attr_make(&attr, alpha, beta, "op_matmul") != LMX_OK) return dnnl_runtime_error;
    st = op_dnnl_room() ? dnnl_primitive_desc_create(pd, &desc, attr, op_dnnl_engine(), NULL)
                        : dnnl_out_of_memory;
    if (st != dnnl_success) *pd = NULL;
    dnnl_primitive_attr_destroy(attr);
    return st;
}

lmx_status op_matmul(op_ctx *ctx, int64_t batch, int64_t M, int64_t N, int64_t K, float alpha,
                     const float *A, int64_t lda, int64_t sa, int trans_a, const float *B,
                     int64_t ldb, int64_t sb, int trans_b, float beta, float *C, int64_t ldc,
                     int64_t sc) {
    static const char *what = "op_matmul";
    if (!ctx) return lmx_err(LMX_ERR_ARG, "%s: NULL context", what);
    trans_a = !!trans_a;
    trans_b = !!trans_b;
    if (batch < 0 || M < 0 || N < 0 || K < 0 || sa < 0 || sb < 0 || sc < 0)
        return lmx_err(LMX_ERR_ARG, "%s: batch=%lld M=%lld N=%lld K=%lld: negative size or stride",
                       what, (long long)batch, (long long)M, (long long)N, (long long)K);
    if (batch == 0 || M == 0 || N == 0) return LMX_OK;
    if (lda < (trans_a ? M : K) || ldb < (trans_b ? K : N) || ldc < N || lda < 1 || ldb < 1)
        return lmx_err(LMX_ERR_ARG,
                       "%s: M=%lld N=%lld K=%lld trans_a=%d trans_b=%d: row strides lda=%lld "
                       "ldb=%lld ldc=%lld too small",
                       what, (long long)M, (long long)N, (long long)K, trans_a, trans_b,
                       (long long)lda, (long long)ldb, (long long)ldc);
    if (!C || (K > 0 && (!A || !B))) return lmx_err(LMX_ERR_ARG, "%s: NULL operand", what);
    if (beta == 0.0f) beta = 0.0f;
    if (K == 0) { /* empty sum: C = beta·C */
        for (int64_t b = 0; b < batch; b++)
            for (int64_t m = 0; m < M; m++)
                for (int64_t n = 0; n < N; n++) {
                    float *c = C + b * sc + m * ldc + n;
                    *c = beta == 0.0f ? 0.0f : beta * *c;
                }
        return LMX_OK;
    }
    if (batch == 1) sa = sb = sc = 0;

    op_key k;
    memset(&k, 0, sizeof k);
    k.v[0] = OP_KIND_MATMUL;
    k.v[1] = batch;
    k.v[2] = M;
    k.v[3] = N;
    k.v[4] = K;
    k.v[5] = lda;
    k.v[6] = ldb;
    k.v[7] = ldc;
    k.v[8] = sa;
    k.v[9] = sb;
    k.v[10] = sc;
    k.v[11] = trans_a;
    k.v[12] = trans_b;
    k.v[13] = fbits(alpha);
    k.v[14] = fbits(beta);
    k.v[15] = op_nthr();
    lmx_status rc = LMX_OK;
    op_entry *e = op_cache_find(ctx, &k);
    if (!e) {
        dnnl_primitive_desc_t pd = NULL;
        dnnl_status_t st = dnnl_unimplemented;
        e = lmx_calloc(1, sizeof *e);
        if (!e) return lmx_err(LMX_ERR_NOMEM, "%s: cache entry", what);
        e->key = k;
        e->mode = MM_LOOP;
        if (batch > 1) {
            st = mm_pd(&pd, batch, M, N, K, alpha, lda, sa, trans_a, ldb, sb, trans_b, beta, ldc,
                       sc);
            if (st == dnnl_success && is_ref_impl(op_pd_impl(pd))) {
                dnnl_primitive_desc_destroy(pd);
                pd = NULL;
                st = dnnl_unimplemented;
            }
            if (st == dnnl_success) e->mode = MM_ONE;
        }
        if (!pd) {
            e->mode = batch > 1 ? MM_LOOP : MM_ONE;
            st = mm_pd(&pd, 0, M, N, K, alpha, lda, 0, trans_a, ldb, 0, trans_b, beta, ldc, 0);
        }
        if (st != dnnl_success) {
            rc = lmx_err(st == dnnl_out_of_memory ? LMX_ERR_NOMEM : LMX_ERR_BACKEND,
                         "%s: batch=%lld M=%lld N=%lld K=%lld lda=%lld ldb=%lld ldc=%lld "
                         "trans=%d%d: matmul primitive desc: %s",
                         what, (long long)batch, (long long)M, (long long)N, (long long)K,
                         (long long)lda, (long long)ldb, (long long)ldc, trans_a, trans_b,
                         dnnl_status2str(st));
            op_entry_free(e);
            return rc;
        }
        snprintf(e->impl, sizeof e->impl, "%s", op_pd_impl(pd));
        e->scratch_bytes = op_pd_scratch_bytes(pd);
        static const int args[] = {DNNL_ARG_SRC, DNNL_ARG_WEIGHTS, DNNL_ARG_DST,
                                   DNNL_ARG_SCRATCHPAD};
        rc = op_prim_make(&e->main, pd, args, 4, what);
        dnnl_primitive_desc_destroy(pd);
        if (rc != LMX_OK) {
            op_entry_free(e);
            return rc;
        }
        lmx_debug("%s: new primitive batch=%lld%s M=%lld N=%lld K=%lld lda=%lld ldb=%lld "
                  "ldc=%lld sa=%lld sb=%lld sc=%lld trans=%d%d alpha=%g beta=%g: %s",
                  what, (long long)batch, e->mode == MM_LOOP ? " (looped)" : "", (long long)M,
                  (long long)N, (long long)K, (long long)lda, (long long)ldb, (long long)ldc,
                  (long long)sa, (long long)sb, (long long)sc, trans_a, trans_b, (double)alpha,
                  (double)beta, e->impl);
        if ((rc = op_cache_insert(ctx, e)) != LMX_OK) return rc;
    }
    void *scr = op_ctx_scratch(ctx, OP_SCRATCH_DNNL, e->scratch_bytes);
    if (!scr) return LMX_ERR_NOMEM;
    const int64_t nrun = e->mode == MM_LOOP ? batch : 1;
    for (int64_t b = 0; b < nrun; b++) {
        void *p[] = {(void *)(A + b * sa), (void *)(B + b * sb), C + b * sc, scr};
        if ((rc = op_prim_run(ctx, &e->main, p, what)) != LMX_OK) return rc;
    }
    return LMX_OK;
}
