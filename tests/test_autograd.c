/* test_autograd.c - the semantics of brick's autograd and arenas, as PyTorch users expect
 * them: accumulation until zero_grad, shared layers, no-grad mode, detach, retain_graph,
 * user-defined ops, data-dependent control flow, and a training step that allocates
 * nothing once warmed up.
 *
 * Values come from the default generator seeded with $BRICK_TEST_SEED (else $BRICK_SEED,
 * else the clock), printed first.
 */
#include "test.h"
#include "gradcheck.h"

#include <time.h>

/* ---- helpers ---------------------------------------------------------------------------- */

/* A leaf (arena) tensor of the given shape, values uniform in [lo, hi], requiring grad. */
static bk_tensor *leaf(int nd, const int64_t *shape, float lo, float hi) {
    bk_tensor *t = bk_empty(nd, shape);
    if (t) bk_fill_uniform(t, NULL, lo, hi);
    return bk_requires_grad(t, true);
}

/* max |a - b * scale| over the elements (INFINITY when either is missing or sizes differ). */
static double max_diff(const bk_tensor *a, const bk_tensor *b, double scale) {
    if (!a || !b || a->numel != b->numel) return INFINITY;
    double m = 0;
    for (int64_t i = 0; i < a->numel; i++) {
        double d = fabs((double)a->data[i] - scale * (double)b->data[i]);
        if (!(d <= m)) m = d;
    }
    return m;
}

/* Heap copies of every parameter's gradient of m (NULL entries for params without one). */
typedef struct grads {
    int n;
    bk_tensor *g[16];
} grads;

static grads grads_copy(const bk_module *m) {
    grads gs = {0, {0}};
    bk_param_list *l = bk_module_named(m, BK_PARAMS);
    for (int i = 0; l && i < l->n && i < 16; i++) gs.g[gs.n++] = bk_tensor_clone_owned(l->tensors[i]->grad);
    bk_param_list_free(l);
    return gs;
}

static void grads_free(grads *gs) {
    for (int i = 0; i < gs->n; i++) bk_tensor_free(gs->g[i]);
    gs->n = 0;
}

/* forward(m, x), summed, backward. */
static int sum_backward(bk_module *m, bk_tensor *x) { return bk_backward(bk_sum(bk_forward(m, x))); }

/* ---- accumulation ------------------------------------------------------------------------- */

TEST(grads_accumulate_until_zeroed) {
    bk_module *net = bk_nn_sequential(3, bk_nn_linear(3, 4), bk_nn_tanh(), bk_nn_linear(4, 2));
    bk_tensor *x = bk_randn(BK_SHAPE(5, 3));
    CHECK(sum_backward(net, x) == 0);
    grads once = grads_copy(net);
    CHECK(once.n == 4);
    for (int i = 0; i < once.n; i++) CHECK(once.g[i] != NULL);
    CHECK(sum_backward(net, x) == 0); /* a second backward adds the same gradient again */
    bk_param_list *l = bk_module_named(net, BK_PARAMS);
    for (int i = 0; l && i < l->n; i++) CHECK(max_diff(l->tensors[i]->grad, once.g[i], 2.0) <= 1e-6);
    bk_module_zero_grad(net);
    for (int i = 0; l && i < l->n; i++) CHECK(all_equal(l->tensors[i]->grad, 0.0f));
    CHECK(sum_backward(net, x) == 0);
    for (int i = 0; l && i < l->n; i++) CHECK(max_diff(l->tensors[i]->grad, once.g[i], 1.0) == 0);
    bk_param_list_free(l);
    grads_free(&once);
    bk_module_free(net);
}

/* ---- gradients written, not added, by the first consumer ------------------------------
 * A backward that writes all of an input's gradient gets a new buffer unfilled and assigns
 * it (no memset per gradient); a later consumer of the same tensor adds. For each such op
 * f, and x used by f once, twice, and by f and a plain x * S in either order: the gradient
 * of x from an unfilled start (x->grad NULL) equals, bit for bit, the one added into a
 * zero-filled gradient given beforehand (the accumulate path everywhere). */
