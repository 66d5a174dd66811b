/* train_loop.c - the training loop of `brick train`, and the step it shares with
 * `brick train-lm` (cli_train_step).
 *
 * Per batch: bk_forward, bk_cross_entropy (mean), the loss checked, bk_optim_zero_grad,
 * bk_backward, bk_optim_step, bk_arena_reset. Before every epoch: the lr of --lr-schedule
 * for it (once per epoch, as torch users step CosineAnnealingLR and StepLR). After every
 * epoch: evaluation on the test split, one summary line, and the files (train_state.c).
 *
 * Interrupts (loop.c, shared with train-lm): SIGINT (Ctrl-C) and SIGTERM only set a flag,
 * checked after every step. The step in progress finishes, the checkpoint is written with
 * the position inside the epoch (the loader generator at the epoch's start, the batches
 * done, the epoch's running sums), and the command exits with 128 + the signal (130 for
 * Ctrl-C). --resume replays the epoch's shuffle from that generator, skips the batches
 * done and goes on, so the final weights equal an uninterrupted run's bit for bit.
 *
 * Numerics: a batch whose loss is NaN, Inf or above --max-loss stops the run (exit 1)
 * before its backward, so the files of the last finished epoch stay as they were;
 * --detect-anomaly turns on the library's anomaly mode, which names the first op (and its
 * block) that makes a NaN or Inf in the forward or backward.
 */

#include "train.h"

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* train_epoch's result when a signal asked to stop (never returned by train_run). */
enum { TRAIN_INTERRUPTED = 100 };

/* ---- the step both commands take ---------------------------------------------------- */

const char *cli_loss_problem(double l, double max_loss) {
    if (isnan(l)) return "NaN";
    if (isinf(l)) return "infinite";
    if (max_loss > 0 && l > max_loss) return "diverging";
    return NULL;
}

cli_step_result cli_train_step(bk_module *m, bk_optim *o, bk_tensor *x, const int64_t *y, int64_t n,
                               double max_loss, double *l, bk_tensor **logits) {
    bk_tensor *out = bk_forward(m, x); /* (n, classes) */
    bk_tensor *loss = bk_cross_entropy(out, y, n, BK_REDUCTION_MEAN);
    if (!loss) return CLI_STEP_FAILED;
    *l = bk_item(loss);
    if (cli_loss_problem(*l, max_loss)) return CLI_STEP_BAD_LOSS;
    bk_optim_zero_grad(o);
    if (bk_backward(loss) != 0 || bk_optim_step(o) != 0) return CLI_STEP_FAILED;
    if (logits) *logits = out;
    return CLI_STEP_DONE;
}

/* ---- brick train's steps --------------------------------------------------------------- */

/* What a run stopped by a bad loss leaves behind: it writes nothing after the failure. */
#define KEPT_FILES "the files saved before (model, checkpoint) are left as they were"

/* Reports a failed forward, backward or update (the library's message; an anomaly is
 * most often a too large learning rate). Returns CLI_RUNTIME. */
static int step_failed(const run *r, int epoch, int64_t batch) {
    const char *e = bk_last_error();
    if (!strncmp(e, "anomaly: ", 9))
        return cli_fail("epoch %d, batch %" PRId64
                        ": %s; stopped (try a smaller --lr than %g); "
                        "%s",
                        epoch, batch, e, r->c.lr, KEPT_FILES);
    return cli_fail("epoch %d, batch %" PRId64 ": %s", epoch, batch, e[0] ? e : "unknown error");
}

/* The stop signal to act on: under mpirun the one every rank agreed on at the last step
 * (a rank that acted on its own signal alone would leave the others waiting). */
static int stop_now(const run *r) { return r->slots.world > 1 ? r->agreed_signal : cli_loop_signal(); }

/* CLI_RUNTIME with the message when the batch's loss l stops the run (printed by rank 0
 * only: every rank has the same l), else CLI_OK. */
