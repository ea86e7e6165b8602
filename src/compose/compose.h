/*
 * compose.h - multi-LoRA composition: which LoRAs are active at each
 * denoising step, on which branch of the UNet batch, in the text encoder, and
 * how branch outputs combine (docs/methods.md §3-§10, decisions §13).
 *
 *   Merge        all N LoRAs in the UNet at every step, one branch       (§4)
 *   Switch       one LoRA per step, cycling every tau steps              (§5)
 *   Composite    N branches (LoRA i alone in branch i); CFG(Σu/N, Σc/N)  (§6)
 *   W-Switch     Switch with block lengths from PAW weights and the last
 *                tail steps given to the character LoRA                  (§7.2, §8)
 *   W-Composite  N branches; Σ w_i·CFG(u_i, c_i) / max(Σw, 1e-6), PTW    (§7.3, §9)
 *
 * The module is pure computation: it never runs a network itself. The
 * prompt-aware weights need text-encoder passes, which come through a
 * callback (compose_encoder) the caller provides; compose_clip_encode is a
 * ready-made one over the model's clip_text.
 *
 * How the pipeline uses it (once per generation, LoRAs already attached):
 *
 *     compose_clip ce = {text, ops, arena, n, row_of, n_rows, te_mult};
 *     compose_encoder enc = {tok, hidden, compose_clip_encode, &ce, 0};
 *     compose_plan cp;
 *     compose_plan_build(&cp, &p->compose, p->loras, p->n_loras, p->prompt,
 *                        n_steps, &enc, NULL);
 *     compose_plan_te_scales(&cp, lam, p->loras, row_of, n_rows, te_scale);
 *     // encode E_neg, E_pos with te_scale; UNet batch = cp.n_branches blocks
 *     for (k ...) {
 *         compose_plan_unet_scales(&cp, k, lam, p->loras, row_of, n_rows,
 *                                  per_branch, unet_scale);
 *         // UNet forward with nn_run.lora_scale = unet_scale
 *         compose_plan_combine(&cp, out, eps, n, per, cfg, g);
 *     }
 *     compose_plan_free(&cp);
 *
 * Reference semantics: the official code of Zhong et al. (LoRA Switch,
 * Composite) and Tsoumplekas et al. (W-Switch, W-Composite) as docs/methods.md
 * describes them; the Python mirror is reference/gen_compose.py.
 */
#ifndef LMX_COMPOSE_H
#define LMX_COMPOSE_H

#include "core/core.h"
#include "model/clip_text.h"
#include "model/tokenizer.h"

#define COMPOSE_MAX_LORAS 64       /* N accepted by the plan (the testbed uses 2..5)  */
#define COMPOSE_PAW_FLOOR 0.05     /* PAW floor on 1 - cos (§7.2)                     */
#define COMPOSE_PAW_SHORT 2.0      /* PAW score of an ablated prompt under 5 chars    */
#define COMPOSE_PAW_NO_TRIGGER 0.1 /* PAW score of a LoRA without triggers            */
#define COMPOSE_MIN_WSUM 1e-6      /* W-Composite denominator max(Σw, 1e-6) (§9)      */

/* ---- schedules (pure) ----------------------------------------------------- */

/* numpy.round for block lengths: half to even (2.5 -> 2, 3.5 -> 4, 0.5 -> 0),
 * or half up (D2) when half_up. x must be finite and |x| < 2^31. */
int compose_round(double x, int half_up);

/* LoRA Switch (§5): the LoRA active at 0-based step k of n LoRAs, interval
 * tau >= 1.
 *   clean (paper):  floor((k mod n·tau) / tau)
 *   reference:      0 for k <= tau, else floor((k - 1) / tau) mod n
 * (the reference code switches in a callback after the step: one step late,
 * first block tau + 1 steps). */
int compose_switch_active(int k, int n, int tau, int reference);

/* W-Switch block lengths (§8.1): b[i] = max(1, round((w[i] / max w) · tau)),
 * in double, divided then multiplied in that order. Errors (LMX_ERR_ARG):
 * n < 1, tau < 1, a weight negative or not finite, max w <= 0. */
lmx_status compose_wswitch_blocks(const double *w, int n, int tau, int half_up, int *b);

/* W-Switch clean schedule (§8.2-3): sched[T] cycles LoRA j mod n for b[j mod n]
 * steps, then sched[T - tail .. T - 1] = tail_lora. Errors: T < 1, a block
 * < 1, tail outside 0..T, tail_lora outside 0..n-1 (when tail > 0). */
lmx_status compose_wswitch_sched(const int *b, int n, int T, int tail, int tail_lora, int *sched);

