/* pool.c - 2-d pooling over NCHW: max_pool2d (with dilation), avg_pool2d (counting the
 * padding, torch's default, or not: exclude_pad) and adaptive_avg_pool2d.
 *
 * N = batch, C = channels, H x W the input plane, OH x OW the output plane.
 * Out size: OH = (H + 2 PH - DH (KH - 1) - 1) / SH + 1, rounded down, or up with ceil_mode
 * (then one less if the last window would start past the input and its left padding, as
 * torch's pooling_output_shape). Max pooling
 * remembers the argmax of each window (first maximum in row-major order on ties, as torch's
 * CPU kernel; a NaN is the maximum, the first one if there are several, where torch 1.13
 * takes the last) so the backward routes each gradient to exactly one input.
 *
 * Speed: a window is a range of rows times a range of columns, so the ranges are computed
 * once per call for each output row and column (axis_windows) and the loops over a window
 * need no bounds checks. LeNet's case, 2x2 windows with stride 2 and no padding, has its
 * own branch-free loops. The N C planes are independent and split over the threads: every
 * output and input-gradient element is computed by one thread in a fixed order, so results
 * do not depend on the thread count.
 */
#include "internal.h"

#include <inttypes.h>
#include <math.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

/* Below this many input elements one thread does it all: the fastest path (2x2 max) reads
 * about 2 input elements per ns on one thread (bench/ops_bench), so 2^18 of them take
 * ~130 µs, enough to pay for a parallel region and the spinning it leaves behind (see
 * elementwise.c's thresholds). */
#define PARALLEL_MIN ((int64_t)1 << 18)

typedef enum { POOL_MAX, POOL_AVG, POOL_ADAPTIVE } pool_kind;

/* The windows along one axis: output index i reads inputs [start, end); an average divides
 * by count (avg_pool2d: the window clipped to the padded input; adaptive: end - start). */
typedef struct axis_win {
    int64_t start, end, count, step; /* step: the dilation (max pooling), else 1 */
} axis_win;

typedef struct pool_params {
    pool_kind kind;
    int64_t N, C, H, W, OH, OW, kh, kw, sh, sw, ph, pw, dh, dw;
    bool ceil_mode, exclude_pad;
    axis_win *rows, *cols; /* OH and OW windows (arena) */
    int32_t *argmax;       /* max: flat index into the H*W plane per output element (arena) */
} pool_params;

/* adaptive pooling window [start, end) of output index i: torch's floor/ceil rule */
static inline int64_t ad_start(int64_t i, int64_t out, int64_t in) { return (i * in) / out; }
static inline int64_t ad_end(int64_t i, int64_t out, int64_t in) { return ((i + 1) * in + out - 1) / out; }

/* The windows of one axis. A window of k taps d apart from lo = i s - pad reads
 * lo, lo + d, ..., lo + (k - 1) d, those inside [0, in): start is the first of them, end
 * one past the last, step d. An average divides by the padded window clipped to in + pad
 * (torch's count_include_pad) or, with exclude_pad, by the taps inside the input. */
static void axis_windows(const pool_params *p, int64_t in, int64_t out, int64_t k, int64_t s, int64_t pad,
                         int64_t d, axis_win *w) {
    for (int64_t i = 0; i < out; i++) {
        w[i].step = 1;
        if (p->kind == POOL_ADAPTIVE) {
            w[i].start = ad_start(i, out, in), w[i].end = ad_end(i, out, in);
            w[i].count = w[i].end - w[i].start;
            continue;
        }
        int64_t lo = i * s - pad, last = lo + (k - 1) * d;
        w[i].start = lo >= 0 ? lo : lo + (-lo + d - 1) / d * d;
        w[i].end = last < in ? last + 1 : in;
        if (w[i].start > w[i].end) w[i].start = w[i].end;
        w[i].step = d;
        if (p->exclude_pad) w[i].count = w[i].end - w[i].start; /* d is 1 for averages */
        else w[i].count = (lo + k < in + pad ? lo + k : in + pad) - lo;
    }
}

