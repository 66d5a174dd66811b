/* test_ops_cnn.c - the CNN ops of brick.h (conv2d, max/avg/adaptive pooling; batch and
 * layer norm, GELU, softmax and dropout are in test_ops_norm_act.c): gradients against
 * central differences, forward (and conv2d's backward) values against naive references
 * computed in double.
 *
 * Shapes and settings (stride, padding, dilation, groups, kernel, output sizes, dims) and
 * values are drawn afresh each run from a PCG32 stream seeded from $BRICK_TEST_SEED, else
 * $BRICK_SEED (the seed `make test` prints), else the clock. The seed is printed first;
 * rerun a failure with BRICK_TEST_SEED=<seed> build/tests/test_ops_cnn.
 *
 * Gradient tolerances (bk_gradcheck), as in test_ops.c: eps = 1e-3, atol = 5e-3,
 * rtol = 1e-2. The forward runs in float32, so each evaluation of L = sum(f(x) * w) has a
 * rounding error of ~6e-8 |y| per output element touched by the perturbation; divided by
 * the step 2 eps that is ~3e-5 |y| per element, and the largest fan-out here (a batch-norm
 * input touches every output of its channel, up to ~100) stays below atol. Central
 * differences are exact for the linear ops (conv, pooling) and have a truncation error of
 * eps^2 / 6 f''' elsewhere; inputs keep f''' = O(10) (batch-norm channels with variance
 * ~1, GELU and softmax on O(1) inputs).
 *
 * Kinks: max pooling is not differentiable where two values of a window tie. Its
 * gradcheck uses distinct values 0.01 apart in random order, so no perturbation of 1e-3
 * changes a window's argmax; ties are tested on their own, exactly: the whole gradient
 * goes to the FIRST maximum of the window in row-major order, which is what PyTorch 1.13
 * does on the CPU (max_pool2d_ties_torch reproduces a case printed by torch).
 */
#include "test.h"
#include "gradcheck.h"
#include "kernels/conv_direct.h"

#include <float.h>
#include <stdint.h>
#include <time.h>

#define TRIALS 6 /* random cases per check */

/* float32 unit roundoff, for the rounding bounds of the naive references */
#define U32 (1.0 / 16777216.0)

static bk_rng g_rng; /* the test's own stream: shapes, settings, values */

static int64_t rand_int(int64_t lo, int64_t hi) {
    return lo + (int64_t)(bk_rng_u32(&g_rng) % (uint32_t)(hi - lo + 1));
}

/* A leaf that requires grad, N(mean, std^2). */
static bk_tensor *leaf_normal(int nd, const int64_t *shape, float mean, float std) {
    bk_tensor *t = bk_empty(nd, shape);
    if (!t) return NULL;
    bk_fill_normal(t, &g_rng, mean, std);
    return bk_requires_grad(t, true);
}

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

static const char *shape_s(const bk_tensor *t, char *buf) { return bk_shape_str(t, buf, 64); }

/* got must equal want (double, n values) within atol + rtol |want|; prints the first
 * mismatches. */
static bool close_to(const char *what, const float *got, const double *want, int64_t n, double rtol,
                     double atol) {
    int bad = 0;
    for (int64_t i = 0; i < n; i++)
        if (!(fabs(got[i] - want[i]) <= atol + rtol * fabs(want[i])) && bad++ < 5)
            fprintf(stderr, "    %s[%lld]: got %.9g, want %.9g\n", what, (long long)i, (double)got[i],
                    want[i]);
    if (bad) fprintf(stderr, "  %s: %d of %lld values differ\n", what, bad, (long long)n);
    return bad == 0;
}

static bool shape_is(const bk_tensor *t, int nd, const int64_t *shape) {
    if (!t || t->ndim != nd) return false;
    for (int i = 0; i < nd; i++)
        if (t->shape[i] != shape[i]) return false;
    return true;
}

/* ======================================================================================
 * conv2d
 * N = batch, C = in channels, O = out channels, g = groups, KH x KW kernel
 * ====================================================================================== */

