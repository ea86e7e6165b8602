/*
 * test_lora_golden.c - LoRAs on the tiny SD model against diffusers 0.32.2 +
 * peft 0.12.0 (fp32 CPU), text encoder and UNet, runtime and merged.
 *
 * Golden: tests/fixtures/lora/golden_lora.safetensors (reference/gen_lora.py):
 *   "<set>.te.embeds"   encode_prompt(prompt, negative, lora_scale=0.8) [2,77,16]
 *   "<set>.unet.t999/t500"  unet(x, t, ctx, cross_attention_kwargs={"scale": 0.8})
 * for the sets char (kohya, fp16, 3x3-down/1x1-up convs, dropped conv_in /
 * time_embedding modules), style (PEFT, fp32, no alpha), three (char, style,
 * object: kohya bf16, per-LoRA unet/te weights) and mixed (non-uniform alphas
 * and ranks, checked with diffusers' scaling; own scaling must differ).
 *
 * Also: the other spellings of the same numbers (LDM dialect, older
 * diffusers names, PEFT prefixes) give bit-identical outputs; merged equals
 * runtime; switching the active set through the scale table equals a fresh
 * attach of that set alone (bitwise); per-sample LoRAs in one batch equal
 * separate runs; base outputs are bit-identical after merge + unmerge and
 * after detach; apply_dropped changes the output.
 *
 * Tolerance: max-abs <= 1e-4 x max|ref| (runtime and merged; measured ~3e-6.
 * Merged rounds W + sBA differently from Wx + s·B(Ax)).
 */
#include <string.h>

#include "harness.h"
#include "lora/lora.h"

#define GOLDEN "tests/fixtures/lora/golden_lora.safetensors"
#define LDIR "tests/fixtures/lora/"
#define LAM 0.8f

typedef struct env {
    sd_model *m;
    op_ctx *ctx;
    lmx_arena ar;
    lora_state ls;          /* the attached LoRAs / merged kernels */
    st_file *g;
    int64_t *ids;
    float *x, *ctxe;
    float *te_out, *unet_out;
    int C;
} env;

static double worst_rel = 0, worst_rel_merged = 0;

static void cmp_rel(const char *what, const float *a, const float *r, int64_t n, double tol,
                    double *worst) {
    double ma, mr;
    lmx_err_stats(a, r, n, &ma, &mr);
    double rel = mr > 0 ? ma / mr : ma;
    printf("%-52s max_abs %.3g  max|ref| %.3g  rel %.3g\n", what, ma, mr, rel);
    if (worst && rel > *worst) *worst = rel;
    lmx_cmp_f32(what, a, r, n, tol * mr, 0);
}

static int same_bits(const float *a, const float *b, int64_t n) {
    return memcmp(a, b, sizeof(float) * (size_t)n) == 0;
}

/* Arena for the current attachments (the LoRA scratch grows with the rank). */
static void reserve(env *e) {
    size_t need = unet_arena_bytes_lora(e->m->unet, lora_state_rank(&e->ls, LORA_UNET), 4, 8, 8, 77);
    size_t tneed = clip_text_arena_bytes_lora(e->m->text, lora_state_rank(&e->ls, LORA_TE), 4, 77);
    if (tneed > need) need = tneed;
    if (e->ar.size < need) {
        lmx_arena_free(&e->ar);
        CHECK_OK(lmx_arena_init(&e->ar, need));
    }
}

/* TE on the golden ids [2, 77] with per-LoRA table values te[i] (both samples). */
static lmx_status run_te(env *e, const float *te, int n, float *out) {
    float tab[2 * 8];
    for (int i = 0; i < n; i++) tab[2 * i] = tab[2 * i + 1] = te[i];
    nn_run run = {.ctx = e->ctx, .arena = &e->ar, .hooks = &e->ls.hooks[LORA_TE], .n_loras = n,
                  .lora_scale = n ? tab : NULL};
    return clip_text_forward(e->m->text, &run, e->ids, 2, 77, 0, out);
}

static lmx_status run_unet(env *e, const float *un, int n, float t, float *out) {
    float tab[2 * 8];
    for (int i = 0; i < n; i++) tab[2 * i] = tab[2 * i + 1] = un[i];
    float tt[2] = {t, t};
    nn_run run = {.ctx = e->ctx, .arena = &e->ar, .hooks = &e->ls.hooks[LORA_UNET], .n_loras = n,
                  .lora_scale = n ? tab : NULL};
    return unet_forward(e->m->unet, &run, e->x, tt, e->ctxe, 77, out, 2, 8, 8);
}

