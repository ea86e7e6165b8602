/*
 * test_kernels.c - the non-GEMM kernels of ops.h (norm.c, attention.c,
 * eltwise.c, resample.c, embed.c, layout.c) against their naive twins in
 * ops/ref/ref_kernels.c (double arithmetic, full softmax rows), on random
 * and odd shapes, in place where ops.h allows it, through strided views,
 * and for bitwise determinism across thread counts.
 *
 * Tolerances (|a - r| <= atol + rtol·|r|; inputs N(0,1) unless stated):
 *   group_norm, layer_norm     atol 1e-5, rtol 1e-5 (outputs O(1); fp32
 *                              apply step; inputs offset by +3 / +100 to
 *                              exercise the variance)
 *   softmax                    atol 1e-7, rtol 1e-5
 *   attention                  atol 2e-6, rtol 1e-5 (outputs O(0.1-1));
 *                              atol 5e-5, rtol 1e-4 for scores of
 *                              magnitude ~100 (their fp32 rounding)
 *   silu, quick_gelu, gelu_tanh <= 4 ulp, gelu_erf <= 6 ulp of the twin
 *                              (double evaluation of the torch formula after
 *                              its fp32 argument; exhaustive maxima over all
 *                              floats are 2, 2, 2 and 5 ulp), results below
 *                              1e-37 in magnitude exempt;
 *   geglu                      <= 8 ulp (one more product)
 *   resize bilinear/bicubic    atol 2e-6, rtol 2e-6 (values in [0, 1])
 *   timestep embedding         atol 2e-4 (the twin uses libm's fp32
 *                              expf/sinf/cosf: 1 ulp in f_j moves
 *                              sin(t·f_j) by up to |t·f_j|·2^-24)
 *   nearest, add, scale, concat, layout: exact.
 * Set LMX_TEST_VERBOSE=1 to print every comparison and the ulp figures.
 */
#include <float.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "ops/ops.h"
#include "ops/ref/ref.h"

static float *randn(int64_t n, uint64_t seed, float scale, float offset) {
    float *p = lmx_test_randn(n, seed, scale);
    for (int64_t i = 0; i < n; i++) p[i] += offset;
    return p;
}

static float *dup(const float *x, int64_t n) {
    float *p = lmx_test_floats(n);
    memcpy(p, x, sizeof(float) * (size_t)n);
    return p;
}

static int bits_equal(const float *a, const float *b, int64_t n) {
    return memcmp(a, b, sizeof(float) * (size_t)n) == 0;
}

/* ulp of the fp32 number nearest to r */
static double ulp_of(double r) {
    r = fabs(r);
    if (r < FLT_MIN) return ldexp(1.0, -149);
    int e;
    frexp(r, &e);
    return ldexp(1.0, e - 24);
}

/* Max ulp error of a against the double-precision twin, both fp32 here:
 * ref was rounded once, so this is within 0.5 ulp of the true error. */
static double max_ulp(const float *a, const float *r, int64_t n, int64_t *worst) {
    double m = 0;
    *worst = -1;
    for (int64_t i = 0; i < n; i++) {
        double e;
        if (isnan(r[i]) || isnan(a[i])) e = isnan(r[i]) == isnan(a[i]) ? 0 : INFINITY;
        else if (isinf(r[i]) || isinf(a[i])) e = a[i] == r[i] ? 0 : INFINITY;
        else if (fabs((double)a[i] - r[i]) <= 1e-37) e = 0;
        else e = fabs((double)a[i] - r[i]) / ulp_of(r[i]);
        if (e > m) {
            m = e;
            *worst = i;
        }
    }
    return m;
}

/* ---------------------------------------------------------------- norms */

