/* index.c - ops that pick elements by index or by mask: gather, scatter_add, index_select,
 * where, masked_fill; and stack, split and chunk, compositions of reshape, concat and slice.
 *
 * Indices are float tensors holding integers, as bk_embedding's ids and the losses'
 * targets: exact up to 2^24, never given a gradient. An index that is not an integer in
 * range is an error naming the op, the index, its element and both shapes.
 *
 * Backwards add in the order of the forward's loop, one thread, so that repeated indices
 * (gather's and index_select's, scatter_add's) sum the same way on every run.
 */
#include "internal.h"

#include <inttypes.h>
#include <math.h>

/* The offset in t of coordinates coord (t's rank), with coordinate `dim` replaced by at. */
static int64_t offset_at(const bk_tensor *t, const int64_t *coord, int dim, int64_t at) {
    int64_t off = 0;
    for (int d = 0; d < t->ndim; d++) off += (d == dim ? at : coord[d]) * t->stride[d];
    return off;
}

/* Row-major coordinates of flat element i of a tensor of shape (nd, shape). */
static void unravel(int64_t i, int nd, const int64_t *shape, int64_t *coord) {
    for (int d = nd - 1; d >= 0; d--) {
        coord[d] = shape[d] ? i % shape[d] : 0;
        i = shape[d] ? i / shape[d] : 0;
    }
}

/* Checks that every element of index is an integer in [0, n); the message names op,
 * the element and both shapes. */
static bool indices_ok(const char *op, const bk_tensor *index, int64_t n, int dim, const bk_tensor *x) {
    for (int64_t i = 0; i < index->numel; i++) {
        float v = index->data[i];
        if (!(v >= 0.0f && v < (float)n) || v != floorf(v)) {
            char s1[128], s2[128];
            bk_set_error("%s: index %g (element %" PRId64
                         " of index %s) is out of range for dimension %d "
                         "(size %" PRId64 ") of input %s",
                         op, (double)v, i, bk_shape_str(index, s1, sizeof s1), dim, n,
                         bk_shape_str(x, s2, sizeof s2));
            return false;
        }
    }
    return true;
}

/* ---- gather and scatter_add ------------------------------------------------------------------
 * gather:      y[c] = x[c with c_dim = index[c]]              y, index (same rank as x)
 * scatter_add: y = x; y[c with c_dim = index[c]] += src[c]    y like x; index, src same rank
 * Each is the other's backward: dx of gather scatters dy back, dsrc of scatter_add gathers. */

typedef struct index_params {
    int dim;
} index_params;

/* index fits inside `bound` in every dimension but dim (all of them when dim < 0). */
static bool index_fits(const char *op, const bk_tensor *index, const bk_tensor *bound, const char *what,
                       int dim) {
    bool ok = index->ndim == bound->ndim;
    for (int d = 0; ok && d < index->ndim; d++) ok = d == dim || index->shape[d] <= bound->shape[d];
    if (!ok) {
        char s1[128], s2[128];
        bk_set_error("%s: index %s must have the rank of %s %s and be no larger in any dimension%s", op,
                     bk_shape_str(index, s1, sizeof s1), what, bk_shape_str(bound, s2, sizeof s2),
                     dim >= 0 ? " but dim" : "");
    }
    return ok;
}

static void gather_backward(bk_node *n) {
    const index_params *p = bk_node_params(n);
    const bk_tensor *x = bk_node_input(n, 0), *index = bk_node_input(n, 1);
    const float *G = bk_node_grad_output(n)->data;
    bk_tensor *dx = bk_node_grad_input(n, 0);
    if (!dx) return;
    int64_t coord[BK_MAX_DIMS];
    for (int64_t i = 0; i < index->numel; i++) {
        unravel(i, index->ndim, index->shape, coord);
        dx->data[offset_at(x, coord, p->dim, (int64_t)index->data[i])] += G[i];
    }
}
static const bk_op OP_GATHER = {"gather", gather_backward};

bk_tensor *bk_gather(bk_tensor *x, int dim, bk_tensor *index) {
    bk_tensor *in[2] = {x, index};
    if (!bk__inputs_ok("gather", 2, in)) return NULL;
    int d = bk__dim("gather", dim, x->ndim);
    if (d < 0 || !index_fits("gather", index, x, "input", d)) return NULL;
    if (!indices_ok("gather", index, x->shape[d], d, x)) return NULL;
    bk_tensor *y = bk__tensor_arena(index->ndim, index->shape, false); // index's shape
    if (!y) return NULL;
    int64_t coord[BK_MAX_DIMS];
    for (int64_t i = 0; i < index->numel; i++) {
        unravel(i, index->ndim, index->shape, coord);
        y->data[i] = x->data[offset_at(x, coord, d, (int64_t)index->data[i])];
    }
    index_params p = {d};
    return bk_op_record(&OP_GATHER, y, 2, in, &p, sizeof p);
}

