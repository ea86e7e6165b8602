/*
 * resample.c - NHWC resampling of ops.h: nearest x2 (UNet/VAE upsamplers),
 * nearest to any size, bilinear and bicubic with and without antialias
 * (image preprocessing of the evaluation models: CLIP, DINOv2).
 *
 * Mirrors torch 2.8 F.interpolate on float tensors, align_corners=False
 * (aten/src/ATen/native/UpSample.h and cpu/UpSampleKernel.cpp), in fp32 with
 * the same index and weight arithmetic:
 *   nearest:  src = min(floor(fl(dst · fl(in/out))), in-1)
 *   linear:   src = fl(fl(scale·fl(dst + 0.5)) - 0.5), clamped at 0;
 *             i0 = min(floor(src), in-1), i1 = i0 + (i0 < in-1),
 *             l1 = clamp(src - i0, 0, 1), l0 = 1 - l1
 *   cubic:    same src without the clamp, Keys kernel A = -0.75 on the taps
 *             i0-1..i0+2 clamped to the border
 *   antialias (both): torch's separable PIL-style filter, support =
 *             taps/2 · max(scale, 1), the window [xmin, xmin + n) computed as
 *             in _compute_indices_min_size_weights_aa, weights normalised to
 *             sum 1; triangle filter, or Keys cubic with A = -0.5 (torch uses
 *             -0.5 with antialias, -0.75 without).
 * The output is out = Σ_h w_h·(Σ_w w_w·x[h][w]) with the inner sums rounded
 * to fp32 and both sums in tap order, which is what torch's non-separable
 * kernel computes and, for antialias, what its horizontal-then-vertical
 * separable passes compute (a dimension whose size does not change has the
 * weights {1, 0, ...} and passes values through unchanged). Sums are
 * first product, then fused multiply-adds, and the source coordinate is
 * one fma: the operations torch's AVX-512 build compiles to, as far as
 * measured (antialias upsampling is bit-exact with torch 2.8; the other
 * cases agree to 1e-6 with 60-100% of the values bit-exact, see
 * docs/kernels.md).
 *
 * Parallel over output rows (b, oy), each row computed independently.
 * y must not overlap x. These kernels never fail: the antialias weight tables
 * are a cache, and when their allocation fails the weights are computed on
 * demand (same operations, same bits, slower).
 */
#include <math.h>
#include <string.h>

#include "ops/kern_simd.h"
#include "ops/ops.h"

/* ---- nearest ---- */

void op_upsample_nearest2x(const float *x, float *y, int64_t B, int64_t H, int64_t W, int64_t C) {
    size_t px = sizeof(float) * (size_t)C;
#pragma omp parallel for schedule(static) if (B * H * W * C > 65536)
    for (int64_t r = 0; r < B * H; r++) {
        const float *src = x + r * W * C;
        float *d0 = y + 2 * r * (2 * W * C), *d1 = d0 + 2 * W * C;
        for (int64_t ix = 0; ix < W; ix++) {
            memcpy(d0 + (2 * ix) * C, src + ix * C, px);
            memcpy(d0 + (2 * ix + 1) * C, src + ix * C, px);
        }
        memcpy(d1, d0, 2 * px * (size_t)W);
    }
}

static int64_t nearest_src(int64_t dst, int64_t in, int64_t out) {
    if (out == in) return dst;
    float scale = (float)in / (float)out;
    int64_t s = (int64_t)floorf((float)dst * scale);
    return s < in - 1 ? s : in - 1;
}

void op_resize_nearest(const float *x, float *y, int64_t B, int64_t H, int64_t W, int64_t C,
                       int64_t Ho, int64_t Wo) {
    size_t px = sizeof(float) * (size_t)C;
#pragma omp parallel for schedule(static) if (B * Ho * Wo * C > 65536)
    for (int64_t r = 0; r < B * Ho; r++) {
        int64_t b = r / Ho, oy = r % Ho;
        const float *src = x + (b * H + nearest_src(oy, H, Ho)) * W * C;
        float *dst = y + r * Wo * C;
        for (int64_t ox = 0; ox < Wo; ox++) memcpy(dst + ox * C, src + nearest_src(ox, W, Wo) * C, px);
    }
}

