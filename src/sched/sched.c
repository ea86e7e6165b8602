/*
 * sched.c - the samplers: DPM-Solver++ (orders 1-3, midpoint/heun), DDIM,
 * Euler (discrete), Euler ancestral and PNDM (PLMS, and the Runge-Kutta
 * warm-up when skip_prk_steps is false), as the step() methods of diffusers
 * 0.32.2 compute them (docs/numerics.md §7-§9).
 *
 * Scalars are fp32 0-dim tensors in the reference: each arithmetic operation
 * and each function call below rounds to float, in the order of the Python
 * expression (left to right, `a - b - c` = (a - b) - c). Python float
 * constants meet fp32 tensors as fp32 (1/6 -> 0.16666667f). Division of a
 * tensor by a 0-dim tensor is a true division on the CPU (never a multiply
 * by the reciprocal). The build has -ffp-contract=off, so nothing is fused.
 * Tensors are plain arrays; every tensor operation is elementwise.
 */
#include <math.h>
#include <string.h>

#include "sched/sched_impl.h"

/* ---- lifecycle --------------------------------------------------------------- */

static void free_buffers(sched *s) {
    for (int i = 0; i < 3; i++) lmx_free(s->hist[i]), s->hist[i] = NULL;
    for (int i = 0; i < 4; i++) lmx_free(s->ets[i]), s->ets[i] = NULL;
    lmx_free(s->cur_sample);
    lmx_free(s->cur_mo);
    lmx_free(s->tmp);
    s->cur_sample = s->cur_mo = s->tmp = NULL;
    s->n_elem = 0;
}

void sched_free(sched *s) {
    if (!s) return;
    free_buffers(s);
    lmx_free(s->betas);
    lmx_free(s->t_unet);
    lmx_free(s->t_int);
    lmx_free(s->sigmas);
    sched_config_clear(&s->cfg);
    lmx_free(s);
}

void sched_reset(sched *s) {
    s->step_index = 0;
    s->lower_order_nums = 0;
    s->n_hist = 0;
    s->n_ets = 0;
    s->has_cur_sample = 0;
}

/* Semantic checks of a config (values sched_config_from_json would refuse,
 * for configs built by hand). */
static lmx_status check_config(const sched_config *c) {
    if ((unsigned)c->kind >= SCHED_KIND_COUNT)
        return lmx_err(LMX_ERR_ARG, "scheduler: bad kind %d", (int)c->kind);
    if (c->num_train_timesteps < 1 || c->num_train_timesteps > 100000)
        return lmx_err(LMX_ERR_ARG, "num_train_timesteps: expected 1..100000, got %d",
                       c->num_train_timesteps);
    if (c->kind == SCHED_DPMPP_2M && (c->solver_order < 1 || c->solver_order > 3))
        return lmx_err(LMX_ERR_ARG, "solver_order: expected 1, 2 or 3, got %d", c->solver_order);
    if (c->kind == SCHED_EULER_A && c->prediction_type == SCHED_PRED_SAMPLE)
        return lmx_err(LMX_ERR_UNSUPPORTED,
                       "prediction_type 'sample' is not implemented by EulerAncestralDiscreteScheduler");
    if (c->kind == SCHED_PNDM && c->prediction_type == SCHED_PRED_SAMPLE)
        return lmx_err(LMX_ERR_UNSUPPORTED,
                       "prediction_type 'sample' is not supported by PNDMScheduler (epsilon or v_prediction)");
    if (c->kind == SCHED_DDIM && !(c->eta >= 0.0 && isfinite(c->eta)))
        return lmx_err(LMX_ERR_ARG, "eta: expected a finite value >= 0, got %g", c->eta);
    if (!isfinite(c->beta_start) || !isfinite(c->beta_end))
        return lmx_err(LMX_ERR_ARG, "beta_start/beta_end: expected finite values");
    return LMX_OK;
}