static void gn_case(int64_t B, int64_t HW, int64_t C, int64_t G, int silu, int inplace,
                    int affine, float offset, uint64_t seed) {
    int64_t n = B * HW * C;
    float *x = randn(n, seed, 1.0f, offset);
    float *g = randn(C, seed + 1, 0.5f, 1.0f), *be = randn(C, seed + 2, 0.5f, 0.0f);
    float *y = lmx_test_floats(n), *r = lmx_test_floats(n);
    ref_group_norm(x, r, B, HW, C, G, affine ? g : NULL, affine ? be : NULL, 1e-5f, silu);
    if (inplace) {
        memcpy(y, x, sizeof(float) * (size_t)n);
        op_group_norm(y, y, B, HW, C, G, affine ? g : NULL, affine ? be : NULL, 1e-5f, silu);
    } else {
        op_group_norm(x, y, B, HW, C, G, affine ? g : NULL, affine ? be : NULL, 1e-5f, silu);
    }
    char what[128];
    snprintf(what, sizeof what, "group_norm B=%lld HW=%lld C=%lld G=%lld silu=%d inplace=%d",
             (long long)B, (long long)HW, (long long)C, (long long)G, silu, inplace);
    lmx_cmp_f32(what, y, r, n, 1e-5, 1e-5);
    lmx_free(x);
    lmx_free(g);
    lmx_free(be);
    lmx_free(y);
    lmx_free(r);
}

static void test_group_norm(void) {
    gn_case(2, 64, 320, 32, 0, 0, 1, 0.0f, 1);
    gn_case(2, 64, 320, 32, 1, 1, 1, 3.0f, 2);
    gn_case(3, 1, 33, 3, 1, 0, 1, 0.0f, 3);       /* HW = 1, odd C */
    gn_case(1, 1000, 48, 1, 0, 1, 1, 100.0f, 4);  /* one group, big mean */
    gn_case(2, 4103, 64, 32, 1, 0, 1, 0.5f, 5);   /* many chunks, ragged */
    gn_case(1, 20, 1040, 1, 0, 0, 1, 0.0f, 6);    /* a group wider than a slice */
    gn_case(1, 300, 640, 640, 0, 0, 0, 0.0f, 7);  /* G = C, no affine: group slices */
    gn_case(8, 1024, 96, 32, 1, 1, 1, -2.0f, 8);  /* batch slices */
    gn_case(1, 17, 7, 7, 0, 0, 1, 0.0f, 9);       /* one channel per group */
}

static void ln_case(int64_t M, int64_t C, int affine, int inplace, float offset, uint64_t seed) {
    int64_t n = M * C;
    float *x = randn(n, seed, 1.0f, offset);
    float *g = randn(C, seed + 1, 0.5f, 1.0f), *be = randn(C, seed + 2, 0.5f, 0.0f);
    float *y = lmx_test_floats(n), *r = lmx_test_floats(n);
    ref_layer_norm(x, r, M, C, affine ? g : NULL, affine ? be : NULL, 1e-5f);
    if (inplace) {
        memcpy(y, x, sizeof(float) * (size_t)n);
        op_layer_norm(y, y, M, C, affine ? g : NULL, affine ? be : NULL, 1e-5f);
    } else {
        op_layer_norm(x, y, M, C, affine ? g : NULL, affine ? be : NULL, 1e-5f);
    }
    char what[96];
    snprintf(what, sizeof what, "layer_norm M=%lld C=%lld affine=%d inplace=%d", (long long)M,
             (long long)C, affine, inplace);
    lmx_cmp_f32(what, y, r, n, 1e-5, 1e-5);
    lmx_free(x);
    lmx_free(g);
    lmx_free(be);
    lmx_free(y);
    lmx_free(r);
}

static void test_layer_norm(void) {
    ln_case(77, 768, 1, 0, 0.0f, 11);
    ln_case(77, 768, 1, 1, 100.0f, 12);
    ln_case(5, 33, 0, 0, 3.0f, 13);
    ln_case(1, 1, 1, 0, 0.0f, 14); /* var = 0: y = beta */
    ln_case(300, 1280, 1, 1, -1.0f, 15);
    ln_case(3, 17, 1, 0, 0.0f, 16);
}

static void sm_case(int64_t M, int64_t N, int inplace, int with_inf, uint64_t seed) {
    int64_t n = M * N;
    float *x = randn(n, seed, 3.0f, 0.0f);
    if (with_inf)
        for (int64_t m = 0; m < M; m++)
            for (int64_t j = m % 3 + 1; j < N; j += 3) x[m * N + j] = -INFINITY;
    float *y = lmx_test_floats(n), *r = lmx_test_floats(n);
    ref_softmax(x, r, M, N);
    if (inplace) {
        memcpy(y, x, sizeof(float) * (size_t)n);
        op_softmax(y, y, M, N);
    } else {
        op_softmax(x, y, M, N);
    }
    char what[96];
    snprintf(what, sizeof what, "softmax M=%lld N=%lld inplace=%d inf=%d", (long long)M,
             (long long)N, inplace, with_inf);
    lmx_cmp_f32(what, y, r, n, 1e-7, 1e-5);
    lmx_free(x);
    lmx_free(y);
    lmx_free(r);
}

