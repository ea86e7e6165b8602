/*
 * test_safetensors_fault.c - the safetensors reader on hostile input, all
 * made at test time: truncation at every byte of a valid file, bad header
 * lengths, malformed or hostile JSON, bad offsets, shapes and dtypes, and an
 * allocation-failure sweep over open, the writer and conversion. Every case
 * must give the expected lmx_status and a one-line message naming the file
 * (and the tensor where there is one), never a crash. Each hostile buffer
 * is an exactly-sized heap block so ASan sees any read past its end.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

static char g_dir[512];

static const char *tmp_path(const char *name) {
    static char buf[4][640];
    static int k = 0;
    k = (k + 1) & 3;
    snprintf(buf[k], sizeof buf[k], "%s/%s", g_dir, name);
    return buf[k];
}

/* Open bytes[0..n) from an exact-size copy; check status and message. */
static void expect_bytes(const char *label, const uint8_t *bytes, size_t n, lmx_status want,
                         const char *needle1, const char *needle2) {
    uint8_t *copy = lmx_malloc(n ? n : 1);
    if (!copy) return;
    if (n) memcpy(copy, bytes, n);
    st_file *f = (st_file *)&f; /* must be reset to NULL */
    lmx_err_clear();
    lmx_status st = st_open_buffer(&f, copy, n, label);
    const char *msg = lmx_errmsg();
    CHECK(st == want, "%s: got %s, want %s (%s)", label, lmx_status_name(st),
          lmx_status_name(want), msg);
    if (want != LMX_OK) {
        CHECK(f == NULL, "%s: *out not NULL on error", label);
        CHECK(strstr(msg, label) != NULL, "%s: message does not name the file: %s", label, msg);
        CHECK(strchr(msg, '\n') == NULL, "%s: message is not one line: %s", label, msg);
        if (needle1) CHECK(strstr(msg, needle1), "%s: '%s' not in: %s", label, needle1, msg);
        if (needle2) CHECK(strstr(msg, needle2), "%s: '%s' not in: %s", label, needle2, msg);
        if (lmx_test_verbose()) printf("  %-28s %s\n", label, msg);
    }
    st_close(want == LMX_OK ? f : NULL);
    lmx_free(copy);
}

/* A file whose header is `json` (length = strlen) followed by `ndata` zero
 * bytes of data. */
static void expect_json(const char *label, const char *json, size_t ndata, lmx_status want,
                        const char *needle1, const char *needle2) {
    size_t hl = strlen(json), n = 8 + hl + ndata;
    uint8_t *buf = lmx_calloc(1, n);
    if (!buf) return;
    for (int i = 0; i < 8; i++) buf[i] = (uint8_t)((uint64_t)hl >> (8 * i));
    memcpy(buf + 8, json, hl);
    expect_bytes(label, buf, n, want, needle1, needle2);
    lmx_free(buf);
}

#define T1 "\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}"

static void test_header_length(void) {
    uint8_t b[32] = {0};
    expect_bytes("len_empty", b, 0, LMX_ERR_FORMAT, "too short", NULL);
    expect_bytes("len_7bytes", b, 7, LMX_ERR_FORMAT, "too short", NULL);
    expect_bytes("len_zero", b, 16, LMX_ERR_FORMAT, "header length 0", NULL);
    b[0] = 1;
    b[8] = '{';
    expect_bytes("len_one", b, 16, LMX_ERR_FORMAT, "too small", NULL);
    memset(b, 0xff, 8);
    expect_bytes("len_2^64-1", b, 32, LMX_ERR_FORMAT, "18446744073709551615", "limit");
    memset(b, 0, 8);
    b[5] = 1; /* 2^40 */
    expect_bytes("len_huge", b, 32, LMX_ERR_FORMAT, "limit", NULL);
    memset(b, 0, 8);
    b[0] = 0x01, b[1] = 0x00, b[2] = 0x40, b[3] = 0x06; /* 100 MiB + 1 */
    expect_bytes("len_over_cap", b, 32, LMX_ERR_FORMAT, "limit", NULL);
    memset(b, 0, sizeof b);
    b[0] = 25; /* 24 bytes follow */
    memcpy(b + 8, "{}", 2);
    expect_bytes("len_past_end", b, 32, LMX_ERR_FORMAT, "past the end", NULL);
    b[0] = 24;
    memset(b + 10, ' ', 22);
    expect_bytes("len_exact_padded", b, 32, LMX_OK, NULL, NULL);
}

