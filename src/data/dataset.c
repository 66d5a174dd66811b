/* dataset.c - in-memory data sets: built from user arrays, normalised, freed.
 *
 * A bk_dataset, its three arrays (x, y, targets) and `owned` are separate heap blocks owned
 * by the data set; bk_dataset_free releases all of them, whoever made the data set (this
 * file, idx.c, csv.c, cifar.c, image_folder.c). class_names points at static strings or into
 * `owned` (names read from a file or a directory), and is never freed by itself.
 */
#include "internal.h"

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>

/* malloc'ed copy of n elements of size `size` (n * size already checked); NULL src -> NULL. */
static void *copy_array(const void *src, int64_t n, size_t size, bool *oom) {
    if (!src) return NULL;
    void *dst = bk__malloc(n > 0 ? (size_t)n * size : 1);
    if (!dst) {
        *oom = true;
        return NULL;
    }
    if (n > 0) memcpy(dst, src, (size_t)n * size);
    return dst;
}

bk_dataset *bk_dataset_from_arrays(int64_t n, int ndim, const int64_t *shape, const float *x,
                                   const int64_t *y, int n_classes, const float *targets,
                                   int64_t target_dim) {
    const char *who = "dataset_from_arrays";
    int64_t sample_numel, x_numel, t_numel = 0;
    if (n < 0) {
        bk_set_error("%s: negative number of samples %" PRId64, who, n);
        return NULL;
    }
    if (ndim > BK_MAX_DIMS - 1) {
        bk_set_error("%s: a sample of rank %d leaves no room for the batch dim (at most %d)", who, ndim,
                     BK_MAX_DIMS - 1);
        return NULL;
    }
    if (!bk__shape_ok(who, ndim, shape, &sample_numel)) return NULL;
    if (!bk__mul_ok(n, sample_numel, &x_numel) || (uint64_t)x_numel > SIZE_MAX / sizeof(float)) {
        bk_set_error("%s: %" PRId64 " samples of %" PRId64 " elements are too many", who, n, sample_numel);
        return NULL;
    }
    if (!x && x_numel > 0) {
        bk_set_error("%s: x is NULL", who);
        return NULL;
    }
    if (y) {
        if (n_classes < 1) {
            bk_set_error("%s: labels given with n_classes %d (must be >= 1)", who, n_classes);
            return NULL;
        }
        for (int64_t i = 0; i < n; i++) {
            if (y[i] < 0 || y[i] >= n_classes) {
                bk_set_error("%s: label %" PRId64 " at index %" PRId64
                             " is not a class (expected "
                             "0..%d)",
                             who, y[i], i, n_classes - 1);
                return NULL;
            }
        }
    } else if (n_classes != 0) {
        bk_set_error("%s: n_classes %d given without labels (y is NULL)", who, n_classes);
        return NULL;
    }
    if (targets) {
        if (target_dim < 1 || !bk__mul_ok(n, target_dim, &t_numel) ||
            (uint64_t)t_numel > SIZE_MAX / sizeof(float)) {
            bk_set_error("%s: bad target_dim %" PRId64 " for %" PRId64 " samples", who, target_dim, n);
            return NULL;
        }
    } else if (target_dim != 0) {
        bk_set_error("%s: target_dim %" PRId64 " given without targets (targets is NULL)", who, target_dim);
        return NULL;
    }

    bool oom = false;
    bk_dataset *ds = bk__calloc(1, sizeof *ds);
    if (!ds) {
        bk_set_error("%s: out of memory", who);
        return NULL;
    }
    ds->n = n;
    ds->ndim = ndim;
    for (int i = 0; i < ndim; i++) ds->shape[i] = shape[i];
    ds->sample_numel = sample_numel;
    ds->n_classes = y ? n_classes : 0;
    ds->target_dim = targets ? target_dim : 0;
    /* x is never NULL in a data set, even with no elements (the loader reads from it). */
    ds->x = bk__malloc(x_numel > 0 ? (size_t)x_numel * sizeof(float) : 1);
    if (!ds->x) oom = true;
    else if (x_numel > 0) memcpy(ds->x, x, (size_t)x_numel * sizeof(float));
    ds->y = copy_array(y, n, sizeof(int64_t), &oom);
    ds->targets = copy_array(targets, t_numel, sizeof(float), &oom);
    if (oom) {
        bk_dataset_free(ds);
        bk_set_error("%s: out of memory for %" PRId64 " samples", who, n);
        return NULL;
    }
    return ds;
}

