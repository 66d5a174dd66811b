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
 * weights equal an uninterrupted run's bit for bit. A repeated signal (see "Interrupts"
 * below): within 1 s of the first it is the same request (GNU timeout sends two); later,
 * during a save it waits for the save; otherwise it stops the process at once (a loop that
 * never reaches the check), which loses nothing since every file is written atomically.
 * Hidden test hooks: BRICK_TEST_INTERRUPT_AT_STEP=N raises SIGINT after step N;
 * BRICK_TEST_INTERRUPT_REPEAT=now|save|hang then also raises it again at once, raises it
 * again during the checkpoint's save (1.1 s after the first), or hangs after step N
 * without ever reaching the check (so a second signal from outside must stop it).
 *
 * Numerics: a batch whose loss is NaN, Inf or above --max-loss stops the run (exit 1)
 * before its backward, so the files of the last finished epoch stay as they were;
 * --detect-anomaly turns on the library's anomaly mode, which names the first op (and its
 * block) that makes a NaN or Inf in the forward or backward.
 */
#define _XOPEN_SOURCE 700 /* strdup, isatty, sigaction, clock_gettime, nanosleep */

#include "cli.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
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
            "uninterrupted run. A second Ctrl-C (a second or more after the first) stops at\n"
            "once, unless files are being saved (the last saved files stay whole).\n"
            "Before training it checks that the test images have the training images'\n"
            "shape, that the model fits in memory and that every output can be written.\n"
            "Exit status: 0 done, 1 runtime failure (a file that fails to load or holds bad\n"
            "values, a model too large for the memory, an output that cannot be written, a\n"
            "NaN or diverging loss: the files of the last finished epoch are kept), 2 bad usage,\n"
            "130 (SIGINT) or 143 (SIGTERM) interrupted after saving the checkpoint.\n");
}

/* --lr-schedule */
typedef enum { SCHEDULE_NONE, SCHEDULE_COSINE, SCHEDULE_STEP, SCHEDULE_COUNT } schedule_kind;
static const char *const SCHEDULE_NAMES[SCHEDULE_COUNT + 1] = {"none", "cosine", "step", NULL};
static const char *const OPTIMIZER_NAMES[] = {"sgd", "adam", "adamw", NULL};
static const char *const REDUCE_NAMES[] = {"deterministic", "fast", NULL}; /* --reduce */

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

/* "state:inc" as write_checkpoint writes it: exactly 16 hex digits, ':', 16 hex digits,
 * and inc odd (a PCG stream needs an odd increment). False for anything else. */
