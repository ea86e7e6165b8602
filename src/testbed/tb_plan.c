/*
 * tb_plan.c - the testbed's plan: which jobs exist, in which order, under
 * which names (testbed.h has the rules). The set enumeration mirrors the
 * reference utils.generate_combinations (docs/testbed.md §5):
 *
 *     others = categories without "character", in file order
 *     for types in itertools.combinations(others, N-1):     # lexicographic
 *         cur = ["character"] + types
 *         for combo in itertools.product(*[info[c] for c in cur]):  # last fastest
 *             yield combo
 *
 * and the prompt its utils.get_prompt (§4):
 *     base + ", " + ", ".join(t for lora in combo for t in lora.trigger)
 * reference/gen_testbed.py dumps the same enumeration as the golden list
 * tests/fixtures/testbed/sets.tsv that the tests compare against.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <string.h>

#include "io/io_util.h"
#include "testbed/testbed.h"

#define TB_MAX_SEED 9007199254740992ull /* 2^53: seeds survive a JSON round trip */

/* ---- selection ---------------------------------------------------------------- */

void tb_selection_default(const tb_testbed *tb, tb_selection *sel) {
    memset(sel, 0, sizeof *sel);
    for (int i = 0; i < tb->n_subsets && i < TB_MAX_SUBSETS; i++)
        sel->subsets[sel->n_subsets++] = i;
    for (int m = 0; m < LMX_METHOD_COUNT; m++)
        sel->methods[sel->n_methods++] = (lmx_method)m;
    sel->protocol = tb->default_protocol;
    const tb_protocol *p = &tb->protocols[sel->protocol];
    for (int i = 0; i < p->n_seeds; i++)
        sel->seeds[sel->n_seeds++] = p->seeds[i];
    for (int i = 0; i < tb->n_n_values; i++)
        sel->n_mask |= 1u << tb->n_values[i];
}

/* Split a comma-separated list into trimmed items: calls fn(item, user) for
 * each; an empty item is an error naming the flag. */
static lmx_status each_item(const char *flag, const char *s, lmx_status (*fn)(const char *, void *),
                            void *user) {
    if (!s || !*s) return lmx_err(LMX_ERR_ARG, "%s: expected a comma-separated list, got nothing", flag);
    const char *p = s;
    for (;;) {
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        while (n && (*p == ' ' || *p == '\t'))
            p++, n--;
        while (n && (p[n - 1] == ' ' || p[n - 1] == '\t'))
            n--;
        char item[128];
        if (n == 0) return lmx_err(LMX_ERR_ARG, "%s: empty item in '%s'", flag, s);
        if (n >= sizeof item) return lmx_err(LMX_ERR_ARG, "%s: item too long in '%s'", flag, s);
        memcpy(item, p, n);
        item[n] = 0;
        lmx_status st = fn(item, user);
        if (st != LMX_OK) return st;
        if (!e) return LMX_OK;
        p = e + 1;
    }
}

typedef struct sel_ctx {
    const tb_testbed *tb;
    tb_selection *sel;
} sel_ctx;

static lmx_status add_subset(const char *item, void *user) {
    sel_ctx *c = user;
    tb_selection *sel = c->sel;
    if (!strcmp(item, "both") || !strcmp(item, "all")) {
        for (int i = 0; i < c->tb->n_subsets; i++) {
            int dup = 0;
            for (int k = 0; k < sel->n_subsets; k++)
                dup |= sel->subsets[k] == i;
            if (!dup) sel->subsets[sel->n_subsets++] = i;
        }
        return LMX_OK;
    }
    int i = tb_subset_find(c->tb, item);
    if (i < 0) {
        char names[256] = "";
        for (int k = 0; k < c->tb->n_subsets; k++)
            snprintf(names + strlen(names), sizeof names - strlen(names), "%s, ", c->tb->subsets[k].name);
        return lmx_err(LMX_ERR_ARG, "--subset: unknown subset '%s' (%sboth)", item, names);
    }
    for (int k = 0; k < sel->n_subsets; k++)
        if (sel->subsets[k] == i) return lmx_err(LMX_ERR_ARG, "--subset: '%s' given twice", item);
    sel->subsets[sel->n_subsets++] = i;
    return LMX_OK;
}

