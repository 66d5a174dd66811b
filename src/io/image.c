/* image.c - one image file as a float32 tensor (C, H, W) in [0, 1], converted and resized
 * as torchvision's Grayscale and Resize do, for `brick predict` and image data sets.
 *
 * Formats, told apart by their first bytes (never by the file name):
 *   PNG  (\x89PNG\r\n\x1a\n) and JPEG (\xff\xd8\xff): decoded by stb_image, Debian's
 *        libstb (libstb-dev), which reads both formats, 8 and 16 bit (PNG), grey, grey +
 *        alpha, RGB and RGBA, baseline and progressive JPEG. Only these two signatures ever
 *        reach it, so its other decoders (GIF, PSD, HDR, ...) are unreachable from a file.
 *        Without libstb at build time (BK_HAVE_STB undefined) both are refused with a
 *        message saying how to get them.
 *   PGM  P2 (ASCII) and P5 (binary), maxval 1..65535 (16-bit samples big-endian), read
 *        here: a header of four whitespace-separated fields with # comments.
 * Limits, checked before anything is decoded: 64 MiB of file, 2^26 pixels (stb_image also
 * caps each side at 2^24).
 *
 * Pipeline, in float32 from the decoded samples (each scaled by its maxval: 255, 65535 or
 * the PGM's), so nothing is rounded to 8 bits between steps as PIL would:
 *   1. channels: alpha is dropped (as PIL's convert("RGB") / ("L") do); grey -> RGB copies
 *      the grey plane (torchvision Grayscale(3)'s inverse); RGB -> grey is torchvision's
 *      rgb_to_grayscale, 0.2989 R + 0.587 G + 0.114 B.
 *   2. size: torchvision's Resize((H, W)) on a tensor with antialias=True, i.e.
 *      torch.nn.functional.interpolate(mode="bilinear", align_corners=False,
 *      antialias=True): separable triangle filters whose support widens by the scale when
 *      shrinking (PIL's bilinear resampling), weights normalised per output pixel. Rows
 *      first, then columns. An image already H x W is not touched.
 * Every failure returns NULL with "image: <path>: <problem>".
 */
#define _XOPEN_SOURCE 700 /* fileno */

#include "internal.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#ifdef BK_HAVE_STB
#include <stb_image.h>
#endif

#define IMG_MAX_BYTES (64u << 20)
#define IMG_MAX_PIXELS (INT64_C(1) << 26)

#define img_fail(path, ...) bk__file_error("image", path, __VA_ARGS__)

/* A decoded image: samples in [0, 1], planar (c, h, w). */
typedef struct img {
    int64_t h, w;
    int c; /* 1, 2, 3 or 4 as stored */
    float *px;
} img;

/* ---- PGM ------------------------------------------------------------------------------ */

/* Skips whitespace and # comments. */
static size_t pgm_space(const unsigned char *p, size_t n, size_t i) {
    for (;;) {
        while (i < n && (p[i] == ' ' || p[i] == '\t' || p[i] == '\n' || p[i] == '\r')) i++;
        if (i < n && p[i] == '#') {
            while (i < n && p[i] != '\n') i++;
            continue;
        }
        return i;
    }
}

/* A decimal field of at most 9 digits at *i (after whitespace). */
static bool pgm_int(const unsigned char *p, size_t n, size_t *i, long *out) {
    *i = pgm_space(p, n, *i);
    long v = 0;
    size_t start = *i;
    while (*i < n && p[*i] >= '0' && p[*i] <= '9' && *i - start < 9) v = v * 10 + (p[(*i)++] - '0');
    *out = v;
    return *i > start && (*i >= n || p[*i] < '0' || p[*i] > '9');
}

