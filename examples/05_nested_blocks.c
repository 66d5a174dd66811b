/* 05_nested_blocks.c - blocks inside blocks: D2L's NestMLP and "chimera" (D2L 5.1).
 *
 * The PyTorch code it mirrors (NestMLP and FixedHiddenMLP, the block of 04, are written
 * in C in blocks.h):
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

#include "blocks.h" // NestMLP, FixedHiddenMLP
#include "common.h"

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
