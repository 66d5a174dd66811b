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

#endif /* BRICK_PART_TRAIN_H */
