/*
 * plan.c - the composition plan of one generation: which LoRAs the text
 * encoder uses for the prompt, which LoRAs each UNet branch uses at each
 * step, and how the branches combine into the guided noise
 * (docs/methods.md §3-§9, decisions D1-D9, D14).
 *
 *   method       TE LoRAs (D6)  branches  UNet LoRAs of step k     combine
 *   merge        all N          1         all N                    CFG
 *   switch       LoRA 0         1         switch_active(k)         CFG
 *   composite    all N          N         branch i: LoRA i         CFG(Σu/N, Σc/N)
 *   w-switch     LoRA 0         1         sched[k] (PAW blocks)    CFG
 *   w-composite  all N          N         branch i: LoRA i         Σ w_i CFG_i / max(Σw, 1e-6)
 *
 * With one LoRA every method is that LoRA alone at every step, so N = 1
 * runs as merge (bit-identical for composite and w-composite, whose mean of
 * one branch and weight 1 are exact). The combine arithmetic is spelled out
 * in fp32 in the order reference/gen_compose.py uses.
 */
#include <cjson/cJSON.h>
#include <math.h>
#include <string.h>

#include "compose/compose.h"

int compose_character_index(const lmx_lora_use *loras, int n) {
    for (int i = 0; i < n; i++)
        if (loras[i].category == LMX_CAT_CHARACTER) return i;
    for (int i = 0; i < n; i++)
        if (loras[i].category == LMX_CAT_OTHER && loras[i].name && !strncmp(loras[i].name, "character", 9))
            return i;
    return -1;
}

void compose_plan_free(compose_plan *plan) {
    if (!plan) return;
    lmx_free(plan->te_on);
    lmx_free(plan->active);
    lmx_free(plan->sched);
    lmx_free(plan->blocks);
    lmx_free(plan->counts);
    lmx_free(plan->branch_w);
    compose_weights_free(&plan->weights);
    memset(plan, 0, sizeof *plan);
    plan->tail_lora = -1;
}

/* Uniform or manual weights: score = a = the given values, w = a / Σa. */
static lmx_status fixed_weights(compose_weights *cw, lmx_weighting kind, const double *v, int n) {
    memset(cw, 0, sizeof *cw);
    cw->n = n;
    cw->kind = kind;
    cw->score = lmx_calloc((size_t)n, sizeof(double));
    cw->a = lmx_calloc((size_t)n, sizeof(double));
    cw->w = lmx_calloc((size_t)n, sizeof(double));
    cw->edge = lmx_calloc((size_t)n, sizeof(int));
    if (!cw->score || !cw->a || !cw->w || !cw->edge) {
        compose_weights_free(cw);
        return lmx_err(LMX_ERR_NOMEM, "composition weights: out of memory");
    }
    for (int i = 0; i < n; i++) cw->score[i] = cw->a[i] = v ? v[i] : 1.0;
    double sum = 0;
    for (int i = 0; i < n; i++) sum += cw->a[i];
    for (int i = 0; i < n; i++) cw->w[i] = sum > 0 ? cw->a[i] / sum : cw->a[i];
    return LMX_OK;
}

static int uses_weights(lmx_method m) { return m == LMX_METHOD_W_SWITCH || m == LMX_METHOD_W_COMPOSITE; }
static int is_switch(lmx_method m) { return m == LMX_METHOD_SWITCH || m == LMX_METHOD_W_SWITCH; }