lmx_status tb_selection_subsets(const tb_testbed *tb, tb_selection *sel, const char *s) {
    sel_ctx c = {tb, sel};
    sel->n_subsets = 0;
    return each_item("--subset", s, add_subset, &c);
}

static lmx_status add_method(const char *item, void *user) {
    tb_selection *sel = user;
    if (!strcmp(item, "all")) {
        for (int m = 0; m < LMX_METHOD_COUNT; m++) {
            int dup = 0;
            for (int k = 0; k < sel->n_methods; k++)
                dup |= sel->methods[k] == (lmx_method)m;
            if (!dup) sel->methods[sel->n_methods++] = (lmx_method)m;
        }
        return LMX_OK;
    }
    lmx_method m;
    if (lmx_method_parse(item, &m) != LMX_OK)
        return lmx_err(LMX_ERR_ARG,
                       "--methods: unknown method '%s' (merge, switch, composite, w-switch, "
                       "w-composite, all)",
                       item);
    for (int k = 0; k < sel->n_methods; k++)
        if (sel->methods[k] == m) return lmx_err(LMX_ERR_ARG, "--methods: '%s' given twice", item);
    sel->methods[sel->n_methods++] = m;
    return LMX_OK;
}

lmx_status tb_selection_methods(tb_selection *sel, const char *s) {
    sel->n_methods = 0;
    return each_item("--methods", s, add_method, sel);
}

static lmx_status add_seed(const char *item, void *user) {
    tb_selection *sel = user;
    char *end = NULL;
    errno = 0;
    unsigned long long x = strtoull(item, &end, 10);
    if (item[0] < '0' || item[0] > '9' || errno || *end || x > TB_MAX_SEED)
        return lmx_err(LMX_ERR_ARG, "--seeds: expected integers in [0, 2^53], got '%s'", item);
    for (int k = 0; k < sel->n_seeds; k++)
        if (sel->seeds[k] == x) return lmx_err(LMX_ERR_ARG, "--seeds: %llu given twice", x);
    if (sel->n_seeds == (int)LMX_ARRAY_LEN(sel->seeds))
        return lmx_err(LMX_ERR_ARG, "--seeds: at most %d seeds", (int)LMX_ARRAY_LEN(sel->seeds));
    sel->seeds[sel->n_seeds++] = (uint64_t)x;
    return LMX_OK;
}

lmx_status tb_selection_seeds(tb_selection *sel, const char *s) {
    sel->n_seeds = 0;
    return each_item("--seeds", s, add_seed, sel);
}

static lmx_status add_n(const char *item, void *user) {
    sel_ctx *c = user;
    char *end = NULL;
    long x = strtol(item, &end, 10);
    int ok = !*end && end != item;
    for (int i = 0; ok && i < c->tb->n_n_values; i++)
        if (c->tb->n_values[i] == x) {
            c->sel->n_mask |= 1u << x;
            return LMX_OK;
        }
    return lmx_err(LMX_ERR_ARG, "--n: expected values among %d..%d, got '%s'", c->tb->n_values[0],
                   c->tb->n_values[c->tb->n_n_values - 1], item);
}

lmx_status tb_selection_n(const tb_testbed *tb, tb_selection *sel, const char *s) {
    sel_ctx c = {tb, sel};
    sel->n_mask = 0;
    return each_item("--n", s, add_n, &c);
}

