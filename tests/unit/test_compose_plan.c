/*
 * test_compose_plan.c - the composition plan (src/compose/plan.c) and the
 * weight arithmetic (src/compose/weights.c) without a real text encoder:
 * docs/methods.md §10.2 vectors and the PAW/PTW edge rules, pooling and cosine,
 * compose_prompt_weights over the tiny model's tokenizer with a fake
 * encoder, the plan of every method (TE LoRAs, branches, per-step LoRAs,
 * scale tables, combine arithmetic), N = 1 and N = 0, and every argument
 * error of issue 5.
 */
#include <cjson/cJSON.h>
#include <math.h>
#include <string.h>

#include "compose/compose.h"
#include "harness.h"

static const char *C1[] = {"iu1", "long straight black hair", "hazel eyes", "diamond stud earrings"};
static const char *CL1[] = {"mahalaiuniform", "white shirt short sleeves", "black pencil skirt"};
static const char *S1[] = {"film overlay", "film grain"};

static lmx_lora_use use(const char *name, lmx_lora_category cat, const char *const *trig, int n) {
    lmx_lora_use u;
    memset(&u, 0, sizeof u);
    u.unet_scale = 1.0f;
    u.te_scale = 1.0f;
    u.name = name;
    u.category = cat;
    u.triggers = trig;
    u.n_triggers = n;
    return u;
}

static void three(lmx_lora_use *L) {
    L[0] = use("character_1", LMX_CAT_CHARACTER, C1, 4);
    L[1] = use("clothing_1", LMX_CAT_CLOTHING, CL1, 3);
    L[2] = use("style_1", LMX_CAT_STYLE, S1, 2);
}

/* ---- arithmetic ------------------------------------------------------------ */

static void test_arith(void) {
    double a[3], w[3];
    compose_paw_weights((const double[]){0.12, 0.03, 0.08}, NULL, 3, a, w);
    CHECK(a[0] == 0.12 && a[1] == 0.05 && a[2] == 0.08, "PAW floor: %g %g %g", a[0], a[1], a[2]);
    CHECK(fabs(w[0] - 0.48) < 1e-15 && fabs(w[1] - 0.2) < 1e-15 && fabs(w[2] - 0.32) < 1e-15, "PAW w: %.17g %.17g %.17g",
          w[0], w[1], w[2]);
    compose_ptw_weights((const double[]){0.95, 0.90, 0.85}, NULL, 3, a, w);
    CHECK(fabs(w[0] - 0.351852) < 5e-7 && fabs(w[1] - 0.333333) < 5e-7 && fabs(w[2] - 0.314815) < 5e-7,
          "PTW w: %.7f %.7f %.7f", w[0], w[1], w[2]);
    CHECK(w[0] == 0.95 / (0.95 + 0.90 + 0.85), "PTW normalisation is a_i / sequential sum");
    /* the floor acts before normalisation: smallest weight 0.05 / Σa, not 0.05 */
    compose_paw_weights((const double[]){0.5, 0.001}, NULL, 2, a, w);
    CHECK(w[1] == 0.05 / 0.55, "floored weight %.17g", w[1]);
    /* edges */
    int e[3] = {COMPOSE_EDGE_NONE, COMPOSE_EDGE_NO_TRIGGERS, COMPOSE_EDGE_SHORT};
    compose_paw_weights((const double[]){0.01, 123, 456}, e, 3, a, w);
    CHECK(a[0] == 0.05 && a[1] == 0.1 && a[2] == 2.0, "PAW edges: %g %g %g", a[0], a[1], a[2]);
    CHECK(fabs(w[0] + w[1] + w[2] - 1) < 1e-15, "PAW edges sum");
    int e2[2] = {COMPOSE_EDGE_NONE, COMPOSE_EDGE_NO_TRIGGERS};
    compose_ptw_weights((const double[]){0.6, 0.9}, e2, 2, a, w);
    CHECK(a[1] == 0 && w[0] == 1 && w[1] == 0, "PTW no triggers: %g %g", w[0], w[1]);
    /* Σa <= 0: the raw values are kept (no clamp of negative cosines) */
    compose_ptw_weights((const double[]){0.2, -0.5}, NULL, 2, a, w);
    CHECK(w[0] == 0.2 && w[1] == -0.5, "PTW negative sum keeps raw: %g %g", w[0], w[1]);
    compose_ptw_weights((const double[]){0, 0}, e2, 2, a, w);
    CHECK(w[0] == 0 && w[1] == 0, "PTW zero sum");

    /* cosine, as torch forms it */
    float x[4] = {1, 2, 3, 4}, y[4] = {2, 4, 6, 8}, z[4] = {0, 0, 0, 0}, o[4] = {-2, 1, 0, 0};
    CHECK(fabs(compose_cosine(x, y, 4) - 1) < 3e-7, "cos parallel %.9g", compose_cosine(x, y, 4));
    CHECK(compose_cosine(x, o, 4) == 0, "cos orthogonal %.9g", compose_cosine(x, o, 4));
    CHECK(compose_cosine(x, z, 4) == 0, "cos with zero vector %.9g", compose_cosine(x, z, 4));
    CHECK(compose_cosine(x, x, 4) == (double)(float)compose_cosine(x, x, 4), "cos is an fp32 value");

    /* pooling: h[L=4][2] */
    float h[8] = {1, 10, 2, 20, 3, 30, 100, 1000}, p[2];
    compose_pool_embedding(h, 4, 2, 2, COMPOSE_POOL_MEAN77, p);
    CHECK(p[0] == 106.0f / 4 && p[1] == 1060.0f / 4, "mean over all positions: %g %g", p[0], p[1]);
    compose_pool_embedding(h, 4, 2, 3, COMPOSE_POOL_MASKED_MEAN, p);
    CHECK(p[0] == 2 && p[1] == 20, "masked mean: %g %g", p[0], p[1]);
    compose_pool_embedding(h, 4, 2, 3, COMPOSE_POOL_EOS, p);
    CHECK(p[0] == 3 && p[1] == 30, "eos: %g %g", p[0], p[1]);
    compose_pool p_;
    CHECK(compose_pool_parse("masked_mean", &p_) == LMX_OK && p_ == COMPOSE_POOL_MASKED_MEAN, "pool parse");
    CHECK(compose_pool_parse("max", &p_) == LMX_ERR_ARG, "pool parse bad");
    CHECK(!strcmp(compose_pool_name(COMPOSE_POOL_EOS), "eos"), "pool name");

    /* manual weights */
    double *v = NULL;
    int n = 0;
    CHECK_OK(compose_parse_manual("0.5, 0.3,0.2", 3, &v, &n));
    CHECK(n == 3 && v && v[0] == 0.5 && v[1] == 0.3 && v[2] == 0.2, "manual parse");
    lmx_free(v);
    CHECK(compose_parse_manual("0.5,0.5", 3, &v, &n) == LMX_ERR_ARG && !v, "wrong count accepted");
    CHECK(strstr(lmx_errmsg(), "2 weights for 3 LoRAs"), "count message: %s", lmx_errmsg());
    CHECK(compose_parse_manual("0.5,,0.2", 0, &v, &n) == LMX_ERR_ARG, "empty item");
    CHECK(compose_parse_manual("0.5,-1", 0, &v, &n) == LMX_ERR_ARG, "negative");
    CHECK(strstr(lmx_errmsg(), "weight 2 '-1'"), "negative message: %s", lmx_errmsg());
    CHECK(compose_parse_manual("nan", 0, &v, &n) == LMX_ERR_ARG, "nan");
    CHECK(compose_parse_manual("inf,1", 0, &v, &n) == LMX_ERR_ARG, "inf");
    CHECK(compose_parse_manual("1x", 0, &v, &n) == LMX_ERR_ARG, "junk");
    CHECK(compose_parse_manual("", 0, &v, &n) == LMX_ERR_ARG, "empty");
    CHECK(compose_parse_manual("1,", 0, &v, &n) == LMX_ERR_ARG, "trailing comma");
}