/* Checks that need nothing computed: flags and their ranges. */
static lmx_status check_args(const lmx_compose *c, const lmx_lora_use *loras, int n, int n_steps,
                             const compose_opts *o) {
    if ((unsigned)c->method >= LMX_METHOD_COUNT)
        return lmx_err(LMX_ERR_ARG, "--method: unknown method %d", (int)c->method);
    if ((unsigned)c->weighting >= LMX_WEIGHTING_COUNT)
        return lmx_err(LMX_ERR_ARG, "--weighting: unknown weighting %d", (int)c->weighting);
    if ((unsigned)o->pool >= COMPOSE_POOL_COUNT) return lmx_err(LMX_ERR_ARG, "--pool: unknown pooling %d", o->pool);
    if ((unsigned)o->te_mode > COMPOSE_TE_FIRST) return lmx_err(LMX_ERR_ARG, "te mode: unknown value %d", o->te_mode);
    if (n < 0 || n > COMPOSE_MAX_LORAS)
        return lmx_err(LMX_ERR_ARG, "--lora: expected at most %d LoRAs, got %d", COMPOSE_MAX_LORAS, n);
    if (n > 0 && !loras) return lmx_err(LMX_ERR_ARG, "--lora: %d LoRAs but no list", n);
    if (n_steps < 1) return lmx_err(LMX_ERR_ARG, "--steps: expected >= 1, got %d", n_steps);
    if (is_switch(c->method) && c->switch_steps < 1)
        return lmx_err(LMX_ERR_ARG, "--switch-steps: expected >= 1, got %d", c->switch_steps);
    if (c->method == LMX_METHOD_W_SWITCH && (c->tail_steps < 0 || c->tail_steps > n_steps))
        return lmx_err(LMX_ERR_ARG, "--tail-steps: expected 0..%d (the number of steps), got %d", n_steps,
                       c->tail_steps);
    if (!uses_weights(c->method) && c->weighting != LMX_WEIGHTING_DEFAULT)
        return lmx_err(LMX_ERR_ARG, "--weighting %s: only w-switch and w-composite use weights (method %s)",
                       lmx_weighting_name(c->weighting), lmx_method_name(c->method));
    if (c->weighting == LMX_WEIGHTING_MANUAL && n > 0) {
        if (!c->manual_weights)
            return lmx_err(LMX_ERR_ARG, "--weighting manual: no weights given (expected %d, one per LoRA)", n);
        double sum = 0;
        for (int i = 0; i < n; i++) {
            double v = c->manual_weights[i];
            if (!isfinite(v) || v < 0)
                return lmx_err(LMX_ERR_ARG, "--weighting manual: weight %d is %g; expected a finite number >= 0",
                               i + 1, v);
            sum += v;
        }
        if (!(sum > 0)) return lmx_err(LMX_ERR_ARG, "--weighting manual: every weight is 0");
    }
    for (int i = 0; i < n; i++)
        if (loras[i].n_triggers < 0 || (loras[i].n_triggers > 0 && !loras[i].triggers))
            return lmx_err(LMX_ERR_ARG, "--lora %d: %d triggers but no trigger list", i + 1, loras[i].n_triggers);
    if (c->method == LMX_METHOD_W_SWITCH && n > 1 && c->tail_steps > 0 && compose_character_index(loras, n) < 0)
        return lmx_err(LMX_ERR_ARG,
                       "w-switch: the last %d steps belong to the character LoRA, but no LoRA is a character "
                       "(give one the category 'character', or set the tail to 0)",
                       c->tail_steps);
    return LMX_OK;
}

static lmx_status build_weights(compose_plan *plan, const lmx_compose *c, const lmx_lora_use *loras, int n,
                                const char *prompt, const compose_encoder *enc, const compose_opts *o) {
    lmx_weighting kind = c->weighting;
    if (kind == LMX_WEIGHTING_DEFAULT)
        kind = plan->method == LMX_METHOD_W_SWITCH ? LMX_WEIGHTING_PAW : LMX_WEIGHTING_PTW;
    if (kind == LMX_WEIGHTING_UNIFORM) return fixed_weights(&plan->weights, kind, NULL, n);
    if (kind == LMX_WEIGHTING_MANUAL) return fixed_weights(&plan->weights, kind, c->manual_weights, n);
    if (!enc) return lmx_err(LMX_ERR_INTERNAL, "%s weights: no text encoder given", lmx_weighting_name(kind));
    if (!prompt) return lmx_err(LMX_ERR_ARG, "prompt: missing");
    const unsigned char *te = c->weights_te_generation ? plan->te_on : NULL;
    return compose_prompt_weights(enc, prompt, loras, n, kind, te, o->pool, &plan->weights);
}

