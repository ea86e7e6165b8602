/*
 * bench_attention.c - speed of the kernels of attention.c and norm.c (and a
 * few elementwise ones) on the SD1.5 shapes.
 *
 * Attention rows: time per op_attention call, GFLOP/s (4·B·H·Lq·Lk·D flops:
 * QKᵀ and PV) and % of the fp32 peak of the cores used (117 GFLOP/s per
 * core on the 2-core Zen 4 at ~3.66 GHz: 234 for 2 threads), and the
 * scratch the kernel holds in the op_ctx (op_ctx_bytes: all the memory it
 * uses besides q/k/v/o) next to the size of one head's Lq x Lk score matrix,
 * which it never allocates:
 *   unet64-self   B=2 L=4096 H=8 D=40   (512x512, level 0 self attention)
 *   unet64-cross  B=2 Lq=4096 Lk=77     (level 0 cross attention)
 *   unet32-self   B=2 L=1024 H=8 D=80
 *   unet16-self   B=2 L=256  H=8 D=160
 *   clip-text     B=2 L=77 H=12 D=64 causal
 *   vae64         B=1 L=4096  H=1 D=512 (512x512 VAE mid block)
 *   unet128x96    B=2 L=12288 H=8 D=40  (1024x768, level 0)
 *   vae128x96     B=1 L=12288 H=1 D=512 (1024x768 VAE mid block)
 * Norm/elementwise rows: GB/s counted as one read of the input and one write
 * of the output (the minimum traffic), on a 64x64x320 map (B=2) and the
 * transformer's [2·4096, 320] token matrix.
 *
 * Usage: bench_attention [--threads N] [--reps N] [--filter a,b] [--quick]
 * Each row: the best of --reps timed calls after one warm-up call (best, not
 * median: the machine is shared, so the fastest run is the least disturbed;
 * the load average is printed before and after). With --threads 1 the
 * attention rows also give flops per CPU second of the thread, which other
 * jobs on the machine do not dilute.
 */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ops/ops.h"

#define PEAK_PER_CORE 117.0

typedef struct att_row {
    const char *name;
    int64_t B, Lq, Lk, H, D;
    int causal;
    int big; /* skipped by --quick */
} att_row;

static const att_row ATT[] = {
    {"unet64-self", 2, 4096, 4096, 8, 40, 0, 0},
    {"unet64-cross", 2, 4096, 77, 8, 40, 0, 0},
    {"unet32-self", 2, 1024, 1024, 8, 80, 0, 0},
    {"unet16-self", 2, 256, 256, 8, 160, 0, 0},
    {"clip-text", 2, 77, 77, 12, 64, 1, 0},
    {"vae64", 1, 4096, 4096, 1, 512, 0, 0},
    {"unet128x96", 2, 12288, 12288, 8, 40, 0, 1},
    {"vae128x96", 1, 12288, 12288, 1, 512, 0, 1},
};

static const char *g_filter;
static int g_reps = 3;

static int wanted(const char *name) {
    if (!g_filter) return 1;
    const char *p = g_filter;
    size_t n = strlen(name);
    while (*p) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len == n && !strncmp(p, name, n)) return 1;
        if (!e) break;
        p = e + 1;
    }
    return 0;
}

static double loadavg(void) {
    double l[1] = {-1};
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        if (fscanf(f, "%lf", &l[0]) != 1) l[0] = -1;
        fclose(f);
    }
    return l[0];
}

/* CPU time of the calling thread: with --threads 1 all the work runs on it,
 * so flops / CPU time is the speed of one core while it is ours, whatever
 * else the shared machine runs. */
