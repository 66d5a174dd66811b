/* activation.c - the parameter-free activation blocks: nn.ReLU, nn.Sigmoid, nn.Tanh,
 * nn.Identity, nn.GELU (exact, erf form) and nn.Softmax / nn.LogSoftmax(dim). Each is a
 * class whose forward is the op of the same name.
 */
#include "internal.h"

static bk_tensor *identity(bk_tensor *x) { return x; }

static void gelu_repr(const bk_module *m, char *buf, size_t n) {
    (void)m;
    snprintf(buf, n, "approximate='none'");
}

/* One activation block: its class (torch's name, a forward that applies op, repr) and its
 * constructor bk_nn_<name>. */
#define ACTIVATION(name, cls_name, op, repr)                                            \
    static bk_tensor *name##_forward(bk_module *m, bk_tensor *x) {                      \
        (void)m;                                                                        \
        return op(x);                                                                   \
    }                                                                                   \
    static const bk_module_class name##_class = {cls_name, name##_forward, repr, NULL}; \
    bk_module *bk_nn_##name(void) { return bk_module_new(&name##_class, sizeof(bk_module)); }

ACTIVATION(relu, "ReLU", bk_relu, NULL)
ACTIVATION(sigmoid, "Sigmoid", bk_sigmoid, NULL)
ACTIVATION(tanh, "Tanh", bk_tanh, NULL)
ACTIVATION(identity, "Identity", identity, NULL)
ACTIVATION(gelu, "GELU", bk_gelu, gelu_repr)

/* Softmax and LogSoftmax keep their dim (negative counts from the end, checked per input). */
typedef struct softmax {
    bk_module base;
    int dim;
} softmax;

static bk_tensor *softmax_forward(bk_module *m, bk_tensor *x) { return bk_softmax(x, ((softmax *)m)->dim); }
static bk_tensor *log_softmax_forward(bk_module *m, bk_tensor *x) {
    return bk_log_softmax(x, ((softmax *)m)->dim);
}
static void softmax_repr(const bk_module *m, char *buf, size_t n) {
    snprintf(buf, n, "dim=%d", ((const softmax *)m)->dim);
}

static const bk_module_class SOFTMAX = {"Softmax", softmax_forward, softmax_repr, NULL};
static const bk_module_class LOG_SOFTMAX = {"LogSoftmax", log_softmax_forward, softmax_repr, NULL};

static bk_module *softmax_new(const bk_module_class *cls, int dim) {
    softmax *self = (softmax *)bk_module_new(cls, sizeof(softmax));
    if (self) self->dim = dim;
    return self ? &self->base : NULL;
}

bk_module *bk_nn_softmax(int dim) { return softmax_new(&SOFTMAX, dim); }
bk_module *bk_nn_log_softmax(int dim) { return softmax_new(&LOG_SOFTMAX, dim); }
