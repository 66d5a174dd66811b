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
 * Threads: batch norm splits the channels, layer norm the rows, so each statistic is summed
 * by one thread in a fixed order; layer norm's dweight and dbias, sums over the rows, are
 * split by columns. Results do not depend on the thread count. The backward recomputes
 * xhat from x rather than keeping it: the same memory traffic (x is read instead of xhat),
 * one subtraction and one product more, and no saved tensor the size of x per layer.
 */
#include "internal.h"

#include <inttypes.h>
#include <math.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* Below this many elements one thread does it all: batch norm's forward takes ~1.5 ns per
 * element on one thread (bench/ops_bench), so 2^17 elements are ~200 µs, enough to pay for
 * a parallel region and the spinning it leaves behind (see elementwise.c's thresholds). */
#define PARALLEL_MIN ((int64_t)1 << 17)

/* ---- sums ------------------------------------------------------------------------------
 * A sum of many floats in double, kept as four partial sums: element k of every row goes to
 * partial k % 4 and the total is (s0 + s1) + (s2 + s3). One running sum is a chain of
 * dependent additions (4 cycles each); four let the core overlap them. The order depends
 * only on the shape, so results do not depend on the thread count either. */

typedef struct sum4 {
    double s0, s1, s2, s3;
} sum4;

static inline double sum4_total(sum4 a) { return (a.s0 + a.s1) + (a.s2 + a.s3); }

/* a += x[k] */
static inline void sum4_row(sum4 *a, const float *x, int64_t n) {
    int64_t k = 0;
    for (; k + 4 <= n; k += 4) a->s0 += x[k], a->s1 += x[k + 1], a->s2 += x[k + 2], a->s3 += x[k + 3];
    for (; k < n; k++) a->s0 += x[k];
}

/* a += (x[k] - mu)^2 */
static inline void sum4_sqdev(sum4 *a, const float *x, int64_t n, double mu) {
    int64_t k = 0;
    for (; k + 4 <= n; k += 4) {
        double d0 = x[k] - mu, d1 = x[k + 1] - mu, d2 = x[k + 2] - mu, d3 = x[k + 3] - mu;
        a->s0 += d0 * d0, a->s1 += d1 * d1, a->s2 += d2 * d2, a->s3 += d3 * d3;
    }
    for (; k < n; k++) {
        double d = x[k] - mu;
        a->s0 += d * d;
    }
}

/* a += g[k], b += g[k] xhat[k] with xhat = (x - mu) is in float, as the forward has it */
static inline void sum4_grad(sum4 *a, sum4 *b, const float *g, const float *x, int64_t n, float mu, float is) {
    int64_t k = 0;
    for (; k + 4 <= n; k += 4) {
        float x0 = (x[k] - mu) * is, x1 = (x[k + 1] - mu) * is, x2 = (x[k + 2] - mu) * is, x3 = (x[k + 3] - mu) * is;
        a->s0 += g[k], a->s1 += g[k + 1], a->s2 += g[k + 2], a->s3 += g[k + 3];
        b->s0 += (double)g[k] * x0, b->s1 += (double)g[k + 1] * x1;
        b->s2 += (double)g[k + 2] * x2, b->s3 += (double)g[k + 3] * x3;
    }
    for (; k < n; k++) {
        a->s0 += g[k];
        b->s0 += (double)g[k] * ((x[k] - mu) * is);
    }
}

/* a += dxhat[k], b += dxhat[k] xhat[k] with dxhat = g w (layer norm: a weight per element) */
static inline void sum4_dxhat(sum4 *a, sum4 *b, const float *g, const float *w, const float *x, int64_t n, float mu,
                              float is) {
    int64_t k = 0;
    for (; k + 4 <= n; k += 4) {
        float d0 = g[k] * w[k], d1 = g[k + 1] * w[k + 1], d2 = g[k + 2] * w[k + 2], d3 = g[k + 3] * w[k + 3];
        a->s0 += d0, a->s1 += d1, a->s2 += d2, a->s3 += d3;
        b->s0 += (double)d0 * ((x[k] - mu) * is), b->s1 += (double)d1 * ((x[k + 1] - mu) * is);
        b->s2 += (double)d2 * ((x[k + 2] - mu) * is), b->s3 += (double)d3 * ((x[k + 3] - mu) * is);
    }
    for (; k < n; k++) {
        float d = g[k] * w[k];
        a->s0 += d;
        b->s0 += (double)d * ((x[k] - mu) * is);
    }
}

/* ---- batch norm ----------------------------------------------------------------------- */

typedef struct bn_params {
    int64_t N, C, S;
    bool use_batch_stats; /* training mode */
    float *mean, *invstd; /* per channel (arena) */
} bn_params;

/* Channel c's mean and biased variance: two passes, in double. */
static void bn_stats(const bn_params *p, const float *X, int64_t c, double *mean, double *var) {
    int64_t n = p->N * p->S;
    sum4 s = {0, 0, 0, 0}, ss = {0, 0, 0, 0};
    for (int64_t i = 0; i < p->N; i++) sum4_row(&s, X + (i * p->C + c) * p->S, p->S);
    double mu = sum4_total(s) / (double)n;
    for (int64_t i = 0; i < p->N; i++) sum4_sqdev(&ss, X + (i * p->C + c) * p->S, p->S, mu);
    *mean = mu, *var = sum4_total(ss) / (double)n;
}

static void bn_backward(bk_node *node) {
    const bn_params *p = bk_node_params(node);
    const float *X = bk_node_input(node, 0)->data, *Wt = bk_node_input(node, 1)->data;
    const float *G = bk_node_grad_output(node)->data;
    bk_tensor *dx = bk_node_grad_input(node, 0), *dw = bk_node_grad_input(node, 1);
    bk_tensor *db = bk_node_grad_input(node, 2);
    int64_t n = p->N * p->S, S = p->S;
#pragma omp parallel for schedule(static) if (p->N * p->C * p->S >= PARALLEL_MIN)
    for (int64_t c = 0; c < p->C; c++) {
        const float mu = p->mean[c], is = p->invstd[c], wv = Wt[c];
        /* sum dy and sum dy xhat; dxhat = dy weight, so sum dxhat = weight sum dy and
         * sum dxhat xhat = weight sum dy xhat */
        sum4 sg = {0, 0, 0, 0}, sgx = {0, 0, 0, 0};
        if (dw || db || p->use_batch_stats) /* (eval mode with frozen affine needs none) */
            for (int64_t i = 0; i < p->N; i++) {
                int64_t row = (i * p->C + c) * S;
                sum4_grad(&sg, &sgx, G + row, X + row, S, mu, is);
            }
        double sb = sum4_total(sg), sw = sum4_total(sgx);
        if (dw) dw->data[c] += (float)sw;
        if (db) db->data[c] += (float)sb;
        if (!dx) continue;
        const float m1 = (float)(wv * sb / (double)n), m2 = (float)(wv * sw / (double)n);
        for (int64_t i = 0; i < p->N; i++) {
            const float *x = X + (i * p->C + c) * S, *g = G + (i * p->C + c) * S;
            float *d = dx->data + (i * p->C + c) * S;
            if (p->use_batch_stats) {
#pragma omp simd
                for (int64_t k = 0; k < S; k++) {
                    float dxh = g[k] * wv, xh = (x[k] - mu) * is;
                    d[k] += is * (dxh - m1 - xh * m2);
                }
            } else { /* eval: mean and var are constants */
#pragma omp simd
                for (int64_t k = 0; k < S; k++) d[k] += is * (g[k] * wv);
            }
        }
    }
}

static const bk_op OP_BATCH_NORM = {"batch_norm", bn_backward};

/* Normalises with the batch's statistics (var_out: the biased variances) or the given
 * ones and records the op. */
static bk_tensor *bn_forward(bn_params *p, bk_tensor *x, bk_tensor *w, bk_tensor *b, const float *fixed_mean,
                             const float *fixed_var, float eps, double *var_out) {
    bk_arena *a = bk_arena_current();
    size_t C = (size_t)(p->C ? p->C : 1);
    p->mean = bk__arena_alloc(a, sizeof(float) * C);
    p->invstd = bk__arena_alloc(a, sizeof(float) * C);
    bk_tensor *y = bk__tensor_arena(x->ndim, x->shape, false);
    if (!p->mean || !p->invstd || !y) return NULL;
    const float *X = x->data;
    int64_t S = p->S;
#pragma omp parallel for schedule(static) if (x->numel >= PARALLEL_MIN)
    for (int64_t c = 0; c < p->C; c++) {
        double mu, var;
        if (fixed_mean) {
            mu = fixed_mean[c], var = fixed_var[c];
        } else {
            bn_stats(p, X, c, &mu, &var);
            if (var_out) var_out[c] = var;
        }
        p->mean[c] = (float)mu;
        p->invstd[c] = (float)(1.0 / sqrt(var + eps));
        const float m = p->mean[c], is = p->invstd[c], wv = w->data[c], bv = b->data[c];
        for (int64_t i = 0; i < p->N; i++) {
            const float *xr = X + (i * p->C + c) * S;
            float *yr = y->data + (i * p->C + c) * S;
#pragma omp simd
            for (int64_t k = 0; k < S; k++) yr[k] = (xr[k] - m) * is * wv + bv;
        }
    }
    bk_tensor *in[3] = {x, w, b};
    return bk_op_record(&OP_BATCH_NORM, y, 3, in, p, sizeof *p);
}

/* ---- layer norm ----------------------------------------------------------------------- */

typedef struct ln_params {
    int64_t R, D;
    float *mean, *invstd; /* per row (arena) */
} ln_params;

static void ln_backward(bk_node *node) {
    const ln_params *p = bk_node_params(node);
    const float *X = bk_node_input(node, 0)->data, *Wt = bk_node_input(node, 1)->data;
    const float *G = bk_node_grad_output(node)->data;
    bk_tensor *dx = bk_node_grad_input(node, 0), *dw = bk_node_grad_input(node, 1);
    bk_tensor *db = bk_node_grad_input(node, 2);
    int64_t R = p->R, D = p->D;
    bool par = R * D >= PARALLEL_MIN;
    (void)par; /* only the OpenMP pragmas read it */
    if (dx) {
#pragma omp parallel for schedule(static) if (par)
        for (int64_t r = 0; r < R; r++) {
            const float *x = X + r * D, *g = G + r * D;
            const float mu = p->mean[r], is = p->invstd[r];
            sum4 s1 = {0, 0, 0, 0}, s2 = {0, 0, 0, 0}; /* sum dxhat, sum dxhat xhat */
            sum4_dxhat(&s1, &s2, g, Wt, x, D, mu, is);
            const float m1 = (float)(sum4_total(s1) / (double)D), m2 = (float)(sum4_total(s2) / (double)D);
            float *d = dx->data + r * D;
#pragma omp simd
            for (int64_t e = 0; e < D; e++) {
                float xh = (x[e] - mu) * is, dxh = g[e] * Wt[e];
                d[e] += is * (dxh - m1 - xh * m2);
            }
        }
    }
    if (!dw && !db) return;
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
            if (dw) {
                float *w = dw->data;
#pragma omp simd
                for (int64_t e = e0; e < e1; e++) w[e] += g[e] * ((x[e] - mu) * is);
            }
            if (db) {
                float *bb = db->data;
#pragma omp simd
                for (int64_t e = e0; e < e1; e++) bb[e] += g[e];
            }
        }
    }
}

