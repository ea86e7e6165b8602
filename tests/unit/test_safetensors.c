/*
 * test_safetensors.c - the safetensors reader and writer on valid input:
 * writer -> reader round trips for every dtype (scalars and zero-size
 * tensors included), metadata, st_find, st_check_shape messages, the exact
 * bytes the reference writer produces, misaligned data, a file written by
 * the reference library (tests/fixtures/io/ref_small.safetensors, from
 * reference/gen_io.py), and the time to open a 100k-tensor header.
 * Hostile input is in tests/fault/test_safetensors_fault.c.
 */
#include <math.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

static char g_path[512];

static const char *tmp_path(const char *name) {
    snprintf(g_path, sizeof g_path, "%s/tests/st_unit_%ld_%s", LMX_BINARY_DIR, (long)getpid(),
             name);
    return g_path;
}

static uint8_t *read_all(const char *path, size_t *n) {
    char *buf = NULL;
    if (lmx_read_file(path, &buf, n, 1 << 24) != LMX_OK) return NULL;
    return (uint8_t *)buf;
}

static void test_roundtrip(void) {
    float f32[6] = {0.5f, -1.25f, 3.0f, 1e-30f, -0.0f, 65504.0f};
    uint16_t f16[5], bf16[3];
    float f16v[5] = {1.0f, -2.0f, 0.5f, 65504.0f, ldexpf(1.0f, -24)};
    float bf16v[3] = {1.5f, -3.25f, ldexpf(1.0f, 100)};
    for (int i = 0; i < 5; i++) f16[i] = lmx_f32_to_f16(f16v[i]);
    for (int i = 0; i < 3; i++) bf16[i] = lmx_f32_to_bf16(bf16v[i]);
    int32_t i32 = -7;
    int64_t i64[4] = {0, -1, (int64_t)1 << 40, -((int64_t)1 << 62)};
    uint16_t h_scalar = lmx_f32_to_f16(2.5f);

    const int64_t s23[] = {2, 3}, s5[] = {5}, s31[] = {3, 1}, s4[] = {4}, s03[] = {0, 3}, s0[] = {0};
    st_writer *w = NULL;
    CHECK_OK(st_writer_create(&w));
    if (!w) return;
    /* Odd-sized F16 first: the writer must still align the F32/I64 data. */
    CHECK_OK(st_writer_add(w, "f16", ST_F16, 1, s5, f16));
    CHECK_OK(st_writer_add(w, "f32", ST_F32, 2, s23, f32));
    CHECK_OK(st_writer_add(w, "bf16", ST_BF16, 2, s31, bf16));
    CHECK_OK(st_writer_add(w, "i32_scalar", ST_I32, 0, NULL, &i32));
    CHECK_OK(st_writer_add(w, "i64", ST_I64, 1, s4, i64));
    CHECK_OK(st_writer_add(w, "empty", ST_F32, 2, s03, NULL));
    CHECK_OK(st_writer_add(w, "f16_scalar", ST_F16, 0, NULL, &h_scalar));
    CHECK_OK(st_writer_add(w, "i64_empty", ST_I64, 1, s0, NULL));
    CHECK_OK(st_writer_add(w, "name \"with\" \\ quotes\n\t\x01 and \xc3\xbcml\xc3\xa4uts", ST_F32, 0,
                           NULL, f32));
    CHECK_OK(st_writer_meta(w, "format", "pt"));
    CHECK_OK(st_writer_meta(w, "utf8", "h\xc3\xa9llo \xe2\x9c\x93 \"q\" \\ \n\x1f"));
    CHECK_OK(st_writer_meta(w, "format", "np")); /* replaces */
    CHECK_OK(st_writer_meta(w, "", "empty key"));

    /* Writer errors are LMX_ERR_ARG and leave the writer usable. */
    CHECK(st_writer_add(w, "f32", ST_F32, 2, s23, f32) == LMX_ERR_ARG, "duplicate name");
    CHECK(strstr(lmx_errmsg(), "'f32' added twice"), "msg: %s", lmx_errmsg());
    CHECK(st_writer_add(w, "__metadata__", ST_F32, 0, NULL, f32) == LMX_ERR_ARG, "reserved");
    const int64_t neg[] = {2, -1};
    CHECK(st_writer_add(w, "neg", ST_F32, 2, neg, f32) == LMX_ERR_ARG, "negative shape");
    CHECK(st_writer_add(w, "rank", ST_F32, 9, s23, f32) == LMX_ERR_ARG, "rank 9");
    CHECK(st_writer_add(w, "bad\xff", ST_F32, 0, NULL, f32) == LMX_ERR_ARG, "not UTF-8");
    CHECK(st_writer_add(w, "dt", (st_dtype)99, 0, NULL, f32) == LMX_ERR_ARG, "bad dtype");
    const int64_t huge[] = {INT64_MAX, 4};
    CHECK(st_writer_add(w, "huge", ST_F32, 2, huge, f32) == LMX_ERR_ARG, "overflow");

    const char *path = tmp_path("roundtrip.safetensors");
    CHECK_OK(st_writer_finish(w, path));
    CHECK_OK(st_writer_finish(w, path)); /* again, over the existing file */
    st_writer_free(w);

    /* Layout: header padded to 8, every tensor aligned. */
    size_t n = 0;
    uint8_t *raw = read_all(path, &n);
    CHECK(raw && n >= 8, "read back");
    if (raw) {
        uint64_t hl = 0;
        for (int i = 7; i >= 0; i--) hl = (hl << 8) | raw[i];
        CHECK(hl % 8 == 0, "header length %llu padded to 8", (unsigned long long)hl);
        CHECK(raw[8] == '{', "header starts with {");
        lmx_free(raw);
    }

    st_file *f = NULL;
    CHECK_OK(st_open(&f, path));
    if (!f) return;
    CHECK(st_count(f) == 9, "count %d", st_count(f));
    const char *order[] = {"f16", "f32", "bf16", "i32_scalar", "i64", "empty", "f16_scalar",
                           "i64_empty"};
    for (int i = 0; i < 8; i++)
        CHECK(!strcmp(st_at(f, i)->name, order[i]), "header order %d: %s", i, st_at(f, i)->name);
    CHECK(st_at(f, 9) == NULL && st_at(f, -1) == NULL, "st_at out of range");
    for (int i = 0; i < st_count(f); i++) {
        const st_tensor *t = st_at(f, i);
        CHECK(st_data_aligned(t), "%s aligned", t->name);
        CHECK(st_find(f, t->name) == t, "st_find %s", t->name);
    }
    CHECK(st_find(f, "nope") == NULL && st_find(f, "") == NULL && st_find(f, "f3") == NULL,
          "absent names");
    CHECK(st_find(f, "name \"with\" \\ quotes\n\t\x01 and \xc3\xbcml\xc3\xa4uts") != NULL,
          "escaped name round trip");

    const st_tensor *t = st_find(f, "f32");
    if (t) {
        CHECK(t->dtype == ST_F32 && t->ndim == 2 && t->shape[0] == 2 && t->shape[1] == 3 &&
                  t->numel == 6 && t->nbytes == 24,
              "f32 header");
        float out[6];
        CHECK_OK(st_to_f32(t, out));
        CHECK(!memcmp(out, f32, sizeof out), "f32 bits");
        CHECK(signbit(out[4]), "-0.0 kept");
    }
    t = st_find(f, "f16");
    if (t) {
        float out[5];
        CHECK_OK(st_to_f32(t, out));
        lmx_cmp_f32("f16 values", out, f16v, 5, 0, 0);
        CHECK(t->nbytes == 10, "f16 nbytes");
    }
    t = st_find(f, "bf16");
    if (t) {
        float *out = NULL;
        CHECK_OK(st_to_f32_alloc(t, &out));
        if (out) lmx_cmp_f32("bf16 values", out, bf16v, 3, 0, 0);
        lmx_free(out);
    }
    t = st_find(f, "i32_scalar");
    if (t) {
        CHECK(t->ndim == 0 && t->numel == 1 && t->nbytes == 4, "scalar header");
        int64_t v = 0;
        CHECK_OK(st_to_i64(t, &v));
        CHECK(v == -7, "i32 scalar %lld", (long long)v);
        float fv;
        CHECK(st_to_f32(t, &fv) == LMX_ERR_FORMAT, "int tensor as float");
        CHECK(strstr(lmx_errmsg(), "i32_scalar") && strstr(lmx_errmsg(), "I32"), "msg: %s",
              lmx_errmsg());
    }
    t = st_find(f, "i64");
    if (t) {
        int64_t v[4];
        CHECK_OK(st_to_i64(t, v));
        lmx_cmp_i64("i64 values", v, i64, 4);
        float fv[4];
        CHECK(st_to_f32(t, fv) == LMX_ERR_FORMAT, "i64 as float");
    }
    t = st_find(f, "f16_scalar");
    if (t) {
        float v = 0;
        CHECK_OK(st_to_f32(t, &v));
        CHECK(v == 2.5f && t->ndim == 0, "f16 scalar %g", v);
        int64_t iv;
        CHECK(st_to_i64(t, &iv) == LMX_ERR_FORMAT, "float tensor as int");
    }
    t = st_find(f, "empty");
    if (t) {
        CHECK(t->numel == 0 && t->nbytes == 0 && t->ndim == 2 && t->shape[1] == 3, "empty");
        float *out = NULL;
        CHECK_OK(st_to_f32_alloc(t, &out));
        lmx_free(out);
    }
    t = st_find(f, "i64_empty");
    if (t) CHECK(t->numel == 0 && t->nbytes == 0, "i64 empty");

    /* Metadata: file order, replacement, lookups. */
    CHECK(st_meta_count(f) == 3, "meta count %d", st_meta_count(f));
    CHECK(st_meta_get(f, "format") && !strcmp(st_meta_get(f, "format"), "np"), "replaced");
    CHECK(st_meta_get(f, "utf8") &&
              !strcmp(st_meta_get(f, "utf8"), "h\xc3\xa9llo \xe2\x9c\x93 \"q\" \\ \n\x1f"),
          "utf8 metadata");
    CHECK(st_meta_get(f, "") && !strcmp(st_meta_get(f, ""), "empty key"), "empty key");
    CHECK(st_meta_get(f, "missing") == NULL, "missing key");
    const char *k, *v;
    st_meta_at(f, 0, &k, &v);
    CHECK(k && !strcmp(k, "format"), "first key %s", k ? k : "(null)");
    st_meta_at(f, 3, &k, &v);
    CHECK(k == NULL && v == NULL, "st_meta_at out of range");
    CHECK(st_file_size(f) > st_header_size(f) + 8, "sizes");
    CHECK(!strcmp(st_path(f), path), "path");
    st_close(f);
    st_close(NULL);
    unlink(path);
}

