/*
 * ref.h - naive, obviously-correct twins of the kernels in ops.h.
 *
 * These are the definitions the fast kernels are tested against: plain
 * loops, double accumulation where a sum is long, no blocking, no threads,
 * no oneDNN. Same layouts and argument meanings as ops.h. They are slow on
 * purpose; never call them from model code.
 */
#ifndef LMX_OPS_REF_H
#define LMX_OPS_REF_H

#include <stdint.h>

/* ---- gemm family (ref_gemm.c) ---- */
/* y[M,N] = x[M,K]·W[N,K]^T + bias[N] + beta·y */
void ref_linear(const float *w, const float *bias, int64_t n_out, int64_t n_in, const float *x,
                int64_t ldx, float *y, int64_t ldy, int64_t M, float beta);
void ref_matmul(int64_t batch, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                int64_t lda, int64_t sa, int trans_a, const float *B, int64_t ldb, int64_t sb,
                int trans_b, float beta, float *C, int64_t ldc, int64_t sc);
/* NHWC conv, torch-layout weights [C_out, C_in, kh, kw]. */
void ref_conv2d(const float *w, const float *bias, int64_t c_out, int64_t c_in, int kh, int kw,
                int stride, int pad, const float *x, float *y, int64_t B, int64_t H, int64_t W,
                float beta);

/* ---- everything else (ref_kernels.c) ---- */
void ref_group_norm(const float *x, float *y, int64_t B, int64_t HW, int64_t C, int64_t G,
                    const float *gamma, const float *beta, float eps, int silu);
void ref_layer_norm(const float *x, float *y, int64_t M, int64_t C, const float *gamma,
                    const float *beta, float eps);
void ref_softmax(const float *x, float *y, int64_t M, int64_t N);
void ref_attention(const float *q, int64_t ldq, int64_t sq, const float *k, int64_t ldk,
                   int64_t sk, const float *v, int64_t ldv, int64_t sv, float *o, int64_t ldo,
                   int64_t so, int64_t B, int64_t Lq, int64_t Lk, int64_t H, int64_t D, float scale,
                   int causal);
void ref_silu(const float *x, float *y, int64_t n);
void ref_gelu_erf(const float *x, float *y, int64_t n);
void ref_gelu_tanh(const float *x, float *y, int64_t n);
void ref_quick_gelu(const float *x, float *y, int64_t n);
void ref_geglu(const float *x, float *y, int64_t M, int64_t N);
void ref_upsample_nearest2x(const float *x, float *y, int64_t B, int64_t H, int64_t W, int64_t C);
void ref_resize_nearest(const float *x, float *y, int64_t B, int64_t H, int64_t W, int64_t C,
                        int64_t Ho, int64_t Wo);
void ref_resize_bilinear(const float *x, float *y, int64_t B, int64_t H, int64_t W, int64_t C,
                         int64_t Ho, int64_t Wo, int antialias);
void ref_resize_bicubic(const float *x, float *y, int64_t B, int64_t H, int64_t W, int64_t C,
                        int64_t Ho, int64_t Wo, int antialias);
void ref_timestep_embedding(const float *t, int64_t B, int64_t dim, int flip_sin_to_cos,
                            float shift, float max_period, float *out);

#endif /* LMX_OPS_REF_H */
