/*
 * weights.c - the prompt-aware importance weights of the W-methods
 * (docs/methods.md §7, decisions D5, D7, D8; test vectors §10.2),
 * mirroring benchmark_multi_loras.py of Tsoumplekas et al.:
 *
 *   e(s)  = mean over all 77 positions of last_hidden_state(tokenize(s))
 *   PAW   a_i = max(1 - cos(e(P), e(P \ i)), 0.05)  (0.1 without triggers,
 *               2.0 when P \ i is shorter than 5 characters)
 *   PTW   a_i = cos(e(P), e(", ".join(triggers_i)))  (0 without triggers)
 *   w_i   = a_i / Σ a  (when Σ a > 0)
 *
 * The reference computes e(·) and the cosine in fp32 torch, then the rest on
 * Python floats: here the sums run in double and are rounded to fp32 where
 * the reference holds an fp32 tensor (mean vector, cosine), and everything
 * after the cosine is double, summed left to right as Python 3.11's sum().
 *
 * The text encoder runs through a callback (compose_encoder); a ready-made
 * one over the model's clip_text is compose_clip_encode.
 */
#include <errno.h>
#include <math.h>
#include <string.h>

#include "compose/compose.h"
#include "lora/lora.h"

static const char *POOL_NAMES[COMPOSE_POOL_COUNT] = {"mean77", "masked_mean", "eos"};

const char *compose_pool_name(compose_pool p) { return (unsigned)p < COMPOSE_POOL_COUNT ? POOL_NAMES[p] : "?"; }

lmx_status compose_pool_parse(const char *s, compose_pool *out) {
    for (int i = 0; i < COMPOSE_POOL_COUNT; i++)
        if (!strcmp(s, POOL_NAMES[i])) {
            *out = (compose_pool)i;
            return LMX_OK;
        }
    return lmx_err(LMX_ERR_ARG, "--pool: unknown pooling '%s' (mean77, masked_mean, eos)", s);
}

/* ---- arithmetic ----------------------------------------------------------- */

void compose_pool_embedding(const float *h, int L, int hidden, int n_tokens, compose_pool pool, float *e) {
    if (n_tokens < 1) n_tokens = 1;
    if (n_tokens > L) n_tokens = L;
    if (pool == COMPOSE_POOL_EOS) {
        memcpy(e, h + (int64_t)(n_tokens - 1) * hidden, sizeof(float) * (size_t)hidden);
        return;
    }
    int m = pool == COMPOSE_POOL_MASKED_MEAN ? n_tokens : L;
    for (int j = 0; j < hidden; j++) {
        double s = 0;
        for (int p = 0; p < m; p++) s += h[(int64_t)p * hidden + j];
        float sf = (float)s;             /* torch: fp32 sum, then div_ */
        e[j] = sf / (float)m;
    }
}

double compose_cosine(const float *a, const float *b, int d) {
    double sa = 0, sb = 0;
    for (int j = 0; j < d; j++) {
        sa += (double)a[j] * a[j];
        sb += (double)b[j] * b[j];
    }
    float na = (float)sqrt(sa), nb = (float)sqrt(sb);
    if (na < 1e-8f) na = 1e-8f;
    if (nb < 1e-8f) nb = 1e-8f;
    double acc = 0;
    for (int j = 0; j < d; j++) {
        float x = a[j] / na, y = b[j] / nb;
        float xy = x * y;
        acc += xy;
    }
    return (double)(float)acc;
}

static void normalise(const double *a, int n, double *w) {
    double sum = 0;
    for (int i = 0; i < n; i++) sum += a[i];
    for (int i = 0; i < n; i++) w[i] = sum > 0 ? a[i] / sum : a[i];
}

void compose_paw_weights(const double *score, const int *edge, int n, double *a, double *w) {
    for (int i = 0; i < n; i++) {
        int e = edge ? edge[i] : COMPOSE_EDGE_NONE;
        if (e == COMPOSE_EDGE_NO_TRIGGERS) a[i] = COMPOSE_PAW_NO_TRIGGER;
        else if (e == COMPOSE_EDGE_SHORT) a[i] = COMPOSE_PAW_SHORT;
        else a[i] = score[i] > COMPOSE_PAW_FLOOR ? score[i] : COMPOSE_PAW_FLOOR;
    }
    normalise(a, n, w);
}

