/*
 * conv.c - op_conv2d_*: 2-D convolution on NHWC activations with oneDNN 2.6
 * convolution primitives. Naive twin: ref_conv2d (ops/ref/ref_gemm.c);
 * semantics of torch.nn.functional.conv2d (zero padding, dilation 1, groups
 * 1) with the input and output permuted to NHWC.
 *
 * Paths
 *   - 1x1, stride 1, pad 0: a plain op_linear on the [B·H·W, C_in] token
 *     matrix (NHWC makes it one). Its packed layout depends only on C_in and
 *     C_out, whereas oneDNN's brgconv_1x1 picks a different weights blocking
 *     for different spatial sizes.
 *   - direct (brgconv on AVX-512): activations stay NHWC; the torch weights
 *     [C_out, C_in, kh, kw] are reordered once at create into the layout
 *     oneDNN prefers for a reference 32x32 input, and every call asks for a
 *     primitive with exactly that layout (a second copy is made only if
 *     oneDNN refuses it for some shape; see op_wpack_get).
 *   - OP_PREC_BF16: the NHWC input is converted to bf16 (round to nearest
 *     even, op_cvt_rows_bf16 as in op_linear) in a scratch buffer; bf16
 *     weights, f32 accumulation, f32 bias and output.
 *   - OP_CONV_WINOGRAD (3x3, stride 1, f32): dnnl_convolution_winograd. Its
 *     kernels (2x3 and 4x3 tiles) only take blocked nChw16c activations and
 *     a Winograd-domain weights layout that depends on the input size, so
 *     each call reorders NHWC -> blocked -> NHWC around the primitive, and
 *     the transformed weights are an extra copy per input size, built from
 *     the direct packed copy on first use (1.8x the direct size for 2x3 tiles,
 *     4x for 4x3). When oneDNN refuses Winograd (no AVX-512, odd shape) the
 *     direct kernel runs and a debug log line says so.
 *
 * beta != 0 is a sum post-op: y = conv + bias + beta·y.
 */
#include <string.h>

#include <oneapi/dnnl/dnnl_debug.h>

#include "ops/dnnl_util.h"

struct op_conv2d {
    int64_t c_out, c_in;
    int kh, kw, stride, pad;
    op_prec prec;
    unsigned flags;
    int wino;       /* Winograd asked for, applicable, and offered by oneDNN at create */
    op_linear *lin; /* 1x1 stride 1 pad 0 */
    float *bias;    /* [c_out] or NULL */
    op_wpack w;     /* direct-kernel layout */
};

enum { CONV_REF_HW = 32 };
enum { CONV_DIRECT = 0, CONV_WINO = 1, CONV_SEPSUM = 2 /* flag */, CONV_CVT = 4 /* flag */ };

static dnnl_data_type_t dt_of(op_prec p) { return p == OP_PREC_BF16 ? dnnl_bf16 : dnnl_f32; }

static int64_t fbits(float f) {
    uint32_t u;
    if (f == 0.0f) f = 0.0f;
    memcpy(&u, &f, sizeof u);
    return u;
}

static int64_t out_dim(int64_t in, int k, int stride, int pad) {
    int64_t span = in + 2 * (int64_t)pad - k;
    return span < 0 ? 0 : span / stride + 1;
}

void op_conv2d_out_hw(const op_conv2d *c, int64_t H, int64_t W, int64_t *Ho, int64_t *Wo) {
    *Ho = out_dim(H, c->kh, c->stride, c->pad);
    *Wo = out_dim(W, c->kw, c->stride, c->pad);
}

/* Activation desc [B, C, H, W] in NHWC (tag nhwc) or any. */
static dnnl_status_t act_md(dnnl_memory_desc_t *md, int64_t B, int64_t C, int64_t H, int64_t W,
                            dnnl_data_type_t dt, dnnl_format_tag_t tag) {
    dnnl_dims_t d = {B, C, H, W};
    return dnnl_memory_desc_init_by_tag(md, 4, d, dt, tag);
}

/* A convolution pd; wmd NULL = weights "any". Returns the status without
 * setting an error. */
