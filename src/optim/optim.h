/* optim.h - what the optimizers share (private to src/optim/).
 *
 * An optimizer holds the trainable parameters of a module (borrowed) and, per parameter,
 * a fixed set of state tensors ("slots": step, momentum_buffer, exp_avg, ...) that it owns.
 * An algorithm is a class: its slot names and a per-parameter update function. The state
 * is exposed as named tensors so that checkpoints save and restore it generically.
 */
#ifndef BRICK_OPTIM_H
#define BRICK_OPTIM_H

#include "internal.h"

#define OPTIM_MAX_SLOTS 4

/* Updates of at least this many elements run on the threads (BK_MAP): each element's update
 * is the same arithmetic whatever the split. An SGD step over the MLP's first weight (2^17.6
 * floats) takes ~60 µs on one Zen 4 core; a parallel region costs a few µs. */
#define OPTIM_PARALLEL_MIN ((int64_t)1 << 15)

/* The settings a parameter group can change, as one step of one parameter sees them: the lr
 * (the optimizer's times the group's factor) and the weight decay. */
typedef struct optim_hyper {
    double lr, weight_decay;
} optim_hyper;

typedef struct optim_class {
    const char *name;
    int n_slots;
    const char *slots[OPTIM_MAX_SLOTS]; /* slot 0 is always "step" (a 1-element counter) */
    /* updates parameter p (with gradient g) using its slots and its group's settings h */
    void (*update)(const bk_optim *o, const optim_hyper *h, bk_tensor *p, const bk_tensor *g,
                   bk_tensor **slots);
    /* the setting bk_optim_set_momentum may change to `to` (SGD's momentum, Adam's beta1),
     * or NULL with an error when this optimizer cannot take it; NULL here: no momentum */
    double *(*momentum)(bk_optim *o, double to);
} optim_class;

/* Whether any parameter has taken a step (its "step" slot counts them). */
bool bk__optim_stepped(const bk_optim *o);

/* An algorithm's settings: those of its bk_<name>_config but the lr and the weight decay,
 * which live in bk_optim (schedules change the lr, groups both; a copy here would go stale). */
typedef struct optim_sgd {
    double momentum, dampening;
    bool nesterov;
} optim_sgd;

typedef struct optim_adam {
    double beta1, beta2, eps;
    bool amsgrad;
} optim_adam;

typedef struct optim_rmsprop {
    double alpha, eps, momentum;
    bool centered;
} optim_rmsprop;

typedef struct optim_adagrad {
    double lr_decay, eps;
} optim_adagrad;

struct bk_optim {
    const optim_class *cls;
    double lr;           /* the learning rate of the next step (bk_optim_set_lr changes it) */
    double weight_decay; /* the config's, for the parameters in no group */
    union {
        optim_sgd sgd;
        optim_adam adam;
        optim_rmsprop rmsprop;
        optim_adagrad adagrad;
    } cfg;
    int n;                 /* parameters */
    bk_param_list *params; /* trainable parameters only */
    bk_tensor **state;     /* n * cls->n_slots, owned */
    int *group;            /* n: the parameter's group, 0 for none (bk_optim_add_group) */
    int n_groups;          /* groups added (1..n_groups) */
    double *group_lr_scale, *group_weight_decay; /* n + 1 each; [0] unused */
    char **state_names;                          /* "<param>.<slot>", owned */
};

/* Builds an optimizer of class cls over m's trainable parameters. */
bk_optim *bk__optim_new(const optim_class *cls, bk_module *m);

#endif
