/* transformer.c - nn.TransformerEncoderLayer / nn.TransformerDecoderLayer and the stacks
 * nn.TransformerEncoder / nn.TransformerDecoder, as in torch 1.13, with torch's child
 * names and order (so state dicts and print(net) match):
 *
 *   encoder layer: self_attn, linear1, dropout, linear2, norm1, norm2, dropout1, dropout2
 *   decoder layer: self_attn, multihead_attn, linear1, dropout, linear2, norm1, norm2,
 *                  norm3, dropout1, dropout2, dropout3
 *   stacks:        layers (a ModuleList "0".."N-1"), norm (optional)
 *
 * B = batch, L = target length, S = source (memory) length, E = d_model. x is (L, B, E),
 * or (B, L, E) with batch_first, or unbatched (L, E).
 *   sa(x)    = dropout1(self_attn(x, x, x, attn_mask, key_padding_mask))
 *   mha(x,m) = dropout2(multihead_attn(x, m, m, memory_mask, memory_key_padding_mask))
 *   ff(x)    = dropoutN(linear2(dropout(act(linear1(x)))))     N = 2 (encoder), 3 (decoder)
 *   post-norm (default): x = norm1(x + sa(x)); [x = norm2(x + mha(x, m));] x = normN(x + ff(x))
 *   norm_first:          x = x + sa(norm1(x)); [x = x + mha(norm2(x), m);] x = x + ff(normN(x))
 * This is torch's standard path, the one it takes in training mode. (torch 1.13 has an
 * inference fast path for eval mode without grad; it computes the same function except
 * for fully masked rows, see brick.h.)
 */
#include "internal.h"

#include <inttypes.h>
#include <math.h>

typedef struct tlayer {
    bk_module base;
    bk_transformer_config cfg;
    bk_module *self_attn, *multihead_attn; /* multihead_attn: decoder only */
    bk_module *linear1, *dropout, *linear2;
    bk_module *norm1, *norm2, *norm3; /* norm3: decoder only */
    bk_module *dropout1, *dropout2, *dropout3;
} tlayer;

static bk_tensor *encoder_layer_module_forward(bk_module *m, bk_tensor *src);
static bk_tensor *decoder_layer_module_forward(bk_module *m, bk_tensor *tgt);

static const bk_module_class ENCODER_LAYER = {"TransformerEncoderLayer", encoder_layer_module_forward, NULL,
                                              NULL};
static const bk_module_class DECODER_LAYER = {"TransformerDecoderLayer", decoder_layer_module_forward, NULL,
                                              NULL};

/* "in TransformerEncoderLayer(d_model=16, nhead=4)": errors inside a layer start with this. */
static void layer_error_prefix(const tlayer *t, const char *where) {
    bk__error_prefix("in %s(d_model=%" PRId64 ", nhead=%" PRId64 ")%s%s", t->base.cls->name, t->cfg.d_model,
                     t->cfg.nhead, where ? ": " : "", where ? where : "");
}

/* src must be (L, B, E) / (B, L, E) or unbatched (L, E) with E = d_model. */
static bool input_ok(const tlayer *t, const char *what, const bk_tensor *x) {
    if ((x->ndim == 2 || x->ndim == 3) && x->shape[x->ndim - 1] == t->cfg.d_model) return true;
    char s[128];
    bk_set_error("%s %s should be %s or unbatched (length, %" PRId64 ")", what, bk_shape_str(x, s, sizeof s),
                 t->cfg.batch_first ? "(batch, length, d_model)" : "(length, batch, d_model)",
                 t->cfg.d_model);
    layer_error_prefix(t, NULL);
    return false;
}

static bk_tensor *ff_block(tlayer *t, bk_tensor *x, bk_module *last_dropout) {
    bk_tensor *h = bk_forward(t->linear1, x); // (..., dim_feedforward)
    h = t->cfg.activation == BK_ACTIVATION_GELU ? bk_gelu(h) : bk_relu(h);
    return bk_forward(last_dropout, bk_forward(t->linear2, bk_forward(t->dropout, h))); // like x
}