static const bk_op OP_LAYER_NORM = {"layer_norm", ln_backward};

static bk_tensor *ln_forward(ln_params *p, bk_tensor *x, bk_tensor *w, bk_tensor *b, float eps) {
    bk_arena *a = bk_arena_current();
    size_t R = (size_t)(p->R ? p->R : 1);
    p->mean = bk__arena_alloc(a, sizeof(float) * R);
    p->invstd = bk__arena_alloc(a, sizeof(float) * R);
    bk_tensor *y = bk__tensor_arena(x->ndim, x->shape, false);
    if (!p->mean || !p->invstd || !y) return NULL;
    int64_t D = p->D;
#pragma omp parallel for schedule(static) if (x->numel >= PARALLEL_MIN)
    for (int64_t r = 0; r < p->R; r++) {
        const float *xr = x->data + r * D;
        sum4 s = {0, 0, 0, 0}, ss = {0, 0, 0, 0};
        sum4_row(&s, xr, D);
        double mu = sum4_total(s) / (double)D;
        sum4_sqdev(&ss, xr, D, mu);
        p->mean[r] = (float)mu;
        p->invstd[r] = (float)(1.0 / sqrt(sum4_total(ss) / (double)D + eps));
        const float m = p->mean[r], is = p->invstd[r];
        float *yr = y->data + r * D;
        const float *wv = w->data, *bv = b->data;
#pragma omp simd
        for (int64_t e = 0; e < D; e++) yr[e] = (xr[e] - m) * is * wv[e] + bv[e];
    }
    bk_tensor *in[3] = {x, w, b};
    return bk_op_record(&OP_LAYER_NORM, y, 3, in, p, sizeof *p);
}

