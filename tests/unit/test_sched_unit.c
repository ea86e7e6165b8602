/* test_sched_unit.c - the scheduler module without golden files: the
 * reference values of docs/numerics.md §5 (table), §6 (timestep
 * lists) and §7 (DPM-Solver++ step coefficients), config parsing and its
 * error messages, class defaults, API misuse, generator bookkeeping
 * (Euler-ancestral, diffusers 0.26.3's Euler draws), reset, and every
 * allocation failure. */
#include <math.h>
#include <string.h>

#include "harness.h"
#include "sched/sched.h"

static const char SD15[] =
    "{\"_class_name\": \"PNDMScheduler\", \"_diffusers_version\": \"0.6.0\", \"beta_end\": 0.012,"
    " \"beta_schedule\": \"scaled_linear\", \"beta_start\": 0.00085, \"num_train_timesteps\": 1000,"
    " \"set_alpha_to_one\": false, \"skip_prk_steps\": true, \"steps_offset\": 1,"
    " \"trained_betas\": null, \"clip_sample\": false}";

static sched_config cfg_of(sched_kind kind, const char *json, unsigned flags) {
    sched_config c;
    lmx_status st = sched_config_from_json(&c, kind, json, strlen(json), "test.json", flags);
    CHECK(st == LMX_OK, "config: %s", lmx_errmsg());
    return c;
}

static sched *make(sched_kind kind, const char *json, int steps) {
    sched_config c = cfg_of(kind, json, SCHED_CFG_PIPELINE);
    sched *s = NULL;
    lmx_status st = sched_create(&s, &c, steps);
    CHECK(st == LMX_OK, "create %s/%d: %s", sched_kind_name(kind), steps, lmx_errmsg());
    sched_config_clear(&c);
    return s;
}

/* §5: reference values of the SD1.5 table. */
static void test_table_values(void) {
    sched_config c = cfg_of(SCHED_DPMPP_2M, SD15, 0);
    float beta[1000], acp[1000], sig[1000];
    CHECK_OK(sched_tables(&c, beta, NULL, acp, sig));
    static const struct {
        int t;
        float beta, acp, sigma;
    } ref[] = {
        {0, 0.000849999953f, 0.999149978f, 0.0291675329f},  {10, 0.000897569291f, 0.990431309f, 0.0982910767f},
        {20, 0.000946433691f, 0.981314301f, 0.137990952f},  {500, 0.00481495354f, 0.276332468f, 1.6182797f},
        {979, 0.0116499858f, 0.00591276586f, 12.9663248f}, {989, 0.0118243461f, 0.00525384676f, 13.7599688f},
        {999, 0.0119999992f, 0.00466009509f, 14.6146469f},
    };
    for (size_t i = 0; i < LMX_ARRAY_LEN(ref); i++) {
        int t = ref[i].t;
        CHECK(beta[t] == ref[i].beta, "beta[%d] = %.9g, spec %.9g", t, beta[t], ref[i].beta);
        CHECK(acp[t] == ref[i].acp, "acp[%d] = %.9g, spec %.9g", t, acp[t], ref[i].acp);
        CHECK(lmx_ulp_dist(sig[t], ref[i].sigma) <= 1, "sigma[%d] = %.9g, spec %.9g", t, sig[t], ref[i].sigma);
    }
    sched_config_clear(&c);
}

/* §7: DPM-Solver++ 2M, n = 100, linspace: fp32 step scalars. torch takes
 * exp/log from MKL and the spec lists both its values and the C-library
 * ones, so 2 ulp of slack. */
