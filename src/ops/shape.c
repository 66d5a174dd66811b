/* shape.c - reshape, flatten, transpose, permute, concat, slice, select, clone.
 *
 * reshape/flatten return views that share the input's storage (all storage is
 * contiguous, so any reshape is a view); the others copy. Every backward scatters the
 * output gradient back into the input's layout and adds it.
 */
#include "internal.h"

#include <inttypes.h>

/* ---- reshape ------------------------------------------------------------------------------ */

/* The gradient has the same flat layout: dx += dy. */
static void reshape_backward(bk_node *n) {
    bk_tensor *dx = bk_node_grad_input(n, 0);
    const bk_tensor *dy = bk_node_grad_output(n);
    if (dx)
        for (int64_t i = 0; i < dx->numel; i++) dx->data[i] += dy->data[i];
}
static const bk_op OP_RESHAPE = {"reshape", reshape_backward};

bk_tensor *bk_reshape(bk_tensor *a, int ndim, const int64_t *shape) {
    if (!bk__inputs_ok("reshape", 1, &a)) return NULL;
    if (ndim < 0 || ndim > BK_MAX_DIMS || (ndim > 0 && !shape)) {
        bk_set_error("reshape: invalid target rank %d", ndim);
        return NULL;
    }
    int64_t s[BK_MAX_DIMS], known = 1;
    int infer = -1;
    char s1[128], s2[128];
    for (int i = 0; i < ndim; i++) {
        s[i] = shape[i];
        if (s[i] == -1) {
            if (infer >= 0) {
                bk_set_error("reshape: only one dimension can be inferred (-1) in %s",
                             bk__shape_fmt(ndim, shape, s2, sizeof s2));
                return NULL;
            }
            infer = i;
        } else if (s[i] < 0 || !bk__mul_ok(known, s[i], &known)) {
            bk_set_error("reshape: invalid shape %s", bk__shape_fmt(ndim, shape, s2, sizeof s2));
            return NULL;
        }
    }
    if (infer >= 0) {
        if (known == 0 || a->numel % known != 0) {
            bk_set_error("reshape: shape %s is invalid for input %s of %" PRId64 " elements",
                         bk__shape_fmt(ndim, shape, s2, sizeof s2), bk_shape_str(a, s1, sizeof s1), a->numel);
            return NULL;
        }
        s[infer] = a->numel / known;
        known = a->numel;
    }
    if (known != a->numel) {
        bk_set_error("reshape: shape %s is invalid for input %s of %" PRId64 " elements",
                     bk__shape_fmt(ndim, shape, s2, sizeof s2), bk_shape_str(a, s1, sizeof s1), a->numel);
        return NULL;
    }
    bk_tensor *y = bk__tensor_view(a, ndim, s);
    if (!y) return NULL;
    return bk_op_record(&OP_RESHAPE, y, 1, &a, NULL, 0);
}

bk_tensor *bk_flatten(bk_tensor *a, int start_dim, int end_dim) {
    if (!bk__inputs_ok("flatten", 1, &a)) return NULL;
    if (a->ndim == 0) return bk_reshape(a, BK_SHAPE(1));
    int s = bk__dim("flatten", start_dim, a->ndim);
    if (s < 0) return NULL;
    int e = bk__dim("flatten", end_dim, a->ndim);
    if (e < 0) return NULL;
    if (s > e) {
        bk_set_error("flatten: start_dim %d comes after end_dim %d", start_dim, end_dim);
        return NULL;
    }
    int64_t shape[BK_MAX_DIMS];
    int nd = 0;
    for (int i = 0; i < s; i++) shape[nd++] = a->shape[i];
    int64_t m = 1;
    for (int i = s; i <= e; i++) m *= a->shape[i];
    shape[nd++] = m;
    for (int i = e + 1; i < a->ndim; i++) shape[nd++] = a->shape[i];
    return bk_reshape(a, nd, shape);
}

/* ---- permute / transpose --------------------------------------------------------------------- */

typedef struct perm_params {
    int ndim;
    int dims[BK_MAX_DIMS];
} perm_params;

/* y[i_0..i_n] = x[j] where j_{dims[k]} = i_k. Iterates over y in order. add: y += x. */
static void permute_copy(const bk_tensor *x, const int *dims, const int64_t *yshape, float *Y, const float *X,
                         bool scatter_add) {
    int nd = x->ndim;
    int64_t st[BK_MAX_DIMS], idx[BK_MAX_DIMS] = {0}, total = 1;
    for (int k = 0; k < nd; k++) {
        st[k] = x->stride[dims[k]];
        total *= yshape[k];
    }
    int64_t off = 0;
    for (int64_t i = 0; i < total; i++) {
        if (scatter_add) Y[off] += X[i]; /* here Y is dx (x's layout) and X is dy (y's layout) */
        else Y[i] = X[off];
        for (int k = nd - 1; k >= 0; k--) {
            idx[k]++;
            off += st[k];
            if (idx[k] < yshape[k]) break;
            off -= st[k] * yshape[k];
            idx[k] = 0;
        }
    }
}

