/*
 * vae.c - AutoencoderKL decoder/encoder forward (fp32, NHWC), and diffusers'
 * tiled decode. See vae.h.
 *
 * Decoder (diffusers vae.py Decoder): conv_in -> UNetMidBlock2D (ResNet,
 * single-head attention over all positions, ResNet) -> UpDecoderBlock2D x
 * levels (layers_per_block + 1 ResNets, then nearest x2 + conv3x3 except
 * the last) -> GroupNorm -> SiLU -> conv_out. Encoder: conv_in ->
 * DownEncoderBlock2D x levels (ResNets, then a stride-2 conv on the input
 * padded by one row/column at the bottom/right, except the last) -> mid
 * block -> GroupNorm -> SiLU -> conv_out (2·latent). All GroupNorms eps 1e-6.
 *
 * Memory: two ping-pong buffers sized for the largest activation, then a
 * stack of per-block temporaries (mark/reset); sized by the plans below.
 */
#include "model/vae.h"

#include <math.h>
#include <string.h>

#define MAX_LAYERS 17

typedef struct vattn {
    nn_norm norm;
    nn_layer *q, *k, *v, *o;
    int64_t C;
} vattn;

typedef struct vmid {
    nn_resnet res[2];
    vattn att;
    int has_att;
} vmid;

typedef struct vblock {
    nn_resnet res[MAX_LAYERS];
    int n_res;
    nn_layer *sampler;
} vblock;

struct vae {
    vae_config cfg;
    nn_layers layers;
    int has_enc;
    nn_layer *e_conv_in, *e_conv_out, *quant;
    vblock e_down[CFG_MAX_LEVELS];
    vmid e_mid;
    nn_norm e_norm_out;
    nn_layer *post_quant, *d_conv_in, *d_conv_out;
    vmid d_mid;
    vblock d_up[CFG_MAX_LEVELS];
    nn_norm d_norm_out;
};

const vae_config *vae_cfg(const vae *v) { return &v->cfg; }
nn_layers *vae_layers(vae *v) { return &v->layers; }
int vae_has_encoder(const vae *v) { return v->has_enc; }
int vae_factor(const vae *v) { return 1 << (v->cfg.n_levels - 1); }

void vae_unscale(const vae *v, const float *x, float *z, int64_t n) {
    float s = v->cfg.scaling_factor;
    for (int64_t i = 0; i < n; i++) z[i] = x[i] / s;
}

/* ---- loading -------------------------------------------------------------------- */

static void mid_free(vmid *m) {
    nn_resnet_free(&m->res[0]);
    nn_resnet_free(&m->res[1]);
    nn_norm_free(&m->att.norm);
}

static void block_free(vblock *b) {
    for (int j = 0; j < MAX_LAYERS; j++) nn_resnet_free(&b->res[j]);
}

void vae_free(vae *v) {
    if (!v) return;
    for (int i = 0; i < CFG_MAX_LEVELS; i++) {
        block_free(&v->e_down[i]);
        block_free(&v->d_up[i]);
    }
    mid_free(&v->e_mid);
    mid_free(&v->d_mid);
    nn_norm_free(&v->e_norm_out);
    nn_norm_free(&v->d_norm_out);
    nn_layers_free(&v->layers);
    lmx_free(v);
}

