/*
 * bench_lora.c - what LoRAs cost in loramix's runtime mode.
 *
 * Part 1, on a mid-size SD1.x-family UNet (block channels 160/320/640/640,
 * 8 heads, cross-attention 768, 2 layers per block; weights from
 * hashinit, nothing read) at a 32x32 latent with the CFG batch of 2:
 *   base     one UNet step without LoRA
 *   1 LoRA   one step with one LoRA active (side-path overhead vs base)
 *   switch   the step right after switching LoRA 0 -> LoRA 1 (the LoRA
 *            Switch pattern) vs a step that keeps the set: the cost of
 *            changing the active set (a different scale table, no weight
 *            work), plus the table update itself timed alone, as % of a step
 *   all N    every LoRA active at once (Merge at runtime)
 *   merge    lora_merge of one LoRA (the weight work a merged-mode switch
 *            would need), as % of one step
 * The configurations run in interleaved rounds (--reps); the minimum over
 * rounds is the least disturbed estimate on a shared machine, the median is
 * printed beside it.
 * The LoRAs (rank --rank, on every linear and 1x1 conv of the transformer
 * blocks, kohya fp16) are written by the bench to a temporary folder, and so
 * is the model (generated, saved as fp16, reloaded: merges re-read it).
 *
 * Part 2, SD1.5 size: --sd15 N kohya LoRAs of rank --sd15-rank (UNet
 * attention + feed-forward + proj_in/out, 192 modules, and the 72
 * text-encoder linears, fp16, random) written to a temporary folder and
 * loaded (parse, match against SD1.5's layer list, check, convert, build
 * the side-path kernels): wall time per file and for all.
 *
 * Usage: bench_lora [--threads N] [--reps N] [--latent N] [--rank R]
 *                   [--loras N] [--sd15 N] [--sd15-rank R] [--no-mid]
 * The machine is shared (the load average is printed): with more runnable
 * threads than cores, every OpenMP barrier can wait a scheduler slice, which
 * inflates small kernels (the LoRA side paths) most; --threads 1 gives the
 * steadiest numbers there.
 */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/hashinit.h"
#include "lora/lora.h"

/* Hash weights, also recorded (fp16) into the writer `user` so that the
 * model can be reloaded from a file (a merge re-reads pristine weights). */
static lmx_status gen_weight(void *user, const char *name, int ndim, const int64_t *shape, float *dst) {
    lmx_hash_fill(name, ndim, shape, dst);
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) n *= shape[i];
    uint16_t *h = lmx_malloc(sizeof *h * (size_t)n);
    if (!h) return lmx_err(LMX_ERR_NOMEM, "%s: out of memory", name);
    for (int64_t i = 0; i < n; i++) {
        h[i] = lmx_f32_to_f16(dst[i]);
        dst[i] = lmx_f16_to_f32(h[i]);
    }
    lmx_status st = st_writer_add((st_writer *)user, name, ST_F16, ndim, shape, h);
    lmx_free(h);
    return st;
}

/* Generate a network into a file, then load it from that file. */
static lmx_status make_model(sd_model *sm, const unet_config *uc, const clip_text_config *tc,
                             const char *dir, st_file **fu, st_file **ft) {
    char p[600];
    lmx_status st;
    for (int k = 0; k < 2; k++) {
        st_writer *w = NULL;
        if ((st = st_writer_create(&w))) return st;
        nn_src g = {.label = k ? "text_encoder" : "unet", .prefix = "", .prec = OP_PREC_F32,
                    .gen = gen_weight, .gen_user = w};
        snprintf(p, sizeof p, "%s/%s.safetensors", dir, k ? "text" : "unet");
        if (k == 0) {
            unet *u = NULL;
            st = unet_load(&u, &g, uc);
            unet_free(u);
        } else {
            clip_text *c = NULL;
            st = clip_text_load(&c, &g, tc);
            clip_text_free(c);
        }
        nn_src_release(&g);
        if (!st) st = st_writer_finish(w, p);
        st_writer_free(w);
        if (!st) st = st_open(k ? ft : fu, p);
        unlink(p); /* stays mapped */
        if (st) return st;
        nn_src f = {.f = k ? *ft : *fu, .label = g.label, .prefix = "", .prec = OP_PREC_F32};
        st = k ? clip_text_load(&sm->text, &f, tc) : unet_load(&sm->unet, &f, uc);
        nn_src_release(&f);
        if (st) return st;
    }
    return LMX_OK;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_d);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static void die(const char *what, lmx_status st) {
    fprintf(stderr, "bench_lora: %s: %s: %s\n", what, lmx_status_name(st), lmx_errmsg());
    exit(1);
}

