/* cifar.c - CIFAR-10's binary version (www.cs.toronto.edu/~kriz/cifar.html).
 *
 * Format: a batch file is a sequence of records of 1 + 3072 bytes: the label (0..9), then
 * the 32 x 32 red plane, the green plane and the blue plane, each row-major. The training
 * split is data_batch_1.bin .. data_batch_5.bin in that order, the test split
 * test_batch.bin; batches.meta.txt names the classes, one a line, in label order.
 * Every file's size is checked (a whole, non-zero number of records) before anything is
 * allocated, and every label before the data set is returned. Pixels are scaled by 1/255,
 * as torchvision's ToTensor does: samples (3, 32, 32) in [0, 1].
 */
#define _XOPEN_SOURCE 700 /* access */

#include "internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CIFAR_SIDE 32
#define CIFAR_PIXELS (3 * CIFAR_SIDE * CIFAR_SIDE) /* 3072 */
#define CIFAR_RECORD (1 + CIFAR_PIXELS)            /* 3073 bytes */
#define CIFAR_CLASSES 10
#define CIFAR_MAX_FILES 5
#define CIFAR_NAMES_MAX 4096 /* bytes of batches.meta.txt */

#define cifar_fail(path, ...) bk__file_error("cifar10", path, __VA_ARGS__)

static const char *const CIFAR10_CLASSES[CIFAR_CLASSES] = {
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
};

/* Opens path and counts its records into *n; NULL with an error for a file that is not a
 * whole, non-zero number of records. */
static FILE *batch_open(const char *path, int64_t *n) {
    char why[256];
    FILE *f = bk__open_regular(path, why, sizeof why);
    if (!f) {
        cifar_fail(path, "%s", why);
        return NULL;
    }
    long size = fseek(f, 0, SEEK_END) == 0 ? ftell(f) : -1;
    if (size < 0 || fseek(f, 0, SEEK_SET) != 0) {
        cifar_fail(path, "cannot seek: %s", strerror(errno));
    } else if (size == 0 || size % CIFAR_RECORD != 0) {
        cifar_fail(path,
                   "%ld bytes is not a whole number of records of %d bytes (a label byte and 3 x 32 x 32 "
                   "pixels): not a CIFAR-10 batch file, or a truncated one",
                   size, CIFAR_RECORD);
    } else {
        *n = size / CIFAR_RECORD;
        return f;
    }
    fclose(f);
    return NULL;
}

/* Reads n records from f into x (n * 3072 floats) and y (n labels). */
static bool batch_read(FILE *f, const char *path, int64_t n, float *x, int64_t *y) {
    unsigned char rec[CIFAR_RECORD];
    for (int64_t i = 0; i < n; i++) {
        if (fread(rec, 1, sizeof rec, f) != sizeof rec)
            return cifar_fail(path, "cannot read record %" PRId64 ": %s", i,
                              ferror(f) ? strerror(errno) : "the file shrank");
        if (rec[0] >= CIFAR_CLASSES)
            return cifar_fail(path, "record %" PRId64 " (byte offset %" PRId64 ") has label %d, not 0..%d", i,
                              i * CIFAR_RECORD, rec[0], CIFAR_CLASSES - 1);
        y[i] = rec[0];
        for (int k = 0; k < CIFAR_PIXELS; k++) x[i * CIFAR_PIXELS + k] = (float)rec[1 + k] / 255.0f;
    }
    return true;
}

/* batches.meta.txt: ten non-empty lines (blank lines after them ignored, as the real file
 * ends with some), into ds->owned and ds->class_names. Absent: CIFAR-10's names. */
