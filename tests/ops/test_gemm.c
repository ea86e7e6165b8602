/*
 * test_gemm.c - op_linear_fwd and op_matmul (oneDNN) against their naive
 * twins ref_linear / ref_matmul (double accumulation) on random shapes,
 * including odd sizes, row strides, batches, transposes, alpha/beta, bias,
 * bf16, determinism and argument errors.
 *
 * Tolerances (inputs N(0,1), weights N(0,1)/sqrt(K), so outputs are O(1)):
 *   f32 vs ref:                     atol 1e-4, rtol 1e-4
 *   bf16 vs ref on bf16-rounded x, W: atol 1e-4, rtol 1e-4 (only f32
 *     accumulation differs: checks layouts and conversions exactly)
 *   bf16 vs the f32 ref:            atol 3e-2, rtol 3e-2, and rms error
 *     <= 1e-2 of the rms output (bf16 keeps 8 significant bits).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "ops/ops.h"
#include "ops/ref/ref.h"

#define F32_TOL 1e-4, 1e-4
#define BF16_TOL 3e-2, 3e-2

static op_ctx *g_ctx;

/* Fill a strided [M, N] buffer: the matrix from `src` rows, the gaps with a sentinel. */
static void fill_rows(float *dst, const float *src, int64_t M, int64_t N, int64_t ld, float gap) {
    for (int64_t m = 0; m < M; m++)
        for (int64_t j = 0; j < ld; j++) dst[m * ld + j] = j < N ? src[m * N + j] : gap;
}

static int gaps_intact(const float *y, int64_t M, int64_t N, int64_t ld, float gap) {
    for (int64_t m = 0; m < M; m++)
        for (int64_t j = N; j < ld; j++)
            if (y[m * ld + j] != gap) return 0;
    return 1;
}

/* One linear case: W[N,K], x[M,K] with row stride ldx, y with ldy. */
static void linear_case(int64_t M, int64_t K, int64_t N, int with_bias, float beta, int64_t ldx,
                        int64_t ldy, op_prec prec, uint64_t seed) {
    if (prec == OP_PREC_BF16 && !lmx_test_bf16()) return;
    char what[160];
    snprintf(what, sizeof what, "linear M=%lld K=%lld N=%lld bias=%d beta=%g ldx=%lld ldy=%lld %s",
             (long long)M, (long long)K, (long long)N, with_bias, (double)beta, (long long)ldx,
             (long long)ldy, prec == OP_PREC_BF16 ? "bf16" : "f32");
    int64_t lx = ldx ? ldx : K, ly = ldy ? ldy : N;
    float *w = lmx_test_randn(N * K, seed, 1.0f / sqrtf((float)K));
    float *bias = with_bias ? lmx_test_randn(N, seed + 1, 0.5f) : NULL;
    float *xd = lmx_test_randn(M * K, seed + 2, 1.0f);
    float *y0 = lmx_test_randn(M * N, seed + 3, 1.0f); /* prior y for beta */
    float *x = lmx_test_floats(M * lx), *y = lmx_test_floats(M * ly), *yr = lmx_test_floats(M * ly);
    fill_rows(x, xd, M, K, lx, 1e30f);
    fill_rows(y, y0, M, N, ly, -7.0f);
    memcpy(yr, y, sizeof(float) * (size_t)(M * ly));

    op_linear *l = NULL;
    CHECK_OK(op_linear_create(&l, w, bias, N, K, prec));
    if (!l) goto done;
    CHECK(op_linear_n_out(l) == N && op_linear_n_in(l) == K, "%s: sizes", what);
    CHECK(op_linear_bytes(l) >= (size_t)(N * K * (prec == OP_PREC_BF16 ? 2 : 4)), "%s: bytes %zu",
          what, op_linear_bytes(l));
    /* The caller's copy may be freed (or clobbered) right after create. */
    float *wsave = lmx_test_floats(N * K);
    memcpy(wsave, w, sizeof(float) * (size_t)(N * K));
    memset(w, 0xff, sizeof(float) * (size_t)(N * K));
    CHECK_OK(op_linear_fwd(g_ctx, l, x, ldx, y, ldy, M, beta));
    memcpy(w, wsave, sizeof(float) * (size_t)(N * K));
    lmx_free(wsave);
    CHECK(gaps_intact(y, M, N, ly, -7.0f), "%s: wrote outside the rows", what);

    ref_linear(w, bias, N, K, x, lx, yr, ly, M, beta);
    if (prec == OP_PREC_F32) {
        lmx_cmp_f32(what, y, yr, M * ly, F32_TOL);
    } else {
        /* Loose check against f32, tight against the bf16-rounded problem. */
        char w2[200];
        snprintf(w2, sizeof w2, "%s vs f32", what);
        lmx_cmp_f32(w2, y, yr, M * ly, BF16_TOL);
        double rr = lmx_rel_rms(y, yr, M * ly);
        CHECK(rr <= 1e-2, "%s: bf16 rms relative error %.3g", what, rr);
        float *wb = lmx_test_floats(N * K), *xb = lmx_test_floats(M * lx), *yb = lmx_test_floats(M * ly);
        memcpy(wb, w, sizeof(float) * (size_t)(N * K));
        memcpy(xb, x, sizeof(float) * (size_t)(M * lx));
        lmx_round_bf16(wb, N * K);
        lmx_round_bf16(xb, M * lx);
        fill_rows(yb, y0, M, N, ly, -7.0f);
        ref_linear(wb, bias, N, K, xb, lx, yb, ly, M, beta);
        snprintf(w2, sizeof w2, "%s vs bf16-rounded ref", what);
        lmx_cmp_f32(w2, y, yb, M * ly, F32_TOL);
        lmx_free(wb);
        lmx_free(xb);
        lmx_free(yb);
    }
    /* Deterministic: the same call gives the same bits. */
    float *y2 = lmx_test_floats(M * ly);
    fill_rows(y2, y0, M, N, ly, -7.0f);
    CHECK_OK(op_linear_fwd(g_ctx, l, x, ldx, y2, ldy, M, beta));
    CHECK(!memcmp(y, y2, sizeof(float) * (size_t)(M * ly)), "%s: not bitwise reproducible", what);
    lmx_free(y2);
done:
    op_linear_free(l);
    lmx_free(w);
    lmx_free(bias);
    lmx_free(xd);
    lmx_free(y0);
    lmx_free(x);
    lmx_free(y);
    lmx_free(yr);
}

