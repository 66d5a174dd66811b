/* cmd_models.c - `brick models [NAME]` (and `brick train --model help`): the zoo, as
 * bk_model_describe and bk_model_setting_info describe it. One block a model, stable and
 * greppable (docs/cli.md "Models"):
 *
 *   model mlp: 203530 parameters (input 1,28,28, 10 classes, default settings)
 *     multilayer perceptron: Flatten, Linear(in, hidden), act, ...
 *     setting hidden=256: integer, 1..4294967296
 *     setting act=relu: word, relu|sigmoid|tanh|gelu
 *     recipe: SGD lr 0.1, batch 256
 *
 * The parameter count is bk_model_num_params for Fashion-MNIST's input, the count `brick
 * summary --model NAME` totals (tests/test_cli.sh checks both agree).
 */
#include "cli.h"

#include <inttypes.h>
#include <string.h>

/* Measured: README's accuracy table (10 epochs of the full Fashion-MNIST). The plain MLP
 * recipe of D2L (SGD lr 0.1, batch 256) leaves the CNNs near chance after an epoch or more:
 * LeNet's sigmoid-free ReLU stack and GoogLeNet (no batch norm) need momentum and a
 * smaller lr; ResNet also weight decay. */
static const cli_recipe RECIPES[] = {
    {"softmax", "sgd", "none", 0.1, 0, 0, 256},           {"mlp", "sgd", "none", 0.1, 0, 0, 256},
    {"lenet", "sgd", "cosine", 0.02, 0.9, 0, 128},        {"resnet", "sgd", "cosine", 0.05, 0.9, 5e-4, 128},
    {"googlenet", "sgd", "cosine", 0.05, 0.9, 5e-4, 128},
};

const cli_recipe *cli_recipe_for(const char *spec) {
    size_t len = strcspn(spec, ":");
    for (size_t i = 0; i < sizeof RECIPES / sizeof RECIPES[0]; i++)
        if (strlen(RECIPES[i].model) == len && !strncmp(RECIPES[i].model, spec, len)) return &RECIPES[i];
    return NULL;
}

void cli_recipe_describe(const cli_recipe *r, char *buf, size_t n) {
    int k = snprintf(buf, n, "%s lr %g", !strcmp(r->optimizer, "sgd") ? "SGD" : r->optimizer, r->lr);
    if (r->momentum > 0 && k >= 0 && (size_t)k < n)
        k += snprintf(buf + k, n - (size_t)k, ", momentum %g", r->momentum);
    if (r->weight_decay > 0 && k >= 0 && (size_t)k < n)
        k += snprintf(buf + k, n - (size_t)k, ", weight decay %g", r->weight_decay);
    if (strcmp(r->schedule, "none") && k >= 0 && (size_t)k < n)
        k += snprintf(buf + k, n - (size_t)k, ", %s schedule", r->schedule);
    if (k >= 0 && (size_t)k < n) snprintf(buf + k, n - (size_t)k, ", batch %" PRId64, r->batch);
}

static void help(FILE *f) {
    fprintf(f,
            "usage: brick models [NAME]\n"
            "\n"
            "Lists the models of the zoo (or the model NAME): what each builds, its parameter\n"
            "count for Fashion-MNIST (input 1,28,28, 10 classes) at its default settings, and\n"
            "each setting as key=default, its type and the values it takes (a range, bounds\n"
            "included, or words separated by |). A --model spec sets them:\n"
            "name:key=value,key=value (brick train --model help prints the same list).\n"
            "recipe: the optimizer, lr, schedule and batch brick train uses for the model\n"
            "when its flags do not say otherwise.\n"
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
    const cli_recipe *rc = cli_recipe_for(name);
    if (rc) {
        char desc[160];
        cli_recipe_describe(rc, desc, sizeof desc);
        printf("  recipe: %s\n", desc);
    }
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
