/* conv.c - 2-d convolution (torch.nn.functional.conv2d), NCHW, with stride, padding,
 * dilation and groups: stride 1 by the direct kernel of src/kernels/conv_direct.c where the
 * CPU has one (forward, dx and dW each where it applies), everything else as im2col + GEMM.
 *
 * Shapes: x (N, C, H, W), w (O, C/groups, KH, KW), b (O) -> y (N, O, OH, OW) with
 *   OH = (H + 2 PH - DH (KH - 1) - 1) / SH + 1   (likewise OW).
 *
 * The batch is cut into chunks of a few images: one image when its output has at least
 * MIN_COLS pixels, else enough images to reach that many columns (a GEMM with a handful of
 * columns wastes the micro-kernel). Each chunk's column matrix (K = C/g KH KW rows) is
 * small enough to stay in the core's cache while its GEMMs read it, which is what makes
 * im2col affordable; threads take whole chunks, each with its own buffers, and run their
 * GEMMs single-threaded (bk_backend.sgemm_serial). With one chunk only (a single image),
 * the GEMM is threaded instead.
 *
 * The direct kernel works on the same chunks, with its own per-thread buffers (the chunk's
 * padded input planes and its outputs) in place of the columns, and the weights packed once
 * per call.
 *
 * The backward recomputes the columns rather than keeping them (they are K times larger
 * than the input). dW is summed per slice of consecutive chunks into its own buffer and the
 * slices are added in order; the slicing depends on the shapes only, so results are bitwise
 * identical for any thread count.
 */
#include "internal.h"
#include "kernels/conv_direct.h"

#include <inttypes.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#define MIN_COLS 256                      /* output pixels per chunk, when images are small */
#define COL_BUDGET ((int64_t)1 << 20)     /* floats of one chunk's column matrix (4 MiB) */
#define PARTIAL_BUDGET ((int64_t)8 << 20) /* floats of dW's per-slice sums (32 MiB) */
#define MAX_SLICES 64

typedef struct conv_params {
    int64_t N, C, H, W, O, KH, KW, OH, OW;
    int64_t sh, sw, ph, pw, dh, dw, groups;
    int64_t Cg, Og, K;        /* per-group in/out channels; K = Cg KH KW */
    int64_t chunk;            /* images per chunk */
    int64_t nchunks, nslices; /* chunks of the batch; slices of chunks for dW's sums */
    int64_t per_slice;        /* chunks per slice (the last slice may have fewer, never none) */
} conv_params;

static int max_threads(void) {
#ifdef _OPENMP
    return omp_in_parallel() ? 1 : omp_get_max_threads();
#else
    return 1;
#endif
}

