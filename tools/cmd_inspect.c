/*
 * cmd_inspect.c - `loramix inspect PATH...`: what a model or LoRA file (or
 * a diffusers folder) is and what it holds, without loading any weights.
 *
 * The classification lives in src/io/detect.c (shared with the loaders);
 * this file only formats it, as text or as one JSON object per path. Pickle
 * files (.ckpt/.pt/.bin, zip or pickle magic) are refused with a message to
 * convert them; hostile or truncated files give a one-line error naming the
 * file (the safetensors reader validates everything before we look).
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "core/core.h"
#include "io/detect.h"
#include "io/io_util.h"
#include "io/safetensors.h"

typedef struct opts {
    int tensors;        /* -1: default (files yes, folders no), 0, 1 */
    const char *filter; /* substring of tensor names, or NULL */
    int json;
    int full;           /* do not shorten metadata values */
    int metadata;
} opts;

/* --allow-gaps: st_open_flags flags for every file inspected. */
static unsigned g_st_flags;

static void help(FILE *out) {
    fputs(
        "usage: loramix inspect [options] PATH...\n"
        "\n"
        "Say what a model or LoRA file is and what it holds, without loading weights.\n"
        "PATH is a .safetensors file, a diffusers component folder (unet/, vae/,\n"
        "text_encoder/: config.json + weights) or a whole diffusers model folder\n"
        "(model_index.json). Any other folder: one line per model file in it.\n"
        "\n"
        "Shows:\n"
        "  - the kind: single-file checkpoint, diffusers UNet / VAE / text encoder /\n"
        "    model folder, kohya LoRA, PEFT/diffusers LoRA, LyCORIS (LoHa, LoKr, ...);\n"
        "    the base model (SD1.x, SD2.x, SDXL) and whether loramix supports it\n"
        "    (SD1.x only; SD2.x and SDXL files are recognised and reported as such);\n"
        "  - for a LoRA: modules adapted (UNet, text encoder, 3x3 convs), ranks,\n"
        "    alphas, key dialect, modules the reference loader drops;\n"
        "  - tensor count, total parameters, dtypes, the __metadata__ entries, and\n"
        "    the tensors (name, dtype, shape) in file order.\n"
        "PyTorch pickle files (.ckpt, .pt, .pth, .bin) are never loaded (they can\n"
        "run code): convert them to .safetensors first (docs/file-formats.md).\n"
        "\n"
        "options:\n"
        "  --tensors         list tensors (default for a file; off for folders)\n"
        "  --no-tensors      do not list tensors\n"
        "  --filter SUBSTR   list only tensors whose name contains SUBSTR\n"
        "  --no-metadata     do not print __metadata__\n"
        "  --full            print metadata values in full (default: cut at 160)\n"
        "  --json            one JSON object per PATH on stdout (one per line)\n"
        "  --allow-gaps      accept .safetensors files whose tensors leave unreferenced\n"
        "                    bytes in the data area (refused by default, as the\n"
        "                    reference reader does; docs/file-formats.md)\n"
        "  -h, --help        this text\n"
        "\n"
        "examples:\n"
        "  loramix inspect lora/character_1.safetensors\n"
        "  loramix inspect --no-tensors lora/*.safetensors\n"
        "  loramix inspect --filter attn2 models/sd15.safetensors\n"
        "  loramix inspect models/Realistic_Vision_V5.1_noVAE     (a diffusers folder)\n"
        "  loramix inspect --json --no-tensors my_lora.safetensors | jq .lora\n"
        "\n"
        "exit status: 0 when every PATH was read, 1 when one could not be (missing,\n"
        "malformed, truncated, pickle), 2 for bad usage. Errors are one line on\n"
        "stderr, naming the file and the problem.\n",
        out);
}

/* ---- formatting helpers ---- */