/* ---- bilinear / bicubic ---- */

/* One axis: which source taps output index i reads and with what weights. */
typedef struct rs_axis {
    int64_t in, out;
    int cubic, aa;
    float scale;              /* fl(in/out) */
    float support, invscale;  /* antialias only */
    int64_t T;                /* max taps per output index */
    /* antialias cache (NULL when not allocated): [out] first tap, count,
     * [out·T] normalised weights */
    int64_t *first, *cnt;
    float *w;
} rs_axis;

/* Keys cubic convolution, |x| <= 1 and 1 <= |x| <= 2 (UpSample.h). */
static float cubic1(float x, float A) { return ((A + 2.0f) * x - (A + 3.0f)) * x * x + 1.0f; }
static float cubic2(float x, float A) {
    return ((A * x - 5.0f * A) * x + 8.0f * A) * x - 4.0f * A;
}

/* The antialias filters; the cubic evaluated with the fused multiply-adds
 * torch's AVX-512 build ends up with there (bit-exact with torch 2.8 on
 * upsampling, measured). */
static float aa_filter(int cubic, float x) {
    const float A = -0.5f;
    x = fabsf(x);
    if (!cubic) return x < 1.0f ? 1.0f - x : 0.0f;
    if (x < 1.0f) return fmaf(fmaf(A + 2.0f, x, -(A + 3.0f)) * x, x, 1.0f);
    if (x < 2.0f) return fmaf(fmaf(fmaf(A, x, -(5.0f * A)), x, 8.0f * A), x, -(4.0f * A));
    return 0.0f;
}

/* Antialias window of output index i (torch's mixed float/double steps). */
static void aa_window(const rs_axis *a, int64_t i, float *center, int64_t *xmin, int64_t *n) {
    float c = (float)((double)a->scale * ((double)i + 0.5));
    int64_t lo = (int64_t)((double)(c - a->support) + 0.5);
    int64_t hi = (int64_t)((double)(c + a->support) + 0.5);
    if (lo < 0) lo = 0;
    if (hi > a->in) hi = a->in;
    int64_t cnt = hi - lo;
    cnt = cnt < 0 ? 0 : (cnt > a->T ? a->T : cnt);
    *center = c;
    *xmin = lo;
    *n = cnt;
}

static float aa_raw_weight(const rs_axis *a, float center, int64_t xmin, int64_t j) {
    float arg = (float)(((double)((float)(j + xmin) - center) + 0.5) * (double)a->invscale);
    return aa_filter(a->cubic, arg);
}

/* Taps of output index i: first source index, count, and weights in w[]
 * (at least T entries). Non-antialias taps may repeat a clamped index. */
