/* conv_transpose.c - transposed 2-d convolution (torch.nn.functional.conv_transpose2d),
 * NCHW, with stride, padding, output_padding, dilation and groups, and the 1-d forms of
 * conv1d and conv_transpose1d as height-1 views of the 2-d ops.
 *
 * Shapes: x (N, C, H, W), w (C, O/groups, KH, KW), b (O) -> y (N, O, OH, OW) with
 *   OH = (H - 1) SH - 2 PH + DH (KH - 1) + OPH + 1   (likewise OW).
 * Input pixel (h, w) of channel c adds x w[c, o, kh, kw] to output pixel
 *   (h SH - PH + kh DH, w SW - PW + kw DW)  (dropped when outside the output):
 * the adjoint of conv2d's map from its input to its output, so conv_transpose2d(x, w) is
 * conv2d's dX for dY = x (torch's definition).
 *
 * Per image and group g (Cg = C/groups in, Og = O/groups out, K = Og KH KW, P = H W):
 *   forward:  col (K, P) = W_g^T (K, Cg) @ X_g (Cg, P);  Y_g = b_g + scatter(col)
 *   backward: dcol (K, P) = gather(dY_g);  dX_g (Cg, P) = W_g @ dcol;
 *             dW_g (Cg, K) += X_g @ dcol^T;  db = sum of dY over the batch and pixels
 * where scatter adds col[(o KH + kh) KW + kw, h W + w] into the output pixel above and
 * gather is its adjoint (reads it, 0 outside). The forward splits the images over the
 * threads (each writes its own output image); the backward walks the images in order, so
 * dW's sums are added in one fixed order, and leaves the threads to the GEMMs, whose
 * results do not depend on the thread count. So neither does anything here.
 */
#include "internal.h"

#include <inttypes.h>

#ifdef _OPENMP
#include <omp.h>
#endif

typedef struct convt_params {
    int64_t N, C, H, W, O, KH, KW, OH, OW;
    int64_t sh, sw, ph, pw, dh, dw, groups;
    int64_t Cg, Og, K; /* per-group in / out channels; K = Og KH KW, the rows of col */
} convt_params;

/* scatter: img[o, oh, ow] += col[r, h W + w]; gather: col[r, h W + w] = img[o, oh, ow] (0
 * outside), with r = (o KH + kh) KW + kw, oh = h SH - PH + kh DH, ow = w SW - PW + kw DW.
 * img is the Og output planes of one image and group. */
static void col_move(const convt_params *p, float *col, float *img, bool scatter) {
    int64_t P = p->H * p->W, KK = p->KH * p->KW;
    for (int64_t r = 0; r < p->K; r++) {
        int64_t o = r / KK, kh = (r / p->KW) % p->KH, kw = r % p->KW;
        float *plane = img + o * p->OH * p->OW, *crow = col + r * P;
        for (int64_t h = 0; h < p->H; h++) {
            int64_t oh = h * p->sh - p->ph + kh * p->dh;
            float *c = crow + h * p->W;
            bool row_in = oh >= 0 && oh < p->OH;
            for (int64_t w = 0; w < p->W; w++) {
                int64_t ow = w * p->sw - p->pw + kw * p->dw;
                bool in = row_in && ow >= 0 && ow < p->OW;
                if (scatter && in) plane[oh * p->OW + ow] += c[w];
                else if (!scatter) c[w] = in ? plane[oh * p->OW + ow] : 0.0f;
            }
        }
    }
}

static void conv_transpose2d_backward(bk_node *node) {
    const convt_params *p = bk_node_params(node);
    bk__xwb io = bk__xwb_grads(node);
    const bk_backend *be = bk__backend();
    int64_t P = p->H * p->W, L = p->OH * p->OW;
    if (io.db) /* db[o] = sum over n and pixels of dY, images in order */
        for (int64_t n = 0; n < p->N; n++)
            for (int64_t o = 0; o < p->O; o++) {
                const float *g = io.dy + (n * p->O + o) * L;
                float s = 0.0f;
                for (int64_t i = 0; i < L; i++) s += g[i];
                io.db->data[o] += s;
            }
    if (!io.dx && !io.dw) return;
    float *dcol = bk__scratch(0, (size_t)(p->K * P));
    if (!dcol && p->K * P > 0) {
        bk__backward_fail();
        return;
    }
    for (int64_t n = 0; n < p->N; n++)
        for (int64_t g = 0; g < p->groups; g++) {
            const float *wg = io.w->data + g * p->Cg * p->K;
            int64_t xoff = (n * p->C + g * p->Cg) * P;
            col_move(p, dcol, (float *)(io.dy + (n * p->O + g * p->Og) * L), false);
            if (io.dx) /* dX_g (Cg, P) += W_g (Cg, K) @ dcol (K, P) */
                be->sgemm(false, false, p->Cg, P, p->K, 1.0f, wg, p->K, dcol, P, 1.0f, io.dx->data + xoff, P);
            if (io.dw) /* dW_g (Cg, K) += X_g (Cg, P) @ dcol^T */
                be->sgemm(false, true, p->Cg, p->K, P, 1.0f, io.x->data + xoff, P, dcol, P, 1.0f,
                          io.dw->data + g * p->Cg * p->K, p->K);
        }
}

