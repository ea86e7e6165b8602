/* test_sched.c - schedulers vs diffusers 0.32.2 goldens (reference/gen_sched.py).
 *
 *   tables.safetensors     betas, alphas, alphas_cumprod, sigmas for six beta
 *                          configurations (+ zero-SNR, trained betas): bit-exact.
 *   timesteps.safetensors  ~600 schedules: every class x spacing x steps x
 *                          offset x beta schedule, Karras, sigma_min, log-linear,
 *                          continuous, lambda_min_clipped, zero-SNR; timesteps,
 *                          sigmas and init_noise_sigma bit-exact, and the same
 *                          refusals as diffusers.
 *   configs.safetensors    from_config resolution of seven JSON files into
 *                          each class, with and without the pipeline fixups.
 *   traj.safetensors       full sampler runs on a [1,4,8,8] latent (stand-in
 *                          model eps = 0.1*xin + sin(0.01 t)*w): x after each
 *                          step, and the generator's next 16 values after the
 *                          run. Two comparisons: "chained" (our own x feeds the
 *                          next step: drift) and "per-step" (the reference x
 *                          is fed back before each step: the error of one
 *                          update on identical inputs, spec tolerance 1e-6
 *                          relative). The max ulp distances are printed.
 */
#include <cjson/cJSON.h>
#include <math.h>
#include <string.h>

#include "harness.h"
#include "sched/sched.h"

/* Number of elements that differ in their bits; *max_ulp gets the worst. */
static int64_t n_diff(const float *a, const float *r, int64_t n, int64_t *max_ulp) {
    int64_t bad = 0, mu = 0;
    for (int64_t i = 0; i < n; i++)
        if (memcmp(&a[i], &r[i], 4)) {
            bad++;
            int64_t u = lmx_ulp_dist(a[i], r[i]);
            if (u > mu) mu = u;
        }
    if (max_ulp) *max_ulp = mu;
    return bad;
}

static cJSON *meta_json(st_file *f, const char *key) {
    const char *s = f ? st_meta_get(f, key) : NULL;
    cJSON *j = s ? cJSON_Parse(s) : NULL;
    CHECK(j != NULL, "metadata '%s' missing or not JSON", key);
    return j;
}

static lmx_status config_from_obj(sched_config *c, sched_kind kind, const cJSON *obj, unsigned flags) {
    char *txt = cJSON_PrintUnformatted(obj);
    lmx_status st = sched_config_from_json(c, kind, txt, strlen(txt), "golden config", flags);
    free(txt);
    return st;
}

/* ---- tables ------------------------------------------------------------------- */

