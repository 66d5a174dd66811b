/* cmd_predict.c - `brick predict FILE IMAGE...` (binary PGM images) or
 * `brick predict FILE --idx IMAGES [--index I] [--count N]`: the top-k classes of each
 * image with their softmax probabilities.
 *
 * Pixels are scaled to [0, 1] by the image's maxval, as bk_idx_load scales IDX bytes by
 * 255, so a PGM cut out of the data set gives exactly the training inputs.
 */
#define _XOPEN_SOURCE 700 /* strdup */

#include "cli.h"

#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#define PGM_MAX_BYTES (64u << 20)

static void help(FILE *f) {
    fprintf(f,
            "usage: brick predict FILE IMAGE.pgm...\n"
            "       brick predict FILE --idx IMAGES [--labels LABELS] [--index I] [--count N]\n"
            "\n"
            "Classifies images with a model file written by `brick train` and prints the top\n"
            "classes with their probabilities (softmax). Images are binary PGM files (P5,\n"
            "8-bit, the model's width and height: 28x28 for Fashion-MNIST), or images of an\n"
            "IDX file (plain or .gz).\n"
            "\n"
            "options:\n"
            "  --top K           how many classes to show per image (default 3)\n"
            "  --idx IMAGES      an IDX images file instead of PGM files\n"
            "  --labels LABELS   its labels (default: the file next to it named\n"
            "                    *-labels-idx1-ubyte[.gz]); shows the true class and accuracy\n"
            "  --index I         the first image of the IDX file (default 0)\n"
            "  --count N         how many images (default 1)\n" CLI_PLAIN_HELP
            "  -h, --help        this help\n");
}

/* Skips whitespace and # comments of a PGM header. */
static size_t pgm_space(const unsigned char *p, size_t n, size_t i) {
    for (;;) {
        while (i < n && (p[i] == ' ' || p[i] == '\t' || p[i] == '\n' || p[i] == '\r')) i++;
        if (i < n && p[i] == '#') {
            while (i < n && p[i] != '\n') i++;
            continue;
        }
        return i;
    }
}

static bool pgm_int(const unsigned char *p, size_t n, size_t *i, long *out) {
    *i = pgm_space(p, n, *i);
    long v = 0;
    size_t start = *i;
    while (*i < n && p[*i] >= '0' && p[*i] <= '9' && v < 100000) v = v * 10 + (p[(*i)++] - '0');
    *out = v;
    return *i > start && v > 0 && v < 100000;
}

/* Reads a P5 PGM of exactly w x h pixels into out (w*h floats in [0, 1]). 0, or -1 with
 * a message naming the file. */
static int pgm_read(const char *path, long want_w, long want_h, float *out) {
    FILE *f = bk_file_open_read(path); /* a regular file only: a FIFO would block */
    if (!f) return -1;
    unsigned char *buf = malloc(PGM_MAX_BYTES);
    size_t n = buf ? fread(buf, 1, PGM_MAX_BYTES, f) : 0;
    bool read_error = ferror(f);
    fclose(f);
    int rc = -1;
    long w, h, maxval;
    size_t i = 2;
    if (!buf || read_error) {
        bk_set_error("%s: %s", path, buf ? "read error" : "out of memory");
    } else if (n < 2 || buf[0] != 'P' || buf[1] != '5') {
        bk_set_error("%s: not a binary PGM image (it must start with \"P5\")", path);
    } else if (!pgm_int(buf, n, &i, &w) || !pgm_int(buf, n, &i, &h) || !pgm_int(buf, n, &i, &maxval) ||
               i >= n) {
        bk_set_error("%s: malformed PGM header (width, height, maxval)", path);
    } else if (maxval > 255) {
        bk_set_error("%s: maxval %ld: only 8-bit PGM images are read", path, maxval);
    } else if (w != want_w || h != want_h) {
        bk_set_error("%s: the image is %ldx%ld but the model takes %ldx%ld", path, w, h, want_w, want_h);
    } else if (n - i - 1 < (size_t)(w * h)) {
        bk_set_error("%s: truncated: %zu pixel bytes of %ld", path, n - i - 1, w * h);
    } else {
        const unsigned char *px = buf + i + 1; /* one whitespace byte ends the header */
        for (long k = 0; k < w * h; k++) out[k] = (float)px[k] / (float)maxval;
        rc = 0;
    }
    free(buf);
    return rc;
}

/* Prints "<label>: <class> <p>, ..." for the top k of probabilities row p (C values). */
static void print_top(cli_model *cm, const char *label, const float *p, int C, int k, int64_t truth) {
    printf("%s", label);
    if (truth >= 0) printf(" (true: %s)", cli_class_name(cm, (int)truth));
    printf(":");
    bool used[CLI_MAX_CLASSES] = {false};
    for (int r = 0; r < k && r < C; r++) {
        int best = -1;
        for (int c = 0; c < C; c++)
            if (!used[c] && (best < 0 || p[c] > p[best])) best = c;
        used[best] = true;
        printf("%s %s %.4f", r ? "," : "", cli_class_name(cm, best), (double)p[best]);
    }
    printf("\n");
}

/* The labels file next to an images file: "...images-idx3-ubyte" -> "...labels-idx1-ubyte". */
static char *labels_for(const char *images) {
    const char *at = strstr(images, "images-idx3");
    if (!at) return NULL;
    char *out = strdup(images);
    if (out) memcpy(out + (at - images), "labels-idx1", 11);
    return out;
}

