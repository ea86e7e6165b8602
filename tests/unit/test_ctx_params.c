/*
 * test_ctx_params.c - lmx_ctx_params: the abort callback cancels a
 * generation between steps (LMX_ERR_CANCELLED, no images, the context still
 * good for a next generation bitwise equal to a fresh context's), and the
 * thread counts of a model load and of a context apply to that call only.
 */
#include <string.h>

#include "harness.h"
#include "pipeline_impl.h"

typedef struct watch {
    int cancel_after;   /* abort once this many steps are done; 0 = never */
    int steps_done;
    int max_step;
    int threads_seen;   /* lmx_get_threads() inside the run              */
    int n_abort_calls;
} watch;

static int on_abort(void *user) {
    watch *w = user;
    w->n_abort_calls++;
    return w->cancel_after > 0 && w->steps_done >= w->cancel_after;
}

static void on_progress(int step, int n_steps, double elapsed, void *user) {
    (void)n_steps;
    (void)elapsed;
    watch *w = user;
    w->steps_done = step;
    if (step > w->max_step) w->max_step = step;
    w->threads_seen = lmx_get_threads();
}

static lmx_gen_params params(watch *w, const lmx_lora_use *u, int n) {
    lmx_gen_params p = lmx_gen_params_default();
    p.prompt = "a photo of a cat";
    p.width = p.height = 64;
    p.steps = 5;
    p.seed = 7;
    p.loras = u;
    p.n_loras = n;
    p.progress = on_progress;
    p.progress_user = w;
    return p;
}

int main(void) {
    lmx_log_set(LMX_LOG_ERROR, NULL, NULL);
    CHECK(!strcmp(lmx_status_name(LMX_ERR_CANCELLED), "cancelled"), "status name %s",
          lmx_status_name(LMX_ERR_CANCELLED));

    /* a model load with its own thread count leaves the caller's alone */
    lmx_set_threads(2);
    lmx_model *m = NULL;
    lmx_model_params mp = lmx_model_params_default();
    mp.n_threads = 1;
    CHECK_OK(lmx_model_load(&m, lmx_src_path("tests/fixtures/models/tiny-sd"), &mp));
    CHECK(lmx_get_threads() == 2, "lmx_model_load changed the thread count to %d", lmx_get_threads());
    if (!m) return lmx_test_finish();
    lmx_lora *l = NULL;
    CHECK_OK(lmx_lora_load(&l, m, lmx_src_path("tests/fixtures/lora/char_kohya.safetensors")));
    lmx_lora_use u = lmx_lora_use_default(l);

    lmx_ctx_params cp = lmx_ctx_params_default();
    CHECK(cp.n_threads == 0 && cp.abort == NULL && cp.abort_user == NULL, "lmx_ctx_params_default");
    cp.n_threads = -1;
    lmx_ctx *bad = NULL;
    CHECK(lmx_ctx_create(&bad, m, &cp) == LMX_ERR_ARG && strstr(lmx_errmsg(), "n_threads"), "n_threads -1: %s",
          lmx_errmsg());

    watch w;
    memset(&w, 0, sizeof w);
    cp.n_threads = 1;
    cp.abort = on_abort;
    cp.abort_user = &w;
    lmx_ctx *c = NULL;
    CHECK_OK(lmx_ctx_create(&c, m, &cp));
    lmx_ctx *fresh = NULL; /* the same thread count: the bits may depend on it */
    lmx_ctx_params fp = lmx_ctx_params_default();
    fp.n_threads = 1;
    CHECK_OK(lmx_ctx_create(&fresh, m, &fp));
    if (!c || !fresh || !l) goto done;

    /* cancel at step 2 of 5 */
    lmx_gen_params p = params(&w, &u, 1);
    lmx_image img;
    memset(&img, 0xab, sizeof img);
    w.cancel_after = 2;
    lmx_status st = lmx_generate(c, &p, &img);
    CHECK(st == LMX_ERR_CANCELLED, "cancel: status %s (%s)", lmx_status_name(st), lmx_errmsg());
    CHECK(strstr(lmx_errmsg(), "cancelled") != NULL, "cancel message: %s", lmx_errmsg());
    CHECK(w.max_step == 2, "cancelled after step 2 but progress reached %d", w.max_step);
    CHECK(!img.rgb && !img.json && !img.parameters && !img.width, "a cancelled call returned an image");
    CHECK(w.threads_seen == 1, "context n_threads 1, kernels saw %d", w.threads_seen);
    CHECK(lmx_get_threads() == 2, "lmx_generate left the thread count at %d", lmx_get_threads());

    /* the same context, not cancelled: bitwise the fresh context's result */
    const int f = vae_factor(m->sd->vae);
    const int64_t n_lat = (int64_t)unet_cfg(m->sd->unet)->in_channels * (64 / f) * (64 / f);
    float *lat1 = lmx_calloc((size_t)n_lat, sizeof(float)), *lat2 = lmx_calloc((size_t)n_lat, sizeof(float));
    if (!lat1 || !lat2) goto done;
    lmx_image a = {0}, b = {0};
    memset(&w, 0, sizeof w);
    c->keep_latents = lat1;
    CHECK_OK(lmx_generate(c, &p, &a));
    c->keep_latents = NULL;
    CHECK(w.max_step == 5 && w.n_abort_calls >= 5, "full run: %d steps, %d abort calls", w.max_step,
          w.n_abort_calls);
    memset(&w, 0, sizeof w);
    fresh->keep_latents = lat2;
    CHECK_OK(lmx_generate(fresh, &p, &b));
    fresh->keep_latents = NULL;
    CHECK(a.rgb && b.rgb && memcmp(lat1, lat2, sizeof(float) * (size_t)n_lat) == 0 &&
              memcmp(a.rgb, b.rgb, (size_t)a.width * a.height * 3) == 0,
          "after a cancel, the context's next image differs from a fresh context's");
    lmx_image_free(&a);
    lmx_image_free(&b);
    lmx_free(lat1);
    lmx_free(lat2);
done:
    lmx_ctx_free(c);
    lmx_ctx_free(fresh);
    lmx_lora_free(l);
    lmx_model_free(m);
    lmx_log_set(LMX_LOG_WARN, NULL, NULL);
    return lmx_test_finish();
}
