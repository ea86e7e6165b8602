/*
 * unet.c - UNet2DConditionModel (SD1.x family) forward in fp32 NHWC.
 *
 * Mirrors diffusers 0.32.2 unet_2d_condition.py: time embedding
 * (Timesteps -> linear_1 -> SiLU -> linear_2), conv_in, down blocks (ResNet
 * [+ Transformer2D] x layers_per_block, then a stride-2 conv), mid block
 * (ResNet, Transformer2D, ResNet), up blocks (layers_per_block + 1 ResNets on
 * [h, skip] concatenations [+ Transformer2D], then nearest upsampling to the
 * next skip's size and a 3x3 conv), GroupNorm + SiLU + conv_out.
 * Transformer2D: GroupNorm(eps 1e-6) -> proj_in -> BasicTransformerBlock x d
 * (LN -> self-attn, LN -> cross-attn, LN -> GEGLU feed-forward, each
 * residual) -> proj_out, + input. Numerics: docs/numerics.md §4.
 *
 * Memory: one arena per (model, batch, resolution). Layout: time embedding
 * vectors, every skip tensor (the long-lived activations), one "main"
 * buffer for the mid/up path, the LoRA scratch, then a stack of
 * temporaries that each block takes and gives back (mark/reset). The plan
 * below computes the exact size with the same per-block formulas.
 */
#include "model/unet.h"

#include <math.h>
#include <string.h>

#define MAX_LAYERS 17       /* layers_per_block + 1 <= 17 (config check: <= 16) */
#define FF_CHUNK 4096       /* feed-forward rows per step (bounds its scratch)   */

typedef struct attn {
    nn_layer *q, *k, *v, *o;
    int heads;
} attn;

typedef struct tblock {
    nn_norm n1, n2, n3;
    attn a1, a2;
    nn_layer *ff1, *ff2;
    int64_t inner;              /* feed-forward width (4C)                       */
} tblock;

typedef struct xformer {
    nn_norm norm;
    nn_layer *proj_in, *proj_out;
    tblock *blk;
    int n_blk;
    int64_t C;
    int heads;
} xformer;

typedef struct ublock {
    nn_resnet res[MAX_LAYERS];
    xformer att[MAX_LAYERS];
    int n_res, has_att;
    nn_layer *sampler;          /* downsampler (down) or upsampler conv (up)     */
} ublock;

struct unet {
    unet_config cfg;
    nn_layers layers;
    int64_t temb_dim;
    nn_layer *conv_in, *t_lin1, *t_lin2, *conv_out;
    nn_norm norm_out;
    ublock down[CFG_MAX_LEVELS], up[CFG_MAX_LEVELS];
    nn_resnet mid_res[2];
    xformer mid_att;
};

const unet_config *unet_cfg(const unet *u) { return &u->cfg; }
const nn_layers *unet_layers(const unet *u) { return &u->layers; }

/* ---- loading ------------------------------------------------------------------ */

static void xformer_free(xformer *x) {
    nn_norm_free(&x->norm);
    for (int i = 0; i < x->n_blk; i++) {
        nn_norm_free(&x->blk[i].n1);
        nn_norm_free(&x->blk[i].n2);
        nn_norm_free(&x->blk[i].n3);
    }
    lmx_free(x->blk);
    memset(x, 0, sizeof *x);
}

static lmx_status attn_load(nn_src *s, nn_layers *reg, attn *a, const char *path, int64_t C,
                            int64_t kv_dim, int heads) {
    char p[512];
    lmx_status st;
    a->heads = heads;
    if ((st = nn_load_linear(s, reg, &a->q, nn_path(p, sizeof p, "%s.to_q", path), C, C, 0))) return st;
    if ((st = nn_load_linear(s, reg, &a->k, nn_path(p, sizeof p, "%s.to_k", path), C, kv_dim, 0))) return st;
    if ((st = nn_load_linear(s, reg, &a->v, nn_path(p, sizeof p, "%s.to_v", path), C, kv_dim, 0))) return st;
    return nn_load_linear(s, reg, &a->o, nn_path(p, sizeof p, "%s.to_out.0", path), C, C, 1);
}

static lmx_status proj_load(nn_src *s, nn_layers *reg, nn_layer **out, const char *path, int64_t C,
                            int linear) {
    if (linear) return nn_load_linear(s, reg, out, path, C, C, 1);
    return nn_load_conv(s, reg, out, path, C, C, 1, 1, 0, 1);
}