static void test_softmax(void) {
    sm_case(3, 1, 0, 0, 21);
    sm_case(10, 77, 1, 0, 22);
    sm_case(7, 1000, 0, 1, 23);
    sm_case(2000, 33, 1, 1, 24);
}

/* ------------------------------------------------------------ attention */

typedef struct at_case {
    int64_t B, Lq, Lk, H, D;
    int causal;
    float scale;       /* 0: 1/sqrt(D) */
    double atol, rtol; /* 0: 2e-6, 1e-5 */
} at_case;

/* Dense q, k, v of their own. */
static void attn_dense(const at_case *c, uint64_t seed) {
    int64_t C = c->H * c->D;
    int64_t nq = c->B * c->Lq * C, nk = c->B * c->Lk * C;
    float scale = c->scale != 0 ? c->scale : 1.0f / sqrtf((float)c->D);
    float *q = randn(nq, seed, 1.0f, 0), *k = randn(nk, seed + 1, 1.0f, 0),
          *v = randn(nk, seed + 2, 1.0f, 0);
    float *o = lmx_test_floats(nq), *r = lmx_test_floats(nq);
    CHECK_OK(op_attention(NULL, q, C, c->Lq * C, k, C, c->Lk * C, v, C, c->Lk * C, o, C,
                          c->Lq * C, c->B, c->Lq, c->Lk, c->H, c->D, scale, c->causal));
    ref_attention(q, C, c->Lq * C, k, C, c->Lk * C, v, C, c->Lk * C, r, C, c->Lq * C, c->B,
                  c->Lq, c->Lk, c->H, c->D, scale, c->causal);
    char what[128];
    snprintf(what, sizeof what, "attention B=%lld Lq=%lld Lk=%lld H=%lld D=%lld causal=%d s=%g",
             (long long)c->B, (long long)c->Lq, (long long)c->Lk, (long long)c->H,
             (long long)c->D, c->causal, scale);
    lmx_cmp_f32(what, o, r, nq, c->atol != 0 ? c->atol : 2e-6, c->rtol != 0 ? c->rtol : 1e-5);

    /* Same bits through a context (its scratch slot), twice. */
    op_ctx *ctx = NULL;
    CHECK_OK(op_ctx_create(&ctx));
    float *oc = lmx_test_floats(nq);
    for (int rep = 0; ctx && rep < 2; rep++) {
        CHECK_OK(op_attention(ctx, q, C, c->Lq * C, k, C, c->Lk * C, v, C, c->Lk * C, oc, C,
                              c->Lq * C, c->B, c->Lq, c->Lk, c->H, c->D, scale, c->causal));
        CHECK(bits_equal(o, oc, nq), "%s: bits differ with a context", what);
    }
    op_ctx_free(ctx);
    lmx_free(oc);

    /* Same bits with 1, 2 and 3 threads. */
    int nt = omp_get_max_threads();
    float *o1 = lmx_test_floats(nq);
    for (int t = 1; t <= 3; t++) {
        omp_set_num_threads(t);
        CHECK_OK(op_attention(NULL, q, C, c->Lq * C, k, C, c->Lk * C, v, C, c->Lk * C, o1, C,
                              c->Lq * C, c->B, c->Lq, c->Lk, c->H, c->D, scale, c->causal));
        CHECK(bits_equal(o, o1, nq), "%s: bits differ with %d threads", what, t);
    }
    omp_set_num_threads(nt);
    lmx_free(o1);
    lmx_free(q);
    lmx_free(k);
    lmx_free(v);
    lmx_free(o);
    lmx_free(r);
}

/* q, k, v as column views of one fused buffer qkv[B, L, 3·H·D] (self
 * attention), o written into a wider buffer with its own strides; then o
 * written over q in place. */
