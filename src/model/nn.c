/*
 * nn.c - layer wrappers: loading Linear/Conv2d/norm weights from a
 * safetensors source with name and shape checks, the batched forward with
 * the per-sample LoRA side path, and the ResNet block shared by the UNet
 * and the VAE (diffusers ResnetBlock2D). See nn.h.
 */
#include "model/nn.h"

#include <stdarg.h>
#include <string.h>

#include "model/keymap.h"

/* ---- registry ------------------------------------------------------------ */

static void layer_free(nn_layer *l) {
    if (!l) return;
    op_linear_free(l->lin);
    op_conv2d_free(l->conv);
    lmx_free(l->path);
    lmx_free(l);
}

void nn_layers_free(nn_layers *ls) {
    if (!ls) return;
    for (int i = 0; i < ls->n; i++) layer_free(ls->v[i]);
    lmx_free(ls->v);
    memset(ls, 0, sizeof *ls);
}

nn_layer *nn_layers_find(const nn_layers *ls, const char *path) {
    for (int i = 0; i < ls->n; i++)
        if (strcmp(ls->v[i]->path, path) == 0) return ls->v[i];
    return NULL;
}

static lmx_status layers_push(nn_layers *ls, nn_layer *l) {
    if (ls->n == ls->cap) {
        int cap = ls->cap ? ls->cap * 2 : 64;
        nn_layer **v = lmx_realloc(ls->v, sizeof *v * (size_t)cap);
        if (!v) return lmx_err(LMX_ERR_NOMEM, "%s: out of memory", l->path);
        ls->v = v;
        ls->cap = cap;
    }
    l->id = ls->n;
    ls->v[ls->n++] = l;
    return LMX_OK;
}

/* ---- LoRA hooks -------------------------------------------------------------- */

lmx_status nn_hooks_init(nn_hooks *h, const nn_layers *ls) {
    memset(h, 0, sizeof *h);
    if (ls->n == 0) return LMX_OK;
    h->v = lmx_calloc((size_t)ls->n, sizeof *h->v);
    if (!h->v) return lmx_err(LMX_ERR_NOMEM, "LoRA hooks: out of memory");
    h->n = ls->n;
    return LMX_OK;
}

void nn_hooks_free(nn_hooks *h) {
    if (!h) return;
    for (int i = 0; i < h->n; i++) {
        op_linear_free(h->v[i].merged_lin);
        op_conv2d_free(h->v[i].merged_conv);
        lmx_free(h->v[i].adapters);
    }
    lmx_free(h->v);
    memset(h, 0, sizeof *h);
}

int nn_hooks_max_rank(const nn_hooks *h) {
    int r = 0;
    for (int i = 0; h && i < h->n; i++)
        for (int j = 0; j < h->v[i].n_adapters; j++) r = LMX_MAX(r, h->v[i].adapters[j].rank);
    return r;
}

int nn_hooks_n_merged(const nn_hooks *h) {
    int n = 0;
    for (int i = 0; h && i < h->n; i++) n += h->v[i].merged_lin || h->v[i].merged_conv;
    return n;
}

static nn_hook *hook_of(nn_hooks *h, const nn_layer *l) {
    if (!h || l->id < 0 || l->id >= h->n) {
        lmx_err(LMX_ERR_INTERNAL, "%s: layer %d has no hook (%d hooks)", l->path, l->id, h ? h->n : 0);
        return NULL;
    }
    return &h->v[l->id];
}

/* The hook of l in a run, NULL when there is none. */
static const nn_hook *run_hook(const nn_run *run, const nn_layer *l) {
    const nn_hooks *h = run->hooks;
    return h && l->id >= 0 && l->id < h->n ? &h->v[l->id] : NULL;
}