static lmx_status xformer_load(nn_src *s, nn_layers *reg, xformer *x, const char *path, int64_t C,
                               int heads, int depth, const unet_config *cfg) {
    char p[512], q[512];
    lmx_status st;
    memset(x, 0, sizeof *x);
    x->C = C;
    x->heads = heads;
    if ((st = nn_load_norm(s, &x->norm, nn_path(p, sizeof p, "%s.norm", path), C, cfg->groups, 1e-6f)))
        goto fail;
    if ((st = proj_load(s, reg, &x->proj_in, nn_path(p, sizeof p, "%s.proj_in", path), C, cfg->linear_proj)))
        goto fail;
    x->blk = lmx_calloc((size_t)depth, sizeof *x->blk);
    if (!x->blk) {
        st = lmx_err(LMX_ERR_NOMEM, "%s: out of memory", path);
        goto fail;
    }
    for (int i = 0; i < depth; i++) {
        tblock *b = &x->blk[i];
        x->n_blk = i + 1;
        b->inner = 4 * C;
        nn_path(q, sizeof q, "%s.transformer_blocks.%d", path, i);
        if ((st = nn_load_norm(s, &b->n1, nn_path(p, sizeof p, "%s.norm1", q), C, 0, 1e-5f))) goto fail;
        if ((st = attn_load(s, reg, &b->a1, nn_path(p, sizeof p, "%s.attn1", q), C, C, heads))) goto fail;
        if ((st = nn_load_norm(s, &b->n2, nn_path(p, sizeof p, "%s.norm2", q), C, 0, 1e-5f))) goto fail;
        if ((st = attn_load(s, reg, &b->a2, nn_path(p, sizeof p, "%s.attn2", q), C, cfg->cross_dim, heads)))
            goto fail;
        if ((st = nn_load_norm(s, &b->n3, nn_path(p, sizeof p, "%s.norm3", q), C, 0, 1e-5f))) goto fail;
        if ((st = nn_load_linear(s, reg, &b->ff1, nn_path(p, sizeof p, "%s.ff.net.0.proj", q), 2 * b->inner, C, 1)))
            goto fail;
        if ((st = nn_load_linear(s, reg, &b->ff2, nn_path(p, sizeof p, "%s.ff.net.2", q), C, b->inner, 1)))
            goto fail;
    }
    if ((st = proj_load(s, reg, &x->proj_out, nn_path(p, sizeof p, "%s.proj_out", path), C, cfg->linear_proj)))
        goto fail;
    return LMX_OK;
fail:
    xformer_free(x);
    return st;
}

void unet_free(unet *u) {
    if (!u) return;
    for (int i = 0; i < CFG_MAX_LEVELS; i++) {
        for (int j = 0; j < MAX_LAYERS; j++) {
            nn_resnet_free(&u->down[i].res[j]);
            nn_resnet_free(&u->up[i].res[j]);
            xformer_free(&u->down[i].att[j]);
            xformer_free(&u->up[i].att[j]);
        }
    }
    nn_resnet_free(&u->mid_res[0]);
    nn_resnet_free(&u->mid_res[1]);
    xformer_free(&u->mid_att);
    nn_norm_free(&u->norm_out);
    nn_layers_free(&u->layers);
    lmx_free(u);
}

