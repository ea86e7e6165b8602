/*
 * lora_args.h - the LoRA options of the CLI (generate, weights), parsed in
 * command-line order so that per-LoRA options attach to the --lora before
 * them (the order of --lora is the composition order: character first):
 *
 *   --lora FILE[:SCALE]     a LoRA file; SCALE multiplies its UNet and text-
 *                           encoder parts (diffusers' set_adapters weight)
 *   --lora ID               with --manifest: a LoRA id of a lora_info JSON
 *                           (the ComposLoRA testbed form), read from
 *                           --lora-dir/ID.safetensors with its triggers,
 *                           category and name from the manifest
 *     --trigger TEXT        trigger phrases: "a, b" gives two; a double-quoted
 *                           field keeps its commas ('"a, b", c' gives "a, b"
 *                           and "c"; "" is a literal quote); repeatable
 *     --category C          character|clothing|style|background|object|other
 *     --name NAME           its name in messages and metadata
 *     --te-scale S          a separate text-encoder multiplier
 *   --manifest FILE         a lora_info JSON ({category: [{id, name, trigger}]})
 *   --lora-dir DIR          where manifest ids are found (default: the
 *                           manifest's folder)
 */
#ifndef LMX_CLI_LORA_ARGS_H
#define LMX_CLI_LORA_ARGS_H

#include "loramix.h"

typedef struct cli_lora {
    char *file;
    float scale, te_scale;
    int te_set, cat_set;
    char *name;
    lmx_lora_category cat;
    char **trig;
    int n_trig;
} cli_lora;

typedef struct cli_loras {
    cli_lora *v;
    int n;
    const char *manifest, *dir;
    /* after cli_loras_load: */
    lmx_lora **handles;
    lmx_lora_use *uses;
} cli_loras;

/* Take every LoRA option out of argv (compacting it in place, *argc
 * updated) into out. Returns CLI_OK or CLI_USAGE (message printed). */
int cli_loras_take(int *argc, char **argv, cli_loras *out);
/* Resolve manifest ids and load every LoRA for model m. A LoRA without
 * triggers gets a note with its training tags as a hint (a warning when
 * `triggers_matter`: the W-methods weigh LoRAs by their triggers). Returns
 * CLI_OK, or an exit code after printing the error. */
int cli_loras_load(cli_loras *l, lmx_model *m, int triggers_matter, int quiet);
void cli_loras_free(cli_loras *l);

/* "character" -> LMX_CAT_CHARACTER; 0 when unknown. */
int cli_parse_category(const char *s, lmx_lora_category *out);

#endif
