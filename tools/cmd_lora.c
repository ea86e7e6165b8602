/*
 * cmd_lora.c - `loramix lora inspect FILE`: what a LoRA file holds and how
 * loramix would apply it, matched against SD1.5's module list (or a given
 * model), plus the training metadata kohya's trainer leaves in the file
 * (ss_*), whose tag frequencies usually reveal the trigger words.
 *
 * The matching is the loader's own (src/lora: lora_load_targets), so what
 * inspect says is exactly what `generate --lora` would do: the same
 * unmatched keys, dropped modules, scaling notes and errors.
 */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "args.h"
#include "cli.h"
#include "io/detect.h"
#include "io/io_util.h"
#include "io/safetensors.h"
#include "lora/lora.h"

static void help_lora(FILE *out) {
    fputs("usage: loramix lora <subcommand> [options]\n"
          "\n"
          "subcommands:\n"
          "  inspect FILE   what a LoRA holds, how loramix applies it, its training metadata\n"
          "\n"
          "  loramix lora inspect --help   explains the options\n",
          out);
}

static void help_inspect(FILE *out) {
    fputs(
        "usage: loramix lora inspect [options] FILE\n"
        "\n"
        "Load a LoRA the way `loramix generate --lora FILE` does, without generating, and\n"
        "say what it holds and what loramix would do with it:\n"
        "  - format: kohya (lora_unet_*/lora_te_*: lora_down, lora_up, alpha; UNet keys in\n"
        "    the diffusers or LDM dialect), PEFT/diffusers (unet.*/text_encoder.*: lora_A,\n"
        "    lora_B), older diffusers spellings (lora.down, lora_linear_layer, to_q_lora);\n"
        "  - modules per component (UNet, text encoder) and kind (linear, 1x1 conv, 3x3\n"
        "    conv), ranks and alphas; the scale alpha/rank of each module;\n"
        "  - files whose alpha or rank is not uniform: where diffusers 0.32.2 would scale\n"
        "    modules differently from their own alpha/rank, and why;\n"
        "  - modules on conv_in, conv_out and time_embedding, which diffusers drops from\n"
        "    kohya files (loramix ignores them too, unless --apply-all);\n"
        "  - every key that matches no layer (a misspelt or foreign key), by name;\n"
        "  - NaN/Inf values, alphas <= 0;\n"
        "  - training metadata when present: network (ss_network_module/dim/alpha), base\n"
        "    model (ss_base_model_version, modelspec.architecture), dataset size, epochs,\n"
        "    and the most frequent tags of ss_tag_frequency, which usually are the trigger\n"
        "    words to put in the prompt.\n"
        "Refused, with the reason: LyCORIS (LoHa, LoKr, Tucker, OFT, full diff), DoRA,\n"
        "SDXL and SD2.x LoRAs, pickle files (.ckpt/.pt: convert to .safetensors), files\n"
        "whose tensor shapes do not fit the model (the error names the key and shapes).\n"
        "\n"
        "Without --model the keys are matched against SD1.5's layer list, built from\n"
        "SD1.5's configuration (no weights needed); a LoRA whose shapes do not fit\n"
        "SD1.5 (made for a model of other widths) is then described from its names\n"
        "and shapes, with the first mismatch, and the exit status is 0: give --model\n"
        "to match it against its model.\n"
        "\n"
        "options:\n"
        "  --model M         match against model M (a diffusers folder: its configs are\n"
        "                    enough; a single .safetensors checkpoint is loaded)\n"
        "  --apply-all       also apply the conv_in/conv_out/time_embedding modules\n"
        "  --scaling S       own (default): each module's alpha/rank; diffusers: the\n"
        "                    scales diffusers 0.32.2 computes for non-uniform files\n"
        "  --modules         list every module: key, layer, rank, alpha, scale\n"
        "  --tags N          show the N most frequent training tags (default 12; 0: none)\n"
        "  --json            one JSON object on stdout\n"
        "  -h, --help        this text\n"
        "\n"
        "examples:\n"
        "  loramix lora inspect character_1.safetensors\n"
        "  loramix lora inspect --model tests/fixtures/models/tiny-sd tests/fixtures/lora/char_kohya.safetensors\n"
        "  loramix lora inspect --model models/Realistic_Vision_V5.1 style_1.safetensors\n"
        "  loramix lora inspect --json --modules lora.safetensors | jq '.lora.unmatched'\n"
        "\n"
        "exit status: 0 when the LoRA loads (unmatched keys are warnings), 1 when it\n"
        "cannot be used (refused kind, shapes that do not fit --model, bad file), 2\n"
        "for bad usage.\n",
        out);
}

