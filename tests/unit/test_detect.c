/*
 * test_detect.c - classification of model and LoRA files and folders
 * (src/io/detect.c): each convention (LDM checkpoints of SD1/SD2/SDXL,
 * inpainting, diffusers components, kohya LoRAs in both UNet key dialects,
 * PEFT / old diffusers LoRAs, LyCORIS, DoRA), rank / alpha / conv
 * statistics, metadata fallbacks, pickle sniffing and diffusers folders.
 * Files are written at test time with st_writer; tensors whose data does
 * not matter are zero-size (a 0 in the first dimension) so the files stay
 * tiny while the widths detection reads (dimension 1) are real.
 */
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "io/detect.h"

static char g_dir[512];

static const char *tmp_path(const char *name) {
    static char buf[8][640];
    static int k = 0;
    k = (k + 1) & 7;
    snprintf(buf[k], sizeof buf[k], "%s/%s", g_dir, name);
    return buf[k];
}

typedef struct spec {
    const char *name;
    int ndim;
    int64_t shape[4];
    float value; /* for scalars (alpha) */
} spec;

/* Write specs (F16 data of zeros, or `value` for scalars) to path. */
static int write_specs(const char *path, const spec *s, int n, const char *meta_key,
                       const char *meta_val) {
    st_writer *w = NULL;
    if (st_writer_create(&w) != LMX_OK) return 0;
    static uint16_t zeros[1 << 16];
    int ok = 1;
    for (int i = 0; i < n && ok; i++) {
        int64_t numel = 1;
        for (int d = 0; d < s[i].ndim; d++) numel *= s[i].shape[d];
        uint16_t v = lmx_f32_to_f16(s[i].value);
        if (numel > (int64_t)LMX_ARRAY_LEN(zeros)) ok = 0;
        else ok = st_writer_add(w, s[i].name, ST_F16, s[i].ndim, s[i].shape,
                                s[i].ndim == 0 ? (const void *)&v : zeros) == LMX_OK;
    }
    if (ok && meta_key) ok = st_writer_meta(w, meta_key, meta_val) == LMX_OK;
    if (ok) ok = st_writer_finish(w, path) == LMX_OK;
    st_writer_free(w);
    if (!ok) fprintf(stderr, "write_specs %s: %s\n", path, lmx_errmsg());
    return ok;
}

/* Classify specs written to a temporary file. */
static det_info classify(const spec *s, int n, const char *meta_key, const char *meta_val,
                         const char *cls) {
    det_info d;
    memset(&d, 0, sizeof d);
    const char *path = tmp_path("x.safetensors");
    if (!write_specs(path, s, n, meta_key, meta_val)) {
        CHECK(0, "cannot write test file");
        return d;
    }
    st_file *f = NULL;
    CHECK_OK(st_open(&f, path));
    if (f) det_classify(f, cls, &d);
    st_close(f);
    if (lmx_test_verbose()) printf("  %-16s %s\n", det_kind_name(d.kind), d.summary);
    return d;
}

#define N(a) ((int)LMX_ARRAY_LEN(a))
#define S0 0, {0}, 0
#define S2(a, b) 2, {a, b, 0, 0}, 0
#define S4(a, b, c, d) 4, {a, b, c, d}, 0
#define ALPHA(v) 0, {0}, v

