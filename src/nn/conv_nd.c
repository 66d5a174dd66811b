/* conv_nd.c - nn.Conv1d, nn.ConvTranspose1d and nn.ConvTranspose2d: the convolutions
 * beside nn.Conv2d (conv2d.c), one block with the settings of all three.
 *
 * N = batch, C = in_channels, O = out_channels, K = kernel (KH x KW in 2-d), g = groups.
 *   Conv1d:          (N, C, L) -> (N, O, OL), weight (O, C/g, K),
 *                    OL = (L + 2 P - D (K - 1) - 1) / S + 1
 *   ConvTranspose1d: (N, C, L) -> (N, O, OL), weight (C, O/g, K),
 *                    OL = (L - 1) S - 2 P + D (K - 1) + output_padding + 1
 *   ConvTranspose2d: (N, C, H, W) -> (N, O, OH, OW), weight (C, O/g, KH, KW), likewise.
 * Parameters weight and bias (O) (optional), PyTorch's names. Init as torch's
 * reset_parameters: kaiming_uniform_(a = sqrt(5)) is U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with
 * fan_in = weight.size(1) times the kernel's size (C/g K for Conv1d, but O/g K for the
 * transposed ones, whose weight is (C, O/g, ...)), and the bias uses the same bound.
 * Settings are checked when the block is made; what depends on the input (its rank and
 * channels, a kernel larger than the padded input) by the ops at forward time.
 */
#include "internal.h"

#include <inttypes.h>
#include <math.h>

typedef struct conv_nd {
    bk_module base;
    int dims; /* 1 or 2 */
    bool transposed;
    int64_t in_channels, out_channels, groups;
    int64_t kernel[2], stride[2], padding[2], output_padding[2], dilation[2]; /* dims entries */
    bk_tensor *weight, *bias; /* borrowed from base's parameter list; bias may be NULL */
} conv_nd;

static bk_tensor *conv_nd_forward(bk_module *m, bk_tensor *x) {
    conv_nd *s = (conv_nd *)m;
    if (s->dims == 2) { // (N, C, H, W) -> (N, O, OH, OW)
        bk_conv_transpose2d_opts o = {{s->stride[0], s->stride[1]},
                                      {s->padding[0], s->padding[1]},
                                      {s->output_padding[0], s->output_padding[1]},
                                      {s->dilation[0], s->dilation[1]},
                                      s->groups};
        return bk_conv_transpose2d(x, s->weight, s->bias, o);
    }
    if (s->transposed) { // (N, C, L) -> (N, O, OL)
        bk_conv_transpose1d_opts o = {s->stride[0], s->padding[0], s->output_padding[0], s->dilation[0],
                                      s->groups};
        return bk_conv_transpose1d(x, s->weight, s->bias, o);
    }
    bk_conv1d_opts o = {s->stride[0], s->padding[0], s->dilation[0], s->groups}; // (N, C, L) -> (N, O, OL)
    return bk_conv1d(x, s->weight, s->bias, o);
}

/* A Python tuple of dims values: "(3,)" or "(3, 3)". */
static void tuple_str(int dims, const int64_t *v, char *buf, size_t n) {
    if (dims == 1) snprintf(buf, n, "(%" PRId64 ",)", v[0]);
    else snprintf(buf, n, "(%" PRId64 ", %" PRId64 ")", v[0], v[1]);
}

static bool all_equal(int dims, const int64_t *v, int64_t x) { return v[0] == x && (dims == 1 || v[1] == x); }

/* torch's _ConvNd.extra_repr: "16, 8, kernel_size=(3,), stride=(2,)" then padding,
 * dilation, output_padding, groups and bias=False where they differ from the defaults. */
static void conv_nd_repr(const bk_module *m, char *buf, size_t n) {
    const conv_nd *s = (const conv_nd *)m;
    char k[48], st[48], t[48];
    tuple_str(s->dims, s->kernel, k, sizeof k);
    tuple_str(s->dims, s->stride, st, sizeof st);
    int w = snprintf(buf, n, "%" PRId64 ", %" PRId64 ", kernel_size=%s, stride=%s", s->in_channels,
                     s->out_channels, k, st);
#define APPEND(...) \
    if (w >= 0 && (size_t)w < n) w += snprintf(buf + w, n - (size_t)w, __VA_ARGS__)
    if (!all_equal(s->dims, s->padding, 0)) {
        tuple_str(s->dims, s->padding, t, sizeof t);
        APPEND(", padding=%s", t);
    }
    if (!all_equal(s->dims, s->dilation, 1)) {
        tuple_str(s->dims, s->dilation, t, sizeof t);
        APPEND(", dilation=%s", t);
    }
    if (!all_equal(s->dims, s->output_padding, 0)) {
        tuple_str(s->dims, s->output_padding, t, sizeof t);
        APPEND(", output_padding=%s", t);
    }
    if (s->groups != 1) APPEND(", groups=%" PRId64, s->groups);
    if (!s->bias) APPEND(", bias=False");
#undef APPEND
}