static void permute_backward(bk_node *n) {
    const perm_params *p = bk_node_params(n);
    const bk_tensor *x = bk_node_input(n, 0), *y = bk_node_output(n);
    bk_tensor *dx = bk_node_grad_input(n, 0);
    if (dx) permute_copy(x, p->dims, y->shape, dx->data, bk_node_grad_output(n)->data, true);
}
static const bk_op OP_PERMUTE = {"permute", permute_backward};

bk_tensor *bk_permute(bk_tensor *a, const int *dims) {
    if (!bk__inputs_ok("permute", 1, &a)) return NULL;
    if (!dims && a->ndim > 0) {
        bk_set_error("permute: dims is NULL");
        return NULL;
    }
    perm_params p = {a->ndim, {0}};
    bool seen[BK_MAX_DIMS] = {false};
    int64_t shape[BK_MAX_DIMS];
    for (int k = 0; k < a->ndim; k++) {
        int d = bk__dim("permute", dims[k], a->ndim);
        if (d < 0) return NULL;
        if (seen[d]) {
            bk_set_error("permute: dimension %d repeats in dims", dims[k]);
            return NULL;
        }
        seen[d] = true;
        p.dims[k] = d;
        shape[k] = a->shape[d];
    }
    bk_tensor *y = bk__tensor_arena(a->ndim, shape, false);
    if (!y) return NULL;
    permute_copy(a, p.dims, shape, y->data, a->data, false);
    return bk_op_record(&OP_PERMUTE, y, 1, &a, &p, sizeof p);
}

bk_tensor *bk_transpose(bk_tensor *a, int dim0, int dim1) {
    if (!bk__inputs_ok("transpose", 1, &a)) return NULL;
    int d0 = bk__dim("transpose", dim0, a->ndim);
    if (d0 < 0) return NULL;
    int d1 = bk__dim("transpose", dim1, a->ndim);
    if (d1 < 0) return NULL;
    int dims[BK_MAX_DIMS];
    for (int i = 0; i < a->ndim; i++) dims[i] = i;
    dims[d0] = d1;
    dims[d1] = d0;
    return bk_permute(a, dims);
}

/* ---- slice (narrow) and concat ----------------------------------------------------------------
 * Both move blocks of `inner` contiguous elements: a tensor is (outer, n, inner) around dim. */

/* An arena tensor of a's shape but len along dimension d, and the sizes around d: outer,
 * the product of a's dimensions before it, inner, after it. NULL when out of memory. */
static bk_tensor *resized_along(const bk_tensor *a, int d, int64_t len, int64_t *outer, int64_t *inner) {
    *outer = *inner = 1;
    for (int i = 0; i < d; i++) *outer *= a->shape[i];
    for (int i = d + 1; i < a->ndim; i++) *inner *= a->shape[i];
    int64_t shape[BK_MAX_DIMS];
    for (int i = 0; i < a->ndim; i++) shape[i] = a->shape[i];
    shape[d] = len;
    return bk__tensor_arena(a->ndim, shape, false);
}

typedef struct slice_params {
    int dim;
    int64_t start, len, n, outer, inner;
} slice_params;

static void slice_backward(bk_node *n) {
    const slice_params *p = bk_node_params(n);
    bk_tensor *dx = bk_node_grad_input(n, 0);
    const float *G = bk_node_grad_output(n)->data;
    if (!dx) return;
    for (int64_t o = 0; o < p->outer; o++)
        for (int64_t i = 0; i < p->len * p->inner; i++)
            dx->data[(o * p->n + p->start) * p->inner + i] += G[o * p->len * p->inner + i];
}
static const bk_op OP_SLICE = {"slice", slice_backward};

