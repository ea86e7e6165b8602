/*
 * rng.c - torch's CPU generator (MT19937) and its float32 rand/randn kernels,
 * written from the descriptions in docs/numerics.md §11 and checked
 * bit for bit against torch 2.8.0 (tests/unit/test_rng.c,
 * reference/gen_sched.py).
 *
 * Mirrors, in torch: at::mt19937 (init_with_uint32, next_state, tempering),
 * CPUGeneratorImpl::random / random64, uniform_real_distribution,
 * normal_distribution<double> with the generator's cached sine value, and the
 * CPU normal kernel's two float32 paths: normal_fill_AVX2 (avx_mathfun.h
 * polynomials; what torch 2.8.0 runs on x86 with AVX2 or AVX-512) and the
 * generic normal_fill.
 *
 * Every float expression is written in the operation order of the torch
 * kernel and compiled with -ffp-contract=off; the two places where torch's
 * AVX2 build fuses a multiply and an add use fmaf() explicitly.
 */
#include "sched/rng.h"

#include <math.h>
#include <string.h>

#define MT_N 624
#define MT_M 397

/* ---- engine ---------------------------------------------------------------- */

void rng_seed(rng_state *r, uint64_t seed) {
    r->path = RNG_PATH_AVX2;
    r->seed = seed;
    r->mt[0] = (uint32_t)(seed & 0xffffffffu);
    for (int j = 1; j < MT_N; j++)
        r->mt[j] = 1812433253u * (r->mt[j - 1] ^ (r->mt[j - 1] >> 30)) + (uint32_t)j;
    r->left = 1;
    r->next = 0;
    r->has_normal = 0;
    r->next_normal = 0.0;
}

void rng_init(rng_state *r, uint64_t seed, rng_path path) {
    rng_seed(r, seed);
    r->path = path;
}

/* Regenerate the 624 words (the reference MT19937 twist). */
static void mt_twist(rng_state *r) {
    uint32_t *s = r->mt;
    for (int i = 0; i < MT_N; i++) {
        uint32_t y = (s[i] & 0x80000000u) | (s[(i + 1) % MT_N] & 0x7fffffffu);
        uint32_t v = s[(i + MT_M) % MT_N] ^ (y >> 1);
        if (y & 1u) v ^= 0x9908b0dfu;
        s[i] = v;
    }
    r->left = MT_N;
    r->next = 0;
}

uint32_t rng_u32(rng_state *r) {
    if (--r->left == 0) mt_twist(r);
    uint32_t y = r->mt[r->next++];
    y ^= y >> 11;
    y ^= (y << 7) & 0x9d2c5680u;
    y ^= (y << 15) & 0xefc60000u;
    y ^= y >> 18;
    return y;
}

uint64_t rng_u64(rng_state *r) {
    uint32_t hi = rng_u32(r);
    uint32_t lo = rng_u32(r);
    return ((uint64_t)hi << 32) | lo;
}

float rng_uniform_f32(rng_state *r) {
    /* (val & (2^24 - 1)) * 2^-24, then * (to - from) + from = *1 + 0: exact. */
    return (float)(rng_u32(r) & 0xffffffu) * (1.0f / 16777216.0f);
}

double rng_uniform_f64(rng_state *r) {
    return (double)(rng_u64(r) & ((UINT64_C(1) << 53) - 1)) * (1.0 / 9007199254740992.0);
}

/* torch normal_distribution<double>(0, 1): two uniforms u1, u2 (in that
 * order), r = sqrt(-2 log1p(-u2)), theta = 2 pi u1; returns r cos theta and
 * caches r sin theta. The final "* std + mean" (1 and 0) is kept: + 0.0
 * turns a -0 into +0 as torch's kernel does. */
double rng_normal_f64(rng_state *r) {
    if (r->has_normal) {
        r->has_normal = 0;
        return r->next_normal * 1.0 + 0.0;
    }
    double u1 = rng_uniform_f64(r);
    double u2 = rng_uniform_f64(r);
    double rad = sqrt(-2.0 * log1p(-u2));
    double theta = 2.0 * 3.14159265358979323846 * u1;
    r->next_normal = rad * sin(theta);
    r->has_normal = 1;
    return rad * cos(theta) * 1.0 + 0.0;
}

