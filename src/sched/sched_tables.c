/*
 * sched_tables.c - training-schedule tables and set_timesteps for the five
 * schedulers (docs/numerics.md §5, §6; diffusers 0.32.2 __init__ and
 * set_timesteps of DPMSolverMultistep, DDIM, EulerDiscrete,
 * EulerAncestralDiscrete and PNDM).
 *
 * The reference mixes three numeric worlds and each is mirrored as such:
 *   - torch fp32 tensors: torch.linspace (CPU kernel: start + step*i below
 *     the half, end - step*(n-1-i) above it, each contracted into one FMA by
 *     the AVX2/AVX-512 builds), elementwise ops rounded to fp32, cumprod
 *     accumulated in double;
 *   - numpy float64: linspace (i*step + start, last element = stop), arange
 *     with a float step (length ceil((stop-start)/step), values
 *     a0 + i*(a1 - a0)), interp, rint (round half to even), and numpy 1.x's
 *     value-based casting in _sigma_to_t (a float64 scalar minus a float32
 *     array is computed in float32);
 *   - Python floats: beta_start**0.5 (pow), the cosine schedule, Karras.
 */
#include <math.h>
#include <string.h>

#include "sched/sched_impl.h"

/* ---- torch ------------------------------------------------------------------ */

float sched_tlogf(float x) { return (float)log((double)x); }
float sched_texpf(float x) { return (float)exp((double)x); }

/* torch.linspace(start, end, steps, dtype=float32) on the CPU. */
static void torch_linspace_f32(double s, double e, int steps, float *out) {
    const float start = (float)s, end = (float)e;
    if (steps == 1) {
        out[0] = start;
        return;
    }
    const float step = (end - start) / (float)(steps - 1);
    const int halfway = steps / 2;
    for (int i = 0; i < steps; i++)
        out[i] = i < halfway ? fmaf(step, (float)i, start) : fmaf(-step, (float)(steps - i - 1), end);
}

/* ---- numpy ------------------------------------------------------------------ */

/* numpy.linspace(start, stop, num) (float64, endpoint=True). */
static void np_linspace(double start, double stop, int num, double *y) {
    const int div = num - 1;
    const double delta = stop - start;
    if (div > 0) {
        const double step = delta / div;
        for (int i = 0; i < num; i++) y[i] = step == 0 ? ((double)i / div) * delta : (double)i * step;
    } else {
        for (int i = 0; i < num; i++) y[i] = (double)i * delta;
    }
    for (int i = 0; i < num; i++) y[i] += start;
    if (num > 1) y[num - 1] = stop;
}

/* Length of numpy.arange(start, stop, step) with a float step. */
static int64_t np_arange_len(double start, double stop, double step) {
    double len = ceil((stop - start) / step);
    return len > 0 ? (int64_t)len : 0;
}

/* numpy.arange values: a0 = start, a1 = start + step, then a0 + i*(a1 - a0). */
static void np_arange(double start, double step, int64_t len, double *y) {
    if (len < 1) return;
    y[0] = start;
    if (len < 2) return;
    y[1] = start + step;
    const double delta = y[1] - y[0];
    for (int64_t i = 2; i < len; i++) y[i] = start + (double)i * delta;
}

/* numpy.interp(x, arange(n), fp) for one x, fp given as fp32 (read as double). */
static double np_interp(double x, const float *fp, int n) {
    if (isnan(x)) return x;
    if (x < 0) return fp[0];
    if (x >= (double)(n - 1)) return fp[n - 1];
    int j = (int)floor(x);
    if ((double)j == x) return fp[j];
    const double slope = ((double)fp[j + 1] - (double)fp[j]) / 1.0;
    return slope * (x - (double)j) + (double)fp[j];
}

/* numpy's float32 log of the sigma table (log_sigmas). */
static float np_logf(float x) { return (float)log((double)x); }

/* diffusers _sigma_to_t(sigma, log_sigmas) under numpy 1.26 casting rules:
 * the float64 log of sigma is compared with, and subtracted from, the
 * float32 table in float32; w is float32; t = (1-w)*lo + w*hi in float64. */
