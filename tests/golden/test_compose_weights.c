/*
 * test_compose_weights.c - PAW and PTW weights (docs/methods.md §7) on the tiny
 * model's real tokenizer and text encoder against the Python reference
 * (reference/gen_compose.py: transformers CLIPTextModel, fp32, one text per
 * call) -> tests/fixtures/compose/golden_weights.safetensors.
 *
 * Per case: the ablated prompts / trigger strings (exact), the edge rules,
 * the pooled vectors e(.) (mean77, masked_mean, eos), the raw scores, the
 * floored a_i and the weights, within 1e-5; the D5 "generation" cases run
 * the text encoder with the composition's TE LoRAs at lambda (the LoRA
 * files of tests/fixtures/compose/ loaded with lmx_lora_load). Also the
 * public lmx_prompt_weights.
 */
#include <cjson/cJSON.h>
#include <math.h>
#include <string.h>

#include "compose/compose.h"
#include "harness.h"
#include "lora/lora.h"
#include "pipeline_impl.h"

#define GOLDEN "tests/fixtures/compose/golden_weights.safetensors"
#define MODEL "tests/fixtures/models/tiny-sd"
#define TOL 1e-5

static const char *IDS[3] = {"character_1", "clothing_1", "style_1"};

typedef struct fixture {
    lmx_model *m;
    lmx_ctx *ctx;
    lmx_lora *lora[3];
    int row[3];       /* scale-table row of each fixture LoRA (its place in ls) */
    lora_state ls;    /* the three LoRAs attached, LoRA i at row i */
} fixture;

static int lora_slot(const char *id) {
    for (int i = 0; i < 3; i++)
        if (!strcmp(id, IDS[i])) return i;
    return -1;
}

static lmx_lora_category cat_of(const char *s) {
    for (int c = 0; c < LMX_CAT_COUNT; c++)
        if (!strcmp(s, lmx_lora_category_name((lmx_lora_category)c))) return (lmx_lora_category)c;
    return LMX_CAT_OTHER;
}

static compose_pool pool_of(const char *s) {
    compose_pool p = COMPOSE_POOL_MEAN77;
    CHECK_OK(compose_pool_parse(s, &p));
    return p;
}

static double max_abs_diff(const double *a, const cJSON *arr, int n) {
    double m = 0;
    for (int i = 0; i < n; i++) {
        double d = fabs(a[i] - cJSON_GetArrayItem(arr, i)->valuedouble);
        if (!(d <= m)) m = d; /* NaN sticks */
    }
    return m;
}

