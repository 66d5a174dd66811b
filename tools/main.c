/* main.c - the `brick` program's entry point. Everything else is in cli_main (brick.c), so
 * that the tests and the CLI fuzz target can link the command line without this main.
 *
 * OpenMP's wait policy: the library's bk_passive_wait_policy makes libgomp's idle threads
 * sleep unless the user chose a policy (it executes brick again with OMP_WAIT_POLICY=PASSIVE;
 * libgomp reads the policy only when it is loaded). On the loaded 2-core development machine,
 * MLP training on 2 threads ran 6 to 9 times slower with libgomp's spinning default
 * (docs/performance.md). If the exec fails, brick runs on with libgomp's default.
 */
#include "cli.h"

int main(int argc, char **argv) {
    bk_passive_wait_policy(argv); /* (-1: the exec failed; brick runs on as it is) */
    return cli_main(argc, argv);
}
