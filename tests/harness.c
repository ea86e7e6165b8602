/* harness.c - see harness.h. */
#define _XOPEN_SOURCE 700 /* nftw */
#include "harness.h"

#include <ftw.h>
#include <stdlib.h>

#include "ops/ops.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int lmx_test_failures = 0;
int lmx_test_checks = 0;

int lmx_test_verbose(void) {
    const char *v = getenv("LMX_TEST_VERBOSE");
    return v && *v && *v != '0';
}

void lmx_err_stats(const float *a, const float *r, int64_t n, double *max_abs, double *max_ref) {
    double ma = 0, mr = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)r[i]);
        if (d > ma || isnan(d)) ma = isnan(d) ? INFINITY : d;
        if (fabs((double)r[i]) > mr) mr = fabs((double)r[i]);
    }
    *max_abs = ma;
    *max_ref = mr;
}

int lmx_cmp_f32(const char *what, const float *a, const float *r, int64_t n, double atol,
                double rtol) {
    lmx_test_checks++;
    int64_t worst = -1, n_bad = 0;
    double worst_excess = -1, max_abs = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)r[i]);
        double lim = atol + rtol * fabs((double)r[i]);
        if (isnan(a[i]) != isnan(r[i])) d = INFINITY;
        else if (isnan(a[i])) d = 0;
        if (d > max_abs) max_abs = d;
        if (d > lim) n_bad++;
        if (d - lim > worst_excess) {
            worst_excess = d - lim;
            worst = i;
        }
    }
    int ok = n_bad == 0;
    if (!ok || lmx_test_verbose()) {
        fprintf(ok ? stdout : stderr,
                "%s %s: n=%lld max_abs=%.3g bad=%lld worst[%lld] ours=%.9g ref=%.9g (atol=%.1g rtol=%.1g)\n",
                ok ? "ok  " : "FAIL", what, (long long)n, max_abs, (long long)n_bad,
                (long long)worst, worst >= 0 ? a[worst] : 0.0, worst >= 0 ? r[worst] : 0.0, atol,
                rtol);
    }
    if (!ok) lmx_test_failures++;
    return ok;
}

int lmx_cmp_i64(const char *what, const int64_t *a, const int64_t *r, int64_t n) {
    lmx_test_checks++;
    for (int64_t i = 0; i < n; i++) {
        if (a[i] != r[i]) {
            fprintf(stderr, "FAIL %s: first difference at [%lld]: ours=%lld ref=%lld\n", what,
                    (long long)i, (long long)a[i], (long long)r[i]);
            lmx_test_failures++;
            return 0;
        }
    }
    if (lmx_test_verbose()) printf("ok   %s: %lld values equal\n", what, (long long)n);
    return 1;
}

const char *lmx_src_path(const char *rel) {
    static _Thread_local char buf[4][1024];
    static _Thread_local int k = 0;
    k = (k + 1) & 3;
    snprintf(buf[k], sizeof buf[k], "%s/%s", LMX_SOURCE_DIR, rel);
    return buf[k];
}

st_file *lmx_golden_open(const char *path) {
    st_file *f = NULL;
    lmx_test_checks++;
    if (st_open(&f, path) != LMX_OK) {
        fprintf(stderr, "FAIL golden file %s: %s\n  (regenerate with the command in reference/README.md)\n",
                path, lmx_errmsg());
        lmx_test_failures++;
        return NULL;
    }
    return f;
}

float *lmx_golden_f32(st_file *f, const char *name, int64_t *numel_out) {
    if (!f) return NULL;
    const st_tensor *t = st_find(f, name);
    if (!t) {
        fprintf(stderr, "FAIL golden %s: no tensor '%s'\n", st_path(f), name);
        lmx_test_failures++;
        return NULL;
    }
    float *out = NULL;
    if (st_to_f32_alloc(t, &out) != LMX_OK) {
        fprintf(stderr, "FAIL golden %s: %s\n", st_path(f), lmx_errmsg());
        lmx_test_failures++;
        return NULL;
    }
    if (numel_out) *numel_out = t->numel;
    return out;
}

int64_t *lmx_golden_i64(st_file *f, const char *name, int64_t *numel_out) {
    if (!f) return NULL;
    const st_tensor *t = st_find(f, name);
    if (!t || (t->dtype != ST_I64 && t->dtype != ST_I32)) {
        fprintf(stderr, "FAIL golden %s: no integer tensor '%s'\n", st_path(f), name);
        lmx_test_failures++;
        return NULL;
    }
    int64_t *out = lmx_malloc(sizeof(int64_t) * (size_t)(t->numel ? t->numel : 1));
    if (!out) return NULL;
    for (int64_t i = 0; i < t->numel; i++) {
        if (t->dtype == ST_I64) {
            int64_t v;
            memcpy(&v, (const char *)t->data + 8 * i, 8);
            out[i] = v;
        } else {
            int32_t v;
            memcpy(&v, (const char *)t->data + 4 * i, 4);
            out[i] = v;
        }
    }
    if (numel_out) *numel_out = t->numel;
    return out;
}

