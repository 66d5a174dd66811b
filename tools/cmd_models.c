/* cmd_models.c - `brick models [NAME]` (and `brick train --model help`): the zoo, as
 * bk_model_describe and bk_model_setting_info describe it. One block a model, stable and
 * greppable (docs/cli.md "Models"):
 *
 *   model mlp: 203530 parameters (input 1,28,28, 10 classes, default settings)
 *     multilayer perceptron: Flatten, Linear(in, hidden), act, ...
 *     setting hidden=256: integer, 1..4294967296
 *     setting act=relu: word, relu|sigmoid|tanh|gelu
 *
 * The parameter count is bk_model_num_params for Fashion-MNIST's input, the count `brick
 * summary --model NAME` totals (tests/test_cli.sh checks both agree).
 */
#include "cli.h"

#include <inttypes.h>

static void help(FILE *f) {
    fprintf(f,
            "usage: brick models [NAME]\n"
            "\n"
            "Lists the models of the zoo (or the model NAME): what each builds, its parameter\n"
            "count for Fashion-MNIST (input 1,28,28, 10 classes) at its default settings, and\n"
            "each setting as key=default, its type and the values it takes (a range, bounds\n"
            "included, or words separated by |). A --model spec sets them:\n"
            "name:key=value,key=value (brick train --model help prints the same list).\n"
            "\n"
            "options:\n"
            "  -h, --help   this help\n"
            "\n"
            "example:\n"
            "  brick models mlp\n"
            "  brick train --model mlp:hidden=512,act=gelu\n");
}

/* The block of model `name` on stdout; CLI_USAGE for an unknown name, CLI_RUNTIME for a
 * model that cannot take Fashion-MNIST's input (message printed). */
static int print_model(const char *name) {
    int n;
    const char *doc = bk_model_describe(name, &n);
    if (!doc) return cli_usage("%s", bk_last_error());
    int64_t params = bk_model_num_params(name, BK_SHAPE(1, 28, 28), 10, NULL, 0);
    if (params < 0) return cli_fail(NULL);
    printf("model %s: %" PRId64 " parameters (input 1,28,28, 10 classes, default settings)\n  %s\n", name,
           params, doc);
    for (int i = 0; i < n; i++) {
        bk_model_setting st;
        if (bk_model_setting_info(name, i, &st) < 0) return cli_fail(NULL);
        printf("  setting %s=%s: %s, %s\n", st.key, st.def, st.type, st.values);
    }
    if (!n) printf("  (no settings)\n");
    return CLI_OK;
}

int cli_models_print(const char *name) {
    if (name) return print_model(name);
    int rc = CLI_OK;
    for (const char *const *m = bk_model_names(); *m && !rc; m++) {
        if (m != bk_model_names()) printf("\n");
        rc = print_model(*m);
    }
    return rc;
}

int cmd_models(int argc, char **argv) {
    const char *pos[1];
    int n_pos;
    int rc = cli_parse(argc, argv, NULL, 0, pos, 1, &n_pos, help);
    if (rc) return rc < 0 ? CLI_OK : rc;
    if (n_pos == 1 && !bk_model_describe(pos[0], NULL)) return cli_usage("%s", bk_last_error());
    if (cli_parse_only) return CLI_OK;
    return cli_models_print(n_pos ? pos[0] : NULL);
}