/* The LoRA the UNet uses at step k for a clean per-step schedule: sched[k],
 * or with the reference timing (D3) sched[max(k - 1, 0)]. */
static inline int compose_sched_at(const int *sched, int k, int reference) {
    return sched[reference && k > 0 ? k - 1 : k];
}

/* A schedule as text, one symbol per step: 0-9 then a-z then A-Z (N <= 62),
 * '?' beyond; buf needs T + 1 bytes. Returns buf. */
char *compose_sched_string(const int *active, int T, char *buf);

/* ---- PAW prompt ablation (§7.2) and PTW trigger strings (§7.3) ------------- */

/* Python `re.sub(r"\b" + re.escape(t) + r"\b", "", s, flags=re.IGNORECASE)`
 * for str patterns: word characters are Unicode letters, numbers and '_',
 * case folding is sre's simple lower-case mapping plus its equivalence
 * table (i/ı, s/ſ, ...); every non-overlapping occurrence, left to right,
 * boundaries judged on `s` as given. t = "" leaves s unchanged. *out is
 * lmx_malloc'd. Invalid UTF-8 is LMX_ERR_ARG. */
lmx_status compose_remove_phrase(const char *s, const char *t, char **out);

/* P \ i: remove every trigger of `triggers` in order, then the clean-up of
 * §7.2 exactly (one pass of \s*,\s*,\s* -> ", ", \s+ -> " ", strip(),
 * strip(","), strip()). *out is lmx_malloc'd. */
lmx_status compose_ablate(const char *prompt, const char *const *triggers, int n_triggers, char **out);

/* PTW: ", ".join(t for t in triggers if t != ""); *out lmx_malloc'd ("" when
 * none). */
lmx_status compose_trigger_string(const char *const *triggers, int n_triggers, char **out);

/* LMX_ERR_ARG "<what>: invalid UTF-8 at byte N" unless s is valid UTF-8. */
lmx_status compose_check_utf8(const char *s, const char *what);

/* Python len(): code points of valid UTF-8 (bytes of anything else count 1). */
size_t compose_utf8_len(const char *s);

/* ---- prompt-aware weights (§7) --------------------------------------------- */

/* D7: how e(s) pools the 77 x hidden last_hidden_state. */
typedef enum compose_pool {
    COMPOSE_POOL_MEAN77 = 0,   /* mean over every position, pads included (the code) */
    COMPOSE_POOL_MASKED_MEAN,  /* mean over BOS, tokens and the first EOS            */
    COMPOSE_POOL_EOS,          /* the first EOS position (CLIP's pooled token)       */
    COMPOSE_POOL_COUNT
} compose_pool;

const char *compose_pool_name(compose_pool p);            /* "mean77", ... */
lmx_status compose_pool_parse(const char *s, compose_pool *out);

/* e[hidden] from h[L, hidden]; n_tokens = positions up to and including the
 * first EOS (masked_mean, eos). Sums in double, result rounded to fp32 (the
 * reference's fp32 tensor). */
void compose_pool_embedding(const float *h, int L, int hidden, int n_tokens, compose_pool pool, float *e);

/* F.cosine_similarity(a, b) as torch forms it: (a/‖a‖)·(b/‖b‖), norms
 * clamped to 1e-8; fp32 quotients, accumulated in double. */
double compose_cosine(const float *a, const float *b, int d);

/* Why a LoRA's score is not a cosine. */
enum { COMPOSE_EDGE_NONE = 0, COMPOSE_EDGE_NO_TRIGGERS = 1, COMPOSE_EDGE_SHORT = 2 };

/* The double arithmetic after the cosine (D8), n LoRAs:
 *   PAW: a[i] = 0.1 (NO_TRIGGERS), 2.0 (SHORT), else max(score[i], 0.05)
 *   PTW: a[i] = 0 (NO_TRIGGERS), else score[i]           (no clamp, no floor)
 *   w[i] = a[i] / Σ a (sequential double sum) when Σ a > 0, else w = a.
 * `edge` may be NULL (all NONE). */
void compose_paw_weights(const double *score, const int *edge, int n, double *a, double *w);
void compose_ptw_weights(const double *score, const int *edge, int n, double *a, double *w);

/* Text-encoder callback: run the encoder on B token sequences ids[B][L] and
 * write last_hidden_state out[B][L][hidden]. te_on: NULL = the base encoder;
 * else te_on[i] != 0 means LoRA i of the composition is active in the text
 * encoder at its generation multiplier (λ·te_scale_i). */
