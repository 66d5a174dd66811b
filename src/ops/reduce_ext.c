/* reduce_ext.c - reductions and scans along one dimension beyond reduce.c's sum, mean and
 * max: cumsum, logsumexp, norm (p-norms), argmax / argmin, min over a dim and topk.
 *
 * As in reduce.c, x is viewed as (outer, n, inner) around dim, and sums run in double
 * (PyTorch's CPU cumsum does too). argmax, argmin and topk's indices are float tensors
 * holding integers (as bk_gather takes them) and get no gradient; min over a dim and topk's
 * values are gathers at those indices, so their gradient goes to the chosen element.
 */
#include "internal.h"

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>

typedef struct line_params {
    int64_t outer, n, inner;
    float p; /* norm's */
} line_params;

/* The (outer, n, inner) view of x around dim (all elements: (1, numel, 1) when all) and an
 * arena output: x's shape with dim dropped (kept as 1 with keepdim; rank 0 for all), or
 * x's shape itself when same_shape. NULL with an error. */
static bk_tensor *line_out(const char *op, bk_tensor *x, int dim, bool all, bool keepdim, bool same_shape,
                           line_params *p) {
    if (!bk__inputs_ok(op, 1, &x)) return NULL;
    *p = (line_params){1, x->numel, 1, 0};
    int64_t shape[BK_MAX_DIMS];
    int nd = 0;
    if (!all) {
        int d = bk__dim(op, dim, x->ndim);
        if (d < 0) return NULL;
        p->n = x->shape[d];
        for (int i = 0; i < x->ndim; i++) {
            if (i < d) p->outer *= x->shape[i];
            if (i > d) p->inner *= x->shape[i];
            if (i != d || keepdim || same_shape) shape[nd++] = i == d && !same_shape ? 1 : x->shape[i];
        }
    }
    return bk__tensor_arena(nd, shape, false);
}

#define AT(o, j, i) (((o)*p->n + (j)) * p->inner + (i)) /* element j of line (o, i) */

/* ---- cumsum: y[.., j, ..] = sum_{k <= j} x[.., k, ..]; dx[j] = sum_{k >= j} dy[k] ------------- */

static void cumsum_backward(bk_node *n) {
    const line_params *p = bk_node_params(n);
    const float *G = bk_node_grad_output(n)->data;
    bk_tensor *dx = bk_node_grad_input(n, 0);
    if (!dx) return;
    for (int64_t o = 0; o < p->outer; o++)
        for (int64_t i = 0; i < p->inner; i++) {
            double acc = 0;
            for (int64_t j = p->n - 1; j >= 0; j--) {
                acc += G[AT(o, j, i)];
                dx->data[AT(o, j, i)] += (float)acc;
            }
        }
}
static const bk_op OP_CUMSUM = {"cumsum", cumsum_backward};

bk_tensor *bk_cumsum(bk_tensor *x, int dim) {
    line_params lp, *p = &lp;
    bk_tensor *y = line_out("cumsum", x, dim, false, false, true, p);
    if (!y) return NULL;
    for (int64_t o = 0; o < p->outer; o++)
        for (int64_t i = 0; i < p->inner; i++) {
            double acc = 0;
            for (int64_t j = 0; j < p->n; j++) {
                acc += x->data[AT(o, j, i)];
                y->data[AT(o, j, i)] = (float)acc;
            }
        }
    return bk_op_record(&OP_CUMSUM, y, 1, &x, p, sizeof *p);
}

/* ---- logsumexp: y = m + ln sum_j e^(x_j - m), m = max_j x_j (0 where m is infinite, as
 * torch); dx_j = dy e^(x_j - y) ------------------------------------------------------------------ */

static void logsumexp_backward(bk_node *n) {
    const line_params *p = bk_node_params(n);
    const bk_tensor *x = bk_node_input(n, 0);
    const float *Y = bk_node_output(n)->data, *G = bk_node_grad_output(n)->data;
    bk_tensor *dx = bk_node_grad_input(n, 0);
    if (!dx) return;
    for (int64_t o = 0; o < p->outer; o++)
        for (int64_t i = 0; i < p->inner; i++)
            for (int64_t j = 0; j < p->n; j++)
                dx->data[AT(o, j, i)] += G[o * p->inner + i] *
                                         expf(x->data[AT(o, j, i)] - Y[o * p->inner + i]);
}
static const bk_op OP_LOGSUMEXP = {"logsumexp", logsumexp_backward};

