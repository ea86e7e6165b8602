/*
 * hashinit.c - counter-based hash weights shared with reference/gen_models.py
 * (see hashinit.h for the exact definition).
 */
#include "core/hashinit.h"

#include <math.h>
#include <string.h>

uint64_t lmx_hash_name(const char *name) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
        h ^= *p;
        h *= 0x100000001b3ull;
    }
    return h;
}

static inline float hash_t(uint64_t h, int64_t i) {
    uint64_t z = h + (uint64_t)(i + 1) * 0x9E3779B97F4A7C15ull;
    z ^= z >> 30;
    z *= 0xBF58476D1CE4E5B9ull;
    z ^= z >> 27;
    z *= 0x94D049BB133111EBull;
    z ^= z >> 31;
    float u = (float)(z >> 40) * 0x1p-24f;
    return u * 2.0f - 1.0f;
}

void lmx_hash_uniform(uint64_t h, int64_t start, int64_t n, float a, float *dst) {
#pragma omp parallel for if (n > 65536) schedule(static)
    for (int64_t i = 0; i < n; i++) dst[i] = hash_t(h, start + i) * a;
}

void lmx_hash_fill(const char *name, int ndim, const int64_t *shape, float *dst) {
    uint64_t h = lmx_hash_name(name);
    int64_t n = 1, fan_in = 1;
    for (int i = 0; i < ndim; i++) n *= shape[i];
    for (int i = 1; i < ndim; i++) fan_in *= shape[i];
    if (ndim >= 2) {
        lmx_hash_uniform(h, 0, n, (float)sqrt(3.0 / (double)fan_in), dst);
        return;
    }
    size_t len = strlen(name);
    int is_bias = len >= 5 && strcmp(name + len - 5, ".bias") == 0;
    lmx_hash_uniform(h, 0, n, 0.1f, dst);
    if (!is_bias)
        for (int64_t i = 0; i < n; i++) dst[i] = 1.0f + dst[i];
}
