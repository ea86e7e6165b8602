/*
 * test_nn.c - the nn_layer LoRA hook (src/model/nn.h): the per-sample side
 * path y_s += c_s·(alpha/r)·up(down(x_s)) against a merged weight
 * W + c·(alpha/r)·B·A computed in double, for
 *   - a linear layer, 3 samples with different scales per sample, two
 *     adapters (list order), rows beyond the side path's chunk size, and
 *     the row-slice form (nn_linear_rows with row0) used by chunked callers;
 *   - a 3x3 conv with conv adapters (down: the base kernel/stride/pad, up 1x1);
 *   - a 1x1 conv with linear adapters;
 *   - a private merged kernel replacing the base one;
 *   - attach errors (shape, kind) and the generated-weights source.
 */
#include <math.h>
#include <string.h>

#include "harness.h"
#include "model/nn.h"
#include "ops/ref/ref.h"

/* Weights from a seeded generator: "name" -> deterministic values. */
static lmx_status gen(void *user, const char *name, int ndim, const int64_t *shape, float *dst) {
    (void)user;
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) n *= shape[i];
    uint64_t seed = 1469598103934665603ull;
    for (const char *p = name; *p; p++) seed = (seed ^ (uint8_t)*p) * 1099511628211ull;
    lmx_fill_randn(dst, n, seed, 0.3f);
    return LMX_OK;
}

static op_linear *mk_linear(const float *w, int64_t n_out, int64_t n_in) {
    op_linear *l = NULL;
    CHECK_OK(op_linear_create(&l, w, NULL, n_out, n_in, OP_PREC_F32));
    return l;
}

/* merged[N, K] = W + sum_a c_a·B_a·A_a (double) */
static void merge(const float *W, int64_t N, int64_t K, int n_ad, const float *const *A, const float *const *B,
                  const int *r, const double *c, float *out) {
    for (int64_t o = 0; o < N; o++)
        for (int64_t k = 0; k < K; k++) {
            double s = W[o * K + k];
            for (int a = 0; a < n_ad; a++)
                for (int j = 0; j < r[a]; j++) s += c[a] * (double)B[a][o * r[a] + j] * (double)A[a][j * K + k];
            out[o * K + k] = (float)s;
        }
}

