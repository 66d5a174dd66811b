/* matmul.c - matrix products: torch.matmul (batched, broadcasting) and F.linear.
 *
 * Shapes: a (..., M, K) @ b (..., K, N) -> (..., M, N). Batch dims broadcast; a 1-d
 * operand is promoted (a: (K) -> (1, K), b: (K) -> (K, 1)) and the added dim removed
 * from the result, by composing reshape views so that autograd needs nothing extra.
 */
#include "internal.h"

#include <inttypes.h>

typedef struct mm_params {
    int bnd;                                  /* number of batch dims of the output */
    int64_t bshape[BK_MAX_DIMS];              /* output batch shape */
    int64_t sa[BK_MAX_DIMS], sb[BK_MAX_DIMS]; /* batch strides of a and b (0: broadcast) */
    int64_t M, N, K;
} mm_params;

/* Calls body(batch index, a offset, b offset) for every output batch. */
static void mm_batches(const mm_params *p, void (*body)(const mm_params *, int64_t, int64_t, int64_t, void *),
                       void *ud) {
    int64_t nb = 1;
    for (int i = 0; i < p->bnd; i++) nb *= p->bshape[i];
    for (int64_t b = 0; b < nb; b++) {
        int64_t rem = b, oa = 0, ob = 0;
        for (int i = p->bnd - 1; i >= 0; i--) {
            int64_t idx = rem % p->bshape[i];
            rem /= p->bshape[i];
            oa += idx * p->sa[i];
            ob += idx * p->sb[i];
        }
        body(p, b, oa, ob, ud);
    }
}

typedef struct mm_data {
    const float *A, *B, *G;
    float *C, *DA, *DB;
} mm_data;

static void mm_fwd(const mm_params *p, int64_t b, int64_t oa, int64_t ob, void *ud) {
    mm_data *d = ud;
    bk__backend()->sgemm(false, false, p->M, p->N, p->K, 1.0f, d->A + oa, p->K, d->B + ob, p->N, 0.0f,
                         d->C + b * p->M * p->N, p->N);
}

/* dA = dC @ B^T, dB = A^T @ dC; both accumulate (beta = 1), which also sums over
 * broadcast batch dims. */
static void mm_bwd(const mm_params *p, int64_t b, int64_t oa, int64_t ob, void *ud) {
    mm_data *d = ud;
    const float *g = d->G + b * p->M * p->N;
    if (d->DA)
        bk__backend()->sgemm(false, true, p->M, p->K, p->N, 1.0f, g, p->N, d->B + ob, p->N, 1.0f, d->DA + oa,
                             p->K);
    if (d->DB)
        bk__backend()->sgemm(true, false, p->K, p->N, p->M, 1.0f, d->A + oa, p->K, g, p->N, 1.0f, d->DB + ob,
                             p->N);
}

static void matmul_backward(bk_node *n) {
    const mm_params *p = bk_node_params(n);
    bk_tensor *da = bk_node_grad_input(n, 0), *db = bk_node_grad_input(n, 1);
    mm_data d = {bk_node_input(n, 0)->data, bk_node_input(n, 1)->data, bk_node_grad_output(n)->data, NULL,
                 da ? da->data : NULL,      db ? db->data : NULL};
    mm_batches(p, mm_bwd, &d);
}

static const bk_op OP_MATMUL = {"matmul", matmul_backward};

static void mat_str(const bk_tensor *t, char *buf, size_t n) {
    size_t k = 0;
    buf[0] = '\0';
    for (int i = 0; i < t->ndim && k < n; i++)
        k += (size_t)snprintf(buf + k, n - k, "%s%" PRId64, i ? "x" : "", t->shape[i]);
}

/* Both operands have rank >= 2 here. */
static bk_tensor *matmul_nd(bk_tensor *a, bk_tensor *b) {
    mm_params p;
    memset(&p, 0, sizeof p);
    p.M = a->shape[a->ndim - 2];
    p.K = a->shape[a->ndim - 1];
    p.N = b->shape[b->ndim - 1];
    if (b->shape[b->ndim - 2] != p.K) {
        char s1[128], s2[128];
        mat_str(a, s1, sizeof s1);
        mat_str(b, s2, sizeof s2);
        bk_set_error("matmul: mat1 and mat2 shapes cannot be multiplied (%s and %s)", s1, s2);
        return NULL;
    }
    int bna = a->ndim - 2, bnb = b->ndim - 2;
    p.bnd = bna > bnb ? bna : bnb;
    for (int i = 0; i < p.bnd; i++) {
        int ia = i - (p.bnd - bna), ib = i - (p.bnd - bnb);
        int64_t da = ia >= 0 ? a->shape[ia] : 1, db = ib >= 0 ? b->shape[ib] : 1;
        if (da != db && da != 1 && db != 1) {
            char s1[128], s2[128];
            bk_set_error("matmul: batch dimensions of %s and %s cannot be broadcast together",
                         bk_shape_str(a, s1, sizeof s1), bk_shape_str(b, s2, sizeof s2));
            return NULL;
        }
        p.bshape[i] = da == 1 ? db : da;
        p.sa[i] = (ia >= 0 && da != 1) ? a->stride[ia] : 0;
        p.sb[i] = (ib >= 0 && db != 1) ? b->stride[ib] : 0;
    }
    int64_t shape[BK_MAX_DIMS];
    for (int i = 0; i < p.bnd; i++) shape[i] = p.bshape[i];
    shape[p.bnd] = p.M;
    shape[p.bnd + 1] = p.N;
    bk_tensor *y = bk__tensor_arena(p.bnd + 2, shape, false);
    if (!y) return NULL;
    mm_data d = {a->data, b->data, NULL, y->data, NULL, NULL};
    mm_batches(&p, mm_fwd, &d);
    bk_tensor *in[2] = {a, b};
    return bk_op_record(&OP_MATMUL, y, 2, in, &p, sizeof p);
}