typedef struct conv_case {
    int64_t N, C, H, W, O, KH, KW, OH, OW;
    bk_conv2d_opts o;
    bool bias;
} conv_case;

/* Random settings: groups 1..3, 1..cg_max channels per group in and out, kernel 1..3,
 * stride 1..3, padding 0..2, dilation 1..2 (each dim on its own), and an image just large
 * enough plus 0..extra. force_* >= 0 pins a setting (both dims). */
static conv_case rand_conv(int64_t cg_max, int64_t extra, int64_t force_groups, int64_t force_stride,
                           int64_t force_dilation, int64_t force_padding) {
    conv_case c;
    memset(&c, 0, sizeof c);
    int64_t g = force_groups > 0 ? force_groups : rand_int(1, 3);
    c.o.groups = g;
    c.C = g * rand_int(1, cg_max), c.O = g * rand_int(1, cg_max);
    c.N = rand_int(1, 2);
    c.KH = rand_int(1, 3), c.KW = rand_int(1, 3);
    for (int d = 0; d < 2; d++) {
        c.o.stride[d] = force_stride > 0 ? force_stride : rand_int(1, 3);
        c.o.dilation[d] = force_dilation > 0 ? force_dilation : rand_int(1, 2);
        c.o.padding[d] = force_padding >= 0 ? force_padding : rand_int(0, 2);
    }
    int64_t eh = c.o.dilation[0] * (c.KH - 1) + 1, ew = c.o.dilation[1] * (c.KW - 1) + 1;
    c.H = eh - 2 * c.o.padding[0];
    c.W = ew - 2 * c.o.padding[1];
    if (c.H < 1) c.H = 1;
    if (c.W < 1) c.W = 1;
    c.H += rand_int(0, extra), c.W += rand_int(0, extra);
    c.OH = (c.H + 2 * c.o.padding[0] - eh) / c.o.stride[0] + 1;
    c.OW = (c.W + 2 * c.o.padding[1] - ew) / c.o.stride[1] + 1;
    c.bias = rand_int(0, 1);
    return c;
}

static void conv_desc(const conv_case *c, char *buf, size_t n) {
    snprintf(buf, n,
             "conv2d x (%lld, %lld, %lld, %lld) w (%lld, %lld, %lld, %lld) stride (%lld, %lld) "
             "padding (%lld, %lld) dilation (%lld, %lld) groups %lld%s",
             (long long)c->N, (long long)c->C, (long long)c->H, (long long)c->W, (long long)c->O,
             (long long)(c->C / c->o.groups), (long long)c->KH, (long long)c->KW, (long long)c->o.stride[0],
             (long long)c->o.stride[1], (long long)c->o.padding[0], (long long)c->o.padding[1],
             (long long)c->o.dilation[0], (long long)c->o.dilation[1], (long long)c->o.groups,
             c->bias ? "" : " no bias");
}

static bk_tensor *f_conv(bk_tensor *const *in, int n, void *ud) {
    const conv_case *c = ud;
    return bk_conv2d(in[0], in[1], n > 2 ? in[2] : NULL, c->o);
}

/* The inputs of a conv case: x, w and (with bias) b, N(0, 1). Returns how many. */
static int conv_inputs(const conv_case *c, bk_tensor **in) {
    in[0] = leaf_normal(4, (int64_t[]){c->N, c->C, c->H, c->W}, 0, 1);
    in[1] = leaf_normal(4, (int64_t[]){c->O, c->C / c->o.groups, c->KH, c->KW}, 0, 1);
    in[2] = c->bias ? leaf_normal(1, (int64_t[]){c->O}, 0, 1) : NULL;
    return c->bias ? 3 : 2;
}

/* The direct 7-loop convolution in double, its backward for upstream G, and for every
 * result the sum of |terms| it adds up (for the rounding bound). Arrays are calloc'ed by
 * the caller: y, ya (N*O*OH*OW), dx, dxa (x), dw, dwa (w), db, dba (O). */