static dnnl_status_t conv_pd(dnnl_primitive_desc_t *pd, const op_conv2d *c, int64_t B, int64_t H,
                             int64_t W, dnnl_alg_kind_t alg, dnnl_format_tag_t tag,
                             const dnnl_memory_desc_t *wmd, float beta) {
    dnnl_memory_desc_t s, w, b, d;
    dnnl_convolution_desc_t desc;
    dnnl_primitive_attr_t attr = NULL;
    dnnl_dims_t wd = {c->c_out, c->c_in, c->kh, c->kw}, bd = {c->c_out};
    dnnl_dims_t strides = {c->stride, c->stride}, pad = {c->pad, c->pad};
    int64_t Ho = out_dim(H, c->kh, c->stride, c->pad), Wo = out_dim(W, c->kw, c->stride, c->pad);
    dnnl_status_t st;
    *pd = NULL;
    if ((st = act_md(&s, B, c->c_in, H, W, dt_of(c->prec), tag)) != dnnl_success) return st;
    if ((st = act_md(&d, B, c->c_out, Ho, Wo, dnnl_f32, tag)) != dnnl_success) return st;
    if (wmd)
        w = *wmd;
    else if ((st = dnnl_memory_desc_init_by_tag(&w, 4, wd, dt_of(c->prec), dnnl_format_tag_any)) !=
             dnnl_success)
        return st;
    if ((st = dnnl_memory_desc_init_by_tag(&b, 1, bd, dnnl_f32, dnnl_a)) != dnnl_success) return st;
    st = dnnl_convolution_forward_desc_init(&desc, dnnl_forward_inference, alg, &s, &w,
                                            c->bias ? &b : NULL, &d, strides, pad, pad);
    if (st != dnnl_success) return st;
    if (op_attr_make(&attr, 1.0f, beta, "op_conv2d") != LMX_OK) return dnnl_runtime_error;
    st = op_dnnl_room() ? dnnl_primitive_desc_create(pd, &desc, attr, op_dnnl_engine(), NULL)
                        : dnnl_out_of_memory;
    if (st != dnnl_success) *pd = NULL;
    dnnl_primitive_attr_destroy(attr);
    return st;
}

