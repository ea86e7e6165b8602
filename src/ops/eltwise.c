/*
 * eltwise.c - elementwise kernels of ops.h: silu, gelu (erf and tanh forms),
 * quick_gelu, geglu, add, add_bcast, scale, concat_channels.
 *
 * Formulas follow torch's CPU kernels (torch 2.8, aten/src/ATen/native/cpu/
 * Activation.cpp and UnaryOpsKernel.cpp), evaluated in fp32:
 *   silu(x)       = x / (1 + exp(-x))
 *   quick_gelu(x) = x / (1 + exp(-fl(1.702·x)))   (transformers QuickGELU)
 *   gelu_erf(x)   = fl(0.5·x) · erfc(-x/√2)        (= 0.5x(1 + erf(x/√2)))
 *   gelu_tanh(x)  = x / (1 + exp(-2u)), u = √(2/π)(x + 0.044715x³)
 *                                                  (= 0.5x(1 + tanh u))
 * The two GELUs use the identities on the right so that x << 0 keeps full
 * relative accuracy (torch's 1 + erf(.) cancels there; the difference to
 * torch is below 1e-7·|x|). exp is kv_exp (<= 1 ulp), erfc kv_erfc (our
 * own fit, kern_simd.h); measured errors vs the double twins are in
 * docs/kernels.md.
 *
 * Every kernel processes whole 16-lane vectors and one masked tail, applies
 * the same per-element operations in both, and is parallel over fixed
 * contiguous chunks with OpenMP (results do not depend on the thread count).
 * y may equal x except in geglu (ops.h).
 */
#include <string.h>

#include "ops/kern_simd.h"
#include "ops/ops.h"

/* Elements per parallel chunk: small arrays stay on one thread. */
#define EW_CHUNK 16384

/* Apply `kfn` (a kv -> kv function) to n elements of x into y. */
#define EW_MAP(x, y, n, kfn)                                                 \
    do {                                                                     \
        int64_t n_ = (n);                                                    \
        int64_t nch_ = (n_ + EW_CHUNK - 1) / EW_CHUNK;                       \
        _Pragma("omp parallel for schedule(static) if (nch_ > 1)")           \
        for (int64_t ch_ = 0; ch_ < nch_; ch_++) {                           \
            int64_t i_ = ch_ * EW_CHUNK;                                     \
            int64_t e_ = LMX_MIN(n_, i_ + EW_CHUNK);                         \
            for (; i_ + KV_N <= e_; i_ += KV_N) kv_st((y) + i_, kfn(kv_ld((x) + i_))); \
            if (i_ < e_) kv_stn((y) + i_, kfn(kv_ldn((x) + i_, e_ - i_, 0.0f)), e_ - i_); \
        }                                                                    \
    } while (0)

KV_INLINE kv silu_v(kv x) { return kv_x_over_1p_exp_neg(x, x); }
KV_INLINE kv quick_gelu_v(kv x) { return kv_x_over_1p_exp_neg(x, x * kv_set1(1.702f)); }
KV_INLINE kv gelu_erf_v(kv x) {
    return (x * kv_set1(0.5f)) * kv_erfc(x * kv_set1(-0.70710678118654752440f));
}
KV_INLINE kv gelu_tanh_v(kv x) {
    kv x3 = (x * x) * x;
    kv u = kv_set1(0.79788456080286535588f) * (x + kv_set1(0.044715f) * x3);
    return kv_x_over_1p_exp_neg(x, u + u);
}

void op_silu(const float *x, float *y, int64_t n) { EW_MAP(x, y, n, silu_v); }
void op_gelu_erf(const float *x, float *y, int64_t n) { EW_MAP(x, y, n, gelu_erf_v); }
void op_gelu_tanh(const float *x, float *y, int64_t n) { EW_MAP(x, y, n, gelu_tanh_v); }
void op_quick_gelu(const float *x, float *y, int64_t n) { EW_MAP(x, y, n, quick_gelu_v); }

