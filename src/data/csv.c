/* csv.c - tabular data sets from CSV files (a training and a test file) into bk_datasets.
 *
 * The format: a header row of column names, then one row per sample, every cell a finite
 * decimal number; cells separated by commas, a row ended by LF or CRLF; a cell may be
 * wrapped in double quotes ("" inside is a quote) and surrounded by spaces. One column is
 * the target (named, or the last); the others are the features, in file order, so a
 * sample has shape (n_features). The test file must have the training file's header.
 *
 *   classification  every target value an integer; the classes are the distinct values of
 *                   the training file, sorted, so label k is the k-th smallest value and
 *                   its name is the value as written by %.17g ("0", "3", "-1"); a test
 *                   value that is not a class is an error. At most BK_CSV_MAX_CLASSES.
 *   regression      targets (n, 1) float32, no labels (n_classes 0).
 *   auto            classification when every target value of both files is an integer.
 *
 * Reading trusts nothing: a ragged row, an empty or non-numeric cell, a NaN or infinite
 * value (or one beyond float32), an unclosed quote, an empty file, a header alone, a
 * missing target column: NULL with "csv: <path>: line L, column C (<name>): <problem>".
 * Sizes: every cell takes at least one byte of the file, so rows * columns <= file size
 * and nothing allocated is larger than a small multiple of the file.
 *
 * Features are not standardised here: bk_dataset_feature_stats on the training set and
 * bk_dataset_standardize on both do it (docs/data.md).
 */
#define _XOPEN_SOURCE 700 /* fstat, fileno */

#include "internal.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define csv_fail(path, ...) bk__file_error("csv", path, __VA_ARGS__)

/* One file, parsed: the header and the cells, row-major. */
typedef struct csv_table {
    const char *path;
    char *text;     /* the file, NUL-terminated, cut into cells in place */
    char **names;   /* n_cols header cells (into text) */
    int64_t n_cols; /* >= 2 */
    int64_t n_rows; /* >= 1 */
    double *cells;  /* n_rows * n_cols */
    int64_t *lines; /* n_rows: the file line of each row (1-based) */
} csv_table;

static void table_free(csv_table *t) {
    bk__free(t->text);
    bk__free(t->names);
    bk__free(t->cells);
    bk__free(t->lines);
    memset(t, 0, sizeof *t);
}

/* The whole file into a NUL-terminated buffer (*len bytes). */
static char *read_all(const char *path, size_t *len) {
    char why[256];
    FILE *f = bk__open_regular(path, why, sizeof why);
    if (!f) {
        csv_fail(path, "%s", why);
        return NULL;
    }
    struct stat st;
    char *buf = NULL;
    if (fstat(fileno(f), &st) != 0) {
        csv_fail(path, "cannot stat: %s", strerror(errno));
    } else if ((uint64_t)st.st_size >= SIZE_MAX / 16) {
        csv_fail(path, "the file is too large (%" PRId64 " bytes)", (int64_t)st.st_size);
    } else if (!(buf = bk__malloc((size_t)st.st_size + 1))) {
        csv_fail(path, "out of memory for %" PRId64 " bytes", (int64_t)st.st_size);
    } else {
        *len = fread(buf, 1, (size_t)st.st_size, f);
        if (ferror(f)) {
            csv_fail(path, "read error: %s", strerror(errno));
            bk__free(buf);
            buf = NULL;
        } else {
            buf[*len] = '\0';
        }
    }
    fclose(f);
    return buf;
}

/* Cuts the line s (no newline, NUL-terminated) into at most max cells in place: each cell
 * trimmed and unquoted. *n: how many cells the line holds (may exceed max: then only max
 * are stored). False with *why for a bad quote. */
static bool split_line(char *s, char **cells, int64_t max, int64_t *n, const char **why) {
    int64_t k = 0;
    for (;;) {
        while (*s == ' ' || *s == '\t') s++;
        char *cell = s, *w = s;
        if (*s == '"') { /* quoted: "" is a quote; ends at the lone closing quote */
            s++;
            for (;;) {
                if (*s == '\0') {
                    *why = "a quote is not closed";
                    return false;
                }
                if (*s == '"' && s[1] == '"') {
                    *w++ = '"';
                    s += 2;
                } else if (*s == '"') {
                    s++;
                    break;
                } else {
                    *w++ = *s++;
                }
            }
            while (*s == ' ' || *s == '\t') s++;
            if (*s != ',' && *s != '\0') {
                *why = "text after a closing quote";
                return false;
            }
        } else {
            while (*s != ',' && *s != '\0') s++;
            w = s;
            while (w > cell && (w[-1] == ' ' || w[-1] == '\t')) w--;
        }
        char end = *s;
        *w = '\0';
        if (k < max) cells[k] = cell;
        k++;
        if (end == '\0') break;
        s++; /* past the comma */
    }
    *n = k;
    return true;
}