typedef struct conv_ref {
    double *y, *ya, *dx, *dxa, *dw, *dwa, *db, *dba;
} conv_ref;

static void conv_naive(const conv_case *c, const float *x, const float *w, const float *b, const float *G,
                       conv_ref *r) {
    int64_t Cg = c->C / c->o.groups, Og = c->O / c->o.groups;
    for (int64_t n = 0; n < c->N; n++)
        for (int64_t o = 0; o < c->O; o++) {
            int64_t g = o / Og;
            for (int64_t oh = 0; oh < c->OH; oh++)
                for (int64_t ow = 0; ow < c->OW; ow++) {
                    int64_t yi = ((n * c->O + o) * c->OH + oh) * c->OW + ow;
                    double acc = b ? b[o] : 0, abs_acc = b ? fabs(b[o]) : 0, gy = G ? G[yi] : 0;
                    for (int64_t ci = 0; ci < Cg; ci++)
                        for (int64_t kh = 0; kh < c->KH; kh++)
                            for (int64_t kw = 0; kw < c->KW; kw++) {
                                int64_t ih = oh * c->o.stride[0] - c->o.padding[0] + kh * c->o.dilation[0];
                                int64_t iw = ow * c->o.stride[1] - c->o.padding[1] + kw * c->o.dilation[1];
                                if (ih < 0 || ih >= c->H || iw < 0 || iw >= c->W) continue;
                                int64_t xi = ((n * c->C + g * Cg + ci) * c->H + ih) * c->W + iw;
                                int64_t wi = ((o * Cg + ci) * c->KH + kh) * c->KW + kw;
                                acc += (double)x[xi] * w[wi];
                                abs_acc += fabs((double)x[xi] * w[wi]);
                                if (G) {
                                    r->dx[xi] += gy * w[wi], r->dxa[xi] += fabs(gy * w[wi]);
                                    r->dw[wi] += gy * x[xi], r->dwa[wi] += fabs(gy * x[xi]);
                                }
                            }
                    r->y[yi] = acc, r->ya[yi] = abs_acc;
                    if (G && b) r->db[o] += gy, r->dba[o] += fabs(gy);
                }
        }
}

/* |got - want| <= (terms + 2) u sum|terms| + 1e-30 elementwise: the classic bound for a
 * float32 sum of `terms` products in any order (the reference is exact in double). */
static bool within_bound(const char *what, const float *got, const double *want, const double *abs_sum,
                         int64_t n, int64_t terms) {
    int bad = 0;
    double worst = 0;
    for (int64_t i = 0; i < n; i++) {
        double tol = (double)(terms + 2) * U32 * abs_sum[i] + 1e-30, d = fabs(got[i] - want[i]);
        if (d / tol > worst) worst = d / tol;
        if (!(d <= tol) && bad++ < 5)
            fprintf(stderr, "    %s[%lld]: got %.9g, want %.9g (bound %.3g)\n", what, (long long)i,
                    (double)got[i], want[i], tol);
    }
    if (bad) fprintf(stderr, "  %s: %d of %lld values outside the rounding bound\n", what, bad, (long long)n);
    if (getenv("BRICK_TEST_VERBOSE"))
        fprintf(stderr, "  %-60s worst %.3g of the rounding bound\n", what, worst);
    return bad == 0;
}

