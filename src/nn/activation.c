/* activation.c - the parameter-free activation blocks: nn.ReLU, nn.Sigmoid, nn.Tanh and
 * nn.Identity. Each is a class whose forward is the op of the same name.
 */
#include "internal.h"

static bk_tensor *relu_forward(bk_module *m, bk_tensor *x) { (void)m; return bk_relu(x); }
static bk_tensor *sigmoid_forward(bk_module *m, bk_tensor *x) { (void)m; return bk_sigmoid(x); }
static bk_tensor *tanh_forward(bk_module *m, bk_tensor *x) { (void)m; return bk_tanh(x); }
static bk_tensor *identity_forward(bk_module *m, bk_tensor *x) { (void)m; return x; }

static const bk_module_class RELU = {"ReLU", relu_forward, NULL, NULL};
static const bk_module_class SIGMOID = {"Sigmoid", sigmoid_forward, NULL, NULL};
static const bk_module_class TANH = {"Tanh", tanh_forward, NULL, NULL};
static const bk_module_class IDENTITY = {"Identity", identity_forward, NULL, NULL};

bk_module *bk_nn_relu(void) { return bk_module_new(&RELU, sizeof(bk_module)); }
bk_module *bk_nn_sigmoid(void) { return bk_module_new(&SIGMOID, sizeof(bk_module)); }
bk_module *bk_nn_tanh(void) { return bk_module_new(&TANH, sizeof(bk_module)); }
bk_module *bk_nn_identity(void) { return bk_module_new(&IDENTITY, sizeof(bk_module)); }