/* A scheduler with its tables built and no timesteps yet. */
static lmx_status create_tables(sched **out, const sched_config *cfg) {
    *out = NULL;
    lmx_status st = check_config(cfg);
    if (st != LMX_OK) return st;
    sched *s = lmx_calloc(1, sizeof *s);
    if (!s) return lmx_err(LMX_ERR_NOMEM, "scheduler: out of memory");
    st = sched_config_copy(&s->cfg, cfg);
    if (st != LMX_OK) goto fail;
    s->N = cfg->num_train_timesteps;
    s->betas = lmx_malloc((size_t)s->N * 4 * sizeof(float));
    if (!s->betas) {
        st = lmx_err(LMX_ERR_NOMEM, "scheduler: out of memory");
        goto fail;
    }
    s->alphas = s->betas + s->N;
    s->acp = s->alphas + s->N;
    s->sigma_table = s->acp + s->N;
    st = sched_tables(&s->cfg, s->betas, s->alphas, s->acp, s->sigma_table);
    if (st != LMX_OK) goto fail;
    s->final_alpha_cumprod = s->cfg.set_alpha_to_one ? 1.0f : s->acp[0];
    *out = s;
    return LMX_OK;
fail:
    sched_free(s);
    return st;
}

lmx_status sched_create(sched **out, const sched_config *cfg, int n_steps) {
    sched *s = NULL;
    lmx_status st = create_tables(&s, cfg);
    if (st != LMX_OK) return st;
    st = sched_set_timesteps(s, n_steps);
    if (st != LMX_OK) {
        sched_free(s);
        return st;
    }
    sched_reset(s);
    *out = s;
    return LMX_OK;
}

lmx_status sched_max_steps(const sched_config *cfg, int limit, int *out) {
    *out = 0;
    sched *s = NULL;
    lmx_status st = create_tables(&s, cfg);
    if (st != LMX_OK) return st;
    for (int n = limit; n >= 1; n--) {
        lmx_free(s->t_unet);
        lmx_free(s->t_int);
        lmx_free(s->sigmas);
        s->t_unet = NULL;
        s->t_int = NULL;
        s->sigmas = NULL;
        s->n_calls = s->n_sigmas = s->n_prk = 0;
        st = sched_set_timesteps(s, n);
        if (st == LMX_OK) {
            *out = n;
            break;
        }
        if (st == LMX_ERR_NOMEM) break;
        st = LMX_OK;
    }
    sched_free(s);
    return st;
}

/* ---- accessors --------------------------------------------------------------- */

sched_kind sched_get_kind(const sched *s) { return s->cfg.kind; }
const sched_config *sched_get_config(const sched *s) { return &s->cfg; }
int sched_n_calls(const sched *s) { return s->n_calls; }

float sched_timestep(const sched *s, int i) {
    return (i >= 0 && i < s->n_calls) ? s->t_unet[i] : NAN;
}

float sched_init_noise_sigma(const sched *s) { return s->init_noise_sigma; }

void sched_init_noise(const sched *s, float *x, int64_t n) {
    /* DPM/DDIM/PNDM multiply by the Python float 1.0 (exact); Euler by an
     * fp32 0-dim tensor. Either way one fp32 multiply. */
    const float k = s->init_noise_sigma;
    for (int64_t i = 0; i < n; i++) x[i] = x[i] * k;
}

const float *sched_sigmas(const sched *s, int *n_out) {
    if (n_out) *n_out = s->sigmas ? s->n_sigmas : 0;
    return s->sigmas;
}

const float *sched_alphas_cumprod(const sched *s, int *n_out) {
    if (n_out) *n_out = s->N;
    return s->acp;
}

const float *sched_sigma_table(const sched *s, int *n_out) {
    if (n_out) *n_out = s->N;
    return s->sigma_table;
}