static const char *fmt_count(uint64_t v, char *buf, size_t n) {
    char tmp[32];
    int len = snprintf(tmp, sizeof tmp, "%llu", (unsigned long long)v);
    size_t k = 0;
    for (int i = 0; i < len && k + 2 < n; i++) {
        if (i && (len - i) % 3 == 0) buf[k++] = ',';
        buf[k++] = tmp[i];
    }
    buf[k] = 0;
    return buf;
}

static const char *fmt_size(uint64_t b, char *buf, size_t n) {
    if (b < 1024) snprintf(buf, n, "%llu bytes", (unsigned long long)b);
    else if (b < (1u << 20)) snprintf(buf, n, "%.1f KiB", (double)b / 1024);
    else if (b < (1u << 30)) snprintf(buf, n, "%.1f MiB", (double)b / (1 << 20));
    else snprintf(buf, n, "%.2f GiB", (double)b / (1 << 30));
    return buf;
}

/* Print an untrusted string on one line: control bytes escaped, cut at
 * `max` bytes unless max == 0. */
static void put_quoted(FILE *out, const char *s, size_t max) {
    size_t len = strlen(s), lim = max ? max : len;
    size_t cap = 4 * LMX_MIN(len, lim) + 16;
    char stackbuf[1024];
    char *buf = cap <= sizeof stackbuf ? stackbuf : lmx_malloc(cap);
    if (!buf) {
        fputs("(out of memory)", out);
        return;
    }
    io_quote(buf, cap, s, len, lim);
    fputs(buf, out);
    if (buf != stackbuf) lmx_free(buf);
}

static const char *part_list(unsigned parts, char *buf, size_t n) {
    snprintf(buf, n, "%s%s%s%s", parts & DET_PART_UNET ? "UNet " : "",
             parts & DET_PART_TEXT ? "text-encoder " : "",
             parts & DET_PART_TEXT2 ? "text-encoder-2 " : "", parts & DET_PART_VAE ? "VAE " : "");
    size_t k = strlen(buf);
    if (k) buf[k - 1] = 0;
    else snprintf(buf, n, "-");
    return buf;
}

typedef struct totals {
    uint64_t params;
    int dtype_count[ST_DTYPE_COUNT];
} totals;

static void count_file(const st_file *f, totals *t) {
    memset(t, 0, sizeof *t);
    for (int i = 0; i < st_count(f); i++) {
        const st_tensor *x = st_at(f, i);
        t->params += (uint64_t)x->numel;
        t->dtype_count[x->dtype]++;
    }
}

static int tensor_shown(const st_tensor *t, const opts *o) {
    return !o->filter || strstr(t->name, o->filter);
}

static void print_tensors(FILE *out, const st_file *f, const opts *o, const char *indent) {
    size_t w = 0;
    int shown = 0;
    for (int i = 0; i < st_count(f); i++) {
        const st_tensor *t = st_at(f, i);
        if (!tensor_shown(t, o)) continue;
        w = LMX_MAX(w, strlen(t->name));
        shown++;
    }
    w = LMX_MIN(w, 72);
    if (o->filter) {
        fprintf(out, "%stensors matching '", indent);
        put_quoted(out, o->filter, 80);
        fprintf(out, "': %d of %d\n", shown, st_count(f));
    } else {
        fprintf(out, "%stensors (%d, file order):\n", indent, st_count(f));
    }
    for (int i = 0; i < st_count(f); i++) {
        const st_tensor *t = st_at(f, i);
        if (!tensor_shown(t, o)) continue;
        char shape[160];
        st_shape_str(t->ndim, t->shape, shape, sizeof shape);
        fprintf(out, "%s  ", indent);
        size_t len = strlen(t->name);
        put_quoted(out, t->name, 200);
        for (size_t k = len; k < w; k++) fputc(' ', out);
        fprintf(out, "  %-4s %s\n", st_dtype_name(t->dtype), shape);
    }
}