static int check_loss(const run *r, double l) {
    const char *bad = cli_loss_problem(l, r->c.max_loss);
    if (!bad) return CLI_OK;
    if (r->slots.rank != 0) return CLI_RUNTIME;
    char why[96] = "";
    if (!strcmp(bad, "diverging")) snprintf(why, sizeof why, " (%g > --max-loss %g)", l, r->c.max_loss);
    return cli_fail("the loss is %s at epoch %d, batch %" PRId64
                    "%s: stopped; try a "
                    "smaller --lr than %g%s; %s",
                    bad, r->done_epochs + 1, r->pos.batch + 1, why, r->c.lr,
                    r->c.detect_anomaly ? ""
                                        : " (--detect-anomaly names the op that "
                                          "makes a NaN or Inf)",
                    KEPT_FILES);
}

/* One step on the whole batch with its mean loss (cli_train_step). *l: the loss, *ok:
 * correct predictions. */
static int step_whole(run *r, bk_tensor *x, const int64_t *y, int64_t B, double *l, int64_t *ok) {
    bk_tensor *logits = NULL;
    switch (cli_train_step(r->m, r->o, x, y, B, r->c.max_loss, l, &logits)) {
    case CLI_STEP_FAILED: return step_failed(r, r->done_epochs + 1, r->pos.batch + 1);
    case CLI_STEP_BAD_LOSS: return check_loss(r, *l);
    default: break;
    }
    *ok = bk_count_correct(logits, y, B);
    return CLI_OK;
}

/* One step of regression (a CSV table): the mean squared error of the model's (B, 1) output
 * against the standardised targets t (B, 1), checked before the backward as in
 * cli_train_step. */
static int step_regression(run *r, bk_tensor *x, bk_tensor *t, double *l) {
    bk_tensor *out = bk_forward(r->m, x); /* (B, 1) */
    bk_tensor *loss = bk_mse_loss(out, t, BK_REDUCTION_MEAN);
    if (!loss) return step_failed(r, r->done_epochs + 1, r->pos.batch + 1);
    *l = bk_item(loss);
    if (cli_loss_problem(*l, r->c.max_loss)) return check_loss(r, *l);
    bk_optim_zero_grad(r->o);
    if (bk_backward(loss) != 0 || bk_optim_step(r->o) != 0)
        return step_failed(r, r->done_epochs + 1, r->pos.batch + 1);
    return CLI_OK;
}

/* One step over the slots (--accumulate, or this rank's slice under mpirun): the loss is
 * checked after the backward (every rank needs the global loss) but before the update. */
static int step_slots(run *r, bk_tensor *x, const int64_t *y, bk_tensor *t, int64_t B, double *l,
                      int64_t *ok) {
    int epoch = r->done_epochs + 1;
    int64_t batch = r->pos.batch + 1;
    cli_step st;
    int rc = cli_slots_step(&r->slots, r->m, x, r->tab.regression ? NULL : y, t, B, r->step,
                            cli_loop_signal(), &st);
    if (st.failed_rank >= 0) {
        r->agreed = st.agreed;
        if (st.failed_rank == r->slots.rank) {
            bk_set_error("%s", st.error);
            step_failed(r, epoch, batch);
        } else if (r->slots.rank == 0) {
            cli_fail("rank %d failed in epoch %d, batch %" PRId64
                     " (its message is above): "
                     "every rank stops; %s",
                     st.failed_rank, epoch, batch, KEPT_FILES);
        }
        return CLI_RUNTIME;
    }
    if (rc) return rc; /* this rank alone: the job is aborted */
    r->agreed_signal = st.signal;
    *l = st.loss_sum / (double)B;
    *ok = st.correct;
    if ((rc = check_loss(r, *l))) {
        r->agreed = true;
        return rc;
    }
    if (bk_optim_step(r->o) != 0) return step_failed(r, epoch, batch);
    return CLI_OK;
}

/* One epoch of training (or the rest of one, after a resume inside it); fills e's train
 * fields. CLI_OK, CLI_RUNTIME, or TRAIN_INTERRUPTED with r->pos saying where it stopped. */
