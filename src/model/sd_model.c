/*
 * sd_model.c - whole-model loading: diffusers folders, original-layout
 * single files, VAE overrides. See sd_model.h.
 *
 * Folder layout as diffusers 0.32.2 DiffusionPipeline.save_pretrained writes
 * it; single-file layout as loaders/single_file_utils.py reads it
 * (LDM_UNET_KEY, LDM_VAE_KEYS, LDM_CLIP_PREFIX_TO_REMOVE).
 */
#include "model/sd_model.h"

#include <string.h>
#include <sys/stat.h>

#include "io/detect.h"
#include "model/keymap.h"

#define CONFIG_MAX (4u << 20) /* a config.json larger than 4 MiB is not one */

static const char UNET_PREFIX[] = "model.diffusion_model.";
static const char VAE_PREFIX[] = "first_stage_model.";
static const char TEXT_PREFIX[] = "cond_stage_model.transformer.";

sd_load_opts sd_load_opts_default(void) {
    sd_load_opts o;
    memset(&o, 0, sizeof o);
    o.prec = OP_PREC_F32;
    o.vae_encoder = 1;
    return o;
}

/* ---- small helpers ------------------------------------------------------------- */

static int is_dir(const char *p) {
    struct stat s;
    return stat(p, &s) == 0 && S_ISDIR(s.st_mode);
}

static int is_file(const char *p) {
    struct stat s;
    return stat(p, &s) == 0 && S_ISREG(s.st_mode);
}

static char *join(const char *a, const char *b) {
    size_t n = strlen(a) + strlen(b) + 2;
    char *p = lmx_malloc(n);
    if (p) snprintf(p, n, "%s/%s", a, b);
    return p;
}

static lmx_status pickle_error(const char *path, const char *why) {
    return lmx_err(LMX_ERR_UNSUPPORTED,
                   "%s: %s: loramix never loads pickle checkpoints (loading one can run arbitrary code); "
                   "convert it to .safetensors first (e.g. safetensors.torch.save_file on its state dict)",
                   path, why && *why ? why : "a pickle file");
}

/* Any tensor name starting with prefix? */
static int has_prefix(const st_file *f, const char *prefix) {
    size_t n = strlen(prefix);
    for (int i = 0; i < st_count(f); i++)
        if (strncmp(st_at(f, i)->name, prefix, n) == 0) return 1;
    return 0;
}

static int has_key(const st_file *f, const char *a, const char *b) {
    char k[512];
    snprintf(k, sizeof k, "%s%s", a, b);
    return st_find(f, k) != NULL;
}

/* Open a safetensors file, refusing pickle with the conversion hint. */
static unsigned st_flags_of(const sd_load_opts *o) { return o && o->allow_gaps ? ST_ALLOW_GAPS : 0; }

static lmx_status open_weights(st_file **f, const char *path, const sd_load_opts *o) {
    char why[128];
    *f = NULL;
    if (det_is_pickle(path, why, sizeof why)) return pickle_error(path, why);
    return st_open_flags(f, path, st_flags_of(o));
}

static lmx_status add_file(sd_model *m, st_file *f) {
    LMX_ASSERT(m->n_files < SD_MAX_FILES);
    m->files[m->n_files++] = f;
    return LMX_OK;
}

static uint8_t *new_marks(const st_file *f) {
    uint8_t *u = lmx_calloc((size_t)(st_count(f) > 0 ? st_count(f) : 1), 1);
    if (!u) lmx_err(LMX_ERR_NOMEM, "%s: out of memory", st_path(f));
    return u;
}