/* The reference writer's own test vectors (safetensors tensor.rs). */
static void test_reference_bytes(void) {
    static const uint8_t one[] = {
        64,  0,   0,   0,   0,   0,   0,   0,   123, 34,  97,  116, 116, 110, 46,  48,  34,  58,
        123, 34,  100, 116, 121, 112, 101, 34,  58,  34,  70,  51,  50,  34,  44,  34,  115, 104,
        97,  112, 101, 34,  58,  91,  49,  44,  50,  44,  51,  93,  44,  34,  100, 97,  116, 97,
        95,  111, 102, 102, 115, 101, 116, 115, 34,  58,  91,  48,  44,  50,  52,  93,  125, 125,
        0,   0,   0,   0,   0,   0,   128, 63,  0,   0,   0,   64,  0,   0,   64,  64,  0,   0,
        128, 64,  0,   0,   160, 64};
    static const uint8_t empty[] = {8, 0, 0, 0, 0, 0, 0, 0, 123, 125, 32, 32, 32, 32, 32, 32};
    static const uint8_t meta[] = {40,  0,   0,   0,   0,   0,   0,   0,   123, 34,  95,  95,
                                   109, 101, 116, 97,  100, 97,  116, 97,  95,  95,  34,  58,
                                   123, 34,  102, 114, 97,  109, 101, 119, 111, 114, 107, 34,
                                   58,  34,  112, 116, 34,  125, 125, 32,  32,  32,  32,  32};
    const float vals[6] = {0, 1, 2, 3, 4, 5};
    const int64_t shape[] = {1, 2, 3};
    const char *path = tmp_path("ref.safetensors");
    struct {
        const uint8_t *bytes;
        size_t n;
        int kind;
    } cases[] = {{one, sizeof one, 0}, {empty, sizeof empty, 1}, {meta, sizeof meta, 2}};
    for (int c = 0; c < 3; c++) {
        st_writer *w = NULL;
        CHECK_OK(st_writer_create(&w));
        if (!w) return;
        if (cases[c].kind == 0) CHECK_OK(st_writer_add(w, "attn.0", ST_F32, 3, shape, vals));
        if (cases[c].kind == 2) CHECK_OK(st_writer_meta(w, "framework", "pt"));
        CHECK_OK(st_writer_finish(w, path));
        st_writer_free(w);
        size_t n = 0;
        uint8_t *raw = read_all(path, &n);
        CHECK(raw && n == cases[c].n && !memcmp(raw, cases[c].bytes, n),
              "case %d: bytes differ from the reference writer (%zu vs %zu bytes)", c, n,
              cases[c].n);
        lmx_free(raw);
        /* ... and the reader takes the reference bytes. */
        st_file *f = NULL;
        CHECK_OK(st_open_buffer(&f, cases[c].bytes, cases[c].n, "ref"));
        if (f) CHECK(st_count(f) == (cases[c].kind == 0), "count");
        st_close(f);
    }
    unlink(path);
}