static int train_epoch(run *r, cli_progress *pg, cli_epoch *e) {
    epoch_pos *ps = &r->pos;
    int epoch = r->done_epochs + 1;
    int64_t n_batches = bk_loader_num_batches(r->loader);
    /* A function of the epoch alone (plateau: of the state the checkpoint holds), so a
     * resume inside the epoch sets the same lr; onecycle's is set before every step. With
     * no schedule the optimizer keeps the lr it was made with. */
    if (r->c.schedule != SCHEDULE_NONE && r->c.schedule != SCHEDULE_ONECYCLE) {
        double lr = train_schedule_lr(&r->c, r->done_epochs, r->step, n_batches, NULL);
        if (isnan(lr)) return cli_fail("epoch %d: the lr schedule: %s", epoch, bk_last_error());
        bk_optim_set_lr(r->o, lr);
    }
    e->lr = bk_optim_lr(r->o);
    bk_module_train(r->m, true);
    if (!r->resume_mid) memset(ps, 0, sizeof *ps); /* a resume set the rest of pos */
    ps->start_rng = bk_loader_rng(r->loader);      /* (setup restored it on a resume) */
    bk_loader_start(r->loader);
    /* The same shuffle as before the interrupt; skip what was done (no copying). */
    for (int64_t k = 0; r->resume_mid && k < ps->batch; k++)
        if (bk_loader_next(r->loader, NULL, NULL, NULL) <= 0)
            return cli_fail("%s: batch %" PRId64 " of epoch %d is past the %" PRId64
                            " batches "
                            "of an epoch (different data?)",
                            r->c.resume, ps->batch, epoch, n_batches);
    r->resume_mid = false;
    cli_progress_start(pg, epoch, (int)r->c.epochs, n_batches);
    int64_t B;
    bk_tensor *x, *t = NULL;
    const int64_t *y;
    while ((B = bk_loader_next(r->loader, &x, &y, r->tab.regression ? &t : NULL)) > 0) {
        double l = 0;
        int64_t ok = 0;
        if (r->c.schedule == SCHEDULE_ONECYCLE) { /* a function of the step count alone */
            double momentum, lr = train_schedule_lr(&r->c, r->done_epochs, r->step, n_batches, &momentum);
            if (isnan(lr) || (train_cycles_momentum(&r->c) && bk_optim_set_momentum(r->o, momentum) != 0))
                return cli_fail("step %" PRId64 ": the lr schedule: %s", r->step + 1, bk_last_error());
            bk_optim_set_lr(r->o, lr);
        }
        int rc = r->slots.ddp        ? step_slots(r, x, y, t, B, &l, &ok)
                 : r->tab.regression ? step_regression(r, x, t, &l)
                                     : step_whole(r, x, y, B, &l, &ok);
        bk_arena_reset(NULL);
        if (rc) {
            cli_progress_clear(pg);
            return rc;
        }
        r->step++;
        ps->batch++;
        ps->loss_sum += l * (double)B;
        ps->correct += ok;
        ps->seen += B;
        cli_progress_update(pg, ps->batch, ps->seen, ps->loss_sum / (double)ps->seen);
        cli_loop_after_step(&r->loop, r->step);
        if (stop_now(r)) {
            cli_progress_clear(pg);
            return TRAIN_INTERRUPTED;
        }
    }
    cli_progress_clear(pg);
    if (B < 0) return cli_fail(NULL);
    e->train_loss = ps->seen ? ps->loss_sum / (double)ps->seen : 0;
    e->train_acc = r->tab.regression ? NAN : ps->seen ? (double)ps->correct / (double)ps->seen : 0;
    return CLI_OK;
}

/* The checkpoint inside the epoch, for cli_loop_interrupted. */
static int save_in_epoch(void *r) { return train_write_checkpoint(r, true); }

