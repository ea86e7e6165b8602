/*
 * lora_tags.c - the training tags of a kohya LoRA: ss_tag_frequency, a JSON
 * string {dataset: {tag: count}} written by sd-scripts. The most frequent
 * tags usually are the trigger words, so loramix offers them as a hint when
 * a LoRA is used without triggers.
 */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "lora/lora.h"

static int cmp_tag(const void *a, const void *b) {
    const lora_tag *x = a, *y = b;
    if (x->count != y->count) return x->count < y->count ? 1 : -1;
    return strcmp(x->name, y->name);
}

/* Sum ss_tag_frequency ({dataset: {tag: count}}) over datasets, most frequent first. */
int lora_parse_tags(const char *json, lora_tag **out) {
    *out = NULL;
    if (!json) return 0;
    cJSON *j = cJSON_Parse(json);
    if (!j) return -1;
    int n = 0, cap = 0;
    lora_tag *v = NULL;
    cJSON *ds;
    cJSON_ArrayForEach(ds, j) {
        if (!cJSON_IsObject(ds)) continue;
        cJSON *t;
        cJSON_ArrayForEach(t, ds) {
            if (!cJSON_IsNumber(t) || !t->string) continue;
            const char *name = t->string;
            while (*name == ' ') name++;
            int k;
            for (k = 0; k < n; k++)
                if (!strcmp(v[k].name, name)) break;
            if (k < n) {
                v[k].count += t->valuedouble;
                continue;
            }
            if (n == cap) {
                cap = cap ? 2 * cap : 64;
                lora_tag *nv = lmx_realloc(v, sizeof *nv * (size_t)cap);
                if (!nv) goto oom;
                v = nv;
            }
            v[n].name = lmx_strdup(name);
            if (!v[n].name) goto oom;
            v[n++].count = t->valuedouble;
        }
    }
    cJSON_Delete(j);
    qsort(v, (size_t)n, sizeof *v, cmp_tag);
    *out = v;
    return n;
oom:
    for (int k = 0; k < n; k++) lmx_free(v[k].name);
    lmx_free(v);
    cJSON_Delete(j);
    return -1;
}

void lora_free_tags(lora_tag *v, int n) {
    for (int k = 0; k < n; k++) lmx_free(v[k].name);
    lmx_free(v);
}


size_t lmx_lora_top_tags(const lmx_lora *l, int k, char *buf, size_t cap) {
    if (cap) buf[0] = 0;
    if (!l || !l->f || k <= 0 || cap == 0) return 0;
    lora_tag *t = NULL;
    int n = lora_parse_tags(st_meta_get(l->f, "ss_tag_frequency"), &t);
    size_t used = 0;
    for (int i = 0; i < n && i < k; i++) {
        int w = snprintf(buf + used, cap - used, "%s%s", i ? ", " : "", t[i].name);
        if (w < 0 || (size_t)w >= cap - used) {
            buf[used] = 0;
            break;
        }
        used += (size_t)w;
    }
    if (n > 0) lora_free_tags(t, n);
    return used;
}