void compose_ptw_weights(const double *score, const int *edge, int n, double *a, double *w) {
    for (int i = 0; i < n; i++) a[i] = edge && edge[i] == COMPOSE_EDGE_NO_TRIGGERS ? 0.0 : score[i];
    normalise(a, n, w);
}

/* ---- the text-encoder callback over clip_text ------------------------------ */

lmx_status compose_clip_encode(void *user, const int64_t *ids, int B, int L, const unsigned char *te_on,
                               float *out) {
    compose_clip *cc = user;
    float *scale = NULL;
    int any = 0;
    for (int i = 0; te_on && i < cc->n_loras; i++) any |= te_on[i] != 0;
    if (any) {
        if (!cc->te_mult) return lmx_err(LMX_ERR_INTERNAL, "text encoder: LoRAs asked without multipliers");
        scale = lmx_calloc((size_t)cc->n_rows * (size_t)B, sizeof *scale);
        if (!scale) return lmx_err(LMX_ERR_NOMEM, "text encoder: out of memory");
        for (int i = 0; i < cc->n_loras; i++) {
            int row = cc->row_of ? cc->row_of[i] : i;
            if (!te_on[i]) continue;
            if (row < 0 || row >= cc->n_rows) {
                lmx_free(scale);
                return lmx_err(LMX_ERR_INTERNAL, "text encoder: LoRA %d has no row (%d of %d)", i, row, cc->n_rows);
            }
            for (int b = 0; b < B; b++) scale[(int64_t)row * B + b] = cc->te_mult[i];
        }
    }
    lmx_status st = lmx_arena_reserve(cc->arena, clip_text_arena_bytes_lora(cc->text, nn_hooks_max_rank(cc->hooks), B, L));
    if (st == LMX_OK) {
        nn_run run = {.ctx = cc->ops, .arena = cc->arena, .hooks = cc->hooks, .lora_scale = scale,
                      .n_loras = scale ? cc->n_rows : 0};
        st = clip_text_forward(cc->text, &run, ids, B, L, 0, out);
    }
    lmx_free(scale);
    return st;
}

/* ---- PAW / PTW ------------------------------------------------------------- */

static const char *label_of(const lmx_lora_use *u) {
    if (u->name) return u->name;
    if (u->lora && u->lora->name) return u->lora->name;
    return "?";
}

void compose_weights_free(compose_weights *w) {
    if (!w) return;
    for (int i = 0; w->text && i < w->n; i++) lmx_free(w->text[i]);
    lmx_free(w->text);
    lmx_free(w->score);
    lmx_free(w->a);
    lmx_free(w->w);
    lmx_free(w->edge);
    memset(w, 0, sizeof *w);
}

/* Tokenize texts[0..B-1]; report truncation (what the reference does
 * silently for P \ i and S_i; the prompt's warning is the pipeline's). */
static lmx_status tokenize_all(const compose_encoder *enc, const char *const *texts, int B, int L, int64_t *ids,
                               int *n_tok, const lmx_lora_use *loras) {
    for (int b = 0; b < B; b++) {
        int n_raw = 0;
        lmx_status st = tok_encode_padded(enc->tok, texts[b], -1, ids + (int64_t)b * L, &n_raw);
        if (st != LMX_OK) {
            if (b == 0) lmx_err_prefix("prompt: ");
            else lmx_err_prefix("weights of LoRA '%s': ", label_of(&loras[b - 1]));
            return st;
        }
        n_tok[b] = (n_raw < L - 2 ? n_raw : L - 2) + 2;
        if (n_raw > L - 2 && (b > 0 || enc->warn_prompt)) {
            char *lost = NULL;
            if (tok_dropped_text(enc->tok, texts[b], -1, &lost, NULL) == LMX_OK && lost) {
                if (b == 0)
                    lmx_warn("prompt is %d tokens, longer than the %d the text encoder takes; dropped: \"%s\"",
                             n_raw, L - 2, lost);
                else
                    lmx_info("weights of LoRA '%s': text truncated to %d tokens as the reference does; "
                             "dropped: \"%s\"", label_of(&loras[b - 1]), L - 2, lost);
            }
            lmx_free(lost);
        }
    }
    return LMX_OK;
}

