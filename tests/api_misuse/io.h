/* api_misuse/io.h - the API misuse sweep: safetensors files, optimizers, data sets and
 * loaders, distributed training, models and checkpoints.
 *
 * Part of tests/test_api_misuse.c, which includes it after its harness (MISUSE, ACCEPTS,
 * CANNOT_FAIL, EACH_BAD_TENSOR, ...): the sweep's completeness check must see the calls of
 * every part in one process. Not a header of its own.
 */

/* ---- files ------------------------------------------------------------------------------------------ */


TEST(safetensors_files) {
    bk_tensor *t = bk_ones(BK_SHAPE(2));
    const char *names[2] = {"a", "b"}, *dup[2] = {"a", "a"}, *reserved[1] = {"__metadata__"};
    const bk_tensor *ts[2] = {t, t}, *with_null[2] = {t, NULL}, *stale[1] = {STALE}, *foreign[1] = {&FOREIGN};
    const char *keys[1] = {"k"}, *values[1] = {"v"};
    char good[128];
    snprintf(good, sizeof good, "%s", tpath("good.safetensors"));
    CHECK(bk_safetensors_save(good, 2, names, ts, 1, keys, values) == 0);

    MISUSE(bk_safetensors_save(NULL, 2, names, ts, 0, NULL, NULL), "safetensors", "path is NULL");
    const char *p = tpath("x.safetensors");
    MISUSE(bk_safetensors_save(p, -1, names, ts, 0, NULL, NULL), "safetensors",
           "negative tensor or metadata count");
    MISUSE(bk_safetensors_save(p, 2, names, ts, -1, keys, values), "safetensors", "negative");
    MISUSE(bk_safetensors_save(p, 2, NULL, ts, 0, NULL, NULL), "safetensors", "names or tensors is NULL");
    MISUSE(bk_safetensors_save(p, 2, names, NULL, 0, NULL, NULL), "safetensors", "names or tensors is NULL");
    MISUSE(bk_safetensors_save(p, 2, names, with_null, 0, NULL, NULL), "safetensors", "'b' (#1) is NULL");
    MISUSE(bk_safetensors_save(p, 1, names, stale, 0, NULL, NULL), "safetensors", "not a live tensor");
    MISUSE(bk_safetensors_save(p, 1, names, foreign, 0, NULL, NULL), "safetensors", "not a live tensor");
    MISUSE(bk_safetensors_save(p, 2, dup, ts, 0, NULL, NULL), "safetensors", "duplicate");
    MISUSE(bk_safetensors_save(p, 1, reserved, ts, 0, NULL, NULL), "safetensors", "reserved");
    MISUSE(bk_safetensors_save(p, 2, names, ts, 1, NULL, values), "safetensors",
           "metadata keys or values is NULL");
    MISUSE(bk_safetensors_save(p, 2, names, ts, 1, keys, NULL), "safetensors",
           "metadata keys or values is NULL");
    MISUSE(bk_safetensors_save(tpath("no/such/dir/x"), 2, names, ts, 0, NULL, NULL), "safetensors",
           "No such file");

    MISUSE(bk_safetensors_load(NULL), "safetensors", "path is NULL");
    MISUSE(bk_safetensors_load(tpath("missing.safetensors")), "safetensors", "cannot open");
    MISUSE(bk_safetensors_load(tmpdir), "safetensors", tmpdir);
    MISUSE(bk_file_open_read(NULL), "file_open_read", "path is NULL");
    MISUSE(bk_file_open_read(tmpdir), tmpdir, "not a regular file (a directory)");
    MISUSE(bk_file_open_read(tpath("missing")), "missing", "cannot open");
    MISUSE(bk_file_write_atomic(NULL, "x", 1), "file_write_atomic", "path is NULL");
    MISUSE(bk_file_write_atomic(tpath("w.txt"), NULL, 1), "file_write_atomic", "data is NULL");
    MISUSE(bk_file_write_atomic(tpath("no/such/dir/w"), "x", 1), "no/such/dir/w", "No such file");
    MISUSE(bk_file_write_atomic(tmpdir, "x", 1), tmpdir, "cannot rename");
    ACCEPTS(bk_file_write_atomic(tpath("w.txt"), NULL, 0) == 0, "no data with n 0: an empty file");
    MISUSE(bk_file_check_writable(NULL, 1), "file_check_writable", "path is NULL");
    MISUSE(bk_file_check_writable(tpath("no/such/dir/w"), 1), "no/such/dir/w", "cannot create a file there");
    bk_safetensors *st = bk_safetensors_load(good);
    CHECK(st != NULL);
    ACCEPTS((bk_safetensors_free(NULL), !bk_last_error()[0]), "NULL is fine, as for free()");
    MISUSE(bk_safetensors_count(NULL), "safetensors_count", "NULL");
    MISUSE(bk_safetensors_name(NULL, 0), "safetensors_name", "NULL");
    MISUSE(bk_safetensors_name(st, 2), "safetensors", "index 2 is out of range (2 tensors)");
    MISUSE(bk_safetensors_name(st, -1), "safetensors", "index -1");
    MISUSE(bk_safetensors_get(NULL, "a"), "safetensors_get", "file is NULL");
    MISUSE(bk_safetensors_get(st, NULL), "safetensors_get", "name is NULL");
    MISUSE(bk_safetensors_get(st, "c"), "safetensors", "no tensor named 'c'");
    MISUSE(bk_safetensors_meta(NULL, "k"), "safetensors_meta", "file is NULL");
    MISUSE(bk_safetensors_meta(st, NULL), "safetensors_meta", "key is NULL");
    ACCEPTS(bk_safetensors_meta(st, "absent") == NULL && !bk_last_error()[0],
            "an absent key is NULL without an error (documented)");
    MISUSE(bk_safetensors_dtype(NULL, "a"), "safetensors_dtype", "file is NULL");
    MISUSE(bk_safetensors_dtype(st, NULL), "safetensors_dtype", "name is NULL");
    MISUSE(bk_safetensors_dtype(st, "c"), "safetensors", "no tensor named 'c'");

    bk_module *lin = bk_nn_linear(2, 3), *other = bk_nn_linear(3, 3);
    EACH_BAD_MODULE("module_save", bk_module_save(M, tpath("m.safetensors")));
    MISUSE(bk_module_save(lin, NULL), "safetensors", "path is NULL");
    EACH_BAD_MODULE("load_state_dict", bk_module_load(M, good, true));
    MISUSE(bk_module_load(lin, NULL, true), "safetensors", "path is NULL");
    MISUSE(bk_module_load(lin, tpath("missing"), false), "safetensors", "cannot open");
    EACH_BAD_MODULE("load_state_dict", bk_module_load_from(M, st, true));
    MISUSE(bk_module_load_from(lin, NULL, true), "load_state_dict", "file is NULL");
    MISUSE(bk_module_load_from(lin, st, true), "load_state_dict", "missing: weight, bias",
           "unexpected: a, b");
    bk_load_report rep;
    EACH_BAD_MODULE("load_state_dict", bk_module_load_report(M, st, false, &rep));
    MISUSE(bk_module_load_report(lin, NULL, false, &rep), "load_state_dict", "file is NULL");
    MISUSE(bk_module_load_report(lin, st, true, &rep), "load_state_dict", "missing: weight, bias");
    ACCEPTS(bk_module_load_report(lin, st, false, NULL) == 0, "the report is optional (documented)");
    ACCEPTS((bk_load_report_free(NULL), !bk_last_error()[0]), "NULL is fine, as for free()");
    CHECK(bk_module_save(lin, tpath("lin.safetensors")) == 0);
    MISUSE(bk_module_load(other, tpath("lin.safetensors"), false), "load_state_dict", "shape mismatch");
    bk_safetensors_free(st);
    bk_module_free(lin);
    bk_module_free(other);
}