lmx_status op_conv2d_create(op_conv2d **out, const float *w, const float *bias, int64_t c_out,
                            int64_t c_in, int kh, int kw, int stride, int pad, op_prec prec,
                            unsigned flags) {
    static const char *what = "op_conv2d_create";
    dnnl_primitive_desc_t pd = NULL;
    lmx_status rc = LMX_OK;
    dnnl_status_t st;
    op_conv2d *c = NULL;
    if (!out) return lmx_err(LMX_ERR_ARG, "%s: out is NULL", what);
    *out = NULL;
    if (!w) return lmx_err(LMX_ERR_ARG, "%s: weights are NULL", what);
    if (c_out < 1 || c_in < 1 || kh < 1 || kw < 1 || kh > 64 || kw > 64 ||
        c_out > ((int64_t)1 << 36) / c_in)
        return lmx_err(LMX_ERR_SHAPE, "%s: bad weight shape [%lld, %lld, %d, %d]", what,
                       (long long)c_out, (long long)c_in, kh, kw);
    if (stride < 1 || pad < 0 || pad > 64)
        return lmx_err(LMX_ERR_ARG, "%s: stride %d pad %d out of range", what, stride, pad);
    if (prec != OP_PREC_F32 && prec != OP_PREC_BF16)
        return lmx_err(LMX_ERR_ARG, "%s: unknown precision %d", what, (int)prec);
    if (prec == OP_PREC_BF16 && op_bf16_check(what) != LMX_OK) return LMX_ERR_UNSUPPORTED;
    if (flags & ~(unsigned)OP_CONV_WINOGRAD)
        return lmx_err(LMX_ERR_ARG, "%s: unknown flags 0x%x", what, flags);
    if (!op_dnnl_engine()) return LMX_ERR_BACKEND;

    c = lmx_calloc(1, sizeof *c);
    if (!c) return lmx_err(LMX_ERR_NOMEM, "%s: %zu bytes", what, sizeof *c);
    c->c_out = c_out;
    c->c_in = c_in;
    c->kh = kh;
    c->kw = kw;
    c->stride = stride;
    c->pad = pad;
    c->prec = prec;
    c->flags = flags;

    if (kh == 1 && kw == 1 && stride == 1 && pad == 0) {
        if (flags & OP_CONV_WINOGRAD)
            lmx_debug("%s: [%lld, %lld, 1, 1]: Winograd does not apply to 1x1; a plain matmul",
                      what, (long long)c_out, (long long)c_in);
        rc = op_linear_create(&c->lin, w, bias, c_out, c_in, prec);
        if (rc != LMX_OK) goto fail;
        *out = c;
        return LMX_OK;
    }
    if (bias) {
        c->bias = lmx_alloc_aligned(sizeof(float) * (size_t)c_out);
        if (!c->bias) {
            rc = lmx_err(LMX_ERR_NOMEM, "%s: bias [%lld]", what, (long long)c_out);
            goto fail;
        }
        memcpy(c->bias, bias, sizeof(float) * (size_t)c_out);
    }
    const int64_t ref = LMX_MAX(CONV_REF_HW, LMX_MAX(kh, kw));
    st = conv_pd(&pd, c, 1, ref, ref, dnnl_convolution_direct, dnnl_nhwc, NULL, 0.0f);
    if (st != dnnl_success) {
        rc = lmx_err(st == dnnl_out_of_memory ? LMX_ERR_NOMEM : LMX_ERR_BACKEND,
                     "%s: [%lld, %lld, %d, %d] stride %d pad %d %s: "
                     "convolution primitive desc: %s",
                     what, (long long)c_out, (long long)c_in, kh, kw, stride, pad,
                     prec == OP_PREC_BF16 ? "bf16" : "f32", dnnl_status2str(st));
        goto fail;
    }
    {
        dnnl_memory_desc_t umd;
        dnnl_dims_t wd = {c_out, c_in, kh, kw};
        const dnnl_memory_desc_t *pmd = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
        if ((st = dnnl_memory_desc_init_by_tag(&umd, 4, wd, dnnl_f32, dnnl_oihw)) != dnnl_success) {
            rc = op_dnnl_err(st, what, "weights desc");
            goto fail;
        }
        rc = op_wpack_init(&c->w, &umd, w, pmd, what);
        if (rc != LMX_OK) goto fail;
        if (lmx_log_enabled(LMX_LOG_DEBUG)) {
            char buf[160];
            op_md_str(buf, sizeof buf, pmd);
            lmx_debug("%s: [%lld, %lld, %d, %d] s%d p%d packed as %s (%zu bytes) for %s", what,
                      (long long)c_out, (long long)c_in, kh, kw, stride, pad, buf, c->w.bytes,
                      op_pd_impl(pd));
        }
    }
    dnnl_primitive_desc_destroy(pd);
    pd = NULL;

    if (flags & OP_CONV_WINOGRAD) {
        if (kh != 3 || kw != 3 || stride != 1 || prec != OP_PREC_F32) {
            lmx_debug("%s: [%lld, %lld, %d, %d] s%d %s: Winograd needs 3x3 stride 1 fp32; direct",
                      what, (long long)c_out, (long long)c_in, kh, kw, stride,
                      prec == OP_PREC_BF16 ? "bf16" : "f32");
        } else {
            st = conv_pd(&pd, c, 1, ref, ref, dnnl_convolution_winograd, dnnl_format_tag_any, NULL,
                         0.0f);
            if (st == dnnl_success) {
                c->wino = 1;
                lmx_debug("%s: [%lld, %lld, 3, 3]: Winograd available (%s)", what, (long long)c_out,
                          (long long)c_in, op_pd_impl(pd));
                dnnl_primitive_desc_destroy(pd);
                pd = NULL;
            } else {
                lmx_debug("%s: [%lld, %lld, 3, 3]: oneDNN refuses Winograd (%s); direct", what,
                          (long long)c_out, (long long)c_in, dnnl_status2str(st));
            }
        }
    }
    *out = c;
    return LMX_OK;
fail:
    if (pd) dnnl_primitive_desc_destroy(pd);
    op_conv2d_free(c);
    return rc;
}