lmx_status unet_load(unet **out, nn_src *s, const unet_config *cfg) {
    char p[256];
    lmx_status st;
    *out = NULL;
    if ((st = unet_config_check(cfg, s->label))) return st;
    unet *u = lmx_calloc(1, sizeof *u);
    if (!u) return lmx_err(LMX_ERR_NOMEM, "%s: out of memory", s->label);
    u->cfg = *cfg;
    const unet_config *c = &u->cfg;
    int n = c->n_levels, L = c->layers_per_block;
    nn_layers *reg = &u->layers;
    u->temb_dim = 4 * (int64_t)c->ch[0];
    float eps = c->eps;
    int G = c->groups;

    if ((st = nn_load_conv(s, reg, &u->conv_in, "conv_in", c->ch[0], c->in_channels, 3, 1, 1, 1))) goto fail;
    if ((st = nn_load_linear(s, reg, &u->t_lin1, "time_embedding.linear_1", u->temb_dim, c->ch[0], 1))) goto fail;
    if ((st = nn_load_linear(s, reg, &u->t_lin2, "time_embedding.linear_2", u->temb_dim, u->temb_dim, 1)))
        goto fail;

    int64_t out_c = c->ch[0];
    for (int i = 0; i < n; i++) {
        ublock *b = &u->down[i];
        int64_t in_c = out_c;
        out_c = c->ch[i];
        b->n_res = L;
        b->has_att = c->down_attn[i];
        for (int j = 0; j < L; j++) {
            if ((st = nn_resnet_load(s, reg, &b->res[j], nn_path(p, sizeof p, "down_blocks.%d.resnets.%d", i, j),
                                     j == 0 ? in_c : out_c, out_c, u->temb_dim, G, eps)))
                goto fail;
            if (b->has_att &&
                (st = xformer_load(s, reg, &b->att[j], nn_path(p, sizeof p, "down_blocks.%d.attentions.%d", i, j),
                                   out_c, c->heads[i], c->tlayers[i], c)))
                goto fail;
        }
        if (i < n - 1 &&
            (st = nn_load_conv(s, reg, &b->sampler, nn_path(p, sizeof p, "down_blocks.%d.downsamplers.0.conv", i),
                               out_c, out_c, 3, 2, c->downsample_padding, 1)))
            goto fail;
    }
    int64_t top = c->ch[n - 1];
    if (!nn_src_has(s, "mid_block.resnets.0.conv1.weight") && !nn_src_has(s, "mid_block.resnets.1.conv1.weight") &&
        !nn_src_has(s, "mid_block.attentions.0.proj_in.weight")) {
        st = lmx_err(LMX_ERR_UNSUPPORTED,
                     "%s: a UNet without a mid block (no mid_block.* tensors) is not supported (SD1.x UNets "
                     "have UNetMidBlock2DCrossAttn)",
                     s->label);
        goto fail;
    }
    if ((st = nn_resnet_load(s, reg, &u->mid_res[0], "mid_block.resnets.0", top, top, u->temb_dim, G, eps))) goto fail;
    if ((st = xformer_load(s, reg, &u->mid_att, "mid_block.attentions.0", top, c->heads[n - 1], c->tlayers[n - 1], c)))
        goto fail;
    if ((st = nn_resnet_load(s, reg, &u->mid_res[1], "mid_block.resnets.1", top, top, u->temb_dim, G, eps))) goto fail;

    out_c = c->ch[n - 1];
    for (int i = 0; i < n; i++) {
        ublock *b = &u->up[i];
        int r = n - 1 - i;
        int64_t prev = out_c;
        out_c = c->ch[r];
        int64_t in_c = c->ch[r > 0 ? r - 1 : 0];
        b->n_res = L + 1;
        b->has_att = c->up_attn[i];
        for (int j = 0; j <= L; j++) {
            int64_t skip_c = j == L ? in_c : out_c;
            int64_t rin = j == 0 ? prev : out_c;
            if ((st = nn_resnet_load(s, reg, &b->res[j], nn_path(p, sizeof p, "up_blocks.%d.resnets.%d", i, j),
                                     rin + skip_c, out_c, u->temb_dim, G, eps)))
                goto fail;
            if (b->has_att &&
                (st = xformer_load(s, reg, &b->att[j], nn_path(p, sizeof p, "up_blocks.%d.attentions.%d", i, j),
                                   out_c, c->heads[r], c->tlayers[r], c)))
                goto fail;
        }
        if (i < n - 1 &&
            (st = nn_load_conv(s, reg, &b->sampler, nn_path(p, sizeof p, "up_blocks.%d.upsamplers.0.conv", i),
                               out_c, out_c, 3, 1, 1, 1)))
            goto fail;
    }
    if ((st = nn_load_norm(s, &u->norm_out, "conv_norm_out", c->ch[0], G, eps))) goto fail;
    if ((st = nn_load_conv(s, reg, &u->conv_out, "conv_out", c->out_channels, c->ch[0], 3, 1, 1, 1))) goto fail;
    *out = u;
    return LMX_OK;
fail:
    unet_free(u);
    return st;
}

/* ---- Transformer2D -------------------------------------------------------------- */

static size_t xformer_temp(const xformer *x, int64_t B, int64_t HW, int64_t Lc) {
    int64_t C = x->C, kv = LMX_MAX(HW, Lc), R = LMX_MIN(B * HW, (int64_t)FF_CHUNK);
    int64_t inner = x->n_blk ? x->blk[0].inner : 4 * C;
    return 4 * nn_bytes(B * HW * C) + 2 * nn_bytes(B * kv * C) + nn_bytes(R * 2 * inner) + nn_bytes(R * inner);
}

