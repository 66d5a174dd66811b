/* embedding.c - nn.Embedding(num_embeddings, embedding_dim, padding_idx=None): a table
 * "weight" (num_embeddings, embedding_dim), N(0, 1) as torch initialises it, looked up
 * by integer ids (stored as floats): (*ids.shape) -> (*ids.shape, embedding_dim).
 * With padding_idx that row starts at zero and never gets a gradient (it is the "no
 * token" vector); torch also accepts a negative padding_idx, counting from the end.
 * scale_grad_by_freq divides each lookup's gradient by its id's count in the batch.
 */
#include "internal.h"

#include <inttypes.h>

typedef struct embedding {
    bk_module base;
    int64_t num_embeddings, embedding_dim, padding_idx; /* padding_idx -1: none */
    bool scale_grad_by_freq;
    bk_tensor *weight; /* borrowed */
} embedding;

static bk_tensor *embedding_forward(bk_module *m, bk_tensor *ids) {
    embedding *self = (embedding *)m;
    return bk_embedding_ex(ids, self->weight, self->padding_idx,
                           self->scale_grad_by_freq); // (*ids.shape, embedding_dim)
}

static void embedding_repr(const bk_module *m, char *buf, size_t n) {
    const embedding *self = (const embedding *)m;
    int k = snprintf(buf, n, "%" PRId64 ", %" PRId64, self->num_embeddings, self->embedding_dim);
    if (self->padding_idx >= 0 && k >= 0 && (size_t)k < n)
        k += snprintf(buf + k, n - (size_t)k, ", padding_idx=%" PRId64, self->padding_idx);
    if (self->scale_grad_by_freq && k >= 0 && (size_t)k < n)
        snprintf(buf + k, n - (size_t)k, ", scale_grad_by_freq=True");
}

static const bk_module_class EMBEDDING = {"Embedding", embedding_forward, embedding_repr, NULL};

bk_module *bk_nn_embedding_ex(int64_t num, int64_t dim, bool padded, int64_t padding_idx,
                              bool scale_grad_by_freq) {
    if (num < 0 || dim < 0) {
        bk_set_error("Embedding: num_embeddings=%" PRId64 " and embedding_dim=%" PRId64
                     " must be non-negative",
                     num, dim);
        return NULL;
    }
    if (padded) {
        if (padding_idx >= num || padding_idx < -num) {
            bk_set_error("Embedding(%" PRId64 ", %" PRId64 "): padding_idx=%" PRId64
                         " must be within num_embeddings (in [-%" PRId64 ", %" PRId64 "))",
                         num, dim, padding_idx, num, num);
            return NULL;
        }
        if (padding_idx < 0) padding_idx += num;
    }
    embedding *self = (embedding *)bk_module_new(&EMBEDDING, sizeof(embedding));
    if (!self) return NULL;
    self->num_embeddings = num;
    self->embedding_dim = dim;
    self->padding_idx = padded ? padding_idx : -1;
    self->scale_grad_by_freq = scale_grad_by_freq;
    self->weight = bk_module_param(&self->base, "weight", BK_SHAPE(num, dim));
    if (!self->weight) {
        bk_module_free(&self->base);
        return NULL;
    }
    bk_fill_normal(self->weight, NULL, 0.0f, 1.0f);
    if (padded) memset(self->weight->data + padding_idx * dim, 0, sizeof(float) * (size_t)dim);
    return &self->base;
}

bk_module *bk_nn_embedding(int64_t num_embeddings, int64_t embedding_dim) {
    return bk_nn_embedding_ex(num_embeddings, embedding_dim, false, 0, false);
}

bk_module *bk_nn_embedding_padded(int64_t num_embeddings, int64_t embedding_dim, int64_t padding_idx) {
    return bk_nn_embedding_ex(num_embeddings, embedding_dim, true, padding_idx, false);
}