bk_tensor *bk_batch_norm(bk_tensor *x, bk_tensor *running_mean, bk_tensor *running_var,
                         bk_tensor *weight, bk_tensor *bias, bool training, float momentum, float eps) {
    bk_tensor *args[5] = {x, running_mean, running_var, weight, bias}; /* numbered as in the call */
    if (!bk__inputs_ok("batch_norm", 5, args)) return NULL;
    bk_tensor *in[5] = {x, weight, bias, running_mean, running_var};
    char s1[128], s2[128];
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
                         i == 1 ? "weight" : i == 2 ? "bias" : i == 3 ? "running_mean" : "running_var",
                         bk_shape_str(in[i], s2, sizeof s2));
            return NULL;
        }
    bn_params p = {x->shape[0], C, 1, training, NULL, NULL};
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
    bk_tensor *y = bn_forward(&p, x, weight, bias, training ? NULL : running_mean->data,
                              training ? NULL : running_var->data, eps, var);
    if (y && training) { /* running stats: torch uses the unbiased variance here */
        double unbias = (double)n / (double)(n - 1);
        for (int64_t c = 0; c < C; c++) {
            running_mean->data[c] = (1.0f - momentum) * running_mean->data[c] + momentum * p.mean[c];
            running_var->data[c] = (1.0f - momentum) * running_var->data[c] + momentum * (float)(var[c] * unbias);
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
        for (int k = 0; ok && k < n_norm_dims; k++) ok = in[i]->shape[k] == x->shape[x->ndim - n_norm_dims + k];
        if (!ok) {
            bk_set_error("layer_norm: %s %s does not match the normalized shape (the last %d dims) of input %s",
                         i == 1 ? "weight" : "bias", bk_shape_str(in[i], s2, sizeof s2), n_norm_dims,
                         bk_shape_str(x, s1, sizeof s1));
            return NULL;
        }
    }
    ln_params p = {D ? x->numel / D : 0, D, NULL, NULL};
    return ln_forward(&p, x, weight, bias, eps);
}
