/* test_parity_optim.c - brick's losses and optimizers against PyTorch.
 *
 * tests/parity/gen_losses_optim.py writes, for a fresh random seed:
 *   loss_<case>.ref.safetensors   inputs, output, upstream, input gradients of one loss or
 *                                 (log_)softmax call (cross-entropy, MSE, BCE with logits;
 *                                 mean/sum/none; +-1e4 and -inf logits; several dims);
 *   optim_<case>.ref.safetensors  initial weights, a batch, the parameters after each of 5
 *                                 steps of zero_grad / cross-entropy / backward / step, and
 *                                 the optimizer's state_dict() after the last step;
 *   clip_<case>.ref.safetensors   one backward of that model, then clip_grad_norm_ (orders
 *                                 2, inf, 1, 3) or clip_grad_value_: the norm and the
 *                                 clipped gradients (bk_clip_grad_norm, bk_clip_grad_value);
 *   sched_<case>.ref.safetensors  the lr of each of 25 epochs under CosineAnnealingLR or
 *                                 StepLR, stepped once per epoch (bk_lr_cosine,
 *                                 bk_lr_step_decay);
 *   lrs_<case>.ref.safetensors    the lr and momentum of every step under LinearLR, LambdaLR,
 *                                 OneCycleLR or ReduceLROnPlateau (given metrics), stepped
 *                                 once per optimizer step, as exact doubles (bk_lr_linear,
 *                                 bk_lr_lambda, bk_lr_one_cycle, bk_lr_plateau_step).
 * This file makes the same calls with brick and compares. The file layout is described at
 * the top of gen_losses_optim.py; the approach is that of test_parity.c (tests/parity/).
 *
 * Environment:
 *   BRICK_PARITY_DIR     where the references are (default build/parity)
 *   BRICK_REQUIRE_TORCH  1: a missing directory or file is a failure, not a skip
 *   BRICK_TEST_VERBOSE   print max abs / rel error of every compared tensor, every case and
 *                        every optimizer step (lines starting "# ==")
 */
#include "parity.h"

/* Default tolerances, as torch.allclose: |brick - torch| <= ATOL + RTOL * |torch|. Both
 * sides compute in float32 (unit roundoff 6e-8) with different summation orders, so a
 * correct result agrees to a few ulps; a wrong formula is off by 1e-3 or more. ATOL covers
 * results near zero that are differences of O(1) terms. Cases that need more say why. */
#define RTOL 1e-5
#define ATOL 1e-6

#define STEPS 5

/* A case's reference file, which must say it is that case. */
static bk_safetensors *open_case(const char *case_name) {
    bk_safetensors *st = parity_open(case_name, ".ref.safetensors");
    const char *meta = st ? bk_safetensors_meta(st, "case") : NULL;
    if (st && !(meta && strcmp(meta, case_name) == 0)) {
        fprintf(stderr, "# %s: file says case %s\n", case_name, meta ? meta : "(none)");
        CHECK(false);
    }
    return st;
}

static bool all_finite(const bk_tensor *t) {
    for (int64_t i = 0; t && i < t->numel; i++)
        if (!isfinite(t->data[i])) return false;
    return t != NULL;
}

/* ======================================================================================
 * Losses (LOSS_CASES in gen_losses_optim.py)
 * ====================================================================================== */

typedef struct tolerance {
    double rtol, atol;
} tolerance;

typedef enum { L_CE, L_MSE, L_BCE, L_LOG_SOFTMAX, L_SOFTMAX } loss_kind;

typedef struct loss_case {
    const char *name;
    loss_kind kind;
    bk_reduction reduction; /* CE, MSE, BCE */
    int dim;                /* (log_)softmax */
    const char *inputs;     /* the differentiable inputs, as in the file's metadata */
    tolerance out, grad;    /* for the output and for the input gradients */
} loss_case;

#define DEFAULT_TOL \
    {RTOL, ATOL}, { RTOL, ATOL }

/* Cross-entropy with a near tie at 1e4 (the "tie" files' row 0: target logit 1e4, another
 * 1e4 - 1, loss log(1 + e^-1) = 0.31326). At |x| ~ 1e4 the float32 spacing is 2^-10, so a
 * float32 log-sum-exp would round the log term away (6.9e-4 relative error, found by this
 * test); loss.c keeps lse in double and matches at the default tolerance. */
#define CE_TIE_TOL DEFAULT_TOL

/* BCE with logits up to |x| = 100, per element: the loss there is a difference of terms of
 * size |x| (PyTorch: (1 - t) x + max(-x, 0) + ..., cancelling for x < 0 and small t;
 * brick: max(x, 0) - x t + ..., cancelling for x > 0 and t near 1), so either side may be
 * off from the exact value by half a float32 spacing at |x| < 128, 2^-18 = 3.8e-6, in
 * absolute terms, however small the loss (measured: 2.1e-6 on a loss of 0.085, where
 * torch's value was the inexact one). Hence atol 4e-6 for the unreduced output; the
 * gradients (sigmoid(x) - t, -x) and the reduced losses (sums of O(10)) need no more. */
#define BCE_NONE_TOL \
    {RTOL, 4e-6}, { RTOL, ATOL }