/* The next line of the buffer at *p (ending at NUL): cut off at its LF (and a CR before
 * it), *p moved past it. NULL at the end of the buffer. */
static char *next_line(char **p) {
    char *s = *p;
    if (*s == '\0') return NULL;
    char *nl = strchr(s, '\n');
    if (nl) {
        *nl = '\0';
        *p = nl + 1;
    } else {
        *p = s + strlen(s);
    }
    size_t len = strlen(s);
    if (len > 0 && s[len - 1] == '\r') s[len - 1] = '\0';
    return s;
}

/* A cell as a finite number that float32 holds; false with the message set. */
static bool parse_number(const csv_table *t, const char *cell, int64_t line, int64_t col, double *out) {
    const char *name = t->names[col];
    if (!cell[0])
        return csv_fail(t->path, "line %" PRId64 ", column %" PRId64 " (%s): empty cell", line, col + 1,
                        name);
    char *end;
    errno = 0;
    double v = strtod(cell, &end);
    bool hex = strchr(cell, 'x') || strchr(cell, 'X');
    char shown[40];
    snprintf(shown, sizeof shown, "%.32s%s", cell, strlen(cell) > 32 ? "..." : "");
    if (end == cell || *end != '\0' || hex)
        return csv_fail(t->path, "line %" PRId64 ", column %" PRId64 " (%s): \"%s\" is not a number", line,
                        col + 1, name, shown);
    if (!isfinite(v) || fabs(v) > 3.4028234663852886e38)
        return csv_fail(t->path,
                        "line %" PRId64 ", column %" PRId64 " (%s): \"%s\" is not a finite float32 value",
                        line, col + 1, name, shown);
    *out = v;
    return true;
}

