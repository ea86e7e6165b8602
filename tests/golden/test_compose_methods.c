/*
 * test_compose_methods.c - the five composition methods end to end against
 * the diffusers + peft reference (reference/gen_compose.py ->
 * tests/fixtures/compose/golden_methods.safetensors): merge, switch (clean
 * and reference timing), composite, w-switch (PAW, clean and reference
 * timing; manual weights), w-composite (PTW; manual), for N = 2 and N = 3,
 * on the tiny model with the tiny kohya LoRAs of tests/fixtures/compose/,
 * DPM-Solver++ 2M, 10-12 steps, tau 2-4, 64x64, CFG 7, lambda 0.8.
 *
 * 1. The plan (compose_plan_build with the tiny text encoder) gives the
 *    reference's per-step LoRA string, TE adapter set, block lengths and
 *    weights (1e-5). Needs only src/compose.
 * 2. lmx_generate with params.loras/compose gives the reference's final
 *    latents (max |a - r| <= 2e-5 · max |r|; observed 1.8e-6 with a private wiring) and uint8 pixels (within one
 *    level where the golden stores them). Needs the pipeline to execute the
 *    plan (src/pipeline_lora.c) and lmx_lora_load.
 * 3. N = 1: all five methods give the same latents as merge, bit for bit.
 */
#include <cjson/cJSON.h>
#include <math.h>
#include <string.h>

#include "compose/compose.h"
#include "harness.h"
#include "pipeline_impl.h"

#define GOLDEN "tests/fixtures/compose/golden_methods.safetensors"
#define MODEL "tests/fixtures/models/tiny-sd"

typedef struct lora_file {
    const char *id;
    lmx_lora *l;
} lora_file;

static lora_file FILES[3] = {{"character_1", NULL}, {"clothing_1", NULL}, {"style_1", NULL}};

static lmx_lora *lora_by_id(const char *id) {
    for (int i = 0; i < 3; i++)
        if (!strcmp(FILES[i].id, id)) return FILES[i].l;
    return NULL;
}

static lmx_lora_category cat_of(const char *s) {
    for (int c = 0; c < LMX_CAT_COUNT; c++)
        if (!strcmp(s, lmx_lora_category_name((lmx_lora_category)c))) return (lmx_lora_category)c;
    return LMX_CAT_OTHER;
}

typedef struct gen_case {
    const char *name;
    lmx_gen_params p;
    lmx_lora_use u[5];
    const char *trig[5][8];
    double manual[5];
    int n;
} gen_case;

static void parse_case(const cJSON *c, gen_case *gc) {
    memset(gc, 0, sizeof *gc);
    gc->name = cJSON_GetObjectItem(c, "name")->valuestring;
    lmx_gen_params p = lmx_gen_params_default();
    p.prompt = cJSON_GetObjectItem(c, "prompt")->valuestring;
    p.negative_prompt = cJSON_GetObjectItem(c, "negative")->valuestring;
    p.steps = cJSON_GetObjectItem(c, "steps")->valueint;
    p.guidance = (float)cJSON_GetObjectItem(c, "guidance")->valuedouble;
    p.seed = (uint64_t)cJSON_GetObjectItem(c, "seed")->valuedouble;
    p.width = cJSON_GetObjectItem(c, "width")->valueint;
    p.height = cJSON_GetObjectItem(c, "height")->valueint;
    p.scheduler = LMX_SCHED_DPMPP_2M;
    p.lora_scale = 0.8f;
    const cJSON *ids = cJSON_GetObjectItem(c, "ids"), *cats = cJSON_GetObjectItem(c, "categories");
    const cJSON *trigs = cJSON_GetObjectItem(c, "triggers");
    gc->n = cJSON_GetArraySize(ids);
    for (int i = 0; i < gc->n && i < 5; i++) {
        const char *id = cJSON_GetArrayItem(ids, i)->valuestring;
        lmx_lora *l = lora_by_id(id);
        gc->u[i] = lmx_lora_use_default(l);
        gc->u[i].name = id;
        gc->u[i].category = cat_of(cJSON_GetArrayItem(cats, i)->valuestring);
        const cJSON *t = cJSON_GetArrayItem(trigs, i);
        gc->u[i].n_triggers = cJSON_GetArraySize(t);
        for (int j = 0; j < gc->u[i].n_triggers && j < 8; j++) gc->trig[i][j] = cJSON_GetArrayItem(t, j)->valuestring;
        gc->u[i].triggers = gc->trig[i];
    }
    p.n_loras = gc->n;
    lmx_compose *k = &p.compose;
    CHECK_OK(lmx_method_parse(cJSON_GetObjectItem(c, "method")->valuestring, &k->method));
    k->switch_steps = cJSON_GetObjectItem(c, "tau")->valueint;
    k->tail_steps = cJSON_GetObjectItem(c, "tail")->valueint;
    k->switch_timing_reference = cJSON_IsTrue(cJSON_GetObjectItem(c, "reference"));
    const cJSON *wt = cJSON_GetObjectItem(c, "weighting");
    if (wt && !strcmp(wt->valuestring, "manual")) {
        k->weighting = LMX_WEIGHTING_MANUAL;
        const cJSON *m = cJSON_GetObjectItem(c, "manual");
        for (int i = 0; i < gc->n; i++) gc->manual[i] = cJSON_GetArrayItem(m, i)->valuedouble;
        k->manual_weights = gc->manual;
    } else if (wt) {
        CHECK_OK(lmx_weighting_parse(wt->valuestring, &k->weighting));
    }
    gc->p = p;
}

