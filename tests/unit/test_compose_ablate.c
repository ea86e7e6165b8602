/*
 * test_compose_ablate.c - PAW prompt ablation and PTW trigger strings
 * (src/compose/ablate.c) against docs/methods.md §10.4 and against
 * Python's `re` (reference/gen_compose.py -> tests/fixtures/compose/
 * ablation.json): every composition set of both testbed subsets (480 sets,
 * FNV-1a hashes of P\i, full text for every 16th set) and synthetic strings
 * that probe case folding, word boundaries, Unicode and the comma clean-up.
 */
#include <cjson/cJSON.h>
#include <string.h>

#include "compose/compose.h"
#include "harness.h"

#define FIXTURE "tests/fixtures/compose/ablation.json"

static const char *B = "RAW photo, subject, 8k uhd, dslr, high quality, Fujifilm XT3, half-length portrait from knees up";

static void check_ablate(const char *what, const char *prompt, const char *const *trig, int n, const char *expect) {
    char *got = NULL;
    CHECK_OK(compose_ablate(prompt, trig, n, &got));
    CHECK(got && !strcmp(got, expect), "%s:\n  got      \"%s\"\n  expected \"%s\"", what, got ? got : "(null)", expect);
    lmx_free(got);
}

static char *cat(const char *a, const char *b) {
    size_t n = strlen(a) + strlen(b) + 1;
    char *s = lmx_malloc(n);
    snprintf(s, n, "%s%s", a, b);
    return s;
}