static void rs_taps(const rs_axis *a, int64_t i, int64_t *idx, float *w, int64_t *n) {
    if (a->aa) {
        if (a->w) {
            *n = a->cnt[i];
            for (int64_t j = 0; j < *n; j++) {
                idx[j] = a->first[i] + j;
                w[j] = a->w[i * a->T + j];
            }
            return;
        }
        float center;
        int64_t xmin, cnt;
        aa_window(a, i, &center, &xmin, &cnt);
        float tot = 0.0f;
        for (int64_t j = 0; j < cnt; j++) {
            w[j] = aa_raw_weight(a, center, xmin, j);
            tot += w[j];
        }
        for (int64_t j = 0; j < cnt; j++) {
            if (tot != 0.0f) w[j] /= tot;
            idx[j] = xmin + j;
        }
        *n = cnt;
        return;
    }
    if (!a->cubic) {
        if (a->in == a->out) {
            idx[0] = idx[1] = i;
            w[0] = 1.0f;
            w[1] = 0.0f;
        } else {
            float src = fmaf(a->scale, (float)i + 0.5f, -0.5f);
            if (src < 0.0f) src = 0.0f;
            int64_t i0 = (int64_t)floorf(src);
            if (i0 > a->in - 1) i0 = a->in - 1;
            float l1 = src - (float)i0;
            l1 = l1 < 0.0f ? 0.0f : (l1 > 1.0f ? 1.0f : l1);
            idx[0] = i0;
            idx[1] = i0 + (i0 < a->in - 1 ? 1 : 0);
            w[0] = 1.0f - l1;
            w[1] = l1;
        }
        *n = 2;
        return;
    }
    float src = fmaf(a->scale, (float)i + 0.5f, -0.5f);
    int64_t i0 = (int64_t)floorf(src);
    if (i0 > a->in - 1) i0 = a->in - 1;
    float t = src - (float)i0;
    t = t < 0.0f ? 0.0f : (t > 1.0f ? 1.0f : t);
    const float A = -0.75f;
    w[0] = cubic2(t + 1.0f, A);
    w[1] = cubic1(t, A);
    w[2] = cubic1(1.0f - t, A);
    w[3] = cubic2((1.0f - t) + 1.0f, A);
    for (int j = 0; j < 4; j++) {
        int64_t s = i0 - 1 + j;
        idx[j] = s < 0 ? 0 : (s > a->in - 1 ? a->in - 1 : s);
    }
    *n = 4;
}

static void rs_axis_init(rs_axis *a, int64_t in, int64_t out, int cubic, int aa) {
    memset(a, 0, sizeof *a);
    a->in = in;
    a->out = out;
    a->cubic = cubic;
    a->aa = aa;
    a->scale = (float)in / (float)out;
    int taps = cubic ? 4 : 2;
    if (!aa) {
        a->T = taps;
        return;
    }
    a->support = a->scale >= 1.0f ? (float)((taps * 0.5) * (double)a->scale) : (float)(taps * 0.5);
    a->invscale = a->scale >= 1.0f ? (float)(1.0 / (double)a->scale) : 1.0f;
    a->T = (int64_t)ceil((double)a->support) * 2 + 1;
    /* The cache; on failure rs_taps computes the same weights on demand. */
    a->first = lmx_malloc(sizeof(int64_t) * (size_t)out);
    a->cnt = lmx_malloc(sizeof(int64_t) * (size_t)out);
    a->w = lmx_malloc(sizeof(float) * (size_t)(out * a->T));
    if (!a->first || !a->cnt || !a->w) {
        lmx_free(a->first);
        lmx_free(a->cnt);
        lmx_free(a->w);
        a->first = a->cnt = NULL;
        a->w = NULL;
        return;
    }
    for (int64_t i = 0; i < out; i++) {
        float center;
        aa_window(a, i, &center, &a->first[i], &a->cnt[i]);
        float *w = a->w + i * a->T, tot = 0.0f;
        for (int64_t j = 0; j < a->cnt[i]; j++) {
            w[j] = aa_raw_weight(a, center, a->first[i], j);
            tot += w[j];
        }
        if (tot != 0.0f)
            for (int64_t j = 0; j < a->cnt[i]; j++) w[j] /= tot;
    }
}

static void rs_axis_free(rs_axis *a) {
    lmx_free(a->first);
    lmx_free(a->cnt);
    lmx_free(a->w);
}

/* Largest tap count handled with stack arrays; wider windows (a downscale
 * by more than ~64x) go through the on-demand path in slices. */
#define RS_TMAX 256

/* out[c] = Σ_t wh[t]·(Σ_s ww[s]·x[hy_t][wx_s][c]) for one output pixel,
 * vectorised over channels. */
