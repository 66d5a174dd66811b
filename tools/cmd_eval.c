/* cmd_eval.c - `brick eval FILE [--data DIR]`: rebuilds the model from FILE's metadata
 * alone (or, with --model SPEC, from the spec, FILE being a plain PyTorch state dict), then
 * reports test loss, accuracy and a confusion matrix with class names.
 * Also home of cli_evaluate, which `brick train` uses after every epoch.
 */
#define _XOPEN_SOURCE 700 /* PATH_MAX */

#include "cli.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

int cli_evaluate_part(bk_module *m, const bk_dataset *ds, int64_t batch, int part, int parts,
                      double *batch_loss, int64_t *batch_correct, int64_t *confusion, int n_classes) {
    bk_loader *l = bk_loader_new(ds, batch, false, 0, false);
    if (!l) return -1;
    bool was_training = m->training, prev = bk_set_grad_enabled(false);
    bk_module_train(m, false);
    /* sized by what it holds: a batch is never larger than the data set (batch may be
     * anything up to 1e9, or 2^63 - 1) */
    int64_t cap = batch < ds->n ? batch : ds->n;
    int64_t *pred = malloc((size_t)(cap > 0 ? cap : 1) * sizeof *pred);
    int64_t B = 0;
    bk_tensor *x;
    const int64_t *y;
    int rc = pred ? 0 : -1;
    if (!pred) bk_set_error("evaluate: out of memory");
    bk_loader_start(l);
    for (int64_t j = 0; rc == 0; j++) {
        bool mine = j % parts == part;
        if ((B = bk_loader_next(l, mine ? &x : NULL, mine ? &y : NULL, NULL)) <= 0) break;
        if (!mine) continue;
        bk_tensor *logits = bk_forward(m, x); /* (B, classes) */
        bk_tensor *L = bk_cross_entropy(logits, y, B, BK_REDUCTION_SUM);
        if (!L || bk_argmax_rows(logits, pred) != 0) {
            rc = -1;
            break;
        }
        int64_t correct = 0;
        for (int64_t i = 0; i < B; i++) {
            correct += pred[i] == y[i];
            if (confusion && y[i] < n_classes && pred[i] < n_classes) confusion[y[i] * n_classes + pred[i]]++;
        }
        batch_loss[j] = bk_item(L);
        batch_correct[j] = correct;
        bk_arena_reset(NULL);
    }
    if (B < 0) rc = -1;
    bk_arena_reset(NULL);
    bk_module_train(m, was_training);
    bk_set_grad_enabled(prev);
    free(pred);
    bk_loader_free(l);
    return rc;
}

void cli_evaluate_sum(const bk_dataset *ds, int64_t batch, const double *batch_loss,
                      const int64_t *batch_correct, double *loss, double *acc) {
    double total = 0;
    int64_t correct = 0;
    for (int64_t j = 0; j * batch < ds->n; j++) { /* in batch order */
        total += batch_loss[j];
        correct += batch_correct[j];
    }
    *loss = ds->n ? total / (double)ds->n : 0;
    *acc = ds->n ? (double)correct / (double)ds->n : 0;
}

int cli_evaluate(bk_module *m, const bk_dataset *ds, int64_t batch, double *loss, double *acc,
                 int64_t *confusion, int n_classes) {
    int64_t n_batches = batch > 0 ? (ds->n + batch - 1) / batch : 0;
    double *batch_loss = calloc((size_t)n_batches + 1, sizeof *batch_loss);
    int64_t *batch_correct = calloc((size_t)n_batches + 1, sizeof *batch_correct);
    int rc = batch_loss && batch_correct ? 0 : -1;
    if (rc) bk_set_error("evaluate: out of memory");
    if (!rc) rc = cli_evaluate_part(m, ds, batch, 0, 1, batch_loss, batch_correct, confusion, n_classes);
    if (!rc) cli_evaluate_sum(ds, batch, batch_loss, batch_correct, loss, acc);
    free(batch_loss);
    free(batch_correct);
    return rc;
}

/* The test split of data: a CSV table for a model trained on one (standardised with the
 * model's statistics), else Fashion-MNIST. CLI_OK or CLI_RUNTIME (message printed). */