bk_tensor *bk_logsumexp(bk_tensor *x, int dim, bool keepdim) {
    line_params lp, *p = &lp;
    bk_tensor *y = line_out("logsumexp", x, dim, false, keepdim, false, p);
    if (!y) return NULL;
    for (int64_t o = 0; o < p->outer; o++)
        for (int64_t i = 0; i < p->inner; i++) {
            float m = -INFINITY;
            for (int64_t j = 0; j < p->n; j++) m = fmaxf(m, x->data[AT(o, j, i)]);
            if (isinf(m)) m = 0.0f;
            double s = 0;
            for (int64_t j = 0; j < p->n; j++) s += exp((double)x->data[AT(o, j, i)] - m);
            y->data[o * p->inner + i] = (float)(log(s) + m);
        }
    return bk_op_record(&OP_LOGSUMEXP, y, 1, &x, p, sizeof *p);
}

/* ---- norm: y = (sum_j |x_j|^p)^(1/p); dx_j = dy x_j |x_j|^(p-2) / y^(p-1) (0 where y = 0,
 * as torch); p = 1: dy sign(x_j); p = 2: dy x_j / y ---------------------------------------------- */

static void norm_backward(bk_node *n) {
    const line_params *p = bk_node_params(n);
    const bk_tensor *x = bk_node_input(n, 0);
    const float *Y = bk_node_output(n)->data, *G = bk_node_grad_output(n)->data;
    bk_tensor *dx = bk_node_grad_input(n, 0);
    if (!dx) return;
    for (int64_t o = 0; o < p->outer; o++)
        for (int64_t i = 0; i < p->inner; i++) {
            float y = Y[o * p->inner + i], g = G[o * p->inner + i];
            for (int64_t j = 0; j < p->n; j++) {
                float v = x->data[AT(o, j, i)], d;
                if (p->p == 1.0f) d = v > 0.0f ? 1.0f : (v < 0.0f ? -1.0f : 0.0f);
                else if (y == 0.0f) d = 0.0f;
                else if (p->p == 2.0f) d = v / y;
                else d = v * powf(fabsf(v), p->p - 2.0f) / powf(y, p->p - 1.0f);
                dx->data[AT(o, j, i)] += g * d;
            }
        }
}
static const bk_op OP_NORM = {"norm", norm_backward};

static bk_tensor *norm(bk_tensor *x, float pn, int dim, bool all, bool keepdim) {
    if (!(pn > 0.0f) || isinf(pn)) {
        bk_set_error("norm: p=%g must be positive and finite", (double)pn);
        return NULL;
    }
    line_params lp, *p = &lp;
    bk_tensor *y = line_out("norm", x, dim, all, keepdim, false, p);
    if (!y) return NULL;
    p->p = pn;
    for (int64_t o = 0; o < p->outer; o++)
        for (int64_t i = 0; i < p->inner; i++) {
            double s = 0;
            for (int64_t j = 0; j < p->n; j++) {
                double v = fabs((double)x->data[AT(o, j, i)]);
                s += pn == 1.0f ? v : pn == 2.0f ? v * v : pow(v, pn);
            }
            y->data[o * p->inner + i] = (float)(pn == 1.0f ? s : pn == 2.0f ? sqrt(s) : pow(s, 1.0 / pn));
        }
    return bk_op_record(&OP_NORM, y, 1, &x, p, sizeof *p);
}

bk_tensor *bk_norm(bk_tensor *x, float p) { return norm(x, p, 0, true, false); }
bk_tensor *bk_norm_dim(bk_tensor *x, float p, int dim, bool keepdim) {
    return norm(x, p, dim, false, keepdim);
}

/* ---- argmax, argmin, min over a dim ------------------------------------------------------------ */

/* x_a comes before x_b in descending (largest) or ascending order; NaN is largest, as in
 * torch (so argmax and argmin both find the first NaN). */
static bool before(float a, float b, bool largest) {
    if (isnan(b)) return false;
    if (isnan(a)) return true;
    return largest ? a > b : a < b;
}