static bool is_2x2(const pool_params *p) {
    return p->kind != POOL_ADAPTIVE && p->kh == 2 && p->kw == 2 && p->sh == 2 && p->sw == 2 && p->ph == 0 &&
           p->pw == 0 && p->dh == 1 && p->dw == 1 && 2 * p->OH <= p->H && 2 * p->OW <= p->W;
}

/* ---- one (n, c) plane: x (H, W) -> y (OH, OW) ------------------------------------------- */

static void max_plane(const pool_params *p, const float *x, float *y, int32_t *am) {
    int64_t W = p->W;
    for (int64_t oh = 0; oh < p->OH; oh++) {
        const axis_win r = p->rows[oh];
        for (int64_t ow = 0; ow < p->OW; ow++) {
            const axis_win c = p->cols[ow];
            float m = -INFINITY;
            /* all -inf: the first (an empty window, all padding, points at a valid element) */
            int64_t at = (r.start < p->H ? r.start : p->H - 1) * W + (c.start < W ? c.start : W - 1);
            for (int64_t h = r.start; h < r.end; h += r.step)
                for (int64_t w = c.start; w < c.end; w += c.step) {
                    float v = x[h * W + w];
                    if (!(v <= m)) { /* v > m, or v is NaN (m never is here) */
                        m = v;
                        at = h * W + w;
                        if (v != v) goto done; /* the first NaN is the maximum */
                    }
                }
        done:
            y[oh * p->OW + ow] = m;
            am[oh * p->OW + ow] = (int32_t)at;
        }
    }
}

#if defined(__SSE2__)
/* The same for 2x2 windows, stride 2, no padding (LeNet's), four windows at a time with
 * SSE2 (every x86-64 CPU has it): r0 and r1 are the windows' two input rows, at the
 * plane index of the first window's top-left element. Without branches: v replaces the
 * running maximum m when !(v <= m) (v > m, or v is NaN) and m is not NaN, so the first
 * maximum, or the first NaN, wins, as in max_plane. */
static inline void max_2x2_x4(const float *r0, const float *r1, int32_t at, int32_t W, float *y,
                              int32_t *am) {
    __m128 lo = _mm_loadu_ps(r0), hi = _mm_loadu_ps(r0 + 4);
    const __m128 b = _mm_shuffle_ps(lo, hi, _MM_SHUFFLE(3, 1, 3, 1)); /* top right */
    __m128 m = _mm_shuffle_ps(lo, hi, _MM_SHUFFLE(2, 0, 2, 0));       /* top left */
    lo = _mm_loadu_ps(r1), hi = _mm_loadu_ps(r1 + 4);
    const __m128 c = _mm_shuffle_ps(lo, hi, _MM_SHUFFLE(2, 0, 2, 0)); /* bottom left */
    const __m128 d = _mm_shuffle_ps(lo, hi, _MM_SHUFFLE(3, 1, 3, 1)); /* bottom right */
    __m128i off = _mm_setzero_si128(); /* the winner's offset from its top-left element */
    const __m128 v[3] = {b, c, d};
    const __m128i voff[3] = {_mm_set1_epi32(1), _mm_set1_epi32(W), _mm_set1_epi32(W + 1)};
    for (int i = 0; i < 3; i++) {
        __m128 u = _mm_and_ps(_mm_cmpnle_ps(v[i], m), _mm_cmpord_ps(m, m));
        m = _mm_or_ps(_mm_and_ps(u, v[i]), _mm_andnot_ps(u, m));
        __m128i ui = _mm_castps_si128(u);
        off = _mm_or_si128(_mm_and_si128(ui, voff[i]), _mm_andnot_si128(ui, off));
    }
    _mm_storeu_ps(y, m);
    __m128i idx = _mm_add_epi32(_mm_add_epi32(_mm_set1_epi32(at), _mm_setr_epi32(0, 2, 4, 6)), off);
    _mm_storeu_si128((__m128i *)am, idx);
}

