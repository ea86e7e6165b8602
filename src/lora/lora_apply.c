/*
 * lora_apply.c - putting loaded LoRAs to work for one user of a model (a
 * lora_state, held by a context): runtime side paths (attach/detach) or
 * merged private kernels (merge/unmerge), both in the state's hook tables;
 * the model's layers are only read.
 *
 * Runtime: every module of LoRA i becomes an nn_adapter of its layer with
 * lora_index = i and alpha_over_rank = the module's scale; nn.c then adds
 * c · scale · B(A(x)) per sample, c = nn_run.lora_scale[i][sample]. The
 * adapters stay attached; which LoRAs are active at a step, on which
 * samples and with which weight is only the scale table, so switching sets
 * between denoising steps costs nothing but a pointer (peft's
 * `result + lora_B(lora_A(x)) * scaling` in list order, docs/methods.md §2.3).
 *
 * Merged: W' = W + Σ_i w_i · scale · B_i A_i computed from the pristine
 * weights (re-read from the model's mapped file, nn_layer_weight_f32), into
 * a private kernel per touched layer (nn_hooks_set_merged). Unmerging
 * restores the base kernels; nothing is ever subtracted. ΔW for a k x k
 * conv is B [out, r] times A [r, in·k·k] (= diffusers' fuse_lora delta,
 * conv2d(A^T, B)^T). One GEMM per module (op_matmul, fp32, beta = 1 into W).
 */
#include <string.h>

#include "lora/lora_impl.h"

static lmx_status check_set(const sd_model *m, const lmx_lora *const *loras, int n) {
    if (!m || !m->unet || !m->text) return lmx_err(LMX_ERR_ARG, "LoRA: no model");
    if (n < 0 || (n > 0 && !loras)) return lmx_err(LMX_ERR_ARG, "LoRA: bad LoRA list (%d)", n);
    for (int i = 0; i < n; i++) {
        if (!loras[i]) return lmx_err(LMX_ERR_ARG, "LoRA %d of %d: NULL", i + 1, n);
        if (loras[i]->model != m)
            return lmx_err(LMX_ERR_ARG, "%s: this LoRA was loaded for another model (load it for this one)",
                           loras[i]->path);
    }
    return LMX_OK;
}

void lora_state_free(lora_state *s) {
    if (!s) return;
    for (int c = 0; c < LORA_N_COMP; c++) nn_hooks_free(&s->hooks[c]);
    memset(s, 0, sizeof *s);
}

int lora_state_rank(const lora_state *s, lora_comp c) {
    return s && s->hooks[c].v ? nn_hooks_max_rank(&s->hooks[c]) : 0;
}

/* Hook tables for m's layers (kept while the model stays the same). */
static lmx_status state_for(lora_state *s, const sd_model *m) {
    if (s->model == m && s->hooks[LORA_UNET].v) return LMX_OK;
    lora_state_free(s);
    lmx_status st = nn_hooks_init(&s->hooks[LORA_UNET], unet_layers(m->unet));
    if (!st) st = nn_hooks_init(&s->hooks[LORA_TE], clip_text_layers(m->text));
    if (st) {
        lora_state_free(s);
        return st;
    }
    s->model = m;
    return LMX_OK;
}

void lora_detach(lora_state *s) {
    for (int c = 0; s && c < LORA_N_COMP; c++) nn_hooks_detach_all(&s->hooks[c]);
}

lmx_status lora_attach(lora_state *s, const sd_model *m, const lmx_lora *const *loras, int n) {
    lmx_status st = check_set(m, loras, n);
    if (!st) st = state_for(s, m);
    if (st) return st;
    lora_detach(s);
    for (int i = 0; i < n; i++) {
        const lmx_lora *l = loras[i];
        for (int j = 0; j < l->n_mod; j++) {
            const lora_module *md = &l->mod[j];
            if (md->dropped) continue;
            nn_adapter a;
            memset(&a, 0, sizeof a);
            a.lora_index = i;
            a.rank = md->rank;
            a.down = md->down;
            a.up = md->up;
            a.down_conv = md->down_conv;
            a.up_conv = md->up_conv;
            a.alpha_over_rank = md->scale;
            a.user = NULL;
            if ((st = nn_hooks_attach(&s->hooks[md->comp], md->tg->layer, &a))) {
                lmx_err_prefix("%s: ", l->path);
                lora_detach(s);
                return st;
            }
        }
    }
    return LMX_OK;
}

/* ---- merged ------------------------------------------------------------------ */

void lora_unmerge(lora_state *s) {
    for (int c = 0; s && c < LORA_N_COMP; c++) {
        nn_hooks *h = &s->hooks[c];
        for (int i = 0; i < h->n; i++) {
            op_linear_free(h->v[i].merged_lin);
            op_conv2d_free(h->v[i].merged_conv);
            h->v[i].merged_lin = NULL;
            h->v[i].merged_conv = NULL;
        }
    }
}

