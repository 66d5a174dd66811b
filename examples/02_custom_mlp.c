/* 02_custom_mlp.c - a block of your own: the MLP as a subclass of nn.Module (D2L 5.1).
 *
 * The PyTorch code it mirrors:
 *
 *   import torch
 *   from torch import nn
 *   from torch.nn import functional as F
 *
 *   class MLP(nn.Module):
 *       # Declare the layers as attributes: two fully connected layers
 *       def __init__(self):
 *           super().__init__()
 *           self.hidden = nn.Linear(20, 256)  # hidden layer
 *           self.out = nn.Linear(256, 10)     # output layer
 *
 *       # The forward pass: how the output is computed from the input X
 *       def forward(self, X):
 *           # the functional form of ReLU, from nn.functional
 *           return self.out(F.relu(self.hidden(X)))
 *
 *   net = MLP()
 *   X = torch.rand(2, 20)
 *   Y = net(X)                  # (2, 10)
 *   Y.sum().backward()
 *
 * The block is in blocks.h (tests/test_module.c and tests/test_parity.c check that very
 * code): in C a block is a struct that embeds bk_module as its FIRST member (the
 * "subclass"), a bk_module_class that names it and points at its forward (the "class"),
 * and a constructor that registers the sub-blocks by name with bk_module_add (the
 * "__init__"), which is what makes named_parameters, printing, zero_grad and checkpoints
 * see them, and bk_module_free free them.
 */
#include "brick.h"

#include "blocks.h" // MLP
#include "common.h"

int main(void) {
    int status = 1;
    bk_manual_seed(0);

    bk_module *net = mlp_new(20, 256, 10); // MLP()
    if (!net) goto done;

    bk_tensor *X = bk_rand(BK_SHAPE(2, 20)); // (2, 20)
    bk_tensor *Y = bk_forward(net, X);       // (2, 10)
    if (!Y || bk_backward(bk_sum(Y)) != 0) goto done;

    print_forward(net, X, Y, true);
    if (print_parameters(net) != 0) goto done;
    status = 0;

done:
    bk_module_free(net);
    return example_exit("02_custom_mlp", status);
}