lmx_status compose_plan_build(compose_plan *plan, const lmx_compose *cp, const lmx_lora_use *loras, int n,
                              const char *prompt, int n_steps, const compose_encoder *enc,
                              const compose_opts *opts) {
    memset(plan, 0, sizeof *plan);
    plan->tail_lora = -1;
    lmx_compose c = cp ? *cp : lmx_compose_default();
    compose_opts o;
    memset(&o, 0, sizeof o);
    if (opts) o = *opts;
    lmx_status st = check_args(&c, loras, n, n_steps, &o);
    if (st != LMX_OK) return st;

    const int T = n_steps;
    plan->method = c.method;
    plan->effective = n <= 1 ? LMX_METHOD_MERGE : c.method;
    plan->n_loras = n;
    plan->n_steps = T;
    plan->n_branches = 1;
    plan->combine = COMPOSE_COMBINE_CFG;
    plan->tau = c.switch_steps;
    plan->tail = c.method == LMX_METHOD_W_SWITCH ? c.tail_steps : 0;
    plan->reference_timing = c.switch_timing_reference != 0;
    plan->half_up = c.round_half_up != 0;
    if (n == 0) return LMX_OK;

    plan->te_on = lmx_calloc((size_t)n, 1);
    plan->counts = lmx_calloc((size_t)n, sizeof(int));
    if (!plan->te_on || !plan->counts) goto nomem;
    for (int i = 0; i < n; i++) {
        int on;
        switch (o.te_mode) {
        case COMPOSE_TE_NONE: on = 0; break;
        case COMPOSE_TE_FIRST: on = i == 0; break;
        case COMPOSE_TE_ALL: on = 1; break;
        default: on = is_switch(c.method) ? i == 0 : 1;
        }
        plan->te_on[i] = (unsigned char)on;
    }

    switch (plan->effective) {
    case LMX_METHOD_MERGE:
    case LMX_METHOD_COMPOSITE:
        for (int i = 0; i < n; i++) plan->counts[i] = T;
        if (plan->effective == LMX_METHOD_COMPOSITE) {
            plan->n_branches = n;
            plan->combine = COMPOSE_COMBINE_MEAN;
        }
        break;
    case LMX_METHOD_SWITCH:
        plan->active = lmx_malloc(sizeof(int) * (size_t)T);
        plan->sched = lmx_malloc(sizeof(int) * (size_t)T);
        if (!plan->active || !plan->sched) goto nomem;
        for (int k = 0; k < T; k++) {
            plan->sched[k] = compose_switch_active(k, n, c.switch_steps, 0);
            plan->active[k] = compose_switch_active(k, n, c.switch_steps, plan->reference_timing);
            plan->counts[plan->active[k]]++;
        }
        break;
    case LMX_METHOD_W_SWITCH:
        st = build_weights(plan, &c, loras, n, prompt, enc, &o);
        if (st != LMX_OK) goto fail;
        plan->active = lmx_malloc(sizeof(int) * (size_t)T);
        plan->sched = lmx_malloc(sizeof(int) * (size_t)T);
        plan->blocks = lmx_malloc(sizeof(int) * (size_t)n);
        if (!plan->active || !plan->sched || !plan->blocks) goto nomem;
        plan->tail_lora = plan->tail > 0 ? compose_character_index(loras, n) : -1;
        st = compose_wswitch_blocks(plan->weights.w, n, c.switch_steps, plan->half_up, plan->blocks);
        if (st == LMX_OK) st = compose_wswitch_sched(plan->blocks, n, T, plan->tail, plan->tail_lora, plan->sched);
        if (st != LMX_OK) goto fail;
        for (int k = 0; k < T; k++) {
            plan->active[k] = compose_sched_at(plan->sched, k, plan->reference_timing);
            plan->counts[plan->active[k]]++;
        }
        break;
    case LMX_METHOD_W_COMPOSITE: {
        st = build_weights(plan, &c, loras, n, prompt, enc, &o);
        if (st != LMX_OK) goto fail;
        double sum = 0;
        for (int i = 0; i < n; i++) sum += plan->weights.w[i];
        if (!(sum > COMPOSE_MIN_WSUM)) {
            st = lmx_err(LMX_ERR_ARG,
                         "w-composite: the %s weights sum to %g, so the weighted mean is undefined (do the LoRAs "
                         "have trigger phrases?)",
                         lmx_weighting_name(plan->weights.kind), sum);
            goto fail;
        }
        plan->n_branches = n;
        plan->combine = COMPOSE_COMBINE_WEIGHTED;
        plan->branch_w = lmx_malloc(sizeof(float) * (size_t)n);
        if (!plan->branch_w) goto nomem;
        for (int i = 0; i < n; i++) {
            plan->branch_w[i] = (float)plan->weights.w[i];
            plan->counts[i] = T;
        }
        plan->branch_wsum = (float)(sum > COMPOSE_MIN_WSUM ? sum : COMPOSE_MIN_WSUM);
        break;
    }
    default:
        st = lmx_err(LMX_ERR_INTERNAL, "composition: method %d not planned", (int)plan->effective);
        goto fail;
    }
    return LMX_OK;
nomem:
    st = lmx_err(LMX_ERR_NOMEM, "composition plan: out of memory");
fail:
    compose_plan_free(plan);
    return st;
}

