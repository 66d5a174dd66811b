/* test_ops_pool.c - the pooling ops of brick.h (max, average and adaptive average
 * pooling; split from test_ops_cnn.c, which keeps conv2d): gradients against central
 * differences, forward values against naive references computed in double.
 *
 * Settings (kernel, stride, padding, output sizes) and values are drawn afresh each run
 * from a PCG32 stream seeded from $BRICK_TEST_SEED, else $BRICK_SEED (the seed `make test`
 * prints), else the clock. The seed is printed first; rerun a failure with
 * BRICK_TEST_SEED=<seed> build/tests/test_ops_pool.
 *
 * Gradient tolerances (bk_gradcheck), as in test_ops.c: eps = 1e-3, atol = 5e-3,
 * rtol = 1e-2; central differences are exact for pooling (linear between kinks).
 *
 * Kinks: max pooling is not differentiable where two values of a window tie. Its
 * gradcheck uses distinct values 0.01 apart in random order, so no perturbation of 1e-3
 * changes a window's argmax; ties are tested on their own, exactly: the whole gradient
 * goes to the FIRST maximum of the window in row-major order, which is what PyTorch 1.13
 * does on the CPU (max_pool2d_ties_torch reproduces a case printed by torch).
 */
#include "test.h"
#include "gradcheck.h"
#include "op_refs.h"

#include <float.h>
#include <stdint.h>

/* Distinct values 0.01 apart in random order, so no window's max is tied even after
 * +-eps. */
static bk_tensor *leaf_distinct(int nd, const int64_t *shape) {
    bk_tensor *t = leaf_normal(nd, shape, 0, 1);
    if (!t) return NULL;
    for (int64_t i = 0; i < t->numel; i++) t->data[i] = 0.01f * (float)(i - t->numel / 2);
    for (int64_t i = t->numel - 1; i > 0; i--) { /* Fisher-Yates */
        int64_t j = rand_int(0, i);
        float tmp = t->data[i];
        t->data[i] = t->data[j], t->data[j] = tmp;
    }
    return t;
}

/* ======================================================================================
 * Pooling
 * ====================================================================================== */

typedef struct pool_case {
    bk_pool2d_opts o;
    int64_t out_h, out_w; /* adaptive */
} pool_case;

static bk_tensor *f_max_pool(bk_tensor *const *in, int n, void *ud) {
    (void)n;
    return bk_max_pool2d(in[0], ((const pool_case *)ud)->o);
}
static bk_tensor *f_avg_pool(bk_tensor *const *in, int n, void *ud) {
    (void)n;
    return bk_avg_pool2d(in[0], ((const pool_case *)ud)->o);
}
static bk_tensor *f_adaptive(bk_tensor *const *in, int n, void *ud) {
    (void)n;
    const pool_case *p = ud;
    return bk_adaptive_avg_pool2d(in[0], p->out_h, p->out_w);
}

/* kernel 1..4, stride 1..3, padding 0..kernel/2 per dim (k3 s2 p1, overlapping, when
 * overlap is set), and an input (N, C, H, W) at least as large as the kernel. */
static pool_case rand_pool(bool overlap, int64_t *shape) {
    pool_case p;
    memset(&p, 0, sizeof p);
    for (int d = 0; d < 2; d++) {
        p.o.kernel[d] = overlap ? 3 : rand_int(1, 4);
        p.o.stride[d] = overlap ? 2 : rand_int(1, 3);
        p.o.padding[d] = overlap ? 1 : rand_int(0, p.o.kernel[d] / 2);
    }
    shape[0] = rand_int(1, 2), shape[1] = rand_int(1, 3);
    shape[2] = p.o.kernel[0] + rand_int(0, 5), shape[3] = p.o.kernel[1] + rand_int(0, 5);
    return p;
}

static void pool_desc(const char *op, const pool_case *p, const bk_tensor *x, char *buf, size_t n) {
    char s[64];
    snprintf(buf, n, "%s %s kernel (%lld, %lld) stride (%lld, %lld) padding (%lld, %lld)", op, shape_s(x, s),
             (long long)p->o.kernel[0], (long long)p->o.kernel[1], (long long)p->o.stride[0],
             (long long)p->o.stride[1], (long long)p->o.padding[0], (long long)p->o.padding[1]);
}

