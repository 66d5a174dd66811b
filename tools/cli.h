/* cli.h - what the files of the `brick` command-line tool share. Private to tools/.
 *
 * Exit statuses, everywhere (the same mistake, the same status in every command:
 * tests/test_cli_status.sh): 0 success; 1 a runtime failure (a file that is there but
 * fails to load or holds values its flags would refuse, memory or disk that is short: a
 * resource, a loss that turns NaN: the library's message is printed); 2 a usage error
 * (bad flag, value or path: missing, a directory for a file, a data directory without the
 * files the command reads, an --out that exists or is a directory: ONE line
 * "brick <cmd>: <reason>" on stderr); 128 + signal for a training run interrupted.
 *
 * Files the tool writes (docs/cli.md):
 *   model file   a safetensors state dict + metadata "brick.format" = "brick-model-1",
 *                "brick.arch" (canonical bk_model_build spec), "brick.in_shape" ("1,28,28"),
 *                "brick.n_classes", "brick.class_names" (comma-separated), ...
 *   checkpoint   the same plus the optimizer state ("optim.*") and everything needed to
 *                continue bit for bit; "brick.format" = "brick-checkpoint-1".
 */
#ifndef BRICK_CLI_H
#define BRICK_CLI_H

#include "brick.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

enum { CLI_OK = 0, CLI_RUNTIME = 1, CLI_USAGE = 2 };

#define CLI_MODEL_FORMAT "brick-model-1"
#define CLI_CKPT_FORMAT "brick-checkpoint-1"
#define CLI_MAX_CLASSES 256

/* ---- messages (cli.c) ----------------------------------------------------------------- */

/* "brick train" etc.: the prefix of every message; set by main before a command runs. */
extern const char *cli_prog;

/* The whole command line: dispatches argv[1] to its command and returns the exit status
 * (brick.c; main.c is just main calling it, so that tests and the fuzz target can link
 * everything else). */
int cli_main(int argc, char **argv);
/* When set, every command returns CLI_OK right after the checks of its arguments that
 * need no file (options, values, positional counts, the --model spec), before it reads,
 * writes or trains anything: the CLI fuzz target (fuzz/fuzz_cli.c) parses this way. Usage
 * errors are reported exactly as without it. */
extern bool cli_parse_only;

/* Prints "<cli_prog>: <message>" on stderr and returns CLI_USAGE (2). */
int cli_usage(const char *fmt, ...) BK_PRINTF_FORMAT(1, 2);
/* Prints "<cli_prog>: <message>" on stderr and returns CLI_RUNTIME (1). With fmt NULL the
 * message is bk_last_error(). */
int cli_fail(const char *fmt, ...) BK_PRINTF_FORMAT(1, 2);

/* ---- options (cli.c) -------------------------------------------------------------------- */

typedef enum cli_kind {
    CLI_FLAG,  /* bool, no value */
    CLI_STR,   /* const char * (borrowed from argv) */
    CLI_INT,   /* int64_t in [min, max] */
    CLI_FLOAT, /* double in [min, max], finite */
    CLI_F32,   /* as CLI_FLOAT, rounded to float32 first (a setting the optimizer uses as a
                 * float: the one place where it is rounded, see cli_value_parse) */
    CLI_KIND_COUNT
} cli_kind;

typedef struct cli_option {
    const char *name; /* "--epochs" */
    cli_kind kind;
    void *out;                  /* bool *, const char **, int64_t *, double * (FLOAT, F32) */
    double min, max;            /* numbers: the accepted range (inclusive) */
    bool given;                 /* set by cli_parse when the option appears */
    const char *const *choices; /* CLI_STR: the accepted words, NULL-terminated; NULL: any */
} cli_option;

/* Parses argv[1..argc-1] (argv[0] is the command's name): options as "--name value" or
 * "--name=value" anywhere, "--" ends them; other words go to pos[] (at most max_pos).
 * -h/--help prints help(stdout). Returns CLI_OK, CLI_USAGE (message printed), or -1 after
 * printing the help (the caller exits 0). */