static int thread_num(void) {
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

/* The output columns ow whose input column iw = ow SW - PW + kw DW lies inside [0, W):
 * [*lo, *hi). Computed once per kernel column so that the copy loops below carry no bounds
 * test: padding becomes two runs of zeros, the interior one memcpy (stride 1) or one
 * strided gather. */
static void valid_cols(const conv_params *p, int64_t kw, int64_t *lo, int64_t *hi) {
    int64_t a = p->pw - kw * p->dw;            /* ow SW >= a  */
    int64_t b = p->W - 1 + p->pw - kw * p->dw; /* ow SW <= b */
    *lo = a <= 0 ? 0 : (a + p->sw - 1) / p->sw;
    *hi = b < 0 ? 0 : b / p->sw + 1;
    if (*hi > p->OW) *hi = p->OW;
    if (*lo > *hi) *lo = *hi;
}

/* col[(c KH + kh) KW + kw][j * OH*OW + oh OW + ow] = x[n0 + j, c0 + c, ih, iw] (0 if padded) */
static void im2col(const conv_params *p, const float *x, int64_t n0, int64_t nimg, int64_t c0, float *col) {
    int64_t L = p->OH * p->OW, cols = nimg * L;
#pragma omp parallel for schedule(static) if (p->K * cols > 65536)
    for (int64_t r = 0; r < p->K; r++) {
        int64_t c = r / (p->KH * p->KW), kh = (r / p->KW) % p->KH, kw = r % p->KW;
        int64_t lo, hi, off = kw * p->dw - p->pw;
        valid_cols(p, kw, &lo, &hi);
        float *dst = col + r * cols;
        for (int64_t j = 0; j < nimg; j++) {
            const float *src = x + ((n0 + j) * p->C + c0 + c) * p->H * p->W;
            for (int64_t oh = 0; oh < p->OH; oh++) {
                int64_t ih = oh * p->sh - p->ph + kh * p->dh;
                float *d = dst + j * L + oh * p->OW;
                if (ih < 0 || ih >= p->H) {
                    for (int64_t ow = 0; ow < p->OW; ow++) d[ow] = 0.0f;
                    continue;
                }
                const float *srow = src + ih * p->W + off;
                for (int64_t ow = 0; ow < lo; ow++) d[ow] = 0.0f;
                if (p->sw == 1 && hi - lo >= 8) /* short rows: a call costs more than the copy */
                    memcpy(d + lo, srow + lo, sizeof(float) * (size_t)(hi - lo));
                else if (p->sw == 1)
                    for (int64_t ow = lo; ow < hi; ow++) d[ow] = srow[ow];
                else
                    for (int64_t ow = lo; ow < hi; ow++) d[ow] = srow[ow * p->sw];
                for (int64_t ow = hi; ow < p->OW; ow++) d[ow] = 0.0f;
            }
        }
    }
}

/* The adjoint of im2col: dx[n0 + j, c0 + c, ih, iw] += col[...]. Parallel over images, so
 * no two threads add into the same element; within an image the order of the additions is
 * fixed, so results do not depend on the thread count. */
static void col2im(const conv_params *p, const float *col, int64_t n0, int64_t nimg, int64_t c0, float *dx) {
    int64_t L = p->OH * p->OW, cols = nimg * L;
#pragma omp parallel for schedule(static) if (p->K * cols > 65536)
    for (int64_t j = 0; j < nimg; j++)
        for (int64_t r = 0; r < p->K; r++) {
            int64_t c = r / (p->KH * p->KW), kh = (r / p->KW) % p->KH, kw = r % p->KW;
            int64_t lo, hi, off = kw * p->dw - p->pw;
            valid_cols(p, kw, &lo, &hi);
            float *dst = dx + ((n0 + j) * p->C + c0 + c) * p->H * p->W;
            const float *s = col + r * cols + j * L;
            for (int64_t oh = 0; oh < p->OH; oh++) {
                int64_t ih = oh * p->sh - p->ph + kh * p->dh;
                if (ih < 0 || ih >= p->H) continue;
                float *drow = dst + ih * p->W + off;
                const float *srow = s + oh * p->OW;
                if (p->sw == 1)
                    for (int64_t ow = lo; ow < hi; ow++) drow[ow] += srow[ow];
                else
                    for (int64_t ow = lo; ow < hi; ow++) drow[ow * p->sw] += srow[ow];
            }
        }
}

/* dY of images n0..n0+nimg-1, output channels of group g, as an (Og, nimg L) matrix: in
 * place for one image, else gathered into buf. Sets *ld to its row stride. */
static const float *grad_block(const conv_params *p, const float *G, int64_t n0, int64_t nimg, int64_t g,
                               float *buf, int64_t *ld) {
    int64_t L = p->OH * p->OW, cols = nimg * L;
    if (nimg == 1) {
        *ld = L;
        return G + (n0 * p->O + g * p->Og) * L;
    }
    for (int64_t o = 0; o < p->Og; o++)
        for (int64_t j = 0; j < nimg; j++)
            memcpy(buf + o * cols + j * L, G + ((n0 + j) * p->O + g * p->Og + o) * L,
                   sizeof(float) * (size_t)L);
    *ld = cols;
    return buf;
}

/* dbs[n O + o] = the sum of dY's plane (n, o): 16 running sums (i mod 16), added pairwise,
 * a fixed order that vectorises. The 16 sums are four vectors of 4 (GCC's vector extension,
 * SSE registers in the baseline build) that stay in registers: as a float[16], GCC 12
 * loaded and stored the array every 16 floats, and one vector of 16 went through the stack
 * as well. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpsabi" /* the vectors never cross a call */
typedef float v4f __attribute__((vector_size(16)));
static void db_image(const conv_params *p, const float *dy, int64_t n, float *dbs) {
    int64_t L = p->OH * p->OW;
    for (int64_t o = 0; o < p->O; o++) {
        const float *g = dy + (n * p->O + o) * L;
        v4f a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0}, v0, v1, v2, v3;
        int64_t i = 0;
        for (; i + 16 <= L; i += 16) {
            memcpy(&v0, g + i, sizeof v0), memcpy(&v1, g + i + 4, sizeof v1);
            memcpy(&v2, g + i + 8, sizeof v2), memcpy(&v3, g + i + 12, sizeof v3);
            a0 += v0, a1 += v1, a2 += v2, a3 += v3;
        }
        float s[16];
        memcpy(s, &a0, sizeof a0), memcpy(s + 4, &a1, sizeof a1);
        memcpy(s + 8, &a2, sizeof a2), memcpy(s + 12, &a3, sizeof a3);
        for (int k = 0; i < L; i++, k++) s[k] += g[i];
        for (int half = 8; half >= 1; half /= 2)
            for (int k = 0; k < half; k++) s[k] += s[k + half];
        dbs[n * p->O + o] = s[0];
    }
}
#pragma GCC diagnostic pop

