/*
 * ops.h - CPU compute kernels for SD1.5 (UNet, VAE), CLIP and ViT models.
 *
 * Layout conventions
 *   - Activations of convolutional nets are NHWC: x[b][h][w][c]. A feature
 *     map [B, H, W, C] is also the token matrix [B, H*W, C] of its
 *     transformer blocks, so 1x1 convs are plain linears.
 *   - Weights are given in PyTorch layout: linear [N_out, K_in], conv
 *     [C_out, C_in, kh, kw]. *_create copies them into the layout the fast
 *     kernel prefers (oneDNN "any", reordered once), so the caller may free
 *     or unmap its copy afterwards.
 *   - Every kernel is fp32 in and out. OP_PREC_BF16 asks a prepared weight to
 *     compute in bf16 with fp32 accumulation (opt-in speed mode; never used by
 *     the parity tests).
 *   - Kernels never see model names: they take pointers and sizes.
 *
 * Every fast kernel has a naive twin in ops/ref/ref.h that the tests diff
 * against; the twin is the definition of what the kernel computes.
 *
 * Threads: kernels use OpenMP (the runtime oneDNN uses); lmx_set_threads sets
 * the count. Reductions use a fixed order independent of the thread schedule,
 * so the same inputs and thread count give the same bits.
 */
#ifndef LMX_OPS_H
#define LMX_OPS_H

#include "core/core.h"

typedef enum op_prec {
    OP_PREC_F32 = 0,
    OP_PREC_BF16,
} op_prec;

/* bf16 needs oneDNN kernels that exist only on AVX-512 CPUs. _supported()
 * probes once; _check() returns LMX_ERR_UNSUPPORTED with a message naming
 * `what` and the CPU's instruction set when they are missing. */
int op_bf16_supported(void);
lmx_status op_bf16_check(const char *what);
const char *op_cpu_isa_name(void);

/* Per-thread kernel state: oneDNN engine and stream, primitive cache,
 * scratch buffers. Create one per thread that runs kernels. */
typedef struct op_ctx op_ctx;
lmx_status op_ctx_create(op_ctx **out);
void op_ctx_free(op_ctx *ctx);
/* Bytes of scratch buffers a context holds (they grow to the largest call). */
size_t op_ctx_bytes(const op_ctx *ctx);

/* ---- linear ----
 * y[M, N] = x[M, K] · W[N, K]^T + bias[N]           (beta = 0)
 * y[M, N] = x[M, K] · W[N, K]^T + bias[N] + y[M, N] (beta = 1: residual add)
 * bias may be NULL. x and y must not overlap. lda/ldy: row strides of x and y
 * in elements (0 = dense: K and N). */
typedef struct op_linear op_linear;
lmx_status op_linear_create(op_linear **out, const float *w, const float *bias, int64_t n_out,
                            int64_t n_in, op_prec prec);
void op_linear_free(op_linear *l);
int64_t op_linear_n_out(const op_linear *l);
int64_t op_linear_n_in(const op_linear *l);
/* Bytes of weights (packed, plus any layout variant) and bias it holds. */
size_t op_linear_bytes(const op_linear *l);
lmx_status op_linear_fwd(op_ctx *ctx, const op_linear *l, const float *x, int64_t ldx, float *y,
                         int64_t ldy, int64_t M, float beta);

/* ---- plain matmul on dynamic operands (attention, LoRA side paths) ----
 * C[M, N] = alpha · op(A) · op(B) + beta · C, with op(A) = A[M, K] (or
 * A[K, M]^T if trans_a) and op(B) = B[K, N] (or B[N, K]^T if trans_b);
 * lda/ldb/ldc are row strides in elements. Batched over `batch` with element
 * strides sa, sb, sc between consecutive matrices. */
lmx_status op_matmul(op_ctx *ctx, int64_t batch, int64_t M, int64_t N, int64_t K, float alpha,
                     const float *A, int64_t lda, int64_t sa, int trans_a, const float *B,
                     int64_t ldb, int64_t sb, int trans_b, float beta, float *C, int64_t ldc,
                     int64_t sc);

/* ---- conv2d, NHWC ----
 * x[B, H, W, C_in] -> y[B, Ho, Wo, C_out], Ho = (H + 2·pad - kh)/stride + 1.
 * Zero padding, dilation 1, optional bias. beta = 1 adds into y (residual). */
typedef struct op_conv2d op_conv2d;
enum { OP_CONV_WINOGRAD = 1 }; /* flags: allow Winograd for 3x3 stride 1 (fp32) */
lmx_status op_conv2d_create(op_conv2d **out, const float *w, const float *bias, int64_t c_out,
                            int64_t c_in, int kh, int kw, int stride, int pad, op_prec prec,
                            unsigned flags);
void op_conv2d_free(op_conv2d *c);
size_t op_conv2d_bytes(const op_conv2d *c); /* as op_linear_bytes */
void op_conv2d_out_hw(const op_conv2d *c, int64_t H, int64_t W, int64_t *Ho, int64_t *Wo);
lmx_status op_conv2d_fwd(op_ctx *ctx, const op_conv2d *c, const float *x, float *y, int64_t B,
                         int64_t H, int64_t W, float beta);