TEST(images) {
    bk_image_info info;
    MISUSE(bk_image_load(NULL, 1, 2, 2, &info), "image", "path is NULL");
    MISUSE(bk_image_load(tpath("absent.png"), 1, 2, 2, &info), "image", "cannot open");
    MISUSE(bk_image_load(tpath("absent.png"), 4, 2, 2, NULL), "image", "channels 4: 1 (grey) or 3 (RGB)");
    MISUSE(bk_image_load(tpath("absent.png"), 1, -1, 2, NULL), "image", "each side must be in 1..65536");
    MISUSE(bk_image_load(tpath("absent.png"), 1, 2, 65537, NULL), "image", "each side must be in 1..65536");
}

/* ---- optimizers ---------------------------------------------------------------------------------------- */

TEST(optimizers) {
    bk_module *lin = bk_nn_linear(2, 2);
    EACH_BAD_MODULE("SGD", bk_optim_sgd(M, BK_SGD_DEFAULTS(0.1)));
    bk_sgd_config s = BK_SGD_DEFAULTS(-0.1);
    MISUSE(bk_optim_sgd(lin, s), "SGD", "lr=-0.1");
    s = BK_SGD_DEFAULTS(NAN);
    MISUSE(bk_optim_sgd(lin, s), "SGD", "lr=nan");
    s = BK_SGD_DEFAULTS(0.1), s.momentum = -1;
    MISUSE(bk_optim_sgd(lin, s), "SGD", "momentum=-1");
    s = BK_SGD_DEFAULTS(0.1), s.weight_decay = -1;
    MISUSE(bk_optim_sgd(lin, s), "SGD", "weight_decay=-1");
    s = BK_SGD_DEFAULTS(0.1), s.nesterov = true;
    MISUSE(bk_optim_sgd(lin, s), "SGD", "Nesterov");
    EACH_BAD_MODULE("Adam", bk_optim_adam(M, BK_ADAM_DEFAULTS(1e-3)));
    EACH_BAD_MODULE("AdamW", bk_optim_adamw(M, BK_ADAMW_DEFAULTS(1e-3)));
    bk_adam_config a = BK_ADAM_DEFAULTS(-1);
    MISUSE(bk_optim_adam(lin, a), "Adam", "lr=-1");
    a = BK_ADAM_DEFAULTS(1e-3), a.beta1 = 1;
    MISUSE(bk_optim_adam(lin, a), "Adam", "betas=(1, ");
    a = BK_ADAM_DEFAULTS(1e-3), a.beta2 = -0.5;
    MISUSE(bk_optim_adamw(lin, a), "AdamW", "0.9, -0.5");
    a = BK_ADAMW_DEFAULTS(1e-3), a.eps = -1;
    MISUSE(bk_optim_adamw(lin, a), "AdamW", "eps=-1");
    a = BK_ADAMW_DEFAULTS(1e-3), a.weight_decay = NAN;
    MISUSE(bk_optim_adamw(lin, a), "AdamW", "weight_decay=nan");
    EACH_BAD_MODULE("RMSprop", bk_optim_rmsprop(M, BK_RMSPROP_DEFAULTS(1e-2)));
    bk_rmsprop_config r = BK_RMSPROP_DEFAULTS(-1);
    MISUSE(bk_optim_rmsprop(lin, r), "RMSprop", "lr=-1");
    r = BK_RMSPROP_DEFAULTS(1e-2), r.alpha = -0.5;
    MISUSE(bk_optim_rmsprop(lin, r), "RMSprop", "alpha=-0.5");
    r = BK_RMSPROP_DEFAULTS(1e-2), r.eps = NAN;
    MISUSE(bk_optim_rmsprop(lin, r), "RMSprop", "eps=nan");
    r = BK_RMSPROP_DEFAULTS(1e-2), r.weight_decay = -1;
    MISUSE(bk_optim_rmsprop(lin, r), "RMSprop", "weight_decay=-1");
    r = BK_RMSPROP_DEFAULTS(1e-2), r.momentum = -0.9;
    MISUSE(bk_optim_rmsprop(lin, r), "RMSprop", "momentum=-0.9");
    EACH_BAD_MODULE("Adagrad", bk_optim_adagrad(M, BK_ADAGRAD_DEFAULTS(1e-2)));
    bk_adagrad_config ag = BK_ADAGRAD_DEFAULTS(NAN);
    MISUSE(bk_optim_adagrad(lin, ag), "Adagrad", "lr=nan");
    ag = BK_ADAGRAD_DEFAULTS(1e-2), ag.lr_decay = -1;
    MISUSE(bk_optim_adagrad(lin, ag), "Adagrad", "lr_decay=-1");
    ag = BK_ADAGRAD_DEFAULTS(1e-2), ag.weight_decay = -2;
    MISUSE(bk_optim_adagrad(lin, ag), "Adagrad", "weight_decay=-2");
    ag = BK_ADAGRAD_DEFAULTS(1e-2), ag.initial_accumulator_value = -0.1;
    MISUSE(bk_optim_adagrad(lin, ag), "Adagrad", "initial_accumulator_value=-0.1");
    ag = BK_ADAGRAD_DEFAULTS(1e-2), ag.eps = -1e-10;
    MISUSE(bk_optim_adagrad(lin, ag), "Adagrad", "eps=-1e-10");

    EACH_BAD_MODULE("clip_grad_norm", bk_clip_grad_norm(M, 1.0, 2.0, false));
    MISUSE(bk_clip_grad_norm(lin, -1.0, 2.0, false), "clip_grad_norm", "max_norm=-1");
    MISUSE(bk_clip_grad_norm(lin, NAN, 2.0, false), "clip_grad_norm", "max_norm=nan");
    MISUSE(bk_clip_grad_norm(lin, 1.0, 0.0, false), "clip_grad_norm", "norm_type=0");
    MISUSE(bk_clip_grad_norm(lin, 1.0, NAN, false), "clip_grad_norm", "norm_type=nan");
    ACCEPTS(bk_clip_grad_norm(lin, 1.0, 2.0, true) == 0.0, "no gradients yet: norm 0, as torch");
    /* a NaN gradient: refused with error_if_nonfinite (the gradients unchanged), else the
     * NaN norm is returned and the gradients scaled by it, as torch */
    CHECK(bk_backward(bk_sum(bk_forward(lin, bk_full(BK_SHAPE(1, 2), 1.0f)))) == 0);
    bk_tensor *wg = bk_module_get(lin, "weight")->grad;
    wg->data[0] = NAN;
    float g1 = wg->data[1];
    MISUSE(bk_clip_grad_norm(lin, 1e-3, 2.0, true), "clip_grad_norm", "norm of order 2", "is nan",
           "unchanged");
    CHECK(wg->data[1] == g1);
    MISUSE(bk_clip_grad_norm(lin, 1e-3, INFINITY, true), "clip_grad_norm", "norm of order inf", "is nan");
    ACCEPTS(isnan(bk_clip_grad_norm(lin, 1e-3, 2.0, false)) && isnan(wg->data[1]),
            "error_if_nonfinite=false");
    bk_arena_reset(NULL);
    EACH_BAD_MODULE("clip_grad_value", bk_clip_grad_value(M, 1.0));
    MISUSE(bk_clip_grad_value(lin, -0.5), "clip_grad_value", "clip_value=-0.5");
    MISUSE(bk_clip_grad_value(lin, NAN), "clip_grad_value", "clip_value=nan");

    bk_optim *o = bk_optim_sgd(lin, BK_SGD_DEFAULTS(0.1));
    ACCEPTS((bk_optim_free(NULL), !bk_last_error()[0]), "NULL is fine, as for free()");
    MISUSE(bk_optim_step(NULL), "optim_step", "NULL");
    MISUSE_VOID(bk_optim_zero_grad(NULL), "optim_zero_grad", "NULL");
    MISUSE(bk_optim_lr(NULL), "optim_lr", "NULL");
    MISUSE_VOID(bk_optim_set_lr(NULL, 0.1), "optim_set_lr", "NULL");
    MISUSE_VOID(bk_optim_set_lr(o, -0.1), "optim_set_lr", "lr=-0.1");
    MISUSE_VOID(bk_optim_set_lr(o, NAN), "optim_set_lr", "lr=nan");
    CHECK(bk_optim_lr(o) == 0.1); /* unchanged by the refused calls */
    MISUSE(bk_optim_set_momentum(NULL, 0.9), "optim_set_momentum", "NULL");
    MISUSE(bk_optim_set_momentum(o, 1.0), "optim_set_momentum", "SGD", "momentum 1 must be in [0, 1)");
    MISUSE(bk_optim_set_momentum(o, -0.5), "optim_set_momentum", "momentum -0.5");
    MISUSE(bk_optim_set_momentum(o, NAN), "optim_set_momentum", "momentum nan");
    {
        /* momentum 0 through a step, then on: torch would start its buffer there, brick did
         * at the first step; Nesterov without momentum; Adagrad has none */
        bk_module *l2 = bk_nn_linear(2, 1);
        bk_optim *o2 = bk_optim_sgd(l2, BK_SGD_DEFAULTS(0.1));
        bk_optim *on = bk_optim_sgd(l2, (bk_sgd_config){0.1, 0.9, 0.0, 0.0, true});
        bk_optim *og = bk_optim_adagrad(l2, BK_ADAGRAD_DEFAULTS(0.1));
        bk_optim *orms = bk_optim_rmsprop(l2, BK_RMSPROP_DEFAULTS(0.1));
        CHECK(l2 && o2 && on && og && orms);
        ACCEPTS(bk_optim_set_momentum(o2, 0.0) == 0 && bk_optim_set_momentum(orms, 0.0) == 0, "0 stays 0");
        CHECK(bk_backward(bk_sum(bk_forward(l2, bk_full(BK_SHAPE(1, 2), 1.0f)))) == 0);
        CHECK(bk_optim_step(o2) == 0 && bk_optim_step(orms) == 0);
        MISUSE(bk_optim_set_momentum(o2, 0.9), "optim_set_momentum", "SGD", "before the first step");
        MISUSE(bk_optim_set_momentum(orms, 0.5), "optim_set_momentum", "RMSprop", "before the first step");
        MISUSE(bk_optim_set_momentum(on, 0.0), "optim_set_momentum", "Nesterov");
        ACCEPTS(bk_optim_set_momentum(on, 0.5) == 0, "Nesterov momentum changed, kept > 0");
        MISUSE(bk_optim_set_momentum(og, 0.9), "optim_set_momentum", "Adagrad has no momentum");
        bk_arena_reset(NULL);
        bk_optim_free(o2);
        bk_optim_free(on);
        bk_optim_free(og);
        bk_optim_free(orms);
        bk_module_free(l2);
    }
    ACCEPTS(!strcmp(bk_optim_name(NULL), "?"), "\"?\" for NULL, as bk_module_name");
    MISUSE(bk_optim_state_count(NULL), "optim_state_count", "NULL");
    MISUSE(bk_optim_state_name(NULL, 0), "optim_state_name", "NULL");
    MISUSE(bk_optim_state_name(o, 4), "optim_state_name", "index 4 is out of range (4 state tensors)");
    MISUSE(bk_optim_state_name(o, -1), "optim_state_name", "index -1");
    MISUSE(bk_optim_state_tensor(NULL, 0), "optim_state_tensor", "NULL");
    MISUSE(bk_optim_state_tensor(o, 4), "optim_state_tensor", "index 4");
    MISUSE(bk_optim_state_tensor(o, INT32_MIN), "optim_state_tensor", "out of range");

    MISUSE(bk_lr_step_decay(0.1f, 3, 0, 0.5f), "lr_step_decay", "step_size 0");
    MISUSE(bk_lr_step_decay(0.1f, 3, -2, 0.5f), "lr_step_decay", "step_size -2");
    MISUSE(bk_lr_step_decay(0.1f, -1, 2, 0.5f), "lr_step_decay", "epoch -1");
    MISUSE(bk_lr_cosine(0.1f, 3, 0, 0), "lr_cosine", "total_epochs 0");
    MISUSE(bk_lr_cosine(0.1f, 3, -10, 0), "lr_cosine", "total_epochs -10");
    MISUSE(bk_lr_cosine(0.1f, -3, 10, 0), "lr_cosine", "epoch -3");
    bk_optim_free(o);
    bk_module_free(lin);
}