static void attn_views(int64_t B, int64_t L, int64_t H, int64_t D, int causal, uint64_t seed) {
    int64_t C = H * D, ld = 3 * C, n = B * L * ld;
    float *qkv = randn(n, seed, 1.0f, 0);
    int64_t ldo = C + 5, so = L * ldo + 3;
    float *o = lmx_test_floats(B * so), *r = lmx_test_floats(B * so);
    for (int64_t i = 0; i < B * so; i++) o[i] = r[i] = 7.0f; /* guard values */
    float scale = 1.0f / sqrtf((float)D);
    CHECK_OK(op_attention(NULL, qkv, ld, L * ld, qkv + C, ld, L * ld, qkv + 2 * C, ld, L * ld, o,
                          ldo, so, B, L, L, H, D, scale, causal));
    ref_attention(qkv, ld, L * ld, qkv + C, ld, L * ld, qkv + 2 * C, ld, L * ld, r, ldo, so, B, L,
                  L, H, D, scale, causal);
    char what[128];
    snprintf(what, sizeof what, "attention views B=%lld L=%lld H=%lld D=%lld causal=%d",
             (long long)B, (long long)L, (long long)H, (long long)D, causal);
    lmx_cmp_f32(what, o, r, B * so, 2e-6, 1e-5); /* includes the untouched gaps */

    /* In place: o over q in the fused buffer. */
    CHECK_OK(op_attention(NULL, qkv, ld, L * ld, qkv + C, ld, L * ld, qkv + 2 * C, ld, L * ld, qkv,
                          ld, L * ld, B, L, L, H, D, scale, causal));
    int ok = 1;
    for (int64_t b = 0; b < B && ok; b++)
        for (int64_t i = 0; i < L && ok; i++)
            ok = bits_equal(qkv + b * L * ld + i * ld, o + b * so + i * ldo, C);
    CHECK(ok, "%s: o == q in place differs from the out-of-place result", what);
    lmx_free(qkv);
    lmx_free(o);
    lmx_free(r);
}

static void test_attention(void) {
    static const at_case cases[] = {
        {1, 77, 77, 12, 64, 1, 0, 0, 0},     /* CLIP text */
        {2, 64, 77, 8, 40, 0, 0, 0, 0},      /* UNet cross attention */
        {3, 97, 131, 2, 40, 0, 0, 0, 0},     /* B = 3, Lq != Lk, odd */
        {2, 150, 60, 3, 33, 1, 0, 0, 0},     /* causal with Lq > Lk */
        {1, 60, 150, 1, 7, 1, 0, 0, 0},      /* causal with Lq < Lk */
        {1, 1, 1, 1, 1, 0, 0, 0, 0},         /* L = 1, D = 1 */
        {2, 5, 3, 4, 1, 1, 0, 0, 0},         /* D = 1, causal */
        {1, 1, 300, 2, 9, 0, 0, 0, 0},       /* one query, several key blocks */
        {1, 500, 300, 1, 80, 0, 0, 0, 0},    /* several query super-blocks */
        {1, 130, 260, 1, 512, 0, 0, 0, 0},   /* VAE head size */
        /* Scores up to ~±150: online max rescaling. The fp32 scores carry
         * |s|·2^-24 of rounding (torch's too): P is only good to ~1e-5. */
        {1, 200, 200, 2, 16, 0, 8.0f, 5e-5, 1e-4},
        {1, 49, 257, 3, 160, 1, 0, 0, 0},
    };
    for (size_t i = 0; i < LMX_ARRAY_LEN(cases); i++) attn_dense(&cases[i], 100 + 10 * i);
    attn_views(2, 70, 3, 24, 0, 300);
    attn_views(3, 41, 2, 13, 1, 301);

    /* Argument errors. */
    float buf[16] = {0};
    CHECK(op_attention(NULL, buf, 1, 1, buf, 1, 1, buf, 1, 1, buf, 1, 1, 1, 1, 0, 1, 1, 1.0f, 0) ==
              LMX_ERR_ARG,
          "Lk = 0 must be rejected");
    CHECK(op_attention(NULL, buf, 1, 2, buf, 2, 2, buf, 2, 2, buf, 2, 2, 1, 1, 1, 1, 2, 1.0f, 0) ==
              LMX_ERR_ARG,
          "ldq < H·D must be rejected");
    CHECK_OK(op_attention(NULL, buf, 1, 1, buf, 1, 1, buf, 1, 1, buf, 1, 1, 1, 0, 1, 1, 1, 1.0f, 0));
}