/* An attention block; on failure the error names the layer and the child. */
static bk_tensor *attn_block(tlayer *t, bk_module *attn, const char *what, bk_tensor *x, bk_tensor *mem,
                             bk_tensor *mask, bk_tensor *kpm, bk_module *drop) {
    if (!x || !mem) return NULL;
    bk_tensor *y = bk_mha_forward(attn, x, mem, mem, kpm, mask, false, false, NULL); // like x
    if (!y) {
        layer_error_prefix(t, what);
        return NULL;
    }
    return bk_forward(drop, y);
}

static bool is_layer(const bk_module *m, const bk_module_class *cls, const char *who) {
    if (m && m->cls == cls && m->refcount > 0) return true;
    /* NULL with an error pending: a failed constructor, whose message is kept */
    if ((m || !bk__error_pending()) && bk__module_ok(m, who))
        bk_set_error("%s: expected a %s, got %s", who, cls->name, bk_module_name(m));
    return false;
}

bk_tensor *bk_transformer_encoder_layer_forward(bk_module *m, bk_tensor *src, bk_tensor *src_mask,
                                                bk_tensor *src_key_padding_mask) {
    if (!is_layer(m, &ENCODER_LAYER, "transformer_encoder_layer_forward")) return NULL;
    tlayer *t = (tlayer *)m;
    if (!bk__inputs_ok("TransformerEncoderLayer", 1, &src) || !input_ok(t, "src", src)) return NULL;
    const char *sa = "self_attn (src_mask, src_key_padding_mask)";
    bk_tensor *x = src;
    if (t->cfg.norm_first) {
        bk_tensor *h = bk_forward(t->norm1, x);
        x = bk_add(x, attn_block(t, t->self_attn, sa, h, h, src_mask, src_key_padding_mask, t->dropout1));
        x = bk_add(x, ff_block(t, bk_forward(t->norm2, x), t->dropout2));
    } else {
        x = bk_forward(t->norm1, bk_add(x, attn_block(t, t->self_attn, sa, x, x, src_mask,
                                                      src_key_padding_mask, t->dropout1)));
        x = bk_forward(t->norm2, bk_add(x, ff_block(t, x, t->dropout2)));
    }
    return x; // like src
}

bk_tensor *bk_transformer_decoder_layer_forward(bk_module *m, bk_tensor *tgt, bk_tensor *memory,
                                                bk_tensor *tgt_mask, bk_tensor *memory_mask,
                                                bk_tensor *tgt_key_padding_mask,
                                                bk_tensor *memory_key_padding_mask) {
    if (!is_layer(m, &DECODER_LAYER, "transformer_decoder_layer_forward")) return NULL;
    tlayer *t = (tlayer *)m;
    bk_tensor *in[2] = {tgt, memory};
    if (!bk__inputs_ok("TransformerDecoderLayer", 2, in) || !input_ok(t, "tgt", tgt) ||
        !input_ok(t, "memory", memory))
        return NULL;
    if (tgt->ndim != memory->ndim) {
        char s1[128], s2[128];
        bk_set_error("tgt %s and memory %s must both be batched (3-d) or both unbatched (2-d)",
                     bk_shape_str(tgt, s1, sizeof s1), bk_shape_str(memory, s2, sizeof s2));
        layer_error_prefix(t, NULL);
        return NULL;
    }
    const char *sa = "self_attn (tgt_mask, tgt_key_padding_mask)";
    const char *ca = "multihead_attn (memory_mask, memory_key_padding_mask)";
    bk_tensor *x = tgt;
    if (t->cfg.norm_first) {
        bk_tensor *h = bk_forward(t->norm1, x);
        x = bk_add(x, attn_block(t, t->self_attn, sa, h, h, tgt_mask, tgt_key_padding_mask, t->dropout1));
        x = bk_add(x, attn_block(t, t->multihead_attn, ca, bk_forward(t->norm2, x), memory, memory_mask,
                                 memory_key_padding_mask, t->dropout2));
        x = bk_add(x, ff_block(t, bk_forward(t->norm3, x), t->dropout3));
    } else {
        x = bk_forward(t->norm1, bk_add(x, attn_block(t, t->self_attn, sa, x, x, tgt_mask,
                                                      tgt_key_padding_mask, t->dropout1)));
        x = bk_forward(t->norm2, bk_add(x, attn_block(t, t->multihead_attn, ca, x, memory, memory_mask,
                                                      memory_key_padding_mask, t->dropout2)));
        x = bk_forward(t->norm3, bk_add(x, ff_block(t, x, t->dropout3)));
    }
    return x; // like tgt
}