static const loss_case LOSS_CASES[] = {
    {"loss_ce_mean", L_CE, BK_REDUCTION_MEAN, 0, "x", DEFAULT_TOL},
    {"loss_ce_sum", L_CE, BK_REDUCTION_SUM, 0, "x", DEFAULT_TOL},
    {"loss_ce_none", L_CE, BK_REDUCTION_NONE, 0, "x", DEFAULT_TOL},
    {"loss_ce_big_mean", L_CE, BK_REDUCTION_MEAN, 0, "x", DEFAULT_TOL},
    {"loss_ce_big_none", L_CE, BK_REDUCTION_NONE, 0, "x", DEFAULT_TOL},
    {"loss_ce_tie_mean", L_CE, BK_REDUCTION_MEAN, 0, "x", CE_TIE_TOL},
    {"loss_ce_tie_none", L_CE, BK_REDUCTION_NONE, 0, "x", CE_TIE_TOL},
    {"loss_ce_neginf_mean", L_CE, BK_REDUCTION_MEAN, 0, "x", DEFAULT_TOL},
    {"loss_ce_neginf_none", L_CE, BK_REDUCTION_NONE, 0, "x", DEFAULT_TOL},
    {"loss_mse_mean", L_MSE, BK_REDUCTION_MEAN, 0, "x,t", DEFAULT_TOL},
    {"loss_mse_sum", L_MSE, BK_REDUCTION_SUM, 0, "x,t", DEFAULT_TOL},
    {"loss_mse_none", L_MSE, BK_REDUCTION_NONE, 0, "x,t", DEFAULT_TOL},
    {"loss_bce_mean", L_BCE, BK_REDUCTION_MEAN, 0, "x,t", DEFAULT_TOL},
    {"loss_bce_sum", L_BCE, BK_REDUCTION_SUM, 0, "x,t", DEFAULT_TOL},
    {"loss_bce_none", L_BCE, BK_REDUCTION_NONE, 0, "x,t", BCE_NONE_TOL},
    {"loss_log_softmax_dim0", L_LOG_SOFTMAX, 0, 0, "x", DEFAULT_TOL},
    {"loss_log_softmax_dim1", L_LOG_SOFTMAX, 0, 1, "x", DEFAULT_TOL},
    {"loss_log_softmax_3d", L_LOG_SOFTMAX, 0, -1, "x", DEFAULT_TOL},
    {"loss_softmax_dim0", L_SOFTMAX, 0, 0, "x", DEFAULT_TOL},
    {"loss_softmax_dim1", L_SOFTMAX, 0, 1, "x", DEFAULT_TOL},
    {"loss_softmax_3d", L_SOFTMAX, 0, -1, "x", DEFAULT_TOL},
};
#define N_LOSS_CASES (int)(sizeof LOSS_CASES / sizeof LOSS_CASES[0])

/* Class indices stored as float32 (exact for small integers) -> int64. */
static int64_t *labels_from(const bk_tensor *t) {
    if (!t) return NULL;
    int64_t *y = malloc(sizeof *y * (size_t)(t->numel ? t->numel : 1));
    for (int64_t i = 0; y && i < t->numel; i++) y[i] = (int64_t)t->data[i];
    return y;
}

static void run_loss_case(const loss_case *lc) {
    parity_stats st = {0};
    int64_t *target = NULL;
    bk_safetensors *ref = open_case(lc->name);
    CHECK(ref != NULL);
    if (!ref) return;
    const char *meta_inputs = bk_safetensors_meta(ref, "inputs");
    if (!meta_inputs || strcmp(meta_inputs, lc->inputs) != 0)
        fprintf(stderr, "# %s: inputs %s in the file, %s here\n", lc->name,
                meta_inputs ? meta_inputs : "(none)", lc->inputs);
    CHECK(meta_inputs && strcmp(meta_inputs, lc->inputs) == 0);

    const char *names[2] = {"x", "t"};
    int n_in = lc->kind == L_MSE || lc->kind == L_BCE ? 2 : 1;
    bk_tensor *in[2] = {NULL, NULL};
    for (int i = 0; i < n_in; i++) {
        const bk_tensor *t = bk_safetensors_get(ref, names[i]);
        CHECK(t != NULL);
        if (!t) goto done;
        in[i] = bk_requires_grad(bk_from_data(t->ndim, t->shape, t->data), true);
    }
    bk_tensor *y = NULL;
    switch (lc->kind) {
    case L_CE: {
        const bk_tensor *tt = bk_safetensors_get(ref, "target");
        target = labels_from(tt);
        CHECK(target != NULL);
        if (!target) goto done;
        y = bk_cross_entropy(in[0], target, tt->numel, lc->reduction);
        break;
    }
    case L_MSE: y = bk_mse_loss(in[0], in[1], lc->reduction); break;
    case L_BCE: y = bk_bce_with_logits(in[0], in[1], lc->reduction); break;
    case L_LOG_SOFTMAX: y = bk_log_softmax(in[0], lc->dim); break;
    case L_SOFTMAX: y = bk_softmax(in[0], lc->dim); break;
    }
    char label[128];
    snprintf(label, sizeof label, "%s output", lc->name);
    parity_compare(label, y, bk_safetensors_get(ref, "output"), lc->out.rtol, lc->out.atol, &st);
    if (!y) goto done;
    CHECK(all_finite(y));

    if (parity_backward(y, ref) != 0) goto done;
    for (int i = 0; i < n_in; i++) {
        char key[32];
        snprintf(key, sizeof key, "%s.grad", names[i]);
        snprintf(label, sizeof label, "%s %s", lc->name, key);
        parity_compare(label, in[i]->grad, bk_safetensors_get(ref, key), lc->grad.rtol, lc->grad.atol, &st);
        CHECK(all_finite(in[i]->grad));
    }
    parity_stats_print(lc->name, &st);
done:
    free(target);
    bk_safetensors_free(ref);
}

