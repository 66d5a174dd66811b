/* adam.c - torch.optim.Adam and AdamW (1.13, single-tensor path), per parameter at step t:
 *   AdamW: p = p (1 - lr wd)          Adam: g = g + wd p
 *   m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;  vmax = max(vmax, v) (amsgrad)
 *   p = p - (lr / (1 - b1^t)) m / (sqrt(v or vmax) / sqrt(1 - b2^t) + eps)
 * The bias corrections are computed in double, as torch does them in Python floats.
 */
#include "optim.h"

#include <math.h>

static void adam_update_impl(const bk_optim *o, const optim_hyper *h, bk_tensor *p, const bk_tensor *g,
                             bk_tensor **slots, bool decoupled) {
    const optim_adam *c = &o->cfg.adam;
    float *P = p->data, *M = slots[1]->data, *V = slots[2]->data, *VMAX = slots[3]->data;
    const float *G = g->data;
    double t = slots[0]->data[0];
    float step_size = (float)(h->lr / (1.0 - pow(c->beta1, t)));
    float bc2_sqrt = (float)sqrt(1.0 - pow(c->beta2, t));
    /* torch rounds each Python-float factor to float32 once: beta, 1 - beta, eps, ... */
    float b1 = (float)c->beta1, b2 = (float)c->beta2, wd = (float)h->weight_decay, eps = (float)c->eps;
    float nb1 = (float)(1.0 - c->beta1), nb2 = (float)(1.0 - c->beta2);
    float decay = decoupled ? (float)(1.0 - h->lr * h->weight_decay) : 1.0f;
    bool amsgrad = c->amsgrad;
    BK_MAP(p->numel, OPTIM_PARALLEL_MIN, {
        float gi = G[i];
        if (decoupled) P[i] *= decay;
        else if (wd != 0.0f) gi += wd * P[i];
        M[i] = M[i] * b1 + nb1 * gi;
        V[i] = V[i] * b2 + nb2 * gi * gi;
        float v = V[i];
        if (amsgrad) {
            if (VMAX[i] < v) VMAX[i] = v;
            v = VMAX[i];
        }
        float denom = sqrtf(v) / bc2_sqrt + eps;
        P[i] += -step_size * (M[i] / denom);
    });
}

static void adam_update(const bk_optim *o, const optim_hyper *h, bk_tensor *p, const bk_tensor *g,
                        bk_tensor **slots) {
    adam_update_impl(o, h, p, g, slots, false);
}
static void adamw_update(const bk_optim *o, const optim_hyper *h, bk_tensor *p, const bk_tensor *g,
                         bk_tensor **slots) {
    adam_update_impl(o, h, p, g, slots, true);
}

/* beta1, whose bias correction 1 - beta1^t uses the current value, as torch's */
static double *adam_momentum(bk_optim *o, double to) {
    (void)to;
    return &o->cfg.adam.beta1;
}

static const optim_class ADAM = {"Adam",
                                 4,
                                 {"step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"},
                                 adam_update,
                                 adam_momentum};
static const optim_class ADAMW = {"AdamW",
                                  4,
                                  {"step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"},
                                  adamw_update,
                                  adam_momentum};

static bk_optim *adam_new(const optim_class *cls, bk_module *m, bk_adam_config cfg) {
    if (!(cfg.lr >= 0.0) || !(cfg.eps >= 0.0) || !(cfg.beta1 >= 0.0 && cfg.beta1 < 1.0) ||
        !(cfg.beta2 >= 0.0 && cfg.beta2 < 1.0) || !(cfg.weight_decay >= 0.0)) {
        bk_set_error(
            "%s: invalid settings lr=%g betas=(%g, %g) eps=%g weight_decay=%g (betas in "
            "[0, 1), the others >= 0)",
            cls->name, cfg.lr, cfg.beta1, cfg.beta2, cfg.eps, cfg.weight_decay);
        return NULL;
    }
    if (!bk__module_ok(m, cls->name)) return NULL;
    bk_optim *o = bk__optim_new(cls, m);
    if (o) {
        o->cfg.adam = (optim_adam){cfg.beta1, cfg.beta2, cfg.eps, cfg.amsgrad};
        o->weight_decay = cfg.weight_decay;
        o->lr = cfg.lr;
    }
    return o;
}

bk_optim *bk_optim_adam(bk_module *m, bk_adam_config cfg) { return adam_new(&ADAM, m, cfg); }
bk_optim *bk_optim_adamw(bk_module *m, bk_adam_config cfg) { return adam_new(&ADAMW, m, cfg); }
