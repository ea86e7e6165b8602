/*
 * test_ctx_threads.c - one model, two contexts, two threads: each context
 * generates its own LoRA set at the same time as the other, in runtime and
 * in merged mode, and every result is bitwise the one the same generation
 * gives when the jobs run one after the other on one context. The model
 * and the LoRAs are shared read-only; attached adapters, scale tables and
 * merged kernels live in each context.
 *
 * Also built with ThreadSanitizer (`make test-tsan`, CMake LMX_TSAN=ON).
 * libgomp is not instrumented, so that run sets OMP_NUM_THREADS=1: TSan
 * then sees only this test's two threads.
 */
#include <pthread.h>
#include <string.h>

#include "harness.h"
#include "pipeline_impl.h"

#define LDIR "tests/fixtures/lora/"

enum { N_JOBS = 4, N_REPEAT = 2 };

typedef struct job {
    const char *name;
    int merged;
    int n;
    int lora[3];        /* indexes into g_lora */
    float scale[3];
    uint64_t seed;
} job;

static const char *FILES[3] = {LDIR "char_kohya.safetensors", LDIR "style_peft.safetensors",
                               LDIR "object_kohya.safetensors"};
static lmx_lora *g_lora[3];
static lmx_model *g_model;

/* Jobs 0/1 run together (runtime), then 2/3 (merged); each pair has
 * different LoRA sets, in different orders. */
static const job JOBS[N_JOBS] = {
    {"runtime char+style", 0, 2, {0, 1}, {0.9f, 0.7f}, 11},
    {"runtime object+char", 0, 2, {2, 0}, {1.1f, 0.5f}, 12},
    {"merged style", 1, 1, {1}, {0.8f}, 13},
    {"merged object+style+char", 1, 3, {2, 1, 0}, {0.6f, 0.9f, 0.4f}, 14},
};

typedef struct result {
    float *lat;
    int64_t n_lat;
    uint8_t *rgb;
    size_t n_rgb;
    lmx_status st;
    char err[256];
} result;

static int64_t g_n_lat;

static void run_job(lmx_ctx *ctx, const job *j, result *r) {
    lmx_gen_params p = lmx_gen_params_default();
    p.prompt = "a photo of a cat";
    p.width = p.height = 64;
    p.steps = 4;
    p.seed = j->seed;
    lmx_lora_use u[3];
    for (int i = 0; i < j->n; i++) {
        u[i] = lmx_lora_use_default(g_lora[j->lora[i]]);
        u[i].unet_scale = j->scale[i];
        u[i].te_scale = j->scale[i];
    }
    p.loras = u;
    p.n_loras = j->n;
    p.lora_merged = j->merged;
    memset(r, 0, sizeof *r);
    r->n_lat = g_n_lat;
    r->lat = lmx_malloc(sizeof(float) * (size_t)g_n_lat);
    lmx_image img = {0};
    ctx->keep_latents = r->lat;
    r->st = lmx_generate(ctx, &p, &img);
    ctx->keep_latents = NULL;
    if (r->st != LMX_OK) {
        snprintf(r->err, sizeof r->err, "%s", lmx_errmsg());
        return;
    }
    r->n_rgb = (size_t)img.width * (size_t)img.height * 3;
    r->rgb = lmx_malloc(r->n_rgb);
    if (r->rgb) memcpy(r->rgb, img.rgb, r->n_rgb);
    lmx_image_free(&img);
}

static void result_free(result *r) {
    lmx_free(r->lat);
    lmx_free(r->rgb);
    memset(r, 0, sizeof *r);
}

typedef struct worker {
    lmx_ctx *ctx;
    const job *j;
    result out[N_REPEAT];
} worker;

static void *worker_main(void *arg) {
    worker *w = arg;
    for (int k = 0; k < N_REPEAT; k++) run_job(w->ctx, w->j, &w->out[k]);
    return NULL;
}