typedef lmx_status (*compose_encode_fn)(void *user, const int64_t *ids, int B, int L,
                                        const unsigned char *te_on, float *out);

typedef struct compose_encoder {
    const tok_tokenizer *tok;
    int hidden;
    compose_encode_fn encode;
    void *user;
    int warn_prompt;       /* 1: warn when the full prompt is truncated (the
                              pipeline warns itself and sets 0)              */
} compose_encoder;

/* A compose_encode_fn over a clip_text (user = compose_clip *), always the
 * last layer (clip_skip 0). The arena grows when too small (freed and
 * re-made, as the pipeline's reserve). With te_on, LoRA i (i < n_loras) of
 * the composition runs its text-encoder side paths at te_mult[i] in row
 * row_of[i] (row_of NULL: row i) of an [n_rows][B] scale table; the LoRAs
 * must be attached to `hooks` (the caller's text-encoder hook table). */
typedef struct compose_clip {
    const clip_text *text;
    op_ctx *ops;
    lmx_arena *arena;
    int n_loras;
    const int *row_of;         /* [n_loras] or NULL                              */
    int n_rows;
    const float *te_mult;      /* [n_loras] λ·te_scale_i                         */
    const nn_hooks *hooks;     /* the LoRAs' text-encoder hooks, or NULL         */
} compose_clip;

lmx_status compose_clip_encode(void *user, const int64_t *ids, int B, int L, const unsigned char *te_on,
                               float *out);

/* The weights of n LoRAs for a prompt. */
typedef struct compose_weights {
    int n;
    lmx_weighting kind;    /* PAW, PTW, UNIFORM or MANUAL (never DEFAULT)        */
    compose_pool pool;
    double *score;         /* [n] before floor/normalisation: PAW 1 - cos, PTW cos;
                              the edge value where edge != NONE; uniform 1;
                              manual as given                                   */
    double *a;             /* [n] after the floor / edge rules                  */
    double *w;             /* [n] normalised                                    */
    int *edge;             /* [n] COMPOSE_EDGE_*                                */
    char **text;           /* [n] PAW: P \ i; PTW: the trigger string; else NULL */
    int all_floored;       /* PAW: every score < 0.05 (uniform weights)         */
} compose_weights;

void compose_weights_free(compose_weights *w);

/* PAW or PTW weights (§7) of loras[0..n-1] for `prompt`: 1 + n text-encoder
 * sequences in one callback call (the prompt, then P\i or S_i), tokenized
 * with truncation to the tokenizer's length as the reference does (BOS + 75
 * + EOS); truncation of an ablated/trigger string is logged at info level,
 * of the prompt warned when enc->warn_prompt. te_on as in compose_encode_fn.
 * Raw scores are logged at info level, and a warning is printed when every
 * PAW score falls under the floor. weighting must be PAW or PTW. */
lmx_status compose_prompt_weights(const compose_encoder *enc, const char *prompt, const lmx_lora_use *loras,
                                  int n, lmx_weighting weighting, const unsigned char *te_on,
                                  compose_pool pool, compose_weights *out);

/* Parse "w1,w2,..." (the part after "manual:") into *w (lmx_malloc'd) and
 * *n; every weight finite and >= 0, and exactly `expect` of them when
 * expect > 0. LMX_ERR_ARG naming the bad item or the count. */
lmx_status compose_parse_manual(const char *s, int expect, double **w, int *n);

/* ---- the plan of one generation ------------------------------------------- */

/* D6: text-encoder LoRAs at prompt encoding. */
typedef enum compose_te_mode {
    COMPOSE_TE_METHOD = 0,     /* Switch/W-Switch: LoRA 0; others: all N (the code) */
    COMPOSE_TE_NONE,
    COMPOSE_TE_ALL,
    COMPOSE_TE_FIRST,
} compose_te_mode;

/* Options outside lmx_compose; NULL = these defaults (all zero). */
typedef struct compose_opts {
    compose_pool pool;         /* D7                                              */
    compose_te_mode te_mode;   /* D6                                              */
} compose_opts;

typedef enum compose_combine_rule {
    COMPOSE_COMBINE_CFG = 0,   /* one branch: u + g·(c − u)                        */
    COMPOSE_COMBINE_MEAN,      /* Composite: su = u_0 + u_1 + ..., mu = su / N (same
                                  for c), then CFG(mu, mc)                         */
    COMPOSE_COMBINE_WEIGHTED,  /* W-Composite: acc = Σ_i fl(w_i)·CFG(u_i, c_i) in
                                  branch order (from 0), eps = acc / fl(max(Σw, 1e-6)) */
} compose_combine_rule;