/* Put header `json` (unpadded) and `data` at offset `shift` of buf. */
static size_t make_file(uint8_t *buf, size_t shift, const char *json, const void *data,
                        size_t n) {
    size_t hl = strlen(json);
    for (int i = 0; i < 8; i++) buf[shift + (size_t)i] = (uint8_t)((uint64_t)hl >> (8 * i));
    memcpy(buf + shift + 8, json, hl);
    memcpy(buf + shift + 8 + hl, data, n);
    return 8 + hl + n;
}

/* Files from writers that do not pad the header: data at odd offsets. */
static void test_misaligned(void) {
    _Alignas(64) uint8_t buf[512];
    uint8_t data[4 * 3 + 2 * 2 + 8];
    float fv[3] = {1.5f, -2.0f, 3.25f};
    uint16_t hv[2] = {lmx_f32_to_f16(0.5f), lmx_f32_to_f16(-8.0f)};
    int64_t iv = -123456789012345;
    memcpy(data, hv, 4);          /* F16 at data offset 0 */
    memcpy(data + 4, fv, 12);     /* F32 at data offset 4 */
    memcpy(data + 16, &iv, 8);    /* I64 at data offset 16 */
    /* 8 + strlen(json) is odd, and the buffer is shifted by 0..3 bytes. */
    const char *json = "{\"h\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,4]},"
                       "\"f\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[4,16]},"
                       "\"i\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[16,24]}}";
    int saw_misaligned = 0;
    for (size_t shift = 0; shift < 4; shift++) {
        size_t n = make_file(buf, shift, json, data, sizeof data);
        st_file *f = NULL;
        CHECK_OK(st_open_buffer(&f, buf + shift, n, "misaligned"));
        if (!f) continue;
        for (int i = 0; i < st_count(f); i++) saw_misaligned |= !st_data_aligned(st_at(f, i));
        float out[3];
        CHECK_OK(st_to_f32(st_find(f, "f"), out));
        lmx_cmp_f32("misaligned f32", out, fv, 3, 0, 0);
        float ho[2], hr[2] = {0.5f, -8.0f};
        CHECK_OK(st_to_f32(st_find(f, "h"), ho));
        lmx_cmp_f32("misaligned f16", ho, hr, 2, 0, 0);
        int64_t io = 0;
        CHECK_OK(st_to_i64(st_find(f, "i"), &io));
        CHECK(io == iv, "misaligned i64");
        st_close(f);
    }
    CHECK(saw_misaligned, "the test did produce misaligned tensors");

    /* A long misaligned F16 tensor goes through the bounce buffer in chunks. */
    enum { N = 5000 };
    uint8_t *big = lmx_malloc(64 + 2 * N + 256);
    float *ref = lmx_malloc(sizeof(float) * N), *out = lmx_malloc(sizeof(float) * N);
    if (big && ref && out) {
        char hj[128];
        snprintf(hj, sizeof hj, "{\"x\":{\"dtype\":\"BF16\",\"shape\":[%d],\"data_offsets\":[0,%d]}}",
                 N, 2 * N);
        uint16_t *hb = lmx_malloc(2 * N);
        if (hb) {
            for (int i = 0; i < N; i++) {
                hb[i] = lmx_f32_to_bf16((float)(i - N / 2) * 0.25f);
                ref[i] = lmx_bf16_to_f32(hb[i]);
            }
            size_t n = make_file(big, 1, hj, hb, 2 * N);
            st_file *f = NULL;
            CHECK_OK(st_open_buffer(&f, big + 1, n, "big"));
            if (f) {
                CHECK_OK(st_to_f32(st_find(f, "x"), out));
                lmx_cmp_f32("misaligned bf16 x5000", out, ref, N, 0, 0);
            }
            st_close(f);
            lmx_free(hb);
        }
    }
    lmx_free(big);
    lmx_free(ref);
    lmx_free(out);
}