static int load_test(const char *path, cli_model *cm, const char *data, bk_dataset **test) {
    bool csv = cli_has_csv(data);
    if (csv != cm->tab.on)
        return cli_fail("%s: the model was trained on %s, but %s holds %s", path,
                        cm->tab.on ? "a CSV table" : "images", data,
                        csv ? "a CSV table (train.csv, test.csv)" : "no train.csv and test.csv");
    if (!csv) { /* an image folder is read at the model's size, with the model's classes */
        bool image = cm->in_ndim == 3 && cm->in_shape[0] <= 3;
        int rc = cli_data_load(data, image ? (int)cm->in_shape[0] : 0, image ? cm->in_shape[1] : 0,
                               image ? cm->in_shape[2] : 0,
                               cm->class_names[0] ? (const char *const *)cm->class_names : NULL,
                               cm->n_classes, NULL, test);
        return rc ? rc : cli_prep_normalize(&cm->prep, *test, path);
    }
    bk_dataset *train = NULL; /* (it decides the classes, as it did in training) */
    int rc = cli_tabular_load(data, &cm->tab, false, &train, test);
    bk_dataset_free(train);
    return rc;
}

/* A regression model on its CSV table: test loss (MSE of the standardised target), RMSE
 * and MAE in the target's units. */
static int eval_regression(const char *path, cli_model *cm, const char *data, const char *why,
                           const bk_dataset *test, int64_t batch) {
    double loss, rmse, mae;
    printf("model: %s (%s, %lld parameters)\n", path, cm->arch,
           (long long)bk_module_num_params(cm->m, false));
    printf("data:  %s (%s): %lld test rows, regression\n", data, why, (long long)test->n);
    if (cli_evaluate_regression(cm->m, test, batch, &cm->tab, &loss, &rmse, &mae) != 0) return cli_fail(NULL);
    printf("test loss %.4f  test rmse %.4f  test mae %.4f\n", loss, rmse, mae);
    return CLI_OK;
}

static void help(FILE *f) {
    fprintf(f,
            "usage: brick eval FILE [--data DIR] [--batch-size B] [--threads T]\n"
            "       brick eval --model SPEC [--in-shape DIMS] [--classes N] PLAIN.safetensors\n"
            "\n"
            "Evaluates a model file written by `brick train` (or its training checkpoint) on\n"
            "the test split of DIR: test loss, accuracy and the confusion matrix. The model is\n"
            "rebuilt from the file's metadata alone (brick.arch, brick.in_shape,\n"
            "brick.n_classes, brick.class_names), or from --model SPEC for a plain state\n"
            "dict saved from PyTorch.\n"
            "\n"
            "options:\n"
            "  --data DIR        its test split: Fashion-MNIST, CIFAR-10, an image folder\n"
            "                    (DIR/test/<class>/, read at the model's size and classes)\n"
            "                    or the CSV table (train.csv and test.csv) a model was trained\n"
            "                    on (default as for `brick train`); prepared as in training;\n"
            "                    a regression model reports test RMSE and MAE\n"
            "  --batch-size B    evaluation batch size (default 256; memory grows with it)\n"
            "  --threads T       compute threads (default: the library's)\n" CLI_PLAIN_HELP
            "  -h, --help        this help\n");
}

/* Rows: true class; columns: predicted class; last column: the row's accuracy. */
static void print_confusion(cli_model *cm, const int64_t *conf) {
    int C = cm->n_classes, name_w = 5;
    for (int c = 0; c < C; c++) {
        int len = (int)strlen(cli_class_name(cm, c));
        if (len > name_w) name_w = len;
    }
    if (name_w > 24) name_w = 24;
    printf("\nconfusion matrix (rows: true class, columns: predicted class)\n");
    printf("%*s", name_w + 4, "");
    for (int c = 0; c < C; c++) printf(" %5d", c);
    printf("   recall\n");
    for (int r = 0; r < C; r++) {
        int64_t row = 0;
        for (int c = 0; c < C; c++) row += conf[r * C + c];
        char cut[32]; /* at most name_w bytes, cut between characters (a byte cut could
                       * split a UTF-8 sequence) */
        printf("%3d %-*s", r, name_w, bk_escape(cli_class_name(cm, r), cut, (size_t)name_w + 1));
        for (int c = 0; c < C; c++) printf(" %5lld", (long long)conf[r * C + c]);
        if (row) printf("   %.3f\n", (double)conf[r * C + r] / (double)row);
        else printf("   -\n");
    }
}

