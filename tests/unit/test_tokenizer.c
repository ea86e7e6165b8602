/*
 * test_tokenizer.c - the CLIP tokenizer against transformers' slow
 * CLIPTokenizer without ftfy (reference/gen_tokenizer.py):
 *   - every code point: clean-up class, regex class, case classes and
 *     lower() against Python 3.11 / `regex` (uprops.safetensors);
 *   - the corpus (corpus.safetensors: testbed prompts, ablated prompts,
 *     triggers, unicode, emoji, control characters, long prompts, random
 *     strings) with three tables that must agree: the bundled .gz, a
 *     vocab.json/merges.txt pair written here from the .gz, and
 *     tests/fixtures/models/tiny-sd/tokenizer when it exists;
 *   - padded sequences (SD1.5 pad 49407, SD2 pad "!" = 0, OpenAI framing);
 *   - the spec's test vectors (docs/numerics.md §2, docs/testbed.md §4);
 *   - bad files and bad input, allocation failures, two threads at once;
 *   - timings (printed; loose bounds only, the machine is shared).
 */
#include <pthread.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zlib.h>

#include "core/datadir.h"
#include "harness.h"
#include "io/io_util.h"
#include "model/tokenizer.h"

static char g_tmp[512];
static tok_tokenizer *g_bundled, *g_sd15, *g_sd2, *g_tiny;

/* ---- corpus ---- */
typedef struct corpus {
    int n;
    uint8_t *blob;
    int64_t *text_off, *ids_off, *pad_idx, *category;
    int64_t *ids, *pad15, *pad2, *padoa, *raw2;
    int64_t n_pad;
} corpus;
static corpus C;

static const char *tmp_path(const char *rel) {
    static _Thread_local char buf[4][1024];
    static _Thread_local int k = 0;
    k = (k + 1) & 3;
    snprintf(buf[k], sizeof buf[k], "%s/%s", g_tmp, rel);
    return buf[k];
}

static void write_text(const char *path, const char *s) {
    FILE *f = fopen(path, "wb");
    if (!f) {
        fprintf(stderr, "cannot write %s\n", path);
        return;
    }
    fputs(s, f);
    fclose(f);
}

static void copy_file(const char *src, const char *dst) {
    char *buf = NULL;
    size_t n = 0;
    if (lmx_read_file(src, &buf, &n, 1 << 26) != LMX_OK) {
        fprintf(stderr, "cannot read %s: %s\n", src, lmx_errmsg());
        return;
    }
    FILE *f = fopen(dst, "wb");
    if (f) {
        fwrite(buf, 1, n, f);
        fclose(f);
    }
    lmx_free(buf);
}

/* An independent bytes_to_unicode(), for writing files. */
static uint32_t b2u(int b) {
    int bs[256], n = 0;
    for (int x = '!'; x <= '~'; x++) bs[n++] = x;
    for (int x = 0xA1; x <= 0xAC; x++) bs[n++] = x;
    for (int x = 0xAE; x <= 0xFF; x++) bs[n++] = x;
    for (int i = 0; i < n; i++)
        if (bs[i] == b) return (uint32_t)b;
    int k = 0;
    for (int x = 0; x < b; x++) {
        int printable = 0;
        for (int i = 0; i < n; i++) printable |= bs[i] == x;
        k += !printable;
    }
    return 256u + (uint32_t)k;
}

static int put_utf8(uint32_t cp, char *d) {
    if (cp < 0x80) { d[0] = (char)cp; return 1; }
    d[0] = (char)(0xC0 | (cp >> 6));
    d[1] = (char)(0x80 | (cp & 0x3F));
    return 2;
}

/* JSON string, non-ASCII as \uXXXX (cJSON must decode the escapes). */
static void json_str(FILE *f, const char *s) {
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p;) {
        if (*p == '"' || *p == '\\') { fprintf(f, "\\%c", *p); p++; }
        else if (*p < 0x20) { fprintf(f, "\\u%04x", *p); p++; }
        else if (*p < 0x80) { fputc(*p, f); p++; }
        else {
            uint32_t cp = ((uint32_t)(p[0] & 0x1F) << 6) | (p[1] & 0x3F); /* vocab chars are < U+0800 */
            fprintf(f, "\\u%04x", cp);
            p += 2;
        }
    }
    fputc('"', f);
}

/* vocab.json from the bundled table, merges.txt from the .gz itself. */
static void write_tokenizer_dir(const char *dir, const char *cfg_from, int crlf) {
    char p[1024];
    mkdir(dir, 0755);
    snprintf(p, sizeof p, "%s/vocab.json", dir);
    FILE *f = fopen(p, "wb");
    if (!f) return;
    fputc('{', f);
    for (int id = 0; id < tok_n_vocab(g_bundled); id++) {
        fputs(id ? ",\n" : "\n", f);
        json_str(f, tok_token_str(g_bundled, id));
        fprintf(f, ": %d", id);
    }
    fputs("\n}\n", f);
    fclose(f);
    snprintf(p, sizeof p, "%s/merges.txt", dir);
    f = fopen(p, "wb");
    gzFile gz = gzopen(lmx_src_path("data/clip/" "bpe_simple_vocab_16e6.txt.gz"), "rb");
    if (!f || !gz) {
        if (f) fclose(f);
        if (gz) gzclose(gz);
        return;
    }
    char line[1024];
    fputs(crlf ? "#version: 0.2\r\n" : "#version: 0.2\n", f);
    for (int i = 0; i <= 48894 && gzgets(gz, line, sizeof line); i++) {
        if (i == 0) continue;
        line[strcspn(line, "\n")] = 0;
        fprintf(f, crlf ? "%s\r\n" : "%s\n", line);
    }
    gzclose(gz);
    fclose(f);
    const char *cfg[2] = {"special_tokens_map.json", "tokenizer_config.json"};
    for (int k = 0; k < 2; k++) {
        char src[1024];
        snprintf(src, sizeof src, "tests/fixtures/tokenizer/%s/%s", cfg_from, cfg[k]);
        snprintf(p, sizeof p, "%s/%s", dir, cfg[k]);
        copy_file(lmx_src_path(src), p);
    }
}

