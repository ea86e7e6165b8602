/*
 * test_conv.c - op_conv2d_fwd (oneDNN, NHWC) against its naive twin
 * ref_conv2d (double accumulation) on odd shapes: H/W odd, stride 1/2, pad
 * 0/1/2, 1x1 (the linear path), 3x3, 5x5, 1x3, channels 3/4/5/33, bias,
 * beta = 0/1, bf16, Winograd, several input sizes through one conv object,
 * determinism and argument errors.
 *
 * Tolerances (inputs N(0,1), weights N(0,1)/sqrt(C_in·kh·kw)):
 *   f32 direct vs ref:            atol 1e-4, rtol 1e-4
 *   Winograd vs ref:              atol 5e-4, rtol 5e-4 (the tile transforms
 *                                 add a few ulps of rounding), and vs direct
 *   bf16 vs ref on bf16-rounded x, W: atol 1e-4, rtol 1e-4
 *   bf16 vs the f32 ref:          atol 3e-2, rtol 3e-2, rms error <= 1e-2.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "ops/ops.h"
#include "ops/ref/ref.h"

static op_ctx *g_ctx;

typedef struct conv_shape {
    int64_t B, H, W, ci, co;
    int kh, kw, stride, pad;
} conv_shape;

static int64_t odim(int64_t in, int k, int s, int p) { return (in + 2 * p - k) / s + 1; }

/* Run one conv configuration; returns the output (caller frees) for
 * cross-checks, or NULL. */
static float *conv_case(const conv_shape *s, int with_bias, float beta, op_prec prec,
                        unsigned flags, uint64_t seed, double atol, double rtol) {
    if (prec == OP_PREC_BF16 && !lmx_test_bf16()) return NULL;
    char what[200];
    snprintf(what, sizeof what,
             "conv B=%lld %lldx%lld %lld->%lld k%dx%d s%d p%d bias=%d beta=%g %s%s",
             (long long)s->B, (long long)s->H, (long long)s->W, (long long)s->ci, (long long)s->co,
             s->kh, s->kw, s->stride, s->pad, with_bias, (double)beta,
             prec == OP_PREC_BF16 ? "bf16" : "f32", flags & OP_CONV_WINOGRAD ? " winograd" : "");
    const int64_t Ho = odim(s->H, s->kh, s->stride, s->pad),
                  Wo = odim(s->W, s->kw, s->stride, s->pad);
    const int64_t nx = s->B * s->H * s->W * s->ci, ny = s->B * Ho * Wo * s->co;
    const int64_t nw = s->co * s->ci * s->kh * s->kw;
    float *w = lmx_test_randn(nw, seed, 1.0f / sqrtf((float)(s->ci * s->kh * s->kw)));
    float *b = with_bias ? lmx_test_randn(s->co, seed + 1, 0.5f) : NULL;
    float *x = lmx_test_randn(nx, seed + 2, 1.0f);
    float *y0 = lmx_test_randn(ny, seed + 3, 1.0f);
    float *y = lmx_test_floats(ny), *yr = lmx_test_floats(ny);
    memcpy(y, y0, sizeof(float) * (size_t)ny);
    memcpy(yr, y0, sizeof(float) * (size_t)ny);
    if (beta == 0.0f)
        for (int64_t i = 0; i < ny; i += 2) y[i] = NAN; /* beta = 0 never reads y */

    op_conv2d *c = NULL;
    CHECK_OK(
        op_conv2d_create(&c, w, b, s->co, s->ci, s->kh, s->kw, s->stride, s->pad, prec, flags));
    if (!c) goto fail;
    {
        int64_t ho, wo;
        op_conv2d_out_hw(c, s->H, s->W, &ho, &wo);
        CHECK(ho == Ho && wo == Wo, "%s: out_hw %lldx%lld", what, (long long)ho, (long long)wo);
    }
    CHECK_OK(op_conv2d_fwd(g_ctx, c, x, y, s->B, s->H, s->W, beta));
    ref_conv2d(w, b, s->co, s->ci, s->kh, s->kw, s->stride, s->pad, x, yr, s->B, s->H, s->W, beta);
    if (prec == OP_PREC_F32) {
        lmx_cmp_f32(what, y, yr, ny, atol, rtol);
    } else {
        char w2[240];
        snprintf(w2, sizeof w2, "%s vs f32", what);
        lmx_cmp_f32(w2, y, yr, ny, 3e-2, 3e-2);
        double rr = lmx_rel_rms(y, yr, ny);
        CHECK(rr <= 1e-2, "%s: bf16 rms relative error %.3g", what, rr);
        lmx_round_bf16(w, nw);
        lmx_round_bf16(x, nx);
        memcpy(yr, y0, sizeof(float) * (size_t)ny);
        ref_conv2d(w, b, s->co, s->ci, s->kh, s->kw, s->stride, s->pad, x, yr, s->B, s->H, s->W,
                   beta);
        snprintf(w2, sizeof w2, "%s vs bf16-rounded ref", what);
        lmx_cmp_f32(w2, y, yr, ny, atol, rtol);
    }
    {
        float *y2 = lmx_test_floats(ny);
        memcpy(y2, y0, sizeof(float) * (size_t)ny);
        memcpy(yr, y0, sizeof(float) * (size_t)ny);
        if (prec == OP_PREC_BF16) lmx_fill_randn(x, nx, seed + 2, 1.0f); /* undo the rounding */
        CHECK_OK(op_conv2d_fwd(g_ctx, c, x, y2, s->B, s->H, s->W, beta));
        CHECK_OK(op_conv2d_fwd(g_ctx, c, x, yr, s->B, s->H, s->W, beta));
        CHECK(!memcmp(yr, y2, sizeof(float) * (size_t)ny), "%s: not bitwise reproducible", what);
        lmx_free(y2);
    }
    op_conv2d_free(c);
    lmx_free(w);
    lmx_free(b);
    lmx_free(x);
    lmx_free(y0);
    lmx_free(yr);
    return y;
fail:
    lmx_free(w);
    lmx_free(b);
    lmx_free(x);
    lmx_free(y0);
    lmx_free(y);
    lmx_free(yr);
    return NULL;
}

