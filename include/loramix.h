/*
 * loramix.h - the whole public API of loramix.
 *
 * loramix runs Stable Diffusion 1.x checkpoints on the CPU, in C11, with
 * numbers that match diffusers/transformers, and composes several LoRA
 * adapters while sampling (Merge, Switch, Composite, W-Switch, W-Composite).
 *
 * Conventions
 *   - Every fallible call returns an lmx_status. On failure, lmx_errmsg()
 *     returns a message naming the culprit (file, tensor key, shape, flag).
 *     The message is thread-local: read it on the thread that got the error.
 *   - Objects with invariants are opaque handles created by the _load/_create calls
 *     and released by the matching _free call; passing NULL to it is a no-op.
 *   - Parameter structs are plain; get defaults from the *_default() getter
 *     and change the fields you care about.
 *   - Thread safety: a loaded model is immutable and may be shared between
 *     threads; a context (lmx_ctx) belongs to one thread at a time.
 *   - Nothing in the library calls exit() or abort() on bad input.
 *
 * Example: generate one image.
 *
 *   #include <loramix.h>
 *   #include <stdio.h>
 *
 *   int main(void) {
 *       lmx_model *m = NULL;
 *       if (lmx_model_load(&m, "models/tiny-sd", NULL) != LMX_OK) {
 *           fprintf(stderr, "loramix: %s\n", lmx_errmsg());
 *           return 1;
 *       }
 *       lmx_ctx *ctx = NULL;
 *       lmx_gen_params p = lmx_gen_params_default();
 *       p.prompt = "a photo of a cat";
 *       p.seed = 42;
 *       lmx_image img = {0};
 *       if (lmx_ctx_create(&ctx, m, NULL) != LMX_OK || lmx_generate(ctx, &p, &img) != LMX_OK ||
 *           lmx_image_save_png(&img, "cat.png") != LMX_OK)
 *           fprintf(stderr, "loramix: %s\n", lmx_errmsg());
 *       lmx_image_free(&img);
 *       lmx_ctx_free(ctx);
 *       lmx_model_free(m);
 *       return 0;
 *   }
 */
#ifndef LORAMIX_H
#define LORAMIX_H

#include <stddef.h>
#include <stdint.h>

/* LMX_API marks every function of the public API. The library is compiled
 * with -fvisibility=hidden, so these are the only symbols libloramix.so
 * exports; for users of the static library the attribute changes nothing.
 * Define LMX_API before including this header to override it. */
#ifndef LMX_API
#if defined(__GNUC__) || defined(__clang__)
#define LMX_API __attribute__((visibility("default")))
#else
#define LMX_API
#endif
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ---- status and errors ------------------------------------------------- */

typedef enum lmx_status {
    LMX_OK = 0,
    LMX_ERR_ARG,         /* a bad argument or flag value                   */
    LMX_ERR_IO,          /* a file could not be opened, read or written    */
    LMX_ERR_FORMAT,      /* a file is malformed, truncated or hostile      */
    LMX_ERR_SHAPE,       /* a tensor has the wrong shape or is missing     */
    LMX_ERR_UNSUPPORTED, /* valid input that loramix does not handle (yet) */
    LMX_ERR_NOMEM,       /* an allocation failed                           */
    LMX_ERR_BACKEND,     /* the compute backend (oneDNN) reported an error */
    LMX_ERR_INTERNAL,    /* a bug in loramix                               */
    LMX_ERR_NUMERIC,     /* numbers that cannot be right (NaN/Inf latents) */
    LMX_ERR_CANCELLED,   /* the context's abort callback asked to stop     */
    LMX_STATUS_COUNT
} lmx_status;

/* "ok", "bad argument", ... for a status; never NULL. */
LMX_API const char *lmx_status_name(lmx_status st);

/* The message of the last error on this thread ("" if none). */
LMX_API const char *lmx_errmsg(void);

/* Library version as "MAJOR.MINOR.PATCH". */
LMX_API const char *lmx_version(void);

