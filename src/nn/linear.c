/* linear.c - nn.Linear: y = x W^T + b, W (out_features, in_features), b (out_features).
 * Initialised as PyTorch does (kaiming_uniform_ with a = sqrt(5) reduces to
 * U(-1/sqrt(in), 1/sqrt(in)) for the weight; the bias uses the same bound).
 * nn.LazyLinear is the same block with in_features 0 and no parameters until its first
 * forward, which makes them from the input's last dimension and turns it into a Linear.
 */
#include "internal.h"

#include <inttypes.h>
#include <math.h>

typedef struct linear {
    bk_module base;
    int64_t in_features, out_features; /* in_features 0 in a LazyLinear before its first forward */
    bool has_bias;
    bk_tensor *weight, *bias; /* borrowed from base's parameter list */
} linear;

static bk_tensor *linear_forward(bk_module *m, bk_tensor *x) {
    linear *self = (linear *)m;
    return bk_linear(x, self->weight, self->bias);
}

static void linear_repr(const bk_module *m, char *buf, size_t n) {
    const linear *self = (const linear *)m;
    snprintf(buf, n, "in_features=%" PRId64 ", out_features=%" PRId64 ", bias=%s", self->in_features,
             self->out_features, self->has_bias ? "True" : "False");
}

static const bk_module_class LINEAR = {"Linear", linear_forward, linear_repr, NULL};
/* the same layer under the class name torch gives MultiheadAttention's out_proj */
static const bk_module_class OUT_PROJ = {"NonDynamicallyQuantizableLinear", linear_forward, linear_repr,
                                         NULL};

/* Registers weight (out_features, in_features) and bias (out_features), as torch's
 * reset_parameters draws them; init_bias false leaves the bias zero. false on failure. */
static bool linear_make_params(linear *self, int64_t in_features, bool init_bias) {
    self->in_features = in_features;
    self->weight = bk_module_param(&self->base, "weight", BK_SHAPE(self->out_features, in_features));
    if (self->has_bias) self->bias = bk_module_param(&self->base, "bias", BK_SHAPE(self->out_features));
    if (!self->weight || (self->has_bias && !self->bias)) return false;
    float bound = in_features > 0 ? 1.0f / sqrtf((float)in_features) : 0.0f;
    bk_fill_uniform(self->weight, NULL, -bound, bound);
    if (self->has_bias && init_bias) bk_fill_uniform(self->bias, NULL, -bound, bound);
    return true;
}

/* LazyLinear's first forward: in_features is x's last dimension. */
static bool lazy_linear_init(bk_module *m, const bk_tensor *x) {
    linear *self = (linear *)m;
    if (x->ndim < 1) {
        bk_set_error("LazyLinear: cannot infer in_features (the input's last dimension) from a 0-d input");
        return false;
    }
    if (linear_make_params(self, x->shape[x->ndim - 1], true)) return true;
    self->in_features = 0;
    self->weight = self->bias = NULL;
    return false;
}

static bk_tensor *lazy_linear_forward(bk_module *m, bk_tensor *x) {
    return bk__lazy_forward(m, x, lazy_linear_init, &LINEAR);
}

static const bk_module_class LAZY_LINEAR = {"LazyLinear", lazy_linear_forward, linear_repr, NULL};

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
    self->out_features = out_features;
    self->has_bias = bias;
    if (!linear_make_params(self, in_features, init_bias)) {
        bk_module_free(&self->base);
        return NULL;
    }
    return &self->base;
}

bk_module *bk_nn_linear_ex(int64_t in_features, int64_t out_features, bool bias) {
    return linear_new(&LINEAR, in_features, out_features, bias, true);
}

bk_module *bk__nn_out_proj(int64_t E, bool bias) { return linear_new(&OUT_PROJ, E, E, bias, false); }

bk_module *bk_nn_linear(int64_t in_features, int64_t out_features) {
    return bk_nn_linear_ex(in_features, out_features, true);
}

bk_module *bk_nn_lazy_linear(int64_t out_features, bool bias) {
    if (out_features < 0) {
        bk_set_error("LazyLinear: out_features=%" PRId64 " must be non-negative", out_features);
        return NULL;
    }
    linear *self = (linear *)bk_module_new(&LAZY_LINEAR, sizeof(linear));
    if (!self) return NULL;
    self->out_features = out_features;
    self->has_bias = bias;
    self->base.lazy = true;
    return &self->base;
}
