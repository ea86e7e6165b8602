/*
 * test_model_load.c - model loading faults and loader coverage on the tiny
 * seeded model (tests/fixtures/models): every bad input is a clear error
 * that names the culprit, and nothing stays allocated.
 *
 *   - folder: missing component, missing config.json, pickle weights, the
 *     ".fp16.safetensors" variant naming, an SDXL pipeline, a wrong shape
 *   - single file: wrong shape (the message names the key and both shapes),
 *     missing tensor, truncated file, .ckpt (pickle), SDXL / SD2 files, a
 *     LoRA passed as a model, extra tensors (a warning), fp32 / bf16 copies,
 *     the older "cond_stage_model.transformer.*" text-encoder spelling,
 *     hyper-parameters inferred from shapes (no metadata)
 *   - --vae: bare encoder./decoder. keys (sd-vae-ft-mse style), "vae."
 *     prefix, a diffusers VAE file without config.json beside it
 *   - an allocation-failure sweep over the folder and single-file loads
 *     (every allocation up to 100, then every 151st; LMX_FAULT_FULL=1 for all)
 * Temporary files live in a mkdtemp folder that is removed at the end.
 */
#define _XOPEN_SOURCE 700
#include <ftw.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "model/keymap.h"
#include "model/sd_model.h"

#define FIX "tests/fixtures/models/"
#define GOLDEN FIX "golden_tiny_sd.safetensors"

/* ---- file helpers ---------------------------------------------------------------- */

typedef struct rw_opts {
    const char *(*rename)(const char *name, char *buf, size_t n); /* NULL keeps; returning NULL drops */
    int dtype;               /* -1 keeps the dtype, else ST_F32 / ST_BF16 */
    int keep_meta;
    const char *shrink;      /* halve dim 1 of this tensor (a wrong shape) */
    const char *add;         /* add a small [4] tensor with this name */
    const char *meta_key, *meta_val;
} rw_opts;

static int rewrite(const char *src, const char *dst, const rw_opts *o) {
    st_file *f = NULL;
    st_writer *w = NULL;
    int ok = 0;
    if (st_open(&f, lmx_src_path(src)) || st_writer_create(&w)) goto done;
    for (int i = 0; i < st_count(f); i++) {
        const st_tensor *t = st_at(f, i);
        char buf[512];
        const char *name = o->rename ? o->rename(t->name, buf, sizeof buf) : t->name;
        if (!name) continue;
        int64_t shape[ST_MAX_DIMS];
        memcpy(shape, t->shape, sizeof shape);
        if (o->shrink && strcmp(t->name, o->shrink) == 0) shape[1] /= 2;
        if (o->dtype < 0) {
            if (st_writer_add(w, name, t->dtype, t->ndim, shape, t->data)) goto done;
            continue;
        }
        float *x = NULL;
        if (st_to_f32_alloc(t, &x)) goto done;
        lmx_status st;
        if (o->dtype == ST_BF16) {
            uint16_t *h = lmx_malloc(2 * (size_t)t->numel + 2);
            for (int64_t j = 0; j < t->numel; j++) h[j] = lmx_f32_to_bf16(x[j]);
            st = st_writer_add(w, name, ST_BF16, t->ndim, shape, h);
            lmx_free(h);
        } else {
            st = st_writer_add(w, name, ST_F32, t->ndim, shape, x);
        }
        lmx_free(x);
        if (st) goto done;
    }
    if (o->add) {
        float v[4] = {1, 2, 3, 4};
        int64_t s = 4;
        if (st_writer_add(w, o->add, ST_F32, 1, &s, v)) goto done;
    }
    if (o->keep_meta)
        for (int i = 0; i < st_meta_count(f); i++) {
            const char *k, *v;
            st_meta_at(f, i, &k, &v);
            if (o->meta_key && strcmp(k, o->meta_key) == 0) continue;
            if (st_writer_meta(w, k, v)) goto done;
        }
    if (o->meta_key && st_writer_meta(w, o->meta_key, o->meta_val)) goto done;
    ok = st_writer_finish(w, dst) == LMX_OK;
done:
    if (!ok) fprintf(stderr, "rewrite %s -> %s: %s\n", src, dst, lmx_errmsg());
    st_writer_free(w);
    st_close(f);
    return ok;
}

static void write_bytes(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    if (f) {
        fwrite(p, 1, n, f);
        fclose(f);
    }
}

static void link_fix(const char *fix_rel, const char *tmp_rel) {
    char src[600];
    snprintf(src, sizeof src, "%s", lmx_src_path(fix_rel));
    if (symlink(src, lmx_test_tmp(tmp_rel)) != 0) fprintf(stderr, "symlink %s: failed\n", tmp_rel);
}

