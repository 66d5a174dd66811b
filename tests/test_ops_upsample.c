/* test_ops_upsample.c - bk_interpolate (nearest, bilinear with and without align_corners,
 * to a size or by a scale factor): gradients against central differences on random
 * shapes and settings, and values against properties that pin the math down:
 *   nearest by 2 repeats each pixel in a 2 x 2 block;
 *   bilinear with align_corners reproduces an affine image a + b h + c w exactly (up to
 *   float32 rounding) at the output's coordinates h = oh (H - 1) / (OH - 1);
 *   bilinear without align_corners: the weights of every output pixel add up to 1, so the
 *   input gradient of sum(y G) sums to sum(G).
 * torch parity is in test_parity_cnn (the Upsample rows).
 *
 * Seed: $BRICK_TEST_SEED, else $BRICK_SEED, else the clock (printed first). Gradient
 * tolerances as test_ops.c: eps 1e-3, atol 5e-3, rtol 1e-2; the op is linear in x, so
 * central differences are exact.
 */
#include "test.h"
#include "gradcheck.h"
#include "op_refs.h"

#include <stdint.h>

static bk_interp_opts rand_opts(int64_t H, int64_t W) {
    bk_interp_opts o;
    memset(&o, 0, sizeof o);
    o.mode = rand_int(0, 1) ? BK_INTERP_BILINEAR : BK_INTERP_NEAREST;
    o.align_corners = o.mode == BK_INTERP_BILINEAR && rand_int(0, 1);
    if (rand_int(0, 1)) {
        o.size[0] = rand_int(1, 2 * H + 1), o.size[1] = rand_int(1, 2 * W + 1);
    } else { /* factors from 0.5 to 3 in steps of 0.25, and at least one output pixel */
        o.scale_factor[0] = 0.25 * (double)rand_int(2, 12),
        o.scale_factor[1] = 0.25 * (double)rand_int(2, 12);
        if (H * o.scale_factor[0] < 1) o.scale_factor[0] = 1.5;
        if (W * o.scale_factor[1] < 1) o.scale_factor[1] = 2;
    }
    return o;
}

static bk_tensor *f_interp(bk_tensor *const *in, int n, void *ud) {
    (void)n;
    return bk_interpolate(in[0], *(const bk_interp_opts *)ud);
}

static void desc(const bk_tensor *x, const bk_interp_opts *o, char *buf, size_t n) {
    char s[128];
    snprintf(buf, n, "interpolate x %s size (%lld, %lld) scale (%g, %g) %s%s", bk_shape_str(x, s, sizeof s),
             (long long)o->size[0], (long long)o->size[1], o->scale_factor[0], o->scale_factor[1],
             o->mode == BK_INTERP_NEAREST ? "nearest" : "bilinear", o->align_corners ? " align_corners" : "");
}

TEST(interpolate_gradcheck) {
    for (int t = 0; t < 4 * TRIALS; t++) {
        int64_t H = rand_int(1, 5), W = rand_int(1, 5);
        bk_interp_opts o = rand_opts(H, W);
        if (t < 4) o.mode = (bk_interp_mode)(t % 2), o.align_corners = t == 3;
        bk_tensor *x = leaf_normal(4, (int64_t[]){rand_int(1, 2), rand_int(1, 3), H, W}, 0, 1);
        char what[256];
        desc(x, &o, what, sizeof what);
        GRADCHECK(what, f_interp, &o, x);
        bk_arena_reset(NULL);
    }
}

