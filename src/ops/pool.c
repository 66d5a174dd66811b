/* pool.c - 2-d pooling over NCHW: max_pool2d, avg_pool2d (count_include_pad, as torch's
 * default) and adaptive_avg_pool2d.
 *
 * Out size: OH = (H + 2 PH - KH) / SH + 1 (floor, torch's ceil_mode=False). Max pooling
 * remembers the argmax of each window (first maximum on ties, as torch's CPU kernel) so the
 * backward routes each gradient to exactly one input.
 */
#include "internal.h"

#include <inttypes.h>
#include <math.h>

typedef enum { POOL_MAX, POOL_AVG, POOL_ADAPTIVE } pool_kind;

typedef struct pool_params {
    pool_kind kind;
    int64_t N, C, H, W, OH, OW, kh, kw, sh, sw, ph, pw;
    int32_t *argmax; /* max: flat index into the H*W plane per output element (arena) */
} pool_params;

/* adaptive pooling window [start, end) of output index i: torch's floor/ceil rule */
static inline int64_t ad_start(int64_t i, int64_t out, int64_t in) { return (i * in) / out; }
static inline int64_t ad_end(int64_t i, int64_t out, int64_t in) { return ((i + 1) * in + out - 1) / out; }

/* The window of output (oh, ow), clipped to the input; avg counts padding (count_include_pad). */
static void window(const pool_params *p, int64_t oh, int64_t ow, int64_t *h0, int64_t *h1,
                   int64_t *w0, int64_t *w1, int64_t *count) {
    if (p->kind == POOL_ADAPTIVE) {
        *h0 = ad_start(oh, p->OH, p->H), *h1 = ad_end(oh, p->OH, p->H);
        *w0 = ad_start(ow, p->OW, p->W), *w1 = ad_end(ow, p->OW, p->W);
        *count = (*h1 - *h0) * (*w1 - *w0);
        return;
    }
    int64_t hs = oh * p->sh - p->ph, ws = ow * p->sw - p->pw;
    int64_t he = hs + p->kh, we = ws + p->kw;
    /* torch counts the window clipped to the padded input */
    int64_t hep = he < p->H + p->ph ? he : p->H + p->ph, wep = we < p->W + p->pw ? we : p->W + p->pw;
    *count = (hep - hs) * (wep - ws);
    *h0 = hs > 0 ? hs : 0, *w0 = ws > 0 ? ws : 0;
    *h1 = he < p->H ? he : p->H, *w1 = we < p->W ? we : p->W;
}

static void pool_backward(bk_node *node) {
    const pool_params *p = bk_node_params(node);
    const float *G = bk_node_grad_output(node)->data;
    bk_tensor *dx = bk_node_grad_input(node, 0);
    if (!dx) return;
    int64_t HW = p->H * p->W, OHW = p->OH * p->OW;
#pragma omp parallel for schedule(static) if (p->N * p->C * OHW > 65536)
    for (int64_t nc = 0; nc < p->N * p->C; nc++) {
        float *d = dx->data + nc * HW;
        const float *g = G + nc * OHW;
        for (int64_t oh = 0; oh < p->OH; oh++)
            for (int64_t ow = 0; ow < p->OW; ow++) {
                int64_t o = oh * p->OW + ow;
                if (p->kind == POOL_MAX) {
                    d[p->argmax[nc * OHW + o]] += g[o];
                    continue;
                }
                int64_t h0, h1, w0, w1, cnt;
                window(p, oh, ow, &h0, &h1, &w0, &w1, &cnt);
                float v = g[o] / (float)cnt;
                for (int64_t h = h0; h < h1; h++)
                    for (int64_t w = w0; w < w1; w++) d[h * p->W + w] += v;
            }
    }
}

static const bk_op OP_MAXPOOL = {"max_pool2d", pool_backward};
static const bk_op OP_AVGPOOL = {"avg_pool2d", pool_backward};
static const bk_op OP_ADAPTIVE = {"adaptive_avg_pool2d", pool_backward};