static lmx_status attn_fwd(nn_run *run, const attn *a, const float *xq, int64_t Lq, const float *xkv,
                           int64_t Lk, float *q, float *k, float *v, float *o, int64_t C, float *out) {
    int64_t B = run->n_samples, D = C / a->heads;
    lmx_status st;
    if ((st = nn_linear_rows(run, a->q, xq, q, B * Lq, Lq, 0, 0.0f))) return st;
    if ((st = nn_linear_rows(run, a->k, xkv, k, B * Lk, Lk, 0, 0.0f))) return st;
    if ((st = nn_linear_rows(run, a->v, xkv, v, B * Lk, Lk, 0, 0.0f))) return st;
    float scale = (float)pow((double)D, -0.5);
    if ((st = op_attention(run->ctx, q, C, Lq * C, k, C, Lk * C, v, C, Lk * C, o, C, Lq * C, B, Lq, Lk,
                           a->heads, D, scale, 0)))
        return st;
    return nn_linear_rows(run, a->o, o, out, B * Lq, Lq, 0, 1.0f); /* out += to_out(o) */
}

/* In place: x[B, HW, C] += Transformer2D(x, context[B, Lc, cross_dim]). */
static lmx_status xformer_fwd(nn_run *run, const xformer *x, float *h, int64_t HW, const float *ctx, int64_t Lc) {
    int64_t B = run->n_samples, C = x->C, kv = LMX_MAX(HW, Lc);
    size_t mark = lmx_arena_mark(run->arena);
    lmx_status st = LMX_OK;
    int64_t R = LMX_MIN(B * HW, (int64_t)FF_CHUNK);
    int64_t inner = x->blk[0].inner;
    float *n = nn_alloc(run, B * HW * C), *hs = nn_alloc(run, B * HW * C);
    float *q = nn_alloc(run, B * HW * C), *o = nn_alloc(run, B * HW * C);
    float *k = nn_alloc(run, B * kv * C), *v = nn_alloc(run, B * kv * C);
    float *f1 = nn_alloc(run, R * 2 * inner), *f2 = nn_alloc(run, R * inner);
    if (!n || !hs || !q || !o || !k || !v || !f1 || !f2) {
        st = LMX_ERR_NOMEM;
        goto done;
    }
    op_group_norm(h, n, B, HW, C, x->norm.groups, x->norm.gamma, x->norm.beta, x->norm.eps, 0);
    if ((st = nn_linear_rows(run, x->proj_in, n, hs, B * HW, HW, 0, 0.0f))) goto done;
    for (int i = 0; i < x->n_blk; i++) {
        const tblock *b = &x->blk[i];
        op_layer_norm(hs, n, B * HW, C, b->n1.gamma, b->n1.beta, b->n1.eps);
        if ((st = attn_fwd(run, &b->a1, n, HW, n, HW, q, k, v, o, C, hs))) goto done;
        op_layer_norm(hs, n, B * HW, C, b->n2.gamma, b->n2.beta, b->n2.eps);
        if ((st = attn_fwd(run, &b->a2, n, HW, ctx, Lc, q, k, v, o, C, hs))) goto done;
        op_layer_norm(hs, n, B * HW, C, b->n3.gamma, b->n3.beta, b->n3.eps);
        for (int64_t r0 = 0; r0 < B * HW; r0 += R) {
            int64_t m = LMX_MIN(R, B * HW - r0);
            if ((st = nn_linear_rows(run, b->ff1, n + r0 * C, f1, m, HW, r0, 0.0f))) goto done;
            op_geglu(f1, f2, m, inner);
            if ((st = nn_linear_rows(run, b->ff2, f2, hs + r0 * C, m, HW, r0, 1.0f))) goto done;
        }
    }
    st = nn_linear_rows(run, x->proj_out, hs, h, B * HW, HW, 0, 1.0f); /* h += proj_out(hs) */
done:
    lmx_arena_reset(run->arena, mark);
    return st;
}

/* ---- plan ----------------------------------------------------------------------- */

typedef struct plan {
    int64_t H[CFG_MAX_LEVELS], W[CFG_MAX_LEVELS];
    int n_skips;
    int64_t skip_n[1 + CFG_MAX_LEVELS * (MAX_LAYERS + 1)]; /* floats per skip tensor */
    int64_t main_n;           /* floats of the mid/up working buffer */
    int64_t lora_n;
    size_t fixed, temp, total;
} plan;

