/*
 * detect.c - classify model and LoRA files and folders (see detect.h).
 *
 * One pass over the tensor names of a safetensors file counts the markers
 * of each convention: the key prefixes of single-file LDM checkpoints
 * (CompVis/stability layout), the diffusers module paths
 * (UNet2DConditionModel, AutoencoderKL, transformers' CLIPTextModel), the
 * LoRA suffixes of kohya sd-scripts (lora_down/lora_up/alpha), PEFT
 * (lora_A/lora_B), older diffusers attention processors (to_q_lora.down,
 * lora_linear_layer.down, lora.down) and LyCORIS (hada_*, lokr_*,
 * lora_mid, dora_scale, oft_*, ...). Shapes give the LoRA ranks, conv
 * kernels and the cross-attention / text widths that tell SD1.x (768) from
 * SD2.x (1024) and SDXL (2048 context, 1280 second text encoder). Alpha
 * scalars are the only tensor data read.
 *
 * Folders follow the diffusers layout: model_index.json lists components
 * as "name": [library, class]; a component folder has config.json and
 * weights (diffusion_pytorch_model.safetensors or model.safetensors).
 */
#include "io/detect.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/io_util.h"

static const char *KIND_NAMES[DET_KIND_COUNT] = {
    "unknown",        "sd-checkpoint", "diffusers-unet", "diffusers-vae",
    "diffusers-text-encoder", "diffusers-pipeline", "lora-kohya", "lora-peft",
    "lycoris",        "pickle"};
static const char *KIND_DESCS[DET_KIND_COUNT] = {
    "unknown safetensors file",
    "single-file checkpoint",
    "diffusers UNet (UNet2DConditionModel)",
    "diffusers VAE (AutoencoderKL)",
    "diffusers text encoder (CLIPTextModel)",
    "diffusers model folder",
    "kohya LoRA",
    "PEFT/diffusers LoRA",
    "LyCORIS adapter",
    "PyTorch pickle file"};

const char *det_kind_name(det_kind k) {
    return (unsigned)k < DET_KIND_COUNT ? KIND_NAMES[k] : "unknown";
}
const char *det_kind_desc(det_kind k) {
    return (unsigned)k < DET_KIND_COUNT ? KIND_DESCS[k] : "unknown";
}
const char *det_arch_name(det_arch a) {
    switch (a) {
    case DET_ARCH_SD1: return "SD1.x";
    case DET_ARCH_SD2: return "SD2.x";
    case DET_ARCH_SDXL: return "SDXL";
    default: return "unknown";
    }
}

static int starts(const char *s, const char *p) { return !strncmp(s, p, strlen(p)); }

static int ends(const char *s, size_t n, const char *suf) {
    size_t k = strlen(suf);
    return n >= k && !memcmp(s + n - k, suf, k);
}

/* ---- LoRA tensor roles --------------------------------------------------- */

typedef enum role { R_NONE = 0, R_DOWN, R_UP, R_ALPHA, R_MID, R_LYCO } role;

typedef struct suffix_rule {
    const char *suffix;
    role r;
    unsigned lyco;  /* DET_LYCO_* flag */
    int primary;    /* counts one module (one per module) */
    int kohya_only; /* only with a lora_unet_/lora_te* prefix */
} suffix_rule;