/* §10.4, verbatim. */
static void test_spec_vectors(void) {
    static const char *C1[] = {"iu1", "long straight black hair", "hazel eyes", "diamond stud earrings"};
    static const char *CL1[] = {"mahalaiuniform", "white shirt short sleeves", "black pencil skirt"};
    static const char *S1[] = {"film overlay", "film grain"};
    static const char *BG1[] = {"lib_bg", "library bookshelf"};
    static const char *O1[] = {"transparent umbrella"};
    static const char *C2[] = {"scarlett", "short red hair", "blue eyes"};
    static const char *CL2[] = {"school uniform", "white shirt", "red tie", "blue pleated microskirt"};
    static const char *C3[] = {"th3r0ck with no hair", "muscular male", "serious look on his face"};
    static const char *S2[] = {"bright lighting"};
    char *P, *E;

    P = cat(B, ", iu1, long straight black hair, hazel eyes, diamond stud earrings, mahalaiuniform, white shirt "
               "short sleeves, black pencil skirt");
    E = cat(B, ", , , mahalaiuniform, white shirt short sleeves, black pencil skirt");
    check_ablate("(c1, cl1) \\ character_1", P, C1, 4, E);
    lmx_free(E);
    E = cat(B, ", iu1, long straight black hair, hazel eyes, diamond stud earrings,");
    check_ablate("(c1, cl1) \\ clothing_1", P, CL1, 3, E);
    lmx_free(E);
    lmx_free(P);

    P = cat(B, ", iu1, long straight black hair, hazel eyes, diamond stud earrings, mahalaiuniform, white shirt "
               "short sleeves, black pencil skirt, film overlay, film grain, lib_bg, library bookshelf, transparent "
               "umbrella");
    E = cat(B, ", iu1, long straight black hair, hazel eyes, diamond stud earrings, , film overlay, film grain, "
               "lib_bg, library bookshelf, transparent umbrella");
    check_ablate("N=5 \\ clothing_1", P, CL1, 3, E);
    lmx_free(E);
    E = cat(B, ", iu1, long straight black hair, hazel eyes, diamond stud earrings, mahalaiuniform, white shirt "
               "short sleeves, black pencil skirt, , lib_bg, library bookshelf, transparent umbrella");
    check_ablate("N=5 \\ style_1", P, S1, 2, E);
    lmx_free(E);
    E = cat(B, ", iu1, long straight black hair, hazel eyes, diamond stud earrings, mahalaiuniform, white shirt "
               "short sleeves, black pencil skirt, film overlay, film grain, , transparent umbrella");
    check_ablate("N=5 \\ background_1", P, BG1, 2, E);
    lmx_free(E);
    E = cat(B, ", iu1, long straight black hair, hazel eyes, diamond stud earrings, mahalaiuniform, white shirt "
               "short sleeves, black pencil skirt, film overlay, film grain, lib_bg, library bookshelf");
    check_ablate("N=5 \\ object_1", P, O1, 1, E);
    lmx_free(E);
    lmx_free(P);

    P = cat(B, ", scarlett, short red hair, blue eyes, school uniform, white shirt, red tie, blue pleated microskirt, "
               "film overlay, film grain, lib_bg, library bookshelf, transparent umbrella");
    E = cat(B, ", , school uniform, white shirt, red tie, blue pleated microskirt, film overlay, film grain, lib_bg, "
               "library bookshelf, transparent umbrella");
    check_ablate("(c2, cl2, s1, bg1, o1) \\ character_2", P, C2, 3, E);
    lmx_free(E);
    E = cat(B, ", scarlett, short red hair, blue eyes, , , film overlay, film grain, lib_bg, library bookshelf, "
               "transparent umbrella");
    check_ablate("(c2, cl2, s1, bg1, o1) \\ clothing_2", P, CL2, 4, E);
    lmx_free(E);
    lmx_free(P);

    P = cat(B, ", th3r0ck with no hair, muscular male, serious look on his face, bright lighting");
    E = cat(B, ", , bright lighting");
    check_ablate("(c3, s2) \\ character_3", P, C3, 3, E);
    lmx_free(E);
    E = cat(B, ", th3r0ck with no hair, muscular male, serious look on his face");
    check_ablate("(c3, s2) \\ style_2", P, S2, 1, E);
    lmx_free(E);
    lmx_free(P);

    /* anime: "toast" first deletes every toast, so "toast in mouth" no longer matches */
    static const char *O2[] = {"toast", "toast in mouth"};
    check_ablate("anime \\ object_2",
                 "masterpiece, best quality, kamado nezuko, black hair, pink eyes, forehead, gmuniform, blue "
                 "thighhighs, long sleeves, lineart, hand-drawn style, bamboolight, outdoors, bamboo, toast, toast in "
                 "mouth",
                 O2, 2,
                 "masterpiece, best quality, kamado nezuko, black hair, pink eyes, forehead, gmuniform, blue "
                 "thighhighs, long sleeves, lineart, hand-drawn style, bamboolight, outdoors, bamboo, in mouth");

    /* PTW strings */
    char *s = NULL;
    CHECK_OK(compose_trigger_string(C1, 4, &s));
    CHECK(s && !strcmp(s, "iu1, long straight black hair, hazel eyes, diamond stud earrings"), "S_character_1: %s", s);
    lmx_free(s);
    CHECK_OK(compose_trigger_string(O1, 1, &s));
    CHECK(s && !strcmp(s, "transparent umbrella"), "S_object_1: %s", s);
    lmx_free(s);
    static const char *EMPTY[] = {"", "film grain", "", "x"};
    CHECK_OK(compose_trigger_string(EMPTY, 4, &s));
    CHECK(s && !strcmp(s, "film grain, x"), "empty triggers skipped: %s", s);
    lmx_free(s);
    CHECK_OK(compose_trigger_string(NULL, 0, &s));
    CHECK(s && !*s, "no triggers: '%s'", s);
    lmx_free(s);
}

