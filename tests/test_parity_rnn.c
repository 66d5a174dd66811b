/* test_parity_rnn.c - brick's recurrent cells and layers (RNNCell, LSTMCell, GRUCell, RNN,
 * LSTM, GRU; variable lengths) against PyTorch 1.13.
 *
 * tests/parity/gen_rnn.py writes, per case, rnn_<case>.safetensors (the state dict under
 * PyTorch's names) and rnn_<case>.ref.safetensors (inputs, lengths, outputs with their
 * upstream gradients, input and parameter gradients; metadata with the kind, the
 * constructor arguments cfg.*, the name lists, print(model) and torch's own float32 error
 * per tensor). This test builds the same block from cfg.*, checks its names and printing,
 * loads the state dict strictly, runs the forward (from the given states, or zeros), takes
 * L = sum(output * upstream) over the outputs, runs the backward and compares every
 * output and gradient.
 *
 * Tolerance: |brick - torch| <= 1e-6 + 2 E + 1e-5 |torch|, E = torch's float32 error on
 * that tensor (capped at 1e-5), the rule of tests/test_parity.c: both are float32 and sum
 * in different orders (torch's fused gates vs brick's separate ops), so each may be as far
 * from the exact value as torch is. Backward through time adds T products per gradient,
 * which E measures per tensor and draw.
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

static bk_module *build(const bk_safetensors *ref, bool layer) {
    bk_rnn_mode mode = (bk_rnn_mode)parity_cfg_int(ref, "mode");
    if (!layer)
        return bk_nn_rnn_cell(mode, parity_cfg_int(ref, "input_size"), parity_cfg_int(ref, "hidden_size"),
                              parity_cfg_int(ref, "bias"));
    bk_rnn_config c = BK_RNN_DEFAULTS(mode, parity_cfg_int(ref, "input_size"),
                                      parity_cfg_int(ref, "hidden_size"));
    c.num_layers = parity_cfg_int(ref, "num_layers");
    c.bias = parity_cfg_int(ref, "bias") != 0;
    c.batch_first = parity_cfg_int(ref, "batch_first") != 0;
    c.bidirectional = parity_cfg_int(ref, "bidirectional") != 0;
    c.dropout = strtof(parity_meta(ref, "cfg.dropout"), NULL);
    bk_module *m = bk_nn_rnn(c);
    if (m) bk_module_train(m, parity_cfg_int(ref, "train") != 0);
    return m;
}

/* An input by name as a leaf wanting a gradient, or NULL when the case has none. */
static bk_tensor *input(const bk_safetensors *ref, const char *name) {
    const bk_tensor *t = parity_has_tensor(ref, name) ? bk_safetensors_get(ref, name) : NULL;
    return t ? bk_requires_grad(bk_from_data(t->ndim, t->shape, t->data), true) : NULL;
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
    bool layer = strcmp(parity_meta(ref, "kind"), "layer") == 0;
    m = build(ref, layer);
    CHECK(m != NULL);
    if (!m || !parity_module_names(name, m, ref, &params, &state, &buffers)) goto done;
    char repr[512];
    bk_module_repr(m, repr, sizeof repr);
    if (strcmp(repr, parity_meta(ref, "repr")) != 0)
        fprintf(stderr, "# %s print: %s\n# torch: %s\n", name, repr, parity_meta(ref, "repr"));
    CHECK(strcmp(repr, parity_meta(ref, "repr")) == 0);
    CHECK(bk_module_load_from(m, w, true) == 0);

    const char *in_names[3] = {"input", layer ? "h0" : "h", layer ? "c0" : "c"};
    bk_tensor *in[3];
    for (int i = 0; i < 3; i++) in[i] = input(ref, in_names[i]);
    int64_t lengths[64];
    const bk_tensor *lt = parity_has_tensor(ref, "lengths") ? bk_safetensors_get(ref, "lengths") : NULL;
    for (int64_t b = 0; lt && b < lt->numel && b < 64; b++) lengths[b] = (int64_t)lt->data[b];
    bk_tensor *outs[3] = {NULL, NULL, NULL};
    if (layer) outs[0] = bk_rnn_forward(m, in[0], in[1], in[2], lt ? lengths : NULL, &outs[1], &outs[2]);
    else outs[0] = bk_rnn_cell_forward(m, in[0], in[1], in[2], &outs[1]);
    if (!outs[0]) fprintf(stderr, "# %s: %s\n", name, bk_last_error());
    CHECK(outs[0] != NULL);
    if (!outs[0]) goto done;

    char obuf[64], *onames[3];
    int n_out = parity_split_csv(parity_meta(ref, "outputs"), obuf, sizeof obuf, onames, 3);
    for (int i = 0; i < n_out; i++) compare(name, onames[i], outs[i], ref);
    bk_tensor *loss = parity_outputs_loss(ref, n_out, onames, outs);
    CHECK(loss != NULL && bk_backward(loss) == 0);
    for (int i = 0; i < 3; i++)
        if (in[i]) {
            char key[64];
            snprintf(key, sizeof key, "%s.grad", in_names[i]);
            compare(name, key, in[i]->grad, ref);
        }
    for (int i = 0; i < params->n; i++) {
        char key[192];
        snprintf(key, sizeof key, "grad.%s", params->names[i]);
        compare(name, key, params->tensors[i]->grad, ref);
    }
    parity_stats_print(name, &err_);
done:
    parity_module_case_free(m, w, ref, params, state, buffers);
}

/* The cases (CASES in gen_rnn.py) */
static const char *const CASES[] = {
    "cell_tanh",
    "cell_relu_nobias_unbatched",
    "cell_lstm",
    "cell_lstm_zero_state",
    "cell_lstm_unbatched",
    "cell_gru",
    "cell_gru_nobias_unbatched",
    "rnn_tanh",
    "rnn_relu_2l_bi_bf",
    "rnn_tanh_nobias_nostate",
    "lstm",
    "lstm_2l_bi",
    "lstm_3l_bf_nostate",
    "lstm_unbatched_bi",
    "lstm_dropout_eval",
    "gru",
    "gru_2l_bi_nobias",
    "gru_unbatched_nostate",
    "lengths_rnn_bf",
    "lengths_lstm_2l_bi",
    "lengths_lstm_bi_bf_nostate",
    "lengths_gru_2l_bi_bf",
};

static const char *current_;
static void run_current(void) { run_case(current_); }

int main(void) {
    parity_prefix_ = "rnn_";
    if (parity_skip_all("test_parity_rnn", "gen_rnn.py")) return test_summary("test_parity_rnn (skipped)");
    for (size_t i = 0; i < sizeof CASES / sizeof CASES[0]; i++) {
        current_ = CASES[i];
        parity_run(CASES[i], run_current, true);
    }
    return test_summary("test_parity_rnn");
}
