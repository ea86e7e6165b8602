/* lora_args.c - see lora_args.h. */
#include "lora_args.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"

int cli_parse_category(const char *s, lmx_lora_category *out) {
    for (int c = 0; c < LMX_CAT_COUNT; c++)
        if (!strcmp(s, lmx_lora_category_name((lmx_lora_category)c))) {
            *out = (lmx_lora_category)c;
            return 1;
        }
    return 0;
}

static int parse_float(const char *opt, const char *v, float *out) {
    char *end = NULL;
    errno = 0;
    double x = strtod(v, &end);
    if (errno || !*v || *end || !isfinite(x) || fabs(x) > 100) {
        cli_error("%s: expected a number in [-100, 100], got '%s'", opt, v);
        return 0;
    }
    *out = (float)x;
    return 1;
}

static char *trim_dup(const char *s, size_t n) {
    while (n && (*s == ' ' || *s == '\t')) s++, n--;
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t')) n--;
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = 0;
    }
    return d;
}

static int push_trigger(cli_lora *l, char *one) {
    if (!*one) {
        free(one);
        return 1;
    }
    char **v = realloc(l->trig, sizeof(char *) * (size_t)(l->n_trig + 1));
    if (!v) {
        free(one);
        return 0;
    }
    l->trig = v;
    l->trig[l->n_trig++] = one;
    return 1;
}

/* "a, b" gives two triggers. A field that starts with a double quote runs to
 * the closing quote and may hold commas ("\"a, b\", c" gives "a, b" and "c");
 * "" inside it is one literal quote, as in CSV. A quote elsewhere in a field
 * is an ordinary character. Returns 1, 0 (out of memory) or -1 (bad quoting,
 * reported). */
static int add_trigger(cli_lora *l, const char *t) {
    const char *p = t;
    for (;;) {
        while (*p == ' ' || *p == '\t') p++;
        if (*p == '"') {
            size_t cap = strlen(p) + 1, n = 0;
            char *one = malloc(cap);
            if (!one) return 0;
            const char *q = p + 1;
            for (;;) {
                if (!*q) {
                    free(one);
                    cli_error("--trigger: unterminated quote in '%s'", t);
                    return -1;
                }
                if (*q == '"' && q[1] == '"') {
                    one[n++] = '"';
                    q += 2;
                } else if (*q == '"') {
                    q++;
                    break;
                } else {
                    one[n++] = *q++;
                }
            }
            one[n] = 0;
            while (*q == ' ' || *q == '\t') q++;
            if (*q && *q != ',') {
                free(one);
                cli_error("--trigger: text after the closing quote in '%s' (a quoted phrase must "
                          "be followed by a comma or the end)",
                          t);
                return -1;
            }
            if (!push_trigger(l, one)) return 0;
            if (!*q) return 1;
            p = q + 1;
            continue;
        }
        const char *c = strchr(p, ',');
        size_t n = c ? (size_t)(c - p) : strlen(p);
        char *one = trim_dup(p, n);
        if (!one || !push_trigger(l, one)) return 0;
        if (!c) return 1;
        p = c + 1;
    }
}

/* The option at argv[i]: its name length matched against `name`, value
 * inline (--x=v) or next. Returns the value or NULL (not this option). */
static const char *opt_val(int argc, char **argv, int *i, const char *name, int *bad) {
    size_t n = strlen(name);
    const char *a = argv[*i];
    if (strncmp(a, name, n) || (a[n] && a[n] != '=')) return NULL;
    if (a[n] == '=') return a + n + 1;
    if (*i + 1 >= argc) {
        cli_error("%s needs a value", name);
        *bad = 1;
        return NULL;
    }
    return argv[++*i];
}

static int orphan(const char *opt) {
    cli_error("%s must follow the --lora it describes", opt);
    return CLI_USAGE;
}

