/* test_faults.c - out of memory and out of disk on the paths that must not lose data.
 *
 * Allocation failure: every allocation brick makes goes through src/core/alloc.c, whose
 * test hook bk__alloc_fail_after(k) makes allocation number k fail. Each sweep below runs
 * one operation with k = 0, 1, 2, ... until a run no longer reaches allocation k (so every
 * allocation it makes has failed once) and checks after each run:
 *   - a failed run returns an error whose message says "out of memory" (and names the file
 *     for the I/O paths); a run that absorbed the failure gives exactly the clean result;
 *   - nothing leaks: the blocks alive (bk__alloc_live) are as many as before the run, and
 *     ASan's leak checker agrees under SAN=1;
 *   - nothing changed: bk_checkpoint_load leaves the model and optimizer bytes as they
 *     were, bk_checkpoint_save leaves the previous file byte for byte and no temporary
 *     file, and a training step (batch, forward, cross-entropy, backward, SGD step) leaves
 *     the parameters and the optimizer state as they were; it fails before the optimizer
 *     runs, because bk_optim_step allocates nothing.
 * Operations: checkpoint load and save (MLP + Adam), bk_safetensors_load, bk_image_load, bk_idx_load
 * (plain and gzip), bk_cifar10_load, bk_image_folder_load, an augmented loader's batch, a cold training step (fresh arena, no gradients yet), building a
 * model and an optimizer. Sweep sizes are printed ("N failure points").
 *
 * Disk errors, saving a checkpoint over a previous one: a full file system (a 64 KiB
 * tmpfs, mounted in a private mount namespace of a child process when that is allowed:
 * root, or a user namespace), a file size limit (RLIMIT_FSIZE, always), a read-only
 * directory (a read-only tmpfs, or chmod 0555 when not root), a missing directory. Each
 * fails with a message that names the path and the system's reason, leaves the previous
 * checkpoint loadable and byte-identical, and leaves no temporary file.
 * Files go to a mkdtemp directory under /tmp, removed at the end.
 */
#define _GNU_SOURCE /* mkdtemp, unshare, CLONE_NEWNS, mount */

#include "test.h"
#include "files.h"
#include "internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

/* ---- models and their bytes ------------------------------------------------------------ */

/* ---- the sweep ------------------------------------------------------------------------- */

typedef struct sweep_ops {
    const char *name;
    void (*setup)(void *ctx);         /* before each run, unarmed */
    int (*run)(void *ctx);            /* the operation, armed: 0 or -1 */
    void (*check)(void *ctx, int rc); /* after each run, unarmed */
    void (*teardown)(void *ctx);      /* after check, unarmed */
    const char *must_name;            /* a failure's message names this */
} sweep_ops;

typedef struct sweep_count {
    long points, failed, absorbed;
} sweep_count;

static long sweep_total; /* failure points over all sweeps */

