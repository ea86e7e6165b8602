/*
 * test_pipeline.c - the whole txt2img pipeline against diffusers'
 * StableDiffusionPipeline on the tiny model (reference/gen_pipeline.py):
 * for every scheduler, final latents and uint8 pixels, from the diffusers
 * folder and from the single-file checkpoint holding the same weights.
 *
 * The same runs with LoRAs (reference/gen_lora.py: diffusers load_lora_weights
 * + set_adapters + cross_attention_kwargs scale), in runtime and merged mode.
 *
 * Tolerances: pixels within 1 level (the acceptance); final latents
 * max |a - r| <= 2e-5 · max|r| (observed ~2e-6 on this machine: random tiny
 * weights make the latents large, and 6-12 steps compound the per-call error).
 */
#include <cjson/cJSON.h>
#include <math.h>
#include <string.h>

#include "harness.h"
#include "loramix.h"
#include "pipeline_impl.h"

static const char *GOLDENS[] = {"tests/fixtures/pipeline/golden_pipeline.safetensors",
                                "tests/fixtures/lora/pipeline_lora.safetensors"};

static void run_case(lmx_model *m, lmx_ctx *ctx, const char *model_label, const cJSON *c, st_file *g,
                     int merged) {
    const char *name = cJSON_GetObjectItem(c, "name")->valuestring;
    lmx_gen_params p = lmx_gen_params_default();
    p.prompt = cJSON_GetObjectItem(c, "prompt")->valuestring;
    p.negative_prompt = cJSON_GetObjectItem(c, "negative")->valuestring;
    p.steps = cJSON_GetObjectItem(c, "steps")->valueint;
    p.guidance = (float)cJSON_GetObjectItem(c, "guidance")->valuedouble;
    p.seed = (uint64_t)cJSON_GetObjectItem(c, "seed")->valuedouble;
    p.width = cJSON_GetObjectItem(c, "width")->valueint;
    p.height = cJSON_GetObjectItem(c, "height")->valueint;
    p.n_images = cJSON_GetObjectItem(c, "n_images")->valueint;
    p.clip_skip = cJSON_GetObjectItem(c, "clip_skip")->valueint;
    const cJSON *sp = cJSON_GetObjectItem(c, "timestep_spacing");
    if (sp) p.timestep_spacing = sp->valuestring;
    CHECK_OK(lmx_scheduler_parse(cJSON_GetObjectItem(c, "scheduler")->valuestring, &p.scheduler));
    const cJSON *ls = cJSON_GetObjectItem(c, "lora_scale");
    if (ls) p.lora_scale = (float)ls->valuedouble;
    const cJSON *jl = cJSON_GetObjectItem(c, "loras");
    int n_loras = jl ? cJSON_GetArraySize(jl) : 0;
    lmx_lora *handles[8] = {0};
    lmx_lora_use uses[8];
    for (int i = 0; i < n_loras && i < 8; i++) {
        const cJSON *e = cJSON_GetArrayItem(jl, i);
        CHECK_OK(lmx_lora_load(&handles[i], m, lmx_src_path(cJSON_GetObjectItem(e, "file")->valuestring)));
        uses[i] = lmx_lora_use_default(handles[i]);
        uses[i].unet_scale = (float)cJSON_GetObjectItem(e, "unet_scale")->valuedouble;
        uses[i].te_scale = (float)cJSON_GetObjectItem(e, "te_scale")->valuedouble;
    }
    p.loras = uses;
    p.n_loras = n_loras;
    p.lora_merged = merged;

    char key[128], what[256];
    snprintf(key, sizeof key, "%s.latents", name);
    int64_t n_lat = 0, n_px = 0;
    float *ref_lat = lmx_golden_f32(g, key, &n_lat);
    snprintf(key, sizeof key, "%s.image_u8", name);
    int64_t *ref_px = lmx_golden_i64(g, key, &n_px);
    if (!ref_lat || !ref_px) goto done;

    float *lat = lmx_malloc(sizeof(float) * (size_t)n_lat);
    lmx_image *imgs = lmx_calloc((size_t)p.n_images, sizeof *imgs);
    ctx->keep_latents = lat;
    double t0 = lmx_now();
    lmx_status st = lmx_generate(ctx, &p, imgs);
    double dt = lmx_now() - t0;
    ctx->keep_latents = NULL;
    CHECK(st == LMX_OK, "%s/%s: generate: %s", model_label, name, lmx_errmsg());
    if (st == LMX_OK) {
        double max_abs, max_ref;
        lmx_err_stats(lat, ref_lat, n_lat, &max_abs, &max_ref);
        snprintf(what, sizeof what, "%s/%s%s latents (%.2f s)", model_label, name, merged ? " merged" : "", dt);
        lmx_cmp_f32(what, lat, ref_lat, n_lat, 2e-5 * max_ref, 0);
        int64_t per = (int64_t)p.width * p.height * 3, worst = 0, n_diff = 0;
        CHECK(per * p.n_images == n_px, "%s: pixel count %lld vs %lld", name, (long long)(per * p.n_images),
              (long long)n_px);
        for (int i = 0; i < p.n_images && per * p.n_images == n_px; i++)
            for (int64_t j = 0; j < per; j++) {
                int64_t d = llabs((int64_t)imgs[i].rgb[j] - ref_px[i * per + j]);
                if (d > worst) worst = d;
                n_diff += d != 0;
            }
        CHECK(worst <= 1, "%s/%s: pixels differ by up to %lld levels (%lld differ)", model_label, name,
              (long long)worst, (long long)n_diff);
        if (lmx_test_verbose())
            printf("ok   %s/%s pixels: max diff %lld, %lld of %lld differ\n", model_label, name,
                   (long long)worst, (long long)n_diff, (long long)n_px);
        CHECK(imgs[0].parameters && strstr(imgs[0].parameters, p.prompt), "parameters text");
    }
    for (int i = 0; i < p.n_images; i++) lmx_image_free(&imgs[i]);
    lmx_free(imgs);
    lmx_free(lat);
done:
    for (int i = 0; i < n_loras && i < 8; i++) lmx_lora_free(handles[i]);
    lmx_free(ref_lat);
    lmx_free(ref_px);
}

int main(void) {
    const char *models[2] = {"tests/fixtures/models/tiny-sd", "tests/fixtures/models/tiny-sd.safetensors"};
    for (size_t gi = 0; gi < LMX_ARRAY_LEN(GOLDENS); gi++) {
        st_file *g = lmx_golden_open(lmx_src_path(GOLDENS[gi]));
        if (!g) continue;
        cJSON *cases = cJSON_Parse(st_meta_get(g, "cases"));
        CHECK(cases && cJSON_IsArray(cases), "%s: golden metadata 'cases'", GOLDENS[gi]);
        for (int mi = 0; mi < 2 && cases; mi++) {
            lmx_model *m = NULL;
            lmx_ctx *ctx = NULL;
            CHECK_OK(lmx_model_load(&m, lmx_src_path(models[mi]), NULL));
            if (m) CHECK_OK(lmx_ctx_create(&ctx, m, NULL));
            const cJSON *c;
            cJSON_ArrayForEach(c, cases) {
                if (!ctx) break;
                run_case(m, ctx, mi ? "single-file" : "folder", c, g, 0);
                if (cJSON_GetObjectItem(c, "loras")) run_case(m, ctx, mi ? "single-file" : "folder", c, g, 1);
            }
            lmx_ctx_free(ctx);
            lmx_model_free(m);
        }
        cJSON_Delete(cases);
        st_close(g);
    }
    return lmx_test_finish();
}
