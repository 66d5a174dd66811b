/* pool.c - the pooling blocks: nn.MaxPool2d, nn.AvgPool2d, nn.MaxPool1d, nn.AvgPool1d and
 * nn.AdaptiveAvgPool2d.
 *
 * N = batch, C = channels, H, W (L for the 1-d blocks, which run the 2-d ops on a height-1
 * view). Kernel, stride and padding per dim (the _ex constructors) with dilation and
 * ceil_mode for max pooling, ceil_mode and count_include_pad for average pooling; stride 0
 * means stride = kernel_size (torch's stride=None). Settings are checked when the block is
 * made; the input's rank and size are checked by the pooling ops. No parameters or buffers.
 */
#include "internal.h"

#include <inttypes.h>

typedef struct pool2d {
    bk_module base;
    int dims;                          /* 1: MaxPool1d / AvgPool1d (height-1 views), 2 */
    bk_pool2d_opts opts;               /* MaxPool, AvgPool (1-d: the width's settings) */
    int64_t dilation[2];               /* MaxPool */
    bool ceil_mode, count_include_pad; /* count_include_pad: AvgPool */
    int64_t out_h, out_w;              /* AdaptiveAvgPool2d */
} pool2d;

/* A 1-d block's (N, C, L) input as (N, C, 1, L); NULL (with an error) for another rank. */
static bk_tensor *as_2d(const bk_module *m, bk_tensor *x) {
    if (((const pool2d *)m)->dims == 2) return x;
    if (x->ndim != 3) {
        char s[128];
        bk_set_error("%s: expected a 3-d input (N, C, L), got %s", m->cls->name,
                     bk_shape_str(x, s, sizeof s));
        return NULL;
    }
    return bk_reshape(x, 4, (int64_t[]){x->shape[0], x->shape[1], 1, x->shape[2]});
}

/* (N, C, 1, OL) back to (N, C, OL) for a 1-d block */
static bk_tensor *from_2d(const bk_module *m, bk_tensor *y) {
    if (((const pool2d *)m)->dims == 2 || !y) return y;
    return bk_reshape(y, 3, (int64_t[]){y->shape[0], y->shape[1], y->shape[3]});
}

static bk_tensor *max_pool_forward(bk_module *m, bk_tensor *x) {
    const pool2d *p = (const pool2d *)m; // (N, C, H, W) -> (N, C, OH, OW), or (N, C, L) -> (N, C, OL)
    return from_2d(m, bk_max_pool2d_ex(as_2d(m, x), p->opts, p->dilation, p->ceil_mode));
}

static bk_tensor *avg_pool_forward(bk_module *m, bk_tensor *x) {
    const pool2d *p = (const pool2d *)m;
    return from_2d(m, bk_avg_pool2d_ex(as_2d(m, x), p->opts, p->ceil_mode, p->count_include_pad));
}

static bk_tensor *adaptive_avg_pool_forward(bk_module *m, bk_tensor *x) {
    const pool2d *p = (const pool2d *)m;
    return bk_adaptive_avg_pool2d(x, p->out_h, p->out_w); // (N, C, H, W) -> (N, C, out_h, out_w)
}

/* A setting as torch prints it: MaxPool's as given (an int where both dims agree here, else
 * a tuple), AvgPool1d's as a 1-tuple "(3,)". v points at the 2-d pair; a 1-d block's
 * setting is v[1]. */
static void setting_str(const pool2d *p, const int64_t *v, bool tuple_1d, char *buf, size_t n) {
    if (p->dims == 1) snprintf(buf, n, tuple_1d ? "(%" PRId64 ",)" : "%" PRId64, v[1]);
    else if (v[0] == v[1]) snprintf(buf, n, "%" PRId64, v[0]);
    else snprintf(buf, n, "(%" PRId64 ", %" PRId64 ")", v[0], v[1]);
}

static void max_pool_repr(const bk_module *m, char *buf, size_t n) {
    const pool2d *p = (const pool2d *)m;
    char k[48], s[48], pad[48], d[48];
    setting_str(p, p->opts.kernel, false, k, sizeof k);
    setting_str(p, p->opts.stride, false, s, sizeof s);
    setting_str(p, p->opts.padding, false, pad, sizeof pad);
    setting_str(p, p->dilation, false, d, sizeof d);
    snprintf(buf, n, "kernel_size=%s, stride=%s, padding=%s, dilation=%s, ceil_mode=%s", k, s, pad, d,
             p->ceil_mode ? "True" : "False");
}

/* torch prints AvgPool's kernel, stride and padding only */
static void avg_pool_repr(const bk_module *m, char *buf, size_t n) {
    const pool2d *p = (const pool2d *)m;
    char k[48], s[48], pad[48];
    setting_str(p, p->opts.kernel, true, k, sizeof k);
    setting_str(p, p->opts.stride, true, s, sizeof s);
    setting_str(p, p->opts.padding, true, pad, sizeof pad);
    snprintf(buf, n, "kernel_size=%s, stride=%s, padding=%s", k, s, pad);
}

static void adaptive_avg_pool_repr(const bk_module *m, char *buf, size_t n) {
    const pool2d *p = (const pool2d *)m;
    snprintf(buf, n, "output_size=(%" PRId64 ", %" PRId64 ")", p->out_h, p->out_w);
}