static void test_json(void) {
    expect_json("json_truncated", "{\"t\":", 0, LMX_ERR_FORMAT, "malformed", NULL);
    expect_json("json_no_colon", "{\"t\" 1}", 0, LMX_ERR_FORMAT, "malformed", NULL);
    expect_json("json_trailing_comma", "{" T1 ",}", 8, LMX_ERR_FORMAT, "malformed", NULL);
    expect_json("json_single_quotes", "{'t':1}", 0, LMX_ERR_FORMAT, "malformed", NULL);
    expect_json("json_garbage_after", "{}x", 0, LMX_ERR_FORMAT, "after the header JSON", NULL);
    expect_json("json_two_values", "{} {}", 0, LMX_ERR_FORMAT, "after the header JSON", NULL);
    expect_json("json_array_root", "[1,2]", 0, LMX_ERR_FORMAT, "not an object", NULL);
    expect_json("json_string_root", "\"ab\"", 0, LMX_ERR_FORMAT, "not an object", NULL);
    expect_json("json_number_root", "12", 0, LMX_ERR_FORMAT, "not an object", NULL);
    expect_json("json_null_root", "null", 0, LMX_ERR_FORMAT, "not an object", NULL);
    expect_json("json_spaces_only", "        ", 0, LMX_ERR_FORMAT, "malformed", NULL);
    expect_json("json_unterminated_str", "{\"t", 0, LMX_ERR_FORMAT, "malformed", NULL);
    expect_json("json_backslash_end", "{\"t\\", 0, LMX_ERR_FORMAT, "malformed", NULL);
    expect_json("json_bad_escape", "{\"t\\q\":1}", 0, LMX_ERR_FORMAT, "malformed", NULL);
    expect_json("json_lone_surrogate", "{\"\\ud800\":1}", 0, LMX_ERR_FORMAT, "malformed", NULL);
    expect_json("json_short_unicode", "{\"\\u12\":1}", 0, LMX_ERR_FORMAT, "malformed", NULL);
    expect_json("json_empty_ok", "{}", 0, LMX_OK, NULL, NULL);

    /* Deep nesting: refused by the pre-scan before cJSON recurses. */
    enum { DEEP = 100000 };
    char *deep = lmx_malloc(2 * DEEP + 64);
    if (deep) {
        size_t k = 0;
        k += (size_t)sprintf(deep, "{\"t\":");
        for (int i = 0; i < DEEP; i++) deep[k++] = '[';
        for (int i = 0; i < DEEP; i++) deep[k++] = ']';
        deep[k++] = '}';
        deep[k] = 0;
        expect_json("json_deep_100000", deep, 0, LMX_ERR_FORMAT, "nested too deeply", NULL);
        k = (size_t)sprintf(deep, "{\"t\":");
        for (int i = 0; i < 64; i++) deep[k++] = '{', deep[k++] = '"', deep[k++] = 'a',
                                     deep[k++] = '"', deep[k++] = ':';
        deep[k++] = '1';
        for (int i = 0; i < 64; i++) deep[k++] = '}';
        deep[k++] = '}';
        deep[k] = 0;
        expect_json("json_deep_65", deep, 0, LMX_ERR_FORMAT, "nested too deeply", NULL);
        /* Brackets inside strings do not count. */
        k = (size_t)sprintf(deep, "{\"__metadata__\":{\"k\":\"");
        for (int i = 0; i < 1000; i++) deep[k++] = '[';
        k += (size_t)sprintf(deep + k, "\\\"{{\"}}");
        expect_json("json_brackets_in_string", deep, 0, LMX_OK, NULL, NULL);
        lmx_free(deep);
    }

    /* Bytes: NUL, invalid UTF-8, escaped NUL. */
    static const struct {
        const char *label;
        const char *bytes;
        size_t n;
        const char *needle;
    } raw[] = {
        {"hdr_nul", "{\"a\0b\":1}", 9, "NUL byte"},
        {"hdr_nul_after_escape", "{\"a\\\0\":1}", 9, "NUL byte"},
        {"hdr_escaped_nul", "{\"a\\u0000b\":1}", 14, "\\u0000"},
        {"hdr_utf8_ff", "{\"a\xff\":1}", 8, "UTF-8"},
        {"hdr_utf8_overlong", "{\"a\xc0\x80\":1}", 9, "UTF-8"},
        {"hdr_utf8_surrogate", "{\"a\xed\xa0\x80\":1}", 10, "UTF-8"},
        {"hdr_utf8_cut", "{\"a\xe2\x82\":1}", 9, "UTF-8"},
        {"hdr_utf8_too_big", "{\"a\xf4\x90\x80\x80\":1}", 11, "UTF-8"},
        {"hdr_utf8_in_padding", "{}    \xff ", 8, "UTF-8"},
    };
    for (size_t i = 0; i < LMX_ARRAY_LEN(raw); i++) {
        uint8_t buf[64] = {0};
        buf[0] = (uint8_t)raw[i].n;
        memcpy(buf + 8, raw[i].bytes, raw[i].n);
        expect_bytes(raw[i].label, buf, 8 + raw[i].n, LMX_ERR_FORMAT, raw[i].needle, NULL);
    }
}