lmx_status tb_selection_set_protocol(const tb_testbed *tb, tb_selection *sel, const char *name) {
    int p = tb_protocol_find(tb, name);
    if (p < 0) {
        char names[256] = "";
        for (int k = 0; k < tb->n_protocols; k++)
            snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s", k ? ", " : "",
                     tb->protocols[k].name);
        return lmx_err(LMX_ERR_ARG, "--protocol: unknown protocol '%s' (%s)", name, names);
    }
    sel->protocol = p;
    sel->n_seeds = 0;
    for (int i = 0; i < tb->protocols[p].n_seeds && i < (int)LMX_ARRAY_LEN(sel->seeds); i++)
        sel->seeds[sel->n_seeds++] = tb->protocols[p].seeds[i];
    return LMX_OK;
}

static cJSON *add_raw_u64(cJSON *obj, const char *key, uint64_t v) {
    char buf[32];
    snprintf(buf, sizeof buf, "%llu", (unsigned long long)v);
    return obj ? cJSON_AddRawToObject(obj, key, buf) : cJSON_CreateRaw(buf);
}

cJSON *tb_selection_json(const tb_testbed *tb, const tb_selection *sel) {
    io_cjson_init();
    cJSON *j = cJSON_CreateObject();
    cJSON *a = cJSON_AddArrayToObject(j, "subsets");
    for (int i = 0; i < sel->n_subsets; i++)
        cJSON_AddItemToArray(a, cJSON_CreateString(tb->subsets[sel->subsets[i]].name));
    a = cJSON_AddArrayToObject(j, "methods");
    for (int i = 0; i < sel->n_methods; i++)
        cJSON_AddItemToArray(a, cJSON_CreateString(lmx_method_name(sel->methods[i])));
    cJSON_AddStringToObject(j, "protocol", tb->protocols[sel->protocol].name);
    a = cJSON_AddArrayToObject(j, "seeds");
    for (int i = 0; i < sel->n_seeds; i++)
        cJSON_AddItemToArray(a, add_raw_u64(NULL, NULL, sel->seeds[i]));
    a = cJSON_AddArrayToObject(j, "n");
    for (int n = 0; n < 32; n++)
        if (sel->n_mask & (1u << n)) cJSON_AddItemToArray(a, cJSON_CreateNumber(n));
    cJSON_AddNumberToObject(j, "limit", (double)sel->limit);
    return j;
}

lmx_status tb_selection_from_json(const tb_testbed *tb, const cJSON *j, tb_selection *sel) {
    tb_selection_default(tb, sel);
    const cJSON *subsets = cJSON_GetObjectItemCaseSensitive(j, "subsets");
    const cJSON *methods = cJSON_GetObjectItemCaseSensitive(j, "methods");
    const cJSON *protocol = cJSON_GetObjectItemCaseSensitive(j, "protocol");
    const cJSON *seeds = cJSON_GetObjectItemCaseSensitive(j, "seeds");
    const cJSON *ns = cJSON_GetObjectItemCaseSensitive(j, "n");
    const cJSON *limit = cJSON_GetObjectItemCaseSensitive(j, "limit");
    if (!cJSON_IsArray(subsets) || !cJSON_IsArray(methods) || !cJSON_IsString(protocol) ||
        !cJSON_IsArray(seeds) || !cJSON_IsArray(ns) || !cJSON_IsNumber(limit))
        return lmx_err(LMX_ERR_FORMAT, "selection: expected subsets, methods, protocol, seeds, n and limit");
    lmx_status st = tb_selection_set_protocol(tb, sel, protocol->valuestring);
    sel_ctx c = {tb, sel};
    sel->n_subsets = sel->n_methods = sel->n_seeds = 0;
    sel->n_mask = 0;
    for (const cJSON *e = subsets->child; e && st == LMX_OK; e = e->next)
        st = cJSON_IsString(e) ? add_subset(e->valuestring, &c)
                               : lmx_err(LMX_ERR_FORMAT, "selection: subsets");
    for (const cJSON *e = methods->child; e && st == LMX_OK; e = e->next)
        st = cJSON_IsString(e) ? add_method(e->valuestring, sel)
                               : lmx_err(LMX_ERR_FORMAT, "selection: methods");
    for (const cJSON *e = seeds->child; e && st == LMX_OK; e = e->next) {
        char buf[32];
        if (!cJSON_IsNumber(e) || e->valuedouble < 0 || e->valuedouble > (double)TB_MAX_SEED)
            return lmx_err(LMX_ERR_FORMAT, "selection: seeds");
        snprintf(buf, sizeof buf, "%.0f", e->valuedouble);
        st = add_seed(buf, sel);
    }
    for (const cJSON *e = ns->child; e && st == LMX_OK; e = e->next) {
        char buf[32];
        snprintf(buf, sizeof buf, "%g", cJSON_IsNumber(e) ? e->valuedouble : -1.0);
        st = add_n(buf, &c);
    }
    if (st == LMX_OK && (limit->valuedouble < 0 || limit->valuedouble != floor(limit->valuedouble)))
        st = lmx_err(LMX_ERR_FORMAT, "selection: limit");
    sel->limit = (int64_t)limit->valuedouble;
    if (st == LMX_OK && (!sel->n_subsets || !sel->n_methods || !sel->n_seeds || !sel->n_mask))
        st = lmx_err(LMX_ERR_FORMAT, "selection: an empty list");
    return st;
}

