/*
 * targets.h - the bodies of the fuzz targets, shared by the libFuzzer
 * entry points (fuzz/fuzz_<name>.c, built with -DLMX_FUZZ=ON and clang)
 * and by the regression test (tests/fault/test_fuzz_regressions.c), which
 * replays fuzz/corpus/<name>/ and fuzz/regressions/<name>/ through exactly
 * the same code in the normal build.
 *
 * A body returns 0 when the input was handled (accepted or refused with an
 * error), and -1 when an invariant of the API does not hold; the libFuzzer
 * entry points abort() on -1 so the fuzzer keeps the input.
 */
#ifndef LMX_FUZZ_TARGETS_H
#define LMX_FUZZ_TARGETS_H

#include <stdint.h>
#include <string.h>

#include "core/core.h"
#include "io/detect.h"
#include "io/png.h"
#include "io/safetensors.h"

/* safetensors: open, then read every tensor and every metadata entry the
 * way the loaders do, and classify the file the way `inspect` does. */
static inline int fuzz_safetensors_body(const uint8_t *data, size_t size) {
    st_file *f = NULL;
    if (st_open_buffer(&f, data, size, "fuzz") != LMX_OK) {
        if (f != NULL || !*lmx_errmsg() || strchr(lmx_errmsg(), '\n')) return -1;
        return 0;
    }
    int bad = 0;
    for (int i = 0; i < st_count(f) && !bad; i++) {
        const st_tensor *t = st_at(f, i);
        /* Every tensor lies inside the buffer and has the size its shape says. */
        const uint8_t *p = t->data;
        if (p < data || (size_t)(p - data) > size || t->nbytes > size - (size_t)(p - data) ||
            (uint64_t)t->numel * st_dtype_size(t->dtype) != t->nbytes ||
            t->ndim < 0 || t->ndim > ST_MAX_DIMS)
            bad = 1;
        if (st_find(f, t->name) != t) bad = 1;
        if (st_check_shape(t, t->ndim, t->shape) != LMX_OK) bad = 1;
        if (t->dtype == ST_F32 || t->dtype == ST_F16 || t->dtype == ST_BF16) {
            float *x = NULL;
            if (st_to_f32_alloc(t, &x) != LMX_OK) bad = 1;
            else if (t->numel > 0) {
                volatile float sink = x[0] + x[t->numel - 1];
                (void)sink;
            }
            lmx_free(x);
        } else {
            int64_t *v = lmx_malloc(sizeof(int64_t) * (size_t)(t->numel ? t->numel : 1));
            if (v && st_to_i64(t, v) != LMX_OK) bad = 1;
            lmx_free(v);
        }
    }
    for (int i = 0; i < st_meta_count(f) && !bad; i++) {
        const char *k = NULL, *v = NULL;
        st_meta_at(f, i, &k, &v);
        if (!k || !v || st_meta_get(f, k) != v) bad = 1;
    }
    det_info info;
    det_classify(f, NULL, &info);
    if ((unsigned)info.kind >= DET_KIND_COUNT || !det_kind_name(info.kind)) bad = 1;
    st_close(f);
    return bad ? -1 : 0;
}

/* PNG: decode to RGB with its text chunks. */
static inline int fuzz_png_body(const uint8_t *data, size_t size) {
    png_rgb8 img;
    lmx_status st = png_read_rgb8_buffer(data, size, "fuzz", &img);
    int bad = 0;
    if (st == LMX_OK) {
        if (img.width < 1 || img.height < 1 || !img.rgb) bad = 1;
        else {
            volatile uint8_t sink = img.rgb[(size_t)img.width * img.height * 3 - 1];
            (void)sink;
        }
        for (int i = 0; i < img.n_text && !bad; i++)
            if (!img.keys[i] || !img.texts[i] || png_rgb8_text(&img, img.keys[i]) == NULL) bad = 1;
    } else if (img.rgb || img.n_text || !*lmx_errmsg()) {
        bad = 1;
    }
    png_rgb8_free(&img);
    return bad ? -1 : 0;
}

#endif /* LMX_FUZZ_TARGETS_H */
