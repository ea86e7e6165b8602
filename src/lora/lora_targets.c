/*
 * lora_targets.c - the layers a LoRA can adapt, and every name a LoRA file
 * may use for each of them.
 *
 * A target list comes from a loaded model (its UNet and text-encoder
 * nn_layers) or from configs alone (an enumeration that mirrors
 * unet_load / clip_text_load without reading weights, for `loramix lora
 * inspect` without a model). Each target is indexed under:
 *   - its module path, dotted ("down_blocks.0.attentions.0.proj_in"), as
 *     diffusers/PEFT keys spell it; TE paths also without "text_model.";
 *   - the kohya flattening of that path ('.' -> '_'), the "diffusers" dialect;
 *   - for the UNet, the kohya flattening of the LDM path of the same module
 *     (keymap.c's diffusers -> LDM table: "input_blocks_1_1_proj_in"), the
 *     "ldm" dialect of docs/methods.md §2.4.
 * A kohya key is resolved by looking its flattened stem up in this index,
 * so names that contain '_' themselves (proj_in, to_out_0, time_emb_proj,
 * self_attn_q_proj) need no guessing. Two different modules never flatten
 * to the same name in SD1.x (checked when the index is built).
 */
#include <string.h>

#include "lora/lora_impl.h"
#include "model/keymap.h"

void lora_targets_free(lora_targets *t) {
    if (!t) return;
    for (int i = 0; i < t->n; i++) lmx_free(t->v[i].path);
    lmx_free(t->v);
    for (int i = 0; i < t->n_names; i++) lmx_free(t->names[i].name);
    lmx_free(t->names);
    lmx_free(t->slots);
    lmx_free(t);
}

int lora_targets_count(const lora_targets *t) { return t->n; }
const lora_target *lora_targets_at(const lora_targets *t, int i) { return &t->v[i]; }

/* ---- the name index (open addressing, FNV-1a) ------------------------------ */

static uint64_t hash_str(lora_comp c, const char *s) {
    uint64_t h = 1469598103934665603ull ^ (uint64_t)(c + 1);
    for (; *s; s++) {
        h ^= (uint8_t)*s;
        h *= 1099511628211ull;
    }
    return h;
}

static lmx_status add_target(lora_targets *t, const char *path, lora_comp comp, nn_kind kind,
                             int64_t n_out, int64_t n_in, int k, int stride, int pad,
                             nn_layer *layer) {
    if (t->n == t->cap) {
        int cap = t->cap ? 2 * t->cap : 256;
        lora_target *v = lmx_realloc(t->v, sizeof *v * (size_t)cap);
        if (!v) return lmx_err(LMX_ERR_NOMEM, "LoRA targets: out of memory");
        t->v = v;
        t->cap = cap;
    }
    lora_target *g = &t->v[t->n];
    memset(g, 0, sizeof *g);
    g->path = lmx_strdup(path);
    if (!g->path) return lmx_err(LMX_ERR_NOMEM, "LoRA targets: out of memory");
    g->comp = comp;
    g->kind = kind;
    g->n_out = n_out;
    g->n_in = n_in;
    g->k = k;
    g->stride = stride;
    g->pad = pad;
    g->layer = layer;
    t->n++;
    return LMX_OK;
}

static lmx_status add_name(lora_targets *t, lora_comp comp, const char *name, int target,
                           unsigned dialect) {
    if (t->n_names == t->cap_names) {
        int cap = t->cap_names ? 2 * t->cap_names : 1024;
        lora_name *v = lmx_realloc(t->names, sizeof *v * (size_t)cap);
        if (!v) return lmx_err(LMX_ERR_NOMEM, "LoRA targets: out of memory");
        t->names = v;
        t->cap_names = cap;
    }
    lora_name *e = &t->names[t->n_names];
    e->name = lmx_strdup(name);
    if (!e->name) return lmx_err(LMX_ERR_NOMEM, "LoRA targets: out of memory");
    e->comp = comp;
    e->target = target;
    e->dialect = dialect;
    t->n_names++;
    return LMX_OK;
}

