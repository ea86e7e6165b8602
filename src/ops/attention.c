/*
 * attention.c - multi-head scaled dot-product attention (ops.h op_attention)
 * with a tiled online softmax: the Lq x Lk score matrix is never formed.
 *
 * Reference: torch F.scaled_dot_product_attention (as diffusers' attention
 * processors and transformers' CLIP use it; docs/numerics.md §3-§4,
 * §10): o = softmax(scale · q·kᵀ [+ causal mask]) · v per (batch, head), the
 * causal mask letting query i see keys 0..i (torch's is_causal, top-left
 * aligned when Lq != Lk).
 *
 * Work is split into tasks (batch, head, up to AT_NQ blocks of AT_QB = 48
 * queries), run in parallel with OpenMP. The query blocks of a task share
 * each packed V block and the K rows in cache. A block is computed
 * "transposed", queries across the 16 vector lanes, so the softmax
 * statistics of a query live in one lane and need no horizontal reductions:
 *   Qt[D][48]  = the task's queries, transposed once (pad lanes zero);
 *   for each block of AT_KB keys:
 *     Vp = V_blk packed in panels of 8 dims    (once per task and block)
 *     S[kb][48] = fl(scale·log2 e)·(K_blk·Qt)  (micro-kernel: 8 keys x 48
 *                                             queries of accumulators)
 *     causal: S[j][i] = -inf where key j > query i
 *     m' = max(m, max_j S), α = 2^(m - m'), P = 2^(S - m'),
 *     l  = l·α + Σ_j P[j]                     (j in order: fixed sums)
 *     Ot[D][48] = α·Ot + Vpᵀ · P               (micro-kernel: 8 dims x 48
 *                                             queries of accumulators)
 *   o[i][d] = Ot[d][i] · (1/l_i).
 * K and V are read in place through their strides, so q/k/v may be column
 * views of one fused qkv buffer. Scratch per thread is
 * (2·nsub·D + AT_KB)·48 + AT_KB·D floats (D = 512: about 1 MiB; no Lq x Lk
 * buffer anywhere): the context's OP_SCRATCH_USER0 slot when ctx is given,
 * else allocated for the call (ctx may be NULL).
 *
 * Every task runs the same sequence of operations whatever thread runs it
 * and however many query blocks share it: the result does not depend on the
 * thread count or schedule. o may equal q (same strides): a task reads its
 * own query rows before it writes the same rows and head columns of o.
 *
 * Scores live in base 2 (the log2 e factor is folded into the scale) and
 * use kv_exp2 (<= 1 ulp); on AVX-512 the products are fused multiply-adds.
 * Measured speed and accuracy: docs/kernels.md.
 */
#include <math.h>
#include <omp.h>
#include <string.h>

#include "ops/dnnl_util.h"
#include "ops/kern_simd.h"
#include "ops/ops.h"

#define AT_NV 3                 /* query vectors per task */
#define AT_QB (AT_NV * KV_N)    /* queries per task: 48 */
#ifndef AT_KB
#define AT_KB 128               /* keys per block (multiple of AT_R) */
#endif
#define AT_R 8                  /* rows per micro-kernel tile */
#define AT_NQ 8                 /* query blocks per task, at most */

/* S[r][:] = c · Σ_d K[r][d]·Qt[d][:] for R key rows starting at `k`
 * (c = vscale), causal-masked when `mask` (key index kidx0 + r > query
 * index lane), and mx[] = max(mx[], rows). R is a constant after
 * inlining. */
KV_INLINE void qk_tile(const int R, const float *k, int64_t ldk, const float *qt, int64_t D,
                       kv vscale, float *s, kv *mx, int mask, float kidx0, const kv *qidx) {
    kv acc[AT_R][AT_NV];
    for (int r = 0; r < R; r++)
        for (int v = 0; v < AT_NV; v++) acc[r][v] = kv_zero();
    for (int64_t d = 0; d < D; d++) {
        kv q0 = kv_ld(qt + d * AT_QB), q1 = kv_ld(qt + d * AT_QB + KV_N),
           q2 = kv_ld(qt + d * AT_QB + 2 * KV_N);
        for (int r = 0; r < R; r++) {
            kv kb = kv_set1(k[r * ldk + d]);
            acc[r][0] = kv_fma(kb, q0, acc[r][0]);
            acc[r][1] = kv_fma(kb, q1, acc[r][1]);
            acc[r][2] = kv_fma(kb, q2, acc[r][2]);
        }
    }
    const kv ninf = kv_set1(-INFINITY);
    for (int r = 0; r < R; r++)
        for (int v = 0; v < AT_NV; v++) {
            kv val = acc[r][v] * vscale;
            if (mask) val = kv_fill_gt(kv_set1(kidx0 + (float)r), qidx[v], val, ninf);
            mx[v] = kv_max(mx[v], val);
            kv_st(s + r * AT_QB + v * KV_N, val);
        }
}