static void test_kohya(void) {
    const spec sd15[] = {
        {"lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k.lora_down.weight", S2(4, 768)},
        {"lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k.lora_up.weight", S2(320, 4)},
        {"lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k.alpha", ALPHA(2)},
        {"lora_unet_down_blocks_0_resnets_0_conv1.lora_down.weight", S4(4, 320, 3, 3)},
        {"lora_unet_down_blocks_0_resnets_0_conv1.lora_up.weight", S4(320, 4, 1, 1)},
        {"lora_unet_down_blocks_0_resnets_0_conv1.alpha", ALPHA(2)},
        {"lora_unet_conv_in.lora_down.weight", S4(8, 4, 3, 3)},
        {"lora_unet_conv_in.lora_up.weight", S4(320, 8, 1, 1)},
        {"lora_unet_conv_in.alpha", ALPHA(1)},
        {"lora_te_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight", S2(4, 768)},
        {"lora_te_text_model_encoder_layers_0_self_attn_q_proj.lora_up.weight", S2(768, 4)},
        {"lora_te_text_model_encoder_layers_0_self_attn_q_proj.alpha", ALPHA(2)},
    };
    det_info d = classify(sd15, N(sd15), "ss_network_dim", "4", NULL);
    CHECK(d.kind == DET_LORA_KOHYA, "kind %s", det_kind_name(d.kind));
    CHECK(d.arch == DET_ARCH_SD1 && d.supported, "SD1 supported: %s", d.summary);
    CHECK(d.parts == (DET_PART_UNET | DET_PART_TEXT), "parts %u", d.parts);
    const det_lora *L = &d.lora;
    CHECK(L->n_modules == 4 && L->n_unet == 3 && L->n_text == 1, "modules %d/%d/%d",
          L->n_modules, L->n_unet, L->n_text);
    CHECK(L->n_conv == 2, "3x3 conv modules %d", L->n_conv);
    CHECK(L->rank[0] == 4 && L->rank_count[0] == 3 && L->rank[1] == 8 && L->n_values_rank == 2,
          "ranks %d x%d, %d x%d (%d)", L->rank[0], L->rank_count[0], L->rank[1],
          L->rank_count[1], L->n_values_rank);
    CHECK(L->n_alpha == 4 && L->alpha[0] == 2.0f && L->alpha_count[0] == 3 &&
              L->n_values_alpha == 2,
          "alphas");
    CHECK(L->n_diffusers_keys == 2 && L->n_ldm_keys == 0, "dialect %d/%d", L->n_diffusers_keys,
          L->n_ldm_keys);
    CHECK(L->n_ignored == 1, "conv_in dropped by the reference: %d", L->n_ignored);
    CHECK(d.context_dim == 768 && d.text_dim == 768, "widths %d %d", d.context_dim, d.text_dim);
    CHECK(strstr(d.summary, "kohya LoRA, SD1.x: 4 modules"), "summary: %s", d.summary);

    const spec ldm[] = {
        {"lora_unet_input_blocks_1_1_transformer_blocks_0_attn2_to_k.lora_down.weight", S2(8, 768)},
        {"lora_unet_input_blocks_1_1_transformer_blocks_0_attn2_to_k.lora_up.weight", S2(0, 8)},
        {"lora_unet_middle_block_1_proj_in.lora_down.weight", S2(8, 0)},
        {"lora_unet_middle_block_1_proj_in.lora_up.weight", S2(0, 8)},
    };
    d = classify(ldm, N(ldm), NULL, NULL, NULL);
    CHECK(d.kind == DET_LORA_KOHYA && d.lora.n_ldm_keys == 2 && d.lora.n_alpha == 0 &&
              d.arch == DET_ARCH_SD1,
          "ldm dialect: %s", d.summary);
    CHECK(strstr(d.summary, "no alpha"), "summary: %s", d.summary);

    const spec xl_te[] = {
        {"lora_te1_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight", S2(4, 768)},
        {"lora_te1_text_model_encoder_layers_0_self_attn_q_proj.lora_up.weight", S2(0, 4)},
        {"lora_te2_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight", S2(4, 1280)},
        {"lora_te2_text_model_encoder_layers_0_self_attn_q_proj.lora_up.weight", S2(0, 4)},
    };
    d = classify(xl_te, N(xl_te), NULL, NULL, NULL);
    CHECK(d.kind == DET_LORA_KOHYA && d.arch == DET_ARCH_SDXL && !d.supported &&
              d.lora.n_text == 1 && d.lora.n_text2 == 1 && (d.parts & DET_PART_TEXT2),
          "SDXL te: %s", d.summary);
    CHECK(strstr(d.summary, "SDXL (not supported)"), "summary: %s", d.summary);

    const spec xl_unet[] = {
        {"lora_unet_input_blocks_4_1_transformer_blocks_0_attn2_to_k.lora_down.weight", S2(4, 2048)},
        {"lora_unet_input_blocks_4_1_transformer_blocks_0_attn2_to_k.lora_up.weight", S2(0, 4)},
    };
    d = classify(xl_unet, N(xl_unet), NULL, NULL, NULL);
    CHECK(d.arch == DET_ARCH_SDXL && !d.supported && d.context_dim == 2048, "SDXL 2048: %s",
          d.summary);

    const spec sd2[] = {
        {"lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_v.lora_down.weight", S2(4, 1024)},
        {"lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_v.lora_up.weight", S2(0, 4)},
    };
    d = classify(sd2, N(sd2), NULL, NULL, NULL);
    CHECK(d.arch == DET_ARCH_SD2 && !d.supported, "SD2 1024: %s", d.summary);

    /* No width visible: the metadata decides, else "not identified". */
    const spec convs[] = {
        {"lora_unet_up_blocks_1_resnets_0_conv1.lora_down.weight", S4(4, 0, 3, 3)},
        {"lora_unet_up_blocks_1_resnets_0_conv1.lora_up.weight", S4(0, 4, 1, 1)},
    };
    d = classify(convs, N(convs), NULL, NULL, NULL);
    CHECK(d.arch == DET_ARCH_UNKNOWN && d.supported, "unknown base: %s", d.summary);
    CHECK(strstr(d.summary, "base model not identified"), "summary: %s", d.summary);
    d = classify(convs, N(convs), "ss_base_model_version", "sdxl_base_v1-0", NULL);
    CHECK(d.arch == DET_ARCH_SDXL && !d.supported, "metadata sdxl: %s", d.summary);
    d = classify(convs, N(convs), "modelspec.architecture", "stable-diffusion-v1/lora", NULL);
    CHECK(d.arch == DET_ARCH_SD1 && d.supported, "modelspec v1: %s", d.summary);
    d = classify(convs, N(convs), "ss_base_model_version", "sd_v2", NULL);
    CHECK(d.arch == DET_ARCH_SD2, "metadata sd2");
}