/* ---- training metadata ------------------------------------------------------- */

static void put_q(FILE *out, const char *s, size_t max) {
    char buf[1024];
    io_quote(buf, sizeof buf, s, strlen(s), max);
    fputs(buf, out);
}

static const char *META_KEYS[][2] = {
    {"ss_output_name", "name"},
    {"modelspec.title", "title"},
    {"ss_network_module", "network module"},
    {"ss_network_dim", "network dim (rank)"},
    {"ss_network_alpha", "network alpha"},
    {"ss_network_args", "network args"},
    {"ss_base_model_version", "base model version"},
    {"modelspec.architecture", "architecture"},
    {"ss_sd_model_name", "trained on"},
    {"ss_num_train_images", "training images"},
    {"ss_num_epochs", "epochs"},
    {"ss_max_train_steps", "max steps"},
    {"ss_learning_rate", "learning rate"},
    {"ss_resolution", "resolution"},
    {"ss_clip_skip", "clip skip"},
    {"modelspec.trigger_phrase", "trigger phrase"},
};

static void print_meta(const st_file *f, int n_tags) {
    int n_ss = 0, shown = 0;
    for (int i = 0; i < st_meta_count(f); i++) {
        const char *k, *v;
        st_meta_at(f, i, &k, &v);
        n_ss += !strncmp(k, "ss_", 3) || !strncmp(k, "modelspec.", 10);
    }
    if (!n_ss) {
        printf("training metadata: none (no ss_* or modelspec.* keys)\n");
        return;
    }
    printf("training metadata (%d ss_*/modelspec.* keys):\n", n_ss);
    for (size_t i = 0; i < LMX_ARRAY_LEN(META_KEYS); i++) {
        const char *v = st_meta_get(f, META_KEYS[i][0]);
        if (!v || !*v || !strcmp(v, "None")) continue;
        printf("  %-20s ", META_KEYS[i][1]);
        put_q(stdout, v, 120);
        printf("\n");
        shown++;
    }
    const char *tf = st_meta_get(f, "ss_tag_frequency");
    if (tf && n_tags > 0) {
        lora_tag *t = NULL;
        int n = lora_parse_tags(tf, &t);
        if (n < 0) {
            printf("  ss_tag_frequency is not valid JSON\n");
        } else if (n > 0) {
            printf("  most frequent tags (usually the trigger words), of %d:\n   ", n);
            for (int i = 0; i < n && i < n_tags; i++) {
                printf(" ");
                put_q(stdout, t[i].name, 60);
                printf(" (%g)%s", t[i].count, i + 1 < n && i + 1 < n_tags ? "," : "");
            }
            printf("\n");
        }
        lora_free_tags(t, n < 0 ? 0 : n);
    }
    if (n_ss > shown + (tf != NULL))
        printf("  (%d more keys: `loramix inspect --full FILE` lists all metadata)\n",
               n_ss - shown - (tf != NULL));
}

static cJSON *meta_json(const st_file *f, int n_tags) {
    cJSON *j = cJSON_CreateObject();
    if (!j) return NULL;
    for (size_t i = 0; i < LMX_ARRAY_LEN(META_KEYS); i++) {
        const char *v = st_meta_get(f, META_KEYS[i][0]);
        if (v) cJSON_AddStringToObject(j, META_KEYS[i][0], v);
    }
    lora_tag *t = NULL;
    int n = lora_parse_tags(st_meta_get(f, "ss_tag_frequency"), &t);
    if (n > 0) {
        cJSON *a = cJSON_AddArrayToObject(j, "top_tags");
        for (int i = 0; a && i < n && i < n_tags; i++) {
            cJSON *o = cJSON_CreateObject();
            if (!o) break;
            cJSON_AddStringToObject(o, "tag", t[i].name);
            cJSON_AddNumberToObject(o, "count", t[i].count);
            cJSON_AddItemToArray(a, o);
        }
    }
    lora_free_tags(t, n < 0 ? 0 : n);
    return j;
}

