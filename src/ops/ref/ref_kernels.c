/*
 * ref_kernels.c - naive twins of the non-GEMM kernels of ops.h: group and
 * layer norm, softmax, attention, activations, resampling and the timestep
 * embedding (see ref.h).
 *
 * Each function is the plain definition of what the fast kernel computes,
 * following the PyTorch reference (torch 2.8 CPU; diffusers 0.32 for the
 * timestep embedding; docs/numerics.md §3-§4, §10):
 *   - sums and transcendental functions in double, one rounding to fp32 at
 *     the end; attention keeps the full score row (Lk doubles) per query;
 *   - the activations take their transcendental argument as torch forms it
 *     in fp32 (fl(1.702·x), fl(x·fl(1/√2)), the fp32 tanh-GELU polynomial),
 *     then evaluate the rest in double, in a form without cancellation;
 *   - index arithmetic of the resamplers in fp32 exactly as torch's
 *     UpSampleKernel.cpp does it (a different rounding there would pick a
 *     different source pixel), weights and sums in double;
 *   - the timestep embedding in the fp32 operation order of docs/numerics.md §4
 *     with libm's expf/sinf/cosf.
 * No threads, no blocking, no vector code: slow on purpose, tests only.
 */
#include "ops/ref/ref.h"

#include <math.h>
#include <stdlib.h>

#include "core/core.h"

/* ---- normalisation ---- */

/* x[B, HW, C], groups of C/G consecutive channels. */
void ref_group_norm(const float *x, float *y, int64_t B, int64_t HW, int64_t C, int64_t G,
                    const float *gamma, const float *beta, float eps, int silu) {
    int64_t cg = C / G;
    for (int64_t b = 0; b < B; b++) {
        for (int64_t g = 0; g < G; g++) {
            const float *xb = x + b * HW * C + g * cg;
            double n = (double)HW * (double)cg, s = 0, ss = 0;
            for (int64_t p = 0; p < HW; p++)
                for (int64_t c = 0; c < cg; c++) s += xb[p * C + c];
            double mean = s / n;
            for (int64_t p = 0; p < HW; p++)
                for (int64_t c = 0; c < cg; c++) {
                    double d = xb[p * C + c] - mean;
                    ss += d * d;
                }
            double rstd = 1.0 / sqrt(ss / n + (double)eps);
            float *yb = y + b * HW * C + g * cg;
            for (int64_t p = 0; p < HW; p++)
                for (int64_t c = 0; c < cg; c++) {
                    double v = (xb[p * C + c] - mean) * rstd;
                    if (gamma) v *= gamma[g * cg + c];
                    if (beta) v += beta[g * cg + c];
                    if (silu) v = v / (1.0 + exp(-v));
                    yb[p * C + c] = (float)v;
                }
        }
    }
}

void ref_layer_norm(const float *x, float *y, int64_t M, int64_t C, const float *gamma,
                    const float *beta, float eps) {
    for (int64_t m = 0; m < M; m++) {
        const float *xr = x + m * C;
        double s = 0, ss = 0;
        for (int64_t c = 0; c < C; c++) s += xr[c];
        double mean = s / (double)C;
        for (int64_t c = 0; c < C; c++) ss += (xr[c] - mean) * (xr[c] - mean);
        double rstd = 1.0 / sqrt(ss / (double)C + (double)eps);
        for (int64_t c = 0; c < C; c++) {
            double v = (xr[c] - mean) * rstd;
            if (gamma) v *= gamma[c];
            if (beta) v += beta[c];
            y[m * C + c] = (float)v;
        }
    }
}

void ref_softmax(const float *x, float *y, int64_t M, int64_t N) {
    for (int64_t m = 0; m < M; m++) {
        const float *xr = x + m * N;
        double mx = -INFINITY, s = 0;
        for (int64_t j = 0; j < N; j++) mx = xr[j] > mx ? xr[j] : mx;
        for (int64_t j = 0; j < N; j++) s += exp(xr[j] - mx);
        for (int64_t j = 0; j < N; j++) y[m * N + j] = (float)(exp(xr[j] - mx) / s);
    }
}