static bk_tensor *pool(pool_params p, bk_tensor *x) {
    const bk_op *op = p.kind == POOL_MAX ? &OP_MAXPOOL : p.kind == POOL_AVG ? &OP_AVGPOOL : &OP_ADAPTIVE;
    if (!bk__inputs_ok(op->name, 1, &x)) return NULL;
    if (p.kind != POOL_ADAPTIVE && ((p.kh > 0 && p.ph > p.kh / 2) || (p.kw > 0 && p.pw > p.kw / 2))) {
        /* misuse guard: checked here, before 2 * padding is formed below, so that it cannot overflow */
        bk_set_error("%s: padding (%" PRId64 ", %" PRId64 ") should be at most half of kernel (%" PRId64 ", %" PRId64 ")",
                     op->name, p.ph, p.pw, p.kh, p.kw);
        return NULL;
    }
    char s[128];
    if (x->ndim != 4) {
        bk_set_error("%s: expected a 4-d input (N, C, H, W), got %s", op->name, bk_shape_str(x, s, sizeof s));
        return NULL;
    }
    p.N = x->shape[0], p.C = x->shape[1], p.H = x->shape[2], p.W = x->shape[3];
    if (p.kind != POOL_ADAPTIVE) {
        if (p.kh <= 0 || p.kw <= 0 || p.sh <= 0 || p.sw <= 0 || p.ph < 0 || p.pw < 0) {
            bk_set_error("%s: kernel (%" PRId64 ", %" PRId64 ") and stride (%" PRId64 ", %" PRId64
                         ") must be positive and padding (%" PRId64 ", %" PRId64 ") non-negative",
                         op->name, p.kh, p.kw, p.sh, p.sw, p.ph, p.pw);
            return NULL;
        }
        if (2 * p.ph > p.kh || 2 * p.pw > p.kw) {
            bk_set_error("%s: padding (%" PRId64 ", %" PRId64 ") should be at most half of kernel (%" PRId64
                         ", %" PRId64 ")", op->name, p.ph, p.pw, p.kh, p.kw);
            return NULL;
        }
        if (p.H + 2 * p.ph < p.kh || p.W + 2 * p.pw < p.kw) {
            bk_set_error("%s: kernel (%" PRId64 ", %" PRId64 ") is larger than the padded input (%" PRId64
                         ", %" PRId64 ") of %s", op->name, p.kh, p.kw, p.H + 2 * p.ph, p.W + 2 * p.pw,
                         bk_shape_str(x, s, sizeof s));
            return NULL;
        }
        p.OH = (p.H + 2 * p.ph - p.kh) / p.sh + 1;
        p.OW = (p.W + 2 * p.pw - p.kw) / p.sw + 1;
    } else if (p.OH <= 0 || p.OW <= 0 || p.H == 0 || p.W == 0) {
        bk_set_error("%s: output size (%" PRId64 ", %" PRId64 ") must be positive and the input %s non-empty",
                     op->name, p.OH, p.OW, bk_shape_str(x, s, sizeof s));
        return NULL;
    }
    bk_tensor *y = bk__tensor_arena(4, (int64_t[]){p.N, p.C, p.OH, p.OW}, false);
    if (!y) return NULL;
    int64_t HW = p.H * p.W, OHW = p.OH * p.OW;
    if (p.kind == POOL_MAX) {
        p.argmax = bk__arena_alloc(bk_arena_current(), sizeof(int32_t) * (size_t)(y->numel ? y->numel : 1));
        if (!p.argmax) return NULL;
    }
#pragma omp parallel for schedule(static) if (p.N * p.C * OHW > 65536)
    for (int64_t nc = 0; nc < p.N * p.C; nc++) {
        const float *xs = x->data + nc * HW;
        for (int64_t oh = 0; oh < p.OH; oh++)
            for (int64_t ow = 0; ow < p.OW; ow++) {
                int64_t h0, h1, w0, w1, cnt;
                window(&p, oh, ow, &h0, &h1, &w0, &w1, &cnt);
                float r;
                if (p.kind == POOL_MAX) {
                    float m = -INFINITY;
                    int64_t at = h0 * p.W + w0;
                    for (int64_t h = h0; h < h1; h++)
                        for (int64_t w = w0; w < w1; w++) {
                            float v = xs[h * p.W + w];
                            if (v > m || isnan(v)) {
                                m = v;
                                at = h * p.W + w;
                                if (isnan(v)) goto done;
                            }
                        }
                done:
                    r = m;
                    p.argmax[nc * OHW + oh * p.OW + ow] = (int32_t)at;
                } else {
                    double acc = 0;
                    for (int64_t h = h0; h < h1; h++)
                        for (int64_t w = w0; w < w1; w++) acc += xs[h * p.W + w];
                    r = (float)(acc / (double)cnt);
                }
                y->data[nc * OHW + oh * p.OW + ow] = r;
            }
    }
    return bk_op_record(op, y, 1, &x, &p, sizeof p);
}

bk_tensor *bk_max_pool2d(bk_tensor *x, bk_pool2d_opts o) {
    pool_params p = {POOL_MAX, 0, 0, 0, 0, 0, 0, o.kernel[0], o.kernel[1], o.stride[0], o.stride[1],
                     o.padding[0], o.padding[1], NULL};
    return pool(p, x);
}

bk_tensor *bk_avg_pool2d(bk_tensor *x, bk_pool2d_opts o) {
    pool_params p = {POOL_AVG, 0, 0, 0, 0, 0, 0, o.kernel[0], o.kernel[1], o.stride[0], o.stride[1],
                     o.padding[0], o.padding[1], NULL};
    return pool(p, x);
}

bk_tensor *bk_adaptive_avg_pool2d(bk_tensor *x, int64_t out_h, int64_t out_w) {
    pool_params p = {POOL_ADAPTIVE, 0, 0, 0, 0, out_h, out_w, 0, 0, 0, 0, 0, 0, NULL};
    return pool(p, x);
}
