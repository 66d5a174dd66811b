/* test_ops_index.c - the indexing and extra reduction ops of brick.h (src/ops/index.c,
 * src/ops/reduce_ext.c): gather, scatter_add, index_select, where, masked_fill, stack,
 * split, chunk, cumsum, logsumexp, norm, argmax, argmin, min over a dim, topk. Values
 * against references computed here in double, gradients against central differences, on
 * random shapes, dims and indices drawn as in test_ops.c (seed and tolerances: its header
 * comment; rerun a failure with BRICK_TEST_SEED=<seed> build/tests/test_ops_index).
 */
#include "test.h"

#include "op_cases.h"

#include <inttypes.h>
#include <math.h>

/* The non-tensor arguments of the op under gradcheck: its dim, index, mask and scalars. */
typedef struct iargs {
    int dim, n_out;
    bool keepdim, largest;
    float p, value;
    int64_t k;
    bk_tensor *index; /* gather, scatter_add, index_select; where's cond; masked_fill's mask */
} iargs;

#define FN(name, expr)                                             \
    static bk_tensor *name(bk_tensor *const *x, int n, void *ud) { \
        const iargs *q = ud;                                       \
        (void)q, (void)n;                                          \
        return (expr);                                             \
    }
FN(f_gather, bk_gather(x[0], q->dim, q->index))
FN(f_scatter_add, bk_scatter_add(x[0], q->dim, q->index, x[1]))
FN(f_index_select, bk_index_select(x[0], q->dim, q->index))
FN(f_where, bk_where(q->index, x[0], x[1]))
FN(f_masked_fill, bk_masked_fill(x[0], q->index, q->value))
FN(f_stack, bk_stack(n, x, q->dim))
FN(f_cumsum, bk_cumsum(x[0], q->dim))
FN(f_logsumexp, bk_logsumexp(x[0], q->dim, q->keepdim))
FN(f_norm, bk_norm(x[0], q->p))
FN(f_norm_dim, bk_norm_dim(x[0], q->p, q->dim, q->keepdim))
FN(f_min_dim, bk_min_dim(x[0], q->dim, q->keepdim))
FN(f_topk, bk_topk(x[0], q->k, q->dim, q->largest, NULL))
#undef FN

/* split (chunk when n_out < 0) into pieces, joined again in reverse order along dim */
static bk_tensor *f_split_reversed(bk_tensor *const *x, int n, void *ud) {
    const iargs *q = ud;
    (void)n;
    bk_tensor *out[8], *rev[8];
    int m = q->n_out > 0 ? bk_split(x[0], q->k, q->dim, out, 8) : bk_chunk(x[0], (int)q->k, q->dim, out, 8);
    if (m < 0) return NULL;
    for (int i = 0; i < m; i++) rev[i] = out[m - 1 - i];
    return bk_concat(m, rev, q->dim);
}

/* A random dim of a rank-nd tensor (nd >= 1), negative half of the time. */
static int rand_axis(int nd) {
    int d = rand_int(0, nd - 1);
    return rand_int(0, 1) ? d - nd : d;
}

/* An index tensor of shape s with integers in [0, n). */
static bk_tensor *rand_index(shp s, int64_t n) {
    bk_tensor *t = bk_empty(s.nd, s.d);
    for (int64_t i = 0; t && i < t->numel; i++) t->data[i] = (float)rand_int(0, (int)n - 1);
    return t;
}

static int64_t offset_of(const bk_tensor *t, const int64_t *c) {
    int64_t off = 0;
    for (int d = 0; d < t->ndim; d++) off += c[d] * t->stride[d];
    return off;
}

/* The line (outer, n, inner) around dim d of x, as reduce_ext.c sees it. */
static void around(const bk_tensor *x, int d, int64_t *outer, int64_t *n, int64_t *inner) {
    *outer = *inner = 1;
    *n = x->shape[d];
    for (int i = 0; i < x->ndim; i++) {
        if (i < d) *outer *= x->shape[i];
        if (i > d) *inner *= x->shape[i];
    }
}

/* x's shape reduced along d (kept as 1 with keepdim) */
static shp reduced(const bk_tensor *x, int d, bool keepdim) {
    shp s = {0, {0}};
    for (int i = 0; i < x->ndim; i++)
        if (i != d || keepdim) s.d[s.nd++] = i == d ? 1 : x->shape[i];
    return s;
}

