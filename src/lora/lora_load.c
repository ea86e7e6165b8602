/*
 * lora_load.c - read a LoRA file, match it against a model's layers, check
 * everything, prepare the side-path kernels, and say honestly what was
 * loaded (the report).
 *
 * Steps: refuse pickle, LyCORIS/DoRA and SDXL/SD2 files with a message
 * that names the kind and a key; parse every key (lora_keys.c) and group the
 * tensors by layer; check each module (down and up present, rank > 0, the
 * ranks of down and up equal, shapes that fit the layer: linear A [r, in],
 * B [out, r]; k x k conv A [r, in, k, k] with the layer's stride and padding,
 * B [out, r, 1, 1]; 1x1 conv either; float dtypes; a scalar finite alpha);
 * convert to fp32 (NaN/Inf values are warned about, naming the key); compute
 * the scales (own alpha/rank and diffusers'); with a model, build the
 * kernels (op_linear / op_conv2d, fp32). Nothing is applied here:
 * lora_apply.c attaches or merges.
 *
 * Reference for what "loaded" means: diffusers 0.32.2
 * StableDiffusionLoraLoaderMixin.load_lora_weights (+ peft 0.12.0
 * inject_adapter_in_model / set_peft_model_state_dict), which drops kohya
 * modules on conv_in, conv_out and time_embedding (unmapped names) with an
 * "unexpected keys" warning: loramix does the same by default and reports
 * them; lora_opts.apply_dropped applies them.
 */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <string.h>

#include "io/detect.h"
#include "io/io_util.h"
#include "lora/lora_impl.h"

lora_opts lora_opts_default(void) {
    lora_opts o;
    memset(&o, 0, sizeof o);
    o.scaling = LORA_SCALING_OWN;
    return o;
}

const char *lora_comp_name(lora_comp c) { return c == LORA_UNET ? "UNet" : "text encoder"; }

/* ---- small helpers ----------------------------------------------------------- */

/* An untrusted key for a message: control bytes escaped, long keys cut. */
static const char *qk(char *buf, size_t n, const char *key) {
    return io_quote(buf, n, key, strlen(key), 160);
}

static lmx_status push_str(char ***v, int *n, const char *s, size_t len) {
    char **nv = lmx_realloc(*v, sizeof *nv * (size_t)(*n + 1));
    if (!nv) return LMX_ERR_NOMEM;
    *v = nv;
    char *c = lmx_malloc(len + 1);
    if (!c) return LMX_ERR_NOMEM;
    memcpy(c, s, len);
    c[len] = 0;
    nv[(*n)++] = c;
    return LMX_OK;
}

static lmx_status add_warning(lmx_lora *l, const char *fmt, ...) LMX_PRINTF(2, 3);
static lmx_status add_warning(lmx_lora *l, const char *fmt, ...) {
    lmx_sb msg = LMX_SB_INIT;
    va_list ap;
    va_start(ap, fmt);
    lmx_sb_vprintf(&msg, fmt, ap);
    va_end(ap);
    if (!lmx_sb_failed(&msg) && !l->opts.quiet) lmx_warn("%s: %s", l->path, lmx_sb_str(&msg));
    int fail = lmx_sb_failed(&msg) || push_str(&l->warnings, &l->n_warnings, lmx_sb_str(&msg), lmx_sb_len(&msg));
    lmx_sb_free(&msg);
    if (fail) return lmx_err(LMX_ERR_NOMEM, "%s: out of memory", l->path);
    return LMX_OK;
}

static char *base_name(const char *path) {
    const char *b = strrchr(path, '/');
    b = b ? b + 1 : path;
    size_t n = strlen(b);
    static const char ext[] = ".safetensors";
    if (n > sizeof ext - 1 && !strcmp(b + n - (sizeof ext - 1), ext)) n -= sizeof ext - 1;
    char *s = lmx_malloc(n + 1);
    if (s) {
        memcpy(s, b, n);
        s[n] = 0;
    }
    return s;
}

void lora_free(lmx_lora *l) {
    if (!l) return;
    for (int i = 0; i < l->n_mod; i++) {
        lora_module *m = &l->mod[i];
        lmx_free(m->key);
        op_linear_free(m->down);
        op_linear_free(m->up);
        op_conv2d_free(m->down_conv);
        op_conv2d_free(m->up_conv);
    }
    lmx_free(l->mod);
    lmx_free(l->mod_of_target);
    for (int i = 0; i < l->n_unmatched; i++) lmx_free(l->unmatched[i]);
    lmx_free(l->unmatched);
    for (int i = 0; i < l->n_warnings; i++) lmx_free(l->warnings[i]);
    lmx_free(l->warnings);
    lmx_free(l->report);
    lmx_free(l->path);
    lmx_free(l->name);
    lora_targets_free(l->targets);
    st_close(l->f);
    lmx_free(l);
}

size_t lora_bytes(const lmx_lora *l) {
    size_t b = 0;
    for (int i = 0; i < l->n_mod; i++) {
        const lora_module *m = &l->mod[i];
        if (m->down) b += op_linear_bytes(m->down);
        if (m->up) b += op_linear_bytes(m->up);
        if (m->down_conv) b += op_conv2d_bytes(m->down_conv);
        if (m->up_conv) b += op_conv2d_bytes(m->up_conv);
    }
    return b;
}

/* ---- refusals ---------------------------------------------------------------- */