/* ---- logging ----------------------------------------------------------- */

typedef enum lmx_log_level {
    LMX_LOG_ERROR = 0,
    LMX_LOG_WARN,
    LMX_LOG_INFO,
    LMX_LOG_DEBUG
} lmx_log_level;

/* Messages at or below `level` go to the callback (default: stderr with a
 * "loramix: warning: " style prefix). Pass cb = NULL to restore the default. */
typedef void (*lmx_log_fn)(lmx_log_level level, const char *msg, void *user);
LMX_API void lmx_log_set(lmx_log_level level, lmx_log_fn cb, void *user);

/* ---- threads ----------------------------------------------------------- */

/* Number of threads used by the compute kernels called from this thread
 * (0 = all cores; OpenMP's setting of the calling thread). A context with
 * lmx_ctx_params.n_threads > 0 uses its own count instead. */
LMX_API void lmx_set_threads(int n_threads);
LMX_API int lmx_get_threads(void);


/* ---- models ------------------------------------------------------------
 * A model is a Stable Diffusion 1.x checkpoint: a diffusers folder
 * (model_index.json, unet/, text_encoder/, vae/, tokenizer/, scheduler/) or
 * a single-file checkpoint in the original layout (.safetensors). Weights
 * are memory-mapped, checked tensor by tensor, converted to the compute
 * precision and packed once. A loaded model is immutable and shareable. */

typedef struct lmx_model lmx_model;
typedef struct lmx_ctx lmx_ctx; /* per-thread generation state, below */

typedef enum lmx_precision {
    LMX_PREC_F32 = 0,   /* the reference: matches diffusers in fp32        */
    LMX_PREC_BF16,      /* opt-in speed mode: bf16 weights, fp32 accumulate */
} lmx_precision;

typedef struct lmx_model_params {
    const char *vae_path;    /* replace the VAE (folder or file); NULL = own */
    lmx_precision precision;
    int winograd;            /* allow Winograd 3x3 convolutions (fp32)      */
    int n_threads;           /* threads while loading (packing weights);
                                0 = the calling thread's setting. Restored
                                when lmx_model_load returns: a model holds no
                                thread count (see lmx_ctx_params)            */
    int allow_gaps;          /* accept safetensors files whose tensors leave
                                unreferenced bytes in the data area (the
                                reference reader refuses them, so does
                                loramix by default); LoRAs loaded for this
                                model inherit it                             */
} lmx_model_params;

LMX_API lmx_model_params lmx_model_params_default(void);
LMX_API lmx_status lmx_model_load(lmx_model **out, const char *path, const lmx_model_params *params);
LMX_API void lmx_model_free(lmx_model *m);


/* ---- LoRA adapters -----------------------------------------------------
 * A LoRA file (kohya "lora_unet_*"/"lora_te_*" or diffusers/PEFT
 * "unet.*"/"text_encoder.*") loaded for one model: its modules are matched
 * against the model's own layers, shapes checked, weights converted to fp32
 * and packed. The model's weights are never modified, so the set of active
 * LoRAs can change between images and between denoising steps.
 * Thread safety: like a model, a loaded LoRA is immutable and shareable. */

typedef struct lmx_lora lmx_lora;

LMX_API lmx_status lmx_lora_load(lmx_lora **out, const lmx_model *m, const char *path);
LMX_API void lmx_lora_free(lmx_lora *l);
/* A human-readable loading report: format, ranks, alphas, targets per
 * component, keys that matched nothing. Owned by the LoRA. */
LMX_API const char *lmx_lora_report(const lmx_lora *l);
/* Number of file keys that matched no layer of the model. */
LMX_API int lmx_lora_n_unmatched(const lmx_lora *l);
/* The k most frequent training tags (kohya ss_tag_frequency metadata, which
 * usually reveal the trigger words) as "tag1, tag2, ..." in buf; returns the
 * length (0 when the file has none). */
