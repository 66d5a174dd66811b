/* test_parity.c - brick against PyTorch on the layers and blocks of D2L 5.1.
 *
 * tests/parity/gen_reference.py builds each network with torch.nn, runs a forward and a
 * backward on fresh random inputs and writes <case>.safetensors (the state dict, under
 * PyTorch's names) and <case>.ref.safetensors (input, output, upstream gradient, input
 * gradient, every parameter's gradient; metadata). This file builds the same networks the
 * way a brick user would (Sequential, Linear, custom blocks embedding bk_module, a buffer
 * for the constant weight, C control flow in a forward), loads the state dict strictly,
 * and compares output and gradients. See tests/parity/README.md.
 *
 * Environment:
 *   BRICK_PARITY_DIR     where the references are (default build/parity)
 *   BRICK_REQUIRE_TORCH  1: a missing directory or file is a failure, not a skip
 *   BRICK_TEST_VERBOSE   print max abs / rel error of every compared tensor and case
 */
#include "parity.h"

#include "../examples/blocks.h"

/* Tolerances, as torch.allclose: |brick - torch| <= ATOL + RTOL * |torch|.
 * RTOL: both sides compute in float32 (eps 6e-8) but sum in different orders (brick's
 * gemm blocking vs MKL/OpenBLAS), so results agree to a few ulps times the depth of the
 * network, well inside 1e-5.
 * ATOL: many outputs and gradients are float32 sums of O(100) terms (256 hidden units,
 * 64x20 weights, ...) whose exact result is near zero; their rounding error is relative to
 * the size of the terms, not of the result, so a pure relative test would fail on values
 * like 3e-8 vs 5e-8. 1e-6 is ~10 ulps of a term of size 1. */
#define RTOL 1e-5
#define ATOL 1e-6
/* Plus twice torch's own float32 error E on the tensor (measured by the generator against
 * a float64 run of the same case): brick sums in double where torch sums in float32, so
 * where torch is off by E from the exact value the two can differ by E (2E if both err).
 * That is what made sums of 60 N(0, 1) values (partial sums ~10, E ~1e-6) fail now and then
 * with ATOL alone. E is capped, so the widening never exceeds 2e-5. */
#define F32ERR_CAP 1e-5

/* ======================================================================================
 * The blocks, written the way the brick documentation tells a user to write them: MLP,
 * MySequential, FixedHiddenMLP and NestMLP are the examples' own (examples/blocks.h).
 * ====================================================================================== */

/* Inner: net = Sequential(Linear(32, 24), ReLU, Linear(24, 16)); net(X).
 * Outer: net = Sequential(Linear(20, 32), Tanh, Inner, Sigmoid), out = Linear(16, 16);
 * out(net(X)). Together they give names like "0.net.2.net.0.weight". */
typedef struct {
    bk_module base;
    bk_module *net, *out; // out is NULL for Inner
} Nested;

static bk_tensor *inner_forward(bk_module *self, bk_tensor *x) {
    return bk_forward(((Nested *)self)->net, x);
}

static bk_tensor *outer_forward(bk_module *self, bk_tensor *x) {
    Nested *m = (Nested *)self;
    return bk_forward(m->out, bk_forward(m->net, x));
}

static const bk_module_class INNER_CLASS = {"Inner", inner_forward, NULL, NULL};
static const bk_module_class OUTER_CLASS = {"Outer", outer_forward, NULL, NULL};

static bk_module *inner_new(void) {
    Nested *m = (Nested *)bk_module_new(&INNER_CLASS, sizeof(Nested));
    if (!m) return NULL;
    m->net = bk_module_add(&m->base, "net",
                           bk_nn_sequential(3, bk_nn_linear(32, 24), bk_nn_relu(), bk_nn_linear(24, 16)));
    if (!m->net) {
        bk_module_free(&m->base);
        return NULL;
    }
    return &m->base;
}

