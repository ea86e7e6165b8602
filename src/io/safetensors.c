/*
 * safetensors.c - validated, zero-copy reader and atomic writer for the
 * safetensors format (huggingface/safetensors; the rules enforced are listed
 * in safetensors.h and docs/file-formats.md).
 *
 * Reading: the file is mapped read-only; the 8-byte length is checked
 * against a 100 MiB cap and the file size; the JSON header is pre-scanned in
 * one pass (no NUL byte, strict UTF-8, no "\u0000" escape, nesting at most
 * ST_JSON_MAX_DEPTH) and then parsed with cJSON from a NUL-terminated copy,
 * so cJSON can never read past the header. Every number taken from the
 * JSON is checked to be an exact non-negative integer below 2^53, and all
 * size and offset arithmetic is overflow-checked. Duplicate names and
 * overlapping tensors are found by sorting (O(n log n)), so a header of
 * 100k tensors validates in well under a second. All tensor names,
 * metadata keys and values live in one block.
 *
 * Writing mirrors the reference writer: the JSON header lists "__metadata__"
 * first, is padded with spaces to a multiple of 8 bytes, and the data area
 * is ordered by decreasing element size so that every tensor is aligned.
 */
#include "io/safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "io/io_util.h"

#define ST_JSON_MAX_DEPTH 64 /* a valid header needs 3 */
#define QUOTE_MAX 120        /* bytes of an untrusted name shown in messages */

struct st_file {
    char *path;
    const uint8_t *map; /* whole file or caller's buffer */
    size_t map_size;
    int owns_map;       /* munmap on close */
    void *own_map;      /* the mapping itself when owned (= map)           */
    unsigned flags;     /* ST_ALLOW_GAPS */
    uint64_t header_size;
    st_tensor *tensors; /* header order */
    int n_tensors;
    const char **meta_keys;
    const char **meta_vals;
    int n_meta;
    int *sorted;        /* tensor indices sorted by name, for st_find */
    int *meta_sorted;   /* metadata indices sorted by key, for st_meta_get */
    char *strings;      /* every name, key and value, NUL-terminated */
    uint64_t n_compares; /* comparisons parse() made (st_open_compares) */
};

static const char *DTYPE_NAMES[ST_DTYPE_COUNT] = {"F32", "F16", "BF16", "I32", "I64"};
static const size_t DTYPE_SIZES[ST_DTYPE_COUNT] = {4, 2, 2, 4, 8};

/* Dtypes of the format that loramix does not read: LMX_ERR_UNSUPPORTED. */
static const char *const OTHER_DTYPES[] = {"F64", "U8", "I8", "BOOL", "I16", "U16", "U32",
                                           "U64", "F8_E4M3", "F8_E5M2", "F8_E8M0", "F4",
                                           "F6_E2M3", "F6_E3M2", "C64", "C128"};

const char *st_dtype_name(st_dtype t) {
    return (unsigned)t < ST_DTYPE_COUNT ? DTYPE_NAMES[t] : "?";
}
size_t st_dtype_size(st_dtype t) { return (unsigned)t < ST_DTYPE_COUNT ? DTYPE_SIZES[t] : 0; }

void st_shape_str(int ndim, const int64_t *shape, char *buf, size_t n) {
    if (n == 0) return;
    size_t k = 0;
    buf[0] = 0;
    int w = snprintf(buf, n, "[");
    k = w > 0 ? (size_t)w : 0;
    for (int i = 0; i < ndim && k + 1 < n; i++) {
        w = snprintf(buf + k, n - k, i ? ", %lld" : "%lld", (long long)shape[i]);
        if (w < 0) return;
        k += (size_t)w;
    }
    if (k + 1 < n) snprintf(buf + k, n - k, "]");
}

/* Quote an untrusted name for a message (see io_quote). */
static const char *qname(char *buf, size_t n, const char *s) {
    return io_quote(buf, n, s, strlen(s), QUOTE_MAX);
}

/* A JSON number that is an exact non-negative integer at most 2^53. */
static int json_uint(const cJSON *n, int64_t *out) {
    if (!cJSON_IsNumber(n)) return 0;
    double d = n->valuedouble;
    if (!(d >= 0) || d > 9007199254740992.0 || d != floor(d)) return 0;
    *out = (int64_t)d;
    return 1;
}

static int parse_dtype(const char *s, st_dtype *out) {
    for (int i = 0; i < ST_DTYPE_COUNT; i++)
        if (!strcmp(s, DTYPE_NAMES[i])) {
            *out = (st_dtype)i;
            return 1;
        }
    return 0;
}

static int is_other_dtype(const char *s) {
    for (size_t i = 0; i < LMX_ARRAY_LEN(OTHER_DTYPES); i++)
        if (!strcmp(s, OTHER_DTYPES[i])) return 1;
    return 0;
}

/* One pass over the raw header bytes, before any JSON parsing: structural
 * limits cJSON does not enforce the way we want. Returns NULL when fine, or
 * what is wrong with *at set to the byte offset. */