/* Runs ops with allocation k failing, for k = 0, 1, ... (see the top of the file). */
static sweep_count sweep(const sweep_ops *ops, void *ctx) {
    sweep_count c = {0, 0, 0};
    bk_arena_current(); /* the thread's default arena exists before counting live blocks */
    for (long k = 0;; k++) {
        long live = bk__alloc_live();
        if (ops->setup) ops->setup(ctx);
        long faults = bk__alloc_failures();
        bk_clear_error();
        bk__alloc_fail_after(k);
        int rc = ops->run(ctx);
        bk__alloc_fail_after(-1);
        bool injected = bk__alloc_failures() > faults;
        char err[2048];
        snprintf(err, sizeof err, "%s", bk_last_error());
        if (!injected && rc != 0)
            fprintf(stderr, "  FAIL %s: fails without an injected fault: %s\n", ops->name, err),
                test_failed_checks_++;
        if (injected && rc != 0) {
            c.failed++;
            if (!strstr(err, "out of memory") || (ops->must_name && !strstr(err, ops->must_name))) {
                fprintf(stderr, "  FAIL %s, allocation %ld fails: unclear message \"%s\"\n", ops->name, k,
                        err);
                test_failed_checks_++;
            }
        } else if (injected) {
            c.absorbed++;
        }
        int before = test_failed_checks_;
        if (ops->check) ops->check(ctx, rc);
        if (test_failed_checks_ != before)
            fprintf(stderr, "       (%s with allocation %ld failing: %s)\n", ops->name, k, err);
        if (ops->teardown) ops->teardown(ctx);
        bk_clear_error();
        if (bk__alloc_live() != live) {
            fprintf(stderr, "  FAIL %s, allocation %ld fails: %ld block(s) leaked\n", ops->name, k,
                    bk__alloc_live() - live);
            test_failed_checks_++;
        }
        if (!injected) {
            c.points = k;
            break;
        }
        if (k > 1000000) {
            fprintf(stderr, "  FAIL %s: no end to its allocations\n", ops->name);
            test_failed_checks_++;
            break;
        }
    }
    sweep_total += c.points;
    printf("    %-22s %4ld failure points: %ld failed cleanly, %ld absorbed with the clean result\n",
           ops->name, c.points, c.failed, c.absorbed);
    return c;
}

/* ---- checkpoints ----------------------------------------------------------------------- */

typedef struct ckpt_ctx {
    const char *path;
    bk_module *m;
    bk_optim *o;
    float *before, *file_state; /* the model's bytes before, the file's */
    int64_t n;
    unsigned char *file_bytes; /* save: the previous file */
    size_t file_len;
} ckpt_ctx;

static void load_setup(void *p) {
    ckpt_ctx *c = p;
    c->m = small_mlp(1);
    c->o = bk_optim_adam(c->m, BK_ADAM_DEFAULTS(0.01));
    fill_pattern(c->m, c->o, 1.0f, 0.001f);
}
static int load_run(void *p) {
    ckpt_ctx *c = p;
    return bk_checkpoint_load(c->path, c->m, c->o);
}
static void load_check(void *p, int rc) {
    ckpt_ctx *c = p;
    CHECK(same_as(c->m, c->o, rc == 0 ? c->file_state : c->before, c->n));
}
static void model_teardown(void *p) {
    ckpt_ctx *c = p;
    bk_optim_free(c->o);
    bk_module_free(c->m);
    c->o = NULL;
    c->m = NULL;
}

TEST(checkpoint_load_out_of_memory) {
    ckpt_ctx c = {.path = tpath("load.ckpt.safetensors")};
    bk_module *m = small_mlp(2);
    bk_optim *o = bk_optim_adam(m, BK_ADAM_DEFAULTS(0.01));
    fill_pattern(m, o, 2.0f, 0.001f);
    static const char *const keys[] = {"brick.arch"}, *const values[] = {"mlp"};
    CHECK(bk_checkpoint_save(c.path, m, o, 1, keys, values) == 0);
    c.file_state = snapshot(m, o, &c.n);
    fill_pattern(m, o, 1.0f, 0.001f);
    c.before = snapshot(m, o, &c.n);
    bk_optim_free(o);
    bk_module_free(m);
    sweep_ops ops = {"checkpoint_load", load_setup, load_run, load_check, model_teardown, c.path};
    sweep_count n = sweep(&ops, &c);
    CHECK(n.points > 10 && n.failed > 0);
    free(c.before);
    free(c.file_state);
}

