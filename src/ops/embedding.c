/* embedding.c - F.embedding: a row lookup, y[i, :] = weight[ids[i], :].
 *
 * ids (any shape) holds integer token ids stored as floats (exact up to 2^24) in
 * [0, num_embeddings); weight is (num_embeddings, dim); y is (*ids.shape, dim).
 * Backward: dweight[ids[i], :] += dy[i, :] for every i whose id is not padding_idx (that
 * row gets no gradient, as in torch). ids never get a gradient. With scale_grad_by_freq
 * each lookup's dy is divided by how often its id occurs in ids (torch's option: rare
 * tokens' rows get relatively larger updates).
 */
#include "internal.h"

#include <inttypes.h>
#include <math.h>

typedef struct emb_params {
    int64_t n, dim, padding_idx; /* n lookups; padding_idx -1: none */
    int64_t num;                 /* num_embeddings */
    bool scale_grad_by_freq;
} emb_params;

static void embedding_backward(bk_node *node) {
    const emb_params *p = bk_node_params(node);
    const float *ids = bk_node_input(node, 1)->data, *G = bk_node_grad_output(node)->data;
    bk_tensor *dw = bk_node_grad_input(node, 0);
    if (!dw) return;
    int64_t *count = NULL; /* occurrences of each id, with scale_grad_by_freq */
    if (p->scale_grad_by_freq) {
        count = bk__calloc(p->num ? (size_t)p->num : 1, sizeof *count);
        if (!count) {
            bk_set_error("embedding: out of memory for the counts of %" PRId64 " ids", p->num);
            bk__backward_fail();
            return;
        }
        for (int64_t i = 0; i < p->n; i++) count[(int64_t)ids[i]]++;
    }
    for (int64_t i = 0; i < p->n; i++) {
        int64_t id = (int64_t)ids[i];
        if (id == p->padding_idx) continue;
        float *dW = dw->data + id * p->dim; // dW[id, :] += dY[i, :] (/ count[id])
        const float *dY = G + i * p->dim;
        float scale = count ? 1.0f / (float)count[id] : 1.0f;
        for (int64_t j = 0; j < p->dim; j++) dW[j] += count ? dY[j] * scale : dY[j];
    }
    bk__free(count);
}

static const bk_op OP_EMBEDDING = {"embedding", embedding_backward};

bk_tensor *bk_embedding_ex(bk_tensor *ids, bk_tensor *weight, int64_t padding_idx, bool scale_grad_by_freq) {
    bk_tensor *args[2] = {ids, weight}; /* checked in argument order, for the message */
    if (!bk__inputs_ok("embedding", 2, args)) return NULL;
    bk_tensor *in[2] = {weight, ids}; /* recorded weight first (see embedding_backward) */
    char s1[128], s2[128];
    if (weight->ndim != 2) {
        bk_set_error("embedding: weight must be 2-d (num_embeddings, embedding_dim), got %s",
                     bk_shape_str(weight, s1, sizeof s1));
        return NULL;
    }
    int64_t num = weight->shape[0], dim = weight->shape[1];
    if (ids->ndim >= BK_MAX_DIMS) {
        bk_set_error("embedding: ids %s have too many dims (the output adds one; at most %d)",
                     bk_shape_str(ids, s1, sizeof s1), BK_MAX_DIMS);
        return NULL;
    }
    if (padding_idx < -1 || padding_idx >= num) {
        bk_set_error("embedding: padding_idx=%" PRId64 " is out of range for weight %s", padding_idx,
                     bk_shape_str(weight, s1, sizeof s1));
        return NULL;
    }
    for (int64_t i = 0; i < ids->numel; i++) {
        float v = ids->data[i];
        if (!(v >= 0.0f && v < (float)num) || v != floorf(v)) {
            bk_set_error("embedding: id %g (element %" PRId64
                         " of ids %s) is out of range: ids must be "
                         "integers in [0, %" PRId64 ") for weight %s",
                         (double)v, i, bk_shape_str(ids, s1, sizeof s1), num,
                         bk_shape_str(weight, s2, sizeof s2));
            return NULL;
        }
    }
    int64_t shape[BK_MAX_DIMS];
    for (int i = 0; i < ids->ndim; i++) shape[i] = ids->shape[i];
    shape[ids->ndim] = dim;
    bk_tensor *y = bk__tensor_arena(ids->ndim + 1, shape, false);
    if (!y) return NULL;
    for (int64_t i = 0; i < ids->numel; i++)
        memcpy(y->data + i * dim, weight->data + (int64_t)ids->data[i] * dim, sizeof(float) * (size_t)dim);
    emb_params p = {ids->numel, dim, padding_idx, num, scale_grad_by_freq};
    return bk_op_record(&OP_EMBEDDING, y, 2, in, &p, sizeof p);
}

bk_tensor *bk_embedding(bk_tensor *ids, bk_tensor *weight, int64_t padding_idx) {
    return bk_embedding_ex(ids, weight, padding_idx, false);
}