/* ---------------------------------------------------------- elementwise */

/* Inputs: a sweep over [-30, 30], N(0, 4) values and special values. */
static float *ew_inputs(int64_t *n_out) {
    int64_t nsweep = 60001, nr = 4099, ns = 12;
    int64_t n = nsweep + nr + ns;
    float *x = lmx_test_floats(n);
    for (int64_t i = 0; i < nsweep; i++) x[i] = -30.0f + 60.0f * (float)i / (float)(nsweep - 1);
    lmx_fill_randn(x + nsweep, nr, 31, 4.0f);
    const float sp[12] = {0.0f, -0.0f, INFINITY, -INFINITY, NAN, 1e-30f, -1e-30f, 1e-40f,
                          -88.0f, 88.0f, 200.0f, -200.0f};
    memcpy(x + nsweep + nr, sp, sizeof sp);
    *n_out = n;
    return x;
}

typedef void (*ew_fn)(const float *, float *, int64_t);

static void ew_case(const char *name, ew_fn fast, ew_fn ref, double max_ulp_allowed) {
    int64_t n;
    float *x = ew_inputs(&n);
    float *y = lmx_test_floats(n), *r = lmx_test_floats(n);
    fast(x, y, n);
    ref(x, r, n);
    int64_t w;
    double u = max_ulp(y, r, n, &w);
    CHECK(u <= max_ulp_allowed, "%s: %.2f ulp at x=%.9g (ours %.9g, ref %.9g)", name, u, x[w], y[w],
          r[w]);
    if (lmx_test_verbose())
        printf("ok   %s: max %.2f ulp vs double (x=%.9g)\n", name, u, w >= 0 ? x[w] : 0.0);
    /* in place, odd length */
    float *z = dup(x, n);
    fast(z, z, n - 3);
    CHECK(bits_equal(z, y, n - 3), "%s: in place differs", name);
    lmx_free(z);
    lmx_free(x);
    lmx_free(y);
    lmx_free(r);
}

static void test_eltwise(void) {
    ew_case("silu", op_silu, ref_silu, 4.0);
    ew_case("quick_gelu", op_quick_gelu, ref_quick_gelu, 4.0);
    ew_case("gelu_erf", op_gelu_erf, ref_gelu_erf, 6.0); /* exhaustive max: 5 */
    ew_case("gelu_tanh", op_gelu_tanh, ref_gelu_tanh, 4.0);

    /* geglu, odd N */
    int64_t M = 3, N = 37;
    float *x = randn(M * 2 * N, 41, 2.0f, 0), *y = lmx_test_floats(M * N), *r = lmx_test_floats(M * N);
    op_geglu(x, y, M, N);
    ref_geglu(x, r, M, N);
    int64_t w;
    double u = max_ulp(y, r, M * N, &w);
    CHECK(u <= 8.0, "geglu: %.2f ulp at %lld", u, (long long)w);
    if (lmx_test_verbose()) printf("ok   geglu: max %.2f ulp vs double\n", u);
    lmx_free(x);
    lmx_free(y);
    lmx_free(r);

    /* add, add_bcast, scale, concat: exact */
    int64_t n = 1000003;
    float *a = randn(n, 42, 1.0f, 0), *b = randn(n, 43, 1.0f, 0), *c = lmx_test_floats(n);
    op_add(a, b, c, n);
    int ok = 1;
    for (int64_t i = 0; i < n; i++) ok &= c[i] == a[i] + b[i];
    CHECK(ok, "add");
    op_scale(a, 0.18215f, c, n);
    ok = 1;
    for (int64_t i = 0; i < n; i++) ok &= c[i] == a[i] * 0.18215f;
    CHECK(ok, "scale");
    memcpy(c, a, sizeof(float) * (size_t)n);
    op_add(c, b, c, n); /* in place */
    ok = 1;
    for (int64_t i = 0; i < n; i++) ok &= c[i] == a[i] + b[i];
    CHECK(ok, "add in place");
    int64_t Mb = 999, Cb = 1001; /* n = Mb·Cb + 4 */
    op_add_bcast(a, b, c, Mb, Cb);
    ok = 1;
    for (int64_t m = 0; m < Mb; m++)
        for (int64_t j = 0; j < Cb; j++) ok &= c[m * Cb + j] == a[m * Cb + j] + b[j];
    CHECK(ok, "add_bcast");
    int64_t Mc = 5000, Ca = 33, Cc = 64;
    op_concat_channels(a, Ca, b, Cc, c, Mc);
    ok = 1;
    for (int64_t m = 0; m < Mc; m++) {
        for (int64_t j = 0; j < Ca; j++) ok &= c[m * (Ca + Cc) + j] == a[m * Ca + j];
        for (int64_t j = 0; j < Cc; j++) ok &= c[m * (Ca + Cc) + Ca + j] == b[m * Cc + j];
    }
    CHECK(ok, "concat_channels");
    lmx_free(a);
    lmx_free(b);
    lmx_free(c);
}