static void test_tables(void) {
    st_file *f = lmx_golden_open(lmx_src_path("tests/fixtures/sched/tables.safetensors"));
    if (!f) return;
    cJSON *cases = meta_json(f, "cases");
    const cJSON *c;
    cJSON_ArrayForEach(c, cases) {
        const char *name = cJSON_GetArrayItem(c, 0)->valuestring;
        const cJSON *kw = cJSON_GetArrayItem(c, 1);
        for (int ddim = 0; ddim < 2; ddim++) {
            sched_config cfg;
            CHECK_OK(config_from_obj(&cfg, ddim ? SCHED_DDIM : SCHED_DPMPP_2M, kw, 0));
            int N = cfg.num_train_timesteps;
            float *b = lmx_malloc(4 * (size_t)N * sizeof(float));
            CHECK_OK(sched_tables(&cfg, b, b + N, b + 2 * N, b + 3 * N));
            const char *what[4] = {"betas", "alphas", ddim ? "acp_ddim" : "acp", "sigmas"};
            for (int k = 0; k < 4; k++) {
                if (ddim && k != 2) continue;
                char key[64];
                snprintf(key, sizeof key, "%s_%s", name, what[k]);
                int64_t n = 0;
                float *ref = lmx_golden_f32(f, key, &n);
                int64_t mu = 0, bad = ref && n == N ? n_diff(b + k * N, ref, N, &mu) : -1;
                CHECK(bad == 0, "%s: %lld of %d values differ (max %lld ulp)", key, (long long)bad, N,
                      (long long)mu);
                lmx_free(ref);
            }
            lmx_free(b);
            sched_config_clear(&cfg);
        }
    }
    /* The real torch tables (MKL sqrt): betas/alphas/acp are sqrt-free and
     * must be identical; sigma = sqrt(...) may differ by an ulp, and the
     * zero-SNR rescale (sqrt, then cancellation) by more: report and bound
     * relatively. */
    cJSON_ArrayForEach(c, cases) {
        const char *name = cJSON_GetArrayItem(c, 0)->valuestring;
        const cJSON *kw = cJSON_GetArrayItem(c, 1);
        int zsnr = strstr(name, "zsnr") != NULL;
        for (int ddim = 0; ddim < 2; ddim++) {
            sched_config cfg;
            CHECK_OK(config_from_obj(&cfg, ddim ? SCHED_DDIM : SCHED_DPMPP_2M, kw, 0));
            int N = cfg.num_train_timesteps;
            float *b = lmx_malloc(4 * (size_t)N * sizeof(float));
            CHECK_OK(sched_tables(&cfg, b, b + N, b + 2 * N, b + 3 * N));
            const char *what[4] = {"betas", "alphas", ddim ? "acp_ddim" : "acp", "sigmas"};
            for (int k = 0; k < 4; k++) {
                if (ddim && k != 2) continue;
                char key[64];
                snprintf(key, sizeof key, "torch_%s_%s", name, what[k]);
                int64_t n = 0;
                float *ref = lmx_golden_f32(f, key, &n);
                if (!ref || n != N) {
                    lmx_free(ref);
                    continue;
                }
                int64_t mu = 0, bad = n_diff(b + k * N, ref, N, &mu);
                if (!zsnr && k < 3) CHECK(bad == 0, "%s: %lld values differ", key, (long long)bad);
                else if (!zsnr) CHECK(mu <= 1, "%s: %lld values differ, max %lld ulp", key, (long long)bad, (long long)mu);
                else lmx_cmp_f32(key, b + k * N, ref, N, 5e-6, 2e-4); /* 1 - ab[i]/ab[i-1] cancels */
                if (lmx_test_verbose() && bad)
                    printf("  %-24s %4lld of %d differ from torch, max %lld ulp\n", key, (long long)bad, N,
                           (long long)mu);
                lmx_free(ref);
            }
            lmx_free(b);
            sched_config_clear(&cfg);
        }
    }
    /* trained betas */
    cJSON *tb = meta_json(f, "trained_betas");
    if (tb) {
        cJSON *obj = cJSON_CreateObject();
        cJSON_AddItemReferenceToObject(obj, "trained_betas", tb);
        sched_config cfg;
        CHECK_OK(config_from_obj(&cfg, SCHED_DDIM, obj, 0));
        float acp[1000];
        CHECK_OK(sched_tables(&cfg, NULL, NULL, acp, NULL));
        float *ref = lmx_golden_f32(f, "trained_acp", NULL);
        int64_t mu = 0;
        CHECK(ref && n_diff(acp, ref, 1000, &mu) == 0, "trained betas acp (max %lld ulp)", (long long)mu);
        lmx_free(ref);
        sched_config_clear(&cfg);
        cJSON_Delete(obj);
        cJSON_Delete(tb);
    }
    cJSON_Delete(cases);
    st_close(f);
}

/* ---- timesteps ---------------------------------------------------------------- */

