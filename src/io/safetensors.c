/*
 * safetensors.c - validated, zero-copy reader and atomic writer for the
 * safetensors format (see safetensors.h for the rules enforced).
 *
 * The JSON header is parsed with cJSON after checking that it is valid UTF-8
 * of bounded size; every number taken from it is checked to be a
 * non-negative integer that fits in int64 before use, and all arithmetic on
 * sizes and offsets is overflow-checked.
 */
#include "io/safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

struct st_file {
    char *path;
    const uint8_t *map;  /* whole file */
    size_t map_size;
    int owns_map;        /* munmap on close */
    st_tensor *tensors;
    int n_tensors;
    char **meta_keys;
    char **meta_vals;
    int n_meta;
    int *sorted;         /* tensor indices sorted by name, for st_find */
};

static const char *DTYPE_NAMES[ST_DTYPE_COUNT] = {"F32", "F16", "BF16", "I32", "I64"};
static const size_t DTYPE_SIZES[ST_DTYPE_COUNT] = {4, 2, 2, 4, 8};

const char *st_dtype_name(st_dtype t) {
    return (unsigned)t < ST_DTYPE_COUNT ? DTYPE_NAMES[t] : "?";
}
size_t st_dtype_size(st_dtype t) { return (unsigned)t < ST_DTYPE_COUNT ? DTYPE_SIZES[t] : 0; }

void st_shape_str(int ndim, const int64_t *shape, char *buf, size_t n) {
    size_t k = 0;
    k += (size_t)snprintf(buf + k, n > k ? n - k : 0, "[");
    for (int i = 0; i < ndim && k < n; i++)
        k += (size_t)snprintf(buf + k, n - k, i ? ", %lld" : "%lld", (long long)shape[i]);
    if (k < n) snprintf(buf + k, n - k, "]");
}

/* Strict UTF-8 check (no overlongs, no surrogates, <= U+10FFFF). */
static int utf8_valid(const uint8_t *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        int len;
        uint32_t cp;
        if ((c & 0xe0) == 0xc0) len = 2, cp = c & 0x1f;
        else if ((c & 0xf0) == 0xe0) len = 3, cp = c & 0x0f;
        else if ((c & 0xf8) == 0xf0) len = 4, cp = c & 0x07;
        else return 0;
        if (i + (size_t)len > n) return 0;
        for (int j = 1; j < len; j++) {
            if ((s[i + j] & 0xc0) != 0x80) return 0;
            cp = (cp << 6) | (s[i + j] & 0x3f);
        }
        if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
            cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return 0;
        i += (size_t)len;
    }
    return 1;
}

/* A JSON number that is an exact non-negative integer below 2^53. */
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


static int cmp_name_idx(const void *a, const void *b, void *f) {
    const st_file *sf = f;
    return strcmp(sf->tensors[*(const int *)a].name, sf->tensors[*(const int *)b].name);
}

/* Simple insertion/merge sort with a context (qsort_r is a GNU extension). */
static void sort_indices(int *idx, int n, const st_file *f) {
    if (n < 2) return;
    int *tmp = lmx_malloc(sizeof(int) * (size_t)n);
    if (!tmp) { /* fall back to insertion sort */
        for (int i = 1; i < n; i++)
            for (int j = i; j > 0 && cmp_name_idx(&idx[j - 1], &idx[j], (void *)f) > 0; j--) {
                int t = idx[j];
                idx[j] = idx[j - 1];
                idx[j - 1] = t;
            }
        return;
    }
    for (int w = 1; w < n; w *= 2) {
        for (int lo = 0; lo < n; lo += 2 * w) {
            int mid = LMX_MIN(lo + w, n), hi = LMX_MIN(lo + 2 * w, n);
            int i = lo, j = mid, k = lo;
            while (i < mid && j < hi)
                tmp[k++] = cmp_name_idx(&idx[i], &idx[j], (void *)f) <= 0 ? idx[i++] : idx[j++];
            while (i < mid) tmp[k++] = idx[i++];
            while (j < hi) tmp[k++] = idx[j++];
        }
        memcpy(idx, tmp, sizeof(int) * (size_t)n);
    }
    lmx_free(tmp);
}

