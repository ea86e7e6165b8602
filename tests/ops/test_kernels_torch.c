/*
 * test_kernels_torch.c - the non-GEMM kernels against PyTorch on the seeded
 * goldens of reference/gen_ops.py (tests/fixtures/ops/kern_*.safetensors;
 * feature maps already NHWC, attention token-major there):
 *   F.group_norm (+ F.silu), F.layer_norm, torch.softmax,
 *   F.scaled_dot_product_attention (is_causal too), F.silu, F.gelu (erf and
 *   tanh), transformers' quick_gelu, diffusers' GEGLU, F.interpolate
 *   (nearest, bilinear and bicubic with and without antialias, and the x2
 *   nearest of the upsamplers) and diffusers' get_timestep_embedding.
 *
 * Tolerances (|a - r| <= atol + rtol·|r|), all outputs O(1):
 *   norms, softmax, attention        atol 2e-6, rtol 1e-5  (summation order)
 *   silu, quick_gelu                 atol 1e-7, rtol 4e-7  (a few ulp)
 *   gelu_tanh                        atol 5e-7, rtol 4e-7  (torch's 1 + tanh(u)
 *                                    cancels for x < -3, ours does not)
 *   gelu (erf), geglu                atol 1e-6, rtol 1e-6  (torch's vectorised
 *                                    erf is a ~1e-7 approximation; ours is
 *                                    erfc-based, within 2 ulp of exact)
 *   nearest                          exact
 *   bilinear, bicubic (+antialias)   atol 1e-6, rtol 1e-6  (values in [0,1])
 *   timestep embedding               1.2e-7 (1 ulp) where our fp32 frequency
 *                                    exp(e_j) equals torch's; |t·f_j|·2^-22
 *                                    in the few columns where torch's expf
 *                                    rounds a near-tie the other way.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "ops/ops.h"

#define DIR "tests/fixtures/ops/"

static st_file *g_f;

static int open_golden(const char *file) {
    g_f = lmx_golden_open(lmx_src_path(file));
    return g_f != NULL;
}

static void close_golden(void) {
    st_close(g_f);
    g_f = NULL;
}

/* ---------------------------------------------------------------- norms */

static void test_norms(void) {
    if (!open_golden(DIR "kern_norm.safetensors")) return;
    static const char *gn[] = {"gn0", "gn1", "gn2"};
    for (size_t i = 0; i < LMX_ARRAY_LEN(gn); i++) {
        int64_t *c = lmx_golden_cfg(g_f, gn[i], 5);
        float *x = lmx_golden_field(g_f, gn[i], "x", NULL), *w = lmx_golden_field(g_f, gn[i], "w", NULL), *b = lmx_golden_field(g_f, gn[i], "b", NULL);
        float *yr = lmx_golden_field(g_f, gn[i], "y", NULL), *eps = lmx_golden_field(g_f, gn[i], "eps", NULL);
        if (c && x && w && b && yr && eps) {
            int64_t B = c[0], HW = c[1], C = c[2], G = c[3];
            float *y = lmx_test_floats(B * HW * C);
            op_group_norm(x, y, B, HW, C, G, w, b, eps[0], (int)c[4]);
            char what[64];
            snprintf(what, sizeof what, "%s F.group_norm%s", gn[i], c[4] ? " + F.silu" : "");
            lmx_cmp_f32(what, y, yr, B * HW * C, 2e-6, 1e-5);
            lmx_free(y);
        }
        lmx_free(c);
        lmx_free(x);
        lmx_free(w);
        lmx_free(b);
        lmx_free(yr);
        lmx_free(eps);
    }
    static const char *ln[] = {"ln0", "ln1"};
    for (size_t i = 0; i < LMX_ARRAY_LEN(ln); i++) {
        int64_t *c = lmx_golden_cfg(g_f, ln[i], 3);
        if (!c) continue;
        float *x = lmx_golden_field(g_f, ln[i], "x", NULL), *yr = lmx_golden_field(g_f, ln[i], "y", NULL);
        float *w = c[2] ? lmx_golden_field(g_f, ln[i], "w", NULL) : NULL, *b = c[2] ? lmx_golden_field(g_f, ln[i], "b", NULL) : NULL;
        if (x && yr && (!c[2] || (w && b))) {
            float *y = lmx_test_floats(c[0] * c[1]);
            op_layer_norm(x, y, c[0], c[1], w, b, 1e-5f);
            char what[64];
            snprintf(what, sizeof what, "%s F.layer_norm", ln[i]);
            lmx_cmp_f32(what, y, yr, c[0] * c[1], 2e-6, 1e-5);
            lmx_free(y);
        }
        lmx_free(c);
        lmx_free(x);
        lmx_free(w);
        lmx_free(b);
        lmx_free(yr);
    }
    static const char *sm[] = {"sm0", "sm1"};
    for (size_t i = 0; i < LMX_ARRAY_LEN(sm); i++) {
        int64_t *c = lmx_golden_cfg(g_f, sm[i], 3);
        float *x = lmx_golden_field(g_f, sm[i], "x", NULL), *yr = lmx_golden_field(g_f, sm[i], "y", NULL);
        if (c && x && yr) {
            float *y = lmx_test_floats(c[0] * c[1]);
            op_softmax(x, y, c[0], c[1]);
            char what[64];
            snprintf(what, sizeof what, "%s torch.softmax", sm[i]);
            lmx_cmp_f32(what, y, yr, c[0] * c[1], 2e-6, 1e-5);
            lmx_free(y);
        }
        lmx_free(c);
        lmx_free(x);
        lmx_free(yr);
    }
    close_golden();
}