/* A kohya LoRA of rank r, fp16, for the targets `pick` selects. */
static void write_lora(const char *path, const lora_targets *t, int r, uint64_t seed,
                       int (*pick)(const lora_target *)) {
    st_writer *w = NULL;
    lmx_status st = st_writer_create(&w);
    if (st) die("writer", st);
    lmx_prng g = {seed};
    size_t cap = 0;
    uint16_t *buf = NULL;
    for (int i = 0; i < lora_targets_count(t); i++) {
        const lora_target *x = lora_targets_at(t, i);
        if (!pick(x)) continue;
        char stem[512], k[600];
        snprintf(stem, sizeof stem, "%s%s", x->comp == LORA_UNET ? "lora_unet_" : "lora_te_", x->path);
        for (char *p = stem; *p; p++)
            if (*p == '.') *p = '_';
        int64_t kk = x->k;
        int64_t sd[4] = {r, x->n_in, kk, kk}, su[4] = {x->n_out, r, 1, 1};
        int nd = x->kind == NN_LINEAR ? 2 : 4;
        size_t need = (size_t)LMX_MAX(sd[0] * sd[1] * kk * kk, su[0] * su[1]);
        if (need > cap) {
            lmx_free(buf);
            buf = lmx_malloc(need * sizeof *buf);
            cap = need;
        }
        float sa = 1.0f / sqrtf((float)(x->n_in * kk * kk)), sb = 0.3f / sqrtf((float)r);
        for (int64_t j = 0; j < sd[0] * sd[1] * kk * kk; j++) buf[j] = lmx_f32_to_f16(sa * lmx_prng_normal(&g));
        snprintf(k, sizeof k, "%s.lora_down.weight", stem);
        if ((st = st_writer_add(w, k, ST_F16, nd, sd, buf))) die(k, st);
        for (int64_t j = 0; j < su[0] * su[1]; j++) buf[j] = lmx_f32_to_f16(sb * lmx_prng_normal(&g));
        snprintf(k, sizeof k, "%s.lora_up.weight", stem);
        if ((st = st_writer_add(w, k, ST_F16, nd, su, buf))) die(k, st);
        uint16_t a = lmx_f32_to_f16((float)r / 2);
        snprintf(k, sizeof k, "%s.alpha", stem);
        if ((st = st_writer_add(w, k, ST_F16, 0, NULL, &a))) die(k, st);
    }
    if ((st = st_writer_finish(w, path))) die(path, st);
    st_writer_free(w);
    lmx_free(buf);
}

static int pick_xformer(const lora_target *x) {
    return x->comp == LORA_UNET ? strstr(x->path, "attentions") != NULL : 1;
}

static long file_size(const char *p) {
    FILE *f = fopen(p, "rb");
    if (!f) return 0;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fclose(f);
    return n;
}