static int load_corpus(void) {
    st_file *f = lmx_golden_open(lmx_src_path("tests/fixtures/tokenizer/corpus.safetensors"));
    if (!f) return 0;
    int64_t nb, n1, np, nbytes;
    int64_t *blob = lmx_golden_i64(f, "text_blob", &nb);
    C.text_off = lmx_golden_i64(f, "text_off", &n1);
    C.ids = lmx_golden_i64(f, "ids", NULL);
    C.ids_off = lmx_golden_i64(f, "ids_off", NULL);
    C.pad_idx = lmx_golden_i64(f, "pad_idx", &np);
    C.pad15 = lmx_golden_i64(f, "pad_sd15", NULL);
    C.pad2 = lmx_golden_i64(f, "pad_sd2", NULL);
    C.padoa = lmx_golden_i64(f, "pad_openai", NULL);
    C.raw2 = lmx_golden_i64(f, "raw_sd2", NULL);
    C.category = lmx_golden_i64(f, "category", NULL);
    st_close(f);
    if (!blob || !C.text_off || !C.ids || !C.ids_off || !C.pad_idx || !C.pad15 || !C.pad2 || !C.padoa ||
        !C.raw2 || !C.category) {
        lmx_free(blob);
        return 0;
    }
    nbytes = nb * 4;
    C.blob = lmx_malloc((size_t)nbytes + 1);
    for (int64_t i = 0; i < nb; i++) {
        uint32_t v = (uint32_t)blob[i];
        for (int k = 0; k < 4; k++) C.blob[4 * i + k] = (uint8_t)(v >> (8 * k));
    }
    lmx_free(blob);
    C.n = (int)(n1 - 1);
    C.n_pad = np;
    return 1;
}

static void free_corpus(void) {
    lmx_free(C.blob);
    lmx_free(C.text_off);
    lmx_free(C.ids);
    lmx_free(C.ids_off);
    lmx_free(C.pad_idx);
    lmx_free(C.pad15);
    lmx_free(C.pad2);
    lmx_free(C.padoa);
    lmx_free(C.raw2);
    lmx_free(C.category);
}

static const char *ctext(int i, ptrdiff_t *len) {
    *len = (ptrdiff_t)(C.text_off[i + 1] - C.text_off[i]);
    return (const char *)C.blob + C.text_off[i];
}

/* Compare tok_encode over the whole corpus; returns the number of strings that differ. */
static int corpus_mismatches(const tok_tokenizer *t, const char *what, int report) {
    int bad = 0;
    for (int i = 0; i < C.n; i++) {
        ptrdiff_t len;
        const char *s = ctext(i, &len);
        int32_t *ids = NULL;
        int n = 0;
        lmx_status st = tok_encode(t, s, len, &ids, &n);
        int64_t n_ref = C.ids_off[i + 1] - C.ids_off[i];
        const int64_t *ref = C.ids + C.ids_off[i];
        int ok = st == LMX_OK && n == n_ref;
        int first = -1;
        for (int k = 0; ok && k < n; k++)
            if (ids[k] != ref[k]) { ok = 0; first = k; }
        if (!ok) {
            bad++;
            if (report && bad <= 10) {
                char q[256];
                fprintf(stderr, "  %s: string %d (category %lld) '%s': %s, %d ids vs %lld, first difference at %d"
                        " (ours %d, ref %lld)\n", what, i, (long long)C.category[i],
                        io_quote(q, sizeof q, s, (size_t)len, 120), st ? lmx_errmsg() : "ok", n, (long long)n_ref,
                        first, first >= 0 ? ids[first] : -1, first >= 0 ? (long long)ref[first] : -1LL);
            }
        }
        lmx_free(ids);
    }
    return bad;
}

/* ---- tests ---- */

static void test_uprops(void) {
    st_file *f = lmx_golden_open(lmx_src_path("tests/fixtures/tokenizer/uprops.safetensors"));
    if (!f) return;
    int64_t nr;
    int64_t *start = lmx_golden_i64(f, "start", &nr);
    int64_t *cls = lmx_golden_i64(f, "cls", NULL);
    int64_t *ld = lmx_golden_i64(f, "ldelta", NULL);
    st_close(f);
    if (!start || !cls || !ld) goto done;
    int bad[4] = {0, 0, 0, 0}, shown = 0;
    int64_t r = 0;
    for (uint32_t cp = 0; cp < 0x110000; cp++) {
        while (r + 1 < nr && start[r + 1] <= (int64_t)cp) r++;
        if (cp >= 0xD800 && cp <= 0xDFFF) continue;
        int want = (int)cls[r], got = tok_uclass(cp);
        int m0 = (want & 7) != (got & 7), m1 = (want & 0x18) != (got & 0x18), m2 = (want & 0x60) != (got & 0x60);
        uint32_t wl = ld[r] == 0x7fffffff ? 0 : (uint32_t)((int64_t)cp + ld[r]);
        int m3 = tok_ulower(cp) != wl;
        bad[0] += m0;
        bad[1] += m1;
        bad[2] += m2;
        bad[3] += m3;
        if ((m0 || m1 || m2 || m3) && shown++ < 10)
            fprintf(stderr, "  U+%04X: class ours 0x%x python 0x%x, lower ours U+%04X python U+%04X\n", cp, got, want,
                    tok_ulower(cp), wl);
    }
    CHECK(!bad[0] && !bad[1] && !bad[2] && !bad[3],
          "code points that differ from Python: clean-up %d, regex class %d, case class %d, lower %d", bad[0],
          bad[1], bad[2], bad[3]);
    printf("unicode: all 1,112,064 scalar values: clean-up, regex class, case class, lower() as Python "
           "(utf8proc %s)\n", "2.8");
done:
    lmx_free(start);
    lmx_free(cls);
    lmx_free(ld);
}

