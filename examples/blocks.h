/* blocks.h - the blocks of D2L 5.1 that the examples build, written once: MLP (02), MySequential
 * (03), FixedHiddenMLP (04, 05) and NestMLP (05). tests/test_module.c and tests/test_parity.c
 * include it too, so the examples' own blocks are what gets gradient-checked and compared
 * with PyTorch. Header-only (the Makefile builds only the .c files in examples/ as
 * programs); its functions are static inline, so a program that uses some of them does not
 * warn about the others.
 *
 * In C a block is a struct that embeds bk_module as its FIRST member (that is the
 * "subclass"), a bk_module_class that names it and points at its forward (the "class"),
 * and a constructor that registers the sub-blocks by name (the "__init__"). Registering
 * them with bk_module_add is what makes named_parameters, printing, zero_grad and
 * checkpoints see them, and what makes bk_module_free free them.
 */
#ifndef BRICK_EXAMPLES_BLOCKS_H
#define BRICK_EXAMPLES_BLOCKS_H

#include "brick.h"

#include <stdarg.h>
#include <stdio.h>

/* ---- MLP (02_custom_mlp.c) ----------------------------------------------------------------
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
 * Here the sizes are arguments: mlp_new(20, 256, 10) is the block above.
 */
typedef struct {
    bk_module base;          // nn.Module
    bk_module *hidden, *out; // borrowed: registered in base, freed with it
} MLP;

static inline bk_tensor *mlp_forward(bk_module *self, bk_tensor *X) {
    MLP *m = (MLP *)self;
    return bk_forward(m->out, bk_relu(bk_forward(m->hidden, X))); // (N, in) -> (N, out)
}

static const bk_module_class MLP_CLASS = {"MLP", mlp_forward, NULL, NULL};

static inline bk_module *mlp_new(int64_t in, int64_t hidden, int64_t out) {
    MLP *self = (MLP *)bk_module_new(&MLP_CLASS, sizeof(MLP)); // super().__init__()
    if (!self) return NULL;
    self->hidden = bk_module_add(&self->base, "hidden", bk_nn_linear(in, hidden)); // hidden layer
    self->out = bk_module_add(&self->base, "out", bk_nn_linear(hidden, out));      // output layer
    if (!self->hidden || !self->out) {
        bk_module_free(&self->base);
        return NULL;
    }
    return &self->base;
}

/* ---- MySequential (03_my_sequential.c) ------------------------------------------------------
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
 * The children are kept in registration order in self->children, which forward walks, as
 * self._modules.values() does. (brick's own bk_nn_sequential is exactly this.)
 */
static inline bk_tensor *my_sequential_forward(bk_module *self, bk_tensor *X) {
    for (int i = 0; i < self->n_children; i++)       // for block in self._modules.values():
        X = bk_forward(self->children[i].module, X); //     X = block(X)
    return X;
}

static const bk_module_class MY_SEQUENTIAL = {"MySequential", my_sequential_forward, NULL, NULL};

/* MySequential(*args): takes ownership of the n blocks, also when it fails. */
static inline bk_module *my_sequential_new(int n, ...) {
    bk_module *self = bk_module_new(&MY_SEQUENTIAL, sizeof(bk_module)); // super().__init__()
    bool ok = self != NULL;
    va_list args;
    va_start(args, n);
    for (int idx = 0; idx < n; idx++) { // for idx, module in enumerate(args):
        bk_module *module = va_arg(args, bk_module *);
        char name[16];
        snprintf(name, sizeof name, "%d", idx);
        if (ok) ok = bk_module_add(self, name, module) != NULL; // self._modules[str(idx)] = module
        else bk_module_free(module);
    }
    va_end(args);
    if (!ok) {
        bk_module_free(self);
        return NULL;
    }
    return self;
}

/* ---- FixedHiddenMLP (04_fixed_hidden_mlp.c, 05_nested_blocks.c) -----------------------------
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
typedef struct {
    bk_module base;         // nn.Module
    bk_tensor *rand_weight; // (20, 20) constant, borrowed from base's buffers
    bk_module *linear;      // Linear(20, 20), borrowed from base's children
    int iterations;         // how many times the last forward halved X
} FixedHiddenMLP;

// N = batch
static inline bk_tensor *fixed_hidden_mlp_forward(bk_module *m, bk_tensor *X) {
    FixedHiddenMLP *self = (FixedHiddenMLP *)m;
    X = bk_forward(self->linear, X);                                // (N, 20)
    X = bk_relu(bk_add_scalar(bk_matmul(X, self->rand_weight), 1)); // (N, 20)
    X = bk_forward(self->linear, X);                                // the same layer again: shared parameters
    self->iterations = 0;
    while (bk_item(bk_sum(bk_abs(X))) > 1) { // NaN (X NULL after an error) ends the loop
        if (self->iterations == 1000) {      // inf never gets small: stop instead of spinning
            bk_set_error("FixedHiddenMLP: |X|.sum() still > 1 after 1000 halvings");
            return NULL;
        }
        X = bk_div_scalar(X, 2);
        self->iterations++;
    }
    return bk_sum(X); // scalar
}

static const bk_module_class FIXED_HIDDEN_MLP = {"FixedHiddenMLP", fixed_hidden_mlp_forward, NULL, NULL};

static inline bk_module *fixed_hidden_mlp_new(void) {
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


/* ---- NestMLP (05_nested_blocks.c) -----------------------------------------------------------
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
 */
typedef struct {
    bk_module base;
    bk_module *net, *linear;
} NestMLP;

static inline bk_tensor *nest_mlp_forward(bk_module *self, bk_tensor *X) {
    NestMLP *m = (NestMLP *)self;
    return bk_forward(m->linear, bk_forward(m->net, X)); // (N, 20) -> (N, 32) -> (N, 16)
}

static const bk_module_class NEST_MLP = {"NestMLP", nest_mlp_forward, NULL, NULL};

static inline bk_module *nest_mlp_new(void) {
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

#endif /* BRICK_EXAMPLES_BLOCKS_H */
