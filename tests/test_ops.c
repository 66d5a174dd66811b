/* test_ops.c - every op of brick.h: gradients against central differences, forward values
 * against naive references computed in double.
 *
 * Shapes (rank 0..4, with size-1 dims and broadcasting pairs), values and op arguments are
 * drawn afresh each run from a PCG32 stream seeded from $BRICK_TEST_SEED, else $BRICK_SEED
 * (the seed `make test` prints), else the clock. The seed is printed first; rerun a
 * failure with BRICK_TEST_SEED=<seed> build/tests/test_ops.
 *
 * Gradient tolerances (bk_gradcheck): eps = 1e-3, atol = 5e-3, rtol = 1e-2.
 *   - The forward runs in float32: each evaluation of L = sum(f(x) * w) carries a rounding
 *     error of ~6e-8 * |y| per output element that the perturbation touches (outputs it
 *     does not touch are bitwise identical in both evaluations and cancel). Divided by the
 *     step 2 eps = 2e-3 that is ~3e-5 |y| per touched output; a sum over 256 elements of
 *     size 1 (the largest reduction here) gives ~5e-3 in the worst case, hence atol.
 *   - Central differences have a truncation error of eps^2 / 6 * f''' ~ 2e-7 f'''. Inputs
 *     are kept where f''' is O(100) at most (log, sqrt, pow, div away from 0), ~1e-5.
 *   - rtol = 1e-2 covers both for large gradients.
 * Forward values are compared with rtol 1e-5, atol 1e-6: the references are exact in
 * double and brick's float32 results differ by a few ulps (K <= 5 terms per product).
 */
#include "test.h"

#include "gradcheck.h"
#include "ops/elementwise_ops.h" /* the element-wise ops' rows: each is checked here */

#include <stdint.h>
#include <time.h>

#define TRIALS 4 /* random cases per op */

static bk_rng g_rng; /* the test's own stream: shapes, values, op arguments */

/* ---- random draws -------------------------------------------------------------------- */

static int rand_int(int lo, int hi) { return lo + (int)(bk_rng_u32(&g_rng) % (uint32_t)(hi - lo + 1)); }
static float rand_float(float lo, float hi) { return lo + (hi - lo) * bk_rng_uniform(&g_rng); }

typedef struct shp {
    int nd;
    int64_t d[BK_MAX_DIMS];
} shp; /* a shape, by value */

/* A dim of 1..4, 1 a third of the time. */
static int64_t rand_dim(void) { return rand_int(0, 2) == 0 ? 1 : rand_int(1, 4); }

static shp rand_shape(int min_rank, int max_rank) {
    shp s = {rand_int(min_rank, max_rank), {0}};
    for (int i = 0; i < s.nd; i++) s.d[i] = rand_dim();
    return s;
}

/* Two shapes that broadcast: both are taken from the right end of one random shape, each
 * dim kept or replaced by 1, each at a random rank. */
static void rand_bcast_pair(shp *a, shp *b) {
    shp out = rand_shape(0, 4);
    shp *ab[2] = {a, b};
    for (int k = 0; k < 2; k++) {
        ab[k]->nd = rand_int(0, out.nd);
        for (int i = 0; i < ab[k]->nd; i++) {
            int64_t d = out.d[out.nd - ab[k]->nd + i];
            ab[k]->d[i] = rand_int(0, 2) == 0 ? 1 : d;
        }
    }
}

/* Keeps the last `max` dims of s (which still broadcast with the other shape). */
static void keep_trailing(shp *s, int max) {
    if (s->nd <= max) return;
    memmove(s->d, s->d + s->nd - max, sizeof(int64_t) * (size_t)max);
    s->nd = max;
}

/* A leaf that requires grad, values uniform in [lo, hi]. */
static bk_tensor *leaf(shp s, float lo, float hi) {
    bk_tensor *t = bk_empty(s.nd, s.d);
    if (!t) return NULL;
    for (int64_t i = 0; i < t->numel; i++) t->data[i] = rand_float(lo, hi);
    return bk_requires_grad(t, true);
}

