/* test_ops_shape.c - the shape ops of brick.h (reshape, flatten, transpose, permute, concat,
 * slice, select, clone, detach): values against index maps computed directly, gradients
 * against central differences, on random shapes drawn as in test_ops.c (seed, tolerances:
 * its header comment; rerun a failure with BRICK_TEST_SEED=<seed> build/tests/test_ops_shape).
 * Also the check that the gradient checker itself rejects a wrong backward.
 */
#include "test.h"

#include "op_cases.h"

/* ---- shape ops --------------------------------------------------------------------------- */

/* A random dim of a rank-nd tensor (nd >= 1), negative half of the time. */
static int rand_axis(int nd) {
    int d = rand_int(0, nd - 1);
    return rand_int(0, 1) ? d - nd : d;
}

/* The reference of an op that only moves values: out[yi] = x[map(yi)], with q holding the
 * op's arguments normalised (non-negative dims and indices). */
typedef void (*index_map)(const args *q, const int64_t *yi, int64_t *xi, int xnd);
static float *ref_gather(const bk_tensor *x, shp out, const args *q, index_map map) {
    int64_t n = numel_of(out.nd, out.d), yi[BK_MAX_DIMS], xi[BK_MAX_DIMS];
    float *r = malloc(sizeof(float) * (size_t)(n + 1));
    for (int64_t i = 0; i < n; i++) {
        unravel(i, out.nd, out.d, yi);
        map(q, yi, xi, x->ndim);
        r[i] = bk_get(x, xi);
    }
    return r;
}
static void map_permute(const args *q, const int64_t *yi, int64_t *xi, int nd) {
    for (int k = 0; k < nd; k++) xi[q->perm[k]] = yi[k];
}
static void map_slice(const args *q, const int64_t *yi, int64_t *xi, int nd) {
    for (int k = 0; k < nd; k++) xi[k] = yi[k] + (k == q->dim ? q->start : 0);
}
static void map_select(const args *q, const int64_t *yi, int64_t *xi, int nd) {
    for (int k = 0, j = 0; k < nd; k++) xi[k] = k == q->dim ? q->start : yi[j++];
}

/* Checks fn's output against (want, ref) exactly, then its gradient; frees ref. */
static void check_moved(const char *what, bk_gradcheck_fn fn, bk_tensor **x, int n, args *p, shp want,
                        float *ref) {
    CHECK(values_ok(what, fn(x, n, p), want.nd, want.d, ref));
    free(ref);
    CHECK(gradcheck_ok(what, fn, x, n, p));
    bk_arena_reset(NULL);
}

TEST(op_reshape) {
    for (int t = 0; t < 2 * TRIALS; t++) {
        bk_tensor *x = leaf(rand_shape(0, 4), -1, 1);
        int64_t n = x->numel, div = 1;
        for (int64_t c = rand_int(1, (int)n); c >= 1 && div == 1; c--) /* a divisor of n */
            if (n % c == 0) div = c;
        args p = {0};
        shp want;
        switch (t % 4) { /* -1 alone, first, in the middle; no -1 */
        case 0: p.nd = 1, p.shape[0] = -1, want = (shp){1, {n}}; break;
        case 1: p.nd = 2, p.shape[0] = div, p.shape[1] = -1, want = (shp){2, {div, n / div}}; break;
        case 2:
            p.nd = 3, p.shape[0] = -1, p.shape[1] = div, p.shape[2] = 1, want = (shp){3, {n / div, div, 1}};
            break;
        default: p.nd = 2, p.shape[0] = n / div, p.shape[1] = div, want = (shp){2, {n / div, div}}; break;
        }
        bk_tensor *y = f_reshape(&x, 1, &p);
        CHECK(y && y->data == x->data); /* a view */
        char what[128], sh[64];
        snprintf(what, sizeof what, "reshape %s, target #%d", bk_shape_str(x, sh, 64), t % 4);
        float *ref = malloc(sizeof(float) * (size_t)n);
        memcpy(ref, x->data, sizeof(float) * (size_t)n);
        check_moved(what, f_reshape, &x, 1, &p, want, ref);
    }
}

TEST(op_flatten) {
    for (int t = 0; t < 2 * TRIALS; t++) {
        shp s = rand_shape(t == 0 ? 0 : 1, 4);
        bk_tensor *x = leaf(s, -1, 1);
        args p = {0};
        shp want = {1, {x->numel}};
        if (s.nd > 0) {
            int a = rand_int(0, s.nd - 1), b = rand_int(a, s.nd - 1);
            p.dim = rand_int(0, 1) ? a - s.nd : a;
            p.dim1 = rand_int(0, 1) ? b - s.nd : b;
            want.nd = 0;
            for (int i = 0; i < a; i++) want.d[want.nd++] = s.d[i];
            want.d[want.nd++] = numel_of(b - a + 1, s.d + a);
            for (int i = b + 1; i < s.nd; i++) want.d[want.nd++] = s.d[i];
        }
        char what[128], sh[64];
        snprintf(what, sizeof what, "flatten %s (%d, %d)", bk_shape_str(x, sh, 64), p.dim, p.dim1);
        float *ref = malloc(sizeof(float) * (size_t)x->numel);
        memcpy(ref, x->data, sizeof(float) * (size_t)x->numel);
        check_moved(what, f_flatten, &x, 1, &p, want, ref);
    }
}