static void check(const char *what, bk_gradcheck_fn fn, bk_tensor **x, int n, iargs *q, shp want, float *ref,
                  bool grad) {
    CHECK(values_ok(what, fn(x, n, q), want.nd, want.d, ref));
    free(ref);
    if (grad) CHECK(gradcheck_ok(what, fn, x, n, q));
    bk_arena_reset(NULL);
}

/* ---- gather, scatter_add, index_select ------------------------------------------------------ */

TEST(op_gather) {
    for (int t = 0; t < 2 * TRIALS; t++) {
        bk_tensor *x = leaf(rand_shape(1, 4), -1, 1);
        iargs q = {0};
        q.dim = rand_axis(x->ndim);
        int d = q.dim < 0 ? q.dim + x->ndim : q.dim;
        shp s = shape_of(x);
        for (int i = 0; i < s.nd; i++) s.d[i] = i == d ? rand_int(1, 4) : rand_int(1, (int)x->shape[i]);
        q.index = rand_index(s, x->shape[d]);
        int64_t n = q.index->numel, c[BK_MAX_DIMS];
        float *ref = malloc(sizeof(float) * (size_t)(n + 1));
        for (int64_t i = 0; i < n; i++) {
            unravel(i, s.nd, s.d, c);
            c[d] = (int64_t)q.index->data[i];
            ref[i] = x->data[offset_of(x, c)];
        }
        char what[128], s1[64], s2[64];
        snprintf(what, sizeof what, "gather %s dim %d index %s", bk_shape_str(x, s1, 64), q.dim,
                 bk_shape_str(q.index, s2, 64));
        check(what, f_gather, &x, 1, &q, s, ref, true);
    }
}

TEST(op_scatter_add) {
    for (int t = 0; t < 2 * TRIALS; t++) {
        bk_tensor *x = leaf(rand_shape(1, 4), -1, 1);
        iargs q = {0};
        q.dim = rand_axis(x->ndim);
        int d = q.dim < 0 ? q.dim + x->ndim : q.dim;
        shp s = shape_of(x), ss;
        for (int i = 0; i < s.nd; i++) s.d[i] = i == d ? rand_int(1, 4) : rand_int(1, (int)x->shape[i]);
        ss = s;
        for (int i = 0; i < ss.nd; i++) ss.d[i] += rand_int(0, 1); /* src may be larger */
        q.index = rand_index(s, x->shape[d]);
        bk_tensor *in[2] = {x, leaf(ss, -1, 1)};
        double *acc = calloc((size_t)x->numel + 1, sizeof(double));
        int64_t c[BK_MAX_DIMS];
        for (int64_t i = 0; i < x->numel; i++) acc[i] = x->data[i];
        for (int64_t i = 0; i < q.index->numel; i++) {
            unravel(i, s.nd, s.d, c);
            double v = in[1]->data[offset_of(in[1], c)];
            c[d] = (int64_t)q.index->data[i];
            acc[offset_of(x, c)] += v;
        }
        float *ref = malloc(sizeof(float) * (size_t)(x->numel + 1));
        for (int64_t i = 0; i < x->numel; i++) ref[i] = (float)acc[i];
        free(acc);
        char what[160], s1[64], s2[64], s3[64];
        snprintf(what, sizeof what, "scatter_add %s dim %d index %s src %s", bk_shape_str(x, s1, 64), q.dim,
                 bk_shape_str(q.index, s2, 64), bk_shape_str(in[1], s3, 64));
        check(what, f_scatter_add, in, 2, &q, shape_of(x), ref, true);
    }
}

TEST(op_index_select) {
    for (int t = 0; t < 2 * TRIALS; t++) {
        bk_tensor *x = leaf(rand_shape(1, 4), -1, 1);
        iargs q = {0};
        q.dim = rand_axis(x->ndim);
        int d = q.dim < 0 ? q.dim + x->ndim : q.dim;
        q.index = rand_index((shp){1, {rand_int(0, 5)}}, x->shape[d]);
        shp s = shape_of(x);
        s.d[d] = q.index->numel;
        int64_t n = numel_of(s.nd, s.d), c[BK_MAX_DIMS];
        float *ref = malloc(sizeof(float) * (size_t)(n + 1));
        for (int64_t i = 0; i < n; i++) {
            unravel(i, s.nd, s.d, c);
            c[d] = (int64_t)q.index->data[c[d]];
            ref[i] = x->data[offset_of(x, c)];
        }
        char what[128], s1[64], s2[64];
        snprintf(what, sizeof what, "index_select %s dim %d index %s", bk_shape_str(x, s1, 64), q.dim,
                 bk_shape_str(q.index, s2, 64));
        check(what, f_index_select, &x, 1, &q, s, ref, true);
    }
}