/* Ot[r][:] = α·Ot[r][:] (or 0 when first) + Σ_j V[j][r]·P[j][:] for R
 * value dims; `v` is the packed panel of these dims, v[j·AT_R + r]. */
KV_INLINE void pv_tile(const int R, const float *v, const float *p, int64_t kb, float *ot,
                       const kv *alpha, int first) {
    kv acc[AT_R][AT_NV];
    for (int r = 0; r < R; r++)
        for (int w = 0; w < AT_NV; w++)
            acc[r][w] = first ? kv_zero() : (kv)(kv_ld(ot + r * AT_QB + w * KV_N) * alpha[w]);
    for (int64_t j = 0; j < kb; j++) {
        kv p0 = kv_ld(p + j * AT_QB), p1 = kv_ld(p + j * AT_QB + KV_N),
           p2 = kv_ld(p + j * AT_QB + 2 * KV_N);
        for (int r = 0; r < R; r++) {
            kv vb = kv_set1(v[j * AT_R + r]);
            acc[r][0] = kv_fma(vb, p0, acc[r][0]);
            acc[r][1] = kv_fma(vb, p1, acc[r][1]);
            acc[r][2] = kv_fma(vb, p2, acc[r][2]);
        }
    }
    for (int r = 0; r < R; r++)
        for (int w = 0; w < AT_NV; w++) kv_st(ot + r * AT_QB + w * KV_N, acc[r][w]);
}

/* Dispatch a runtime row count 1..8 to the constant-R tile. */
#define AT_DISPATCH(R, CALL_MACRO)                                           \
    switch (R) {                                                             \
    case 8: CALL_MACRO(8); break;                                            \
    case 7: CALL_MACRO(7); break;                                            \
    case 6: CALL_MACRO(6); break;                                            \
    case 5: CALL_MACRO(5); break;                                            \
    case 4: CALL_MACRO(4); break;                                            \
    case 3: CALL_MACRO(3); break;                                            \
    case 2: CALL_MACRO(2); break;                                            \
    default: CALL_MACRO(1); break;                                           \
    }

/* Online-softmax state of one block of 48 queries, one lane per query. */
typedef struct at_rows {
    kv m[AT_NV], l[AT_NV], qidx[AT_NV];
} at_rows;

/* Key block [j0, j0 + kb) for one block of queries: scores, online softmax,
 * Ot update. vp is the packed V block (panel stride kbp >= kb). */
static void attn_block(const float *k, int64_t ldk, const float *qt, float *ot, at_rows *st,
                       int64_t i0, int64_t j0, int64_t kb, const float *vp, int64_t kbp,
                       int64_t D, kv vscale, int causal, float *s) {
    /* Scores; a tile needs the mask only if one of its keys can be later
     * than the block's first query. */
    kv mx[AT_NV] = {kv_set1(-INFINITY), kv_set1(-INFINITY), kv_set1(-INFINITY)};
    for (int64_t r0 = 0; r0 < kb; r0 += AT_R) {
        int R = (int)LMX_MIN((int64_t)AT_R, kb - r0);
        int mask = causal && j0 + r0 + R - 1 > i0;
        const float *kr = k + (j0 + r0) * ldk;
#define AT_QK(RR) qk_tile(RR, kr, ldk, qt, D, vscale, s + r0 * AT_QB, mx, mask, (float)(j0 + r0), st->qidx)
        AT_DISPATCH(R, AT_QK)
#undef AT_QK
    }
    /* Online softmax, per lane. */
    kv alpha[AT_NV], ls[AT_NV];
    for (int w = 0; w < AT_NV; w++) {
        kv mn = kv_max(st->m[w], mx[w]);
        alpha[w] = kv_exp2(st->m[w] - mn);
        st->m[w] = mn;
        ls[w] = kv_zero();
    }
    for (int64_t j = 0; j < kb; j++)
        for (int w = 0; w < AT_NV; w++) {
            float *sp = s + j * AT_QB + w * KV_N;
            kv e = kv_exp2(kv_ld(sp) - st->m[w]);
            kv_st(sp, e);
            ls[w] = ls[w] + e;
        }
    for (int w = 0; w < AT_NV; w++) st->l[w] = st->l[w] * alpha[w] + ls[w];
    /* Ot = α·Ot + Vᵀ·P */
    int first = j0 == 0;
    for (int64_t d0 = 0; d0 < D; d0 += AT_R) {
        int R = (int)LMX_MIN((int64_t)AT_R, D - d0);
#define AT_PV(RR) pv_tile(RR, vp + d0 * kbp, s, kb, ot + d0 * AT_QB, alpha, first)
        AT_DISPATCH(R, AT_PV)
#undef AT_PV
    }
}

