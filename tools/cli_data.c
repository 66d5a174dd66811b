/* cli_data.c - the data sets behind --data DIR and how their samples are prepared.
 *
 * Formats, told apart by what DIR holds (cli_data_format), in this order:
 *   csv            train.csv and test.csv (read by data_csv.c's cli_tabular_load)
 *   fashion-mnist  train-images-idx3-ubyte[.gz] and the other IDX files (bk_fashion_mnist_load)
 *   cifar10        data_batch_1.bin (bk_cifar10_load)
 *   image-folder   train/ and test/, each with one folder per class (bk_image_folder_load);
 *                  the test split takes the training split's classes, channels and size
 * Preparation (cli_prep), recorded in model files and checkpoints so that eval, predict
 * and a resumed run prepare their samples the same way:
 *   brick.normalize  "M1,M2,M3/S1,S2,S3": x[c] = (x[c] - Mc) / Sc (torchvision's Normalize),
 *                    the values --normalize gave or computed on the training split
 *   brick.augment    "crop=P,flip": random crop with padding P and horizontal flip of
 *                    training batches (bk_loader_set_augment); the padding is black in
 *                    the images' own values (fill = -M / S), as RandomCrop before Normalize
 */
#include "cli.h"

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

const char *cli_data_format(const char *dir) {
    char path[4096];
    if (cli_has_csv(dir)) return "csv";
    if (cli_has_fashion_file(dir)) return "fashion-mnist"; /* cli_need_data names any missing */
    snprintf(path, sizeof path, "%s/data_batch_1.bin", dir);
    if (cli_is_file(path)) return "cifar10";
    snprintf(path, sizeof path, "%s/test_batch.bin", dir);
    if (cli_is_file(path)) return "cifar10";
    snprintf(path, sizeof path, "%s/train", dir);
    if (cli_is_dir(path)) return "image-folder";
    snprintf(path, sizeof path, "%s/test", dir);
    if (cli_is_dir(path)) return "image-folder";
    return NULL;
}

int cli_need_data(const char *dir, const char *why, bool train) {
    if (!cli_is_dir(dir)) {
        if (!why) return cli_usage("--data %s: no such directory", dir);
        return cli_usage("data directory %s (%s): no such directory", dir, why);
    }
    char csv[2][4096];
    snprintf(csv[0], sizeof csv[0], "%s/train.csv", dir);
    snprintf(csv[1], sizeof csv[1], "%s/test.csv", dir);
    if (cli_is_file(csv[0]) != cli_is_file(csv[1]))
        return cli_usage("--data %s: a CSV table needs both train.csv and test.csv; %s is missing", dir,
                         cli_is_file(csv[0]) ? "test.csv" : "train.csv");
    const char *format = cli_data_format(dir);
    if (!format)
        return cli_usage(
            "--data %s: no data set there: expected Fashion-MNIST IDX files (train-images-idx3-ubyte[.gz], "
            "...), CIFAR-10 batches (data_batch_1.bin, ..., test_batch.bin), an image folder "
            "(train/<class>/, test/<class>/) or a CSV table (train.csv, test.csv)",
            dir);
    if (!strcmp(format, "fashion-mnist")) return cli_need_fashion_mnist(dir, train);
    return CLI_OK; /* the other readers name what they miss */
}

int cli_data_load(const char *dir, int channels, int64_t height, int64_t width, const char *const *classes,
                  int n_classes, bk_dataset **train, bk_dataset **test) {
    if (train) *train = NULL;
    *test = NULL;
    int need = cli_need_data(dir, NULL, train != NULL);
    if (need) return need;
    const char *format = cli_data_format(dir);
    if (!strcmp(format, "csv")) return cli_fail("%s: a CSV table is read by cli_tabular_load", dir);
    bool folder = !strcmp(format, "image-folder");
    if (!folder && train && (channels || height))
        return cli_usage("--channels and --image-size are for image folders; %s holds %s", dir, format);
    if (folder) {
        char path[4096];
        snprintf(path, sizeof path, "%s/train", dir);
        if (train && !(*train = bk_image_folder_load(path, NULL, 0, channels, height, width)))
            return cli_fail(NULL);
        if (train) {
            classes = (*train)->class_names;
            n_classes = (*train)->n_classes;
            channels = (int)(*train)->shape[0];
            height = (*train)->shape[1];
            width = (*train)->shape[2];
        }
        snprintf(path, sizeof path, "%s/test", dir);
        *test = bk_image_folder_load(path, classes, n_classes, channels, height, width);
    } else {
        bool cifar = !strcmp(format, "cifar10");
        if (train && !(*train = cifar ? bk_cifar10_load(dir, true) : bk_fashion_mnist_load(dir, true)))
            return cli_fail(NULL);
        *test = cifar ? bk_cifar10_load(dir, false) : bk_fashion_mnist_load(dir, false);
    }
    int rc = CLI_OK;
    if (!*test) rc = cli_fail(NULL);
    else if (train && (*train)->n_classes > CLI_MAX_CLASSES)
        rc = cli_fail("%s: %d classes, more than the %d brick's files hold", dir, (*train)->n_classes,
                      CLI_MAX_CLASSES);
    if (rc && train) {
        bk_dataset_free(*train);
        *train = NULL;
    }
    return rc;
}