static lmx_status mid_load(nn_src *s, nn_layers *reg, vmid *m, const char *path, int64_t C, const vae_config *c) {
    char p[256], q[256];
    lmx_status st;
    if ((st = nn_resnet_load(s, reg, &m->res[0], nn_path(p, sizeof p, "%s.resnets.0", path), C, C, 0, c->groups,
                             1e-6f)))
        return st;
    m->has_att = c->mid_attn;
    if (m->has_att) {
        vattn *a = &m->att;
        a->C = C;
        nn_path(q, sizeof q, "%s.attentions.0", path);
        if ((st = nn_load_norm(s, &a->norm, nn_path(p, sizeof p, "%s.group_norm", q), C, c->groups, 1e-6f)))
            return st;
        if ((st = nn_load_linear(s, reg, &a->q, nn_path(p, sizeof p, "%s.to_q", q), C, C, 1))) return st;
        if ((st = nn_load_linear(s, reg, &a->k, nn_path(p, sizeof p, "%s.to_k", q), C, C, 1))) return st;
        if ((st = nn_load_linear(s, reg, &a->v, nn_path(p, sizeof p, "%s.to_v", q), C, C, 1))) return st;
        if ((st = nn_load_linear(s, reg, &a->o, nn_path(p, sizeof p, "%s.to_out.0", q), C, C, 1))) return st;
    }
    return nn_resnet_load(s, reg, &m->res[1], nn_path(p, sizeof p, "%s.resnets.1", path), C, C, 0, c->groups, 1e-6f);
}

static lmx_status load_encoder(vae *v, nn_src *s) {
    const vae_config *c = &v->cfg;
    nn_layers *reg = &v->layers;
    char p[256];
    lmx_status st;
    int n = c->n_levels;
    if ((st = nn_load_conv(s, reg, &v->e_conv_in, "encoder.conv_in", c->ch[0], c->in_channels, 3, 1, 1, 1))) return st;
    int64_t out_c = c->ch[0];
    for (int i = 0; i < n; i++) {
        vblock *b = &v->e_down[i];
        int64_t in_c = out_c;
        out_c = c->ch[i];
        b->n_res = c->layers_per_block;
        for (int j = 0; j < b->n_res; j++)
            if ((st = nn_resnet_load(s, reg, &b->res[j], nn_path(p, sizeof p, "encoder.down_blocks.%d.resnets.%d", i, j),
                                     j == 0 ? in_c : out_c, out_c, 0, c->groups, 1e-6f)))
                return st;
        if (i < n - 1 &&
            (st = nn_load_conv(s, reg, &b->sampler, nn_path(p, sizeof p, "encoder.down_blocks.%d.downsamplers.0.conv", i),
                               out_c, out_c, 3, 2, 0, 1)))
            return st;
    }
    if ((st = mid_load(s, reg, &v->e_mid, "encoder.mid_block", c->ch[n - 1], c))) return st;
    if ((st = nn_load_norm(s, &v->e_norm_out, "encoder.conv_norm_out", c->ch[n - 1], c->groups, 1e-6f))) return st;
    if ((st = nn_load_conv(s, reg, &v->e_conv_out, "encoder.conv_out", 2 * c->latent_channels, c->ch[n - 1], 3, 1, 1,
                           1)))
        return st;
    if (c->use_quant_conv &&
        (st = nn_load_conv(s, reg, &v->quant, "quant_conv", 2 * c->latent_channels, 2 * c->latent_channels, 1, 1, 0, 1)))
        return st;
    return LMX_OK;
}

static lmx_status load_decoder(vae *v, nn_src *s) {
    const vae_config *c = &v->cfg;
    nn_layers *reg = &v->layers;
    char p[256];
    lmx_status st;
    int n = c->n_levels;
    int64_t lat = c->latent_channels;
    if (c->use_post_quant_conv &&
        (st = nn_load_conv(s, reg, &v->post_quant, "post_quant_conv", lat, lat, 1, 1, 0, 1)))
        return st;
    if ((st = nn_load_conv(s, reg, &v->d_conv_in, "decoder.conv_in", c->ch[n - 1], lat, 3, 1, 1, 1))) return st;
    if ((st = mid_load(s, reg, &v->d_mid, "decoder.mid_block", c->ch[n - 1], c))) return st;
    int64_t out_c = c->ch[n - 1];
    for (int i = 0; i < n; i++) {
        vblock *b = &v->d_up[i];
        int64_t prev = out_c;
        out_c = c->ch[n - 1 - i];
        b->n_res = c->layers_per_block + 1;
        for (int j = 0; j < b->n_res; j++)
            if ((st = nn_resnet_load(s, reg, &b->res[j], nn_path(p, sizeof p, "decoder.up_blocks.%d.resnets.%d", i, j),
                                     j == 0 ? prev : out_c, out_c, 0, c->groups, 1e-6f)))
                return st;
        if (i < n - 1 &&
            (st = nn_load_conv(s, reg, &b->sampler, nn_path(p, sizeof p, "decoder.up_blocks.%d.upsamplers.0.conv", i),
                               out_c, out_c, 3, 1, 1, 1)))
            return st;
    }
    if ((st = nn_load_norm(s, &v->d_norm_out, "decoder.conv_norm_out", c->ch[0], c->groups, 1e-6f))) return st;
    return nn_load_conv(s, reg, &v->d_conv_out, "decoder.conv_out", c->out_channels, c->ch[0], 3, 1, 1, 1);
}

