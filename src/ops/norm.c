/* norm.c - batch normalisation (over N and the spatial dims, per channel) and layer
 * normalisation (over the trailing dims), each with affine weight and bias.
 *
 *   xhat = (x - mean) / sqrt(var + eps),  y = weight xhat + bias,  var biased (divide by n)
 *   dx = invstd (dxhat - mean(dxhat) - xhat mean(dxhat xhat)),  dxhat = dy weight
 * (in batch norm's eval mode mean/var are constants and dx = dy weight invstd).
 * Statistics are accumulated in double.
 *
 * Batch norm: N = batch, C = channels, S = the spatial size (H W, L, or 1 for (N, C)), so
 * x is (N, C, S) and channel c's n = N S values are the N rows x[i, c, :], each contiguous.
 * Layer norm: x is (R, D) and each row is normalised on its own.
 *
 * Threads: batch norm splits the channels for its sums (and the (N, C) rows, in memory order,
 * for writing y and dx), layer norm the rows, so each statistic is summed by one thread in a
 * fixed order; layer norm's dweight and dbias, sums over the rows, are
 * split by columns. Results do not depend on the thread count. The backward recomputes
 * xhat from x rather than keeping it: the same memory traffic (x is read instead of xhat),
 * one subtraction and one product more, and no saved tensor the size of x per layer.
 */
#include "internal.h"

#include "ops/fastmath.h"
#include "simd_sum.h"

