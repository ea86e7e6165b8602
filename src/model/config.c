/*
 * config.c - config.json parsing (cJSON) and shape-based inference of the
 * SD1.x network hyper-parameters. See config.h.
 *
 * Parsing starts from the class defaults of diffusers 0.32.2
 * (UNet2DConditionModel, AutoencoderKL) and transformers 4.45.1
 * (CLIPTextConfig), as from_pretrained does for absent keys. The UNet's
 * "attention_head_dim" is the number of heads (a diffusers naming quirk:
 * num_attention_heads = num_attention_heads or attention_head_dim); a list
 * gives one value per down block, up blocks use it reversed, the mid block
 * the last entry.
 */
#include "model/config.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <string.h>

/* ---- defaults -------------------------------------------------------------- */

static unet_config unet_class_defaults(void) {
    unet_config c;
    memset(&c, 0, sizeof c);
    c.in_channels = 4;
    c.out_channels = 4;
    c.n_levels = 4;
    int ch[4] = {320, 640, 1280, 1280};
    for (int i = 0; i < 4; i++) {
        c.ch[i] = ch[i];
        c.down_attn[i] = i < 3;
        c.up_attn[i] = i > 0;
        c.heads[i] = 8;
        c.tlayers[i] = 1;
    }
    c.layers_per_block = 2;
    c.cross_dim = 1280;
    c.linear_proj = 0;
    c.groups = 32;
    c.eps = 1e-5f;
    c.flip_sin_to_cos = 1;
    c.freq_shift = 0.0f;
    c.downsample_padding = 1;
    c.center_input = 0;
    c.sample_size = 64;
    return c;
}

unet_config unet_config_sd15(void) {
    unet_config c = unet_class_defaults();
    c.cross_dim = 768;
    return c;
}

clip_text_config clip_text_config_sd15(void) {
    clip_text_config c = {49408, 768, 3072, 12, 12, 77, 1e-5f, CLIP_ACT_QUICK_GELU};
    return c;
}

static clip_text_config clip_class_defaults(void) {
    clip_text_config c = {49408, 512, 2048, 12, 8, 77, 1e-5f, CLIP_ACT_QUICK_GELU};
    return c;
}

vae_config vae_config_sd15(void) {
    vae_config c;
    memset(&c, 0, sizeof c);
    c.in_channels = 3;
    c.out_channels = 3;
    c.latent_channels = 4;
    c.n_levels = 4;
    int ch[4] = {128, 256, 512, 512};
    for (int i = 0; i < 4; i++) c.ch[i] = ch[i];
    c.layers_per_block = 2;
    c.groups = 32;
    c.scaling_factor = 0.18215f;
    c.use_quant_conv = c.use_post_quant_conv = c.mid_attn = 1;
    c.sample_size = 512;
    return c;
}

static vae_config vae_class_defaults(void) {
    vae_config c = vae_config_sd15();
    c.n_levels = 1;
    c.ch[0] = 64;
    c.layers_per_block = 1;
    c.sample_size = 32;
    return c;
}

/* ---- JSON helpers -------------------------------------------------------------- */

static int present(const cJSON *v) { return v && !cJSON_IsNull(v); }

static lmx_status j_int(const cJSON *o, const char *key, int *out, const char *label) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!present(v)) return LMX_OK;
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || v->valuedouble < 0 ||
        v->valuedouble > 1e7)
        return lmx_err(LMX_ERR_FORMAT, "%s: \"%s\": expected a non-negative integer", label, key);
    *out = (int)v->valuedouble;
    return LMX_OK;
}

static lmx_status j_float(const cJSON *o, const char *key, float *out, const char *label) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!present(v)) return LMX_OK;
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
        return lmx_err(LMX_ERR_FORMAT, "%s: \"%s\": expected a number", label, key);
    *out = (float)v->valuedouble;
    return LMX_OK;
}

static lmx_status j_bool(const cJSON *o, const char *key, int *out, const char *label) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!present(v)) return LMX_OK;
    if (!cJSON_IsBool(v)) return lmx_err(LMX_ERR_FORMAT, "%s: \"%s\": expected true or false", label, key);
    *out = cJSON_IsTrue(v);
    return LMX_OK;
}

