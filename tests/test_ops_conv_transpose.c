/* test_ops_conv_transpose.c - conv_transpose2d, conv_transpose1d and conv1d of brick.h:
 * gradients against central differences, and conv_transpose2d's forward and backward
 * values against a naive reference in double.
 *
 * Settings (channels, groups, kernel, stride, padding, output_padding, dilation, image
 * size) and values are drawn afresh each run from a PCG32 stream seeded from
 * $BRICK_TEST_SEED, else $BRICK_SEED (the seed `make test` prints), else the clock; rerun a
 * failure with BRICK_TEST_SEED=<seed> build/tests/test_ops_conv_transpose.
 *
 * Gradient tolerances (bk_gradcheck), as in test_ops.c: eps = 1e-3, atol = 5e-3,
 * rtol = 1e-2; central differences are exact for these linear ops. Values: each element
 * within (terms + 2) u sum |terms| of the double reference, the classic bound for a
 * float32 sum of that many products in any order.
 */
#include "test.h"
#include "gradcheck.h"
#include "op_refs.h"

#include <stdint.h>

/* N = batch, C = in channels, O = out channels, g = groups, KH x KW kernel */
typedef struct convt_case {
    int64_t N, C, H, W, O, KH, KW, OH, OW;
    bk_conv_transpose2d_opts o;
    bool bias;
} convt_case;

/* Random settings: groups 1..3, 1..2 channels per group, kernel 1..3, stride 1..3,
 * padding 0..2 (kept below the output size), dilation 1..2, output_padding below stride or
 * dilation; height 1 when `one_d`. */
static convt_case rand_convt(bool one_d) {
    convt_case c;
    memset(&c, 0, sizeof c);
    int64_t g = rand_int(1, 3);
    c.o.groups = g;
    c.C = g * rand_int(1, 2), c.O = g * rand_int(1, 2), c.N = rand_int(1, 2);
    c.KH = one_d ? 1 : rand_int(1, 3), c.KW = rand_int(1, 3);
    c.H = one_d ? 1 : rand_int(1, 4), c.W = rand_int(1, 5);
    int64_t k[2] = {c.KH, c.KW}, in[2] = {c.H, c.W}, *out[2] = {&c.OH, &c.OW};
    for (int d = 0; d < 2; d++) {
        bool flat = one_d && d == 0;
        c.o.stride[d] = flat ? 1 : rand_int(1, 3);
        c.o.dilation[d] = flat ? 1 : rand_int(1, 2);
        int64_t opmax = (c.o.stride[d] > c.o.dilation[d] ? c.o.stride[d] : c.o.dilation[d]) - 1;
        c.o.output_padding[d] = rand_int(0, opmax);
        int64_t full = (in[d] - 1) * c.o.stride[d] + c.o.dilation[d] * (k[d] - 1) + c.o.output_padding[d] + 1;
        int64_t pmax = (full - 1) / 2 < 2 ? (full - 1) / 2 : 2;
        c.o.padding[d] = flat ? 0 : rand_int(0, pmax);
        *out[d] = full - 2 * c.o.padding[d];
    }
    c.bias = rand_int(0, 1);
    return c;
}

static void convt_desc(const convt_case *c, char *buf, size_t n) {
    snprintf(buf, n,
             "conv_transpose2d x (%lld, %lld, %lld, %lld) O %lld k (%lld, %lld) stride (%lld, %lld) "
             "padding (%lld, %lld) output_padding (%lld, %lld) dilation (%lld, %lld) groups %lld%s",
             (long long)c->N, (long long)c->C, (long long)c->H, (long long)c->W, (long long)c->O,
             (long long)c->KH, (long long)c->KW, (long long)c->o.stride[0], (long long)c->o.stride[1],
             (long long)c->o.padding[0], (long long)c->o.padding[1], (long long)c->o.output_padding[0],
             (long long)c->o.output_padding[1], (long long)c->o.dilation[0], (long long)c->o.dilation[1],
             (long long)c->o.groups, c->bias ? "" : " no bias");
}

/* x, w and (with bias) b, N(0, 1), 4-d; returns how many */
static int convt_inputs(const convt_case *c, bk_tensor **in) {
    in[0] = leaf_normal(4, (int64_t[]){c->N, c->C, c->H, c->W}, 0, 1);
    in[1] = leaf_normal(4, (int64_t[]){c->C, c->O / c->o.groups, c->KH, c->KW}, 0, 1);
    in[2] = c->bias ? leaf_normal(1, (int64_t[]){c->O}, 0, 1) : NULL;
    return c->bias ? 3 : 2;
}