static void test_check_shape(void) {
    const int64_t shape[] = {2, 3};
    const float v[6] = {0};
    st_writer *w = NULL;
    CHECK_OK(st_writer_create(&w));
    if (!w) return;
    CHECK_OK(st_writer_add(w, "unet.conv_in.weight", ST_F32, 2, shape, v));
    const char *path = tmp_path("shape.safetensors");
    CHECK_OK(st_writer_finish(w, path));
    st_writer_free(w);
    st_file *f = NULL;
    CHECK_OK(st_open(&f, path));
    if (f) {
        const st_tensor *t = st_find(f, "unet.conv_in.weight");
        CHECK_OK(st_check_shape(t, 2, shape));
        const int64_t want[] = {320, 4, 3, 3};
        CHECK(st_check_shape(t, 4, want) == LMX_ERR_SHAPE, "mismatch");
        CHECK(!strcmp(lmx_errmsg(), "unet.conv_in.weight: expected [320, 4, 3, 3], got [2, 3]"),
              "msg: %s", lmx_errmsg());
        const int64_t want2[] = {2, 4};
        CHECK(st_check_shape(t, 2, want2) == LMX_ERR_SHAPE, "same rank, other dim");
        CHECK(st_check_shape(t, 0, NULL) == LMX_ERR_SHAPE, "scalar expected");
        CHECK(strstr(lmx_errmsg(), "expected [], got [2, 3]"), "msg: %s", lmx_errmsg());
    }
    st_close(f);
    unlink(path);

    char small[8];
    const int64_t s[] = {123456, 789};
    st_shape_str(2, s, small, sizeof small);
    CHECK(strlen(small) < sizeof small, "truncated safely: '%s'", small);
    char full[64];
    st_shape_str(2, s, full, sizeof full);
    CHECK(!strcmp(full, "[123456, 789]"), "'%s'", full);
    st_shape_str(0, s, full, sizeof full);
    CHECK(!strcmp(full, "[]"), "'%s'", full);
}

