/* batchnorm.c - nn.BatchNorm1d and nn.BatchNorm2d: per-channel normalisation over the
 * batch (and the spatial positions), with an affine weight and bias.
 *
 * N = batch, C = num_features, L = length, H, W.
 *   BatchNorm1d: (N, C) or (N, C, L);  BatchNorm2d: (N, C, H, W).
 * Training: normalises with the batch's mean and (biased) variance, updates
 *   running = (1 - momentum) running + momentum batch_stat (the variance unbiased), and
 *   counts the batch in num_batches_tracked. Eval: normalises with the running statistics.
 * Parameters weight (C) = 1, bias (C) = 0; persistent buffers running_mean (C) = 0,
 * running_var (C) = 1 and num_batches_tracked () = 0: PyTorch's names and order, so state
 * dicts load both ways. torch keeps num_batches_tracked as an int64 scalar; brick tensors
 * are float32 only, so here it is a float32 scalar (exact up to 2^24 batches).
 * Options (bk_norm_opts), as torch's: affine=False has no weight and bias (the op gets
 * constant ones and zeros); track_running_stats=False has no buffers and normalises with
 * the batch's statistics in eval mode too; momentum=None (momentum_none) updates the running
 * statistics as a cumulative average, momentum = 1 / num_batches_tracked (after counting
 * the batch).
 * nn.LazyBatchNorm1d/2d are the same blocks with num_features 0 and no parameters or
 * buffers until the first forward, which takes C from the input's dim 1 and turns them into
 * BatchNorm1d/2d.
 */
#include "internal.h"
#include "nn/pyrepr.h"

#include <inttypes.h>

typedef struct batch_norm {
    bk_module base;
    int64_t num_features;
    bk_norm_opts opts;
    int spatial_dims; /* 1: BatchNorm1d, 2: BatchNorm2d */
    /* borrowed; weight and bias NULL without affine, the buffers NULL without
     * track_running_stats */
    bk_tensor *weight, *bias, *running_mean, *running_var, *num_batches_tracked;
} batch_norm;

static bool batch_norm_rank_fits(const batch_norm *self, const bk_tensor *x) {
    return self->spatial_dims == 1 ? (x->ndim == 2 || x->ndim == 3) : x->ndim == 4;
}

/* x's rank fits the block (an error naming it otherwise). */
static bool batch_norm_rank_ok(const bk_module *m, const bk_tensor *x) {
    const batch_norm *self = (const batch_norm *)m;
    char s[128];
    if (batch_norm_rank_fits(self, x)) return true;
    bk_set_error("%s: expected %s input (got %dD input %s)", m->cls->name,
                 self->spatial_dims == 1 ? "2D or 3D" : "4D", x->ndim, bk_shape_str(x, s, sizeof s));
    return false;
}

/* relu(bn(x) + residual) in one op (bk__batch_norm_act); residual may be NULL */
static bk_tensor *batch_norm_apply(bk_module *m, bk_tensor *x, bk_tensor *residual, bool relu) {
    batch_norm *self = (batch_norm *)m;
    const char *name = m->cls->name;
    char s[128];
    if (!batch_norm_rank_ok(m, x)) return NULL;
    if (x->shape[1] != self->num_features) {
        bk_set_error("%s: expected %" PRId64 " channels (num_features), got %" PRId64 " in input %s", name,
                     self->num_features, x->shape[1], bk_shape_str(x, s, sizeof s));
        return NULL;
    }
    const bk_norm_opts *o = &self->opts;
    int64_t C = self->num_features;
    bk_tensor *w = o->affine ? self->weight : bk_ones(BK_SHAPE(C));
    bk_tensor *b = o->affine ? self->bias : bk_zeros(BK_SHAPE(C));
    bool track = o->track_running_stats, update = m->training && track;
    bk_tensor *mean = track ? self->running_mean : bk_zeros(BK_SHAPE(C)); /* unused or scratch */
    bk_tensor *var = track ? self->running_var : bk_ones(BK_SHAPE(C));
    float momentum = o->momentum;
    if (update && o->momentum_none) momentum = 1.0f / (self->num_batches_tracked->data[0] + 1.0f);
    bk_tensor *y = bk__batch_norm_act(x, mean, var, w, b, m->training || !track, momentum, o->eps, residual,
                                      relu); // same shape as x
    if (y && update) self->num_batches_tracked->data[0] += 1.0f;
    return y;
}