static void test_load(void) {
    double t0 = lmx_now();
    CHECK_OK(tok_load_bundled(&g_bundled));
    double t_bundled = lmx_now() - t0;
    if (!g_bundled) return;
    CHECK(tok_n_vocab(g_bundled) == 49408, "n_vocab %d", tok_n_vocab(g_bundled));
    CHECK(tok_bos_id(g_bundled) == 49406 && tok_eos_id(g_bundled) == 49407, "bos/eos");
    CHECK(tok_pad_id(g_bundled) == 49407 && tok_unk_id(g_bundled) == 49407, "pad/unk");
    CHECK(tok_max_length(g_bundled) == 77, "max length");
    CHECK(!strcmp(tok_token_str(g_bundled, 0), "!"), "id 0");
    CHECK(!strcmp(tok_token_str(g_bundled, 84), "u"), "id 84");
    CHECK(!strcmp(tok_token_str(g_bundled, 188), "\xc4\x80"), "byte 0 -> U+0100 = id 188");
    CHECK(!strcmp(tok_token_str(g_bundled, 220), "\xc4\xa0"), "space -> U+0120 = id 220");
    CHECK(!strcmp(tok_token_str(g_bundled, 256), "!</w>"), "id 256");
    CHECK(!strcmp(tok_token_str(g_bundled, 49406), "<|startoftext|>"), "49406");
    CHECK(tok_token_id(g_bundled, "gum</w>") >= 0 && tok_token_id(g_bundled, "no such") == -1, "token_id");
    CHECK(tok_token_str(g_bundled, 49408) == NULL && tok_token_str(g_bundled, -1) == NULL, "out of range");

    snprintf(g_tmp, sizeof g_tmp, "/tmp/lmx_test_tok_XXXXXX");
    if (!mkdtemp(g_tmp)) {
        CHECK(0, "mkdtemp failed");
        return;
    }
    write_tokenizer_dir(tmp_path("sd15"), "sd15", 0);
    write_tokenizer_dir(tmp_path("sd2"), "sd2", 1);
    t0 = lmx_now();
    CHECK_OK(tok_load_dir(&g_sd15, tmp_path("sd15")));
    double t_dir = lmx_now() - t0;
    CHECK_OK(tok_load_dir(&g_sd2, tmp_path("sd2")));
    if (g_sd15) {
        CHECK(tok_n_vocab(g_sd15) == 49408 && tok_pad_id(g_sd15) == 49407 && tok_max_length(g_sd15) == 77,
              "sd15 folder: n %d pad %d max %d", tok_n_vocab(g_sd15), tok_pad_id(g_sd15), tok_max_length(g_sd15));
        int same = 1;
        for (int id = 0; id < 49408 && same; id++) same = !strcmp(tok_token_str(g_sd15, id), tok_token_str(g_bundled, id));
        CHECK(same, "vocab.json and the bundled table agree");
    }
    if (g_sd2) CHECK(tok_pad_id(g_sd2) == 0, "SD2 pads with '!' = 0, got %d", tok_pad_id(g_sd2));
    const char *tiny = lmx_src_path("tests/fixtures/models/tiny-sd/tokenizer/vocab.json");
    if (access(tiny, R_OK) == 0) CHECK_OK(tok_load_dir(&g_tiny, lmx_src_path("tests/fixtures/models/tiny-sd/tokenizer")));
    else printf("note: tests/fixtures/models/tiny-sd/tokenizer absent, skipped\n");

    /* timing, printed only (bench/bench_text measures it; a clock bound fails on a loaded machine) */
    double tb[3];
    for (int k = 0; k < 3; k++) {
        tok_tokenizer *t = NULL;
        t0 = lmx_now();
        tok_load_bundled(&t);
        tb[k] = lmx_now() - t0;
        tok_free(t);
    }
    double med = tb[0] < tb[1] ? (tb[1] < tb[2] ? tb[1] : (tb[0] < tb[2] ? tb[2] : tb[0]))
                               : (tb[0] < tb[2] ? tb[0] : (tb[1] < tb[2] ? tb[2] : tb[1]));
    printf("timing: load bundled .gz %.1f ms (first %.1f ms), load vocab.json+merges.txt folder %.1f ms\n",
           med * 1e3, t_bundled * 1e3, t_dir * 1e3);
}