lmx_status vae_load(vae **out, nn_src *s, const vae_config *cfg, int with_encoder) {
    lmx_status st;
    *out = NULL;
    if ((st = vae_config_check(cfg, s->label))) return st;
    vae *v = lmx_calloc(1, sizeof *v);
    if (!v) return lmx_err(LMX_ERR_NOMEM, "%s: out of memory", s->label);
    v->cfg = *cfg;
    v->has_enc = with_encoder;
    if (with_encoder && (st = load_encoder(v, s))) goto fail;
    if ((st = load_decoder(v, s))) goto fail;
    *out = v;
    return LMX_OK;
fail:
    vae_free(v);
    return st;
}

/* ---- blocks ------------------------------------------------------------------------ */

static size_t attn_temp(int64_t B, int64_t HW, int64_t C) { return 5 * nn_bytes(B * HW * C); }

/* In place: x[B, HW, C] += to_out(attention(GN(x))), one head of width C. */
static lmx_status attn_fwd(nn_run *run, const vattn *a, float *x, int64_t HW) {
    int64_t B = run->n_samples, C = a->C;
    size_t mark = lmx_arena_mark(run->arena);
    lmx_status st = LMX_OK;
    float *n = nn_alloc(run, B * HW * C), *q = nn_alloc(run, B * HW * C), *k = nn_alloc(run, B * HW * C);
    float *v = nn_alloc(run, B * HW * C), *o = nn_alloc(run, B * HW * C);
    if (!n || !q || !k || !v || !o) {
        st = LMX_ERR_NOMEM;
        goto done;
    }
    op_group_norm(x, n, B, HW, C, a->norm.groups, a->norm.gamma, a->norm.beta, a->norm.eps, 0);
    if ((st = nn_linear(run, a->q, n, q, B * HW, 0.0f))) goto done;
    if ((st = nn_linear(run, a->k, n, k, B * HW, 0.0f))) goto done;
    if ((st = nn_linear(run, a->v, n, v, B * HW, 0.0f))) goto done;
    if ((st = op_attention(run->ctx, q, C, HW * C, k, C, HW * C, v, C, HW * C, o, C, HW * C, B, HW, HW, 1, C,
                           (float)pow((double)C, -0.5), 0)))
        goto done;
    st = nn_linear(run, a->o, o, x, B * HW, 1.0f);
done:
    lmx_arena_reset(run->arena, mark);
    return st;
}

/* ResNet from *cur, in place when it has no shortcut, else into *other
 * (then the two are swapped). */
static lmx_status res_step(nn_run *run, const nn_resnet *r, float **cur, float **other, int64_t H, int64_t W) {
    if (!r->shortcut) return nn_resnet_fwd(run, r, *cur, *cur, H, W, NULL);
    lmx_status st = nn_resnet_fwd(run, r, *cur, *other, H, W, NULL);
    float *t = *cur;
    *cur = *other;
    *other = t;
    return st;
}