/* ======================================================================================
 * Optimizers (OPTIM_CASES in gen_losses_optim.py)
 * ====================================================================================== */

typedef enum { O_SGD, O_ADAM, O_ADAMW, O_RMSPROP, O_ADAGRAD } optim_kind;

typedef struct optim_case {
    const char *name;
    optim_kind kind;
    bk_sgd_config sgd;
    bk_adam_config adam;
    bk_rmsprop_config rmsprop;
    bk_adagrad_config adagrad;
    bool groups; /* the biases in a group of their own: no weight decay, lr x 0.5 */
    /* OneCycleLR (total_steps > 0): before step k, the lr and momentum of step k - 1 */
    bk_one_cycle_config one_cycle;
} optim_case;

/* gen_losses_optim.py's ONE_CYCLE_STEPS, and its three OneCycleLR settings (torch's defaults
 * but the anneal, and the momenta of the RMSprop case) */
#define ONE_CYCLE_STEPS 8
#define ONE_CYCLE_SGD \
    { 0.1, ONE_CYCLE_STEPS, 0.3, 25.0, 1e4, BK_ANNEAL_COS, false, 0.85, 0.95 }
#define ONE_CYCLE_ADAM \
    { 1e-2, ONE_CYCLE_STEPS, 0.3, 25.0, 1e4, BK_ANNEAL_LINEAR, false, 0.85, 0.95 }
#define ONE_CYCLE_RMSPROP \
    { 1e-2, ONE_CYCLE_STEPS, 0.3, 25.0, 1e4, BK_ANNEAL_COS, false, 0.5, 0.8 }

static const optim_case OPTIM_CASES[] = {
    {"optim_sgd", O_SGD, .sgd = {0.1, 0, 0, 0, false}},
    {"optim_sgd_momentum", O_SGD, .sgd = {0.1, 0.9, 0, 0, false}},
    {"optim_sgd_damp_wd", O_SGD, .sgd = {0.1, 0.9, 0.1, 1e-2, false}},
    {"optim_sgd_nesterov", O_SGD, .sgd = {0.1, 0.9, 0, 0, true}},
    {"optim_adam", O_ADAM, .adam = {1e-2, 0.9, 0.999, 1e-8, 0, false}},
    {"optim_adam_wd_amsgrad", O_ADAM, .adam = {1e-2, 0.9, 0.999, 1e-8, 1e-2, true}},
    {"optim_adamw", O_ADAMW, .adam = {1e-2, 0.9, 0.999, 1e-8, 1e-1, false}},
    {"optim_rmsprop", O_RMSPROP, .rmsprop = {1e-2, 0.99, 1e-8, 0, 0, false}},
    {"optim_rmsprop_momentum_wd", O_RMSPROP, .rmsprop = {1e-2, 0.99, 1e-8, 1e-2, 0.9, false}},
    {"optim_rmsprop_centered", O_RMSPROP, .rmsprop = {1e-2, 0.9, 1e-8, 0, 0, true}},
    {"optim_rmsprop_centered_momentum_wd", O_RMSPROP, .rmsprop = {1e-2, 0.95, 1e-6, 1e-2, 0.5, true}},
    {"optim_adagrad", O_ADAGRAD, .adagrad = {0.1, 0, 0, 0, 1e-10}},
    {"optim_adagrad_decay_wd_init", O_ADAGRAD, .adagrad = {0.1, 0.1, 1e-2, 0.1, 1e-8}},
    {"optim_groups_sgd", O_SGD, .sgd = {0.1, 0.9, 0, 0.1, false}, .groups = true},
    {"optim_groups_adamw", O_ADAMW, .adam = {1e-2, 0.9, 0.999, 1e-8, 0.1, false}, .groups = true},
    {"optim_groups_adam", O_ADAM, .adam = {1e-2, 0.9, 0.999, 1e-8, 1e-2, false}, .groups = true},
    {"optim_sgd_onecycle", O_SGD, .sgd = {0.1, 0.9, 0, 0, false}, .one_cycle = ONE_CYCLE_SGD},
    {"optim_adam_onecycle", O_ADAM, .adam = {1e-2, 0.9, 0.999, 1e-8, 0, false}, .one_cycle = ONE_CYCLE_ADAM},
    {"optim_rmsprop_onecycle", O_RMSPROP, .rmsprop = {1e-2, 0.99, 1e-8, 0, 0.5, false},
     .one_cycle = ONE_CYCLE_RMSPROP},
};
#define N_OPTIM_CASES (int)(sizeof OPTIM_CASES / sizeof OPTIM_CASES[0])

/* The parameters after each step: the defaults. They are O(0.1 .. 1) and move by
 * lr * O(0.1) per step; brick's and torch's gradients differ by float32 rounding (~1e-9 to
 * 1e-8 absolute). SGD turns that into parameter differences of the same size (worst 0.05
 * of this tolerance over 510 seeds). Adam's step lr * m / (sqrt(v) + eps) is scale-free in
 * the gradient, so it turns the *relative* error of a tiny gradient into an error of order
 * lr times it: the generator redraws data with an effective gradient below 1e-5 (see
 * ADAM_MIN_GRAD in gen_losses_optim.py; ~13% of draws), after which the worst over 510
 * seeds was 0.45 of this tolerance. */
