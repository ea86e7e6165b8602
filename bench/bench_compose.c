/*
 * bench_compose.c - the cost of one denoising step for each multi-LoRA
 * composition method, N = 2..5, and batched LoRA Composite (one UNet
 * forward over the 2N samples of N branches) against N sequential calls
 * (what the reference pipelines do: one UNet call on the CFG batch per LoRA).
 *
 * Model: a mid-size SD1.x-family UNet (block channels 160/320/640/640,
 * 8 heads, cross-attention 768, 2 layers per block) and a 2-layer CLIP text
 * encoder, weights from hashinit (generated, nothing read or committed), at a
 * --latent x --latent latent (default 32, a 256x256 image), CFG batch.
 * LoRAs: N kohya files of rank --rank on the UNet transformer blocks
 * (attention, feed-forward, proj_in/out) and every TE linear, fp16, random,
 * written to a temporary folder and loaded with lora_load.
 *
 * Per N, one step of each method, as the pipeline runs it: the plan's scale
 * table for the step (compose_plan_unet_scales), the UNet forward over
 * n_branches x 2 samples, compose_plan_combine:
 *   merge        1 forward, B = 2, N LoRAs active
 *   switch       1 forward, B = 2, 1 LoRA (w-switch costs the same)
 *   composite    1 forward, B = 2N, LoRA i on samples 2i, 2i+1  ("batched")
 *   composite-seq N forwards, B = 2, one LoRA each                ("sequential")
 *   w-composite  as composite, weighted combine
 * Configurations run in interleaved rounds (--reps); min and median per
 * configuration are printed. The machine is shared: the load average is
 * printed, and the minimum is the least disturbed estimate.
 *
 * Usage: bench_compose [--threads N] [--reps N] [--latent N] [--rank R] [--max-n N]
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "compose/compose.h"
#include "core/hashinit.h"
#include "lora/lora.h"

#define MAXN 5
enum { C_MERGE, C_SWITCH, C_COMP, C_COMP_SEQ, C_WCOMP, C_COUNT };
static const char *CNAME[C_COUNT] = {"merge", "switch / w-switch", "composite (batched)", "composite (sequential)",
                                     "w-composite (batched)"};

static lmx_status gen_weight(void *user, const char *name, int ndim, const int64_t *shape, float *dst) {
    (void)user;
    lmx_hash_fill(name, ndim, shape, dst);
    return LMX_OK;
}

static void die(const char *what, lmx_status st) {
    fprintf(stderr, "bench_compose: %s: %s: %s\n", what, lmx_status_name(st), lmx_errmsg());
    exit(1);
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* A kohya LoRA of rank r (fp16) on the UNet transformer blocks and every TE linear. */
static void write_lora(const char *path, const lora_targets *t, int r, uint64_t seed) {
    st_writer *w = NULL;
    lmx_status st = st_writer_create(&w);
    if (st) die("writer", st);
    lmx_prng g = {seed};
    uint16_t *buf = NULL;
    size_t cap = 0;
    for (int i = 0; i < lora_targets_count(t); i++) {
        const lora_target *x = lora_targets_at(t, i);
        if (x->comp == LORA_UNET && !strstr(x->path, "attentions")) continue;
        char stem[512], key[600];
        snprintf(stem, sizeof stem, "%s%s", x->comp == LORA_UNET ? "lora_unet_" : "lora_te_", x->path);
        for (char *p = stem; *p; p++)
            if (*p == '.') *p = '_';
        int64_t kk = x->k, sd[4] = {r, x->n_in, kk, kk}, su[4] = {x->n_out, r, 1, 1};
        int nd = x->kind == NN_LINEAR ? 2 : 4;
        size_t need = (size_t)LMX_MAX(r * x->n_in * kk * kk, x->n_out * r);
        if (need > cap) {
            lmx_free(buf);
            buf = lmx_malloc(need * sizeof *buf);
            cap = need;
        }
        float sa = 1.0f / sqrtf((float)(x->n_in * kk * kk)), sb = 0.3f / sqrtf((float)r);
        for (int64_t j = 0; j < r * x->n_in * kk * kk; j++) buf[j] = lmx_f32_to_f16(sa * lmx_prng_normal(&g));
        snprintf(key, sizeof key, "%s.lora_down.weight", stem);
        if ((st = st_writer_add(w, key, ST_F16, nd, sd, buf))) die(key, st);
        for (int64_t j = 0; j < x->n_out * r; j++) buf[j] = lmx_f32_to_f16(sb * lmx_prng_normal(&g));
        snprintf(key, sizeof key, "%s.lora_up.weight", stem);
        if ((st = st_writer_add(w, key, ST_F16, nd, su, buf))) die(key, st);
    }
    if ((st = st_writer_finish(w, path))) die(path, st);
    st_writer_free(w);
    lmx_free(buf);
}

