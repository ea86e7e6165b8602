/*
 * sched.h - noise schedules and the five samplers, matching diffusers 0.32.2
 * (torch 2.8.0, numpy 1.26.4) op by op in fp32.
 *
 *   kind              diffusers class                      names accepted by sched_kind_parse
 *   SCHED_DPMPP_2M    DPMSolverMultistepScheduler          dpm++2m, dpmpp_2m, dpm, dpmsolver++
 *   SCHED_DDIM        DDIMScheduler                        ddim
 *   SCHED_EULER       EulerDiscreteScheduler               euler
 *   SCHED_EULER_A     EulerAncestralDiscreteScheduler      euler_a, euler-a, euler_ancestral
 *   SCHED_PNDM        PNDMScheduler                        pndm, plms
 * (class names are accepted too, case-sensitively).
 *
 * Usage, as StableDiffusionPipeline.__call__ does it:
 *
 *   sched_config cfg;
 *   sched_config_load(&cfg, SCHED_KIND_FROM_JSON, "model/scheduler/scheduler_config.json",
 *                     SCHED_CFG_PIPELINE);           // or a kind: from_config() into it
 *   sched *s;
 *   sched_create(&s, &cfg, n_steps);                 // set_timesteps(n_steps)
 *   sched_config_clear(&cfg);
 *   rng_state rng;
 *   rng_init(&rng, seed, RNG_PATH_AVX2);             // torch.manual_seed(seed)
 *   rng_randn(&rng, x, n);                           // torch.randn(latent shape, generator)
 *   sched_init_noise(s, x, n);                       // x * init_noise_sigma
 *   for (int i = 0; i < sched_n_calls(s); i++) {     // n_steps, or n_steps+1 (PNDM, some trailing)
 *       float t = sched_timestep(s, i);              // what the UNet gets
 *       sched_scale_model_input(s, i, x, xin, n);    // x / sqrt(sigma^2+1) for Euler, else a copy
 *       ... eps = unet(xin, t) with CFG ...
 *       sched_step(s, i, eps, x, n, &rng);           // x <- scheduler.step(eps, t, x)
 *   }
 *   sched_free(s);
 *
 * Tensors are fp32 in the latent's NCHW element order [B, 4, h, w] (every
 * operation is elementwise, but Euler-ancestral's noise, and DDIM's when
 * eta > 0, is drawn from the generator in that order, as torch does). The rng
 * passed to sched_step must be the pipeline's generator (the one that drew
 * the initial latent); it may be NULL for samplers that draw nothing.
 *
 * Config semantics (diffusers ConfigMixin.from_config, both pinned versions):
 * a key present in the JSON and known to the target class is used; every
 * other key takes the target class's own default (defaults differ per class:
 * DDIM clip_sample=true, set_alpha_to_one=true, spacing leading; PNDM
 * skip_prk_steps=false, spacing leading; DPM/Euler spacing linspace; all
 * linear betas 0.0001..0.02). Keys the class does not know are ignored,
 * except sigma_min/sigma_max, which DPM-Solver's Karras schedule reads from
 * the JSON whatever class wrote it (diffusers registers unknown keys as
 * hidden config entries). SCHED_CFG_PIPELINE additionally applies
 * StableDiffusionPipeline's constructor fixups (steps_offset -> 1,
 * clip_sample -> false) to the checkpoint's own class before the
 * conversion, so that a key the JSON lacks still takes the target class's
 * default (see docs/schedulers.md).
 *
 * What is refused (LMX_ERR_UNSUPPORTED, naming the key): thresholding=true,
 * variance_type learned/learned_range, use_exponential_sigmas,
 * use_beta_sigmas, use_lu_lambdas, use_flow_sigmas, prediction_type
 * "sample" for Euler ancestral and PNDM (diffusers refuses it too). The DPM
 * algorithm_type is always dpmsolver++: deis is mapped to it as diffusers
 * does; dpmsolver, sde-dpmsolver and sde-dpmsolver++ are replaced by it with
 * an info message, as the ComposLoRA scripts force it. Bad values (unknown
 * strings, wrong JSON types, out-of-range numbers) are LMX_ERR_FORMAT naming
 * the file and the key.
 *
 * Numerics: tables per docs/numerics.md §5 (torch.linspace with its fused
 * multiply-add, cumprod accumulated in double); timesteps with numpy's
 * linspace/arange/rint semantics and numpy 1.x casting (§6); sampler scalars
 * as fp32 0-dim tensor arithmetic in the reference's order (§7, §8).
 * sqrt, log and exp are correctly rounded here. torch 2.8.0 evaluates them
 * (tensors and 0-dim scalars alike) with MKL's VML, which on the reference
 * machine is not correctly rounded (sqrt: ~20 % of results 1 ulp off; log
 * ~7 %; exp ~1 %), and numpy's AVX-512 float32 log differs in ~20 %. With
 * those three functions made correctly rounded in the reference, every
 * table, schedule and trajectory of tests/golden/test_sched.c is bit-exact;
 * against torch as is, one update differs by at most 2.9e-7 relative (spec:
 * 1e-6). See docs/schedulers.md.
 */
