/* multihead_attention.c - nn.MultiheadAttention(embed_dim, num_heads, dropout, bias,
 * batch_first), with kdim = vdim = embed_dim (packed projections), no bias_k/bias_v and
 * no add_zero_attn: torch's defaults.
 *
 * B = batch, L = target length, S = source length, E = embed_dim, H = num_heads, D = E / H.
 *   q = query Wq^T + bq,  k = key Wk^T + bk,  v = value Wv^T + bv     [Wq; Wk; Wv] = in_proj_weight
 *   P = softmax(q_h k_h^T / sqrt(D) + masks) per head    (bk_attention_weights, (B, H, L, S))
 *   out = out_proj(concat_h(dropout(P) v_h))              (bk_attention_apply, then a Linear)
 * The projections stay in the caller's layout, (L, B, E) or (B, L, E): the attention ops
 * read each head's columns in place, so no transpose or copy of activations is made (only
 * the (E, E) slices of in_proj_weight are copied).
 *
 * State dict (torch's names and order): in_proj_weight (3E, E), in_proj_bias (3E),
 * out_proj.weight (E, E), out_proj.bias (E). out_proj is a Linear(E, E) that prints as
 * NonDynamicallyQuantizableLinear, the Linear subclass torch uses there (bk__nn_out_proj).
 */
#include "internal.h"

#include <inttypes.h>
#include <math.h>

/* ---- MultiheadAttention -------------------------------------------------------------------------- */

typedef struct mha {
    bk_module base;
    int64_t embed_dim, num_heads;
    float dropout;
    bool batch_first;
    bk_tensor *in_proj_weight, *in_proj_bias; /* borrowed; bias may be NULL */
    bk_module *out_proj;
} mha;

static const bk_module_class MULTIHEAD_ATTENTION;

static bool is_mha(const bk_module *m) { return m && m->cls == &MULTIHEAD_ATTENTION && m->refcount > 0; }

/* The layer's description for error messages. */
static const char *mha_name(const mha *self, char *buf, size_t n) {
    snprintf(buf, n, "in MultiheadAttention(embed_dim=%" PRId64 ", num_heads=%" PRId64 "%s)", self->embed_dim,
             self->num_heads, self->batch_first ? ", batch_first=True" : "");
    return buf;
}

/* Rows a..b of in_proj_weight and in_proj_bias applied to x: x W[a:b]^T + bias[a:b]. */
static bk_tensor *project(mha *self, bk_tensor *x, int part) {
    int64_t E = self->embed_dim;
    bk_tensor *w = bk_slice(self->in_proj_weight, 0, part * E, (part + 1) * E); // (E, E)
    bk_tensor *b = self->in_proj_bias ? bk_slice(self->in_proj_bias, 0, part * E, (part + 1) * E) : NULL;
    if (self->in_proj_bias && !b) return NULL;
    return bk_linear(x, w, b); // like x
}

