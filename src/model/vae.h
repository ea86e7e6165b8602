/*
 * vae.h - AutoencoderKL of SD1.x (decoder and encoder), fp32, NHWC.
 *
 * decode: z[B, h, w, latent] (already divided by scaling_factor, as
 *   diffusers' AutoencoderKL.decode takes it) -> post_quant_conv -> Decoder
 *   -> image[B, h·f, w·f, out_ch] in about [-1, 1] (not clamped; the pipeline
 *   clamps). f = 2^(levels-1) = 8 for SD.
 * encode: image[B, H, W, in_ch] -> Encoder -> quant_conv -> moments
 *   [B, H/f, W/f, 2·latent]: channels [0, latent) are the mean, the rest the
 *   log-variance (raw; diffusers' DiagonalGaussianDistribution clamps it to
 *   [-30, 20] when it builds the distribution).
 * vae_unscale: z = x / scaling_factor (a true division per element, as the
 *   pipeline computes latents / vae.config.scaling_factor).
 *
 * Tiled decode (vae_decode_tiled) reproduces diffusers' AutoencoderKL
 * tiled_decode (overlapping latent tiles, linear blending of the overlaps);
 * it is off by default (the reference decodes in one pass) and only for
 * when the one-pass activations would not fit.
 *
 * Semantics: diffusers 0.32.2 models/autoencoders/autoencoder_kl.py, vae.py,
 * unet_2d_blocks.py (UNetMidBlock2D, DownEncoderBlock2D, UpDecoderBlock2D),
 * attention_processor.py; docs/numerics.md §10.
 */
#ifndef LMX_MODEL_VAE_H
#define LMX_MODEL_VAE_H

#include "model/config.h"
#include "model/nn.h"

typedef struct vae vae;

/* Build from a weight source with diffusers names ("decoder.up_blocks.0...").
 * with_encoder = 0 skips the encoder (decode-only use). */
lmx_status vae_load(vae **out, nn_src *src, const vae_config *cfg, int with_encoder);
void vae_free(vae *v);

const vae_config *vae_cfg(const vae *v);
nn_layers *vae_layers(vae *v);
int vae_has_encoder(const vae *v);
int vae_factor(const vae *v);          /* 2^(levels-1) */

void vae_unscale(const vae *v, const float *x, float *z, int64_t n);

size_t vae_decode_arena_bytes(const vae *v, int B, int h, int w);
lmx_status vae_decode(const vae *v, nn_run *run, const float *z, int B, int h, int w, float *img);

size_t vae_encode_arena_bytes(const vae *v, int B, int H, int W);
lmx_status vae_encode(const vae *v, nn_run *run, const float *img, int B, int H, int W,
                      float *moments);
/* Latent size the encoder gives for an H x W image. */
void vae_encode_out_hw(const vae *v, int H, int W, int *h, int *w);

/* Tiled decode: latent tiles of `tile` (diffusers: sample_size / f = 64 for
 * SD) with overlap factor 0.25, i.e. stride 0.75·tile and a blend of
 * 0.25·tile·f pixels. vae_tiled_arena_bytes gives the arena it needs
 * (one tile's decode plus the blended rows). */
size_t vae_tiled_arena_bytes(const vae *v, int B, int h, int w, int tile);
lmx_status vae_decode_tiled(const vae *v, nn_run *run, const float *z, int B, int h, int w,
                            int tile, float *img);

#endif /* LMX_MODEL_VAE_H */
