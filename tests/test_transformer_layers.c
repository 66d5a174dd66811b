/* test_transformer_layers.c - the Transformer encoder and decoder layers and their stacks
 * (split from test_transformer.c, which has the tolerances' reasoning and the parts they
 * are built of): structure, gradients against central differences, unbatched input,
 * every error path, and a warm encoder step that allocates nothing; the whole nn.Transformer
 * (names, init, causality of the decoder under bk_causal_mask).
 *
 * Random values come from a PCG32 stream seeded from $BRICK_TEST_SEED, else $BRICK_SEED
 * (what `make test` prints), else the clock; the seed is printed first. The layers are
 * checked with GELU, which is smooth: a ReLU input within eps of its kink would make the
 * central difference meaningless (ReLU is covered by the PyTorch parity).
 */
#include "transformer_util.h"

/* ======================================================================================
 * Transformer layers and stacks
 * ====================================================================================== */

static bk_transformer_config small_cfg(bool norm_first, bool batch_first, bk_activation act) {
    bk_transformer_config c = BK_TRANSFORMER_DEFAULTS(4, 2);
    c.dim_feedforward = 6;
    c.dropout = 0.0f;
    c.activation = act;
    c.norm_first = norm_first;
    c.batch_first = batch_first;
    return c;
}

/* Randomises every parameter (non-zero biases, non-trivial LayerNorm weights). */
static void jitter(bk_module *m, float scale) {
    bk_param_list *ps = bk_module_named(m, BK_PARAMS);
    for (int i = 0; ps && i < ps->n; i++)
        for (int64_t j = 0; j < ps->tensors[i]->numel; j++)
            ps->tensors[i]->data[j] += scale * bk_rng_normal(&g_rng);
    bk_param_list_free(ps);
}

typedef struct layer_case {
    bk_module *m;
    bk_tensor *mask, *kpm, *mem_kpm;
} layer_case;

/* The case of a layer's gradient check: the layer m (NULL fails the check), its weights
 * jittered off their init, a causal mask over 3 positions and the (2, 3) key padding mask
 * kpm. */
static bool layer_case_init(layer_case *c, bk_module *m, const float kpm[6]) {
    *c = (layer_case){m, NULL, NULL, NULL};
    CHECK(m != NULL);
    if (!m) return false;
    jitter(m, 0.3f);
    c->mask = bk_causal_mask(3);
    c->kpm = bk_from_data(BK_SHAPE(2, 3), kpm);
    return true;
}

static bk_tensor *f_encoder_layer(bk_tensor *const *in, int n, void *ud) {
    (void)n;
    layer_case *c = ud;
    return bk_transformer_encoder_layer_forward(c->m, in[0], c->mask, c->kpm);
}

static bk_tensor *f_decoder_layer(bk_tensor *const *in, int n, void *ud) {
    (void)n;
    layer_case *c = ud;
    return bk_transformer_decoder_layer_forward(c->m, in[0], in[1], c->mask, NULL, c->kpm, c->mem_kpm);
}

/* gradcheck over the inputs and n_params named parameters of m */
static void check_layer_grads(const char *what, bk_gradcheck_fn f, layer_case *c, bk_tensor *x,
                              bk_tensor *mem, const char *const *params, int n_params) {
    bk_tensor *in[16];
    int n = 0;
    in[n++] = x;
    if (mem) in[n++] = mem;
    for (int i = 0; i < n_params; i++) in[n++] = bk_module_get(c->m, params[i]);
    CHECK(gradcheck_ok(what, f, in, n, c));
}

TEST(encoder_layer_structure) {
    bk_transformer_config cfg = BK_TRANSFORMER_DEFAULTS(8, 2);
    cfg.dim_feedforward = 16;
    bk_module *m = bk_nn_transformer_encoder_layer(cfg);
    CHECK(m != NULL);
    if (!m) return;
    CHECK(names_are(m, BK_STATE,
                    (const char *const[]){"self_attn.in_proj_weight", "self_attn.in_proj_bias",
                                          "self_attn.out_proj.weight", "self_attn.out_proj.bias",
                                          "linear1.weight", "linear1.bias", "linear2.weight", "linear2.bias",
                                          "norm1.weight", "norm1.bias", "norm2.weight", "norm2.bias"},
                    12));
    CHECK(
        repr_is(m,
                "TransformerEncoderLayer(\n"
                "  (self_attn): MultiheadAttention(\n"
                "    (out_proj): NonDynamicallyQuantizableLinear(in_features=8, out_features=8, bias=True)\n"
                "  )\n"
                "  (linear1): Linear(in_features=8, out_features=16, bias=True)\n"
                "  (dropout): Dropout(p=0.1, inplace=False)\n"
                "  (linear2): Linear(in_features=16, out_features=8, bias=True)\n"
                "  (norm1): LayerNorm((8,), eps=1e-05, elementwise_affine=True)\n"
                "  (norm2): LayerNorm((8,), eps=1e-05, elementwise_affine=True)\n"
                "  (dropout1): Dropout(p=0.1, inplace=False)\n"
                "  (dropout2): Dropout(p=0.1, inplace=False)\n"
                ")"));
    bk_module_free(m);
}