typedef struct set_def {
    const char *tag;
    int n;
    const char *files[3];
    float unet_w[3], te_w[3];
    lora_scaling scaling;
} set_def;

static const set_def SETS[] = {
    {"char", 1, {"char_kohya"}, {1.0f}, {1.0f}, LORA_SCALING_OWN},
    {"style", 1, {"style_peft"}, {0.9f}, {1.1f}, LORA_SCALING_OWN},
    {"three", 3, {"char_kohya", "style_peft", "object_kohya"}, {1.0f, 0.7f, 1.2f}, {1.0f, 0.5f, 0.9f},
     LORA_SCALING_OWN},
    {"mixed", 1, {"mixed_kohya"}, {1.0f}, {1.0f}, LORA_SCALING_DIFFUSERS},
};

static lmx_lora *load(env *e, const char *name, lora_scaling sc, int apply_dropped) {
    char path[256];
    snprintf(path, sizeof path, "%s%s%s.safetensors", LDIR, name, "");
    lora_opts o = lora_opts_default();
    o.scaling = sc;
    o.apply_dropped = apply_dropped;
    o.quiet = 1;
    lmx_lora *l = NULL;
    CHECK_OK(lora_load(&l, e->m, lmx_src_path(path), &o));
    return l;
}

/* Runtime and merged outputs of one set against the golden tensors. */
static void check_set(env *e, const set_def *s) {
    lmx_lora *l[3] = {0};
    char label[160], name[96];
    float te[3], un[3];
    int64_t n_te = 2 * 77 * e->C, n_un = 2 * 8 * 8 * 4;
    for (int i = 0; i < s->n; i++) {
        l[i] = load(e, s->files[i], s->scaling, 0);
        if (!l[i]) goto done;
        te[i] = LAM * s->te_w[i];
        un[i] = LAM * s->unet_w[i];
    }
    CHECK_OK(lora_attach(&e->ls, e->m, (const lmx_lora *const *)l, s->n));
    reserve(e);
    snprintf(name, sizeof name, "%s.te.embeds", s->tag);
    float *ref = lmx_golden_f32(e->g, name, NULL);
    if (ref) {
        CHECK_OK(run_te(e, te, s->n, e->te_out));
        snprintf(label, sizeof label, "runtime %s text encoder", s->tag);
        cmp_rel(label, e->te_out, ref, n_te, 1e-4, &worst_rel);
        lmx_free(ref);
    }
    static const float ts[2] = {999.0f, 500.0f};
    for (int k = 0; k < 2; k++) {
        snprintf(name, sizeof name, "%s.unet.t%g", s->tag, (double)ts[k]);
        ref = lmx_golden_f32(e->g, name, NULL);
        if (!ref) continue;
        CHECK_OK(run_unet(e, un, s->n, ts[k], e->unet_out));
        snprintf(label, sizeof label, "runtime %s unet t=%g", s->tag, (double)ts[k]);
        cmp_rel(label, e->unet_out, ref, n_un, 1e-4, &worst_rel);
        lmx_free(ref);
    }
    /* merged: the same numbers through private kernels, no side paths */
    lora_detach(&e->ls);
    float wu[3], wt[3];
    for (int i = 0; i < s->n; i++) wu[i] = un[i], wt[i] = te[i];
    CHECK_OK(lora_merge(&e->ls, e->m, (const lmx_lora *const *)l, wu, wt, s->n));
    CHECK(lora_n_merged(&e->ls) > 0, "%s: nothing merged", s->tag);
    snprintf(name, sizeof name, "%s.te.embeds", s->tag);
    ref = lmx_golden_f32(e->g, name, NULL);
    if (ref) {
        CHECK_OK(run_te(e, NULL, 0, e->te_out));
        snprintf(label, sizeof label, "merged  %s text encoder", s->tag);
        cmp_rel(label, e->te_out, ref, n_te, 1e-4, &worst_rel_merged);
        lmx_free(ref);
    }
    for (int k = 0; k < 2; k++) {
        snprintf(name, sizeof name, "%s.unet.t%g", s->tag, (double)ts[k]);
        ref = lmx_golden_f32(e->g, name, NULL);
        if (!ref) continue;
        CHECK_OK(run_unet(e, NULL, 0, ts[k], e->unet_out));
        snprintf(label, sizeof label, "merged  %s unet t=%g", s->tag, (double)ts[k]);
        cmp_rel(label, e->unet_out, ref, n_un, 1e-4, &worst_rel_merged);
        lmx_free(ref);
    }
    lora_unmerge(&e->ls);
    CHECK(lora_n_merged(&e->ls) == 0, "unmerge left merged kernels");
done:
    lora_detach(&e->ls);
    for (int i = 0; i < 3; i++) lora_free(l[i]);
}