/* ---- where, masked_fill ---------------------------------------------------------------------- */

/* The broadcast shape of a and b (and c when not NULL). */
static shp bcast_shape(const bk_tensor *a, const bk_tensor *b, const bk_tensor *c) {
    const bk_tensor *ts[3] = {a, b, c};
    shp o = {0, {0}};
    for (int k = 0; k < 3; k++)
        if (ts[k] && ts[k]->ndim > o.nd) o.nd = ts[k]->ndim;
    for (int i = 0; i < o.nd; i++) {
        o.d[i] = 1;
        for (int k = 0; k < 3; k++) {
            int j = ts[k] ? i - (o.nd - ts[k]->ndim) : -1;
            if (j >= 0 && ts[k]->shape[j] != 1) o.d[i] = ts[k]->shape[j];
        }
    }
    return o;
}

TEST(op_where) {
    for (int t = 0; t < 2 * TRIALS; t++) {
        shp sa, sb;
        rand_bcast_pair(&sa, &sb);
        bk_tensor *in[2] = {leaf(sa, -1, 1), leaf(sb, -1, 1)};
        iargs q = {0};
        q.index = rand_index(rand_int(0, 1) ? sa : sb, 2); /* 0 or 1 */
        shp o = bcast_shape(in[0], in[1], q.index);
        int64_t n = numel_of(o.nd, o.d), c[BK_MAX_DIMS];
        float *ref = malloc(sizeof(float) * (size_t)(n + 1));
        for (int64_t i = 0; i < n; i++) {
            unravel(i, o.nd, o.d, c);
            bool cond = q.index->data[bcast_off(q.index, o.nd, c)] != 0.0f;
            const bk_tensor *src = cond ? in[0] : in[1];
            ref[i] = src->data[bcast_off(src, o.nd, c)];
        }
        char what[160], s1[64], s2[64], s3[64];
        snprintf(what, sizeof what, "where %s %s %s", bk_shape_str(q.index, s1, 64),
                 bk_shape_str(in[0], s2, 64), bk_shape_str(in[1], s3, 64));
        check(what, f_where, in, 2, &q, o, ref, true);
    }
}

TEST(op_masked_fill) {
    for (int t = 0; t < 2 * TRIALS; t++) {
        shp sx = rand_shape(0, 4), sm = sx;
        for (int i = 0; i < sm.nd; i++)
            if (rand_int(0, 2) == 0) sm.d[i] = 1;
        keep_trailing(&sm, rand_int(0, sm.nd));
        bk_tensor *x = leaf(sx, -1, 1);
        iargs q = {0};
        q.index = rand_index(sm, 2);
        q.value = rand_float(-3, 3);
        float *ref = malloc(sizeof(float) * (size_t)(x->numel + 1));
        int64_t c[BK_MAX_DIMS];
        for (int64_t i = 0; i < x->numel; i++) {
            unravel(i, sx.nd, sx.d, c);
            ref[i] = q.index->data[bcast_off(q.index, sx.nd, c)] != 0.0f ? q.value : x->data[i];
        }
        char what[128], s1[64], s2[64];
        snprintf(what, sizeof what, "masked_fill %s mask %s", bk_shape_str(x, s1, 64),
                 bk_shape_str(q.index, s2, 64));
        check(what, f_masked_fill, &x, 1, &q, sx, ref, true);
    }
}

/* ---- stack, split, chunk ---------------------------------------------------------------------- */