/* Output side of the stride-2 downsampler: symmetric padding `pad`, or
 * diffusers' (0, 1, 0, 1) padding when pad is 0. */
static int64_t down_size(int64_t H, int pad) {
    int64_t span = pad ? H + 2 * pad : H + 1;
    return span < 3 ? 0 : (span - 3) / 2 + 1;
}

static void make_plan(const unet *u, int rank, int64_t B, int64_t h, int64_t w, int64_t Lc, plan *P) {
    const unet_config *c = &u->cfg;
    int n = c->n_levels, L = c->layers_per_block;
    memset(P, 0, sizeof *P);
    P->H[0] = h;
    P->W[0] = w;
    for (int i = 1; i < n; i++) {
        P->H[i] = down_size(P->H[i - 1], c->downsample_padding);
        P->W[i] = down_size(P->W[i - 1], c->downsample_padding);
    }
    size_t temp = 0;
    /* center_input: a copy of x */
    size_t fixed = nn_bytes(B * c->ch[0]) + 2 * nn_bytes(B * u->temb_dim) +
                   (c->center_input ? nn_bytes(B * h * w * c->in_channels) : 0);
    /* skips */
    P->skip_n[P->n_skips++] = B * h * w * c->ch[0];
    for (int i = 0; i < n; i++) {
        int64_t HW = P->H[i] * P->W[i];
        for (int j = 0; j < L; j++) {
            P->skip_n[P->n_skips++] = B * HW * c->ch[i];
            temp = LMX_MAX(temp, (size_t)nn_resnet_temp(&u->down[i].res[j], B, HW) * sizeof(float));
            if (u->down[i].has_att) temp = LMX_MAX(temp, xformer_temp(&u->down[i].att[j], B, HW, Lc));
        }
        if (i < n - 1) {
            P->skip_n[P->n_skips++] = B * P->H[i + 1] * P->W[i + 1] * c->ch[i];
            if (c->downsample_padding == 0)
                temp = LMX_MAX(temp, nn_bytes(B * (P->H[i] + 1) * (P->W[i] + 1) * c->ch[i]));
        }
    }
    for (int k = 0; k < P->n_skips; k++) fixed += nn_bytes(P->skip_n[k]);
    /* mid */
    int64_t HWt = P->H[n - 1] * P->W[n - 1], main_n = B * HWt * c->ch[n - 1];
    temp = LMX_MAX(temp, (size_t)nn_resnet_temp(&u->mid_res[0], B, HWt) * sizeof(float));
    temp = LMX_MAX(temp, xformer_temp(&u->mid_att, B, HWt, Lc));
    /* up: block i at level n-1-i; resnet inputs are concatenations */
    int sk = P->n_skips;
    for (int i = 0; i < n; i++) {
        int r = n - 1 - i;
        int64_t HW = P->H[r] * P->W[r];
        const ublock *b = &u->up[i];
        for (int j = 0; j < b->n_res; j++) {
            sk--;
            size_t t = nn_bytes(B * HW * b->res[j].c_in) + (size_t)nn_resnet_temp(&b->res[j], B, HW) * sizeof(float);
            temp = LMX_MAX(temp, t);
            main_n = LMX_MAX(main_n, B * HW * b->res[j].c_out);
            if (b->has_att) temp = LMX_MAX(temp, xformer_temp(&b->att[j], B, HW, Lc));
        }
        if (i < n - 1) {
            int64_t up = B * P->H[r - 1] * P->W[r - 1] * b->res[0].c_out;
            temp = LMX_MAX(temp, nn_bytes(up));
            main_n = LMX_MAX(main_n, up);
        }
    }
    (void)sk;
    temp = LMX_MAX(temp, nn_bytes(B * h * w * c->ch[0])); /* conv_norm_out output */
    fixed += nn_bytes(main_n);
    int64_t max_out = 0;
    for (int i = 0; i < u->layers.n; i++) max_out = LMX_MAX(max_out, u->layers.v[i]->n_out);
    P->lora_n = nn_lora_scratch_floats(rank, max_out, h * w);
    fixed += P->lora_n ? nn_bytes(P->lora_n) : 0;
    P->main_n = main_n;
    P->fixed = fixed;
    P->temp = temp;
    P->total = fixed + temp + NN_ARENA_SLACK;
}

