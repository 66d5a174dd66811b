/* test_ops_norm_act.c - batch and layer norm, GELU, softmax and dropout of brick.h (split
 * from test_ops_cnn.c, which keeps conv2d and pooling): gradients against central
 * differences, forward values against naive references computed in double.
 *
 * Shapes, settings and values are drawn afresh each run from a PCG32 stream seeded from
 * $BRICK_TEST_SEED, else $BRICK_SEED (the seed `make test` prints), else the clock. The
 * seed is printed first; rerun a failure with BRICK_TEST_SEED=<seed>
 * build/tests/test_ops_norm_act.
 *
 * Gradient tolerances (bk_gradcheck), as in test_ops.c: eps = 1e-3, atol = 5e-3,
 * rtol = 1e-2. The forward runs in float32, so each evaluation of L = sum(f(x) * w) has a
 * rounding error of ~6e-8 |y| per output element touched by the perturbation; divided by
 * the step 2 eps that is ~3e-5 |y| per element, and the largest fan-out here (a batch-norm
 * input touches every output of its channel, up to ~100) stays below atol. Central
 * differences have a truncation error of eps^2 / 6 f''' here; inputs keep f''' = O(10)
 * (batch-norm channels with variance ~1, GELU and softmax on O(1) inputs).
 */
#include "test.h"
#include "gradcheck.h"
#include "internal.h" /* bk__batch_norm_act */
#include "op_refs.h"
#include "ops/fastmath.h"

#include <float.h>
#include <stdint.h>
#include <time.h>

/* ======================================================================================
 * Batch norm and layer norm
 * ====================================================================================== */

typedef struct norm_case {
    bk_tensor *running_mean, *running_var; /* batch norm */
    bool training;
    int n_norm_dims; /* layer norm */
} norm_case;

static bk_tensor *f_batch_norm(bk_tensor *const *in, int n, void *ud) {
    (void)n;
    norm_case *c = ud;
    return bk_batch_norm(in[0], c->running_mean, c->running_var, in[1], in[2], c->training, 0.1f, 1e-5f);
}

static bk_tensor *f_layer_norm(bk_tensor *const *in, int n, void *ud) {
    (void)n;
    return bk_layer_norm(in[0], ((norm_case *)ud)->n_norm_dims, in[1], in[2], 1e-5f);
}

/* The smallest variance over the groups of a norm: element e of group g is
 * x[(i * G + g) * S + e % S] for i < n / S (batch norm: G = C channels, S the spatial
 * size; layer norm: G = 1, S = D, groups are rows i). */
static double min_var(const bk_tensor *x, int64_t G, int64_t S, bool rows) {
    double worst = INFINITY;
    int64_t groups = rows ? x->numel / S : G, n = rows ? S : x->numel / G;
    for (int64_t g = 0; g < groups; g++) {
        double s = 0, ss = 0;
        for (int64_t e = 0; e < n; e++) {
            float v = rows ? x->data[g * S + e] : x->data[((e / S) * G + g) * S + e % S];
            s += v, ss += (double)v * v;
        }
        double var = ss / (double)n - (s / (double)n) * (s / (double)n);
        if (var < worst) worst = var;
    }
    return worst;
}

/* Draws x (N(mean, std^2)) until every group's variance is at least 0.1 std^2: a group
 * whose values nearly coincide makes (x - mean) / sqrt(var + eps) ill-conditioned (its
 * derivatives grow like var^-3/2, too fast for central differences). */
static bk_tensor *leaf_spread(int nd, const int64_t *shape, int64_t G, int64_t S, bool rows) {
    float mean = rand_float(-1, 1), std = rand_float(0.5f, 2);
    bk_tensor *x = leaf_normal(nd, shape, mean, std);
    for (int tries = 0; x && tries < 1000 && min_var(x, G, S, rows) < 0.1 * std * std; tries++)
        bk_fill_normal(x, &g_rng, mean, std);
    return x;
}

/* The rounding bound of a float32 normalisation y = (x - m) is w + b: x - m and the
 * products each round once, and m and is are float32 roundings of exact values, so
 * |y - exact| <= ~4 u (|x| + |m|) is |w| + 2 u |y| to first order. Loose for well-spread
 * groups, but it follows the conditioning of x - m when the group's values are close. */