static double thread_cpu(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static float *randbuf(int64_t n, uint64_t seed) {
    float *p = lmx_alloc_aligned(sizeof(float) * (size_t)n);
    if (!p) return NULL;
    lmx_prng r = {seed};
    for (int64_t i = 0; i < n; i++) p[i] = lmx_prng_normal(&r);
    return p;
}

static void bench_attention(const att_row *r, int nthr) {
    int64_t C = r->H * r->D;
    op_ctx *ctx = NULL; /* a fresh one per row: its scratch is this shape's */
    if (op_ctx_create(&ctx) != LMX_OK) {
        printf("%-14s op_ctx_create: %s\n", r->name, lmx_errmsg());
        return;
    }
    float *q = randbuf(r->B * r->Lq * C, 1), *k = randbuf(r->B * r->Lk * C, 2);
    float *v = randbuf(r->B * r->Lk * C, 3), *o = randbuf(r->B * r->Lq * C, 4);
    if (!q || !k || !v || !o) {
        printf("%-14s out of memory\n", r->name);
        goto done;
    }
    float scale = 1.0f / sqrtf((float)r->D);
    if (op_attention(ctx, q, C, r->Lq * C, k, C, r->Lk * C, v, C, r->Lk * C, o, C, r->Lq * C, r->B,
                     r->Lq, r->Lk, r->H, r->D, scale, r->causal) != LMX_OK) {
        printf("%-14s error: %s\n", r->name, lmx_errmsg());
        goto done;
    }
    double best = 1e30, best_cpu = 1e30;
    for (int i = 0; i < g_reps; i++) {
        double t0 = lmx_now(), c0 = thread_cpu();
        op_attention(ctx, q, C, r->Lq * C, k, C, r->Lk * C, v, C, r->Lk * C, o, C, r->Lq * C, r->B,
                     r->Lq, r->Lk, r->H, r->D, scale, r->causal);
        double t = lmx_now() - t0, c = thread_cpu() - c0;
        if (t < best) best = t;
        if (c < best_cpu) best_cpu = c;
    }
    double flops = 4.0 * r->B * r->H * r->Lq * r->Lk * r->D;
    if (r->causal) flops *= 0.5 * (1.0 + 1.0 / r->Lk); /* keys 0..i only */
    double gf = flops / best / 1e9;
    printf("%-14s B=%lld Lq=%-5lld Lk=%-5lld H=%-2lld D=%-3lld %s %9.2f ms %7.1f GFLOP/s %5.1f%%"
           "  scratch %5.2f MiB (one LqxLk head: %6.1f MiB)\n",
           r->name, (long long)r->B, (long long)r->Lq, (long long)r->Lk, (long long)r->H,
           (long long)r->D, r->causal ? "causal" : "      ", best * 1e3, gf,
           100.0 * gf / (PEAK_PER_CORE * nthr), op_ctx_bytes(ctx) / (1024.0 * 1024.0),
           (double)r->Lq * r->Lk * 4.0 / (1 << 20));
    if (nthr == 1)
        printf("%-14s   per CPU second: %7.1f GFLOP/s %5.1f%% of one core\n", "", flops / best_cpu / 1e9,
               100.0 * flops / best_cpu / 1e9 / PEAK_PER_CORE);
done:
    op_ctx_free(ctx);
    lmx_free(q);
    lmx_free(k);
    lmx_free(v);
    lmx_free(o);
}

typedef struct mem_row {
    const char *name;
    int kind;
} mem_row;

static void bench_memory_bound(void) {
    /* 64x64x320 map, B = 2 (CFG batch) */
    int64_t B = 2, HW = 64 * 64, C = 320, n = B * HW * C;
    float *x = randbuf(n, 5), *y = randbuf(n, 6), *g = randbuf(C, 7), *b = randbuf(C, 8);
    float *x2 = randbuf(2 * n, 9);
    if (!x || !y || !g || !b || !x2) {
        printf("out of memory\n");
        goto done;
    }
    static const mem_row rows[] = {
        {"group_norm", 0}, {"group_norm+silu", 1}, {"layer_norm", 2}, {"softmax", 3},
        {"silu", 4},       {"gelu_erf", 5},        {"geglu", 6},      {"add", 7},
        {"upsample2x", 8}, {"nchw_to_nhwc", 9},
    };
    for (size_t i = 0; i < LMX_ARRAY_LEN(rows); i++) {
        if (!wanted(rows[i].name)) continue;
        double best = 1e30, bytes = 2.0 * n * sizeof(float);
        for (int rep = 0; rep <= g_reps; rep++) {
            double t0 = lmx_now();
            switch (rows[i].kind) {
            case 0: op_group_norm(x, y, B, HW, C, 32, g, b, 1e-5f, 0); break;
            case 1: op_group_norm(x, y, B, HW, C, 32, g, b, 1e-5f, 1); break;
            case 2: op_layer_norm(x, y, B * HW, C, g, b, 1e-5f); break;
            case 3: op_softmax(x, y, B * HW, C); break;
            case 4: op_silu(x, y, n); break;
            case 5: op_gelu_erf(x, y, n); break;
            case 6: op_geglu(x2, y, B * HW, C); bytes = 3.0 * n * sizeof(float); break;
            case 7: op_add(x, y, y, n); bytes = 3.0 * n * sizeof(float); break;
            case 8:
                op_upsample_nearest2x(x, x2, B, 32, 64, C); /* half the map -> 2x: 2n out */
                bytes = 2.5 * n * sizeof(float);
                break;
            case 9: op_nchw_to_nhwc(x, y, B, C, 64, 64); break;
            }
            double t = lmx_now() - t0;
            if (rep > 0 && t < best) best = t; /* rep 0 warms up */
        }
        printf("%-16s B=2 64x64x320 %8.3f ms %7.1f GB/s\n", rows[i].name, best * 1e3,
               bytes / best / 1e9);
    }
done:
    lmx_free(x);
    lmx_free(y);
    lmx_free(g);
    lmx_free(b);
    lmx_free(x2);
}

int main(int argc, char **argv) {
    int nthr = omp_get_max_threads(), quick = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--threads") && i + 1 < argc) nthr = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc) g_reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--filter") && i + 1 < argc) g_filter = argv[++i];
        else if (!strcmp(argv[i], "--quick")) quick = 1;
        else {
            fprintf(stderr, "usage: bench_attention [--threads N] [--reps N] [--filter a,b] [--quick]\n");
            return 2;
        }
    }
    if (nthr < 1) nthr = 1;
    if (g_reps < 1) g_reps = 1;
    omp_set_num_threads(nthr);
    printf("bench_attention: %d thread(s), peak %.0f GFLOP/s fp32, best of %d, load average %.2f\n",
           nthr, PEAK_PER_CORE * nthr, g_reps, loadavg());
    for (size_t i = 0; i < LMX_ARRAY_LEN(ATT); i++)
        if (wanted(ATT[i].name) && !(quick && ATT[i].big)) bench_attention(&ATT[i], nthr);
    bench_memory_bound();
    printf("load average after: %.2f\n", loadavg());
    return 0;
}