static bool parse_rng(const char *s, bk_rng *r) {
    uint64_t v[2] = {0, 0};
    if (!s || strlen(s) != 33 || s[16] != ':') return false;
    for (int i = 0; i < 33; i++) {
        if (i == 16) continue;
        char ch = s[i];
        int d = ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
                : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10 : -1;
        if (d < 0) return false;
        v[i > 16] = v[i > 16] << 4 | (uint64_t)d;
    }
    if (!(v[1] & 1)) return false;
    r->state = v[0];
    r->inc = v[1];
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
    bk_rng loader_rng, model_rng; /* a resume's generators (resume_settings) */
    int64_t interrupt_at;     /* BRICK_TEST_INTERRUPT_AT_STEP, or 0 */
    const char *interrupt_repeat; /* BRICK_TEST_INTERRUPT_REPEAT, or "" */
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
                                       "brick.loader_rng", "brick.model_rng", "brick.data"};
    for (size_t i = 0; i < sizeof need / sizeof need[0]; i++)
        if (!bk_safetensors_meta(st, need[i]))
            return cli_fail("%s: metadata %s is missing", path, need[i]);
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
        (rc = cli_meta_value(path, st, "brick.lr_schedule", FLAG("--lr-schedule"), false,
                             &sched_name)))
        return rc;
    schedule_kind sched = SCHEDULE_NONE;
    schedule_parse(sched_name, &sched); /* (one of SCHEDULE_NAMES: checked above) */
    int64_t t_max = 0, step_size = 0;
    double lr_min = 0, gamma = 0.1;
    if (sched == SCHEDULE_COSINE &&
        ((rc = cli_meta_value(path, st, "brick.lr_t_max", FLAG("--epochs"), true, &t_max)) ||
         (rc = cli_meta_value(path, st, "brick.lr_min", FLAG("--lr-min"), true, &lr_min))))
        return rc;
    if (sched == SCHEDULE_STEP &&
        ((rc = cli_meta_value(path, st, "brick.lr_step_size", FLAG("--lr-step-size"), true,
                              &step_size)) ||
         (rc = cli_meta_value(path, st, "brick.lr_gamma", FLAG("--lr-gamma"), true, &gamma))))
        return rc;
    /* Slots per step (--accumulate, the world size); 1 in checkpoints written before them. */
    static const cli_option world_range = {"", CLI_INT, NULL, 1, 1e6, false, NULL};
    int64_t ck_accumulate = 1, ck_world = 1;
    if ((rc = cli_meta_value(path, st, "brick.accumulate", FLAG("--accumulate"), false,
                             &ck_accumulate)) ||
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
            return cli_fail("%s: metadata brick.epoch_correct %" PRId64 " is more than "
                            "brick.epoch_seen %" PRId64, path, ps->correct, ps->seen);
        r->resume_mid = ps->batch > 0;
    }
    /* The generators: "state:inc", 16 hex digits each, inc odd (PCG's stream). */
    static const char *const rngs[2] = {"brick.loader_rng", "brick.model_rng"};
    for (int i = 0; i < 2; i++) {
        const char *v = GET(rngs[i]);
        if (!parse_rng(v, i ? &r->model_rng : &r->loader_rng))
            return cli_fail("%s: metadata %s \"%.64s\" is not a generator state (16 hex digits, "
                            "':', 16 hex digits with the last one odd)", path, rngs[i], v);
    }
#undef FLAG
    /* Non-finite weights or optimizer state would show as "the loss is NaN ... try a
     * smaller --lr": name the tensor instead. */
    if ((rc = cli_check_finite(path, st))) return rc;
    /* A given flag must not contradict the checkpoint (a resumed run keeps its settings). */
    struct { const char *flag; bool differs; char have[64]; } checks[] = {
        {"--optimizer", strcmp(r->c.optimizer, optimizer) != 0, ""},
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
    snprintf(checks[0].have, 64, "%s", optimizer);
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
            bk_model_num_params(r->c.model, in_ndim, in_shape, (int)n_classes, canon, sizeof canon);
        }
        if (strcmp(canon, arch))
            return cli_usage("--model %s differs from the checkpoint's %s (a resumed run keeps its "
                             "settings)", r->c.model, arch);
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

/* ---- interrupts ------------------------------------------------------------------------
 * The first SIGINT or SIGTERM sets stop_signal, which the loop checks after every step and
 * before every epoch: it finishes the step, saves the checkpoint and exits 128 + signal.
 * A repeated signal (either of the two) is:
 *   - the same request when it comes within STOP_REPEAT_WINDOW of the first: ignored. GNU
 *     timeout sends its signal to the process and then to its process group, so `brick
 *     train` under timeout gets two at once; a one-shot handler let the second kill the
 *     run before its checkpoint was written (1 run in 20);
 *   - deferred while the loop is saving (the interrupt's checkpoint, or an epoch's files):
 *     the save completes and the run exits as for the first signal;
 *   - otherwise, "stop now": one line on stderr and _exit(128 + signal). The loop has not
 *     reached its check for a second or more (a long step, an evaluation, a hang), and
 *     the user means it. Nothing is damaged: every file is replaced atomically, so the
 *     files of the last save stay whole (only that last step's checkpoint is not written).
 * The handler uses only async-signal-safe calls (clock_gettime, write, _exit). */
#define STOP_REPEAT_WINDOW 1.0 /* seconds */

static volatile sig_atomic_t stop_signal; /* the first signal's number, 0 before */
static volatile sig_atomic_t saving;      /* the loop is writing files: repeats wait */
static struct timespec first_signal_at;   /* written before stop_signal, read after */

static double seconds_since(const struct timespec *t0) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - t0->tv_sec) + 1e-9 * (double)(now.tv_nsec - t0->tv_nsec);
}

