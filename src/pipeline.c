/*
 * pipeline.c - txt2img: the one file that sees every module (tokenizer, text
 * encoder, UNet, scheduler, VAE, LoRA) and implements the public generation
 * API of loramix.h. It mirrors diffusers 0.32.2 StableDiffusionPipeline
 * .__call__ (docs/numerics.md §1):
 *
 *   E_neg, E_pos = text_encoder(tokenize(negative)), text_encoder(tokenize(prompt))
 *   x = randn([n, 4, h, w], torch.manual_seed(seed)) * init_noise_sigma
 *   for t in timesteps:
 *       u, c = unet(scale_model_input([x, x], t), t, [E_neg, E_pos]).chunk(2)
 *       x = scheduler.step(u + g·(c − u), t, x)
 *   image = round_half_even(clamp(vae.decode(x / scaling_factor)/2 + 0.5, 0, 1)·255)
 *
 * Latents live in NCHW element order (what the scheduler and the RNG see,
 * as in torch); the networks run NHWC, so the UNet input and output are
 * transposed at the boundary (cheap: 4 channels).
 */
#include <cjson/cJSON.h>
#include <math.h>
#include <string.h>

#include "core/core.h"
#include "io/io_util.h"
#include "io/png.h"
#include "model/sd_model.h"
#include "model/tokenizer.h"
#include "ops/ops.h"
#include "pipeline_impl.h"
#include "sched/sched.h"

/* The scheduler config diffusers uses for SD1.5 single files
 * (runwayml/stable-diffusion-v1-5 scheduler/scheduler_config.json). */
static const char SD15_SCHEDULER_CONFIG[] =
    "{\"_class_name\": \"PNDMScheduler\", \"beta_end\": 0.012, \"beta_schedule\": \"scaled_linear\","
    " \"beta_start\": 0.00085, \"clip_sample\": false, \"num_train_timesteps\": 1000,"
    " \"set_alpha_to_one\": false, \"skip_prk_steps\": true, \"steps_offset\": 1,"
    " \"trained_betas\": null}";

/* ---- defaults and names ------------------------------------------------- */

lmx_model_params lmx_model_params_default(void) {
    lmx_model_params p;
    memset(&p, 0, sizeof p);
    p.precision = LMX_PREC_F32;
    return p;
}

lmx_gen_params lmx_gen_params_default(void) {
    lmx_gen_params p;
    memset(&p, 0, sizeof p);
    p.negative_prompt = "";
    p.steps = 30;
    p.guidance = 7.5f;
    p.seed = 42;
    p.n_images = 1;
    p.scheduler = LMX_SCHED_DEFAULT;
    p.lora_scale = 1.0f;
    p.compose = lmx_compose_default();
    return p;
}

static const char *SCHED_NAMES[LMX_SCHED_COUNT] = {"default", "dpm++2m", "ddim", "euler", "euler_a", "pndm"};
/* What A1111's PNG Info calls them. */
static const char *SCHED_A1111[LMX_SCHED_COUNT] = {"?", "DPM++ 2M", "DDIM", "Euler", "Euler a", "PLMS"};

const char *lmx_scheduler_name(lmx_scheduler s) {
    return (unsigned)s < LMX_SCHED_COUNT ? SCHED_NAMES[s] : "?";
}

lmx_status lmx_scheduler_parse(const char *name, lmx_scheduler *out) {
    if (!strcmp(name, "default")) {
        *out = LMX_SCHED_DEFAULT;
        return LMX_OK;
    }
    sched_kind k;
    if (sched_kind_parse(name, &k) != LMX_OK)
        return lmx_err(LMX_ERR_ARG,
                       "--scheduler: unknown scheduler '%s' (dpm++2m, ddim, euler, euler_a, pndm, default)",
                       name);
    *out = (lmx_scheduler)(k + 1);
    return LMX_OK;
}

static lmx_scheduler from_kind(sched_kind k) { return (lmx_scheduler)(k + 1); }
static sched_kind to_kind(lmx_scheduler s) { return (sched_kind)(s - 1); }

/* ---- model -------------------------------------------------------------- */