static void print_lora(FILE *out, const det_info *d) {
    const det_lora *L = &d->lora;
    fprintf(out, "  LoRA        %d modules: UNet %d, text encoder %d", L->n_modules, L->n_unet,
            L->n_text);
    if (L->n_text2) fprintf(out, ", text encoder 2 %d", L->n_text2);
    fprintf(out, "; on 3x3 convs %d\n", L->n_conv);
    if (L->n_values_rank) {
        fprintf(out, "  ranks      ");
        for (int i = 0; i < DET_MAX_VALUES && L->rank_count[i]; i++)
            fprintf(out, "%s %d (x%d)", i ? "," : "", L->rank[i], L->rank_count[i]);
        if (L->n_values_rank > DET_MAX_VALUES)
            fprintf(out, ", ... (%d distinct)", L->n_values_rank);
        fprintf(out, "%s\n", L->n_values_rank > 1 ? "  [non-uniform]" : "");
    }
    if (L->n_alpha) {
        fprintf(out, "  alphas     ");
        for (int i = 0; i < DET_MAX_VALUES && L->alpha_count[i]; i++)
            fprintf(out, "%s %g (x%d)", i ? "," : "", (double)L->alpha[i], L->alpha_count[i]);
        if (L->n_values_alpha > DET_MAX_VALUES)
            fprintf(out, ", ... (%d distinct)", L->n_values_alpha);
        fprintf(out, "%s; %d of %d modules have one\n", L->n_values_alpha > 1 ? "  [non-uniform]" : "",
                L->n_alpha, L->n_modules);
    } else if (d->kind != DET_LYCORIS) {
        fprintf(out, "  alphas      none (alpha = rank, scale 1)\n");
    }
    if (d->kind == DET_LORA_KOHYA && (L->n_ldm_keys || L->n_diffusers_keys))
        fprintf(out, "  UNet keys   diffusers dialect %d, LDM dialect %d\n", L->n_diffusers_keys,
                L->n_ldm_keys);
    if (L->n_ignored)
        fprintf(out,
                "  note        %d modules on conv_in/conv_out/time_embedding: the reference "
                "loader drops them\n",
                L->n_ignored);
}

/* ---- text output for one safetensors file ---- */

static void print_file_text(const char *path, const st_file *f, const det_info *d,
                            const opts *o, int list_tensors) {
    FILE *out = stdout;
    totals t;
    count_file(f, &t);
    char a[64], b[64], c[64], parts[80];
    put_quoted(out, path, 0);
    fputc('\n', out);
    fprintf(out, "  kind        %s\n", d->summary);
    fprintf(out, "  supported   %s\n", d->supported ? "yes" : "no");
    if (d->kind != DET_UNKNOWN)
        fprintf(out, "  parts       %s\n", part_list(d->parts, parts, sizeof parts));
    fprintf(out, "  file        safetensors, %s, header %s\n", fmt_size(st_file_size(f), a, sizeof a),
            fmt_size(st_header_size(f), b, sizeof b));
    fprintf(out, "  tensors     %d, %s parameters", st_count(f), fmt_count(t.params, c, sizeof c));
    const char *sep = " (";
    for (int k = 0; k < ST_DTYPE_COUNT; k++)
        if (t.dtype_count[k]) {
            fprintf(out, "%s%s x%d", sep, st_dtype_name((st_dtype)k), t.dtype_count[k]);
            sep = ", ";
        }
    fprintf(out, "%s\n", *sep == ',' ? ")" : "");
    if (d->context_dim || d->text_dim) {
        fprintf(out, "  widths     ");
        if (d->context_dim) fprintf(out, " cross-attention %d", d->context_dim);
        if (d->text_dim) fprintf(out, "%s text encoder %d", d->context_dim ? "," : "", d->text_dim);
        fputc('\n', out);
    }
    if (d->kind == DET_LORA_KOHYA || d->kind == DET_LORA_PEFT || d->kind == DET_LYCORIS)
        print_lora(out, d);
    if (o->metadata) {
        fprintf(out, "  metadata    %d entr%s%s\n", st_meta_count(f),
                st_meta_count(f) == 1 ? "y" : "ies", st_meta_count(f) ? ":" : "");
        for (int i = 0; i < st_meta_count(f); i++) {
            const char *k, *v;
            st_meta_at(f, i, &k, &v);
            fputs("    ", out);
            put_quoted(out, k, 80);
            fputs(" = ", out);
            put_quoted(out, v, o->full ? 0 : 160);
            fputc('\n', out);
        }
    }
    if (list_tensors) print_tensors(out, f, o, "  ");
}

