/* cmd_train.c - `brick train`: trains a model from the zoo on Fashion-MNIST or a CSV table.
 *
 * Trains epochs of mini-batches (train_loop.c: the loop, the loss check, interrupts) and
 * after every epoch evaluates on the test split (grad off, eval mode, in batches of
 * --batch-size, so that it never needs more memory than a training step), prints one
 * summary line and writes four files atomically (train_state.c):
 *   FILE                     the model: state dict + metadata (see cli.h)
 *   FILE-stem.ckpt.safetensors  model + optimizer state + everything a resume needs
 *   FILE-stem.csv            epoch,train_loss,train_acc,test_loss,test_acc,seconds
 *   FILE-stem.svg            the curves of the CSV
 * ("FILE-stem" is FILE without its .safetensors suffix.)
 *
 * Reproducibility: bk_manual_seed(seed) before the model is built, and the loader has its
 * own generator seeded with splitmix64(seed); the checkpoint (train_state.c) holds both
 * generators' states, so that a resumed run ends with the weights of an uninterrupted one.
 *
 * This file: the options, the checks before anything is trained (data, memory, outputs),
 * the data, model and optimizer of a fresh or resumed run, and the MPI world.
 */
#define _XOPEN_SOURCE 700 /* sysconf, freopen */

#include "train.h"