static void test_peft(void) {
    const spec peft[] = {
        {"unet.down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.lora_A.weight", S2(8, 768)},
        {"unet.down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.lora_B.weight", S2(0, 8)},
        {"text_encoder.text_model.encoder.layers.0.self_attn.q_proj.lora_A.weight", S2(8, 768)},
        {"text_encoder.text_model.encoder.layers.0.self_attn.q_proj.lora_B.weight", S2(0, 8)},
    };
    det_info d = classify(peft, N(peft), NULL, NULL, NULL);
    CHECK(d.kind == DET_LORA_PEFT && d.arch == DET_ARCH_SD1 && d.supported &&
              d.lora.n_unet == 1 && d.lora.n_text == 1 && d.lora.rank[0] == 8,
          "peft: %s", d.summary);
    CHECK(strstr(d.summary, "PEFT/diffusers LoRA, SD1.x"), "summary: %s", d.summary);

    const spec old[] = {
        {"down_blocks.0.attentions.0.transformer_blocks.0.attn2.processor.to_k_lora.down.weight", S2(4, 768)},
        {"down_blocks.0.attentions.0.transformer_blocks.0.attn2.processor.to_k_lora.up.weight", S2(0, 4)},
        {"text_encoder.text_model.encoder.layers.0.self_attn.q_proj.lora_linear_layer.down.weight", S2(4, 768)},
        {"text_encoder.text_model.encoder.layers.0.self_attn.q_proj.lora_linear_layer.up.weight", S2(0, 4)},
        {"unet.up_blocks.1.attentions.0.proj_in.lora.down.weight", S2(4, 0)},
        {"unet.up_blocks.1.attentions.0.proj_in.lora.up.weight", S2(0, 4)},
    };
    d = classify(old, N(old), NULL, NULL, NULL);
    CHECK(d.kind == DET_LORA_PEFT && d.arch == DET_ARCH_SD1 && d.lora.n_modules == 3 &&
              d.lora.n_unet == 2 && d.lora.n_text == 1,
          "old diffusers: %s (unet %d te %d)", d.summary, d.lora.n_unet, d.lora.n_text);

    const spec xl[] = {
        {"text_encoder_2.text_model.encoder.layers.0.self_attn.q_proj.lora_A.weight", S2(4, 1280)},
        {"text_encoder_2.text_model.encoder.layers.0.self_attn.q_proj.lora_B.weight", S2(0, 4)},
    };
    d = classify(xl, N(xl), NULL, NULL, NULL);
    CHECK(d.kind == DET_LORA_PEFT && d.arch == DET_ARCH_SDXL && !d.supported, "peft sdxl: %s",
          d.summary);

    const spec dora[] = {
        {"unet.down_blocks.0.attentions.0.proj_in.lora_A.weight", S2(4, 320)},
        {"unet.down_blocks.0.attentions.0.proj_in.lora_B.weight", S2(0, 4)},
        {"unet.down_blocks.0.attentions.0.proj_in.lora_magnitude_vector", S2(0, 1)},
    };
    d = classify(dora, N(dora), NULL, NULL, NULL);
    CHECK(d.kind == DET_LORA_PEFT && !d.supported && (d.lycoris & DET_LYCO_DORA),
          "peft dora: %s", d.summary);
    CHECK(strstr(d.summary, "DoRA"), "summary: %s", d.summary);
}

