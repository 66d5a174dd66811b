/* fuzz_idx.c - the IDX (MNIST) reader, plain and gzip.
 *
 * The input holds two files and a class count:
 *   byte 0        n_classes - 1 (so 1..256)
 *   bytes 1..2    L, little-endian: the images file is the next min(L, rest) bytes
 *   the rest      the labels file
 * Either file may be gzip-compressed (detected from its content, as the reader does).
 * bk_idx_load must fail with an error naming a file, or return a data set whose sizes
 * agree with the files and whose pixels are in [0, 1] and labels below n_classes; a loader
 * over it then yields its first batch.
 */
#ifndef _XOPEN_SOURCE
#define _XOPEN_SOURCE 700 /* mkdtemp */
#endif
#include "fuzz.h"

FUZZ_TARGET(idx) {
    if (size < 3) return 0;
    fuzz_begin();
    int n_classes = data[0] + 1;
    size_t len = (size_t)data[1] | (size_t)data[2] << 8;
    if (len > size - 3) len = size - 3;
    const char *images = fuzz_file("in0", data + 3, len);
    const char *labels = fuzz_file("in1", data + 3 + len, size - 3 - len);
    bk_dataset *ds = bk_idx_load(images, labels, n_classes);
    if (!ds) {
        FUZZ_ASSERT(strstr(bk_last_error(), "idx: "));
        fuzz_end();
        return 0;
    }
    FUZZ_ASSERT(ds->n > 0 && ds->ndim == 3 && ds->shape[0] == 1);
    FUZZ_ASSERT(ds->sample_numel == ds->shape[1] * ds->shape[2] && ds->sample_numel > 0);
    for (int64_t i = 0; i < ds->n * ds->sample_numel; i++) FUZZ_ASSERT(ds->x[i] >= 0.0f && ds->x[i] <= 1.0f);
    for (int64_t i = 0; i < ds->n; i++) FUZZ_ASSERT(ds->y[i] >= 0 && ds->y[i] < n_classes);
    bk_loader *l = bk_loader_new(ds, 2, true, 1, false);
    if (l) {
        bk_tensor *x;
        const int64_t *y;
        int64_t b = bk_loader_next(l, &x, &y, NULL);
        FUZZ_ASSERT(b == -1 || b == (ds->n < 2 ? ds->n : 2));
    }
    bk_loader_free(l);
    bk_dataset_free(ds);
    fuzz_end();
    return 0;
}