/* An integer or a list of n integers (a scalar is repeated). *n_out gets the
 * list length (or -1 for a scalar). */
static lmx_status j_int_list(const cJSON *o, const char *key, int *out, int max, int *n_out,
                             const char *label) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    *n_out = 0;
    if (!present(v)) return LMX_OK;
    if (cJSON_IsNumber(v)) {
        int x = 0;
        lmx_status st = j_int(o, key, &x, label);
        if (st) return st;
        for (int i = 0; i < max; i++) out[i] = x;
        *n_out = -1;
        return LMX_OK;
    }
    if (!cJSON_IsArray(v)) return lmx_err(LMX_ERR_FORMAT, "%s: \"%s\": expected a list of integers", label, key);
    int n = cJSON_GetArraySize(v);
    if (n < 1 || n > max)
        return lmx_err(LMX_ERR_UNSUPPORTED, "%s: \"%s\": %d entries (1 to %d supported)", label, key, n, max);
    for (int i = 0; i < n; i++) {
        const cJSON *e = cJSON_GetArrayItem(v, i);
        if (!cJSON_IsNumber(e) || e->valuedouble != floor(e->valuedouble) || e->valuedouble < 0 ||
            e->valuedouble > 1e7)
            return lmx_err(LMX_ERR_FORMAT, "%s: \"%s\"[%d]: expected a non-negative integer", label, key, i);
        out[i] = (int)e->valuedouble;
    }
    *n_out = n;
    return LMX_OK;
}

/* A list of strings; each is matched against `names` -> index. */
static lmx_status j_str_list(const cJSON *o, const char *key, const char *const *names, int n_names,
                             int *out, int max, int *n_out, const char *label) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    *n_out = 0;
    if (!present(v)) return LMX_OK;
    if (!cJSON_IsArray(v)) return lmx_err(LMX_ERR_FORMAT, "%s: \"%s\": expected a list of strings", label, key);
    int n = cJSON_GetArraySize(v);
    if (n < 1 || n > max)
        return lmx_err(LMX_ERR_UNSUPPORTED, "%s: \"%s\": %d entries (1 to %d supported)", label, key, n, max);
    for (int i = 0; i < n; i++) {
        const cJSON *e = cJSON_GetArrayItem(v, i);
        if (!cJSON_IsString(e)) return lmx_err(LMX_ERR_FORMAT, "%s: \"%s\"[%d]: expected a string", label, key, i);
        int k = -1;
        for (int j = 0; j < n_names; j++)
            if (strcmp(e->valuestring, names[j]) == 0) k = j;
        if (k < 0)
            return lmx_err(LMX_ERR_UNSUPPORTED, "%s: \"%s\"[%d]: block type \"%s\" is not supported", label,
                           key, i, e->valuestring);
        out[i] = k;
    }
    *n_out = n;
    return LMX_OK;
}

/* Keys that must be absent, null, or have the given default. */
typedef struct must {
    const char *key;
    enum { M_NULL, M_FALSE, M_STR, M_NUM } kind;
    const char *str;
    double num;
} must;

static lmx_status check_musts(const cJSON *o, const must *m, size_t n, const char *label) {
    for (size_t i = 0; i < n; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, m[i].key);
        if (!present(v)) continue;
        int ok = 0;
        switch (m[i].kind) {
        case M_NULL: ok = 0; break;
        case M_FALSE:
            ok = cJSON_IsFalse(v);
            if (cJSON_IsArray(v)) {
                ok = 1;
                for (int k = 0; k < cJSON_GetArraySize(v); k++)
                    if (!cJSON_IsFalse(cJSON_GetArrayItem(v, k))) ok = 0;
            }
            break;
        case M_STR: ok = cJSON_IsString(v) && strcmp(v->valuestring, m[i].str) == 0; break;
        case M_NUM: ok = cJSON_IsNumber(v) && v->valuedouble == m[i].num; break;
        }
        if (!ok) {
            char *txt = cJSON_PrintUnformatted(v);
            lmx_status st = lmx_err(LMX_ERR_UNSUPPORTED, "%s: \"%s\": %s is not supported (SD1.x models only)",
                                    label, m[i].key, txt ? txt : "this value");
            cJSON_free(txt);
            return st;
        }
    }
    return LMX_OK;
}

