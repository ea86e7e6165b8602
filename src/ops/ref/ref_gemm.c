/*
 * ref_gemm.c - naive twins of op_linear_fwd, op_matmul and op_conv2d_fwd.
 *
 * The definitions the oneDNN kernels in ops/gemm.c and ops/conv.c are tested
 * against: torch.nn.functional.linear, torch.matmul (with BLAS-style
 * alpha/beta) and torch.nn.functional.conv2d (zero padding, dilation 1),
 * written as plain loops with double accumulation, no threads, no blocking.
 * beta = 0 never reads the destination (it may hold NaN/garbage), like BLAS.
 */
#include "ops/ref/ref.h"

#include <stddef.h>

/* y[M,N] = x[M,K]·W[N,K]^T + bias[N] + beta·y */
void ref_linear(const float *w, const float *bias, int64_t n_out, int64_t n_in, const float *x,
                int64_t ldx, float *y, int64_t ldy, int64_t M, float beta) {
    if (ldx == 0) ldx = n_in;
    if (ldy == 0) ldy = n_out;
    for (int64_t m = 0; m < M; m++) {
        for (int64_t n = 0; n < n_out; n++) {
            double acc = 0;
            const float *xr = x + m * ldx, *wr = w + n * n_in;
            for (int64_t k = 0; k < n_in; k++) acc += (double)xr[k] * (double)wr[k];
            if (bias) acc += bias[n];
            if (beta != 0.0f) acc += (double)beta * (double)y[m * ldy + n];
            y[m * ldy + n] = (float)acc;
        }
    }
}

/* C = alpha·op(A)·op(B) + beta·C per batch; op(A)[m,k] = trans_a ? A[k,m] : A[m,k]. */
void ref_matmul(int64_t batch, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                int64_t lda, int64_t sa, int trans_a, const float *B, int64_t ldb, int64_t sb,
                int trans_b, float beta, float *C, int64_t ldc, int64_t sc) {
    for (int64_t b = 0; b < batch; b++) {
        const float *a = A + b * sa, *bb = B + b * sb;
        float *c = C + b * sc;
        for (int64_t m = 0; m < M; m++) {
            for (int64_t n = 0; n < N; n++) {
                double acc = 0;
                for (int64_t k = 0; k < K; k++) {
                    double av = trans_a ? a[k * lda + m] : a[m * lda + k];
                    double bv = trans_b ? bb[n * ldb + k] : bb[k * ldb + n];
                    acc += av * bv;
                }
                acc *= alpha;
                if (beta != 0.0f) acc += (double)beta * (double)c[m * ldc + n];
                c[m * ldc + n] = (float)acc;
            }
        }
    }
}

/* NHWC conv: x[B,H,W,C_in], w[C_out,C_in,kh,kw] -> y[B,Ho,Wo,C_out]. */
void ref_conv2d(const float *w, const float *bias, int64_t c_out, int64_t c_in, int kh, int kw,
                int stride, int pad, const float *x, float *y, int64_t B, int64_t H, int64_t W,
                float beta) {
    int64_t Ho = (H + 2 * pad - kh) / stride + 1;
    int64_t Wo = (W + 2 * pad - kw) / stride + 1;
    for (int64_t b = 0; b < B; b++)
        for (int64_t oh = 0; oh < Ho; oh++)
            for (int64_t ow = 0; ow < Wo; ow++)
                for (int64_t co = 0; co < c_out; co++) {
                    double acc = 0;
                    for (int i = 0; i < kh; i++) {
                        int64_t ih = oh * stride - pad + i;
                        if (ih < 0 || ih >= H) continue;
                        for (int j = 0; j < kw; j++) {
                            int64_t iw = ow * stride - pad + j;
                            if (iw < 0 || iw >= W) continue;
                            const float *xp = x + ((b * H + ih) * W + iw) * c_in;
                            const float *wp = w + (co * c_in * kh + i) * kw + j;
                            for (int64_t ci = 0; ci < c_in; ci++)
                                acc += (double)xp[ci] * (double)wp[ci * kh * kw];
                        }
                    }
                    if (bias) acc += bias[co];
                    float *yp = y + ((b * Ho + oh) * Wo + ow) * c_out + co;
                    if (beta != 0.0f) acc += (double)beta * (double)*yp;
                    *yp = (float)acc;
                }
}