static void test_corpus(void) {
    if (!load_corpus()) return;
    int n_cat[8] = {0};
    for (int i = 0; i < C.n; i++) n_cat[C.category[i] & 7]++;
    printf("corpus: %d strings (%lld ids): handwritten %d, testbed base/negative %d, full prompts %d, ablated %d, "
           "triggers %d, long %d, random %d\n", C.n, (long long)C.ids_off[C.n], n_cat[0], n_cat[1], n_cat[2],
           n_cat[3], n_cat[4], n_cat[5], n_cat[6]);
    const tok_tokenizer *tt[4] = {g_bundled, g_sd15, g_sd2, g_tiny};
    const char *nm[4] = {"bundled .gz", "vocab.json folder (SD1.5)", "vocab.json folder (SD2, CRLF)", "tiny-sd folder"};
    for (int k = 0; k < 4; k++) {
        if (!tt[k]) continue;
        if (k == 2) continue; /* SD2 differs where "!" appears: checked by the padded test */
        int bad = corpus_mismatches(tt[k], nm[k], 1);
        CHECK(bad == 0, "%s: %d of %d strings differ from transformers", nm[k], bad, C.n);
        printf("corpus, %s: %d/%d strings identical to transformers\n", nm[k], C.n - bad, C.n);
    }

    /* Padded sequences. */
    int bad15 = 0, bad2 = 0, badoa = 0, badb = 0;
    for (int64_t j = 0; j < C.n_pad; j++) {
        int i = (int)C.pad_idx[j];
        ptrdiff_t len;
        const char *s = ctext(i, &len);
        int64_t out[TOK_CONTEXT], out2[TOK_CONTEXT];
        int n_raw = -1, n_raw2 = -1;
        if (g_sd15) {
            CHECK_OK(tok_encode_padded(g_sd15, s, len, out, &n_raw));
            bad15 += memcmp(out, C.pad15 + 77 * j, sizeof out) != 0 ||
                     n_raw != (int)(C.ids_off[i + 1] - C.ids_off[i]);
            CHECK_OK(tok_encode_openai(g_sd15, s, len, out, NULL));
            badoa += memcmp(out, C.padoa + 77 * j, sizeof out) != 0;
        }
        if (g_sd2) {
            CHECK_OK(tok_encode_padded(g_sd2, s, len, out2, &n_raw2));
            bad2 += memcmp(out2, C.pad2 + 77 * j, sizeof out2) != 0 || n_raw2 != (int)C.raw2[j];
        }
        if (g_bundled && g_sd15) {
            tok_encode_padded(g_sd15, s, len, out, NULL);
            tok_encode_padded(g_bundled, s, len, out2, NULL);
            badb += memcmp(out, out2, sizeof out) != 0;
        }
    }
    CHECK(bad15 == 0 && bad2 == 0 && badoa == 0 && badb == 0,
          "padded sequences differ: SD1.5 %d, SD2 %d, OpenAI framing %d, bundled vs folder %d (of %lld)", bad15, bad2,
          badoa, badb, (long long)C.n_pad);
    printf("padded: %lld strings x (SD1.5, SD2, OpenAI framing) identical to transformers\n", (long long)C.n_pad);
}

static int ids_equal(const tok_tokenizer *t, const char *s, const int32_t *want, int n_want) {
    int32_t *ids = NULL;
    int n = 0;
    if (tok_encode(t, s, -1, &ids, &n) != LMX_OK) return 0;
    int ok = n == n_want && (n == 0 || !memcmp(ids, want, (size_t)n * sizeof *ids));
    if (!ok) {
        fprintf(stderr, "  '%s' ->", s);
        for (int i = 0; i < n; i++) fprintf(stderr, " %d", ids[i]);
        fputc('\n', stderr);
    }
    lmx_free(ids);
    return ok;
}

static const char *REALITY_NEG =
    "extra heads, nsfw, deformed iris, deformed pupils, semi-realistic, cgi, 3d, render, sketch, cartoon, drawing, "
    "anime, text, cropped, out of frame, worst quality, low quality, jpeg artifacts, ugly, duplicate, morbid, "
    "mutilated, extra fingers, mutated hands, poorly drawn hands, poorly drawn face, mutation, deformed, blurry, "
    "dehydrated, bad anatomy, bad proportions, extra limbs, cloned face, disfigured, gross proportions, malformed "
    "limbs, missing arms, missing legs, extra arms, extra legs, fused fingers, too many fingers, long neck";
static const char *ANIME_NEG =
    "EasyNegative, extra fingers, extra limbs, fewer fingers, fewer limbs, multiple girls, multiple views, worst "
    "quality, low quality, depth of field, blurry, greyscale, 3D face, cropped, lowres, text, jpeg artifacts, "
    "signature, watermark, username, blurry, artist name, trademark, watermark, title, reference sheet, curvy, "
    "plump, fat, muscular female, strabismus, clothing cutout, side slit, tattoo, nsfw";
static const char *GUM_PROMPT =
    "RAW photo, subject, 8k uhd, dslr, high quality, Fujifilm XT3, half-length portrait from knees up, th3r0ck with "
    "no hair, muscular male, serious look on his face, school uniform, white shirt, red tie, blue pleated "
    "microskirt, film overlay, film grain, lib_bg, library bookshelf, blow bubble gum";