/* A folder with model_index.json and the given fixture components linked in. */
static void make_folder(const char *name, int with_unet, int with_text, int with_vae, int with_tok) {
    char p[256];
    mkdir(lmx_test_tmp(name), 0755);
    snprintf(p, sizeof p, "%s/model_index.json", name);
    link_fix(FIX "tiny-sd/model_index.json", p);
    if (with_unet) link_fix(FIX "tiny-sd/unet", (snprintf(p, sizeof p, "%s/unet", name), p));
    if (with_text) link_fix(FIX "tiny-sd/text_encoder", (snprintf(p, sizeof p, "%s/text_encoder", name), p));
    if (with_vae) link_fix(FIX "tiny-sd/vae", (snprintf(p, sizeof p, "%s/vae", name), p));
    if (with_tok) link_fix(FIX "tiny-sd/tokenizer", (snprintf(p, sizeof p, "%s/tokenizer", name), p));
}

/* Load must fail with `want` and a message holding every needle. */
static int g_ignore_meta;

static void expect_fail(const char *what, const char *path, const char *vae_path, lmx_status want, const char *n1,
                        const char *n2) {
    sd_model *m = NULL;
    sd_load_opts o = sd_load_opts_default();
    o.vae_path = vae_path;
    o.ignore_file_config = g_ignore_meta;
    lmx_status st = sd_model_load(&m, path, &o);
    CHECK(st == want, "%s: status %s, expected %s (%s)", what, lmx_status_name(st), lmx_status_name(want), lmx_errmsg());
    CHECK(m == NULL, "%s: model returned on failure", what);
    CHECK(!n1 || strstr(lmx_errmsg(), n1), "%s: message lacks '%s': %s", what, n1, lmx_errmsg());
    CHECK(!n2 || strstr(lmx_errmsg(), n2), "%s: message lacks '%s': %s", what, n2, lmx_errmsg());
    if (lmx_test_verbose()) printf("ok   %s: %s\n", what, lmx_errmsg());
    sd_model_free(m);
}

/* ---- warnings capture ----------------------------------------------------------------- */

static char g_warn[2048];
static void warn_cb(lmx_log_level lv, const char *msg, void *u) {
    (void)u;
    if (lv <= LMX_LOG_WARN) snprintf(g_warn + strlen(g_warn), sizeof g_warn - strlen(g_warn), "%s\n", msg);
}

/* ---- numeric spot checks ---------------------------------------------------------------- */

static void check_text(const char *what, sd_model *m, st_file *g, double tol) {
    op_ctx *ctx = NULL;
    lmx_arena ar = {0};
    int64_t n = 0, *ids = lmx_golden_i64(g, "tokens.ids", NULL);
    float *ref = lmx_golden_f32(g, "text.last_hidden_state", &n), *out = lmx_malloc(sizeof(float) * (size_t)n);
    CHECK_OK(op_ctx_create(&ctx));
    CHECK_OK(lmx_arena_init(&ar, clip_text_arena_bytes(m->text, 4, 77)));
    nn_run run = {.ctx = ctx, .arena = &ar};
    if (ids && ref) {
        CHECK_OK(clip_text_forward(m->text, &run, ids, 4, 77, 0, out));
        lmx_cmp_f32(what, out, ref, n, tol, 0);
    }
    lmx_free(ids);
    lmx_free(ref);
    lmx_free(out);
    lmx_arena_free(&ar);
    op_ctx_free(ctx);
}

static void check_decode(const char *what, const vae *v, st_file *g, double tol) {
    op_ctx *ctx = NULL;
    lmx_arena ar = {0};
    int64_t n = 0;
    float *z = lmx_golden_f32(g, "vae.z_8x8", NULL), *ref = lmx_golden_f32(g, "vae.decode_8x8", &n);
    float *out = lmx_malloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
    CHECK_OK(op_ctx_create(&ctx));
    CHECK_OK(lmx_arena_init(&ar, vae_decode_arena_bytes(v, 1, 8, 8)));
    nn_run run = {.ctx = ctx, .arena = &ar};
    if (z && ref) {
        CHECK_OK(vae_decode(v, &run, z, 1, 8, 8, out));
        double ma, mr;
        lmx_err_stats(out, ref, n, &ma, &mr);
        lmx_cmp_f32(what, out, ref, n, tol * mr, 0);
    }
    lmx_free(z);
    lmx_free(ref);
    lmx_free(out);
    lmx_arena_free(&ar);
    op_ctx_free(ctx);
}

/* ---- renames ------------------------------------------------------------------------------ */

static const char *old_text(const char *name, char *buf, size_t n) {
    static const char pre[] = "cond_stage_model.transformer.text_model.";
    if (strncmp(name, pre, sizeof pre - 1) != 0) return name;
    snprintf(buf, n, "cond_stage_model.transformer.%s", name + sizeof pre - 1);
    return buf;
}