/* ---- compose_prompt_weights with a fake encoder -------------------------------- */

typedef struct fake {
    int calls, last_B, hidden;
    unsigned char te_seen[8];
    int te_null;
    int fail;
} fake;

/* h[b][p][j] = a deterministic function of the token and position. */
static lmx_status fake_encode(void *user, const int64_t *ids, int B, int L, const unsigned char *te_on, float *out) {
    fake *f = user;
    f->calls++;
    f->last_B = B;
    f->te_null = te_on == NULL;
    if (te_on) memcpy(f->te_seen, te_on, 3);
    if (f->fail) return lmx_err(LMX_ERR_BACKEND, "fake encoder failed");
    for (int b = 0; b < B; b++)
        for (int p = 0; p < L; p++)
            for (int j = 0; j < f->hidden; j++) {
                uint64_t x = (uint64_t)ids[(int64_t)b * L + p] * 2654435761u + (uint64_t)j * 40503u + (uint64_t)p;
                out[((int64_t)b * L + p) * f->hidden + j] = (float)((x % 2001) / 1000.0 - 1.0);
            }
    return LMX_OK;
}

/* The expected weights, assembled from the pieces. */
static void expected(const tok_tokenizer *tok, int hidden, const char *P, const lmx_lora_use *L, int n, int paw,
                     compose_pool pool, double *score) {
    fake f = {.hidden = hidden};
    int64_t ids[77];
    float h[77 * 8], e0[8], ei[8];
    int nr;
    tok_encode_padded(tok, P, -1, ids, &nr);
    fake_encode(&f, ids, 1, 77, NULL, h);
    compose_pool_embedding(h, 77, hidden, (nr < 75 ? nr : 75) + 2, pool, e0);
    for (int i = 0; i < n; i++) {
        char *s = NULL;
        if (paw) compose_ablate(P, L[i].triggers, L[i].n_triggers, &s);
        else compose_trigger_string(L[i].triggers, L[i].n_triggers, &s);
        tok_encode_padded(tok, s, -1, ids, &nr);
        fake_encode(&f, ids, 1, 77, NULL, h);
        compose_pool_embedding(h, 77, hidden, (nr < 75 ? nr : 75) + 2, pool, ei);
        double c = compose_cosine(e0, ei, hidden);
        score[i] = paw ? 1 - c : c;
        lmx_free(s);
    }
}