static bool match_all(const char *name, const bk_tensor *p, void *ud) {
    return (void)name, (void)p, (void)ud, true;
}
static bool match_none(const char *name, const bk_tensor *p, void *ud) {
    return (void)name, (void)p, (void)ud, false;
}

TEST(param_groups) {
    bk_module *lin = bk_nn_linear(3, 2);
    bk_optim *o = bk_optim_sgd(lin, BK_SGD_DEFAULTS(0.1));
    MISUSE(bk_optim_add_group(NULL, match_all, NULL, 0, 1), "optim_add_group", "NULL");
    MISUSE(bk_optim_add_group(o, NULL, NULL, 0, 1), "optim_add_group", "SGD", "match is NULL");
    MISUSE(bk_optim_add_group(o, match_all, NULL, -1, 1), "optim_add_group", "weight_decay=-1");
    MISUSE(bk_optim_add_group(o, match_all, NULL, 0, NAN), "optim_add_group", "lr_scale=nan");
    MISUSE(bk_optim_add_group(o, match_all, NULL, INFINITY, 1), "optim_add_group", "weight_decay=inf");
    ACCEPTS(bk_optim_add_group(o, match_none, NULL, 0, 1) == 0, "no parameter matched: no group, 0");
    ACCEPTS(bk_optim_add_group(o, bk_param_is_bias_or_norm, NULL, 0, 0.5) == 1, "the bias: a group of one");
    MISUSE(bk_optim_add_group(o, match_all, NULL, 0, 1), "optim_add_group",
           "parameter bias is already in group 1");
    ACCEPTS(!bk_param_is_bias_or_norm(NULL, NULL, NULL), "NULL tensor: false (no rank to read)");
    bk_optim_free(o);
    bk_module_free(lin);
}