static void test_entries(void) {
    expect_json("dup_name", "{" T1 "," T1 "}", 8, LMX_ERR_FORMAT, "'t' appears twice", NULL);
    expect_json("dup_name_other_offsets",
                "{\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                "\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
                8, LMX_ERR_FORMAT, "'t' appears twice", NULL);
    expect_json("dup_metadata", "{\"__metadata__\":{},\"__metadata__\":{}}", 0, LMX_ERR_FORMAT,
                "__metadata__ appears twice", NULL);
    expect_json("dup_metadata_key", "{\"__metadata__\":{\"k\":\"a\",\"k\":\"b\"}}", 0,
                LMX_ERR_FORMAT, "key 'k' appears twice", NULL);
    expect_json("meta_not_object", "{\"__metadata__\":[\"a\"]}", 0, LMX_ERR_FORMAT,
                "__metadata__ is not an object", NULL);
    expect_json("meta_number", "{\"__metadata__\":{\"k\":1}}", 0, LMX_ERR_FORMAT,
                "'k' is not a string", NULL);
    expect_json("meta_null", "{\"__metadata__\":{\"k\":null}}", 0, LMX_ERR_FORMAT,
                "'k' is not a string", NULL);
    expect_json("meta_object", "{\"__metadata__\":{\"k\":{\"x\":\"y\"}}}", 0, LMX_ERR_FORMAT,
                "'k' is not a string", NULL);
    expect_json("meta_ok", "{\"__metadata__\":{\"k\":\"v\"}," T1 "}", 8, LMX_OK, NULL, NULL);
    expect_json("entry_number", "{\"t\":5}", 0, LMX_ERR_FORMAT, "'t'", "not an object");
    expect_json("entry_missing_dtype", "{\"t\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
                LMX_ERR_FORMAT, "'t'", "no 'dtype'");
    expect_json("entry_missing_shape", "{\"t\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4,
                LMX_ERR_FORMAT, "'t'", "no 'shape'");
    expect_json("entry_missing_offsets", "{\"t\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4,
                LMX_ERR_FORMAT, "'t'", "data_offsets");
    expect_json("entry_dtype_number",
                "{\"t\":{\"dtype\":4,\"shape\":[1],\"data_offsets\":[0,4]}}", 4, LMX_ERR_FORMAT,
                "'t'", "'dtype' is not a string");
    expect_json("entry_shape_object",
                "{\"t\":{\"dtype\":\"F32\",\"shape\":{},\"data_offsets\":[0,4]}}", 4,
                LMX_ERR_FORMAT, "'t'", "'shape' is not an array");
    /* A hostile name stays on one line and is cut short. */
    expect_json("evil_name", "{\"evil\\nname\\r\\u001b[2J\":{\"dtype\":\"U8\",\"shape\":[1],"
                             "\"data_offsets\":[0,1]}}",
                1, LMX_ERR_UNSUPPORTED, "evil\\x0aname\\x0d\\x1b[2J", "U8");
    char longname[2048];
    snprintf(longname, sizeof longname, "{\"%0900d\":{\"dtype\":\"XX\",\"shape\":[],"
                                        "\"data_offsets\":[0,0]}}", 7);
    expect_json("long_name", longname, 0, LMX_ERR_FORMAT, "...", "unknown dtype");
    CHECK(strlen(lmx_errmsg()) < 400, "long name cut: %zu chars", strlen(lmx_errmsg()));
}

static void test_dtypes(void) {
    static const char *unsupported[] = {"F64", "U8", "BOOL", "F8_E4M3", "F8_E5M2", "I8",
                                        "I16", "U16", "U32", "U64"};
    for (size_t i = 0; i < LMX_ARRAY_LEN(unsupported); i++) {
        char json[256], label[64];
        snprintf(json, sizeof json,
                 "{\"w.%s\":{\"dtype\":\"%s\",\"shape\":[1],\"data_offsets\":[0,8]}}",
                 unsupported[i], unsupported[i]);
        snprintf(label, sizeof label, "dtype_%s", unsupported[i]);
        char name[64];
        snprintf(name, sizeof name, "'w.%s'", unsupported[i]);
        expect_json(label, json, 8, LMX_ERR_UNSUPPORTED, name, "not supported");
    }
    expect_json("dtype_unknown", "{\"t\":{\"dtype\":\"XYZ\",\"shape\":[1],\"data_offsets\":[0,4]}}",
                4, LMX_ERR_FORMAT, "'t'", "unknown dtype 'XYZ'");
    expect_json("dtype_lowercase",
                "{\"t\":{\"dtype\":\"f32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
                LMX_ERR_FORMAT, "'t'", "unknown dtype");
    expect_json("dtype_empty", "{\"t\":{\"dtype\":\"\",\"shape\":[1],\"data_offsets\":[0,4]}}",
                4, LMX_ERR_FORMAT, "'t'", "unknown dtype");
}

