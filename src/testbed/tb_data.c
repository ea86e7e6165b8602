/*
 * tb_data.c - reading the testbed definition: testbed.json (subsets with
 * their per-subset defaults, seed protocols, N values) and each subset's
 * lora_info file (docs/testbed.md §1-§4).
 *
 * The lora_info files are the upstream anime_lora_info.json /
 * reality_lora_info.json, read as they are: the top-level key order is the
 * category order (composition, prompt and switch order), and a LoRA's
 * category is its top-level key, which must also prefix its id
 * ("clothing_2"). cJSON keeps object members in file order, which is what
 * makes the key order usable here.
 *
 * Everything is validated and every error names the file and the field, so
 * a custom testbed (--testbed-dir) fails early and clearly.
 */
#include <cjson/cJSON.h>
#include <math.h>
#include <string.h>

#include "core/datadir.h"
#include "io/io_util.h"
#include "testbed/testbed.h"

#define TB_MAX_JSON (16u << 20)

static const char *CAT_NAMES[LMX_CAT_COUNT] = {"other", "character",  "clothing",
                                               "style", "background", "object"};

static lmx_lora_category category_of(const char *key) {
    for (int c = 1; c < LMX_CAT_COUNT; c++)
        if (!strcmp(key, CAT_NAMES[c])) return (lmx_lora_category)c;
    return LMX_CAT_OTHER;
}

/* ---- typed field access with messages naming file and field -------------- */

typedef struct jctx {
    const char *file;
    lmx_status st;
} jctx;

static const cJSON *get(jctx *c, const cJSON *obj, const char *where, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v && c->st == LMX_OK)
        c->st = lmx_err(LMX_ERR_FORMAT, "%s: %s%s%s: missing", c->file, where, *where ? "." : "", key);
    return v;
}

static char *get_str(jctx *c, const cJSON *obj, const char *where, const char *key, int nullable) {
    const cJSON *v = get(c, obj, where, key);
    if (!v) return NULL;
    if (nullable && cJSON_IsNull(v)) return NULL;
    if (!cJSON_IsString(v) || !v->valuestring) {
        if (c->st == LMX_OK)
            c->st = lmx_err(LMX_ERR_FORMAT, "%s: %s%s%s: expected a string%s", c->file, where,
                            *where ? "." : "", key, nullable ? " or null" : "");
        return NULL;
    }
    char *s = lmx_strdup(v->valuestring);
    if (!s && c->st == LMX_OK) c->st = lmx_err(LMX_ERR_NOMEM, "%s: out of memory", c->file);
    return s;
}

static double get_num(jctx *c, const cJSON *obj, const char *where, const char *key, double lo, double hi,
                      int integer) {
    const cJSON *v = get(c, obj, where, key);
    if (!v) return lo;
    double x = cJSON_IsNumber(v) ? v->valuedouble : NAN;
    if (!(x >= lo && x <= hi) || (integer && x != floor(x))) {
        if (c->st == LMX_OK)
            c->st = lmx_err(LMX_ERR_FORMAT, "%s: %s%s%s: expected %s in [%g, %g]", c->file, where,
                            *where ? "." : "", key, integer ? "an integer" : "a number", lo, hi);
        return lo;
    }
    return x;
}

/* Every member of obj must be one of the NULL-terminated `known` keys. */
static void check_keys(jctx *c, const cJSON *obj, const char *where, const char *const *known) {
    for (const cJSON *m = obj->child; m && c->st == LMX_OK; m = m->next) {
        int ok = 0;
        for (int i = 0; known[i] && !ok; i++)
            ok = !strcmp(m->string, known[i]);
        if (!ok)
            c->st = lmx_err(LMX_ERR_FORMAT, "%s: %s%s%s: unknown field", c->file, where, *where ? "." : "",
                            m->string);
    }
}

