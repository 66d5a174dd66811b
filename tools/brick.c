/* brick.c - the `brick` command: subcommand dispatch (cli_main; main.c calls it).
 *
 *   brick train    train a model on Fashion-MNIST or a CSV table (cmd_train.c)
 *   brick eval     test loss, accuracy and confusion matrix of a model file (cmd_eval.c)
 *   brick summary  block tree and per-block shapes and parameters (cmd_summary.c)
 *   brick predict  top-k classes of PGM or IDX images (cmd_predict.c)
 *   brick train-lm, brick generate  character-level language model (cmd_lm.c)
 *   brick models   the models of the zoo, their settings and defaults (cmd_models.c)
 *   brick import   a plain PyTorch state dict to a brick model file (cmd_import.c)
 *
 * Exit statuses: 0 success, 1 runtime failure, 2 usage error (see cli.h).
 */
#include "cli.h"

#include <stdlib.h>
#include <string.h>

typedef struct command {
    const char *name, *prog, *summary;
    int (*run)(int argc, char **argv);
} command;

static const command COMMANDS[] = {
    {"train", "brick train", "train a model on Fashion-MNIST or a CSV table", cmd_train},
    {"eval", "brick eval", "test loss, accuracy and confusion matrix of a model file", cmd_eval},
    {"summary", "brick summary", "a model's blocks, output shapes and parameter counts", cmd_summary},
    {"predict", "brick predict", "top classes of PGM or IDX images", cmd_predict},
    {"train-lm", "brick train-lm", "train a character-level Transformer language model", cmd_train_lm},
    {"generate", "brick generate", "sample text from a train-lm model", cmd_generate},
    {"models", "brick models", "the models, their parameters, settings and defaults", cmd_models},
    {"import", "brick import", "a plain PyTorch state dict (safetensors) to a brick model file", cmd_import},
};
#define N_COMMANDS (int)(sizeof COMMANDS / sizeof COMMANDS[0])

static void help(FILE *f) {
    fprintf(f,
            "usage: brick <command> [options]   (brick <command> --help for its options)\n"
            "\n"
            "Neural networks out of layers and blocks, in plain C.\n"
            "\n"
            "commands:\n");
    for (int i = 0; i < N_COMMANDS; i++) fprintf(f, "  %-10s %s\n", COMMANDS[i].name, COMMANDS[i].summary);
    fprintf(f,
            "  help       this help, or `brick help <command>`\n"
            "\n"
            "options:\n"
            "  -h, --help     this help\n"
            "  --version      the version and build\n"
            "\n"
            "example:\n"
            "  brick train --model mlp --epochs 10 --out mlp.safetensors\n"
            "  brick eval mlp.safetensors\n"
            "  brick summary --model mlp\n");
}

static void version(void) {
    printf("brick %s (", BK_VERSION_STRING);
#ifdef BK_HAVE_OPENBLAS
    printf("OpenBLAS, ");
#endif
    printf("brick gemm %s", bk_gemm_kernel());
#ifdef _OPENMP
    /* what libgomp read at start (main.c sets PASSIVE when the user set nothing) */
    const char *policy = getenv("OMP_WAIT_POLICY"), *spin = getenv("GOMP_SPINCOUNT");
    if (policy) printf(", OpenMP wait policy %s", policy);
    else if (spin) printf(", OpenMP GOMP_SPINCOUNT=%s", spin);
    else printf(", OpenMP wait policy default");
#endif
    if (bk_dist_mpi_built()) printf(", MPI");
#ifdef BK_HAVE_STB
    printf(", PNG/JPEG images (stb_image)");
#endif
    printf(")\n");
}

static const command *find(const char *name) {
    for (int i = 0; i < N_COMMANDS; i++)
        if (!strcmp(COMMANDS[i].name, name)) return &COMMANDS[i];
    return NULL;
}

int cli_main(int argc, char **argv) {
    if (argc < 2) return cli_usage("missing command (see brick --help)");
    const char *a = argv[1];
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
        help(stdout);
        return CLI_OK;
    }
    if (!strcmp(a, "--version") || !strcmp(a, "version")) {
        version();
        return CLI_OK;
    }
    if (!strcmp(a, "help")) {
        if (argc == 2) {
            help(stdout);
            return CLI_OK;
        }
        const command *c = find(argv[2]);
        if (!c) return cli_usage("unknown command '%s' (see brick --help)", argv[2]);
        char *args[] = {argv[2], "--help", NULL};
        cli_prog = c->prog;
        return c->run(2, args);
    }
    const command *c = find(a);
    if (!c) {
        if (a[0] == '-') return cli_usage("unknown option '%s' (see brick --help)", a);
        return cli_usage("unknown command '%s' (see brick --help)", a);
    }
    cli_prog = c->prog;
    int rc = c->run(argc - 1, argv + 1);
    bk_thread_cleanup();
    return rc;
}