static void test_shapes(void) {
#define SHAPE(lbl, shape, ndata, end, want, needle)                                              \
    expect_json(lbl, "{\"t\":{\"dtype\":\"F32\",\"shape\":" shape ",\"data_offsets\":[0," end "]}}", \
                ndata, want, "'t'", needle)
    SHAPE("shape_negative", "[-1]", 4, "4", LMX_ERR_FORMAT, "not a non-negative integer");
    SHAPE("shape_fraction", "[1.5]", 8, "6", LMX_ERR_FORMAT, "not a non-negative integer");
    SHAPE("shape_string", "[\"2\"]", 8, "8", LMX_ERR_FORMAT, "not a non-negative integer");
    SHAPE("shape_null", "[null]", 8, "8", LMX_ERR_FORMAT, "not a non-negative integer");
    SHAPE("shape_nested", "[[2]]", 8, "8", LMX_ERR_FORMAT, "not a non-negative integer");
    SHAPE("shape_2^53+", "[9007199254740993000]", 8, "8", LMX_ERR_FORMAT,
          "not a non-negative integer");
    SHAPE("shape_1e300", "[1e300]", 8, "8", LMX_ERR_FORMAT, "not a non-negative integer");
    SHAPE("shape_product_overflow", "[4294967296,4294967296]", 8, "8", LMX_ERR_FORMAT,
          "overflows");
    SHAPE("shape_product_overflow3", "[2097152,2097152,2097152,2097152]", 8, "8", LMX_ERR_FORMAT,
          "overflows");
    SHAPE("shape_bytes_overflow", "[4611686018427387904]", 8, "8", LMX_ERR_FORMAT,
          "not a non-negative integer");
    SHAPE("shape_bytes_overflow2", "[2147483648,2147483648]", 8, "8", LMX_ERR_FORMAT,
          "byte size overflows");
    SHAPE("shape_huge_no_data", "[1000000000000]", 8, "8", LMX_ERR_FORMAT, "needs");
    SHAPE("shape_9_dims", "[1,1,1,1,1,1,1,1,2]", 8, "8", LMX_ERR_FORMAT, "9 dimensions");
    SHAPE("shape_8_dims_ok", "[1,1,1,1,1,1,1,2]", 8, "8", LMX_OK, NULL);
    SHAPE("shape_size_mismatch", "[3]", 16, "8", LMX_ERR_FORMAT, "8 bytes stored but F32 [3] needs 12");
    SHAPE("shape_zero_nonempty", "[0,5]", 8, "4", LMX_ERR_FORMAT, "needs 0");
#undef SHAPE
}

static void test_offsets(void) {
#define OFFS(lbl, o1, o2, ndata, want, n1, n2)                                                  \
    expect_json(lbl,                                                                             \
                "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":" o1 "},"              \
                "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":" o2 "}}",              \
                ndata, want, n1, n2)
    OFFS("offs_ok", "[0,8]", "[8,16]", 16, LMX_OK, NULL, NULL);
    OFFS("offs_ok_reversed", "[8,16]", "[0,8]", 16, LMX_OK, NULL, NULL);
    OFFS("offs_overlap", "[0,8]", "[4,12]", 16, LMX_ERR_FORMAT, "'a' and 'b' overlap", NULL);
    OFFS("offs_same", "[0,8]", "[0,8]", 16, LMX_ERR_FORMAT, "overlap", NULL);
    OFFS("offs_overlap_rev", "[4,12]", "[0,8]", 16, LMX_ERR_FORMAT, "overlap", NULL);
    OFFS("offs_past_end", "[0,8]", "[8,16]", 15, LMX_ERR_FORMAT, "'b'", "past the 15-byte");
    OFFS("offs_far_past_end", "[0,8]", "[1099511627776,1099511627784]", 16, LMX_ERR_FORMAT,
         "'b'", "past");
    OFFS("offs_2^53", "[0,8]", "[9007199254740984,9007199254740992]", 16, LMX_ERR_FORMAT, "'b'",
         "past");
    OFFS("offs_2^64", "[0,8]", "[18446744073709551608,18446744073709551616]", 16, LMX_ERR_FORMAT,
         "'b'", "data_offsets must be two");
    OFFS("offs_reversed", "[0,8]", "[16,8]", 16, LMX_ERR_FORMAT, "'b'", "end before");
    OFFS("offs_negative", "[0,8]", "[-8,0]", 16, LMX_ERR_FORMAT, "'b'", "data_offsets");
    OFFS("offs_fraction", "[0,8]", "[8.5,16.5]", 17, LMX_ERR_FORMAT, "'b'", "data_offsets");
    OFFS("offs_three", "[0,8]", "[8,16,24]", 24, LMX_ERR_FORMAT, "'b'", "data_offsets");
    OFFS("offs_one", "[0,8]", "[8]", 16, LMX_ERR_FORMAT, "'b'", "data_offsets");
    OFFS("offs_strings", "[0,8]", "[\"8\",\"16\"]", 16, LMX_ERR_FORMAT, "'b'", "data_offsets");
    /* Gaps (bytes no tensor references) are refused, as the reference reader
     * does; ST_ALLOW_GAPS accepts them (test_gaps). */
    OFFS("offs_hole", "[0,8]", "[12,20]", 24, LMX_ERR_FORMAT, "between tensor 'a' and tensor 'b'",
         "data bytes 8..12");
    OFFS("offs_hole_first", "[4,12]", "[12,20]", 20, LMX_ERR_FORMAT, "between the start of the data area and tensor 'a'",
         "data bytes 0..4");
    OFFS("offs_trailing", "[0,8]", "[8,16]", 19, LMX_ERR_FORMAT, "3 unreferenced bytes between tensor 'b' and the end",
         "data bytes 16..19");