static lmx_status refuse_kinds(lmx_lora *l, const lora_targets *t) {
    char q[256];
    for (int i = 0; i < st_count(l->f); i++) {
        const char *k = st_at(l->f, i)->name;
        const char *what = lora_key_unsupported(k);
        if (what)
            return lmx_err(LMX_ERR_UNSUPPORTED,
                           "%s: this is %s, not a plain LoRA (key '%s'); loramix applies plain LoRA "
                           "only (lora_down/lora_up or lora_A/lora_B tensors): use a LoRA version of "
                           "the adapter, or merge it into the checkpoint with LyCORIS' tools",
                           l->path, what, qk(q, sizeof q, k));
        if (lora_key_sdxl(k))
            return lmx_err(LMX_ERR_UNSUPPORTED,
                           "%s: this is an SDXL LoRA (key '%s' exists only in SDXL LoRAs); loramix "
                           "runs SD1.x models, whose layers an SDXL LoRA does not fit",
                           l->path, qk(q, sizeof q, k));
    }
    det_info d;
    det_classify(l->f, NULL, &d);
    int cd = t->unet_cfg.cross_dim;
    if (d.arch == DET_ARCH_SDXL && cd != 2048)
        return lmx_err(LMX_ERR_UNSUPPORTED,
                       "%s: this is an SDXL LoRA (%s); loramix runs SD1.x models, whose layers an "
                       "SDXL LoRA does not fit",
                       l->path,
                       d.context_dim == 2048 ? "its cross-attention input is 2048 wide"
                       : d.text_dim == 1280  ? "it adapts a 1280-wide text encoder"
                                             : "its metadata names an SDXL base model");
    if (d.arch == DET_ARCH_SD2 && cd != 1024)
        return lmx_err(LMX_ERR_UNSUPPORTED,
                       "%s: this is an SD2.x LoRA (%s); loramix runs SD1.x models, whose layers an "
                       "SD2.x LoRA does not fit",
                       l->path,
                       d.context_dim == 1024 || d.text_dim == 1024 ? "1024-wide text features"
                                                                   : "its metadata names an SD2 base model");
    return LMX_OK;
}

/* ---- grouping keys into modules ------------------------------------------------ */

static const char *role_suffix(lora_role r) {
    return r == LORA_ROLE_DOWN ? "down (lora_down / lora_A)"
           : r == LORA_ROLE_UP ? "up (lora_up / lora_B)"
                               : "alpha";
}

static lmx_status group_keys(lmx_lora *l, const lora_targets *t) {
    lmx_status st = LMX_OK;
    char q1[256], q2[256];
    int *of_target = lmx_malloc(sizeof *of_target * (size_t)(t->n ? t->n : 1));
    int cap = 0;
    if (!of_target) return lmx_err(LMX_ERR_NOMEM, "%s: out of memory", l->path);
    for (int i = 0; i < t->n; i++) of_target[i] = -1;
    for (int i = 0; i < st_count(l->f); i++) {
        const st_tensor *tn = st_at(l->f, i);
        lora_key k;
        lora_key_parse(t, tn->name, &k);
        if (k.role == LORA_ROLE_NONE || k.target < 0) {
            if (push_str(&l->unmatched, &l->n_unmatched, tn->name, strlen(tn->name))) {
                st = lmx_err(LMX_ERR_NOMEM, "%s: out of memory", l->path);
                goto done;
            }
            continue;
        }
        int mi = of_target[k.target];
        if (mi < 0) {
            if (l->n_mod == cap) {
                cap = cap ? 2 * cap : 64;
                lora_module *v = lmx_realloc(l->mod, sizeof *v * (size_t)cap);
                if (!v) {
                    st = lmx_err(LMX_ERR_NOMEM, "%s: out of memory", l->path);
                    goto done;
                }
                l->mod = v;
            }
            mi = of_target[k.target] = l->n_mod;
            lora_module *m = &l->mod[l->n_mod++];
            memset(m, 0, sizeof *m);
            m->comp = k.comp;
            m->target = k.target;
            m->tg = &t->v[k.target];
            m->key = lmx_malloc(k.stem_len + 1);
            if (!m->key) {
                st = lmx_err(LMX_ERR_NOMEM, "%s: out of memory", l->path);
                goto done;
            }
            memcpy(m->key, tn->name, k.stem_len);
            m->key[k.stem_len] = 0;
        }
        lora_module *m = &l->mod[mi];
        const st_tensor **slot = k.role == LORA_ROLE_DOWN ? &m->down_t
                                 : k.role == LORA_ROLE_UP ? &m->up_t
                                                          : &m->alpha_t;
        if (*slot) {
            st = lmx_err(LMX_ERR_FORMAT, "%s: '%s' and '%s' are both the %s tensor of %s %s", l->path,
                         qk(q1, sizeof q1, (*slot)->name), qk(q2, sizeof q2, tn->name),
                         role_suffix(k.role), lora_comp_name(m->comp), m->tg->path);
            goto done;
        }
        *slot = tn;
        m->spelling |= k.spelling;
        l->formats |= k.spelling;
    }
done:
    if (st) lmx_free(of_target);
    else l->mod_of_target = of_target;
    return st;
}

/* ---- checking a module ------------------------------------------------------ */

static int is_float(st_dtype d) { return d == ST_F32 || d == ST_F16 || d == ST_BF16; }