/* Forward and backward values of one conv case against conv_naive. */
static void check_conv_values(const conv_case *c) {
    char what[256];
    conv_desc(c, what, sizeof what);
    bk_tensor *in[3];
    int n = conv_inputs(c, in);
    bk_tensor *y = bk_conv2d(in[0], in[1], c->bias ? in[2] : NULL, c->o);
    int64_t yshape[4] = {c->N, c->O, c->OH, c->OW};
    CHECK(shape_is(y, 4, yshape));
    if (!shape_is(y, 4, yshape)) {
        fprintf(stderr, "  %s: wrong output (%s)\n", what, bk_last_error());
        return;
    }
    bk_tensor *G = bk_empty(4, yshape);
    bk_fill_normal(G, &g_rng, 0, 1);
    CHECK(bk_backward_ex(y, G, false) == 0);
    int64_t ny = y->numel, nx = in[0]->numel, nw = in[1]->numel;
    conv_ref r = {calloc((size_t)ny, 8),   calloc((size_t)ny, 8),  calloc((size_t)nx, 8),
                  calloc((size_t)nx, 8),   calloc((size_t)nw, 8),  calloc((size_t)nw, 8),
                  calloc((size_t)c->O, 8), calloc((size_t)c->O, 8)};
    CHECK(r.y && r.ya && r.dx && r.dxa && r.dw && r.dwa && r.db && r.dba);
    if (r.y && r.ya && r.dx && r.dxa && r.dw && r.dwa && r.db && r.dba) {
        conv_naive(c, in[0]->data, in[1]->data, c->bias ? in[2]->data : NULL, G->data, &r);
        int64_t K = c->C / c->o.groups * c->KH * c->KW, Og = c->O / c->o.groups;
        char lbl[320];
        snprintf(lbl, sizeof lbl, "%s: output", what);
        CHECK(within_bound(lbl, y->data, r.y, r.ya, ny, K + 1));
        snprintf(lbl, sizeof lbl, "%s: dx", what);
        CHECK(in[0]->grad && within_bound(lbl, in[0]->grad->data, r.dx, r.dxa, nx, Og * c->KH * c->KW));
        snprintf(lbl, sizeof lbl, "%s: dw", what);
        CHECK(in[1]->grad && within_bound(lbl, in[1]->grad->data, r.dw, r.dwa, nw, c->N * c->OH * c->OW));
        if (n > 2) {
            snprintf(lbl, sizeof lbl, "%s: db", what);
            CHECK(in[2]->grad &&
                  within_bound(lbl, in[2]->grad->data, r.db, r.dba, c->O, c->N * c->OH * c->OW));
        }
    }
    free(r.y), free(r.ya), free(r.dx), free(r.dxa), free(r.dw), free(r.dwa), free(r.db), free(r.dba);
}

TEST(conv2d_gradcheck) {
    /* the first trials pin the combinations that matter, the rest are free */
    static const int64_t pins[][4] = {/* groups, stride, dilation, padding; 0 / -1 = random */
                                      {2, 2, 2, 1},  {3, 1, 2, 2},  {1, 3, 1, 0},  {2, 1, 1, 0},
                                      {1, 2, 2, -1}, {0, 0, 0, -1}, {0, 0, 0, -1}, {0, 0, 0, -1}};
    for (int t = 0; t < (int)(sizeof pins / sizeof pins[0]); t++) {
        conv_case c = rand_conv(2, 3, pins[t][0], pins[t][1], pins[t][2], pins[t][3]);
        c.bias = t % 2 == 0; /* both, whatever the draw */
        bk_tensor *in[3];
        int n = conv_inputs(&c, in);
        char what[256];
        conv_desc(&c, what, sizeof what);
        CHECK(gradcheck_ok(what, f_conv, in, n, &c));
        bk_arena_reset(NULL);
    }
}