/* ------------------------------------------------------------ attention */

static void test_attention(void) {
    if (!open_golden(DIR "kern_attn.safetensors")) return;
    static const char *names[] = {"at0", "at1", "at2", "at3", "at4"};
    for (size_t i = 0; i < LMX_ARRAY_LEN(names); i++) {
        int64_t *c = lmx_golden_cfg(g_f, names[i], 6);
        float *q = lmx_golden_field(g_f, names[i], "q", NULL), *k = lmx_golden_field(g_f, names[i], "k", NULL);
        float *v = lmx_golden_field(g_f, names[i], "v", NULL), *orf = lmx_golden_field(g_f, names[i], "o", NULL);
        if (c && q && k && v && orf) {
            int64_t B = c[0], H = c[1], Lq = c[2], Lk = c[3], D = c[4], C = H * D;
            float *o = lmx_test_floats(B * Lq * C);
            CHECK_OK(op_attention(NULL, q, C, Lq * C, k, C, Lk * C, v, C, Lk * C, o, C, Lq * C, B,
                                  Lq, Lk, H, D, 1.0f / sqrtf((float)D), (int)c[5]));
            char what[96];
            snprintf(what, sizeof what, "%s F.scaled_dot_product_attention%s", names[i],
                     c[5] ? " (is_causal)" : "");
            lmx_cmp_f32(what, o, orf, B * Lq * C, 2e-6, 1e-5);
            lmx_free(o);
        }
        lmx_free(c);
        lmx_free(q);
        lmx_free(k);
        lmx_free(v);
        lmx_free(orf);
    }
    close_golden();
}

/* ---------------------------------------------------------- activations */