lmx_status compose_prompt_weights(const compose_encoder *enc, const char *prompt, const lmx_lora_use *loras,
                                  int n, lmx_weighting weighting, const unsigned char *te_on,
                                  compose_pool pool, compose_weights *out) {
    memset(out, 0, sizeof *out);
    if (weighting != LMX_WEIGHTING_PAW && weighting != LMX_WEIGHTING_PTW)
        return lmx_err(LMX_ERR_ARG, "prompt weights: weighting must be paw or ptw, got %s",
                       lmx_weighting_name(weighting));
    if (!prompt) return lmx_err(LMX_ERR_ARG, "prompt weights: no prompt");
    if (n < 1 || n > COMPOSE_MAX_LORAS)
        return lmx_err(LMX_ERR_ARG, "prompt weights: expected 1..%d LoRAs, got %d", COMPOSE_MAX_LORAS, n);
    if (!loras) return lmx_err(LMX_ERR_ARG, "prompt weights: no LoRAs");
    if (!enc || !enc->tok || !enc->encode || enc->hidden < 1)
        return lmx_err(LMX_ERR_ARG, "prompt weights: no text encoder");
    if ((unsigned)pool >= COMPOSE_POOL_COUNT) return lmx_err(LMX_ERR_ARG, "prompt weights: unknown pooling %d", pool);
    for (int i = 0; i < n; i++)
        if (loras[i].n_triggers < 0 || (loras[i].n_triggers > 0 && !loras[i].triggers))
            return lmx_err(LMX_ERR_ARG, "LoRA '%s': %d triggers but no trigger list", label_of(&loras[i]),
                           loras[i].n_triggers);

    const int L = tok_max_length(enc->tok), H = enc->hidden, B = n + 1;
    const int paw = weighting == LMX_WEIGHTING_PAW;
    lmx_status st = LMX_OK;
    const char **texts = NULL;
    int64_t *ids = NULL;
    int *n_tok = NULL;
    float *h = NULL, *e = NULL;

    out->n = n;
    out->kind = weighting;
    out->pool = pool;
    out->score = lmx_calloc((size_t)n, sizeof(double));
    out->a = lmx_calloc((size_t)n, sizeof(double));
    out->w = lmx_calloc((size_t)n, sizeof(double));
    out->edge = lmx_calloc((size_t)n, sizeof(int));
    out->text = lmx_calloc((size_t)n, sizeof(char *));
    texts = lmx_calloc((size_t)B, sizeof *texts);
    ids = lmx_malloc(sizeof *ids * (size_t)B * (size_t)L);
    n_tok = lmx_malloc(sizeof *n_tok * (size_t)B);
    h = lmx_alloc_aligned(sizeof *h * (size_t)B * (size_t)L * (size_t)H);
    e = lmx_malloc(sizeof *e * (size_t)B * (size_t)H);
    if (!out->score || !out->a || !out->w || !out->edge || !out->text || !texts || !ids || !n_tok || !h || !e) {
        st = lmx_err(LMX_ERR_NOMEM, "prompt weights: out of memory");
        goto done;
    }

    /* The texts: P, then P \ i (PAW) or S_i (PTW). The prompt is checked
     * first, so that its error is not reported as the first LoRA's. */
    st = compose_check_utf8(prompt, "prompt");
    if (st != LMX_OK) goto done;
    texts[0] = prompt;
    for (int i = 0; i < n; i++) {
        const lmx_lora_use *u = &loras[i];
        st = paw ? compose_ablate(prompt, u->triggers, u->n_triggers, &out->text[i])
                 : compose_trigger_string(u->triggers, u->n_triggers, &out->text[i]);
        if (st != LMX_OK) {
            lmx_err_prefix("LoRA '%s': ", label_of(u));
            goto done;
        }
        texts[i + 1] = out->text[i];
        if (paw && u->n_triggers == 0) out->edge[i] = COMPOSE_EDGE_NO_TRIGGERS;
        else if (paw && compose_utf8_len(out->text[i]) < 5) out->edge[i] = COMPOSE_EDGE_SHORT;
        else if (!paw && !*out->text[i]) out->edge[i] = COMPOSE_EDGE_NO_TRIGGERS;
    }

    st = tokenize_all(enc, texts, B, L, ids, n_tok, loras);
    if (st != LMX_OK) goto done;
    st = enc->encode(enc->user, ids, B, L, te_on, h);
    if (st != LMX_OK) {
        lmx_err_prefix("prompt weights: ");
        goto done;
    }
    for (int b = 0; b < B; b++)
        compose_pool_embedding(h + (int64_t)b * L * H, L, H, n_tok[b], pool, e + (int64_t)b * H);

    for (int i = 0; i < n; i++) {
        switch (out->edge[i]) {
        case COMPOSE_EDGE_NO_TRIGGERS: out->score[i] = paw ? COMPOSE_PAW_NO_TRIGGER : 0.0; break;
        case COMPOSE_EDGE_SHORT: out->score[i] = COMPOSE_PAW_SHORT; break;
        default: {
            double c = compose_cosine(e, e + (int64_t)(i + 1) * H, H);
            out->score[i] = paw ? 1.0 - c : c;
        }
        }
        if (out->edge[i] == COMPOSE_EDGE_NO_TRIGGERS)
            lmx_warn("LoRA '%s' has no trigger phrases: its %s score is the fixed %g "
                     "(docs/composition.md, 'Prompt-aware weights')", label_of(&loras[i]),
                     paw ? "PAW" : "PTW", out->score[i]);
    }
    if (paw) compose_paw_weights(out->score, out->edge, n, out->a, out->w);
    else compose_ptw_weights(out->score, out->edge, n, out->a, out->w);

    out->all_floored = paw;
    for (int i = 0; i < n; i++) {
        if (out->edge[i] != COMPOSE_EDGE_NONE || out->score[i] >= COMPOSE_PAW_FLOOR) out->all_floored = 0;
        lmx_info("%s weights (%s): LoRA %d '%s': %s = %.8g, a = %.8g, w = %.6f", paw ? "PAW" : "PTW",
                 compose_pool_name(pool), i, label_of(&loras[i]), paw ? "1 - cos" : "cos", out->score[i],
                 out->a[i], out->w[i]);
    }
    if (out->all_floored && n > 1)
        lmx_warn("PAW: every score (1 - cos) is under the %.2f floor, so the weights are uniform and W-Switch "
                 "reduces to LoRA Switch plus the character tail", COMPOSE_PAW_FLOOR);
done:
    if (st != LMX_OK) compose_weights_free(out);
    lmx_free(texts);
    lmx_free(ids);
    lmx_free(n_tok);
    lmx_free(h);
    lmx_free(e);
    return st;
}

