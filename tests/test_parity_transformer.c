/* test_parity_transformer.c - brick against PyTorch on embeddings, positional encodings,
 * nn.MultiheadAttention and the Transformer layers and stacks.
 *
 * tests/parity/gen_transformer.py writes, per case, trf_<case>.safetensors (the state
 * dict under PyTorch's names) and trf_<case>.ref.safetensors (inputs, masks, outputs with
 * their upstream gradients, input and parameter gradients; metadata with the kind of
 * layer, its constructor arguments cfg.*, the name lists, print(model) and torch's own
 * float32 error per tensor). This test builds the same layer from cfg.* with brick's
 * constructors, checks names and printing, loads the state dict strictly, runs the
 * forward with the same masks, L = sum(output * upstream) over the outputs, backward, and
 * compares every output and gradient.
 *
 * Tolerance: |brick - torch| <= 1e-6 + 3 E + 1e-5 |torch|, E = torch's float32 error on
 * that tensor (capped at 1e-5). tests/test_parity.c allows 2 E (see tests/parity/README.md);
 * here 3 E, because brick's own float32 error on these deep sums is not bounded by torch's:
 * the two round independently (different summation orders), so |brick - torch| can reach
 * E_brick + E with E_brick somewhat above E. Seen: seed 2774025506, decoder_stack_nonorm,
 * the gradient of layers.0.self_attn.out_proj.bias at 1.07 of the 2 E bound (on main before
 * and after the AVX-512 kernels alike, so it is not a kernel's doing).
 * NaN must appear exactly where torch has NaN (the fully masked attention row).
 *
 * Environment: BRICK_PARITY_DIR (default build/parity), BRICK_REQUIRE_TORCH=1 (a missing
 * reference is a failure, not a skip), BRICK_TEST_VERBOSE (print every comparison).
 */
#include "parity.h"

#define RTOL 1e-5
#define ATOL 1e-6
#define F32ERR_CAP 1e-5
#define F32ERR_FACTOR 3 /* see the tolerance above */

/* ---- metadata ------------------------------------------------------------------------- */

static const char *meta(const bk_safetensors *ref, const char *key) { return parity_meta(ref, key); }

static float cfg_float(const bk_safetensors *ref, const char *key) {
    char k[128];
    snprintf(k, sizeof k, "cfg.%s", key);
    return strtof(meta(ref, k), NULL);
}

static const char *cfg_str(const bk_safetensors *ref, const char *key) {
    char k[128];
    snprintf(k, sizeof k, "cfg.%s", key);
    return meta(ref, k);
}

/* Is `name` an element of the comma-separated list? */
static bool in_csv(const char *csv, const char *name) {
    size_t n = strlen(name);
    for (const char *p = csv; p && *p;) {
        const char *c = strchr(p, ',');
        size_t len = c ? (size_t)(c - p) : strlen(p);
        if (len == n && strncmp(p, name, n) == 0) return true;
        p = c ? c + 1 : NULL;
    }
    return false;
}

/* ---- comparing ---------------------------------------------------------------------- */

static parity_stats err_;

/* torch's `what` from ref vs brick's got within the tolerance; NaN exactly where torch has NaN. */
static void compare(const char *case_name, const char *what, const bk_tensor *got,
                    const bk_safetensors *ref) {
    char label[256];
    snprintf(label, sizeof label, "%s %s", case_name, what);
    err_.nan_equal = true;
    parity_compare(label, got, bk_safetensors_get(ref, what), RTOL,
                   ATOL + F32ERR_FACTOR * parity_meta_error(ref, "f32err", what, F32ERR_CAP), &err_);
}

static void check_names(const char *case_name, const char *what, const bk_module *m, int which,
                        const char *csv) {
    bk_param_list *l = bk_module_named(m, which);
    parity_check_names(case_name, what, l, csv);
    bk_param_list_free(l);
}

/* ======================================================================================
 * Building the layer of a case from its cfg.* and running it
 * ====================================================================================== */

