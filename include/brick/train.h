/* brick/train.h - part of brick.h: losses, metrics and optimizers.
 * Include <brick.h>, which includes every part in order and states the ownership and
 * error rules once at its top. */
#ifndef BRICK_PART_TRAIN_H
#define BRICK_PART_TRAIN_H

#ifndef BRICK_H
#error "include <brick.h>, not <brick/train.h>"
#endif

/* ------------------------------------------------------------------------------------ */
/* Losses and metrics                                                                   */
/* ------------------------------------------------------------------------------------ */

typedef enum bk_reduction {
    BK_REDUCTION_MEAN = 0, /* the default, as in torch */
    BK_REDUCTION_SUM,
    BK_REDUCTION_NONE,
    BK_REDUCTION_COUNT
} bk_reduction;

/* log_softmax / softmax along dim, computed stably (max subtracted). */
bk_tensor *bk_log_softmax(bk_tensor *x, int dim);
bk_tensor *bk_softmax(bk_tensor *x, int dim);
/* nn.CrossEntropyLoss on logits (N, C) and class indices target[N] in [0, C): a fused,
 * numerically stable log-sum-exp. NONE gives shape (N,). */
bk_tensor *bk_cross_entropy(bk_tensor *logits, const int64_t *target, int64_t n, bk_reduction r);
/* nn.MSELoss: (input - target)^2; shapes must match. */
bk_tensor *bk_mse_loss(bk_tensor *input, bk_tensor *target, bk_reduction r);
/* nn.BCEWithLogitsLoss: max(x, 0) - x t + log(1 + e^-|x|); shapes must match. */
bk_tensor *bk_bce_with_logits(bk_tensor *logits, bk_tensor *target, bk_reduction r);
/* Number of rows of logits (N, C) whose argmax equals target (ties: first). -1 on error
 * (also for C = 0 with N > 0: no argmax). */
int64_t bk_count_correct(const bk_tensor *logits, const int64_t *target, int64_t n);
/* Row-wise argmax of (N, C) into out[N]. 0, or -1 with an error. */
int bk_argmax_rows(const bk_tensor *logits, int64_t *out);

/* ------------------------------------------------------------------------------------ */
/* Optimizers (torch.optim: the same update formulas, step by step)                     */
/* ------------------------------------------------------------------------------------ */

typedef struct bk_optim bk_optim;

/* Settings are doubles, as torch's are Python floats: factors like 1 - beta2 are formed in
 * double and then rounded to float32, exactly as torch rounds them. */
typedef struct bk_sgd_config {
    double lr, momentum, dampening, weight_decay;
    bool nesterov;
} bk_sgd_config;

typedef struct bk_adam_config {
    double lr, beta1, beta2, eps, weight_decay;
    bool amsgrad;
} bk_adam_config;

typedef struct bk_rmsprop_config {
    double lr, alpha, eps, weight_decay, momentum;
    bool centered; /* divide by the gradient's running variance, not its mean square */
} bk_rmsprop_config;

typedef struct bk_adagrad_config {
    double lr, lr_decay, weight_decay, initial_accumulator_value, eps;
} bk_adagrad_config;

/* Defaults as in torch (SGD needs an lr: 0 here means "set it"; torch's default lr is 0.01
 * for RMSprop and Adagrad). */
#define BK_SGD_DEFAULTS(lr_) ((bk_sgd_config){(lr_), 0.0, 0.0, 0.0, false})
#define BK_ADAM_DEFAULTS(lr_) ((bk_adam_config){(lr_), 0.9, 0.999, 1e-8, 0.0, false})
#define BK_ADAMW_DEFAULTS(lr_) ((bk_adam_config){(lr_), 0.9, 0.999, 1e-8, 1e-2, false})
#define BK_RMSPROP_DEFAULTS(lr_) ((bk_rmsprop_config){(lr_), 0.99, 1e-8, 0.0, 0.0, false})
#define BK_ADAGRAD_DEFAULTS(lr_) ((bk_adagrad_config){(lr_), 0.0, 0.0, 0.0, 1e-10})

/* An optimizer over the trainable parameters of m (at the time of the call, in
 * named_parameters order). The module must outlive the optimizer. NULL on bad config
 * (every setting must be >= 0, as torch checks; Adam's betas < 1; the error names the
 * optimizer and the values). */
bk_optim *bk_optim_sgd(bk_module *m, bk_sgd_config cfg);
bk_optim *bk_optim_adam(bk_module *m, bk_adam_config cfg);
bk_optim *bk_optim_adamw(bk_module *m, bk_adam_config cfg); /* decoupled weight decay */
/* RMSprop: state step, square_avg, momentum_buffer (used with momentum > 0), grad_avg (used
 * when centered); the unused ones stay zero (torch has none). */
bk_optim *bk_optim_rmsprop(bk_module *m, bk_rmsprop_config cfg);
/* Adagrad: state step, sum (starts at initial_accumulator_value); the lr of step t is
 * lr / (1 + (t - 1) lr_decay). */
