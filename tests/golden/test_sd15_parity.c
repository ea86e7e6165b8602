/*
 * test_sd15_parity.c - full-size SD1.5 architecture parity: the real SD1.5
 * text encoder (12 layers x 768), UNet (320/640/1280/1280, 8 heads) and VAE
 * (128/256/512/512) with weights that C and Python both generate from the
 * counter-based hash of (tensor name, element index) (src/core/hashinit.h),
 * compared with transformers/diffusers outputs on hash-generated inputs:
 * 8 tokens (text encoder, plain and clip_skip=1), an 8x8 latent CFG batch of
 * 2 with per-sample timesteps (UNet), an 8x8 latent -> 64x64 decode and a
 * 64x64 encode (VAE). No weights are committed; the golden holds outputs
 * only (reference/gen_models.py --sd15-parity).
 *
 * (The real SD1.5 single-file layout is checked by test_sd15_layout.c.)
 *
 * It builds the networks one after another in fp32 (UNet: 3.4 GB); it
 * prints its time and peak RSS. Tolerances (docs/numerics.md §0): text
 * max-abs <= 1e-4; UNet and VAE max-abs <= 1e-3 x max|ref|.
 */
#include <sys/resource.h>

#include "core/hashinit.h"
#include "harness.h"
#include "model/sd_model.h"

#define GOLDEN "tests/fixtures/models/golden_sd15_hash.safetensors"

static lmx_status gen(void *user, const char *name, int ndim, const int64_t *shape, float *dst) {
    (void)user;
    lmx_hash_fill(name, ndim, shape, dst);
    return LMX_OK;
}

static float *hash_input(const char *name, int64_t n) {
    float *x = lmx_malloc(sizeof(float) * (size_t)n);
    if (x) lmx_hash_uniform(lmx_hash_name(name), 0, n, 1.0f, x);
    return x;
}

static void report(const char *what, const float *a, const float *r, int64_t n, double tol_abs, double tol_rel) {
    double ma, mr;
    lmx_err_stats(a, r, n, &ma, &mr);
    double tol = tol_abs + tol_rel * mr;
    printf("%-34s max_abs %.3g  max|ref| %.3g  rel %.3g  (tol %.3g)\n", what, ma, mr, mr > 0 ? ma / mr : ma, tol);
    lmx_cmp_f32(what, a, r, n, tol, 0);
}

static double rss_gb(void) {
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    return (double)u.ru_maxrss / (1024.0 * 1024.0);
}

int main(void) {
    st_file *g = lmx_golden_open(lmx_src_path(GOLDEN));
    op_ctx *ctx = NULL;
    CHECK_OK(op_ctx_create(&ctx));
    if (!g || !ctx) return lmx_test_finish();
    nn_src src = {.label = "sd15", .gen = gen, .prec = OP_PREC_F32};
    lmx_arena ar = {0};
    double t0 = lmx_now(), t;

    /* text encoder */
    {
        clip_text *te = NULL;
        clip_text_config c = clip_text_config_sd15();
        t = lmx_now();
        CHECK_OK(clip_text_load(&te, &src, &c));
        double tl = lmx_now() - t;
        int64_t ids[8] = {49406, 320, 1125, 539, 320, 2368, 49407, 49407};
        float *ref = lmx_golden_f32(g, "text.last_hidden_state", NULL), *ref1 = lmx_golden_f32(g, "text.clip_skip1", NULL);
        float *out = lmx_malloc(sizeof(float) * 8 * 768);
        if (te && ref && ref1 && out) {
            CHECK_OK(lmx_arena_init(&ar, clip_text_arena_bytes(te, 1, 8)));
            nn_run run = {.ctx = ctx, .arena = &ar};
            t = lmx_now();
            CHECK_OK(clip_text_forward(te, &run, ids, 1, 8, 0, out));
            report("text last_hidden_state [1,8,768]", out, ref, 8 * 768, 1e-4, 0);
            CHECK_OK(clip_text_forward(te, &run, ids, 1, 8, 1, out));
            report("text clip_skip=1", out, ref1, 8 * 768, 1e-4, 0);
            printf("  text encoder: build %.1f s, 2 forwards %.2f s\n", tl, lmx_now() - t);
            lmx_arena_free(&ar);
        }
        lmx_free(ref);
        lmx_free(ref1);
        lmx_free(out);
        clip_text_free(te);
    }

    /* UNet */
    {
        unet *u = NULL;
        unet_config c = unet_config_sd15();
        t = lmx_now();
        CHECK_OK(unet_load(&u, &src, &c));
        double tl = lmx_now() - t;
        float *x = hash_input("input.unet.x", 2 * 8 * 8 * 4), *cx = hash_input("input.unet.context", 2 * 77 * 768);
        float *ref = lmx_golden_f32(g, "unet.eps_8x8", NULL), *out = lmx_malloc(sizeof(float) * 2 * 8 * 8 * 4);
        float tt[2] = {999.0f, 250.0f};
        if (u && x && cx && ref && out) {
            CHECK_OK(lmx_arena_init(&ar, unet_arena_bytes(u, 2, 8, 8, 77)));
            nn_run run = {.ctx = ctx, .arena = &ar};
            t = lmx_now();
            CHECK_OK(unet_forward(u, &run, x, tt, cx, 77, out, 2, 8, 8));
            report("unet eps [2,8,8,4]", out, ref, 2 * 8 * 8 * 4, 0, 1e-3);
            printf("  unet: build %.1f s, forward %.2f s, arena %.1f MB\n", tl, lmx_now() - t, ar.size / 1e6);
            lmx_arena_free(&ar);
        }
        lmx_free(x);
        lmx_free(cx);
        lmx_free(ref);
        lmx_free(out);
        unet_free(u);
    }

    /* VAE */
    {
        vae *v = NULL;
        vae_config c = vae_config_sd15();
        t = lmx_now();
        CHECK_OK(vae_load(&v, &src, &c, 1));
        double tl = lmx_now() - t;
        float *z = hash_input("input.vae.z", 8 * 8 * 4), *img = hash_input("input.vae.image", 64 * 64 * 3);
        float *ref = lmx_golden_f32(g, "vae.decode_8x8", NULL), *refm = lmx_golden_f32(g, "vae.moments_64x64", NULL);
        float *out = lmx_malloc(sizeof(float) * 64 * 64 * 3);
        if (v && z && img && ref && refm && out) {
            size_t need = vae_decode_arena_bytes(v, 1, 8, 8), ne = vae_encode_arena_bytes(v, 1, 64, 64);
            CHECK_OK(lmx_arena_init(&ar, need > ne ? need : ne));
            nn_run run = {.ctx = ctx, .arena = &ar};
            t = lmx_now();
            CHECK_OK(vae_decode(v, &run, z, 1, 8, 8, out));
            report("vae decode [1,64,64,3]", out, ref, 64 * 64 * 3, 0, 1e-3);
            CHECK_OK(vae_encode(v, &run, img, 1, 64, 64, out));
            report("vae encode moments [1,8,8,8]", out, refm, 8 * 8 * 8, 0, 1e-3);
            printf("  vae: build %.1f s, decode + encode %.2f s\n", tl, lmx_now() - t);
            lmx_arena_free(&ar);
        }
        lmx_free(z);
        lmx_free(img);
        lmx_free(ref);
        lmx_free(refm);
        lmx_free(out);
        vae_free(v);
    }
    nn_src_release(&src);
    op_ctx_free(ctx);
    st_close(g);
    printf("time %.1f s, peak RSS %.2f GB\n", lmx_now() - t0, rss_gb());
    return lmx_test_finish();
}