int cli_loras_take(int *argc, char **argv, cli_loras *out) {
    memset(out, 0, sizeof *out);
    int n = *argc, w = 1, bad = 0;
    for (int i = 1; i < n && !bad; i++) {
        const char *v;
        cli_lora *cur = out->n ? &out->v[out->n - 1] : NULL;
        if ((v = opt_val(n, argv, &i, "--lora", &bad))) {
            cli_lora *nv = realloc(out->v, sizeof *nv * (size_t)(out->n + 1));
            if (!nv) return CLI_FAIL;
            out->v = nv;
            cli_lora *l = &out->v[out->n++];
            memset(l, 0, sizeof *l);
            l->scale = 1.0f;
            l->te_scale = 1.0f;
            /* FILE:SCALE, where SCALE is a number after the last ':'. */
            const char *colon = strrchr(v, ':');
            char *end = NULL;
            if (colon && colon[1] && (strtod(colon + 1, &end), end && !*end)) {
                if (!parse_float("--lora", colon + 1, &l->scale)) return CLI_USAGE;
                l->te_scale = l->scale;
                l->file = trim_dup(v, (size_t)(colon - v));
            } else {
                l->file = strdup(v);
            }
            if (!l->file) return CLI_FAIL;
        } else if ((v = opt_val(n, argv, &i, "--trigger", &bad))) {
            if (!cur) return orphan("--trigger");
            int r = add_trigger(cur, v);
            if (r <= 0) return r < 0 ? CLI_USAGE : CLI_FAIL;
        } else if ((v = opt_val(n, argv, &i, "--category", &bad))) {
            if (!cur) return orphan("--category");
            if (!cli_parse_category(v, &cur->cat)) {
                cli_error("--category: expected character, clothing, style, background, object or other, got '%s'", v);
                return CLI_USAGE;
            }
            cur->cat_set = 1;
        } else if ((v = opt_val(n, argv, &i, "--name", &bad))) {
            if (!cur) return orphan("--name");
            free(cur->name);
            if (!(cur->name = strdup(v))) return CLI_FAIL;
        } else if ((v = opt_val(n, argv, &i, "--te-scale", &bad))) {
            if (!cur) return orphan("--te-scale");
            if (!parse_float("--te-scale", v, &cur->te_scale)) return CLI_USAGE;
            cur->te_set = 1;
        } else if ((v = opt_val(n, argv, &i, "--manifest", &bad))) {
            out->manifest = v;
        } else if ((v = opt_val(n, argv, &i, "--lora-dir", &bad))) {
            out->dir = v;
        } else if (!bad) {
            argv[w++] = argv[i];
        }
    }
    if (bad) return CLI_USAGE;
    *argc = w;
    argv[w] = NULL;
    return CLI_OK;
}

/* Edit distance of a and b (both short ids), for "did you mean". */
static size_t edit_distance(const char *a, const char *b) {
    size_t n = strlen(a), m = strlen(b);
    if (n > 64 || m > 64) return (size_t)-1;
    size_t row[65];
    for (size_t j = 0; j <= m; j++) row[j] = j;
    for (size_t i = 1; i <= n; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= m; j++) {
            size_t up = row[j], best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best) best = up + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            diag = up;
            row[j] = best;
        }
    }
    return row[m];
}

/* "--lora ID: not in the manifest" with the ids it has: all of them when
 * few, else the closest ones. */
static void not_in_manifest(const cli_loras *ls, cJSON *man, const char *id) {
    char list[1024] = "";
    size_t k = 0, best = (size_t)-1;
    int n_ids = 0;
    cJSON *cat, *e;
    cJSON_ArrayForEach(cat, man) cJSON_ArrayForEach(e, cat) {
        cJSON *v = cJSON_GetObjectItem(e, "id");
        if (!cJSON_IsString(v)) continue;
        n_ids++;
        size_t d = edit_distance(id, v->valuestring);
        if (d < best) best = d;
    }
    int all = n_ids <= 16;
    cJSON_ArrayForEach(cat, man) cJSON_ArrayForEach(e, cat) {
        cJSON *v = cJSON_GetObjectItem(e, "id");
        if (!cJSON_IsString(v) || (!all && edit_distance(id, v->valuestring) != best)) continue;
        if (k + strlen(v->valuestring) + 8 >= sizeof list) {
            snprintf(list + k, sizeof list - k, ", ...");
            break;
        }
        k += (size_t)snprintf(list + k, sizeof list - k, "%s%s", k ? ", " : "", v->valuestring);
    }
    if (n_ids == 0)
        cli_error("--lora %s: not in --manifest %s, which lists no LoRA ids (and no such file)", id, ls->manifest);
    else
        cli_error("--lora %s: not in --manifest %s (and no such file); %s: %s", id, ls->manifest,
                  all ? "its ids are" : "closest ids", list);
}

/* Fill l from the manifest entry `id` when l->file names one; *found says
 * whether it did. */
static int resolve_manifest(cli_loras *ls, cJSON *man, cli_lora *l, const char *mdir, int *found) {
    *found = 0;
    cJSON *cat;
    cJSON_ArrayForEach(cat, man) {
        cJSON *e;
        cJSON_ArrayForEach(e, cat) {
            cJSON *id = cJSON_GetObjectItem(e, "id");
            if (!cJSON_IsString(id) || strcmp(id->valuestring, l->file)) continue;
            const char *dir = ls->dir ? ls->dir : mdir;
            size_t len = strlen(dir) + strlen(l->file) + 16;
            char *path = malloc(len);
            if (!path) return 0;
            snprintf(path, len, "%s/%s.safetensors", dir, l->file);
            if (!l->name) l->name = strdup(l->file);
            free(l->file);
            l->file = path;
            if (!l->cat_set && cat->string) cli_parse_category(cat->string, &l->cat), l->cat_set = 1;
            cJSON *tr = cJSON_GetObjectItem(e, "trigger"), *t;
            if (l->n_trig == 0)
                cJSON_ArrayForEach(t, tr) if (cJSON_IsString(t) && add_trigger(l, t->valuestring) <= 0) return 0;
            *found = 1;
            return 1;
        }
    }
    return 1;
}