static const bk_op OP_CONV_TRANSPOSE2D = {"conv_transpose2d", conv_transpose2d_backward};

/* The output size along one axis, with every product checked: false on overflow. */
static bool out_size(int64_t in, int64_t s, int64_t pad, int64_t d, int64_t k, int64_t op, int64_t *out) {
    int64_t a, e;
    if (!bk__mul_ok(in - 1, s, &a) || !bk__mul_ok(d, k - 1, &e) || a > INT64_MAX / 4 || e > INT64_MAX / 4 ||
        pad > INT64_MAX / 4 || op > INT64_MAX / 4)
        return false;
    *out = a - 2 * pad + e + op + 1;
    return true;
}

bk_tensor *bk_conv_transpose2d(bk_tensor *x, bk_tensor *w, bk_tensor *b, bk_conv_transpose2d_opts o) {
    bk_tensor *in[3] = {x, w, b};
    if (!bk__inputs_ok("conv_transpose2d", b ? 3 : 2, in)) return NULL;
    char s1[128], s2[128];
    if (x->ndim != 4 || w->ndim != 4) {
        bk_set_error(
            "conv_transpose2d: expected a 4-d input (N, C, H, W) and a 4-d weight (C, O/groups, KH, "
            "KW), got input %s and weight %s",
            bk_shape_str(x, s1, sizeof s1), bk_shape_str(w, s2, sizeof s2));
        return NULL;
    }
    convt_params p;
    memset(&p, 0, sizeof p);
    p.N = x->shape[0], p.C = x->shape[1], p.H = x->shape[2], p.W = x->shape[3];
    p.KH = w->shape[2], p.KW = w->shape[3];
    p.sh = o.stride[0], p.sw = o.stride[1], p.ph = o.padding[0], p.pw = o.padding[1];
    p.dh = o.dilation[0], p.dw = o.dilation[1], p.groups = o.groups;
    int64_t oph = o.output_padding[0], opw = o.output_padding[1];
    if (p.sh <= 0 || p.sw <= 0 || p.dh <= 0 || p.dw <= 0 || p.ph < 0 || p.pw < 0 || oph < 0 || opw < 0 ||
        p.groups <= 0) {
        bk_set_error("conv_transpose2d: stride (%" PRId64 ", %" PRId64 ") and dilation (%" PRId64 ", %" PRId64
                     ") must be positive, padding (%" PRId64 ", %" PRId64 ") and output_padding (%" PRId64
                     ", %" PRId64 ") non-negative and groups %" PRId64 " positive",
                     p.sh, p.sw, p.dh, p.dw, p.ph, p.pw, oph, opw, p.groups);
        return NULL;
    }
    if ((oph >= p.sh && oph >= p.dh) || (opw >= p.sw && opw >= p.dw)) {
        bk_set_error("conv_transpose2d: output_padding (%" PRId64 ", %" PRId64
                     ") must be smaller than either stride (%" PRId64 ", %" PRId64 ") or dilation (%" PRId64
                     ", %" PRId64 ")",
                     oph, opw, p.sh, p.sw, p.dh, p.dw);
        return NULL;
    }
    if (p.C % p.groups || w->shape[0] != p.C) {
        bk_set_error("conv_transpose2d: weight %s expects %" PRId64 " input channels, input %s has %" PRId64
                     " (groups=%" PRId64 " must divide them)",
                     bk_shape_str(w, s2, sizeof s2), w->shape[0], bk_shape_str(x, s1, sizeof s1), p.C,
                     p.groups);
        return NULL;
    }
    p.Cg = p.C / p.groups, p.Og = w->shape[1], p.O = p.Og * p.groups;
    if (p.KH < 1 || p.KW < 1 || p.Og < 1) {
        bk_set_error("conv_transpose2d: weight %s has an empty kernel or no output channels",
                     bk_shape_str(w, s2, sizeof s2));
        return NULL;
    }
    if (b && (b->ndim != 1 || b->shape[0] != p.O)) {
        bk_set_error("conv_transpose2d: bias %s does not match out_channels=%" PRId64 " of weight %s",
                     bk_shape_str(b, s1, sizeof s1), p.O, bk_shape_str(w, s2, sizeof s2));
        return NULL;
    }
    bool sizes = p.H >= 1 && p.W >= 1 && out_size(p.H, p.sh, p.ph, p.dh, p.KH, oph, &p.OH) &&
                 out_size(p.W, p.sw, p.pw, p.dw, p.KW, opw, &p.OW) && bk__mul_ok(p.KH, p.KW, &p.K) &&
                 bk__mul_ok(p.Og, p.K, &p.K);
    int64_t cols, outs;
    if (!sizes || p.OH < 1 || p.OW < 1 || !bk__mul_ok(p.K, p.H * p.W, &cols) ||
        !bk__mul_ok(p.OH, p.OW, &outs) || !bk__mul_ok(outs, p.O, &outs) || !bk__mul_ok(outs, p.N, &outs)) {
        bk_set_error("conv_transpose2d: input %s with weight %s, stride (%" PRId64 ", %" PRId64
                     "), padding (%" PRId64 ", %" PRId64 "), dilation (%" PRId64 ", %" PRId64
                     ") and output_padding (%" PRId64 ", %" PRId64 ") gives no valid output size",
                     bk_shape_str(x, s1, sizeof s1), bk_shape_str(w, s2, sizeof s2), p.sh, p.sw, p.ph, p.pw,
                     p.dh, p.dw, oph, opw);
        return NULL;
    }
    bk_tensor *y = bk__tensor_arena(4, (int64_t[]){p.N, p.O, p.OH, p.OW}, !b);
    if (!y) return NULL;
    int64_t L = p.OH * p.OW, P = p.H * p.W;
    for (int64_t i = 0; b && i < p.N * p.O; i++) { /* Y = b, then the scattered products */
        float bias = b->data[i % p.O], *dst = y->data + i * L;
        for (int64_t j = 0; j < L; j++) dst[j] = bias;
    }
#ifdef _OPENMP
    int T = omp_in_parallel() ? 1 : omp_get_max_threads();
#else
    int T = 1;
#endif
    if (T > p.N) T = p.N > 0 ? (int)p.N : 1;
    float *work = bk__scratch(0, (size_t)(cols * T));
    if (!work && cols > 0) return NULL;
    const bk_backend *be = bk__backend();
#pragma omp parallel for schedule(static) num_threads(T) if (T > 1)
    for (int64_t n = 0; n < p.N; n++) {
#ifdef _OPENMP
        float *col = work + cols * omp_get_thread_num();
#else
        float *col = work;
#endif
        for (int64_t g = 0; g < p.groups; g++) { /* col (K, P) = W_g^T @ X_g, scattered into Y_g */
            be->sgemm_serial(true, false, p.K, P, p.Cg, 1.0f, w->data + g * p.Cg * p.K, p.K,
                             x->data + (n * p.C + g * p.Cg) * P, P, 0.0f, col, P);
            col_move(&p, col, y->data + (n * p.O + g * p.Og) * L, true);
        }
    }
    return bk_op_record(&OP_CONV_TRANSPOSE2D, y, b ? 3 : 2, in, &p, sizeof p);
}

