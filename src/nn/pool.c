/* pool.c - the pooling blocks: nn.MaxPool2d, nn.AvgPool2d and nn.AdaptiveAvgPool2d.
 *
 * N = batch, C = channels, H, W. Square kernels; stride 0 means stride = kernel_size
 * (torch's stride=None). Settings are checked when the block is made; the input's rank
 * and size are checked by the pooling ops. No parameters or buffers.
 */
#include "internal.h"

#include <inttypes.h>

typedef struct pool2d {
    bk_module base;
    int64_t kernel, stride, padding; /* MaxPool2d, AvgPool2d */
    int64_t out_h, out_w;            /* AdaptiveAvgPool2d */
} pool2d;

static bk_pool2d_opts pool_opts(const pool2d *p) {
    return (bk_pool2d_opts){{p->kernel, p->kernel}, {p->stride, p->stride}, {p->padding, p->padding}};
}

static bk_tensor *max_pool_forward(bk_module *m, bk_tensor *x) {
    return bk_max_pool2d(x, pool_opts((const pool2d *)m)); // (N, C, H, W) -> (N, C, OH, OW)
}

static bk_tensor *avg_pool_forward(bk_module *m, bk_tensor *x) {
    return bk_avg_pool2d(x, pool_opts((const pool2d *)m));
}

static bk_tensor *adaptive_avg_pool_forward(bk_module *m, bk_tensor *x) {
    const pool2d *p = (const pool2d *)m;
    return bk_adaptive_avg_pool2d(x, p->out_h, p->out_w); // (N, C, H, W) -> (N, C, out_h, out_w)
}

/* torch prints the settings as given; brick's are always single ints here */
static void max_pool_repr(const bk_module *m, char *buf, size_t n) {
    const pool2d *p = (const pool2d *)m;
    snprintf(buf, n,
             "kernel_size=%" PRId64 ", stride=%" PRId64 ", padding=%" PRId64 ", dilation=1, ceil_mode=False",
             p->kernel, p->stride, p->padding);
}

static void avg_pool_repr(const bk_module *m, char *buf, size_t n) {
    const pool2d *p = (const pool2d *)m;
    snprintf(buf, n, "kernel_size=%" PRId64 ", stride=%" PRId64 ", padding=%" PRId64, p->kernel, p->stride,
             p->padding);
}

static void adaptive_avg_pool_repr(const bk_module *m, char *buf, size_t n) {
    const pool2d *p = (const pool2d *)m;
    snprintf(buf, n, "output_size=(%" PRId64 ", %" PRId64 ")", p->out_h, p->out_w);
}

static const bk_module_class MAX_POOL2D = {"MaxPool2d", max_pool_forward, max_pool_repr, NULL};
static const bk_module_class AVG_POOL2D = {"AvgPool2d", avg_pool_forward, avg_pool_repr, NULL};
static const bk_module_class ADAPTIVE_AVG_POOL2D = {"AdaptiveAvgPool2d", adaptive_avg_pool_forward,
                                                    adaptive_avg_pool_repr, NULL};

static bk_module *pool_new(const bk_module_class *cls, int64_t kernel, int64_t stride, int64_t padding) {
    if (kernel <= 0 || stride < 0 || padding < 0) {
        bk_set_error("%s: kernel_size=%" PRId64 " must be positive, stride=%" PRId64
                     " positive (or 0 for stride = kernel_size) and padding=%" PRId64 " non-negative",
                     cls->name, kernel, stride, padding);
        return NULL;
    }
    if (padding > kernel / 2) { /* 2 * padding > kernel, without overflow */
        bk_set_error("%s: padding=%" PRId64 " should be at most half of kernel_size=%" PRId64, cls->name,
                     padding, kernel);
        return NULL;
    }
    pool2d *p = (pool2d *)bk_module_new(cls, sizeof(pool2d));
    if (!p) return NULL;
    p->kernel = kernel;
    p->stride = stride ? stride : kernel;
    p->padding = padding;
    return &p->base;
}

bk_module *bk_nn_max_pool2d(int64_t kernel_size, int64_t stride, int64_t padding) {
    return pool_new(&MAX_POOL2D, kernel_size, stride, padding);
}

bk_module *bk_nn_avg_pool2d(int64_t kernel_size, int64_t stride, int64_t padding) {
    return pool_new(&AVG_POOL2D, kernel_size, stride, padding);
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
