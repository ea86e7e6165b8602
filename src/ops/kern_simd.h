/*
 * kern_simd.h - internal to src/ops: a 16-lane fp32 vector type and the
 * vectorised transcendental functions the kernels of norm.c, attention.c,
 * eltwise.c and resample.c share (exp, exp2, sigmoid, erfc).
 *
 * With AVX-512 (the default -march=native build on the target machine) the
 * vector is __m512 and the helpers are intrinsics, including FMA, masked
 * loads/stores for row tails and vscalefps for exp. Without it the same
 * functions are written with GCC/clang generic vectors (the compiler lowers
 * them to whatever the target has) and plain multiplies and adds, so every
 * build computes the same formulas; bits may differ between the two builds
 * (FMA vs. separate rounding), never between runs of one build.
 *
 * Accuracy (measured exhaustively over all finite floats, see docs/kernels.md):
 *   kv_exp  <= 1 ulp (subnormal results included), exp(-inf) = 0, NaN -> NaN.
 *   kv_exp2 about 1 ulp; kv_erfc a few ulp (its own fit, below).
 *
 * Nothing here allocates or fails. Not part of the public or ops.h API.
 */
#ifndef LMX_OPS_KERN_SIMD_H
#define LMX_OPS_KERN_SIMD_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#if defined(__AVX512F__)
#include <immintrin.h>
#define KV_AVX512 1
typedef __m512 kv;
#else
#define KV_AVX512 0
#if defined(__GNUC__)
/* 64-byte generic vectors in static inline helpers: no ABI is involved
 * (gcc and clang both honour this pragma). */
#pragma GCC diagnostic ignored "-Wpsabi"
#endif
typedef float kv __attribute__((vector_size(64)));
typedef int32_t kvi __attribute__((vector_size(64)));
typedef float kv_u __attribute__((vector_size(64), aligned(4), may_alias));
#endif

#define KV_N 16 /* lanes */

#if defined(__GNUC__)
#define KV_INLINE static inline __attribute__((always_inline))
#else
#define KV_INLINE static inline
#endif

/* ---- loads, stores, constants ---- */

#if KV_AVX512
KV_INLINE kv kv_set1(float a) { return _mm512_set1_ps(a); }
KV_INLINE kv kv_zero(void) { return _mm512_setzero_ps(); }
KV_INLINE kv kv_ld(const float *p) { return _mm512_loadu_ps(p); }
KV_INLINE void kv_st(float *p, kv v) { _mm512_storeu_ps(p, v); }
/* First n (0..16) lanes from p, the others `fill`. Reads only p[0..n-1]. */
KV_INLINE kv kv_ldn(const float *p, int64_t n, float fill) {
    return _mm512_mask_loadu_ps(_mm512_set1_ps(fill), (__mmask16)((1u << n) - 1u), p);
}
KV_INLINE void kv_stn(float *p, kv v, int64_t n) {
    _mm512_mask_storeu_ps(p, (__mmask16)((1u << n) - 1u), v);
}
#else
KV_INLINE kv kv_set1(float a) { return (kv){0} + a; }
KV_INLINE kv kv_zero(void) { return (kv){0}; }
KV_INLINE kv kv_ld(const float *p) { return *(const kv_u *)p; }
KV_INLINE void kv_st(float *p, kv v) { *(kv_u *)p = v; }
KV_INLINE kv kv_ldn(const float *p, int64_t n, float fill) {
    kv r = kv_set1(fill);
    for (int64_t i = 0; i < n; i++) r[i] = p[i];
    return r;
}
KV_INLINE void kv_stn(float *p, kv v, int64_t n) {
    for (int64_t i = 0; i < n; i++) p[i] = v[i];
}
#endif

/* ---- arithmetic that operators do not cover ---- */