static lmx_status parse_root(const char *json, const char *label, cJSON **out) {
    *out = cJSON_Parse(json);
    if (!*out) return lmx_err(LMX_ERR_FORMAT, "%s: not valid JSON", label);
    if (!cJSON_IsObject(*out)) {
        cJSON_Delete(*out);
        *out = NULL;
        return lmx_err(LMX_ERR_FORMAT, "%s: expected a JSON object", label);
    }
    return LMX_OK;
}

/* ---- UNet ----------------------------------------------------------------------- */

lmx_status unet_config_parse(unet_config *c, const char *json, const char *label) {
    static const char *const down_names[] = {"DownBlock2D", "CrossAttnDownBlock2D"};
    static const char *const up_names[] = {"UpBlock2D", "CrossAttnUpBlock2D"};
    static const must musts[] = {
        {"class_embed_type", M_NULL, 0, 0},       {"addition_embed_type", M_NULL, 0, 0},
        {"addition_time_embed_dim", M_NULL, 0, 0}, {"time_cond_proj_dim", M_NULL, 0, 0},
        {"encoder_hid_dim", M_NULL, 0, 0},        {"encoder_hid_dim_type", M_NULL, 0, 0},
        {"num_class_embeds", M_NULL, 0, 0},       {"num_attention_heads", M_NULL, 0, 0},
        {"time_embedding_dim", M_NULL, 0, 0},     {"time_embedding_act_fn", M_NULL, 0, 0},
        {"timestep_post_act", M_NULL, 0, 0},      {"cross_attention_norm", M_NULL, 0, 0},
        {"reverse_transformer_layers_per_block", M_NULL, 0, 0},
        {"projection_class_embeddings_input_dim", M_NULL, 0, 0},
        {"dual_cross_attention", M_FALSE, 0, 0},  {"only_cross_attention", M_FALSE, 0, 0},
        {"resnet_skip_time_act", M_FALSE, 0, 0},  {"class_embeddings_concat", M_FALSE, 0, 0},
        {"mid_block_only_cross_attention", M_NULL, 0, 0},
        {"resnet_time_scale_shift", M_STR, "default", 0},
        {"time_embedding_type", M_STR, "positional", 0},
        {"attention_type", M_STR, "default", 0},
        {"act_fn", M_STR, "silu", 0},
        {"mid_block_type", M_STR, "UNetMidBlock2DCrossAttn", 0},
        {"resnet_out_scale_factor", M_NUM, 0, 1.0},
        {"mid_block_scale_factor", M_NUM, 0, 1.0},
        {"conv_in_kernel", M_NUM, 0, 3},
        {"conv_out_kernel", M_NUM, 0, 3},
    };
    cJSON *o = NULL;
    lmx_status st = parse_root(json, label, &o);
    if (st) return st;
    *c = unet_class_defaults();
    int n_ch = 0, n_down = 0, n_up = 0, n_heads = 0, n_tl = 0, n_lpb = 0, n_cd = 0;
    int lpb[CFG_MAX_LEVELS], cd[CFG_MAX_LEVELS];
    /* null is "absent" for the other keys, but mid_block_type: null means
     * no mid block at all (diffusers builds none), which SD1.x never has. */
    const cJSON *mbt = cJSON_GetObjectItemCaseSensitive(o, "mid_block_type");
    if (mbt && cJSON_IsNull(mbt)) {
        st = lmx_err(LMX_ERR_UNSUPPORTED,
                     "%s: a UNet without a mid block (\"mid_block_type\": null) is not supported "
                     "(SD1.x UNets have UNetMidBlock2DCrossAttn)",
                     label);
        goto done;
    }
    if ((st = check_musts(o, musts, LMX_ARRAY_LEN(musts), label))) goto done;
    if ((st = j_int(o, "in_channels", &c->in_channels, label))) goto done;
    if ((st = j_int(o, "out_channels", &c->out_channels, label))) goto done;
    if ((st = j_int(o, "sample_size", &c->sample_size, label))) goto done;
    if ((st = j_bool(o, "center_input_sample", &c->center_input, label))) goto done;
    if ((st = j_bool(o, "flip_sin_to_cos", &c->flip_sin_to_cos, label))) goto done;
    if ((st = j_float(o, "freq_shift", &c->freq_shift, label))) goto done;
    if ((st = j_int(o, "downsample_padding", &c->downsample_padding, label))) goto done;
    if ((st = j_int(o, "norm_num_groups", &c->groups, label))) goto done;
    if ((st = j_float(o, "norm_eps", &c->eps, label))) goto done;
    if ((st = j_bool(o, "use_linear_projection", &c->linear_proj, label))) goto done;
    if ((st = j_int_list(o, "block_out_channels", c->ch, CFG_MAX_LEVELS, &n_ch, label))) goto done;
    if (n_ch == -1) {
        st = lmx_err(LMX_ERR_FORMAT, "%s: \"block_out_channels\": expected a list", label);
        goto done;
    }
    if (n_ch > 0) c->n_levels = n_ch;
    if ((st = j_str_list(o, "down_block_types", down_names, 2, c->down_attn, CFG_MAX_LEVELS, &n_down, label)))
        goto done;
    if ((st = j_str_list(o, "up_block_types", up_names, 2, c->up_attn, CFG_MAX_LEVELS, &n_up, label)))
        goto done;
    if ((n_down && n_down != c->n_levels) || (n_up && n_up != c->n_levels) || (!n_down && n_ch && n_ch != 4) ||
        (!n_up && n_ch && n_ch != 4)) {
        st = lmx_err(LMX_ERR_FORMAT, "%s: block_out_channels, down_block_types and up_block_types differ in length",
                     label);
        goto done;
    }
    if ((st = j_int_list(o, "layers_per_block", lpb, CFG_MAX_LEVELS, &n_lpb, label))) goto done;
    if (n_lpb) {
        for (int i = 1; i < (n_lpb < 0 ? 1 : n_lpb); i++)
            if (lpb[i] != lpb[0]) {
                st = lmx_err(LMX_ERR_UNSUPPORTED, "%s: \"layers_per_block\": per-block values are not supported", label);
                goto done;
            }
        c->layers_per_block = lpb[0];
    }
    if ((st = j_int_list(o, "cross_attention_dim", cd, CFG_MAX_LEVELS, &n_cd, label))) goto done;
    if (n_cd) {
        for (int i = 1; i < (n_cd < 0 ? 1 : n_cd); i++)
            if (cd[i] != cd[0]) {
                st = lmx_err(LMX_ERR_UNSUPPORTED, "%s: \"cross_attention_dim\": per-block values are not supported", label);
                goto done;
            }
        c->cross_dim = cd[0];
    }
    if ((st = j_int_list(o, "attention_head_dim", c->heads, CFG_MAX_LEVELS, &n_heads, label))) goto done;
    if (n_heads > 0 && n_heads != c->n_levels) {
        st = lmx_err(LMX_ERR_FORMAT, "%s: \"attention_head_dim\": %d entries for %d blocks", label, n_heads, c->n_levels);
        goto done;
    }
    if ((st = j_int_list(o, "transformer_layers_per_block", c->tlayers, CFG_MAX_LEVELS, &n_tl, label))) goto done;
    if (n_tl > 0 && n_tl != c->n_levels) {
        st = lmx_err(LMX_ERR_FORMAT, "%s: \"transformer_layers_per_block\": %d entries for %d blocks", label, n_tl,
                     c->n_levels);
        goto done;
    }
    st = unet_config_check(c, label);
done:
    cJSON_Delete(o);
    return st;
}

