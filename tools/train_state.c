/* train_state.c - what a `brick train` run saves and resumes from: the metadata of the model
 * file and the checkpoint, the settings read back from a checkpoint (each checked by the
 * parser of the flag that sets it), and the optimizer those settings make.
 *
 * Reproducibility: the checkpoint stores both generators' states, the step and epoch
 * counters and every hyperparameter, so that a run stopped after epoch k and resumed ends
 * with bitwise the same weights as an uninterrupted one (same thread count). Nothing
 * time-dependent goes into the model file, so two identical trainings give byte-identical
 * model files.
 */
#define _XOPEN_SOURCE 700 /* strdup */

#include "train.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_META 48

const char *const SCHEDULE_NAMES[SCHEDULE_COUNT + 1] = {"none",     "cosine",  "step",
                                                        "onecycle", "plateau", NULL};

/* Metadata being assembled: keys are static strings, values owned. */
typedef struct meta {
    int n;
    const char *keys[MAX_META];
    char *values[MAX_META];
} meta;

static void meta_add(meta *md, const char *key, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
static void meta_add(meta *md, const char *key, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char tmp[256];
    vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (md->n >= MAX_META) return;
    md->keys[md->n] = key;
    md->values[md->n++] = strdup(tmp);
}

static void meta_free(meta *md) {
    for (int i = 0; i < md->n; i++) free(md->values[i]);
    md->n = 0;
}

bool train_schedule_parse(const char *name, schedule_kind *kind) {
    for (int k = 0; k < SCHEDULE_COUNT; k++)
        if (name && !strcmp(name, SCHEDULE_NAMES[k])) {
            *kind = (schedule_kind)k;
            return true;
        }
    return false;
}

/* The lr of epoch `epoch` (0-based), torch's scheduler after `epoch` steps (onecycle: after
 * `step` optimizer steps, and *momentum, if not NULL, its momentum). From the settings as
 * float32 values (CLI_F32), which the checkpoint holds exactly (%.9g), so that a resumed
 * run sets the same lr bit for bit. */
double train_schedule_lr(const train_cfg *c, int epoch, int64_t step, int64_t batches_per_epoch,
                         double *momentum) {
    switch (c->schedule) {
    case SCHEDULE_COSINE: return bk_lr_cosine(c->lr, epoch, (int)c->lr_t_max, c->lr_min);
    case SCHEDULE_STEP: return bk_lr_step_decay(c->lr, epoch, (int)c->lr_step_size, c->lr_gamma);
    case SCHEDULE_ONECYCLE: {
        /* OneCycleLR(max_lr=--lr, total_steps=T_max epochs of batches), torch's defaults;
         * past its end (a resume with more --epochs) the last lr is kept */
        bk_one_cycle_config oc = BK_ONE_CYCLE_DEFAULTS(c->lr, c->lr_t_max * batches_per_epoch);
        return bk_lr_one_cycle(&oc, step < oc.total_steps ? step : oc.total_steps, momentum);
    }
    case SCHEDULE_PLATEAU: return c->lr_now;
    default: return c->lr;
    }
}

int train_plateau_init(train_cfg *c) {
    c->plateau = BK_LR_PLATEAU_DEFAULTS;
    c->plateau.factor = c->lr_gamma;
    c->plateau.patience = c->lr_patience;
    c->lr_now = c->lr;
    return bk_lr_plateau_init(&c->plateau);
}

/* "lr,best,bad,cooldown,epochs" as common_meta writes brick.lr_plateau (doubles in %a), into
 * c's plateau state (its settings already set by train_plateau_init). */
static bool parse_plateau(const char *s, train_cfg *c) {
    double lr, best;
    long long bad, cool, last;
    char tail;
    if (!s || sscanf(s, "%la,%la,%lld,%lld,%lld%c", &lr, &best, &bad, &cool, &last, &tail) != 5) return false;
    if (!(lr >= 0 && lr < 1e300) || isnan(best) || bad < 0 || cool < 0 || last < 0 || bad > 1000000 ||
        cool > 1000000 || last > 1000000)
        return false;
    c->lr_now = lr;
    c->plateau.best = best;
    c->plateau.num_bad_epochs = bad;
    c->plateau.cooldown_counter = cool;
    c->plateau.last_epoch = last;
    return true;
}

/* Reads the settings of a checkpoint into r->c (flags given on the command line must
 * agree). Returns CLI_OK or an exit status (message printed). */
int train_resume_settings(run *r, const bk_safetensors *st, cli_option *opts, int n_opts) {
    const char *path = r->c.resume;
    const char *fmt = bk_safetensors_meta(st, "brick.format");
    if (!fmt || strcmp(fmt, CLI_CKPT_FORMAT))
        return cli_fail("%s: not a brick training checkpoint (brick.format is %s)", path,
                        fmt ? fmt : "missing");
    static const char *const need[] = {"brick.arch",       "brick.in_shape",  "brick.n_classes",
                                       "brick.loader_rng", "brick.model_rng", "brick.data"};
    for (size_t i = 0; i < sizeof need / sizeof need[0]; i++)
        if (!bk_safetensors_meta(st, need[i])) return cli_fail("%s: metadata %s is missing", path, need[i]);
#define GET(name) bk_safetensors_meta(st, name)
            /* Every value is parsed by the parser of the flag that set it, with its range (a
     * hostile or damaged file cannot hand the run a value that the flag would refuse), or
     * with a range of its own where no flag sets it. */
#define FLAG(name) cli_opt(opts, n_opts, name)
    static const cli_option epochs_done = {"", CLI_INT, NULL, 0, 1e6, false, NULL};
    static const cli_option count = {"", CLI_INT, NULL, 0, 9.2e18, false, NULL};
    static const cli_option sum_range = {"", CLI_FLOAT, NULL, 0, 1e300, false, NULL};
    cli_option threads_range = *FLAG("--threads");
    threads_range.min = 0; /* 0: the library's default (no --threads) */
    const char *optimizer = NULL, *sched_name = "none";
    int64_t batch = 0, seed = 0, epoch = 0, epochs = 0, threads = 0;
    double lr = 0, mom = 0, wd = 0;
    int rc;
    if ((rc = cli_meta_value(path, st, "brick.optimizer", FLAG("--optimizer"), true, &optimizer)) ||
        (rc = cli_meta_value(path, st, "brick.lr", FLAG("--lr"), true, &lr)) ||
        (rc = cli_meta_value(path, st, "brick.momentum", FLAG("--momentum"), true, &mom)) ||
        (rc = cli_meta_value(path, st, "brick.weight_decay", FLAG("--weight-decay"), true, &wd)) ||
        (rc = cli_meta_value(path, st, "brick.batch_size", FLAG("--batch-size"), true, &batch)) ||
        (rc = cli_meta_value(path, st, "brick.seed", FLAG("--seed"), true, &seed)) ||
        (rc = cli_meta_value(path, st, "brick.epoch", &epochs_done, true, &epoch)) ||
        (rc = cli_meta_value(path, st, "brick.epochs", FLAG("--epochs"), true, &epochs)) ||
        (rc = cli_meta_value(path, st, "brick.step", &count, true, &r->step)) ||
        (rc = cli_meta_value(path, st, "brick.threads", &threads_range, true, &threads)) ||
        /* the schedule; none in checkpoints written before brick train had one */
        (rc = cli_meta_value(path, st, "brick.lr_schedule", FLAG("--lr-schedule"), false, &sched_name)))
        return rc;
    schedule_kind sched = SCHEDULE_NONE;
    train_schedule_parse(sched_name, &sched); /* (one of SCHEDULE_NAMES: checked above) */
    int64_t t_max = 0, step_size = 0, patience = 10;
    double lr_min = 0, gamma = 0.1;
    if (sched == SCHEDULE_ONECYCLE &&
        (rc = cli_meta_value(path, st, "brick.lr_t_max", FLAG("--epochs"), true, &t_max)))
        return rc;
    if (sched == SCHEDULE_PLATEAU &&
        ((rc = cli_meta_value(path, st, "brick.lr_gamma", FLAG("--lr-gamma"), true, &gamma)) ||
         (rc = cli_meta_value(path, st, "brick.lr_patience", FLAG("--lr-patience"), true, &patience))))
        return rc;
    if (sched == SCHEDULE_COSINE &&
        ((rc = cli_meta_value(path, st, "brick.lr_t_max", FLAG("--epochs"), true, &t_max)) ||
         (rc = cli_meta_value(path, st, "brick.lr_min", FLAG("--lr-min"), true, &lr_min))))
        return rc;
    if (sched == SCHEDULE_STEP &&
        ((rc = cli_meta_value(path, st, "brick.lr_step_size", FLAG("--lr-step-size"), true, &step_size)) ||
         (rc = cli_meta_value(path, st, "brick.lr_gamma", FLAG("--lr-gamma"), true, &gamma))))
        return rc;
    /* Slots per step (--accumulate, the world size); 1 in checkpoints written before them. */
    static const cli_option world_range = {"", CLI_INT, NULL, 1, 1e6, false, NULL};
    int64_t ck_accumulate = 1, ck_world = 1;
    if ((rc = cli_meta_value(path, st, "brick.accumulate", FLAG("--accumulate"), false, &ck_accumulate)) ||
        (rc = cli_meta_value(path, st, "brick.world_size", &world_range, false, &ck_world)))
        return rc;
    r->ckpt_slots = ck_accumulate * ck_world;
    /* Written inside an epoch (after an interrupt): the position in it. */
    if (GET("brick.batch")) {
        epoch_pos *ps = &r->pos;
        if ((rc = cli_meta_value(path, st, "brick.batch", &count, true, &ps->batch)) ||
            (rc = cli_meta_value(path, st, "brick.epoch_loss_sum", &sum_range, true, &ps->loss_sum)) ||
            (rc = cli_meta_value(path, st, "brick.epoch_correct", &count, true, &ps->correct)) ||
            (rc = cli_meta_value(path, st, "brick.epoch_seen", &count, true, &ps->seen)) ||
            (rc = cli_meta_value(path, st, "brick.epoch_seconds", &sum_range, false, &ps->seconds)))
            return rc;
        if (ps->seen < ps->correct)
            return cli_fail("%s: metadata brick.epoch_correct %" PRId64
                            " is more than "
                            "brick.epoch_seen %" PRId64,
                            path, ps->correct, ps->seen);
        r->resume_mid = ps->batch > 0;
    }
    /* The generators: "state:inc", 16 hex digits each, inc odd (PCG's stream). */
    static const char *const rngs[2] = {"brick.loader_rng", "brick.model_rng"};
    for (int i = 0; i < 2; i++) {
        const char *v = GET(rngs[i]);
        if (!cli_rng_parse(v, i ? &r->model_rng : &r->loader_rng))
            return cli_fail(
                "%s: metadata %s \"%.64s\" is not a generator state (16 hex digits, "
                "':', 16 hex digits with the last one odd)",
                path, rngs[i], v);
    }
#undef FLAG
    /* Non-finite weights or optimizer state would show as "the loss is NaN ... try a
     * smaller --lr": name the tensor instead. */
    if ((rc = cli_check_finite(path, st))) return rc;
    /* A given flag must not contradict the checkpoint (a resumed run keeps its settings). */
    struct {
        const char *flag;
        bool differs;
        char have[64];
    } checks[] = {
        {"--optimizer", strcmp(r->c.optimizer, optimizer) != 0, ""},
        {"--lr", r->c.lr != lr, ""},
        {"--momentum", r->c.momentum != mom, ""},
        {"--weight-decay", r->c.weight_decay != wd, ""},
        {"--batch-size", r->c.batch != batch, ""},
        {"--seed", r->c.seed != seed, ""},
        {"--lr-schedule", strcmp(r->c.lr_schedule, SCHEDULE_NAMES[sched]) != 0, ""},
        {"--lr-min", sched != SCHEDULE_COSINE || r->c.lr_min != lr_min, ""},
        {"--lr-step-size", r->c.lr_step_size != step_size, ""},
        {"--lr-gamma", (sched != SCHEDULE_STEP && sched != SCHEDULE_PLATEAU) || r->c.lr_gamma != gamma, ""},
        {"--lr-patience", sched != SCHEDULE_PLATEAU || r->c.lr_patience != patience, ""},
    };
    snprintf(checks[0].have, 64, "%s", optimizer);
    snprintf(checks[1].have, 64, "%g", lr);
    snprintf(checks[2].have, 64, "%g", mom);
    snprintf(checks[3].have, 64, "%g", wd);
    snprintf(checks[4].have, 64, "%" PRId64, batch);
    snprintf(checks[5].have, 64, "%" PRId64, seed);
    snprintf(checks[6].have, 64, "%s", SCHEDULE_NAMES[sched]);
    for (int i = 7; i <= 10; i++) /* settings of a schedule the checkpoint may not have */
        snprintf(checks[i].have, 64, "none (lr schedule %s)", SCHEDULE_NAMES[sched]);
    if (sched == SCHEDULE_COSINE) snprintf(checks[7].have, 64, "%g", lr_min);
    if (sched == SCHEDULE_STEP) snprintf(checks[8].have, 64, "%" PRId64, step_size);
    if (sched == SCHEDULE_STEP || sched == SCHEDULE_PLATEAU) snprintf(checks[9].have, 64, "%g", gamma);
    if (sched == SCHEDULE_PLATEAU) snprintf(checks[10].have, 64, "%" PRId64, patience);
    for (size_t i = 0; i < sizeof checks / sizeof checks[0]; i++)
        if (cli_opt(opts, n_opts, checks[i].flag)->given && checks[i].differs)
            return cli_usage(
                "%s differs from the checkpoint's %s (a resumed run keeps its "
                "settings)",
                checks[i].flag, checks[i].have);
    const char *arch = GET("brick.arch");
    if (cli_opt(opts, n_opts, "--model")->given) {
        /* compare canonical specs: "mlp" is "mlp:hidden=256" */
        int in_ndim;
        int64_t in_shape[BK_MAX_DIMS], n_classes;
        char canon[256] = "";
        if (cli_parse_shape(GET("brick.in_shape"), &in_ndim, in_shape) &&
            cli_parse_i64(GET("brick.n_classes"), &n_classes) && n_classes > 0 && n_classes < 100000) {
            bk_model_num_params(r->c.model, in_ndim, in_shape, (int)n_classes, canon, sizeof canon);
        }
        if (strcmp(canon, arch))
            return cli_usage(
                "--model %s differs from the checkpoint's %s (a resumed run keeps its "
                "settings)",
                r->c.model, arch);
    }
    r->c.model = arch;
    r->c.optimizer = optimizer;
    r->c.lr = lr;
    r->c.momentum = mom;
    r->c.weight_decay = wd;
    r->c.batch = batch;
    r->c.seed = seed;
    r->c.lr_schedule = SCHEDULE_NAMES[sched];
    r->c.schedule = sched;
    r->c.lr_t_max = t_max;
    r->c.lr_min = lr_min;
    r->c.lr_step_size = step_size;
    r->c.lr_gamma = gamma;
    r->c.lr_patience = patience;
    if (sched == SCHEDULE_PLATEAU && train_plateau_init(&r->c) != 0)
        return cli_fail("%s: metadata brick.lr_gamma or brick.lr_patience: %s", path, bk_last_error());
    if (sched == SCHEDULE_PLATEAU && !parse_plateau(GET("brick.lr_plateau"), &r->c))
        return cli_fail(
            "%s: metadata brick.lr_plateau \"%.80s\" is not a plateau state (lr, best, bad epochs, "
            "cooldown, epochs: two hex doubles and three counts)",
            path, GET("brick.lr_plateau") ? GET("brick.lr_plateau") : "(missing)");
    r->done_epochs = (int)epoch;
    if (!cli_opt(opts, n_opts, "--epochs")->given) r->c.epochs = epochs;
    if (!cli_opt(opts, n_opts, "--threads")->given) r->c.threads = threads;
    if (GET("brick.keep_best")) r->c.keep_best = true; /* (--keep-best can turn it on) */
    if (!cli_opt(opts, n_opts, "--data")->given) {
        r->c.data = GET("brick.data");
        r->data_why = "the checkpoint's";
    }
    /* the data as it was prepared: an image folder at its size, the same normalisation */
    if ((rc = cli_prep_from_meta(path, st, GET("brick.in_shape"), &r->prep))) return rc;
    int in_ndim;
    int64_t in_shape[BK_MAX_DIMS];
    const char *format = cli_data_format(r->c.data);
    if (format && !strcmp(format, "image-folder") &&
        cli_parse_shape(GET("brick.in_shape"), &in_ndim, in_shape) && in_ndim == 3 && in_shape[0] <= 3 &&
        in_shape[1] <= 65536 && in_shape[2] <= 65536) {
        r->c.channels = in_shape[0];
        r->c.height = in_shape[1];
        r->c.width = in_shape[2];
    }
    /* a CSV table's target and task (the standardisation is recomputed from the data) */
    const char *task = GET("brick.task"), *target = GET("brick.target");
    if (task && strcmp(task, "classification") && strcmp(task, "regression"))
        return cli_fail("%s: metadata brick.task \"%.32s\" is not classification or regression", path, task);
    if ((cli_opt(opts, n_opts, "--task")->given && (!task || strcmp(task, r->c.task))) ||
        (cli_opt(opts, n_opts, "--target")->given && (!target || strcmp(target, r->c.target))))
        return cli_usage(
            "--task or --target differs from the checkpoint's %s, %s (a resumed run keeps its settings)",
            task ? task : "none", target ? target : "the last column");
    r->c.task = task;
    r->c.target = target;
    r->tab.regression = task && !strcmp(task, "regression"); /* (for the history below) */
    if (r->c.epochs <= epoch && cli_opt(opts, n_opts, "--epochs")->given)
        return cli_usage("--epochs %" PRId64 " is not more than the %" PRId64 " epochs %s has done",
                         r->c.epochs, epoch, path);
    if (r->c.epochs <= epoch)
        return cli_usage("%s has done all its %" PRId64 " epochs; give a larger --epochs to go on", path,
                         epoch);
    r->hist = calloc((size_t)r->c.epochs, sizeof *r->hist);
    if (!r->hist) return cli_fail("out of memory");
    const char *hist = GET("brick.history");
    r->n_hist = hist ? cli_history_parse(hist, r->hist, (int)epoch, r->tab.regression) : 0;
    if (r->n_hist < 0) r->n_hist = 0; /* the log restarts; the weights do not depend on it */
#undef GET
    return CLI_OK;
}

bool train_cycles_momentum(const train_cfg *c) {
    if (c->schedule != SCHEDULE_ONECYCLE || !strcmp(c->optimizer, "adagrad")) return false;
    return !strcmp(c->optimizer, "adam") || !strcmp(c->optimizer, "adamw") || c->momentum > 0;
}

bk_optim *train_make_optim(const train_cfg *c, bk_module *m) {
    if (!strcmp(c->optimizer, "sgd")) {
        bk_sgd_config s = BK_SGD_DEFAULTS(c->lr);
        s.momentum = c->momentum;
        s.weight_decay = c->weight_decay;
        return bk_optim_sgd(m, s);
    }
    if (!strcmp(c->optimizer, "rmsprop")) { /* torch's defaults but the lr, momentum, weight decay */
        bk_rmsprop_config r = BK_RMSPROP_DEFAULTS(c->lr);
        r.momentum = c->momentum;
        r.weight_decay = c->weight_decay;
        return bk_optim_rmsprop(m, r);
    }
    if (!strcmp(c->optimizer, "adagrad")) {
        bk_adagrad_config g = BK_ADAGRAD_DEFAULTS(c->lr);
        g.weight_decay = c->weight_decay;
        return bk_optim_adagrad(m, g);
    }
    bk_adam_config a = !strcmp(c->optimizer, "adam") ? BK_ADAM_DEFAULTS(c->lr) : BK_ADAMW_DEFAULTS(c->lr);
    a.weight_decay = c->weight_decay;
    return !strcmp(c->optimizer, "adam") ? bk_optim_adam(m, a) : bk_optim_adamw(m, a);
}

/* The metadata shared by the model file and the checkpoint: all deterministic. */
static void common_meta(const run *r, meta *md, const char *format) {
    const cli_epoch *last = r->n_hist ? &r->hist[r->n_hist - 1] : NULL;
    meta_add(md, "brick.format", "%s", format);
    meta_add(md, "brick.version", "%s", BK_VERSION_STRING);
    meta_add(md, "brick.arch", "%s", r->arch);
    meta_add(md, "brick.in_shape", "%s", r->in_shape);
    meta_add(md, "brick.n_classes", "%d", r->tab.regression ? 1 : r->train->n_classes);
    if (r->class_names[0]) meta_add(md, "brick.class_names", "%s", r->class_names);
    meta_add(md, "brick.epoch", "%d", r->done_epochs);
    meta_add(md, "brick.optimizer", "%s", r->c.optimizer);
    meta_add(md, "brick.lr", "%.9g", r->c.lr);
    meta_add(md, "brick.momentum", "%.9g", r->c.momentum);
    meta_add(md, "brick.weight_decay", "%.9g", r->c.weight_decay);
    meta_add(md, "brick.lr_schedule", "%s", SCHEDULE_NAMES[r->c.schedule]);
    if (r->c.schedule == SCHEDULE_COSINE) {
        meta_add(md, "brick.lr_t_max", "%" PRId64, r->c.lr_t_max);
        meta_add(md, "brick.lr_min", "%.9g", r->c.lr_min);
    } else if (r->c.schedule == SCHEDULE_STEP) {
        meta_add(md, "brick.lr_step_size", "%" PRId64, r->c.lr_step_size);
        meta_add(md, "brick.lr_gamma", "%.9g", r->c.lr_gamma);
    } else if (r->c.schedule == SCHEDULE_ONECYCLE) {
        meta_add(md, "brick.lr_t_max", "%" PRId64, r->c.lr_t_max);
    } else if (r->c.schedule == SCHEDULE_PLATEAU) {
        const bk_lr_plateau *p = &r->c.plateau;
        meta_add(md, "brick.lr_gamma", "%.9g", r->c.lr_gamma);
        meta_add(md, "brick.lr_patience", "%" PRId64, r->c.lr_patience);
        meta_add(md, "brick.lr_plateau", "%a,%a,%" PRId64 ",%" PRId64 ",%" PRId64, r->c.lr_now, p->best,
                 p->num_bad_epochs, p->cooldown_counter, p->last_epoch);
    }
    meta_add(md, "brick.batch_size", "%" PRId64, r->c.batch);
    meta_add(md, "brick.seed", "%" PRId64, r->c.seed);
    char norm[512], aug[64];
    cli_prep_format(&r->prep, norm, sizeof norm, aug, sizeof aug);
    if (norm[0]) meta_add(md, "brick.normalize", "%s", norm);
    if (strcmp(aug, "none")) meta_add(md, "brick.augment", "%s", aug);
    if (last) {
        meta_add(md, "brick.test_loss", "%.6f", last->test_loss);
        if (r->tab.regression) {
            meta_add(md, "brick.test_rmse", "%.6f", last->test_rmse);
            meta_add(md, "brick.test_mae", "%.6f", last->test_mae);
        } else {
            meta_add(md, "brick.test_acc", "%.6f", last->test_acc);
        }
    }
    /* a CSV table's task and standardisation (longer than meta_add's buffer) */
    if (md->n + 6 <= MAX_META) md->n += cli_tabular_meta(&r->tab, md->keys + md->n, md->values + md->n);
}

/* Writes the checkpoint. in_epoch: inside epoch done_epochs + 1, at r->pos (after an
 * interrupt); else at the end of epoch done_epochs. The loader generator saved is always
 * its state at the start of the next epoch to run (the one in progress, if any), so that a
 * resume replays that epoch's shuffle. CLI_OK or CLI_RUNTIME. */
int train_write_checkpoint(run *r, bool in_epoch) {
    meta md = {0};
    bk_rng lrng = in_epoch ? r->pos.start_rng : bk_loader_rng(r->loader), mrng = *bk_default_rng();
    cli_buf hist = {0};
    cli_history_csv(&hist, r->hist, r->n_hist, false, r->tab.regression);
    common_meta(r, &md, CLI_CKPT_FORMAT);
    meta_add(&md, "brick.epochs", "%" PRId64, r->c.epochs);
    meta_add(&md, "brick.step", "%" PRId64, r->step);
    char rng[2][CLI_RNG_CHARS];
    cli_rng_format(rng[0], &lrng);
    cli_rng_format(rng[1], &mrng);
    meta_add(&md, "brick.loader_rng", "%s", rng[0]);
    meta_add(&md, "brick.model_rng", "%s", rng[1]);
    meta_add(&md, "brick.threads", "%" PRId64, r->c.threads);
    meta_add(&md, "brick.accumulate", "%" PRId64, r->c.accumulate);
    meta_add(&md, "brick.world_size", "%d", r->slots.world);
    meta_add(&md, "brick.data", "%s", r->c.data);
    if (r->c.keep_best) meta_add(&md, "brick.keep_best", "1");
    if (in_epoch) {
        meta_add(&md, "brick.batch", "%" PRId64, r->pos.batch);
        meta_add(&md, "brick.epoch_loss_sum", "%a", r->pos.loss_sum); /* exact */
        meta_add(&md, "brick.epoch_correct", "%" PRId64, r->pos.correct);
        meta_add(&md, "brick.epoch_seen", "%" PRId64, r->pos.seen);
        meta_add(&md, "brick.epoch_seconds", "%.3f", r->pos.seconds);
    }
    /* the history is longer than meta_add's buffer */
    md.keys[md.n] = "brick.history";
    md.values[md.n++] = strdup(hist.p ? hist.p : "");
    int rc = bk_checkpoint_save(r->ckpt_path, r->m, r->o, md.n, md.keys, (const char *const *)md.values);
    meta_free(&md);
    cli_buf_free(&hist);
    return rc ? cli_fail(NULL) : CLI_OK;
}

/* The history's best epoch: the index of the highest test accuracy (regression: the lowest
 * test RMSE), the first of equals (-1 for an empty history). Read off the history, so a resumed run goes on comparing with
 * the epochs before the interrupt. */
int train_best_epoch(const run *r) {
    int b = r->n_hist ? 0 : -1;
    for (int j = 1; j < r->n_hist; j++)
        if (r->tab.regression ? r->hist[j].test_rmse < r->hist[b].test_rmse
                              : r->hist[j].test_acc > r->hist[b].test_acc)
            b = j;
    return b;
}

/* Writes the model file, the checkpoint, the CSV and the SVG after an epoch (and, with
 * --keep-best, STEM.best.safetensors when the epoch is the best so far). CLI_OK or
 * CLI_RUNTIME. */
int train_write_outputs(run *r) {
    meta md = {0};
    common_meta(r, &md, CLI_MODEL_FORMAT);
    int rc = bk_checkpoint_save(r->c.out, r->m, NULL, md.n, md.keys, (const char *const *)md.values);
    if (!rc && r->c.keep_best && r->n_hist && train_best_epoch(r) == r->n_hist - 1)
        rc = bk_checkpoint_save(r->best_path, r->m, NULL, md.n, md.keys, (const char *const *)md.values);
    meta_free(&md);
    if (rc) return cli_fail(NULL);
    if ((rc = train_write_checkpoint(r, false))) return rc;

    cli_buf csv = {0}, svg = {0};
    char title[300];
    snprintf(title, sizeof title, "brick train: %s, %s lr %g%s%s", r->arch, r->c.optimizer, r->c.lr,
             r->c.schedule == SCHEDULE_NONE ? "" : " ",
             r->c.schedule == SCHEDULE_NONE ? "" : SCHEDULE_NAMES[r->c.schedule]);
    cli_history_csv(&csv, r->hist, r->n_hist, true, r->tab.regression);
    cli_plot_svg(&svg, r->hist, r->n_hist, title);
    rc = cli_write_atomic(r->csv_path, &csv) || cli_write_atomic(r->svg_path, &svg);
    cli_buf_free(&csv);
    cli_buf_free(&svg);
    return rc ? cli_fail(NULL) : CLI_OK;
}