/* db += the images' plane sums, image by image */
static void db_add(const conv_params *p, const float *dbs, bk_tensor *db) {
    for (int64_t n = 0; db && n < p->N; n++)
        for (int64_t o = 0; o < p->O; o++) db->data[o] += dbs[n * p->O + o];
}

static void conv2d_backward(bk_node *node) {
    const conv_params *p = bk_node_params(node);
    /* dx first: each element is written by one group and chunk, so a new buffer is left
     * unfilled (fresh) and those writes assign instead of adding; bk__xwb_grads then
     * finds it */
    bool fresh;
    bk__node_grad_input_write(node, 0, &fresh);
    bk__xwb io = bk__xwb_grads(node);
    const bk_backend *be = bk__backend();
    int64_t L = p->OH * p->OW;
    /* db: each image's plane sums (db_image) go to dbs, computed by the thread that has the
     * image's chunk below, then added into db image by image: the same order for any
     * thread count, and no serial pass over dY */
    float *dbs = io.db ? bk__arena_alloc(bk_arena_current(), sizeof(float) * (size_t)(p->N * p->O + 1))
                       : NULL;
    if (io.db && !dbs) {
        bk__backward_fail();
        return;
    }
    if (io.db && ((!io.dx && !io.dw) || p->nchunks == 0))
        for (int64_t n = 0; n < p->N; n++) db_image(p, io.dy, n, dbs);
    if ((!io.dx && !io.dw) || p->nchunks == 0) { /* an empty batch adds nothing to dx or dW */
        db_add(p, dbs, io.db);
        return;
    }
    /* dx and dW by the direct kernel where it applies (stride 1), else GEMMs with im2col
     * and col2im */
    bk__dconv dd, fd;
    bool direct = io.dx && p->sh == 1 && p->sw == 1 &&
                  bk__dconv_plan(&dd, p->Cg, p->H, p->W, p->Og, p->KH, p->KW, p->ph, p->pw, p->dh, p->dw,
                                 p->chunk, true);
    bool direct_w = io.dw && p->sh == 1 && p->sw == 1 &&
                    bk__dconv_plan(&fd, p->Cg, p->H, p->W, p->Og, p->KH, p->KW, p->ph, p->pw, p->dh, p->dw,
                                   p->chunk, false);
    /* per thread: for dW the direct kernel's buffers or the columns (K x chunk L); for dx
     * the direct kernel's buffers or the columns' gradient (K x chunk L); gathered dY
     * (Og x chunk L) */
    int64_t ccols = p->chunk * L, WK = p->O * p->K;
    int64_t n_col = !io.dw ? 0 : direct_w ? (int64_t)bk__dconv_work(&fd) : p->K * ccols;
    int64_t n_dcol = !io.dx ? 0 : direct ? (int64_t)bk__dconv_work(&dd) : p->K * ccols;
    n_col = (n_col + 15) / 16 * 16;
    int64_t per_thread = n_col + n_dcol + (p->chunk > 1 && io.dw && !direct_w ? p->Og * ccols : 0);
    per_thread = (per_thread + 15) / 16 * 16; /* each thread's buffers 64-byte aligned */
    int T = max_threads();
    float *work = bk__scratch(0, (size_t)(per_thread * T));
    float *partial = io.dw ? bk__scratch(1, (size_t)(WK * p->nslices)) : NULL;
    float *wpack = direct ? bk__scratch(2, bk__dconv_wsize(&dd) * (size_t)p->groups) : NULL;
    if (!work || (io.dw && !partial) || (direct && !wpack)) {
        bk__backward_fail();
        return;
    }
    for (int64_t g = 0; direct && g < p->groups; g++)
        bk__dconv_pack(&dd, io.w->data + g * p->Og * p->K, true, wpack + g * bk__dconv_wsize(&dd));
    int64_t per_slice = p->per_slice;
#pragma omp parallel for schedule(static) num_threads(T) if (T > 1 && p->nslices > 1)
    for (int64_t sl = 0; sl < p->nslices; sl++) {
        float *col = work + per_thread * thread_num(), *dcol = col + n_col, *gbuf = dcol + n_dcol;
        float *dw_sl = io.dw ? partial + sl * WK : NULL;
        int64_t c_end = (sl + 1) * per_slice < p->nchunks ? (sl + 1) * per_slice : p->nchunks;
        for (int64_t ch = sl * per_slice; ch < c_end; ch++) {
            int64_t n0 = ch * p->chunk, nimg = p->N - n0 < p->chunk ? p->N - n0 : p->chunk, cols = nimg * L;
            for (int64_t j = 0; dbs && j < nimg; j++) db_image(p, io.dy, n0 + j, dbs);
            for (int64_t g = 0; g < p->groups; g++) {
                if (direct) /* dx (+)= conv(dY, W_g transposed and flipped) */
                    bk__dconv_run(&dd, nimg, io.dy + (n0 * p->O + g * p->Og) * L, p->O * L,
                                  wpack + g * bk__dconv_wsize(&dd), NULL,
                                  io.dx->data + (n0 * p->C + g * p->Cg) * p->H * p->W, p->C * p->H * p->W,
                                  !fresh, dcol);
                if (direct_w) /* dW_g (+)= the correlation of dY_g with X_g */
                    bk__dconv_dweights(&fd, nimg, io.x->data + (n0 * p->C + g * p->Cg) * p->H * p->W,
                                       p->C * p->H * p->W, io.dy + (n0 * p->O + g * p->Og) * L, p->O * L,
                                       dw_sl + g * p->Og * p->K, ch != sl * per_slice, col);
                if ((!io.dw || direct_w) && (!io.dx || direct)) continue;
                int64_t ldg;
                const float *gy = grad_block(p, io.dy, n0, nimg, g, gbuf, &ldg);
                if (io.dw && !direct_w) { /* dW_g (Og, K) (+)= dY (Og, cols) @ col^T */
                    im2col(p, io.x->data, n0, nimg, g * p->Cg, col);
                    be->sgemm_serial(false, true, p->Og, p->K, cols, 1.0f, gy, ldg, col, cols,
                                     ch == sl * per_slice ? 0.0f : 1.0f, dw_sl + g * p->Og * p->K, p->K);
                }
                if (io.dx && !direct) { /* dcol (K, cols) = W_g^T @ dY, then scatter-add into dx */
                    be->sgemm_serial(true, false, p->K, cols, p->Og, 1.0f, io.w->data + g * p->Og * p->K,
                                     p->K, gy, ldg, 0.0f, dcol, cols);
                    for (int64_t j = 0; fresh && j < nimg; j++) /* col2im adds */
                        memset(io.dx->data + ((n0 + j) * p->C + g * p->Cg) * p->H * p->W, 0,
                               sizeof(float) * (size_t)(p->Cg * p->H * p->W));
                    col2im(p, dcol, n0, nimg, g * p->Cg, io.dx->data);
                }
            }
        }
    }
    db_add(p, dbs, io.db);
    if (io.dw) /* the slices' sums, added in slice order */
#pragma omp parallel for schedule(static) if (WK * p->nslices > 65536)
        for (int64_t i = 0; i < WK; i++) {
            float s = io.dw->data[i];
            for (int64_t sl = 0; sl < p->nslices; sl++) s += partial[sl * WK + i];
            io.dw->data[i] = s;
        }
}

