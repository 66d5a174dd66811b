/* test_checkpoint.c - bk_checkpoint_save / bk_checkpoint_load.
 *
 *   - resuming is exact: train two steps (SGD with momentum and weight decay; Adam; RMSprop
 *     centered with momentum; Adagrad with lr_decay and an initial accumulator), save,
 *     load into a fresh model and optimizer, take one more step in both: the weights and
 *     the optimizer state are bitwise identical;
 *   - the file layout: state dict names, "optim.<state name>", the caller's metadata, and a
 *     model-only load (o NULL) of a full checkpoint;
 *   - a failed load changes nothing: missing file, truncated file, a file without the
 *     optimizer state, another optimizer's state, another architecture; each message names
 *     the file and the problem;
 *   - a failed save (no such directory) leaves no file behind.
 * Files go to a mkdtemp directory under /tmp, removed at the end.
 */
#define _XOPEN_SOURCE 700 /* mkdtemp */

#include "test.h"
#include "files.h"

#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

/* One training step on a fixed batch (N = 5, 6 features, 3 classes). */
static void train_step(bk_module *m, bk_optim *o) {
    static const int64_t y[5] = {0, 2, 1, 1, 0};
    float x[5 * 6];
    for (int i = 0; i < 30; i++) x[i] = (float)((i * 37) % 11) / 5.0f - 1.0f;
    bk_tensor *X = bk_from_data(BK_SHAPE(5, 6), x);
    bk_tensor *loss = bk_cross_entropy(bk_forward(m, X), y, 5, BK_REDUCTION_MEAN);
    bk_optim_zero_grad(o);
    CHECK(bk_backward(loss) == 0);
    CHECK(bk_optim_step(o) == 0);
    bk_arena_reset(NULL);
}

static bk_optim *make_optim(bk_module *m, int kind) {
    if (kind == 0) {
        bk_sgd_config c = BK_SGD_DEFAULTS(0.1f);
        c.momentum = 0.9f;
        c.weight_decay = 1e-3f;
        return bk_optim_sgd(m, c);
    }
    if (kind == 2) { /* every RMSprop slot in use: square_avg, momentum_buffer, grad_avg */
        bk_rmsprop_config c = BK_RMSPROP_DEFAULTS(0.01);
        c.momentum = 0.9;
        c.centered = true;
        return bk_optim_rmsprop(m, c);
    }
    if (kind == 3) { /* the step count drives lr_decay; sum starts away from 0 */
        bk_adagrad_config c = BK_ADAGRAD_DEFAULTS(0.1);
        c.lr_decay = 0.5;
        c.initial_accumulator_value = 0.1;
        return bk_optim_adagrad(m, c);
    }
    return bk_optim_adam(m, BK_ADAM_DEFAULTS(0.01f));
}

/* Train 2 steps, save, load into fresh copies, one more step in both: identical. */
static void check_resume(int kind) {
    static const char *const files[] = {"sgd.safetensors", "adam.safetensors", "rmsprop.safetensors",
                                        "adagrad.safetensors"};
    const char *path = tpath(files[kind]);
    bk_module *a = small_mlp(1);
    bk_optim *oa = make_optim(a, kind);
    train_step(a, oa);
    train_step(a, oa);
    static const char *const keys[] = {"brick.epoch", "note"}, *const values[] = {"2", "héllo"};
    CHECK(bk_checkpoint_save(path, a, oa, 2, keys, values) == 0);

    bk_module *b = small_mlp(99); /* different weights */
    bk_optim *ob = make_optim(b, kind);
    CHECK(!same_state(a, oa, b, ob));
    CHECK(bk_checkpoint_load(path, b, ob) == 0);
    CHECK(same_state(a, oa, b, ob));

    train_step(a, oa);
    train_step(b, ob);
    CHECK(same_state(a, oa, b, ob));

    bk_optim_free(oa);
    bk_optim_free(ob);
    bk_module_free(a);
    bk_module_free(b);
}

TEST(resume_sgd_momentum_is_exact) { check_resume(0); }
TEST(resume_adam_is_exact) { check_resume(1); }
TEST(resume_rmsprop_is_exact) { check_resume(2); }
TEST(resume_adagrad_is_exact) { check_resume(3); }