TEST(encoder_layer_gradients) {
    for (int trial = 0; trial < 2; trial++) {
        bool nf = trial == 1, bf = trial == 0;
        layer_case c;
        if (!layer_case_init(&c, bk_nn_transformer_encoder_layer(small_cfg(nf, bf, BK_ACTIVATION_GELU)),
                             (const float[]){0, 0, 1, 0, 0, 0}))
            return;
        bk_tensor *x = LEAF(bf ? RANDN(2, 3, 4) : RANDN(3, 2, 4));
        const char *ps[] = {"self_attn.in_proj_weight",
                            "self_attn.in_proj_bias",
                            "self_attn.out_proj.weight",
                            "linear1.weight",
                            "linear2.bias",
                            "norm1.weight",
                            "norm2.bias"};
        check_layer_grads(nf ? "encoder layer (norm_first)" : "encoder layer", f_encoder_layer, &c, x, NULL,
                          ps, 7);
        bk_module_free(c.m);
    }
}

TEST(decoder_layer_structure_and_gradients) {
    bk_transformer_config cfg = BK_TRANSFORMER_DEFAULTS(8, 2);
    cfg.dim_feedforward = 16;
    cfg.dropout = 0.0f;
    cfg.layer_norm_eps = 1e-6f;
    bk_module *d = bk_nn_transformer_decoder_layer(cfg);
    CHECK(d != NULL);
    if (!d) return;
    CHECK(
        repr_is(d,
                "TransformerDecoderLayer(\n"
                "  (self_attn): MultiheadAttention(\n"
                "    (out_proj): NonDynamicallyQuantizableLinear(in_features=8, out_features=8, bias=True)\n"
                "  )\n"
                "  (multihead_attn): MultiheadAttention(\n"
                "    (out_proj): NonDynamicallyQuantizableLinear(in_features=8, out_features=8, bias=True)\n"
                "  )\n"
                "  (linear1): Linear(in_features=8, out_features=16, bias=True)\n"
                "  (dropout): Dropout(p=0.0, inplace=False)\n"
                "  (linear2): Linear(in_features=16, out_features=8, bias=True)\n"
                "  (norm1): LayerNorm((8,), eps=1e-06, elementwise_affine=True)\n"
                "  (norm2): LayerNorm((8,), eps=1e-06, elementwise_affine=True)\n"
                "  (norm3): LayerNorm((8,), eps=1e-06, elementwise_affine=True)\n"
                "  (dropout1): Dropout(p=0.0, inplace=False)\n"
                "  (dropout2): Dropout(p=0.0, inplace=False)\n"
                "  (dropout3): Dropout(p=0.0, inplace=False)\n"
                ")"));
    CHECK(names_are(d, BK_PARAMS,
                    (const char *const[]){"self_attn.in_proj_weight", "self_attn.in_proj_bias",
                                          "self_attn.out_proj.weight", "self_attn.out_proj.bias",
                                          "multihead_attn.in_proj_weight", "multihead_attn.in_proj_bias",
                                          "multihead_attn.out_proj.weight", "multihead_attn.out_proj.bias",
                                          "linear1.weight", "linear1.bias", "linear2.weight", "linear2.bias",
                                          "norm1.weight", "norm1.bias", "norm2.weight", "norm2.bias",
                                          "norm3.weight", "norm3.bias"},
                    18));
    CHECK_ERR(bk_forward(d, bk_zeros(BK_SHAPE(3, 2, 8))),
              "in TransformerDecoderLayer: forward needs the encoder output too");
    bk_module_free(d);
    for (int trial = 0; trial < 2; trial++) {
        bool nf = trial == 0, bf = trial == 1;
        layer_case c;
        if (!layer_case_init(&c, bk_nn_transformer_decoder_layer(small_cfg(nf, bf, BK_ACTIVATION_GELU)),
                             (const float[]){0, 0, 0, 0, 0, 1}))
            return;
        c.mem_kpm = bk_from_data(BK_SHAPE(2, 4), (const float[]){0, 0, 0, 1, 0, 1, 0, 0});
        bk_tensor *x = LEAF(bf ? RANDN(2, 3, 4) : RANDN(3, 2, 4)),
                  *mem = LEAF(bf ? RANDN(2, 4, 4) : RANDN(4, 2, 4));
        const char *ps[] = {"self_attn.in_proj_weight",
                            "multihead_attn.in_proj_weight",
                            "multihead_attn.in_proj_bias",
                            "multihead_attn.out_proj.bias",
                            "linear1.bias",
                            "norm3.weight"};
        check_layer_grads(nf ? "decoder layer (norm_first)" : "decoder layer", f_decoder_layer, &c, x, mem,
                          ps, 6);
        bk_module_free(c.m);
    }
}

