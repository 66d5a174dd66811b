/* positional.c - position information added to a sequence of embeddings.
 *
 * PositionalEncoding (D2L, "Attention is all you need"): a fixed table
 *   P[pos, 2i] = sin(pos / 10000^(2i/d)),  P[pos, 2i+1] = cos(pos / 10000^(2i/d))
 * in a non-persistent buffer "P" (1, max_len, d) (not in the state dict, as D2L's plain
 * attribute is not), then dropout: X (B, T, d) -> dropout(X + P[:, :T]). The table is
 * computed in double and rounded once, so it is the float nearest the exact value.
 *
 * LearnedPositionalEmbedding: a parameter "weight" (max_len, d), N(0, 1) like an
 * nn.Embedding over positions 0..max_len-1: X (B, T, d) -> X + weight[:T].
 *
 * Both take (B, T, d) (batch first, as D2L) or (T, d), and refuse T > max_len.
 */
#include "internal.h"

#include <inttypes.h>
#include <math.h>

typedef struct positional {
    bk_module base;
    int64_t max_len, d;
    bk_tensor *table;   /* P (1, max_len, d) buffer, or weight (max_len, d) parameter; borrowed */
    bk_module *dropout; /* PositionalEncoding only */
} positional;

/* Checks X (B, T, d) or (T, d) against the table and returns T, or -1 with an error. */
static int64_t seq_len(const positional *self, const bk_tensor *x) {
    char s[128];
    const char *name = self->base.cls->name;
    if (x->ndim < 2 || x->ndim > 3 || x->shape[x->ndim - 1] != self->d) {
        bk_set_error("%s: input %s must be (batch, length, %" PRId64 ") or (length, %" PRId64 ")", name,
                     bk_shape_str(x, s, sizeof s), self->d, self->d);
        return -1;
    }
    int64_t T = x->shape[x->ndim - 2];
    if (T > self->max_len) {
        bk_set_error("%s: sequence length %" PRId64 " of input %s exceeds max_len=%" PRId64, name, T,
                     bk_shape_str(x, s, sizeof s), self->max_len);
        return -1;
    }
    return T;
}

/* A block of class cls over max_len positions of num_hiddens features, its table not made
 * yet; NULL with the error set for bad sizes. */
static positional *positional_new(const bk_module_class *cls, int64_t num_hiddens, int64_t max_len) {
    if (num_hiddens < 1 || max_len < 0) {
        bk_set_error("%s: num_hiddens=%" PRId64 " must be positive and max_len=%" PRId64 " non-negative",
                     cls->name, num_hiddens, max_len);
        return NULL;
    }
    positional *self = (positional *)bk_module_new(cls, sizeof(positional));
    if (!self) return NULL;
    self->max_len = max_len;
    self->d = num_hiddens;
    return self;
}

/* ---- sinusoidal ---------------------------------------------------------------------------- */

static bk_tensor *sinusoidal_forward(bk_module *m, bk_tensor *x) {
    positional *self = (positional *)m;
    int64_t T = seq_len(self, x);
    if (T < 0) return NULL;
    bk_tensor *P = bk__tensor_view(self->table, 2, (const int64_t[]){T, self->d}); // (T, d): P[0, :T]
    return bk_forward(self->dropout, bk_add(x, P));                                // like x
}

static const bk_module_class POSITIONAL_ENCODING = {"PositionalEncoding", sinusoidal_forward, NULL, NULL};

bk_module *bk_nn_positional_encoding(int64_t num_hiddens, float dropout, int64_t max_len) {
    positional *self = positional_new(&POSITIONAL_ENCODING, num_hiddens, max_len);
    if (!self) return NULL;
    self->dropout = bk_module_add(&self->base, "dropout", bk_nn_dropout(dropout));
    self->table = self->dropout ? bk_module_buffer(&self->base, "P", BK_SHAPE(1, max_len, num_hiddens), false)
                                : NULL;
    if (!self->table) {
        bk_module_free(&self->base);
        return NULL;
    }
    for (int64_t pos = 0; pos < max_len; pos++)
        for (int64_t j = 0; j < num_hiddens; j++) {
            double angle = (double)pos / pow(10000.0, (double)(j - j % 2) / (double)num_hiddens);
            self->table->data[pos * num_hiddens + j] = (float)(j % 2 ? cos(angle) : sin(angle));
        }
    return &self->base;
}

/* ---- learned ------------------------------------------------------------------------------- */

static bk_tensor *learned_forward(bk_module *m, bk_tensor *x) {
    positional *self = (positional *)m;
    int64_t T = seq_len(self, x);
    if (T < 0) return NULL;
    return bk_add(x, bk_slice(self->table, 0, 0, T)); // like x; weight rows T.. get no gradient
}

static void learned_repr(const bk_module *m, char *buf, size_t n) {
    const positional *self = (const positional *)m;
    snprintf(buf, n, "max_len=%" PRId64 ", num_hiddens=%" PRId64, self->max_len, self->d);
}

static const bk_module_class LEARNED_POSITIONAL = {"LearnedPositionalEmbedding", learned_forward,
                                                   learned_repr, NULL};

bk_module *bk_nn_learned_positional_embedding(int64_t max_len, int64_t num_hiddens) {
    positional *self = positional_new(&LEARNED_POSITIONAL, num_hiddens, max_len);
    if (!self) return NULL;
    self->table = bk_module_param(&self->base, "weight", BK_SHAPE(max_len, num_hiddens));
    if (!self->table) {
        bk_module_free(&self->base);
        return NULL;
    }
    bk_fill_normal(self->table, NULL, 0.0f, 1.0f);
    return &self->base;
}
