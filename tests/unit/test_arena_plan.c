/*
 * test_arena_plan.c - each forward's activation arena plan against the arena
 * it really uses. After a real forward on the tiny SD model (tiny-sd) the
 * arena's high-water mark is compared with the planner the pipeline sizes
 * the arena by (unet_arena_bytes, clip_text_arena_bytes,
 * vae_decode_arena_bytes, vae_encode_arena_bytes, vae_tiled_arena_bytes),
 * for several batch sizes and latent/image/prompt sizes (odd ones too), with
 * no LoRA and with LoRAs attached (the side-path scratch depends on the rank).
 *
 * The relation asserted is exact: every allocation in a forward is 64-byte
 * aligned in a 64-byte aligned arena, so the planners count in the same
 * 64-byte granules (nn_bytes) and then add one fixed NN_ARENA_SLACK. So
 *     peak == plan - NN_ARENA_SLACK
 * (the tiled decode nests a whole tile's decode plan, slack included, and
 * adds its own: there peak == plan - 2 * NN_ARENA_SLACK). A planner that
 * under-estimates (a forward that fails with "arena full" at some size, or
 * one that lives off the slack) or over-estimates (memory reserved for
 * nothing) fails here, at the size and forward it gets wrong.
 */
#include <string.h>

#include "harness.h"
#include "lora/lora.h"
#include "model/sd_model.h"

static op_ctx *g_ctx;
static int g_nl;          /* LoRAs attached: rows of the scale table */
static float g_scale[64]; /* [g_nl][B], all 0.75 */
static lora_state g_ls;   /* the attached LoRAs' hooks */

static void check_peak(const char *what, const lmx_arena *ar, size_t plan, size_t slack) {
    CHECK(ar->peak + slack == plan, "%s: arena peak %zu + slack %zu != planned %zu (plan %s by %lld bytes)", what,
          ar->peak, slack, plan, ar->peak + slack > plan ? "short" : "over",
          (long long)(ar->peak + slack > plan ? ar->peak + slack - plan : plan - ar->peak - slack));
    CHECK(ar->used == 0, "%s: %zu arena bytes not given back", what, ar->used);
}

static nn_run make_run(lmx_arena *ar, int B) {
    nn_run run = {.ctx = g_ctx, .arena = ar, .n_loras = g_nl, .lora_scale = g_nl ? g_scale : NULL};
    run.hooks = NULL; /* set by the UNet and text-encoder cases */
    (void)B;
    return run;
}

static float *randn(int64_t n, uint64_t seed) {
    float *x = lmx_malloc(sizeof(float) * (size_t)n);
    if (x) lmx_fill_randn(x, n, seed, 1.0f);
    return x;
}

static void unet_case(const unet *u, int B, int h, int w, int L) {
    const unet_config *c = unet_cfg(u);
    char what[96];
    snprintf(what, sizeof what, "unet B=%d %dx%d ctx %d, %d LoRAs", B, h, w, L, g_nl);
    size_t plan = unet_arena_bytes_lora(u, lora_state_rank(&g_ls, LORA_UNET), B, h, w, L);
    lmx_arena ar;
    float *x = randn((int64_t)B * h * w * c->in_channels, 1), *ctx = randn((int64_t)B * L * c->cross_dim, 2);
    float *eps = lmx_malloc(sizeof(float) * (size_t)B * h * w * c->out_channels);
    float t[8] = {999, 500, 1, 742.25f, 10, 20, 30, 40};
    if (x && ctx && eps && lmx_arena_init(&ar, plan) == LMX_OK) {
        nn_run run = make_run(&ar, B);
        run.hooks = g_nl ? &g_ls.hooks[LORA_UNET] : NULL;
        CHECK(unet_forward(u, &run, x, t, ctx, L, eps, B, h, w) == LMX_OK, "%s: %s", what, lmx_errmsg());
        check_peak(what, &ar, plan, NN_ARENA_SLACK);
        lmx_arena_free(&ar);
    }
    lmx_free(x);
    lmx_free(ctx);
    lmx_free(eps);
}

static void clip_case(const clip_text *m, int B, int L) {
    const clip_text_config *c = clip_text_cfg(m);
    char what[96];
    snprintf(what, sizeof what, "text encoder B=%d L=%d, %d LoRAs", B, L, g_nl);
    size_t plan = clip_text_arena_bytes_lora(m, lora_state_rank(&g_ls, LORA_TE), B, L);
    lmx_arena ar;
    int64_t *ids = lmx_malloc(sizeof(int64_t) * (size_t)B * L);
    float *out = lmx_malloc(sizeof(float) * (size_t)B * L * c->hidden);
    if (ids && out && lmx_arena_init(&ar, plan) == LMX_OK) {
        for (int64_t i = 0; i < (int64_t)B * L; i++) ids[i] = (i * 7919) % c->vocab;
        nn_run run = make_run(&ar, B);
        run.hooks = g_nl ? &g_ls.hooks[LORA_TE] : NULL;
        CHECK(clip_text_forward(m, &run, ids, B, L, 0, out) == LMX_OK, "%s: %s", what, lmx_errmsg());
        check_peak(what, &ar, plan, NN_ARENA_SLACK);
        lmx_arena_free(&ar);
    }
    lmx_free(ids);
    lmx_free(out);
}