bk_optim *bk_optim_adagrad(bk_module *m, bk_adagrad_config cfg);
void bk_optim_free(bk_optim *o);
/* One update from the parameters' current gradients (parameters without a gradient are
 * skipped, as in torch). 0 or -1. */
int bk_optim_step(bk_optim *o);
/* Zeroes the gradients of the optimizer's parameters. */
void bk_optim_zero_grad(bk_optim *o);
double bk_optim_lr(const bk_optim *o); /* NaN with an error for NULL */
/* lr must be >= 0 (else an error, and the lr is unchanged). */
void bk_optim_set_lr(bk_optim *o, double lr);
/* Sets the momentum of the next steps, as torch's OneCycleLR does with cycle_momentum: SGD's
 * and RMSprop's momentum, Adam's and AdamW's beta1 (its bias correction uses the current
 * beta1, as torch's). 0, or -1 with an error (and no change) for a momentum outside [0, 1),
 * an optimizer without one (Adagrad), Nesterov SGD set to 0, or an SGD or RMSprop whose
 * momentum is 0 and would turn on after it has stepped (torch starts their momentum buffer
 * at a step with momentum; brick's starts at the first step). */
int bk_optim_set_momentum(bk_optim *o, double momentum);
/* Parameter groups (torch's param_groups, for the settings recipes split on): the trainable
 * parameters that match(name, tensor, ud) accepts (dotted names, as bk_module_named gives
 * them) get their own weight decay and an lr of lr_scale times the optimizer's, so that
 * schedules, which set the optimizer's lr, move every group in proportion (as torch's
 * schedulers scale each group's initial lr). The other parameters keep the optimizer's
 * settings. Returns how many parameters the group has (0: no group is made), or -1 with an
 * error for a NULL optimizer or match, a weight_decay or lr_scale negative, infinite or NaN,
 * or a parameter already in a group (as torch refuses one in two groups; nothing changes).
 * torch's [{'params': decay}, {'params': no_decay, 'weight_decay': 0}] is
 *     bk_optim_add_group(o, bk_param_is_bias_or_norm, NULL, 0.0, 1.0); */
int bk_optim_add_group(bk_optim *o, bool (*match)(const char *name, const bk_tensor *p, void *ud), void *ud,
                       double weight_decay, double lr_scale);
/* The usual no-decay rule: true for parameters of rank <= 1 (biases, and the weights and
 * biases of BatchNorm and LayerNorm); false for NULL. name and ud are unused. */
bool bk_param_is_bias_or_norm(const char *name, const bk_tensor *p, void *ud);
/* "SGD", "Adam", "AdamW", "RMSprop", "Adagrad"; "?" for NULL */
const char *bk_optim_name(const bk_optim *o);
/* Optimizer state as named tensors (for checkpoints) under torch's state names, like
 * "0.weight.momentum_buffer", "0.weight.exp_avg", "0.weight.step". Borrowed list; the
 * tensors can be written to restore a state. -1 or NULL with an error for NULL or an index
 * out of range. */
int bk_optim_state_count(const bk_optim *o);
const char *bk_optim_state_name(const bk_optim *o, int i);
bk_tensor *bk_optim_state_tensor(const bk_optim *o, int i);

/* Gradient clipping over the gradients of m's trainable parameters (those without one are
 * skipped), between backward and step, as torch.nn.utils:
 *   bk_clip_grad_norm: clip_grad_norm_: the norm of order norm_type (> 0; INFINITY for the
 *     largest |g|) of all the gradients as one vector, in float32; every gradient is
 *     multiplied by min(1, max_norm / (norm + 1e-6)). Returns the norm (0 without gradients).
 *     A NaN or infinite norm: with error_if_nonfinite, NaN with an error and the gradients
 *     unchanged; without, the gradients are scaled by it anyway and the norm is returned.
 *     NaN with an error for a NULL module, max_norm < 0 or norm_type <= 0 (or NaN).
 *   bk_clip_grad_value: clip_grad_value_: each gradient element clamped to
 *     [-clip_value, clip_value] (NaN stays NaN). 0, or -1 with an error for a NULL module or
 *     clip_value < 0 or NaN. */
double bk_clip_grad_norm(bk_module *m, double max_norm, double norm_type, bool error_if_nonfinite);
int bk_clip_grad_value(bk_module *m, double clip_value);

/* Learning-rate schedules, stepped once per epoch as torch's schedulers usually are: the lr
 * to train epoch `epoch` (0-based) with, i.e. the lr after `epoch` calls of scheduler.step().
 * Set it with bk_optim_set_lr before the epoch. In double, as torch computes them.
 *   bk_lr_step_decay: StepLR(step_size, gamma): base_lr gamma^floor(epoch / step_size)
 *   bk_lr_cosine:     CosineAnnealingLR(T_max = total_epochs, eta_min = min_lr):
 *                     min_lr + (base_lr - min_lr) (1 + cos(pi epoch / total_epochs)) / 2,
 *                     which, like torch's, rises again past total_epochs
 * Both return NaN with an error for a negative epoch or a step_size / total_epochs below 1. */