static lmx_status mid_fwd(nn_run *run, const vmid *m, float **cur, float **other, int64_t H, int64_t W) {
    lmx_status st;
    if ((st = res_step(run, &m->res[0], cur, other, H, W))) return st;
    if (m->has_att && (st = attn_fwd(run, &m->att, *cur, H * W))) return st;
    return res_step(run, &m->res[1], cur, other, H, W);
}

static size_t mid_temp(const vmid *m, int64_t B, int64_t HW) {
    size_t t = (size_t)nn_resnet_temp(&m->res[0], B, HW) * sizeof(float);
    if (m->has_att) t = LMX_MAX(t, attn_temp(B, HW, m->att.C));
    return t;
}

static int64_t lora_floats(const vae *v, int64_t hw) {
    int r = 0; /* no LoRA targets the VAE */
    int64_t max_out = 0;
    for (int i = 0; i < v->layers.n; i++) max_out = LMX_MAX(max_out, v->layers.v[i]->n_out);
    return nn_lora_scratch_floats(r, max_out, hw);
}

/* ---- decode -------------------------------------------------------------------------- */

typedef struct dplan {
    int64_t main_n, lora_n;
    size_t temp, total;
} dplan;

static void decode_plan(const vae *v, int64_t B, int64_t h, int64_t w, dplan *P) {
    const vae_config *c = &v->cfg;
    int n = c->n_levels;
    int64_t H = h, W = w, main_n = B * h * w * LMX_MAX((int64_t)c->latent_channels, (int64_t)c->ch[n - 1]);
    size_t temp = mid_temp(&v->d_mid, B, H * W);
    for (int i = 0; i < n; i++) {
        const vblock *b = &v->d_up[i];
        for (int j = 0; j < b->n_res; j++) {
            main_n = LMX_MAX(main_n, B * H * W * b->res[j].c_out);
            temp = LMX_MAX(temp, (size_t)nn_resnet_temp(&b->res[j], B, H * W) * sizeof(float));
        }
        if (i < n - 1) {
            int64_t C = b->res[0].c_out;
            H *= 2;
            W *= 2;
            temp = LMX_MAX(temp, nn_bytes(B * H * W * C));
            main_n = LMX_MAX(main_n, B * H * W * C);
        }
    }
    temp = LMX_MAX(temp, nn_bytes(B * H * W * c->ch[0]));
    P->main_n = main_n;
    P->lora_n = lora_floats(v, H * W);
    P->temp = temp;
    P->total = 2 * nn_bytes(main_n) + (P->lora_n ? nn_bytes(P->lora_n) : 0) + temp + NN_ARENA_SLACK;
}

size_t vae_decode_arena_bytes(const vae *v, int B, int h, int w) {
    dplan P;
    decode_plan(v, B, h, w, &P);
    return P.total;
}

static lmx_status check_arena(const nn_run *run, size_t need, const char *what) {
    if (!run || !run->arena) return lmx_err(LMX_ERR_ARG, "vae %s: forward needs a run with an arena", what);
    if (run->arena->size - run->arena->used < need)
        return lmx_err(LMX_ERR_ARG, "vae %s: activation arena has %zu bytes free, %zu needed", what,
                       run->arena->size - run->arena->used, need);
    return LMX_OK;
}

/* Start a decode/encode pass (the arena already checked): take the two
 * ping-pong activation buffers and the LoRA side-path scratch from it.
 * *mark is set first, so the caller's epilogue (pass_end) resets to it. */
static lmx_status pass_begin(nn_run *run, const dplan *P, int64_t B, size_t *mark, float **cur,
                             float **other) {
    run->n_samples = (int)B;
    *mark = lmx_arena_mark(run->arena);
    *cur = nn_alloc(run, P->main_n);
    *other = nn_alloc(run, P->main_n);
    run->scratch = P->lora_n ? nn_alloc(run, P->lora_n) : NULL;
    run->scratch_n = P->lora_n;
    return !*cur || !*other || (P->lora_n && !run->scratch) ? LMX_ERR_NOMEM : LMX_OK;
}

