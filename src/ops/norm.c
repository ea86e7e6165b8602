/*
 * norm.c - normalisation kernels of ops.h: group_norm (NHWC, optional fused
 * SiLU), layer_norm and row softmax.
 *
 * Reference: torch.nn.functional.group_norm / layer_norm / softmax (torch 2.8
 * CPU) as the SD1.5 UNet, VAE and CLIP use them (docs/numerics.md
 * §3-§4, §10): biased variance, (x - mean)/sqrt(var + eps), then ·γ + β;
 * GroupNorm statistics over (C/G channels x H·W) per (batch, group).
 *
 * Group norm, x[B, HW, C] with C/G consecutive channels per group:
 *   1. statistics: each batch's rows are cut into at most GN_MAX_CHUNKS
 *      chunks whose bounds depend only on HW. A chunk is read in sub-blocks
 *      of GN_SUB rows that stay in L1: per channel, an fp32 vector sum, then
 *      the fp32 sums of the deviations d from that sub-block mean and of d²
 *      (the second read hits L1). The (channel, sub-block) samples are
 *      merged per channel in double with Chan's pairwise update, each
 *      channel is folded into its group's (count, mean, M2), and the chunks
 *      are merged the same way in chunk order. Memory is read once, the
 *      variance is two-pass accurate, and the bits do not depend on the
 *      number of threads or the schedule.
 *   2. apply: y = ((x - m_hi) - m_lo)·(rstd_g·γ_c) + β_c, then optionally
 *      y/(1 + exp(-y)); the double mean is split in two floats (x - m_hi is
 *      exact near the mean, so large offsets keep full precision); parallel
 *      over the same row chunks, vectorised over channels.
 * The per-chunk statistics live in a fixed stack buffer (no allocation: the
 * function cannot fail); batches and groups are processed in slices that
 * fit it.
 *
 * Layer norm: per row, fp32 16-lane partial sums folded in double: a first
 * mean, then Σd and Σd² of the deviations from it (the row stays in L1),
 * then ((x - m_hi) - m_lo)·rstd·γ + β. Softmax: row max, exp(x - max), the
 * sum in 16 fp32 lanes folded in double, times the reciprocal of the sum
 * (as torch's vectorised softmax). Both parallel over fixed row chunks.
 * y may equal x in all three.
 */
#include <math.h>

#include "ops/kern_simd.h"
#include "ops/ops.h"

#define GN_MAX_CHUNKS 16
#define GN_MIN_ROWS 64       /* rows per chunk at least */
#define GN_SUB 16            /* rows per L1 sub-block */
#define GN_STAT_DOUBLES 8192 /* stack budget for per-chunk statistics (64 KiB) */
#define GN_CSLICE 512        /* channels per apply slice (stack arrays, 6 KiB) */

/* Chan et al.: merge (nb, mb, m2b) into (na, ma, m2a). */
static void chan_merge(double *na, double *ma, double *m2a, double nb, double mb, double m2b) {
    if (nb == 0) return;
    if (*na == 0) {
        *na = nb;
        *ma = mb;
        *m2a = m2b;
        return;
    }
    double n = *na + nb, d = mb - *ma;
    *ma = *ma + d * (nb / n);
    *m2a = *m2a + m2b + d * d * (*na * nb / n);
    *na = n;
}

/* Statistics of rows [r0, r1) of one batch, groups [g0, g1): writes
 * cnt/mean/m2[g - g0]. Per channel (in slices of GN_CS channels), each
 * sub-block of GN_SUB rows gives a sample (n_sub, mean, M2) from fp32
 * vectors; samples are merged per channel in double over the chunk's
 * sub-blocks (Chan's update with factors shared by all channels, a loop
 * the compiler vectorises), then each channel is folded into its group.
 * All in a fixed order. */