/* "v1,v2,..." into out (at most CLI_NORM_MAX finite values); the count, or -1. */
static int parse_floats(const char *s, size_t len, float *out) {
    int n = 0;
    char buf[64];
    while (len > 0) {
        const char *comma = memchr(s, ',', len);
        size_t k = comma ? (size_t)(comma - s) : len;
        if (n == CLI_NORM_MAX || k == 0 || k >= sizeof buf) return -1;
        memcpy(buf, s, k);
        buf[k] = '\0';
        char *end;
        double v = strtod(buf, &end);
        if (*end || !isfinite(v) || fabs(v) > 1e30) return -1;
        out[n++] = (float)v;
        s += k + (comma != NULL);
        len -= k + (comma != NULL);
        if (comma && len == 0) return -1; /* a trailing comma */
    }
    return n;
}

int cli_prep_parse_normalize(const char *s, cli_prep *p) {
    const char *slash = strchr(s, '/');
    float mean[CLI_NORM_MAX], std[CLI_NORM_MAX];
    int nm = slash ? parse_floats(s, (size_t)(slash - s), mean) : -1;
    int ns = slash ? parse_floats(slash + 1, strlen(slash + 1), std) : -1;
    if (nm < 1 || nm != ns) return -1;
    for (int c = 0; c < nm; c++)
        if (!(std[c] > 0)) return -1;
    p->n_norm = nm;
    memcpy(p->mean, mean, sizeof mean);
    memcpy(p->std, std, sizeof std);
    return 0;
}

int cli_prep_parse_augment(const char *s, cli_prep *p) {
    p->crop_padding = 0;
    p->hflip = false;
    if (!strcmp(s, "none")) return 0;
    for (const char *w = s; *w;) {
        size_t k = strcspn(w, ",");
        int64_t pad;
        char num[24];
        if (k == 4 && !strncmp(w, "flip", 4)) {
            p->hflip = true;
        } else if (k == 4 && !strncmp(w, "crop", 4)) {
            p->crop_padding = 4; /* torchvision's CIFAR recipe: RandomCrop(32, padding=4) */
        } else if (k > 5 && k - 5 < sizeof num && !strncmp(w, "crop=", 5)) {
            memcpy(num, w + 5, k - 5);
            num[k - 5] = '\0';
            if (!cli_parse_i64(num, &pad) || pad < 1 || pad > 1024) return -1;
            p->crop_padding = pad;
        } else {
            return -1;
        }
        w += k;
        if (*w == ',' && !*++w) return -1;
    }
    return 0;
}

void cli_prep_format(const cli_prep *p, char *norm, size_t nn, char *aug, size_t na) {
    size_t k = 0;
    norm[0] = '\0';
    for (int i = 0; i < 2 * p->n_norm && k < nn; i++) {
        float v = i < p->n_norm ? p->mean[i] : p->std[i - p->n_norm];
        const char *sep = i == 0 ? "" : i == p->n_norm ? "/" : ",";
        k += (size_t)snprintf(norm + k, nn - k, "%s%.9g", sep, (double)v);
    }
    snprintf(aug, na, "%s", "none");
    if (p->crop_padding && p->hflip) snprintf(aug, na, "crop=%" PRId64 ",flip", p->crop_padding);
    else if (p->crop_padding) snprintf(aug, na, "crop=%" PRId64, p->crop_padding);
    else if (p->hflip) snprintf(aug, na, "flip");
}

int cli_prep_normalize(const cli_prep *p, bk_dataset *ds, const char *what) {
    if (!p->n_norm) return CLI_OK;
    int64_t C = ds->ndim ? ds->shape[0] : 0;
    float mean[CLI_NORM_MAX], std[CLI_NORM_MAX];
    if (p->n_norm != 1 && p->n_norm != C)
        return cli_usage("%s: the normalisation has %d values per statistic but the samples have %" PRId64
                         " channels",
                         what, p->n_norm, C);
    if (C > CLI_NORM_MAX) return cli_usage("%s: %" PRId64 " channels, more than %d", what, C, CLI_NORM_MAX);
    for (int64_t c = 0; c < C; c++) {
        mean[c] = p->mean[p->n_norm == 1 ? 0 : c];
        std[c] = p->std[p->n_norm == 1 ? 0 : c];
    }
    return bk_dataset_normalize_channels(ds, mean, std) ? cli_fail(NULL) : CLI_OK;
}

int cli_prep_from_meta(const char *path, const bk_safetensors *st, const char *in_shape, cli_prep *p) {
    memset(p, 0, sizeof *p);
    int ndim = 0;
    int64_t shape[BK_MAX_DIMS];
    const char *norm = bk_safetensors_meta(st, "brick.normalize");
    const char *aug = bk_safetensors_meta(st, "brick.augment");
    if (norm && cli_prep_parse_normalize(norm, p) != 0)
        return cli_fail(
            "%s: metadata brick.normalize \"%.80s\" is not MEANS/STDS (e.g. 0.5,0.5,0.5/0.25,0.25,0.25)",
            path, norm);
    if (p->n_norm > 1 &&
        (!in_shape || !cli_parse_shape(in_shape, &ndim, shape) || ndim < 1 || shape[0] != p->n_norm))
        return cli_fail(
            "%s: metadata brick.normalize \"%.80s\" has %d values per statistic, but the samples "
            "(brick.in_shape %.40s) have another number of channels",
            path, norm, p->n_norm, in_shape ? in_shape : "missing");
    if (aug && cli_prep_parse_augment(aug, p) != 0)
        return cli_fail("%s: metadata brick.augment \"%.80s\" is not crop[=P],flip or none", path, aug);
    return CLI_OK;
}