static void test_linear(op_ctx *ctx) {
    enum { S = 3, ROWS = 700, K = 24, N = 20, R0 = 4, R1 = 3 };
    nn_src src = {.label = "test", .gen = gen};
    nn_layers reg = {0};
    nn_layer *l = NULL;
    CHECK_OK(nn_load_linear(&src, &reg, &l, "blk.lin", N, K, 1));
    if (!l) return;
    CHECK(l->w_src == NULL && nn_layer_weight_f32(l, NULL) == LMX_ERR_UNSUPPORTED, "generated layer has no source");
    float W[N * K], bias[N], A0[R0 * K], B0[N * R0], A1[R1 * K], B1[N * R1];
    gen(NULL, "blk.lin.weight", 2, (int64_t[]){N, K}, W);
    gen(NULL, "blk.lin.bias", 1, (int64_t[]){N}, bias);
    lmx_fill_randn(A0, R0 * K, 11, 0.5f);
    lmx_fill_randn(B0, N * R0, 12, 0.5f);
    lmx_fill_randn(A1, R1 * K, 13, 0.5f);
    lmx_fill_randn(B1, N * R1, 14, 0.5f);
    nn_adapter a0 = {.lora_index = 0, .rank = R0, .down = mk_linear(A0, R0, K), .up = mk_linear(B0, N, R0),
                     .alpha_over_rank = 0.5f};
    nn_adapter a1 = {.lora_index = 1, .rank = R1, .down = mk_linear(A1, R1, K), .up = mk_linear(B1, N, R1),
                     .alpha_over_rank = 2.0f};
    nn_hooks hk; /* the LoRA state of reg's layers */
    CHECK_OK(nn_hooks_init(&hk, &reg));
    CHECK_OK(nn_hooks_attach(&hk, l, &a0));
    CHECK_OK(nn_hooks_attach(&hk, l, &a1));
    nn_adapter bad = a0;
    bad.up = a1.up; /* [N, R1] with rank R0 */
    CHECK(nn_hooks_attach(&hk, l, &bad) == LMX_ERR_ARG && strstr(lmx_errmsg(), "blk.lin"), "bad adapter: %s", lmx_errmsg());
    CHECK(nn_hooks_max_rank(&hk) == R0, "max rank");

    /* scales [lora][sample] */
    float scale[2 * S] = {0.8f, 0.0f, 1.3f, /* lora 1: */ 0.0f, 0.5f, 0.5f};
    float *x = lmx_malloc(sizeof(float) * S * ROWS * K), *y = lmx_malloc(sizeof(float) * S * ROWS * N);
    float *y2 = lmx_malloc(sizeof(float) * S * ROWS * N), *ref = lmx_malloc(sizeof(float) * S * ROWS * N);
    lmx_fill_randn(x, S * ROWS * K, 5, 1.0f);
    lmx_arena ar = {0};
    int64_t sn = nn_lora_scratch_floats(R0, N, 0);
    CHECK_OK(lmx_arena_init(&ar, nn_bytes(sn) + 64));
    nn_run run = {.ctx = ctx, .hooks = &hk, .n_samples = S, .n_loras = 2, .lora_scale = scale, .arena = &ar};
    run.scratch = nn_alloc(&run, sn);
    run.scratch_n = sn;
    CHECK_OK(nn_linear(&run, l, x, y, S * ROWS, 0.0f));
    for (int s = 0; s < S; s++) {
        float Wm[N * K];
        const float *As[2] = {A0, A1}, *Bs[2] = {B0, B1};
        int rs[2] = {R0, R1};
        double cs[2] = {(double)scale[s] * 0.5, (double)scale[S + s] * 2.0};
        merge(W, N, K, 2, As, Bs, rs, cs, Wm);
        ref_linear(Wm, bias, N, K, x + (int64_t)s * ROWS * K, K, ref + (int64_t)s * ROWS * N, N, ROWS, 0.0f);
    }
    lmx_cmp_f32("linear side path vs merged weights (3 samples, 2 adapters)", y, ref, S * ROWS * N, 1e-4, 1e-4);

    /* the same in row slices crossing sample boundaries (as the chunked
     * feed-forward calls it). Not bitwise: oneDNN's AVX2 GEMM blocks by the
     * row count, so an M=333 call rounds a few sums differently from the
     * whole batch (seen: 1-2 ulp). A slice with the wrong rows, sample or
     * scale would be off by O(1). */
    for (int64_t r0 = 0; r0 < S * ROWS; r0 += 333) {
        int64_t m = LMX_MIN(333, S * ROWS - r0);
        CHECK_OK(nn_linear_rows(&run, l, x + r0 * K, y2 + r0 * N, m, ROWS, r0, 0.0f));
    }
    lmx_cmp_f32("row slices = whole batch", y2, y, S * ROWS * N, 1e-6, 1e-6);

    /* beta = 1 accumulates */
    memcpy(y2, y, sizeof(float) * S * ROWS * N);
    CHECK_OK(nn_linear(&run, l, x, y2, S * ROWS, 1.0f));
    for (int64_t i = 0; i < S * ROWS * N; i++) ref[i] = 2 * y[i];
    lmx_cmp_f32("beta = 1", y2, ref, S * ROWS * N, 1e-4, 1e-5);

    /* no scale table: the base layer only */
    nn_run plain = {.ctx = ctx, .hooks = &hk, .n_samples = S};
    CHECK_OK(nn_linear(&plain, l, x, y2, S * ROWS, 0.0f));
    ref_linear(W, bias, N, K, x, K, ref, N, S * ROWS, 0.0f);
    lmx_cmp_f32("no LoRA scales: base only", y2, ref, S * ROWS * N, 1e-4, 1e-4);

    /* a merged private kernel replaces the base one (adapters detached) */
    nn_hooks_detach_all(&hk);
    float Wm[N * K];
    const float *As[1] = {A0}, *Bs[1] = {B0};
    int rs[1] = {R0};
    double cs[1] = {0.8 * 0.5};
    merge(W, N, K, 1, As, Bs, rs, cs, Wm);
    op_linear *ml = NULL;
    CHECK_OK(op_linear_create(&ml, Wm, bias, N, K, OP_PREC_F32));
    CHECK_OK(nn_hooks_set_merged(&hk, l, ml, NULL));
    CHECK_OK(nn_linear(&plain, l, x, y2, S * ROWS, 0.0f));
    ref_linear(Wm, bias, N, K, x, K, ref, N, S * ROWS, 0.0f);
    lmx_cmp_f32("merged kernel", y2, ref, S * ROWS * N, 1e-4, 1e-4);
    CHECK_OK(nn_hooks_set_merged(&hk, l, NULL, NULL));

    op_linear_free(a0.down);
    op_linear_free(a0.up);
    op_linear_free(a1.down);
    op_linear_free(a1.up);
    lmx_free(x);
    lmx_free(y);
    lmx_free(y2);
    lmx_free(ref);
    lmx_arena_free(&ar);
    nn_hooks_free(&hk);
    nn_layers_free(&reg);
    nn_src_release(&src);
}

