/* linear.c - nn.Linear: y = x W^T + b, W (out_features, in_features), b (out_features).
 * Initialised as PyTorch does (kaiming_uniform_ with a = sqrt(5) reduces to
 * U(-1/sqrt(in), 1/sqrt(in)) for the weight; the bias uses the same bound).
 */
#include "internal.h"

#include <inttypes.h>
#include <math.h>

typedef struct linear {
    bk_module base;
    int64_t in_features, out_features;
    bk_tensor *weight, *bias; /* borrowed from base's parameter list */
} linear;

static bk_tensor *linear_forward(bk_module *m, bk_tensor *x) {
    linear *self = (linear *)m;
    return bk_linear(x, self->weight, self->bias);
}

static void linear_repr(const bk_module *m, char *buf, size_t n) {
    const linear *self = (const linear *)m;
    snprintf(buf, n, "in_features=%" PRId64 ", out_features=%" PRId64 ", bias=%s", self->in_features,
             self->out_features, self->bias ? "True" : "False");
}

static const bk_module_class LINEAR = {"Linear", linear_forward, linear_repr, NULL};
/* the same layer under the class name torch gives MultiheadAttention's out_proj */
static const bk_module_class OUT_PROJ = {"NonDynamicallyQuantizableLinear", linear_forward, linear_repr,
                                         NULL};

/* A Linear of class cls; init_bias false leaves the bias zero (out_proj, which
 * MultiheadAttention zeroes: it draws nothing from the generator for it). */
static bk_module *linear_new(const bk_module_class *cls, int64_t in_features, int64_t out_features, bool bias,
                             bool init_bias) {
    if (in_features < 0 || out_features < 0) {
        bk_set_error("%s: in_features=%" PRId64 " and out_features=%" PRId64 " must be non-negative",
                     cls->name, in_features, out_features);
        return NULL;
    }
    linear *self = (linear *)bk_module_new(cls, sizeof(linear));
    if (!self) return NULL;
    self->in_features = in_features;
    self->out_features = out_features;
    self->weight = bk_module_param(&self->base, "weight", BK_SHAPE(out_features, in_features));
    if (bias) self->bias = bk_module_param(&self->base, "bias", BK_SHAPE(out_features));
    if (!self->weight || (bias && !self->bias)) {
        bk_module_free(&self->base);
        return NULL;
    }
    float bound = in_features > 0 ? 1.0f / sqrtf((float)in_features) : 0.0f;
    bk_fill_uniform(self->weight, NULL, -bound, bound);
    if (bias && init_bias) bk_fill_uniform(self->bias, NULL, -bound, bound);
    return &self->base;
}

bk_module *bk_nn_linear_ex(int64_t in_features, int64_t out_features, bool bias) {
    return linear_new(&LINEAR, in_features, out_features, bias, true);
}

bk_module *bk__nn_out_proj(int64_t E, bool bias) { return linear_new(&OUT_PROJ, E, E, bias, false); }

bk_module *bk_nn_linear(int64_t in_features, int64_t out_features) {
    return bk_nn_linear_ex(in_features, out_features, true);
}