static void decode_case(const vae *v, int B, int h, int w, int tile) {
    const vae_config *c = vae_cfg(v);
    int f = vae_factor(v);
    char what[96];
    snprintf(what, sizeof what, "vae decode B=%d %dx%d%s%.0d, %d LoRAs", B, h, w, tile ? " tile " : "", tile, g_nl);
    size_t plan = tile ? vae_tiled_arena_bytes(v, B, h, w, tile) : vae_decode_arena_bytes(v, B, h, w);
    /* a tiled plan holds a whole tile's decode plan, slack included */
    size_t slack = tile && (h > tile || w > tile) ? 2 * NN_ARENA_SLACK : NN_ARENA_SLACK;
    lmx_arena ar;
    float *z = randn((int64_t)B * h * w * c->latent_channels, 3);
    float *img = lmx_malloc(sizeof(float) * (size_t)B * h * f * w * f * c->out_channels);
    if (z && img && lmx_arena_init(&ar, plan) == LMX_OK) {
        nn_run run = make_run(&ar, B);
        lmx_status st = tile ? vae_decode_tiled(v, &run, z, B, h, w, tile, img) : vae_decode(v, &run, z, B, h, w, img);
        CHECK(st == LMX_OK, "%s: %s", what, lmx_errmsg());
        check_peak(what, &ar, plan, slack);
        lmx_arena_free(&ar);
    }
    lmx_free(z);
    lmx_free(img);
}

static void encode_case(const vae *v, int B, int H, int W) {
    const vae_config *c = vae_cfg(v);
    char what[96];
    snprintf(what, sizeof what, "vae encode B=%d %dx%d, %d LoRAs", B, H, W, g_nl);
    int h, w;
    vae_encode_out_hw(v, H, W, &h, &w);
    size_t plan = vae_encode_arena_bytes(v, B, H, W);
    lmx_arena ar;
    float *img = randn((int64_t)B * H * W * c->in_channels, 4);
    float *mom = lmx_malloc(sizeof(float) * (size_t)B * h * w * 2 * c->latent_channels);
    if (img && mom && lmx_arena_init(&ar, plan) == LMX_OK) {
        nn_run run = make_run(&ar, B);
        CHECK(vae_encode(v, &run, img, B, H, W, mom) == LMX_OK, "%s: %s", what, lmx_errmsg());
        check_peak(what, &ar, plan, NN_ARENA_SLACK);
        lmx_arena_free(&ar);
    }
    lmx_free(img);
    lmx_free(mom);
}

static void all_cases(const sd_model *m) {
    printf("%d LoRAs: planned unet B=2 8x8 %zu, text encoder B=2 L=77 %zu, vae decode 8x8 %zu bytes\n", g_nl,
           unet_arena_bytes_lora(m->unet, lora_state_rank(&g_ls, LORA_UNET), 2, 8, 8, 77),
           clip_text_arena_bytes_lora(m->text, lora_state_rank(&g_ls, LORA_TE), 2, 77),
           vae_decode_arena_bytes(m->vae, 1, 8, 8));
    static const int us[][4] = {{1, 8, 8, 77}, {2, 8, 8, 77}, {3, 9, 7, 77}, {1, 5, 11, 13},
                                {2, 16, 16, 77}, {1, 3, 3, 1}, {4, 12, 10, 77}, {2, 7, 9, 33}};
    for (size_t i = 0; i < LMX_ARRAY_LEN(us); i++) unet_case(m->unet, us[i][0], us[i][1], us[i][2], us[i][3]);
    static const int cs[][2] = {{1, 77}, {2, 77}, {3, 13}, {4, 1}, {1, 40}};
    for (size_t i = 0; i < LMX_ARRAY_LEN(cs); i++) clip_case(m->text, cs[i][0], cs[i][1]);
    static const int ds[][4] = {{1, 8, 8, 0}, {2, 6, 5, 0}, {3, 3, 7, 0}, {1, 1, 1, 0},
                                {1, 14, 10, 8}, {2, 17, 9, 8}, {1, 6, 6, 8}};
    for (size_t i = 0; i < LMX_ARRAY_LEN(ds); i++) decode_case(m->vae, ds[i][0], ds[i][1], ds[i][2], ds[i][3]);
    if (vae_has_encoder(m->vae)) {
        static const int es[][3] = {{1, 64, 48}, {2, 16, 16}, {1, 24, 40}, {3, 8, 8}};
        for (size_t i = 0; i < LMX_ARRAY_LEN(es); i++) encode_case(m->vae, es[i][0], es[i][1], es[i][2]);
    }
}

int main(void) {
    sd_model *m = NULL;
    sd_load_opts o = sd_load_opts_default();
    o.vae_encoder = 1;
    CHECK_OK(sd_model_load(&m, lmx_src_path("tests/fixtures/models/tiny-sd"), &o));
    CHECK_OK(op_ctx_create(&g_ctx));
    if (!m || !g_ctx) goto done;
    all_cases(m);
    /* with LoRAs attached: the side-path scratch joins every plan */
    static const char *files[] = {"tests/fixtures/lora/char_kohya.safetensors",
                                  "tests/fixtures/lora/object_kohya.safetensors"};
    lmx_lora *l[2] = {0};
    lora_opts lo = lora_opts_default();
    lo.quiet = 1;
    for (int i = 0; i < 2; i++) CHECK_OK(lora_load(&l[i], m, lmx_src_path(files[i]), &lo));
    if (l[0] && l[1]) {
        for (size_t i = 0; i < LMX_ARRAY_LEN(g_scale); i++) g_scale[i] = 0.75f;
        for (g_nl = 1; g_nl <= 2; g_nl++) {
            CHECK_OK(lora_attach(&g_ls, m, (const lmx_lora *const *)l, g_nl));
            all_cases(m);
            lora_detach(&g_ls);
        }
        g_nl = 0;
    }
    lora_state_free(&g_ls);
    for (int i = 0; i < 2; i++) lora_free(l[i]);
done:
    op_ctx_free(g_ctx);
    sd_model_free(m);
    return lmx_test_finish();
}