static const suffix_rule SUFFIXES[] = {
    {".lora_down.weight", R_DOWN, 0, 1, 0},
    {".lora_up.weight", R_UP, 0, 0, 0},
    {".lora_A.weight", R_DOWN, 0, 1, 0},
    {".lora_B.weight", R_UP, 0, 0, 0},
    {".lora_A.default.weight", R_DOWN, 0, 1, 0},
    {".lora_B.default.weight", R_UP, 0, 0, 0},
    {".lora.down.weight", R_DOWN, 0, 1, 0},
    {".lora.up.weight", R_UP, 0, 0, 0},
    {".lora_linear_layer.down.weight", R_DOWN, 0, 1, 0},
    {".lora_linear_layer.up.weight", R_UP, 0, 0, 0},
    {"_lora.down.weight", R_DOWN, 0, 1, 0},
    {"_lora.up.weight", R_UP, 0, 0, 0},
    {".alpha", R_ALPHA, 0, 0, 0},
    {".lora_mid.weight", R_MID, DET_LYCO_TUCKER, 0, 0},
    {".dora_scale", R_LYCO, DET_LYCO_DORA, 0, 0},
    {".lora_magnitude_vector", R_LYCO, DET_LYCO_DORA, 0, 0},
    {".lora_magnitude_vector.weight", R_LYCO, DET_LYCO_DORA, 0, 0},
    {".hada_w1_a", R_LYCO, DET_LYCO_LOHA, 1, 0},
    {".hada_w1_b", R_LYCO, DET_LYCO_LOHA, 0, 0},
    {".hada_w2_a", R_LYCO, DET_LYCO_LOHA, 0, 0},
    {".hada_w2_b", R_LYCO, DET_LYCO_LOHA, 0, 0},
    {".hada_t1", R_LYCO, DET_LYCO_LOHA, 0, 0},
    {".hada_t2", R_LYCO, DET_LYCO_LOHA, 0, 0},
    {".lokr_w1", R_LYCO, DET_LYCO_LOKR, 1, 0},
    {".lokr_w1_a", R_LYCO, DET_LYCO_LOKR, 1, 0},
    {".lokr_w1_b", R_LYCO, DET_LYCO_LOKR, 0, 0},
    {".lokr_w2", R_LYCO, DET_LYCO_LOKR, 0, 0},
    {".lokr_w2_a", R_LYCO, DET_LYCO_LOKR, 0, 0},
    {".lokr_w2_b", R_LYCO, DET_LYCO_LOKR, 0, 0},
    {".lokr_t2", R_LYCO, DET_LYCO_LOKR, 0, 0},
    {".oft_blocks", R_LYCO, DET_LYCO_OFT, 1, 0},
    {".oft_diag", R_LYCO, DET_LYCO_OFT, 1, 0},
    {".diff", R_LYCO, DET_LYCO_OTHER, 1, 1},
    {".diff_b", R_LYCO, DET_LYCO_OTHER, 0, 1},
    {".w_norm", R_LYCO, DET_LYCO_OTHER, 1, 1},
    {".b_norm", R_LYCO, DET_LYCO_OTHER, 0, 1},
    {".on_input", R_LYCO, DET_LYCO_OTHER, 0, 1},
    {".a1.weight", R_LYCO, DET_LYCO_OTHER, 1, 1},
    {".a2.weight", R_LYCO, DET_LYCO_OTHER, 0, 1},
    {".b1.weight", R_LYCO, DET_LYCO_OTHER, 0, 1},
    {".b2.weight", R_LYCO, DET_LYCO_OTHER, 0, 1},
};

static int kohya_prefix(const char *s) {
    return starts(s, "lora_unet_") || starts(s, "lora_te_") || starts(s, "lora_te1_") ||
           starts(s, "lora_te2_");
}

/* The rule matching name's suffix (longest wins), or NULL. */
static const suffix_rule *match_suffix(const char *name, size_t n) {
    const suffix_rule *best = NULL;
    for (size_t i = 0; i < LMX_ARRAY_LEN(SUFFIXES); i++) {
        const suffix_rule *r = &SUFFIXES[i];
        if (ends(name, n, r->suffix) && (!best || strlen(r->suffix) > strlen(best->suffix))) {
            if (r->kohya_only && !kohya_prefix(name)) continue;
            best = r;
        }
    }
    return best;
}

/* Which part a LoRA module key adapts. */
static unsigned lora_part(const char *name) {
    if (starts(name, "lora_te2_") || starts(name, "text_encoder_2.")) return DET_PART_TEXT2;
    if (starts(name, "lora_te_") || starts(name, "lora_te1_") || starts(name, "text_encoder.") ||
        strstr(name, "text_model"))
        return DET_PART_TEXT;
    if (starts(name, "lora_unet_") || starts(name, "unet.") || strstr(name, "down_blocks") ||
        strstr(name, "up_blocks") || strstr(name, "mid_block") || strstr(name, "input_blocks") ||
        strstr(name, "output_blocks") || strstr(name, "middle_block") || strstr(name, "conv_in") ||
        strstr(name, "conv_out") || strstr(name, "time_emb"))
        return DET_PART_UNET;
    return 0;
}

/* Modules the reference kohya conversion leaves unmapped (dropped). */
static int ignored_module(const char *name, size_t key_len) {
    static const char *keys[] = {"lora_unet_conv_in", "lora_unet_conv_out",
                                 "lora_unet_time_embedding_linear_1",
                                 "lora_unet_time_embedding_linear_2", "unet.conv_in",
                                 "unet.conv_out", "unet.time_embedding.linear_1",
                                 "unet.time_embedding.linear_2"};
    for (size_t i = 0; i < LMX_ARRAY_LEN(keys); i++)
        if (strlen(keys[i]) == key_len && !memcmp(name, keys[i], key_len)) return 1;
    return 0;
}

/* Distinct values with counts (small; extra values are only counted). */
typedef struct tally {
    double v[64];
    int c[64];
    int n, distinct;
} tally;

static void tally_add(tally *t, double v) {
    for (int i = 0; i < t->n; i++)
        if (t->v[i] == v) {
            t->c[i]++;
            return;
        }
    t->distinct++;
    if (t->n < 64) {
        t->v[t->n] = v;
        t->c[t->n++] = 1;
    }
}

/* The k most frequent values (ties: smaller value first), descending count. */
static int tally_top(const tally *t, double *v, int *c, int k) {
    int used[64] = {0}, m = 0;
    for (; m < k; m++) {
        int best = -1;
        for (int i = 0; i < t->n; i++)
            if (!used[i] && (best < 0 || t->c[i] > t->c[best] ||
                             (t->c[i] == t->c[best] && t->v[i] < t->v[best])))
                best = i;
        if (best < 0) break;
        used[best] = 1;
        v[m] = t->v[best];
        c[m] = t->c[best];
    }
    return m;
}