/* A file written by safetensors.torch (reference/gen_io.py). */
static void test_reference_file(void) {
    st_file *f = lmx_golden_open(lmx_src_path("tests/fixtures/io/ref_small.safetensors"));
    if (!f) return;
    CHECK(st_count(f) == 6, "count %d", st_count(f));
    float *x = NULL;
    const st_tensor *t = st_find(f, "f32");
    if (t && st_to_f32_alloc(t, &x) == LMX_OK) {
        float r[6];
        for (int i = 0; i < 6; i++) r[i] = (float)i / 4 - 0.5f;
        lmx_cmp_f32("ref f32", x, r, 6, 0, 0);
        lmx_free(x);
    }
    t = st_find(f, "f16");
    float h[5], hr[5] = {1.0f, -2.0f, 0.5f, 65504.0f, ldexpf(1.0f, -24)};
    if (t && st_to_f32(t, h) == LMX_OK) lmx_cmp_f32("ref f16", h, hr, 5, 0, 0);
    t = st_find(f, "bf16");
    float b[3], br[3] = {1.5f, -3.25f, ldexpf(1.0f, 100)};
    if (t && st_to_f32(t, b) == LMX_OK) lmx_cmp_f32("ref bf16", b, br, 3, 0, 0);
    CHECK(t && t->ndim == 2 && t->shape[0] == 3 && t->shape[1] == 1, "bf16 shape");
    t = st_find(f, "i32");
    int64_t iv = 0;
    CHECK(t && t->ndim == 0 && st_to_i64(t, &iv) == LMX_OK && iv == -7, "ref i32 scalar");
    t = st_find(f, "i64");
    int64_t lv[4], lr[4] = {0, -1, (int64_t)1 << 40, -((int64_t)1 << 62)};
    if (t && st_to_i64(t, lv) == LMX_OK) lmx_cmp_i64("ref i64", lv, lr, 4);
    t = st_find(f, "empty");
    CHECK(t && t->numel == 0 && t->ndim == 2, "ref empty");
    CHECK(st_meta_get(f, "note") && !strcmp(st_meta_get(f, "note"), "h\xc3\xa9llo \xe2\x9c\x93"),
          "ref utf8 metadata");
    CHECK(st_meta_get(f, "command") != NULL, "golden metadata");
    for (int i = 0; i < st_count(f); i++) CHECK(st_data_aligned(st_at(f, i)), "ref aligned");
    st_close(f);
}

