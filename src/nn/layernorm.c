/* layernorm.c - nn.LayerNorm(normalized_shape, eps): normalises each sample over its last
 * len(normalized_shape) dims, then applies an elementwise weight and bias.
 *
 *   x (..., D1, ..., Dk), normalized_shape (D1, ..., Dk): y = (x - mean) / sqrt(var + eps)
 *   * weight + bias, mean and (biased) var over the trailing k dims.
 * Parameters weight = 1 and bias = 0, both of shape normalized_shape (PyTorch's names);
 * none with elementwise_affine=False (the op then gets constant ones and zeros).
 * The same computation in training and eval mode.
 */
#include "internal.h"
#include "nn/pyrepr.h"

#include <inttypes.h>

typedef struct layer_norm {
    bk_module base;
    int ndim; /* k, the number of normalised trailing dims */
    int64_t shape[BK_MAX_DIMS];
    float eps;
    bk_tensor *weight, *bias; /* borrowed */
} layer_norm;

static bk_tensor *layer_norm_forward(bk_module *m, bk_tensor *x) {
    layer_norm *self = (layer_norm *)m;
    bk_tensor *w = self->weight ? self->weight : bk_ones(self->ndim, self->shape);
    bk_tensor *b = self->bias ? self->bias : bk_zeros(self->ndim, self->shape);
    return bk_layer_norm(x, self->ndim, w, b, self->eps); // same shape as x
}

/* torch prints normalized_shape as a Python tuple: "(8,)" or "(4, 8)" */
static void layer_norm_repr(const bk_module *m, char *buf, size_t n) {
    const layer_norm *self = (const layer_norm *)m;
    char shape[256], eps[32];
    bk__shape_fmt(self->ndim, self->shape, shape, sizeof shape);
    if (self->ndim == 1) snprintf(shape, sizeof shape, "(%" PRId64 ",)", self->shape[0]);
    py_float_repr(self->eps, eps, sizeof eps);
    snprintf(buf, n, "%s, eps=%s, elementwise_affine=%s", shape, eps, self->weight ? "True" : "False");
}

static const bk_module_class LAYER_NORM = {"LayerNorm", layer_norm_forward, layer_norm_repr, NULL};

bk_module *bk_nn_layer_norm_ex(int ndim, const int64_t *normalized_shape, float eps,
                               bool elementwise_affine) {
    if (ndim < 1 || ndim > BK_MAX_DIMS || !normalized_shape) {
        bk_set_error("LayerNorm: normalized_shape needs 1 to %d dims (got %d%s)", BK_MAX_DIMS, ndim,
                     normalized_shape ? "" : ", shape NULL");
        return NULL;
    }
    for (int i = 0; i < ndim; i++)
        if (normalized_shape[i] <= 0) {
            char s[256];
            bk_set_error("LayerNorm: normalized_shape %s must have positive dims",
                         bk__shape_fmt(ndim, normalized_shape, s, sizeof s));
            return NULL;
        }
    if (!(eps >= 0.0f && eps < INFINITY)) {
        bk_set_error("LayerNorm: eps=%g must be finite and non-negative", (double)eps);
        return NULL;
    }
    layer_norm *self = (layer_norm *)bk_module_new(&LAYER_NORM, sizeof(layer_norm));
    if (!self) return NULL;
    self->ndim = ndim;
    memcpy(self->shape, normalized_shape, sizeof(int64_t) * (size_t)ndim);
    self->eps = eps;
    if (!elementwise_affine) return &self->base;
    self->weight = bk_module_param(&self->base, "weight", ndim, normalized_shape);
    self->bias = bk_module_param(&self->base, "bias", ndim, normalized_shape);
    if (!self->weight || !self->bias) {
        bk_module_free(&self->base);
        return NULL;
    }
    bk_fill(self->weight, 1.0f);
    return &self->base;
}

bk_module *bk_nn_layer_norm(int ndim, const int64_t *normalized_shape, float eps) {
    return bk_nn_layer_norm_ex(ndim, normalized_shape, eps, true);
}
