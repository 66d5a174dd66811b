/* blocks.h - FixedHiddenMLP, the D2L 5.1 block with a constant weight, a reused layer and
 * Python control flow in its forward. Shared by 04_fixed_hidden_mlp.c, 05_nested_blocks.c
 * and tests/test_module.c, so it is header-only (static functions; the Makefile builds
 * only the .c files in examples/ as programs).
 *
 * The PyTorch code it mirrors:
 *
 *   class FixedHiddenMLP(nn.Module):
 *       def __init__(self):
 *           super().__init__()
 *           # A random weight that gets no gradient, so it stays constant in training
 *           self.rand_weight = torch.rand((20, 20), requires_grad=False)
 *           self.linear = nn.Linear(20, 20)
 *
 *       def forward(self, X):
 *           X = self.linear(X)
 *           # Use the constant weight, relu and mm
 *           X = F.relu(torch.mm(X, self.rand_weight) + 1)
 *           # Reuse the fully connected layer: the two uses share parameters
 *           X = self.linear(X)
 *           # Control flow
 *           while X.abs().sum() > 1:
 *               X /= 2
 *           return X.sum()
 *
 * The constant is a buffer (bk_module_buffer): the block owns it, it never gets a
 * gradient and is not among the trainable parameters. Being persistent, it is saved in
 * the state dict, as with self.register_buffer("rand_weight", torch.rand(20, 20)); the
 * plain tensor attribute of the PyTorch code would not be saved at all (nor moved by
 * .to()), so a reloaded model would get a different constant.
 */
#ifndef BRICK_EXAMPLES_BLOCKS_H
#define BRICK_EXAMPLES_BLOCKS_H

#include "brick.h"

typedef struct {
    bk_module base;         // nn.Module
    bk_tensor *rand_weight; // (20, 20) constant, borrowed from base's buffers
    bk_module *linear;      // Linear(20, 20), borrowed from base's children
    int iterations;         // how many times the last forward halved X
} FixedHiddenMLP;

// N = batch
static bk_tensor *fixed_hidden_mlp_forward(bk_module *m, bk_tensor *X) {
    FixedHiddenMLP *self = (FixedHiddenMLP *)m;
    X = bk_forward(self->linear, X);                                // (N, 20)
    X = bk_relu(bk_add_scalar(bk_matmul(X, self->rand_weight), 1)); // (N, 20)
    X = bk_forward(self->linear, X);                                // the same layer again: shared parameters
    self->iterations = 0;
    while (bk_item(bk_sum(bk_abs(X))) > 1) { // NaN (X NULL after an error) ends the loop
        X = bk_div_scalar(X, 2);
        self->iterations++;
    }
    return bk_sum(X); // scalar
}

static const bk_module_class FIXED_HIDDEN_MLP = {"FixedHiddenMLP", fixed_hidden_mlp_forward, NULL, NULL};

static bk_module *fixed_hidden_mlp_new(void) {
    FixedHiddenMLP *self = (FixedHiddenMLP *)bk_module_new(&FIXED_HIDDEN_MLP, sizeof(FixedHiddenMLP));
    if (!self) return NULL;
    self->rand_weight = bk_module_buffer(&self->base, "rand_weight", BK_SHAPE(20, 20), true);
    if (!self->rand_weight || bk_fill_uniform(self->rand_weight, NULL, 0.0f, 1.0f) != 0) goto fail;
    self->linear = bk_module_add(&self->base, "linear", bk_nn_linear(20, 20));
    if (!self->linear) goto fail;
    return &self->base;
fail:
    bk_module_free(&self->base);
    return NULL;
}

#endif /* BRICK_EXAMPLES_BLOCKS_H */