static lmx_status model_load(lmx_model **out, const char *path, const lmx_model_params *params) {
    *out = NULL;
    lmx_model_params p = params ? *params : lmx_model_params_default();
    if (p.precision == LMX_PREC_BF16 && op_bf16_check("precision") != LMX_OK) return LMX_ERR_UNSUPPORTED;
    lmx_model *m = lmx_calloc(1, sizeof *m);
    if (!m) return lmx_err(LMX_ERR_NOMEM, "%s: out of memory", path);
    m->params = p;
    /* The thread pool first, while memory is there: libgomp exits the
     * process when it cannot create a thread. */
    lmx_status tst = lmx_threads_start();
    if (tst != LMX_OK) {
        lmx_free(m);
        return tst;
    }
    sd_load_opts o = sd_load_opts_default();
    o.vae_path = p.vae_path;
    o.prec = p.precision == LMX_PREC_BF16 ? OP_PREC_BF16 : OP_PREC_F32;
    o.winograd = p.winograd;
    o.allow_gaps = p.allow_gaps;
    lmx_status st = sd_model_load(&m->sd, path, &o);
    if (st != LMX_OK) goto fail;
    st = m->sd->tokenizer_dir ? tok_load_dir(&m->tok, m->sd->tokenizer_dir) : tok_load_bundled(&m->tok);
    if (st != LMX_OK) goto fail;
    m->path = lmx_strdup(path);
    if (!m->path) {
        st = lmx_err(LMX_ERR_NOMEM, "%s: out of memory", path);
        goto fail;
    }
    /* The model's name for the PNG parameters: the last path component. */
    const char *base = path + strlen(path);
    while (base > path && base[-1] == '/') base--;
    const char *end = base;
    while (base > path && base[-1] != '/') base--;
    size_t len = (size_t)(end - base);
    const char *dot = memchr(base, '.', len);
    if (dot && !strncmp(dot, ".safetensors", 12)) len = (size_t)(dot - base);
    m->name = lmx_malloc(len + 1);
    if (!m->name) {
        st = lmx_err(LMX_ERR_NOMEM, "%s: out of memory", path);
        goto fail;
    }
    memcpy(m->name, base, len);
    m->name[len] = 0;
    *out = m;
    return LMX_OK;
fail:
    lmx_model_free(m);
    return st;
}

/* The load's thread count applies to this call only (the caller's setting
 * is restored): a model holds no thread state. */
lmx_status lmx_model_load(lmx_model **out, const char *path, const lmx_model_params *params) {
    const int saved = lmx_get_threads();
    if (params && params->n_threads > 0) lmx_set_threads(params->n_threads);
    lmx_status st = model_load(out, path, params);
    lmx_set_threads(saved);
    return st;
}

void lmx_model_free(lmx_model *m) {
    if (!m) return;
    tok_free(m->tok);
    sd_model_free(m->sd);
    lmx_free(m->path);
    lmx_free(m->name);
    lmx_free(m);
}

/* ---- context ------------------------------------------------------------ */

lmx_ctx_params lmx_ctx_params_default(void) {
    lmx_ctx_params p;
    memset(&p, 0, sizeof p);
    return p;
}

lmx_status lmx_ctx_create(lmx_ctx **out, const lmx_model *m, const lmx_ctx_params *params) {
    if (!out) return lmx_err(LMX_ERR_ARG, "lmx_ctx_create: out is NULL");
    *out = NULL;
    if (!m) return lmx_err(LMX_ERR_ARG, "lmx_ctx_create: no model");
    lmx_ctx_params cp = params ? *params : lmx_ctx_params_default();
    if (cp.n_threads < 0)
        return lmx_err(LMX_ERR_ARG, "n_threads: expected 0 (the caller's setting) or more, got %d", cp.n_threads);
    lmx_ctx *c = lmx_calloc(1, sizeof *c);
    if (!c) return lmx_err(LMX_ERR_NOMEM, "context: out of memory");
    c->m = m;
    c->params = cp;
    lmx_status st = op_ctx_create(&c->ops);
    if (st != LMX_OK) {
        lmx_free(c);
        return st;
    }
    *out = c;
    return LMX_OK;
}

void lmx_ctx_free(lmx_ctx *c) {
    if (!c) return;
    lmx_arena_free(&c->arena);
    lora_state_free(&c->lora);
    op_ctx_free(c->ops);
    lmx_free(c);
}

/* ---- text encoding ------------------------------------------------------ */

/* Tokenize `text` to the 77 ids the pipeline feeds the encoder; warns (once
 * per prompt) when the prompt is longer than the model's 77 tokens, naming
 * what is dropped, as diffusers does. */
static lmx_status tokenize(const lmx_model *m, const char *text, const char *what, int64_t *ids) {
    int n_raw = 0;
    lmx_status st = tok_encode_padded(m->tok, text, -1, ids, &n_raw);
    if (st != LMX_OK) {
        lmx_err_prefix("%s: ", what);
        return st;
    }
    int keep = tok_max_length(m->tok) - 2;
    if (n_raw > keep) {
        char *dropped = NULL;
        int partial = 0;
        if (tok_dropped_text(m->tok, text, -1, &dropped, &partial) == LMX_OK && dropped) {
            lmx_warn("%s is %d tokens, longer than the %d the text encoder takes; dropped: \"%s\"",
                     what, n_raw, keep, dropped);
            lmx_free(dropped);
        }
    }
    return LMX_OK;
}

