/*
 * test_gemm_torch.c - op_linear_fwd, op_matmul and op_conv2d_fwd against
 * PyTorch (torch.nn.functional.linear, torch.matmul, F.conv2d) on the seeded
 * goldens of reference/gen_ops_gemm.py (tests/fixtures/ops/gemm_torch.safetensors;
 * conv activations already permuted to NHWC there).
 *
 * Tolerances: fp32 atol 2e-5, rtol 2e-5 (outputs are O(1), K <= 320: only
 * the summation order differs from torch's); bf16 atol 3e-2, rtol 3e-2;
 * Winograd atol 5e-4, rtol 5e-4.
 */
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "ops/ops.h"

#define GOLDEN "tests/fixtures/ops/gemm_torch.safetensors"

static op_ctx *g_ctx;
static st_file *g_f;

static void test_linear(void) {
    static const char *names[] = {"lin0", "lin1", "lin2", "lin3"};
    for (size_t i = 0; i < LMX_ARRAY_LEN(names); i++) {
        int64_t *c = lmx_golden_cfg(g_f, names[i], 4);
        if (!c) continue;
        int64_t M = c[0], K = c[1], N = c[2];
        float *x = lmx_golden_field(g_f, names[i], "x", NULL), *w = lmx_golden_field(g_f, names[i], "w", NULL);
        float *b = c[3] ? lmx_golden_field(g_f, names[i], "b", NULL) : NULL, *yr = lmx_golden_field(g_f, names[i], "y", NULL);
        float *y = lmx_malloc(sizeof(float) * (size_t)(M * N));
        if (x && w && yr && y && (b || !c[3])) {
            for (int p = 0; p < 2; p++) {
                op_linear *l = NULL;
                if (p && !lmx_test_bf16()) continue;
                CHECK_OK(op_linear_create(&l, w, b, N, K, p ? OP_PREC_BF16 : OP_PREC_F32));
                CHECK_OK(op_linear_fwd(g_ctx, l, x, 0, y, 0, M, 0.0f));
                char what[64];
                snprintf(what, sizeof what, "%s F.linear %s", names[i], p ? "bf16" : "f32");
                if (p)
                    lmx_cmp_f32(what, y, yr, M * N, 3e-2, 3e-2);
                else
                    lmx_cmp_f32(what, y, yr, M * N, 2e-5, 2e-5);
                op_linear_free(l);
            }
        }
        lmx_free(c);
        lmx_free(x);
        lmx_free(w);
        lmx_free(b);
        lmx_free(yr);
        lmx_free(y);
    }
}

static void test_matmul(void) {
    static const char *names[] = {"mm0", "mm1", "mm2"};
    for (size_t i = 0; i < LMX_ARRAY_LEN(names); i++) {
        int64_t *c = lmx_golden_cfg(g_f, names[i], 5);
        if (!c) continue;
        int64_t batch = c[0], M = c[1], N = c[2], K = c[3];
        int tb = (int)c[4];
        float *a = lmx_golden_field(g_f, names[i], "a", NULL), *b = lmx_golden_field(g_f, names[i], "b", NULL);
        float *cr = lmx_golden_field(g_f, names[i], "c", NULL), *alpha = lmx_golden_field(g_f, names[i], "alpha", NULL);
        float *out = lmx_malloc(sizeof(float) * (size_t)(batch * M * N));
        if (a && b && cr && alpha && out) {
            CHECK_OK(op_matmul(g_ctx, batch, M, N, K, alpha[0], a, K, M * K, 0, b, tb ? K : N,
                               K * N, tb, 0.0f, out, N, M * N));
            char what[64];
            snprintf(what, sizeof what, "%s torch.matmul", names[i]);
            lmx_cmp_f32(what, out, cr, batch * M * N, 2e-5, 2e-5);
        }
        lmx_free(c);
        lmx_free(a);
        lmx_free(b);
        lmx_free(cr);
        lmx_free(alpha);
        lmx_free(out);
    }
}

static void test_conv(void) {
    static const char *names[] = {"conv0", "conv1", "conv2", "conv3", "conv4"};
    for (size_t i = 0; i < LMX_ARRAY_LEN(names); i++) {
        int64_t *c = lmx_golden_cfg(g_f, names[i], 10);
        if (!c) continue;
        int64_t B = c[0], Cin = c[1], H = c[2], W = c[3], Cout = c[4];
        int kh = (int)c[5], kw = (int)c[6], s = (int)c[7], p = (int)c[8];
        int64_t ny = 0;
        float *x = lmx_golden_field(g_f, names[i], "x", NULL), *w = lmx_golden_field(g_f, names[i], "w", NULL);
        float *b = c[9] ? lmx_golden_field(g_f, names[i], "b", NULL) : NULL, *yr = lmx_golden_field(g_f, names[i], "y", &ny);
        float *y = lmx_malloc(sizeof(float) * (size_t)(ny ? ny : 1));
        if (x && w && yr && y && (b || !c[9])) {
            for (int mode = 0; mode < 3; mode++) {
                op_conv2d *cv = NULL;
                op_prec prec = mode == 2 ? OP_PREC_BF16 : OP_PREC_F32;
                if (prec == OP_PREC_BF16 && !lmx_test_bf16()) continue;
                unsigned flags = mode == 1 ? OP_CONV_WINOGRAD : 0;
                CHECK_OK(op_conv2d_create(&cv, w, b, Cout, Cin, kh, kw, s, p, prec, flags));
                if (!cv) continue;
                int64_t Ho, Wo;
                op_conv2d_out_hw(cv, H, W, &Ho, &Wo);
                CHECK(B * Ho * Wo * Cout == ny, "%s: output size %lld vs golden %lld", names[i],
                      (long long)(B * Ho * Wo * Cout), (long long)ny);
                if (B * Ho * Wo * Cout == ny) {
                    CHECK_OK(op_conv2d_fwd(g_ctx, cv, x, y, B, H, W, 0.0f));
                    static const char *mn[] = {"f32", "winograd", "bf16"};
                    static const double tol[] = {2e-5, 5e-4, 3e-2};
                    char what[64];
                    snprintf(what, sizeof what, "%s F.conv2d %s", names[i], mn[mode]);
                    lmx_cmp_f32(what, y, yr, ny, tol[mode], tol[mode]);
                }
                op_conv2d_free(cv);
            }
        }
        lmx_free(c);
        lmx_free(x);
        lmx_free(w);
        lmx_free(b);
        lmx_free(yr);
        lmx_free(y);
    }
}

int main(void) {
    if (getenv("LMX_DEBUG")) lmx_log_set(LMX_LOG_DEBUG, NULL, NULL);
    lmx_set_threads(2);
    CHECK_OK(op_ctx_create(&g_ctx));
    g_f = lmx_golden_open(lmx_src_path(GOLDEN));
    if (g_ctx && g_f) {
        test_linear();
        test_matmul();
        test_conv();
    }
    st_close(g_f);
    op_ctx_free(g_ctx);
    return lmx_test_finish();
}