TEST(layers_take_unbatched_input) {
    /* (L, E) gives what (L, 1, E) gives, for both layers and both layouts */
    for (int trial = 0; trial < 2; trial++) {
        bool bf = trial == 1;
        bk_module *e = bk_nn_transformer_encoder_layer(small_cfg(bf, bf, BK_ACTIVATION_RELU));
        bk_module *d = bk_nn_transformer_decoder_layer(small_cfg(!bf, bf, BK_ACTIVATION_GELU));
        CHECK(e && d);
        if (!e || !d) {
            bk_module_free(e);
            bk_module_free(d);
            return;
        }
        jitter(e, 0.3f);
        jitter(d, 0.3f);
        bk_tensor *x = RANDN(3, 4), *mem = RANDN(5, 4);
        int64_t one = 1;
        bk_tensor *xb = bk_reshape(x, BK_SHAPE(bf ? one : 3, bf ? 3 : one, 4));
        bk_tensor *mb = bk_reshape(mem, BK_SHAPE(bf ? one : 5, bf ? 5 : one, 4));
        bk_tensor *y = bk_transformer_encoder_layer_forward(e, x, bk_causal_mask(3), NULL);
        bk_tensor *yb = bk_transformer_encoder_layer_forward(e, xb, bk_causal_mask(3), NULL);
        CHECK(y && yb && y->ndim == 2 && max_abs_diff(y, yb) < 1e-6);
        y = bk_transformer_decoder_layer_forward(d, x, mem, bk_causal_mask(3), NULL, NULL, NULL);
        yb = bk_transformer_decoder_layer_forward(d, xb, mb, bk_causal_mask(3), NULL, NULL, NULL);
        CHECK(y && yb && y->ndim == 2 && max_abs_diff(y, yb) < 1e-6);
        bk_module_free(e);
        bk_module_free(d);
    }
}