/* A scalar tensor's value as a double; 0 when unreadable. */
static int scalar_value(const st_tensor *t, double *out) {
    if (t->numel != 1) return 0;
    if (t->dtype == ST_I32 || t->dtype == ST_I64) {
        int64_t v;
        if (st_to_i64(t, &v) != LMX_OK) return 0;
        *out = (double)v;
        return 1;
    }
    float v;
    if (st_to_f32(t, &v) != LMX_OK) return 0;
    *out = v;
    return 1;
}

/* ---- classification ----------------------------------------------------- */

typedef struct counts {
    int ckpt_unet, ckpt_vae, ckpt_clip, ckpt_openclip, ckpt_sdxl, ckpt_ema;
    int diff_unet, diff_unet_sdxl, diff_vae, diff_text, diff_text_proj;
    int kohya, lora_down, lora_up, peft_style, lyco_primary;
    unsigned lyco;
    int sdxl_names;
    int unet_in_channels; /* conv_in / input_blocks.0.0 weight shape[1] */
} counts;

static void add_width(int *slot, int64_t w) {
    if (*slot == 0 && w > 0 && w < (1 << 20)) *slot = (int)w;
}

void det_classify(const st_file *f, const char *config_class, det_info *out) {
    memset(out, 0, sizeof *out);
    counts c;
    memset(&c, 0, sizeof c);
    tally ranks, alphas;
    memset(&ranks, 0, sizeof ranks);
    memset(&alphas, 0, sizeof alphas);
    det_lora *L = &out->lora;
    int n = st_count(f);

    for (int i = 0; i < n; i++) {
        const st_tensor *t = st_at(f, i);
        const char *s = t->name;
        size_t len = strlen(s);
        /* Single-file checkpoints. */
        if (starts(s, "model.diffusion_model.")) {
            c.ckpt_unet++;
            if (starts(s, "model.diffusion_model.label_emb.")) c.ckpt_sdxl++;
            if (!strcmp(s, "model.diffusion_model.input_blocks.0.0.weight") && t->ndim == 4)
                c.unet_in_channels = (int)t->shape[1];
        } else if (starts(s, "first_stage_model.")) {
            c.ckpt_vae++;
        } else if (starts(s, "cond_stage_model.transformer.")) {
            c.ckpt_clip++;
        } else if (starts(s, "cond_stage_model.model.")) {
            c.ckpt_openclip++;
        } else if (starts(s, "conditioner.embedders.")) {
            c.ckpt_sdxl++;
        } else if (starts(s, "model_ema.")) {
            c.ckpt_ema++;
        }
        /* diffusers components. */
        if (!strcmp(s, "conv_in.weight") && t->ndim == 4) c.unet_in_channels = (int)t->shape[1];
        if (starts(s, "time_embedding.") || starts(s, "down_blocks.") || starts(s, "mid_block.") ||
            starts(s, "up_blocks."))
            c.diff_unet++;
        if (starts(s, "add_embedding.")) c.diff_unet_sdxl++;
        if (starts(s, "encoder.") || starts(s, "decoder.") || starts(s, "quant_conv.") ||
            starts(s, "post_quant_conv."))
            c.diff_vae++;
        if (starts(s, "text_model.")) c.diff_text++;
        if (starts(s, "text_projection.")) c.diff_text_proj++;
        /* SDXL-only names in LoRAs. */
        if (starts(s, "lora_te1_") || starts(s, "lora_te2_") || starts(s, "text_encoder_2.") ||
            strstr(s, "add_embedding") || strstr(s, "label_emb"))
            c.sdxl_names++;

        /* Widths: cross-attention K input and text-encoder q_proj input. */
        int attn2_k = strstr(s, "attn2") && (strstr(s, "to_k") || strstr(s, "to_v"));
        int q_proj = strstr(s, "q_proj") != NULL;
        int is_down = 0;

        /* LoRA roles. */
        const suffix_rule *r = match_suffix(s, len);
        if (kohya_prefix(s)) c.kohya++;
        if (r) {
            size_t key_len = len - strlen(r->suffix);
            if (r->r == R_DOWN) {
                c.lora_down++;
                is_down = 1;
                if (!ends(s, len, ".lora_down.weight")) c.peft_style++;
            }
            if (r->r == R_UP) {
                c.lora_up++;
                if (!ends(s, len, ".lora_up.weight")) c.peft_style++;
            }
            c.lyco |= r->lyco;
            if (r->r == R_LYCO && r->primary) c.lyco_primary++;
            if (r->primary) {
                L->n_modules++;
                unsigned part = lora_part(s);
                if (part == DET_PART_UNET) L->n_unet++;
                else if (part == DET_PART_TEXT) L->n_text++;
                else if (part == DET_PART_TEXT2) L->n_text2++;
                if (starts(s, "lora_unet_input_blocks_") || starts(s, "lora_unet_middle_block_") ||
                    starts(s, "lora_unet_output_blocks_"))
                    L->n_ldm_keys++;
                else if (starts(s, "lora_unet_down_blocks_") || starts(s, "lora_unet_mid_block_") ||
                         starts(s, "lora_unet_up_blocks_"))
                    L->n_diffusers_keys++;
                if (ignored_module(s, key_len)) L->n_ignored++;
            }
            if (r->r == R_DOWN && t->ndim >= 1) {
                tally_add(&ranks, (double)t->shape[0]);
                if (t->ndim == 4 && t->shape[2] * t->shape[3] > 1) L->n_conv++;
            }
            if (ends(s, len, ".hada_w1_b") && t->ndim >= 1) tally_add(&ranks, (double)t->shape[0]);
            if (r->r == R_ALPHA) {
                double v;
                L->n_alpha++;
                if (scalar_value(t, &v)) tally_add(&alphas, v);
            }
        }
        if (attn2_k && t->ndim >= 2 &&
            (is_down || ends(s, len, "to_k.weight") || ends(s, len, "to_v.weight") ||
             ends(s, len, ".hada_w1_b") || ends(s, len, ".hada_w2_b")))
            add_width(&out->context_dim, t->shape[1]);
        if (q_proj && t->ndim == 2 && (is_down || ends(s, len, "q_proj.weight")))
            add_width(&out->text_dim, t->shape[1]);
        if (ends(s, len, "token_embedding.weight") && t->ndim == 2)
            add_width(&out->text_dim, t->shape[1]);
    }

    /* Rank and alpha summaries. */
    double v[DET_MAX_VALUES];
    int cnt[DET_MAX_VALUES];
    int m = tally_top(&ranks, v, cnt, DET_MAX_VALUES);
    for (int i = 0; i < m; i++) L->rank[i] = (int)v[i], L->rank_count[i] = cnt[i];
    L->n_values_rank = ranks.distinct;
    m = tally_top(&alphas, v, cnt, DET_MAX_VALUES);
    for (int i = 0; i < m; i++) L->alpha[i] = (float)v[i], L->alpha_count[i] = cnt[i];
    L->n_values_alpha = alphas.distinct;

    /* Kind. */
    int lora_like = c.lora_down > 0 || c.lyco_primary > 0;
    int kohya_style = c.kohya > 0 && c.kohya >= c.peft_style;
    /* DoRA on a PEFT file stays a PEFT LoRA (flagged); anything else
     * LyCORIS-specific makes a LyCORIS adapter. */
    if (lora_like && ((c.lyco & ~DET_LYCO_DORA) || (c.lyco && kohya_style)))
        out->kind = DET_LYCORIS;
    else if (c.lora_down > 0 && kohya_style)
        out->kind = DET_LORA_KOHYA;
    else if (c.lora_down > 0)
        out->kind = DET_LORA_PEFT;
    else if (c.ckpt_unet > 0 && (c.ckpt_vae > 0 || c.ckpt_clip > 0 || c.ckpt_openclip > 0 ||
                                 c.ckpt_sdxl > 0 || c.ckpt_unet > 100))
        out->kind = DET_SD_CHECKPOINT;
    else if (c.diff_unet > 0 && (c.unet_in_channels > 0 || c.diff_unet > 10))
        out->kind = DET_DIFFUSERS_UNET;
    else if (c.diff_vae > 0 && c.diff_unet == 0 && c.diff_text == 0)
        out->kind = DET_DIFFUSERS_VAE;
    else if (c.diff_text > 0)
        out->kind = DET_DIFFUSERS_TEXT;
    else if (c.ckpt_unet > 0)
        out->kind = DET_SD_CHECKPOINT;
    else
        out->kind = DET_UNKNOWN;
    /* A config.json class settles an ambiguous component. */
    if (config_class && (out->kind == DET_UNKNOWN || out->kind == DET_DIFFUSERS_UNET ||
                         out->kind == DET_DIFFUSERS_VAE || out->kind == DET_DIFFUSERS_TEXT)) {
        if (strstr(config_class, "UNet2DConditionModel")) out->kind = DET_DIFFUSERS_UNET;
        else if (strstr(config_class, "AutoencoderKL")) out->kind = DET_DIFFUSERS_VAE;
        else if (strstr(config_class, "CLIPTextModel")) out->kind = DET_DIFFUSERS_TEXT;
    }

    /* Parts. */
    switch (out->kind) {
    case DET_SD_CHECKPOINT:
        if (c.ckpt_unet) out->parts |= DET_PART_UNET;
        if (c.ckpt_vae) out->parts |= DET_PART_VAE;
        if (c.ckpt_clip || c.ckpt_openclip) out->parts |= DET_PART_TEXT;
        if (c.ckpt_sdxl > 1) out->parts |= DET_PART_TEXT | DET_PART_TEXT2;
        out->has_ema = c.ckpt_ema > 0;
        break;
    case DET_DIFFUSERS_UNET: out->parts = DET_PART_UNET; break;
    case DET_DIFFUSERS_VAE: out->parts = DET_PART_VAE; break;
    case DET_DIFFUSERS_TEXT: out->parts = DET_PART_TEXT; break;
    case DET_LORA_KOHYA:
    case DET_LORA_PEFT:
    case DET_LYCORIS:
        out->parts = (L->n_unet ? DET_PART_UNET : 0) | (L->n_text ? DET_PART_TEXT : 0) |
                     (L->n_text2 ? DET_PART_TEXT2 : 0);
        out->lycoris = c.lyco;
        break;
    default: break;
    }
    out->inpainting = c.unet_in_channels == 9 &&
                      (out->kind == DET_SD_CHECKPOINT || out->kind == DET_DIFFUSERS_UNET);

    /* Architecture: SDXL-only names and widths first, then metadata. */
    int cd = out->context_dim, td = out->text_dim;
    if (c.ckpt_sdxl || c.diff_unet_sdxl || c.sdxl_names || cd == 2048 || td == 1280 ||
        (config_class && strstr(config_class, "CLIPTextModelWithProjection") && td != 768))
        out->arch = DET_ARCH_SDXL;
    else if (c.ckpt_openclip || cd == 1024 || td == 1024)
        out->arch = DET_ARCH_SD2;
    else if (cd == 768 || td == 768 || c.ckpt_clip)
        out->arch = DET_ARCH_SD1;
    if (out->arch == DET_ARCH_UNKNOWN && out->kind != DET_DIFFUSERS_VAE) {
        const char *bm = st_meta_get(f, "ss_base_model_version");
        const char *ms = st_meta_get(f, "modelspec.architecture");
        if ((bm && starts(bm, "sdxl")) || (ms && strstr(ms, "stable-diffusion-xl")))
            out->arch = DET_ARCH_SDXL;
        else if ((bm && starts(bm, "sd_v2")) || (ms && strstr(ms, "stable-diffusion-v2")))
            out->arch = DET_ARCH_SD2;
        else if ((bm && starts(bm, "sd_v1")) || (ms && strstr(ms, "stable-diffusion-v1")))
            out->arch = DET_ARCH_SD1;
    }

    /* Supported: SD1.x (or a LoRA whose base is not visible), plain LoRA
     * formats, a VAE, a CLIP-L text encoder; never inpainting. */
    switch (out->kind) {
    case DET_SD_CHECKPOINT:
    case DET_DIFFUSERS_UNET:
        /* A small or custom config of the SD1.x family (no SD2/SDXL marks)
         * loads too: the loader reads the config, not a fixed size. */
        out->supported = (out->arch == DET_ARCH_SD1 || out->arch == DET_ARCH_UNKNOWN) &&
                         !out->inpainting;
        break;
    case DET_DIFFUSERS_TEXT:
        out->supported = out->arch == DET_ARCH_SD1 || out->arch == DET_ARCH_UNKNOWN;
        break;
    case DET_DIFFUSERS_VAE: out->supported = 1; break;
    case DET_LORA_KOHYA:
    case DET_LORA_PEFT:
        out->supported = (out->arch == DET_ARCH_SD1 || out->arch == DET_ARCH_UNKNOWN) && !c.lyco;
        break;
    default: out->supported = 0; break;
    }

    /* Summary line. */
    char *p = out->summary;
    size_t left = sizeof out->summary;
#define PUT(...)                                                                              \
    do {                                                                                      \
        int w_ = snprintf(p, left, __VA_ARGS__);                                              \
        if (w_ > 0) {                                                                         \
            size_t u_ = LMX_MIN((size_t)w_, left ? left - 1 : 0);                             \
            p += u_;                                                                          \
            left -= u_;                                                                       \
        }                                                                                     \
    } while (0)
    PUT("%s", det_kind_desc(out->kind));
    if (out->kind != DET_UNKNOWN) {
        if (out->arch != DET_ARCH_UNKNOWN)
            PUT(", %s%s", det_arch_name(out->arch),
                out->arch != DET_ARCH_SD1 ? " (not supported)" : "");
        else if (out->kind != DET_DIFFUSERS_VAE)
            PUT(out->kind == DET_LORA_KOHYA || out->kind == DET_LORA_PEFT
                    ? ", base model not identified"
                    : ", SD1.x family (custom size)");
    }
    if (out->inpainting) PUT(", inpainting UNet with 9 input channels (not supported)");
    if (out->kind == DET_SD_CHECKPOINT) {
        PUT(": %s%s%s%s", out->parts & DET_PART_UNET ? "UNet" : "no UNet",
            out->parts & DET_PART_TEXT ? " + text encoder" : "",
            out->parts & DET_PART_TEXT2 ? " + second text encoder" : "",
            out->parts & DET_PART_VAE ? " + VAE" : "");
        if (out->has_ema) PUT(", EMA weights");
    }
    if (out->kind == DET_LORA_KOHYA || out->kind == DET_LORA_PEFT || out->kind == DET_LYCORIS) {
        if (out->kind == DET_LYCORIS) {
            PUT(" (");
            const char *sep = "";
            static const struct {
                unsigned flag;
                const char *name;
            } algos[] = {{DET_LYCO_LOHA, "LoHa"},   {DET_LYCO_LOKR, "LoKr"},
                         {DET_LYCO_TUCKER, "Tucker/lora_mid"}, {DET_LYCO_DORA, "DoRA"},
                         {DET_LYCO_OFT, "OFT"},     {DET_LYCO_OTHER, "other"}};
            for (size_t i = 0; i < LMX_ARRAY_LEN(algos); i++)
                if (c.lyco & algos[i].flag) {
                    PUT("%s%s", sep, algos[i].name);
                    sep = ", ";
                }
            PUT(", not supported)");
        }
        if (out->kind != DET_LYCORIS && (c.lyco & DET_LYCO_DORA)) PUT(" (DoRA, not supported)");
        PUT(": %d module%s (UNet %d, text encoder %d", L->n_modules, L->n_modules == 1 ? "" : "s",
            L->n_unet, L->n_text);
        if (L->n_text2) PUT(", text encoder 2 %d", L->n_text2);
        PUT(")");
        if (L->n_conv) PUT(", %d on 3x3 convs", L->n_conv);
        if (L->rank[0]) {
            PUT(", rank %d", L->rank[0]);
            if (L->n_values_rank > 1) PUT(" and %d other%s", L->n_values_rank - 1,
                                          L->n_values_rank > 2 ? "s" : "");
        }
        if (L->n_alpha) {
            PUT(", alpha %g", (double)L->alpha[0]);
            if (L->n_values_alpha > 1) PUT(" and %d other%s", L->n_values_alpha - 1,
                                           L->n_values_alpha > 2 ? "s" : "");
        } else if (out->kind != DET_LYCORIS) {
            PUT(", no alpha (alpha = rank)");
        }
    }
#undef PUT
}