static void test_lycoris(void) {
    const spec loha[] = {
        {"lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k.hada_w1_a", S2(0, 4)},
        {"lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k.hada_w1_b", S2(4, 768)},
        {"lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k.hada_w2_a", S2(0, 4)},
        {"lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k.hada_w2_b", S2(4, 768)},
        {"lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k.alpha", ALPHA(4)},
    };
    det_info d = classify(loha, N(loha), NULL, NULL, NULL);
    CHECK(d.kind == DET_LYCORIS && (d.lycoris & DET_LYCO_LOHA) && !d.supported &&
              d.arch == DET_ARCH_SD1 && d.lora.n_modules == 1 && d.lora.rank[0] == 4,
          "loha: %s", d.summary);
    CHECK(strstr(d.summary, "LoHa"), "summary: %s", d.summary);
    const spec lokr[] = {
        {"lora_te_text_model_encoder_layers_0_mlp_fc1.lokr_w1", S2(0, 4)},
        {"lora_te_text_model_encoder_layers_0_mlp_fc1.lokr_w2_a", S2(0, 4)},
        {"lora_te_text_model_encoder_layers_0_mlp_fc1.lokr_w2_b", S2(4, 0)},
    };
    d = classify(lokr, N(lokr), NULL, NULL, NULL);
    CHECK(d.kind == DET_LYCORIS && (d.lycoris & DET_LYCO_LOKR) && d.lora.n_text == 1,
          "lokr: %s", d.summary);
    const spec tucker[] = {
        {"lora_unet_down_blocks_0_resnets_0_conv1.lora_down.weight", S4(4, 0, 1, 1)},
        {"lora_unet_down_blocks_0_resnets_0_conv1.lora_mid.weight", S4(4, 4, 3, 3)},
        {"lora_unet_down_blocks_0_resnets_0_conv1.lora_up.weight", S4(0, 4, 1, 1)},
    };
    d = classify(tucker, N(tucker), NULL, NULL, NULL);
    CHECK(d.kind == DET_LYCORIS && (d.lycoris & DET_LYCO_TUCKER), "tucker: %s", d.summary);
    const spec kdora[] = {
        {"lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight", S2(4, 0)},
        {"lora_unet_down_blocks_0_attentions_0_proj_in.lora_up.weight", S2(0, 4)},
        {"lora_unet_down_blocks_0_attentions_0_proj_in.dora_scale", S2(1, 0)},
    };
    d = classify(kdora, N(kdora), NULL, NULL, NULL);
    CHECK(d.kind == DET_LYCORIS && (d.lycoris & DET_LYCO_DORA), "kohya dora: %s", d.summary);
    const spec full[] = {{"lora_unet_conv_in.diff", S4(0, 4, 3, 3)}};
    d = classify(full, N(full), NULL, NULL, NULL);
    CHECK(d.kind == DET_LYCORIS && (d.lycoris & DET_LYCO_OTHER), "full diff: %s", d.summary);
}

