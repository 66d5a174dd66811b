/* test_ops_cnn.c - conv2d of brick.h (max/avg/adaptive pooling are in test_ops_pool.c;
 * batch and layer norm, GELU, softmax and dropout in test_ops_norm_act.c): gradients
 * against central differences, forward and backward values against naive references
 * computed in double.
 *
 * Shapes and settings (stride, padding, dilation, groups, kernel) and values are drawn
 * afresh each run from a PCG32 stream seeded from $BRICK_TEST_SEED, else $BRICK_SEED (the
 * seed `make test` prints), else the clock. The seed is printed first; rerun a failure
 * with BRICK_TEST_SEED=<seed> build/tests/test_ops_cnn.
 *
 * Gradient tolerances (bk_gradcheck), as in test_ops.c: eps = 1e-3, atol = 5e-3,
 * rtol = 1e-2. The forward runs in float32, so each evaluation of L = sum(f(x) * w) has a
 * rounding error of ~6e-8 |y| per output element touched by the perturbation; divided by
 * the step 2 eps that is ~3e-5 |y| per element, which stays below atol for the fan-outs
 * here. Central differences are exact for conv2d, a linear op.
 */
#include "test.h"
#include "gradcheck.h"
#include "op_refs.h"
#include "kernels/conv_direct.h"

#include <float.h>
#include <stdint.h>
#include <time.h>

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

/* ---- main ---------------------------------------------------------------------------------- */

int main(void) {
    test_rng_seed("test_ops_cnn");
    RUN(conv2d_gradcheck);
    RUN(conv2d_values);
    RUN(conv2d_threads_bitwise);
    RUN(conv2d_dw_no_stale_slices);
    RUN(conv2d_direct_vs_im2col);
    return test_summary("test_ops_cnn");
}