/* Shape equal to want, or to want with trailing 1x1 dims added/removed. */
static int fits(const st_tensor *t, int nd, const int64_t *want, int allow_2d_4d) {
    if (t->ndim == nd) {
        for (int i = 0; i < nd; i++)
            if (t->shape[i] != want[i]) return 0;
        return 1;
    }
    if (!allow_2d_4d) return 0;
    if (nd == 2 && t->ndim == 4)
        return t->shape[0] == want[0] && t->shape[1] == want[1] && t->shape[2] == 1 && t->shape[3] == 1;
    if (nd == 4 && t->ndim == 2)
        return want[2] == 1 && want[3] == 1 && t->shape[0] == want[0] && t->shape[1] == want[1];
    return 0;
}

static const char *target_desc(const lora_target *g, char *buf, size_t n) {
    if (g->kind == NN_LINEAR)
        snprintf(buf, n, "a linear %lld -> %lld", (long long)g->n_in, (long long)g->n_out);
    else
        snprintf(buf, n, "a %dx%d conv %lld -> %lld channels%s", g->k, g->k, (long long)g->n_in,
                 (long long)g->n_out, g->stride > 1 ? ", stride 2" : "");
    return buf;
}

static lmx_status shape_error(const lmx_lora *l, const lora_module *m, const st_tensor *t, int nd,
                              const int64_t *want, const char *arch_hint) {
    char got[96], exp[96], q[256], d[96];
    st_shape_str(t->ndim, t->shape, got, sizeof got);
    st_shape_str(nd, want, exp, sizeof exp);
    return lmx_err(LMX_ERR_SHAPE, "%s: '%s' has shape %s, but %s %s is %s: expected %s%s", l->path,
                   qk(q, sizeof q, t->name), got, lora_comp_name(m->comp), m->tg->path,
                   target_desc(m->tg, d, sizeof d), exp, arch_hint);
}

static lmx_status check_module(lmx_lora *l, lora_module *m, const char *arch_hint) {
    char q[256], s1[96], s2[96];
    const lora_target *g = m->tg;
    if (!m->down_t || !m->up_t) {
        const st_tensor *have = m->down_t ? m->down_t : m->up_t ? m->up_t : m->alpha_t;
        return lmx_err(LMX_ERR_SHAPE, "%s: LoRA module '%s' (%s %s) has '%s' but no %s tensor",
                       l->path, qk(q, sizeof q, m->key), lora_comp_name(m->comp), g->path,
                       have->name + strlen(m->key) + (have->name[strlen(m->key)] == '.'),
                       !m->down_t ? "down (lora_down / lora_A)" : "up (lora_up / lora_B)");
    }
    const st_tensor *dn = m->down_t, *up = m->up_t;
    for (int i = 0; i < 2; i++) {
        const st_tensor *t = i ? up : dn;
        if (!is_float(t->dtype))
            return lmx_err(LMX_ERR_FORMAT, "%s: '%s' has dtype %s; LoRA weights must be F32, F16 or BF16",
                           l->path, qk(q, sizeof q, t->name), st_dtype_name(t->dtype));
        if (t->ndim != 2 && t->ndim != 4) {
            st_shape_str(t->ndim, t->shape, s1, sizeof s1);
            return lmx_err(LMX_ERR_SHAPE, "%s: '%s' has shape %s; LoRA weights have 2 or 4 dimensions",
                           l->path, qk(q, sizeof q, t->name), s1);
        }
    }
    int64_t r = dn->shape[0];
    if (r <= 0)
        return lmx_err(LMX_ERR_SHAPE, "%s: '%s' has rank 0 (shape [0, ...]): an empty LoRA module",
                       l->path, qk(q, sizeof q, dn->name));
    if (r > 65536)
        return lmx_err(LMX_ERR_SHAPE, "%s: '%s' has rank %lld, more than loramix accepts (65536)",
                       l->path, qk(q, sizeof q, dn->name), (long long)r);
    if (up->shape[1] != r) {
        st_shape_str(dn->ndim, dn->shape, s1, sizeof s1);
        st_shape_str(up->ndim, up->shape, s2, sizeof s2);
        return lmx_err(LMX_ERR_SHAPE,
                       "%s: LoRA module '%s': the down tensor %s has rank %lld but the up tensor %s "
                       "has rank %lld",
                       l->path, qk(q, sizeof q, m->key), s1, (long long)r, s2, (long long)up->shape[1]);
    }
    m->rank = (int)r;
    int k = g->kind == NN_LINEAR ? 1 : g->k;
    int64_t wd[4] = {r, g->n_in, k, k}, wu[4] = {g->n_out, r, 1, 1};
    if (!fits(dn, k > 1 ? 4 : (dn->ndim == 4 ? 4 : 2), wd, k == 1))
        return shape_error(l, m, dn, k > 1 || g->kind == NN_CONV2D ? 4 : 2, wd, arch_hint);
    if (!fits(up, up->ndim == 4 ? 4 : 2, wu, 1))
        return shape_error(l, m, up, k > 1 || g->kind == NN_CONV2D ? 4 : 2, wu, arch_hint);
    m->kh = m->kw = k;
    if (m->alpha_t) {
        const st_tensor *a = m->alpha_t;
        double v;
        if (a->numel != 1) {
            st_shape_str(a->ndim, a->shape, s1, sizeof s1);
            return lmx_err(LMX_ERR_SHAPE, "%s: '%s' has shape %s; alpha is a scalar", l->path,
                           qk(q, sizeof q, a->name), s1);
        }
        if (a->dtype == ST_I32 || a->dtype == ST_I64) {
            int64_t iv;
            lmx_status st = st_to_i64(a, &iv);
            if (st) return st;
            v = (double)iv;
        } else {
            float fv;
            lmx_status st = st_to_f32(a, &fv);
            if (st) return st;
            v = fv;
        }
        if (!isfinite(v))
            return lmx_err(LMX_ERR_FORMAT, "%s: '%s' is %s; alpha must be a finite number", l->path,
                           qk(q, sizeof q, a->name), isnan(v) ? "NaN" : "infinite");
        m->has_alpha = 1;
        m->alpha = (float)v;
        if (v <= 0) {
            lmx_status st = add_warning(l, "'%s' is %g: the module %s", qk(q, sizeof q, a->name), v,
                                        v == 0 ? "has no effect, as in diffusers (kohya's trainer and "
                                                 "A1111 read alpha 0 as alpha = rank)"
                                               : "subtracts its update");
            if (st) return st;
        }
    } else {
        m->alpha = (float)r;
    }
    m->scale_own = (float)((double)m->alpha / (double)r);
    return LMX_OK;
}

