/*
 * test_clip_text.c - the CLIP text encoder against transformers 4.45.1
 * (fp32 CPU) on the tiny seeded model, loaded both from the diffusers
 * folder and from the original-layout single file.
 *
 * Golden: tests/fixtures/models/golden_tiny_sd.safetensors (reference/
 * gen_models.py): token ids of 4 prompts, last_hidden_state and the
 * clip_skip=1 output (hidden_states[-2] through final_layer_norm).
 * Tolerance (docs/numerics.md §0): max-abs <= 1e-4.
 */
#include <string.h>

#include "harness.h"
#include "model/sd_model.h"
#include "model/tokenizer.h"

#define GOLDEN "tests/fixtures/models/golden_tiny_sd.safetensors"

static void run_model(const char *what, const char *path, st_file *g) {
    sd_model *m = NULL;
    op_ctx *ctx = NULL;
    lmx_arena ar = {0};
    float *out = NULL, *ref = NULL, *ref1 = NULL;
    int64_t *ids = NULL, n_ids = 0, n = 0;
    char label[128];
    CHECK_OK(sd_model_load(&m, lmx_src_path(path), NULL));
    CHECK_OK(op_ctx_create(&ctx));
    if (!m || !ctx) goto done;
    ids = lmx_golden_i64(g, "tokens.ids", &n_ids);
    ref = lmx_golden_f32(g, "text.last_hidden_state", &n);
    ref1 = lmx_golden_f32(g, "text.clip_skip1", NULL);
    if (!ids || !ref || !ref1) goto done;
    int B = (int)(n_ids / 77), C = clip_text_cfg(m->text)->hidden;
    CHECK(n == (int64_t)B * 77 * C, "golden size %lld", (long long)n);
    CHECK_OK(lmx_arena_init(&ar, clip_text_arena_bytes(m->text, B, 77)));
    out = lmx_malloc(sizeof(float) * (size_t)n);
    nn_run run = {.ctx = ctx, .arena = &ar};
    double ma, mr;

    CHECK_OK(clip_text_forward(m->text, &run, ids, B, 77, 0, out));
    snprintf(label, sizeof label, "%s last_hidden_state [%d,77,%d]", what, B, C);
    lmx_cmp_f32(label, out, ref, n, 1e-4, 0);
    lmx_err_stats(out, ref, n, &ma, &mr);
    printf("%-40s max_abs %.3g (max |ref| %.3g)\n", label, ma, mr);

    CHECK_OK(clip_text_forward(m->text, &run, ids, B, 77, 1, out));
    snprintf(label, sizeof label, "%s clip_skip=1", what);
    lmx_cmp_f32(label, out, ref1, n, 1e-4, 0);
    lmx_err_stats(out, ref1, n, &ma, &mr);
    printf("%-40s max_abs %.3g (max |ref| %.3g)\n", label, ma, mr);

    /* one sequence alone gives the same rows as inside the batch */
    CHECK_OK(clip_text_forward(m->text, &run, ids + 77, 1, 77, 0, out));
    snprintf(label, sizeof label, "%s batch of 1", what);
    lmx_cmp_f32(label, out, ref + 77 * C, 77 * C, 1e-4, 0);

    /* bad input is an error, not a crash */
    int64_t bad[77];
    memcpy(bad, ids, sizeof bad);
    bad[5] = 49408;
    CHECK(clip_text_forward(m->text, &run, bad, 1, 77, 0, out) == LMX_ERR_ARG, "id out of range accepted");
    CHECK(clip_text_forward(m->text, &run, ids, 1, 78, 0, out) == LMX_ERR_ARG, "78 tokens accepted");
    CHECK(clip_text_forward(m->text, &run, ids, 1, 77, 3, out) == LMX_ERR_ARG, "clip_skip 3 of 2 layers accepted");
    CHECK(ar.used == 0, "arena not given back: %zu bytes", ar.used);
done:
    lmx_free(out);
    lmx_free(ref);
    lmx_free(ref1);
    lmx_free(ids);
    lmx_arena_free(&ar);
    op_ctx_free(ctx);
    sd_model_free(m);
}

/* The folder's tokenizer gives the golden ids (the prompts are in the golden's metadata). */
static void check_tokens(st_file *g) {
    tok_tokenizer *tok = NULL;
    CHECK_OK(tok_load_dir(&tok, lmx_src_path("tests/fixtures/models/tiny-sd/tokenizer")));
    int64_t n = 0, *ids = lmx_golden_i64(g, "tokens.ids", &n);
    static const char *prompts[] = {
        "a photo of a cat",
        "RAW photo, subject, 8k uhd, dslr, high quality, Fujifilm XT3, half-length portrait from knees up",
        "",
        "masterpiece, best quality",
    };
    if (tok && ids && n == 4 * 77) {
        for (int i = 0; i < 4; i++) {
            int64_t out[77];
            CHECK_OK(tok_encode_padded(tok, prompts[i], -1, out, NULL));
            lmx_cmp_i64(prompts[i], out, ids + 77 * i, 77);
        }
    }
    lmx_free(ids);
    tok_free(tok);
}

int main(void) {
    st_file *g = lmx_golden_open(lmx_src_path(GOLDEN));
    if (!g) return lmx_test_finish();
    double t0 = lmx_now();
    check_tokens(g);
    run_model("folder", "tests/fixtures/models/tiny-sd", g);
    run_model("single-file", "tests/fixtures/models/tiny-sd.safetensors", g);
    printf("time %.2f s\n", lmx_now() - t0);
    st_close(g);
    return lmx_test_finish();
}
