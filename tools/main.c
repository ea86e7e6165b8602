/*
 * main.c - `loramix`: the command-line entry point; dispatches subcommands.
 */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"

static const cli_command COMMANDS[] = {
    {"generate", "make images from a prompt with an SD1.x model", cmd_generate},
    {"inspect", "list the tensors of a model or LoRA file and say what it is", cmd_inspect},
    {"weights", "prompt-aware LoRA weights (PAW/PTW) of the W-methods, without generating", cmd_weights},
    {"testbed", "the ComposLoRA multi-LoRA testbed: plan, run (resumable, sharded), merge", cmd_testbed},
    {"lora", "inspect a LoRA: format, ranks, alphas, targets, unmatched keys, trigger tags", cmd_lora},
};

void cli_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("loramix: error: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

double cli_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int cli_fail_status(lmx_status st) {
    fprintf(stderr, "loramix: error: %s\n", *lmx_errmsg() ? lmx_errmsg() : lmx_status_name(st));
    return st == LMX_ERR_ARG ? CLI_USAGE : CLI_FAIL;
}

static void usage(FILE *out) {
    fprintf(out,
            "loramix %s - Stable Diffusion 1.x with multi-LoRA composition, in C\n\n"
            "usage: loramix <command> [options]\n\ncommands:\n",
            lmx_version());
    for (size_t i = 0; i < sizeof COMMANDS / sizeof COMMANDS[0]; i++)
        fprintf(out, "  %-10s %s\n", COMMANDS[i].name, COMMANDS[i].summary);
    fprintf(out, "\n  loramix <command> --help   explains a command and its options\n"
                 "  loramix --version          prints the version\n");
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return CLI_USAGE;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return CLI_OK;
    }
    if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "version")) {
        printf("loramix %s\n", lmx_version());
        return CLI_OK;
    }
    for (size_t i = 0; i < sizeof COMMANDS / sizeof COMMANDS[0]; i++)
        if (!strcmp(argv[1], COMMANDS[i].name)) return COMMANDS[i].run(argc - 1, argv + 1);
    cli_error("unknown command '%s' (run 'loramix --help' for the list)", argv[1]);
    return CLI_USAGE;
}
