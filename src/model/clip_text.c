/*
 * clip_text.c - CLIP text transformer forward (transformers CLIPTextModel,
 * 4.45.1 modeling_clip.py: CLIPTextEmbeddings, CLIPEncoderLayer with
 * CLIPAttention/CLIPMLP, final_layer_norm). See clip_text.h.
 *
 * Arena: the residual stream x, a LayerNorm output, q, k, v, the attention
 * output (each [B·L, C]) and the MLP hidden [B·L, I], plus the LoRA scratch.
 */
#include "model/clip_text.h"

#include <math.h>
#include <string.h>

typedef struct clip_layer {
    nn_norm ln1, ln2;
    nn_layer *q, *k, *v, *o, *fc1, *fc2;
} clip_layer;

struct clip_text {
    clip_text_config cfg;
    nn_layers layers;
    float *tok_emb;        /* [vocab, C] */
    float *pos_emb;        /* [max_pos, C] */
    clip_layer *enc;       /* [cfg.layers] */
    int n_enc;
    nn_norm final_ln;
};

const clip_text_config *clip_text_cfg(const clip_text *m) { return &m->cfg; }
const nn_layers *clip_text_layers(const clip_text *m) { return &m->layers; }

void clip_text_free(clip_text *m) {
    if (!m) return;
    for (int i = 0; i < m->n_enc; i++) {
        nn_norm_free(&m->enc[i].ln1);
        nn_norm_free(&m->enc[i].ln2);
    }
    lmx_free(m->enc);
    lmx_free(m->tok_emb);
    lmx_free(m->pos_emb);
    nn_norm_free(&m->final_ln);
    nn_layers_free(&m->layers);
    lmx_free(m);
}

lmx_status clip_text_load(clip_text **out, nn_src *s, const clip_text_config *cfg) {
    char p[256], q[256];
    lmx_status st;
    *out = NULL;
    if ((st = clip_text_config_check(cfg, s->label))) return st;
    clip_text *m = lmx_calloc(1, sizeof *m);
    if (!m) return lmx_err(LMX_ERR_NOMEM, "%s: out of memory", s->label);
    m->cfg = *cfg;
    int64_t C = cfg->hidden, I = cfg->intermediate;
    int64_t tshape[2] = {cfg->vocab, C}, pshape[2] = {cfg->max_pos, C};
    nn_layers *reg = &m->layers;
    if ((st = nn_src_read(s, "text_model.embeddings.token_embedding.weight", 2, tshape, &m->tok_emb))) goto fail;
    if ((st = nn_src_read(s, "text_model.embeddings.position_embedding.weight", 2, pshape, &m->pos_emb))) goto fail;
    m->enc = lmx_calloc((size_t)cfg->layers, sizeof *m->enc);
    if (!m->enc) {
        st = lmx_err(LMX_ERR_NOMEM, "%s: out of memory", s->label);
        goto fail;
    }
    for (int l = 0; l < cfg->layers; l++) {
        clip_layer *e = &m->enc[l];
        m->n_enc = l + 1;
        nn_path(q, sizeof q, "text_model.encoder.layers.%d", l);
        if ((st = nn_load_norm(s, &e->ln1, nn_path(p, sizeof p, "%s.layer_norm1", q), C, 0, cfg->eps))) goto fail;
        if ((st = nn_load_linear(s, reg, &e->q, nn_path(p, sizeof p, "%s.self_attn.q_proj", q), C, C, 1))) goto fail;
        if ((st = nn_load_linear(s, reg, &e->k, nn_path(p, sizeof p, "%s.self_attn.k_proj", q), C, C, 1))) goto fail;
        if ((st = nn_load_linear(s, reg, &e->v, nn_path(p, sizeof p, "%s.self_attn.v_proj", q), C, C, 1))) goto fail;
        if ((st = nn_load_linear(s, reg, &e->o, nn_path(p, sizeof p, "%s.self_attn.out_proj", q), C, C, 1))) goto fail;
        if ((st = nn_load_norm(s, &e->ln2, nn_path(p, sizeof p, "%s.layer_norm2", q), C, 0, cfg->eps))) goto fail;
        if ((st = nn_load_linear(s, reg, &e->fc1, nn_path(p, sizeof p, "%s.mlp.fc1", q), I, C, 1))) goto fail;
        if ((st = nn_load_linear(s, reg, &e->fc2, nn_path(p, sizeof p, "%s.mlp.fc2", q), C, I, 1))) goto fail;
    }
    if ((st = nn_load_norm(s, &m->final_ln, "text_model.final_layer_norm", C, 0, cfg->eps))) goto fail;
    *out = m;
    return LMX_OK;
fail:
    clip_text_free(m);
    return st;
}

static int64_t lora_floats(const clip_text *m, int r, int64_t rows) {
    return nn_lora_scratch_floats(r, LMX_MAX((int64_t)m->cfg.hidden, (int64_t)m->cfg.intermediate), rows);
}