#undef OFFS
    /* Zero-size tensors may sit anywhere inside the data area, even inside others. */
    expect_json("offs_empty_inside",
                "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                "\"e\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[4,4]}}",
                8, LMX_OK, NULL, NULL);
    expect_json("offs_empty_past_end",
                "{\"e\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[9,9]}}", 8,
                LMX_ERR_FORMAT, "'e'", "past");
    /* Three tensors where the overlap is with an earlier, longer one. */
    expect_json("offs_overlap_long",
                "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
                "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]},"
                "\"c\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}",
                16, LMX_ERR_FORMAT, "overlap", NULL);
    expect_json("offs_overlap_after_contained",
                "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
                "\"b\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[2,2]},"
                "\"c\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[12,16]}}",
                16, LMX_ERR_FORMAT, "'a' and 'c' overlap", NULL);
}

/* ST_ALLOW_GAPS: a gap between tensors and trailing bytes are accepted and
 * the tensors read as without the flag. */
static void test_gaps(void) {
    const char *json = "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                       "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}";
    size_t hl = strlen(json);
    static _Alignas(16) uint8_t buf[256];
    memset(buf, 0, sizeof buf);
    buf[0] = (uint8_t)hl;
    memcpy(buf + 8, json, hl);
    float a = 2.5f, b = -3.0f;
    memcpy(buf + 8 + hl, &a, 4);
    memcpy(buf + 8 + hl + 8, &b, 4);
    st_file *f = NULL;
    CHECK(st_open_buffer(&f, buf, 8 + hl + 16, "gaps") == LMX_ERR_FORMAT && f == NULL, "gaps accepted by default");
    CHECK_OK(st_open_buffer_flags(&f, buf, 8 + hl + 16, "gaps", ST_ALLOW_GAPS));
    if (f) {
        float x = 0, y = 0;
        CHECK_OK(st_to_f32(st_find(f, "a"), &x));
        CHECK_OK(st_to_f32(st_find(f, "b"), &y));
        CHECK(x == a && y == b, "values with ST_ALLOW_GAPS");
    }
    st_close(f);
}

/* Misaligned data (F32 at an odd byte offset) is accepted: st_to_f32
 * copies through memcpy (documented in safetensors.h). The header has an
 * odd length (no padding, as old writers do), so the data area itself
 * starts at an odd byte. (This used a one-byte gap before the tensor until
 * gaps were refused.) */
static void test_misaligned_ok(void) {
    expect_json("misaligned_f32",
                "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}} ", 8, LMX_OK,
                NULL, NULL);
    const char *json = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}} ";
    size_t hl = strlen(json);
    static _Alignas(16) uint8_t buf[128];
    memset(buf, 0, sizeof buf);
    buf[0] = (uint8_t)hl;
    memcpy(buf + 8, json, hl);
    float v[2] = {1.25f, -7.5f};
    memcpy(buf + 8 + hl, v, 8);
    st_file *f = NULL;
    CHECK_OK(st_open_buffer(&f, buf, 8 + hl + 8, "misaligned"));
    if (f) {
        float out[2];
        CHECK(!st_data_aligned(st_find(f, "a")), "data is misaligned");
        CHECK_OK(st_to_f32(st_find(f, "a"), out));
        CHECK(out[0] == v[0] && out[1] == v[1], "values");
    }
    st_close(f);
}

