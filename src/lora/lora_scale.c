/*
 * lora_scale.c - the scale diffusers 0.32.2 + peft 0.12.0 give each LoRA
 * module, so that loramix can say where it differs from "each module's own
 * alpha / rank" and reproduce it on request (lora_opts.scaling).
 *
 * What the reference does (docs/methods.md §2.2; diffusers utils/peft_utils.py
 * get_peft_kwargs, loaders/peft.py _maybe_adjust_config, loaders/lora_base.py
 * _load_lora_into_text_encoder; peft tuners/lora/model.py
 * _create_and_replace), per component (UNet, text encoder):
 *
 *   ranks, in "rank order" (UNet: file keys sorted, as safetensors lists them
 *   and the kohya conversion walks them; TE: for each layer out/q/k/v_proj,
 *   then for each layer fc1/fc2):
 *       r_default = the most frequent rank (ties: first seen), exceptions
 *       per module; with no alpha at all, alpha_default = the FIRST rank.
 *   alphas (kohya files only; in sorted key order):
 *       one value: alpha_default = it; several: the most frequent (ties: first
 *       seen), exceptions per module, but the exception's name is mangled for
 *       UNet attention projections (attn1/attn2 to_q/k/v/to_out.0) and TE
 *       self-attention projections, so peft never applies those exceptions:
 *       they get alpha_default. Modules without an alpha get alpha_default.
 *   UNet only (0.32.2 _maybe_adjust_config): when two or more modules have a
 *       rank other than r_default, alpha_default = r_default and every rank
 *       exception gets alpha = its rank: every UNet module's scale is 1.
 *   scale = alpha / r in double; peft multiplies fp32 outputs by it.
 *
 * Not emulated: _maybe_adjust_config's rewrite for module names that are
 * substrings of other target names (never the case for SD1.x paths), and
 * keys that match no layer (the reference counts them in the frequencies).
 */
#include <stdlib.h>
#include <string.h>

#include "lora/lora_impl.h"

static int cmp_key(const void *a, const void *b) {
    const lora_module *x = *(const lora_module *const *)a, *y = *(const lora_module *const *)b;
    return strcmp(x->key, y->key);
}

/* TE rank order: attention projections of every layer first (out, q, k, v),
 * then the MLP (fc1, fc2), as _load_lora_into_text_encoder walks them. */
static long te_order(const lora_module *m) {
    const char *p = m->tg->path, *s = strstr(p, "layers.");
    long layer = s ? strtol(s + 7, NULL, 10) : 0;
    static const char *attn[4] = {"out_proj", "q_proj", "k_proj", "v_proj"};
    for (int i = 0; i < 4; i++)
        if (strstr(p, attn[i])) return layer * 4 + i;
    if (strstr(p, "fc1")) return 1000000L + layer * 2;
    return 1000000L + layer * 2 + 1;
}

static int cmp_te(const void *a, const void *b) {
    long x = te_order(*(const lora_module *const *)a), y = te_order(*(const lora_module *const *)b);
    return (x > y) - (x < y);
}

/* Most frequent of v[0..n) (ties: the first value seen). */
static double mode_first(const double *v, int n, int *n_distinct) {
    double best = v[0];
    int best_c = 0, distinct = 0;
    for (int i = 0; i < n; i++) {
        int seen = 0, c = 0;
        for (int j = 0; j < i; j++)
            if (v[j] == v[i]) seen = 1;
        if (seen) continue;
        distinct++;
        for (int j = i; j < n; j++) c += v[j] == v[i];
        if (c > best_c) {
            best_c = c;
            best = v[i];
        }
    }
    if (n_distinct) *n_distinct = distinct;
    return best;
}

static int is_unet_attn_proj(const char *p) {
    if (!strstr(p, ".transformer_blocks.") || (!strstr(p, ".attn1.") && !strstr(p, ".attn2.")))
        return 0;
    size_t n = strlen(p);
    static const char *tails[4] = {".to_q", ".to_k", ".to_v", ".to_out.0"};
    for (int i = 0; i < 4; i++) {
        size_t k = strlen(tails[i]);
        if (n >= k && !strcmp(p + n - k, tails[i])) return 1;
    }
    return 0;
}