static bk_tensor *encoder_layer_module_forward(bk_module *m, bk_tensor *src) {
    return bk_transformer_encoder_layer_forward(m, src, NULL, NULL);
}

/* bk_forward of a decoder, which needs the encoder output too: names the call to make */
static bk_tensor *needs_memory(const bk_module *m, const char *call) {
    bk_set_error("in %s: forward needs the encoder output too; call %s(m, tgt, memory, ...)", m->cls->name,
                 call);
    return NULL;
}

static bk_tensor *decoder_layer_module_forward(bk_module *m, bk_tensor *tgt) {
    (void)tgt;
    return needs_memory(m, "bk_transformer_decoder_layer_forward");
}

static bool config_ok(const char *who, const bk_transformer_config *c) {
    if (c->d_model < 1 || c->nhead < 1 || c->d_model % c->nhead != 0) {
        bk_set_error("%s: d_model=%" PRId64 " must be divisible by nhead=%" PRId64 " (both positive)", who,
                     c->d_model, c->nhead);
        return false;
    }
    if (c->dim_feedforward < 1) {
        bk_set_error("%s: dim_feedforward=%" PRId64 " must be positive", who, c->dim_feedforward);
        return false;
    }
    if (!(c->dropout >= 0.0f && c->dropout <= 1.0f)) {
        bk_set_error("%s: dropout probability has to be between 0 and 1, but got %g", who,
                     (double)c->dropout);
        return false;
    }
    if ((int)c->activation < 0 || c->activation >= BK_ACTIVATION_COUNT) {
        bk_set_error("%s: unknown activation %d (BK_ACTIVATION_RELU or BK_ACTIVATION_GELU)", who,
                     (int)c->activation);
        return false;
    }
    if (!(c->layer_norm_eps >= 0.0f && c->layer_norm_eps < INFINITY)) {
        bk_set_error("%s: layer_norm_eps=%g must be finite and non-negative", who, (double)c->layer_norm_eps);
        return false;
    }
    return true;
}

/* Adds child `name` = block to t, storing it in *slot; false (block freed) on failure. */
static bool add(tlayer *t, bk_module **slot, const char *name, bk_module *block) {
    *slot = bk_module_add(&t->base, name, block);
    return *slot != NULL;
}

static bk_module *layer_new(const bk_module_class *cls, bk_transformer_config c) {
    if (!config_ok(cls->name, &c)) return NULL;
    tlayer *t = (tlayer *)bk_module_new(cls, sizeof(tlayer));
    if (!t) return NULL;
    t->cfg = c;
    bool dec = cls == &DECODER_LAYER;
    const int64_t E[1] = {c.d_model};
    bool ok = add(t, &t->self_attn, "self_attn",
                  bk_nn_multihead_attention(c.d_model, c.nhead, c.dropout, true, c.batch_first));
    if (ok && dec)
        ok = add(t, &t->multihead_attn, "multihead_attn",
                 bk_nn_multihead_attention(c.d_model, c.nhead, c.dropout, true, c.batch_first));
    ok = ok && add(t, &t->linear1, "linear1", bk_nn_linear(c.d_model, c.dim_feedforward));
    ok = ok && add(t, &t->dropout, "dropout", bk_nn_dropout(c.dropout));
    ok = ok && add(t, &t->linear2, "linear2", bk_nn_linear(c.dim_feedforward, c.d_model));
    ok = ok && add(t, &t->norm1, "norm1", bk_nn_layer_norm(1, E, c.layer_norm_eps));
    ok = ok && add(t, &t->norm2, "norm2", bk_nn_layer_norm(1, E, c.layer_norm_eps));
    if (ok && dec) ok = add(t, &t->norm3, "norm3", bk_nn_layer_norm(1, E, c.layer_norm_eps));
    ok = ok && add(t, &t->dropout1, "dropout1", bk_nn_dropout(c.dropout));
    ok = ok && add(t, &t->dropout2, "dropout2", bk_nn_dropout(c.dropout));
    if (ok && dec) ok = add(t, &t->dropout3, "dropout3", bk_nn_dropout(c.dropout));
    if (!ok) {
        bk_module_free(&t->base);
        return NULL;
    }
    return &t->base;
}

