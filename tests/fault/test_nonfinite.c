/*
 * test_nonfinite.c - numbers that cannot be right are reported, not
 * written: generation fails with LMX_ERR_NUMERIC and a message naming the
 * step (and the LoRA that brought NaN/Inf), and the CLI exits non-zero
 * without an output file.
 *
 * Hostile fixtures are made here in a mkdtemp folder from the bundled ones:
 *   nan-unet/   the tiny model with unet conv_in.weight all NaN
 *   nan-text/   the tiny model with the text encoder's final layer norm NaN
 *   inf_up.safetensors  character_1 with one UNet lora_up tensor set to +Inf
 *   inf_te.safetensors  the same with a text-encoder lora_up tensor
 */
#define _XOPEN_SOURCE 700
#include <ftw.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "io/safetensors.h"
#include "loramix.h"

#define FIX "tests/fixtures/models/tiny-sd/"
#define CHAR1 "tests/fixtures/compose/character_1.safetensors"

/* Copy src (a fixture) to dst with every value of the tensors whose name
 * contains `which` and `also` (NULL: any) (the first such tensor only when
 * first_only) set to v. */
static int poison(const char *src, const char *dst, const char *which, const char *also, int first_only,
                  float v) {
    st_file *f = NULL;
    st_writer *w = NULL;
    int ok = 0, hit = 0;
    if (st_open(&f, lmx_src_path(src)) || st_writer_create(&w)) goto done;
    for (int i = 0; i < st_count(f); i++) {
        const st_tensor *t = st_at(f, i);
        float *x = NULL;
        if (st_to_f32_alloc(t, &x)) goto done;
        if (strstr(t->name, which) && (!also || strstr(t->name, also)) && !(first_only && hit)) {
            for (int64_t j = 0; j < t->numel; j++) x[j] = v;
            hit++;
        }
        lmx_status st = st_writer_add(w, t->name, ST_F32, t->ndim, t->shape, x);
        lmx_free(x);
        if (st) goto done;
    }
    ok = hit > 0 && st_writer_finish(w, dst) == LMX_OK;
done:
    if (!ok) fprintf(stderr, "poison %s -> %s: %s\n", src, dst, hit ? lmx_errmsg() : "no tensor matched");
    st_writer_free(w);
    st_close(f);
    return ok;
}

static void link_fix(const char *fix_rel, const char *tmp_rel) {
    char src[600];
    snprintf(src, sizeof src, "%s", lmx_src_path(fix_rel));
    if (symlink(src, lmx_test_tmp(tmp_rel)) != 0) fprintf(stderr, "symlink %s: failed\n", tmp_rel);
}

/* A copy of the tiny model in tmp/name with component `bad` ("unet" or
 * "text_encoder") rewritten with `which` set to NaN. */
static int make_model(const char *name, const char *bad, const char *file, const char *which) {
    static const char *comp[] = {"model_index.json", "scheduler", "tokenizer", "vae", "unet", "text_encoder"};
    char p[300], s[300];
    mkdir(lmx_test_tmp(name), 0755);
    for (int i = 0; i < 6; i++) {
        snprintf(p, sizeof p, "%s/%s", name, comp[i]);
        snprintf(s, sizeof s, FIX "%s", comp[i]);
        if (strcmp(comp[i], bad)) {
            link_fix(s, p);
            continue;
        }
        mkdir(lmx_test_tmp(p), 0755);
        snprintf(p, sizeof p, "%s/%s/config.json", name, bad);
        snprintf(s, sizeof s, FIX "%s/config.json", bad);
        link_fix(s, p);
        snprintf(p, sizeof p, "%s/%s/%s", name, bad, file);
        snprintf(s, sizeof s, FIX "%s/%s", bad, file);
        if (!poison(s, lmx_test_tmp(p), which, NULL, 0, NAN)) return 0;
    }
    return 1;
}

/* Generate 64x64, 3 steps; expect LMX_ERR_NUMERIC, a message holding n1
 * and n2, and no image. */
