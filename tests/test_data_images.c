/* test_data_images.c - image data sets: CIFAR-10 batches and image folders written here
 * (byte for byte, so every expected value is known), their error messages, per-channel
 * normalisation and the loader's crop and flip augmentation (what it does to each pixel,
 * and that the same seed gives the same bytes).
 * Files go to a mkdtemp directory under /tmp, removed at the end.
 */
#define _XOPEN_SOURCE 700 /* mkdtemp, mkdir */

#include "test.h"
#include "files.h"

#include <math.h>
#include <stdlib.h>
#include <sys/stat.h>

#define REC 3073

/* A CIFAR-10 batch of n records: label labels[i % nl], pixel k of record i = (i + k) % 256. */
static bool write_batch(const char *path, int n, const unsigned char *labels, int nl) {
    unsigned char *b = malloc((size_t)n * REC);
    if (!b) return false;
    for (int i = 0; i < n; i++) {
        b[i * REC] = labels[i % nl];
        for (int k = 0; k < 3072; k++) b[i * REC + 1 + k] = (unsigned char)((i + k) % 256);
    }
    bool ok = write_file(path, b, (size_t)n * REC);
    free(b);
    return ok;
}

static void make_cifar(const char *dir) {
    static const unsigned char labels[] = {0, 3, 9};
    char p[512];
    mkdir(dir, 0700);
    for (int i = 1; i <= 5; i++) {
        snprintf(p, sizeof p, "%s/data_batch_%d.bin", dir, i);
        CHECK(write_batch(p, i, labels, 3));
    }
    snprintf(p, sizeof p, "%s/test_batch.bin", dir);
    CHECK(write_batch(p, 4, labels, 3));
}

TEST(cifar_reads_records) {
    make_cifar(tpath("c"));
    bk_dataset *tr = bk_cifar10_load(tpath("c"), true);
    bk_dataset *te = bk_cifar10_load(tpath("c"), false);
    CHECK(tr && te);
    if (!tr || !te) goto done;
    CHECK(tr->n == 1 + 2 + 3 + 4 + 5 && te->n == 4);
    CHECK(tr->ndim == 3 && tr->shape[0] == 3 && tr->shape[1] == 32 && tr->shape[2] == 32);
    CHECK(tr->n_classes == 10 && !strcmp(tr->class_names[9], "truck")); /* no batches.meta.txt */
    /* record 0 of data_batch_2 is sample 1: label 0, pixel k = k % 256, channel-major */
    CHECK(tr->y[1] == 0 && tr->y[2] == 3);
    CHECK(tr->x[1 * 3072 + 1024 + 5] == (float)((1024 + 5) % 256) / 255.0f);
    CHECK(te->y[3] == 0 && te->x[3 * 3072 + 7] == (float)(3 + 7) / 255.0f);
    /* class names from batches.meta.txt (a trailing blank line, as the real file) */
    const char names[] = "a\nb\nc\nd\ne\nf\ng\nh\ni\nj\n\n";
    CHECK(write_file(tpath("c/batches.meta.txt"), names, sizeof names - 1));
    bk_dataset_free(te);
    te = bk_cifar10_load(tpath("c"), false);
    CHECK(te && !strcmp(te->class_names[0], "a") && !strcmp(te->class_names[9], "j"));
done:
    bk_dataset_free(tr);
    bk_dataset_free(te);
}

TEST(cifar_errors) {
    make_cifar(tpath("e"));
    static const unsigned char bad_label[] = {10};
    /* a size that is not whole records, a label over 9, a missing batch, bad names */
    CHECK(write_file(tpath("e/test_batch.bin"), "xyz", 3));
    CHECK_ERRS(bk_cifar10_load(tpath("e"), false), "cifar10: ", "test_batch.bin",
               "3 bytes is not a whole number");
    CHECK(write_batch(tpath("e/test_batch.bin"), 2, bad_label, 1));
    CHECK_ERRS(bk_cifar10_load(tpath("e"), false), "test_batch.bin", "record 0", "label 10");
    unlink(tpath("e/data_batch_4.bin"));
    CHECK_ERRS(bk_cifar10_load(tpath("e"), true), "data_batch_4.bin", "cannot open");
    make_cifar(tpath("e"));
    CHECK(write_file(tpath("e/batches.meta.txt"), "a\nb\n", 4));
    CHECK_ERRS(bk_cifar10_load(tpath("e"), true), "batches.meta.txt", "2 class names, expected 10");
    CHECK(write_file(tpath("e/batches.meta.txt"), "a,b\n", 4));
    CHECK_ERR(bk_cifar10_load(tpath("e"), true), "holds a comma");
    CHECK_ERR(bk_cifar10_load(NULL, true), "cifar10: directory is NULL");
}

