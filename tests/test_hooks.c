/* test_hooks.c - forward pre-hooks and forward hooks (bk_module_add_forward_pre_hook,
 * bk_module_add_forward_hook, bk_module_remove_hook): order, what they see, replacing the
 * input or the output (with autograd through the replacement), failing, removal. Backward
 * hooks on blocks (bk_module_add_backward_hook) and gradient hooks on tensors
 * (bk_tensor_register_hook): the values torch 1.13 gives for the same computations (the
 * torch code is above each test; numbers exact in float32), order, removal, bad returns.
 */
#include "test.h"
#include "gradcheck.h"

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

/* ---- tensor hooks ------------------------------------------------------------------------ */

/* Copies the gradient it sees into ud (a float[8]) and keeps it. */
static bk_tensor *record_grad(bk_tensor *t, bk_tensor *g, void *ud) {
    (void)t;
    memcpy(ud, g->data, (size_t)g->numel * sizeof(float));
    return NULL;
}
static bk_tensor *double_grad(bk_tensor *t, bk_tensor *g, void *ud) {
    (void)t;
    (void)ud;
    return bk_mul_scalar(g, 2.0f);
}
static bk_tensor *clip_grad(bk_tensor *t, bk_tensor *g, void *ud) {
    (void)t;
    memcpy(ud, g->data, (size_t)g->numel * sizeof(float));
    return bk_clamp(g, -1.0f, 1.0f);
}
static bk_tensor *wrong_shape(bk_tensor *t, bk_tensor *g, void *ud) {
    (void)t;
    (void)g;
    (void)ud;
    return bk_zeros(BK_SHAPE(5));
}

static bool values(const bk_tensor *t, int n, const float *want) {
    bool same = t && t->numel == n;
    for (int i = 0; same && i < n; i++) same = t->data[i] == want[i];
    if (!same) {
        fprintf(stderr, "# got");
        for (int i = 0; t && i < t->numel; i++) fprintf(stderr, " %g", (double)t->data[i]);
        fprintf(stderr, "\n");
    }
    return same;
}

/* x = tensor([1., 2., 3.], requires_grad=True); y = x * x
 * y.register_hook(record); y.register_hook(lambda g: g * 2)
 * (y * tensor([1., 10., 100.])).sum().backward()
 * -> record sees [1, 10, 100], x.grad = [4, 80, 1200] */
TEST(tensor_hook_replaces_an_interior_gradient) {
    bk_tensor *x = bk_requires_grad(bk_from_data(BK_SHAPE(3), (const float[]){1, 2, 3}), true);
    bk_tensor *y = bk_mul(x, x);
    float seen[8] = {0};
    CHECK(bk_tensor_register_hook(y, record_grad, seen) == 0);
    int h = bk_tensor_register_hook(y, double_grad, NULL);
    CHECK(h == 1);
    bk_tensor *w = bk_from_data(BK_SHAPE(3), (const float[]){1, 10, 100});
    CHECK(bk_backward(bk_sum(bk_mul(y, w))) == 0);
    CHECK(seen[0] == 1 && seen[1] == 10 && seen[2] == 100);
    CHECK(values(x->grad, 3, (const float[]){4, 80, 1200}));

    /* removed: the plain gradient 2 x w */
    bk_tensor *x2 = bk_requires_grad(bk_from_data(BK_SHAPE(3), (const float[]){1, 2, 3}), true);
    bk_tensor *y2 = bk_mul(x2, x2);
    CHECK(bk_tensor_register_hook(y2, double_grad, NULL) == 0);
    CHECK(bk_tensor_remove_hook(y2, 0) == 0);
    CHECK_FAILS_INT(bk_tensor_remove_hook(y2, 0), "no hook 0");
    CHECK(bk_backward(bk_sum(bk_mul(y2, w))) == 0);
    CHECK(values(x2->grad, 3, (const float[]){2, 40, 600}));

    CHECK_FAILS_INT(bk_tensor_register_hook(w, double_grad, NULL), "does not require grad");
    bk_tensor *y3 = bk_mul(x2, x2);
    CHECK(bk_tensor_register_hook(y3, wrong_shape, NULL) == 0);
    CHECK_ERRS(bk_backward(bk_sum(y3)) == 0 ? (void *)1 : NULL, "tensor hook 0", "shape (5,)", "(3,)");
}

/* w = tensor([0.5, -1.], requires_grad=True); w.register_hook(clip to [-1, 1], recording)
 * (w * tensor([3., 4.])).sum().backward()   -> sees [3, 4],  w.grad = [1, 1]
 * (w * w).sum().backward()                  -> sees [1, -2], w.grad = [2, 0]
 * (a leaf's hook gets this backward's contribution, before it is accumulated) */