static lmx_status pass_end(nn_run *run, size_t mark, lmx_status st, const char *what) {
    if (st == LMX_ERR_NOMEM) lmx_err_prefix("vae %s: ", what);
    run->scratch = NULL;
    run->scratch_n = 0;
    lmx_arena_reset(run->arena, mark);
    return st;
}

/* GroupNorm + SiLU, then the output conv: y = conv(silu(norm(x))), x [B, H, W, C]. */
static lmx_status norm_out_conv(nn_run *run, const nn_norm *norm, const nn_layer *conv, const float *x,
                                float *y, int64_t B, int64_t H, int64_t W, int64_t C) {
    size_t m2 = lmx_arena_mark(run->arena);
    float *g = nn_alloc(run, B * H * W * C);
    if (!g) return LMX_ERR_NOMEM;
    op_group_norm(x, g, B, H * W, C, norm->groups, norm->gamma, norm->beta, norm->eps, 1);
    lmx_status st = nn_conv(run, conv, g, y, H, W, 0.0f);
    lmx_arena_reset(run->arena, m2);
    return st;
}

lmx_status vae_decode(const vae *v, nn_run *run, const float *z, int B_, int h, int w, float *img) {
    const vae_config *c = &v->cfg;
    int n = c->n_levels;
    int64_t B = B_, H = h, W = w;
    lmx_status st = LMX_OK;
    if (B < 1 || h < 1 || w < 1) return lmx_err(LMX_ERR_ARG, "vae decode: bad size B=%d %dx%d", B_, h, w);
    dplan P;
    decode_plan(v, B, h, w, &P);
    size_t mark = 0;
    float *cur = NULL, *other = NULL;
    if ((st = check_arena(run, P.total, "decode"))) return st;
    if ((st = pass_begin(run, &P, B, &mark, &cur, &other))) goto done;
    const float *zin = z;
    if (v->post_quant) {
        if ((st = nn_conv(run, v->post_quant, z, other, H, W, 0.0f))) goto done;
        zin = other;
    }
    if ((st = nn_conv(run, v->d_conv_in, zin, cur, H, W, 0.0f))) goto done;
    if ((st = mid_fwd(run, &v->d_mid, &cur, &other, H, W))) goto done;
    for (int i = 0; i < n; i++) {
        const vblock *b = &v->d_up[i];
        for (int j = 0; j < b->n_res; j++)
            if ((st = res_step(run, &b->res[j], &cur, &other, H, W))) goto done;
        if (i < n - 1) {
            int64_t C = b->res[0].c_out;
            size_t m2 = lmx_arena_mark(run->arena);
            float *up = nn_alloc(run, B * 4 * H * W * C);
            if (!up) {
                st = LMX_ERR_NOMEM;
                goto done;
            }
            op_upsample_nearest2x(cur, up, B, H, W, C);
            H *= 2;
            W *= 2;
            st = nn_conv(run, b->sampler, up, other, H, W, 0.0f);
            lmx_arena_reset(run->arena, m2);
            if (st) goto done;
            float *t = cur;
            cur = other;
            other = t;
        }
    }
    st = norm_out_conv(run, &v->d_norm_out, v->d_conv_out, cur, img, B, H, W, c->ch[0]);
done:
    return pass_end(run, mark, st, "decode");
}

/* ---- encode ---------------------------------------------------------------------------- */

static int64_t enc_down(int64_t H) { return H + 1 < 3 ? 0 : (H + 1 - 3) / 2 + 1; }

void vae_encode_out_hw(const vae *v, int H, int W, int *h, int *w) {
    int64_t a = H, b = W;
    for (int i = 0; i < v->cfg.n_levels - 1; i++) {
        a = enc_down(a);
        b = enc_down(b);
    }
    *h = (int)a;
    *w = (int)b;
}