static const char *prescan(const uint8_t *h, size_t n, size_t *at) {
    int depth = 0, in_str = 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = h[i];
        *at = i;
        if (c == 0) return "a NUL byte";
        if (in_str) {
            if (c == '\\') {
                if (i + 5 < n && h[i + 1] == 'u' && !memcmp(h + i + 2, "0000", 4))
                    return "an escaped NUL (\\u0000) in a string";
                i++; /* skip the escaped character */
                if (i < n && h[i] == 0) {
                    *at = i;
                    return "a NUL byte";
                }
            } else if (c == '"') {
                in_str = 0;
            }
        } else if (c == '"') {
            in_str = 1;
        } else if (c == '{' || c == '[') {
            if (++depth > ST_JSON_MAX_DEPTH) return "JSON nested too deeply (more than 64 levels)";
        } else if (c == '}' || c == ']') {
            depth--;
        }
    }
    return NULL;
}

typedef struct span {
    uint64_t begin, end;
    int idx;
} span;

/* Comparisons made by the header sorts and duplicate checks of the parse
 * running on this thread: a count of work tests can bound (qsort's
 * comparator takes no context, hence thread-local). */
static _Thread_local uint64_t tl_compares;

static int cmp_span(const void *a, const void *b) {
    const span *x = a, *y = b;
    tl_compares++;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return (x->idx > y->idx) - (x->idx < y->idx);
}

typedef struct named {
    const char *s;
    int idx;
} named;

static int cmp_named(const void *a, const void *b) {
    const named *x = a, *y = b;
    tl_compares++;
    int c = strcmp(x->s, y->s);
    return c ? c : (x->idx > y->idx) - (x->idx < y->idx);
}

/* Sort indices 0..n-1 by names[i] into out[]; returns the index of the
 * first name that appears twice, or -1. `tmp` has room for n entries. */
static int sort_names(const char *const *names, size_t stride, int n, int *out, named *tmp) {
    for (int i = 0; i < n; i++) {
        tmp[i].s = *(const char *const *)((const char *)names + stride * (size_t)i);
        tmp[i].idx = i;
    }
    if (n > 1) qsort(tmp, (size_t)n, sizeof(named), cmp_named);
    int dup = -1;
    for (int i = 0; i < n; i++) {
        out[i] = tmp[i].idx;
        if (dup < 0 && i > 0 && (tl_compares++, !strcmp(tmp[i].s, tmp[i - 1].s))) dup = tmp[i].idx;
    }
    return dup;
}

/* Validate one tensor entry `it` (named t->name) and fill t. */
static lmx_status parse_tensor(const char *label, const cJSON *it, st_tensor *t,
                               const uint8_t *data, uint64_t data_size) {
    char qn[QUOTE_MAX + 16];
    const char *name = qname(qn, sizeof qn, t->name);
    if (!cJSON_IsObject(it))
        return lmx_err(LMX_ERR_FORMAT, "%s: tensor '%s': entry is not an object", label, name);
    const cJSON *jd = cJSON_GetObjectItemCaseSensitive(it, "dtype");
    const cJSON *js = cJSON_GetObjectItemCaseSensitive(it, "shape");
    const cJSON *jo = cJSON_GetObjectItemCaseSensitive(it, "data_offsets");
    const char *bad = !cJSON_IsString(jd) ? (jd ? "'dtype' is not a string" : "no 'dtype'")
                      : !cJSON_IsArray(js)  ? (js ? "'shape' is not an array" : "no 'shape'")
                      : !cJSON_IsArray(jo)  ? (jo ? "'data_offsets' is not an array"
                                                  : "no 'data_offsets'")
                                            : NULL;
    if (bad) return lmx_err(LMX_ERR_FORMAT, "%s: tensor '%s': %s", label, name, bad);
    if (!parse_dtype(jd->valuestring, &t->dtype)) {
        char qd[48];
        io_quote(qd, sizeof qd, jd->valuestring, strlen(jd->valuestring), 24);
        if (is_other_dtype(jd->valuestring))
            return lmx_err(LMX_ERR_UNSUPPORTED,
                           "%s: tensor '%s': dtype %s is not supported (loramix reads F32, F16, "
                           "BF16, I32, I64)",
                           label, name, qd);
        return lmx_err(LMX_ERR_FORMAT, "%s: tensor '%s': unknown dtype '%s'", label, name, qd);
    }
    int nd = cJSON_GetArraySize(js);
    if (nd > ST_MAX_DIMS)
        return lmx_err(LMX_ERR_FORMAT, "%s: tensor '%s': %d dimensions (at most %d)", label, name,
                       nd, ST_MAX_DIMS);
    t->ndim = nd;
    uint64_t numel = 1;
    int d = 0;
    for (const cJSON *s = js->child; s; s = s->next, d++) {
        int64_t v;
        if (!json_uint(s, &v))
            return lmx_err(LMX_ERR_FORMAT,
                           "%s: tensor '%s': shape entry %d is not a non-negative integer", label,
                           name, d);
        t->shape[d] = v;
        if (!lmx_mul_u64(numel, (uint64_t)v, &numel) || numel > (uint64_t)INT64_MAX)
            return lmx_err(LMX_ERR_FORMAT, "%s: tensor '%s': shape product overflows", label,
                           name);
    }
    t->numel = (int64_t)numel;
    uint64_t nbytes;
    if (!lmx_mul_u64(numel, st_dtype_size(t->dtype), &nbytes) || nbytes > SIZE_MAX)
        return lmx_err(LMX_ERR_FORMAT, "%s: tensor '%s': byte size overflows", label, name);
    int64_t b, e;
    if (cJSON_GetArraySize(jo) != 2 || !json_uint(jo->child, &b) ||
        !json_uint(jo->child->next, &e))
        return lmx_err(LMX_ERR_FORMAT,
                       "%s: tensor '%s': data_offsets must be two non-negative integers", label,
                       name);
    if (e < b)
        return lmx_err(LMX_ERR_FORMAT, "%s: tensor '%s': data_offsets [%lld, %lld] end before they begin",
                       label, name, (long long)b, (long long)e);
    if ((uint64_t)e > data_size)
        return lmx_err(LMX_ERR_FORMAT,
                       "%s: tensor '%s': data_offsets [%lld, %lld] run past the %llu-byte data "
                       "area (truncated file?)",
                       label, name, (long long)b, (long long)e, (unsigned long long)data_size);
    if ((uint64_t)(e - b) != nbytes) {
        char sh[160];
        st_shape_str(t->ndim, t->shape, sh, sizeof sh);
        return lmx_err(LMX_ERR_FORMAT, "%s: tensor '%s': %lld bytes stored but %s %s needs %llu",
                       label, name, (long long)(e - b), st_dtype_name(t->dtype), sh,
                       (unsigned long long)nbytes);
    }
    t->data = data + b;
    t->nbytes = (size_t)nbytes;
    return LMX_OK;
}