/* Needs OW >= 4: a last partial group of four is done by redoing the last four windows. */
static void max_plane_2x2(const pool_params *p, const float *x, float *y, int32_t *am) {
    int64_t W = p->W, OW = p->OW;
    for (int64_t oh = 0; oh < p->OH; oh++) {
        const float *r0 = x + 2 * oh * W, *r1 = r0 + W;
        int32_t base = (int32_t)(2 * oh * W);
        float *yr = y + oh * OW;
        int32_t *ar = am + oh * OW;
        for (int64_t ow = 0; ow < OW; ow += 4) {
            int64_t o = ow + 4 <= OW ? ow : OW - 4;
            max_2x2_x4(r0 + 2 * o, r1 + 2 * o, base + 2 * (int32_t)o, (int32_t)W, yr + o, ar + o);
        }
    }
}
#define HAVE_MAX_2X2 1
#endif

/* Averages accumulate in double, in row-major order, and round once. */
static void avg_plane(const pool_params *p, const float *x, float *y) {
    for (int64_t oh = 0; oh < p->OH; oh++) {
        const axis_win r = p->rows[oh];
        for (int64_t ow = 0; ow < p->OW; ow++) {
            const axis_win c = p->cols[ow];
            double acc = 0;
            for (int64_t h = r.start; h < r.end; h++)
                for (int64_t w = c.start; w < c.end; w++) acc += x[h * p->W + w];
            y[oh * p->OW + ow] = (float)(acc / (double)(r.count * c.count));
        }
    }
}

static void avg_plane_2x2(const pool_params *p, const float *x, float *y) {
    int64_t W = p->W, OW = p->OW;
    for (int64_t oh = 0; oh < p->OH; oh++) {
        const float *r0 = x + 2 * oh * W, *r1 = r0 + W;
        float *yr = y + oh * OW;
#pragma omp simd
        for (int64_t ow = 0; ow < OW; ow++) {
            double acc = 0; /* from 0, as avg_plane: the same bits, -0 included */
            acc += r0[2 * ow], acc += r0[2 * ow + 1], acc += r1[2 * ow], acc += r1[2 * ow + 1];
            yr[ow] = (float)(acc / 4.0);
        }
    }
}

/* dx += the average's share of each output gradient, over its window */
static void avg_plane_backward(const pool_params *p, const float *g, float *d) {
    for (int64_t oh = 0; oh < p->OH; oh++) {
        const axis_win r = p->rows[oh];
        for (int64_t ow = 0; ow < p->OW; ow++) {
            const axis_win c = p->cols[ow];
            float v = g[oh * p->OW + ow] / (float)(r.count * c.count); /* count 0: no term */
            for (int64_t h = r.start; h < r.end; h++)
                for (int64_t w = c.start; w < c.end; w++) d[h * p->W + w] += v;
        }
    }
}

static void pool_backward(bk_node *node) {
    const pool_params *p = bk_node_params(node);
    const float *G = bk_node_grad_output(node)->data;
    bool fresh; /* dx new, not zero-filled: each thread zeroes its planes before adding */
    bk_tensor *dx = bk__node_grad_input_write(node, 0, &fresh);
    if (!dx) return;
    int64_t HW = p->H * p->W, OHW = p->OH * p->OW;
#pragma omp parallel for schedule(static) if (p->N * p->C * HW >= PARALLEL_MIN)
    for (int64_t nc = 0; nc < p->N * p->C; nc++) {
        float *d = dx->data + nc * HW;
        const float *g = G + nc * OHW;
        if (fresh) memset(d, 0, sizeof(float) * (size_t)HW);
        if (p->kind == POOL_MAX) {
            const int32_t *am = p->argmax + nc * OHW;
            for (int64_t o = 0; o < OHW; o++) d[am[o]] += g[o];
        } else {
            avg_plane_backward(p, g, d);
        }
    }
}

static const bk_op OP_MAXPOOL = {"max_pool2d", pool_backward};

/* torch's pooling_output_shape: (in + 2 pad - ext - 1) / s + 1, ext = d (k - 1), rounded
 * down or (ceil_mode) up, then one less if the last window starts past in + pad. False if
 * that is below 1 (the kernel does not fit). in, ext and pad are below INT64_MAX / 8, and
 * nothing multiplies the stride, which may be anything positive. */