/* A small valid file with metadata and several dtypes. */
static uint8_t *valid_file(size_t *n, const char *path) {
    const int64_t s2[] = {2, 3}, s1[] = {3};
    float f[6] = {1, 2, 3, 4, 5, 6};
    uint16_t h[3] = {0x3c00, 0x4000, 0x4200};
    int64_t i64 = 42;
    st_writer *w = NULL;
    if (st_writer_create(&w) != LMX_OK) return NULL;
    uint8_t *out = NULL;
    if (st_writer_add(w, "a.weight", ST_F32, 2, s2, f) == LMX_OK &&
        st_writer_add(w, "b.weight", ST_F16, 1, s1, h) == LMX_OK &&
        st_writer_add(w, "c.bias", ST_BF16, 1, s1, h) == LMX_OK &&
        st_writer_add(w, "d.count", ST_I64, 0, NULL, &i64) == LMX_OK &&
        st_writer_meta(w, "ss_network_dim", "4") == LMX_OK &&
        st_writer_meta(w, "format", "pt") == LMX_OK && st_writer_finish(w, path) == LMX_OK) {
        char *buf = NULL;
        if (lmx_read_file(path, &buf, n, 1 << 20) == LMX_OK) out = (uint8_t *)buf;
    }
    st_writer_free(w);
    return out;
}

static void test_truncation(void) {
    size_t n = 0;
    const char *path = tmp_path("valid.safetensors");
    uint8_t *file = valid_file(&n, path);
    CHECK(file != NULL, "valid file: %s", lmx_errmsg());
    if (!file) return;
    expect_bytes("valid_whole", file, n, LMX_OK, NULL, NULL);
    int bad = 0;
    for (size_t cut = 0; cut < n; cut++) {
        uint8_t *copy = lmx_malloc(cut ? cut : 1);
        if (!copy) break;
        memcpy(copy, file, cut);
        st_file *f = NULL;
        lmx_status st = st_open_buffer(&f, copy, cut, "cut.safetensors");
        if (st != LMX_ERR_FORMAT || f || !strstr(lmx_errmsg(), "cut.safetensors") ||
            strchr(lmx_errmsg(), '\n')) {
            if (bad++ < 5)
                fprintf(stderr, "FAIL truncated at %zu of %zu: %s: %s\n", cut, n,
                        lmx_status_name(st), lmx_errmsg());
        }
        st_close(f);
        lmx_free(copy);
    }
    CHECK(bad == 0, "%d truncations not refused cleanly", bad);
    /* The same through real files (mmap path), at a few cut points. */
    const char *cpath = tmp_path("cut.safetensors");
    size_t cuts[] = {0, 1, 7, 8, 9, 20, n / 2, n - 9, n - 1};
    for (size_t i = 0; i < LMX_ARRAY_LEN(cuts); i++) {
        CHECK_OK(lmx_write_file_atomic(cpath, file, cuts[i]));
        st_file *f = NULL;
        lmx_status st = st_open(&f, cpath);
        CHECK(st == LMX_ERR_FORMAT && !f && strstr(lmx_errmsg(), cpath),
              "file cut at %zu: %s: %s", cuts[i], lmx_status_name(st), lmx_errmsg());
        st_close(f);
    }
    /* Every single-byte corruption of the header: never a crash. */
    size_t hl = 8 + (size_t)file[0] + ((size_t)file[1] << 8);
    uint8_t *copy = lmx_malloc(n);
    int opened = 0;
    for (size_t i = 0; copy && i < hl && i < n; i++) {
        static const uint8_t vals[] = {0x00, 0xff, '"', '{', '}', '[', ']', ',', ':', '9', '-',
                                       '.', '\\', 'e', ' '};
        for (size_t v = 0; v < sizeof vals; v++) {
            memcpy(copy, file, n);
            copy[i] = vals[v];
            st_file *f = NULL;
            if (st_open_buffer(&f, copy, n, "flip") == LMX_OK) {
                opened++;
                for (int k = 0; k < st_count(f); k++) {
                    const st_tensor *t = st_at(f, k);
                    float *x = NULL;
                    if (t->dtype <= ST_BF16 && st_to_f32_alloc(t, &x) == LMX_OK) lmx_free(x);
                }
            } else {
                CHECK(strstr(lmx_errmsg(), "flip") && !strchr(lmx_errmsg(), '\n'),
                      "flip at %zu: %s", i, lmx_errmsg());
            }
            st_close(f);
        }
    }
    if (lmx_test_verbose()) printf("  %d single-byte corruptions still opened\n", opened);
    lmx_free(copy);
    lmx_free(file);
    unlink(path);
    unlink(cpath);
}

/* Seconds after which a child stuck in st_open on a FIFO is killed. */
#define FIFO_WATCHDOG_S 20