static bk_tensor *f_convt2d(bk_tensor *const *in, int n, void *ud) {
    const convt_case *c = ud;
    return bk_conv_transpose2d(in[0], in[1], n > 2 ? in[2] : NULL, c->o);
}

/* the same case through the 1-d ops (height 1): inputs reshaped to (N, C, L) */
static bk_tensor *f_convt1d(bk_tensor *const *in, int n, void *ud) {
    const convt_case *c = ud;
    bk_conv_transpose1d_opts o = {c->o.stride[1], c->o.padding[1], c->o.output_padding[1], c->o.dilation[1],
                                  c->o.groups};
    return bk_conv_transpose1d(in[0], in[1], n > 2 ? in[2] : NULL, o);
}

static bk_tensor *f_conv1d(bk_tensor *const *in, int n, void *ud) {
    const convt_case *c = ud; /* conv1d reads the transposed case's output as its input */
    bk_conv1d_opts o = {c->o.stride[1], c->o.padding[1], c->o.dilation[1], c->o.groups};
    return bk_conv1d(in[0], in[1], n > 2 ? in[2] : NULL, o);
}

TEST(conv_transpose2d_gradcheck) {
    for (int t = 0; t < 2 * TRIALS; t++) {
        convt_case c = rand_convt(false);
        bk_tensor *in[3];
        int n = convt_inputs(&c, in);
        char what[320];
        convt_desc(&c, what, sizeof what);
        CHECK(gradcheck_ok(what, f_convt2d, in, n, &c));
        bk_arena_reset(NULL);
    }
}

TEST(conv1d_gradcheck) {
    for (int t = 0; t < 2 * TRIALS; t++) {
        convt_case c = rand_convt(true);
        char what[320];
        convt_desc(&c, what, sizeof what);
        bk_tensor *in[3] = {leaf_normal(3, (int64_t[]){c.N, c.C, c.W}, 0, 1),
                            leaf_normal(3, (int64_t[]){c.C, c.O / c.o.groups, c.KW}, 0, 1),
                            c.bias ? leaf_normal(1, (int64_t[]){c.O}, 0, 1) : NULL};
        CHECK(gradcheck_ok(what, f_convt1d, in, c.bias ? 3 : 2, &c));
        /* conv1d maps (N, O, OW) back to (N, C, W) with weights (C, O/g, K) as (out, in/g, K) */
        bk_tensor *in2[3] = {leaf_normal(3, (int64_t[]){c.N, c.O, c.OW}, 0, 1), in[1],
                             c.bias ? leaf_normal(1, (int64_t[]){c.C}, 0, 1) : NULL};
        CHECK(gradcheck_ok(what, f_conv1d, in2, c.bias ? 3 : 2, &c));
        bk_tensor *y = f_conv1d(in2, c.bias ? 3 : 2, &c);
        CHECK(y && y->ndim == 3 && y->shape[1] == c.C && y->shape[2] >= c.W);
        bk_arena_reset(NULL);
    }
}

/* y[n, o, oh, ow] = b[o] + sum x[n, c, h, w] w[c, o % Og, kh, kw] over the (c, h, w, kh, kw)
 * of o's group that land on (oh, ow); dx, dw, db for upstream G. Returns false if any
 * value is outside the rounding bound. */
