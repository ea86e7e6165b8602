/*
 * rng.h - torch's CPU random generator: MT19937, uniform and normal draws,
 * bit-exact with torch 2.8.0 for float32 tensors.
 *
 * What it reproduces (docs/numerics.md §11; torch sources
 * aten/src/ATen/core/MT19937RNGEngine.h, core/TransformationHelper.h,
 * core/DistributionsHelper.h, native/cpu/DistributionTemplates.h):
 *
 *   torch.manual_seed(s)            rng_seed(&r, s)
 *   torch.rand(n)   (float32)       rng_rand(&r, out, n)
 *   torch.randn(shape) (float32)    rng_randn(&r, out, numel)  (row-major order)
 *
 * One rng_state is one torch.Generator: consecutive draws continue the same
 * stream, exactly as consecutive torch calls on one generator do (the
 * pipeline's initial latent, then Euler-ancestral's per-step noise...).
 *
 * randn has two paths, chosen by numel as torch does:
 *   numel >= 16: the "block" path. The whole buffer is filled with 24-bit
 *     uniform floats, then every block of 16 is Box-Muller transformed
 *     (u1 = 1 - d[j], u2 = d[j+8]); when numel % 16 != 0 the last 16
 *     positions get 16 fresh uniforms and are transformed again.
 *     torch has two kernels for that transform (docs/numerics.md §11):
 *       RNG_PATH_AVX2 (default) - the vectorised x86 kernel with the
 *         avx_mathfun.h polynomials log256_ps/sincos256_ps, evaluated here
 *         lane by lane in scalar C with torch's FMA contractions. torch 2.8.0
 *         runs it on AVX2 *and* AVX-512 machines: on the reference machine
 *         (get_cpu_capability() == "AVX512") torch.randn equals the
 *         ATEN_CPU_CAPABILITY=avx2 output bit for bit, contrary to the
 *         "AVX-512 takes the portable path" guess of docs/numerics.md §11.
 *       RNG_PATH_PORTABLE - the generic kernel (non-x86 builds, or
 *         ATEN_CPU_CAPABILITY=default): glibc logf/cosf/sinf in fp32, theta
 *         rounded from a double product. Differs from the AVX2 kernel by a
 *         few ulp in ~40 % of the values.
 *   numel < 16: the "double" path (same on every machine). Each value is a
 *     double Box-Muller draw (two 53-bit uniforms), returning r*cos and
 *     caching r*sin in the generator for the next small draw. The cache
 *     survives between calls (it is part of the generator) and is cleared by
 *     rng_seed; the block path neither reads nor writes it.
 *
 * The functions are pure C (no SIMD), deterministic, and not thread-safe for
 * one rng_state (a torch generator is not either).
 */
#ifndef LMX_SCHED_RNG_H
#define LMX_SCHED_RNG_H

#include <stdint.h>

#include "core/core.h"

typedef enum rng_path {
    RNG_PATH_AVX2 = 0,  /* torch's x86 kernel (AVX2 / AVX-512 machines): default */
    RNG_PATH_PORTABLE,  /* torch's generic kernel (other CPUs)                   */
} rng_path;

typedef struct rng_state {
    uint32_t mt[624];      /* MT19937 state                               */
    int next;              /* index of the next state word to temper      */
    int left;              /* words left before the next twist (+1)       */
    uint64_t seed;         /* the seed as given to rng_seed               */
    int has_normal;        /* a cached double normal sample is pending    */
    double next_normal;    /* that sample (r*sin of the last double draw) */
    rng_path path;         /* which block transform randn uses            */
} rng_state;

/* torch.manual_seed(seed): initialises the whole state (it may be
 * uninitialised memory): only the low 32 bits seed the engine (as torch),
 * the cached normal is cleared, and the path is set to the default
 * RNG_PATH_AVX2 (what torch does on x86). */
void rng_seed(rng_state *r, uint64_t seed);
/* rng_seed with an explicit randn path. */
void rng_init(rng_state *r, uint64_t seed, rng_path path);

/* Raw engine output (std::mt19937 sequence). */
uint32_t rng_u32(rng_state *r);
/* torch random64(): (first << 32) | second. */
uint64_t rng_u64(rng_state *r);
/* torch uniform_real_distribution<float>(0,1): (u32 & 0xFFFFFF) * 2^-24. */
float rng_uniform_f32(rng_state *r);
/* torch uniform_real_distribution<double>(0,1): (u64 & (2^53-1)) * 2^-53. */
double rng_uniform_f64(rng_state *r);
/* One double-path normal (uses and refills the cache), as torch's
 * normal_distribution<double>(0, 1). */
double rng_normal_f64(rng_state *r);

/* torch.rand(n, dtype=float32). */
void rng_rand(rng_state *r, float *out, int64_t n);
/* torch.randn(<any shape with numel n>, dtype=float32), contiguous. n >= 0. */
void rng_randn(rng_state *r, float *out, int64_t n);

/* "avx2" / "portable"; rng_path_parse also accepts "x86" and "default" and
 * returns LMX_ERR_ARG naming any other value. */
const char *rng_path_name(rng_path p);
lmx_status rng_path_parse(const char *s, rng_path *out);

#endif /* LMX_SCHED_RNG_H */