/* 1. The plan against the reference's metadata. */
static void check_plan(lmx_model *m, lmx_ctx *ctx, const cJSON *c, gen_case *gc) {
    compose_clip cc = {.text = m->sd->text, .ops = ctx->ops, .arena = &ctx->arena};
    compose_encoder enc = {.tok = m->tok, .hidden = clip_text_cfg(m->sd->text)->hidden,
                           .encode = compose_clip_encode, .user = &cc};
    compose_plan pl;
    lmx_status st = compose_plan_build(&pl, &gc->p.compose, gc->u, gc->n, gc->p.prompt, gc->p.steps, &enc, NULL);
    CHECK(st == LMX_OK, "%s: plan: %s", gc->name, lmx_errmsg());
    if (st != LMX_OK) return;
    char s[64] = "";
    if (pl.active && pl.effective != LMX_METHOD_MERGE) compose_sched_string(pl.active, pl.n_steps, s);
    const char *want = cJSON_GetObjectItem(c, "schedule")->valuestring;
    CHECK(!strcmp(s, want), "%s: schedule '%s', expected '%s'", gc->name, s, want);
    const cJSON *te = cJSON_GetObjectItem(c, "te_loras");
    unsigned char on[5] = {0};
    const cJSON *x;
    cJSON_ArrayForEach(x, te) on[x->valueint] = 1;
    for (int i = 0; i < gc->n; i++) CHECK(pl.te_on[i] == on[i], "%s: TE LoRA %d on = %d", gc->name, i, pl.te_on[i]);
    const cJSON *bl = cJSON_GetObjectItem(c, "blocks");
    if (cJSON_IsArray(bl))
        for (int i = 0; i < gc->n; i++)
            CHECK(pl.blocks && pl.blocks[i] == cJSON_GetArrayItem(bl, i)->valueint, "%s: block %d", gc->name, i);
    const cJSON *w = cJSON_GetObjectItem(c, "w");
    if (w) {
        CHECK(pl.weights.n == gc->n, "%s: %d weights", gc->name, pl.weights.n);
        for (int i = 0; i < pl.weights.n; i++)
            CHECK(fabs(pl.weights.w[i] - cJSON_GetArrayItem(w, i)->valuedouble) <= 1e-5, "%s: weight %d %.8f vs %.8f",
                  gc->name, i, pl.weights.w[i], cJSON_GetArrayItem(w, i)->valuedouble);
    }
    int want_branches = !strcmp(cJSON_GetObjectItem(c, "method")->valuestring, "composite") ||
                                !strcmp(cJSON_GetObjectItem(c, "method")->valuestring, "w-composite")
                            ? gc->n
                            : 1;
    CHECK(pl.n_branches == want_branches, "%s: %d branches", gc->name, pl.n_branches);
    compose_plan_free(&pl);
}