static void on_stop_signal(int sig) {
    int saved_errno = errno;
    if (!stop_signal) {
        clock_gettime(CLOCK_MONOTONIC, &first_signal_at);
        stop_signal = sig;
    } else if (!saving && seconds_since(&first_signal_at) >= STOP_REPEAT_WINDOW) {
        static const char msg[] = ": stopped at once by a second signal: the step in progress "
                                  "is not saved; the files saved before are whole\n";
        ssize_t ignored = write(2, cli_prog, strlen(cli_prog));
        ignored = write(2, msg, sizeof msg - 1);
        (void)ignored;
        _exit(128 + sig);
    }
    errno = saved_errno;
}

/* The test hooks' repeated signal: sleeps until `after` seconds have passed since the first
 * signal (by the same clock as the handler, so the outcome never depends on the machine's
 * speed), then raises it again. */
static void raise_again_after(double after) {
    double left;
    while ((left = after - seconds_since(&first_signal_at)) > 0) {
        struct timespec ts = {(time_t)left, (long)((left - (double)(time_t)left) * 1e9) + 1};
        if (ts.tv_nsec >= 1000000000L) ts.tv_nsec = 999999999L;
        nanosleep(&ts, NULL);
    }
    raise(stop_signal);
}

/* BRICK_TEST_INTERRUPT_AT_STEP / _REPEAT, after a step. */
static void test_interrupt(const run *r) {
    if (r->interrupt_at <= 0 || r->step != r->interrupt_at) return;
    raise(SIGINT);
    if (!strcmp(r->interrupt_repeat, "now")) raise(SIGINT);
    if (!strcmp(r->interrupt_repeat, "hang")) {
        fprintf(stderr, "%s: test hook: hanging after step %" PRId64 "\n", cli_prog, r->step);
        for (;;) pause(); /* never reaches the check: only a second signal ends this */
    }
}

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
    if (r->c.schedule != SCHEDULE_NONE) {
        double lr = schedule_lr(&r->c, r->done_epochs);
        if (isnan(lr)) return cli_fail("epoch %d: the lr schedule: %s", epoch, bk_last_error());
        bk_optim_set_lr(r->o, lr);
    }
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
        test_interrupt(r);
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

/* The images file of a split as bk_fashion_mnist_load reads it (plain, else .gz), into buf. */
static const char *images_file(const char *dir, bool train, char *buf, size_t n) {
    const char *name = train ? "train-images-idx3-ubyte" : "t10k-images-idx3-ubyte";
    snprintf(buf, n, "%s/%s", dir, name);
    if (!cli_is_file(buf)) snprintf(buf, n, "%s/%s.gz", dir, name);
    return buf;
}

/* The test split must hold what the model is trained on: checked before training, not
 * found by the evaluation after a whole epoch (or never, by a model that pools). */
static int check_data(const run *r) {
    const bk_dataset *tr = r->train, *te = r->test;
    bool same = tr->ndim == te->ndim;
    for (int d = 0; same && d < tr->ndim; d++) same = tr->shape[d] == te->shape[d];
    if (same) return CLI_OK;
    char a[128], b[128], fa[PATH_MAX], fb[PATH_MAX];
    size_t ka = 0, kb = 0;
    for (int d = 0; d < tr->ndim; d++)
        ka += (size_t)snprintf(a + ka, sizeof a - ka, "%s%" PRId64, d ? ", " : "(", tr->shape[d]);
    for (int d = 0; d < te->ndim; d++)
        kb += (size_t)snprintf(b + kb, sizeof b - kb, "%s%" PRId64, d ? ", " : "(", te->shape[d]);
    return cli_fail("the test images %s are %s) but the training images %s are %s): a model "
                    "trained on one cannot be evaluated on the other",
                    images_file(r->c.data, false, fb, sizeof fb), b,
                    images_file(r->c.data, true, fa, sizeof fa), a);
}

/* Before anything is allocated or trained: the model fits in memory, and every output
 * can be written with room for it (a read-only directory or a full disk shows now, not
 * after the first epoch). Sizes from the parameter count: float32 weights; training also
 * holds their gradients and the optimizer's state (SGD momentum: 1, Adam: 2 per weight). */
