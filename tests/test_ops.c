/* test_ops.c - the element-wise, matmul and reduction ops of brick.h (the shape ops:
 * test_ops_shape.c): gradients against central differences, forward values
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

#include "op_cases.h"

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
    static double r_##name(double x, double s, double t) { return (void)x, (void)s, (void)t, (ref); }
BK_UNARY_OPS(X_REF)
BK_SCALAR_OPS(X_REF)
BK_SCALAR2_OPS(X_REF)
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
    double (*ref)(double x, double s, double t);
    domain x, s, t; /* s, t: the scalar arguments' */
} unary_row;

static const unary_row UNARY[] = {
#define X_ROW(name, cost, fwd, grad, ref, x_dom) {#name, f_##name, r_##name, x_dom, IN(0, 0), IN(0, 0)},
    BK_UNARY_OPS(X_ROW)
#undef X_ROW
#define X_ROW(name, cost, fwd, grad, ref, x_dom, s_dom) {#name, f_##name, r_##name, x_dom, s_dom, IN(0, 0)},
        BK_SCALAR_OPS(X_ROW)
#undef X_ROW
#define X_ROW(name, cost, fwd, grad, ref, x_dom, s_dom, t_dom) \
    {#name, f_##name, r_##name, x_dom, s_dom, t_dom},
            BK_SCALAR2_OPS(X_ROW)
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
        p.t = rand_float(u->t.lo, u->t.hi);
        if (u->t.plus_minus && rand_int(0, 1)) p.t = -p.t;
        char what[160], sh[64];
        snprintf(what, sizeof what, "%s %s (s = %g, t = %g)", u->name, bk_shape_str(x, sh, 64), (double)p.s,
                 (double)p.t);
        float *ref = malloc(sizeof(float) * (size_t)(x->numel + 1));
        for (int64_t i = 0; i < x->numel; i++) ref[i] = (float)u->ref(x->data[i], p.s, p.t);
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
BK_SCALAR2_OPS(X_TEST)
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
    test_rng_seed("test_ops");
    /* one RUN per op, so that a failure names it */
#define X_RUN(name, ...) RUN(op_##name);
    BK_BINARY_OPS(X_RUN)
    BK_COMPARE_OPS(X_RUN)
    BK_SCALAR_OPS(X_RUN)
    BK_SCALAR2_OPS(X_RUN)
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
    RUN(op_relu_nan_and_signed_zero);
    RUN(mlp_block);
    return test_summary("test_ops");
}