/* Same numbers, other spellings: bit-identical outputs. */
static void check_spellings(env *e) {
    static const char *pairs[][2] = {{"char_kohya", "char_kohya_ldm"},
                                     {"style_peft", "style_diffusers_old"},
                                     {"style_peft", "style_peft_prefixed"}};
    int64_t n_te = 2 * 77 * e->C, n_un = 2 * 8 * 8 * 4;
    float *te0 = lmx_malloc(sizeof(float) * (size_t)n_te), *un0 = lmx_malloc(sizeof(float) * (size_t)n_un);
    for (size_t p = 0; p < LMX_ARRAY_LEN(pairs); p++) {
        lmx_lora *a = load(e, pairs[p][0], LORA_SCALING_OWN, 0);
        lmx_lora *b = load(e, pairs[p][1], LORA_SCALING_OWN, 0);
        if (!a || !b) {
            lora_free(a);
            lora_free(b);
            continue;
        }
        CHECK(a->n_mod == b->n_mod, "%s: %d modules, %s: %d", pairs[p][0], a->n_mod, pairs[p][1], b->n_mod);
        CHECK(b->n_unmatched == 0, "%s: %d unmatched keys", pairs[p][1], b->n_unmatched);
        float w = LAM;
        const lmx_lora *la[1] = {a}, *lb[1] = {b};
        CHECK_OK(lora_attach(&e->ls, e->m, la, 1));
        reserve(e);
        CHECK_OK(run_te(e, &w, 1, te0));
        CHECK_OK(run_unet(e, &w, 1, 500.0f, un0));
        CHECK_OK(lora_attach(&e->ls, e->m, lb, 1));
        CHECK_OK(run_te(e, &w, 1, e->te_out));
        CHECK_OK(run_unet(e, &w, 1, 500.0f, e->unet_out));
        CHECK(same_bits(te0, e->te_out, n_te), "%s vs %s: text encoder outputs differ", pairs[p][0],
              pairs[p][1]);
        CHECK(same_bits(un0, e->unet_out, n_un), "%s vs %s: UNet outputs differ", pairs[p][0], pairs[p][1]);
        printf("spelling %-22s = %-22s bitwise: %s\n", pairs[p][0], pairs[p][1],
               same_bits(un0, e->unet_out, n_un) && same_bits(te0, e->te_out, n_te) ? "yes" : "NO");
        lora_detach(&e->ls);
        lora_free(a);
        lora_free(b);
    }
    lmx_free(te0);
    lmx_free(un0);
}

