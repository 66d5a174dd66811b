/* test_parity_image.c - bk_image_load against torchvision's pipeline (tests/parity/
 * gen_image.py: PNG grey/RGB/RGBA/grey+alpha/16-bit, JPEG, PGM P2/P5 8/16-bit, shrunk,
 * enlarged and same-size, to grey or RGB), then the errors: files that are not images,
 * corrupt or truncated PNG, JPEG and PGM files, bad arguments, each by its message.
 * Tolerance: float32 precision (atol 1e-5) for PNG and PGM, whose samples every decoder
 * gives alike; 0.06 for JPEG, whose decoders differ (the generator says why).
 */
#define _XOPEN_SOURCE 700 /* mkdtemp, lstat (files.h) */

#include "parity.h"
#include "files.h"

#include <stdlib.h>

static const char *const CASES[] = {
    "img_png_grey_down",   "img_png_rgb_to_grey", "img_png_rgba_rgb", "img_png_la_grey",
    "img_png_grey_to_rgb", "img_png_grey16",      "img_png_up",       "img_png_same_size",
    "img_jpg_rgb_grey",    "img_jpg_grey",        "img_pgm_p5_8",     "img_pgm_p5_16",
    "img_pgm_p2",
};
static const char *current;

static double meta_num(const bk_safetensors *ref, const char *key) {
    const char *v = parity_meta(ref, key);
    return v ? atof(v) : -1;
}

static void image_case(void) {
    bk_safetensors *ref = parity_open(current, ".ref.safetensors");
    CHECK(ref != NULL);
    if (!ref) return;
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", parity_dir(), parity_meta(ref, "image"));
    int C = (int)meta_num(ref, "channels");
    int64_t H = (int64_t)meta_num(ref, "height"), W = (int64_t)meta_num(ref, "width");
    bk_image_info info;
    bk_tensor *got = bk_image_load(path, C, H, W, &info);
    if (!got) fprintf(stderr, "# %s: %s\n", current, bk_last_error());
    parity_stats s = {0};
    parity_compare(current, got, bk_safetensors_get(ref, "want"), 0, meta_num(ref, "atol"), &s);
    char stored[64];
    snprintf(stored, sizeof stored, "%lldx%lld", (long long)info.width, (long long)info.height);
    CHECK(got == NULL || !strcmp(stored, parity_meta(ref, "stored")));
    bk_tensor_free(got);
    bk_safetensors_free(ref);
}

/* ---- errors: no PyTorch needed --------------------------------------------------------- */

typedef struct bad_image {
    const char *name;
    const void *bytes;
    size_t n;
    const char *expect;
} bad_image;

static const unsigned char PNG_SIG[] = "\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x10\0\0\0\x10\x08\x00\0\0\0";
static const unsigned char JPEG_SIG[] = "\xff\xd8\xff\xe0\0\x10JFIF\0\x01\x01\0\0\x01\0\x01\0\0";