int main(int argc, char **argv) {
    int reps = 5, latent = 32, rank = 16, n_loras = 3, n_sd15 = 5, sd15_rank = 32, mid = 1, threads = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : "0";
        if (!strcmp(a, "--reps")) reps = atoi(v), i++;
        else if (!strcmp(a, "--latent")) latent = atoi(v), i++;
        else if (!strcmp(a, "--rank")) rank = atoi(v), i++;
        else if (!strcmp(a, "--loras")) n_loras = atoi(v), i++;
        else if (!strcmp(a, "--sd15")) n_sd15 = atoi(v), i++;
        else if (!strcmp(a, "--sd15-rank")) sd15_rank = atoi(v), i++;
        else if (!strcmp(a, "--threads")) threads = atoi(v), i++;
        else if (!strcmp(a, "--no-mid")) mid = 0;
        else {
            fprintf(stderr, "usage: bench_lora [--threads N] [--reps N] [--latent N] [--rank R] [--loras N] "
                            "[--sd15 N] [--sd15-rank R] [--no-mid]\n");
            return 2;
        }
    }
    if (reps < 1 || latent < 8 || rank < 1 || n_loras < 2 || n_loras > 16) {
        fprintf(stderr, "bench_lora: bad option values\n");
        return 2;
    }
    if (threads > 0) lmx_set_threads(threads);
    double la[3] = {0};
    if (getloadavg(la, 3) < 0) la[0] = -1;
    char dir[] = "/tmp/bench_lora_XXXXXX";
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    printf("bench_lora: %d threads, load average %.2f\n", lmx_get_threads(), la[0]);
    lora_opts lo = lora_opts_default();
    lo.quiet = 1;
    char path[600];

    if (mid) {
        unet_config uc = unet_config_sd15();
        int ch[4] = {160, 320, 640, 640};
        for (int i = 0; i < 4; i++) uc.ch[i] = ch[i];
        clip_text_config tc = clip_text_config_sd15();
        tc.layers = 2;
        sd_model sm;
        lora_state ls = {0};
        memset(&sm, 0, sizeof sm);
        st_file *fu = NULL, *ft = NULL;
        double t0 = lmx_now();
        lmx_status st = make_model(&sm, &uc, &tc, dir, &fu, &ft);
        if (st) die("mid-size model", st);
        printf("mid-size UNet (channels 160/320/640/640, cross 768) generated in %.1f s; latent %dx%d, batch 2\n",
               lmx_now() - t0, latent, latent);
        lora_targets *t = NULL;
        if ((st = lora_targets_from_model(&t, &sm))) die("targets", st);
        lmx_lora *L[16] = {0};
        double tl = 0;
        for (int i = 0; i < n_loras; i++) {
            snprintf(path, sizeof path, "%s/mid_%d.safetensors", dir, i);
            write_lora(path, t, rank, 1000 + (uint64_t)i, pick_xformer);
            t0 = lmx_now();
            if ((st = lora_load(&L[i], &sm, path, &lo))) die(path, st);
            tl += lmx_now() - t0;
        }
        printf("%d LoRAs of rank %d on %d modules each (%.1f MiB fp16 each): loaded in %.3f s\n", n_loras, rank,
               L[0]->n_mod, (double)file_size(path) / (1 << 20), tl);
        if ((st = lora_attach(&ls, &sm, (const lmx_lora *const *)L, n_loras))) die("attach", st);
        op_ctx *ctx = NULL;
        if ((st = op_ctx_create(&ctx))) die("ctx", st);
        lmx_arena ar = {0};
        if ((st = lmx_arena_init(&ar, unet_arena_bytes_lora(sm.unet, lora_state_rank(&ls, LORA_UNET), 2, latent, latent, 77)))) die("arena", st);
        int64_t nx = 2 * (int64_t)latent * latent * 4;
        float *x = lmx_malloc(sizeof(float) * (size_t)nx), *eps = lmx_malloc(sizeof(float) * (size_t)nx);
        float *ctxe = lmx_malloc(sizeof(float) * 2 * 77 * 768);
        lmx_prng g = {7};
        for (int64_t i = 0; i < nx; i++) x[i] = lmx_prng_normal(&g);
        for (int64_t i = 0; i < 2 * 77 * 768; i++) ctxe[i] = lmx_prng_normal(&g);
        float tt[2] = {500, 500};
        /* scale tables: none, LoRA 0, LoRA 1, all */
        float *tab0 = lmx_calloc((size_t)n_loras * 2, sizeof(float));
        float *tab1 = lmx_calloc((size_t)n_loras * 2, sizeof(float));
        float *taball = lmx_calloc((size_t)n_loras * 2, sizeof(float));
        tab0[0] = tab0[1] = 0.8f;
        tab1[2] = tab1[3] = 0.8f;
        for (int i = 0; i < 2 * n_loras; i++) taball[i] = 0.8f;
        nn_run run = {.ctx = ctx, .arena = &ar, .hooks = &ls.hooks[LORA_UNET], .n_loras = n_loras};
#define STEP(tab)                                                                               \
    do {                                                                                        \
        run.lora_scale = (tab);                                                                 \
        if ((st = unet_forward(sm.unet, &run, x, tt, ctxe, 77, eps, 2, latent, latent))) die("forward", st); \
    } while (0)
        STEP(NULL); /* warm-up: primitives created */
        STEP(tab0);
        STEP(tab1);
        STEP(taball);
        /* Interleaved rounds, so that the machine's load affects every
         * configuration alike: per round base, LoRA 0, LoRA 0 again (the same
         * set), LoRA 1 (right after a switch), all LoRAs. On a shared machine
         * the minimum over rounds is the least disturbed estimate. */
        double *tq[5];
        for (int k = 0; k < 5; k++) tq[k] = lmx_malloc(sizeof(double) * (size_t)reps);
        float *seq[5] = {NULL, tab0, tab0, tab1, taball};
        for (int r = 0; r < reps; r++)
            for (int k = 0; k < 5; k++) {
                t0 = lmx_now();
                STEP(seq[k]);
                tq[k][r] = lmx_now() - t0;
            }
        double mn[5], md[5];
        for (int k = 0; k < 5; k++) {
            md[k] = median(tq[k], reps); /* sorts */
            mn[k] = tq[k][0];
            lmx_free(tq[k]);
        }
        double t1 = mn[2];
        /* the table update itself: rewrite a [n_loras][2] table */
        const int n_upd = 1000000;
        volatile float sink = 0;
        t0 = lmx_now();
        for (int k = 0; k < n_upd; k++) {
            float *tab = k % 2 ? tab1 : tab0;
            for (int i = 0; i < 2 * n_loras; i++) tab[i] = (i / 2 == k % 2) ? 0.8f : 0.0f;
            run.lora_scale = tab;
            sink += run.lora_scale[0];
        }
        double tupd = (lmx_now() - t0) / n_upd;
        (void)sink;
        /* merged-mode switch: re-merge one LoRA */
        float w1 = 0.8f;
        const lmx_lora *one[1] = {L[1]};
        lora_detach(&ls);
        t0 = lmx_now();
        if ((st = lora_merge(&ls, &sm, one, &w1, &w1, 1))) die("merge", st);
        double tmerge = lmx_now() - t0;
        lora_unmerge(&ls);
        printf("\n  %d interleaved rounds; min (median) per configuration\n", reps);
        printf("  UNet step, no LoRA                 %8.1f ms (%.1f)\n", 1e3 * mn[0], 1e3 * md[0]);
        printf("  UNet step, 1 LoRA active           %8.1f ms (%.1f)  side path %+.1f%% (%+.1f%%)\n", 1e3 * mn[2],
               1e3 * md[2], 100 * (mn[2] / mn[0] - 1), 100 * (md[2] / md[0] - 1));
        printf("  UNet step, all %d LoRAs active      %8.1f ms (%.1f)  side paths %+.1f%% (%+.1f%%)\n", n_loras,
               1e3 * mn[4], 1e3 * md[4], 100 * (mn[4] / mn[0] - 1), 100 * (md[4] / md[0] - 1));
        printf("  step right after a switch 0 -> 1   %8.1f ms (%.1f)  vs keeping the set %+.2f%% (%+.2f%%)\n",
               1e3 * mn[3], 1e3 * md[3], 100 * (mn[3] / mn[2] - 1), 100 * (md[3] / md[2] - 1));
        printf("  first step of LoRA 0 (from none)   %8.1f ms (%.1f)\n", 1e3 * mn[1], 1e3 * md[1]);
        printf("  the switch itself (scale table)    %8.1f ns  = %.1e %% of a step\n", 1e9 * tupd, 100 * tupd / t1);
        printf("  merged-mode switch (lora_merge)    %8.1f ms  = %.0f%% of a step\n", 1e3 * tmerge,
               100 * tmerge / t1);
        lmx_free(tab0);
        lmx_free(tab1);
        lmx_free(taball);
        lmx_free(x);
        lmx_free(eps);
        lmx_free(ctxe);
        lmx_arena_free(&ar);
        op_ctx_free(ctx);
        lora_state_free(&ls);
        for (int i = 0; i < n_loras; i++) {
            lora_free(L[i]);
            snprintf(path, sizeof path, "%s/mid_%d.safetensors", dir, i);
            unlink(path);
        }
        lora_targets_free(t);
        unet_free(sm.unet);
        clip_text_free(sm.text);
        st_close(fu);
        st_close(ft);
    }

    if (n_sd15 > 0) {
        lora_targets *t = NULL;
        lmx_status st = lora_targets_sd15(&t);
        if (st) die("SD1.5 targets", st);
        for (int i = 0; i < n_sd15; i++) {
            snprintf(path, sizeof path, "%s/sd15_%d.safetensors", dir, i);
            write_lora(path, t, sd15_rank, 50 + (uint64_t)i, pick_xformer);
        }
        lora_opts ko = lo;
        ko.kernels = 1;
        double total = 0, *tv = lmx_malloc(sizeof(double) * (size_t)n_sd15);
        lmx_lora **L = lmx_calloc((size_t)n_sd15, sizeof *L);
        size_t bytes = 0;
        for (int i = 0; i < n_sd15; i++) {
            snprintf(path, sizeof path, "%s/sd15_%d.safetensors", dir, i);
            double t0 = lmx_now();
            if ((st = lora_load_targets(&L[i], t, path, &ko))) die(path, st);
            tv[i] = lmx_now() - t0;
            total += tv[i];
            bytes += lora_bytes(L[i]);
        }
        /* the same files without building kernels: parse, match, check, convert */
        double total0 = 0;
        ko.kernels = 0;
        for (int i = 0; i < n_sd15; i++) {
            lmx_lora *x = NULL;
            snprintf(path, sizeof path, "%s/sd15_%d.safetensors", dir, i);
            double t0 = lmx_now();
            if ((st = lora_load_targets(&x, t, path, &ko))) die(path, st);
            total0 += lmx_now() - t0;
            lora_free(x);
        }
        printf("\nSD1.5-size: %d kohya LoRAs, rank %d, %d modules (%d UNet + %d TE), %.1f MiB fp16 each\n",
               n_sd15, sd15_rank, L[0]->n_mod, L[0]->info[LORA_UNET].n_modules, L[0]->info[LORA_TE].n_modules,
               (double)file_size(path) / (1 << 20));
        printf("  load (parse, match, check, fp16->fp32, NaN scan, kernels): %.3f s for %d, median %.3f s each; "
               "kernels %.1f MiB each\n",
               total, n_sd15, median(tv, n_sd15), (double)bytes / n_sd15 / (1 << 20));
        printf("  of which without kernels (parse, match, check, convert, NaN scan): %.3f s for %d\n", total0,
               n_sd15);
        for (int i = 0; i < n_sd15; i++) {
            lora_free(L[i]);
            snprintf(path, sizeof path, "%s/sd15_%d.safetensors", dir, i);
            unlink(path);
        }
        lmx_free(L);
        lmx_free(tv);
        lora_targets_free(t);
    }
    rmdir(dir);
    return 0;
}
