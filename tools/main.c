/* main.c - the `brick` program's entry point. Everything else is in cli_main (brick.c), so
 * that the tests and the CLI fuzz target can link the command line without this main.
 *
 * OpenMP's wait policy. libgomp's idle threads spin (up to GOMP_SPINCOUNT = 300,000 rounds,
 * about a millisecond) after every parallel region before they sleep. On a machine shared
 * with other work those spinning threads take cores from whoever needs them, brick's own
 * main thread included: on the 2-core development machine, loaded by other processes, MLP
 * training on 2 threads ran 6 to 9 times slower than with OMP_WAIT_POLICY=PASSIVE (threads
 * sleep at once), while on an idle machine PASSIVE costs a wake-up per region, a few
 * microseconds (docs/performance.md, bench/wait_policy.sh). libgomp reads the policy from the
 * environment once, when it is loaded, before main, and has no call to change it later; so
 * when the user has set neither OMP_WAIT_POLICY nor GOMP_SPINCOUNT, brick sets
 * OMP_WAIT_POLICY=PASSIVE and executes itself again (Linux: /proc/self/exe, same arguments).
 * A user's own setting is always kept (OMP_WAIT_POLICY=ACTIVE brings spinning back). If the
 * exec fails, brick runs on with libgomp's default. Not under valgrind (its preload library
 * in LD_PRELOAD), whose child would run natively unless traced.
 */
#define _POSIX_C_SOURCE 200809L /* setenv, execv */
#include "cli.h"

#include <stdlib.h>
#include <string.h>
#if defined(__linux__) && defined(_OPENMP)
#include <unistd.h>
#endif

static void passive_wait_policy(char **argv) {
#if defined(__linux__) && defined(_OPENMP)
    if (getenv("OMP_WAIT_POLICY") || getenv("GOMP_SPINCOUNT")) return;
    const char *preload = getenv("LD_PRELOAD");
    if (preload && strstr(preload, "vgpreload")) return;
    if (setenv("OMP_WAIT_POLICY", "PASSIVE", 1) != 0) return;
    execv("/proc/self/exe", argv);
    /* exec failed (no /proc?): go on with the policy libgomp already read */
#else
    (void)argv;
#endif
}

int main(int argc, char **argv) {
    passive_wait_policy(argv);
    return cli_main(argc, argv);
}