/* ---- pickle ------------------------------------------------------------- */

static int has_ext(const char *path, const char *const *exts, size_t n) {
    const char *dot = strrchr(path, '.');
    const char *slash = strrchr(path, '/');
    if (!dot || (slash && dot < slash)) return 0;
    for (size_t i = 0; i < n; i++)
        if (!strcasecmp(dot + 1, exts[i])) return 1;
    return 0;
}

int det_is_pickle(const char *path, char *why, size_t why_size) {
    static const char *const exts[] = {"ckpt", "pt", "pth", "bin", "pkl", "pickle"};
    uint64_t size;
    lmx_status st;
    char tmp[8];
    if (!why) why = tmp, why_size = sizeof tmp;
    why[0] = 0;
    int fd = io_open_regular(path, &size, &st);
    if (fd < 0) {
        lmx_err_clear();
        return 0;
    }
    uint8_t head[16] = {0};
    ssize_t got = read(fd, head, sizeof head);
    close(fd);
    if (got < 0) got = 0;
    /* A plausible safetensors header (u64 length, then '{') wins: a header
     * length such as 640 = 0x280 starts with the bytes of pickle's magic. */
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--) hl = (hl << 8) | head[i];
    if (got >= 10 && hl >= 2 && hl <= size - 8 && hl <= ST_MAX_HEADER &&
        (head[8] == '{' || head[8] == ' '))
        return 0;
    if (got >= 4 && !memcmp(head, "PK\x03\x04", 4)) {
        snprintf(why, why_size, "a zip archive, as torch.save writes");
        return 1;
    }
    if (got >= 2 && head[0] == 0x80 && head[1] >= 2 && head[1] <= 5) {
        snprintf(why, why_size, "a Python pickle (protocol %d)", head[1]);
        return 1;
    }
    if (has_ext(path, exts, LMX_ARRAY_LEN(exts))) {
        const char *dot = strrchr(path, '.');
        snprintf(why, why_size, "a %s file", dot ? dot : "pickle");
        return 1;
    }
    return 0;
}