float *lmx_golden_field(st_file *f, const char *name, const char *field, int64_t *numel_out) {
    char key[256];
    snprintf(key, sizeof key, "%s.%s", name, field);
    return lmx_golden_f32(f, key, numel_out);
}

int64_t *lmx_golden_cfg(st_file *f, const char *name, int64_t want) {
    char key[256];
    int64_t n = 0;
    snprintf(key, sizeof key, "%s.cfg", name);
    int64_t *c = lmx_golden_i64(f, key, &n);
    if (c && n != want) {
        CHECK(0, "%s: %lld config values, expected %lld", key, (long long)n, (long long)want);
        lmx_free(c);
        return NULL;
    }
    return c;
}

float *lmx_test_floats(int64_t n) {
    float *p = lmx_malloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
    LMX_ASSERT(p);
    return p;
}

float *lmx_test_randn(int64_t n, uint64_t seed, float scale) {
    float *p = lmx_test_floats(n);
    lmx_fill_randn(p, n, seed, scale);
    return p;
}

void lmx_round_bf16(float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) x[i] = lmx_bf16_to_f32(lmx_f32_to_bf16(x[i]));
}

double lmx_rel_rms(const float *a, const float *r, int64_t n) {
    double e = 0, s = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = (double)a[i] - r[i];
        e += d * d;
        s += (double)r[i] * r[i];
    }
    return s > 0 ? sqrt(e / s) : sqrt(e);
}

int64_t lmx_ulp_dist(float a, float b) {
    int32_t ia, ib;
    memcpy(&ia, &a, 4);
    memcpy(&ib, &b, 4);
    if (ia < 0) ia = (int32_t)(0x80000000u - (uint32_t)ia);
    if (ib < 0) ib = (int32_t)(0x80000000u - (uint32_t)ib);
    int64_t d = (int64_t)ia - (int64_t)ib;
    return d < 0 ? -d : d;
}

void lmx_fill_randn(float *x, int64_t n, uint64_t seed, float scale) {
    lmx_prng r = {seed};
    for (int64_t i = 0; i < n; i++) x[i] = lmx_prng_normal(&r) * scale;
}

void lmx_fill_uniform(float *x, int64_t n, uint64_t seed, float lo, float hi) {
    lmx_prng r = {seed};
    for (int64_t i = 0; i < n; i++) x[i] = lo + (hi - lo) * lmx_prng_uniform(&r);
}

int lmx_test_finish(void) {
    if (lmx_test_failures) {
        fprintf(stderr, "%d of %d checks FAILED\n", lmx_test_failures, lmx_test_checks);
        return 1;
    }
    printf("all %d checks passed\n", lmx_test_checks);
    return 0;
}

int lmx_test_bf16(void) {
    static int state = -1;
    if (state >= 0) return state;
    state = op_bf16_supported();
    if (state) return 1;
    float w[4] = {1, 2, 3, 4};
    op_linear *l = NULL;
    lmx_status st = op_linear_create(&l, w, NULL, 2, 2, OP_PREC_BF16);
    CHECK(st == LMX_ERR_UNSUPPORTED && !l, "bf16 on a CPU without it: status %s", lmx_status_name(st));
    CHECK(strstr(lmx_errmsg(), "bf16") && strstr(lmx_errmsg(), "AVX-512"), "bf16 message: %s",
          lmx_errmsg());
    op_linear_free(l);
    fprintf(stderr, "skip: bf16 cases (this CPU's instruction set is '%s'; oneDNN has bf16 kernels "
                    "only on AVX-512)\n", op_cpu_isa_name());
    return 0;
}

/* ---- temporary folder ---- */

static char g_tmpdir[512];

const char *lmx_test_tmpdir(const char *base, const char *tag) {
    snprintf(g_tmpdir, sizeof g_tmpdir, "%s/lmx_%s_XXXXXX", base ? base : "/tmp", tag);
    if (!mkdtemp(g_tmpdir)) {
        CHECK(0, "mkdtemp %s failed", g_tmpdir);
        g_tmpdir[0] = 0;
        return NULL;
    }
    return g_tmpdir;
}

const char *lmx_test_tmp(const char *rel) {
    static char buf[8][1024];
    static int k = 0;
    k = (k + 1) & 7;
    snprintf(buf[k], sizeof buf[k], "%s/%s", g_tmpdir, rel);
    return buf[k];
}

static int rm_entry(const char *p, const struct stat *s, int flag, struct FTW *f) {
    (void)s, (void)flag, (void)f;
    return remove(p);
}

void lmx_test_tmpdir_remove(void) {
    if (g_tmpdir[0]) nftw(g_tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    g_tmpdir[0] = 0;
}
