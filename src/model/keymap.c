/*
 * keymap.c - diffusers <-> original LDM checkpoint names, as tables.
 *
 * The module-level rules come from the config (which LDM block index holds
 * which diffusers block); inside a module the names differ only for a few
 * leaf components, given by the static tables below. This is the inverse of
 * diffusers 0.32.2 single_file_utils (convert_ldm_unet_checkpoint,
 * convert_ldm_vae_checkpoint); reference/gen_models.py holds the same tables
 * in Python and checks them against diffusers' converters.
 *
 * LDM UNet layout (L = layers_per_block, n = levels):
 *   input_blocks.0.0                       conv_in
 *   input_blocks.{1 + i(L+1) + j}.0 / .1   down_blocks.i.resnets.j / attentions.j
 *   input_blocks.{1 + i(L+1) + L}.0.op     down_blocks.i.downsamplers.0.conv
 *   middle_block.0 / .1 / .2               mid_block.resnets.0 / attentions.0 / resnets.1
 *   output_blocks.{i(L+1) + j}.0 / .1      up_blocks.i.resnets.j / attentions.j  (j <= L)
 *   output_blocks.{i(L+1) + L}.{1|2}.conv  up_blocks.i.upsamplers.0.conv (2 if the block has attention)
 *   time_embed.0 / .2, out.0 / .2          time_embedding.linear_1 / 2, conv_norm_out / conv_out
 * LDM VAE layout: encoder.down.i.block.j, encoder.down.i.downsample.conv,
 *   {en,de}coder.mid.block_1 / attn_1 / block_2, {en,de}coder.norm_out,
 *   decoder.up.{n-1-i}.block.j (reversed), decoder.up.{n-1-i}.upsample.conv.
 */
#include "model/keymap.h"

#include <stdarg.h>
#include <string.h>

static const km_leaf RESNET_UNET[] = {
    {"norm1", "in_layers.0"},   {"conv1", "in_layers.2"},
    {"time_emb_proj", "emb_layers.1"}, {"norm2", "out_layers.0"},
    {"conv2", "out_layers.3"},  {"conv_shortcut", "skip_connection"},
    {NULL, NULL},
};

static const km_leaf RESNET_VAE[] = {
    {"conv_shortcut", "nin_shortcut"},
    {NULL, NULL},
};

static const km_leaf ATTN_VAE[] = {
    {"group_norm", "norm"}, {"to_q", "q"}, {"to_k", "k"}, {"to_v", "v"}, {"to_out.0", "proj_out"},
    {NULL, NULL},
};

/* Older diffusers names of the VAE attention projections. */
static const km_leaf VAE_ALIASES[] = {
    {"to_q", "query"}, {"to_k", "key"}, {"to_v", "value"}, {"to_out.0", "proj_attn"},
    {NULL, NULL},
};

void km_free(keymap *km) {
    if (!km) return;
    for (int i = 0; i < km->n; i++) {
        lmx_free(km->rules[i].from);
        lmx_free(km->rules[i].to);
    }
    lmx_free(km->rules);
    memset(km, 0, sizeof *km);
}

static lmx_status add(keymap *km, const km_leaf *leaf, const char *to, const char *fmt_from, ...)
    LMX_PRINTF(4, 5);

static lmx_status add(keymap *km, const km_leaf *leaf, const char *to, const char *fmt_from, ...) {
    char from[256];
    va_list ap;
    va_start(ap, fmt_from);
    vsnprintf(from, sizeof from, fmt_from, ap);
    va_end(ap);
    if (km->n == km->cap) {
        int cap = km->cap ? km->cap * 2 : 64;
        km_rule *r = lmx_realloc(km->rules, sizeof *r * (size_t)cap);
        if (!r) return lmx_err(LMX_ERR_NOMEM, "keymap: out of memory");
        km->rules = r;
        km->cap = cap;
    }
    km_rule *r = &km->rules[km->n];
    r->from = lmx_strdup(from);
    r->to = lmx_strdup(to);
    r->leaf = leaf;
    if (!r->from || !r->to) {
        lmx_free(r->from);
        lmx_free(r->to);
        return lmx_err(LMX_ERR_NOMEM, "keymap: out of memory");
    }
    km->n++;
    return LMX_OK;
}

static const char *fmt(char *buf, size_t n, const char *f, int a, int b) {
    snprintf(buf, n, f, a, b);
    return buf;
}

lmx_status km_build_unet_ldm(keymap *km, const unet_config *c) {
    char to[128];
    int L = c->layers_per_block, n = c->n_levels;
    lmx_status st = LMX_OK;
    memset(km, 0, sizeof *km);
#define ADD(leaf, to_, ...)                                   \
    do {                                                      \
        if ((st = add(km, leaf, to_, __VA_ARGS__))) goto fail; \
    } while (0)
    ADD(NULL, "time_embed.0", "time_embedding.linear_1");
    ADD(NULL, "time_embed.2", "time_embedding.linear_2");
    ADD(NULL, "input_blocks.0.0", "conv_in");
    ADD(NULL, "out.0", "conv_norm_out");
    ADD(NULL, "out.2", "conv_out");
    ADD(RESNET_UNET, "middle_block.0", "mid_block.resnets.0");
    ADD(NULL, "middle_block.1", "mid_block.attentions.0");
    ADD(RESNET_UNET, "middle_block.2", "mid_block.resnets.1");
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < L; j++) {
            int k = 1 + i * (L + 1) + j;
            ADD(RESNET_UNET, fmt(to, sizeof to, "input_blocks.%d.0", k, 0), "down_blocks.%d.resnets.%d", i, j);
            ADD(NULL, fmt(to, sizeof to, "input_blocks.%d.1", k, 0), "down_blocks.%d.attentions.%d", i, j);
        }
        if (i < n - 1)
            ADD(NULL, fmt(to, sizeof to, "input_blocks.%d.0.op", 1 + i * (L + 1) + L, 0),
                "down_blocks.%d.downsamplers.0.conv", i);
    }
    for (int i = 0; i < n; i++) {
        for (int j = 0; j <= L; j++) {
            int k = i * (L + 1) + j;
            ADD(RESNET_UNET, fmt(to, sizeof to, "output_blocks.%d.0", k, 0), "up_blocks.%d.resnets.%d", i, j);
            ADD(NULL, fmt(to, sizeof to, "output_blocks.%d.1", k, 0), "up_blocks.%d.attentions.%d", i, j);
        }
        if (i < n - 1)
            ADD(NULL, fmt(to, sizeof to, "output_blocks.%d.%d.conv", i * (L + 1) + L, c->up_attn[i] ? 2 : 1),
                "up_blocks.%d.upsamplers.0.conv", i);
    }
    return LMX_OK;