static void test_vectors(void) {
    const tok_tokenizer *t = g_sd15 ? g_sd15 : g_bundled;
    if (!t) return;
    static const int32_t raw[] = {6323, 1125, 267, 10300, 267, 279, 330, 84, 4414, 267, 33740, 267, 1400,
                                  3027, 267, 24765, 1052, 274, 267, 2349, 268, 10130, 5352, 633, 19115, 705};
    const char *base = "RAW photo, subject, 8k uhd, dslr, high quality, Fujifilm XT3, half-length portrait from knees up";
    CHECK(ids_equal(t, base, raw, 26), "reality base prompt (docs/numerics.md §2)");
    int64_t out[TOK_CONTEXT];
    int n_raw = 0;
    CHECK_OK(tok_encode_padded(t, base, -1, out, &n_raw));
    int ok = n_raw == 26 && out[0] == 49406 && out[27] == 49407;
    for (int i = 0; i < 26; i++) ok &= out[1 + i] == raw[i];
    for (int i = 28; i < 77; i++) ok &= out[i] == 49407;
    CHECK(ok, "reality base padded");
    static const int32_t mp[] = {12066, 267, 949, 3027};
    CHECK(ids_equal(t, "masterpiece, best quality", mp, 4), "anime base");
    CHECK_OK(tok_encode_padded(t, "", -1, out, &n_raw));
    ok = n_raw == 0 && out[0] == 49406;
    for (int i = 1; i < 77; i++) ok &= out[i] == 49407;
    CHECK(ok, "empty prompt -> 49406, 76 x 49407");

    /* Truncation (docs/testbed.md §4). */
    char *lost = NULL;
    int partial = -1;
    CHECK_OK(tok_encode_padded(t, REALITY_NEG, -1, out, &n_raw));
    CHECK(n_raw == 130 && !strcmp(tok_token_str(t, (int)out[75]), "face</w>") && out[76] == 49407,
          "reality negative: %d tokens, 75th kept %s", n_raw, tok_token_str(t, (int)out[75]));
    CHECK_OK(tok_dropped_text(t, REALITY_NEG, -1, &lost, &partial));
    CHECK(lost && !strncmp(lost, ", mutation, deformed, blurry", 28) && strstr(lost, "long neck") && partial == 0,
          "reality negative dropped '%s' partial %d", lost ? lost : "(null)", partial);
    lmx_free(lost);
    CHECK_OK(tok_encode_padded(t, ANIME_NEG, -1, out, &n_raw));
    CHECK(n_raw == 96 && !strcmp(tok_token_str(t, (int)out[75]), ",</w>") &&
              !strcmp(tok_token_str(t, (int)out[74]), "curvy</w>"),
          "anime negative: %d tokens", n_raw);
    CHECK_OK(tok_dropped_text(t, ANIME_NEG, -1, &lost, &partial));
    CHECK(lost && !strcmp(lost, "plump, fat, muscular female, strabismus, clothing cutout, side slit, tattoo, nsfw") &&
              partial == 0, "anime negative dropped '%s'", lost ? lost : "(null)");
    lmx_free(lost);
    CHECK_OK(tok_encode_padded(t, GUM_PROMPT, -1, out, &n_raw));
    CHECK(n_raw == 76 && !strcmp(tok_token_str(t, (int)out[75]), "bubble</w>"), "gum prompt: %d tokens", n_raw);
    CHECK_OK(tok_dropped_text(t, GUM_PROMPT, -1, &lost, &partial));
    CHECK(lost && !strcmp(lost, "gum") && partial == 0, "gum prompt dropped '%s'", lost ? lost : "(null)");
    lmx_free(lost);
    const char *ex = "RAW photo, subject, 8k uhd, dslr, high quality, Fujifilm XT3, half-length portrait from knees up, "
                     "iu1, long straight black hair, hazel eyes, diamond stud earrings, mahalaiuniform, white shirt "
                     "short sleeves, black pencil skirt, film overlay, film grain, lib_bg, library bookshelf, "
                     "transparent umbrella";
    CHECK_OK(tok_encode_padded(t, ex, -1, out, &n_raw));
    CHECK(n_raw == 71 && out[72] == 49407, "docs/testbed.md §4 example: %d tokens", n_raw);
    CHECK_OK(tok_dropped_text(t, base, -1, &lost, &partial));
    CHECK(lost == NULL && partial == 0, "nothing dropped");
    /* a word split by the cut: "mahalaiuniform" -> maha + ... */
    char longp[1024] = "";
    for (int i = 0; i < 74; i++) strcat(longp, "a ");
    strcat(longp, "mahalaiuniform gum");
    CHECK_OK(tok_dropped_text(t, longp, -1, &lost, &partial));
    CHECK(lost && !strcmp(lost, "mahalaiuniform gum") && partial == 1, "partial word: '%s' %d", lost ? lost : "(null)",
          partial);
    lmx_free(lost);
    /* NFC changes the word: whole word reported */
    longp[0] = 0;
    for (int i = 0; i < 75; i++) strcat(longp, "a ");
    strcat(longp, "  Cafe\xcc\x81 au lait\t");
    CHECK_OK(tok_dropped_text(t, longp, -1, &lost, &partial));
    CHECK(lost && !strcmp(lost, "Cafe\xcc\x81 au lait"), "NFC word: '%s'", lost ? lost : "(null)");
    lmx_free(lost);

    /* OpenAI framing of a long prompt: first 77, last set to EOT. */
    CHECK_OK(tok_encode_openai(t, REALITY_NEG, -1, out, &n_raw));
    CHECK(out[0] == 49406 && out[76] == 49407 && !strcmp(tok_token_str(t, (int)out[75]), "face</w>"), "openai long");
    CHECK_OK(tok_encode_openai(t, "a photo", -1, out, NULL));
    CHECK(out[3] == 49407 && out[4] == 0 && out[76] == 0, "openai pads with 0");

    /* decode */
    int32_t *ids = NULL;
    int n = 0;
    char *txt = NULL;
    CHECK_OK(tok_encode(t, "Caf\xc3\xa9 na\xc3\xafve, 8k!", -1, &ids, &n));
    CHECK_OK(tok_decode(t, ids, n, &txt));
    CHECK(txt && !strcmp(txt, "caf\xc3\xa9 na\xc3\xafve , 8 k !"), "decode '%s'", txt ? txt : "(null)");
    lmx_free(txt);
    lmx_free(ids);
}

/* A 515-entry tokenizer: the 512 byte symbols, "ab", <|startoftext|>,
 * <|endoftext|>; merges "a b" and "ab c</w>" (whose result is not in the
 * vocabulary). */
static void write_small(const char *dir, const char *merges, const char *extra_vocab) {
    char p[1024];
    mkdir(dir, 0755);
    snprintf(p, sizeof p, "%s/vocab.json", dir);
    FILE *f = fopen(p, "wb");
    if (!f) return;
    fputc('{', f);
    for (int w = 0; w < 2; w++)
        for (int b = 0; b < 256; b++) {
            char s[16];
            int n = put_utf8(b2u(b), s);
            if (w) memcpy(s + n, "</w>", 4), n += 4;
            s[n] = 0;
            json_str(f, s);
            fprintf(f, ":%d,", w * 256 + b);
        }
    fprintf(f, "\"ab\":512,\"<|startoftext|>\":513,\"<|endoftext|>\":514%s}", extra_vocab ? extra_vocab : "");
    fclose(f);
    snprintf(p, sizeof p, "%s/merges.txt", dir);
    write_text(p, merges);
}

