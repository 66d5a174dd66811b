/* cmd_import.c - `brick import --model SPEC PLAIN.safetensors --out MODEL.safetensors`: a
 * plain state dict (what PyTorch's state_dict() holds, saved as safetensors without brick's
 * metadata) becomes a self-contained brick model file, which eval, predict and summary
 * then read with no flags (docs/pytorch.md).
 *
 * The model is built from the spec and the file is loaded into it exactly as
 * `brick eval --model SPEC PLAIN` loads it (cli_model_open: strict unless --non-strict,
 * every dtype converted to float32, non-finite values refused), then saved with the
 * metadata of a model file `brick train` writes: brick.format, brick.arch (the canonical
 * spec), brick.in_shape, brick.n_classes and, when given, brick.class_names.
 */
#include "cli.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

static void help(FILE *f) {
    fprintf(f,
            "usage: brick import --model SPEC [--in-shape DIMS] [--classes N] PLAIN.safetensors\n"
            "                    --out MODEL.safetensors\n"
            "\n"
            "Turns a plain state dict saved from PyTorch (safetensors, no brick metadata;\n"
            "F32, F64, F16, BF16, I64 and I32 tensors, converted to float32) into a brick\n"
            "model file that `brick eval`, `predict` and `summary` read with no flags.\n"
            "\n"
            "options:\n"
            "  --out FILE        the model file to write (refused if it exists, unless --force)\n"
            "  --force           replace an existing --out\n" CLI_PLAIN_HELP
            "  -h, --help        this help\n");
}

int cmd_import(int argc, char **argv) {
    const char *out = NULL;
    bool force = false;
    cli_plain plain = CLI_PLAIN_DEFAULTS;
    cli_option opts[] = {
        {"--out", CLI_STR, &out, 0, 0, false, NULL},
        {"--force", CLI_FLAG, &force, 0, 0, false, NULL},
        CLI_OPTS_PLAIN(&plain),
    };
    const char *pos[1];
    int n_pos;
    int rc = cli_parse(argc, argv, opts, CLI_COUNT(opts), pos, 1, &n_pos, help);
    if (rc) return rc < 0 ? CLI_OK : rc;
    if (n_pos != 1) return cli_usage("expected a PLAIN.safetensors file (see --help)");
    if (!plain.model) return cli_usage("--model SPEC is required: the model the state dict belongs to");
    if (!out) return cli_usage("--out FILE is required");
    if ((rc = cli_plain_check(&plain, opts, CLI_COUNT(opts)))) return rc;
    if (cli_parse_only) return CLI_OK;
    const char *path = pos[0];
    if ((rc = cli_need_file(NULL, path))) return rc;
    if (cli_same_file(path, out)) return cli_usage("--out %s is the input file", out);
    if ((rc = cli_need_out(out))) return rc;
    if (!force && cli_is_file(out)) return cli_usage("--out %s exists (--force replaces it)", out);

    cli_model cm;
    if ((rc = cli_model_open(path, &plain, &cm))) return rc;
    char canon[256], shape[160], classes[16];
    bk_model_num_params(plain.model, plain.in_ndim, plain.shape, (int)plain.classes, canon, sizeof canon);
    size_t len = 0;
    for (int d = 0; d < plain.in_ndim; d++)
        len += (size_t)snprintf(shape + len, sizeof shape - len, "%s%" PRId64, d ? "," : "", plain.shape[d]);
    snprintf(classes, sizeof classes, "%" PRId64, plain.classes);
    const char *keys[5] = {"brick.format", "brick.version", "brick.arch", "brick.in_shape",
                           "brick.n_classes"};
    const char *values[5] = {CLI_MODEL_FORMAT, BK_VERSION_STRING, canon, shape, classes};
    const char *all_keys[6], *all_values[6];
    int n_meta = 5;
    memcpy(all_keys, keys, sizeof keys);
    memcpy(all_values, values, sizeof values);
    if (plain.class_names) {
        all_keys[n_meta] = "brick.class_names";
        all_values[n_meta++] = plain.class_names;
    }
    if (bk_checkpoint_save(out, cm.m, NULL, n_meta, all_keys, all_values) != 0) {
        rc = cli_fail(NULL);
    } else {
        printf("imported %s (%s, converted to float32)\n", path, cm.dtypes);
        printf("wrote %s: %s, input %s, %s classes, %" PRId64 " parameters\n", out, cm.arch, shape, classes,
               bk_module_num_params(cm.m, false));
    }
    cli_model_free(&cm);
    return rc;
}