static void test_linear(void) {
    static const int64_t shapes[][3] = {
        {1, 7, 5},     {3, 33, 17},   {77, 320, 320}, {333, 65, 129}, {5, 1, 1},
        {1, 768, 320}, {77, 768, 96}, {64, 64, 64},   {17, 130, 250},
    };
    uint64_t seed = 100;
    for (size_t i = 0; i < LMX_ARRAY_LEN(shapes); i++) {
        int64_t M = shapes[i][0], K = shapes[i][1], N = shapes[i][2];
        linear_case(M, K, N, 1, 0.0f, 0, 0, OP_PREC_F32, seed += 10);
        linear_case(M, K, N, 0, 1.0f, 0, 0, OP_PREC_F32, seed += 10);
        linear_case(M, K, N, 1, 1.0f, K + 5, N + 3, OP_PREC_F32, seed += 10);
        linear_case(M, K, N, 0, 0.0f, K + 1, 0, OP_PREC_F32, seed += 10);
        linear_case(M, K, N, 1, 0.0f, 0, 0, OP_PREC_BF16, seed += 10);
        linear_case(M, K, N, 1, 1.0f, K + 2, N + 7, OP_PREC_BF16, seed += 10);
    }
    /* Copy path with several row blocks (K + N large enough to split M). */
    linear_case(700, 700, 800, 1, 1.0f, 1400, 900, OP_PREC_F32, 9001);
    linear_case(700, 700, 800, 1, 0.0f, 0, 0, OP_PREC_BF16, 9002);
    /* Other beta values are sum post-ops with that scale. */
    linear_case(9, 11, 13, 1, 0.5f, 0, 0, OP_PREC_F32, 9003);
}

/* One linear, many M: the packed layout must serve every row count. */
static void test_linear_many_m(void) {
    const int64_t K = 96, N = 80;
    static const int64_t Ms[] = {1, 3, 77, 333, 4096, 2, 1};
    float *w = lmx_test_randn(N * K, 7, 1.0f / sqrtf((float)K)), *b = lmx_test_randn(N, 8, 1.0f);
    for (int p = 0; p < 2; p++) {
        op_linear *l = NULL;
        op_prec prec = p ? OP_PREC_BF16 : OP_PREC_F32;
        if (prec == OP_PREC_BF16 && !lmx_test_bf16()) continue;
        CHECK_OK(op_linear_create(&l, w, b, N, K, prec));
        if (!l) continue;
        size_t bytes0 = op_linear_bytes(l);
        for (size_t i = 0; i < LMX_ARRAY_LEN(Ms); i++) {
            int64_t M = Ms[i];
            float *x = lmx_test_randn(M * K, 50 + i, 1.0f), *y = lmx_test_floats(M * N), *yr = lmx_test_floats(M * N);
            CHECK_OK(op_linear_fwd(g_ctx, l, x, 0, y, 0, M, 0.0f));
            ref_linear(w, b, N, K, x, 0, yr, 0, M, 0.0f);
            char what[96];
            snprintf(what, sizeof what, "linear one-object M=%lld %s", (long long)M,
                     p ? "bf16" : "f32");
            if (p)
                lmx_cmp_f32(what, y, yr, M * N, BF16_TOL);
            else
                lmx_cmp_f32(what, y, yr, M * N, F32_TOL);
            lmx_free(x);
            lmx_free(y);
            lmx_free(yr);
        }
        if (lmx_test_verbose())
            printf("linear [%lld, %lld] %s: %zu bytes after create, %zu after all M\n",
                   (long long)N, (long long)K, p ? "bf16" : "f32", bytes0, op_linear_bytes(l));
        op_linear_free(l);
    }
    lmx_free(w);
    lmx_free(b);
}