static void save_setup(void *p) {
    ckpt_ctx *c = p;
    CHECK(write_file(c->path, c->file_bytes, c->file_len)); /* the previous checkpoint */
}
static int save_run(void *p) {
    ckpt_ctx *c = p;
    static const char *const keys[] = {"brick.arch", "note"}, *const values[] = {"mlp", "new"};
    return bk_checkpoint_save(c->path, c->m, c->o, 2, keys, values);
}
static void save_check(void *p, int rc) {
    ckpt_ctx *c = p;
    CHECK(count_temp_files(tmpdir) == 0);
    if (rc != 0) {
        CHECK(file_is(c->path, c->file_bytes, c->file_len));
        return;
    }
    bk_module *m = small_mlp(5);
    bk_optim *o = bk_optim_adam(m, BK_ADAM_DEFAULTS(0.01));
    CHECK(bk_checkpoint_load(c->path, m, o) == 0);
    CHECK(same_as(m, o, c->file_state, c->n)); /* here: the new state */
    bk_optim_free(o);
    bk_module_free(m);
}

TEST(checkpoint_save_out_of_memory) {
    ckpt_ctx c = {.path = tpath("save.ckpt.safetensors")};
    c.m = small_mlp(3);
    c.o = bk_optim_adam(c.m, BK_ADAM_DEFAULTS(0.01));
    fill_pattern(c.m, c.o, 3.0f, 0.001f); /* the previous checkpoint */
    CHECK(bk_checkpoint_save(c.path, c.m, c.o, 0, NULL, NULL) == 0);
    c.file_bytes = read_file(c.path, &c.file_len);
    CHECK(c.file_bytes && c.file_len > 100);
    fill_pattern(c.m, c.o, 4.0f, 0.001f); /* the state to save */
    c.file_state = snapshot(c.m, c.o, &c.n);
    sweep_ops ops = {"checkpoint_save", save_setup, save_run, save_check, NULL, c.path};
    sweep_count n = sweep(&ops, &c);
    CHECK(n.points > 5 && n.failed > 0);
    bk_optim_free(c.o);
    bk_module_free(c.m);
    free(c.file_bytes);
    free(c.file_state);
}

/* ---- the readers ----------------------------------------------------------------------- */

typedef struct reader_ctx {
    const char *path, *labels;
    bk_safetensors *st;
    bk_dataset *ds;
    bk_tensor *img;
} reader_ctx;

static int st_run(void *p) {
    reader_ctx *c = p;
    c->st = bk_safetensors_load(c->path);
    return c->st ? 0 : -1;
}
static void st_check(void *p, int rc) {
    reader_ctx *c = p;
    if (rc != 0) return;
    CHECK(bk_safetensors_count(c->st) == 3);
    const char *meta = bk_safetensors_meta(c->st, "k2");
    CHECK(meta && !strcmp(meta, "value two"));
    bk_tensor *b = bk_safetensors_get(c->st, "b");
    CHECK(b && b->numel == 6 && b->data[5] == 5.5f);
    bk_safetensors_free(c->st);
    c->st = NULL;
}

TEST(safetensors_load_out_of_memory) {
    reader_ctx c = {.path = tpath("three.safetensors")};
    bk_tensor *a = bk_tensor_new(BK_SHAPE(4)), *b = bk_tensor_new(BK_SHAPE(2, 3)),
              *s = bk_tensor_new(0, NULL);
    for (int i = 0; i < 6; i++) b->data[i] = (float)i + 0.5f;
    const char *names[] = {"a", "b", "scalar"};
    const bk_tensor *ts[] = {a, b, s};
    const char *keys[] = {"k1", "k2"}, *values[] = {"one", "value two"};
    CHECK(bk_safetensors_save(c.path, 3, names, ts, 2, keys, values) == 0);
    bk_tensor_free(a);
    bk_tensor_free(b);
    bk_tensor_free(s);
    sweep_ops ops = {"safetensors_load", NULL, st_run, st_check, NULL, c.path};
    sweep_count n = sweep(&ops, &c);
    CHECK(n.points > 5 && n.failed > 0);
}

