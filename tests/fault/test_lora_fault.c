/*
 * test_lora_fault.c - bad LoRA files are clear errors (or warnings) that
 * name the culprit, never crashes; nothing stays allocated.
 *
 * Files are written with st_writer into a mkdtemp folder, for the tiny
 * model (tests/fixtures/models/tiny-sd):
 *   - content: NaN/Inf weights (a warning naming the key, the LoRA loads),
 *     non-finite alpha, alpha <= 0 (warning), non-scalar alpha, rank 0,
 *     down/up rank mismatch, missing up, missing down, alpha alone, a shape
 *     that does not fit the layer (key and both shapes in the message), a
 *     1x1 down for a 3x3 conv, integer weights, 3-D weights, two spellings
 *     of the same module (kohya diffusers + LDM dialect), no matching key at
 *     all, LyCORIS (LoHa fixture, LoKr, Tucker lora_mid, DoRA), SDXL (fixture
 *     and by width), a pickle file;
 *   - container: the kohya fixture truncated at many lengths, header bytes
 *     flipped (seeded), an empty file, a missing file;
 *   - allocation failure at every allocation of a small LoRA load and at
 *     every 37th of the largest fixture (LMX_FAULT_FULL=1: every one).
 */
#define _XOPEN_SOURCE 700
#include <ftw.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "lora/lora.h"

#define LDIR "tests/fixtures/lora/"

static sd_model *g_model;

/* ---- capturing warnings ---------------------------------------------------- */

static char g_log[8192];
static void capture(lmx_log_level lv, const char *msg, void *u) {
    (void)u;
    if (lv > LMX_LOG_WARN) return;
    size_t n = strlen(g_log);
    snprintf(g_log + n, sizeof g_log - n, "%s\n", msg);
}

/* ---- writing small LoRA files ------------------------------------------------- */

typedef struct tdef {
    const char *name;
    st_dtype dtype;
    int ndim;
    int64_t shape[4];
    float fill;        /* value of element 0 (NaN/Inf tests); others random */
    int use_fill;
} tdef;

static void write_file(const char *path, const tdef *t, int n) {
    st_writer *w = NULL;
    CHECK_OK(st_writer_create(&w));
    if (!w) return;
    for (int i = 0; i < n; i++) {
        int64_t numel = 1;
        for (int d = 0; d < t[i].ndim; d++) numel *= t[i].shape[d];
        size_t esz = t[i].dtype == ST_F32 || t[i].dtype == ST_I32 ? 4 : t[i].dtype == ST_I64 ? 8 : 2;
        void *buf = lmx_calloc((size_t)(numel ? numel : 1), esz > 4 ? esz : 4);
        float *f = buf;
        if (t[i].dtype == ST_F32) {
            lmx_fill_randn(f, numel, 7 + (uint64_t)i, 0.1f);
            if (t[i].use_fill && numel) f[0] = t[i].fill;
            if (!strstr(t[i].name, "weight") && numel) f[0] = t[i].use_fill ? t[i].fill : 2.0f; /* alpha */
        }
        CHECK_OK(st_writer_add(w, t[i].name, t[i].dtype, t[i].ndim, t[i].shape, buf));
        lmx_free(buf);
    }
    CHECK_OK(st_writer_finish(w, path));
    st_writer_free(w);
}

#define Q "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q"
#define CONV "lora_unet_down_blocks_0_resnets_0_conv1"
#define F32 ST_F32

/* Load; expect status `want` and (when not OK) a message containing each of
 * the given substrings. Returns the LoRA on success (caller frees). */
static lmx_lora *expect(const char *what, const char *path, lmx_status want, const char *s1,
                        const char *s2) {
    lmx_lora *l = NULL;
    lora_opts o = lora_opts_default();
    g_log[0] = 0;
    lmx_status st = lora_load(&l, g_model, path, &o);
    const char *msg = st ? lmx_errmsg() : g_log;
    CHECK(st == want, "%s: got %s (%s), expected %s", what, lmx_status_name(st), lmx_errmsg(),
          lmx_status_name(want));
    if (s1) CHECK(strstr(msg, s1) != NULL, "%s: message lacks '%s': %s", what, s1, msg);
    if (s2) CHECK(strstr(msg, s2) != NULL, "%s: message lacks '%s': %s", what, s2, msg);
    if (st) CHECK(l == NULL, "%s: LoRA returned on error", what);
    printf("%-26s %s: %.200s\n", what, lmx_status_name(st), st ? lmx_errmsg() : "(loaded)");
    return l;
}

