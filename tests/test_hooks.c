/* test_hooks.c - forward pre-hooks and forward hooks (bk_module_add_forward_pre_hook,
 * bk_module_add_forward_hook, bk_module_remove_hook): order, what they see, replacing the
 * input or the output (with autograd through the replacement), failing, removal.
 */
#include "test.h"

static char trace[256];

static void note(const char *what) {
    size_t n = strlen(trace);
    snprintf(trace + n, sizeof trace - n, "%s%s", n ? " " : "", what);
}

static bk_tensor *pre_a(bk_module *m, bk_tensor *x, void *ud) {
    (void)m;
    (void)ud;
    note("preA");
    return x;
}
static bk_tensor *pre_double(bk_module *m, bk_tensor *x, void *ud) {
    (void)m;
    (void)ud;
    note("pre2x");
    return bk_mul_scalar(x, 2.0f);
}
static bk_tensor *post_a(bk_module *m, bk_tensor *x, bk_tensor *y, void *ud) {
    (void)x;
    note("postA");
    *(const bk_module **)ud = m; /* which block it saw */
    return y;
}
static bk_tensor *post_plus1(bk_module *m, bk_tensor *x, bk_tensor *y, void *ud) {
    (void)m;
    (void)x;
    (void)ud;
    note("post+1");
    return bk_add_scalar(y, 1.0f);
}
static bk_tensor *post_fail(bk_module *m, bk_tensor *x, bk_tensor *y, void *ud) {
    (void)m;
    (void)x;
    (void)y;
    (void)ud;
    return NULL;
}

TEST(order_and_replacement) {
    bk_module *lin = bk_nn_linear(3, 2);
    const bk_module *seen = NULL;
    int a = bk_module_add_forward_pre_hook(lin, pre_a, NULL);
    int b = bk_module_add_forward_pre_hook(lin, pre_double, NULL);
    int c = bk_module_add_forward_hook(lin, post_a, &seen);
    int d = bk_module_add_forward_hook(lin, post_plus1, NULL);
    CHECK(a == 0 && b == 1 && c == 2 && d == 3);
    bk_tensor *X = bk_requires_grad(bk_rand(BK_SHAPE(4, 3)), true);
    trace[0] = '\0';
    bk_tensor *Y = bk_forward(lin, X); // (4, 2): lin(2 X) + 1
    CHECK(!strcmp(trace, "preA pre2x postA post+1") && seen == lin);
    bk_tensor *want = bk_add_scalar(bk_linear(bk_mul_scalar(X, 2.0f), bk_module_get(lin, "weight"),
                                              bk_module_get(lin, "bias")),
                                    1.0f);
    CHECK(Y && want && !memcmp(Y->data, want->data, 8 * sizeof(float)));
    /* the replacements are ops: the gradient flows through them (d sum / dX = 2 W's columns) */
    CHECK(Y && bk_backward(bk_sum(Y)) == 0 && X->grad);
    const bk_tensor *W = bk_module_get(lin, "weight");
    CHECK_CLOSE(X->grad->data[0], 2 * (W->data[0] + W->data[3]), 1e-6);
    /* removed: the rest still run, in order */
    CHECK(bk_module_remove_hook(lin, b) == 0 && bk_module_remove_hook(lin, d) == 0);
    trace[0] = '\0';
    Y = bk_forward(lin, X);
    bk_tensor *plain = bk_linear(X, bk_module_get(lin, "weight"), bk_module_get(lin, "bias"));
    CHECK(!strcmp(trace, "preA postA") && Y && !memcmp(Y->data, plain->data, 8 * sizeof(float)));
    CHECK_FAILS_INT(bk_module_remove_hook(lin, b), "Linear has no hook 1");
    /* a new hook gets a new handle */
    CHECK(bk_module_add_forward_hook(lin, post_plus1, NULL) == 4);
    bk_module_free(lin);
}

TEST(inside_a_sequential_and_failing) {
    bk_module *net = bk_nn_sequential(3, bk_nn_linear(3, 4), bk_nn_relu(), bk_nn_linear(4, 2));
    const bk_module *seen = NULL;
    CHECK(bk_module_add_forward_hook(bk_module_child(net, 1), post_a, &seen) == 0);
    trace[0] = '\0';
    CHECK(bk_forward(net, bk_rand(BK_SHAPE(2, 3))) != NULL);
    CHECK(!strcmp(trace, "postA") && seen == bk_module_child(net, 1));
    CHECK(bk_module_add_forward_hook(bk_module_child(net, 2), post_fail, NULL) == 0);
    bk_clear_error();
    CHECK(bk_forward(net, bk_rand(BK_SHAPE(2, 3))) == NULL);
    CHECK(strstr(bk_last_error(), "Linear: forward hook 0 returned NULL") != NULL);
    bk_module_free(net);
}

int main(void) {
    RUN(order_and_replacement);
    RUN(inside_a_sequential_and_failing);
    return test_summary("test_hooks");
}