/* Parse and validate f->map[0..map_size). On error the caller closes f. */
static lmx_status parse(st_file *f) {
    const char *label = f->path;
    lmx_status st = LMX_OK;
    char *json = NULL;
    cJSON *root = NULL;
    span *spans = NULL;
    named *tmp = NULL;
    char qn[QUOTE_MAX + 16], qm[QUOTE_MAX + 16];
    tl_compares = 0;

    if (f->map_size < 8)
        return lmx_err(LMX_ERR_FORMAT,
                       "%s: file is %zu bytes, too short for a safetensors header", label,
                       f->map_size);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | f->map[i];
    if (hlen > ST_MAX_HEADER)
        return lmx_err(LMX_ERR_FORMAT,
                       "%s: header length %llu is over the %u-byte limit (not a safetensors "
                       "file?)",
                       label, (unsigned long long)hlen, ST_MAX_HEADER);
    if (hlen < 2)
        return lmx_err(LMX_ERR_FORMAT, "%s: header length %llu is too small for a JSON object",
                       label, (unsigned long long)hlen);
    if (hlen > f->map_size - 8)
        return lmx_err(LMX_ERR_FORMAT,
                       "%s: header length %llu runs past the end of the %zu-byte file "
                       "(truncated?)",
                       label, (unsigned long long)hlen, f->map_size);
    f->header_size = hlen;
    const uint8_t *hdr = f->map + 8;
    size_t at = 0;
    const char *why = prescan(hdr, (size_t)hlen, &at);
    if (why) return lmx_err(LMX_ERR_FORMAT, "%s: header has %s at byte %zu", label, why, at + 8);
    if (!io_utf8_valid(hdr, (size_t)hlen))
        return lmx_err(LMX_ERR_FORMAT, "%s: header is not valid UTF-8", label);
    const uint8_t *data = hdr + hlen;
    uint64_t data_size = f->map_size - 8 - hlen;

    /* A NUL-terminated copy: cJSON never reads past it. */
    json = lmx_malloc((size_t)hlen + 1);
    if (!json) return lmx_err(LMX_ERR_NOMEM, "%s: out of memory for the header", label);
    memcpy(json, hdr, (size_t)hlen);
    json[hlen] = 0;
    io_cjson_init();
    io_cjson_oom_clear();
    const char *end = NULL;
    root = cJSON_ParseWithOpts(json, &end, 0);
    if (!root) {
        if (io_cjson_oom())
            st = lmx_err(LMX_ERR_NOMEM, "%s: out of memory parsing the header", label);
        else
            st = lmx_err(LMX_ERR_FORMAT, "%s: header JSON is malformed near byte %zu", label,
                         (end && end >= json ? (size_t)(end - json) : 0) + 8);
        goto done;
    }
    /* Only whitespace may follow the JSON value (writers pad with spaces). */
    for (const char *p = end; *p; p++)
        if (*p != ' ' && *p != '\n' && *p != '\r' && *p != '\t') {
            st = lmx_err(LMX_ERR_FORMAT, "%s: unexpected data after the header JSON at byte %zu",
                         label, (size_t)(p - json) + 8);
            goto done;
        }
    if (!cJSON_IsObject(root)) {
        st = lmx_err(LMX_ERR_FORMAT, "%s: header JSON is not an object", label);
        goto done;
    }

    /* Pass 1: count entries and string bytes; check __metadata__. */
    const cJSON *meta = NULL;
    size_t n_items = 0, n_meta = 0, bytes = 1;
    for (const cJSON *it = root->child; it; it = it->next) {
        if (!it->string) {
            st = lmx_err(LMX_ERR_FORMAT, "%s: header entry without a name", label);
            goto done;
        }
        n_items++;
        if (strcmp(it->string, "__metadata__")) {
            bytes += strlen(it->string) + 1;
            continue;
        }
        if (meta) {
            st = lmx_err(LMX_ERR_FORMAT, "%s: __metadata__ appears twice in the header", label);
            goto done;
        }
        meta = it;
        if (!cJSON_IsObject(it)) {
            st = lmx_err(LMX_ERR_FORMAT, "%s: __metadata__ is not an object", label);
            goto done;
        }
        for (const cJSON *m = it->child; m; m = m->next) {
            if (!m->string || !cJSON_IsString(m)) {
                st = lmx_err(LMX_ERR_FORMAT, "%s: __metadata__ value of '%s' is not a string",
                             label, qname(qm, sizeof qm, m->string ? m->string : "?"));
                goto done;
            }
            n_meta++;
            bytes += strlen(m->string) + strlen(m->valuestring) + 2;
        }
    }
    size_t n_tens = n_items - (meta ? 1 : 0);
    if (n_tens > INT_MAX / 2 || n_meta > INT_MAX / 2) {
        st = lmx_err(LMX_ERR_FORMAT, "%s: too many header entries", label);
        goto done;
    }
    f->tensors = lmx_calloc(n_tens + 1, sizeof(st_tensor));
    f->sorted = lmx_calloc(n_tens + 1, sizeof(int));
    f->meta_keys = lmx_calloc(n_meta + 1, sizeof(char *));
    f->meta_vals = lmx_calloc(n_meta + 1, sizeof(char *));
    f->meta_sorted = lmx_calloc(n_meta + 1, sizeof(int));
    f->strings = lmx_malloc(bytes);
    spans = lmx_calloc(n_tens + 1, sizeof(span));
    tmp = lmx_calloc(LMX_MAX(n_tens, n_meta) + 1, sizeof(named));
    if (!f->tensors || !f->sorted || !f->meta_keys || !f->meta_vals || !f->meta_sorted ||
        !f->strings || !spans || !tmp) {
        st = lmx_err(LMX_ERR_NOMEM, "%s: out of memory for %zu header entries", label, n_items);
        goto done;
    }
    char *sp = f->strings;

    /* Metadata, in file order; keys must be unique. */
    if (meta) {
        for (const cJSON *m = meta->child; m; m = m->next) {
            size_t kl = strlen(m->string) + 1, vl = strlen(m->valuestring) + 1;
            memcpy(sp, m->string, kl);
            f->meta_keys[f->n_meta] = sp;
            sp += kl;
            memcpy(sp, m->valuestring, vl);
            f->meta_vals[f->n_meta] = sp;
            sp += vl;
            f->n_meta++;
        }
        int dup = sort_names(f->meta_keys, sizeof(char *), f->n_meta, f->meta_sorted, tmp);
        if (dup >= 0) {
            st = lmx_err(LMX_ERR_FORMAT, "%s: __metadata__ key '%s' appears twice", label,
                         qname(qm, sizeof qm, f->meta_keys[dup]));
            goto done;
        }
    }

    /* Pass 2: tensors, in header order. */
    for (const cJSON *it = root->child; it; it = it->next) {
        if (it == meta) continue;
        int ti = f->n_tensors;
        st_tensor *t = &f->tensors[ti];
        size_t kl = strlen(it->string) + 1;
        memcpy(sp, it->string, kl);
        t->name = sp;
        sp += kl;
        f->n_tensors++;
        st = parse_tensor(label, it, t, data, data_size);
        if (st != LMX_OK) goto done;
        spans[ti] = (span){(uint64_t)((const uint8_t *)t->data - data),
                           (uint64_t)((const uint8_t *)t->data - data) + t->nbytes, ti};
    }

    /* Duplicate names (cJSON keeps duplicates as separate items). */
    int dup = sort_names(&f->tensors[0].name, sizeof(st_tensor), f->n_tensors, f->sorted, tmp);
    if (dup >= 0) {
        st = lmx_err(LMX_ERR_FORMAT, "%s: tensor '%s' appears twice in the header", label,
                     qname(qn, sizeof qn, f->tensors[dup].name));
        goto done;
    }
    /* Overlaps: sort by begin; empty tensors never overlap anything. */
    if (f->n_tensors > 1) qsort(spans, (size_t)f->n_tensors, sizeof(span), cmp_span);
    uint64_t reach = 0;
    int reach_idx = -1;
    for (int i = 0; i < f->n_tensors; i++) {
        if (spans[i].end == spans[i].begin) continue;
        if (reach_idx >= 0 && spans[i].begin < reach) {
            st = lmx_err(LMX_ERR_FORMAT, "%s: tensors '%s' and '%s' overlap in the data area",
                         label, qname(qn, sizeof qn, f->tensors[reach_idx].name),
                         qname(qm, sizeof qm, f->tensors[spans[i].idx].name));
            goto done;
        }
        if (spans[i].end > reach) {
            reach = spans[i].end;
            reach_idx = spans[i].idx;
        }
    }
    /* Gaps: the non-empty tensors, in offset order, must tile [0, data_size). */
    if (!(f->flags & ST_ALLOW_GAPS)) {
        uint64_t pos = 0;
        int prev = -1;
        for (int i = 0; i <= f->n_tensors; i++) {
            if (i < f->n_tensors && spans[i].end == spans[i].begin) continue;
            uint64_t begin = i < f->n_tensors ? spans[i].begin : (uint64_t)data_size;
            if (begin > pos) {
                char before[160], after[160];
                if (prev >= 0) snprintf(before, sizeof before, "tensor '%s'", qname(qn, sizeof qn, f->tensors[prev].name));
                else snprintf(before, sizeof before, "the start of the data area");
                if (i < f->n_tensors) snprintf(after, sizeof after, "tensor '%s'", qname(qm, sizeof qm, f->tensors[spans[i].idx].name));
                else snprintf(after, sizeof after, "the end of the file");
                st = lmx_err(LMX_ERR_FORMAT,
                             "%s: %llu unreferenced bytes between %s and %s (data bytes %llu..%llu); the "
                             "safetensors format (and its reference reader) requires the tensors to cover "
                             "the data area exactly (--allow-gaps accepts it)",
                             label, (unsigned long long)(begin - pos), before, after, (unsigned long long)pos,
                             (unsigned long long)begin);
                goto done;
            }
            if (i < f->n_tensors) {
                pos = spans[i].end;
                prev = spans[i].idx;
            }
        }
    }
done:
    f->n_compares = tl_compares;
    lmx_free(tmp);
    lmx_free(spans);
    cJSON_Delete(root);
    lmx_free(json);
    return st;
}