static int check_room(const run *r, int64_t n_params) {
    int states = !strcmp(r->c.optimizer, "sgd") ? (r->c.momentum > 0) : 2;
    double weights = 4.0 * (double)n_params;
    double need = weights * (2 + states);
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    double have = pages > 0 && page > 0 ? (double)pages * (double)page : 0;
    if (have > 0 && need > have)
        return cli_fail("%s with %" PRId64 " parameters needs %.1f GiB for its weights, gradients "
                        "and %s state, more than this machine's %.1f GiB of memory", r->c.model,
                        n_params, need / 1073741824.0, r->c.optimizer, have / 1073741824.0);
    int rc;
    if ((rc = cli_check_writable("--out", r->c.out, (int64_t)weights)) ||
        (rc = cli_check_writable("the checkpoint", r->ckpt_path, (int64_t)(weights * (1 + states)))) ||
        (rc = cli_check_writable("the log", r->csv_path, 0)) ||
        (rc = cli_check_writable("the plot", r->svg_path, 0)))
        return rc;
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
    int rc = check_data(r);
    if (rc) return rc;
    int64_t n_params = bk_model_num_params(r->c.model, r->train->ndim, r->train->shape,
                                           r->train->n_classes, NULL, 0);
    if (n_params < 0) return cli_fail(NULL);
    if ((rc = check_room(r, n_params))) return rc;
    char data_safe[512]; /* (a resumed run's --data comes from its checkpoint) */
    printf("data: %s (%s): %" PRId64 " training and %" PRId64 " test images %s, %d classes\n",
           bk_escape(r->c.data, data_safe, sizeof data_safe), r->data_why, r->train->n, r->test->n, shape, r->train->n_classes);

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
        if (bk_checkpoint_load_from(resume, r->m, r->o) != 0) return cli_fail(NULL);
        if (bk_loader_set_rng(r->loader, r->loader_rng) != 0 ||
            bk_rng_set_state(NULL, r->model_rng.state, r->model_rng.inc) != 0)
            return cli_fail("%s: metadata brick.loader_rng or brick.model_rng: %s", r->c.resume,
                            bk_last_error());
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
    saving = 1; /* from here to the exit: a repeated signal waits */
    r->agreed = true;                          /* under mpirun, every rank stops here */
    if (r->slots.rank != 0) return 128 + sig;  /* rank 0 saves and tells */
    if (in_epoch) {
        if (!strcmp(r->interrupt_repeat, "save")) raise_again_after(STOP_REPEAT_WINDOW + 0.1);
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
    saving = 1; /* a repeated signal waits for the files */
    int rc = write_outputs(r);
    saving = 0;
    return rc;
}

static int train_loop(run *r) {
    cli_progress pg;
    cli_progress_init(&pg, isatty(2) && r->slots.rank == 0);
    const char *at = getenv("BRICK_TEST_INTERRUPT_AT_STEP");
    if (!at || !cli_parse_i64(at, &r->interrupt_at)) r->interrupt_at = 0;
    r->interrupt_repeat = getenv("BRICK_TEST_INTERRUPT_REPEAT");
    if (!r->interrupt_repeat) r->interrupt_repeat = "";
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
        {"--model", CLI_STR, &c->model, 0, 0, false, NULL},
        {"--data", CLI_STR, &c->data, 0, 0, false, NULL},
        {"--epochs", CLI_INT, &c->epochs, 1, 1e6, false, NULL},
        {"--batch-size", CLI_INT, &c->batch, 1, 1e9, false, NULL},
        {"--lr", CLI_FLOAT, &c->lr, 0, 1e300, false, NULL},
        {"--optimizer", CLI_STR, &c->optimizer, 0, 0, false, OPTIMIZER_NAMES},
        {"--momentum", CLI_FLOAT, &c->momentum, 0, 1e300, false, NULL},
        {"--weight-decay", CLI_FLOAT, &c->weight_decay, 0, 1e300, false, NULL},
        {"--lr-schedule", CLI_STR, &c->lr_schedule, 0, 0, false, SCHEDULE_NAMES},
        {"--lr-min", CLI_FLOAT, &c->lr_min, 0, 1e300, false, NULL},
        {"--lr-step-size", CLI_INT, &c->lr_step_size, 1, 1e6, false, NULL},
        {"--lr-gamma", CLI_FLOAT, &c->lr_gamma, 0, 1e300, false, NULL},
        {"--seed", CLI_INT, &c->seed, 0, 9.2e18, false, NULL},
        {"--out", CLI_STR, &c->out, 0, 0, false, NULL},
        {"--resume", CLI_STR, &c->resume, 0, 0, false, NULL},
        {"--threads", CLI_INT, &c->threads, 1, 1024, false, NULL},
        {"--max-loss", CLI_FLOAT, &c->max_loss, 0, 1e300, false, NULL},
        {"--detect-anomaly", CLI_FLAG, &c->detect_anomaly, 0, 0, false, NULL},
        {"--accumulate", CLI_INT, &c->accumulate, 1, 1e6, false, NULL},
        {"--dist", CLI_FLAG, &c->dist, 0, 0, false, NULL},
        {"--reduce", CLI_STR, &c->reduce, 0, 0, false, REDUCE_NAMES},
    };
    const int n_opts = (int)(sizeof opts / sizeof opts[0]);
    const char *pos[1];
    int n_pos;
    int rc = cli_parse(argc, argv, opts, n_opts, pos, 0, &n_pos, help);
    if (rc) return rc < 0 ? CLI_OK : rc;

    /* Checks that need no file. */
    if (strcmp(c->optimizer, "sgd") && cli_opt(opts, n_opts, "--momentum")->given)
        return cli_usage("--momentum is for --optimizer sgd only");
    if (!strcmp(c->optimizer, "adamw") && !cli_opt(opts, n_opts, "--weight-decay")->given)
        c->weight_decay = 0.01;
    if (c->dist && !bk_dist_mpi_built())
        return cli_usage("--dist: this brick was built without MPI (build it with make MPI=1, "
                         "which needs Open MPI: scripts/deps.sh)");
    schedule_parse(c->lr_schedule, &c->schedule); /* (one of SCHEDULE_NAMES: cli_parse checked) */
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
        /* the spec alone, before any data: nothing is allocated (a model over
         * BK_MODEL_MAX_PARAMS is refused here, whatever the memory) */
        char canon[256];
        if (bk_model_num_params(c->model, BK_SHAPE(1, 28, 28), 10, canon, sizeof canon) < 0)
            return cli_usage("%s", bk_last_error());
    }
    if (cli_parse_only) return CLI_OK;
    if (c->out && !cli_parent_is_dir(c->out))
        return cli_usage("--out %s: its directory does not exist", c->out);

    /* Resuming: the checkpoint's settings. */
    bk_safetensors *resume = NULL;
    r.data_why = "from --data";
    if (c->resume) {
        if ((rc = cli_need_file("--resume", c->resume))) return rc;
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
    if (c->resume) {
        /* No output but the new checkpoint may replace the one being resumed (compared by
         * inode: the same file under another name counts too). */
        const char *outs[3] = {c->out, r.csv_path, r.svg_path};
        static const char *const what[3] = {"the model file", "the log", "the plot"};
        for (int i = 0; i < 3; i++)
            if (cli_same_file(outs[i], c->resume)) {
                rc = cli_usage("--out %s: %s %s would replace the checkpoint being resumed; "
                               "give another --out", c->out, what[i], outs[i]);
                goto done;
            }
    }
    rc = dist_begin(&r, opts, n_opts);
    if (!rc) rc = setup(&r, resume);
    if (!rc) {
        if (c->max_loss < 0) c->max_loss = 1000.0 * log((double)r.train->n_classes);
        bool prev_anomaly = bk_set_detect_anomaly(c->detect_anomaly);
        /* Ctrl-C and SIGTERM from here on: finish the step, save, exit (a repeat: see
         * on_stop_signal; each blocks the other while its handler runs; SA_RESTART so
         * that no write is cut short by EINTR). */
        struct sigaction sa, old_int, old_term;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_stop_signal;
        sigemptyset(&sa.sa_mask);
        sigaddset(&sa.sa_mask, SIGINT);
        sigaddset(&sa.sa_mask, SIGTERM);
        sa.sa_flags = SA_RESTART;
        stop_signal = 0;
        saving = 0;
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