static bk_tensor *arg_best(const char *op, bk_tensor *x, int dim, bool keepdim, bool largest) {
    line_params lp, *p = &lp;
    bk_tensor *y = line_out(op, x, dim, false, keepdim, false, p);
    if (!y) return NULL;
    if (p->n == 0) {
        char s[128];
        bk_set_error("%s: cannot reduce over an empty dimension %d (input %s)", op, dim,
                     bk_shape_str(x, s, sizeof s));
        return NULL;
    }
    for (int64_t o = 0; o < p->outer; o++)
        for (int64_t i = 0; i < p->inner; i++) {
            int64_t best = 0; // the first of equal values
            for (int64_t j = 1; j < p->n; j++)
                if (before(x->data[AT(o, j, i)], x->data[AT(o, best, i)], largest)) best = j;
            y->data[o * p->inner + i] = (float)best;
        }
    return y; // indices: no gradient, nothing recorded
}

bk_tensor *bk_argmax(bk_tensor *x, int dim, bool keepdim) {
    return arg_best("argmax", x, dim, keepdim, true);
}
bk_tensor *bk_argmin(bk_tensor *x, int dim, bool keepdim) {
    return arg_best("argmin", x, dim, keepdim, false);
}

/* values = x gathered at the indices (keepdim shape), then the dim dropped unless keepdim */
static bk_tensor *gather_dropping(bk_tensor *x, int dim, bk_tensor *idx, bool keepdim) {
    bk_tensor *v = bk_gather(x, dim, idx);
    if (!v || keepdim) return v;
    int d = bk__dim("gather", dim, x->ndim), nd = 0;
    int64_t shape[BK_MAX_DIMS];
    for (int i = 0; i < v->ndim; i++)
        if (i != d) shape[nd++] = v->shape[i];
    return bk_reshape(v, nd, shape);
}

bk_tensor *bk_min_dim(bk_tensor *x, int dim, bool keepdim) {
    bk_tensor *idx = arg_best("min", x, dim, true, false);
    return idx ? gather_dropping(x, dim, idx, keepdim) : NULL;
}

/* ---- topk: the k largest (or smallest) along dim, sorted, ties in index order --------------------- */

typedef struct ranked {
    float v;
    int64_t j;
    bool largest;
} ranked;

static int ranked_cmp(const void *pa, const void *pb) {
    const ranked *a = pa, *b = pb;
    if (before(a->v, b->v, a->largest)) return -1;
    if (before(b->v, a->v, a->largest)) return 1;
    return a->j < b->j ? -1 : a->j > b->j;
}

bk_tensor *bk_topk(bk_tensor *x, int64_t k, int dim, bool largest, bk_tensor **indices) {
    if (indices) *indices = NULL;
    line_params lp, *p = &lp;
    if (!line_out("topk", x, dim, false, true, false, p)) return NULL;
    if (k < 0 || k > p->n) {
        char s[128];
        bk_set_error("topk: k=%" PRId64 " is out of range for dimension %d of %s", k, dim,
                     bk_shape_str(x, s, sizeof s));
        return NULL;
    }
    int d = bk__dim("topk", dim, x->ndim);
    int64_t shape[BK_MAX_DIMS];
    for (int i = 0; i < x->ndim; i++) shape[i] = i == d ? k : x->shape[i];
    bk_tensor *idx = bk__tensor_arena(x->ndim, shape, false); // x's shape, k along dim
    ranked *line = bk__malloc(sizeof *line * (size_t)(p->n ? p->n : 1));
    if (!idx || !line) {
        bk__free(line);
        return NULL;
    }
    for (int64_t o = 0; o < p->outer; o++)
        for (int64_t i = 0; i < p->inner; i++) {
            for (int64_t j = 0; j < p->n; j++) line[j] = (ranked){x->data[AT(o, j, i)], j, largest};
            qsort(line, (size_t)p->n, sizeof *line, ranked_cmp);
            for (int64_t j = 0; j < k; j++) idx->data[(o * k + j) * p->inner + i] = (float)line[j].j;
        }
    bk__free(line);
    if (indices) *indices = idx;
    return bk_gather(x, d, idx);
}