static double norm_tol(double x, double m, double is, double w, double y) {
    return 8 * U32 * (fabs(x) + fabs(m)) * is * fabs(w) + 4 * U32 * fabs(y) + 1e-7;
}

/* (N, C), (N, C, L), (N, C, H, W) in training and eval mode: values (and the running
 * statistics' update) against double, then gradcheck of x, weight and bias. */
TEST(batch_norm) {
    for (int t = 0; t < 6; t++) {
        int nd = 2 + t % 3;
        bool training = t < 3;
        int64_t shape[4] = {rand_int(nd == 2 ? 3 : 2, 5), rand_int(1, 3), rand_int(2, 4), rand_int(2, 4)};
        int64_t C = shape[1];
        int64_t S = 1;
        for (int i = 2; i < nd; i++) S *= shape[i];
        bk_tensor *x = leaf_spread(nd, shape, C, S, false);
        bk_tensor *w = leaf_normal(1, &C, 1, 0.5f), *b = leaf_normal(1, &C, 0, 0.5f);
        norm_case c = {bk_tensor_new(1, &C), bk_tensor_new(1, &C), training, 0};
        for (int64_t i = 0; i < C; i++) {
            c.running_mean->data[i] = rand_float(-1, 1);
            c.running_var->data[i] = rand_float(0.5f, 1.5f);
        }
        float rm0[4], rv0[4];
        memcpy(rm0, c.running_mean->data, sizeof(float) * (size_t)C);
        memcpy(rv0, c.running_var->data, sizeof(float) * (size_t)C);
        char what[160], s[64];
        snprintf(what, sizeof what, "batch_norm %s %s", shape_s(x, s), training ? "train" : "eval");

        bk_tensor *y = f_batch_norm((bk_tensor *[]){x, w, b}, 3, &c);
        CHECK(y && bk_same_shape(y, x));
        if (!y) goto next;
        int64_t n = shape[0] * S;
        double *ry = calloc((size_t)x->numel, 8), *tol = calloc((size_t)x->numel, 8);
        for (int64_t ch = 0; ch < C; ch++) {
            double mean = 0, var = 0;
            for (int64_t i = 0; i < shape[0]; i++)
                for (int64_t k = 0; k < S; k++) mean += x->data[(i * C + ch) * S + k];
            mean /= (double)n;
            for (int64_t i = 0; i < shape[0]; i++)
                for (int64_t k = 0; k < S; k++) var += pow(x->data[(i * C + ch) * S + k] - mean, 2);
            var /= (double)n; /* biased, for normalising */
            double m = training ? mean : rm0[ch], v = training ? var : rv0[ch];
            for (int64_t i = 0; i < shape[0]; i++)
                for (int64_t k = 0; k < S; k++) {
                    int64_t j = (i * C + ch) * S + k;
                    ry[j] = (x->data[j] - m) / sqrt(v + 1e-5) * w->data[ch] + b->data[ch];
                    tol[j] = norm_tol(x->data[j], m, 1 / sqrt(v + 1e-5), w->data[ch], ry[j]);
                }
            /* running statistics: momentum 0.1, the variance unbiased; unchanged in eval */
            double want_rm = training ? 0.9 * rm0[ch] + 0.1 * mean : rm0[ch];
            double want_rv = training ? 0.9 * rv0[ch] + 0.1 * var * (double)n / (double)(n - 1) : rv0[ch];
            CHECK_CLOSE(c.running_mean->data[ch], want_rm, 1e-6 + 1e-6 * fabs(want_rm));
            CHECK_CLOSE(c.running_var->data[ch], want_rv, 1e-6 + 1e-6 * fabs(want_rv));
        }
        CHECK(within(what, y->data, ry, tol, x->numel));
        free(ry), free(tol);
        CHECK(gradcheck_ok(what, f_batch_norm, (bk_tensor *[]){x, w, b}, 3, &c));
    next:
        bk_tensor_free(c.running_mean);
        bk_tensor_free(c.running_var);
        bk_arena_reset(NULL);
    }
}