/* ---- JSON ---- */

static cJSON *json_file(const char *path, const st_file *f, const det_info *d, const opts *o,
                        int list_tensors) {
    totals t;
    count_file(f, &t);
    cJSON *j = cJSON_CreateObject();
    if (!j) return NULL;
    cJSON_AddStringToObject(j, "path", path);
    cJSON_AddStringToObject(j, "format", "safetensors");
    cJSON_AddNumberToObject(j, "file_size", (double)st_file_size(f));
    cJSON_AddNumberToObject(j, "header_size", (double)st_header_size(f));
    cJSON_AddStringToObject(j, "kind", det_kind_name(d->kind));
    cJSON_AddStringToObject(j, "description", det_kind_desc(d->kind));
    cJSON_AddStringToObject(j, "arch", det_arch_name(d->arch));
    cJSON_AddBoolToObject(j, "supported", d->supported);
    cJSON_AddStringToObject(j, "summary", d->summary);
    cJSON *parts = cJSON_AddArrayToObject(j, "parts");
    static const struct {
        unsigned flag;
        const char *name;
    } pn[] = {{DET_PART_UNET, "unet"},
              {DET_PART_TEXT, "text_encoder"},
              {DET_PART_TEXT2, "text_encoder_2"},
              {DET_PART_VAE, "vae"}};
    for (size_t i = 0; i < LMX_ARRAY_LEN(pn); i++)
        if (d->parts & pn[i].flag) cJSON_AddItemToArray(parts, cJSON_CreateString(pn[i].name));
    cJSON_AddBoolToObject(j, "inpainting", d->inpainting);
    cJSON_AddNumberToObject(j, "context_dim", d->context_dim);
    cJSON_AddNumberToObject(j, "text_dim", d->text_dim);
    if (d->kind == DET_LORA_KOHYA || d->kind == DET_LORA_PEFT || d->kind == DET_LYCORIS) {
        const det_lora *L = &d->lora;
        cJSON *l = cJSON_AddObjectToObject(j, "lora");
        cJSON_AddNumberToObject(l, "modules", L->n_modules);
        cJSON_AddNumberToObject(l, "unet", L->n_unet);
        cJSON_AddNumberToObject(l, "text_encoder", L->n_text);
        cJSON_AddNumberToObject(l, "text_encoder_2", L->n_text2);
        cJSON_AddNumberToObject(l, "conv3x3", L->n_conv);
        cJSON *r = cJSON_AddArrayToObject(l, "ranks");
        for (int i = 0; i < DET_MAX_VALUES && L->rank_count[i]; i++) {
            cJSON *e = cJSON_CreateObject();
            cJSON_AddNumberToObject(e, "rank", L->rank[i]);
            cJSON_AddNumberToObject(e, "count", L->rank_count[i]);
            cJSON_AddItemToArray(r, e);
        }
        cJSON_AddNumberToObject(l, "distinct_ranks", L->n_values_rank);
        cJSON *al = cJSON_AddArrayToObject(l, "alphas");
        for (int i = 0; i < DET_MAX_VALUES && L->alpha_count[i]; i++) {
            cJSON *e = cJSON_CreateObject();
            cJSON_AddNumberToObject(e, "alpha", L->alpha[i]);
            cJSON_AddNumberToObject(e, "count", L->alpha_count[i]);
            cJSON_AddItemToArray(al, e);
        }
        cJSON_AddNumberToObject(l, "distinct_alphas", L->n_values_alpha);
        cJSON_AddNumberToObject(l, "modules_with_alpha", L->n_alpha);
        cJSON_AddNumberToObject(l, "ldm_keys", L->n_ldm_keys);
        cJSON_AddNumberToObject(l, "diffusers_keys", L->n_diffusers_keys);
        cJSON_AddNumberToObject(l, "dropped_by_reference", L->n_ignored);
    }
    cJSON_AddNumberToObject(j, "n_tensors", st_count(f));
    cJSON_AddNumberToObject(j, "n_params", (double)t.params);
    cJSON *dt = cJSON_AddObjectToObject(j, "dtypes");
    for (int k = 0; k < ST_DTYPE_COUNT; k++)
        if (t.dtype_count[k]) cJSON_AddNumberToObject(dt, st_dtype_name((st_dtype)k), t.dtype_count[k]);
    if (o->metadata) {
        cJSON *m = cJSON_AddObjectToObject(j, "metadata");
        for (int i = 0; i < st_meta_count(f); i++) {
            const char *k, *v;
            st_meta_at(f, i, &k, &v);
            cJSON_AddStringToObject(m, k, v);
        }
    }
    if (list_tensors) {
        cJSON *ts = cJSON_AddArrayToObject(j, "tensors");
        for (int i = 0; i < st_count(f); i++) {
            const st_tensor *x = st_at(f, i);
            if (!tensor_shown(x, o)) continue;
            cJSON *e = cJSON_CreateObject();
            cJSON_AddStringToObject(e, "name", x->name);
            cJSON_AddStringToObject(e, "dtype", st_dtype_name(x->dtype));
            cJSON *sh = cJSON_AddArrayToObject(e, "shape");
            for (int k = 0; k < x->ndim; k++)
                cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)x->shape[k]));
            cJSON_AddItemToArray(ts, e);
        }
    }
    return j;
}