LMX_API size_t lmx_lora_top_tags(const lmx_lora *l, int k, char *buf, size_t cap);

typedef enum lmx_lora_category {
    LMX_CAT_OTHER = 0,
    LMX_CAT_CHARACTER,
    LMX_CAT_CLOTHING,
    LMX_CAT_STYLE,
    LMX_CAT_BACKGROUND,
    LMX_CAT_OBJECT,
    LMX_CAT_COUNT
} lmx_lora_category;

LMX_API const char *lmx_lora_category_name(lmx_lora_category c); /* "character", ... */

/* One LoRA as used in a generation: the loaded adapter, its strengths and,
 * for the composition methods, its trigger phrases and category. The
 * effective multiplier of a module is  lora_scale · unet_scale · alpha / rank
 * in the UNet (te_scale in the text encoder), as diffusers computes it with
 * set_adapters(weights) and cross_attention_kwargs={"scale": lora_scale}. */
typedef struct lmx_lora_use {
    const lmx_lora *lora;
    float unet_scale;             /* default 1                                 */
    float te_scale;               /* default 1                                 */
    const char *name;             /* e.g. "character_1"; NULL = file name      */
    lmx_lora_category category;
    const char *const *triggers;  /* trigger phrases, in prompt order          */
    int n_triggers;
} lmx_lora_use;

LMX_API lmx_lora_use lmx_lora_use_default(const lmx_lora *l);


/* ---- multi-LoRA composition ---------------------------------------------
 * How several LoRAs share one generation (docs/methods.md):
 *   MERGE        every LoRA active at every step, summed (the default)
 *   SWITCH       one LoRA per step, cycling every switch_steps steps
 *   COMPOSITE    every step, one UNet pass per LoRA; mean of the guided noise
 *   W_SWITCH     SWITCH with block lengths from prompt-aware weights (PAW)
 *                and the last tail_steps steps given to the character LoRA
 *   W_COMPOSITE  COMPOSITE with a weighted mean (PTW weights)
 * Zhong et al. 2024 (arXiv 2402.16843); Tsoumplekas et al. 2026 (arXiv
 * 2606.03792). */

typedef enum lmx_method {
    LMX_METHOD_MERGE = 0,
    LMX_METHOD_SWITCH,
    LMX_METHOD_COMPOSITE,
    LMX_METHOD_W_SWITCH,
    LMX_METHOD_W_COMPOSITE,
    LMX_METHOD_COUNT
} lmx_method;

LMX_API const char *lmx_method_name(lmx_method m);               /* "merge", "w-switch", ... */
LMX_API lmx_status lmx_method_parse(const char *s, lmx_method *out);

typedef enum lmx_weighting {
    LMX_WEIGHTING_DEFAULT = 0, /* PAW for W-Switch, PTW for W-Composite, else uniform */
    LMX_WEIGHTING_PAW,         /* prompt ablation: 1 - cos(e(P), e(P without LoRA i)) */
    LMX_WEIGHTING_PTW,         /* prompt-trigger similarity: cos(e(P), e(triggers i))  */
    LMX_WEIGHTING_UNIFORM,
    LMX_WEIGHTING_MANUAL,      /* lmx_compose.manual_weights                          */
    LMX_WEIGHTING_COUNT
} lmx_weighting;

LMX_API const char *lmx_weighting_name(lmx_weighting w);
LMX_API lmx_status lmx_weighting_parse(const char *s, lmx_weighting *out); /* not "manual:..." */

typedef struct lmx_compose {
    lmx_method method;
    int switch_steps;              /* tau, default 5                             */
    int tail_steps;                /* W-Switch character tail, default 5         */
    lmx_weighting weighting;
    const double *manual_weights;  /* [n_loras] for LMX_WEIGHTING_MANUAL         */
    int switch_timing_reference;   /* 1: the reference code's one-step shift
                                      (docs/methods.md D3); 0: the clean schedule */
    int round_half_up;             /* 1: block lengths round half up (D2)        */
    int weights_te_generation;     /* 1: PAW/PTW with the generation's TE LoRAs
                                      (D5); 0: the base text encoder (default)   */
} lmx_compose;

