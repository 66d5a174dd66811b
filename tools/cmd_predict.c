/* cmd_predict.c - `brick predict FILE IMAGE...` (PNG, JPEG, PGM) or
 * `brick predict FILE --idx IMAGES [--index I] [--count N]`: the top-k classes of each
 * image with their softmax probabilities; `brick predict FILE --table DIR`: the same for
 * rows of a CSV table's test.csv (standardised as in training), or the predicted value of
 * a regression model.
 *
 * Images go through bk_image_load (src/io/image.c): pixels scaled to [0, 1] by the
 * format's maxval, as bk_idx_load scales IDX bytes by 255, so a PGM cut out of the data set
 * gives exactly the training inputs; other sizes and colours are converted as torchvision's
 * Grayscale and Resize do, and predict says so on stderr.
 */
#define _XOPEN_SOURCE 700 /* strdup */

#include "cli.h"

#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static void help(FILE *f) {
    fprintf(f,
            "usage: brick predict FILE IMAGE...\n"
            "       brick predict FILE --idx IMAGES [--labels LABELS] [--index I] [--count N]\n"
            "       brick predict FILE --table DIR [--index I] [--count N]\n"
            "\n"
            "Classifies images with a model file written by `brick train` and prints the top\n"
            "classes with their probabilities (softmax). Images are PNG or JPEG (with\n"
            "libstb at build time) or PGM (P2, P5; 8 or 16 bit) files of any size, grey or\n"
            "colour: converted to the model's channels and resized to its input as\n"
            "torchvision's Grayscale + Resize do (said on stderr); or images of an IDX file.\n"
            "\n"
            "options:\n"
            "  --top K           how many classes to show per image (default 3)\n"
            "  --idx IMAGES      an IDX images file instead of PGM files\n"
            "  --labels LABELS   its labels (default: the file next to it named\n"
            "                    *-labels-idx1-ubyte[.gz]); shows the true class and accuracy\n"
            "  --table DIR       rows of DIR/test.csv, for a model trained on that CSV table\n"
            "                    (docs/data.md): classes, or a regression's value, and the truth\n"
            "  --index I         the first image of the IDX file or row of the table (default 0)\n"
            "  --count N         how many images (default 1)\n"
            "  --invert          use 1 - x for each pixel (a dark object on a light "
            "background)\n" CLI_PLAIN_HELP "  -h, --help        this help\n");
}

static const char *const CHANNEL_NAMES[5] = {"", "grey", "grey+alpha", "RGB", "RGBA"};

/* Reads image `path` as the model's input (C, H, W) into out (C*H*W floats), says on stderr
 * what it converted, and warns when it looks inverted against dark-background training
 * data. 0, or -1 with the library's error. */