static void test_checkpoints(void) {
    const spec sd15[] = {
        {"model.diffusion_model.input_blocks.0.0.weight", S4(0, 4, 3, 3)},
        {"model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight", S2(0, 768)},
        {"first_stage_model.decoder.conv_out.weight", S4(0, 128, 3, 3)},
        {"cond_stage_model.transformer.text_model.embeddings.token_embedding.weight", S2(0, 768)},
        {"model_ema.decay", S0},
    };
    det_info d = classify(sd15, N(sd15), NULL, NULL, NULL);
    CHECK(d.kind == DET_SD_CHECKPOINT && d.arch == DET_ARCH_SD1 && d.supported && d.has_ema &&
              d.parts == (DET_PART_UNET | DET_PART_TEXT | DET_PART_VAE) && !d.inpainting,
          "sd15 checkpoint: %s", d.summary);
    CHECK(strstr(d.summary, "UNet + text encoder + VAE"), "summary: %s", d.summary);
    spec inp[N(sd15)];
    memcpy(inp, sd15, sizeof sd15);
    inp[0].shape[1] = 9;
    d = classify(inp, N(inp), NULL, NULL, NULL);
    CHECK(d.inpainting && !d.supported && strstr(d.summary, "inpainting"), "inpainting: %s",
          d.summary);
    const spec sd2[] = {
        {"model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight", S2(0, 1024)},
        {"cond_stage_model.model.transformer.resblocks.0.attn.in_proj_weight", S2(0, 1024)},
        {"first_stage_model.decoder.conv_out.weight", S4(0, 128, 3, 3)},
    };
    d = classify(sd2, N(sd2), NULL, NULL, NULL);
    CHECK(d.kind == DET_SD_CHECKPOINT && d.arch == DET_ARCH_SD2 && !d.supported, "sd2: %s",
          d.summary);
    const spec xl[] = {
        {"model.diffusion_model.label_emb.0.0.weight", S2(0, 2816)},
        {"model.diffusion_model.input_blocks.4.1.transformer_blocks.0.attn2.to_k.weight", S2(0, 2048)},
        {"conditioner.embedders.0.transformer.text_model.embeddings.token_embedding.weight", S2(0, 768)},
        {"conditioner.embedders.1.model.token_embedding.weight", S2(0, 1280)},
    };
    d = classify(xl, N(xl), NULL, NULL, NULL);
    CHECK(d.kind == DET_SD_CHECKPOINT && d.arch == DET_ARCH_SDXL && !d.supported &&
              strstr(d.summary, "SDXL (not supported)"),
          "sdxl: %s", d.summary);
}

