/* test_parity_ops.c - brick against PyTorch on the activations (LeakyReLU, ELU, Softplus,
 * Mish, Hardswish, Hardsigmoid, SiLU, PReLU, Softmax2d, clamp, maximum, minimum) and the
 * indexing and reduction ops (gather, scatter_add, index_select, where, masked_fill,
 * cumsum, logsumexp, norm, min over a dim, argmax, topk, stack, split, chunk): forward
 * and the gradient of every differentiable input, on fresh random inputs from
 * tests/parity/gen_ops.py (CASES there; the expressions below are the same, keep them in
 * step).
 *
 * Tolerance, as torch.allclose: |brick - torch| <= ATOL + RTOL |torch| with RTOL 1e-5,
 * ATOL 1e-6, plus twice torch's own float32 error on the tensor (metadata f32err.<name>,
 * measured by the generator against float64, capped at F32ERR_CAP): two float32 results
 * that each sit within E of the exact value can be 2E apart. The blocks (bk_nn_*) are
 * checked to compute exactly their op, and to print as torch prints them.
 */
#include "parity.h"

#define RTOL 1e-5
#define ATOL 1e-6
#define F32ERR_CAP 1e-5

static parity_stats case_err_;

/* ---- the expressions of CASES in gen_ops.py: in = the differentiable inputs, c = the
 * constant ones (indices, masks), in the generator's order ------------------------------ */

typedef bk_tensor *(*case_fn)(bk_tensor **in, bk_tensor **c);

static bk_tensor *e_leaky_relu(bk_tensor **in, bk_tensor **c) { return (void)c, bk_leaky_relu(in[0], 0.1f); }
static bk_tensor *e_elu(bk_tensor **in, bk_tensor **c) { return (void)c, bk_elu(in[0], 0.7f); }
static bk_tensor *e_softplus(bk_tensor **in, bk_tensor **c) {
    return (void)c, bk_softplus(in[0], 1.5f, 10.0f);
}
static bk_tensor *e_softplus_default(bk_tensor **in, bk_tensor **c) {
    return (void)c, bk_softplus(in[0], 1.0f, 20.0f);
}
static bk_tensor *e_mish(bk_tensor **in, bk_tensor **c) { return (void)c, bk_mish(in[0]); }
static bk_tensor *e_hardswish(bk_tensor **in, bk_tensor **c) { return (void)c, bk_hardswish(in[0]); }
static bk_tensor *e_hardsigmoid(bk_tensor **in, bk_tensor **c) { return (void)c, bk_hardsigmoid(in[0]); }
static bk_tensor *e_silu(bk_tensor **in, bk_tensor **c) { return (void)c, bk_silu(in[0]); }
// F.prelu(x (2, 3, 4, 5), w (3)): w as (3, 1, 1)
static bk_tensor *e_prelu(bk_tensor **in, bk_tensor **c) {
    return (void)c, bk_prelu(in[0], bk_reshape(in[1], BK_SHAPE(3, 1, 1)));
}
static bk_tensor *e_softmax2d(bk_tensor **in, bk_tensor **c) { return (void)c, bk_softmax(in[0], -3); }
static bk_tensor *e_clamp(bk_tensor **in, bk_tensor **c) { return (void)c, bk_clamp(in[0], -0.5f, 0.8f); }
static bk_tensor *e_maximum(bk_tensor **in, bk_tensor **c) { return (void)c, bk_maximum(in[0], in[1]); }
static bk_tensor *e_minimum(bk_tensor **in, bk_tensor **c) { return (void)c, bk_minimum(in[0], in[1]); }
static bk_tensor *e_gather(bk_tensor **in, bk_tensor **c) { return bk_gather(in[0], 1, c[0]); }
static bk_tensor *e_gather_dim0(bk_tensor **in, bk_tensor **c) { return bk_gather(in[0], 0, c[0]); }
static bk_tensor *e_scatter_add(bk_tensor **in, bk_tensor **c) {
    return bk_scatter_add(in[0], 1, c[0], in[1]);
}
static bk_tensor *e_index_select(bk_tensor **in, bk_tensor **c) { return bk_index_select(in[0], 1, c[0]); }
static bk_tensor *e_where(bk_tensor **in, bk_tensor **c) { return bk_where(c[0], in[0], in[1]); }
static bk_tensor *e_masked_fill(bk_tensor **in, bk_tensor **c) { return bk_masked_fill(in[0], c[0], -1.5f); }
static bk_tensor *e_cumsum(bk_tensor **in, bk_tensor **c) { return (void)c, bk_cumsum(in[0], 1); }
static bk_tensor *e_logsumexp(bk_tensor **in, bk_tensor **c) {
    return (void)c, bk_logsumexp(in[0], -1, true);
}
static bk_tensor *e_norm2_dim(bk_tensor **in, bk_tensor **c) {
    return (void)c, bk_norm_dim(in[0], 2.0f, 1, false);
}
static bk_tensor *e_norm1_all(bk_tensor **in, bk_tensor **c) { return (void)c, bk_norm(in[0], 1.0f); }
static bk_tensor *e_norm3_keepdim(bk_tensor **in, bk_tensor **c) {
    return (void)c, bk_norm_dim(in[0], 3.0f, 0, true);
}
static bk_tensor *e_min_dim(bk_tensor **in, bk_tensor **c) { return (void)c, bk_min_dim(in[0], 1, false); }
static bk_tensor *e_argmax_gather(bk_tensor **in, bk_tensor **c) {
    return (void)c, bk_gather(in[0], 1, bk_argmax(in[0], 1, true));
}
static bk_tensor *e_topk(bk_tensor **in, bk_tensor **c) { return (void)c, bk_topk(in[0], 3, -1, true, NULL); }
static bk_tensor *e_topk_smallest(bk_tensor **in, bk_tensor **c) {
    return (void)c, bk_topk(in[0], 2, 0, false, NULL);
}
static bk_tensor *e_stack(bk_tensor **in, bk_tensor **c) { return (void)c, bk_stack(3, in, 1); }
/* the pieces joined in reverse order */
static bk_tensor *reversed(bk_tensor **pieces, int n, int dim) {
    bk_tensor *rev[8];
    for (int i = 0; i < n; i++) rev[i] = pieces[n - 1 - i];
    return n > 0 ? bk_concat(n, rev, dim) : NULL;
}
static bk_tensor *e_split(bk_tensor **in, bk_tensor **c) {
    bk_tensor *out[8];
    return (void)c, reversed(out, bk_split(in[0], 3, 0, out, 8), 0);
}
static bk_tensor *e_chunk(bk_tensor **in, bk_tensor **c) {
    bk_tensor *out[8];
    return (void)c, reversed(out, bk_chunk(in[0], 3, 1, out, 8), 1);
}