static void test_prompt_weights(void) {
    tok_tokenizer *tok = NULL;
    CHECK_OK(tok_load_dir(&tok, lmx_src_path("tests/fixtures/models/tiny-sd/tokenizer")));
    if (!tok) return;
    fake f = {.hidden = 8};
    compose_encoder enc = {.tok = tok, .hidden = 8, .encode = fake_encode, .user = &f};
    lmx_lora_use L[3];
    three(L);
    const char *P = "RAW photo, iu1, long straight black hair, hazel eyes, diamond stud earrings, mahalaiuniform, "
                    "white shirt short sleeves, black pencil skirt, film overlay, film grain";
    for (int paw = 0; paw < 2; paw++)
        for (int pool = 0; pool < COMPOSE_POOL_COUNT; pool++) {
            compose_weights cw;
            double sc[3];
            f.calls = 0;
            CHECK_OK(compose_prompt_weights(&enc, P, L, 3, paw ? LMX_WEIGHTING_PAW : LMX_WEIGHTING_PTW, NULL,
                                            (compose_pool)pool, &cw));
            CHECK(f.calls == 1 && f.last_B == 4 && f.te_null, "one encoder call of 1 + N: %d calls, B %d", f.calls,
                  f.last_B);
            expected(tok, 8, P, L, 3, paw, (compose_pool)pool, sc);
            for (int i = 0; i < 3; i++)
                CHECK(cw.score[i] == sc[i], "%s/%s score %d: %.17g vs %.17g", paw ? "paw" : "ptw",
                      compose_pool_name((compose_pool)pool), i, cw.score[i], sc[i]);
            CHECK(cw.kind == (paw ? LMX_WEIGHTING_PAW : LMX_WEIGHTING_PTW) && cw.n == 3, "kind");
            CHECK(cw.text[2] && !strcmp(cw.text[2], paw ? "RAW photo, iu1, long straight black hair, hazel eyes, "
                                                          "diamond stud earrings, mahalaiuniform, white shirt short "
                                                          "sleeves, black pencil skirt"
                                                        : "film overlay, film grain"),
                  "text: %s", cw.text[2]);
            compose_weights_free(&cw);
        }
    /* edges: no triggers, short ablated prompt; te_on is passed through */
    static const char *ONE[] = {"iu1"};
    lmx_lora_use E[3] = {use("character_1", LMX_CAT_CHARACTER, ONE, 1), use("object_9", LMX_CAT_OBJECT, NULL, 0),
                         use("style_1", LMX_CAT_STYLE, S1, 2)};
    compose_weights cw;
    unsigned char te[3] = {1, 0, 1};
    CHECK_OK(compose_prompt_weights(&enc, "iu1, film grain", E, 3, LMX_WEIGHTING_PAW, te, COMPOSE_POOL_MEAN77, &cw));
    CHECK(!f.te_null && f.te_seen[0] == 1 && f.te_seen[1] == 0 && f.te_seen[2] == 1, "te_on passed through");
    CHECK(cw.edge[1] == COMPOSE_EDGE_NO_TRIGGERS && cw.a[1] == 0.1, "PAW no triggers: %g", cw.a[1]);
    CHECK(cw.edge[0] == COMPOSE_EDGE_NONE && !strcmp(cw.text[0], "film grain"), "ablated '%s'", cw.text[0]);
    CHECK(cw.edge[2] == COMPOSE_EDGE_SHORT && cw.a[2] == 2.0 && !strcmp(cw.text[2], "iu1"), "short '%s' %g",
          cw.text[2], cw.a[2]);
    compose_weights_free(&cw);
    CHECK_OK(compose_prompt_weights(&enc, "iu1, film grain", E, 3, LMX_WEIGHTING_PTW, NULL, COMPOSE_POOL_MEAN77, &cw));
    CHECK(cw.edge[1] == COMPOSE_EDGE_NO_TRIGGERS && cw.a[1] == 0 && cw.w[1] == 0, "PTW no triggers");
    compose_weights_free(&cw);
    /* empty prompt: every ablation is "" (short) */
    CHECK_OK(compose_prompt_weights(&enc, "", L, 3, LMX_WEIGHTING_PAW, NULL, COMPOSE_POOL_MEAN77, &cw));
    CHECK(cw.edge[0] == COMPOSE_EDGE_SHORT && fabs(cw.w[0] - 1.0 / 3) < 1e-15, "empty prompt");
    compose_weights_free(&cw);
    /* a prompt over 75 tokens: truncated like the generation (BOS + 75 + EOS) */
    char longp[2000] = "RAW photo";
    for (int i = 0; i < 40; i++) strcat(longp, ", film grain");
    strcat(longp, ", iu1");
    double sc[3];
    CHECK_OK(compose_prompt_weights(&enc, longp, L, 3, LMX_WEIGHTING_PAW, NULL, COMPOSE_POOL_MEAN77, &cw));
    expected(tok, 8, longp, L, 3, 1, COMPOSE_POOL_MEAN77, sc);
    CHECK(cw.score[0] == sc[0] && cw.score[2] == sc[2], "long prompt scores");
    /* iu1 is past the 75 tokens: removing it changes nothing the encoder sees */
    CHECK(cw.score[0] == 0 && cw.a[0] == 0.05, "truncated trigger: score %g", cw.score[0]);
    compose_weights_free(&cw);
    /* errors */
    CHECK(compose_prompt_weights(&enc, P, L, 3, LMX_WEIGHTING_UNIFORM, NULL, 0, &cw) == LMX_ERR_ARG, "uniform");
    CHECK(compose_prompt_weights(&enc, NULL, L, 3, LMX_WEIGHTING_PAW, NULL, 0, &cw) == LMX_ERR_ARG, "NULL prompt");
    CHECK(compose_prompt_weights(&enc, P, L, 0, LMX_WEIGHTING_PAW, NULL, 0, &cw) == LMX_ERR_ARG, "n 0");
    CHECK(compose_prompt_weights(NULL, P, L, 3, LMX_WEIGHTING_PAW, NULL, 0, &cw) == LMX_ERR_ARG, "no encoder");
    CHECK(compose_prompt_weights(&enc, "caf\xc3", L, 3, LMX_WEIGHTING_PAW, NULL, 0, &cw) == LMX_ERR_ARG, "bad UTF-8");
    f.fail = 1;
    CHECK(compose_prompt_weights(&enc, P, L, 3, LMX_WEIGHTING_PAW, NULL, 0, &cw) == LMX_ERR_BACKEND, "encoder error");
    CHECK(strstr(lmx_errmsg(), "fake encoder failed"), "encoder message: %s", lmx_errmsg());
    CHECK(cw.n == 0 && !cw.w, "nothing left on error");
    f.fail = 0;

    /* the plan asks the encoder with the generation's TE set when weights_te_generation (D5) */
    lmx_compose c = lmx_compose_default();
    c.method = LMX_METHOD_W_COMPOSITE;
    c.weights_te_generation = 1;
    compose_plan pl;
    CHECK_OK(compose_plan_build(&pl, &c, L, 3, P, 10, &enc, NULL));
    CHECK(!f.te_null && f.te_seen[0] && f.te_seen[1] && f.te_seen[2], "W-Composite weights with all TE LoRAs");
    compose_plan_free(&pl);
    c.method = LMX_METHOD_W_SWITCH;
    CHECK_OK(compose_plan_build(&pl, &c, L, 3, P, 10, &enc, NULL));
    CHECK(!f.te_null && f.te_seen[0] && !f.te_seen[1] && !f.te_seen[2], "W-Switch weights with LoRA 0 in the TE");
    CHECK(pl.weights.kind == LMX_WEIGHTING_PAW, "W-Switch default weighting is PAW");
    compose_plan_free(&pl);
    c.weights_te_generation = 0;
    CHECK_OK(compose_plan_build(&pl, &c, L, 3, P, 10, &enc, NULL));
    CHECK(f.te_null, "default: base text encoder");
    compose_plan_free(&pl);
    /* W-Composite with PTW and no LoRA with triggers: weights all 0 -> error */
    lmx_lora_use Z[2] = {use("character_1", LMX_CAT_CHARACTER, NULL, 0), use("style_1", LMX_CAT_STYLE, NULL, 0)};
    c.method = LMX_METHOD_W_COMPOSITE;
    CHECK(compose_plan_build(&pl, &c, Z, 2, P, 10, &enc, NULL) == LMX_ERR_ARG, "PTW all zero accepted");
    CHECK(strstr(lmx_errmsg(), "trigger"), "message: %s", lmx_errmsg());
    CHECK(pl.n_loras == 0 && !pl.te_on, "plan cleared on error");
    /* ... while W-Switch with PAW and no triggers is defined (a_i = 0.1 each) */
    c.method = LMX_METHOD_W_SWITCH;
    CHECK_OK(compose_plan_build(&pl, &c, Z, 2, P, 10, &enc, NULL));
    CHECK(pl.blocks && pl.blocks[0] == 5 && pl.blocks[1] == 5, "PAW no triggers: uniform blocks");
    compose_plan_free(&pl);
    tok_free(tok);
}