typedef struct span {
    uint64_t begin, end;
    int idx;
} span;

static int cmp_span(const void *a, const void *b) {
    const span *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

static lmx_status parse(st_file *f) {
    const char *label = f->path;
    if (f->map_size < 8)
        return lmx_err(LMX_ERR_FORMAT, "%s: file is %zu bytes, too short for a safetensors header",
                       label, f->map_size);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | f->map[i];
    if (hlen > ST_MAX_HEADER)
        return lmx_err(LMX_ERR_FORMAT,
                       "%s: header length %llu is over the %u-byte limit (not a safetensors file?)",
                       label, (unsigned long long)hlen, ST_MAX_HEADER);
    if (hlen < 2 || hlen > f->map_size - 8)
        return lmx_err(LMX_ERR_FORMAT, "%s: header length %llu does not fit in a %zu-byte file (truncated?)",
                       label, (unsigned long long)hlen, f->map_size);
    const uint8_t *hdr = f->map + 8;
    if (!utf8_valid(hdr, (size_t)hlen))
        return lmx_err(LMX_ERR_FORMAT, "%s: header is not valid UTF-8", label);
    if (memchr(hdr, 0, (size_t)hlen))
        return lmx_err(LMX_ERR_FORMAT, "%s: header contains a NUL byte", label);
    const uint8_t *data = hdr + hlen;
    uint64_t data_size = f->map_size - 8 - hlen;

    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts((const char *)hdr, (size_t)hlen, &end, 0);
    if (!root) {
        size_t off = end ? (size_t)(end - (const char *)hdr) : 0;
        return lmx_err(LMX_ERR_FORMAT, "%s: header JSON is malformed near byte %zu", label, off);
    }
    /* Only trailing spaces may follow the JSON value (the format pads with spaces). */
    for (const char *p = end; p && p < (const char *)hdr + hlen; p++)
        if (*p != ' ' && *p != '\n' && *p != '\r' && *p != '\t') {
            cJSON_Delete(root);
            return lmx_err(LMX_ERR_FORMAT, "%s: garbage after the header JSON", label);
        }
    lmx_status st = LMX_OK;
    span *spans = NULL;
    if (!cJSON_IsObject(root)) {
        st = lmx_err(LMX_ERR_FORMAT, "%s: header JSON is not an object", label);
        goto done;
    }
    int n_items = cJSON_GetArraySize(root);
    f->tensors = lmx_calloc((size_t)n_items + 1, sizeof(st_tensor));
    f->sorted = lmx_calloc((size_t)n_items + 1, sizeof(int));
    spans = lmx_calloc((size_t)n_items + 1, sizeof(span));
    if (!f->tensors || !f->sorted || !spans) {
        st = lmx_err(LMX_ERR_NOMEM, "%s: out of memory for %d header entries", label, n_items);
        goto done;
    }
    int seen_meta = 0;
    for (cJSON *it = root->child; it; it = it->next) {
        const char *name = it->string;
        if (!name) {
            st = lmx_err(LMX_ERR_FORMAT, "%s: header entry without a name", label);
            goto done;
        }
        if (!strcmp(name, "__metadata__")) {
            if (seen_meta++) {
                st = lmx_err(LMX_ERR_FORMAT, "%s: duplicate __metadata__", label);
                goto done;
            }
            if (!cJSON_IsObject(it)) {
                st = lmx_err(LMX_ERR_FORMAT, "%s: __metadata__ is not an object", label);
                goto done;
            }
            int nm = cJSON_GetArraySize(it);
            f->meta_keys = lmx_calloc((size_t)nm + 1, sizeof(char *));
            f->meta_vals = lmx_calloc((size_t)nm + 1, sizeof(char *));
            if (!f->meta_keys || !f->meta_vals) {
                st = lmx_err(LMX_ERR_NOMEM, "%s: out of memory", label);
                goto done;
            }
            for (cJSON *m = it->child; m; m = m->next) {
                if (!cJSON_IsString(m)) {
                    st = lmx_err(LMX_ERR_FORMAT, "%s: __metadata__ value of '%s' is not a string",
                                 label, m->string ? m->string : "?");
                    goto done;
                }
                f->meta_keys[f->n_meta] = lmx_strdup(m->string);
                f->meta_vals[f->n_meta] = lmx_strdup(m->valuestring);
                if (!f->meta_keys[f->n_meta] || !f->meta_vals[f->n_meta]) {
                    f->n_meta++;
                    st = lmx_err(LMX_ERR_NOMEM, "%s: out of memory", label);
                    goto done;
                }
                f->n_meta++;
            }
            continue;
        }
        int ti = f->n_tensors;
        st_tensor *t = &f->tensors[ti];
        t->name = lmx_strdup(name);
        if (!t->name) {
            st = lmx_err(LMX_ERR_NOMEM, "%s: out of memory", label);
            goto done;
        }
        f->n_tensors++;
        if (!cJSON_IsObject(it)) {
            st = lmx_err(LMX_ERR_FORMAT, "%s: tensor '%s': entry is not an object", label, name);
            goto done;
        }
        cJSON *jd = cJSON_GetObjectItemCaseSensitive(it, "dtype");
        cJSON *js = cJSON_GetObjectItemCaseSensitive(it, "shape");
        cJSON *jo = cJSON_GetObjectItemCaseSensitive(it, "data_offsets");
        if (!cJSON_IsString(jd) || !cJSON_IsArray(js) || !cJSON_IsArray(jo)) {
            st = lmx_err(LMX_ERR_FORMAT, "%s: tensor '%s': needs string 'dtype', array 'shape' and array 'data_offsets'",
                         label, name);
            goto done;
        }
        if (!parse_dtype(jd->valuestring, &t->dtype)) {
            st = lmx_err(LMX_ERR_UNSUPPORTED,
                         "%s: tensor '%s': dtype %s is not supported (F32, F16, BF16, I32, I64 are)",
                         label, name, jd->valuestring);
            goto done;
        }
        int nd = cJSON_GetArraySize(js);
        if (nd > ST_MAX_DIMS) {
            st = lmx_err(LMX_ERR_FORMAT, "%s: tensor '%s': %d dimensions (at most %d)", label, name,
                         nd, ST_MAX_DIMS);
            goto done;
        }
        t->ndim = nd;
        uint64_t numel = 1;
        int d = 0;
        for (cJSON *s = js->child; s; s = s->next, d++) {
            int64_t v;
            if (!json_uint(s, &v)) {
                st = lmx_err(LMX_ERR_FORMAT, "%s: tensor '%s': shape entry %d is not a non-negative integer",
                             label, name, d);
                goto done;
            }
            t->shape[d] = v;
            if (!lmx_mul_u64(numel, (uint64_t)v, &numel) || numel > (uint64_t)INT64_MAX) {
                st = lmx_err(LMX_ERR_FORMAT, "%s: tensor '%s': shape product overflows", label, name);
                goto done;
            }
        }
        t->numel = (int64_t)numel;
        uint64_t nbytes;
        if (!lmx_mul_u64(numel, st_dtype_size(t->dtype), &nbytes)) {
            st = lmx_err(LMX_ERR_FORMAT, "%s: tensor '%s': byte size overflows", label, name);
            goto done;
        }
        int64_t b, e;
        if (cJSON_GetArraySize(jo) != 2 || !json_uint(jo->child, &b) || !json_uint(jo->child->next, &e)) {
            st = lmx_err(LMX_ERR_FORMAT, "%s: tensor '%s': data_offsets must be two non-negative integers",
                         label, name);
            goto done;
        }
        if (e < b || (uint64_t)e > data_size) {
            st = lmx_err(LMX_ERR_FORMAT,
                         "%s: tensor '%s': data_offsets [%lld, %lld] outside the %llu-byte data area (truncated file?)",
                         label, name, (long long)b, (long long)e, (unsigned long long)data_size);
            goto done;
        }
        if ((uint64_t)(e - b) != nbytes) {
            char sh[160];
            st_shape_str(t->ndim, t->shape, sh, sizeof sh);
            st = lmx_err(LMX_ERR_FORMAT,
                         "%s: tensor '%s': %lld bytes stored but %s x %s needs %llu", label, name,
                         (long long)(e - b), st_dtype_name(t->dtype), sh, (unsigned long long)nbytes);
            goto done;
        }
        t->data = data + b;
        t->nbytes = (size_t)nbytes;
        spans[ti] = (span){(uint64_t)b, (uint64_t)e, ti};
    }
    /* Duplicate names (cJSON keeps duplicates as separate items). */
    for (int i = 0; i < f->n_tensors; i++) f->sorted[i] = i;
    sort_indices(f->sorted, f->n_tensors, f);
    for (int i = 1; i < f->n_tensors; i++)
        if (!strcmp(f->tensors[f->sorted[i]].name, f->tensors[f->sorted[i - 1]].name)) {
            st = lmx_err(LMX_ERR_FORMAT, "%s: tensor '%s' appears twice in the header", label,
                         f->tensors[f->sorted[i]].name);
            goto done;
        }
    /* Overlaps: sort by begin; empty tensors never overlap anything. */
    qsort(spans, (size_t)f->n_tensors, sizeof(span), cmp_span);
    uint64_t reach = 0;
    int reach_idx = -1;
    for (int i = 0; i < f->n_tensors; i++) {
        if (spans[i].end == spans[i].begin) continue;
        if (reach_idx >= 0 && spans[i].begin < reach) {
            st = lmx_err(LMX_ERR_FORMAT, "%s: tensors '%s' and '%s' overlap in the data area", label,
                         f->tensors[reach_idx].name, f->tensors[spans[i].idx].name);
            goto done;
        }
        reach = spans[i].end;
        reach_idx = spans[i].idx;
    }
done:
    lmx_free(spans);
    cJSON_Delete(root);
    return st;
}

static lmx_status finish_open(st_file *f, st_file **out) {
    lmx_status st = parse(f);
    if (st != LMX_OK) {
        st_close(f);
        return st;
    }
    *out = f;
    return LMX_OK;
}

lmx_status st_open(st_file **out, const char *path) {
    *out = NULL;
    st_file *f = lmx_calloc(1, sizeof *f);
    if (!f) return lmx_err(LMX_ERR_NOMEM, "%s: out of memory", path);
    f->path = lmx_strdup(path);
    if (!f->path) {
        lmx_free(f);
        return lmx_err(LMX_ERR_NOMEM, "%s: out of memory", path);
    }
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        lmx_status st = lmx_err(LMX_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
        st_close(f);
        return st;
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        st_close(f);
        return lmx_err(LMX_ERR_IO, "%s: not a regular file", path);
    }
    f->map_size = (size_t)sb.st_size;
    if (f->map_size > 0) {
        void *m = mmap(NULL, f->map_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED) {
            lmx_status st = lmx_err(LMX_ERR_IO, "%s: cannot map: %s", path, strerror(errno));
            close(fd);
            st_close(f);
            return st;
        }
        f->map = m;
        f->owns_map = 1;
    }
    close(fd);
    return finish_open(f, out);
}

lmx_status st_open_buffer(st_file **out, const void *buf, size_t n, const char *label) {
    *out = NULL;
    st_file *f = lmx_calloc(1, sizeof *f);
    if (!f) return lmx_err(LMX_ERR_NOMEM, "%s: out of memory", label);
    f->path = lmx_strdup(label ? label : "<buffer>");
    if (!f->path) {
        lmx_free(f);
        return lmx_err(LMX_ERR_NOMEM, "out of memory");
    }
    f->map = buf;
    f->map_size = n;
    return finish_open(f, out);
}

void st_close(st_file *f) {
    if (!f) return;
    if (f->owns_map && f->map) munmap((void *)f->map, f->map_size);
    for (int i = 0; i < f->n_tensors; i++) lmx_free((void *)f->tensors[i].name);
    for (int i = 0; i < f->n_meta; i++) {
        lmx_free(f->meta_keys[i]);
        lmx_free(f->meta_vals[i]);
    }
    lmx_free(f->meta_keys);
    lmx_free(f->meta_vals);
    lmx_free(f->tensors);
    lmx_free(f->sorted);
    lmx_free(f->path);
    lmx_free(f);
}

const char *st_path(const st_file *f) { return f->path; }
int st_count(const st_file *f) { return f->n_tensors; }
const st_tensor *st_at(const st_file *f, int i) {
    return i >= 0 && i < f->n_tensors ? &f->tensors[i] : NULL;
}

const st_tensor *st_find(const st_file *f, const char *name) {
    int lo = 0, hi = f->n_tensors - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        int c = strcmp(f->tensors[f->sorted[mid]].name, name);
        if (c == 0) return &f->tensors[f->sorted[mid]];
        if (c < 0) lo = mid + 1;
        else hi = mid - 1;
    }
    return NULL;
}