static int image_run(void *p) {
    reader_ctx *c = p;
    c->img = bk_image_load(c->path, 3, 3, 5, NULL); /* grey 4x6 -> RGB 3x5: every step */
    return c->img ? 0 : -1;
}
static void image_check(void *p, int rc) {
    reader_ctx *c = p;
    if (rc != 0) return;
    CHECK(c->img->numel == 45 && c->img->data[0] == c->img->data[15]);
    bk_tensor_free(c->img);
    c->img = NULL;
}

TEST(image_load_out_of_memory) {
    reader_ctx c = {.path = tpath("small.pgm")};
    CHECK(write_file(c.path,
                     "P5 6 4 255\n"
                     "abcdefghijklmnopqrstuvwx",
                     35));
    sweep_ops ops = {"image_load", NULL, image_run, image_check, NULL, c.path};
    sweep_count n = sweep(&ops, &c);
    CHECK(n.points >= 4 && n.failed > 0);
}

/* An IDX file: 0 0 8 ndim, big-endian dims, then the bytes. */
static size_t make_idx(unsigned char *buf, int ndim, const uint32_t *dims, size_t n_data) {
    size_t k = 0;
    buf[k++] = 0, buf[k++] = 0, buf[k++] = 0x08, buf[k++] = (unsigned char)ndim;
    for (int i = 0; i < ndim; i++)
        for (int s = 24; s >= 0; s -= 8) buf[k++] = (unsigned char)(dims[i] >> s);
    for (size_t i = 0; i < n_data; i++) buf[k++] = (unsigned char)(i * 7 % 10);
    return k;
}

static bool write_gz(const char *path, const void *p, size_t n) {
    gzFile g = gzopen(path, "wb");
    if (!g) return false;
    bool ok = gzwrite(g, p, (unsigned)n) == (int)n;
    return gzclose(g) == Z_OK && ok;
}

static int idx_run(void *p) {
    reader_ctx *c = p;
    c->ds = bk_idx_load(c->path, c->labels, 10);
    return c->ds ? 0 : -1;
}
static void idx_check(void *p, int rc) {
    reader_ctx *c = p;
    if (rc != 0) return;
    CHECK(c->ds->n == 3 && c->ds->shape[1] == 4 && c->ds->shape[2] == 5);
    CHECK(c->ds->x[1] == 7.0f / 255.0f && c->ds->y[2] == 4);
    bk_dataset_free(c->ds);
    c->ds = NULL;
}

TEST(idx_load_out_of_memory) {
    unsigned char buf[256];
    uint32_t img[3] = {3, 4, 5}, lab[1] = {3};
    size_t n = make_idx(buf, 3, img, 60);
    CHECK(write_file(tpath("images"), buf, n) && write_gz(tpath("images.gz"), buf, n));
    n = make_idx(buf, 1, lab, 3);
    CHECK(write_file(tpath("labels"), buf, n) && write_gz(tpath("labels.gz"), buf, n));
    reader_ctx plain = {.path = tpath("images"), .labels = tpath("labels")};
    sweep_ops ops = {"idx_load (plain)", NULL, idx_run, idx_check, NULL, "idx"};
    sweep_count k = sweep(&ops, &plain);
    CHECK(k.points >= 4 && k.failed > 0);
    reader_ctx gz = {.path = tpath("images.gz"), .labels = tpath("labels.gz")};
    ops.name = "idx_load (gzip)";
    k = sweep(&ops, &gz);
    CHECK(k.points >= 4 && k.failed > 0);
}

/* CIFAR-10's test split (two records and a names file) and an image folder (two classes,
 * a PGM each, read as RGB at another size): every allocation of the readers, and of an
 * augmented loader's first batch. */