static const char *bare_vae(const char *name, char *buf, size_t n) {
    static const char pre[] = "first_stage_model.";
    if (strncmp(name, pre, sizeof pre - 1) != 0) return NULL;
    snprintf(buf, n, "%s", name + sizeof pre - 1);
    return buf;
}

static const char *vae_dot(const char *name, char *buf, size_t n) {
    static const char pre[] = "first_stage_model.";
    if (strncmp(name, pre, sizeof pre - 1) != 0) return NULL;
    snprintf(buf, n, "vae.%s", name + sizeof pre - 1);
    return buf;
}

static const char *drop_upsampler_bias(const char *name, char *buf, size_t n) {
    (void)buf, (void)n;
    return strcmp(name, "model.diffusion_model.output_blocks.2.1.conv.bias") == 0 ? NULL : name;
}

/* ---- cases ------------------------------------------------------------------------------------ */

static const char *drop_mid(const char *name, char *buf, size_t n) {
    (void)buf, (void)n;
    return strncmp(name, "mid_block.", 10) == 0 ? NULL : name;
}

static void test_folders(void) {
    make_folder("nounet", 0, 1, 1, 1);
    expect_fail("missing unet/", lmx_test_tmp("nounet"), NULL, LMX_ERR_IO, "nounet/unet: missing", NULL);

    make_folder("nocfg", 0, 1, 1, 1);
    mkdir(lmx_test_tmp("nocfg/unet"), 0755);
    link_fix(FIX "tiny-sd/unet/diffusion_pytorch_model.safetensors", "nocfg/unet/diffusion_pytorch_model.safetensors");
    expect_fail("missing unet/config.json", lmx_test_tmp("nocfg"), NULL, LMX_ERR_IO, "unet/config.json: missing", NULL);

    make_folder("pkl", 0, 1, 1, 1);
    mkdir(lmx_test_tmp("pkl/unet"), 0755);
    link_fix(FIX "tiny-sd/unet/config.json", "pkl/unet/config.json");
    write_bytes(lmx_test_tmp("pkl/unet/diffusion_pytorch_model.bin"), "PK\x03\x04zzzzzzzz", 12);
    expect_fail("pickle unet weights", lmx_test_tmp("pkl"), NULL, LMX_ERR_UNSUPPORTED, "pickle", "safetensors");

    make_folder("noweights", 0, 1, 1, 1);
    mkdir(lmx_test_tmp("noweights/unet"), 0755);
    link_fix(FIX "tiny-sd/unet/config.json", "noweights/unet/config.json");
    expect_fail("no unet weights", lmx_test_tmp("noweights"), NULL, LMX_ERR_IO, "no *.safetensors", NULL);

    /* only the .fp16.safetensors variant exists, no tokenizer/ (a warning) */
    make_folder("variant", 0, 1, 1, 0);
    mkdir(lmx_test_tmp("variant/unet"), 0755);
    link_fix(FIX "tiny-sd/unet/config.json", "variant/unet/config.json");
    link_fix(FIX "tiny-sd/unet/diffusion_pytorch_model.safetensors", "variant/unet/diffusion_pytorch_model.fp16.safetensors");
    sd_model *m = NULL;
    CHECK_OK(sd_model_load(&m, lmx_test_tmp("variant"), NULL));
    CHECK(m && m->tokenizer_dir == NULL, "tokenizer dir without tokenizer/");
    CHECK(m && m->scheduler_config == NULL, "scheduler config without scheduler/");
    sd_model_free(m);

    /* the fixture folder itself: tokenizer and scheduler paths */
    m = NULL;
    CHECK_OK(sd_model_load(&m, lmx_src_path(FIX "tiny-sd"), NULL));
    CHECK(m && m->tokenizer_dir && strstr(m->tokenizer_dir, "tiny-sd/tokenizer"), "tokenizer dir");
    CHECK(m && m->scheduler_config && strstr(m->scheduler_config, "PNDMScheduler"), "scheduler config text");
    CHECK(m && !m->single_file, "folder flagged as single file");
    if (m) {
        /* the layer registry holds the diffusers module paths LoRA keys are matched against */
        const nn_layers *ul = unet_layers(m->unet), *tl = clip_text_layers(m->text);
        CHECK(nn_layers_find(ul, "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q") != NULL, "to_q");
        CHECK(nn_layers_find(ul, "up_blocks.2.attentions.1.proj_out") != NULL, "proj_out");
        CHECK(nn_layers_find(ul, "mid_block.attentions.0.transformer_blocks.0.ff.net.0.proj") != NULL, "ff");
        CHECK(nn_layers_find(tl, "text_model.encoder.layers.1.self_attn.out_proj") != NULL, "out_proj");
        CHECK(nn_layers_find(tl, "text_model.encoder.layers.0.mlp.fc2") != NULL, "fc2");
        nn_layer *l = nn_layers_find(ul, "down_blocks.1.resnets.0.conv1");
        CHECK(l && l->kind == NN_CONV2D && l->kh == 3 && l->n_in == 32 && l->w_src, "conv1 layer info");
        if (l && l->w_src) { /* LoRA merging re-reads W from the mapped file */
            int64_t n = l->n_out * l->n_in * 9;
            float *w = lmx_malloc(sizeof(float) * (size_t)n), *r = NULL;
            CHECK_OK(nn_layer_weight_f32(l, w));
            CHECK_OK(st_to_f32_alloc(l->w_src, &r));
            if (w && r) lmx_cmp_f32("nn_layer_weight_f32", w, r, n, 0, 0);
            lmx_free(w);
            lmx_free(r);
        }
    }
    sd_model_free(m);

    /* SDXL pipeline */
    mkdir(lmx_test_tmp("sdxl"), 0755);
    const char *idx = "{\"_class_name\": \"StableDiffusionXLPipeline\", \"text_encoder_2\": [\"transformers\", \"X\"]}";
    write_bytes(lmx_test_tmp("sdxl/model_index.json"), idx, strlen(idx));
    expect_fail("SDXL folder", lmx_test_tmp("sdxl"), NULL, LMX_ERR_UNSUPPORTED, "SDXL", NULL);

    /* no model_index.json */
    mkdir(lmx_test_tmp("empty"), 0755);
    expect_fail("empty folder", lmx_test_tmp("empty"), NULL, LMX_ERR_IO, "model_index.json", NULL);
    expect_fail("no such path", lmx_test_tmp("nothing-here"), NULL, LMX_ERR_IO, "no such file", NULL);

    /* wrong shape in a folder's UNet */
    make_folder("badshape", 0, 1, 1, 1);
    mkdir(lmx_test_tmp("badshape/unet"), 0755);
    link_fix(FIX "tiny-sd/unet/config.json", "badshape/unet/config.json");
    rw_opts o = {.dtype = -1, .keep_meta = 1, .shrink = "down_blocks.0.resnets.0.conv1.weight"};
    if (rewrite(FIX "tiny-sd/unet/diffusion_pytorch_model.safetensors",
                lmx_test_tmp("badshape/unet/diffusion_pytorch_model.safetensors"), &o))
        expect_fail("folder wrong shape", lmx_test_tmp("badshape"), NULL, LMX_ERR_SHAPE,
                    "unet.down_blocks.0.resnets.0.conv1.weight: expected [32, 32, 3, 3], got [32, 16, 3, 3]", NULL);

    /* A UNet without a mid block names that config, not a missing tensor:
     * config.json says "mid_block_type": null, or the mid_block.* tensors
     * are gone. */
    make_folder("nomidcfg", 0, 1, 1, 1);
    mkdir(lmx_test_tmp("nomidcfg/unet"), 0755);
    link_fix(FIX "tiny-sd/unet/diffusion_pytorch_model.safetensors", "nomidcfg/unet/diffusion_pytorch_model.safetensors");
    {
        char *cfg = NULL;
        size_t n = 0;
        if (lmx_read_file(lmx_src_path(FIX "tiny-sd/unet/config.json"), &cfg, &n, 1 << 20) == LMX_OK) {
            char *brace = strchr(cfg, '{');
            FILE *f = fopen(lmx_test_tmp("nomidcfg/unet/config.json"), "wb");
            if (f && brace) {
                fprintf(f, "{\"mid_block_type\": null, %s", brace + 1);
                fclose(f);
            }
            lmx_free(cfg);
        }
    }
    expect_fail("mid_block_type null", lmx_test_tmp("nomidcfg"), NULL, LMX_ERR_UNSUPPORTED, "without a mid block",
                "mid_block_type\": null");
    make_folder("nomid", 0, 1, 1, 1);
    mkdir(lmx_test_tmp("nomid/unet"), 0755);
    link_fix(FIX "tiny-sd/unet/config.json", "nomid/unet/config.json");
    rw_opts om = {.dtype = -1, .keep_meta = 1, .rename = drop_mid};
    if (rewrite(FIX "tiny-sd/unet/diffusion_pytorch_model.safetensors",
                lmx_test_tmp("nomid/unet/diffusion_pytorch_model.safetensors"), &om))
        expect_fail("no mid_block tensors", lmx_test_tmp("nomid"), NULL, LMX_ERR_UNSUPPORTED, "without a mid block",
                    "no mid_block.* tensors");
}