/* A diffusers component folder: config text and mapped weights. */
static lmx_status open_component(const char *dir, char **json, st_file **f, const sd_load_opts *o) {
    char *cfg = NULL, *w = NULL;
    int pickle = 0, sharded = 0;
    lmx_status st;
    *json = NULL;
    *f = NULL;
    if (!is_dir(dir)) return lmx_err(LMX_ERR_IO, "%s: missing (a diffusers model folder needs unet/, text_encoder/ and vae/)", dir);
    if (!(cfg = join(dir, "config.json"))) return lmx_err(LMX_ERR_NOMEM, "%s: out of memory", dir);
    if (!is_file(cfg)) {
        st = lmx_err(LMX_ERR_IO, "%s: missing", cfg);
        goto done;
    }
    if ((st = lmx_read_file(cfg, json, NULL, CONFIG_MAX))) goto done;
    if ((st = det_find_weights(dir, &w, &pickle, &sharded))) goto done;
    if (!w) {
        st = sharded ? lmx_err(LMX_ERR_UNSUPPORTED, "%s: sharded weights (*.safetensors.index.json) are not supported", dir)
                     : lmx_err(LMX_ERR_IO, "%s: no *.safetensors weights file", dir);
        goto done;
    }
    if (pickle) {
        st = pickle_error(w, NULL);
        goto done;
    }
    st = st_open_flags(f, w, st_flags_of(o));
done:
    if (st) {
        lmx_free(*json);
        *json = NULL;
    }
    lmx_free(cfg);
    lmx_free(w);
    return st;
}

/* Parse a config from the file's metadata key when present (and allowed). */
static lmx_status meta_config(const st_file *f, const char *key, const sd_load_opts *o, const char **json) {
    *json = o->ignore_file_config ? NULL : st_meta_get(f, key);
    return LMX_OK;
}

static lmx_status refuse_arch(const unet_config *c, const char *where) {
    if (c->cross_dim == 1024)
        return lmx_err(LMX_ERR_UNSUPPORTED, "%s: an SD2.x model (cross-attention width 1024): loramix runs SD1.x models only", where);
    if (c->cross_dim == 2048)
        return lmx_err(LMX_ERR_UNSUPPORTED, "%s: an SDXL model (cross-attention width 2048): loramix runs SD1.x models only", where);
    return LMX_OK;
}

/* Free a component's loading state before the next one. */
static void component_done(uint8_t **used, char **json, char **label, char **path) {
    lmx_free(*used);
    lmx_free(*json);
    lmx_free(*label);
    lmx_free(*path);
    *used = NULL;
    *json = NULL;
    *label = NULL;
    *path = NULL;
}

/* ---- VAE ------------------------------------------------------------------------------ */

/* Load a VAE from f with the given prefix/map/config; reports unused tensors
 * under `report_prefix` (NULL: no report). */
static lmx_status load_vae_from(vae **out, st_file *f, uint8_t *used, const char *prefix, const keymap *km,
                                const vae_config *cfg, const sd_load_opts *o, const char *report_prefix) {
    nn_src s = {0};
    s.f = f;
    s.label = "vae";
    s.prefix = prefix;
    s.km = km;
    s.used = used;
    s.prec = o->prec;
    s.conv_flags = o->winograd ? OP_CONV_WINOGRAD : 0;
    int has_enc = nn_src_has(&s, "encoder.conv_in.weight");
    int enc = o->vae_encoder && has_enc;
    lmx_status st = vae_load(out, &s, cfg, enc);
    nn_src_release(&s);
    /* An encoder skipped on purpose is not "unexpected". */
    if (!st && report_prefix && (enc || !has_enc)) nn_report_unused(f, used, report_prefix, "vae");
    return st;
}

/* A VAE in the LDM layout under `prefix` of an open file. */
static lmx_status load_vae_ldm(vae **out, st_file *f, uint8_t *used, const char *prefix, const sd_load_opts *o,
                               const char *report_prefix) {
    vae_config cfg;
    keymap km = {0};
    const char *json;
    char label[600];
    lmx_status st;
    meta_config(f, "loramix.vae_config", o, &json);
    snprintf(label, sizeof label, "%s: loramix.vae_config", st_path(f));
    st = json ? vae_config_parse(&cfg, json, label) : vae_config_infer_ldm(&cfg, f, prefix);
    if (!st) st = km_build_vae_ldm(&km, &cfg);
    if (!st) st = load_vae_from(out, f, used, prefix, &km, &cfg, o, report_prefix);
    km_free(&km);
    return st;
}