int cli_parse(int argc, char **argv, cli_option *opts, int n_opts, const char **pos, int max_pos, int *n_pos,
              void (*help)(FILE *f));
/* The number of elements of an array (an option table, the positional words). */
#define CLI_COUNT(a) ((int)(sizeof(a) / sizeof((a)[0])))
/* --threads T, the same in every command (cli_set_threads when given). */
#define CLI_OPT_THREADS(out) \
    { "--threads", CLI_INT, (out), 1, 1024, false, NULL }

/* The option named `name` in opts (for ->given); NULL if absent. */
cli_option *cli_opt(cli_option *opts, int n_opts, const char *name);

/* Strict number parsing for values that come from files or lists ("1,28,28"). */
bool cli_parse_i64(const char *s, int64_t *out);

/* THE parser of a setting's value, shared by the command line (cli_parse) and what a
 * command reads back from a file it wrote (cli_meta_value): the whole string, of o's kind
 * (CLI_INT: a decimal integer; CLI_FLOAT: a finite number; CLI_F32: a finite number
 * rounded to float32, which a float holds; CLI_STR: non-empty, one of o->choices when
 * set), inside [o->min, o->max]. Stores it in *out (int64_t *, double *,
 * const char ** borrowing v) and returns true; else writes why ("must be an integer in
 * 1..1000000000") to why[n] and leaves *out alone. */
bool cli_value_parse(const cli_option *o, const char *v, void *out, char *why, size_t n);

/* ---- files and data (cli.c) ---------------------------------------------------------- */

bool cli_is_dir(const char *path);
bool cli_is_file(const char *path);
/* CLI_OK when path is a regular file; else prints "[<flag> ]<path>: no such file" (or "not
 * a regular file": a FIFO would block its reader) and returns CLI_USAGE. flag may be NULL. */
int cli_need_file(const char *flag, const char *path);
/* True when dir's parent directory exists (so that a file can be created there). */
bool cli_parent_is_dir(const char *path);
/* --out FILE before anything is read: not a directory, in a directory that exists.
 * CLI_OK or CLI_USAGE (message printed). */
int cli_need_out(const char *out);
/* True when dir holds the four Fashion-MNIST files (each plain or .gz); _file: any of them. */
bool cli_has_fashion_mnist(const char *dir);
bool cli_has_fashion_file(const char *dir);
/* Before a command reads the IDX data directory dir (which cli_need_data found to exist):
 * it holds the Fashion-MNIST files the command reads (train: all four; else the two t10k
 * files). CLI_OK, or CLI_USAGE (the same mistake, the same status in every command) with
 * one line naming dir and every missing file. */
int cli_need_fashion_mnist(const char *dir, bool train);
/* The default data directory: $BRICK_DATA, else /usr/share/datasets/fashion-mnist when it
 * holds the files, else the bundled subset (cli_bundled), else ./data/fashion-mnist-subset.
 * Writes it to buf; *why says which rule picked it. */
const char *cli_default_data(char *buf, size_t n, const char **why);
/* A file or directory that ships with brick, `rel` under data/: in the source tree
 * (<tree>/data/REL beside <tree>/build/brick) or installed (<prefix>/share/brick/REL beside
 * <prefix>/bin/brick, as make install puts it). Writes the first readable one to buf;
 * false when there is none. */
bool cli_bundled(const char *rel, char *buf, size_t n);

/* Whether a and b name the same file: the same device and inode when both exist, else
 * the same string. */
bool cli_same_file(const char *a, const char *b);
/* Before a command runs for long: can `path` be written? A directory is refused
 * (CLI_USAGE); a file is created beside it, given `bytes` of disk (posix_fallocate, so
 * that a full disk or a file size limit shows now) and removed (CLI_RUNTIME when that
 * fails). Prints the message; `what` names the output ("--out", "the checkpoint"). */
