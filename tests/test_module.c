/* test_module.c - the block system: naming, sharing, buffers, counting, modes, apply,
 * printing, Sequential, lookup, refcounting, and gradient checks of the blocks of D2L 5.1
 * written the way the examples write them (the built-in layers: test_module_layers.c).
 *
 * Expected strings and name lists come from PyTorch (1.13, /usr/bin/python3):
 * print(net), [n for n, _ in net.named_parameters()], list(net.state_dict()). The blocks
 * (MLP, MySequential, NestMLP, FixedHiddenMLP) are the examples' own (examples/blocks.h),
 * so the examples' blocks are what gets gradient-checked.
 */
#include "test.h"

#include "../examples/blocks.h"

/* chimera = nn.Sequential(NestMLP(), nn.Linear(16, 20), FixedHiddenMLP()) */
static bk_module *chimera_new(void) {
    return bk_nn_sequential(3, nest_mlp_new(), bk_nn_linear(16, 20), fixed_hidden_mlp_new());
}

/* ======================================================================================
 * Helpers
 * ====================================================================================== */

/* The list's names are exactly `want` (n of them), in order. */
static void check_names(const char *what, const bk_param_list *l, int n, const char *const *want) {
    bool same = l && l->n == n;
    for (int i = 0; same && i < n; i++) same = strcmp(l->names[i], want[i]) == 0;
    CHECK(same);
    if (same) return;
    fprintf(stderr, "    %s: got [", what);
    for (int i = 0; l && i < l->n; i++) fprintf(stderr, "%s%s", i ? ", " : "", l->names[i]);
    fprintf(stderr, "]\n    %s: want [", what);
    for (int i = 0; i < n; i++) fprintf(stderr, "%s%s", i ? ", " : "", want[i]);
    fprintf(stderr, "]\n");
}

