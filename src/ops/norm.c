/* norm.c - batch normalisation (over N and the spatial dims, per channel) and layer
 * normalisation (over the trailing dims), each with affine weight and bias.
 *
 *   xhat = (x - mean) / sqrt(var + eps),  y = weight xhat + bias,  var biased (divide by n)
 *   dx = invstd (dxhat - mean(dxhat) - xhat mean(dxhat xhat)),  dxhat = dy weight
 * (in batch norm's eval mode mean/var are constants and dx = dy weight invstd).
 * Statistics are accumulated in double.
 */
#include "internal.h"

#include <inttypes.h>
#include <math.h>

typedef struct norm_params {
    int64_t outer, n, inner; /* groups of n elements normalised together, see below */
    bool batch;              /* batch norm: groups are channels; layer norm: rows */
    bool use_batch_stats;    /* batch norm training mode */
    float *mean, *invstd;    /* per group (arena) */
    int64_t groups;
} norm_params;

/* Element e of group g: batch norm views x as (N, C, S): group c holds x[i, c, s] for all i, s
 * (n = N S); layer norm views x as (R, D): group r holds x[r, :] (n = D). */
static inline int64_t elem(const norm_params *p, int64_t g, int64_t e) {
    if (!p->batch) return g * p->n + e;
    int64_t S = p->inner, i = e / S, s = e % S;
    return (i * p->groups + g) * S + s;
}

static void norm_backward(bk_node *node) {
    const norm_params *p = bk_node_params(node);
    const bk_tensor *x = bk_node_input(node, 0), *w = bk_node_input(node, 1);
    const float *G = bk_node_grad_output(node)->data, *X = x->data;
    bk_tensor *dx = bk_node_grad_input(node, 0), *dw = bk_node_grad_input(node, 1);
    bk_tensor *db = bk_node_grad_input(node, 2);
    int64_t D = p->batch ? 1 : p->n; /* layer norm: weight per element of the row */
    for (int64_t g = 0; g < p->groups; g++) {
        float mu = p->mean[g], is = p->invstd[g];
        double s1 = 0, s2 = 0; /* sum dxhat, sum dxhat xhat */
        double sw = 0, sb = 0;   /* batch norm: this channel's dweight and dbias, n terms */
        for (int64_t e = 0; e < p->n; e++) {
            int64_t k = elem(p, g, e);
            float xh = (X[k] - mu) * is;
            float wv = p->batch ? w->data[g] : w->data[e % D];
            float dxh = G[k] * wv;
            s1 += dxh;
            s2 += (double)dxh * xh;
            if (p->batch) {
                sw += (double)G[k] * xh;
                sb += G[k];
            } else { /* layer norm: one term per row, summed over the rows (as torch does) */
                if (dw) dw->data[e] += G[k] * xh;
                if (db) db->data[e] += G[k];
            }
        }
        if (p->batch && dw) dw->data[g] += (float)sw;
        if (p->batch && db) db->data[g] += (float)sb;
        if (!dx) continue;
        float m1 = (float)(s1 / (double)p->n), m2 = (float)(s2 / (double)p->n);
        for (int64_t e = 0; e < p->n; e++) {
            int64_t k = elem(p, g, e);
            float wv = p->batch ? w->data[g] : w->data[e % D];
            float dxh = G[k] * wv;
            if (p->use_batch_stats) {
                float xh = (X[k] - mu) * is;
                dx->data[k] += is * (dxh - m1 - xh * m2);
            } else {
                dx->data[k] += is * dxh;
            }
        }
    }
}

static const bk_op OP_BATCH_NORM = {"batch_norm", norm_backward};
static const bk_op OP_LAYER_NORM = {"layer_norm", norm_backward};

/* Normalises with the given or computed statistics and records the op. */
static bk_tensor *normalize(const bk_op *op, norm_params *p, bk_tensor *x, bk_tensor *w, bk_tensor *b,
                            const float *fixed_mean, const float *fixed_var, float eps, double *var_out) {
    bk_arena *a = bk_arena_current();
    p->mean = bk__arena_alloc(a, sizeof(float) * (size_t)(p->groups ? p->groups : 1));
    p->invstd = bk__arena_alloc(a, sizeof(float) * (size_t)(p->groups ? p->groups : 1));
    bk_tensor *y = bk__tensor_arena(x->ndim, x->shape, false);
    if (!p->mean || !p->invstd || !y) return NULL;
    const float *X = x->data;
#pragma omp parallel for schedule(static) if (x->numel > 65536)
    for (int64_t g = 0; g < p->groups; g++) {
        double mu, var;
        if (fixed_mean) {
            mu = fixed_mean[g];
            var = fixed_var[g];
        } else {
            double s = 0, ss = 0;
            for (int64_t e = 0; e < p->n; e++) s += X[elem(p, g, e)];
            mu = s / (double)p->n;
            for (int64_t e = 0; e < p->n; e++) {
                double d = X[elem(p, g, e)] - mu;
                ss += d * d;
            }
            var = ss / (double)p->n;
            if (var_out) var_out[g] = var;
        }
        p->mean[g] = (float)mu;
        p->invstd[g] = (float)(1.0 / sqrt(var + eps));
        float m = p->mean[g], is = p->invstd[g];
        for (int64_t e = 0; e < p->n; e++) {
            int64_t k = elem(p, g, e);
            float wv = p->batch ? w->data[g] : w->data[e];
            float bv = p->batch ? b->data[g] : b->data[e];
            y->data[k] = (X[k] - m) * is * wv + bv;
        }
    }
    bk_tensor *in[3] = {x, w, b};
    return bk_op_record(op, y, 3, in, p, sizeof *p);
}

