/* cmd_inspect.c - `loramix inspect FILE|DIR` (placeholder until the io helper lands). */
#include "cli.h"

int cmd_inspect(int argc, char **argv) {
    (void)argc;
    (void)argv;
    cli_error("inspect: not implemented yet");
    return CLI_FAIL;
}