/* ---- plans ------------------------------------------------------------------- */

static void sched_str(const compose_plan *p, char *s) {
    if (p->active) compose_sched_string(p->active, p->n_steps, s);
    else strcpy(s, "-");
}

static void test_plans(void) {
    lmx_lora_use L[3];
    three(L);
    lmx_compose c = lmx_compose_default();
    compose_plan p;
    char s[128];
    CHECK(c.method == LMX_METHOD_MERGE && c.switch_steps == 5 && c.tail_steps == 5, "defaults");

    /* merge */
    CHECK_OK(compose_plan_build(&p, &c, L, 3, "x", 10, NULL, NULL));
    CHECK(p.n_branches == 1 && !p.active && p.te_on[0] && p.te_on[1] && p.te_on[2], "merge plan");
    CHECK(compose_plan_unet_on(&p, 3, 0, 0) && compose_plan_unet_on(&p, 3, 0, 2), "merge: all on");
    CHECK(p.counts[0] == 10 && p.counts[2] == 10, "merge counts");
    compose_plan_free(&p);

    /* switch, clean and reference timing, tau 2 */
    c.method = LMX_METHOD_SWITCH;
    c.switch_steps = 2;
    CHECK_OK(compose_plan_build(&p, &c, L, 3, "x", 10, NULL, NULL));
    sched_str(&p, s);
    CHECK(!strcmp(s, "0011220011"), "switch clean: %s", s);
    CHECK(p.te_on[0] && !p.te_on[1] && !p.te_on[2], "switch: TE LoRA 0 only");
    CHECK(compose_plan_unet_on(&p, 2, 0, 1) && !compose_plan_unet_on(&p, 2, 0, 0), "switch on");
    CHECK(p.counts[0] == 4 && p.counts[1] == 4 && p.counts[2] == 2, "switch counts");
    compose_plan_free(&p);
    c.switch_timing_reference = 1;
    CHECK_OK(compose_plan_build(&p, &c, L, 3, "x", 10, NULL, NULL));
    sched_str(&p, s);
    CHECK(!strcmp(s, "0001122001"), "switch reference: %s", s);
    compose_plan_free(&p);
    c.switch_timing_reference = 0;

    /* composite */
    c.method = LMX_METHOD_COMPOSITE;
    CHECK_OK(compose_plan_build(&p, &c, L, 3, "x", 10, NULL, NULL));
    CHECK(p.n_branches == 3 && p.combine == COMPOSE_COMBINE_MEAN && !p.active, "composite plan");
    CHECK(p.te_on[0] && p.te_on[1] && p.te_on[2], "composite: all TE LoRAs");
    for (int b = 0; b < 3; b++)
        for (int i = 0; i < 3; i++) CHECK(compose_plan_unet_on(&p, 4, b, i) == (b == i), "composite b%d i%d", b, i);
    compose_plan_free(&p);

    /* w-switch, manual weights (the golden's n3_wswitch_manual) */
    double man[3] = {0.6, 0.15, 0.25};
    c.method = LMX_METHOD_W_SWITCH;
    c.weighting = LMX_WEIGHTING_MANUAL;
    c.manual_weights = man;
    c.switch_steps = 4;
    c.tail_steps = 3;
    CHECK_OK(compose_plan_build(&p, &c, L, 3, "x", 12, NULL, NULL));
    sched_str(&p, s);
    CHECK(!strcmp(s, "000012200000"), "w-switch manual: %s", s);
    CHECK(p.blocks[0] == 4 && p.blocks[1] == 1 && p.blocks[2] == 2, "blocks %d %d %d", p.blocks[0], p.blocks[1],
          p.blocks[2]);
    CHECK(p.tail_lora == 0 && p.te_on[0] && !p.te_on[1], "w-switch tail/TE");
    CHECK(fabs(p.weights.w[0] - 0.6) < 1e-15 && p.weights.kind == LMX_WEIGHTING_MANUAL, "manual weights kept");
    lmx_sb d = LMX_SB_INIT;
    compose_plan_describe(&p, &d);
    CHECK(!strcmp(lmx_sb_str(&d), "w-switch, tau 4, tail 3, manual 0.600/0.150/0.250, blocks 4/1/2"), "describe: %s",
          lmx_sb_str(&d));
    lmx_sb_free(&d);
    cJSON *j = cJSON_CreateObject();
    CHECK(compose_plan_json(&p, j), "json");
    char *js = cJSON_PrintUnformatted(j);
    CHECK(js && strstr(js, "\"schedule\":\"000012200000\"") && strstr(js, "\"blocks\":[4,1,2]") &&
              strstr(js, "\"te_loras\":[1,0,0]") && strstr(js, "\"timing\":\"clean\""),
          "json: %s", js);
    cJSON_free(js);
    cJSON_Delete(j);
    compose_plan_free(&p);
    /* reference timing with the character elsewhere: tail on LoRA 1, TE still LoRA 0 (§8.6) */
    lmx_lora_use R[3] = {L[1], L[0], L[2]};
    c.switch_timing_reference = 1;
    CHECK_OK(compose_plan_build(&p, &c, R, 3, "x", 12, NULL, NULL));
    sched_str(&p, s);
    CHECK(!strcmp(s, "000001220011"), "w-switch reference, character = LoRA 1: %s", s);
    CHECK(p.tail_lora == 1 && p.te_on[0] && !p.te_on[1], "tail LoRA 1, TE LoRA 0");
    compose_plan_free(&p);
    c.switch_timing_reference = 0;
    /* the name rule of the reference: category OTHER and an id starting "character" */
    R[1].category = LMX_CAT_OTHER;
    CHECK_OK(compose_plan_build(&p, &c, R, 3, "x", 12, NULL, NULL));
    CHECK(p.tail_lora == 1, "character by name: %d", p.tail_lora);
    compose_plan_free(&p);
    /* no character: a clear error, unless the tail is 0 */
    R[1].name = "person";
    CHECK(compose_plan_build(&p, &c, R, 3, "x", 12, NULL, NULL) == LMX_ERR_ARG, "no character accepted");
    CHECK(strstr(lmx_errmsg(), "character"), "message: %s", lmx_errmsg());
    c.tail_steps = 0;
    CHECK_OK(compose_plan_build(&p, &c, R, 3, "x", 12, NULL, NULL));
    CHECK(p.tail_lora == -1, "tail 0: no tail LoRA");
    compose_plan_free(&p);
    c.tail_steps = 3;
    /* half-up rounding (D2) */
    double tie[3] = {0.4, 0.2, 0.4};
    c.manual_weights = tie;
    c.switch_steps = 5;
    c.round_half_up = 1;
    CHECK_OK(compose_plan_build(&p, &c, L, 3, "x", 20, NULL, NULL));
    CHECK(p.blocks[1] == 3, "half up: %d", p.blocks[1]);
    compose_plan_free(&p);
    c.round_half_up = 0;
    CHECK_OK(compose_plan_build(&p, &c, L, 3, "x", 20, NULL, NULL));
    CHECK(p.blocks[1] == 2, "half even: %d", p.blocks[1]);
    compose_plan_free(&p);

    /* w-composite, manual and uniform */
    c.method = LMX_METHOD_W_COMPOSITE;
    c.manual_weights = man;
    CHECK_OK(compose_plan_build(&p, &c, L, 3, "x", 10, NULL, NULL));
    CHECK(p.n_branches == 3 && p.combine == COMPOSE_COMBINE_WEIGHTED && p.branch_w, "w-composite plan");
    CHECK(p.branch_w[0] == (float)(0.6 / (0.6 + 0.15 + 0.25)) && p.branch_wsum == (float)(p.weights.w[0] +
                                                                                          p.weights.w[1] +
                                                                                          p.weights.w[2]),
          "branch weights");
    CHECK(p.te_on[0] && p.te_on[1] && p.te_on[2], "w-composite: all TE LoRAs");
    compose_plan_free(&p);
    c.weighting = LMX_WEIGHTING_UNIFORM;
    CHECK_OK(compose_plan_build(&p, &c, L, 3, "x", 10, NULL, NULL));
    CHECK(p.weights.w[1] == 1.0 / 3, "uniform %.17g", p.weights.w[1]);
    compose_plan_free(&p);

    /* te_mode overrides (D6) */
    compose_opts o = {.te_mode = COMPOSE_TE_NONE};
    c.method = LMX_METHOD_MERGE;
    c.weighting = LMX_WEIGHTING_DEFAULT;
    CHECK_OK(compose_plan_build(&p, &c, L, 3, "x", 10, NULL, &o));
    CHECK(!p.te_on[0] && !p.te_on[1] && !p.te_on[2], "te none");
    compose_plan_free(&p);
    o.te_mode = COMPOSE_TE_FIRST;
    CHECK_OK(compose_plan_build(&p, &c, L, 3, "x", 10, NULL, &o));
    CHECK(p.te_on[0] && !p.te_on[1], "te first");
    compose_plan_free(&p);
    o.te_mode = COMPOSE_TE_ALL;
    c.method = LMX_METHOD_SWITCH;
    CHECK_OK(compose_plan_build(&p, &c, L, 3, "x", 10, NULL, &o));
    CHECK(p.te_on[0] && p.te_on[1] && p.te_on[2], "te all");
    compose_plan_free(&p);
}