static double lambda_half(int64_t step, void *ud) { return (void)step, (void)ud, 0.5; }
static double lambda_nan(int64_t step, void *ud) { return (void)step, (void)ud, NAN; }

TEST(lr_schedules) {
    MISUSE(bk_lr_linear(0.1, -1, 5, 0.5, 1), "lr_linear", "step -1");
    MISUSE(bk_lr_linear(0.1, 0, 0, 0.5, 1), "lr_linear", "total_iters 0");
    MISUSE(bk_lr_linear(0.1, 0, 5, 0, 1), "lr_linear", "start_factor 0");
    MISUSE(bk_lr_linear(0.1, 0, 5, 1.5, 1), "lr_linear", "start_factor 1.5");
    MISUSE(bk_lr_linear(0.1, 0, 5, 0.5, -0.1), "lr_linear", "end_factor -0.1");
    MISUSE(bk_lr_linear(0.1, 0, 5, NAN, 1), "lr_linear", "start_factor nan");
    ACCEPTS(bk_lr_linear(0.1, 99, 5, 0.5, 1) == 0.1, "past total_iters: end_factor base_lr, as torch");
    MISUSE(bk_lr_lambda(0.1, 0, NULL, NULL), "lr_lambda", "fn is NULL");
    MISUSE(bk_lr_lambda(0.1, -1, lambda_half, NULL), "lr_lambda", "step must be >= 0");
    MISUSE(bk_lr_lambda(0.1, 3, lambda_nan, NULL), "lr_lambda", "factor of step 3 is nan");
    ACCEPTS(bk_lr_lambda(0.1, 3, lambda_half, NULL) == 0.05, "ud NULL: the callback's business");
    bk_one_cycle_config c = BK_ONE_CYCLE_DEFAULTS(0.1, 100);
    MISUSE(bk_lr_one_cycle(NULL, 0, NULL), "lr_one_cycle", "config is NULL");
    MISUSE(bk_lr_one_cycle(&c, 101, NULL), "lr_one_cycle", "step 101", "total_steps 100");
    MISUSE(bk_lr_one_cycle(&c, -1, NULL), "lr_one_cycle", "step -1");
    ACCEPTS(bk_lr_one_cycle(&c, 100, NULL) > 0, "step == total_steps: allowed, as torch");
    c.pct_start = 1.5;
    MISUSE(bk_lr_one_cycle(&c, 0, NULL), "lr_one_cycle", "pct_start 1.5");
    c = BK_ONE_CYCLE_DEFAULTS(0.1, 0);
    MISUSE(bk_lr_one_cycle(&c, 0, NULL), "lr_one_cycle", "total_steps 0");
    c = BK_ONE_CYCLE_DEFAULTS(-0.1, 10);
    MISUSE(bk_lr_one_cycle(&c, 0, NULL), "lr_one_cycle", "max_lr -0.1");
    c = BK_ONE_CYCLE_DEFAULTS(0.1, 10);
    c.div_factor = 0;
    MISUSE(bk_lr_one_cycle(&c, 0, NULL), "lr_one_cycle", "div_factor 0");
    c = BK_ONE_CYCLE_DEFAULTS(0.1, 10);
    c.anneal = BK_ANNEAL_COUNT;
    MISUSE(bk_lr_one_cycle(&c, 0, NULL), "lr_one_cycle", "anneal 2");
    c = BK_ONE_CYCLE_DEFAULTS(0.1, 10);
    c.pct_start = 0.1; /* phase 1 ends at step 0, where it starts: torch divides by zero */
    MISUSE(bk_lr_one_cycle(&c, 0, NULL), "lr_one_cycle", "phase 1 has no steps");
    bk_lr_plateau p = BK_LR_PLATEAU_DEFAULTS;
    MISUSE(bk_lr_plateau_init(NULL), "lr_plateau_init", "NULL");
    p.factor = 1;
    MISUSE(bk_lr_plateau_init(&p), "lr_plateau_init", "factor 1");
    p = BK_LR_PLATEAU_DEFAULTS;
    p.patience = -1;
    MISUSE(bk_lr_plateau_init(&p), "lr_plateau_init", "patience -1");
    p = BK_LR_PLATEAU_DEFAULTS;
    p.threshold = NAN;
    MISUSE(bk_lr_plateau_init(&p), "lr_plateau_init", "threshold nan");
    p = BK_LR_PLATEAU_DEFAULTS;
    CHECK(bk_lr_plateau_init(&p) == 0);
    MISUSE(bk_lr_plateau_step(NULL, 1.0, 0.1), "lr_plateau_step", "NULL");
    MISUSE(bk_lr_plateau_step(&p, 1.0, -0.1), "lr_plateau_step", "lr must be >= 0");
    ACCEPTS(bk_lr_plateau_step(&p, NAN, 0.1) == 0.1 && p.num_bad_epochs == 1,
            "a NaN metric: a bad epoch, as torch");
}