bk_tensor *bk_slice(bk_tensor *a, int dim, int64_t start, int64_t end) {
    if (!bk__inputs_ok("slice", 1, &a)) return NULL;
    int d = bk__dim("slice", dim, a->ndim);
    if (d < 0) return NULL;
    int64_t n = a->shape[d];
    if (start < 0 || end < start || end > n) {
        char s[128];
        bk_set_error("slice: range [%" PRId64 ", %" PRId64 ") is outside dimension %d of %s", start, end, dim,
                     bk_shape_str(a, s, sizeof s));
        return NULL;
    }
    slice_params p = {d, start, end - start, n, 1, 1};
    bk_tensor *y = resized_along(a, d, p.len, &p.outer, &p.inner);
    if (!y) return NULL;
    for (int64_t o = 0; o < p.outer; o++)
        memcpy(y->data + o * p.len * p.inner, a->data + (o * n + start) * p.inner,
               sizeof(float) * (size_t)(p.len * p.inner));
    return bk_op_record(&OP_SLICE, y, 1, &a, &p, sizeof p);
}

bk_tensor *bk_select(bk_tensor *a, int dim, int64_t index) {
    if (!bk__inputs_ok("select", 1, &a)) return NULL;
    int d = bk__dim("select", dim, a->ndim);
    if (d < 0) return NULL;
    if (index < 0) index += a->shape[d];
    if (index < 0 || index >= a->shape[d]) {
        char s[128];
        bk_set_error("select: index %" PRId64 " is out of range for dimension %d of %s", index, dim,
                     bk_shape_str(a, s, sizeof s));
        return NULL;
    }
    bk_tensor *y = bk_slice(a, d, index, index + 1);
    if (!y) return NULL;
    int64_t shape[BK_MAX_DIMS];
    int nd = 0;
    for (int i = 0; i < a->ndim; i++)
        if (i != d) shape[nd++] = a->shape[i];
    return bk_reshape(y, nd, shape);
}

typedef struct concat_params {
    int dim;
    int64_t outer, inner, total; /* total = output size along dim */
} concat_params;

static void concat_backward(bk_node *n) {
    const concat_params *p = bk_node_params(n);
    const float *G = bk_node_grad_output(n)->data;
    int64_t at = 0;
    for (int k = 0; k < bk_node_num_inputs(n); k++) {
        const bk_tensor *x = bk_node_input(n, k);
        int64_t len = x->shape[p->dim];
        bk_tensor *dx = bk_node_grad_input(n, k);
        if (dx)
            for (int64_t o = 0; o < p->outer; o++)
                for (int64_t i = 0; i < len * p->inner; i++)
                    dx->data[o * len * p->inner + i] += G[(o * p->total + at) * p->inner + i];
        at += len;
    }
}
static const bk_op OP_CONCAT = {"concat", concat_backward};

bk_tensor *bk_concat(int n, bk_tensor *const *ts, int dim) {
    if (n <= 0 || !ts) {
        bk_set_error("concat: expected a non-empty list of tensors");
        return NULL;
    }
    if (!bk__inputs_ok("concat", n, ts)) return NULL;
    const bk_tensor *a = ts[0];
    int d = bk__dim("concat", dim, a->ndim);
    if (d < 0) return NULL;
    concat_params p = {d, 1, 1, 0};
    for (int k = 0; k < n; k++) {
        const bk_tensor *t = ts[k];
        bool ok = t->ndim == a->ndim;
        for (int i = 0; ok && i < a->ndim; i++)
            if (i != d && t->shape[i] != a->shape[i]) ok = false;
        if (!ok) {
            char s1[128], s2[128];
            bk_set_error(
                "concat: tensor %d of shape %s does not match tensor 0 of shape %s "
                "outside dimension %d",
                k, bk_shape_str(t, s1, sizeof s1), bk_shape_str(a, s2, sizeof s2), dim);
            return NULL;
        }
        p.total += t->shape[d];
    }
    bk_tensor *y = resized_along(a, d, p.total, &p.outer, &p.inner);
    if (!y) return NULL;
    int64_t at = 0;
    for (int k = 0; k < n; k++) {
        int64_t len = ts[k]->shape[d];
        for (int64_t o = 0; o < p.outer; o++)
            memcpy(y->data + (o * p.total + at) * p.inner, ts[k]->data + o * len * p.inner,
                   sizeof(float) * (size_t)(len * p.inner));
        at += len;
    }
    return bk_op_record(&OP_CONCAT, y, n, ts, &p, sizeof p);
}

/* ---- clone ------------------------------------------------------------------------------------ */

static const bk_op OP_CLONE = {"clone", reshape_backward}; /* same flat layout: dx += dy */

bk_tensor *bk_clone(bk_tensor *a) {
    if (!bk__inputs_ok("clone", 1, &a)) return NULL;
    bk_tensor *y = bk__tensor_arena(a->ndim, a->shape, false);
    if (!y) return NULL;
    memcpy(y->data, a->data, sizeof(float) * (size_t)a->numel);
    return bk_op_record(&OP_CLONE, y, 1, &a, NULL, 0);
}