/* ---- normalisation ----
 * group_norm: x[B, HW, C] (NHWC), G groups of C/G consecutive channels,
 * statistics over (HW, C/G) per (b, g), biased variance,
 * y = (x - mean)/sqrt(var + eps)·gamma[c] + beta[c]; silu != 0 applies
 * SiLU after. y may equal x. */
void op_group_norm(const float *x, float *y, int64_t B, int64_t HW, int64_t C, int64_t G,
                   const float *gamma, const float *beta, float eps, int silu);
/* layer_norm over the last dim: x[M, C]; gamma/beta may be NULL (no affine). */
void op_layer_norm(const float *x, float *y, int64_t M, int64_t C, const float *gamma,
                   const float *beta, float eps);
/* softmax over each row of x[M, N]; y may equal x. */
void op_softmax(const float *x, float *y, int64_t M, int64_t N);

/* ---- attention ----
 * Multi-head scaled dot-product attention. Token-major, heads interleaved in
 * channels (as the q/k/v linears produce them):
 *   q[b, i, h·D + d] at q + b·sq + i·ldq + h·D + d   (Lq rows per batch)
 *   k, v likewise with Lk rows; o[b, i, h·D + d] written with ldo, so.
 * o = softmax(scale · q·k^T [+ causal mask]) · v per (b, h). Causal: query i
 * sees keys 0..i. Tiled over query blocks with an online softmax: never holds
 * an Lq x Lk score matrix (L = 4096 or 12288 in the UNet/VAE). */
lmx_status op_attention(op_ctx *ctx, const float *q, int64_t ldq, int64_t sq, const float *k,
                        int64_t ldk, int64_t sk, const float *v, int64_t ldv, int64_t sv, float *o,
                        int64_t ldo, int64_t so, int64_t B, int64_t Lq, int64_t Lk, int64_t H,
                        int64_t D, float scale, int causal);

/* ---- elementwise (y may equal x) ---- */
void op_silu(const float *x, float *y, int64_t n);       /* x·sigmoid(x)              */
void op_gelu_erf(const float *x, float *y, int64_t n);   /* 0.5x(1+erf(x/√2))          */
void op_gelu_tanh(const float *x, float *y, int64_t n);  /* tanh approximation         */
void op_quick_gelu(const float *x, float *y, int64_t n); /* x·sigmoid(1.702x)          */
/* GEGLU: x[M, 2N] -> y[M, N] = x[:, :N] · gelu_erf(x[:, N:]). y must not alias x. */
void op_geglu(const float *x, float *y, int64_t M, int64_t N);
void op_add(const float *a, const float *b, float *y, int64_t n); /* y = a + b */
/* y[m, c] = x[m, c] + v[c] for x[M, C] (broadcast a channel vector). */
void op_add_bcast(const float *x, const float *v, float *y, int64_t M, int64_t C);
void op_scale(const float *x, float s, float *y, int64_t n);     /* y = s·x */

/* ---- resampling, NHWC ----
 * nearest: torch F.interpolate(mode="nearest"): src = floor(dst · in/out). */
void op_upsample_nearest2x(const float *x, float *y, int64_t B, int64_t H, int64_t W, int64_t C);
void op_resize_nearest(const float *x, float *y, int64_t B, int64_t H, int64_t W, int64_t C,
                       int64_t Ho, int64_t Wo);
/* bilinear / bicubic as torch F.interpolate(align_corners=False,
 * antialias=antialias); bicubic uses A = -0.75, borders clamped. */
void op_resize_bilinear(const float *x, float *y, int64_t B, int64_t H, int64_t W, int64_t C,
                        int64_t Ho, int64_t Wo, int antialias);
void op_resize_bicubic(const float *x, float *y, int64_t B, int64_t H, int64_t W, int64_t C,
                       int64_t Ho, int64_t Wo, int antialias);
/* Channel concat: y[b, p, :] = [a[b, p, 0:Ca], b[b, p, 0:Cb]] for M = B·H·W positions. */
void op_concat_channels(const float *a, int64_t Ca, const float *b, int64_t Cb, float *y,
                        int64_t M);

/* ---- sinusoidal timestep embedding (diffusers get_timestep_embedding) ----
 * t[B] -> out[B, dim], half = dim/2,
 * exponent_j = -ln(max_period)·j / (half - shift), f_j = exp(exponent_j),
 * a_j = t·f_j, emb = [sin(a), cos(a)], swapped to [cos, sin] if flip_sin_to_cos;
 * evaluated in fp32 in the order of docs/numerics.md §4. dim is even. */
void op_timestep_embedding(const float *t, int64_t B, int64_t dim, int flip_sin_to_cos,
                           float shift, float max_period, float *out);

/* ---- layout helpers ---- */
void op_nchw_to_nhwc(const float *x, float *y, int64_t B, int64_t C, int64_t H, int64_t W);
void op_nhwc_to_nchw(const float *x, float *y, int64_t B, int64_t H, int64_t W, int64_t C);

#endif /* LMX_OPS_H */