const lora_name *lora_targets_lookup(const lora_targets *t, lora_comp c, const char *name) {
    if (!t->n_slots) return NULL;
    size_t mask = (size_t)t->n_slots - 1;
    for (size_t i = (size_t)hash_str(c, name) & mask;; i = (i + 1) & mask) {
        int s = t->slots[i];
        if (s < 0) return NULL;
        const lora_name *e = &t->names[s];
        if (e->comp == c && strcmp(e->name, name) == 0) return e;
    }
}

int lora_targets_find(const lora_targets *t, lora_comp c, const char *path) {
    const lora_name *e = lora_targets_lookup(t, c, path);
    return e && (e->dialect & LORA_NAME_DOTTED) ? e->target : -1;
}

static lmx_status build_index(lora_targets *t) {
    int n = 16;
    while (n < 2 * t->n_names + 16) n *= 2;
    t->slots = lmx_malloc(sizeof *t->slots * (size_t)n);
    if (!t->slots) return lmx_err(LMX_ERR_NOMEM, "LoRA targets: out of memory");
    for (int i = 0; i < n; i++) t->slots[i] = -1;
    t->n_slots = n;
    size_t mask = (size_t)n - 1;
    for (int k = 0; k < t->n_names; k++) {
        lora_name *e = &t->names[k];
        size_t i = (size_t)hash_str(e->comp, e->name) & mask;
        for (; t->slots[i] >= 0; i = (i + 1) & mask) {
            lora_name *o = &t->names[t->slots[i]];
            if (o->comp == e->comp && strcmp(o->name, e->name) == 0) {
                if (o->target != e->target)
                    return lmx_err(LMX_ERR_INTERNAL, "LoRA targets: '%s' names both %s and %s",
                                   e->name, t->v[o->target].path, t->v[e->target].path);
                o->dialect |= e->dialect; /* one entry, several spellings */
                break;
            }
        }
        if (t->slots[i] < 0) t->slots[i] = k;
    }
    return LMX_OK;
}

static void flatten(const char *in, char *out, size_t n) {
    size_t i = 0;
    for (; in[i] && i + 1 < n; i++) out[i] = in[i] == '.' ? '_' : in[i];
    out[i] = 0;
}

/* Register every name of target i. km: diffusers -> LDM map for the UNet. */
static lmx_status index_target(lora_targets *t, int i, const keymap *km) {
    const lora_target *g = &t->v[i];
    char flat[512], tmp[512], ldm[512];
    lmx_status st;
    if ((st = add_name(t, g->comp, g->path, i, LORA_NAME_DOTTED))) return st;
    flatten(g->path, flat, sizeof flat);
    if ((st = add_name(t, g->comp, flat, i, LORA_NAME_FLAT))) return st;
    if (g->comp == LORA_TE) {
        static const char tm[] = "text_model.";
        if (strncmp(g->path, tm, sizeof tm - 1) == 0) {
            const char *rest = g->path + sizeof tm - 1;
            if ((st = add_name(t, g->comp, rest, i, LORA_NAME_DOTTED))) return st;
            flatten(rest, flat, sizeof flat);
            if ((st = add_name(t, g->comp, flat, i, LORA_NAME_FLAT))) return st;
        }
    } else if (km) {
        snprintf(tmp, sizeof tmp, "%s.weight", g->path);
        if (km_map(km, tmp, ldm, sizeof ldm) == 0) {
            size_t L = strlen(ldm);
            if (L > 7) ldm[L - 7] = 0; /* drop ".weight" */
            if (strcmp(ldm, g->path) != 0) {
                flatten(ldm, flat, sizeof flat);
                if ((st = add_name(t, g->comp, flat, i, LORA_NAME_FLAT_LDM))) return st;
            }
        }
    }
    return LMX_OK;
}

static lmx_status finish(lora_targets *t, const unet_config *ucfg) {
    keymap km;
    lmx_status st = km_build_unet_ldm(&km, ucfg);
    if (st) return st;
    for (int i = 0; i < t->n && !st; i++) st = index_target(t, i, t->v[i].comp == LORA_UNET ? &km : NULL);
    km_free(&km);
    if (!st) st = build_index(t);
    return st;
}

/* ---- from a model ----------------------------------------------------------- */

static lmx_status add_layers(lora_targets *t, const nn_layers *ls, lora_comp comp) {
    for (int i = 0; i < ls->n; i++) {
        nn_layer *l = ls->v[i];
        lmx_status st = add_target(t, l->path, comp, l->kind, l->n_out, l->n_in,
                                   l->kind == NN_LINEAR ? 1 : l->kh, l->stride, l->pad, l);
        if (st) return st;
    }
    return LMX_OK;
}