/* N = 1: every method is the one LoRA at every step; N = 0: no LoRA. */
static void test_small_n(void) {
    lmx_lora_use L[1] = {use("style_1", LMX_CAT_STYLE, NULL, 0)}; /* no character, no triggers */
    for (int m = 0; m < LMX_METHOD_COUNT; m++) {
        lmx_compose c = lmx_compose_default();
        c.method = (lmx_method)m;
        compose_plan p;
        CHECK_OK(compose_plan_build(&p, &c, L, 1, "x", 7, NULL, NULL));
        CHECK(p.effective == LMX_METHOD_MERGE && p.n_branches == 1 && !p.active && p.te_on[0] && p.counts[0] == 7 &&
                  p.weights.n == 0 && p.combine == COMPOSE_COMBINE_CFG,
              "N=1 %s is not the single LoRA", lmx_method_name(c.method));
        for (int k = 0; k < 7; k++) CHECK(compose_plan_unet_on(&p, k, 0, 0), "N=1 step %d", k);
        compose_plan_free(&p);
        CHECK_OK(compose_plan_build(&p, &c, NULL, 0, "x", 7, NULL, NULL));
        CHECK(p.n_loras == 0 && p.n_branches == 1 && !compose_plan_unet_on(&p, 0, 0, 0), "N=0 %s", lmx_method_name(c.method));
        float t[2] = {9, 9};
        compose_plan_unet_scales(&p, 0, 0.8f, NULL, NULL, 1, 2, t);
        CHECK(t[0] == 0 && t[1] == 0, "N=0 scales");
        compose_plan_free(&p);
    }
}