/* ---- folders ------------------------------------------------------------ */

static char *join(const char *dir, const char *name) {
    size_t a = strlen(dir), b = strlen(name);
    char *p = lmx_malloc(a + b + 2);
    if (!p) return NULL;
    memcpy(p, dir, a);
    size_t k = a;
    if (a && dir[a - 1] != '/') p[k++] = '/';
    memcpy(p + k, name, b + 1);
    return p;
}

static int is_file(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Names in dir ending in one of `suffixes`, sorted (lmx_free each and the
 * array). At most 100000 entries are looked at. */
static lmx_status list_dir(const char *dir, const char *const *suffixes, size_t n_suf,
                          char ***out, int *n_out) {
    *out = NULL;
    *n_out = 0;
    DIR *d = opendir(dir);
    if (!d) return lmx_err(LMX_ERR_IO, "%s: cannot list the folder", dir);
    char **v = NULL;
    int n = 0, cap = 0;
    lmx_status st = LMX_OK;
    struct dirent *e;
    for (int seen = 0; (e = readdir(d)) != NULL && seen < 100000; seen++) {
        const char *nm = e->d_name;
        size_t len = strlen(nm);
        if (nm[0] == '.') continue;
        int ok = 0;
        for (size_t i = 0; i < n_suf && !ok; i++) ok = ends(nm, len, suffixes[i]);
        if (!ok) continue;
        if (n == cap) {
            int nc = cap ? 2 * cap : 16;
            char **nv = lmx_realloc(v, sizeof(char *) * (size_t)nc);
            if (!nv) {
                st = lmx_err(LMX_ERR_NOMEM, "%s: out of memory", dir);
                break;
            }
            v = nv;
            cap = nc;
        }
        v[n] = lmx_strdup(nm);
        if (!v[n]) {
            st = lmx_err(LMX_ERR_NOMEM, "%s: out of memory", dir);
            break;
        }
        n++;
    }
    closedir(d);
    if (st != LMX_OK) {
        for (int i = 0; i < n; i++) lmx_free(v[i]);
        lmx_free(v);
        return st;
    }
    if (n > 1) qsort(v, (size_t)n, sizeof(char *), cmp_str);
    *out = v;
    *n_out = n;
    return LMX_OK;
}

static void free_list(char **v, int n) {
    for (int i = 0; i < n; i++) lmx_free(v[i]);
    lmx_free(v);
}

lmx_status det_find_weights(const char *dir, char **path, int *is_pickle, int *sharded) {
    *path = NULL;
    *is_pickle = 0;
    if (sharded) *sharded = 0;
    static const char *const preferred[] = {"diffusion_pytorch_model.safetensors",
                                            "model.safetensors"};
    for (size_t i = 0; i < LMX_ARRAY_LEN(preferred); i++) {
        char *p = join(dir, preferred[i]);
        if (!p) return lmx_err(LMX_ERR_NOMEM, "%s: out of memory", dir);
        if (is_file(p)) {
            *path = p;
            return LMX_OK;
        }
        lmx_free(p);
    }
    static const char *const st_suf[] = {".safetensors"};
    static const char *const idx_suf[] = {".safetensors.index.json"};
    static const char *const pk_suf[] = {".bin", ".ckpt", ".pt", ".pth"};
    char **v = NULL;
    int n = 0;
    lmx_status st = list_dir(dir, st_suf, 1, &v, &n);
    if (st != LMX_OK) return st;
    if (n > 0) {
        *path = join(dir, v[0]);
        free_list(v, n);
        return *path ? LMX_OK : lmx_err(LMX_ERR_NOMEM, "%s: out of memory", dir);
    }
    free_list(v, n);
    st = list_dir(dir, idx_suf, 1, &v, &n);
    if (st != LMX_OK) return st;
    if (sharded) *sharded = n > 0;
    free_list(v, n);
    st = list_dir(dir, pk_suf, LMX_ARRAY_LEN(pk_suf), &v, &n);
    if (st != LMX_OK) return st;
    if (n > 0) {
        *path = join(dir, v[0]);
        *is_pickle = 1;
        free_list(v, n);
        return *path ? LMX_OK : lmx_err(LMX_ERR_NOMEM, "%s: out of memory", dir);
    }
    free_list(v, n);
    return LMX_OK;
}

static char *dup_or_null(const char *s) { return s ? lmx_strdup(s) : NULL; }

/* Parse a small JSON file (config.json, model_index.json); must be an object. */
static lmx_status read_json(const char *path, cJSON **out) {
    *out = NULL;
    char *text = NULL;
    size_t n = 0;
    lmx_status st = io_read_small(path, 4u << 20, &text, &n);
    if (st != LMX_OK) return st;
    if (!io_utf8_valid((const uint8_t *)text, n) || strlen(text) != n) {
        lmx_free(text);
        return lmx_err(LMX_ERR_FORMAT, "%s: not UTF-8 text", path);
    }
    io_cjson_init();
    io_cjson_oom_clear();
    cJSON *root = cJSON_ParseWithOpts(text, NULL, 0);
    lmx_free(text);
    if (!root)
        return io_cjson_oom() ? lmx_err(LMX_ERR_NOMEM, "%s: out of memory", path)
                              : lmx_err(LMX_ERR_FORMAT, "%s: malformed JSON", path);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return lmx_err(LMX_ERR_FORMAT, "%s: JSON is not an object", path);
    }
    *out = root;
    return LMX_OK;
}