static bk_transformer_config layer_config(const bk_safetensors *ref) {
    bk_transformer_config c = BK_TRANSFORMER_DEFAULTS(parity_cfg_int(ref, "d_model"),
                                                      parity_cfg_int(ref, "nhead"));
    c.dim_feedforward = parity_cfg_int(ref, "dim_feedforward");
    c.dropout = 0.0f;
    c.activation = strcmp(cfg_str(ref, "activation"), "gelu") == 0 ? BK_ACTIVATION_GELU : BK_ACTIVATION_RELU;
    c.layer_norm_eps = cfg_float(ref, "layer_norm_eps");
    c.batch_first = parity_cfg_int(ref, "batch_first") != 0;
    c.norm_first = parity_cfg_int(ref, "norm_first") != 0;
    return c;
}

static bk_module *build(const bk_safetensors *ref, const char *kind) {
    if (!strcmp(kind, "embedding")) {
        int64_t pad = parity_cfg_int(ref, "padding_idx"), n = parity_cfg_int(ref, "num_embeddings"),
                d = parity_cfg_int(ref, "embedding_dim");
        return bk_nn_embedding_ex(n, d, pad >= 0, pad, parity_cfg_int(ref, "scale_grad_by_freq") != 0);
    }
    if (!strcmp(kind, "posenc"))
        return bk_nn_positional_encoding(parity_cfg_int(ref, "num_hiddens"), 0.0f,
                                         parity_cfg_int(ref, "max_len"));
    if (!strcmp(kind, "learnedpos"))
        return bk_nn_learned_positional_embedding(parity_cfg_int(ref, "max_len"),
                                                  parity_cfg_int(ref, "num_hiddens"));
    if (!strcmp(kind, "mha"))
        return bk_nn_multihead_attention(parity_cfg_int(ref, "embed_dim"), parity_cfg_int(ref, "num_heads"),
                                         0.0f, parity_cfg_int(ref, "bias") != 0,
                                         parity_cfg_int(ref, "batch_first") != 0);
    bk_transformer_config c = layer_config(ref);
    if (!strcmp(kind, "encoder_layer")) return bk_nn_transformer_encoder_layer(c);
    if (!strcmp(kind, "decoder_layer")) return bk_nn_transformer_decoder_layer(c);
    if (!strcmp(kind, "transformer"))
        return bk_nn_transformer(c, (int)parity_cfg_int(ref, "num_encoder_layers"),
                                 (int)parity_cfg_int(ref, "num_decoder_layers"));
    bk_module *norm = parity_cfg_int(ref, "final_norm")
                          ? bk_nn_layer_norm(1, (const int64_t[]){c.d_model}, 1e-5f)
                          : NULL;
    int n = (int)parity_cfg_int(ref, "num_layers");
    if (!strcmp(kind, "encoder"))
        return bk_nn_transformer_encoder(bk_nn_transformer_encoder_layer(c), n, norm);
    if (!strcmp(kind, "decoder"))
        return bk_nn_transformer_decoder(bk_nn_transformer_decoder_layer(c), n, norm);
    bk_module_free(norm);
    bk_set_error("unknown kind \"%s\"", kind);
    return NULL;
}

/* The named inputs and masks of a case, as arena tensors. */
typedef struct case_io {
    int n_in;
    char in_buf[256], *in_names[8];
    bk_tensor *in[8];
} case_io;

static bk_tensor *input(case_io *io, const char *name) {
    for (int i = 0; i < io->n_in; i++)
        if (!strcmp(io->in_names[i], name)) return io->in[i];
    return NULL;
}

/* A mask by name, or NULL when the case has none; bool attention masks become additive. */
static bk_tensor *mask(const bk_safetensors *ref, const char *name) {
    if (!in_csv(meta(ref, "masks"), name)) return NULL;
    const bk_tensor *t = bk_safetensors_get(ref, name);
    bk_tensor *m = t ? bk_from_data(t->ndim, t->shape, t->data) : NULL;
    return in_csv(meta(ref, "bool_masks"), name) ? bk_attn_mask_from_bool(m) : m;
}