void op_conv2d_free(op_conv2d *c) {
    if (!c) return;
    op_linear_free(c->lin);
    op_wpack_release(&c->w);
    lmx_free(c->bias);
    lmx_free(c);
}

size_t op_conv2d_bytes(const op_conv2d *c) {
    if (!c) return 0;
    if (c->lin) return op_linear_bytes(c->lin);
    return op_wpack_bytes(&c->w) + (c->bias ? sizeof(float) * (size_t)c->c_out : 0);
}

/* The cached entry for one input shape. */
static lmx_status conv_entry(op_ctx *ctx, const op_conv2d *c, int64_t B, int64_t H, int64_t W,
                             float beta, op_entry **out) {
    static const char *what = "op_conv2d_fwd";
    op_key k;
    memset(&k, 0, sizeof k);
    k.v[0] = OP_KIND_CONV;
    k.v[1] = B;
    k.v[2] = H;
    k.v[3] = W;
    k.v[4] = c->c_in;
    k.v[5] = c->c_out;
    k.v[6] = c->kh;
    k.v[7] = c->kw;
    k.v[8] = c->stride;
    k.v[9] = c->pad;
    k.v[10] = c->prec;
    k.v[11] = c->bias != NULL;
    k.v[12] = fbits(beta);
    k.v[13] = c->wino;
    k.v[14] = op_nthr();
    k.v[15] = (int64_t)op_wpack_hash(&c->w);
    op_entry *e = op_cache_find(ctx, &k);
    if (e) {
        *out = e;
        return LMX_OK;
    }

    const int64_t Ho = out_dim(H, c->kh, c->stride, c->pad),
                  Wo = out_dim(W, c->kw, c->stride, c->pad);
    dnnl_primitive_desc_t pd = NULL;
    lmx_status rc = LMX_OK;
    dnnl_status_t st = dnnl_unimplemented;
    e = lmx_calloc(1, sizeof *e);
    if (!e) return lmx_err(LMX_ERR_NOMEM, "%s: cache entry", what);
    e->key = k;
    e->mode = CONV_DIRECT;
    /* oneDNN 2.6 brgconv bug: with a bias, a sum post-op and padding >= a
     * kernel side (kh = 1, pad 1, ...), outputs next to the padding come out
     * wrong. There the primitive writes conv + bias to a temporary and
     * y = tmp + beta·y is added here (same rounding as the fused sum). */
    const int sep_sum = c->bias && beta != 0.0f && (c->pad >= c->kh || c->pad >= c->kw);
    const float pbeta = sep_sum ? 0.0f : beta;
    if (c->wino && !sep_sum) {
        st = conv_pd(&pd, c, B, H, W, dnnl_convolution_winograd, dnnl_format_tag_any, NULL, beta);
        if (st == dnnl_success)
            e->mode = CONV_WINO;
        else
            lmx_debug("%s: B=%lld H=%lld W=%lld C=%lld->%lld: oneDNN refuses Winograd (%s); "
                      "direct",
                      what, (long long)B, (long long)H, (long long)W, (long long)c->c_in,
                      (long long)c->c_out, dnnl_status2str(st));
    }
    if (e->mode == CONV_DIRECT) {
        /* The packed layout, unless only oneDNN's reference kernel takes it
         * for this shape or it costs the kernel oneDNN would pick: then
         * oneDNN's choice, and the weights get a second packed copy. */
        dnnl_primitive_desc_t pany = NULL;
        dnnl_memory_desc_t wmd;
        uint64_t wh;
        op_wpack_layout(&c->w, &wmd, &wh);
        st = conv_pd(&pd, c, B, H, W, dnnl_convolution_direct, dnnl_nhwc, &wmd, pbeta);
        dnnl_status_t st2 =
            conv_pd(&pany, c, B, H, W, dnnl_convolution_direct, dnnl_nhwc, NULL, pbeta);
        if (st2 == dnnl_success &&
            (st != dnnl_success || strcmp(op_pd_impl(pd), op_pd_impl(pany)) != 0)) {
            lmx_debug("%s: B=%lld H=%lld W=%lld C=%lld->%lld: packed layout gives %s, oneDNN "
                      "prefers %s with another weights layout (weights re-packed or copied)",
                      what, (long long)B, (long long)H, (long long)W, (long long)c->c_in,
                      (long long)c->c_out, st == dnnl_success ? op_pd_impl(pd) : "nothing",
                      op_pd_impl(pany));
            if (pd) dnnl_primitive_desc_destroy(pd);
            pd = pany;
            st = st2;
        } else if (pany) {
            dnnl_primitive_desc_destroy(pany);
        }
    }
    if (st != dnnl_success) {
        rc = lmx_err(st == dnnl_out_of_memory ? LMX_ERR_NOMEM : LMX_ERR_BACKEND,
                     "%s: B=%lld H=%lld W=%lld [%lld, %lld, %d, %d] s%d p%d %s: "
                     "convolution primitive desc: %s",
                     what, (long long)B, (long long)H, (long long)W, (long long)c->c_out,
                     (long long)c->c_in, c->kh, c->kw, c->stride, c->pad,
                     c->prec == OP_PREC_BF16 ? "bf16" : "f32", dnnl_status2str(st));
        goto fail;
    }
    rc = op_entry_init_main(e, pd, c->bias != NULL, what);
    if (rc != LMX_OK) goto fail;
    {
        /* Reorders between the caller's NHWC f32 and what the kernel takes. */
        dnnl_memory_desc_t xs, ys;
        const dnnl_memory_desc_t *ps = dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0);
        const dnnl_memory_desc_t *pdst = dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0);
        if ((st = act_md(&xs, B, c->c_in, H, W, dnnl_f32, dnnl_nhwc)) != dnnl_success ||
            (st = act_md(&ys, B, c->c_out, Ho, Wo, dnnl_f32, dnnl_nhwc)) != dnnl_success) {
            rc = op_dnnl_err(st, what, "activation desc");
            goto fail;
        }
        dnnl_memory_desc_t xb;
        if ((st = act_md(&xb, B, c->c_in, H, W, dnnl_bf16, dnnl_nhwc)) != dnnl_success) {
            rc = op_dnnl_err(st, what, "activation desc");
            goto fail;
        }
        if (dnnl_memory_desc_equal(&xb, ps)) { /* NHWC bf16: our converter */
            e->mode |= CONV_CVT;
            e->src_bytes = dnnl_memory_desc_get_size(ps);
        } else if (!dnnl_memory_desc_equal(&xs, ps)) {
            rc = op_reorder_make(&e->pre_src, &xs, ps, &e->scratch_bytes, what);
            if (rc != LMX_OK) goto fail;
            e->src_bytes = dnnl_memory_desc_get_size(ps);
        }
        if (!dnnl_memory_desc_equal(&ys, pdst)) {
            if (beta != 0.0f) {
                rc = op_reorder_make(&e->pre_dst, &ys, pdst, &e->scratch_bytes, what);
                if (rc != LMX_OK) goto fail;
            }
            rc = op_reorder_make(&e->post_dst, pdst, &ys, &e->scratch_bytes, what);
            if (rc != LMX_OK) goto fail;
            e->dst_bytes = dnnl_memory_desc_get_size(pdst);
        }
    }
    if (sep_sum) {
        e->mode |= CONV_SEPSUM;
        e->dst_bytes = sizeof(float) * (size_t)(B * Ho * Wo * c->c_out);
    }
    if (!strncmp(e->impl, "ref", 3))
        lmx_warn("%s: B=%lld H=%lld W=%lld [%lld, %lld, %d, %d] runs on oneDNN's slow reference "
                 "kernel (%s)",
                 what, (long long)B, (long long)H, (long long)W, (long long)c->c_out,
                 (long long)c->c_in, c->kh, c->kw, e->impl);
    lmx_debug("%s: new primitive B=%lld H=%lld W=%lld [%lld, %lld, %d, %d] s%d p%d %s%s "
              "beta=%g: %s%s",
              what, (long long)B, (long long)H, (long long)W, (long long)c->c_out,
              (long long)c->c_in, c->kh, c->kw, c->stride, c->pad,
              c->prec == OP_PREC_BF16 ? "bf16" : "f32", c->bias ? " bias" : "", (double)beta,
              e->impl,
              e->pre_src.p || e->post_dst.p ? " (with layout reorders)"
              : (e->mode & CONV_CVT)        ? " (bf16 input converted)"
                                            : "");
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