TEST(file_layout_and_model_only_load) {
    const char *path = tpath("layout.safetensors");
    bk_module *a = small_mlp(3);
    bk_optim *o = make_optim(a, 0);
    train_step(a, o);
    static const char *const keys[] = {"brick.arch"}, *const values[] = {"mlp:hidden=8"};
    CHECK(bk_checkpoint_save(path, a, o, 1, keys, values) == 0);

    bk_safetensors *st = bk_safetensors_load(path);
    CHECK(st != NULL);
    if (st) {
        /* 4 state tensors + 2 parameters x 2 layers x (step, momentum_buffer) */
        CHECK(bk_safetensors_count(st) == 4 + 8);
        CHECK(bk_safetensors_get(st, "0.weight") != NULL);
        CHECK(bk_safetensors_get(st, "2.bias") != NULL);
        CHECK(bk_safetensors_get(st, "optim.0.weight.momentum_buffer") != NULL);
        const bk_tensor *step = bk_safetensors_get(st, "optim.2.bias.step");
        CHECK(step && step->numel == 1 && step->data[0] == 1.0f);
        const char *arch = bk_safetensors_meta(st, "brick.arch");
        CHECK(arch && !strcmp(arch, "mlp:hidden=8"));
        bk_safetensors_free(st);
    }

    /* A model alone loads from a full checkpoint; the optimizer tensors are ignored. */
    bk_module *b = small_mlp(4);
    CHECK(bk_checkpoint_load(path, b, NULL) == 0);
    CHECK(same_state(a, NULL, b, NULL));

    /* Without an optimizer, the file is a plain state dict that bk_module_load takes. */
    const char *plain = tpath("plain.safetensors");
    CHECK(bk_checkpoint_save(plain, a, NULL, 0, NULL, NULL) == 0);
    bk_module *c = small_mlp(5);
    CHECK(bk_module_load(c, plain, true) == 0);
    CHECK(same_state(a, NULL, c, NULL));

    bk_optim_free(o);
    bk_module_free(a);
    bk_module_free(b);
    bk_module_free(c);
}

TEST(failed_load_changes_nothing) {
    bk_module *a = small_mlp(7);
    bk_optim *oa = make_optim(a, 0);
    train_step(a, oa);
    const char *full = tpath("full.safetensors"), *model_only = tpath("model.safetensors");
    const char *adam = tpath("adam-state.safetensors"), *trunc = tpath("trunc.safetensors");
    CHECK(bk_checkpoint_save(full, a, oa, 0, NULL, NULL) == 0);
    CHECK(bk_checkpoint_save(model_only, a, NULL, 0, NULL, NULL) == 0);
    bk_optim *adam_o = make_optim(a, 1);
    CHECK(bk_checkpoint_save(adam, a, adam_o, 0, NULL, NULL) == 0);
    bk_optim_free(adam_o);
    /* truncated: the first half of the full checkpoint */
    FILE *in = fopen(full, "rb"), *out = fopen(trunc, "wb");
    CHECK(in && out);
    if (in && out) {
        char buf[65536];
        size_t n = fread(buf, 1, sizeof buf, in);
        CHECK(fwrite(buf, 1, n / 2, out) == n / 2);
    }
    if (in) fclose(in);
    if (out) fclose(out);

    /* The target: another model and optimizer, which also took a step. */
    bk_module *b = small_mlp(8);
    bk_optim *ob = make_optim(b, 0);
    train_step(b, ob);
    int64_t n;
    float *snap = snapshot(b, ob, &n);

    CHECK_FAILS_INT(bk_checkpoint_load(tpath("absent.safetensors"), b, ob), "absent.safetensors");
    CHECK(same_as(b, ob, snap, n));
    CHECK_FAILS_INT(bk_checkpoint_load(trunc, b, ob), "trunc.safetensors");
    CHECK(same_as(b, ob, snap, n));
    /* the model part matches, but the optimizer state is missing: the model is untouched */
    CHECK_FAILS_INT(bk_checkpoint_load(model_only, b, ob), "missing: optim.0.weight.step");
    CHECK(same_as(b, ob, snap, n));
    /* Adam's state for an SGD optimizer */
    CHECK_FAILS_INT(bk_checkpoint_load(adam, b, ob), "unexpected: optim.0.weight.exp_avg");
    CHECK(same_as(b, ob, snap, n));

    /* another architecture: hidden 8 vs 9 */
    bk_manual_seed(1);
    bk_module *wide = bk_nn_sequential(3, bk_nn_linear(6, 9), bk_nn_relu(), bk_nn_linear(9, 3));
    bk_optim *ow = make_optim(wide, 0);
    int64_t nw;
    float *snap_w = snapshot(wide, ow, &nw);
    CHECK_FAILS_INT(bk_checkpoint_load(full, wide, ow), "shape mismatch: 0.weight (8, 6) in file vs (9, 6)");
    CHECK(same_as(wide, ow, snap_w, nw));
    /* and with an extra layer: unexpected and missing names */
    bk_module *deep = bk_nn_sequential(4, bk_nn_linear(6, 8), bk_nn_relu(), bk_nn_linear(8, 3),
                                       bk_nn_linear(3, 3));
    CHECK_FAILS_INT(bk_checkpoint_load(full, deep, NULL), "missing: 3.weight, 3.bias");

    /* the same file loads fine into a matching pair */
    CHECK(bk_checkpoint_load(full, b, ob) == 0);
    CHECK(!same_as(b, ob, snap, n));

    free(snap);
    free(snap_w);
    bk_optim_free(oa);
    bk_optim_free(ob);
    bk_optim_free(ow);
    bk_module_free(a);
    bk_module_free(b);
    bk_module_free(wide);
    bk_module_free(deep);
}