static void test_dpm_vectors(void) {
    sched *s = make(SCHED_DPMPP_2M, SD15, 100);
    if (!s) return;
    const sched_config *c = sched_get_config(s);
    CHECK(c->timestep_spacing == SCHED_SPACING_LINSPACE && c->steps_offset == 1 && c->solver_order == 2 &&
              c->final_sigmas_type == SCHED_FINAL_ZERO && c->beta_schedule == SCHED_BETA_SCALED_LINEAR,
          "SD1.5 JSON into DPM-Solver: spacing %d offset %d", c->timestep_spacing, c->steps_offset);
    int ns = 0;
    const float *sig = sched_sigmas(s, &ns);
    CHECK(ns == 101 && sig[100] == 0.0f, "101 sigmas ending in 0");
    CHECK(sched_timestep(s, 0) == 999 && sched_timestep(s, 1) == 989 && sched_timestep(s, 98) == 20 &&
              sched_timestep(s, 99) == 10,
          "timesteps");
    CHECK(sig[0] == 14.6146469f && sig[1] == 13.7599688f && sig[2] == 12.9663248f && sig[98] == 0.137990952f &&
              sig[99] == 0.0982910767f,
          "sigmas %.9g %.9g %.9g", sig[0], sig[1], sig[2]);
    sched_dpm_scalars d;
    static const struct {
        int k, order;
        float c1, mc2, mc3, h, r0, mc2_libc, mc3_libc;
    } ref[] = {
        {0, 1, 0.999701679f, 0.00423888816f, 0, 0.0602605343f, 0, 0, 0},
        {1, 2, 0.999668777f, 0.00443512062f, 0.00221756031f, 0.0594081879f, 1.01434731f, 0.00443511596f,
         0.00221755798f},
        {98, 2, 0.71560216f, 0.286319345f, 0.143159673f, 0, 0.620991588f, 0, 0},
    };
    for (size_t i = 0; i < LMX_ARRAY_LEN(ref); i++) {
        CHECK_OK(sched_dpm_step_scalars(s, ref[i].k, &d));
        CHECK(d.order == ref[i].order, "k=%d order %d", ref[i].k, d.order);
        CHECK(lmx_ulp_dist(d.c1, ref[i].c1) <= 2, "k=%d c1 %.9g vs %.9g", ref[i].k, d.c1, ref[i].c1);
        CHECK(lmx_ulp_dist(-d.c2, ref[i].mc2) <= 2 || lmx_ulp_dist(-d.c2, ref[i].mc2_libc) <= 2, "k=%d -c2 %.9g vs %.9g",
              ref[i].k, -d.c2, ref[i].mc2);
        if (ref[i].mc3 != 0)
            CHECK(lmx_ulp_dist(-d.c3, ref[i].mc3) <= 2 || lmx_ulp_dist(-d.c3, ref[i].mc3_libc) <= 2,
                  "k=%d -c3 %.9g vs %.9g", ref[i].k, -d.c3, ref[i].mc3);
        if (ref[i].h != 0) CHECK(lmx_ulp_dist(d.h, ref[i].h) <= 2, "k=%d h %.9g vs %.9g", ref[i].k, d.h, ref[i].h);
        if (ref[i].r0 != 0)
            CHECK(lmx_ulp_dist(d.r0, ref[i].r0) <= 2, "k=%d r0 %.9g vs %.9g", ref[i].k, d.r0, ref[i].r0);
        if (lmx_test_verbose())
            printf("k=%d: c1 %.9g -c2 %.9g -c3 %.9g h %.9g r0 %.9g 1/r0 %.9g\n", ref[i].k, d.c1, -d.c2, -d.c3,
                   d.h, d.r0, d.r0 != 0 ? 1.0f / d.r0 : 0.0f);
    }
    CHECK_OK(sched_dpm_step_scalars(s, 99, &d));
    CHECK(d.order == 1 && d.c1 == 0.0f && d.c2 == -1.0f, "final step: c1 %g c2 %g", d.c1, d.c2);

    /* The final step returns x0 = (x - s*eps)/alpha exactly. */
    enum { N = 64 };
    float x[N], e[N], x0[N];
    lmx_fill_randn(x, N, 1, 1.0f);
    lmx_fill_randn(e, N, 2, 1.0f);
    for (int k = 0; k < 99; k++) CHECK_OK(sched_step(s, k, e, x, N, NULL));
    float a = 1.0f / sqrtf(sig[99] * sig[99] + 1.0f), sg = sig[99] * a;
    for (int i = 0; i < N; i++) x0[i] = (x[i] - sg * e[i]) / a;
    CHECK_OK(sched_step(s, 99, e, x, N, NULL));
    CHECK(!memcmp(x, x0, sizeof x), "final step = x0");
    CHECK(sched_step(s, 100, e, x, N, NULL) == LMX_ERR_ARG, "past the end");
    sched_free(s);
}

