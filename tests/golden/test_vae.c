/*
 * test_vae.c - the AutoencoderKL decoder and encoder against diffusers
 * 0.32.2 (fp32 CPU) on the tiny seeded model (4 levels: latent factor 8),
 * from the diffusers folder and the single file, plus diffusers' tiled
 * decode and the --vae override forms.
 *
 * Cases: decode of an 8x8 latent (-> 64x64) and of a batch of 2 at 6x5
 * (-> 48x40); tiled decode of 14x10 (tile 8 latents = sample_size/8,
 * overlap 0.25); encode of a 64x48 image to the moments (mean | logvar).
 * Tolerance: max-abs <= 1e-3 x max|ref| (as the UNet, docs/numerics.md §0).
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

static size_t maxz(size_t a, size_t b) { return a > b ? a : b; }

static void run_vae(const char *what, const vae *v, st_file *g, op_ctx *ctx, int full) {
    lmx_arena ar = {0};
    char label[160];
    float *z = NULL, *ref = NULL, *out = NULL;
    int64_t n;
    size_t need = maxz(vae_decode_arena_bytes(v, 2, 6, 5), vae_decode_arena_bytes(v, 1, 8, 8));
    need = maxz(need, vae_tiled_arena_bytes(v, 1, 14, 10, 8));
    if (vae_has_encoder(v)) need = maxz(need, vae_encode_arena_bytes(v, 1, 64, 48));
    CHECK_OK(lmx_arena_init(&ar, need));
    nn_run run = {.ctx = ctx, .arena = &ar};
    out = lmx_malloc(sizeof(float) * 2 * 112 * 80 * 3);
    CHECK(vae_factor(v) == 8, "factor %d", vae_factor(v));

    z = lmx_golden_f32(g, "vae.z_8x8", NULL);
    ref = lmx_golden_f32(g, "vae.decode_8x8", &n);
    if (z && ref) {
        CHECK_OK(vae_decode(v, &run, z, 1, 8, 8, out));
        snprintf(label, sizeof label, "%s decode 8x8 -> 64x64", what);
        cmp_rel(label, out, ref, n);
    }
    lmx_free(z);
    lmx_free(ref);
    z = ref = NULL;
    if (!full) goto done;

    z = lmx_golden_f32(g, "vae.z_6x5", NULL);
    ref = lmx_golden_f32(g, "vae.decode_6x5", &n);
    if (z && ref) {
        CHECK_OK(vae_decode(v, &run, z, 2, 6, 5, out));
        snprintf(label, sizeof label, "%s decode 2 x 6x5 -> 48x40", what);
        cmp_rel(label, out, ref, n);
    }
    lmx_free(z);
    lmx_free(ref);

    z = lmx_golden_f32(g, "vae.z_14x10", NULL);
    ref = lmx_golden_f32(g, "vae.decode_tiled_14x10", &n);
    if (z && ref) {
        CHECK_OK(vae_decode_tiled(v, &run, z, 1, 14, 10, 8, out));
        snprintf(label, sizeof label, "%s tiled decode 14x10 (tile 8)", what);
        cmp_rel(label, out, ref, n);
    }
    lmx_free(z);
    lmx_free(ref);
    z = ref = NULL;

    if (vae_has_encoder(v)) {
        z = lmx_golden_f32(g, "vae.image_64x48", NULL);
        ref = lmx_golden_f32(g, "vae.moments_64x48", &n);
        int h, w;
        vae_encode_out_hw(v, 64, 48, &h, &w);
        CHECK(h == 8 && w == 6, "encode size %dx%d", h, w);
        if (z && ref) {
            CHECK_OK(vae_encode(v, &run, z, 1, 64, 48, out));
            snprintf(label, sizeof label, "%s encode 64x48 -> moments", what);
            cmp_rel(label, out, ref, n);
        }
    } else {
        CHECK(full == 0, "%s: no encoder", what);
    }
    /* unscale: a true division */
    float x = 1.0f, zz;
    vae_unscale(v, &x, &zz, 1);
    CHECK(zz == 1.0f / 0.18215f, "unscale %g", zz);
done:
    CHECK(ar.used == 0, "arena not given back: %zu bytes", ar.used);
    lmx_free(z);
    lmx_free(ref);
    lmx_free(out);
    lmx_arena_free(&ar);
}

static void run_model(const char *what, const char *path, const char *vae_path, st_file *g, op_ctx *ctx) {
    sd_model *m = NULL;
    sd_load_opts o = sd_load_opts_default();
    o.vae_path = vae_path ? lmx_src_path(vae_path) : NULL;
    CHECK_OK(sd_model_load(&m, lmx_src_path(path), &o));
    if (m) run_vae(what, m->vae, g, ctx, vae_path == NULL);
    sd_model_free(m);
}

int main(void) {
    st_file *g = lmx_golden_open(lmx_src_path(GOLDEN));
    op_ctx *ctx = NULL;
    CHECK_OK(op_ctx_create(&ctx));
    if (!g || !ctx) return lmx_test_finish();
    double t0 = lmx_now();
    run_model("folder", "tests/fixtures/models/tiny-sd", NULL, g, ctx);
    run_model("single-file", "tests/fixtures/models/tiny-sd.safetensors", NULL, g, ctx);
    /* --vae forms: a diffusers vae folder, a diffusers .safetensors with config.json beside it,
     * a whole model folder, the VAE inside a single file */
    run_model("--vae folder", "tests/fixtures/models/tiny-sd.safetensors", "tests/fixtures/models/tiny-sd/vae", g, ctx);
    run_model("--vae diffusers file", "tests/fixtures/models/tiny-sd.safetensors",
              "tests/fixtures/models/tiny-sd/vae/diffusion_pytorch_model.safetensors", g, ctx);
    run_model("--vae single file", "tests/fixtures/models/tiny-sd", "tests/fixtures/models/tiny-sd.safetensors", g, ctx);
    printf("time %.2f s\n", lmx_now() - t0);
    op_ctx_free(ctx);
    st_close(g);
    return lmx_test_finish();
}
