/* test_parity_lazy.c - brick's lazy layers (LazyLinear, LazyConv2d, LazyBatchNorm1d/2d:
 * D2L 5.3's deferred initialisation) against PyTorch 1.13.
 *
 * tests/parity/gen_lazy.py writes, per case, lazy_<case>.safetensors (the state dict made
 * by torch's first forward, jittered) and lazy_<case>.ref.safetensors (first_input, input,
 * output and its upstream gradient, the input and parameter gradients; metadata with the
 * constructor arguments cfg.*, the name lists, print(model) before and after the first
 * forward, and torch's own float32 error per tensor). This test builds the lazy block
 * from cfg.*, checks that it prints as torch's and that its parameters cannot be listed
 * yet, runs the first forward on first_input (whose batch size differs from input's: only
 * the inferred dimension may come from it), checks that the block now prints and names its
 * parameters and buffers as torch's materialised one, loads the state dict strictly, runs
 * input forward and backward and compares every output and gradient.
 *
 * Tolerance: |brick - torch| <= 1e-6 + 2 E + 1e-5 |torch|, E = torch's float32 error on
 * that tensor (capped at 1e-5), the rule of tests/test_parity.c: once materialised these
 * are the eager layers, both sides float32 summing in different orders.
 *
 * Environment: BRICK_PARITY_DIR (default build/parity), BRICK_REQUIRE_TORCH=1 (a missing
 * reference is a failure, not a skip), BRICK_TEST_VERBOSE (print every comparison).
 */
#include "parity.h"

#define RTOL 1e-5
#define ATOL 1e-6
#define F32ERR_CAP 1e-5
#define F32ERR_FACTOR 2

static parity_stats err_;

static void compare(const char *case_name, const char *what, const bk_tensor *got,
                    const bk_safetensors *ref) {
    char label[256];
    snprintf(label, sizeof label, "%s %s", case_name, what);
    parity_compare(label, got, bk_safetensors_get(ref, what), RTOL,
                   ATOL + F32ERR_FACTOR * parity_meta_error(ref, "f32err", what, F32ERR_CAP), &err_);
}

static bk_module *build(const bk_safetensors *ref) {
    const char *kind = parity_meta(ref, "kind");
    if (!strcmp(kind, "linear"))
        return bk_nn_lazy_linear(parity_cfg_int(ref, "out_features"), parity_cfg_int(ref, "bias") != 0);
    if (!strcmp(kind, "conv2d")) {
        bk_conv2d_opts o = BK_CONV2D_DEFAULTS;
        o.stride[0] = o.stride[1] = parity_cfg_int(ref, "stride");
        o.padding[0] = o.padding[1] = parity_cfg_int(ref, "padding");
        o.groups = parity_cfg_int(ref, "groups");
        const int64_t kernel[2] = {parity_cfg_int(ref, "kh"), parity_cfg_int(ref, "kw")};
        return bk_nn_lazy_conv2d(parity_cfg_int(ref, "out_channels"), kernel, o,
                                 parity_cfg_int(ref, "bias") != 0);
    }
    bk_norm_opts o = BK_BATCH_NORM_DEFAULTS;
    o.affine = parity_cfg_int(ref, "affine") != 0;
    o.track_running_stats = parity_cfg_int(ref, "track_running_stats") != 0;
    return bk_nn_lazy_batch_norm((int)parity_cfg_int(ref, "ndim_expected"), o);
}

static void check_repr(const char *name, const bk_module *m, const bk_safetensors *ref, const char *key) {
    char repr[512];
    bk_module_repr(m, repr, sizeof repr);
    if (strcmp(repr, parity_meta(ref, key)) != 0)
        fprintf(stderr, "# %s %s: brick %s\n#   torch %s\n", name, key, repr, parity_meta(ref, key));
    CHECK(strcmp(repr, parity_meta(ref, key)) == 0);
}

static void run_case(const char *name) {
    err_ = (parity_stats){0};
    bk_safetensors *w = parity_open(name, ".safetensors");
    bk_safetensors *ref = parity_open(name, ".ref.safetensors");
    bk_module *m = NULL;
    bk_param_list *params = NULL, *state = NULL, *buffers = NULL;
    CHECK(w && ref);
    if (!w || !ref) goto done;
    CHECK(strcmp(parity_meta(ref, "case"), name) == 0);
    m = build(ref);
    CHECK(m != NULL);
    if (!m) goto done;
    check_repr(name, m, ref, "repr_lazy");
    CHECK(bk_module_has_uninitialized(m));
    CHECK(bk_module_named(m, BK_STATE) == NULL && strstr(bk_last_error(), "uninitialized parameters"));
    bk_clear_error();

    /* the first forward makes the parameters (train mode: it also updates a norm's
     * running statistics, which the state dict then replaces, as in torch) */
    const bk_tensor *first = bk_safetensors_get(ref, "first_input");
    bool grad_was = bk_set_grad_enabled(false);
    bk_tensor *y0 = first ? bk_forward(m, bk_from_data(first->ndim, first->shape, first->data)) : NULL;
    bk_set_grad_enabled(grad_was);
    if (!y0) fprintf(stderr, "# %s first forward: %s\n", name, bk_last_error());
    CHECK(y0 != NULL && !bk_module_has_uninitialized(m));
    if (!y0 || !parity_module_names(name, m, ref, &params, &state, &buffers)) goto done;
    check_repr(name, m, ref, "repr");
    CHECK(bk_module_load_from(m, w, true) == 0);
    bk_module_train(m,
                    strcmp(parity_meta(ref, "kind"), "batch_norm") != 0 || parity_cfg_int(ref, "train") != 0);

    const bk_tensor *xt = bk_safetensors_get(ref, "input");
    bk_tensor *x = xt ? bk_requires_grad(bk_from_data(xt->ndim, xt->shape, xt->data), true) : NULL;
    bk_tensor *y = bk_forward(m, x);
    if (!y) fprintf(stderr, "# %s: %s\n", name, bk_last_error());
    CHECK(y != NULL);
    if (!y) goto done;
    compare(name, "output", y, ref);
    char *onames[1] = {"output"};
    bk_tensor *loss = parity_outputs_loss(ref, 1, onames, &y);
    CHECK(loss != NULL && bk_backward(loss) == 0);
    compare(name, "input.grad", x->grad, ref);
    for (int i = 0; i < params->n; i++) {
        char key[192];
        snprintf(key, sizeof key, "grad.%s", params->names[i]);
        compare(name, key, params->tensors[i]->grad, ref);
    }
    parity_stats_print(name, &err_);
done:
    parity_module_case_free(m, w, ref, params, state, buffers);
}

/* The cases (CASES in gen_lazy.py) */
static const char *const CASES[] = {
    "linear",       "linear_3d_nobias",     "conv2d",       "conv2d_groups_nobias",
    "batch_norm1d", "batch_norm1d_3d_eval", "batch_norm2d", "batch_norm2d_noaffine",
};

static const char *current_;
static void run_current(void) { run_case(current_); }

int main(void) {
    parity_prefix_ = "lazy_";
    if (parity_skip_all("test_parity_lazy", "gen_lazy.py")) return test_summary("test_parity_lazy (skipped)");
    for (size_t i = 0; i < sizeof CASES / sizeof CASES[0]; i++) {
        current_ = CASES[i];
        parity_run(CASES[i], run_current, true);
    }
    return test_summary("test_parity_lazy");
}