#define PARAM_RTOL RTOL
#define PARAM_ATOL ATOL

/* The optimizer state after the last step. momentum_buffer and exp_avg are weighted sums
 * of gradients and are compared like gradients (RTOL, ATOL). exp_avg_sq and
 * max_exp_avg_sq are (1 - beta2) times sums of squared gradients, about 1e-5 here, so a
 * fixed atol of 1e-6 would accept anything: their atol is ATOL times the tensor's largest
 * |value| (the role ATOL plays for O(1) values; the sums have no cancellation, so small
 * entries are small squares, not rounding residues).
 * Their rtol is the default: torch forms 1 - beta2 in double and rounds it to float32
 * (0.001f); brick's settings are doubles for this reason (a float beta2 gave 9.99987e-4 and
 * a systematic 1.29e-5 relative error, found by this test). */
#define STATE_RTOL RTOL
#define STATE_ATOL ATOL
#define EXP_AVG_SQ_RTOL RTOL
/* RMSprop moves a parameter by lr g / rms(g) (times up to 1 / (1 - momentum) with
 * momentum): scale-free in the gradient like Adam's step, but up to 1 / sqrt(1 - alpha)
 * = 10 times larger, so a small gradient's relative float32 rounding error reaches the
 * parameter ~10 times amplified, more with momentum. torch's own float32 run differs from
 * its float64 run by as much: 9.1e-6 (seed 43, momentum_wd) and 4.0e-6 (seed 40,
 * centered_momentum_wd) on parameters of ~0.1, where brick differed from torch's float32 by
 * 2.1e-6 and 5.5e-6 (ATOL failed both); at seed 63 torch's float32 and float64 runs
 * differ by 1.6e-5 and brick's by 1.53e-5 from torch's float32 (0.6 of an atol of 2e-5,
 * the worst over 70 seeds). So RMSprop's parameters get an atol of lr * 4e-3 (4e-5 at lr
 * 1e-2: 4e-4 of one step of ~lr * 10; a wrong formula is off by a good part of a step),
 * and its momentum_buffer, the step divided by the lr, that divided by the lr (4e-3, on
 * buffers of O(1 .. 10)). Its square_avg and grad_avg are sums of the gradients at those
 * parameters, so their atol grows by the same factor as the parameters' (40 at lr 1e-2;
 * seed 40's square_avg was 1.22 of the unscaled one). */
#define RMSPROP_PARAM_ATOL(lr) ((lr)*4e-3)
#define RMSPROP_BUF_ATOL(lr) (RMSPROP_PARAM_ATOL(lr) / (lr))

static double max_abs_of(const bk_tensor *t) {
    double m = 0;
    for (int64_t i = 0; t && i < t->numel; i++)
        if (fabs(t->data[i]) > m) m = fabs(t->data[i]);
    return m;
}

static int find_state(const bk_optim *o, const char *name) {
    for (int i = 0; i < bk_optim_state_count(o); i++)
        if (strcmp(bk_optim_state_name(o, i), name) == 0) return i;
    return -1;
}

/* Sets the model to the case's starting weights and reads its batch (X, y): 0, or -1 after
 * a failed CHECK. The model is the generator's Sequential(Linear(6, 8), Tanh, Linear(8, 3)). */
static int load_model_case(const char *case_name, bk_safetensors *ref, const bk_param_list *params,
                           bk_tensor **X, int64_t **y) {
    const char *meta_params = bk_safetensors_meta(ref, "param_names");
    char names[256] = "";
    for (int i = 0; i < params->n; i++)
        snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s", i ? "," : "", params->names[i]);
    if (!meta_params || strcmp(meta_params, names) != 0)
        fprintf(stderr, "# %s: parameters %s here, torch %s\n", case_name, names,
                meta_params ? meta_params : "(none)");
    CHECK(meta_params && strcmp(meta_params, names) == 0);

    // The same starting weights and batch as torch.
    for (int i = 0; i < params->n; i++) {
        char key[160];
        snprintf(key, sizeof key, "init.%s", params->names[i]);
        const bk_tensor *w = bk_safetensors_get(ref, key);
        CHECK(w && bk_copy(params->tensors[i], w) == 0);
        if (!w) return -1;
    }
    const bk_tensor *Xref = bk_safetensors_get(ref, "X"), *yref = bk_safetensors_get(ref, "y");
    CHECK(Xref && yref);
    if (!Xref || !yref) return -1;
    *X = bk_tensor_clone_owned(Xref);
    *y = labels_from(yref);
    CHECK(*X && *y);
    return *X && *y ? 0 : -1;
}