static bk_tensor *fw_conv_w, *fw_bn_rm, *fw_bn_rv, *fw_bn_w, *fw_bn_b, *fw_row;
static bk_tensor *fw_relu(bk_tensor *x) { return bk_relu(x); }
static bk_tensor *fw_add_a(bk_tensor *x) { return bk_add(x, fw_row); }
static bk_tensor *fw_add_b(bk_tensor *x) { return bk_sub(fw_row, x); }
static bk_tensor *fw_add_self(bk_tensor *x) { return bk_add(x, x); }
static bk_tensor *fw_mul_bcast(bk_tensor *x) { return bk_mul(x, fw_row); }
static bk_tensor *fw_bn(bk_tensor *x) {
    return bk_batch_norm(x, fw_bn_rm, fw_bn_rv, fw_bn_w, fw_bn_b, true, 0.1f, 1e-5f);
}
static bk_tensor *fw_conv_direct(bk_tensor *x) {
    return bk_conv2d(x, fw_conv_w, NULL, (bk_conv2d_opts){{1, 1}, {1, 1}, {1, 1}, 1});
}
static bk_tensor *fw_conv_im2col(bk_tensor *x) {
    return bk_conv2d(x, fw_conv_w, NULL, (bk_conv2d_opts){{2, 2}, {1, 1}, {1, 1}, 1});
}
static bk_tensor *fw_maxpool(bk_tensor *x) {
    return bk_max_pool2d(x, (bk_pool2d_opts){{2, 2}, {2, 2}, {0, 0}});
}
static bk_tensor *fw_avgpool(bk_tensor *x) {
    return bk_avg_pool2d(x, (bk_pool2d_opts){{3, 3}, {1, 1}, {1, 1}});
}

/* x's gradient of scenario k (0: f once, 1: twice, 2 and 3: with x * S after or before),
 * from x->grad = start (NULL: none yet) */
static bk_tensor *fw_grad(bk_tensor *(*f)(bk_tensor *), bk_tensor *x, bk_tensor *R, bk_tensor *S, int k,
                          bk_tensor *start) {
    x->grad = start;
    bk_tensor *a = bk_sum(bk_mul(f(x), R)), *b = k == 1 ? bk_sum(bk_mul(f(x), R)) : bk_sum(bk_mul(x, S));
    bk_tensor *loss = k == 0 ? a : k == 3 ? bk_add(b, a) : bk_add(a, b);
    return bk_backward(loss) == 0 ? x->grad : NULL;
}

TEST(first_gradient_write_assigns) {
    struct {
        const char *name;
        bk_tensor *(*f)(bk_tensor *);
    } ops[] = {{"relu", fw_relu},
               {"add (a)", fw_add_a},
               {"sub (b)", fw_add_b},
               {"add (x, x)", fw_add_self},
               {"mul broadcast", fw_mul_bcast},
               {"batch_norm", fw_bn},
               {"conv2d direct", fw_conv_direct},
               {"conv2d im2col", fw_conv_im2col},
               {"max_pool2d", fw_maxpool},
               {"avg_pool2d", fw_avgpool}};
    const int64_t shape[4] = {3, 4, 6, 6};
    for (size_t k = 0; k < sizeof ops / sizeof ops[0]; k++) {
        fw_conv_w = bk_randn(BK_SHAPE(4, 4, 3, 3));
        fw_bn_rm = bk_zeros(BK_SHAPE(4)), fw_bn_rv = bk_ones(BK_SHAPE(4));
        fw_bn_w = bk_randn(BK_SHAPE(4)), fw_bn_b = bk_randn(BK_SHAPE(4));
        fw_row = bk_randn(BK_SHAPE(6));
        bk_tensor *x = bk_requires_grad(bk_randn(4, shape), true), *S = bk_randn(4, shape);
        bk_tensor *y0 = ops[k].f(x);
        CHECK(y0 != NULL);
        if (!y0) continue;
        bk_tensor *R = bk_randn(y0->ndim, y0->shape);
        for (int sc = 0; sc < 4; sc++) {
            bk_tensor *got = fw_grad(ops[k].f, x, R, S, sc, NULL);
            bk_tensor *want = fw_grad(ops[k].f, x, R, S, sc, bk_zeros(4, shape));
            bool same = got && want && got != want && max_diff(got, want, 1.0) == 0;
            CHECK(same);
            if (!same) fprintf(stderr, "# %s, scenario %d: the gradient differs\n", ops[k].name, sc);
        }
        bk_arena_reset(NULL);
    }
}

/* A layer registered twice (bk_module_ref, D2L's shared layer) gets the sum of the gradients
 * of both uses: compare with two independent copies holding the same weights. */