/* 2. Generation against the reference. Returns the latents (lmx_malloc'd) or NULL. */
static float *generate(lmx_ctx *ctx, gen_case *gc, st_file *g, int compare) {
    char key[96];
    snprintf(key, sizeof key, "%s.latents", gc->name);
    int64_t n_lat = 0;
    float *ref = lmx_golden_f32(g, key, &n_lat);
    if (!ref) return NULL;
    float *lat = lmx_malloc(sizeof(float) * (size_t)n_lat);
    lmx_image img = {0};
    gc->p.loras = gc->u;
    ctx->keep_latents = lat;
    double t0 = lmx_now();
    lmx_status st = lmx_generate(ctx, &gc->p, &img);
    double dt = lmx_now() - t0;
    ctx->keep_latents = NULL;
    CHECK(st == LMX_OK, "%s: generate: %s", gc->name, lmx_errmsg());
    if (st != LMX_OK) {
        lmx_free(lat);
        lmx_free(ref);
        return NULL;
    }
    if (compare) {
        double max_abs, max_ref;
        char what[160];
        lmx_err_stats(lat, ref, n_lat, &max_abs, &max_ref);
        snprintf(what, sizeof what, "%s latents (%.2f s, max|r| %.1f)", gc->name, dt, max_ref);
        lmx_cmp_f32(what, lat, ref, n_lat, 2e-5 * max_ref, 0);
        snprintf(key, sizeof key, "%s.image_u8", gc->name);
        if (st_find(g, key)) {
            int64_t n_px = 0;
            int64_t *px = lmx_golden_i64(g, key, &n_px);
            int64_t worst = 0, n_diff = 0;
            CHECK(n_px == (int64_t)img.width * img.height * 3, "%s: pixel count", gc->name);
            for (int64_t j = 0; px && j < n_px && n_px == (int64_t)img.width * img.height * 3; j++) {
                int64_t d = llabs((int64_t)img.rgb[j] - px[j]);
                if (d > worst) worst = d;
                n_diff += d != 0;
            }
            CHECK(worst <= 1, "%s: pixels differ by up to %lld levels (%lld differ)", gc->name, (long long)worst,
                  (long long)n_diff);
            lmx_free(px);
        }
        CHECK(img.json && strstr(img.json, lmx_method_name(gc->p.compose.method)), "%s: method in the JSON metadata",
              gc->name);
    }
    lmx_image_free(&img);
    lmx_free(ref);
    return lat;
}

int main(void) {
    st_file *g = lmx_golden_open(lmx_src_path(GOLDEN));
    if (!g) return lmx_test_finish();
    cJSON *cases = cJSON_Parse(st_meta_get(g, "cases"));
    CHECK(cases && cJSON_GetArraySize(cases) >= 17, "golden metadata 'cases'");
    lmx_model *m = NULL;
    lmx_ctx *ctx = NULL;
    CHECK_OK(lmx_model_load(&m, lmx_src_path(MODEL), NULL));
    if (m) CHECK_OK(lmx_ctx_create(&ctx, m, NULL));
    int loaded = 1;
    for (int i = 0; i < 3 && ctx; i++) {
        char path[128];
        snprintf(path, sizeof path, "tests/fixtures/compose/%s.safetensors", FILES[i].id);
        lmx_status st = lmx_lora_load(&FILES[i].l, m, lmx_src_path(path));
        CHECK(st == LMX_OK, "lmx_lora_load %s: %s", path, lmx_errmsg());
        loaded &= st == LMX_OK;
    }
    const cJSON *c;
    gen_case gc;
    if (ctx && cases) {
        /* 1. plans (no generation needed) */
        cJSON_ArrayForEach(c, cases) {
            parse_case(c, &gc);
            check_plan(m, ctx, c, &gc);
        }
        /* 2. generation */
        if (loaded) cJSON_ArrayForEach(c, cases) {
                parse_case(c, &gc);
                lmx_free(generate(ctx, &gc, g, 1));
            }
        /* 3. N = 1: every method is merge */
        cJSON_ArrayForEach(c, cases) {
            if (strcmp(cJSON_GetObjectItem(c, "name")->valuestring, "n1_merge") || !loaded) continue;
            parse_case(c, &gc);
            float *base = generate(ctx, &gc, g, 1);
            for (int mth = 1; base && mth < LMX_METHOD_COUNT; mth++) {
                parse_case(c, &gc);
                gc.p.compose.method = (lmx_method)mth;
                float *lat = generate(ctx, &gc, g, 0);
                CHECK(lat && !memcmp(lat, base, sizeof(float) * 4 * 8 * 8), "N=1 %s differs from merge",
                      lmx_method_name(gc.p.compose.method));
                lmx_free(lat);
            }
            lmx_free(base);
        }
    }
    for (int i = 0; i < 3; i++) lmx_lora_free(FILES[i].l);
    lmx_ctx_free(ctx);
    lmx_model_free(m);
    cJSON_Delete(cases);
    st_close(g);
    return lmx_test_finish();
}