static void encode_plan(const vae *v, int64_t B, int64_t H, int64_t W, dplan *P) {
    const vae_config *c = &v->cfg;
    int n = c->n_levels;
    int64_t main_n = B * H * W * c->ch[0];
    size_t temp = 0;
    int64_t HW0 = H * W;
    for (int i = 0; i < n; i++) {
        const vblock *b = &v->e_down[i];
        for (int j = 0; j < b->n_res; j++) {
            main_n = LMX_MAX(main_n, B * H * W * b->res[j].c_out);
            temp = LMX_MAX(temp, (size_t)nn_resnet_temp(&b->res[j], B, H * W) * sizeof(float));
        }
        if (i < n - 1) {
            int64_t C = c->ch[i];
            temp = LMX_MAX(temp, nn_bytes(B * (H + 1) * (W + 1) * C));
            H = enc_down(H);
            W = enc_down(W);
            main_n = LMX_MAX(main_n, B * H * W * C);
        }
    }
    temp = LMX_MAX(temp, mid_temp(&v->e_mid, B, H * W));
    temp = LMX_MAX(temp, nn_bytes(B * H * W * c->ch[n - 1]));
    main_n = LMX_MAX(main_n, B * H * W * 2 * c->latent_channels);
    P->main_n = main_n;
    P->lora_n = lora_floats(v, HW0);
    P->temp = temp;
    P->total = 2 * nn_bytes(main_n) + (P->lora_n ? nn_bytes(P->lora_n) : 0) + temp + NN_ARENA_SLACK;
}

size_t vae_encode_arena_bytes(const vae *v, int B, int H, int W) {
    dplan P;
    encode_plan(v, B, H, W, &P);
    return P.total;
}

lmx_status vae_encode(const vae *v, nn_run *run, const float *img, int B_, int H_, int W_, float *moments) {
    const vae_config *c = &v->cfg;
    int n = c->n_levels;
    int64_t B = B_, H = H_, W = W_;
    lmx_status st = LMX_OK;
    if (!v->has_enc) return lmx_err(LMX_ERR_ARG, "vae encode: the encoder was not loaded");
    int h, w;
    vae_encode_out_hw(v, H_, W_, &h, &w);
    if (B < 1 || h < 1 || w < 1) return lmx_err(LMX_ERR_ARG, "vae encode: bad size B=%d %dx%d", B_, H_, W_);
    dplan P;
    encode_plan(v, B, H, W, &P);
    size_t mark = 0;
    float *cur = NULL, *other = NULL;
    if ((st = check_arena(run, P.total, "encode"))) return st;
    if ((st = pass_begin(run, &P, B, &mark, &cur, &other))) goto done;
    if ((st = nn_conv(run, v->e_conv_in, img, cur, H, W, 0.0f))) goto done;
    for (int i = 0; i < n; i++) {
        const vblock *b = &v->e_down[i];
        for (int j = 0; j < b->n_res; j++)
            if ((st = res_step(run, &b->res[j], &cur, &other, H, W))) goto done;
        if (i < n - 1) { /* pad (0, 1, 0, 1), conv stride 2 */
            int64_t C = c->ch[i], Hp = H + 1, Wp = W + 1;
            size_t m2 = lmx_arena_mark(run->arena);
            float *p = nn_alloc(run, B * Hp * Wp * C);
            if (!p) {
                st = LMX_ERR_NOMEM;
                goto done;
            }
            memset(p, 0, sizeof(float) * (size_t)(B * Hp * Wp * C));
            for (int64_t bb = 0; bb < B; bb++)
                for (int64_t y = 0; y < H; y++)
                    memcpy(p + ((bb * Hp + y) * Wp) * C, cur + ((bb * H + y) * W) * C, sizeof(float) * (size_t)(W * C));
            st = nn_conv(run, b->sampler, p, other, Hp, Wp, 0.0f);
            lmx_arena_reset(run->arena, m2);
            if (st) goto done;
            H = enc_down(H);
            W = enc_down(W);
            float *t = cur;
            cur = other;
            other = t;
        }
    }
    if ((st = mid_fwd(run, &v->e_mid, &cur, &other, H, W))) goto done;
    st = norm_out_conv(run, &v->e_norm_out, v->e_conv_out, cur, v->quant ? other : moments, B, H, W,
                       c->ch[n - 1]);
    if (!st && v->quant) st = nn_conv(run, v->quant, other, moments, H, W, 0.0f);
done:
    return pass_end(run, mark, st, "encode");
}