/* st_drop_pages / st_drop_range release resident pages of converted
 * weights: the data must stay readable (the kernel re-reads the file), and
 * ranges outside the mapping or buffer-backed files are left alone. */
static void test_drop_pages(void) {
    char path[512];
    snprintf(path, sizeof path, "%s/tests/drop_pages.safetensors", LMX_BINARY_DIR);
    const int64_t n = 3 * 65536 + 7; /* several pages, an odd tail */
    float *a = lmx_test_randn(n, 11, 1.0f), *b = lmx_test_randn(n, 12, 1.0f);
    st_writer *w = NULL;
    CHECK_OK(st_writer_create(&w));
    CHECK_OK(st_writer_add(w, "a", ST_F32, 1, &n, a));
    CHECK_OK(st_writer_add(w, "b", ST_F32, 1, &n, b));
    CHECK_OK(st_writer_finish(w, path));
    st_writer_free(w);
    st_file *f = NULL;
    CHECK_OK(st_open(&f, path));
    float *x = lmx_test_floats(n);
    if (f) {
        const st_tensor *ta = st_find(f, "a"), *tb = st_find(f, "b");
        CHECK_OK(st_to_f32(ta, x));
        st_drop_range(f, ta->data, ta->nbytes);
        st_drop_range(f, a, sizeof(float) * (size_t)n); /* not in the mapping: no-op */
        CHECK_OK(st_to_f32(ta, x));
        lmx_cmp_f32("a after st_drop_range", x, a, n, 0, 0);
        st_drop_pages(f);
        CHECK_OK(st_to_f32(tb, x));
        lmx_cmp_f32("b after st_drop_pages", x, b, n, 0, 0);
        st_close(f);
    }
    /* A buffer-backed file is not ours to drop. */
    char *buf = NULL;
    size_t len = 0;
    CHECK_OK(lmx_read_file(path, &buf, &len, 1u << 24));
    st_file *fb = NULL;
    if (buf) CHECK_OK(st_open_buffer(&fb, buf, len, "buffer"));
    if (fb) {
        st_drop_pages(fb);
        CHECK_OK(st_to_f32(st_find(fb, "a"), x));
        lmx_cmp_f32("buffer after st_drop_pages", x, a, n, 0, 0);
        st_close(fb);
    }
    lmx_free(buf);
    lmx_free(x);
    lmx_free(a);
    lmx_free(b);
    remove(path);
}

