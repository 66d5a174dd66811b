/* test_csv.c - the CSV reader (src/data/csv.c) and per-feature standardisation.
 *
 * Good tables: the values, the target column (last or named), classes from the sorted
 * distinct values of the training file, the automatic task, quotes, CRLF, spaces, blank
 * lines at the end. Bad tables, one per rejection rule: each message must name the file,
 * the line and the column (or say what is missing). Statistics: against values worked out
 * by hand (population std, as sklearn's StandardScaler).
 */
#define _XOPEN_SOURCE 700 /* mkdtemp */

#include "test.h"
#include "files.h"

#include <math.h>

/* Writes text to tmpdir/name; returns the path (one of tpath's rotating buffers). */
static const char *put(const char *name, const char *text) {
    const char *p = tpath(name);
    if (!write_file(p, text, strlen(text))) fprintf(stderr, "  cannot write %s\n", p);
    return p;
}

/* bk_csv_load as CHECK_ERRS wants it: true on success. */
#define LOADS(...) (bk_csv_load(__VA_ARGS__) == 0)

static const char *GOOD = "a,b,label\n1,2,3\n4,5,1\n7,8,3\n";

TEST(reads_classification) {
    char tr[512], te[512];
    snprintf(tr, sizeof tr, "%s", put("train.csv", GOOD));
    snprintf(te, sizeof te, "%s", put("test.csv", "a,b,label\r\n0.5, -2e1 ,1\r\n\r\n"));
    bk_dataset *a = NULL, *b = NULL;
    CHECK(bk_csv_load(tr, te, NULL, BK_CSV_TASK_AUTO, &a, &b) == 0);
    if (!a || !b) return;
    CHECK(a->n == 3 && a->ndim == 1 && a->shape[0] == 2 && a->sample_numel == 2);
    CHECK(a->n_classes == 2 && a->y && !a->targets);
    CHECK(a->y[0] == 1 && a->y[1] == 0 && a->y[2] == 1); /* classes 1, 3 sorted */
    CHECK(a->class_names && !strcmp(a->class_names[0], "1") && !strcmp(a->class_names[1], "3"));
    CHECK(a->x[0] == 1 && a->x[1] == 2 && a->x[4] == 7 && a->x[5] == 8);
    CHECK(b->n == 1 && b->n_classes == 2 && b->y[0] == 0);
    CHECK(b->x[0] == 0.5f && b->x[1] == -20.0f);
    bk_dataset_free(a);
    bk_dataset_free(b);
}

TEST(reads_named_target_and_regression) {
    char tr[512];
    snprintf(tr, sizeof tr, "%s", put("train.csv", "\"the y\",x\n1.5,10\n2.5,20\n"));
    bk_dataset *a = NULL, *b = NULL;
    CHECK(bk_csv_load(tr, tr, "the y", BK_CSV_TASK_AUTO, &a, &b) == 0); /* 1.5: regression */
    if (!a || !b) return;
    CHECK(a->n == 2 && a->shape[0] == 1 && !a->y && a->n_classes == 0 && a->target_dim == 1);
    CHECK(a->targets[0] == 1.5f && a->targets[1] == 2.5f && a->x[0] == 10 && a->x[1] == 20);
    bk_dataset_free(a);
    bk_dataset_free(b);
    /* integers, regression asked for */
    snprintf(tr, sizeof tr, "%s", put("train.csv", GOOD));
    CHECK(bk_csv_load(tr, tr, "label", BK_CSV_TASK_REGRESSION, &a, &b) == 0);
    if (a) CHECK(a->targets && a->targets[1] == 1.0f && !a->y);
    bk_dataset_free(a);
    bk_dataset_free(b);
    /* classification asked for, a fraction in the target */
    snprintf(tr, sizeof tr, "%s", put("train.csv", "x,y\n1,2\n3,2.5\n"));
    CHECK_ERRS(LOADS(tr, tr, NULL, BK_CSV_TASK_CLASSIFICATION, &a, &b), "csv: ", "train.csv", "line 3",
               "column 2 (y)", "2.5 is not an integer");
    CHECK(!a && !b);
}

/* bk_csv_load(train = text, test = GOOD) must fail naming each of the substrings. */
static void bad_train(const char *text, const char *a1, const char *a2) {
    char tr[512], te[512];
    snprintf(tr, sizeof tr, "%s", put("bad.csv", text));
    snprintf(te, sizeof te, "%s", put("good.csv", GOOD));
    bk_dataset *a = NULL, *b = NULL;
    CHECK_ERRS(LOADS(tr, te, NULL, BK_CSV_TASK_AUTO, &a, &b), "csv: ", "bad.csv", a1, a2);
    CHECK(!a && !b);
}

