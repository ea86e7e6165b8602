/*
 * pipeline.c - txt2img: the one file that sees every module (tokenizer, text
 * encoder, UNet, scheduler, VAE, LoRA composition) and implements the public
 * generation API of loramix.h. Mirrors diffusers' StableDiffusionPipeline
 * (shared/spec/numerics.md §1).
 *
 * (Engine under construction: model loading and generation land with issue 3.)
 */
#include <string.h>

#include "core/core.h"

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
    return p;
}

static const char *SCHED_NAMES[LMX_SCHED_COUNT] = {"default", "dpm++2m", "ddim", "euler", "euler_a", "pndm"};

const char *lmx_scheduler_name(lmx_scheduler s) {
    return (unsigned)s < LMX_SCHED_COUNT ? SCHED_NAMES[s] : "?";
}

lmx_status lmx_scheduler_parse(const char *name, lmx_scheduler *out) {
    static const struct { const char *name; lmx_scheduler s; } alias[] = {
        {"default", LMX_SCHED_DEFAULT}, {"dpm++2m", LMX_SCHED_DPMPP_2M}, {"dpmpp_2m", LMX_SCHED_DPMPP_2M},
        {"dpm++", LMX_SCHED_DPMPP_2M}, {"DPMSolverMultistepScheduler", LMX_SCHED_DPMPP_2M},
        {"ddim", LMX_SCHED_DDIM}, {"DDIMScheduler", LMX_SCHED_DDIM},
        {"euler", LMX_SCHED_EULER}, {"EulerDiscreteScheduler", LMX_SCHED_EULER},
        {"euler_a", LMX_SCHED_EULER_A}, {"euler-a", LMX_SCHED_EULER_A},
        {"EulerAncestralDiscreteScheduler", LMX_SCHED_EULER_A},
        {"pndm", LMX_SCHED_PNDM}, {"plms", LMX_SCHED_PNDM}, {"PNDMScheduler", LMX_SCHED_PNDM},
    };
    for (size_t i = 0; i < LMX_ARRAY_LEN(alias); i++)
        if (!strcmp(alias[i].name, name)) {
            *out = alias[i].s;
            return LMX_OK;
        }
    return lmx_err(LMX_ERR_ARG, "--scheduler: unknown scheduler '%s' (dpm++2m, ddim, euler, euler_a, pndm)", name);
}

lmx_status lmx_model_load(lmx_model **out, const char *path, const lmx_model_params *params) {
    *out = NULL;
    (void)params;
    return lmx_err(LMX_ERR_UNSUPPORTED, "%s: model loading is not implemented yet", path);
}

void lmx_model_free(lmx_model *m) { (void)m; }

lmx_status lmx_ctx_create(lmx_ctx **out, const lmx_model *m) {
    *out = NULL;
    (void)m;
    return lmx_err(LMX_ERR_UNSUPPORTED, "generation is not implemented yet");
}

void lmx_ctx_free(lmx_ctx *ctx) { (void)ctx; }

lmx_status lmx_generate(lmx_ctx *ctx, const lmx_gen_params *p, lmx_image *images) {
    (void)ctx;
    (void)p;
    (void)images;
    return lmx_err(LMX_ERR_UNSUPPORTED, "generation is not implemented yet");
}

lmx_status lmx_image_save_png(const lmx_image *img, const char *path) {
    (void)img;
    return lmx_err(LMX_ERR_UNSUPPORTED, "%s: PNG output is not implemented yet", path);
}

void lmx_image_free(lmx_image *img) {
    if (!img) return;
    lmx_free(img->rgb);
    lmx_free(img->parameters);
    lmx_free(img->json);
    memset(img, 0, sizeof *img);
}