#define GN_CS 256
static void gn_chunk_stats(const float *xb, int64_t C, int64_t cg, int64_t g0, int64_t g1,
                           int64_t r0, int64_t r1, double *cnt, double *mean, double *m2) {
    int64_t ca = g0 * cg, nc = (g1 - g0) * cg;
    for (int64_t g = 0; g < g1 - g0; g++) cnt[g] = mean[g] = m2[g] = 0;
    double cmean[GN_CS], cm2[GN_CS];
    float mu_l[GN_CS], sd_l[GN_CS], q_l[GN_CS];
    for (int64_t cs = 0; cs < nc; cs += GN_CS) {
        int64_t ncs = LMX_MIN((int64_t)GN_CS, nc - cs);
        const float *xs = xb + ca + cs;
        double nacc = 0;
        for (int64_t rs = r0; rs < r1; rs += GN_SUB) {
            int64_t re = LMX_MIN(r1, rs + GN_SUB);
            float nsub = (float)(re - rs);
            for (int64_t c = 0; c < ncs; c += KV_N) {
                int64_t m = LMX_MIN((int64_t)KV_N, ncs - c);
                kv s = kv_zero();
                for (int64_t r = rs; r < re; r++) s = s + kv_ldn(xs + r * C + c, m, 0.0f);
                kv mu = s / kv_set1(nsub);
                kv q = kv_zero(), sd = kv_zero();
                for (int64_t r = rs; r < re; r++) {
                    kv d = kv_ldn(xs + r * C + c, m, 0.0f) - mu;
                    sd = sd + d;
                    q = q + d * d;
                }
                kv_stn(mu_l + c, mu, m);
                kv_stn(sd_l + c, sd, m);
                kv_stn(q_l + c, q, m);
            }
            /* The sub-block's (mean, M2) about mu corrected by Σd, merged
             * into the channel's running (mean, M2). */
            double nb = (double)nsub, inb = 1.0 / nb, n = nacc + nb;
            double f1 = nb / n, f2 = nacc * nb / n;
            for (int64_t c = 0; c < ncs; c++) {
                double sdc = sd_l[c];
                double mb = (double)mu_l[c] + sdc * inb;
                double m2b = (double)q_l[c] - sdc * sdc * inb;
                double d = mb - (nacc == 0 ? mb : cmean[c]);
                cmean[c] = nacc == 0 ? mb : cmean[c] + d * f1;
                cm2[c] = (nacc == 0 ? 0.0 : cm2[c] + d * d * f2) + m2b;
            }
            nacc = n;
        }
        for (int64_t c = 0; c < ncs; c++) {
            int64_t g = (cs + c) / cg;
            chan_merge(&cnt[g], &mean[g], &m2[g], nacc, cmean[c], cm2[c]);
        }
    }
}

