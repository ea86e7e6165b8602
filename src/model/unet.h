/*
 * unet.h - UNet2DConditionModel of the SD1.x family, fp32, NHWC.
 *
 * Any config of the family: CrossAttnDownBlock2D / DownBlock2D,
 * UNetMidBlock2DCrossAttn, UpBlock2D / CrossAttnUpBlock2D, any channels,
 * layers per block, head counts (one or one per block), transformer depth,
 * cross-attention width, 1x1-conv or linear projections, norm groups/eps.
 * Latent sides need not be multiples of 2^(levels-1): the upsamplers then
 * resize to the skip tensor's size, as diffusers does.
 *
 * Semantics: diffusers 0.32.2 models/unets/unet_2d_condition.py (+
 * unet_2d_blocks.py, resnet.py, transformers/transformer_2d.py,
 * attention.py, attention_processor.py, embeddings.py); docs/numerics.md §4.
 *
 * Usage:
 *     unet *u;  unet_load(&u, &src, &cfg);
 *     lmx_arena a;  lmx_arena_init(&a, unet_arena_bytes(u, B, h, w, 77));
 *     nn_run run = {.ctx = ctx, .arena = &a};
 *     unet_forward(u, &run, x, t, context, 77, eps, B, h, w);
 * The arena must be re-sized when B, h, w, the context length or the
 * largest LoRA rank of run.hooks changes; the model itself is not modified
 * by a forward or by LoRAs (several threads may share it, each with its own
 * run, hooks and arena).
 */
#ifndef LMX_MODEL_UNET_H
#define LMX_MODEL_UNET_H

#include "model/config.h"
#include "model/nn.h"

typedef struct unet unet;

/* Build the network from a weight source (every tensor checked by name and
 * shape). On error nothing is left allocated. */
lmx_status unet_load(unet **out, nn_src *src, const unet_config *cfg);
void unet_free(unet *u);

const unet_config *unet_cfg(const unet *u);
/* Every Linear/Conv2d in module order (for LoRA). */
const nn_layers *unet_layers(const unet *u);

/* Arena bytes one forward needs for B samples of an h x w latent and a
 * context of ctx_len tokens, without LoRA side paths (_lora: with hooks
 * whose largest adapter rank is lora_rank, nn_hooks_max_rank). */
size_t unet_arena_bytes(const unet *u, int B, int h, int w, int ctx_len);
size_t unet_arena_bytes_lora(const unet *u, int lora_rank, int B, int h, int w, int ctx_len);

/* eps[B, h, w, out_ch] = UNet(x[B, h, w, in_ch], t[B], context[B, ctx_len, cross_dim]).
 * t is a float timestep per sample (integer timesteps converted to float).
 * Sets run->n_samples = B; uses run->hooks and run->lora_scale if set. */
lmx_status unet_forward(const unet *u, nn_run *run, const float *x, const float *t,
                        const float *context, int ctx_len, float *eps, int B, int h, int w);

#endif /* LMX_MODEL_UNET_H */