lmx_status op_conv2d_fwd(op_ctx *ctx, const op_conv2d *c, const float *x, float *y, int64_t B,
                         int64_t H, int64_t W, float beta) {
    static const char *what = "op_conv2d_fwd";
    if (!ctx || !c) return lmx_err(LMX_ERR_ARG, "%s: NULL context or conv", what);
    if (B < 0 || H < 1 || W < 1 || H > ((int64_t)1 << 20) || W > ((int64_t)1 << 20))
        return lmx_err(LMX_ERR_SHAPE, "%s: bad input shape B=%lld H=%lld W=%lld", what,
                       (long long)B, (long long)H, (long long)W);
    int64_t Ho, Wo;
    op_conv2d_out_hw(c, H, W, &Ho, &Wo);
    if (Ho < 1 || Wo < 1)
        return lmx_err(LMX_ERR_SHAPE,
                       "%s: input %lldx%lld is smaller than the %dx%d kernel "
                       "(pad %d)",
                       what, (long long)H, (long long)W, c->kh, c->kw, c->pad);
    if (B == 0) return LMX_OK;
    if (!x || !y) return lmx_err(LMX_ERR_ARG, "%s: NULL x or y", what);
    if (beta == 0.0f) beta = 0.0f;
    if (c->lin) return op_linear_fwd(ctx, c->lin, x, 0, y, 0, B * H * W, beta);

    op_entry *e = NULL;
    const void *w = NULL;
    lmx_status rc = conv_entry(ctx, c, B, H, W, beta, &e);
    if (rc != LMX_OK) return rc;
    rc = op_wpack_get(ctx, &c->w, &e->wei_md, &w, what);
    if (rc != LMX_OK) return rc;
    void *scr = op_ctx_scratch(ctx, OP_SCRATCH_DNNL, e->scratch_bytes);
    if (!scr) return LMX_ERR_NOMEM;
    void *src = (void *)x, *dst = y;
    if (e->mode & CONV_CVT) {
        src = op_ctx_scratch(ctx, OP_SCRATCH_SRC, e->src_bytes);
        if (!src) return LMX_ERR_NOMEM;
        const int64_t n = B * H * W * c->c_in;
        op_cvt_rows_bf16(src, x, n, 1, n);
    } else if (e->pre_src.p) {
        src = op_ctx_scratch(ctx, OP_SCRATCH_SRC, e->src_bytes);
        if (!src) return LMX_ERR_NOMEM;
        void *p[] = {(void *)x, src, scr};
        if ((rc = op_prim_run(ctx, &e->pre_src, p, what)) != LMX_OK) return rc;
    }
    if (e->post_dst.p || (e->mode & CONV_SEPSUM)) {
        dst = op_ctx_scratch(ctx, OP_SCRATCH_DST, e->dst_bytes);
        if (!dst) return LMX_ERR_NOMEM;
        if (e->pre_dst.p) {
            void *p[] = {y, dst, scr};
            if ((rc = op_prim_run(ctx, &e->pre_dst, p, what)) != LMX_OK) return rc;
        }
    }
    {
        void *p[5];
        int n = 0;
        p[n++] = src;
        p[n++] = (void *)w;
        if (c->bias) p[n++] = c->bias;
        p[n++] = dst;
        p[n++] = scr;
        if ((rc = op_prim_run(ctx, &e->main, p, what)) != LMX_OK) return rc;
    }
    if (e->post_dst.p) {
        void *p[] = {dst, y, scr};
        if ((rc = op_prim_run(ctx, &e->post_dst, p, what)) != LMX_OK) return rc;
    }
    if (e->mode & CONV_SEPSUM) {
        const float *t = dst;
        const int64_t n = (int64_t)(e->dst_bytes / sizeof(float));
#pragma omp parallel for schedule(static) if (n > 65536)
        for (int64_t i = 0; i < n; i++) y[i] = t[i] + (beta == 1.0f ? y[i] : beta * y[i]);
    }
    return LMX_OK;
}