static lmx_status parse_file(const char *path, cJSON **out) {
    *out = NULL;
    char *text = NULL;
    size_t n = 0;
    lmx_status st = lmx_read_file(path, &text, &n, TB_MAX_JSON);
    if (st != LMX_OK) return st;
    io_cjson_init();
    io_cjson_oom_clear();
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(text, n, &end, 0);
    if (!j) {
        if (io_cjson_oom())
            st = lmx_err(LMX_ERR_NOMEM, "%s: out of memory", path);
        else {
            const char *at = cJSON_GetErrorPtr();
            size_t off = at && at >= text && at <= text + n ? (size_t)(at - text) : 0;
            int line = 1;
            for (size_t i = 0; i < off; i++)
                line += text[i] == '\n';
            st = lmx_err(LMX_ERR_FORMAT, "%s: not valid JSON (near line %d)", path, line);
        }
    } else if (!cJSON_IsObject(j)) {
        st = lmx_err(LMX_ERR_FORMAT, "%s: expected a JSON object at the top", path);
        cJSON_Delete(j);
        j = NULL;
    }
    lmx_free(text);
    *out = j;
    return st;
}

/* ---- lora_info ------------------------------------------------------------ */

static lmx_status load_lora_info(tb_subset *s, const char *path) {
    cJSON *root = NULL;
    lmx_status st = parse_file(path, &root);
    if (st != LMX_OK) return st;
    jctx c = {path, LMX_OK};
    int total = 0;
    s->character = -1;
    for (const cJSON *cat = root->child; cat; cat = cat->next) {
        if (s->n_cats == TB_MAX_CATS) {
            c.st = lmx_err(LMX_ERR_UNSUPPORTED, "%s: more than %d categories", path, TB_MAX_CATS);
            goto done;
        }
        if (!cJSON_IsArray(cat) || cJSON_GetArraySize(cat) < 1) {
            c.st = lmx_err(LMX_ERR_FORMAT, "%s: %s: expected a non-empty list of LoRAs", path, cat->string);
            goto done;
        }
        for (int i = 0; i < s->n_cats; i++)
            if (!strcmp(s->cats[i], cat->string)) {
                c.st = lmx_err(LMX_ERR_FORMAT, "%s: %s: category listed twice", path, cat->string);
                goto done;
            }
        s->cats[s->n_cats] = lmx_strdup(cat->string);
        if (!s->cats[s->n_cats]) {
            c.st = lmx_err(LMX_ERR_NOMEM, "%s: out of memory", path);
            goto done;
        }
        if (!strcmp(cat->string, "character")) s->character = s->n_cats;
        s->cat_first[s->n_cats] = total;
        s->cat_n[s->n_cats] = cJSON_GetArraySize(cat);
        total += s->cat_n[s->n_cats];
        s->n_cats++;
    }
    if (s->character < 0) {
        c.st =
            lmx_err(LMX_ERR_FORMAT, "%s: no \"character\" category (every set has one character LoRA)", path);
        goto done;
    }
    s->loras = lmx_calloc((size_t)total, sizeof *s->loras);
    if (!s->loras) {
        c.st = lmx_err(LMX_ERR_NOMEM, "%s: out of memory", path);
        goto done;
    }
    s->n_loras = total;
    static const char *const KNOWN[] = {"id", "name", "trigger", "url", NULL};
    int k = 0;
    for (const cJSON *cat = root->child; cat && c.st == LMX_OK; cat = cat->next) {
        int ci = 0;
        while (strcmp(s->cats[ci], cat->string))
            ci++;
        int idx = 0;
        for (const cJSON *e = cat->child; e && c.st == LMX_OK; e = e->next, idx++, k++) {
            char where[96];
            snprintf(where, sizeof where, "%.40s[%d]", cat->string, idx);
            tb_lora *l = &s->loras[k];
            l->cat = ci;
            l->category = category_of(cat->string);
            if (!cJSON_IsObject(e)) {
                c.st = lmx_err(LMX_ERR_FORMAT, "%s: %s: expected an object", path, where);
                break;
            }
            check_keys(&c, e, where, KNOWN);
            l->id = get_str(&c, e, where, "id", 0);
            l->name = get_str(&c, e, where, "name", 0);
            const cJSON *url = cJSON_GetObjectItemCaseSensitive(e, "url");
            if (url && c.st == LMX_OK) l->url = get_str(&c, e, where, "url", 1);
            const cJSON *tr = get(&c, e, where, "trigger");
            if (c.st != LMX_OK) break;
            size_t nc = strlen(cat->string);
            if (strncmp(l->id, cat->string, nc) || l->id[nc] != '_' || !l->id[nc + 1]) {
                c.st = lmx_err(LMX_ERR_FORMAT, "%s: %s.id: \"%s\" does not start with \"%s_\"", path, where,
                               l->id, cat->string);
                break;
            }
            for (const char *p = l->id; *p; p++)
                if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
                      *p == '_' || *p == '-' || *p == '.')) {
                    c.st = lmx_err(LMX_ERR_FORMAT,
                                   "%s: %s.id: \"%s\" has characters unfit for a file name (letters, "
                                   "digits, '_', '-', '.' only)",
                                   path, where, l->id);
                    break;
                }
            for (int q = 0; q < k && c.st == LMX_OK; q++)
                if (!strcmp(s->loras[q].id, l->id))
                    c.st = lmx_err(LMX_ERR_FORMAT, "%s: %s.id: \"%s\" is used twice", path, where, l->id);
            if (c.st != LMX_OK) break;
            if (!cJSON_IsArray(tr)) {
                c.st = lmx_err(LMX_ERR_FORMAT, "%s: %s.trigger: expected a list of strings", path, where);
                break;
            }
            int nt = cJSON_GetArraySize(tr);
            l->triggers = lmx_calloc((size_t)(nt ? nt : 1), sizeof *l->triggers);
            if (!l->triggers) {
                c.st = lmx_err(LMX_ERR_NOMEM, "%s: out of memory", path);
                break;
            }
            for (const cJSON *t = tr->child; t; t = t->next) {
                if (!cJSON_IsString(t) || !t->valuestring || !t->valuestring[0] ||
                    strpbrk(t->valuestring, "\t\n\r")) {
                    c.st = lmx_err(LMX_ERR_FORMAT, "%s: %s.trigger[%d]: expected a non-empty one-line string",
                                   path, where, l->n_triggers);
                    break;
                }
                if (!(l->triggers[l->n_triggers] = lmx_strdup(t->valuestring))) {
                    c.st = lmx_err(LMX_ERR_NOMEM, "%s: out of memory", path);
                    break;
                }
                l->n_triggers++;
            }
        }
    }