lmx_status pipeline_encode_text(lmx_ctx *c, const char *text, const char *what, int clip_skip,
                                const float *lora_scale, int n_loras, float *out) {
    const lmx_model *m = c->m;
    int L = tok_max_length(m->tok);
    int64_t ids[128];
    if (L > 128) return lmx_err(LMX_ERR_UNSUPPORTED, "tokenizer max length %d is over 128", L);
    lmx_status st = tokenize(m, text ? text : "", what, ids);
    if (st != LMX_OK) return st;
    /* the context's hooks: side paths (with lora_scale) or merged kernels */
    const nn_hooks *hooks = c->lora.model == m->sd ? &c->lora.hooks[LORA_TE] : NULL;
    st = lmx_arena_reserve(&c->arena, clip_text_arena_bytes_lora(m->sd->text, nn_hooks_max_rank(hooks), 1, L));
    if (st != LMX_OK) return st;
    nn_run run = {.ctx = c->ops, .arena = &c->arena, .hooks = hooks, .lora_scale = lora_scale,
                  .n_loras = n_loras};
    return clip_text_forward(m->sd->text, &run, ids, 1, L, clip_skip, out);
}

/* ---- helpers ------------------------------------------------------------ */

/* latents NCHW [n, C, h, w] -> NHWC [n, h, w, C], written `copies` times one
 * after the other (the CFG batch [x, x]). */
static void to_nhwc_batch(const float *x, float *y, int n, int C, int h, int w, int copies) {
    int64_t per = (int64_t)n * C * h * w;
    op_nchw_to_nhwc(x, y, n, C, h, w);
    for (int k = 1; k < copies; k++) memcpy(y + k * per, y, sizeof(float) * (size_t)per);
}

/* uint8 = round_half_even(clamp(y/2 + 0.5, 0, 1) · 255), as diffusers'
 * VaeImageProcessor.postprocess + numpy_to_pil (docs/numerics.md §10). */
/* The first non-finite value's index, or -1. A plain loop: the build does
 * not use -ffast-math, so isfinite is honoured. */
static int64_t first_nonfinite(const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(x[i])) return i;
    return -1;
}

/* LMX_ERR_NUMERIC for numbers that cannot be right: names
 * where (`what`), the LoRAs in play and whether one of them brought
 * NaN/Inf from its file. */
static lmx_status nonfinite_err(const gen_plan *plan, const lmx_gen_params *p, int step, const char *what) {
    lmx_sb cul = LMX_SB_INIT;
    pipeline_plan_culprits(plan, p, step, &cul);
    lmx_status st = lmx_err(LMX_ERR_NUMERIC, "%s became NaN/Inf%s", what, lmx_sb_str(&cul));
    lmx_sb_free(&cul);
    return st;
}

static void to_uint8(const float *img, uint8_t *out, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        float v = img[i] / 2.0f;
        v = v + 0.5f;
        v = v < 0.0f ? 0.0f : (v > 1.0f ? 1.0f : v);
        v = v * 255.0f;
        out[i] = (uint8_t)rintf(v);
    }
}

/* ---- metadata ----------------------------------------------------------- */

static char *make_parameters(const lmx_ctx *c, const lmx_gen_params *p, const gen_info *gi,
                             const gen_plan *plan, int idx) {
    lmx_sb sb = LMX_SB_INIT;
    lmx_sb_printf(&sb, "%s\n", p->prompt);
    if (p->negative_prompt && *p->negative_prompt) lmx_sb_printf(&sb, "Negative prompt: %s\n", p->negative_prompt);
    lmx_sb_printf(&sb,
                  "Steps: %d, Sampler: %s%s, Schedule type: %s, CFG scale: %g, Seed: %llu, Size: %dx%d, Model: %s",
                  p->steps, SCHED_A1111[gi->scheduler], gi->karras ? " Karras" : "",
                  gi->karras ? "Karras" : gi->spacing, (double)p->guidance, (unsigned long long)p->seed, gi->width,
                  gi->height, c->m->name);
    if (p->n_images > 1) lmx_sb_printf(&sb, ", Batch size: %d, Batch pos: %d", p->n_images, idx);
    if (p->clip_skip > 0) lmx_sb_printf(&sb, ", Clip skip: %d", p->clip_skip + 1);
    if (c->m->params.vae_path) lmx_sb_printf(&sb, ", VAE: %s", c->m->params.vae_path);
    pipeline_loras_describe(c, p, plan, &sb);
    lmx_sb_printf(&sb, ", Version: loramix %s", lmx_version());
    return lmx_sb_take(&sb);
}