static void run_case(fixture *fx, const cJSON *c, st_file *g, double *worst) {
    const char *name = cJSON_GetObjectItem(c, "name")->valuestring;
    const char *prompt = cJSON_GetObjectItem(c, "prompt")->valuestring;
    const char *te = cJSON_GetObjectItem(c, "te")->valuestring;
    const cJSON *jl = cJSON_GetObjectItem(c, "loras");
    int n = cJSON_GetArraySize(jl);
    lmx_weighting kind = strcmp(cJSON_GetObjectItem(c, "weighting")->valuestring, "paw") ? LMX_WEIGHTING_PTW
                                                                                          : LMX_WEIGHTING_PAW;
    compose_pool pool = pool_of(cJSON_GetObjectItem(c, "pool")->valuestring);
    lmx_lora_use u[8];
    const char *trig[8][8];
    int rows[8];
    float mult[8];
    unsigned char on[8];
    for (int i = 0; i < n && i < 8; i++) {
        const cJSON *l = cJSON_GetArrayItem(jl, i), *t = cJSON_GetObjectItem(l, "triggers");
        memset(&u[i], 0, sizeof u[i]);
        u[i].name = cJSON_GetObjectItem(l, "id")->valuestring;
        u[i].category = cat_of(cJSON_GetObjectItem(l, "category")->valuestring);
        u[i].n_triggers = cJSON_GetArraySize(t);
        for (int j = 0; j < u[i].n_triggers && j < 8; j++) trig[i][j] = cJSON_GetArrayItem(t, j)->valuestring;
        u[i].triggers = trig[i];
        u[i].unet_scale = u[i].te_scale = 1.0f;
        int s = lora_slot(u[i].name);
        rows[i] = s >= 0 ? fx->row[s] : -1;
        mult[i] = 0.8f;
        on[i] = !strcmp(te, "all") || (!strcmp(te, "first") && i == 0);
    }
    const int tegen = strcmp(te, "none") != 0;
    if (tegen)
        for (int i = 0; i < n; i++)
            if (on[i] && rows[i] < 0) {
                CHECK(0, "%s: LoRA %s is not loaded", name, u[i].name);
                return;
            }

    lmx_model *m = fx->m;
    const int H = clip_text_cfg(m->sd->text)->hidden;
    compose_clip cc = {.text = m->sd->text, .ops = fx->ctx->ops, .arena = &fx->ctx->arena, .n_loras = n,
                       .row_of = rows, .n_rows = 3, .te_mult = mult, .hooks = &fx->ls.hooks[LORA_TE]};
    compose_encoder enc = {.tok = m->tok, .hidden = H, .encode = compose_clip_encode, .user = &cc};
    compose_weights cw;
    lmx_status st = compose_prompt_weights(&enc, prompt, u, n, kind, tegen ? on : NULL, pool, &cw);
    CHECK(st == LMX_OK, "%s: %s", name, lmx_errmsg());
    if (st != LMX_OK) return;

    const cJSON *texts = cJSON_GetObjectItem(c, "texts"), *edges = cJSON_GetObjectItem(c, "edges");
    for (int i = 0; i < n; i++) {
        const char *want = cJSON_GetArrayItem(texts, i)->valuestring;
        CHECK(!strcmp(cw.text[i], want), "%s: text %d\n  got      \"%s\"\n  expected \"%s\"", name, i, cw.text[i], want);
        const char *e = cJSON_GetArrayItem(edges, i)->valuestring;
        int we = !strcmp(e, "no_triggers") ? COMPOSE_EDGE_NO_TRIGGERS : !strcmp(e, "short") ? COMPOSE_EDGE_SHORT : 0;
        CHECK(cw.edge[i] == we, "%s: edge %d is %d, expected %s", name, i, cw.edge[i], e);
    }
    double ds = max_abs_diff(cw.score, cJSON_GetObjectItem(c, "scores"), n);
    double da = max_abs_diff(cw.a, cJSON_GetObjectItem(c, "a"), n);
    double dw = max_abs_diff(cw.w, cJSON_GetObjectItem(c, "weights"), n);
    CHECK(ds <= TOL && da <= TOL && dw <= TOL, "%s: |score| %.3g |a| %.3g |w| %.3g (tolerance %g)", name, ds, da, dw,
          TOL);
    if (ds > *worst) *worst = ds;
    if (dw > *worst) *worst = dw;

    /* the pooled vectors themselves */
    char key[96];
    snprintf(key, sizeof key, "%s.e", name);
    int64_t ne = 0;
    float *ref = lmx_golden_f32(g, key, &ne);
    if (ref && ne == (int64_t)(n + 1) * H) {
        const int L = tok_max_length(m->tok);
        int64_t *ids = lmx_malloc(sizeof *ids * (size_t)L);
        float *h = lmx_alloc_aligned(sizeof *h * (size_t)L * H), *e = lmx_malloc(sizeof *e * (size_t)(n + 1) * H);
        for (int b = 0; b <= n && ids && h && e; b++) {
            int nr = 0;
            CHECK_OK(tok_encode_padded(m->tok, b ? cw.text[b - 1] : prompt, -1, ids, &nr));
            CHECK_OK(compose_clip_encode(&cc, ids, 1, L, tegen ? on : NULL, h));
            compose_pool_embedding(h, L, H, (nr < L - 2 ? nr : L - 2) + 2, pool, e + (int64_t)b * H);
        }
        snprintf(key, sizeof key, "%s e(.)", name);
        lmx_cmp_f32(key, e, ref, (int64_t)(n + 1) * H, TOL, 0);
        lmx_free(ids);
        lmx_free(h);
        lmx_free(e);
    } else {
        CHECK(0, "%s: golden e has %lld floats", name, (long long)ne);
    }
    lmx_free(ref);
    if (lmx_test_verbose()) {
        printf("ok   %-20s", name);
        for (int i = 0; i < n; i++) printf(" %.6f", cw.score[i]);
        printf("  |d| %.2g\n", ds > dw ? ds : dw);
    }
    compose_weights_free(&cw);
}