lmx_status lora_ref_scales(lmx_lora *l, char notes[LORA_N_COMP][512]) {
    lmx_status st = LMX_OK;
    lora_module **ord = NULL;
    double *ranks = NULL, *alphas = NULL;
    for (int c = 0; c < LORA_N_COMP; c++) notes[c][0] = 0;
    if (!l->n_mod) return LMX_OK;
    ord = lmx_malloc(sizeof *ord * (size_t)l->n_mod);
    ranks = lmx_malloc(sizeof *ranks * (size_t)l->n_mod);
    alphas = lmx_malloc(sizeof *alphas * (size_t)l->n_mod);
    if (!ord || !ranks || !alphas) {
        st = lmx_err(LMX_ERR_NOMEM, "%s: out of memory", l->path);
        goto done;
    }
    for (int c = 0; c < LORA_N_COMP; c++) {
        int n = 0;
        for (int i = 0; i < l->n_mod; i++)
            if (l->mod[i].comp == (lora_comp)c) ord[n++] = &l->mod[i];
        if (!n) continue;
        /* rank order */
        qsort(ord, (size_t)n, sizeof *ord, c == LORA_TE ? cmp_te : cmp_key);
        for (int i = 0; i < n; i++) ranks[i] = ord[i]->rank;
        double r_first = ranks[0];
        int n_rank_values;
        double r_def = mode_first(ranks, n, &n_rank_values);
        int n_rank_exc = 0;
        for (int i = 0; i < n; i++) n_rank_exc += ranks[i] != r_def;
        /* alpha order: sorted keys (kohya conversion order) */
        qsort(ord, (size_t)n, sizeof *ord, cmp_key);
        int na = 0;
        for (int i = 0; i < n; i++)
            if (ord[i]->has_alpha && (ord[i]->spelling & LORA_FMT_KOHYA)) alphas[na++] = ord[i]->alpha;
        int n_alpha_values = 0;
        double a_def = na ? mode_first(alphas, na, &n_alpha_values) : r_first;
        int all_one = c == LORA_UNET && n_rank_exc > 1;
        int n_diff = 0;
        for (int i = 0; i < n; i++) {
            lora_module *m = ord[i];
            double a = a_def;
            int kohya_alpha = m->has_alpha && (m->spelling & LORA_FMT_KOHYA);
            if (kohya_alpha && n_alpha_values > 1 && (double)m->alpha != a_def) {
                int applied = c == LORA_UNET ? !is_unet_attn_proj(m->tg->path)
                                             : strstr(m->tg->path, ".mlp.") != NULL;
                if (applied) a = m->alpha;
            }
            if (all_one) a = m->rank;
            m->scale_ref = (float)(a / (double)m->rank);
            if (m->scale_ref != m->scale_own) n_diff++;
        }
        l->info[c].n_ref_differs = n_diff;
        if (!n_diff) continue;
        /* Explain the first rule that makes a difference. */
        char *s = notes[c];
        size_t cap = 512;
        if (all_one) {
            snprintf(s, cap,
                     "%d %s modules have a rank other than the most common one (%g), so diffusers "
                     "0.32.2 sets every %s module's alpha to its rank (scale 1)",
                     n_rank_exc, lora_comp_name((lora_comp)c), r_def, lora_comp_name((lora_comp)c));
        } else if (!na && n_rank_values > 1) {
            snprintf(s, cap,
                     "the file has no alpha and the ranks differ: diffusers uses the first module's "
                     "rank (%g) as every module's alpha",
                     r_first);
        } else {
            snprintf(s, cap,
                     "the alphas differ: diffusers gives modules without an alpha, and %s, the most "
                     "common alpha (%g) instead of their own",
                     c == LORA_UNET ? "attention projections (to_q/to_k/to_v/to_out.0)"
                                    : "self-attention projections (q/k/v/out_proj)",
                     a_def);
        }
    }
done:
    lmx_free(ord);
    lmx_free(ranks);
    lmx_free(alphas);
    return st;
}