void rng_rand(rng_state *r, float *out, int64_t n) {
    for (int64_t i = 0; i < n; i++) out[i] = rng_uniform_f32(r);
}

/* ---- block transform, portable path (torch normal_fill_16) ---------------- */

static void fill16_portable(float *d) {
    for (int j = 0; j < 8; j++) {
        const float u1 = 1.0f - d[j];
        const float u2 = d[j + 8];
        const float radius = sqrtf(-2.0f * logf(u1));
        /* 2.0f * pi<double> * u2: a double product rounded to float. */
        const float theta = (float)(2.0 * 3.14159265358979323846 * (double)u2);
        d[j] = radius * cosf(theta) * 1.0f + 0.0f;
        d[j + 8] = radius * sinf(theta) * 1.0f + 0.0f;
    }
}

/* ---- block transform, AVX2 path (torch normal_fill_16_AVX2) ----------------
 * avx_mathfun.h's log256_ps and sincos256_ps (Cephes polynomials), one lane
 * at a time. torch's AVX2 kernels are built by GCC with -mfma, which
 * contracts a multiply whose only use is an add/sub into an FMA (the earlier
 * statement wins when both operands of an add are products). Those
 * contractions are written as fmaf(); everything else rounds after each
 * operation. Checked bit for bit against torch 2.8.0 on millions of values
 * (tests/unit/test_rng.c). */