#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void help(FILE *f) {
    fprintf(f,
            "usage: brick train [options]\n"
            "\n"
            "Trains a model on Fashion-MNIST (or other IDX files, or a CSV table: --data) and\n"
            "writes the model FILE, a training checkpoint STEM.ckpt.safetensors, a log\n"
            "STEM.csv and a plot STEM.svg, where STEM is FILE without its .safetensors\n"
            "suffix. They are rewritten after every epoch.\n"
            "\n"
            "Each model has a recipe (brick models lists it): the optimizer and its lr,\n"
            "momentum and weight decay, the lr schedule and the batch size that train it\n"
            "well; a flag overrides its part (another --optimizer: that optimizer's plain\n"
            "defaults, lr 0.1). mlp: SGD lr 0.1, batch 256.\n"
            "\n"
            "options:\n"
            "  --model SPEC        model name or name:key=value,... (default mlp); models: ");
    for (const char *const *n = bk_model_names(); *n; n++) fprintf(f, "%s%s", *n, n[1] ? ", " : "\n");
    fprintf(f,
            "                      (--model help, or brick models, lists their settings)\n"
            "  --data DIR          Fashion-MNIST IDX files (plain or .gz), CIFAR-10 batches\n"
            "                      (data_batch_1..5.bin, test_batch.bin), an image folder\n"
            "                      (DIR/train/<class>/*.png|jpg|pgm, DIR/test/<class>/...) or a\n"
            "                      CSV table (DIR/train.csv and DIR/test.csv, docs/data.md);\n"
            "                      default: $BRICK_DATA, else /usr/share/datasets/fashion-mnist\n"
            "                      if it holds them, else the bundled data/fashion-mnist-subset\n"
            "  --channels C        image folders: 1 (grey) or 3 (RGB) (default: the first image's)\n"
            "  --image-size N      image folders: resize to N x N as torchvision's Resize\n"
            "                      (default: the first image's size)\n"
            "  --normalize N       auto (each channel's mean and std on the training split) or\n"
            "                      MEANS/STDS (0.49,0.48,0.45/0.25,0.24,0.26; one value: every\n"
            "                      channel): x = (x - mean) / std, also in eval and predict\n"
            "  --augment A         training batches: crop (random crop, padding 4), crop=P,\n"
            "                      flip (horizontal, p 1/2), crop,flip or none (default)\n"
            "  --target COLUMN     CSV: the target column's name (default: the last column)\n"
            "  --task T            CSV: classification or regression (default: classification\n"
            "                      when every target value is an integer); regression trains\n"
            "                      with MSE on the standardised target, reports RMSE and MAE\n"
            "  --epochs N          epochs to train in all (default 10)\n"
            "  --batch-size B      mini-batch size (default: the recipe's): the global batch of one\n"
            "                      optimizer step, also with --accumulate and under mpirun\n"
            "  --accumulate N      split every batch into N micro-batches (the first B %% N\n"
            "                      get one sample more), each its own forward and backward,\n"
            "                      their gradients summed in order (default 1; a resumed run:\n"
            "                      the checkpoint's); the same bits as mpirun -np N\n"
            "  --lr LR             learning rate (default: the recipe's)\n"
            "  --optimizer NAME    sgd, adam, adamw, rmsprop or adagrad (default: the recipe's)\n"
            "  --momentum M        SGD or RMSprop momentum (default: the recipe's, else 0)\n"
            "  --weight-decay W    weight decay (default: the recipe's, else 0; adamw: 0.01)\n"
            "  --lr-schedule S     none, cosine, step, onecycle or plateau (default: the\n"
            "                      recipe's); the lr is set before every epoch, as torch's\n"
            "                      scheduler.step() once per epoch:\n"
            "                      cosine: CosineAnnealingLR(T_max=--epochs, eta_min=--lr-min)\n"
            "                      step: StepLR(step_size=--lr-step-size, gamma=--lr-gamma)\n"
            "                      plateau: ReduceLROnPlateau(factor=--lr-gamma, patience=\n"
            "                      --lr-patience) on the test loss, after every epoch\n"
            "                      or before every step: onecycle: OneCycleLR(max_lr=--lr,\n"
            "                      total_steps=--epochs x batches per epoch), torch's defaults\n"
            "  --lr-min LR         cosine: the lr it anneals to (default 0)\n"
            "  --lr-step-size N    step: multiply the lr by --lr-gamma every N epochs\n"
            "  --lr-gamma G        step, plateau: the factor (default 0.1)\n"
            "  --lr-patience N     plateau: epochs without a better test loss before a cut\n"
            "                      (default 10)\n");
    /* (in parts: C11 compilers need to support string literals of only 4095 characters) */
    fputs(
        "  --seed S            seed of the model init and the shuffling (default 0)\n"
        "  --out FILE          the model file (default model.safetensors); a new run\n"
        "                      refuses to replace FILE or STEM.ckpt.safetensors of an\n"
        "                      earlier one unless --force is given\n"
        "  --force             replace an earlier run's files\n"
        "  --keep-best         also keep the model of the epoch with the highest test\n"
        "                      accuracy (regression: lowest test RMSE) so far in\n"
        "                      STEM.best.safetensors\n"
        "  --resume CKPT       continue from a checkpoint, with its settings; --epochs is\n"
        "                      the new total (default: the checkpoint's; a cosine schedule\n"
        "                      keeps the T_max it started with)\n"
        "  --threads T         compute threads (default: the library's); results are\n"
        "                      reproducible bit for bit for a fixed thread count\n"
        "  --max-loss L        stop (exit 1) when a batch's loss exceeds L: the run has\n"
        "                      diverged (default 1000 ln(classes), about 2303; 0: only\n"
        "                      a NaN or infinite loss stops it)\n"
        "  --early-stop N      stop when the test loss (or --early-stop-on acc: the test\n"
        "                      accuracy) has not improved for N epochs (default 0: off);\n"
        "                      the files are the last epoch's\n"
        "  --early-stop-on M   loss (default) or acc\n"
        "  --detect-anomaly    check every op's output and gradient for NaN and Inf and\n"
        "                      name the first op (and block) that makes one (slower)\n"
        "  --dist              data-parallel training on MPI even outside mpirun (under\n"
        "                      mpirun it is on by itself): `mpirun -np P brick train`\n"
        "                      gives each rank 1/P of every batch (docs/distributed.md)\n"
        "  --reduce MODE       how the ranks' gradients are summed: deterministic (the\n"
        "                      default: bitwise equal to --accumulate P) or fast\n"
        "                      (MPI_Allreduce: not bitwise reproducible)\n"
        "  -h, --help          this help\n",
        f);
    fputs(
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
        "130 (SIGINT) or 143 (SIGTERM) interrupted after saving the checkpoint.\n",
        f);
}

static const char *const OPTIMIZER_NAMES[] = {"sgd", "adam", "adamw", "rmsprop", "adagrad", NULL};
static const char *const REDUCE_NAMES[] = {"deterministic", "fast", NULL}; /* --reduce */
static const char *const EARLY_STOP_NAMES[] = {"loss", "acc", NULL};       /* --early-stop-on */

static uint64_t splitmix64(uint64_t x) {
    x += 0x9E3779B97F4A7C15u;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9u;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBu;
    return x ^ (x >> 31);
}