lmx_status sched_scale_model_input(const sched *s, int i, const float *x, float *y, int64_t n) {
    if (i < 0 || i >= s->n_calls)
        return lmx_err(LMX_ERR_ARG, "scale_model_input: step %d is outside 0..%d", i, s->n_calls - 1);
    if (s->cfg.kind == SCHED_EULER || s->cfg.kind == SCHED_EULER_A) {
        /* sample / (sigma**2 + 1) ** 0.5 */
        const float sigma = s->sigmas[i];
        const float d = sqrtf(sigma * sigma + 1.0f);
        for (int64_t k = 0; k < n; k++) y[k] = x[k] / d;
    } else if (y != x) {
        memcpy(y, x, (size_t)n * sizeof(float));
    }
    return LMX_OK;
}

/* ---- buffers ----------------------------------------------------------------- */

static lmx_status ensure_buffers(sched *s, int64_t n) {
    if (s->n_elem == n) return LMX_OK;
    if (s->n_elem != 0 && s->step_index != 0)
        return lmx_err(LMX_ERR_ARG, "scheduler step: %lld elements, but this run started with %lld",
                       (long long)n, (long long)s->n_elem);
    free_buffers(s);
    const size_t bytes = (size_t)n * sizeof(float);
    int ok = 1;
    if (s->cfg.kind == SCHED_DPMPP_2M)
        for (int i = 0; i < s->cfg.solver_order; i++) ok &= (s->hist[i] = lmx_malloc(bytes)) != NULL;
    if (s->cfg.kind == SCHED_PNDM) {
        for (int i = 0; i < 4; i++) ok &= (s->ets[i] = lmx_malloc(bytes)) != NULL;
        ok &= (s->cur_sample = lmx_malloc(bytes)) != NULL;
        ok &= (s->cur_mo = lmx_malloc(bytes)) != NULL;
    }
    ok &= (s->tmp = lmx_malloc(bytes)) != NULL;
    if (!ok) {
        free_buffers(s);
        return lmx_err(LMX_ERR_NOMEM, "scheduler: cannot allocate %lld-element buffers", (long long)n);
    }
    s->n_elem = n;
    return LMX_OK;
}

lmx_status sched_reserve(sched *s, int64_t n) {
    if (n < 1) return lmx_err(LMX_ERR_ARG, "scheduler: %lld elements", (long long)n);
    if (s->step_index != 0 && s->n_elem != n)
        return lmx_err(LMX_ERR_ARG, "scheduler: cannot resize buffers in the middle of a run");
    return ensure_buffers(s, n);
}

/* ---- DPM-Solver++ ------------------------------------------------------------ */

/* _sigma_to_alpha_sigma_t: alpha = 1 / (sigma**2 + 1) ** 0.5, s = sigma*alpha. */
static void dpm_alpha_sigma(float sigma, float *alpha, float *sig) {
    const float a = 1.0f / sqrtf(sigma * sigma + 1.0f);
    *alpha = a;
    *sig = sigma * a;
}

static float dpm_lambda(float sigma) {
    float a, s;
    dpm_alpha_sigma(sigma, &a, &s);
    return sched_tlogf(a) - sched_tlogf(s);
}

/* The order step k uses (diffusers step(): lower_order_nums = min(k, order)). */
static int dpm_order(const sched *s, int k) {
    const sched_config *c = &s->cfg;
    const int n = s->n_calls;
    const int lon = k < c->solver_order ? k : c->solver_order;
    const int lower_final = (k == n - 1) && (c->euler_at_final || (c->lower_order_final && n < 15) ||
                                             c->final_sigmas_type == SCHED_FINAL_ZERO);
    const int lower_second = (k == n - 2) && c->lower_order_final && n < 15;
    if (c->solver_order == 1 || lon < 1 || lower_final) return 1;
    if (c->solver_order == 2 || lon < 2 || lower_second) return 2;
    return 3;
}