static bk_module *outer_new(void) {
    Nested *m = (Nested *)bk_module_new(&OUTER_CLASS, sizeof(Nested));
    if (!m) return NULL;
    m->net = bk_module_add(&m->base, "net",
                           bk_nn_sequential(4, bk_nn_linear(20, 32), bk_nn_tanh(), inner_new(),
                                            bk_nn_sigmoid()));
    m->out = bk_module_add(&m->base, "out", bk_nn_linear(16, 16));
    if (!m->net || !m->out) {
        bk_module_free(&m->base);
        return NULL;
    }
    return &m->base;
}

/* ---- the networks of each case (same as MODULE_CASES in gen_reference.py) ----------- */

static bk_module *build_seq_mlp(void) {
    return bk_nn_sequential(3, bk_nn_linear(20, 256), bk_nn_relu(), bk_nn_linear(256, 10));
}

static bk_module *build_custom_mlp(void) { return mlp_new(20, 256, 10); }

static bk_module *build_my_sequential(void) {
    return my_sequential_new(4, bk_nn_linear(4, 8), bk_nn_relu(), bk_nn_linear(8, 10), bk_nn_sigmoid());
}

static bk_module *build_chimera(void) {
    return bk_nn_sequential(3, nest_mlp_new(), bk_nn_linear(16, 20), fixed_hidden_mlp_new());
}

static bk_module *build_deep_nest(void) {
    return bk_nn_sequential(3, outer_new(), bk_nn_relu(), bk_nn_linear(16, 10));
}

/* One Linear registered twice ("2" and "4"): shared parameters. */
static bk_module *build_shared_seq(void) {
    bk_module *shared = bk_nn_linear(8, 8);
    if (!shared) return NULL;
    return bk_nn_sequential(7, bk_nn_linear(4, 8), bk_nn_relu(), shared, bk_nn_relu(), bk_module_ref(shared),
                            bk_nn_relu(), bk_nn_linear(8, 1));
}

/* ======================================================================================
 * Comparing
 * ====================================================================================== */

/* Per-case worst errors, for the verbose summary line. */
static parity_stats case_err_;

/* Compares brick's `got` with torch's `want` within ATOL + 2 E + RTOL |want|, E torch's own
 * float32 error on the tensor (metadata f32err.<what>, capped at F32ERR_CAP; 0 without
 * ref, for the loaded weights). */
static void compare(const char *case_name, const char *what, const bk_tensor *got, const bk_tensor *want,
                    const bk_safetensors *ref) {
    char label[256];
    snprintf(label, sizeof label, "%s %s", case_name, what);
    parity_compare(label, got, want, RTOL, ATOL + 2 * parity_meta_error(ref, "f32err", what, F32ERR_CAP),
                   &case_err_);
}

static bool list_has(const bk_param_list *l, const char *name) {
    for (int i = 0; l && i < l->n; i++)
        if (strcmp(l->names[i], name) == 0) return true;
    return false;
}

/* Appends the halving counts of every FixedHiddenMLP in the tree, in torch's modules()
 * order (pre-order), as "4" or "4,7". */
static void collect_halvings(const bk_module *m, char *buf, size_t n) {
    if (m->cls == &FIXED_HIDDEN_MLP) {
        size_t len = strlen(buf);
        snprintf(buf + len, n - len, "%s%d", len ? "," : "", ((const FixedHiddenMLP *)m)->iterations);
    }
    for (int i = 0; i < m->n_children; i++) collect_halvings(m->children[i].module, buf, n);
}

/* ======================================================================================
 * One module case: load, forward, backward, compare.
 * ====================================================================================== */