lmx_status nn_hooks_attach(nn_hooks *h, const nn_layer *l, const nn_adapter *a) {
    int as_linear = a->down && a->up;
    int as_conv = a->down_conv && a->up_conv;
    int one_by_one = l->kind == NN_CONV2D && l->kh == 1 && l->kw == 1 && l->stride == 1;
    if (a->rank <= 0 || (!as_linear && !as_conv))
        return lmx_err(LMX_ERR_ARG, "%s: adapter needs a rank > 0 and down/up kernels", l->path);
    if (as_linear) {
        if (l->kind == NN_CONV2D && !one_by_one)
            return lmx_err(LMX_ERR_ARG, "%s: a %dx%d conv needs conv adapter kernels", l->path,
                           l->kh, l->kw);
        if (op_linear_n_in(a->down) != l->n_in || op_linear_n_out(a->down) != a->rank ||
            op_linear_n_in(a->up) != a->rank || op_linear_n_out(a->up) != l->n_out)
            return lmx_err(LMX_ERR_ARG,
                           "%s: adapter shapes down [%lld, %lld] up [%lld, %lld] do not fit the "
                           "layer [%lld, %lld] with rank %d",
                           l->path, (long long)op_linear_n_out(a->down),
                           (long long)op_linear_n_in(a->down), (long long)op_linear_n_out(a->up),
                           (long long)op_linear_n_in(a->up), (long long)l->n_out,
                           (long long)l->n_in, a->rank);
    } else if (l->kind != NN_CONV2D) {
        return lmx_err(LMX_ERR_ARG, "%s: a linear layer needs linear adapter kernels", l->path);
    }
    nn_hook *k = hook_of(h, l);
    if (!k) return LMX_ERR_INTERNAL;
    if (k->n_adapters == k->cap_adapters) {
        int cap = k->cap_adapters ? k->cap_adapters * 2 : 4;
        nn_adapter *v = lmx_realloc(k->adapters, sizeof *v * (size_t)cap);
        if (!v) return lmx_err(LMX_ERR_NOMEM, "%s: out of memory", l->path);
        k->adapters = v;
        k->cap_adapters = cap;
    }
    k->adapters[k->n_adapters++] = *a;
    return LMX_OK;
}

void nn_hooks_detach_all(nn_hooks *h) {
    for (int i = 0; h && i < h->n; i++) h->v[i].n_adapters = 0;
}

lmx_status nn_hooks_set_merged(nn_hooks *h, const nn_layer *l, op_linear *lin, op_conv2d *conv) {
    if (lin && (op_linear_n_out(lin) != l->n_out || op_linear_n_in(lin) != l->n_in || !l->lin))
        return lmx_err(LMX_ERR_ARG, "%s: merged kernel does not match the layer", l->path);
    if (conv && !l->conv)
        return lmx_err(LMX_ERR_ARG, "%s: merged conv kernel given for a linear layer", l->path);
    nn_hook *k = hook_of(h, l);
    if (!k) return LMX_ERR_INTERNAL;
    op_linear_free(k->merged_lin);
    op_conv2d_free(k->merged_conv);
    k->merged_lin = lin;
    k->merged_conv = conv;
    return LMX_OK;
}

lmx_status nn_layer_weight_f32(const nn_layer *l, float *dst) {
    if (!l->w_src)
        return lmx_err(LMX_ERR_UNSUPPORTED, "%s: weights were generated, not read from a file",
                       l->path);
    return st_to_f32(l->w_src, dst);
}

lmx_status nn_layer_bias_f32(const nn_layer *l, float *dst) {
    if (!l->has_bias) {
        memset(dst, 0, sizeof(float) * (size_t)l->n_out);
        return LMX_OK;
    }
    if (!l->b_src)
        return lmx_err(LMX_ERR_UNSUPPORTED, "%s: weights were generated, not read from a file",
                       l->path);
    return st_to_f32(l->b_src, dst);
}

/* ---- forward ------------------------------------------------------------------- */

int64_t nn_lora_scratch_floats(int r, int64_t n_out, int64_t hw) {
    if (r <= 0) return 0;
    return (int64_t)NN_LORA_CHUNK * (r + n_out) + hw * r + 64;
}

float *nn_alloc(nn_run *run, int64_t n_floats) {
    if (!run->arena) {
        lmx_err(LMX_ERR_INTERNAL, "forward called without an activation arena");
        return NULL;
    }
    return lmx_arena_alloc(run->arena, (size_t)n_floats * sizeof(float));
}

static float lora_scale(const nn_run *run, const nn_adapter *a, int64_t sample) {
    if (a->lora_index < 0 || a->lora_index >= run->n_loras || sample >= run->n_samples) return 0.0f;
    float c = run->lora_scale[(int64_t)a->lora_index * run->n_samples + sample];
    if (c == 0.0f) return 0.0f;
    return (float)((double)c * (double)a->alpha_over_rank);
}