static bool pgm_decode(const char *path, const unsigned char *p, size_t n, img *im, bk_image_info *info) {
    bool ascii = p[1] == '2';
    size_t i = 2;
    long w, h, maxval;
    if (!pgm_int(p, n, &i, &w) || !pgm_int(p, n, &i, &h) || !pgm_int(p, n, &i, &maxval))
        return img_fail(path, "malformed PGM header (width, height, maxval)");
    if (w < 1 || h < 1 || (int64_t)w * h > IMG_MAX_PIXELS)
        return img_fail(path,
                        "PGM size %ldx%ld: each side must be at least 1 and the image at most %lld pixels", w,
                        h, (long long)IMG_MAX_PIXELS);
    if (maxval < 1 || maxval > 65535) return img_fail(path, "PGM maxval %ld is not in 1..65535", maxval);
    int bytes = maxval > 255 ? 2 : 1;
    im->h = h, im->w = w, im->c = 1;
    info->bits = bytes * 8;
    im->px = bk__malloc((size_t)(w * h) * sizeof *im->px);
    if (!im->px) return img_fail(path, "out of memory for %ldx%ld pixels", w, h);
    int64_t count = (int64_t)w * h;
    if (ascii) {
        for (int64_t k = 0; k < count; k++) {
            long v;
            if (!pgm_int(p, n, &i, &v))
                return img_fail(path, "P2 PGM: pixel %lld of %lld is missing or not a number", (long long)k,
                                (long long)count);
            if (v > maxval)
                return img_fail(path, "P2 PGM: pixel %lld is %ld, above maxval %ld", (long long)k, v, maxval);
            im->px[k] = (float)v / (float)maxval;
        }
        return true;
    }
    if (i >= n) return img_fail(path, "P5 PGM: no pixel data after the header");
    i++; /* one whitespace byte ends the header */
    if ((uint64_t)(n - i) < (uint64_t)count * (uint64_t)bytes)
        return img_fail(path, "truncated P5 PGM: %zu pixel bytes of %lld", n - i, (long long)(count * bytes));
    for (int64_t k = 0; k < count; k++) {
        long v = bytes == 1 ? p[i + (size_t)k] : (long)p[i + 2 * (size_t)k] << 8 | p[i + 2 * (size_t)k + 1];
        if (v > maxval)
            return img_fail(path, "P5 PGM: pixel %lld is %ld, above maxval %ld", (long long)k, v, maxval);
        im->px[k] = (float)v / (float)maxval;
    }
    return true;
}

/* ---- PNG and JPEG through stb_image --------------------------------------------------- */

#ifdef BK_HAVE_STB
/* stb_image's reason ("bad IHDR len"), or a general one where it gives none. */
static const char *stb_reason(void) {
    const char *r = stbi_failure_reason();
    return r && *r ? r : "corrupt, truncated or of a kind it does not decode";
}
#endif

static bool stb_decode(const char *path, const unsigned char *p, size_t n, const char *format, img *im,
                       bk_image_info *info) {
#ifdef BK_HAVE_STB
    int w, h, c;
    if (n > INT32_MAX || !stbi_info_from_memory(p, (int)n, &w, &h, &c))
        return img_fail(path, "not a valid %s image: %s", format, stb_reason());
    if (w < 1 || h < 1 || (int64_t)w * h > IMG_MAX_PIXELS)
        return img_fail(path, "%s size %dx%d: at most %lld pixels are read", format, w, h,
                        (long long)IMG_MAX_PIXELS);
    bool wide = stbi_is_16_bit_from_memory(p, (int)n);
    void *data = wide ? (void *)stbi_load_16_from_memory(p, (int)n, &w, &h, &c, 0)
                      : (void *)stbi_load_from_memory(p, (int)n, &w, &h, &c, 0);
    if (!data) return img_fail(path, "cannot decode the %s image: %s", format, stb_reason());
    int64_t count = (int64_t)w * h;
    im->h = h, im->w = w, im->c = c;
    info->bits = wide ? 16 : 8;
    im->px = bk__malloc((size_t)(count * c) * sizeof *im->px);
    if (!im->px) {
        stbi_image_free(data);
        return img_fail(path, "out of memory for %dx%d pixels", w, h);
    }
    /* interleaved (h, w, c) -> planar (c, h, w) */
    for (int64_t k = 0; k < count; k++)
        for (int ch = 0; ch < c; ch++)
            im->px[ch * count + k] = wide ? (float)((const uint16_t *)data)[k * c + ch] / 65535.0f
                                          : (float)((const unsigned char *)data)[k * c + ch] / 255.0f;
    stbi_image_free(data);
    return true;
#else
    (void)p, (void)n, (void)im, (void)info;
    return img_fail(path,
                    "a %s image, but this brick was built without an image decoder: install libstb-dev "
                    "(scripts/deps.sh) and rebuild; PGM images are read without it",
                    format);
#endif
}

/* ---- conversion and resizing ---------------------------------------------------------- */

