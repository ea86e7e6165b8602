/*
 * cli.h - shared helpers of the `loramix` command-line tool. The tool is
 * thin: it parses arguments and calls the public API (and, for `inspect`,
 * the file readers); every command lives in tools/cmd_<name>.c.
 */
#ifndef LMX_CLI_H
#define LMX_CLI_H

#include <stdio.h>

#include "loramix.h"

typedef struct cli_command {
    const char *name;
    const char *summary;
    int (*run)(int argc, char **argv); /* argv[0] is the command name */
} cli_command;

/* Print "loramix: <msg>" (and lmx_errmsg() when st != LMX_OK) to stderr. */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int cli_fail_status(lmx_status st); /* prints lmx_errmsg(), returns exit code */

/* Exit codes: 0 ok, 1 runtime failure (bad file, ...), 2 bad usage. */
enum { CLI_OK = 0, CLI_FAIL = 1, CLI_USAGE = 2 };

double cli_now(void); /* monotonic seconds */

int cmd_inspect(int argc, char **argv);
int cmd_generate(int argc, char **argv);
int cmd_weights(int argc, char **argv);
int cmd_testbed(int argc, char **argv);
int cmd_lora(int argc, char **argv); /* added by lora */

#endif
