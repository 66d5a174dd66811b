/* 12_hooks.c - forward hooks: activation statistics of every layer of an MLP, and a
 * pre-hook that changes a block's input; backward hooks: the gradient reaching each layer;
 * a tensor hook that clips a parameter's gradient.
 *
 * The PyTorch code it mirrors:
 *
 *   import torch
 *   from torch import nn
 *
 *   net = nn.Sequential(nn.Linear(20, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(),
 *                       nn.Linear(256, 10))
 *   stats = {}
 *   def record(name):
 *       def hook(module, inputs, output):
 *           stats[name] = (output.mean().item(), output.std().item(),
 *                          (output == 0).float().mean().item())
 *       return hook
 *   handles = [m.register_forward_hook(record(n)) for n, m in net.named_children()]
 *   net(torch.rand(64, 20))
 *   for n, (mean, std, zeros) in stats.items(): print(n, mean, std, zeros)
 *   for h in handles: h.remove()
 *
 *   net[0].register_forward_pre_hook(lambda m, inputs: (inputs[0] * 2,))   # doubles X
 *
 *   for n, m in net.named_children():                  # |dL/dy| of each block's output
 *       m.register_full_backward_hook(lambda m, gin, gout, n=n: print(n, gout[0].norm()))
 *   net[0].weight.register_hook(lambda g: g.clamp(-1e-4, 1e-4))   # clip one gradient
 *   net(torch.rand(64, 20)).square().mean().backward()
 *
 * A hook here gets the block, its input and its output, and returns the output to pass on
 * (the same one, to only look at it); ud is the caller's pointer (here the row of the
 * table). With torch's default init the ReLU layers set about half their outputs to zero.
 */
#include "brick.h"

#include "common.h"

#include <math.h>

typedef struct layer_stats {
    char name[32];
    double mean, std, zeros;
} layer_stats;

static bk_tensor *record(bk_module *m, bk_tensor *x, bk_tensor *y, void *ud) {
    (void)m;
    (void)x;
    layer_stats *s = ud;
    double sum = 0, sq = 0, zeros = 0;
    for (int64_t i = 0; i < y->numel; i++) {
        sum += y->data[i];
        zeros += y->data[i] == 0.0f;
    }
    s->mean = sum / (double)y->numel;
    for (int64_t i = 0; i < y->numel; i++) sq += (y->data[i] - s->mean) * (y->data[i] - s->mean);
    s->std = sqrt(sq / (double)(y->numel - 1)); /* torch's std: unbiased */
    s->zeros = zeros / (double)y->numel;
    return y;
}

static bk_tensor *grad_norm(bk_module *m, const bk_tensor *grad_input, const bk_tensor *grad_output,
                            void *ud) {
    (void)grad_input;
    double sq = 0;
    for (int64_t i = 0; i < grad_output->numel; i++)
        sq += (double)grad_output->data[i] * grad_output->data[i];
    printf("  %-3s %-7s |dL/dy| %.6f\n", (const char *)ud, bk_module_name(m), sqrt(sq));
    return NULL; /* keep grad_input */
}

static bk_tensor *clip_1e4(bk_tensor *t, bk_tensor *grad, void *ud) {
    (void)t;
    (void)ud;
    return bk_clamp(grad, -1e-4f, 1e-4f);
}

static bk_tensor *double_input(bk_module *m, bk_tensor *x, void *ud) {
    (void)m;
    (void)ud;
    return bk_mul_scalar(x, 2.0f);
}

int main(void) {
    int status = 1;
    bk_manual_seed(0);
    enum { N_LAYERS = 5 };
    layer_stats stats[N_LAYERS];
    int handles[N_LAYERS];

    bk_module *net = bk_nn_sequential(5, bk_nn_linear(20, 256), bk_nn_relu(), bk_nn_linear(256, 256),
                                      bk_nn_relu(), bk_nn_linear(256, 10));
    if (!net) goto done;
    for (int i = 0; i < N_LAYERS; i++) {
        snprintf(stats[i].name, sizeof stats[i].name, "%d (%s)", i, bk_module_name(bk_module_child(net, i)));
        handles[i] = bk_module_add_forward_hook(bk_module_child(net, i), record, &stats[i]);
        if (handles[i] < 0) goto done;
    }
    bk_tensor *X = bk_rand(BK_SHAPE(64, 20)); // (64, 20)
    bk_tensor *Y = bk_forward(net, X);        // (64, 10)
    if (!Y) goto done;
    printf("activation statistics (forward hooks on net's children):\n");
    for (int i = 0; i < N_LAYERS; i++)
        printf("  %-12s mean %8.4f  std %7.4f  zeros %5.1f %%\n", stats[i].name, stats[i].mean, stats[i].std,
               100 * stats[i].zeros);
    for (int i = 0; i < N_LAYERS; i++)
        if (bk_module_remove_hook(bk_module_child(net, i), handles[i]) != 0) goto done;

    // A pre-hook that doubles the first layer's input: the first Linear then sees 2 X.
    int h = bk_module_add_forward_pre_hook(bk_module_child(net, 0), double_input, NULL);
    bk_tensor *Y2 = h >= 0 ? bk_forward(net, X) : NULL;
    if (!Y2 || bk_module_remove_hook(bk_module_child(net, 0), h) != 0) goto done;
    bk_tensor *Y3 = bk_forward(net, bk_mul_scalar(X, 2.0f));
    if (!Y3) goto done;
    printf("with the pre-hook, net(X) == net(2 X) without it: %s\n",
           memcmp(Y2->data, Y3->data, (size_t)Y2->numel * sizeof(float)) ? "no" : "yes");

    // Backward hooks: the gradient that reaches each block, last block first.
    static const char *const names[N_LAYERS] = {"0", "1", "2", "3", "4"};
    for (int i = 0; i < N_LAYERS; i++)
        if (bk_module_add_backward_hook(bk_module_child(net, i), grad_norm, (void *)names[i]) < 0) goto done;
    bk_tensor *W0 = bk_module_get(net, "0.weight");
    if (bk_tensor_register_hook(W0, clip_1e4, NULL) < 0) goto done;
    printf("backward of mean(net(X)^2) (backward hooks on net's children):\n");
    bk_tensor *Y4 = bk_forward(net, X);
    bk_tensor *loss = bk_mean(bk_mul(Y4, Y4));
    if (!loss || bk_backward(loss) != 0) goto done;
    float biggest = 0;
    for (int64_t i = 0; i < W0->grad->numel; i++) biggest = fmaxf(biggest, fabsf(W0->grad->data[i]));
    printf("largest |net[0].weight.grad| after the clipping tensor hook: %.4f\n", biggest);
    print_forward(net, X, Y, false);
    status = 0;

done:
    bk_module_free(net);
    return example_exit("12_hooks", status);
}