lmx_status lora_targets_from_model(lora_targets **out, const sd_model *m) {
    *out = NULL;
    if (!m || !m->unet || !m->text)
        return lmx_err(LMX_ERR_ARG, "LoRA: the model has no UNet or text encoder");
    lora_targets *t = lmx_calloc(1, sizeof *t);
    if (!t) return lmx_err(LMX_ERR_NOMEM, "LoRA targets: out of memory");
    t->unet_cfg = *unet_cfg(m->unet);
    t->text_cfg = *clip_text_cfg(m->text);
    lmx_status st = add_layers(t, unet_layers(m->unet), LORA_UNET);
    if (!st) st = add_layers(t, clip_text_layers(m->text), LORA_TE);
    if (!st) st = finish(t, &t->unet_cfg);
    if (st) {
        lora_targets_free(t);
        return st;
    }
    *out = t;
    return LMX_OK;
}

/* ---- from configs (mirrors unet_load / clip_text_load) ----------------------- */

#define P(...) nn_path(p, sizeof p, __VA_ARGS__)

static lmx_status en_lin(lora_targets *t, lora_comp c, const char *path, int64_t o, int64_t i) {
    return add_target(t, path, c, NN_LINEAR, o, i, 1, 1, 0, NULL);
}

static lmx_status en_conv(lora_targets *t, const char *path, int64_t o, int64_t i, int k, int s,
                          int pad) {
    return add_target(t, path, LORA_UNET, NN_CONV2D, o, i, k, s, pad, NULL);
}

static lmx_status en_resnet(lora_targets *t, const char *path, int64_t ci, int64_t co,
                            int64_t temb) {
    char p[256];
    lmx_status st;
    if ((st = en_conv(t, P("%s.conv1", path), co, ci, 3, 1, 1))) return st;
    if ((st = en_lin(t, LORA_UNET, P("%s.time_emb_proj", path), co, temb))) return st;
    if ((st = en_conv(t, P("%s.conv2", path), co, co, 3, 1, 1))) return st;
    if (ci != co && (st = en_conv(t, P("%s.conv_shortcut", path), co, ci, 1, 1, 0))) return st;
    return LMX_OK;
}

static lmx_status en_xformer(lora_targets *t, const char *path, int64_t C, int depth,
                             const unet_config *c) {
    char p[256], q[256];
    lmx_status st;
    static const char *attn[2] = {"attn1", "attn2"};
#define PROJ(name)                                                                          \
    (c->linear_proj ? en_lin(t, LORA_UNET, P("%s." name, path), C, C)                       \
                    : en_conv(t, P("%s." name, path), C, C, 1, 1, 0))
    if ((st = PROJ("proj_in"))) return st;
    for (int b = 0; b < depth; b++) {
        nn_path(q, sizeof q, "%s.transformer_blocks.%d", path, b);
        for (int a = 0; a < 2; a++) {
            int64_t kv = a == 0 ? C : c->cross_dim;
            if ((st = en_lin(t, LORA_UNET, P("%s.%s.to_q", q, attn[a]), C, C))) return st;
            if ((st = en_lin(t, LORA_UNET, P("%s.%s.to_k", q, attn[a]), C, kv))) return st;
            if ((st = en_lin(t, LORA_UNET, P("%s.%s.to_v", q, attn[a]), C, kv))) return st;
            if ((st = en_lin(t, LORA_UNET, P("%s.%s.to_out.0", q, attn[a]), C, C))) return st;
        }
        if ((st = en_lin(t, LORA_UNET, P("%s.ff.net.0.proj", q), 8 * C, C))) return st;
        if ((st = en_lin(t, LORA_UNET, P("%s.ff.net.2", q), C, 4 * C))) return st;
    }
    return PROJ("proj_out");
#undef PROJ
}

