/*
 * lora_impl.h - internals shared by the files of src/lora: the target
 * index and the key parser. Not part of any interface outside src/lora.
 */
#ifndef LMX_LORA_IMPL_H
#define LMX_LORA_IMPL_H

#include "lora/lora.h"

/* How a name in the target index spells its module (flags: "conv_in" is
 * both the dotted path and its kohya flattening). */
enum {
    LORA_NAME_DOTTED = 1u,   /* "down_blocks.0.attentions.0.proj_in"        */
    LORA_NAME_FLAT = 2u,     /* kohya, diffusers dialect: '.' -> '_'        */
    LORA_NAME_FLAT_LDM = 4u, /* kohya, LDM dialect: "input_blocks_1_1_..."  */
};

typedef struct lora_name {
    char *name;
    lora_comp comp;
    int target;
    unsigned dialect;
} lora_name;

struct lora_targets {
    lora_target *v;
    int n, cap;
    lora_name *names;
    int n_names, cap_names;
    int *slots;               /* open-addressing table of name indices, -1 empty */
    int n_slots;
    unet_config unet_cfg;
    clip_text_config text_cfg;
};

const lora_name *lora_targets_lookup(const lora_targets *t, lora_comp c, const char *name);

/* Role of a tensor inside a LoRA module. */
typedef enum lora_role { LORA_ROLE_NONE = 0, LORA_ROLE_DOWN, LORA_ROLE_UP, LORA_ROLE_ALPHA } lora_role;

/* One parsed file key. */
typedef struct lora_key {
    lora_role role;           /* NONE: not a tensor of a plain LoRA module      */
    lora_comp comp;
    int target;               /* -1: names no layer of the model                */
    unsigned spelling;        /* LORA_FMT_*                                      */
    size_t stem_len;          /* key[0, stem_len) names the module              */
} lora_key;

/* Parse a file key against the targets. Never fails: a key that is not a
 * LoRA tensor, or names no layer, comes back with role NONE or target -1. */
void lora_key_parse(const lora_targets *t, const char *key, lora_key *out);

/* LyCORIS / DoRA / other adapter algorithms loramix refuses: the name of
 * the algorithm a key belongs to ("LoHa (hada_*)"), or NULL. */
const char *lora_key_unsupported(const char *key);
/* A key only SDXL LoRAs have (lora_te1_, lora_te2_, text_encoder_2.,
 * add_embedding, label_emb). */
int lora_key_sdxl(const char *key);

/* diffusers 0.32.2 + peft 0.12.0 scale of every module (scale_ref), and the
 * per-component notes explaining where it differs from alpha/rank.
 * notes[c] gets a sentence (or "") per component. */
lmx_status lora_ref_scales(lmx_lora *l, char notes[LORA_N_COMP][512]);

#endif /* LMX_LORA_IMPL_H */
