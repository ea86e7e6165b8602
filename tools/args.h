/*
 * args.h - a tiny long-option parser for the CLI commands.
 *
 * Options are described by a table; values are parsed and range-checked here
 * so every command reports bad flags the same way:
 *   loramix: error: --steps: expected an integer in [1, 1000], got 'abc'
 * Both "--opt value" and "--opt=value" are accepted; short aliases too.
 */
#ifndef LMX_CLI_ARGS_H
#define LMX_CLI_ARGS_H

#include <stdint.h>

typedef enum arg_kind {
    ARG_FLAG,    /* no value: sets *(int *)dst = 1          */
    ARG_STR,     /* const char **                           */
    ARG_INT,     /* int *, in [lo, hi]                      */
    ARG_U64,     /* uint64_t *                              */
    ARG_FLOAT,   /* float *, in [lo, hi]                    */
    ARG_MULTI,   /* repeatable string: arg_list *           */
} arg_kind;

typedef struct arg_list {
    const char **items;
    int n, cap;
} arg_list;

typedef struct arg_opt {
    const char *name;   /* "--steps"  */
    const char *alias;  /* "-s" or NULL */
    arg_kind kind;
    void *dst;
    double lo, hi;      /* range for ARG_INT / ARG_FLOAT */
} arg_opt;

/* Parse argv[1..argc-1]. Positional arguments go to pos (may be NULL: then
 * any positional is an error). "--help"/"-h" sets *help. Returns 0 on
 * success, or prints an error and returns 2 (usage error). */
int args_parse(int argc, char **argv, const arg_opt *opts, int n_opts, arg_list *pos, int *help);
void arg_list_free(arg_list *l);

/* --threads N against the machine: more than the online cores warns, more
 * than ARGS_THREADS_PER_CORE x the online cores is an error (returns 0 after
 * printing it). 0 (all cores) is always fine. */
#define ARGS_THREADS_PER_CORE 4
int args_check_threads(const char *flag, int threads);

#endif
