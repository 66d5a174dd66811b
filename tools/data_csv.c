/* data_csv.c - `--data DIR` holding train.csv and test.csv (bk_csv_load): the CLI's side.
 *
 * Standardisation: each feature's mean and (population) std over the training split only
 * (bk_dataset_feature_stats), applied to both splits; a regression target is standardised
 * the same way, so the model learns (y - mean) / std with MSE, and RMSE and MAE are
 * reported in the target's own units (times std). The values go into the model file and
 * the checkpoint as metadata (%.9g: float32 exactly), so that `brick eval` applies the
 * numbers the model was trained with:
 *   brick.task          "classification" or "regression"
 *   brick.target        the target column (absent: the last)
 *   brick.feature_mean, brick.feature_std   n_features comma-separated numbers
 *   brick.target_mean, brick.target_std     regression only
 */
#define _XOPEN_SOURCE 700 /* strdup */

#include "cli.h"

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

const char *const CLI_TASK_NAMES[] = {"classification", "regression", NULL};

bool cli_has_csv(const char *dir) {
    char a[4096], b[4096];
    snprintf(a, sizeof a, "%s/train.csv", dir);
    snprintf(b, sizeof b, "%s/test.csv", dir);
    return cli_is_file(a) && cli_is_file(b);
}

void cli_tabular_free(cli_tabular *t) {
    free(t->mean);
    free(t->std);
    free(t->target);
    t->mean = t->std = NULL;
    t->target = NULL;
}

int cli_tabular_load(const char *dir, cli_tabular *t, bool fresh, bk_dataset **train, bk_dataset **test) {
    char a[4096], b[4096];
    snprintf(a, sizeof a, "%s/train.csv", dir);
    snprintf(b, sizeof b, "%s/test.csv", dir);
    bk_csv_task task = !t->task                         ? BK_CSV_TASK_AUTO
                       : !strcmp(t->task, "regression") ? BK_CSV_TASK_REGRESSION
                                                        : BK_CSV_TASK_CLASSIFICATION;
    if (bk_csv_load(a, b, t->target, task, train, test) != 0) return cli_fail(NULL);
    t->on = true;
    t->regression = (*train)->targets != NULL;
    t->task = CLI_TASK_NAMES[t->regression];
    int64_t f = (*train)->sample_numel;
    if (fresh) {
        free(t->mean);
        free(t->std);
        t->n_features = f;
        t->mean = malloc((size_t)f * sizeof *t->mean);
        t->std = malloc((size_t)f * sizeof *t->std);
        if (!t->mean || !t->std) return cli_fail("out of memory");
        if (bk_dataset_feature_stats(*train, t->mean, t->std) != 0) return cli_fail(NULL);
        if (t->regression) { /* the same statistics of the target column */
            bk_dataset tmp = **train;
            tmp.x = tmp.targets;
            tmp.ndim = 1;
            tmp.shape[0] = 1;
            tmp.sample_numel = 1;
            if (bk_dataset_feature_stats(&tmp, &t->target_mean, &t->target_std) != 0) return cli_fail(NULL);
        }
    } else if (t->n_features != f) {
        return cli_fail("%s: %" PRId64 " features, but the model was trained on %" PRId64, a, f,
                        t->n_features);
    }
    for (int k = 0; k < 2; k++) {
        bk_dataset *ds = k ? *test : *train;
        if (bk_dataset_standardize(ds, t->mean, t->std) != 0) return cli_fail(NULL);
        for (int64_t i = 0; t->regression && i < ds->n; i++)
            ds->targets[i] = (ds->targets[i] - t->target_mean) / t->target_std;
    }
    return CLI_OK;
}

/* "v,v,v" of n floats, exactly (%.9g) */
static char *join(const float *v, int64_t n) {
    cli_buf b = {0};
    for (int64_t i = 0; i < n; i++) cli_buf_printf(&b, "%s%.9g", i ? "," : "", (double)v[i]);
    if (b.oom) cli_buf_free(&b);
    return b.p;
}

int cli_tabular_meta(const cli_tabular *t, const char **keys, char **values) {
    int n = 0;
    if (!t->on) return 0;
    keys[n] = "brick.task";
    values[n++] = strdup(t->task);
    if (t->target) {
        keys[n] = "brick.target";
        values[n++] = strdup(t->target);
    }
    keys[n] = "brick.feature_mean";
    values[n++] = join(t->mean, t->n_features);
    keys[n] = "brick.feature_std";
    values[n++] = join(t->std, t->n_features);
    if (t->regression) {
        keys[n] = "brick.target_mean";
        values[n++] = join(&t->target_mean, 1);
        keys[n] = "brick.target_std";
        values[n++] = join(&t->target_std, 1);
    }
    return n;
}