lmx_status sd_vae_load(vae **out, st_file **file_out, const char *path, const sd_load_opts *opts) {
    sd_load_opts o = opts ? *opts : sd_load_opts_default();
    st_file *f = NULL;
    uint8_t *used = NULL;
    char *json = NULL, *dir = NULL, *cfgp = NULL;
    lmx_status st = LMX_OK;
    *out = NULL;
    *file_out = NULL;
    if (is_dir(path)) {
        /* a diffusers vae folder, or a whole model folder with vae/ inside */
        char *sub = join(path, "vae");
        if (!sub) return lmx_err(LMX_ERR_NOMEM, "%s: out of memory", path);
        char *cj = join(path, "config.json");
        int whole = cj && !is_file(cj) && is_dir(sub);
        lmx_free(cj);
        st = open_component(whole ? sub : path, &json, &f, &o);
        lmx_free(sub);
        if (st) goto done;
        vae_config cfg;
        char label[600];
        snprintf(label, sizeof label, "%s/config.json", path);
        if ((st = vae_config_parse(&cfg, json, label))) goto done;
        if (!(used = new_marks(f))) {
            st = LMX_ERR_NOMEM;
            goto done;
        }
        st = load_vae_from(out, f, used, "", NULL, &cfg, &o, "");
        goto done;
    }
    if ((st = open_weights(&f, path, &o))) goto done;
    if (!(used = new_marks(f))) {
        st = LMX_ERR_NOMEM;
        goto done;
    }
    if (st_find(f, "encoder.down_blocks.0.resnets.0.conv1.weight") || st_find(f, "decoder.up_blocks.0.resnets.0.conv1.weight")) {
        /* diffusers names: the config must be beside the file */
        const char *slash = strrchr(path, '/');
        dir = slash ? lmx_malloc((size_t)(slash - path) + 1) : lmx_strdup(".");
        if (!dir) {
            st = lmx_err(LMX_ERR_NOMEM, "%s: out of memory", path);
            goto done;
        }
        if (slash) {
            memcpy(dir, path, (size_t)(slash - path));
            dir[slash - path] = 0;
        }
        if (!(cfgp = join(dir, "config.json"))) {
            st = lmx_err(LMX_ERR_NOMEM, "%s: out of memory", path);
            goto done;
        }
        const char *meta = o.ignore_file_config ? NULL : st_meta_get(f, "loramix.vae_config");
        vae_config cfg;
        if (meta) {
            st = vae_config_parse(&cfg, meta, path);
        } else {
            if (!is_file(cfgp)) {
                st = lmx_err(LMX_ERR_IO, "%s: diffusers-style VAE weights need their config.json beside them (%s is missing)",
                             path, cfgp);
                goto done;
            }
            if ((st = lmx_read_file(cfgp, &json, NULL, CONFIG_MAX))) goto done;
            st = vae_config_parse(&cfg, json, cfgp);
        }
        if (!st) st = load_vae_from(out, f, used, "", NULL, &cfg, &o, "");
        goto done;
    }
    static const char *const prefixes[] = {"first_stage_model.", "vae.", ""};
    for (size_t i = 0; i < LMX_ARRAY_LEN(prefixes); i++) {
        if (has_key(f, prefixes[i], "decoder.conv_in.weight")) {
            st = load_vae_ldm(out, f, used, prefixes[i], &o, prefixes[i]);
            goto done;
        }
    }
    st = lmx_err(LMX_ERR_FORMAT, "%s: no VAE found (expected first_stage_model.*, vae.*, encoder./decoder. or diffusers VAE keys)",
                 path);
done:
    lmx_free(used);
    lmx_free(json);
    lmx_free(dir);
    lmx_free(cfgp);
    if (st) {
        vae_free(*out);
        *out = NULL;
        st_close(f);
    } else {
        *file_out = f;
    }
    return st;
}

/* ---- folder -------------------------------------------------------------------------------- */

