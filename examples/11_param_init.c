/* 11_param_init.c - parameter initialisation with torch.nn.init and apply (D2L 5.2), and
 * deferred initialisation with lazy layers (D2L 5.3).
 *
 * The PyTorch code it mirrors:
 *
 *   import torch
 *   from torch import nn
 *
 *   net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
 *   X = torch.rand(size=(2, 4))
 *
 *   def init_normal(module):                 # built-in init, over the whole tree
 *       if type(module) == nn.Linear:
 *           nn.init.normal_(module.weight, mean=0, std=0.01)
 *           nn.init.zeros_(module.bias)
 *   net.apply(init_normal)
 *
 *   def init_constant(module):
 *       if type(module) == nn.Linear:
 *           nn.init.constant_(module.weight, 1)
 *           nn.init.zeros_(module.bias)
 *   net.apply(init_constant)
 *
 *   def init_xavier(module):                 # different inits for different blocks
 *       if type(module) == nn.Linear:
 *           nn.init.xavier_uniform_(module.weight)
 *   def init_42(module):
 *       if type(module) == nn.Linear:
 *           nn.init.constant_(module.weight, 42)
 *   net[0].apply(init_xavier)
 *   net[2].apply(init_42)
 *
 *   def my_init(module):                     # a custom init: U(-10, 10), kept where |w| >= 5
 *       if type(module) == nn.Linear:
 *           print("Init", *[(name, param.shape) for name, param in module.named_parameters()][0])
 *           nn.init.uniform_(module.weight, -10, 10)
 *           module.weight.data *= module.weight.data.abs() >= 5
 *   net.apply(my_init)
 *   net[0].weight.data[:] += 1               # and by hand
 *   net[0].weight.data[0, 0] = 42
 *
 *   lazy = nn.Sequential(nn.LazyLinear(256), nn.ReLU(), nn.LazyLinear(10))   # D2L 5.3
 *   print(lazy[0].weight)                    # <UninitializedParameter>
 *   lazy(torch.rand(2, 20))                  # the first forward makes the parameters
 *   print([(name, param.shape) for name, param in lazy.named_parameters()])
 *
 * In C, apply's callback is bk_module_apply's function, which receives every block of the
 * tree (children first) and a pointer of the caller's (here the constant); it recognises a
 * Linear by its class name. The init functions fill any tensor in place, parameters
 * included, without recording anything for autograd (torch's no_grad). Before a lazy
 * network's first forward brick has no parameters to show: listing them is an error that
 * names the lazy block (torch shows UninitializedParameter).
 */
#include "brick.h"

#include "common.h"

#include <math.h>

static bool is_linear(const bk_module *m) { return strcmp(bk_module_name(m), "Linear") == 0; }

static void init_normal(bk_module *m, void *ud) {
    (void)ud;
    if (!is_linear(m)) return;
    bk_init_normal(bk_module_get(m, "weight"), NULL, 0, 0.01);
    bk_init_zeros(bk_module_get(m, "bias"));
}

static void init_constant(bk_module *m, void *ud) {
    if (!is_linear(m)) return;
    bk_init_constant(bk_module_get(m, "weight"), *(const double *)ud);
    bk_init_zeros(bk_module_get(m, "bias"));
}

static void init_xavier(bk_module *m, void *ud) {
    (void)ud;
    if (is_linear(m)) bk_init_xavier_uniform(bk_module_get(m, "weight"), NULL, 1.0);
}

static void init_42(bk_module *m, void *ud) {
    (void)ud;
    if (is_linear(m)) bk_init_constant(bk_module_get(m, "weight"), 42);
}

static void my_init(bk_module *m, void *ud) {
    (void)ud;
    if (!is_linear(m)) return;
    bk_tensor *W = bk_module_get(m, "weight");
    print_shape("Init weight", W);
    bk_init_uniform(W, NULL, -10, 10);
    for (int64_t i = 0; i < W->numel; i++)
        if (fabsf(W->data[i]) < 5) W->data[i] = 0;
}

/* Prints net[index].weight's first row and net[index].bias[0] (or the first rows). */
static void print_first(const char *when, bk_module *net, int index, int rows) {
    bk_module *lin = bk_nn_sequential_get(net, index);
    const bk_tensor *W = bk_module_get(lin, "weight"), *b = bk_module_get(lin, "bias");
    printf("%s: net[%d].weight[:%d] =", when, index, rows);
    for (int64_t i = 0; i < rows * W->shape[1]; i++)
        printf("%s%.4f", i % W->shape[1] ? " " : (i ? " | " : " "), W->data[i]);
    printf(";  net[%d].bias[0] = %.4f\n", index, b->data[0]);
}

/* D2L 5.3: the input width is known only when data arrives. */
static int deferred_init(void) {
    bk_module *lazy = bk_nn_sequential(3, bk_nn_lazy_linear(256, true), bk_nn_relu(),
                                       bk_nn_lazy_linear(10, true));
    if (!lazy) return -1;
    bk_module_print(lazy, stdout);
    if (bk_module_num_params(lazy, false) < 0) printf("before the first forward: %s\n", bk_last_error());
    bk_clear_error();
    bk_tensor *Y = bk_forward(lazy, bk_rand(BK_SHAPE(2, 20))); // (2, 20) -> (2, 10)
    int rc = Y ? 0 : -1;
    bk_param_list *l = Y ? bk_module_named(lazy, BK_PARAMS) : NULL;
    for (int i = 0; l && i < l->n; i++) print_shape(l->names[i], l->tensors[i]);
    if (Y) bk_module_print(lazy, stdout);
    bk_param_list_free(l);
    bk_module_free(lazy);
    return rc;
}

int main(void) {
    int status = 1;
    bk_manual_seed(0);

    bk_module *net = bk_nn_sequential(3, bk_nn_linear(4, 8), bk_nn_relu(), bk_nn_linear(8, 1));
    if (!net) goto done;
    bk_tensor *X = bk_rand(BK_SHAPE(2, 4)); // (2, 4)

    bk_module_apply(net, init_normal, NULL);
    print_first("init_normal", net, 0, 1);
    double one = 1;
    bk_module_apply(net, init_constant, &one);
    print_first("init_constant", net, 0, 1);

    bk_module_apply(bk_nn_sequential_get(net, 0), init_xavier, NULL);
    bk_module_apply(bk_nn_sequential_get(net, 2), init_42, NULL);
    print_first("init_xavier on net[0]", net, 0, 1);
    print_first("constant 42 on net[2]", net, 2, 1);

    bk_module_apply(net, my_init, NULL);
    print_first("my_init", net, 0, 2);
    bk_tensor *W0 = bk_module_get(net, "0.weight");
    for (int64_t i = 0; i < W0->numel; i++) W0->data[i] += 1;
    W0->data[0] = 42;
    print_first("+= 1, [0, 0] = 42", net, 0, 1);

    bk_tensor *Y = bk_forward(net, X); // (2, 1)
    if (!Y || bk_backward(bk_sum(Y)) != 0) goto done;
    print_forward(net, X, Y, true);
    if (bk_last_error()[0]) goto done; /* an init that failed */
    if (deferred_init() != 0) goto done;
    status = 0;

done:
    bk_module_free(net);
    return example_exit("11_param_init", status);
}