int cli_check_writable(const char *what, const char *path, int64_t bytes);

/* A growable string (for CSV, SVG and metadata values). */
typedef struct cli_buf {
    char *p;
    size_t len, cap;
    bool oom;
} cli_buf;
void cli_buf_printf(cli_buf *b, const char *fmt, ...) BK_PRINTF_FORMAT(2, 3);
void cli_buf_free(cli_buf *b);
/* Writes the buffer to path atomically (bk_file_write_atomic: temporary file, fsync,
 * rename; leftovers of killed runs removed). 0, or -1 with an error set. */
int cli_write_atomic(const char *path, const cli_buf *b);

/* path with its ".safetensors" suffix (if any) replaced by `suffix`, malloc'ed. */
char *cli_sibling(const char *path, const char *suffix);

double cli_now(void); /* seconds, monotonic */

/* Sets the compute threads (OpenBLAS and OpenMP, whichever the build uses). */
void cli_set_threads(int n);

/* ---- data sets and their preparation (cli_data.c) ------------------------------------ */

#define CLI_NORM_MAX 16 /* channels a normalisation names */
/* How samples are prepared (--normalize, --augment); in files as brick.normalize
 * ("M1,M2/S1,S2", the --normalize syntax) and brick.augment ("crop=P,flip"). */
typedef struct cli_prep {
    int n_norm; /* 0: none; 1: one mean and std for every channel; else one per channel */
    float mean[CLI_NORM_MAX], std[CLI_NORM_MAX];
    int64_t crop_padding; /* random crop from the sample padded by this (0: off) */
    bool hflip;           /* random horizontal flip */
} cli_prep;

/* What --data dir holds: "csv" (train.csv, test.csv), "fashion-mnist", "cifar10",
 * "image-folder" (train/, test/), or NULL. */
const char *cli_data_format(const char *dir);
/* Before a command reads the data directory dir (train: both splits; else the test split):
 * it exists and holds a data set cli_data_format knows, and an IDX set has the files the
 * command reads (cli_need_fashion_mnist). CLI_OK, or CLI_USAGE with one line naming dir
 * (why: how it was picked, NULL for --data). cli_data_load checks it too. */
int cli_need_data(const char *dir, const char *why, bool train);
/* Loads the training split into *train (train NULL: the test split alone) and the test
 * split into *test. channels, height, width: 0 for the data's own (image folders only;
 * otherwise 0 when train is given). classes: an image folder's classes when train is NULL
 * (the model's). CLI_OK, or an exit status with the message printed and nothing loaded. */
int cli_data_load(const char *dir, int channels, int64_t height, int64_t width, const char *const *classes,
                  int n_classes, bk_dataset **train, bk_dataset **test);
/* "M1,M2,.../S1,S2,..." (as many means as stds, at most CLI_NORM_MAX, stds > 0) into p;
 * -1 if malformed (p unchanged). */
int cli_prep_parse_normalize(const char *s, cli_prep *p);
/* "none" or a comma list of crop, crop=P (1..1024; crop alone: 4) and flip into p; -1 if
 * malformed. */
int cli_prep_parse_augment(const char *s, cli_prep *p);
/* p's metadata texts: norm "" when there is no normalisation, aug "none" when no augmentation. */
void cli_prep_format(const cli_prep *p, char *norm, size_t nn, char *aug, size_t na);
/* Normalises ds (what: its name for messages) as p says (nothing when p has none). CLI_OK or
 * an exit status (message printed). */
int cli_prep_normalize(const cli_prep *p, bk_dataset *ds, const char *what);
/* p from the metadata of st (the file path): zero when absent; per-channel values must
 * match the channels of in_shape (its brick.in_shape). CLI_OK or CLI_RUNTIME. */
int cli_prep_from_meta(const char *path, const bk_safetensors *st, const char *in_shape, cli_prep *p);
/* ---- CSV tables: --data DIR with train.csv and test.csv (data_csv.c) ------------------ */
/* "classification", "regression", NULL (--task) */
extern const char *const CLI_TASK_NAMES[];
/* What a CSV data set needs besides its rows: the task, the target column and the
 * standardisation of the training split (docs/data.md), as the model file records them. */
