/* 01_sequential_mlp.c - an MLP built from library blocks with nn.Sequential (D2L 5.1).
 *
 * The PyTorch code it mirrors:
 *
 *   import torch
 *   from torch import nn
 *
 *   net = nn.Sequential(nn.Linear(20, 256), nn.ReLU(), nn.Linear(256, 10))
 *   X = torch.rand(2, 20)
 *   Y = net(X)                  # (2, 10)
 *   Y.sum().backward()
 *   print(net)
 *   for name, p in net.named_parameters(): print(name, p.shape, p.grad is not None)
 *
 * Sequential registers its blocks under "0", "1", "2" and runs them in that order; the
 * parameters are then named 0.weight, 0.bias, 2.weight, 2.bias.
 */
#include "brick.h"

#include "common.h"

int main(void) {
    int status = 1;
    bk_manual_seed(0);

    bk_module *net = bk_nn_sequential(3, bk_nn_linear(20, 256), bk_nn_relu(), bk_nn_linear(256, 10));
    if (!net) goto done;

    bk_tensor *X = bk_rand(BK_SHAPE(2, 20)); // (2, 20)
    bk_tensor *Y = bk_forward(net, X);       // (2, 10)
    if (!Y || bk_backward(bk_sum(Y)) != 0) goto done;

    print_forward(net, X, Y, true);
    if (print_parameters(net) != 0) goto done;
    status = 0;

done:
    bk_module_free(net);
    return example_exit("01_sequential_mlp", status);
}