/* ---- data ------------------------------------------------------------------------------------------------- */

TEST(data_sets_and_loaders) {
    MISUSE(bk_idx_load(NULL, "l", 10), "idx", "images path is NULL");
    MISUSE(bk_idx_load("i", NULL, 10), "idx", "labels path is NULL");
    MISUSE(bk_idx_load("i", "l", 0), "idx", "n_classes 0");
    MISUSE(bk_idx_load("i", "l", 257), "idx", "n_classes 257");
    MISUSE(bk_idx_load("i", "l", -1), "idx", "n_classes -1");
    MISUSE(bk_idx_load(tpath("missing-images"), tpath("missing-labels"), 10), "idx", "missing-images");
    MISUSE(bk_fashion_mnist_load(NULL, true), "fashion_mnist", "NULL");
    MISUSE(bk_fashion_mnist_load(tpath("nowhere"), false), "fashion_mnist", "nowhere");
    MISUSE(bk_fashion_mnist_load(tmpdir, true), "fashion_mnist", "found no");
    MISUSE(bk_cifar10_load(NULL, true), "cifar10", "directory is NULL");
    MISUSE(bk_cifar10_load(tpath("nowhere"), false), "cifar10", "nowhere/test_batch.bin", "cannot open");
    const char *imf = "image_folder";
    static const char *const one_class[1] = {"a"}, *const null_class[1] = {NULL};
    MISUSE(bk_image_folder_load(NULL, NULL, 0, 0, 0, 0), imf, "directory is NULL");
    MISUSE(bk_image_folder_load(tmpdir, NULL, 0, 2, 0, 0), imf, "channels 2");
    MISUSE(bk_image_folder_load(tmpdir, NULL, 0, 0, 0, 8), imf, "size 0x8");
    MISUSE(bk_image_folder_load(tmpdir, NULL, 0, 0, -1, -1), imf, "size -1x-1");
    MISUSE(bk_image_folder_load(tmpdir, NULL, 0, 0, 70000, 70000), imf, "size 70000x70000");
    MISUSE(bk_image_folder_load(tmpdir, one_class, 0, 0, 0, 0), imf, "n_classes 0");
    MISUSE(bk_image_folder_load(tmpdir, one_class, BK_IMAGE_FOLDER_MAX_CLASSES + 1, 0, 0, 0), imf,
           "n_classes 4097");
    MISUSE(bk_image_folder_load(tmpdir, null_class, 1, 0, 0, 0), imf, "class name 0 is NULL");
    MISUSE(bk_image_folder_load(tpath("nowhere"), NULL, 0, 0, 0, 0), imf, "cannot open the directory");

    const int64_t shape[2] = {1, 2}, neg[2] = {1, -2};
    const float x[6] = {0, 1, 2, 3, 4, 5}, t[3] = {1, 2, 3};
    const int64_t y[3] = {0, 1, 1}, ybad[3] = {0, 2, 1}, yneg[3] = {0, -1, 1};
    const char *w = "dataset_from_arrays";
    MISUSE(bk_dataset_from_arrays(-1, 2, shape, x, y, 2, NULL, 0), w, "negative number of samples -1");
    MISUSE(bk_dataset_from_arrays(3, -1, shape, x, y, 2, NULL, 0), w, "rank -1");
    MISUSE(bk_dataset_from_arrays(3, BK_MAX_DIMS, shape, x, y, 2, NULL, 0), w, "rank 8");
    MISUSE(bk_dataset_from_arrays(3, 2, NULL, x, y, 2, NULL, 0), w, "shape is NULL");
    MISUSE(bk_dataset_from_arrays(3, 2, neg, x, y, 2, NULL, 0), w, "negative dimension -2");
    MISUSE(bk_dataset_from_arrays(INT64_MAX, 2, shape, x, y, 2, NULL, 0), w, "too many");
    MISUSE(bk_dataset_from_arrays(3, 2, shape, NULL, y, 2, NULL, 0), w, "x is NULL");
    MISUSE(bk_dataset_from_arrays(3, 2, shape, x, ybad, 2, NULL, 0), w, "label 2 at index 1");
    MISUSE(bk_dataset_from_arrays(3, 2, shape, x, yneg, 2, NULL, 0), w, "label -1");
    MISUSE(bk_dataset_from_arrays(3, 2, shape, x, y, 0, NULL, 0), w, "n_classes 0");
    MISUSE(bk_dataset_from_arrays(3, 2, shape, x, y, -3, NULL, 0), w, "n_classes -3");
    MISUSE(bk_dataset_from_arrays(3, 2, shape, x, NULL, 2, NULL, 0), w, "without labels");
    MISUSE(bk_dataset_from_arrays(3, 2, shape, x, NULL, 0, t, 0), w, "target_dim 0");
    MISUSE(bk_dataset_from_arrays(3, 2, shape, x, NULL, 0, t, -1), w, "target_dim -1");
    MISUSE(bk_dataset_from_arrays(3, 2, shape, x, NULL, 0, NULL, 1), w, "without targets");
    ACCEPTS((bk_dataset_free(NULL), !bk_last_error()[0]), "NULL is fine, as for free()");

    bk_dataset *ds = bk_dataset_from_arrays(3, 2, shape, x, y, 2, NULL, 0);
    CHECK(ds != NULL);
    /* foreign data sets: the struct is public, so a caller can fill one in by hand */
    bk_dataset hand = *ds;
    hand.x = NULL;
    bk_dataset bad_rank = *ds, bad_numel = *ds, bad_n = *ds, bad_targets = *ds, bad_dim = *ds;
    bad_rank.ndim = BK_MAX_DIMS;
    bad_numel.sample_numel = 1000;
    bad_n.n = -5;
    bad_targets.target_dim = -1, bad_targets.targets = (float *)x;
    bad_dim.shape[1] = -2;
    MISUSE(bk_dataset_normalize(NULL, 0, 1), "dataset_normalize", "NULL");
    MISUSE(bk_dataset_normalize(ds, 0, 0), "dataset_normalize", "std 0");
    MISUSE(bk_dataset_normalize(ds, 0, -1), "dataset_normalize", "std -1");
    MISUSE(bk_dataset_normalize(ds, NAN, 1), "dataset_normalize", "mean nan");
    MISUSE(bk_dataset_normalize(ds, 0, INFINITY), "dataset_normalize", "std inf");
    MISUSE(bk_dataset_normalize(&hand, 0, 1), "dataset_normalize", "malformed", "x NULL");
    MISUSE(bk_dataset_normalize(&bad_numel, 0, 1), "dataset_normalize", "malformed");
    MISUSE(bk_dataset_normalize(&bad_n, 0, 1), "dataset_normalize", "malformed");
    float cm[2] = {0, 0}, cs[2] = {1, 1}, czero[2] = {0, 1}, cnan[2] = {NAN, 0};
    const char *dcs = "dataset_channel_stats", *dnc = "dataset_normalize_channels";
    MISUSE(bk_dataset_channel_stats(NULL, cm, cs), dcs, "NULL");
    MISUSE(bk_dataset_channel_stats(ds, NULL, cs), dcs, "mean is NULL");
    MISUSE(bk_dataset_channel_stats(ds, cm, NULL), dcs, "std is NULL");
    MISUSE(bk_dataset_channel_stats(&hand, cm, cs), dcs, "malformed");
    MISUSE(bk_dataset_normalize_channels(NULL, cm, cs), dnc, "NULL");
    MISUSE(bk_dataset_normalize_channels(ds, NULL, cs), dnc, "mean is NULL");
    MISUSE(bk_dataset_normalize_channels(ds, cm, NULL), dnc, "std is NULL");
    MISUSE(bk_dataset_normalize_channels(ds, cm, czero), dnc, "channel 0", "std 0");
    MISUSE(bk_dataset_normalize_channels(ds, cnan, cs), dnc, "channel 0", "mean nan");
    MISUSE(bk_dataset_normalize_channels(&bad_numel, cm, cs), dnc, "malformed");
    float mean[2] = {0, 0}, sd[2] = {1, 1}, sd0[2] = {1, 0}, mnan[2] = {NAN, 0};
    MISUSE(bk_dataset_feature_stats(NULL, mean, sd), "dataset_feature_stats", "NULL");
    MISUSE(bk_dataset_feature_stats(ds, NULL, sd), "dataset_feature_stats", "mean is NULL");
    MISUSE(bk_dataset_feature_stats(ds, mean, NULL), "dataset_feature_stats", "std is NULL");
    MISUSE(bk_dataset_feature_stats(&bad_n, mean, sd), "dataset_feature_stats", "malformed");
    MISUSE(bk_dataset_standardize(NULL, mean, sd), "dataset_standardize", "NULL");
    MISUSE(bk_dataset_standardize(ds, mean, NULL), "dataset_standardize", "std is NULL");
    MISUSE(bk_dataset_standardize(ds, mean, sd0), "dataset_standardize", "feature 1", "std 0");
    MISUSE(bk_dataset_standardize(ds, mnan, sd), "dataset_standardize", "feature 0", "mean nan");
    MISUSE(bk_dataset_standardize(&bad_numel, mean, sd), "dataset_standardize", "malformed");

    /* CSV tables: the reader's own messages are tested in tests/test_csv.c */
    bk_dataset *ctr = NULL, *cte = NULL;
    const char *csv_ok = tpath("ok.csv");
    FILE *cf = fopen(csv_ok, "w");
    CHECK(cf != NULL);
    if (cf) {
        fputs("a,b,y\n1,2,0\n3,4,1\n", cf);
        fclose(cf);
    }
    MISUSE(bk_csv_load(NULL, csv_ok, NULL, BK_CSV_TASK_AUTO, &ctr, &cte), "csv", "training path is NULL");
    MISUSE(bk_csv_load(csv_ok, NULL, NULL, BK_CSV_TASK_AUTO, &ctr, &cte), "csv", "test path is NULL");
    MISUSE(bk_csv_load(csv_ok, csv_ok, NULL, BK_CSV_TASK_AUTO, NULL, &cte), "csv",
           "train (the output) is NULL");
    MISUSE(bk_csv_load(csv_ok, csv_ok, NULL, BK_CSV_TASK_AUTO, &ctr, NULL), "csv",
           "test (the output) is NULL");
    MISUSE(bk_csv_load(csv_ok, csv_ok, NULL, BK_CSV_TASK_COUNT, &ctr, &cte), "csv", "task 3");
    MISUSE(bk_csv_load(csv_ok, csv_ok, NULL, (bk_csv_task)-1, &ctr, &cte), "csv", "task -1");
    MISUSE(bk_csv_load(csv_ok, csv_ok, "z", BK_CSV_TASK_AUTO, &ctr, &cte), "csv",
           "no target column named \"z\"", "columns: a, b, y");
    MISUSE(bk_csv_load(tpath("missing.csv"), csv_ok, NULL, BK_CSV_TASK_AUTO, &ctr, &cte), "csv",
           "missing.csv", "cannot open");
    MISUSE(bk_csv_load(tmpdir, csv_ok, NULL, BK_CSV_TASK_AUTO, &ctr, &cte), "csv", tmpdir);
    CHECK(ctr == NULL && cte == NULL);

    MISUSE(bk_loader_new(NULL, 2, false, 0, false), "loader_new", "data set is NULL");
    MISUSE(bk_loader_new(ds, 0, false, 0, false), "loader_new", "batch_size 0");
    MISUSE(bk_loader_new(ds, -2, false, 0, false), "loader_new", "batch_size -2");
    MISUSE(bk_loader_new(&hand, 2, false, 0, false), "loader_new", "malformed", "x NULL");
    MISUSE(bk_loader_new(&bad_rank, 2, false, 0, false), "loader_new", "malformed", "rank 8");
    MISUSE(bk_loader_new(&bad_numel, 2, false, 0, false), "loader_new", "malformed", "sample_numel 1000");
    MISUSE(bk_loader_new(&bad_n, 2, false, 0, false), "loader_new", "malformed", "n -5");
    MISUSE(bk_loader_new(&bad_targets, 2, false, 0, false), "loader_new", "malformed", "target_dim -1");
    MISUSE(bk_loader_new(&bad_dim, 2, false, 0, false), "loader_new", "malformed", "negative dimension -2");
    bk_loader *l = bk_loader_new(ds, 2, true, 1, false);
    CHECK(l != NULL);
    ACCEPTS((bk_loader_free(NULL), !bk_last_error()[0]), "NULL is fine, as for free()");
    MISUSE_VOID(bk_loader_start(NULL), "loader_start", "NULL");
    bk_tensor *bx;
    const int64_t *by;
    MISUSE(bk_loader_next(NULL, &bx, &by, NULL), "loader_next", "NULL");
    CHECK(bx == NULL && by == NULL); /* the outputs are cleared on failure */
    ACCEPTS(bk_loader_next(l, NULL, NULL, NULL) == 2, "NULL outputs: nothing is copied (skips a batch)");
    MISUSE(bk_loader_num_batches(NULL), "loader_num_batches", "NULL");
    MISUSE_VOID(bk_loader_rng(NULL), "loader_rng", "NULL");
    MISUSE(bk_loader_set_rng(NULL, *bk_default_rng()), "loader_set_rng", "NULL");
    MISUSE(bk_loader_set_rng(l, (bk_rng){0, 0}), "loader_set_rng", "even");
    MISUSE(bk_loader_set_augment(NULL, 1, true, NULL), "loader_set_augment", "NULL");
    MISUSE(bk_loader_set_augment(l, 1, true, NULL), "loader_set_augment", "not samples of rank 2");
    bk_dataset *img = bk_dataset_from_arrays(3, 3, (const int64_t[]){1, 1, 2}, x, y, 2, NULL, 0);
    bk_loader *li = img ? bk_loader_new(img, 2, true, 1, false) : NULL;
    const float fnan[1] = {NAN};
    CHECK(li != NULL);
    MISUSE(bk_loader_set_augment(li, -1, true, NULL), "loader_set_augment", "crop_padding -1");
    MISUSE(bk_loader_set_augment(li, 70000, true, NULL), "loader_set_augment", "crop_padding 70000");
    MISUSE(bk_loader_set_augment(li, 1, true, fnan), "loader_set_augment", "fill[0] is nan");
    bk_loader_free(li);
    bk_dataset_free(img);
    bk_loader_free(l);
    bk_dataset_free(ds);
}