fail:
    km_free(km);
    return st;
}

lmx_status km_build_vae_ldm(keymap *km, const vae_config *c) {
    char to[128];
    int L = c->layers_per_block, n = c->n_levels;
    lmx_status st = LMX_OK;
    memset(km, 0, sizeof *km);
    ADD(NULL, "encoder.norm_out", "encoder.conv_norm_out");
    ADD(NULL, "decoder.norm_out", "decoder.conv_norm_out");
    static const char *sides[2] = {"encoder", "decoder"};
    for (int s = 0; s < 2; s++) {
        char from[64];
        snprintf(to, sizeof to, "%s.mid.block_1", sides[s]);
        snprintf(from, sizeof from, "%s.mid_block.resnets.0", sides[s]);
        ADD(RESNET_VAE, to, "%s", from);
        snprintf(to, sizeof to, "%s.mid.block_2", sides[s]);
        snprintf(from, sizeof from, "%s.mid_block.resnets.1", sides[s]);
        ADD(RESNET_VAE, to, "%s", from);
        snprintf(to, sizeof to, "%s.mid.attn_1", sides[s]);
        snprintf(from, sizeof from, "%s.mid_block.attentions.0", sides[s]);
        ADD(ATTN_VAE, to, "%s", from);
    }
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < L; j++)
            ADD(RESNET_VAE, fmt(to, sizeof to, "encoder.down.%d.block.%d", i, j),
                "encoder.down_blocks.%d.resnets.%d", i, j);
        ADD(NULL, fmt(to, sizeof to, "encoder.down.%d.downsample.conv", i, 0),
            "encoder.down_blocks.%d.downsamplers.0.conv", i);
        for (int j = 0; j <= L; j++)
            ADD(RESNET_VAE, fmt(to, sizeof to, "decoder.up.%d.block.%d", n - 1 - i, j),
                "decoder.up_blocks.%d.resnets.%d", i, j);
        ADD(NULL, fmt(to, sizeof to, "decoder.up.%d.upsample.conv", n - 1 - i, 0),
            "decoder.up_blocks.%d.upsamplers.0.conv", i);
    }
    return LMX_OK;
fail:
    km_free(km);
    return st;
}

lmx_status km_build_text_old(keymap *km) {
    lmx_status st = LMX_OK;
    memset(km, 0, sizeof *km);
    ADD(NULL, "", "text_model");
    return LMX_OK;
fail:
    km_free(km);
    return st;
#undef ADD
}

/* rest begins with "<from>." (or equals from) */
static int has_component(const char *rest, const char *from) {
    size_t k = strlen(from);
    return strncmp(rest, from, k) == 0 && (rest[k] == '.' || rest[k] == 0);
}

int km_map(const keymap *km, const char *name, char *out, size_t n) {
    const km_rule *best = NULL;
    size_t best_len = 0;
    for (int i = 0; km && i < km->n; i++) {
        size_t k = strlen(km->rules[i].from);
        if (k > best_len && strncmp(name, km->rules[i].from, k) == 0 && name[k] == '.') {
            best = &km->rules[i];
            best_len = k;
        }
    }
    int w;
    if (!best) {
        w = snprintf(out, n, "%s", name);
    } else {
        const char *rest = name + best_len + 1;
        const char *leaf_to = NULL;
        size_t leaf_len = 0;
        for (const km_leaf *l = best->leaf; l && l->from; l++) {
            if (has_component(rest, l->from) && strlen(l->from) > leaf_len) {
                leaf_to = l->to;
                leaf_len = strlen(l->from);
            }
        }
        if (leaf_to) {
            rest += leaf_len;  /* now "" or ".tail" */
            if (best->to[0])
                w = snprintf(out, n, "%s.%s%s", best->to, leaf_to, rest);
            else
                w = snprintf(out, n, "%s%s", leaf_to, rest);
        } else if (best->to[0]) {
            w = snprintf(out, n, "%s.%s", best->to, rest);
        } else {
            w = snprintf(out, n, "%s", rest);
        }
    }
    return (w < 0 || (size_t)w >= n) ? -1 : 0;
}

int km_alias(const char *name, char *buf, size_t n) {
    /* only VAE mid-block attention projections have older spellings */
    const char *p = strstr(name, "mid_block.attentions.0.");
    if (!p || (strncmp(name, "encoder.", 8) != 0 && strncmp(name, "decoder.", 8) != 0)) return 0;
    const char *rest = p + strlen("mid_block.attentions.0.");
    for (const km_leaf *l = VAE_ALIASES; l->from; l++) {
        if (has_component(rest, l->from)) {
            int w = snprintf(buf, n, "%.*s%s%s", (int)(rest - name), name, l->to,
                             rest + strlen(l->from));
            return w > 0 && (size_t)w < n;
        }
    }
    return 0;
}