static void run_optim_case(const optim_case *oc) {
    bk_safetensors *ref = open_case(oc->name);
    bk_module *m = bk_nn_sequential(3, bk_nn_linear(6, 8), bk_nn_tanh(), bk_nn_linear(8, 3));
    bk_param_list *params = m ? bk_module_named(m, BK_PARAMS) : NULL;
    bk_optim *o = NULL;
    bk_tensor *X = NULL;
    int64_t *y = NULL;
    CHECK(ref && m && params);
    if (!ref || !m || !params) goto done;
    if (load_model_case(oc->name, ref, params, &X, &y) != 0) goto done;
    const bk_tensor *loss_ref = bk_safetensors_get(ref, "loss");
    CHECK(loss_ref && loss_ref->numel == STEPS);
    if (!loss_ref || loss_ref->numel != STEPS) goto done;

    switch (oc->kind) {
    case O_SGD: o = bk_optim_sgd(m, oc->sgd); break;
    case O_ADAM: o = bk_optim_adam(m, oc->adam); break;
    case O_ADAMW: o = bk_optim_adamw(m, oc->adam); break;
    case O_RMSPROP: o = bk_optim_rmsprop(m, oc->rmsprop); break;
    case O_ADAGRAD: o = bk_optim_adagrad(m, oc->adagrad); break;
    }
    CHECK(o != NULL);
    if (!o) goto done;
    /* torch: [{'params': weights}, {'params': biases, 'weight_decay': 0, 'lr': lr / 2}] */
    if (oc->groups) CHECK(bk_optim_add_group(o, bk_param_is_bias_or_norm, NULL, 0.0, 0.5) == 2);

    // The loop of the PyTorch script: zero_grad, loss, backward, step; then compare every
    // parameter with torch's after the same step.
    bk_tensor *losses = bk_tensor_new(1, (int64_t[]){STEPS});
    CHECK(losses != NULL);
    if (!losses) goto done;
    for (int k = 1; k <= STEPS; k++) {
        if (oc->one_cycle.total_steps > 0) { /* torch's OneCycleLR, stepped after each step */
            double momentum = NAN, lr = bk_lr_one_cycle(&oc->one_cycle, k - 1, &momentum);
            bk_optim_set_lr(o, lr);
            CHECK(bk_optim_set_momentum(o, momentum) == 0);
        }
        bk_optim_zero_grad(o);
        bk_tensor *loss = bk_cross_entropy(bk_forward(m, X), y, X->shape[0], BK_REDUCTION_MEAN);
        CHECK(loss != NULL);
        if (!loss) {
            bk_tensor_free(losses);
            goto done;
        }
        losses->data[k - 1] = bk_item(loss);
        CHECK(bk_backward(loss) == 0);
        CHECK(bk_optim_step(o) == 0);
        bk_arena_reset(NULL);

        parity_stats st = {0};
        for (int i = 0; i < params->n; i++) {
            char key[160], label[200];
            snprintf(key, sizeof key, "step%d.%s", k, params->names[i]);
            snprintf(label, sizeof label, "%s %s", oc->name, key);
            double atol = oc->kind == O_RMSPROP ? RMSPROP_PARAM_ATOL(oc->rmsprop.lr) : PARAM_ATOL;
            parity_compare(label, params->tensors[i], bk_safetensors_get(ref, key), PARAM_RTOL, atol, &st);
        }
        char what[96];
        snprintf(what, sizeof what, "%s step %d", oc->name, k);
        parity_stats_print(what, &st);
    }
    parity_stats lst = {0};
    char label[320];
    snprintf(label, sizeof label, "%s loss per step", oc->name);
    parity_compare(label, losses, loss_ref, RTOL, ATOL, &lst);
    bk_tensor_free(losses);

    // The optimizer state against state_dict() after the last step, by name. torch keeps
    // no "step" for SGD and no momentum_buffer without momentum (None), nor max_exp_avg_sq
    // without amsgrad: only what torch has is compared; brick's step counts must be STEPS.
    char buf[4096];
    snprintf(buf, sizeof buf, "%s",
             bk_safetensors_meta(ref, "state_names") ? bk_safetensors_meta(ref, "state_names") : "");
    static const char *const slots[] =
        {"step",       "exp_avg",  "exp_avg_sq", "max_exp_avg_sq", "momentum_buffer",
         "square_avg", "grad_avg", "sum"};
    enum { N_SLOTS = (int)(sizeof slots / sizeof slots[0]) };
    parity_stats sst[N_SLOTS] = {{0}};
    int n_torch = 0;
    for (char *name = strtok(buf, ","); name; name = strtok(NULL, ","), n_torch++) {
        char key[200];
        snprintf(key, sizeof key, "state.%s", name);
        snprintf(label, sizeof label, "%s %s", oc->name, key);
        int at = find_state(o, name), slot = 0;
        if (at < 0) fprintf(stderr, "# %s: brick has no optimizer state %s\n", oc->name, name);
        CHECK(at >= 0);
        if (at < 0) continue;
        const char *dot = strrchr(name, '.');
        for (int j = 0; j < N_SLOTS; j++)
            if (strcmp(dot + 1, slots[j]) == 0) slot = j;
        const bk_tensor *want = bk_safetensors_get(ref, key);
        /* exp_avg_sq, max_exp_avg_sq, square_avg, sum: sums of squares */
        bool squares = slot == 2 || slot == 3 || slot == 5 || slot == 7;
        double rtol = squares ? EXP_AVG_SQ_RTOL : STATE_RTOL;
        double atol = squares && max_abs_of(want) > 0 ? STATE_ATOL * max_abs_of(want) : STATE_ATOL;
        if (oc->kind == O_RMSPROP)
            atol = slot == 4 ? RMSPROP_BUF_ATOL(oc->rmsprop.lr)
                             : atol * RMSPROP_PARAM_ATOL(oc->rmsprop.lr) / PARAM_ATOL;
        parity_compare(label, bk_optim_state_tensor(o, at), want, rtol, atol, &sst[slot]);
    }
    // Per parameter (4): Adam step, exp_avg, exp_avg_sq (+ max_exp_avg_sq); SGD with
    // momentum: momentum_buffer; RMSprop step, square_avg (+ momentum_buffer with momentum,
    // + grad_avg when centered); Adagrad step, sum. Guards against an empty or misread list.
    int want_torch = 0;
    switch (oc->kind) {
    case O_SGD: want_torch = oc->sgd.momentum != 0 ? 4 : 0; break;
    case O_ADAM:
    case O_ADAMW: want_torch = 4 * (oc->adam.amsgrad ? 4 : 3); break;
    case O_RMSPROP: want_torch = 4 * (2 + (oc->rmsprop.momentum > 0) + oc->rmsprop.centered); break;
    case O_ADAGRAD: want_torch = 4 * 2; break;
    }
    CHECK(n_torch == want_torch);
    for (int i = 0; i < bk_optim_state_count(o); i++) {
        const char *name = bk_optim_state_name(o, i);
        size_t len = strlen(name);
        if (len > 5 && strcmp(name + len - 5, ".step") == 0) {
            if (bk_item(bk_optim_state_tensor(o, i)) != (float)STEPS)
                fprintf(stderr, "# %s: %s = %g, want %d\n", oc->name, name,
                        (double)bk_item(bk_optim_state_tensor(o, i)), STEPS);
            CHECK(bk_item(bk_optim_state_tensor(o, i)) == (float)STEPS);
        }
    }
    for (int j = 0; j < N_SLOTS; j++) {
        snprintf(label, sizeof label, "%s state %s", oc->name, slots[j]);
        if (sst[j].compared) parity_stats_print(label, &sst[j]);
    }

done:
    bk_optim_free(o);
    bk_param_list_free(params);
    bk_module_free(m);
    bk_tensor_free(X);
    free(y);
    bk_safetensors_free(ref);
}