double bk_lr_step_decay(double base_lr, int epoch, int step_size, double gamma);
double bk_lr_cosine(double base_lr, int epoch, int total_epochs, double min_lr);


/* Per-step schedules (torch.optim.lr_scheduler stepped once per batch, or per epoch: the
 * step is whatever the caller counts). Each gives the lr after `step` calls of
 * scheduler.step() (step 0: the lr torch sets when the scheduler is made); set it with
 * bk_optim_set_lr before that step's update. In double, equal to torch's to rounding
 * (1e-12 relative, tests/test_parity_optim.c).
 *   bk_lr_linear: LinearLR(start_factor, end_factor, total_iters): base_lr (start_factor +
 *     (end_factor - start_factor) min(step, total_iters) / total_iters). A linear warmup is
 *     start_factor < 1 with end_factor 1 (torch's defaults 1/3, 1, 5). NaN with an error
 *     for step < 0, total_iters < 1, start_factor outside (0, 1] or end_factor outside
 *     [0, 1] (torch's ranges).
 *   bk_lr_lambda: LambdaLR(lr_lambda): base_lr fn(step, ud). NaN with an error for a NULL
 *     fn, step < 0, or a factor fn returns that is NaN or infinite. */
double bk_lr_linear(double base_lr, int64_t step, int64_t total_iters, double start_factor,
                    double end_factor);
double bk_lr_lambda(double base_lr, int64_t step, double (*fn)(int64_t step, void *ud), void *ud);

/* OneCycleLR (Smith's 1cycle): from max_lr / div_factor up to max_lr over the first
 * pct_start of total_steps, then down to max_lr / (div_factor final_div_factor) (three_phase:
 * back to the initial lr over as many steps, then down to the minimum), cosine or linear.
 * Momentum cycles the other way, max_momentum -> base_momentum -> max_momentum (torch sets
 * it as SGD's momentum or Adam's beta1 when cycle_momentum). BK_ONE_CYCLE_DEFAULTS has
 * torch's defaults. */
typedef enum bk_anneal { BK_ANNEAL_COS = 0, BK_ANNEAL_LINEAR, BK_ANNEAL_COUNT } bk_anneal;
typedef struct bk_one_cycle_config {
    double max_lr;
    int64_t total_steps;
    double pct_start, div_factor, final_div_factor;
    bk_anneal anneal;
    bool three_phase;
    double base_momentum, max_momentum;
} bk_one_cycle_config;
#define BK_ONE_CYCLE_DEFAULTS(max_lr_, total_steps_) \
    ((bk_one_cycle_config){(max_lr_), (total_steps_), 0.3, 25.0, 1e4, BK_ANNEAL_COS, false, 0.85, 0.95})
/* The lr after `step` steps, 0 <= step <= total_steps (torch allows one step past the last
 * one); *momentum (if not NULL) gets the momentum of that step. NaN with an error for a
 * NULL config, a step out of range, total_steps < 1, pct_start outside [0, 1], a
 * non-positive max_lr, div_factor or final_div_factor, or an anneal out of range. */
double bk_lr_one_cycle(const bk_one_cycle_config *c, int64_t step, double *momentum);

/* ReduceLROnPlateau: after each epoch, given the metric (a validation loss, or an accuracy
 * with max mode), multiplies the lr by factor once the metric has not improved for more than
 * patience epochs, then waits cooldown epochs; never below min_lr, and a cut smaller than
 * eps is skipped. "Improved": below best (1 - threshold) (rel) or best - threshold (abs) in
 * min mode; above best (1 + threshold) or best + threshold in max mode. A NaN metric never
 * improves. The struct is plain data: settings and state (write it to a checkpoint as
 * numbers, read it back, go on). */
typedef struct bk_lr_plateau {
    bool mode_max, threshold_abs; /* torch's mode 'max', threshold_mode 'abs' */
    double factor, threshold, min_lr, eps;
    int64_t patience, cooldown;
    double best; /* state: bk_lr_plateau_init sets +inf (min mode) or -inf (max mode) */
    int64_t num_bad_epochs, cooldown_counter, last_epoch;
} bk_lr_plateau;
/* torch's defaults: mode min, factor 0.1, patience 10, threshold 1e-4 rel, cooldown 0,
 * min_lr 0, eps 1e-8 (then call bk_lr_plateau_init). */
#define BK_LR_PLATEAU_DEFAULTS ((bk_lr_plateau){false, false, 0.1, 1e-4, 0.0, 1e-8, 10, 0, 0.0, 0, 0, 0})
/* Checks the settings (0 <= factor < 1, patience, cooldown, threshold, min_lr, eps >= 0)
 * and sets the state to its start (best = -inf in max mode). 0, or -1 with an error. */
int bk_lr_plateau_init(bk_lr_plateau *p);
/* One epoch's metric and the lr in use: returns the lr for the next epoch (lr, or the cut
 * one) and updates p's state. NaN with an error for a NULL p or a negative lr. */
double bk_lr_plateau_step(bk_lr_plateau *p, double metric, double lr);

#endif /* BRICK_PART_TRAIN_H */
