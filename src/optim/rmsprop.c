/* rmsprop.c - torch.optim.RMSprop (1.13, single-tensor path), per parameter:
 *   g = g + wd p
 *   square_avg = alpha square_avg + (1 - alpha) g^2
 *   centered:  grad_avg = alpha grad_avg + (1 - alpha) g;  avg = sqrt(square_avg - grad_avg^2) + eps
 *   else:      avg = sqrt(square_avg) + eps
 *   momentum > 0:  momentum_buffer = momentum momentum_buffer + g / avg;  p = p - lr momentum_buffer
 *   else:          p = p - lr g / avg
 * (torch keeps momentum_buffer only with momentum and grad_avg only when centered; brick keeps
 * both slots always, at zero when unused, as SGD keeps its momentum_buffer.)
 */
#include "optim.h"

#include <math.h>

static void rmsprop_update(const bk_optim *o, const optim_hyper *h, bk_tensor *p, const bk_tensor *g,
                           bk_tensor **slots) {
    const optim_rmsprop *c = &o->cfg.rmsprop;
    float *P = p->data, *SQ = slots[1]->data, *BUF = slots[2]->data, *GA = slots[3]->data;
    const float *G = g->data;
    /* torch rounds each Python-float factor to float32 once: alpha, 1 - alpha, eps, ... */
    float lr = (float)h->lr, alpha = (float)c->alpha, nalpha = (float)(1.0 - c->alpha);
    float eps = (float)c->eps, wd = (float)h->weight_decay, mom = (float)c->momentum;
    bool centered = c->centered;
    BK_MAP(p->numel, OPTIM_PARALLEL_MIN, {
        float gi = G[i];
        if (wd != 0.0f) gi += wd * P[i];
        SQ[i] = SQ[i] * alpha + nalpha * gi * gi;
        float avg;
        if (centered) {
            GA[i] = GA[i] * alpha + nalpha * gi;
            avg = sqrtf(SQ[i] + -1.0f * GA[i] * GA[i]);
        } else {
            avg = sqrtf(SQ[i]);
        }
        avg += eps;
        if (mom > 0.0f) {
            BUF[i] = BUF[i] * mom + gi / avg;
            P[i] += -lr * BUF[i];
        } else {
            P[i] += -lr * (gi / avg);
        }
    });
}

static double *rmsprop_momentum(bk_optim *o, double to) {
    double *m = &o->cfg.rmsprop.momentum;
    /* torch makes its momentum_buffer at the first step if the momentum is > 0 then */
    if (*m == 0.0 && to != 0.0 && bk__optim_stepped(o)) {
        bk_set_error(
            "optim_set_momentum: RMSprop: momentum can only be turned on before the first step "
            "(this one has stepped without momentum)");
        return NULL;
    }
    return m;
}

static const optim_class RMSPROP = {"RMSprop",
                                    4,
                                    {"step", "square_avg", "momentum_buffer", "grad_avg"},
                                    rmsprop_update,
                                    rmsprop_momentum};

bk_optim *bk_optim_rmsprop(bk_module *m, bk_rmsprop_config cfg) {
    /* torch's checks: each setting >= 0 (NaN fails them here, as it should) */
    if (!(cfg.lr >= 0.0) || !(cfg.alpha >= 0.0) || !(cfg.eps >= 0.0) || !(cfg.weight_decay >= 0.0) ||
        !(cfg.momentum >= 0.0)) {
        bk_set_error(
            "RMSprop: invalid settings lr=%g alpha=%g eps=%g weight_decay=%g momentum=%g (each must be >= 0)",
            cfg.lr, cfg.alpha, cfg.eps, cfg.weight_decay, cfg.momentum);
        return NULL;
    }
    if (!bk__module_ok(m, "RMSprop")) return NULL;
    bk_optim *o = bk__optim_new(&RMSPROP, m);
    if (o) {
        o->cfg.rmsprop = (optim_rmsprop){cfg.alpha, cfg.eps, cfg.momentum, cfg.centered};
        o->weight_decay = cfg.weight_decay;
        o->lr = cfg.lr;
    }
    return o;
}