/* Runs the case's forward; fills outs (in the order of meta "outputs"). */
static int forward(const bk_safetensors *ref, const char *kind, bk_module *m, case_io *io, bk_tensor **outs) {
    if (!strcmp(kind, "embedding") || !strcmp(kind, "posenc") || !strcmp(kind, "learnedpos")) {
        outs[0] = bk_forward(m, input(io, "input"));
        return 1;
    }
    if (!strcmp(kind, "mha")) {
        const char *mode = cfg_str(ref, "mode");
        bk_tensor *q, *k, *v;
        if (!strcmp(mode, "self")) q = k = v = input(io, "input");
        else if (!strcmp(mode, "kv")) q = input(io, "query"), k = v = input(io, "memory");
        else q = input(io, "query"), k = input(io, "key"), v = input(io, "value");
        bool nw = parity_cfg_int(ref, "need_weights") != 0;
        outs[0] = bk_mha_forward(m, q, k, v, mask(ref, "key_padding_mask"), mask(ref, "attn_mask"), nw,
                                 parity_cfg_int(ref, "average") != 0, &outs[1]);
        return nw ? 2 : 1;
    }
    if (!strcmp(kind, "encoder_layer"))
        outs[0] = bk_transformer_encoder_layer_forward(m, input(io, "src"), mask(ref, "src_mask"),
                                                       mask(ref, "src_key_padding_mask"));
    else if (!strcmp(kind, "encoder"))
        outs[0] = bk_transformer_encoder_forward(m, input(io, "src"), mask(ref, "mask"),
                                                 mask(ref, "src_key_padding_mask"));
    else if (!strcmp(kind, "decoder_layer"))
        outs[0] = bk_transformer_decoder_layer_forward(m, input(io, "tgt"), input(io, "memory"),
                                                       mask(ref, "tgt_mask"), mask(ref, "memory_mask"),
                                                       mask(ref, "tgt_key_padding_mask"),
                                                       mask(ref, "memory_key_padding_mask"));
    else if (!strcmp(kind, "transformer")) /* tgt_mask: generate_square_subsequent_mask(T) */
        outs[0] = bk_transformer_forward(m, input(io, "src"), input(io, "tgt"), mask(ref, "src_mask"),
                                         bk_causal_mask(parity_cfg_int(ref, "causal_tgt")),
                                         mask(ref, "memory_mask"), mask(ref, "src_key_padding_mask"),
                                         mask(ref, "tgt_key_padding_mask"),
                                         mask(ref, "memory_key_padding_mask"));
    else if (!strcmp(kind, "decoder"))
        outs[0] = bk_transformer_decoder_forward(m, input(io, "tgt"), input(io, "memory"),
                                                 mask(ref, "tgt_mask"), mask(ref, "memory_mask"),
                                                 mask(ref, "tgt_key_padding_mask"),
                                                 mask(ref, "memory_key_padding_mask"));
    return 1;
}

static void run_case(const char *name) {
    err_ = (parity_stats){0};
    bk_safetensors *w = parity_open(name, ".safetensors");
    bk_safetensors *ref = parity_open(name, ".ref.safetensors");
    bk_module *m = NULL;
    bk_param_list *params = NULL;
    CHECK(w && ref);
    if (!w || !ref) goto done;
    const char *kind = meta(ref, "kind");
    CHECK(strcmp(meta(ref, "case"), name) == 0);
    m = build(ref, kind);
    CHECK(m != NULL);
    if (!m) goto done;

    // Names and printing are PyTorch's.
    check_names(name, "named parameters", m, BK_PARAMS, meta(ref, "param_names"));
    check_names(name, "state dict", m, BK_STATE, meta(ref, "state_names"));
    check_names(name, "buffers", m, BK_BUFFERS, meta(ref, "buffer_names"));
    int n = bk_module_repr(m, NULL, 0);
    char *repr = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (repr) bk_module_repr(m, repr, (size_t)n + 1);
    bool same_repr = repr && strcmp(repr, meta(ref, "repr")) == 0;
    if (!same_repr)
        fprintf(stderr, "# %s print:\n%s\n# torch:\n%s\n", name, repr ? repr : "?", meta(ref, "repr"));
    CHECK(same_repr);
    free(repr);

    // Strict load of the state dict.
    int rc = bk_module_load_from(m, w, true);
    CHECK(rc == 0);
    if (rc != 0) goto done;

    // Inputs (leaves wanting a gradient where torch computed one), forward, loss, backward.
    case_io io;
    memset(&io, 0, sizeof io);
    io.n_in = parity_split_csv(meta(ref, "inputs"), io.in_buf, sizeof io.in_buf, io.in_names, 8);
    for (int i = 0; i < io.n_in; i++) {
        const bk_tensor *t = bk_safetensors_get(ref, io.in_names[i]);
        CHECK(t != NULL);
        if (!t) goto done;
        io.in[i] = bk_from_data(t->ndim, t->shape, t->data);
        if (in_csv(meta(ref, "grad_inputs"), io.in_names[i])) bk_requires_grad(io.in[i], true);
    }
    char obuf[128], *onames[4];
    int n_out = parity_split_csv(meta(ref, "outputs"), obuf, sizeof obuf, onames, 4);
    bk_tensor *outs[4] = {0};
    CHECK(forward(ref, kind, m, &io, outs) == n_out);
    for (int i = 0; i < n_out; i++) compare(name, onames[i], outs[i], ref);
    bk_tensor *loss = parity_outputs_loss(ref, n_out, onames, outs);
    CHECK(loss != NULL);
    if (!loss) goto done;
    CHECK(bk_backward(loss) == 0);
    for (int i = 0; i < io.n_in; i++)
        if (io.in[i]->requires_grad) {
            char key[64];
            snprintf(key, sizeof key, "%s.grad", io.in_names[i]);
            compare(name, key, io.in[i]->grad, ref);
        }
    params = bk_module_named(m, BK_PARAMS);
    for (int i = 0; params && i < params->n; i++) {
        char key[192];
        snprintf(key, sizeof key, "grad.%s", params->names[i]);
        compare(name, key, params->tensors[i]->grad, ref);
    }
    parity_stats_print(name, &err_);
done:
    bk_param_list_free(params);
    bk_module_free(m);
    bk_safetensors_free(w);
    bk_safetensors_free(ref);
}