typedef struct cli_tabular {
    bool on;          /* the data are a CSV table (else IDX images: nothing below is set) */
    bool regression;  /* else classification */
    const char *task; /* a CLI_TASK_NAMES word; NULL before loading: from the data (auto) */
    char *target;     /* the target column (malloc'ed), or NULL: the last */
    int64_t n_features;
    float *mean, *std;             /* per feature, malloc'ed */
    float target_mean, target_std; /* regression: the target's */
} cli_tabular;
/* True when dir holds train.csv and test.csv. */
bool cli_has_csv(const char *dir);
/* Loads dir/train.csv and dir/test.csv (t->target, t->task: NULL for the defaults) and
 * standardises both splits: with statistics of the training split computed now when fresh,
 * else with t's (read from a model file). Sets t->on, t->regression, t->task. CLI_OK, or
 * CLI_RUNTIME with the message printed (the data sets may then be set: the caller frees). */
int cli_tabular_load(const char *dir, cli_tabular *t, bool fresh, bk_dataset **train, bk_dataset **test);
/* t's metadata (none when !t->on) into keys (static) and values (malloc'ed; NULL when out
 * of memory), at most 6; returns how many. */
int cli_tabular_meta(const cli_tabular *t, const char **keys, char **values);
/* Reads t from a model file's metadata (t->on false when it has no brick.task: an image
 * model). CLI_OK, or CLI_RUNTIME naming the key that is missing or malformed. */
int cli_tabular_from_meta(const char *path, const bk_safetensors *st, int64_t n_features, cli_tabular *t);
void cli_tabular_free(cli_tabular *t);
/* Regression over ds (standardised targets) in eval mode with gradients off: the mean
 * squared error on the standardised target (the training loss), and RMSE and MAE in the
 * target's units. 0, or -1 with the library's error. */
int cli_evaluate_regression(bk_module *m, const bk_dataset *ds, int64_t batch, const cli_tabular *t,
                            double *loss, double *rmse, double *mae);

/* ---- models from files (cli.c) ------------------------------------------------------- */

typedef struct cli_model {
    bk_module *m;
    char arch[256]; /* escaped, for printing */
    int in_ndim;
    int64_t in_shape[BK_MAX_DIMS];
    int n_classes;
    char *class_names[CLI_MAX_CLASSES]; /* malloc'ed and escaped (bk_escape), or NULL */
    char name_buf[CLI_MAX_CLASSES][16]; /* "class 7" fallbacks */
    char dtypes[128]; /* a plain state dict's dtypes as read ("F32 x 60, I64 x 20"), or "" */
    cli_prep prep;    /* brick.normalize (applied to its inputs) and brick.augment */
    cli_tabular tab;  /* a model trained on a CSV table: its task and standardisation */
} cli_model;

/* Rebuilds the model recorded in a model or checkpoint file from its metadata alone and
 * loads its weights. Returns CLI_OK, or CLI_RUNTIME with the message printed. */
int cli_model_load(const char *path, cli_model *cm);
void cli_model_free(cli_model *cm);
/* A plain state dict (PyTorch's, as safetensors: no brick metadata) and the model of the
 * zoo it belongs to, from the options --model SPEC [--in-shape DIMS] [--classes N]
 * [--class-names A,B,...] [--non-strict] (CLI_OPTS_PLAIN), shared by eval, predict,
 * summary and import. */
typedef struct cli_plain {
    const char *model, *in_shape, *class_names;
    int64_t classes;
    bool non_strict;
    int in_ndim; /* in_shape parsed by cli_plain_check */
    int64_t shape[BK_MAX_DIMS];
} cli_plain;
#define CLI_PLAIN_DEFAULTS                         \
    {                                              \
        NULL, "1,28,28", NULL, 10, false, 0, { 0 } \
    }