uint64_t st_open_compares(const st_file *f) { return f ? f->n_compares : 0; }

static lmx_status finish_open(st_file *f, st_file **out) {
    lmx_status st = parse(f);
    if (st != LMX_OK) {
        st_close(f);
        return st;
    }
    *out = f;
    return LMX_OK;
}

lmx_status st_open(st_file **out, const char *path) { return st_open_flags(out, path, 0); }

lmx_status st_open_buffer(st_file **out, const void *buf, size_t n, const char *label) {
    return st_open_buffer_flags(out, buf, n, label, 0);
}

lmx_status st_open_flags(st_file **out, const char *path, unsigned flags) {
    *out = NULL;
    st_file *f = lmx_calloc(1, sizeof *f);
    if (!f) return lmx_err(LMX_ERR_NOMEM, "%s: out of memory", path);
    f->path = lmx_strdup(path);
    if (!f->path) {
        lmx_free(f);
        return lmx_err(LMX_ERR_NOMEM, "%s: out of memory", path);
    }
    uint64_t size;
    lmx_status st;
    int fd = io_open_regular(path, &size, &st);
    if (fd < 0) {
        st_close(f);
        return st;
    }
    if (size > SIZE_MAX) {
        close(fd);
        st_close(f);
        return lmx_err(LMX_ERR_IO, "%s: file too large to map", path);
    }
    f->map_size = (size_t)size;
    if (f->map_size > 0) {
        void *m = mmap(NULL, f->map_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED) {
            st = lmx_err(LMX_ERR_IO, "%s: cannot map: %s", path, strerror(errno));
            close(fd);
            st_close(f);
            return st;
        }
        f->map = m;
        f->own_map = m;
        f->owns_map = 1;
    }
    close(fd);
    f->flags = flags;
    return finish_open(f, out);
}

