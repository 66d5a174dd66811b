/* residual.c - D2L's ResNet block (d2l.ai, "Residual Networks (ResNet)"):
 *
 *   class Residual(nn.Module):
 *       def __init__(self, input_channels, num_channels, use_1x1conv=False, strides=1):
 *           self.conv1 = nn.Conv2d(input_channels, num_channels, kernel_size=3, padding=1, stride=strides)
 *           self.conv2 = nn.Conv2d(num_channels, num_channels, kernel_size=3, padding=1)
 *           self.conv3 = nn.Conv2d(input_channels, num_channels, kernel_size=1, stride=strides)
 *                        if use_1x1conv else None
 *           self.bn1 = nn.BatchNorm2d(num_channels)
 *           self.bn2 = nn.BatchNorm2d(num_channels)
 *       def forward(self, X):
 *           Y = F.relu(self.bn1(self.conv1(X)))
 *           Y = self.bn2(self.conv2(Y))
 *           if self.conv3: X = self.conv3(X)
 *           return F.relu(Y + X)
 *
 * N = batch, C = input_channels, K = num_channels, s = strides. Children are registered in
 * the order above, so the state dict ("conv1.weight", ..., "bn2.num_batches_tracked") and
 * print(net) match the PyTorch class.
 */
#include "internal.h"

#include <inttypes.h>

typedef struct residual {
    bk_module base;
    bk_module *conv1, *conv2, *conv3, *bn1, *bn2; /* borrowed children; conv3 may be NULL */
} residual;

static bk_tensor *residual_forward(bk_module *m, bk_tensor *X) {
    residual *self = (residual *)m;
    /* relu(bn(.)) and relu(bn(.) + shortcut) are one fused op each (bk__batch_norm_relu) */
    bk_tensor *Y = bk__batch_norm_relu(self->bn1, bk_forward(self->conv1, X), NULL); // (N, K, H/s, W/s)
    Y = bk_forward(self->conv2, Y);                                                  // (N, K, H/s, W/s)
    if (!Y) return NULL; /* stop here: conv3 would run on X and replace the first error */
    bk_tensor *shortcut = self->conv3 ? bk_forward(self->conv3, X) : X; // (N, K, H/s, W/s)
    if (shortcut && !bk_same_shape(Y, shortcut)) {
        char s1[128], s2[128];
        bk_set_error(
            "Residual: the convolutions give %s but the shortcut (the input, no 1x1 conv) is %s; "
            "without use_1x1conv the input needs num_channels channels and strides 1",
            bk_shape_str(Y, s1, sizeof s1), bk_shape_str(shortcut, s2, sizeof s2));
        return NULL;
    }
    return bk__batch_norm_relu(self->bn2, Y, shortcut);
}

static const bk_module_class RESIDUAL = {"Residual", residual_forward, NULL, NULL};

bk_module *bk_nn_residual(int64_t input_channels, int64_t num_channels, bool use_1x1conv, int64_t strides) {
    if (strides <= 0) { /* checked here too so that the message names the block */
        bk_set_error("Residual(%" PRId64 ", %" PRId64 "): strides=%" PRId64 " must be positive",
                     input_channels, num_channels, strides);
        return NULL;
    }
    residual *self = (residual *)bk_module_new(&RESIDUAL, sizeof(residual));
    if (!self) return NULL;
    bk_module *m = &self->base;
    self->conv1 = bk_module_add(m, "conv1", bk_nn_conv2d(input_channels, num_channels, 3, strides, 1));
    self->conv2 = self->conv1 ? bk_module_add(m, "conv2", bk_nn_conv2d(num_channels, num_channels, 3, 1, 1))
                              : NULL;
    bool ok = self->conv2 != NULL;
    if (ok && use_1x1conv) {
        self->conv3 = bk_module_add(m, "conv3", bk_nn_conv2d(input_channels, num_channels, 1, strides, 0));
        ok = self->conv3 != NULL;
    }
    if (ok) self->bn1 = bk_module_add(m, "bn1", bk_nn_batch_norm2d(num_channels));
    if (ok && self->bn1) self->bn2 = bk_module_add(m, "bn2", bk_nn_batch_norm2d(num_channels));
    if (!self->bn2) { /* bk_module_add named the failing child in the error */
        bk_module_free(m);
        return NULL;
    }
    return m;
}