static void test_activations(void) {
    if (!open_golden(DIR "kern_act.safetensors")) return;
    int64_t n = 0;
    float *x = lmx_golden_field(g_f, "act", "x", &n);
    static const struct {
        const char *field;
        void (*fn)(const float *, float *, int64_t);
        double atol, rtol;
    } acts[] = {
        {"silu", op_silu, 1e-7, 4e-7},
        {"quick_gelu", op_quick_gelu, 1e-7, 4e-7},
        /* torch's 0.5x(1 + tanh u) cancels to 0 for x < -3; ours does not */
        {"gelu_tanh", op_gelu_tanh, 5e-7, 4e-7},
        {"gelu", op_gelu_erf, 1e-6, 1e-6},
    };
    for (size_t i = 0; x && i < LMX_ARRAY_LEN(acts); i++) {
        float *yr = lmx_golden_field(g_f, "act", acts[i].field, NULL), *y = lmx_test_floats(n);
        if (yr) {
            acts[i].fn(x, y, n);
            char what[64];
            snprintf(what, sizeof what, "torch %s", acts[i].field);
            lmx_cmp_f32(what, y, yr, n, acts[i].atol, acts[i].rtol);
        }
        lmx_free(y);
        lmx_free(yr);
    }
    lmx_free(x);
    int64_t *c = lmx_golden_cfg(g_f, "geglu", 2);
    float *gx = lmx_golden_field(g_f, "geglu", "x", NULL), *gy = lmx_golden_field(g_f, "geglu", "y", NULL);
    if (c && gx && gy) {
        float *y = lmx_test_floats(c[0] * c[1]);
        op_geglu(gx, y, c[0], c[1]);
        lmx_cmp_f32("diffusers GEGLU", y, gy, c[0] * c[1], 1e-6, 1e-6);
        lmx_free(y);
    }
    lmx_free(c);
    lmx_free(gx);
    lmx_free(gy);
    close_golden();
}

/* ------------------------------------------------------------- resample */

static void test_resize(void) {
    if (!open_golden(DIR "kern_resize.safetensors")) return;
    int64_t *ic = lmx_golden_cfg(g_f, "img", 4);
    float *img = lmx_golden_field(g_f, "img", "x", NULL);
    static const char *modes[] = {"nearest", "bilinear", "bilinear_aa", "bicubic", "bicubic_aa"};
    static const char *tags[] = {"down", "up", "mix"};
    for (size_t m = 0; ic && img && m < LMX_ARRAY_LEN(modes); m++)
        for (size_t t = 0; t < LMX_ARRAY_LEN(tags); t++) {
            char name[48];
            snprintf(name, sizeof name, "%s_%s", modes[m], tags[t]);
            int64_t *c = lmx_golden_cfg(g_f, name, 3);
            float *yr = lmx_golden_field(g_f, name, "y", NULL);
            if (c && yr) {
                int64_t B = ic[0], H = ic[1], W = ic[2], C = ic[3], Ho = c[0], Wo = c[1];
                int aa = (int)c[2];
                float *y = lmx_test_floats(B * Ho * Wo * C);
                char what[96];
                snprintf(what, sizeof what, "F.interpolate %s %lldx%lld -> %lldx%lld", name,
                         (long long)H, (long long)W, (long long)Ho, (long long)Wo);
                if (m == 0) {
                    op_resize_nearest(img, y, B, H, W, C, Ho, Wo);
                    lmx_cmp_f32(what, y, yr, B * Ho * Wo * C, 0, 0);
                } else {
                    if (m <= 2) op_resize_bilinear(img, y, B, H, W, C, Ho, Wo, aa);
                    else op_resize_bicubic(img, y, B, H, W, C, Ho, Wo, aa);
                    lmx_cmp_f32(what, y, yr, B * Ho * Wo * C, 1e-6, 1e-6);
                }
                if (lmx_test_verbose()) {
                    int64_t ne = 0;
                    for (int64_t k = 0; k < B * Ho * Wo * C; k++) ne += y[k] == yr[k];
                    printf("     %s: %lld of %lld values bit-exact\n", name, (long long)ne,
                           (long long)(B * Ho * Wo * C));
                }
                lmx_free(y);
            }
            lmx_free(c);
            lmx_free(yr);
        }
    lmx_free(ic);
    lmx_free(img);

    int64_t *c = lmx_golden_cfg(g_f, "up2", 4);
    float *x = lmx_golden_field(g_f, "up2", "x", NULL), *yr = lmx_golden_field(g_f, "up2", "y", NULL);
    if (c && x && yr) {
        int64_t B = c[0], H = c[1], W = c[2], C = c[3];
        float *y = lmx_test_floats(B * 4 * H * W * C);
        op_upsample_nearest2x(x, y, B, H, W, C);
        lmx_cmp_f32("F.interpolate nearest scale_factor=2", y, yr, B * 4 * H * W * C, 0, 0);
        lmx_free(y);
    }
    lmx_free(c);
    lmx_free(x);
    lmx_free(yr);
    close_golden();
}