TEST(op_stack) {
    for (int t = 0; t < 2 * TRIALS; t++) {
        shp s = rand_shape(0, 3);
        bk_tensor *in[3];
        int n = rand_int(1, 3);
        for (int k = 0; k < n; k++) in[k] = leaf(s, -1, 1);
        iargs q = {0};
        int d = rand_int(0, s.nd);
        q.dim = rand_int(0, 1) ? d - (s.nd + 1) : d;
        shp o = {s.nd + 1, {0}};
        for (int i = 0, j = 0; i < o.nd; i++) o.d[i] = i == d ? n : s.d[j++];
        int64_t m = numel_of(o.nd, o.d), c[BK_MAX_DIMS], cx[BK_MAX_DIMS];
        float *ref = malloc(sizeof(float) * (size_t)(m + 1));
        for (int64_t i = 0; i < m; i++) {
            unravel(i, o.nd, o.d, c);
            for (int a = 0, j = 0; a < o.nd; a++)
                if (a != d) cx[j++] = c[a];
            ref[i] = in[c[d]]->data[offset_of(in[c[d]], cx)];
        }
        char what[128], s1[64];
        snprintf(what, sizeof what, "stack %d x %s dim %d", n, bk_shape_str(in[0], s1, 64), q.dim);
        check(what, f_stack, in, n, &q, o, ref, true);
    }
}

TEST(op_split_chunk) {
    for (int t = 0; t < 2 * TRIALS; t++) {
        bk_tensor *x = leaf(rand_shape(1, 4), -1, 1);
        iargs q = {0};
        q.dim = rand_axis(x->ndim);
        int d = q.dim < 0 ? q.dim + x->ndim : q.dim;
        int64_t len = x->shape[d];
        q.n_out = t % 2 ? 1 : -1; /* split, chunk */
        q.k = rand_int(1, 3);
        int64_t size = q.n_out > 0 ? q.k : (len + q.k - 1) / q.k;
        /* reference: in each outer row, the pieces of `size` in reverse order (concat's layout) */
        int64_t outer, n, inner;
        around(x, d, &outer, &n, &inner);
        float *ref = malloc(sizeof(float) * (size_t)(x->numel + 1));
        int64_t at = 0;
        for (int64_t o = 0; o < outer; o++)
            for (int64_t start = ((len - 1) / size) * size; start >= 0; start -= size) {
                int64_t end = start + size < len ? start + size : len;
                for (int64_t j = start; j < end; j++)
                    for (int64_t i = 0; i < inner; i++) ref[at++] = x->data[(o * n + j) * inner + i];
            }
        char what[128], s1[64];
        snprintf(what, sizeof what, "%s %s %" PRId64 " dim %d", q.n_out > 0 ? "split" : "chunk",
                 bk_shape_str(x, s1, 64), q.k, q.dim);
        check(what, f_split_reversed, &x, 1, &q, shape_of(x), ref, true);
    }
}

/* ---- cumsum, logsumexp, norm --------------------------------------------------------------------- */

TEST(op_cumsum) {
    for (int t = 0; t < 2 * TRIALS; t++) {
        bk_tensor *x = leaf(rand_shape(1, 4), -1, 1);
        iargs q = {0};
        q.dim = rand_axis(x->ndim);
        int64_t outer, n, inner;
        around(x, q.dim < 0 ? q.dim + x->ndim : q.dim, &outer, &n, &inner);
        float *ref = malloc(sizeof(float) * (size_t)(x->numel + 1));
        for (int64_t o = 0; o < outer; o++)
            for (int64_t i = 0; i < inner; i++) {
                double acc = 0;
                for (int64_t j = 0; j < n; j++) {
                    acc += x->data[(o * n + j) * inner + i];
                    ref[(o * n + j) * inner + i] = (float)acc;
                }
            }
        char what[128], s1[64];
        snprintf(what, sizeof what, "cumsum %s dim %d", bk_shape_str(x, s1, 64), q.dim);
        check(what, f_cumsum, &x, 1, &q, shape_of(x), ref, true);
    }
}

/* The reduction of each line (o, i) of x along d by f. */
static float *ref_lines(const bk_tensor *x, int d, double (*f)(const double *v, int64_t n, double p),
                        double p) {
    int64_t outer, n, inner;
    around(x, d, &outer, &n, &inner);
    float *ref = malloc(sizeof(float) * (size_t)(outer * inner + 1));
    double *v = malloc(sizeof(double) * (size_t)(n + 1));
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0; i < inner; i++) {
            for (int64_t j = 0; j < n; j++) v[j] = x->data[(o * n + j) * inner + i];
            ref[o * inner + i] = (float)f(v, n, p);
        }
    free(v);
    return ref;
}
static double lse(const double *v, int64_t n, double p) {
    (void)p;
    double s = 0;
    for (int64_t j = 0; j < n; j++) s += exp(v[j]);
    return log(s);
}
static double pnorm(const double *v, int64_t n, double p) {
    double s = 0;
    for (int64_t j = 0; j < n; j++) s += pow(fabs(v[j]), p);
    return pow(s, 1 / p);
}