#ifndef LMX_SCHED_SCHED_H
#define LMX_SCHED_SCHED_H

#include <stdint.h>

#include "core/core.h"
#include "sched/rng.h"

typedef enum sched_kind {
    SCHED_DPMPP_2M = 0,
    SCHED_DDIM,
    SCHED_EULER,
    SCHED_EULER_A,
    SCHED_PNDM,
    SCHED_KIND_COUNT,
    SCHED_KIND_FROM_JSON = SCHED_KIND_COUNT /* "the JSON's own _class_name" */
} sched_kind;

/* "dpm++2m", "ddim", "euler", "euler_a", "pndm" ("?" when out of range). */
const char *sched_kind_name(sched_kind k);
/* "DPMSolverMultistepScheduler", ... */
const char *sched_kind_class(sched_kind k);
/* Short names, aliases and class names; LMX_ERR_ARG listing the choices. */
lmx_status sched_kind_parse(const char *s, sched_kind *out);

typedef enum sched_beta_schedule {
    SCHED_BETA_LINEAR = 0,
    SCHED_BETA_SCALED_LINEAR,
    SCHED_BETA_SQUAREDCOS_CAP_V2,
} sched_beta_schedule;

typedef enum sched_spacing {
    SCHED_SPACING_LINSPACE = 0,
    SCHED_SPACING_LEADING,
    SCHED_SPACING_TRAILING,
} sched_spacing;

typedef enum sched_prediction {
    SCHED_PRED_EPSILON = 0,
    SCHED_PRED_V,      /* "v_prediction" */
    SCHED_PRED_SAMPLE, /* "sample" (Euler also accepts "original_sample") */
} sched_prediction;

typedef enum sched_solver_type { SCHED_SOLVER_MIDPOINT = 0, SCHED_SOLVER_HEUN } sched_solver_type;
typedef enum sched_final_sigmas { SCHED_FINAL_ZERO = 0, SCHED_FINAL_SIGMA_MIN } sched_final_sigmas;
typedef enum sched_interp { SCHED_INTERP_LINEAR = 0, SCHED_INTERP_LOG_LINEAR } sched_interp;

/* The resolved configuration of one scheduler class. Fields a class does
 * not have keep that class's neutral value and are ignored. */
typedef struct sched_config {
    sched_kind kind;
    int num_train_timesteps;          /* 1000 */
    double beta_start, beta_end;      /* python floats */
    sched_beta_schedule beta_schedule;
    double *trained_betas;            /* NULL, or num_train_timesteps values (owned) */
    int n_trained_betas;
    sched_prediction prediction_type;
    sched_spacing timestep_spacing;
    int steps_offset;
    int rescale_betas_zero_snr;       /* DPM, DDIM, Euler, Euler-a */
    /* DDIM */
    int clip_sample;
    double clip_sample_range;
    int set_alpha_to_one;             /* DDIM and PNDM */
    /* PNDM */
    int skip_prk_steps;
    /* DPM-Solver */
    int solver_order;                 /* 1, 2 or 3 */
    sched_solver_type solver_type;
    int lower_order_final;
    int euler_at_final;
    sched_final_sigmas final_sigmas_type; /* DPM and Euler */
    double lambda_min_clipped;        /* -inf */
    /* DPM and Euler */
    int use_karras_sigmas;
    double sigma_min, sigma_max;      /* NAN = None (use the schedule's own) */
    /* Euler */
    sched_interp interpolation_type;
    int timestep_continuous;          /* timestep_type "continuous" */
    /* Runtime options, not from scheduler_config.json. */
    double eta;                       /* DDIM eta (pipeline default 0) */
    int euler_legacy_noise;           /* Euler: draw (and discard) one latent-sized
                                         randn per step, as diffusers 0.26.3 does */
} sched_config;

/* Flags of sched_config_from_json / _load. */
#define SCHED_CFG_PIPELINE 1u /* apply StableDiffusionPipeline's constructor fixups */

/* The class defaults of `kind` (a valid kind). */
sched_config sched_config_default(sched_kind kind);
/* Frees trained_betas; the struct may be reused. NULL is a no-op. */
void sched_config_clear(sched_config *c);
/* Deep copy (trained_betas duplicated). */
lmx_status sched_config_copy(sched_config *dst, const sched_config *src);

/* Parse scheduler_config.json text (n bytes, need not be NUL-terminated;
 * `label` names it in errors) into the configuration of class `kind`, or of
 * the JSON's own _class_name with SCHED_KIND_FROM_JSON. Accepts the
 * non-standard tokens Infinity, -Infinity and NaN that Python's json
 * module writes. On error *out is left cleared. */