static double sigma_to_t(double sigma, const float *log_sigmas, int n) {
    const double log_sigma = log(sigma > 1e-10 ? sigma : 1e-10);
    const float lf = (float)log_sigma;
    int lo = 0;
    for (int j = 0; j < n; j++)
        if (lf - log_sigmas[j] >= 0.0f) lo = j; /* last index with dists >= 0 (argmax of cumsum) */
    if (lo > n - 2) lo = n - 2;
    const int hi = lo + 1;
    const float low = log_sigmas[lo], high = log_sigmas[hi];
    float w = (low - lf) / (low - high);
    w = w < 0.0f ? 0.0f : (w > 1.0f ? 1.0f : w);
    return (double)(1.0f - w) * (double)lo + (double)w * (double)hi;
}

/* _convert_to_karras: rho = 7 in double; ramp = numpy.linspace(0, 1, n). */
static void karras(double sigma_min, double sigma_max, int n, double *out) {
    const double rho = 7.0;
    const double min_inv_rho = pow(sigma_min, 1.0 / rho);
    const double max_inv_rho = pow(sigma_max, 1.0 / rho);
    np_linspace(0.0, 1.0, n, out);
    for (int i = 0; i < n; i++) out[i] = pow(max_inv_rho + out[i] * (min_inv_rho - max_inv_rho), rho);
}

/* ---- training tables --------------------------------------------------------- */

/* betas_for_alpha_bar(N) ("squaredcos_cap_v2"), Python floats -> fp32. */
static double alpha_bar_cos(double t) {
    const double c = cos((t + 0.008) / 1.008 * 3.141592653589793 / 2);
    return c * c;
}

/* diffusers rescale_zero_terminal_snr on fp32 tensors. */
static void rescale_zero_snr(float *betas, int n, float *work) {
    double p = 1.0;
    for (int i = 0; i < n; i++) {
        p *= (double)(1.0f - betas[i]);
        work[i] = sqrtf((float)p); /* alphas_bar_sqrt */
    }
    const float s0 = work[0], sT = work[n - 1];
    const float scale = s0 / (s0 - sT);
    for (int i = 0; i < n; i++) {
        work[i] = work[i] - sT;
        work[i] = work[i] * scale;
        work[i] = work[i] * work[i]; /* alphas_bar */
    }
    /* alphas = cat(ab[0:1], ab[1:] / ab[:-1]); betas = 1 - alphas */
    for (int i = n - 1; i >= 1; i--) betas[i] = 1.0f - work[i] / work[i - 1];
    betas[0] = 1.0f - work[0];
}

lmx_status sched_tables(const sched_config *c, float *betas_out, float *alphas_out, float *acp_out,
                        float *sigmas_out) {
    const int N = c->num_train_timesteps;
    if (N < 1) return lmx_err(LMX_ERR_ARG, "num_train_timesteps: expected >= 1, got %d", N);
    float *betas = lmx_malloc((size_t)N * 2 * sizeof(float));
    if (!betas) return lmx_err(LMX_ERR_NOMEM, "scheduler tables: out of memory");
    float *work = betas + N;
    lmx_status st = LMX_OK;

    if (c->trained_betas) {
        if (c->n_trained_betas != N) {
            st = lmx_err(LMX_ERR_ARG, "trained_betas: %d values for num_train_timesteps=%d",
                         c->n_trained_betas, N);
            goto done;
        }
        for (int i = 0; i < N; i++) betas[i] = (float)c->trained_betas[i];
    } else if (c->beta_schedule == SCHED_BETA_LINEAR) {
        torch_linspace_f32(c->beta_start, c->beta_end, N, betas);
    } else if (c->beta_schedule == SCHED_BETA_SCALED_LINEAR) {
        if (c->beta_start < 0 || c->beta_end < 0) {
            st = lmx_err(LMX_ERR_ARG, "beta_start/beta_end: scaled_linear needs non-negative values");
            goto done;
        }
        torch_linspace_f32(pow(c->beta_start, 0.5), pow(c->beta_end, 0.5), N, betas);
        for (int i = 0; i < N; i++) betas[i] = betas[i] * betas[i];
    } else {
        for (int i = 0; i < N; i++) {
            const double t1 = (double)i / N, t2 = (double)(i + 1) / N;
            const double b = 1 - alpha_bar_cos(t2) / alpha_bar_cos(t1);
            betas[i] = (float)(0.999 < b ? 0.999 : b);
        }
    }
    const int zsnr = c->rescale_betas_zero_snr && c->kind != SCHED_PNDM;
    if (zsnr) rescale_zero_snr(betas, N, work);

    double p = 1.0;
    for (int i = 0; i < N; i++) {
        const float a = 1.0f - betas[i];
        p *= (double)a;
        if (betas_out) betas_out[i] = betas[i];
        if (alphas_out) alphas_out[i] = a;
        work[i] = (float)p;
    }
    if (zsnr && c->kind != SCHED_DDIM) work[N - 1] = ldexpf(1.0f, -24);
    for (int i = 0; i < N; i++) {
        if (acp_out) acp_out[i] = work[i];
        if (sigmas_out) sigmas_out[i] = sqrtf((1.0f - work[i]) / work[i]);
    }
done:
    lmx_free(betas);
    return st;
}