static void test_timesteps(void) {
    st_file *f = lmx_golden_open(lmx_src_path("tests/fixtures/sched/timesteps.safetensors"));
    if (!f) return;
    cJSON *cases = meta_json(f, "cases");
    int64_t nts = 0, nsig = 0;
    float *ts = lmx_golden_f32(f, "timesteps", &nts);
    float *sg = lmx_golden_f32(f, "sigmas", &nsig);
    float *tst = lmx_golden_f32(f, "timesteps_torch", NULL);
    float *sgt = lmx_golden_f32(f, "sigmas_torch", NULL);
    int n_cases = 0, n_ok = 0, n_refused = 0;
    int64_t t_ts_bad = 0, t_ts_ulp = 0, t_sg_bad = 0, t_sg_ulp = 0, t_in_ulp = 0;
    double t_rel = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, cases) {
        if (!ts || !sg) break;
        n_cases++;
        sched_kind kind;
        const char *cls = cJSON_GetArrayItem(c, 0)->valuestring;
        const char *cfgtxt = cJSON_GetArrayItem(c, 1)->valuestring;
        int steps = cJSON_GetArrayItem(c, 2)->valueint;
        int ts_off = cJSON_GetArrayItem(c, 3)->valueint, ts_len = cJSON_GetArrayItem(c, 4)->valueint;
        int sg_off = cJSON_GetArrayItem(c, 5)->valueint, sg_len = cJSON_GetArrayItem(c, 6)->valueint;
        float ins = (float)cJSON_GetArrayItem(c, 7)->valuedouble;
        const char *err = cJSON_GetArrayItem(c, 8)->valuestring;
        CHECK_OK(sched_kind_parse(cls, &kind));
        sched_config cfg;
        lmx_status st = sched_config_from_json(&cfg, kind, cfgtxt, strlen(cfgtxt), "case", 0);
        sched *s = NULL;
        if (st == LMX_OK) st = sched_create(&s, &cfg, steps);
        sched_config_clear(&cfg);
        if (*err) {
            CHECK(st != LMX_OK, "%s %s steps=%d: diffusers raises %s, we accept", cls, cfgtxt, steps, err);
            if (st != LMX_OK) n_refused++;
            sched_free(s);
            continue;
        }
        if (st != LMX_OK) {
            CHECK(0, "%s %s steps=%d: %s", cls, cfgtxt, steps, lmx_errmsg());
            continue;
        }
        int ok = 1;
        if (sched_n_calls(s) != ts_len) {
            CHECK(0, "%s %s steps=%d: %d calls, reference %d", cls, cfgtxt, steps, sched_n_calls(s), ts_len);
            ok = 0;
        } else {
            for (int i = 0; i < ts_len; i++) {
                float t = sched_timestep(s, i);
                if (memcmp(&t, &ts[ts_off + i], 4)) {
                    CHECK(0, "%s %s steps=%d: t[%d] = %.9g, reference %.9g", cls, cfgtxt, steps, i,
                          (double)t, (double)ts[ts_off + i]);
                    ok = 0;
                    break;
                }
            }
        }
        int ns = 0;
        const float *sig = sched_sigmas(s, &ns);
        if (ns != sg_len) {
            CHECK(0, "%s %s steps=%d: %d sigmas, reference %d", cls, cfgtxt, steps, ns, sg_len);
            ok = 0;
        } else if (ns) {
            int64_t mu = 0, bad = n_diff(sig, sg + sg_off, ns, &mu);
            if (bad) {
                CHECK(0, "%s %s steps=%d: %lld sigmas differ (max %lld ulp)", cls, cfgtxt, steps,
                      (long long)bad, (long long)mu);
                ok = 0;
            }
        }
        float ours = sched_init_noise_sigma(s);
        if (memcmp(&ours, &ins, 4)) {
            CHECK(0, "%s %s steps=%d: init_noise_sigma %.9g, reference %.9g", cls, cfgtxt, steps,
                  (double)ours, (double)ins);
            ok = 0;
        }
        n_ok += ok;
        /* The same schedule from torch as is: integer timesteps identical,
         * float ones (Karras / continuous Euler) and sigmas within 1e-6
         * relative (MKL sqrt/log/exp, numpy's own float32 log). */
        if (tst && sgt && ok) {
            float ins_t = (float)cJSON_GetArrayItem(c, 9)->valuedouble;
            int64_t mu = 0, bad = 0;
            for (int i = 0; i < ts_len; i++) {
                float t = sched_timestep(s, i), r = tst[ts_off + i];
                if (memcmp(&t, &r, 4)) {
                    bad++;
                    if (lmx_ulp_dist(t, r) > mu) mu = lmx_ulp_dist(t, r);
                    double rel = fabs((double)t - r) / fmax(fabs((double)r), 1.0);
                    if (rel > t_rel) t_rel = rel;
                    int integral = t == floorf(t) && r == floorf(r);
                    CHECK(!integral || fabsf(t - r) <= 1.0f, "%s %s steps=%d: t[%d] %.9g vs torch %.9g", cls,
                          cfgtxt, steps, i, (double)t, (double)r);
                    CHECK(rel <= 1e-6 || integral, "%s %s steps=%d: t[%d] %.9g vs torch %.9g", cls, cfgtxt,
                          steps, i, (double)t, (double)r);
                }
            }
            t_ts_bad += bad;
            if (mu > t_ts_ulp) t_ts_ulp = mu;
            if (ns) {
                int64_t smu = 0;
                t_sg_bad += n_diff(sig, sgt + sg_off, ns, &smu);
                if (smu > t_sg_ulp) t_sg_ulp = smu;
                int zsnr = strstr(cfgtxt, "zero_snr\": true") != NULL;
                char what[64];
                snprintf(what, sizeof what, "torch sigmas (case %d)", n_cases - 1);
                if (!zsnr) lmx_cmp_f32(what, sig, sgt + sg_off, ns, 1e-9, 1e-6);
            }
            if (lmx_ulp_dist(ours, ins_t) > t_in_ulp) t_in_ulp = lmx_ulp_dist(ours, ins_t);
        }
        sched_free(s);
    }
    printf("timesteps: %d schedules, %d identical, %d refused like diffusers\n", n_cases, n_ok, n_refused);
    printf("timesteps vs torch as is: %lld timesteps differ (max %lld ulp, max rel %.2g), %lld sigmas differ "
           "(max %lld ulp), init_noise_sigma max %lld ulp\n",
           (long long)t_ts_bad, (long long)t_ts_ulp, t_rel, (long long)t_sg_bad, (long long)t_sg_ulp,
           (long long)t_in_ulp);
    lmx_free(tst);
    lmx_free(sgt);
    CHECK(n_cases > 500, "only %d schedules", n_cases);
    lmx_free(ts);
    lmx_free(sg);
    cJSON_Delete(cases);
    st_close(f);
}

