/*
 * bench_ops.c - GFLOP/s and % of peak of the oneDNN-backed kernels (op_conv2d,
 * op_linear) on the main shapes of the SD1.5 UNet at 512x512 (64x64 latents)
 * and of the CLIP text encoder.
 *
 * Columns per row (median of --reps timed runs after --warmup runs; the
 * first call, which creates and JIT-compiles the primitive, is reported
 * separately as "1st ms"):
 *   f32      op_conv2d / op_linear, fp32, NHWC activations (the engine's path)
 *   wino     op_conv2d with OP_CONV_WINOGRAD (3x3 stride 1 only), including
 *            its NHWC <-> nChw16c activation reorders; effective GFLOP/s
 *            (direct-conv FLOPs / time)
 *   bf16     OP_PREC_BF16 (src converted to bf16 each call), % of bf16 peak
 *   blk      raw oneDNN direct conv with activations already in blocked
 *            nChw16c (what an engine kept blocked end to end would get), and
 *            the cost of reordering the activations NHWC -> nChw16c -> NHWC
 *            around it ("+reo", the price at module boundaries)
 * Peaks: the nominal 234 GFLOP/s fp32 / 468 bf16 of the 2-core Zen 4 (see
 * docs/benchmarks.md) and a short FMA-loop measurement.
 *
 * Usage: bench_ops [--threads N] [--filter a,b] [--reps N] [--warmup N]
 *                  [--batch B] [--no-wino] [--no-bf16] [--no-blocked] [--list]
 * The machine is shared: check `uptime`; the load average is printed.
 */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#include <oneapi/dnnl/dnnl.h>

#include "ops/ops.h"

#define PEAK_F32 234.0
#define PEAK_BF16 468.0

typedef struct row {
    const char *name;
    int conv; /* 1: conv, 0: linear, 2: op_matmul */
    int64_t H, W, ci, co;
    int k, s, p;
    int64_t M, K, N;
    int64_t ldx, ldy; /* linear row strides (0 = dense) */
    int64_t batch, lda, sa, ldb, sb, ldc, sc;
    int ta, tb;
} row;

#define CONV(n, h, ci, co, k, s, p)                                                                \
    { n, 1, h, h, ci, co, k, s, p, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 }
#define LIN(n, m, k, nn)                                                                           \
    { n, 0, 0, 0, 0, 0, 0, 0, 0, m, k, nn, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 }
#define LINS(n, m, k, nn, lx, ly)                                                                  \
    { n, 0, 0, 0, 0, 0, 0, 0, 0, m, k, nn, lx, ly, 0, 0, 0, 0, 0, 0, 0, 0, 0 }
#define MM(n, b, m, nn, k, lda, sa, ta, ldb, sb, tb, ldc, sc)                                      \
    { n, 2, 0, 0, 0, 0, 0, 0, 0, m, k, nn, 0, 0, b, lda, sa, ldb, sb, ldc, sc, ta, tb }

