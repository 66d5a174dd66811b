/* activation.c - the activation blocks. Each is a class whose forward is the op of the
 * same name:
 *   parameter-free: nn.ReLU, nn.Sigmoid, nn.Tanh, nn.Identity, nn.GELU (exact, erf form, and
 *     approximate='tanh'), nn.SiLU, nn.Mish, nn.Hardswish, nn.Hardsigmoid;
 *   with float settings: nn.LeakyReLU(negative_slope), nn.ELU(alpha),
 *     nn.Softplus(beta, threshold);
 *   with a dim: nn.Softmax / nn.LogSoftmax(dim), nn.Softmax2d (dim -3 of a 3-d or 4-d input);
 *   with a parameter: nn.PReLU(num_parameters, init) ("weight", one slope per channel).
 */
#include "internal.h"
#include "nn/pyrepr.h"

#include <inttypes.h>

static bk_tensor *identity(bk_tensor *x) { return x; }

static void gelu_repr(const bk_module *m, char *buf, size_t n) {
    (void)m;
    snprintf(buf, n, "approximate='none'");
}
static void gelu_tanh_repr(const bk_module *m, char *buf, size_t n) {
    (void)m;
    snprintf(buf, n, "approximate='tanh'");
}

/* One activation block: its class (torch's name, a forward that applies op, repr) and its
 * constructor bk_nn_<name>. */
#define ACTIVATION(name, cls_name, op, repr)                                            \
    static bk_tensor *name##_forward(bk_module *m, bk_tensor *x) {                      \
        (void)m;                                                                        \
        return op(x);                                                                   \
    }                                                                                   \
    static const bk_module_class name##_class = {cls_name, name##_forward, repr, NULL}; \
    bk_module *bk_nn_##name(void) { return bk_module_new(&name##_class, sizeof(bk_module)); }

ACTIVATION(relu, "ReLU", bk_relu, NULL)
ACTIVATION(sigmoid, "Sigmoid", bk_sigmoid, NULL)
ACTIVATION(tanh, "Tanh", bk_tanh, NULL)
ACTIVATION(identity, "Identity", identity, NULL)
ACTIVATION(gelu, "GELU", bk_gelu, gelu_repr)
ACTIVATION(gelu_tanh, "GELU", bk_gelu_tanh, gelu_tanh_repr)
ACTIVATION(silu, "SiLU", bk_silu, NULL)
ACTIVATION(mish, "Mish", bk_mish, NULL)
ACTIVATION(hardswish, "Hardswish", bk_hardswish, NULL)
ACTIVATION(hardsigmoid, "Hardsigmoid", bk_hardsigmoid, NULL)

/* The activations with float settings s (and t): forward = the op of the same name with
 * them. The settings print as torch prints its defaults: a float setting as Python's repr
 * (0.01, 1.0); Softplus's, whose defaults are ints in torch, without ".0" when integral
 * (beta=1, threshold=20, beta=0.5). */
typedef struct scalar_activation {
    bk_module base;
    float s, t;
} scalar_activation;

static void py_number(float v, bool int_if_integral, char *buf, size_t n) {
    if (int_if_integral && v == truncf(v) && fabsf(v) < 1e15f) snprintf(buf, n, "%.0f", (double)v);
    else py_float_repr(v, buf, n);
}

/* One such block: its class and its constructor bk_nn_<name>(s[, t]); repr prints
 * name_s=<s>[, name_t=<t>]. */
#define SCALAR_ACTIVATION(name, cls_name, fwd, int_repr, ...)                                      \
    static bk_tensor *name##_forward(bk_module *m, bk_tensor *x) {                                 \
        const scalar_activation *self = (const scalar_activation *)m;                              \
        (void)self;                                                                                \
        return (fwd);                                                                              \
    }                                                                                              \
    static void name##_repr(const bk_module *m, char *buf, size_t n) {                             \
        const scalar_activation *self = (const scalar_activation *)m;                              \
        static const char *const names[] = {__VA_ARGS__};                                          \
        size_t len = 0;                                                                            \
        for (size_t i = 0; i < sizeof names / sizeof *names && len < n; i++) {                     \
            char v[32];                                                                            \
            py_number(i == 0 ? self->s : self->t, int_repr, v, sizeof v);                          \
            len += (size_t)snprintf(buf + len, n - len, "%s%s=%s", i ? ", " : "", names[i], v);    \
        }                                                                                          \
    }                                                                                              \
    static const bk_module_class name##_class = {cls_name, name##_forward, name##_repr, NULL};     \
    static bk_module *name##_new(float s, float t) {                                               \
        scalar_activation *self = (scalar_activation *)bk_module_new(&name##_class, sizeof *self); \
        if (!self) return NULL;                                                                    \
        self->s = s;                                                                               \
        self->t = t;                                                                               \
        return &self->base;                                                                        \
    }

