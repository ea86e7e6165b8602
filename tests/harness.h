/*
 * harness.h - the small test harness every test binary uses.
 *
 * A test binary runs its checks, each of which prints a line on failure and
 * counts it; lmx_test_finish() prints a summary and returns the exit code
 * (non-zero on any failure), so `return lmx_test_finish();` ends main().
 *
 * Float comparisons follow the golden-test rule |a - r| <= atol + rtol·|r|
 * and report the max abs error, the worst element's index and both values.
 * Golden tensors are safetensors files under tests/fixtures/ written by
 * reference/gen_*.py; tests open them by path relative to the source tree.
 */
#ifndef LMX_TEST_HARNESS_H
#define LMX_TEST_HARNESS_H

#include <stdint.h>
#include <stdio.h>

#include "core/core.h"
#include "io/safetensors.h"

extern int lmx_test_failures;
extern int lmx_test_checks;

#define CHECK(cond, ...)                                                        \
    do {                                                                        \
        lmx_test_checks++;                                                      \
        if (!(cond)) {                                                          \
            lmx_test_failures++;                                                \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);    \
            fprintf(stderr, __VA_ARGS__);                                       \
            fputc('\n', stderr);                                                \
        }                                                                       \
    } while (0)

/* A status must be LMX_OK; prints lmx_errmsg() otherwise. */
#define CHECK_OK(expr)                                                          \
    do {                                                                        \
        lmx_status st_ = (expr);                                                \
        lmx_test_checks++;                                                      \
        if (st_ != LMX_OK) {                                                    \
            lmx_test_failures++;                                                \
            fprintf(stderr, "FAIL %s:%d: %s -> %s: %s\n", __FILE__, __LINE__,  \
                    #expr, lmx_status_name(st_), lmx_errmsg());                 \
        }                                                                       \
    } while (0)

/* Compare a (ours) against r (reference) elementwise. Returns 1 when every
 * element passes, 0 otherwise (and counts a failure). Always prints one line
 * with the max abs error when verbose or on failure. */
int lmx_cmp_f32(const char *what, const float *a, const float *r, int64_t n, double atol,
                double rtol);
/* Exact equality for integer arrays. */
int lmx_cmp_i64(const char *what, const int64_t *a, const int64_t *r, int64_t n);
/* Max |a - r| and max |r| (for relative-to-max-magnitude tolerances). */
void lmx_err_stats(const float *a, const float *r, int64_t n, double *max_abs, double *max_ref);

/* Open a golden file; a missing file is a failure that says how to
 * regenerate it (the file's own metadata "command" when it exists). */
st_file *lmx_golden_open(const char *path);
/* Fetch a tensor as fp32 (allocated; lmx_free it). Fails the test and
 * returns NULL when absent. numel_out may be NULL. */
float *lmx_golden_f32(st_file *f, const char *name, int64_t *numel_out);
/* Fetch an integer tensor (I32 or I64) as int64. */
int64_t *lmx_golden_i64(st_file *f, const char *name, int64_t *numel_out);

/* Golden tensors named "<name>.<field>" (fp32) and a case's integer
 * configuration "<name>.cfg" of exactly `want` values (NULL, and a failure,
 * otherwise). */
float *lmx_golden_field(st_file *f, const char *name, const char *field, int64_t *numel_out);
int64_t *lmx_golden_cfg(st_file *f, const char *name, int64_t want);

/* Test buffers: n floats (asserts on allocation failure: tests only), and
 * n floats filled with N(0,1)·scale. Free with lmx_free. */
float *lmx_test_floats(int64_t n);
float *lmx_test_randn(int64_t n, uint64_t seed, float scale);
/* Round every element to bf16 and back (the inputs a bf16 kernel sees). */
void lmx_round_bf16(float *x, int64_t n);
/* rms(a - r) / rms(r) (rms(a - r) when r is all zero). */
double lmx_rel_rms(const float *a, const float *r, int64_t n);
/* Distance in units in the last place between two floats (0 for +0/-0). */
int64_t lmx_ulp_dist(float a, float b);

/* Deterministic random fill, N(0,1)·scale. */
void lmx_fill_randn(float *x, int64_t n, uint64_t seed, float scale);
void lmx_fill_uniform(float *x, int64_t n, uint64_t seed, float lo, float hi);

/* Path under the source tree: lmx_src_path("tests/fixtures/x") */
const char *lmx_src_path(const char *rel);

/* 1 when this CPU has oneDNN bf16 kernels. Otherwise 0, after checking
 * (once) that asking for bf16 fails cleanly with LMX_ERR_UNSUPPORTED and a
 * message naming bf16 and AVX-512, and printing one "skip" line: callers
 * then leave out their bf16 cases. */
int lmx_test_bf16(void);

/* A fresh folder <base>/lmx_<tag>_XXXXXX for a test's files (base: NULL =
 * /tmp); NULL (and a failed check) when it cannot be made. lmx_test_tmp(rel)
 * is "<folder>/<rel>" in one of 8 rotating buffers; lmx_test_tmpdir_remove()
 * deletes the folder and everything in it. */
const char *lmx_test_tmpdir(const char *base, const char *tag);
const char *lmx_test_tmp(const char *rel);
void lmx_test_tmpdir_remove(void);

int lmx_test_verbose(void);
int lmx_test_finish(void);

#endif