lmx_status tb_shard_parse(const char *s, int *k, int *n) {
    char *end = NULL;
    errno = 0;
    /* digits only: strtol would also take " 3", "+3" and "-0" */
    if (*s < '0' || *s > '9') goto bad;
    long a = strtol(s, &end, 10);
    if (end == s || *end != '/') goto bad;
    const char *b = end + 1;
    if (*b < '0' || *b > '9') goto bad;
    long c = strtol(b, &end, 10);
    if (end == b || *end || errno || c < 1 || c > 1000000 || a < 1 || a > c) goto bad;
    *k = (int)a;
    *n = (int)c;
    return LMX_OK;
bad:
    return lmx_err(LMX_ERR_ARG, "--shard: expected K/N with 1 <= K <= N (e.g. 3/8), got '%s'", s);
}

const char *tb_method_dir(lmx_method m) {
    return lmx_method_name(m);
}

/* ---- enumeration -------------------------------------------------------------- */

lmx_status tb_enumerate(const tb_testbed *tb, int subset, int n, tb_set *sets, int cap, int *n_out) {
    *n_out = 0;
    if (subset < 0 || subset >= tb->n_subsets) return lmx_err(LMX_ERR_ARG, "testbed: no subset %d", subset);
    const tb_subset *s = &tb->subsets[subset];
    int others[TB_MAX_CATS], no = 0;
    for (int c = 0; c < s->n_cats; c++)
        if (c != s->character) others[no++] = c;
    const int r = n - 1;
    if (r < 0 || r > no)
        return lmx_err(LMX_ERR_ARG, "testbed: N = %d is not possible with the %d categories of %s", n,
                       s->n_cats, s->name);
    int comb[TB_MAX_CATS];
    for (int i = 0; i < r; i++)
        comb[i] = i;
    int count = 0;
    for (;;) {
        int cur[TB_MAX_CATS], pos[TB_MAX_CATS];
        cur[0] = s->character;
        for (int i = 0; i < r; i++)
            cur[i + 1] = others[comb[i]];
        memset(pos, 0, sizeof pos);
        for (;;) {
            if (count < cap) {
                tb_set *t = &sets[count];
                memset(t, 0, sizeof *t);
                t->subset = subset;
                t->n = n;
                t->index = count + 1;
                for (int i = 0; i < n; i++)
                    t->lora[i] = s->cat_first[cur[i]] + pos[i];
            }
            count++;
            int i = n - 1; /* product(): the last category varies fastest */
            while (i >= 0 && ++pos[i] == s->cat_n[cur[i]])
                pos[i--] = 0;
            if (i < 0) break;
        }
        int i = r - 1; /* next combination in lexicographic order */
        while (i >= 0 && comb[i] == no - r + i)
            i--;
        if (i < 0) break;
        comb[i]++;
        for (int k = i + 1; k < r; k++)
            comb[k] = comb[k - 1] + 1;
    }
    *n_out = count;
    return LMX_OK;
}