bool bk__dataset_ok(const bk_dataset *ds, const char *who) {
    if (!ds) {
        bk_set_error("%s: data set is NULL", who);
        return false;
    }
    char why[160] = "";
    int64_t numel = 0, total;
    if (ds->n < 0) snprintf(why, sizeof why, "n %" PRId64 " is negative", ds->n);
    else if (ds->ndim < 0 || ds->ndim > BK_MAX_DIMS - 1)
        snprintf(why, sizeof why, "rank %d is outside 0..%d", ds->ndim, BK_MAX_DIMS - 1);
    else if (!bk__shape_ok(who, ds->ndim, ds->shape, &numel)) {
        snprintf(why, sizeof why, "%s", bk_last_error()); /* names the bad dimension */
    } else if (numel != ds->sample_numel)
        snprintf(why, sizeof why, "sample_numel %" PRId64 " is not the product %" PRId64 " of its shape",
                 ds->sample_numel, numel);
    else if (!bk__mul_ok(ds->n, numel, &total) || (uint64_t)total > SIZE_MAX / sizeof(float))
        snprintf(why, sizeof why, "%" PRId64 " samples of %" PRId64 " values do not fit in memory", ds->n,
                 numel);
    else if (!ds->x && total > 0) snprintf(why, sizeof why, "x NULL with %" PRId64 " samples", ds->n);
    else if (ds->targets && (ds->target_dim < 1 || !bk__mul_ok(ds->n, ds->target_dim, &total)))
        snprintf(why, sizeof why, "target_dim %" PRId64 " with targets", ds->target_dim);
    else if (ds->n_classes < 0 || (ds->y && ds->n_classes < 1))
        snprintf(why, sizeof why, "n_classes %d with%s labels", ds->n_classes, ds->y ? "" : "out");
    if (!why[0]) return true;
    bk_set_error("%s: malformed data set (%s)", who, why);
    return false;
}

void bk_dataset_free(bk_dataset *ds) {
    if (!ds) return;
    bk__free(ds->x);
    bk__free(ds->y);
    bk__free(ds->targets);
    bk__free(ds->owned);
    bk__free(ds);
}

int bk_dataset_normalize(bk_dataset *ds, float mean, float std) {
    if (!bk__dataset_ok(ds, "dataset_normalize")) return -1;
    if (!isfinite(mean) || !isfinite(std) || !(std > 0)) {
        bk_set_error(
            "dataset_normalize: need a finite mean and a finite std > 0 (got mean %g, "
            "std %g)",
            (double)mean, (double)std);
        return -1;
    }
    int64_t numel = ds->n * ds->sample_numel;
    /* A division, not a multiply by 1/std, to match torchvision's Normalize bit for bit. */
    for (int64_t i = 0; i < numel; i++) ds->x[i] = (ds->x[i] - mean) / std;
    return 0;
}

/* Samples (C, rest...): channel c of sample i is the `plane` floats at (i * C + c) * plane.
 * Checks the data set and the per-channel arrays mean and std. */
static bool channels_ok(const bk_dataset *ds, const char *who, const float *mean, const float *std,
                        int64_t *plane) {
    if (!bk__dataset_ok(ds, who)) return false;
    if (!mean || !std) {
        bk_set_error("%s: %s is NULL", who, mean ? "std" : "mean");
        return false;
    }
    if (ds->ndim < 1 || ds->shape[0] < 1) {
        bk_set_error("%s: samples of rank %d have no channel dimension", who, ds->ndim);
        return false;
    }
    *plane = ds->sample_numel / ds->shape[0];
    return true;
}