static lmx_status need_scratch(const nn_run *run, int64_t n, const nn_layer *l) {
    if (run->scratch_n < n)
        return lmx_err(LMX_ERR_INTERNAL, "%s: LoRA scratch of %lld floats, %lld needed", l->path,
                       (long long)run->scratch_n, (long long)n);
    return LMX_OK;
}

/* y[m, n_out] += c · up(down(x[m, n_in])) in chunks of NN_LORA_CHUNK rows. */
static lmx_status side_rows(nn_run *run, const nn_layer *l, const nn_adapter *a, const float *x,
                            float *y, int64_t m, float c) {
    int64_t r = a->rank, n_out = l->n_out, n_in = l->n_in;
    lmx_status st = need_scratch(run, (int64_t)NN_LORA_CHUNK * (r + n_out), l);
    if (st) return st;
    float *d = run->scratch, *u = run->scratch + (int64_t)NN_LORA_CHUNK * r;
    for (int64_t i = 0; i < m; i += NN_LORA_CHUNK) {
        int64_t k = LMX_MIN((int64_t)NN_LORA_CHUNK, m - i);
        if (a->down) {
            st = op_linear_fwd(run->ctx, a->down, x + i * n_in, 0, d, 0, k, 0.0f);
            if (!st) st = op_linear_fwd(run->ctx, a->up, d, 0, u, 0, k, 0.0f);
        } else { /* 1x1 conv adapter on positions [1, k, 1, C] */
            st = op_conv2d_fwd(run->ctx, a->down_conv, x + i * n_in, d, 1, k, 1, 0.0f);
            if (!st) st = op_conv2d_fwd(run->ctx, a->up_conv, d, u, 1, k, 1, 0.0f);
        }
        if (st) return st;
        float *yy = y + i * n_out;
        for (int64_t j = 0; j < k * n_out; j++) yy[j] += c * u[j];
    }
    return LMX_OK;
}

lmx_status nn_linear_rows(nn_run *run, const nn_layer *l, const float *x, float *y, int64_t M,
                          int64_t rows_per_sample, int64_t row0, float beta) {
    const nn_hook *hk = run_hook(run, l);
    const op_linear *op = hk && hk->merged_lin ? hk->merged_lin : l->lin;
    if (!op) return lmx_err(LMX_ERR_INTERNAL, "%s: not a linear layer", l->path);
    lmx_status st = op_linear_fwd(run->ctx, op, x, 0, y, 0, M, beta);
    if (st || !hk || !hk->n_adapters || !run->lora_scale) return st;
    if (rows_per_sample <= 0) rows_per_sample = M;
    for (int ai = 0; ai < hk->n_adapters; ai++) {
        const nn_adapter *a = &hk->adapters[ai];
        int64_t i = 0;
        while (i < M) {
            int64_t s = (row0 + i) / rows_per_sample;
            float c = lora_scale(run, a, s);
            int64_t end = LMX_MIN(M, (s + 1) * rows_per_sample - row0);
            while (end < M) { /* extend over following samples with the same scale */
                int64_t s2 = (row0 + end) / rows_per_sample;
                if (lora_scale(run, a, s2) != c) break;
                end = LMX_MIN(M, (s2 + 1) * rows_per_sample - row0);
            }
            if (c != 0.0f) {
                st = side_rows(run, l, a, x + i * l->n_in, y + i * l->n_out, end - i, c);
                if (st) return st;
            }
            i = end;
        }
    }
    return LMX_OK;
}

lmx_status nn_linear(nn_run *run, const nn_layer *l, const float *x, float *y, int64_t M,
                     float beta) {
    int64_t B = run->n_samples > 0 ? run->n_samples : 1;
    return nn_linear_rows(run, l, x, y, M, M / B, 0, beta);
}