lmx_status sched_dpm_step_scalars(const sched *s, int k, sched_dpm_scalars *o) {
    if (s->cfg.kind != SCHED_DPMPP_2M)
        return lmx_err(LMX_ERR_ARG, "dpm scalars: not a DPM-Solver scheduler");
    if (k < 0 || k >= s->n_calls) return lmx_err(LMX_ERR_ARG, "dpm scalars: step %d out of range", k);
    memset(o, 0, sizeof *o);
    o->order = dpm_order(s, k);
    float a_t, s_t, a_0, s_0;
    dpm_alpha_sigma(s->sigmas[k + 1], &a_t, &s_t);
    dpm_alpha_sigma(s->sigmas[k], &a_0, &s_0);
    const float h = dpm_lambda(s->sigmas[k + 1]) - dpm_lambda(s->sigmas[k]);
    const float E = sched_texpf(-h) - 1.0f;
    o->h = h;
    o->c1 = s_t / s_0;
    o->c2 = a_t * E;
    if (o->order >= 2) {
        const float h0 = dpm_lambda(s->sigmas[k]) - dpm_lambda(s->sigmas[k - 1]);
        o->r0 = h0 / h;
        o->c3 = s->cfg.solver_type == SCHED_SOLVER_HEUN && o->order == 2 ? a_t * (E / h + 1.0f)
                                                                          : 0.5f * o->c2;
    }
    return LMX_OK;
}

static void dpm_step(sched *s, int k, const float *e, float *x, int64_t n) {
    const sched_config *c = &s->cfg;
    const int order = dpm_order(s, k);

    /* convert_model_output -> data prediction x0, pushed into the history */
    float a0, s0;
    dpm_alpha_sigma(s->sigmas[k], &a0, &s0);
    const int cap = c->solver_order;
    float *x0 = s->hist[0];
    for (int i = 0; i + 1 < cap; i++) s->hist[i] = s->hist[i + 1];
    s->hist[cap - 1] = x0;
    if (c->prediction_type == SCHED_PRED_EPSILON) {
        for (int64_t i = 0; i < n; i++) x0[i] = (x[i] - s0 * e[i]) / a0;
    } else if (c->prediction_type == SCHED_PRED_V) {
        for (int64_t i = 0; i < n; i++) x0[i] = a0 * x[i] - s0 * e[i];
    } else {
        memcpy(x0, e, (size_t)n * sizeof(float));
    }
    if (s->n_hist < cap) s->n_hist++;

    float a_t, s_t;
    dpm_alpha_sigma(s->sigmas[k + 1], &a_t, &s_t);
    const float lam_t = dpm_lambda(s->sigmas[k + 1]);
    const float lam_0 = dpm_lambda(s->sigmas[k]);
    const float h = lam_t - lam_0;
    const float c1 = s_t / s0;
    const float E = sched_texpf(-h) - 1.0f;
    const float c2 = a_t * E;
    const float *m0 = s->hist[cap - 1];

    if (order == 1) {
        /* (sigma_t / sigma_s) * sample - (alpha_t * (exp(-h) - 1)) * x0 */
        for (int64_t i = 0; i < n; i++) x[i] = c1 * x[i] - c2 * m0[i];
    } else if (order == 2) {
        const float *m1 = s->hist[cap - 2];
        const float h0 = lam_0 - dpm_lambda(s->sigmas[k - 1]);
        const float r0 = h0 / h;
        const float ir = 1.0f / r0;
        if (c->solver_type == SCHED_SOLVER_MIDPOINT) {
            const float c3 = 0.5f * c2;
            for (int64_t i = 0; i < n; i++) {
                const float d1 = ir * (m0[i] - m1[i]);
                x[i] = c1 * x[i] - c2 * m0[i] - c3 * d1;
            }
        } else {
            const float cH = a_t * (E / h + 1.0f);
            for (int64_t i = 0; i < n; i++) {
                const float d1 = ir * (m0[i] - m1[i]);
                x[i] = c1 * x[i] - c2 * m0[i] + cH * d1;
            }
        }
    } else {
        const float *m1 = s->hist[cap - 2], *m2 = s->hist[cap - 3];
        const float lam_1 = dpm_lambda(s->sigmas[k - 1]);
        const float h0 = lam_0 - lam_1;
        const float h1 = lam_1 - dpm_lambda(s->sigmas[k - 2]);
        const float r0 = h0 / h, r1 = h1 / h;
        const float ir0 = 1.0f / r0, ir1 = 1.0f / r1;
        const float w = r0 / (r0 + r1);
        const float ir01 = 1.0f / (r0 + r1);
        const float cD1 = a_t * (E / h + 1.0f);
        const float cD2 = a_t * ((sched_texpf(-h) - 1.0f + h) / (h * h) - 0.5f);
        for (int64_t i = 0; i < n; i++) {
            const float d10 = ir0 * (m0[i] - m1[i]);
            const float d11 = ir1 * (m1[i] - m2[i]);
            const float D1 = d10 + w * (d10 - d11);
            const float D2 = ir01 * (d10 - d11);
            x[i] = c1 * x[i] - c2 * m0[i] + cD1 * D1 - cD2 * D2;
        }
    }
    if (s->lower_order_nums < c->solver_order) s->lower_order_nums++;
}

