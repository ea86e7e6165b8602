/*
 * sd_model.h - load a whole SD1.x model: text encoder, UNet, VAE, plus where
 * its tokenizer and scheduler config are.
 *
 * Sources:
 *   - a diffusers folder: model_index.json, unet/, text_encoder/, vae/ (each
 *     config.json + *.safetensors, the ".fp16.safetensors" variant when it is
 *     the only one), tokenizer/ (vocab.json + merges.txt, read by the
 *     tokenizer module), scheduler/scheduler_config.json (text, parsed by the
 *     scheduler module);
 *   - a single-file checkpoint in the original layout (as on Civitai):
 *     model.diffusion_model.*, first_stage_model.*,
 *     cond_stage_model.transformer[.text_model].*, fp32/fp16/bf16. Names
 *     are mapped by keymap.c; hyper-parameters come from the file's
 *     "loramix.{unet,text,vae}_config" metadata when present, else from the
 *     tensor shapes with SD1.x defaults (8 heads, 32 norm groups). The
 *     tokenizer is then the bundled CLIP BPE (tokenizer_dir NULL) and the
 *     scheduler config absent (NULL: SD1.5 defaults).
 *   - opts.vae_path replaces the VAE: a diffusers vae folder, a diffusers VAE
 *     .safetensors with a config.json beside it, or an LDM-style VAE file
 *     (first_stage_model.*, vae.*, or bare encoder./decoder. keys as
 *     sd-vae-ft-mse ships).
 * Refused with a clear message: pickle files (.ckpt/.pt/.bin: never
 * executed; convert them to safetensors), SD2.x and SDXL models.
 *
 * Every tensor's name and shape is checked ("unet.down_blocks.0.resnets.0.
 * conv1.weight: expected [..], got [..]"); unexpected extra tensors are
 * warned about. Weights are memory-mapped and converted to fp32 into the
 * prepared kernels; the files stay mapped while the model lives (each
 * nn_layer points at its source tensor for LoRA merges). On any error
 * nothing stays allocated.
 */
#ifndef LMX_MODEL_SD_MODEL_H
#define LMX_MODEL_SD_MODEL_H

#include "model/clip_text.h"
#include "model/unet.h"
#include "model/vae.h"

typedef struct sd_load_opts {
    const char *vae_path;      /* --vae FILE|DIR, NULL: the model's own VAE         */
    op_prec prec;              /* OP_PREC_F32 (default) or the bf16 speed mode      */
    int winograd;              /* 1: Winograd 3x3 convs (fp32; off by default)      */
    int vae_encoder;           /* 1 (default): load the VAE encoder when present    */
    int ignore_file_config;    /* single files: ignore loramix.* metadata (tests)   */
    int allow_gaps;            /* accept safetensors with unreferenced bytes        */
} sd_load_opts;

sd_load_opts sd_load_opts_default(void);

#define SD_MAX_FILES 4

typedef struct sd_model {
    clip_text *text;
    unet *unet;
    vae *vae;
    char *path;                /* as given                                          */
    int single_file;           /* 1: an LDM single file, 0: a diffusers folder      */
    unsigned st_flags;         /* st_open_flags flags it was loaded with (LoRAs too) */
    char *tokenizer_dir;       /* "<folder>/tokenizer", or NULL: the bundled BPE    */
    char *scheduler_config;    /* scheduler_config.json text, or NULL               */
    char *scheduler_config_path;
    char *vae_path;            /* where the VAE came from                            */
    st_file *files[SD_MAX_FILES]; /* mapped weight files (owned)                     */
    int n_files;
} sd_model;

lmx_status sd_model_load(sd_model **out, const char *path, const sd_load_opts *opts);
void sd_model_free(sd_model *m);

/* Load only a VAE from a folder or file (the --vae rules above); *file_out
 * receives the mapped file, which must outlive the VAE (st_close it after
 * vae_free). */
lmx_status sd_vae_load(vae **out, st_file **file_out, const char *path, const sd_load_opts *opts);

#endif /* LMX_MODEL_SD_MODEL_H */