/* Over the last 1 and the last 2 dims: values against double, then gradcheck. */
TEST(layer_norm) {
    for (int t = 0; t < 2 * TRIALS; t++) {
        int k = 1 + t % 2, nd = k + (int)rand_int(1, 2);
        int64_t shape[4];
        for (int i = 0; i < nd; i++) shape[i] = rand_int(i < nd - k ? 1 : 2, 4);
        int64_t D = 1;
        for (int i = nd - k; i < nd; i++) D *= shape[i];
        bk_tensor *x = leaf_spread(nd, shape, 1, D, true);
        bk_tensor *w = leaf_normal(k, shape + nd - k, 1, 0.5f), *b = leaf_normal(k, shape + nd - k, 0, 0.5f);
        norm_case c = {NULL, NULL, true, k};
        char what[160], s[64];
        snprintf(what, sizeof what, "layer_norm %s over the last %d dims", shape_s(x, s), k);
        bk_tensor *y = f_layer_norm((bk_tensor *[]){x, w, b}, 3, &c);
        CHECK(y && bk_same_shape(y, x));
        if (!y) continue;
        int64_t R = x->numel / D;
        double *ry = calloc((size_t)x->numel, 8), *tol = calloc((size_t)x->numel, 8);
        for (int64_t r = 0; r < R; r++) {
            double mean = 0, var = 0;
            for (int64_t e = 0; e < D; e++) mean += x->data[r * D + e];
            mean /= (double)D;
            for (int64_t e = 0; e < D; e++) var += pow(x->data[r * D + e] - mean, 2);
            var /= (double)D;
            for (int64_t e = 0; e < D; e++) {
                ry[r * D + e] = (x->data[r * D + e] - mean) / sqrt(var + 1e-5) * w->data[e] + b->data[e];
                tol[r * D + e] = norm_tol(x->data[r * D + e], mean, 1 / sqrt(var + 1e-5), w->data[e],
                                          ry[r * D + e]);
            }
        }
        CHECK(within(what, y->data, ry, tol, x->numel));
        free(ry), free(tol);
        CHECK(gradcheck_ok(what, f_layer_norm, (bk_tensor *[]){x, w, b}, 3, &c));
        bk_arena_reset(NULL);
    }
}

/* ======================================================================================
 * GELU, softmax, log_softmax
 * ====================================================================================== */

static bk_tensor *f_gelu(bk_tensor *const *in, int n, void *ud) { return (void)n, (void)ud, bk_gelu(in[0]); }
static bk_tensor *f_gelu_tanh(bk_tensor *const *in, int n, void *ud) {
    return (void)n, (void)ud, bk_gelu_tanh(in[0]);
}

TEST(gelu) {
    for (int t = 0; t < TRIALS; t++) {
        int64_t shape[3] = {rand_int(1, 4), rand_int(1, 5), rand_int(1, 6)};
        bk_tensor *x = leaf_normal(3, shape, 0, 2);
        x->data[0] = 0.0f; /* the origin, where the exact form's derivative is 1/2 */
        for (int form = 0; form < 2; form++) {
            char what[160], s[64];
            snprintf(what, sizeof what, "gelu%s %s", form ? "_tanh" : "", shape_s(x, s));
            bk_tensor *y = form ? bk_gelu_tanh(x) : bk_gelu(x);
            CHECK(y && bk_same_shape(y, x));
            if (!y) continue;
            double *ry = calloc((size_t)x->numel, 8);
            for (int64_t i = 0; i < x->numel; i++) {
                double v = x->data[i];
                ry[i] = form ? 0.5 * v * (1 + tanh(0.79788456080286535588 * (v + 0.044715 * v * v * v)))
                             : 0.5 * v * (1 + erf(v / sqrt(2.0)));
            }
            /* atol: 1 + erf(v / sqrt 2) cancels for v < 0, so the float32 result of a
             * small output carries the absolute error of the O(1) terms (~|v| 6e-8) */
            CHECK(close_to(what, y->data, ry, x->numel, 1e-5, 1e-6));
            free(ry);
            CHECK(gradcheck_ok(what, form ? f_gelu_tanh : f_gelu, &x, 1, NULL));
        }
        bk_arena_reset(NULL);
    }
}

/* The vectorisable erf and exp behind GELU (src/ops/fastmath.h) against libm's double erf
 * and exp. The bounds are those the header states, measured on every finite float:
 * erf 1.43e-7 absolute (at 0.99974, the end of the small-|x| polynomial), exp 1.007 ulp.
 * Here: every 97th float of [-10, 10] (and the same negated), every float next to the
 * ends of the pieces (1 and 4), and the special values. */
static double erf_err(float x) { return fabs((double)bk__erff(x) - erf((double)x)); }