int st_meta_count(const st_file *f) { return f->n_meta; }
void st_meta_at(const st_file *f, int i, const char **key, const char **value) {
    *key = f->meta_keys[i];
    *value = f->meta_vals[i];
}
const char *st_meta_get(const st_file *f, const char *key) {
    for (int i = 0; i < f->n_meta; i++)
        if (!strcmp(f->meta_keys[i], key)) return f->meta_vals[i];
    return NULL;
}

lmx_status st_to_f32(const st_tensor *t, float *dst) {
    switch (t->dtype) {
    case ST_F32: memcpy(dst, t->data, t->nbytes); return LMX_OK;
    case ST_F16: lmx_f16_to_f32_n(t->data, dst, (size_t)t->numel); return LMX_OK;
    case ST_BF16: lmx_bf16_to_f32_n(t->data, dst, (size_t)t->numel); return LMX_OK;
    default:
        return lmx_err(LMX_ERR_FORMAT, "tensor '%s': dtype %s where a float tensor is expected",
                       t->name, st_dtype_name(t->dtype));
    }
}

lmx_status st_to_f32_alloc(const st_tensor *t, float **out) {
    *out = NULL;
    float *buf = lmx_alloc_aligned(sizeof(float) * (size_t)(t->numel ? t->numel : 1));
    if (!buf) return lmx_err(LMX_ERR_NOMEM, "tensor '%s': out of memory", t->name);
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
    char want[160], got[160];
    st_shape_str(ndim, shape, want, sizeof want);
    st_shape_str(t->ndim, t->shape, got, sizeof got);
    return lmx_err(LMX_ERR_SHAPE, "%s: expected %s, got %s", t->name, want, got);
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
    cJSON *meta;
};