/* Validates the inputs and masks; batched tells whether query is 3-d. */
static bool mha_check(const mha *self, const bk_tensor *q, const bk_tensor *k, const bk_tensor *v,
                      const bk_tensor *kpm, const bk_tensor *am, bool *batched) {
    char s1[128], s2[128], s3[128];
    int64_t E = self->embed_dim, H = self->num_heads;
    if (q->ndim != 2 && q->ndim != 3) {
        bk_set_error("query should be unbatched 2-d or batched 3-d, got %s", bk_shape_str(q, s1, sizeof s1));
        return false;
    }
    *batched = q->ndim == 3;
    if (k->ndim != q->ndim || v->ndim != q->ndim) {
        bk_set_error("for a %d-d query %s, key and value must be %d-d too, got %s and %s", q->ndim,
                     bk_shape_str(q, s1, sizeof s1), q->ndim, bk_shape_str(k, s2, sizeof s2),
                     bk_shape_str(v, s3, sizeof s3));
        return false;
    }
    if (q->shape[q->ndim - 1] != E || k->shape[k->ndim - 1] != E) {
        bk_set_error("was expecting embedding dimension %" PRId64 ", but query is %s and key %s", E,
                     bk_shape_str(q, s1, sizeof s1), bk_shape_str(k, s2, sizeof s2));
        return false;
    }
    if (!bk_same_shape(k, v)) {
        bk_set_error("key shape %s does not match value shape %s", bk_shape_str(k, s1, sizeof s1),
                     bk_shape_str(v, s2, sizeof s2));
        return false;
    }
    int bd = self->batch_first ? 0 : 1, ld = self->batch_first ? 1 : 0;
    int64_t B = *batched ? q->shape[bd] : 1, L = *batched ? q->shape[ld] : q->shape[0];
    int64_t S = *batched ? k->shape[ld] : k->shape[0];
    if (*batched && k->shape[bd] != B) {
        bk_set_error("query %s and key %s have different batch sizes (%s layout)",
                     bk_shape_str(q, s1, sizeof s1), bk_shape_str(k, s2, sizeof s2),
                     self->batch_first ? "batch_first (B, L, E)" : "(L, B, E)");
        return false;
    }
    if (kpm) {
        bool ok = *batched ? (kpm->ndim == 2 && kpm->shape[0] == B && kpm->shape[1] == S)
                           : (kpm->ndim == 1 && kpm->shape[0] == S);
        if (!ok) {
            if (*batched)
                bk_set_error("key_padding_mask %s should be (batch, source length) = (%" PRId64 ", %" PRId64
                             ")",
                             bk_shape_str(kpm, s1, sizeof s1), B, S);
            else
                bk_set_error("key_padding_mask %s should be (source length) = (%" PRId64 ")",
                             bk_shape_str(kpm, s1, sizeof s1), S);
            return false;
        }
    }
    if (am) {
        bool ok = (am->ndim == 2 && am->shape[0] == L && am->shape[1] == S) ||
                  (am->ndim == 3 && am->shape[0] == B * H && am->shape[1] == L && am->shape[2] == S);
        if (!ok) {
            bk_set_error("attn_mask %s should be (L, S) = (%" PRId64 ", %" PRId64
                         ") or (batch * num_heads, L, S) = "
                         "(%" PRId64 ", %" PRId64 ", %" PRId64 ")",
                         bk_shape_str(am, s1, sizeof s1), L, S, B * H, L, S);
            return false;
        }
    }
    return true;
}

bk_tensor *bk_mha_forward(bk_module *m, bk_tensor *query, bk_tensor *key, bk_tensor *value,
                          bk_tensor *key_padding_mask, bk_tensor *attn_mask, bool need_weights,
                          bool average_attn_weights, bk_tensor **attn_weights) {
    if (attn_weights) *attn_weights = NULL;
    if (!is_mha(m)) {
        /* NULL with an error pending: a failed constructor, whose message is kept */
        if ((m || !bk__error_pending()) && bk__module_ok(m, "multihead_attention"))
            bk_set_error("multihead_attention: expected a MultiheadAttention, got %s", bk_module_name(m));
        return NULL;
    }
    mha *self = (mha *)m;
    char name[160];
    bk_tensor *in[3] = {query, key, value};
    if (!bk__inputs_ok("MultiheadAttention", 3, in)) return NULL;
    if ((key_padding_mask && !bk_tensor_ok(key_padding_mask, "MultiheadAttention: key_padding_mask")) ||
        (attn_mask && !bk_tensor_ok(attn_mask, "MultiheadAttention: attn_mask")))
        return NULL;
    bool batched;
    if (!mha_check(self, query, key, value, key_padding_mask, attn_mask, &batched)) {
        bk__error_prefix("%s", mha_name(self, name, sizeof name));
        return NULL;
    }
    bool bf = self->batch_first;
    bk_tensor *q = query, *k = key, *v = value, *kpm = key_padding_mask;
    if (!batched) { /* (L, E) -> (1, L, E), run batch first, squeeze at the end */
        bf = true;
        q = bk_reshape(query, BK_SHAPE(1, query->shape[0], query->shape[1]));
        k = key == query ? q : bk_reshape(key, BK_SHAPE(1, key->shape[0], key->shape[1]));
        v = value == key ? k : bk_reshape(value, BK_SHAPE(1, value->shape[0], value->shape[1]));
        if (kpm) kpm = bk_reshape(kpm, BK_SHAPE(1, kpm->shape[0]));
    }
    q = project(self, q, 0);                                                              // like query
    k = project(self, k, 1);                                                              // like key
    v = project(self, v, 2);                                                              // like value
    bk_tensor *P = bk_attention_weights(q, k, self->num_heads, bf, attn_mask, kpm, 0.0f); // (B, H, L, S)
    P = bk_dropout(P, self->dropout, m->training, NULL);
    bk_tensor *out = bk_forward(self->out_proj, bk_attention_apply(P, v, bf)); // like query
    if (!out) {
        bk__error_prefix("%s", mha_name(self, name, sizeof name));
        return NULL;
    }
    bk_tensor *w = NULL;
    if (need_weights && attn_weights) {
        w = average_attn_weights ? bk_mean_dim(P, 1, false) : P; // (B, L, S) or (B, H, L, S)
        if (w && !batched) w = bk_reshape(w, w->ndim - 1, w->shape + 1);
        if (!w) return NULL;
    }
    if (!batched) out = bk_reshape(out, BK_SHAPE(query->shape[0], self->embed_dim));
    if (out && attn_weights) *attn_weights = w;
    return out;
}