static int image_read(const char *path, int C, int64_t H, int64_t W, bool invert, float *out) {
    bk_image_info info;
    bk_tensor *t = bk_image_load(path, C, H, W, &info);
    if (!t) return -1;
    int64_t n = t->numel;
    for (int64_t k = 0; k < n; k++) out[k] = invert ? 1.0f - t->data[k] : t->data[k];
    bk_tensor_free(t);
    bool recolour = (C == 1) != (info.channels <= 2) || info.channels == 2 || info.channels == 4;
    bool resized = info.height != H || info.width != W;
    if (recolour || resized) {
        fprintf(stderr, "%s: %s: %s %" PRId64 "x%" PRId64 " %s %d-bit ->", cli_prog, path, info.format,
                info.width, info.height, CHANNEL_NAMES[info.channels], info.bits);
        if (recolour)
            fprintf(stderr, " %s%s", C == 1 ? "grey (torchvision Grayscale)" : "RGB", resized ? "," : "");
        if (resized)
            fprintf(stderr, " resized to %" PRId64 "x%" PRId64 " (bilinear, antialiased: torchvision Resize)",
                    W, H);
        fprintf(stderr, "\n");
    }
    double border = invert ? 1.0 - info.border_mean : info.border_mean;
    if (C == 1 && border > 0.5) /* grey models: trained on (Fashion-)MNIST-like data */
        fprintf(stderr,
                "%s: %s: warning: the image looks inverted relative to the training data: its border is "
                "light (mean %.2f) where Fashion-MNIST's backgrounds are dark; --invert flips it (x -> 1 - "
                "x)\n",
                cli_prog, path, border);
    return 0;
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

/* --table DIR: rows index..index+count-1 of DIR/test.csv, standardised with the model's
 * statistics; classes with their probabilities, or a regression's value, beside the truth. */
static int predict_table(const char *path, const cli_plain *plain, const char *dir, int64_t top,
                         int64_t index, int64_t count) {
    if (!cli_is_dir(dir) || !cli_has_csv(dir))
        return cli_usage("--table %s: no train.csv and test.csv there", dir);
    cli_model cm;
    int rc = cli_model_open(path, plain, &cm);
    if (rc) return rc;
    bk_dataset *train = NULL, *ds = NULL;
    if (!cm.tab.on) rc = cli_fail("%s: the model was not trained on a CSV table", path);
    else rc = cli_tabular_load(dir, &cm.tab, false, &train, &ds);
    if (!rc && (index >= ds->n || count > ds->n - index))
        rc = cli_usage("--index %" PRId64 " --count %" PRId64 " is past the end of %s/test.csv (%" PRId64
                       " rows)",
                       index, count, dir, ds->n);
    bk_tensor *out = NULL;
    if (!rc) {
        bool prev = bk_set_grad_enabled(false);
        bk_module_train(cm.m, false);
        out = bk_forward(cm.m, bk_from_data(2, (int64_t[]){count, ds->sample_numel},
                                            ds->x + index * ds->sample_numel));
        if (out && !cm.tab.regression) out = bk_softmax(out, 1); /* (count, classes) */
        bk_set_grad_enabled(prev);
        int64_t want = cm.tab.regression ? 1 : cm.n_classes;
        if (!out || out->numel != count * want)
            rc = out ? cli_fail("%s: the model's output is not (N, %" PRId64 ")", path, want)
                     : cli_fail(NULL);
    }
    double sq = 0;
    int64_t correct = 0;
    for (int64_t i = 0; !rc && i < count; i++) {
        char label[32];
        snprintf(label, sizeof label, "#%" PRId64, index + i);
        if (!cm.tab.regression) {
            const float *row = out->data + i * cm.n_classes;
            print_top(&cm, label, row, cm.n_classes, (int)top, ds->y[index + i]);
            int best = 0;
            for (int c = 1; c < cm.n_classes; c++)
                if (row[c] > row[best]) best = c;
            correct += best == ds->y[index + i];
            continue;
        }
        double s = (double)cm.tab.target_std, m = (double)cm.tab.target_mean;
        double got = (double)out->data[i] * s + m, truth = (double)ds->targets[index + i] * s + m;
        printf("%s %.6g (true: %.6g)\n", label, got, truth);
        sq += (got - truth) * (got - truth);
    }
    if (!rc && count > 1 && cm.tab.regression)
        printf("rmse %.4f (%" PRId64 " rows)\n", sqrt(sq / (double)count), count);
    else if (!rc && count > 1)
        printf("accuracy %.4f (%" PRId64 "/%" PRId64 ")\n", (double)correct / (double)count, correct, count);
    bk_arena_reset(NULL);
    bk_dataset_free(train);
    bk_dataset_free(ds);
    cli_model_free(&cm);
    return rc;
}

int cmd_predict(int argc, char **argv) {
    const char *idx = NULL, *labels = NULL, *table = NULL;
    int64_t top = 3, index = 0, count = 1;
    bool invert = false;
    cli_plain plain = CLI_PLAIN_DEFAULTS;
    cli_option opts[] = {
        {"--top", CLI_INT, &top, 1, CLI_MAX_CLASSES, false, NULL},
        {"--idx", CLI_STR, &idx, 0, 0, false, NULL},
        {"--labels", CLI_STR, &labels, 0, 0, false, NULL},
        {"--index", CLI_INT, &index, 0, 9e18, false, NULL},
        {"--count", CLI_INT, &count, 1, 1e6, false, NULL},
        {"--invert", CLI_FLAG, &invert, 0, 0, false, NULL},
        {"--table", CLI_STR, &table, 0, 0, false, NULL},
        CLI_OPTS_PLAIN(&plain),
    };
    const char *pos[256];
    int n_pos;
    int rc = cli_parse(argc, argv, opts, CLI_COUNT(opts), pos, CLI_COUNT(pos), &n_pos, help);
    if (rc) return rc < 0 ? CLI_OK : rc;
    if (n_pos < 1) return cli_usage("expected a model FILE (see --help)");
    if (table && (idx || n_pos > 1 || invert || opts[2].given))
        return cli_usage("--table DIR goes alone (no IMAGE files, --idx, --labels or --invert)");
    if (table) return cli_parse_only ? CLI_OK : predict_table(pos[0], &plain, table, top, index, count);
    if (!idx && n_pos < 2) return cli_usage("expected IMAGE files or --idx IMAGES (see --help)");
    if (idx && n_pos > 1) return cli_usage("give either IMAGE files or --idx, not both");
    if (!idx && (opts[2].given || opts[3].given || opts[4].given))
        return cli_usage("--labels, --index and --count go with --idx");
    if (idx && invert) return cli_usage("--invert goes with IMAGE files");
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
        int C = cm.in_ndim == 3 ? (int)cm.in_shape[0] : cm.in_ndim == 2 ? 1 : 0;
        if (C != 1 && C != 3) {
            rc = cli_fail("%s: the model takes inputs of shape (%s), not grey or RGB images", pos[0],
                          cm.in_ndim == 3 ? "C != 1, 3, H, W" : "not (C, H, W)");
            goto done;
        }
        x = malloc((size_t)(n * numel) * sizeof *x);
        if (!x) {
            rc = cli_fail("out of memory");
            goto done;
        }
        int64_t W = cm.in_shape[cm.in_ndim - 1], H = cm.in_shape[cm.in_ndim - 2];
        for (int64_t i = 0; i < n; i++)
            if (image_read(pos[i + 1], C, H, W, invert, x + i * numel) != 0) {
                rc = cli_fail(NULL);
                goto done;
            }
    }
    shape[0] = n;
    if (cm.prep.n_norm) { /* the training's normalisation (brick.normalize), on the inputs */
        bk_dataset view = {.n = n, .ndim = cm.in_ndim, .sample_numel = numel};
        view.x = x ? x : ds->x + index * numel;
        memcpy(view.shape, cm.in_shape, (size_t)cm.in_ndim * sizeof *view.shape);
        if ((rc = cli_prep_normalize(&cm.prep, &view, pos[0]))) goto done;
    }
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