/* n floats of "v,v,v" into out (malloc'ed); with positive finite values when positive. */
static bool parse_floats(const char *s, int64_t n, bool positive, float **out) {
    float *v = malloc((size_t)(n > 0 ? n : 1) * sizeof *v);
    if (!v || !s) {
        free(v);
        return false;
    }
    for (int64_t i = 0; i < n; i++) {
        char *end;
        double d = strtod(s, &end);
        bool sep = i + 1 < n ? *end == ',' : *end == '\0';
        if (end == s || !sep || !isfinite(d) || fabs(d) > 3.4e38 || (positive && !(d > 0 && (float)d > 0))) {
            free(v);
            return false;
        }
        v[i] = (float)d;
        s = end + (i + 1 < n);
    }
    *out = v;
    return true;
}

int cli_tabular_from_meta(const char *path, const bk_safetensors *st, int64_t n_features, cli_tabular *t) {
    memset(t, 0, sizeof *t);
    const char *task = bk_safetensors_meta(st, "brick.task");
    if (!task) return CLI_OK; /* an image model */
    if (strcmp(task, "classification") && strcmp(task, "regression"))
        return cli_fail("%s: metadata brick.task \"%.32s\" is not classification or regression", path, task);
    t->on = true;
    t->regression = !strcmp(task, "regression");
    t->task = CLI_TASK_NAMES[t->regression];
    t->n_features = n_features;
    const char *target = bk_safetensors_meta(st, "brick.target");
    if (target && !(t->target = strdup(target))) return cli_fail("out of memory");
    static const char *const keys[4] = {"brick.feature_mean", "brick.feature_std", "brick.target_mean",
                                        "brick.target_std"};
    float *tm = NULL, *ts = NULL;
    bool ok = parse_floats(bk_safetensors_meta(st, keys[0]), n_features, false, &t->mean) &&
              parse_floats(bk_safetensors_meta(st, keys[1]), n_features, true, &t->std);
    int bad = !t->mean ? 0 : 1;
    if (ok && t->regression) {
        ok = parse_floats(bk_safetensors_meta(st, keys[2]), 1, false, &tm) &&
             parse_floats(bk_safetensors_meta(st, keys[3]), 1, true, &ts);
        bad = !tm ? 2 : 3;
        if (ok) {
            t->target_mean = *tm;
            t->target_std = *ts;
        }
    }
    free(tm);
    free(ts);
    if (!ok) {
        cli_tabular_free(t);
        return cli_fail("%s: metadata %s is missing or not %" PRId64 " finite numbers%s", path, keys[bad],
                        bad < 2 ? n_features : 1, bad & 1 ? " > 0" : "");
    }
    return CLI_OK;
}

int cli_evaluate_regression(bk_module *m, const bk_dataset *ds, int64_t batch, const cli_tabular *t,
                            double *loss, double *rmse, double *mae) {
    bool was_training = m->training, grad = bk_set_grad_enabled(false);
    bk_module_train(m, false);
    bk_loader *l = bk_loader_new(ds, batch, false, 0, false);
    double sq = 0, ab = 0;
    int64_t B = 0;
    bk_tensor *x, *y;
    int rc = l ? 0 : -1;
    while (!rc && (B = bk_loader_next(l, &x, NULL, &y)) > 0) {
        bk_tensor *out = bk_forward(m, x); /* (B, 1) */
        if (!out || out->numel != B) {
            if (out)
                bk_set_error("evaluate: the model's output has %" PRId64 " values for %" PRId64 " rows",
                             out->numel, B);
            rc = -1;
        }
        for (int64_t i = 0; !rc && i < B; i++) {
            double d = (double)out->data[i] - (double)y->data[i];
            sq += d * d;
            ab += fabs(d);
        }
        bk_arena_reset(NULL);
    }
    if (!rc && B < 0) rc = -1;
    bk_loader_free(l);
    bk_module_train(m, was_training);
    bk_set_grad_enabled(grad);
    if (rc) return -1;
    double n = ds->n ? (double)ds->n : 1;
    *loss = sq / n; /* the training loss: MSE of the standardised target */
    *rmse = sqrt(sq / n) * (double)t->target_std;
    *mae = ab / n * (double)t->target_std;
    return 0;
}