static const bk_module_class MAX_POOL2D = {"MaxPool2d", max_pool_forward, max_pool_repr, NULL};
static const bk_module_class AVG_POOL2D = {"AvgPool2d", avg_pool_forward, avg_pool_repr, NULL};
static const bk_module_class MAX_POOL1D = {"MaxPool1d", max_pool_forward, max_pool_repr, NULL};
static const bk_module_class AVG_POOL1D = {"AvgPool1d", avg_pool_forward, avg_pool_repr, NULL};
static const bk_module_class ADAPTIVE_AVG_POOL2D = {"AdaptiveAvgPool2d", adaptive_avg_pool_forward,
                                                    adaptive_avg_pool_repr, NULL};

/* Checks the settings (per dim; a 1-d block's are in dim 1, dim 0 is 1, 1, 0, 1) and makes
 * the block. Stride 0 means stride = kernel_size. */
static bk_module *pool_new(const bk_module_class *cls, int dims, bk_pool2d_opts o, const int64_t dilation[2],
                           bool ceil_mode, bool count_include_pad) {
    for (int d = 0; d < 2; d++) {
        if (o.kernel[d] <= 0 || o.stride[d] < 0 || o.padding[d] < 0 || dilation[d] <= 0) {
            bk_set_error("%s: kernel_size=%" PRId64 " must be positive, stride=%" PRId64
                         " positive (or 0 for stride = kernel_size), padding=%" PRId64
                         " non-negative and dilation=%" PRId64 " positive",
                         cls->name, o.kernel[d], o.stride[d], o.padding[d], dilation[d]);
            return NULL;
        }
        if (o.padding[d] > o.kernel[d] / 2) { /* 2 * padding > kernel, without overflow */
            bk_set_error("%s: padding=%" PRId64 " should be at most half of kernel_size=%" PRId64, cls->name,
                         o.padding[d], o.kernel[d]);
            return NULL;
        }
        if (o.stride[d] == 0) o.stride[d] = o.kernel[d];
    }
    pool2d *p = (pool2d *)bk_module_new(cls, sizeof(pool2d));
    if (!p) return NULL;
    p->dims = dims, p->opts = o, p->ceil_mode = ceil_mode, p->count_include_pad = count_include_pad;
    p->dilation[0] = dilation[0], p->dilation[1] = dilation[1];
    return &p->base;
}

static const int64_t NO_DILATION[2] = {1, 1};

static bk_pool2d_opts square(int64_t kernel_size, int64_t stride, int64_t padding) {
    return (bk_pool2d_opts){{kernel_size, kernel_size}, {stride, stride}, {padding, padding}};
}

/* the 1-d settings as the width's, with a height-1 kernel */
static bk_pool2d_opts along_width(int64_t kernel_size, int64_t stride, int64_t padding) {
    return (bk_pool2d_opts){{1, kernel_size}, {1, stride}, {0, padding}};
}

bk_module *bk_nn_max_pool2d(int64_t kernel_size, int64_t stride, int64_t padding) {
    return pool_new(&MAX_POOL2D, 2, square(kernel_size, stride, padding), NO_DILATION, false, true);
}

bk_module *bk_nn_avg_pool2d(int64_t kernel_size, int64_t stride, int64_t padding) {
    return pool_new(&AVG_POOL2D, 2, square(kernel_size, stride, padding), NO_DILATION, false, true);
}

bk_module *bk_nn_max_pool2d_ex(bk_pool2d_opts opts, const int64_t dilation[2], bool ceil_mode) {
    if (!dilation) {
        bk_set_error("MaxPool2d: dilation is NULL");
        return NULL;
    }
    return pool_new(&MAX_POOL2D, 2, opts, dilation, ceil_mode, true);
}

bk_module *bk_nn_avg_pool2d_ex(bk_pool2d_opts opts, bool ceil_mode, bool count_include_pad) {
    return pool_new(&AVG_POOL2D, 2, opts, NO_DILATION, ceil_mode, count_include_pad);
}

bk_module *bk_nn_max_pool1d(int64_t kernel_size, int64_t stride, int64_t padding, int64_t dilation,
                            bool ceil_mode) {
    return pool_new(&MAX_POOL1D, 1, along_width(kernel_size, stride, padding),
                    (const int64_t[2]){1, dilation}, ceil_mode, true);
}

bk_module *bk_nn_avg_pool1d(int64_t kernel_size, int64_t stride, int64_t padding, bool ceil_mode,
                            bool count_include_pad) {
    return pool_new(&AVG_POOL1D, 1, along_width(kernel_size, stride, padding), NO_DILATION, ceil_mode,
                    count_include_pad);
}

bk_module *bk_nn_adaptive_avg_pool2d(int64_t out_h, int64_t out_w) {
    if (out_h <= 0 || out_w <= 0) {
        bk_set_error("AdaptiveAvgPool2d: output_size (%" PRId64 ", %" PRId64 ") must be positive", out_h,
                     out_w);
        return NULL;
    }
    pool2d *p = (pool2d *)bk_module_new(&ADAPTIVE_AVG_POOL2D, sizeof(pool2d));
    if (!p) return NULL;
    p->out_h = out_h;
    p->out_w = out_w;
    return &p->base;
}
