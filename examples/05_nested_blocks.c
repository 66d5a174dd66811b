/* 05_nested_blocks.c - blocks inside blocks: D2L's NestMLP and "chimera" (D2L 5.1).
 *
 * The PyTorch code it mirrors (FixedHiddenMLP is the block of 04, in blocks.h):
 *
 *   import torch
 *   from torch import nn
 *
 *   class NestMLP(nn.Module):
 *       def __init__(self):
 *           super().__init__()
 *           self.net = nn.Sequential(nn.Linear(20, 64), nn.ReLU(),
 *                                    nn.Linear(64, 32), nn.ReLU())
 *           self.linear = nn.Linear(32, 16)
 *
 *       def forward(self, X):
 *           return self.linear(self.net(X))
 *
 *   chimera = nn.Sequential(NestMLP(), nn.Linear(16, 20), FixedHiddenMLP())
 *   X = torch.rand(2, 20)
 *   Y = chimera(X)              # a scalar
 *   Y.backward()
 *   print(chimera)
 *   print([name for name, _ in chimera.named_parameters()])
 *   print(list(chimera.state_dict().keys()))
 *
 * Names compose with dots along the path from the root: parameter "weight" of the block
 * registered as "0" inside the block registered as "net" inside chimera's block "0" is
 * "0.net.0.weight". bk_module_get(chimera, "0.net.0.weight") finds it again.
 */
#include "brick.h"

#include "blocks.h"
#include "common.h"

typedef struct {
    bk_module base;
    bk_module *net, *linear;
} NestMLP;

static bk_tensor *nest_mlp_forward(bk_module *self, bk_tensor *X) {
    NestMLP *m = (NestMLP *)self;
    return bk_forward(m->linear, bk_forward(m->net, X)); // (N, 20) -> (N, 32) -> (N, 16)
}

static const bk_module_class NEST_MLP = {"NestMLP", nest_mlp_forward, NULL, NULL};

static bk_module *nest_mlp_new(void) {
    NestMLP *self = (NestMLP *)bk_module_new(&NEST_MLP, sizeof(NestMLP)); // super().__init__()
    if (!self) return NULL;
    self->net = bk_module_add(&self->base, "net",
                              bk_nn_sequential(4, bk_nn_linear(20, 64), bk_nn_relu(), bk_nn_linear(64, 32),
                                               bk_nn_relu()));
    self->linear = bk_module_add(&self->base, "linear", bk_nn_linear(32, 16));
    if (!self->net || !self->linear) {
        bk_module_free(&self->base);
        return NULL;
    }
    return &self->base;
}

int main(void) {
    int status = 1;
    bk_manual_seed(0);
    bk_param_list *state = NULL;

    bk_module *chimera = bk_nn_sequential(3, nest_mlp_new(), bk_nn_linear(16, 20), fixed_hidden_mlp_new());
    if (!chimera) goto done;

    bk_tensor *X = bk_rand(BK_SHAPE(2, 20)); // (2, 20)
    bk_tensor *Y = bk_forward(chimera, X);   // scalar
    if (!Y || bk_backward(Y) != 0) goto done;

    print_forward(chimera, X, Y, true);
    printf("FixedHiddenMLP's while loop halved X %d times\n",
           ((FixedHiddenMLP *)bk_nn_sequential_get(chimera, -1))->iterations);
    if (print_parameters(chimera) != 0) goto done;

    state = bk_module_named(chimera, BK_STATE);
    if (!state) goto done;
    printf("state dict (BK_STATE): parameters and persistent buffers\n");
    print_tensor_list(state);

    // A dotted name leads back to the tensor: chimera[0].net[2].weight
    bk_tensor *w = bk_module_get(chimera, "0.net.2.weight");
    NestMLP *nest = (NestMLP *)bk_nn_sequential_get(chimera, 0);
    if (!w) goto done;
    if (w != bk_module_get(bk_nn_sequential_get(nest->net, 2), "weight")) {
        bk_set_error("\"0.net.2.weight\" is not chimera[0].net[2].weight");
        goto done;
    }
    print_shape("chimera[0].net[2].weight (\"0.net.2.weight\") shape", w);
    status = 0;

done:
    bk_param_list_free(state);
    bk_module_free(chimera);
    return example_exit("05_nested_blocks", status);
}