lmx_status unet_config_check(const unet_config *c, const char *label) {
    if (c->n_levels < 1 || c->n_levels > CFG_MAX_LEVELS)
        return lmx_err(LMX_ERR_FORMAT, "%s: %d UNet levels (1 to %d supported)", label, c->n_levels, CFG_MAX_LEVELS);
    if (c->in_channels < 1 || c->out_channels < 1 || c->layers_per_block < 1 || c->layers_per_block > 16 ||
        c->groups < 1 || c->cross_dim < 1 || !(c->eps > 0))
        return lmx_err(LMX_ERR_FORMAT, "%s: a UNet size is zero or out of range", label);
    if (c->ch[0] % 2)
        return lmx_err(LMX_ERR_FORMAT, "%s: block_out_channels[0] = %d must be even", label, c->ch[0]);
    if (c->downsample_padding > 1)
        return lmx_err(LMX_ERR_UNSUPPORTED, "%s: downsample_padding %d", label, c->downsample_padding);
    for (int i = 0; i < c->n_levels; i++) {
        if (c->ch[i] < 1 || c->ch[i] % c->groups)
            return lmx_err(LMX_ERR_FORMAT, "%s: block_out_channels[%d] = %d is not a multiple of norm_num_groups %d",
                           label, i, c->ch[i], c->groups);
        if (c->heads[i] < 1 || c->ch[i] % c->heads[i])
            return lmx_err(LMX_ERR_FORMAT, "%s: %d channels of block %d do not split into %d heads", label, c->ch[i], i,
                           c->heads[i]);
        if (c->tlayers[i] < 1 || c->tlayers[i] > 64)
            return lmx_err(LMX_ERR_FORMAT, "%s: transformer_layers_per_block[%d] = %d", label, i, c->tlayers[i]);
        /* up block i runs at the channels of reversed block i with reversed heads */
        int r = c->n_levels - 1 - i;
        if (c->up_attn[i] && c->ch[r] % c->heads[r])
            return lmx_err(LMX_ERR_FORMAT, "%s: %d channels of up block %d do not split into %d heads", label, c->ch[r],
                           i, c->heads[r]);
    }
    return LMX_OK;
}

