/* dropout.c - nn.Dropout(p): in training mode zeroes each element with probability p and
 * scales the others by 1 / (1 - p); in eval mode (bk_module_train(m, false)) it is the
 * identity. The mask comes from the calling thread's default generator, so
 * bk_manual_seed makes it reproducible (the values differ from torch's generator).
 */
#include "internal.h"
#include "nn/pyrepr.h"

typedef struct dropout {
    bk_module base;
    float p;
} dropout;

static bk_tensor *dropout_forward(bk_module *m, bk_tensor *x) {
    return bk_dropout(x, ((dropout *)m)->p, m->training, NULL); // same shape as x
}

static void dropout_repr(const bk_module *m, char *buf, size_t n) {
    char p[32];
    py_float_repr(((const dropout *)m)->p, p, sizeof p);
    snprintf(buf, n, "p=%s, inplace=False", p);
}

static const bk_module_class DROPOUT = {"Dropout", dropout_forward, dropout_repr, NULL};

bk_module *bk_nn_dropout(float p) {
    if (!(p >= 0.0f && p <= 1.0f)) {
        bk_set_error("Dropout: dropout probability has to be between 0 and 1, but got %g", (double)p);
        return NULL;
    }
    dropout *self = (dropout *)bk_module_new(&DROPOUT, sizeof(dropout));
    if (!self) return NULL;
    self->p = p;
    return &self->base;
}
