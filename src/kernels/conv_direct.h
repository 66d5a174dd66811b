/* conv_direct.h - private to brick: a stride-1 2-d convolution computed directly, without
 * a column matrix (src/kernels/conv_direct.c), for src/ops/conv.c.
 *
 * The same kernel serves the forward (x -> y) and the backward to the input
 * (dy -> dx: a stride-1 convolution of dy padded by (KH-1) DH - PH with the weights
 * transposed and flipped). The layout and the loops are described in conv_direct.c.
 */
#ifndef BRICK_KERNELS_CONV_DIRECT_H
#define BRICK_KERNELS_CONV_DIRECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One stride-1 convolution of one group: C input channels of H x W, O output channels of
 * OH x OW, kernel KH x KW, padding PH, PW, dilation DH, DW; chunks of up to nimg images. */
typedef struct bk__dconv {
    int64_t C, H, W, O, KH, KW, ph, pw, dh, dw, OH, OW;
    int64_t nimg;  /* most images per chunk */
    int64_t Wp;    /* plane row: max(W + PW, OW) floats */
    int64_t rows;  /* plane rows per image: max(H + PH, OH) */
    int64_t lead;  /* zeros before the first row: PW */
    int64_t Qmax;  /* wide outputs of a chunk of nimg images (a multiple of the vector) */
    int64_t plane; /* floats of one channel's plane */
    int64_t Opad;  /* O rounded up to the kernel's block of output channels */
} bk__dconv;

/* Fills d for the forward of a convolution with these sizes (transposed = false), or for
 * its backward to the input (transposed = true: d then describes the stride-1 convolution
 * dy -> dx, of O channels of OH x OW into C channels of H x W, padding (KH-1) DH - PH).
 * Returns false when the direct kernel does not apply: no AVX-512F or AVX2+FMA on this CPU,
 * BRICK_GEMM_KERNEL=portable, the thread's test switch off, a transposed padding that would
 * be negative, more than 64 taps, or sizes past its budget. The caller then keeps
 * im2col + GEMM. */
bool bk__dconv_plan(bk__dconv *d, int64_t C, int64_t H, int64_t W, int64_t O, int64_t KH, int64_t KW,
                    int64_t ph, int64_t pw, int64_t dh, int64_t dw, int64_t nimg, bool transposed);

/* Floats of the per-thread work buffer of bk__dconv_run; of the packed weights. */
size_t bk__dconv_work(const bk__dconv *d);
size_t bk__dconv_wsize(const bk__dconv *d);

/* Packs one group's weights w (Og, Cg, KH, KW) into wp (bk__dconv_wsize floats) for d: as
 * they are, or transposed and flipped when d was planned with transposed = true. */
void bk__dconv_pack(const bk__dconv *d, const float *w, bool transposed, float *wp);

/* For nimg <= d->nimg images: dst[j][o] (=, or += when accumulate) sum over c, kh, kw of
 * w[o][c][kh][kw] src[j][c][oh + kh DH - PH][ow + kw DW - PW] (+ bias[o]). src's images are
 * src_img floats apart, channels H W; dst's images dst_img apart, channels OH OW. bias may
 * be NULL. work: bk__dconv_work floats, 64-byte aligned. Single-threaded. */
void bk__dconv_run(const bk__dconv *d, int64_t nimg, const float *src, int64_t src_img, const float *wp,
                   const float *bias, float *dst, int64_t dst_img, bool accumulate, float *work);

/* The weight gradient of a forward plan d, for nimg <= d->nimg images: dw[o][c][kh][kw]
 * (=, or += when accumulate) sum over the images and output pixels of
 * dy[j][o][oh][ow] src[j][c][oh + kh DH - PH][ow + kw DW - PW]. src as for bk__dconv_run,
 * dy's images dy_img floats apart, channels OH OW; dw is one group's (O, C, KH, KW).
 * work: bk__dconv_work floats. Single-threaded; the order of the sum depends only on d. */
void bk__dconv_dweights(const bk__dconv *d, int64_t nimg, const float *src, int64_t src_img, const float *dy,
                        int64_t dy_img, float *dw, bool accumulate, float *work);

/* Test hook: false makes bk__dconv_plan fail on this thread, so conv2d takes its im2col +
 * GEMM path (the reference the direct kernel is compared with). Default true. */
void bk__dconv_enable(bool on);

#endif /* BRICK_KERNELS_CONV_DIRECT_H */
