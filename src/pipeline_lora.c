/*
 * pipeline_lora.c - the LoRA side of one generation: turn the composition
 * plan (src/compose, docs/methods.md) into the scale tables the
 * networks read (the branches are combined by compose_plan_combine).
 *
 * The context attaches the generation's LoRAs to its own hook tables
 * (c->lora; the model is never written), LoRA i at row row_of[i] = its rank
 * in load order, so that every layer sums its adapters in one fixed order
 * whatever the order of p->loras. The generation then only fills tables: the text encoder gets te_scale[row] = λ·te_scale_i for the
 * LoRAs the method activates there; at step k the UNet gets
 * unet_scale[row][sample] = λ·unet_scale_i for the LoRA(s) of each sample's
 * branch. Switching LoRAs between steps is a table change, no weight work.
 *
 * Merged mode (lora_merged, method merge only) builds private merged
 * kernels for the touched layers in the context's hooks before the run and
 * frees them after it; the tables stay NULL.
 */
#include <math.h>
#include <string.h>

#include "compose/compose.h"
#include "lora/lora.h"
#include "pipeline_impl.h"

/* Check the used LoRAs; row of each = its rank in load order. */
static lmx_status map_rows(const lmx_model *m, const lmx_gen_params *p, int *row_of) {
    for (int i = 0; i < p->n_loras; i++) {
        const lmx_lora_use *u = &p->loras[i];
        if (!u->lora) return lmx_err(LMX_ERR_ARG, "LoRA %d: no LoRA handle", i + 1);
        if (!isfinite(u->unet_scale) || !isfinite(u->te_scale))
            return lmx_err(LMX_ERR_ARG, "LoRA %s: scale is not a finite number", u->lora->name);
        if (u->lora->model != m->sd)
            return lmx_err(LMX_ERR_ARG, "LoRA %s was loaded for another model", u->lora->path);
        for (int j = 0; j < i; j++)
            if (p->loras[j].lora == u->lora)
                return lmx_err(LMX_ERR_ARG, "LoRA %s is given twice", u->lora->path);
    }
    for (int i = 0; i < p->n_loras; i++) {
        row_of[i] = 0;
        for (int j = 0; j < p->n_loras; j++) row_of[i] += p->loras[j].lora->serial < p->loras[i].lora->serial;
    }
    return LMX_OK;
}

lmx_status pipeline_plan(lmx_ctx *c, const lmx_gen_params *p, const gen_info *gi, int n_steps,
                         gen_plan *plan) {
    const lmx_model *m = c->m;
    memset(plan, 0, sizeof *plan);
    plan->per_branch = gi->cfg ? 2 * p->n_images : p->n_images;
    plan->lam = p->lora_scale;
    plan->ls = &c->lora;
    if (p->n_loras < 0 || (p->n_loras > 0 && !p->loras))
        return lmx_err(LMX_ERR_ARG, "loras: %d LoRAs but no list", p->n_loras);
    const int n = p->n_loras;
    lmx_status st = LMX_OK;
    float *te_mult = NULL;
    const lmx_lora **set = NULL;
    if (n > 0) {
        plan->row_of = lmx_malloc(sizeof(int) * (size_t)n);
        te_mult = lmx_malloc(sizeof(float) * (size_t)n);
        set = lmx_malloc(sizeof *set * (size_t)n);
        if (!plan->row_of || !te_mult || !set) {
            st = lmx_err(LMX_ERR_NOMEM, "LoRA plan: out of memory");
            goto done;
        }
        if ((st = map_rows(m, p, plan->row_of)) != LMX_OK) goto done;
        for (int i = 0; i < n; i++) te_mult[i] = p->lora_scale * p->loras[i].te_scale;
        /* runtime side paths in the context's hooks, in load order */
        for (int i = 0; i < n; i++) set[plan->row_of[i]] = p->loras[i].lora;
        if ((st = lora_attach(&c->lora, m->sd, set, n)) != LMX_OK) goto done;
    }
    /* The plan: for PAW/PTW the text encoder runs through the context. */
    compose_clip cc = {.text = m->sd->text, .ops = c->ops, .arena = &c->arena, .n_loras = n,
                       .row_of = plan->row_of, .n_rows = n, .te_mult = te_mult,
                       .hooks = n > 0 ? &c->lora.hooks[LORA_TE] : NULL};
    compose_encoder enc = {.tok = m->tok, .hidden = clip_text_cfg(m->sd->text)->hidden,
                           .encode = compose_clip_encode, .user = &cc, .warn_prompt = 0};
    st = compose_plan_build(&plan->cp, &p->compose, p->loras, n, p->prompt, n_steps, &enc, NULL);
    if (st != LMX_OK) goto done;
    plan->has_cp = 1;
    plan->n_branches = plan->cp.n_branches;
    plan->n_samples = plan->n_branches * plan->per_branch;
    plan->n_rows = n;
    if (n == 0) goto done;

    if (p->lora_merged) {
        if (plan->cp.effective != LMX_METHOD_MERGE) {
            st = lmx_err(LMX_ERR_ARG, "--lora-merged: only with --method merge (got %s)",
                         lmx_method_name(p->compose.method));
            goto done;
        }
        lora_detach(&c->lora);
        float *uw = lmx_malloc(sizeof(float) * (size_t)n), *tw = lmx_malloc(sizeof(float) * (size_t)n);
        if (uw && tw) {
            for (int i = 0; i < n; i++) { /* in the order given (the sum's order) */
                set[i] = p->loras[i].lora;
                uw[i] = p->lora_scale * p->loras[i].unet_scale;
                tw[i] = plan->cp.te_on[i] ? te_mult[i] : 0.0f;
            }
            /* private kernels of this context */
            st = lora_merge(&c->lora, m->sd, set, uw, tw, n);
            if (st == LMX_OK) plan->merged = 1;
        } else {
            st = lmx_err(LMX_ERR_NOMEM, "LoRA merge: out of memory");
        }
        lmx_free(uw);
        lmx_free(tw);
        goto done;
    }
    plan->te_scale = lmx_calloc((size_t)plan->n_rows, sizeof(float));
    plan->unet_scale = lmx_calloc((size_t)plan->n_rows * (size_t)plan->n_samples, sizeof(float));
    if (!plan->te_scale || !plan->unet_scale) {
        st = lmx_err(LMX_ERR_NOMEM, "LoRA plan: out of memory");
        goto done;
    }
    compose_plan_te_scales(&plan->cp, p->lora_scale, p->loras, plan->row_of, plan->n_rows, plan->te_scale);
    plan->loras = p->loras;
done:
    lmx_free(te_mult);
    lmx_free(set);
    if (st != LMX_OK) pipeline_plan_free(plan);
    return st;
}

