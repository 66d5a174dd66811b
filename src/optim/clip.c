/* clip.c - torch.nn.utils.clip_grad_norm_ and clip_grad_value_ (1.13) over the gradients
 * of a module's trainable parameters (those without a gradient are skipped, as torch skips
 * p.grad None).
 */
#include "optim.h"

#include <math.h>

static bk_param_list *params_of(const bk_module *m, const char *who) {
    if (!bk__module_ok(m, who)) return NULL;
    bk_param_list *l = bk_module_named(m, BK_PARAMS);
    if (!l) bk__error_prefix("%s", who);
    return l;
}

/* The gradient of parameter i of l, or NULL when it has none or is frozen. */
static bk_tensor *grad_of(const bk_param_list *l, int i) {
    return l->trainable[i] ? l->tensors[i]->grad : NULL;
}

/* A p-norm accumulated in double: the sum of |x|^p, or for p = inf the max of |x|, where
 * NaN propagates (a plain max would drop it, torch's does not). */
static double norm_add(double acc, double x, double p) {
    double a = fabs(x);
    if (isinf(p)) return isnan(a) || isnan(acc) ? NAN : a > acc ? a : acc;
    return acc + (p == 2.0 ? a * a : pow(a, p));
}
static float norm_end(double acc, double p) {
    return (float)(isinf(p) ? acc : p == 2.0 ? sqrt(acc) : pow(acc, 1.0 / p));
}

double bk_clip_grad_norm(bk_module *m, double max_norm, double norm_type, bool error_if_nonfinite) {
    if (!(max_norm >= 0.0) || !(norm_type > 0.0)) {
        bk_set_error("clip_grad_norm: max_norm=%g must be >= 0 and norm_type=%g > 0 (inf for the max norm)",
                     max_norm, norm_type);
        return NAN;
    }
    bk_param_list *l = params_of(m, "clip_grad_norm");
    if (!l) return NAN;
    /* torch: the norm of the stacked per-gradient norms, each a float32 */
    double acc = 0.0;
    for (int j = 0; j < l->n; j++) {
        const bk_tensor *g = grad_of(l, j);
        if (!g) continue;
        double gacc = 0.0;
        for (int64_t i = 0; i < g->numel; i++) gacc = norm_add(gacc, g->data[i], norm_type);
        acc = norm_add(acc, norm_end(gacc, norm_type), norm_type);
    }
    float total = norm_end(acc, norm_type); /* 0 without gradients: torch returns tensor(0.) */
    if (error_if_nonfinite && !isfinite(total)) {
        bk_set_error(
            "clip_grad_norm: the total norm of order %g of the gradients is %g, so they cannot be clipped "
            "(they are unchanged; error_if_nonfinite=false scales them by it anyway)",
            norm_type, (double)total);
        bk_param_list_free(l);
        return NAN;
    }
    /* max_norm / (total + 1e-6) in float32 as torch forms it (a reciprocal, then times
     * max_norm), clamped to at most 1 (NaN stays NaN); every gradient is multiplied by it */
    float coef = (1.0f / (total + 1e-6f)) * (float)max_norm;
    if (coef > 1.0f) coef = 1.0f;
    for (int j = 0; j < l->n; j++) {
        bk_tensor *g = grad_of(l, j);
        if (!g) continue;
        float *G = g->data;
        BK_MAP(g->numel, OPTIM_PARALLEL_MIN, G[i] *= coef);
    }
    bk_param_list_free(l);
    return total;
}

int bk_clip_grad_value(bk_module *m, double clip_value) {
    if (!(clip_value >= 0.0)) {
        bk_set_error("clip_grad_value: clip_value=%g must be >= 0", clip_value);
        return -1;
    }
    bk_param_list *l = params_of(m, "clip_grad_value");
    if (!l) return -1;
    float hi = (float)clip_value, lo = -hi;
    for (int j = 0; j < l->n; j++) {
        bk_tensor *g = grad_of(l, j);
        if (!g) continue;
        float *G = g->data;
        /* torch's clamp: NaN stays NaN */
        BK_MAP(g->numel, OPTIM_PARALLEL_MIN, G[i] = G[i] < lo ? lo : G[i] > hi ? hi : G[i]);
    }
    bk_param_list_free(l);
    return 0;
}