TEST(layer_errors) {
    bk_transformer_config cfg = BK_TRANSFORMER_DEFAULTS(10, 3);
    CHECK_ERR(bk_nn_transformer_encoder_layer(cfg),
              "TransformerEncoderLayer: d_model=10 must be divisible by nhead=3");
    CHECK_ERR(bk_nn_transformer_decoder_layer(cfg),
              "TransformerDecoderLayer: d_model=10 must be divisible by nhead=3");
    cfg = BK_TRANSFORMER_DEFAULTS(8, 2);
    cfg.activation = BK_ACTIVATION_COUNT;
    CHECK_ERR(bk_nn_transformer_encoder_layer(cfg), "unknown activation");
    cfg = BK_TRANSFORMER_DEFAULTS(8, 2);
    cfg.dropout = 2.0f;
    CHECK_ERR(bk_nn_transformer_encoder_layer(cfg),
              "dropout probability has to be between 0 and 1, but got 2");
    cfg = BK_TRANSFORMER_DEFAULTS(8, 2);
    cfg.dim_feedforward = 16;
    bk_module *e = bk_nn_transformer_encoder_layer(cfg), *d = bk_nn_transformer_decoder_layer(cfg);
    CHECK(e && d);
    bk_tensor *src = bk_zeros(BK_SHAPE(4, 2, 8)), *mem = bk_zeros(BK_SHAPE(5, 2, 8));
    CHECK_ERR(bk_transformer_encoder_layer_forward(e, src, bk_zeros(BK_SHAPE(3, 3)), NULL),
              "in TransformerEncoderLayer(d_model=8, nhead=2): self_attn (src_mask, src_key_padding_mask): "
              "in "
              "MultiheadAttention(embed_dim=8, num_heads=2): attn_mask (3, 3) should be (L, S) = (4, 4)");
    CHECK_ERR(bk_transformer_encoder_layer_forward(e, src, NULL, bk_zeros(BK_SHAPE(4, 2))),
              "key_padding_mask (4, 2) should be (batch, source length) = (2, 4)");
    CHECK_ERR(bk_forward(e, bk_zeros(BK_SHAPE(4, 2, 6))),
              "in TransformerEncoderLayer(d_model=8, nhead=2): src (4, 2, 6) should be (length, batch, "
              "d_model) or "
              "unbatched (length, 8)");
    CHECK_ERR(bk_transformer_decoder_layer_forward(d, src, mem, NULL, bk_zeros(BK_SHAPE(4, 4)), NULL, NULL),
              "in TransformerDecoderLayer(d_model=8, nhead=2): multihead_attn (memory_mask, "
              "memory_key_padding_mask): "
              "in MultiheadAttention(embed_dim=8, num_heads=2): attn_mask (4, 4) should be (L, S) = (4, 5)");
    CHECK_ERR(bk_transformer_decoder_layer_forward(d, src, mem, NULL, NULL, NULL, bk_zeros(BK_SHAPE(2, 4))),
              "memory_key_padding_mask): in MultiheadAttention(embed_dim=8, num_heads=2): key_padding_mask "
              "(2, 4) "
              "should be (batch, source length) = (2, 5)");
    CHECK_ERR(bk_transformer_decoder_layer_forward(d, src, mem, bk_zeros(BK_SHAPE(5, 5)), NULL, NULL, NULL),
              "self_attn (tgt_mask, tgt_key_padding_mask)");
    CHECK_ERR(bk_transformer_decoder_layer_forward(d, src, bk_zeros(BK_SHAPE(5, 8)), NULL, NULL, NULL, NULL),
              "must both be batched (3-d) or both unbatched (2-d)");
    CHECK_ERR(bk_transformer_encoder_layer_forward(d, src, NULL, NULL),
              "expected a TransformerEncoderLayer, got "
              "TransformerDecoderLayer");
    CHECK_ERR(bk_transformer_encoder_layer_forward(e, NULL, NULL, NULL), "input 0 is NULL");
    bk_module_free(e);
    bk_module_free(d);
}