static void check_same(const char *what, const result *ref, const result *got) {
    CHECK(got->st == LMX_OK, "%s: %s", what, got->err);
    if (got->st != LMX_OK || ref->st != LMX_OK) return;
    CHECK(memcmp(ref->lat, got->lat, sizeof(float) * (size_t)ref->n_lat) == 0, "%s: latents differ", what);
    CHECK(ref->n_rgb == got->n_rgb && memcmp(ref->rgb, got->rgb, ref->n_rgb) == 0, "%s: pixels differ", what);
}

int main(void) {
    lmx_log_set(LMX_LOG_ERROR, NULL, NULL); /* the fixtures' warnings are expected */
    CHECK_OK(lmx_model_load(&g_model, lmx_src_path("tests/fixtures/models/tiny-sd"), NULL));
    if (!g_model) return lmx_test_finish();
    for (int i = 0; i < 3; i++) CHECK_OK(lmx_lora_load(&g_lora[i], g_model, lmx_src_path(FILES[i])));
    const unet_config *uc = unet_cfg(g_model->sd->unet);
    const int f = vae_factor(g_model->sd->vae);
    g_n_lat = (int64_t)uc->in_channels * (64 / f) * (64 / f);

    /* references: one context, one job after the other */
    result ref[N_JOBS];
    memset(ref, 0, sizeof ref);
    lmx_ctx *c0 = NULL;
    CHECK_OK(lmx_ctx_create(&c0, g_model, NULL));
    for (int i = 0; c0 && i < N_JOBS; i++) {
        run_job(c0, &JOBS[i], &ref[i]);
        CHECK(ref[i].st == LMX_OK, "%s (sequential): %s", JOBS[i].name, ref[i].err);
    }
    lmx_ctx_free(c0);
    /* the LoRA sets differ, so must the images */
    if (ref[0].lat && ref[1].lat)
        CHECK(memcmp(ref[0].lat, ref[1].lat, sizeof(float) * (size_t)g_n_lat) != 0, "jobs 0 and 1 give the same latents");

    /* two contexts on the shared model, two threads, pair by pair */
    for (int pair = 0; pair < N_JOBS; pair += 2) {
        worker w[2];
        pthread_t th[2];
        memset(w, 0, sizeof w);
        for (int t = 0; t < 2; t++) {
            CHECK_OK(lmx_ctx_create(&w[t].ctx, g_model, NULL));
            w[t].j = &JOBS[pair + t];
        }
        if (!w[0].ctx || !w[1].ctx) break;
        for (int t = 0; t < 2; t++) CHECK(pthread_create(&th[t], NULL, worker_main, &w[t]) == 0, "pthread_create");
        for (int t = 0; t < 2; t++) pthread_join(th[t], NULL);
        for (int t = 0; t < 2; t++) {
            for (int k = 0; k < N_REPEAT; k++) {
                char what[128];
                snprintf(what, sizeof what, "%s (thread %d, run %d)", JOBS[pair + t].name, t, k + 1);
                check_same(what, &ref[pair + t], &w[t].out[k]);
                result_free(&w[t].out[k]);
            }
            lmx_ctx_free(w[t].ctx);
        }
        printf("%s | %s: concurrent = sequential, bitwise\n", JOBS[pair].name, JOBS[pair + 1].name);
    }
    /* the model was not modified: a fresh context still gives job 0 */
    lmx_ctx *c1 = NULL;
    CHECK_OK(lmx_ctx_create(&c1, g_model, NULL));
    if (c1) {
        result again;
        run_job(c1, &JOBS[0], &again);
        check_same("job 0 after the concurrent runs", &ref[0], &again);
        result_free(&again);
    }
    lmx_ctx_free(c1);
    for (int i = 0; i < N_JOBS; i++) result_free(&ref[i]);
    for (int i = 0; i < 3; i++) lmx_lora_free(g_lora[i]);
    lmx_model_free(g_model);
    lmx_log_set(LMX_LOG_WARN, NULL, NULL);
    return lmx_test_finish();
}
