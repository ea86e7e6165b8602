/*
 * lora.h - LoRA adapters for SD1.x models: load the common file formats,
 * match them against a model's own layers, apply them at runtime (side
 * paths in a caller-owned lora_state of nn_hooks) or merged into private
 * weight copies held by that state.
 *
 * Formats (docs/lora.md, docs/methods.md §2.4):
 *   - kohya sd-scripts: "lora_unet_<path>" / "lora_te_<path>" with '.'
 *     flattened to '_', tensors ".lora_down.weight", ".lora_up.weight",
 *     ".alpha"; UNet paths in the diffusers dialect (down_blocks_0_...) or the
 *     LDM dialect (input_blocks_1_1_...). A flattened name is resolved by
 *     looking it up among the flattened names of the model's own layers
 *     (both dialects), never by guessing which '_' was a '.'.
 *   - diffusers / PEFT: "unet.<path>" / "text_encoder.<path>" with
 *     ".lora_A.weight" / ".lora_B.weight", older ".lora.down/up.weight",
 *     ".lora_linear_layer.down/up.weight", attention-processor spellings
 *     "<attn>.processor.to_q_lora.down.weight" (to_out_lora = to_out.0;
 *     TE: "self_attn.to_q_lora" = q_proj), PEFT wrapper prefixes
 *     "base_model.model.", TE paths with or without "text_model.".
 *   Refused with a message: LyCORIS (LoHa, LoKr, Tucker lora_mid, DoRA,
 *   OFT, full diff, ...), SDXL and SD2.x LoRAs.
 *
 * Scaling (docs/methods.md §2.2): a module's factor is alpha/rank, alpha = rank
 * when the module has no alpha tensor ("own"); lora_opts.scaling can instead
 * reproduce what diffusers 0.32.2 + peft 0.12.0 compute for files whose
 * alpha or rank is not uniform within a component. Both are computed for
 * every module, and the report says where they differ. At run time the
 * factor is multiplied by the nn_run scale table entry (λ · per-LoRA
 * weight), as peft's scaling = weight · alpha / r times the pipeline's scale.
 *
 * Use:
 *     lmx_lora *a, *b;
 *     lora_load(&a, model, "a.safetensors", NULL);   // matched, packed, checked
 *     lora_load(&b, model, "b.safetensors", NULL);
 *     const lmx_lora *set[2] = {a, b};
 *     lora_state ls = {0};               // the caller's (a context's) LoRA state
 *     lora_attach(&ls, model, set, 2);   // LoRA i -> row i of the scale tables
 *     // ... forwards with nn_run.hooks = &ls.hooks[LORA_UNET] (LORA_TE for the
 *     // text encoder) and nn_run.lora_scale = [2][n_samples] tables: switching
 *     // the active set between steps is only a different table
 *     lora_detach(&ls);
 *   or merged:
 *     lora_merge(&ls, model, set, unet_w, te_w, 2); // private W + Σ w_i·s·B_i·A_i
 *     // ... forwards with the same hooks and lora_scale = NULL
 *     lora_unmerge(&ls);                            // back to the base kernels
 *     lora_state_free(&ls);
 *
 * Neither the model nor a loaded LoRA is ever written: both may be shared
 * by threads that each hold their own lora_state.
 */
#ifndef LMX_LORA_LORA_H
#define LMX_LORA_LORA_H

#include "model/sd_model.h"

typedef enum lora_comp { LORA_UNET = 0, LORA_TE = 1, LORA_N_COMP = 2 } lora_comp;

/* Key spellings seen in a file (flags). */
enum {
    LORA_FMT_KOHYA = 1u,         /* lora_unet_ / lora_te_ + lora_down/lora_up/alpha   */
    LORA_FMT_KOHYA_LDM = 2u,     /* ... with UNet paths in the LDM dialect            */
    LORA_FMT_PEFT = 4u,          /* unet. / text_encoder. + lora_A / lora_B           */
    LORA_FMT_DIFFUSERS_OLD = 8u, /* lora.down, lora_linear_layer, processor.to_q_lora */
    LORA_FMT_PEFT_PREFIX = 16u,  /* base_model.model. wrapper prefix                  */
};