static void test_small_and_bad_files(void) {
    const char *d = tmp_path("small");
    write_small(d, "#version: 0.2\na b\nab c</w>\n", NULL);
    tok_tokenizer *t = NULL;
    lmx_log_set(LMX_LOG_ERROR, NULL, NULL);
    CHECK_OK(tok_load_dir(&t, d));
    lmx_log_set(LMX_LOG_WARN, NULL, NULL);
    if (t) {
        CHECK(tok_n_vocab(t) == 515 && tok_unk_id(t) == 514 && tok_pad_id(t) == 514 && tok_bos_id(t) == 513, "small ids");
        /* write_small numbers the byte symbols by byte value */
        static const int32_t abx[] = {512, 256 + 'x'};
        CHECK(ids_equal(t, "abx", abx, 2), "ab + x</w>");
        static const int32_t abc[] = {514};
        CHECK(ids_equal(t, "abc", abc, 1), "a merge result missing from vocab.json encodes as unk");
        static const int32_t ab[] = {'a', 256 + 'b'};
        CHECK(ids_equal(t, "AB", ab, 2), "no merge for (a, b</w>)");
        static const int32_t spec[] = {513, 'x', 256 + 'y', 514};
        CHECK(ids_equal(t, "<|startoftext|>xy<|endoftext|>", spec, 4), "special tokens");
    }
    tok_free(t);
    t = NULL;

    struct {
        const char *vocab_extra, *merges, *vocab_override, *map, *cfg;
        lmx_status want;
        const char *msg;
    } cases[] = {
        {NULL, "#v\na b\n", "{\"a\": 0, \"b\": }", NULL, NULL, LMX_ERR_FORMAT, "vocab.json:1:"},
        {NULL, "#v\na b\n", "{\n\"a\": 0,\n\"b\" 1\n}", NULL, NULL, LMX_ERR_FORMAT, "vocab.json:3:"},
        {NULL, "#v\na b\n", "{\"a\": 0, \"b\": 0}", NULL, NULL, LMX_ERR_FORMAT, "both have id 0"},
        {NULL, "#v\na b\n", "{\"a\": 0, \"b\": 2}", NULL, NULL, LMX_ERR_FORMAT, "outside 0..1"},
        {NULL, "#v\na b\n", "{\"a\": 0, \"b\": -1}", NULL, NULL, LMX_ERR_FORMAT, "outside"},
        {NULL, "#v\na b\n", "{\"a\": 0.5}", NULL, NULL, LMX_ERR_FORMAT, "must be an integer"},
        {NULL, "#v\na b\n", "{\"a\": \"0\"}", NULL, NULL, LMX_ERR_FORMAT, "must be an integer"},
        {NULL, "#v\na b\n", "{\"a\": 0, \"a\": 1}", NULL, NULL, LMX_ERR_FORMAT, "appears twice"},
        {NULL, "#v\na b\n", "[1, 2]", NULL, NULL, LMX_ERR_FORMAT, "expected a JSON object"},
        {NULL, "#v\na b\n", "{}", NULL, NULL, LMX_ERR_FORMAT, "empty vocabulary"},
        {NULL, "#v\na b\nab\n", NULL, NULL, NULL, LMX_ERR_FORMAT, "merges.txt:3: expected two symbols"},
        {NULL, "#v\na b\n\nab c\n", NULL, NULL, NULL, LMX_ERR_FORMAT, "merges.txt:3: expected two symbols"},
        {NULL, "\n\n#v\na b\na b c\n", NULL, NULL, NULL, LMX_ERR_FORMAT, "merges.txt:5: expected two symbols"},
        {NULL, "#v\na \xff\n", NULL, NULL, NULL, LMX_ERR_FORMAT, "merges.txt:2: invalid UTF-8"},
        {NULL, "#version only\n", NULL, NULL, NULL, LMX_ERR_FORMAT, "no merges"},
        {NULL, "#v\na b\n", NULL, NULL, "{\"model_max_length\": 77,}", LMX_ERR_FORMAT, "tokenizer_config.json:1:"},
        {NULL, "#v\na b\n", NULL, "[]", NULL, LMX_ERR_FORMAT, "special_tokens_map.json: expected a JSON object"},
        {NULL, "#v\na b\n", NULL, NULL, "{\"model_max_length\": 100}", LMX_ERR_UNSUPPORTED, "at most 77"},
        {NULL, "#v\na b\n", NULL, NULL, "{\"model_max_length\": 1}", LMX_ERR_FORMAT, "integer >= 2"},
        {NULL, "#v\na b\n", NULL, "{\"pad_token\": \"zzz\"}", NULL, LMX_ERR_UNSUPPORTED, "pad_token 'zzz' is not in"},
        {NULL, "#v\na b\n", NULL, "{\"pad_token\": 5}", NULL, LMX_ERR_FORMAT, "pad_token: expected a string"},
        {NULL, "#v\na b\n", NULL, "{\"bos_token\": {\"content\": \"ab\", \"single_word\": true}}", NULL,
         LMX_ERR_UNSUPPORTED, "single_word"},
        {NULL, "#v\na b\n", NULL, NULL, "{\"added_tokens_decoder\": {\"600\": {\"content\": \"<x>\"}}}",
         LMX_ERR_UNSUPPORTED, "beyond the 515-entry vocabulary"},
        {NULL, "#v\na b\n", NULL, NULL, "{\"added_tokens_decoder\": {\"x\": {\"content\": \"<x>\"}}}", LMX_ERR_FORMAT,
         "bad entry"},
    };
    for (size_t k = 0; k < LMX_ARRAY_LEN(cases); k++) {
        char name[64], p[1024];
        snprintf(name, sizeof name, "bad%zu", k);
        const char *dir = tmp_path(name);
        write_small(dir, cases[k].merges, cases[k].vocab_extra);
        if (cases[k].vocab_override) {
            snprintf(p, sizeof p, "%s/vocab.json", dir);
            write_text(p, cases[k].vocab_override);
        }
        if (cases[k].map) {
            snprintf(p, sizeof p, "%s/special_tokens_map.json", dir);
            write_text(p, cases[k].map);
        }
        if (cases[k].cfg) {
            snprintf(p, sizeof p, "%s/tokenizer_config.json", dir);
            write_text(p, cases[k].cfg);
        }
        tok_tokenizer *b = NULL;
        lmx_status st = tok_load_dir(&b, dir);
        CHECK(st == cases[k].want && b == NULL && strstr(lmx_errmsg(), cases[k].msg),
              "case %zu: got %s '%s', want %s containing '%s'", k, lmx_status_name(st), lmx_errmsg(),
              lmx_status_name(cases[k].want), cases[k].msg);
        if (lmx_test_verbose()) printf("  bad file %zu: %s\n", k, lmx_errmsg());
        tok_free(b);
    }

    /* model_max_length: configured, sentinel, SD2 pad. */
    write_small(tmp_path("ml"), "#v\na b\n", NULL);
    write_text(tmp_path("ml/tokenizer_config.json"), "{\"model_max_length\": 8, \"pad_token\": \"!\"}");
    lmx_log_set(LMX_LOG_ERROR, NULL, NULL);
    CHECK_OK(tok_load_dir(&t, tmp_path("ml")));
    if (t) {
        int64_t out[8];
        int n_raw;
        CHECK(tok_max_length(t) == 8 && tok_pad_id(t) == '!', "max length 8, pad '!'");
        CHECK_OK(tok_encode_padded(t, "xy!", -1, out, &n_raw));
        /* "!" is an added token (the pad): split out, id 0 */
        int64_t want[8] = {513, 'x', 256 + 'y', '!', 514, '!', '!', '!'};
        CHECK(!memcmp(out, want, sizeof out) && n_raw == 3, "short sequence with '!' pad");
        CHECK_OK(tok_encode_padded(t, "a b c d e f g h", -1, out, &n_raw));
        CHECK(n_raw == 8 && out[0] == 513 && out[6] == 256 + 'f' && out[7] == 514, "truncated to 8");
        tok_free(t);
        t = NULL;
    }
    write_text(tmp_path("ml/tokenizer_config.json"), "{\"model_max_length\": 1000000000000000019884624838656}");
    CHECK_OK(tok_load_dir(&t, tmp_path("ml")));
    if (t) CHECK(tok_max_length(t) == 77, "transformers' sentinel -> 77");
    tok_free(t);
    t = NULL;
    lmx_log_set(LMX_LOG_WARN, NULL, NULL);

    /* Missing files. */
    lmx_status st = tok_load_dir(&t, tmp_path("nothing-here"));
    CHECK(st == LMX_ERR_IO && strstr(lmx_errmsg(), "nothing-here/vocab.json"), "missing vocab: %s", lmx_errmsg());
    mkdir(tmp_path("nomerges"), 0755);
    copy_file(tmp_path("small/vocab.json"), tmp_path("nomerges/vocab.json"));
    st = tok_load_dir(&t, tmp_path("nomerges"));
    CHECK(st == LMX_ERR_IO && strstr(lmx_errmsg(), "merges.txt"), "missing merges: %s", lmx_errmsg());
    st = tok_load_merges_gz(&t, tmp_path("none.gz"));
    CHECK(st == LMX_ERR_IO && strstr(lmx_errmsg(), "none.gz"), "missing gz: %s", lmx_errmsg());
    gzFile gz = gzopen(tmp_path("short.gz"), "wb");
    if (gz) {
        gzputs(gz, "\"bpe_simple_vocab_16e6.txt#version: 0.2\ni n\nt h\n");
        gzclose(gz);
    }
    st = tok_load_merges_gz(&t, tmp_path("short.gz"));
    CHECK(st == LMX_ERR_FORMAT && strstr(lmx_errmsg(), "CLIP needs 48894"), "short gz: %s", lmx_errmsg());
    write_text(tmp_path("trunc.gz"), "\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03\xab\xce");
    st = tok_load_merges_gz(&t, tmp_path("trunc.gz"));
    CHECK(st == LMX_ERR_FORMAT && t == NULL, "truncated gz: %s", lmx_errmsg());

    /* The data directory. */
    char path[1024];
    setenv("LMX_DATA_DIR", g_tmp, 1);
    st = tok_load_bundled(&t);
    CHECK(st == LMX_ERR_IO && strstr(lmx_errmsg(), "LMX_DATA_DIR"), "LMX_DATA_DIR without the file: %s", lmx_errmsg());
    setenv("LMX_DATA_DIR", lmx_src_path("data"), 1);
    CHECK_OK(lmx_data_find(TOK_BUNDLED_MERGES, path, sizeof path));
    CHECK(strstr(path, "/data/clip/bpe_simple_vocab_16e6.txt.gz") != NULL, "found %s", path);
    unsetenv("LMX_DATA_DIR");
    CHECK_OK(lmx_data_find(TOK_BUNDLED_MERGES, path, sizeof path));
    CHECK(lmx_data_find("../etc/passwd", path, sizeof path) == LMX_ERR_ARG, "'..' refused");
    CHECK(lmx_data_find("/etc/passwd", path, sizeof path) == LMX_ERR_ARG, "absolute refused");
    CHECK(lmx_data_find("clip/nope.gz", path, sizeof path) == LMX_ERR_IO && strstr(lmx_errmsg(), "clip/nope.gz"),
          "missing data file: %s", lmx_errmsg());
}