LMX_API lmx_compose lmx_compose_default(void);

/* Prompt-aware weights of `n` LoRAs for a prompt, as the W-methods compute
 * them (w[i] normalised, raw[i] before normalisation; either may be NULL). */
LMX_API lmx_status lmx_prompt_weights(lmx_ctx *ctx, const char *prompt, const lmx_lora_use *loras, int n,
                              lmx_weighting weighting, double *w, double *raw);

/* ---- generation --------------------------------------------------------
 * A context holds the per-run state of generation (kernel caches,
 * activation arena, the LoRAs attached for the current generation and
 * their merged private kernels, the thread count, the abort callback) and
 * belongs to one thread at a time; reuse it for many images of the same
 * model. Several contexts may run on one model at the same time, each in
 * its own thread, with any LoRA sets: the model and the LoRAs are only read. */

/* Asked between denoising steps, between UNet passes and before the VAE
 * decode: return nonzero to cancel; the generation then returns
 * LMX_ERR_CANCELLED and no images. Called on the generating thread. */
typedef int (*lmx_abort_fn)(void *user);

typedef struct lmx_ctx_params {
    int n_threads;           /* compute threads of this context's runs; 0 =
                                the calling thread's setting (lmx_set_threads,
                                OMP_NUM_THREADS). Applied to the calling
                                thread for the duration of each call and
                                restored after it                            */
    lmx_abort_fn abort;      /* NULL = never cancel                          */
    void *abort_user;
} lmx_ctx_params;

LMX_API lmx_ctx_params lmx_ctx_params_default(void);
/* params may be NULL (defaults). */
LMX_API lmx_status lmx_ctx_create(lmx_ctx **out, const lmx_model *m, const lmx_ctx_params *params);
LMX_API void lmx_ctx_free(lmx_ctx *ctx);

typedef enum lmx_scheduler {
    LMX_SCHED_DEFAULT = 0, /* the model's scheduler_config.json (PNDM for SD1.5) */
    LMX_SCHED_DPMPP_2M,    /* DPMSolverMultistepScheduler, dpmsolver++ order 2 */
    LMX_SCHED_DDIM,
    LMX_SCHED_EULER,
    LMX_SCHED_EULER_A,
    LMX_SCHED_PNDM,
    LMX_SCHED_COUNT
} lmx_scheduler;

LMX_API const char *lmx_scheduler_name(lmx_scheduler s);           /* "dpm++2m", ... */
LMX_API lmx_status lmx_scheduler_parse(const char *name, lmx_scheduler *out);

/* Which of torch's CPU normal-distribution kernels to reproduce: they differ
 * by up to 2e-6 in ~38% of the values (docs/numerics.md §11). torch
 * 2.8 takes the x86 kernel on every x86-64 CPU with AVX2 or AVX-512; ARM
 * (Apple silicon) and generic builds take the portable one. */
typedef enum lmx_rng {
    LMX_RNG_TORCH_X86 = 0,
    LMX_RNG_TORCH_PORTABLE,
} lmx_rng;

/* Progress: called after every denoising step, step = 1..n_steps, n_steps =
 * the steps asked for (a scheduler's extra UNet call, PNDM's first step, is
 * not counted; elapsed_s includes it). */
typedef void (*lmx_progress_fn)(int step, int n_steps, double elapsed_s, void *user);