static void expect_numeric(const char *what, const char *model, const char *lora, const char *lora_name,
                           const char *n1, const char *n2) {
    lmx_model *m = NULL;
    lmx_ctx *c = NULL;
    lmx_lora *l = NULL;
    lmx_image img;
    memset(&img, 0, sizeof img);
    CHECK_OK(lmx_model_load(&m, model, NULL));
    if (!m) return;
    CHECK_OK(lmx_ctx_create(&c, m, NULL));
    lmx_gen_params p = lmx_gen_params_default();
    p.prompt = "a photo";
    p.width = p.height = 64;
    p.steps = 3;
    lmx_lora_use u;
    if (lora) {
        CHECK_OK(lmx_lora_load(&l, m, lora));
        u = lmx_lora_use_default(l);
        u.name = lora_name;
        p.loras = &u;
        p.n_loras = 1;
    }
    lmx_status st = c ? lmx_generate(c, &p, &img) : LMX_ERR_INTERNAL;
    const char *msg = lmx_errmsg();
    if (lmx_test_verbose()) printf("%s: %s\n", what, msg);
    CHECK(st == LMX_ERR_NUMERIC, "%s: status %s (%s), want non-finite numbers", what, lmx_status_name(st), msg);
    CHECK(strstr(msg, n1) != NULL, "%s: message lacks '%s': %s", what, n1, msg);
    CHECK(!n2 || strstr(msg, n2) != NULL, "%s: message lacks '%s': %s", what, n2, msg);
    CHECK(img.rgb == NULL, "%s: an image came back", what);
    lmx_image_free(&img);
    lmx_lora_free(l);
    lmx_ctx_free(c);
    lmx_model_free(m);
}

/* The CLI: exit 1..123 and no PNG. */
static void expect_cli(const char *what, const char *args) {
    char cmd[2048];
    const char *out = lmx_test_tmp("cli.png");
    remove(out);
    snprintf(cmd, sizeof cmd, "cd '%s' && '%s/loramix' generate -q -p 'a photo' -W 64 -H 64 --steps 3 %s -o '%s' 2>'%s'",
             LMX_SOURCE_DIR, LMX_BINARY_DIR, args, out, lmx_test_tmp("cli.err"));
    int rc = system(cmd);
    int ex = WIFEXITED(rc) ? WEXITSTATUS(rc) : 128 + WTERMSIG(rc);
    CHECK(ex > 0 && ex < 124, "%s: CLI exit %d, want an error exit", what, ex);
    CHECK(access(out, F_OK) != 0, "%s: CLI wrote %s", what, out);
}

int main(void) {
    if (!lmx_test_tmpdir(NULL, "nonfinite")) return lmx_test_finish();
    lmx_log_set(LMX_LOG_ERROR, NULL, NULL);
    int ok = make_model("nan-unet", "unet", "diffusion_pytorch_model.safetensors", "conv_in.weight") &&
             make_model("nan-text", "text_encoder", "model.safetensors", "final_layer_norm.weight") &&
             poison(CHAR1, lmx_test_tmp("inf_up.safetensors"), "lora_up", "lora_unet", 1, INFINITY) &&
             poison(CHAR1, lmx_test_tmp("inf_te.safetensors"), "lora_up", "lora_te", 1, INFINITY);
    CHECK(ok, "could not write the hostile fixtures");
    if (ok) {
        char a[1400];
        /* The default scheduler (PNDM) makes 4 UNet calls for 3 steps; the
         * message counts steps as asked for, as the progress does. */
        expect_numeric("NaN UNet weight", lmx_test_tmp("nan-unet"), NULL, NULL, "step 1 of 3: the latents became NaN/Inf",
                       NULL);
        expect_numeric("NaN text encoder weight", lmx_test_tmp("nan-text"), NULL, NULL, "text encoder", "NaN/Inf");
        expect_numeric("Inf in lora_up", lmx_src_path("tests/fixtures/models/tiny-sd"), lmx_test_tmp("inf_up.safetensors"),
                       "hostile", "step 1 of 3: the latents became NaN/Inf; LoRAs active: hostile",
                       "LoRA 'hostile' holds NaN/Inf");
        expect_numeric("Inf in a text-encoder lora_up", lmx_src_path("tests/fixtures/models/tiny-sd"),
                       lmx_test_tmp("inf_te.safetensors"), "hostile", "text encoder: the prompt embeddings became NaN/Inf",
                       "LoRA 'hostile' holds NaN/Inf");
        snprintf(a, sizeof a, "-m '%s'", lmx_test_tmp("nan-unet"));
        expect_cli("CLI, NaN UNet", a);
        snprintf(a, sizeof a, "-m tests/fixtures/models/tiny-sd --lora '%s'", lmx_test_tmp("inf_up.safetensors"));
        expect_cli("CLI, Inf LoRA", a);
    }
    lmx_test_tmpdir_remove();
    return lmx_test_finish();
}