/* A w x h binary PGM whose pixels are all v. */
static bool write_pgm(const char *path, int w, int h, unsigned char v) {
    char hdr[64];
    int k = snprintf(hdr, sizeof hdr, "P5\n%d %d\n255\n", w, h);
    unsigned char *b = malloc((size_t)k + (size_t)(w * h));
    if (!b) return false;
    memcpy(b, hdr, (size_t)k);
    memset(b + k, v, (size_t)(w * h));
    bool ok = write_file(path, b, (size_t)k + (size_t)(w * h));
    free(b);
    return ok;
}

TEST(image_folder_reads_classes) {
    mkdir(tpath("f"), 0700);
    mkdir(tpath("f/zeta"), 0700);
    mkdir(tpath("f/alpha"), 0700);
    mkdir(tpath("f/.hidden"), 0700);
    CHECK(write_pgm(tpath("f/zeta/b.pgm"), 4, 4, 255));
    CHECK(write_pgm(tpath("f/zeta/a.PGM"), 8, 8, 51)); /* resized to the first image's 4 x 4 */
    CHECK(write_pgm(tpath("f/alpha/x.pgm"), 4, 4, 102));
    CHECK(write_file(tpath("f/alpha/readme.txt"), "no", 2)); /* skipped: not an image name */
    bk_dataset *ds = bk_image_folder_load(tpath("f"), NULL, 0, 0, 0, 0);
    CHECK(ds != NULL);
    if (!ds) return;
    /* classes sorted: alpha 0, zeta 1; files sorted in each: x; a.PGM, b */
    CHECK(ds->n == 3 && ds->n_classes == 2 && ds->ndim == 3);
    CHECK(ds->shape[0] == 1 && ds->shape[1] == 4 && ds->shape[2] == 4);
    CHECK(!strcmp(ds->class_names[0], "alpha") && !strcmp(ds->class_names[1], "zeta"));
    CHECK(ds->y[0] == 0 && ds->y[1] == 1 && ds->y[2] == 1);
    CHECK_CLOSE(ds->x[0], 0.4, 1e-6);
    CHECK_CLOSE(ds->x[16], 0.2, 1e-6); /* a constant image stays constant when resized */
    CHECK_CLOSE(ds->x[32 + 15], 1.0, 1e-6);
    bk_dataset_free(ds);
    /* given channels and size; the test split with the training split's classes */
    static const char *const classes[3] = {"alpha", "beta", "zeta"};
    ds = bk_image_folder_load(tpath("f"), classes, 3, 3, 2, 6);
    CHECK(ds && ds->n_classes == 3 && ds->shape[0] == 3 && ds->shape[1] == 2 && ds->shape[2] == 6);
    CHECK(ds && ds->y[1] == 2 && !strcmp(ds->class_names[1], "beta"));
    CHECK(ds && ds->x[12 * 2] == ds->x[0]); /* grey copied to every channel */
    bk_dataset_free(ds);
}

TEST(image_folder_errors) {
    mkdir(tpath("g"), 0700);
    CHECK_ERRS(bk_image_folder_load(tpath("g"), NULL, 0, 0, 0, 0), "image_folder: ", "no class folders");
    mkdir(tpath("g/cat"), 0700);
    CHECK_ERRS(bk_image_folder_load(tpath("g"), NULL, 0, 0, 0, 0), "g/cat", "an empty class folder");
    CHECK(write_pgm(tpath("g/cat/1.pgm"), 3, 3, 9));
    CHECK(write_file(tpath("g/cat/2.png"), "not a png", 9));
    CHECK_ERRS(bk_image_folder_load(tpath("g"), NULL, 0, 0, 0, 0), "g/cat/2.png", "not a PNG");
    unlink(tpath("g/cat/2.png"));
    static const char *const dog[1] = {"dog"};
    CHECK_ERRS(bk_image_folder_load(tpath("g"), dog, 1, 0, 0, 0), "class folder \"cat\"",
               "not one of the 1 classes of the training split");
    CHECK_ERR(bk_image_folder_load(tpath("g"), NULL, 0, 2, 0, 0), "channels 2");
    CHECK_ERR(bk_image_folder_load(tpath("g"), NULL, 0, 0, 4, 0), "both 0");
    CHECK_ERR(bk_image_folder_load(tpath("missing"), NULL, 0, 0, 0, 0), "cannot open the directory");
    CHECK_ERR(bk_image_folder_load(NULL, NULL, 0, 0, 0, 0), "directory is NULL");
    mkdir(tpath("g/a,b"), 0700);
    CHECK_ERR(bk_image_folder_load(tpath("g"), NULL, 0, 0, 0, 0), "holds a comma");
}