static void test_single_files(st_file *g) {
    const char *single = FIX "tiny-sd.safetensors";
    rw_opts o = {.dtype = -1, .keep_meta = 1};

    o.shrink = "model.diffusion_model.input_blocks.1.0.in_layers.2.weight";
    if (rewrite(single, lmx_test_tmp("shape.safetensors"), &o))
        expect_fail("wrong shape", lmx_test_tmp("shape.safetensors"), NULL, LMX_ERR_SHAPE,
                    "unet.down_blocks.0.resnets.0.conv1.weight: expected [32, 32, 3, 3], got [32, 16, 3, 3]",
                    "model.diffusion_model.input_blocks.1.0.in_layers.2.weight");
    o.shrink = "first_stage_model.decoder.mid.attn_1.q.weight";
    if (rewrite(single, lmx_test_tmp("shape2.safetensors"), &o))
        expect_fail("wrong VAE attention shape", lmx_test_tmp("shape2.safetensors"), NULL, LMX_ERR_SHAPE,
                    "vae.decoder.mid_block.attentions.0.to_q.weight: expected [32, 32], got [32, 16, 1, 1]", NULL);
    o.shrink = NULL;

    o.rename = drop_upsampler_bias;
    if (rewrite(single, lmx_test_tmp("missing.safetensors"), &o))
        expect_fail("missing tensor", lmx_test_tmp("missing.safetensors"), NULL, LMX_ERR_SHAPE,
                    "unet.up_blocks.0.upsamplers.0.conv.bias: missing", "output_blocks.2.1.conv.bias");
    o.rename = NULL;

    /* truncated copies */
    char *buf = NULL;
    size_t n = 0;
    CHECK_OK(lmx_read_file(lmx_src_path(single), &buf, &n, 64u << 20));
    if (buf) {
        write_bytes(lmx_test_tmp("trunc.safetensors"), buf, n * 6 / 10);
        expect_fail("truncated file", lmx_test_tmp("trunc.safetensors"), NULL, LMX_ERR_FORMAT, "trunc.safetensors", NULL);
        write_bytes(lmx_test_tmp("trunc2.safetensors"), buf, 100);
        expect_fail("truncated header", lmx_test_tmp("trunc2.safetensors"), NULL, LMX_ERR_FORMAT, "trunc2.safetensors", NULL);
        /* a safetensors file named .ckpt is still loaded */
        write_bytes(lmx_test_tmp("named.ckpt"), buf, n);
        sd_model *m = NULL;
        CHECK_OK(sd_model_load(&m, lmx_test_tmp("named.ckpt"), NULL));
        sd_model_free(m);
    }
    lmx_free(buf);

    /* pickle */
    write_bytes(lmx_test_tmp("model.ckpt"), "PK\x03\x04........", 12);
    expect_fail(".ckpt", lmx_test_tmp("model.ckpt"), NULL, LMX_ERR_UNSUPPORTED, "pickle", "safetensors");
    write_bytes(lmx_test_tmp("model.pt"), "\x80\x02}q\x00.", 6);
    expect_fail(".pt", lmx_test_tmp("model.pt"), NULL, LMX_ERR_UNSUPPORTED, "pickle", NULL);
    expect_fail("--vae .pt", lmx_src_path(single), lmx_test_tmp("model.pt"), LMX_ERR_UNSUPPORTED, "--vae: ", "pickle");

    /* other architectures */
    o.add = "conditioner.embedders.0.transformer.text_model.embeddings.position_ids";
    if (rewrite(single, lmx_test_tmp("sdxl.safetensors"), &o))
        expect_fail("SDXL file", lmx_test_tmp("sdxl.safetensors"), NULL, LMX_ERR_UNSUPPORTED, "SDXL", NULL);
    o.add = "cond_stage_model.model.positional_embedding";
    if (rewrite(single, lmx_test_tmp("sd2.safetensors"), &o))
        expect_fail("SD2 file", lmx_test_tmp("sd2.safetensors"), NULL, LMX_ERR_UNSUPPORTED, "SD2", NULL);
    o.add = NULL;
    st_file *f = NULL;
    CHECK_OK(st_open(&f, lmx_src_path(single)));
    const char *ucfg = f ? st_meta_get(f, "loramix.unet_config") : NULL;
    if (ucfg) {
        char j[8192];
        const char *key = "\"cross_attention_dim\": 16";
        const char *p = strstr(ucfg, key);
        CHECK(p != NULL, "cross_attention_dim in metadata");
        if (p) snprintf(j, sizeof j, "%.*s\"cross_attention_dim\": 1024%s", (int)(p - ucfg), ucfg, p + strlen(key));
        o.meta_key = "loramix.unet_config";
        o.meta_val = j;
        if (p && rewrite(single, lmx_test_tmp("sd2meta.safetensors"), &o))
            expect_fail("SD2 by width", lmx_test_tmp("sd2meta.safetensors"), NULL, LMX_ERR_UNSUPPORTED, "SD2", "1024");
        o.meta_key = o.meta_val = NULL;
    }
    st_close(f);

    /* a LoRA is not a model */
    {
        st_writer *w = NULL;
        float a[2 * 32] = {0}, b[32 * 2] = {0};
        int64_t sa[2] = {2, 32}, sb[2] = {32, 2};
        CHECK_OK(st_writer_create(&w));
        st_writer_add(w, "lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight", ST_F32, 2, sa, a);
        st_writer_add(w, "lora_unet_down_blocks_0_attentions_0_proj_in.lora_up.weight", ST_F32, 2, sb, b);
        CHECK_OK(st_writer_finish(w, lmx_test_tmp("lora.safetensors")));
        st_writer_free(w);
        expect_fail("LoRA as model", lmx_test_tmp("lora.safetensors"), NULL, LMX_ERR_FORMAT, "LoRA", NULL);
    }

    /* extra tensors: loaded, with a warning naming them */
    o.add = "model.diffusion_model.extra_thing.weight";
    if (rewrite(single, lmx_test_tmp("extra.safetensors"), &o)) {
        sd_model *m = NULL;
        g_warn[0] = 0;
        lmx_log_set(LMX_LOG_WARN, warn_cb, NULL);
        CHECK_OK(sd_model_load(&m, lmx_test_tmp("extra.safetensors"), NULL));
        lmx_log_set(LMX_LOG_ERROR, NULL, NULL);
        CHECK(strstr(g_warn, "unet: 1 unexpected tensor ignored") && strstr(g_warn, "extra_thing"),
              "extra tensor warning: %s", g_warn);
        sd_model_free(m);
    }
    o.add = NULL;

    /* fp32 and bf16 copies */
    o.dtype = ST_F32;
    if (rewrite(single, lmx_test_tmp("fp32.safetensors"), &o)) {
        sd_model *m = NULL;
        CHECK_OK(sd_model_load(&m, lmx_test_tmp("fp32.safetensors"), NULL));
        if (m) check_text("fp32 single file: text", m, g, 1e-4);
        if (m) check_decode("fp32 single file: decode", m->vae, g, 1e-3);
        sd_model_free(m);
    }
    o.dtype = ST_BF16;
    if (rewrite(single, lmx_test_tmp("bf16.safetensors"), &o)) {
        sd_model *m = NULL;
        CHECK_OK(sd_model_load(&m, lmx_test_tmp("bf16.safetensors"), NULL));
        if (m) check_decode("bf16 single file: decode (loose)", m->vae, g, 0.2);
        sd_model_free(m);
    }
    o.dtype = -1;

    /* older text-encoder spelling */
    o.rename = old_text;
    if (rewrite(single, lmx_test_tmp("oldtext.safetensors"), &o)) {
        sd_model *m = NULL;
        CHECK_OK(sd_model_load(&m, lmx_test_tmp("oldtext.safetensors"), NULL));
        if (m) check_text("cond_stage_model.transformer.* spelling", m, g, 1e-4);
        sd_model_free(m);
    }

    /* --vae with bare encoder./decoder. keys, and with a "vae." prefix */
    o.rename = bare_vae;
    if (rewrite(single, lmx_test_tmp("bare_vae.safetensors"), &o)) {
        sd_model *m = NULL;
        CHECK_OK(sd_model_load(&m, lmx_src_path(FIX "tiny-sd"), &(sd_load_opts){.vae_path = lmx_test_tmp("bare_vae.safetensors"),
                                                                              .vae_encoder = 1}));
        if (m) check_decode("--vae bare LDM keys", m->vae, g, 1e-3);
        CHECK(m && vae_has_encoder(m->vae), "bare VAE encoder");
        sd_model_free(m);
    }
    o.rename = vae_dot;
    if (rewrite(single, lmx_test_tmp("dot_vae.safetensors"), &o)) {
        sd_model *m = NULL;
        CHECK_OK(sd_model_load(&m, lmx_src_path(single), &(sd_load_opts){.vae_path = lmx_test_tmp("dot_vae.safetensors")}));
        if (m) check_decode("--vae vae.* keys", m->vae, g, 1e-3);
        CHECK(m && !vae_has_encoder(m->vae), "encoder loaded though vae_encoder = 0");
        sd_model_free(m);
    }
    o.rename = NULL;

    /* a diffusers VAE file without a config.json beside it */
    o.keep_meta = 0;
    if (rewrite(FIX "tiny-sd/vae/diffusion_pytorch_model.safetensors", lmx_test_tmp("lonely.safetensors"), &o))
        expect_fail("--vae diffusers file without config", lmx_src_path(single), lmx_test_tmp("lonely.safetensors"), LMX_ERR_IO,
                    "config.json beside them", NULL);
    o.keep_meta = 1;
    expect_fail("--vae missing", lmx_src_path(single), lmx_test_tmp("nothing.safetensors"), LMX_ERR_IO, "--vae: ", NULL);
}

