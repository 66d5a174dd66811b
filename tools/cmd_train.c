/* cmd_train.c - `brick train`: trains a model from the zoo on Fashion-MNIST.
 *
 * Per batch: bk_forward, bk_cross_entropy (mean), bk_optim_zero_grad, bk_backward,
 * bk_optim_step, bk_arena_reset. Before every epoch: the lr of --lr-schedule for it (once
 * per epoch, as torch users step CosineAnnealingLR and StepLR). After every epoch:
 * evaluation on the test split (grad off, eval mode, in batches of --batch-size, so that it
 * never needs more memory than a training step), one summary line, and four files written
 * atomically:
 *   FILE                     the model: state dict + metadata (see cli.h)
 *   FILE-stem.ckpt.safetensors  model + optimizer state + everything a resume needs
 *   FILE-stem.csv            epoch,train_loss,train_acc,test_loss,test_acc,seconds
 *   FILE-stem.svg            the curves of the CSV
 * ("FILE-stem" is FILE without its .safetensors suffix.)
 *
 * Reproducibility: bk_manual_seed(seed) before the model is built, and the loader has its
 * own generator seeded with splitmix64(seed). The checkpoint stores both generators'
 * states, the step and epoch counters and every hyperparameter, so that a run stopped
 * after epoch k and resumed ends with bitwise the same weights as an uninterrupted one
 * (same thread count). Nothing time-dependent goes into the model file, so two identical
 * trainings give byte-identical model files.
 *
 * Interrupts: SIGINT (Ctrl-C) and SIGTERM only set a flag, checked after every step. The
 * step in progress finishes, the checkpoint is written with the position inside the epoch
 * (the loader generator at the epoch's start, the batches done, the epoch's running sums),
 * and the command exits with 128 + the signal (130 for Ctrl-C). --resume replays the
 * epoch's shuffle from that generator, skips the batches done and goes on, so the final
 * weights equal an uninterrupted run's bit for bit. The handler is one-shot: a second
 * Ctrl-C kills at once (every file is written atomically, so none is left half-written).
 * The hidden BRICK_TEST_INTERRUPT_AT_STEP=N raises SIGINT after step N (for the tests).
 *
 * Numerics: a batch whose loss is NaN, Inf or above --max-loss stops the run (exit 1)
 * before its backward, so the files of the last finished epoch stay as they were;
 * --detect-anomaly turns on the library's anomaly mode, which names the first op (and its
 * block) that makes a NaN or Inf in the forward or backward.
 */
#define _XOPEN_SOURCE 700 /* strdup, isatty, sigaction */

#include "cli.h"

#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_META 40

static void help(FILE *f) {
    fprintf(f,
            "usage: brick train [options]\n"
            "\n"
            "Trains a classifier on Fashion-MNIST and writes the model FILE, a training\n"
            "checkpoint STEM.ckpt.safetensors, a log STEM.csv and a plot STEM.svg, where STEM\n"
            "is FILE without its .safetensors suffix. They are rewritten after every epoch.\n"
            "\n"
            "options:\n"
            "  --model SPEC        model name or name:key=value,... (default mlp); models: ");
    for (const char *const *n = bk_model_names(); *n; n++) fprintf(f, "%s%s", *n, n[1] ? ", " : "\n");
    fprintf(f,
            "  --data DIR          Fashion-MNIST IDX files (plain or .gz); default: $BRICK_DATA,\n"
            "                      else /usr/share/datasets/fashion-mnist if it holds them,\n"
            "                      else the bundled data/fashion-mnist-subset\n"
            "  --epochs N          epochs to train in all (default 10)\n"
            "  --batch-size B      mini-batch size (default 256): the global batch of one\n"
            "                      optimizer step, also with --accumulate and under mpirun\n"
            "  --accumulate N      split every batch into N micro-batches (the first B %% N\n"
            "                      get one sample more), each its own forward and backward,\n"
            "                      their gradients summed in order (default 1; a resumed run:\n"
            "                      the checkpoint's); the same bits as mpirun -np N\n"
            "  --lr LR             learning rate (default 0.1)\n"
            "  --optimizer NAME    sgd, adam or adamw (default sgd)\n"
            "  --momentum M        SGD momentum (default 0)\n"
            "  --weight-decay W    weight decay (default 0; adamw: 0.01)\n"
            "  --lr-schedule S     none, cosine or step (default none); the lr is set before\n"
            "                      every epoch, as torch's scheduler.step() once per epoch:\n"
            "                      cosine: CosineAnnealingLR(T_max=--epochs, eta_min=--lr-min)\n"
            "                      step: StepLR(step_size=--lr-step-size, gamma=--lr-gamma)\n"
            "  --lr-min LR         cosine: the lr it anneals to (default 0)\n"
            "  --lr-step-size N    step: multiply the lr by --lr-gamma every N epochs\n"
            "  --lr-gamma G        step: the factor (default 0.1)\n"
            "  --seed S            seed of the model init and the shuffling (default 0)\n"
            "  --out FILE          the model file (default model.safetensors)\n"
            "  --resume CKPT       continue from a checkpoint, with its settings; --epochs is\n"
            "                      the new total (default: the checkpoint's; a cosine schedule\n"
            "                      keeps the T_max it started with)\n"
            "  --threads T         compute threads (default: the library's); results are\n"
            "                      reproducible bit for bit for a fixed thread count\n"
            "  --max-loss L        stop (exit 1) when a batch's loss exceeds L: the run has\n"
            "                      diverged (default 1000 ln(classes), about 2303; 0: only\n"
            "                      a NaN or infinite loss stops it)\n"
            "  --detect-anomaly    check every op's output and gradient for NaN and Inf and\n"
            "                      name the first op (and block) that makes one (slower)\n"
            "  --dist              data-parallel training on MPI even outside mpirun (under\n"
            "                      mpirun it is on by itself): `mpirun -np P brick train`\n"
            "                      gives each rank 1/P of every batch (docs/distributed.md)\n"
            "  --reduce MODE       how the ranks' gradients are summed: deterministic (the\n"
            "                      default: bitwise equal to --accumulate P) or fast\n"
            "                      (MPI_Allreduce: not bitwise reproducible)\n"
            "  -h, --help          this help\n"
            "\n"
            "A progress bar is drawn when stderr is a terminal; each epoch prints one line:\n"
            "train loss, train accuracy, test loss, test accuracy, its time (and its lr, with\n"
            "a schedule). The test split is evaluated in batches of --batch-size.\n"
            "Ctrl-C (SIGINT) or SIGTERM finishes the current step, saves the checkpoint with\n"
            "the position in the epoch and exits; --resume continues to the same weights as an\n"
            "uninterrupted run. A second Ctrl-C stops at once (the last saved files stay whole).\n"
            "Exit status: 0 done, 1 runtime failure (a file that fails to load, a NaN or\n"
            "diverging loss: the files of the last finished epoch are kept), 2 bad usage,\n"
            "130 (SIGINT) or 143 (SIGTERM) interrupted after saving the checkpoint.\n");
}