static const row g_rows[] = {
    CONV("conv3x3 64x64 320->320", 64, 320, 320, 3, 1, 1),
    CONV("conv3x3 64x64 640->320", 64, 640, 320, 3, 1, 1),
    CONV("conv3x3 64x64 960->320", 64, 960, 320, 3, 1, 1),
    CONV("conv3x3 32x32 320->640", 32, 320, 640, 3, 1, 1),
    CONV("conv3x3 32x32 640->640", 32, 640, 640, 3, 1, 1),
    CONV("conv3x3 16x16 640->1280", 16, 640, 1280, 3, 1, 1),
    CONV("conv3x3 16x16 1280->1280", 16, 1280, 1280, 3, 1, 1),
    CONV("conv3x3 8x8 1280->1280", 8, 1280, 1280, 3, 1, 1),
    CONV("conv3x3 64x64 4->320 (conv_in)", 64, 4, 320, 3, 1, 1),
    CONV("down s2 64->32 320", 64, 320, 320, 3, 2, 1),
    CONV("down s2 32->16 640", 32, 640, 640, 3, 2, 1),
    CONV("down s2 16->8 1280", 16, 1280, 1280, 3, 2, 1),
    CONV("conv1x1 64x64 320->320 (proj)", 64, 320, 320, 1, 1, 0),
    CONV("conv1x1 32x32 640->640 (proj)", 32, 640, 640, 1, 1, 0),
    CONV("conv1x1 16x16 1280->1280 (proj)", 16, 1280, 1280, 1, 1, 0),
    CONV("conv1x1 64x64 640->320 (skip)", 64, 640, 320, 1, 1, 0),
    LIN("linear 4096x320->320 (qkv/out)", 4096, 320, 320),
    LIN("linear 4096x320->2560 (geglu)", 4096, 320, 2560),
    LIN("linear 4096x1280->320 (ff out)", 4096, 1280, 320),
    LIN("linear 77x768->320 (xattn k/v)", 77, 768, 320),
    LIN("linear 1024x640->640", 1024, 640, 640),
    LIN("linear 256x1280->1280", 256, 1280, 1280),
    LIN("linear 77x768->3072 (clip fc1)", 77, 768, 3072),
    LIN("linear 77x3072->768 (clip fc2)", 77, 3072, 768),
    LIN("linear 77x768->768 (clip qkv)", 77, 768, 768),
    LINS("linear 4096x320->320 ldy=960", 4096, 320, 320, 0, 960),
    LINS("linear 4096x320->320 ldx=960", 4096, 320, 320, 960, 0),
    /* op_matmul: LoRA side paths (rank 32) and attention-style blocks with
     * heads interleaved in channels (8 heads of 40, 256 query rows). */
    MM("matmul lora down 4096x320->32", 1, 4096, 32, 320, 320, 0, 0, 320, 0, 1, 32, 0),
    MM("matmul lora up 4096x32->320", 1, 4096, 320, 32, 32, 0, 0, 32, 0, 1, 320, 0),
    MM("matmul qk^T 8x256x4096 d40", 8, 256, 4096, 40, 320, 40, 0, 320, 40, 1, 4096, 256 * 4096),
    MM("matmul pv 8x256x40 k4096", 8, 256, 40, 4096, 4096, 256 * 4096, 0, 320, 40, 0, 320, 40),
};

static struct {
    int threads, reps, warmup, batch, wino, bf16, blocked, list;
    const char *filter;
} g_opt = {0, 7, 2, 1, 1, 1, 1, 0, NULL};

/* ---- timing ---- */

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

typedef int (*run_fn)(void *arg); /* 0 on success */

/* Median seconds of reps runs after warmup runs; *first = first call (s). */
static double timeit(run_fn f, void *arg, double *first) {
    double t[64];
    int reps = LMX_MIN(g_opt.reps, 64);
    double t0 = lmx_now();
    if (f(arg)) return -1;
    *first = lmx_now() - t0;
    for (int i = 1; i < g_opt.warmup; i++)
        if (f(arg)) return -1;
    for (int i = 0; i < reps; i++) {
        t0 = lmx_now();
        if (f(arg)) return -1;
        t[i] = lmx_now() - t0;
    }
    qsort(t, (size_t)reps, sizeof t[0], cmp_d);
    return reps % 2 ? t[reps / 2] : 0.5 * (t[reps / 2 - 1] + t[reps / 2]);
}

/* ---- FMA peak ---- */

static double fma_peak(int bf16) {
#if defined(__AVX512F__)
    const long iters = 20000000;
    double best = 0;
    for (int rep = 0; rep < 3; rep++) {
        double t0 = lmx_now();
        float sink = 0;
#pragma omp parallel reduction(+ : sink)
        {
            __m512 acc[12];
            for (int i = 0; i < 12; i++) acc[i] = _mm512_set1_ps(0.001f * (float)i);
            const __m512 a = _mm512_set1_ps(0.9999f), b = _mm512_set1_ps(1e-6f);
#if defined(__AVX512BF16__)
            const __m512bh ab = (__m512bh)_mm512_set1_epi16(0x3f80),
                           bb = (__m512bh)_mm512_set1_epi16(0x3380);
#endif
            if (!bf16) {
                for (long it = 0; it < iters / 10; it++)
                    for (int i = 0; i < 12; i++) acc[i] = _mm512_fmadd_ps(acc[i], a, b);
            } else {
#if defined(__AVX512BF16__)
                for (long it = 0; it < iters / 10; it++)
                    for (int i = 0; i < 12; i++) acc[i] = _mm512_dpbf16_ps(acc[i], ab, bb);
#endif
            }
            __m512 s = acc[0];
            for (int i = 1; i < 12; i++) s = _mm512_add_ps(s, acc[i]);
            sink += _mm512_reduce_add_ps(s);
        }
        double dt = lmx_now() - t0;
        double flop = (double)omp_get_max_threads() * (double)(iters / 10) * 12 * (bf16 ? 64 : 32);
        if (sink == 12345.678f) printf(" ");
        if (flop / dt > best) best = flop / dt;
    }
#if !defined(__AVX512BF16__)
    if (bf16) return 0;
#endif
    return best * 1e-9;
#else
    (void)bf16;
    return 0;
#endif
}