static void check_convt_values(const convt_case *c) {
    char what[320];
    convt_desc(c, what, sizeof what);
    bk_tensor *in[3];
    convt_inputs(c, in);
    bk_tensor *y = bk_conv_transpose2d(in[0], in[1], c->bias ? in[2] : NULL, c->o);
    int64_t ys[4] = {c->N, c->O, c->OH, c->OW};
    CHECK(shape_is(y, 4, ys));
    if (!shape_is(y, 4, ys)) {
        fprintf(stderr, "  %s: wrong output (%s)\n", what, bk_last_error());
        return;
    }
    bk_tensor *G = bk_empty(4, ys);
    bk_fill_normal(G, &g_rng, 0, 1);
    CHECK(bk_backward_ex(y, G, false) == 0);
    int64_t ny = y->numel, nx = in[0]->numel, nw = in[1]->numel;
    double *r = calloc((size_t)(2 * (ny + nx + nw)), sizeof(double));
    CHECK(r != NULL);
    if (!r) return;
    double *ry = r, *ray = ry + ny, *rdx = ray + ny, *radx = rdx + nx, *rdw = radx + nx, *radw = rdw + nw;
    const float *x = in[0]->data, *w = in[1]->data, *g = G->data;
    int64_t Cg = c->C / c->o.groups, Og = c->O / c->o.groups;
    for (int64_t i = 0; i < ny; i++) {
        int64_t o = (i / (c->OH * c->OW)) % c->O;
        ry[i] = c->bias ? in[2]->data[o] : 0, ray[i] = fabs(ry[i]);
    }
    for (int64_t n = 0; n < c->N; n++)
        for (int64_t ci = 0; ci < c->C; ci++)
            for (int64_t oo = 0; oo < Og; oo++)
                for (int64_t h = 0; h < c->H; h++)
                    for (int64_t ww = 0; ww < c->W; ww++)
                        for (int64_t kh = 0; kh < c->KH; kh++)
                            for (int64_t kw = 0; kw < c->KW; kw++) {
                                int64_t oh = h * c->o.stride[0] - c->o.padding[0] + kh * c->o.dilation[0];
                                int64_t ow = ww * c->o.stride[1] - c->o.padding[1] + kw * c->o.dilation[1];
                                if (oh < 0 || oh >= c->OH || ow < 0 || ow >= c->OW) continue;
                                int64_t o = ci / Cg * Og + oo;
                                int64_t yi = ((n * c->O + o) * c->OH + oh) * c->OW + ow;
                                int64_t xi = ((n * c->C + ci) * c->H + h) * c->W + ww;
                                int64_t wi = ((ci * Og + oo) * c->KH + kh) * c->KW + kw;
                                ry[yi] += (double)x[xi] * w[wi], ray[yi] += fabs((double)x[xi] * w[wi]);
                                rdx[xi] += (double)g[yi] * w[wi], radx[xi] += fabs((double)g[yi] * w[wi]);
                                rdw[wi] += (double)g[yi] * x[xi], radw[wi] += fabs((double)g[yi] * x[xi]);
                            }
    const float *got[3] = {y->data, in[0]->grad ? in[0]->grad->data : NULL,
                           in[1]->grad ? in[1]->grad->data : NULL};
    const double *want[3] = {ry, rdx, rdw}, *abs_sum[3] = {ray, radx, radw};
    int64_t count[3] = {ny, nx, nw};
    int64_t terms[3] = {Cg * c->KH * c->KW + 1, Og * c->KH * c->KW, c->N * c->H * c->W};
    static const char *names[3] = {"output", "dx", "dw"};
    for (int k = 0; k < 3; k++) {
        CHECK(got[k] != NULL);
        int bad = 0;
        for (int64_t i = 0; got[k] && i < count[k]; i++) {
            double tol = (double)(terms[k] + 2) * U32 * abs_sum[k][i] + 1e-30;
            if (!(fabs(got[k][i] - want[k][i]) <= tol) && bad++ < 3)
                fprintf(stderr, "  %s: %s[%lld] got %.9g want %.9g (bound %.3g)\n", what, names[k],
                        (long long)i, (double)got[k][i], want[k][i], tol);
        }
        CHECK(bad == 0);
    }
    if (c->bias) { /* db[o] = sum of G over n and the output plane */
        CHECK(in[2]->grad != NULL);
        for (int64_t o = 0; in[2]->grad && o < c->O; o++) {
            double s = 0, a = 0;
            for (int64_t n = 0; n < c->N; n++)
                for (int64_t i = 0; i < c->OH * c->OW; i++) {
                    double v = g[(n * c->O + o) * c->OH * c->OW + i];
                    s += v, a += fabs(v);
                }
            CHECK(fabs(in[2]->grad->data[o] - s) <= (double)(c->N * c->OH * c->OW + 2) * U32 * a + 1e-30);
        }
    }
    free(r);
}

TEST(conv_transpose2d_values) {
    for (int t = 0; t < 4 * TRIALS; t++) {
        convt_case c = rand_convt(t % 4 == 3);
        check_convt_values(&c);
        bk_arena_reset(NULL);
    }
}

/* FNV-1a over the bits of the output and every input gradient */
static uint64_t result_hash(const bk_tensor *y, bk_tensor *const *in, int n) {
    uint64_t h = 1469598103934665603ull;
    const bk_tensor *ts[4] = {y, n > 0 ? in[0]->grad : NULL, n > 1 ? in[1]->grad : NULL,
                              n > 2 ? in[2]->grad : NULL};
    for (int k = 0; k < 4; k++)
        for (int64_t i = 0; ts[k] && i < ts[k]->numel; i++) {
            uint32_t u;
            memcpy(&u, &ts[k]->data[i], 4);
            h = (h ^ u) * 1099511628211ull;
        }
    return h;
}