/* Lenient on what is harmless: 2.0 as a shape entry, extra keys in an
 * entry, whitespace around the JSON; and, with ST_ALLOW_GAPS only (refused
 * by default since the reference reader refuses them), holes and trailing
 * bytes. */
static void test_lenient(void) {
    uint8_t buf[256];
    uint8_t data[40] = {0};
    const char *json = " {\"a\":{\"dtype\":\"F32\",\"shape\":[2.0],\"data_offsets\":[8,16],"
                       "\"extra\":{\"x\":[1,2,{}]}},\"b\":{\"dtype\":\"F16\",\"shape\":[1e1],"
                       "\"data_offsets\":[16,36]}}\n\t ";
    size_t n = make_file(buf, 0, json, data, sizeof data);
    st_file *f = NULL;
    CHECK_OK(st_open_buffer_flags(&f, buf, n, "lenient", ST_ALLOW_GAPS));
    if (f) {
        CHECK(st_find(f, "a") && st_find(f, "a")->shape[0] == 2, "2.0 read as 2");
        CHECK(st_find(f, "b") && st_find(f, "b")->numel == 10, "1e1 read as 10");
    }
    st_close(f);
}

/* A header of 100k tensors validates with O(n log n) comparisons. */
static void test_many_tensors(void) {
    enum { N = 100000 };
    size_t cap = (size_t)N * 96 + 64;
    char *json = lmx_malloc(cap);
    uint8_t *file = lmx_malloc(cap + 8 + 4 * (size_t)N);
    if (!json || !file) {
        CHECK(0, "out of memory");
        goto done;
    }
    size_t k = 0;
    k += (size_t)snprintf(json + k, cap - k, "{");
    for (int i = 0; i < N; i++) {
        /* Names in reverse order so the sort does real work. */
        k += (size_t)snprintf(json + k, cap - k,
                              "%s\"model.layer.%06d.weight\":{\"dtype\":\"F32\",\"shape\":[1],"
                              "\"data_offsets\":[%d,%d]}",
                              i ? "," : "", N - 1 - i, 4 * i, 4 * i + 4);
    }
    k += (size_t)snprintf(json + k, cap - k, "}");
    memset(file + 8 + k, 0, 4 * (size_t)N);
    size_t n = make_file(file, 0, json, file + 8 + k, 0) + 4 * (size_t)N;
    double t0 = lmx_now();
    st_file *f = NULL;
    CHECK_OK(st_open_buffer(&f, file, n, "many"));
    double t1 = lmx_now();
    int found = 0;
    if (f) {
        char name[64];
        for (int i = 0; i < N; i++) {
            snprintf(name, sizeof name, "model.layer.%06d.weight", i);
            found += st_find(f, name) != NULL;
        }
    }
    double t2 = lmx_now();
    CHECK(found == N, "found %d of %d", found, N);
    printf("100k-tensor header (%.1f MB): open %.3f s, 100k st_find %.3f s\n", (double)k / 1e6,
           t1 - t0, t2 - t1);
    /* The work, not the clock: the name sort, the duplicate check and the
     * offset sort make at most n log2 n comparisons each (glibc's merge
     * sort needs fewer; a quadratic check would need ~5e9). */
    uint64_t cmp = f ? st_open_compares(f) : 0, bound = 0;
    for (uint64_t m = 1; m < N; m *= 2) bound += 2 * (uint64_t)N;
    bound += N;
    printf("100k-tensor header: %llu comparisons (bound %llu)\n", (unsigned long long)cmp, (unsigned long long)bound);
    CHECK(cmp >= (uint64_t)N - 1 && cmp <= bound, "open made %llu comparisons for %d tensors (at most %llu)",
          (unsigned long long)cmp, N, (unsigned long long)bound);
    st_close(f);
done:
    lmx_free(json);
    lmx_free(file);
}

int main(void) {
    test_drop_pages();
    test_roundtrip();
    test_reference_bytes();
    test_misaligned();
    test_check_shape();
    test_reference_file();
    test_lenient();
    test_many_tensors();
    return lmx_test_finish();
}