/* ---- tiled decode (diffusers AutoencoderKL.tiled_decode) ---------------------------------- */

typedef struct tgeom {
    int64_t f, T, Tp;       /* factor, latent tile, pixel tile                 */
    int64_t stride, blend, limit;
    int64_t rows, cols;     /* tiles                                           */
} tgeom;

static void tiled_geom(const vae *v, int64_t h, int64_t w, int64_t tile, tgeom *g) {
    g->f = vae_factor(v);
    g->T = tile;
    g->Tp = tile * g->f;
    g->stride = (int64_t)((double)tile * (1.0 - 0.25));
    g->blend = (int64_t)((double)g->Tp * 0.25);
    g->limit = g->Tp - g->blend;
    g->rows = g->stride > 0 ? (h + g->stride - 1) / g->stride : 0;
    g->cols = g->stride > 0 ? (w + g->stride - 1) / g->stride : 0;
}

size_t vae_tiled_arena_bytes(const vae *v, int B, int h, int w, int tile) {
    if (tile < 1) return 0;
    if (h <= tile && w <= tile) return vae_decode_arena_bytes(v, B, h, w);
    tgeom g;
    tiled_geom(v, h, w, tile, &g);
    int64_t C = v->cfg.out_channels;
    size_t rows = (size_t)(2 * g.cols) * nn_bytes((int64_t)B * g.Tp * g.Tp * C);
    return rows + nn_bytes((int64_t)B * tile * tile * v->cfg.latent_channels) +
           vae_decode_arena_bytes(v, B, tile, tile) + NN_ARENA_SLACK;
}

/* b = blend of the last `e` rows (vertical) / columns of a into the first of b,
 * weights (1 - y/e) and y/e rounded to fp32 like torch's scalar multiply. */
static void blend_v(const float *a, int64_t ah, float *b, int64_t bh, int64_t w_, int64_t B, int64_t C, int64_t e,
                    int64_t aw) {
    e = LMX_MIN(LMX_MIN(ah, bh), e);
    for (int64_t bb = 0; bb < B; bb++)
        for (int64_t y = 0; y < e; y++) {
            float wa = (float)(1.0 - (double)y / (double)e), wb = (float)((double)y / (double)e);
            const float *ar = a + ((bb * ah + (ah - e + y)) * aw) * C;
            float *br = b + ((bb * bh + y) * w_) * C;
            for (int64_t x = 0; x < LMX_MIN(aw, w_) * C; x++) br[x] = ar[x] * wa + br[x] * wb;
        }
}

static void blend_h(const float *a, int64_t aw, float *b, int64_t bw, int64_t h_, int64_t B, int64_t C, int64_t e,
                    int64_t ah) {
    e = LMX_MIN(LMX_MIN(aw, bw), e);
    for (int64_t bb = 0; bb < B; bb++)
        for (int64_t y = 0; y < LMX_MIN(ah, h_); y++)
            for (int64_t x = 0; x < e; x++) {
                float wa = (float)(1.0 - (double)x / (double)e), wb = (float)((double)x / (double)e);
                const float *ap = a + ((bb * ah + y) * aw + (aw - e + x)) * C;
                float *bp = b + ((bb * h_ + y) * bw + x) * C;
                for (int64_t k = 0; k < C; k++) bp[k] = ap[k] * wa + bp[k] * wb;
            }
}

