/* conv_direct.c - a stride-1 2-d convolution computed directly: no column matrix, every
 * multiply-add an FMA on a vector of 16 (AVX-512) or 8 (AVX2) output pixels.
 *
 * Layout ("shared padding"). A chunk of nimg images of C channels is copied, one plane per
 * channel, into rows of Wp = W + PW floats: image j's row ih lands on plane row
 * PH + j R with R = H + PH, columns 0..W-1, after `lead` = PW zeros; every other float is
 * zero. A row's PW zeros on the right are also the next row's left padding, and the PH zero
 * rows after an image are the next one's top padding. (When the padding is wider than the
 * dilated kernel, the output is wider than W + PW or taller than R: then Wp = OW, R = OH,
 * with more zeros.) So one flat "wide" index
 *   q = (j R + oh) Wp + ow
 * names output pixel (j, oh, ow), and its tap (kh, kw) reads the plane at
 *   lead + q + kh DH Wp + kw DW - PW,
 * which makes the convolution, per output channel o, a sum of shifted plane vectors:
 *   yw[o][q] = sum_{c, kh, kw} w[o][c][kh][kw] xp[c][lead + q + kh DH Wp + kw DW - PW].
 * It is computed for every q < Q with whole vectors; a q with ow >= OW, or on a row between
 * two images, is junk and never copied out. The junk costs (1 - OH OW / (R Wp)) of the
 * work: 7 % on 28 x 28 with padding 1, 36 % on 4 x 4. im2col + GEMM copies each input
 * KH KW times instead, and that copy was over a third of a ResNet step.
 *
 * The weight gradient sums dy (in the same wide layout, zero at the junk q) times the
 * shifted planes over q, per (o, c, kh, kw): the junk adds 0 * x. (Where x holds an Inf or
 * NaN, such a term is NaN where im2col would have skipped it; the loss is not finite then
 * anyway.)
 *
 * Tiles: OB = 4 output channels x PV vectors of pixels in registers (AVX-512: 4 x 6 of 32
 * registers; AVX2: 4 x 3 of 16), the weights packed so that a tap's OB weights are adjacent
 * (one broadcast each). Output channels past O are zero weights, computed and dropped.
 *
 * The backward to the input is the same kernel on dy: dx[c][ih][iw] = sum over o, kh, kw of
 * w[o][c][kh][kw] dy[o][ih + PH - kh DH][iw + PW - kw DW], a convolution of dy padded by
 * (KH - 1) DH - PH with w transposed and flipped.
 *
 * Every output is one sum in a fixed order (c, then kh, kw), so results do not depend on
 * the thread count; they do differ in rounding from im2col + GEMM (another order, other
 * FMA placement), within the same float32 bound.
 */
#include "kernels/conv_direct.h"
#include "internal.h"

#include <string.h>

#define OB 4              /* output channels per tile */
#define DCONV_MAX_TAPS 64 /* KH KW; larger kernels keep im2col */

static _Thread_local bool disabled; /* bk__dconv_enable(false) */

void bk__dconv_enable(bool on) { disabled = !on; }

/* wide outputs of a chunk of nimg images, rounded up to whole vectors of 16 (so of 8 too) */
static int64_t dconv_q(const bk__dconv *d, int64_t nimg) {
    int64_t q = ((nimg - 1) * d->rows + d->OH - 1) * d->Wp + d->OW;
    return (q + 15) / 16 * 16;
}

#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__)
#define DCONV_X86 1
#include <immintrin.h>

/* GCC takes a target pragma; clang ignores it and needs its attribute pragma instead */
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx512f")
#endif
#define V __m512
#define VL 16
#define PV 6
#define TB 6
#define VLOAD(p) _mm512_loadu_ps(p)
#define VSTORE(p, v) _mm512_storeu_ps(p, v)
#define VBCAST(s) _mm512_set1_ps(s)
#define VZERO() _mm512_setzero_ps()
#define VFMA(a, b, c) _mm512_fmadd_ps(a, b, c)
#define VSUM(v) _mm512_reduce_add_ps(v)
#define FN(name) name##_avx512
#include "kernels/conv_direct_tmpl.h"
#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#endif
/* the 8 lanes of v added pairwise: (0+4, 1+5, 2+6, 3+7), then (0+2, 1+3), then 0+1 */
static inline float sum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    return _mm_cvtss_f32(s);
}
#define V __m256
#define VL 8
#define PV 3
#define TB 3
#define VLOAD(p) _mm256_loadu_ps(p)
#define VSTORE(p, v) _mm256_storeu_ps(p, v)
#define VBCAST(s) _mm256_set1_ps(s)
#define VZERO() _mm256_setzero_ps()
#define VFMA(a, b, c) _mm256_fmadd_ps(a, b, c)
#define VSUM(v) sum8(v)
#define FN(name) name##_avx2
#include "kernels/conv_direct_tmpl.h"
#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif
#endif

typedef void dconv_run_fn(const bk__dconv *d, int64_t nimg, const float *src, int64_t src_img,
                          const float *wp, const float *bias, float *dst, int64_t dst_img, bool accumulate,
                          float *work);
typedef void dconv_dw_fn(const bk__dconv *d, int64_t nimg, const float *src, int64_t src_img, const float *dy,
                         int64_t dy_img, float *dw, bool accumulate, float *work);