/* Prompt and slug of a set (docs/testbed.md §4, §6). */
static lmx_status set_strings(const tb_testbed *tb, tb_set *t) {
    const tb_subset *s = &tb->subsets[t->subset];
    size_t np = strlen(s->base_prompt) + 1, ns = 1;
    for (int i = 0; i < t->n; i++) {
        const tb_lora *l = &s->loras[t->lora[i]];
        ns += strlen(l->id) + 1;
        for (int k = 0; k < l->n_triggers; k++)
            np += strlen(l->triggers[k]) + 2;
    }
    np += 2;
    t->prompt = lmx_malloc(np);
    t->slug = lmx_malloc(ns);
    if (!t->prompt || !t->slug) return lmx_err(LMX_ERR_NOMEM, "testbed: out of memory");
    char *p = t->prompt;
    p += sprintf(p, "%s, ", s->base_prompt);
    int first = 1;
    for (int i = 0; i < t->n; i++) {
        const tb_lora *l = &s->loras[t->lora[i]];
        for (int k = 0; k < l->n_triggers; k++) {
            p += sprintf(p, "%s%s", first ? "" : ", ", l->triggers[k]);
            first = 0;
        }
    }
    char *q = t->slug;
    for (int i = 0; i < t->n; i++)
        q += sprintf(q, "%s%s", i ? "_" : "", s->loras[t->lora[i]].id);
    return LMX_OK;
}

void tb_plan_free(tb_plan *p) {
    if (!p) return;
    for (int i = 0; i < p->n_sets; i++) {
        lmx_free(p->sets[i].prompt);
        lmx_free(p->sets[i].slug);
    }
    for (int64_t i = 0; i < p->n_jobs; i++)
        lmx_free(p->jobs[i].id);
    lmx_free(p->sets);
    lmx_free(p->jobs);
    lmx_free(p);
}