#if KV_AVX512
KV_INLINE kv kv_fma(kv a, kv b, kv c) { return _mm512_fmadd_ps(a, b, c); } /* a·b + c */
/* max/min: a NaN in `b` propagates (vmaxps returns its second operand). */
KV_INLINE kv kv_max(kv a, kv b) { return _mm512_max_ps(a, b); }
KV_INLINE kv kv_min(kv a, kv b) { return _mm512_min_ps(a, b); }
KV_INLINE kv kv_abs(kv a) { return _mm512_abs_ps(a); }
KV_INLINE float kv_lane(kv v, int i) {
    float t[KV_N];
    _mm512_storeu_ps(t, v);
    return t[i];
}
/* a > b ? fill : x, per lane */
KV_INLINE kv kv_fill_gt(kv a, kv b, kv x, kv fill) {
    return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(a, b, _CMP_GT_OQ), x, fill);
}
/* 0, 1, ..., 15 */
KV_INLINE kv kv_iota(void) {
    return _mm512_set_ps(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
}
#else
KV_INLINE kv kv_sel(kvi m, kv a, kv b) { return (kv)((m & (kvi)a) | (~m & (kvi)b)); }
KV_INLINE kv kv_fma(kv a, kv b, kv c) { return a * b + c; }
KV_INLINE kv kv_max(kv a, kv b) { return kv_sel(a > b, a, b); }
KV_INLINE kv kv_min(kv a, kv b) { return kv_sel(a < b, a, b); }
KV_INLINE kv kv_abs(kv a) { return (kv)((kvi)a & 0x7fffffff); }
KV_INLINE float kv_lane(kv v, int i) { return v[i]; }
KV_INLINE kv kv_fill_gt(kv a, kv b, kv x, kv fill) { return kv_sel(a > b, fill, x); }
KV_INLINE kv kv_iota(void) { return (kv){0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}; }
#endif

/* Horizontal reductions in a fixed order (a pairwise tree over lanes), so
 * the result does not depend on anything but the 16 values. */
KV_INLINE float kv_hsum(kv v) {
    float t[KV_N];
    memcpy(t, &v, sizeof t);
    for (int w = KV_N / 2; w >= 1; w /= 2)
        for (int i = 0; i < w; i++) t[i] = t[i] + t[i + w];
    return t[0];
}
KV_INLINE double kv_hsum_d(kv v) {
    float t[KV_N];
    double d[KV_N];
    memcpy(t, &v, sizeof t);
    for (int i = 0; i < KV_N; i++) d[i] = t[i];
    for (int w = KV_N / 2; w >= 1; w /= 2)
        for (int i = 0; i < w; i++) d[i] = d[i] + d[i + w];
    return d[0];
}
KV_INLINE float kv_hmax(kv v) {
    float t[KV_N];
    memcpy(t, &v, sizeof t);
    float m = t[0];
    for (int i = 1; i < KV_N; i++) m = t[i] > m ? t[i] : m;
    return m;
}

/* ---- exp ----
 * exp(x) = 2^n · e^r, n = round(x·log2 e), r = x - n·ln2 (two-constant
 * Cody-Waite), e^r by a degree-6 polynomial fitted for relative error
 * (3.1e-9 on |r| <= ln2/2; reference/fit_vmath.py). Inputs are clamped to [-104, 89] first: below,
 * the result is 0 anyway, above it overflows to +inf; NaN passes through. */
#define KV_EXP_C2 0.4999999403953552f
#define KV_EXP_C3 0.1666652113199234f
#define KV_EXP_C4 0.04166838899254799f
#define KV_EXP_C5 0.008368711918592453f
#define KV_EXP_C6 0.0013814454432576895f

#if KV_AVX512
KV_INLINE kv kv_exp(kv x) {
    x = _mm512_max_ps(_mm512_set1_ps(-104.0f), x); /* NaN in x survives */
    x = _mm512_min_ps(_mm512_set1_ps(89.0f), x);
    kv n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    kv r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    kv p = _mm512_fmadd_ps(_mm512_set1_ps(KV_EXP_C6), r, _mm512_set1_ps(KV_EXP_C5));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(KV_EXP_C4));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(KV_EXP_C3));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(KV_EXP_C2));
    p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), r);
    p = _mm512_add_ps(p, _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, n);
}
#else
KV_INLINE kv kv_exp(kv x) {
    kv xc = kv_min(kv_max(x, kv_set1(-104.0f)), kv_set1(89.0f));
    kv t = xc * 1.44269504088896341f + 12582912.0f; /* round to nearest via 1.5·2^23 */
    kv n = t - 12582912.0f;
    kvi ni = (kvi)t - 0x4B400000;
    kv r = xc - n * 0.693359375f;
    r = r + n * 2.12194440e-4f;
    kv p = r * KV_EXP_C6 + KV_EXP_C5;
    p = p * r + KV_EXP_C4;
    p = p * r + KV_EXP_C3;
    p = p * r + KV_EXP_C2;
    p = (r * r) * p + r;
    p = p + 1.0f;
    /* 2^n as two factors so that n in [-150, 128] never leaves the range
     * of a normal scale; the second multiply rounds once into subnormals. */
    kvi n1 = ni >> 1, n2 = ni - n1;
    kv y = (p * (kv)((n1 + 127) << 23)) * (kv)((n2 + 127) << 23);
    return kv_sel(x != x, x, y);
}
#endif