int compose_plan_unet_on(const compose_plan *p, int k, int b, int i) {
    if (p->n_loras == 0 || i < 0 || i >= p->n_loras || k < 0 || k >= p->n_steps) return 0;
    if (p->n_branches > 1) return i == b;
    if (p->active) return p->active[k] == i;
    return 1;
}

void compose_plan_te_scales(const compose_plan *p, float lam, const lmx_lora_use *loras, const int *row_of,
                            int n_rows, float *out) {
    memset(out, 0, sizeof(float) * (size_t)n_rows);
    for (int i = 0; i < p->n_loras; i++) {
        int row = row_of ? row_of[i] : i;
        if (p->te_on[i] && row >= 0 && row < n_rows) out[row] = lam * loras[i].te_scale;
    }
}

void compose_plan_unet_scales(const compose_plan *p, int k, float lam, const lmx_lora_use *loras,
                              const int *row_of, int n_rows, int per_branch, float *out) {
    const int64_t cols = (int64_t)p->n_branches * per_branch;
    memset(out, 0, sizeof(float) * (size_t)(n_rows * cols));
    for (int b = 0; b < p->n_branches; b++)
        for (int i = 0; i < p->n_loras; i++) {
            int row = row_of ? row_of[i] : i;
            if (row < 0 || row >= n_rows || !compose_plan_unet_on(p, k, b, i)) continue;
            float v = lam * loras[i].unet_scale;
            float *dst = out + row * cols + (int64_t)b * per_branch;
            for (int s = 0; s < per_branch; s++) dst[s] = v;
        }
}

void compose_plan_combine(const compose_plan *p, const float *out, float *eps, int n, int64_t per, int cfg,
                          float g) {
    const int64_t total = per * n;                      /* floats of one half-block  */
    const int64_t stride = (cfg ? 2 : 1) * total;       /* floats of one branch      */
    const int nb = p->n_branches;
    switch (nb > 1 ? p->combine : COMPOSE_COMBINE_CFG) {
    case COMPOSE_COMBINE_MEAN: {
        const float fn = (float)nb;
        for (int64_t j = 0; j < total; j++) {
            float su = out[j], sc = cfg ? out[total + j] : 0.0f;
            for (int b = 1; b < nb; b++) {
                su = su + out[b * stride + j];
                if (cfg) sc = sc + out[b * stride + total + j];
            }
            if (!cfg) {
                eps[j] = su / fn;
                continue;
            }
            float mu = su / fn, mc = sc / fn;
            float d = mc - mu;
            d = g * d;
            eps[j] = mu + d;
        }
        break;
    }
    case COMPOSE_COMBINE_WEIGHTED:
        for (int64_t j = 0; j < total; j++) {
            float acc = 0.0f;
            for (int b = 0; b < nb; b++) {
                float gb;
                if (cfg) {
                    float u = out[b * stride + j], c = out[b * stride + total + j];
                    float d = c - u;
                    d = g * d;
                    gb = u + d;
                } else {
                    gb = out[b * stride + j];
                }
                float t = p->branch_w[b] * gb;
                acc = acc + t;
            }
            eps[j] = acc / p->branch_wsum;
        }
        break;
    default:
        if (!cfg) {
            memcpy(eps, out, sizeof(float) * (size_t)total);
            break;
        }
        for (int64_t j = 0; j < total; j++) {
            float d = out[total + j] - out[j];
            d = g * d;
            eps[j] = out[j] + d;
        }
    }
}

/* ---- metadata -------------------------------------------------------------- */