TEST(stacks) {
    bk_manual_seed(5);
    bk_transformer_config cfg = small_cfg(false, false, BK_ACTIVATION_RELU);
    bk_module *enc = bk_nn_transformer_encoder(bk_nn_transformer_encoder_layer(cfg), 2,
                                               bk_nn_layer_norm(1, (const int64_t[]){4}, 1e-5f));
    bk_module *dec = bk_nn_transformer_decoder(bk_nn_transformer_decoder_layer(cfg), 3, NULL);
    CHECK(enc && dec);
    if (!enc || !dec) goto out;
    bk_param_list *l = bk_module_named(enc, BK_STATE);
    CHECK(l && l->n == 2 * 12 + 2 && !strcmp(l->names[0], "layers.0.self_attn.in_proj_weight") &&
          !strcmp(l->names[12], "layers.1.self_attn.in_proj_weight") && !strcmp(l->names[24], "norm.weight"));
    for (int i = 0; l && i < 12; i++) /* the copies start equal, as torch's deepcopy */
        CHECK(max_abs_diff(l->tensors[i], l->tensors[12 + i]) == 0 && l->tensors[i] != l->tensors[12 + i]);
    bk_param_list_free(l);
    CHECK(bk_module_num_params(dec, false) ==
          3 * bk_module_num_params(bk_module_child(bk_module_child(dec, 0), 0), false));
    char buf[16384];
    CHECK(bk_module_repr(enc, buf, sizeof buf) > 0);
    const char *head = "TransformerEncoder(\n  (layers): ModuleList(\n    (0): TransformerEncoderLayer(\n";
    CHECK(strncmp(buf, head, strlen(head)) == 0);
    CHECK(strstr(buf, "\n    (1): TransformerEncoderLayer(\n      (self_attn): MultiheadAttention(\n") !=
          NULL);
    CHECK(strstr(buf, "\n  )\n  (norm): LayerNorm((4,), eps=1e-05, elementwise_affine=True)\n)") != NULL);
    jitter(enc, 0.3f);
    jitter(dec, 0.3f);
    /* the stack is its layers in turn, then the norm */
    bk_tensor *x = RANDN(3, 2, 4), *mem = RANDN(5, 2, 4), *mask = bk_causal_mask(3);
    bk_tensor *kpm = bk_from_data(BK_SHAPE(2, 3), (const float[]){0, 0, 0, 0, 0, 1});
    bk_tensor *y = bk_transformer_encoder_forward(enc, x, mask, kpm);
    bk_module *layers = bk_module_child_by_name(enc, "layers");
    bk_tensor *r = x;
    for (int i = 0; i < 2; i++)
        r = bk_transformer_encoder_layer_forward(bk_module_child(layers, i), r, mask, kpm);
    r = bk_forward(bk_module_child_by_name(enc, "norm"), r);
    CHECK(y && r && max_abs_diff(y, r) == 0);
    bk_tensor *yd = bk_transformer_decoder_forward(dec, x, mem, mask, NULL, kpm, NULL);
    layers = bk_module_child_by_name(dec, "layers");
    r = x;
    for (int i = 0; i < 3; i++)
        r = bk_transformer_decoder_layer_forward(bk_module_child(layers, i), r, mem, mask, NULL, kpm, NULL);
    CHECK(yd && r && max_abs_diff(yd, r) == 0);
    CHECK(max_abs_diff(bk_forward(enc, x), bk_transformer_encoder_forward(enc, x, NULL, NULL)) == 0);
    CHECK_ERR(bk_forward(dec, x), "in TransformerDecoder: forward needs the encoder output too");
    CHECK_ERR(bk_forward(layers, x), "in ModuleList: a ModuleList has no forward");
    CHECK_ERR(bk_transformer_encoder_forward(enc, x, bk_causal_mask(4), NULL),
              "in TransformerEncoderLayer(d_model=4, nhead=2): self_attn (src_mask, src_key_padding_mask)");
    /* training mode reaches every copy */
    bk_module_train(enc, false);
    CHECK(!bk_module_child(bk_module_child_by_name(enc, "layers"), 1)->training);
out:
    bk_module_free(enc);
    bk_module_free(dec);
}

TEST(stack_errors) {
    bk_transformer_config cfg = small_cfg(false, false, BK_ACTIVATION_RELU);
    /* the layer and the norm are freed on every failure (ASan's leak check sees this) */
    CHECK_ERR(bk_nn_transformer_encoder(bk_nn_transformer_decoder_layer(cfg), 2, bk_nn_relu()),
              "TransformerEncoder: the layer must be a TransformerEncoderLayer, got TransformerDecoderLayer");
    CHECK_ERR(bk_nn_transformer_decoder(bk_nn_transformer_decoder_layer(cfg), 0, bk_nn_relu()),
              "TransformerDecoder: num_layers=0 must be positive");
    CHECK_ERR(bk_nn_transformer_encoder(NULL, 2, bk_nn_relu()), "got ?");
    cfg.nhead = 3;
    CHECK_ERR(bk_nn_transformer_encoder(bk_nn_transformer_encoder_layer(cfg), 2, NULL),
              "d_model=4 must be divisible");
    bk_module *enc = bk_nn_transformer_encoder(bk_nn_transformer_encoder_layer(
                                                   small_cfg(true, true, BK_ACTIVATION_GELU)),
                                               1, NULL);
    CHECK_ERR(bk_transformer_decoder_forward(enc, NULL, NULL, NULL, NULL, NULL, NULL),
              "expected a TransformerDecoder, got TransformerEncoder");
    bk_module_free(enc);
}

