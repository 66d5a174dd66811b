/* transformer_model.c - nn.Transformer, the whole encoder-decoder model of "Attention is
 * all you need", as torch 1.13 builds it:
 *
 *   encoder = TransformerEncoder(TransformerEncoderLayer(cfg), num_encoder_layers,
 *                                LayerNorm(d_model, eps=layer_norm_eps))
 *   decoder = TransformerDecoder(TransformerDecoderLayer(cfg), num_decoder_layers,
 *                                LayerNorm(d_model, eps=layer_norm_eps))
 *   forward(src, tgt, masks) = decoder(tgt, encoder(src, src_mask, src_key_padding_mask),
 *                                      tgt_mask, memory_mask, tgt_key_padding_mask,
 *                                      memory_key_padding_mask)
 *
 * Children "encoder" and "decoder" (the stacks of transformer.c), so the state dict is
 * torch's (encoder.layers.0.self_attn.in_proj_weight, ..., decoder.norm.bias). Init as
 * torch's _reset_parameters: every parameter of rank > 1 drawn again with
 * xavier_uniform_ (the layers' own inits are then overwritten, and the stacks' copies of
 * a layer no longer share values); LayerNorms and biases keep their 1 and 0.
 * S = source length, T = target length, N = batch, E = d_model: src (S, N, E), tgt
 * (T, N, E), or (N, S, E), (N, T, E) with batch_first, or unbatched (S, E), (T, E).
 */
#include "internal.h"

#include <inttypes.h>

typedef struct transformer {
    bk_module base;
    bk_transformer_config cfg;
    bk_module *encoder, *decoder; /* borrowed from the children */
} transformer;

/* bk_forward: the model needs src and tgt, so it names the call to make */
static bk_tensor *transformer_module_forward(bk_module *m, bk_tensor *src) {
    (void)src;
    bk_set_error("in %s: forward needs tgt too; call bk_transformer_forward(m, src, tgt, ...)", m->cls->name);
    return NULL;
}

static const bk_module_class TRANSFORMER = {"Transformer", transformer_module_forward, NULL, NULL};

static void xavier_rank2(bk_module *m, void *ud) {
    bool *ok = ud;
    for (int i = 0; i < m->n_params; i++)
        if (m->params[i].tensor->ndim > 1 && bk_init_xavier_uniform(m->params[i].tensor, NULL, 1.0) != 0)
            *ok = false;
}

bk_module *bk_nn_transformer(bk_transformer_config cfg, int num_encoder_layers, int num_decoder_layers) {
    const int64_t E[1] = {cfg.d_model};
    /* the stacks check the config (through their layers) and the layer counts */
    bk_module *enc = bk_nn_transformer_encoder(bk_nn_transformer_encoder_layer(cfg), num_encoder_layers,
                                               bk_nn_layer_norm(1, E, cfg.layer_norm_eps));
    if (!enc) goto fail_prefix;
    bk_module *dec = bk_nn_transformer_decoder(bk_nn_transformer_decoder_layer(cfg), num_decoder_layers,
                                               bk_nn_layer_norm(1, E, cfg.layer_norm_eps));
    if (!dec) {
        bk_module_free(enc);
        goto fail_prefix;
    }
    transformer *self = (transformer *)bk_module_new(&TRANSFORMER, sizeof(transformer));
    if (!self) {
        bk_module_free(enc);
        bk_module_free(dec);
        return NULL;
    }
    self->cfg = cfg;
    self->encoder = bk_module_add(&self->base, "encoder", enc); /* frees enc on failure */
    self->decoder = self->encoder ? bk_module_add(&self->base, "decoder", dec) : NULL;
    if (!self->encoder) bk_module_free(dec);
    bool ok = self->decoder != NULL;
    if (ok) bk_module_apply(&self->base, xavier_rank2, &ok); /* _reset_parameters */
    if (!ok) {
        bk_module_free(&self->base);
        return NULL;
    }
    return &self->base;
fail_prefix:
    bk__error_prefix("Transformer");
    return NULL;
}

/* torch's checks: batched src and tgt have the same batch size, both end in d_model */
static bool shapes_ok(const transformer *t, const bk_tensor *src, const bk_tensor *tgt) {
    char a[128], b[128];
    bool batched = src->ndim == 3, bf = t->cfg.batch_first;
    if (batched && tgt->ndim == 3 && src->shape[bf ? 0 : 1] != tgt->shape[bf ? 0 : 1]) {
        bk_set_error("Transformer: the batch number of src %s and tgt %s must be equal (dim %d%s)",
                     bk_shape_str(src, a, sizeof a), bk_shape_str(tgt, b, sizeof b), bf ? 0 : 1,
                     bf ? ", batch_first" : "");
        return false;
    }
    if (src->ndim < 1 || tgt->ndim < 1 || src->shape[src->ndim - 1] != t->cfg.d_model ||
        tgt->shape[tgt->ndim - 1] != t->cfg.d_model) {
        bk_set_error("Transformer: the feature number of src %s and tgt %s must be equal to d_model=%" PRId64,
                     bk_shape_str(src, a, sizeof a), bk_shape_str(tgt, b, sizeof b), t->cfg.d_model);
        return false;
    }
    return true;
}

bk_tensor *bk_transformer_forward(bk_module *m, bk_tensor *src, bk_tensor *tgt, bk_tensor *src_mask,
                                  bk_tensor *tgt_mask, bk_tensor *memory_mask,
                                  bk_tensor *src_key_padding_mask, bk_tensor *tgt_key_padding_mask,
                                  bk_tensor *memory_key_padding_mask) {
    if (!bk__module_ok(m, "transformer_forward")) return NULL;
    if (m->cls != &TRANSFORMER) {
        bk_set_error("transformer_forward: the block must be a Transformer, got %s", m->cls->name);
        return NULL;
    }
    bk_tensor *in[2] = {src, tgt};
    if (!bk__inputs_ok("Transformer", 2, in)) return NULL;
    transformer *t = (transformer *)m;
    if (!shapes_ok(t, src, tgt)) return NULL;
    bk_tensor *memory = bk_transformer_encoder_forward(t->encoder, src, src_mask, src_key_padding_mask);
    if (!memory) return NULL; // (S, N, E) like src
    return bk_transformer_decoder_forward(t->decoder, tgt, memory, tgt_mask, memory_mask,
                                          tgt_key_padding_mask,
                                          memory_key_padding_mask); // (T, N, E) like tgt
}