static int emit_json(cJSON *j) {
    char *s = j ? cJSON_PrintUnformatted(j) : NULL;
    cJSON_Delete(j);
    if (!s) {
        cli_error("out of memory formatting JSON");
        return CLI_FAIL;
    }
    puts(s);
    cJSON_free(s);
    return CLI_OK;
}

/* ---- files ---- */

static int pickle_error(const char *path, const char *why) {
    cli_error("%s: this is a PyTorch pickle file (%s); loramix never loads pickle files because "
              "they can run arbitrary code: convert it to .safetensors first (see "
              "docs/file-formats.md)",
              path, why);
    return CLI_FAIL;
}

/* The class in the config.json next to `path`, if any (lmx_free it). */
static char *sibling_config_class(const char *path) {
    const char *slash = strrchr(path, '/');
    size_t dl = slash ? (size_t)(slash - path) : 1;
    char *cfg = lmx_malloc(dl + 16);
    if (!cfg) return NULL;
    if (slash) memcpy(cfg, path, dl);
    else cfg[0] = '.';
    memcpy(cfg + dl, "/config.json", 13);
    char *cls = NULL;
    struct stat sb;
    if (stat(cfg, &sb) == 0 && S_ISREG(sb.st_mode)) {
        char *text = NULL;
        if (io_read_small(cfg, 1u << 20, &text, NULL) == LMX_OK) {
            io_cjson_init();
            cJSON *root = cJSON_Parse(text);
            const cJSON *c = cJSON_GetObjectItemCaseSensitive(root, "_class_name");
            const cJSON *a = cJSON_GetObjectItemCaseSensitive(root, "architectures");
            if (!cJSON_IsString(c) && cJSON_IsArray(a)) c = a->child;
            if (cJSON_IsString(c)) cls = lmx_strdup(c->valuestring);
            cJSON_Delete(root);
            lmx_free(text);
        }
        lmx_err_clear();
    }
    lmx_free(cfg);
    return cls;
}

