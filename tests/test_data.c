/* test_data.c - IDX loading, the bundled Fashion-MNIST subset, data sets and loaders.
 *
 * The expected values (labels, pixel sums, class counts) were read from the same files
 * with Python's gzip + struct (see scripts/make_subset.py). Bad files are crafted in a
 * temporary directory, one per rejection rule, and each error message is checked to name
 * the file and the problem. Run from the repository root.
 */
#define _XOPEN_SOURCE 700 /* mkdtemp, clock_gettime */

#include "test.h"
#include "files.h"

#include <stdint.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#define SUBSET "data/fashion-mnist-subset"
#define FULL "/usr/share/datasets/fashion-mnist"

/* ---- scratch files --------------------------------------------------------------------- */

/* Paths in the test's directory (files.h's tmpdir, removed whole at the end), stable until
 * the end of the run: a test keeps them in its data sets. */
static char tmp_paths[128][512];
static int tmp_n_paths;

static const char *tmp_path(const char *name) {
    char want[512];
    snprintf(want, sizeof want, "%s/%s", tmpdir, name);
    for (int i = 0; i < tmp_n_paths; i++)
        if (strcmp(tmp_paths[i], want) == 0) return tmp_paths[i];
    if (tmp_n_paths == 128) {
        fprintf(stderr, "test_data: too many scratch paths\n");
        exit(1);
    }
    memcpy(tmp_paths[tmp_n_paths], want, sizeof want);
    return tmp_paths[tmp_n_paths++];
}

static const char *tmp_dir(const char *name) {
    const char *p = tmp_path(name);
    mkdir(p, 0700);
    return p;
}

static const char *write_plain(const char *name, const void *bytes, size_t n) {
    const char *p = tmp_path(name);
    if (!write_file(p, bytes, n)) fprintf(stderr, "  cannot write %s\n", p);
    return p;
}

static const char *write_gz(const char *name, const void *bytes, size_t n) {
    const char *p = tmp_path(name);
    gzFile g = gzopen(p, "wb");
    if (!g || (n && gzwrite(g, bytes, (unsigned)n) != (int)n)) fprintf(stderr, "  cannot write %s\n", p);
    if (g) gzclose(g);
    return p;
}

/* Reads a whole file (gzip or plain, via zlib's transparent mode) into a malloc'ed block. */
static unsigned char *read_all(const char *path, size_t *n) {
    gzFile g = gzopen(path, "rb");
    size_t cap = 1 << 16, len = 0;
    unsigned char *buf = malloc(cap);
    if (!g || !buf) goto fail;
    for (;;) {
        if (len == cap) {
            unsigned char *b = realloc(buf, cap *= 2);
            if (!b) goto fail;
            buf = b;
        }
        int got = gzread(g, buf + len, (unsigned)(cap - len));
        if (got < 0) goto fail;
        if (got == 0) break;
        len += (size_t)got;
    }
    gzclose(g);
    *n = len;
    return buf;
fail:
    if (g) gzclose(g);
    free(buf);
    *n = 0;
    return NULL;
}

