/* conv.c - 2-d convolution (torch.nn.functional.conv2d), NCHW, with stride, padding,
 * dilation and groups, as im2col + GEMM.
 *
 * Shapes: x (N, C, H, W), w (O, C/groups, KH, KW), b (O) -> y (N, O, OH, OW) with
 *   OH = (H + 2 PH - DH (KH - 1) - 1) / SH + 1   (likewise OW).
 * Images are processed in chunks so that the column matrix (K = C/g KH KW rows, chunk*OH*OW
 * columns) stays within a fixed scratch budget; each chunk is one GEMM per group. The
 * backward recomputes the columns rather than keeping them (they are K times larger than
 * the input), and accumulates dW over chunks in a fixed order, so results do not depend on
 * the thread count.
 */
#include "internal.h"

#include <inttypes.h>

#define COL_BUDGET ((int64_t)4 << 20) /* floats per column chunk (16 MiB) */

typedef struct conv_params {
    int64_t N, C, H, W, O, KH, KW, OH, OW;
    int64_t sh, sw, ph, pw, dh, dw, groups;
    int64_t Cg, Og, K; /* per-group in/out channels; K = Cg KH KW */
    int64_t chunk;     /* images per column chunk */
} conv_params;

/* col[(c KH + kh) KW + kw][j * OH*OW + oh OW + ow] = x[n0 + j, c0 + c, ih, iw] (0 if padded) */
static void im2col(const conv_params *p, const float *x, int64_t n0, int64_t nimg, int64_t c0, float *col) {
    int64_t L = p->OH * p->OW, cols = nimg * L;
#pragma omp parallel for schedule(static) if (p->K * cols > 65536)
    for (int64_t r = 0; r < p->K; r++) {
        int64_t c = r / (p->KH * p->KW), kh = (r / p->KW) % p->KH, kw = r % p->KW;
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
                const float *srow = src + ih * p->W;
                for (int64_t ow = 0; ow < p->OW; ow++) {
                    int64_t iw = ow * p->sw - p->pw + kw * p->dw;
                    d[ow] = (iw >= 0 && iw < p->W) ? srow[iw] : 0.0f;
                }
            }
        }
    }
}

/* The adjoint of im2col: dx[n0 + j, c0 + c, ih, iw] += col[...]. Parallel over images, so
 * no two threads add into the same element. */
static void col2im(const conv_params *p, const float *col, int64_t n0, int64_t nimg, int64_t c0, float *dx) {
    int64_t L = p->OH * p->OW, cols = nimg * L;
#pragma omp parallel for schedule(static) if (p->K * cols > 65536)
    for (int64_t j = 0; j < nimg; j++)
        for (int64_t r = 0; r < p->K; r++) {
            int64_t c = r / (p->KH * p->KW), kh = (r / p->KW) % p->KH, kw = r % p->KW;
            float *dst = dx + ((n0 + j) * p->C + c0 + c) * p->H * p->W;
            const float *s = col + r * cols + j * L;
            for (int64_t oh = 0; oh < p->OH; oh++) {
                int64_t ih = oh * p->sh - p->ph + kh * p->dh;
                if (ih < 0 || ih >= p->H) continue;
                for (int64_t ow = 0; ow < p->OW; ow++) {
                    int64_t iw = ow * p->sw - p->pw + kw * p->dw;
                    if (iw >= 0 && iw < p->W) dst[ih * p->W + iw] += s[oh * p->OW + ow];
                }
            }
        }
}

static void conv2d_backward(bk_node *node) {
    const conv_params *p = bk_node_params(node);
    const bk_tensor *x = bk_node_input(node, 0), *w = bk_node_input(node, 1);
    const float *G = bk_node_grad_output(node)->data;
    bk_tensor *dx = bk_node_grad_input(node, 0), *dw = bk_node_grad_input(node, 1);
    bk_tensor *db = bk_node_num_inputs(node) > 2 ? bk_node_grad_input(node, 2) : NULL;
    const bk_backend *be = bk__backend();
    int64_t L = p->OH * p->OW;
    if (db)
        for (int64_t n = 0; n < p->N; n++)
            for (int64_t o = 0; o < p->O; o++) {
                const float *g = G + (n * p->O + o) * L;
                float s = 0;
                for (int64_t i = 0; i < L; i++) s += g[i];
                db->data[o] += s;
            }
    if (!dx && !dw) return;
    for (int64_t n0 = 0; n0 < p->N; n0 += p->chunk) {
        int64_t nimg = p->N - n0 < p->chunk ? p->N - n0 : p->chunk, cols = nimg * L;
        float *col = bk__scratch(0, (size_t)(p->K * cols));
        float *gcol = bk__scratch(1, (size_t)(p->Og * cols));
        if (!col || !gcol) {
            bk__backward_fail();
            return;
        }
        for (int64_t g = 0; g < p->groups; g++) {
            /* gather dY for this group: (Og, nimg * L) */
            for (int64_t o = 0; o < p->Og; o++)
                for (int64_t j = 0; j < nimg; j++)
                    memcpy(gcol + o * cols + j * L, G + ((n0 + j) * p->O + g * p->Og + o) * L, sizeof(float) * (size_t)L);
            const float *wg = w->data + g * p->Og * p->K;
            if (dw) { /* dW_g (Og, K) += dY (Og, cols) @ col^T */
                im2col(p, x->data, n0, nimg, g * p->Cg, col);
                be->sgemm(false, true, p->Og, p->K, cols, 1.0f, gcol, cols, col, cols, 1.0f,
                          dw->data + g * p->Og * p->K, p->K);
            }
            if (dx) { /* dcol (K, cols) = W_g^T @ dY, then scatter-add into dx */
                be->sgemm(true, false, p->K, cols, p->Og, 1.0f, wg, p->K, gcol, cols, 0.0f, col, cols);
                col2im(p, col, n0, nimg, g * p->Cg, dx->data);
            }
        }
    }
}