static bk_tensor *batch_norm_forward(bk_module *m, bk_tensor *x) {
    return batch_norm_apply(m, x, NULL, false);
}

static void batch_norm_repr(const bk_module *m, char *buf, size_t n) {
    const batch_norm *self = (const batch_norm *)m;
    bk__norm_repr(self->num_features, &self->opts, buf, n);
}

static const bk_module_class BATCH_NORM1D = {"BatchNorm1d", batch_norm_forward, batch_norm_repr, NULL};
static const bk_module_class BATCH_NORM2D = {"BatchNorm2d", batch_norm_forward, batch_norm_repr, NULL};

/* Registers the parameters and buffers of C channels (self->opts), torch's init. */
static bool batch_norm_make(batch_norm *self, int64_t C) {
    self->num_features = C;
    return bk__norm_register(&self->base, C, &self->opts, &self->weight, &self->bias, &self->running_mean,
                             &self->running_var, &self->num_batches_tracked);
}

/* LazyBatchNorm's first forward: num_features is dim 1 of x. */
static bool lazy_batch_norm_init(bk_module *m, const bk_tensor *x) {
    batch_norm *self = (batch_norm *)m;
    if (!batch_norm_rank_ok(m, x)) return false;
    if (x->shape[1] <= 0) {
        char s[128];
        bk_set_error("%s: num_features (dim 1 of input %s) must be positive", m->cls->name,
                     bk_shape_str(x, s, sizeof s));
        return false;
    }
    if (batch_norm_make(self, x->shape[1])) return true;
    self->num_features = 0;
    self->weight = self->bias = self->running_mean = self->running_var = self->num_batches_tracked = NULL;
    return false;
}

static bk_tensor *lazy_batch_norm_forward(bk_module *m, bk_tensor *x) {
    const batch_norm *self = (const batch_norm *)m;
    return bk__lazy_forward(m, x, lazy_batch_norm_init,
                            self->spatial_dims == 1 ? &BATCH_NORM1D : &BATCH_NORM2D);
}

static const bk_module_class LAZY_BATCH_NORM1D = {"LazyBatchNorm1d", lazy_batch_norm_forward, batch_norm_repr,
                                                  NULL};
static const bk_module_class LAZY_BATCH_NORM2D = {"LazyBatchNorm2d", lazy_batch_norm_forward, batch_norm_repr,
                                                  NULL};

bk_tensor *bk__batch_norm_relu(bk_module *bn, bk_tensor *x, bk_tensor *residual) {
    const batch_norm *self = (const batch_norm *)bn;
    bool fuse = bn && (bn->cls == &BATCH_NORM1D || bn->cls == &BATCH_NORM2D) && !bn->hooks && x &&
                x->magic == BK_TENSOR_MAGIC && batch_norm_rank_fits(self, x) &&
                x->shape[1] == self->num_features;
    if (residual)
        fuse = fuse && residual->magic == BK_TENSOR_MAGIC && residual != x && bk_same_shape(x, residual);
    if (!fuse) {
        bk_tensor *y = bk_forward(bn, x);
        return bk_relu(residual ? bk_add(y, residual) : y);
    }
    bk__block_push(bn); /* names the block in anomaly messages, as bk_forward */
    bk_tensor *y = batch_norm_apply(bn, x, residual, true);
    bk__block_pop();
    return y;
}

/* "6, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True", torch's _NormBase */
void bk__norm_repr(int64_t num_features, const bk_norm_opts *o, char *buf, size_t n) {
    char eps[32], momentum[32];
    py_float_repr(o->eps, eps, sizeof eps);
    if (o->momentum_none) snprintf(momentum, sizeof momentum, "None");
    else py_float_repr(o->momentum, momentum, sizeof momentum);
    snprintf(buf, n, "%" PRId64 ", eps=%s, momentum=%s, affine=%s, track_running_stats=%s", num_features, eps,
             momentum, o->affine ? "True" : "False", o->track_running_stats ? "True" : "False");
}