/* ------------------------------------------------------------- resample */

static void test_nearest(void) {
    int64_t B = 2, H = 5, W = 7, C = 3;
    float *x = randn(B * H * W * C, 51, 1.0f, 0);
    float *y = lmx_test_floats(B * 4 * H * W * C), *r = lmx_test_floats(B * 4 * H * W * C);
    op_upsample_nearest2x(x, y, B, H, W, C);
    ref_upsample_nearest2x(x, r, B, H, W, C);
    CHECK(bits_equal(y, r, B * 4 * H * W * C), "upsample_nearest2x");
    op_resize_nearest(x, y, B, H, W, C, 2 * H, 2 * W);
    CHECK(bits_equal(y, r, B * 4 * H * W * C), "resize_nearest x2 == upsample_nearest2x");
    static const int64_t sz[][2] = {{5, 7}, {3, 4}, {9, 11}, {1, 1}, {13, 3}, {6, 14}};
    for (size_t i = 0; i < LMX_ARRAY_LEN(sz); i++) {
        int64_t Ho = sz[i][0], Wo = sz[i][1];
        op_resize_nearest(x, y, B, H, W, C, Ho, Wo);
        ref_resize_nearest(x, r, B, H, W, C, Ho, Wo);
        CHECK(bits_equal(y, r, B * Ho * Wo * C), "resize_nearest to %lldx%lld", (long long)Ho,
              (long long)Wo);
    }
    lmx_free(x);
    lmx_free(y);
    lmx_free(r);
}

static void rs_case(int cubic, int aa, int64_t B, int64_t H, int64_t W, int64_t C, int64_t Ho,
                    int64_t Wo, uint64_t seed) {
    float *x = lmx_test_floats(B * H * W * C);
    lmx_fill_uniform(x, B * H * W * C, seed, 0.0f, 1.0f);
    float *y = lmx_test_floats(B * Ho * Wo * C), *r = lmx_test_floats(B * Ho * Wo * C);
    if (cubic) {
        op_resize_bicubic(x, y, B, H, W, C, Ho, Wo, aa);
        ref_resize_bicubic(x, r, B, H, W, C, Ho, Wo, aa);
    } else {
        op_resize_bilinear(x, y, B, H, W, C, Ho, Wo, aa);
        ref_resize_bilinear(x, r, B, H, W, C, Ho, Wo, aa);
    }
    char what[128];
    snprintf(what, sizeof what, "resize %s aa=%d %lldx%lldx%lld -> %lldx%lld",
             cubic ? "bicubic" : "bilinear", aa, (long long)H, (long long)W, (long long)C,
             (long long)Ho, (long long)Wo);
    lmx_cmp_f32(what, y, r, B * Ho * Wo * C, 2e-6, 2e-6);
    if (aa) {
        /* The weight cache is optional: without it, the same bits. */
        float *z = lmx_test_floats(B * Ho * Wo * C);
        lmx_fault_set_fail_at(lmx_fault_alloc_count() + 1);
        if (cubic) op_resize_bicubic(x, z, B, H, W, C, Ho, Wo, aa);
        else op_resize_bilinear(x, z, B, H, W, C, Ho, Wo, aa);
        lmx_fault_set_fail_at(0);
        CHECK(bits_equal(y, z, B * Ho * Wo * C), "%s: differs without the weight cache", what);
        lmx_free(z);
    }
    lmx_free(x);
    lmx_free(y);
    lmx_free(r);
}