/* Window [h0, h1) x [w0, w1) of output (oh, ow), clipped to the input, and torch's
 * count_include_pad divisor (the window clipped to the padded input). */
static void pool_window(const pool_case *p, int64_t H, int64_t W, int64_t oh, int64_t ow, int64_t *h0,
                        int64_t *h1, int64_t *w0, int64_t *w1, int64_t *count) {
    int64_t hs = oh * p->o.stride[0] - p->o.padding[0], ws = ow * p->o.stride[1] - p->o.padding[1];
    int64_t he = hs + p->o.kernel[0], we = ws + p->o.kernel[1];
    int64_t hp = he < H + p->o.padding[0] ? he : H + p->o.padding[0];
    int64_t wp = we < W + p->o.padding[1] ? we : W + p->o.padding[1];
    *count = (hp - hs) * (wp - ws);
    *h0 = hs > 0 ? hs : 0, *w0 = ws > 0 ? ws : 0;
    *h1 = he < H ? he : H, *w1 = we < W ? we : W;
}

static int64_t pool_out(int64_t in, int64_t k, int64_t s, int64_t pad) { return (in + 2 * pad - k) / s + 1; }

/* Max pooling by the rule "first maximum in row-major window order": values and the
 * gradient for upstream G, in double. */
static void max_pool_naive(const pool_case *p, const bk_tensor *x, const float *G, double *y, double *dx) {
    int64_t NC = x->shape[0] * x->shape[1], H = x->shape[2], W = x->shape[3];
    int64_t OH = pool_out(H, p->o.kernel[0], p->o.stride[0], p->o.padding[0]);
    int64_t OW = pool_out(W, p->o.kernel[1], p->o.stride[1], p->o.padding[1]);
    for (int64_t nc = 0; nc < NC; nc++)
        for (int64_t oh = 0; oh < OH; oh++)
            for (int64_t ow = 0; ow < OW; ow++) {
                int64_t h0, h1, w0, w1, cnt, at = -1;
                pool_window(p, H, W, oh, ow, &h0, &h1, &w0, &w1, &cnt);
                for (int64_t h = h0; h < h1; h++)
                    for (int64_t w = w0; w < w1; w++) {
                        int64_t i = (nc * H + h) * W + w;
                        if (at < 0 || x->data[i] > x->data[at]) at = i;
                    }
                int64_t o = (nc * OH + oh) * OW + ow;
                y[o] = x->data[at];
                if (G) dx[at] += G[o];
            }
}