static void test_shapes(void) {
    static const conv_shape shapes[] = {
        {1, 5, 7, 3, 4, 3, 3, 1, 1},     {2, 9, 6, 4, 5, 3, 3, 2, 1},
        {1, 8, 8, 33, 16, 3, 3, 1, 0},   {1, 7, 9, 5, 33, 1, 1, 1, 0},
        {1, 6, 7, 8, 8, 1, 1, 2, 0},     {1, 11, 13, 16, 32, 3, 3, 2, 1},
        {1, 16, 16, 64, 64, 3, 3, 1, 1}, {1, 10, 9, 4, 6, 5, 5, 2, 2},
        {2, 5, 6, 3, 5, 1, 3, 1, 1},     {1, 3, 3, 33, 4, 3, 3, 1, 1},
        {1, 2, 2, 5, 3, 3, 3, 2, 1},     {1, 12, 10, 33, 40, 3, 3, 2, 0},
        {3, 4, 5, 128, 8, 3, 3, 1, 1},   {1, 1, 1, 4, 5, 3, 3, 1, 1},
    };
    uint64_t seed = 1;
    for (size_t i = 0; i < LMX_ARRAY_LEN(shapes); i++) {
        const conv_shape *s = &shapes[i];
        float *y;
        y = conv_case(s, 1, 0.0f, OP_PREC_F32, 0, seed += 10, 1e-4, 1e-4);
        lmx_free(y);
        y = conv_case(s, 0, 1.0f, OP_PREC_F32, 0, seed += 10, 1e-4, 1e-4);
        lmx_free(y);
        y = conv_case(s, 1, 1.0f, OP_PREC_BF16, 0, seed += 10, 1e-4, 1e-4);
        lmx_free(y);
        /* Winograd where it does not apply must quietly run direct. */
        if (s->kh != 3 || s->stride != 1) {
            y = conv_case(s, 1, 0.0f, OP_PREC_F32, OP_CONV_WINOGRAD, seed += 10, 1e-4, 1e-4);
            lmx_free(y);
        }
    }
}