static void rs_pixel(const float *xb, int64_t W, int64_t C, const int64_t *hy, const float *wh,
                     int64_t nh, const int64_t *wx, const float *ww, int64_t nw, float *out) {
    for (int64_t c = 0; c < C; c += KV_N) {
        int64_t m = LMX_MIN((int64_t)KV_N, C - c);
        kv acc = kv_zero();
        for (int64_t t = 0; t < nh; t++) {
            const float *row = xb + hy[t] * W * C + c;
            kv r = kv_ldn(row + wx[0] * C, m, 0.0f) * kv_set1(ww[0]);
            for (int64_t s = 1; s < nw; s++) r = kv_fma(kv_ldn(row + wx[s] * C, m, 0.0f), kv_set1(ww[s]), r);
            acc = t == 0 ? (kv)(r * kv_set1(wh[0])) : kv_fma(r, kv_set1(wh[t]), acc);
        }
        kv_stn(out + c, acc, m);
    }
}

static void resize_sep(const float *x, float *y, int64_t B, int64_t H, int64_t W, int64_t C,
                       int64_t Ho, int64_t Wo, int cubic, int antialias) {
    rs_axis ah, aw;
    rs_axis_init(&ah, H, Ho, cubic, antialias);
    rs_axis_init(&aw, W, Wo, cubic, antialias);
#pragma omp parallel for schedule(dynamic, 4)
    for (int64_t r = 0; r < B * Ho; r++) {
        int64_t b = r / Ho, oy = r % Ho;
        const float *xb = x + b * H * W * C;
        float *yr = y + r * Wo * C;
        int64_t hy[RS_TMAX], wx[RS_TMAX], nh, nw;
        float wh[RS_TMAX], ww[RS_TMAX];
        if (ah.T <= RS_TMAX && aw.T <= RS_TMAX) {
            rs_taps(&ah, oy, hy, wh, &nh);
            for (int64_t ox = 0; ox < Wo; ox++) {
                rs_taps(&aw, ox, wx, ww, &nw);
                rs_pixel(xb, W, C, hy, wh, nh, wx, ww, nw, yr + ox * C);
            }
            continue;
        }
        /* Wide windows: per pixel, per channel, weights one tap at a time
         * from the cache or recomputed (same arithmetic as rs_taps). */
        for (int64_t ox = 0; ox < Wo; ox++)
            for (int64_t c = 0; c < C; c++) {
                float ch, cw, toth = 0.0f, totw = 0.0f;
                int64_t y0, x0;
                aa_window(&ah, oy, &ch, &y0, &nh);
                aa_window(&aw, ox, &cw, &x0, &nw);
                if (!ah.w)
                    for (int64_t t = 0; t < nh; t++) toth += aa_raw_weight(&ah, ch, y0, t);
                if (!aw.w)
                    for (int64_t s = 0; s < nw; s++) totw += aa_raw_weight(&aw, cw, x0, s);
                float acc = 0.0f;
                for (int64_t t = 0; t < nh; t++) {
                    float wt = ah.w ? ah.w[oy * ah.T + t] : aa_raw_weight(&ah, ch, y0, t);
                    if (!ah.w && toth != 0.0f) wt /= toth;
                    float rsum = 0.0f;
                    for (int64_t s = 0; s < nw; s++) {
                        float wv = aw.w ? aw.w[ox * aw.T + s] : aa_raw_weight(&aw, cw, x0, s);
                        if (!aw.w && totw != 0.0f) wv /= totw;
                        float xv = xb[((y0 + t) * W + x0 + s) * C + c];
                        rsum = s == 0 ? xv * wv : fmaf(xv, wv, rsum);
                    }
                    acc = t == 0 ? rsum * wt : fmaf(rsum, wt, acc);
                }
                yr[ox * C + c] = acc;
            }
    }
    rs_axis_free(&ah);
    rs_axis_free(&aw);
}

void op_resize_bilinear(const float *x, float *y, int64_t B, int64_t H, int64_t W, int64_t C,
                        int64_t Ho, int64_t Wo, int antialias) {
    resize_sep(x, y, B, H, W, C, Ho, Wo, 0, antialias);
}

void op_resize_bicubic(const float *x, float *y, int64_t B, int64_t H, int64_t W, int64_t C,
                       int64_t Ho, int64_t Wo, int antialias) {
    resize_sep(x, y, B, H, W, C, Ho, Wo, 1, antialias);
}