lmx_status nn_conv(nn_run *run, const nn_layer *l, const float *x, float *y, int64_t H, int64_t W,
                   float beta) {
    int64_t B = run->n_samples;
    if (l->lin) /* 1x1 stride 1: a linear over positions */
        return nn_linear_rows(run, l, x, y, B * H * W, H * W, 0, beta);
    const nn_hook *hk = run_hook(run, l);
    const op_conv2d *op = hk && hk->merged_conv ? hk->merged_conv : l->conv;
    lmx_status st = op_conv2d_fwd(run->ctx, op, x, y, B, H, W, beta);
    if (st || !hk || !hk->n_adapters || !run->lora_scale) return st;
    int64_t Ho, Wo;
    op_conv2d_out_hw(l->conv, H, W, &Ho, &Wo);
    int64_t in_n = H * W * l->n_in, out_hw = Ho * Wo;
    for (int ai = 0; ai < hk->n_adapters; ai++) {
        const nn_adapter *a = &hk->adapters[ai];
        for (int64_t s = 0; s < B; s++) {
            float c = lora_scale(run, a, s);
            if (c == 0.0f) continue;
            int64_t r = a->rank;
            st = need_scratch(run, out_hw * r + (int64_t)NN_LORA_CHUNK * l->n_out, l);
            if (st) return st;
            float *d = run->scratch, *u = run->scratch + out_hw * r;
            st = op_conv2d_fwd(run->ctx, a->down_conv, x + s * in_n, d, 1, H, W, 0.0f);
            if (st) return st;
            float *ys = y + s * out_hw * l->n_out;
            for (int64_t i = 0; i < out_hw; i += NN_LORA_CHUNK) {
                int64_t k = LMX_MIN((int64_t)NN_LORA_CHUNK, out_hw - i);
                st = op_conv2d_fwd(run->ctx, a->up_conv, d + i * r, u, 1, k, 1, 0.0f);
                if (st) return st;
                float *yy = ys + i * l->n_out;
                for (int64_t j = 0; j < k * l->n_out; j++) yy[j] += c * u[j];
            }
        }
    }
    return LMX_OK;
}

/* ---- norms -------------------------------------------------------------------- */

void nn_norm_free(nn_norm *n) {
    if (!n) return;
    lmx_free(n->gamma);
    lmx_free(n->beta);
    memset(n, 0, sizeof *n);
}

/* ---- sources -------------------------------------------------------------------- */

char *nn_path(char *buf, size_t n, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, n, fmt, ap);
    va_end(ap);
    return buf;
}

void nn_src_release(nn_src *s) {
    lmx_free(s->buf);
    s->buf = NULL;
    s->buf_n = 0;
}

/* The file key for a diffusers name (prefix + mapped name); alias = 1 uses
 * the older spelling. Returns 0 when there is no such spelling. */
static int file_key(const nn_src *s, const char *name, int alias, char *out, size_t n) {
    char tmp[512], mapped[512];
    if (alias) {
        if (!km_alias(name, tmp, sizeof tmp)) return 0;
        name = tmp;
    }
    if (s->km) {
        if (km_map(s->km, name, mapped, sizeof mapped) != 0) return 0;
    } else {
        snprintf(mapped, sizeof mapped, "%s", name);
    }
    int k = snprintf(out, n, "%s%s", s->prefix ? s->prefix : "", mapped);
    return k > 0 && (size_t)k < n;
}

static const st_tensor *lookup(const nn_src *s, const char *name, char *key, size_t n) {
    char alt[600];
    const st_tensor *t;
    if (file_key(s, name, 0, key, n) && (t = st_find(s->f, key))) return t;
    if (file_key(s, name, 1, alt, sizeof alt) && (t = st_find(s->f, alt))) {
        snprintf(key, n, "%s", alt);
        return t;
    }
    return NULL; /* key holds the primary spelling */
}

int nn_src_has(nn_src *s, const char *name) {
    char key[600];
    if (s->gen) return 1;
    return lookup(s, name, key, sizeof key) != NULL;
}

/* Equal shapes, treating [O, I] and [O, I, 1, 1] as the same. */
static int same_shape(int na, const int64_t *a, int nb, const int64_t *b) {
    while (na > 2 && a[na - 1] == 1) na--;
    while (nb > 2 && b[nb - 1] == 1) nb--;
    if (na != nb) return 0;
    for (int i = 0; i < na; i++)
        if (a[i] != b[i]) return 0;
    return 1;
}

