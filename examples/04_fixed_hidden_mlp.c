/* 04_fixed_hidden_mlp.c - arbitrary code in a forward: a constant weight, a layer used
 * twice (shared parameters) and a while loop (D2L 5.1, FixedHiddenMLP).
 *
 * The PyTorch code it mirrors (the block itself is in blocks.h, which 05 reuses):
 *
 *   import torch
 *   from torch import nn
 *   from torch.nn import functional as F
 *
 *   class FixedHiddenMLP(nn.Module):
 *       def __init__(self):
 *           super().__init__()
 *           self.rand_weight = torch.rand((20, 20), requires_grad=False)
 *           self.linear = nn.Linear(20, 20)
 *
 *       def forward(self, X):
 *           X = self.linear(X)
 *           X = F.relu(torch.mm(X, self.rand_weight) + 1)
 *           X = self.linear(X)
 *           while X.abs().sum() > 1:
 *               X /= 2
 *           return X.sum()
 *
 *   net = FixedHiddenMLP()
 *   X = torch.rand(2, 20)
 *   Y = net(X)                  # a scalar
 *   Y.backward()
 *   print([name for name, _ in net.named_parameters()])  # no rand_weight
 *   print(net.rand_weight.grad)                           # None
 *
 * What it shows:
 *   - the loop runs a data-dependent number of times (printed);
 *   - rand_weight gets no gradient and is not a trainable parameter, but it is in the
 *     state dict (a persistent buffer);
 *   - linear.weight's gradient is the sum of the gradients of its two uses: the same
 *     computation with the two uses untied into two copies of the layer gives two
 *     gradients that add up to it.
 */
#include "brick.h"

#include "blocks.h"
#include "common.h"

#include <math.h>

/* The forward of FixedHiddenMLP with its two uses of `linear` untied: first, second. */
static bk_tensor *untied_forward(bk_module *first, bk_module *second, bk_tensor *rand_weight, bk_tensor *X) {
    X = bk_forward(first, X);
    X = bk_relu(bk_add_scalar(bk_matmul(X, rand_weight), 1));
    X = bk_forward(second, X);
    while (bk_item(bk_sum(bk_abs(X))) > 1) X = bk_div_scalar(X, 2);
    return bk_sum(X);
}

/* A copy of a Linear(20, 20)'s weight and bias in a fresh Linear(20, 20). */
static bk_module *linear_copy(const bk_module *lin) {
    bk_module *c = bk_nn_linear(20, 20);
    if (!c || bk_copy(bk_module_get(c, "weight"), bk_module_get(lin, "weight")) != 0 ||
        bk_copy(bk_module_get(c, "bias"), bk_module_get(lin, "bias")) != 0) {
        bk_module_free(c);
        return NULL;
    }
    return c;
}

int main(void) {
    int status = 1;
    bk_manual_seed(0);
    bk_module *first = NULL, *second = NULL;
    bk_param_list *params = NULL, *state = NULL;

    bk_module *net = fixed_hidden_mlp_new();
    if (!net) goto done;

    bk_tensor *X = bk_rand(BK_SHAPE(2, 20)); // (2, 20)
    bk_tensor *Y = bk_forward(net, X);       // scalar
    if (!Y || bk_backward(Y) != 0) goto done;

    print_forward(net, X, Y, true);
    printf("the while loop halved X %d times\n", ((FixedHiddenMLP *)net)->iterations);
    if (print_parameters(net) != 0) goto done;

    // rand_weight: a constant. No gradient, not trained, but saved.
    bk_tensor *rand_weight = bk_module_get(net, "rand_weight");
    params = bk_module_named(net, BK_PARAMS);
    state = bk_module_named(net, BK_STATE);
    if (!rand_weight || !params || !state) goto done;
    printf("rand_weight: requires_grad=%s, grad=%s\n", rand_weight->requires_grad ? "True" : "False",
           rand_weight->grad ? "set" : "None");
    printf("state dict (BK_STATE):\n");
    print_tensor_list(state);
    for (int i = 0; i < params->n; i++)
        if (params->tensors[i] == rand_weight) {
            bk_set_error("rand_weight is listed among the parameters");
            goto done;
        }
    if (rand_weight->grad || rand_weight->requires_grad || state->n != 3 ||
        state->tensors[0] != rand_weight) {
        bk_set_error("rand_weight should be a constant in the state dict");
        goto done;
    }

    // The shared layer: its gradient adds up the contributions of both uses.
    bk_module *linear = ((FixedHiddenMLP *)net)->linear;
    first = linear_copy(linear);
    second = linear_copy(linear);
    if (!first || !second) goto done;
    bk_tensor *Y2 = untied_forward(first, second, rand_weight, X);
    if (!Y2 || bk_backward(Y2) != 0) goto done;
    if (fabsf(bk_item(Y2) - bk_item(Y)) > 1e-6f) {
        bk_set_error("untied copies computed %g instead of %g", (double)bk_item(Y2), (double)bk_item(Y));
        goto done;
    }
    const bk_tensor *dW = bk_module_get(linear, "weight")->grad;
    const bk_tensor *dW1 = bk_module_get(first, "weight")->grad;
    const bk_tensor *dW2 = bk_module_get(second, "weight")->grad;
    double diff = 0, n = 0, n1 = 0, n2 = 0;
    for (int64_t i = 0; i < dW->numel; i++) {
        diff = fmax(diff, fabs((double)dW->data[i] - ((double)dW1->data[i] + dW2->data[i])));
        n += (double)dW->data[i] * dW->data[i];
        n1 += (double)dW1->data[i] * dW1->data[i];
        n2 += (double)dW2->data[i] * dW2->data[i];
    }
    printf("untied copies give the same Y = %.4f\n", (double)bk_item(Y2));
    printf("|linear.weight.grad| = %.4f; untied: |first.weight.grad| = %.4f, |second.weight.grad| = %.4f\n",
           sqrt(n), sqrt(n1), sqrt(n2));
    if (!(diff <= 1e-6)) {
        bk_set_error("the shared layer's gradient is not the sum of its two uses (max difference %g)", diff);
        goto done;
    }
    printf("linear.weight.grad == first.weight.grad + second.weight.grad (to float rounding, < 1e-6)\n");
    status = 0;

done:
    bk_param_list_free(params);
    bk_param_list_free(state);
    bk_module_free(first);
    bk_module_free(second);
    bk_module_free(net);
    return example_exit("04_fixed_hidden_mlp", status);
}
