/* upsample.c - nn.Upsample(size, scale_factor, mode, align_corners) on (N, C, H, W) images:
 * F.interpolate with the block's settings (see bk_interpolate in brick/ops.h).
 *   (N, C, H, W) -> (N, C, OH, OW), OH = size[0] or floor(H scale_factor[0]).
 * No parameters. The settings are checked when the block is made.
 */
#include "internal.h"
#include "nn/pyrepr.h"

#include <inttypes.h>

typedef struct upsample {
    bk_module base;
    bk_interp_opts opts;
} upsample;

static bk_tensor *upsample_forward(bk_module *m, bk_tensor *x) {
    return bk_interpolate(x, ((upsample *)m)->opts); // (N, C, H, W) -> (N, C, OH, OW)
}

/* torch 1.13: "scale_factor=2.0, mode=nearest" or "size=(4, 6), mode=bilinear" (align_corners
 * is not printed); one number where both dims agree. */
static void upsample_repr(const bk_module *m, char *buf, size_t n) {
    const bk_interp_opts *o = &((const upsample *)m)->opts;
    const char *mode = o->mode == BK_INTERP_NEAREST ? "nearest" : "bilinear";
    if (o->size[0] > 0) {
        if (o->size[0] == o->size[1]) snprintf(buf, n, "size=%" PRId64 ", mode=%s", o->size[0], mode);
        else snprintf(buf, n, "size=(%" PRId64 ", %" PRId64 "), mode=%s", o->size[0], o->size[1], mode);
        return;
    }
    char a[32], b[32];
    py_float_repr((float)o->scale_factor[0], a, sizeof a);
    py_float_repr((float)o->scale_factor[1], b, sizeof b);
    if (o->scale_factor[0] == o->scale_factor[1]) snprintf(buf, n, "scale_factor=%s, mode=%s", a, mode);
    else snprintf(buf, n, "scale_factor=(%s, %s), mode=%s", a, b, mode);
}

static const bk_module_class UPSAMPLE = {"Upsample", upsample_forward, upsample_repr, NULL};

bk_module *bk_nn_upsample(bk_interp_opts opts) {
    if (!bk__interp_opts_ok("Upsample", opts)) return NULL;
    upsample *self = (upsample *)bk_module_new(&UPSAMPLE, sizeof(upsample));
    if (!self) return NULL;
    self->opts = opts;
    return &self->base;
}