/* lmx_prompt_weights = the base-TE, mean77 weights of the golden. */
static void check_public(fixture *fx, const cJSON *cases) {
    const cJSON *c;
    int n_done = 0;
    cJSON_ArrayForEach(c, cases) {
        const char *name = cJSON_GetObjectItem(c, "name")->valuestring;
        if (strcmp(name, "paw_r3") && strcmp(name, "ptw_r5")) continue;
        const cJSON *jl = cJSON_GetObjectItem(c, "loras");
        int n = cJSON_GetArraySize(jl);
        lmx_lora_use u[5];
        const char *trig[5][8];
        for (int i = 0; i < n; i++) {
            const cJSON *t = cJSON_GetObjectItem(cJSON_GetArrayItem(jl, i), "triggers");
            memset(&u[i], 0, sizeof u[i]);
            u[i].n_triggers = cJSON_GetArraySize(t);
            for (int j = 0; j < u[i].n_triggers; j++) trig[i][j] = cJSON_GetArrayItem(t, j)->valuestring;
            u[i].triggers = trig[i];
        }
        double w[5], raw[5];
        lmx_weighting k = name[1] == 'a' ? LMX_WEIGHTING_PAW : LMX_WEIGHTING_PTW;
        CHECK_OK(lmx_prompt_weights(fx->ctx, cJSON_GetObjectItem(c, "prompt")->valuestring, u, n, k, w, raw));
        CHECK(max_abs_diff(w, cJSON_GetObjectItem(c, "weights"), n) <= TOL, "lmx_prompt_weights %s: weights", name);
        CHECK(max_abs_diff(raw, cJSON_GetObjectItem(c, "scores"), n) <= TOL, "lmx_prompt_weights %s: raw", name);
        n_done++;
    }
    CHECK(n_done == 2, "public API cases: %d", n_done);
    lmx_lora_use one = {0};
    double w[1];
    CHECK(lmx_prompt_weights(fx->ctx, "x", &one, 1, LMX_WEIGHTING_MANUAL, w, NULL) == LMX_ERR_ARG, "manual accepted");
    CHECK(lmx_prompt_weights(fx->ctx, "x", &one, 0, LMX_WEIGHTING_PAW, w, NULL) == LMX_ERR_ARG, "n = 0 accepted");
    CHECK_OK(lmx_prompt_weights(fx->ctx, "x", &one, 1, LMX_WEIGHTING_UNIFORM, w, NULL));
    CHECK(w[0] == 1.0, "uniform %g", w[0]);
}

int main(void) {
    st_file *g = lmx_golden_open(lmx_src_path(GOLDEN));
    if (!g) return lmx_test_finish();
    cJSON *cases = cJSON_Parse(st_meta_get(g, "cases"));
    CHECK(cases && cJSON_GetArraySize(cases) >= 19, "golden metadata 'cases'");
    fixture fx;
    memset(&fx, 0, sizeof fx);
    CHECK_OK(lmx_model_load(&fx.m, lmx_src_path(MODEL), NULL));
    if (fx.m) CHECK_OK(lmx_ctx_create(&fx.ctx, fx.m, NULL));
    for (int i = 0; i < 3 && fx.ctx; i++) {
        char path[128];
        snprintf(path, sizeof path, "tests/fixtures/compose/%s.safetensors", IDS[i]);
        fx.row[i] = -1;
        lmx_status st = lmx_lora_load(&fx.lora[i], fx.m, lmx_src_path(path));
        CHECK(st == LMX_OK, "lmx_lora_load %s: %s", path, lmx_errmsg());
        if (st == LMX_OK)
            CHECK(lmx_lora_n_unmatched(fx.lora[i]) == 0, "%s: %d unmatched keys", path, lmx_lora_n_unmatched(fx.lora[i]));
    }
    /* rows of the scale tables = position in the attached set */
    if (fx.m && fx.lora[0] && fx.lora[1] && fx.lora[2]) {
        const lmx_lora *set[3] = {fx.lora[0], fx.lora[1], fx.lora[2]};
        CHECK_OK(lora_attach(&fx.ls, fx.m->sd, set, 3));
        for (int i = 0; i < 3; i++) fx.row[i] = i;
    }
    double worst = 0;
    const cJSON *c;
    if (fx.ctx && cases) {
        cJSON_ArrayForEach(c, cases) run_case(&fx, c, g, &worst);
        check_public(&fx, cases);
    }
    printf("PAW/PTW vs transformers: worst |score or weight difference| %.3g over %d cases\n", worst,
           cases ? cJSON_GetArraySize(cases) : 0);
    lora_state_free(&fx.ls);
    for (int i = 0; i < 3; i++) lmx_lora_free(fx.lora[i]);
    lmx_ctx_free(fx.ctx);
    lmx_model_free(fx.m);
    cJSON_Delete(cases);
    st_close(g);
    return lmx_test_finish();
}