static void scatter_add_backward(bk_node *n) {
    const index_params *p = bk_node_params(n);
    const bk_tensor *x = bk_node_input(n, 0), *index = bk_node_input(n, 1), *src = bk_node_input(n, 2);
    const float *G = bk_node_grad_output(n)->data;
    bk_tensor *dx = bk_node_grad_input(n, 0), *dsrc = bk_node_grad_input(n, 2);
    if (dx)
        for (int64_t i = 0; i < x->numel; i++) dx->data[i] += G[i];
    if (!dsrc) return;
    int64_t coord[BK_MAX_DIMS];
    for (int64_t i = 0; i < index->numel; i++) {
        unravel(i, index->ndim, index->shape, coord);
        dsrc->data[offset_at(src, coord, -1, 0)] += G[offset_at(x, coord, p->dim, (int64_t)index->data[i])];
    }
}
static const bk_op OP_SCATTER_ADD = {"scatter_add", scatter_add_backward};

bk_tensor *bk_scatter_add(bk_tensor *x, int dim, bk_tensor *index, bk_tensor *src) {
    bk_tensor *in[3] = {x, index, src};
    if (!bk__inputs_ok("scatter_add", 3, in)) return NULL;
    int d = bk__dim("scatter_add", dim, x->ndim);
    if (d < 0 || !index_fits("scatter_add", index, x, "input", d) ||
        !index_fits("scatter_add", index, src, "src", -1))
        return NULL;
    if (!indices_ok("scatter_add", index, x->shape[d], d, x)) return NULL;
    bk_tensor *y = bk__tensor_arena(x->ndim, x->shape, false); // x's shape
    if (!y) return NULL;
    memcpy(y->data, x->data, sizeof(float) * (size_t)x->numel);
    int64_t coord[BK_MAX_DIMS];
    for (int64_t i = 0; i < index->numel; i++) {
        unravel(i, index->ndim, index->shape, coord);
        y->data[offset_at(x, coord, d, (int64_t)index->data[i])] += src->data[offset_at(src, coord, -1, 0)];
    }
    index_params p = {d};
    return bk_op_record(&OP_SCATTER_ADD, y, 3, in, &p, sizeof p);
}

/* ---- index_select: y[o, j, i] = x[o, index[j], i] around dim (x as (outer, n, inner)) --------- */

typedef struct select_params {
    int64_t outer, n, inner, len;
} select_params;

static void index_select_backward(bk_node *node) {
    const select_params *p = bk_node_params(node);
    const float *idx = bk_node_input(node, 1)->data, *G = bk_node_grad_output(node)->data;
    bk_tensor *dx = bk_node_grad_input(node, 0);
    if (!dx) return;
    for (int64_t o = 0; o < p->outer; o++)
        for (int64_t j = 0; j < p->len; j++) {
            float *d = dx->data + (o * p->n + (int64_t)idx[j]) * p->inner;
            const float *g = G + (o * p->len + j) * p->inner;
            for (int64_t i = 0; i < p->inner; i++) d[i] += g[i];
        }
}
static const bk_op OP_INDEX_SELECT = {"index_select", index_select_backward};

bk_tensor *bk_index_select(bk_tensor *x, int dim, bk_tensor *index) {
    bk_tensor *in[2] = {x, index};
    if (!bk__inputs_ok("index_select", 2, in)) return NULL;
    int d = bk__dim("index_select", dim, x->ndim);
    if (d < 0) return NULL;
    if (index->ndim > 1) {
        char s1[128], s2[128];
        bk_set_error("index_select: index %s must be 1-d (input %s)", bk_shape_str(index, s1, sizeof s1),
                     bk_shape_str(x, s2, sizeof s2));
        return NULL;
    }
    if (!indices_ok("index_select", index, x->shape[d], d, x)) return NULL;
    select_params p = {1, x->shape[d], 1, index->numel};
    int64_t shape[BK_MAX_DIMS];
    for (int i = 0; i < x->ndim; i++) {
        shape[i] = i == d ? p.len : x->shape[i];
        if (i < d) p.outer *= x->shape[i];
        if (i > d) p.inner *= x->shape[i];
    }
    bk_tensor *y = bk__tensor_arena(x->ndim, shape, false); // x's shape, len along dim
    if (!y) return NULL;
    for (int64_t o = 0; o < p.outer; o++)
        for (int64_t j = 0; j < p.len; j++)
            memcpy(y->data + (o * p.len + j) * p.inner,
                   x->data + (o * p.n + (int64_t)index->data[j]) * p.inner, sizeof(float) * (size_t)p.inner);
    return bk_op_record(&OP_INDEX_SELECT, y, 2, in, &p, sizeof p);
}