TEST(op_transpose) {
    for (int t = 0; t < 2 * TRIALS; t++) {
        bk_tensor *x = leaf(rand_shape(1, 4), -1, 1);
        args p = {0}, q = {0};
        p.dim = rand_axis(x->ndim);
        p.dim1 = rand_axis(x->ndim);
        int d0 = (p.dim + x->ndim) % x->ndim, d1 = (p.dim1 + x->ndim) % x->ndim;
        for (int i = 0; i < x->ndim; i++) q.perm[i] = i;
        q.perm[d0] = d1, q.perm[d1] = d0;
        shp want = shape_of(x);
        want.d[d0] = x->shape[d1], want.d[d1] = x->shape[d0];
        char what[128], sh[64];
        snprintf(what, sizeof what, "transpose %s (%d, %d)", bk_shape_str(x, sh, 64), p.dim, p.dim1);
        check_moved(what, f_transpose, &x, 1, &p, want, ref_gather(x, want, &q, map_permute));
    }
}

TEST(op_permute) {
    for (int t = 0; t < 2 * TRIALS; t++) {
        bk_tensor *x = leaf(rand_shape(t == 0 ? 0 : 1, 4), -1, 1);
        args p = {0}, q = {0};
        for (int i = 0; i < x->ndim; i++) q.perm[i] = i;
        for (int i = x->ndim - 1; i > 0; i--) {
            int j = rand_int(0, i), tmp = q.perm[i];
            q.perm[i] = q.perm[j], q.perm[j] = tmp;
        }
        shp want = {x->ndim, {0}};
        for (int i = 0; i < x->ndim; i++) {
            want.d[i] = x->shape[q.perm[i]];
            p.perm[i] = rand_int(0, 1) ? q.perm[i] - x->ndim : q.perm[i]; /* some negative */
        }
        char what[128], sh[64];
        snprintf(what, sizeof what, "permute %s", bk_shape_str(x, sh, 64));
        check_moved(what, f_permute, &x, 1, &p, want, ref_gather(x, want, &q, map_permute));
    }
}

TEST(op_concat) {
    for (int t = 0; t < 2 * TRIALS; t++) {
        shp s = rand_shape(1, 4);
        int d = t < s.nd ? t : rand_int(0, s.nd - 1), n = rand_int(1, 4);
        bk_tensor *x[4];
        shp want = s;
        want.d[d] = 0;
        for (int k = 0; k < n; k++) {
            s.d[d] = rand_int(1, 3);
            want.d[d] += s.d[d];
            x[k] = leaf(s, -1, 1);
        }
        args p = {0};
        p.dim = rand_int(0, 1) ? d - s.nd : d;
        /* reference: walk the output, find the piece along d */
        int64_t numel = numel_of(want.nd, want.d), idx[BK_MAX_DIMS];
        float *ref = malloc(sizeof(float) * (size_t)numel);
        for (int64_t i = 0; i < numel; i++) {
            unravel(i, want.nd, want.d, idx);
            int k = 0;
            while (idx[d] >= x[k]->shape[d]) idx[d] -= x[k++]->shape[d];
            ref[i] = bk_get(x[k], idx);
        }
        char what[128], sh[64];
        snprintf(what, sizeof what, "concat of %d like %s, dim %d", n, bk_shape_str(x[0], sh, 64), p.dim);
        check_moved(what, f_concat, x, n, &p, want, ref);
    }
}

/* A leaf of random shape (rank 1 to 4) and a random dim of it: p->dim as the op takes it
 * (negative half of the time), q->dim the same dim counted from 0 for the reference. */
static bk_tensor *leaf_along_axis(args *p, args *q) {
    bk_tensor *x = leaf(rand_shape(1, 4), -1, 1);
    *p = (args){0};
    p->dim = rand_axis(x->ndim);
    *q = *p;
    q->dim = (p->dim + x->ndim) % x->ndim;
    return x;
}

