/* fuzz_image_folder.c - the image folder scanner (bk_image_folder_load): class folders,
 * file names, the first image setting the shape, each image decoded and resized to it.
 *
 * The input holds two image files and the settings:
 *   byte 0        bits 0..1: channels (0, 1, 3, 0); bits 2..4: height = width (0: the
 *                 first image's; else 1..7); bit 5: both files in class "a" (else the
 *                 second in "b"); bit 6: an empty class folder "c" too; bit 7: the
 *                 classes given as {"b", "a"} (a folder "c" is then not one of them)
 *   bytes 1..2    L, little-endian: a/1.pgm is the next min(L, rest) bytes
 *   the rest      the second file, a/2.png or b/2.png
 * written under a scratch directory (fuzz_path("in0"), made a directory here and emptied
 * after each input). The load must fail with "image_folder: " naming a folder or file, or
 * return samples of the asked (or first image's) shape in [0, 1], labels below its class
 * count, and the classes' names.
 */
#ifndef _XOPEN_SOURCE
#define _XOPEN_SOURCE 700 /* mkdtemp, mkdir */
#endif
#include "fuzz.h"

#include <errno.h>
#include <sys/stat.h>

static void folder_file(const char *path, const uint8_t *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, n, f) != n || fclose(f) != 0) abort();
}

FUZZ_TARGET(image_folder) {
    if (size < 3) return 0;
    fuzz_begin();
    static const int CHANNELS[4] = {0, 1, 3, 0};
    const char *dir = fuzz_path("in0");
    char a[160], b[160], c[160], f1[192], f2[192];
    snprintf(a, sizeof a, "%s/a", dir);
    snprintf(b, sizeof b, "%s/b", dir);
    snprintf(c, sizeof c, "%s/c", dir);
    bool same = data[0] & 32, empty = data[0] & 64, given = data[0] & 128;
    snprintf(f1, sizeof f1, "%s/1.pgm", a);
    snprintf(f2, sizeof f2, "%s/2.png", same ? a : b);
    unlink(dir); /* a scratch file of another target (fuzz_idx writes in0) */
    if ((mkdir(dir, 0700) != 0 && errno != EEXIST) || mkdir(a, 0700) != 0 || (!same && mkdir(b, 0700) != 0) ||
        (empty && mkdir(c, 0700) != 0))
        abort();
    size_t len = (size_t)data[1] | (size_t)data[2] << 8;
    if (len > size - 3) len = size - 3;
    folder_file(f1, data + 3, len);
    folder_file(f2, data + 3 + len, size - 3 - len);
    int channels = CHANNELS[data[0] & 3];
    int64_t side = (data[0] >> 2) & 7;
    static const char *const classes[2] = {"b", "a"};
    bk_dataset *ds = bk_image_folder_load(dir, given ? classes : NULL, given ? 2 : 0, channels, side, side);
    if (!ds) {
        FUZZ_ASSERT(strstr(bk_last_error(), "image_folder: "));
    } else {
        FUZZ_ASSERT(ds->n == 2 && ds->ndim == 3 && ds->shape[1] > 0 && ds->shape[2] > 0);
        FUZZ_ASSERT(channels ? ds->shape[0] == channels : (ds->shape[0] == 1 || ds->shape[0] == 3));
        FUZZ_ASSERT(!side || (ds->shape[1] == side && ds->shape[2] == side));
        FUZZ_ASSERT(ds->n_classes == (given ? 2 : same ? 1 : 2) && !empty);
        for (int k = 0; k < ds->n_classes; k++) FUZZ_ASSERT(ds->class_names[k] && ds->class_names[k][0]);
        for (int64_t i = 0; i < ds->n * ds->sample_numel; i++)
            FUZZ_ASSERT(ds->x[i] >= -1e-6f && ds->x[i] <= 1.0f + 1e-6f);
        for (int64_t i = 0; i < ds->n; i++) FUZZ_ASSERT(ds->y[i] >= 0 && ds->y[i] < ds->n_classes);
        bk_dataset_free(ds);
    }
    unlink(f1);
    unlink(f2);
    rmdir(a);
    rmdir(b);
    rmdir(c);
    rmdir(dir);
    fuzz_end();
    return 0;
}
