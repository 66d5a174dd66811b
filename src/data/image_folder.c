/* image_folder.c - a directory of class folders of images, as torchvision's ImageFolder.
 *
 * Layout: dir/<class>/<image>, one folder per class. Classes are the folder names sorted
 * by bytes (ImageFolder sorts with Python's sorted(), the same order for UTF-8 names), and
 * a label is its class's index; the images of a folder are read in the same order, folder
 * after folder. Names starting with '.' are skipped (ImageFolder's scandir sees them, but a
 * ".DS_Store" or ".ipynb_checkpoints" is never a class), and so are files that are not
 * .png, .jpg, .jpeg or .pgm (ImageFolder's IMG_EXTENSIONS, less the formats brick cannot
 * decode); sub-folders of a class folder are not entered.
 *
 * Every image goes through bk_image_load (src/io/image.c): decoded, made grey or RGB as
 * torchvision's Grayscale does, resized as its Resize does. The data set's channels and
 * size are given or come from the first image, so a folder of mixed sizes gives one shape.
 * Class names live in the data set's `owned` block: n pointers, then the names.
 */
#define _XOPEN_SOURCE 700 /* opendir, stat, strcasecmp */

#include "internal.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#define folder_fail(path, ...) bk__file_error("image_folder", path, __VA_ARGS__)

/* A sorted list of names (each malloc'ed) in one directory. */
typedef struct name_list {
    char **names;
    int64_t count;
} name_list;

static void names_free(name_list *l) {
    for (int64_t i = 0; l->names && i < l->count; i++) bk__free(l->names[i]);
    bk__free(l->names);
    l->names = NULL;
    l->count = 0;
}

static int name_cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static bool is_image_name(const char *name) {
    static const char *const exts[] = {".png", ".jpg", ".jpeg", ".pgm"};
    size_t n = strlen(name);
    for (size_t i = 0; i < sizeof exts / sizeof *exts; i++) {
        size_t e = strlen(exts[i]);
        if (n > e && !strcasecmp(name + n - e, exts[i])) return true;
    }
    return false;
}

/* The entries of dir that are directories (dirs) or image files (!dirs), sorted; false
 * with an error. Symbolic links count as what they point to. */
static bool list_dir(const char *dir, bool dirs, name_list *out) {
    DIR *d = opendir(dir);
    if (!d) return folder_fail(dir, "cannot open the directory: %s", strerror(errno));
    int64_t cap = 0;
    bool ok = true;
    struct dirent *e;
    char path[4096];
    while (ok && (e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        if (!dirs && !is_image_name(e->d_name)) continue;
        struct stat st;
        if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, e->d_name) >= sizeof path) {
            ok = folder_fail(dir, "the path of \"%.64s\" is too long", e->d_name);
            break;
        }
        if (stat(path, &st) != 0 || (dirs ? !S_ISDIR(st.st_mode) : !S_ISREG(st.st_mode))) continue;
        if (out->count == cap) {
            cap = cap ? 2 * cap : 64;
            char **grown = bk__realloc(out->names, (size_t)cap * sizeof *grown);
            if (!grown) {
                ok = folder_fail(dir, "out of memory listing the directory");
                break;
            }
            out->names = grown;
        }
        out->names[out->count] = bk__strdup(e->d_name);
        if (!out->names[out->count]) ok = folder_fail(dir, "out of memory listing the directory");
        else out->count++;
    }
    closedir(d);
    if (!ok) {
        names_free(out);
        return false;
    }
    if (out->count) qsort(out->names, (size_t)out->count, sizeof *out->names, name_cmp);
    return true;
}

/* ds->owned = n pointers then the names; ds->class_names points at them. */
static bool store_names(bk_dataset *ds, const char *const *names, int n, const char *dir) {
    size_t bytes = (size_t)n * sizeof(char *);
    for (int c = 0; c < n; c++) bytes += strlen(names[c]) + 1;
    char *block = bk__malloc(bytes);
    if (!block) return folder_fail(dir, "out of memory for the class names");
    const char **ptrs = (const char **)(void *)block;
    char *text = block + (size_t)n * sizeof(char *);
    for (int c = 0; c < n; c++) {
        size_t len = strlen(names[c]) + 1;
        memcpy(text, names[c], len);
        ptrs[c] = text;
        text += len;
    }
    ds->owned = block;
    ds->class_names = ptrs;
    return true;
}

/* Checks the arguments; false with an error. */
static bool args_ok(const char *dir, const char *const *classes, int n_classes, int channels, int64_t height,
                    int64_t width) {
    if (!dir) {
        bk_set_error("image_folder: directory is NULL");
        return false;
    }
    if (channels != 0 && channels != 1 && channels != 3)
        return folder_fail(dir, "channels %d: 0 (from the first image), 1 (grey) or 3 (RGB)", channels);
    if ((height == 0) != (width == 0) || height < 0 || width < 0 || height > 65536 || width > 65536)
        return folder_fail(dir,
                           "size %" PRId64 "x%" PRId64 ": both 0 (the first image's) or both in 1..65536",
                           height, width);
    if (classes && (n_classes < 1 || n_classes > BK_IMAGE_FOLDER_MAX_CLASSES))
        return folder_fail(dir, "n_classes %d is outside 1..%d", n_classes, BK_IMAGE_FOLDER_MAX_CLASSES);
    for (int c = 0; classes && c < n_classes; c++)
        if (!classes[c]) return folder_fail(dir, "class name %d is NULL", c);
    return true;
}