/* Magnitudes in [lo, hi] with random signs (for ops with a kink or a pole at 0). */
static bk_tensor *leaf_signed(shp s, float lo, float hi) {
    bk_tensor *t = leaf(s, lo, hi);
    if (t)
        for (int64_t i = 0; i < t->numel; i++)
            if (rand_int(0, 1)) t->data[i] = -t->data[i];
    return t;
}

/* Distinct values 0.01 apart in random order, so no max is tied even after +-eps. */
static bk_tensor *leaf_distinct(shp s) {
    bk_tensor *t = leaf(s, 0, 0);
    if (!t) return NULL;
    for (int64_t i = 0; i < t->numel; i++) t->data[i] = 0.01f * (float)(i - t->numel / 2);
    for (int64_t i = t->numel - 1; i > 0; i--) { /* Fisher-Yates */
        int64_t j = (int64_t)(bk_rng_u32(&g_rng) % (uint32_t)(i + 1));
        float tmp = t->data[i];
        t->data[i] = t->data[j], t->data[j] = tmp;
    }
    return t;
}

static shp shape_of(const bk_tensor *t) {
    shp s = {t->ndim, {0}};
    for (int i = 0; i < t->ndim; i++) s.d[i] = t->shape[i];
    return s;
}

static void unravel(int64_t i, int nd, const int64_t *shape, int64_t *idx) {
    for (int k = nd - 1; k >= 0; k--) {
        idx[k] = shape[k] ? i % shape[k] : 0;
        i = shape[k] ? i / shape[k] : 0;
    }
}

static int64_t numel_of(int nd, const int64_t *shape) {
    int64_t n = 1;
    for (int i = 0; i < nd; i++) n *= shape[i];
    return n;
}

/* ---- checks ---------------------------------------------------------------------------- */

/* got must have shape (nd, shape) and the values of ref (row-major; references are
 * computed in double and rounded once). */
static bool values_ok(const char *what, const bk_tensor *got, int nd, const int64_t *shape,
                      const float *ref) {
    bk_tensor *want = bk_empty(nd, shape);
    if (!got || !want) {
        fprintf(stderr, "  %s: no result (%s)\n", what, bk_last_error());
        return false;
    }
    bool same = got->ndim == nd;
    for (int i = 0; same && i < nd; i++) same = got->shape[i] == shape[i];
    if (!same) {
        char s1[128], s2[128];
        fprintf(stderr, "  %s: shape %s, want %s\n", what, bk_shape_str(got, s1, sizeof s1),
                bk_shape_str(want, s2, sizeof s2));
        return false;
    }
    memcpy(want->data, ref, sizeof(float) * (size_t)want->numel);
    return test_compare(what, got, want, 1e-5, 1e-6) <= 1;
}

/* Offset of the element of t that broadcasts to output index idx (nd dims). */
static int64_t bcast_off(const bk_tensor *t, int nd, const int64_t *idx) {
    int64_t off = 0;
    for (int i = 0; i < t->ndim; i++)
        if (t->shape[i] != 1) off += idx[i + nd - t->ndim] * t->stride[i];
    return off;
}

/* ---- the functions under gradcheck ----------------------------------------------------- */

typedef struct args { /* the non-tensor arguments of the op under test */
    int dim, dim1, nd, perm[BK_MAX_DIMS];
    bool keepdim;
    int64_t start, end, shape[BK_MAX_DIMS];
    float s;
} args;

#define FN(name, expr)                                             \
    static bk_tensor *name(bk_tensor *const *x, int n, void *ud) { \
        const args *p = ud;                                        \
        (void)p, (void)n;                                          \
        return (expr);                                             \
    }
