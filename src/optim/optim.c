/* optim.c - the optimizer frame: parameter collection, state slots, step loop, learning
 * rate access and schedules. The algorithms live in sgd.c, adam.c, rmsprop.c and adagrad.c;
 * gradient clipping in clip.c.
 */
#include "optim.h"

#include <math.h>
#include <stdlib.h>

bk_optim *bk__optim_new(const optim_class *cls, bk_module *m) {
    bk_param_list *all = bk_module_named(m, BK_PARAMS);
    if (!all) {
        bk__error_prefix("%s", cls->name);
        return NULL;
    }
    bk_optim *o = bk__calloc(1, sizeof *o);
    if (!o) goto oom;
    o->cls = cls;
    o->params = all;
    /* keep only the trainable parameters, in order */
    int k = 0;
    for (int i = 0; i < all->n; i++) {
        if (!all->trainable[i]) {
            bk__free(all->names[i]);
            continue;
        }
        all->names[k] = all->names[i];
        all->tensors[k] = all->tensors[i];
        all->trainable[k] = true;
        k++;
    }
    all->n = o->n = k;
    size_t n_state = (size_t)k * (size_t)cls->n_slots;
    o->state = bk__calloc(n_state ? n_state : 1, sizeof *o->state);
    o->state_names = bk__calloc(n_state ? n_state : 1, sizeof *o->state_names);
    o->group = bk__calloc(k ? (size_t)k : 1, sizeof *o->group);
    o->group_lr_scale = bk__calloc((size_t)k + 1, sizeof *o->group_lr_scale);
    o->group_weight_decay = bk__calloc((size_t)k + 1, sizeof *o->group_weight_decay);
    if (!o->state || !o->state_names || !o->group || !o->group_lr_scale || !o->group_weight_decay) goto oom;
    for (int i = 0; i < k; i++)
        for (int s = 0; s < cls->n_slots; s++) {
            size_t at = (size_t)i * (size_t)cls->n_slots + (size_t)s;
            const bk_tensor *p = all->tensors[i];
            o->state[at] = s == 0 ? bk_tensor_new(0, NULL) : bk_tensor_new(p->ndim, p->shape);
            size_t len = strlen(all->names[i]) + strlen(cls->slots[s]) + 2;
            o->state_names[at] = bk__malloc(len);
            if (!o->state[at] || !o->state_names[at]) goto oom;
            snprintf(o->state_names[at], len, "%s.%s", all->names[i], cls->slots[s]);
        }
    return o;
oom:
    bk_optim_free(o);
    if (!o) bk_param_list_free(all);
    bk_set_error("%s: out of memory", cls->name);
    return NULL;
}

void bk_optim_free(bk_optim *o) {
    if (!o) return;
    size_t n_state = (size_t)o->n * (size_t)o->cls->n_slots;
    for (size_t i = 0; o->state && i < n_state; i++) bk_tensor_free(o->state[i]);
    for (size_t i = 0; o->state_names && i < n_state; i++) bk__free(o->state_names[i]);
    bk__free(o->state);
    bk__free(o->state_names);
    bk__free(o->group);
    bk__free(o->group_lr_scale);
    bk__free(o->group_weight_decay);
    bk_param_list_free(o->params);
    bk__free(o);
}

static bool optim_ok(const bk_optim *o, const char *who) {
    if (!o) bk_set_error("%s: optimizer is NULL", who);
    return o != NULL;
}

int bk_optim_step(bk_optim *o) {
    if (!optim_ok(o, "optim_step")) return -1;
    for (int i = 0; i < o->n; i++) {
        bk_tensor *p = o->params->tensors[i];
        if (!p->grad) continue; /* torch skips parameters whose grad is None */
        bk_tensor **slots = o->state + (size_t)i * (size_t)o->cls->n_slots;
        slots[0]->data[0] += 1.0f; /* step count (exact in float up to 2^24 steps) */
        int gi = o->group[i];
        optim_hyper h = {gi ? o->lr * o->group_lr_scale[gi] : o->lr,
                         gi ? o->group_weight_decay[gi] : o->weight_decay};
        o->cls->update(o, &h, p, p->grad, slots);
    }
    return 0;
}

void bk_optim_zero_grad(bk_optim *o) {
    if (!optim_ok(o, "optim_zero_grad")) return;
    for (int i = 0; i < o->n; i++)
        if (o->params->tensors[i]->grad) bk_fill(o->params->tensors[i]->grad, 0.0f);
}

double bk_optim_lr(const bk_optim *o) { return optim_ok(o, "optim_lr") ? o->lr : NAN; }

