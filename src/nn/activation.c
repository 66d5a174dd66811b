/* activation.c - the parameter-free activation blocks: nn.ReLU, nn.Sigmoid, nn.Tanh,
 * nn.Identity, nn.GELU (exact, erf form) and nn.Softmax / nn.LogSoftmax(dim). Each is a
 * class whose forward is the op of the same name.
 */
#include "internal.h"

static bk_tensor *relu_forward(bk_module *m, bk_tensor *x) {
    (void)m;
    return bk_relu(x);
}
static bk_tensor *sigmoid_forward(bk_module *m, bk_tensor *x) {
    (void)m;
    return bk_sigmoid(x);
}
static bk_tensor *tanh_forward(bk_module *m, bk_tensor *x) {
    (void)m;
    return bk_tanh(x);
}
static bk_tensor *identity_forward(bk_module *m, bk_tensor *x) {
    (void)m;
    return x;
}

static const bk_module_class RELU = {"ReLU", relu_forward, NULL, NULL};
static const bk_module_class SIGMOID = {"Sigmoid", sigmoid_forward, NULL, NULL};
static const bk_module_class TANH = {"Tanh", tanh_forward, NULL, NULL};
static const bk_module_class IDENTITY = {"Identity", identity_forward, NULL, NULL};

bk_module *bk_nn_relu(void) { return bk_module_new(&RELU, sizeof(bk_module)); }
bk_module *bk_nn_sigmoid(void) { return bk_module_new(&SIGMOID, sizeof(bk_module)); }
bk_module *bk_nn_tanh(void) { return bk_module_new(&TANH, sizeof(bk_module)); }
bk_module *bk_nn_identity(void) { return bk_module_new(&IDENTITY, sizeof(bk_module)); }

static bk_tensor *gelu_forward(bk_module *m, bk_tensor *x) {
    (void)m;
    return bk_gelu(x);
}
static void gelu_repr(const bk_module *m, char *buf, size_t n) {
    (void)m;
    snprintf(buf, n, "approximate='none'");
}
static const bk_module_class GELU = {"GELU", gelu_forward, gelu_repr, NULL};
bk_module *bk_nn_gelu(void) { return bk_module_new(&GELU, sizeof(bk_module)); }

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