/* the element-wise ops: one function per row of src/ops/elementwise_ops.h */
#define X_FN(name, ...) FN(f_##name, bk_##name(x[0], x[1]))
BK_BINARY_OPS(X_FN)
BK_COMPARE_OPS(X_FN)
#undef X_FN
#define X_FN(name, ...) FN(f_##name, bk_##name(x[0]))
BK_UNARY_OPS(X_FN)
#undef X_FN
#define X_FN(name, ...) FN(f_##name, bk_##name(x[0], p->s))
BK_SCALAR_OPS(X_FN)
#undef X_FN
FN(f_matmul, bk_matmul(x[0], x[1]))
FN(f_linear, bk_linear(x[0], x[1], n > 2 ? x[2] : NULL))
FN(f_sum, bk_sum(x[0]))
FN(f_mean, bk_mean(x[0]))
FN(f_max, bk_max(x[0]))
FN(f_sum_dim, bk_sum_dim(x[0], p->dim, p->keepdim))
FN(f_mean_dim, bk_mean_dim(x[0], p->dim, p->keepdim))
FN(f_max_dim, bk_max_dim(x[0], p->dim, p->keepdim))
FN(f_reshape, bk_reshape(x[0], p->nd, p->shape))
FN(f_flatten, bk_flatten(x[0], p->dim, p->dim1))
FN(f_transpose, bk_transpose(x[0], p->dim, p->dim1))
FN(f_permute, bk_permute(x[0], p->perm))
FN(f_concat, bk_concat(n, x, p->dim))
FN(f_slice, bk_slice(x[0], p->dim, p->start, p->end))
FN(f_select, bk_select(x[0], p->dim, p->start))
FN(f_clone, bk_clone(x[0]))
FN(f_mlp, bk_forward((bk_module *)ud, x[0]))
#undef FN

/* ---- element-wise ops: every row of src/ops/elementwise_ops.h --------------------------- */

/* A row's input domain: uniform in [lo, hi], or magnitudes there with random signs. */
typedef struct domain {
    float lo, hi;
    bool plus_minus;
} domain;
#define IN(lo, hi) \
    { lo, hi, false }
#define PLUS_MINUS(lo, hi) \
    { lo, hi, true }

static bk_tensor *leaf_in(shp s, domain d) {
    return d.plus_minus ? leaf_signed(s, d.lo, d.hi) : leaf(s, d.lo, d.hi);
}

/* the rows' references, in double */
#define X_REF(name, cost, fwd, grad, ref, ...) \
    static double r_##name(double x, double s) { return (void)x, (void)s, (ref); }
BK_UNARY_OPS(X_REF)
BK_SCALAR_OPS(X_REF)
#undef X_REF
#define X_REF(name, cost, fwd, grad_a, grad_b, ref, ...) \
    static double r_##name(double a, double b) { return (ref); }
BK_BINARY_OPS(X_REF)
#undef X_REF
#define X_REF(name, fwd, ref, ...) \
    static double r_##name(double a, double b) { return (ref); }
BK_COMPARE_OPS(X_REF)
#undef X_REF

/* ---- binary broadcasting ops ----------------------------------------------------------- */

typedef struct binary_row {
    const char *name;
    bk_gradcheck_fn fn;
    double (*ref)(double a, double b);
    domain a, b;
    bool differentiable;
} binary_row;

