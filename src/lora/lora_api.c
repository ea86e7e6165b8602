/*
 * lora_api.c - the public lmx_lora_* functions of loramix.h over the
 * internal loader (lora_load.c).
 *
 * Loading a LoRA for a model only reads the file and matches it against the
 * model's layers: the model is not modified, and a loaded LoRA is not
 * modified by any use. Which LoRAs run, and how, is per-run state that a
 * context derives from lmx_gen_params (pipeline_lora.c).
 */
#include <string.h>

#include "lora/lora.h"
#include "pipeline_impl.h"

lmx_status lmx_lora_load(lmx_lora **out, const lmx_model *m, const char *path) {
    if (!out) return lmx_err(LMX_ERR_ARG, "lmx_lora_load: out is NULL");
    *out = NULL;
    if (!m || !m->sd) return lmx_err(LMX_ERR_ARG, "lmx_lora_load: no model");
    if (!path || !*path) return lmx_err(LMX_ERR_ARG, "lmx_lora_load: no path");
    return lora_load(out, m->sd, path, NULL);
}

void lmx_lora_free(lmx_lora *l) { lora_free(l); }

const char *lmx_lora_report(const lmx_lora *l) { return l && l->report ? l->report : ""; }

int lmx_lora_n_unmatched(const lmx_lora *l) { return l ? l->n_unmatched : 0; }

const char *lmx_lora_category_name(lmx_lora_category c) {
    static const char *names[LMX_CAT_COUNT] = {"other", "character", "clothing", "style",
                                               "background", "object"};
    return (unsigned)c < LMX_CAT_COUNT ? names[c] : "?";
}

lmx_lora_use lmx_lora_use_default(const lmx_lora *l) {
    lmx_lora_use u;
    memset(&u, 0, sizeof u);
    u.lora = l;
    u.unet_scale = 1.0f;
    u.te_scale = 1.0f;
    u.category = LMX_CAT_OTHER;
    return u;
}