/* ---- attention: the full score row per query, in double ---- */

void ref_attention(const float *q, int64_t ldq, int64_t sq, const float *k, int64_t ldk,
                   int64_t sk, const float *v, int64_t ldv, int64_t sv, float *o, int64_t ldo,
                   int64_t so, int64_t B, int64_t Lq, int64_t Lk, int64_t H, int64_t D, float scale,
                   int causal) {
    double *s = malloc(sizeof(double) * (size_t)(Lk > 0 ? Lk : 1));
    double *acc = malloc(sizeof(double) * (size_t)(D > 0 ? D : 1));
    LMX_ASSERT(s && acc); /* test-only code */
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < H; h++)
            for (int64_t i = 0; i < Lq; i++) {
                const float *qi = q + b * sq + i * ldq + h * D;
                int64_t n = causal ? LMX_MIN(i + 1, Lk) : Lk;
                double mx = -INFINITY, sum = 0;
                for (int64_t j = 0; j < n; j++) {
                    const float *kj = k + b * sk + j * ldk + h * D;
                    double dot = 0;
                    for (int64_t d = 0; d < D; d++) dot += (double)qi[d] * kj[d];
                    s[j] = dot * scale;
                    mx = s[j] > mx ? s[j] : mx;
                }
                for (int64_t j = 0; j < n; j++) {
                    s[j] = exp(s[j] - mx);
                    sum += s[j];
                }
                for (int64_t d = 0; d < D; d++) acc[d] = 0;
                for (int64_t j = 0; j < n; j++) {
                    const float *vj = v + b * sv + j * ldv + h * D;
                    for (int64_t d = 0; d < D; d++) acc[d] += s[j] * vj[d];
                }
                float *oi = o + b * so + i * ldo + h * D;
                for (int64_t d = 0; d < D; d++) oi[d] = (float)(acc[d] / sum);
            }
    free(s);
    free(acc);
}

/* ---- activations ---- */

void ref_silu(const float *x, float *y, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] = (float)(x[i] / (1.0 + exp(-(double)x[i])));
}

/* 0.5·x·(1 + erf(z)) = 0.5·x·erfc(-z), the second form without
 * cancellation for x < 0; z = fl(x·fl(1/√2)) in fp32 as torch forms it. */
static double gelu_erf_d(float x) {
    float z = x * 0.70710678118654752440f;
    return 0.5 * (double)x * erfc(-(double)z);
}

void ref_gelu_erf(const float *x, float *y, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] = (float)gelu_erf_d(x[i]);
}

/* 0.5·x·(1 + tanh(u)) = x / (1 + exp(-2u)); u is formed in fp32 exactly as
 * torch's kernel forms it: fl(kBeta·fl(x + fl(kKappa·fl(fl(x·x)·x)))). */
void ref_gelu_tanh(const float *x, float *y, int64_t n) {
    const float kbeta = 0.79788456080286535588f, kkappa = 0.044715f;
    for (int64_t i = 0; i < n; i++) {
        float x3 = (x[i] * x[i]) * x[i];
        float u = kbeta * (x[i] + kkappa * x3);
        y[i] = (float)((double)x[i] / (1.0 + exp(-2.0 * (double)u)));
    }
}

/* x·sigmoid(t) with t = fl(1.702·x) in fp32, as torch computes 1.702 * x. */
void ref_quick_gelu(const float *x, float *y, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        float t = 1.702f * x[i];
        y[i] = (float)((double)x[i] / (1.0 + exp(-(double)t)));
    }
}

void ref_geglu(const float *x, float *y, int64_t M, int64_t N) {
    for (int64_t m = 0; m < M; m++)
        for (int64_t j = 0; j < N; j++) {
            double h = x[m * 2 * N + j];
            y[m * N + j] = (float)(h * gelu_erf_d(x[m * 2 * N + N + j]));
        }
}

/* ---- resampling (NHWC) ---- */

