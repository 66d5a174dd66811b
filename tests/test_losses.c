/* test_losses.c - gradient checks and extreme-value behaviour of the losses.
 *
 * Values against PyTorch are in test_parity_optim; here: finite differences for every
 * loss and reduction, and the guarantees brick makes for extreme logits (+-1e4,
 * +-FLT_MAX, -inf in non-target classes): finite loss and finite gradients.
 */
#include "test.h"

#include <float.h>

static const int64_t TARGET[5] = {2, 0, 3, 3, 1};
static bk_reduction red;

static bk_tensor *f_ce(bk_tensor *const *in, int n, void *ud) {
    (void)n, (void)ud;
    return bk_cross_entropy(in[0], TARGET, 5, red);
}
static bk_tensor *f_mse(bk_tensor *const *in, int n, void *ud) {
    (void)n, (void)ud;
    return bk_mse_loss(in[0], in[1], red);
}
static bk_tensor *f_bce(bk_tensor *const *in, int n, void *ud) {
    (void)n, (void)ud;
    return bk_bce_with_logits(in[0], in[1], red);
}

/* float32 forward, eps 1e-3: central-difference truncation and rounding stay below 1e-3
 * absolute for these O(1) losses, hence atol 1e-3 / rtol 1e-2 as in test_ops. */
static void gc(const char *what, bk_gradcheck_fn f, int n, bk_tensor **in) {
    for (int i = 0; i < n; i++) bk_requires_grad(in[i], true);
    double e = bk_gradcheck(f, in, n, NULL, 1e-3, 1e-3, 1e-2, stderr);
    if (!(e >= 0 && e <= 1)) fprintf(stderr, "  %s: gradcheck %g (%s)\n", what, e, bk_last_error());
    CHECK(e >= 0 && e <= 1);
}

TEST(cross_entropy_gradcheck) {
    for (int r = 0; r < BK_REDUCTION_COUNT; r++) {
        red = (bk_reduction)r;
        bk_tensor *x = bk_randn(BK_SHAPE(5, 4));
        gc("cross_entropy", f_ce, 1, &x);
        /* 37 classes: two whole blocks of 16 of the vectorised row loops, and a tail */
        bk_tensor *x37 = bk_randn(BK_SHAPE(5, 37));
        gc("cross_entropy, 37 classes", f_ce, 1, &x37);
    }
}

TEST(mse_gradcheck) {
    for (int r = 0; r < BK_REDUCTION_COUNT; r++) {
        red = (bk_reduction)r;
        bk_tensor *in[2] = {bk_randn(BK_SHAPE(3, 4)), bk_randn(BK_SHAPE(3, 4))};
        gc("mse", f_mse, 2, in);
    }
}

TEST(bce_gradcheck) {
    for (int r = 0; r < BK_REDUCTION_COUNT; r++) {
        red = (bk_reduction)r;
        bk_tensor *in[2] = {bk_mul_scalar(bk_randn(BK_SHAPE(3, 4)), 3.0f), bk_rand(BK_SHAPE(3, 4))};
        in[0] = bk_detach(in[0]);
        gc("bce", f_bce, 2, in);
    }
}

static bool all_finite(const bk_tensor *t) {
    for (int64_t i = 0; i < t->numel; i++)
        if (!isfinite(t->data[i])) return false;
    return true;
}

/* Logits whose rows hold extreme values. The gradient (softmax - onehot) must stay finite.
 * The loss is finite when its true value is: with +-1e4 always; with +-FLT_MAX a row whose
 * target is -FLT_MAX has true loss 2 FLT_MAX, whose float32 value is +inf (torch: same),
 * so there only NaN is ruled out. */