/* ------------------------------------------------------------ embedding */

static int32_t f2i(float f) {
    int32_t i;
    memcpy(&i, &f, 4);
    return i;
}

/* docs/numerics.md §4: the fp32 frequency of column j, as op_timestep_embedding
 * computes it. */
static float our_freq(int64_t j, int64_t half, float shift) {
    float e = ((float)(-log(10000.0)) * (float)j) / ((float)half - shift);
    return (float)exp((double)e);
}

static void test_embedding(void) {
    if (!open_golden(DIR "kern_embed.safetensors")) return;
    static const char *names[] = {"te0", "te1", "te2", "te3", "te4"};
    for (size_t i = 0; i < LMX_ARRAY_LEN(names); i++) {
        int64_t *c = lmx_golden_cfg(g_f, names[i], 4);
        float *t = lmx_golden_field(g_f, names[i], "t", NULL), *yr = lmx_golden_field(g_f, names[i], "y", NULL);
        float *fr = lmx_golden_field(g_f, names[i], "freq", NULL);
        if (c && t && yr && fr) {
            int64_t B = c[0], dim = c[1], half = dim / 2;
            int flip = (int)c[2];
            float shift = (float)c[3];
            float *y = lmx_test_floats(B * dim);
            op_timestep_embedding(t, B, dim, flip, shift, 10000.0f, y);
            /* Where torch's fp32 exp(e_j) rounds a near-tie the other way
             * (MKL's expf vs the correctly rounded value), a_j = t·f_j
             * differs by an ulp and sin/cos by up to |a_j|·2^-24; elsewhere
             * the values must agree to 1 ulp (abs 1.2e-7). */
            int64_t nf = 0, neq = 0, bad = 0;
            double maxd = 0, maxd_same = 0;
            for (int64_t j = 0; j < half; j++) nf += our_freq(j, half, shift) != fr[j];
            for (int64_t b = 0; b < B; b++)
                for (int64_t k = 0; k < dim; k++) {
                    int64_t j = k % half;
                    float f = our_freq(j, half, shift);
                    double d = fabs((double)y[b * dim + k] - yr[b * dim + k]);
                    double lim = f == fr[j] ? 1.2e-7 : fabs((double)t[b] * f) * ldexp(1.0, -22) + 1.2e-7;
                    if (d > maxd) maxd = d;
                    if (f == fr[j] && d > maxd_same) maxd_same = d;
                    if (d > lim) bad++;
                    neq += f2i(y[b * dim + k]) != f2i(yr[b * dim + k]);
                }
            CHECK(bad == 0, "%s: %lld values outside tolerance", names[i], (long long)bad);
            if (lmx_test_verbose())
                printf("ok   %s get_timestep_embedding dim=%lld flip=%d shift=%g: %lld of %lld "
                       "values bit-exact; max |diff| %.3g (%.3g where the %lld/%lld fp32 "
                       "frequencies agree with torch's)\n",
                       names[i], (long long)dim, flip, shift, (long long)(B * dim - neq),
                       (long long)(B * dim), maxd, maxd_same, (long long)(half - nf),
                       (long long)half);
            lmx_free(y);
        }
        lmx_free(c);
        lmx_free(t);
        lmx_free(yr);
        lmx_free(fr);
    }
    close_golden();
}

int main(void) {
    test_norms();
    test_attention();
    test_activations();
    test_resize();
    test_embedding();
    return lmx_test_finish();
}