/* One task: queries [i0, i0 + nqt) of (b, h), nqt <= AT_NQ·48, as
 * sub-blocks of 48 that share each packed V block (and the K rows in
 * cache). A sub-block's operations do not depend on how many share a task.
 * Scratch: qt[AT_NQ][D·48], ot[AT_NQ][D·48], s[AT_KB·48], vp[AT_KB·Dp]. */
static void attn_task(const float *q, int64_t ldq, const float *k, int64_t ldk, const float *v,
                      int64_t ldv, float *o, int64_t ldo, int64_t i0, int64_t nqt, int64_t Lk,
                      int64_t D, float scale, int causal, float *qt, float *ot, float *s,
                      float *vp) {
    int64_t nsub = (nqt + AT_QB - 1) / AT_QB;
    at_rows st[AT_NQ];
    /* Scores are kept in base 2: S = fl(scale·log2 e)·(q·k), P = 2^(S - m). */
    const kv vscale = kv_set1(scale * 1.44269504088896341f);
    for (int64_t u = 0; u < nsub; u++) {
        /* Qt[d][i] = q[iu + i][d], pad lanes zero. */
        int64_t iu = i0 + u * AT_QB, nq = LMX_MIN((int64_t)AT_QB, i0 + nqt - iu);
        float *qu = qt + u * D * AT_QB;
        for (int64_t d = 0; d < D; d++) {
            float *row = qu + d * AT_QB;
            for (int64_t i = 0; i < nq; i++) row[i] = q[(iu + i) * ldq + d];
            for (int64_t i = nq; i < AT_QB; i++) row[i] = 0.0f;
        }
        for (int w = 0; w < AT_NV; w++) {
            st[u].m[w] = kv_set1(-INFINITY);
            st[u].l[w] = kv_zero();
            st[u].qidx[w] = kv_iota() + kv_set1((float)(iu + w * KV_N));
        }
    }
    int64_t jend = causal ? LMX_MIN(Lk, i0 + nqt) : Lk;
    for (int64_t j0 = 0; j0 < jend; j0 += AT_KB) {
        int64_t kb = LMX_MIN((int64_t)AT_KB, jend - j0);
        /* V block packed in panels of AT_R dims: vp[d0·kb + j·AT_R + r] =
         * V[j0 + j][d0 + r], so the PV kernel streams it. */
        for (int64_t j = 0; j < kb; j++) {
            const float *vr = v + (j0 + j) * ldv;
            int64_t d0 = 0;
            for (; d0 + AT_R <= D; d0 += AT_R)
                memcpy(vp + d0 * kb + j * AT_R, vr + d0, sizeof(float) * AT_R);
            if (d0 < D) memcpy(vp + d0 * kb + j * AT_R, vr + d0, sizeof(float) * (size_t)(D - d0));
        }
        for (int64_t u = 0; u < nsub; u++) {
            int64_t iu = i0 + u * AT_QB, nq = LMX_MIN((int64_t)AT_QB, i0 + nqt - iu);
            /* causal: this sub-block sees keys < iu + nq only */
            int64_t kbu = causal ? LMX_MIN(kb, iu + nq - j0) : kb;
            if (kbu <= 0) continue;
            attn_block(k, ldk, qt + u * D * AT_QB, ot + u * D * AT_QB, &st[u], iu, j0, kbu, vp,
                       kb, D, vscale, causal, s);
        }
    }
    /* o[i][d] = Ot[d][i] / l_i */
    for (int64_t u = 0; u < nsub; u++) {
        int64_t iu = i0 + u * AT_QB, nq = LMX_MIN((int64_t)AT_QB, i0 + nqt - iu);
        const float *ou = ot + u * D * AT_QB;
        float inv[AT_QB];
        for (int w = 0; w < AT_NV; w++) kv_st(inv + w * KV_N, kv_set1(1.0f) / st[u].l[w]);
        for (int64_t i = 0; i < nq; i++) {
            float *orow = o + (iu + i) * ldo;
            for (int64_t d = 0; d < D; d++) orow[d] = ou[d * AT_QB + i] * inv[i];
        }
    }
}