lmx_status compose_parse_manual(const char *s, int expect, double **w, int *n) {
    *w = NULL;
    *n = 0;
    if (!s || !*s) return lmx_err(LMX_ERR_ARG, "--weighting manual: no weights (expected manual:w1,w2,...)");
    int cap = 1;
    for (const char *p = s; *p; p++) cap += *p == ',';
    double *v = lmx_malloc(sizeof *v * (size_t)cap);
    if (!v) return lmx_err(LMX_ERR_NOMEM, "--weighting manual: out of memory");
    int k = 0;
    for (const char *p = s;; k++) {
        char *end = NULL;
        errno = 0;
        double x = strtod(p, &end);
        while (end && (*end == ' ' || *end == '\t')) end++;
        if (end == p || (*end && *end != ',') || !isfinite(x) || x < 0) {
            const char *stop = strchr(p, ',');
            int len = stop ? (int)(stop - p) : (int)strlen(p);
            lmx_free(v);
            return lmx_err(LMX_ERR_ARG, "--weighting manual: weight %d '%.*s' is not a finite number >= 0", k + 1,
                           len, p);
        }
        v[k] = x;
        if (!*end) break;
        p = end + 1;
    }
    if (expect > 0 && k + 1 != expect) {
        lmx_free(v);
        return lmx_err(LMX_ERR_ARG, "--weighting manual: %d weight%s for %d LoRAs (one per LoRA, in order)", k + 1,
                       k ? "s" : "", expect);
    }
    *w = v;
    *n = k + 1;
    return LMX_OK;
}