bk_module *bk_nn_transformer_encoder_layer(bk_transformer_config cfg) {
    return layer_new(&ENCODER_LAYER, cfg);
}
bk_module *bk_nn_transformer_decoder_layer(bk_transformer_config cfg) {
    return layer_new(&DECODER_LAYER, cfg);
}

/* A new layer with the same settings, parameter values and mode (torch's deepcopy). */
static bk_module *layer_clone(const bk_module *src) {
    const tlayer *t = (const tlayer *)src;
    bk_module *c = layer_new(src->cls, t->cfg);
    if (!c) return NULL;
    bk_param_list *a = bk_module_named(src, BK_STATE), *b = bk_module_named(c, BK_STATE);
    bool ok = a && b && a->n == b->n;
    for (int i = 0; ok && i < a->n; i++) ok = bk_copy(b->tensors[i], a->tensors[i]) == 0;
    bk_param_list_free(a);
    bk_param_list_free(b);
    if (!ok) {
        if (!bk__error_pending()) bk_set_error("%s: copying the layer failed", src->cls->name);
        bk_module_free(c);
        return NULL;
    }
    bk_module_train(c, src->training);
    return c;
}

/* ---- the stacks ------------------------------------------------------------------------------ */

/* nn.ModuleList: a container of numbered children, with no forward of its own. */
static bk_tensor *module_list_forward(bk_module *m, bk_tensor *x) {
    (void)x;
    bk_set_error("in %s: a ModuleList has no forward; call its children", m->cls->name);
    return NULL;
}

static const bk_module_class MODULE_LIST = {"ModuleList", module_list_forward, NULL, NULL};

typedef struct tstack {
    bk_module base;
    bk_module *layers; /* ModuleList, borrowed */
    bk_module *norm;   /* borrowed, may be NULL */
    int num_layers;
} tstack;

static bk_tensor *encoder_module_forward(bk_module *m, bk_tensor *src);
static bk_tensor *decoder_module_forward(bk_module *m, bk_tensor *tgt);

static const bk_module_class ENCODER = {"TransformerEncoder", encoder_module_forward, NULL, NULL};
static const bk_module_class DECODER = {"TransformerDecoder", decoder_module_forward, NULL, NULL};