size_t clip_text_arena_bytes(const clip_text *m, int B, int L) {
    return clip_text_arena_bytes_lora(m, 0, B, L);
}

size_t clip_text_arena_bytes_lora(const clip_text *m, int lora_rank, int B, int L) {
    int64_t M = (int64_t)B * L, C = m->cfg.hidden;
    int64_t lr = lora_floats(m, lora_rank, L);
    return 6 * nn_bytes(M * C) + nn_bytes(M * m->cfg.intermediate) + (lr ? nn_bytes(lr) : 0) + NN_ARENA_SLACK;
}

lmx_status clip_text_forward(const clip_text *m, nn_run *run, const int64_t *ids, int B, int L, int clip_skip,
                             float *out) {
    const clip_text_config *c = &m->cfg;
    int64_t C = c->hidden, I = c->intermediate, M = (int64_t)B * L, D = C / c->heads;
    lmx_status st = LMX_OK;
    if (B < 1 || L < 1 || L > c->max_pos)
        return lmx_err(LMX_ERR_ARG, "text encoder: %d sequences of %d tokens (1 to %d tokens supported)", B, L,
                       c->max_pos);
    if (clip_skip < 0 || clip_skip > c->layers)
        return lmx_err(LMX_ERR_ARG, "clip_skip %d: expected 0 to %d", clip_skip, c->layers);
    for (int64_t i = 0; i < M; i++)
        if (ids[i] < 0 || ids[i] >= c->vocab)
            return lmx_err(LMX_ERR_ARG, "text encoder: token id %lld at position %lld is outside the vocabulary "
                           "(%d ids)", (long long)ids[i], (long long)(i % L), c->vocab);
    if (!run || !run->arena) return lmx_err(LMX_ERR_ARG, "text encoder: forward needs a run with an arena");
    const int rank = nn_hooks_max_rank(run->hooks);
    size_t need = clip_text_arena_bytes_lora(m, rank, B, L);
    if (run->arena->size - run->arena->used < need)
        return lmx_err(LMX_ERR_ARG, "text encoder: activation arena has %zu bytes free, %zu needed",
                       run->arena->size - run->arena->used, need);
    run->n_samples = B;
    size_t mark = lmx_arena_mark(run->arena);
    float *x = nn_alloc(run, M * C), *n = nn_alloc(run, M * C), *q = nn_alloc(run, M * C);
    float *k = nn_alloc(run, M * C), *v = nn_alloc(run, M * C), *o = nn_alloc(run, M * C);
    float *f = nn_alloc(run, M * I);
    int64_t lr = lora_floats(m, rank, L);
    run->scratch = lr ? nn_alloc(run, lr) : NULL;
    run->scratch_n = lr;
    if (!x || !n || !q || !k || !v || !o || !f || (lr && !run->scratch)) {
        st = LMX_ERR_NOMEM;
        goto done;
    }
    /* embeddings: token row + position row (one fp32 add) */
    for (int64_t b = 0; b < B; b++)
        for (int64_t i = 0; i < L; i++)
            op_add(m->tok_emb + ids[b * L + i] * C, m->pos_emb + i * C, x + (b * L + i) * C, C);
    float scale = (float)pow((double)D, -0.5);
    int n_run = c->layers - clip_skip;
    for (int l = 0; l < n_run; l++) {
        const clip_layer *e = &m->enc[l];
        op_layer_norm(x, n, M, C, e->ln1.gamma, e->ln1.beta, e->ln1.eps);
        if ((st = nn_linear(run, e->q, n, q, M, 0.0f))) goto done;
        if ((st = nn_linear(run, e->k, n, k, M, 0.0f))) goto done;
        if ((st = nn_linear(run, e->v, n, v, M, 0.0f))) goto done;
        if ((st = op_attention(run->ctx, q, C, L * C, k, C, L * C, v, C, L * C, o, C, L * C, B, L, L, c->heads, D,
                               scale, 1)))
            goto done;
        if ((st = nn_linear(run, e->o, o, x, M, 1.0f))) goto done;
        op_layer_norm(x, n, M, C, e->ln2.gamma, e->ln2.beta, e->ln2.eps);
        if ((st = nn_linear(run, e->fc1, n, f, M, 0.0f))) goto done;
        if (c->act == CLIP_ACT_QUICK_GELU)
            op_quick_gelu(f, f, M * I);
        else
            op_gelu_erf(f, f, M * I);
        if ((st = nn_linear(run, e->fc2, f, x, M, 1.0f))) goto done;
    }
    op_layer_norm(x, out, M, C, m->final_ln.gamma, m->final_ln.beta, m->final_ln.eps);
done:
    if (st == LMX_ERR_NOMEM) lmx_err_prefix("text encoder: ");
    run->scratch = NULL;
    run->scratch_n = 0;
    lmx_arena_reset(run->arena, mark);
    return st;
}
