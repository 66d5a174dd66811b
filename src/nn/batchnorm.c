/* batchnorm.c - nn.BatchNorm1d and nn.BatchNorm2d: per-channel normalisation over the
 * batch (and the spatial positions), with an affine weight and bias.
 *
 * N = batch, C = num_features, L = length, H, W.
 *   BatchNorm1d: (N, C) or (N, C, L);  BatchNorm2d: (N, C, H, W).
 * Training: normalises with the batch's mean and (biased) variance, updates
 *   running = (1 - momentum) running + momentum batch_stat (the variance unbiased), and
 *   counts the batch in num_batches_tracked. Eval: normalises with the running statistics.
 * Parameters weight (C) = 1, bias (C) = 0; persistent buffers running_mean (C) = 0,
 * running_var (C) = 1 and num_batches_tracked () = 0: PyTorch's names and order, so state
 * dicts load both ways. torch keeps num_batches_tracked as an int64 scalar; brick tensors
 * are float32 only, so here it is a float32 scalar (exact up to 2^24 batches).
 */
#include "internal.h"
#include "nn/pyrepr.h"

#include <inttypes.h>

typedef struct batch_norm {
    bk_module base;
    int64_t num_features;
    float eps, momentum;
    int spatial_dims; /* 1: BatchNorm1d, 2: BatchNorm2d */
    bk_tensor *weight, *bias, *running_mean, *running_var, *num_batches_tracked; /* borrowed */
} batch_norm;

static bk_tensor *batch_norm_forward(bk_module *m, bk_tensor *x) {
    batch_norm *self = (batch_norm *)m;
    const char *name = m->cls->name;
    char s[128];
    bool rank_ok = self->spatial_dims == 1 ? (x->ndim == 2 || x->ndim == 3) : x->ndim == 4;
    if (!rank_ok) {
        bk_set_error("%s: expected %s input (got %dD input %s)", name,
                     self->spatial_dims == 1 ? "2D or 3D" : "4D", x->ndim, bk_shape_str(x, s, sizeof s));
        return NULL;
    }
    if (x->shape[1] != self->num_features) {
        bk_set_error("%s: expected %" PRId64 " channels (num_features), got %" PRId64 " in input %s", name,
                     self->num_features, x->shape[1], bk_shape_str(x, s, sizeof s));
        return NULL;
    }
    bk_tensor *y = bk_batch_norm(x, self->running_mean, self->running_var, self->weight, self->bias,
                                 m->training, self->momentum, self->eps); // same shape as x
    if (y && m->training) self->num_batches_tracked->data[0] += 1.0f;
    return y;
}

static void batch_norm_repr(const bk_module *m, char *buf, size_t n) {
    const batch_norm *self = (const batch_norm *)m;
    char eps[32], momentum[32];
    py_float_repr(self->eps, eps, sizeof eps);
    py_float_repr(self->momentum, momentum, sizeof momentum);
    snprintf(buf, n, "%" PRId64 ", eps=%s, momentum=%s, affine=True, track_running_stats=True",
             self->num_features, eps, momentum);
}

static const bk_module_class BATCH_NORM1D = {"BatchNorm1d", batch_norm_forward, batch_norm_repr, NULL};
static const bk_module_class BATCH_NORM2D = {"BatchNorm2d", batch_norm_forward, batch_norm_repr, NULL};

bk_module *bk_nn_batch_norm_ex(int64_t num_features, float eps, float momentum, int ndim_expected) {
    if (ndim_expected != 1 && ndim_expected != 2) {
        bk_set_error("BatchNorm: ndim_expected must be 1 (BatchNorm1d) or 2 (BatchNorm2d), got %d",
                     ndim_expected);
        return NULL;
    }
    const bk_module_class *cls = ndim_expected == 1 ? &BATCH_NORM1D : &BATCH_NORM2D;
    if (num_features <= 0) {
        bk_set_error("%s: num_features=%" PRId64 " must be positive", cls->name, num_features);
        return NULL;
    }
    if (!(eps >= 0.0f && eps < INFINITY) || !(momentum >= 0.0f && momentum <= 1.0f)) {
        bk_set_error("%s: eps=%g must be finite and non-negative and momentum=%g in [0, 1]", cls->name,
                     (double)eps, (double)momentum);
        return NULL;
    }
    batch_norm *self = (batch_norm *)bk_module_new(cls, sizeof(batch_norm));
    if (!self) return NULL;
    self->num_features = num_features;
    self->eps = eps;
    self->momentum = momentum;
    self->spatial_dims = ndim_expected;
    bk_module *m = &self->base;
    self->weight = bk_module_param(m, "weight", BK_SHAPE(num_features));
    self->bias = bk_module_param(m, "bias", BK_SHAPE(num_features));
    self->running_mean = bk_module_buffer(m, "running_mean", BK_SHAPE(num_features), true);
    self->running_var = bk_module_buffer(m, "running_var", BK_SHAPE(num_features), true);
    self->num_batches_tracked = bk_module_buffer(m, "num_batches_tracked", 0, NULL, true);
    if (!self->weight || !self->bias || !self->running_mean || !self->running_var ||
        !self->num_batches_tracked) {
        bk_module_free(m);
        return NULL;
    }
    bk_fill(self->weight, 1.0f);
    bk_fill(self->running_var, 1.0f);
    return m;
}

bk_module *bk_nn_batch_norm1d(int64_t num_features) {
    return bk_nn_batch_norm_ex(num_features, 1e-5f, 0.1f, 1);
}
bk_module *bk_nn_batch_norm2d(int64_t num_features) {
    return bk_nn_batch_norm_ex(num_features, 1e-5f, 0.1f, 2);
}