TEST(op_slice) {
    for (int t = 0; t < 2 * TRIALS; t++) {
        args p, q;
        bk_tensor *x = leaf_along_axis(&p, &q);
        q.start = p.start = rand_int(0, (int)x->shape[q.dim]); /* empty ranges included */
        p.end = rand_int((int)p.start, (int)x->shape[q.dim]);
        shp want = shape_of(x);
        want.d[q.dim] = p.end - p.start;
        char what[128], sh[64];
        snprintf(what, sizeof what, "slice %s dim %d [%lld, %lld)", bk_shape_str(x, sh, 64), p.dim,
                 (long long)p.start, (long long)p.end);
        check_moved(what, f_slice, &x, 1, &p, want, ref_gather(x, want, &q, map_slice));
    }
}

TEST(op_select) {
    for (int t = 0; t < 2 * TRIALS; t++) {
        args p, q;
        bk_tensor *x = leaf_along_axis(&p, &q);
        q.start = rand_int(0, (int)x->shape[q.dim] - 1);
        p.start = rand_int(0, 1) ? q.start - x->shape[q.dim] : q.start; /* negative: from the end */
        shp want = {0, {0}};
        for (int i = 0; i < x->ndim; i++)
            if (i != q.dim) want.d[want.nd++] = x->shape[i];
        char what[128], sh[64];
        snprintf(what, sizeof what, "select %s dim %d index %lld", bk_shape_str(x, sh, 64), p.dim,
                 (long long)p.start);
        check_moved(what, f_select, &x, 1, &p, want, ref_gather(x, want, &q, map_select));
    }
}

TEST(op_clone) {
    for (int t = 0; t < TRIALS; t++) {
        bk_tensor *x = leaf(rand_shape(0, 4), -1, 1);
        bk_tensor *y = bk_clone(x);
        CHECK(values_ok("clone", y, x->ndim, x->shape, x->data));
        CHECK(y && y->data != x->data && y->node != NULL); /* a copy, with history */
        GRADCHECK("clone", f_clone, NULL, x);
        bk_arena_reset(NULL);
    }
}

/* detach: same values and storage, no history; the gradient stops there. */
TEST(op_detach) {
    bk_tensor *x = leaf(rand_shape(1, 4), 0.5f, 1.5f);
    bk_tensor *d = bk_detach(x);
    CHECK(d && d->data == x->data && !d->requires_grad && d->node == NULL);
    /* y = x * detach(x): autograd gives dy/dx = detach(x) = x (not 2x) */
    bk_tensor *y = bk_sum(bk_mul(x, d));
    CHECK(bk_backward(y) == 0);
    CHECK(x->grad && values_ok("x.grad", x->grad, x->ndim, x->shape, x->data));
    /* only detach: the result needs no grad, backward refuses it, x gets nothing */
    bk_tensor *z = bk_sum(bk_detach(bk_mul_scalar(x, 3)));
    CHECK(z && !z->requires_grad);
    CHECK_FAILS_INT(bk_backward(z), "does not require grad");
}

/* The checker itself must be able to fail: a user op with a wrong backward (d/dx x^2
 * given as x instead of 2x) has to be rejected. */
static void half_square_backward(bk_node *n) {
    const bk_tensor *x = bk_node_input(n, 0), *dy = bk_node_grad_output(n);
    bk_tensor *dx = bk_node_grad_input(n, 0);
    if (dx)
        for (int64_t i = 0; i < x->numel; i++) dx->data[i] += x->data[i] * dy->data[i]; /* wrong */
}
static const bk_op BAD_SQUARE = {"bad_square", half_square_backward};
static bk_tensor *f_bad_square(bk_tensor *const *x, int n, void *ud) {
    (void)n, (void)ud;
    bk_tensor *y = bk_mul(x[0], x[0]);
    bk_tensor *out = y ? bk_empty(y->ndim, y->shape) : NULL;
    if (out) memcpy(out->data, y->data, sizeof(float) * (size_t)y->numel);
    bk_tensor *in = x[0];
    return bk_op_record(&BAD_SQUARE, out, 1, &in, NULL, 0);
}

TEST(gradcheck_rejects_a_wrong_backward) {
    bk_tensor *x = leaf((shp){2, {2, 3}}, 0.5f, 1.5f);
    double r = bk_gradcheck(f_bad_square, &x, 1, NULL, GRADCHECK_EPS, GRADCHECK_ATOL, GRADCHECK_RTOL, NULL);
    CHECK(r > 1);
}
/* ---- main ---------------------------------------------------------------------------------- */

int main(void) {
    test_rng_seed("test_ops_shape");
    RUN(op_reshape);
    RUN(op_flatten);
    RUN(op_transpose);
    RUN(op_permute);
    RUN(op_concat);
    RUN(op_slice);
    RUN(op_select);
    RUN(op_clone);
    RUN(op_detach);
    RUN(gradcheck_rejects_a_wrong_backward);
    return test_summary("test_ops_shape");
}
