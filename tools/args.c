/* args.c - see args.h. */
#include "args.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

static int push(arg_list *l, const char *s) {
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 8;
        const char **ni = realloc(l->items, sizeof(char *) * (size_t)cap);
        if (!ni) return 0;
        l->items = ni;
        l->cap = cap;
    }
    l->items[l->n++] = s;
    return 1;
}

void arg_list_free(arg_list *l) {
    free(l->items);
    memset(l, 0, sizeof *l);
}

static int is_digit(char c) { return c >= '0' && c <= '9'; }

static int set_value(const arg_opt *o, const char *v) {
    char *end = NULL;
    errno = 0;
    switch (o->kind) {
    case ARG_STR: *(const char **)o->dst = v; return 1;
    case ARG_MULTI:
        if (!push((arg_list *)o->dst, v)) {
            cli_error("%s: out of memory", o->name);
            return 0;
        }
        return 1;
    case ARG_INT: {
        /* strtol alone takes " 5", "+5" and wraps nothing but skips blanks:
         * only an optional '-' (for negative ranges) and digits are numbers. */
        const char *d = v + (*v == '-' && o->lo < 0);
        long x = is_digit(*d) ? strtol(v, &end, 10) : 0;
        if (!is_digit(*d) || errno || *end || x < o->lo || x > o->hi) {
            cli_error("%s: expected an integer in [%.0f, %.0f], got '%s'", o->name, o->lo, o->hi, v);
            return 0;
        }
        *(int *)o->dst = (int)x;
        return 1;
    }
    case ARG_U64: {
        /* Digits only: strtoull would accept " -5" and "-5" (and wrap them to
         * 2^64 - 5) and skip leading blanks. */
        unsigned long long x = is_digit(*v) ? strtoull(v, &end, 10) : 0;
        if (!is_digit(*v) || *end) {
            cli_error("%s: expected a non-negative integer (digits only), got '%s'", o->name, v);
            return 0;
        }
        if (errno == ERANGE) {
            cli_error("%s: %s is too large (at most %llu)", o->name, v, (unsigned long long)UINT64_MAX);
            return 0;
        }
        *(uint64_t *)o->dst = (uint64_t)x;
        return 1;
    }
    case ARG_FLOAT: {
        double x = strtod(v, &end);
        if (errno || !*v || isspace((unsigned char)*v) || *end || !isfinite(x) || x < o->lo || x > o->hi) {
            cli_error("%s: expected a number in [%g, %g], got '%s'", o->name, o->lo, o->hi, v);
            return 0;
        }
        *(float *)o->dst = (float)x;
        return 1;
    }
    case ARG_FLAG: *(int *)o->dst = 1; return 1;
    }
    return 0;
}

int args_parse(int argc, char **argv, const arg_opt *opts, int n_opts, arg_list *pos, int *help) {
    int only_pos = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (only_pos || a[0] != '-' || !a[1]) {
            if (!pos) {
                cli_error("unexpected argument '%s'", a);
                return CLI_USAGE;
            }
            if (!push(pos, a)) return CLI_USAGE;
            continue;
        }
        if (!strcmp(a, "--")) {
            only_pos = 1;
            continue;
        }
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            *help = 1;
            continue;
        }
        const char *eq = strchr(a, '=');
        size_t nlen = eq && a[1] == '-' ? (size_t)(eq - a) : strlen(a);
        const arg_opt *o = NULL;
        for (int k = 0; k < n_opts && !o; k++) {
            if ((strlen(opts[k].name) == nlen && !strncmp(opts[k].name, a, nlen)) ||
                (opts[k].alias && !strcmp(opts[k].alias, a)))
                o = &opts[k];
        }
        if (!o) {
            cli_error("unknown option '%.*s' (see --help)", (int)nlen, a);
            return CLI_USAGE;
        }
        const char *v = NULL;
        if (o->kind == ARG_FLAG) {
            if (eq && a[1] == '-') {
                cli_error("%s takes no value", o->name);
                return CLI_USAGE;
            }
        } else if (eq && a[1] == '-') {
            v = eq + 1;
        } else {
            if (i + 1 >= argc) {
                cli_error("%s needs a value", o->name);
                return CLI_USAGE;
            }
            v = argv[++i];
        }
        if (!set_value(o, v)) return CLI_USAGE;
    }
    return CLI_OK;
}

int args_check_threads(const char *flag, int threads) {
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    if (threads <= 0 || cores < 1) return 1;
    if ((long)threads > ARGS_THREADS_PER_CORE * cores) {
        cli_error("%s: %d threads on %ld online core%s is more than the %d per core allowed "
                  "(oversubscribed threads only slow every kernel down; 0 = all cores)",
                  flag, threads, cores, cores == 1 ? "" : "s", ARGS_THREADS_PER_CORE);
        return 0;
    }
    if ((long)threads > cores)
        fprintf(stderr, "loramix: warning: %s %d is more than the %ld online core%s: expect it to be slower, "
                        "not faster\n", flag, threads, cores, cores == 1 ? "" : "s");
    return 1;
}
