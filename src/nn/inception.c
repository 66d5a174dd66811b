/* inception.c - D2L's GoogLeNet block (d2l.ai, "Multi-Branch Networks (GoogLeNet)"):
 *
 *   class Inception(nn.Module):
 *       def __init__(self, in_channels, c1, c2, c3, c4):
 *           self.p1_1 = nn.Conv2d(in_channels, c1, kernel_size=1)
 *           self.p2_1 = nn.Conv2d(in_channels, c2[0], kernel_size=1)
 *           self.p2_2 = nn.Conv2d(c2[0], c2[1], kernel_size=3, padding=1)
 *           self.p3_1 = nn.Conv2d(in_channels, c3[0], kernel_size=1)
 *           self.p3_2 = nn.Conv2d(c3[0], c3[1], kernel_size=5, padding=2)
 *           self.p4_1 = nn.MaxPool2d(kernel_size=3, stride=1, padding=1)
 *           self.p4_2 = nn.Conv2d(in_channels, c4, kernel_size=1)
 *       def forward(self, x):
 *           p1 = F.relu(self.p1_1(x))
 *           p2 = F.relu(self.p2_2(F.relu(self.p2_1(x))))
 *           p3 = F.relu(self.p3_2(F.relu(self.p3_1(x))))
 *           p4 = F.relu(self.p4_2(self.p4_1(x)))
 *           return torch.cat((p1, p2, p3, p4), dim=1)
 *
 * N = batch, C = in_channels, H, W: every path keeps H x W, so the four outputs stack on
 * the channel dim: (N, C, H, W) -> (N, c1 + c2[1] + c3[1] + c4, H, W). Children are
 * registered in the order above (PyTorch's state-dict names).
 */
#include "internal.h"

#include <inttypes.h>

enum { P1_1, P2_1, P2_2, P3_1, P3_2, P4_1, P4_2, INCEPTION_CHILD_COUNT };
static const char *const CHILD_NAMES[INCEPTION_CHILD_COUNT] = {"p1_1", "p2_1", "p2_2", "p3_1",
                                                               "p3_2", "p4_1", "p4_2"};

typedef struct inception {
    bk_module base;
    bk_module *p[INCEPTION_CHILD_COUNT]; /* borrowed children */
} inception;

static bk_tensor *inception_forward(bk_module *m, bk_tensor *x) {
    bk_module *const *p = ((inception *)m)->p;
    bk_tensor *paths[4];
    /* Each path starts from x, so a failed path must end the forward: the next one would
     * run on the valid x and replace the first error message. */
    if (!(paths[0] = bk_relu(bk_forward(p[P1_1], x)))) return NULL; // (N, c1, H, W)
    if (!(paths[1] = bk_relu(bk_forward(p[P2_2], bk_relu(bk_forward(p[P2_1], x))))))
        return NULL; // (N, c2[1], H, W)
    if (!(paths[2] = bk_relu(bk_forward(p[P3_2], bk_relu(bk_forward(p[P3_1], x))))))
        return NULL;                                                                     // (N, c3[1], H, W)
    if (!(paths[3] = bk_relu(bk_forward(p[P4_2], bk_forward(p[P4_1], x))))) return NULL; // (N, c4, H, W)
    return bk_concat(4, paths, 1);                                                       // (N, sum, H, W)
}

static const bk_module_class INCEPTION = {"Inception", inception_forward, NULL, NULL};

bk_module *bk_nn_inception(int64_t in_channels, int64_t c1, const int64_t c2[2], const int64_t c3[2],
                           int64_t c4) {
    if (!c2 || !c3) {
        bk_set_error("Inception: c2 and c3 must be pairs of channel counts (got NULL)");
        return NULL;
    }
    inception *self = (inception *)bk_module_new(&INCEPTION, sizeof(inception));
    if (!self) return NULL;
    /* one child at a time, so that the first failure is the one reported (bk_module_add
     * names it: "Inception: child \"p2_2\": Conv2d: ...") */
    for (int i = 0; i < INCEPTION_CHILD_COUNT; i++) {
        bk_module *child = NULL;
        switch (i) {
        case P1_1: child = bk_nn_conv2d(in_channels, c1, 1, 1, 0); break;
        case P2_1: child = bk_nn_conv2d(in_channels, c2[0], 1, 1, 0); break;
        case P2_2: child = bk_nn_conv2d(c2[0], c2[1], 3, 1, 1); break;
        case P3_1: child = bk_nn_conv2d(in_channels, c3[0], 1, 1, 0); break;
        case P3_2: child = bk_nn_conv2d(c3[0], c3[1], 5, 1, 2); break;
        case P4_1: child = bk_nn_max_pool2d(3, 1, 1); break;
        case P4_2: child = bk_nn_conv2d(in_channels, c4, 1, 1, 0); break;
        }
        self->p[i] = bk_module_add(&self->base, CHILD_NAMES[i], child);
        if (!self->p[i]) {
            bk_module_free(&self->base);
            return NULL;
        }
    }
    return &self->base;
}