lmx_status nn_src_find(nn_src *s, const char *name, int ndim, const int64_t *shape,
                       const st_tensor **out) {
    char key[600], want[128], got[128];
    *out = NULL;
    const st_tensor *t = lookup(s, name, key, sizeof key);
    int mapped = strcmp(key, name) != 0;
    if (!t) {
        if (mapped)
            return lmx_err(LMX_ERR_SHAPE, "%s.%s: missing (no tensor '%s' in %s)", s->label, name,
                           key, st_path(s->f));
        return lmx_err(LMX_ERR_SHAPE, "%s.%s: missing from %s", s->label, name, st_path(s->f));
    }
    if (!same_shape(ndim, shape, t->ndim, t->shape)) {
        st_shape_str(ndim, shape, want, sizeof want);
        st_shape_str(t->ndim, t->shape, got, sizeof got);
        if (mapped)
            return lmx_err(LMX_ERR_SHAPE, "%s.%s: expected %s, got %s (tensor '%s' in %s)",
                           s->label, name, want, got, key, st_path(s->f));
        return lmx_err(LMX_ERR_SHAPE, "%s.%s: expected %s, got %s (in %s)", s->label, name, want,
                       got, st_path(s->f));
    }
    if (t->dtype != ST_F32 && t->dtype != ST_F16 && t->dtype != ST_BF16)
        return lmx_err(LMX_ERR_FORMAT, "%s.%s: dtype %s is not a float type (in %s)", s->label,
                       name, st_dtype_name(t->dtype), st_path(s->f));
    if (s->used) s->used[t - st_at(s->f, 0)] = 1; /* st_at(f, i) is &tensors[i] */
    *out = t;
    return LMX_OK;
}

static int64_t numel_of(int ndim, const int64_t *shape) {
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) n *= shape[i];
    return n;
}

/* Fetch into dst (numel floats); *src_out gets the file tensor (NULL for gen). */
static lmx_status fetch(nn_src *s, const char *name, int ndim, const int64_t *shape, float *dst,
                        const st_tensor **src_out) {
    if (src_out) *src_out = NULL;
    if (s->gen) {
        lmx_status st = s->gen(s->gen_user, name, ndim, shape, dst);
        if (st) lmx_err_prefix("%s.%s: ", s->label, name);
        return st;
    }
    const st_tensor *t;
    lmx_status st = nn_src_find(s, name, ndim, shape, &t);
    if (st) return st;
    st = st_to_f32(t, dst);
    if (st) return st;
    /* Converted: the mapped pages may leave memory (re-read on demand), so
     * the mapping and the packed copy are never resident together. */
    st_drop_range(s->f, t->data, t->nbytes);
    if (src_out) *src_out = t;
    return LMX_OK;
}

lmx_status nn_src_read(nn_src *s, const char *name, int ndim, const int64_t *shape, float **out) {
    *out = NULL;
    int64_t n = numel_of(ndim, shape);
    float *buf = lmx_alloc_aligned((size_t)n * sizeof(float));
    if (!buf) return lmx_err(LMX_ERR_NOMEM, "%s.%s: out of memory", s->label, name);
    lmx_status st = fetch(s, name, ndim, shape, buf, NULL);
    if (st) {
        lmx_free(buf);
        return st;
    }
    *out = buf;
    return LMX_OK;
}

static lmx_status src_buf(nn_src *s, size_t n) {
    if (s->buf_n >= n) return LMX_OK;
    lmx_free(s->buf);
    s->buf_n = 0;
    s->buf = lmx_alloc_aligned(n * sizeof(float));
    if (!s->buf) return lmx_err(LMX_ERR_NOMEM, "%s: out of memory for a %zu-float weight", s->label, n);
    s->buf_n = n;
    return LMX_OK;
}