lmx_status op_attention(op_ctx *ctx, const float *q, int64_t ldq, int64_t sq, const float *k,
                        int64_t ldk, int64_t sk, const float *v, int64_t ldv, int64_t sv, float *o,
                        int64_t ldo, int64_t so, int64_t B, int64_t Lq, int64_t Lk, int64_t H,
                        int64_t D, float scale, int causal) {
    if (B < 0 || Lq < 0 || Lk < 1 || H < 1 || D < 1)
        return lmx_err(LMX_ERR_ARG, "op_attention: bad sizes B=%lld Lq=%lld Lk=%lld H=%lld D=%lld",
                       (long long)B, (long long)Lq, (long long)Lk, (long long)H, (long long)D);
    if (ldq < H * D || ldk < H * D || ldv < H * D || ldo < H * D)
        return lmx_err(LMX_ERR_ARG, "op_attention: row stride below H·D = %lld", (long long)(H * D));
    if (B == 0 || Lq == 0) return LMX_OK;

    /* Tasks of nsub query blocks: up to AT_NQ while that leaves enough
     * tasks to balance the threads and the scratch stays cache-sized. The
     * choice does not change any result. */
    int nthr = omp_get_max_threads();
    int64_t nqb = (Lq + AT_QB - 1) / AT_QB;
    int64_t nsub = AT_NQ;
    while (nsub > 1 && (B * H * ((nqb + nsub - 1) / nsub) < 8 * (int64_t)nthr ||
                        nsub * 2 * D * AT_QB * (int64_t)sizeof(float) > (512 << 10)))
        nsub--;
    int64_t ntb = (nqb + nsub - 1) / nsub; /* tasks per (b, h) */
    int64_t ntask = B * H * ntb;
    if ((int64_t)nthr > ntask) nthr = (int)ntask;
    int64_t Dp = (D + AT_R - 1) / AT_R * AT_R;
    size_t per = (size_t)(2 * nsub * D + AT_KB) * AT_QB + (size_t)(AT_KB * Dp); /* floats */
    per = (per + 15) & ~(size_t)15;
    size_t bytes = sizeof(float) * per * (size_t)nthr;
    /* The context's scratch slot when there is a context (no allocation in
     * steady state), else a buffer for this call. */
    float *scratch = ctx ? op_ctx_scratch(ctx, OP_SCRATCH_USER0, bytes) : lmx_alloc_aligned(bytes);
    if (!scratch) return lmx_err(LMX_ERR_NOMEM, "op_attention: %zu bytes of scratch", bytes);

#pragma omp parallel num_threads(nthr)
    {
        float *qt = scratch + per * (size_t)omp_get_thread_num();
        float *ot = qt + nsub * D * AT_QB, *s = ot + nsub * D * AT_QB, *vp = s + AT_KB * AT_QB;
#pragma omp for schedule(dynamic, 1)
        for (int64_t t = 0; t < ntask; t++) {
            int64_t tb = t % ntb, bh = t / ntb, h = bh % H, b = bh / H;
            int64_t i0 = tb * nsub * AT_QB, nqt = LMX_MIN(nsub * AT_QB, Lq - i0);
            attn_task(q + b * sq + h * D, ldq, k + b * sk + h * D, ldk, v + b * sv + h * D, ldv,
                      o + b * so + h * D, ldo, i0, nqt, Lk, D, scale, causal, qt, ot, s, vp);
        }
    }
    if (!ctx) lmx_free(scratch);
    return LMX_OK;
}