size_t unet_arena_bytes_lora(const unet *u, int lora_rank, int B, int h, int w, int ctx_len) {
    plan P;
    make_plan(u, lora_rank, B, h, w, ctx_len, &P);
    return P.total;
}

size_t unet_arena_bytes(const unet *u, int B, int h, int w, int ctx_len) {
    return unet_arena_bytes_lora(u, 0, B, h, w, ctx_len);
}

/* ---- forward ---------------------------------------------------------------------- */

/* Stride-2 downsampler; diffusers pads (0, 1, 0, 1) itself when padding is 0. */
static lmx_status downsample(nn_run *run, const nn_layer *conv, const float *x, float *y, int64_t H, int64_t W,
                             int64_t C) {
    if (conv->pad != 0) return nn_conv(run, conv, x, y, H, W, 0.0f);
    int64_t B = run->n_samples, Hp = H + 1, Wp = W + 1;
    size_t mark = lmx_arena_mark(run->arena);
    float *p = nn_alloc(run, B * Hp * Wp * C);
    if (!p) return LMX_ERR_NOMEM;
    memset(p, 0, sizeof(float) * (size_t)(B * Hp * Wp * C));
    for (int64_t b = 0; b < B; b++)
        for (int64_t i = 0; i < H; i++)
            memcpy(p + ((b * Hp + i) * Wp) * C, x + ((b * H + i) * W) * C, sizeof(float) * (size_t)(W * C));
    lmx_status st = nn_conv(run, conv, p, y, Hp, Wp, 0.0f);
    lmx_arena_reset(run->arena, mark);
    return st;
}

