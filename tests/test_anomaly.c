/* test_anomaly.c - anomaly mode (bk_set_detect_anomaly): the first op whose forward output
 * or backward gradient holds a NaN or Inf fails, and the message names the op, the kind of
 * value and the block it ran in; off (the default) nothing is checked and nothing fails.
 */
#include "test.h"

static bool has_nonfinite(const bk_tensor *t) {
    for (int64_t i = 0; i < t->numel; i++)
        if (!isfinite(t->data[i])) return true;
    return false;
}

/* ---- blocks for the block-name tests ---------------------------------------------------- */

/* Log: forward(x) = log(x). Sqrt: forward(x) = sqrt(x). */
static bk_tensor *log_forward(bk_module *m, bk_tensor *x) {
    (void)m;
    return bk_log(x);
}
static bk_tensor *sqrt_forward(bk_module *m, bk_tensor *x) {
    (void)m;
    return bk_sqrt(x);
}
static const bk_module_class LOG_CLASS = {"Log", log_forward, NULL, NULL};
static const bk_module_class SQRT_CLASS = {"Sqrt", sqrt_forward, NULL, NULL};
static bk_module *new_block(const bk_module_class *cls) { return bk_module_new(cls, sizeof(bk_module)); }

/* A block with a named child: Net { act } forward = act(x) * 0 (so the gradient reaching
 * act is 0, and 0 * Inf gives NaN in sqrt's backward). */
typedef struct {
    bk_module base;
    bk_module *act;
} Net;
static bk_tensor *net_forward(bk_module *m, bk_tensor *x) {
    return bk_mul_scalar(bk_forward(((Net *)m)->act, x), 0.0f);
}
static const bk_module_class NET_CLASS = {"Net", net_forward, NULL, NULL};
static bk_module *new_net(bk_module *act) {
    Net *n = (Net *)bk_module_new(&NET_CLASS, sizeof(Net));
    if (!n) {
        bk_module_free(act);
        return NULL;
    }
    n->act = bk_module_add(&n->base, "act", act);
    return &n->base;
}

/* ---- off by default ------------------------------------------------------------------- */

TEST(off_by_default_nothing_checked) {
    CHECK(!bk_is_detect_anomaly());
    bk_tensor *x = bk_from_data(BK_SHAPE(2), (const float[]){-1.0f, 1000.0f});
    bk_requires_grad(x, true);
    bk_tensor *y = bk_log(x), *z = bk_exp(x);
    CHECK(y && z);
    CHECK(y && isnan(y->data[0]));
    CHECK(z && isinf(z->data[1]));
    CHECK(!bk_last_error()[0]);
    bk_tensor *s = bk_sqrt(bk_zeros(BK_SHAPE(1)));
    CHECK(s && s->data[0] == 0.0f);
    bk_tensor *l = bk_sum(bk_add(y, z));
    CHECK(l && bk_backward(l) == 0); /* NaN gradients, no error */
    CHECK(x->grad && has_nonfinite(x->grad));
    CHECK(!bk_last_error()[0]);
}

TEST(set_returns_previous_state) {
    CHECK(bk_set_detect_anomaly(true) == false);
    CHECK(bk_is_detect_anomaly());
    CHECK(bk_set_detect_anomaly(true) == true);
    CHECK(bk_set_detect_anomaly(false) == true);
    CHECK(!bk_is_detect_anomaly());
}

/* ---- forward ------------------------------------------------------------------------- */

TEST(log_of_negative_is_named) {
    bool prev = bk_set_detect_anomaly(true);
    bk_tensor *x = bk_from_data(BK_SHAPE(3), (const float[]){1.0f, -1.0f, 2.0f});
    CHECK_ERRS(bk_log(x), "anomaly: op 'log' produced NaN in its output", "at index 1",
               "(outside any block)");
    /* grad mode off (evaluation) is checked too */
    bool g = bk_set_grad_enabled(false);
    CHECK_ERRS(bk_log(x), "op 'log' produced NaN");
    bk_set_grad_enabled(g);
    /* finite values pass */
    bk_tensor *ok = bk_log(bk_ones(BK_SHAPE(4)));
    CHECK(ok && ok->data[0] == 0.0f && !bk_last_error()[0]);
    bk_set_detect_anomaly(prev);
}