static float float_of_bits(uint32_t b) {
    float f;
    memcpy(&f, &b, sizeof f);
    return f;
}

static uint32_t bits_of_float(float f) {
    uint32_t b;
    memcpy(&b, &f, sizeof b);
    return b;
}

TEST(fast_erf_exp_accuracy) {
    double worst = 0;
    float worst_x = 0;
    for (uint32_t b = 0; b <= bits_of_float(10.0f); b += 97)
        for (int sign = 0; sign < 2; sign++) {
            float x = float_of_bits(b | (sign ? 0x80000000u : 0));
            if (erf_err(x) > worst) worst = erf_err(x), worst_x = x;
        }
    const float ends[] = {1.0f, 4.0f};
    for (int e = 0; e < 2; e++)
        for (uint32_t b = bits_of_float(ends[e]) - 50000; b <= bits_of_float(ends[e]) + 50000; b++)
            for (int sign = 0; sign < 2; sign++) {
                float x = float_of_bits(b | (sign ? 0x80000000u : 0));
                if (erf_err(x) > worst) worst = erf_err(x), worst_x = x;
            }
    if (worst > 1.5e-7) fprintf(stderr, "  erf: error %.3g at %.9g, bound 1.5e-7\n", worst, worst_x);
    CHECK(worst <= 1.5e-7);
    /* sign of zero, limits, NaN, subnormals (erf(x) = 2x / sqrt(pi) there), the extremes */
    CHECK(bk__erff(0.0f) == 0.0f && !signbit(bk__erff(0.0f)));
    CHECK(bk__erff(-0.0f) == 0.0f && signbit(bk__erff(-0.0f)));
    CHECK(bk__erff(INFINITY) == 1.0f && bk__erff(-INFINITY) == -1.0f);
    CHECK(bk__erff(FLT_MAX) == 1.0f && bk__erff(-FLT_MAX) == -1.0f);
    CHECK(isnan(bk__erff(NAN)) && isnan(bk__erff(-NAN)));
    const float tiny[] = {FLT_MIN, 1e-40f, 1e-45f, -1e-42f, -FLT_MIN};
    /* relative 2.2e-7 near 0: the minimax fit's leading coefficient is not quite 2/sqrt(pi) */
    for (int i = 0; i < 5; i++) CHECK(erf_err(tiny[i]) <= 3e-7 * fabs(tiny[i]) + 1e-45);

    double worst_ulp = 0;
    for (uint32_t b = 0x80000000u; b <= bits_of_float(-87.3f); b += 13) { /* [-87.3, -0] */
        float x = float_of_bits(b);
        double ref = exp((double)x), ulp = ldexp(1.0, ilogb(ref) - 23);
        double e = fabs((double)bk__expf_nonpos(x) - ref) / ulp;
        if (e > worst_ulp) worst_ulp = e, worst_x = x;
    }
    if (worst_ulp > 1.01) fprintf(stderr, "  exp: error %.4g ulp at %.9g\n", worst_ulp, worst_x);
    CHECK(worst_ulp <= 1.01);
    CHECK(bk__expf_nonpos(0.0f) == 1.0f && bk__expf_nonpos(-0.0f) == 1.0f);
    CHECK(bk__expf_nonpos(-87.4f) == 0.0f && bk__expf_nonpos(-1000.0f) == 0.0f);
    CHECK(bk__expf_nonpos(-INFINITY) == 0.0f && isnan(bk__expf_nonpos(NAN)));
}

/* GELU and its gradient on a dense grid against double, with the float evaluation's error
 * as the bound: y = x Phi(x) carries |x| times Phi's error (half the erf bound, plus the
 * rounding of x / sqrt 2 and of the sum, ~1.5e-7 in all) and the product's rounding
 * (2 ulp of y); dy/dx = Phi(x) + x phi(x) has Phi's error plus 1 ulp of phi and the
 * roundings of the products and the sum (~2.5e-7 when the two terms are O(1)). Then the
 * special values, which must match what torch 1.13 gives: gelu(+-inf) = +inf, NaN (as
 * -inf * 0), gelu(NaN) = NaN. */