static void content_cases(void) {
    const float nan = 0.0f / 0.0f, inf = 1.0f / 0.0f;
    {
        tdef t[] = {{Q ".lora_down.weight", F32, 2, {4, 32}, nan, 1}, {Q ".lora_up.weight", F32, 2, {32, 4}, 0, 0},
                    {Q ".alpha", F32, 0, {0}, 0, 0}};
        write_file(lmx_test_tmp("nan.safetensors"), t, 3);
        lmx_lora *l = expect("NaN weights", lmx_test_tmp("nan.safetensors"), LMX_OK, Q ".lora_down.weight", "NaN");
        if (l) {
            CHECK(l->n_nonfinite == 1, "n_nonfinite %d", l->n_nonfinite);
            CHECK(strstr(l->report, "NaN/Inf") != NULL, "report lacks NaN: %s", l->report);
        }
        lora_free(l);
    }
    {
        tdef t[] = {{Q ".lora_down.weight", F32, 2, {4, 32}, 0, 0}, {Q ".lora_up.weight", F32, 2, {32, 4}, inf, 1}};
        write_file(lmx_test_tmp("inf.safetensors"), t, 2);
        lora_free(expect("Inf weights", lmx_test_tmp("inf.safetensors"), LMX_OK, Q ".lora_up.weight", "NaN/Inf"));
    }
    {
        tdef t[] = {{Q ".lora_down.weight", F32, 2, {4, 32}, 0, 0}, {Q ".lora_up.weight", F32, 2, {32, 4}, 0, 0},
                    {Q ".alpha", F32, 0, {0}, inf, 1}};
        write_file(lmx_test_tmp("alpha_inf.safetensors"), t, 3);
        expect("Inf alpha", lmx_test_tmp("alpha_inf.safetensors"), LMX_ERR_FORMAT, Q ".alpha", "infinite");
    }
    {
        tdef t[] = {{Q ".lora_down.weight", F32, 2, {4, 32}, 0, 0}, {Q ".lora_up.weight", F32, 2, {32, 4}, 0, 0},
                    {Q ".alpha", F32, 0, {0}, 0.0f, 1}};
        write_file(lmx_test_tmp("alpha0.safetensors"), t, 3);
        lora_free(expect("alpha 0", lmx_test_tmp("alpha0.safetensors"), LMX_OK, Q ".alpha", "no effect"));
    }
    {
        tdef t[] = {{Q ".lora_down.weight", F32, 2, {4, 32}, 0, 0}, {Q ".lora_up.weight", F32, 2, {32, 4}, 0, 0},
                    {Q ".alpha", F32, 1, {2}, 0, 0}};
        write_file(lmx_test_tmp("alpha_vec.safetensors"), t, 3);
        expect("alpha not scalar", lmx_test_tmp("alpha_vec.safetensors"), LMX_ERR_SHAPE, Q ".alpha", "scalar");
    }
    {
        tdef t[] = {{Q ".lora_down.weight", F32, 2, {0, 32}, 0, 0}, {Q ".lora_up.weight", F32, 2, {32, 0}, 0, 0}};
        write_file(lmx_test_tmp("rank0.safetensors"), t, 2);
        expect("rank 0", lmx_test_tmp("rank0.safetensors"), LMX_ERR_SHAPE, Q ".lora_down.weight", "rank 0");
    }
    {
        tdef t[] = {{Q ".lora_down.weight", F32, 2, {4, 32}, 0, 0}, {Q ".lora_up.weight", F32, 2, {32, 2}, 0, 0}};
        write_file(lmx_test_tmp("ranks.safetensors"), t, 2);
        expect("rank mismatch", lmx_test_tmp("ranks.safetensors"), LMX_ERR_SHAPE, "[4, 32] has rank 4", "[32, 2] has rank 2");
    }
    {
        tdef t[] = {{Q ".lora_down.weight", F32, 2, {4, 32}, 0, 0}, {Q ".alpha", F32, 0, {0}, 0, 0}};
        write_file(lmx_test_tmp("no_up.safetensors"), t, 2);
        expect("missing up", lmx_test_tmp("no_up.safetensors"), LMX_ERR_SHAPE, Q, "no up");
    }
    {
        tdef t[] = {{Q ".lora_up.weight", F32, 2, {32, 4}, 0, 0}};
        write_file(lmx_test_tmp("no_down.safetensors"), t, 1);
        expect("missing down", lmx_test_tmp("no_down.safetensors"), LMX_ERR_SHAPE, Q, "no down");
    }
    {
        tdef t[] = {{Q ".alpha", F32, 0, {0}, 0, 0}};
        write_file(lmx_test_tmp("alpha_only.safetensors"), t, 1);
        expect("alpha alone", lmx_test_tmp("alpha_only.safetensors"), LMX_ERR_SHAPE, Q, "no down");
    }
    {
        tdef t[] = {{Q ".lora_down.weight", F32, 2, {4, 31}, 0, 0}, {Q ".lora_up.weight", F32, 2, {32, 4}, 0, 0}};
        write_file(lmx_test_tmp("shape.safetensors"), t, 2);
        expect("wrong shape", lmx_test_tmp("shape.safetensors"), LMX_ERR_SHAPE, "has shape [4, 31]", "expected [4, 32]");
    }
    {
        tdef t[] = {{CONV ".lora_down.weight", F32, 4, {4, 32, 1, 1}, 0, 0},
                    {CONV ".lora_up.weight", F32, 4, {32, 4, 1, 1}, 0, 0}};
        write_file(lmx_test_tmp("conv1x1.safetensors"), t, 2);
        expect("1x1 down on a 3x3 conv", lmx_test_tmp("conv1x1.safetensors"), LMX_ERR_SHAPE, "[4, 32, 1, 1]",
               "expected [4, 32, 3, 3]");
    }
    {
        tdef t[] = {{Q ".lora_down.weight", ST_I32, 2, {4, 32}, 0, 0}, {Q ".lora_up.weight", F32, 2, {32, 4}, 0, 0}};
        write_file(lmx_test_tmp("int.safetensors"), t, 2);
        expect("integer weights", lmx_test_tmp("int.safetensors"), LMX_ERR_FORMAT, "I32", Q);
    }
    {
        tdef t[] = {{Q ".lora_down.weight", F32, 3, {4, 32, 1}, 0, 0}, {Q ".lora_up.weight", F32, 2, {32, 4}, 0, 0}};
        write_file(lmx_test_tmp("3d.safetensors"), t, 2);
        expect("3-D weights", lmx_test_tmp("3d.safetensors"), LMX_ERR_SHAPE, "2 or 4 dimensions", NULL);
    }
    {
        tdef t[] = {{Q ".lora_down.weight", F32, 2, {4, 32}, 0, 0}, {Q ".lora_up.weight", F32, 2, {32, 4}, 0, 0},
                    {"lora_unet_input_blocks_1_1_transformer_blocks_0_attn1_to_q.lora_down.weight", F32, 2, {4, 32}, 0, 0},
                    {"lora_unet_input_blocks_1_1_transformer_blocks_0_attn1_to_q.lora_up.weight", F32, 2, {32, 4}, 0, 0}};
        write_file(lmx_test_tmp("dup.safetensors"), t, 4);
        expect("two spellings, one layer", lmx_test_tmp("dup.safetensors"), LMX_ERR_FORMAT, "input_blocks_1_1", "both");
    }
    {
        tdef t[] = {{"lora_unet_nothing_here.lora_down.weight", F32, 2, {4, 32}, 0, 0},
                    {"model.diffusion_model.input_blocks.0.0.weight", F32, 2, {4, 4}, 0, 0}};
        write_file(lmx_test_tmp("nomatch.safetensors"), t, 2);
        expect("no matching key", lmx_test_tmp("nomatch.safetensors"), LMX_ERR_FORMAT, "no LoRA module", NULL);
    }
    {
        tdef t[] = {{Q ".lokr_w1", F32, 2, {4, 4}, 0, 0}, {Q ".lokr_w2", F32, 2, {8, 8}, 0, 0}};
        write_file(lmx_test_tmp("lokr.safetensors"), t, 2);
        expect("LoKr", lmx_test_tmp("lokr.safetensors"), LMX_ERR_UNSUPPORTED, "LoKr", Q ".lokr_w");
    }
    {
        tdef t[] = {{CONV ".lora_down.weight", F32, 4, {4, 32, 1, 1}, 0, 0},
                    {CONV ".lora_mid.weight", F32, 4, {4, 4, 3, 3}, 0, 0},
                    {CONV ".lora_up.weight", F32, 4, {32, 4, 1, 1}, 0, 0}};
        write_file(lmx_test_tmp("tucker.safetensors"), t, 3);
        expect("Tucker lora_mid", lmx_test_tmp("tucker.safetensors"), LMX_ERR_UNSUPPORTED, "lora_mid", NULL);
    }
    {
        tdef t[] = {{Q ".lora_down.weight", F32, 2, {4, 32}, 0, 0}, {Q ".lora_up.weight", F32, 2, {32, 4}, 0, 0},
                    {Q ".dora_scale", F32, 2, {1, 32}, 0, 0}};
        write_file(lmx_test_tmp("dora.safetensors"), t, 3);
        expect("DoRA", lmx_test_tmp("dora.safetensors"), LMX_ERR_UNSUPPORTED, "DoRA", "dora_scale");
    }
    {
        /* SDXL recognised by width alone: a 2048-wide attn2.to_k down */
        tdef t[] = {{"lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_attn2_to_k.lora_down.weight", F32, 2,
                     {4, 2048}, 0, 0},
                    {"lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_attn2_to_k.lora_up.weight", F32, 2,
                     {32, 4}, 0, 0}};
        write_file(lmx_test_tmp("xl_width.safetensors"), t, 2);
        expect("SDXL by width", lmx_test_tmp("xl_width.safetensors"), LMX_ERR_UNSUPPORTED, "SDXL", "2048");
    }
    expect("LoHa fixture", lmx_src_path(LDIR "loha.safetensors"), LMX_ERR_UNSUPPORTED, "LoHa", "hada_w1_a");
    expect("SDXL fixture", lmx_src_path(LDIR "sdxl_kohya.safetensors"), LMX_ERR_UNSUPPORTED, "SDXL", "lora_te1_");
    {
        FILE *f = fopen(lmx_test_tmp("lora.pt"), "wb");
        if (f) {
            fwrite("\x80\x04\x95junkjunkjunk", 1, 15, f);
            fclose(f);
        }
        expect("pickle", lmx_test_tmp("lora.pt"), LMX_ERR_UNSUPPORTED, "pickle", ".safetensors");
    }
    expect("missing file", lmx_test_tmp("none.safetensors"), LMX_ERR_IO, "none.safetensors", NULL);
    {
        FILE *f = fopen(lmx_test_tmp("empty.safetensors"), "wb");
        if (f) fclose(f);
        expect("empty file", lmx_test_tmp("empty.safetensors"), LMX_ERR_FORMAT, "empty.safetensors", NULL);
    }
    /* bad_keys: loads; each misspelt module is named in the report */
    lmx_lora *l = expect("bad key names", lmx_src_path(LDIR "bad_keys.safetensors"), LMX_OK, "3 modules", "attn1_to_qq");
    if (l) {
        CHECK(l->n_unmatched == 9 && l->n_mod == 1, "unmatched %d, modules %d", l->n_unmatched, l->n_mod);
        CHECK(strstr(l->report, "lora_unet_middle_blok_attentions_0_proj_in") != NULL, "report: %s", l->report);
        CHECK(lmx_lora_n_unmatched(l) == 9, "lmx_lora_n_unmatched %d", lmx_lora_n_unmatched(l));
    }
    lora_free(l);
}