/* Shared tail of nn_load_linear / nn_load_conv. */
static lmx_status load_layer(nn_src *s, nn_layers *reg, nn_layer **out, const char *path,
                             nn_kind kind, int64_t n_out, int64_t n_in, int k, int stride, int pad,
                             int bias) {
    char wn[512], bn[512];
    float *b = NULL;
    lmx_status st = LMX_OK;
    nn_layer *l = NULL;
    if (out) *out = NULL;
    int64_t wshape[4] = {n_out, n_in, k, k};
    int wdim = kind == NN_LINEAR ? 2 : 4;
    nn_path(wn, sizeof wn, "%s.weight", path);
    nn_path(bn, sizeof bn, "%s.bias", path);
    l = lmx_calloc(1, sizeof *l);
    if (!l || !(l->path = lmx_strdup(path))) {
        st = lmx_err(LMX_ERR_NOMEM, "%s.%s: out of memory", s->label, path);
        goto fail;
    }
    l->kind = kind;
    l->n_out = n_out;
    l->n_in = n_in;
    l->kh = l->kw = k;
    l->stride = stride;
    l->pad = pad;
    l->has_bias = bias;
    st = src_buf(s, (size_t)(n_out * n_in * k * k));
    if (st) goto fail;
    st = fetch(s, wn, wdim, wshape, s->buf, &l->w_src);
    if (st) goto fail;
    if (bias) {
        b = lmx_alloc_aligned(sizeof(float) * (size_t)n_out);
        if (!b) {
            st = lmx_err(LMX_ERR_NOMEM, "%s.%s: out of memory", s->label, path);
            goto fail;
        }
        st = fetch(s, bn, 1, &n_out, b, &l->b_src);
        if (st) goto fail;
    }
    if (kind == NN_LINEAR || (k == 1 && stride == 1 && pad == 0))
        st = op_linear_create(&l->lin, s->buf, b, n_out, n_in, s->prec);
    else
        st = op_conv2d_create(&l->conv, s->buf, b, n_out, n_in, k, k, stride, pad, s->prec,
                                  k == 3 && stride == 1 ? s->conv_flags : 0);
    if (st) {
        lmx_err_prefix("%s.%s: ", s->label, path);
        goto fail;
    }
    st = layers_push(reg, l);
    if (st) goto fail;
    lmx_free(b);
    if (out) *out = l;
    return LMX_OK;
fail:
    lmx_free(b);
    layer_free(l);
    return st;
}

lmx_status nn_load_linear(nn_src *s, nn_layers *reg, nn_layer **out, const char *path,
                          int64_t n_out, int64_t n_in, int bias) {
    return load_layer(s, reg, out, path, NN_LINEAR, n_out, n_in, 1, 1, 0, bias);
}

lmx_status nn_load_conv(nn_src *s, nn_layers *reg, nn_layer **out, const char *path,
                        int64_t c_out, int64_t c_in, int k, int stride, int pad, int bias) {
    return load_layer(s, reg, out, path, NN_CONV2D, c_out, c_in, k, stride, pad, bias);
}

lmx_status nn_load_norm(nn_src *s, nn_norm *n, const char *path, int64_t C, int groups, float eps) {
    char name[512];
    memset(n, 0, sizeof *n);
    n->C = C;
    n->groups = groups;
    n->eps = eps;
    lmx_status st = nn_src_read(s, nn_path(name, sizeof name, "%s.weight", path), 1, &C, &n->gamma);
    if (!st) st = nn_src_read(s, nn_path(name, sizeof name, "%s.bias", path), 1, &C, &n->beta);
    if (st) nn_norm_free(n);
    return st;
}

static int ignorable(const char *name) {
    size_t n = strlen(name);
    static const char *sfx[] = {"position_ids", "num_batches_tracked"};
    for (size_t i = 0; i < LMX_ARRAY_LEN(sfx); i++) {
        size_t k = strlen(sfx[i]);
        if (n >= k && strcmp(name + n - k, sfx[i]) == 0) return 1;
    }
    return 0;
}

void nn_report_unused(const st_file *f, const uint8_t *used, const char *prefix,
                      const char *label) {
    size_t pl = strlen(prefix);
    int count = 0;
    const char *first[3] = {0};
    for (int i = 0; i < st_count(f); i++) {
        const char *name = st_at(f, i)->name;
        if (used[i] || strncmp(name, prefix, pl) != 0 || ignorable(name)) continue;
        if (count < 3) first[count] = name;
        count++;
    }
    if (!count) return;
    lmx_warn("%s: %d unexpected tensor%s ignored in %s: %s%s%s%s%s%s", label, count,
             count == 1 ? "" : "s", st_path(f), first[0], first[1] ? ", " : "",
             first[1] ? first[1] : "", first[2] ? ", " : "", first[2] ? first[2] : "",
             count > 3 ? ", ..." : "");
}