/* ======================================================================================
 * Gradient clipping (CLIP_CASES in gen_losses_optim.py)
 * ====================================================================================== */

typedef struct clip_case {
    const char *name;
    bool value;       /* bk_clip_grad_value, else bk_clip_grad_norm */
    double limit;     /* max_norm or clip_value */
    double norm_type; /* bk_clip_grad_norm's */
} clip_case;

static const clip_case CLIP_CASES[] = {
    {"clip_norm2", false, 0.1, 2.0},     {"clip_norm_inf", false, 0.02, INFINITY},
    {"clip_norm1", false, 0.1, 1.0},     {"clip_norm3", false, 0.1, 3.0},
    {"clip_norm_none", false, 1e3, 2.0}, {"clip_value", true, 0.02, 0},
};
#define N_CLIP_CASES (int)(sizeof CLIP_CASES / sizeof CLIP_CASES[0])

/* The gradients differ from torch's by float32 rounding (as in the optimizer cases), the
 * norm is a sum of their squares (or powers) with no cancellation, and the clip multiplies
 * by a factor < 1 or clamps: the default tolerances. */
static void run_clip_case(const clip_case *cc) {
    bk_safetensors *ref = open_case(cc->name);
    bk_module *m = bk_nn_sequential(3, bk_nn_linear(6, 8), bk_nn_tanh(), bk_nn_linear(8, 3));
    bk_param_list *params = m ? bk_module_named(m, BK_PARAMS) : NULL;
    bk_tensor *X = NULL, *norm = NULL;
    int64_t *y = NULL;
    CHECK(ref && m && params);
    if (!ref || !m || !params || load_model_case(cc->name, ref, params, &X, &y) != 0) goto done;
    bk_tensor *loss = bk_cross_entropy(bk_forward(m, X), y, X->shape[0], BK_REDUCTION_MEAN);
    CHECK(loss && bk_backward(loss) == 0);
    bk_arena_reset(NULL);
    norm = bk_tensor_new(1, (int64_t[]){1});
    CHECK(norm != NULL);
    if (!norm) goto done;
    if (cc->value) CHECK(bk_clip_grad_value(m, cc->limit) == 0);
    else norm->data[0] = (float)bk_clip_grad_norm(m, cc->limit, cc->norm_type, true);
    parity_stats st = {0};
    char label[200];
    snprintf(label, sizeof label, "%s norm", cc->name);
    parity_compare(label, norm, bk_safetensors_get(ref, "norm"), RTOL, ATOL, &st);
    for (int i = 0; i < params->n; i++) {
        char key[160];
        snprintf(key, sizeof key, "grad.%s", params->names[i]);
        snprintf(label, sizeof label, "%s %s", cc->name, key);
        parity_compare(label, params->tensors[i]->grad, bk_safetensors_get(ref, key), RTOL, ATOL, &st);
    }
    parity_stats_print(cc->name, &st);
done:
    bk_tensor_free(norm);
    bk_param_list_free(params);
    bk_module_free(m);
    bk_tensor_free(X);
    free(y);
    bk_safetensors_free(ref);
}

/* ======================================================================================
 * Learning-rate schedules
 * ====================================================================================== */

typedef enum { S_COSINE, S_STEP } sched_kind;