/* A data set of n samples (C, H, W) with x[i] = i. */
static bk_dataset *ramp(int64_t n, int64_t C, int64_t H, int64_t W) {
    int64_t numel = n * C * H * W;
    float *x = malloc((size_t)numel * sizeof *x);
    int64_t *y = calloc((size_t)n, sizeof *y);
    for (int64_t i = 0; x && i < numel; i++) x[i] = (float)i;
    bk_dataset *ds = x && y ? bk_dataset_from_arrays(n, 3, (int64_t[]){C, H, W}, x, y, 1, NULL, 0) : NULL;
    free(x);
    free(y);
    return ds;
}

TEST(channel_stats_and_normalize) {
    bk_dataset *ds = ramp(2, 2, 1, 2); /* channel 0: 0, 1, 4, 5; channel 1: 2, 3, 6, 7 */
    float mean[2], std[2];
    CHECK(ds && bk_dataset_channel_stats(ds, mean, std) == 0);
    if (!ds) return;
    CHECK_CLOSE(mean[0], 2.5, 1e-6);
    CHECK_CLOSE(mean[1], 4.5, 1e-6);
    CHECK_CLOSE(std[0], sqrt(4.25), 1e-6); /* population: (6.25 + 2.25 + 2.25 + 6.25) / 4 */
    CHECK_CLOSE(std[1], sqrt(4.25), 1e-6);
    CHECK(bk_dataset_normalize_channels(ds, mean, std) == 0);
    CHECK(bk_dataset_channel_stats(ds, mean, std) == 0);
    CHECK_CLOSE(mean[0], 0, 1e-6);
    CHECK_CLOSE(std[1], 1, 1e-6);
    float bad[2] = {1, 0};
    CHECK_FAILS_INT(bk_dataset_normalize_channels(ds, mean, bad),
                    "channel 1 needs a finite mean and a finite std > 0");
    bk_dataset_free(ds);
}

/* The batch of B samples the loader yields next, copied. */
static float *next_batch(bk_loader *l, int64_t numel) {
    bk_tensor *x = NULL;
    int64_t b = bk_loader_next(l, &x, NULL, NULL);
    float *out = b > 0 && x ? malloc((size_t)(b * numel) * sizeof *out) : NULL;
    if (out) memcpy(out, x->data, (size_t)(b * numel) * sizeof *out);
    bk_arena_reset(NULL);
    return out;
}