TEST(interpolate_values) {
    for (int t = 0; t < 2 * TRIALS; t++) {
        int64_t N = rand_int(1, 2), C = rand_int(1, 3), H = rand_int(2, 6), W = rand_int(2, 6);
        bk_tensor *x = leaf_normal(4, (int64_t[]){N, C, H, W}, 0, 1);
        /* nearest by 2: 2 x 2 blocks */
        bk_interp_opts o = {{0, 0}, {2, 2}, BK_INTERP_NEAREST, false};
        bk_tensor *y = bk_interpolate(x, o);
        CHECK(y && y->shape[2] == 2 * H && y->shape[3] == 2 * W);
        for (int64_t i = 0; y && i < y->numel; i++) {
            int64_t ow = i % (2 * W), oh = i / (2 * W) % (2 * H), pl = i / (4 * H * W);
            if (y->data[i] != x->data[(pl * H + oh / 2) * W + ow / 2]) {
                CHECK(!"nearest x2 repeats each pixel");
                break;
            }
        }
        /* bilinear with align_corners on an affine image */
        float a = rand_float(-1, 1), b = rand_float(-1, 1), c = rand_float(-1, 1);
        for (int64_t i = 0; i < x->numel; i++) x->data[i] = a + b * (float)(i / W % H) + c * (float)(i % W);
        int64_t OH = rand_int(1, 9), OW = rand_int(1, 9);
        bk_interp_opts ac = {{OH, OW}, {0, 0}, BK_INTERP_BILINEAR, true};
        y = bk_interpolate(x, ac);
        CHECK(y && y->shape[2] == OH && y->shape[3] == OW);
        for (int64_t i = 0; y && i < y->numel; i++) {
            double h = OH > 1 ? (double)(i / OW % OH) * (double)(H - 1) / (double)(OH - 1) : 0;
            double w = OW > 1 ? (double)(i % OW) * (double)(W - 1) / (double)(OW - 1) : 0;
            double want = a + b * h + c * w, tol = 1e-5 * (1 + fabs(b) * H + fabs(c) * W);
            if (!(fabs(y->data[i] - want) <= tol)) {
                fprintf(stderr,
                        "  affine (%g, %g, %g) on %lldx%lld -> %lldx%lld: [%lld] got %.8g want %.8g\n", a, b,
                        c, (long long)H, (long long)W, (long long)OH, (long long)OW, (long long)i,
                        (double)y->data[i], want);
                CHECK(!"bilinear align_corners reproduces an affine image");
                break;
            }
        }
        /* bilinear without align_corners: the weights of each output pixel sum to 1, so
         * the input gradient of sum(y * G) sums to sum(G) */
        bk_interp_opts bl = rand_opts(H, W);
        bl.mode = BK_INTERP_BILINEAR, bl.align_corners = false;
        y = bk_interpolate(x, bl);
        CHECK(y != NULL);
        if (!y) continue;
        bk_tensor *G = bk_empty(y->ndim, y->shape);
        bk_fill_normal(G, &g_rng, 0, 1);
        CHECK(bk_backward_ex(y, G, false) == 0);
        double sg = 0, sdx = 0, ag = 0;
        for (int64_t i = 0; i < G->numel; i++) sg += G->data[i], ag += fabs(G->data[i]);
        for (int64_t i = 0; x->grad && i < x->numel; i++) sdx += x->grad->data[i];
        CHECK(x->grad && fabs(sg - sdx) <= 1e-5 * (ag + 1));
        bk_arena_reset(NULL);
    }
}

TEST(interpolate_errors) {
    bk_tensor *x = bk_randn(BK_SHAPE(1, 2, 3, 3));
    CHECK(bk_interpolate(x, (bk_interp_opts){{4, 0}, {0, 0}, BK_INTERP_NEAREST, false}) == NULL);
    CHECK(strstr(bk_last_error(), "interpolate: give either a size (4, 0)") != NULL);
    CHECK(bk_interpolate(x, (bk_interp_opts){{4, 4}, {2, 2}, BK_INTERP_NEAREST, false}) == NULL);
    CHECK(bk_interpolate(x, (bk_interp_opts){{0, 0}, {0.1, 2}, BK_INTERP_NEAREST, false}) == NULL);
    CHECK(strstr(bk_last_error(), "(1, 2, 3, 3)") && strstr(bk_last_error(), "empty"));
    CHECK(bk_interpolate(x, (bk_interp_opts){{0, 0}, {2, 2}, BK_INTERP_NEAREST, true}) == NULL);
    CHECK(strstr(bk_last_error(), "align_corners") != NULL);
    CHECK(bk_interpolate(bk_randn(BK_SHAPE(2, 3)),
                         (bk_interp_opts){{0, 0}, {2, 2}, BK_INTERP_NEAREST, false}) == NULL);
    CHECK(strstr(bk_last_error(), "4-d input") != NULL);
    bk_arena_reset(NULL);
}

int main(void) {
    test_rng_seed("test_ops_upsample");
    RUN(interpolate_gradcheck);
    RUN(interpolate_values);
    RUN(interpolate_errors);
    return test_summary("test_ops_upsample");
}