void compose_plan_describe(const compose_plan *p, lmx_sb *sb) {
    lmx_sb_cat(sb, lmx_method_name(p->method));
    if (p->n_loras == 1 && p->method != LMX_METHOD_MERGE) lmx_sb_cat(sb, " (one LoRA: as merge)");
    if (is_switch(p->method) && p->n_loras > 1)
        lmx_sb_printf(sb, ", tau %d%s", p->tau, p->reference_timing ? ", reference timing" : "");
    if (p->method == LMX_METHOD_W_SWITCH && p->n_loras > 1) lmx_sb_printf(sb, ", tail %d", p->tail);
    if (p->weights.n > 0) {
        lmx_sb_printf(sb, ", %s", lmx_weighting_name(p->weights.kind));
        for (int i = 0; i < p->weights.n; i++) lmx_sb_printf(sb, "%c%.3f", i ? '/' : ' ', p->weights.w[i]);
    }
    if (p->blocks) {
        lmx_sb_cat(sb, ", blocks");
        for (int i = 0; i < p->n_loras; i++) lmx_sb_printf(sb, "%c%d", i ? '/' : ' ', p->blocks[i]);
    }
}

static int add_doubles(cJSON *obj, const char *name, const double *v, int n) {
    cJSON *a = cJSON_AddArrayToObject(obj, name);
    if (!a) return 0;
    for (int i = 0; i < n; i++) {
        cJSON *x = cJSON_CreateNumber(v[i]);
        if (!x) return 0;
        cJSON_AddItemToArray(a, x);
    }
    return 1;
}

static int add_ints(cJSON *obj, const char *name, const int *v, int n) {
    cJSON *a = cJSON_AddArrayToObject(obj, name);
    if (!a) return 0;
    for (int i = 0; i < n; i++) {
        cJSON *x = cJSON_CreateNumber(v[i]);
        if (!x) return 0;
        cJSON_AddItemToArray(a, x);
    }
    return 1;
}

int compose_plan_json(const compose_plan *p, cJSON *obj) {
    int ok = cJSON_AddStringToObject(obj, "method", lmx_method_name(p->method)) != NULL;
    if (p->effective != p->method)
        ok = ok && cJSON_AddStringToObject(obj, "runs_as", lmx_method_name(p->effective));
    if (is_switch(p->method)) {
        ok = ok && cJSON_AddNumberToObject(obj, "switch_steps", p->tau);
        ok = ok && cJSON_AddStringToObject(obj, "timing", p->reference_timing ? "reference" : "clean");
    }
    if (p->method == LMX_METHOD_W_SWITCH) {
        ok = ok && cJSON_AddNumberToObject(obj, "tail_steps", p->tail);
        ok = ok && cJSON_AddNumberToObject(obj, "tail_lora", p->tail_lora);
        ok = ok && cJSON_AddStringToObject(obj, "rounding", p->half_up ? "half_up" : "half_even");
    }
    if (p->n_loras > 0) {
        int te[COMPOSE_MAX_LORAS];
        for (int i = 0; i < p->n_loras; i++) te[i] = p->te_on[i];
        ok = ok && add_ints(obj, "te_loras", te, p->n_loras);
        ok = ok && add_ints(obj, "steps_per_lora", p->counts, p->n_loras);
    }
    if (p->weights.n > 0) {
        ok = ok && cJSON_AddStringToObject(obj, "weighting", lmx_weighting_name(p->weights.kind));
        if (p->weights.kind == LMX_WEIGHTING_PAW || p->weights.kind == LMX_WEIGHTING_PTW)
            ok = ok && cJSON_AddStringToObject(obj, "pooling", compose_pool_name(p->weights.pool));
        ok = ok && add_doubles(obj, "scores", p->weights.score, p->weights.n);
        ok = ok && add_doubles(obj, "weights", p->weights.w, p->weights.n);
    }
    if (p->blocks) ok = ok && add_ints(obj, "blocks", p->blocks, p->n_loras);
    if (p->active) {
        char *s = lmx_malloc((size_t)p->n_steps + 1);
        ok = ok && s && cJSON_AddStringToObject(obj, "schedule", compose_sched_string(p->active, p->n_steps, s));
        lmx_free(s);
    }
    return ok;
}
