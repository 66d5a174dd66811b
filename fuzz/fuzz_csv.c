/* fuzz_csv.c - the CSV table reader (bk_csv_load) and the standardisation after it.
 *
 * The input holds two files and the reader's settings:
 *   byte 0        task: 0 auto, 1 classification, 2 regression (mod 3)
 *   byte 1        the target: 0 the last column, else the column named "y"
 *   bytes 2..3    L, little-endian: the training file is the next min(L, rest) bytes
 *   the rest      the test file
 * bk_csv_load must fail with an error naming a file ("csv: "), or return two data sets of
 * the same feature count, every value finite, labels below n_classes (at most
 * BK_CSV_MAX_CLASSES) with a name per class, or finite (n, 1) targets; the training set's
 * statistics must then standardise both, and a loader yields the first batch.
 */
#ifndef _XOPEN_SOURCE
#define _XOPEN_SOURCE 700 /* mkdtemp */
#endif
#include "fuzz.h"

#include <math.h>

static void check_set(const bk_dataset *ds, int64_t f, bk_csv_task task) {
    FUZZ_ASSERT(ds->n > 0 && ds->ndim == 1 && ds->shape[0] == f && ds->sample_numel == f && f >= 1);
    for (int64_t i = 0; i < ds->n * f; i++) FUZZ_ASSERT(isfinite(ds->x[i]));
    if (ds->y) {
        FUZZ_ASSERT(task != BK_CSV_TASK_REGRESSION && !ds->targets);
        FUZZ_ASSERT(ds->n_classes >= 1 && ds->n_classes <= BK_CSV_MAX_CLASSES && ds->class_names);
        for (int c = 0; c < ds->n_classes; c++) FUZZ_ASSERT(ds->class_names[c][0] != '\0');
        for (int64_t i = 0; i < ds->n; i++) FUZZ_ASSERT(ds->y[i] >= 0 && ds->y[i] < ds->n_classes);
    } else {
        FUZZ_ASSERT(task != BK_CSV_TASK_CLASSIFICATION && ds->targets && ds->target_dim == 1);
        for (int64_t i = 0; i < ds->n; i++) FUZZ_ASSERT(isfinite(ds->targets[i]));
    }
}

FUZZ_TARGET(csv) {
    if (size < 4) return 0;
    fuzz_begin();
    bk_csv_task task = (bk_csv_task)(data[0] % 3);
    const char *target = data[1] ? "y" : NULL;
    size_t len = (size_t)data[2] | (size_t)data[3] << 8;
    if (len > size - 4) len = size - 4;
    const char *train_path = fuzz_file("in0", data + 4, len);
    const char *test_path = fuzz_file("in1", data + 4 + len, size - 4 - len);
    bk_dataset *tr = NULL, *te = NULL;
    if (bk_csv_load(train_path, test_path, target, task, &tr, &te) != 0) {
        FUZZ_ASSERT(!tr && !te && strstr(bk_last_error(), "csv: "));
        fuzz_end();
        return 0;
    }
    int64_t f = tr->sample_numel;
    check_set(tr, f, task);
    check_set(te, f, task);
    FUZZ_ASSERT(tr->n_classes == te->n_classes);
    float *mean = malloc((size_t)f * sizeof *mean), *sd = malloc((size_t)f * sizeof *sd);
    if (mean && sd) {
        FUZZ_ASSERT(bk_dataset_feature_stats(tr, mean, sd) == 0);
        for (int64_t j = 0; j < f; j++) FUZZ_ASSERT(isfinite(mean[j]) && isfinite(sd[j]) && sd[j] > 0);
        FUZZ_ASSERT(bk_dataset_standardize(tr, mean, sd) == 0 && bk_dataset_standardize(te, mean, sd) == 0);
    }
    free(mean);
    free(sd);
    bk_loader *l = bk_loader_new(te, 2, true, 1, false);
    if (l) {
        bk_tensor *x, *t;
        const int64_t *y;
        int64_t b = bk_loader_next(l, &x, &y, &t);
        FUZZ_ASSERT(b == -1 || b == (te->n < 2 ? te->n : 2));
    }
    bk_loader_free(l);
    bk_dataset_free(tr);
    bk_dataset_free(te);
    fuzz_end();
    return 0;
}