lmx_status st_writer_create(st_writer **out) {
    *out = lmx_calloc(1, sizeof(st_writer));
    if (!*out) return lmx_err(LMX_ERR_NOMEM, "safetensors writer: out of memory");
    (*out)->meta = cJSON_CreateObject();
    if (!(*out)->meta) {
        lmx_free(*out);
        *out = NULL;
        return lmx_err(LMX_ERR_NOMEM, "safetensors writer: out of memory");
    }
    return LMX_OK;
}

lmx_status st_writer_add(st_writer *w, const char *name, st_dtype dtype, int ndim,
                         const int64_t *shape, const void *data) {
    if (ndim < 0 || ndim > ST_MAX_DIMS || (unsigned)dtype >= ST_DTYPE_COUNT)
        return lmx_err(LMX_ERR_ARG, "safetensors writer: tensor '%s': bad dtype or rank", name);
    if (!strcmp(name, "__metadata__"))
        return lmx_err(LMX_ERR_ARG, "safetensors writer: reserved tensor name '%s'", name);
    for (int i = 0; i < w->n; i++)
        if (!strcmp(w->t[i].name, name))
            return lmx_err(LMX_ERR_ARG, "safetensors writer: tensor '%s' added twice", name);
    uint64_t numel = 1;
    for (int i = 0; i < ndim; i++)
        if (shape[i] < 0 || !lmx_mul_u64(numel, (uint64_t)shape[i], &numel))
            return lmx_err(LMX_ERR_ARG, "safetensors writer: tensor '%s': bad shape", name);
    if (w->n == w->cap) {
        int cap = w->cap ? 2 * w->cap : 16;
        wtensor *nt = lmx_realloc(w->t, sizeof(wtensor) * (size_t)cap);
        if (!nt) return lmx_err(LMX_ERR_NOMEM, "safetensors writer: out of memory");
        w->t = nt;
        w->cap = cap;
    }
    wtensor *t = &w->t[w->n];
    memset(t, 0, sizeof *t);
    t->nbytes = (size_t)numel * st_dtype_size(dtype);
    t->name = lmx_strdup(name);
    t->data = lmx_malloc(t->nbytes);
    if (!t->name || !t->data) {
        lmx_free(t->name);
        lmx_free(t->data);
        return lmx_err(LMX_ERR_NOMEM, "safetensors writer: out of memory for '%s'", name);
    }
    if (t->nbytes) memcpy(t->data, data, t->nbytes);
    t->dtype = dtype;
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++) t->shape[i] = shape[i];
    w->n++;
    return LMX_OK;
}