/* After a signal: saves the checkpoint (inside the epoch when in_epoch), says where it is
 * and how to go on, and returns the exit status 128 + signal. */
static int interrupted(run *r, bool in_epoch) {
    int sig = stop_now(r);
    cli_loop_saving(true);                    /* from here to the exit: a repeated signal waits */
    r->agreed = true;                         /* under mpirun, every rank stops here */
    if (r->slots.rank != 0) return 128 + sig; /* rank 0 saves and tells */
    char where[160];
    if (in_epoch)
        snprintf(where, sizeof where, "in epoch %d after batch %" PRId64 " of %" PRId64 " (step %" PRId64 ")",
                 r->done_epochs + 1, r->pos.batch, bk_loader_num_batches(r->loader), r->step);
    else snprintf(where, sizeof where, "after epoch %d", r->done_epochs);
    return cli_loop_interrupted(&r->loop, sig, where, r->ckpt_path, r->c.out,
                                r->c.detect_anomaly ? "--detect-anomaly" : NULL,
                                in_epoch ? save_in_epoch : NULL, r);
}

/* After an epoch's training and evaluation (rank 0): the epoch's line and the files. */
static int end_epoch(run *r, cli_epoch e, double t0) {
    e.seconds = cli_now() - t0;
    r->hist[r->n_hist++] = e;
    r->done_epochs++;
    char lr[48] = "";
    if (r->c.schedule != SCHEDULE_NONE) snprintf(lr, sizeof lr, "  lr %.6g", e.lr);
    if (r->tab.regression)
        printf("epoch %*d/%" PRId64
               "  train loss %.4f  test loss %.4f  test rmse %.4f  test mae %.4f  %.2f s%s\n",
               r->c.epochs >= 10 ? 2 : 1, e.epoch, r->c.epochs, e.train_loss, e.test_loss, e.test_rmse,
               e.test_mae, e.seconds, lr);
    else
        printf("epoch %*d/%" PRId64
               "  train loss %.4f  train acc %.4f  test loss %.4f  "
               "test acc %.4f  %.2f s%s\n",
               r->c.epochs >= 10 ? 2 : 1, e.epoch, r->c.epochs, e.train_loss, e.train_acc, e.test_loss,
               e.test_acc, e.seconds, lr);
    fflush(stdout);
    cli_loop_saving(true); /* a repeated signal waits for the files */
    int rc = train_write_outputs(r);
    cli_loop_saving(false);
    return rc;
}

/* --early-stop: takes the test metric of epoch e (1-based) into the best so far; true when
 * the last early_stop epochs brought no improvement (strictly better counts). Every rank
 * sees the same metrics, so every rank decides the same. */
static bool early_stop_now(run *r, int e, double test_loss, double test_acc) {
    bool on_acc = !strcmp(r->c.early_stop_on, "acc");
    double v = on_acc ? -test_acc : test_loss; /* lower is better */
    if (r->es_best_epoch == 0 || v < r->es_best) {
        r->es_best = v;
        r->es_best_epoch = e;
    }
    return r->c.early_stop > 0 && e - r->es_best_epoch >= r->c.early_stop;
}