void op_group_norm(const float *x, float *y, int64_t B, int64_t HW, int64_t C, int64_t G,
                   const float *gamma, const float *beta, float eps, int silu) {
    if (B <= 0 || HW <= 0 || C <= 0 || G <= 0) return;
    int64_t cg = C / G;
    int64_t nch = LMX_MIN((int64_t)GN_MAX_CHUNKS, (HW + GN_MIN_ROWS - 1) / GN_MIN_ROWS);
    int64_t rows = (HW + nch - 1) / nch;
    nch = (HW + rows - 1) / rows;
    /* Slices of (batches x groups) whose per-chunk statistics fit the stack. */
    int64_t gsl = LMX_MIN(G, (int64_t)GN_STAT_DOUBLES / (3 * nch));
    int64_t bsl = LMX_MAX(1, LMX_MIN(B, (int64_t)GN_STAT_DOUBLES / (3 * nch * gsl)));
    double st[GN_STAT_DOUBLES];

    for (int64_t b0 = 0; b0 < B; b0 += bsl) {
        int64_t nb = LMX_MIN(bsl, B - b0);
        for (int64_t g0 = 0; g0 < G; g0 += gsl) {
            int64_t ng = LMX_MIN(gsl, G - g0);
            /* st layout: [nb][nch][3][ng] (count, mean, M2) */
#pragma omp parallel for schedule(dynamic, 1) if (nb * nch > 1)
            for (int64_t it = 0; it < nb * nch; it++) {
                int64_t bi = it / nch, k = it % nch;
                double *sc = st + (bi * nch + k) * 3 * ng;
                gn_chunk_stats(x + (b0 + bi) * HW * C, C, cg, g0, g0 + ng, k * rows,
                               LMX_MIN(HW, (k + 1) * rows), sc, sc + ng, sc + 2 * ng);
            }
            /* Merge chunks in order: st[bi][0] receives mean and rstd
             * (overwriting chunk 0's count and mean after they are read). */
            for (int64_t bi = 0; bi < nb; bi++)
                for (int64_t g = 0; g < ng; g++) {
                    double n = 0, mu = 0, m2 = 0;
                    for (int64_t k = 0; k < nch; k++) {
                        const double *s = st + (bi * nch + k) * 3 * ng;
                        chan_merge(&n, &mu, &m2, s[g], s[ng + g], s[2 * ng + g]);
                    }
                    double *d = st + bi * nch * 3 * ng;
                    d[g] = mu;
                    d[ng + g] = (double)(1.0f / sqrtf((float)(m2 / n) + eps));
                }
            /* Apply to channels [g0·cg, (g0 + ng)·cg) of these batches. */
#pragma omp parallel for schedule(static) if (nb * nch > 1)
            for (int64_t it = 0; it < nb * nch; it++) {
                int64_t bi = it / nch, k = it % nch;
                const double *d = st + bi * nch * 3 * ng;
                const float *xb = x + (b0 + bi) * HW * C;
                float *yb = y + (b0 + bi) * HW * C;
                int64_t r0 = k * rows, r1 = LMX_MIN(HW, (k + 1) * rows);
                float mc[GN_CSLICE], ml[GN_CSLICE], ac[GN_CSLICE], bc[GN_CSLICE];
                for (int64_t ca = g0 * cg; ca < (g0 + ng) * cg; ca += GN_CSLICE) {
                    int64_t cb = LMX_MIN((g0 + ng) * cg, ca + GN_CSLICE), nc = cb - ca;
                    for (int64_t c = ca; c < cb; c++) {
                        int64_t g = c / cg - g0;
                        float rstd = (float)d[ng + g];
                        mc[c - ca] = (float)d[g];
                        ml[c - ca] = (float)(d[g] - (double)mc[c - ca]);
                        ac[c - ca] = gamma ? rstd * gamma[c] : rstd;
                        bc[c - ca] = beta ? beta[c] : 0.0f;
                    }
                    for (int64_t r = r0; r < r1; r++) {
                        const float *xr = xb + r * C + ca;
                        float *yr = yb + r * C + ca;
                        for (int64_t c = 0; c < nc; c += KV_N) {
                            int64_t m = LMX_MIN((int64_t)KV_N, nc - c);
                            kv v = ((kv_ldn(xr + c, m, 0.0f) - kv_ldn(mc + c, m, 0.0f)) -
                                    kv_ldn(ml + c, m, 0.0f)) *
                                       kv_ldn(ac + c, m, 0.0f) +
                                   kv_ldn(bc + c, m, 0.0f);
                            if (silu) v = kv_x_over_1p_exp_neg(v, v);
                            kv_stn(yr + c, v, m);
                        }
                    }
                }
            }
        }
    }
}

/* ---- layer norm ---- */

#define ROW_CHUNK_ELEMS 32768 /* elements per parallel chunk of rows */