const float *pipeline_plan_unet_scales(gen_plan *plan, int step) {
    if (!plan->unet_scale) return NULL;
    compose_plan_unet_scales(&plan->cp, step, plan->lam, plan->loras, plan->row_of, plan->n_rows,
                             plan->per_branch, plan->unet_scale);
    return plan->unet_scale;
}

void pipeline_plan_free(gen_plan *plan) {
    if (plan->ls) {
        lora_unmerge(plan->ls);
        lora_detach(plan->ls);
    }
    if (plan->has_cp) compose_plan_free(&plan->cp);
    lmx_free(plan->te_scale);
    lmx_free(plan->unet_scale);
    lmx_free(plan->row_of);
    memset(plan, 0, sizeof *plan);
}

void pipeline_plan_culprits(const gen_plan *plan, const lmx_gen_params *p, int step, lmx_sb *sb) {
    int n_act = 0;
    if (!p->n_loras || !plan->row_of) return;
    for (int pass = 0; pass < 2; pass++) {
        int first = 1;
        for (int i = 0; i < p->n_loras; i++) {
            const lmx_lora_use *u = &p->loras[i];
            const int r = plan->row_of[i];
            int on = 1; /* merged weights: every LoRA is in every layer */
            if (step < 0 && plan->te_scale) on = plan->te_scale[r] != 0.0f;
            else if (step >= 0 && plan->unet_scale) {
                on = 0;
                for (int s = 0; s < plan->n_samples; s++) on |= plan->unet_scale[(size_t)r * plan->n_samples + s] != 0.0f;
            }
            if (pass == 0 ? !on : !(on && u->lora->n_nonfinite)) continue;
            const char *nm = u->name ? u->name : u->lora->name;
            if (pass == 0)
                lmx_sb_printf(sb, "%s%s", first ? "; LoRAs active: " : ", ", nm);
            else
                lmx_sb_printf(sb, "; LoRA '%s' holds NaN/Inf values (%s)", nm, u->lora->path);
            first = 0;
            n_act += pass == 0;
        }
    }
    if (!n_act) lmx_sb_cat(sb, "; no LoRA active");
}

void pipeline_loras_describe(const lmx_ctx *c, const lmx_gen_params *p, const gen_plan *plan, lmx_sb *sb) {
    (void)c;
    if (p->n_loras == 0 || !plan->has_cp) return;
    lmx_sb_cat(sb, ", Lora: ");
    for (int i = 0; i < p->n_loras; i++) {
        const lmx_lora_use *u = &p->loras[i];
        lmx_sb_printf(sb, "%s%s:%g", i ? " " : "", u->name ? u->name : u->lora->name, (double)u->unet_scale);
    }
    if (p->lora_scale != 1.0f) lmx_sb_printf(sb, ", Lora scale: %g", (double)p->lora_scale);
    lmx_sb_cat(sb, ", Composition: ");
    compose_plan_describe(&plan->cp, sb);
}

void pipeline_loras_json(const lmx_ctx *c, const lmx_gen_params *p, const gen_plan *plan, cJSON *j) {
    (void)c;
    if (p->n_loras == 0) return;
    cJSON *arr = cJSON_AddArrayToObject(j, "loras");
    for (int i = 0; arr && i < p->n_loras; i++) {
        const lmx_lora_use *u = &p->loras[i];
        cJSON *e = cJSON_CreateObject();
        if (!e) break;
        cJSON_AddStringToObject(e, "name", u->name ? u->name : u->lora->name);
        cJSON_AddStringToObject(e, "path", u->lora->path);
        cJSON_AddStringToObject(e, "category", lmx_lora_category_name(u->category));
        cJSON_AddNumberToObject(e, "unet_scale", u->unet_scale);
        cJSON_AddNumberToObject(e, "te_scale", u->te_scale);
        cJSON *t = cJSON_AddArrayToObject(e, "triggers");
        for (int k = 0; t && k < u->n_triggers; k++) cJSON_AddItemToArray(t, cJSON_CreateString(u->triggers[k]));
        cJSON_AddItemToArray(arr, e);
    }
    cJSON_AddNumberToObject(j, "lora_scale", p->lora_scale);
    cJSON_AddBoolToObject(j, "lora_merged", p->lora_merged);
    cJSON *comp = cJSON_AddObjectToObject(j, "composition");
    if (comp && plan->has_cp) compose_plan_json(&plan->cp, comp);
}