/* ---- DDIM -------------------------------------------------------------------- */

static float acp_at(const sched *s, int64_t t) {
    if (t < 0) t += s->N; /* torch indexing wraps negative indices */
    return s->acp[t];
}

static void ddim_step(sched *s, int k, const float *e, float *x, int64_t n, rng_state *rng) {
    const sched_config *c = &s->cfg;
    const int64_t t = s->t_int[k];
    const int64_t prev = t - s->N / s->n_steps;
    const float a_t = acp_at(s, t);
    const float a_p = prev >= 0 ? s->acp[prev] : s->final_alpha_cumprod;
    const float b_t = 1.0f - a_t;
    const float sa = sqrtf(a_t), sb = sqrtf(b_t);
    const float b_p = 1.0f - a_p;
    const float variance = b_p / b_t * (1.0f - a_t / a_p);
    const float std = (float)c->eta * sqrtf(variance);
    const float dcoef = sqrtf(1.0f - a_p - std * std);
    const float sap = sqrtf(a_p);
    const float r = (float)c->clip_sample_range;
    for (int64_t i = 0; i < n; i++) {
        float x0, pe;
        if (c->prediction_type == SCHED_PRED_EPSILON) {
            x0 = (x[i] - sb * e[i]) / sa;
            pe = e[i];
        } else if (c->prediction_type == SCHED_PRED_V) {
            x0 = sa * x[i] - sb * e[i];
            pe = sa * e[i] + sb * x[i];
        } else {
            x0 = e[i];
            pe = (x[i] - sa * x0) / sb;
        }
        if (c->clip_sample) x0 = x0 < -r ? -r : (x0 > r ? r : x0); /* NaN passes through */
        x[i] = sap * x0 + dcoef * pe;
    }
    if (c->eta > 0) {
        rng_randn(rng, s->tmp, n);
        for (int64_t i = 0; i < n; i++) x[i] = x[i] + std * s->tmp[i];
    }
}

/* ---- Euler / Euler ancestral -------------------------------------------------- */

/* x0 for Euler's prediction types; sigma_hat = sigma (s_churn = 0). */
static void euler_x0(const sched *s, float sigma, const float *e, const float *x, float *x0, int64_t n) {
    if (s->cfg.prediction_type == SCHED_PRED_EPSILON) {
        for (int64_t i = 0; i < n; i++) x0[i] = x[i] - sigma * e[i];
    } else if (s->cfg.prediction_type == SCHED_PRED_V) {
        /* model_output * (-sigma / (sigma**2 + 1) ** 0.5) + sample / (sigma**2 + 1) */
        const float q = sigma * sigma + 1.0f;
        const float ca = -sigma / sqrtf(q);
        for (int64_t i = 0; i < n; i++) x0[i] = e[i] * ca + x[i] / q;
    } else {
        memcpy(x0, e, (size_t)n * sizeof(float));
    }
}

