/* fuzz_cli.c - the brick command line: dispatch, option parsing and every command's checks
 * of its arguments (tools/), without running anything (cli_parse_only).
 *
 * The input is the argument list, one argument per line (at most 64; argv[0] is
 * "brick"). cli_main must return 0 (help, version, or arguments that pass their checks)
 * or 2 (a usage error, printed as one line), never crash or leak.
 */
#ifndef _XOPEN_SOURCE
#define _XOPEN_SOURCE 700 /* mkdtemp */
#endif
#include "fuzz.h"
#include "../tools/cli.h"

#define CLI_FUZZ_MAX_ARGS 64

FUZZ_TARGET(cli) {
    fuzz_begin();
    /* a private NUL-terminated copy, split at newlines */
    char *buf = malloc(size + 1);
    char *argv[CLI_FUZZ_MAX_ARGS + 2];
    int argc = 0;
    FUZZ_ASSERT(buf);
    memcpy(buf, data, size);
    buf[size] = '\0';
    argv[argc++] = "brick";
    for (char *p = buf; argc <= CLI_FUZZ_MAX_ARGS;) {
        char *nl = strchr(p, '\n');
        if (nl) *nl = '\0';
        if (*p || nl) argv[argc++] = p;
        if (!nl) break;
        p = nl + 1;
    }
    argv[argc] = NULL;
    cli_parse_only = true;
    int rc = cli_main(argc, argv);
    FUZZ_ASSERT(rc == 0 || rc == 2);
    free(buf);
    fuzz_end();
    return 0;
}