int lora_n_merged(const lora_state *s) {
    int n = 0;
    for (int c = 0; s && c < LORA_N_COMP; c++) n += nn_hooks_n_merged(&s->hooks[c]);
    return n;
}

/* W[out, in·k·k] += s · B[out, r] · A[r, in·k·k] for one module. */
static lmx_status add_delta(op_ctx *ctx, const lora_module *md, float s, float *W, float *A, float *B) {
    const lora_target *g = md->tg;
    int64_t r = md->rank, cols = g->n_in * (int64_t)md->kh * md->kw;
    lmx_status st = st_to_f32(md->down_t, A);
    if (!st) st = st_to_f32(md->up_t, B);
    if (!st)
        st = op_matmul(ctx, 1, g->n_out, cols, r, s, B, r, 0, 0, A, cols, 0, 0, 1.0f, W, cols, 0);
    return st;
}

lmx_status lora_merge(lora_state *ls, const sd_model *m, const lmx_lora *const *loras,
                      const float *unet_w, const float *te_w, int n) {
    lmx_status st = check_set(m, loras, n);
    if (!st) st = state_for(ls, m);
    if (st) return st;
    lora_unmerge(ls);
    if (n == 0) return LMX_OK;
    op_ctx *ctx = NULL;
    float *W = NULL, *bias = NULL, *A = NULL, *B = NULL;
    size_t capW = 0, capA = 0, capB = 0;
    const lora_targets *t = loras[0]->targets;
    if ((st = op_ctx_create(&ctx))) return st;
    for (int ti = 0; ti < t->n; ti++) {
        const lora_target *g = &t->v[ti];
        const nn_layer *layer = g->layer;
        const float *w = g->comp == LORA_UNET ? unet_w : te_w;
        int touched = 0;
        for (int i = 0; w && i < n; i++) {
            int mi = loras[i]->mod_of_target[ti];
            touched |= mi >= 0 && !loras[i]->mod[mi].dropped && w[i] != 0.0f &&
                       loras[i]->mod[mi].scale != 0.0f;
        }
        if (!touched) continue;
        size_t nw = (size_t)(g->n_out * g->n_in * g->k * g->k);
        if (nw > capW) {
            lmx_free(W);
            W = lmx_alloc_aligned(nw * sizeof *W);
            capW = W ? nw : 0;
        }
        lmx_free(bias);
        bias = lmx_alloc_aligned((size_t)g->n_out * sizeof *bias);
        if (!W || !bias) {
            st = lmx_err(LMX_ERR_NOMEM, "LoRA merge: %s: out of memory", g->path);
            goto done;
        }
        if ((st = nn_layer_weight_f32(layer, W))) goto done;
        if (layer->has_bias && (st = nn_layer_bias_f32(layer, bias))) goto done;
        for (int i = 0; i < n; i++) {
            int mi = loras[i]->mod_of_target[ti];
            if (mi < 0) continue;
            const lora_module *md = &loras[i]->mod[mi];
            float s = (float)((double)w[i] * (double)md->scale);
            if (md->dropped || s == 0.0f) continue;
            size_t na = (size_t)md->down_t->numel, nb = (size_t)md->up_t->numel;
            if (na > capA) {
                lmx_free(A);
                A = lmx_alloc_aligned(na * sizeof *A);
                capA = A ? na : 0;
            }
            if (nb > capB) {
                lmx_free(B);
                B = lmx_alloc_aligned(nb * sizeof *B);
                capB = B ? nb : 0;
            }
            if (!A || !B) {
                st = lmx_err(LMX_ERR_NOMEM, "LoRA merge: %s: out of memory", g->path);
                goto done;
            }
            if ((st = add_delta(ctx, md, s, W, A, B))) {
                lmx_err_prefix("%s: %s: ", loras[i]->path, md->key);
                goto done;
            }
        }
        op_linear *lin = NULL;
        op_conv2d *conv = NULL;
        const float *bp = layer->has_bias ? bias : NULL;
        if (layer->lin)
            st = op_linear_create(&lin, W, bp, g->n_out, g->n_in, OP_PREC_F32);
        else
            st = op_conv2d_create(&conv, W, bp, g->n_out, g->n_in, g->k, g->k, g->stride, g->pad,
                                  OP_PREC_F32, 0);
        if (!st) st = nn_hooks_set_merged(&ls->hooks[g->comp], layer, lin, conv);
        if (st) {
            op_linear_free(lin);
            op_conv2d_free(conv);
            lmx_err_prefix("LoRA merge: ");
            goto done;
        }
    }
done:
    if (st) lora_unmerge(ls);
    lmx_free(W);
    lmx_free(bias);
    lmx_free(A);
    lmx_free(B);
    op_ctx_free(ctx);
    return st;
}