static void test_phrase(void) {
    static const struct { const char *s, *t, *expect; } R[] = {
        {"iu1, IU1, iu12, xiu1, iu1_a, iu1-a", "iu1", ", , iu12, xiu1, iu1_a, -a"},
        {"a toast, toasts", "toast", "a , toasts"},
        {"(x), x", "(x)", "(x), x"}, /* \b before '(' needs a word character before it */
        {"a(x), x", "(x)", "a(x), x"}, /* ... and after ')' one after it */
        {"a(x)b, (x)", "(x)", "ab, (x)"},
        {"same", "", "same"},
        {"", "x", ""},
        {"ſun, Sun, SUN", "sun", ", , "},
        {"\xc4\xb0stanbul", "istanbul", ""}, /* U+0130 lower-cases to 'i' in sre */
    };
    for (size_t i = 0; i < LMX_ARRAY_LEN(R); i++) {
        char *got = NULL;
        CHECK_OK(compose_remove_phrase(R[i].s, R[i].t, &got));
        CHECK(got && !strcmp(got, R[i].expect), "remove '%s' from '%s': got '%s', expected '%s'", R[i].t, R[i].s, got,
              R[i].expect);
        lmx_free(got);
    }
    char *got = NULL;
    CHECK(compose_remove_phrase("ab\xff", "a", &got) == LMX_ERR_ARG && !got, "invalid UTF-8 accepted");
    CHECK(strstr(lmx_errmsg(), "byte 2"), "message: %s", lmx_errmsg());
    CHECK(compose_ablate("\xc0\x80", NULL, 0, &got) == LMX_ERR_ARG, "overlong NUL accepted");
    CHECK(compose_ablate("\xed\xa0\x80", NULL, 0, &got) == LMX_ERR_ARG, "surrogate accepted");
    CHECK(compose_ablate("abc\xe2\x82", NULL, 0, &got) == LMX_ERR_ARG, "truncated sequence accepted");
    static const char *bad[] = {NULL};
    CHECK(compose_ablate("abc", bad, 1, &got) == LMX_ERR_ARG, "NULL trigger accepted");
    CHECK(compose_utf8_len("") == 0 && compose_utf8_len("abc") == 3 && compose_utf8_len("caf\xc3\xa9") == 4 &&
              compose_utf8_len("\xf0\x9f\x98\x80!") == 2,
          "utf8 length");
    /* a long run of spaces is collapsed (its time: bench/bench_text) */
    size_t n = 200000;
    char *sp = lmx_malloc(n + 3);
    memset(sp, ' ', n);
    memcpy(sp + n, "a,", 3);
    CHECK_OK(compose_ablate(sp, NULL, 0, &got));
    CHECK(got && !strcmp(got, "a"), "spaces: '%.10s'", got ? got : "");
    lmx_free(got);
    lmx_free(sp);
}

static uint64_t fnv1a64(const char *s) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) h = (h ^ *p) * 0x100000001b3ull;
    return h;
}