/* Every small kernel shape x padding x stride x bias x beta: padding that
 * reaches past a kernel side (kh = 1, pad 1) hits a oneDNN 2.6 brgconv bug
 * with bias + sum that conv.c works around. */
static void test_padding_sweep(void) {
    uint64_t seed = 3000;
    for (int kh = 1; kh <= 3; kh++)
        for (int kw = 1; kw <= 3; kw++)
            for (int pad = 0; pad <= 3; pad++)
                for (int stride = 1; stride <= 2; stride++)
                    for (int m = 0; m < 4; m++) {
                        conv_shape s = {1, 6, 7, 16, 16, kh, kw, stride, pad};
                        op_prec prec = (m == 3 && pad == 1) ? OP_PREC_BF16 : OP_PREC_F32;
                        float *y =
                            conv_case(&s, m & 1, (float)(m >> 1), prec, 0, seed++, 1e-4, 1e-4);
                        lmx_free(y);
                    }
}

/* Winograd vs direct (same weights and input) and vs the reference. */
static void test_winograd(void) {
    static const conv_shape shapes[] = {
        {1, 16, 16, 64, 64, 3, 3, 1, 1}, /* 4x3 tiles */
        {1, 7, 9, 33, 5, 3, 3, 1, 1},    /* 2x3 tiles, odd everything */
        {2, 12, 10, 16, 48, 3, 3, 1, 0}, /* pad 0 */
        {1, 24, 20, 96, 64, 3, 3, 1, 1},
    };
    for (size_t i = 0; i < LMX_ARRAY_LEN(shapes); i++) {
        for (int beta = 0; beta < 2; beta++) {
            float *yd = conv_case(&shapes[i], 1, (float)beta, OP_PREC_F32, 0, 777 + i, 1e-4, 1e-4);
            float *yw = conv_case(&shapes[i], 1, (float)beta, OP_PREC_F32, OP_CONV_WINOGRAD,
                                  777 + i, 5e-4, 5e-4);
            const conv_shape *s = &shapes[i];
            int64_t ny = s->B * odim(s->H, 3, 1, s->pad) * odim(s->W, 3, 1, s->pad) * s->co;
            if (yd && yw) {
                char what[96];
                snprintf(what, sizeof what, "winograd vs direct #%zu beta=%d", i, beta);
                lmx_cmp_f32(what, yw, yd, ny, 5e-4, 5e-4);
                if (lmx_test_verbose())
                    printf("winograd #%zu rms rel diff vs direct %.3g\n", i, lmx_rel_rms(yw, yd, ny));
            }
            lmx_free(yd);
            lmx_free(yw);
        }
    }
}

/* One conv object at several input sizes and batches (the primitive and, for
 * Winograd, the transformed weights differ per size). */