/* ---- text encoder ------------------------------------------------------------------ */

lmx_status clip_text_config_parse(clip_text_config *c, const char *json, const char *label) {
    cJSON *o = NULL;
    lmx_status st = parse_root(json, label, &o);
    if (st) return st;
    *c = clip_class_defaults();
    const cJSON *act = cJSON_GetObjectItemCaseSensitive(o, "hidden_act");
    if ((st = j_int(o, "vocab_size", &c->vocab, label))) goto done;
    if ((st = j_int(o, "hidden_size", &c->hidden, label))) goto done;
    if ((st = j_int(o, "intermediate_size", &c->intermediate, label))) goto done;
    if ((st = j_int(o, "num_hidden_layers", &c->layers, label))) goto done;
    if ((st = j_int(o, "num_attention_heads", &c->heads, label))) goto done;
    if ((st = j_int(o, "max_position_embeddings", &c->max_pos, label))) goto done;
    if ((st = j_float(o, "layer_norm_eps", &c->eps, label))) goto done;
    if (present(act)) {
        if (cJSON_IsString(act) && strcmp(act->valuestring, "quick_gelu") == 0) {
            c->act = CLIP_ACT_QUICK_GELU;
        } else if (cJSON_IsString(act) && strcmp(act->valuestring, "gelu") == 0) {
            c->act = CLIP_ACT_GELU;
        } else {
            st = lmx_err(LMX_ERR_UNSUPPORTED, "%s: \"hidden_act\": only quick_gelu and gelu are supported", label);
            goto done;
        }
    }
    st = clip_text_config_check(c, label);
done:
    cJSON_Delete(o);
    return st;
}

lmx_status clip_text_config_check(const clip_text_config *c, const char *label) {
    if (c->vocab < 1 || c->hidden < 1 || c->intermediate < 1 || c->layers < 1 || c->max_pos < 1 || !(c->eps > 0) ||
        c->layers > 256)
        return lmx_err(LMX_ERR_FORMAT, "%s: a text encoder size is zero or out of range", label);
    if (c->heads < 1 || c->hidden % c->heads)
        return lmx_err(LMX_ERR_FORMAT, "%s: hidden_size %d does not split into %d heads", label, c->hidden, c->heads);
    return LMX_OK;
}

/* ---- VAE -------------------------------------------------------------------------------- */

