/* adagrad.c - torch.optim.Adagrad (1.13, dense single-tensor path), per parameter at step t:
 *   g = g + wd p
 *   clr = lr / (1 + (t - 1) lr_decay)        (in double, as torch computes it in Python floats)
 *   sum = sum + g^2                          (sum starts at initial_accumulator_value)
 *   p = p - clr g / (sqrt(sum) + eps)
 */
#include "optim.h"

#include <math.h>

static void adagrad_update(const bk_optim *o, const optim_hyper *h, bk_tensor *p, const bk_tensor *g,
                           bk_tensor **slots) {
    const optim_adagrad *c = &o->cfg.adagrad;
    float *P = p->data, *SUM = slots[1]->data;
    const float *G = g->data;
    double t = slots[0]->data[0];
    float clr = (float)(h->lr / (1.0 + (t - 1.0) * c->lr_decay));
    float wd = (float)h->weight_decay, eps = (float)c->eps;
    BK_MAP(p->numel, OPTIM_PARALLEL_MIN, {
        float gi = G[i];
        if (wd != 0.0f) gi += wd * P[i];
        SUM[i] += gi * gi;
        P[i] += -clr * (gi / (sqrtf(SUM[i]) + eps));
    });
}

static const optim_class ADAGRAD = {"Adagrad", 2, {"step", "sum"}, adagrad_update, NULL}; /* no momentum */

bk_optim *bk_optim_adagrad(bk_module *m, bk_adagrad_config cfg) {
    /* torch's checks: each setting >= 0 (NaN fails them here, as it should) */
    if (!(cfg.lr >= 0.0) || !(cfg.lr_decay >= 0.0) || !(cfg.weight_decay >= 0.0) ||
        !(cfg.initial_accumulator_value >= 0.0) || !(cfg.eps >= 0.0)) {
        bk_set_error(
            "Adagrad: invalid settings lr=%g lr_decay=%g weight_decay=%g initial_accumulator_value=%g eps=%g "
            "(each must be >= 0)",
            cfg.lr, cfg.lr_decay, cfg.weight_decay, cfg.initial_accumulator_value, cfg.eps);
        return NULL;
    }
    if (!bk__module_ok(m, "Adagrad")) return NULL;
    bk_optim *o = bk__optim_new(&ADAGRAD, m);
    if (!o) return NULL;
    o->cfg.adagrad = (optim_adagrad){cfg.lr_decay, cfg.eps};
    o->weight_decay = cfg.weight_decay;
    o->lr = cfg.lr;
    /* torch fills "sum" with initial_accumulator_value when it builds the optimizer; a
     * checkpoint restores it by overwriting the tensor, as any other slot */
    float init = (float)cfg.initial_accumulator_value;
    for (int i = 0; i < o->n; i++) bk_fill(o->state[(size_t)i * 2 + 1], init);
    return o;
}
