/* instancenorm.c - nn.InstanceNorm2d(num_features, eps, momentum, affine=False,
 * track_running_stats=False): each sample's channels normalised on their own, over H W.
 *
 * N = batch, C = num_features, H, W: (N, C, H, W) -> (N, C, H, W).
 * As torch's F.instance_norm: the input viewed as (1, N C, H W) goes through batch norm in
 * training mode (so each of the N C planes uses its own mean and biased variance), with
 * running statistics repeated N times; with track_running_stats, training then sets each
 * running statistic to the mean over the batch of its N updated copies, and eval mode
 * normalises with the running statistics (batch norm in eval mode on the input itself).
 * The affine weight and bias (C) (1 and 0, only with affine) are applied afterwards by
 * broadcasting. Options, parameter and buffer names, init and repr are BatchNorm's
 * (bk__norm_*); num_batches_tracked is registered but, as in torch, never counts.
 */
#include "internal.h"

#include <inttypes.h>

typedef struct instance_norm {
    bk_module base;
    int64_t num_features;
    bk_norm_opts opts;
    /* borrowed; NULL without affine / track_running_stats */
    bk_tensor *weight, *bias, *running_mean, *running_var, *num_batches_tracked;
} instance_norm;

/* (N C) copies of the C values of t (or of `fill` when t is NULL), in the arena */
static bk_tensor *repeat_channels(const bk_tensor *t, int64_t N, int64_t C, float fill) {
    bk_tensor *r = bk_empty(BK_SHAPE(N * C));
    for (int64_t i = 0; r && i < N * C; i++) r->data[i] = t ? t->data[i % C] : fill;
    return r;
}

static bk_tensor *instance_norm_forward(bk_module *m, bk_tensor *x) {
    instance_norm *self = (instance_norm *)m;
    const bk_norm_opts *o = &self->opts;
    char s[128];
    int64_t C = self->num_features;
    if (x->ndim != 4 || x->shape[1] != C) {
        bk_set_error("InstanceNorm2d: expected an input (N, %" PRId64 ", H, W), got %s", C,
                     bk_shape_str(x, s, sizeof s));
        return NULL;
    }
    bool track = o->track_running_stats;
    bk_tensor *y;
    if (track && !m->training) { /* the running statistics, per channel */
        y = bk_batch_norm(x, self->running_mean, self->running_var, bk_ones(BK_SHAPE(C)),
                          bk_zeros(BK_SHAPE(C)), false, o->momentum, o->eps);
        return bk__channel_affine(y, self->weight, self->bias); // (N, C, H, W)
    }
    int64_t N = x->shape[0], NC = N * C;
    bk_tensor *planes = bk_reshape(x, 3, (int64_t[]){1, NC, x->shape[2] * x->shape[3]}); // (1, N C, H W)
    bk_tensor *mean = repeat_channels(track ? self->running_mean : NULL, N, C, 0.0f);
    bk_tensor *var = repeat_channels(track ? self->running_var : NULL, N, C, 1.0f);
    y = bk_batch_norm(planes, mean, var, bk_ones(BK_SHAPE(NC)), bk_zeros(BK_SHAPE(NC)), true, o->momentum,
                      o->eps);
    if (y && track) /* running = the mean over the batch of the N updated copies */
        for (int64_t c = 0; c < C; c++) {
            float sm = 0.0f, sv = 0.0f;
            for (int64_t n = 0; n < N; n++) sm += mean->data[n * C + c], sv += var->data[n * C + c];
            self->running_mean->data[c] = sm / (float)N, self->running_var->data[c] = sv / (float)N;
        }
    y = bk_reshape(y, 4, x->shape);
    return bk__channel_affine(y, self->weight, self->bias); // (N, C, H, W)
}

static void instance_norm_repr(const bk_module *m, char *buf, size_t n) {
    const instance_norm *self = (const instance_norm *)m;
    bk__norm_repr(self->num_features, &self->opts, buf, n);
}

static const bk_module_class INSTANCE_NORM2D = {"InstanceNorm2d", instance_norm_forward, instance_norm_repr,
                                                NULL};

bk_module *bk_nn_instance_norm2d(int64_t num_features, bk_norm_opts o) {
    if (!bk__norm_opts_ok("InstanceNorm2d", num_features, &o)) return NULL;
    if (o.momentum_none) {
        bk_set_error("InstanceNorm2d: momentum=None is BatchNorm's cumulative average; give a momentum");
        return NULL;
    }
    instance_norm *self = (instance_norm *)bk_module_new(&INSTANCE_NORM2D, sizeof(instance_norm));
    if (!self) return NULL;
    self->num_features = num_features;
    self->opts = o;
    if (!bk__norm_register(&self->base, num_features, &o, &self->weight, &self->bias, &self->running_mean,
                           &self->running_var, &self->num_batches_tracked)) {
        bk_module_free(&self->base);
        return NULL;
    }
    return &self->base;
}