/* ---- configs ------------------------------------------------------------------ */

static int json_num_eq(const cJSON *v, double x) {
    if (cJSON_IsString(v)) return !strcmp(v->valuestring, "-inf") ? x == -INFINITY : x == INFINITY;
    if (cJSON_IsNull(v)) return isnan(x);
    if (cJSON_IsBool(v)) return (cJSON_IsTrue(v) ? 1.0 : 0.0) == x;
    return cJSON_IsNumber(v) && v->valuedouble == x;
}

static void test_configs(void) {
    st_file *f = lmx_golden_open(lmx_src_path("tests/fixtures/sched/configs.safetensors"));
    if (!f) return;
    cJSON *res = meta_json(f, "results");
    static const char *const beta_names[] = {"linear", "scaled_linear", "squaredcos_cap_v2"};
    static const char *const pred_names[] = {"epsilon", "v_prediction", "sample"};
    static const char *const spacing_names[] = {"linspace", "leading", "trailing"};
    int n = 0;
    const cJSON *r;
    cJSON_ArrayForEach(r, res) {
        const char *fname = cJSON_GetArrayItem(r, 0)->valuestring;
        const char *target = cJSON_GetArrayItem(r, 1)->valuestring;
        int fix = cJSON_GetArrayItem(r, 2)->valueint;
        const cJSON *exp = cJSON_GetArrayItem(r, 3);
        const char *err = cJSON_GetArrayItem(r, 4)->valuestring;
        char path[256];
        snprintf(path, sizeof path, "tests/fixtures/sched/configs/%s", fname);
        sched_kind kind;
        CHECK_OK(sched_kind_parse(target, &kind));
        sched_config c;
        lmx_status st = sched_config_load(&c, kind, lmx_src_path(path), fix ? SCHED_CFG_PIPELINE : 0);
        n++;
        if (*err) {
            /* diffusers 0.32.2 cannot load a DEIS config into DPM-Solver
             * (final_sigmas_type "zero" vs algorithm_type "deis" is checked
             * before deis is mapped); the ComposLoRA scripts force
             * algorithm_type="dpmsolver++", which loramix always does. */
            int deis_dpm = kind == SCHED_DPMPP_2M && strstr(err, "algorithm_type` deis");
            CHECK(deis_dpm ? st == LMX_OK : st != LMX_OK, "%s -> %s (fixups %d): diffusers: %s; ours: %s",
                  fname, target, fix, err, st == LMX_OK ? "ok" : lmx_errmsg());
            sched_config_clear(&c);
            continue;
        }
        if (st != LMX_OK) {
            CHECK(0, "%s -> %s (fixups %d): %s", fname, target, fix, lmx_errmsg());
            continue;
        }
        unsigned m = 1u << kind;
#define HAS(mask) ((mask) & m)
        const unsigned DPM = 1u << SCHED_DPMPP_2M, DDIM = 1u << SCHED_DDIM, EUL = 1u << SCHED_EULER,
                       EULA = 1u << SCHED_EULER_A, PNDM = 1u << SCHED_PNDM, ALL = 31;
        struct {
            const char *key;
            unsigned classes;
            double ours;
            const char *ours_s;
        } fields[] = {
            {"num_train_timesteps", ALL, c.num_train_timesteps, NULL},
            {"beta_start", ALL, c.beta_start, NULL},
            {"beta_end", ALL, c.beta_end, NULL},
            {"beta_schedule", ALL, 0, beta_names[c.beta_schedule]},
            {"prediction_type", ALL, 0, pred_names[c.prediction_type]},
            {"timestep_spacing", ALL, 0, spacing_names[c.timestep_spacing]},
            {"steps_offset", ALL, c.steps_offset, NULL},
            {"rescale_betas_zero_snr", DPM | DDIM | EUL | EULA, c.rescale_betas_zero_snr, NULL},
            {"clip_sample", DDIM, c.clip_sample, NULL},
            {"clip_sample_range", DDIM, c.clip_sample_range, NULL},
            {"set_alpha_to_one", DDIM | PNDM, c.set_alpha_to_one, NULL},
            {"skip_prk_steps", PNDM, c.skip_prk_steps, NULL},
            {"solver_order", DPM, c.solver_order, NULL},
            {"solver_type", DPM, 0, c.solver_type == SCHED_SOLVER_HEUN ? "heun" : "midpoint"},
            {"lower_order_final", DPM, c.lower_order_final, NULL},
            {"euler_at_final", DPM, c.euler_at_final, NULL},
            {"use_karras_sigmas", DPM | EUL, c.use_karras_sigmas, NULL},
            {"final_sigmas_type", DPM | EUL, 0,
             c.final_sigmas_type == SCHED_FINAL_SIGMA_MIN ? "sigma_min" : "zero"},
            {"lambda_min_clipped", DPM, c.lambda_min_clipped, NULL},
            {"sigma_min", DPM | EUL, c.sigma_min, NULL},
            {"sigma_max", DPM | EUL, c.sigma_max, NULL},
            {"interpolation_type", EUL, 0, c.interpolation_type == SCHED_INTERP_LOG_LINEAR ? "log_linear" : "linear"},
            {"timestep_type", EUL, 0, c.timestep_continuous ? "continuous" : "discrete"},
        };
        for (size_t k = 0; k < LMX_ARRAY_LEN(fields); k++) {
            if (!HAS(fields[k].classes)) continue;
            const cJSON *v = cJSON_GetObjectItemCaseSensitive(exp, fields[k].key);
            if (!v) {
                CHECK(0, "%s -> %s: reference lacks %s", fname, target, fields[k].key);
                continue;
            }
            int eq = fields[k].ours_s ? (cJSON_IsString(v) && !strcmp(v->valuestring, fields[k].ours_s))
                                      : json_num_eq(v, fields[k].ours);
            char *vs = cJSON_PrintUnformatted(v);
            CHECK(eq, "%s -> %s (fixups %d): %s = %s, ours %s%.17g", fname, target, fix, fields[k].key,
                  vs, fields[k].ours_s ? fields[k].ours_s : "", fields[k].ours_s ? 0.0 : fields[k].ours);
            free(vs);
        }
#undef HAS
        sched_config_clear(&c);
    }
    printf("configs: %d resolutions checked\n", n);
    CHECK(n >= 60, "only %d config cases", n);
    cJSON_Delete(res);
    st_close(f);
}