static void test_errors(void) {
    lmx_lora_use L[3];
    three(L);
    compose_plan p;
    lmx_compose c = lmx_compose_default();
    double nan = NAN;
#define BAD(what, ...)                                                                               \
    do {                                                                                             \
        lmx_status st_ = compose_plan_build(&p, &c, L, 3, "x", 10, NULL, NULL);                     \
        CHECK(st_ == LMX_ERR_ARG, "%s accepted (%s)", what, lmx_status_name(st_));                   \
        if (st_ == LMX_OK) compose_plan_free(&p);                                                  \
        CHECK(strstr(lmx_errmsg(), __VA_ARGS__), "%s: message '%s'", what, lmx_errmsg());            \
        c = lmx_compose_default();                                                                   \
    } while (0)
    c.method = (lmx_method)99;
    BAD("unknown method", "method");
    c.weighting = (lmx_weighting)99;
    BAD("unknown weighting", "weighting");
    c.weighting = LMX_WEIGHTING_PAW;
    BAD("PAW for merge", "only w-switch and w-composite");
    c.method = LMX_METHOD_COMPOSITE;
    c.weighting = LMX_WEIGHTING_MANUAL;
    BAD("manual for composite", "only w-switch and w-composite");
    c.method = LMX_METHOD_W_SWITCH;
    c.weighting = LMX_WEIGHTING_MANUAL;
    BAD("manual without weights", "no weights");
    double neg[3] = {0.5, -0.1, 0.3}, nn[3] = {0.5, nan, 0.3}, zero[3] = {0, 0, 0};
    c.method = LMX_METHOD_W_COMPOSITE;
    c.weighting = LMX_WEIGHTING_MANUAL;
    c.manual_weights = neg;
    BAD("negative manual weight", "weight 2 is -0.1");
    c.method = LMX_METHOD_W_SWITCH;
    c.weighting = LMX_WEIGHTING_MANUAL;
    c.manual_weights = nn;
    BAD("NaN manual weight", "weight 2 is nan");
    c.method = LMX_METHOD_W_SWITCH;
    c.weighting = LMX_WEIGHTING_MANUAL;
    c.manual_weights = zero;
    BAD("all-zero manual weights", "every weight is 0");
    c.method = LMX_METHOD_SWITCH;
    c.switch_steps = 0;
    BAD("tau 0", "--switch-steps");
    c.method = LMX_METHOD_W_SWITCH;
    c.switch_steps = -3;
    BAD("tau < 0", "--switch-steps");
    c.method = LMX_METHOD_W_SWITCH;
    c.tail_steps = 11;
    BAD("tail > steps", "--tail-steps");
    c.method = LMX_METHOD_W_SWITCH;
    c.tail_steps = -1;
    BAD("tail < 0", "--tail-steps");
    L[1].n_triggers = 2;
    L[1].triggers = NULL;
    BAD("triggers count without a list", "trigger");
    three(L);
#undef BAD
    /* names */
    lmx_method mm;
    lmx_weighting ww;
    CHECK(lmx_method_parse("blend", &mm) == LMX_ERR_ARG && strstr(lmx_errmsg(), "unknown method 'blend'"),
          "unknown method name: %s", lmx_errmsg());
    CHECK(lmx_method_parse("w_switch", &mm) == LMX_OK && mm == LMX_METHOD_W_SWITCH, "w_switch");
    CHECK(lmx_method_parse("w-composite", &mm) == LMX_OK && mm == LMX_METHOD_W_COMPOSITE, "w-composite");
    CHECK(lmx_weighting_parse("ptw", &ww) == LMX_OK && ww == LMX_WEIGHTING_PTW, "ptw");
    CHECK(lmx_weighting_parse("manual", &ww) == LMX_ERR_ARG, "bare 'manual' parsed");
    CHECK(!strcmp(lmx_method_name((lmx_method)42), "?") && !strcmp(lmx_weighting_name(LMX_WEIGHTING_UNIFORM), "uniform"),
          "names");
    /* tau and tail do not matter to merge/composite */
    c.switch_steps = 0;
    c.tail_steps = 99;
    c.method = LMX_METHOD_COMPOSITE;
    CHECK_OK(compose_plan_build(&p, &c, L, 3, "x", 10, NULL, NULL));
    compose_plan_free(&p);
    c = lmx_compose_default();
    CHECK(compose_plan_build(&p, &c, L, 65, "x", 10, NULL, NULL) == LMX_ERR_ARG, "65 LoRAs");
    CHECK(compose_plan_build(&p, &c, L, 3, "x", 0, NULL, NULL) == LMX_ERR_ARG, "0 steps");
    c.method = LMX_METHOD_W_SWITCH;
    CHECK(compose_plan_build(&p, &c, L, 3, "x", 10, NULL, NULL) == LMX_ERR_INTERNAL, "PAW without an encoder");
    CHECK(compose_plan_build(&p, NULL, L, 3, "x", 10, NULL, NULL) == LMX_OK, "NULL compose = defaults");
    compose_plan_free(&p);
    compose_plan_free(NULL);
}