static char *make_json(const lmx_ctx *c, const lmx_gen_params *p, const gen_info *gi, const gen_plan *plan,
                       int idx) {
    cJSON *j = cJSON_CreateObject();
    if (!j) return NULL;
    cJSON_AddStringToObject(j, "software", "loramix");
    cJSON_AddStringToObject(j, "version", lmx_version());
    cJSON_AddStringToObject(j, "model", c->m->path);
    cJSON_AddStringToObject(j, "model_name", c->m->name);
    if (c->m->params.vae_path) cJSON_AddStringToObject(j, "vae", c->m->params.vae_path);
    cJSON_AddStringToObject(j, "prompt", p->prompt);
    cJSON_AddStringToObject(j, "negative_prompt", p->negative_prompt ? p->negative_prompt : "");
    char seed[32];
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)p->seed);
    cJSON_AddRawToObject(j, "seed", seed);
    cJSON_AddNumberToObject(j, "steps", p->steps);
    cJSON_AddNumberToObject(j, "guidance", p->guidance);
    cJSON_AddNumberToObject(j, "width", gi->width);
    cJSON_AddNumberToObject(j, "height", gi->height);
    cJSON_AddStringToObject(j, "scheduler", SCHED_NAMES[gi->scheduler]);
    cJSON_AddStringToObject(j, "scheduler_class", sched_kind_class(to_kind(gi->scheduler)));
    cJSON_AddStringToObject(j, "timestep_spacing", gi->spacing);
    if (gi->karras) cJSON_AddBoolToObject(j, "karras_sigmas", 1);
    cJSON_AddNumberToObject(j, "clip_skip", p->clip_skip);
    cJSON_AddNumberToObject(j, "n_images", p->n_images);
    cJSON_AddNumberToObject(j, "image_index", idx);
    cJSON_AddStringToObject(j, "precision", c->m->params.precision == LMX_PREC_BF16 ? "bf16" : "fp32");
    cJSON_AddBoolToObject(j, "winograd", c->m->params.winograd);
    cJSON_AddNumberToObject(j, "threads", gi->threads);
    cJSON_AddStringToObject(j, "rng", p->rng == LMX_RNG_TORCH_PORTABLE
                                          ? "torch.manual_seed(seed); torch.randn (CPU, portable kernel)"
                                          : "torch.manual_seed(seed); torch.randn (CPU, x86 kernel)");
    if (p->noise_skip) {
        char skip[32];
        snprintf(skip, sizeof skip, "%llu", (unsigned long long)p->noise_skip);
        cJSON_AddRawToObject(j, "noise_skip", skip);
    }
    pipeline_loras_json(c, p, plan, j);
    /* No timings here: the same inputs give the same PNG bytes. */
    char *s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    if (!s) return NULL;
    char *d = lmx_strdup(s);
    cJSON_free(s);
    return d;
}

/* ---- generation --------------------------------------------------------- */

static lmx_status check_params(const lmx_ctx *c, const lmx_gen_params *p, gen_info *gi) {
    const lmx_model *m = c->m;
    if (!p->prompt) return lmx_err(LMX_ERR_ARG, "prompt: missing");
    if (p->steps < 1 || p->steps > 10000)
        return lmx_err(LMX_ERR_ARG, "--steps: expected 1..10000, got %d", p->steps);
    if (p->n_images < 1 || p->n_images > 256)
        return lmx_err(LMX_ERR_ARG, "--images: expected 1..256, got %d", p->n_images);
    if (p->noise_skip > 100000)
        return lmx_err(LMX_ERR_ARG, "noise_skip: expected 0..100000, got %llu",
                       (unsigned long long)p->noise_skip);
    if (!isfinite(p->guidance) || p->guidance < 0)
        return lmx_err(LMX_ERR_ARG, "--cfg: expected a finite number >= 0, got %g", (double)p->guidance);
    if (!isfinite(p->lora_scale))
        return lmx_err(LMX_ERR_ARG, "--lora-scale: expected a finite number, got %g", (double)p->lora_scale);
    if (p->rng != LMX_RNG_TORCH_X86 && p->rng != LMX_RNG_TORCH_PORTABLE)
        return lmx_err(LMX_ERR_ARG, "rng: unknown kernel %d", (int)p->rng);
    if ((unsigned)p->scheduler >= LMX_SCHED_COUNT)
        return lmx_err(LMX_ERR_ARG, "scheduler: unknown value %d", (int)p->scheduler);
    int f = vae_factor(m->sd->vae);
    int native = unet_cfg(m->sd->unet)->sample_size * f;
    gi->width = p->width ? p->width : native;
    gi->height = p->height ? p->height : native;
    if (gi->width <= 0 || gi->height <= 0 || gi->width % 8 || gi->height % 8 || gi->width % f ||
        gi->height % f)
        return lmx_err(LMX_ERR_ARG, "--width/--height: expected positive multiples of 8, got %dx%d",
                       gi->width, gi->height);
    if (gi->width > 8192 || gi->height > 8192)
        return lmx_err(LMX_ERR_ARG, "--width/--height: at most 8192, got %dx%d", gi->width, gi->height);
    const clip_text_config *tc = clip_text_cfg(m->sd->text);
    if (p->clip_skip < 0 || p->clip_skip >= tc->layers)
        return lmx_err(LMX_ERR_ARG, "--clip-skip: expected 0..%d for this text encoder, got %d",
                       tc->layers - 1, p->clip_skip);
    if (p->timestep_spacing && strcmp(p->timestep_spacing, "linspace") &&
        strcmp(p->timestep_spacing, "leading") && strcmp(p->timestep_spacing, "trailing"))
        return lmx_err(LMX_ERR_ARG, "--timestep-spacing: expected linspace, leading or trailing, got '%s'",
                       p->timestep_spacing);
    gi->h = gi->height / f;
    gi->w = gi->width / f;
    gi->cfg = p->guidance > 1.0f;
    gi->threads = lmx_get_threads();
    return LMX_OK;
}