#define CLI_OPTS_PLAIN(p)                                                       \
    {"--model", CLI_STR, &(p)->model, 0, 0, false, NULL},                       \
        {"--in-shape", CLI_STR, &(p)->in_shape, 0, 0, false, NULL},             \
        {"--classes", CLI_INT, &(p)->classes, 1, CLI_MAX_CLASSES, false, NULL}, \
        {"--class-names", CLI_STR, &(p)->class_names, 0, 0, false, NULL}, {     \
        "--non-strict", CLI_FLAG, &(p)->non_strict, 0, 0, false, NULL           \
    }
#define CLI_PLAIN_HELP                                                                  \
    "  --model SPEC      FILE is a plain state dict (a PyTorch model's, no brick\n"     \
    "                    metadata) of this model of the zoo (docs/pytorch.md)\n"        \
    "  --in-shape DIMS   its input shape without the batch (default 1,28,28)\n"         \
    "  --classes N       its number of classes (default 10)\n"                          \
    "  --class-names L   its class names, comma-separated (default: class 0, ...)\n"    \
    "  --non-strict      load what matches and list the missing and unexpected names\n" \
    "                    (load_state_dict(strict=False)); default: all must match\n"
/* Usage checks of the plain options in opts (CLI_OPTS_PLAIN's rows): --in-shape,
 * --classes, --class-names and --non-strict need --model; the shape and the spec must be
 * valid. CLI_OK or CLI_USAGE (message printed). */
int cli_plain_check(cli_plain *p, cli_option *opts, int n_opts);
/* Loads FILE: with p->model NULL a brick model file (cli_model_load); else builds p's
 * model and loads FILE's state dict into it, strictly unless p->non_strict (then the
 * skipped names are printed on stderr). Returns CLI_OK, or CLI_RUNTIME with the message
 * printed. */
int cli_model_open(const char *path, const cli_plain *p, cli_model *cm);
/* The class name of index c (the file's, or "class c"). Do not free. */
const char *cli_class_name(cli_model *cm, int c);
/* Reads the metadata `key` of st (the file `path`) with the range of `range` (the flag
 * that sets it, or a range of its own) into *out, as cli_value_parse. CLI_OK; CLI_OK
 * leaving *out alone when the key is absent and !required; else CLI_RUNTIME with the
 * message printed: "PATH: metadata KEY \"VALUE\" must be ... (as --flag)". */
int cli_meta_value(const char *path, const bk_safetensors *st, const char *key, const cli_option *range,
                   bool required, void *out);
/* CLI_OK when every tensor of st (the file `path`) is finite; else CLI_RUNTIME naming the
 * first tensor that holds a NaN or an infinity (message printed). */
int cli_check_finite(const char *path, const bk_safetensors *st);
/* Parses "1,28,28" into shape; false if malformed. */
bool cli_parse_shape(const char *s, int *ndim, int64_t *shape);

/* ---- training history, CSV and SVG (plot.c) ----------------------------------------- */

typedef struct cli_epoch {
    int epoch; /* 1-based */
    double train_loss, train_acc, test_loss, test_acc;
    double lr; /* the epoch's learning rate (NaN in rows of checkpoints older than the column) */
    double seconds;
    double test_rmse, test_mae; /* regression (whose rows have no accuracies) */
} cli_epoch;

/* "epoch,train_loss,train_acc,test_loss,test_acc,lr,seconds" and one row per epoch
 * (regression: "epoch,train_loss,test_loss,test_rmse,test_mae,lr,seconds"). */
void cli_history_csv(cli_buf *b, const cli_epoch *h, int n, bool header, bool regression);
/* Parses rows written by cli_history_csv(header false), with or without the lr column
 * (checkpoints written before it had none); returns the count or -1. */
int cli_history_parse(const char *s, cli_epoch *h, int max, bool regression);
/* An SVG line plot of train loss, train acc, test loss and test acc against epoch (like
 * D2L's). */
