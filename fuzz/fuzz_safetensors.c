/*
 * fuzz_safetensors.c - libFuzzer entry: st_open_buffer on arbitrary bytes,
 * then every tensor through st_to_f32 / st_to_i64, every metadata entry,
 * and det_classify (body in fuzz/targets.h). Run by scripts/fuzz.sh.
 */
#include <stdlib.h>

#include "targets.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (fuzz_safetensors_body(data, size) != 0) abort();
    return 0;
}