TEST(op_logsumexp) {
    for (int t = 0; t < 2 * TRIALS; t++) {
        bk_tensor *x = leaf(rand_shape(1, 4), -3, 3);
        iargs q = {0};
        q.dim = rand_axis(x->ndim);
        q.keepdim = rand_int(0, 1);
        int d = q.dim < 0 ? q.dim + x->ndim : q.dim;
        char what[128], s1[64];
        snprintf(what, sizeof what, "logsumexp %s dim %d keepdim %d", bk_shape_str(x, s1, 64), q.dim,
                 q.keepdim);
        check(what, f_logsumexp, &x, 1, &q, reduced(x, d, q.keepdim), ref_lines(x, d, lse, 0), true);
    }
    /* large values stay finite (the max is subtracted) */
    bk_tensor *big = bk_from_data(BK_SHAPE(2), (const float[]){1000.0f, 1000.0f});
    bk_tensor *y = bk_logsumexp(big, 0, false);
    CHECK(y && fabsf(y->data[0] - (1000.0f + logf(2.0f))) < 1e-3f);
    bk_arena_reset(NULL);
}

TEST(op_norm) {
    static const float ps[3] = {1.0f, 2.0f, 3.0f};
    for (int t = 0; t < 3 * TRIALS; t++) {
        bk_tensor *x = leaf_signed(rand_shape(1, 4), 0.1f, 1); /* |x| > 0: p = 1's kink */
        iargs q = {0};
        q.p = ps[t % 3];
        q.dim = rand_axis(x->ndim);
        q.keepdim = rand_int(0, 1);
        int d = q.dim < 0 ? q.dim + x->ndim : q.dim;
        /* both references first: check() resets the arena, x with it */
        float *ref_all = ref_lines(bk_reshape(x, 1, (const int64_t[]){x->numel}), 0, pnorm, q.p);
        float *ref_dim = ref_lines(x, d, pnorm, q.p);
        char what[128], s1[64];
        snprintf(what, sizeof what, "norm p=%g %s (all)", (double)q.p, bk_shape_str(x, s1, 64));
        CHECK(values_ok(what, f_norm(&x, 1, &q), 0, NULL, ref_all));
        free(ref_all);
        CHECK(gradcheck_ok(what, f_norm, &x, 1, &q));
        snprintf(what, sizeof what, "norm p=%g %s dim %d keepdim %d", (double)q.p, s1, q.dim, q.keepdim);
        check(what, f_norm_dim, &x, 1, &q, reduced(x, d, q.keepdim), ref_dim, true);
    }
    /* the gradient of a zero norm is 0, as torch's (not NaN) */
    bk_tensor *z = bk_requires_grad(bk_zeros(BK_SHAPE(3)), true);
    CHECK(bk_backward(bk_norm(z, 2.0f)) == 0);
    CHECK(z->grad && z->grad->data[0] == 0.0f && z->grad->data[2] == 0.0f);
    bk_arena_reset(NULL);
}

/* ---- argmax, argmin, min over a dim, topk --------------------------------------------------------- */

static double argbest(const double *v, int64_t n, double largest) {
    int64_t b = 0;
    for (int64_t j = 1; j < n; j++)
        if (largest ? v[j] > v[b] : v[j] < v[b]) b = j;
    return (double)b;
}
static double minimum_of(const double *v, int64_t n, double p) { return v[(int64_t)argbest(v, n, p)]; }