/* A training step of an encoder layer allocates nothing once the arena is warm. */
TEST(encoder_step_allocates_nothing_when_warm) {
    bk_arena *a = bk_arena_new();
    bk_arena *prev = bk_arena_use(a);
    bk_transformer_config cfg = BK_TRANSFORMER_DEFAULTS(16, 4);
    cfg.dim_feedforward = 32;
    bk_module *m = bk_nn_transformer_encoder_layer(cfg);
    bk_tensor *x = bk_tensor_new(BK_SHAPE(6, 3, 16));
    CHECK(m && x);
    uint64_t allocs[4] = {0};
    for (int s = 0; m && x && s < 4; s++) {
        bk_fill_normal(x, &g_rng, 0, 1);
        bk_tensor *kpm = bk_zeros(BK_SHAPE(3, 6));
        bk_tensor *y = bk_transformer_encoder_layer_forward(m, x, bk_causal_mask(6), kpm);
        CHECK(y && bk_backward(bk_sum(y)) == 0);
        bk_module_zero_grad(m);
        bk_arena_reset(a);
        allocs[s] = bk_arena_allocations(a);
    }
    CHECK(allocs[2] == allocs[1] && allocs[3] == allocs[1]);
    bk_tensor_free(x);
    bk_module_free(m);
    bk_arena_use(prev);
    bk_arena_free(a);
}

/* nn.Transformer(d_model=4, nhead=2, 2 encoder layers, 1 decoder layer): torch's names,
 * xavier_uniform_ on every matrix (so the encoder's two layers, copies at first, differ),
 * LayerNorms left at 1; with tgt_mask = generate_square_subsequent_mask(T), output row t
 * does not change when tgt rows after t do (and does when an earlier one does). */
TEST(whole_transformer) {
    bk_module *m = bk_nn_transformer(small_cfg(false, false, BK_ACTIVATION_GELU), 2, 1);
    CHECK(m != NULL);
    if (!m) return;
    bk_param_list *l = bk_module_named(m, BK_STATE);
    CHECK(l && !strcmp(l->names[0], "encoder.layers.0.self_attn.in_proj_weight"));
    CHECK(l && !strcmp(l->names[l->n - 1], "decoder.norm.bias"));
    for (int i = 0; l && i < l->n; i++) {
        const bk_tensor *t = l->tensors[i];
        if (t->ndim < 2) continue;
        double bound = sqrt(6.0 / (double)(t->shape[0] + t->shape[1]));
        for (int64_t k = 0; k < t->numel; k++) CHECK(fabs(t->data[k]) <= bound);
    }
    bk_param_list_free(l);
    const bk_tensor *w0 = bk_module_get(m, "encoder.layers.0.linear1.weight"),
                    *w1 = bk_module_get(m, "encoder.layers.1.linear1.weight");
    CHECK(w0 && w1 && memcmp(w0->data, w1->data, (size_t)w0->numel * sizeof(float)) != 0);
    CHECK(all_equal(bk_module_get(m, "encoder.norm.weight"), 1.0f));

    const int64_t S = 3, T = 4, B = 2;
    bk_tensor *src = bk_randn(BK_SHAPE(S, B, 4)), *tgt = bk_randn(BK_SHAPE(T, B, 4));
    bk_tensor *y = bk_transformer_forward(m, src, tgt, NULL, bk_causal_mask(T), NULL, NULL, NULL, NULL);
    bk_tensor *tgt2 = bk_clone(tgt);
    for (int64_t k = 0; k < B * 4; k++) tgt2->data[(T - 1) * B * 4 + k] += 1.0f; /* the last step */
    bk_tensor *y2 = bk_transformer_forward(m, src, tgt2, NULL, bk_causal_mask(T), NULL, NULL, NULL, NULL);
    CHECK(y && y2 && y->shape[0] == T && y->shape[1] == B && y->shape[2] == 4);
    if (y && y2) {
        size_t before_last = (size_t)((T - 1) * B * 4) * sizeof(float);
        CHECK(memcmp(y->data, y2->data, before_last) == 0);
        CHECK(memcmp(y->data + (T - 1) * B * 4, y2->data + (T - 1) * B * 4,
                     (size_t)(B * 4) * sizeof(float)) != 0);
    }
    CHECK_ERR(bk_forward(m, src), "needs tgt");
    bk_module_free(m);
}

int main(void) {
    seed_from_env("test_transformer_layers");

    RUN(encoder_layer_structure);
    RUN(encoder_layer_gradients);
    RUN(decoder_layer_structure_and_gradients);
    RUN(layers_take_unbatched_input);
    RUN(layer_errors);
    RUN(stacks);
    RUN(stack_errors);
    RUN(encoder_step_allocates_nothing_when_warm);
    RUN(whole_transformer);
    return test_summary("test_transformer_layers");
}
