/*
 * bench_sd.c - time one network pass of a full SD1.5 model (made by
 * bench/make_sd15_random.py), the loramix side of scripts/bench.sh's
 * comparison with diffusers (bench/peer_diffusers.py).
 *
 *   bench_sd MODEL WHAT W H REPS [--bf16] [--winograd]
 *   WHAT: text | unet1 | unet2 | vae | load
 *
 * Prints one JSON line: median seconds over REPS after one warm-up pass,
 * and the process's peak RSS (ru_maxrss), so run one WHAT per process.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "core/core.h"
#include "model/sd_model.h"

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double peak_rss_mb(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss / 1024.0;
}

int main(int argc, char **argv) {
    if (argc < 6) {
        fprintf(stderr, "usage: bench_sd MODEL text|unet1|unet2|vae|load W H REPS [--bf16] [--winograd]\n");
        return 2;
    }
    const char *model = argv[1], *what = argv[2];
    int W = atoi(argv[3]), H = atoi(argv[4]), reps = atoi(argv[5]);
    sd_load_opts o = sd_load_opts_default();
    o.vae_encoder = 0;
    for (int i = 6; i < argc; i++) {
        if (!strcmp(argv[i], "--bf16")) o.prec = OP_PREC_BF16;
        if (!strcmp(argv[i], "--winograd")) o.winograd = 1;
    }
    double t0 = lmx_now();
    sd_model *m = NULL;
    lmx_status st = sd_model_load(&m, model, &o);
    double t_load = lmx_now() - t0;
    if (st != LMX_OK) {
        fprintf(stderr, "bench_sd: %s\n", lmx_errmsg());
        return 1;
    }
    op_ctx *ctx = NULL;
    if (op_ctx_create(&ctx) != LMX_OK) return 1;
    const int h = H / 8, w = W / 8, L = 77;
    const int C = clip_text_cfg(m->text)->hidden;
    size_t bytes = 0;
    int B = 1;
    if (!strcmp(what, "text")) bytes = clip_text_arena_bytes(m->text, 1, L);
    else if (!strcmp(what, "unet1") || !strcmp(what, "unet2")) {
        B = what[4] - '0';
        bytes = unet_arena_bytes(m->unet, B, h, w, L);
    } else if (!strcmp(what, "vae")) bytes = vae_decode_arena_bytes(m->vae, 1, h, w);
    lmx_arena arena;
    if (lmx_arena_init(&arena, bytes) != LMX_OK) return 1;
    float *in = lmx_alloc_aligned(sizeof(float) * (size_t)B * (size_t)LMX_MAX(h * w * 4, L * C));
    float *ctxv = lmx_alloc_aligned(sizeof(float) * (size_t)B * L * C);
    float *out = lmx_alloc_aligned(sizeof(float) * (size_t)B * (size_t)LMX_MAX(H * W * 3, L * C));
    if (!in || !ctxv || !out) return 1;
    lmx_prng r = {7};
    for (int64_t i = 0; i < (int64_t)B * LMX_MAX(h * w * 4, L * C); i++) in[i] = lmx_prng_normal(&r);
    for (int64_t i = 0; i < (int64_t)B * L * C; i++) ctxv[i] = lmx_prng_normal(&r);
    int64_t ids[77];
    for (int i = 0; i < 77; i++) ids[i] = i == 0 ? 49406 : (i < 10 ? 320 + i : 49407);
    float tt[2] = {500.0f, 500.0f};
    double *times = calloc((size_t)reps + 1, sizeof(double));
    for (int rep = 0; rep <= reps && strcmp(what, "load"); rep++) {
        nn_run run = {.ctx = ctx, .arena = &arena};
        lmx_arena_reset(&arena, 0);
        double t1 = lmx_now();
        if (!strcmp(what, "text")) st = clip_text_forward(m->text, &run, ids, 1, L, 0, out);
        else if (what[0] == 'u') st = unet_forward(m->unet, &run, in, tt, ctxv, L, out, B, h, w);
        else st = vae_decode(m->vae, &run, in, 1, h, w, out);
        if (st != LMX_OK) {
            fprintf(stderr, "bench_sd: %s\n", lmx_errmsg());
            return 1;
        }
        if (rep > 0) times[rep - 1] = lmx_now() - t1;
    }
    double med = 0;
    if (strcmp(what, "load")) {
        qsort(times, (size_t)reps, sizeof(double), cmp_d);
        med = times[reps / 2];
    } else {
        med = t_load;
    }
    printf("{\"side\":\"loramix\",\"what\":\"%s\",\"w\":%d,\"h\":%d,\"median_s\":%.4f,\"peak_rss_mb\":%.0f,"
           "\"load_s\":%.2f,\"prec\":\"%s\",\"winograd\":%d,\"threads\":%d}\n",
           what, W, H, med, peak_rss_mb(), t_load, o.prec == OP_PREC_BF16 ? "bf16" : "fp32", o.winograd,
           lmx_get_threads());
    free(times);
    lmx_free(in);
    lmx_free(ctxv);
    lmx_free(out);
    lmx_arena_free(&arena);
    op_ctx_free(ctx);
    sd_model_free(m);
    return 0;
}