TEST(distributed) {
    ACCEPTS(bk_dist_init(NULL, NULL, false) == 0, "outside mpirun, without require_mpi: a world of one");
    CANNOT_FAIL(bk_dist_rank() == 0, "no arguments (0 in a world of one)");
    CANNOT_FAIL(bk_dist_world_size() == 1, "no arguments (1 in a world of one)");
    CANNOT_FAIL(bk_dist_mpi_built() || !bk_dist_mpi_built(), "no arguments");
    CANNOT_FAIL(bk_dist_barrier() == 0, "no arguments");
    CANNOT_FAIL((bk_dist_abort(1), 1), "any status; in a world of one it returns");
    int64_t v = 1, all = 0;
    MISUSE(bk_dist_allgather(NULL, &all, 8), "dist_allgather", "NULL");
    MISUSE(bk_dist_allgather(&v, NULL, 8), "dist_allgather", "NULL");
    MISUSE(bk_dist_allgather(&v, &all, (size_t)1 << 40), "dist_allgather", "too many");
    EACH_BAD_MODULE("dist_broadcast_module", bk_dist_broadcast_module(M, "m"));
    EACH_BAD_MODULE("ddp_new", bk_ddp_new(M, "m", BK_DIST_DETERMINISTIC));
    bk_module *m = bk_nn_linear(3, 2);
    MISUSE(bk_ddp_new(m, NULL, (bk_dist_mode)-1), "ddp_new", "unknown mode -1");
    bk_ddp *d = bk_ddp_new(m, NULL, BK_DIST_DETERMINISTIC);
    MISUSE(bk_ddp_reduce(NULL, 1.0f), "ddp_reduce", "NULL");
    MISUSE(bk_ddp_reduce(d, 0.0f), "ddp_reduce", "divisor 0");
    MISUSE(bk_ddp_reduce(d, NAN), "ddp_reduce", "divisor nan");
    MISUSE(bk_ddp_accumulate(NULL), "ddp_accumulate", "NULL");
    MISUSE(bk_ddp_finish(NULL, 1.0f), "ddp_finish", "NULL");
    MISUSE(bk_ddp_finish(d, 1.0f), "ddp_finish", "nothing was accumulated");
    MISUSE(bk_ddp_sync_buffers(NULL), "ddp_sync_buffers", "NULL");
    MISUSE(bk_ddp_save_buffers(NULL), "ddp_save_buffers", "NULL");
    MISUSE(bk_ddp_restore_buffers(NULL), "ddp_restore_buffers", "NULL");
    MISUSE(bk_ddp_restore_buffers(d), "ddp_restore_buffers", "no buffers were saved");
    MISUSE(bk_ddp_numel(NULL), "ddp_numel", "NULL");
    MISUSE(bk_ddp_comm_seconds(NULL), "ddp_comm_seconds", "NULL");
    ACCEPTS((bk_ddp_free(NULL), !bk_last_error()[0]), "NULL is fine, as for free()");
    bk_ddp_free(d);
    bk_module_free(m);
    CANNOT_FAIL(bk_dist_finalize() == 0, "no arguments");
}

