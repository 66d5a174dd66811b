/* conv2d.c - nn.Conv2d: y = conv2d(x, weight, bias) over NCHW images.
 *
 * N = batch, C = in_channels, O = out_channels, KH x KW = kernel, g = groups.
 * Parameters: weight (O, C/g, KH, KW), bias (O) (optional), PyTorch's names. Both are
 * initialised as torch does: kaiming_uniform_(a = sqrt(5)) reduces to
 * U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with fan_in = C/g KH KW, and the bias uses the same
 * bound. Settings are checked here, when the block is made (channels, kernel, stride,
 * padding, dilation, groups); what depends on the input (its rank, its channel count, a
 * kernel larger than the padded image) is checked by the conv2d op at forward time.
 * nn.LazyConv2d is the same block with in_channels 0 and no parameters until its first
 * forward, which takes C from the input's dim 1 and turns it into a Conv2d.
 */
#include "internal.h"

#include <inttypes.h>
#include <math.h>

typedef struct conv2d {
    bk_module base;
    int64_t in_channels, out_channels, kernel[2]; /* in_channels 0: a LazyConv2d before its forward */
    bk_conv2d_opts opts;
    bool has_bias;
    bk_tensor *weight, *bias; /* borrowed from base's parameter list; bias may be NULL */
} conv2d;

static bk_tensor *conv2d_forward(bk_module *m, bk_tensor *x) {
    conv2d *self = (conv2d *)m;
    return bk_conv2d(x, self->weight, self->bias, self->opts); // (N, C, H, W) -> (N, O, OH, OW)
}

/* torch: "1, 6, kernel_size=(5, 5), stride=(1, 1)" then padding, dilation, groups and
 * bias=False only where they differ from the defaults. */
static void conv2d_repr(const bk_module *m, char *buf, size_t n) {
    const conv2d *self = (const conv2d *)m;
    const bk_conv2d_opts *o = &self->opts;
    int k = snprintf(buf, n,
                     "%" PRId64 ", %" PRId64 ", kernel_size=(%" PRId64 ", %" PRId64 "), stride=(%" PRId64
                     ", %" PRId64 ")",
                     self->in_channels, self->out_channels, self->kernel[0], self->kernel[1], o->stride[0],
                     o->stride[1]);
#define APPEND(...) \
    if (k >= 0 && (size_t)k < n) k += snprintf(buf + k, n - (size_t)k, __VA_ARGS__)
    if (o->padding[0] != 0 || o->padding[1] != 0)
        APPEND(", padding=(%" PRId64 ", %" PRId64 ")", o->padding[0], o->padding[1]);
    if (o->dilation[0] != 1 || o->dilation[1] != 1)
        APPEND(", dilation=(%" PRId64 ", %" PRId64 ")", o->dilation[0], o->dilation[1]);
    if (o->groups != 1) APPEND(", groups=%" PRId64, o->groups);
    if (!self->has_bias) APPEND(", bias=False");
#undef APPEND
}

static const bk_module_class CONV2D = {"Conv2d", conv2d_forward, conv2d_repr, NULL};

/* The settings of a Conv2d (or, lazy, of a LazyConv2d, whose in_channels is not known yet),
 * checked for class `name`: false with an error. */
static bool conv2d_settings_ok(const char *name, int64_t in_channels, int64_t out_channels,
                               const int64_t kernel[2], const bk_conv2d_opts *o, bool lazy) {
    if (!kernel) {
        bk_set_error("%s: kernel_size is NULL", name);
        return false;
    }
    if ((!lazy && in_channels <= 0) || out_channels <= 0) {
        bk_set_error("%s: in_channels=%" PRId64 " and out_channels=%" PRId64 " must be positive", name,
                     in_channels, out_channels);
        return false;
    }
    if (kernel[0] <= 0 || kernel[1] <= 0) {
        bk_set_error("%s(%" PRId64 ", %" PRId64 "): kernel_size (%" PRId64 ", %" PRId64 ") must be positive",
                     name, in_channels, out_channels, kernel[0], kernel[1]);
        return false;
    }
    if (o->stride[0] <= 0 || o->stride[1] <= 0) {
        bk_set_error("%s(%" PRId64 ", %" PRId64 "): stride (%" PRId64 ", %" PRId64 ") must be positive", name,
                     in_channels, out_channels, o->stride[0], o->stride[1]);
        return false;
    }
    if (o->padding[0] < 0 || o->padding[1] < 0) {
        bk_set_error("%s(%" PRId64 ", %" PRId64 "): padding (%" PRId64 ", %" PRId64 ") must be non-negative",
                     name, in_channels, out_channels, o->padding[0], o->padding[1]);
        return false;
    }
    if (o->dilation[0] <= 0 || o->dilation[1] <= 0) {
        bk_set_error("%s(%" PRId64 ", %" PRId64 "): dilation (%" PRId64 ", %" PRId64 ") must be positive",
                     name, in_channels, out_channels, o->dilation[0], o->dilation[1]);
        return false;
    }
    if (o->groups <= 0 || in_channels % o->groups || out_channels % o->groups) {
        bk_set_error("%s(%" PRId64 ", %" PRId64 "): groups=%" PRId64
                     " must be positive and divide both in_channels and out_channels",
                     name, in_channels, out_channels, o->groups);
        return false;
    }
    return true;
}

