/*
 * layout.c - NCHW <-> NHWC conversion (ops.h layout helpers), used at the
 * edges of the engine: golden files and the reference keep NCHW, every
 * kernel inside works on NHWC (docs/kernels.md "Layouts").
 *
 * Both directions are the same operation, a batched transpose of a [R, S]
 * matrix into [S, R] (NCHW -> NHWC: R = C, S = H·W), done in 32x32 tiles so
 * that reads and writes both stay within a few cache lines; parallel over
 * (batch, tile row). Pure data movement: bit-exact by construction.
 * x and y must not overlap.
 */
#include "ops/ops.h"

#define LT_TILE 32

/* y[b][s][r] = x[b][r][s] for x [B, R, S]. */
static void transpose_batched(const float *x, float *y, int64_t B, int64_t R, int64_t S) {
    int64_t tr = (R + LT_TILE - 1) / LT_TILE;
#pragma omp parallel for schedule(static) if (B * R * S > 65536)
    for (int64_t bt = 0; bt < B * tr; bt++) {
        int64_t b = bt / tr, r0 = (bt % tr) * LT_TILE;
        int64_t r1 = LMX_MIN(R, r0 + LT_TILE);
        const float *xb = x + b * R * S;
        float *yb = y + b * R * S;
        for (int64_t s0 = 0; s0 < S; s0 += LT_TILE) {
            int64_t s1 = LMX_MIN(S, s0 + LT_TILE);
            for (int64_t s = s0; s < s1; s++)
                for (int64_t r = r0; r < r1; r++) yb[s * R + r] = xb[r * S + s];
        }
    }
}

void op_nchw_to_nhwc(const float *x, float *y, int64_t B, int64_t C, int64_t H, int64_t W) {
    transpose_batched(x, y, B, C, H * W);
}

void op_nhwc_to_nchw(const float *x, float *y, int64_t B, int64_t H, int64_t W, int64_t C) {
    transpose_batched(x, y, B, H * W, C);
}