TEST(gelu_dense_vs_double) {
    const int64_t n = 40001;
    bk_tensor *x = bk_requires_grad(bk_empty(1, &n), true);
    CHECK(x != NULL);
    if (!x) return;
    for (int64_t i = 0; i < n; i++) x->data[i] = -10.0f + 20.0f * (float)i / (float)(n - 1);
    bk_tensor *y = bk_gelu(x);
    CHECK(y && bk_backward_ex(y, bk_ones(1, &n), false) == 0 && x->grad);
    if (!y || !x->grad) return;
    double worst_y = 0, worst_g = 0;
    for (int64_t i = 0; i < n; i++) {
        double v = x->data[i], phi_cdf = 0.5 * erfc(-v / sqrt(2.0));
        double ry = v * phi_cdf, rg = phi_cdf + v * exp(-0.5 * v * v) * 0.39894228040143267794;
        double ey = fabs(y->data[i] - ry) / (1.5e-7 * fabs(v) + 2 * U32 * fabs(ry) + 1e-30);
        double eg = fabs(x->grad->data[i] - rg) / 2.5e-7;
        if (ey > worst_y) worst_y = ey;
        if (eg > worst_g) worst_g = eg;
    }
    if (worst_y > 1 || worst_g > 1)
        fprintf(stderr, "  gelu: worst scaled error %.3g (forward), %.3g (backward)\n", worst_y, worst_g);
    CHECK(worst_y <= 1 && worst_g <= 1);

    const int64_t four = 4;
    bk_tensor *s = bk_requires_grad(bk_empty(1, &four), true);
    if (!s) return;
    s->data[0] = INFINITY, s->data[1] = -INFINITY, s->data[2] = NAN, s->data[3] = -0.0f;
    bk_tensor *ys = bk_gelu(s);
    CHECK(ys && bk_backward_ex(ys, bk_ones(1, &four), false) == 0 && s->grad);
    if (!ys || !s->grad) return;
    CHECK(ys->data[0] == INFINITY && isnan(ys->data[1]) && isnan(ys->data[2]) && ys->data[3] == 0.0f);
    CHECK(isnan(s->grad->data[0]) && isnan(s->grad->data[2]) && s->grad->data[3] == 0.5f);
    bk_arena_reset(NULL);
}

typedef struct sm_case {
    int dim;
    bool log;
} sm_case;

static bk_tensor *f_softmax(bk_tensor *const *in, int n, void *ud) {
    (void)n;
    const sm_case *c = ud;
    return c->log ? bk_log_softmax(in[0], c->dim) : bk_softmax(in[0], c->dim);
}

TEST(softmax_and_log_softmax) {
    for (int t = 0; t < 2 * TRIALS; t++) {
        int nd = (int)rand_int(1, 4);
        int64_t shape[4];
        for (int i = 0; i < nd; i++) shape[i] = rand_int(1, 4);
        sm_case c = {(int)rand_int(-nd, nd - 1), t % 2 == 1};
        bk_tensor *x = leaf_normal(nd, shape, 0, 2);
        char what[160], s[64];
        snprintf(what, sizeof what, "%s %s dim %d", c.log ? "log_softmax" : "softmax", shape_s(x, s), c.dim);
        bk_tensor *y = f_softmax(&x, 1, &c);
        CHECK(y && bk_same_shape(y, x));
        if (!y) continue;
        int d = c.dim < 0 ? c.dim + nd : c.dim;
        int64_t outer = 1, inner = 1, n = shape[d];
        for (int i = 0; i < d; i++) outer *= shape[i];
        for (int i = d + 1; i < nd; i++) inner *= shape[i];
        double *ry = calloc((size_t)x->numel, 8);
        for (int64_t o = 0; o < outer; o++)
            for (int64_t i = 0; i < inner; i++) {
                double z = 0;
                for (int64_t j = 0; j < n; j++) z += exp(x->data[(o * n + j) * inner + i]);
                for (int64_t j = 0; j < n; j++) {
                    int64_t k = (o * n + j) * inner + i;
                    ry[k] = c.log ? x->data[k] - log(z) : exp(x->data[k]) / z;
                }
            }
        CHECK(close_to(what, y->data, ry, x->numel, 1e-5, 1e-6));
        free(ry);
        CHECK(gradcheck_ok(what, f_softmax, &x, 1, &c));
        bk_arena_reset(NULL);
    }
}

/* ======================================================================================
 * Dropout: y = x * mask, so dL/dx = mask * dL/dy
 * ====================================================================================== */

typedef struct drop_case {
    float p;
    uint64_t seed;
} drop_case;