static void euler_step(sched *s, int k, const float *e, float *x, int64_t n, rng_state *rng) {
    if (s->cfg.euler_legacy_noise) rng_randn(rng, s->tmp, n); /* 0.26.3: drawn, unused */
    const float sigma = s->sigmas[k];
    const float sigma_hat = sigma * 1.0f; /* sigma * (gamma + 1), gamma = 0.0 */
    float *x0 = s->tmp;
    euler_x0(s, sigma_hat, e, x, x0, n);
    const float dt = s->sigmas[k + 1] - sigma_hat;
    for (int64_t i = 0; i < n; i++) {
        const float d = (x[i] - x0[i]) / sigma_hat;
        x[i] = x[i] + d * dt;
    }
}

static void euler_a_step(sched *s, int k, const float *e, float *x, int64_t n, rng_state *rng) {
    const float sigma = s->sigmas[k];
    float *x0 = s->tmp;
    euler_x0(s, sigma, e, x, x0, n);
    const float sf = s->sigmas[k], st = s->sigmas[k + 1];
    const float up = sqrtf(st * st * (sf * sf - st * st) / (sf * sf));
    const float down = sqrtf(st * st - up * up);
    const float dt = down - sigma;
    for (int64_t i = 0; i < n; i++) {
        const float d = (x[i] - x0[i]) / sigma;
        x[i] = x[i] + d * dt;
    }
    rng_randn(rng, s->tmp, n);
    for (int64_t i = 0; i < n; i++) x[i] = x[i] + s->tmp[i] * up;
}

/* ---- PNDM -------------------------------------------------------------------- */

/* _get_prev_sample(sample, t, prev_t, model_output) into out (may alias). */
static void pndm_prev(const sched *s, const float *sample, int64_t t, int64_t prev, const float *mo,
                      float *out, int64_t n) {
    const float a_t = acp_at(s, t);
    const float a_p = prev >= 0 ? s->acp[prev] : s->final_alpha_cumprod;
    const float b_t = 1.0f - a_t;
    const float b_p = 1.0f - a_p;
    const float sc = sqrtf(a_p / a_t);
    const float den = a_t * sqrtf(b_p) + sqrtf(a_t * b_t * a_p);
    const float cm = a_p - a_t;
    if (s->cfg.prediction_type == SCHED_PRED_V) {
        const float sa = sqrtf(a_t), sb = sqrtf(b_t);
        for (int64_t i = 0; i < n; i++) {
            const float m = sa * mo[i] + sb * sample[i];
            out[i] = sc * sample[i] - cm * m / den;
        }
    } else {
        for (int64_t i = 0; i < n; i++) out[i] = sc * sample[i] - cm * mo[i] / den;
    }
}

/* Append a copy of e to ets, keeping the last `keep` before it (PLMS keeps 3). */
static void ets_push(sched *s, const float *e, int64_t n, int keep) {
    while (s->n_ets > keep) {
        float *old = s->ets[0];
        for (int i = 0; i + 1 < 4; i++) s->ets[i] = s->ets[i + 1];
        s->ets[3] = old;
        s->n_ets--;
    }
    memcpy(s->ets[s->n_ets++], e, (size_t)n * sizeof(float));
}

static void pndm_prk_step(sched *s, int k, const float *e, float *x, int64_t n) {
    const int64_t half = (int64_t)(s->N / s->n_steps) / 2;
    const int64_t prev = s->t_int[k] - ((k % 2) ? 0 : half);
    const int64_t t = s->t_int[k / 4 * 4];
    const float sixth = (float)(1.0 / 6), third = (float)(1.0 / 3);
    const float *mo = e;
    float *cmo = s->cur_mo;
    switch (k % 4) {
    case 0:
        for (int64_t i = 0; i < n; i++) cmo[i] = sixth * e[i] + 0.0f; /* 0 + 1/6*e */
        ets_push(s, e, n, 4);
        memcpy(s->cur_sample, x, (size_t)n * sizeof(float));
        s->has_cur_sample = 1;
        break;
    case 1:
    case 2:
        for (int64_t i = 0; i < n; i++) cmo[i] = cmo[i] + third * e[i];
        break;
    default:
        for (int64_t i = 0; i < n; i++) s->tmp[i] = cmo[i] + sixth * e[i];
        mo = s->tmp;
        break;
    }
    const float *cur = s->has_cur_sample ? s->cur_sample : x;
    pndm_prev(s, cur, t, prev, mo, x, n);
}