TEST(op_argmax_argmin_min) {
    for (int t = 0; t < 2 * TRIALS; t++) {
        bk_tensor *x = leaf_distinct(rand_shape(1, 4));
        iargs q = {0};
        q.dim = rand_axis(x->ndim);
        q.keepdim = rand_int(0, 1);
        int d = q.dim < 0 ? q.dim + x->ndim : q.dim;
        shp o = reduced(x, d, q.keepdim);
        char what[128], s1[64];
        snprintf(what, sizeof what, "argmax %s dim %d keepdim %d", bk_shape_str(x, s1, 64), q.dim, q.keepdim);
        bk_tensor *y = bk_argmax(x, q.dim, q.keepdim);
        CHECK(y && !y->requires_grad);
        float *ref = ref_lines(x, d, argbest, 1);
        CHECK(values_ok(what, y, o.nd, o.d, ref));
        free(ref);
        snprintf(what, sizeof what, "argmin %s dim %d", s1, q.dim);
        ref = ref_lines(x, d, argbest, 0);
        CHECK(values_ok(what, bk_argmin(x, q.dim, q.keepdim), o.nd, o.d, ref));
        free(ref);
        snprintf(what, sizeof what, "min %s dim %d keepdim %d", s1, q.dim, q.keepdim);
        check(what, f_min_dim, &x, 1, &q, o, ref_lines(x, d, minimum_of, 0), true);
    }
    /* NaN counts as the largest, and the first of equal values wins */
    bk_tensor *v = bk_from_data(BK_SHAPE(5), (const float[]){1.0f, 3.0f, NAN, 3.0f, NAN});
    bk_tensor *w = bk_from_data(BK_SHAPE(4), (const float[]){2.0f, 1.0f, 5.0f, 1.0f});
    CHECK(bk_argmax(v, 0, false)->data[0] == 2.0f);
    CHECK(bk_argmax(w, 0, false)->data[0] == 2.0f);
    CHECK(bk_argmin(w, 0, false)->data[0] == 1.0f);
    bk_arena_reset(NULL);
}

TEST(op_topk) {
    for (int t = 0; t < 2 * TRIALS; t++) {
        bk_tensor *x = leaf_distinct(rand_shape(1, 4));
        iargs q = {0};
        q.dim = rand_axis(x->ndim);
        q.largest = rand_int(0, 1);
        int d = q.dim < 0 ? q.dim + x->ndim : q.dim;
        int64_t outer, n, inner;
        around(x, d, &outer, &n, &inner);
        q.k = rand_int(0, (int)n);
        shp o = shape_of(x);
        o.d[d] = q.k;
        float *ref = malloc(sizeof(float) * (size_t)(outer * q.k * inner + 1));
        float *iref = malloc(sizeof(float) * (size_t)(outer * q.k * inner + 1));
        for (int64_t a = 0; a < outer; a++)
            for (int64_t i = 0; i < inner; i++) {
                bool *used = calloc((size_t)n + 1, 1);
                for (int64_t r = 0; r < q.k; r++) { /* selection: the next best unused */
                    int64_t b = -1;
                    for (int64_t j = 0; j < n; j++) {
                        float v = x->data[(a * n + j) * inner + i];
                        if (!used[j] && (b < 0 || (q.largest ? v > x->data[(a * n + b) * inner + i]
                                                             : v < x->data[(a * n + b) * inner + i])))
                            b = j;
                    }
                    used[b] = true;
                    ref[(a * q.k + r) * inner + i] = x->data[(a * n + b) * inner + i];
                    iref[(a * q.k + r) * inner + i] = (float)b;
                }
                free(used);
            }
        char what[128], s1[64];
        snprintf(what, sizeof what, "topk %s k %" PRId64 " dim %d largest %d", bk_shape_str(x, s1, 64), q.k,
                 q.dim, q.largest);
        bk_tensor *idx = NULL;
        bk_topk(x, q.k, q.dim, q.largest, &idx);
        CHECK(values_ok(what, idx, o.nd, o.d, iref));
        free(iref);
        check(what, f_topk, &x, 1, &q, o, ref, true);
    }
}

/* ---- main ---------------------------------------------------------------------------------- */

int main(void) {
    test_rng_seed("test_ops_index");
    RUN(op_gather);
    RUN(op_scatter_add);
    RUN(op_index_select);
    RUN(op_where);
    RUN(op_masked_fill);
    RUN(op_stack);
    RUN(op_split_chunk);
    RUN(op_cumsum);
    RUN(op_logsumexp);
    RUN(op_norm);
    RUN(op_argmax_argmin_min);
    RUN(op_topk);
    return test_summary("test_ops_index");
}