typedef enum lora_scaling {
    LORA_SCALING_OWN = 0,    /* each module's own alpha / rank (alpha = rank if absent) */
    LORA_SCALING_DIFFUSERS,  /* diffusers 0.32.2 + peft 0.12.0 (docs/methods.md §2.2)   */
} lora_scaling;

typedef struct lora_opts {
    /* Apply kohya modules on conv_in, conv_out, time_embedding.linear_1/2.
     * diffusers' kohya conversion leaves them unmapped and drops them, so by
     * default loramix ignores them too (and reports them). */
    int apply_dropped;
    lora_scaling scaling;
    int quiet;               /* 1: no lmx_warn lines (the report still has it all) */
    int kernels;             /* lora_load_targets: build the kernels too (benchmarks) */
} lora_opts;

lora_opts lora_opts_default(void);

/* ---- targets: the layers a LoRA can adapt -------------------------------- */

typedef struct lora_target {
    char *path;              /* module path: "down_blocks.0.attentions.0.proj_in"  */
    lora_comp comp;
    nn_kind kind;
    int64_t n_out, n_in;
    int k, stride, pad;      /* conv geometry (1, 1, 0 for a linear)               */
    const nn_layer *layer;   /* the model's layer; NULL for a config-only list     */
} lora_target;

typedef struct lora_targets lora_targets;

/* Every Linear/Conv2d of the model's UNet and text encoder. */
lmx_status lora_targets_from_model(lora_targets **out, const sd_model *m);
/* The same list from configs alone, no weights (inspect without a model;
 * lora_targets_sd15 uses SD1.5's configs). */
lmx_status lora_targets_from_config(lora_targets **out, const unet_config *u,
                                    const clip_text_config *t);
lmx_status lora_targets_sd15(lora_targets **out);
void lora_targets_free(lora_targets *t);
int lora_targets_count(const lora_targets *t);
const lora_target *lora_targets_at(const lora_targets *t, int i);
/* The target for a module path of a component, or -1. */
int lora_targets_find(const lora_targets *t, lora_comp c, const char *path);

/* ---- a loaded LoRA ------------------------------------------------------- */

typedef struct lora_module {
    lora_comp comp;
    int target;              /* index in the targets the file was matched against  */
    const lora_target *tg;   /* that target (valid while the targets live)         */
    char *key;               /* module key stem in the file (messages)             */
    int rank;
    int has_alpha;
    float alpha;             /* the file's alpha, or the rank when absent          */
    float scale_own;         /* alpha / rank                                       */
    float scale_ref;         /* what diffusers 0.32.2 + peft 0.12.0 would use      */
    float scale;             /* the one in use (lora_opts.scaling)                 */
    int kh, kw;              /* down kernel (1 x 1 for a linear)                   */
    int dropped;             /* kohya conv_in/conv_out/time_embedding: not applied */
    unsigned spelling;       /* LORA_FMT_* of its keys                             */
    const st_tensor *down_t, *up_t, *alpha_t; /* in the mapped file                */
    /* Prepared kernels (loads with a model, non-dropped modules only). */
    op_linear *down, *up;
    op_conv2d *down_conv, *up_conv;
} lora_module;

/* Per-component summary for the report. */
typedef struct lora_comp_info {
    int n_modules, n_linear, n_conv1x1, n_convkxk, n_dropped;
    int n_ranks, n_alphas;   /* distinct values                                    */
    int rank_min, rank_max, rank_mode;
    float alpha_min, alpha_max, alpha_mode;
    int n_with_alpha;
    int n_ref_differs;       /* modules whose diffusers scale differs from alpha/r */
} lora_comp_info;