static void test_components(void) {
    const spec unet[] = {
        {"conv_in.weight", S4(0, 4, 3, 3)},
        {"time_embedding.linear_1.weight", S2(0, 320)},
        {"down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.weight", S2(0, 768)},
        {"mid_block.resnets.0.conv1.weight", S4(0, 1280, 3, 3)},
        {"up_blocks.3.resnets.2.conv2.weight", S4(0, 320, 3, 3)},
    };
    det_info d = classify(unet, N(unet), NULL, NULL, NULL);
    CHECK(d.kind == DET_DIFFUSERS_UNET && d.arch == DET_ARCH_SD1 && d.supported, "unet: %s",
          d.summary);
    const spec xl[] = {
        {"conv_in.weight", S4(0, 4, 3, 3)},
        {"add_embedding.linear_1.weight", S2(0, 2816)},
        {"down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k.weight", S2(0, 2048)},
    };
    d = classify(xl, N(xl), NULL, NULL, "UNet2DConditionModel");
    CHECK(d.kind == DET_DIFFUSERS_UNET && d.arch == DET_ARCH_SDXL && !d.supported, "xl unet: %s",
          d.summary);
    const spec vae[] = {
        {"encoder.conv_in.weight", S4(0, 3, 3, 3)},
        {"decoder.conv_out.weight", S4(0, 128, 3, 3)},
        {"quant_conv.weight", S4(0, 8, 1, 1)},
        {"post_quant_conv.weight", S4(0, 4, 1, 1)},
    };
    d = classify(vae, N(vae), NULL, NULL, NULL);
    CHECK(d.kind == DET_DIFFUSERS_VAE && d.supported && d.parts == DET_PART_VAE, "vae: %s",
          d.summary);
    const spec te[] = {
        {"text_model.embeddings.token_embedding.weight", S2(0, 768)},
        {"text_model.encoder.layers.0.self_attn.q_proj.weight", S2(0, 768)},
    };
    d = classify(te, N(te), NULL, NULL, NULL);
    CHECK(d.kind == DET_DIFFUSERS_TEXT && d.arch == DET_ARCH_SD1 && d.supported, "te: %s",
          d.summary);
    const spec te2[] = {
        {"text_model.embeddings.token_embedding.weight", S2(0, 1280)},
        {"text_projection.weight", S2(0, 1280)},
    };
    d = classify(te2, N(te2), NULL, NULL, "CLIPTextModelWithProjection");
    CHECK(d.kind == DET_DIFFUSERS_TEXT && d.arch == DET_ARCH_SDXL && !d.supported, "te2: %s",
          d.summary);
    const spec unk[] = {{"foo.bar", S2(0, 3)}, {"baz", S0}};
    d = classify(unk, N(unk), NULL, NULL, NULL);
    CHECK(d.kind == DET_UNKNOWN && !d.supported && !strcmp(d.summary, "unknown safetensors file"),
          "unknown: %s", d.summary);
    d = classify(unk, 0, NULL, NULL, NULL);
    CHECK(d.kind == DET_UNKNOWN, "empty file");
    /* A config class settles a component without telling names. */
    d = classify(unk, N(unk), NULL, NULL, "AutoencoderKL");
    CHECK(d.kind == DET_DIFFUSERS_VAE, "class hint");
    CHECK(!strcmp(det_kind_name(DET_LORA_KOHYA), "lora-kohya") &&
              !strcmp(det_arch_name(DET_ARCH_SDXL), "SDXL") &&
              !strcmp(det_kind_name((det_kind)99), "unknown"),
          "names");
}

static void write_bytes(const char *path, const void *data, size_t n) {
    CHECK_OK(lmx_write_file_atomic(path, data, n));
}

static void test_pickle(void) {
    char why[96];
    const char *zip = tmp_path("model.ckpt");
    write_bytes(zip, "PK\x03\x04rest of a zip", 18);
    CHECK(det_is_pickle(zip, why, sizeof why) && strstr(why, "zip"), "zip: %s", why);
    const char *pk = tmp_path("model.anything");
    write_bytes(pk, "\x80\x02}q\x00.", 6);
    CHECK(det_is_pickle(pk, why, sizeof why) && strstr(why, "protocol 2"), "pickle: %s", why);
    const char *pt = tmp_path("weights.pt");
    write_bytes(pt, "garbage", 7);
    CHECK(det_is_pickle(pt, why, sizeof why) && strstr(why, ".pt"), "by extension: %s", why);
    const char *bin = tmp_path("real.bin");
    const spec s[] = {{"a", S2(0, 2)}};
    write_specs(bin, s, 1, NULL, NULL);
    CHECK(!det_is_pickle(bin, why, sizeof why), "safetensors named .bin is not pickle");
    const char *st = tmp_path("x.safetensors");
    write_bytes(st, "garbage", 7);
    CHECK(!det_is_pickle(st, NULL, 0), "garbage .safetensors is not pickle (the reader refuses it)");
    /* A header of 640 = 0x280 bytes starts "80 02", pickle's protocol-2 magic. */
    const char *p640 = tmp_path("h640.safetensors");
    {
        char buf[8 + 640 + 4];
        memset(buf, 0, sizeof buf);
        buf[0] = (char)0x80;
        buf[1] = 0x02;
        const char *json = "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}";
        memset(buf + 8, ' ', 640);
        memcpy(buf + 8, json, strlen(json));
        write_bytes(p640, buf, sizeof buf);
    }
    CHECK(!det_is_pickle(p640, why, sizeof why), "safetensors with a 640-byte header is not pickle: %s", why);
    unlink(p640);
    CHECK(!det_is_pickle(tmp_path("missing.ckpt"), why, sizeof why), "missing file");
    CHECK(!det_is_pickle(g_dir, why, sizeof why), "directory");
    unlink(zip);
    unlink(pk);
    unlink(pt);
    unlink(bin);
    unlink(st);
}

