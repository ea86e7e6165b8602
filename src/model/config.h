/*
 * config.h - hyper-parameters of the three SD1.x networks: parsed from
 * diffusers/transformers config.json files, or inferred from the tensor
 * shapes of an original-layout (LDM) single-file checkpoint with SD1.x
 * defaults for what shapes cannot tell (8 heads, 32 norm groups).
 *
 * A single file may carry diffusers-style configs in its safetensors
 * __metadata__ ("loramix.unet_config", "loramix.text_config",
 * "loramix.vae_config", JSON text); sd_model.c prefers those.
 *
 * Mirrors: diffusers 0.32.2 UNet2DConditionModel / AutoencoderKL __init__
 * arguments, transformers 4.45.1 CLIPTextConfig.
 */
#ifndef LMX_MODEL_CONFIG_H
#define LMX_MODEL_CONFIG_H

#include "core/core.h"
#include "io/safetensors.h"

#define CFG_MAX_LEVELS 8

typedef struct unet_config {
    int in_channels, out_channels;
    int n_levels;                      /* len(block_out_channels)                 */
    int ch[CFG_MAX_LEVELS];            /* block_out_channels                      */
    int down_attn[CFG_MAX_LEVELS];     /* 1: CrossAttnDownBlock2D, 0: DownBlock2D */
    int up_attn[CFG_MAX_LEVELS];       /* 1: CrossAttnUpBlock2D, 0: UpBlock2D     */
    int layers_per_block;
    int heads[CFG_MAX_LEVELS];         /* attention heads of down block i          */
    int tlayers[CFG_MAX_LEVELS];       /* transformer_layers_per_block, down block i */
    int cross_dim;                     /* cross_attention_dim                     */
    int linear_proj;                   /* use_linear_projection                   */
    int groups;                        /* norm_num_groups                         */
    float eps;                         /* norm_eps                                */
    int flip_sin_to_cos;
    float freq_shift;
    int downsample_padding;
    int center_input;                  /* center_input_sample                     */
    int sample_size;
} unet_config;

typedef enum clip_act { CLIP_ACT_QUICK_GELU = 0, CLIP_ACT_GELU = 1 } clip_act;

typedef struct clip_text_config {
    int vocab, hidden, intermediate, layers, heads, max_pos;
    float eps;
    clip_act act;
} clip_text_config;

typedef struct vae_config {
    int in_channels, out_channels, latent_channels;
    int n_levels;
    int ch[CFG_MAX_LEVELS];            /* block_out_channels                      */
    int layers_per_block;
    int groups;
    float scaling_factor;
    int use_quant_conv, use_post_quant_conv, mid_attn;
    int sample_size;
} vae_config;

/* SD1.5's configs (the defaults inference starts from). */
unet_config unet_config_sd15(void);
clip_text_config clip_text_config_sd15(void);
vae_config vae_config_sd15(void);

/* Parse config.json text. `label` names the file in errors. Unknown keys are
 * ignored; known keys with values loramix cannot run (an SDXL add-embedding,
 * other block types, ...) are LMX_ERR_UNSUPPORTED naming the key. */
lmx_status unet_config_parse(unet_config *c, const char *json, const char *label);
lmx_status clip_text_config_parse(clip_text_config *c, const char *json, const char *label);
lmx_status vae_config_parse(vae_config *c, const char *json, const char *label);

/* Consistency checks (channels divisible by groups and heads, ...). */
lmx_status unet_config_check(const unet_config *c, const char *label);
lmx_status clip_text_config_check(const clip_text_config *c, const char *label);
lmx_status vae_config_check(const vae_config *c, const char *label);

/* Infer from an LDM-layout file; prefix is the component prefix
 * ("model.diffusion_model.", "first_stage_model." or "", and for the text
 * encoder the prefix before "embeddings."). */
lmx_status unet_config_infer_ldm(unet_config *c, const st_file *f, const char *prefix);
lmx_status clip_text_config_infer(clip_text_config *c, const st_file *f, const char *prefix);
lmx_status vae_config_infer_ldm(vae_config *c, const st_file *f, const char *prefix);

#endif /* LMX_MODEL_CONFIG_H */
