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

/* Highest lora_index attached anywhere in a state's UNet and TE hooks. */
static int max_index(const lora_state *ls) {
    int mx = -1;
    for (int k = 0; k < LORA_N_COMP; k++)
        for (int i = 0; i < ls->hooks[k].n; i++)
            for (int j = 0; j < ls->hooks[k].v[i].n_adapters; j++)
                mx = LMX_MAX(mx, ls->hooks[k].v[i].adapters[j].lora_index);
    return mx;
}

static int n_adapters(const lora_state *ls) {
    int n = 0;
    for (int k = 0; k < LORA_N_COMP; k++)
        for (int i = 0; i < ls->hooks[k].n; i++) n += ls->hooks[k].v[i].n_adapters;
    return n;
}

int main(void) {
    lmx_model *m = NULL;
    lmx_lora *a = NULL, *b = NULL, *c = NULL, *bad = NULL;
    lora_state ls = {0};
    lmx_log_set(LMX_LOG_ERROR, NULL, NULL); /* the fixtures' warnings are expected */
    CHECK_OK(lmx_model_load(&m, lmx_src_path("tests/fixtures/models/tiny-sd"), NULL));
    if (!m) return lmx_test_finish();

    CHECK(lmx_lora_load(&bad, NULL, lmx_src_path(LDIR "char_kohya.safetensors")) == LMX_ERR_ARG, "NULL model");
    CHECK(lmx_lora_load(&bad, m, NULL) == LMX_ERR_ARG, "NULL path");
    CHECK(lmx_lora_load(NULL, m, "x") == LMX_ERR_ARG, "NULL out");
    CHECK(lmx_lora_load(&bad, m, lmx_src_path(LDIR "loha.safetensors")) == LMX_ERR_UNSUPPORTED, "LoHa");
    CHECK(bad == NULL, "failed load returned a LoRA");

    CHECK_OK(lmx_lora_load(&a, m, lmx_src_path(LDIR "char_kohya.safetensors")));
    CHECK_OK(lmx_lora_load(&b, m, lmx_src_path(LDIR "style_peft.safetensors")));
    CHECK_OK(lmx_lora_load(&c, m, lmx_src_path(LDIR "bad_keys.safetensors")));
    if (!a || !b || !c) goto done;
    /* loading changes nothing in the model; a context's state attaches */
    CHECK(a->serial < b->serial && b->serial < c->serial, "load order");
    const lmx_lora *set3[3] = {a, b, c};
    CHECK_OK(lora_attach(&ls, m->sd, set3, 3));
    CHECK(max_index(&ls) == 2, "max lora_index %d", max_index(&ls));
    int n_all = n_adapters(&ls);
    CHECK(n_all == (a->n_mod - a->info[LORA_UNET].n_dropped) + b->n_mod + c->n_mod, "%d adapters attached", n_all);
    CHECK(strstr(lmx_lora_report(a), "kohya") != NULL, "report: %s", lmx_lora_report(a));
    CHECK(strstr(lmx_lora_report(b), "PEFT") != NULL, "report: %s", lmx_lora_report(b));
    CHECK(lmx_lora_n_unmatched(a) == 0 && lmx_lora_n_unmatched(c) == 9, "unmatched %d / %d",
          lmx_lora_n_unmatched(a), lmx_lora_n_unmatched(c));
    CHECK(!strcmp(lmx_lora_report(NULL), "") && lmx_lora_n_unmatched(NULL) == 0, "NULL handles");

    /* free the middle one: the last moves to row 1 */
    lora_detach(&ls);
    lmx_lora_free(b);
    b = NULL;
    const lmx_lora *set2[2] = {a, c};
    CHECK_OK(lora_attach(&ls, m->sd, set2, 2));
    CHECK(max_index(&ls) == 1, "max lora_index %d after free", max_index(&ls));
    CHECK(n_adapters(&ls) == (a->n_mod - a->info[LORA_UNET].n_dropped) + c->n_mod, "adapters after free");

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
    lora_state_free(&ls);
    CHECK(n_adapters(&ls) == 0, "adapters left after free: %d", n_adapters(&ls));
    lmx_lora_free(NULL);
    lmx_model_free(m);
    lmx_log_set(LMX_LOG_WARN, NULL, NULL);
    return lmx_test_finish();
}
