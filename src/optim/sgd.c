/* sgd.c - torch.optim.SGD (1.13), per parameter:
 *   d = g + wd p
 *   buf = d (first step) | momentum buf + (1 - dampening) d
 *   d = d + momentum buf (nesterov) | buf
 *   p = p - lr d
 */
#include "optim.h"

static void sgd_update(const bk_optim *o, bk_tensor *p, const bk_tensor *g, bk_tensor **slots) {
    const bk_sgd_config *c = &o->cfg.sgd;
    float *P = p->data, *buf = slots[1]->data;
    const float *G = g->data;
    bool first = slots[0]->data[0] == 1.0f;
    for (int64_t i = 0; i < p->numel; i++) {
        float d = G[i];
        if (c->weight_decay != 0.0f) d += c->weight_decay * P[i];
        if (c->momentum != 0.0f) {
            buf[i] = first ? d : c->momentum * buf[i] + (1.0f - c->dampening) * d;
            d = c->nesterov ? d + c->momentum * buf[i] : buf[i];
        }
        P[i] -= o->lr * d;
    }
}

static const optim_class SGD = {"SGD", 2, {"step", "momentum_buffer"}, sgd_update};

bk_optim *bk_optim_sgd(bk_module *m, bk_sgd_config cfg) {
    if (!(cfg.lr >= 0.0f) || !(cfg.momentum >= 0.0f) || !(cfg.weight_decay >= 0.0f)) {
        bk_set_error("SGD: invalid settings lr=%g momentum=%g weight_decay=%g (each must be >= 0)",
                     (double)cfg.lr, (double)cfg.momentum, (double)cfg.weight_decay);
        return NULL;
    }
    if (cfg.nesterov && (cfg.momentum <= 0.0f || cfg.dampening != 0.0f)) {
        bk_set_error("SGD: Nesterov momentum requires a momentum and zero dampening");
        return NULL;
    }
    if (!m) {
        bk_set_error("SGD: module is NULL");
        return NULL;
    }
    bk_optim *o = bk__optim_new(&SGD, m);
    if (o) {
        o->cfg.sgd = cfg;
        o->lr = cfg.lr;
    }
    return o;
}