static const bk_op OP_CONV2D = {"conv2d", conv2d_backward};

bk_tensor *bk_conv2d(bk_tensor *x, bk_tensor *w, bk_tensor *b, bk_conv2d_opts o) {
    bk_tensor *in[3] = {x, w, b};
    if (!bk__inputs_ok("conv2d", b ? 3 : 2, in)) return NULL;
    char s1[128], s2[128];
    if (x->ndim != 4) {
        bk_set_error("conv2d: expected a 4-d input (N, C, H, W), got %s (a 3-d input needs a batch "
                     "dimension: reshape to (1, C, H, W))", bk_shape_str(x, s1, sizeof s1));
        return NULL;
    }
    if (w->ndim != 4) {
        bk_set_error("conv2d: expected a 4-d weight (O, C/groups, KH, KW), got %s", bk_shape_str(w, s2, sizeof s2));
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
                     " positive", p.sh, p.sw, p.dh, p.dw, p.ph, p.pw, p.groups);
        return NULL;
    }
    if (p.C % p.groups || p.O % p.groups) {
        bk_set_error("conv2d: groups=%" PRId64 " must divide both in_channels=%" PRId64 " and out_channels=%" PRId64,
                     p.groups, p.C, p.O);
        return NULL;
    }
    p.Cg = p.C / p.groups, p.Og = p.O / p.groups;
    if (w->shape[1] != p.Cg) {
        bk_set_error("conv2d: weight %s expects %" PRId64 " input channels per group (%" PRId64
                     " in all), but input %s has %" PRId64 " channels", bk_shape_str(w, s2, sizeof s2),
                     w->shape[1], w->shape[1] * p.groups, bk_shape_str(x, s1, sizeof s1), p.C);
        return NULL;
    }
    if (b && (b->ndim != 1 || b->shape[0] != p.O)) {
        bk_set_error("conv2d: bias %s does not match out_channels=%" PRId64, bk_shape_str(b, s1, sizeof s1), p.O);
        return NULL;
    }
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
    p.chunk = L * p.K > 0 ? COL_BUDGET / (L * (p.K > p.Og ? p.K : p.Og)) : p.N;
    if (p.chunk < 1) p.chunk = 1;
    if (p.chunk > p.N) p.chunk = p.N > 0 ? p.N : 1;
    bk_tensor *y = bk__tensor_arena(4, (int64_t[]){p.N, p.O, p.OH, p.OW}, false);
    if (!y) return NULL;
    const bk_backend *be = bk__backend();
    for (int64_t n0 = 0; n0 < p.N; n0 += p.chunk) {
        int64_t nimg = p.N - n0 < p.chunk ? p.N - n0 : p.chunk, cols = nimg * L;
        float *col = bk__scratch(0, (size_t)(p.K * cols));
        float *ycol = bk__scratch(1, (size_t)(p.Og * cols));
        if (!col || !ycol) return NULL;
        for (int64_t g = 0; g < p.groups; g++) {
            im2col(&p, x->data, n0, nimg, g * p.Cg, col);
            /* Y_g (Og, cols) = W_g (Og, K) @ col (K, cols) */
            be->sgemm(false, false, p.Og, cols, p.K, 1.0f, w->data + g * p.Og * p.K, p.K, col, cols, 0.0f, ycol, cols);
            for (int64_t oc = 0; oc < p.Og; oc++) {
                float bias = b ? b->data[g * p.Og + oc] : 0.0f;
                for (int64_t j = 0; j < nimg; j++) {
                    float *dst = y->data + ((n0 + j) * p.O + g * p.Og + oc) * L;
                    const float *src = ycol + oc * cols + j * L;
                    for (int64_t i = 0; i < L; i++) dst[i] = src[i] + bias;
                }
            }
        }
    }
    return bk_op_record(&OP_CONV2D, y, b ? 3 : 2, in, &p, sizeof p);
}