/* ---- trajectories --------------------------------------------------------------- */

/* The stand-in model: eps = fl(0.1) * xin + fl(sin(0.01 t)) * w. */
static void model(const float *xin, float t, const float *w, float *eps, int64_t n) {
    const float ct = (float)sin(0.01 * (double)t);
    const float a = 0.1f;
    for (int64_t i = 0; i < n; i++) eps[i] = a * xin[i] + ct * w[i];
}

typedef struct traj_stats {
    int64_t chained_ulp, step_ulp, chained_bad, step_bad;
    double step_rel; /* max |ours - ref| / max|ref| of one update */
} traj_stats;

/* world "": the correctly-rounded reference (must be bit-exact);
 * world "torch_": torch as is (MKL sqrt/log/exp; 1e-6 relative per step). */
static void run_traj(st_file *f, const cJSON *t, const char *world, traj_stats *tot) {
    const char *name = cJSON_GetObjectItem(t, "name")->valuestring;
    const char *cls = cJSON_GetObjectItem(t, "class")->valuestring;
    const cJSON *cfgj = cJSON_GetObjectItem(t, "config");
    int steps = cJSON_GetObjectItem(t, "steps")->valueint;
    uint64_t seed = (uint64_t)cJSON_GetObjectItem(t, "seed")->valuedouble;
    int n_calls_ref = cJSON_GetObjectItem(t, "n_calls")->valueint;
    double eta = cJSON_GetObjectItem(t, "eta")->valuedouble;
    int legacy = cJSON_IsTrue(cJSON_GetObjectItem(t, "legacy"));
    const cJSON *shape = cJSON_GetObjectItem(t, "shape");
    int64_t n = 1;
    const cJSON *d;
    cJSON_ArrayForEach(d, shape) n *= d->valueint;
    char key[128];
    snprintf(key, sizeof key, "w_%dx4x8x8", cJSON_GetArrayItem(shape, 0)->valueint);
    float *w = lmx_golden_f32(f, key, NULL);
    snprintf(key, sizeof key, "%s%s_x", world, name);
    int64_t nx = 0;
    float *xr = lmx_golden_f32(f, key, &nx);
    snprintf(key, sizeof key, "%s_keep", name);
    int64_t nk = 0;
    int64_t *keep = lmx_golden_i64(f, key, &nk);
    snprintf(key, sizeof key, "%s%s_after", world, name);
    float *after = lmx_golden_f32(f, key, NULL);
    if (!w || !xr || !keep || !after || nx != nk * n) {
        CHECK(0, "%s: golden tensors missing", name);
        goto done;
    }
    sched_kind kind;
    CHECK_OK(sched_kind_parse(cls, &kind));
    sched_config cfg;
    lmx_status st = config_from_obj(&cfg, kind, cfgj, 0);
    CHECK_OK(st);
    if (st != LMX_OK) goto done;
    cfg.eta = eta;
    cfg.euler_legacy_noise = legacy;
    sched *s = NULL;
    st = sched_create(&s, &cfg, steps);
    sched_config_clear(&cfg);
    CHECK_OK(st);
    if (st != LMX_OK) goto done;
    CHECK(sched_n_calls(s) == n_calls_ref, "%s: %d calls, reference %d", name, sched_n_calls(s), n_calls_ref);

    float *x = lmx_malloc(4 * (size_t)n * sizeof(float));
    float *xin = x + n, *eps = x + 2 * n, *x1 = x + 3 * n;
    traj_stats ts = {0, 0, 0, 0, 0.0};
    for (int pass = 0; pass < 2; pass++) {
        /* pass 0: chained; pass 1: the reference x is fed back before each
         * kept step whose predecessor is kept (identical inputs) */
        rng_state rng;
        rng_init(&rng, seed, RNG_PATH_AVX2);
        rng_randn(&rng, x, n);
        sched_init_noise(s, x, n);
        sched_reset(s);
        int64_t ki = 0;
        for (int i = 0; i < sched_n_calls(s); i++) {
            int feed = pass == 1 && i > 0 && ki > 0 && keep[ki - 1] == i - 1;
            if (feed) memcpy(x, xr + (ki - 1) * n, (size_t)n * sizeof(float));
            float tt = sched_timestep(s, i);
            CHECK_OK(sched_scale_model_input(s, i, x, xin, n));
            model(xin, tt, w, eps, n);
            memcpy(x1, x, (size_t)n * sizeof(float));
            st = sched_step(s, i, eps, x, n, &rng);
            if (st != LMX_OK) {
                CHECK_OK(st);
                break;
            }
            if (ki < nk && keep[ki] == i) {
                const float *ref = xr + ki * n;
                int64_t mu = 0, bad = n_diff(x, ref, n, &mu);
                if (pass == 0) {
                    if (mu > ts.chained_ulp) ts.chained_ulp = mu;
                    ts.chained_bad += bad;
                } else if (feed || i == 0) {
                    if (mu > ts.step_ulp) ts.step_ulp = mu;
                    ts.step_bad += bad;
                    double ma, mr;
                    lmx_err_stats(x, ref, n, &ma, &mr);
                    /* relative to the size of the update's operands */
                    double mx = 0;
                    for (int64_t k = 0; k < n; k++) mx = fmax(mx, fabs((double)x1[k]));
                    double rel = ma / fmax(fmax(mr, mx), 1e-30);
                    if (rel > ts.step_rel) ts.step_rel = rel;
                }
                ki++;
            }
        }
        if (pass == 0) {
            float nxt[16];
            rng_randn(&rng, nxt, 16);
            int64_t mu = 0;
            CHECK(n_diff(nxt, after, 16, &mu) == 0, "%s: generator state after the run differs", name);
        }
    }
    if (!*world)
        CHECK(ts.step_bad == 0 && ts.chained_bad == 0,
              "%s: %lld values differ from the correctly-rounded reference (max %lld ulp)", name,
              (long long)ts.chained_bad, (long long)ts.chained_ulp);
    CHECK(ts.step_rel <= 1e-6, "%s%s: one update differs by %.3g relative (spec: 1e-6)", world, name,
          ts.step_rel);
    if (lmx_test_verbose() || (!*world && (ts.chained_bad || ts.step_bad)))
        printf("  %s%-22s calls=%3d  per-step: %lld values differ, max %lld ulp, rel %.2g | chained: %lld "
               "differ, max %lld ulp\n",
               world, name, sched_n_calls(s), (long long)ts.step_bad, (long long)ts.step_ulp, ts.step_rel,
               (long long)ts.chained_bad, (long long)ts.chained_ulp);
    if (ts.chained_ulp > tot->chained_ulp) tot->chained_ulp = ts.chained_ulp;
    if (ts.step_ulp > tot->step_ulp) tot->step_ulp = ts.step_ulp;
    tot->chained_bad += ts.chained_bad;
    tot->step_bad += ts.step_bad;
    if (ts.step_rel > tot->step_rel) tot->step_rel = ts.step_rel;
    lmx_free(x);
    sched_free(s);
done:
    lmx_free(w);
    lmx_free(xr);
    lmx_free(keep);
    lmx_free(after);
}

