/* train.h - what the files of `brick train` share (private to tools/): its settings, the
 * state of one run, and the functions of each file.
 *
 *   cmd_train.c    the command: options, checks before training, data, model, MPI world
 *   train_state.c  the settings a run saves: metadata, checkpoints, resuming from one
 *   train_loop.c   the loop: epochs, steps, the loss check, interrupts (and the step that
 *                  `brick train-lm` shares, cli_train_step); the outer loop's signals,
 *                  progress bar and run files are loop.c's, shared with train-lm
 */
#ifndef BRICK_TRAIN_H
#define BRICK_TRAIN_H

#include "cli.h"

/* --lr-schedule: cosine and step set the lr per epoch, onecycle per step, plateau after an
 * epoch's test loss */
typedef enum {
    SCHEDULE_NONE,
    SCHEDULE_COSINE,
    SCHEDULE_STEP,
    SCHEDULE_ONECYCLE,
    SCHEDULE_PLATEAU,
    SCHEDULE_COUNT
} schedule_kind;
/* "none", "cosine", "step", "onecycle", "plateau", NULL */
extern const char *const SCHEDULE_NAMES[SCHEDULE_COUNT + 1];

typedef struct train_cfg {
    const char *model, *data, *optimizer, *out, *resume, *lr_schedule;
    int64_t epochs, batch, seed, threads;
    double lr, momentum, weight_decay; /* float32 values (CLI_F32), as lr_gamma, lr_min */
    schedule_kind schedule;
    int64_t lr_t_max;          /* cosine, onecycle: the epochs it anneals over (--epochs of the first run) */
    int64_t lr_step_size;      /* step: epochs between decays (0: not given) */
    double lr_gamma, lr_min;   /* lr_gamma: step's factor, and plateau's */
    int64_t lr_patience;       /* plateau: epochs without improvement before a cut */
    bk_lr_plateau plateau;     /* plateau: its state, saved in the checkpoint */
    double lr_now;             /* plateau: the lr in use (the state's other half) */
    double max_loss;           /* < 0: the default, 1000 ln(classes) */
    int64_t early_stop;        /* --early-stop: epochs without a better test metric (0: off) */
    const char *early_stop_on; /* --early-stop-on: "loss" or "acc" */
    bool detect_anomaly;
    bool force;                   /* --force: replace an earlier run's model file and checkpoint */
    bool keep_best;               /* --keep-best: also write STEM.best.safetensors, the best epoch's model */
    int64_t accumulate;           /* micro-batches per step (--accumulate) */
    bool dist;                    /* --dist: MPI even outside mpirun */
    const char *reduce;           /* --reduce */
    int64_t channels, image_size; /* --channels, --image-size: image folders (0: the data's) */
    int64_t height, width;        /* the image folder size to load (--image-size, or a resume's) */
    const char *normalize;        /* --normalize: "auto" or MEANS/STDS (NULL: off) */
    const char *augment;          /* --augment: crop[=P],flip or none (NULL: none) */
    const char *target;           /* --target: a CSV table's target column (NULL: the last) */
    const char *task;             /* --task: classification or regression (NULL: from the data) */
} train_cfg;

/* The epoch in progress: what a checkpoint written inside an epoch holds to go on. */
typedef struct epoch_pos {
    bk_rng start_rng; /* the loader's generator before the epoch's shuffle */
    int64_t batch;    /* batches done */
    double loss_sum;  /* sum of loss * batch size over them */
    int64_t correct, seen;
    double seconds; /* time spent in the epoch before a resume */
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
    cli_prep prep; /* --normalize's values and --augment's settings, or the checkpoint's */
    cli_epoch *hist;
    int n_hist, done_epochs;
    double es_best;    /* --early-stop: the best test metric so far (loss: lowest, acc: highest) */
    int es_best_epoch; /* and its epoch (1-based; 0: none yet) */
    int64_t step;
    epoch_pos pos;                /* of the epoch in progress */
    bool resume_mid;              /* pos came from a checkpoint written inside an epoch */
    bk_rng loader_rng, model_rng; /* a resume's generators (train_resume_settings) */
    cli_loop loop;                /* signals, progress bar, test hooks (loop.c) */
    char *ckpt_path, *csv_path, *svg_path, *best_path;
    char *owned_out;    /* --out derived from --resume */
    cli_slots slots;    /* the step's micro-batches or ranks (train_dist.c) */
    int64_t ckpt_slots; /* a resumed run: the checkpoint's world size * accumulate */
    int agreed_signal;  /* under mpirun: the stop signal every rank agreed on */
    bool agreed;        /* under mpirun: every rank knows why the run stops (no abort) */
    cli_tabular tab;    /* --data DIR with train.csv and test.csv (data_csv.c) */
} run;

/* ---- train_state.c ---------------------------------------------------------------------- */

/* The schedule named `name` (one of SCHEDULE_NAMES) in *kind; false if none is. */
bool train_schedule_parse(const char *name, schedule_kind *kind);
/* The lr of epoch `epoch` (0-based) and step `step` (the optimizer steps before this one,
 * from the start of the run; used by onecycle); NaN with the library's error. */
double train_schedule_lr(const train_cfg *c, int epoch, int64_t step, int64_t batches_per_epoch,
                         double *momentum);
/* Whether the schedule sets the optimizer's momentum at each step: onecycle cycles it as
 * torch's OneCycleLR (cycle_momentum, its default) for Adam's and AdamW's beta1, and for
 * SGD's and RMSprop's momentum when --momentum > 0 (with 0 they keep none: torch's
 * cycle_momentum=False); Adagrad has none. */
bool train_cycles_momentum(const train_cfg *c);
/* plateau: the torch settings of c (gamma, patience) with a fresh state; -1 with an error. */
int train_plateau_init(train_cfg *c);
/* Reads the settings of the checkpoint st (r->c.resume) into r->c, checking the flags given
 * in opts against them. CLI_OK or an exit status (message printed). */
int train_resume_settings(run *r, const bk_safetensors *st, cli_option *opts, int n_opts);
/* The optimizer of c's settings over m; NULL with the library's error. */
bk_optim *train_make_optim(const train_cfg *c, bk_module *m);
/* The checkpoint (in_epoch: at r->pos, inside the epoch after done_epochs); then CLI_OK or
 * CLI_RUNTIME (message printed). */
int train_write_checkpoint(run *r, bool in_epoch);
/* After an epoch: the model file, the checkpoint, the CSV and the SVG (and the best model). */
int train_write_outputs(run *r);
/* The index in the history of the highest test accuracy (the first of equals), or -1. */
int train_best_epoch(const run *r);

/* ---- train_loop.c ----------------------------------------------------------------------- */

/* The epochs from r->done_epochs to r->c.epochs, with SIGINT/SIGTERM caught (finish the
 * step, save, exit 128 + signal) and --detect-anomaly on. The command's exit status. */
int train_run(run *r);

#endif