/* ---- scale tables and the combine arithmetic ----------------------------------- */

static void test_tables(void) {
    lmx_lora_use L[3];
    three(L);
    L[1].unet_scale = 0.5f;
    L[1].te_scale = 0.25f;
    int row_of[3] = {4, 0, 2};
    lmx_compose c = lmx_compose_default();
    compose_plan p;
    float te[5], us[5 * 6];
    c.method = LMX_METHOD_COMPOSITE;
    CHECK_OK(compose_plan_build(&p, &c, L, 3, "x", 4, NULL, NULL));
    compose_plan_te_scales(&p, 0.8f, L, row_of, 5, te);
    CHECK(te[4] == 0.8f && te[0] == 0.8f * 0.25f && te[2] == 0.8f && te[1] == 0 && te[3] == 0, "te scales");
    compose_plan_unet_scales(&p, 1, 0.8f, L, row_of, 5, 2, us);
    /* 3 branches x 2 samples (CFG): row 4 (LoRA 0) on samples 0-1, row 0 (LoRA 1) on 2-3, row 2 on 4-5 */
    static const float want[5][6] = {{0, 0, 0.4f, 0.4f, 0, 0}, {0}, {0, 0, 0, 0, 0.8f, 0.8f}, {0}, {0.8f, 0.8f, 0, 0, 0, 0}};
    CHECK(!memcmp(us, want, sizeof us), "composite unet scales");
    compose_plan_free(&p);
    c.method = LMX_METHOD_SWITCH;
    c.switch_steps = 1;
    CHECK_OK(compose_plan_build(&p, &c, L, 3, "x", 4, NULL, NULL));
    compose_plan_te_scales(&p, 0.8f, L, NULL, 3, te);
    CHECK(te[0] == 0.8f && te[1] == 0 && te[2] == 0, "switch te scales");
    compose_plan_unet_scales(&p, 1, 0.8f, L, NULL, 3, 4, us);
    CHECK(us[0] == 0 && us[4] == 0.4f && us[7] == 0.4f && us[8] == 0, "switch step 1: LoRA 1 on every sample");
    compose_plan_free(&p);
}