/* Fill a strided operand region with random values (everything reachable). */
static float *operand(int64_t span, uint64_t seed) { return lmx_test_randn(span, seed, 1.0f); }

static void matmul_case(int64_t batch, int64_t M, int64_t N, int64_t K, float alpha, int ta, int tb,
                        float beta, int64_t lda, int64_t sa, int64_t ldb, int64_t sb, int64_t ldc,
                        int64_t sc, uint64_t seed) {
    char what[200];
    snprintf(what, sizeof what,
             "matmul b=%lld M=%lld N=%lld K=%lld a=%g t=%d%d beta=%g lda=%lld sa=%lld ldb=%lld "
             "sb=%lld ldc=%lld sc=%lld",
             (long long)batch, (long long)M, (long long)N, (long long)K, (double)alpha, ta, tb,
             (double)beta, (long long)lda, (long long)sa, (long long)ldb, (long long)sb,
             (long long)ldc, (long long)sc);
    int64_t arows = ta ? K : M, brows = tb ? N : K;
    int64_t spanA = (batch - 1) * sa + (arows - 1) * lda + (ta ? M : K);
    int64_t spanB = (batch - 1) * sb + (brows - 1) * ldb + (tb ? K : N);
    int64_t spanC = (batch - 1) * sc + (M - 1) * ldc + N;
    float *A = operand(spanA, seed), *B = operand(spanB, seed + 1);
    float *C = operand(spanC, seed + 2), *Cr = lmx_test_floats(spanC);
    if (beta == 0.0f) /* beta = 0 must not read C */
        for (int64_t i = 0; i < spanC; i++) C[i] = (i % 3) ? NAN : C[i];
    memcpy(Cr, C, sizeof(float) * (size_t)spanC);
    CHECK_OK(
        op_matmul(g_ctx, batch, M, N, K, alpha, A, lda, sa, ta, B, ldb, sb, tb, beta, C, ldc, sc));
    ref_matmul(batch, M, N, K, alpha, A, lda, sa, ta, B, ldb, sb, tb, beta, Cr, ldc, sc);
    lmx_cmp_f32(what, C, Cr, spanC, 1e-4 * sqrt((double)K + 1), 1e-4);
    /* Reproducible bits. */
    float *C2 = lmx_test_floats(spanC);
    memcpy(C2, Cr, sizeof(float) * (size_t)spanC);
    if (beta != 0.0f) {
        /* Recompute from the same initial C. */
        lmx_fill_randn(C2, spanC, seed + 2, 1.0f);
        float *C3 = lmx_test_floats(spanC);
        memcpy(C3, C2, sizeof(float) * (size_t)spanC);
        CHECK_OK(op_matmul(g_ctx, batch, M, N, K, alpha, A, lda, sa, ta, B, ldb, sb, tb, beta, C2,
                           ldc, sc));
        CHECK_OK(op_matmul(g_ctx, batch, M, N, K, alpha, A, lda, sa, ta, B, ldb, sb, tb, beta, C3,
                           ldc, sc));
        CHECK(!memcmp(C2, C3, sizeof(float) * (size_t)spanC), "%s: not reproducible", what);
        lmx_free(C3);
    }
    lmx_free(C2);
    lmx_free(A);
    lmx_free(B);
    lmx_free(C);
    lmx_free(Cr);
}