TEST(shared_layer_accumulates_both_uses) {
    bk_module *shared = bk_nn_linear(4, 4);
    bk_module *net = bk_nn_sequential(4, bk_nn_linear(3, 4), shared, bk_nn_tanh(), bk_module_ref(shared));
    bk_module *copy1 = bk_nn_linear(4, 4), *copy2 = bk_nn_linear(4, 4);
    bk_module *twin = bk_nn_sequential(4, bk_nn_linear(3, 4), copy1, bk_nn_tanh(), copy2);
    CHECK(net && twin);
    if (!net || !twin) goto out;
    /* same weights everywhere */
    const char *names[] = {"0.weight", "0.bias"};
    for (int i = 0; i < 2; i++) bk_copy(bk_module_get(twin, names[i]), bk_module_get(net, names[i]));
    const char *lin[] = {"weight", "bias"};
    for (int i = 0; i < 2; i++) {
        bk_copy(bk_module_get(copy1, lin[i]), bk_module_get(shared, lin[i]));
        bk_copy(bk_module_get(copy2, lin[i]), bk_module_get(shared, lin[i]));
    }
    CHECK(bk_module_num_params(net, false) == 3 * 4 + 4 + 4 * 4 + 4); /* shared counted once */
    bk_tensor *x = bk_randn(BK_SHAPE(6, 3));
    CHECK(sum_backward(net, x) == 0);
    CHECK(sum_backward(twin, x) == 0);
    for (int i = 0; i < 2; i++) {
        bk_tensor *g = bk_module_get(shared, lin[i])->grad;
        bk_tensor *want = bk_add(bk_module_get(copy1, lin[i])->grad, bk_module_get(copy2, lin[i])->grad);
        CHECK(test_compare(lin[i], g, want, 1e-5, 1e-6) <= 1);
        /* and it differs from either single use (both uses contribute) */
        CHECK(max_diff(g, bk_module_get(copy1, lin[i])->grad, 1.0) > 1e-4);
        CHECK(max_diff(g, bk_module_get(copy2, lin[i])->grad, 1.0) > 1e-4);
    }
out:
    bk_module_free(net); /* holds both references to shared: frees it once */
    bk_module_free(twin);
}

/* ---- no_grad and detach ------------------------------------------------------------------ */

TEST(no_grad_records_nothing) {
    bk_module *net = bk_nn_linear(3, 2);
    bk_tensor *x = leaf(BK_SHAPE(2, 3), -1, 1);
    CHECK(bk_is_grad_enabled());
    bool prev = bk_set_grad_enabled(false);
    CHECK(prev && !bk_is_grad_enabled());
    bk_tensor *y = bk_exp(bk_mul(x, x));
    bk_tensor *z = bk_forward(net, x);
    CHECK(y && !y->requires_grad && y->node == NULL);
    CHECK(z && !z->requires_grad && z->node == NULL);
    CHECK_FAILS_INT(bk_backward(bk_sum(z)), "does not require grad");
    CHECK(bk_set_grad_enabled(prev) == false);
    CHECK(bk_is_grad_enabled());
    y = bk_mul(x, x); /* recording again */
    CHECK(y && y->requires_grad && y->node != NULL && !strcmp(bk_node_op_name(y->node), "mul"));
    CHECK(x->grad == NULL && bk_module_get(net, "weight")->grad == NULL);
    bk_module_free(net);
}

TEST(detach_stops_gradient) {
    bk_tensor *x = leaf(BK_SHAPE(3, 2), -1, 1);
    /* y = 2x + detach(3x): dy/dx = 2 */
    bk_tensor *y = bk_add(bk_mul_scalar(x, 2), bk_detach(bk_mul_scalar(x, 3)));
    CHECK(bk_backward_ex(y, bk_ones(BK_SHAPE(3, 2)), false) == 0);
    CHECK(all_equal(x->grad, 2.0f));
    /* a leaf that does not require grad gets no gradient either */
    bk_tensor *c = bk_rand(BK_SHAPE(3, 2));
    bk_tensor *w = leaf(BK_SHAPE(3, 2), -1, 1);
    CHECK(bk_backward(bk_sum(bk_mul(c, w))) == 0);
    CHECK(c->grad == NULL && max_diff(w->grad, c, 1.0) == 0);
}

/* ---- backward: retain_graph, non-scalar roots --------------------------------------------- */