/* ---- runners through the ops API ---- */

typedef struct conv_run {
    op_ctx *ctx;
    op_conv2d *c;
    const float *x;
    float *y;
    int64_t B, H, W;
} conv_run;

static int run_conv(void *a) {
    conv_run *r = a;
    return op_conv2d_fwd(r->ctx, r->c, r->x, r->y, r->B, r->H, r->W, 0.0f) != LMX_OK;
}

typedef struct lin_run {
    op_ctx *ctx;
    op_linear *l;
    const float *x;
    float *y;
    int64_t M, ldx, ldy;
} lin_run;

static int run_lin(void *a) {
    lin_run *r = a;
    return op_linear_fwd(r->ctx, r->l, r->x, r->ldx, r->y, r->ldy, r->M, 0.0f) != LMX_OK;
}

typedef struct mm_run {
    op_ctx *ctx;
    const row *rw;
    const float *a, *b;
    float *c;
} mm_run;

static int run_mm(void *arg) {
    mm_run *r = arg;
    const row *w = r->rw;
    return op_matmul(r->ctx, w->batch, w->M, w->N, w->K, 1.0f, r->a, w->lda, w->sa, w->ta, r->b,
                     w->ldb, w->sb, w->tb, 0.0f, r->c, w->ldc, w->sc) != LMX_OK;
}

/* Elements spanned by a strided operand. */
static int64_t span(int64_t batch, int64_t sbatch, int64_t rows, int64_t ld, int64_t cols) {
    return (batch - 1) * sbatch + (rows - 1) * ld + cols;
}

/* ---- raw oneDNN: direct conv on blocked nChw16c activations ---- */

typedef struct raw_prim {
    dnnl_primitive_t p;
    int n;
    dnnl_exec_arg_t args[5];
} raw_prim;

typedef struct blk_run {
    dnnl_stream_t s;
    raw_prim conv, to_blk, from_blk;
    int with_reorders;
    void *bufs[8];
    dnnl_memory_t mems[8];
    int n_mems;
} blk_run;

static int raw_exec(dnnl_stream_t s, raw_prim *p) {
    if (dnnl_primitive_execute(p->p, s, p->n, p->args) != dnnl_success) return 1;
    return dnnl_stream_wait(s) != dnnl_success;
}

static int run_blk(void *a) {
    blk_run *r = a;
    if (r->with_reorders && raw_exec(r->s, &r->to_blk)) return 1;
    if (raw_exec(r->s, &r->conv)) return 1;
    if (r->with_reorders && raw_exec(r->s, &r->from_blk)) return 1;
    return 0;
}

static dnnl_memory_t blk_mem(blk_run *r, dnnl_engine_t eng, const dnnl_memory_desc_t *md) {
    size_t n = dnnl_memory_desc_get_size(md);
    void *buf = lmx_alloc_aligned(n ? n : 64);
    dnnl_memory_t m = NULL;
    if (!buf) return NULL;
    memset(buf, 0, n);
    if (dnnl_memory_create(&m, md, eng, buf) != dnnl_success) {
        lmx_free(buf);
        return NULL;
    }
    r->bufs[r->n_mems] = buf;
    r->mems[r->n_mems++] = m;
    return m;
}

static void blk_free(blk_run *r) {
    if (r->conv.p) dnnl_primitive_destroy(r->conv.p);
    if (r->to_blk.p) dnnl_primitive_destroy(r->to_blk.p);
    if (r->from_blk.p) dnnl_primitive_destroy(r->from_blk.p);
    for (int i = 0; i < r->n_mems; i++) {
        dnnl_memory_destroy(r->mems[i]);
        lmx_free(r->bufs[i]);
    }
    if (r->s) dnnl_stream_destroy(r->s);
    memset(r, 0, sizeof *r);
}