/* The same mask on every call (the generator is reseeded), as gradcheck needs. */
static bk_tensor *f_dropout(bk_tensor *const *in, int n, void *ud) {
    (void)n;
    const drop_case *c = ud;
    bk_rng rng;
    bk_rng_seed(&rng, c->seed);
    return bk_dropout(in[0], c->p, true, &rng);
}

TEST(dropout_gradient_is_the_mask) {
    static const float ps[] = {0.0f, 0.2f, 0.5f, 0.9f, 1.0f};
    for (int t = 0; t < (int)(sizeof ps / sizeof ps[0]); t++) {
        drop_case c = {ps[t], bk_rng_u32(&g_rng)};
        int64_t shape[3] = {rand_int(2, 5), rand_int(2, 6), rand_int(3, 7)};
        bk_tensor *x = leaf_normal(3, shape, 0, 1);
        for (int64_t i = 0; i < x->numel; i++)
            if (x->data[i] == 0.0f) x->data[i] = 1.0f; /* y / x recovers the mask */
        char what[160], s[64];
        snprintf(what, sizeof what, "dropout p=%g %s", (double)c.p, shape_s(x, s));
        bk_tensor *y = f_dropout(&x, 1, &c);
        CHECK(y && bk_same_shape(y, x));
        if (!y) continue;
        bk_tensor *G = bk_empty(3, shape);
        bk_fill_normal(G, &g_rng, 0, 1);
        CHECK(bk_backward_ex(y, G, false) == 0);
        float scale = c.p < 1.0f ? 1.0f / (1.0f - c.p) : 0.0f;
        int64_t bad = 0, kept = 0;
        for (int64_t i = 0; i < x->numel; i++) {
            float m = y->data[i] == 0.0f ? 0.0f : scale; /* the mask, read off the output */
            kept += m != 0.0f;
            bad += y->data[i] != x->data[i] * m;                   /* y = x * mask exactly */
            bad += !x->grad || x->grad->data[i] != G->data[i] * m; /* dx = dy * mask exactly */
        }
        if (bad)
            fprintf(stderr, "  %s: %lld values or gradients differ from the mask's\n", what, (long long)bad);
        CHECK(bad == 0);
        if (c.p == 0.0f) CHECK(kept == x->numel);
        if (c.p == 1.0f) CHECK(kept == 0);
        if (c.p == 0.5f) /* 126 .. 210 elements, so the kept fraction is 0.5 +- 5 sigma */
            CHECK(fabs((double)kept / (double)x->numel - 0.5) <= 5 * sqrt(0.25 / (double)x->numel));
        if (c.p > 0.0f && c.p < 1.0f) CHECK(gradcheck_ok(what, f_dropout, &x, 1, &c));
        /* eval mode: the identity */
        CHECK(bk_dropout(x, c.p, false, NULL) == x);
        bk_arena_reset(NULL);
    }
}

/* ---- batch norm fused with a residual and a ReLU ------------------------------------------- */

typedef struct fused_case {
    bk_tensor *running_mean, *running_var, *dy;
    bool training, residual, relu;
} fused_case;

/* relu(batch_norm(x) + r) as one op, or as the ops it fuses (fused = false); in[3] = r */
static bk_tensor *f_bn_act(bk_tensor *const *in, const fused_case *c, bool fused) {
    bk_tensor *r = c->residual ? in[3] : NULL;
    if (fused)
        return bk__batch_norm_act(in[0], c->running_mean, c->running_var, in[1], in[2], c->training, 0.1f,
                                  1e-5f, r, c->relu);
    bk_tensor *y = bk_batch_norm(in[0], c->running_mean, c->running_var, in[1], in[2], c->training, 0.1f,
                                 1e-5f);
    if (r) y = bk_add(y, r);
    return c->relu ? bk_relu(y) : y;
}

static bk_tensor *f_bn_act_fused(bk_tensor *const *in, int n, void *ud) {
    (void)n;
    return f_bn_act(in, ud, true);
}

static bool same_bits(const char *what, const char *part, const bk_tensor *a, const bk_tensor *b) {
    bool same = a && b && bk_same_shape(a, b) &&
                memcmp(a->data, b->data, sizeof(float) * (size_t)a->numel) == 0;
    if (!same) fprintf(stderr, "  %s: %s differs between the fused op and the ops it fuses\n", what, part);
    return same;
}

