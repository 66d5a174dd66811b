/* upsample.c - F.interpolate on NCHW images: nearest and bilinear (align_corners false or
 * true), to a size or by a scale factor, as PyTorch 1.13 computes them on the CPU.
 *
 * N = batch, C = channels, H x W the input plane, OH x OW the output plane.
 * Output size: `size`, else floor(H scale_h) (computed in double, as torch).
 * The source coordinate of output index i along an axis of input size n and output size m,
 * with r = 1 / scale_factor when a scale factor was given, else n / m (in float, as torch):
 *   nearest:  src = min(floor(i r), n - 1)   (i itself when m == n; i / 2 when m == 2 n)
 *   bilinear: s = (i + 0.5) r - 0.5 clamped at 0, or with align_corners s = i (n - 1) / (m - 1)
 *             (0 when m == 1); i0 = (int)s, i1 = i0 + 1 (i0 at the last input), l1 = s - i0
 *   y = lh0 (lw0 x[h0, w0] + lw1 x[h0, w1]) + lh1 (lw0 x[h1, w0] + lw1 x[h1, w1])
 * The backward adds each dY element into the inputs it read, with the same weights. The
 * N C planes are independent and split over the threads; within a plane the order of the
 * additions is fixed, so results do not depend on the thread count.
 */
#include "internal.h"

#include <inttypes.h>
#include <math.h>

/* Below this many output elements one thread does it all (as pool.c). */
#define PARALLEL_MIN ((int64_t)1 << 17)

/* Where output index i reads along one axis: inputs i0 and i1 with weights l0 and l1
 * (nearest: i0 == i1, l0 = 1, l1 = 0). */
typedef struct axis_src {
    int64_t i0, i1;
    float l0, l1;
} axis_src;

typedef struct interp_params {
    int64_t N, C, H, W, OH, OW;
    bool nearest;      /* copies x[h0, w0]: no products with 0 weights (which would turn inf into NaN) */
    axis_src *hs, *ws; /* OH and OW entries, in the arena next to the node */
} interp_params;

/* torch's compute_scales_value / area_pixel_compute_scale */
static float axis_ratio(int64_t n, int64_t m, double scale, bool align_corners) {
    if (align_corners) return m > 1 ? (float)(n - 1) / (float)(m - 1) : 0.0f;
    return scale > 0 ? (float)(1.0 / scale) : (float)n / (float)m;
}

static void axis_sources(axis_src *s, int64_t n, int64_t m, double scale, bk_interp_mode mode,
                         bool align_corners) {
    float r = axis_ratio(n, m, scale, mode == BK_INTERP_BILINEAR && align_corners);
    for (int64_t i = 0; i < m; i++) {
        if (mode == BK_INTERP_NEAREST) {
            int64_t k = m == n ? i : m == 2 * n ? i / 2 : (int64_t)floorf((float)i * r);
            s[i] = (axis_src){k < n - 1 ? k : n - 1, k < n - 1 ? k : n - 1, 1.0f, 0.0f};
            continue;
        }
        float src = align_corners ? r * (float)i : r * ((float)i + 0.5f) - 0.5f;
        if (src < 0) src = 0;
        int64_t i0 = (int64_t)src;
        if (i0 > n - 1) i0 = n - 1;
        float l1 = src - (float)i0;
        l1 = l1 < 0 ? 0 : l1 > 1 ? 1 : l1;
        s[i] = (axis_src){i0, i0 < n - 1 ? i0 + 1 : i0, 1.0f - l1, l1};
    }
}

static void interpolate_backward(bk_node *node) {
    const interp_params *p = bk_node_params(node);
    bk_tensor *dx = bk_node_grad_input(node, 0);
    const float *G = bk_node_grad_output(node)->data;
    if (!dx) return;
    int64_t planes = p->N * p->C;
#pragma omp parallel for schedule(static) if (planes * p->OH * p->OW >= PARALLEL_MIN)
    for (int64_t pl = 0; pl < planes; pl++) { /* dx[h, w] += the weights that read it times dY */
        float *d = dx->data + pl * p->H * p->W;
        const float *g = G + pl * p->OH * p->OW;
        for (int64_t oh = 0; oh < p->OH; oh++) {
            axis_src h = p->hs[oh];
            for (int64_t ow = 0; ow < p->OW; ow++) {
                axis_src w = p->ws[ow];
                float v = g[oh * p->OW + ow];
                if (p->nearest) {
                    d[h.i0 * p->W + w.i0] += v;
                    continue;
                }
                d[h.i0 * p->W + w.i0] += h.l0 * w.l0 * v;
                d[h.i0 * p->W + w.i1] += h.l0 * w.l1 * v;
                d[h.i1 * p->W + w.i0] += h.l1 * w.l0 * v;
                d[h.i1 * p->W + w.i1] += h.l1 * w.l1 * v;
            }
        }
    }
}