/* sched_create with the step count checked against the scheduler's real limit:
 * at most num_train_timesteps, and a count the schedule accepts (e.g.
 * leading spacing with steps_offset 1 puts DDIM's and PNDM's last
 * timestep one past a 1000-entry table at 1000 steps). The message names
 * the scheduler, its config and the largest count that works. */
static lmx_status create_checked(const sched_config *cfg, int steps, const gen_info *gi, sched **out) {
    const int N = cfg->num_train_timesteps;
    lmx_status st = LMX_OK;
    if (steps <= N) {
        st = sched_create(out, cfg, steps);
        if (st == LMX_OK || st == LMX_ERR_NOMEM) return st;
    }
    char why[512];
    snprintf(why, sizeof why, "%s", st != LMX_OK ? lmx_errmsg() : "");
    int max = 0;
    lmx_status st2 = sched_max_steps(cfg, steps - 1 < N ? steps - 1 : N, &max);
    if (st2 == LMX_ERR_NOMEM) return st2;
    if (max < 1) return lmx_err(st != LMX_OK ? st : LMX_ERR_ARG, "%s", *why ? why : "steps: no count works");
    return lmx_err(LMX_ERR_ARG,
                   "steps: %d is too many for the %s scheduler (%s%s, %s spacing, steps_offset %d, "
                   "%d training timesteps): at most %d%s%s",
                   steps, sched_kind_name(cfg->kind), sched_kind_class(cfg->kind),
                   gi->karras ? " with Karras sigmas" : "", gi->spacing, cfg->steps_offset, N, max,
                   *why ? "; " : "", why);
}

/* Build the scheduler for this generation: the model's config (or SD1.5's),
 * converted to the requested class, with the spacing override. */
static lmx_status make_scheduler(const lmx_ctx *c, const lmx_gen_params *p, gen_info *gi, sched **out) {
    const sd_model *sd = c->m->sd;
    const char *text = sd->scheduler_config ? sd->scheduler_config : SD15_SCHEDULER_CONFIG;
    const char *label = sd->scheduler_config_path ? sd->scheduler_config_path : "SD1.5 default scheduler config";
    sched_kind kind = SCHED_KIND_FROM_JSON;
    if (p->scheduler != LMX_SCHED_DEFAULT) kind = to_kind(p->scheduler);
    sched_config cfg;
    lmx_status st = sched_config_from_json(&cfg, kind, text, strlen(text), label, SCHED_CFG_PIPELINE);
    if (st != LMX_OK) return st;
    if (p->timestep_spacing) {
        if (!strcmp(p->timestep_spacing, "linspace")) cfg.timestep_spacing = SCHED_SPACING_LINSPACE;
        else if (!strcmp(p->timestep_spacing, "leading")) cfg.timestep_spacing = SCHED_SPACING_LEADING;
        else cfg.timestep_spacing = SCHED_SPACING_TRAILING;
    }
    static const char *SPACING[] = {"linspace", "leading", "trailing"};
    gi->spacing = SPACING[cfg.timestep_spacing];
    gi->scheduler = from_kind(cfg.kind);
    if (p->karras_sigmas) {
        if (cfg.kind != SCHED_DPMPP_2M && cfg.kind != SCHED_EULER) {
            sched_config_clear(&cfg);
            return lmx_err(LMX_ERR_ARG,
                           "--karras: the %s scheduler (%s) has no Karras sigmas; use --scheduler dpm++2m "
                           "or euler",
                           sched_kind_name(cfg.kind), sched_kind_class(cfg.kind));
        }
        cfg.use_karras_sigmas = 1;
    }
    gi->karras = (cfg.kind == SCHED_DPMPP_2M || cfg.kind == SCHED_EULER) && cfg.use_karras_sigmas;
    st = create_checked(&cfg, p->steps, gi, out);
    sched_config_clear(&cfg);
    return st;
}