/* bk__batch_norm_act (every combination of residual and ReLU, training and eval) must give
 * the same bits as bk_relu(bk_add(bk_batch_norm(...), r)): output, running statistics and
 * every gradient, with fresh gradients and with gradients that already hold a value (two
 * backward passes), which take the fused backward's other paths. Then a gradcheck, with r
 * chosen so that no pre-activation is within 0.2 of the ReLU's kink. */
TEST(batch_norm_fused) {
    for (int t = 0; t < 8; t++) {
        int nd = 2 + t % 3;
        int64_t shape[4] = {rand_int(nd == 2 ? 3 : 2, 5), rand_int(1, 3), rand_int(2, 4), rand_int(2, 4)};
        int64_t C = shape[1], S = 1;
        for (int i = 2; i < nd; i++) S *= shape[i];
        bk_tensor *src[4] = {leaf_spread(nd, shape, C, S, false), leaf_normal(1, &C, 1, 0.5f),
                             leaf_normal(1, &C, 0, 0.5f), leaf_normal(nd, shape, 0, 1)};
        bk_tensor *dy = leaf_normal(nd, shape, 0, 1);
        fused_case c[2];
        bk_tensor *in[2][4]; /* heap copies: [0] through the fused op, [1] through the ops it fuses */
        for (int side = 0; side < 2; side++) {
            c[side] = (fused_case){bk_tensor_new(1, &C),
                                   bk_tensor_new(1, &C),
                                   dy,
                                   t < 4,
                                   t % 2 == 1,
                                   t % 4 >= 2};
            bk_fill(c[side].running_var, 1.0f);
            for (int i = 0; i < 4; i++) in[side][i] = bk_requires_grad(bk_tensor_clone_owned(src[i]), true);
        }
        char what[160], s[64];
        snprintf(what, sizeof what, "batch_norm%s%s %s %s", c[0].residual ? "_add" : "",
                 c[0].relu ? "_relu" : "", shape_s(src[0], s), c[0].training ? "train" : "eval");
        for (int pass = 0; pass < 2; pass++) { /* the second adds into the first's gradients */
            bk_tensor *y[2];
            for (int side = 0; side < 2; side++) {
                y[side] = f_bn_act(in[side], &c[side], side == 0);
                CHECK(y[side] && bk_backward_ex(y[side], dy, false) == 0);
            }
            CHECK(same_bits(what, "y", y[0], y[1]));
        }
        CHECK(same_bits(what, "running_mean", c[0].running_mean, c[1].running_mean));
        CHECK(same_bits(what, "running_var", c[0].running_var, c[1].running_var));
        static const char *const grad_name[4] = {"dx", "dweight", "dbias", "dresidual"};
        for (int i = 0; i < (c[0].residual ? 4 : 3); i++)
            CHECK(same_bits(what, grad_name[i], in[0][i]->grad, in[1][i]->grad));
        /* gradcheck in eval mode (training mode's statistics are checked by batch_norm) */
        c[0].training = false;
        if (c[0].residual) {
            bk_tensor *z = bk_batch_norm(in[0][0], c[0].running_mean, c[0].running_var, in[0][1], in[0][2],
                                         false, 0.1f, 1e-5f);
            for (int64_t i = 0; z && i < z->numel; i++)
                in[0][3]->data[i] = -z->data[i] + (rand_int(0, 1) ? 1.0f : -1.0f) * rand_float(0.2f, 1.0f);
        }
        if (!c[0].relu || c[0].residual)
            CHECK(gradcheck_ok(what, f_bn_act_fused, in[0], c[0].residual ? 4 : 3, &c[0]));
        for (int side = 0; side < 2; side++) {
            for (int i = 0; i < 4; i++) bk_tensor_free(in[side][i]);
            bk_tensor_free(c[side].running_mean);
            bk_tensor_free(c[side].running_var);
        }
        bk_arena_reset(NULL);
    }
}

/* ---- main ---------------------------------------------------------------------------------- */

int main(void) {
    test_rng_seed("test_ops_norm_act");
    RUN(batch_norm);
    RUN(batch_norm_fused);
    RUN(layer_norm);
    RUN(gelu);
    RUN(fast_erf_exp_accuracy);
    RUN(gelu_dense_vs_double);
    RUN(softmax_and_log_softmax);
    RUN(dropout_gradient_is_the_mask);
    return test_summary("test_ops_norm_act");
}