/* ---- set_timesteps ------------------------------------------------------------ */

static lmx_status alloc_calls(sched *s, int n_calls, int n_sigmas) {
    s->n_calls = n_calls;
    s->t_unet = lmx_calloc((size_t)n_calls + 1, sizeof(float));
    s->t_int = lmx_calloc((size_t)n_calls + 1, sizeof(int64_t));
    s->n_sigmas = n_sigmas;
    s->sigmas = n_sigmas ? lmx_calloc((size_t)n_sigmas, sizeof(float)) : NULL;
    if (!s->t_unet || !s->t_int || (n_sigmas && !s->sigmas))
        return lmx_err(LMX_ERR_NOMEM, "scheduler: out of memory");
    return LMX_OK;
}

/* Index of a timestep in acp as torch indexing does (negative wraps);
 * -1 when out of range. */
static int acp_index(const sched *s, int64_t t) {
    if (t < 0) t += s->N;
    return (t >= 0 && t < s->N) ? (int)t : -1;
}

/* DPMSolverMultistepScheduler.set_timesteps. */
static lmx_status dpm_timesteps(sched *s, int n, double *buf, int64_t *ts) {
    const sched_config *c = &s->cfg;
    const int N = s->N;
    /* last_timestep = N - searchsorted(flip(lambda_t), lambda_min_clipped) */
    int clipped = 0;
    if (!(c->lambda_min_clipped == -INFINITY)) {
        int lo = 0, hi = N;
        while (lo < hi) {
            const int mid = lo + ((hi - lo) >> 1);
            const float a = s->acp[N - 1 - mid];
            const float lam = sched_tlogf(sqrtf(a)) - sched_tlogf(sqrtf(1.0f - a));
            if (!(lam >= c->lambda_min_clipped)) lo = mid + 1;
            else hi = mid;
        }
        clipped = lo;
    }
    const int last = N - clipped;
    int64_t len = n;
    if (c->use_karras_sigmas) {
        len = n;
    } else if (c->timestep_spacing == SCHED_SPACING_LINSPACE) {
        np_linspace(0, last - 1, n + 1, buf);
        for (int j = 0; j < n; j++) ts[j] = (int64_t)rint(buf[n - j]);
    } else if (c->timestep_spacing == SCHED_SPACING_LEADING) {
        const int64_t ratio = last / (n + 1);
        for (int j = 0; j < n; j++) ts[j] = (int64_t)(n - j) * ratio + c->steps_offset;
    } else {
        const double ratio = (double)N / n;
        len = np_arange_len(last, 0, -ratio);
        if (len > n + 1) return lmx_err(LMX_ERR_INTERNAL, "trailing spacing: %lld steps", (long long)len);
        np_arange(last, -ratio, len, buf);
        for (int64_t j = 0; j < len; j++) ts[j] = (int64_t)rint(buf[j]) - 1;
    }
    if (len < 1) return lmx_err(LMX_ERR_ARG, "steps: %d gives an empty schedule", n);
    lmx_status st = alloc_calls(s, (int)len, (int)len + 1);
    if (st != LMX_OK) return st;
    if (c->use_karras_sigmas) {
        /* in_sigmas = the flipped table; sigma_min/max from the config when set */
        const double smin = isnan(c->sigma_min) ? (double)s->sigma_table[0] : c->sigma_min;
        const double smax = isnan(c->sigma_max) ? (double)s->sigma_table[N - 1] : c->sigma_max;
        float *logs = lmx_malloc((size_t)N * sizeof(float));
        if (!logs) return lmx_err(LMX_ERR_NOMEM, "scheduler: out of memory");
        for (int i = 0; i < N; i++) logs[i] = np_logf(s->sigma_table[i]);
        karras(smin, smax, n, buf);
        for (int j = 0; j < n; j++) {
            s->t_int[j] = (int64_t)rint(sigma_to_t(buf[j], logs, N));
            s->sigmas[j] = (float)buf[j];
        }
        lmx_free(logs);
    } else {
        for (int64_t j = 0; j < len; j++) {
            s->t_int[j] = ts[j];
            s->sigmas[j] = (float)np_interp((double)ts[j], s->sigma_table, N);
        }
    }
    s->sigmas[len] = c->final_sigmas_type == SCHED_FINAL_SIGMA_MIN ? s->sigma_table[0] : 0.0f;
    for (int64_t j = 0; j < len; j++) s->t_unet[j] = (float)s->t_int[j];
    s->init_noise_sigma = 1.0f;
    return LMX_OK;
}