TEST(exp_overflow_is_named_inf) {
    bool prev = bk_set_detect_anomaly(true);
    bk_tensor *x = bk_from_data(BK_SHAPE(2), (const float[]){0.0f, 1000.0f});
    CHECK_ERRS(bk_exp(x), "anomaly: op 'exp' produced Inf in its output", "at index 1");
    CHECK_ERRS(bk_log(bk_zeros(BK_SHAPE(1))), "op 'log' produced -Inf");
    bk_set_detect_anomaly(prev);
}

TEST(nan_propagates_as_null_through_a_forward) {
    bool prev = bk_set_detect_anomaly(true);
    bk_tensor *x = bk_from_data(BK_SHAPE(2), (const float[]){-1.0f, 1.0f});
    bk_clear_error();
    /* the first failing op's message survives the ops after it */
    bk_tensor *y = bk_sum(bk_mul_scalar(bk_log(x), 2.0f));
    CHECK(y == NULL);
    CHECK(strstr(bk_last_error(), "op 'log' produced NaN") != NULL);
    bk_clear_error();
    bk_set_detect_anomaly(prev);
}

TEST(nonfinite_input_is_told_apart) {
    bool prev = bk_set_detect_anomaly(true);
    bk_tensor *x = bk_from_data(BK_SHAPE(3), (const float[]){1.0f, NAN, 2.0f});
    CHECK_ERRS(bk_mul_scalar(x, 2.0f), "anomaly: op 'mul_scalar' got NaN in its input 0", "at index 1",
               "which no checked op produced");
    bk_set_detect_anomaly(prev);
}

TEST(block_name_in_forward) {
    bk_module *seq = bk_nn_sequential(2, bk_nn_linear(3, 2), new_block(&LOG_CLASS));
    bk_module *outer = bk_nn_sequential(2, bk_nn_identity(), seq);
    CHECK(outer != NULL);
    bk_tensor *w = bk_module_get(outer, "1.0.weight"), *b = bk_module_get(outer, "1.0.bias");
    CHECK(w && b);
    if (!outer || !w || !b) return;
    bk_fill(w, 0.0f);
    bk_fill(b, -1.0f); /* Linear gives -1, Log gives NaN */
    bk_tensor *x = bk_ones(BK_SHAPE(4, 3));
    bool prev = bk_set_detect_anomaly(true);
    CHECK_ERRS(bk_forward(outer, x), "anomaly: op 'log' produced NaN", "(in Sequential/1:Sequential/1:Log)");
    /* the message is not prefixed with "in Log(): " by bk_forward */
    bk_clear_error();
    CHECK(bk_forward(outer, x) == NULL);
    CHECK(strncmp(bk_last_error(), "anomaly: ", 9) == 0);
    bk_clear_error();
    /* the stack unwound: an op now runs outside any block */
    CHECK_ERRS(bk_log(bk_full(BK_SHAPE(1), -2.0f)), "(outside any block)");
    /* off: the same forward runs and gives NaN */
    bk_set_detect_anomaly(false);
    bk_tensor *y = bk_forward(outer, x);
    CHECK(y && has_nonfinite(y) && !bk_last_error()[0]);
    bk_set_detect_anomaly(prev);
    bk_module_free(outer);
}

TEST(nonfinite_parameter_is_named) {
    bk_module *net = bk_nn_sequential(2, bk_nn_linear(3, 2), bk_nn_relu());
    bk_tensor *w = bk_module_get(net, "0.weight");
    CHECK(net && w);
    if (!net || !w) return;
    w->data[4] = INFINITY; /* what a diverging optimizer step leaves */
    bool prev = bk_set_detect_anomaly(true);
    CHECK_ERRS(bk_forward(net, bk_ones(BK_SHAPE(2, 3))), "anomaly: op 'linear' got Inf in its input 1",
               "parameter 'weight' of Sequential/0:Linear", "at index 4");
    bk_set_detect_anomaly(prev);
    bk_module_free(net);
}