/* ---- where and masked_fill --------------------------------------------------------------------
 * where:       y = cond != 0 ? a : b      cond, a, b broadcast together (cond gets no gradient)
 * masked_fill: y = mask != 0 ? value : x  mask broadcasts to x's shape
 * One op: masked_fill is where with a constant in place of a. */

typedef struct where_params {
    int ndim, k; /* output rank; number of inputs (3: where, 2: masked_fill) */
    float value; /* masked_fill's */
    int64_t shape[BK_MAX_DIMS];
    int64_t st[3][BK_MAX_DIMS]; /* each input's strides in the output's frame (0: broadcast) */
} where_params;

/* Broadcasts the k inputs together (PyTorch's rule) into p; false with an error naming them. */
static bool bcast_k(const char *op, int k, bk_tensor *const *ts, where_params *p) {
    int nd = 0;
    for (int j = 0; j < k; j++) nd = ts[j]->ndim > nd ? ts[j]->ndim : nd;
    p->ndim = nd;
    p->k = k;
    for (int i = 0; i < nd; i++) {
        int64_t size = 1;
        for (int j = 0; j < k; j++) {
            int ij = i - (nd - ts[j]->ndim);
            int64_t s = ij >= 0 ? ts[j]->shape[ij] : 1;
            if (s != 1 && size != 1 && s != size) {
                char s0[128], s1[128], s2[128] = "";
                if (k > 2) bk_shape_str(ts[2], s2, sizeof s2);
                bk_set_error("%s: shapes %s, %s%s%s cannot be broadcast together (dimension %d)", op,
                             bk_shape_str(ts[0], s0, sizeof s0), bk_shape_str(ts[1], s1, sizeof s1),
                             k > 2 ? " and " : "", s2, i);
                return false;
            }
            if (s != 1) size = s;
        }
        p->shape[i] = size;
        for (int j = 0; j < k; j++) {
            int ij = i - (nd - ts[j]->ndim);
            p->st[j][i] = ij >= 0 && ts[j]->shape[ij] != 1 ? ts[j]->stride[ij] : 0;
        }
    }
    return true;
}

/* The offsets in each input of output element i. */
static void where_offsets(const where_params *p, int64_t i, int64_t *off) {
    int64_t coord[BK_MAX_DIMS];
    unravel(i, p->ndim, p->shape, coord);
    for (int j = 0; j < p->k; j++) {
        off[j] = 0;
        for (int d = 0; d < p->ndim; d++) off[j] += coord[d] * p->st[j][d];
    }
}

/* inputs: where (cond, a, b); masked_fill (mask, x), x in b's place */
static void where_backward(bk_node *n) {
    const where_params *p = bk_node_params(n);
    const float *C = bk_node_input(n, 0)->data, *G = bk_node_grad_output(n)->data;
    bk_tensor *da = p->k == 3 ? bk_node_grad_input(n, 1) : NULL, *db = bk_node_grad_input(n, p->k - 1);
    int64_t numel = bk_node_output(n)->numel, off[3];
    for (int64_t i = 0; i < numel; i++) {
        where_offsets(p, i, off);
        bool c = C[off[0]] != 0.0f;
        if (da && c) da->data[off[1]] += G[i];
        if (db && !c) db->data[off[p->k - 1]] += G[i];
    }
}
static const bk_op OP_WHERE = {"where", where_backward};
static const bk_op OP_MASKED_FILL = {"masked_fill", where_backward};

static bk_tensor *where_k(const bk_op *op, int k, bk_tensor *const *in, float value) {
    if (!bk__inputs_ok(op->name, k, in)) return NULL;
    where_params p = {0};
    p.value = value;
    if (!bcast_k(op->name, k, in, &p)) return NULL;
    const bk_tensor *x = in[k - 1];
    bool same = p.ndim == x->ndim;
    for (int i = 0; same && i < p.ndim; i++) same = p.shape[i] == x->shape[i];
    if (k == 2 && !same) {
        char s1[128], s2[128];
        bk_set_error("masked_fill: mask %s does not broadcast to input %s",
                     bk_shape_str(in[0], s1, sizeof s1), bk_shape_str(x, s2, sizeof s2));
        return NULL;
    }
    bk_tensor *y = bk__tensor_arena(p.ndim, p.shape, false); // the broadcast shape
    if (!y) return NULL;
    int64_t off[3];
    for (int64_t i = 0; i < y->numel; i++) {
        where_offsets(&p, i, off);
        bool c = in[0]->data[off[0]] != 0.0f;
        y->data[i] = c ? (k == 3 ? in[1]->data[off[1]] : value) : x->data[off[k - 1]];
    }
    return bk_op_record(op, y, k, in, &p, sizeof p);
}