TEST(augment_flip_and_crop) {
    int64_t C = 2, H = 3, W = 4, numel = C * H * W;
    bk_dataset *ds = ramp(16, C, H, W);
    bk_loader *l = ds ? bk_loader_new(ds, 16, false, 7, false) : NULL;
    CHECK(l && bk_loader_set_augment(l, 0, true, NULL) == 0);
    if (!l) goto done;
    /* flip only: every sample is itself or its mirror, and both happen */
    float *b = next_batch(l, numel);
    int flipped = 0;
    for (int64_t i = 0; b && i < 16; i++) {
        const float *s = ds->x + i * numel, *o = b + i * numel;
        bool same = !memcmp(s, o, (size_t)numel * sizeof *s), mirror = true;
        for (int64_t r = 0; r < C * H; r++)
            for (int64_t x = 0; x < W; x++) mirror = mirror && o[r * W + x] == s[r * W + W - 1 - x];
        CHECK(same != mirror);
        flipped += mirror;
    }
    CHECK(b && flipped > 0 && flipped < 16);
    free(b);
    /* crop with padding 1 and fill (-1, -2): each output pixel is a shifted source pixel
     * or its channel's fill, with one shift per sample */
    float fill[2] = {-1, -2};
    CHECK(bk_loader_set_augment(l, 1, false, fill) == 0);
    bk_loader_start(l);
    b = next_batch(l, numel);
    int shifted = 0;
    for (int64_t i = 0; b && i < 16; i++) {
        const float *s = ds->x + i * numel, *o = b + i * numel;
        bool found = false;
        for (int dy = -1; dy <= 1 && !found; dy++)
            for (int dx = -1; dx <= 1 && !found; dx++) {
                bool all = true;
                for (int64_t c = 0; c < C; c++)
                    for (int64_t y = 0; y < H; y++)
                        for (int64_t x = 0; x < W; x++) {
                            int64_t sy = y + dy, sx = x + dx;
                            float want = sy >= 0 && sy < H && sx >= 0 && sx < W ? s[(c * H + sy) * W + sx]
                                                                                : fill[c];
                            all = all && o[(c * H + y) * W + x] == want;
                        }
                found = all;
                shifted += all && (dy || dx);
            }
        CHECK(found);
    }
    CHECK(b && shifted > 0);
    free(b);
    CHECK_ERR(bk_loader_set_augment(l, -1, false, NULL) == 0 ? l : NULL, "crop_padding -1");
done:
    bk_loader_free(l);
    bk_dataset_free(ds);
}

TEST(augment_same_seed_same_bytes) {
    int64_t numel = 3 * 5 * 5;
    bk_dataset *ds = ramp(10, 3, 5, 5);
    float *b[3] = {0};
    for (int k = 0; k < 3 && ds; k++) { /* seeds 42, 42, 43 */
        bk_loader *l = bk_loader_new(ds, 4, true, k < 2 ? 42 : 43, false);
        CHECK(l && bk_loader_set_augment(l, 2, true, NULL) == 0);
        b[k] = l ? next_batch(l, numel) : NULL;
        bk_loader_free(l);
    }
    CHECK(b[0] && b[1] && !memcmp(b[0], b[1], (size_t)(4 * numel) * sizeof(float)));
    CHECK(b[0] && b[2] && memcmp(b[0], b[2], (size_t)(4 * numel) * sizeof(float)));
    for (int k = 0; k < 3; k++) free(b[k]);
    /* rank 2 samples cannot be cropped */
    float x[4] = {0};
    bk_dataset *flat = bk_dataset_from_arrays(2, 1, (int64_t[]){2}, x, NULL, 0, NULL, 0);
    bk_loader *l = flat ? bk_loader_new(flat, 2, false, 1, false) : NULL;
    CHECK_FAILS_INT(bk_loader_set_augment(l, 1, true, NULL), "samples (C, H, W), not samples of rank 1");
    bk_loader_free(l);
    bk_dataset_free(flat);
    bk_dataset_free(ds);
}

/* The resume promise: a loader that skips the first batch with x NULL and one that reads
 * it leave the same generator, so the second batches agree. */
TEST(augment_skip_draws_like_read) {
    int64_t numel = 1 * 4 * 4;
    bk_dataset *ds = ramp(8, 1, 4, 4);
    bk_loader *a = ds ? bk_loader_new(ds, 4, true, 5, false) : NULL;
    bk_loader *b = ds ? bk_loader_new(ds, 4, true, 5, false) : NULL;
    CHECK(a && b && bk_loader_set_augment(a, 1, true, NULL) == 0 &&
          bk_loader_set_augment(b, 1, true, NULL) == 0);
    if (a && b) {
        free(next_batch(a, numel));
        bk_loader_next(b, NULL, NULL, NULL);
        float *xa = next_batch(a, numel), *xb = next_batch(b, numel);
        CHECK(xa && xb && !memcmp(xa, xb, (size_t)(4 * numel) * sizeof(float)));
        free(xa);
        free(xb);
    }
    bk_loader_free(a);
    bk_loader_free(b);
    bk_dataset_free(ds);
}

int main(void) {
    if (!files_init("test-data-images", NULL)) return 1;
    RUN(cifar_reads_records);
    RUN(cifar_errors);
    RUN(image_folder_reads_classes);
    RUN(image_folder_errors);
    RUN(channel_stats_and_normalize);
    RUN(augment_flip_and_crop);
    RUN(augment_same_seed_same_bytes);
    RUN(augment_skip_draws_like_read);
    files_cleanup();
    return test_summary("test_data_images");
}