/* --lr-schedule */
typedef enum { SCHEDULE_NONE, SCHEDULE_COSINE, SCHEDULE_STEP, SCHEDULE_COUNT } schedule_kind;
static const char *const SCHEDULE_NAMES[SCHEDULE_COUNT] = {"none", "cosine", "step"};

typedef struct train_cfg {
    const char *model, *data, *optimizer, *out, *resume, *lr_schedule;
    int64_t epochs, batch, seed, threads;
    double lr, momentum, weight_decay;
    schedule_kind schedule;
    int64_t lr_t_max;     /* cosine: the epochs it anneals over (--epochs of the first run) */
    int64_t lr_step_size; /* step: epochs between decays (0: not given) */
    double lr_gamma, lr_min;
    double max_loss; /* < 0: the default, 1000 ln(classes) */
    bool detect_anomaly;
    int64_t accumulate; /* micro-batches per step (--accumulate) */
    bool dist;          /* --dist: MPI even outside mpirun */
    const char *reduce; /* --reduce */
} train_cfg;

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

static bool schedule_parse(const char *name, schedule_kind *kind) {
    for (int k = 0; k < SCHEDULE_COUNT; k++)
        if (name && !strcmp(name, SCHEDULE_NAMES[k])) {
            *kind = (schedule_kind)k;
            return true;
        }
    return false;
}

/* The lr of epoch `epoch` (0-based), torch's scheduler after `epoch` steps. From the
 * float32 values of the settings, which the checkpoint holds exactly (%.9g), so that a
 * resumed run sets the same lr bit for bit. */
static double schedule_lr(const train_cfg *c, int epoch) {
    double lr = (float)c->lr;
    switch (c->schedule) {
    case SCHEDULE_COSINE: return bk_lr_cosine(lr, epoch, (int)c->lr_t_max, (float)c->lr_min);
    case SCHEDULE_STEP: return bk_lr_step_decay(lr, epoch, (int)c->lr_step_size, (float)c->lr_gamma);
    default: return lr;
    }
}

static uint64_t splitmix64(uint64_t x) {
    x += 0x9E3779B97F4A7C15u;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9u;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBu;
    return x ^ (x >> 31);
}

static bool parse_rng(const char *s, bk_rng *r) {
    unsigned long long a, b;
    int used = 0;
    if (!s || sscanf(s, "%16llx:%16llx%n", &a, &b, &used) != 2 || s[used]) return false;
    r->state = a;
    r->inc = b;
    return true;
}

/* The epoch in progress: what a checkpoint written inside an epoch holds to go on. */
typedef struct epoch_pos {
    bk_rng start_rng;         /* the loader's generator before the epoch's shuffle */
    int64_t batch;            /* batches done */
    double loss_sum;          /* sum of loss * batch size over them */
    int64_t correct, seen;
    double seconds;           /* time spent in the epoch before a resume */
} epoch_pos;

/* Everything one run holds. */
typedef struct run {
    train_cfg c;
    char arch[256], in_shape[64], class_names[2048];
    const char *data_why;
    bk_dataset *train, *test;
    bk_module *m;
    bk_optim *o;
    bk_loader *loader;
    cli_epoch *hist;
    int n_hist, done_epochs;
    int64_t step;
    epoch_pos pos;            /* of the epoch in progress */
    bool resume_mid;          /* pos came from a checkpoint written inside an epoch */
    int64_t interrupt_at;     /* BRICK_TEST_INTERRUPT_AT_STEP, or 0 */
    char *ckpt_path, *csv_path, *svg_path;
    char *owned_out; /* --out derived from --resume */
    cli_slots slots;  /* the step's micro-batches or ranks (train_dist.c) */
    int64_t ckpt_slots; /* a resumed run: the checkpoint's world size * accumulate */
    int agreed_signal; /* under mpirun: the stop signal every rank agreed on */
    bool agreed;      /* under mpirun: every rank knows why the run stops (no abort) */
} run;

/* Reads the settings of a checkpoint into r->c (flags given on the command line must
 * agree). Returns CLI_OK or an exit status (message printed). */