/* Switching sets through the table; per-sample LoRAs; base bits preserved. */
static void check_switching(env *e) {
    int64_t n_un = 2 * 8 * 8 * 4, n_te = 2 * 77 * e->C;
    lmx_lora *l[3] = {load(e, "char_kohya", LORA_SCALING_OWN, 0), load(e, "style_peft", LORA_SCALING_OWN, 0),
                      load(e, "object_kohya", LORA_SCALING_OWN, 0)};
    float *base = lmx_malloc(sizeof(float) * (size_t)n_un), *base_te = lmx_malloc(sizeof(float) * (size_t)n_te);
    float *fresh = lmx_malloc(sizeof(float) * (size_t)n_un), *big = lmx_malloc(sizeof(float) * 4 * 8 * 8 * 4);
    if (!l[0] || !l[1] || !l[2]) goto done;
    lora_detach(&e->ls);
    reserve(e);
    CHECK_OK(run_unet(e, NULL, 0, 500.0f, base));
    CHECK_OK(run_te(e, NULL, 0, base_te));
    /* all three attached, table selects one: equal to that LoRA alone */
    CHECK_OK(lora_attach(&e->ls, e->m, (const lmx_lora *const *)l, 3));
    reserve(e);
    for (int k = 0; k < 3; k++) {
        float tab3[3] = {0, 0, 0}, one = LAM;
        tab3[k] = LAM;
        CHECK_OK(run_unet(e, tab3, 3, 500.0f, e->unet_out));
        const lmx_lora *solo[1] = {l[k]};
        CHECK_OK(lora_attach(&e->ls, e->m, solo, 1));
        CHECK_OK(run_unet(e, &one, 1, 500.0f, fresh));
        CHECK(same_bits(fresh, e->unet_out, n_un), "switch to LoRA %d differs from a fresh attach", k);
        CHECK_OK(lora_attach(&e->ls, e->m, (const lmx_lora *const *)l, 3));
    }
    /* all scales zero: the base output, bit for bit */
    float zero[3] = {0, 0, 0};
    CHECK_OK(run_unet(e, zero, 3, 500.0f, e->unet_out));
    CHECK(same_bits(base, e->unet_out, n_un), "LoRAs attached at scale 0 change the output");
    /* per-sample: batch [x0, x1, x0, x1] with char on 0-1, object on 2-3 */
    {
        float *xx = lmx_malloc(sizeof(float) * 4 * 8 * 8 * 4), *cc = lmx_malloc(sizeof(float) * 4 * 77 * (size_t)e->C);
        int64_t px = 8 * 8 * 4, pc = 77 * e->C;
        for (int s = 0; s < 4; s++) {
            memcpy(xx + s * px, e->x + (s % 2) * px, sizeof(float) * (size_t)px);
            memcpy(cc + s * pc, e->ctxe + (s % 2) * pc, sizeof(float) * (size_t)pc);
        }
        float tab[3 * 4] = {LAM, LAM, 0, 0, 0, 0, 0, 0, 0, 0, LAM, LAM};
        float tt[4] = {500, 500, 500, 500};
        nn_run run = {.ctx = e->ctx, .arena = &e->ar, .hooks = &e->ls.hooks[LORA_UNET], .n_loras = 3,
                      .lora_scale = tab};
        CHECK_OK(unet_forward(e->m->unet, &run, xx, tt, cc, 77, big, 4, 8, 8));
        float t0[3] = {LAM, 0, 0}, t2[3] = {0, 0, LAM};
        CHECK_OK(run_unet(e, t0, 3, 500.0f, e->unet_out));
        cmp_rel("per-sample batch: samples 0-1 (char)", big, e->unet_out, n_un, 1e-5, NULL);
        CHECK_OK(run_unet(e, t2, 3, 500.0f, e->unet_out));
        cmp_rel("per-sample batch: samples 2-3 (object)", big + 2 * px, e->unet_out, n_un, 1e-5, NULL);
        lmx_free(xx);
        lmx_free(cc);
    }
    /* merge + unmerge + detach: base bits */
    float w3[3] = {LAM, LAM, LAM};
    CHECK_OK(lora_merge(&e->ls, e->m, (const lmx_lora *const *)l, w3, w3, 3));
    lora_unmerge(&e->ls);
    lora_detach(&e->ls);
    CHECK_OK(run_unet(e, NULL, 0, 500.0f, e->unet_out));
    CHECK(same_bits(base, e->unet_out, n_un), "UNet base output changed after merge/unmerge");
    CHECK_OK(run_te(e, NULL, 0, e->te_out));
    CHECK(same_bits(base_te, e->te_out, n_te), "TE base output changed after merge/unmerge");
    /* base weights as read back are those of the file */
    {
        nn_layer *ly = unet_layers(e->m->unet)->v[5];
        int64_t nw = ly->n_out * ly->n_in * ly->kh * ly->kw;
        float *w1 = lmx_malloc(sizeof(float) * (size_t)nw), *w2 = lmx_malloc(sizeof(float) * (size_t)nw);
        CHECK_OK(nn_layer_weight_f32(ly, w1));
        CHECK_OK(lora_merge(&e->ls, e->m, (const lmx_lora *const *)l, w3, w3, 3));
        CHECK_OK(nn_layer_weight_f32(ly, w2));
        CHECK(same_bits(w1, w2, nw), "base weight bits changed by a merge");
        lora_unmerge(&e->ls);
        lmx_free(w1);
        lmx_free(w2);
    }
    printf("switching/per-sample/unmerge checks done\n");
done:
    lora_detach(&e->ls);
    for (int i = 0; i < 3; i++) lora_free(l[i]);
    lmx_free(base);
    lmx_free(base_te);
    lmx_free(fresh);
    lmx_free(big);
}

/* Own scaling on the non-uniform file differs from diffusers (and says so);
 * apply_dropped changes the output. */