static bk_tensor *mha_forward(bk_module *m, bk_tensor *x) {
    return bk_mha_forward(m, x, x, x, NULL, NULL, false, false, NULL); // self-attention, like x
}

static const bk_module_class MULTIHEAD_ATTENTION = {"MultiheadAttention", mha_forward, NULL, NULL};

bk_module *bk_nn_multihead_attention(int64_t embed_dim, int64_t num_heads, float dropout, bool bias,
                                     bool batch_first) {
    if (embed_dim < 1 || num_heads < 1 || embed_dim % num_heads != 0) {
        bk_set_error("MultiheadAttention: embed_dim=%" PRId64 " must be divisible by num_heads=%" PRId64
                     " (both positive)",
                     embed_dim, num_heads);
        return NULL;
    }
    if (embed_dim > INT64_MAX / 3) { /* in_proj_weight is (3 * embed_dim, embed_dim) */
        bk_set_error("MultiheadAttention: embed_dim=%" PRId64 " gives too many elements", embed_dim);
        return NULL;
    }
    if (!(dropout >= 0.0f && dropout <= 1.0f)) {
        bk_set_error("MultiheadAttention: dropout probability has to be between 0 and 1, but got %g",
                     (double)dropout);
        return NULL;
    }
    mha *self = (mha *)bk_module_new(&MULTIHEAD_ATTENTION, sizeof(mha));
    if (!self) return NULL;
    bk_module *m = &self->base;
    int64_t E = embed_dim;
    self->embed_dim = E;
    self->num_heads = num_heads;
    self->dropout = dropout;
    self->batch_first = batch_first;
    self->in_proj_weight = bk_module_param(m, "in_proj_weight", BK_SHAPE(3 * E, E));
    if (self->in_proj_weight && bias)
        self->in_proj_bias = bk_module_param(m, "in_proj_bias", BK_SHAPE(3 * E));
    if (self->in_proj_weight && (!bias || self->in_proj_bias))
        self->out_proj = bk_module_add(m, "out_proj", bk__nn_out_proj(E, bias));
    if (!self->out_proj) {
        bk_module_free(m);
        return NULL;
    }
    /* xavier_uniform_: fan_in = E, fan_out = 3E; biases (in_proj_bias, out_proj.bias) zero */
    float bound = sqrtf(6.0f / (float)(E + 3 * E));
    bk_fill_uniform(self->in_proj_weight, NULL, -bound, bound);
    return m;
}