static float f_from_bits(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}
static uint32_t bits_from_f(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

/* log256_ps for one lane; x is in (0, 1] here (1 - uniform). */
static float avx2_log(float x) {
    const float p[9] = {7.0376836292E-2f,  -1.1514610310E-1f, 1.1676998740E-1f,
                        -1.2420140846E-1f, +1.4249322787E-1f, -1.6668057665E-1f,
                        +2.0000714765E-1f, -2.4999993993E-1f, +3.3333331174E-1f};
    const float q1 = -2.12194440e-4f, q2 = 0.693359375f;
    int invalid = !(x > 0.0f); /* _CMP_LE_OS against 0 (NaN counts as invalid) */
    const float min_norm = f_from_bits(0x00800000u);
    x = x > min_norm ? x : min_norm; /* _mm256_max_ps(x, min_norm): x if x > m */
    uint32_t bx = bits_from_f(x);
    int32_t imm0 = (int32_t)(bx >> 23);
    x = f_from_bits((bx & ~0x7f800000u) | bits_from_f(0.5f));
    imm0 -= 0x7f;
    float e = (float)imm0;
    e = e + 1.0f;
    float tmp = x < 0.707106781186547524f ? x : 0.0f;
    float one_m = x < 0.707106781186547524f ? 1.0f : 0.0f;
    x = x - 1.0f;
    e = e - one_m;
    x = x + tmp;
    float z = x * x;
    float y = p[0];
    for (int k = 1; k < 9; k++) y = fmaf(y, x, p[k]);
    y = y * x;
    y = fmaf(y, z, e * q1); /* y*z is contracted with the add of e*q1 */
    y = y - z * 0.5f;       /* z*0.5 is exact: fused or not, the same */
    x = x + y;
    x = fmaf(e, q2, x);
    if (invalid) x = f_from_bits(bits_from_f(x) | 0xffffffffu);
    return x;
}

/* sincos256_ps for one lane (theta in [0, 2 pi) here). */
static void avx2_sincos(float x, float *s, float *c) {
    const float DP1 = -0.78515625f, DP2 = -2.4187564849853515625e-4f,
                DP3 = -3.77489497744594108e-8f;
    const float sp0 = -1.9515295891E-4f, sp1 = 8.3321608736E-3f, sp2 = -1.6666654611E-1f;
    const float cp0 = 2.443315711809948E-005f, cp1 = -1.388731625493765E-003f,
                cp2 = 4.166664568298827E-002f;
    const float FOPI = 1.27323954473516f;
    uint32_t sign_sin = bits_from_f(x) & 0x80000000u;
    x = f_from_bits(bits_from_f(x) & 0x7fffffffu);
    float y = x * FOPI;
    int32_t j = (int32_t)y; /* cvtt: truncation */
    j = (j + 1) & ~1;
    y = (float)j;
    int32_t j4 = j;
    uint32_t swap_sin = ((uint32_t)j & 4u) << 29;
    int poly2 = ((j & 2) == 0); /* poly_mask: the sine polynomial for sin */
    x = fmaf(y, DP1, x);
    x = fmaf(y, DP2, x);
    x = fmaf(y, DP3, x);
    j4 = j4 - 2;
    uint32_t sign_cos = ((uint32_t)(~j4) & 4u) << 29;
    sign_sin ^= swap_sin;
    float z = x * x;
    float yc = cp0;
    yc = fmaf(yc, z, cp1);
    yc = fmaf(yc, z, cp2);
    yc = yc * z;
    yc = fmaf(yc, z, -(z * 0.5f)); /* (y*z) - z*0.5: the first product is fused */
    yc = yc + 1.0f;
    float ys = sp0;
    ys = fmaf(ys, z, sp1);
    ys = fmaf(ys, z, sp2);
    ys = ys * z;
    ys = fmaf(ys, x, x);
    /* select: sin takes ys where poly2, else yc; cos takes the other. The
     * vector code does this with and/andnot, subtractions and additions of
     * zeros, which are exact except for the sign of zero. */
    float ysin2 = poly2 ? ys : 0.0f;
    float ysin1 = poly2 ? 0.0f : yc;
    float y2 = ys - ysin2;
    float y1 = yc - ysin1;
    float sv = ysin1 + ysin2;
    float cv = y1 + y2;
    *s = f_from_bits(bits_from_f(sv) ^ sign_sin);
    *c = f_from_bits(bits_from_f(cv) ^ sign_cos);
}

static void fill16_avx2(float *d) {
    const float two_pi = 2.0f * 3.14159265358979323846f;
    for (int j = 0; j < 8; j++) {
        const float u1 = 1.0f - d[j];
        const float u2 = d[j + 8];
        const float radius = sqrtf(-2.0f * avx2_log(u1));
        const float theta = two_pi * u2;
        float s, c;
        avx2_sincos(theta, &s, &c);
        const float n1 = radius * c;
        const float n2 = radius * s;
        d[j] = fmaf(n1, 1.0f, 0.0f);
        d[j + 8] = fmaf(n2, 1.0f, 0.0f);
    }
}

/* ---- randn ----------------------------------------------------------------- */

void rng_randn(rng_state *r, float *out, int64_t n) {
    if (n <= 0) return;
    if (n < 16) {
        /* torch: normal_distribution<double> per element, cast to float. */
        for (int64_t i = 0; i < n; i++) out[i] = (float)rng_normal_f64(r);
        return;
    }
    void (*fill16)(float *) = r->path == RNG_PATH_PORTABLE ? fill16_portable : fill16_avx2;
    for (int64_t i = 0; i < n; i++) out[i] = rng_uniform_f32(r);
    for (int64_t i = 0; i + 16 <= n; i += 16) fill16(out + i);
    if (n % 16 != 0) {
        float *tail = out + n - 16;
        for (int k = 0; k < 16; k++) tail[k] = rng_uniform_f32(r);
        fill16(tail);
    }
}

const char *rng_path_name(rng_path p) {
    return p == RNG_PATH_PORTABLE ? "portable" : "avx2";
}

lmx_status rng_path_parse(const char *s, rng_path *out) {
    if (s && (!strcmp(s, "portable") || !strcmp(s, "default"))) {
        *out = RNG_PATH_PORTABLE;
        return LMX_OK;
    }
    if (s && (!strcmp(s, "avx2") || !strcmp(s, "x86"))) {
        *out = RNG_PATH_AVX2;
        return LMX_OK;
    }
    return lmx_err(LMX_ERR_ARG, "rng path '%s': expected 'avx2' (torch on x86, the default) or "
                   "'portable' (torch's generic kernel)", s ? s : "(null)");
}