static void pndm_plms_step(sched *s, int k, const float *e, float *x, int64_t n) {
    const int64_t ratio = s->N / s->n_steps;
    int64_t t = s->t_int[k];
    int64_t prev = t - ratio;
    const int counter = k;
    if (counter != 1) {
        ets_push(s, e, n, 3);
    } else {
        prev = t;
        t = t + ratio;
    }
    float *mo = s->tmp;
    const float *sample = x;
    float *const *E = s->ets;
    const int m = s->n_ets;
    if (m == 1 && counter == 0) {
        memcpy(mo, e, (size_t)n * sizeof(float));
        memcpy(s->cur_sample, x, (size_t)n * sizeof(float));
        s->has_cur_sample = 1;
    } else if (m == 1 && counter == 1) {
        for (int64_t i = 0; i < n; i++) mo[i] = (e[i] + E[0][i]) / 2.0f;
        sample = s->cur_sample;
        s->has_cur_sample = 0;
    } else if (m == 2) {
        for (int64_t i = 0; i < n; i++) mo[i] = (3.0f * E[1][i] - E[0][i]) / 2.0f;
    } else if (m == 3) {
        for (int64_t i = 0; i < n; i++)
            mo[i] = (23.0f * E[2][i] - 16.0f * E[1][i] + 5.0f * E[0][i]) / 12.0f;
    } else {
        const float k24 = (float)(1.0 / 24);
        for (int64_t i = 0; i < n; i++)
            mo[i] = k24 * (55.0f * E[3][i] - 59.0f * E[2][i] + 37.0f * E[1][i] - 9.0f * E[0][i]);
    }
    pndm_prev(s, sample, t, prev, mo, x, n);
}

/* ---- step -------------------------------------------------------------------- */

lmx_status sched_step(sched *s, int i, const float *model_out, float *x, int64_t n, rng_state *rng) {
    if (i != s->step_index)
        return lmx_err(LMX_ERR_ARG, "scheduler step %d: expected step %d (steps run in order; "
                       "sched_reset starts again)", i, s->step_index);
    if (i >= s->n_calls)
        return lmx_err(LMX_ERR_ARG, "scheduler step %d: the schedule has %d steps", i, s->n_calls);
    if (n < 1) return lmx_err(LMX_ERR_ARG, "scheduler step: %lld elements", (long long)n);
    const sched_config *c = &s->cfg;
    const int draws = c->kind == SCHED_EULER_A || (c->kind == SCHED_DDIM && c->eta > 0) ||
                      (c->kind == SCHED_EULER && c->euler_legacy_noise);
    if (draws && !rng)
        return lmx_err(LMX_ERR_ARG, "%s step: needs the pipeline's random generator",
                       sched_kind_name(c->kind));
    lmx_status st = ensure_buffers(s, n);
    if (st != LMX_OK) return st;
    switch (c->kind) {
    case SCHED_DPMPP_2M: dpm_step(s, i, model_out, x, n); break;
    case SCHED_DDIM: ddim_step(s, i, model_out, x, n, rng); break;
    case SCHED_EULER: euler_step(s, i, model_out, x, n, rng); break;
    case SCHED_EULER_A: euler_a_step(s, i, model_out, x, n, rng); break;
    case SCHED_PNDM:
        if (i < s->n_prk) pndm_prk_step(s, i, model_out, x, n);
        else pndm_plms_step(s, i, model_out, x, n);
        break;
    default: return lmx_err(LMX_ERR_INTERNAL, "scheduler: bad kind");
    }
    s->step_index++;
    return LMX_OK;
}