void ref_upsample_nearest2x(const float *x, float *y, int64_t B, int64_t H, int64_t W, int64_t C) {
    for (int64_t b = 0; b < B; b++)
        for (int64_t oy = 0; oy < 2 * H; oy++)
            for (int64_t ox = 0; ox < 2 * W; ox++)
                for (int64_t c = 0; c < C; c++)
                    y[((b * 2 * H + oy) * 2 * W + ox) * C + c] =
                        x[((b * H + oy / 2) * W + ox / 2) * C + c];
}

/* torch nearest_idx: identity for equal sizes, >>1 for exactly twice the
 * size, else min(floor(fl(dst · fl(in/out))), in-1) in fp32. */
static int64_t nearest_src(int64_t dst, int64_t in, int64_t out) {
    if (out == in) return dst;
    if (out == 2 * in) return dst >> 1;
    float scale = (float)in / (float)out;
    int64_t s = (int64_t)floorf((float)dst * scale);
    return s < in - 1 ? s : in - 1;
}

void ref_resize_nearest(const float *x, float *y, int64_t B, int64_t H, int64_t W, int64_t C,
                        int64_t Ho, int64_t Wo) {
    for (int64_t b = 0; b < B; b++)
        for (int64_t oy = 0; oy < Ho; oy++)
            for (int64_t ox = 0; ox < Wo; ox++) {
                int64_t sy = nearest_src(oy, H, Ho), sx = nearest_src(ox, W, Wo);
                for (int64_t c = 0; c < C; c++)
                    y[((b * Ho + oy) * Wo + ox) * C + c] = x[((b * H + sy) * W + sx) * C + c];
            }
}

/* One axis of a separable resize: out index i reads taps idx[i·T + t] with
 * weights w[i·T + t], t < T (unused taps have weight 0 and index 0). */
typedef struct ref_axis {
    int64_t T;
    int64_t *idx;
    double *w;
} ref_axis;

static double cubic1(double x, double A) { return ((A + 2) * x - (A + 3)) * x * x + 1; }
static double cubic2(double x, double A) { return ((A * x - 5 * A) * x + 8 * A) * x - 4 * A; }
static double aa_filter(int cubic, double x) {
    x = fabs(x);
    if (!cubic) return x < 1.0 ? 1.0 - x : 0.0;
    if (x < 1.0) return cubic1(x, -0.5);
    if (x < 2.0) return cubic2(x, -0.5);
    return 0.0;
}

/* torch align_corners=False: source coordinate scale·fl(i + 0.5) - 0.5 in
 * fp32 (one fused multiply-add, as torch's build computes it) with scale =
 * fl(in/out); clamped at 0 for linear, not for cubic.
 * antialias: torch's _compute_indices_min_size_weights_aa (PIL's bounds:
 * support = taps/2 · max(scale, 1), weights normalised to sum 1). */