static lmx_status enumerate_unet(lora_targets *t, const unet_config *c) {
    char p[256];
    lmx_status st;
    int n = c->n_levels, L = c->layers_per_block;
    int64_t temb = 4 * (int64_t)c->ch[0];
    if ((st = en_conv(t, "conv_in", c->ch[0], c->in_channels, 3, 1, 1))) return st;
    if ((st = en_lin(t, LORA_UNET, "time_embedding.linear_1", temb, c->ch[0]))) return st;
    if ((st = en_lin(t, LORA_UNET, "time_embedding.linear_2", temb, temb))) return st;
    int64_t out_c = c->ch[0];
    for (int i = 0; i < n; i++) {
        int64_t in_c = out_c;
        out_c = c->ch[i];
        for (int j = 0; j < L; j++) {
            if ((st = en_resnet(t, P("down_blocks.%d.resnets.%d", i, j), j == 0 ? in_c : out_c, out_c,
                                temb)))
                return st;
            if (c->down_attn[i] &&
                (st = en_xformer(t, P("down_blocks.%d.attentions.%d", i, j), out_c, c->tlayers[i], c)))
                return st;
        }
        if (i < n - 1 && (st = en_conv(t, P("down_blocks.%d.downsamplers.0.conv", i), out_c, out_c, 3,
                                       2, c->downsample_padding)))
            return st;
    }
    int64_t top = c->ch[n - 1];
    if ((st = en_resnet(t, "mid_block.resnets.0", top, top, temb))) return st;
    if ((st = en_xformer(t, "mid_block.attentions.0", top, c->tlayers[n - 1], c))) return st;
    if ((st = en_resnet(t, "mid_block.resnets.1", top, top, temb))) return st;
    out_c = c->ch[n - 1];
    for (int i = 0; i < n; i++) {
        int r = n - 1 - i;
        int64_t prev = out_c;
        out_c = c->ch[r];
        int64_t in_c = c->ch[r > 0 ? r - 1 : 0];
        for (int j = 0; j <= L; j++) {
            int64_t skip_c = j == L ? in_c : out_c;
            int64_t rin = j == 0 ? prev : out_c;
            if ((st = en_resnet(t, P("up_blocks.%d.resnets.%d", i, j), rin + skip_c, out_c, temb)))
                return st;
            if (c->up_attn[i] &&
                (st = en_xformer(t, P("up_blocks.%d.attentions.%d", i, j), out_c, c->tlayers[r], c)))
                return st;
        }
        if (i < n - 1 &&
            (st = en_conv(t, P("up_blocks.%d.upsamplers.0.conv", i), out_c, out_c, 3, 1, 1)))
            return st;
    }
    return en_conv(t, "conv_out", c->out_channels, c->ch[0], 3, 1, 1);
}

static lmx_status enumerate_text(lora_targets *t, const clip_text_config *c) {
    char p[256];
    lmx_status st;
    int64_t C = c->hidden, I = c->intermediate;
    static const char *proj[4] = {"q_proj", "k_proj", "v_proj", "out_proj"};
    for (int l = 0; l < c->layers; l++) {
        for (int k = 0; k < 4; k++)
            if ((st = en_lin(t, LORA_TE, P("text_model.encoder.layers.%d.self_attn.%s", l, proj[k]), C, C)))
                return st;
        if ((st = en_lin(t, LORA_TE, P("text_model.encoder.layers.%d.mlp.fc1", l), I, C))) return st;
        if ((st = en_lin(t, LORA_TE, P("text_model.encoder.layers.%d.mlp.fc2", l), C, I))) return st;
    }
    return LMX_OK;
}
#undef P

lmx_status lora_targets_from_config(lora_targets **out, const unet_config *u,
                                    const clip_text_config *tc) {
    *out = NULL;
    lmx_status st;
    if ((st = unet_config_check(u, "unet config"))) return st;
    if ((st = clip_text_config_check(tc, "text encoder config"))) return st;
    lora_targets *t = lmx_calloc(1, sizeof *t);
    if (!t) return lmx_err(LMX_ERR_NOMEM, "LoRA targets: out of memory");
    t->unet_cfg = *u;
    t->text_cfg = *tc;
    st = enumerate_unet(t, u);
    if (!st) st = enumerate_text(t, tc);
    if (!st) st = finish(t, u);
    if (st) {
        lora_targets_free(t);
        return st;
    }
    *out = t;
    return LMX_OK;
}

lmx_status lora_targets_sd15(lora_targets **out) {
    unet_config u = unet_config_sd15();
    clip_text_config c = clip_text_config_sd15();
    return lora_targets_from_config(out, &u, &c);
}