static const binary_row BINARY[] = {
#define X_ROW(name, cost, fwd, grad_a, grad_b, ref, a_dom, b_dom) \
    {#name, f_##name, r_##name, a_dom, b_dom, true},
    BK_BINARY_OPS(X_ROW)
#undef X_ROW
#define X_ROW(name, fwd, ref, a_dom, b_dom) {#name, f_##name, r_##name, a_dom, b_dom, false},
        BK_COMPARE_OPS(X_ROW)
#undef X_ROW
};

static void binary_case(const binary_row *r, shp sa, shp sb) {
    bk_tensor *a = leaf_in(sa, r->a), *b = leaf_in(sb, r->b);
    char what[256], s1[64], s2[64];
    snprintf(what, sizeof what, "%s %s with %s", r->name, bk_shape_str(a, s1, 64), bk_shape_str(b, s2, 64));
    /* the broadcast shape, by the rule, independently of the library */
    shp o = {a->ndim > b->ndim ? a->ndim : b->ndim, {0}};
    for (int i = 0; i < o.nd; i++) {
        int ia = i - (o.nd - a->ndim), ib = i - (o.nd - b->ndim);
        int64_t da = ia >= 0 ? a->shape[ia] : 1, db = ib >= 0 ? b->shape[ib] : 1;
        o.d[i] = da == 1 ? db : da;
    }
    int64_t n = numel_of(o.nd, o.d), idx[BK_MAX_DIMS];
    float *ref = malloc(sizeof(float) * (size_t)n);
    for (int64_t i = 0; i < n; i++) {
        unravel(i, o.nd, o.d, idx);
        ref[i] = (float)r->ref(a->data[bcast_off(a, o.nd, idx)], b->data[bcast_off(b, o.nd, idx)]);
    }
    bk_tensor *y = r->fn(&(bk_tensor *[]){a, b}[0], 2, NULL);
    CHECK(values_ok(what, y, o.nd, o.d, ref));
    free(ref);
    if (r->differentiable) GRADCHECK(what, r->fn, NULL, a, b);
    else CHECK(y && !y->requires_grad); /* a comparison records no gradient */
    bk_arena_reset(NULL);
}

static void check_binary(const char *name) {
    const binary_row *r = BINARY;
    while (strcmp(r->name, name)) r++; /* the table has every row */
    static const shp fixed[][2] = {
        {{3, {3, 1, 4}}, {2, {2, 4}}}, {{1, {1}}, {2, {2, 3}}}, {{0, {0}}, {3, {2, 1, 3}}},
        {{2, {2, 3}}, {0, {0}}},       {{0, {0}}, {0, {0}}},    {{4, {2, 1, 3, 1}}, {3, {4, 1, 2}}},
        {{2, {2, 3}}, {2, {2, 3}}},    {{2, {4, 1}}, {1, {3}}},
    };
    for (size_t i = 0; i < sizeof fixed / sizeof *fixed; i++) {
        binary_case(r, fixed[i][0], fixed[i][1]);
        binary_case(r, fixed[i][1], fixed[i][0]);
    }
    for (int t = 0; t < TRIALS; t++) {
        shp a, b;
        rand_bcast_pair(&a, &b);
        binary_case(r, a, b);
    }
}

#define X_TEST(name, ...) \
    TEST(op_##name) { check_binary(#name); }
BK_BINARY_OPS(X_TEST)
BK_COMPARE_OPS(X_TEST)
#undef X_TEST

/* ---- unary and scalar ops -------------------------------------------------------------- */

typedef struct unary_row {
    const char *name;
    bk_gradcheck_fn fn;
    double (*ref)(double x, double s);
    domain x, s; /* s: the scalar argument's */
} unary_row;

static const unary_row UNARY[] = {
#define X_ROW(name, cost, fwd, grad, ref, x_dom) {#name, f_##name, r_##name, x_dom, IN(0, 0)},
    BK_UNARY_OPS(X_ROW)
#undef X_ROW
#define X_ROW(name, cost, fwd, grad, ref, x_dom, s_dom) {#name, f_##name, r_##name, x_dom, s_dom},
        BK_SCALAR_OPS(X_ROW)
#undef X_ROW
};

static void check_unary(const char *name) {
    const unary_row *u = UNARY;
    while (strcmp(u->name, name)) u++; /* the table has every row */
    for (int t = 0; t < TRIALS + 2; t++) {
        shp s = t == 0 ? (shp){0, {0}} : rand_shape(0, 4); /* always one scalar */
        bk_tensor *x = leaf_in(s, u->x);
        args p = {0};
        p.s = rand_float(u->s.lo, u->s.hi);
        if (u->s.plus_minus && rand_int(0, 1)) p.s = -p.s;
        char what[160], sh[64];
        snprintf(what, sizeof what, "%s %s (s = %g)", u->name, bk_shape_str(x, sh, 64), (double)p.s);
        float *ref = malloc(sizeof(float) * (size_t)(x->numel + 1));
        for (int64_t i = 0; i < x->numel; i++) ref[i] = (float)u->ref(x->data[i], p.s);
        CHECK(values_ok(what, u->fn(&x, 1, &p), x->ndim, x->shape, ref));
        free(ref);
        GRADCHECK(what, u->fn, &p, x);
        bk_arena_reset(NULL);
    }
}

#define X_TEST(name, ...) \
    TEST(op_##name) { check_unary(#name); }
BK_UNARY_OPS(X_TEST)
BK_SCALAR_OPS(X_TEST)
#undef X_TEST

/* ReLU on the values where "max(x, 0)" is ambiguous, against what torch 1.13 prints:
 *   x = tensor([nan, -0., 0., -1., 2., inf, -inf], requires_grad=True); y = torch.relu(x)
 *   y -> [nan, -0., 0., 0., 2., inf, 0.]
 *   y.backward(tensor([1., 2., 3., nan, 5., 6., inf])); x.grad -> [1., 0., 0., 0., 5., 6., 0.]
 * NaN propagates (y = x < 0 ? 0 : x), and the gradient passes where y > 0 or y is NaN and
 * is exactly 0 elsewhere, even where the upstream gradient is NaN or infinite. */
TEST(op_relu_nan_and_signed_zero) {
    const float x_in[7] = {NAN, -0.0f, 0.0f, -1.0f, 2.0f, INFINITY, -INFINITY};
    const float g_in[7] = {1.0f, 2.0f, 3.0f, NAN, 5.0f, 6.0f, INFINITY};
    const float want_y[7] = {NAN, -0.0f, 0.0f, 0.0f, 2.0f, INFINITY, 0.0f};
    const float want_dx[7] = {1.0f, 0.0f, 0.0f, 0.0f, 5.0f, 6.0f, 0.0f};
    bk_tensor *x = bk_requires_grad(bk_from_data(BK_SHAPE(7), x_in), true);
    bk_tensor *y = bk_relu(x);
    CHECK(y != NULL);
    if (!y) return;
    for (int i = 0; i < 7; i++) { /* bit for bit: NaN is NaN, the zeros keep their sign */
        bool same = isnan(want_y[i]) ? isnan(y->data[i])
                                     : memcmp(&y->data[i], &want_y[i], sizeof(float)) == 0;
        if (!same)
            fprintf(stderr, "  relu(%g) = %g, want %g\n", (double)x_in[i], (double)y->data[i],
                    (double)want_y[i]);
        CHECK(same);
    }
    CHECK(bk_backward_ex(y, bk_from_data(BK_SHAPE(7), g_in), false) == 0);
    CHECK(x->grad != NULL);
    for (int i = 0; x->grad && i < 7; i++) {
        if (x->grad->data[i] != want_dx[i])
            fprintf(stderr, "  relu'(%g) * %g = %g, want %g\n", (double)x_in[i], (double)g_in[i],
                    (double)x->grad->data[i], (double)want_dx[i]);
        CHECK(x->grad->data[i] == want_dx[i]);
    }
}

/* ---- matmul and linear ------------------------------------------------------------------ */

/* torch.matmul in double: 1-d operands promoted, batch dims broadcast. */
static void matmul_case(shp sa, shp sb) {
    bk_tensor *a = leaf(sa, -1, 1), *b = leaf(sb, -1, 1);
    char what[256], s1[64], s2[64];
    snprintf(what, sizeof what, "matmul %s @ %s", bk_shape_str(a, s1, 64), bk_shape_str(b, s2, 64));
    /* promoted shapes pa (..., M, K), pb (..., K, N) */
    shp pa = sa, pb = sb;
    if (sa.nd == 1) pa = (shp){2, {1, sa.d[0]}};
    if (sb.nd == 1) pb = (shp){2, {sb.d[0], 1}};
    int64_t M = pa.d[pa.nd - 2], K = pa.d[pa.nd - 1], N = pb.d[pb.nd - 1];
    int bn = (pa.nd > pb.nd ? pa.nd : pb.nd) - 2;
    shp out = {0, {0}}; /* final shape, promoted dims dropped */
    int64_t bshape[BK_MAX_DIMS];
    for (int i = 0; i < bn; i++) {
        int ia = i - (bn - (pa.nd - 2)), ib = i - (bn - (pb.nd - 2));
        int64_t da = ia >= 0 ? pa.d[ia] : 1, db = ib >= 0 ? pb.d[ib] : 1;
        bshape[i] = out.d[out.nd++] = da == 1 ? db : da;
    }
    if (sa.nd != 1) out.d[out.nd++] = M;
    if (sb.nd != 1) out.d[out.nd++] = N;
    int64_t nbatch = numel_of(bn, bshape), idx[BK_MAX_DIMS];
    float *ref = malloc(sizeof(float) * (size_t)(nbatch * M * N + 1));
    for (int64_t bi = 0; bi < nbatch; bi++) {
        unravel(bi, bn, bshape, idx);
        int64_t oa = 0, ob = 0, st_a = M * K, st_b = K * N; /* contiguous batch strides */
        for (int i = pa.nd - 3; i >= 0; i--, st_a *= pa.d[i + 1])
            if (pa.d[i] != 1) oa += idx[i + bn - (pa.nd - 2)] * st_a;
        for (int i = pb.nd - 3; i >= 0; i--, st_b *= pb.d[i + 1])
            if (pb.d[i] != 1) ob += idx[i + bn - (pb.nd - 2)] * st_b;
        for (int64_t m = 0; m < M; m++)
            for (int64_t j = 0; j < N; j++) {
                double acc = 0;
                for (int64_t k = 0; k < K; k++)
                    acc += (double)a->data[oa + m * K + k] * b->data[ob + k * N + j];
                ref[(bi * M + m) * N + j] = (float)acc;
            }
    }
    CHECK(values_ok(what, bk_matmul(a, b), out.nd, out.d, ref));
    free(ref);
    GRADCHECK(what, f_matmul, NULL, a, b);
    bk_arena_reset(NULL);
}

TEST(op_matmul) {
    static const shp fixed[][2] = {
        {{2, {3, 4}}, {2, {4, 5}}},
        {{3, {2, 3, 4}}, {3, {2, 4, 5}}},
        {{4, {2, 3, 3, 4}}, {4, {2, 3, 4, 2}}},
        {{4, {2, 1, 4, 5}}, {3, {3, 5, 2}}},
        {{1, {4}}, {2, {4, 3}}},
        {{2, {3, 4}}, {1, {4}}},
        {{1, {4}}, {1, {4}}},
        {{1, {4}}, {3, {2, 4, 3}}},
        {{3, {2, 3, 4}}, {1, {4}}},
        {{2, {1, 4}}, {2, {4, 1}}},
        {{3, {1, 2, 3}}, {4, {2, 2, 3, 2}}},
    };
    for (size_t i = 0; i < sizeof fixed / sizeof *fixed; i++) matmul_case(fixed[i][0], fixed[i][1]);
    for (int t = 0; t < 2 * TRIALS; t++) { /* random broadcast batch dims, 1-d operands */
        shp ba, bb, a, b;
        rand_bcast_pair(&ba, &bb);
        keep_trailing(&ba, 2); /* batch dims; with M, K / K, N the rank is <= 4 */
        keep_trailing(&bb, 2);
        int64_t M = rand_int(1, 4), K = rand_int(1, 5), N = rand_int(1, 4);
        a = ba, b = bb;
        if (rand_int(0, 3) == 0) a = (shp){1, {K}};
        else a.d[a.nd++] = M, a.d[a.nd++] = K;
        if (rand_int(0, 3) == 0) b = (shp){1, {K}};
        else b.d[b.nd++] = K, b.d[b.nd++] = N;
        matmul_case(a, b);
    }
}

static void linear_case(shp sx, int64_t out, bool bias) {
    int64_t in = sx.d[sx.nd - 1];
    bk_tensor *x = leaf(sx, -1, 1), *w = leaf((shp){2, {out, in}}, -1, 1);
    bk_tensor *b = bias ? leaf((shp){1, {out}}, -1, 1) : NULL;
    char what[160], s1[64];
    snprintf(what, sizeof what, "linear x %s, w (%lld, %lld), %s", bk_shape_str(x, s1, 64), (long long)out,
             (long long)in, bias ? "bias" : "no bias");
    int64_t rows = x->numel / in;
    shp so = sx;
    so.d[so.nd - 1] = out;
    float *ref = malloc(sizeof(float) * (size_t)(rows * out));
    for (int64_t r = 0; r < rows; r++)
        for (int64_t o = 0; o < out; o++) {
            double acc = bias ? b->data[o] : 0;
            for (int64_t i = 0; i < in; i++) acc += (double)x->data[r * in + i] * w->data[o * in + i];
            ref[r * out + o] = (float)acc;
        }
    CHECK(values_ok(what, bk_linear(x, w, b), so.nd, so.d, ref));
    free(ref);
    if (bias) GRADCHECK(what, f_linear, NULL, x, w, b);
    else GRADCHECK(what, f_linear, NULL, x, w);
    bk_arena_reset(NULL);
}

TEST(op_linear) {
    for (int bias = 0; bias <= 1; bias++) {
        linear_case((shp){2, {3, 5}}, 4, bias);
        linear_case((shp){3, {2, 3, 5}}, 4, bias);
        linear_case((shp){1, {5}}, 2, bias);
        for (int t = 0; t < TRIALS; t++) {
            shp s = rand_shape(1, 4);
            s.d[s.nd - 1] = rand_int(1, 5);
            linear_case(s, rand_int(1, 4), bias);
        }
    }
}

/* ---- reductions ------------------------------------------------------------------------- */

typedef enum { R_SUM, R_MEAN, R_MAX } rkind;

/* Reference of a reduction over dim d (all elements when d < 0) of x. */
static float *ref_reduce(rkind k, const bk_tensor *x, int d) {
    int64_t outer = 1, n = x->numel, inner = 1;
    if (d >= 0) {
        n = x->shape[d];
        for (int i = 0; i < d; i++) outer *= x->shape[i];
        for (int i = d + 1; i < x->ndim; i++) inner *= x->shape[i];
    }
    float *r = malloc(sizeof(float) * (size_t)(outer * inner));
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0; i < inner; i++) {
            double acc = k == R_MAX ? -INFINITY : 0;
            for (int64_t j = 0; j < n; j++) {
                double v = x->data[(o * n + j) * inner + i];
                acc = k == R_MAX ? (v > acc ? v : acc) : acc + v;
            }
            r[o * inner + i] = (float)(k == R_MEAN ? acc / (double)n : acc);
        }
    return r;
}

static void check_reduce_all(rkind k, bk_gradcheck_fn fn, const char *name) {
    for (int t = 0; t < TRIALS + 2; t++) {
        shp s = t == 0 ? (shp){0, {0}} : rand_shape(0, 4);
        bk_tensor *x = k == R_MAX ? leaf_distinct(s) : leaf(s, -1, 1);
        char what[128], sh[64];
        snprintf(what, sizeof what, "%s %s", name, bk_shape_str(x, sh, 64));
        float *ref = ref_reduce(k, x, -1);
        CHECK(values_ok(what, fn(&x, 1, NULL), 0, NULL, ref));
        free(ref);
        GRADCHECK(what, fn, NULL, x);
        bk_arena_reset(NULL);
    }
}

/* Every dim of a random rank-1..4 tensor, given positive and negative, keepdim both ways. */
static void check_reduce_dim(rkind k, bk_gradcheck_fn fn, const char *name) {
    for (int t = 0; t < TRIALS; t++) {
        shp s = rand_shape(1, 4);
        bk_tensor *x = k == R_MAX ? leaf_distinct(s) : leaf(s, -1, 1);
        for (int d = 0; d < s.nd; d++) {
            float *ref = ref_reduce(k, x, d);
            for (int v = 0; v < 4; v++) {
                args p = {0};
                p.dim = v & 1 ? d - s.nd : d;
                p.keepdim = v & 2;
                shp o = {0, {0}};
                for (int i = 0; i < s.nd; i++)
                    if (i != d) o.d[o.nd++] = s.d[i];
                    else if (p.keepdim) o.d[o.nd++] = 1;
                char what[160], sh[64];
                snprintf(what, sizeof what, "%s %s dim %d keepdim %d", name, bk_shape_str(x, sh, 64), p.dim,
                         p.keepdim);
                CHECK(values_ok(what, fn(&x, 1, &p), o.nd, o.d, ref));
                GRADCHECK(what, fn, &p, x);
            }
            free(ref);
        }
        bk_arena_reset(NULL);
    }
}

TEST(op_sum) { check_reduce_all(R_SUM, f_sum, "sum"); }
TEST(op_mean) { check_reduce_all(R_MEAN, f_mean, "mean"); }
TEST(op_max) { check_reduce_all(R_MAX, f_max, "max"); }
TEST(op_sum_dim) { check_reduce_dim(R_SUM, f_sum_dim, "sum_dim"); }
TEST(op_mean_dim) { check_reduce_dim(R_MEAN, f_mean_dim, "mean_dim"); }
TEST(op_max_dim) { check_reduce_dim(R_MAX, f_max_dim, "max_dim"); }

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

TEST(op_slice) {
    for (int t = 0; t < 2 * TRIALS; t++) {
        bk_tensor *x = leaf(rand_shape(1, 4), -1, 1);
        args p = {0};
        p.dim = rand_axis(x->ndim);
        args q = p;
        q.dim = (p.dim + x->ndim) % x->ndim;
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
        bk_tensor *x = leaf(rand_shape(1, 4), -1, 1);
        args p = {0};
        p.dim = rand_axis(x->ndim);
        args q = p;
        q.dim = (p.dim + x->ndim) % x->ndim;
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

/* ---- a whole block: Linear, Tanh, Linear, Sigmoid, w.r.t. its input and every parameter --- */

TEST(mlp_block) {
    bk_module *net = bk_nn_sequential(4, bk_nn_linear(5, 7), bk_nn_tanh(), bk_nn_linear(7, 3),
                                      bk_nn_sigmoid());
    bk_param_list *pl = bk_module_named(net, BK_PARAMS);
    CHECK(net && pl && pl->n == 4);
    if (!net || !pl || pl->n != 4) goto out;
    for (int t = 0; t < 2; t++) {
        shp s = t == 0 ? (shp){2, {4, 5}} : (shp){3, {2, rand_int(1, 3), 5}};
        bk_tensor *in[5] = {leaf(s, -2, 2)};
        for (int i = 0; i < pl->n; i++) in[1 + i] = pl->tensors[i];
        for (int i = 0; i < 5; i++) CHECK(in[i] && in[i]->requires_grad);
        /* stale gradients must not matter: gradcheck zeroes the inputs' grads first */
        bk_tensor *y0 = bk_sum(bk_forward(net, in[0]));
        CHECK(bk_backward(y0) == 0);
        CHECK(gradcheck_ok(t == 0 ? "mlp (4, 5)" : "mlp 3-d", f_mlp, in, 5, net));
        bk_arena_reset(NULL);
    }
out:
    bk_param_list_free(pl);
    bk_module_free(net);
}

/* ---- main ---------------------------------------------------------------------------------- */

int main(void) {
    uint64_t seed = test_seed("test_ops");
    bk_rng_seed(&g_rng, seed);
    bk_manual_seed(seed);
    /* one RUN per op, so that a failure names it */
#define X_RUN(name, ...) RUN(op_##name);
    BK_BINARY_OPS(X_RUN)
    BK_COMPARE_OPS(X_RUN)
    BK_SCALAR_OPS(X_RUN)
    BK_UNARY_OPS(X_RUN)
#undef X_RUN
    RUN(op_matmul);
    RUN(op_linear);
    RUN(op_sum);
    RUN(op_mean);
    RUN(op_max);
    RUN(op_sum_dim);
    RUN(op_mean_dim);
    RUN(op_max_dim);
    RUN(op_reshape);
    RUN(op_flatten);
    RUN(op_transpose);
    RUN(op_permute);
    RUN(op_concat);
    RUN(op_relu_nan_and_signed_zero);
    RUN(op_slice);
    RUN(op_select);
    RUN(op_clone);
    RUN(op_detach);
    RUN(gradcheck_rejects_a_wrong_backward);
    RUN(mlp_block);
    return test_summary("test_ops");
}