static lmx_status load_folder(sd_model *m, const char *root, const sd_load_opts *o) {
    char *p = NULL, *json = NULL, *label = NULL;
    st_file *f = NULL;
    uint8_t *used = NULL;
    lmx_status st = LMX_OK;
    nn_src s = {0};
    s.prec = o->prec;
    s.conv_flags = o->winograd ? OP_CONV_WINOGRAD : 0;

    /* model_index.json: presence and the pipeline class */
    if (!(p = join(root, "model_index.json"))) return lmx_err(LMX_ERR_NOMEM, "%s: out of memory", root);
    if (!is_file(p)) {
        st = lmx_err(LMX_ERR_IO, "%s: no model_index.json: not a diffusers model folder", root);
        goto done;
    }
    if ((st = lmx_read_file(p, &json, NULL, CONFIG_MAX))) goto done;
    if (strstr(json, "StableDiffusionXL") || strstr(json, "\"text_encoder_2\"")) {
        st = lmx_err(LMX_ERR_UNSUPPORTED, "%s: an SDXL pipeline: loramix runs SD1.x models only", p);
        goto done;
    }
    lmx_free(json);
    json = NULL;
    lmx_free(p);
    p = NULL;

    /* UNet */
    if (!(p = join(root, "unet"))) goto nomem;
    if ((st = open_component(p, &json, &f, o))) goto done;
    if (!(label = join(p, "config.json"))) goto nomem;
    unet_config ucfg;
    if ((st = unet_config_parse(&ucfg, json, label))) goto done;
    if ((st = refuse_arch(&ucfg, label))) goto done;
    if (!(used = new_marks(f))) goto nomem;
    s.f = f;
    s.label = "unet";
    s.prefix = "";
    s.used = used;
    if ((st = add_file(m, f))) goto done;
    f = NULL;
    if ((st = unet_load(&m->unet, &s, &ucfg))) goto done;
    nn_report_unused(s.f, used, "", "unet");
    component_done(&used, &json, &label, &p);

    /* text encoder */
    if (!(p = join(root, "text_encoder"))) goto nomem;
    if ((st = open_component(p, &json, &f, o))) goto done;
    if (!(label = join(p, "config.json"))) goto nomem;
    clip_text_config tcfg;
    if ((st = clip_text_config_parse(&tcfg, json, label))) goto done;
    if (!(used = new_marks(f))) goto nomem;
    s.f = f;
    s.label = "text_encoder";
    s.used = used;
    if ((st = add_file(m, f))) goto done;
    f = NULL;
    if ((st = clip_text_load(&m->text, &s, &tcfg))) goto done;
    nn_report_unused(s.f, used, "", "text_encoder");
    component_done(&used, &json, &label, &p);

    /* VAE */
    if (!o->vae_path) {
        if (!(p = join(root, "vae"))) goto nomem;
        if (!(m->vae_path = lmx_strdup(p))) goto nomem;
        st_file *vf = NULL;
        st = sd_vae_load(&m->vae, &vf, p, o);
        if (st) goto done;
        add_file(m, vf);
        lmx_free(p);
        p = NULL;
    }

    /* tokenizer and scheduler */
    if (!(p = join(root, "tokenizer"))) goto nomem;
    if (is_dir(p)) {
        m->tokenizer_dir = p;
        p = NULL;
    } else {
        lmx_warn("%s: no tokenizer/ folder: using the bundled CLIP vocabulary", root);
    }
    lmx_free(p);
    if (!(p = join(root, "scheduler/scheduler_config.json"))) goto nomem;
    if (is_file(p)) {
        if ((st = lmx_read_file(p, &m->scheduler_config, NULL, CONFIG_MAX))) goto done;
        m->scheduler_config_path = p;
        p = NULL;
    }
    goto done;
nomem:
    st = lmx_err(LMX_ERR_NOMEM, "%s: out of memory", root);
done:
    nn_src_release(&s);
    st_close(f);
    lmx_free(used);
    lmx_free(json);
    lmx_free(label);
    lmx_free(p);
    return st;
}

/* ---- single file ------------------------------------------------------------------------------ */