/* An IDX file in memory: magic bytes, dims, then `data_bytes` bytes of pattern. */
static size_t make_idx(unsigned char *buf, size_t cap, unsigned type, int ndim, const uint32_t *dims,
                       size_t data_bytes) {
    size_t k = 0;
    unsigned char magic[4] = {0, 0, (unsigned char)type, (unsigned char)ndim};
    memcpy(buf, magic, 4);
    k = 4;
    for (int i = 0; i < ndim; i++) {
        buf[k++] = (unsigned char)(dims[i] >> 24);
        buf[k++] = (unsigned char)(dims[i] >> 16);
        buf[k++] = (unsigned char)(dims[i] >> 8);
        buf[k++] = (unsigned char)dims[i];
    }
    for (size_t i = 0; i < data_bytes && k < cap; i++) buf[k++] = (unsigned char)(i * 7 % 10);
    return k;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Sum of the pixels as the bytes they were (x * 255, rounded), over samples [from, to). */
static long long byte_sum(const bk_dataset *ds, int64_t from, int64_t to) {
    long long s = 0;
    for (int64_t i = from * ds->sample_numel; i < to * ds->sample_numel; i++)
        s += (long long)lrintf(ds->x[i] * 255.0f);
    return s;
}

/* ---- the bundled subset ------------------------------------------------------------------ */

TEST(subset_train) {
    bk_dataset *ds = bk_fashion_mnist_load(SUBSET, true);
    CHECK(ds != NULL);
    if (!ds) return;
    CHECK(ds->n == 6000);
    CHECK(ds->ndim == 3 && ds->shape[0] == 1 && ds->shape[1] == 28 && ds->shape[2] == 28);
    CHECK(ds->sample_numel == 784);
    CHECK(ds->n_classes == 10);
    CHECK(ds->y != NULL && ds->targets == NULL && ds->target_dim == 0);
    CHECK(ds->class_names && strcmp(ds->class_names[0], "T-shirt/top") == 0);
    CHECK(ds->class_names && strcmp(ds->class_names[9], "Ankle boot") == 0);
    static const int64_t first[12] = {9, 0, 0, 3, 0, 2, 7, 2, 5, 5, 0, 9};
    static const int64_t last[5] = {5, 8, 6, 7, 0};
    for (int i = 0; i < 12; i++) CHECK(ds->y[i] == first[i]);
    for (int i = 0; i < 5; i++) CHECK(ds->y[5995 + i] == last[i]);
    /* class balance, as make_subset.py printed it */
    static const int counts[10] = {560, 643, 608, 612, 584, 594, 590, 617, 590, 602};
    int seen[10] = {0};
    for (int64_t i = 0; i < ds->n; i++) seen[ds->y[i]]++;
    for (int c = 0; c < 10; c++) CHECK(seen[c] == counts[c]);
    float lo = 1, hi = 0;
    for (int64_t i = 0; i < ds->n * 784; i++) {
        if (ds->x[i] < lo) lo = ds->x[i];
        if (ds->x[i] > hi) hi = ds->x[i];
    }
    CHECK(lo == 0.0f && hi == 1.0f);
    CHECK(ds->x[14 * 28 + 14] == 217.0f / 255.0f); /* image 0, row 14, col 14 */
    CHECK(byte_sum(ds, 0, 1) == 76247);
    CHECK(byte_sum(ds, 5999, 6000) == 77039);
    CHECK(byte_sum(ds, 0, 6000) == 342670278LL);
    bk_dataset_free(ds);
}

TEST(subset_test) {
    bk_dataset *ds = bk_fashion_mnist_load(SUBSET, false);
    CHECK(ds != NULL);
    if (!ds) return;
    CHECK(ds->n == 1000 && ds->sample_numel == 784 && ds->n_classes == 10);
    static const int64_t first[12] = {9, 2, 1, 1, 6, 1, 4, 6, 5, 7, 4, 5};
    static const int64_t last[5] = {9, 3, 4, 7, 7};
    for (int i = 0; i < 12; i++) CHECK(ds->y[i] == first[i]);
    for (int i = 0; i < 5; i++) CHECK(ds->y[995 + i] == last[i]);
    CHECK(byte_sum(ds, 0, 1) == 33456);
    CHECK(byte_sum(ds, 0, 1000) == 58034149LL);
    bk_dataset_free(ds);
}

/* The same files uncompressed give identical data (and the plain ones are preferred). */
TEST(plain_equals_gzip) {
    static const char *const names[4] = {"train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                                         "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"};
    tmp_dir("plain");
    for (int i = 0; i < 4; i++) {
        char src[256], dst[256];
        snprintf(src, sizeof src, SUBSET "/%s.gz", names[i]);
        snprintf(dst, sizeof dst, "plain/%s", names[i]);
        size_t n;
        unsigned char *bytes = read_all(src, &n);
        CHECK(bytes != NULL && n > 0);
        if (bytes) write_plain(dst, bytes, n);
        free(bytes);
    }
    for (int train = 0; train < 2; train++) {
        bk_dataset *a = bk_fashion_mnist_load(SUBSET, train);
        bk_dataset *b = bk_fashion_mnist_load(tmp_path("plain"), train);
        CHECK(a && b);
        if (a && b) {
            CHECK(a->n == b->n && a->sample_numel == b->sample_numel);
            CHECK(memcmp(a->x, b->x, (size_t)(a->n * a->sample_numel) * sizeof(float)) == 0);
            CHECK(memcmp(a->y, b->y, (size_t)a->n * sizeof(int64_t)) == 0);
        }
        bk_dataset_free(a);
        bk_dataset_free(b);
    }
    /* mixed: plain images with gzip labels */
    bk_dataset *m = bk_idx_load(tmp_path("plain/t10k-images-idx3-ubyte"), SUBSET "/t10k-labels-idx1-ubyte.gz",
                                10);
    CHECK(m && m->n == 1000 && m->y[0] == 9 && m->class_names == NULL);
    bk_dataset_free(m);
}

/* ---- every rejection rule -------------------------------------------------------------- */

/* bk_idx_load, printing its error under BRICK_TEST_VERBOSE (to read every message). */
static bk_dataset *idx_load_v(const char *images, const char *labels, int n_classes) {
    bk_dataset *ds = bk_idx_load(images, labels, n_classes);
    if (!ds && getenv("BRICK_TEST_VERBOSE")) printf("    %s\n", bk_last_error());
    return ds;
}

/* load(images, labels) must fail with "<path>: <problem>" in the message. */
#define CHECK_IDX_ERR(images, labels, n_classes, path, problem)        \
    do {                                                               \
        char want_[1024];                                              \
        snprintf(want_, sizeof want_, "%s: %s", (path), (problem));    \
        CHECK_ERR(idx_load_v((images), (labels), (n_classes)), want_); \
    } while (0)

TEST(idx_rejects_bad_headers) {
    unsigned char buf[4096];
    uint32_t img_dims[3] = {2, 4, 4}, lab_dims[1] = {2};
    size_t n = make_idx(buf, sizeof buf, 0x08, 1, lab_dims, 2);
    const char *labels = write_plain("labels-ok", buf, n);
    n = make_idx(buf, sizeof buf, 0x08, 3, img_dims, 32);
    const char *images = write_plain("images-ok", buf, n);
    bk_dataset *ok = bk_idx_load(images, labels, 10);
    CHECK(ok && ok->n == 2 && ok->shape[1] == 4 && ok->shape[2] == 4);
    CHECK(ok && ok->x[1] == 7.0f / 255.0f && ok->y[1] == 7);
    bk_dataset_free(ok);

    const char *missing = tmp_path("no-such-file");
    CHECK_IDX_ERR(missing, labels, 10, missing, "cannot open: No such file or directory");

    const char *empty = write_plain("empty", "", 0);
    CHECK_IDX_ERR(empty, labels, 10, empty, "the file is empty");

    const char *dir = tmp_dir("a-directory");
    CHECK_IDX_ERR(dir, labels, 10, dir, "not a regular file");

    const char *tiny = write_plain("tiny", "\0\0", 2);
    CHECK_IDX_ERR(tiny, labels, 10, tiny, "file is 2 bytes, too short for an IDX header");

    const char *magic = write_plain("bad-magic", "\x01\x00\x08\x03\0\0\0\1\0\0\0\1\0\0\0\1x", 17);
    CHECK_IDX_ERR(magic, labels, 10, magic, "not an IDX file: magic number 0x01000803");

    n = make_idx(buf, sizeof buf, 0x0D, 3, img_dims, 32 * 4);
    const char *floats = write_plain("float-images", buf, n);
    CHECK_IDX_ERR(floats, labels, 10, floats, "IDX element type 0x0d is not supported");

    /* a labels file where the images belong, named as the real one would be */
    tmp_dir("swapped");
    n = make_idx(buf, sizeof buf, 0x08, 1, lab_dims, 2);
    const char *as_images = write_plain("swapped/train-images-idx3-ubyte", buf, n);
    CHECK_ERR(idx_load_v(as_images, labels, 10),
              "train-images-idx3-ubyte: expected an IDX images file (3 dims), found a labels file (1 dim)");
    CHECK_ERR(idx_load_v(images, images, 10),
              "images-ok: expected an IDX labels file (1 dim), found an images file (3 dims)");
    uint32_t dims2[2] = {2, 16};
    n = make_idx(buf, sizeof buf, 0x08, 2, dims2, 32);
    const char *two = write_plain("two-dims", buf, n);
    CHECK_IDX_ERR(two, labels, 10, two, "expected an IDX images file (3 dims), found 2 dims");

    n = make_idx(buf, sizeof buf, 0x08, 3, img_dims, 0);
    const char *cut = write_plain("cut-header", buf, 10);
    CHECK_IDX_ERR(cut, labels, 10, cut, "file ends inside the IDX header (6 of 12 bytes of dims)");

    uint32_t huge[3] = {0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFFu};
    n = make_idx(buf, sizeof buf, 0x08, 3, huge, 16);
    const char *ovf = write_plain("overflow", buf, n);
    CHECK_IDX_ERR(ovf, labels, 10, ovf, "dimensions 4294967295 x 4294967295 x 4294967295 overflow");

    uint32_t zero[3] = {2, 0, 4};
    n = make_idx(buf, sizeof buf, 0x08, 3, zero, 0);
    const char *z = write_plain("zero-dim", buf, n);
    CHECK_IDX_ERR(z, labels, 10, z, "dimensions 2 x 0 x 4: a zero dimension leaves no data");

    CHECK_ERR(idx_load_v(images, labels, 0), "n_classes 0 is outside 1..256");
    CHECK_ERR(idx_load_v(NULL, labels, 10), "images path is NULL");
}

TEST(idx_rejects_bad_sizes) {
    unsigned char buf[4096];
    uint32_t img_dims[3] = {2, 4, 4}, lab_dims[1] = {2};
    size_t n = make_idx(buf, sizeof buf, 0x08, 1, lab_dims, 2);
    const char *labels = write_plain("labels-ok", buf, n);

    n = make_idx(buf, sizeof buf, 0x08, 3, img_dims, 31);
    const char *s = write_plain("short", buf, n);
    CHECK_IDX_ERR(s, labels, 10, s,
                  "file is shorter than its header says: dimensions 2 x 4 x 4 "
                  "need 32 data bytes, the file has 31");
    n = make_idx(buf, sizeof buf, 0x08, 3, img_dims, 35);
    const char *l = write_plain("long", buf, n);
    CHECK_IDX_ERR(l, labels, 10, l,
                  "file is longer than its header says: dimensions 2 x 4 x 4 "
                  "need 32 data bytes, the file has 35 (3 extra)");
    n = make_idx(buf, sizeof buf, 0x08, 3, img_dims, 31);
    const char *sg = write_gz("short.gz", buf, n);
    CHECK_IDX_ERR(sg, labels, 10, sg,
                  "decompressed data is shorter than its header says: "
                  "dimensions 2 x 4 x 4 need 32 data bytes, the file has 31");
    n = make_idx(buf, sizeof buf, 0x08, 3, img_dims, 33);
    const char *lg = write_gz("long.gz", buf, n);
    CHECK_IDX_ERR(lg, labels, 10, lg, "decompressed data is longer than its header says");

    /* A header claiming 4 GiB over 100 bytes of gzip data: refused once the stream ends,
     * having allocated no more than the first 1 MiB chunk. */
    uint32_t big[3] = {0xFFFFFFFFu, 1, 1};
    n = make_idx(buf, sizeof buf, 0x08, 3, big, 100);
    const char *bg = write_gz("claims-4GiB.gz", buf, n);
    CHECK_IDX_ERR(bg, labels, 10, bg,
                  "decompressed data is shorter than its header says: "
                  "dimensions 4294967295 x 1 x 1 need 4294967295 data bytes, the file has 100");
    /* the same as a plain file is refused from its size, before any allocation */
    const char *bp = write_plain("claims-4GiB", buf, n);
    CHECK_IDX_ERR(bp, labels, 10, bp,
                  "file is shorter than its header says: "
                  "dimensions 4294967295 x 1 x 1 need 4294967295 data bytes, the file has 100");

    const char *eg = write_gz("empty.gz", "", 0);
    CHECK_IDX_ERR(eg, labels, 10, eg, "the file decompresses to nothing");

    /* counts and label values */
    uint32_t three[1] = {3};
    n = make_idx(buf, sizeof buf, 0x08, 1, three, 3);
    const char *l3 = write_plain("labels-3", buf, n);
    n = make_idx(buf, sizeof buf, 0x08, 3, img_dims, 32);
    const char *images = write_plain("images-ok", buf, n);
    char want[1024];
    snprintf(want, sizeof want, "%s has 2 images but %s has 3 labels", images, l3);
    CHECK_ERR(idx_load_v(images, l3, 10), want);
    /* pattern labels are 0 and 7 */
    CHECK_IDX_ERR(images, labels, 7, labels, "label 7 at index 1 is not a class (expected 0..6)");
}

TEST(idx_rejects_bad_gzip) {
    /* random bytes: deflate stores them, so a flipped byte is caught by the CRC */
    unsigned char buf[3000];
    uint32_t dims[3] = {3, 28, 28}, lab_dims[1] = {3};
    size_t n = make_idx(buf, sizeof buf, 0x08, 1, lab_dims, 3);
    const char *labels = write_plain("labels-3", buf, n);
    n = make_idx(buf, sizeof buf, 0x08, 3, dims, 3 * 784);
    bk_rng rng;
    bk_rng_seed(&rng, 7);
    for (size_t i = 16; i < n; i++) buf[i] = (unsigned char)bk_rng_u32(&rng);
    const char *good = write_gz("images.gz", buf, n);
    bk_dataset *ds = bk_idx_load(good, labels, 10);
    CHECK(ds && ds->n == 3 && ds->x[0] == (float)buf[16] / 255.0f);
    bk_dataset_free(ds);

    FILE *f = fopen(good, "rb"); /* the compressed bytes */
    unsigned char raw[8192];
    size_t gz_n = f ? fread(raw, 1, sizeof raw, f) : 0;
    if (f) fclose(f);
    CHECK(gz_n > 1000);

    raw[gz_n / 2] ^= 0x55;
    const char *flip = write_plain("flipped.gz", raw, gz_n);
    CHECK_IDX_ERR(flip, labels, 10, flip, "corrupt gzip stream (incorrect data check)");
    raw[gz_n / 2] ^= 0x55;

    const char *cut = write_plain("truncated.gz", raw, gz_n / 2);
    CHECK_IDX_ERR(cut, labels, 10, cut, "truncated gzip stream: it ends after");

    /* a broken deflate stream (not just a bad checksum) */
    unsigned char zeros[64] = {0};
    uint32_t lab64[1] = {64 - 8};
    make_idx(zeros, sizeof zeros, 0x08, 1, lab64, 0);
    const char *zg = write_gz("zeros.gz", zeros, sizeof zeros);
    f = fopen(zg, "rb");
    gz_n = f ? fread(raw, 1, sizeof raw, f) : 0;
    if (f) fclose(f);
    raw[10] = 0xff; /* first byte of the deflate data: an invalid block type */
    const char *bad = write_plain("bad-deflate.gz", raw, gz_n);
    CHECK_IDX_ERR(good, bad, 10, bad, "corrupt gzip stream (invalid block type)");
}

static bk_dataset *fashion_v(const char *dir, bool train) {
    bk_dataset *ds = bk_fashion_mnist_load(dir, train);
    if (!ds && getenv("BRICK_TEST_VERBOSE")) printf("    %s\n", bk_last_error());
    return ds;
}

TEST(fashion_mnist_missing) {
    CHECK_ERR(fashion_v("no/such/dir", true),
              "fashion_mnist: no/such/dir: No such file or directory (looked for "
              "no/such/dir/train-images-idx3-ubyte[.gz] and no/such/dir/train-labels-idx1-ubyte[.gz])");
    const char *d = tmp_dir("half");
    unsigned char buf[64];
    uint32_t dims[1] = {2};
    size_t n = make_idx(buf, sizeof buf, 0x08, 1, dims, 2);
    write_plain("half/t10k-labels-idx1-ubyte", buf, n);
    char want[512];
    snprintf(want, sizeof want,
             "fashion_mnist: the test set is not in %s: found no "
             "t10k-images-idx3-ubyte or t10k-images-idx3-ubyte.gz",
             d);
    CHECK_ERR(fashion_v(d, false), want);
    CHECK_ERR(fashion_v(d, true),
              "found no train-images-idx3-ubyte or "
              "train-images-idx3-ubyte.gz, and train-labels-idx1-ubyte or train-labels-idx1-ubyte.gz");
    CHECK_ERR(fashion_v(NULL, true), "directory is NULL");
}

/* Other data sets in MNIST's format (MNIST digits): class names from classes.txt, else
 * Fashion-MNIST's only for its labels, else none. */
TEST(idx_class_names) {
    const char *d = tmp_dir("digits");
    unsigned char img[128], lab[64];
    uint32_t idims[3] = {20, 2, 2}, ldims[1] = {20};
    size_t ni = make_idx(img, sizeof img, 0x08, 3, idims, 80);
    size_t nl = make_idx(lab, sizeof lab, 0x08, 1, ldims, 20); /* labels 0, 7, 4, 1, 8, ... */
    write_plain("digits/train-images-idx3-ubyte", img, ni);
    write_plain("digits/train-labels-idx1-ubyte", lab, nl);
    bk_dataset *ds = bk_fashion_mnist_load(d, true);
    CHECK(ds && ds->n == 20 && ds->n_classes == 10 && ds->class_names == NULL);
    bk_dataset_free(ds);
    /* Fashion-MNIST's first 16 training labels: its names */
    static const unsigned char head[16] = {9, 0, 0, 3, 0, 2, 7, 2, 5, 5, 0, 9, 5, 5, 7, 9};
    memcpy(lab + 8, head, 16);
    write_plain("digits/train-labels-idx1-ubyte", lab, nl);
    ds = bk_fashion_mnist_load(d, true);
    CHECK(ds && ds->class_names && !strcmp(ds->class_names[9], "Ankle boot"));
    bk_dataset_free(ds);
    /* a names file wins, and sets the class count */
    static const char names[] = "zero\r\none\ntwo\nthree\nfour\nfive\nsix\nseven\neight\nnine\nten\n\n";
    write_plain("digits/classes.txt", names, sizeof names - 1);
    ds = bk_fashion_mnist_load(d, true);
    CHECK(ds && ds->n_classes == 11 && ds->class_names);
    if (ds && ds->class_names)
        CHECK(!strcmp(ds->class_names[0], "zero") && !strcmp(ds->class_names[10], "ten"));
    bk_dataset_free(ds);
    write_plain("digits/classes.txt", "a\nb\nc\n", 6);
    CHECK_ERRS(bk_fashion_mnist_load(d, true), "idx: ", "classes.txt", "3 names, but sample 0 has label 9");
    write_plain("digits/classes.txt", "a\n\nb\n", 5);
    CHECK_ERRS(bk_fashion_mnist_load(d, true), "classes.txt", "line 2: an empty name");
    write_plain("digits/classes.txt", "\n", 1);
    CHECK_ERRS(bk_fashion_mnist_load(d, true), "classes.txt", "no class names");
}

/* ---- data sets from arrays --------------------------------------------------------------- */

TEST(dataset_from_arrays) {
    float x[6] = {1, 2, 3, 4, 5, 6};
    int64_t y[3] = {0, 2, 1};
    bk_dataset *ds = bk_dataset_from_arrays(3, BK_SHAPE(2), x, y, 3, NULL, 0);
    CHECK(ds && ds->n == 3 && ds->ndim == 1 && ds->shape[0] == 2 && ds->sample_numel == 2);
    if (ds) {
        x[0] = 100; /* copied, not borrowed */
        CHECK(ds->x[0] == 1 && ds->y[1] == 2 && ds->n_classes == 3 && ds->targets == NULL);
        CHECK(bk_dataset_normalize(ds, 3.5f, 2.0f) == 0);
        CHECK(ds->x[0] == -1.25f && ds->x[5] == 1.25f);
    }
    CHECK_FAILS_INT(bk_dataset_normalize(ds, 0.0f, 0.0f), "std > 0");
    CHECK_FAILS_INT(bk_dataset_normalize(ds, NAN, 1.0f), "finite mean");
    CHECK_FAILS_INT(bk_dataset_normalize(NULL, 0.0f, 1.0f), "data set is NULL");
    bk_dataset_free(ds);

    float t[3] = {0.5f, 1.5f, 2.5f};
    ds = bk_dataset_from_arrays(3, BK_SHAPE(1, 2), x, NULL, 0, t, 1);
    CHECK(ds && ds->y == NULL && ds->n_classes == 0 && ds->targets && ds->targets[2] == 2.5f);
    CHECK(ds && ds->ndim == 2 && ds->sample_numel == 2);
    bk_dataset_free(ds);
    bk_dataset_free(NULL);

    y[1] = 3;
    CHECK_ERR(bk_dataset_from_arrays(3, BK_SHAPE(2), x, y, 3, NULL, 0),
              "label 3 at index 1 is not a class (expected 0..2)");
    CHECK_ERR(bk_dataset_from_arrays(3, BK_SHAPE(2), x, NULL, 3, NULL, 0),
              "n_classes 3 given without labels");
    CHECK_ERR(bk_dataset_from_arrays(3, BK_SHAPE(2), x, NULL, 0, t, 0), "bad target_dim 0");
    CHECK_ERR(bk_dataset_from_arrays(3, BK_SHAPE(2), NULL, NULL, 0, NULL, 0), "x is NULL");
    CHECK_ERR(bk_dataset_from_arrays(-1, BK_SHAPE(2), x, NULL, 0, NULL, 0), "negative number");
    CHECK_ERR(bk_dataset_from_arrays(3, BK_SHAPE(-2), x, NULL, 0, NULL, 0), "negative dimension");
    CHECK_ERR(bk_dataset_from_arrays(INT64_MAX / 2, BK_SHAPE(4), x, NULL, 0, NULL, 0), "too many");
}

/* ---- loaders ----------------------------------------------------------------------------- */

/* n samples of shape (2,): x = (i, -i), y = i % 10. */
static bk_dataset *counting_set(int64_t n) {
    float *x = malloc((size_t)(2 * n) * sizeof(float) + 1);
    int64_t *y = malloc((size_t)n * sizeof(int64_t) + 1);
    for (int64_t i = 0; i < n; i++) {
        x[2 * i] = (float)i;
        x[2 * i + 1] = (float)-i;
        y[i] = i % 10;
    }
    bk_dataset *ds = bk_dataset_from_arrays(n, BK_SHAPE(2), x, y, 10, NULL, 0);
    free(x);
    free(y);
    return ds;
}

/* Runs one epoch, writing the sample order into order[] (n entries); checks that x and y
 * agree with the order. Returns the number of batches. */
static int64_t epoch_order(bk_loader *l, int64_t *order, int64_t n, bool start) {
    if (start) bk_loader_start(l);
    int64_t k = 0, batches = 0, B;
    bk_tensor *x;
    const int64_t *y;
    while ((B = bk_loader_next(l, &x, &y, NULL)) > 0) {
        CHECK(x && x->ndim == 2 && x->shape[0] == B && x->shape[1] == 2 && y);
        for (int64_t b = 0; b < B && x && y && k < n; b++, k++) {
            order[k] = (int64_t)x->data[2 * b];
            CHECK(x->data[2 * b + 1] == -x->data[2 * b]);
            CHECK(y[b] == order[k] % 10);
        }
        batches++;
        bk_arena_reset(NULL);
    }
    CHECK(B == 0);
    return batches;
}

static bool is_permutation(const int64_t *order, int64_t n) {
    char seen[1000] = {0};
    for (int64_t i = 0; i < n; i++) {
        if (order[i] < 0 || order[i] >= n || seen[order[i]]) return false;
        seen[order[i]] = 1;
    }
    return true;
}

TEST(loader_batches) {
    bk_dataset *ds = counting_set(10);
    bk_loader *l = bk_loader_new(ds, 3, false, 0, false);
    bk_loader *d = bk_loader_new(ds, 3, false, 0, true);
    CHECK(bk_loader_num_batches(l) == 4 && bk_loader_num_batches(d) == 3);
    int64_t order[10] = {0};
    /* never started: the first next starts the epoch */
    CHECK(epoch_order(l, order, 10, false) == 4);
    for (int i = 0; i < 10; i++) CHECK(order[i] == i);
    CHECK(bk_loader_next(l, NULL, NULL, NULL) == 0); /* stays at the end */

    /* batch sizes 3, 3, 3, 1; then with drop_last 3, 3, 3 */
    static const int64_t sizes[4] = {3, 3, 3, 1};
    bk_loader_start(l);
    for (int i = 0; i < 4; i++) CHECK(bk_loader_next(l, NULL, NULL, NULL) == sizes[i]);
    CHECK(bk_loader_next(l, NULL, NULL, NULL) == 0);
    bk_loader_start(d);
    for (int i = 0; i < 3; i++) CHECK(bk_loader_next(d, NULL, NULL, NULL) == 3);
    CHECK(bk_loader_next(d, NULL, NULL, NULL) == 0);

    /* a batch larger than the data set */
    bk_loader *big = bk_loader_new(ds, 64, true, 1, false);
    bk_loader *none = bk_loader_new(ds, 64, true, 1, true);
    CHECK(bk_loader_num_batches(big) == 1 && bk_loader_num_batches(none) == 0);
    CHECK(epoch_order(big, order, 10, true) == 1 && is_permutation(order, 10));
    CHECK(epoch_order(none, order, 10, true) == 0);

    CHECK_ERR(bk_loader_new(ds, 0, false, 0, false), "batch_size 0 must be >= 1");
    CHECK_ERR(bk_loader_new(NULL, 4, false, 0, false), "data set is NULL");
    CHECK_FAILS_INT(bk_loader_next(NULL, NULL, NULL, NULL), "loader is NULL");
    bk_loader_free(l);
    bk_loader_free(d);
    bk_loader_free(big);
    bk_loader_free(none);
    bk_loader_free(NULL);
    bk_dataset_free(ds);

    /* an empty data set has no batches */
    ds = bk_dataset_from_arrays(0, BK_SHAPE(2), NULL, NULL, 0, NULL, 0);
    l = bk_loader_new(ds, 4, true, 0, false);
    CHECK(ds && l && bk_loader_num_batches(l) == 0);
    bk_tensor *x = (bk_tensor *)1;
    CHECK(bk_loader_next(l, &x, NULL, NULL) == 0 && x == NULL);
    bk_loader_free(l);
    bk_dataset_free(ds);
}

TEST(loader_shuffle) {
    enum { N = 100 };
    bk_dataset *ds = counting_set(N);
    bk_loader *a = bk_loader_new(ds, 7, true, 42, false);
    bk_loader *b = bk_loader_new(ds, 7, true, 42, false);
    bk_loader *c = bk_loader_new(ds, 7, true, 43, false);
    int64_t a1[N], a2[N], b1[N], b2[N], c1[N];
    CHECK(epoch_order(a, a1, N, true) == 15);
    CHECK(epoch_order(a, a2, N, true) == 15);
    epoch_order(b, b1, N, true);
    epoch_order(b, b2, N, true);
    epoch_order(c, c1, N, true);
    CHECK(is_permutation(a1, N) && is_permutation(a2, N) && is_permutation(c1, N));
    CHECK(memcmp(a1, b1, sizeof a1) == 0); /* same seed, same orders */
    CHECK(memcmp(a2, b2, sizeof a2) == 0);
    CHECK(memcmp(a1, a2, sizeof a1) != 0); /* a new order each epoch */
    CHECK(memcmp(a1, c1, sizeof a1) != 0); /* another seed, another order */
    int64_t fixed = 0;
    for (int i = 0; i < N; i++) fixed += a1[i] == i;
    CHECK(fixed < 10); /* actually shuffled (a random permutation fixes ~1 point) */
    bk_loader_free(a);
    bk_loader_free(b);
    bk_loader_free(c);
    bk_dataset_free(ds);
}

TEST(loader_resume) {
    enum { N = 50 };
    bk_dataset *ds = counting_set(N);
    bk_loader *a = bk_loader_new(ds, 8, true, 7, true);
    int64_t e1[N], e2[N], e3[N], r2[N], r3[N];
    epoch_order(a, e1, N, true);
    bk_rng saved = bk_loader_rng(a); /* between epochs 1 and 2 */
    epoch_order(a, e2, N, true);
    epoch_order(a, e3, N, true);

    bk_loader *r = bk_loader_new(ds, 8, true, 999, true); /* any seed: the rng replaces it */
    bk_loader_set_rng(r, saved);
    CHECK(bk_loader_rng(r).state == saved.state && bk_loader_rng(r).inc == saved.inc);
    epoch_order(r, r2, N, true);
    epoch_order(r, r3, N, true);
    /* drop_last: 6 batches of 8 = the first 48 positions */
    CHECK(memcmp(e2, r2, 48 * sizeof(int64_t)) == 0);
    CHECK(memcmp(e3, r3, 48 * sizeof(int64_t)) == 0);
    CHECK(memcmp(e1, e2, 48 * sizeof(int64_t)) != 0);
    bk_loader_free(a);
    bk_loader_free(r);
    bk_dataset_free(ds);
}

/* After the first epoch, batches reuse the arena's memory: no allocation per batch. */
TEST(loader_allocates_nothing_per_batch) {
    bk_dataset *ds = bk_fashion_mnist_load(SUBSET, false);
    CHECK(ds != NULL);
    if (!ds) return;
    bk_loader *l = bk_loader_new(ds, 128, true, 1, false);
    CHECK(bk_loader_num_batches(l) == 8);
    bk_arena *arena = bk_arena_current();
    uint64_t after_first = 0;
    for (int epoch = 0; epoch < 3; epoch++) {
        bk_loader_start(l);
        bk_tensor *x;
        const int64_t *y;
        int64_t B, seen = 0, label_sum = 0;
        while ((B = bk_loader_next(l, &x, &y, NULL)) > 0) {
            CHECK(x->ndim == 4 && x->shape[0] == B && x->shape[1] == 1 && x->shape[2] == 28 &&
                  x->shape[3] == 28);
            for (int64_t b = 0; b < B; b++) label_sum += y[b];
            seen += B;
            bk_arena_reset(NULL);
        }
        CHECK(seen == 1000);
        long long want = 0;
        for (int64_t i = 0; i < ds->n; i++) want += ds->y[i];
        CHECK(label_sum == want);
        if (epoch == 0) after_first = bk_arena_allocations(arena);
    }
    CHECK(bk_arena_allocations(arena) == after_first);
    bk_loader_free(l);
    bk_dataset_free(ds);
}

TEST(loader_targets) {
    float x[8] = {0, 1, 2, 3, 4, 5, 6, 7}, t[8] = {10, 11, 12, 13, 14, 15, 16, 17};
    bk_dataset *ds = bk_dataset_from_arrays(4, BK_SHAPE(2), x, NULL, 0, t, 2);
    bk_loader *l = bk_loader_new(ds, 3, false, 0, false);
    bk_tensor *xb, *tb;
    const int64_t *y = (const int64_t *)1;
    bk_loader_start(l);
    CHECK(bk_loader_next(l, &xb, &y, &tb) == 3);
    CHECK(y == NULL && xb && tb && tb->ndim == 2 && tb->shape[0] == 3 && tb->shape[1] == 2);
    CHECK(tb && tb->data[5] == 15 && xb && xb->data[5] == 5);
    CHECK(bk_loader_next(l, &xb, &y, &tb) == 1);
    CHECK(tb && tb->shape[0] == 1 && tb->data[1] == 17 && xb && xb->data[0] == 6);
    CHECK(bk_loader_next(l, &xb, &y, &tb) == 0 && xb == NULL && tb == NULL);
    bk_loader_free(l);
    bk_dataset_free(ds);
}

/* ---- the full data set, when installed -------------------------------------------------- */

TEST(full_fashion_mnist) {
    struct stat st;
    if (stat(FULL, &st) != 0) {
        printf(
            "  skip full_fashion_mnist: %s is not installed (apt-get install "
            "dataset-fashion-mnist)\n",
            FULL);
        return;
    }
    double t0 = now_s();
    bk_dataset *train = bk_fashion_mnist_load(FULL, true);
    double t1 = now_s();
    CHECK(train != NULL);
    if (train) {
        printf("  full training set: %lld images loaded in %.0f ms\n", (long long)train->n, 1e3 * (t1 - t0));
        CHECK(train->n == 60000 && train->sample_numel == 784);
        static const int64_t last[5] = {5, 1, 3, 0, 5};
        for (int i = 0; i < 5; i++) CHECK(train->y[59995 + i] == last[i]);
        CHECK(byte_sum(train, 0, 60000) == 3431114169LL);
        CHECK(byte_sum(train, 59999, 60000) == 16684);
    }
    bk_dataset_free(train);
    bk_dataset *test = bk_fashion_mnist_load(FULL, false);
    CHECK(test && test->n == 10000);
    static const int64_t last_test[5] = {9, 1, 8, 1, 5};
    for (int i = 0; i < 5 && test; i++) CHECK(test->y[9995 + i] == last_test[i]);
    bk_dataset_free(test);
}

int main(void) {
    if (!files_init("data", NULL)) return 1;
    RUN(subset_train);
    RUN(subset_test);
    RUN(plain_equals_gzip);
    RUN(idx_rejects_bad_headers);
    RUN(idx_rejects_bad_sizes);
    RUN(idx_rejects_bad_gzip);
    RUN(fashion_mnist_missing);
    RUN(idx_class_names);
    RUN(dataset_from_arrays);
    RUN(loader_batches);
    RUN(loader_shuffle);
    RUN(loader_resume);
    RUN(loader_allocates_nothing_per_batch);
    RUN(loader_targets);
    RUN(full_fashion_mnist);
    files_cleanup();
    return test_summary("test_data");
}