SCALAR_ACTIVATION(leaky_relu, "LeakyReLU", bk_leaky_relu(x, self->s), false, "negative_slope")
SCALAR_ACTIVATION(elu, "ELU", bk_elu(x, self->s), false, "alpha")
SCALAR_ACTIVATION(softplus, "Softplus", bk_softplus(x, self->s, self->t), true, "beta", "threshold")

bk_module *bk_nn_leaky_relu(float negative_slope) { return leaky_relu_new(negative_slope, 0); }
bk_module *bk_nn_elu(float alpha) { return elu_new(alpha, 0); }
bk_module *bk_nn_softplus(float beta, float threshold) {
    if (!(beta != 0.0f)) {
        bk_set_error("Softplus: beta=%g must be nonzero", (double)beta);
        return NULL;
    }
    return softplus_new(beta, threshold);
}

/* Softmax and LogSoftmax keep their dim (negative counts from the end, checked per input). */
typedef struct softmax {
    bk_module base;
    int dim;
} softmax;

static bk_tensor *softmax_forward(bk_module *m, bk_tensor *x) { return bk_softmax(x, ((softmax *)m)->dim); }
static bk_tensor *log_softmax_forward(bk_module *m, bk_tensor *x) {
    return bk_log_softmax(x, ((softmax *)m)->dim);
}
static void softmax_repr(const bk_module *m, char *buf, size_t n) {
    snprintf(buf, n, "dim=%d", ((const softmax *)m)->dim);
}

static const bk_module_class SOFTMAX = {"Softmax", softmax_forward, softmax_repr, NULL};
static const bk_module_class LOG_SOFTMAX = {"LogSoftmax", log_softmax_forward, softmax_repr, NULL};

static bk_module *softmax_new(const bk_module_class *cls, int dim) {
    softmax *self = (softmax *)bk_module_new(cls, sizeof(softmax));
    if (self) self->dim = dim;
    return self ? &self->base : NULL;
}

bk_module *bk_nn_softmax(int dim) { return softmax_new(&SOFTMAX, dim); }
bk_module *bk_nn_log_softmax(int dim) { return softmax_new(&LOG_SOFTMAX, dim); }

/* nn.Softmax2d: softmax over the channels, dim -3 of (C, H, W) or (N, C, H, W). */
static bk_tensor *softmax2d_forward(bk_module *m, bk_tensor *x) {
    (void)m;
    if (x && (x->ndim < 3 || x->ndim > 4)) {
        char s[128];
        bk_set_error("Softmax2d: input %s must be 3-d (C, H, W) or 4-d (N, C, H, W)",
                     bk_shape_str(x, s, sizeof s));
        return NULL;
    }
    return bk_softmax(x, -3);
}
static const bk_module_class SOFTMAX2D = {"Softmax2d", softmax2d_forward, NULL, NULL};
bk_module *bk_nn_softmax2d(void) { return bk_module_new(&SOFTMAX2D, sizeof(bk_module)); }

/* nn.PReLU(num_parameters, init): y = x > 0 ? x : w_c x, with w_c the slope of x's channel
 * (dim 1; an input of rank < 2 has one channel). weight (num_parameters) starts at init. */
typedef struct prelu {
    bk_module base;
    bk_tensor *weight; /* borrowed from base's parameter list */
} prelu;

static bk_tensor *prelu_forward(bk_module *m, bk_tensor *x) {
    prelu *self = (prelu *)m;
    int64_t C = self->weight->numel;
    if (!x) return NULL;
    if (C == 1) return bk_prelu(x, self->weight); // (1) broadcasts against anything
    if (x->ndim < 2 || x->shape[1] != C) {
        char s[128];
        bk_set_error("PReLU: input %s has no channel dim 1 of size num_parameters=%" PRId64,
                     bk_shape_str(x, s, sizeof s), C);
        return NULL;
    }
    int64_t shape[BK_MAX_DIMS]; // (C, 1, ..., 1): w against x (N, C, ...)
    shape[0] = C;
    for (int i = 1; i < x->ndim - 1; i++) shape[i] = 1;
    return bk_prelu(x, bk_reshape(self->weight, x->ndim - 1, shape));
}

static void prelu_repr(const bk_module *m, char *buf, size_t n) {
    snprintf(buf, n, "num_parameters=%" PRId64, ((const prelu *)m)->weight->numel);
}

static const bk_module_class PRELU = {"PReLU", prelu_forward, prelu_repr, NULL};

bk_module *bk_nn_prelu(int64_t num_parameters, float init) {
    if (num_parameters < 1) {
        bk_set_error("PReLU: num_parameters=%" PRId64 " must be at least 1", num_parameters);
        return NULL;
    }
    prelu *self = (prelu *)bk_module_new(&PRELU, sizeof(prelu));
    if (!self) return NULL;
    self->weight = bk_module_param(&self->base, "weight", BK_SHAPE(num_parameters));
    if (!self->weight) {
        bk_module_free(&self->base);
        return NULL;
    }
    bk_fill(self->weight, init);
    return &self->base;
}