TEST(rejects_malformed) {
    bad_train("", "the file is empty", "header");
    bad_train("\n1,2\n", "line 1 is blank", "header");
    bad_train("a,b,label\n", "no data rows", "only the header");
    bad_train("a,b,label\n1,2,3\n4,5\n", "line 3", "2 cells, but the header has 3 columns");
    bad_train("a,b,label\n1,2,3\n4,5,6,7\n", "line 3", "4 cells");
    bad_train("a,b,label\n1,x2,3\n", "line 2, column 2 (b)", "\"x2\" is not a number");
    bad_train("a,b,label\n1,,3\n", "line 2, column 2 (b)", "empty cell");
    bad_train("a,b,label\n1,nan,3\n", "line 2, column 2 (b)", "not a finite");
    bad_train("a,b,label\n1,2,-inf\n", "line 2, column 3 (label)", "\"-inf\" is not a finite");
    bad_train("a,b,label\n1,1e39,3\n", "line 2, column 2 (b)", "float32");
    bad_train("a,b,label\n0x10,2,3\n", "line 2, column 1 (a)", "not a number");
    bad_train("a,b,label\n1,2,3\n\n4,5,6\n", "line 3", "blank line between rows");
    bad_train("a,\"b,label\n1,2,3\n", "line 1", "quote is not closed");
    bad_train("a,\"b\"x,label\n1,2,3\n", "line 1", "after a closing quote");
    bad_train("a\n1\n", "line 1", "need at least one feature and the target");
    bad_train("a,,label\n1,2,3\n", "line 1", "column 2 has no name");
    const char nul[] = "a,b,label\n1,2\0,3\n";
    const char *p = tpath("nul.csv");
    bk_dataset *a = NULL, *b = NULL;
    CHECK(write_file(p, nul, sizeof nul - 1));
    CHECK_ERRS(LOADS(p, p, NULL, BK_CSV_TASK_AUTO, &a, &b), "nul.csv", "NUL byte");
}

TEST(rejects_mismatched_files) {
    char tr[512], te[512];
    bk_dataset *a = NULL, *b = NULL;
    snprintf(tr, sizeof tr, "%s", put("train.csv", GOOD));
    snprintf(te, sizeof te, "%s", put("test.csv", "a,c,label\n1,2,3\n"));
    CHECK_ERRS(LOADS(tr, te, NULL, BK_CSV_TASK_AUTO, &a, &b), "test.csv", "column 2 is \"c\"", "\"b\"");
    snprintf(te, sizeof te, "%s", put("test.csv", "a,label\n1,3\n"));
    CHECK_ERRS(LOADS(tr, te, NULL, BK_CSV_TASK_AUTO, &a, &b), "test.csv", "2 columns", "has 3");
    snprintf(te, sizeof te, "%s", put("test.csv", "a,b,label\n1,2,3\n1,2,2\n"));
    CHECK_ERRS(LOADS(tr, te, NULL, BK_CSV_TASK_AUTO, &a, &b), "test.csv", "line 3, column 3 (label)",
               "target 2 is not a class of the training file");
    CHECK_ERRS(LOADS(tr, tr, "c", BK_CSV_TASK_AUTO, &a, &b), "train.csv", "no target column named \"c\"",
               "columns: a, b, label");
    CHECK(!a && !b);
}

TEST(too_many_classes) {
    char text[8192];
    size_t k = (size_t)snprintf(text, sizeof text, "x,y\n");
    for (int i = 0; i <= BK_CSV_MAX_CLASSES; i++)
        k += (size_t)snprintf(text + k, sizeof text - k, "0,%d\n", i);
    char tr[512];
    snprintf(tr, sizeof tr, "%s", put("train.csv", text));
    bk_dataset *a = NULL, *b = NULL;
    CHECK_ERRS(LOADS(tr, tr, NULL, BK_CSV_TASK_AUTO, &a, &b), "257 distinct target values",
               "more than 256 classes");
    CHECK(bk_csv_load(tr, tr, NULL, BK_CSV_TASK_REGRESSION, &a, &b) == 0);
    bk_dataset_free(a);
    bk_dataset_free(b);
}

TEST(feature_stats_and_standardize) {
    /* feature 0: 1, 2, 3, 6 (mean 3, var (4+1+0+9)/4 = 3.5); feature 1 constant */
    const float x[8] = {1, 5, 2, 5, 3, 5, 6, 5};
    const int64_t y[4] = {0, 1, 0, 1};
    bk_dataset *ds = bk_dataset_from_arrays(4, BK_SHAPE(2), x, y, 2, NULL, 0);
    float mean[2], sd[2];
    CHECK(ds && bk_dataset_feature_stats(ds, mean, sd) == 0);
    if (!ds) return;
    CHECK_CLOSE(mean[0], 3.0, 1e-6);
    CHECK_CLOSE(sd[0], sqrt(3.5), 1e-6);
    CHECK(mean[1] == 5 && sd[1] == 1); /* constant: std 1, so it standardises to 0 */
    CHECK(bk_dataset_standardize(ds, mean, sd) == 0);
    CHECK_CLOSE(ds->x[0], -2.0 / sqrt(3.5), 1e-6);
    CHECK_CLOSE(ds->x[6], 3.0 / sqrt(3.5), 1e-6);
    CHECK(ds->x[1] == 0 && ds->x[7] == 0);
    /* the standardised training set has mean 0, std 1 */
    CHECK(bk_dataset_feature_stats(ds, mean, sd) == 0);
    CHECK_CLOSE(mean[0], 0.0, 1e-6);
    CHECK_CLOSE(sd[0], 1.0, 1e-6);
    bk_dataset *empty = bk_dataset_from_arrays(0, BK_SHAPE(2), NULL, NULL, 0, NULL, 0);
    CHECK_ERR(bk_dataset_feature_stats(empty, mean, sd) == 0, "no samples");
    bk_dataset_free(empty);
    bk_dataset_free(ds);
}

int main(void) {
    if (!files_init("csv", NULL)) return 1;
    RUN(reads_classification);
    RUN(reads_named_target_and_regression);
    RUN(rejects_malformed);
    RUN(rejects_mismatched_files);
    RUN(too_many_classes);
    RUN(feature_stats_and_standardize);
    files_cleanup();
    return test_summary("test_csv");
}