/* The integer timesteps of DDIM (descending) and PNDM (ascending _timesteps);
 * returns the count in *len. buf holds n+2 doubles. */
static lmx_status int_timesteps(const sched *s, int n, int ascending, double *buf, int64_t *ts,
                                int64_t *len_out) {
    const sched_config *c = &s->cfg;
    const int N = s->N;
    int64_t len = n;
    if (c->timestep_spacing == SCHED_SPACING_LINSPACE) {
        np_linspace(0, N - 1, n, buf);
        for (int j = 0; j < n; j++) ts[j] = (int64_t)rint(buf[ascending ? j : n - 1 - j]);
    } else if (c->timestep_spacing == SCHED_SPACING_LEADING) {
        const int64_t ratio = N / n;
        for (int j = 0; j < n; j++) ts[j] = (int64_t)(ascending ? j : n - 1 - j) * ratio + c->steps_offset;
    } else {
        const double ratio = (double)N / n;
        len = np_arange_len(N, 0, -ratio);
        if (len > n + 1) return lmx_err(LMX_ERR_INTERNAL, "trailing spacing: %lld steps", (long long)len);
        np_arange(N, -ratio, len, buf);
        for (int64_t j = 0; j < len; j++) ts[j] = (int64_t)rint(buf[ascending ? len - 1 - j : j]) - 1;
    }
    *len_out = len;
    return LMX_OK;
}

static lmx_status ddim_timesteps(sched *s, int n, double *buf, int64_t *ts) {
    if (n > s->N)
        return lmx_err(LMX_ERR_ARG, "steps: %d is more than num_train_timesteps (%d)", n, s->N);
    int64_t len;
    lmx_status st = int_timesteps(s, n, 0, buf, ts, &len);
    if (st != LMX_OK) return st;
    st = alloc_calls(s, (int)len, 0);
    if (st != LMX_OK) return st;
    for (int64_t j = 0; j < len; j++) {
        s->t_int[j] = ts[j];
        s->t_unet[j] = (float)ts[j];
        if (acp_index(s, ts[j]) < 0)
            return lmx_err(LMX_ERR_ARG, "DDIM: timestep %lld is outside the %d-step table",
                           (long long)ts[j], s->N);
    }
    s->init_noise_sigma = 1.0f;
    return LMX_OK;
}