/* The kernel of the instruction set the GEMM uses (bk_gemm_kernel: the CPU's best, or
 * BRICK_GEMM_KERNEL's choice), or NULL: then conv2d keeps im2col + GEMM. So one switch
 * picks both: avx2 runs the AVX2 convolution on an AVX-512 CPU too, and portable runs none,
 * so that choice still rounds the same on every x86-64 CPU and runs no AVX under valgrind.
 * (The GEMM picks avx512 only where AVX-512 and AVX2 run, avx2 only where AVX2 and FMA do.) */
static dconv_run_fn *best_run(void) {
#ifdef DCONV_X86
    const char *k = bk_gemm_kernel();
    if (!strncmp(k, "avx512", 6)) return run_avx512;
    if (!strncmp(k, "avx2", 4)) return run_avx2;
#endif
    return NULL;
}

bool bk__dconv_plan(bk__dconv *d, int64_t C, int64_t H, int64_t W, int64_t O, int64_t KH, int64_t KW,
                    int64_t ph, int64_t pw, int64_t dh, int64_t dw, int64_t nimg, bool transposed) {
    if (disabled || !best_run() || KH * KW > DCONV_MAX_TAPS || nimg < 1) return false;
    memset(d, 0, sizeof *d);
    int64_t OH = H + 2 * ph - dh * (KH - 1), OW = W + 2 * pw - dw * (KW - 1); /* stride 1 */
    if (transposed) {
        int64_t tph = dh * (KH - 1) - ph, tpw = dw * (KW - 1) - pw;
        if (tph < 0 || tpw < 0) return false;
        d->C = O, d->H = OH, d->W = OW, d->O = C, d->OH = H, d->OW = W, d->ph = tph, d->pw = tpw;
    } else {
        d->C = C, d->H = H, d->W = W, d->O = O, d->OH = OH, d->OW = OW, d->ph = ph, d->pw = pw;
    }
    d->KH = KH, d->KW = KW, d->dh = dh, d->dw = dw, d->nimg = nimg;
    /* a row (an image) at least as wide (tall) as the output, so that two outputs never
     * share a wide index (padding wider than the dilated kernel makes OW > W + PW) */
    d->Wp = d->W + d->pw > d->OW ? d->W + d->pw : d->OW;
    d->rows = d->H + d->ph > d->OH ? d->H + d->ph : d->OH;
    d->lead = d->pw;
    d->Opad = (d->O + OB - 1) / OB * OB;
    /* budget: every size below 2^40 floats, products included, so nothing overflows */
    const int64_t lim = (int64_t)1 << 40;
    int64_t filled, reach, work;
    if (d->Wp > lim || d->rows > lim || nimg > lim || d->C > lim || d->Opad > lim ||
        __builtin_mul_overflow(nimg, d->rows, &filled) || __builtin_add_overflow(filled, d->ph, &filled) ||
        __builtin_mul_overflow(filled, d->Wp, &filled) || filled > lim)
        return false;
    d->Qmax = dconv_q(d, nimg);
    reach = d->Qmax + (KH - 1) * dh * d->Wp + (KW - 1) * dw; /* after lead, the last tap's end */
    d->plane = d->lead + (filled > reach ? filled : reach);
    if (__builtin_mul_overflow(d->C, d->plane, &work) || __builtin_mul_overflow(d->Opad, d->Qmax, &filled) ||
        work > lim || filled > lim)
        return false;
    return true;
}

size_t bk__dconv_work(const bk__dconv *d) { return (size_t)(d->C * d->plane + d->Opad * d->Qmax); }

size_t bk__dconv_wsize(const bk__dconv *d) { return (size_t)(d->Opad * d->C * d->KH * d->KW); }

/* wp[ob][c][kh][kw][i] = weight of output channel ob OB + i (0 past O) */
void bk__dconv_pack(const bk__dconv *d, const float *w, bool transposed, float *wp) {
    int64_t KH = d->KH, KW = d->KW;
    for (int64_t ob = 0; ob < d->Opad / OB; ob++)
        for (int64_t c = 0; c < d->C; c++)
            for (int64_t kh = 0; kh < KH; kh++)
                for (int64_t kw = 0; kw < KW; kw++)
                    for (int64_t i = 0; i < OB; i++, wp++) {
                        int64_t o = ob * OB + i;
                        if (o >= d->O) *wp = 0.0f;
                        else if (transposed) /* w is (C, O, KH, KW) in d's names */
                            *wp = w[((c * d->O + o) * KH + KH - 1 - kh) * KW + KW - 1 - kw];
                        else *wp = w[((o * d->C + c) * KH + kh) * KW + kw];
                    }
}

void bk__dconv_run(const bk__dconv *d, int64_t nimg, const float *src, int64_t src_img, const float *wp,
                   const float *bias, float *dst, int64_t dst_img, bool accumulate, float *work) {
    dconv_run_fn *run = best_run();
    if (run) run(d, nimg, src, src_img, wp, bias, dst, dst_img, accumulate, work);
}

void bk__dconv_dweights(const bk__dconv *d, int64_t nimg, const float *src, int64_t src_img, const float *dy,
                        int64_t dy_img, float *dw, bool accumulate, float *work) {
    dconv_dw_fn *fn = NULL;
#ifdef DCONV_X86
    dconv_run_fn *run = best_run();
    fn = run == run_avx512 ? dweights_avx512 : run == run_avx2 ? dweights_avx2 : NULL;
#endif
    if (fn) fn(d, nimg, src, src_img, dy, dy_img, dw, accumulate, work);
}