TEST(backward_twice_needs_retain_graph) {
    bk_tensor *x = leaf(BK_SHAPE(2, 3), -1, 1);
    bk_tensor *l = bk_sum(bk_exp(bk_mul(x, x))); /* interior nodes: mul, exp */
    CHECK(bk_backward(l) == 0);
    bk_tensor *once = bk_clone(bk_detach(x->grad));
    CHECK_FAILS_INT(bk_backward(l), "backward through the graph a second time");
    CHECK_FAILS_INT(bk_backward(l), "retain_graph");
    CHECK(max_diff(x->grad, once, 1.0) == 0); /* the failed calls changed nothing */
    /* with retain_graph the same graph runs again: leaf grads double (interior gradients
     * restart from zero each time, so not 3x) */
    x->grad = NULL; /* arena leaf: start afresh */
    bk_tensor *l2 = bk_sum(bk_exp(bk_mul(x, x)));
    CHECK(bk_backward_ex(l2, NULL, true) == 0);
    CHECK(max_diff(x->grad, once, 1.0) <= 1e-6);
    CHECK(bk_backward_ex(l2, NULL, true) == 0);
    CHECK(max_diff(x->grad, once, 2.0) <= 1e-6);
    CHECK(bk_backward(l2) == 0); /* last use releases it */
    CHECK(max_diff(x->grad, once, 3.0) <= 1e-5);
    CHECK_FAILS_INT(bk_backward(l2), "second time");
}

TEST(backward_non_scalar_needs_upstream) {
    bk_tensor *x = leaf(BK_SHAPE(2, 3), -1, 1);
    bk_tensor *y = bk_mul_scalar(x, 4);
    CHECK_FAILS_INT(bk_backward(y), "only for scalar outputs");
    CHECK_FAILS_INT(bk_backward(y), "(2, 3)");
    CHECK_FAILS_INT(bk_backward_ex(y, bk_ones(BK_SHAPE(3, 2, 1)), false), "(3, 2, 1)");
    CHECK(x->grad == NULL || all_equal(x->grad, 0.0f));
    bk_tensor *up = bk_full(BK_SHAPE(2, 3), 0.5f);
    CHECK(bk_backward_ex(y, up, false) == 0);
    CHECK(all_equal(x->grad, 2.0f));
    /* a one-element root of any rank is fine without upstream */
    bk_tensor *s = leaf(BK_SHAPE(1, 1), -1, 1);
    CHECK(bk_backward(bk_mul_scalar(s, 3)) == 0);
    CHECK(all_equal(s->grad, 3.0f));
}

/* ---- user-defined ops ---------------------------------------------------------------------- */

/* cube(x) = x^3, d/dx = 3 x^2 */
static void cube_backward(bk_node *n) {
    const bk_tensor *x = bk_node_input(n, 0), *dy = bk_node_grad_output(n);
    bk_tensor *dx = bk_node_grad_input(n, 0);
    if (dx)
        for (int64_t i = 0; i < x->numel; i++) dx->data[i] += 3 * x->data[i] * x->data[i] * dy->data[i];
}
static const bk_op CUBE = {"cube", cube_backward};

static bk_tensor *cube(bk_tensor *x) {
    if (!x) return NULL;
    bk_tensor *y = bk_empty(x->ndim, x->shape);
    if (y)
        for (int64_t i = 0; i < x->numel; i++) y->data[i] = x->data[i] * x->data[i] * x->data[i];
    return bk_op_record(&CUBE, y, 1, &x, NULL, 0);
}

/* axpy(a, b; alpha) = alpha a + b, with alpha a saved parameter */
typedef struct axpy_params {
    float alpha;
} axpy_params;

static void axpy_backward(bk_node *n) {
    const axpy_params *p = bk_node_params(n);
    const bk_tensor *dy = bk_node_grad_output(n);
    bk_tensor *da = bk_node_grad_input(n, 0), *db = bk_node_grad_input(n, 1);
    for (int64_t i = 0; i < dy->numel; i++) {
        if (da) da->data[i] += p->alpha * dy->data[i];
        if (db) db->data[i] += dy->data[i];
    }
}
static const bk_op AXPY = {"axpy", axpy_backward};

static bk_tensor *axpy(float alpha, bk_tensor *a, bk_tensor *b) {
    if (!a || !b) return NULL;
    bk_tensor *y = bk_empty(a->ndim, a->shape);
    if (y)
        for (int64_t i = 0; i < a->numel; i++) y->data[i] = alpha * a->data[i] + b->data[i];
    bk_tensor *in[2] = {a, b};
    axpy_params p = {alpha};
    return bk_op_record(&AXPY, y, 2, in, &p, sizeof p);
}