static int resume_settings(run *r, const bk_safetensors *st, cli_option *opts, int n_opts) {
    const char *path = r->c.resume;
    const char *fmt = bk_safetensors_meta(st, "brick.format");
    if (!fmt || strcmp(fmt, CLI_CKPT_FORMAT))
        return cli_fail("%s: not a brick training checkpoint (brick.format is %s)", path,
                        fmt ? fmt : "missing");
    static const char *const need[] = {"brick.arch", "brick.in_shape", "brick.n_classes",
                                       "brick.optimizer", "brick.lr",
                                       "brick.momentum", "brick.weight_decay", "brick.batch_size",
                                       "brick.seed", "brick.epoch", "brick.epochs", "brick.step",
                                       "brick.loader_rng", "brick.model_rng", "brick.threads",
                                       "brick.data"};
    for (size_t i = 0; i < sizeof need / sizeof need[0]; i++)
        if (!bk_safetensors_meta(st, need[i]))
            return cli_fail("%s: metadata %s is missing", path, need[i]);
#define GET(name) bk_safetensors_meta(st, name)
    int64_t batch, seed, epoch, epochs, threads;
    double lr = atof(GET("brick.lr")), mom = atof(GET("brick.momentum")),
           wd = atof(GET("brick.weight_decay"));
    if (!cli_parse_i64(GET("brick.batch_size"), &batch) || !cli_parse_i64(GET("brick.seed"), &seed) ||
        !cli_parse_i64(GET("brick.epoch"), &epoch) || !cli_parse_i64(GET("brick.epochs"), &epochs) ||
        !cli_parse_i64(GET("brick.step"), &r->step) ||
        !cli_parse_i64(GET("brick.threads"), &threads) || batch < 1 || epoch < 0)
        return cli_fail("%s: malformed metadata (batch_size, seed, epoch, epochs, step, threads)", path);
    /* The schedule; none in checkpoints written before brick train had one. */
    schedule_kind sched = SCHEDULE_NONE;
    int64_t t_max = 0, step_size = 0;
    double lr_min = 0, gamma = 0.1;
    if (GET("brick.lr_schedule") && !schedule_parse(GET("brick.lr_schedule"), &sched))
        return cli_fail("%s: unknown brick.lr_schedule '%s'", path, GET("brick.lr_schedule"));
    if (sched == SCHEDULE_COSINE) {
        if (!cli_parse_i64(GET("brick.lr_t_max"), &t_max) || t_max < 1 || !GET("brick.lr_min"))
            return cli_fail("%s: malformed metadata (lr_t_max, lr_min)", path);
        lr_min = atof(GET("brick.lr_min"));
    }
    if (sched == SCHEDULE_STEP) {
        if (!cli_parse_i64(GET("brick.lr_step_size"), &step_size) || step_size < 1 ||
            !GET("brick.lr_gamma"))
            return cli_fail("%s: malformed metadata (lr_step_size, lr_gamma)", path);
        gamma = atof(GET("brick.lr_gamma"));
    }
    /* Slots per step (--accumulate, the world size); 1 in checkpoints written before them. */
    int64_t ck_accumulate = 1, ck_world = 1;
    if ((GET("brick.accumulate") && (!cli_parse_i64(GET("brick.accumulate"), &ck_accumulate) ||
                                     ck_accumulate < 1 || ck_accumulate > 1000000)) ||
        (GET("brick.world_size") && (!cli_parse_i64(GET("brick.world_size"), &ck_world) ||
                                     ck_world < 1 || ck_world > 1000000)))
        return cli_fail("%s: malformed metadata (accumulate, world_size)", path);
    r->ckpt_slots = ck_accumulate * ck_world;
    /* Written inside an epoch (after an interrupt): the position in it. */
    if (GET("brick.batch")) {
        epoch_pos *ps = &r->pos;
        const char *sum = GET("brick.epoch_loss_sum"), *secs = GET("brick.epoch_seconds");
        char *end = NULL;
        if (sum) ps->loss_sum = strtod(sum, &end);
        if (!cli_parse_i64(GET("brick.batch"), &ps->batch) || ps->batch < 0 || !sum || *end ||
            !cli_parse_i64(GET("brick.epoch_correct"), &ps->correct) ||
            !cli_parse_i64(GET("brick.epoch_seen"), &ps->seen) || ps->correct < 0 ||
            ps->seen < ps->correct)
            return cli_fail("%s: malformed metadata (batch, epoch_loss_sum, epoch_correct, "
                            "epoch_seen)", path);
        ps->seconds = secs ? atof(secs) : 0;
        r->resume_mid = ps->batch > 0;
    }
    /* A given flag must not contradict the checkpoint (a resumed run keeps its settings). */
    struct { const char *flag; bool differs; char have[64]; } checks[] = {
        {"--optimizer", strcmp(r->c.optimizer, GET("brick.optimizer")) != 0, ""},
        {"--lr", (float)r->c.lr != (float)lr, ""},
        {"--momentum", (float)r->c.momentum != (float)mom, ""},
        {"--weight-decay", (float)r->c.weight_decay != (float)wd, ""},
        {"--batch-size", r->c.batch != batch, ""},
        {"--seed", r->c.seed != seed, ""},
        {"--lr-schedule", strcmp(r->c.lr_schedule, SCHEDULE_NAMES[sched]) != 0, ""},
        {"--lr-min", sched != SCHEDULE_COSINE || (float)r->c.lr_min != (float)lr_min, ""},
        {"--lr-step-size", r->c.lr_step_size != step_size, ""},
        {"--lr-gamma", sched != SCHEDULE_STEP || (float)r->c.lr_gamma != (float)gamma, ""},
    };
    snprintf(checks[0].have, 64, "%s", GET("brick.optimizer"));
    snprintf(checks[1].have, 64, "%g", lr);
    snprintf(checks[2].have, 64, "%g", mom);
    snprintf(checks[3].have, 64, "%g", wd);
    snprintf(checks[4].have, 64, "%" PRId64, batch);
    snprintf(checks[5].have, 64, "%" PRId64, seed);
    snprintf(checks[6].have, 64, "%s", SCHEDULE_NAMES[sched]);
    for (int i = 7; i <= 9; i++) /* settings of a schedule the checkpoint may not have */
        snprintf(checks[i].have, 64, "none (lr schedule %s)", SCHEDULE_NAMES[sched]);
    if (sched == SCHEDULE_COSINE) snprintf(checks[7].have, 64, "%g", lr_min);
    if (sched == SCHEDULE_STEP) {
        snprintf(checks[8].have, 64, "%" PRId64, step_size);
        snprintf(checks[9].have, 64, "%g", gamma);
    }
    for (size_t i = 0; i < sizeof checks / sizeof checks[0]; i++)
        if (cli_opt(opts, n_opts, checks[i].flag)->given && checks[i].differs)
            return cli_usage("%s differs from the checkpoint's %s (a resumed run keeps its "
                             "settings)", checks[i].flag, checks[i].have);
    const char *arch = GET("brick.arch");
    if (cli_opt(opts, n_opts, "--model")->given) {
        /* compare canonical specs: "mlp" is "mlp:hidden=256" */
        int in_ndim;
        int64_t in_shape[BK_MAX_DIMS], n_classes;
        char canon[256] = "";
        if (cli_parse_shape(GET("brick.in_shape"), &in_ndim, in_shape) &&
            cli_parse_i64(GET("brick.n_classes"), &n_classes) && n_classes > 0 && n_classes < 100000) {
            bk_module *probe = bk_model_build(r->c.model, in_ndim, in_shape, (int)n_classes, canon,
                                              sizeof canon);
            bk_module_free(probe);
        }
        if (strcmp(canon, arch))
            return cli_usage("--model %s differs from the checkpoint's %s (a resumed run keeps its "
                             "settings)", r->c.model, arch);
    }
    r->c.model = arch;
    r->c.optimizer = GET("brick.optimizer");
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
    r->done_epochs = (int)epoch;
    if (!cli_opt(opts, n_opts, "--epochs")->given) r->c.epochs = epochs;
    if (!cli_opt(opts, n_opts, "--threads")->given) r->c.threads = threads;
    if (!cli_opt(opts, n_opts, "--data")->given) {
        r->c.data = GET("brick.data");
        r->data_why = "the checkpoint's";
    }
    if (r->c.epochs <= epoch && cli_opt(opts, n_opts, "--epochs")->given)
        return cli_usage("--epochs %" PRId64 " is not more than the %" PRId64 " epochs %s has done",
                         r->c.epochs, epoch, path);
    if (r->c.epochs <= epoch)
        return cli_usage("%s has done all its %" PRId64 " epochs; give a larger --epochs to go on",
                         path, epoch);
    r->hist = calloc((size_t)r->c.epochs, sizeof *r->hist);
    if (!r->hist) return cli_fail("out of memory");
    const char *hist = GET("brick.history");
    r->n_hist = hist ? cli_history_parse(hist, r->hist, (int)epoch) : 0;
    if (r->n_hist < 0) r->n_hist = 0; /* the log restarts; the weights do not depend on it */
#undef GET
    return CLI_OK;
}

static bk_optim *make_optim(const train_cfg *c, bk_module *m) {
    if (!strcmp(c->optimizer, "sgd")) {
        bk_sgd_config s = BK_SGD_DEFAULTS((float)c->lr);
        s.momentum = (float)c->momentum;
        s.weight_decay = (float)c->weight_decay;
        return bk_optim_sgd(m, s);
    }
    bk_adam_config a = !strcmp(c->optimizer, "adam") ? BK_ADAM_DEFAULTS((float)c->lr)
                                                     : BK_ADAMW_DEFAULTS((float)c->lr);
    a.weight_decay = (float)c->weight_decay;
    return !strcmp(c->optimizer, "adam") ? bk_optim_adam(m, a) : bk_optim_adamw(m, a);
}

