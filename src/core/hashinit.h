/*
 * hashinit.h - counter-based pseudo-random weights that C and Python
 * (reference/gen_models.py --sd15-parity) generate bit-identically, so the
 * full-size SD1.5 networks can be compared with diffusers/transformers
 * without any weight file.
 *
 * Definition (every step exact in fp32, so numpy reproduces it bit for bit):
 *   h     = FNV-1a 64 of the tensor name's bytes (offset 0xcbf29ce484222325,
 *           prime 0x100000001b3)
 *   z_i   = splitmix64 finaliser of (h + (i + 1) · 0x9E3779B97F4A7C15) mod 2^64,
 *           i = 0.. in row-major order of the PyTorch-layout tensor:
 *           z ^= z >> 30; z *= 0xBF58476D1CE4E5B9; z ^= z >> 27;
 *           z *= 0x94D049BB133111EB; z ^= z >> 31
 *   t_i   = fp32((z_i >> 40) · 2^-24) · 2 - 1        (in [-1, 1), exact)
 *   value = t_i · a                  tensors with 2+ dims, a = fp32(sqrt(3 / fan_in)),
 *                                    fan_in = product of dims 1.. (unit variance out)
 *           t_i · 0.1f               1-D tensors named "*.bias"
 *           1 + t_i · 0.1f           other 1-D tensors (norm gains)
 * Inputs use lmx_hash_uniform (value = t_i · a for a given a).
 */
#ifndef LMX_HASHINIT_H
#define LMX_HASHINIT_H

#include "core/core.h"

uint64_t lmx_hash_name(const char *name);
/* dst[n] = t_{start+i} · a for the name hash h. */
void lmx_hash_uniform(uint64_t h, int64_t start, int64_t n, float a, float *dst);
/* A weight tensor by the rules above. */
void lmx_hash_fill(const char *name, int ndim, const int64_t *shape, float *dst);

#endif /* LMX_HASHINIT_H */
