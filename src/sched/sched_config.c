/*
 * sched_config.c - scheduler kinds, class defaults and scheduler_config.json.
 *
 * Mirrors diffusers 0.32.2 ConfigMixin.from_config / extract_init_dict for
 * the five scheduler classes: the __init__ signature of each class (keys and
 * defaults, read from the pinned sources), the rule "a JSON key the class
 * knows is used, every other key is the class default", the hidden-config
 * quirk that lets DPM-Solver read sigma_min/sigma_max from any JSON, the
 * value mappings done in DPMSolverMultistepScheduler.__init__ (deis ->
 * dpmsolver++, logrho/bh1/bh2 -> midpoint), and the fixups of
 * StableDiffusionPipeline.__init__ (steps_offset != 1 -> 1, clip_sample true
 * -> false) applied to the loaded class before a conversion.
 *
 * Python's json module writes -inf as -Infinity (DPM-Solver's
 * lambda_min_clipped); cJSON does not know that token, so the text is
 * rewritten first (outside strings) to -1e999 / 1e999, which strtod reads as
 * infinities. NaN becomes a string that numeric keys then reject.
 */
#include "sched/sched.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <string.h>
#include <strings.h>

/* ---- kinds ------------------------------------------------------------------ */

static const char *const kind_names[SCHED_KIND_COUNT] = {"dpm++2m", "ddim", "euler", "euler_a", "pndm"};
static const char *const kind_classes[SCHED_KIND_COUNT] = {
    "DPMSolverMultistepScheduler", "DDIMScheduler", "EulerDiscreteScheduler",
    "EulerAncestralDiscreteScheduler", "PNDMScheduler"};

const char *sched_kind_name(sched_kind k) {
    return (unsigned)k < SCHED_KIND_COUNT ? kind_names[k] : "?";
}

const char *sched_kind_class(sched_kind k) {
    return (unsigned)k < SCHED_KIND_COUNT ? kind_classes[k] : "?";
}

lmx_status sched_kind_parse(const char *s, sched_kind *out) {
    static const struct {
        const char *name;
        sched_kind kind;
    } aliases[] = {
        {"dpm++2m", SCHED_DPMPP_2M},   {"dpmpp_2m", SCHED_DPMPP_2M},   {"dpmpp2m", SCHED_DPMPP_2M},
        {"dpm++", SCHED_DPMPP_2M},     {"dpm", SCHED_DPMPP_2M},        {"dpmsolver++", SCHED_DPMPP_2M},
        {"dpm-solver++", SCHED_DPMPP_2M},
        {"ddim", SCHED_DDIM},          {"euler", SCHED_EULER},         {"euler_a", SCHED_EULER_A},
        {"euler-a", SCHED_EULER_A},    {"euler_ancestral", SCHED_EULER_A},
        {"eulera", SCHED_EULER_A},     {"pndm", SCHED_PNDM},           {"plms", SCHED_PNDM},
    };
    if (!s) return lmx_err(LMX_ERR_ARG, "sampler: missing name");
    for (int k = 0; k < SCHED_KIND_COUNT; k++)
        if (!strcmp(s, kind_classes[k])) {
            *out = (sched_kind)k;
            return LMX_OK;
        }
    for (size_t i = 0; i < LMX_ARRAY_LEN(aliases); i++)
        if (!strcasecmp(s, aliases[i].name)) {
            *out = aliases[i].kind;
            return LMX_OK;
        }
    return lmx_err(LMX_ERR_ARG,
                   "sampler '%s': expected one of dpm++2m, ddim, euler, euler_a, pndm "
                   "(or a diffusers class name: DPMSolverMultistepScheduler, DDIMScheduler, "
                   "EulerDiscreteScheduler, EulerAncestralDiscreteScheduler, PNDMScheduler)",
                   s);
}

/* ---- class keys and defaults ------------------------------------------------ */

#define M_DPM (1u << SCHED_DPMPP_2M)
#define M_DDIM (1u << SCHED_DDIM)
#define M_EUL (1u << SCHED_EULER)
#define M_EULA (1u << SCHED_EULER_A)
#define M_PNDM (1u << SCHED_PNDM)
#define M_ALL (M_DPM | M_DDIM | M_EUL | M_EULA | M_PNDM)

