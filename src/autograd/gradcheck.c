/* gradcheck.c - finite-difference verification of autograd (torch.autograd.gradcheck).
 *
 * The scalar checked is L = sum(f(x) * w) with a fixed random w, so every output element
 * contributes with a different weight. Numerical derivatives use central differences,
 * (L(x + eps) - L(x - eps)) / 2 eps, with L accumulated in double. The forward itself runs
 * in float32, so eps must be large enough that rounding (~1e-7 relative) stays well below
 * the step: 1e-3 with atol/rtol around 1e-2 is the usual choice for float32.
 */
#include "internal.h"

#include <math.h>

static double weighted_sum(const bk_tensor *y, const float *w) {
    double s = 0;
    for (int64_t i = 0; i < y->numel; i++) s += (double)y->data[i] * (double)w[i];
    return s;
}

double bk_gradcheck(bk_gradcheck_fn f, bk_tensor *const *inputs, int n, void *ud, double eps, double atol,
                    double rtol, FILE *report) {
    if (!f || n <= 0 || !inputs || !bk__inputs_ok("gradcheck", n, inputs)) {
        if (!bk__error_pending()) bk_set_error("gradcheck: invalid arguments");
        return -1;
    }
    if (!(eps > 0) || !(atol >= 0) || !(rtol >= 0)) { /* NaN fails these too */
        bk_set_error("gradcheck: eps=%g must be positive, atol=%g and rtol=%g non-negative", eps, atol, rtol);
        return -1;
    }
    bool prev = bk_set_grad_enabled(true);
    double worst = 0;
    for (int i = 0; i < n; i++)
        if (inputs[i]->grad) bk_fill(inputs[i]->grad, 0.0f);
    bk_tensor *y = f(inputs, n, ud);
    if (!y) goto fail;
    /* the weights w, fixed for all evaluations */
    bk_rng rng;
    bk_rng_seed(&rng, 12345);
    bk_tensor *w = bk_rand_rng(&rng, y->ndim, y->shape);
    if (!w) goto fail;
    for (int64_t i = 0; i < w->numel; i++) w->data[i] = 2.0f * w->data[i] - 1.0f;
    if (y->requires_grad && bk_backward_ex(y, w, false) != 0) goto fail;
    bk_set_grad_enabled(false);
    int shown = 0;
    for (int k = 0; k < n; k++) {
        bk_tensor *x = inputs[k];
        if (!x->requires_grad) continue;
        for (int64_t i = 0; i < x->numel; i++) {
            float orig = x->data[i];
            /* Each L is taken before the next perturbation: f may return a view of its
             * input (reshape, flatten, identity), whose values change with x. */
            x->data[i] = (float)(orig + eps);
            bk_tensor *yp = f(inputs, n, ud);
            double lp = yp ? weighted_sum(yp, w->data) : 0;
            x->data[i] = (float)(orig - eps);
            bk_tensor *ym = f(inputs, n, ud);
            double lm = ym ? weighted_sum(ym, w->data) : 0;
            x->data[i] = orig;
            if (!yp || !ym) goto fail;
            /* use the actually representable step, so rounding of x +- eps doesn't bias */
            double h = (double)(float)(orig + eps) - (double)(float)(orig - eps);
            double num = (lp - lm) / h;
            double ana = x->grad ? x->grad->data[i] : 0.0;
            double err = fabs(ana - num) / (atol + rtol * fabs(num));
            if (!(err <= 1) && report && shown < 5) {
                fprintf(report, "    gradcheck: input %d element %lld: autograd %.8g, numeric %.8g\n", k,
                        (long long)i, ana, num);
                shown++;
            }
            if (!(err <= worst)) worst = err;
        }
    }
    bk_set_grad_enabled(prev);
    return worst;
fail:
    bk_set_grad_enabled(prev);
    bk__error_prefix("gradcheck");
    return -1;
}