static void test_matmul(void) {
    uint64_t seed = 5000;
    static const int64_t dims[][3] = {{1, 1, 1},    {5, 3, 7},   {77, 40, 64},
                                      {64, 77, 40}, {3, 333, 2}, {33, 17, 129}};
    for (size_t i = 0; i < LMX_ARRAY_LEN(dims); i++) {
        int64_t M = dims[i][0], N = dims[i][1], K = dims[i][2];
        for (int t = 0; t < 4; t++) {
            int ta = t & 1, tb = t >> 1;
            int64_t lda = ta ? M : K, ldb = tb ? K : N;
            /* dense, single */
            matmul_case(1, M, N, K, 1.0f, ta, tb, 0.0f, lda, 0, ldb, 0, N, 0, seed += 7);
            /* padded rows, alpha, beta */
            matmul_case(1, M, N, K, 0.125f, ta, tb, 1.0f, lda + 3, 0, ldb + 1, 0, N + 2, 0,
                        seed += 7);
            /* dense batch */
            matmul_case(3, M, N, K, 1.0f, ta, tb, 0.5f, lda, M * K, ldb, K * N, N, M * N,
                        seed += 7);
            /* batch with gaps between matrices and padded rows */
            matmul_case(2, M, N, K, -2.0f, ta, tb, 0.0f, lda + 1, (lda + 1) * (ta ? K : M) + 5,
                        ldb + 2, (ldb + 2) * (tb ? N : K) + 3, N + 1, (N + 1) * M + 4, seed += 7);
            /* broadcast B over the batch (stride 0) */
            matmul_case(3, M, N, K, 1.0f, ta, tb, 1.0f, lda, M * K, ldb, 0, N, M * N, seed += 7);
            /* broadcast A */
            matmul_case(2, M, N, K, 1.0f, ta, tb, 0.0f, lda, 0, ldb, K * N, N, M * N, seed += 7);
        }
    }
    /* Attention-style: heads interleaved in channels. q, k: [L, H·D] rows, one
     * head per batch entry at offset h·D; scores [H, Lq, Lk] dense. */
    {
        const int64_t H = 4, D = 8, Lq = 37, Lk = 77;
        const float scale = 1.0f / sqrtf((float)D);
        matmul_case(H, Lq, Lk, D, scale, 0, 1, 0.0f, H * D, D, H * D, D, Lk, Lq * Lk, 42);
        /* P·V written back interleaved: o[Lq, H·D] with sc = D, ldc = H·D. */
        matmul_case(H, Lq, D, Lk, 1.0f, 0, 0, 0.0f, Lk, Lq * Lk, H * D, D, H * D, D, 43);
        /* A fused qkv buffer [L, 3·H·D]. */
        matmul_case(H, Lq, Lq, D, scale, 0, 1, 0.0f, 3 * H * D, D, 3 * H * D, D, Lq, Lq * Lq, 44);
    }
    /* K = 0: C = beta·C. */
    {
        float C[6] = {1, 2, 3, 4, 5, 6}, A[1] = {0}, B[1] = {0};
        CHECK_OK(op_matmul(g_ctx, 1, 2, 3, 0, 1.0f, A, 1, 0, 0, B, 3, 0, 0, 0.5f, C, 3, 0));
        CHECK(C[0] == 0.5f && C[5] == 3.0f, "K=0 with beta: %g %g", C[0], C[5]);
        CHECK_OK(op_matmul(g_ctx, 1, 2, 3, 0, 1.0f, A, 1, 0, 0, B, 3, 0, 0, 0.0f, C, 3, 0));
        CHECK(C[0] == 0.0f && C[5] == 0.0f, "K=0 without beta");
    }
}

/* Same bits from a fresh context (primitives JIT-compiled again); correct
 * results with another thread count (its own primitives). */