/* Every testbed set: P = base + ", " + all triggers; P \ i for each LoRA. */
static void test_fixture(void) {
    char *text = NULL;
    size_t len = 0;
    CHECK_OK(lmx_read_file(lmx_src_path(FIXTURE), &text, &len, 16u << 20));
    if (!text) return;
    cJSON *root = cJSON_Parse(text);
    lmx_free(text);
    CHECK(root, "%s: not JSON", FIXTURE);
    if (!root) return;
    int n_sets = 0, n_strings = 0, n_full = 0;
    const cJSON *sub;
    cJSON_ArrayForEach(sub, cJSON_GetObjectItem(root, "subsets")) {
        const char *base = cJSON_GetObjectItem(sub, "base")->valuestring;
        const cJSON *loras = cJSON_GetObjectItem(sub, "loras"), *set;
        cJSON_ArrayForEach(set, cJSON_GetObjectItem(sub, "sets")) {
            const cJSON *ids = cJSON_GetObjectItem(set, "ids"), *fnv = cJSON_GetObjectItem(set, "fnv");
            const cJSON *full = cJSON_GetObjectItem(set, "ablated");
            int n = cJSON_GetArraySize(ids);
            /* the prompt */
            size_t cap = strlen(base) + 1;
            for (int i = 0; i < n; i++) {
                const cJSON *t;
                cJSON_ArrayForEach(t, cJSON_GetObjectItem(loras, cJSON_GetArrayItem(ids, i)->valuestring))
                    cap += strlen(t->valuestring) + 2;
            }
            char *P = lmx_malloc(cap), *d = P;
            d += sprintf(d, "%s", base);
            for (int i = 0; i < n; i++) {
                const cJSON *t;
                cJSON_ArrayForEach(t, cJSON_GetObjectItem(loras, cJSON_GetArrayItem(ids, i)->valuestring))
                    d += sprintf(d, ", %s", t->valuestring);
            }
            for (int i = 0; i < n; i++) {
                const cJSON *tr = cJSON_GetObjectItem(loras, cJSON_GetArrayItem(ids, i)->valuestring);
                int m = cJSON_GetArraySize(tr);
                const char *trig[8];
                for (int j = 0; j < m && j < 8; j++) trig[j] = cJSON_GetArrayItem(tr, j)->valuestring;
                char *got = NULL;
                CHECK_OK(compose_ablate(P, trig, m, &got));
                if (!got) continue;
                char hex[17];
                snprintf(hex, sizeof hex, "%016llx", (unsigned long long)fnv1a64(got));
                const char *want = cJSON_GetArrayItem(fnv, i)->valuestring;
                CHECK(!strcmp(hex, want), "set %d (%s...) \\ %s: hash %s, expected %s; got \"%s\"", n_sets,
                      cJSON_GetArrayItem(ids, 0)->valuestring, cJSON_GetArrayItem(ids, i)->valuestring, hex, want, got);
                if (full) {
                    const char *w = cJSON_GetArrayItem(full, i)->valuestring;
                    CHECK(!strcmp(got, w), "set %d \\ %s:\n  got      \"%s\"\n  expected \"%s\"", n_sets,
                          cJSON_GetArrayItem(ids, i)->valuestring, got, w);
                    n_full++;
                }
                n_strings++;
                lmx_free(got);
            }
            lmx_free(P);
            n_sets++;
        }
    }
    CHECK(n_sets == 480, "%d testbed sets, expected 480", n_sets);
    int n_syn = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(root, "synthetic")) {
        const char *prompt = cJSON_GetObjectItem(c, "prompt")->valuestring;
        const cJSON *tr = cJSON_GetObjectItem(c, "triggers");
        int m = cJSON_GetArraySize(tr);
        const char *trig[8];
        for (int j = 0; j < m && j < 8; j++) trig[j] = cJSON_GetArrayItem(tr, j)->valuestring;
        char *got = NULL, *ptw = NULL;
        CHECK_OK(compose_ablate(prompt, trig, m, &got));
        CHECK_OK(compose_trigger_string(trig, m, &ptw));
        const char *want = cJSON_GetObjectItem(c, "ablated")->valuestring;
        CHECK(got && !strcmp(got, want), "synthetic '%s':\n  got      \"%s\"\n  expected \"%s\"", prompt, got, want);
        CHECK(ptw && !strcmp(ptw, cJSON_GetObjectItem(c, "ptw")->valuestring), "synthetic PTW '%s'", ptw);
        CHECK(got && (int)compose_utf8_len(got) == cJSON_GetObjectItem(c, "len")->valueint, "len('%s')", got);
        lmx_free(got);
        lmx_free(ptw);
        n_syn++;
    }
    CHECK(n_syn >= 20, "%d synthetic cases", n_syn);
    if (lmx_test_verbose())
        printf("ablation: %d sets, %d ablated prompts (%d in full), %d synthetic\n", n_sets, n_strings, n_full, n_syn);
    cJSON_Delete(root);
}

int main(void) {
    test_spec_vectors();
    test_phrase();
    test_fixture();
    return lmx_test_finish();
}