/* Open and classify a weights file. On failure the error is set. */
static lmx_status open_classified(const char *path, const char *cls, st_file **f, det_info *d) {
    char why[96];
    if (det_is_pickle(path, why, sizeof why))
        return lmx_err(LMX_ERR_UNSUPPORTED,
                       "%s: this is a PyTorch pickle file (%s); loramix never loads pickle files "
                       "because they can run arbitrary code: convert it to .safetensors first "
                       "(see docs/file-formats.md)",
                       path, why);
    lmx_status st = st_open_flags(f, path, g_st_flags);
    if (st != LMX_OK) return st;
    det_classify(*f, cls, d);
    return LMX_OK;
}

static int inspect_file(const char *path, const char *cls_hint, const opts *o) {
    char why[96];
    if (det_is_pickle(path, why, sizeof why)) return pickle_error(path, why);
    st_file *f = NULL;
    lmx_status st = st_open_flags(&f, path, g_st_flags);
    if (st != LMX_OK) return cli_fail_status(st);
    char *cls = cls_hint ? NULL : sibling_config_class(path);
    det_info d;
    det_classify(f, cls_hint ? cls_hint : cls, &d);
    lmx_free(cls);
    int list = o->tensors != 0 || o->filter;
    int rc = CLI_OK;
    if (o->json) rc = emit_json(json_file(path, f, &d, o, list));
    else print_file_text(path, f, &d, o, list);
    st_close(f);
    return rc;
}

/* ---- folders ---- */

static int inspect_pipeline(const char *dir, const det_folder *df, const opts *o) {
    int rc = CLI_OK, list = o->tensors == 1 || o->filter;
    det_arch arch = DET_ARCH_UNKNOWN;
    int supported = 1;
    uint64_t total = 0;
    cJSON *j = NULL, *comps = NULL;
    if (o->json) {
        j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "path", dir);
        cJSON_AddStringToObject(j, "kind", det_kind_name(DET_DIFFUSERS_PIPELINE));
        cJSON_AddStringToObject(j, "description", det_kind_desc(DET_DIFFUSERS_PIPELINE));
        if (df->class_name) cJSON_AddStringToObject(j, "class", df->class_name);
        if (df->version) cJSON_AddStringToObject(j, "diffusers_version", df->version);
        comps = cJSON_AddArrayToObject(j, "components");
    } else {
        put_quoted(stdout, dir, 0);
        printf("\n  kind        diffusers model folder (model_index.json): %s%s%s\n",
               df->class_name ? df->class_name : "no _class_name",
               df->version ? ", diffusers " : "", df->version ? df->version : "");
        printf("  components\n");
    }
    for (int i = 0; i < df->n_comp; i++) {
        const det_component *c = &df->comp[i];
        st_file *f = NULL;
        det_info d;
        memset(&d, 0, sizeof d);
        lmx_status st = LMX_OK;
        if (c->weights && !c->weights_pickle) st = open_classified(c->weights, c->class_name, &f, &d);
        const char *err = st != LMX_OK ? lmx_errmsg() : NULL;
        if (c->weights_pickle) {
            err = "only PyTorch pickle weights (.bin); convert them to .safetensors";
            st = LMX_ERR_UNSUPPORTED;
        }
        if (st != LMX_OK) rc = CLI_FAIL;
        totals t = {0};
        if (f) {
            count_file(f, &t);
            total += t.params;
            if (!strcmp(c->name, "unet") && d.arch != DET_ARCH_UNKNOWN) arch = d.arch;
            if (d.arch == DET_ARCH_SDXL || d.arch == DET_ARCH_SD2) arch = d.arch;
            if (!d.supported) supported = 0;
        }
        if (o->json) {
            cJSON *e = f ? json_file(c->weights, f, &d, o, list) : cJSON_CreateObject();
            cJSON_AddStringToObject(e, "name", c->name);
            if (c->library) cJSON_AddStringToObject(e, "library", c->library);
            if (c->class_name) cJSON_AddStringToObject(e, "class", c->class_name);
            if (!f && c->weights) cJSON_AddStringToObject(e, "weights", c->weights);
            if (c->sharded) cJSON_AddBoolToObject(e, "sharded", 1);
            if (err) cJSON_AddStringToObject(e, "error", err);
            cJSON_AddItemToArray(comps, e);
        } else {
            printf("    %-18s %-28s ", c->name, c->class_name ? c->class_name : "(not used)");
            if (err) {
                printf("error: ");
                put_quoted(stdout, err, 300);
                putchar('\n');
            } else if (f) {
                char cnt[40];
                printf("%s\n%-52s%s: %d tensors, %s parameters\n", c->weights, "", d.summary,
                       st_count(f), fmt_count(t.params, cnt, sizeof cnt));
                if (list) print_tensors(stdout, f, o, "      ");
            } else {
                printf("%s\n", c->sharded ? "sharded weights (*.index.json): not supported"
                                          : "(no weights)");
            }
        }
        st_close(f);
    }
    if (df->class_name && strstr(df->class_name, "XL")) arch = DET_ARCH_SDXL, supported = 0;
    if (arch == DET_ARCH_SD2 || arch == DET_ARCH_SDXL) supported = 0;
    if (o->json) {
        cJSON_AddStringToObject(j, "arch", det_arch_name(arch));
        cJSON_AddBoolToObject(j, "supported", supported && rc == CLI_OK);
        cJSON_AddNumberToObject(j, "n_params", (double)total);
        int r2 = emit_json(j);
        return rc != CLI_OK ? rc : r2;
    }
    char cnt[40];
    printf("  base        %s\n", arch == DET_ARCH_UNKNOWN ? "SD1.x family (custom size)"
                                 : arch == DET_ARCH_SD1  ? det_arch_name(arch)
                                                         : "SD2/SDXL (not supported)");
    printf("  supported   %s\n", supported && rc == CLI_OK ? "yes" : "no");
    printf("  parameters  %s in all\n", fmt_count(total, cnt, sizeof cnt));
    return rc;
}