typedef enum key_id {
    K_NUM_TRAIN, K_BETA_START, K_BETA_END, K_BETA_SCHEDULE, K_TRAINED_BETAS, K_PREDICTION,
    K_SPACING, K_STEPS_OFFSET, K_RESCALE_ZSNR, K_CLIP_SAMPLE, K_CLIP_RANGE, K_SET_ALPHA_ONE,
    K_SKIP_PRK, K_THRESHOLDING, K_DYN_RATIO, K_SAMPLE_MAX, K_SOLVER_ORDER, K_ALGORITHM,
    K_SOLVER_TYPE, K_LOWER_ORDER_FINAL, K_EULER_AT_FINAL, K_KARRAS, K_EXP_SIGMAS, K_BETA_SIGMAS,
    K_LU_LAMBDAS, K_FLOW_SIGMAS, K_FLOW_SHIFT, K_FINAL_SIGMAS, K_LAMBDA_MIN, K_VARIANCE_TYPE,
    K_SIGMA_MIN, K_SIGMA_MAX, K_INTERPOLATION, K_TIMESTEP_TYPE, K_COUNT
} key_id;

/* Which classes' __init__ take each key (diffusers 0.32.2 signatures). */
static const struct {
    const char *name;
    unsigned classes;
} keys[K_COUNT] = {
    [K_NUM_TRAIN] = {"num_train_timesteps", M_ALL},
    [K_BETA_START] = {"beta_start", M_ALL},
    [K_BETA_END] = {"beta_end", M_ALL},
    [K_BETA_SCHEDULE] = {"beta_schedule", M_ALL},
    [K_TRAINED_BETAS] = {"trained_betas", M_ALL},
    [K_PREDICTION] = {"prediction_type", M_ALL},
    [K_SPACING] = {"timestep_spacing", M_ALL},
    [K_STEPS_OFFSET] = {"steps_offset", M_ALL},
    [K_RESCALE_ZSNR] = {"rescale_betas_zero_snr", M_DPM | M_DDIM | M_EUL | M_EULA},
    [K_CLIP_SAMPLE] = {"clip_sample", M_DDIM},
    [K_CLIP_RANGE] = {"clip_sample_range", M_DDIM},
    [K_SET_ALPHA_ONE] = {"set_alpha_to_one", M_DDIM | M_PNDM},
    [K_SKIP_PRK] = {"skip_prk_steps", M_PNDM},
    [K_THRESHOLDING] = {"thresholding", M_DPM | M_DDIM},
    [K_DYN_RATIO] = {"dynamic_thresholding_ratio", M_DPM | M_DDIM},
    [K_SAMPLE_MAX] = {"sample_max_value", M_DPM | M_DDIM},
    [K_SOLVER_ORDER] = {"solver_order", M_DPM},
    [K_ALGORITHM] = {"algorithm_type", M_DPM},
    [K_SOLVER_TYPE] = {"solver_type", M_DPM},
    [K_LOWER_ORDER_FINAL] = {"lower_order_final", M_DPM},
    [K_EULER_AT_FINAL] = {"euler_at_final", M_DPM},
    [K_KARRAS] = {"use_karras_sigmas", M_DPM | M_EUL},
    [K_EXP_SIGMAS] = {"use_exponential_sigmas", M_DPM | M_EUL},
    [K_BETA_SIGMAS] = {"use_beta_sigmas", M_DPM | M_EUL},
    [K_LU_LAMBDAS] = {"use_lu_lambdas", M_DPM},
    [K_FLOW_SIGMAS] = {"use_flow_sigmas", M_DPM},
    [K_FLOW_SHIFT] = {"flow_shift", M_DPM},
    [K_FINAL_SIGMAS] = {"final_sigmas_type", M_DPM | M_EUL},
    [K_LAMBDA_MIN] = {"lambda_min_clipped", M_DPM},
    [K_VARIANCE_TYPE] = {"variance_type", M_DPM},
    /* Euler's own keys; DPM-Solver reads them too when the JSON has them
     * (hidden config entries, see the top of the file). */
    [K_SIGMA_MIN] = {"sigma_min", M_EUL | M_DPM},
    [K_SIGMA_MAX] = {"sigma_max", M_EUL | M_DPM},
    [K_INTERPOLATION] = {"interpolation_type", M_EUL},
    [K_TIMESTEP_TYPE] = {"timestep_type", M_EUL},
};