int cmd_eval(int argc, char **argv) {
    const char *data = NULL;
    /* Not larger: with grad off a batch's intermediates still stay in the arena until the
     * reset after it, so memory grows with B (resnet:width=8: 790 MiB at 1000, 225 at 256). */
    int64_t batch = 256, threads = 0;
    cli_plain plain = CLI_PLAIN_DEFAULTS;
    cli_option opts[] = {
        {"--data", CLI_STR, &data, 0, 0, false, NULL},
        {"--batch-size", CLI_INT, &batch, 1, 1e9, false, NULL},
        CLI_OPT_THREADS(&threads),
        CLI_OPTS_PLAIN(&plain),
    };
    const char *pos[1];
    int n_pos;
    int rc = cli_parse(argc, argv, opts, CLI_COUNT(opts), pos, 1, &n_pos, help);
    if (rc) return rc < 0 ? CLI_OK : rc;
    if (n_pos != 1) return cli_usage("expected a model FILE (see --help)");
    if ((rc = cli_plain_check(&plain, opts, CLI_COUNT(opts)))) return rc;
    if (cli_parse_only) return CLI_OK;
    const char *path = pos[0];
    if ((rc = cli_need_file(NULL, path))) return rc;
    char buf[PATH_MAX];
    const char *why = "from --data";
    bool given = data != NULL;
    if (!given) data = cli_default_data(buf, sizeof buf, &why);
    if ((rc = cli_need_data(data, given ? NULL : why, false))) return rc;
    if (threads) cli_set_threads((int)threads);

    cli_model cm;
    rc = cli_model_open(path, &plain, &cm);
    if (rc) return rc;
    bk_dataset *test = NULL;
    int64_t *conf = NULL;
    if ((rc = load_test(path, &cm, data, &test))) goto done;
    if (cm.tab.regression) {
        rc = eval_regression(path, &cm, data, why, test, batch);
        goto done;
    }
    bool same = test->ndim == cm.in_ndim && test->n_classes == cm.n_classes;
    for (int d = 0; same && d < test->ndim; d++) same = test->shape[d] == cm.in_shape[d];
    for (int c = 0; same && cm.tab.on && c < cm.n_classes; c++) /* a CSV table's classes: values */
        same = !cm.class_names[c] || !strcmp(cm.class_names[c], test->class_names[c]);
    if (!same) {
        rc = cli_fail(
            "%s: the model takes %d-class inputs of %d dims, but %s holds %d-class "
            "samples of %d dims with other sizes",
            path, cm.n_classes, cm.in_ndim, data, test->n_classes, test->ndim);
        goto done;
    }
    bool unnamed = !cm.class_names[0]; /* a plain file names none: the data set's then */
    for (int c = 0; unnamed && test->class_names && c < cm.n_classes; c++)
        cm.class_names[c] = strdup(test->class_names[c]);
    conf = calloc((size_t)cm.n_classes * (size_t)cm.n_classes, sizeof *conf);
    double loss, acc;
    printf("model: %s (%s, %lld parameters)\n", path, cm.arch, (long long)bk_module_num_params(cm.m, false));
    printf("data:  %s (%s): %lld test %s\n", data, why, (long long)test->n, cm.tab.on ? "rows" : "images");
    if (!conf || cli_evaluate(cm.m, test, batch, &loss, &acc, conf, cm.n_classes) != 0) {
        rc = conf ? cli_fail(NULL) : cli_fail("out of memory");
        goto done;
    }
    printf("test loss %.4f  test accuracy %.4f (%lld/%lld)\n", loss, acc,
           (long long)(acc * (double)test->n + 0.5), (long long)test->n);
    print_confusion(&cm, conf);
done:
    free(conf);
    bk_dataset_free(test);
    cli_model_free(&cm);
    return rc;
}
