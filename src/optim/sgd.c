/* sgd.c - torch.optim.SGD (1.13), per parameter:
 *   d = g + wd p
 *   buf = d (first step) | momentum buf + (1 - dampening) d
 *   d = d + momentum buf (nesterov) | buf
 *   p = p - lr d
 */
#include "optim.h"

static void sgd_update(const bk_optim *o, const optim_hyper *h, bk_tensor *p, const bk_tensor *g,
                       bk_tensor **slots) {
    const optim_sgd *c = &o->cfg.sgd;
    float *P = p->data, *buf = slots[1]->data;
    const float *G = g->data;
    bool first = slots[0]->data[0] == 1.0f;
    /* torch rounds each Python-float factor to float32 once */
    float lr = (float)h->lr, wd = (float)h->weight_decay, mom = (float)c->momentum;
    float keep = (float)(1.0 - c->dampening);
    bool nesterov = c->nesterov;
    /* The common cases get loops of their own, which vectorise; the general one tests
     * loop-invariant flags. Each is the same arithmetic, element by element. */
    if (wd == 0.0f && mom == 0.0f) {
        BK_MAP(p->numel, OPTIM_PARALLEL_MIN, P[i] -= lr * G[i]);
    } else if (mom != 0.0f && !first && !nesterov) {
        BK_MAP(p->numel, OPTIM_PARALLEL_MIN, {
            float d = G[i];
            if (wd != 0.0f) d += wd * P[i];
            buf[i] = mom * buf[i] + keep * d;
            P[i] -= lr * buf[i];
        });
    } else {
        BK_MAP(p->numel, OPTIM_PARALLEL_MIN, {
            float d = G[i];
            if (wd != 0.0f) d += wd * P[i];
            if (mom != 0.0f) {
                buf[i] = first ? d : mom * buf[i] + keep * d;
                d = nesterov ? d + mom * buf[i] : buf[i];
            }
            P[i] -= lr * d;
        });
    }
}

static double *sgd_momentum(bk_optim *o, double to) {
    optim_sgd *c = &o->cfg.sgd;
    /* torch's buffer starts at the first step taken with momentum, brick's at the
     * parameter's first step: the two agree only if the momentum was on from the start */
    if (c->momentum == 0.0 && to != 0.0 && bk__optim_stepped(o)) {
        bk_set_error(
            "optim_set_momentum: SGD: momentum can only be turned on before the first step "
            "(this one has stepped without momentum)");
        return NULL;
    }
    if (c->nesterov && to == 0.0) {
        bk_set_error("optim_set_momentum: SGD: Nesterov momentum needs a momentum > 0");
        return NULL;
    }
    return &c->momentum;
}

static const optim_class SGD = {"SGD", 2, {"step", "momentum_buffer"}, sgd_update, sgd_momentum};

bk_optim *bk_optim_sgd(bk_module *m, bk_sgd_config cfg) {
    if (!(cfg.lr >= 0.0) || !(cfg.momentum >= 0.0) || !(cfg.weight_decay >= 0.0)) {
        bk_set_error("SGD: invalid settings lr=%g momentum=%g weight_decay=%g (each must be >= 0)", cfg.lr,
                     cfg.momentum, cfg.weight_decay);
        return NULL;
    }
    if (cfg.nesterov && (cfg.momentum <= 0.0 || cfg.dampening != 0.0)) {
        bk_set_error("SGD: Nesterov momentum requires a momentum and zero dampening");
        return NULL;
    }
    if (!bk__module_ok(m, "SGD")) return NULL;
    bk_optim *o = bk__optim_new(&SGD, m);
    if (o) {
        o->cfg.sgd = (optim_sgd){cfg.momentum, cfg.dampening, cfg.nesterov};
        o->weight_decay = cfg.weight_decay;
        o->lr = cfg.lr;
    }
    return o;
}
