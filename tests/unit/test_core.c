/* test_core.c - errors, half floats, arena, atomic writes, fault injection. */
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
    test_atomic_write();
    return lmx_test_finish();
}