TEST(deep_nesting_is_shortened) {
    bk_module *m = new_block(&LOG_CLASS);
    for (int i = 0; i < 20 && m; i++) m = bk_nn_sequential(1, m);
    CHECK(m != NULL);
    if (!m) return;
    bool prev = bk_set_detect_anomaly(true);
    CHECK_ERRS(bk_forward(m, bk_full(BK_SHAPE(1), -1.0f)), "op 'log' produced NaN",
               "(in Sequential/0:Sequential/...(15 levels).../0:Sequential/0:Sequential/0:Sequential/0:Log)");
    /* deeper than the stack keeps: the rest is counted */
    for (int i = 0; i < 50 && m; i++) m = bk_nn_sequential(1, m);
    CHECK(m != NULL);
    if (!m) return;
    CHECK_ERRS(bk_forward(m, bk_full(BK_SHAPE(1), -1.0f)), "op 'log' produced NaN", "/...(7 more))");
    CHECK_ERRS(bk_log(bk_full(BK_SHAPE(1), -2.0f)), "(outside any block)");
    /* and a deep forward that is fine still works */
    bk_tensor *y = bk_forward(m, bk_full(BK_SHAPE(1), 1.0f));
    CHECK(y && y->data[0] == 0.0f);
    bk_set_detect_anomaly(prev);
    bk_module_free(m);
}

/* ---- backward ------------------------------------------------------------------------ */

TEST(backward_inf_from_sqrt_at_zero) {
    bk_tensor *x = bk_requires_grad(bk_from_data(BK_SHAPE(2), (const float[]){4.0f, 0.0f}), true);
    bool prev = bk_set_detect_anomaly(true);
    bk_tensor *y = bk_sum(bk_sqrt(x)); /* forward finite: sqrt(0) = 0 */
    CHECK(y != NULL);
    if (!y) return;
    CHECK_ERRS(bk_backward(y) == 0 ? (void *)1 : NULL,
               "anomaly: op 'sqrt' produced Inf in the gradient of its input 0", "at index 1",
               "during backward (outside any block)");
    bk_set_detect_anomaly(prev);
}

TEST(backward_nan_named_with_its_block) {
    bk_module *net = new_net(new_block(&SQRT_CLASS));
    CHECK(net != NULL);
    if (!net) return;
    bk_tensor *x = bk_requires_grad(bk_from_data(BK_SHAPE(2), (const float[]){0.0f, 1.0f}), true);
    bool prev = bk_set_detect_anomaly(true);
    bk_tensor *y = bk_sum(bk_forward(net, x));
    CHECK(y != NULL);
    if (y)
        CHECK_ERRS(bk_backward(y) == 0 ? (void *)1 : NULL,
                   "anomaly: op 'sqrt' produced NaN in the gradient of its input 0",
                   "during backward (in Net/act:Sqrt)");
    /* recorded with the mode off, the block is unknown and not guessed */
    bk_set_detect_anomaly(false);
    bk_tensor *y2 = bk_sum(bk_forward(net, x));
    bk_set_detect_anomaly(true);
    if (y2) {
        CHECK_ERRS(bk_backward(y2) == 0 ? (void *)1 : NULL, "op 'sqrt' produced NaN");
        bk_clear_error();
        bk_tensor *y3 = bk_sum(bk_forward(net, x));
        bk_set_detect_anomaly(false);
        CHECK(y3 && bk_backward(y3) == 0); /* off: no error, NaN gradient */
        CHECK(x->grad && has_nonfinite(x->grad));
    }
    bk_set_detect_anomaly(prev);
    bk_module_free(net);
}