int cli_loras_load(cli_loras *ls, lmx_model *m, int triggers_matter, int quiet) {
    if (ls->n == 0) return CLI_OK;
    if (ls->manifest) {
        FILE *f = fopen(ls->manifest, "rb");
        if (!f) {
            cli_error("--manifest %s: cannot open: %s", ls->manifest, strerror(errno));
            return CLI_FAIL;
        }
        char *buf = NULL;
        size_t cap = 0, len = 0;
        for (;;) {
            if (len + 4096 > cap) {
                char *nb = realloc(buf, cap = cap ? 2 * cap : 65536);
                if (!nb) break;
                buf = nb;
            }
            size_t r = fread(buf + len, 1, cap - len - 1, f);
            if (r == 0) break;
            len += r;
        }
        fclose(f);
        if (!buf) return CLI_FAIL;
        buf[len] = 0;
        cJSON *man = cJSON_Parse(buf);
        free(buf);
        if (!cJSON_IsObject(man)) {
            cJSON_Delete(man);
            cli_error("--manifest %s: not a lora_info JSON object ({category: [{id, trigger}]})", ls->manifest);
            return CLI_FAIL;
        }
        char *mdir = strdup(ls->manifest);
        char *slash = mdir ? strrchr(mdir, '/') : NULL;
        if (slash) *slash = 0;
        const char *dir = slash ? mdir : ".";
        for (int i = 0; i < ls->n; i++) {
            int found = 0;
            struct stat sb;
            if (!resolve_manifest(ls, man, &ls->v[i], dir, &found) ||
                (!found && stat(ls->v[i].file, &sb) != 0 && (not_in_manifest(ls, man, ls->v[i].file), 1))) {
                free(mdir);
                cJSON_Delete(man);
                return CLI_FAIL;
            }
        }
        free(mdir);
        cJSON_Delete(man);
    }
    ls->handles = calloc((size_t)ls->n, sizeof *ls->handles);
    ls->uses = calloc((size_t)ls->n, sizeof *ls->uses);
    if (!ls->handles || !ls->uses) return CLI_FAIL;
    for (int i = 0; i < ls->n; i++) {
        cli_lora *l = &ls->v[i];
        if (!l->name) { /* the file name without folder and extension */
            const char *b = strrchr(l->file, '/');
            b = b ? b + 1 : l->file;
            const char *dot = strrchr(b, '.');
            l->name = trim_dup(b, dot && dot != b ? (size_t)(dot - b) : strlen(b));
            if (!l->name) return CLI_FAIL;
        }
        struct stat sb;
        if (!ls->manifest && !strchr(l->file, '/') && !strchr(l->file, '.') && stat(l->file, &sb) != 0) {
            cli_error("--lora %s: no such file (a LoRA id of a lora_info JSON needs --manifest FILE)", l->file);
            return CLI_FAIL;
        }
        lmx_status st = lmx_lora_load(&ls->handles[i], m, l->file);
        if (st != LMX_OK) return cli_fail_status(st);
        lmx_lora_use *u = &ls->uses[i];
        *u = lmx_lora_use_default(ls->handles[i]);
        u->unet_scale = l->scale;
        u->te_scale = l->te_scale;
        u->name = l->name;
        u->category = l->cat;
        u->triggers = (const char *const *)l->trig;
        u->n_triggers = l->n_trig;
        if (l->n_trig == 0 && (triggers_matter || !quiet)) {
            char tags[512];
            lmx_lora_top_tags(ls->handles[i], 8, tags, sizeof tags);
            fprintf(stderr, "loramix: %s: LoRA %s has no trigger words (give them with --trigger after its --lora)%s%s%s\n",
                    triggers_matter ? "warning" : "note", l->name,
                    *tags ? "; its training tags suggest: " : "", tags,
                    triggers_matter ? "; the prompt-aware weights give it the fixed no-trigger score "
                                     "(docs/composition.md, 'Prompt-aware weights')" : "");
        }
    }
    return CLI_OK;
}

void cli_loras_free(cli_loras *ls) {
    for (int i = 0; i < ls->n; i++) {
        if (ls->handles) lmx_lora_free(ls->handles[i]);
        cli_lora *l = &ls->v[i];
        free(l->file);
        free(l->name);
        for (int k = 0; k < l->n_trig; k++) free(l->trig[k]);
        free(l->trig);
    }
    free(ls->handles);
    free(ls->uses);
    free(ls->v);
    memset(ls, 0, sizeof *ls);
}