typedef struct bench {
    sd_model sm;
    lora_state ls;
    op_ctx *ops;
    lmx_arena ar;
    int lat;
    float *x, *ctx, *t, *out, *out_nchw, *eps, *tab;
    lmx_lora_use use[MAXN];
} bench;

/* One step of configuration `c` with N LoRAs; returns seconds. */
static double step(bench *b, int c, int N) {
    static const lmx_method M[C_COUNT] = {LMX_METHOD_MERGE, LMX_METHOD_SWITCH, LMX_METHOD_COMPOSITE,
                                          LMX_METHOD_COMPOSITE, LMX_METHOD_W_COMPOSITE};
    lmx_compose cc = lmx_compose_default();
    cc.method = M[c];
    double man[MAXN];
    for (int i = 0; i < N; i++) man[i] = 1.0 + i;
    if (c == C_WCOMP) {
        cc.weighting = LMX_WEIGHTING_MANUAL;
        cc.manual_weights = man;
    }
    compose_plan p;
    lmx_status st = compose_plan_build(&p, &cc, b->use, N, "x", 100, NULL, NULL);
    if (st) die("plan", st);
    const int64_t per = 4LL * b->lat * b->lat;
    const int k = 7; /* a step inside a Switch block of LoRA 1 */
    double t0 = lmx_now();
    nn_run run = {.ctx = b->ops, .arena = &b->ar, .hooks = &b->ls.hooks[LORA_UNET], .n_loras = N};
    if (c == C_COMP_SEQ) {
        /* N calls on the CFG batch, one LoRA each, outputs gathered per branch */
        for (int i = 0; i < N; i++) {
            memset(b->tab, 0, sizeof(float) * (size_t)N * 2);
            b->tab[i * 2] = b->tab[i * 2 + 1] = 0.8f;
            run.lora_scale = b->tab;
            lmx_arena_reset(&b->ar, 0);
            if ((st = unet_forward(b->sm.unet, &run, b->x, b->t, b->ctx, 77, b->out + (int64_t)i * 2 * per, 2, b->lat,
                                   b->lat)))
                die("forward", st);
        }
        op_nhwc_to_nchw(b->out, b->out_nchw, 2 * N, b->lat, b->lat, 4);
    } else {
        int B = 2 * p.n_branches;
        compose_plan_unet_scales(&p, k, 0.8f, b->use, NULL, N, 2, b->tab);
        run.lora_scale = b->tab;
        lmx_arena_reset(&b->ar, 0);
        if ((st = unet_forward(b->sm.unet, &run, b->x, b->t, b->ctx, 77, b->out, B, b->lat, b->lat))) die("forward", st);
        op_nhwc_to_nchw(b->out, b->out_nchw, B, b->lat, b->lat, 4);
    }
    compose_plan_combine(&p, b->out_nchw, b->eps, 1, per, 1, 7.0f);
    double dt = lmx_now() - t0;
    compose_plan_free(&p);
    return dt;
}

