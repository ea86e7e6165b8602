/* test_core.c - errors, half floats, arena, string builder, atomic writes, fault injection. */
#include <math.h>
#include <string.h>

#include "harness.h"

static void test_errors(void) {
    lmx_status st = lmx_err(LMX_ERR_SHAPE, "unet.conv_in.weight: expected %s", "[320, 4, 3, 3]");
    CHECK(st == LMX_ERR_SHAPE, "status passed through");
    lmx_err_prefix("model.safetensors: ");
    CHECK(!strcmp(lmx_errmsg(), "model.safetensors: unet.conv_in.weight: expected [320, 4, 3, 3]"),
          "got '%s'", lmx_errmsg());
    CHECK(!strcmp(lmx_status_name(LMX_OK), "ok"), "name");
    CHECK(!strcmp(lmx_status_name((lmx_status)99), "unknown status"), "out of range name");
    /* A message longer than the buffer keeps its head and its tail (the reason). */
    static char path[5000];
    memset(path, 'p', sizeof path - 1);
    lmx_err(LMX_ERR_IO, "%s: cannot open: No such file or directory", path);
    lmx_err_prefix("--vae: ");
    const char *m = lmx_errmsg();
    size_t n = strlen(m);
    const char *tail = ": cannot open: No such file or directory";
    CHECK(n < 2048 && !strncmp(m, "--vae: ppp", 10) && strstr(m, "ppp ... ppp") &&
              n > strlen(tail) && !strcmp(m + n - strlen(tail), tail),
          "long message: %zu bytes, '%.40s...%s'", n, m, n > 60 ? m + n - 60 : m);
}

static void test_half(void) {
    /* Exhaustive f16 -> f32 -> f16 round trip on every non-NaN value. */
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        if ((h & 0x7c00) == 0x7c00 && (h & 0x3ff)) continue;
        uint16_t back = lmx_f32_to_f16(lmx_f16_to_f32((uint16_t)h));
        if (back != h) bad++;
    }
    CHECK(bad == 0, "%d f16 values do not round-trip", bad);
    CHECK(lmx_f16_to_f32(0x3c00) == 1.0f, "f16 1.0");
    CHECK(lmx_f16_to_f32(0x0001) == ldexpf(1.0f, -24), "smallest subnormal");
    CHECK(lmx_f32_to_f16(65520.0f) == 0x7c00, "overflow to inf");
    CHECK(lmx_f32_to_f16(1.0f + ldexpf(1.0f, -11)) == 0x3c00, "tie to even (down)");
    CHECK(lmx_f32_to_f16(1.0f + 3 * ldexpf(1.0f, -11)) == 0x3c02, "tie to even (up)");
    CHECK(lmx_bf16_to_f32(lmx_f32_to_bf16(3.140625f)) == 3.140625f, "bf16 exact");
    CHECK(lmx_f32_to_bf16(1.0f + ldexpf(1.0f, -8)) == 0x3f80, "bf16 tie to even");
    CHECK(isnan(lmx_bf16_to_f32(lmx_f32_to_bf16(NAN))), "bf16 nan stays nan");
}

static void test_arena(void) {
    lmx_arena a;
    CHECK_OK(lmx_arena_init(&a, 1024));
    void *p = lmx_arena_alloc(&a, 10);
    void *q = lmx_arena_alloc(&a, 100);
    CHECK(p && q && ((uintptr_t)q & 63) == 0, "aligned");
    size_t mark = lmx_arena_mark(&a);
    CHECK(lmx_arena_alloc(&a, 4096) == NULL, "overflow returns NULL");
    lmx_arena_reset(&a, mark);
    CHECK(a.peak >= 192, "peak %zu", a.peak);
    /* reserve: no reallocation when large enough, but emptied; grows otherwise */
    uint8_t *base = a.base;
    CHECK_OK(lmx_arena_reserve(&a, 512));
    CHECK(a.base == base && a.used == 0 && a.size == 1024, "reserve within size keeps the buffer");
    CHECK_OK(lmx_arena_reserve(&a, 4096));
    CHECK(a.size >= 4096 && a.used == 0, "reserve grows: size %zu", a.size);
    CHECK(lmx_arena_alloc(&a, 4000) != NULL, "grown arena holds 4000 bytes");
    lmx_fault_set_fail_at(1);
    CHECK(lmx_arena_reserve(&a, 1 << 20) == LMX_ERR_NOMEM, "reserve reports allocation failure");
    lmx_fault_set_fail_at(0);
    lmx_arena_free(&a);
}

static void test_fault_injection(void) {
    lmx_fault_set_fail_at(2);
    void *a = lmx_malloc(8), *b = lmx_malloc(8), *c = lmx_malloc(8);
    CHECK(a && !b && c, "second allocation fails");
    lmx_free(a);
    lmx_free(c);
    lmx_fault_set_fail_at(0);
}