static int cifar_run(void *p) {
    reader_ctx *c = p;
    c->ds = bk_cifar10_load(c->path, false);
    return c->ds ? 0 : -1;
}
static int folder_run(void *p) {
    reader_ctx *c = p;
    c->ds = bk_image_folder_load(c->path, NULL, 0, 3, 3, 5);
    return c->ds ? 0 : -1;
}
static void data_check(void *p, int rc) {
    reader_ctx *c = p;
    if (rc != 0) return;
    CHECK(c->ds->n == 2 && c->ds->shape[0] == 3 && c->ds->class_names && c->ds->class_names[1]);
    bk_dataset_free(c->ds);
    c->ds = NULL;
}
/* the batch in an arena of its own, set up and freed unarmed (an arena keeps its chunks) */
static bk_arena *augment_arena, *augment_prev;
static void augment_setup(void *p) {
    (void)p;
    augment_arena = bk_arena_new();
    augment_prev = bk_arena_use(augment_arena);
}
static void augment_teardown(void *p) {
    (void)p;
    bk_arena_use(augment_prev);
    bk_arena_free(augment_arena);
}
static int augment_run(void *p) {
    reader_ctx *c = p;
    bk_loader *l = bk_loader_new(c->ds, 2, true, 3, false);
    bk_tensor *x = NULL;
    int rc = l && bk_loader_set_augment(l, 2, true, NULL) == 0 && bk_loader_next(l, &x, NULL, NULL) == 2 ? 0
                                                                                                         : -1;
    bk_loader_free(l);
    return rc;
}

TEST(image_data_out_of_memory) {
    unsigned char rec[2 * 3073];
    for (size_t i = 0; i < sizeof rec; i++) rec[i] = (unsigned char)(i % 3073 == 0 ? i / 3073 : i % 251);
    CHECK(mkdir(tpath("cifar"), 0700) == 0 && write_file(tpath("cifar/test_batch.bin"), rec, sizeof rec));
    CHECK(write_file(tpath("cifar/batches.meta.txt"), "a\nb\nc\nd\ne\nf\ng\nh\ni\nj\n", 20));
    reader_ctx c = {.path = tpath("cifar")};
    sweep_ops ops = {"cifar10_load", NULL, cifar_run, data_check, NULL, "cifar10: "};
    sweep_count n = sweep(&ops, &c);
    CHECK(n.points >= 4 && n.failed > 0);
    static const char pgm[] = "P5 4 2 255\nabcdefgh";
    CHECK(mkdir(tpath("folder"), 0700) == 0 && mkdir(tpath("folder/x"), 0700) == 0 &&
          mkdir(tpath("folder/y"), 0700) == 0);
    CHECK(write_file(tpath("folder/x/1.pgm"), pgm, sizeof pgm - 1) &&
          write_file(tpath("folder/y/2.pgm"), pgm, sizeof pgm - 1));
    c.path = tpath("folder");
    sweep_ops fops = {"image_folder_load", NULL, folder_run, data_check, NULL, "image_folder: "};
    n = sweep(&fops, &c);
    CHECK(n.points >= 8 && n.failed > 0);
    c.ds = bk_cifar10_load(tpath("cifar"), false);
    CHECK(c.ds != NULL);
    sweep_ops aops = {"augmented batch", augment_setup, augment_run, NULL, augment_teardown, NULL};
    n = sweep(&aops, &c);
    CHECK(n.points >= 3 && n.failed > 0);
    bk_dataset_free(c.ds);
}

/* ---- a training step --------------------------------------------------------------------- */

typedef struct step_ctx {
    bk_dataset *ds;
    bk_loader *loader;
    bk_module *m;
    bk_optim *o;
    bk_arena *arena, *prev;
    float *before, *after; /* parameters + optimizer state before and after a clean step */
    int64_t n;
} step_ctx;

static void step_setup(void *p) {
    step_ctx *c = p;
    c->m = small_mlp(7);
    bk_sgd_config cfg = BK_SGD_DEFAULTS(0.1);
    cfg.momentum = 0.9;
    c->o = bk_optim_sgd(c->m, cfg);
    bk_loader_start(c->loader);
    c->arena = bk_arena_new(); /* cold: the step's arena starts empty */
    c->prev = bk_arena_use(c->arena);
}