/* ---- container damage ------------------------------------------------------- */

static unsigned char *read_all(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = lmx_malloc((size_t)sz);
    if (b && fread(b, 1, (size_t)sz, f) != (size_t)sz) {
        lmx_free(b);
        b = NULL;
    }
    fclose(f);
    *n = (size_t)sz;
    return b;
}

static void write_all(const char *path, const unsigned char *b, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return;
    fwrite(b, 1, n, f);
    fclose(f);
}

static void container_cases(void) {
    size_t n = 0;
    unsigned char *b = read_all(lmx_src_path(LDIR "char_kohya.safetensors"), &n);
    CHECK(b != NULL, "cannot read the kohya fixture");
    if (!b) return;
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--) hl = (hl << 8) | b[i];
    size_t cuts[] = {1, 7, 8, 9, 100, (size_t)hl + 7, (size_t)hl + 8, (size_t)hl + 9, n / 2, n - 1};
    int n_err = 0;
    lora_opts o = lora_opts_default();
    o.quiet = 1;
    for (size_t i = 0; i < LMX_ARRAY_LEN(cuts); i++) {
        if (cuts[i] >= n) continue;
        write_all(lmx_test_tmp("cut.safetensors"), b, cuts[i]);
        lmx_lora *l = NULL;
        lmx_status st = lora_load(&l, g_model, lmx_test_tmp("cut.safetensors"), &o);
        CHECK(st == LMX_ERR_FORMAT, "truncated at %zu: %s (%s)", cuts[i], lmx_status_name(st), lmx_errmsg());
        CHECK(!l, "truncated file gave a LoRA");
        n_err += st != LMX_OK;
        lora_free(l);
    }
    printf("truncated copies: %d errors, e.g. %s\n", n_err, lmx_errmsg());
    /* flipped header bytes: an error or a (possibly different) LoRA, never a crash */
    lmx_prng r = {12345};
    unsigned char *c = lmx_malloc(n);
    int n_ok = 0, n_bad = 0;
    for (int it = 0; c && it < 150; it++) {
        memcpy(c, b, n);
        int flips = 1 + (int)(lmx_prng_next(&r) % 4);
        for (int k = 0; k < flips; k++) {
            size_t pos = (size_t)(lmx_prng_next(&r) % (hl + 8));
            c[pos] = (unsigned char)lmx_prng_next(&r);
        }
        write_all(lmx_test_tmp("flip.safetensors"), c, n);
        lmx_lora *l = NULL;
        lmx_status st = lora_load(&l, g_model, lmx_test_tmp("flip.safetensors"), &o);
        if (st == LMX_OK) {
            n_ok++;
            CHECK(l != NULL, "ok without a LoRA");
        } else {
            n_bad++;
            CHECK(l == NULL && *lmx_errmsg(), "error without a message");
        }
        lora_free(l);
    }
    printf("flipped headers: %d loaded, %d refused\n", n_ok, n_bad);
    lmx_free(c);
    lmx_free(b);
}

