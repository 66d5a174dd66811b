/* groupnorm.c - nn.GroupNorm(num_groups, num_channels, eps, affine): each sample's
 * channels split into num_groups groups, each group normalised over its channels and
 * positions (bk_group_norm), then a per-channel weight and bias.
 *
 * N = batch, C = num_channels, G = num_groups: (N, C, *) -> (N, C, *), C % G == 0.
 * Parameters weight (C) = 1 and bias (C) = 0 (torch's reset_parameters), none without
 * affine. The same computation in training and eval mode (no running statistics).
 */
#include "internal.h"
#include "nn/pyrepr.h"

#include <inttypes.h>

typedef struct group_norm {
    bk_module base;
    int64_t num_groups, num_channels;
    float eps;
    bk_tensor *weight, *bias; /* borrowed; NULL without affine */
} group_norm;

static bk_tensor *group_norm_forward(bk_module *m, bk_tensor *x) {
    group_norm *self = (group_norm *)m;
    return bk_group_norm(x, self->num_groups, self->weight, self->bias, self->eps); // same shape as x
}

/* torch: "2, 6, eps=1e-05, affine=True" */
static void group_norm_repr(const bk_module *m, char *buf, size_t n) {
    const group_norm *self = (const group_norm *)m;
    char eps[32];
    py_float_repr(self->eps, eps, sizeof eps);
    snprintf(buf, n, "%" PRId64 ", %" PRId64 ", eps=%s, affine=%s", self->num_groups, self->num_channels, eps,
             self->weight ? "True" : "False");
}

static const bk_module_class GROUP_NORM = {"GroupNorm", group_norm_forward, group_norm_repr, NULL};

bk_module *bk_nn_group_norm(int64_t num_groups, int64_t num_channels, float eps, bool affine) {
    if (num_groups <= 0 || num_channels <= 0 || num_channels % num_groups) {
        bk_set_error("GroupNorm: num_groups=%" PRId64 " and num_channels=%" PRId64
                     " must be positive, and num_channels divisible by num_groups",
                     num_groups, num_channels);
        return NULL;
    }
    if (!(eps >= 0.0f && eps < INFINITY)) {
        bk_set_error("GroupNorm: eps=%g must be finite and non-negative", (double)eps);
        return NULL;
    }
    group_norm *self = (group_norm *)bk_module_new(&GROUP_NORM, sizeof(group_norm));
    if (!self) return NULL;
    self->num_groups = num_groups, self->num_channels = num_channels, self->eps = eps;
    if (affine) {
        self->weight = bk_module_param(&self->base, "weight", BK_SHAPE(num_channels));
        self->bias = bk_module_param(&self->base, "bias", BK_SHAPE(num_channels));
        if (!self->weight || !self->bias) {
            bk_module_free(&self->base);
            return NULL;
        }
        bk_fill(self->weight, 1.0f);
    }
    return &self->base;
}