sched_config sched_config_default(sched_kind kind) {
    sched_config c;
    memset(&c, 0, sizeof c);
    c.kind = kind;
    c.num_train_timesteps = 1000;
    c.beta_start = 0.0001;
    c.beta_end = 0.02;
    c.beta_schedule = SCHED_BETA_LINEAR;
    c.prediction_type = SCHED_PRED_EPSILON;
    c.timestep_spacing =
        (kind == SCHED_DDIM || kind == SCHED_PNDM) ? SCHED_SPACING_LEADING : SCHED_SPACING_LINSPACE;
    c.steps_offset = 0;
    c.clip_sample = kind == SCHED_DDIM;
    c.clip_sample_range = 1.0;
    c.set_alpha_to_one = kind == SCHED_DDIM;
    c.skip_prk_steps = 0;
    c.solver_order = 2;
    c.solver_type = SCHED_SOLVER_MIDPOINT;
    c.lower_order_final = 1;
    c.euler_at_final = 0;
    c.final_sigmas_type = SCHED_FINAL_ZERO;
    c.lambda_min_clipped = -INFINITY;
    c.use_karras_sigmas = 0;
    c.sigma_min = NAN;
    c.sigma_max = NAN;
    c.interpolation_type = SCHED_INTERP_LINEAR;
    c.timestep_continuous = 0;
    c.eta = 0.0;
    c.euler_legacy_noise = 0;
    return c;
}

void sched_config_clear(sched_config *c) {
    if (!c) return;
    lmx_free(c->trained_betas);
    c->trained_betas = NULL;
    c->n_trained_betas = 0;
}

lmx_status sched_config_copy(sched_config *dst, const sched_config *src) {
    *dst = *src;
    dst->trained_betas = NULL;
    if (src->trained_betas && src->n_trained_betas > 0) {
        dst->trained_betas = lmx_malloc((size_t)src->n_trained_betas * sizeof(double));
        if (!dst->trained_betas) {
            dst->n_trained_betas = 0;
            return lmx_err(LMX_ERR_NOMEM, "scheduler config: out of memory");
        }
        memcpy(dst->trained_betas, src->trained_betas, (size_t)src->n_trained_betas * sizeof(double));
    }
    return LMX_OK;
}

/* ---- JSON helpers ------------------------------------------------------------ */

/* Copy text into a NUL-terminated buffer, replacing the bare tokens
 * Infinity / -Infinity / NaN (outside strings) by 1e999 / -1e999 / "NaN". */
static char *json_normalise(const char *text, size_t n) {
    size_t cap = n * 2 + 16; /* "NaN" -> "\"NaN\"" grows by 2 per 3 bytes */
    char *out = lmx_malloc(cap);
    if (!out) return NULL;
    size_t o = 0;
    int in_str = 0;
    for (size_t i = 0; i < n; i++) {
        char ch = text[i];
        if (in_str) {
            out[o++] = ch;
            if (ch == '\\' && i + 1 < n) out[o++] = text[++i];
            else if (ch == '"') in_str = 0;
            continue;
        }
        if (ch == '"') {
            in_str = 1;
            out[o++] = ch;
        } else if (ch == 'I' && n - i >= 8 && !memcmp(text + i, "Infinity", 8)) {
            memcpy(out + o, "1e999", 5);
            o += 5;
            i += 7;
        } else if (ch == 'N' && n - i >= 3 && !memcmp(text + i, "NaN", 3)) {
            memcpy(out + o, "\"NaN\"", 5);
            o += 5;
            i += 2;
        } else {
            out[o++] = ch;
        }
    }
    out[o] = '\0';
    return out;
}

