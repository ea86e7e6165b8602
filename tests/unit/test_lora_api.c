/*
 * test_lora_api.c - the public lmx_lora_* functions of loramix.h on the tiny
 * model: load registers and attaches (row i of the scale tables = i-th
 * loaded LoRA), the report and unmatched count, errors with NULL
 * arguments and bad files, freeing a LoRA re-attaches the others at their
 * new rows, lmx_lora_use_default, lmx_lora_category_name.
 */
#include <string.h>

#include "harness.h"
#include "lora/lora.h"
#include "pipeline_impl.h"

#define LDIR "tests/fixtures/lora/"

/* Highest lora_index attached anywhere in the UNet and TE, and whether
 * every adapter's index is < n. */
static int max_index(const sd_model *m) {
    int mx = -1;
    nn_layers *ls[2] = {unet_layers(m->unet), clip_text_layers(m->text)};
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < ls[k]->n; i++)
            for (int j = 0; j < ls[k]->v[i]->n_adapters; j++)
                mx = LMX_MAX(mx, ls[k]->v[i]->adapters[j].lora_index);
    return mx;
}

static int n_adapters(const sd_model *m) {
    int n = 0;
    nn_layers *ls[2] = {unet_layers(m->unet), clip_text_layers(m->text)};
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < ls[k]->n; i++) n += ls[k]->v[i]->n_adapters;
    return n;
}

int main(void) {
    lmx_model *m = NULL;
    lmx_lora *a = NULL, *b = NULL, *c = NULL, *bad = NULL;
    lmx_log_set(LMX_LOG_ERROR, NULL, NULL); /* the fixtures' warnings are expected */
    CHECK_OK(lmx_model_load(&m, lmx_src_path("tests/fixtures/models/tiny-sd"), NULL));
    if (!m) return lmx_test_finish();

    CHECK(lmx_lora_load(&bad, NULL, lmx_src_path(LDIR "char_kohya.safetensors")) == LMX_ERR_ARG, "NULL model");
    CHECK(lmx_lora_load(&bad, m, NULL) == LMX_ERR_ARG, "NULL path");
    CHECK(lmx_lora_load(NULL, m, "x") == LMX_ERR_ARG, "NULL out");
    CHECK(lmx_lora_load(&bad, m, lmx_src_path(LDIR "loha.safetensors")) == LMX_ERR_UNSUPPORTED, "LoHa");
    CHECK(bad == NULL && m->n_loras == 0, "failed load left a LoRA registered");

    CHECK_OK(lmx_lora_load(&a, m, lmx_src_path(LDIR "char_kohya.safetensors")));
    CHECK_OK(lmx_lora_load(&b, m, lmx_src_path(LDIR "style_peft.safetensors")));
    CHECK_OK(lmx_lora_load(&c, m, lmx_src_path(LDIR "bad_keys.safetensors")));
    if (!a || !b || !c) goto done;
    CHECK(m->n_loras == 3 && m->loras[0] == a && m->loras[1] == b && m->loras[2] == c, "registry order");
    CHECK(max_index(m->sd) == 2, "max lora_index %d", max_index(m->sd));
    int n_all = n_adapters(m->sd);
    CHECK(n_all == (a->n_mod - a->info[LORA_UNET].n_dropped) + b->n_mod + c->n_mod, "%d adapters attached", n_all);
    CHECK(strstr(lmx_lora_report(a), "kohya") != NULL, "report: %s", lmx_lora_report(a));
    CHECK(strstr(lmx_lora_report(b), "PEFT") != NULL, "report: %s", lmx_lora_report(b));
    CHECK(lmx_lora_n_unmatched(a) == 0 && lmx_lora_n_unmatched(c) == 9, "unmatched %d / %d",
          lmx_lora_n_unmatched(a), lmx_lora_n_unmatched(c));
    CHECK(!strcmp(lmx_lora_report(NULL), "") && lmx_lora_n_unmatched(NULL) == 0, "NULL handles");

    /* free the middle one: the last moves to row 1 */
    lmx_lora_free(b);
    b = NULL;
    CHECK(m->n_loras == 2 && m->loras[0] == a && m->loras[1] == c, "registry after free");
    CHECK(max_index(m->sd) == 1, "max lora_index %d after free", max_index(m->sd));
    CHECK(n_adapters(m->sd) == (a->n_mod - a->info[LORA_UNET].n_dropped) + c->n_mod, "adapters after free");

    lmx_lora_use u = lmx_lora_use_default(a);
    CHECK(u.lora == a && u.unet_scale == 1.0f && u.te_scale == 1.0f && u.category == LMX_CAT_OTHER &&
              !u.name && !u.triggers && !u.n_triggers,
          "lmx_lora_use_default");
    CHECK(!strcmp(lmx_lora_category_name(LMX_CAT_CHARACTER), "character") &&
              !strcmp(lmx_lora_category_name(LMX_CAT_OBJECT), "object") &&
              !strcmp(lmx_lora_category_name((lmx_lora_category)99), "?"),
          "category names");
done:
    lmx_lora_free(a);
    lmx_lora_free(b);
    lmx_lora_free(c);
    CHECK(m->n_loras == 0 && n_adapters(m->sd) == 0, "LoRAs left after free: %d", m->n_loras);
    lmx_lora_free(NULL);
    lmx_model_free(m);
    lmx_log_set(LMX_LOG_WARN, NULL, NULL);
    return lmx_test_finish();
}
