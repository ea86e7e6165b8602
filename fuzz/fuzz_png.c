/*
 * fuzz_png.c - libFuzzer entry: png_read_rgb8_buffer on arbitrary bytes
 * (body in fuzz/targets.h): libpng's longjmp error paths, the RGB
 * conversions and the text-chunk decoding. Run by scripts/fuzz.sh.
 */
#include <stdlib.h>

#include "targets.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (fuzz_png_body(data, size) != 0) abort();
    return 0;
}