/* ---- allocation failures -------------------------------------------------------- */

static void alloc_sweep(const char *what, const char *path, long stride) {
    int all = getenv("LMX_FAULT_FULL") != NULL;
    lora_opts o = lora_opts_default();
    o.quiet = 1;
    long n_fail = 0, k;
    for (k = 1;; k = (all || k < 60) ? k + 1 : k + stride) {
        lmx_lora *l = NULL;
        lmx_fault_set_fail_at(k);
        lmx_status st = lora_load(&l, g_model, path, &o);
        long used = lmx_fault_alloc_count();
        lmx_fault_set_fail_at(0);
        if (st == LMX_OK) {
            CHECK(l != NULL, "%s: ok without a LoRA", what);
            lora_free(l);
            if (k > used) break;
            continue;
        }
        n_fail++;
        CHECK(l == NULL, "%s: LoRA returned after failing allocation %ld", what, k);
        CHECK(st == LMX_ERR_NOMEM || st == LMX_ERR_BACKEND, "%s: allocation %ld: %s: %s", what, k,
              lmx_status_name(st), lmx_errmsg());
        if (k > 1000000) break;
    }
    printf("allocation sweep %s: %ld failure points, clean\n", what, n_fail);
    /* and the apply path */
    lmx_lora *l = NULL;
    if (lora_load(&l, g_model, path, &o) == LMX_OK) {
        const lmx_lora *set[1] = {l};
        float w = 1.0f;
        for (k = 1; k < 40; k++) {
            lora_state ls = {0}; /* fresh: its hook tables are allocated under the fault too */
            lmx_fault_set_fail_at(k);
            lmx_status st = lora_merge(&ls, g_model, set, &w, &w, 1);
            lmx_fault_set_fail_at(0);
            if (st) CHECK(lora_n_merged(&ls) == 0, "failed merge left merged kernels");
            lora_unmerge(&ls);
            lora_state_free(&ls);
            lmx_fault_set_fail_at(k);
            st = lora_attach(&ls, g_model, set, 1);
            lmx_fault_set_fail_at(0);
            lora_detach(&ls);
            lora_state_free(&ls);
        }
        lora_free(l);
    }
}

int main(void) {
    if (!lmx_test_tmpdir(LMX_BINARY_DIR "/tests", "lora_fault")) return lmx_test_finish();
    lmx_log_set(LMX_LOG_WARN, capture, NULL);
    CHECK_OK(sd_model_load(&g_model, lmx_src_path("tests/fixtures/models/tiny-sd"), NULL));
    if (g_model) {
        content_cases();
        container_cases();
        alloc_sweep("bad_keys", lmx_src_path(LDIR "bad_keys.safetensors"), 1);
        alloc_sweep("object_kohya", lmx_src_path(LDIR "object_kohya.safetensors"), 37);
    }
    sd_model_free(g_model);
    lmx_log_set(LMX_LOG_WARN, NULL, NULL);
    lmx_test_tmpdir_remove();
    return lmx_test_finish();
}