TEST(max_pool2d_ties_torch) {
    /* torch 1.13, CPU:
     *   v = tensor([[3,1,3,0,3],[3,3,2,3,1],[0,3,1,1,3],[2,2,2,2,2],[3,0,3,0,3]]).reshape(1,1,5,5)
     *   y = F.max_pool2d(v, 3, 2, 1); (y * arange(1, 10).reshape(y.shape)).sum().backward()
     * y is all 3; v.grad below: each window's gradient goes to its first 3. */
    static const float v[25] = {3, 1, 3, 0, 3, 3, 3, 2, 3, 1, 0, 3, 1, 1, 3, 2, 2, 2, 2, 2, 3, 0, 3, 0, 3};
    static const float want_grad[25] = {1, 0, 2, 0, 3, 4, 5, 0, 6, 0, 0, 0, 0,
                                        0, 0, 0, 0, 0, 0, 0, 7, 0, 8, 0, 9};
    bk_pool2d_opts o = {{3, 3}, {2, 2}, {1, 1}};
    bk_tensor *x = bk_requires_grad(bk_from_data(BK_SHAPE(1, 1, 5, 5), v), true);
    bk_tensor *y = bk_max_pool2d(x, o);
    CHECK(shape_is(y, 4, (int64_t[]){1, 1, 3, 3}));
    if (!y) return;
    bk_tensor *up = bk_empty(BK_SHAPE(1, 1, 3, 3));
    for (int i = 0; i < 9; i++) {
        CHECK(y->data[i] == 3.0f);
        up->data[i] = (float)(i + 1);
    }
    CHECK(bk_backward_ex(y, up, false) == 0);
    CHECK(x->grad && memcmp(x->grad->data, want_grad, sizeof want_grad) == 0);
    if (x->grad && memcmp(x->grad->data, want_grad, sizeof want_grad) != 0)
        for (int i = 0; i < 25; i++)
            fprintf(stderr, "%g%s", (double)x->grad->data[i], i % 5 == 4 ? "\n" : " ");

    /* all equal (torch: x = ones(1,1,5,5); F.max_pool2d(x, 3, 2, 1).sum().backward()) */
    static const float want_ones[25] = {1, 1, 0, 1, 0, 1, 1, 0, 1, 0, 0, 0, 0,
                                        0, 0, 1, 1, 0, 1, 0, 0, 0, 0, 0, 0};
    bk_tensor *x1 = bk_requires_grad(bk_ones(BK_SHAPE(1, 1, 5, 5)), true);
    CHECK(bk_backward(bk_sum(bk_max_pool2d(x1, o))) == 0);
    CHECK(x1->grad && memcmp(x1->grad->data, want_ones, sizeof want_ones) == 0);

    /* -0.0 and 0.0 compare equal: torch gives [[1, 0], [0, 0]] for [[-0., 0.], [0., -0.]] */
    bk_tensor *z = bk_requires_grad(bk_from_data(BK_SHAPE(1, 1, 2, 2),
                                                 (const float[]){-0.0f, 0.0f, 0.0f, -0.0f}),
                                    true);
    CHECK(bk_backward(bk_sum(bk_max_pool2d(z, (bk_pool2d_opts){{2, 2}, {2, 2}, {0, 0}}))) == 0);
    CHECK(z->grad && z->grad->data[0] == 1 && z->grad->data[1] == 0 && z->grad->data[2] == 0 &&
          z->grad->data[3] == 0);
}

/* y = max_pool2d(x) (CHECKed), then its backward (CHECKed) for an upstream gradient *G of
 * y's shape: N(0, 1) from g_rng, or (exact) the integers 1..97, whose sums float32 holds
 * exactly. NULL when the forward failed. */
static bk_tensor *max_pool_fwd_bwd(const pool_case *p, bk_tensor *x, bool exact, bk_tensor **G) {
    bk_tensor *y = bk_max_pool2d(x, p->o);
    CHECK(y != NULL);
    if (!y) return NULL;
    *G = bk_empty(y->ndim, y->shape);
    if (exact)
        for (int64_t o = 0; o < y->numel; o++) (*G)->data[o] = (float)(o % 97 + 1);
    else bk_fill_normal(*G, &g_rng, 0, 1);
    CHECK(bk_backward_ex(y, *G, false) == 0);
    return y;
}

TEST(max_pool2d_ties_random) {
    /* values in {0, 1, 2}: ties in almost every window; overlapping k3 s2 p1 first */
    for (int t = 0; t < 2 * TRIALS; t++) {
        int64_t shape[4];
        pool_case p = rand_pool(t < TRIALS, shape);
        bk_tensor *x = leaf_normal(4, shape, 0, 1);
        for (int64_t i = 0; i < x->numel; i++) x->data[i] = (float)rand_int(0, 2);
        char what[256];
        pool_desc("max_pool2d ties", &p, x, what, sizeof what);
        bk_tensor *G, *y = max_pool_fwd_bwd(&p, x, false, &G);
        if (!y) continue;
        double *ry = calloc((size_t)y->numel, 8), *rdx = calloc((size_t)x->numel, 8);
        max_pool_naive(&p, x, G->data, ry, rdx);
        CHECK(close_to(what, y->data, ry, y->numel, 0, 0));
        /* each dx sums the few upstream values routed to it; the order may differ */
        CHECK(x->grad && close_to(what, x->grad->data, rdx, x->numel, 1e-6, 1e-6));
        free(ry), free(rdx);
        bk_arena_reset(NULL);
    }
}