/* The metadata shared by the model file and the checkpoint: all deterministic. */
static void common_meta(const run *r, meta *md, const char *format) {
    const cli_epoch *last = r->n_hist ? &r->hist[r->n_hist - 1] : NULL;
    meta_add(md, "brick.format", "%s", format);
    meta_add(md, "brick.version", "%s", BK_VERSION_STRING);
    meta_add(md, "brick.arch", "%s", r->arch);
    meta_add(md, "brick.in_shape", "%s", r->in_shape);
    meta_add(md, "brick.n_classes", "%d", r->train->n_classes);
    if (r->class_names[0]) meta_add(md, "brick.class_names", "%s", r->class_names);
    meta_add(md, "brick.epoch", "%d", r->done_epochs);
    meta_add(md, "brick.optimizer", "%s", r->c.optimizer);
    meta_add(md, "brick.lr", "%.9g", (double)(float)r->c.lr);
    meta_add(md, "brick.momentum", "%.9g", (double)(float)r->c.momentum);
    meta_add(md, "brick.weight_decay", "%.9g", (double)(float)r->c.weight_decay);
    meta_add(md, "brick.lr_schedule", "%s", SCHEDULE_NAMES[r->c.schedule]);
    if (r->c.schedule == SCHEDULE_COSINE) {
        meta_add(md, "brick.lr_t_max", "%" PRId64, r->c.lr_t_max);
        meta_add(md, "brick.lr_min", "%.9g", (double)(float)r->c.lr_min);
    } else if (r->c.schedule == SCHEDULE_STEP) {
        meta_add(md, "brick.lr_step_size", "%" PRId64, r->c.lr_step_size);
        meta_add(md, "brick.lr_gamma", "%.9g", (double)(float)r->c.lr_gamma);
    }
    meta_add(md, "brick.batch_size", "%" PRId64, r->c.batch);
    meta_add(md, "brick.seed", "%" PRId64, r->c.seed);
    if (last) {
        meta_add(md, "brick.test_loss", "%.6f", last->test_loss);
        meta_add(md, "brick.test_acc", "%.6f", last->test_acc);
    }
}

/* Writes the checkpoint. in_epoch: inside epoch done_epochs + 1, at r->pos (after an
 * interrupt); else at the end of epoch done_epochs. The loader generator saved is always
 * its state at the start of the next epoch to run (the one in progress, if any), so that a
 * resume replays that epoch's shuffle. CLI_OK or CLI_RUNTIME. */
static int write_checkpoint(run *r, bool in_epoch) {
    meta md = {0};
    bk_rng lrng = in_epoch ? r->pos.start_rng : bk_loader_rng(r->loader), mrng = *bk_default_rng();
    cli_buf hist = {0};
    cli_history_csv(&hist, r->hist, r->n_hist, false);
    common_meta(r, &md, CLI_CKPT_FORMAT);
    meta_add(&md, "brick.epochs", "%" PRId64, r->c.epochs);
    meta_add(&md, "brick.step", "%" PRId64, r->step);
    meta_add(&md, "brick.loader_rng", "%016llx:%016llx", (unsigned long long)lrng.state,
             (unsigned long long)lrng.inc);
    meta_add(&md, "brick.model_rng", "%016llx:%016llx", (unsigned long long)mrng.state,
             (unsigned long long)mrng.inc);
    meta_add(&md, "brick.threads", "%" PRId64, r->c.threads);
    meta_add(&md, "brick.accumulate", "%" PRId64, r->c.accumulate);
    meta_add(&md, "brick.world_size", "%d", r->slots.world);
    meta_add(&md, "brick.data", "%s", r->c.data);
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
    int rc = bk_checkpoint_save(r->ckpt_path, r->m, r->o, md.n, md.keys,
                                (const char *const *)md.values);
    meta_free(&md);
    cli_buf_free(&hist);
    return rc ? cli_fail(NULL) : CLI_OK;
}

/* Writes the model file, the checkpoint, the CSV and the SVG after an epoch. CLI_OK or
 * CLI_RUNTIME. */
static int write_outputs(run *r) {
    meta md = {0};
    common_meta(r, &md, CLI_MODEL_FORMAT);
    int rc = bk_checkpoint_save(r->c.out, r->m, NULL, md.n, md.keys,
                                (const char *const *)md.values);
    meta_free(&md);
    if (rc) return cli_fail(NULL);
    if ((rc = write_checkpoint(r, false))) return rc;

    cli_buf csv = {0}, svg = {0};
    char title[300];
    snprintf(title, sizeof title, "brick train: %s, %s lr %g%s", r->arch, r->c.optimizer, r->c.lr,
             r->c.schedule == SCHEDULE_COSINE ? " cosine" : r->c.schedule == SCHEDULE_STEP ? " step" : "");
    cli_history_csv(&csv, r->hist, r->n_hist, true);
    cli_plot_svg(&svg, r->hist, r->n_hist, title);
    rc = cli_write_atomic(r->csv_path, &csv) || cli_write_atomic(r->svg_path, &svg);
    cli_buf_free(&csv);
    cli_buf_free(&svg);
    return rc ? cli_fail(NULL) : CLI_OK;
}

/* Set by SIGINT and SIGTERM (the signal's number); checked after every step. */
static volatile sig_atomic_t stop_signal;

static void on_stop_signal(int sig) { stop_signal = sig; }

/* train_epoch's result when a signal asked to stop (never returned by cmd_train). */
enum { TRAIN_INTERRUPTED = 100 };

/* Why a batch's loss stops the run, or NULL. */
static const char *loss_problem(const run *r, double l) {
    if (isnan(l)) return "NaN";
    if (isinf(l)) return "infinite";
    if (r->c.max_loss > 0 && l > r->c.max_loss) return "diverging";
    return NULL;
}

/* What a run stopped by a bad loss leaves behind: it writes nothing after the failure. */
#define KEPT_FILES "the files saved before (model, checkpoint) are left as they were"

/* Reports a failed forward, backward or update (the library's message; an anomaly is
 * most often a too large learning rate). Returns CLI_RUNTIME. */
static int step_failed(const run *r, int epoch, int64_t batch) {
    const char *e = bk_last_error();
    if (!strncmp(e, "anomaly: ", 9))
        return cli_fail("epoch %d, batch %" PRId64 ": %s; stopped (try a smaller --lr than %g); "
                        "%s", epoch, batch, e, r->c.lr, KEPT_FILES);
    return cli_fail("epoch %d, batch %" PRId64 ": %s", epoch, batch, e[0] ? e : "unknown error");
}

/* The stop signal to act on: under mpirun the one every rank agreed on at the last step
 * (a rank that acted on its own signal alone would leave the others waiting). */
static int stop_now(const run *r) { return r->slots.world > 1 ? r->agreed_signal : stop_signal; }

