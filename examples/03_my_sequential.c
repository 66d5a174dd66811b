/* 03_my_sequential.c - writing Sequential yourself (D2L 5.1, "the sequential block").
 *
 * The PyTorch code it mirrors (MySequential is written in C in blocks.h, which
 * tests/test_module.c and tests/test_parity.c check):
 *
 *   import torch
 *   import torch.nn as nn
 *
 *   class MySequential(nn.Module):
 *       def __init__(self, *args):
 *           super().__init__()
 *           for idx, module in enumerate(args):
 *               self._modules[str(idx)] = module
 *
 *       def forward(self, X):
 *           for block in self._modules.values():
 *               X = block(X)
 *           return X
 *
 *   model = MySequential(nn.Linear(4, 8),   # input dim 4, output dim 8
 *                        nn.ReLU(),
 *                        nn.Linear(8, 10),  # input dim 8, output dim 10
 *                        nn.Sigmoid())
 *   X = torch.randn(2, 4)                    # batch 2, 4 features
 *   print("input X shape:", X.shape)
 *   output = model(X)
 *   print("output shape:", output.shape)
 *   output.sum().backward()
 *
 * self._modules[str(idx)] = module is bk_module_add(self, "0", module): the blocks are
 * kept in registration order in self->children, which forward walks, as
 * self._modules.values() does. (brick's own bk_nn_sequential is exactly this.)
 */
#include "brick.h"

#include "blocks.h" // MySequential
#include "common.h"

int main(void) {
    int status = 1;
    bk_manual_seed(0);

    bk_module *model = my_sequential_new(4, bk_nn_linear(4, 8),             // input dim 4, output dim 8
                                         bk_nn_relu(), bk_nn_linear(8, 10), // input dim 8, output dim 10
                                         bk_nn_sigmoid());
    if (!model) goto done;

    bk_tensor *X = bk_randn(BK_SHAPE(2, 4)); // batch 2, 4 features
    print_shape("input X shape", X);
    bk_tensor *output = bk_forward(model, X);
    if (!output || bk_backward(bk_sum(output)) != 0) goto done;
    print_shape("output shape", output);

    bk_module_print(model, stdout);
    printf("output = ");
    bk_print(output, stdout);
    if (print_parameters(model) != 0) goto done;
    status = 0;

done:
    bk_module_free(model);
    return example_exit("03_my_sequential", status);
}