TEST(conv2d_values) {
    for (int t = 0; t < 3 * TRIALS; t++) {
        conv_case c = rand_conv(3, 6, t % 3 == 0 ? 2 : 0, 0, t % 4 == 0 ? 2 : 0, -1);
        check_conv_values(&c);
        bk_arena_reset(NULL);
    }
    /* Many small images: conv.c puts several images in one chunk when an image has fewer
     * than 256 output pixels (here 49: 6 images per chunk, 7 chunks, the last one short). */
    conv_case small;
    memset(&small, 0, sizeof small);
    small.N = 37, small.C = 8, small.H = 7, small.W = 7, small.O = 5, small.KH = 3, small.KW = 3;
    small.OH = 7, small.OW = 7, small.o = (bk_conv2d_opts){{1, 1}, {1, 1}, {1, 1}, 1}, small.bias = true;
    check_conv_values(&small);
    /* One image per chunk, 13 chunks, each summing its own part of dW. */
    conv_case big;
    memset(&big, 0, sizeof big);
    big.N = 13, big.C = 16, big.H = 48, big.W = 48, big.O = 4, big.KH = 3, big.KW = 3, big.OH = 48,
    big.OW = 48;
    big.o = (bk_conv2d_opts){{1, 1}, {1, 1}, {1, 1}, 1};
    big.bias = true;
    check_conv_values(&big);
    /* and a grouped, strided, dilated one of the same kind */
    big.o = (bk_conv2d_opts){{2, 1}, {2, 0}, {2, 1}, 2};
    big.N = 9, big.C = 32, big.O = 6, big.OH = (48 + 4 - 5) / 2 + 1, big.OW = 46;
    check_conv_values(&big);
}

/* conv2d's forward and backward give the same bits with 1, 2 and 3 threads: threads take
 * whole chunks of images and dW is summed per fixed slice of chunks (conv.c). Cases with
 * one image per chunk, several images per chunk, groups with stride, and a single image
 * (where the GEMM itself is threaded). */
TEST(conv2d_threads_bitwise) {
    static const int64_t cases[][9] = {/* N, C, H, O, K, stride, pad, groups, bias */
                                       {9, 3, 20, 4, 3, 1, 1, 1, 1},
                                       {23, 6, 6, 8, 3, 1, 0, 1, 0},
                                       {11, 8, 17, 6, 5, 2, 2, 2, 1},
                                       {1, 4, 40, 8, 3, 1, 1, 1, 1}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const int64_t *k = cases[i];
        bk_tensor *x = bk_tensor_new(4, (int64_t[]){k[0], k[1], k[2], k[2]});
        bk_tensor *w = bk_tensor_new(4, (int64_t[]){k[3], k[1] / k[7], k[4], k[4]});
        bk_tensor *b = bk_tensor_new(1, (int64_t[]){k[3]});
        CHECK(x && w && b);
        if (!x || !w || !b) return;
        bk_fill_normal(x, &g_rng, 0, 1), bk_fill_normal(w, &g_rng, 0, 1), bk_fill_normal(b, &g_rng, 0, 1);
        bk_requires_grad(x, true), bk_requires_grad(w, true), bk_requires_grad(b, true);
        bk_conv2d_opts o = {{k[5], k[5]}, {k[6], k[6]}, {1, 1}, k[7]};
        float *first[4] = {NULL, NULL, NULL, NULL};
        int saved = bk_get_num_threads();
        int64_t len[4] = {0, x->numel, w->numel, b->numel};
        for (int threads = 1; threads <= 3; threads++) {
            bk_set_num_threads(threads);
            bk_tensor *y = bk_conv2d(x, w, k[8] ? b : NULL, o);
            CHECK(y != NULL);
            if (!y) break;
            bk_tensor *G = bk_empty(y->ndim, y->shape);
            bk_rng gr;
            bk_rng_seed(&gr, 42); /* the same upstream gradient each time */
            bk_fill_normal(G, &gr, 0, 1);
            bk_tensor *leaves[3] = {x, w, b};
            for (int l = 0; l < 3; l++)
                if (leaves[l]->grad) bk_fill(leaves[l]->grad, 0.0f);
            CHECK(bk_backward_ex(y, G, false) == 0);
            const float *got[4] = {y->data, x->grad ? x->grad->data : NULL, w->grad ? w->grad->data : NULL,
                                   k[8] && b->grad ? b->grad->data : NULL};
            len[0] = y->numel;
            for (int r = 0; r < 4; r++) {
                if (!got[r]) continue;
                if (threads == 1) {
                    first[r] = malloc(sizeof(float) * (size_t)len[r]);
                    if (first[r]) memcpy(first[r], got[r], sizeof(float) * (size_t)len[r]);
                } else if (first[r] && memcmp(first[r], got[r], sizeof(float) * (size_t)len[r]) != 0) {
                    fprintf(stderr, "  case %zu: result %d differs between 1 and %d threads\n", i, r,
                            threads);
                    CHECK(0);
                }
            }
            bk_arena_reset(NULL);
        }
        bk_set_num_threads(saved);
        for (int r = 0; r < 4; r++) free(first[r]);
        bk_tensor_free(x), bk_tensor_free(w), bk_tensor_free(b);
    }
}