static lmx_status pndm_timesteps(sched *s, int n, double *buf, int64_t *ts) {
    int64_t L;
    lmx_status st = int_timesteps(s, n, 1, buf, ts, &L);
    if (st != LMX_OK) return st;
    int64_t *out = ts + L + 4; /* room after _timesteps */
    int64_t m = 0;
    if (s->cfg.skip_prk_steps) {
        /* concat(_ts[:-1], _ts[-2:-1], _ts[-1:])[::-1] */
        int64_t k = 0;
        for (int64_t j = 0; j + 1 < L; j++) out[k++] = ts[j];
        if (L >= 2) out[k++] = ts[L - 2];
        if (L >= 1) out[k++] = ts[L - 1];
        for (int64_t j = 0; j < k / 2; j++) {
            int64_t v = out[j];
            out[j] = out[k - 1 - j];
            out[k - 1 - j] = v;
        }
        m = k;
        s->n_prk = 0;
    } else {
        if (L < 4)
            return lmx_err(LMX_ERR_ARG,
                           "PNDM with skip_prk_steps=false needs at least 4 steps (diffusers fails "
                           "with fewer); got %d",
                           n);
        /* p = repeat(_ts[-4:], 2) + tile([0, N//n//2], 4); prk = repeat(p[:-1], 2)[1:-1][::-1] */
        const int64_t half = (int64_t)(s->N / n) / 2;
        int64_t p[8], r[14];
        for (int j = 0; j < 4; j++) {
            p[2 * j] = ts[L - 4 + j];
            p[2 * j + 1] = ts[L - 4 + j] + half;
        }
        for (int j = 0; j < 7; j++) r[2 * j] = r[2 * j + 1] = p[j];
        for (int j = 0; j < 12; j++) out[j] = r[12 - j];
        m = 12;
        s->n_prk = 12;
        for (int64_t j = L - 4; j >= 0; j--) out[m++] = ts[j]; /* _ts[:-3][::-1] */
    }
    if (m < 1) return lmx_err(LMX_ERR_ARG, "steps: %d gives an empty schedule", n);
    st = alloc_calls(s, (int)m, 0);
    if (st != LMX_OK) return st;
    for (int64_t j = 0; j < m; j++) {
        s->t_int[j] = out[j];
        s->t_unet[j] = (float)out[j];
    }
    s->init_noise_sigma = 1.0f;
    /* Check every table index step() will use. */
    const int64_t ratio = s->N / n;
    for (int i = 0; i < s->n_calls; i++) {
        int64_t t = s->t_int[i], prev;
        if (i < s->n_prk) {
            prev = t - ((i % 2) ? 0 : (s->N / n) / 2);
            t = s->t_int[i / 4 * 4];
        } else if (i == 1) {
            prev = t;
            t = t + ratio;
        } else {
            prev = t - ratio;
        }
        if (acp_index(s, t) < 0 || (prev >= 0 && acp_index(s, prev) < 0))
            return lmx_err(LMX_ERR_ARG, "PNDM: step %d uses timestep %lld -> %lld, outside the %d-step table",
                           i, (long long)t, (long long)prev, s->N);
    }
    return LMX_OK;
}