int bk_dataset_channel_stats(const bk_dataset *ds, float *mean, float *std) {
    const char *who = "dataset_channel_stats";
    int64_t plane;
    if (!channels_ok(ds, who, mean, std, &plane)) return -1;
    if (ds->n == 0 || plane == 0) {
        bk_set_error("%s: no values to average (%" PRId64 " samples)", who, ds->n);
        return -1;
    }
    int64_t C = ds->shape[0];
    double count = (double)ds->n * (double)plane;
    for (int64_t c = 0; c < C; c++) {
        /* two passes: the mean, then the squared deviations (no cancellation) */
        double sum = 0, sq = 0;
        for (int64_t i = 0; i < ds->n; i++) {
            const float *p = ds->x + (i * C + c) * plane;
            for (int64_t k = 0; k < plane; k++) sum += p[k];
        }
        double m = sum / count;
        for (int64_t i = 0; i < ds->n; i++) {
            const float *p = ds->x + (i * C + c) * plane;
            for (int64_t k = 0; k < plane; k++) sq += ((double)p[k] - m) * ((double)p[k] - m);
        }
        mean[c] = (float)m;
        std[c] = (float)sqrt(sq / count);
    }
    return 0;
}

int bk_dataset_normalize_channels(bk_dataset *ds, const float *mean, const float *std) {
    const char *who = "dataset_normalize_channels";
    int64_t plane;
    if (!channels_ok(ds, who, mean, std, &plane)) return -1;
    int64_t C = ds->shape[0];
    for (int64_t c = 0; c < C; c++) {
        if (!isfinite(mean[c]) || !isfinite(std[c]) || !(std[c] > 0)) {
            bk_set_error("%s: channel %" PRId64
                         " needs a finite mean and a finite std > 0 (got mean %g, std %g)",
                         who, c, (double)mean[c], (double)std[c]);
            return -1;
        }
    }
    for (int64_t i = 0; i < ds->n; i++)
        for (int64_t c = 0; c < C; c++) {
            float *p = ds->x + (i * C + c) * plane;
            /* a division, as bk_dataset_normalize and torchvision's Normalize */
            for (int64_t k = 0; k < plane; k++) p[k] = (p[k] - mean[c]) / std[c];
        }
    return 0;
}

int bk_dataset_feature_stats(const bk_dataset *ds, float *mean, float *std) {
    const char *who = "dataset_feature_stats";
    if (!bk__dataset_ok(ds, who)) return -1;
    if (!mean || !std) {
        bk_set_error("%s: %s is NULL", who, mean ? "std" : "mean");
        return -1;
    }
    if (ds->n < 1) {
        bk_set_error("%s: the data set has no samples", who);
        return -1;
    }
    int64_t n = ds->n, f = ds->sample_numel;
    /* two passes in double: the mean, then the squared deviations (no cancellation) */
    for (int64_t j = 0; j < f; j++) {
        double sum = 0, sq = 0;
        for (int64_t i = 0; i < n; i++) sum += (double)ds->x[i * f + j];
        double m = sum / (double)n;
        for (int64_t i = 0; i < n; i++) {
            double d = (double)ds->x[i * f + j] - m;
            sq += d * d;
        }
        double sd = sqrt(sq / (double)n);
        mean[j] = (float)m;
        std[j] = sd > 0 && (float)sd > 0 ? (float)sd : 1.0f;
    }
    return 0;
}

int bk_dataset_standardize(bk_dataset *ds, const float *mean, const float *std) {
    const char *who = "dataset_standardize";
    if (!bk__dataset_ok(ds, who)) return -1;
    if (!mean || !std) {
        bk_set_error("%s: %s is NULL", who, mean ? "std" : "mean");
        return -1;
    }
    int64_t f = ds->sample_numel;
    for (int64_t j = 0; j < f; j++)
        if (!isfinite(mean[j]) || !isfinite(std[j]) || !(std[j] > 0)) {
            bk_set_error("%s: feature %" PRId64
                         " needs a finite mean and a finite std > 0 (got mean %g, std %g)",
                         who, j, (double)mean[j], (double)std[j]);
            return -1;
        }
    /* a division, as bk_dataset_normalize and sklearn's StandardScaler.transform */
    for (int64_t i = 0; i < ds->n; i++)
        for (int64_t j = 0; j < f; j++) ds->x[i * f + j] = (ds->x[i * f + j] - mean[j]) / std[j];
    return 0;
}