/* dW is summed per slice of chunks; 66 one-image chunks in 64 slices must not leave slices
 * without a chunk, whose sums buffer then still held the previous call's sums (LeNet's last
 * batch of 96 images took 16 stale slices into dW). A first call with 128 large images fills
 * every slice's buffer; dW of the second call is checked against a sum in double. */
TEST(conv2d_dw_no_stale_slices) {
    const int64_t N = 66, H = 16, K = 3; /* 16x16 outputs: 256 pixels, one image per chunk */
    bk_tensor *w = bk_tensor_new(BK_SHAPE(2, 1, K, K));
    bk_tensor *xbig = bk_tensor_new(BK_SHAPE(128, 1, H, H));
    bk_tensor *x = bk_tensor_new(BK_SHAPE(N, 1, H, H));
    CHECK(w && xbig && x);
    if (!w || !xbig || !x) goto done;
    bk_fill_normal(w, &g_rng, 0, 1), bk_fill_normal(xbig, &g_rng, 0, 1000), bk_fill_normal(x, &g_rng, 0, 1);
    bk_requires_grad(w, true);
    bk_conv2d_opts o = {{1, 1}, {1, 1}, {1, 1}, 1};
    bk_tensor *y = bk_conv2d(xbig, w, NULL, o);
    CHECK(y && bk_backward(bk_sum(y)) == 0);
    bk_fill(w->grad, 0.0f);
    y = bk_conv2d(x, w, NULL, o);
    CHECK(y && bk_backward(bk_sum(y)) == 0); /* dY = 1 */
    if (!y || !w->grad) goto done;
    double worst = 0;
    for (int64_t oc = 0; oc < 2; oc++)
        for (int64_t kh = 0; kh < K; kh++)
            for (int64_t kw = 0; kw < K; kw++) {
                double s = 0; /* dW[o, 0, kh, kw] = sum over n, oh, ow of x[n, 0, oh + kh - 1, ow + kw - 1] */
                for (int64_t n = 0; n < N; n++)
                    for (int64_t i = 0; i < H; i++)
                        for (int64_t j = 0; j < H; j++) {
                            int64_t r = i + kh - 1, c = j + kw - 1;
                            if (r >= 0 && r < H && c >= 0 && c < H) s += x->data[(n * H + r) * H + c];
                        }
                double e = fabs(w->grad->data[(oc * K + kh) * K + kw] - s) / (1.0 + fabs(s));
                worst = e > worst ? e : worst;
            }
    /* float sums of ~17,000 terms of size ~1: relative error well under 1e-4 */
    CHECK_CLOSE(worst, 0.0, 1e-4);
done:
    bk_tensor_free(w), bk_tensor_free(xbig), bk_tensor_free(x);
}

/* The direct stride-1 kernel (src/kernels/conv_direct.c, used where the CPU has AVX-512 or
 * AVX2+FMA) against the im2col + GEMM path it replaces, on the same inputs: y, dx, dw and db
 * agree within twice the float32 rounding bound of either (each is within one bound of the
 * exact value; conv2d_values checks that too). Random stride-1 settings (kernels 1 to 5,
 * padding 0 to 2 including padding wider than the kernel, where dx keeps col2im, dilation,
 * groups, odd sizes), 1x1 kernels, and batches of many small images (several images per
 * chunk, the last chunk short). */