/* The rule on every path of max_pool2d, on values that make it matter: from {-1, 0, 1,
 * -0, inf, -inf, NaN}, so that windows tie, hold several NaNs or are all -inf. The output
 * must be, bit for bit, the window's first maximum in row-major order, or its first NaN
 * (torch 1.13 takes the last NaN; brick keeps the first), and the whole gradient must go
 * to that element. k2 s2 p0 is LeNet's path, four windows at a time: output widths 4..11
 * cover whole groups of four and a partial last one; narrower ones take the general loop. */
TEST(max_pool2d_nan_inf_ties) {
    static const bk_pool2d_opts opts[] = {{{2, 2}, {2, 2}, {0, 0}},
                                          {{3, 3}, {2, 2}, {1, 1}},
                                          {{2, 2}, {1, 1}, {0, 0}},
                                          {{2, 3}, {2, 3}, {1, 1}}};
    static const float values[] = {-1.0f, 0.0f, 1.0f, -0.0f, INFINITY, -INFINITY, NAN};
    for (size_t k = 0; k < sizeof opts / sizeof *opts; k++)
        for (int t = 0; t < TRIALS; t++) {
            pool_case p;
            memset(&p, 0, sizeof p);
            p.o = opts[k];
            int64_t shape[4] = {rand_int(1, 2), rand_int(1, 3), rand_int(3, 12), rand_int(3, 23)};
            bk_tensor *x = leaf_normal(4, shape, 0, 1);
            /* mostly ties among -1, 0, 1; sometimes a special value; now and then an
             * all -inf or all NaN plane */
            int fill = (int)rand_int(0, 9);
            for (int64_t i = 0; i < x->numel; i++) {
                int64_t r = rand_int(0, 9);
                x->data[i] = fill == 0   ? -INFINITY
                             : fill == 1 ? NAN
                             : r < 6     ? values[r % 3]
                                         : values[rand_int(3, 6)];
            }
            char what[256];
            pool_desc("max_pool2d nan/inf/ties", &p, x, what, sizeof what);
            bk_tensor *G, *y = max_pool_fwd_bwd(&p, x, true, &G);
            if (!y) continue;
            int64_t NC = shape[0] * shape[1], H = shape[2], W = shape[3], OH = y->shape[2], OW = y->shape[3];
            float *rdx = calloc((size_t)x->numel, sizeof(float));
            int bad = 0;
            for (int64_t nc = 0; nc < NC; nc++)
                for (int64_t oh = 0; oh < OH; oh++)
                    for (int64_t ow = 0; ow < OW; ow++) {
                        int64_t h0, h1, w0, w1, cnt, at = -1;
                        pool_window(&p, H, W, oh, ow, &h0, &h1, &w0, &w1, &cnt);
                        for (int64_t h = h0; h < h1; h++)
                            for (int64_t w = w0; w < w1; w++) {
                                int64_t i = (nc * H + h) * W + w;
                                if (isnan(x->data[i])) {
                                    at = i;
                                    goto found;
                                }
                                if (at < 0 || x->data[i] > x->data[at]) at = i;
                            }
                    found:;
                        int64_t o = (nc * OH + oh) * OW + ow;
                        rdx[at] += G->data[o];
                        if (memcmp(&y->data[o], &x->data[at], sizeof(float)) != 0 && bad++ < 5)
                            fprintf(stderr, "    %s: y[%lld] = %g, want x[%lld] = %g\n", what, (long long)o,
                                    (double)y->data[o], (long long)at, (double)x->data[at]);
                    }
            CHECK(bad == 0);
            CHECK(x->grad && memcmp(x->grad->data, rdx, sizeof(float) * (size_t)x->numel) == 0);
            free(rdx);
            bk_arena_reset(NULL);
        }
}

TEST(max_pool2d_gradcheck) {
    for (int t = 0; t < 2 * TRIALS; t++) {
        int64_t shape[4];
        pool_case p = rand_pool(t < TRIALS, shape);
        bk_tensor *x = leaf_distinct(4, shape);
        char what[256];
        pool_desc("max_pool2d", &p, x, what, sizeof what);
        bk_tensor *y = bk_max_pool2d(x, p.o);
        double *ry = y ? calloc((size_t)y->numel, 8) : NULL;
        CHECK(y && ry);
        if (y && ry) {
            max_pool_naive(&p, x, NULL, ry, NULL);
            CHECK(close_to(what, y->data, ry, y->numel, 0, 0));
        }
        free(ry);
        CHECK(gradcheck_ok(what, f_max_pool, &x, 1, &p));
        bk_arena_reset(NULL);
    }
}