lmx_status st_open_buffer_flags(st_file **out, const void *buf, size_t n, const char *label, unsigned flags) {
    *out = NULL;
    if (!label) label = "<buffer>";
    st_file *f = lmx_calloc(1, sizeof *f);
    if (!f) return lmx_err(LMX_ERR_NOMEM, "%s: out of memory", label);
    f->path = lmx_strdup(label);
    if (!f->path) {
        lmx_free(f);
        return lmx_err(LMX_ERR_NOMEM, "%s: out of memory", label);
    }
    f->map = buf;
    f->map_size = buf ? n : 0;
    f->flags = flags;
    return finish_open(f, out);
}

void st_drop_pages(const st_file *f) {
    if (f && f->owns_map && f->map) madvise(f->own_map, f->map_size, MADV_DONTNEED);
}

void st_drop_range(const st_file *f, const void *p, size_t n) {
    if (!f || !f->owns_map || !f->map || n == 0) return;
    const uint8_t *b = p, *e = b + n;
    if (b < f->map || e > f->map + f->map_size) return;
    uintptr_t pg = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t lo = ((uintptr_t)b + pg - 1) & ~(pg - 1), hi = (uintptr_t)e & ~(pg - 1);
    if (hi > lo) madvise((void *)lo, hi - lo, MADV_DONTNEED);
}

void st_close(st_file *f) {
    if (!f) return;
    if (f->owns_map && f->map) munmap(f->own_map, f->map_size);
    lmx_free(f->meta_keys);
    lmx_free(f->meta_vals);
    lmx_free(f->meta_sorted);
    lmx_free(f->tensors);
    lmx_free(f->sorted);
    lmx_free(f->strings);
    lmx_free(f->path);
    lmx_free(f);
}

const char *st_path(const st_file *f) { return f->path; }
int st_count(const st_file *f) { return f->n_tensors; }
uint64_t st_file_size(const st_file *f) { return f->map_size; }
uint64_t st_header_size(const st_file *f) { return f->header_size; }

const st_tensor *st_at(const st_file *f, int i) {
    return i >= 0 && i < f->n_tensors ? &f->tensors[i] : NULL;
}

const st_tensor *st_find(const st_file *f, const char *name) {
    int lo = 0, hi = f->n_tensors - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        int c = strcmp(f->tensors[f->sorted[mid]].name, name);
        if (c == 0) return &f->tensors[f->sorted[mid]];
        if (c < 0) lo = mid + 1;
        else hi = mid - 1;
    }
    return NULL;
}

int st_meta_count(const st_file *f) { return f->n_meta; }

void st_meta_at(const st_file *f, int i, const char **key, const char **value) {
    int ok = i >= 0 && i < f->n_meta;
    *key = ok ? f->meta_keys[i] : NULL;
    *value = ok ? f->meta_vals[i] : NULL;
}