static void direct_vs_im2col(const conv_case *c) {
    char what[256];
    conv_desc(c, what, sizeof what);
    bk_tensor *in[3];
    int n = conv_inputs(c, in);
    int64_t yshape[4] = {c->N, c->O, c->OH, c->OW};
    bk_tensor *G = bk_empty(4, yshape);
    bk_fill_normal(G, &g_rng, 0, 1);
    float *res[2][4] = {{NULL}};
    int64_t len[4] = {G->numel, in[0]->numel, in[1]->numel, c->O};
    for (int path = 0; path < 2; path++) { /* 0: direct, 1: im2col + GEMM */
        bk__dconv_enable(path == 0);
        for (int i = 0; i < n; i++)
            if (in[i]->grad) bk_fill(in[i]->grad, 0.0f);
        bk_tensor *y = bk_conv2d(in[0], in[1], n > 2 ? in[2] : NULL, c->o);
        CHECK(y && bk_backward_ex(y, G, false) == 0);
        if (!y) {
            fprintf(stderr, "  %s: %s\n", what, bk_last_error());
            break;
        }
        const float *got[4] = {y->data, in[0]->grad->data, in[1]->grad->data,
                               n > 2 ? in[2]->grad->data : NULL};
        for (int r = 0; r < 4; r++)
            if (got[r] && (res[path][r] = malloc(sizeof(float) * (size_t)len[r])))
                memcpy(res[path][r], got[r], sizeof(float) * (size_t)len[r]);
    }
    bk__dconv_enable(true);
    conv_ref ref = {calloc((size_t)len[0], 8), calloc((size_t)len[0], 8), calloc((size_t)len[1], 8),
                    calloc((size_t)len[1], 8), calloc((size_t)len[2], 8), calloc((size_t)len[2], 8),
                    calloc((size_t)c->O, 8),   calloc((size_t)c->O, 8)};
    if (ref.y && ref.ya && ref.dx && ref.dxa && ref.dw && ref.dwa && ref.db && ref.dba) {
        conv_naive(c, in[0]->data, in[1]->data, n > 2 ? in[2]->data : NULL, G->data, &ref);
        int64_t Og = c->O / c->o.groups, K = c->C / c->o.groups * c->KH * c->KW;
        int64_t terms[4] = {K + 1, Og * c->KH * c->KW, c->N * c->OH * c->OW, c->N * c->OH * c->OW};
        double *abs_sum[4] = {ref.ya, ref.dxa, ref.dwa, ref.dba};
        static const char *names[4] = {"output", "dx", "dw", "db"};
        for (int r = 0; r < (n > 2 ? 4 : 3); r++) {
            CHECK(res[0][r] && res[1][r]);
            if (!res[0][r] || !res[1][r]) continue;
            double *want = malloc(sizeof(double) * (size_t)len[r]),
                   *tol2 = malloc(sizeof(double) * (size_t)len[r]);
            CHECK(want && tol2);
            if (want && tol2) {
                for (int64_t i = 0; i < len[r]; i++) want[i] = res[1][r][i], tol2[i] = 2 * abs_sum[r][i];
                char lbl[320];
                snprintf(lbl, sizeof lbl, "%s: %s, direct against im2col", what, names[r]);
                CHECK(within_bound(lbl, res[0][r], want, tol2, len[r], terms[r]));
            }
            free(want), free(tol2);
        }
    } else {
        CHECK(0);
    }
    free(ref.y), free(ref.ya), free(ref.dx), free(ref.dxa), free(ref.dw), free(ref.dwa), free(ref.db),
        free(ref.dba);
    for (int path = 0; path < 2; path++)
        for (int r = 0; r < 4; r++) free(res[path][r]);
}

