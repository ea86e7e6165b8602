/*
 * embed.c - the sinusoidal timestep embedding of diffusers
 * (models/embeddings.py get_timestep_embedding, as the SD1.5 UNet calls it
 * with flip_sin_to_cos=True, downscale_freq_shift=0; docs/numerics.md
 * §4), evaluated in fp32 in the reference's operation order:
 *
 *   c    = fl(-ln(max_period))              (the double constant, rounded)
 *   e_j  = fl(fl(c · j) / fl(half - shift)) j = 0..half-1
 *   f_j  = fl(exp(e_j))
 *   a_bj = fl(t_b · f_j)
 *   out  = [sin(a), cos(a)], or [cos(a), sin(a)] when flip_sin_to_cos.
 *
 * exp, sin and cos are evaluated in double and rounded once, i.e. correctly
 * rounded fp32 results (barring double-rounding ties, which do not occur for
 * these arguments in practice). torch's CPU kernels for these functions (MKL
 * VML on the x86 wheels) are within 1 ulp of that but not always equal, so
 * the embedding matches torch bit for bit except where torch's exp(e_j) is
 * 1 ulp off; see docs/kernels.md for the measured figures. Tiny (B x dim),
 * so plain scalar code.
 */
#include <math.h>

#include "ops/ops.h"

void op_timestep_embedding(const float *t, int64_t B, int64_t dim, int flip_sin_to_cos,
                           float shift, float max_period, float *out) {
    int64_t half = dim / 2;
    float c = (float)(-log((double)max_period));
    float den = (float)half - shift;
    for (int64_t j = 0; j < half; j++) {
        float e = (c * (float)j) / den;
        float f = (float)exp((double)e);
        for (int64_t b = 0; b < B; b++) {
            float a = t[b] * f;
            float s = (float)sin((double)a), co = (float)cos((double)a);
            out[b * dim + j] = flip_sin_to_cos ? co : s;
            out[b * dim + half + j] = flip_sin_to_cos ? s : co;
        }
    }
}