TEST(tensor_hook_on_a_leaf_gets_the_contribution) {
    bk_tensor *w = bk_tensor_new(BK_SHAPE(2));
    w->data[0] = 0.5f, w->data[1] = -1.0f;
    bk_requires_grad(w, true);
    float seen[8] = {0};
    CHECK(bk_tensor_register_hook(w, clip_grad, seen) == 0);
    CHECK(bk_backward(bk_sum(bk_mul(w, bk_from_data(BK_SHAPE(2), (const float[]){3, 4})))) == 0);
    CHECK(seen[0] == 3 && seen[1] == 4);
    CHECK(values(w->grad, 2, (const float[]){1, 1}));
    CHECK(bk_backward(bk_sum(bk_mul(w, w))) == 0);
    CHECK(seen[0] == 1 && seen[1] == -2);
    CHECK(values(w->grad, 2, (const float[]){2, 0}));
    bk_tensor_free(w); /* frees its hooks (the sanitizer build checks) */
}

/* ---- backward hooks on blocks --------------------------------------------------------------- */

typedef struct bw_record {
    float grad_input[8], grad_output[8];
    bool saw_input, zero;
    int calls;
} bw_record;

static bk_tensor *record_bw(bk_module *m, const bk_tensor *grad_input, const bk_tensor *grad_output,
                            void *ud) {
    (void)m;
    bw_record *r = ud;
    r->calls++;
    r->saw_input = grad_input != NULL;
    if (grad_input) memcpy(r->grad_input, grad_input->data, (size_t)grad_input->numel * sizeof(float));
    memcpy(r->grad_output, grad_output->data, (size_t)grad_output->numel * sizeof(float));
    return r->zero && grad_input ? bk_zeros(grad_input->ndim, grad_input->shape) : NULL;
}

/* lin = nn.Linear(3, 2), weight [[1, 2, 3], [-1, 0.5, 2]], bias [0.1, -0.2];
 * lin.register_full_backward_hook(h); X = [[1, 0, -1], [2, 1, 0.5]] (requires grad),
 * up = [[1, -2], [0.5, 3]]; (lin(X) * up).sum().backward()
 * -> grad_input [[3, 1, -1], [-2.5, 2.5, 7.5]], grad_output = up, weight.grad
 *    [[2, 0.5, -0.75], [4, 3, 3.5]]; h returning zeros: X.grad 0, weight.grad the same;
 *    X without grad: grad_input None, grad_output = up. */
TEST(backward_hook_sees_and_replaces_grad_input) {
    bk_module *lin = bk_nn_linear(3, 2);
    memcpy(bk_module_get(lin, "weight")->data, (const float[]){1, 2, 3, -1, 0.5f, 2}, 6 * sizeof(float));
    memcpy(bk_module_get(lin, "bias")->data, (const float[]){0.1f, -0.2f}, 2 * sizeof(float));
    bw_record rec = {0};
    CHECK(bk_module_add_backward_hook(lin, record_bw, &rec) == 0);
    const float xs[6] = {1, 0, -1, 2, 1, 0.5f};
    bk_tensor *up = bk_from_data(BK_SHAPE(2, 2), (const float[]){1, -2, 0.5f, 3});
    bk_tensor *X = bk_requires_grad(bk_from_data(BK_SHAPE(2, 3), xs), true);
    CHECK(bk_backward(bk_sum(bk_mul(bk_forward(lin, X), up))) == 0);
    CHECK(rec.calls == 1 && rec.saw_input);
    const float gin[6] = {3, 1, -1, -2.5f, 2.5f, 7.5f}, dW[6] = {2, 0.5f, -0.75f, 4, 3, 3.5f};
    CHECK(memcmp(rec.grad_input, gin, sizeof gin) == 0);
    CHECK(memcmp(rec.grad_output, up->data, 4 * sizeof(float)) == 0);
    CHECK(values(X->grad, 6, gin));
    CHECK(values(bk_module_get(lin, "weight")->grad, 6, dW));

    rec.zero = true;
    bk_module_zero_grad(lin);
    X = bk_requires_grad(bk_from_data(BK_SHAPE(2, 3), xs), true);
    CHECK(bk_backward(bk_sum(bk_mul(bk_forward(lin, X), up))) == 0);
    CHECK(values(X->grad, 6, (const float[]){0, 0, 0, 0, 0, 0}));
    CHECK(values(bk_module_get(lin, "weight")->grad, 6, dW));

    rec = (bw_record){0};
    CHECK(bk_backward(bk_sum(bk_mul(bk_forward(lin, bk_from_data(BK_SHAPE(2, 3), xs)), up))) == 0);
    CHECK(rec.calls == 1 && !rec.saw_input);
    CHECK(memcmp(rec.grad_output, up->data, 4 * sizeof(float)) == 0);

    /* under no_grad nothing is wrapped; removed, it is not called */
    bool was = bk_set_grad_enabled(false);
    CHECK(bk_forward(lin, X) != NULL);
    bk_set_grad_enabled(was);
    CHECK(bk_module_remove_hook(lin, 0) == 0);
    rec = (bw_record){0};
    CHECK(bk_backward(bk_sum(bk_forward(lin, X))) == 0 && rec.calls == 0);
    bk_module_free(lin);
}