static lmx_status load_single(sd_model *m, const char *path, const sd_load_opts *o) {
    st_file *f = NULL;
    uint8_t *used = NULL;
    keymap ukm = {0}, tkm = {0};
    lmx_status st;
    char label[600];
    const char *json;
    nn_src s = {0};
    s.prec = o->prec;
    s.conv_flags = o->winograd ? OP_CONV_WINOGRAD : 0;
    if ((st = open_weights(&f, path, o))) return st;
    add_file(m, f);
    if (has_prefix(f, "conditioner.embedders."))
        return lmx_err(LMX_ERR_UNSUPPORTED, "%s: an SDXL checkpoint (conditioner.embedders.*): loramix runs SD1.x models only",
                       path);
    if (has_prefix(f, "cond_stage_model.model."))
        return lmx_err(LMX_ERR_UNSUPPORTED,
                       "%s: an SD2.x checkpoint (OpenCLIP text encoder, cond_stage_model.model.*): loramix runs SD1.x models only",
                       path);
    if (!has_key(f, UNET_PREFIX, "input_blocks.0.0.weight")) {
        det_info di;
        det_classify(f, NULL, &di);
        if (di.kind == DET_LORA_KOHYA || di.kind == DET_LORA_PEFT || di.kind == DET_LYCORIS)
            return lmx_err(LMX_ERR_FORMAT, "%s: this is a LoRA (%s), not a model", path, det_kind_desc(di.kind));
        if (di.kind == DET_DIFFUSERS_UNET || di.kind == DET_DIFFUSERS_VAE || di.kind == DET_DIFFUSERS_TEXT)
            return lmx_err(LMX_ERR_FORMAT, "%s: one component of a diffusers model (%s): load the model folder instead",
                           path, det_kind_desc(di.kind));
        return lmx_err(LMX_ERR_FORMAT, "%s: not an SD1.x checkpoint (no %sinput_blocks.0.0.weight)", path, UNET_PREFIX);
    }
    if (!(used = new_marks(f))) return LMX_ERR_NOMEM;

    /* UNet */
    unet_config ucfg;
    meta_config(f, "loramix.unet_config", o, &json);
    snprintf(label, sizeof label, "%s: loramix.unet_config", path);
    st = json ? unet_config_parse(&ucfg, json, label) : unet_config_infer_ldm(&ucfg, f, UNET_PREFIX);
    if (st) goto done;
    if ((st = refuse_arch(&ucfg, path))) goto done;
    if ((st = km_build_unet_ldm(&ukm, &ucfg))) goto done;
    s.f = f;
    s.used = used;
    s.label = "unet";
    s.prefix = UNET_PREFIX;
    s.km = &ukm;
    if ((st = unet_load(&m->unet, &s, &ucfg))) goto done;

    /* text encoder: "cond_stage_model.transformer.text_model.*" or the older spelling without text_model */
    char tprefix[128];
    const keymap *tk = NULL;
    if (has_key(f, TEXT_PREFIX, "text_model.embeddings.token_embedding.weight")) {
        snprintf(tprefix, sizeof tprefix, "%stext_model.", TEXT_PREFIX);
    } else if (has_key(f, TEXT_PREFIX, "embeddings.token_embedding.weight")) {
        snprintf(tprefix, sizeof tprefix, "%s", TEXT_PREFIX);
        if ((st = km_build_text_old(&tkm))) goto done;
        tk = &tkm;
    } else {
        st = lmx_err(LMX_ERR_FORMAT, "%s: no text encoder (%s[text_model.]embeddings.token_embedding.weight)", path, TEXT_PREFIX);
        goto done;
    }
    clip_text_config tcfg;
    meta_config(f, "loramix.text_config", o, &json);
    snprintf(label, sizeof label, "%s: loramix.text_config", path);
    st = json ? clip_text_config_parse(&tcfg, json, label) : clip_text_config_infer(&tcfg, f, tprefix);
    if (st) goto done;
    s.label = "text_encoder";
    s.prefix = TEXT_PREFIX;
    s.km = tk;
    if ((st = clip_text_load(&m->text, &s, &tcfg))) goto done;

    /* VAE */
    if (!o->vae_path) {
        if (!has_key(f, VAE_PREFIX, "decoder.conv_in.weight")) {
            st = lmx_err(LMX_ERR_FORMAT, "%s: no VAE (%s*); pass one with --vae", path, VAE_PREFIX);
            goto done;
        }
        if ((st = load_vae_ldm(&m->vae, f, used, VAE_PREFIX, o, NULL))) goto done;
        if (!(m->vae_path = lmx_strdup(path))) {
            st = lmx_err(LMX_ERR_NOMEM, "%s: out of memory", path);
            goto done;
        }
        nn_report_unused(f, used, VAE_PREFIX, "vae");
    }
    nn_report_unused(f, used, UNET_PREFIX, "unet");
    nn_report_unused(f, used, TEXT_PREFIX, "text_encoder");
    if (lmx_log_enabled(LMX_LOG_DEBUG)) {
        int other = 0;
        for (int i = 0; i < st_count(f); i++) other += !used[i];
        lmx_debug("%s: %d tensors not used (EMA copies, schedule buffers, ...)", path, other);
    }
done:
    nn_src_release(&s);
    km_free(&ukm);
    km_free(&tkm);
    lmx_free(used);
    return st;
}