static void test_resize(void) {
    for (int cubic = 0; cubic < 2; cubic++)
        for (int aa = 0; aa < 2; aa++) {
            rs_case(cubic, aa, 2, 37, 53, 3, 16, 24, 60 + cubic * 2 + aa);   /* down */
            rs_case(cubic, aa, 1, 9, 6, 5, 23, 17, 64 + cubic * 2 + aa);     /* up */
            rs_case(cubic, aa, 1, 40, 40, 17, 40, 13, 68 + cubic * 2 + aa);  /* one axis */
            rs_case(cubic, aa, 1, 1, 7, 2, 3, 1, 72 + cubic * 2 + aa);       /* size 1 */
        }
    rs_case(1, 1, 1, 700, 9, 3, 3, 5, 80);  /* 233x downscale: wide window path */
    rs_case(0, 1, 1, 5, 1300, 2, 2, 4, 81);
}

/* --------------------------------------------------- embedding, layout */

static void test_timestep_embedding(void) {
    const float t[5] = {999.0f, 981.0f, 500.0f, 1.0f, 0.0f};
    for (int shift = 0; shift < 2; shift++)
        for (int flip = 0; flip < 2; flip++) {
            int64_t dim = 320;
            float *y = lmx_test_floats(5 * dim), *r = lmx_test_floats(5 * dim);
            op_timestep_embedding(t, 5, dim, flip, (float)shift, 10000.0f, y);
            ref_timestep_embedding(t, 5, dim, flip, (float)shift, 10000.0f, r);
            char what[64];
            snprintf(what, sizeof what, "timestep_embedding shift=%d flip=%d", shift, flip);
            lmx_cmp_f32(what, y, r, 5 * dim, 2e-4, 0);
            CHECK(y[4 * dim + (flip ? 0 : 160)] == 1.0f && y[4 * dim + (flip ? 160 : 0)] == 0.0f,
                  "t = 0 gives cos 1, sin 0");
            lmx_free(y);
            lmx_free(r);
        }
}

static void test_layout(void) {
    int64_t B = 2, C = 37, H = 19, W = 23, n = B * C * H * W;
    float *x = randn(n, 91, 1.0f, 0), *y = lmx_test_floats(n), *z = lmx_test_floats(n);
    op_nchw_to_nhwc(x, y, B, C, H, W);
    int ok = 1;
    for (int64_t b = 0; b < B; b++)
        for (int64_t c = 0; c < C; c++)
            for (int64_t p = 0; p < H * W; p++) ok &= y[(b * H * W + p) * C + c] == x[(b * C + c) * H * W + p];
    CHECK(ok, "nchw_to_nhwc");
    op_nhwc_to_nchw(y, z, B, H, W, C);
    CHECK(bits_equal(x, z, n), "nhwc_to_nchw round trip");
    lmx_free(x);
    lmx_free(y);
    lmx_free(z);
}

/* ---------------------------------------------------------- determinism */

static void test_thread_determinism(void) {
    int nt = omp_get_max_threads();
    int64_t B = 2, HW = 1500, C = 128, n = B * HW * C;
    float *x = randn(n, 95, 1.0f, 0.5f), *g = randn(C, 96, 0.5f, 1.0f), *be = randn(C, 97, 0.5f, 0);
    float *y1 = lmx_test_floats(n), *y2 = lmx_test_floats(n);
    for (int k = 0; k < 4; k++) {
        for (int t = 1; t <= 3; t += 2) {
            omp_set_num_threads(t);
            float *y = t == 1 ? y1 : y2;
            if (k == 0) op_group_norm(x, y, B, HW, C, 32, g, be, 1e-6f, 1);
            if (k == 1) op_layer_norm(x, y, B * HW, C, g, be, 1e-5f);
            if (k == 2) op_softmax(x, y, B * HW, C);
            if (k == 3) op_gelu_erf(x, y, n);
        }
        CHECK(bits_equal(y1, y2, n), "kernel %d: bits differ between 1 and 3 threads", k);
    }
    omp_set_num_threads(nt);
    lmx_free(x);
    lmx_free(g);
    lmx_free(be);
    lmx_free(y1);
    lmx_free(y2);
}

int main(void) {
    test_group_norm();
    test_layer_norm();
    test_softmax();
    test_attention();
    test_eltwise();
    test_nearest();
    test_resize();
    test_timestep_embedding();
    test_layout();
    test_thread_determinism();
    return lmx_test_finish();
}