lmx_status vae_decode_tiled(const vae *v, nn_run *run, const float *z, int B_, int h, int w, int tile, float *img) {
    int64_t B = B_, L = v->cfg.latent_channels, C = v->cfg.out_channels;
    lmx_status st = LMX_OK;
    if (tile < 4) return lmx_err(LMX_ERR_ARG, "vae tiled decode: tile %d is too small", tile);
    if (h <= tile && w <= tile) return vae_decode(v, run, z, B_, h, w, img);
    tgeom g;
    tiled_geom(v, h, w, tile, &g);
    /* the crops must add up to the full image (true for tiles that are multiples of 4) */
    if (g.stride * g.f != g.limit)
        return lmx_err(LMX_ERR_ARG, "vae tiled decode: tile %d does not give seamless crops (use a multiple of 4)",
                       tile);
    if ((st = check_arena(run, vae_tiled_arena_bytes(v, B_, h, w, tile), "tiled decode"))) return st;
    size_t mark = lmx_arena_mark(run->arena);
    int64_t tile_n = B * g.Tp * g.Tp * C;
    float *rows[2][CFG_MAX_LEVELS * 64];
    int64_t th[2][CFG_MAX_LEVELS * 64], tw[2][CFG_MAX_LEVELS * 64];
    if (g.cols > (int64_t)LMX_ARRAY_LEN(rows[0]))
        return lmx_err(LMX_ERR_ARG, "vae tiled decode: %lld tile columns (at most %zu)", (long long)g.cols,
                       LMX_ARRAY_LEN(rows[0]));
    for (int r = 0; r < 2; r++)
        for (int64_t j = 0; j < g.cols; j++)
            if (!(rows[r][j] = nn_alloc(run, tile_n))) {
                st = LMX_ERR_NOMEM;
                goto done;
            }
    float *zt = nn_alloc(run, B * g.T * g.T * L);
    if (!zt) {
        st = LMX_ERR_NOMEM;
        goto done;
    }
    int64_t W = (int64_t)w * g.f;
    for (int64_t ti = 0; ti < g.rows; ti++) {
        int cr = (int)(ti & 1), pr = cr ^ 1;
        int64_t i0 = ti * g.stride, hh = LMX_MIN(g.T, h - i0);
        for (int64_t tj = 0; tj < g.cols; tj++) {
            int64_t j0 = tj * g.stride, ww = LMX_MIN(g.T, w - j0);
            for (int64_t b = 0; b < B; b++)
                for (int64_t y = 0; y < hh; y++)
                    memcpy(zt + ((b * hh + y) * ww) * L, z + ((b * h + i0 + y) * w + j0) * L,
                           sizeof(float) * (size_t)(ww * L));
            float *t = rows[cr][tj];
            if ((st = vae_decode(v, run, zt, B_, (int)hh, (int)ww, t))) goto done;
            int64_t ph = hh * g.f, pw = ww * g.f;
            th[cr][tj] = ph;
            tw[cr][tj] = pw;
            if (ti > 0) blend_v(rows[pr][tj], th[pr][tj], t, ph, pw, B, C, g.blend, tw[pr][tj]);
            if (tj > 0) blend_h(rows[cr][tj - 1], tw[cr][tj - 1], t, pw, ph, B, C, g.blend, th[cr][tj - 1]);
            /* crop [:limit, :limit] into place */
            int64_t ch = LMX_MIN(ph, g.limit), cw = LMX_MIN(pw, g.limit);
            for (int64_t b = 0; b < B; b++)
                for (int64_t y = 0; y < ch; y++)
                    memcpy(img + ((b * (int64_t)h * g.f + ti * g.limit + y) * W + tj * g.limit) * C,
                           t + ((b * ph + y) * pw) * C, sizeof(float) * (size_t)(cw * C));
        }
    }
done:
    if (st == LMX_ERR_NOMEM) lmx_err_prefix("vae tiled decode: ");
    lmx_arena_reset(run->arena, mark);
    return st;
}