lmx_status vae_config_parse(vae_config *c, const char *json, const char *label) {
    static const char *const down_names[] = {"DownEncoderBlock2D"};
    static const char *const up_names[] = {"UpDecoderBlock2D"};
    static const must musts[] = {
        {"shift_factor", M_NULL, 0, 0},
        {"latents_mean", M_NULL, 0, 0},
        {"latents_std", M_NULL, 0, 0},
        {"act_fn", M_STR, "silu", 0},
    };
    cJSON *o = NULL;
    lmx_status st = parse_root(json, label, &o);
    if (st) return st;
    *c = vae_class_defaults();
    int n_ch = 0, n_down = 0, n_up = 0, types[CFG_MAX_LEVELS];
    if ((st = check_musts(o, musts, LMX_ARRAY_LEN(musts), label))) goto done;
    if ((st = j_int(o, "in_channels", &c->in_channels, label))) goto done;
    if ((st = j_int(o, "out_channels", &c->out_channels, label))) goto done;
    if ((st = j_int(o, "latent_channels", &c->latent_channels, label))) goto done;
    if ((st = j_int(o, "layers_per_block", &c->layers_per_block, label))) goto done;
    if ((st = j_int(o, "norm_num_groups", &c->groups, label))) goto done;
    if ((st = j_int(o, "sample_size", &c->sample_size, label))) goto done;
    if ((st = j_float(o, "scaling_factor", &c->scaling_factor, label))) goto done;
    if ((st = j_bool(o, "use_quant_conv", &c->use_quant_conv, label))) goto done;
    if ((st = j_bool(o, "use_post_quant_conv", &c->use_post_quant_conv, label))) goto done;
    if ((st = j_bool(o, "mid_block_add_attention", &c->mid_attn, label))) goto done;
    if ((st = j_int_list(o, "block_out_channels", c->ch, CFG_MAX_LEVELS, &n_ch, label))) goto done;
    if (n_ch == -1) {
        st = lmx_err(LMX_ERR_FORMAT, "%s: \"block_out_channels\": expected a list", label);
        goto done;
    }
    if (n_ch > 0) c->n_levels = n_ch;
    if ((st = j_str_list(o, "down_block_types", down_names, 1, types, CFG_MAX_LEVELS, &n_down, label))) goto done;
    if ((st = j_str_list(o, "up_block_types", up_names, 1, types, CFG_MAX_LEVELS, &n_up, label))) goto done;
    if ((n_down && n_down != c->n_levels) || (n_up && n_up != c->n_levels)) {
        st = lmx_err(LMX_ERR_FORMAT, "%s: block_out_channels, down_block_types and up_block_types differ in length",
                     label);
        goto done;
    }
    st = vae_config_check(c, label);
done:
    cJSON_Delete(o);
    return st;
}

lmx_status vae_config_check(const vae_config *c, const char *label) {
    if (c->n_levels < 1 || c->n_levels > CFG_MAX_LEVELS)
        return lmx_err(LMX_ERR_FORMAT, "%s: %d VAE levels (1 to %d supported)", label, c->n_levels, CFG_MAX_LEVELS);
    if (c->in_channels < 1 || c->out_channels < 1 || c->latent_channels < 1 || c->layers_per_block < 1 ||
        c->layers_per_block > 16 || c->groups < 1 || !(c->scaling_factor > 0) || !isfinite(c->scaling_factor))
        return lmx_err(LMX_ERR_FORMAT, "%s: a VAE size is zero or out of range", label);
    for (int i = 0; i < c->n_levels; i++)
        if (c->ch[i] < 1 || c->ch[i] % c->groups)
            return lmx_err(LMX_ERR_FORMAT, "%s: block_out_channels[%d] = %d is not a multiple of norm_num_groups %d",
                           label, i, c->ch[i], c->groups);
    return LMX_OK;
}

/* ---- inference from LDM tensor shapes ------------------------------------------------------ */

static const st_tensor *findf(const st_file *f, const char *prefix, const char *fmt, int a, int b) {
    char name[512], tail[256];
    snprintf(tail, sizeof tail, fmt, a, b);
    snprintf(name, sizeof name, "%s%s", prefix, tail);
    return st_find(f, name);
}

/* Largest integer k such that some key starts with prefix + head + "k." (-1 if none). */
static int max_index(const st_file *f, const char *prefix, const char *head) {
    char p[512];
    int best = -1;
    size_t n = (size_t)snprintf(p, sizeof p, "%s%s", prefix, head);
    for (int i = 0; i < st_count(f); i++) {
        const char *name = st_at(f, i)->name;
        if (strncmp(name, p, n) != 0) continue;
        const char *q = name + n;
        if (*q < '0' || *q > '9') continue;
        long k = 0;
        while (*q >= '0' && *q <= '9' && k < 100000) k = k * 10 + (*q++ - '0');
        if (*q == '.' && k > best) best = (int)k;
    }
    return best;
}