/* kohya modules diffusers' conversion cannot name (docs/methods.md §2.4). */
static int dropped_by_reference(const lora_module *m) {
    static const char *paths[] = {"conv_in", "conv_out", "time_embedding.linear_1",
                                  "time_embedding.linear_2"};
    if (m->comp != LORA_UNET || !(m->spelling & LORA_FMT_KOHYA)) return 0;
    for (size_t i = 0; i < LMX_ARRAY_LEN(paths); i++)
        if (!strcmp(m->tg->path, paths[i])) return 1;
    return 0;
}

/* ---- kernels ------------------------------------------------------------------ */

static int64_t count_nonfinite(const float *x, int64_t n) {
    int64_t c = 0;
    for (int64_t i = 0; i < n; i++) c += !isfinite(x[i]);
    return c;
}

/* Convert down/up to fp32, check values, and (with_ops) build the kernels. */
static lmx_status prepare(lmx_lora *l, lora_module *m, int with_ops) {
    lmx_status st = LMX_OK;
    float *a = NULL, *b = NULL;
    const lora_target *g = m->tg;
    char q[256];
    if ((st = st_to_f32_alloc(m->down_t, &a)) || (st = st_to_f32_alloc(m->up_t, &b))) goto done;
    int64_t na = count_nonfinite(a, m->down_t->numel), nb = count_nonfinite(b, m->up_t->numel);
    if (na || nb) {
        l->n_nonfinite += (na > 0) + (nb > 0);
        const st_tensor *t = na ? m->down_t : m->up_t;
        st = add_warning(l, "'%s' holds %lld NaN/Inf value%s: outputs of %s %s will be NaN",
                         qk(q, sizeof q, t->name), (long long)(na ? na : nb), (na ? na : nb) == 1 ? "" : "s",
                         lora_comp_name(m->comp), g->path);
        if (st) goto done;
    }
    if (!with_ops || m->dropped) goto done;
    int64_t r = m->rank;
    if (g->kind == NN_LINEAR || g->k == 1) {
        if ((st = op_linear_create(&m->down, a, NULL, r, g->n_in, OP_PREC_F32))) goto done;
        if ((st = op_linear_create(&m->up, b, NULL, g->n_out, r, OP_PREC_F32))) goto done;
    } else {
        if ((st = op_conv2d_create(&m->down_conv, a, NULL, r, g->n_in, g->k, g->k, g->stride, g->pad,
                                   OP_PREC_F32, 0)))
            goto done;
        if ((st = op_conv2d_create(&m->up_conv, b, NULL, g->n_out, r, 1, 1, 1, 0, OP_PREC_F32, 0)))
            goto done;
    }
done:
    if (st) lmx_err_prefix("%s: %s: ", l->path, m->key);
    lmx_free(a);
    lmx_free(b);
    return st;
}

/* ---- summaries and the report ---------------------------------------------------- */

static void summarise(lmx_lora *l) {
    for (int c = 0; c < LORA_N_COMP; c++) {
        lora_comp_info *s = &l->info[c];
        int n_diff = s->n_ref_differs;
        memset(s, 0, sizeof *s);
        s->n_ref_differs = n_diff;
        int best_rc = 0, best_ac = 0;
        for (int i = 0; i < l->n_mod; i++) {
            const lora_module *m = &l->mod[i];
            if (m->comp != (lora_comp)c) continue;
            s->n_modules++;
            if (m->dropped) s->n_dropped++;
            if (m->tg->kind == NN_LINEAR) s->n_linear++;
            else if (m->tg->k == 1) s->n_conv1x1++;
            else s->n_convkxk++;
            if (m->has_alpha) s->n_with_alpha++;
            if (s->n_modules == 1) {
                s->rank_min = s->rank_max = m->rank;
                s->alpha_min = s->alpha_max = m->alpha;
            }
            s->rank_min = LMX_MIN(s->rank_min, m->rank);
            s->rank_max = LMX_MAX(s->rank_max, m->rank);
            s->alpha_min = LMX_MIN(s->alpha_min, m->alpha);
            s->alpha_max = LMX_MAX(s->alpha_max, m->alpha);
            int rc = 0, ac = 0, seen_r = 0, seen_a = 0;
            for (int j = 0; j < l->n_mod; j++) {
                const lora_module *o = &l->mod[j];
                if (o->comp != (lora_comp)c) continue;
                if (o->rank == m->rank) {
                    rc++;
                    if (j < i) seen_r = 1;
                }
                if (o->alpha == m->alpha) {
                    ac++;
                    if (j < i) seen_a = 1;
                }
            }
            if (!seen_r) s->n_ranks++;
            if (!seen_a) s->n_alphas++;
            if (rc > best_rc) best_rc = rc, s->rank_mode = m->rank;
            if (ac > best_ac) best_ac = ac, s->alpha_mode = m->alpha;
        }
    }
}

