/*
 * pipeline_impl.h - internals shared by the pipeline's files: the public
 * handles' structs, the per-generation info and the "plan" that says, for
 * every denoising step, which LoRAs are active on which samples of the UNet
 * batch and how the branch outputs combine into one guided noise.
 */
#ifndef LMX_PIPELINE_IMPL_H
#define LMX_PIPELINE_IMPL_H

#include <cjson/cJSON.h>

#include "core/core.h"
#include "model/sd_model.h"
#include "model/tokenizer.h"
#include "ops/ops.h"
#include "compose/compose.h"
#include "lora/lora.h"

struct lmx_model {
    sd_model *sd;
    tok_tokenizer *tok;
    char *path, *name;
    lmx_model_params params;
    /* Nothing here changes after lmx_model_load: LoRA state lives in the
     * contexts. */
};

struct lmx_ctx {
    const lmx_model *m;
    lmx_ctx_params params;
    op_ctx *ops;
    lmx_arena arena;
    lora_state lora;     /* this context's attached LoRAs / merged kernels   */
    float *keep_latents; /* tests: when set, the final latents are copied here */
};

/* What one generation resolved (defaults filled in), for the metadata. */
typedef struct gen_info {
    int width, height, h, w;
    int cfg;                 /* classifier-free guidance on                    */
    int scheduler;           /* lmx_scheduler actually used                    */
    const char *spacing;
    int karras;              /* Karras sigmas in use (flag or config)          */
    int threads;
} gen_info;

/* The LoRA plan of one generation: the composition plan (src/compose) and
 * the scale tables it fills. UNet batch = n_branches blocks of per_branch
 * samples ([uncond x n, cond x n] with CFG, [cond x n] without). */
typedef struct gen_plan {
    int n_branches;          /* UNet branches per step (N for Composite)        */
    int per_branch;
    int n_samples;           /* UNet batch B = n_branches · per_branch          */
    int n_rows;              /* rows of the scale tables = the used LoRAs       */
    float lam;               /* global LoRA scale λ                             */
    int *row_of;             /* [n_loras] row of each used LoRA: its rank in
                                load order (the order of the adapter lists)     */
    const lmx_lora_use *loras;
    float *te_scale;         /* [n_rows][1], NULL = no text-encoder side paths  */
    float *unet_scale;       /* [n_rows][n_samples] of the current step         */
    compose_plan cp;
    int has_cp;
    int merged;              /* merged kernels installed (in ls)                */
    lora_state *ls;          /* the context's LoRA state, emptied at the end    */
} gen_plan;

lmx_status pipeline_encode_text(lmx_ctx *c, const char *text, const char *what, int clip_skip,
                                const float *lora_scale, int n_loras, float *out);

/* pipeline_lora.c */
lmx_status pipeline_plan(lmx_ctx *c, const lmx_gen_params *p, const gen_info *gi, int n_steps,
                         gen_plan *plan);
/* The UNet scale table of step k (NULL when no LoRA side path runs). */
const float *pipeline_plan_unet_scales(gen_plan *plan, int step);
void pipeline_plan_free(gen_plan *plan);
/* For an error about non-finite numbers: "; LoRAs active: a, b" listing the
 * LoRAs of the plan that ran at UNet call `step` (after
 * pipeline_plan_unet_scales of that step), or in the text encoder when
 * step < 0, then "; LoRA 'b' holds NaN/Inf values" for those whose file had
 * non-finite values at load; appended to sb, whole (nothing when no LoRA
 * is in use). */
void pipeline_plan_culprits(const gen_plan *plan, const lmx_gen_params *p, int step, lmx_sb *sb);
/* Append the A1111 LoRA part of the `parameters` text (", Lora: a:0.8 b:1,
 * Composition: ...") to sb; nothing when no LoRA is in use. */
void pipeline_loras_describe(const lmx_ctx *c, const lmx_gen_params *p, const gen_plan *plan, lmx_sb *sb);
void pipeline_loras_json(const lmx_ctx *c, const lmx_gen_params *p, const gen_plan *plan, cJSON *j);

#endif