static void test_bad_input(void) {
    const tok_tokenizer *t = g_bundled;
    if (!t) return;
    int32_t *ids = NULL;
    int n = 0;
    lmx_status st = tok_encode(t, "ab\xc3(", -1, &ids, &n);
    CHECK(st == LMX_ERR_ARG && strstr(lmx_errmsg(), "invalid UTF-8 at byte 2") && !ids, "bad utf-8: %s", lmx_errmsg());
    st = tok_encode(t, "\xed\xa0\x80", -1, &ids, &n); /* a surrogate */
    CHECK(st == LMX_ERR_ARG && strstr(lmx_errmsg(), "byte 0"), "surrogate: %s", lmx_errmsg());
    st = tok_encode(t, "\xc0\xaf", -1, &ids, &n); /* overlong '/' */
    CHECK(st == LMX_ERR_ARG, "overlong");
    size_t big = TOK_MAX_TEXT + 1;
    char *s = lmx_malloc(big + 1);
    memset(s, 'a', big);
    s[big] = 0;
    st = tok_encode(t, s, -1, &ids, &n);
    CHECK(st == LMX_ERR_ARG && strstr(lmx_errmsg(), "more than"), "too long: %s", lmx_errmsg());
    /* the longest accepted single word is encoded (its time: bench/bench_text) */
    for (size_t i = 0; i < big; i++) s[i] = (char)('a' + (i * 7 + i / 26) % 26);
    double t0 = lmx_now();
    CHECK_OK(tok_encode(t, s, TOK_MAX_TEXT, &ids, &n));
    double dt = lmx_now() - t0;
    printf("timing: one %d-byte word: %.0f ms, %d ids\n", TOK_MAX_TEXT, dt * 1e3, n);
    lmx_free(ids);
    lmx_free(s);
    CHECK_OK(tok_encode(t, "", 0, &ids, &n));
    CHECK(n == 0 && ids == NULL, "empty");
    CHECK_OK(tok_encode(t, " \t\n\x01", -1, &ids, &n));
    CHECK(n == 0 && ids == NULL, "blank");
}