/* Reads and checks one file: a header of >= 2 columns, >= 1 row, every cell a number. */
static bool table_read(const char *path, csv_table *t) {
    memset(t, 0, sizeof *t);
    t->path = path;
    size_t len = 0;
    t->text = read_all(path, &len);
    if (!t->text) return false;
    if (strlen(t->text) != len) return csv_fail(path, "a NUL byte in the text (not a CSV file?)");
    char *p = t->text;
    char *header = next_line(&p);
    if (!header) return csv_fail(path, "the file is empty (expected a header row of column names)");
    if (!header[0]) return csv_fail(path, "line 1 is blank (expected a header row of column names)");
    int64_t n_cols = 1;
    for (const char *c = header; *c; c++) n_cols += *c == ',';
    t->names = bk__malloc((size_t)n_cols * sizeof *t->names);
    if (!t->names) return csv_fail(path, "out of memory for %" PRId64 " columns", n_cols);
    const char *why = NULL;
    if (!split_line(header, t->names, n_cols, &t->n_cols, &why))
        return csv_fail(path, "line 1 (the header): %s", why);
    if (t->n_cols < 2)
        return csv_fail(path,
                        "line 1 (the header): %" PRId64 " column; need at least one feature and the target",
                        t->n_cols);
    for (int64_t c = 0; c < t->n_cols; c++)
        if (!t->names[c][0])
            return csv_fail(path, "line 1 (the header): column %" PRId64 " has no name", c + 1);
    /* A row kept has n_cols - 1 commas and ends with a newline or the file: n_cols bytes at
     * least, so the rest of the file holds at most rest / n_cols + 1 of them (counting
     * newlines instead would let a wide header and many blank lines ask for far more). */
    int64_t max_rows = (int64_t)((size_t)(t->text + len - p) / (size_t)t->n_cols) + 1;
    int64_t n_cells;
    if (!bk__mul_ok(max_rows, t->n_cols, &n_cells) || (uint64_t)n_cells > SIZE_MAX / 16)
        return csv_fail(path, "too many cells");
    t->cells = bk__malloc((size_t)n_cells * sizeof *t->cells);
    t->lines = bk__malloc((size_t)max_rows * sizeof *t->lines);
    char **row = bk__malloc((size_t)t->n_cols * sizeof *row);
    if (!t->cells || !t->lines || !row) {
        bk__free(row);
        return csv_fail(path, "out of memory for %" PRId64 " cells", n_cells);
    }
    int64_t line_no = 1, blank_at = 0;
    bool ok = true;
    char *s;
    while (ok && (s = next_line(&p))) {
        line_no++;
        const char *q = s;
        while (*q == ' ' || *q == '\t') q++;
        if (!*q) { /* a blank line: fine at the end of the file only */
            if (!blank_at) blank_at = line_no;
            continue;
        }
        if (blank_at) {
            ok = csv_fail(path, "line %" PRId64 ": a blank line between rows", blank_at);
            break;
        }
        int64_t n = 0;
        if (!split_line(s, row, t->n_cols, &n, &why)) {
            ok = csv_fail(path, "line %" PRId64 ": %s", line_no, why);
            break;
        }
        if (n != t->n_cols) {
            ok = csv_fail(path, "line %" PRId64 ": %" PRId64 " cells, but the header has %" PRId64 " columns",
                          line_no, n, t->n_cols);
            break;
        }
        double *out = t->cells + t->n_rows * t->n_cols;
        for (int64_t c = 0; ok && c < t->n_cols; c++) ok = parse_number(t, row[c], line_no, c, &out[c]);
        t->lines[t->n_rows++] = line_no;
    }
    bk__free(row);
    if (ok && t->n_rows == 0) ok = csv_fail(path, "no data rows (only the header, line 1)");
    return ok;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The index of v in the sorted classes, or -1. */
static int64_t class_of(const double *classes, int64_t n, double v) {
    int64_t lo = 0, hi = n - 1;
    while (lo <= hi) {
        int64_t mid = lo + (hi - lo) / 2;
        if (classes[mid] == v) return mid;
        if (classes[mid] < v) lo = mid + 1;
        else hi = mid - 1;
    }
    return -1;
}

/* The class names "%.17g" of the values in one block (the pointer array, then the
 * strings), which the data set owns (ds->owned). */
static bool set_class_names(bk_dataset *ds, const double *classes, int64_t n) {
    size_t size = (size_t)n * sizeof(char *) + (size_t)n * 32;
    char *block = bk__malloc(size);
    if (!block) return false;
    const char **names = (const char **)(void *)block;
    char *text = block + (size_t)n * sizeof(char *);
    for (int64_t k = 0; k < n; k++) {
        snprintf(text + 32 * k, 32, "%.17g", classes[k]);
        names[k] = text + 32 * k;
    }
    ds->owned = block;
    ds->class_names = names;
    return true;
}

/* The data set of table t: features (every column but `target`), and labels (classes
 * non-NULL) or regression targets. */
static bk_dataset *table_dataset(const csv_table *t, int64_t target, const double *classes,
                                 int64_t n_classes) {
    int64_t n = t->n_rows, f = t->n_cols - 1;
    bk_dataset *ds = bk__calloc(1, sizeof *ds);
    if (!ds) goto oom;
    ds->n = n;
    ds->ndim = 1;
    ds->shape[0] = f;
    ds->sample_numel = f;
    ds->x = bk__malloc((size_t)(n * f) * sizeof(float));
    if (!ds->x) goto oom;
    if (classes) {
        ds->y = bk__malloc((size_t)n * sizeof(int64_t));
        if (!ds->y || !set_class_names(ds, classes, n_classes)) goto oom;
        ds->n_classes = (int)n_classes;
    } else {
        ds->targets = bk__malloc((size_t)n * sizeof(float));
        if (!ds->targets) goto oom;
        ds->target_dim = 1;
    }
    for (int64_t i = 0; i < n; i++) {
        const double *row = t->cells + i * t->n_cols;
        float *x = ds->x + i * f;
        for (int64_t c = 0, j = 0; c < t->n_cols; c++)
            if (c != target) x[j++] = (float)row[c];
        if (!classes) {
            ds->targets[i] = (float)row[target];
            continue;
        }
        int64_t k = class_of(classes, n_classes, row[target]);
        if (k < 0) {
            char shown[40];
            snprintf(shown, sizeof shown, "%.17g", row[target]);
            csv_fail(t->path,
                     "line %" PRId64 ", column %" PRId64
                     " (%s): target %s is not a class of the training file",
                     t->lines[i], target + 1, t->names[target], shown);
            bk_dataset_free(ds);
            return NULL;
        }
        ds->y[i] = k;
    }
    return ds;
oom:
    bk_dataset_free(ds);
    csv_fail(t->path, "out of memory for %" PRId64 " rows", n);
    return NULL;
}

/* The target column of t: the one named `target`, or the last. -1 with the message set. */
static int64_t find_target(const csv_table *t, const char *target) {
    if (!target) return t->n_cols - 1;
    for (int64_t c = 0; c < t->n_cols; c++)
        if (!strcmp(t->names[c], target)) return c;
    char list[256];
    size_t k = 0;
    for (int64_t c = 0; c < t->n_cols && k < sizeof list - 8; c++)
        k += (size_t)snprintf(list + k, sizeof list - k, "%s%s", c ? ", " : "", t->names[c]);
    if (k >= sizeof list - 8) snprintf(list + sizeof list - 8, 8, ", ...");
    csv_fail(t->path, "no target column named \"%.64s\" in the header (columns: %s)", target, list);
    return -1;
}

/* The two headers must agree, column by column. */
static bool same_header(const csv_table *a, const csv_table *b) {
    if (a->n_cols != b->n_cols)
        return csv_fail(b->path, "the header has %" PRId64 " columns but the training file %s has %" PRId64,
                        b->n_cols, a->path, a->n_cols);
    for (int64_t c = 0; c < a->n_cols; c++)
        if (strcmp(a->names[c], b->names[c]))
            return csv_fail(b->path, "column %" PRId64 " is \"%.64s\" but in the training file %s \"%.64s\"",
                            c + 1, b->names[c], a->path, a->names[c]);
    return true;
}

/* Whether every target value of t is an integer; else the first that is not in *line. */
static bool targets_integral(const csv_table *t, int64_t target, int64_t *line, double *value) {
    for (int64_t i = 0; i < t->n_rows; i++) {
        double v = t->cells[i * t->n_cols + target];
        if (v != floor(v)) {
            *line = t->lines[i];
            *value = v;
            return false;
        }
    }
    return true;
}

int bk_csv_load(const char *train_path, const char *test_path, const char *target, bk_csv_task task,
                bk_dataset **train, bk_dataset **test) {
    if (train) *train = NULL;
    if (test) *test = NULL;
    if (!train_path || !test_path || !train || !test) {
        bk_set_error("csv: %s is NULL", !train_path  ? "the training path"
                                        : !test_path ? "the test path"
                                        : !train     ? "train (the output)"
                                                     : "test (the output)");
        return -1;
    }
    if ((int)task < 0 || task >= BK_CSV_TASK_COUNT) {
        bk_set_error("csv: task %d is not a bk_csv_task", (int)task);
        return -1;
    }
    csv_table a, b;
    memset(&b, 0, sizeof b);
    double *classes = NULL;
    int rc = -1;
    if (!table_read(train_path, &a) || !table_read(test_path, &b) || !same_header(&a, &b)) goto done;
    int64_t col = find_target(&a, target);
    if (col < 0) goto done;
    int64_t line = 0;
    double v = 0;
    const csv_table *bad = NULL;
    if (!targets_integral(&a, col, &line, &v)) bad = &a;
    else if (!targets_integral(&b, col, &line, &v)) bad = &b;
    if (task == BK_CSV_TASK_AUTO) task = bad ? BK_CSV_TASK_REGRESSION : BK_CSV_TASK_CLASSIFICATION;
    if (task == BK_CSV_TASK_CLASSIFICATION && bad) {
        csv_fail(bad->path,
                 "line %" PRId64 ", column %" PRId64 " (%s): target %g is not an integer (a class)", line,
                 col + 1, a.names[col], v);
        goto done;
    }
    int64_t n_classes = 0;
    if (task == BK_CSV_TASK_CLASSIFICATION) {
        classes = bk__malloc((size_t)a.n_rows * sizeof *classes);
        if (!classes) {
            csv_fail(train_path, "out of memory");
            goto done;
        }
        for (int64_t i = 0; i < a.n_rows; i++) classes[i] = a.cells[i * a.n_cols + col];
        qsort(classes, (size_t)a.n_rows, sizeof *classes, cmp_double);
        for (int64_t i = 0; i < a.n_rows; i++)
            if (i == 0 || classes[i] != classes[n_classes - 1]) classes[n_classes++] = classes[i];
        if (n_classes > BK_CSV_MAX_CLASSES) {
            csv_fail(train_path,
                     "column %" PRId64 " (%s): %" PRId64
                     " distinct target values, more than %d classes (a "
                     "regression target?)",
                     col + 1, a.names[col], n_classes, BK_CSV_MAX_CLASSES);
            goto done;
        }
    }
    *train = table_dataset(&a, col, classes, n_classes);
    *test = *train ? table_dataset(&b, col, classes, n_classes) : NULL;
    if (!*test) {
        bk_dataset_free(*train);
        *train = NULL;
        goto done;
    }
    rc = 0;
done:
    bk__free(classes);
    table_free(&a);
    table_free(&b);
    return rc;
}