/* "4" or "2 (10), 4 (127)": the distinct values of a field with counts. */
static void values_str(const lmx_lora *l, lora_comp c, int alpha, lmx_sb *b) {
    float seen[16];
    int n_seen = 0, more = 0;
    for (int i = 0; i < l->n_mod; i++) {
        const lora_module *m = &l->mod[i];
        if (m->comp != c) continue;
        float v = alpha ? m->alpha : (float)m->rank;
        int dup = 0;
        for (int j = 0; j < n_seen; j++) dup |= seen[j] == v;
        if (dup) continue;
        if (n_seen == (int)LMX_ARRAY_LEN(seen)) {
            more = 1;
            continue;
        }
        seen[n_seen++] = v;
    }
    for (int i = 0; i < n_seen; i++) {
        int cnt = 0;
        for (int j = 0; j < l->n_mod; j++)
            cnt += l->mod[j].comp == c && (alpha ? l->mod[j].alpha : (float)l->mod[j].rank) == seen[i];
        if (n_seen == 1)
            lmx_sb_printf(b, "%g", (double)seen[i]);
        else
            lmx_sb_printf(b, "%s%g (%d)", i ? ", " : "", (double)seen[i], cnt);
    }
    if (more) lmx_sb_printf(b, ", ...");
}

/* The formats of flag set f, " + " between them, appended to b. */
static void format_desc(unsigned f, lmx_sb *b) {
    size_t start = lmx_sb_len(b);
#define ADD(flag, text) \
    if (f & (flag)) lmx_sb_printf(b, "%s%s", lmx_sb_len(b) > start ? " + " : "", text)
    ADD(LORA_FMT_KOHYA, "kohya (lora_unet_/lora_te_, lora_down/lora_up/alpha)");
    ADD(LORA_FMT_PEFT, "PEFT/diffusers (lora_A/lora_B)");
    ADD(LORA_FMT_DIFFUSERS_OLD, "older diffusers (lora.down/up, lora_linear_layer, to_q_lora)");
    ADD(LORA_FMT_PEFT_PREFIX, "PEFT wrapper prefix (base_model.model.)");
#undef ADD
    if (lmx_sb_len(b) == start) lmx_sb_cat(b, "none recognised");
}

/* Length of a key's module stem: up to the tensor suffix (the first '.' of
 * a kohya key; else before a known suffix; else the whole key). */