/* The forward and backward give the same bits with 1, 2 and 3 threads (forward: images
 * split over the threads; backward: images in order, threads inside the GEMMs). Sizes large
 * enough for the GEMMs and the image loop to use every thread. */
TEST(conv_transpose2d_threads_bitwise) {
    convt_case c = {7, 12, 9, 11, 10, 3, 3, 0, 0, {{2, 2}, {1, 1}, {1, 1}, {1, 1}, 2}, true};
    c.OH = (c.H - 1) * 2 - 2 + 2 + 1 + 1, c.OW = (c.W - 1) * 2 - 2 + 2 + 1 + 1;
    bk_tensor *in[3] = {bk_tensor_new(BK_SHAPE(7, 12, 9, 11)), bk_tensor_new(BK_SHAPE(12, 5, 3, 3)),
                        bk_tensor_new(BK_SHAPE(10))};
    for (int i = 0; i < 3; i++) bk_fill_normal(in[i], &g_rng, 0, 1), bk_requires_grad(in[i], true);
    int saved = bk_get_num_threads();
    uint64_t first = 0;
    for (int threads = 1; threads <= 3; threads++) {
        bk_set_num_threads(threads);
        for (int i = 0; i < 3; i++)
            if (in[i]->grad) bk_fill(in[i]->grad, 0.0f);
        bk_tensor *y = f_convt2d(in, 3, &c);
        CHECK(y != NULL);
        if (!y) break;
        bk_tensor *G = bk_empty(y->ndim, y->shape);
        bk_rng gr;
        bk_rng_seed(&gr, 42);
        bk_fill_normal(G, &gr, 0, 1);
        CHECK(bk_backward_ex(y, G, false) == 0);
        uint64_t h = result_hash(y, in, 3);
        if (threads == 1) first = h;
        else CHECK(h == first);
        bk_arena_reset(NULL);
    }
    bk_set_num_threads(saved);
    for (int i = 0; i < 3; i++) bk_tensor_free(in[i]);
}

/* Bad settings: messages name the op, the settings and the shapes. */
TEST(conv_transpose2d_errors) {
    bk_tensor *x = bk_randn(BK_SHAPE(1, 2, 3, 3)), *w = bk_randn(BK_SHAPE(2, 3, 2, 2));
    bk_conv_transpose2d_opts o = BK_CONV_TRANSPOSE2D_DEFAULTS;
    o.output_padding[1] = 1;
    CHECK(bk_conv_transpose2d(x, w, NULL, o) == NULL);
    CHECK(strstr(bk_last_error(), "output_padding (0, 1)") != NULL);
    o = BK_CONV_TRANSPOSE2D_DEFAULTS;
    o.padding[0] = 3; /* output height (3 - 1) + 1 + 1 - 6 < 1 */
    CHECK(bk_conv_transpose2d(x, w, NULL, o) == NULL);
    CHECK(strstr(bk_last_error(), "no valid output size") != NULL);
    CHECK(bk_conv_transpose2d(bk_randn(BK_SHAPE(1, 4, 3, 3)), w, NULL, BK_CONV_TRANSPOSE2D_DEFAULTS) == NULL);
    CHECK(strstr(bk_last_error(), "(1, 4, 3, 3)") && strstr(bk_last_error(), "(2, 3, 2, 2)"));
    CHECK(bk_conv1d(x, w, NULL, BK_CONV1D_DEFAULTS) == NULL);
    CHECK(strstr(bk_last_error(), "conv1d: expected a 3-d input") != NULL);
    bk_tensor *x3 = bk_randn(BK_SHAPE(1, 2, 3)), *w3 = bk_randn(BK_SHAPE(4, 2, 5));
    CHECK(bk_conv1d(x3, w3, NULL, BK_CONV1D_DEFAULTS) == NULL);
    CHECK(strstr(bk_last_error(), "conv1d (as a height-1 2-d op): conv2d: kernel") != NULL);
    bk_arena_reset(NULL);
}

int main(void) {
    test_rng_seed("test_ops_conv_transpose");
    RUN(conv_transpose2d_gradcheck);
    RUN(conv1d_gradcheck);
    RUN(conv_transpose2d_values);
    RUN(conv_transpose2d_threads_bitwise);
    RUN(conv_transpose2d_errors);
    return test_summary("test_ops_conv_transpose");
}
