/*
 * detect.h - what a model or LoRA file (or folder) is, from its tensor
 * names, shapes and metadata, without loading it. Used by `loramix inspect`
 * and reused by the model and LoRA loaders to pick a key map.
 *
 * Recognised (key conventions in docs/file-formats.md):
 *   - single-file LDM checkpoints: model.diffusion_model.* (UNet),
 *     first_stage_model.* (VAE), cond_stage_model.transformer.* (CLIP, SD1);
 *     cond_stage_model.model.* (OpenCLIP) means SD2; conditioner.embedders.*
 *     or label_emb means SDXL;
 *   - diffusers components (UNet2DConditionModel, AutoencoderKL,
 *     CLIPTextModel weights) and whole diffusers folders (model_index.json);
 *   - LoRAs: kohya (lora_unet_* / lora_te_* with lora_down/lora_up/alpha),
 *     PEFT/diffusers (unet.* / text_encoder.* with lora_A/lora_B,
 *     lora.down/lora.up, lora_linear_layer, to_q_lora...), LyCORIS (hada_*,
 *     lokr_*, lora_mid, dora_scale, oft_*, ...);
 *   - the base architecture: SD1.x, SD2.x or SDXL, from the cross-attention
 *     width (768 / 1024 / 2048), the text-encoder width, SDXL-only names
 *     (lora_te1_/lora_te2_, text_encoder_2, conditioner, label_emb,
 *     add_embedding) and, failing those, the kohya / modelspec metadata.
 * Only SD1.x is supported by loramix; the rest is recognised to be refused
 * with a clear message.
 */
#ifndef LMX_IO_DETECT_H
#define LMX_IO_DETECT_H

#include "core/core.h"
#include "io/safetensors.h"

typedef enum det_kind {
    DET_UNKNOWN = 0,
    DET_SD_CHECKPOINT,        /* single-file LDM checkpoint                 */
    DET_DIFFUSERS_UNET,       /* UNet2DConditionModel weights               */
    DET_DIFFUSERS_VAE,        /* AutoencoderKL weights                      */
    DET_DIFFUSERS_TEXT,       /* CLIPTextModel(WithProjection) weights      */
    DET_DIFFUSERS_PIPELINE,   /* a folder with model_index.json             */
    DET_LORA_KOHYA,           /* lora_unet_* / lora_te_* down/up/alpha      */
    DET_LORA_PEFT,            /* PEFT or diffusers LoRA                     */
    DET_LYCORIS,              /* LoHa, LoKr, Tucker, DoRA, OFT, ...         */
    DET_PICKLE,               /* a PyTorch pickle file: never loaded        */
    DET_KIND_COUNT
} det_kind;

typedef enum det_arch {
    DET_ARCH_UNKNOWN = 0,
    DET_ARCH_SD1,
    DET_ARCH_SD2,
    DET_ARCH_SDXL
} det_arch;

/* Parts a file holds (checkpoints) or adapts (LoRAs). */
#define DET_PART_UNET 1u
#define DET_PART_TEXT 2u  /* the (first) text encoder */
#define DET_PART_TEXT2 4u /* SDXL's second text encoder */
#define DET_PART_VAE 8u

/* LyCORIS algorithms seen (flags). */
#define DET_LYCO_LOHA 1u  /* hada_w1_a ...      */
#define DET_LYCO_LOKR 2u  /* lokr_w1 ...        */
#define DET_LYCO_TUCKER 4u /* lora_mid (CP/Tucker LoCon) */
#define DET_LYCO_DORA 8u  /* dora_scale         */
#define DET_LYCO_OFT 16u  /* oft_blocks, oft_diag */
#define DET_LYCO_OTHER 32u /* diff, w_norm, a1/b1 (GLoRA), on_input (IA3) */

#define DET_MAX_VALUES 4 /* distinct ranks / alphas kept (most frequent) */