/* Hyper-parameters from shapes, against the folder's configs. */
static void test_inference(void) {
    st_file *f = NULL;
    char *uj = NULL, *vj = NULL, *tj = NULL;
    CHECK_OK(st_open(&f, lmx_src_path(FIX "tiny-sd.safetensors")));
    CHECK_OK(lmx_read_file(lmx_src_path(FIX "tiny-sd/unet/config.json"), &uj, NULL, 1 << 20));
    CHECK_OK(lmx_read_file(lmx_src_path(FIX "tiny-sd/vae/config.json"), &vj, NULL, 1 << 20));
    CHECK_OK(lmx_read_file(lmx_src_path(FIX "tiny-sd/text_encoder/config.json"), &tj, NULL, 1 << 20));
    if (!f || !uj || !vj || !tj) goto done;
    unet_config a, b;
    CHECK_OK(unet_config_parse(&a, uj, "unet/config.json"));
    CHECK_OK(unet_config_infer_ldm(&b, f, "model.diffusion_model."));
    CHECK(a.n_levels == b.n_levels && a.layers_per_block == b.layers_per_block && a.cross_dim == b.cross_dim &&
              a.in_channels == b.in_channels && a.out_channels == b.out_channels && a.linear_proj == b.linear_proj,
          "inferred UNet config differs");
    for (int i = 0; i < a.n_levels; i++)
        CHECK(a.ch[i] == b.ch[i] && a.down_attn[i] == b.down_attn[i] && a.up_attn[i] == b.up_attn[i] &&
                  a.tlayers[i] == b.tlayers[i],
              "inferred UNet level %d differs", i);
    CHECK(b.heads[0] == 8 && b.groups == 32, "SD1 defaults for what shapes cannot tell");
    vae_config va, vb;
    CHECK_OK(vae_config_parse(&va, vj, "vae/config.json"));
    CHECK_OK(vae_config_infer_ldm(&vb, f, "first_stage_model."));
    CHECK(va.n_levels == vb.n_levels && va.layers_per_block == vb.layers_per_block &&
              va.latent_channels == vb.latent_channels && va.in_channels == vb.in_channels &&
              va.out_channels == vb.out_channels && vb.use_quant_conv && vb.use_post_quant_conv && vb.mid_attn,
          "inferred VAE config differs");
    for (int i = 0; i < va.n_levels; i++) CHECK(va.ch[i] == vb.ch[i], "VAE level %d", i);
    clip_text_config ta, tb;
    CHECK_OK(clip_text_config_parse(&ta, tj, "text_encoder/config.json"));
    CHECK(ta.hidden == 16 && ta.heads == 2 && ta.layers == 2 && ta.act == CLIP_ACT_QUICK_GELU, "text config");
    /* hidden 16 gives no head count: a clear error asking for the metadata */
    lmx_status st = clip_text_config_infer(&tb, f, "cond_stage_model.transformer.text_model.");
    CHECK(st == LMX_ERR_UNSUPPORTED && strstr(lmx_errmsg(), "loramix.text_config"), "text inference: %s", lmx_errmsg());
    g_ignore_meta = 1;
    expect_fail("single file without metadata", lmx_src_path(FIX "tiny-sd.safetensors"), NULL, LMX_ERR_UNSUPPORTED,
                "loramix.text_config", NULL);
    g_ignore_meta = 0;
    /* config parse errors name the key */
    CHECK(unet_config_parse(&a, "{\"addition_embed_type\": \"text_time\"}", "u.json") == LMX_ERR_UNSUPPORTED &&
              strstr(lmx_errmsg(), "addition_embed_type"),
          "SDXL config: %s", lmx_errmsg());
    CHECK(unet_config_parse(&a, "{\"down_block_types\": [\"SimpleCrossAttnDownBlock2D\"]}", "u.json") ==
              LMX_ERR_UNSUPPORTED,
          "block type: %s", lmx_errmsg());
    CHECK(unet_config_parse(&a, "{\"layers_per_block\": \"two\"}", "u.json") == LMX_ERR_FORMAT, "type error");
    CHECK(unet_config_parse(&a, "not json", "u.json") == LMX_ERR_FORMAT, "bad json");
    CHECK(vae_config_parse(&va, "{\"shift_factor\": 0.1159}", "v.json") == LMX_ERR_UNSUPPORTED, "shift_factor");
    CHECK(clip_text_config_parse(&ta, "{\"hidden_act\": \"relu\"}", "t.json") == LMX_ERR_UNSUPPORTED, "act");
    /* key maps: a few fixed points of the LDM layout (SD1.5: 2 layers, 4 levels) */
    unet_config sd = unet_config_sd15();
    keymap km = {0};
    char out[256];
    CHECK_OK(km_build_unet_ldm(&km, &sd));
    static const char *pairs[][2] = {
        {"down_blocks.0.resnets.0.conv1.weight", "input_blocks.1.0.in_layers.2.weight"},
        {"down_blocks.1.attentions.1.proj_in.weight", "input_blocks.5.1.proj_in.weight"},
        {"down_blocks.2.downsamplers.0.conv.bias", "input_blocks.9.0.op.bias"},
        {"down_blocks.3.resnets.1.time_emb_proj.weight", "input_blocks.11.0.emb_layers.1.weight"},
        {"mid_block.resnets.1.norm2.bias", "middle_block.2.out_layers.0.bias"},
        {"up_blocks.0.upsamplers.0.conv.weight", "output_blocks.2.1.conv.weight"},
        {"up_blocks.1.upsamplers.0.conv.weight", "output_blocks.5.2.conv.weight"},
        {"up_blocks.3.resnets.2.conv_shortcut.weight", "output_blocks.11.0.skip_connection.weight"},
        {"up_blocks.3.attentions.2.transformer_blocks.0.attn2.to_k.weight",
         "output_blocks.11.1.transformer_blocks.0.attn2.to_k.weight"},
        {"time_embedding.linear_2.bias", "time_embed.2.bias"},
        {"conv_norm_out.weight", "out.0.weight"},
    };
    for (size_t i = 0; i < LMX_ARRAY_LEN(pairs); i++) {
        CHECK(km_map(&km, pairs[i][0], out, sizeof out) == 0 && strcmp(out, pairs[i][1]) == 0, "%s -> %s (want %s)",
              pairs[i][0], out, pairs[i][1]);
    }
    km_free(&km);
    vae_config vs = vae_config_sd15();
    CHECK_OK(km_build_vae_ldm(&km, &vs));
    static const char *vpairs[][2] = {
        {"decoder.up_blocks.0.resnets.2.conv1.weight", "decoder.up.3.block.2.conv1.weight"},
        {"decoder.up_blocks.2.resnets.0.conv_shortcut.bias", "decoder.up.1.block.0.nin_shortcut.bias"},
        {"decoder.up_blocks.1.upsamplers.0.conv.weight", "decoder.up.2.upsample.conv.weight"},
        {"encoder.mid_block.attentions.0.to_out.0.weight", "encoder.mid.attn_1.proj_out.weight"},
        {"decoder.mid_block.attentions.0.group_norm.bias", "decoder.mid.attn_1.norm.bias"},
        {"encoder.conv_norm_out.weight", "encoder.norm_out.weight"},
        {"post_quant_conv.weight", "post_quant_conv.weight"},
    };
    for (size_t i = 0; i < LMX_ARRAY_LEN(vpairs); i++)
        CHECK(km_map(&km, vpairs[i][0], out, sizeof out) == 0 && strcmp(out, vpairs[i][1]) == 0, "%s -> %s (want %s)",
              vpairs[i][0], out, vpairs[i][1]);
    km_free(&km);
    CHECK(km_alias("decoder.mid_block.attentions.0.to_out.0.bias", out, sizeof out) &&
              strcmp(out, "decoder.mid_block.attentions.0.proj_attn.bias") == 0,
          "alias %s", out);
done:
    lmx_free(uj);
    lmx_free(vj);
    lmx_free(tj);
    st_close(f);
}