TEST(models_and_checkpoints) {
    const int64_t in[3] = {1, 4, 4}, neg[3] = {1, -4, 4};
    char canon[64];
    CANNOT_FAIL(bk_model_names() != NULL && bk_model_names()[0] != NULL, "no arguments");
    int n_settings = -1;
    bk_model_setting st;
    MISUSE(bk_model_describe(NULL, &n_settings), "model_describe", "name is NULL");
    MISUSE(bk_model_describe("nonet", &n_settings), "model", "unknown model \"nonet\" (known: softmax, mlp");
    MISUSE(bk_model_describe("mlp:hidden=8", NULL), "model", "unknown model \"mlp:hidden=8\"");
    ACCEPTS(bk_model_describe("mlp", NULL) != NULL, "n_settings NULL: not written");
    MISUSE(bk_model_setting_info(NULL, 0, &st), "model_setting_info", "name is NULL");
    MISUSE(bk_model_setting_info("mlp", 0, NULL), "model_setting_info", "out is NULL");
    MISUSE(bk_model_setting_info("nonet", 0, &st), "model", "unknown model \"nonet\"");
    MISUSE(bk_model_setting_info("mlp", 3, &st), "model mlp", "setting index 3 is out of range (3 settings)");
    MISUSE(bk_model_setting_info("mlp", -1, &st), "model mlp", "setting index -1");
    MISUSE(bk_model_setting_info("googlenet", 0, &st), "model googlenet", "(0 settings)");
    MISUSE(bk_model_build(NULL, 3, in, 10, canon, sizeof canon), "model", "spec is NULL");
    MISUSE(bk_model_build("nonet", 3, in, 10, canon, sizeof canon), "model", "unknown model \"nonet\"");
    MISUSE(bk_model_build("mlp:depth=2", 3, in, 10, canon, sizeof canon), "model", "no setting \"depth\"");
    MISUSE(bk_model_build("mlp:hidden=-2", 3, in, 10, canon, sizeof canon), "model", "positive integer");
    MISUSE(bk_model_build("mlp:hidden=99999999999", 3, in, 10, canon, sizeof canon), "model",
           "positive integer");
    MISUSE(bk_model_build("mlp", -1, in, 10, canon, sizeof canon), "model", "rank -1");
    MISUSE(bk_model_build("mlp", 0, in, 10, canon, sizeof canon), "model", "at least one dimension");
    MISUSE(bk_model_build("mlp", 9, in, 10, canon, sizeof canon), "model", "rank 9");
    MISUSE(bk_model_build("mlp", 3, NULL, 10, canon, sizeof canon), "model", "shape is NULL");
    MISUSE(bk_model_build("mlp", 3, neg, 10, canon, sizeof canon), "model", "negative dimension -4");
    MISUSE(bk_model_build("mlp", 3, in, 0, canon, sizeof canon), "model", "classes");
    MISUSE(bk_model_build("mlp", 3, in, -10, canon, sizeof canon), "model", "-10");
    MISUSE(bk_model_build("mlp:hidden=4294967296", 3, in, 10, canon, sizeof canon), "model",
           "BK_MODEL_MAX_PARAMS");
    MISUSE(bk_model_num_params(NULL, 3, in, 10, canon, sizeof canon), "model", "spec is NULL");
    MISUSE(bk_model_num_params("nonet", 3, in, 10, canon, sizeof canon), "model", "unknown model");
    MISUSE(bk_model_num_params("mlp", 3, NULL, 10, canon, sizeof canon), "model", "shape is NULL");
    MISUSE(bk_model_num_params("mlp", 3, in, 0, canon, sizeof canon), "model", "classes");
    MISUSE(bk_model_num_params("resnet:width=65536", 3, in, 10, canon, sizeof canon), "model",
           "BK_MODEL_MAX_PARAMS");
    ACCEPTS(bk_model_num_params("mlp:hidden=8", 3, in, 10, NULL, 0) == 16 * 8 + 8 + 8 * 10 + 10,
            "canonical NULL: not written");
    bk_module *m = NULL;
    ACCEPTS((m = bk_model_build("mlp:hidden=8", 3, in, 10, NULL, 0)) != NULL, "canonical NULL: not written");
    bk_module *m2 = NULL;
    ACCEPTS((m2 = bk_model_build("mlp:hidden=8", 3, in, 10, canon, 3)) != NULL && !strcmp(canon, "ml"),
            "a short canonical buffer is truncated, as snprintf");
    bk_module_free(m2);

    char ck[128];
    snprintf(ck, sizeof ck, "%s", tpath("m.ckpt"));
    bk_optim *o = bk_optim_adam(m, BK_ADAM_DEFAULTS(1e-3));
    const char *keys[1] = {"k"}, *values[1] = {"v"};
    MISUSE(bk_checkpoint_save(NULL, m, o, 0, NULL, NULL), "checkpoint_save", "path is NULL");
    EACH_BAD_MODULE("checkpoint_save", bk_checkpoint_save(ck, M, o, 0, NULL, NULL));
    MISUSE(bk_checkpoint_save(ck, m, o, -1, keys, values), "safetensors", "negative");
    MISUSE(bk_checkpoint_save(ck, m, o, 1, NULL, values), "safetensors", "metadata keys or values is NULL");
    ACCEPTS(bk_checkpoint_save(ck, m, NULL, 1, keys, values) == 0, "optimizer NULL: the model only");
    MISUSE(bk_checkpoint_load(NULL, m, o), "checkpoint_load", "path is NULL");
    EACH_BAD_MODULE("checkpoint_load", bk_checkpoint_load(ck, M, o));
    MISUSE(bk_checkpoint_load(tpath("missing.ckpt"), m, NULL), "safetensors", "cannot open");
    MISUSE(bk_checkpoint_load(ck, m, o), "checkpoint_load", "missing");
    ACCEPTS(bk_checkpoint_load(ck, m, NULL) == 0, "optimizer NULL: the model only");
    bk_safetensors *ck_st = bk_safetensors_load(ck);
    MISUSE(bk_checkpoint_load_from(NULL, m, o), "checkpoint_load", "file is NULL");
    EACH_BAD_MODULE("checkpoint_load", bk_checkpoint_load_from(ck_st, M, o));
    MISUSE(bk_checkpoint_load_from(ck_st, m, o), "checkpoint_load", "missing");
    ACCEPTS(bk_checkpoint_load_from(ck_st, m, NULL) == 0, "optimizer NULL: the model only");
    bk_safetensors_free(ck_st);
    bk_optim_free(o);
    bk_module_free(m);
}