/* Registers weight (O, C/g, KH, KW) and bias (O) and draws them as torch's
 * reset_parameters. false on failure (a shape whose size overflows). */
static bool conv2d_make_params(conv2d *self, int64_t in_channels) {
    self->in_channels = in_channels;
    int64_t O = self->out_channels, cg = in_channels / self->opts.groups;
    self->weight = bk_module_param(&self->base, "weight", BK_SHAPE(O, cg, self->kernel[0], self->kernel[1]));
    if (self->has_bias) self->bias = bk_module_param(&self->base, "bias", BK_SHAPE(O));
    if (!self->weight || (self->has_bias && !self->bias)) return false;
    double fan_in = (double)cg * (double)self->kernel[0] * (double)self->kernel[1];
    float bound = (float)(1.0 / sqrt(fan_in));
    bk_fill_uniform(self->weight, NULL, -bound, bound);
    if (self->has_bias) bk_fill_uniform(self->bias, NULL, -bound, bound);
    return true;
}

/* A Conv2d or LazyConv2d block with its settings, no parameters yet. */
static conv2d *conv2d_alloc(const bk_module_class *cls, int64_t out_channels, const int64_t kernel[2],
                            bk_conv2d_opts o, bool bias) {
    conv2d *self = (conv2d *)bk_module_new(cls, sizeof(conv2d));
    if (!self) return NULL;
    self->out_channels = out_channels;
    self->kernel[0] = kernel[0], self->kernel[1] = kernel[1];
    self->opts = o;
    self->has_bias = bias;
    return self;
}

bk_module *bk_nn_conv2d_ex(int64_t in_channels, int64_t out_channels, const int64_t kernel[2],
                           bk_conv2d_opts o, bool bias) {
    if (!conv2d_settings_ok("Conv2d", in_channels, out_channels, kernel, &o, false)) return NULL;
    conv2d *self = conv2d_alloc(&CONV2D, out_channels, kernel, o, bias);
    if (!self) return NULL;
    if (!conv2d_make_params(self, in_channels)) {
        bk_module_free(&self->base);
        return NULL;
    }
    return &self->base;
}

/* LazyConv2d's first forward: in_channels is dim 1 of x (N, C, H, W). */
static bool lazy_conv2d_init(bk_module *m, const bk_tensor *x) {
    conv2d *self = (conv2d *)m;
    char s[128];
    if (x->ndim != 4) {
        bk_set_error("LazyConv2d: cannot infer in_channels from input %s: expected 4D (N, C, H, W)",
                     bk_shape_str(x, s, sizeof s));
        return false;
    }
    int64_t C = x->shape[1];
    if (C <= 0 || C % self->opts.groups) {
        bk_set_error("LazyConv2d: in_channels=%" PRId64
                     " (dim 1 of input %s) must be positive and divisible by "
                     "groups=%" PRId64,
                     C, bk_shape_str(x, s, sizeof s), self->opts.groups);
        return false;
    }
    if (conv2d_make_params(self, C)) return true;
    self->in_channels = 0;
    self->weight = self->bias = NULL;
    return false;
}

static bk_tensor *lazy_conv2d_forward(bk_module *m, bk_tensor *x) {
    return bk__lazy_forward(m, x, lazy_conv2d_init, &CONV2D);
}

static const bk_module_class LAZY_CONV2D = {"LazyConv2d", lazy_conv2d_forward, conv2d_repr, NULL};

bk_module *bk_nn_lazy_conv2d(int64_t out_channels, const int64_t kernel[2], bk_conv2d_opts o, bool bias) {
    if (!conv2d_settings_ok("LazyConv2d", 0, out_channels, kernel, &o, true)) return NULL;
    conv2d *self = conv2d_alloc(&LAZY_CONV2D, out_channels, kernel, o, bias);
    if (!self) return NULL;
    self->base.lazy = true;
    return &self->base;
}

bk_module *bk_nn_conv2d(int64_t in_channels, int64_t out_channels, int64_t kernel_size, int64_t stride,
                        int64_t padding) {
    bk_conv2d_opts o = BK_CONV2D_DEFAULTS;
    o.stride[0] = o.stride[1] = stride;
    o.padding[0] = o.padding[1] = padding;
    return bk_nn_conv2d_ex(in_channels, out_channels, (const int64_t[2]){kernel_size, kernel_size}, o, true);
}