TEST(avg_pool2d) {
    for (int t = 0; t < 2 * TRIALS; t++) {
        int64_t shape[4];
        pool_case p = rand_pool(t < TRIALS, shape);
        bk_tensor *x = leaf_normal(4, shape, 0, 1);
        char what[256];
        pool_desc("avg_pool2d", &p, x, what, sizeof what);
        bk_tensor *y = bk_avg_pool2d(x, p.o);
        CHECK(y != NULL);
        if (!y) continue;
        int64_t NC = shape[0] * shape[1], H = shape[2], W = shape[3];
        int64_t OH = y->shape[2], OW = y->shape[3];
        CHECK(OH == pool_out(H, p.o.kernel[0], p.o.stride[0], p.o.padding[0]));
        CHECK(OW == pool_out(W, p.o.kernel[1], p.o.stride[1], p.o.padding[1]));
        double *ry = calloc((size_t)y->numel, 8);
        for (int64_t nc = 0; nc < NC; nc++) /* count_include_pad: divide by the padded window */
            for (int64_t oh = 0; oh < OH; oh++)
                for (int64_t ow = 0; ow < OW; ow++) {
                    int64_t h0, h1, w0, w1, cnt;
                    pool_window(&p, H, W, oh, ow, &h0, &h1, &w0, &w1, &cnt);
                    double s = 0;
                    for (int64_t h = h0; h < h1; h++)
                        for (int64_t w = w0; w < w1; w++) s += x->data[(nc * H + h) * W + w];
                    ry[(nc * OH + oh) * OW + ow] = s / (double)cnt;
                }
        CHECK(close_to(what, y->data, ry, y->numel, 1e-5, 1e-6));
        free(ry);
        CHECK(gradcheck_ok(what, f_avg_pool, &x, 1, &p));
        bk_arena_reset(NULL);
    }
}

TEST(adaptive_avg_pool2d) {
    /* sizes that do not divide the input (7 -> 3, 5 -> 2), the identity, 1 x 1, and more
     * outputs than inputs (overlapping windows) */
    static const int64_t fixed[][4] = {{7, 7, 3, 3}, {5, 7, 2, 3}, {4, 4, 4, 4}, {6, 5, 1, 1}, {3, 3, 5, 4}};
    int nfixed = (int)(sizeof fixed / sizeof fixed[0]);
    for (int t = 0; t < nfixed + TRIALS; t++) {
        int64_t H = t < nfixed ? fixed[t][0] : rand_int(1, 9), W = t < nfixed ? fixed[t][1] : rand_int(1, 9);
        pool_case p;
        memset(&p, 0, sizeof p);
        p.out_h = t < nfixed ? fixed[t][2] : rand_int(1, H + 2);
        p.out_w = t < nfixed ? fixed[t][3] : rand_int(1, W + 2);
        bk_tensor *x = leaf_normal(4, (int64_t[]){rand_int(1, 2), rand_int(1, 3), H, W}, 0, 1);
        char what[256], s[64];
        snprintf(what, sizeof what, "adaptive_avg_pool2d %s -> (%lld, %lld)", shape_s(x, s),
                 (long long)p.out_h, (long long)p.out_w);
        bk_tensor *y = bk_adaptive_avg_pool2d(x, p.out_h, p.out_w);
        CHECK(shape_is(y, 4, (int64_t[]){x->shape[0], x->shape[1], p.out_h, p.out_w}));
        if (!shape_is(y, 4, (int64_t[]){x->shape[0], x->shape[1], p.out_h, p.out_w})) continue;
        double *ry = calloc((size_t)y->numel, 8);
        for (int64_t nc = 0; nc < x->shape[0] * x->shape[1]; nc++)
            for (int64_t i = 0; i < p.out_h; i++)
                for (int64_t j = 0; j < p.out_w; j++) {
                    /* torch: start = floor(i H / OH), end = ceil((i + 1) H / OH) */
                    int64_t h0 = i * H / p.out_h, h1 = ((i + 1) * H + p.out_h - 1) / p.out_h;
                    int64_t w0 = j * W / p.out_w, w1 = ((j + 1) * W + p.out_w - 1) / p.out_w;
                    double sum = 0;
                    for (int64_t h = h0; h < h1; h++)
                        for (int64_t w = w0; w < w1; w++) sum += x->data[(nc * H + h) * W + w];
                    ry[(nc * p.out_h + i) * p.out_w + j] = sum / (double)((h1 - h0) * (w1 - w0));
                }
        CHECK(close_to(what, y->data, ry, y->numel, 1e-5, 1e-6));
        free(ry);
        CHECK(gradcheck_ok(what, f_adaptive, &x, 1, &p));
        bk_arena_reset(NULL);
    }
}

