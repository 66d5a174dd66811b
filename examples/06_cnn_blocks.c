/* 06_cnn_blocks.c - a CNN of your own from brick's layers and blocks: a convolutional
 * stem, D2L's Residual block (ResNet) and Inception block (GoogLeNet), and a head.
 *
 * The PyTorch code it mirrors (Residual and Inception are D2L's classes, "Residual
 * Networks" and "Multi-Branch Networks"; brick has them as bk_nn_residual and
 * bk_nn_inception):
 *
 *   import torch
 *   from torch import nn
 *   from torch.nn import functional as F
 *
 *   class TinyNet(nn.Module):
 *       def __init__(self, num_classes=10):
 *           super().__init__()
 *           self.stem = nn.Sequential(nn.Conv2d(1, 16, kernel_size=3, padding=1),
 *                                     nn.BatchNorm2d(16), nn.ReLU(),
 *                                     nn.MaxPool2d(kernel_size=2))                   # 14 x 14
 *           self.res = Residual(16, 32, use_1x1conv=True, strides=2)                 # 7 x 7
 *           self.inception = Inception(32, 16, (16, 24), (4, 8), 8)                  # 56 channels
 *           self.head = nn.Sequential(nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten(),
 *                                     nn.Dropout(0.5), nn.Linear(56, num_classes))
 *
 *       def forward(self, X):
 *           return self.head(self.inception(self.res(self.stem(X))))
 *
 *   net = TinyNet()
 *   X = torch.randn(8, 1, 28, 28)             # a batch of 8 Fashion-MNIST-sized images
 *   y = torch.randint(0, 10, (8,))
 *   loss = F.cross_entropy(net(X), y)
 *   loss.backward()
 *   print(net)
 *   net.eval()                                # BatchNorm: running stats; Dropout: off
 *   with torch.no_grad(): Y = net(X)
 *
 * Blocks nest like any other: the Residual and Inception blocks are children of TinyNet,
 * so their parameters appear as "res.conv1.weight", "inception.p2_2.bias", ... and their
 * BatchNorm buffers ("res.bn1.running_mean") travel with the state dict.
 */
#include "brick.h"

#include "common.h"

typedef struct {
    bk_module base;
    bk_module *stem, *res, *inception, *head; /* borrowed: registered in base */
} TinyNet;

static bk_tensor *tiny_net_forward(bk_module *self, bk_tensor *X) {
    TinyNet *m = (TinyNet *)self;
    bk_tensor *H = bk_forward(m->stem, X); // (N, 1, 28, 28) -> (N, 16, 14, 14)
    H = bk_forward(m->res, H);             // -> (N, 32, 7, 7)
    H = bk_forward(m->inception, H);       // -> (N, 16 + 24 + 8 + 8 = 56, 7, 7)
    return bk_forward(m->head, H);         // -> (N, 10)
}

static const bk_module_class TINY_NET = {"TinyNet", tiny_net_forward, NULL, NULL};

static bk_module *tiny_net_new(int num_classes) {
    TinyNet *self = (TinyNet *)bk_module_new(&TINY_NET, sizeof(TinyNet));
    if (!self) return NULL;
    bk_module *m = &self->base;
    self->stem = bk_module_add(m, "stem",
                               bk_nn_sequential(4, bk_nn_conv2d(1, 16, 3, 1, 1), bk_nn_batch_norm2d(16),
                                                bk_nn_relu(), bk_nn_max_pool2d(2, 0, 0)));
    if (self->stem) self->res = bk_module_add(m, "res", bk_nn_residual(16, 32, true, 2));
    if (self->res)
        self->inception = bk_module_add(m, "inception",
                                        bk_nn_inception(32, 16, (const int64_t[2]){16, 24},
                                                        (const int64_t[2]){4, 8}, 8));
    if (self->inception)
        self->head = bk_module_add(m, "head",
                                   bk_nn_sequential(4, bk_nn_adaptive_avg_pool2d(1, 1), bk_nn_flatten(1, -1),
                                                    bk_nn_dropout(0.5f), bk_nn_linear(56, num_classes)));
    if (!self->head) {
        bk_module_free(m);
        return NULL;
    }
    return m;
}

int main(void) {
    int status = 1;
    bk_manual_seed(0);

    bk_module *net = tiny_net_new(10);
    if (!net) goto done;

    // one training step's forward and backward on a random batch
    bk_tensor *X = bk_randn(BK_SHAPE(8, 1, 28, 28)); // (8, 1, 28, 28)
    int64_t y[8];
    for (int i = 0; i < 8; i++) y[i] = bk_rng_u32(bk_default_rng()) % 10;
    bk_tensor *Y = bk_forward(net, X); // (8, 10)
    bk_tensor *loss = bk_cross_entropy(Y, y, 8, BK_REDUCTION_MEAN);
    if (!loss || bk_backward(loss) != 0) goto done;

    print_forward(net, X, Y, false);
    printf("loss = %.4f\n", (double)bk_item(loss));
    bk_tensor *g = bk_module_get(net, "inception.p2_2.weight");
    if (!g || !g->grad) {
        bk_set_error("inception.p2_2.weight has no gradient after backward");
        goto done;
    }
    print_shape("inception.p2_2.weight.grad shape", g->grad);
    printf("res.bn1.num_batches_tracked = %g (one training batch)\n",
           (double)bk_item(bk_module_get(net, "res.bn1.num_batches_tracked")));
    if (print_parameters(net) != 0) goto done;

    // eval mode: BatchNorm uses its running statistics, Dropout is off; no tape needed
    bk_module_train(net, false);
    bool prev = bk_set_grad_enabled(false);
    bk_tensor *Y_eval = bk_forward(net, X);
    bk_set_grad_enabled(prev);
    if (!Y_eval) goto done;
    print_shape("eval output shape", Y_eval);
    status = 0;

done:
    bk_module_free(net);
    return example_exit("06_cnn_blocks", status);
}