static void check_extreme(float big, bool neg_inf_rest) {
    bool representable = big < FLT_MAX / 4;
    float v[5 * 4];
    for (int i = 0; i < 5; i++)
        for (int c = 0; c < 4; c++) {
            float x = ((i + c) % 2 ? big : -big);
            if (neg_inf_rest && c != TARGET[i]) x = -INFINITY;
            v[i * 4 + c] = x;
        }
    bk_tensor *x = bk_requires_grad(bk_from_data(BK_SHAPE(5, 4), v), true);
    bk_tensor *l = bk_cross_entropy(x, TARGET, 5, BK_REDUCTION_MEAN);
    CHECK(l && (representable ? isfinite(bk_item(l)) : !isnan(bk_item(l))));
    CHECK(bk_backward(l) == 0);
    CHECK(x->grad && all_finite(x->grad));
    bk_tensor *s = bk_softmax(x, 1), *ls = bk_log_softmax(x, 1);
    CHECK(s && all_finite(s));
    /* log_softmax is -inf where the logit is -inf (as torch), never NaN, and finite
     * wherever its true value is representable */
    for (int64_t i = 0; ls && i < ls->numel; i++) {
        CHECK(!isnan(ls->data[i]));
        CHECK(x->data[i] == -INFINITY || !representable || isfinite(ls->data[i]));
    }
}

TEST(cross_entropy_extreme_logits) {
    check_extreme(1e4f, false);
    check_extreme(FLT_MAX, false);
    check_extreme(1e4f, true);
    /* the loss of a confidently right row is 0, of a confidently wrong one the margin */
    int64_t t[2] = {0, 1};
    bk_tensor *x = bk_from_data(BK_SHAPE(2, 2), (float[]){1e4f, -1e4f, 1e4f, -1e4f});
    bk_tensor *l = bk_cross_entropy(x, t, 2, BK_REDUCTION_NONE);
    CHECK_CLOSE(l->data[0], 0.0, 0);
    CHECK_CLOSE(l->data[1], 2e4, 0);
}

TEST(bce_extreme_logits) {
    bk_tensor *x = bk_requires_grad(bk_from_data(BK_SHAPE(4), (float[]){1e4f, -1e4f, 100.0f, -FLT_MAX}),
                                    true);
    bk_tensor *t = bk_from_data(BK_SHAPE(4), (float[]){0, 1, 1, 0});
    bk_tensor *l = bk_bce_with_logits(x, t, BK_REDUCTION_SUM);
    CHECK(l && isfinite(bk_item(l)));
    CHECK(bk_backward(l) == 0 && all_finite(x->grad));
}

TEST(loss_errors) {
    bk_tensor *x = bk_randn(BK_SHAPE(5, 4));
    int64_t bad[5] = {0, 1, 4, 0, 0};
    CHECK_ERR(bk_cross_entropy(x, bad, 5, BK_REDUCTION_MEAN),
              "target 4 at position 2 is out of bounds for 4 classes");
    CHECK_ERR(bk_cross_entropy(x, TARGET, 3, BK_REDUCTION_MEAN), "3 targets for logits (5, 4)");
    CHECK_ERR(bk_cross_entropy(bk_randn(BK_SHAPE(5)), TARGET, 5, BK_REDUCTION_MEAN),
              "expected logits of shape (N, C)");
    CHECK_ERR(bk_mse_loss(x, bk_randn(BK_SHAPE(4, 5)), BK_REDUCTION_MEAN), "input (5, 4) and target (4, 5)");
    CHECK_ERR(bk_bce_with_logits(x, x, (bk_reduction)7), "unknown reduction 7");
    CHECK_ERR(bk_cross_entropy(NULL, TARGET, 5, BK_REDUCTION_MEAN), "input 0 is NULL");
}

TEST(accuracy_helpers) {
    bk_tensor *x = bk_from_data(BK_SHAPE(3, 3), (float[]){0, 2, 1, 5, 5, 1, -1, -2, -3});
    int64_t am[3], t[3] = {1, 1, 0};
    CHECK(bk_argmax_rows(x, am) == 0);
    CHECK(am[0] == 1 && am[1] == 0 && am[2] == 0); /* ties: first */
    CHECK(bk_count_correct(x, t, 3) == 2);
}

int main(void) {
    bk_manual_seed(7);
    RUN(cross_entropy_gradcheck);
    RUN(mse_gradcheck);
    RUN(bce_gradcheck);
    RUN(cross_entropy_extreme_logits);
    RUN(bce_extreme_logits);
    RUN(loss_errors);
    RUN(accuracy_helpers);
    return test_summary("losses");
}