lmx_status unet_forward(const unet *u, nn_run *run, const float *x, const float *t, const float *context,
                        int ctx_len, float *eps, int B_, int h, int w) {
    const unet_config *c = &u->cfg;
    int n = c->n_levels, L = c->layers_per_block;
    int64_t B = B_, Lc = ctx_len;
    lmx_status st = LMX_OK;
    if (B < 1 || h < 1 || w < 1 || Lc < 1)
        return lmx_err(LMX_ERR_ARG, "unet: bad forward size B=%d h=%d w=%d context=%d", B_, h, w, ctx_len);
    if (!run || !run->arena) return lmx_err(LMX_ERR_ARG, "unet: forward needs a run with an arena");
    plan P;
    make_plan(u, nn_hooks_max_rank(run->hooks), B, h, w, Lc, &P);
    if (run->arena->size - run->arena->used < P.total)
        return lmx_err(LMX_ERR_ARG, "unet: activation arena has %zu bytes free, %zu needed (B=%d, %dx%d)",
                       run->arena->size - run->arena->used, P.total, B_, h, w);
    for (int i = 1; i < n; i++)
        if (P.H[i] < 1 || P.W[i] < 1)
            return lmx_err(LMX_ERR_ARG, "unet: a %dx%d latent is too small for %d levels", h, w, n);
    run->n_samples = (int)B;
    size_t mark0 = lmx_arena_mark(run->arena);
    float *skip[1 + CFG_MAX_LEVELS * (MAX_LAYERS + 1)];
    float *s = nn_alloc(run, B * c->ch[0]);
    float *e1 = nn_alloc(run, B * u->temb_dim), *temb = nn_alloc(run, B * u->temb_dim);
    float *xc = c->center_input ? nn_alloc(run, B * h * w * c->in_channels) : NULL;
    int ok = s && e1 && temb && (xc || !c->center_input);
    for (int k = 0; k < P.n_skips; k++) ok = ok && (skip[k] = nn_alloc(run, P.skip_n[k])) != NULL;
    float *hm = nn_alloc(run, P.main_n);
    run->scratch = P.lora_n ? nn_alloc(run, P.lora_n) : NULL;
    run->scratch_n = P.lora_n;
    if (!ok || !hm || (P.lora_n && !run->scratch)) {
        st = LMX_ERR_NOMEM;
        goto done;
    }

    /* time embedding; every ResNet uses SiLU(temb) */
    op_timestep_embedding(t, B, c->ch[0], c->flip_sin_to_cos, c->freq_shift, 10000.0f, s);
    if ((st = nn_linear_rows(run, u->t_lin1, s, e1, B, 1, 0, 0.0f))) goto done;
    op_silu(e1, e1, B * u->temb_dim);
    if ((st = nn_linear_rows(run, u->t_lin2, e1, temb, B, 1, 0, 0.0f))) goto done;
    op_silu(temb, temb, B * u->temb_dim);

    const float *xin = x;
    if (xc) { /* sample = 2 * sample - 1.0 */
        for (int64_t i = 0; i < B * h * w * c->in_channels; i++) xc[i] = 2.0f * x[i] - 1.0f;
        xin = xc;
    }
    if ((st = nn_conv(run, u->conv_in, xin, skip[0], h, w, 0.0f))) goto done;

    /* down */
    int k = 1;
    const float *cur = skip[0];
    for (int i = 0; i < n; i++) {
        const ublock *b = &u->down[i];
        int64_t H = P.H[i], W = P.W[i];
        for (int j = 0; j < L; j++) {
            if ((st = nn_resnet_fwd(run, &b->res[j], cur, skip[k], H, W, temb))) goto done;
            if (b->has_att && (st = xformer_fwd(run, &b->att[j], skip[k], H * W, context, Lc))) goto done;
            cur = skip[k++];
        }
        if (i < n - 1) {
            if ((st = downsample(run, b->sampler, cur, skip[k], H, W, c->ch[i]))) goto done;
            cur = skip[k++];
        }
    }

    /* mid */
    int64_t Ht = P.H[n - 1], Wt = P.W[n - 1];
    if ((st = nn_resnet_fwd(run, &u->mid_res[0], cur, hm, Ht, Wt, temb))) goto done;
    if ((st = xformer_fwd(run, &u->mid_att, hm, Ht * Wt, context, Lc))) goto done;
    if ((st = nn_resnet_fwd(run, &u->mid_res[1], hm, hm, Ht, Wt, temb))) goto done;

    /* up */
    int64_t ch_h = c->ch[n - 1];
    for (int i = 0; i < n; i++) {
        const ublock *b = &u->up[i];
        int r = n - 1 - i;
        int64_t H = P.H[r], W = P.W[r], HW = H * W;
        for (int j = 0; j < b->n_res; j++) {
            const float *sk = skip[--k];
            int64_t ch_s = b->res[j].c_in - ch_h;
            size_t mark = lmx_arena_mark(run->arena);
            float *cat = nn_alloc(run, B * HW * b->res[j].c_in);
            if (!cat) {
                st = LMX_ERR_NOMEM;
                goto done;
            }
            op_concat_channels(hm, ch_h, sk, ch_s, cat, B * HW);
            st = nn_resnet_fwd(run, &b->res[j], cat, hm, H, W, temb);
            lmx_arena_reset(run->arena, mark);
            if (st) goto done;
            ch_h = b->res[j].c_out;
            if (b->has_att && (st = xformer_fwd(run, &b->att[j], hm, HW, context, Lc))) goto done;
        }
        if (i < n - 1) {
            int64_t Ho = P.H[r - 1], Wo = P.W[r - 1];
            size_t mark = lmx_arena_mark(run->arena);
            float *up = nn_alloc(run, B * Ho * Wo * ch_h);
            if (!up) {
                st = LMX_ERR_NOMEM;
                goto done;
            }
            if (Ho == 2 * H && Wo == 2 * W)
                op_upsample_nearest2x(hm, up, B, H, W, ch_h);
            else
                op_resize_nearest(hm, up, B, H, W, ch_h, Ho, Wo);
            st = nn_conv(run, b->sampler, up, hm, Ho, Wo, 0.0f);
            lmx_arena_reset(run->arena, mark);
            if (st) goto done;
        }
    }
    LMX_ASSERT(k == 0);

    /* output head */
    {
        size_t mark = lmx_arena_mark(run->arena);
        float *g = nn_alloc(run, B * h * w * c->ch[0]);
        if (!g) {
            st = LMX_ERR_NOMEM;
            goto done;
        }
        op_group_norm(hm, g, B, (int64_t)h * w, c->ch[0], u->norm_out.groups, u->norm_out.gamma, u->norm_out.beta,
                      u->norm_out.eps, 1);
        st = nn_conv(run, u->conv_out, g, eps, h, w, 0.0f);
        lmx_arena_reset(run->arena, mark);
    }
done:
    if (st == LMX_ERR_NOMEM) lmx_err_prefix("unet: ");
    run->scratch = NULL;
    run->scratch_n = 0;
    lmx_arena_reset(run->arena, mark0);
    return st;
}