static void mkdirs(const char *p) { mkdir(p, 0755); }

static void test_folders(void) {
    const char *root = tmp_path("sd");
    mkdirs(root);
    char p[800];
    snprintf(p, sizeof p, "%s/model_index.json", root);
    const char *idx = "{\"_class_name\": \"StableDiffusionPipeline\", \"_diffusers_version\": "
                      "\"0.32.2\", \"unet\": [\"diffusers\", \"UNet2DConditionModel\"], "
                      "\"vae\": [\"diffusers\", \"AutoencoderKL\"], \"text_encoder\": "
                      "[\"transformers\", \"CLIPTextModel\"], \"tokenizer\": [\"transformers\", "
                      "\"CLIPTokenizer\"], \"safety_checker\": [null, null], "
                      "\"requires_safety_checker\": false, \"scheduler\": [\"diffusers\", "
                      "\"PNDMScheduler\"]}";
    write_bytes(p, idx, strlen(idx));
    snprintf(p, sizeof p, "%s/unet", root);
    mkdirs(p);
    snprintf(p, sizeof p, "%s/unet/config.json", root);
    write_bytes(p, "{\"_class_name\": \"UNet2DConditionModel\"}", 39);
    const spec u[] = {{"conv_in.weight", S4(0, 4, 3, 3)}};
    snprintf(p, sizeof p, "%s/unet/diffusion_pytorch_model.safetensors", root);
    write_specs(p, u, 1, NULL, NULL);
    snprintf(p, sizeof p, "%s/unet/diffusion_pytorch_model.fp16.safetensors", root);
    write_specs(p, u, 1, NULL, NULL);
    snprintf(p, sizeof p, "%s/vae", root);
    mkdirs(p);
    snprintf(p, sizeof p, "%s/vae/diffusion_pytorch_model.bin", root);
    write_bytes(p, "PK\x03\x04", 4);
    snprintf(p, sizeof p, "%s/text_encoder", root);
    mkdirs(p);
    snprintf(p, sizeof p, "%s/text_encoder/zz.safetensors", root);
    write_specs(p, u, 1, NULL, NULL);
    snprintf(p, sizeof p, "%s/text_encoder/aa.safetensors", root);
    write_specs(p, u, 1, NULL, NULL);

    det_folder df;
    CHECK_OK(det_read_folder(root, &df));
    CHECK(df.type == DET_FOLDER_PIPELINE && df.n_comp == 6, "pipeline with %d components",
          df.n_comp);
    CHECK(df.class_name && !strcmp(df.class_name, "StableDiffusionPipeline") && df.version &&
              !strcmp(df.version, "0.32.2"),
          "class and version");
    if (df.n_comp == 6) {
        CHECK(!strcmp(df.comp[0].name, "unet") && df.comp[0].weights &&
                  strstr(df.comp[0].weights, "unet/diffusion_pytorch_model.safetensors") &&
                  !df.comp[0].weights_pickle,
              "unet weights %s", df.comp[0].weights ? df.comp[0].weights : "(none)");
        CHECK(!strcmp(df.comp[1].name, "vae") && df.comp[1].weights_pickle, "vae pickle only");
        CHECK(df.comp[2].weights && strstr(df.comp[2].weights, "text_encoder/aa.safetensors"),
              "first safetensors by name");
        CHECK(!strcmp(df.comp[3].name, "tokenizer") && !df.comp[3].weights, "tokenizer");
        CHECK(!strcmp(df.comp[4].name, "safety_checker") && !df.comp[4].class_name, "null");
        CHECK(!strcmp(df.comp[5].name, "scheduler") && df.comp[5].library &&
                  !strcmp(df.comp[5].library, "diffusers"),
              "scheduler");
    }
    det_folder_free(&df);

    /* A component folder. */
    snprintf(p, sizeof p, "%s/unet", root);
    CHECK_OK(det_read_folder(p, &df));
    CHECK(df.type == DET_FOLDER_COMPONENT && df.n_comp == 1 && df.class_name &&
              !strcmp(df.class_name, "UNet2DConditionModel") && !strcmp(df.comp[0].name, "unet"),
          "component");
    det_folder_free(&df);
    snprintf(p, sizeof p, "%s/text_encoder/config.json", root);
    write_bytes(p, "{\"architectures\": [\"CLIPTextModel\"], \"transformers_version\": \"4.45\"}",
                68);
    snprintf(p, sizeof p, "%s/text_encoder", root);
    CHECK_OK(det_read_folder(p, &df));
    CHECK(df.class_name && !strcmp(df.class_name, "CLIPTextModel") && df.version &&
              !strcmp(df.version, "4.45"),
          "transformers config");
    det_folder_free(&df);

    /* Other folder: model files, sorted. */
    snprintf(p, sizeof p, "%s/vae", root);
    CHECK_OK(det_read_folder(p, &df));
    CHECK(df.type == DET_FOLDER_OTHER && df.n_files == 1 &&
              !strcmp(df.files[0], "diffusion_pytorch_model.bin"),
          "other folder");
    det_folder_free(&df);

    /* Malformed index, hostile component name. */
    snprintf(p, sizeof p, "%s/model_index.json", root);
    write_bytes(p, "{\"unet\": [\"diffusers\", ", 23);
    CHECK(det_read_folder(root, &df) == LMX_ERR_FORMAT && strstr(lmx_errmsg(), "model_index.json"),
          "malformed index: %s", lmx_errmsg());
    write_bytes(p, "[1, 2]", 6);
    CHECK(det_read_folder(root, &df) == LMX_ERR_FORMAT, "index not an object");
    const char *evil = "{\"../../etc\": [\"diffusers\", \"UNet2DConditionModel\"]}";
    write_bytes(p, evil, strlen(evil));
    CHECK(det_read_folder(root, &df) == LMX_ERR_FORMAT && strstr(lmx_errmsg(), "component name"),
          "evil component: %s", lmx_errmsg());
    CHECK(det_read_folder(tmp_path("nope"), &df) == LMX_ERR_IO, "missing folder");
    CHECK(df.n_comp == 0 && df.comp == NULL, "zeroed on error");

    /* Allocation failures while reading a folder: clean errors. */
    write_bytes(p, idx, strlen(idx));
    lmx_fault_set_fail_at(0);
    CHECK_OK(det_read_folder(root, &df));
    long total = lmx_fault_alloc_count();
    det_folder_free(&df);
    int bad = 0;
    for (long k = 1; k <= total; k++) {
        lmx_fault_set_fail_at(k);
        lmx_status st = det_read_folder(root, &df);
        lmx_fault_set_fail_at(0);
        if (st != LMX_ERR_NOMEM && bad++ < 3)
            fprintf(stderr, "folder, allocation %ld of %ld fails: %s: %s\n", k, total,
                    lmx_status_name(st), lmx_errmsg());
        det_folder_free(&df);
    }
    CHECK(bad == 0, "%d of %ld folder sweeps did not fail cleanly", bad, total);
}

int main(void) {
    snprintf(g_dir, sizeof g_dir, "%s/tests/detect_unit_%ld", LMX_BINARY_DIR, (long)getpid());
    mkdir(g_dir, 0755);
    test_kohya();
    test_peft();
    test_lycoris();
    test_checkpoints();
    test_components();
    test_pickle();
    test_folders();
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    if (system(cmd) != 0) fprintf(stderr, "cannot remove %s\n", g_dir);
    return lmx_test_finish();
}