static void ref_axis_make(ref_axis *a, int64_t in, int64_t out, int cubic, int antialias) {
    float scale = (float)in / (float)out;
    if (antialias) {
        double support = (cubic ? 2.0 : 1.0) * (scale >= 1.0f ? scale : 1.0);
        a->T = (int64_t)ceil(support) * 2 + 1;
    } else {
        a->T = cubic ? 4 : 2;
    }
    a->idx = calloc((size_t)(out * a->T), sizeof(int64_t));
    a->w = calloc((size_t)(out * a->T), sizeof(double));
    LMX_ASSERT(a->idx && a->w);
    for (int64_t i = 0; i < out; i++) {
        int64_t *ix = a->idx + i * a->T;
        double *w = a->w + i * a->T;
        if (antialias) {
            double center = (double)scale * (i + 0.5);
            double support = (cubic ? 2.0 : 1.0) * (scale >= 1.0f ? scale : 1.0);
            double inv = scale >= 1.0f ? 1.0 / scale : 1.0;
            int64_t xmin = (int64_t)(center - support + 0.5);
            if (xmin < 0) xmin = 0;
            int64_t xmax = (int64_t)(center + support + 0.5);
            if (xmax > in) xmax = in;
            int64_t n = xmax - xmin;
            if (n > a->T) n = a->T;
            double tot = 0;
            for (int64_t j = 0; j < n; j++) {
                w[j] = aa_filter(cubic, (j + xmin - center + 0.5) * inv);
                ix[j] = xmin + j;
                tot += w[j];
            }
            if (tot != 0)
                for (int64_t j = 0; j < n; j++) w[j] /= tot;
        } else if (out == in && !cubic) {
            ix[0] = ix[1] = i;
            w[0] = 1;
            w[1] = 0;
        } else {
            float src = fmaf(scale, (float)i + 0.5f, -0.5f);
            if (!cubic && src < 0) src = 0;
            int64_t i0 = (int64_t)floorf(src);
            if (i0 > in - 1) i0 = in - 1;
            double t = (double)src - (double)i0;
            t = t < 0 ? 0 : (t > 1 ? 1 : t);
            if (!cubic) {
                ix[0] = i0;
                ix[1] = i0 < in - 1 ? i0 + 1 : i0;
                w[0] = 1 - t;
                w[1] = t;
            } else {
                const double A = -0.75;
                double c[4] = {cubic2(t + 1, A), cubic1(t, A), cubic1(1 - t, A),
                               cubic2(2 - t, A)};
                for (int j = 0; j < 4; j++) {
                    int64_t s = i0 - 1 + j;
                    ix[j] = s < 0 ? 0 : (s > in - 1 ? in - 1 : s);
                    w[j] = c[j];
                }
            }
        }
    }
}

static void ref_resize_sep(const float *x, float *y, int64_t B, int64_t H, int64_t W, int64_t C,
                           int64_t Ho, int64_t Wo, int cubic, int antialias) {
    ref_axis ah, aw;
    ref_axis_make(&ah, H, Ho, cubic, antialias);
    ref_axis_make(&aw, W, Wo, cubic, antialias);
    for (int64_t b = 0; b < B; b++)
        for (int64_t oy = 0; oy < Ho; oy++)
            for (int64_t ox = 0; ox < Wo; ox++)
                for (int64_t c = 0; c < C; c++) {
                    double acc = 0;
                    for (int64_t th = 0; th < ah.T; th++) {
                        double wh = ah.w[oy * ah.T + th];
                        if (wh == 0) continue;
                        int64_t sy = ah.idx[oy * ah.T + th];
                        double row = 0;
                        for (int64_t tw = 0; tw < aw.T; tw++) {
                            double ww = aw.w[ox * aw.T + tw];
                            if (ww == 0) continue;
                            row += ww * x[((b * H + sy) * W + aw.idx[ox * aw.T + tw]) * C + c];
                        }
                        acc += wh * row;
                    }
                    y[((b * Ho + oy) * Wo + ox) * C + c] = (float)acc;
                }
    free(ah.idx);
    free(ah.w);
    free(aw.idx);
    free(aw.w);
}

void ref_resize_bilinear(const float *x, float *y, int64_t B, int64_t H, int64_t W, int64_t C,
                         int64_t Ho, int64_t Wo, int antialias) {
    ref_resize_sep(x, y, B, H, W, C, Ho, Wo, 0, antialias);
}

void ref_resize_bicubic(const float *x, float *y, int64_t B, int64_t H, int64_t W, int64_t C,
                        int64_t Ho, int64_t Wo, int antialias) {
    ref_resize_sep(x, y, B, H, W, C, Ho, Wo, 1, antialias);
}

/* ---- timestep embedding: docs/numerics.md §4, fp32 op by op ---- */

void ref_timestep_embedding(const float *t, int64_t B, int64_t dim, int flip_sin_to_cos,
                            float shift, float max_period, float *out) {
    int64_t half = dim / 2;
    float c = (float)(-log((double)max_period));
    float den = (float)half - shift;
    for (int64_t b = 0; b < B; b++)
        for (int64_t j = 0; j < half; j++) {
            float e = (c * (float)j) / den;
            float f = expf(e);
            float a = t[b] * f;
            float s = sinf(a), co = cosf(a);
            out[b * dim + j] = flip_sin_to_cos ? co : s;
            out[b * dim + half + j] = flip_sin_to_cos ? s : co;
        }
}