/* The last member named `name` (Python's json keeps the last duplicate). */
static const cJSON *json_get(const cJSON *obj, const char *name) {
    const cJSON *hit = NULL;
    for (const cJSON *it = obj ? obj->child : NULL; it; it = it->next)
        if (it->string && !strcmp(it->string, name)) hit = it;
    return hit;
}

static lmx_status parse_root(const char *text, size_t n, const char *label, cJSON **root_out) {
    *root_out = NULL;
    char *norm = json_normalise(text, n);
    if (!norm) return lmx_err(LMX_ERR_NOMEM, "%s: out of memory", label);
    cJSON *root = cJSON_Parse(norm);
    lmx_free(norm);
    if (!root) return lmx_err(LMX_ERR_FORMAT, "%s: not valid JSON", label);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return lmx_err(LMX_ERR_FORMAT, "%s: expected a JSON object at the top level", label);
    }
    *root_out = root;
    return LMX_OK;
}

static lmx_status class_of(const cJSON *root, const char *label, int *kind_out) {
    *kind_out = -1; /* no _class_name */
    const cJSON *cn = json_get(root, "_class_name");
    if (!cn) return LMX_OK;
    if (!cJSON_IsString(cn))
        return lmx_err(LMX_ERR_FORMAT, "%s: _class_name: expected a string", label);
    for (int k = 0; k < SCHED_KIND_COUNT; k++)
        if (!strcmp(cn->valuestring, kind_classes[k])) {
            *kind_out = k;
            return LMX_OK;
        }
    *kind_out = SCHED_KIND_COUNT; /* a class we do not implement */
    return LMX_OK;
}

lmx_status sched_json_class(const char *text, size_t n, const char *label, sched_kind *out) {
    cJSON *root = NULL;
    lmx_status st = parse_root(text, n, label, &root);
    if (st != LMX_OK) return st;
    int k;
    st = class_of(root, label, &k);
    if (st == LMX_OK && k < 0)
        st = lmx_err(LMX_ERR_FORMAT, "%s: no _class_name; choose a sampler explicitly", label);
    else if (st == LMX_OK && k == SCHED_KIND_COUNT)
        st = lmx_err(LMX_ERR_UNSUPPORTED,
                     "%s: _class_name '%s' is not a supported scheduler; choose one of dpm++2m, "
                     "ddim, euler, euler_a, pndm",
                     label, json_get(root, "_class_name")->valuestring);
    else if (st == LMX_OK)
        *out = (sched_kind)k;
    cJSON_Delete(root);
    return st;
}

/* ---- typed readers (the key is present and known to the target class) ---- */

static lmx_status get_bool(const cJSON *v, const char *label, const char *key, int *out) {
    if (cJSON_IsBool(v)) *out = cJSON_IsTrue(v) ? 1 : 0;
    else if (cJSON_IsNull(v)) *out = 0; /* None is falsy */
    else if (cJSON_IsNumber(v) && isfinite(v->valuedouble)) *out = v->valuedouble != 0.0;
    else return lmx_err(LMX_ERR_FORMAT, "%s: %s: expected true or false", label, key);
    return LMX_OK;
}

static lmx_status get_int(const cJSON *v, const char *label, const char *key, int lo, int hi,
                          int *out) {
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || v->valuedouble != floor(v->valuedouble))
        return lmx_err(LMX_ERR_FORMAT, "%s: %s: expected an integer", label, key);
    if (v->valuedouble < lo || v->valuedouble > hi)
        return lmx_err(LMX_ERR_FORMAT, "%s: %s: %.17g is out of range [%d, %d]", label, key,
                       v->valuedouble, lo, hi);
    *out = (int)v->valuedouble;
    return LMX_OK;
}

static lmx_status get_num(const cJSON *v, const char *label, const char *key, int allow_null,
                          int allow_inf, double *out) {
    if (allow_null && cJSON_IsNull(v)) {
        *out = NAN;
        return LMX_OK;
    }
    if (!cJSON_IsNumber(v) || isnan(v->valuedouble) || (!allow_inf && isinf(v->valuedouble)))
        return lmx_err(LMX_ERR_FORMAT, "%s: %s: expected a %snumber", label, key,
                       allow_inf ? "" : "finite ");
    *out = v->valuedouble;
    return LMX_OK;
}