int cmd_predict(int argc, char **argv) {
    const char *idx = NULL, *labels = NULL;
    int64_t top = 3, index = 0, count = 1;
    cli_plain plain = CLI_PLAIN_DEFAULTS;
    cli_option opts[] = {
        {"--top", CLI_INT, &top, 1, CLI_MAX_CLASSES, false, NULL},
        {"--idx", CLI_STR, &idx, 0, 0, false, NULL},
        {"--labels", CLI_STR, &labels, 0, 0, false, NULL},
        {"--index", CLI_INT, &index, 0, 9e18, false, NULL},
        {"--count", CLI_INT, &count, 1, 1e6, false, NULL},
        CLI_OPTS_PLAIN(&plain),
    };
    const char *pos[256];
    int n_pos;
    int rc = cli_parse(argc, argv, opts, CLI_COUNT(opts), pos, CLI_COUNT(pos), &n_pos, help);
    if (rc) return rc < 0 ? CLI_OK : rc;
    if (n_pos < 1) return cli_usage("expected a model FILE (see --help)");
    if (!idx && n_pos < 2) return cli_usage("expected IMAGE files or --idx IMAGES (see --help)");
    if (idx && n_pos > 1) return cli_usage("give either IMAGE files or --idx, not both");
    if (!idx && (opts[2].given || opts[3].given || opts[4].given))
        return cli_usage("--labels, --index and --count go with --idx");
    if ((rc = cli_plain_check(&plain, opts, CLI_COUNT(opts)))) return rc;
    if (cli_parse_only) return CLI_OK;
    for (int i = 0; i < n_pos; i++)
        if ((rc = cli_need_file(NULL, pos[i]))) return rc;
    if (idx && (rc = cli_need_file("--idx", idx))) return rc;
    char *derived = idx && !labels ? labels_for(idx) : NULL;
    if (idx && !labels) {
        if (!derived || !cli_is_file(derived)) {
            free(derived);
            return cli_usage("--idx %s: found no labels file next to it; name it with --labels", idx);
        }
        labels = derived;
    }
    if (labels && (rc = cli_need_file("--labels", labels))) return rc;

    cli_model cm;
    if ((rc = cli_model_open(pos[0], &plain, &cm))) {
        free(derived);
        return rc;
    }
    bk_dataset *ds = NULL;
    int64_t numel = 1, n;
    for (int d = 0; d < cm.in_ndim; d++) numel *= cm.in_shape[d];
    int64_t shape[BK_MAX_DIMS];
    for (int d = 0; d < cm.in_ndim; d++) shape[d + 1] = cm.in_shape[d];
    float *x = NULL;
    if (idx) {
        ds = bk_idx_load(idx, labels, cm.n_classes);
        if (!ds) {
            rc = cli_fail(NULL);
            goto done;
        }
        if (ds->sample_numel != numel) {
            rc = cli_fail("%s: images of %" PRId64 " pixels, but the model takes %" PRId64, idx,
                          ds->sample_numel, numel);
            goto done;
        }
        if (index >= ds->n || count > ds->n - index) {
            rc = cli_usage("--index %" PRId64 " --count %" PRId64 " is past the end of %s (%" PRId64
                           " images)",
                           index, count, idx, ds->n);
            goto done;
        }
        n = count;
    } else {
        n = n_pos - 1;
        if (cm.in_ndim < 2) {
            rc = cli_fail("%s: the model takes inputs of rank %d, not images", pos[0], cm.in_ndim);
            goto done;
        }
        x = malloc((size_t)(n * numel) * sizeof *x);
        if (!x) {
            rc = cli_fail("out of memory");
            goto done;
        }
        long W = (long)cm.in_shape[cm.in_ndim - 1], H = (long)cm.in_shape[cm.in_ndim - 2];
        for (int64_t i = 0; i < n; i++)
            if (pgm_read(pos[i + 1], W, H, x + i * numel) != 0) {
                rc = cli_fail(NULL);
                goto done;
            }
    }
    shape[0] = n;
    bool prev = bk_set_grad_enabled(false);
    bk_module_train(cm.m, false);
    bk_tensor *in = bk_from_data(cm.in_ndim + 1, shape, x ? x : ds->x + index * numel);
    bk_tensor *p = bk_softmax(bk_forward(cm.m, in), 1); /* (n, classes) */
    bk_set_grad_enabled(prev);
    if (!p || p->ndim != 2 || p->shape[1] != cm.n_classes) {
        rc = p ? cli_fail("%s: the model's output is not (N, %d)", pos[0], cm.n_classes) : cli_fail(NULL);
        bk_arena_reset(NULL);
        goto done;
    }
    int64_t correct = 0;
    for (int64_t i = 0; i < n; i++) {
        char label[PATH_MAX + 32];
        const float *row = p->data + i * cm.n_classes;
        int64_t truth = ds && ds->y ? ds->y[index + i] : -1;
        if (idx) snprintf(label, sizeof label, "#%" PRId64, index + i);
        else snprintf(label, sizeof label, "%s", pos[i + 1]);
        print_top(&cm, label, row, cm.n_classes, (int)top, truth);
        int best = 0;
        for (int c = 1; c < cm.n_classes; c++)
            if (row[c] > row[best]) best = c;
        correct += best == truth;
    }
    if (ds && ds->y && n > 1)
        printf("accuracy %.4f (%" PRId64 "/%" PRId64 ")\n", (double)correct / (double)n, correct, n);
    bk_arena_reset(NULL);
done:
    free(x);
    free(derived);
    bk_dataset_free(ds);
    cli_model_free(&cm);
    return rc;
}