static size_t stem_len(const char *k) {
    static const char *sfx[] = {".lora_down.weight", ".lora_up.weight", ".alpha", ".lora_A.weight",
                                ".lora_B.weight", ".lora.down.weight", ".lora.up.weight",
                                ".lora_linear_layer.down.weight", ".lora_linear_layer.up.weight",
                                "_lora.down.weight", "_lora.up.weight"};
    if (!strncmp(k, "lora_", 5) && strchr(k, '.')) return (size_t)(strchr(k, '.') - k);
    size_t n = strlen(k);
    for (size_t i = 0; i < LMX_ARRAY_LEN(sfx); i++) {
        size_t m = strlen(sfx[i]);
        if (n > m && !strcmp(k + n - m, sfx[i])) return n - m;
    }
    return n;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static lmx_status build_report(lmx_lora *l, char notes[LORA_N_COMP][512]) {
    lmx_sb b = LMX_SB_INIT;
    lmx_sb_printf(&b, "LoRA %s (%s)\n", l->name, l->path);
    lmx_sb_cat(&b, "  format: ");
    format_desc(l->formats, &b);
    if (l->formats & LORA_FMT_KOHYA_LDM) {
        int n_ldm = 0;
        for (int i = 0; i < l->n_mod; i++) n_ldm += (l->mod[i].spelling & LORA_FMT_KOHYA_LDM) != 0;
        lmx_sb_printf(&b, "; %d of %d UNet modules in the LDM dialect (input_blocks_...)", n_ldm,
                  l->info[LORA_UNET].n_modules);
    }
    lmx_sb_printf(&b, "\n  tensors: %d; modules: %d\n", st_count(l->f), l->n_mod);
    for (int c = 0; c < LORA_N_COMP; c++) {
        const lora_comp_info *s = &l->info[c];
        if (!s->n_modules) {
            lmx_sb_printf(&b, "  %s: no modules\n", lora_comp_name((lora_comp)c));
            continue;
        }
        lmx_sb_printf(&b, "  %s: %d modules (%d linear, %d 1x1 conv, %d kxk conv): rank ",
                  lora_comp_name((lora_comp)c), s->n_modules, s->n_linear, s->n_conv1x1, s->n_convkxk);
        values_str(l, (lora_comp)c, 0, &b);
        lmx_sb_printf(&b, ", alpha ");
        values_str(l, (lora_comp)c, 1, &b);
        if (!s->n_with_alpha)
            lmx_sb_printf(&b, " (no alpha tensors: alpha = rank)");
        else if (s->n_with_alpha < s->n_modules)
            lmx_sb_printf(&b, " (%d without an alpha tensor: alpha = rank)", s->n_modules - s->n_with_alpha);
        if (s->n_ranks == 1 && s->n_alphas == 1)
            lmx_sb_printf(&b, "; scale alpha/rank = %g", (double)(s->alpha_max / (float)s->rank_max));
        else
            lmx_sb_printf(&b, "; NON-UNIFORM %s%s%s", s->n_ranks > 1 ? "ranks" : "",
                      s->n_ranks > 1 && s->n_alphas > 1 ? " and " : "", s->n_alphas > 1 ? "alphas" : "");
        lmx_sb_printf(&b, "\n");
    }
    /* scaling */
    const char *mode = l->opts.scaling == LORA_SCALING_OWN ? "each module's own alpha/rank"
                                                            : "diffusers 0.32.2's (compatibility)";
    int n_diff = l->info[0].n_ref_differs + l->info[1].n_ref_differs;
    lmx_sb_printf(&b, "  scaling: %s", mode);
    if (!n_diff) {
        lmx_sb_printf(&b, "; diffusers 0.32.2 gives every module the same scale\n");
    } else {
        lmx_sb_printf(&b, "; diffusers 0.32.2 would scale %d module%s differently:\n", n_diff,
                  n_diff == 1 ? "" : "s");
        for (int c = 0; c < LORA_N_COMP; c++) {
            if (!l->info[c].n_ref_differs) continue;
            lmx_sb_printf(&b, "    %s: %d modules: %s", lora_comp_name((lora_comp)c), l->info[c].n_ref_differs,
                      notes[c]);
            for (int i = 0; i < l->n_mod; i++) {
                const lora_module *m = &l->mod[i];
                if (m->comp == (lora_comp)c && m->scale_ref != m->scale_own) {
                    lmx_sb_printf(&b, " (e.g. %s: %g here, %g in diffusers)", m->tg->path,
                              (double)m->scale_own, (double)m->scale_ref);
                    break;
                }
            }
            lmx_sb_printf(&b, "\n");
        }
    }
    /* dropped */
    int nd = l->info[LORA_UNET].n_dropped;
    int n_dmod = 0;
    for (int i = 0; i < l->n_mod; i++) n_dmod += dropped_by_reference(&l->mod[i]);
    if (n_dmod) {
        lmx_sb_printf(&b, "  %s %d module%s on conv_in/conv_out/time_embedding (diffusers drops them):",
                  nd ? "ignored" : "applied", n_dmod, n_dmod == 1 ? "" : "s");
        for (int i = 0; i < l->n_mod; i++)
            if (dropped_by_reference(&l->mod[i])) lmx_sb_printf(&b, " %s", l->mod[i].key);
        lmx_sb_printf(&b, "\n");
    }
    /* unmatched, grouped by module stem (sorted at load) */
    lmx_sb_printf(&b, "  unmatched keys: %d", l->n_unmatched);
    int shown = 0;
    for (int i = 0; i < l->n_unmatched;) {
        char q[256];
        size_t sl = stem_len(l->unmatched[i]);
        int j = i + 1;
        while (j < l->n_unmatched && stem_len(l->unmatched[j]) == sl &&
               !strncmp(l->unmatched[j], l->unmatched[i], sl))
            j++;
        if (shown == 50) {
            lmx_sb_printf(&b, "\n    ... and %d more keys", l->n_unmatched - i);
            break;
        }
        char stem[200];
        snprintf(stem, sizeof stem, "%.*s", (int)LMX_MIN(sl, sizeof stem - 1), l->unmatched[i]);
        lmx_sb_printf(&b, "\n    %s", qk(q, sizeof q, stem));
        if (j - i > 1 || sl < strlen(l->unmatched[i])) {
            lmx_sb_printf(&b, " (");
            for (int k = i; k < j; k++)
                lmx_sb_printf(&b, "%s%s", k > i ? ", " : "", qk(q, sizeof q, l->unmatched[k] + sl));
            lmx_sb_printf(&b, ")");
        }
        shown++;
        i = j;
    }
    lmx_sb_printf(&b, "\n");
    for (int i = 0; i < l->n_warnings; i++) lmx_sb_printf(&b, "  warning: %s\n", l->warnings[i]);
    l->report = lmx_sb_take(&b);
    if (!l->report) return lmx_err(LMX_ERR_NOMEM, "%s: out of memory", l->path);
    return LMX_OK;
}

/* ---- loading ------------------------------------------------------------------ */

/* A header length followed by '{': a (possibly damaged) safetensors file,
 * whatever its first two bytes look like. */
static int looks_like_safetensors(const char *path) {
    unsigned char h[9];
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    size_t n = fread(h, 1, sizeof h, f);
    fclose(f);
    return n == sizeof h && h[8] == '{';
}

/* Load order of every LoRA of the process (lmx_lora.serial). */
static _Atomic uint64_t g_serial;

static lmx_status load_impl(lmx_lora **out, const lora_targets *t, const sd_model *model,
                            const char *path, const lora_opts *opts) {
    lmx_status st = LMX_OK;
    char why[128], q[256];
    char notes[LORA_N_COMP][512];
    lmx_lora *l = lmx_calloc(1, sizeof *l);
    if (!l) return lmx_err(LMX_ERR_NOMEM, "%s: out of memory", path);
    l->opts = opts ? *opts : lora_opts_default();
    l->serial = atomic_fetch_add(&g_serial, 1) + 1;
    l->path = lmx_strdup(path);
    l->name = base_name(path);
    if (!l->path || !l->name) {
        st = lmx_err(LMX_ERR_NOMEM, "%s: out of memory", path);
        goto fail;
    }
    /* safetensors first: a valid header is never pickle (det_is_pickle alone
     * can mistake a header length such as 0x0580 for pickle's magic) */
    if ((st = st_open_flags(&l->f, path, model ? model->st_flags : 0))) {
        if (st == LMX_ERR_FORMAT && !looks_like_safetensors(path)) {
            char saved[1024];
            snprintf(saved, sizeof saved, "%s", lmx_errmsg());
            if (det_is_pickle(path, why, sizeof why))
                st = lmx_err(LMX_ERR_UNSUPPORTED,
                             "%s: %s: loramix never loads pickle files (loading one can run "
                             "arbitrary code); convert the LoRA to .safetensors first",
                             path, why[0] ? why : "a PyTorch pickle file");
            else
                lmx_err(st, "%s", saved);
        }
        goto fail;
    }
    if ((st = refuse_kinds(l, t))) goto fail;
    if ((st = group_keys(l, t))) goto fail;
    if (!l->n_mod) {
        st = lmx_err(LMX_ERR_FORMAT,
                     "%s: no LoRA module of this file matches a layer of the model (%d tensor%s%s%s%s); "
                     "expected kohya (lora_unet_*/lora_te_*) or diffusers/PEFT (unet.*/text_encoder.*) "
                     "keys",
                     path, st_count(l->f), st_count(l->f) == 1 ? "" : "s",
                     st_count(l->f) ? ", e.g. '" : "",
                     st_count(l->f) ? qk(q, sizeof q, st_at(l->f, 0)->name) : "",
                     st_count(l->f) ? "'" : "");
        goto fail;
    }
    /* An arch hint for shape errors (a LoRA for another SD family). */
    det_info d;
    det_classify(l->f, NULL, &d);
    const char *hint = d.arch == DET_ARCH_SDXL  ? " (the file looks made for SDXL)"
                       : d.arch == DET_ARCH_SD2 ? " (the file looks made for SD2.x)"
                                                : "";
    for (int i = 0; i < l->n_mod; i++) {
        lora_module *m = &l->mod[i];
        if ((st = check_module(l, m, hint))) goto fail;
        m->dropped = dropped_by_reference(m) && !l->opts.apply_dropped;
        if (dropped_by_reference(m)) {
            l->n_dropped_keys += (m->down_t != NULL) + (m->up_t != NULL) + (m->alpha_t != NULL);
        }
    }
    if ((st = lora_ref_scales(l, notes))) goto fail;
    for (int i = 0; i < l->n_mod; i++) {
        lora_module *m = &l->mod[i];
        m->scale = l->opts.scaling == LORA_SCALING_DIFFUSERS ? m->scale_ref : m->scale_own;
    }
    for (int i = 0; i < l->n_mod; i++)
        if ((st = prepare(l, &l->mod[i], model != NULL || l->opts.kernels))) goto fail;
    summarise(l);
    if (l->n_unmatched > 1) qsort(l->unmatched, (size_t)l->n_unmatched, sizeof *l->unmatched, cmp_str);
    /* Warnings about what is not applied, and scaling differences. */
    if (l->n_unmatched) {
        lmx_sb list = LMX_SB_INIT;
        int n_stems = 0;
        for (int i = 0; i < l->n_unmatched; i++) {
            size_t sl = stem_len(l->unmatched[i]);
            if (i && stem_len(l->unmatched[i - 1]) == sl && !strncmp(l->unmatched[i - 1], l->unmatched[i], sl))
                continue;
            if (n_stems < 3) {
                char stem[200];
                snprintf(stem, sizeof stem, "%.*s", (int)LMX_MIN(sl, sizeof stem - 1), l->unmatched[i]);
                lmx_sb_printf(&list, "%s'%s'", n_stems ? ", " : "", qk(q, sizeof q, stem));
            }
            n_stems++;
        }
        if (lmx_sb_failed(&list)) {
            lmx_sb_free(&list);
            st = lmx_err(LMX_ERR_NOMEM, "%s: out of memory", path);
            goto fail;
        }
        st = add_warning(l, "%d key%s (%d module%s) match%s no layer of the model and %s ignored: %s%s",
                         l->n_unmatched, l->n_unmatched == 1 ? "" : "s", n_stems, n_stems == 1 ? "" : "s",
                         l->n_unmatched == 1 ? "es" : "", l->n_unmatched == 1 ? "is" : "are", lmx_sb_str(&list),
                         n_stems > 3 ? ", ... (the report lists them all)" : "");
        lmx_sb_free(&list);
        if (st) goto fail;
    }
    if (l->info[LORA_UNET].n_dropped &&
        (st = add_warning(l,
                          "%d module%s on conv_in/conv_out/time_embedding ignored, as diffusers does "
                          "(its kohya conversion cannot name them); the loader option apply_dropped "
                          "(`loramix lora inspect --apply-all`) applies them",
                          l->info[LORA_UNET].n_dropped, l->info[LORA_UNET].n_dropped == 1 ? "" : "s")))
        goto fail;
    if ((l->formats & LORA_FMT_KOHYA_LDM) &&
        (st = add_warning(l, "UNet keys in the LDM dialect (input_blocks_...) are applied; diffusers "
                             "0.32.2 would not load them for SD1.x")))
        goto fail;
    for (int c = 0; c < LORA_N_COMP; c++) {
        if (!l->info[c].n_ref_differs) continue;
        if ((st = add_warning(l, "non-uniform %s ranks/alphas: %s; loramix uses %s", lora_comp_name((lora_comp)c),
                              notes[c],
                              l->opts.scaling == LORA_SCALING_OWN ? "each module's own alpha/rank"
                                                                  : "diffusers' scales")))
            goto fail;
    }
    if ((st = build_report(l, notes))) goto fail;
    l->model = model;
    *out = l;
    return LMX_OK;
fail:
    lora_free(l);
    return st;
}

lmx_status lora_load_targets(lmx_lora **out, const lora_targets *t, const char *path,
                             const lora_opts *opts) {
    *out = NULL;
    if (!t || !path) return lmx_err(LMX_ERR_ARG, "LoRA: no targets or no path");
    return load_impl(out, t, NULL, path, opts);
}

lmx_status lora_load(lmx_lora **out, const sd_model *m, const char *path, const lora_opts *opts) {
    *out = NULL;
    if (!m || !path) return lmx_err(LMX_ERR_ARG, "LoRA: no model or no path");
    lora_targets *t = NULL;
    lmx_status st = lora_targets_from_model(&t, m);
    if (st) return st;
    st = load_impl(out, t, m, path, opts);
    if (st) {
        lora_targets_free(t);
        return st;
    }
    (*out)->targets = t;
    return LMX_OK;
}

/* ---- JSON --------------------------------------------------------------------- */

struct cJSON *lora_report_json(const lmx_lora *l) {
    io_cjson_init();
    cJSON *j = cJSON_CreateObject();
    if (!j) return NULL;
    cJSON_AddStringToObject(j, "path", l->path);
    cJSON_AddStringToObject(j, "name", l->name);
    cJSON *fm = cJSON_AddArrayToObject(j, "formats");
    static const struct {
        unsigned f;
        const char *id;
    } F[] = {{LORA_FMT_KOHYA, "kohya"}, {LORA_FMT_KOHYA_LDM, "kohya-ldm-dialect"}, {LORA_FMT_PEFT, "peft"},
             {LORA_FMT_DIFFUSERS_OLD, "diffusers-old"}, {LORA_FMT_PEFT_PREFIX, "peft-prefix"}};
    for (size_t i = 0; fm && i < LMX_ARRAY_LEN(F); i++)
        if (l->formats & F[i].f) cJSON_AddItemToArray(fm, cJSON_CreateString(F[i].id));
    cJSON_AddNumberToObject(j, "tensors", st_count(l->f));
    cJSON_AddStringToObject(j, "scaling", l->opts.scaling == LORA_SCALING_OWN ? "own" : "diffusers");
    static const char *cid[LORA_N_COMP] = {"unet", "text_encoder"};
    for (int c = 0; c < LORA_N_COMP; c++) {
        const lora_comp_info *s = &l->info[c];
        cJSON *o = cJSON_AddObjectToObject(j, cid[c]);
        if (!o) continue;
        cJSON_AddNumberToObject(o, "modules", s->n_modules);
        cJSON_AddNumberToObject(o, "linear", s->n_linear);
        cJSON_AddNumberToObject(o, "conv1x1", s->n_conv1x1);
        cJSON_AddNumberToObject(o, "convkxk", s->n_convkxk);
        cJSON_AddNumberToObject(o, "ignored", s->n_dropped);
        cJSON_AddNumberToObject(o, "with_alpha", s->n_with_alpha);
        cJSON_AddBoolToObject(o, "uniform", s->n_ranks <= 1 && s->n_alphas <= 1);
        cJSON_AddNumberToObject(o, "reference_differs", s->n_ref_differs);
        cJSON *ranks = cJSON_AddObjectToObject(o, "ranks"), *alphas = cJSON_AddObjectToObject(o, "alphas");
        for (int i = 0; i < l->n_mod && ranks && alphas; i++) {
            const lora_module *m = &l->mod[i];
            if (m->comp != (lora_comp)c) continue;
            char k[32];
            snprintf(k, sizeof k, "%d", m->rank);
            cJSON *e = cJSON_GetObjectItemCaseSensitive(ranks, k);
            if (e) cJSON_SetNumberValue(e, e->valuedouble + 1);
            else cJSON_AddNumberToObject(ranks, k, 1);
            snprintf(k, sizeof k, "%g", (double)m->alpha);
            e = cJSON_GetObjectItemCaseSensitive(alphas, k);
            if (e) cJSON_SetNumberValue(e, e->valuedouble + 1);
            else cJSON_AddNumberToObject(alphas, k, 1);
        }
    }
    cJSON *mods = cJSON_AddArrayToObject(j, "modules");
    for (int i = 0; mods && i < l->n_mod; i++) {
        const lora_module *m = &l->mod[i];
        cJSON *o = cJSON_CreateObject();
        if (!o) break;
        cJSON_AddStringToObject(o, "key", m->key);
        cJSON_AddStringToObject(o, "component", cid[m->comp]);
        cJSON_AddStringToObject(o, "layer", m->tg->path);
        cJSON_AddNumberToObject(o, "rank", m->rank);
        cJSON_AddNumberToObject(o, "alpha", m->alpha);
        cJSON_AddBoolToObject(o, "has_alpha", m->has_alpha);
        cJSON_AddNumberToObject(o, "scale", m->scale);
        cJSON_AddNumberToObject(o, "scale_diffusers", m->scale_ref);
        cJSON_AddNumberToObject(o, "kernel", m->kh);
        cJSON_AddBoolToObject(o, "ignored", m->dropped);
        cJSON_AddItemToArray(mods, o);
    }
    cJSON *um = cJSON_AddArrayToObject(j, "unmatched");
    for (int i = 0; um && i < l->n_unmatched; i++) cJSON_AddItemToArray(um, cJSON_CreateString(l->unmatched[i]));
    cJSON *w = cJSON_AddArrayToObject(j, "warnings");
    for (int i = 0; w && i < l->n_warnings; i++) cJSON_AddItemToArray(w, cJSON_CreateString(l->warnings[i]));
    return j;
}