/* A string among `choices` (NULL-terminated); *out = its index. */
static lmx_status get_enum(const cJSON *v, const char *label, const char *key,
                           const char *const *choices, int *out) {
    if (cJSON_IsString(v))
        for (int i = 0; choices[i]; i++)
            if (!strcmp(v->valuestring, choices[i])) {
                *out = i;
                return LMX_OK;
            }
    lmx_sb list = LMX_SB_INIT;
    for (int i = 0; choices[i]; i++) lmx_sb_printf(&list, "%s%s", i ? ", " : "", choices[i]);
    lmx_status st = !cJSON_IsString(v)
                        ? lmx_err(LMX_ERR_FORMAT, "%s: %s: expected a string (one of %s)", label, key, lmx_sb_str(&list))
                        : lmx_err(LMX_ERR_FORMAT, "%s: %s: '%s' is not one of %s", label, key, v->valuestring,
                                  lmx_sb_str(&list));
    lmx_sb_free(&list);
    return st;
}

/* ---- resolution --------------------------------------------------------------- */

/* Read every key of class c->kind present in `root` into *c (which holds
 * the class defaults), skipping the keys listed in `used_defaults`
 * (_use_default_values, as from_config does). */
static lmx_status read_keys(sched_config *c, const cJSON *root, const char *label,
                            const cJSON *used_defaults) {
    unsigned mask = 1u << c->kind;
    lmx_status st = LMX_OK;
    int iv = 0;
    double dv = 0;
    for (int k = 0; k < K_COUNT && st == LMX_OK; k++) {
        if (!(keys[k].classes & mask)) continue;
        const char *key = keys[k].name;
        const cJSON *v = json_get(root, key);
        if (!v) continue;
        int skip = 0;
        for (const cJSON *u = used_defaults ? used_defaults->child : NULL; u; u = u->next)
            if (cJSON_IsString(u) && !strcmp(u->valuestring, key)) skip = 1;
        if (skip) continue;
        switch ((key_id)k) {
        case K_NUM_TRAIN:
            st = get_int(v, label, key, 1, 100000, &c->num_train_timesteps);
            break;
        case K_BETA_START:
            st = get_num(v, label, key, 0, 0, &c->beta_start);
            break;
        case K_BETA_END:
            st = get_num(v, label, key, 0, 0, &c->beta_end);
            break;
        case K_BETA_SCHEDULE: {
            static const char *const ch[] = {"linear", "scaled_linear", "squaredcos_cap_v2", NULL};
            st = get_enum(v, label, key, ch, &iv);
            c->beta_schedule = (sched_beta_schedule)iv;
            break;
        }
        case K_TRAINED_BETAS: {
            if (cJSON_IsNull(v)) break;
            if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) < 1) {
                st = lmx_err(LMX_ERR_FORMAT, "%s: %s: expected null or a list of numbers", label, key);
                break;
            }
            int m = cJSON_GetArraySize(v);
            lmx_free(c->trained_betas);
            c->n_trained_betas = 0;
            c->trained_betas = lmx_malloc((size_t)m * sizeof(double));
            if (!c->trained_betas) {
                st = lmx_err(LMX_ERR_NOMEM, "%s: %s: out of memory", label, key);
                break;
            }
            int i = 0;
            for (const cJSON *e = v->child; e; e = e->next, i++) {
                if (!cJSON_IsNumber(e) || !isfinite(e->valuedouble)) {
                    st = lmx_err(LMX_ERR_FORMAT, "%s: %s[%d]: expected a finite number", label, key, i);
                    break;
                }
                c->trained_betas[i] = e->valuedouble;
            }
            c->n_trained_betas = m;
            break;
        }
        case K_PREDICTION: {
            static const char *const ch[] = {"epsilon", "v_prediction", "sample", "original_sample",
                                             NULL};
            st = get_enum(v, label, key, ch, &iv);
            if (st != LMX_OK) break;
            if (iv == 3 && c->kind != SCHED_EULER) {
                st = lmx_err(LMX_ERR_FORMAT, "%s: %s: 'original_sample' is only valid for %s", label,
                             key, kind_classes[SCHED_EULER]);
                break;
            }
            c->prediction_type = iv == 3 ? SCHED_PRED_SAMPLE : (sched_prediction)iv;
            break;
        }
        case K_SPACING: {
            static const char *const ch[] = {"linspace", "leading", "trailing", NULL};
            st = get_enum(v, label, key, ch, &iv);
            c->timestep_spacing = (sched_spacing)iv;
            break;
        }
        case K_STEPS_OFFSET:
            st = get_int(v, label, key, -100000, 100000, &c->steps_offset);
            break;
        case K_RESCALE_ZSNR:
            st = get_bool(v, label, key, &c->rescale_betas_zero_snr);
            break;
        case K_CLIP_SAMPLE:
            st = get_bool(v, label, key, &c->clip_sample);
            break;
        case K_CLIP_RANGE:
            st = get_num(v, label, key, 0, 0, &c->clip_sample_range);
            break;
        case K_SET_ALPHA_ONE:
            st = get_bool(v, label, key, &c->set_alpha_to_one);
            break;
        case K_SKIP_PRK:
            st = get_bool(v, label, key, &c->skip_prk_steps);
            break;
        case K_THRESHOLDING:
            st = get_bool(v, label, key, &iv);
            if (st == LMX_OK && iv)
                st = lmx_err(LMX_ERR_UNSUPPORTED,
                             "%s: thresholding: dynamic thresholding is not supported (it is meant "
                             "for pixel-space models; set it to false)",
                             label);
            break;
        case K_DYN_RATIO:
        case K_SAMPLE_MAX:
        case K_FLOW_SHIFT:
            st = get_num(v, label, key, 0, 0, &dv); /* only used by refused options */
            break;
        case K_SOLVER_ORDER:
            st = get_int(v, label, key, 1, 3, &c->solver_order);
            break;
        case K_ALGORITHM: {
            static const char *const ch[] = {"dpmsolver++", "deis", "dpmsolver", "sde-dpmsolver",
                                             "sde-dpmsolver++", NULL};
            st = get_enum(v, label, key, ch, &iv);
            if (st == LMX_OK && iv >= 2)
                lmx_info("%s: algorithm_type '%s' replaced by 'dpmsolver++' (loramix's DPM-Solver "
                         "is DPM-Solver++)",
                         label, v->valuestring);
            break;
        }
        case K_SOLVER_TYPE: {
            static const char *const ch[] = {"midpoint", "heun", "logrho", "bh1", "bh2", NULL};
            st = get_enum(v, label, key, ch, &iv);
            c->solver_type = iv == 1 ? SCHED_SOLVER_HEUN : SCHED_SOLVER_MIDPOINT;
            break;
        }
        case K_LOWER_ORDER_FINAL:
            st = get_bool(v, label, key, &c->lower_order_final);
            break;
        case K_EULER_AT_FINAL:
            st = get_bool(v, label, key, &c->euler_at_final);
            break;
        case K_KARRAS:
            st = get_bool(v, label, key, &c->use_karras_sigmas);
            break;
        case K_EXP_SIGMAS:
        case K_BETA_SIGMAS:
        case K_LU_LAMBDAS:
        case K_FLOW_SIGMAS:
            st = get_bool(v, label, key, &iv);
            if (st == LMX_OK && iv)
                st = lmx_err(LMX_ERR_UNSUPPORTED, "%s: %s=true is not supported", label, key);
            break;
        case K_FINAL_SIGMAS: {
            static const char *const ch[] = {"zero", "sigma_min", NULL};
            st = get_enum(v, label, key, ch, &iv);
            c->final_sigmas_type = (sched_final_sigmas)iv;
            break;
        }
        case K_LAMBDA_MIN:
            st = get_num(v, label, key, 0, 1, &c->lambda_min_clipped);
            break;
        case K_VARIANCE_TYPE:
            if (cJSON_IsNull(v)) break;
            if (!cJSON_IsString(v)) {
                st = lmx_err(LMX_ERR_FORMAT, "%s: %s: expected null or a string", label, key);
            } else if (!strcmp(v->valuestring, "learned") || !strcmp(v->valuestring, "learned_range")) {
                st = lmx_err(LMX_ERR_UNSUPPORTED,
                             "%s: %s '%s' is not supported (SD 1.x UNets predict no variance)",
                             label, key, v->valuestring);
            }
            break;
        case K_SIGMA_MIN:
            st = get_num(v, label, key, 1, 0, &c->sigma_min);
            break;
        case K_SIGMA_MAX:
            st = get_num(v, label, key, 1, 0, &c->sigma_max);
            break;
        case K_INTERPOLATION: {
            static const char *const ch[] = {"linear", "log_linear", NULL};
            st = get_enum(v, label, key, ch, &iv);
            c->interpolation_type = (sched_interp)iv;
            break;
        }
        case K_TIMESTEP_TYPE: {
            static const char *const ch[] = {"discrete", "continuous", NULL};
            st = get_enum(v, label, key, ch, &iv);
            c->timestep_continuous = iv == 1;
            break;
        }
        case K_COUNT:
            break;
        }
    }
    return st;
}