typedef struct compose_plan {
    lmx_method method;         /* as asked                                         */
    lmx_method effective;      /* what runs: N = 1 gives MERGE                     */
    int n_loras, n_steps;
    int n_branches;            /* 1, or N for (W-)Composite                         */
    compose_combine_rule combine;
    unsigned char *te_on;      /* [N] LoRA i active in the TE at prompt encoding    */
    int *active;               /* [T] (W-)Switch: the one UNet LoRA of step k; NULL
                                  when every LoRA of the branch is on                */
    int *sched;                /* [T] (W-)Switch: the clean schedule (before D3)    */
    int *blocks;               /* [N] W-Switch block lengths; NULL otherwise        */
    int *counts;               /* [N] UNet steps each LoRA is active (per branch)   */
    int tail_lora;             /* W-Switch tail LoRA, -1 when none                  */
    int tau, tail, reference_timing, half_up;
    compose_weights weights;   /* W-methods: the weights used (n = 0 otherwise)     */
    float *branch_w;           /* [n_branches] WEIGHTED: fp32 weights; NULL otherwise */
    float branch_wsum;         /* WEIGHTED: fp32(max(Σ w, 1e-6))                    */
} compose_plan;

/* Build the plan of a generation with n_steps UNet calls. `c` NULL = defaults.
 * n = 0 gives a plan without LoRA. Only names, categories and triggers of
 * `loras` are read (the lmx_lora handles are the pipeline's business).
 * Errors (LMX_ERR_ARG, naming the flag):
 * unknown method or weighting, n outside 0..64, tau < 1
 * ((W-)Switch), tail outside 0..n_steps (W-Switch), W-Switch with N > 1 and a
 * tail but no character LoRA (category CHARACTER, or OTHER with a name
 * starting "character", as the reference's id test), a weighting given to a
 * method that has none, manual weights missing / negative / not finite /
 * all zero, W-Composite weights summing to <= 1e-6 (e.g. PTW and no LoRA
 * has triggers). enc is needed only for PAW/PTW (NULL otherwise). */
lmx_status compose_plan_build(compose_plan *plan, const lmx_compose *c, const lmx_lora_use *loras, int n,
                              const char *prompt, int n_steps, const compose_encoder *enc,
                              const compose_opts *opts);
void compose_plan_free(compose_plan *plan);

/* The character LoRA (the tail's owner): the first with category CHARACTER,
 * else the first OTHER one whose name starts with "character"; -1 if none. */
int compose_character_index(const lmx_lora_use *loras, int n);

/* Is LoRA i active in the UNet in branch b at step k? */
int compose_plan_unet_on(const compose_plan *p, int k, int b, int i);

/* Text-encoder scale table for the prompt encoding: out[n_rows] zeroed, then
 * out[row_of[i]] = lam · loras[i].te_scale for the LoRAs of te_on (row_of
 * NULL: row i). */
void compose_plan_te_scales(const compose_plan *p, float lam, const lmx_lora_use *loras, const int *row_of,
                            int n_rows, float *out);

/* UNet scale table of step k: out[n_rows][n_branches · per_branch] zeroed,
 * then for every branch b and LoRA i on in it: out[row_of[i]][b·per_branch +
 * s] = lam · loras[i].unet_scale (fp32 product) for s < per_branch
 * (per_branch = 2·n_images with CFG, else n_images). */
void compose_plan_unet_scales(const compose_plan *p, int k, float lam, const lmx_lora_use *loras,
                              const int *row_of, int n_rows, int per_branch, float *out);

/* Guided noise eps[n·per] of n images from the UNet outputs out[B][per]
 * (B = n_branches blocks of [uncond × n, cond × n] with CFG, [cond × n]
 * without; per = floats per sample, NCHW), by the plan's combine rule, in
 * the fp32 operation order of reference/gen_compose.py. */
void compose_plan_combine(const compose_plan *p, const float *out, float *eps, int n, int64_t per, int cfg,
                          float g);

/* One line for logs and the A1111 parameters ("w-switch, tau 5, tail 5,
 * PAW 0.480/0.200/0.320, blocks 5/2/3"), appended to sb. */
void compose_plan_describe(const compose_plan *p, lmx_sb *sb);

/* The plan as JSON members of `obj` (a cJSON object): method, timing,
 * switch_steps, tail_steps, te_loras, weighting, scores, weights, blocks,
 * counts, schedule (one symbol per step). Returns 0 on out-of-memory. */
struct cJSON;
int compose_plan_json(const compose_plan *p, struct cJSON *obj);

#endif /* LMX_COMPOSE_H */