uint64_t lmx_generate_memory(const lmx_model *m, const lmx_gen_params *p) {
    const int f = vae_factor(m->sd->vae);
    const int native = unet_cfg(m->sd->unet)->sample_size * f;
    const int W = p->width > 0 ? p->width : native, H = p->height > 0 ? p->height : native;
    const int h = H / f, w = W / f, n = p->n_images > 0 ? p->n_images : 1;
    const int C = unet_cfg(m->sd->unet)->in_channels;
    const int ctx_len = tok_max_length(m->tok);
    const int hidden = clip_text_cfg(m->sd->text)->hidden;
    int branches = 1;
    if ((p->compose.method == LMX_METHOD_COMPOSITE || p->compose.method == LMX_METHOD_W_COMPOSITE) &&
        p->n_loras > 1)
        branches = p->n_loras;
    const int B = (p->guidance > 1.0f ? 2 * n : n) * branches;
    const uint64_t lat = (uint64_t)n * C * h * w;
    uint64_t ub = unet_arena_bytes(m->sd->unet, B, h, w, ctx_len);
    uint64_t dec = vae_decode_arena_bytes(m->sd->vae, 1, h, w);
    uint64_t bufs = sizeof(float) * (5 * lat + 2 * (lat / n) * (uint64_t)B + (uint64_t)ctx_len * hidden * (B + 2) +
                                     (uint64_t)n * H * W * 3);
    return (ub > dec ? ub : dec) + bufs;
}

/* The context's abort callback asked to stop. */
static int cancelled(const lmx_ctx *c) { return c->params.abort && c->params.abort(c->params.abort_user); }

static lmx_status cancel_err(const char *where) {
    return lmx_err(LMX_ERR_CANCELLED, "generate: cancelled by the abort callback %s", where);
}