/* ---- one case: load, run, compare --------------------------------------------------------- */

static void compare(const char *name, const char *what, const bk_tensor *got, const bk_safetensors *ref) {
    char label[256];
    snprintf(label, sizeof label, "%s %s", name, what);
    parity_compare(label, got, bk_safetensors_get(ref, what), RTOL,
                   ATOL + 2 * parity_meta_error(ref, "f32err", what, F32ERR_CAP), &case_err_);
}

/* The tensors named in the metadata list `key`, as arena copies (grad: requiring it). */
static int load_list(const bk_safetensors *ref, const char *key, bk_tensor **out, char **names, char *buf,
                     size_t n, bool grad) {
    const char *csv = bk_safetensors_meta(ref, key);
    int k = csv && *csv ? parity_split_csv(csv, buf, n, names, 8) : 0;
    for (int i = 0; i < k; i++) {
        const bk_tensor *t = bk_safetensors_get(ref, names[i]);
        if (!t) return -1;
        out[i] = bk_requires_grad(bk_from_data(t->ndim, t->shape, t->data), grad);
    }
    return k;
}

static void run_case(const char *name, case_fn fn) {
    case_err_ = (parity_stats){0};
    bk_safetensors *ref = parity_open(name, ".ref.safetensors");
    CHECK(ref != NULL);
    if (!ref) return;
    bk_tensor *in[8] = {0}, *c[8] = {0};
    char b1[256], b2[256], *n1[8], *n2[8];
    int n_in = load_list(ref, "inputs", in, n1, b1, sizeof b1, true);
    int n_c = load_list(ref, "consts", c, n2, b2, sizeof b2, false);
    CHECK(n_in > 0 && n_c >= 0);
    if (n_in > 0 && n_c >= 0) {
        bk_tensor *y = fn(in, c);
        compare(name, "output", y, ref);
        if (y && parity_backward(y, ref) == 0)
            for (int i = 0; i < n_in; i++) {
                char key[64];
                snprintf(key, sizeof key, "%s.grad", n1[i]);
                compare(name, key, in[i]->grad, ref);
            }
        parity_stats_print(name, &case_err_);
    }
    bk_safetensors_free(ref);
    bk_arena_reset(NULL);
}

typedef struct ops_case {
    const char *name;
    case_fn fn;
} ops_case;