static void test_combine(void) {
    lmx_lora_use L[3];
    three(L);
    const int n = 2;          /* images */
    const int64_t per = 5;    /* floats a sample */
    const float g = 7.0f;
    float out[3 * 2 * 2 * 5], eps[2 * 5], ref[2 * 5];
    lmx_fill_randn(out, 60, 7, 3.0f);
    lmx_compose c = lmx_compose_default();
    compose_plan p;
    for (int cfg = 0; cfg < 2; cfg++) {
        const int64_t tot = n * per, stride = (cfg ? 2 : 1) * tot;
        /* merge / switch: plain CFG */
        CHECK_OK(compose_plan_build(&p, &c, L, 3, "x", 4, NULL, NULL));
        compose_plan_combine(&p, out, eps, n, per, cfg, g);
        for (int64_t j = 0; j < tot; j++) {
            float d = out[tot + j] - out[j];
            d = g * d;
            ref[j] = cfg ? out[j] + d : out[j];
        }
        CHECK(!memcmp(eps, ref, sizeof eps), "cfg=%d single", cfg);
        compose_plan_free(&p);
        /* composite */
        c.method = LMX_METHOD_COMPOSITE;
        CHECK_OK(compose_plan_build(&p, &c, L, 3, "x", 4, NULL, NULL));
        compose_plan_combine(&p, out, eps, n, per, cfg, g);
        for (int64_t j = 0; j < tot; j++) {
            float su = out[j] + out[stride + j];
            su = su + out[2 * stride + j];
            float mu = su / 3.0f;
            if (!cfg) {
                ref[j] = mu;
                continue;
            }
            float sc = out[tot + j] + out[stride + tot + j];
            sc = sc + out[2 * stride + tot + j];
            float mc = sc / 3.0f, d = mc - mu;
            d = g * d;
            ref[j] = mu + d;
        }
        CHECK(!memcmp(eps, ref, sizeof eps), "cfg=%d composite", cfg);
        /* close to the paper's mean of per-LoRA guided noise */
        for (int64_t j = 0; cfg && j < tot; j++) {
            double m = 0;
            for (int b = 0; b < 3; b++) m += out[b * stride + j] + g * (out[b * stride + tot + j] - out[b * stride + j]);
            CHECK(fabs(m / 3 - eps[j]) < 1e-4 * (1 + fabs(m)), "composite vs paper %lld", (long long)j);
        }
        compose_plan_free(&p);
        /* w-composite */
        double man[3] = {0.5, 0.2, 0.3};
        c.method = LMX_METHOD_W_COMPOSITE;
        c.weighting = LMX_WEIGHTING_MANUAL;
        c.manual_weights = man;
        CHECK_OK(compose_plan_build(&p, &c, L, 3, "x", 4, NULL, NULL));
        compose_plan_combine(&p, out, eps, n, per, cfg, g);
        for (int64_t j = 0; j < tot; j++) {
            float acc = 0;
            for (int b = 0; b < 3; b++) {
                float u = out[b * stride + j], gb = u;
                if (cfg) {
                    float d = out[b * stride + tot + j] - u;
                    d = g * d;
                    gb = u + d;
                }
                float t = (float)p.weights.w[b] * gb;
                acc = acc + t;
            }
            ref[j] = acc / p.branch_wsum;
        }
        CHECK(!memcmp(eps, ref, sizeof eps), "cfg=%d w-composite", cfg);
        compose_plan_free(&p);
        /* w-composite with uniform weights is composite up to rounding */
        c.weighting = LMX_WEIGHTING_UNIFORM;
        CHECK_OK(compose_plan_build(&p, &c, L, 3, "x", 4, NULL, NULL));
        compose_plan_combine(&p, out, ref, n, per, cfg, g);
        compose_plan_free(&p);
        c = lmx_compose_default();
        c.method = LMX_METHOD_COMPOSITE;
        CHECK_OK(compose_plan_build(&p, &c, L, 3, "x", 4, NULL, NULL));
        compose_plan_combine(&p, out, eps, n, per, cfg, g);
        for (int64_t j = 0; j < tot; j++)
            CHECK(fabsf(eps[j] - ref[j]) <= 1e-5f * (1 + fabsf(eps[j])), "uniform w-composite %g vs %g", ref[j], eps[j]);
        compose_plan_free(&p);
        c = lmx_compose_default();
    }
}

/* Every allocation of the plan, the weights and the ablation failing in turn:
 * LMX_ERR_NOMEM, nothing leaked (ASan), then success when none fails. */
static void test_faults(void) {
    tok_tokenizer *tok = NULL;
    CHECK_OK(tok_load_dir(&tok, lmx_src_path("tests/fixtures/models/tiny-sd/tokenizer")));
    if (!tok) return;
    fake f = {.hidden = 8};
    compose_encoder enc = {.tok = tok, .hidden = 8, .encode = fake_encode, .user = &f};
    lmx_lora_use L[3];
    three(L);
    const char *P = "RAW photo, iu1, long straight black hair, mahalaiuniform, film grain";
    for (int m = LMX_METHOD_SWITCH; m < LMX_METHOD_COUNT; m++) {
        lmx_compose c = lmx_compose_default();
        c.method = (lmx_method)m;
        int n_fail = 0, ok = 0;
        for (long at = 1; at < 400 && !ok; at++) {
            compose_plan p;
            lmx_fault_set_fail_at(at);
            lmx_status st = compose_plan_build(&p, &c, L, 3, P, 20, &enc, NULL);
            lmx_fault_set_fail_at(0);
            if (st == LMX_OK) {
                cJSON *j = cJSON_CreateObject();
                compose_plan_json(&p, j);
                cJSON_Delete(j);
                compose_plan_free(&p);
                ok = 1;
            } else {
                CHECK(st == LMX_ERR_NOMEM, "%s: allocation %ld failing gave %s: %s", lmx_method_name(c.method), at,
                      lmx_status_name(st), lmx_errmsg());
                n_fail++;
            }
        }
        CHECK(ok && (m == LMX_METHOD_SWITCH || m == LMX_METHOD_COMPOSITE || n_fail > 10),
              "%s: %d allocation failures, then %s", lmx_method_name(c.method), n_fail, ok ? "ok" : "never ok");
    }
    tok_free(tok);
}

int main(void) {
    test_arith();
    test_prompt_weights();
    test_plans();
    test_small_n();
    test_errors();
    test_tables();
    test_combine();
    lmx_log_set(LMX_LOG_ERROR, NULL, NULL); /* the sweep repeats the under-the-floor warning */
    test_faults();
    return lmx_test_finish();
}