/* ---- targets for --model ---------------------------------------------------------- */

static lmx_status read_cfgs(const char *dir, unet_config *u, clip_text_config *t) {
    char p[4096];
    char *txt = NULL;
    size_t n;
    snprintf(p, sizeof p, "%s/unet/config.json", dir);
    lmx_status st = io_read_small(p, 4u << 20, &txt, &n);
    if (!st) st = unet_config_parse(u, txt, p);
    lmx_free(txt);
    txt = NULL;
    if (st) return st;
    snprintf(p, sizeof p, "%s/text_encoder/config.json", dir);
    st = io_read_small(p, 4u << 20, &txt, &n);
    if (!st) st = clip_text_config_parse(t, txt, p);
    lmx_free(txt);
    return st;
}

static lmx_status model_targets(const char *model, lora_targets **t, sd_model **m) {
    struct stat sb;
    *t = NULL;
    *m = NULL;
    if (!model) return lora_targets_sd15(t);
    if (stat(model, &sb) == 0 && S_ISDIR(sb.st_mode)) {
        unet_config u;
        clip_text_config c;
        lmx_status st = read_cfgs(model, &u, &c);
        if (!st) return lora_targets_from_config(t, &u, &c);
        return st;
    }
    sd_load_opts o = sd_load_opts_default();
    o.vae_encoder = 0;
    lmx_status st = sd_model_load(m, model, &o);
    if (!st) st = lora_targets_from_model(t, *m);
    return st;
}

static void print_modules(const lmx_lora *l) {
    printf("modules (%d):\n", l->n_mod);
    for (int i = 0; i < l->n_mod; i++) {
        const lora_module *m = &l->mod[i];
        printf("  %-4s ", m->comp == LORA_UNET ? "unet" : "te");
        put_q(stdout, m->key, 120);
        printf("\n       -> %s  rank %d alpha %g%s scale %g%s", m->tg->path, m->rank, (double)m->alpha,
               m->has_alpha ? "" : " (none: = rank)", (double)m->scale, m->kh > 1 ? "  (3x3 down, 1x1 up)" : "");
        if (m->scale_ref != m->scale) printf("  [diffusers: %g]", (double)m->scale_ref);
        if (m->dropped) printf("  IGNORED");
        printf("\n");
    }
}