static void run_module_case(const char *name, bk_module *(*build)(void)) {
    case_err_ = (parity_stats){0};
    bk_safetensors *w = parity_open(name, ".safetensors");
    bk_safetensors *ref = parity_open(name, ".ref.safetensors");
    bk_module *m = build();
    bk_param_list *params = NULL, *state = NULL, *buffers = NULL;
    bk_tensor *before = NULL;
    CHECK(w != NULL);
    CHECK(ref != NULL);
    CHECK(m != NULL);
    if (!w || !ref || !m) goto done;
    const char *meta_case = bk_safetensors_meta(ref, "case");
    CHECK(meta_case && strcmp(meta_case, name) == 0);

    // Names first: the state dict brick would save must be PyTorch's, in PyTorch's order.
    if (!parity_module_names(name, m, ref, &params, &state, &buffers)) goto done;

    // Strict loading refuses a file whose names are not the model's (the ref file holds
    // "input", "output", ... and no weights), names what is wrong, and changes nothing.
    CHECK(state->n > 0);
    if (state->n == 0) goto done;
    before = bk_tensor_clone_owned(state->tensors[0]);
    bk_clear_error();
    CHECK(bk_module_load_from(m, ref, true) < 0);
    const char *err = bk_last_error();
    bool named = strstr(err, "missing") && strstr(err, state->names[0]) && strstr(err, "unexpected") &&
                 strstr(err, "input.grad");
    if (!named) fprintf(stderr, "# %s: strict load error does not name the problem: %s\n", name, err);
    CHECK(named);
    bk_clear_error();
    CHECK(before &&
          memcmp(before->data, state->tensors[0]->data, (size_t)before->numel * sizeof(float)) == 0);

    // The real load, strict: every PyTorch name must exist in brick and vice versa.
    int rc = bk_module_load_from(m, w, true);
    CHECK(rc == 0);
    if (rc != 0) goto done;
    for (int i = 0; i < state->n; i++) {
        char what[160];
        snprintf(what, sizeof what, "loaded %s", state->names[i]);
        compare(name, what, state->tensors[i], bk_safetensors_get(w, state->names[i]), NULL);
    }

    // Forward on the same input, as a leaf that wants its gradient.
    const bk_tensor *X = bk_safetensors_get(ref, "input");
    CHECK(X != NULL);
    if (!X) goto done;
    bk_tensor *x = bk_requires_grad(bk_from_data(X->ndim, X->shape, X->data), true);
    bk_tensor *y = bk_forward(m, x);
    compare(name, "output", y, bk_safetensors_get(ref, "output"), ref);
    if (!y) goto done;

    const char *halvings = bk_safetensors_meta(ref, "halvings");
    if (halvings) {
        char got[64] = "";
        collect_halvings(m, got, sizeof got);
        if (strcmp(got, halvings) != 0)
            fprintf(stderr, "# %s: FixedHiddenMLP halved %s times, torch %s\n", name, got, halvings);
        CHECK(strcmp(got, halvings) == 0);
    }

    // Backward: L = output for a scalar, L = (output * upstream).sum() otherwise.
    if (parity_backward(y, ref) != 0) goto done;
    compare(name, "input.grad", x->grad, bk_safetensors_get(ref, "input.grad"), ref);
    for (int i = 0; i < params->n; i++) {
        char key[160];
        snprintf(key, sizeof key, "grad.%s", params->names[i]);
        bk_tensor *p = bk_module_get(m, params->names[i]);
        CHECK(p == params->tensors[i]);
        compare(name, key, p ? p->grad : NULL, bk_safetensors_get(ref, key), ref);
    }

    // Constants: in the state dict, not parameters, and never given a gradient.
    for (int i = 0; i < buffers->n; i++) {
        const bk_tensor *b = buffers->tensors[i];
        CHECK(list_has(state, buffers->names[i]));
        CHECK(!list_has(params, buffers->names[i]));
        CHECK(b->grad == NULL);
        CHECK(!b->requires_grad);
        CHECK(bk_module_get(m, buffers->names[i]) == b);
    }
    parity_stats_print(name, &case_err_);

done:
    bk_tensor_free(before);
    parity_module_case_free(m, w, ref, params, state, buffers);
}

/* ======================================================================================
 * Op cases: the same expressions as OP_CASES in gen_reference.py.
 * ====================================================================================== */

typedef bk_tensor *(*op_fn)(bk_tensor **in);