lmx_status tb_plan_build(tb_plan **out, const tb_testbed *tb, const tb_selection *sel) {
    *out = NULL;
    lmx_status st = LMX_OK;
    if (!sel->n_subsets || !sel->n_methods || !sel->n_seeds || !sel->n_mask)
        return lmx_err(LMX_ERR_ARG, "testbed: empty selection (a subset, method, seed and N are needed)");
    if (sel->protocol < 0 || sel->protocol >= tb->n_protocols)
        return lmx_err(LMX_ERR_ARG, "testbed: bad protocol");
    tb_plan *p = lmx_calloc(1, sizeof *p);
    if (!p) return lmx_err(LMX_ERR_NOMEM, "testbed: out of memory");
    p->tb = tb;
    p->sel = *sel;
    /* Count, then fill the sets. */
    int total = 0;
    for (int si = 0; si < sel->n_subsets; si++)
        for (int v = 0; v < tb->n_n_values; v++) {
            int n = tb->n_values[v], cnt = 0;
            if (!(sel->n_mask & (1u << n))) continue;
            if ((st = tb_enumerate(tb, sel->subsets[si], n, NULL, 0, &cnt)) != LMX_OK) goto fail;
            total += cnt;
        }
    p->sets = lmx_calloc((size_t)(total ? total : 1), sizeof *p->sets);
    if (!p->sets) {
        st = lmx_err(LMX_ERR_NOMEM, "testbed: out of memory");
        goto fail;
    }
    for (int si = 0; si < sel->n_subsets; si++)
        for (int v = 0; v < tb->n_n_values; v++) {
            int n = tb->n_values[v], cnt = 0;
            if (!(sel->n_mask & (1u << n))) continue;
            if ((st = tb_enumerate(tb, sel->subsets[si], n, p->sets + p->n_sets, total - p->n_sets, &cnt)) !=
                LMX_OK)
                goto fail;
            for (int k = 0; k < cnt; k++, p->n_sets++)
                if ((st = set_strings(tb, &p->sets[p->n_sets])) != LMX_OK) {
                    p->n_sets++;
                    goto fail;
                }
        }
    int64_t n_jobs = (int64_t)p->n_sets * sel->n_methods * sel->n_seeds;
    if (sel->limit > 0 && sel->limit < n_jobs) n_jobs = sel->limit;
    p->jobs = lmx_calloc((size_t)(n_jobs ? n_jobs : 1), sizeof *p->jobs);
    if (!p->jobs) {
        st = lmx_err(LMX_ERR_NOMEM, "testbed: out of memory");
        goto fail;
    }
    const int stream = tb->protocols[sel->protocol].stream;
    for (int s = 0; s < p->n_sets && p->n_jobs < n_jobs; s++) {
        const tb_set *t = &p->sets[s];
        for (int m = 0; m < sel->n_methods && p->n_jobs < n_jobs; m++)
            for (int k = 0; k < sel->n_seeds && p->n_jobs < n_jobs; k++) {
                tb_job *j = &p->jobs[p->n_jobs];
                j->index = p->n_jobs;
                j->set = s;
                j->method = sel->methods[m];
                j->seed = sel->seeds[k];
                j->j = k + 1;
                j->noise_skip = stream ? (uint64_t)(t->index - 1) : 0;
                j->id = tb_strdup_printf("%s/%s_%d/%s_%d_seed%llu", tb->subsets[t->subset].name,
                                         tb_method_dir(j->method), t->n, t->slug, j->j,
                                         (unsigned long long)j->seed);
                if (!j->id) {
                    st = lmx_err(LMX_ERR_NOMEM, "testbed: out of memory");
                    goto fail;
                }
                p->n_jobs++;
            }
    }
    *out = p;
    return LMX_OK;
fail:
    tb_plan_free(p);
    return st;
}

/* ---- output --------------------------------------------------------------------- */

/* The fields a job line and a set line share: subset, n, set, loras. */
static void add_set_fields(cJSON *j, const tb_subset *s, const tb_set *t) {
    cJSON_AddStringToObject(j, "subset", s->name);
    cJSON_AddNumberToObject(j, "n", t->n);
    cJSON_AddNumberToObject(j, "set", t->index);
    cJSON *a = cJSON_AddArrayToObject(j, "loras");
    for (int i = 0; i < t->n; i++)
        cJSON_AddItemToArray(a, cJSON_CreateString(s->loras[t->lora[i]].id));
}

cJSON *tb_job_json(const tb_plan *p, const tb_job *job, const char *out_dir) {
    io_cjson_init();
    const tb_set *t = &p->sets[job->set];
    const tb_subset *s = &p->tb->subsets[t->subset];
    cJSON *j = cJSON_CreateObject();
    if (!j) return NULL;
    cJSON_AddNumberToObject(j, "index", (double)job->index);
    cJSON_AddStringToObject(j, "id", job->id);
    add_set_fields(j, s, t);
    cJSON_AddStringToObject(j, "method", lmx_method_name(job->method));
    add_raw_u64(j, "seed", job->seed);
    cJSON_AddNumberToObject(j, "j", job->j);
    cJSON_AddStringToObject(j, "protocol", p->tb->protocols[p->sel.protocol].name);
    add_raw_u64(j, "noise_skip", job->noise_skip);
    cJSON_AddStringToObject(j, "prompt", t->prompt);
    cJSON_AddStringToObject(j, "negative_prompt", s->negative_prompt);
    if (out_dir) {
        char *png = tb_path(out_dir, job->id, ".png");
        if (png) cJSON_AddStringToObject(j, "output", png);
        lmx_free(png);
    }
    return j;
}