const char *st_meta_get(const st_file *f, const char *key) {
    int lo = 0, hi = f->n_meta - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        int c = strcmp(f->meta_keys[f->meta_sorted[mid]], key);
        if (c == 0) return f->meta_vals[f->meta_sorted[mid]];
        if (c < 0) lo = mid + 1;
        else hi = mid - 1;
    }
    return NULL;
}

/* ---- conversion ------------------------------------------------------ */

int st_data_aligned(const st_tensor *t) {
    size_t a = st_dtype_size(t->dtype);
    return a && (uintptr_t)t->data % a == 0;
}

lmx_status st_to_f32(const st_tensor *t, float *dst) {
    size_t n = (size_t)t->numel;
    if (t->dtype == ST_F32) {
        if (t->nbytes) memcpy(dst, t->data, t->nbytes);
        return LMX_OK;
    }
    if (t->dtype != ST_F16 && t->dtype != ST_BF16) {
        char qn[QUOTE_MAX + 16];
        return lmx_err(LMX_ERR_FORMAT, "tensor '%s': dtype %s where a float tensor is expected",
                       qname(qn, sizeof qn, t->name), st_dtype_name(t->dtype));
    }
    void (*conv)(const uint16_t *, float *, size_t) =
        t->dtype == ST_F16 ? lmx_f16_to_f32_n : lmx_bf16_to_f32_n;
    if (st_data_aligned(t)) {
        conv(t->data, dst, n);
        return LMX_OK;
    }
    /* Misaligned 16-bit data: copy through an aligned bounce buffer. */
    uint16_t bounce[2048];
    const uint8_t *src = t->data;
    for (size_t i = 0; i < n; i += LMX_ARRAY_LEN(bounce)) {
        size_t k = LMX_MIN(n - i, LMX_ARRAY_LEN(bounce));
        memcpy(bounce, src + 2 * i, 2 * k);
        conv(bounce, dst + i, k);
    }
    return LMX_OK;
}

lmx_status st_to_i64(const st_tensor *t, int64_t *dst) {
    size_t n = (size_t)t->numel;
    const uint8_t *src = t->data;
    if (t->dtype == ST_I64) {
        if (t->nbytes) memcpy(dst, src, t->nbytes);
        return LMX_OK;
    }
    if (t->dtype == ST_I32) {
        for (size_t i = 0; i < n; i++) {
            int32_t v;
            memcpy(&v, src + 4 * i, 4);
            dst[i] = v;
        }
        return LMX_OK;
    }
    char qn[QUOTE_MAX + 16];
    return lmx_err(LMX_ERR_FORMAT, "tensor '%s': dtype %s where an integer tensor is expected",
                   qname(qn, sizeof qn, t->name), st_dtype_name(t->dtype));
}

lmx_status st_to_f32_alloc(const st_tensor *t, float **out) {
    *out = NULL;
    uint64_t bytes;
    char qn[QUOTE_MAX + 16];
    if (!lmx_mul_u64((uint64_t)(t->numel ? t->numel : 1), sizeof(float), &bytes) ||
        bytes > SIZE_MAX)
        return lmx_err(LMX_ERR_NOMEM, "tensor '%s': too large", qname(qn, sizeof qn, t->name));
    float *buf = lmx_alloc_aligned((size_t)bytes);
    if (!buf) {
        return lmx_err(LMX_ERR_NOMEM, "tensor '%s': out of memory for %llu bytes",
                       qname(qn, sizeof qn, t->name), (unsigned long long)bytes);
    }
    lmx_status st = st_to_f32(t, buf);
    if (st != LMX_OK) {
        lmx_free(buf);
        return st;
    }
    *out = buf;
    return LMX_OK;
}

lmx_status st_check_shape(const st_tensor *t, int ndim, const int64_t *shape) {
    int ok = t->ndim == ndim;
    for (int i = 0; ok && i < ndim; i++) ok = t->shape[i] == shape[i];
    if (ok) return LMX_OK;
    char want[160], got[160], qn[QUOTE_MAX + 16];
    st_shape_str(ndim, shape, want, sizeof want);
    st_shape_str(t->ndim, t->shape, got, sizeof got);
    return lmx_err(LMX_ERR_SHAPE, "%s: expected %s, got %s", qname(qn, sizeof qn, t->name), want,
                   got);
}

/* ---- writer ---------------------------------------------------------- */

typedef struct wtensor {
    char *name;
    st_dtype dtype;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    void *data;
    size_t nbytes;
} wtensor;

struct st_writer {
    wtensor *t;
    int n, cap;
    int *hash;        /* open addressing: tensor index or -1 */
    size_t hash_cap;  /* power of two, >= 2 n */
    char **mkeys, **mvals;
    int n_meta, cap_meta;
};

static uint64_t hash_str(const char *s) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 1099511628211ull;
    return h;
}

/* Slot of `name` in the table: its index, or the empty slot to fill. */
static size_t hash_slot(const st_writer *w, const char *name) {
    size_t mask = w->hash_cap - 1, i = (size_t)hash_str(name) & mask;
    while (w->hash[i] >= 0 && strcmp(w->t[w->hash[i]].name, name)) i = (i + 1) & mask;
    return i;
}

static lmx_status hash_grow(st_writer *w) {
    size_t cap = w->hash_cap ? 2 * w->hash_cap : 64;
    int *h = lmx_malloc(sizeof(int) * cap);
    if (!h) return lmx_err(LMX_ERR_NOMEM, "safetensors writer: out of memory");
    for (size_t i = 0; i < cap; i++) h[i] = -1;
    lmx_free(w->hash);
    w->hash = h;
    w->hash_cap = cap;
    for (int k = 0; k < w->n; k++) w->hash[hash_slot(w, w->t[k].name)] = k;
    return LMX_OK;
}