/* ---- exp2 ----
 * 2^x = 2^n · 2^r, n = round(x), r = x - n exactly, 2^r by a degree-6
 * polynomial (relative error 2e-9 on |r| <= 1/2; about 1 ulp after fp32
 * evaluation). Used by attention, whose scores are pre-scaled by log2(e).
 * Clamped to [-151, 129] like kv_exp; NaN passes through. */
#define KV_EXP2_C1 0.6931471824645996f
#define KV_EXP2_C2 0.24022647738456726f
#define KV_EXP2_C3 0.055503323674201965f
#define KV_EXP2_C4 0.00961843691766262f
#define KV_EXP2_C5 0.0013398885494098067f
#define KV_EXP2_C6 0.00015353587514255196f

#if KV_AVX512
KV_INLINE kv kv_exp2(kv x) {
    x = _mm512_max_ps(_mm512_set1_ps(-151.0f), x);
    x = _mm512_min_ps(_mm512_set1_ps(129.0f), x);
    kv n = _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    kv r = _mm512_sub_ps(x, n);
    kv p = _mm512_fmadd_ps(_mm512_set1_ps(KV_EXP2_C6), r, _mm512_set1_ps(KV_EXP2_C5));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(KV_EXP2_C4));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(KV_EXP2_C3));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(KV_EXP2_C2));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(KV_EXP2_C1));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, n);
}
#else
KV_INLINE kv kv_exp2(kv x) {
    kv xc = kv_min(kv_max(x, kv_set1(-151.0f)), kv_set1(129.0f));
    kv t = xc + 12582912.0f;
    kv n = t - 12582912.0f;
    kvi ni = (kvi)t - 0x4B400000;
    kv r = xc - n;
    kv p = r * KV_EXP2_C6 + KV_EXP2_C5;
    p = p * r + KV_EXP2_C4;
    p = p * r + KV_EXP2_C3;
    p = p * r + KV_EXP2_C2;
    p = p * r + KV_EXP2_C1;
    p = p * r + 1.0f;
    kvi n1 = ni >> 1, n2 = ni - n1;
    kv y = (p * (kv)((n1 + 127) << 23)) * (kv)((n2 + 127) << 23);
    return kv_sel(x != x, x, y);
}
#endif

/* sigmoid-type helper: x / (1 + exp(-z)), the form torch's CPU kernels use
 * for silu (z = x) and sigmoid. */
KV_INLINE kv kv_x_over_1p_exp_neg(kv x, kv z) {
    return x / (kv_set1(1.0f) + kv_exp(kv_zero() - z));
}

/* ---- erfc ----
 * erfc(a), a = |w| >= 0, our own fits (reference/fit_vmath.py prints every
 * coefficient of this file):
 *   a < 0.75:  1 - a·Q(a²), Q of degree 5 fitted to erf(a)/a (5.5e-10
 *              absolute);
 *   a >= 0.75: t·exp(P(t) - a²) with t = 1/(1 + a) and P of degree 10 in
 *              (t - 1/3) fitted to log(erfc(a)/t) + a² on a in [0.75, 9.5]
 *              (3.3e-10 in double). a² is split exactly into hi + lo (an
 *              fma), P - hi into r + err (Fast2Sum: |hi| >= |P| there), and
 *              exp(P - a²) = exp(r)·(1 + err - lo), so the result keeps its
 *              relative accuracy down to the underflow (a ~ 9.2).
 * a is clamped at 12 (erfc is 0 in fp32 there); erfc(w) = 2 - erfc(-w) for
 * w < 0; NaN passes through. About 50 vector operations (both branches,
 * then a blend), 3-4x faster than SLEEF's erfcf_u15; the GELU built on it is
 * within 5 ulp of the exact value wherever |gelu(x)| >= 1e-30 (exhaustive
 * check over all floats). */
