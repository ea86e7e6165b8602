/*
 * cmd_weights.c - `loramix weights`: the prompt-aware importance weights of
 * W-Switch (PAW) and W-Composite (PTW) for a prompt and a set of LoRAs,
 * without generating (docs/methods.md §7). Prints, per LoRA, the raw
 * score (1 - cos for PAW, cos for PTW), the floored value, the weight and
 * the text that was encoded (the ablated prompt or the trigger string), and
 * for PAW the W-Switch block lengths. The numbers come from
 * lmx_prompt_weights (base text encoder, mean over the 77 positions); the
 * texts from the composition module that computed them.
 *
 * --trigger, --category and --name apply to the --lora before them, so the
 * order on the command line is the composition order.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "cli.h"
#include "compose/compose.h"
#include "lora_args.h"

static const char HELP[] =
    "usage: loramix weights -m MODEL -p PROMPT --lora FILE [--trigger T ...] [--lora FILE ...] [options]\n"
    "\n"
    "Compute the prompt-aware LoRA weights of the W-methods (Tsoumplekas et al. 2026)\n"
    "for one prompt, without generating an image:\n"
    "  PAW (prompt ablation, W-Switch):    1 - cos(e(P), e(P without LoRA i's triggers)),\n"
    "      floored at 0.05, then normalised; a LoRA without triggers scores 0.1 and\n"
    "      an ablated prompt under 5 characters 2.0\n"
    "  PTW (prompt-trigger, W-Composite):  cos(e(P), e(\"trigger, trigger, ...\")),\n"
    "      normalised; a LoRA without triggers scores 0\n"
    "where e(s) is the text encoder's output averaged over all 77 positions (pads\n"
    "included). With mean pooling the PAW scores are often all under the floor:\n"
    "the weights are then uniform, and this command says so.\n"
    "\n"
    "  -m, --model PATH       an SD1.x model (diffusers folder or single file)\n"
    "  -p, --prompt TEXT      the full prompt (base prompt + every trigger, as the\n"
    "                         testbed builds it)\n"
    "      --lora FILE[:S]    a LoRA, in composition order (character first). The\n"
    "                         file is loaded and checked; S is accepted as in\n"
    "                         generate but does not change these weights (they use\n"
    "                         the base text encoder)\n"
    "      --trigger TEXT     trigger phrase(s) of the LoRA before it (\"a, b\" gives two;\n"
    "                         repeat for more, in order)\n"
    "      --category C       its category: character, clothing, style, background,\n"
    "                         object (default other)\n"
    "      --name NAME        its name in the output (default: the file name)\n"
    "      --manifest FILE    a lora_info JSON (testbed form): --lora ID then takes\n"
    "                         --lora-dir/ID.safetensors with its triggers and category\n"
    "      --weighting W      paw (default) or ptw\n"
    "      --switch-steps N   tau for the printed W-Switch block lengths (default 5)\n"
    "      --json             print JSON instead of the table\n"
    "\n"
    "example:\n"
    "  loramix weights -m tests/fixtures/models/tiny-sd \\\n"
    "      -p \"RAW photo, iu1, long straight black hair, film grain\" \\\n"
    "      --lora tests/fixtures/compose/character_1.safetensors --category character \\\n"
    "          --trigger iu1 --trigger \"long straight black hair\" \\\n"
    "      --lora tests/fixtures/compose/style_1.safetensors --category style \\\n"
    "          --trigger \"film grain\" --weighting paw\n";

static void print_json_string(const char *s) {
    putchar('"');
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') printf("\\%c", *p);
        else if (*p < 0x20) printf("\\u%04x", *p);
        else putchar(*p);
    }
    putchar('"');
}

int cmd_weights(int argc, char **argv) {
    const char *model = NULL, *prompt = NULL, *weighting = "paw";
    int help = 0, json = 0, tau = 5, rc = CLI_OK, n = 0;
    lmx_model *m = NULL;
    lmx_ctx *ctx = NULL;
    lmx_lora_use *use = NULL;
    double *w = NULL, *raw = NULL;
    char **texts = NULL;
    int *blocks = NULL;
    double *a = NULL;
    /* --lora groups first (their order is the composition order). */
    cli_loras ls;
    rc = cli_loras_take(&argc, argv, &ls);
    if (rc) goto done;
    n = ls.n;
    const arg_opt opts[] = {
        {"--model", "-m", ARG_STR, &model, 0, 0},
        {"--prompt", "-p", ARG_STR, &prompt, 0, 0},
        {"--weighting", NULL, ARG_STR, &weighting, 0, 0},
        {"--switch-steps", NULL, ARG_INT, &tau, 1, 1000},
        {"--json", NULL, ARG_FLAG, &json, 0, 0},
    };
    rc = args_parse(argc, argv, opts, (int)(sizeof opts / sizeof opts[0]), NULL, &help);
    if (rc) goto done;
    if (help) {
        fputs(HELP, stdout);
        goto done;
    }
    if (!model || !prompt || n == 0) {
        cli_error("weights: %s is required (see loramix weights --help)",
                  !model ? "--model" : !prompt ? "--prompt" : "at least one --lora");
        rc = CLI_USAGE;
        goto done;
    }
    if (n > COMPOSE_MAX_LORAS) {
        cli_error("--lora: at most %d LoRAs", COMPOSE_MAX_LORAS);
        rc = CLI_USAGE;
        goto done;
    }
    lmx_weighting kind;
    if (lmx_weighting_parse(weighting, &kind) != LMX_OK || (kind != LMX_WEIGHTING_PAW && kind != LMX_WEIGHTING_PTW)) {
        cli_error("--weighting: expected paw or ptw, got '%s'", weighting);
        rc = CLI_USAGE;
        goto done;
    }
    w = calloc((size_t)n, sizeof *w);
    raw = calloc((size_t)n, sizeof *raw);
    a = calloc((size_t)n, sizeof *a);
    texts = calloc((size_t)n, sizeof *texts);
    blocks = calloc((size_t)n, sizeof *blocks);
    if (!w || !raw || !a || !texts || !blocks) {
        cli_error("weights: out of memory");
        rc = CLI_FAIL;
        goto done;
    }
    lmx_status st = lmx_model_load(&m, model, NULL);
    if (st == LMX_OK) st = lmx_ctx_create(&ctx, m, NULL);
    if (st != LMX_OK) {
        rc = cli_fail_status(st);
        goto done;
    }
    if ((rc = cli_loras_load(&ls, m, 1, 0)) != CLI_OK) goto done;
    use = ls.uses;
    if (st == LMX_OK) st = lmx_prompt_weights(ctx, prompt, use, n, kind, w, raw);
    for (int i = 0; i < n && st == LMX_OK; i++)
        st = kind == LMX_WEIGHTING_PAW ? compose_ablate(prompt, use[i].triggers, use[i].n_triggers, &texts[i])
                                       : compose_trigger_string(use[i].triggers, use[i].n_triggers, &texts[i]);
    if (st != LMX_OK) {
        rc = cli_fail_status(st);
        goto done;
    }

    const int paw = kind == LMX_WEIGHTING_PAW;
    int floored = paw;
    for (int i = 0; i < n; i++) {
        int edge = paw && (use[i].n_triggers == 0 || compose_utf8_len(texts[i]) < 5);
        a[i] = paw && !edge ? (raw[i] > COMPOSE_PAW_FLOOR ? raw[i] : COMPOSE_PAW_FLOOR) : raw[i];
        if (edge || raw[i] >= COMPOSE_PAW_FLOOR) floored = 0;
    }
    int have_blocks = paw && compose_wswitch_blocks(w, n, tau, 0, blocks) == LMX_OK;
    if (json) {
        printf("{\"weighting\": \"%s\", \"pooling\": \"mean77\", \"text_encoder\": \"base\", \"prompt\": ",
               paw ? "paw" : "ptw");
        print_json_string(prompt);
        printf(", \"all_under_floor\": %s, \"loras\": [", floored && n > 1 ? "true" : "false");
        for (int i = 0; i < n; i++) {
            printf("%s\n  {\"name\": ", i ? "," : "");
            print_json_string(use[i].name);
            printf(", \"category\": \"%s\", \"score\": %.17g, \"floored\": %.17g, \"weight\": %.17g",
                   lmx_lora_category_name(use[i].category), raw[i], a[i], w[i]);
            if (have_blocks) printf(", \"block\": %d", blocks[i]);
            printf(", \"%s\": ", paw ? "ablated_prompt" : "trigger_string");
            print_json_string(texts[i]);
            printf("}");
        }
        printf("]}\n");
        goto done;
    }
    printf("%s weights, mean over 77 positions, base text encoder\nprompt: %s\n\n",
           paw ? "PAW (prompt ablation, W-Switch)" : "PTW (prompt-trigger similarity, W-Composite)", prompt);
    int wn = 4;
    for (int i = 0; i < n; i++) wn = (int)strlen(use[i].name) > wn ? (int)strlen(use[i].name) : wn;
    if (paw) {
        printf("  #  %-*s %-10s %12s %12s %10s  %s\n", wn, "LoRA", "category", "1 - cos", "floored", "weight",
               "prompt without its triggers");
        for (int i = 0; i < n; i++)
            printf("  %d  %-*s %-10s %12.8f %12.8f %10.6f  \"%s\"\n", i, wn, use[i].name,
                   lmx_lora_category_name(use[i].category), raw[i], a[i], w[i], texts[i]);
    } else {
        printf("  #  %-*s %-10s %12s %10s  %s\n", wn, "LoRA", "category", "cos", "weight", "trigger string");
        for (int i = 0; i < n; i++)
            printf("  %d  %-*s %-10s %12.8f %10.6f  \"%s\"\n", i, wn, use[i].name,
                   lmx_lora_category_name(use[i].category), raw[i], w[i], texts[i]);
    }
    if (have_blocks) {
        printf("\nW-Switch block lengths at tau %d:", tau);
        for (int i = 0; i < n; i++) printf("%s%d", i ? "/" : " ", blocks[i]);
        printf("\n");
    }
    if (floored && n > 1)
        printf("\nnote: every score is under the %.2f floor, so the weights are uniform (W-Switch = Switch + tail)\n",
               COMPOSE_PAW_FLOOR);
done:
    for (int i = 0; texts && i < n; i++) lmx_free(texts[i]);
    free(texts);
    free(w);
    free(raw);
    free(a);
    free(blocks);
    cli_loras_free(&ls);
    lmx_ctx_free(ctx);
    lmx_model_free(m);
    return rc;
}