static void test_faults(void) {
    /* Every allocation failure while loading or encoding is a clean error. */
    int fails = 0, crashes = 0;
    for (long k = 1; k < 400; k++) {
        tok_tokenizer *t = NULL;
        lmx_fault_set_fail_at(k);
        lmx_status st = tok_load_merges_gz(&t, lmx_src_path("data/clip/bpe_simple_vocab_16e6.txt.gz"));
        lmx_fault_set_fail_at(0);
        if (st == LMX_OK) {
            tok_free(t);
            break;
        }
        fails++;
        crashes += st != LMX_ERR_NOMEM || t != NULL;
    }
    CHECK(fails > 5 && crashes == 0, "bundled load: %d allocation failures, %d wrong results", fails, crashes);
    int efails = 0, ebad = 0;
    for (long k = 1; k < 200 && g_bundled; k++) {
        int64_t out[TOK_CONTEXT];
        lmx_fault_set_fail_at(k);
        lmx_status st = tok_encode_padded(g_bundled, "Caf\xc3\xa9 <|endoftext|> \xe7\x8c\xab, th3r0ck", -1, out, NULL);
        char *lost = NULL;
        lmx_status st2 = tok_dropped_text(g_bundled, REALITY_NEG, -1, &lost, NULL);
        lmx_fault_set_fail_at(0);
        lmx_free(lost);
        if (st == LMX_OK && st2 == LMX_OK) break;
        efails++;
        ebad += (st != LMX_OK && st != LMX_ERR_NOMEM) || (st2 != LMX_OK && st2 != LMX_ERR_NOMEM);
    }
    CHECK(efails > 2 && ebad == 0, "encode: %d allocation failures, %d wrong results", efails, ebad);
    int lfails = 0, lbad = 0;
    for (long k = 1; k < 5000; k++) {
        tok_tokenizer *t = NULL;
        lmx_fault_set_fail_at(k);
        lmx_status st = tok_load_dir(&t, tmp_path("ml"));
        lmx_fault_set_fail_at(0);
        if (st == LMX_OK) {
            tok_free(t);
            break;
        }
        lfails++;
        lbad += st != LMX_ERR_NOMEM || t != NULL;
    }
    CHECK(lfails > 100 && lbad == 0, "folder load: %d allocation failures, %d wrong results", lfails, lbad);
}

static void *thread_main(void *arg) {
    int *bad = arg;
    *bad = corpus_mismatches(g_sd15, "thread", 0);
    return NULL;
}

static void test_threads(void) {
    if (!g_sd15 || !C.n) return;
    pthread_t th[2];
    int bad[2] = {-1, -1};
    for (int i = 0; i < 2; i++) pthread_create(&th[i], NULL, thread_main, &bad[i]);
    for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
    CHECK(bad[0] == 0 && bad[1] == 0, "two threads: %d and %d mismatches", bad[0], bad[1]);
}

static void test_speed(void) {
    const tok_tokenizer *t = g_sd15 ? g_sd15 : g_bundled;
    if (!t) return;
    int64_t out[TOK_CONTEXT];
    int n_raw = 0;
    const int reps = 2000;
    double t0 = lmx_now();
    for (int i = 0; i < reps; i++) tok_encode_padded(t, GUM_PROMPT, -1, out, &n_raw);
    double per = (lmx_now() - t0) / reps;
    const char *uni = "Caf\xc3\xa9 na\xc3\xafve \xce\x9f\xce\x94\xce\x9f\xce\xa3 \xe7\x8c\xab\xe3\x81\xae\xe5\x86\x99\xe7\x9c\x9f "
                      "\xf0\x9f\x91\x8d\xf0\x9f\x8f\xbd, \xc4\xb0stanbul, Stra\xc3\x9f" "e, \xed\x95\x9c\xea\xb5\xad\xec\x96\xb4";
    t0 = lmx_now();
    int n_uni = 0;
    for (int i = 0; i < reps; i++) tok_encode_padded(t, uni, -1, out, &n_uni);
    double per_uni = (lmx_now() - t0) / reps;
    printf("timing: encode a %d-token testbed prompt %.1f us; a %d-token non-ASCII prompt %.1f us (mean of %d)\n",
           n_raw, per * 1e6, n_uni, per_uni * 1e6, reps);
}

int main(void) {
    test_uprops();
    test_load();
    test_corpus();
    test_vectors();
    test_small_and_bad_files();
    test_bad_input();
    test_threads();
    test_faults();
    test_speed();
    tok_free(g_bundled);
    tok_free(g_sd15);
    tok_free(g_sd2);
    tok_free(g_tiny);
    free_corpus();
    if (g_tmp[0]) {
        char cmd[600];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_tmp);
        if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", g_tmp);
    }
    return lmx_test_finish();
}
