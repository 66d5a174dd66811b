/* fuzz_cifar.c - the CIFAR-10 batch reader and, over what it reads, the loader's crop and
 * flip augmentation.
 *
 * The input holds a batch file, a class names file and the augmentation:
 *   byte 0        crop padding (bits 0..2: 0..7) and flip (bit 3); bit 4: no names file
 *   bytes 1..2    L, little-endian: test_batch.bin is the next min(L, rest) bytes
 *   the rest      batches.meta.txt
 * written into a scratch directory (fuzz_path("in0"), made a directory here and emptied
 * after each input). bk_cifar10_load(dir, false) must fail with "cifar10: " and the file's
 * name, or return (3, 32, 32) samples in [0, 1] with labels 0..9 and ten class names; an
 * augmented loader over it then yields its first batch, every value of which is a pixel
 * value or the fill.
 */
#ifndef _XOPEN_SOURCE
#define _XOPEN_SOURCE 700 /* mkdtemp, mkdir */
#endif
#include "fuzz.h"

#include <errno.h>
#include <sys/stat.h>

FUZZ_TARGET(cifar) {
    if (size < 3) return 0;
    fuzz_begin();
    const char *dir = fuzz_path("in0");
    char batch[160], names[160];
    snprintf(batch, sizeof batch, "%s/test_batch.bin", dir);
    snprintf(names, sizeof names, "%s/batches.meta.txt", dir);
    unlink(dir); /* a scratch file of another target (fuzz_idx writes in0) */
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) abort();
    size_t len = (size_t)data[1] | (size_t)data[2] << 8;
    if (len > size - 3) len = size - 3;
    FILE *f = fopen(batch, "wb");
    if (!f || fwrite(data + 3, 1, len, f) != len || fclose(f) != 0) abort();
    if (!(data[0] & 16)) {
        f = fopen(names, "wb");
        size_t rest = size - 3 - len;
        if (!f || fwrite(data + 3 + len, 1, rest, f) != rest || fclose(f) != 0) abort();
    }
    bk_dataset *ds = bk_cifar10_load(dir, false);
    if (!ds) {
        FUZZ_ASSERT(strstr(bk_last_error(), "cifar10: "));
    } else {
        FUZZ_ASSERT(ds->n > 0 && ds->ndim == 3 && ds->shape[0] == 3 && ds->shape[1] == 32 &&
                    ds->shape[2] == 32);
        FUZZ_ASSERT(ds->n_classes == 10 && ds->class_names);
        for (int c = 0; c < 10; c++) FUZZ_ASSERT(ds->class_names[c] && ds->class_names[c][0]);
        for (int64_t i = 0; i < ds->n * ds->sample_numel; i++)
            FUZZ_ASSERT(ds->x[i] >= 0.0f && ds->x[i] <= 1.0f);
        for (int64_t i = 0; i < ds->n; i++) FUZZ_ASSERT(ds->y[i] >= 0 && ds->y[i] < 10);
        bk_loader *l = bk_loader_new(ds, 2, true, 1, false);
        const float fill[3] = {-1, -2, -3};
        if (l && bk_loader_set_augment(l, data[0] & 7, (data[0] & 8) != 0, fill) == 0) {
            bk_tensor *x;
            int64_t b = bk_loader_next(l, &x, NULL, NULL);
            FUZZ_ASSERT(b == -1 || b == (ds->n < 2 ? ds->n : 2));
            for (int64_t i = 0; b > 0 && i < x->numel; i++)
                FUZZ_ASSERT((x->data[i] >= 0.0f && x->data[i] <= 1.0f) || x->data[i] == -1.0f ||
                            x->data[i] == -2.0f || x->data[i] == -3.0f);
        }
        bk_loader_free(l);
        bk_dataset_free(ds);
    }
    unlink(batch);
    unlink(names);
    rmdir(dir);
    fuzz_end();
    return 0;
}