lmx_status sched_config_from_json(sched_config *out, sched_kind kind, const char *text, size_t n,
                                  const char *label, unsigned flags);
lmx_status sched_config_load(sched_config *out, sched_kind kind, const char *path, unsigned flags);
/* The kind named by the JSON's _class_name; LMX_ERR_UNSUPPORTED when the
 * class is not one of the five (the message names it). */
lmx_status sched_json_class(const char *text, size_t n, const char *label, sched_kind *out);

/* ---- training-schedule tables (docs/numerics.md §5) ----
 * For a config: betas, alphas, alphas_cumprod and sigma = sqrt((1-acp)/acp),
 * num_train_timesteps values each (any pointer may be NULL). The same code
 * sched_create uses. */
lmx_status sched_tables(const sched_config *cfg, float *betas, float *alphas, float *alphas_cumprod,
                        float *sigmas);

/* ---- the sampler ---- */

typedef struct sched sched;

/* set_timesteps(n_steps) for cfg->kind: builds every table, the timesteps
 * and sigmas, and checks the whole schedule (indices in range, no repeated
 * first timestep...) so that sched_step cannot fail on valid tensors.
 * cfg is copied; the caller may clear it afterwards. */
lmx_status sched_create(sched **out, const sched_config *cfg, int n_steps);
void sched_free(sched *s);
/* The largest n_steps in [1, limit] for which sched_create(cfg, n_steps)
 * succeeds, in *out (0 when none does, e.g. a bad config). Tries every n
 * from limit down (each try costs O(n) after one O(num_train_timesteps)
 * table build). Why a count fails depends on the config: with "leading"
 * spacing and steps_offset 1, n = num_train_timesteps makes DDIM's and
 * PNDM's last timestep num_train_timesteps itself, one past the table;
 * "linspace" DPM/Euler repeat their first timestep when n nears 2x the
 * table. LMX_ERR_NOMEM only on allocation failure. */
lmx_status sched_max_steps(const sched_config *cfg, int limit, int *out);
/* Back to step 0 for a new image (diffusers: set_timesteps again). Keeps
 * buffers. */
void sched_reset(sched *s);

sched_kind sched_get_kind(const sched *s);
const sched_config *sched_get_config(const sched *s);
/* Number of UNet calls = len(scheduler.timesteps). */
int sched_n_calls(const sched *s);
/* The timestep the UNet gets at call i (exact integer except Euler's
 * linspace / Karras / continuous timesteps). */
float sched_timestep(const sched *s, int i);
/* scheduler.init_noise_sigma (1 for DPM, DDIM, PNDM). */
float sched_init_noise_sigma(const sched *s);
/* x[n] *= init_noise_sigma, as the pipeline does (fp32 multiply). */
void sched_init_noise(const sched *s, float *x, int64_t n);
/* scheduler.scale_model_input(x, t_i) into y (y may equal x). */
lmx_status sched_scale_model_input(const sched *s, int i, const float *x, float *y, int64_t n);
/* scheduler.step(model_out, t_i, x) in place on x[n]. Calls must come in
 * order i = 0, 1, ... n_calls-1 (LMX_ERR_ARG otherwise); n must stay the same
 * between resets. Draws from rng for Euler-a, DDIM with eta > 0 and Euler
 * with euler_legacy_noise (LMX_ERR_ARG if rng is NULL there). The first call
 * allocates the history buffers (LMX_ERR_NOMEM possible); later calls do not
 * allocate. */
lmx_status sched_step(sched *s, int i, const float *model_out, float *x, int64_t n, rng_state *rng);

/* Allocate the history buffers for n-element latents now (sched_step does
 * it at the first step otherwise), so that nothing is allocated inside the
 * sampling loop. Only between runs (step 0). */
lmx_status sched_reserve(sched *s, int64_t n);

/* Inspection (tests, --verbose): the n_calls+1 sigmas of DPM/Euler/Euler-a
 * (NULL for DDIM/PNDM), and the training tables. */
const float *sched_sigmas(const sched *s, int *n_out);
const float *sched_alphas_cumprod(const sched *s, int *n_out);
const float *sched_sigma_table(const sched *s, int *n_out);

/* DPM-Solver++ step scalars of step k (docs/numerics.md §7), for tests: the
 * order used, h, r0 (0 for first order), and c1 = s_t/s_0, c2 = a_t(e^-h-1),
 * c3 = the D1 coefficient (0.5*c2 for midpoint, a_t((e^-h-1)/h+1) for heun). */
typedef struct sched_dpm_scalars {
    int order;
    float h, r0, c1, c2, c3;
} sched_dpm_scalars;
lmx_status sched_dpm_step_scalars(const sched *s, int k, sched_dpm_scalars *out);

#endif /* LMX_SCHED_SCHED_H */