/* One step as `brick train` takes it. */
static int step_run(void *p) {
    step_ctx *c = p;
    bk_tensor *x;
    const int64_t *y;
    int64_t B = bk_loader_next(c->loader, &x, &y, NULL);
    if (B <= 0) return -1;
    bk_tensor *logits = bk_forward(c->m, x);                             /* (B, 3) */
    bk_tensor *loss = bk_cross_entropy(logits, y, B, BK_REDUCTION_MEAN); /* scalar */
    bk_optim_zero_grad(c->o);
    if (!loss || bk_backward(loss) != 0) return -1;
    return bk_optim_step(c->o);
}

static void step_check(void *p, int rc) {
    step_ctx *c = p;
    if (!c->after) return; /* the reference run */
    CHECK(same_as(c->m, c->o, rc == 0 ? c->after : c->before, c->n));
}

static void step_teardown(void *p) {
    step_ctx *c = p;
    bk_arena_use(c->prev);
    bk_arena_free(c->arena);
    bk_optim_free(c->o);
    bk_module_free(c->m);
}

TEST(training_step_out_of_memory) {
    step_ctx c = {0};
    float x[8 * 6];
    int64_t y[8];
    for (int i = 0; i < 48; i++) x[i] = (float)((i * 37) % 11) / 5.0f - 1.0f;
    for (int i = 0; i < 8; i++) y[i] = i % 3;
    c.ds = bk_dataset_from_arrays(8, BK_SHAPE(6), x, y, 3, NULL, 0);
    c.loader = bk_loader_new(c.ds, 8, false, 0, false);
    CHECK(c.ds && c.loader);
    if (!c.loader) return;
    /* the reference: the state before and after one clean step */
    step_setup(&c);
    c.before = snapshot(c.m, c.o, &c.n);
    CHECK(step_run(&c) == 0);
    c.after = snapshot(c.m, c.o, &c.n);
    CHECK(!same_as(c.m, c.o, c.before, c.n));
    step_teardown(&c);

    sweep_ops ops = {"training step (cold)", step_setup, step_run, step_check, step_teardown, NULL};
    sweep_count n = sweep(&ops, &c);
    CHECK(n.points > 5 && n.failed > 0);

    /* Warmed up (second step on the same arena, gradients allocated): how many allocations
     * are left that could fail? */
    step_setup(&c);
    CHECK(step_run(&c) == 0);
    bk_arena_reset(NULL);
    bk_loader_start(c.loader);
    unsigned long long calls = bk__alloc_calls();
    CHECK(step_run(&c) == 0);
    bk_arena_reset(NULL);
    printf("    a warmed-up step makes %llu heap allocation(s)\n", bk__alloc_calls() - calls);
    step_teardown(&c);

    free(c.before);
    free(c.after);
    bk_loader_free(c.loader);
    bk_dataset_free(c.ds);
}

/* ---- building a model and an optimizer ----------------------------------------------------- */

/* (builds into a ckpt_ctx's m and o; model_teardown frees them) */
static int build_run(void *p) {
    ckpt_ctx *c = p;
    c->m = bk_model_build("mlp:hidden=16", BK_SHAPE(1, 4, 4), 5, NULL, 0);
    c->o = c->m ? bk_optim_adam(c->m, BK_ADAM_DEFAULTS(0.01)) : NULL;
    return c->o ? 0 : -1;
}

TEST(model_and_optimizer_out_of_memory) {
    ckpt_ctx c = {0};
    sweep_ops ops = {"model + Adam", NULL, build_run, NULL, model_teardown, NULL};
    sweep_count n = sweep(&ops, &c);
    CHECK(n.points > 10 && n.failed > 0);
}

/* ---- disk errors --------------------------------------------------------------------------- */

/* Saves a small checkpoint to path (the previous one), then tries to save a big one, which
 * must fail with `reason`, leaving the small one byte for byte and no temporary file. */