// (a + b) * c - a / (b + 2);  a (3, 1, 4), b (2, 4), c (4,) -> (3, 2, 4)
static bk_tensor *expr_broadcast_arith(bk_tensor **in) {
    bk_tensor *a = in[0], *b = in[1], *c = in[2];
    return bk_sub(bk_mul(bk_add(a, b), c), bk_div(a, bk_add_scalar(b, 2)));
}
// (a - b) / b + a * 3;  a (2, 3, 1), b (1, 1, 5) -> (2, 3, 5)
static bk_tensor *expr_broadcast_sub_div(bk_tensor **in) {
    return bk_add(bk_div(bk_sub(in[0], in[1]), in[1]), bk_mul_scalar(in[0], 3));
}
// sigmoid(2 tanh x) + sqrt(x) log(x) - |x - 1| + x^1.5 + e^-x + (1 - x) / 4;  x (3, 5) > 0
static bk_tensor *expr_unary_chain(bk_tensor **in) {
    bk_tensor *x = in[0];
    bk_tensor *t = bk_sigmoid(bk_mul_scalar(bk_tanh(x), 2));
    t = bk_add(t, bk_mul(bk_sqrt(x), bk_log(x)));
    t = bk_sub(t, bk_abs(bk_add_scalar(x, -1)));
    t = bk_add(t, bk_pow_scalar(x, 1.5f));
    t = bk_add(t, bk_exp(bk_neg(x)));
    return bk_add(t, bk_div_scalar(bk_rsub_scalar(x, 1), 4));
}
// a ** b;  a (2, 3) > 0, b (3,)
static bk_tensor *expr_pow_tensor(bk_tensor **in) { return bk_pow(in[0], in[1]); }
// (2, 3, 4, 5) @ (5, 6), (2, 1, 4, 5) @ (3, 5, 2), (4, 5) @ (5,), (4,) @ (3, 4, 5)
static bk_tensor *expr_matmul(bk_tensor **in) { return bk_matmul(in[0], in[1]); }
// F.linear: x (2, 3, 4), w (5, 4), b (5,) -> (2, 3, 5)
static bk_tensor *expr_linear_3d(bk_tensor **in) { return bk_linear(in[0], in[1], in[2]); }
// x (3, 4, 5)
static bk_tensor *expr_sum_all(bk_tensor **in) { return bk_sum(in[0]); }
static bk_tensor *expr_mean_all(bk_tensor **in) { return bk_mean(in[0]); }
static bk_tensor *expr_max_all(bk_tensor **in) { return bk_max(in[0]); }
static bk_tensor *expr_sum_dim(bk_tensor **in) { return bk_sum_dim(in[0], 1, false); }
static bk_tensor *expr_mean_dim_keepdim(bk_tensor **in) { return bk_mean_dim(in[0], -1, true); }
static bk_tensor *expr_max_dim(bk_tensor **in) { return bk_max_dim(in[0], 0, false); }
static bk_tensor *expr_max_dim_keepdim(bk_tensor **in) { return bk_max_dim(in[0], -2, true); }

static void run_op_case(const char *name, const char *input_names, op_fn fn) {
    case_err_ = (parity_stats){0};
    bk_safetensors *ref = parity_open(name, ".ref.safetensors");
    CHECK(ref != NULL);
    if (!ref) return;
    const char *meta_inputs = bk_safetensors_meta(ref, "inputs");
    if (!meta_inputs || strcmp(meta_inputs, input_names) != 0)
        fprintf(stderr, "# %s: inputs %s in the file, %s here\n", name, meta_inputs ? meta_inputs : "(none)",
                input_names);
    CHECK(meta_inputs && strcmp(meta_inputs, input_names) == 0);

    char buf[256], *names[8];
    bk_tensor *in[8] = {0};
    int n = parity_split_csv(input_names, buf, sizeof buf, names, 8);
    for (int i = 0; i < n; i++) {
        const bk_tensor *t = bk_safetensors_get(ref, names[i]);
        CHECK(t != NULL);
        if (!t) goto done;
        in[i] = bk_requires_grad(bk_from_data(t->ndim, t->shape, t->data), true);
    }
    bk_tensor *y = fn(in);
    compare(name, "output", y, bk_safetensors_get(ref, "output"), ref);
    if (!y) goto done;
    if (parity_backward(y, ref) != 0) goto done;
    for (int i = 0; i < n; i++) {
        char key[64];
        snprintf(key, sizeof key, "%s.grad", names[i]);
        compare(name, key, in[i]->grad, bk_safetensors_get(ref, key), ref);
    }
    parity_stats_print(name, &case_err_);
done:
    bk_safetensors_free(ref);
}