static const bk_op OP_INTERPOLATE = {"interpolate", interpolate_backward};

/* The output size along one axis: size if given, else floor(n scale); false if neither is
 * usable (the caller words the error). */
static bool out_axis(int64_t n, int64_t size, double scale, int64_t *m) {
    if (size > 0) {
        *m = size;
        return true;
    }
    double v = floor((double)n * scale);
    if (!(scale > 0 && v >= 1 && v < 4e18)) return false;
    *m = (int64_t)v;
    return true;
}

bool bk__interp_opts_ok(const char *who, bk_interp_opts o) {
    if ((unsigned)o.mode >= BK_INTERP_COUNT) {
        bk_set_error("%s: unknown mode %d (BK_INTERP_NEAREST or BK_INTERP_BILINEAR)", who, (int)o.mode);
        return false;
    }
    if (o.align_corners && o.mode == BK_INTERP_NEAREST) {
        bk_set_error("%s: align_corners only has a meaning for bilinear mode, not nearest", who);
        return false;
    }
    bool by_size = o.size[0] > 0 || o.size[1] > 0;
    if (by_size ? (o.size[0] <= 0 || o.size[1] <= 0 || o.scale_factor[0] != 0 || o.scale_factor[1] != 0)
                : !(o.scale_factor[0] > 0 && o.scale_factor[1] > 0 && o.scale_factor[0] < INFINITY &&
                    o.scale_factor[1] < INFINITY)) {
        bk_set_error("%s: give either a size (%" PRId64 ", %" PRId64
                     ") with both positive or a scale_factor (%g, %g) with both positive and finite, not "
                     "both "
                     "or neither",
                     who, o.size[0], o.size[1], o.scale_factor[0], o.scale_factor[1]);
        return false;
    }
    return true;
}

bk_tensor *bk_interpolate(bk_tensor *x, bk_interp_opts o) {
    if (!bk__inputs_ok("interpolate", 1, &x)) return NULL;
    char s1[128];
    if (x->ndim != 4) {
        bk_set_error("interpolate: expected a 4-d input (N, C, H, W), got %s",
                     bk_shape_str(x, s1, sizeof s1));
        return NULL;
    }
    if (!bk__interp_opts_ok("interpolate", o)) return NULL;
    interp_params p = {x->shape[0], x->shape[1], x->shape[2], x->shape[3], 0, 0, o.mode == BK_INTERP_NEAREST,
                       NULL,        NULL};
    bool by_size = o.size[0] > 0;
    int64_t numel;
    if (p.H < 1 || p.W < 1 || !out_axis(p.H, o.size[0], o.scale_factor[0], &p.OH) ||
        !out_axis(p.W, o.size[1], o.scale_factor[1], &p.OW)) {
        bk_set_error("interpolate: input %s with scale_factor (%g, %g) gives an empty or too large output",
                     bk_shape_str(x, s1, sizeof s1), o.scale_factor[0], o.scale_factor[1]);
        return NULL;
    }
    if (!bk__shape_ok("interpolate", 4, (int64_t[]){p.N, p.C, p.OH, p.OW}, &numel)) return NULL;
    bk_tensor *y = bk__tensor_arena(4, (int64_t[]){p.N, p.C, p.OH, p.OW}, false);
    axis_src *src = bk__arena_alloc(bk_arena_current(), sizeof(axis_src) * (size_t)(p.OH + p.OW));
    if (!y || !src) return NULL;
    p.hs = src, p.ws = src + p.OH;
    double sh = by_size ? 0 : o.scale_factor[0], sw = by_size ? 0 : o.scale_factor[1];
    axis_sources(p.hs, p.H, p.OH, sh, o.mode, o.align_corners);
    axis_sources(p.ws, p.W, p.OW, sw, o.mode, o.align_corners);
    int64_t planes = p.N * p.C;
#pragma omp parallel for schedule(static) if (numel >= PARALLEL_MIN)
    for (int64_t pl = 0; pl < planes; pl++) {
        const float *a = x->data + pl * p.H * p.W;
        float *out = y->data + pl * p.OH * p.OW;
        for (int64_t oh = 0; oh < p.OH; oh++) {
            axis_src h = p.hs[oh];
            const float *r0 = a + h.i0 * p.W, *r1 = a + h.i1 * p.W;
            for (int64_t ow = 0; ow < p.OW; ow++) { // (N, C, H, W) -> (N, C, OH, OW)
                axis_src w = p.ws[ow];
                out[oh * p.OW + ow] = p.nearest ? r0[w.i0]
                                                : h.l0 * (w.l0 * r0[w.i0] + w.l1 * r0[w.i1]) +
                                                      h.l1 * (w.l0 * r1[w.i0] + w.l1 * r1[w.i1]);
            }
        }
    }
    return bk_op_record(&OP_INTERPOLATE, y, 1, &x, &p, sizeof p);
}