static lmx_status need(const st_tensor *t, const char *prefix, const char *what, int ndim) {
    if (!t) return lmx_err(LMX_ERR_FORMAT, "%s: no %s tensor: not an SD1.x checkpoint layout", prefix, what);
    if (t->ndim != ndim)
        return lmx_err(LMX_ERR_SHAPE, "%s%s: expected %d dimensions, got %d", prefix, what, ndim, t->ndim);
    return LMX_OK;
}

lmx_status unet_config_infer_ldm(unet_config *c, const st_file *f, const char *p) {
    lmx_status st;
    *c = unet_config_sd15();
    const st_tensor *t = findf(f, p, "input_blocks.0.0.weight", 0, 0);
    if ((st = need(t, p, "input_blocks.0.0.weight", 4))) return st;
    c->ch[0] = (int)t->shape[0];
    c->in_channels = (int)t->shape[1];
    t = findf(f, p, "out.2.weight", 0, 0);
    if ((st = need(t, p, "out.2.weight", 4))) return st;
    c->out_channels = (int)t->shape[0];
    if (findf(f, p, "label_emb.0.0.weight", 0, 0))
        return lmx_err(LMX_ERR_UNSUPPORTED, "%slabel_emb: an SDXL-style (class/size-conditioned) UNet is not supported", p);
    int n_in = max_index(f, p, "input_blocks.") + 1;
    int L = -1;
    for (int k = 1; k < n_in; k++)
        if (findf(f, p, "input_blocks.%d.0.op.weight", k, 0)) {
            L = k - 1;
            break;
        }
    if (L < 0) L = n_in - 1;
    if (L < 1 || n_in % (L + 1) != 0 || n_in / (L + 1) > CFG_MAX_LEVELS)
        return lmx_err(LMX_ERR_FORMAT, "%sinput_blocks: %d blocks do not form a UNet layout", p, n_in);
    c->layers_per_block = L;
    c->n_levels = n_in / (L + 1);
    int found_cross = 0;
    for (int i = 0; i < c->n_levels; i++) {
        int k = 1 + i * (L + 1);
        t = findf(f, p, "input_blocks.%d.0.out_layers.3.weight", k, 0);
        if (!t || t->ndim != 4)
            return lmx_err(LMX_ERR_FORMAT, "%sinput_blocks.%d.0.out_layers.3.weight: missing or not a conv", p, k);
        c->ch[i] = (int)t->shape[0];
        c->heads[i] = 8;
        c->tlayers[i] = 1;
        const st_tensor *pi = findf(f, p, "input_blocks.%d.1.proj_in.weight", k, 0);
        c->down_attn[i] = pi != NULL;
        if (pi) {
            c->linear_proj = pi->ndim == 2;
            char head[64];
            snprintf(head, sizeof head, "input_blocks.%d.1.transformer_blocks.", k);
            c->tlayers[i] = max_index(f, p, head) + 1;
            if (c->tlayers[i] < 1)
                return lmx_err(LMX_ERR_FORMAT, "%sinput_blocks.%d.1: attention without transformer blocks", p, k);
            t = findf(f, p, "input_blocks.%d.1.transformer_blocks.0.attn2.to_k.weight", k, 0);
            if (!t || t->ndim != 2)
                return lmx_err(LMX_ERR_FORMAT, "%sinput_blocks.%d.1.transformer_blocks.0.attn2.to_k.weight: missing", p, k);
            c->cross_dim = (int)t->shape[1];
            found_cross = 1;
        }
        c->up_attn[i] = findf(f, p, "output_blocks.%d.1.proj_in.weight", i * (L + 1), 0) != NULL;
    }
    if (!findf(f, p, "middle_block.1.proj_in.weight", 0, 0))
        return lmx_err(LMX_ERR_UNSUPPORTED, "%smiddle_block.1: a UNet without mid-block attention is not supported", p);
    if (!found_cross) {
        t = findf(f, p, "middle_block.1.transformer_blocks.0.attn2.to_k.weight", 0, 0);
        if ((st = need(t, p, "middle_block.1.transformer_blocks.0.attn2.to_k.weight", 2))) return st;
        c->cross_dim = (int)t->shape[1];
    }
    /* SD2.x: 64-dim heads (the head count cannot be read from shapes) */
    if (c->cross_dim == 1024)
        for (int i = 0; i < c->n_levels; i++) c->heads[i] = c->ch[i] / 64 > 0 ? c->ch[i] / 64 : 1;
    return unet_config_check(c, p);
}

