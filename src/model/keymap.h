/*
 * keymap.h - name tables between the diffusers/transformers module names the
 * networks use and the original LDM (CompVis / A1111 / Civitai single-file)
 * checkpoint keys.
 *
 * A keymap is a list of rules "diffusers module prefix -> LDM prefix", each
 * with an optional leaf table for the first name component after the prefix
 * (ResNet: norm1 -> in_layers.0, conv1 -> in_layers.2, ...). The rules are
 * generated from the network's config (block counts decide the LDM block
 * indices); the leaf tables are static. Mapping a name picks the longest
 * matching prefix. The maps mirror (inverted) diffusers 0.32.2
 * loaders/single_file_utils.py: convert_ldm_unet_checkpoint,
 * convert_ldm_vae_checkpoint, convert_ldm_clip_checkpoint.
 *
 * Single-file component prefixes:
 *   UNet          "model.diffusion_model."
 *   VAE           "first_stage_model." (or "vae.", or none: sd-vae-ft-mse style)
 *   text encoder  "cond_stage_model.transformer.text_model." (current) or
 *                 "cond_stage_model.transformer." without "text_model." (old)
 */
#ifndef LMX_MODEL_KEYMAP_H
#define LMX_MODEL_KEYMAP_H

#include "model/config.h"

typedef struct km_leaf {
    const char *from, *to;
} km_leaf;

typedef struct km_rule {
    char *from;                /* diffusers module prefix ("down_blocks.0.resnets.1") */
    char *to;                  /* file prefix ("input_blocks.2.0"); "" drops it        */
    const km_leaf *leaf;       /* NULL or a table ending with {NULL, NULL}             */
} km_rule;

typedef struct keymap {
    km_rule *rules;
    int n, cap;
} keymap;

void km_free(keymap *km);
/* Map a diffusers tensor name to the file's name (without the component
 * prefix). Names no rule covers map to themselves. Returns 0, or -1 when the
 * result does not fit in n bytes. */
int km_map(const keymap *km, const char *name, char *out, size_t n);

lmx_status km_build_unet_ldm(keymap *km, const unet_config *c);
lmx_status km_build_vae_ldm(keymap *km, const vae_config *c);
/* Old text-encoder spelling: "text_model.X" -> "X". */
lmx_status km_build_text_old(keymap *km);

/* Older diffusers spellings of the same tensor (VAE attention "query", "key",
 * "value", "proj_attn" for to_q, to_k, to_v, to_out.0). Writes the alias of
 * `name` into buf and returns 1, or returns 0 when there is none. */
int km_alias(const char *name, char *buf, size_t n);

#endif /* LMX_MODEL_KEYMAP_H */