static int make_reorder(raw_prim *p, dnnl_engine_t eng, dnnl_memory_t from, dnnl_memory_t to) {
    const dnnl_memory_desc_t *a, *b;
    dnnl_primitive_desc_t pd;
    dnnl_memory_get_memory_desc(from, &a);
    dnnl_memory_get_memory_desc(to, &b);
    if (dnnl_reorder_primitive_desc_create(&pd, a, eng, b, eng, NULL) != dnnl_success) return 1;
    int bad = dnnl_primitive_create(&p->p, pd) != dnnl_success;
    dnnl_primitive_desc_destroy(pd);
    p->n = 2;
    p->args[0] = (dnnl_exec_arg_t){DNNL_ARG_FROM, from};
    p->args[1] = (dnnl_exec_arg_t){DNNL_ARG_TO, to};
    return bad;
}

/* Raw conv (direct or Winograd) on blocked nChw16c activations; weights
 * reordered once from a random oihw tensor. */
static int blk_setup(blk_run *r, dnnl_engine_t eng, const row *rw, int64_t B, dnnl_alg_kind_t alg) {
    int64_t Ho = (rw->H + 2 * rw->p - rw->k) / rw->s + 1;
    dnnl_memory_desc_t s, w, d, snhwc, dnhwc, wplain;
    dnnl_dims_t sd = {B, rw->ci, rw->H, rw->W}, wd = {rw->co, rw->ci, rw->k, rw->k};
    dnnl_dims_t dd = {B, rw->co, Ho, Ho}, st = {rw->s, rw->s}, pd_ = {rw->p, rw->p};
    dnnl_convolution_desc_t cd;
    dnnl_primitive_desc_t pd = NULL;
    memset(r, 0, sizeof *r);
    if (dnnl_stream_create(&r->s, eng, dnnl_stream_default_flags) != dnnl_success) return 1;
    dnnl_memory_desc_init_by_tag(&s, 4, sd, dnnl_f32, dnnl_nChw16c);
    dnnl_memory_desc_init_by_tag(&d, 4, dd, dnnl_f32, dnnl_nChw16c);
    dnnl_memory_desc_init_by_tag(&snhwc, 4, sd, dnnl_f32, dnnl_nhwc);
    dnnl_memory_desc_init_by_tag(&dnhwc, 4, dd, dnnl_f32, dnnl_nhwc);
    dnnl_memory_desc_init_by_tag(&w, 4, wd, dnnl_f32, dnnl_format_tag_any);
    dnnl_memory_desc_init_by_tag(&wplain, 4, wd, dnnl_f32, dnnl_oihw);
    if (dnnl_convolution_forward_desc_init(&cd, dnnl_forward_inference, alg, &s, &w, NULL, &d, st,
                                           pd_, pd_) != dnnl_success)
        return 1;
    if (dnnl_primitive_desc_create(&pd, &cd, NULL, eng, NULL) != dnnl_success) return 1;
    const dnnl_memory_desc_t *wmd = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    dnnl_memory_t ms = blk_mem(r, eng, &s), md = blk_mem(r, eng, &d), mw = blk_mem(r, eng, wmd);
    dnnl_memory_t mwp = blk_mem(r, eng, &wplain), mxs = blk_mem(r, eng, &snhwc);
    dnnl_memory_t mxd = blk_mem(r, eng, &dnhwc);
    int bad = !ms || !md || !mw || !mwp || !mxs || !mxd;
    if (!bad) bad = dnnl_primitive_create(&r->conv.p, pd) != dnnl_success;
    dnnl_primitive_desc_destroy(pd);
    if (bad) return 1;
    lmx_prng g = {99};
    float *wp = r->bufs[3], *xs = r->bufs[4];
    for (int64_t i = 0; i < rw->co * rw->ci * rw->k * rw->k; i++)
        wp[i] = lmx_prng_normal(&g) * 0.05f;
    for (int64_t i = 0; i < B * rw->H * rw->W * rw->ci; i++) xs[i] = lmx_prng_normal(&g);
    raw_prim wr;
    memset(&wr, 0, sizeof wr);
    if (make_reorder(&wr, eng, mwp, mw) || raw_exec(r->s, &wr)) return 1;
    dnnl_primitive_destroy(wr.p);
    if (make_reorder(&r->to_blk, eng, mxs, ms) || make_reorder(&r->from_blk, eng, md, mxd))
        return 1;
    if (raw_exec(r->s, &r->to_blk)) return 1;
    r->conv.n = 3;
    r->conv.args[0] = (dnnl_exec_arg_t){DNNL_ARG_SRC, ms};
    r->conv.args[1] = (dnnl_exec_arg_t){DNNL_ARG_WEIGHTS, mw};
    r->conv.args[2] = (dnnl_exec_arg_t){DNNL_ARG_DST, md};
    return 0;
}