/* x[M, 2N] -> y[M, N] = x[:, :N] · gelu_erf(x[:, N:]); parallel over rows. */
void op_geglu(const float *x, float *y, int64_t M, int64_t N) {
    int64_t rows_per = LMX_MAX(1, EW_CHUNK / LMX_MAX(N, 1));
    int64_t nch = (M + rows_per - 1) / rows_per;
#pragma omp parallel for schedule(static) if (nch > 1)
    for (int64_t ch = 0; ch < nch; ch++) {
        int64_t m1 = LMX_MIN(M, (ch + 1) * rows_per);
        for (int64_t m = ch * rows_per; m < m1; m++) {
            const float *h = x + m * 2 * N, *g = h + N;
            float *yr = y + m * N;
            int64_t j = 0;
            for (; j + KV_N <= N; j += KV_N) kv_st(yr + j, kv_ld(h + j) * gelu_erf_v(kv_ld(g + j)));
            if (j < N)
                kv_stn(yr + j, kv_ldn(h + j, N - j, 0) * gelu_erf_v(kv_ldn(g + j, N - j, 0)), N - j);
        }
    }
}

void op_add(const float *a, const float *b, float *y, int64_t n) {
    int64_t nch = (n + EW_CHUNK - 1) / EW_CHUNK;
#pragma omp parallel for schedule(static) if (nch > 1)
    for (int64_t ch = 0; ch < nch; ch++) {
        int64_t i = ch * EW_CHUNK, e = LMX_MIN(n, i + EW_CHUNK);
        for (; i + KV_N <= e; i += KV_N) kv_st(y + i, kv_ld(a + i) + kv_ld(b + i));
        if (i < e) kv_stn(y + i, kv_ldn(a + i, e - i, 0) + kv_ldn(b + i, e - i, 0), e - i);
    }
}

void op_add_bcast(const float *x, const float *v, float *y, int64_t M, int64_t C) {
    int64_t rows_per = LMX_MAX(1, EW_CHUNK / LMX_MAX(C, 1));
    int64_t nch = (M + rows_per - 1) / rows_per;
#pragma omp parallel for schedule(static) if (nch > 1)
    for (int64_t ch = 0; ch < nch; ch++) {
        int64_t m1 = LMX_MIN(M, (ch + 1) * rows_per);
        for (int64_t m = ch * rows_per; m < m1; m++) {
            const float *xr = x + m * C;
            float *yr = y + m * C;
            int64_t c = 0;
            for (; c + KV_N <= C; c += KV_N) kv_st(yr + c, kv_ld(xr + c) + kv_ld(v + c));
            if (c < C) kv_stn(yr + c, kv_ldn(xr + c, C - c, 0) + kv_ldn(v + c, C - c, 0), C - c);
        }
    }
}

void op_scale(const float *x, float s, float *y, int64_t n) {
    kv sv = kv_set1(s);
    int64_t nch = (n + EW_CHUNK - 1) / EW_CHUNK;
#pragma omp parallel for schedule(static) if (nch > 1)
    for (int64_t ch = 0; ch < nch; ch++) {
        int64_t i = ch * EW_CHUNK, e = LMX_MIN(n, i + EW_CHUNK);
        for (; i + KV_N <= e; i += KV_N) kv_st(y + i, kv_ld(x + i) * sv);
        if (i < e) kv_stn(y + i, kv_ldn(x + i, e - i, 0) * sv, e - i);
    }
}

/* y[p, :] = [a[p, 0:Ca], b[p, 0:Cb]] for M positions (UNet skip concat). */
void op_concat_channels(const float *a, int64_t Ca, const float *b, int64_t Cb, float *y,
                        int64_t M) {
    int64_t C = Ca + Cb;
    int64_t rows_per = LMX_MAX(1, EW_CHUNK / LMX_MAX(C, 1));
    int64_t nch = (M + rows_per - 1) / rows_per;
#pragma omp parallel for schedule(static) if (nch > 1)
    for (int64_t ch = 0; ch < nch; ch++) {
        int64_t m1 = LMX_MIN(M, (ch + 1) * rows_per);
        for (int64_t m = ch * rows_per; m < m1; m++) {
            memcpy(y + m * C, a + m * Ca, sizeof(float) * (size_t)Ca);
            memcpy(y + m * C + Ca, b + m * Cb, sizeof(float) * (size_t)Cb);
        }
    }
}
