/*
 * test_unet.c - the UNet against diffusers 0.32.2 (fp32 CPU) on the tiny
 * seeded SD1.x-family model, from the diffusers folder and the single file.
 *
 * Cases (golden_tiny_sd.safetensors): a CFG batch of 2 (different latents,
 * contexts [uncond, cond]) at 8x8 for t = 999, 500, 1, 742.25 (a float
 * timestep as Euler passes) and per-sample t = (999, 10); a 9x7 latent at
 * t = 500 (the upsamplers resize to the skip sizes). Tolerance (docs/numerics.md
 * §0): max-abs <= 1e-3 x max|ref|.
 * Also: arena accounting (nothing left allocated), a too-small arena is an
 * error, and batch independence (sample 1 alone = sample 1 in the batch).
 */
#include <string.h>

#include "harness.h"
#include "model/sd_model.h"

#define GOLDEN "tests/fixtures/models/golden_tiny_sd.safetensors"

static void cmp_rel(const char *what, const float *a, const float *r, int64_t n) {
    double ma, mr;
    lmx_err_stats(a, r, n, &ma, &mr);
    printf("%-44s max_abs %.3g  max|ref| %.3g  rel %.3g\n", what, ma, mr, mr > 0 ? ma / mr : ma);
    lmx_cmp_f32(what, a, r, n, 1e-3 * mr, 0);
}

static void run_model(const char *what, const char *path, st_file *g) {
    sd_model *m = NULL;
    op_ctx *ctx = NULL;
    lmx_arena ar = {0};
    float *ctxe = NULL, *x8 = NULL, *x97 = NULL, *out = NULL, *ref = NULL;
    char label[160];
    CHECK_OK(sd_model_load(&m, lmx_src_path(path), NULL));
    CHECK_OK(op_ctx_create(&ctx));
    if (!m || !ctx) goto done;
    ctxe = lmx_golden_f32(g, "unet.context", NULL);
    x8 = lmx_golden_f32(g, "unet.x_8x8", NULL);
    x97 = lmx_golden_f32(g, "unet.x_9x7", NULL);
    if (!ctxe || !x8 || !x97) goto done;
    const unet *u = m->unet;
    CHECK_OK(lmx_arena_init(&ar, unet_arena_bytes(u, 2, 9, 8, 77) > unet_arena_bytes(u, 2, 8, 8, 77)
                                     ? unet_arena_bytes(u, 2, 9, 8, 77)
                                     : unet_arena_bytes(u, 2, 8, 8, 77)));
    out = lmx_malloc(sizeof(float) * 2 * 9 * 8 * 4);
    nn_run run = {.ctx = ctx, .arena = &ar};
    static const struct {
        const char *name;
        float t0, t1;
    } cases[] = {
        {"unet.eps_8x8_t999", 999, 999}, {"unet.eps_8x8_t500", 500, 500}, {"unet.eps_8x8_t1", 1, 1},
        {"unet.eps_8x8_t742.25", 742.25f, 742.25f}, {"unet.eps_8x8_t999_10", 999, 10},
    };
    for (size_t i = 0; i < LMX_ARRAY_LEN(cases); i++) {
        float t[2] = {cases[i].t0, cases[i].t1};
        int64_t n;
        ref = lmx_golden_f32(g, cases[i].name, &n);
        if (!ref) continue;
        CHECK_OK(unet_forward(u, &run, x8, t, ctxe, 77, out, 2, 8, 8));
        snprintf(label, sizeof label, "%s %s", what, cases[i].name + 5);
        cmp_rel(label, out, ref, n);
        if (i == 4) { /* sample 1 alone */
            CHECK_OK(unet_forward(u, &run, x8 + 8 * 8 * 4, t + 1, ctxe + 77 * 16, 77, out, 1, 8, 8));
            snprintf(label, sizeof label, "%s batch of 1", what);
            cmp_rel(label, out, ref + 8 * 8 * 4, 8 * 8 * 4);
        }
        lmx_free(ref);
        ref = NULL;
    }
    float t500[2] = {500, 500};
    int64_t n97;
    ref = lmx_golden_f32(g, "unet.eps_9x7_t500", &n97);
    if (ref) {
        CHECK_OK(unet_forward(u, &run, x97, t500, ctxe, 77, out, 2, 9, 7));
        snprintf(label, sizeof label, "%s eps_9x7_t500 (resize path)", what);
        cmp_rel(label, out, ref, n97);
    }
    CHECK(ar.used == 0, "arena not given back: %zu bytes", ar.used);
    /* a too-small arena is a clean error */
    lmx_arena small = {0};
    CHECK_OK(lmx_arena_init(&small, unet_arena_bytes(u, 2, 8, 8, 77) / 2));
    nn_run r2 = {.ctx = ctx, .arena = &small};
    CHECK(unet_forward(u, &r2, x8, t500, ctxe, 77, out, 2, 8, 8) == LMX_ERR_ARG, "small arena accepted");
    lmx_arena_free(&small);
done:
    lmx_free(ctxe);
    lmx_free(x8);
    lmx_free(x97);
    lmx_free(out);
    lmx_free(ref);
    lmx_arena_free(&ar);
    op_ctx_free(ctx);
    sd_model_free(m);
}

int main(void) {
    st_file *g = lmx_golden_open(lmx_src_path(GOLDEN));
    if (!g) return lmx_test_finish();
    double t0 = lmx_now();
    run_model("folder", "tests/fixtures/models/tiny-sd", g);
    run_model("single-file", "tests/fixtures/models/tiny-sd.safetensors", g);
    printf("time %.2f s\n", lmx_now() - t0);
    st_close(g);
    return lmx_test_finish();
}