int main(int argc, char **argv) {
    int reps = 3, lat = 32, rank = 16, max_n = MAXN, threads = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : "0";
        if (!strcmp(a, "--reps")) reps = atoi(v), i++;
        else if (!strcmp(a, "--latent")) lat = atoi(v), i++;
        else if (!strcmp(a, "--rank")) rank = atoi(v), i++;
        else if (!strcmp(a, "--max-n")) max_n = atoi(v), i++;
        else if (!strcmp(a, "--threads")) threads = atoi(v), i++;
        else {
            fprintf(stderr, "usage: bench_compose [--threads N] [--reps N] [--latent N] [--rank R] [--max-n N]\n");
            return 2;
        }
    }
    if (reps < 1 || lat < 8 || lat % 8 || rank < 1 || max_n < 2 || max_n > MAXN) {
        fprintf(stderr, "bench_compose: bad option values\n");
        return 2;
    }
    if (threads > 0) lmx_set_threads(threads);
    double la[3] = {0};
    if (getloadavg(la, 3) < 0) la[0] = -1;
    char dir[] = "/tmp/bench_compose_XXXXXX";
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    printf("bench_compose: %d threads, load average %.2f (the machine is shared: timings are noisy)\n",
           lmx_get_threads(), la[0]);

    bench b;
    memset(&b, 0, sizeof b);
    b.lat = lat;
    unet_config uc = unet_config_sd15();
    const int ch[4] = {160, 320, 640, 640};
    for (int i = 0; i < 4; i++) uc.ch[i] = ch[i];
    clip_text_config tc = clip_text_config_sd15();
    tc.layers = 2;
    double t0 = lmx_now();
    nn_src g = {.label = "unet", .prefix = "", .prec = OP_PREC_F32, .gen = gen_weight};
    lmx_status st = unet_load(&b.sm.unet, &g, &uc);
    nn_src_release(&g);
    nn_src gt = {.label = "text_encoder", .prefix = "", .prec = OP_PREC_F32, .gen = gen_weight};
    if (!st) st = clip_text_load(&b.sm.text, &gt, &tc);
    nn_src_release(&gt);
    if (st) die("model", st);
    printf("mid-size UNet (channels 160/320/640/640, cross-attention 768) generated in %.1f s; latent %dx%d, CFG\n",
           lmx_now() - t0, lat, lat);

    lora_targets *t = NULL;
    if ((st = lora_targets_from_model(&t, &b.sm))) die("targets", st);
    lora_opts lo = lora_opts_default();
    lo.quiet = 1;
    lmx_lora *L[MAXN] = {0};
    char path[600];
    for (int i = 0; i < max_n; i++) {
        snprintf(path, sizeof path, "%s/lora_%d.safetensors", dir, i);
        write_lora(path, t, rank, 100 + (uint64_t)i);
        if ((st = lora_load(&L[i], &b.sm, path, &lo))) die(path, st);
        unlink(path);
        b.use[i] = lmx_lora_use_default(L[i]);
        b.use[i].category = i ? LMX_CAT_STYLE : LMX_CAT_CHARACTER;
    }
    printf("%d LoRAs of rank %d on %d modules each (UNet transformer blocks + text encoder)\n", max_n, rank,
           L[0]->n_mod);
    if ((st = lora_attach(&b.ls, &b.sm, (const lmx_lora *const *)L, max_n))) die("attach", st);
    if ((st = op_ctx_create(&b.ops))) die("ctx", st);
    const int Bmax = 2 * max_n;
    const int64_t per = 4LL * lat * lat;
    if ((st = lmx_arena_init(&b.ar, unet_arena_bytes_lora(b.sm.unet, lora_state_rank(&b.ls, LORA_UNET), Bmax, lat, lat, 77)))) die("arena", st);
    b.x = lmx_malloc(sizeof(float) * (size_t)(Bmax * per));
    b.out = lmx_malloc(sizeof(float) * (size_t)(Bmax * per));
    b.out_nchw = lmx_malloc(sizeof(float) * (size_t)(Bmax * per));
    b.eps = lmx_malloc(sizeof(float) * (size_t)per);
    b.ctx = lmx_malloc(sizeof(float) * (size_t)Bmax * 77 * 768);
    b.t = lmx_malloc(sizeof(float) * (size_t)Bmax);
    b.tab = lmx_malloc(sizeof(float) * (size_t)(max_n * Bmax));
    lmx_prng r = {7};
    for (int64_t i = 0; i < Bmax * per; i++) b.x[i] = lmx_prng_normal(&r);
    for (int64_t i = 0; i < (int64_t)Bmax * 77 * 768; i++) b.ctx[i] = lmx_prng_normal(&r);
    for (int i = 0; i < Bmax; i++) b.t[i] = 500;

    double *tm = lmx_malloc(sizeof(double) * (size_t)reps * C_COUNT);
    printf("\n  ms per step: min (median) over %d interleaved rounds\n", reps);
    printf("  %-24s", "method");
    for (int N = 2; N <= max_n; N++) printf("          N=%d", N);
    printf("\n");
    double res[MAXN + 1][C_COUNT][2];
    for (int N = 2; N <= max_n; N++) {
        for (int c = 0; c < C_COUNT; c++) step(&b, c, N); /* warm-up: primitives for every batch size */
        for (int rr = 0; rr < reps; rr++)
            for (int c = 0; c < C_COUNT; c++) tm[c * reps + rr] = step(&b, c, N);
        for (int c = 0; c < C_COUNT; c++) {
            qsort(tm + c * reps, (size_t)reps, sizeof(double), cmp_d);
            res[N][c][0] = tm[c * reps];
            res[N][c][1] = reps % 2 ? tm[c * reps + reps / 2] : 0.5 * (tm[c * reps + reps / 2 - 1] + tm[c * reps + reps / 2]);
        }
    }
    for (int c = 0; c < C_COUNT; c++) {
        printf("  %-24s", CNAME[c]);
        for (int N = 2; N <= max_n; N++) printf(" %6.0f (%4.0f)", 1e3 * res[N][c][0], 1e3 * res[N][c][1]);
        printf("\n");
    }
    printf("  %-24s", "batched / sequential");
    for (int N = 2; N <= max_n; N++) printf("   %5.2fx     ", res[N][C_COMP_SEQ][0] / res[N][C_COMP][0]);
    printf("\n  (>1x: one forward over 2N samples is faster than N forwards over 2)\n");

    lmx_free(tm);
    lmx_free(b.x);
    lmx_free(b.out);
    lmx_free(b.out_nchw);
    lmx_free(b.eps);
    lmx_free(b.ctx);
    lmx_free(b.t);
    lmx_free(b.tab);
    lmx_arena_free(&b.ar);
    op_ctx_free(b.ops);
    lora_state_free(&b.ls);
    for (int i = 0; i < max_n; i++) lora_free(L[i]);
    lora_targets_free(t);
    unet_free(b.sm.unet);
    clip_text_free(b.sm.text);
    rmdir(dir);
    return 0;
}