/* The weights of one output position along an axis of in -> out samples: PIL's and
 * torch's antialiased bilinear (triangle) filter. Fills first[o], count[o] and
 * w[o * max_taps ...]; returns max_taps, or -1 on out of memory (*weights NULL). */
static int64_t filter_weights(int64_t in, int64_t out, int64_t **first, int64_t **count, float **weights) {
    double scale = (double)in / (double)out;
    double support = scale >= 1.0 ? scale : 1.0; /* the triangle's half-width, in input samples */
    double inv = scale >= 1.0 ? 1.0 / scale : 1.0;
    int64_t taps = (int64_t)ceil(support) * 2 + 1;
    *first = bk__malloc((size_t)out * sizeof **first);
    *count = bk__malloc((size_t)out * sizeof **count);
    *weights = bk__calloc((size_t)(out * taps), sizeof **weights);
    if (!*first || !*count || !*weights) return -1;
    for (int64_t o = 0; o < out; o++) {
        double center = scale * ((double)o + 0.5);
        int64_t lo = (int64_t)(center - support + 0.5), hi = (int64_t)(center + support + 0.5);
        if (lo < 0) lo = 0;
        if (hi > in) hi = in;
        if (hi - lo > taps) hi = lo + taps;
        double total = 0;
        float *dst = *weights + o * taps;
        for (int64_t j = lo; j < hi; j++) {
            double v = 1.0 - fabs(((double)j - center + 0.5) * inv);
            dst[j - lo] = (float)(v > 0 ? v : 0);
            total += dst[j - lo];
        }
        for (int64_t j = lo; j < hi; j++) dst[j - lo] = total > 0 ? (float)(dst[j - lo] / total) : 0.0f;
        (*first)[o] = lo;
        (*count)[o] = hi - lo;
    }
    return taps;
}

/* Resizes each of c planes (h, w) -> (H, W) into out. 0, or -1 (out of memory). */
static int resize_planes(const float *in, int c, int64_t h, int64_t w, float *out, int64_t H, int64_t W) {
    int64_t *rf = NULL, *rc = NULL, *cf = NULL, *cc = NULL;
    float *rw = NULL, *cw = NULL, *tmp = NULL;
    int rc_ = -1;
    int64_t rt = filter_weights(h, H, &rf, &rc, &rw), ct = filter_weights(w, W, &cf, &cc, &cw);
    tmp = bk__malloc((size_t)(H * w) * sizeof *tmp);
    if (rt < 0 || ct < 0 || !tmp) goto done;
    for (int ch = 0; ch < c; ch++) {
        const float *src = in + ch * h * w;
        for (int64_t o = 0; o < H; o++) { /* rows: (h, w) -> (H, w) */
            float *row = tmp + o * w;
            for (int64_t x = 0; x < w; x++) {
                double s = 0;
                for (int64_t k = 0; k < rc[o]; k++) s += (double)rw[o * rt + k] * src[(rf[o] + k) * w + x];
                row[x] = (float)s;
            }
        }
        float *dst = out + ch * H * W;
        for (int64_t y = 0; y < H; y++) /* columns: (H, w) -> (H, W) */
            for (int64_t o = 0; o < W; o++) {
                double s = 0;
                for (int64_t k = 0; k < cc[o]; k++) s += (double)cw[o * ct + k] * tmp[y * w + cf[o] + k];
                dst[y * W + o] = (float)s;
            }
    }
    rc_ = 0;
done:;
    void *blocks[] = {rf, rc, rw, cf, cc, cw, tmp};
    for (size_t k = 0; k < sizeof blocks / sizeof *blocks; k++) bk__free(blocks[k]);
    return rc_;
}