done:
    cJSON_Delete(root);
    return c.st;
}

/* ---- testbed.json ------------------------------------------------------------ */

static lmx_status load_subset(tb_subset *s, const cJSON *j, const char *file, const char *dir) {
    jctx c = {file, LMX_OK};
    char where[96];
    snprintf(where, sizeof where, "subsets.%.60s", j->string);
    if (!cJSON_IsObject(j)) return lmx_err(LMX_ERR_FORMAT, "%s: %s: expected an object", file, where);
    static const char *const KNOWN[] = {"lora_info",        "base_model",      "vae",          "width",
                                        "height",           "steps",           "cfg",          "scheduler",
                                        "timestep_spacing", "lora_scale",      "switch_steps", "tail_steps",
                                        "base_prompt",      "negative_prompt", "description",  NULL};
    check_keys(&c, j, where, KNOWN);
    for (const char *p = j->string; *p && c.st == LMX_OK; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_' || *p == '-'))
            c.st = lmx_err(LMX_ERR_FORMAT, "%s: %s: a subset name takes a-z, 0-9, '_' and '-' only", file,
                           where);
    if (c.st == LMX_OK && (!strcmp(j->string, "both") || !strcmp(j->string, "all")))
        c.st = lmx_err(LMX_ERR_FORMAT, "%s: %s: \"both\" and \"all\" are reserved words", file, where);
    s->name = lmx_strdup(j->string);
    char *info = get_str(&c, j, where, "lora_info", 0);
    s->base_model = get_str(&c, j, where, "base_model", 0);
    s->vae = get_str(&c, j, where, "vae", 1);
    s->width = (int)get_num(&c, j, where, "width", 8, 8192, 1);
    s->height = (int)get_num(&c, j, where, "height", 8, 8192, 1);
    s->steps = (int)get_num(&c, j, where, "steps", 1, 10000, 1);
    s->cfg = (float)get_num(&c, j, where, "cfg", 0, 100, 0);
    s->scheduler = get_str(&c, j, where, "scheduler", 0);
    s->timestep_spacing = get_str(&c, j, where, "timestep_spacing", 1);
    s->lora_scale = (float)get_num(&c, j, where, "lora_scale", -100, 100, 0);
    s->switch_steps = (int)get_num(&c, j, where, "switch_steps", 1, 10000, 1);
    s->tail_steps = (int)get_num(&c, j, where, "tail_steps", 0, 10000, 1);
    s->base_prompt = get_str(&c, j, where, "base_prompt", 0);
    s->negative_prompt = get_str(&c, j, where, "negative_prompt", 0);
    if (c.st == LMX_OK && (s->width % 8 || s->height % 8))
        c.st = lmx_err(LMX_ERR_FORMAT, "%s: %s: width and height must be multiples of 8", file, where);
    lmx_scheduler sk;
    if (c.st == LMX_OK && lmx_scheduler_parse(s->scheduler, &sk) != LMX_OK)
        c.st =
            lmx_err(LMX_ERR_FORMAT, "%s: %s.scheduler: unknown scheduler \"%s\"", file, where, s->scheduler);
    if (c.st == LMX_OK && s->timestep_spacing && strcmp(s->timestep_spacing, "linspace") &&
        strcmp(s->timestep_spacing, "leading") && strcmp(s->timestep_spacing, "trailing"))
        c.st = lmx_err(LMX_ERR_FORMAT,
                       "%s: %s.timestep_spacing: expected linspace, leading, trailing or null", file, where);
    if (c.st == LMX_OK && (strchr(info, '/') || !strcmp(info, "..")))
        c.st = lmx_err(LMX_ERR_FORMAT, "%s: %s.lora_info: a file name in the testbed folder, got \"%s\"",
                       file, where, info);
    if (c.st == LMX_OK) {
        s->lora_info = tb_path(dir, info, NULL);
        if (!s->lora_info || !s->name) c.st = lmx_err(LMX_ERR_NOMEM, "%s: out of memory", file);
    }
    if (c.st == LMX_OK) c.st = load_lora_info(s, s->lora_info);
    lmx_free(info);
    return c.st;
}

static lmx_status load_protocol(tb_protocol *p, const cJSON *j, const char *file) {
    jctx c = {file, LMX_OK};
    char where[96];
    snprintf(where, sizeof where, "protocols.%.60s", j->string);
    if (!cJSON_IsObject(j)) return lmx_err(LMX_ERR_FORMAT, "%s: %s: expected an object", file, where);
    static const char *const KNOWN[] = {"seeds", "stream", "description", NULL};
    check_keys(&c, j, where, KNOWN);
    p->name = lmx_strdup(j->string);
    if (cJSON_GetObjectItemCaseSensitive(j, "description"))
        p->description = get_str(&c, j, where, "description", 1);
    const cJSON *seeds = get(&c, j, where, "seeds");
    const cJSON *stream = get(&c, j, where, "stream");
    if (c.st != LMX_OK) return c.st;
    if (!cJSON_IsBool(stream))
        return lmx_err(LMX_ERR_FORMAT, "%s: %s.stream: expected true or false", file, where);
    p->stream = cJSON_IsTrue(stream);
    int n = cJSON_IsArray(seeds) ? cJSON_GetArraySize(seeds) : 0;
    if (n < 1 || n > 64)
        return lmx_err(LMX_ERR_FORMAT, "%s: %s.seeds: expected a list of 1 to 64 seeds", file, where);
    p->seeds = lmx_calloc((size_t)n, sizeof *p->seeds);
    if (!p->seeds || !p->name) return lmx_err(LMX_ERR_NOMEM, "%s: out of memory", file);
    for (const cJSON *e = seeds->child; e; e = e->next) {
        double x = cJSON_IsNumber(e) ? e->valuedouble : -1;
        if (!(x >= 0 && x <= 9007199254740992.0) || x != floor(x))
            return lmx_err(LMX_ERR_FORMAT, "%s: %s.seeds[%d]: expected a non-negative integer", file, where,
                           p->n_seeds);
        p->seeds[p->n_seeds++] = (uint64_t)x;
    }
    return LMX_OK;
}

lmx_status tb_load(tb_testbed **out, const char *dir) {
    *out = NULL;
    char found[4096];
    char *file = NULL;
    cJSON *root = NULL;
    lmx_status st;
    tb_testbed *tb = lmx_calloc(1, sizeof *tb);
    if (!tb) return lmx_err(LMX_ERR_NOMEM, "testbed: out of memory");
    if (dir) {
        tb->dir = lmx_strdup(dir);
    } else {
        st = lmx_data_find("testbed/testbed.json", found, sizeof found);
        if (st != LMX_OK) goto fail;
        char *slash = strrchr(found, '/');
        if (slash) *slash = 0;
        tb->dir = lmx_strdup(found);
    }
    file = tb->dir ? tb_path(tb->dir, "testbed.json", NULL) : NULL;
    if (!file) {
        st = lmx_err(LMX_ERR_NOMEM, "testbed: out of memory");
        goto fail;
    }
    st = parse_file(file, &root);
    if (st != LMX_OK) goto fail;
    jctx c = {file, LMX_OK};
    static const char *const KNOWN[] = {"format_version",   "name",     "description", "subsets", "protocols",
                                        "default_protocol", "n_values", NULL};
    check_keys(&c, root, "", KNOWN);
    int fv = (int)get_num(&c, root, "", "format_version", 1, 1000, 1);
    if (c.st == LMX_OK && fv != 1)
        c.st = lmx_err(LMX_ERR_UNSUPPORTED, "%s: format_version %d: this loramix reads version 1", file, fv);
    tb->name = get_str(&c, root, "", "name", 0);
    const cJSON *subsets = get(&c, root, "", "subsets");
    const cJSON *protocols = get(&c, root, "", "protocols");
    char *defp = get_str(&c, root, "", "default_protocol", 0);
    const cJSON *nv = get(&c, root, "", "n_values");
    if ((st = c.st) != LMX_OK) goto fail_p;
    int ns = cJSON_IsObject(subsets) ? cJSON_GetArraySize(subsets) : 0;
    int np = cJSON_IsObject(protocols) ? cJSON_GetArraySize(protocols) : 0;
    if (ns < 1 || ns > TB_MAX_SUBSETS) {
        st = lmx_err(LMX_ERR_FORMAT, "%s: subsets: expected an object with 1 to %d subsets", file,
                     TB_MAX_SUBSETS);
        goto fail_p;
    }
    if (np < 1) {
        st = lmx_err(LMX_ERR_FORMAT, "%s: protocols: expected an object with at least one protocol", file);
        goto fail_p;
    }
    tb->subsets = lmx_calloc((size_t)ns, sizeof *tb->subsets);
    tb->protocols = lmx_calloc((size_t)np, sizeof *tb->protocols);
    if (!tb->subsets || !tb->protocols) {
        st = lmx_err(LMX_ERR_NOMEM, "%s: out of memory", file);
        goto fail_p;
    }
    for (const cJSON *e = subsets->child; e; e = e->next) {
        st = load_subset(&tb->subsets[tb->n_subsets++], e, file, tb->dir);
        if (st != LMX_OK) goto fail_p;
    }
    for (const cJSON *e = protocols->child; e; e = e->next) {
        st = load_protocol(&tb->protocols[tb->n_protocols++], e, file);
        if (st != LMX_OK) goto fail_p;
    }
    tb->default_protocol = tb_protocol_find(tb, defp);
    if (tb->default_protocol < 0) {
        st = lmx_err(LMX_ERR_FORMAT, "%s: default_protocol: \"%s\" is not in protocols", file, defp);
        goto fail_p;
    }
    int nn = cJSON_IsArray(nv) ? cJSON_GetArraySize(nv) : 0;
    if (nn < 1 || nn > 8) {
        st = lmx_err(LMX_ERR_FORMAT, "%s: n_values: expected a list of 1 to 8 integers", file);
        goto fail_p;
    }
    for (const cJSON *e = nv->child; e; e = e->next) {
        double x = cJSON_IsNumber(e) ? e->valuedouble : 0;
        int prev = tb->n_n_values ? tb->n_values[tb->n_n_values - 1] : 1;
        if (x != floor(x) || x <= prev || x > TB_MAX_CATS) {
            st = lmx_err(LMX_ERR_FORMAT, "%s: n_values: expected ascending integers in [2, %d]", file,
                         TB_MAX_CATS);
            goto fail_p;
        }
        tb->n_values[tb->n_n_values++] = (int)x;
    }
    for (int s = 0; s < tb->n_subsets; s++)
        if (tb->n_values[tb->n_n_values - 1] > tb->subsets[s].n_cats) {
            st = lmx_err(LMX_ERR_FORMAT, "%s: n_values: N = %d needs %d categories, subset %s has %d", file,
                         tb->n_values[tb->n_n_values - 1], tb->n_values[tb->n_n_values - 1],
                         tb->subsets[s].name, tb->subsets[s].n_cats);
            goto fail_p;
        }
    lmx_free(defp);
    cJSON_Delete(root);
    lmx_free(file);
    *out = tb;
    return LMX_OK;
fail_p:
    lmx_free(defp);
fail:
    cJSON_Delete(root);
    lmx_free(file);
    tb_free(tb);
    return st;
}

void tb_free(tb_testbed *tb) {
    if (!tb) return;
    for (int s = 0; s < tb->n_subsets; s++) {
        tb_subset *ss = &tb->subsets[s];
        for (int i = 0; i < ss->n_loras; i++) {
            tb_lora *l = &ss->loras[i];
            lmx_free(l->id);
            lmx_free(l->name);
            lmx_free(l->url);
            for (int t = 0; t < l->n_triggers; t++)
                lmx_free(l->triggers[t]);
            lmx_free(l->triggers);
        }
        lmx_free(ss->loras);
        for (int c = 0; c < ss->n_cats; c++)
            lmx_free(ss->cats[c]);
        lmx_free(ss->name);
        lmx_free(ss->lora_info);
        lmx_free(ss->base_model);
        lmx_free(ss->vae);
        lmx_free(ss->scheduler);
        lmx_free(ss->timestep_spacing);
        lmx_free(ss->base_prompt);
        lmx_free(ss->negative_prompt);
    }
    lmx_free(tb->subsets);
    for (int p = 0; p < tb->n_protocols; p++) {
        lmx_free(tb->protocols[p].name);
        lmx_free(tb->protocols[p].description);
        lmx_free(tb->protocols[p].seeds);
    }
    lmx_free(tb->protocols);
    lmx_free(tb->name);
    lmx_free(tb->dir);
    lmx_free(tb);
}

int tb_subset_find(const tb_testbed *tb, const char *name) {
    for (int i = 0; name && i < tb->n_subsets; i++)
        if (!strcmp(tb->subsets[i].name, name)) return i;
    return -1;
}

int tb_protocol_find(const tb_testbed *tb, const char *name) {
    for (int i = 0; name && i < tb->n_protocols; i++)
        if (!strcmp(tb->protocols[i].name, name)) return i;
    return -1;
}

int tb_lora_find(const tb_subset *s, const char *id) {
    for (int i = 0; id && i < s->n_loras; i++)
        if (!strcmp(s->loras[i].id, id)) return i;
    return -1;
}