static const bk_op OP_CONV2D = {"conv2d", conv2d_backward};

/* Misuse guard for bk_conv2d: the size arithmetic below (padded input, dilated kernel, output
 * size, im2col columns) in int64 without overflow. Only absurd options or shapes fail here. */
static bool conv_sizes_ok(const conv_params *p, const bk_tensor *x, const bk_tensor *w) {
    int64_t ph2, pw2, eh, ew, k, l, lk;
    char s1[128], s2[128];
    if (p->KH < 1 || p->KW < 1) {
        bk_set_error("conv2d: weight %s has an empty kernel", bk_shape_str(w, s2, sizeof s2));
        return false;
    }
    bool ok = bk__mul_ok(2, p->ph, &ph2) && ph2 <= INT64_MAX - p->H && bk__mul_ok(2, p->pw, &pw2) &&
              pw2 <= INT64_MAX - p->W && bk__mul_ok(p->dh, p->KH - 1, &eh) && eh < INT64_MAX &&
              bk__mul_ok(p->dw, p->KW - 1, &ew) && ew < INT64_MAX && bk__mul_ok(p->Cg, p->KH, &k) &&
              bk__mul_ok(k, p->KW, &k);
    if (ok && p->H + ph2 > eh && p->W + pw2 > ew) /* else the "larger than" check below fails */
        ok = bk__mul_ok((p->H + ph2 - eh - 1) / p->sh + 1, (p->W + pw2 - ew - 1) / p->sw + 1, &l) &&
             bk__mul_ok(l, k > p->Og ? k : p->Og, &lk);
    if (!ok) {
        bk_set_error("conv2d: padding (%" PRId64 ", %" PRId64 ") and dilation (%" PRId64 ", %" PRId64
                     ") with input %s and weight %s give sizes too large to compute",
                     p->ph, p->pw, p->dh, p->dw, bk_shape_str(x, s1, sizeof s1),
                     bk_shape_str(w, s2, sizeof s2));
    }
    return ok;
}