/* Keep in step with SCHED_CASES in gen_losses_optim.py. */
typedef struct sched_case {
    const char *name;
    sched_kind kind;
    double lr;
    int period;   /* T_max (cosine) or step_size (step) */
    double param; /* eta_min (cosine) or gamma (step) */
} sched_case;

static const sched_case SCHED_CASES[] = {
    {"sched_cosine", S_COSINE, 0.05, 10, 0.0},
    {"sched_cosine_min", S_COSINE, 0.1, 7, 1e-3},
    {"sched_step", S_STEP, 0.1, 3, 0.5},
};
#define N_SCHED_CASES (int)(sizeof SCHED_CASES / sizeof SCHED_CASES[0])

/* torch steps its schedulers with recursive formulas in double, brick uses the closed
 * forms (as torch's _get_closed_form_lr): equal up to a few double ulps, then rounded to
 * float32 for the file. ATOL covers the lr of 0 at T_max (torch's recursion leaves ~1e-18). */
#define SCHED_RTOL 1e-6
#define SCHED_ATOL 1e-12

static void run_sched_case(const sched_case *sc) {
    bk_safetensors *ref = open_case(sc->name);
    bk_tensor *want = ref ? bk_safetensors_get(ref, "lr") : NULL;
    CHECK(want && want->ndim == 1);
    if (want && want->ndim == 1) {
        bk_tensor *got = bk_empty(1, want->shape);
        CHECK(got != NULL);
        for (int e = 0; got && e < (int)want->numel; e++)
            got->data[e] = (float)(sc->kind == S_COSINE ? bk_lr_cosine(sc->lr, e, sc->period, sc->param)
                                                        : bk_lr_step_decay(sc->lr, e, sc->period, sc->param));
        parity_stats st = {0};
        if (got) parity_compare("lr", got, want, SCHED_RTOL, SCHED_ATOL, &st);
        parity_stats_print(sc->name, &st);
    }
    bk_safetensors_free(ref);
}

/* ======================================================================================
 * Per-step schedules (STEP_SCHED_CASES in gen_losses_optim.py)
 * ====================================================================================== */

typedef enum { L_LINEAR, L_LAMBDA, L_ONE_CYCLE, L_PLATEAU } step_sched_kind;

/* Keep in step with STEP_SCHED_CASES in gen_losses_optim.py. momentum: the optimizer's own
 * (SGD's momentum, Adam's beta1), which only OneCycleLR changes. */
typedef struct step_sched_case {
    const char *name;
    step_sched_kind kind;
    double lr, momentum;
    int64_t total_iters;                    /* linear */
    double start_factor, end_factor;        /* linear */
    bk_one_cycle_config (*one_cycle)(void); /* one cycle: its settings */
    bk_lr_plateau (*plateau)(void);         /* plateau: its settings */
} step_sched_case;

static bk_one_cycle_config one_cycle_defaults(void) { return BK_ONE_CYCLE_DEFAULTS(0.1, 1000); }

static bk_one_cycle_config one_cycle_linear3(void) {
    bk_one_cycle_config c = BK_ONE_CYCLE_DEFAULTS(0.01, 250);
    c.pct_start = 0.25;
    c.anneal = BK_ANNEAL_LINEAR;
    c.three_phase = true;
    c.div_factor = 10;
    c.final_div_factor = 100;
    return c;
}

static bk_one_cycle_config one_cycle_epochs(void) {
    bk_one_cycle_config c = BK_ONE_CYCLE_DEFAULTS(0.5, 7 * 13); /* epochs x steps_per_epoch */
    c.pct_start = 0.4;
    c.base_momentum = 0.8;
    c.max_momentum = 0.9;
    return c;
}

static bk_lr_plateau plateau_min(void) {
    bk_lr_plateau p = BK_LR_PLATEAU_DEFAULTS;
    p.patience = 3;
    p.factor = 0.5;
    p.cooldown = 2;
    p.min_lr = 1e-3;
    return p;
}

static bk_lr_plateau plateau_max_abs(void) {
    bk_lr_plateau p = BK_LR_PLATEAU_DEFAULTS;
    p.mode_max = true;
    p.threshold_abs = true;
    p.threshold = 0.01;
    p.patience = 2;
    p.factor = 0.3;
    return p;
}

static double decay_097(int64_t step, void *ud) { /* lambda k: 0.97 ** k */
    (void)ud;
    return pow(0.97, (double)step);
}

/* The per-step parity is in double: the lrs are repr() strings in the file. Closed forms
 * against torch's recursions (LinearLR) agree to a few double ulps per step. */
#define STEP_SCHED_RTOL 1e-12

static const step_sched_case STEP_SCHED_CASES[] = {
    {"lrs_linear_defaults", L_LINEAR, 0.1, 0.9, 5, 1.0 / 3, 1.0, NULL, NULL},
    {"lrs_linear_warmup", L_LINEAR, 0.1, 0.9, 50, 0.01, 1.0, NULL, NULL},
    {"lrs_linear_decay", L_LINEAR, 3e-3, 0.9, 30, 1.0, 0.25, NULL, NULL},
    {"lrs_lambda", L_LAMBDA, 0.05, 0.9, 0, 0, 0, NULL, NULL},
    {"lrs_onecycle", L_ONE_CYCLE, 0.1, 0.9, 0, 0, 0, one_cycle_defaults, NULL},
    {"lrs_onecycle_linear3", L_ONE_CYCLE, 0.01, 0.9, 0, 0, 0, one_cycle_linear3, NULL},
    {"lrs_onecycle_epochs", L_ONE_CYCLE, 0.5, 0.9, 0, 0, 0, one_cycle_epochs, NULL},
    {"lrs_plateau", L_PLATEAU, 0.1, 0.9, 0, 0, 0, NULL, plateau_min},
    {"lrs_plateau_max_abs", L_PLATEAU, 0.02, 0.9, 0, 0, 0, NULL, plateau_max_abs},
};
#define N_STEP_SCHED_CASES (int)(sizeof STEP_SCHED_CASES / sizeof STEP_SCHED_CASES[0])

