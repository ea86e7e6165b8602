/*
 * compose_api.c - the public names, defaults and entry points of multi-LoRA
 * composition (include/loramix.h, "multi-LoRA composition").
 *
 * lmx_prompt_weights reads the context's model and kernels through the
 * pipeline's struct definitions (pipeline_impl.h) but calls nothing of the
 * pipeline: the text encoder runs through compose_clip_encode.
 */
#include <string.h>

#include "compose/compose.h"
#include "core/core.h"
#include "pipeline_impl.h"

static const char *METHOD_NAMES[LMX_METHOD_COUNT] = {"merge", "switch", "composite", "w-switch",
                                                     "w-composite"};
static const char *WEIGHTING_NAMES[LMX_WEIGHTING_COUNT] = {"default", "paw", "ptw", "uniform",
                                                           "manual"};

const char *lmx_method_name(lmx_method m) {
    return (unsigned)m < LMX_METHOD_COUNT ? METHOD_NAMES[m] : "?";
}

lmx_status lmx_method_parse(const char *s, lmx_method *out) {
    for (int i = 0; i < LMX_METHOD_COUNT; i++)
        if (!strcmp(s, METHOD_NAMES[i])) {
            *out = (lmx_method)i;
            return LMX_OK;
        }
    /* Accept underscores too (w_switch). */
    char buf[32];
    size_t n = strlen(s);
    if (n < sizeof buf) {
        for (size_t i = 0; i <= n; i++) buf[i] = s[i] == '_' ? '-' : s[i];
        for (int i = 0; i < LMX_METHOD_COUNT; i++)
            if (!strcmp(buf, METHOD_NAMES[i])) {
                *out = (lmx_method)i;
                return LMX_OK;
            }
    }
    return lmx_err(LMX_ERR_ARG,
                   "--method: unknown method '%s' (merge, switch, composite, w-switch, w-composite)", s);
}

const char *lmx_weighting_name(lmx_weighting w) {
    return (unsigned)w < LMX_WEIGHTING_COUNT ? WEIGHTING_NAMES[w] : "?";
}

lmx_status lmx_weighting_parse(const char *s, lmx_weighting *out) {
    for (int i = 0; i < LMX_WEIGHTING_COUNT; i++)
        if (i != LMX_WEIGHTING_MANUAL && !strcmp(s, WEIGHTING_NAMES[i])) {
            *out = (lmx_weighting)i;
            return LMX_OK;
        }
    return lmx_err(LMX_ERR_ARG, "--weighting: unknown weighting '%s' (paw, ptw, uniform, manual:w1,w2,...)", s);
}

lmx_compose lmx_compose_default(void) {
    lmx_compose c;
    memset(&c, 0, sizeof c);
    c.method = LMX_METHOD_MERGE;
    c.switch_steps = 5;
    c.tail_steps = 5;
    c.weighting = LMX_WEIGHTING_DEFAULT;
    return c;
}

/* Prompt-aware weights with the context's model: the base text encoder (no
 * LoRA, docs/methods.md D5 default), mean over all 77 positions (D7), one batched
 * text-encoder pass. DEFAULT means uniform here (no method to pick from). */
lmx_status lmx_prompt_weights(lmx_ctx *ctx, const char *prompt, const lmx_lora_use *loras, int n,
                              lmx_weighting weighting, double *w, double *raw) {
    if (!ctx || !ctx->m || !ctx->m->sd) return lmx_err(LMX_ERR_ARG, "prompt weights: no context");
    if (!prompt) return lmx_err(LMX_ERR_ARG, "prompt weights: no prompt");
    if (n < 1 || n > COMPOSE_MAX_LORAS || !loras)
        return lmx_err(LMX_ERR_ARG, "prompt weights: expected 1..%d LoRAs, got %d", COMPOSE_MAX_LORAS, n);
    if ((unsigned)weighting >= LMX_WEIGHTING_COUNT)
        return lmx_err(LMX_ERR_ARG, "--weighting: unknown weighting %d", (int)weighting);
    if (weighting == LMX_WEIGHTING_MANUAL)
        return lmx_err(LMX_ERR_ARG, "--weighting manual: manual weights are given, not computed");
    if (weighting == LMX_WEIGHTING_PAW || weighting == LMX_WEIGHTING_PTW) {
        compose_weights cw;
        compose_clip cc = {.text = ctx->m->sd->text, .ops = ctx->ops, .arena = &ctx->arena};
        /* the context's thread count, for this call only */
        const int saved = lmx_get_threads();
        if (ctx->params.n_threads > 0) lmx_set_threads(ctx->params.n_threads);
        compose_encoder enc = {.tok = ctx->m->tok,
                               .hidden = clip_text_cfg(ctx->m->sd->text)->hidden,
                               .encode = compose_clip_encode,
                               .user = &cc,
                               .warn_prompt = 1};
        lmx_status st = compose_prompt_weights(&enc, prompt, loras, n, weighting, NULL, COMPOSE_POOL_MEAN77, &cw);
        lmx_set_threads(saved);
        if (st != LMX_OK) return st;
        for (int i = 0; i < n; i++) {
            if (w) w[i] = cw.w[i];
            if (raw) raw[i] = cw.score[i];
        }
        compose_weights_free(&cw);
        return LMX_OK;
    }
    for (int i = 0; i < n; i++) {
        if (w) w[i] = 1.0 / n;
        if (raw) raw[i] = 1.0;
    }
    return LMX_OK;
}