static void check_options(env *e) {
    int64_t n_un = 2 * 8 * 8 * 4;
    lmx_lora *own = load(e, "mixed_kohya", LORA_SCALING_OWN, 0);
    if (own) {
        CHECK(own->info[LORA_UNET].n_ref_differs > 0 && own->info[LORA_TE].n_ref_differs > 0,
              "mixed: expected scale differences, got %d / %d", own->info[LORA_UNET].n_ref_differs,
              own->info[LORA_TE].n_ref_differs);
        CHECK(strstr(own->report, "diffusers 0.32.2 would scale") != NULL, "report: %s", own->report);
        float w = LAM;
        const lmx_lora *s[1] = {own};
        CHECK_OK(lora_attach(&e->ls, e->m, s, 1));
        reserve(e);
        CHECK_OK(run_unet(e, &w, 1, 500.0f, e->unet_out));
        float *ref = lmx_golden_f32(e->g, "mixed.unet.t500", NULL);
        double ma, mr;
        if (ref) {
            lmx_err_stats(e->unet_out, ref, n_un, &ma, &mr);
            CHECK(ma > 1e-2 * mr, "own scaling unexpectedly equals diffusers' (%g)", ma);
            lmx_free(ref);
        }
        lora_detach(&e->ls);
        lora_free(own);
    }
    lmx_lora *d0 = load(e, "char_kohya", LORA_SCALING_OWN, 0), *d1 = load(e, "char_kohya", LORA_SCALING_OWN, 1);
    if (d0 && d1) {
        CHECK(d0->info[LORA_UNET].n_dropped == 2 && d1->info[LORA_UNET].n_dropped == 0,
              "dropped: %d / %d", d0->info[LORA_UNET].n_dropped, d1->info[LORA_UNET].n_dropped);
        CHECK(strstr(d0->report, "lora_unet_conv_in") != NULL, "report lacks conv_in: %s", d0->report);
        float w = LAM;
        float *o0 = lmx_malloc(sizeof(float) * (size_t)n_un);
        const lmx_lora *s0[1] = {d0}, *s1[1] = {d1};
        CHECK_OK(lora_attach(&e->ls, e->m, s0, 1));
        reserve(e);
        CHECK_OK(run_unet(e, &w, 1, 500.0f, o0));
        CHECK_OK(lora_attach(&e->ls, e->m, s1, 1));
        reserve(e);
        CHECK_OK(run_unet(e, &w, 1, 500.0f, e->unet_out));
        CHECK(!same_bits(o0, e->unet_out, n_un), "apply_dropped made no difference");
        lora_detach(&e->ls);
        lmx_free(o0);
    }
    lora_free(d0);
    lora_free(d1);
}

int main(void) {
    env e;
    memset(&e, 0, sizeof e);
    e.g = lmx_golden_open(GOLDEN);
    CHECK_OK(sd_model_load(&e.m, lmx_src_path("tests/fixtures/models/tiny-sd"), NULL));
    CHECK_OK(op_ctx_create(&e.ctx));
    if (!e.g || !e.m || !e.ctx) goto done;
    e.C = clip_text_cfg(e.m->text)->hidden;
    e.ids = lmx_golden_i64(e.g, "te.ids", NULL);
    e.x = lmx_golden_f32(e.g, "unet.x", NULL);
    e.ctxe = lmx_golden_f32(e.g, "unet.context", NULL);
    e.te_out = lmx_malloc(sizeof(float) * 2 * 77 * (size_t)e.C);
    e.unet_out = lmx_malloc(sizeof(float) * 2 * 8 * 8 * 4);
    if (!e.ids || !e.x || !e.ctxe) goto done;
    reserve(&e);
    /* no LoRA: the base goldens */
    float *ref = lmx_golden_f32(e.g, "base.unet.t500", NULL);
    if (ref) {
        CHECK_OK(run_unet(&e, NULL, 0, 500.0f, e.unet_out));
        cmp_rel("base unet t=500", e.unet_out, ref, 2 * 8 * 8 * 4, 2e-4, NULL);
        lmx_free(ref);
    }
    for (size_t i = 0; i < LMX_ARRAY_LEN(SETS); i++) check_set(&e, &SETS[i]);
    check_spellings(&e);
    check_switching(&e);
    check_options(&e);
    printf("worst relative error: runtime %.3g, merged %.3g\n", worst_rel, worst_rel_merged);
done:
    lmx_free(e.ids);
    lmx_free(e.x);
    lmx_free(e.ctxe);
    lmx_free(e.te_out);
    lmx_free(e.unet_out);
    lmx_arena_free(&e.ar);
    lora_state_free(&e.ls);
    op_ctx_free(e.ctx);
    sd_model_free(e.m);
    st_close(e.g);
    return lmx_test_finish();
}