/* ---- ResNet block ------------------------------------------------------------ */

lmx_status nn_resnet_load(nn_src *s, nn_layers *reg, nn_resnet *r, const char *path,
                          int64_t c_in, int64_t c_out, int64_t temb_dim, int groups, float eps) {
    char p[512];
    lmx_status st;
    memset(r, 0, sizeof *r);
    r->c_in = c_in;
    r->c_out = c_out;
    if ((st = nn_load_norm(s, &r->norm1, nn_path(p, sizeof p, "%s.norm1", path), c_in, groups, eps)))
        goto fail;
    if ((st = nn_load_conv(s, reg, &r->conv1, nn_path(p, sizeof p, "%s.conv1", path), c_out, c_in,
                           3, 1, 1, 1)))
        goto fail;
    if (temb_dim > 0 &&
        (st = nn_load_linear(s, reg, &r->temb_proj, nn_path(p, sizeof p, "%s.time_emb_proj", path),
                             c_out, temb_dim, 1)))
        goto fail;
    if ((st = nn_load_norm(s, &r->norm2, nn_path(p, sizeof p, "%s.norm2", path), c_out, groups, eps)))
        goto fail;
    if ((st = nn_load_conv(s, reg, &r->conv2, nn_path(p, sizeof p, "%s.conv2", path), c_out, c_out,
                           3, 1, 1, 1)))
        goto fail;
    if (c_in != c_out &&
        (st = nn_load_conv(s, reg, &r->shortcut, nn_path(p, sizeof p, "%s.conv_shortcut", path),
                           c_out, c_in, 1, 1, 0, 1)))
        goto fail;
    return LMX_OK;
fail:
    nn_resnet_free(r); /* the layers stay in reg, which the caller frees */
    return st;
}

void nn_resnet_free(nn_resnet *r) {
    nn_norm_free(&r->norm1);
    nn_norm_free(&r->norm2);
}

int64_t nn_resnet_temp(const nn_resnet *r, int64_t B, int64_t HW) {
    /* t1 [B, HW, c_in], h [B, HW, c_out], time projection [B, c_out] */
    return (int64_t)(nn_bytes(B * HW * r->c_in) + nn_bytes(B * HW * r->c_out) +
                     nn_bytes(B * r->c_out)) / (int64_t)sizeof(float);
}

lmx_status nn_resnet_fwd(nn_run *run, const nn_resnet *r, const float *x, float *y, int64_t H,
                         int64_t W, const float *temb_act) {
    int64_t B = run->n_samples, HW = H * W;
    size_t mark = lmx_arena_mark(run->arena);
    lmx_status st = LMX_OK;
    float *t1 = nn_alloc(run, B * HW * r->c_in);
    float *h = nn_alloc(run, B * HW * r->c_out);
    float *tp = nn_alloc(run, B * r->c_out);
    if (!t1 || !h || !tp) {
        st = LMX_ERR_NOMEM;
        goto done;
    }
    op_group_norm(x, t1, B, HW, r->c_in, r->norm1.groups, r->norm1.gamma, r->norm1.beta,
                  r->norm1.eps, 1);
    if ((st = nn_conv(run, r->conv1, t1, h, H, W, 0.0f))) goto done;
    if (r->temb_proj && temb_act) {
        /* one row per sample */
        if ((st = nn_linear_rows(run, r->temb_proj, temb_act, tp, B, 1, 0, 0.0f))) goto done;
        for (int64_t b = 0; b < B; b++)
            op_add_bcast(h + b * HW * r->c_out, tp + b * r->c_out, h + b * HW * r->c_out, HW,
                         r->c_out);
    }
    op_group_norm(h, h, B, HW, r->c_out, r->norm2.groups, r->norm2.gamma, r->norm2.beta,
                  r->norm2.eps, 1);
    if (r->shortcut) {
        LMX_ASSERT(y != x);
        if ((st = nn_conv(run, r->shortcut, x, y, H, W, 0.0f))) goto done;
    } else if (y != x) {
        memcpy(y, x, sizeof(float) * (size_t)(B * HW * r->c_out));
    }
    st = nn_conv(run, r->conv2, h, y, H, W, 1.0f); /* y = shortcut + conv2(h) */
done:
    lmx_arena_reset(run->arena, mark);
    return st;
}