static void test_threads_and_contexts(void) {
    const int64_t M = 333, K = 320, N = 640;
    float *w = lmx_test_randn(N * K, 71, 1.0f / sqrtf((float)K)), *b = lmx_test_randn(N, 72, 1.0f);
    float *x = lmx_test_randn(M * K, 73, 1.0f), *y1 = lmx_test_floats(M * N), *y2 = lmx_test_floats(M * N);
    float *yr = lmx_test_floats(M * N);
    op_linear *l = NULL;
    op_ctx *c2 = NULL;
    CHECK_OK(op_linear_create(&l, w, b, N, K, OP_PREC_F32));
    CHECK_OK(op_ctx_create(&c2));
    if (l && c2) {
        ref_linear(w, b, N, K, x, 0, yr, 0, M, 0.0f);
        CHECK_OK(op_linear_fwd(g_ctx, l, x, 0, y1, 0, M, 0.0f));
        CHECK_OK(op_linear_fwd(c2, l, x, 0, y2, 0, M, 0.0f));
        CHECK(!memcmp(y1, y2, sizeof(float) * (size_t)(M * N)), "fresh context: other bits");
        for (int nt = 1; nt <= 3; nt++) {
            lmx_set_threads(nt);
            CHECK_OK(op_linear_fwd(g_ctx, l, x, 0, y1, 0, M, 0.0f));
            CHECK_OK(op_linear_fwd(g_ctx, l, x, 0, y2, 0, M, 0.0f));
            char what[64];
            snprintf(what, sizeof what, "linear with %d threads", nt);
            lmx_cmp_f32(what, y1, yr, M * N, F32_TOL);
            CHECK(!memcmp(y1, y2, sizeof(float) * (size_t)(M * N)), "%s: not reproducible", what);
            /* op_matmul too (the transposed-B view of the same weights). */
            CHECK_OK(op_matmul(g_ctx, 1, M, N, K, 1.0f, x, K, 0, 0, w, K, 0, 1, 0.0f, y1, N, 0));
            for (int64_t m = 0; m < M; m++)
                for (int64_t n = 0; n < N; n++) y1[m * N + n] += b[n];
            snprintf(what, sizeof what, "matmul with %d threads", nt);
            lmx_cmp_f32(what, y1, yr, M * N, F32_TOL);
        }
        lmx_set_threads(2);
    }
    op_ctx_free(c2);
    op_linear_free(l);
    lmx_free(w);
    lmx_free(b);
    lmx_free(x);
    lmx_free(y1);
    lmx_free(y2);
    lmx_free(yr);
}

static void test_errors(void) {
    float w[6] = {0}, x[6] = {0}, y[6] = {0};
    op_linear *l = NULL;
    CHECK(op_linear_create(&l, w, NULL, 0, 3, OP_PREC_F32) == LMX_ERR_SHAPE, "N=0 accepted");
    CHECK(op_linear_create(&l, NULL, NULL, 2, 3, OP_PREC_F32) == LMX_ERR_ARG, "NULL w accepted");
    CHECK(op_linear_create(&l, w, NULL, 2, 3, (op_prec)7) == LMX_ERR_ARG, "bad prec accepted");
    CHECK(l == NULL, "out set on failure");
    CHECK_OK(op_linear_create(&l, w, NULL, 2, 3, OP_PREC_F32));
    lmx_status st = op_linear_fwd(g_ctx, l, x, 2, y, 0, 2, 0.0f);
    CHECK(st == LMX_ERR_ARG && strstr(lmx_errmsg(), "ldx=2"), "ldx < K: %s", lmx_errmsg());
    CHECK(op_linear_fwd(NULL, l, x, 0, y, 0, 2, 0.0f) == LMX_ERR_ARG, "NULL ctx accepted");
    CHECK_OK(op_linear_fwd(g_ctx, l, NULL, 0, NULL, 0, 0, 0.0f)); /* M = 0: nothing to do */
    op_linear_free(l);
    op_linear_free(NULL);
    st = op_matmul(g_ctx, 1, 2, 2, 3, 1.0f, x, 2, 0, 0, w, 2, 0, 0, 0.0f, y, 2, 0);
    CHECK(st == LMX_ERR_ARG && strstr(lmx_errmsg(), "lda=2"), "lda < K: %s", lmx_errmsg());
    st = op_matmul(g_ctx, -1, 2, 2, 3, 1.0f, x, 3, 0, 0, w, 2, 0, 0, 0.0f, y, 2, 0);
    CHECK(st == LMX_ERR_ARG, "negative batch accepted");
    /* Allocation failure inside create is reported, not fatal. */
    for (long n = 1; n <= 4; n++) {
        lmx_fault_set_fail_at(n);
        l = NULL;
        st = op_linear_create(&l, w, w, 2, 3, OP_PREC_F32);
        lmx_fault_set_fail_at(0);
        CHECK(st == LMX_OK || st == LMX_ERR_NOMEM, "alloc fault %ld: %s", n, lmx_status_name(st));
        CHECK((st == LMX_OK) == (l != NULL), "alloc fault %ld: out", n);
        op_linear_free(l);
    }
}

int main(void) {
    if (getenv("LMX_DEBUG")) lmx_log_set(LMX_LOG_DEBUG, NULL, NULL);
    lmx_set_threads(2);
    CHECK_OK(op_ctx_create(&g_ctx));
    if (!g_ctx) return lmx_test_finish();
    test_linear();
    test_linear_many_m();
    test_matmul();
    test_threads_and_contexts();
    test_errors();
    if (lmx_test_verbose()) printf("context scratch: %zu bytes\n", op_ctx_bytes(g_ctx));
    op_ctx_free(g_ctx);
    return lmx_test_finish();
}
