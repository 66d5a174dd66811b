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
 * In C a block is a struct that embeds bk_module as its FIRST member (that is the
 * "subclass"), a bk_module_class that names it and points at its forward (the "class"),
 * and a constructor that registers the sub-blocks by name (the "__init__"). Registering
 * them with bk_module_add is what makes named_parameters, printing, zero_grad and
 * checkpoints see them, and what makes bk_module_free free them.
 */
#include "brick.h"

#include "common.h"

typedef struct {
    bk_module base;          // nn.Module
    bk_module *hidden, *out; // borrowed: registered in base, freed with it
} MLP;

static bk_tensor *mlp_forward(bk_module *self, bk_tensor *X) {
    MLP *m = (MLP *)self;
    return bk_forward(m->out, bk_relu(bk_forward(m->hidden, X))); // (N, 20) -> (N, 10)
}

static const bk_module_class MLP_CLASS = {"MLP", mlp_forward, NULL, NULL};

static bk_module *mlp_new(void) {
    MLP *self = (MLP *)bk_module_new(&MLP_CLASS, sizeof(MLP)); // super().__init__()
    if (!self) return NULL;
    self->hidden = bk_module_add(&self->base, "hidden", bk_nn_linear(20, 256)); // hidden layer
    self->out = bk_module_add(&self->base, "out", bk_nn_linear(256, 10));       // output layer
    if (!self->hidden || !self->out) {
        bk_module_free(&self->base);
        return NULL;
    }
    return &self->base;
}

int main(void) {
    int status = 1;
    bk_manual_seed(0);

    bk_module *net = mlp_new();
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