/* ---- 1-d forms: (N, C, L) as (N, C, 1, L), weights (A, B, K) as (A, B, 1, K) ------------- */

/* The 2-d op's result (N, O, 1, OL) as (N, O, OL); NULL in, NULL out (the error says
 * which 1-d op ran). */
static bk_tensor *squeeze_height(const char *op, bk_tensor *y) {
    if (!y) {
        bk__error_prefix("%s (as a height-1 2-d op)", op);
        return NULL;
    }
    return bk_reshape(y, 3, (int64_t[]){y->shape[0], y->shape[1], y->shape[3]});
}

/* x and w as height-1 4-d tensors, after checking their ranks; false with an error. */
static bool unsqueeze_height(const char *op, bk_tensor *x, bk_tensor *w, bk_tensor *b, bk_tensor **x4,
                             bk_tensor **w4) {
    bk_tensor *in[3] = {x, w, b};
    if (!bk__inputs_ok(op, b ? 3 : 2, in)) return false;
    char s1[128], s2[128];
    if (x->ndim != 3 || w->ndim != 3) {
        bk_set_error("%s: expected a 3-d input (N, C, L) and a 3-d weight, got input %s and weight %s", op,
                     bk_shape_str(x, s1, sizeof s1), bk_shape_str(w, s2, sizeof s2));
        return false;
    }
    *x4 = bk_reshape(x, 4, (int64_t[]){x->shape[0], x->shape[1], 1, x->shape[2]});
    *w4 = bk_reshape(w, 4, (int64_t[]){w->shape[0], w->shape[1], 1, w->shape[2]});
    return *x4 && *w4;
}

bk_tensor *bk_conv1d(bk_tensor *x, bk_tensor *w, bk_tensor *b, bk_conv1d_opts o) {
    bk_tensor *x4, *w4;
    if (!unsqueeze_height("conv1d", x, w, b, &x4, &w4)) return NULL;
    bk_conv2d_opts o2 = {{1, o.stride}, {0, o.padding}, {1, o.dilation}, o.groups};
    return squeeze_height("conv1d", bk_conv2d(x4, w4, b, o2)); // (N, O, OL)
}

bk_tensor *bk_conv_transpose1d(bk_tensor *x, bk_tensor *w, bk_tensor *b, bk_conv_transpose1d_opts o) {
    bk_tensor *x4, *w4;
    if (!unsqueeze_height("conv_transpose1d", x, w, b, &x4, &w4)) return NULL;
    bk_conv_transpose2d_opts o2 = {{1, o.stride},
                                   {0, o.padding},
                                   {0, o.output_padding},
                                   {1, o.dilation},
                                   o.groups};
    return squeeze_height("conv_transpose1d", bk_conv_transpose2d(x4, w4, b, o2)); // (N, O, OL)
}