static void test_files(void) {
    st_file *f = NULL;
    const char *missing = tmp_path("does-not-exist.safetensors");
    CHECK(st_open(&f, missing) == LMX_ERR_IO && !f, "missing file");
    CHECK(strstr(lmx_errmsg(), missing) && strstr(lmx_errmsg(), "cannot open"), "msg: %s",
          lmx_errmsg());
    CHECK(st_open(&f, g_dir) == LMX_ERR_IO && !f, "directory");
    CHECK(strstr(lmx_errmsg(), g_dir) && strstr(lmx_errmsg(), "directory"), "msg: %s",
          lmx_errmsg());
    CHECK(st_open(&f, "/dev/null") == LMX_ERR_IO && !f, "/dev/null: %s", lmx_errmsg());
    CHECK(strstr(lmx_errmsg(), "not a regular file"), "msg: %s", lmx_errmsg());
    /* A FIFO with no writer: refused at once, never waited on. */
    const char *fifo = tmp_path("fifo.safetensors");
    unlink(fifo);
    if (mkfifo(fifo, 0600) == 0) {
        /* In a child, so a blocking open is caught by a check, not by a
         * clock: the child reports st_open's status through a pipe; an open
         * that waits for a writer never reports, and the watchdog (a hang
         * detector, far beyond any honest run) kills it. */
        int fds[2] = {-1, -1};
        int piped = pipe(fds) == 0;
        CHECK(piped, "pipe: %s", strerror(errno));
        pid_t pid = piped ? fork() : -1;
        CHECK(pid >= 0, "fork: %s", strerror(errno));
        if (pid == 0) {
            close(fds[0]);
            alarm(FIFO_WATCHDOG_S);
            st_file *cf = NULL;
            lmx_status cst = st_open(&cf, fifo);
            char rep[400];
            int n = snprintf(rep, sizeof rep, "%d %d %s", (int)cst, cf == NULL, lmx_errmsg());
            if (write(fds[1], rep, (size_t)n) != n) _exit(3);
            _exit(0);
        }
        if (piped) close(fds[1]);
        char rep[400] = {0};
        size_t got = 0;
        ssize_t r;
        while (pid > 0 && got < sizeof rep - 1 && (r = read(fds[0], rep + got, sizeof rep - 1 - got)) != 0)
            if (r > 0) got += (size_t)r;
            else if (errno != EINTR) break;
        if (piped) close(fds[0]);
        int ws = 0;
        while (pid > 0 && waitpid(pid, &ws, 0) < 0 && errno == EINTR) {
        }
        CHECK(WIFEXITED(ws) && WEXITSTATUS(ws) == 0,
              "st_open on a FIFO with no writer never returned (the child %s %d)",
              WIFSIGNALED(ws) ? "was killed by signal" : "exited with", WIFSIGNALED(ws) ? WTERMSIG(ws) : WEXITSTATUS(ws));
        int cst = -1, cnull = 0, off = 0;
        CHECK(sscanf(rep, "%d %d %n", &cst, &cnull, &off) == 2 && cst == LMX_ERR_IO && cnull, "fifo: %s", rep);
        CHECK(strstr(rep + off, "not a regular file"), "fifo msg: %s", rep + off);
        unlink(fifo);
    }
    const char *empty = tmp_path("empty.safetensors");
    CHECK_OK(lmx_write_file_atomic(empty, "", 0));
    CHECK(st_open(&f, empty) == LMX_ERR_FORMAT && !f, "empty file");
    CHECK(strstr(lmx_errmsg(), empty), "msg: %s", lmx_errmsg());
    unlink(empty);
    CHECK(st_open_buffer(&f, NULL, 100, NULL) == LMX_ERR_FORMAT && !f, "NULL buffer");
    CHECK(strstr(lmx_errmsg(), "<buffer>"), "msg: %s", lmx_errmsg());

    /* The writer: an unwritable path is an IO error and leaves nothing. */
    st_writer *w = NULL;
    CHECK_OK(st_writer_create(&w));
    if (w) {
        const char *bad = tmp_path("no-such-dir/x.safetensors");
        CHECK(st_writer_finish(w, bad) == LMX_ERR_IO, "unwritable");
        CHECK(strstr(lmx_errmsg(), bad), "msg: %s", lmx_errmsg());
        st_writer_free(w);
    }
}

/* Count files in g_dir whose name contains `part` (temporary leftovers). */
static int count_leftovers(const char *part) {
    char cmd[800];
    snprintf(cmd, sizeof cmd, "ls -1 '%s' 2>/dev/null | grep -c -- '%s'", g_dir, part);
    FILE *p = popen(cmd, "r");
    int c = 0;
    if (p) {
        if (fscanf(p, "%d", &c) != 1) c = 0;
        pclose(p);
    }
    return c;
}