lmx_status sched_config_from_json(sched_config *out, sched_kind kind, const char *text, size_t n,
                                  const char *label, unsigned flags) {
    memset(out, 0, sizeof *out);
    if (!label) label = "scheduler_config.json";
    cJSON *root = NULL;
    lmx_status st = parse_root(text, n, label, &root);
    if (st != LMX_OK) return st;
    int orig = -1;
    st = class_of(root, label, &orig);
    if (st != LMX_OK) goto done;
    if (kind == SCHED_KIND_FROM_JSON) {
        if (orig < 0) {
            st = lmx_err(LMX_ERR_FORMAT, "%s: no _class_name; choose a sampler explicitly", label);
            goto done;
        }
        if (orig == SCHED_KIND_COUNT) {
            st = lmx_err(LMX_ERR_UNSUPPORTED,
                         "%s: _class_name '%s' is not a supported scheduler; choose one of "
                         "dpm++2m, ddim, euler, euler_a, pndm",
                         label, json_get(root, "_class_name")->valuestring);
            goto done;
        }
        kind = (sched_kind)orig;
    }
    if ((unsigned)kind >= SCHED_KIND_COUNT) {
        st = lmx_err(LMX_ERR_ARG, "%s: bad scheduler kind %d", label, (int)kind);
        goto done;
    }
    const cJSON *used = json_get(root, "_use_default_values");
    if (used && !cJSON_IsArray(used)) used = NULL;

    *out = sched_config_default(kind);
    st = read_keys(out, root, label, used);
    if (st != LMX_OK) goto done;

    if (flags & SCHED_CFG_PIPELINE) {
        /* StableDiffusionPipeline.__init__ rewrites the loaded scheduler's
         * config (the JSON's class): steps_offset != 1 -> 1, clip_sample
         * true -> false. A key the JSON lacks is one the loaded class filled
         * from its defaults; from_config into another class drops it
         * (_use_default_values), so it only changes when the target is the
         * loaded class itself. */
        int same = orig < 0 || orig == (int)kind;
        if (same || json_get(root, "steps_offset")) out->steps_offset = 1;
        const cJSON *cs = json_get(root, "clip_sample");
        /* `scheduler.config.clip_sample is True`: only a JSON true is fixed. */
        if (kind == SCHED_DDIM && (cs ? cJSON_IsTrue(cs) : same)) out->clip_sample = 0;
    }
done:
    cJSON_Delete(root);
    if (st != LMX_OK) {
        sched_config_clear(out);
        memset(out, 0, sizeof *out);
    }
    return st;
}

lmx_status sched_config_load(sched_config *out, sched_kind kind, const char *path, unsigned flags) {
    char *text = NULL;
    size_t n = 0;
    memset(out, 0, sizeof *out);
    lmx_status st = lmx_read_file(path, &text, &n, 16u << 20);
    if (st != LMX_OK) return st;
    st = sched_config_from_json(out, kind, text, n, path, flags);
    lmx_free(text);
    return st;
}