static bk_tensor *f_cube_axpy(bk_tensor *const *x, int n, void *ud) {
    (void)n, (void)ud;
    return cube(axpy(-1.5f, bk_tanh(x[0]), x[1]));
}

TEST(user_defined_ops) {
    bk_tensor *a = leaf(BK_SHAPE(3, 4), -1, 1), *b = leaf(BK_SHAPE(3, 4), -1, 1);
    bk_tensor *in[2] = {a, b};
    double r = bk_gradcheck(f_cube_axpy, in, 2, NULL, 1e-3, 5e-3, 1e-2, stderr);
    CHECK(r >= 0 && r <= 1);
    /* the node exposes what was recorded */
    bk_tensor *y = axpy(2.5f, a, b);
    CHECK(y && y->node && !strcmp(bk_node_op_name(y->node), "axpy") && bk_node_num_inputs(y->node) == 2);
    CHECK(y && bk_node_input(y->node, 0) == a && bk_node_input(y->node, 1) == b &&
          bk_node_output(y->node) == y);
    const axpy_params *p = y ? bk_node_params(y->node) : NULL;
    CHECK(p && p->alpha == 2.5f);
    /* inputs that need no grad: no node */
    bk_tensor *c = bk_rand(BK_SHAPE(2));
    bk_tensor *z = cube(c);
    CHECK(z && z->node == NULL && !z->requires_grad);
}

/* ---- control flow --------------------------------------------------------------------------- */

/* D2L's FixedHiddenMLP tail: while |X|.sum() > 1: X /= 2. The graph is whatever ran, so
 * the result is x / 2^k and its gradient 2^-k (exact: powers of two). */
TEST(control_flow_while_loop) {
    for (int trial = 0; trial < 3; trial++) {
        float scale = (float)(1 << (3 * trial));
        bk_tensor *x = leaf(BK_SHAPE(2, 5), 0.5f * scale, 2.0f * scale);
        bk_tensor *y = x;
        int k = 0;
        while (bk_item(bk_sum(bk_abs(y))) > 1.0f && k < 100) {
            y = bk_div_scalar(y, 2);
            k++;
        }
        CHECK(k >= 3 + 3 * trial);
        CHECK(bk_backward(bk_sum(y)) == 0);
        CHECK(all_equal(x->grad, ldexpf(1.0f, -k)));
        bk_arena_reset(NULL);
    }
}

/* ---- arenas ------------------------------------------------------------------------------------ */

/* One training step on a fixed batch: forward, MSE by hand, backward, SGD by hand, reset.
 * Returns the loss. */
static float train_step(bk_module *net, bk_param_list *params, float lr) {
    bk_rng batch;
    bk_rng_seed(&batch, 1234);
    bk_tensor *x = bk_randn_rng(&batch, BK_SHAPE(64, 32));
    bk_tensor *target = bk_sum_dim(x, 1, true); /* (64, 1): a learnable function */
    bk_tensor *diff = bk_sub(bk_forward(net, x), target);
    bk_tensor *loss = bk_mean(bk_mul(diff, diff));
    float l = bk_item(loss);
    if (bk_backward(loss) != 0) return NAN;
    for (int i = 0; i < params->n; i++) {
        bk_tensor *p = params->tensors[i];
        for (int64_t j = 0; j < p->numel; j++) p->data[j] -= lr * p->grad->data[j];
    }
    bk_module_zero_grad(net);
    bk_arena_reset(NULL);
    return l;
}

TEST(arena_steady_state_allocates_nothing) {
    bk_arena *a = bk_arena_new();
    bk_arena *prev = bk_arena_use(a);
    /* (64, 1024) activations: a step needs several 1 MiB chunks at first */
    bk_module *net = bk_nn_sequential(3, bk_nn_linear(32, 1024), bk_nn_relu(), bk_nn_linear(1024, 1));
    bk_param_list *params = bk_module_named(net, BK_PARAMS);
    CHECK(net && params);
    if (!net || !params) goto out;
    uint64_t allocs[6];
    float loss[6];
    for (int s = 0; s < 6; s++) {
        loss[s] = train_step(net, params, 0.01f);
        allocs[s] = bk_arena_allocations(a);
        CHECK(isfinite(loss[s]));
        CHECK(bk_arena_bytes_used(a) == 0);
    }
    CHECK(bk_arena_bytes_reserved(a) > ((size_t)1 << 20));
    CHECK(allocs[0] > 0);
    for (int s = 2; s < 6; s++) {
        if (allocs[s] != allocs[1])
            fprintf(stderr, "  step %d: %llu arena allocations, step 2: %llu\n", s + 1,
                    (unsigned long long)allocs[s], (unsigned long long)allocs[1]);
        CHECK(allocs[s] == allocs[1]);
    }
    CHECK(loss[5] < loss[0]); /* and it trains */
out:
    bk_param_list_free(params);
    bk_module_free(net);
    bk_arena_use(prev);
    bk_arena_free(a);
}