static int train_loop(run *r) {
    cli_progress *pg = &r->loop.pg;
    int64_t first_step = r->step;
    r->es_best_epoch = 0; /* a resumed run: the epochs it has done count (their history) */
    bool stop_early = false;
    for (int i = 0; i < r->n_hist && !stop_early; i++)
        stop_early = early_stop_now(r, r->hist[i].epoch, r->hist[i].test_loss, r->hist[i].test_acc);
    while (r->done_epochs < r->c.epochs && !stop_early) {
        if (stop_now(r)) return interrupted(r, false);
        double t0 = cli_now() - (r->resume_mid ? r->pos.seconds : 0);
        cli_epoch e = {.epoch = r->done_epochs + 1};
        int rc = train_epoch(r, pg, &e);
        if (rc == TRAIN_INTERRUPTED) {
            r->pos.seconds = cli_now() - t0;
            return interrupted(r, true);
        }
        if (rc) return rc;
        /* In batches of the training batch size: in no-grad mode every intermediate of a
         * batch stays in the arena until the reset after it, so a larger evaluation batch
         * would raise the run's peak memory above the training step's. Under mpirun the
         * ranks share the batches. */
        char note[64];
        snprintf(note, sizeof note, "evaluating %" PRId64 " test %s", r->test->n,
                 r->tab.on ? "rows" : "images");
        cli_progress_note(pg, note);
        if (r->tab.regression) { /* (under mpirun every rank evaluates it all: the same numbers) */
            e.test_acc = NAN;
            rc = cli_evaluate_regression(r->m, r->test, r->c.batch, &r->tab, &e.test_loss, &e.test_rmse,
                                         &e.test_mae)
                     ? cli_fail(NULL)
                     : CLI_OK;
        } else {
            rc = cli_dist_evaluate(r->m, r->test, r->c.batch, &e.test_loss, &e.test_acc, &r->agreed);
        }
        cli_progress_clear(pg);
        if (rc) return rc;
        /* the lr the epoch ended with (onecycle: its last step's); then plateau: the test
         * loss decides the next epoch's lr (every rank has the same), and the state goes
         * into this epoch's checkpoint */
        e.lr = bk_optim_lr(r->o);
        if (r->c.schedule == SCHEDULE_PLATEAU)
            r->c.lr_now = bk_lr_plateau_step(&r->c.plateau, e.test_loss, r->c.lr_now);
        /* Rank 0 writes; then every rank learns whether that worked (the files are
         * written once, after every rank finished the epoch). */
        rc = r->slots.rank == 0 ? end_epoch(r, e, t0) : CLI_OK;
        if ((rc = cli_dist_agree(rc, &r->agreed))) return rc;
        if (r->slots.rank != 0) r->done_epochs++;
        stop_early = early_stop_now(r, e.epoch, e.test_loss, e.test_acc);
    }
    if (stop_early && r->slots.rank == 0)
        printf("early stop: the test %s has not improved for %" PRId64 " epochs (best %.4f, epoch %d)\n",
               strcmp(r->c.early_stop_on, "acc") ? "loss" : "accuracy", r->c.early_stop,
               strcmp(r->c.early_stop_on, "acc") ? r->es_best : -r->es_best, r->es_best_epoch);
    if (r->slots.rank != 0) return CLI_OK;
    if (r->slots.world > 1 && r->step > first_step) /* waiting for slower ranks included */
        printf("gradient reduction: %.3f s in %" PRId64 " steps, %.3f ms per step (%s)\n",
               bk_ddp_comm_seconds(r->slots.ddp), r->step - first_step,
               1e3 * bk_ddp_comm_seconds(r->slots.ddp) / (double)(r->step - first_step), r->c.reduce);
    const cli_epoch *last = &r->hist[r->n_hist - 1];
    if (r->tab.regression)
        printf("final test rmse %.4f  test mae %.4f (%" PRId64 " test rows)\n", last->test_rmse,
               last->test_mae, r->test->n);
    else
        printf("final test accuracy %.4f (%" PRId64 " test %s)\n", last->test_acc, r->test->n,
               r->tab.on ? "rows" : "images");
    printf("wrote %s, %s, %s, %s\n", r->c.out, r->ckpt_path, r->csv_path, r->svg_path);
    if (r->c.keep_best) {
        int b = train_best_epoch(r);
        printf("best epoch %d (test %s %.4f): %s\n", r->hist[b].epoch, r->tab.regression ? "rmse" : "acc",
               r->tab.regression ? r->hist[b].test_rmse : r->hist[b].test_acc, r->best_path);
    }
    return CLI_OK;
}

int train_run(run *r) {
    cli_loop_begin(&r->loop, "brick train", r->slots.rank == 0, r->c.detect_anomaly);
    int rc = train_loop(r);
    cli_loop_end(&r->loop);
    return rc;
}