#define C(name) \
    { "ops_" #name, e_##name }
static const ops_case CASES[] = {
    C(leaky_relu),  C(elu),           C(softplus),    C(softplus_default), C(mish),         C(hardswish),
    C(hardsigmoid), C(silu),          C(prelu),       C(softmax2d),        C(clamp),        C(maximum),
    C(minimum),     C(gather),        C(gather_dim0), C(scatter_add),      C(index_select), C(where),
    C(masked_fill), C(cumsum),        C(logsumexp),   C(norm2_dim),        C(norm1_all),    C(norm3_keepdim),
    C(min_dim),     C(argmax_gather), C(topk),        C(topk_smallest),    C(stack),        C(split),
    C(chunk),
};
#undef C

/* ---- the blocks: forward = their op, and torch's print ---------------------------------------- */

static bool same_values(const bk_tensor *a, const bk_tensor *b) {
    return a && b && a->numel == b->numel && memcmp(a->data, b->data, sizeof(float) * (size_t)a->numel) == 0;
}

TEST(activation_blocks) {
    bk_tensor *x = bk_mul_scalar(bk_randn(BK_SHAPE(2, 3, 4, 5)), 3.0f);
    struct {
        bk_module *m;
        bk_tensor *want;
        const char *repr; /* print(nn.X(...)) in torch 1.13 */
    } rows[] = {
        {bk_nn_leaky_relu(0.01f), bk_leaky_relu(x, 0.01f), "LeakyReLU(negative_slope=0.01)"},
        {bk_nn_elu(1.0f), bk_elu(x, 1.0f), "ELU(alpha=1.0)"},
        {bk_nn_softplus(1.0f, 20.0f), bk_softplus(x, 1.0f, 20.0f), "Softplus(beta=1, threshold=20)"},
        {bk_nn_softplus(0.5f, 15.5f), bk_softplus(x, 0.5f, 15.5f), "Softplus(beta=0.5, threshold=15.5)"},
        {bk_nn_mish(), bk_mish(x), "Mish()"},
        {bk_nn_hardswish(), bk_hardswish(x), "Hardswish()"},
        {bk_nn_hardsigmoid(), bk_hardsigmoid(x), "Hardsigmoid()"},
        {bk_nn_silu(), bk_silu(x), "SiLU()"},
        {bk_nn_gelu_tanh(), bk_gelu_tanh(x), "GELU(approximate='tanh')"},
        {bk_nn_softmax2d(), bk_softmax(x, 1), "Softmax2d()"},
        {bk_nn_prelu(1, 0.25f), bk_leaky_relu(x, 0.25f), "PReLU(num_parameters=1)"},
        {bk_nn_prelu(3, 0.25f), bk_leaky_relu(x, 0.25f), "PReLU(num_parameters=3)"},
    };
    for (size_t i = 0; i < sizeof rows / sizeof *rows; i++) {
        char buf[256] = "";
        CHECK(rows[i].m != NULL);
        if (!rows[i].m) continue;
        bk_module_repr(rows[i].m, buf, sizeof buf);
        if (strcmp(buf, rows[i].repr)) fprintf(stderr, "  repr %s, want %s\n", buf, rows[i].repr);
        CHECK(strcmp(buf, rows[i].repr) == 0);
        bool same = same_values(bk_forward(rows[i].m, x), rows[i].want);
        if (!same) fprintf(stderr, "  %s: forward differs from its op (%s)\n", rows[i].repr, bk_last_error());
        CHECK(same);
        bk_module_free(rows[i].m);
    }
    /* PReLU's parameter: torch's name, and each channel its own slope */
    bk_module *pr = bk_nn_prelu(3, 0.25f);
    bk_param_list *pl = bk_module_named(pr, BK_PARAMS);
    CHECK(pl && pl->n == 1 && strcmp(pl->names[0], "weight") == 0);
    if (pl && pl->n == 1) {
        pl->tensors[0]->data[1] = 0.5f;
        bk_tensor *y = bk_forward(pr, bk_full(BK_SHAPE(1, 3, 2), -2.0f));
        CHECK(y && y->data[0] == -0.5f && y->data[2] == -1.0f && y->data[4] == -0.5f);
    }
    bk_param_list_free(pl);
    bk_module_free(pr);
    bk_arena_reset(NULL);
}

static const ops_case *current_;
TEST(one_case) { run_case(current_->name, current_->fn); }

int main(void) {
    RUN(activation_blocks);
    if (parity_skip_all("test_parity_ops", "gen_ops.py")) return test_summary("test_parity_ops (skipped)");
    for (size_t i = 0; i < sizeof CASES / sizeof *CASES; i++) {
        current_ = &CASES[i];
        parity_run(CASES[i].name, one_case, false);
    }
    return test_summary("test_parity_ops");
}
