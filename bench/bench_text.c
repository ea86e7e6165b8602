/*
 * bench_text.c - timings of the text side that used to be asserted by the
 * unit tests (a clock bound fails on a loaded machine; here it is only
 * measured): loading the bundled BPE vocabulary, encoding a testbed prompt
 * and a non-ASCII one, the longest accepted single word, and PAW's ablation
 * of a 200k-space prompt. Run: build/bench/bench_text (from the source root).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compose/compose.h"
#include "model/tokenizer.h"

static double med3(double a, double b, double c) {
    return a < b ? (b < c ? b : (a < c ? c : a)) : (a < c ? a : (b < c ? c : b));
}

int main(void) {
    double tb[3];
    tok_tokenizer *t = NULL;
    for (int k = 0; k < 3; k++) {
        tok_free(t);
        t = NULL;
        double t0 = lmx_now();
        if (tok_load_bundled(&t) != LMX_OK) {
            fprintf(stderr, "bench_text: %s\n", lmx_errmsg());
            return 1;
        }
        tb[k] = lmx_now() - t0;
    }
    printf("load the bundled vocabulary: %.1f ms (median of 3)\n", med3(tb[0], tb[1], tb[2]) * 1e3);

    static const char *prompt =
        "RAW photo, subject, 8k uhd, dslr, high quality, Fujifilm XT3, half-length portrait from knees up, th3r0ck "
        "with no hair, muscular male, serious look on his face, school uniform, white shirt, red tie, blue pleated "
        "microskirt, film overlay, film grain, lib_bg, library bookshelf, blow bubble gum";
    static const char *uni = "Caf\xc3\xa9 na\xc3\xafve \xce\x9f\xce\x94\xce\x9f\xce\xa3 \xe7\x8c\xab\xe3\x81\xae"
                             "\xe5\x86\x99\xe7\x9c\x9f \xf0\x9f\x91\x8d\xf0\x9f\x8f\xbd, \xc4\xb0stanbul, Stra\xc3\x9f"
                             "e, \xed\x95\x9c\xea\xb5\xad\xec\x96\xb4";
    int64_t out[TOK_CONTEXT];
    const int reps = 2000;
    const char *texts[2] = {prompt, uni};
    for (int k = 0; k < 2; k++) {
        int n = 0;
        double t0 = lmx_now();
        for (int i = 0; i < reps; i++) tok_encode_padded(t, texts[k], -1, out, &n);
        printf("encode a %d-token %s prompt: %.1f us (mean of %d)\n", n, k ? "non-ASCII" : "testbed",
               (lmx_now() - t0) / reps * 1e6, reps);
    }

    char *s = malloc(TOK_MAX_TEXT + 1);
    if (!s) return 1;
    for (size_t i = 0; i < TOK_MAX_TEXT; i++) s[i] = (char)('a' + (i * 7 + i / 26) % 26);
    s[TOK_MAX_TEXT] = 0;
    int32_t *ids = NULL;
    int n = 0;
    double t0 = lmx_now();
    lmx_status st = tok_encode(t, s, TOK_MAX_TEXT, &ids, &n);
    printf("one %d-byte word: %.0f ms, %d ids (%s)\n", TOK_MAX_TEXT, (lmx_now() - t0) * 1e3, n, lmx_status_name(st));
    lmx_free(ids);
    free(s);

    size_t ns = 200000;
    char *sp = malloc(ns + 3), *got = NULL;
    if (!sp) return 1;
    memset(sp, ' ', ns);
    memcpy(sp + ns, "a,", 3);
    t0 = lmx_now();
    st = compose_ablate(sp, NULL, 0, &got);
    printf("ablate a prompt of %zu spaces: %.1f ms (%s)\n", ns, (lmx_now() - t0) * 1e3, lmx_status_name(st));
    lmx_free(got);
    free(sp);
    tok_free(t);
    return 0;
}