bk_tensor *bk_image_load(const char *path, int channels, int64_t height, int64_t width, bk_image_info *info) {
    bk_image_info scratch;
    if (!info) info = &scratch;
    memset(info, 0, sizeof *info);
    if (!path) {
        bk_set_error("image: load: path is NULL");
        return NULL;
    }
    if (channels != 1 && channels != 3) {
        img_fail(path, "channels %d: 1 (grey) or 3 (RGB)", channels);
        return NULL;
    }
    if (height < 1 || width < 1 || height > 65536 || width > 65536) {
        img_fail(path, "size %lldx%lld: each side must be in 1..65536", (long long)height, (long long)width);
        return NULL;
    }
    char why[256];
    FILE *f = bk__open_regular(path, why, sizeof why);
    if (!f) {
        img_fail(path, "%s", why);
        return NULL;
    }
    /* the buffer sized by the file (one byte more, to see one that grew past the limit),
     * not the limit: a folder of images reads each into a buffer of its own size, and
     * under the fuzz targets' 16 MiB allocation cap a small image still gets decoded */
    struct stat st;
    size_t cap = fstat(fileno(f), &st) == 0 && st.st_size >= 0 && (uintmax_t)st.st_size < IMG_MAX_BYTES
                     ? (size_t)st.st_size + 1
                     : IMG_MAX_BYTES + 1;
    unsigned char *buf = bk__malloc(cap);
    size_t n = buf ? fread(buf, 1, cap, f) : 0;
    bool read_error = ferror(f);
    fclose(f);
    img im = {0};
    bk_tensor *t = NULL;
    bool ok = false;
    if (!buf) {
        img_fail(path, "out of memory");
    } else if (read_error) {
        img_fail(path, "cannot read: %s", strerror(errno));
    } else if (n > IMG_MAX_BYTES) {
        img_fail(path, "larger than the %u MiB brick reads", IMG_MAX_BYTES >> 20);
    } else if (n == cap) {
        img_fail(path, "grew while it was read (more than the %zu bytes it had)", cap - 1);
    } else if (n >= 8 && !memcmp(buf, "\x89PNG\r\n\x1a\n", 8)) {
        snprintf(info->format, sizeof info->format, "PNG");
        ok = stb_decode(path, buf, n, "PNG", &im, info);
    } else if (n >= 3 && buf[0] == 0xff && buf[1] == 0xd8 && buf[2] == 0xff) {
        snprintf(info->format, sizeof info->format, "JPEG");
        ok = stb_decode(path, buf, n, "JPEG", &im, info);
    } else if (n >= 2 && buf[0] == 'P' && (buf[1] == '2' || buf[1] == '5')) {
        snprintf(info->format, sizeof info->format, "PGM");
        ok = pgm_decode(path, buf, n, &im, info);
    } else {
        img_fail(path, "not a PNG, JPEG or PGM (P2, P5) image: its first bytes are none of theirs");
    }
    bk__free(buf);
    float *conv = NULL;
    if (!ok) goto done;
    info->height = im.h, info->width = im.w, info->channels = im.c;
    /* 1. channels (alpha dropped: plane 1 of grey + alpha, plane 3 of RGBA) */
    int64_t plane = im.h * im.w;
    int colour = im.c >= 3 ? 3 : 1;
    conv = bk__malloc((size_t)(plane * channels) * sizeof *conv);
    if (!conv) {
        img_fail(path, "out of memory");
        goto done;
    }
    for (int64_t k = 0; k < plane; k++) {
        if (channels == 1 && colour == 3)
            conv[k] = 0.2989f * im.px[k] + 0.587f * im.px[plane + k] + 0.114f * im.px[2 * plane + k];
        else
            for (int ch = 0; ch < channels; ch++)
                conv[ch * plane + k] = im.px[(colour == 3 ? ch : 0) * plane + k];
    }
    /* 2. size */
    t = bk_tensor_new(BK_SHAPE(channels, height, width));
    if (!t) {
        bk__error_prefix("image: %s", path);
        goto done;
    }
    if (im.h == height && im.w == width) {
        memcpy(t->data, conv, (size_t)(plane * channels) * sizeof *conv);
    } else if (resize_planes(conv, channels, im.h, im.w, t->data, height, width) != 0) {
        img_fail(path, "out of memory resizing to %lldx%lld", (long long)height, (long long)width);
        bk_tensor_free(t);
        t = NULL;
        goto done;
    }
    /* the border's mean brightness: a light one on data with dark backgrounds means an
     * inverted image (bk_image_info) */
    double sum = 0;
    int64_t cnt = 0;
    for (int ch = 0; ch < channels; ch++)
        for (int64_t y = 0; y < height; y++)
            for (int64_t x = 0; x < width; x++)
                if (y == 0 || x == 0 || y == height - 1 || x == width - 1) {
                    sum += t->data[(ch * height + y) * width + x];
                    cnt++;
                }
    info->border_mean = cnt ? sum / (double)cnt : 0;
done:
    bk__free(conv);
    bk__free(im.px);
    return t;
}