static void check_list(const char *what, const sched *s, int n, int64_t first, int64_t step, int n_first,
                       int64_t second, int64_t step2) {
    int ok = sched_n_calls(s) == n;
    for (int j = 0; ok && j < n; j++) {
        int64_t want = j < n_first ? first - step * j : second - step2 * (j - n_first);
        if (sched_timestep(s, j) != (float)want) {
            CHECK(0, "%s: t[%d] = %g, expected %lld", what, j, (double)sched_timestep(s, j), (long long)want);
            return;
        }
    }
    CHECK(ok, "%s: %d calls, expected %d", what, sched_n_calls(s), n);
}

/* §6: DPM-Solver spacing lists (no steps_offset key -> 0 except leading tests). */
static void test_timestep_lists(void) {
    static const char lin[] = "{\"timestep_spacing\": \"linspace\"}";
    static const char lead[] = "{\"timestep_spacing\": \"leading\", \"steps_offset\": 1}";
    static const char trail[] = "{\"timestep_spacing\": \"trailing\"}";
    sched_config c;
    sched *s;
#define LIST(json, kind, n, ...)                                                   \
    do {                                                                           \
        c = cfg_of(kind, json, 0);                                                 \
        CHECK_OK(sched_create(&s, &c, n));                                         \
        if (s) check_list(#kind " " #n " " #json, s, __VA_ARGS__);                 \
        sched_free(s);                                                             \
        sched_config_clear(&c);                                                    \
    } while (0)
    LIST(lin, SCHED_DPMPP_2M, 20, 20, 999, 50, 10, 500, 50);
    LIST(lead, SCHED_DPMPP_2M, 20, 20, 941, 47, 20, 0, 0);
    LIST(trail, SCHED_DPMPP_2M, 20, 20, 999, 50, 20, 0, 0);
    LIST(lin, SCHED_DPMPP_2M, 50, 50, 999, 20, 25, 500, 20);
    LIST(lead, SCHED_DPMPP_2M, 50, 50, 951, 19, 50, 0, 0);
    LIST(trail, SCHED_DPMPP_2M, 50, 50, 999, 20, 50, 0, 0);
    LIST(lin, SCHED_DPMPP_2M, 100, 100, 999, 10, 50, 500, 10);
    LIST(lead, SCHED_DPMPP_2M, 100, 100, 901, 9, 100, 0, 0);
    LIST(trail, SCHED_DPMPP_2M, 100, 100, 999, 10, 100, 0, 0);
    LIST(lin, SCHED_DPMPP_2M, 200, 200, 999, 5, 100, 500, 5);
    LIST(lead, SCHED_DPMPP_2M, 200, 200, 801, 4, 200, 0, 0);
    LIST(lead, SCHED_DPMPP_2M, 220, 220, 881, 4, 220, 0, 0);
    LIST(lead, SCHED_DDIM, 20, 20, 951, 50, 20, 0, 0);
    LIST(lead, SCHED_DDIM, 50, 50, 981, 20, 50, 0, 0);
#undef LIST
    /* n = 220 linspace: gaps of 4 or 5 (round(i*999/220)); trailing ends 13, 8, 4. */
    c = cfg_of(SCHED_DPMPP_2M, lin, 0);
    CHECK_OK(sched_create(&s, &c, 220));
    if (s)
        CHECK(sched_timestep(s, 1) == 994 && sched_timestep(s, 2) == 990 && sched_timestep(s, 3) == 985 &&
                  sched_timestep(s, 4) == 981 && sched_timestep(s, 219) == 5,
              "220 linspace");
    sched_free(s);
    sched_config_clear(&c);
    c = cfg_of(SCHED_DPMPP_2M, trail, 0);
    CHECK_OK(sched_create(&s, &c, 220));
    if (s)
        CHECK(sched_timestep(s, 1) == 994 && sched_timestep(s, 2) == 990 && sched_timestep(s, 217) == 13 &&
                  sched_timestep(s, 218) == 8 && sched_timestep(s, 219) == 4,
              "220 trailing");
    sched_free(s);
    /* n = 61 trailing: numpy's arange has 62 entries, the last becomes -1. */
    CHECK_OK(sched_create(&s, &c, 61));
    if (s) CHECK(sched_n_calls(s) == 62 && sched_timestep(s, 61) == -1, "61 trailing: %d calls", sched_n_calls(s));
    sched_free(s);
    sched_config_clear(&c);

    /* Euler: float linspace timesteps and init_noise_sigma (§8, §9). */
    s = make(SCHED_EULER, "{\"timestep_spacing\": \"leading\", \"steps_offset\": 1, \"beta_schedule\": "
                          "\"scaled_linear\", \"beta_start\": 0.00085, \"beta_end\": 0.012}", 20);
    c = cfg_of(SCHED_EULER, "{\"beta_schedule\": \"scaled_linear\", \"beta_start\": 0.00085, \"beta_end\": 0.012}", 0);
    sched *e = NULL;
    CHECK_OK(sched_create(&e, &c, 20));
    if (e && s) {
        CHECK(sched_timestep(e, 0) == 999.0f && sched_timestep(e, 1) == 946.421082f &&
                  sched_timestep(e, 2) == 893.842102f,
              "Euler linspace %.9g %.9g", (double)sched_timestep(e, 1), (double)sched_timestep(e, 2));
        CHECK(sched_init_noise_sigma(e) == 14.6146469f, "Euler linspace init sigma %.9g",
              (double)sched_init_noise_sigma(e));
        CHECK(sched_timestep(s, 0) == 951.0f, "Euler leading offset 1 starts at 951");
        int nt = 0;
        const float *tab = sched_sigma_table(s, &nt);
        float want = sqrtf(tab[951] * tab[951] + 1.0f);
        CHECK(sched_init_noise_sigma(s) == want, "Euler leading init sigma %.9g vs %.9g",
              (double)sched_init_noise_sigma(s), (double)want);
    }
    sched_free(e);
    sched_free(s);
    sched_config_clear(&c);

    /* PNDM (SD1.5 default): n+1 calls with the second timestep repeated. */
    s = make(SCHED_PNDM, SD15, 20);
    if (s) {
        CHECK(sched_n_calls(s) == 21, "PNDM calls %d", sched_n_calls(s));
        CHECK(sched_timestep(s, 0) == 951 && sched_timestep(s, 1) == 901 && sched_timestep(s, 2) == 901 &&
                  sched_timestep(s, 3) == 851 && sched_timestep(s, 20) == 1,
              "PNDM list");
    }
    sched_free(s);
}

static void expect_err(const char *json, sched_kind kind, lmx_status want, const char *needle) {
    sched_config c;
    lmx_status st = sched_config_from_json(&c, kind, json, strlen(json), "cfg.json", 0);
    CHECK(st == want, "%s: status %s, expected %s (%s)", json, lmx_status_name(st), lmx_status_name(want),
          lmx_errmsg());
    CHECK(st == LMX_OK || strstr(lmx_errmsg(), needle), "%s: message '%s' lacks '%s'", json, lmx_errmsg(), needle);
    CHECK(st == LMX_OK || (c.trained_betas == NULL && c.kind == 0), "cleared on error");
    sched_config_clear(&c);
}

static void test_config(void) {
    sched_kind k;
    static const struct {
        const char *s;
        sched_kind k;
    } names[] = {{"dpm++2m", SCHED_DPMPP_2M}, {"DPMPP_2M", SCHED_DPMPP_2M}, {"DPMSolverMultistepScheduler", SCHED_DPMPP_2M},
                 {"ddim", SCHED_DDIM},         {"DDIMScheduler", SCHED_DDIM},  {"euler", SCHED_EULER},
                 {"EulerDiscreteScheduler", SCHED_EULER}, {"euler_a", SCHED_EULER_A}, {"euler-a", SCHED_EULER_A},
                 {"EulerAncestralDiscreteScheduler", SCHED_EULER_A}, {"pndm", SCHED_PNDM}, {"PNDMScheduler", SCHED_PNDM}};
    for (size_t i = 0; i < LMX_ARRAY_LEN(names); i++) {
        CHECK(sched_kind_parse(names[i].s, &k) == LMX_OK && k == names[i].k, "parse %s", names[i].s);
        CHECK(!strcmp(sched_kind_class(names[i].k), names[i].k == SCHED_DDIM ? "DDIMScheduler" : sched_kind_class(k)),
              "class");
    }
    CHECK(sched_kind_parse("lms", &k) == LMX_ERR_ARG && strstr(lmx_errmsg(), "'lms'"), "unknown sampler named");
    CHECK(!strcmp(sched_kind_name(SCHED_EULER_A), "euler_a") && !strcmp(sched_kind_name((sched_kind)42), "?"), "names");

    /* Class defaults (docs/numerics.md §8). */
    sched_config d = sched_config_default(SCHED_DDIM);
    CHECK(d.clip_sample && d.set_alpha_to_one && d.timestep_spacing == SCHED_SPACING_LEADING &&
              d.beta_schedule == SCHED_BETA_LINEAR && d.beta_end == 0.02,
          "DDIM defaults");
    d = sched_config_default(SCHED_PNDM);
    CHECK(!d.skip_prk_steps && !d.set_alpha_to_one && d.timestep_spacing == SCHED_SPACING_LEADING, "PNDM defaults");
    d = sched_config_default(SCHED_EULER);
    CHECK(d.timestep_spacing == SCHED_SPACING_LINSPACE && isnan(d.sigma_min), "Euler defaults");

    /* from_config into another class: a key the JSON lacks takes the
     * target's default (DDIM clip_sample = true: the §8 trap), the pipeline
     * fixups only touch keys the JSON has. */
    static const char noclip[] = "{\"_class_name\": \"PNDMScheduler\", \"steps_offset\": 0}";
    sched_config c = cfg_of(SCHED_DDIM, noclip, 0);
    CHECK(c.clip_sample == 1 && c.steps_offset == 0, "plain from_config");
    c = cfg_of(SCHED_DDIM, noclip, SCHED_CFG_PIPELINE);
    CHECK(c.clip_sample == 1 && c.steps_offset == 1, "fixups: offset (present) -> 1, clip (absent) stays");
    c = cfg_of(SCHED_PNDM, "{\"_class_name\": \"PNDMScheduler\"}", SCHED_CFG_PIPELINE);
    CHECK(c.steps_offset == 1, "fixups on the JSON's own class apply to defaults too");
    c = cfg_of(SCHED_DPMPP_2M, "{\"_class_name\": \"PNDMScheduler\"}", SCHED_CFG_PIPELINE);
    CHECK(c.steps_offset == 0, "...but not through from_config");
    c = cfg_of(SCHED_KIND_FROM_JSON, SD15, 0);
    CHECK(c.kind == SCHED_PNDM && c.skip_prk_steps && c.steps_offset == 1, "kind from _class_name");
    CHECK(sched_json_class(SD15, strlen(SD15), "x", &k) == LMX_OK && k == SCHED_PNDM, "json class");

    /* DPM-Solver value mappings; sigma_min read from any JSON. */
    c = cfg_of(SCHED_DPMPP_2M,
               "{\"_class_name\": \"DEISMultistepScheduler\", \"algorithm_type\": \"deis\", \"solver_type\": "
               "\"logrho\", \"lambda_min_clipped\": -Infinity, \"sigma_min\": 0.5, \"note\": \"NaN Infinity\"}",
               0);
    CHECK(c.solver_type == SCHED_SOLVER_MIDPOINT && c.lambda_min_clipped == -INFINITY && c.sigma_min == 0.5,
          "deis/logrho/-Infinity/sigma_min");
    c = cfg_of(SCHED_DPMPP_2M, "{\"algorithm_type\": \"sde-dpmsolver++\", \"solver_type\": \"heun\"}", 0);
    CHECK(c.solver_type == SCHED_SOLVER_HEUN, "heun");
    c = cfg_of(SCHED_DDIM, "{\"solver_type\": \"nonsense\", \"thresholding\": false}", 0);
    CHECK(c.kind == SCHED_DDIM, "keys of other classes are ignored, even malformed");

    /* Errors name the key (and the file). */
    expect_err("{\"steps_offset\": \"1\"}", SCHED_DDIM, LMX_ERR_FORMAT, "cfg.json: steps_offset: expected an integer");
    expect_err("{\"steps_offset\": 1.5}", SCHED_DDIM, LMX_ERR_FORMAT, "steps_offset");
    expect_err("{\"timestep_spacing\": \"even\"}", SCHED_EULER, LMX_ERR_FORMAT, "timestep_spacing: 'even' is not one of linspace, leading, trailing");
    expect_err("{\"beta_schedule\": 3}", SCHED_EULER, LMX_ERR_FORMAT, "beta_schedule");
    expect_err("{\"prediction_type\": \"flow_prediction\"}", SCHED_DPMPP_2M, LMX_ERR_FORMAT, "prediction_type");
    expect_err("{\"prediction_type\": \"original_sample\"}", SCHED_DDIM, LMX_ERR_FORMAT, "original_sample");
    expect_err("{\"thresholding\": true}", SCHED_DDIM, LMX_ERR_UNSUPPORTED, "thresholding");
    expect_err("{\"variance_type\": \"learned_range\"}", SCHED_DPMPP_2M, LMX_ERR_UNSUPPORTED, "variance_type");
    expect_err("{\"use_lu_lambdas\": true}", SCHED_DPMPP_2M, LMX_ERR_UNSUPPORTED, "use_lu_lambdas");
    expect_err("{\"use_exponential_sigmas\": true}", SCHED_EULER, LMX_ERR_UNSUPPORTED, "use_exponential_sigmas");
    expect_err("{\"solver_order\": 4}", SCHED_DPMPP_2M, LMX_ERR_FORMAT, "solver_order");
    expect_err("{\"solver_type\": \"bh3\"}", SCHED_DPMPP_2M, LMX_ERR_FORMAT, "solver_type");
    expect_err("{\"algorithm_type\": \"magic\"}", SCHED_DPMPP_2M, LMX_ERR_FORMAT, "algorithm_type");
    expect_err("{\"beta_start\": NaN}", SCHED_DDIM, LMX_ERR_FORMAT, "beta_start");
    expect_err("{\"beta_end\": Infinity}", SCHED_DDIM, LMX_ERR_FORMAT, "beta_end");
    expect_err("{\"trained_betas\": [0.1, \"x\"]}", SCHED_DDIM, LMX_ERR_FORMAT, "trained_betas[1]");
    expect_err("{\"num_train_timesteps\": 0}", SCHED_DDIM, LMX_ERR_FORMAT, "num_train_timesteps");
    expect_err("{\"clip_sample\": \"yes\"}", SCHED_DDIM, LMX_ERR_FORMAT, "clip_sample");
    expect_err("[1, 2]", SCHED_DDIM, LMX_ERR_FORMAT, "top level");
    expect_err("{\"a\": ", SCHED_DDIM, LMX_ERR_FORMAT, "not valid JSON");
    expect_err("{\"_class_name\": \"LMSDiscreteScheduler\"}", SCHED_KIND_FROM_JSON, LMX_ERR_UNSUPPORTED,
               "LMSDiscreteScheduler");
    expect_err("{}", SCHED_KIND_FROM_JSON, LMX_ERR_FORMAT, "no _class_name");
    sched_config bad;
    CHECK(sched_config_load(&bad, SCHED_DDIM, "/nonexistent/scheduler_config.json", 0) == LMX_ERR_IO &&
              strstr(lmx_errmsg(), "/nonexistent/scheduler_config.json"),
          "missing file named");

    /* Semantic refusals at create time. */
    sched *s = NULL;
    c = cfg_of(SCHED_EULER_A, "{\"prediction_type\": \"sample\"}", 0);
    CHECK(sched_create(&s, &c, 10) == LMX_ERR_UNSUPPORTED && !s, "Euler-a sample prediction");
    c = sched_config_default(SCHED_PNDM);
    CHECK(sched_create(&s, &c, 3) == LMX_ERR_ARG && strstr(lmx_errmsg(), "skip_prk_steps"), "PRK with 3 steps");
    c = sched_config_default(SCHED_DDIM);
    CHECK(sched_create(&s, &c, 1001) == LMX_ERR_ARG, "DDIM steps > 1000");
    CHECK(sched_create(&s, &c, 0) == LMX_ERR_ARG && strstr(lmx_errmsg(), "steps"), "0 steps");
    c.steps_offset = 1000;
    CHECK(sched_create(&s, &c, 10) == LMX_ERR_ARG && strstr(lmx_errmsg(), "outside"), "index out of table");
    c = cfg_of(SCHED_DDIM, "{\"trained_betas\": [0.1, 0.2]}", 0);
    CHECK(sched_create(&s, &c, 1) == LMX_ERR_ARG && strstr(lmx_errmsg(), "trained_betas"), "trained_betas length");
    sched_config_clear(&c);
    c = sched_config_default(SCHED_DPMPP_2M);
    c.timestep_spacing = SCHED_SPACING_LEADING;
    CHECK(sched_create(&s, &c, 1000) == LMX_ERR_UNSUPPORTED && strstr(lmx_errmsg(), "twice"),
          "repeated first timestep (leading, ratio 0)");
}

static void test_api(void) {
    enum { N = 4 * 8 * 8 };
    float x[N], e[N], y[N];
    lmx_fill_randn(e, N, 3, 1.0f);
    sched *s = make(SCHED_EULER_A, SD15, 10);
    if (!s) return;
    rng_state r, r2;
    rng_init(&r, 42, RNG_PATH_AVX2);
    rng_randn(&r, x, N);
    CHECK(sched_step(s, 1, e, x, N, &r) == LMX_ERR_ARG && strstr(lmx_errmsg(), "expected step 0"), "order");
    CHECK(sched_step(s, 0, e, x, N, NULL) == LMX_ERR_ARG && strstr(lmx_errmsg(), "generator"), "rng needed");
    CHECK(sched_scale_model_input(s, 10, x, y, N) == LMX_ERR_ARG, "scale index");
    CHECK(isnan(sched_timestep(s, -1)), "timestep index");
    CHECK_OK(sched_step(s, 0, e, x, N, &r));
    CHECK(sched_step(s, 1, e, x, N / 2, &r) == LMX_ERR_ARG, "size change mid-run");
    /* Euler-a draws one latent per step from the pipeline's generator. */
    for (int i = 1; i < 10; i++) CHECK_OK(sched_step(s, i, e, x, N, &r));
    rng_init(&r2, 42, RNG_PATH_AVX2);
    for (int i = 0; i < 11; i++) rng_randn(&r2, y, N);
    float a, b;
    rng_randn(&r, &a, 1);
    rng_randn(&r2, &b, 1);
    CHECK(a == b, "Euler-a: 1 + 10 latents drawn");
    /* reset: the same run again gives the same bits */
    float x1[N];
    memcpy(x1, x, sizeof x);
    CHECK(sched_step(s, 0, e, x, N, &r) == LMX_ERR_ARG, "a finished run needs a reset");
    sched_reset(s);
    rng_init(&r, 42, RNG_PATH_AVX2);
    rng_randn(&r, x, N);
    for (int i = 0; i < 10; i++) CHECK_OK(sched_step(s, i, e, x, N, &r));
    CHECK(!memcmp(x, x1, sizeof x), "reset reproduces the run");
    sched_free(s);

    /* diffusers 0.26.3 Euler: one unused latent per step; 0.32.2: none. */
    for (int legacy = 0; legacy < 2; legacy++) {
        sched_config c = cfg_of(SCHED_EULER, SD15, 0);
        c.euler_legacy_noise = legacy;
        CHECK_OK(sched_create(&s, &c, 7));
        rng_init(&r, 5, RNG_PATH_AVX2);
        rng_randn(&r, x, N);
        for (int i = 0; s && i < 7; i++) CHECK_OK(sched_step(s, i, e, x, N, &r));
        rng_init(&r2, 5, RNG_PATH_AVX2);
        for (int i = 0; i < 1 + 7 * legacy; i++) rng_randn(&r2, y, N);
        rng_randn(&r, &a, 1);
        rng_randn(&r2, &b, 1);
        CHECK(a == b, "Euler legacy=%d: generator position", legacy);
        sched_free(s);
    }
    /* sched_reserve allocates up front; the loop then allocates nothing. */
    s = make(SCHED_PNDM, SD15, 5);
    CHECK_OK(sched_reserve(s, N));
    long before = lmx_fault_alloc_count();
    for (int i = 0; s && i < sched_n_calls(s); i++) CHECK_OK(sched_step(s, i, e, x, N, NULL));
    CHECK(lmx_fault_alloc_count() == before, "allocations in the loop: %ld", lmx_fault_alloc_count() - before);
    CHECK(sched_reserve(s, 0) == LMX_ERR_ARG, "reserve 0");
    sched_free(s);
    /* The DPM/DDIM/PNDM identity input scaling and init_noise_sigma = 1. */
    s = make(SCHED_DDIM, SD15, 10);
    CHECK(s && sched_init_noise_sigma(s) == 1.0f, "DDIM init sigma");
    CHECK_OK(sched_scale_model_input(s, 3, x, y, N));
    CHECK(!memcmp(x, y, sizeof x), "identity scaling");
    sched_free(s);
    sched_free(NULL);
    sched_config_clear(NULL);
}

/* Every allocation of create and of the first step fails cleanly. */
static void test_alloc_failures(void) {
    enum { N = 4 * 8 * 8 };
    float x[N], e[N];
    lmx_fill_randn(e, N, 3, 1.0f);
    static const sched_kind kinds[] = {SCHED_DPMPP_2M, SCHED_DDIM, SCHED_EULER, SCHED_EULER_A, SCHED_PNDM};
    for (size_t k = 0; k < LMX_ARRAY_LEN(kinds); k++) {
        int failures = 0, done = 0;
        for (long n = 1; n < 200 && !done; n++) {
            sched_config c = cfg_of(kinds[k], SD15, 0);
            if (kinds[k] == SCHED_DPMPP_2M) c.use_karras_sigmas = 1;
            lmx_fault_set_fail_at(n);
            sched *s = NULL;
            lmx_status st = sched_create(&s, &c, 12);
            rng_state r;
            rng_init(&r, 1, RNG_PATH_AVX2);
            lmx_fill_randn(x, N, 4, 1.0f);
            if (st == LMX_OK) st = sched_step(s, 0, e, x, N, &r);
            lmx_fault_set_fail_at(0);
            if (st == LMX_OK) {
                for (int i = 1; i < sched_n_calls(s); i++) CHECK_OK(sched_step(s, i, e, x, N, &r));
                done = 1;
            } else {
                CHECK(st == LMX_ERR_NOMEM, "%s alloc %ld: %s", sched_kind_name(kinds[k]), n, lmx_errmsg());
                failures++;
            }
            sched_free(s);
            sched_config_clear(&c);
        }
        CHECK(done && failures >= 3, "%s: %d allocation failures exercised", sched_kind_name(kinds[k]), failures);
    }
    /* the JSON reader too */
    static const char tb[] = "{\"trained_betas\": [0.001, 0.002, 0.003]}";
    int ok = 0;
    for (long n = 1; n < 20 && !ok; n++) {
        sched_config c;
        lmx_fault_set_fail_at(n);
        lmx_status st = sched_config_from_json(&c, SCHED_DDIM, tb, strlen(tb), "tb.json", 0);
        lmx_fault_set_fail_at(0);
        CHECK(st == LMX_OK || st == LMX_ERR_NOMEM, "json alloc %ld: %s", n, lmx_errmsg());
        ok = st == LMX_OK && c.n_trained_betas == 3;
        sched_config_clear(&c);
    }
    CHECK(ok, "json with trained betas under fault injection");
}

int main(void) {
    test_table_values();
    test_dpm_vectors();
    test_timestep_lists();
    test_config();
    test_api();
    test_alloc_failures();
    return lmx_test_finish();
}