static const char *json_str(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* _class_name, else architectures[0] (transformers configs). */
static const char *config_class(const cJSON *o) {
    const char *c = json_str(o, "_class_name");
    if (c) return c;
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(o, "architectures");
    if (cJSON_IsArray(a) && cJSON_IsString(a->child)) return a->child->valuestring;
    return NULL;
}

/* A component name is a plain folder name: no '/', not "." or "..". */
static int safe_component_name(const char *s) {
    return s[0] && strcmp(s, ".") && strcmp(s, "..") && !strchr(s, '/') && strlen(s) < 256;
}

lmx_status det_read_folder(const char *dir, det_folder *out) {
    memset(out, 0, sizeof *out);
    lmx_status st = LMX_OK;
    cJSON *root = NULL;
    char *idx = join(dir, "model_index.json");
    char *cfg = join(dir, "config.json");
    if (!idx || !cfg) {
        st = lmx_err(LMX_ERR_NOMEM, "%s: out of memory", dir);
        goto done;
    }
    struct stat sb;
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
        st = lmx_err(LMX_ERR_IO, "%s: not a folder", dir);
        goto done;
    }
    if (is_file(idx)) {
        out->type = DET_FOLDER_PIPELINE;
        st = read_json(idx, &root);
        if (st != LMX_OK) goto done;
        const char *cls = json_str(root, "_class_name"), *ver = json_str(root, "_diffusers_version");
        out->class_name = dup_or_null(cls);
        out->version = dup_or_null(ver);
        int n = cJSON_GetArraySize(root);
        out->comp = lmx_calloc((size_t)n + 1, sizeof(det_component));
        if (!out->comp || (cls && !out->class_name) || (ver && !out->version)) {
            st = lmx_err(LMX_ERR_NOMEM, "%s: out of memory", idx);
            goto done;
        }
        for (const cJSON *it = root->child; it; it = it->next) {
            if (!it->string || it->string[0] == '_' || !cJSON_IsArray(it)) continue;
            if (cJSON_GetArraySize(it) != 2) continue;
            if (!safe_component_name(it->string)) {
                char q[80];
                st = lmx_err(LMX_ERR_FORMAT, "%s: bad component name '%s'", idx,
                             io_quote(q, sizeof q, it->string, strlen(it->string), 40));
                goto done;
            }
            det_component *c = &out->comp[out->n_comp++];
            const cJSON *lib = it->child, *jcls = it->child->next;
            c->name = lmx_strdup(it->string);
            c->library = cJSON_IsString(lib) ? lmx_strdup(lib->valuestring) : NULL;
            c->class_name = cJSON_IsString(jcls) ? lmx_strdup(jcls->valuestring) : NULL;
            if (!c->name || (cJSON_IsString(lib) && !c->library) ||
                (cJSON_IsString(jcls) && !c->class_name)) {
                st = lmx_err(LMX_ERR_NOMEM, "%s: out of memory", idx);
                goto done;
            }
            char *sub = join(dir, c->name);
            if (!sub) {
                st = lmx_err(LMX_ERR_NOMEM, "%s: out of memory", idx);
                goto done;
            }
            if (c->class_name && stat(sub, &sb) == 0 && S_ISDIR(sb.st_mode))
                st = det_find_weights(sub, &c->weights, &c->weights_pickle, &c->sharded);
            lmx_free(sub);
            if (st != LMX_OK) goto done;
        }
    } else if (is_file(cfg)) {
        out->type = DET_FOLDER_COMPONENT;
        st = read_json(cfg, &root);
        if (st != LMX_OK) goto done;
        const char *cls = config_class(root), *ver = json_str(root, "_diffusers_version");
        if (!ver) ver = json_str(root, "transformers_version");
        out->class_name = dup_or_null(cls);
        out->version = dup_or_null(ver);
        out->comp = lmx_calloc(1, sizeof(det_component));
        if (!out->comp || (cls && !out->class_name) || (ver && !out->version)) {
            st = lmx_err(LMX_ERR_NOMEM, "%s: out of memory", cfg);
            goto done;
        }
        out->n_comp = 1;
        const char *slash = strrchr(dir, '/');
        const char *base = slash && slash[1] ? slash + 1 : dir;
        out->comp[0].name = lmx_strdup(base);
        out->comp[0].class_name = dup_or_null(out->class_name);
        if (!out->comp[0].name || (out->class_name && !out->comp[0].class_name)) {
            st = lmx_err(LMX_ERR_NOMEM, "%s: out of memory", cfg);
            goto done;
        }
        st = det_find_weights(dir, &out->comp[0].weights, &out->comp[0].weights_pickle,
                              &out->comp[0].sharded);
    } else {
        out->type = DET_FOLDER_OTHER;
        static const char *const suf[] = {".safetensors", ".ckpt", ".pt", ".pth", ".bin"};
        st = list_dir(dir, suf, LMX_ARRAY_LEN(suf), &out->files, &out->n_files);
    }
done:
    cJSON_Delete(root);
    lmx_free(idx);
    lmx_free(cfg);
    if (st != LMX_OK) det_folder_free(out);
    return st;
}

void det_folder_free(det_folder *f) {
    if (!f) return;
    for (int i = 0; i < f->n_comp; i++) {
        lmx_free(f->comp[i].name);
        lmx_free(f->comp[i].library);
        lmx_free(f->comp[i].class_name);
        lmx_free(f->comp[i].weights);
    }
    lmx_free(f->comp);
    free_list(f->files, f->n_files);
    lmx_free(f->class_name);
    lmx_free(f->version);
    memset(f, 0, sizeof *f);
}