/* CLI_RUNTIME with the message when the batch's loss l stops the run (printed by rank 0
 * only: every rank has the same l), else CLI_OK. */
static int check_loss(const run *r, double l) {
    const char *bad = loss_problem(r, l);
    if (!bad) return CLI_OK;
    if (r->slots.rank != 0) return CLI_RUNTIME;
    char why[96] = "";
    if (!strcmp(bad, "diverging"))
        snprintf(why, sizeof why, " (%g > --max-loss %g)", l, r->c.max_loss);
    return cli_fail("the loss is %s at epoch %d, batch %" PRId64 "%s: stopped; try a "
                    "smaller --lr than %g%s; %s", bad, r->done_epochs + 1, r->pos.batch + 1, why,
                    r->c.lr, r->c.detect_anomaly ? "" : " (--detect-anomaly names the op that "
                                                        "makes a NaN or Inf)", KEPT_FILES);
}

/* One step on the whole batch with its mean loss, checked before the backward and the
 * update so that a stopped run leaves no damaged state. *l: the loss, *ok: correct
 * predictions. */
static int step_whole(run *r, bk_tensor *x, const int64_t *y, int64_t B, double *l, int64_t *ok) {
    int epoch = r->done_epochs + 1;
    bk_tensor *logits = bk_forward(r->m, x); /* (B, classes) */
    bk_tensor *loss = bk_cross_entropy(logits, y, B, BK_REDUCTION_MEAN);
    if (!loss) return step_failed(r, epoch, r->pos.batch + 1);
    *l = bk_item(loss);
    int rc = check_loss(r, *l);
    if (rc) return rc;
    bk_optim_zero_grad(r->o);
    if (bk_backward(loss) != 0 || bk_optim_step(r->o) != 0)
        return step_failed(r, epoch, r->pos.batch + 1);
    *ok = bk_count_correct(logits, y, B);
    return CLI_OK;
}

/* One step over the slots (--accumulate, or this rank's slice under mpirun): the loss is
 * checked after the backward (every rank needs the global loss) but before the update. */