static bk_tensor *note_bw(bk_module *m, const bk_tensor *grad_input, const bk_tensor *grad_output, void *ud) {
    (void)grad_input;
    (void)grad_output;
    note((const char *)ud);
    (void)m;
    return NULL;
}
static bk_tensor *bad_bw(bk_module *m, const bk_tensor *grad_input, const bk_tensor *grad_output, void *ud) {
    (void)m;
    (void)grad_input;
    (void)grad_output;
    (void)ud;
    return bk_zeros(BK_SHAPE(7));
}

/* net = Sequential(Linear(3, 3), ReLU(), Linear(3, 1)), a full backward hook on each:
 * torch calls them last block first: [2, 1, 0]. */
TEST(backward_hooks_in_a_sequential_and_failing) {
    bk_module *net = bk_nn_sequential(3, bk_nn_linear(3, 3), bk_nn_relu(), bk_nn_linear(3, 1));
    const char *names[3] = {"0", "1", "2"};
    for (int i = 0; i < 3; i++)
        CHECK(bk_module_add_backward_hook(bk_module_child(net, i), note_bw, (void *)names[i]) == 0);
    trace[0] = '\0';
    bk_tensor *x = bk_requires_grad(bk_randn(BK_SHAPE(2, 3)), true);
    CHECK(bk_backward(bk_sum(bk_forward(net, x))) == 0);
    CHECK(strcmp(trace, "2 1 0") == 0);
    CHECK(bk_module_add_backward_hook(bk_module_child(net, 1), bad_bw, NULL) == 1);
    CHECK_ERRS(bk_backward(bk_sum(bk_forward(net, x))) == 0 ? (void *)1 : NULL, "ReLU: backward hook 1",
               "(7,)", "(2, 3)");
    CHECK_FAILS_INT(bk_module_add_backward_hook(net, NULL, NULL), "fn is NULL");
    bk_module_free(net);
}

/* The identity ops that carry a block's backward hooks ("BackwardHookFunction") against
 * central differences: hooks that keep grad_input leave the gradient the block's own. */
static bk_module *gc_net_;
static bk_tensor *gc_forward(bk_tensor *const *in, int n, void *ud) {
    (void)n;
    (void)ud;
    return bk_forward(gc_net_, in[0]);
}

TEST(backward_hook_identity_gradcheck) {
    gc_net_ = bk_nn_sequential(3, bk_nn_linear(3, 4), bk_nn_tanh(), bk_nn_linear(4, 2));
    bw_record rec = {0};
    for (int i = 0; i < 3; i++)
        CHECK(bk_module_add_backward_hook(bk_module_child(gc_net_, i), record_bw, &rec) >= 0);
    CHECK(bk_module_add_backward_hook(gc_net_, record_bw, &rec) >= 0);
    bk_tensor *x = bk_requires_grad(bk_randn(BK_SHAPE(2, 3)), true);
    CHECK(gradcheck_ok("Sequential with backward hooks", gc_forward, &x, 1, NULL));
    CHECK(rec.calls > 0);
    bk_module_free(gc_net_);
}

int main(void) {
    bk_manual_seed(test_seed("test_hooks"));
    RUN(order_and_replacement);
    RUN(inside_a_sequential_and_failing);
    RUN(tensor_hook_replaces_an_interior_gradient);
    RUN(tensor_hook_on_a_leaf_gets_the_contribution);
    RUN(backward_hook_sees_and_replaces_grad_input);
    RUN(backward_hooks_in_a_sequential_and_failing);
    RUN(backward_hook_identity_gradcheck);
    return test_summary("test_hooks");
}