/* Allocation failure at every allocation of: open (buffer and file), the
 * writer, st_to_f32_alloc. Each must fail cleanly (LeakSanitizer checks
 * that nothing leaks in the sanitizer build). */
static void test_alloc_sweep(void) {
    size_t n = 0;
    const char *path = tmp_path("sweep.safetensors");
    uint8_t *file = valid_file(&n, path);
    if (!file) {
        CHECK(0, "valid file");
        return;
    }
    /* Open. */
    lmx_fault_set_fail_at(0);
    st_file *f = NULL;
    CHECK_OK(st_open(&f, path));
    long total = lmx_fault_alloc_count();
    st_close(f);
    CHECK(total > 3, "open makes %ld allocations", total);
    int bad = 0;
    for (long k = 1; k <= total; k++) {
        lmx_fault_set_fail_at(k);
        f = NULL;
        lmx_status st = st_open(&f, path);
        lmx_fault_set_fail_at(0);
        if (st != LMX_ERR_NOMEM || f || !strstr(lmx_errmsg(), path)) {
            if (bad++ < 5)
                fprintf(stderr, "FAIL open, allocation %ld of %ld fails: %s: %s\n", k, total,
                        lmx_status_name(st), lmx_errmsg());
        }
        st_close(f);
    }
    CHECK(bad == 0, "%d open sweeps failed", bad);
    lmx_fault_set_fail_at(0);
    CHECK_OK(st_open_buffer(&f, file, n, "sweep-buffer"));
    total = lmx_fault_alloc_count();
    st_close(f);
    bad = 0;
    for (long k = 1; k <= total; k++) {
        lmx_fault_set_fail_at(k);
        f = NULL;
        lmx_status st = st_open_buffer(&f, file, n, "sweep-buffer");
        lmx_fault_set_fail_at(0);
        if (st != LMX_ERR_NOMEM || f) bad++;
        st_close(f);
    }
    CHECK(bad == 0, "%d buffer open sweeps failed", bad);

    /* Conversion. */
    CHECK_OK(st_open(&f, path));
    if (f) {
        float *x = NULL;
        lmx_fault_set_fail_at(1);
        lmx_status st = st_to_f32_alloc(st_find(f, "b.weight"), &x);
        lmx_fault_set_fail_at(0);
        CHECK(st == LMX_ERR_NOMEM && !x && strstr(lmx_errmsg(), "b.weight"), "to_f32_alloc: %s",
              lmx_errmsg());
        st_close(f);
    }

    /* Writer: create, add, meta, finish. */
    const char *wpath = tmp_path("sweep-out.safetensors");
    long wtotal = 0;
    for (long k = 0;; k++) {
        lmx_fault_set_fail_at(k);
        const int64_t s2[] = {2, 2};
        float v[4] = {1, 2, 3, 4};
        st_writer *w = NULL;
        lmx_status st = st_writer_create(&w);
        for (int i = 0; i < 20 && st == LMX_OK; i++) {
            char name[32];
            snprintf(name, sizeof name, "t%02d", i);
            st = st_writer_add(w, name, i % 2 ? ST_F32 : ST_F16, 2, s2, v);
        }
        if (st == LMX_OK) st = st_writer_meta(w, "k", "v");
        if (st == LMX_OK) st = st_writer_meta(w, "k2", "v2");
        if (st == LMX_OK) st = st_writer_meta(w, "k", "v3");
        if (st == LMX_OK) st = st_writer_finish(w, wpath);
        long used = lmx_fault_alloc_count();
        lmx_fault_set_fail_at(0);
        st_writer_free(w);
        if (k == 0) {
            CHECK(st == LMX_OK, "writer without faults: %s", lmx_errmsg());
            wtotal = used;
            continue;
        }
        CHECK(st == LMX_ERR_NOMEM, "writer, allocation %ld fails: %s: %s", k,
              lmx_status_name(st), lmx_errmsg());
        if (k >= wtotal) break;
    }
    CHECK(count_leftovers(".tmp.") == 0, "temporary files left behind");
    lmx_free(file);
    unlink(path);
    unlink(wpath);
}

int main(void) {
    snprintf(g_dir, sizeof g_dir, "%s/tests/st_fault_%ld", LMX_BINARY_DIR, (long)getpid());
    mkdir(g_dir, 0755);
    double t0 = lmx_now();
    test_header_length();
    test_json();
    test_entries();
    test_dtypes();
    test_shapes();
    test_offsets();
    test_misaligned_ok();
    test_gaps();
    test_truncation();
    test_files();
    test_alloc_sweep();
    printf("safetensors fault cases: %.2f s\n", lmx_now() - t0);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    if (system(cmd) != 0) fprintf(stderr, "cannot remove %s\n", g_dir);
    return lmx_test_finish();
}