/* A user-defined op goes through bk_op_record, so it is checked too. */
static void twice_backward(bk_node *n) {
    bk_tensor *dx = bk_node_grad_input(n, 0);
    const bk_tensor *dy = bk_node_grad_output(n);
    if (dx)
        for (int64_t i = 0; i < dx->numel; i++) dx->data[i] += 2.0f * dy->data[i] * 1e38f;
}
static const bk_op TWICE = {"twice_user_op", twice_backward};
static bk_tensor *twice(bk_tensor *x) {
    bk_tensor *y = bk_empty(x->ndim, x->shape);
    if (!y) return NULL;
    for (int64_t i = 0; i < x->numel; i++) y->data[i] = 2.0f * x->data[i];
    return bk_op_record(&TWICE, y, 1, &x, NULL, 0);
}

TEST(user_ops_are_checked) {
    bool prev = bk_set_detect_anomaly(true);
    bk_tensor *x = bk_requires_grad(bk_from_data(BK_SHAPE(2), (const float[]){1.0f, 3e38f}), true);
    CHECK_ERRS(twice(x), "anomaly: op 'twice_user_op' produced Inf in its output");
    bk_tensor *x2 = bk_requires_grad(bk_from_data(BK_SHAPE(2), (const float[]){1.0f, 2.0f}), true);
    bk_tensor *y = bk_sum(bk_mul_scalar(twice(x2), 10.0f));
    CHECK(y != NULL);
    if (y)
        CHECK_ERRS(bk_backward(y) == 0 ? (void *)1 : NULL,
                   "op 'twice_user_op' produced Inf in the gradient of its input 0");
    bk_set_detect_anomaly(prev);
}

/* ---- a training step: same numbers with the mode on, and it allocates nothing new ------ */

static void train_steps(bool anomaly, int steps, float *out_weights) {
    bk_manual_seed(7);
    bk_module *net = bk_nn_sequential(4, bk_nn_flatten(1, -1), bk_nn_linear(12, 16), bk_nn_relu(),
                                      bk_nn_linear(16, 3));
    bk_optim *o = bk_optim_sgd(net, BK_SGD_DEFAULTS(0.1));
    bk_rng rng;
    bk_rng_seed(&rng, 3);
    bool prev = bk_set_detect_anomaly(anomaly);
    for (int s = 0; s < steps && net && o; s++) {
        bk_tensor *x = bk_randn_rng(&rng, BK_SHAPE(8, 3, 4));
        int64_t y[8];
        for (int i = 0; i < 8; i++) y[i] = (int64_t)(bk_rng_u32(&rng) % 3);
        bk_tensor *loss = bk_cross_entropy(bk_forward(net, x), y, 8, BK_REDUCTION_MEAN);
        bk_optim_zero_grad(o);
        CHECK(loss && bk_backward(loss) == 0 && bk_optim_step(o) == 0);
        bk_arena_reset(NULL);
    }
    bk_set_detect_anomaly(prev);
    bk_tensor *w = bk_module_get(net, "3.weight");
    CHECK(w != NULL);
    if (w) memcpy(out_weights, w->data, sizeof(float) * 48);
    bk_optim_free(o);
    bk_module_free(net);
}

TEST(training_is_unchanged_by_the_mode) {
    float off[48], on[48];
    train_steps(false, 20, off);
    train_steps(true, 20, on);
    CHECK(memcmp(off, on, sizeof off) == 0);
    CHECK(!bk_last_error()[0]);
}

int main(void) {
    RUN(off_by_default_nothing_checked);
    RUN(set_returns_previous_state);
    RUN(log_of_negative_is_named);
    RUN(exp_overflow_is_named_inf);
    RUN(nan_propagates_as_null_through_a_forward);
    RUN(nonfinite_input_is_told_apart);
    RUN(block_name_in_forward);
    RUN(nonfinite_parameter_is_named);
    RUN(deep_nesting_is_shortened);
    RUN(backward_inf_from_sqrt_at_zero);
    RUN(backward_nan_named_with_its_block);
    RUN(user_ops_are_checked);
    RUN(training_is_unchanged_by_the_mode);
    return test_summary("test_anomaly");
}
