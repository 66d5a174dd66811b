/* main.c - the `brick` program's entry point. Everything else is in cli_main (brick.c), so
 * that the tests and the CLI fuzz target can link the command line without this main. */
#include "cli.h"

int main(int argc, char **argv) { return cli_main(argc, argv); }