static int inspect_other_dir(const char *dir, const det_folder *df, const opts *o) {
    if (df->n_files == 0) {
        cli_error("%s: a folder without model_index.json, config.json or model files "
                  "(.safetensors)",
                  dir);
        return CLI_FAIL;
    }
    int rc = CLI_OK;
    cJSON *j = NULL, *files = NULL;
    if (o->json) {
        j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "path", dir);
        cJSON_AddStringToObject(j, "kind", "directory");
        files = cJSON_AddArrayToObject(j, "files");
    } else {
        put_quoted(stdout, dir, 0);
        printf("\n  a folder of %d model file%s:\n", df->n_files, df->n_files == 1 ? "" : "s");
    }
    size_t w = 0;
    for (int i = 0; i < df->n_files; i++) w = LMX_MAX(w, strlen(df->files[i]));
    w = LMX_MIN(w, 60);
    for (int i = 0; i < df->n_files; i++) {
        size_t dl = strlen(dir), fl = strlen(df->files[i]);
        char *p = lmx_malloc(dl + fl + 2);
        if (!p) return CLI_FAIL;
        snprintf(p, dl + fl + 2, "%s%s%s", dir, dl && dir[dl - 1] == '/' ? "" : "/", df->files[i]);
        st_file *f = NULL;
        det_info d;
        lmx_status st = open_classified(p, NULL, &f, &d);
        if (st != LMX_OK) rc = CLI_FAIL;
        if (o->json) {
            cJSON *e = f ? json_file(p, f, &d, o, o->tensors == 1 || o->filter)
                         : cJSON_CreateObject();
            if (!f) {
                cJSON_AddStringToObject(e, "path", p);
                cJSON_AddStringToObject(e, "error", lmx_errmsg());
            }
            cJSON_AddItemToArray(files, e);
        } else {
            printf("    ");
            put_quoted(stdout, df->files[i], 200);
            for (size_t k = fl; k < w; k++) putchar(' ');
            if (f) {
                printf("  %s\n", d.summary);
                if (o->tensors == 1 || o->filter) print_tensors(stdout, f, o, "      ");
            } else {
                printf("  error: ");
                put_quoted(stdout, lmx_errmsg(), 300);
                putchar('\n');
            }
        }
        st_close(f);
        lmx_free(p);
    }
    if (o->json) {
        int r2 = emit_json(j);
        return rc != CLI_OK ? rc : r2;
    }
    return rc;
}