static int run_reorders(void *a) {
    blk_run *r = a;
    return raw_exec(r->s, &r->to_blk) || raw_exec(r->s, &r->from_blk);
}

/* ---- the table ---- */

static int selected(const char *name) {
    if (!g_opt.filter) return 1;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", g_opt.filter);
    for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ","))
        if (*tok && strstr(name, tok)) return 1;
    return 0;
}

static void loadavg(char *buf, size_t n) {
    FILE *f = fopen("/proc/loadavg", "r");
    buf[0] = 0;
    if (f) {
        if (!fgets(buf, (int)n, f)) buf[0] = 0;
        fclose(f);
    }
    buf[strcspn(buf, "\n")] = 0;
}

static void cell(double gflop, double sec, double peak) {
    if (sec <= 0)
        printf(" %6s %4s", "-", "-");
    else
        printf(" %6.1f %3.0f%%", gflop / sec, 100.0 * gflop / sec / peak);
}

static dnnl_engine_t g_eng;

static int bench_row(op_ctx *ctx, const row *rw) {
    const int64_t B = g_opt.batch;
    double gflop, t_f32 = -1, t_wino = -1, t_bf16 = -1, t_blk = -1, t_wblk = -1, t_reo = -1;
    double first = 0, first_f32 = 0;
    size_t wb_f32 = 0, wb_wino = 0, wb_bf16 = 0;
    int rc = 0;
    float *x = NULL, *y = NULL, *w = NULL;
    if (rw->conv == 1) {
        int64_t Ho = (rw->H + 2 * rw->p - rw->k) / rw->s + 1;
        gflop = 2e-9 * (double)B * Ho * Ho * rw->co * rw->ci * rw->k * rw->k;
        int64_t nx = B * rw->H * rw->W * rw->ci, ny = B * Ho * Ho * rw->co;
        int64_t nw = rw->co * rw->ci * rw->k * rw->k;
        x = lmx_alloc_aligned(sizeof(float) * (size_t)nx);
        y = lmx_alloc_aligned(sizeof(float) * (size_t)ny);
        w = lmx_alloc_aligned(sizeof(float) * (size_t)nw);
        if (!x || !y || !w) goto oom;
        lmx_prng g = {1};
        for (int64_t i = 0; i < nx; i++) x[i] = lmx_prng_normal(&g);
        for (int64_t i = 0; i < nw; i++) w[i] = lmx_prng_normal(&g) * 0.05f;
        for (int mode = 0; mode < 3; mode++) {
            if ((mode == 1 && (!g_opt.wino || rw->k != 3 || rw->s != 1)) ||
                (mode == 2 && !g_opt.bf16))
                continue;
            op_conv2d *c = NULL;
            if (op_conv2d_create(&c, w, w, rw->co, rw->ci, rw->k, rw->k, rw->s, rw->p,
                                 mode == 2 ? OP_PREC_BF16 : OP_PREC_F32,
                                 mode == 1 ? OP_CONV_WINOGRAD : 0) != LMX_OK) {
                fprintf(stderr, "%s: %s\n", rw->name, lmx_errmsg());
                rc = 1;
                continue;
            }
            conv_run r = {ctx, c, x, y, B, rw->H, rw->W};
            double t = timeit(run_conv, &r, &first);
            if (t < 0) {
                fprintf(stderr, "%s: %s\n", rw->name, lmx_errmsg());
                rc = 1;
            }
            size_t wb = op_conv2d_bytes(c);
            if (mode == 0) t_f32 = t, wb_f32 = wb, first_f32 = first;
            if (mode == 1) t_wino = t, wb_wino = wb;
            if (mode == 2) t_bf16 = t, wb_bf16 = wb;
            op_conv2d_free(c);
        }
        if (g_opt.blocked && rw->k > 1) {
            for (int wi = 0; wi < 2; wi++) {
                if (wi && (!g_opt.wino || rw->k != 3 || rw->s != 1)) continue;
                blk_run br;
                if (blk_setup(&br, g_eng, rw, B,
                              wi ? dnnl_convolution_winograd : dnnl_convolution_direct) == 0) {
                    double t = timeit(run_blk, &br, &first);
                    if (wi)
                        t_wblk = t;
                    else {
                        t_blk = t;
                        t_reo = timeit(run_reorders, &br, &first);
                    }
                } else {
                    fprintf(stderr, "%s: blocked %s conv unavailable\n", rw->name,
                            wi ? "winograd" : "direct");
                }
                blk_free(&br);
            }
        }
    } else if (rw->conv == 2) {
        gflop = 2e-9 * (double)rw->batch * rw->M * rw->K * rw->N;
        int64_t na =
            span(rw->batch, rw->sa, rw->ta ? rw->K : rw->M, rw->lda, rw->ta ? rw->M : rw->K);
        int64_t nb =
            span(rw->batch, rw->sb, rw->tb ? rw->N : rw->K, rw->ldb, rw->tb ? rw->K : rw->N);
        int64_t nc = span(rw->batch, rw->sc, rw->M, rw->ldc, rw->N);
        x = lmx_alloc_aligned(sizeof(float) * (size_t)na);
        w = lmx_alloc_aligned(sizeof(float) * (size_t)nb);
        y = lmx_alloc_aligned(sizeof(float) * (size_t)nc);
        if (!x || !y || !w) goto oom;
        lmx_prng g = {3};
        for (int64_t i = 0; i < na; i++) x[i] = lmx_prng_normal(&g);
        for (int64_t i = 0; i < nb; i++) w[i] = lmx_prng_normal(&g) * 0.05f;
        mm_run r = {ctx, rw, x, w, y};
        t_f32 = timeit(run_mm, &r, &first_f32);
        if (t_f32 < 0) {
            fprintf(stderr, "%s: %s\n", rw->name, lmx_errmsg());
            rc = 1;
        }
    } else {
        const int64_t lx = rw->ldx ? rw->ldx : rw->K, ly = rw->ldy ? rw->ldy : rw->N;
        gflop = 2e-9 * (double)rw->M * rw->K * rw->N;
        x = lmx_alloc_aligned(sizeof(float) * (size_t)(B * rw->M * lx));
        y = lmx_alloc_aligned(sizeof(float) * (size_t)(B * rw->M * ly));
        w = lmx_alloc_aligned(sizeof(float) * (size_t)(rw->N * rw->K));
        if (!x || !y || !w) goto oom;
        lmx_prng g = {2};
        for (int64_t i = 0; i < B * rw->M * lx; i++) x[i] = lmx_prng_normal(&g);
        for (int64_t i = 0; i < rw->N * rw->K; i++) w[i] = lmx_prng_normal(&g) * 0.05f;
        for (int mode = 0; mode < 2; mode++) {
            if (mode == 1 && !g_opt.bf16) continue;
            op_linear *l = NULL;
            if (op_linear_create(&l, w, w, rw->N, rw->K, mode ? OP_PREC_BF16 : OP_PREC_F32) !=
                LMX_OK) {
                fprintf(stderr, "%s: %s\n", rw->name, lmx_errmsg());
                rc = 1;
                continue;
            }
            lin_run r = {ctx, l, x, y, rw->M * B, rw->ldx, rw->ldy};
            double t = timeit(run_lin, &r, &first);
            if (t < 0) {
                fprintf(stderr, "%s: %s\n", rw->name, lmx_errmsg());
                rc = 1;
            }
            if (mode == 0)
                t_f32 = t, wb_f32 = op_linear_bytes(l), first_f32 = first;
            else
                t_bf16 = t, wb_bf16 = op_linear_bytes(l);
            op_linear_free(l);
        }
        gflop *= (double)B;
    }
    printf("%-32s %6.2f %6.1f %7.2f", rw->name, gflop, first_f32 * 1e3,
           t_f32 > 0 ? t_f32 * 1e3 : 0.0);
    cell(gflop, t_f32, PEAK_F32);
    cell(gflop, t_wino, PEAK_F32);
    cell(gflop, t_bf16, PEAK_BF16);
    cell(gflop, t_blk, PEAK_F32);
    cell(gflop, t_wblk, PEAK_F32);
    if (t_reo > 0)
        printf(" %6.2f", t_reo * 1e3);
    else
        printf(" %6s", "-");
    printf("  %5.1f", wb_f32 / 1048576.0);
    if (wb_wino) printf("/%.1f", wb_wino / 1048576.0);
    printf("/%.1f\n", wb_bf16 / 1048576.0);
    lmx_free(x);
    lmx_free(y);
    lmx_free(w);
    fflush(stdout);
    return rc;
oom:
    fprintf(stderr, "%s: out of memory\n", rw->name);
    lmx_free(x);
    lmx_free(y);
    lmx_free(w);
    return 1;
}

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--threads") && v)
            g_opt.threads = atoi(v), i++;
        else if (!strcmp(a, "--filter") && v)
            g_opt.filter = v, i++;
        else if (!strcmp(a, "--reps") && v)
            g_opt.reps = LMX_MAX(1, atoi(v)), i++;
        else if (!strcmp(a, "--warmup") && v)
            g_opt.warmup = LMX_MAX(1, atoi(v)), i++;
        else if (!strcmp(a, "--batch") && v)
            g_opt.batch = LMX_MAX(1, atoi(v)), i++;
        else if (!strcmp(a, "--no-wino"))
            g_opt.wino = 0;
        else if (!strcmp(a, "--no-bf16"))
            g_opt.bf16 = 0;
        else if (!strcmp(a, "--no-blocked"))
            g_opt.blocked = 0;
        else if (!strcmp(a, "--list"))
            g_opt.list = 1;
        else if (!strcmp(a, "--debug"))
            lmx_log_set(LMX_LOG_DEBUG, NULL, NULL);
        else {
            fprintf(stderr, "usage: bench_ops [--threads N] [--filter a,b] [--reps N] "
                            "[--warmup N] [--batch B] [--no-wino] [--no-bf16] [--no-blocked] "
                            "[--list] [--debug]\n");
            return 2;
        }
    }
    if (g_opt.list) {
        for (size_t i = 0; i < LMX_ARRAY_LEN(g_rows); i++) printf("%s\n", g_rows[i].name);
        return 0;
    }
    lmx_set_threads(g_opt.threads);
    const dnnl_version_t *ver = dnnl_version();
    char load0[128], load1[128];
    loadavg(load0, sizeof load0);
    double pk32 = fma_peak(0), pk16 = fma_peak(1);
    printf("bench_ops: oneDNN %d.%d.%d, %d threads, batch %d, median of %d runs after %d warm-up\n",
           ver->major, ver->minor, ver->patch, lmx_get_threads(), g_opt.batch, g_opt.reps,
           g_opt.warmup);
    printf("peak GFLOP/s: nominal %.0f fp32 / %.0f bf16; FMA loop now %.1f fp32 / %.1f bf16 "
           "(%% columns use the nominal peaks)\n",
           PEAK_F32, PEAK_BF16, pk32, pk16);
    printf("load average at start: %s\n\n", load0);
    printf("%-32s %6s %6s %7s %11s %11s %11s %11s %11s %6s  %s\n", "shape (NHWC; linear MxK->N)",
           "GFLOP", "1st ms", "f32 ms", "f32 GF/s %", "wino  GF/s", "bf16 GF/s %", "blk  GF/s %",
           "wblk GF/s %", "reo ms", "W MiB f32[/wino]/bf16");
    if (dnnl_engine_create(&g_eng, dnnl_cpu, 0) != dnnl_success) {
        fprintf(stderr, "bench_ops: no oneDNN CPU engine\n");
        return 1;
    }
    op_ctx *ctx = NULL;
    if (op_ctx_create(&ctx) != LMX_OK) {
        fprintf(stderr, "bench_ops: %s\n", lmx_errmsg());
        dnnl_engine_destroy(g_eng);
        return 1;
    }
    int rc = 0;
    for (size_t i = 0; i < LMX_ARRAY_LEN(g_rows); i++)
        if (selected(g_rows[i].name)) rc |= bench_row(ctx, &g_rows[i]);
    loadavg(load1, sizeof load1);
    printf("\nload average at end: %s; context scratch %.1f MiB\n", load1,
           op_ctx_bytes(ctx) / 1048576.0);
    printf("wino: 3x3 s1 via OP_CONV_WINOGRAD incl. NHWC<->blocked reorders (effective GFLOP/s); "
           "blk/wblk: raw oneDNN direct/Winograd on nChw16c activations, no reorders; reo: "
           "NHWC->nChw16c->NHWC activation reorders alone.\n");
    op_ctx_free(ctx);
    dnnl_engine_destroy(g_eng);
    return rc;
}