static void test_trajectories(void) {
    st_file *f = lmx_golden_open(lmx_src_path("tests/fixtures/sched/traj.safetensors"));
    if (!f) return;
    cJSON *trajs = meta_json(f, "trajectories");
    for (int w = 0; w < 2; w++) {
        const char *world = w ? "torch_" : "";
        traj_stats tot = {0, 0, 0, 0, 0.0};
        int n = 0;
        const cJSON *t;
        cJSON_ArrayForEach(t, trajs) {
            if (w && !cJSON_IsTrue(cJSON_GetObjectItem(t, "torch"))) continue;
            run_traj(f, t, world, &tot);
            n++;
        }
        printf("trajectories vs %s: %d runs; per-step: %lld values differ, max %lld ulp, max rel %.3g; "
               "chained: %lld values differ, max %lld ulp\n",
               w ? "torch as is (MKL sqrt/log/exp)" : "correctly-rounded reference", n, (long long)tot.step_bad,
               (long long)tot.step_ulp, tot.step_rel, (long long)tot.chained_bad, (long long)tot.chained_ulp);
        CHECK(n >= (w ? 8 : 40), "only %d trajectories", n);
    }
    cJSON_Delete(trajs);
    st_close(f);
}

int main(void) {
    test_tables();
    test_timesteps();
    test_configs();
    test_trajectories();
    return lmx_test_finish();
}