bk_tensor *bk_where(bk_tensor *cond, bk_tensor *a, bk_tensor *b) {
    bk_tensor *in[3] = {cond, a, b};
    return where_k(&OP_WHERE, 3, in, 0.0f);
}

bk_tensor *bk_masked_fill(bk_tensor *x, bk_tensor *mask, float value) {
    bk_tensor *in[2] = {mask, x};
    return where_k(&OP_MASKED_FILL, 2, in, value);
}

/* ---- stack, split, chunk: compositions ---------------------------------------------------------- */

bk_tensor *bk_stack(int n, bk_tensor *const *ts, int dim) {
    if (n <= 0 || !ts) {
        bk_set_error("stack: expected a non-empty list of tensors");
        return NULL;
    }
    if (!bk__inputs_ok("stack", n, ts)) return NULL;
    const bk_tensor *a = ts[0];
    if (a->ndim >= BK_MAX_DIMS) {
        char s[128];
        bk_set_error("stack: tensors %s have too many dims (the result adds one; at most %d)",
                     bk_shape_str(a, s, sizeof s), BK_MAX_DIMS);
        return NULL;
    }
    int d = bk__dim("stack", dim, a->ndim + 1);
    if (d < 0) return NULL;
    for (int k = 1; k < n; k++)
        if (!bk_same_shape(ts[k], a)) {
            char s1[128], s2[128];
            bk_set_error("stack: tensor %d of shape %s differs from tensor 0 of shape %s", k,
                         bk_shape_str(ts[k], s1, sizeof s1), bk_shape_str(a, s2, sizeof s2));
            return NULL;
        }
    bk_tensor **views = bk__malloc(sizeof *views * (size_t)n);
    if (!views) return NULL;
    int64_t shape[BK_MAX_DIMS]; // a's shape with a 1 inserted at d
    for (int i = 0, j = 0; i <= a->ndim; i++) shape[i] = i == d ? 1 : a->shape[j++];
    bk_tensor *y = NULL;
    int k = 0;
    for (; k < n; k++)
        if (!(views[k] = bk_reshape(ts[k], a->ndim + 1, shape))) break;
    if (k == n) y = bk_concat(n, views, d);
    bk__free(views);
    return y;
}

int bk_split(bk_tensor *x, int64_t split_size, int dim, bk_tensor **out, int max_out) {
    if (!bk__inputs_ok("split", 1, &x)) return -1;
    int d = bk__dim("split", dim, x->ndim);
    if (d < 0) return -1;
    int64_t n = x->shape[d];
    if (split_size <= 0 || (max_out > 0 && !out)) {
        char s[128];
        bk_set_error("split: split_size=%" PRId64 " must be positive and out given (input %s)", split_size,
                     bk_shape_str(x, s, sizeof s));
        return -1;
    }
    int64_t count = n == 0 ? 1 : (n + split_size - 1) / split_size;
    if (count > max_out) {
        char s[128];
        bk_set_error("split: %" PRId64 " pieces of %" PRId64
                     " along dimension %d of %s do not fit max_out=%d",
                     count, split_size, dim, bk_shape_str(x, s, sizeof s), max_out);
        return -1;
    }
    for (int64_t k = 0; k < count; k++) {
        int64_t start = k * split_size, end = start + split_size < n ? start + split_size : n;
        if (!(out[k] = bk_slice(x, d, start, end))) return -1;
    }
    return (int)count;
}

int bk_chunk(bk_tensor *x, int chunks, int dim, bk_tensor **out, int max_out) {
    if (!bk__inputs_ok("chunk", 1, &x)) return -1;
    int d = bk__dim("chunk", dim, x->ndim);
    if (d < 0) return -1;
    if (chunks <= 0) {
        char s[128];
        bk_set_error("chunk: chunks=%d must be positive (input %s)", chunks, bk_shape_str(x, s, sizeof s));
        return -1;
    }
    int64_t n = x->shape[d], size = (n + chunks - 1) / chunks; // torch's: ceil(n / chunks) each
    return bk_split(x, size > 0 ? size : 1, d, out, max_out);
}