TEST(conv2d_direct_vs_im2col) {
    bk__dconv d;
    if (!bk__dconv_plan(&d, 1, 4, 4, 1, 3, 3, 1, 1, 1, 1, 1, false)) {
        fprintf(stderr,
                "  (this CPU or BRICK_GEMM_KERNEL has no direct convolution kernel: nothing to compare)\n");
        return;
    }
    for (int t = 0; t < 4 * TRIALS; t++) {
        conv_case c = rand_conv(4, 7, t % 3 == 0 ? 2 : 0, 1, t % 4 == 0 ? 2 : 0, -1);
        if (t % 5 == 0) { /* kernels up to 5, as LeNet's */
            c.KH = rand_int(4, 5), c.KW = rand_int(1, 5);
            c.H += 4 * c.o.dilation[0], c.W += 4 * c.o.dilation[1];
            for (int dim = 0; dim < 2; dim++) {
                int64_t e = c.o.dilation[dim] * ((dim ? c.KW : c.KH) - 1) + 1;
                (dim ? &c.OW : &c.OH)[0] = (dim ? c.W : c.H) + 2 * c.o.padding[dim] - e + 1;
            }
        }
        direct_vs_im2col(&c);
        bk_arena_reset(NULL);
    }
    static const int64_t fixed[][7] =
        {/* N, C, H, O, K, pad, W (odd sizes, 1x1, many small images) */
         {3, 5, 9, 7, 1, 0, 11},  {2, 3, 1, 2, 3, 1, 1},    {37, 8, 7, 5, 3, 1, 7},
         {19, 16, 4, 9, 3, 1, 4}, {5, 6, 14, 16, 5, 0, 13}, {4, 1, 28, 6, 5, 2, 28},
         {3, 2, 3, 3, 1, 1, 4},   {2, 3, 5, 2, 3, 2, 6}}; /* padding past the kernel */
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) {
        const int64_t *f = fixed[i];
        conv_case c;
        memset(&c, 0, sizeof c);
        c.N = f[0], c.C = f[1], c.H = f[2], c.W = f[6], c.O = f[3], c.KH = c.KW = f[4];
        c.o = (bk_conv2d_opts){{1, 1}, {f[5], f[5]}, {1, 1}, 1};
        c.OH = c.H + 2 * f[5] - f[4] + 1, c.OW = c.W + 2 * f[5] - f[4] + 1;
        c.bias = i % 2 == 0;
        direct_vs_im2col(&c);
        bk_arena_reset(NULL);
    }
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

TEST(max_pool2d_ties_random) {
    /* values in {0, 1, 2}: ties in almost every window; overlapping k3 s2 p1 first */
    for (int t = 0; t < 2 * TRIALS; t++) {
        int64_t shape[4];
        pool_case p = rand_pool(t < TRIALS, shape);
        bk_tensor *x = leaf_normal(4, shape, 0, 1);
        for (int64_t i = 0; i < x->numel; i++) x->data[i] = (float)rand_int(0, 2);
        char what[256];
        pool_desc("max_pool2d ties", &p, x, what, sizeof what);
        bk_tensor *y = bk_max_pool2d(x, p.o);
        CHECK(y != NULL);
        if (!y) continue;
        bk_tensor *G = bk_empty(y->ndim, y->shape);
        bk_fill_normal(G, &g_rng, 0, 1);
        CHECK(bk_backward_ex(y, G, false) == 0);
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
            bk_tensor *y = bk_max_pool2d(x, p.o);
            CHECK(y != NULL);
            if (!y) continue;
            bk_tensor *G = bk_empty(y->ndim, y->shape);
            for (int64_t o = 0; o < y->numel; o++) G->data[o] = (float)(o % 97 + 1); /* exact sums */
            CHECK(bk_backward_ex(y, G, false) == 0);
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

int main(void) {
    uint64_t seed = test_seed("test_ops_cnn");
    bk_rng_seed(&g_rng, seed);
    bk_manual_seed(seed);
    RUN(conv2d_gradcheck);
    RUN(conv2d_values);
    RUN(conv2d_threads_bitwise);
    RUN(conv2d_dw_no_stale_slices);
    RUN(conv2d_direct_vs_im2col);
    RUN(max_pool2d_ties_torch);
    RUN(max_pool2d_ties_random);
    RUN(max_pool2d_nan_inf_ties);
    RUN(max_pool2d_gradcheck);
    RUN(avg_pool2d);
    RUN(adaptive_avg_pool2d);
    return test_summary("test_ops_cnn");
}