bool bk__norm_opts_ok(const char *who, int64_t num_features, const bk_norm_opts *o) {
    if (num_features <= 0) {
        bk_set_error("%s: num_features=%" PRId64 " must be positive", who, num_features);
        return false;
    }
    if (!(o->eps >= 0.0f && o->eps < INFINITY) ||
        (!o->momentum_none && !(o->momentum >= 0.0f && o->momentum <= 1.0f))) {
        bk_set_error("%s: eps=%g must be finite and non-negative and momentum=%g in [0, 1]", who,
                     (double)o->eps, (double)o->momentum);
        return false;
    }
    return true;
}

/* The parameters and buffers of a norm block with these options, under torch's names
 * and order, initialised as torch does. false (with an error) on failure. */
bool bk__norm_register(bk_module *m, int64_t C, const bk_norm_opts *o, bk_tensor **weight, bk_tensor **bias,
                       bk_tensor **running_mean, bk_tensor **running_var, bk_tensor **num_batches_tracked) {
    if (o->affine) {
        *weight = bk_module_param(m, "weight", BK_SHAPE(C));
        *bias = bk_module_param(m, "bias", BK_SHAPE(C));
        if (!*weight || !*bias) return false;
        bk_fill(*weight, 1.0f);
    }
    if (o->track_running_stats) {
        *running_mean = bk_module_buffer(m, "running_mean", BK_SHAPE(C), true);
        *running_var = bk_module_buffer(m, "running_var", BK_SHAPE(C), true);
        *num_batches_tracked = bk_module_buffer(m, "num_batches_tracked", 0, NULL, true);
        if (!*running_mean || !*running_var || !*num_batches_tracked) return false;
        bk_fill(*running_var, 1.0f);
    }
    return true;
}

bk_module *bk_nn_batch_norm_opts(int64_t num_features, int ndim_expected, bk_norm_opts o) {
    if (ndim_expected != 1 && ndim_expected != 2) {
        bk_set_error("BatchNorm: ndim_expected must be 1 (BatchNorm1d) or 2 (BatchNorm2d), got %d",
                     ndim_expected);
        return NULL;
    }
    const bk_module_class *cls = ndim_expected == 1 ? &BATCH_NORM1D : &BATCH_NORM2D;
    if (!bk__norm_opts_ok(cls->name, num_features, &o)) return NULL;
    batch_norm *self = (batch_norm *)bk_module_new(cls, sizeof(batch_norm));
    if (!self) return NULL;
    self->opts = o;
    self->spatial_dims = ndim_expected;
    if (!batch_norm_make(self, num_features)) {
        bk_module_free(&self->base);
        return NULL;
    }
    return &self->base;
}

bk_module *bk_nn_lazy_batch_norm(int ndim_expected, bk_norm_opts o) {
    if (ndim_expected != 1 && ndim_expected != 2) {
        bk_set_error(
            "LazyBatchNorm: ndim_expected must be 1 (LazyBatchNorm1d) or 2 (LazyBatchNorm2d), got %d",
            ndim_expected);
        return NULL;
    }
    const bk_module_class *cls = ndim_expected == 1 ? &LAZY_BATCH_NORM1D : &LAZY_BATCH_NORM2D;
    if (!bk__norm_opts_ok(cls->name, 1, &o)) return NULL; /* num_features comes with the first input */
    batch_norm *self = (batch_norm *)bk_module_new(cls, sizeof(batch_norm));
    if (!self) return NULL;
    self->opts = o;
    self->spatial_dims = ndim_expected;
    self->base.lazy = true;
    return &self->base;
}

bk_module *bk_nn_batch_norm_ex(int64_t num_features, float eps, float momentum, int ndim_expected) {
    bk_norm_opts o = BK_BATCH_NORM_DEFAULTS;
    o.eps = eps, o.momentum = momentum;
    return bk_nn_batch_norm_opts(num_features, ndim_expected, o);
}

bk_module *bk_nn_batch_norm1d(int64_t num_features) {
    return bk_nn_batch_norm_ex(num_features, 1e-5f, 0.1f, 1);
}
bk_module *bk_nn_batch_norm2d(int64_t num_features) {
    return bk_nn_batch_norm_ex(num_features, 1e-5f, 0.1f, 2);
}