static const bk_module_class CONV1D = {"Conv1d", conv_nd_forward, conv_nd_repr, NULL};
static const bk_module_class CONV_TRANSPOSE1D = {"ConvTranspose1d", conv_nd_forward, conv_nd_repr, NULL};
static const bk_module_class CONV_TRANSPOSE2D = {"ConvTranspose2d", conv_nd_forward, conv_nd_repr, NULL};

/* Checks the settings in `in` (kernel, stride, padding, output_padding, dilation: dims
 * values each) and makes the block. */
static bk_module *conv_nd_new(const bk_module_class *cls, int dims, bool transposed, int64_t in_channels,
                              int64_t out_channels, const int64_t *const set[5], int64_t groups, bool bias) {
    static const char *names[5] = {"kernel_size", "stride", "padding", "output_padding", "dilation"};
    static const int64_t min[5] = {1, 1, 0, 0, 1};
    if (in_channels <= 0 || out_channels <= 0) {
        bk_set_error("%s: in_channels=%" PRId64 " and out_channels=%" PRId64 " must be positive", cls->name,
                     in_channels, out_channels);
        return NULL;
    }
    for (int i = 0; i < 5; i++)
        for (int d = 0; d < dims; d++)
            if (set[i][d] < min[i]) {
                char t[48];
                tuple_str(dims, set[i], t, sizeof t);
                bk_set_error("%s(%" PRId64 ", %" PRId64 "): %s %s must be %s", cls->name, in_channels,
                             out_channels, names[i], t, min[i] ? "positive" : "non-negative");
                return NULL;
            }
    for (int d = 0; d < dims; d++)
        if (set[3][d] >= set[1][d] && set[3][d] >= set[4][d]) {
            char t[48];
            tuple_str(dims, set[3], t, sizeof t);
            bk_set_error("%s(%" PRId64 ", %" PRId64
                         "): output_padding %s must be smaller than either stride or "
                         "dilation",
                         cls->name, in_channels, out_channels, t);
            return NULL;
        }
    if (groups <= 0 || in_channels % groups || out_channels % groups) {
        bk_set_error("%s(%" PRId64 ", %" PRId64 "): groups=%" PRId64
                     " must be positive and divide both in_channels and out_channels",
                     cls->name, in_channels, out_channels, groups);
        return NULL;
    }
    conv_nd *s = (conv_nd *)bk_module_new(cls, sizeof(conv_nd));
    if (!s) return NULL;
    s->dims = dims, s->transposed = transposed, s->groups = groups;
    s->in_channels = in_channels, s->out_channels = out_channels;
    int64_t *dst[5] = {s->kernel, s->stride, s->padding, s->output_padding, s->dilation};
    for (int i = 0; i < 5; i++) memcpy(dst[i], set[i], sizeof(int64_t) * (size_t)dims);
    int64_t shape[4] = {transposed ? in_channels : out_channels,
                        transposed ? out_channels / groups : in_channels / groups, s->kernel[0],
                        s->kernel[1]};
    s->weight = bk_module_param(&s->base, "weight", 2 + dims, shape);
    if (bias) s->bias = bk_module_param(&s->base, "bias", BK_SHAPE(out_channels));
    if (!s->weight || (bias && !s->bias)) { /* the shape check failed (overflow) */
        bk_module_free(&s->base);
        return NULL;
    }
    double fan_in = (double)shape[1] * (double)s->kernel[0] * (dims == 2 ? (double)s->kernel[1] : 1.0);
    float bound = (float)(1.0 / sqrt(fan_in));
    bk_fill_uniform(s->weight, NULL, -bound, bound);
    if (bias) bk_fill_uniform(s->bias, NULL, -bound, bound);
    return &s->base;
}

bk_module *bk_nn_conv1d(int64_t in_channels, int64_t out_channels, int64_t kernel_size, bk_conv1d_opts o,
                        bool bias) {
    const int64_t op = 0, *set[5] = {&kernel_size, &o.stride, &o.padding, &op, &o.dilation};
    return conv_nd_new(&CONV1D, 1, false, in_channels, out_channels, set, o.groups, bias);
}

bk_module *bk_nn_conv_transpose1d(int64_t in_channels, int64_t out_channels, int64_t kernel_size,
                                  bk_conv_transpose1d_opts o, bool bias) {
    const int64_t *set[5] = {&kernel_size, &o.stride, &o.padding, &o.output_padding, &o.dilation};
    return conv_nd_new(&CONV_TRANSPOSE1D, 1, true, in_channels, out_channels, set, o.groups, bias);
}

bk_module *bk_nn_conv_transpose2d(int64_t in_channels, int64_t out_channels, const int64_t kernel[2],
                                  bk_conv_transpose2d_opts o, bool bias) {
    if (!kernel) {
        bk_set_error("ConvTranspose2d: kernel_size is NULL");
        return NULL;
    }
    const int64_t *set[5] = {kernel, o.stride, o.padding, o.output_padding, o.dilation};
    return conv_nd_new(&CONV_TRANSPOSE2D, 2, true, in_channels, out_channels, set, o.groups, bias);
}