/* Parses the comma-separated doubles of metadata key into out (at most cap); the count, or
 * -1. */
static int parse_doubles(const bk_safetensors *ref, const char *key, double *out, int cap) {
    const char *s = bk_safetensors_meta(ref, key);
    int n = 0;
    while (s && *s && n < cap) {
        char *end;
        out[n++] = strtod(s, &end);
        if (end == s) return -1;
        s = *end == ',' ? end + 1 : end;
    }
    return s && !*s ? n : -1;
}

static void run_step_sched_case(const step_sched_case *sc) {
    bk_one_cycle_config one_cycle = sc->one_cycle ? sc->one_cycle() : BK_ONE_CYCLE_DEFAULTS(0, 0);
    bk_lr_plateau plateau = sc->plateau ? sc->plateau() : BK_LR_PLATEAU_DEFAULTS;
    bk_safetensors *ref = open_case(sc->name);
    enum { CAP = 4096 };
    static double want_lr[CAP], want_m[CAP];
    int n = ref ? parse_doubles(ref, "lr", want_lr, CAP) : -1;
    CHECK(n > 0 && parse_doubles(ref, "momentum", want_m, CAP) == n);
    const bk_tensor *metric = ref ? bk_safetensors_get(ref, "metric") : NULL;
    CHECK(sc->kind != L_PLATEAU || (metric && metric->numel == n));
    if (sc->kind == L_PLATEAU) CHECK(bk_lr_plateau_init(&plateau) == 0);
    double worst = 0, lr = sc->lr;
    int bad = 0;
    for (int k = 0; k < n && (sc->kind != L_PLATEAU || metric); k++) {
        double m = sc->momentum;
        switch (sc->kind) {
        case L_LINEAR: lr = bk_lr_linear(sc->lr, k, sc->total_iters, sc->start_factor, sc->end_factor); break;
        case L_LAMBDA: lr = bk_lr_lambda(sc->lr, k, decay_097, NULL); break;
        case L_ONE_CYCLE: lr = bk_lr_one_cycle(&one_cycle, k, &m); break;
        case L_PLATEAU: break; /* lr: the one in use, cut after an epoch's metric (below) */
        }
        double err = fmax(fabs(lr - want_lr[k]) / fabs(want_lr[k]), fabs(m - want_m[k]) / fabs(want_m[k]));
        worst = fmax(worst, err);
        if (!(err <= STEP_SCHED_RTOL) && bad++ < 5)
            fprintf(stderr, "#   %s step %d: lr %.17g momentum %.17g, torch %.17g %.17g\n", sc->name, k, lr,
                    m, want_lr[k], want_m[k]);
        if (sc->kind == L_PLATEAU) lr = bk_lr_plateau_step(&plateau, metric->data[k], lr);
    }
    CHECK(bad == 0);
    if (parity_verbose()) printf("# == %s: %d steps, max rel error %.3g\n", sc->name, n, worst);
    bk_safetensors_free(ref);
}

/* ======================================================================================
 * Tests
 * ====================================================================================== */

static const loss_case *loss_case_;
static const optim_case *optim_case_;
static const sched_case *sched_case_;
static const clip_case *clip_case_;
static const step_sched_case *step_sched_case_;
TEST(run_current_loss_case) { run_loss_case(loss_case_); }
TEST(run_current_optim_case) { run_optim_case(optim_case_); }
TEST(run_current_sched_case) { run_sched_case(sched_case_); }
TEST(run_current_clip_case) { run_clip_case(clip_case_); }
TEST(run_current_step_sched_case) { run_step_sched_case(step_sched_case_); }

int main(void) {
    if (parity_skip_all("test_parity_optim", "gen_losses_optim.py"))
        return test_summary("test_parity_optim (skipped)");
    for (int i = 0; i < N_LOSS_CASES; i++) {
        loss_case_ = &LOSS_CASES[i];
        parity_run(loss_case_->name, run_current_loss_case, false);
    }
    for (int i = 0; i < N_OPTIM_CASES; i++) {
        optim_case_ = &OPTIM_CASES[i];
        parity_run(optim_case_->name, run_current_optim_case, false);
    }
    for (int i = 0; i < N_CLIP_CASES; i++) {
        clip_case_ = &CLIP_CASES[i];
        parity_run(clip_case_->name, run_current_clip_case, false);
    }
    for (int i = 0; i < N_SCHED_CASES; i++) {
        sched_case_ = &SCHED_CASES[i];
        parity_run(sched_case_->name, run_current_sched_case, false);
    }
    for (int i = 0; i < N_STEP_SCHED_CASES; i++) {
        step_sched_case_ = &STEP_SCHED_CASES[i];
        parity_run(step_sched_case_->name, run_current_step_sched_case, false);
    }
    return test_summary("test_parity_optim");
}