/* ---- entry points ------------------------------------------------------------------------------ */

void sd_model_free(sd_model *m) {
    if (!m) return;
    clip_text_free(m->text);
    unet_free(m->unet);
    vae_free(m->vae);
    for (int i = 0; i < m->n_files; i++) st_close(m->files[i]);
    lmx_free(m->path);
    lmx_free(m->tokenizer_dir);
    lmx_free(m->scheduler_config);
    lmx_free(m->scheduler_config_path);
    lmx_free(m->vae_path);
    lmx_free(m);
}

lmx_status sd_model_load(sd_model **out, const char *path, const sd_load_opts *opts) {
    sd_load_opts o = opts ? *opts : sd_load_opts_default();
    lmx_status st;
    *out = NULL;
    if (!path || !*path) return lmx_err(LMX_ERR_ARG, "model: no path given");
    sd_model *m = lmx_calloc(1, sizeof *m);
    if (!m || !(m->path = lmx_strdup(path))) {
        lmx_free(m);
        return lmx_err(LMX_ERR_NOMEM, "%s: out of memory", path);
    }
    m->st_flags = st_flags_of(&o);
    if (is_dir(path)) {
        st = load_folder(m, path, &o);
    } else if (is_file(path)) {
        m->single_file = 1;
        st = load_single(m, path, &o);
    } else {
        st = lmx_err(LMX_ERR_IO, "%s: no such file or folder", path);
    }
    if (!st && o.vae_path) {
        st_file *vf = NULL;
        st = sd_vae_load(&m->vae, &vf, o.vae_path, &o);
        if (!st) {
            add_file(m, vf);
            if (!(m->vae_path = lmx_strdup(o.vae_path))) st = lmx_err(LMX_ERR_NOMEM, "%s: out of memory", path);
        } else {
            lmx_err_prefix("--vae: ");
        }
    }
    if (!st) {
        int cd = unet_cfg(m->unet)->cross_dim, th = clip_text_cfg(m->text)->hidden;
        if (cd != th)
            st = lmx_err(LMX_ERR_SHAPE, "%s: the UNet's cross-attention width %d differs from the text encoder's width %d",
                         path, cd, th);
        else if (vae_cfg(m->vae)->latent_channels != unet_cfg(m->unet)->in_channels &&
                 unet_cfg(m->unet)->in_channels != 9)
            st = lmx_err(LMX_ERR_SHAPE, "%s: the VAE's %d latent channels do not fit the UNet's %d input channels", path,
                         vae_cfg(m->vae)->latent_channels, unet_cfg(m->unet)->in_channels);
    }
    if (st) {
        sd_model_free(m);
        return st;
    }
    /* Every weight now lives in a packed kernel: let the mapped file pages
     * go (a LoRA merge re-reads them on demand). Halves the resident set of
     * an fp16 checkpoint. */
    for (int i = 0; i < m->n_files; i++) st_drop_pages(m->files[i]);
    *out = m;
    return LMX_OK;
}