static bk_module *stack_new(const bk_module_class *cls, const bk_module_class *layer_cls, bk_module *layer,
                            int num_layers, bk_module *norm) {
    tstack *s = NULL;
    /* what is not a live block is not ours to free */
    if (layer && !bk__module_ok(layer, cls->name)) {
        layer = NULL;
        goto fail;
    }
    if (norm && !bk__module_ok(norm, cls->name)) {
        bk__error_prefix("%s: norm", cls->name);
        norm = NULL;
        goto fail;
    }
    if (!layer || layer->cls != layer_cls) {
        if (layer || !bk__error_pending())
            bk_set_error("%s: the layer must be a %s, got %s", cls->name, layer_cls->name,
                         bk_module_name(layer));
        goto fail;
    }
    if (num_layers < 1) {
        bk_set_error("%s: num_layers=%d must be positive", cls->name, num_layers);
        goto fail;
    }
    s = (tstack *)bk_module_new(cls, sizeof(tstack));
    if (!s) goto fail;
    s->num_layers = num_layers;
    s->layers = bk_module_add(&s->base, "layers", bk_module_new(&MODULE_LIST, sizeof(bk_module)));
    if (!s->layers) goto fail;
    bk_module *first = layer;
    layer = NULL; /* owned by the list from here on (bk_module_add frees it on failure) */
    for (int i = 0; i < num_layers; i++) {
        char name[16];
        snprintf(name, sizeof name, "%d", i);
        if (!bk_module_add(s->layers, name, i == 0 ? first : layer_clone(first))) goto fail;
    }
    if (norm) {
        s->norm = bk_module_add(&s->base, "norm", norm);
        norm = NULL;
        if (!s->norm) goto fail;
    }
    return &s->base;
fail:
    if (s) bk__error_prefix("%s", cls->name);
    bk_module_free(s ? &s->base : NULL);
    bk_module_free(layer);
    bk_module_free(norm);
    return NULL;
}

bk_module *bk_nn_transformer_encoder(bk_module *encoder_layer, int num_layers, bk_module *norm) {
    return stack_new(&ENCODER, &ENCODER_LAYER, encoder_layer, num_layers, norm);
}

bk_module *bk_nn_transformer_decoder(bk_module *decoder_layer, int num_layers, bk_module *norm) {
    return stack_new(&DECODER, &DECODER_LAYER, decoder_layer, num_layers, norm);
}

/* The final norm (if any); errors inside get the stack's name unless a block already has it. */
static bk_tensor *stack_finish(tstack *s, bk_tensor *x, bool had_error) {
    if (x && s->norm) x = bk_forward(s->norm, x);
    if (!x && !had_error && bk__error_pending() && strncmp(bk_last_error(), "in ", 3) != 0)
        bk__error_prefix("in %s", s->base.cls->name);
    return x;
}

bk_tensor *bk_transformer_encoder_forward(bk_module *m, bk_tensor *src, bk_tensor *mask,
                                          bk_tensor *src_key_padding_mask) {
    if (!is_layer(m, &ENCODER, "transformer_encoder_forward")) return NULL;
    if (!bk__inputs_ok("TransformerEncoder", 1, &src)) return NULL; /* the loop below needs one */
    tstack *s = (tstack *)m;
    bool had_error = bk__error_pending();
    bk_tensor *x = src;
    for (int i = 0; i < s->num_layers && x; i++)
        x = bk_transformer_encoder_layer_forward(s->layers->children[i].module, x, mask,
                                                 src_key_padding_mask);
    return stack_finish(s, x, had_error); // like src
}

bk_tensor *bk_transformer_decoder_forward(bk_module *m, bk_tensor *tgt, bk_tensor *memory,
                                          bk_tensor *tgt_mask, bk_tensor *memory_mask,
                                          bk_tensor *tgt_key_padding_mask,
                                          bk_tensor *memory_key_padding_mask) {
    if (!is_layer(m, &DECODER, "transformer_decoder_forward")) return NULL;
    bk_tensor *in[2] = {tgt, memory};
    if (!bk__inputs_ok("TransformerDecoder", 2, in)) return NULL; /* the loop below needs them */
    tstack *s = (tstack *)m;
    bool had_error = bk__error_pending();
    bk_tensor *x = tgt;
    for (int i = 0; i < s->num_layers && x; i++)
        x = bk_transformer_decoder_layer_forward(s->layers->children[i].module, x, memory, tgt_mask,
                                                 memory_mask, tgt_key_padding_mask, memory_key_padding_mask);
    return stack_finish(s, x, had_error); // like tgt
}

static bk_tensor *encoder_module_forward(bk_module *m, bk_tensor *src) {
    return bk_transformer_encoder_forward(m, src, NULL, NULL);
}

static bk_tensor *decoder_module_forward(bk_module *m, bk_tensor *tgt) {
    (void)tgt;
    return needs_memory(m, "bk_transformer_decoder_forward");
}