typedef struct lmx_gen_params {
    const char *prompt;
    const char *negative_prompt;  /* NULL or "" = empty                     */
    int width, height;            /* pixels, multiples of 8                 */
    int steps;
    float guidance;               /* CFG scale; <= 1 disables CFG           */
    uint64_t seed;                /* torch.manual_seed(seed) on the CPU     */
    int n_images;                 /* one generator stream for the batch     */
    lmx_rng rng;                  /* torch kernel to match (default x86)    */
    uint64_t noise_skip;          /* draws of the initial-noise shape to skip on
                                     the seed's stream first: image k of a run
                                     sharing one generator (docs/testbed.md §3,
                                     ZHONG protocol) is noise_skip = k; default 0 */
    lmx_scheduler scheduler;
    const char *timestep_spacing; /* NULL = config; "linspace", "leading", "trailing" */
    int karras_sigmas;            /* 1: use_karras_sigmas=true whatever the model's
                                     scheduler_config.json says (DPM++ 2M and
                                     Euler only: LMX_ERR_ARG for the others);
                                     0: as the config says                       */
    int clip_skip;                /* 0 = last layer (diffusers clip_skip=None) */
    /* LoRA adapters. Unless a composition method says otherwise, every LoRA
     * is active in the UNet and the text encoder at every step. */
    const lmx_lora_use *loras;
    int n_loras;
    float lora_scale;             /* global multiplier (diffusers' "scale"), 1 */
    int lora_merged;              /* 1: merge into a private weight copy instead
                                     of runtime side paths (same numbers up to
                                     rounding; faster for one fixed set)        */
    lmx_compose compose;          /* how the LoRAs share the generation         */
    lmx_progress_fn progress;
    void *progress_user;
} lmx_gen_params;

LMX_API lmx_gen_params lmx_gen_params_default(void);

/* An 8-bit RGB image and the text that describes how it was made. */
typedef struct lmx_image {
    int width, height;
    uint8_t *rgb;          /* height x width x 3                              */
    char *parameters;      /* A1111-style "parameters" text                   */
    char *json;            /* everything needed to reproduce it, as JSON:
                              settings, LoRAs, composition weights and the
                              per-step LoRA schedule                          */
} lmx_image;

/* Generate p->n_images images into images[0..n_images-1]. On any error,
 * LMX_ERR_CANCELLED included, images[] are left empty (nothing to free). */
LMX_API lmx_status lmx_generate(lmx_ctx *ctx, const lmx_gen_params *p, lmx_image *images);
/* Working memory lmx_generate(ctx of m, p) will need, in bytes, on top of
 * the model's weights: the larger of the UNet's activation arena for one
 * batch (CFG doubles it, composite methods multiply it by the LoRA count) and
 * the VAE decoder's arena for one image, plus the latent and image buffers.
 * These are the sizes lmx_generate reserves, computed without allocating;
 * p's width/height 0 mean the model's native size. For a check before a
 * run that could exhaust the machine (the CLI refuses above a limit). */
LMX_API uint64_t lmx_generate_memory(const lmx_model *m, const lmx_gen_params *p);
/* Write a PNG with the parameters and JSON chunks, atomically. */
LMX_API lmx_status lmx_image_save_png(const lmx_image *img, const char *path);
/* Write the PNG to a file a user named, by the rules of docs/file-formats.md
 * ("Where a PNG goes"): "-" is standard output (refused when a terminal); a
 * character device or FIFO is written directly; a symlink is followed and
 * its target written; an existing regular file is refused unless flags has
 * LMX_OUT_OVERWRITE, and a read-only one is refused even then; a replaced
 * file keeps its permissions, a new one gets 0666 & ~umask. Regular files
 * are written atomically (temporary file in the same folder + rename). */
#define LMX_OUT_OVERWRITE 1u
LMX_API lmx_status lmx_image_write_png(const lmx_image *img, const char *path, unsigned flags);
/* The checks of lmx_image_write_png without writing (a temporary file is
 * created and removed to prove the folder is writable; a FIFO is not
 * opened): call it before long work so a bad output path fails at once. */
LMX_API lmx_status lmx_output_check(const char *path, unsigned flags);
LMX_API void lmx_image_free(lmx_image *img);

#ifdef __cplusplus
}
#endif

#endif /* LORAMIX_H */