void cli_plot_svg(cli_buf *b, const cli_epoch *h, int n, const char *title);

/* ---- the progress bar (progress.c) --------------------------------------------------- */

typedef struct cli_progress {
    bool tty;         /* draw at all? (stderr is a terminal) */
    char head[72];    /* "epoch 3/10" (train), "steps 251-500/2000" (train-lm) */
    const char *unit; /* what a batch's `samples` count: "samples" (train), "tokens" */
    int64_t batches;  /* per epoch (or part of a run) */
    double start, last_draw;
    int drawn; /* characters on the line now */
} cli_progress;

void cli_progress_init(cli_progress *p, bool tty);
/* An epoch of `batches` batches begins: "epoch EPOCH/EPOCHS" heads the line. */
void cli_progress_start(cli_progress *p, int epoch, int epochs, int64_t batches);
/* The same with any head (at most 71 characters) and unit ("tokens"). */
void cli_progress_start_named(cli_progress *p, const char *head, const char *unit, int64_t batches);
/* After batch `done` (1-based) of the epoch: `samples` seen so far, running mean loss. */
void cli_progress_update(cli_progress *p, int64_t done, int64_t samples, double loss);
/* Erases the bar (so that the epoch's summary line can take its place). */
void cli_progress_clear(cli_progress *p);
/* A status line in place of the bar ("epoch 3/10 WHAT"), until the next update or clear. */
void cli_progress_note(cli_progress *p, const char *what);
/* The width of the terminal on stderr ($COLUMNS, else 80, when it has none). */
int cli_terminal_columns(void);

/* ---- the outer loop of brick train and brick train-lm (loop.c) ------------------------ */

/* What a training command holds while it runs: its progress bar and the test hooks. Between
 * cli_loop_begin and cli_loop_end, SIGINT and SIGTERM only set the flag cli_loop_signal
 * reads (a repeat: loop.c's header). One at a time (the handlers are the process's). */
typedef struct cli_loop {
    const char *cmd;              /* "brick train": how the "to continue" line starts */
    cli_progress pg;              /* drawn when asked and stderr is a terminal */
    int64_t interrupt_at;         /* BRICK_TEST_INTERRUPT_AT_STEP, or 0 */
    const char *interrupt_repeat; /* BRICK_TEST_INTERRUPT_REPEAT, or "" */
    bool prev_anomaly;            /* restored by cli_loop_end */
} cli_loop;

/* Installs the stop handlers, reads the test hooks, sets the anomaly mode (restored by
 * cli_loop_end) and the progress bar (draw: this process draws one, e.g. MPI rank 0). */
void cli_loop_begin(cli_loop *L, const char *cmd, bool draw, bool detect_anomaly);
void cli_loop_end(cli_loop *L);
/* The first stop signal's number since cli_loop_begin, or 0. */
int cli_loop_signal(void);
/* While on, a repeated signal waits (the command is writing its files). */
void cli_loop_saving(bool on);
/* After optimizer step `step` (1-based, from the run's start): the test hooks. */
void cli_loop_after_step(const cli_loop *L, int64_t step);
/* After stop signal sig: save(ctx) writes the checkpoint (NULL: the last one already holds
 * the run), then "interrupted by SIGINT WHERE: saved the checkpoint CKPT" and "to continue:
 * CMD --resume CKPT [--out OUT] [EXTRA]" on stderr. 128 + sig, or save's status. */
int cli_loop_interrupted(cli_loop *L, int sig, const char *where, const char *ckpt, const char *out,
                         const char *extra, int (*save)(void *ctx), void *ctx);

/* The model file a checkpoint STEM.ckpt.safetensors belongs to, STEM.safetensors
 * (malloc'ed); NULL for another name (or no memory). */
char *cli_resume_out_name(const char *ckpt);
/* The same for --resume without --out: CLI_OK, or CLI_USAGE for another name ("give
 * --out"), CLI_RUNTIME without memory (message printed). */