static void test_many_sizes(void) {
    const int64_t ci = 32, co = 48;
    float *w = lmx_test_randn(co * ci * 9, 3, 1.0f / sqrtf((float)(ci * 9))), *b = lmx_test_randn(co, 4, 0.5f);
    static const int64_t sizes[][3] = {{1, 16, 16}, {2, 8, 8}, {1, 5, 7}, {1, 32, 32}, {1, 16, 16}};
    for (int mode = 0; mode < 3; mode++) {
        op_prec prec = mode == 2 ? OP_PREC_BF16 : OP_PREC_F32;
        if (prec == OP_PREC_BF16 && !lmx_test_bf16()) continue;
        unsigned flags = mode == 1 ? OP_CONV_WINOGRAD : 0;
        op_conv2d *c = NULL;
        CHECK_OK(op_conv2d_create(&c, w, b, co, ci, 3, 3, 1, 1, prec, flags));
        if (!c) continue;
        size_t bytes0 = op_conv2d_bytes(c);
        CHECK(bytes0 >= (size_t)(co * ci * 9 * (prec == OP_PREC_BF16 ? 2 : 4)), "bytes %zu",
              bytes0);
        for (size_t i = 0; i < LMX_ARRAY_LEN(sizes); i++) {
            int64_t B = sizes[i][0], H = sizes[i][1], W = sizes[i][2];
            float *x = lmx_test_randn(B * H * W * ci, 10 + i, 1.0f);
            float *y = lmx_test_floats(B * H * W * co), *yr = lmx_test_floats(B * H * W * co);
            CHECK_OK(op_conv2d_fwd(g_ctx, c, x, y, B, H, W, 0.0f));
            ref_conv2d(w, b, co, ci, 3, 3, 1, 1, x, yr, B, H, W, 0.0f);
            char what[96];
            snprintf(what, sizeof what, "one conv, mode %d, B=%lld %lldx%lld", mode, (long long)B,
                     (long long)H, (long long)W);
            if (prec == OP_PREC_BF16)
                lmx_cmp_f32(what, y, yr, B * H * W * co, 3e-2, 3e-2);
            else
                lmx_cmp_f32(what, y, yr, B * H * W * co, 5e-4, 5e-4);
            lmx_free(x);
            lmx_free(y);
            lmx_free(yr);
        }
        if (lmx_test_verbose())
            printf("conv mode %d: %zu bytes after create, %zu after all sizes\n", mode, bytes0,
                   op_conv2d_bytes(c));
        op_conv2d_free(c);
    }
    lmx_free(w);
    lmx_free(b);
}

static void test_errors(void) {
    float w[4 * 3 * 9] = {0}, x[64] = {0}, y[64] = {0};
    op_conv2d *c = NULL;
    CHECK(op_conv2d_create(&c, w, NULL, 4, 3, 3, 3, 0, 1, OP_PREC_F32, 0) == LMX_ERR_ARG,
          "stride 0 accepted");
    CHECK(op_conv2d_create(&c, w, NULL, 4, 3, 3, 3, 1, 1, OP_PREC_F32, 8) == LMX_ERR_ARG,
          "unknown flag accepted");
    CHECK(op_conv2d_create(&c, w, NULL, 4, 0, 3, 3, 1, 1, OP_PREC_F32, 0) == LMX_ERR_SHAPE,
          "C_in 0 accepted");
    CHECK(op_conv2d_create(&c, NULL, NULL, 4, 3, 3, 3, 1, 1, OP_PREC_F32, 0) == LMX_ERR_ARG,
          "NULL weights accepted");
    CHECK(c == NULL, "out set on failure");
    CHECK_OK(op_conv2d_create(&c, w, NULL, 4, 3, 3, 3, 1, 0, OP_PREC_F32, 0));
    lmx_status st = op_conv2d_fwd(g_ctx, c, x, y, 1, 2, 5, 0.0f);
    CHECK(st == LMX_ERR_SHAPE && strstr(lmx_errmsg(), "2x5"), "input smaller than kernel: %s",
          lmx_errmsg());
    CHECK(op_conv2d_fwd(g_ctx, c, x, y, 1, 0, 5, 0.0f) == LMX_ERR_SHAPE, "H=0 accepted");
    CHECK_OK(op_conv2d_fwd(g_ctx, c, NULL, NULL, 0, 3, 3, 0.0f)); /* B = 0: nothing to do */
    op_conv2d_free(c);
    op_conv2d_free(NULL);
}

int main(void) {
    if (getenv("LMX_DEBUG")) lmx_log_set(LMX_LOG_DEBUG, NULL, NULL);
    lmx_set_threads(2);
    CHECK_OK(op_ctx_create(&g_ctx));
    if (!g_ctx) return lmx_test_finish();
    test_shapes();
    test_padding_sweep();
    test_winograd();
    test_many_sizes();
    test_errors();
    op_ctx_free(g_ctx);
    return lmx_test_finish();
}