#define KV_ERFC_P0 -0.26632896065711975f
#define KV_ERFC_P1 0.7634472250938416f
#define KV_ERFC_P2 -0.6141602993011475f
#define KV_ERFC_P3 -0.18299026787281036f
#define KV_ERFC_P4 0.7939887046813965f
#define KV_ERFC_P5 -0.5083995461463928f
#define KV_ERFC_P6 -0.8047342300415039f
#define KV_ERFC_P7 2.1158885955810547f
#define KV_ERFC_P8 -1.204545259475708f
#define KV_ERFC_P9 -3.370901584625244f
#define KV_ERFC_P10 6.037154197692871f
#define KV_ERFC_T0 0.3333333432674408f

/* lo = a·a - fl(a·a), exactly */
#if KV_AVX512
KV_INLINE kv kv_sq_lo(kv a, kv hi) { return _mm512_fmsub_ps(a, a, hi); }
#else
KV_INLINE kv kv_sq_lo(kv a, kv hi) {
    kv r;
    for (int i = 0; i < KV_N; i++) r[i] = fmaf(a[i], a[i], -hi[i]);
    return r;
}
#endif

#define KV_ERF_Q0 1.1283791065216064f
#define KV_ERF_Q1 -0.37612590193748474f
#define KV_ERF_Q2 0.11283109337091446f
#define KV_ERF_Q3 -0.02682388946413994f
#define KV_ERF_Q4 0.0050954148173332214f
#define KV_ERF_Q5 -0.000662792066577822f

KV_INLINE kv kv_erfc(kv w) {
    kv a = kv_min(kv_set1(12.0f), kv_abs(w)); /* NaN survives */
    /* a < 0.75: 1 - a·Q(a²), Q fitted to erf(a)/a (5.5e-10 absolute) */
    kv z = a * a;
    kv q = kv_fma(kv_set1(KV_ERF_Q5), z, kv_set1(KV_ERF_Q4));
    q = kv_fma(q, z, kv_set1(KV_ERF_Q3));
    q = kv_fma(q, z, kv_set1(KV_ERF_Q2));
    q = kv_fma(q, z, kv_set1(KV_ERF_Q1));
    q = kv_fma(q, z, kv_set1(KV_ERF_Q0));
    kv small = kv_set1(1.0f) - a * q;
    kv t = kv_set1(1.0f) / (a + kv_set1(1.0f));
    kv s = t - kv_set1(KV_ERFC_T0);
    kv p = kv_fma(kv_set1(KV_ERFC_P10), s, kv_set1(KV_ERFC_P9));
    p = kv_fma(p, s, kv_set1(KV_ERFC_P8));
    p = kv_fma(p, s, kv_set1(KV_ERFC_P7));
    p = kv_fma(p, s, kv_set1(KV_ERFC_P6));
    p = kv_fma(p, s, kv_set1(KV_ERFC_P5));
    p = kv_fma(p, s, kv_set1(KV_ERFC_P4));
    p = kv_fma(p, s, kv_set1(KV_ERFC_P3));
    p = kv_fma(p, s, kv_set1(KV_ERFC_P2));
    p = kv_fma(p, s, kv_set1(KV_ERFC_P1));
    p = kv_fma(p, s, kv_set1(KV_ERFC_P0));
    /* exp(P - a²) with P - a² = r + err exactly (a² = hi + lo exactly,
     * Fast2Sum of -hi and P: |hi| >= |P| wherever this branch is used) */
    kv hi = a * a;
    kv lo = kv_sq_lo(a, hi);
    kv r = p - hi;
    kv err = p - (r + hi);
    kv e = (t * kv_exp(r)) * (kv_set1(1.0f) + (err - lo));
#if KV_AVX512
    e = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(a, _mm512_set1_ps(0.75f), _CMP_LT_OQ), e, small);
    return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(w, _mm512_setzero_ps(), _CMP_LT_OQ), e,
                                _mm512_sub_ps(_mm512_set1_ps(2.0f), e));
#else
    e = kv_sel(a < 0.75f, small, e);
    return kv_sel(w < 0.0f, kv_set1(2.0f) - e, e);
#endif
}

#endif /* LMX_OPS_KERN_SIMD_H */