void op_layer_norm(const float *x, float *y, int64_t M, int64_t C, const float *gamma,
                   const float *beta, float eps) {
    if (M <= 0 || C <= 0) return;
    int64_t rpc = LMX_MAX(1, ROW_CHUNK_ELEMS / C);
    int64_t nch = (M + rpc - 1) / rpc;
#pragma omp parallel for schedule(static) if (nch > 1)
    for (int64_t ch = 0; ch < nch; ch++) {
        for (int64_t m = ch * rpc; m < LMX_MIN(M, (ch + 1) * rpc); m++) {
            const float *xr = x + m * C;
            float *yr = y + m * C;
            kv s = kv_zero();
            for (int64_t c = 0; c < C; c += KV_N) s = s + kv_ldn(xr + c, LMX_MIN((int64_t)KV_N, C - c), 0.0f);
            double mean = kv_hsum_d(s) / (double)C;
            /* Second pass about the first estimate mu (the fp32 lane sums
             * of pass 1 lose digits when |mean| >> std): Σd and Σd² of
             * d = x - mu give mean = mu + Σd/C and M2 = Σd² - (Σd)²/C. */
            float mu0 = (float)mean;
            kv mu = kv_set1(mu0), sd = kv_zero(), q = kv_zero();
            for (int64_t c = 0; c < C; c += KV_N) {
                /* pad lanes read mu itself: they add 0 */
                kv d = kv_ldn(xr + c, LMX_MIN((int64_t)KV_N, C - c), mu0) - mu;
                sd = sd + d;
                q = q + d * d;
            }
            double s1 = kv_hsum_d(sd);
            mean = (double)mu0 + s1 / (double)C;
            double var = (kv_hsum_d(q) - s1 * s1 / (double)C) / (double)C;
            if (var < 0) var = 0;
            kv rs = kv_set1(1.0f / sqrtf((float)var + eps));
            float mhi = (float)mean;
            mu = kv_set1(mhi);
            kv mlo = kv_set1((float)(mean - (double)mhi));
            for (int64_t c = 0; c < C; c += KV_N) {
                int64_t n = LMX_MIN((int64_t)KV_N, C - c);
                kv v = ((kv_ldn(xr + c, n, 0.0f) - mu) - mlo) * rs;
                if (gamma) v = v * kv_ldn(gamma + c, n, 0.0f);
                if (beta) v = v + kv_ldn(beta + c, n, 0.0f);
                kv_stn(yr + c, v, n);
            }
        }
    }
}

/* ---- softmax ---- */

void op_softmax(const float *x, float *y, int64_t M, int64_t N) {
    if (M <= 0 || N <= 0) return;
    int64_t rpc = LMX_MAX(1, ROW_CHUNK_ELEMS / N);
    int64_t nch = (M + rpc - 1) / rpc;
#pragma omp parallel for schedule(static) if (nch > 1)
    for (int64_t ch = 0; ch < nch; ch++) {
        for (int64_t m = ch * rpc; m < LMX_MIN(M, (ch + 1) * rpc); m++) {
            const float *xr = x + m * N;
            float *yr = y + m * N;
            kv mx = kv_set1(-INFINITY);
            for (int64_t j = 0; j < N; j += KV_N)
                mx = kv_max(mx, kv_ldn(xr + j, LMX_MIN((int64_t)KV_N, N - j), -INFINITY));
            kv mv = kv_set1(kv_hmax(mx));
            kv s = kv_zero();
            for (int64_t j = 0; j < N; j += KV_N) {
                int64_t n = LMX_MIN((int64_t)KV_N, N - j);
                kv e = kv_exp(kv_ldn(xr + j, n, -INFINITY) - mv);
                kv_stn(yr + j, e, n);
                s = s + e;
            }
            kv inv = kv_set1((float)(1.0 / kv_hsum_d(s)));
            for (int64_t j = 0; j < N; j += KV_N) {
                int64_t n = LMX_MIN((int64_t)KV_N, N - j);
                kv_stn(yr + j, kv_ldn(yr + j, n, 0.0f) * inv, n);
            }
        }
    }
}