static int inspect_path(const char *path, const opts *o) {
    struct stat sb;
    if (stat(path, &sb) != 0) {
        cli_error("%s: %s", path, errno == ENOENT ? "no such file or folder" : strerror(errno));
        return CLI_FAIL;
    }
    if (!S_ISDIR(sb.st_mode)) return inspect_file(path, NULL, o);
    det_folder df;
    lmx_status st = det_read_folder(path, &df);
    if (st != LMX_OK) return cli_fail_status(st);
    int rc;
    if (df.type == DET_FOLDER_PIPELINE) {
        rc = inspect_pipeline(path, &df, o);
    } else if (df.type == DET_FOLDER_COMPONENT) {
        const det_component *c = &df.comp[0];
        if (!c->weights) {
            cli_error("%s: config.json (%s) but no weights file (.safetensors)%s", path,
                      df.class_name ? df.class_name : "no class",
                      c->sharded ? "; sharded weights (*.index.json) are not supported" : "");
            rc = CLI_FAIL;
        } else if (c->weights_pickle) {
            rc = pickle_error(c->weights, "the folder has only .bin/.ckpt weights");
        } else {
            rc = inspect_file(c->weights, df.class_name, o);
        }
    } else {
        rc = inspect_other_dir(path, &df, o);
    }
    det_folder_free(&df);
    return rc;
}

int cmd_inspect(int argc, char **argv) {
    opts o = {.tensors = -1, .filter = NULL, .json = 0, .full = 0, .metadata = 1};
    const char *paths[256];
    int n_paths = 0, no_more_opts = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!no_more_opts && a[0] == '-' && a[1]) {
            if (!strcmp(a, "--")) no_more_opts = 1;
            else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
                help(stdout);
                return CLI_OK;
            } else if (!strcmp(a, "--tensors")) o.tensors = 1;
            else if (!strcmp(a, "--no-tensors")) o.tensors = 0;
            else if (!strcmp(a, "--json")) o.json = 1;
            else if (!strcmp(a, "--allow-gaps")) g_st_flags = ST_ALLOW_GAPS;
            else if (!strcmp(a, "--full")) o.full = 1;
            else if (!strcmp(a, "--no-metadata")) o.metadata = 0;
            else if (!strcmp(a, "--filter")) {
                if (i + 1 >= argc) {
                    cli_error("inspect: --filter needs a substring (e.g. --filter attn2)");
                    return CLI_USAGE;
                }
                o.filter = argv[++i];
            } else if (!strncmp(a, "--filter=", 9)) {
                o.filter = a + 9;
            } else {
                cli_error("inspect: unknown option '%s' (see 'loramix inspect --help')", a);
                return CLI_USAGE;
            }
            continue;
        }
        if (n_paths == (int)LMX_ARRAY_LEN(paths)) {
            cli_error("inspect: at most %d paths at once", (int)LMX_ARRAY_LEN(paths));
            return CLI_USAGE;
        }
        paths[n_paths++] = a;
    }
    if (o.filter && o.tensors == 0) {
        cli_error("inspect: --filter lists tensors; it cannot go with --no-tensors");
        return CLI_USAGE;
    }
    if (n_paths == 0) {
        cli_error("inspect: which file? (usage: loramix inspect [options] PATH..., "
                  "see --help)");
        return CLI_USAGE;
    }
    io_cjson_init();
    int rc = CLI_OK;
    for (int i = 0; i < n_paths; i++) {
        if (i && !o.json) putchar('\n');
        int r = inspect_path(paths[i], &o);
        fflush(stdout);
        if (r != CLI_OK) rc = r;
    }
    return rc;
}