lmx_status clip_text_config_infer(clip_text_config *c, const st_file *f, const char *p) {
    lmx_status st;
    *c = clip_text_config_sd15();
    const st_tensor *t = findf(f, p, "embeddings.token_embedding.weight", 0, 0);
    if ((st = need(t, p, "embeddings.token_embedding.weight", 2))) return st;
    c->vocab = (int)t->shape[0];
    c->hidden = (int)t->shape[1];
    t = findf(f, p, "embeddings.position_embedding.weight", 0, 0);
    if ((st = need(t, p, "embeddings.position_embedding.weight", 2))) return st;
    c->max_pos = (int)t->shape[0];
    c->layers = max_index(f, p, "encoder.layers.") + 1;
    if (c->layers < 1) return lmx_err(LMX_ERR_FORMAT, "%sencoder.layers: none found", p);
    t = findf(f, p, "encoder.layers.0.mlp.fc1.weight", 0, 0);
    if ((st = need(t, p, "encoder.layers.0.mlp.fc1.weight", 2))) return st;
    c->intermediate = (int)t->shape[0];
    if (c->hidden % 64)
        return lmx_err(LMX_ERR_UNSUPPORTED,
                       "%s: text hidden size %d: the head count cannot be inferred (not a multiple of 64); "
                       "store a \"loramix.text_config\" in the file's metadata",
                       p, c->hidden);
    c->heads = c->hidden / 64;
    return clip_text_config_check(c, p);
}

lmx_status vae_config_infer_ldm(vae_config *c, const st_file *f, const char *p) {
    lmx_status st;
    *c = vae_config_sd15();
    const st_tensor *t = findf(f, p, "encoder.conv_in.weight", 0, 0);
    if ((st = need(t, p, "encoder.conv_in.weight", 4))) return st;
    c->in_channels = (int)t->shape[1];
    c->n_levels = max_index(f, p, "encoder.down.") + 1;
    if (c->n_levels < 1 || c->n_levels > CFG_MAX_LEVELS)
        return lmx_err(LMX_ERR_FORMAT, "%sencoder.down: %d levels", p, c->n_levels);
    c->layers_per_block = max_index(f, p, "encoder.down.0.block.") + 1;
    if (c->layers_per_block < 1) return lmx_err(LMX_ERR_FORMAT, "%sencoder.down.0.block: none found", p);
    for (int i = 0; i < c->n_levels; i++) {
        t = findf(f, p, "encoder.down.%d.block.0.conv2.weight", i, 0);
        if (!t || t->ndim != 4)
            return lmx_err(LMX_ERR_FORMAT, "%sencoder.down.%d.block.0.conv2.weight: missing or not a conv", p, i);
        c->ch[i] = (int)t->shape[0];
    }
    t = findf(f, p, "decoder.conv_in.weight", 0, 0);
    if ((st = need(t, p, "decoder.conv_in.weight", 4))) return st;
    c->latent_channels = (int)t->shape[1];
    t = findf(f, p, "decoder.conv_out.weight", 0, 0);
    if ((st = need(t, p, "decoder.conv_out.weight", 4))) return st;
    c->out_channels = (int)t->shape[0];
    c->use_quant_conv = findf(f, p, "quant_conv.weight", 0, 0) != NULL;
    c->use_post_quant_conv = findf(f, p, "post_quant_conv.weight", 0, 0) != NULL;
    c->mid_attn = findf(f, p, "encoder.mid.attn_1.q.weight", 0, 0) != NULL ||
                  findf(f, p, "decoder.mid.attn_1.q.weight", 0, 0) != NULL;
    return vae_config_check(c, p);
}