static lmx_status generate(lmx_ctx *c, const lmx_gen_params *p, lmx_image *images) {
    const lmx_model *m = c->m;
    gen_info gi;
    memset(&gi, 0, sizeof gi);
    lmx_err_clear();
    for (int i = 0; p && i < p->n_images; i++) memset(&images[i], 0, sizeof images[i]);
    if (!p) return lmx_err(LMX_ERR_ARG, "generate: no parameters");
    lmx_status st = check_params(c, p, &gi);
    if (st == LMX_OK) st = lmx_threads_start(); /* a thread count raised since the load */
    if (st != LMX_OK) return st;

    const int n = p->n_images, h = gi.h, w = gi.w;
    const int C = unet_cfg(m->sd->unet)->in_channels;
    const int ctx_len = tok_max_length(m->tok);
    const int hidden = clip_text_cfg(m->sd->text)->hidden;
    const int64_t lat = (int64_t)n * C * h * w;    /* latent floats, all images */
    const int64_t emb = (int64_t)ctx_len * hidden; /* one prompt's embedding    */

    sched *sch = NULL;
    gen_plan plan;
    memset(&plan, 0, sizeof plan);
    float *x = NULL, *xin = NULL, *xb = NULL, *eb = NULL, *eps = NULL, *ctxb = NULL, *tb = NULL;
    float *e_pos = NULL, *e_neg = NULL, *img = NULL, *z = NULL;

    st = make_scheduler(c, p, &gi, &sch);
    if (st != LMX_OK) goto done;
    st = pipeline_plan(c, p, &gi, sched_n_calls(sch), &plan);
    if (st != LMX_OK) goto done;

    /* One UNet batch: for each branch, [uncond x n, cond x n] (CFG) or
     * [cond x n]. */
    const int per_branch = gi.cfg ? 2 * n : n;
    const int B = per_branch * plan.n_branches;
    x = lmx_alloc_aligned(sizeof(float) * (size_t)lat);
    xin = lmx_alloc_aligned(sizeof(float) * (size_t)lat);
    eps = lmx_alloc_aligned(sizeof(float) * (size_t)lat);
    xb = lmx_alloc_aligned(sizeof(float) * (size_t)(lat / n) * (size_t)B);
    eb = lmx_alloc_aligned(sizeof(float) * (size_t)(lat / n) * (size_t)B);
    ctxb = lmx_alloc_aligned(sizeof(float) * (size_t)emb * (size_t)B);
    tb = lmx_alloc_aligned(sizeof(float) * (size_t)B);
    e_pos = lmx_alloc_aligned(sizeof(float) * (size_t)emb);
    e_neg = lmx_alloc_aligned(sizeof(float) * (size_t)emb);
    if (!x || !xin || !eps || !xb || !eb || !ctxb || !tb || !e_pos || !e_neg) {
        st = lmx_err(LMX_ERR_NOMEM, "generate: out of memory for %d images of %dx%d", n, gi.width, gi.height);
        goto done;
    }

    /* 1. Text: E_pos (with clip_skip) and E_neg (always the last layer, as
     * diffusers' encode_prompt does), with the text-encoder LoRAs of the plan. */
    if (cancelled(c)) {
        st = cancel_err("before the text encoder");
        goto done;
    }
    st = pipeline_encode_text(c, p->prompt, "prompt", p->clip_skip, plan.te_scale, plan.n_rows, e_pos);
    if (st == LMX_OK && gi.cfg)
        st = pipeline_encode_text(c, p->negative_prompt, "negative prompt", 0, plan.te_scale,
                                  plan.n_rows, e_neg);
    if (st != LMX_OK) goto done;
    if (first_nonfinite(e_pos, emb) >= 0 || (gi.cfg && first_nonfinite(e_neg, emb) >= 0)) {
        st = nonfinite_err(&plan, p, -1, "text encoder: the prompt embeddings");
        goto done;
    }
    for (int b = 0; b < plan.n_branches; b++) {
        float *base = ctxb + (int64_t)b * per_branch * emb;
        for (int i = 0; i < n; i++) {
            if (gi.cfg) {
                memcpy(base + (int64_t)i * emb, e_neg, sizeof(float) * (size_t)emb);
                memcpy(base + (int64_t)(n + i) * emb, e_pos, sizeof(float) * (size_t)emb);
            } else {
                memcpy(base + (int64_t)i * emb, e_pos, sizeof(float) * (size_t)emb);
            }
        }
    }

    /* 2. Initial noise: one torch.randn([n, C, h, w]) from a fresh generator
     * (torch's x86 kernel, which torch 2.8 also takes on AVX-512 machines). */
    rng_state rng;
    rng_init(&rng, p->seed, p->rng == LMX_RNG_TORCH_PORTABLE ? RNG_PATH_PORTABLE : RNG_PATH_AVX2);
    /* Shared-stream protocol (docs/testbed.md §3): earlier images' draws first. */
    for (uint64_t s = 0; s < p->noise_skip; s++) rng_randn(&rng, x, lat);
    rng_randn(&rng, x, lat);
    sched_init_noise(sch, x, lat);

    /* 3. Denoise. */
    /* Everything the loop needs is allocated here: the arena for one UNet
     * batch and the scheduler's history. */
    const nn_hooks *uhooks = c->lora.model == m->sd ? &c->lora.hooks[LORA_UNET] : NULL;
    st = lmx_arena_reserve(&c->arena,
                           unet_arena_bytes_lora(m->sd->unet, nn_hooks_max_rank(uhooks), B, h, w, ctx_len));
    if (st == LMX_OK) st = sched_reserve(sch, lat);
    if (st != LMX_OK) goto done;
    const int n_calls = sched_n_calls(sch);
    /* Progress counts the steps asked for: PNDM (and some trailing
     * schedules) make one UNet call more than steps, not reported. */
    const int extra = n_calls > p->steps ? n_calls - p->steps : 0;
    double t1 = lmx_now();
    nn_run run = {.ctx = c->ops, .arena = &c->arena, .hooks = uhooks, .n_loras = plan.n_rows};
    for (int k = 0; k < n_calls; k++) {
        if (cancelled(c)) { /* between steps = between UNet passes */
            char where[64];
            snprintf(where, sizeof where, "before UNet pass %d of %d", k + 1, n_calls);
            st = cancel_err(where);
            goto done;
        }
        st = sched_scale_model_input(sch, k, x, xin, lat);
        if (st != LMX_OK) goto done;
        to_nhwc_batch(xin, xb, n, C, h, w, B / n);
        float t = sched_timestep(sch, k);
        for (int b = 0; b < B; b++) tb[b] = t;
        run.lora_scale = pipeline_plan_unet_scales(&plan, k);
        lmx_arena_reset(&c->arena, 0);
        st = unet_forward(m->sd->unet, &run, xb, tb, ctxb, ctx_len, eb, B, h, w);
        if (st != LMX_OK) goto done;
        /* Back to NCHW in place of the input batch, then combine. */
        op_nhwc_to_nchw(eb, xb, B, h, w, C);
        compose_plan_combine(&plan.cp, xb, eps, n, lat / n, gi.cfg, p->guidance);
        st = sched_step(sch, k, eps, x, lat, &rng);
        if (st != LMX_OK) goto done;
        if (first_nonfinite(x, lat) >= 0) {
            char what[64];
            const int shown = k + 1 > extra ? k + 1 - extra : 1;
            snprintf(what, sizeof what, "step %d of %d: the latents", shown, n_calls - extra);
            st = nonfinite_err(&plan, p, k, what);
            goto done;
        }
        if (p->progress && k + 1 > extra)
            p->progress(k + 1 - extra, n_calls - extra, lmx_now() - t1, p->progress_user);
    }

    /* 4. Decode: x / scaling_factor, VAE, uint8. */
    const int Hp = gi.height, Wp = gi.width;
    img = lmx_alloc_aligned(sizeof(float) * (size_t)n * Hp * Wp * 3);
    z = lmx_alloc_aligned(sizeof(float) * (size_t)lat);
    if (!img || !z) {
        st = lmx_err(LMX_ERR_NOMEM, "generate: out of memory for the decoded images");
        goto done;
    }
    vae_unscale(m->sd->vae, x, xin, lat);
    op_nchw_to_nhwc(xin, z, n, C, h, w);
    st = lmx_arena_reserve(&c->arena, vae_decode_arena_bytes(m->sd->vae, 1, h, w));
    if (st != LMX_OK) goto done;
    for (int i = 0; i < n && st == LMX_OK; i++) {
        if (cancelled(c)) {
            st = cancel_err("before the VAE decoder");
            goto done;
        }
        nn_run vrun = {.ctx = c->ops, .arena = &c->arena};
        lmx_arena_reset(&c->arena, 0);
        st = vae_decode(m->sd->vae, &vrun, z + (int64_t)i * (lat / n), 1, h, w,
                        img + (int64_t)i * Hp * Wp * 3);
    }
    if (st != LMX_OK) goto done;
    if (first_nonfinite(img, (int64_t)n * Hp * Wp * 3) >= 0) {
        st = lmx_err(LMX_ERR_NUMERIC, "VAE decoder: the image became NaN/Inf (the latents were finite)");
        goto done;
    }

    for (int i = 0; i < n; i++) {
        lmx_image *im = &images[i];
        im->width = Wp;
        im->height = Hp;
        im->rgb = lmx_malloc((size_t)Hp * Wp * 3);
        if (!im->rgb) {
            st = lmx_err(LMX_ERR_NOMEM, "generate: out of memory");
            goto done;
        }
        to_uint8(img + (int64_t)i * Hp * Wp * 3, im->rgb, (int64_t)Hp * Wp * 3);
        im->parameters = make_parameters(c, p, &gi, &plan, i);
        im->json = make_json(c, p, &gi, &plan, i);
        if (!im->parameters || !im->json) {
            st = lmx_err(LMX_ERR_NOMEM, "generate: out of memory");
            goto done;
        }
    }
    if (c->keep_latents) memcpy(c->keep_latents, x, sizeof(float) * (size_t)lat);
done:
    if (st != LMX_OK)
        for (int i = 0; i < n; i++) lmx_image_free(&images[i]);
    pipeline_plan_free(&plan);
    sched_free(sch);
    lmx_free(x);
    lmx_free(xin);
    lmx_free(eps);
    lmx_free(xb);
    lmx_free(eb);
    lmx_free(ctxb);
    lmx_free(tb);
    lmx_free(e_pos);
    lmx_free(e_neg);
    lmx_free(img);
    lmx_free(z);
    return st;
}