/* ======================================================================================
 * Tests
 * ====================================================================================== */

#define MODULE_CASE(name, build) \
    TEST(name) { run_module_case(#name, build); }
#define OP_CASE(name, inputs, fn) \
    TEST(name) { run_op_case(#name, inputs, fn); }

MODULE_CASE(seq_mlp, build_seq_mlp)
MODULE_CASE(custom_mlp, build_custom_mlp)
MODULE_CASE(my_sequential, build_my_sequential)
MODULE_CASE(fixed_hidden_mlp, fixed_hidden_mlp_new)
MODULE_CASE(fixed_hidden_mlp_big, fixed_hidden_mlp_new)
MODULE_CASE(nest_mlp, build_chimera)
MODULE_CASE(deep_nest, build_deep_nest)
MODULE_CASE(shared_seq, build_shared_seq)

OP_CASE(op_broadcast_arith, "a,b,c", expr_broadcast_arith)
OP_CASE(op_broadcast_sub_div, "a,b", expr_broadcast_sub_div)
OP_CASE(op_unary_chain, "x", expr_unary_chain)
OP_CASE(op_pow_tensor, "a,b", expr_pow_tensor)
OP_CASE(op_matmul_batched, "a,b", expr_matmul)
OP_CASE(op_matmul_broadcast, "a,b", expr_matmul)
OP_CASE(op_matmul_mv, "a,v", expr_matmul)
OP_CASE(op_matmul_vm_batched, "v,a", expr_matmul)
OP_CASE(op_linear_3d, "x,w,b", expr_linear_3d)
OP_CASE(op_sum_all, "x", expr_sum_all)
OP_CASE(op_mean_all, "x", expr_mean_all)
OP_CASE(op_max_all, "x", expr_max_all)
OP_CASE(op_sum_dim, "x", expr_sum_dim)
OP_CASE(op_mean_dim_keepdim, "x", expr_mean_dim_keepdim)
OP_CASE(op_max_dim, "x", expr_max_dim)
OP_CASE(op_max_dim_keepdim, "x", expr_max_dim_keepdim)

/* Runs a case if its files are there (parity_run). */
#define RUN_CASE(name, is_module) parity_run(#name, name, is_module)

int main(void) {
    if (parity_skip_all("test_parity", "gen_reference.py")) return test_summary("test_parity (skipped)");

    RUN_CASE(seq_mlp, true);
    RUN_CASE(custom_mlp, true);
    RUN_CASE(my_sequential, true);
    RUN_CASE(fixed_hidden_mlp, true);
    RUN_CASE(fixed_hidden_mlp_big, true);
    RUN_CASE(nest_mlp, true);
    RUN_CASE(deep_nest, true);
    RUN_CASE(shared_seq, true);

    RUN_CASE(op_broadcast_arith, false);
    RUN_CASE(op_broadcast_sub_div, false);
    RUN_CASE(op_unary_chain, false);
    RUN_CASE(op_pow_tensor, false);
    RUN_CASE(op_matmul_batched, false);
    RUN_CASE(op_matmul_broadcast, false);
    RUN_CASE(op_matmul_mv, false);
    RUN_CASE(op_matmul_vm_batched, false);
    RUN_CASE(op_linear_3d, false);
    RUN_CASE(op_sum_all, false);
    RUN_CASE(op_mean_all, false);
    RUN_CASE(op_max_all, false);
    RUN_CASE(op_sum_dim, false);
    RUN_CASE(op_mean_dim_keepdim, false);
    RUN_CASE(op_max_dim, false);
    RUN_CASE(op_max_dim_keepdim, false);

    return test_summary("test_parity");
}