void bk_optim_set_lr(bk_optim *o, double lr) {
    if (!optim_ok(o, "optim_set_lr")) return;
    if (!(lr >= 0.0)) { /* as the constructors: lr >= 0, not NaN */
        bk_set_error("optim_set_lr: %s: lr=%g must be >= 0 (the lr stays %g)", o->cls->name, lr, o->lr);
        return;
    }
    o->lr = lr;
}

bool bk__optim_stepped(const bk_optim *o) {
    for (int i = 0; i < o->n; i++)
        if (o->state[(size_t)i * o->cls->n_slots]->data[0] > 0.0f) return true;
    return false;
}

int bk_optim_set_momentum(bk_optim *o, double momentum) {
    if (!optim_ok(o, "optim_set_momentum")) return -1;
    if (!o->cls->momentum) {
        bk_set_error(
            "optim_set_momentum: %s has no momentum (torch's OneCycleLR refuses it too with "
            "cycle_momentum=True)",
            o->cls->name);
        return -1;
    }
    if (!(momentum >= 0.0 && momentum < 1.0)) { /* torch's range for beta1 */
        bk_set_error("optim_set_momentum: %s: momentum %g must be in [0, 1)", o->cls->name, momentum);
        return -1;
    }
    double *setting = o->cls->momentum(o, momentum);
    if (!setting) return -1;
    *setting = momentum;
    return 0;
}

const char *bk_optim_name(const bk_optim *o) { return o ? o->cls->name : "?"; }

int bk_optim_add_group(bk_optim *o, bool (*match)(const char *name, const bk_tensor *p, void *ud), void *ud,
                       double weight_decay, double lr_scale) {
    if (!optim_ok(o, "optim_add_group")) return -1;
    if (!match) {
        bk_set_error("optim_add_group: %s: match is NULL", o->cls->name);
        return -1;
    }
    if (!(weight_decay >= 0) || !(lr_scale >= 0) || isinf(weight_decay) || isinf(lr_scale)) {
        bk_set_error("optim_add_group: %s: weight_decay=%g and lr_scale=%g must be finite and >= 0",
                     o->cls->name, weight_decay, lr_scale);
        return -1;
    }
    int g = o->n_groups + 1, count = 0;
    for (int i = 0; i < o->n; i++) /* check all first: a refused group changes nothing */
        if (match(o->params->names[i], o->params->tensors[i], ud) && o->group[i]) {
            bk_set_error(
                "optim_add_group: %s: parameter %s is already in group %d (a parameter can be in one "
                "group only)",
                o->cls->name, o->params->names[i], o->group[i]);
            return -1;
        }
    for (int i = 0; i < o->n; i++)
        if (match(o->params->names[i], o->params->tensors[i], ud)) {
            o->group[i] = g;
            count++;
        }
    if (!count) return 0; /* no group without parameters: at most n groups */
    o->n_groups = g;
    o->group_weight_decay[g] = weight_decay;
    o->group_lr_scale[g] = lr_scale;
    return count;
}

bool bk_param_is_bias_or_norm(const char *name, const bk_tensor *p, void *ud) {
    (void)name;
    (void)ud;
    return p && p->ndim <= 1;
}

static int state_count(const bk_optim *o) { return o->n * o->cls->n_slots; }

int bk_optim_state_count(const bk_optim *o) { return optim_ok(o, "optim_state_count") ? state_count(o) : -1; }

static bool state_index_ok(const bk_optim *o, int i, const char *who) {
    if (!optim_ok(o, who)) return false;
    if (i >= 0 && i < state_count(o)) return true;
    bk_set_error("%s: index %d is out of range (%d state tensors)", who, i, state_count(o));
    return false;
}

const char *bk_optim_state_name(const bk_optim *o, int i) {
    return state_index_ok(o, i, "optim_state_name") ? o->state_names[i] : NULL;
}

bk_tensor *bk_optim_state_tensor(const bk_optim *o, int i) {
    return state_index_ok(o, i, "optim_state_tensor") ? o->state[i] : NULL;
}

double bk_lr_step_decay(double base_lr, int epoch, int step_size, double gamma) {
    if (step_size <= 0 || epoch < 0) {
        bk_set_error("lr_step_decay: epoch %d must be >= 0 and step_size %d positive", epoch, step_size);
        return NAN;
    }
    return base_lr * pow(gamma, (double)(epoch / step_size));
}

double bk_lr_cosine(double base_lr, int epoch, int total_epochs, double min_lr) {
    if (total_epochs <= 0 || epoch < 0) {
        bk_set_error("lr_cosine: epoch %d must be >= 0 and total_epochs %d positive", epoch, total_epochs);
        return NAN;
    }
    double t = (double)epoch / (double)total_epochs;
    return min_lr + 0.5 * (base_lr - min_lr) * (1.0 + cos(3.14159265358979323846 * t));
}