#define CHECK_NAMES(l, ...)                                                 \
    do {                                                                    \
        static const char *const want_[] = {__VA_ARGS__};                   \
        check_names(#l, (l), (int)(sizeof want_ / sizeof want_[0]), want_); \
    } while (0)

/* bk_module_repr(m) is exactly `want` (print(net) in PyTorch). */
static void check_repr(const bk_module *m, const char *want) {
    char buf[4096];
    int n = bk_module_repr(m, buf, sizeof buf);
    CHECK(n == (int)strlen(buf));
    CHECK(strcmp(buf, want) == 0);
    if (strcmp(buf, want) != 0) fprintf(stderr, "    got:\n%s\n    want:\n%s\n", buf, want);
}

/* Number of parameters of m that have a gradient tensor, and whether all are zero. */
static int count_grads(const bk_module *m, bool *all_zero) {
    bk_param_list *l = bk_module_named(m, BK_PARAMS);
    int k = 0;
    *all_zero = true;
    for (int i = 0; l && i < l->n; i++) {
        const bk_tensor *g = l->tensors[i]->grad;
        if (!g) continue;
        k++;
        for (int64_t j = 0; j < g->numel; j++)
            if (g->data[j] != 0.0f) *all_zero = false;
    }
    bk_param_list_free(l);
    return k;
}

/* ======================================================================================
 * Named iteration
 * ====================================================================================== */

TEST(named_chimera) {
    bk_module *chimera = chimera_new();
    CHECK(chimera != NULL);
    if (!chimera) return;
    bk_param_list *params = bk_module_named(chimera, BK_PARAMS);
    bk_param_list *buffers = bk_module_named(chimera, BK_BUFFERS);
    bk_param_list *state = bk_module_named(chimera, BK_STATE);
    CHECK_NAMES(params, "0.net.0.weight", "0.net.0.bias", "0.net.2.weight", "0.net.2.bias", "0.linear.weight",
                "0.linear.bias", "1.weight", "1.bias", "2.linear.weight", "2.linear.bias");
    CHECK_NAMES(buffers, "2.rand_weight");
    // torch with register_buffer("rand_weight", ...): own tensors first, then children
    CHECK_NAMES(state, "0.net.0.weight", "0.net.0.bias", "0.net.2.weight", "0.net.2.bias", "0.linear.weight",
                "0.linear.bias", "1.weight", "1.bias", "2.rand_weight", "2.linear.weight", "2.linear.bias");
    // each listed tensor is the one bk_module_get finds under that name
    for (int i = 0; params && i < params->n; i++) {
        CHECK(params->tensors[i] == bk_module_get(chimera, params->names[i]));
        CHECK(params->trainable[i]);
        CHECK(params->tensors[i]->requires_grad);
    }
    for (int i = 0; state && i < state->n; i++)
        CHECK(state->tensors[i] == bk_module_get(chimera, state->names[i]));
    CHECK(buffers && !buffers->trainable[0] && !buffers->tensors[0]->requires_grad);
    bk_param_list_free(params);
    bk_param_list_free(buffers);
    bk_param_list_free(state);
    bk_module_free(chimera);
}

TEST(named_own_tensors_before_children) {
    // A block registering a child, then a parameter, then a buffer: named_parameters and
    // state_dict still list its own tensors before its children's (torch's recursion).
    bk_module *m = bk_nn_sequential(0);
    bk_module *blk = my_sequential_new(1, bk_nn_linear(2, 3));
    CHECK(m && blk);
    if (!m || !blk) {
        bk_module_free(m);
        bk_module_free(blk);
        return;
    }
    CHECK(bk_module_param(blk, "scale", BK_SHAPE(3)) != NULL);
    CHECK(bk_module_buffer(blk, "running", BK_SHAPE(3), true) != NULL);
    CHECK(bk_nn_sequential_append(m, blk) == 0);
    bk_param_list *params = bk_module_named(m, BK_PARAMS);
    bk_param_list *state = bk_module_named(m, BK_STATE);
    CHECK_NAMES(params, "0.scale", "0.0.weight", "0.0.bias");
    CHECK_NAMES(state, "0.scale", "0.running", "0.0.weight", "0.0.bias");
    bk_param_list_free(params);
    bk_param_list_free(state);
    bk_module_free(m);
}

TEST(shared_parameter_listed_once) {
    // shared = nn.Linear(4, 4); net = nn.Sequential(shared, nn.ReLU(), shared)
    bk_manual_seed(1);
    bk_module *shared = bk_nn_linear(4, 4);
    bk_module *net = bk_nn_sequential(3, shared, bk_nn_relu(), bk_module_ref(shared));
    CHECK(net != NULL);
    if (!net) return;
    CHECK(shared->refcount == 2);
    CHECK(bk_nn_sequential_get(net, 0) == bk_nn_sequential_get(net, 2));
    bk_param_list *params = bk_module_named(net, BK_PARAMS);
    bk_param_list *state = bk_module_named(net, BK_STATE);
    CHECK_NAMES(params, "0.weight", "0.bias");                      // named_parameters: once
    CHECK_NAMES(state, "0.weight", "0.bias", "2.weight", "2.bias"); // state_dict: every name
    CHECK(state && state->n == 4 && state->tensors[0] == state->tensors[2]);
    CHECK(bk_module_num_params(net, false) == 20);
    CHECK(bk_module_get(net, "2.weight") == bk_module_get(net, "0.weight"));
    check_repr(net,
               "Sequential(\n"
               "  (0): Linear(in_features=4, out_features=4, bias=True)\n"
               "  (1): ReLU()\n"
               "  (2): Linear(in_features=4, out_features=4, bias=True)\n"
               ")");
    bk_param_list_free(params);
    bk_param_list_free(state);
    bk_module_free(net); // frees shared once (LSan/ASan check the count)
}

/* gradcheck callback: inputs[0] is X, the rest are the block's parameters (used in place). */
static bk_tensor *forward_fn(bk_tensor *const *inputs, int n, void *ud) {
    (void)n;
    return bk_forward((bk_module *)ud, inputs[0]);
}

/* Gradient check of net with respect to X and every parameter of net. */
static double gradcheck_block(bk_module *net, bk_tensor *X, bk_gradcheck_fn f, void *ud) {
    bk_param_list *l = bk_module_named(net, BK_PARAMS);
    if (!l || l->n > 31) {
        bk_param_list_free(l);
        return -1;
    }
    bk_tensor *inputs[32];
    inputs[0] = bk_requires_grad(X, true);
    for (int i = 0; i < l->n; i++) inputs[1 + i] = l->tensors[i];
    double worst = bk_gradcheck(f, inputs, 1 + l->n, ud, 1e-3, 1e-3, 1e-2, stderr);
    bk_param_list_free(l);
    return worst;
}

TEST(shared_layer_called_twice_gradients_add) {
    bk_manual_seed(2);
    bk_module *shared = bk_nn_linear(4, 4);
    bk_module *net = bk_nn_sequential(3, shared, bk_nn_tanh(), bk_module_ref(shared));
    bk_tensor *X = bk_randn(BK_SHAPE(3, 4));
    CHECK(net && X);
    if (!net || !X) {
        bk_module_free(net);
        return;
    }
    // the gradient of weight, through both uses, against central differences
    double worst = gradcheck_block(net, X, forward_fn, net);
    CHECK(worst >= 0 && worst <= 1);
    // and explicitly: it is the sum of the two uses' gradients (untied copies)
    bk_module_zero_grad(net);
    bk_module *a = bk_nn_linear(4, 4), *b = bk_nn_linear(4, 4);
    CHECK(a && b);
    if (a && b) {
        CHECK(bk_copy(bk_module_get(a, "weight"), bk_module_get(shared, "weight")) == 0);
        CHECK(bk_copy(bk_module_get(a, "bias"), bk_module_get(shared, "bias")) == 0);
        CHECK(bk_copy(bk_module_get(b, "weight"), bk_module_get(shared, "weight")) == 0);
        CHECK(bk_copy(bk_module_get(b, "bias"), bk_module_get(shared, "bias")) == 0);
        bk_tensor *Xc = bk_detach(X);
        CHECK(bk_backward(bk_sum(bk_forward(net, Xc))) == 0);
        CHECK(bk_backward(bk_sum(bk_forward(b, bk_tanh(bk_forward(a, Xc))))) == 0);
        const char *names[] = {"weight", "bias"};
        for (int k = 0; k < 2; k++) {
            const bk_tensor *g = bk_module_get(shared, names[k])->grad;
            const bk_tensor *ga = bk_module_get(a, names[k])->grad;
            const bk_tensor *gb = bk_module_get(b, names[k])->grad;
            CHECK(g && ga && gb);
            for (int64_t i = 0; g && ga && gb && i < g->numel; i++)
                CHECK_CLOSE(g->data[i], ga->data[i] + gb->data[i], 1e-5);
        }
    }
    bk_module_free(a);
    bk_module_free(b);
    bk_module_free(net);
}

TEST(buffers_persistent_and_not) {
    bk_module *m = bk_nn_linear(3, 2);
    CHECK(m != NULL);
    if (!m) return;
    bk_tensor *keep = bk_module_buffer(m, "running_mean", BK_SHAPE(2), true);
    bk_tensor *scratch = bk_module_buffer(m, "scratch", BK_SHAPE(5), false);
    CHECK(keep && scratch);
    CHECK(keep && !keep->requires_grad && keep->is_param);
    CHECK(scratch && !scratch->requires_grad);
    bk_param_list *params = bk_module_named(m, BK_PARAMS);
    bk_param_list *buffers = bk_module_named(m, BK_BUFFERS);
    bk_param_list *state = bk_module_named(m, BK_STATE);
    CHECK_NAMES(params, "weight", "bias");
    CHECK_NAMES(buffers, "running_mean", "scratch");      // named_buffers: all
    CHECK_NAMES(state, "weight", "bias", "running_mean"); // state_dict: persistent only
    CHECK(bk_module_num_params(m, false) == 8);           // buffers are not parameters
    CHECK(bk_module_get(m, "scratch") == scratch);
    // a buffer's name is taken like any attribute
    CHECK_ERR(bk_module_buffer(m, "weight", BK_SHAPE(1), true), "already exists");
    CHECK_ERR(bk_module_param(m, "scratch", BK_SHAPE(1)), "already exists");
    CHECK_ERR(bk_module_param(m, "a.b", BK_SHAPE(1)), "invalid name");
    // backward never gives a buffer a gradient
    bk_tensor *y = bk_forward(m, bk_rand(BK_SHAPE(4, 3)));
    CHECK(bk_backward(bk_sum(bk_add(y, bk_reshape(keep, BK_SHAPE(1, 2))))) == 0);
    CHECK(keep && keep->grad == NULL);
    CHECK(bk_module_get(m, "weight")->grad != NULL);
    bk_param_list_free(params);
    bk_param_list_free(buffers);
    bk_param_list_free(state);
    bk_module_free(m);
}

TEST(num_params_and_freezing) {
    bk_module *net = bk_nn_sequential(3, bk_nn_linear(20, 256), bk_nn_relu(), bk_nn_linear(256, 10));
    CHECK(net != NULL);
    if (!net) return;
    const int64_t all = 20 * 256 + 256 + 256 * 10 + 10;
    CHECK(bk_module_num_params(net, false) == all);
    CHECK(bk_module_num_params(net, true) == all);
    bk_module *first = bk_nn_sequential_get(net, 0);
    CHECK(bk_module_set_trainable(first, "weight", false) == 0); // net[0].weight.requires_grad_(False)
    CHECK(bk_module_num_params(net, false) == all);
    CHECK(bk_module_num_params(net, true) == all - 20 * 256);
    bk_param_list *params = bk_module_named(net, BK_PARAMS);
    CHECK_NAMES(params, "0.weight", "0.bias", "2.weight", "2.bias"); // still listed
    CHECK(params && !params->trainable[0] && params->trainable[1]);
    bk_param_list_free(params);
    // a frozen parameter gets no gradient
    CHECK(bk_backward(bk_sum(bk_forward(net, bk_rand(BK_SHAPE(2, 20))))) == 0);
    CHECK(bk_module_get(net, "0.weight")->grad == NULL);
    CHECK(bk_module_get(net, "0.bias")->grad != NULL);
    CHECK(bk_module_set_trainable(first, "weight", true) == 0);
    CHECK(bk_module_num_params(net, true) == all);
    CHECK_FAILS_INT(bk_module_set_trainable(first, "wieght", false), "no parameter \"wieght\"");
    // parameter-free blocks count zero
    bk_module *relu = bk_nn_relu();
    CHECK(bk_module_num_params(relu, false) == 0);
    bk_module_free(relu);
    bk_module_free(net);
}

/* ======================================================================================
 * Modes, zero_grad, apply
 * ====================================================================================== */

typedef struct {
    int n, n_training;
} mode_count;

static void count_training(bk_module *m, void *ud) {
    mode_count *c = ud;
    c->n++;
    c->n_training += m->training;
}

TEST(train_eval_recursive) {
    bk_module *chimera = chimera_new();
    CHECK(chimera != NULL);
    if (!chimera) return;
    mode_count c = {0, 0};
    bk_module_apply(chimera, count_training, &c);
    CHECK(c.n == 11);           // chimera + NestMLP's 7 + Linear + FixedHiddenMLP's 2 (apply_children_first)
    CHECK(c.n_training == c.n); // new blocks train
    bk_module_train(chimera, false); // chimera.eval()
    c = (mode_count){0, 0};
    bk_module_apply(chimera, count_training, &c);
    CHECK(c.n == 11 && c.n_training == 0);
    CHECK(!((NestMLP *)bk_nn_sequential_get(chimera, 0))->net->children[2].module->training);
    bk_module_train(bk_nn_sequential_get(chimera, 0), true); // a subtree only
    c = (mode_count){0, 0};
    bk_module_apply(chimera, count_training, &c);
    CHECK(c.n_training == 7);
    bk_module_train(chimera, true);
    c = (mode_count){0, 0};
    bk_module_apply(chimera, count_training, &c);
    CHECK(c.n_training == 11);
    bk_module_free(chimera);
}

TEST(zero_grad_zeroes_all) {
    bk_manual_seed(3);
    bk_module *chimera = chimera_new();
    CHECK(chimera != NULL);
    if (!chimera) return;
    bk_tensor *rand_weight = bk_module_get(chimera, "2.rand_weight");
    bk_tensor *before = bk_tensor_clone_owned(rand_weight);
    CHECK(bk_backward(bk_forward(chimera, bk_rand(BK_SHAPE(2, 20)))) == 0);
    bool all_zero;
    CHECK(count_grads(chimera, &all_zero) == 10);
    CHECK(!all_zero);
    bk_module_zero_grad(chimera);
    CHECK(count_grads(chimera, &all_zero) == 10);
    CHECK(all_zero);
    // buffers are kept
    for (int64_t i = 0; before && i < before->numel; i++) CHECK(rand_weight->data[i] == before->data[i]);
    // and gradients accumulate again from zero: two identical backwards give twice one
    bk_tensor *X = bk_rand(BK_SHAPE(2, 20));
    CHECK(bk_backward(bk_forward(chimera, X)) == 0);
    bk_tensor *once = bk_tensor_clone_owned(bk_module_get(chimera, "1.weight")->grad);
    CHECK(bk_backward(bk_forward(chimera, X)) == 0);
    const bk_tensor *twice = bk_module_get(chimera, "1.weight")->grad;
    for (int64_t i = 0; once && i < once->numel; i++) CHECK_CLOSE(twice->data[i], 2 * once->data[i], 1e-6);
    bk_tensor_free(once);
    bk_tensor_free(before);
    bk_module_free(chimera);
}

typedef struct {
    int n;
    const char *names[32];
    bk_module *mods[32];
} visit_log;

static void record_visit(bk_module *m, void *ud) {
    visit_log *v = ud;
    if (v->n < 32) {
        v->names[v->n] = bk_module_name(m);
        v->mods[v->n] = m;
    }
    v->n++;
}

TEST(apply_children_first) {
    bk_module *inner = bk_nn_sequential(2, bk_nn_linear(2, 2), bk_nn_tanh());
    bk_module *outer = bk_nn_sequential(3, bk_nn_linear(2, 2), bk_nn_relu(), inner);
    CHECK(outer != NULL);
    if (!outer) return;
    visit_log v = {0};
    bk_module_apply(outer, record_visit, &v);
    static const char *const want[] = {"Linear", "ReLU", "Linear", "Tanh", "Sequential", "Sequential"};
    CHECK(v.n == 6);
    for (int i = 0; i < 6 && i < v.n; i++) CHECK(strcmp(v.names[i], want[i]) == 0);
    CHECK(v.mods[4] == inner && v.mods[5] == outer && v.mods[3] == bk_nn_sequential_get(inner, 1));
    bk_module_free(outer);

    // the chimera, as torch's chimera.apply(lambda m: print(type(m).__name__)) prints it
    bk_module *chimera = chimera_new();
    CHECK(chimera != NULL);
    if (!chimera) return;
    v = (visit_log){0};
    bk_module_apply(chimera, record_visit, &v);
    static const char *const want2[] = {"Linear",     "ReLU",           "Linear",    "ReLU",
                                        "Sequential", "Linear",         "NestMLP",   "Linear",
                                        "Linear",     "FixedHiddenMLP", "Sequential"};
    CHECK(v.n == 11);
    for (int i = 0; i < 11 && i < v.n; i++) CHECK(strcmp(v.names[i], want2[i]) == 0);
    bk_module_free(chimera);
}

/* D2L's init_normal: nn.init.normal_(m.weight, mean=0, std=0.01); nn.init.zeros_(m.bias) */
static void init_normal(bk_module *m, void *ud) {
    int *n_linear = ud;
    if (strcmp(bk_module_name(m), "Linear") != 0) return;
    bk_fill_normal(bk_module_get(m, "weight"), NULL, 0.0f, 0.01f);
    bk_fill(bk_module_get(m, "bias"), 0.0f);
    (*n_linear)++;
}

TEST(apply_reinitialises) {
    bk_manual_seed(4);
    bk_module *chimera = chimera_new();
    CHECK(chimera != NULL);
    if (!chimera) return;
    bk_tensor *rand_weight = bk_module_get(chimera, "2.rand_weight");
    float rw0 = rand_weight->data[0];
    int n_linear = 0;
    bk_module_apply(chimera, init_normal, &n_linear);
    CHECK(n_linear == 5);
    bk_param_list *l = bk_module_named(chimera, BK_PARAMS);
    double sum = 0, sum2 = 0;
    int64_t n = 0;
    for (int i = 0; l && i < l->n; i++) {
        const bk_tensor *t = l->tensors[i];
        bool is_bias = strstr(l->names[i], "bias") != NULL;
        for (int64_t j = 0; j < t->numel; j++) {
            if (is_bias) {
                CHECK(t->data[j] == 0.0f);
                continue;
            }
            sum += t->data[j];
            sum2 += (double)t->data[j] * t->data[j];
            n++;
        }
    }
    CHECK(n == 20 * 64 + 64 * 32 + 32 * 16 + 16 * 20 + 20 * 20);
    double mean = sum / (double)n, std = sqrt(sum2 / (double)n - mean * mean);
    CHECK_CLOSE(mean, 0.0, 5e-4);       // ~ 5 standard errors (0.01 / sqrt(4580))
    CHECK_CLOSE(std, 0.01, 5e-4);       // standard error of the std ~ 1e-4
    CHECK(rand_weight->data[0] == rw0); // not a Linear: untouched
    bk_param_list_free(l);
    bk_module_free(chimera);
}

/* ======================================================================================
 * Printing: exactly PyTorch's print(net)
 * ====================================================================================== */

TEST(repr_sequential_mlp) {
    bk_module *net = bk_nn_sequential(3, bk_nn_linear(20, 256), bk_nn_relu(), bk_nn_linear(256, 10));
    CHECK(net != NULL);
    if (!net) return;
    check_repr(net,
               "Sequential(\n"
               "  (0): Linear(in_features=20, out_features=256, bias=True)\n"
               "  (1): ReLU()\n"
               "  (2): Linear(in_features=256, out_features=10, bias=True)\n"
               ")");
    // snprintf semantics: the full length is returned and a short buffer is terminated
    char small[12];
    int n = bk_module_repr(net, small, sizeof small);
    CHECK(n == bk_module_repr(net, NULL, 0));
    CHECK(n > (int)sizeof small && strlen(small) == sizeof small - 1);
    CHECK(strncmp(small, "Sequential(\n", sizeof small - 1) == 0);
    bk_module_free(net);
}

TEST(repr_chimera) {
    bk_module *chimera = chimera_new();
    CHECK(chimera != NULL);
    if (!chimera) return;
    check_repr(chimera,
               "Sequential(\n"
               "  (0): NestMLP(\n"
               "    (net): Sequential(\n"
               "      (0): Linear(in_features=20, out_features=64, bias=True)\n"
               "      (1): ReLU()\n"
               "      (2): Linear(in_features=64, out_features=32, bias=True)\n"
               "      (3): ReLU()\n"
               "    )\n"
               "    (linear): Linear(in_features=32, out_features=16, bias=True)\n"
               "  )\n"
               "  (1): Linear(in_features=16, out_features=20, bias=True)\n"
               "  (2): FixedHiddenMLP(\n"
               "    (linear): Linear(in_features=20, out_features=20, bias=True)\n"
               "  )\n"
               ")");
    bk_module_free(chimera);
}

TEST(repr_other_blocks) {
    bk_module *net = bk_nn_sequential(5, bk_nn_flatten(1, -1), bk_nn_identity(), bk_nn_tanh(),
                                      bk_nn_sigmoid(), bk_nn_linear_ex(3, 4, false));
    bk_module *mlp = mlp_new(20, 256, 10);
    bk_module *myseq = my_sequential_new(2, bk_nn_linear(4, 8), bk_nn_relu());
    bk_module *empty = bk_nn_sequential(0);
    CHECK(net && mlp && myseq && empty);
    if (net)
        check_repr(net,
                   "Sequential(\n"
                   "  (0): Flatten(start_dim=1, end_dim=-1)\n"
                   "  (1): Identity()\n"
                   "  (2): Tanh()\n"
                   "  (3): Sigmoid()\n"
                   "  (4): Linear(in_features=3, out_features=4, bias=False)\n"
                   ")");
    if (mlp)
        check_repr(mlp,
                   "MLP(\n"
                   "  (hidden): Linear(in_features=20, out_features=256, bias=True)\n"
                   "  (out): Linear(in_features=256, out_features=10, bias=True)\n"
                   ")");
    if (myseq)
        check_repr(myseq,
                   "MySequential(\n"
                   "  (0): Linear(in_features=4, out_features=8, bias=True)\n"
                   "  (1): ReLU()\n"
                   ")");
    if (empty) check_repr(empty, "Sequential()");
    bk_module_free(net);
    bk_module_free(mlp);
    bk_module_free(myseq);
    bk_module_free(empty);
}

/* ======================================================================================
 * Sequential, lookup, refcounting
 * ====================================================================================== */

TEST(sequential_len_get_append) {
    bk_module *chimera = chimera_new();
    CHECK(chimera != NULL);
    if (!chimera) return;
    CHECK(bk_nn_sequential_len(chimera) == 3);
    CHECK(bk_nn_sequential_get(chimera, 0) == bk_module_child(chimera, 0));
    CHECK(bk_nn_sequential_get(chimera, -1) == bk_module_child(chimera, 2));
    CHECK(bk_nn_sequential_get(chimera, -3) == bk_module_child(chimera, 0));
    CHECK(bk_nn_sequential_get(chimera, 1) == bk_module_child_by_name(chimera, "1"));
    CHECK(strcmp(bk_module_name(bk_nn_sequential_get(chimera, -1)), "FixedHiddenMLP") == 0);
    CHECK_ERR(bk_nn_sequential_get(chimera, 3), "out of range");
    CHECK_ERR(bk_nn_sequential_get(chimera, -4), "out of range");
    // chimera.append(nn.Linear(1, 1)): registered as "3"
    bk_module *extra = bk_nn_linear(1, 1);
    CHECK(bk_nn_sequential_append(chimera, extra) == 0);
    CHECK(bk_nn_sequential_len(chimera) == 4);
    CHECK(bk_nn_sequential_get(chimera, -1) == extra);
    CHECK(bk_module_child_by_name(chimera, "3") == extra);
    CHECK(bk_module_get(chimera, "3.weight") == bk_module_get(extra, "weight"));
    // not a Sequential: refused (and append still takes ownership of the block)
    bk_module *nest = bk_nn_sequential_get(chimera, 0);
    CHECK_ERR(bk_nn_sequential_get(nest, 0), "expected a Sequential, got NestMLP");
    CHECK_FAILS_INT(bk_nn_sequential_len(nest), "expected a Sequential");
    CHECK_FAILS_INT(bk_nn_sequential_append(nest, bk_nn_relu()), "expected a Sequential");
    CHECK_FAILS_INT(bk_nn_sequential_append(chimera, NULL), "NULL");
    CHECK(bk_nn_sequential_len(chimera) == 4);
    bk_module_free(chimera);
}

TEST(module_get_dotted) {
    bk_module *chimera = chimera_new();
    CHECK(chimera != NULL);
    if (!chimera) return;
    NestMLP *nest = (NestMLP *)bk_nn_sequential_get(chimera, 0);
    FixedHiddenMLP *fixed = (FixedHiddenMLP *)bk_nn_sequential_get(chimera, 2);
    CHECK(bk_module_get(chimera, "0.net.2.weight") ==
          bk_module_get(bk_nn_sequential_get(nest->net, 2), "weight"));
    CHECK(bk_module_get(chimera, "0.linear.bias") == bk_module_get(nest->linear, "bias"));
    CHECK(bk_module_get(chimera, "2.rand_weight") == fixed->rand_weight);
    CHECK(bk_module_get(chimera, "2.linear.weight") == bk_module_get(fixed->linear, "weight"));
    bk_tensor *w = bk_module_get(chimera, "0.net.0.weight");
    CHECK(w && w->ndim == 2 && w->shape[0] == 64 && w->shape[1] == 20);
    CHECK_ERR(bk_module_get(chimera, "0.net.5.weight"), "no parameter or buffer \"0.net.5.weight\"");
    CHECK_ERR(bk_module_get(chimera, "0.net"), "no parameter or buffer"); // a block, not a tensor
    CHECK_ERR(bk_module_get(chimera, "0.net.0.weight.x"), "no parameter or buffer");
    CHECK_ERR(bk_module_get(chimera, "0.net.0.weigh"), "no parameter or buffer");
    CHECK_ERR(bk_module_get(chimera, ""), "no parameter or buffer");
    CHECK_ERR(bk_module_get(chimera, NULL), "NULL");
    CHECK(bk_module_child_by_name(chimera, "0") == &nest->base);
    CHECK_ERR(bk_module_child_by_name(chimera, "7"), "no child \"7\"");
    CHECK_ERR(bk_module_child(chimera, 3), "out of range");
    bk_module_free(chimera);
}

TEST(refcount_two_parents) {
    bk_manual_seed(5);
    bk_module *lin = bk_nn_linear(3, 2);
    bk_module *a = bk_nn_sequential(1, lin);
    bk_module *b = bk_nn_sequential(2, bk_module_ref(lin), bk_nn_relu());
    CHECK(a && b && lin->refcount == 2);
    if (!a || !b) {
        bk_module_free(a);
        bk_module_free(b);
        return;
    }
    bk_tensor *X = bk_rand(BK_SHAPE(4, 3));
    bk_tensor *ya = bk_forward(a, X);
    bk_module_free(a); // lin lives on in b
    CHECK(lin->refcount == 1);
    bk_tensor *yb = bk_forward(b, X);
    CHECK(ya && yb);
    for (int64_t i = 0; ya && yb && i < ya->numel; i++) CHECK(yb->data[i] == fmaxf(ya->data[i], 0.0f));
    CHECK(bk_backward(bk_sum(yb)) == 0);
    CHECK(bk_module_get(b, "0.weight")->grad != NULL);
    // a failed add takes the reference it was given (and only that one)
    CHECK_ERR(bk_module_add(b, "1", bk_module_ref(lin)), "already exists");
    CHECK(lin->refcount == 1);
    CHECK_ERR(bk_module_add(b, "x", bk_module_ref(b)), "cannot contain itself");
    CHECK(b->refcount == 1);
    CHECK_ERR(bk_module_add(b, "y", NULL), "NULL");
    CHECK_ERR(bk_module_add(b, "a.b", bk_nn_relu()), "invalid name"); // freed by add
    bk_module_free(b); // frees lin too; LSan reports any leak, ASan any double free
}

/* ======================================================================================
 * Gradient checks of the D2L blocks, with respect to the input and every parameter
 * ====================================================================================== */

TEST(gradcheck_custom_mlp) {
    bk_manual_seed(8);
    bk_module *net = mlp_new(5, 8, 3); // MLP with Linear(5, 8), relu, Linear(8, 3)
    bk_tensor *X = bk_randn(BK_SHAPE(2, 5));
    CHECK(net && X);
    if (!net) return;
    double worst = gradcheck_block(net, X, forward_fn, net);
    CHECK(worst >= 0 && worst <= 1);
    bk_module_free(net);
}

TEST(gradcheck_my_sequential) {
    bk_manual_seed(9);
    bk_module *net = my_sequential_new(4, bk_nn_linear(4, 8), bk_nn_relu(), bk_nn_linear(8, 10),
                                       bk_nn_sigmoid());
    bk_tensor *X = bk_randn(BK_SHAPE(2, 4));
    CHECK(net && X);
    if (!net) return;
    bk_tensor *y = bk_forward(net, X);
    CHECK(y && y->ndim == 2 && y->shape[0] == 2 && y->shape[1] == 10);
    double worst = gradcheck_block(net, X, forward_fn, net);
    CHECK(worst >= 0 && worst <= 1);
    bk_module_free(net);
}

/* FixedHiddenMLP's forward is piecewise smooth: the loop count (and relu's pattern) must
 * not change between the evaluations that central differences compare. */
typedef struct {
    bk_module *net;        // what to run
    FixedHiddenMLP *fixed; // the FixedHiddenMLP in it whose loop is watched
    int min_iterations, max_iterations, calls;
} fixed_run;

static bk_tensor *fixed_forward_fn(bk_tensor *const *inputs, int n, void *ud) {
    (void)n;
    fixed_run *r = ud;
    bk_tensor *y = bk_forward(r->net, inputs[0]);
    int it = r->fixed->iterations;
    if (r->calls++ == 0 || it < r->min_iterations) r->min_iterations = it;
    if (r->calls == 1 || it > r->max_iterations) r->max_iterations = it;
    return y;
}

TEST(gradcheck_fixed_hidden_mlp) {
    bk_manual_seed(10);
    bk_module *net = fixed_hidden_mlp_new();
    CHECK(net != NULL);
    if (!net) return;
    FixedHiddenMLP *f = (FixedHiddenMLP *)net;
    bk_tensor *X = bk_mul_scalar(bk_rand(BK_SHAPE(1, 20)), 0.1f); // small: relu(... + 1) > 0
    X = bk_detach(X);
    // The input is usable for finite differences: the relu inputs are away from 0 and
    // sum|X| is away from the powers of two where the loop count changes (a step of
    // eps = 1e-3 in one element moves both by ~1e-3 at most).
    bool prev = bk_set_grad_enabled(false);
    bk_tensor *pre = bk_add_scalar(bk_matmul(bk_forward(f->linear, X), f->rand_weight), 1);
    bk_tensor *h = bk_forward(f->linear, bk_relu(pre));
    bk_set_grad_enabled(prev);
    CHECK(pre && h);
    if (!pre || !h) {
        bk_module_free(net);
        return;
    }
    float min_pre = INFINITY;
    for (int64_t i = 0; i < pre->numel; i++) min_pre = fminf(min_pre, fabsf(pre->data[i]));
    double s = 0;
    for (int64_t i = 0; i < h->numel; i++) s += fabs(h->data[i]);
    double k = ceil(log2(s)); // loop count when s > 1
    CHECK(min_pre > 0.05f);
    CHECK(s > 1.1 && fabs(s / pow(2, k) - 1) > 0.05 && fabs(s / pow(2, k - 1) - 1) > 0.05);
    bk_tensor *y = bk_forward(net, X);
    CHECK(y && y->ndim == 0);
    CHECK(f->iterations == (int)k);

    fixed_run r = {net, f, 0, 0, 0};
    double worst = gradcheck_block(net, X, fixed_forward_fn, &r);
    CHECK(worst >= 0 && worst <= 1);
    CHECK(r.calls > 2 * (20 + 420));
    CHECK(r.min_iterations == r.max_iterations && r.min_iterations == (int)k);
    CHECK(f->rand_weight->grad == NULL); // a constant, never differentiated
    bk_module_free(net);
}

/* An input whose |X|.sum() stays inf: the halving loop stops after 1000 rounds with an
 * error instead of spinning forever. */
TEST(fixed_hidden_mlp_inf_stops) {
    bk_module *net = fixed_hidden_mlp_new();
    CHECK(net != NULL);
    if (!net) return;
    CHECK(bk_fill(bk_module_get(net, "linear.weight"), 1.0f) == 0); // inf stays inf, never inf - inf
    CHECK_ERR(bk_forward(net, bk_full(BK_SHAPE(1, 20), INFINITY)), "still > 1 after 1000 halvings");
    CHECK(((FixedHiddenMLP *)net)->iterations == 1000);
    bk_module_free(net);
}

TEST(gradcheck_chimera_input) {
    // the whole nested network with respect to its input, and a few parameters deep inside
    bk_manual_seed(11);
    bk_module *chimera = chimera_new();
    CHECK(chimera != NULL);
    if (!chimera) return;
    bk_tensor *X = bk_requires_grad(bk_rand(BK_SHAPE(1, 20)), true);
    fixed_run r = {chimera, (FixedHiddenMLP *)bk_nn_sequential_get(chimera, 2), 0, 0, 0};
    bk_tensor *inputs[] = {X, bk_module_get(chimera, "0.net.0.bias"),
                           bk_module_get(chimera, "0.linear.weight"), bk_module_get(chimera, "1.bias"),
                           bk_module_get(chimera, "2.linear.weight")};
    double worst = bk_gradcheck(fixed_forward_fn, inputs, 5, &r, 1e-3, 1e-3, 1e-2, stderr);
    CHECK(worst >= 0 && worst <= 1);
    CHECK(r.min_iterations == r.max_iterations); // the loop count never changed
    bk_module_free(chimera);
}

int main(void) {
    RUN(named_chimera);
    RUN(named_own_tensors_before_children);
    RUN(shared_parameter_listed_once);
    RUN(shared_layer_called_twice_gradients_add);
    RUN(buffers_persistent_and_not);
    RUN(num_params_and_freezing);
    RUN(train_eval_recursive);
    RUN(zero_grad_zeroes_all);
    RUN(apply_children_first);
    RUN(apply_reinitialises);
    RUN(repr_sequential_mlp);
    RUN(repr_chimera);
    RUN(repr_other_blocks);
    RUN(sequential_len_get_append);
    RUN(module_get_dotted);
    RUN(refcount_two_parents);
    RUN(gradcheck_custom_mlp);
    RUN(gradcheck_my_sequential);
    RUN(gradcheck_fixed_hidden_mlp);
    RUN(fixed_hidden_mlp_inf_stops);
    RUN(gradcheck_chimera_input);
    return test_summary("test_module");
}