static bool pool_out_size(int64_t in, int64_t ext, int64_t s, int64_t pad, bool ceil_mode, int64_t *out) {
    int64_t span = in + 2 * pad - ext - 1;
    if (span < 0) return false;
    int64_t o = span / s + 1 + (ceil_mode && span % s != 0);               /* no s - 1 added: s may be huge */
    if (ceil_mode && o - 1 >= (in + pad) / s + ((in + pad) % s != 0)) o--; /* (o - 1) s >= in + pad */
    *out = o;
    return o >= 1;
}
static const bk_op OP_AVGPOOL = {"avg_pool2d", pool_backward};
static const bk_op OP_ADAPTIVE = {"adaptive_avg_pool2d", pool_backward};

static bk_tensor *pool(pool_params p, bk_tensor *x) {
    const bk_op *op = p.kind == POOL_MAX ? &OP_MAXPOOL : p.kind == POOL_AVG ? &OP_AVGPOOL : &OP_ADAPTIVE;
    if (!bk__inputs_ok(op->name, 1, &x)) return NULL;
    if (p.kind != POOL_ADAPTIVE && ((p.kh > 0 && p.ph > p.kh / 2) || (p.kw > 0 && p.pw > p.kw / 2))) {
        /* misuse guard: checked here, before 2 * padding is formed below, so that it cannot overflow */
        bk_set_error("%s: padding (%" PRId64 ", %" PRId64 ") should be at most half of kernel (%" PRId64
                     ", %" PRId64 ")",
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
        if (p.kh <= 0 || p.kw <= 0 || p.sh <= 0 || p.sw <= 0 || p.ph < 0 || p.pw < 0 || p.dh <= 0 ||
            p.dw <= 0) {
            bk_set_error("%s: kernel (%" PRId64 ", %" PRId64 "), stride (%" PRId64 ", %" PRId64
                         ") and dilation (%" PRId64 ", %" PRId64 ") must be positive and padding (%" PRId64
                         ", %" PRId64 ") non-negative",
                         op->name, p.kh, p.kw, p.sh, p.sw, p.dh, p.dw, p.ph, p.pw);
            return NULL;
        }
        if (2 * p.ph > p.kh || 2 * p.pw > p.kw) {
            bk_set_error("%s: padding (%" PRId64 ", %" PRId64 ") should be at most half of kernel (%" PRId64
                         ", %" PRId64 ")",
                         op->name, p.ph, p.pw, p.kh, p.kw);
            return NULL;
        }
        int64_t eh, ew;                    /* the dilated kernel's extent, less 1 */
        const int64_t big = INT64_MAX / 8; /* pool_out_size's sums stay below INT64_MAX */
        if (!bk__mul_ok(p.dh, p.kh - 1, &eh) || !bk__mul_ok(p.dw, p.kw - 1, &ew) || eh > big || ew > big ||
            p.H > big || p.W > big || p.ph > big || p.pw > big) {
            bk_set_error("%s: kernel (%" PRId64 ", %" PRId64 ") with dilation (%" PRId64 ", %" PRId64
                         ") and padding (%" PRId64 ", %" PRId64
                         ") on input %s give sizes too large to compute",
                         op->name, p.kh, p.kw, p.dh, p.dw, p.ph, p.pw, bk_shape_str(x, s, sizeof s));
            return NULL;
        }
        if (!pool_out_size(p.H, eh, p.sh, p.ph, p.ceil_mode, &p.OH) ||
            !pool_out_size(p.W, ew, p.sw, p.pw, p.ceil_mode, &p.OW)) {
            char dil[64] = "";
            if (p.dh != 1 || p.dw != 1)
                snprintf(dil, sizeof dil, " with dilation (%" PRId64 ", %" PRId64 ")", p.dh, p.dw);
            bk_set_error("%s: kernel (%" PRId64 ", %" PRId64 ")%s is larger than the padded input (%" PRId64
                         ", %" PRId64 ") of %s",
                         op->name, p.kh, p.kw, dil, p.H + 2 * p.ph, p.W + 2 * p.pw,
                         bk_shape_str(x, s, sizeof s));
            return NULL;
        }
    } else if (p.OH <= 0 || p.OW <= 0 || p.H == 0 || p.W == 0) {
        bk_set_error("%s: output size (%" PRId64 ", %" PRId64 ") must be positive and the input %s non-empty",
                     op->name, p.OH, p.OW, bk_shape_str(x, s, sizeof s));
        return NULL;
    }
    if (p.kind == POOL_MAX && p.H * p.W > INT32_MAX) { /* argmax is an int32 index into a plane */
        bk_set_error("%s: input %s has planes of more than 2^31 - 1 elements", op->name,
                     bk_shape_str(x, s, sizeof s));
        return NULL;
    }
    bk_arena *a = bk_arena_current();
    bk_tensor *y = bk__tensor_arena(4, (int64_t[]){p.N, p.C, p.OH, p.OW}, false);
    p.rows = bk__arena_alloc(a, sizeof(axis_win) * (size_t)p.OH);
    p.cols = bk__arena_alloc(a, sizeof(axis_win) * (size_t)p.OW);
    if (p.kind == POOL_MAX)
        p.argmax = bk__arena_alloc(a, sizeof(int32_t) * (size_t)(y && y->numel ? y->numel : 1));
    if (!y || !p.rows || !p.cols || (p.kind == POOL_MAX && !p.argmax)) return NULL;
    axis_windows(&p, p.H, p.OH, p.kh, p.sh, p.ph, p.dh, p.rows);
    axis_windows(&p, p.W, p.OW, p.kw, p.sw, p.pw, p.dw, p.cols);
    int64_t HW = p.H * p.W, OHW = p.OH * p.OW;
    bool fast = is_2x2(&p);
#pragma omp parallel for schedule(static) if (p.N * p.C * HW >= PARALLEL_MIN)
    for (int64_t nc = 0; nc < p.N * p.C; nc++) {
        const float *xs = x->data + nc * HW;
        float *ys = y->data + nc * OHW;
        if (p.kind == POOL_MAX) {
#ifdef HAVE_MAX_2X2
            if (fast && p.OW >= 4) {
                max_plane_2x2(&p, xs, ys, p.argmax + nc * OHW);
                continue;
            }
#endif
            max_plane(&p, xs, ys, p.argmax + nc * OHW);
        } else if (fast) avg_plane_2x2(&p, xs, ys);
        else avg_plane(&p, xs, ys);
    }
    return bk_op_record(op, y, 1, &x, &p, sizeof p);
}

/* max_pool2d and avg_pool2d: a window kind with the caller's kernel, stride, padding,
 * dilation (max only) and rounding */
static bk_tensor *window_pool(pool_kind kind, bk_tensor *x, bk_pool2d_opts o, const int64_t dilation[2],
                              bool ceil_mode, bool count_include_pad) {
    if (!dilation) {
        bk_set_error("max_pool2d: dilation is NULL");
        return NULL;
    }
    pool_params p = {.kind = kind,
                     .kh = o.kernel[0],
                     .kw = o.kernel[1],
                     .sh = o.stride[0],
                     .sw = o.stride[1],
                     .ph = o.padding[0],
                     .pw = o.padding[1],
                     .dh = dilation[0],
                     .dw = dilation[1],
                     .ceil_mode = ceil_mode,
                     .exclude_pad = !count_include_pad};
    return pool(p, x);
}

static const int64_t NO_DILATION[2] = {1, 1};

bk_tensor *bk_max_pool2d(bk_tensor *x, bk_pool2d_opts o) {
    return window_pool(POOL_MAX, x, o, NO_DILATION, false, true);
}

bk_tensor *bk_avg_pool2d(bk_tensor *x, bk_pool2d_opts o) {
    return window_pool(POOL_AVG, x, o, NO_DILATION, false, true);
}

bk_tensor *bk_max_pool2d_ex(bk_tensor *x, bk_pool2d_opts o, const int64_t dilation[2], bool ceil_mode) {
    return window_pool(POOL_MAX, x, o, dilation, ceil_mode, true);
}

bk_tensor *bk_avg_pool2d_ex(bk_tensor *x, bk_pool2d_opts o, bool ceil_mode, bool count_include_pad) {
    return window_pool(POOL_AVG, x, o, NO_DILATION, ceil_mode, count_include_pad);
}

bk_tensor *bk_adaptive_avg_pool2d(bk_tensor *x, int64_t out_h, int64_t out_w) {
    pool_params p = {.kind = POOL_ADAPTIVE, .OH = out_h, .OW = out_w, .dh = 1, .dw = 1};
    return pool(p, x);
}