TEST(failed_save_leaves_no_file) {
    bk_module *a = small_mlp(1);
    const char *path = tpath("no-such-dir/ckpt.safetensors");
    CHECK_FAILS_INT(bk_checkpoint_save(path, a, NULL, 0, NULL, NULL), "no-such-dir");
    struct stat sb;
    CHECK(stat(path, &sb) != 0);
    CHECK_FAILS_INT(bk_checkpoint_save(NULL, a, NULL, 0, NULL, NULL), "path is NULL");
    CHECK_FAILS_INT(bk_checkpoint_save(tpath("x"), NULL, NULL, 0, NULL, NULL), "module is NULL");
    CHECK_FAILS_INT(bk_checkpoint_load(tpath("x"), NULL, NULL), "module is NULL");
    /* a failed save keeps the previous file */
    const char *keep = tpath("keep.safetensors");
    CHECK(bk_checkpoint_save(keep, a, NULL, 0, NULL, NULL) == 0);
    static const char *const bad_keys[] = {"k", "k"}, *const values[] = {"1", "2"};
    CHECK(bk_checkpoint_save(keep, a, NULL, 2, bad_keys, values) < 0); /* duplicate key */
    bk_module *b = small_mlp(2);
    CHECK(bk_checkpoint_load(keep, b, NULL) == 0);
    bk_module_free(a);
    bk_module_free(b);
}

/* The selection of bk_module_named is a type (was a bare int); old callers passing the
 * numbers still compile and get the same lists. */
TEST(named_kinds_are_an_enum) {
    bk_module *m = bk_nn_sequential(2, bk_nn_linear(2, 3), bk_nn_batch_norm1d(3));
    const bk_named_kind kinds[3] = {BK_PARAMS, BK_BUFFERS, BK_STATE};
    const int counts[3] = {4, 3, 7}; /* weight, bias, BN weight, bias; BN's 3 buffers */
    CHECK(BK_STATE == (BK_PARAMS | BK_BUFFERS));
    for (int k = 0; k < 3; k++) {
        bk_param_list *a = bk_module_named(m, kinds[k]), *b = bk_module_named(m, k + 1);
        CHECK(a && b && a->n == counts[k] && b->n == a->n);
        for (int i = 0; a && b && i < a->n && i < b->n; i++)
            CHECK(!strcmp(a->names[i], b->names[i]) && a->tensors[i] == b->tensors[i]);
        bk_param_list_free(a);
        bk_param_list_free(b);
    }
    bk_module_free(m);
}

int main(void) {
    if (!files_init("ckpt", NULL)) return 1;
    RUN(resume_sgd_momentum_is_exact);
    RUN(resume_adam_is_exact);
    RUN(resume_rmsprop_is_exact);
    RUN(resume_adagrad_is_exact);
    RUN(file_layout_and_model_only_load);
    RUN(failed_load_changes_nothing);
    RUN(failed_save_leaves_no_file);
    RUN(named_kinds_are_an_enum);
    files_cleanup();
    return test_summary("test_checkpoint");
}