lmx_status st_writer_meta(st_writer *w, const char *key, const char *value) {
    cJSON_DeleteItemFromObjectCaseSensitive(w->meta, key);
    if (!cJSON_AddStringToObject(w->meta, key, value))
        return lmx_err(LMX_ERR_NOMEM, "safetensors writer: out of memory");
    return LMX_OK;
}

lmx_status st_writer_finish(st_writer *w, const char *path) {
    lmx_status st = LMX_OK;
    cJSON *root = cJSON_CreateObject();
    char *json = NULL;
    uint8_t *buf = NULL;
    if (!root) return lmx_err(LMX_ERR_NOMEM, "%s: out of memory", path);
    if (cJSON_GetArraySize(w->meta) > 0) {
        cJSON *m = cJSON_Duplicate(w->meta, 1);
        if (!m) {
            st = lmx_err(LMX_ERR_NOMEM, "%s: out of memory", path);
            goto done;
        }
        cJSON_AddItemToObject(root, "__metadata__", m);
    }
    uint64_t off = 0;
    for (int i = 0; i < w->n; i++) {
        wtensor *t = &w->t[i];
        cJSON *e = cJSON_CreateObject();
        cJSON *sh = cJSON_CreateArray();
        cJSON *of = cJSON_CreateArray();
        if (!e || !sh || !of) {
            cJSON_Delete(e);
            cJSON_Delete(sh);
            cJSON_Delete(of);
            st = lmx_err(LMX_ERR_NOMEM, "%s: out of memory", path);
            goto done;
        }
        cJSON_AddStringToObject(e, "dtype", st_dtype_name(t->dtype));
        for (int d = 0; d < t->ndim; d++) cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)t->shape[d]));
        cJSON_AddItemToObject(e, "shape", sh);
        cJSON_AddItemToArray(of, cJSON_CreateNumber((double)off));
        cJSON_AddItemToArray(of, cJSON_CreateNumber((double)(off + t->nbytes)));
        cJSON_AddItemToObject(e, "data_offsets", of);
        cJSON_AddItemToObject(root, t->name, e);
        off += t->nbytes;
    }
    json = cJSON_PrintUnformatted(root);
    if (!json) {
        st = lmx_err(LMX_ERR_NOMEM, "%s: out of memory", path);
        goto done;
    }
    size_t jl = strlen(json);
    size_t hl = (jl + 7) & ~(size_t)7; /* pad with spaces to 8 bytes, as the reference does */
    size_t total = 8 + hl + (size_t)off;
    buf = lmx_malloc(total);
    if (!buf) {
        st = lmx_err(LMX_ERR_NOMEM, "%s: out of memory for %zu bytes", path, total);
        goto done;
    }
    for (int i = 0; i < 8; i++) buf[i] = (uint8_t)((uint64_t)hl >> (8 * i));
    memcpy(buf + 8, json, jl);
    memset(buf + 8 + jl, ' ', hl - jl);
    uint8_t *p = buf + 8 + hl;
    for (int i = 0; i < w->n; i++) {
        if (w->t[i].nbytes) memcpy(p, w->t[i].data, w->t[i].nbytes);
        p += w->t[i].nbytes;
    }
    st = lmx_write_file_atomic(path, buf, total);
done:
    lmx_free(buf);
    cJSON_free(json);
    cJSON_Delete(root);
    return st;
}

void st_writer_free(st_writer *w) {
    if (!w) return;
    for (int i = 0; i < w->n; i++) {
        lmx_free(w->t[i].name);
        lmx_free(w->t[i].data);
    }
    lmx_free(w->t);
    cJSON_Delete(w->meta);
    lmx_free(w);
}