static void save_over_fails(const char *dir, const char *path, const char *reason,
                            void (*before_big_save)(const char *dir)) {
    bk_module *small = small_mlp(11);
    CHECK(bk_checkpoint_save(path, small, NULL, 0, NULL, NULL) == 0);
    size_t len;
    unsigned char *old = read_file(path, &len);
    CHECK(old != NULL);
    if (before_big_save) before_big_save(dir);

    bk_manual_seed(12);
    bk_module *big = bk_nn_sequential(1, bk_nn_linear(256, 256)); /* 257 KiB */
    bk_optim *o = bk_optim_sgd(big, BK_SGD_DEFAULTS(0.1));
    bk_clear_error();
    CHECK(bk_checkpoint_save(path, big, o, 0, NULL, NULL) != 0);
    const char *e = bk_last_error();
    CHECK(strstr(e, path) != NULL);
    CHECK(strstr(e, reason) != NULL);
    if (getenv("BRICK_TEST_VERBOSE")) printf("    %s\n", e);
    CHECK(old && file_is(path, old, len));
    CHECK(count_temp_files(dir) == 0);
    bk_module *back = small_mlp(13);
    int64_t n;
    float *want = snapshot(small, NULL, &n);
    CHECK(bk_checkpoint_load(path, back, NULL) == 0 && same_as(back, NULL, want, n));
    free(want);
    free(old);
    bk_module_free(back);
    bk_optim_free(o);
    bk_module_free(big);
    bk_module_free(small);
}

/* Makes the child's mount namespace private (so that mounts vanish with it). True on
 * success: as root directly, otherwise through a user namespace mapping us to its root. */
static bool private_mounts(void) {
    if (unshare(CLONE_NEWNS) != 0) {
        uid_t uid = getuid();
        gid_t gid = getgid();
        if (unshare(CLONE_NEWUSER | CLONE_NEWNS) != 0) return false;
        char map[64];
        int fd = open("/proc/self/setgroups", O_WRONLY);
        if (fd >= 0) {
            if (write(fd, "deny", 4) != 4) { /* older kernels have no setgroups file */
            }
            close(fd);
        }
        snprintf(map, sizeof map, "0 %u 1", (unsigned)uid);
        fd = open("/proc/self/uid_map", O_WRONLY);
        if (fd < 0 || write(fd, map, strlen(map)) < 0) return false;
        close(fd);
        snprintf(map, sizeof map, "0 %u 1", (unsigned)gid);
        fd = open("/proc/self/gid_map", O_WRONLY);
        if (fd < 0 || write(fd, map, strlen(map)) < 0) return false;
        close(fd);
    }
    /* the file system type is ignored here, but valgrind checks it is a string */
    return mount("none", "/", "none", MS_REC | MS_PRIVATE, NULL) == 0;
}

#define SKIPPED 77

/* Runs fn(dir) in a child process that has a tmpfs ("size=...") mounted on dir in its own
 * mount namespace. Returns 0 (passed), 1 (failed; the child printed why) or SKIPPED. */
static int with_tmpfs(const char *dir, const char *opts, void (*fn)(const char *dir)) {
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) return SKIPPED;
    if (pid == 0) {
        if (!private_mounts() || mount("tmpfs", dir, "tmpfs", 0, opts) != 0) _exit(SKIPPED);
        int before = test_failed_checks_;
        fn(dir);
        fflush(stdout);
        _exit(test_failed_checks_ > before ? 1 : 0);
    }
    int status;
    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status)) return 1;
    return WEXITSTATUS(status);
}

static void full_disk_case(const char *dir) {
    char path[512];
    snprintf(path, sizeof path, "%s/model.ckpt.safetensors", dir);
    save_over_fails(dir, path, "No space left on device", NULL);
}

static void remount_read_only(const char *dir) {
    CHECK(mount("tmpfs", dir, "tmpfs", MS_REMOUNT | MS_RDONLY, NULL) == 0); /* source, type ignored */
}