static int cmd_lora_inspect(int argc, char **argv) {
    const char *model = NULL, *scaling = "own";
    int apply_all = 0, json = 0, modules = 0, help = 0, n_tags = 12;
    arg_list pos = {0};
    arg_opt opts[] = {
        {"--model", NULL, ARG_STR, &model, 0, 0},
        {"--apply-all", NULL, ARG_FLAG, &apply_all, 0, 0},
        {"--scaling", NULL, ARG_STR, &scaling, 0, 0},
        {"--modules", NULL, ARG_FLAG, &modules, 0, 0},
        {"--tags", NULL, ARG_INT, &n_tags, 0, 10000},
        {"--json", NULL, ARG_FLAG, &json, 0, 0},
    };
    if (args_parse(argc, argv, opts, (int)LMX_ARRAY_LEN(opts), &pos, &help)) {
        arg_list_free(&pos);
        return CLI_USAGE;
    }
    if (help) {
        help_inspect(stdout);
        arg_list_free(&pos);
        return CLI_OK;
    }
    lora_opts lo = lora_opts_default();
    lo.apply_dropped = apply_all;
    lo.quiet = 1;
    if (!strcmp(scaling, "diffusers")) lo.scaling = LORA_SCALING_DIFFUSERS;
    else if (strcmp(scaling, "own") != 0) {
        cli_error("lora inspect: --scaling: expected 'own' or 'diffusers', got '%s'", scaling);
        arg_list_free(&pos);
        return CLI_USAGE;
    }
    if (pos.n != 1) {
        cli_error("lora inspect: %s (usage: loramix lora inspect [options] FILE, see --help)",
                  pos.n ? "one FILE at a time" : "which LoRA file?");
        arg_list_free(&pos);
        return CLI_USAGE;
    }
    const char *path = pos.items[0];
    io_cjson_init();
    int rc = CLI_OK;
    lora_targets *t = NULL;
    sd_model *m = NULL;
    lmx_lora *l = NULL;
    st_file *f = NULL;
    cJSON *j = json ? cJSON_CreateObject() : NULL;
    /* metadata first: shown even when the LoRA cannot be used */
    lmx_status st = st_open(&f, path);
    if (st == LMX_OK) {
        if (json) cJSON_AddItemToObject(j, "metadata", meta_json(f, n_tags));
        else {
            printf("%s: %d tensors, %d metadata keys\n", path, st_count(f), st_meta_count(f));
            print_meta(f, n_tags);
        }
    }
    if (st == LMX_OK) st = model_targets(model, &t, &m);
    if (st == LMX_OK) st = lora_load_targets(&l, t, path, &lo);
    if (st == LMX_ERR_SHAPE && !model) {
        /* Matched against SD1.5 only because no --model was given: a LoRA
         * for a model of other widths is not a bad file. Say what it holds
         * (from its names and shapes alone) and how to match it. */
        det_info d;
        det_classify(f, NULL, &d);
        if (json) {
            cJSON_AddStringToObject(j, "path", path);
            cJSON_AddStringToObject(j, "matched_against", "SD1.5 module list");
            cJSON_AddBoolToObject(j, "fits", 0);
            cJSON_AddStringToObject(j, "mismatch", lmx_errmsg());
            cJSON_AddStringToObject(j, "summary", d.summary);
            cJSON_AddNumberToObject(j, "context_dim", d.context_dim);
            cJSON_AddNumberToObject(j, "text_dim", d.text_dim);
            cJSON_AddStringToObject(j, "hint", "give --model PATH to match it against its model");
        } else {
            printf("matched against: SD1.5's module list (no --model)\n");
            printf("  does not fit SD1.5: %s\n", lmx_errmsg());
            printf("  the file (names and shapes only): %s\n", d.summary);
            if (d.context_dim || d.text_dim)
                printf("  widths: cross-attention %d, text encoder %d (SD1.5: 768, 768)\n", d.context_dim,
                       d.text_dim);
            if (d.lora.n_ignored)
                printf("  %d modules on conv_in/conv_out/time_embedding (ignored by default, as diffusers does)\n",
                       d.lora.n_ignored);
            printf("  to match it against the model it was made for: loramix lora inspect --model PATH %s\n", path);
        }
        st = LMX_OK;
    } else if (st != LMX_OK) {
        if (json) {
            cJSON_AddStringToObject(j, "path", path);
            cJSON_AddStringToObject(j, "error", lmx_errmsg());
        } else {
            cli_fail_status(st);
        }
        rc = CLI_FAIL;
    } else if (json) {
        cJSON_AddStringToObject(j, "matched_against", model ? model : "SD1.5 module list");
        cJSON_AddItemToObject(j, "lora", lora_report_json(l));
    } else {
        printf("matched against: %s\n", model ? model : "SD1.5's module list (no --model)");
        fputs(l->report, stdout);
        if (modules) print_modules(l);
    }
    if (json) {
        char *s = cJSON_PrintUnformatted(j);
        if (s) {
            puts(s);
            cJSON_free(s);
        }
        cJSON_Delete(j);
    }
    lora_free(l);
    lora_targets_free(t);
    sd_model_free(m);
    st_close(f);
    arg_list_free(&pos);
    return rc;
}

int cmd_lora(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
        help_lora(argc < 2 ? stderr : stdout);
        return argc < 2 ? CLI_USAGE : CLI_OK;
    }
    if (!strcmp(argv[1], "inspect")) return cmd_lora_inspect(argc - 1, argv + 1);
    cli_error("lora: unknown subcommand '%s' (see 'loramix lora --help')", argv[1]);
    return CLI_USAGE;
}