bk_dataset *bk_image_folder_load(const char *dir, const char *const *classes, int n_classes, int channels,
                                 int64_t height, int64_t width) {
    if (!args_ok(dir, classes, n_classes, channels, height, width)) return NULL;
    name_list folders = {0};
    name_list *files = NULL;
    int *labels = NULL;
    bk_dataset *ds = NULL;
    bk_tensor *t = NULL;
    char path[4096];
    if (!list_dir(dir, true, &folders)) return NULL;
    if (folders.count == 0) {
        folder_fail(dir, "no class folders (expected %s/<class>/<image>.png|jpg|pgm)", dir);
        goto fail;
    }
    if (folders.count > BK_IMAGE_FOLDER_MAX_CLASSES) {
        folder_fail(dir, "%" PRId64 " class folders, more than the %d brick takes", folders.count,
                    BK_IMAGE_FOLDER_MAX_CLASSES);
        goto fail;
    }
    files = bk__calloc((size_t)folders.count, sizeof *files);
    labels = bk__malloc((size_t)folders.count * sizeof *labels);
    if (!files || !labels) {
        folder_fail(dir, "out of memory");
        goto fail;
    }
    /* the classes and every folder's images, before anything is decoded */
    int64_t n = 0;
    for (int64_t f = 0; f < folders.count; f++) {
        const char *name = folders.names[f];
        if (strchr(name, ',')) {
            folder_fail(dir,
                        "class folder \"%.64s\" holds a comma (brick files list class names with commas)",
                        name);
            goto fail;
        }
        labels[f] = (int)f;
        if (classes) {
            labels[f] = -1;
            for (int c = 0; c < n_classes && labels[f] < 0; c++)
                if (!strcmp(classes[c], name)) labels[f] = c;
            if (labels[f] < 0) {
                folder_fail(dir, "class folder \"%.64s\" is not one of the %d classes of the training split",
                            name, n_classes);
                goto fail;
            }
        }
        snprintf(path, sizeof path, "%s/%s", dir, name); /* fits: list_dir checked it */
        if (!list_dir(path, false, &files[f])) goto fail;
        if (files[f].count == 0) {
            folder_fail(path, "an empty class folder: no .png, .jpg, .jpeg or .pgm image");
            goto fail;
        }
        n += files[f].count;
    }
    /* channels and size from the first image when not given */
    snprintf(path, sizeof path, "%s/%s/%s", dir, folders.names[0], files[0].names[0]);
    if (channels == 0 || height == 0) {
        bk_image_info info;
        t = bk_image_load(path, 3, 1, 1, &info);
        if (!t) goto fail_image;
        bk_tensor_free(t);
        t = NULL;
        if (channels == 0) channels = info.channels >= 3 ? 3 : 1;
        if (height == 0) height = info.height, width = info.width;
    }
    int64_t shape[3] = {channels, height, width}, numel = channels * height * width, total;
    if (!bk__mul_ok(n, numel, &total) || (uint64_t)total > SIZE_MAX / sizeof(float)) {
        folder_fail(dir, "%" PRId64 " images of %" PRId64 " values do not fit in memory", n, numel);
        goto fail;
    }
    ds = bk__calloc(1, sizeof *ds);
    if (!ds) goto oom;
    ds->n = n;
    ds->ndim = 3;
    memcpy(ds->shape, shape, sizeof shape);
    ds->sample_numel = numel;
    ds->n_classes = classes ? n_classes : (int)folders.count;
    ds->x = bk__malloc((size_t)total * sizeof(float));
    ds->y = bk__malloc((size_t)n * sizeof(int64_t));
    if (!ds->x || !ds->y) goto oom;
    if (!store_names(ds, classes ? classes : (const char *const *)folders.names, ds->n_classes, dir))
        goto fail;
    int64_t i = 0;
    for (int64_t f = 0; f < folders.count; f++)
        for (int64_t k = 0; k < files[f].count; k++, i++) {
            snprintf(path, sizeof path, "%s/%s/%s", dir, folders.names[f], files[f].names[k]);
            t = bk_image_load(path, channels, height, width, NULL);
            if (!t) goto fail_image;
            memcpy(ds->x + i * numel, t->data, (size_t)numel * sizeof(float));
            bk_tensor_free(t);
            t = NULL;
            ds->y[i] = labels[f];
        }
    for (int64_t f = 0; f < folders.count; f++) names_free(&files[f]);
    names_free(&folders);
    bk__free(files);
    bk__free(labels);
    return ds;
oom:
    folder_fail(dir, "out of memory for %" PRId64 " images", ds ? ds->n : 0);
    goto fail;
fail_image:
    bk__error_prefix("image_folder");
fail:
    for (int64_t f = 0; files && f < folders.count; f++) names_free(&files[f]);
    names_free(&folders);
    bk__free(files);
    bk__free(labels);
    bk_dataset_free(ds);
    return NULL;
}