cJSON *tb_set_json(const tb_plan *p, int set, int64_t n_jobs) {
    io_cjson_init();
    const tb_set *t = &p->sets[set];
    const tb_subset *s = &p->tb->subsets[t->subset];
    cJSON *j = cJSON_CreateObject();
    if (!j) return NULL;
    add_set_fields(j, s, t);
    cJSON_AddStringToObject(j, "slug", t->slug);
    cJSON_AddNumberToObject(j, "jobs", (double)n_jobs);
    cJSON_AddStringToObject(j, "prompt", t->prompt);
    return j;
}

void tb_plan_summary(const tb_plan *p, int shard_k, int shard_n, FILE *f) {
    const tb_testbed *tb = p->tb;
    const tb_selection *sel = &p->sel;
    fprintf(f, "testbed %s: %d subset%s, %d method%s (", tb->name, sel->n_subsets,
            sel->n_subsets == 1 ? "" : "s", sel->n_methods, sel->n_methods == 1 ? "" : "s");
    for (int m = 0; m < sel->n_methods; m++)
        fprintf(f, "%s%s", m ? ", " : "", lmx_method_name(sel->methods[m]));
    fprintf(f, "), %d seed%s (", sel->n_seeds, sel->n_seeds == 1 ? "" : "s");
    for (int k = 0; k < sel->n_seeds; k++)
        fprintf(f, "%s%llu", k ? ", " : "", (unsigned long long)sel->seeds[k]);
    fprintf(f, "), protocol %s\n", tb->protocols[sel->protocol].name);
    fprintf(f, "%-10s", "sets");
    for (int v = 0; v < tb->n_n_values; v++)
        if (sel->n_mask & (1u << tb->n_values[v])) fprintf(f, " %6s%d", "N=", tb->n_values[v]);
    fprintf(f, " %7s %7s\n", "all", "jobs");
    int grand[8] = {0}, grand_all = 0;
    int64_t grand_jobs = 0;
    const int per_set = sel->n_methods * sel->n_seeds;
    for (int si = 0; si < sel->n_subsets; si++) {
        fprintf(f, "%-10s", tb->subsets[sel->subsets[si]].name);
        int all = 0;
        for (int v = 0; v < tb->n_n_values; v++) {
            int n = tb->n_values[v], cnt = 0;
            if (!(sel->n_mask & (1u << n))) continue;
            for (int s = 0; s < p->n_sets; s++)
                cnt += p->sets[s].subset == sel->subsets[si] && p->sets[s].n == n;
            fprintf(f, " %7d", cnt);
            grand[v] += cnt;
            all += cnt;
        }
        fprintf(f, " %7d %7lld\n", all, (long long)all * per_set);
        grand_all += all;
        grand_jobs += (int64_t)all * per_set;
    }
    if (sel->n_subsets > 1) {
        fprintf(f, "%-10s", "total");
        for (int v = 0; v < tb->n_n_values; v++)
            if (sel->n_mask & (1u << tb->n_values[v])) fprintf(f, " %7d", grand[v]);
        fprintf(f, " %7d %7lld\n", grand_all, (long long)grand_jobs);
    }
    if (p->n_jobs < grand_jobs)
        fprintf(f, "--limit %lld: the first %lld jobs\n", (long long)sel->limit, (long long)p->n_jobs);
    if (shard_n > 1) {
        int64_t mine = 0;
        for (int64_t i = 0; i < p->n_jobs; i++)
            mine += tb_in_shard(i, shard_k, shard_n);
        fprintf(f, "shard %d/%d: %lld jobs (index mod %d == %d)\n", shard_k, shard_n, (long long)mine,
                shard_n, shard_k - 1);
    }
}