TEST(rejects_bad_images) {
#ifdef BK_HAVE_STB
    const char *png_msg = "PNG image: ", *jpeg_msg = "JPEG image: ";
#else
    const char *png_msg = "built without an image decoder", *jpeg_msg = "built without an image decoder";
#endif
    const bad_image bad[] = {
        {"empty.png", "", 0, "not a PNG, JPEG or PGM (P2, P5) image"},
        {"text.png", "hello, world\n", 13, "not a PNG, JPEG or PGM (P2, P5) image"},
        {"p6.pgm", "P6 2 2 255\n............", 23, "not a PNG, JPEG or PGM"},
        {"cut.png", PNG_SIG, 20, png_msg},
        {"corrupt.png", PNG_SIG, sizeof PNG_SIG - 1, png_msg},
        {"cut.jpg", JPEG_SIG, sizeof JPEG_SIG - 1, jpeg_msg},
        {"header.pgm", "P5 2", 4, "malformed PGM header (width, height, maxval)"},
        {"zero.pgm", "P5 0 2 255\n", 11, "PGM size 0x2: each side must be at least 1"},
        {"huge.pgm", "P5 100000 100000 255\n", 21, "at most 67108864 pixels"},
        {"maxval.pgm", "P5 2 2 70000\n", 13, "PGM maxval 70000 is not in 1..65535"},
        {"short.pgm", "P5 2 2 255\nabc", 14, "truncated P5 PGM: 3 pixel bytes of 4"},
        {"short16.pgm", "P5 2 1 65535\nabc", 16, "truncated P5 PGM: 3 pixel bytes of 4"},
        {"over16.pgm", "P5 1 1 1000\n\xff\xff", 14, "P5 PGM: pixel 0 is 65535, above maxval 1000"},
        {"p2short.pgm", "P2 2 2 255\n1 2 3", 16, "P2 PGM: pixel 3 of 4 is missing or not a number"},
        {"p2word.pgm", "P2 2 1 255\n1 x", 14, "P2 PGM: pixel 1 of 2 is missing or not a number"},
        {"p2over.pgm", "P2 1 1 7\n9", 10, "P2 PGM: pixel 0 is 9, above maxval 7"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        const char *path = tpath(bad[i].name);
        CHECK(write_file(path, bad[i].bytes, bad[i].n));
        bk_clear_error();
        bk_tensor *t = bk_image_load(path, 1, 8, 8, NULL);
        char prefix[600];
        snprintf(prefix, sizeof prefix, "image: %s: ", path);
        const char *e = bk_last_error();
        if (t || strncmp(e, prefix, strlen(prefix)) != 0 || !strstr(e, bad[i].expect)) {
            fprintf(stderr, "# %s: expected \"%s\", got %s \"%s\"\n", bad[i].name, bad[i].expect,
                    t ? "success and" : "error", e);
            test_failed_checks_++;
        }
        bk_tensor_free(t);
    }
    const char *good = tpath("good.pgm");
    CHECK(write_file(good, "P5 2 2 255\n\x00\x40\x80\xff", 15));
    CHECK_ERR(bk_image_load(NULL, 1, 2, 2, NULL), "image: load: path is NULL");
    CHECK_ERR(bk_image_load(good, 2, 2, 2, NULL), "channels 2: 1 (grey) or 3 (RGB)");
    CHECK_ERR(bk_image_load(good, 1, 0, 2, NULL), "size 0x2: each side must be in 1..65536");
    CHECK_ERR(bk_image_load(tpath("absent.png"), 1, 2, 2, NULL), "cannot open");
    CHECK_ERR(bk_image_load(tmpdir, 1, 2, 2, NULL), "not a regular file");
    bk_image_info info;
    bk_tensor *t = bk_image_load(good, 3, 2, 2, &info);
    CHECK(t && t->ndim == 3 && t->shape[0] == 3 && t->data[1] == 64 / 255.0f && t->data[4 + 3] == 1.0f);
    CHECK(!strcmp(info.format, "PGM") && info.bits == 8 && info.channels == 1 && info.width == 2);
    CHECK(fabs(info.border_mean - (0 + 64 + 128 + 255) / 4.0 / 255) < 1e-6);
    bk_tensor_free(t);
}

int main(void) {
    if (!files_init("test-parity-image", NULL)) return 1;
    RUN(rejects_bad_images);
    if (!parity_skip_all("test_parity_image", "gen_image.py"))
        for (size_t i = 0; i < sizeof CASES / sizeof *CASES; i++) {
            current = CASES[i];
#ifndef BK_HAVE_STB
            if (!strstr(CASES[i], "_pgm_")) { /* the errors above check what such a build says */
                test_skip(CASES[i], "PNG and JPEG need stb_image (this build has IMAGES=0)");
                continue;
            }
#endif
            parity_run(CASES[i], image_case, false);
        }
    files_cleanup();
    return test_summary("test_parity_image");
}