static bool read_names(const char *dir, bk_dataset *ds) {
    char path[4096], why[256];
    ds->class_names = CIFAR10_CLASSES;
    if ((size_t)snprintf(path, sizeof path, "%s/batches.meta.txt", dir) >= sizeof path)
        return cifar_fail(dir, "the directory name is too long");
    if (access(path, F_OK) != 0 && errno == ENOENT) return true;
    FILE *f = bk__open_regular(path, why, sizeof why);
    if (!f) return cifar_fail(path, "%s", why);
    /* one block: CIFAR_CLASSES pointers, then the text they point into */
    char *block = bk__malloc(CIFAR_CLASSES * sizeof(char *) + CIFAR_NAMES_MAX + 1);
    if (!block) {
        fclose(f);
        return cifar_fail(path, "out of memory");
    }
    ds->owned = block;
    const char **names = (const char **)(void *)block;
    char *text = block + CIFAR_CLASSES * sizeof(char *);
    size_t len = fread(text, 1, CIFAR_NAMES_MAX + 1, f);
    bool err = ferror(f);
    fclose(f);
    if (err) return cifar_fail(path, "cannot read: %s", strerror(errno));
    if (len > CIFAR_NAMES_MAX)
        return cifar_fail(path, "larger than %d bytes: not a class names file", CIFAR_NAMES_MAX);
    text[len] = '\0';
    int count = 0;
    for (char *line = text, *next; *line; line = next) {
        next = strchr(line, '\n');
        next = next ? (*next = '\0', next + 1) : line + strlen(line);
        size_t l = strlen(line);
        if (l && line[l - 1] == '\r') line[--l] = '\0';
        if (!l) continue;
        if (count == CIFAR_CLASSES)
            return cifar_fail(path, "more than %d class names (line \"%.40s\")", CIFAR_CLASSES, line);
        if (strchr(line, ','))
            return cifar_fail(path, "class name \"%.40s\" holds a comma (brick files list names with commas)",
                              line);
        names[count++] = line;
    }
    if (count != CIFAR_CLASSES)
        return cifar_fail(path, "%d class names, expected %d (one a line)", count, CIFAR_CLASSES);
    ds->class_names = names;
    return true;
}

bk_dataset *bk_cifar10_load(const char *dir, bool train) {
    if (!dir) {
        bk_set_error("cifar10: directory is NULL");
        return NULL;
    }
    char paths[CIFAR_MAX_FILES][4096];
    FILE *files[CIFAR_MAX_FILES] = {0};
    int64_t counts[CIFAR_MAX_FILES] = {0}, n = 0;
    int n_files = train ? CIFAR_MAX_FILES : 1;
    bk_dataset *ds = NULL;
    for (int i = 0; i < n_files; i++) {
        int k = train ? snprintf(paths[i], sizeof paths[i], "%s/data_batch_%d.bin", dir, i + 1)
                      : snprintf(paths[i], sizeof paths[i], "%s/test_batch.bin", dir);
        if (k < 0 || (size_t)k >= sizeof paths[i]) {
            cifar_fail(dir, "the directory name is too long");
            goto fail;
        }
        files[i] = batch_open(paths[i], &counts[i]);
        if (!files[i]) goto fail;
        n += counts[i]; /* at most 5 files of < 2^63 bytes / 3073: no overflow */
    }
    if ((uint64_t)n > SIZE_MAX / (CIFAR_PIXELS * sizeof(float))) {
        cifar_fail(paths[0], "%" PRId64 " images do not fit in memory", n);
        goto fail;
    }
    ds = bk__calloc(1, sizeof *ds);
    if (!ds) goto oom;
    ds->n = n;
    ds->ndim = 3;
    ds->shape[0] = 3;
    ds->shape[1] = CIFAR_SIDE;
    ds->shape[2] = CIFAR_SIDE;
    ds->sample_numel = CIFAR_PIXELS;
    ds->n_classes = CIFAR_CLASSES;
    ds->x = bk__malloc((size_t)n * CIFAR_PIXELS * sizeof(float));
    ds->y = bk__malloc((size_t)n * sizeof(int64_t));
    if (!ds->x || !ds->y) goto oom;
    int64_t at = 0;
    for (int i = 0; i < n_files; i++) {
        if (!batch_read(files[i], paths[i], counts[i], ds->x + at * CIFAR_PIXELS, ds->y + at)) goto fail;
        at += counts[i];
    }
    if (!read_names(dir, ds)) goto fail;
    for (int i = 0; i < n_files; i++) fclose(files[i]);
    return ds;
oom:
    cifar_fail(dir, "out of memory for %" PRId64 " images", n);
fail:
    for (int i = 0; i < n_files; i++)
        if (files[i]) fclose(files[i]);
    bk_dataset_free(ds);
    return NULL;
}