lmx_status st_writer_create(st_writer **out) {
    *out = lmx_calloc(1, sizeof(st_writer));
    if (!*out) return lmx_err(LMX_ERR_NOMEM, "safetensors writer: out of memory");
    lmx_status st = hash_grow(*out);
    if (st != LMX_OK) {
        lmx_free(*out);
        *out = NULL;
    }
    return st;
}

lmx_status st_writer_add(st_writer *w, const char *name, st_dtype dtype, int ndim,
                         const int64_t *shape, const void *data) {
    char qn[QUOTE_MAX + 16];
    if (!name) return lmx_err(LMX_ERR_ARG, "safetensors writer: tensor without a name");
    const char *qs = qname(qn, sizeof qn, name);
    if (ndim < 0 || ndim > ST_MAX_DIMS || (unsigned)dtype >= ST_DTYPE_COUNT || (ndim && !shape))
        return lmx_err(LMX_ERR_ARG, "safetensors writer: tensor '%s': bad dtype or rank", qs);
    if (!io_utf8_valid((const uint8_t *)name, strlen(name)))
        return lmx_err(LMX_ERR_ARG, "safetensors writer: tensor '%s': name is not UTF-8", qs);
    if (!strcmp(name, "__metadata__"))
        return lmx_err(LMX_ERR_ARG, "safetensors writer: reserved tensor name '%s'", qs);
    uint64_t numel = 1, nbytes;
    for (int i = 0; i < ndim; i++)
        if (shape[i] < 0 || !lmx_mul_u64(numel, (uint64_t)shape[i], &numel))
            return lmx_err(LMX_ERR_ARG, "safetensors writer: tensor '%s': bad shape", qs);
    if (numel > (uint64_t)INT64_MAX || !lmx_mul_u64(numel, st_dtype_size(dtype), &nbytes) ||
        nbytes > SIZE_MAX / 2)
        return lmx_err(LMX_ERR_ARG, "safetensors writer: tensor '%s': too large", qs);
    if (nbytes && !data)
        return lmx_err(LMX_ERR_ARG, "safetensors writer: tensor '%s': no data", qs);
    if (w->hash[hash_slot(w, name)] >= 0)
        return lmx_err(LMX_ERR_ARG, "safetensors writer: tensor '%s' added twice", qs);
    if (2 * ((size_t)w->n + 1) > w->hash_cap) {
        lmx_status st = hash_grow(w);
        if (st != LMX_OK) return st;
    }
    if (w->n == w->cap) {
        int cap = w->cap ? 2 * w->cap : 16;
        wtensor *nt = lmx_realloc(w->t, sizeof(wtensor) * (size_t)cap);
        if (!nt) return lmx_err(LMX_ERR_NOMEM, "safetensors writer: out of memory");
        w->t = nt;
        w->cap = cap;
    }
    wtensor *t = &w->t[w->n];
    memset(t, 0, sizeof *t);
    t->nbytes = (size_t)nbytes;
    t->name = lmx_strdup(name);
    t->data = lmx_malloc(t->nbytes);
    if (!t->name || !t->data) {
        lmx_free(t->name);
        lmx_free(t->data);
        return lmx_err(LMX_ERR_NOMEM, "safetensors writer: out of memory for '%s'", qs);
    }
    if (t->nbytes) memcpy(t->data, data, t->nbytes);
    t->dtype = dtype;
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++) t->shape[i] = shape[i];
    w->hash[hash_slot(w, name)] = w->n;
    w->n++;
    return LMX_OK;
}

lmx_status st_writer_meta(st_writer *w, const char *key, const char *value) {
    if (!key || !value) return lmx_err(LMX_ERR_ARG, "safetensors writer: NULL metadata");
    if (!io_utf8_valid((const uint8_t *)key, strlen(key)) ||
        !io_utf8_valid((const uint8_t *)value, strlen(value))) {
        char qk[QUOTE_MAX + 16];
        return lmx_err(LMX_ERR_ARG, "safetensors writer: metadata '%s' is not UTF-8",
                       qname(qk, sizeof qk, key));
    }
    char *v = lmx_strdup(value);
    if (!v) return lmx_err(LMX_ERR_NOMEM, "safetensors writer: out of memory");
    for (int i = 0; i < w->n_meta; i++)
        if (!strcmp(w->mkeys[i], key)) {
            lmx_free(w->mvals[i]);
            w->mvals[i] = v;
            return LMX_OK;
        }
    if (w->n_meta == w->cap_meta) {
        int cap = w->cap_meta ? 2 * w->cap_meta : 8;
        char **nk = lmx_realloc(w->mkeys, sizeof(char *) * (size_t)cap);
        if (nk) w->mkeys = nk;
        char **nv = nk ? lmx_realloc(w->mvals, sizeof(char *) * (size_t)cap) : NULL;
        if (nv) w->mvals = nv;
        if (!nk || !nv) {
            lmx_free(v);
            return lmx_err(LMX_ERR_NOMEM, "safetensors writer: out of memory");
        }
        w->cap_meta = cap;
    }
    char *k = lmx_strdup(key);
    if (!k) {
        lmx_free(v);
        return lmx_err(LMX_ERR_NOMEM, "safetensors writer: out of memory");
    }
    w->mkeys[w->n_meta] = k;
    w->mvals[w->n_meta] = v;
    w->n_meta++;
    return LMX_OK;
}