bk_tensor *bk_matmul(bk_tensor *a, bk_tensor *b) {
    bk_tensor *in[2] = {a, b};
    if (!bk__inputs_ok("matmul", 2, in)) return NULL;
    if (a->ndim == 0 || b->ndim == 0) {
        bk_set_error("matmul: both arguments need at least 1 dimension, but got %dD and %dD tensors", a->ndim,
                     b->ndim);
        return NULL;
    }
    if (a->ndim >= 2 && b->ndim >= 2) return matmul_nd(a, b);
    /* 1-d promotion through reshape views (differentiable), then squeeze back. */
    bk_tensor *a2 = a, *b2 = b;
    if (a->ndim == 1) a2 = bk_reshape(a, BK_SHAPE(1, a->shape[0]));
    if (b->ndim == 1) b2 = bk_reshape(b, BK_SHAPE(b->shape[0], 1));
    if (a->ndim == 1 && b->ndim >= 2 && b->shape[b->ndim - 2] != a->shape[0]) {
        char s1[128], s2[128];
        mat_str(a, s1, sizeof s1);
        mat_str(b, s2, sizeof s2);
        bk_set_error("matmul: mat1 and mat2 shapes cannot be multiplied (%s and %s)", s1, s2);
        return NULL;
    }
    bk_tensor *y = matmul_nd(a2, b2);
    if (!y) return NULL;
    int64_t shape[BK_MAX_DIMS];
    int nd = 0;
    for (int i = 0; i < y->ndim; i++) {
        if (a->ndim == 1 && i == y->ndim - 2) continue;
        if (b->ndim == 1 && i == y->ndim - 1) continue;
        shape[nd++] = y->shape[i];
    }
    return bk_reshape(y, nd, shape);
}

/* ---- linear ---------------------------------------------------------------------------------
 * y = x w^T + b with x (..., in) seen as (M, in), w (out, in), b (out). */

typedef struct lin_params {
    int64_t M, in, out;
} lin_params;

/* dx = dy w; dw += dy^T x; db += sum over rows of dy */
static void linear_backward(bk_node *n) {
    const lin_params *p = bk_node_params(n);
    bk__xwb io = bk__xwb_grads(n);
    const bk_backend *be = bk__backend();
    if (io.dx)
        be->sgemm(false, false, p->M, p->in, p->out, 1.0f, io.dy, p->out, io.w->data, p->in, 1.0f,
                  io.dx->data, p->in);
    if (io.dw)
        be->sgemm(true, false, p->out, p->in, p->M, 1.0f, io.dy, p->out, io.x->data, p->in, 1.0f, io.dw->data,
                  p->in);
    if (io.db) /* row by row, vectorized (GCC -O2 alone leaves this loop scalar); same sums */
        for (int64_t i = 0; i < p->M; i++) {
            float *D = io.db->data;
            const float *g = io.dy + i * p->out;
#pragma omp simd
            for (int64_t j = 0; j < p->out; j++) D[j] += g[j];
        }
}

static const bk_op OP_LINEAR = {"linear", linear_backward};

bk_tensor *bk_linear(bk_tensor *x, bk_tensor *w, bk_tensor *b) {
    bk_tensor *in[3] = {x, w, b};
    if (!bk__inputs_ok("linear", b ? 3 : 2, in)) return NULL;
    char s1[128], s2[128], s3[128];
    if (w->ndim != 2 || x->ndim < 1) {
        bk_set_error("linear: weight must be 2-d and input at least 1-d (input %s, weight %s)",
                     bk_shape_str(x, s1, sizeof s1), bk_shape_str(w, s2, sizeof s2));
        return NULL;
    }
    lin_params p = {0, w->shape[1], w->shape[0]};
    if (x->shape[x->ndim - 1] != p.in) {
        bk_set_error("linear: input %s has %" PRId64
                     " features in its last dimension, but the "
                     "weight %s expects in_features=%" PRId64,
                     bk_shape_str(x, s1, sizeof s1), x->shape[x->ndim - 1], bk_shape_str(w, s2, sizeof s2),
                     p.in);
        return NULL;
    }
    if (b && (b->ndim != 1 || b->shape[0] != p.out)) {
        bk_set_error("linear: bias %s does not match out_features=%" PRId64 " of weight %s",
                     bk_shape_str(b, s3, sizeof s3), p.out, bk_shape_str(w, s2, sizeof s2));
        return NULL;
    }
    p.M = p.in ? x->numel / p.in : 0;
    if (p.in == 0) {
        p.M = 1;
        for (int i = 0; i < x->ndim - 1; i++) p.M *= x->shape[i];
    }
    int64_t shape[BK_MAX_DIMS];
    for (int i = 0; i < x->ndim - 1; i++) shape[i] = x->shape[i];
    shape[x->ndim - 1] = p.out;
    bk_tensor *y = bk__tensor_arena(x->ndim, shape, false);
    if (!y) return NULL;
    if (b) /* y = 1 x b, then y += x w^T */
        for (int64_t i = 0; i < p.M; i++) memcpy(y->data + i * p.out, b->data, sizeof(float) * (size_t)p.out);
    bk__backend()->sgemm(false, true, p.M, p.out, p.in, 1.0f, x->data, p.in, w->data, p.in, b ? 1.0f : 0.0f,
                         y->data, p.out);
    return bk_op_record(&OP_LINEAR, y, b ? 3 : 2, in, &p, sizeof p);
}