TEST(arena_reset_releases_tensors) {
    bk_arena *a = bk_arena_new();
    bk_arena *prev = bk_arena_use(a);
    bk_tensor *t = bk_ones(BK_SHAPE(2, 2));
    bk_tensor *u = bk_mul_scalar(bk_requires_grad(bk_ones(BK_SHAPE(2)), true), 2);
    CHECK(bk_tensor_ok(t, "test") && bk_tensor_ok(u, "test"));
    bk_arena_reset(a);
    bk_clear_error();
    CHECK(!bk_tensor_ok(t, "test"));
    CHECK(strstr(bk_last_error(), "released") && strstr(bk_last_error(), "arena was reset"));
    CHECK(strstr(bk_last_error(), "test"));
    CHECK_ERR(bk_add(t, t), "add: input 0 is not a live tensor");
    CHECK_FAILS_INT(bk_backward(u), "released");
    bk_arena_use(prev);
    bk_arena_free(a);
}

TEST(arena_use_second_arena) {
    bk_arena *def = bk_arena_current();
    bk_tensor *t1 = bk_requires_grad(bk_full(BK_SHAPE(3), 2.0f), true);
    CHECK(t1 && t1->arena == def);
    bk_arena *a2 = bk_arena_new();
    bk_arena *prev = bk_arena_use(a2);
    CHECK(prev == def && bk_arena_current() == a2);
    bk_tensor *t2 = bk_full(BK_SHAPE(3), 5.0f);
    bk_tensor *y = bk_mul(t1, t2); /* inputs from two arenas; y and its node in a2 */
    CHECK(t2 && t2->arena == a2 && y && y->arena == a2);
    CHECK(bk_arena_bytes_used(a2) > 0);
    CHECK(bk_backward(bk_sum(y)) == 0);
    CHECK(all_equal(t1->grad, 5.0f) && t1->grad->arena == def); /* grads live with their tensor */
    bk_arena_reset(a2);
    CHECK(!bk_tensor_ok(t2, "t2") && !bk_tensor_ok(y, "y"));
    CHECK(bk_tensor_ok(t1, "t1") && bk_tensor_ok(t1->grad, "t1.grad")); /* other arena untouched */
    bk_clear_error();
    CHECK(bk_arena_use(prev) == a2 && bk_arena_current() == def);
    bk_tensor *t3 = bk_ones(BK_SHAPE(2));
    CHECK(t3 && t3->arena == def);
    bk_arena_free(a2);
    /* freeing the current arena falls back to the default one, no dangling current */
    bk_arena *a3 = bk_arena_new();
    bk_arena_use(a3);
    CHECK(bk_ones(BK_SHAPE(4)) != NULL);
    bk_arena_free(a3);
    CHECK(bk_arena_current() == def);
    bk_tensor *t4 = bk_ones(BK_SHAPE(2));
    CHECK(t4 && t4->arena == def);
    bk_arena_free(NULL); /* fine */
}

/* ---- main ------------------------------------------------------------------------------------ */

int main(void) {
    uint64_t seed = test_seed("test_autograd");
    bk_manual_seed(seed);
    RUN(grads_accumulate_until_zeroed);
    RUN(shared_layer_accumulates_both_uses);
    RUN(first_gradient_write_assigns);
    RUN(no_grad_records_nothing);
    RUN(detach_stops_gradient);
    RUN(backward_twice_needs_retain_graph);
    RUN(backward_non_scalar_needs_upstream);
    RUN(user_defined_ops);
    RUN(control_flow_while_loop);
    RUN(arena_steady_state_allocates_nothing);
    RUN(arena_reset_releases_tensors);
    RUN(arena_use_second_arena);
    return test_summary("test_autograd");
}