int cli_resume_out(const char *ckpt, char **out);
/* A run's outputs before it starts. paths[0..n) are its files (paths[0]: the model file,
 * --out), what[i] names each ("the log"); ckpt is its checkpoint. A new run (resume NULL)
 * is refused when the model file or the checkpoint exists, unless force; a resumed run
 * when one of paths is the checkpoint being resumed (the same file by inode). CLI_OK or
 * CLI_USAGE (message printed). */
int cli_outputs_check(const char *resume, bool force, const char *ckpt, int n, const char *const *paths,
                      const char *const *what);
/* A generator's state in metadata: "state:inc", 16 hex digits each (33 characters + NUL). */
#define CLI_RNG_CHARS 34
void cli_rng_format(char buf[CLI_RNG_CHARS], const bk_rng *r);
/* The reverse, strictly: exactly that form, and inc odd (a PCG stream needs it). */
bool cli_rng_parse(const char *s, bk_rng *r);

/* ---- one optimizer step (train_loop.c): brick train and brick train-lm ---------------- */

/* Why a batch's loss l stops a run: "NaN", "infinite", "diverging" (above max_loss, when
 * max_loss > 0), or NULL when it does not. */
const char *cli_loss_problem(double l, double max_loss);

typedef enum cli_step_result {
    CLI_STEP_DONE,     /* the parameters are updated */
    CLI_STEP_FAILED,   /* the forward, backward or update failed: the library's error is set */
    CLI_STEP_BAD_LOSS, /* cli_loss_problem(*l, max_loss): stopped before the backward */
    CLI_STEP_RESULT_COUNT
} cli_step_result;

/* One optimizer step on a batch with its mean loss: forward x, mean cross-entropy of the
 * n rows of logits against the targets y, the loss in *l and checked BEFORE the backward
 * and the update (a stopped run leaves no damaged state), then zero_grad, backward, step.
 * *logits (may be NULL): the forward's output (n, classes), in the arena until the caller's
 * bk_arena_reset. */
cli_step_result cli_train_step(bk_module *m, bk_optim *o, bk_tensor *x, const int64_t *y, int64_t n,
                               double max_loss, double *l, bk_tensor **logits);

/* ---- evaluation (cmd_eval.c) ---------------------------------------------------------- */

/* Mean cross-entropy and accuracy of m over ds in eval mode with gradients off (m's mode
 * and the grad mode are restored), in batches of `batch`. confusion (n_classes^2, row =
 * true class, may be NULL) is added to. 0, or -1 with the library's error. */
int cli_evaluate(bk_module *m, const bk_dataset *ds, int64_t batch, double *loss, double *acc,
                 int64_t *confusion, int n_classes);
/* The batches j of the same evaluation with j % parts == part (the ranks' shares): each
 * one's loss sum and correct count into batch_loss[j] and batch_correct[j]; cli_evaluate_sum
 * adds them up in batch order, so that any split gives cli_evaluate's numbers bit for bit. */
int cli_evaluate_part(bk_module *m, const bk_dataset *ds, int64_t batch, int part, int parts,
                      double *batch_loss, int64_t *batch_correct, int64_t *confusion, int n_classes);
void cli_evaluate_sum(const bk_dataset *ds, int64_t batch, const double *batch_loss,
                      const int64_t *batch_correct, double *loss, double *acc);

/* ---- several slots per optimizer step: --accumulate and mpirun (train_dist.c) ------- */

/* A step's global batch cut into n_slots = world * accumulate slots (one of the two is 1):
 * micro-batches of one process, or one slice per rank. */
typedef struct cli_slots {
    int rank, world, accumulate, n_slots;
    int64_t seed; /* the run's --seed: dropout streams per (step, slot) */
    bk_ddp *ddp;  /* NULL with one slot (the classic step: mean loss over the batch) */
    float *x;     /* the step's batch, copied from the arena */
    int64_t *y;
    float *t; /* its regression targets (one per sample), when the step has them */
    size_t x_cap, y_cap, t_cap;
    bool regression; /* this step: MSE against t, else cross-entropy against y */
} cli_slots;