#include <inttypes.h>
#include <math.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* Below this many elements one thread does it all: batch norm's forward takes ~1.5 ns per
 * element on one thread (bench/ops_bench), so 2^17 elements are ~200 µs, enough to pay for
 * a parallel region and the spinning it leaves behind (see elementwise.c's thresholds). */
#define PARALLEL_MIN ((int64_t)1 << 17)

/* ---- sums ------------------------------------------------------------------------------
 * In double, 17 partial sums in an order that depends only on the shape (simd_sum.h). */

/* a += (x[k] - mu)^2 */
static inline void sumv_sqdev(sumv *a, const float *x, int64_t n, double mu) {
    int64_t k = 0;
    v8d lo = a->lo, hi = a->hi;
    for (; k + LANES <= n; k += LANES) {
        v8d d0 = widen(load8(x + k)) - mu, d1 = widen(load8(x + k + 8)) - mu;
        lo += d0 * d0, hi += d1 * d1;
    }
    for (; k < n; k++) {
        double d = x[k] - mu;
        a->tail += d * d;
    }
    a->lo = lo, a->hi = hi;
}

/* a += g[k] w[k], b += g[k] w[k] xhat[k] with xhat = (x - mu) is in float, as the forward
 * has it; w == NULL: a weight of 1 (batch norm applies its weight to the totals) */
static inline void sumv_dxhat(sumv *a, sumv *b, const float *g, const float *w, const float *x, int64_t n,
                              float mu, float is) {
    int64_t k = 0;
    v8d alo = a->lo, ahi = a->hi, blo = b->lo, bhi = b->hi;
    for (; k + LANES <= n; k += LANES) {
        v8f d0 = load8(g + k), d1 = load8(g + k + 8);
        if (w) d0 *= load8(w + k), d1 *= load8(w + k + 8);
        v8f x0 = (load8(x + k) - mu) * is, x1 = (load8(x + k + 8) - mu) * is;
        alo += widen(d0), ahi += widen(d1);
        blo += widen(d0) * widen(x0), bhi += widen(d1) * widen(x1);
    }
    for (; k < n; k++) {
        float d = w ? g[k] * w[k] : g[k];
        a->tail += d;
        b->tail += (double)d * ((x[k] - mu) * is);
    }
    a->lo = alo, a->hi = ahi, b->lo = blo, b->hi = bhi;
}

/* The per-channel and per-row loops below are SIMD_CLONES (simd_sum.h): AVX-512, AVX2 or the
 * baseline, chosen at run time; the clones compute the same bits. */

/* ---- batch norm ----------------------------------------------------------------------- */

/* The statistics of n channels or rows (mean, invstd) and an output like x, all in the
 * current arena; NULL when out of memory. */
static bk_tensor *stats_and_output(int64_t n, float **mean, float **invstd, const bk_tensor *x) {
    bk_arena *a = bk_arena_current();
    size_t count = (size_t)(n ? n : 1);
    *mean = bk__arena_alloc(a, sizeof(float) * count);
    *invstd = bk__arena_alloc(a, sizeof(float) * count);
    bk_tensor *y = bk__tensor_arena(x->ndim, x->shape, false);
    return *mean && *invstd ? y : NULL;
}

typedef struct bn_params {
    int64_t N, C, S;
    bool use_batch_stats; /* training mode */
    bool residual, relu;  /* fused: y = relu(bn(x) + residual), each part optional */
    float *mean, *invstd; /* per channel (arena) */
} bn_params;

/* Runs CALL on the rows [r0, r1) of the N C rows of S floats: all of them, or (par) one
 * contiguous range per thread. The loops that stream x, dy, y and dx go through memory in
 * order this way; per channel, rows of S floats C S apart streamed slower (a Residual block
 * of D2L's ResNet at width 8 on 28x28 planes: 9% of its step). */
#ifdef _OPENMP
#define BN_ROWS(p, par, CALL)                                       \
    _Pragma("omp parallel if (par)") {                              \
        int64_t rows_ = (p)->N * (p)->C;                            \
        int t_ = omp_get_thread_num(), nt_ = omp_get_num_threads(); \
        int64_t r0 = rows_ * t_ / nt_, r1 = rows_ * (t_ + 1) / nt_; \
        CALL;                                                       \
    }
#else
#define BN_ROWS(p, par, CALL)                 \
    do {                                      \
        int64_t r0 = 0, r1 = (p)->N * (p)->C; \
        (void)(par);                          \
        CALL;                                 \
    } while (0)
#endif

/* Channel c of the backward's sums: dweight, dbias, and the two means dx needs,
 * m[c] = weight mean(dy) and m[C + c] = weight mean(dy xhat). */
SIMD_CLONES static void bn_backward_sums(const bn_params *p, int64_t c, const float *X, const float *G,
                                         float wv, float *m, float *dw, float *db) {
    int64_t n = p->N * p->S, S = p->S;
    const float mu = p->mean[c], is = p->invstd[c];
    /* sum dy and sum dy xhat; dxhat = dy weight, so sum dxhat = weight sum dy and
     * sum dxhat xhat = weight sum dy xhat */
    sumv sg, sgx;
    sumv_zero(&sg), sumv_zero(&sgx);
    for (int64_t i = 0; i < p->N; i++) {
        int64_t row = (i * p->C + c) * S;
        sumv_dxhat(&sg, &sgx, G + row, NULL, X + row, S, mu, is);
    }
    double sb = sumv_total(&sg), sw = sumv_total(&sgx);
    if (dw) dw[c] += (float)sw;
    if (db) db[c] += (float)sb;
    m[c] = (float)(wv * sb / (double)n), m[p->C + c] = (float)(wv * sw / (double)n);
}

/* Rows [r0, r1) of dx, row r = (image r / C, channel r % C), in memory order (m:
 * bn_backward_sums's means). */
SIMD_CLONES static void bn_backward_rows(const bn_params *p, int64_t r0, int64_t r1, const float *X,
                                         const float *G, const float *Wt, const float *m, float *dx,
                                         bool dx_fresh) {
    int64_t S = p->S;
    for (int64_t r = r0; r < r1; r++) {
        int64_t c = r % p->C;
        const float mu = p->mean[c], is = p->invstd[c], wv = Wt[c], m1 = m[c], m2 = m[p->C + c];
        const float *x = X + r * S, *g = G + r * S;
        float *d = dx + r * S;
        if (p->use_batch_stats && dx_fresh) { /* dx new, not zero-filled: assign */
#pragma omp simd
            for (int64_t k = 0; k < S; k++) {
                float dxh = g[k] * wv, xh = (x[k] - mu) * is;
                d[k] = is * (dxh - m1 - xh * m2);
            }
        } else if (p->use_batch_stats) {
#pragma omp simd
            for (int64_t k = 0; k < S; k++) {
                float dxh = g[k] * wv, xh = (x[k] - mu) * is;
                d[k] += is * (dxh - m1 - xh * m2);
            }
        } else if (dx_fresh) {
#pragma omp simd
            for (int64_t k = 0; k < S; k++) d[k] = is * (g[k] * wv);
        } else { /* eval: mean and var are constants */
#pragma omp simd
            for (int64_t k = 0; k < S; k++) d[k] += is * (g[k] * wv);
        }
    }
}

static void bn_backward(bk_node *node) {
    const bn_params *p = bk_node_params(node);
    bool fresh; /* dx new and not zero-filled: every element is assigned */
    bk_tensor *dx = bk__node_grad_input_write(node, 0, &fresh), *dw = bk_node_grad_input(node, 1),
              *db = bk_node_grad_input(node, 2);
    const float *X = bk_node_input(node, 0)->data, *Wt = bk_node_input(node, 1)->data,
                *G = bk_node_grad_output(node)->data;
    int64_t numel = p->N * p->C * p->S;
    /* Fused residual and ReLU, z = bn(x) + residual the pre-activation:
     *   dz = relu ? (y > 0 or NaN ? dy : 0) : dy,  dresidual (+)= dz
     * (torch's threshold_backward reads the ReLU's output: y > 0 exactly where z > 0). One
     * pass in memory order: done per channel, inside the channel loops, it made the fused op
     * slower than the three ops it replaces (rows of one channel are C S floats apart). dz goes
     * to a fresh dresidual when there is one (it is then that buffer), else to a scratch one. */
    bool rfresh = false;
    bk_tensor *tr = p->residual ? bk__node_grad_input_write(node, 3, &rfresh) : NULL;
    float *dres = tr ? tr->data : NULL;
    if (p->relu) {
        const float *Y = bk_node_output(node)->data;
        float *dz = dres && rfresh ? dres : bk__scratch(0, (size_t)numel);
        if (!dz) {
            bk__backward_fail();
            return;
        }
        BK_MAP(numel, PARALLEL_MIN, dz[i] = bk__select(Y[i] <= 0.0f, 0.0f, G[i]));
        if (dres && !rfresh) BK_MAP(numel, PARALLEL_MIN, dres[i] += dz[i]);
        G = dz;
    } else if (dres && rfresh) {
        memcpy(dres, G, sizeof(float) * (size_t)numel);
    } else if (dres) {
        BK_MAP(numel, PARALLEL_MIN, dres[i] += G[i]);
    }
    /* the sums per channel, then dx in memory order (BN_ROWS) */
    float *m = bk__scratch(1, 2 * (size_t)p->C);
    if (!m) {
        bk__backward_fail();
        return;
    }
    bool sums = dw || db || p->use_batch_stats; /* (eval mode with frozen affine needs none) */
    bool par = numel >= PARALLEL_MIN;
    (void)par; /* only the OpenMP pragmas read it */
    if (sums) {
#pragma omp parallel for schedule(static) if (par)
        for (int64_t c = 0; c < p->C; c++)
            bn_backward_sums(p, c, X, G, Wt[c], m, dw ? dw->data : NULL, db ? db->data : NULL);
    }
    if (dx) {
        float *D = dx->data;
        BN_ROWS(p, par, bn_backward_rows(p, r0, r1, X, G, Wt, m, D, fresh));
    }
}

/* indexed by residual + 2 relu: anomaly reports name the fused op */
static const bk_op OP_BATCH_NORM[4] = {{"batch_norm", bn_backward},
                                       {"batch_norm_add", bn_backward},
                                       {"batch_norm_relu", bn_backward},
                                       {"batch_norm_add_relu", bn_backward}};

/* Channel c's statistics: the batch's, or the fixed ones. */
SIMD_CLONES static void bn_forward_stats(bn_params *p, int64_t c, const float *X, const float *fixed_mean,
                                         const float *fixed_var, float eps, double *var_out) {
    double mu, var;
    if (fixed_mean) {
        mu = fixed_mean[c], var = fixed_var[c];
    } else {
        /* mean and biased variance: two passes, in double */
        int64_t n = p->N * p->S;
        sumv s, ss;
        sumv_zero(&s), sumv_zero(&ss);
        for (int64_t i = 0; i < p->N; i++) sumv_row(&s, X + (i * p->C + c) * p->S, p->S);
        mu = sumv_total(&s) / (double)n;
        for (int64_t i = 0; i < p->N; i++) sumv_sqdev(&ss, X + (i * p->C + c) * p->S, p->S, mu);
        var = sumv_total(&ss) / (double)n;
        if (var_out) var_out[c] = var;
    }
    p->mean[c] = (float)mu;
    p->invstd[c] = (float)(1.0 / sqrt(var + eps));
}

/* Rows [r0, r1) of y, row r = (image r / C, channel r % C), in memory order (R: the
 * residual, or NULL). */
SIMD_CLONES static void bn_forward_rows(const bn_params *p, int64_t r0, int64_t r1, const float *X,
                                        const float *R, float *Y, const float *Wt, const float *Bs) {
    int64_t S = p->S;
    for (int64_t r = r0; r < r1; r++) {
        int64_t c = r % p->C;
        const float m = p->mean[c], is = p->invstd[c], wv = Wt[c], bv = Bs[c];
        const float *xr = X + r * S;
        float *yr = Y + r * S;
#pragma omp simd
        for (int64_t k = 0; k < S; k++) yr[k] = (xr[k] - m) * is * wv + bv;
        if (R) { /* the row is in cache: adding here costs no pass over memory */
            const float *rr = R + r * S;
#pragma omp simd
            for (int64_t k = 0; k < S; k++) yr[k] += rr[k];
        }
        if (p->relu) { /* as bk_relu: NaN stays NaN, -0 stays -0 */
#pragma omp simd
            for (int64_t k = 0; k < S; k++) yr[k] = bk__select(yr[k] < 0.0f, 0.0f, yr[k]);
        }
    }
}

/* Normalises with the batch's statistics (var_out: the biased variances) or the given
 * ones and records the op. */
static bk_tensor *bn_forward(bn_params *p, bk_tensor *x, bk_tensor *w, bk_tensor *b, bk_tensor *residual,
                             const float *fixed_mean, const float *fixed_var, float eps, double *var_out) {
    bk_tensor *y = stats_and_output(p->C, &p->mean, &p->invstd, x);
    if (!y) return NULL;
    const float *R = residual ? residual->data : NULL;
    bool par = x->numel >= PARALLEL_MIN;
    (void)par; /* only the OpenMP pragmas read it */
    /* the statistics per channel, then y in memory order (BN_ROWS) */
#pragma omp parallel for schedule(static) if (par)
    for (int64_t c = 0; c < p->C; c++) bn_forward_stats(p, c, x->data, fixed_mean, fixed_var, eps, var_out);
    const float *X = x->data, *Wt = w->data, *Bs = b->data;
    float *Y = y->data;
    BN_ROWS(p, par, bn_forward_rows(p, r0, r1, X, R, Y, Wt, Bs));
    bk_tensor *in[4] = {x, w, b, residual};
    return bk_op_record(&OP_BATCH_NORM[p->residual + 2 * p->relu], y, residual ? 4 : 3, in, p, sizeof *p);
}

/* ---- layer norm ----------------------------------------------------------------------- */

typedef struct ln_params {
    int64_t R, D;
    float *mean, *invstd; /* per row (arena) */
} ln_params;

/* Row r of dx. */
SIMD_CLONES static void ln_backward_row(const ln_params *p, int64_t r, const float *X, const float *G,
                                        const float *Wt, float *dx) {
    int64_t D = p->D;
    const float *x = X + r * D, *g = G + r * D;
    const float mu = p->mean[r], is = p->invstd[r];
    sumv s1, s2; /* sum dxhat, sum dxhat xhat */
    sumv_zero(&s1), sumv_zero(&s2);
    sumv_dxhat(&s1, &s2, g, Wt, x, D, mu, is);
    const float m1 = (float)(sumv_total(&s1) / (double)D), m2 = (float)(sumv_total(&s2) / (double)D);
    float *d = dx + r * D;
#pragma omp simd
    for (int64_t e = 0; e < D; e++) {
        float xh = (x[e] - mu) * is, dxh = g[e] * Wt[e];
        d[e] += is * (dxh - m1 - xh * m2);
    }
}

static void ln_backward(bk_node *node) {
    const ln_params *p = bk_node_params(node);
    bk__xwb io = bk__xwb_grads(node);
    const float *X = io.x->data, *Wt = io.w->data, *G = io.dy;
    int64_t R = p->R, D = p->D;
    bool par = R * D >= PARALLEL_MIN;
    (void)par; /* only the OpenMP pragmas read it */
    if (io.dx) {
#pragma omp parallel for schedule(static) if (par)
        for (int64_t r = 0; r < R; r++) ln_backward_row(p, r, X, G, Wt, io.dx->data);
    }
    if (!io.dw && !io.db) return;
        /* dweight[e] = sum over rows of dy xhat, dbias[e] = sum of dy, in float, rows in order
     * (as torch); each thread takes a block of columns */
#pragma omp parallel if (par)
    {
        int64_t e0 = 0, e1 = D;
#ifdef _OPENMP
        int t = omp_get_thread_num(), nt = omp_get_num_threads();
        e0 = D * t / nt, e1 = D * (t + 1) / nt;
#endif
        for (int64_t r = 0; r < R; r++) {
            const float *x = X + r * D, *g = G + r * D;
            const float mu = p->mean[r], is = p->invstd[r];
            if (io.dw) {
                float *w = io.dw->data;
#pragma omp simd
                for (int64_t e = e0; e < e1; e++) w[e] += g[e] * ((x[e] - mu) * is);
            }
            if (io.db) {
                float *bb = io.db->data;
#pragma omp simd
                for (int64_t e = e0; e < e1; e++) bb[e] += g[e];
            }
        }
    }
}

static const bk_op OP_LAYER_NORM = {"layer_norm", ln_backward};

/* Row r of the forward: its statistics, then y. */
SIMD_CLONES static void ln_forward_row(ln_params *p, int64_t r, const float *X, float *Y, const float *wv,
                                       const float *bv, float eps) {
    int64_t D = p->D;
    const float *xr = X + r * D;
    sumv s, ss;
    sumv_zero(&s), sumv_zero(&ss);
    sumv_row(&s, xr, D);
    double mu = sumv_total(&s) / (double)D;
    sumv_sqdev(&ss, xr, D, mu);
    p->mean[r] = (float)mu;
    p->invstd[r] = (float)(1.0 / sqrt(sumv_total(&ss) / (double)D + eps));
    const float m = p->mean[r], is = p->invstd[r];
    float *yr = Y + r * D;
#pragma omp simd
    for (int64_t e = 0; e < D; e++) yr[e] = (xr[e] - m) * is * wv[e] + bv[e];
}

static bk_tensor *ln_forward(ln_params *p, bk_tensor *x, bk_tensor *w, bk_tensor *b, float eps) {
    bk_tensor *y = stats_and_output(p->R, &p->mean, &p->invstd, x);
    if (!y) return NULL;
#pragma omp parallel for schedule(static) if (x->numel >= PARALLEL_MIN)
    for (int64_t r = 0; r < p->R; r++) ln_forward_row(p, r, x->data, y->data, w->data, b->data, eps);
    bk_tensor *in[3] = {x, w, b};
    return bk_op_record(&OP_LAYER_NORM, y, 3, in, p, sizeof *p);
}

bk_tensor *bk_batch_norm(bk_tensor *x, bk_tensor *running_mean, bk_tensor *running_var, bk_tensor *weight,
                         bk_tensor *bias, bool training, float momentum, float eps) {
    return bk__batch_norm_act(x, running_mean, running_var, weight, bias, training, momentum, eps, NULL,
                              false);
}

bk_tensor *bk__batch_norm_act(bk_tensor *x, bk_tensor *running_mean, bk_tensor *running_var,
                              bk_tensor *weight, bk_tensor *bias, bool training, float momentum, float eps,
                              bk_tensor *residual, bool relu) {
    bk_tensor *args[6] = {x, running_mean, running_var, weight, bias, residual}; /* numbered as in the call */
    if (!bk__inputs_ok("batch_norm", residual ? 6 : 5, args)) return NULL;
    bk_tensor *in[5] = {x, weight, bias, running_mean, running_var};
    char s1[128], s2[128];
    if (residual && (residual == x || !bk_same_shape(residual, x))) {
        bk_set_error("batch_norm: the residual %s must have the input's shape %s and be another tensor",
                     bk_shape_str(residual, s1, sizeof s1), bk_shape_str(x, s2, sizeof s2));
        return NULL;
    }
    if (x->ndim < 2) {
        bk_set_error("batch_norm: expected an input (N, C, ...) of at least 2 dimensions, got %s",
                     bk_shape_str(x, s1, sizeof s1));
        return NULL;
    }
    int64_t C = x->shape[1];
    for (int i = 1; i < 5; i++)
        if (in[i]->ndim != 1 || in[i]->shape[0] != C) {
            bk_set_error("batch_norm: input %s has %" PRId64 " channels, but %s has shape %s",
                         bk_shape_str(x, s1, sizeof s1), C,
                         i == 1   ? "weight"
                         : i == 2 ? "bias"
                         : i == 3 ? "running_mean"
                                  : "running_var",
                         bk_shape_str(in[i], s2, sizeof s2));
            return NULL;
        }
    bn_params p = {x->shape[0], C, 1, training, residual != NULL, relu, NULL, NULL};
    for (int i = 2; i < x->ndim; i++) p.S *= x->shape[i];
    int64_t n = p.N * p.S; /* values per channel */
    if (training && n <= 1) {
        bk_set_error("batch_norm: expected more than 1 value per channel when training, got input %s",
                     bk_shape_str(x, s1, sizeof s1));
        return NULL;
    }
    double *var = NULL;
    if (training) {
        var = bk__arena_alloc(bk_arena_current(), sizeof(double) * (size_t)(C ? C : 1));
        if (!var) return NULL;
    }
    bk_tensor *y = bn_forward(&p, x, weight, bias, residual, training ? NULL : running_mean->data,
                              training ? NULL : running_var->data, eps, var);
    if (y && training) { /* running stats: torch uses the unbiased variance here */
        double unbias = (double)n / (double)(n - 1);
        for (int64_t c = 0; c < C; c++) {
            running_mean->data[c] = (1.0f - momentum) * running_mean->data[c] + momentum * p.mean[c];
            running_var->data[c] = (1.0f - momentum) * running_var->data[c] +
                                   momentum * (float)(var[c] * unbias);
        }
    }
    return y;
}

bk_tensor *bk_layer_norm(bk_tensor *x, int n_norm_dims, bk_tensor *weight, bk_tensor *bias, float eps) {
    bk_tensor *in[3] = {x, weight, bias};
    if (!bk__inputs_ok("layer_norm", 3, in)) return NULL;
    char s1[128], s2[128];
    if (n_norm_dims < 1 || n_norm_dims > x->ndim) {
        bk_set_error("layer_norm: cannot normalise over the last %d dims of input %s", n_norm_dims,
                     bk_shape_str(x, s1, sizeof s1));
        return NULL;
    }
    int64_t D = 1;
    for (int i = x->ndim - n_norm_dims; i < x->ndim; i++) D *= x->shape[i];
    for (int i = 1; i < 3; i++) {
        bool ok = in[i]->ndim == n_norm_dims;
        for (int k = 0; ok && k < n_norm_dims; k++)
            ok = in[i]->shape[k] == x->shape[x->ndim - n_norm_dims + k];
        if (!ok) {
            bk_set_error(
                "layer_norm: %s %s does not match the normalized shape (the last %d dims) of input %s",
                i == 1 ? "weight" : "bias", bk_shape_str(in[i], s2, sizeof s2), n_norm_dims,
                bk_shape_str(x, s1, sizeof s1));
            return NULL;
        }
    }
    ln_params p = {D ? x->numel / D : 0, D, NULL, NULL};
    return ln_forward(&p, x, weight, bias, eps);
}