/* The images file of a split as bk_fashion_mnist_load reads it (plain, else .gz), into buf. */
static const char *images_file(const char *dir, bool train, char *buf, size_t n) {
    const char *name = train ? "train-images-idx3-ubyte" : "t10k-images-idx3-ubyte";
    snprintf(buf, n, "%s/%s", dir, name);
    if (!cli_is_file(buf)) snprintf(buf, n, "%s/%s.gz", dir, name);
    return buf;
}

/* The test split must hold what the model is trained on: checked before training, not
 * found by the evaluation after a whole epoch (or never, by a model that pools). (An image
 * folder's or CIFAR-10's test split is loaded at the training split's shape.) */
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
    return cli_fail(
        "the test images %s are %s) but the training images %s are %s): a model "
        "trained on one cannot be evaluated on the other",
        images_file(r->c.data, false, fb, sizeof fb), b, images_file(r->c.data, true, fa, sizeof fa), a);
}

/* Before anything is allocated or trained: the model fits in memory, and every output
 * can be written with room for it (a read-only directory or a full disk shows now, not
 * after the first epoch). Sizes from the parameter count: float32 weights; training also
 * holds their gradients and the optimizer's state (SGD momentum: 1, Adam: 2, RMSprop: 3
 * (square_avg, momentum_buffer, grad_avg), Adagrad: 1 per weight). */
static int check_room(const run *r, int64_t n_params) {
    const char *o = r->c.optimizer;
    int states = !strcmp(o, "sgd")       ? (r->c.momentum > 0)
                 : !strcmp(o, "rmsprop") ? 3
                 : !strcmp(o, "adagrad") ? 1
                                         : 2;
    double weights = 4.0 * (double)n_params;
    double need = weights * (2 + states);
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    double have = pages > 0 && page > 0 ? (double)pages * (double)page : 0;
    if (have > 0 && need > have)
        return cli_fail("%s with %" PRId64
                        " parameters needs %.1f GiB for its weights, gradients "
                        "and %s state, more than this machine's %.1f GiB of memory",
                        r->c.model, n_params, need / 1073741824.0, r->c.optimizer, have / 1073741824.0);
    int rc;
    if ((rc = cli_check_writable("--out", r->c.out, (int64_t)weights)) ||
        (rc = cli_check_writable("the checkpoint", r->ckpt_path, (int64_t)(weights * (1 + states)))) ||
        (rc = cli_check_writable("the log", r->csv_path, 0)) ||
        (rc = cli_check_writable("the plot", r->svg_path, 0)) ||
        (r->c.keep_best && (rc = cli_check_writable("the best model", r->best_path, (int64_t)weights))))
        return rc;
    return CLI_OK;
}

/* --normalize (a resumed run: the checkpoint's values, in r->prep already), applied to both
 * splits; --augment's settings. */
static int setup_prep(run *r) {
    const char *n = r->c.normalize;
    if (n && !strcmp(n, "auto")) {
        int64_t C = r->train->ndim ? r->train->shape[0] : 0;
        if (C < 1 || C > CLI_NORM_MAX)
            return cli_usage("--normalize auto: samples of %" PRId64 " channels (1..%d)", C, CLI_NORM_MAX);
        if (bk_dataset_channel_stats(r->train, r->prep.mean, r->prep.std) != 0) return cli_fail(NULL);
        r->prep.n_norm = (int)C;
    } else if (n) {
        cli_prep_parse_normalize(n, &r->prep); /* (check_prep_flags parsed it) */
    }
    if (r->c.augment) cli_prep_parse_augment(r->c.augment, &r->prep);
    int rc = cli_prep_normalize(&r->prep, r->train, "--normalize");
    return rc ? rc : cli_prep_normalize(&r->prep, r->test, "--normalize");
}

/* The data flags, before any file is read. */
static int check_prep_flags(train_cfg *c, cli_option *opts, int n_opts) {
    static const char *const flags[] = {"--channels", "--image-size", "--normalize", "--augment"};
    for (int i = 0; c->resume && i < 4; i++)
        if (cli_opt(opts, n_opts, flags[i])->given)
            return cli_usage(
                "%s: a resumed run keeps its checkpoint's data settings (brick.in_shape, "
                "brick.normalize, brick.augment)",
                flags[i]);
    if (c->channels == 2) return cli_usage("--channels 2: 1 (grey) or 3 (RGB)");
    c->height = c->width = c->image_size;
    cli_prep scratch = {0};
    if (c->normalize && strcmp(c->normalize, "auto") && cli_prep_parse_normalize(c->normalize, &scratch) != 0)
        return cli_usage(
            "--normalize %s: auto or MEANS/STDS, as many of each, stds > 0 (0.5,0.5,0.5/0.2,0.2,0.2)",
            c->normalize);
    if (c->augment && cli_prep_parse_augment(c->augment, &scratch) != 0)
        return cli_usage("--augment %s: none or a list of crop, crop=P (P in 1..1024) and flip", c->augment);
    return CLI_OK;
}