/* ======================================================================================
 * The cases (as CASES in gen_transformer.py)
 * ====================================================================================== */

#define CASE(name) \
    TEST(name) { run_case(#name); }

CASE(embedding_padded)
CASE(embedding_1d)
CASE(embedding_freq)
CASE(posenc_sin)
CASE(posenc_sin_odd)
CASE(posenc_learned)
CASE(mha_self_causal_kpm)
CASE(mha_cross_bf_perhead)
CASE(mha_qkv_nobias_bool3d)
CASE(mha_fully_masked)
CASE(enc_post_relu)
CASE(enc_post_gelu_bf)
CASE(enc_pre_relu_bf)
CASE(enc_pre_gelu)
CASE(dec_post_relu)
CASE(dec_post_gelu_bf)
CASE(dec_pre_relu_bf)
CASE(dec_pre_gelu)
CASE(encoder_stack)
CASE(decoder_stack)
CASE(decoder_stack_nonorm)
CASE(transformer_post_relu)
CASE(transformer_pre_gelu_bf)
CASE(transformer_nomask)

#define RUN_CASE(name) parity_run(#name, name, true)

int main(void) {
    parity_prefix_ = "trf_";
    if (parity_skip_all("test_parity_transformer", "gen_transformer.py"))
        return test_summary("test_parity_transformer (skipped)");
    RUN_CASE(embedding_padded);
    RUN_CASE(embedding_1d);
    RUN_CASE(embedding_freq);
    RUN_CASE(posenc_sin);
    RUN_CASE(posenc_sin_odd);
    RUN_CASE(posenc_learned);
    RUN_CASE(mha_self_causal_kpm);
    RUN_CASE(mha_cross_bf_perhead);
    RUN_CASE(mha_qkv_nobias_bool3d);
    RUN_CASE(mha_fully_masked);
    RUN_CASE(enc_post_relu);
    RUN_CASE(enc_post_gelu_bf);
    RUN_CASE(enc_pre_relu_bf);
    RUN_CASE(enc_pre_gelu);
    RUN_CASE(dec_post_relu);
    RUN_CASE(dec_post_gelu_bf);
    RUN_CASE(dec_pre_relu_bf);
    RUN_CASE(dec_pre_gelu);
    RUN_CASE(encoder_stack);
    RUN_CASE(decoder_stack);
    RUN_CASE(decoder_stack_nonorm);
    RUN_CASE(transformer_post_relu);
    RUN_CASE(transformer_pre_gelu_bf);
    RUN_CASE(transformer_nomask);
    return test_summary("test_parity_transformer");
}