bk_tensor *bk_conv2d(bk_tensor *x, bk_tensor *w, bk_tensor *b, bk_conv2d_opts o) {
    bk_tensor *in[3] = {x, w, b};
    if (!bk__inputs_ok("conv2d", b ? 3 : 2, in)) return NULL;
    char s1[128], s2[128];
    if (x->ndim != 4) {
        bk_set_error(
            "conv2d: expected a 4-d input (N, C, H, W), got %s (a 3-d input needs a batch "
            "dimension: reshape to (1, C, H, W))",
            bk_shape_str(x, s1, sizeof s1));
        return NULL;
    }
    if (w->ndim != 4) {
        bk_set_error("conv2d: expected a 4-d weight (O, C/groups, KH, KW), got %s",
                     bk_shape_str(w, s2, sizeof s2));
        return NULL;
    }
    conv_params p;
    memset(&p, 0, sizeof p);
    p.N = x->shape[0], p.C = x->shape[1], p.H = x->shape[2], p.W = x->shape[3];
    p.O = w->shape[0], p.KH = w->shape[2], p.KW = w->shape[3];
    p.sh = o.stride[0], p.sw = o.stride[1], p.ph = o.padding[0], p.pw = o.padding[1];
    p.dh = o.dilation[0], p.dw = o.dilation[1], p.groups = o.groups;
    if (p.sh <= 0 || p.sw <= 0 || p.dh <= 0 || p.dw <= 0 || p.ph < 0 || p.pw < 0 || p.groups <= 0) {
        bk_set_error("conv2d: stride (%" PRId64 ", %" PRId64 ") and dilation (%" PRId64 ", %" PRId64
                     ") must be positive, padding (%" PRId64 ", %" PRId64 ") non-negative and groups %" PRId64
                     " positive",
                     p.sh, p.sw, p.dh, p.dw, p.ph, p.pw, p.groups);
        return NULL;
    }
    if (p.C % p.groups || p.O % p.groups) {
        bk_set_error("conv2d: groups=%" PRId64 " must divide both in_channels=%" PRId64
                     " and out_channels=%" PRId64,
                     p.groups, p.C, p.O);
        return NULL;
    }
    p.Cg = p.C / p.groups, p.Og = p.O / p.groups;
    if (w->shape[1] != p.Cg) {
        bk_set_error("conv2d: weight %s expects %" PRId64 " input channels per group (%" PRId64
                     " in all), but input %s has %" PRId64 " channels",
                     bk_shape_str(w, s2, sizeof s2), w->shape[1], w->shape[1] * p.groups,
                     bk_shape_str(x, s1, sizeof s1), p.C);
        return NULL;
    }
    if (b && (b->ndim != 1 || b->shape[0] != p.O)) {
        bk_set_error("conv2d: bias %s does not match out_channels=%" PRId64, bk_shape_str(b, s1, sizeof s1),
                     p.O);
        return NULL;
    }
    if (!conv_sizes_ok(&p, x, w)) return NULL;
    int64_t eh = p.dh * (p.KH - 1) + 1, ew = p.dw * (p.KW - 1) + 1; /* effective kernel */
    if (p.H + 2 * p.ph < eh || p.W + 2 * p.pw < ew) {
        bk_set_error("conv2d: kernel (%" PRId64 ", %" PRId64 ") (dilated: (%" PRId64 ", %" PRId64
                     ")) is larger than the padded input (%" PRId64 ", %" PRId64 ") of %s",
                     p.KH, p.KW, eh, ew, p.H + 2 * p.ph, p.W + 2 * p.pw, bk_shape_str(x, s1, sizeof s1));
        return NULL;
    }
    p.OH = (p.H + 2 * p.ph - eh) / p.sh + 1;
    p.OW = (p.W + 2 * p.pw - ew) / p.sw + 1;
    p.K = p.Cg * p.KH * p.KW;
    int64_t L = p.OH * p.OW;
    p.chunk = L >= MIN_COLS ? 1 : (MIN_COLS + L - 1) / L;
    if (p.chunk > 1 && p.K * p.chunk * L > COL_BUDGET)
        p.chunk = COL_BUDGET / (p.K * L) > 1 ? COL_BUDGET / (p.K * L) : 1;
    if (p.chunk > p.N) p.chunk = p.N > 0 ? p.N : 1;
    p.nchunks = p.N > 0 ? (p.N + p.chunk - 1) / p.chunk : 0;
    int64_t WK = p.O * p.K;
    p.nslices = WK > 0 ? PARTIAL_BUDGET / WK : 1;
    if (p.nslices > MAX_SLICES) p.nslices = MAX_SLICES;
    if (p.nslices > p.nchunks) p.nslices = p.nchunks;
    if (p.nslices < 1) p.nslices = 1;
    /* every slice gets at least one chunk: the backward sums each slice's buffer, so an empty
     * slice would add whatever its buffer last held (96 images in 64 slices of 2 left 16 empty,
     * and LeNet's last batch of an epoch took the previous step's sums with it) */
    p.per_slice = (p.nchunks + p.nslices - 1) / p.nslices;
    if (p.per_slice > 0) p.nslices = (p.nchunks + p.per_slice - 1) / p.per_slice;
    bk_tensor *y = bk__tensor_arena(4, (int64_t[]){p.N, p.O, p.OH, p.OW}, false);
    if (!y) return NULL;
    const bk_backend *be = bk__backend();
    bk__dconv dd;
    bool direct = p.sh == 1 && p.sw == 1 &&
                  bk__dconv_plan(&dd, p.Cg, p.H, p.W, p.Og, p.KH, p.KW, p.ph, p.pw, p.dh, p.dw, p.chunk,
                                 false);
    /* per thread: the direct kernel's buffers, or the columns (K x chunk L) and, for
     * several images, the output block */
    int64_t ccols = p.chunk * L;
    int64_t per_thread = direct ? (int64_t)bk__dconv_work(&dd)
                                : p.K * ccols + (p.chunk > 1 ? p.Og * ccols : 0);
    per_thread = (per_thread + 15) / 16 * 16; /* each thread's buffers 64-byte aligned */
    int T = max_threads();
    float *work = bk__scratch(0, (size_t)(per_thread * T));
    float *wpack = direct ? bk__scratch(2, bk__dconv_wsize(&dd) * (size_t)p.groups) : NULL;
    if (!work || (direct && !wpack)) return NULL;
    for (int64_t g = 0; direct && g < p.groups; g++)
        bk__dconv_pack(&dd, w->data + g * p.Og * p.K, false, wpack + g * bk__dconv_wsize(&dd));
#pragma omp parallel for schedule(static) num_threads(T) if (T > 1 && p.nchunks > 1)
    for (int64_t ch = 0; ch < p.nchunks; ch++) {
        float *col = work + per_thread * thread_num(), *ycol = col + p.K * ccols;
        int64_t n0 = ch * p.chunk, nimg = p.N - n0 < p.chunk ? p.N - n0 : p.chunk, cols = nimg * L;
        for (int64_t g = 0; g < p.groups; g++) {
            const float *wg = w->data + g * p.Og * p.K;
            float *yg = y->data + (n0 * p.O + g * p.Og) * L;
            if (direct) { /* Y_g = conv(X_g, W_g) + b_g, no columns */
                bk__dconv_run(&dd, nimg, x->data + (n0 * p.C + g * p.Cg) * p.H * p.W, p.C * p.H * p.W,
                              wpack + g * bk__dconv_wsize(&dd), b ? b->data + g * p.Og : NULL, yg, p.O * L,
                              false, col);
                continue;
            }
            im2col(&p, x->data, n0, nimg, g * p.Cg, col);
            /* Y_g (Og, cols) = W_g (Og, K) @ col (K, cols): straight into y for one image */
            if (nimg == 1) be->sgemm_serial(false, false, p.Og, L, p.K, 1.0f, wg, p.K, col, L, 0.0f, yg, L);
            else be->sgemm_serial(false, false, p.Og, cols, p.K, 1.0f, wg, p.K, col, cols, 0.0f, ycol, cols);
            for (int64_t oc = 0; oc < p.Og; oc++) {
                float bias = b ? b->data[g * p.Og + oc] : 0.0f;
                for (int64_t j = 0; j < nimg; j++) {
                    float *dst = yg + (j * p.O + oc) * L;
                    if (nimg == 1) {
                        if (b)
                            for (int64_t i = 0; i < L; i++) dst[i] += bias;
                        continue;
                    }
                    const float *src = ycol + oc * cols + j * L;
                    for (int64_t i = 0; i < L; i++) dst[i] = src[i] + bias;
                }
            }
        }
    }
    return bk_op_record(&OP_CONV2D, y, b ? 3 : 2, in, &p, sizeof p);
}