/* What a step over the slots gives, the same on every rank. */
typedef struct cli_step {
    double loss_sum; /* sum of the per-sample losses of the global batch */
    int64_t correct;
    int signal;      /* the largest SIGINT/SIGTERM number pending on any rank, or 0 */
    int failed_rank; /* -1, or the first rank whose forward or backward failed */
    bool agreed;     /* every rank knows about the failure (no need to abort the job) */
    char error[512]; /* this rank's failure message */
} cli_step;

/* Slot k of a batch of B: its length, and its first sample in *off. The first B % slots
 * slots get one sample more. */
int64_t cli_slot_range(int64_t B, int slots, int k, int64_t *off);
/* accumulate: micro-batches per process (1 under mpirun). With more than one slot in all,
 * makes the bk_ddp (which checks every rank built `arch` and broadcasts rank 0's model).
 * 0, or -1 with the library's error. */
int cli_slots_init(cli_slots *s, bk_module *m, const char *arch, int accumulate, int64_t seed,
                   bk_dist_mode mode);
void cli_slots_free(cli_slots *s);
/* This rank's slots of the batch x (B, ...) with labels y, or (y NULL) regression targets
 * t (B, 1) with the squared error: forward, SUM loss, backward each, then the gradients of the global batch's mean loss, summed in slot order (over
 * the ranks too), in every trainable parameter's grad; signal: this rank's pending one.
 * Leaves the optimizer step to the caller. CLI_OK, or CLI_RUNTIME (out says who failed;
 * a message is printed only for a failure of communication, which is never agreed). */
int cli_slots_step(cli_slots *s, bk_module *m, bk_tensor *x, const int64_t *y, const bk_tensor *t, int64_t B,
                   int64_t step, int signal, cli_step *out);
/* cli_evaluate with the batches shared among the ranks (rank r takes batch j when
 * j % world == r), the same numbers on every rank, bit for bit those of one process.
 * CLI_OK, or CLI_RUNTIME with *agreed set when every rank knows (the failing rank printed
 * its message). */
int cli_dist_evaluate(bk_module *m, const bk_dataset *ds, int64_t batch, double *loss, double *acc,
                      bool *agreed);
/* Every rank's rc: the largest, and *agreed set when it is not CLI_OK (every rank then
 * knows and can stop without aborting the job). A world of one returns rc. */
int cli_dist_agree(int rc, bool *agreed);

/* ---- the commands -------------------------------------------------------------------- */

int cmd_train(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_summary(int argc, char **argv);
int cmd_predict(int argc, char **argv);
int cmd_train_lm(int argc, char **argv); /* cmd_lm.c */
int cmd_generate(int argc, char **argv); /* cmd_lm.c */
int cmd_models(int argc, char **argv);
int cmd_import(int argc, char **argv); /* cmd_import.c */
/* `brick models [NAME]`'s list on stdout: every model of the zoo, or the model `name`
 * (NULL: all). CLI_OK, or CLI_USAGE for an unknown name (message printed). For
 * `brick train --model help`. */
int cli_models_print(const char *name);

/* What `brick train` uses for a model when its flags do not say otherwise: settings that
 * train the model well on Fashion-MNIST in 10 epochs (README's table). */
typedef struct cli_recipe {
    const char *model, *optimizer, *schedule; /* schedule: a SCHEDULE_NAMES word */
    double lr, momentum, weight_decay;
    int64_t batch;
} cli_recipe;
/* The recipe of the model a spec names ("resnet:width=8": resnet's), or NULL. */
const cli_recipe *cli_recipe_for(const char *spec);
/* "SGD lr 0.02, momentum 0.9, cosine schedule, batch 128" into buf. */
void cli_recipe_describe(const cli_recipe *r, char *buf, size_t n);

#endif