/* A growable string for the header JSON; `oom` sticks once set. */
typedef struct sbuf {
    char *p;
    size_t n, cap;
    int oom;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n + 1) cap *= 2;
        char *np = lmx_realloc(b->p, cap);
        if (!np) {
            b->oom = 1;
            return;
        }
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}

static void sb_str(sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }

static void sb_i64(sbuf *b, long long v) {
    char tmp[32];
    int k = snprintf(tmp, sizeof tmp, "%lld", v);
    sb_put(b, tmp, (size_t)k);
}

/* A JSON string literal; s is valid UTF-8 (checked at add time). */
static void sb_json(sbuf *b, const char *s) {
    sb_put(b, "\"", 1);
    const char *run = s;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c >= 0x20 && c != '"' && c != '\\') continue;
        sb_put(b, run, (size_t)(s - run));
        char esc[8];
        if (c == '"' || c == '\\') snprintf(esc, sizeof esc, "\\%c", c);
        else if (c == '\n') snprintf(esc, sizeof esc, "\\n");
        else if (c == '\t') snprintf(esc, sizeof esc, "\\t");
        else if (c == '\r') snprintf(esc, sizeof esc, "\\r");
        else snprintf(esc, sizeof esc, "\\u%04x", c);
        sb_str(b, esc);
        run = s + 1;
    }
    sb_put(b, run, (size_t)(s - run));
    sb_put(b, "\"", 1);
}

lmx_status st_writer_finish(st_writer *w, const char *path) {
    lmx_status st = LMX_OK;
    sbuf b = {0};
    io_atomic out = {0};
    uint64_t *offs = lmx_calloc((size_t)w->n + 1, sizeof(uint64_t));
    if (!offs) return lmx_err(LMX_ERR_NOMEM, "%s: out of memory", path);
    /* Data order: decreasing element size, then insertion order. */
    uint64_t off = 0;
    for (size_t size = 8; size >= 1; size /= 2)
        for (int i = 0; i < w->n; i++)
            if (st_dtype_size(w->t[i].dtype) == size) {
                offs[i] = off;
                off += w->t[i].nbytes;
            }
    sb_str(&b, "{");
    if (w->n_meta) {
        sb_str(&b, "\"__metadata__\":{");
        for (int i = 0; i < w->n_meta; i++) {
            if (i) sb_str(&b, ",");
            sb_json(&b, w->mkeys[i]);
            sb_str(&b, ":");
            sb_json(&b, w->mvals[i]);
        }
        sb_str(&b, "}");
    }
    for (int i = 0; i < w->n; i++) {
        const wtensor *t = &w->t[i];
        if (i || w->n_meta) sb_str(&b, ",");
        sb_json(&b, t->name);
        sb_str(&b, ":{\"dtype\":\"");
        sb_str(&b, st_dtype_name(t->dtype));
        sb_str(&b, "\",\"shape\":[");
        for (int d = 0; d < t->ndim; d++) {
            if (d) sb_str(&b, ",");
            sb_i64(&b, (long long)t->shape[d]);
        }
        sb_str(&b, "],\"data_offsets\":[");
        sb_i64(&b, (long long)offs[i]);
        sb_str(&b, ",");
        sb_i64(&b, (long long)(offs[i] + t->nbytes));
        sb_str(&b, "]}");
    }
    sb_str(&b, "}");
    while (!b.oom && b.n % 8) sb_str(&b, " "); /* pad to 8 bytes, as the reference does */
    if (b.oom) {
        st = lmx_err(LMX_ERR_NOMEM, "%s: out of memory for the header", path);
        goto done;
    }
    if (b.n > ST_MAX_HEADER) {
        st = lmx_err(LMX_ERR_ARG, "%s: header of %zu bytes is over the %u-byte limit", path, b.n,
                     ST_MAX_HEADER);
        goto done;
    }
    uint8_t len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (uint8_t)((uint64_t)b.n >> (8 * i));
    st = io_atomic_open(&out, path);
    if (st != LMX_OK) goto done;
    st = io_atomic_write(&out, len8, 8);
    if (st == LMX_OK) st = io_atomic_write(&out, b.p, b.n);
    for (size_t size = 8; size >= 1 && st == LMX_OK; size /= 2)
        for (int i = 0; i < w->n && st == LMX_OK; i++)
            if (st_dtype_size(w->t[i].dtype) == size)
                st = io_atomic_write(&out, w->t[i].data, w->t[i].nbytes);
    if (st == LMX_OK) st = io_atomic_commit(&out);
done:
    io_atomic_abort(&out);
    lmx_free(b.p);
    lmx_free(offs);
    return st;
}

void st_writer_free(st_writer *w) {
    if (!w) return;
    for (int i = 0; i < w->n; i++) {
        lmx_free(w->t[i].name);
        lmx_free(w->t[i].data);
    }
    for (int i = 0; i < w->n_meta; i++) {
        lmx_free(w->mkeys[i]);
        lmx_free(w->mvals[i]);
    }
    lmx_free(w->mkeys);
    lmx_free(w->mvals);
    lmx_free(w->t);
    lmx_free(w->hash);
    lmx_free(w);
}