static int step_slots(run *r, bk_tensor *x, const int64_t *y, int64_t B, double *l, int64_t *ok) {
    int epoch = r->done_epochs + 1;
    int64_t batch = r->pos.batch + 1;
    cli_step st;
    int rc = cli_slots_step(&r->slots, r->m, x, y, B, r->step, stop_signal, &st);
    if (st.failed_rank >= 0) {
        r->agreed = st.agreed;
        if (st.failed_rank == r->slots.rank) {
            bk_set_error("%s", st.error);
            step_failed(r, epoch, batch);
        } else if (r->slots.rank == 0) {
            cli_fail("rank %d failed in epoch %d, batch %" PRId64 " (its message is above): "
                     "every rank stops; %s", st.failed_rank, epoch, batch, KEPT_FILES);
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
    /* A function of the epoch alone, so a resume inside the epoch sets the same lr. With
     * no schedule the optimizer keeps the lr it was made with. */
    if (r->c.schedule != SCHEDULE_NONE) bk_optim_set_lr(r->o, schedule_lr(&r->c, r->done_epochs));
    bk_module_train(r->m, true);
    if (!r->resume_mid) memset(ps, 0, sizeof *ps); /* a resume set the rest of pos */
    ps->start_rng = bk_loader_rng(r->loader);      /* (setup restored it on a resume) */
    bk_loader_start(r->loader);
    int64_t n_batches = bk_loader_num_batches(r->loader);
    /* The same shuffle as before the interrupt; skip what was done (no copying). */
    for (int64_t k = 0; r->resume_mid && k < ps->batch; k++)
        if (bk_loader_next(r->loader, NULL, NULL, NULL) <= 0)
            return cli_fail("%s: batch %" PRId64 " of epoch %d is past the %" PRId64 " batches "
                            "of an epoch (different data?)", r->c.resume, ps->batch, epoch, n_batches);
    r->resume_mid = false;
    cli_progress_start(pg, epoch, (int)r->c.epochs, n_batches);
    int64_t B;
    bk_tensor *x;
    const int64_t *y;
    while ((B = bk_loader_next(r->loader, &x, &y, NULL)) > 0) {
        double l = 0;
        int64_t ok = 0;
        int rc = r->slots.ddp ? step_slots(r, x, y, B, &l, &ok) : step_whole(r, x, y, B, &l, &ok);
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
        if (r->interrupt_at > 0 && r->step == r->interrupt_at) raise(SIGINT);
        if (stop_now(r)) {
            cli_progress_clear(pg);
            return TRAIN_INTERRUPTED;
        }
    }
    cli_progress_clear(pg);
    if (B < 0) return cli_fail(NULL);
    e->train_loss = ps->seen ? ps->loss_sum / (double)ps->seen : 0;
    e->train_acc = ps->seen ? (double)ps->correct / (double)ps->seen : 0;
    return CLI_OK;
}

/* Data, model, optimizer and loader for a fresh or resumed run. */
static int setup(run *r, const bk_safetensors *resume) {
    if (r->c.threads) cli_set_threads((int)r->c.threads);
    r->train = bk_fashion_mnist_load(r->c.data, true);
    r->test = r->train ? bk_fashion_mnist_load(r->c.data, false) : NULL;
    if (!r->test) return cli_fail(NULL);
    char shape[80];
    size_t k = 0;
    for (int d = 0; d < r->train->ndim; d++)
        k += (size_t)snprintf(r->in_shape + k, sizeof r->in_shape - k, "%s%" PRId64, d ? "," : "",
                              r->train->shape[d]);
    snprintf(shape, sizeof shape, "(%s)", r->in_shape);
    for (int c = 0; r->train->class_names && c < r->train->n_classes; c++) {
        size_t len = strlen(r->class_names);
        snprintf(r->class_names + len, sizeof r->class_names - len, "%s%s", c ? "," : "",
                 r->train->class_names[c]);
    }
    printf("data: %s (%s): %" PRId64 " training and %" PRId64 " test images %s, %d classes\n",
           r->c.data, r->data_why, r->train->n, r->test->n, shape, r->train->n_classes);

    bk_manual_seed((uint64_t)r->c.seed);
    r->m = bk_model_build(r->c.model, r->train->ndim, r->train->shape, r->train->n_classes,
                          r->arch, sizeof r->arch);
    if (!r->m) return cli_fail(NULL);
    r->o = make_optim(&r->c, r->m);
    r->loader = r->o ? bk_loader_new(r->train, r->c.batch, true, splitmix64((uint64_t)r->c.seed),
                                     false)
                     : NULL;
    if (!r->loader) return cli_fail(NULL);
    if (resume) {
        const char *arch = bk_safetensors_meta(resume, "brick.arch");
        if (strcmp(arch, r->arch))
            return cli_fail("%s: the checkpoint's model is %s, not %s", r->c.resume, arch, r->arch);
        bk_rng lrng, mrng;
        if (!parse_rng(bk_safetensors_meta(resume, "brick.loader_rng"), &lrng) ||
            !parse_rng(bk_safetensors_meta(resume, "brick.model_rng"), &mrng))
            return cli_fail("%s: malformed metadata brick.loader_rng or brick.model_rng", r->c.resume);
        if (bk_checkpoint_load(r->c.resume, r->m, r->o) != 0) return cli_fail(NULL);
        bk_loader_set_rng(r->loader, lrng);
        *bk_default_rng() = mrng;
    }
    bk_dist_mode mode = strcmp(r->c.reduce, "fast") ? BK_DIST_DETERMINISTIC : BK_DIST_FAST;
    if (cli_slots_init(&r->slots, r->m, r->arch, (int)r->c.accumulate, r->c.seed, mode) != 0) {
        /* a different model on some rank: every rank found it, rank 0 says it */
        const char *e = bk_last_error();
        r->agreed = !strncmp(e, "dist: the ranks built different models", 38);
        return r->agreed && r->slots.rank != 0 ? CLI_RUNTIME : cli_fail(NULL);
    }
    char wd[48] = "", sched[128] = "";
    if (r->c.weight_decay > 0) snprintf(wd, sizeof wd, ", weight decay %g", r->c.weight_decay);
    if (r->c.schedule == SCHEDULE_COSINE)
        snprintf(sched, sizeof sched, ", cosine schedule to %g over %" PRId64 " epochs",
                 r->c.lr_min, r->c.lr_t_max);
    else if (r->c.schedule == SCHEDULE_STEP)
        snprintf(sched, sizeof sched, ", step schedule x %g every %" PRId64 " epochs",
                 r->c.lr_gamma, r->c.lr_step_size);
    printf("model: %s (%" PRId64 " parameters), %s lr %g%s%s%s, batch %" PRId64 ", seed %" PRId64
           "\n", r->arch, bk_module_num_params(r->m, false), bk_optim_name(r->o), r->c.lr,
           r->c.momentum > 0 ? ", momentum" : "", wd, sched, r->c.batch, r->c.seed);
    if (resume && r->resume_mid)
        printf("resuming %s in epoch %d of %" PRId64 ", after batch %" PRId64 " of %" PRId64 "\n",
               r->c.resume, r->done_epochs + 1, r->c.epochs, r->pos.batch,
               bk_loader_num_batches(r->loader));
    else if (resume)
        printf("resuming %s after epoch %d of %" PRId64 "\n", r->c.resume, r->done_epochs, r->c.epochs);
    if (r->c.schedule == SCHEDULE_COSINE && r->c.epochs > r->c.lr_t_max)
        printf("note: the cosine schedule anneals over the %" PRId64 " epochs the run started "
               "with; past them its lr rises again, as torch's CosineAnnealingLR does\n",
               r->c.lr_t_max);
    if (r->c.detect_anomaly) printf("anomaly detection on: every op's output and gradient is checked\n");
    fflush(stdout);
    return CLI_OK;
}

/* A word of a shell command, quoted when it needs to be. */
static void shell_word(cli_buf *b, const char *w) {
    bool plain = *w != '\0';
    for (const char *c = w; *c; c++)
        if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_./-+=:,@", *c))
            plain = false;
    if (plain) {
        cli_buf_printf(b, " %s", w);
        return;
    }
    cli_buf_printf(b, " '");
    for (const char *c = w; *c; c++) cli_buf_printf(b, *c == '\'' ? "'\\''" : "%c", *c);
    cli_buf_printf(b, "'");
}

/* After a signal: saves the checkpoint (inside the epoch when in_epoch), says where it is
 * and how to go on, and returns the exit status 128 + signal. */
static int interrupted(run *r, bool in_epoch) {
    int sig = stop_now(r);
    const char *name = sig == SIGTERM ? "SIGTERM" : "SIGINT";
    r->agreed = true;                          /* under mpirun, every rank stops here */
    if (r->slots.rank != 0) return 128 + sig;  /* rank 0 saves and tells */
    if (in_epoch) {
        int rc = write_checkpoint(r, true);
        if (rc) {
            fprintf(stderr, "%s: interrupted by %s, and the checkpoint could not be saved (the "
                    "one of the last finished epoch, if any, is kept)\n", cli_prog, name);
            return rc;
        }
        fprintf(stderr, "%s: interrupted by %s in epoch %d after batch %" PRId64 " of %" PRId64
                " (step %" PRId64 "): saved the checkpoint %s\n", cli_prog, name,
                r->done_epochs + 1, r->pos.batch, bk_loader_num_batches(r->loader), r->step,
                r->ckpt_path);
    } else {
        fprintf(stderr, "%s: interrupted by %s after epoch %d: the checkpoint %s holds it\n",
                cli_prog, name, r->done_epochs, r->ckpt_path);
    }
    /* The command that goes on: the checkpoint keeps every other setting. */
    cli_buf cmd = {0};
    cli_buf_printf(&cmd, "brick train --resume");
    shell_word(&cmd, r->ckpt_path);
    /* --resume STEM.ckpt.safetensors writes STEM.safetensors unless told otherwise */
    static const char ck[] = ".ckpt.safetensors", st[] = ".safetensors";
    size_t len = strlen(r->ckpt_path), stem = len - (sizeof ck - 1);
    bool derived = len > sizeof ck - 1 && !strcmp(r->ckpt_path + stem, ck) &&
                   strlen(r->c.out) == stem + sizeof st - 1 &&
                   !strncmp(r->c.out, r->ckpt_path, stem) && !strcmp(r->c.out + stem, st);
    if (!derived) {
        cli_buf_printf(&cmd, " --out");
        shell_word(&cmd, r->c.out);
    }
    if (r->c.detect_anomaly) cli_buf_printf(&cmd, " --detect-anomaly");
    fprintf(stderr, "%s: to continue: %s\n", cli_prog, cmd.oom || !cmd.p ? "brick train --resume CKPT" : cmd.p);
    cli_buf_free(&cmd);
    fflush(stdout);
    return 128 + sig;
}

/* After an epoch's training and evaluation (rank 0): the epoch's line and the files. */
static int end_epoch(run *r, cli_epoch e, double t0) {
    e.seconds = cli_now() - t0;
    r->hist[r->n_hist++] = e;
    r->done_epochs++;
    char lr[48] = "";
    if (r->c.schedule != SCHEDULE_NONE) snprintf(lr, sizeof lr, "  lr %.6g", bk_optim_lr(r->o));
    printf("epoch %*d/%" PRId64 "  train loss %.4f  train acc %.4f  test loss %.4f  "
           "test acc %.4f  %.2f s%s\n",
           r->c.epochs >= 10 ? 2 : 1, e.epoch, r->c.epochs, e.train_loss, e.train_acc,
           e.test_loss, e.test_acc, e.seconds, lr);
    fflush(stdout);
    return write_outputs(r);
}

static int train_loop(run *r) {
    cli_progress pg;
    cli_progress_init(&pg, isatty(2) && r->slots.rank == 0);
    const char *at = getenv("BRICK_TEST_INTERRUPT_AT_STEP");
    if (!at || !cli_parse_i64(at, &r->interrupt_at)) r->interrupt_at = 0;
    int64_t first_step = r->step;
    while (r->done_epochs < r->c.epochs) {
        if (stop_now(r)) return interrupted(r, false);
        double t0 = cli_now() - (r->resume_mid ? r->pos.seconds : 0);
        cli_epoch e = {r->done_epochs + 1, 0, 0, 0, 0, 0};
        int rc = train_epoch(r, &pg, &e);
        if (rc == TRAIN_INTERRUPTED) {
            r->pos.seconds = cli_now() - t0;
            return interrupted(r, true);
        }
        if (rc) return rc;
        /* In batches of the training batch size: in no-grad mode every intermediate of a
         * batch stays in the arena until the reset after it, so a larger evaluation batch
         * would raise the run's peak memory above the training step's. Under mpirun the
         * ranks share the batches. */
        if ((rc = cli_dist_evaluate(r->m, r->test, r->c.batch, &e.test_loss, &e.test_acc,
                                    &r->agreed)))
            return rc;
        /* Rank 0 writes; then every rank learns whether that worked (the files are
         * written once, after every rank finished the epoch). */
        rc = r->slots.rank == 0 ? end_epoch(r, e, t0) : CLI_OK;
        if ((rc = cli_dist_agree(rc, &r->agreed))) return rc;
        if (r->slots.rank != 0) r->done_epochs++;
    }
    if (r->slots.rank != 0) return CLI_OK;
    if (r->slots.world > 1 && r->step > first_step) /* waiting for slower ranks included */
        printf("gradient reduction: %.3f s in %" PRId64 " steps, %.3f ms per step (%s)\n",
               bk_ddp_comm_seconds(r->slots.ddp), r->step - first_step,
               1e3 * bk_ddp_comm_seconds(r->slots.ddp) / (double)(r->step - first_step),
               r->c.reduce);
    const cli_epoch *last = &r->hist[r->n_hist - 1];
    printf("final test accuracy %.4f (%" PRId64 " test images)\n", last->test_acc, r->test->n);
    printf("wrote %s, %s, %s, %s\n", r->c.out, r->ckpt_path, r->csv_path, r->svg_path);
    return CLI_OK;
}

/* Joins the MPI world when started by mpirun (or with --dist), and settles what depends on
 * the world size: the slots per step, the threads per rank, who prints. CLI_OK, or an exit
 * status (message printed). */
static int dist_begin(run *r, cli_option *opts, int n_opts) {
    train_cfg *c = &r->c;
    if (bk_dist_init(NULL, NULL, c->dist) != 0) return cli_fail(NULL);
    int rank = bk_dist_rank(), world = bk_dist_world_size();
    r->slots.rank = rank;
    r->slots.world = world;
    bool given = cli_opt(opts, n_opts, "--accumulate")->given;
    if (world > 1) {
        static char prog[64];
        snprintf(prog, sizeof prog, "%s: rank %d", cli_prog, rank);
        cli_prog = prog;
        /* the logs and the progress bar come from rank 0 alone */
        if (rank > 0 && !freopen("/dev/null", "w", stdout)) return cli_fail("/dev/null: cannot open");
        if (given && c->accumulate > 1) {
            r->agreed = true; /* every rank has the same flags */
            return rank == 0 ? cli_usage("--accumulate %" PRId64 " with %d ranks: give one or "
                                         "the other (each rank takes one slice of a batch)",
                                         c->accumulate, world)
                             : CLI_USAGE;
        }
        c->accumulate = 1;
        if (!c->threads) { /* the cores shared by this machine's ranks */
            const char *local = getenv("OMPI_COMM_WORLD_LOCAL_SIZE");
            int64_t n_local = world, cores = sysconf(_SC_NPROCESSORS_ONLN);
            if (local && (!cli_parse_i64(local, &n_local) || n_local < 1)) n_local = world;
            c->threads = cores / n_local > 1 ? cores / n_local : 1;
        }
    } else if (c->resume && !given) {
        c->accumulate = r->ckpt_slots; /* a P-rank checkpoint goes on as --accumulate P */
    }
    if (c->resume && r->ckpt_slots != world * c->accumulate)
        printf("note: %s was trained with %" PRId64 " slots per batch (ranks x --accumulate); "
               "this run uses %" PRId64 ": the batch stays %" PRId64 ", the steps from here "
               "are those of --accumulate %" PRId64 "\n", c->resume, r->ckpt_slots,
               world * c->accumulate, c->batch, world * c->accumulate);
    return CLI_OK;
}

/* Leaves the MPI world. A failure the other ranks do not know about aborts the whole job
 * (they could wait for this rank forever); everything else ends normally. */
static int dist_end(run *r, int rc) {
    if (bk_dist_world_size() > 1 && rc != CLI_OK && !r->agreed) {
        fprintf(stderr, "%s: stopping every rank of the job\n", cli_prog);
        fflush(NULL);
        bk_dist_abort(rc);
    }
    fflush(stdout);
    bk_dist_finalize();
    return rc;
}

int cmd_train(int argc, char **argv) {
    run r;
    memset(&r, 0, sizeof r);
    train_cfg *c = &r.c;
    *c = (train_cfg){.model = "mlp", .optimizer = "sgd", .lr_schedule = "none", .epochs = 10,
                     .batch = 256, .lr = 0.1, .lr_gamma = 0.1, .max_loss = -1, .accumulate = 1,
                     .reduce = "deterministic"};
    cli_option opts[] = {
        {"--model", CLI_STR, &c->model, 0, 0, false},
        {"--data", CLI_STR, &c->data, 0, 0, false},
        {"--epochs", CLI_INT, &c->epochs, 1, 1e6, false},
        {"--batch-size", CLI_INT, &c->batch, 1, 1e9, false},
        {"--lr", CLI_FLOAT, &c->lr, 0, 1e300, false},
        {"--optimizer", CLI_STR, &c->optimizer, 0, 0, false},
        {"--momentum", CLI_FLOAT, &c->momentum, 0, 1e300, false},
        {"--weight-decay", CLI_FLOAT, &c->weight_decay, 0, 1e300, false},
        {"--lr-schedule", CLI_STR, &c->lr_schedule, 0, 0, false},
        {"--lr-min", CLI_FLOAT, &c->lr_min, 0, 1e300, false},
        {"--lr-step-size", CLI_INT, &c->lr_step_size, 1, 1e6, false},
        {"--lr-gamma", CLI_FLOAT, &c->lr_gamma, 0, 1e300, false},
        {"--seed", CLI_INT, &c->seed, 0, 9.2e18, false},
        {"--out", CLI_STR, &c->out, 0, 0, false},
        {"--resume", CLI_STR, &c->resume, 0, 0, false},
        {"--threads", CLI_INT, &c->threads, 1, 1024, false},
        {"--max-loss", CLI_FLOAT, &c->max_loss, 0, 1e300, false},
        {"--detect-anomaly", CLI_FLAG, &c->detect_anomaly, 0, 0, false},
        {"--accumulate", CLI_INT, &c->accumulate, 1, 1e6, false},
        {"--dist", CLI_FLAG, &c->dist, 0, 0, false},
        {"--reduce", CLI_STR, &c->reduce, 0, 0, false},
    };
    const int n_opts = (int)(sizeof opts / sizeof opts[0]);
    const char *pos[1];
    int n_pos;
    int rc = cli_parse(argc, argv, opts, n_opts, pos, 0, &n_pos, help);
    if (rc) return rc < 0 ? CLI_OK : rc;

    /* Checks that need no file. */
    if (strcmp(c->optimizer, "sgd") && strcmp(c->optimizer, "adam") && strcmp(c->optimizer, "adamw"))
        return cli_usage("unknown optimizer '%s' (expected sgd, adam or adamw)", c->optimizer);
    if (strcmp(c->optimizer, "sgd") && cli_opt(opts, n_opts, "--momentum")->given)
        return cli_usage("--momentum is for --optimizer sgd only");
    if (!strcmp(c->optimizer, "adamw") && !cli_opt(opts, n_opts, "--weight-decay")->given)
        c->weight_decay = 0.01;
    if (strcmp(c->reduce, "deterministic") && strcmp(c->reduce, "fast"))
        return cli_usage("unknown --reduce '%s' (expected deterministic or fast)", c->reduce);
    if (c->dist && !bk_dist_mpi_built())
        return cli_usage("--dist: this brick was built without MPI (build it with make MPI=1, "
                         "which needs Open MPI: scripts/deps.sh)");
    if (!schedule_parse(c->lr_schedule, &c->schedule))
        return cli_usage("unknown --lr-schedule '%s' (expected none, cosine or step)", c->lr_schedule);
    if (!c->resume) { /* (a resumed run checks them against its checkpoint) */
        bool step_size = cli_opt(opts, n_opts, "--lr-step-size")->given;
        if (c->schedule == SCHEDULE_STEP && !step_size)
            return cli_usage("--lr-schedule step needs --lr-step-size N (decay every N epochs)");
        if (c->schedule != SCHEDULE_STEP && (step_size || cli_opt(opts, n_opts, "--lr-gamma")->given))
            return cli_usage("--lr-step-size and --lr-gamma are for --lr-schedule step");
        if (c->schedule != SCHEDULE_COSINE && cli_opt(opts, n_opts, "--lr-min")->given)
            return cli_usage("--lr-min is for --lr-schedule cosine");
        c->lr_t_max = c->epochs; /* kept by a resume, whatever its --epochs */
    }
    {
        char canon[256];
        bk_module *probe = bk_model_build(c->model, BK_SHAPE(1, 28, 28), 10, canon, sizeof canon);
        if (!probe) return cli_usage("%s", bk_last_error());
        bk_module_free(probe);
    }
    if (cli_parse_only) return CLI_OK;
    if (c->out && !cli_parent_is_dir(c->out))
        return cli_usage("--out %s: its directory does not exist", c->out);

    /* Resuming: the checkpoint's settings. */
    bk_safetensors *resume = NULL;
    r.data_why = "from --data";
    if (c->resume) {
        if (!cli_is_file(c->resume)) return cli_usage("--resume %s: no such file", c->resume);
        resume = bk_safetensors_load(c->resume);
        rc = resume ? resume_settings(&r, resume, opts, n_opts) : cli_fail(NULL);
        if (!rc && !c->out) {
            /* STEM.ckpt.safetensors -> STEM.safetensors */
            static const char suffix[] = ".ckpt.safetensors";
            size_t len = strlen(c->resume), sl = strlen(suffix);
            if (len > sl && !strcmp(c->resume + len - sl, suffix)) {
                r.owned_out = malloc(len + 1);
                if (!r.owned_out) {
                    rc = cli_fail("out of memory");
                } else {
                    memcpy(r.owned_out, c->resume, len - sl);
                    strcpy(r.owned_out + len - sl, ".safetensors");
                    c->out = r.owned_out;
                }
            } else {
                rc = cli_usage("--resume %s: give --out (the name does not end in %s)", c->resume,
                               suffix);
            }
        }
        if (rc) goto done;
    } else {
        r.hist = calloc((size_t)c->epochs, sizeof *r.hist);
        if (!r.hist) return cli_fail("out of memory");
    }
    if (!c->out) c->out = "model.safetensors";

    char data_buf[PATH_MAX];
    if (!c->data) c->data = cli_default_data(data_buf, sizeof data_buf, &r.data_why);
    if (!cli_is_dir(c->data)) {
        if (cli_opt(opts, n_opts, "--data")->given)
            rc = cli_usage("--data %s: no such directory", c->data);
        else
            rc = cli_usage("data directory %s (%s): no such directory", c->data, r.data_why);
        goto done;
    }
    if (!cli_has_fashion_mnist(c->data)) {
        rc = cli_usage("--data %s: no Fashion-MNIST files there (train-images-idx3-ubyte[.gz], ...)",
                       c->data);
        goto done;
    }
    r.ckpt_path = cli_sibling(c->out, ".ckpt.safetensors");
    r.csv_path = cli_sibling(c->out, ".csv");
    r.svg_path = cli_sibling(c->out, ".svg");
    if (!r.ckpt_path || !r.csv_path || !r.svg_path) {
        rc = cli_fail("out of memory");
        goto done;
    }
    rc = dist_begin(&r, opts, n_opts);
    if (!rc) rc = setup(&r, resume);
    if (!rc) {
        if (c->max_loss < 0) c->max_loss = 1000.0 * log((double)r.train->n_classes);
        bool prev_anomaly = bk_set_detect_anomaly(c->detect_anomaly);
        /* Ctrl-C and SIGTERM from here on: finish the step, save, exit (one-shot; SA_RESTART
         * so that no write is cut short by EINTR). */
        struct sigaction sa, old_int, old_term;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_stop_signal;
        sigemptyset(&sa.sa_mask);
        sa.sa_flags = SA_RESTART | SA_RESETHAND;
        stop_signal = 0;
        sigaction(SIGINT, &sa, &old_int);
        sigaction(SIGTERM, &sa, &old_term);
        rc = train_loop(&r);
        sigaction(SIGINT, &old_int, NULL);
        sigaction(SIGTERM, &old_term, NULL);
        bk_set_detect_anomaly(prev_anomaly);
    }

done:
    free(r.owned_out);
    bk_safetensors_free(resume);
    cli_slots_free(&r.slots); /* (before the model its bk_ddp points into) */
    bk_loader_free(r.loader);
    bk_optim_free(r.o);
    bk_module_free(r.m);
    bk_dataset_free(r.train);
    bk_dataset_free(r.test);
    free(r.hist);
    free(r.ckpt_path);
    free(r.csv_path);
    free(r.svg_path);
    return dist_end(&r, rc);
}