static void test_string_builder(void) {
    /* Growth past many sizes: every length from 0 to 5000, one byte at a
     * time through printf and cat alternately, compared with the expected text. */
    lmx_sb sb = LMX_SB_INIT;
    CHECK(!strcmp(lmx_sb_str(&sb), "") && lmx_sb_len(&sb) == 0, "empty builder reads as \"\"");
    int bad = 0;
    for (int i = 0; i < 5000; i++) {
        if (i & 1) lmx_sb_printf(&sb, "%c", 'a' + i % 26);
        else {
            char c[2] = {(char)('a' + i % 26), 0};
            lmx_sb_cat(&sb, c);
        }
        if (lmx_sb_len(&sb) != (size_t)i + 1 || sb.s[i] != 'a' + i % 26 || sb.s[i + 1] != 0) bad++;
    }
    CHECK(bad == 0, "%d appends gave a wrong length, byte or terminator", bad);
    CHECK(sb.cap > 5000 && !lmx_sb_failed(&sb), "grew to %zu", sb.cap);
    lmx_sb_free(&sb);
    CHECK(sb.s == NULL && sb.len == 0, "free empties");

    /* Long embedded strings in one call, each size around the growth steps,
     * and formatting exactly as snprintf does it. */
    static char big[70000];
    for (size_t i = 0; i < sizeof big - 1; i++) big[i] = (char)('A' + i % 23);
    const size_t sizes[] = {0, 1, 62, 63, 64, 65, 127, 128, 1000, 3000, 4095, 4096, 65536, sizeof big - 1};
    for (size_t t = 0; t < LMX_ARRAY_LEN(sizes); t++) {
        const size_t n = sizes[t];
        char save = big[n];
        big[n] = 0;
        lmx_sb_printf(&sb, "<%s|%d|%g|%05.1f|%llu|%c>", big, -42, 0.25, 3.14159, 18446744073709551615ull, 'z');
        lmx_sb_cat(&sb, big);
        char tail[128];
        int w = snprintf(tail, sizeof tail, "|%d|%g|%05.1f|%llu|%c>", -42, 0.25, 3.14159, 18446744073709551615ull, 'z');
        const char *s = lmx_sb_str(&sb);
        CHECK(lmx_sb_len(&sb) == 1 + n + (size_t)w + n && strlen(s) == lmx_sb_len(&sb), "size %zu: length %zu", n,
              lmx_sb_len(&sb));
        CHECK(s[0] == '<' && !memcmp(s + 1, big, n) && !memcmp(s + 1 + n, tail, (size_t)w) &&
                  !memcmp(s + 1 + n + (size_t)w, big, n),
              "size %zu: content", n);
        char *taken = lmx_sb_take(&sb);
        CHECK(taken && strlen(taken) == 1 + n + (size_t)w + n, "take hands over the text (size %zu)", n);
        CHECK(sb.s == NULL && sb.len == 0 && sb.cap == 0, "take leaves the builder empty");
        lmx_free(taken);
        big[n] = save;
    }
    lmx_sb_catn(&sb, "abcdef", 3);
    lmx_sb_printf(&sb, "%s", "");
    char *abc = lmx_sb_take(&sb);
    CHECK(abc && !strcmp(abc, "abc"), "catn appends n bytes: '%s'", abc ? abc : "(null)");
    lmx_free(abc);
    char *empty = lmx_sb_take(&sb);
    CHECK(empty && !strcmp(empty, ""), "take of an empty builder gives \"\"");
    lmx_free(empty);

    /* Out of memory: the first failed growth sets the sticky flag, later
     * appends (even ones that would fit) do nothing, take returns NULL and
     * frees what was built, and the builder is usable again after. */
    for (long fail = 1; fail <= 4; fail++) {
        lmx_fault_set_fail_at(fail);
        for (int i = 0; i < 200; i++) lmx_sb_printf(&sb, "%s-%d ", "growing", i);
        lmx_sb_cat(&sb, big);
        lmx_fault_set_fail_at(0);
        CHECK(lmx_sb_failed(&sb), "allocation %ld failing sets the flag", fail);
        size_t len = lmx_sb_len(&sb);
        lmx_sb_cat(&sb, "x");
        lmx_sb_printf(&sb, "%d", 1);
        CHECK(lmx_sb_len(&sb) == len, "appends after a failure do nothing");
        CHECK(strlen(lmx_sb_str(&sb)) == len, "the text so far stays terminated");
        CHECK(lmx_sb_take(&sb) == NULL, "take reports the failure (allocation %ld)", fail);
        CHECK(!lmx_sb_failed(&sb) && sb.s == NULL, "take resets the builder");
    }
    lmx_sb_printf(&sb, "%s", "again");
    char *again = lmx_sb_take(&sb);
    CHECK(again && !strcmp(again, "again"), "usable after an out-of-memory");
    lmx_free(again);
    lmx_fault_set_fail_at(1);
    CHECK(lmx_sb_take(&sb) == NULL, "an empty take that cannot allocate reports it");
    lmx_fault_set_fail_at(0);
}

static void test_atomic_write(void) {
    char path[256];
    snprintf(path, sizeof path, "%s/tests/atomic_test.bin", LMX_BINARY_DIR);
    CHECK_OK(lmx_write_file_atomic(path, "hello", 5));
    char *buf = NULL;
    size_t n = 0;
    CHECK_OK(lmx_read_file(path, &buf, &n, 100));
    CHECK(n == 5 && !memcmp(buf, "hello", 5), "content");
    lmx_free(buf);
    CHECK(lmx_read_file(path, &buf, &n, 2) == LMX_ERR_FORMAT, "size limit");
    CHECK(lmx_write_file_atomic("/nonexistent-dir/x", "a", 1) == LMX_ERR_IO, "bad dir");
    CHECK(strstr(lmx_errmsg(), "/nonexistent-dir/x") != NULL, "message names the path");
    remove(path);
}

int main(void) {
    test_errors();
    test_half();
    test_arena();
    test_fault_injection();
    test_string_builder();
    test_atomic_write();
    return lmx_test_finish();
}