struct lmx_lora {
    char *path;
    char *name;                  /* file name without directory and extension     */
    st_file *f;                  /* mapped while the LoRA lives                    */
    lora_opts opts;
    unsigned formats;            /* LORA_FMT_*                                     */
    lora_module *mod;
    int n_mod;
    lora_comp_info info[LORA_N_COMP];
    char **unmatched;            /* file keys that matched no layer                */
    int n_unmatched;
    int n_dropped_keys;          /* keys of dropped modules                        */
    int n_nonfinite;             /* tensors with NaN or Inf values                 */
    char **warnings;             /* one line each (also in the report)             */
    int n_warnings;
    char *report;
    const sd_model *model;       /* the model whose layers were matched (NULL: inspect) */
    lora_targets *targets;       /* owned when loaded for a model                  */
    int *mod_of_target;          /* [targets] module index or -1                   */
    uint64_t serial;             /* load order (process-wide, from 1): the order of
                                    the adapters in a layer's list                 */
};
typedef struct lmx_lora lmx_lora;

/* Load `path` for model m: open, refuse unsupported kinds, match every key
 * against m's layers, check shapes, convert to fp32 and prepare kernels.
 * Unmatched keys and ignored modules are warned about (once, summarised)
 * and listed in the report; shape mismatches, missing up/down tensors,
 * rank 0, rank mismatches, LyCORIS and SDXL/SD2 files are errors naming the
 * file and key. opts may be NULL (defaults). */
lmx_status lora_load(lmx_lora **out, const sd_model *m, const char *path, const lora_opts *opts);
/* The same without kernels, against a target list (`loramix lora inspect`).
 * The targets must outlive the LoRA. */
lmx_status lora_load_targets(lmx_lora **out, const lora_targets *t, const char *path,
                             const lora_opts *opts);
void lora_free(lmx_lora *l);
/* The report as JSON (a cJSON object; the caller deletes it). NULL on OOM. */
struct cJSON;
struct cJSON *lora_report_json(const lmx_lora *l);

/* ---- applying ------------------------------------------------------------ */

/* The per-run LoRA state of one model: a hook table per component (UNet,
 * text encoder; nn_hooks, index = layer id) holding the attached adapters
 * and the merged private kernels. Owned by its user (an lmx_ctx); zero-
 * initialised = empty; built lazily for the model of the first call. */
typedef struct lora_state {
    const sd_model *model;
    nn_hooks hooks[LORA_N_COMP];
} lora_state;

void lora_state_free(lora_state *s);
/* Largest attached rank of a component (0 when none). */
int lora_state_rank(const lora_state *s, lora_comp c);

/* Detach every adapter of s, then attach loras[i]'s modules with lora_index
 * = i. Each LoRA must have been loaded for m. Activation arenas sized before
 * must be re-sized (the side-path scratch grows with the largest attached
 * rank). On error nothing stays attached. */
lmx_status lora_attach(lora_state *s, const sd_model *m, const lmx_lora *const *loras, int n);
void lora_detach(lora_state *s);

/* Merged mode: for every layer some LoRA touches, build a private kernel
 * from the pristine weights (re-read from the mapped file):
 *     W' = W + Σ_i w_i · scale_m · B_i A_i      (w = unet_w[i] or te_w[i])
 * and install it in s's hooks; untouched layers keep their base kernel.
 * w_i = 0 skips LoRA i. Replaces any previous merge of s (never un-merges
 * by subtraction). The scale tables must be NULL (or all zero) in forwards
 * that should not add side paths on top. */
lmx_status lora_merge(lora_state *s, const sd_model *m, const lmx_lora *const *loras,
                      const float *unet_w, const float *te_w, int n);
/* Every layer back to its base kernel. */
void lora_unmerge(lora_state *s);
/* Layers with a merged kernel installed. */
int lora_n_merged(const lora_state *s);

/* ---- training metadata ---------------------------------------------------- */

typedef struct lora_tag {
    char *name;
    double count;
} lora_tag;

/* Sum ss_tag_frequency over datasets, most frequent first (ties by name).
 * Returns the count (0 when json is NULL), or -1 when it is not valid JSON
 * or memory runs out. Free with lora_free_tags. */
int lora_parse_tags(const char *json, lora_tag **out);
void lora_free_tags(lora_tag *v, int n);

/* ---- small helpers ------------------------------------------------------- */

const char *lora_comp_name(lora_comp c);         /* "UNet", "text encoder" */
/* Bytes of kernels and mapped tensors a loaded LoRA holds. */
size_t lora_bytes(const lmx_lora *l);

#endif /* LMX_LORA_LORA_H */