/* The context's thread count applies to this call, in this thread only. */
lmx_status lmx_generate(lmx_ctx *c, const lmx_gen_params *p, lmx_image *images) {
    if (!c) return lmx_err(LMX_ERR_ARG, "generate: no context");
    const int saved = lmx_get_threads();
    if (c->params.n_threads > 0) lmx_set_threads(c->params.n_threads);
    lmx_status st = generate(c, p, images);
    lmx_set_threads(saved);
    return st;
}

lmx_status lmx_image_save_png(const lmx_image *img, const char *path) {
    if (!img || !img->rgb) return lmx_err(LMX_ERR_ARG, "%s: no image to save", path);
    return png_write_loramix(path, img->rgb, img->width, img->height, img->parameters, img->json);
}

lmx_status lmx_image_write_png(const lmx_image *img, const char *path, unsigned flags) {
    if (!img || !img->rgb) return lmx_err(LMX_ERR_ARG, "%s: no image to save", path ? path : "");
    unsigned f = flags & LMX_OUT_OVERWRITE ? IO_OUT_OVERWRITE : 0;
    return png_write_loramix_out(path, f, img->rgb, img->width, img->height, img->parameters,
                                 img->json);
}

lmx_status lmx_output_check(const char *path, unsigned flags) {
    return io_output_check(path, flags & LMX_OUT_OVERWRITE ? IO_OUT_OVERWRITE : 0);
}

void lmx_image_free(lmx_image *img) {
    if (!img) return;
    lmx_free(img->rgb);
    lmx_free(img->parameters);
    lmx_free(img->json);
    memset(img, 0, sizeof *img);
}
