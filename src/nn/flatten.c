/* flatten.c - nn.Flatten(start_dim, end_dim): a reshape view, (N, C, H, W) -> (N, C*H*W)
 * with the defaults start_dim = 1, end_dim = -1.
 */
#include "internal.h"

typedef struct flatten {
    bk_module base;
    int start_dim, end_dim;
} flatten;

static bk_tensor *flatten_forward(bk_module *m, bk_tensor *x) {
    flatten *self = (flatten *)m;
    return bk_flatten(x, self->start_dim, self->end_dim);
}

static void flatten_repr(const bk_module *m, char *buf, size_t n) {
    const flatten *self = (const flatten *)m;
    snprintf(buf, n, "start_dim=%d, end_dim=%d", self->start_dim, self->end_dim);
}

static const bk_module_class FLATTEN = {"Flatten", flatten_forward, flatten_repr, NULL};

bk_module *bk_nn_flatten(int start_dim, int end_dim) {
    flatten *self = (flatten *)bk_module_new(&FLATTEN, sizeof(flatten));
    if (!self) return NULL;
    self->start_dim = start_dim;
    self->end_dim = end_dim;
    return &self->base;
}
