/* reduce.c - sum, mean and max over all elements or along one dimension.
 *
 * A reduction along `dim` views the input as (outer, n, inner) with n = shape[dim]; the
 * output is (outer, inner), plus a size-1 dim when keepdim. Sums accumulate in double so
 * that long reductions do not drift (PyTorch uses pairwise float sums; both are within
 * float32 rounding of the exact value).
 */
#include "internal.h"

#include <math.h>

typedef enum { RED_SUM, RED_MEAN, RED_MAX } red_kind;

typedef struct red_params {
    red_kind kind;
    int dim; /* -1: all elements */
    int64_t outer, n, inner;
} red_params;

static void reduce_backward(bk_node *node);
static const bk_op OP_SUM = {"sum", reduce_backward};
static const bk_op OP_MEAN = {"mean", reduce_backward};
static const bk_op OP_MAX = {"max", reduce_backward};

static const bk_op *red_op(red_kind k) { return k == RED_SUM ? &OP_SUM : k == RED_MEAN ? &OP_MEAN : &OP_MAX; }

static bk_tensor *reduce(red_kind k, bk_tensor *x, int dim, bool all, bool keepdim) {
    const bk_op *op = red_op(k);
    if (!bk__inputs_ok(op->name, 1, &x)) return NULL;
    red_params p = {k, -1, 1, x->numel, 1};
    int64_t shape[BK_MAX_DIMS];
    int ndim = 0;
    if (!all) {
        int d = bk__dim(op->name, dim, x->ndim);
        if (d < 0) return NULL;
        p.dim = d;
        p.n = x->shape[d];
        for (int i = 0; i < d; i++) p.outer *= x->shape[i];
        for (int i = d + 1; i < x->ndim; i++) p.inner *= x->shape[i];
        for (int i = 0; i < x->ndim; i++) {
            if (i == d && !keepdim) continue;
            shape[ndim++] = i == d ? 1 : x->shape[i];
        }
    }
    if (k == RED_MAX && p.n == 0) {
        char s[128];
        bk_set_error("max: cannot reduce over an empty dimension (input %s)", bk_shape_str(x, s, sizeof s));
        return NULL;
    }
    bk_tensor *y = bk__tensor_arena(ndim, shape, false);
    if (!y) return NULL;
    const float *X = x->data;
    for (int64_t o = 0; o < p.outer; o++) {
        for (int64_t i = 0; i < p.inner; i++) {
            const float *src = X + o * p.n * p.inner + i;
            float r;
            if (k == RED_MAX) {
                float m = src[0];
                for (int64_t j = 1; j < p.n; j++)
                    if (src[j * p.inner] > m || isnan(src[j * p.inner])) m = src[j * p.inner];
                r = m;
            } else {
                double acc = 0;
                for (int64_t j = 0; j < p.n; j++) acc += src[j * p.inner];
                r = (float)(k == RED_MEAN ? acc / (double)p.n : acc);
            }
            y->data[o * p.inner + i] = r;
        }
    }
    return bk_op_record(op, y, 1, &x, &p, sizeof p);
}

/* d sum = dy broadcast; d mean = dy / n; d max = dy to the maximum (ties: the first one
 * along a dim; shared evenly for the all-elements max, as torch does). */
static void reduce_backward(bk_node *node) {
    const red_params *p = bk_node_params(node);
    const bk_tensor *x = bk_node_input(node, 0), *y = bk_node_output(node);
    const bk_tensor *dy = bk_node_grad_output(node);
    bk_tensor *dx = bk_node_grad_input(node, 0);
    if (!dx) return;
    for (int64_t o = 0; o < p->outer; o++) {
        for (int64_t i = 0; i < p->inner; i++) {
            int64_t base = o * p->n * p->inner + i;
            float g = dy->data[o * p->inner + i];
            if (p->kind == RED_SUM || p->kind == RED_MEAN) {
                if (p->kind == RED_MEAN) g /= (float)p->n;
                for (int64_t j = 0; j < p->n; j++) dx->data[base + j * p->inner] += g;
            } else {
                float m = y->data[o * p->inner + i];
                if (p->dim >= 0) {
                    for (int64_t j = 0; j < p->n; j++)
                        if (x->data[base + j * p->inner] == m ||
                            (isnan(m) && isnan(x->data[base + j * p->inner]))) {
                            dx->data[base + j * p->inner] += g;
                            break;
                        }
                } else {
                    int64_t ties = 0;
                    for (int64_t j = 0; j < p->n; j++) ties += x->data[base + j * p->inner] == m;
                    for (int64_t j = 0; j < p->n && ties; j++)
                        if (x->data[base + j * p->inner] == m)
                            dx->data[base + j * p->inner] += g / (float)ties;
                }
            }
        }
    }
}

bk_tensor *bk_sum(bk_tensor *a) { return reduce(RED_SUM, a, 0, true, false); }
bk_tensor *bk_mean(bk_tensor *a) { return reduce(RED_MEAN, a, 0, true, false); }
bk_tensor *bk_max(bk_tensor *a) { return reduce(RED_MAX, a, 0, true, false); }
bk_tensor *bk_sum_dim(bk_tensor *a, int dim, bool keepdim) { return reduce(RED_SUM, a, dim, false, keepdim); }
bk_tensor *bk_mean_dim(bk_tensor *a, int dim, bool keepdim) {
    return reduce(RED_MEAN, a, dim, false, keepdim);
}
bk_tensor *bk_max_dim(bk_tensor *a, int dim, bool keepdim) { return reduce(RED_MAX, a, dim, false, keepdim); }