static void test_conv(op_ctx *ctx) {
    enum { S = 2, H = 9, W = 7, CI = 8, CO = 12, R = 3 };
    nn_src src = {.label = "test", .gen = gen};
    nn_layers reg = {0};
    nn_layer *l = NULL, *p = NULL;
    CHECK_OK(nn_load_conv(&src, &reg, &l, "blk.conv", CO, CI, 3, 2, 1, 1)); /* stride 2, like a downsampler */
    CHECK_OK(nn_load_conv(&src, &reg, &p, "blk.proj", CO, CI, 1, 1, 0, 1)); /* 1x1: runs as a linear */
    if (!l || !p) return;
    CHECK(l->conv && !l->lin && p->lin && !p->conv, "kernel kinds");
    float Wc[CO * CI * 9], bc[CO], A[R * CI * 9], B[CO * R], Wp[CO * CI], bp[CO], Ap[R * CI], Bp[CO * R];
    gen(NULL, "blk.conv.weight", 4, (int64_t[]){CO, CI, 3, 3}, Wc);
    gen(NULL, "blk.conv.bias", 1, (int64_t[]){CO}, bc);
    gen(NULL, "blk.proj.weight", 4, (int64_t[]){CO, CI, 1, 1}, Wp);
    gen(NULL, "blk.proj.bias", 1, (int64_t[]){CO}, bp);
    lmx_fill_randn(A, R * CI * 9, 21, 0.4f);
    lmx_fill_randn(B, CO * R, 22, 0.4f);
    lmx_fill_randn(Ap, R * CI, 23, 0.4f);
    lmx_fill_randn(Bp, CO * R, 24, 0.4f);
    nn_adapter ac = {.lora_index = 0, .rank = R, .alpha_over_rank = 1.0f};
    CHECK_OK(op_conv2d_create(&ac.down_conv, A, NULL, R, CI, 3, 3, 2, 1, OP_PREC_F32, 0));
    CHECK_OK(op_conv2d_create(&ac.up_conv, B, NULL, CO, R, 1, 1, 1, 0, OP_PREC_F32, 0));
    nn_adapter ap = {.lora_index = 0, .rank = R, .down = mk_linear(Ap, R, CI), .up = mk_linear(Bp, CO, R),
                     .alpha_over_rank = 1.0f};
    nn_adapter wrong = ap;
    nn_hooks hk; /* the LoRA state of reg's layers */
    CHECK_OK(nn_hooks_init(&hk, &reg));
    CHECK(nn_hooks_attach(&hk, l, &wrong) == LMX_ERR_ARG, "linear adapter on a 3x3 conv accepted");
    CHECK_OK(nn_hooks_attach(&hk, l, &ac));
    CHECK_OK(nn_hooks_attach(&hk, p, &ap));
    float scale[S] = {0.0f, 0.75f};
    float x[S * H * W * CI], y[S * 5 * 4 * CO], ref[S * 5 * 4 * CO], yp[S * H * W * CO], refp[S * H * W * CO];
    lmx_fill_randn(x, S * H * W * CI, 31, 1.0f);
    lmx_arena ar = {0};
    int64_t sn = nn_lora_scratch_floats(R, CO, H * W);
    CHECK_OK(lmx_arena_init(&ar, nn_bytes(sn) + 64));
    nn_run run = {.ctx = ctx, .hooks = &hk, .n_samples = S, .n_loras = 1, .lora_scale = scale, .arena = &ar};
    run.scratch = nn_alloc(&run, sn);
    run.scratch_n = sn;
    CHECK_OK(nn_conv(&run, l, x, y, H, W, 0.0f));
    CHECK_OK(nn_conv(&run, p, x, yp, H, W, 0.0f));
    for (int s = 0; s < S; s++) {
        float Wm[CO * CI * 9], Wpm[CO * CI];
        for (int o = 0; o < CO; o++)
            for (int c = 0; c < CI * 9; c++) {
                double v = Wc[o * CI * 9 + c];
                for (int j = 0; j < R; j++) v += (double)scale[s] * B[o * R + j] * A[j * CI * 9 + c];
                Wm[o * CI * 9 + c] = (float)v;
            }
        const float *As[1] = {Ap}, *Bs[1] = {Bp};
        int rs[1] = {R};
        double cs[1] = {scale[s]};
        merge(Wp, CO, CI, 1, As, Bs, rs, cs, Wpm);
        ref_conv2d(Wm, bc, CO, CI, 3, 3, 2, 1, x + s * H * W * CI, ref + s * 5 * 4 * CO, 1, H, W, 0.0f);
        ref_conv2d(Wpm, bp, CO, CI, 1, 1, 1, 0, x + s * H * W * CI, refp + s * H * W * CO, 1, H, W, 0.0f);
    }
    lmx_cmp_f32("3x3 stride-2 conv side path vs merged", y, ref, S * 5 * 4 * CO, 1e-4, 1e-4);
    lmx_cmp_f32("1x1 conv with linear adapter vs merged", yp, refp, S * H * W * CO, 1e-4, 1e-4);
    op_conv2d_free(ac.down_conv);
    op_conv2d_free(ac.up_conv);
    op_linear_free(ap.down);
    op_linear_free(ap.up);
    lmx_arena_free(&ar);
    nn_hooks_free(&hk);
    nn_layers_free(&reg);
    nn_src_release(&src);
}

int main(void) {
    op_ctx *ctx = NULL;
    CHECK_OK(op_ctx_create(&ctx));
    if (ctx) {
        test_linear(ctx);
        test_conv(ctx);
    }
    op_ctx_free(ctx);
    return lmx_test_finish();
}