/* ---- main ---------------------------------------------------------------------------------- */

/* ======================================================================================
 * max_pool2d_ex / avg_pool2d_ex: dilation, ceil_mode, count_include_pad
 * ====================================================================================== */

typedef struct pool_ex_case {
    bk_pool2d_opts o;
    int64_t d[2];
    bool max, ceil_mode, count_include_pad;
} pool_ex_case;

static bk_tensor *f_pool_ex(bk_tensor *const *in, int n, void *ud) {
    (void)n;
    const pool_ex_case *c = ud;
    return c->max ? bk_max_pool2d_ex(in[0], c->o, c->d, c->ceil_mode)
                  : bk_avg_pool2d_ex(in[0], c->o, c->ceil_mode, c->count_include_pad);
}

/* torch's pooling_output_shape, written out independently of pool.c */
static int64_t ref_out(int64_t n, int64_t k, int64_t s, int64_t p, int64_t d, bool ceil_mode) {
    double v = (double)(n + 2 * p - d * (k - 1) - 1) / (double)s;
    int64_t o = (int64_t)(ceil_mode ? ceil(v) : floor(v)) + 1;
    if (ceil_mode && (o - 1) * s >= n + p) o--;
    return o;
}

/* Random settings with dilation (max), ceil_mode and count_include_pad, on a random
 * (N, C, H, W) just large enough; forward values against a naive reference (taps at
 * i s - p + j d; an average divides by the taps in the input, or by the padded window
 * clipped to the input plus its padding), and a gradcheck on distinct values. */