/* What a regression run does not do: early stopping on an accuracy. */
static int check_regression(const run *r) {
    if (!r->tab.regression) return CLI_OK;
    if (!strcmp(r->c.early_stop_on, "acc")) return cli_usage("--early-stop-on acc: not for regression");
    return CLI_OK;
}

/* Data, model, optimizer and loader for a fresh or resumed run. */
static int setup(run *r, const bk_safetensors *resume) {
    if (r->c.threads) cli_set_threads((int)r->c.threads);
    int rc;
    const char *format = cli_data_format(r->c.data);
    if (format && !strcmp(format, "csv")) {
        r->tab.task = r->c.task;
        r->tab.target = r->c.target ? strdup(r->c.target) : NULL;
        if ((rc = cli_tabular_load(r->c.data, &r->tab, true, &r->train, &r->test))) return rc;
        if ((rc = check_regression(r))) return rc;
    } else {
        rc = cli_data_load(r->c.data, (int)r->c.channels, r->c.height, r->c.width, NULL, 0, &r->train,
                           &r->test);
        if (rc || (rc = setup_prep(r))) return rc;
    }
    int n_out = r->tab.regression ? 1 : r->train->n_classes; /* the model's outputs */
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
    if ((rc = check_data(r))) return rc;
    int64_t n_params = bk_model_num_params(r->c.model, r->train->ndim, r->train->shape, n_out, NULL, 0);
    if (n_params < 0) return cli_fail(NULL);
    if ((rc = check_room(r, n_params))) return rc;
    char data_safe[512]; /* (a resumed run's --data comes from its checkpoint) */
    bk_escape(r->c.data, data_safe, sizeof data_safe);
    if (r->tab.regression)
        printf("data: %s (%s): %" PRId64 " training and %" PRId64 " test rows of %" PRId64
               " features, regression (target mean %g, std %g)\n",
               data_safe, r->data_why, r->train->n, r->test->n, r->train->sample_numel,
               (double)r->tab.target_mean, (double)r->tab.target_std);
    else
        printf("data: %s (%s): %" PRId64 " training and %" PRId64 " test %s %s, %d classes\n", data_safe,
               r->data_why, r->train->n, r->test->n, r->tab.on ? "rows of shape" : "images", shape,
               r->train->n_classes);

    bk_manual_seed((uint64_t)r->c.seed);
    r->m = bk_model_build(r->c.model, r->train->ndim, r->train->shape, n_out, r->arch, sizeof r->arch);
    if (!r->m) return cli_fail(NULL);
    r->o = train_make_optim(&r->c, r->m);
    r->loader = r->o ? bk_loader_new(r->train, r->c.batch, true, splitmix64((uint64_t)r->c.seed), false)
                     : NULL;
    if (!r->loader) return cli_fail(NULL);
    if (r->prep.crop_padding || r->prep.hflip) {
        /* the padding black in the images' own values, as RandomCrop before Normalize */
        float fill[CLI_NORM_MAX] = {0};
        for (int64_t ch = 0; ch < r->train->shape[0] && ch < CLI_NORM_MAX && r->prep.n_norm; ch++) {
            int s = r->prep.n_norm == 1 ? 0 : (int)ch;
            fill[ch] = -r->prep.mean[s] / r->prep.std[s];
        }
        if (r->train->shape[0] > CLI_NORM_MAX)
            return cli_usage("--augment: %" PRId64 " channels, more than %d", r->train->shape[0],
                             CLI_NORM_MAX);
        if (bk_loader_set_augment(r->loader, r->prep.crop_padding, r->prep.hflip, fill) != 0)
            return cli_fail("--augment: %s", bk_last_error());
    }
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
    char mom[48] = "", wd[48] = "", sched[128] = "";
    if (r->c.momentum > 0) snprintf(mom, sizeof mom, ", momentum %g", r->c.momentum);
    if (r->c.weight_decay > 0) snprintf(wd, sizeof wd, ", weight decay %g", r->c.weight_decay);
    if (r->c.schedule == SCHEDULE_COSINE)
        snprintf(sched, sizeof sched, ", cosine schedule to %g over %" PRId64 " epochs", r->c.lr_min,
                 r->c.lr_t_max);
    else if (r->c.schedule == SCHEDULE_STEP)
        snprintf(sched, sizeof sched, ", step schedule x %g every %" PRId64 " epochs", r->c.lr_gamma,
                 r->c.lr_step_size);
    else if (r->c.schedule == SCHEDULE_ONECYCLE)
        snprintf(sched, sizeof sched, ", one-cycle schedule over %" PRId64 " epochs", r->c.lr_t_max);
    else if (r->c.schedule == SCHEDULE_PLATEAU)
        snprintf(sched, sizeof sched, ", plateau schedule x %g after %" PRId64 " epochs without progress",
                 r->c.lr_gamma, r->c.lr_patience);
    printf("model: %s (%" PRId64 " parameters), %s lr %g%s%s%s, batch %" PRId64 ", seed %" PRId64 "\n",
           r->arch, bk_module_num_params(r->m, false), bk_optim_name(r->o), r->c.lr, mom, wd, sched,
           r->c.batch, r->c.seed);
    if (resume && r->resume_mid)
        printf("resuming %s in epoch %d of %" PRId64 ", after batch %" PRId64 " of %" PRId64 "\n",
               r->c.resume, r->done_epochs + 1, r->c.epochs, r->pos.batch, bk_loader_num_batches(r->loader));
    else if (resume)
        printf("resuming %s after epoch %d of %" PRId64 "\n", r->c.resume, r->done_epochs, r->c.epochs);
    if (r->c.schedule == SCHEDULE_COSINE && r->c.epochs > r->c.lr_t_max)
        printf("note: the cosine schedule anneals over the %" PRId64
               " epochs the run started "
               "with; past them its lr rises again, as torch's CosineAnnealingLR does\n",
               r->c.lr_t_max);
    if (r->c.detect_anomaly) printf("anomaly detection on: every op's output and gradient is checked\n");
    fflush(stdout);
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
            return rank == 0 ? cli_usage("--accumulate %" PRId64
                                         " with %d ranks: give one or "
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
        printf("note: %s was trained with %" PRId64
               " slots per batch (ranks x --accumulate); "
               "this run uses %" PRId64 ": the batch stays %" PRId64
               ", the steps from here "
               "are those of --accumulate %" PRId64 "\n",
               c->resume, r->ckpt_slots, world * c->accumulate, c->batch, world * c->accumulate);
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

/* The model's recipe (cli_recipe_for) for what the flags leave open. The optimizer's
 * settings come with the recipe's optimizer: another --optimizer keeps the plain defaults. */
static void apply_recipe(train_cfg *c, cli_option *opts, int n_opts) {
    const cli_recipe *rc = cli_recipe_for(c->model);
    if (!rc) return;
#define GIVEN(flag) (cli_opt(opts, n_opts, flag)->given)
    if (!GIVEN("--optimizer") || !strcmp(c->optimizer, rc->optimizer)) {
        c->optimizer = rc->optimizer;
        if (!GIVEN("--lr")) c->lr = (float)rc->lr; /* float32 settings, as CLI_F32 gives */
        if (!GIVEN("--momentum")) c->momentum = (float)rc->momentum;
        if (!GIVEN("--weight-decay")) c->weight_decay = (float)rc->weight_decay;
    }
    if (!GIVEN("--batch-size")) c->batch = rc->batch;
    if (!GIVEN("--lr-schedule")) c->lr_schedule = rc->schedule;
#undef GIVEN
}

int cmd_train(int argc, char **argv) {
    run r;
    memset(&r, 0, sizeof r);
    train_cfg *c = &r.c;
    *c = (train_cfg){.model = "mlp",
                     .optimizer = "sgd",
                     .lr_schedule = "none",
                     .epochs = 10,
                     .batch = 256,
                     .lr = 0.1f,
                     .lr_gamma = 0.1f,
                     .lr_patience = 10,
                     .max_loss = -1,
                     .early_stop_on = "loss",
                     .accumulate = 1,
                     .reduce = "deterministic"};
    cli_option opts[] = {
        {"--model", CLI_STR, &c->model, 0, 0, false, NULL},
        {"--data", CLI_STR, &c->data, 0, 0, false, NULL},
        {"--epochs", CLI_INT, &c->epochs, 1, 1e6, false, NULL},
        {"--batch-size", CLI_INT, &c->batch, 1, 1e9, false, NULL},
        {"--lr", CLI_F32, &c->lr, 0, 1e300, false, NULL},
        {"--optimizer", CLI_STR, &c->optimizer, 0, 0, false, OPTIMIZER_NAMES},
        {"--momentum", CLI_F32, &c->momentum, 0, 1e300, false, NULL},
        {"--weight-decay", CLI_F32, &c->weight_decay, 0, 1e300, false, NULL},
        {"--lr-schedule", CLI_STR, &c->lr_schedule, 0, 0, false, SCHEDULE_NAMES},
        {"--lr-min", CLI_F32, &c->lr_min, 0, 1e300, false, NULL},
        {"--lr-step-size", CLI_INT, &c->lr_step_size, 1, 1e6, false, NULL},
        {"--lr-gamma", CLI_F32, &c->lr_gamma, 0, 1e300, false, NULL},
        {"--lr-patience", CLI_INT, &c->lr_patience, 0, 1e6, false, NULL},
        {"--seed", CLI_INT, &c->seed, 0, 9.2e18, false, NULL},
        {"--out", CLI_STR, &c->out, 0, 0, false, NULL},
        {"--force", CLI_FLAG, &c->force, 0, 0, false, NULL},
        {"--keep-best", CLI_FLAG, &c->keep_best, 0, 0, false, NULL},
        {"--resume", CLI_STR, &c->resume, 0, 0, false, NULL},
        CLI_OPT_THREADS(&c->threads),
        {"--max-loss", CLI_FLOAT, &c->max_loss, 0, 1e300, false, NULL},
        {"--early-stop", CLI_INT, &c->early_stop, 0, 1e6, false, NULL},
        {"--early-stop-on", CLI_STR, &c->early_stop_on, 0, 0, false, EARLY_STOP_NAMES},
        {"--detect-anomaly", CLI_FLAG, &c->detect_anomaly, 0, 0, false, NULL},
        {"--accumulate", CLI_INT, &c->accumulate, 1, 1e6, false, NULL},
        {"--dist", CLI_FLAG, &c->dist, 0, 0, false, NULL},
        {"--reduce", CLI_STR, &c->reduce, 0, 0, false, REDUCE_NAMES},
        {"--channels", CLI_INT, &c->channels, 1, 3, false, NULL},
        {"--image-size", CLI_INT, &c->image_size, 1, 4096, false, NULL},
        {"--normalize", CLI_STR, &c->normalize, 0, 0, false, NULL},
        {"--augment", CLI_STR, &c->augment, 0, 0, false, NULL},
        {"--target", CLI_STR, &c->target, 0, 0, false, NULL},
        {"--task", CLI_STR, &c->task, 0, 0, false, CLI_TASK_NAMES},
    };
    const int n_opts = CLI_COUNT(opts);
    const char *pos[1];
    int n_pos;
    int rc = cli_parse(argc, argv, opts, n_opts, pos, 0, &n_pos, help);
    if (rc) return rc < 0 ? CLI_OK : rc;
    if (!strcmp(c->model, "help")) return cli_parse_only ? CLI_OK : cli_models_print(NULL); /* brick models */

    if (!c->resume) apply_recipe(c, opts, n_opts);
    /* Checks that need no file. */
    if (strcmp(c->optimizer, "sgd") && strcmp(c->optimizer, "rmsprop") &&
        cli_opt(opts, n_opts, "--momentum")->given)
        return cli_usage("--momentum is for --optimizer sgd or rmsprop only");
    if (!strcmp(c->optimizer, "adamw") && !cli_opt(opts, n_opts, "--weight-decay")->given)
        c->weight_decay = 0.01f; /* a float32 setting (CLI_F32) */
    if (cli_opt(opts, n_opts, "--early-stop-on")->given && !c->early_stop)
        return cli_usage("--early-stop-on needs --early-stop N");
    if ((rc = check_prep_flags(c, opts, n_opts))) return rc;
    if (c->dist && !bk_dist_mpi_built())
        return cli_usage(
            "--dist: this brick was built without MPI (build it with make MPI=1, "
            "which needs Open MPI: scripts/deps.sh)");
    train_schedule_parse(c->lr_schedule, &c->schedule); /* (one of SCHEDULE_NAMES: cli_parse checked) */
    if (!c->resume) { /* (a resumed run checks them against its checkpoint) */
        bool step_size = cli_opt(opts, n_opts, "--lr-step-size")->given;
        if (c->schedule == SCHEDULE_STEP && !step_size)
            return cli_usage("--lr-schedule step needs --lr-step-size N (decay every N epochs)");
        if (c->schedule != SCHEDULE_STEP && step_size)
            return cli_usage("--lr-step-size is for --lr-schedule step");
        if (c->schedule != SCHEDULE_STEP && c->schedule != SCHEDULE_PLATEAU &&
            cli_opt(opts, n_opts, "--lr-gamma")->given)
            return cli_usage("--lr-gamma is for --lr-schedule step or plateau");
        if (c->schedule != SCHEDULE_PLATEAU && cli_opt(opts, n_opts, "--lr-patience")->given)
            return cli_usage("--lr-patience is for --lr-schedule plateau");
        if (c->schedule == SCHEDULE_PLATEAU && !(c->lr_gamma < 1))
            return cli_usage("--lr-schedule plateau needs --lr-gamma below 1, got %g", c->lr_gamma);
        if (c->schedule == SCHEDULE_PLATEAU && train_plateau_init(c) != 0)
            return cli_usage("%s", bk_last_error());
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
    if (c->out && (rc = cli_need_out(c->out))) return rc;

    /* Resuming: the checkpoint's settings. */
    bk_safetensors *resume = NULL;
    r.data_why = "from --data";
    if (c->resume) {
        if ((rc = cli_need_file("--resume", c->resume))) return rc;
        resume = bk_safetensors_load(c->resume);
        rc = resume ? train_resume_settings(&r, resume, opts, n_opts) : cli_fail(NULL);
        if (!rc && !c->out && !(rc = cli_resume_out(c->resume, &r.owned_out))) c->out = r.owned_out;
        if (rc) goto done;
    } else {
        r.hist = calloc((size_t)c->epochs, sizeof *r.hist);
        if (!r.hist) return cli_fail("out of memory");
    }
    if (!c->out) c->out = "model.safetensors";

    char data_buf[PATH_MAX];
    if (!c->data) c->data = cli_default_data(data_buf, sizeof data_buf, &r.data_why);
    rc = cli_need_data(c->data, cli_opt(opts, n_opts, "--data")->given ? NULL : r.data_why, true);
    if (rc) goto done;
    {
        /* the flags of one format, refused for the others */
        const char *format = cli_data_format(c->data);
        bool table = format && !strcmp(format, "csv");
        if (!table && (c->target || c->task)) {
            rc = cli_usage("--%s is for a CSV table (--data %s holds %s)", c->target ? "target" : "task",
                           c->data, format);
            goto done;
        }
        if (table && (c->normalize || c->augment)) {
            rc = cli_usage("--%s is for images (--data %s holds a CSV table, standardised on its own)",
                           c->normalize ? "normalize" : "augment", c->data);
            goto done;
        }
    }
    r.ckpt_path = cli_sibling(c->out, ".ckpt.safetensors");
    r.csv_path = cli_sibling(c->out, ".csv");
    r.svg_path = cli_sibling(c->out, ".svg");
    r.best_path = cli_sibling(c->out, ".best.safetensors");
    if (!r.ckpt_path || !r.csv_path || !r.svg_path || !r.best_path) {
        rc = cli_fail("out of memory");
        goto done;
    }
    {
        const char *outs[3] = {c->out, r.csv_path, r.svg_path};
        static const char *const what[3] = {"the model file", "the log", "the plot"};
        if ((rc = cli_outputs_check(c->resume, c->force, r.ckpt_path, 3, outs, what))) goto done;
    }
    rc = dist_begin(&r, opts, n_opts);
    if (!rc) rc = setup(&r, resume);
    if (!rc) { /* (regression: 0, only a NaN or infinite loss stops the run) */
        if (c->max_loss < 0) c->max_loss = r.tab.regression ? 0 : 1000.0 * log((double)r.train->n_classes);
        rc = train_run(&r);
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
    free(r.best_path);
    cli_tabular_free(&r.tab);
    return dist_end(&r, rc);
}