static void read_only_case(const char *dir) {
    char path[512];
    snprintf(path, sizeof path, "%s/model.ckpt.safetensors", dir);
    save_over_fails(dir, path, "Read-only file system", remount_read_only);
}

TEST(save_to_full_disk) {
    const char *dir = tpath("tmpfs-full");
    CHECK(mkdir(dir, 0700) == 0);
    int r = with_tmpfs(dir, "size=64k", full_disk_case);
    if (r == SKIPPED)
        printf(
            "    note: cannot mount a tmpfs here (no mount namespace); the full "
            "disk is covered by RLIMIT_FSIZE only\n");
    else CHECK(r == 0);
}

static void lower_fsize(const char *dir) {
    (void)dir;
    struct rlimit rl = {16 << 10, 16 << 10};
    signal(SIGXFSZ, SIG_IGN);
    CHECK(setrlimit(RLIMIT_FSIZE, &rl) == 0);
}

TEST(save_past_file_size_limit) {
    /* in a child: the limit and the ignored SIGXFSZ must not outlive the test */
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        const char *dir = tpath("fsize");
        char path[512];
        CHECK(mkdir(dir, 0700) == 0);
        snprintf(path, sizeof path, "%s/model.ckpt.safetensors", dir);
        int before = test_failed_checks_;
        save_over_fails(dir, path, "File too large", lower_fsize);
        fflush(stdout);
        _exit(test_failed_checks_ > before ? 1 : 0);
    }
    int status;
    CHECK(pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

static void chmod_read_only(const char *dir) { CHECK(chmod(dir, 0555) == 0); }

TEST(save_into_read_only_directory) {
    const char *dir = tpath("read-only");
    CHECK(mkdir(dir, 0700) == 0);
    int r = with_tmpfs(dir, "size=1m", read_only_case);
    if (r != SKIPPED) {
        CHECK(r == 0);
        return;
    }
    if (geteuid() == 0) {
        printf(
            "    note: root ignores permissions and no read-only mount is possible here: "
            "skipped\n");
        return;
    }
    char path[512];
    snprintf(path, sizeof path, "%s/model.ckpt.safetensors", dir);
    save_over_fails(dir, path, "Permission denied", chmod_read_only);
    chmod(dir, 0700);
}

TEST(save_into_missing_directory) {
    const char *path = tpath("no/such/dir/model.ckpt.safetensors");
    bk_module *m = small_mlp(1);
    bk_clear_error();
    CHECK(bk_checkpoint_save(path, m, NULL, 0, NULL, NULL) != 0);
    CHECK(strstr(bk_last_error(), path) != NULL);
    CHECK(strstr(bk_last_error(), "No such file or directory") != NULL);
    if (getenv("BRICK_TEST_VERBOSE")) printf("    %s\n", bk_last_error());
    struct stat st;
    CHECK(stat(tpath("no"), &st) != 0); /* nothing was created */
    bk_module_free(m);
}

int main(void) {
    if (!files_init("faults", NULL)) return 1;
    printf("allocation failure sweeps (every allocation of each operation fails once):\n");
    RUN(checkpoint_load_out_of_memory);
    RUN(checkpoint_save_out_of_memory);
    RUN(safetensors_load_out_of_memory);
    RUN(idx_load_out_of_memory);
    RUN(image_load_out_of_memory);
    RUN(image_data_out_of_memory);
    RUN(training_step_out_of_memory);
    RUN(model_and_optimizer_out_of_memory);
    printf("    %ld failure points in all\n", sweep_total);
    printf("disk errors while saving a checkpoint over a previous one:\n");
    RUN(save_to_full_disk);
    RUN(save_past_file_size_limit);
    RUN(save_into_read_only_directory);
    RUN(save_into_missing_directory);
    files_cleanup();
    return test_summary("test_faults");
}