/* Every allocation up to 100, then every 151st (all with LMX_FAULT_FULL=1). */
static void sweep(const char *what, const char *path) {
    const char *full = getenv("LMX_FAULT_FULL");
    int all = full && *full == '1';
    long n_fail = 0;
    for (long k = 1;; k = (all || k < 100) ? k + 1 : k + 151) {
        sd_model *m = NULL;
        lmx_fault_set_fail_at(k);
        lmx_status st = sd_model_load(&m, path, NULL);
        long used = lmx_fault_alloc_count();
        lmx_fault_set_fail_at(0);
        if (st == LMX_OK) {
            CHECK(m != NULL, "%s: ok without a model", what);
            sd_model_free(m);
            if (k > used) break; /* past the last allocation: all covered */
            continue;
        }
        n_fail++;
        CHECK(m == NULL, "%s: model returned after failing allocation %ld", what, k);
        CHECK(st == LMX_ERR_NOMEM || st == LMX_ERR_BACKEND || st == LMX_ERR_IO || st == LMX_ERR_FORMAT,
              "%s: allocation %ld: unexpected status %s: %s", what, k, lmx_status_name(st), lmx_errmsg());
        if (k > 1000000) break;
    }
    printf("%s: %ld failing loads, all clean\n", what, n_fail);
}

int main(void) {
    double t0 = lmx_now();
    if (!lmx_test_tmpdir(NULL, "model_load")) return lmx_test_finish();
    st_file *g = lmx_golden_open(lmx_src_path(GOLDEN));
    lmx_log_set(LMX_LOG_ERROR, NULL, NULL); /* keep the expected warnings quiet */
    test_folders();
    test_single_files(g);
    test_inference();
    sweep("alloc sweep, folder", lmx_src_path(FIX "tiny-sd"));
    sweep("alloc sweep, single file", lmx_src_path(FIX "tiny-sd.safetensors"));
    st_close(g);
    lmx_test_tmpdir_remove();
    printf("time %.2f s\n", lmx_now() - t0);
    return lmx_test_finish();
}