static lmx_status euler_timesteps(sched *s, int n, double *buf, int64_t *tsi) {
    const sched_config *c = &s->cfg;
    const int N = s->N;
    const int euler = s->cfg.kind == SCHED_EULER;
    int64_t len = n;
    float *ts = (float *)(void *)tsi;
    if (c->timestep_spacing == SCHED_SPACING_LINSPACE) {
        np_linspace(0, N - 1, n, buf);
        for (int j = 0; j < n; j++) ts[j] = (float)buf[n - 1 - j];
    } else if (c->timestep_spacing == SCHED_SPACING_LEADING) {
        const int64_t ratio = N / n;
        for (int j = 0; j < n; j++)
            ts[j] = (float)((int64_t)(n - 1 - j) * ratio) + (float)c->steps_offset;
    } else {
        const double ratio = (double)N / n;
        len = np_arange_len(N, 0, -ratio);
        if (len > n + 1) return lmx_err(LMX_ERR_INTERNAL, "trailing spacing: %lld steps", (long long)len);
        np_arange(N, -ratio, len, buf);
        for (int64_t j = 0; j < len; j++) ts[j] = (float)rint(buf[j]) - 1.0f;
    }
    if (len < 1) return lmx_err(LMX_ERR_ARG, "steps: %d gives an empty schedule", n);

    /* sigmas (double) at the timesteps */
    int64_t ns = len;
    double *sig = buf;
    if (euler && c->interpolation_type == SCHED_INTERP_LOG_LINEAR) {
        /* torch.linspace(log(sigmas[-1]), log(sigmas[0]), n + 1).exp() */
        float *tmp = lmx_malloc(((size_t)n + 1) * sizeof(float));
        if (!tmp) return lmx_err(LMX_ERR_NOMEM, "scheduler: out of memory");
        torch_linspace_f32((double)np_logf(s->sigma_table[N - 1]), (double)np_logf(s->sigma_table[0]),
                           n + 1, tmp);
        ns = n + 1;
        for (int64_t j = 0; j < ns; j++) sig[j] = (double)sched_texpf(tmp[j]);
        lmx_free(tmp);
    } else {
        for (int64_t j = 0; j < len; j++) sig[j] = np_interp((double)ts[j], s->sigma_table, N);
    }
    int karras_on = euler && c->use_karras_sigmas;
    if (karras_on) {
        const double smin = isnan(c->sigma_min) ? sig[ns - 1] : c->sigma_min;
        const double smax = isnan(c->sigma_max) ? sig[0] : c->sigma_max;
        float *logs = lmx_malloc((size_t)N * sizeof(float));
        if (!logs) return lmx_err(LMX_ERR_NOMEM, "scheduler: out of memory");
        for (int i = 0; i < N; i++) logs[i] = np_logf(s->sigma_table[i]);
        karras(smin, smax, n, sig);
        ns = n;
        len = n;
        for (int j = 0; j < n; j++) ts[j] = (float)sigma_to_t(sig[j], logs, N);
        lmx_free(logs);
    }
    const int continuous = euler && c->timestep_continuous && c->prediction_type == SCHED_PRED_V;
    const int64_t n_calls = continuous ? ns : len;
    lmx_status st = alloc_calls(s, (int)n_calls, (int)ns + 1);
    if (st != LMX_OK) return st;
    for (int64_t j = 0; j < ns; j++) s->sigmas[j] = (float)sig[j];
    s->sigmas[ns] = (euler && c->final_sigmas_type == SCHED_FINAL_SIGMA_MIN) ? s->sigma_table[0] : 0.0f;
    for (int64_t j = 0; j < n_calls; j++)
        s->t_unet[j] = continuous ? 0.25f * sched_tlogf(s->sigmas[j]) : ts[j];
    if (n_calls + 1 > s->n_sigmas)
        return lmx_err(LMX_ERR_UNSUPPORTED, "Euler: %lld timesteps but %d sigmas", (long long)n_calls,
                       s->n_sigmas);
    float mx = s->sigmas[0];
    for (int j = 1; j < s->n_sigmas; j++)
        if (s->sigmas[j] > mx) mx = s->sigmas[j];
    s->init_noise_sigma = c->timestep_spacing == SCHED_SPACING_LEADING ? sqrtf(mx * mx + 1.0f) : mx;
    return LMX_OK;
}

lmx_status sched_set_timesteps(sched *s, int n_steps) {
    if (n_steps < 1 || n_steps > 100000)
        return lmx_err(LMX_ERR_ARG, "steps: expected 1..100000, got %d", n_steps);
    s->n_steps = n_steps;
    /* scratch: doubles [2(n+2)] then int64 [4(n+2) + 16] */
    const size_t m = (size_t)n_steps + 2;
    double *buf = lmx_malloc(2 * m * sizeof(double) + (4 * m + 16) * sizeof(int64_t));
    if (!buf) return lmx_err(LMX_ERR_NOMEM, "scheduler: out of memory");
    int64_t *ts = (int64_t *)(void *)(buf + 2 * m);
    lmx_status st;
    switch (s->cfg.kind) {
    case SCHED_DPMPP_2M: st = dpm_timesteps(s, n_steps, buf, ts); break;
    case SCHED_DDIM: st = ddim_timesteps(s, n_steps, buf, ts); break;
    case SCHED_PNDM: st = pndm_timesteps(s, n_steps, buf, ts); break;
    default: st = euler_timesteps(s, n_steps, buf, ts); break;
    }
    lmx_free(buf);
    if (st != LMX_OK) return st;
    /* DPM / Euler locate the first step with index_for_timestep: a repeated
     * first timestep makes diffusers start at its second occurrence and run
     * past the end of the schedule. */
    if (s->cfg.kind != SCHED_DDIM && s->cfg.kind != SCHED_PNDM)
        for (int j = 1; j < s->n_calls; j++)
            if (s->t_unet[j] == s->t_unet[0])
                return lmx_err(LMX_ERR_UNSUPPORTED,
                               "%s: timestep %g appears twice at the start of the %d-step schedule "
                               "(diffusers would start at the second one and fail)",
                               sched_kind_class(s->cfg.kind), (double)s->t_unet[0], n_steps);
    return LMX_OK;
}