TEST(pool2d_ex) {
    for (int t = 0; t < 4 * TRIALS; t++) {
        pool_ex_case c;
        memset(&c, 0, sizeof c);
        c.max = t % 2 == 0, c.ceil_mode = rand_int(0, 1), c.count_include_pad = rand_int(0, 1);
        int64_t in[2];
        for (int k = 0; k < 2; k++) {
            c.o.kernel[k] = rand_int(1, 3), c.o.stride[k] = rand_int(1, 3);
            c.o.padding[k] = rand_int(0, c.o.kernel[k] / 2), c.d[k] = c.max ? rand_int(1, 2) : 1;
            in[k] = c.d[k] * (c.o.kernel[k] - 1) + 1 - 2 * c.o.padding[k];
            in[k] = (in[k] < 1 ? 1 : in[k]) + rand_int(0, 4);
        }
        int64_t N = rand_int(1, 2), C = rand_int(1, 2), H = in[0], W = in[1];
        bk_tensor *x = leaf_distinct(4, (int64_t[]){N, C, H, W});
        char what[200];
        snprintf(what, sizeof what,
                 "%s x (%lld, %lld, %lld, %lld) k (%lld, %lld) s (%lld, %lld) p (%lld, %lld) d (%lld, "
                 "%lld)%s%s",
                 c.max ? "max_pool2d_ex" : "avg_pool2d_ex", (long long)N, (long long)C, (long long)H,
                 (long long)W, (long long)c.o.kernel[0], (long long)c.o.kernel[1], (long long)c.o.stride[0],
                 (long long)c.o.stride[1], (long long)c.o.padding[0], (long long)c.o.padding[1],
                 (long long)c.d[0], (long long)c.d[1], c.ceil_mode ? " ceil_mode" : "",
                 c.count_include_pad ? "" : " exclude pad");
        bk_tensor *y = f_pool_ex(&x, 1, &c);
        int64_t OH = ref_out(H, c.o.kernel[0], c.o.stride[0], c.o.padding[0], c.d[0], c.ceil_mode);
        int64_t OW = ref_out(W, c.o.kernel[1], c.o.stride[1], c.o.padding[1], c.d[1], c.ceil_mode);
        CHECK(shape_is(y, 4, (int64_t[]){N, C, OH, OW}));
        if (!shape_is(y, 4, (int64_t[]){N, C, OH, OW})) {
            fprintf(stderr, "  %s: %s\n", what, y ? "wrong shape" : bk_last_error());
            continue;
        }
        int bad = 0;
        for (int64_t pl = 0; pl < N * C; pl++)
            for (int64_t oh = 0; oh < OH; oh++)
                for (int64_t ow = 0; ow < OW; ow++) {
                    double m = -INFINITY, sum = 0;
                    int64_t inside = 0;
                    for (int64_t i = 0; i < c.o.kernel[0]; i++)
                        for (int64_t j = 0; j < c.o.kernel[1]; j++) {
                            int64_t h = oh * c.o.stride[0] - c.o.padding[0] + i * c.d[0];
                            int64_t w = ow * c.o.stride[1] - c.o.padding[1] + j * c.d[1];
                            if (h < 0 || h >= H || w < 0 || w >= W) continue;
                            double v = x->data[(pl * H + h) * W + w];
                            m = v > m ? v : m, sum += v, inside++;
                        }
                    int64_t h0 = oh * c.o.stride[0] - c.o.padding[0],
                            w0 = ow * c.o.stride[1] - c.o.padding[1];
                    int64_t h1 = h0 + c.o.kernel[0] < H + c.o.padding[0] ? h0 + c.o.kernel[0]
                                                                         : H + c.o.padding[0];
                    int64_t w1 = w0 + c.o.kernel[1] < W + c.o.padding[1] ? w0 + c.o.kernel[1]
                                                                         : W + c.o.padding[1];
                    double want = c.max
                                      ? m
                                      : sum / (double)(c.count_include_pad ? (h1 - h0) * (w1 - w0) : inside);
                    float got = y->data[(pl * OH + oh) * OW + ow];
                    if (!(got == want || fabs(got - want) <= 1e-6 * (1 + fabs(want))) && bad++ < 3)
                        fprintf(stderr, "  %s: y[%lld, %lld, %lld] = %.8g, want %.8g\n", what, (long long)pl,
                                (long long)oh, (long long)ow, (double)got, want);
                }
        CHECK(bad == 0);
        bool all_padding = false; /* a max window whose taps all fall in the padding: -inf, no gradient */
        for (int64_t i = 0; i < y->numel; i++) all_padding |= isinf(y->data[i]);
        if (!all_padding) CHECK(gradcheck_ok(what, f_pool_ex, &x, 1, &c));
        bk_arena_reset(NULL);
    }
    /* torch's rules: avg has no dilation (the _ex form takes none); kernels must fit */
    bk_tensor *x = bk_randn(BK_SHAPE(1, 1, 4, 4));
    CHECK(bk_max_pool2d_ex(x, (bk_pool2d_opts){{3, 3}, {1, 1}, {0, 0}}, (const int64_t[2]){2, 2}, false) ==
          NULL);
    CHECK(strstr(bk_last_error(), "dilation (2, 2)") && strstr(bk_last_error(), "(1, 1, 4, 4)"));
    CHECK(bk_max_pool2d_ex(x, (bk_pool2d_opts){{2, 2}, {1, 1}, {0, 0}}, NULL, false) == NULL);
    bk_arena_reset(NULL);
}

int main(void) {
    test_rng_seed("test_ops_pool");
    RUN(max_pool2d_ties_torch);
    RUN(max_pool2d_ties_random);
    RUN(max_pool2d_nan_inf_ties);
    RUN(max_pool2d_gradcheck);
    RUN(avg_pool2d);
    RUN(adaptive_avg_pool2d);
    RUN(pool2d_ex);
    return test_summary("test_ops_pool");
}
