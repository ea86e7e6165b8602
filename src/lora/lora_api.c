/*
 * lora_api.c - the public lmx_lora_* functions of loramix.h over the
 * internal loader (lora_load.c) and the model's LoRA registry.
 *
 * A LoRA loaded for a model is registered in it (lmx_model.loras, load
 * order) and attached to its layers at once with lora_index = its position,
 * so a generation only fills the nn_run scale tables: row i is LoRA i.
 * Freeing a LoRA unregisters it and re-attaches the others with their new
 * positions. Loading and freeing LoRAs changes the model's layer lists:
 * do it while no generation runs on that model.
 */
#include <string.h>

#include "lora/lora.h"
#include "pipeline_impl.h"

static lmx_status registry_add(lmx_model *m, lmx_lora *l) {
    if (m->n_loras == m->cap_loras) {
        int cap = m->cap_loras ? 2 * m->cap_loras : 8;
        lmx_lora **v = lmx_realloc(m->loras, sizeof *v * (size_t)cap);
        if (!v) return lmx_err(LMX_ERR_NOMEM, "%s: out of memory", l->path);
        m->loras = v;
        m->cap_loras = cap;
    }
    m->loras[m->n_loras++] = l;
    return LMX_OK;
}

static void registry_remove(lmx_model *m, const lmx_lora *l) {
    for (int i = 0; i < m->n_loras; i++) {
        if (m->loras[i] != l) continue;
        memmove(m->loras + i, m->loras + i + 1, sizeof *m->loras * (size_t)(m->n_loras - i - 1));
        m->n_loras--;
        return;
    }
}

lmx_status lmx_lora_load(lmx_lora **out, const lmx_model *cm, const char *path) {
    if (!out) return lmx_err(LMX_ERR_ARG, "lmx_lora_load: out is NULL");
    *out = NULL;
    if (!cm || !cm->sd) return lmx_err(LMX_ERR_ARG, "lmx_lora_load: no model");
    if (!path || !*path) return lmx_err(LMX_ERR_ARG, "lmx_lora_load: no path");
    lmx_model *m = (lmx_model *)cm; /* the registry is the model's mutable part */
    lmx_lora *l = NULL;
    lmx_status st = lora_load(&l, m->sd, path, NULL);
    if (st) return st;
    if ((st = registry_add(m, l))) goto fail;
    l->owner = m;
    if ((st = lora_attach(m->sd, (const lmx_lora *const *)m->loras, m->n_loras))) {
        registry_remove(m, l);
        lora_attach(m->sd, (const lmx_lora *const *)m->loras, m->n_loras);
        goto fail;
    }
    *out = l;
    return LMX_OK;
fail:
    lora_free(l);
    return st;
}

void lmx_lora_free(lmx_lora *l) {
    if (!l) return;
    lmx_model *m = l->owner;
    if (m && m->sd) {
        registry_remove(m, l);
        /* the others keep working, at their new rows */
        if (lora_attach(m->sd, (const lmx_lora *const *)m->loras, m->n_loras) != LMX_OK)
            lora_detach(m->sd);
    }
    lora_free(l);
}

void lora_orphan(lmx_lora *l) {
    if (!l) return;
    l->owner = NULL;
    l->model = NULL;
}

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