typedef struct det_lora {
    int n_modules;            /* adapted layers (distinct module keys)        */
    int n_unet, n_text, n_text2;
    int n_conv;               /* modules on k x k convolutions, k > 1 (LoCon) */
    int n_values_rank;        /* distinct ranks (may exceed DET_MAX_VALUES)   */
    int rank[DET_MAX_VALUES], rank_count[DET_MAX_VALUES];
    int n_alpha;              /* modules with an alpha tensor                 */
    int n_values_alpha;
    float alpha[DET_MAX_VALUES];
    int alpha_count[DET_MAX_VALUES];
    int n_ldm_keys;           /* kohya UNet keys in the LDM dialect (input_blocks...) */
    int n_diffusers_keys;     /* ... and in the diffusers dialect (down_blocks...)  */
    int n_ignored;            /* modules on conv_in / conv_out / time_embedding (the
                                 reference drops them)                       */
} det_lora;

typedef struct det_info {
    det_kind kind;
    det_arch arch;
    int supported;            /* loramix can use it                          */
    unsigned parts;           /* DET_PART_*                                  */
    unsigned lycoris;         /* DET_LYCO_* (kind DET_LYCORIS)               */
    int inpainting;           /* 9-channel UNet input                        */
    int has_ema;              /* model_ema.* in a checkpoint                 */
    int context_dim;          /* cross-attention width seen (0 if none)      */
    int text_dim;             /* text-encoder width seen (0 if none)         */
    det_lora lora;            /* LoRA kinds only                             */
    char summary[256];        /* one line, e.g. "kohya LoRA for SD1.x: ..."  */
} det_info;

/* Classify an open safetensors file. `config_class` is the _class_name (or
 * architectures[0]) of the config.json next to it, or NULL. Reads only
 * names, shapes, metadata and the scalar alpha tensors. Never fails. */
void det_classify(const st_file *f, const char *config_class, det_info *out);

const char *det_kind_name(det_kind k); /* stable id: "lora-kohya", ...    */
const char *det_kind_desc(det_kind k); /* "kohya LoRA", ...               */
const char *det_arch_name(det_arch a); /* "SD1.x", "SD2.x", "SDXL", "unknown" */

/* 1 when `path` is a PyTorch pickle: a zip archive (torch.save) or pickle
 * magic, or a .ckpt/.pt/.pth/.bin/.pkl name whose content is not
 * safetensors. `why` (may be NULL) gets a short reason. Pickle is never
 * executed or parsed. Unreadable files give 0 (the open reports them). */
int det_is_pickle(const char *path, char *why, size_t why_size);

/* ---- folders ---- */

typedef enum det_folder_type {
    DET_FOLDER_OTHER = 0,     /* neither: files lists the model-like files  */
    DET_FOLDER_PIPELINE,      /* model_index.json                           */
    DET_FOLDER_COMPONENT      /* config.json + weights                      */
} det_folder_type;

typedef struct det_component {
    char *name;               /* "unet"                                     */
    char *library;            /* "diffusers", "transformers" or NULL        */
    char *class_name;         /* "UNet2DConditionModel" or NULL (disabled)  */
    char *weights;            /* weights file path, NULL when none          */
    int weights_pickle;       /* the only weights found are pickle          */
    int sharded;              /* only a *.safetensors.index.json was found  */
} det_component;

typedef struct det_folder {
    det_folder_type type;
    char *class_name;         /* pipeline or component class                */
    char *version;            /* _diffusers_version / transformers_version  */
    det_component *comp;      /* PIPELINE: its components, file order;
                                 COMPONENT: one entry, the folder itself    */
    int n_comp;
    char **files;             /* OTHER: *.safetensors and pickle files, sorted */
    int n_files;
} det_folder;

/* Read a folder. A malformed model_index.json or config.json is an
 * LMX_ERR_FORMAT naming it; a folder that cannot be listed LMX_ERR_IO. */
lmx_status det_read_folder(const char *dir, det_folder *out);
void det_folder_free(det_folder *f);

/* The weights file of a diffusers component folder: the preferred names
 * (diffusion_pytorch_model.safetensors, model.safetensors), else the first
 * *.safetensors by name; else a pickle file (*is_pickle = 1); *path is
 * NULL when there is none (lmx_free it otherwise). */
lmx_status det_find_weights(const char *dir, char **path, int *is_pickle, int *sharded);

#endif /* LMX_IO_DETECT_H */