bk_tensor *bk_batch_norm(bk_tensor *x, bk_tensor *running_mean, bk_tensor *running_var,
                         bk_tensor *weight, bk_tensor *bias, bool training, float momentum, float eps) {
    bk_tensor *args[5] = {x, running_mean, running_var, weight, bias}; /* numbered as in the call */
    if (!bk__inputs_ok("batch_norm", 5, args)) return NULL;
    bk_tensor *in[5] = {x, weight, bias, running_mean, running_var};
    char s1[128], s2[128];
    if (x->ndim < 2) {
        bk_set_error("batch_norm: expected an input (N, C, ...) of at least 2 dimensions, got %s",
                     bk_shape_str(x, s1, sizeof s1));
        return NULL;
    }
    int64_t C = x->shape[1];
    for (int i = 1; i < 5; i++)
        if (in[i]->ndim != 1 || in[i]->shape[0] != C) {
            bk_set_error("batch_norm: input %s has %" PRId64 " channels, but %s has shape %s",
                         bk_shape_str(x, s1, sizeof s1), C,
                         i == 1 ? "weight" : i == 2 ? "bias" : i == 3 ? "running_mean" : "running_var",
                         bk_shape_str(in[i], s2, sizeof s2));
            return NULL;
        }
    norm_params p = {0, 0, 1, true, training, NULL, NULL, C};
    for (int i = 2; i < x->ndim; i++) p.inner *= x->shape[i];
    p.n = x->shape[0] * p.inner;
    if (training && p.n <= 1) {
        bk_set_error("batch_norm: expected more than 1 value per channel when training, got input %s",
                     bk_shape_str(x, s1, sizeof s1));
        return NULL;
    }
    double *var = NULL;
    if (training) {
        var = bk__arena_alloc(bk_arena_current(), sizeof(double) * (size_t)(C ? C : 1));
        if (!var) return NULL;
    }
    bk_tensor *y = normalize(&OP_BATCH_NORM, &p, x, weight, bias, training ? NULL : running_mean->data,
                             training ? NULL : running_var->data, eps, var);
    if (y && training) { /* running stats: torch uses the unbiased variance here */
        double unbias = (double)p.n / (double)(p.n - 1);
        for (int64_t c = 0; c < C; c++) {
            running_mean->data[c] = (1.0f - momentum) * running_mean->data[c] + momentum * p.mean[c];
            running_var->data[c] = (1.0f - momentum) * running_var->data[c] + momentum * (float)(var[c] * unbias);
        }
    }
    return y;
}

bk_tensor *bk_layer_norm(bk_tensor *x, int n_norm_dims, bk_tensor *weight, bk_tensor *bias, float eps) {
    bk_tensor *in[3] = {x, weight, bias};
    if (!bk__inputs_ok("layer_norm", 3, in)) return NULL;
    char s1[128], s2[128];
    if (n_norm_dims < 1 || n_norm_dims > x->ndim) {
        bk_set_error("layer_norm: cannot normalise over the last %d dims of input %s", n_norm_dims,
                     bk_shape_str(x, s1, sizeof s1));
        return NULL;
    }
    int64_t D = 1;
    for (int i = x->ndim - n_norm_dims; i < x->ndim; i++) D *= x->shape[i];
    for (int i = 1; i < 3; i++) {
        bool ok = in[i]->ndim == n_norm_dims;
        for (int k = 0; ok && k < n_norm_dims; k++) ok = in[i]->shape[k] == x->shape[x->ndim - n_norm_dims + k];
        if (!ok) {
            bk_set_error("layer_norm: %s %s does not match the normalized shape (the last %d dims) of input %s",
                         i == 1 ? "weight" : "bias", bk_shape_str(in[i], s2, sizeof s2), n_norm_dims,
                         bk_shape_str(x, s1, sizeof s1));
            return NULL;
        }
    }
    norm_params p = {0, D, 1, false, true, NULL, NULL, D ? x->numel / D : 0};
    return normalize(&OP_LAYER_NORM, &p, x, weight, bias, NULL, NULL, eps, NULL);
}
