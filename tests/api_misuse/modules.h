/* api_misuse/modules.h - the API misuse sweep: blocks (the module base, layers and
 * attention layers).
 *
 * Part of tests/test_api_misuse.c, which includes it after its harness (MISUSE, ACCEPTS,
 * CANNOT_FAIL, EACH_BAD_TENSOR, ...): the sweep's completeness check must see the calls of
 * every part in one process. Not a header of its own.
 */

/* ---- modules ---------------------------------------------------------------------------------------- */

static bk_tensor *id_forward(bk_module *m, bk_tensor *x) {
    (void)m;
    return x;
}
static const bk_module_class USER = {"User", id_forward, NULL, NULL};
static void count_block(bk_module *m, void *ud) {
    (void)m;
    (*(int *)ud)++;
}

TEST(module_base) {
    static const bk_module_class nameless = {NULL, id_forward, NULL, NULL},
                                 no_forward = {"X", NULL, NULL, NULL};
    MISUSE(bk_module_new(NULL, sizeof(bk_module)), "module_new", "class");
    MISUSE(bk_module_new(&nameless, sizeof(bk_module)), "module_new", "name");
    MISUSE(bk_module_new(&no_forward, sizeof(bk_module)), "module_new", "forward");
    MISUSE(bk_module_new(&USER, sizeof(bk_module) - 1), "module_new", "smaller than bk_module");
    ACCEPTS((bk_module_free(NULL), !bk_last_error()[0]), "NULL is fine, as for free()");
    MISUSE_VOID(bk_module_free(&FOREIGN_M), "module_free", "not a live module");
    MISUSE(bk_module_ref(NULL), "module_ref", "NULL");
    MISUSE(bk_module_ref(&FOREIGN_M), "module_ref", "not a live module");

    bk_module *m = bk_module_new(&USER, sizeof(bk_module));
    EACH_BAD_MODULE("module_add", bk_module_add(M, "c", bk_nn_relu()));
    MISUSE(bk_module_add(m, "c", NULL), "module_add", "child \"c\" is NULL");
    MISUSE(bk_module_add(m, "c", &FOREIGN_M), "module_add", "child \"c\"", "not a live module");
    MISUSE(bk_module_add(m, NULL, bk_nn_relu()), "add_module", "invalid name \"(null)\"");
    MISUSE(bk_module_add(m, "", bk_nn_relu()), "add_module", "invalid name");
    MISUSE(bk_module_add(m, "a.b", bk_nn_relu()), "add_module", "invalid name \"a.b\"");
    MISUSE(bk_module_add(m, "self", bk_module_ref(m)), "add_module", "cannot contain itself");
    CHECK(bk_module_add(m, "c", bk_nn_relu()) != NULL);
    MISUSE(bk_module_add(m, "c", bk_nn_relu()), "add_module", "\"c\" already exists");

    const int64_t fine[1] = {2}, neg[1] = {-2};
    int64_t nine[BK_MAX_DIMS + 1];
    for (int i = 0; i <= BK_MAX_DIMS; i++) nine[i] = 1;
    EACH_BAD_MODULE("register_parameter", bk_module_param(M, "w", 1, fine));
    MISUSE(bk_module_param(m, NULL, 1, fine), "register_parameter", "invalid name");
    MISUSE(bk_module_param(m, "w", 1, NULL), "register_parameter", "shape is NULL");
    MISUSE(bk_module_param(m, "w", -1, fine), "register_parameter", "rank -1");
    MISUSE(bk_module_param(m, "w", BK_MAX_DIMS + 1, nine), "register_parameter", "rank 9");
    MISUSE(bk_module_param(m, "w", 1, neg), "register_parameter", "negative dimension -2");
    MISUSE(bk_module_param(m, "c", 1, fine), "register_parameter", "\"c\" already exists");
    EACH_BAD_MODULE("register_buffer", bk_module_buffer(M, "b", 1, fine, true));
    MISUSE(bk_module_buffer(m, "x.y", 1, fine, true), "register_buffer", "invalid name");
    MISUSE(bk_module_buffer(m, "b", 1, neg, false), "register_buffer", "negative dimension");
    MISUSE(bk_module_buffer(m, "b", -4, fine, false), "register_buffer", "rank -4");
    CHECK(bk_module_param(m, "w", 1, fine) != NULL);
    EACH_BAD_MODULE("set_trainable", bk_module_set_trainable(M, "w", false));
    MISUSE(bk_module_set_trainable(m, NULL, false), "set_trainable", "NULL");
    MISUSE(bk_module_set_trainable(m, "nope", false), "set_trainable", "no parameter \"nope\"");

    bk_tensor *x = bk_rand(BK_SHAPE(2, 3));
    EACH_BAD_MODULE("forward", bk_forward(M, x));
    EACH_BAD_TENSOR("User", bk_forward(m, T));

    EACH_BAD_MODULE("module_child", bk_module_child(M, 0));
    MISUSE(bk_module_child(m, 1), "module_child", "index 1 is out of range (1 children)");
    MISUSE(bk_module_child(m, -1), "module_child", "index -1");
    MISUSE(bk_module_child(m, INT32_MIN), "module_child", "out of range");
    EACH_BAD_MODULE("module_child", bk_module_child_by_name(M, "c"));
    MISUSE(bk_module_child_by_name(m, NULL), "module_child", "name is NULL");
    MISUSE(bk_module_child_by_name(m, "d"), "module_child", "no child \"d\"");
    EACH_BAD_MODULE("module_get", bk_module_get(M, "w"));
    MISUSE(bk_module_get(m, NULL), "module_get", "NULL");
    MISUSE(bk_module_get(m, "c.w"), "module_get", "no parameter or buffer \"c.w\"");
    MISUSE(bk_module_get(m, ".."), "module_get", "\"..\"");

    EACH_BAD_MODULE("module_named", bk_module_named(M, BK_PARAMS));
    MISUSE(bk_module_named(m, 0), "module_named", "which 0");
    MISUSE(bk_module_named(m, 4), "module_named", "which 4");
    MISUSE(bk_module_named(m, -1), "module_named", "which -1");
    ACCEPTS((bk_param_list_free(NULL), !bk_last_error()[0]), "NULL is fine, as for free()");
    EACH_BAD_MODULE("module_num_params", bk_module_num_params(M, false));

    M = NULL;
    MISUSE_VOID(bk_module_train(M, false), "module_train", "NULL");
    MISUSE_VOID(bk_module_zero_grad(M), "module_zero_grad", "NULL");
    MISUSE_VOID(bk_module_apply(M, count_block, NULL), "module_apply", "NULL");
    M = &FOREIGN_M;
    MISUSE_VOID(bk_module_train(M, false), "module_train", "not a live module");
    MISUSE_VOID(bk_module_zero_grad(M), "module_zero_grad", "not a live module");
    MISUSE_VOID(bk_module_apply(M, count_block, NULL), "module_apply", "not a live module");
    MISUSE_VOID(bk_module_apply(m, NULL, NULL), "module_apply", "fn is NULL");
    int count = 0;
    ACCEPTS((bk_module_apply(m, count_block, &count), count == 2), "ud NULL is the caller's business");

    char buf[256];
    EACH_BAD_MODULE("module_repr", bk_module_repr(M, buf, sizeof buf));
    ACCEPTS(bk_module_repr(m, NULL, 0) > 0, "buf NULL with n 0 measures, as snprintf");
    MISUSE(bk_module_repr(m, NULL, 10), "module_repr", "buf is NULL");
    FILE *f = tmpfile();
    CHECK(f != NULL);
    if (f) {
        M = NULL;
        MISUSE_VOID(bk_module_print(M, f), "module_repr", "NULL");
        M = &FOREIGN_M;
        MISUSE_VOID(bk_module_print(M, f), "not a live module");
        fclose(f);
    }
    ACCEPTS(!strcmp(bk_module_name(NULL), "?") && !strcmp(bk_module_name(&FOREIGN_M), "?"),
            "\"?\" for NULL and for what is not a block (documented)");
    bk_module_free(m);
}

TEST(layers) {
    /* constructors: negative, zero where it is not allowed, huge, NaN */
    MISUSE(bk_nn_linear(-1, 3), "Linear", "in_features=-1");
    MISUSE(bk_nn_linear(3, -1), "Linear", "out_features=-1");
    MISUSE(bk_nn_linear(INT64_MAX, 2), "Linear", "too many elements");
    MISUSE(bk_nn_linear_ex(-5, 3, false), "Linear", "in_features=-5");
    MISUSE(bk_nn_linear_ex(2, INT64_MIN, true), "Linear", "must be non-negative");
    /* lazy layers: the settings they have are checked at once; the size at the first
     * forward (which fails naming the input's shape and leaves them lazy) */
    MISUSE(bk_nn_lazy_linear(-1, true), "LazyLinear", "out_features=-1");
    bk_conv2d_opts lazy_o = BK_CONV2D_DEFAULTS;
    MISUSE(bk_nn_lazy_conv2d(4, NULL, lazy_o, true), "LazyConv2d", "kernel_size is NULL");
    MISUSE(bk_nn_lazy_conv2d(0, (const int64_t[2]){3, 3}, lazy_o, true), "LazyConv2d", "out_channels=0");
    lazy_o.groups = 3;
    MISUSE(bk_nn_lazy_conv2d(4, (const int64_t[2]){3, 3}, lazy_o, false), "LazyConv2d", "groups=3");
    lazy_o.groups = 2;
    bk_module *lazy_conv = bk_nn_lazy_conv2d(4, (const int64_t[2]){3, 3}, lazy_o, false);
    MISUSE(bk_forward(lazy_conv, bk_rand(BK_SHAPE(1, 3, 5, 5))), "LazyConv2d", "in_channels=3",
           "(1, 3, 5, 5)");
    MISUSE(bk_forward(lazy_conv, bk_rand(BK_SHAPE(3, 5, 5))), "LazyConv2d", "expected 4D");
    bk_module_free(lazy_conv);
    bk_norm_opts lazy_bn = BK_BATCH_NORM_DEFAULTS;
    MISUSE(bk_nn_lazy_batch_norm(3, lazy_bn), "LazyBatchNorm", "ndim_expected");
    lazy_bn.eps = -1.0f;
    MISUSE(bk_nn_lazy_batch_norm(2, lazy_bn), "LazyBatchNorm2d", "eps=-1");
    bk_module *lazy_lin = bk_nn_lazy_linear(2, true);
    MISUSE(bk_forward(lazy_lin, bk_scalar(1.0f)), "LazyLinear", "0-d input");
    MISUSE(bk_module_named(lazy_lin, BK_PARAMS), "LazyLinear", "uninitialized parameters");
    MISUSE_VOID((void)bk_module_has_uninitialized(NULL), "module_has_uninitialized", "NULL");
    MISUSE_VOID((void)bk_module_has_uninitialized(&FOREIGN_M), "module_has_uninitialized",
                "not a live module");
    ACCEPTS(bk_module_has_uninitialized(lazy_lin) && !bk_last_error()[0], "true for a lazy block, no error");
    bk_module_free(lazy_lin);
    CANNOT_FAIL(freed(bk_nn_relu()), "no arguments");
    CANNOT_FAIL(freed(bk_nn_sigmoid()), "no arguments");
    CANNOT_FAIL(freed(bk_nn_tanh()), "no arguments");
    CANNOT_FAIL(freed(bk_nn_identity()), "no arguments");
    CANNOT_FAIL(freed(bk_nn_gelu()), "no arguments");
    CANNOT_FAIL(freed(bk_nn_gelu_tanh()), "no arguments");
    CANNOT_FAIL(freed(bk_nn_silu()), "no arguments");
    CANNOT_FAIL(freed(bk_nn_mish()), "no arguments");
    CANNOT_FAIL(freed(bk_nn_hardswish()), "no arguments");
    CANNOT_FAIL(freed(bk_nn_hardsigmoid()), "no arguments");
    CANNOT_FAIL(freed(bk_nn_softmax2d()), "no arguments");
    ACCEPTS(freed(bk_nn_leaky_relu(-2.0f)), "any slope, as torch");
    ACCEPTS(freed(bk_nn_elu(0.0f)), "any alpha, as torch");
    MISUSE(bk_nn_softplus(0.0f, 20.0f), "Softplus", "beta=0");
    MISUSE(bk_nn_prelu(0, 0.25f), "PReLU", "num_parameters=0");
    bk_module *s2d = bk_nn_softmax2d(), *pr = bk_nn_prelu(3, 0.25f);
    MISUSE(bk_forward(s2d, bk_rand(BK_SHAPE(2, 3))), "Softmax2d", "(2, 3)", "3-d");
    MISUSE(bk_forward(pr, bk_rand(BK_SHAPE(2, 4))), "PReLU", "(2, 4)", "num_parameters=3");
    bk_module_free(s2d);
    bk_module_free(pr);
    /* dims are checked against each input, as torch does (negative dims count from the end) */
    bk_module *fl, *sm, *lsm;
    ACCEPTS((fl = bk_nn_flatten(3, -1)) != NULL, "dims are checked per input");
    ACCEPTS((sm = bk_nn_softmax(2)) != NULL, "dims are checked per input");
    ACCEPTS((lsm = bk_nn_log_softmax(-3)) != NULL, "dims are checked per input");
    bk_tensor *x = bk_rand(BK_SHAPE(2, 3));
    MISUSE(bk_forward(fl, x), "Flatten", "dimension 3 is out of range");
    MISUSE(bk_forward(sm, x), "Softmax", "dimension 2 is out of range");
    MISUSE(bk_forward(lsm, x), "LogSoftmax", "dimension -3 is out of range");
    bk_module_free(fl);
    bk_module_free(sm);
    bk_module_free(lsm);

    MISUSE(bk_nn_conv2d(0, 4, 3, 1, 1), "Conv2d", "in_channels=0");
    MISUSE(bk_nn_conv2d(2, -4, 3, 1, 1), "Conv2d", "out_channels=-4");
    MISUSE(bk_nn_conv2d(2, 4, 0, 1, 1), "Conv2d", "kernel_size (0, 0)");
    MISUSE(bk_nn_conv2d(2, 4, 3, 0, 1), "Conv2d", "stride (0, 0)");
    MISUSE(bk_nn_conv2d(2, 4, 3, 1, -1), "Conv2d", "padding (-1, -1)");
    MISUSE(bk_nn_conv2d(2, 4, INT64_MAX, 1, 0), "Conv2d", "too many elements");
    bk_module *cp;
    ACCEPTS((cp = bk_nn_conv2d(2, 4, 3, 1, INT64_MAX)) != NULL, "a huge padding is refused by the forward");
    MISUSE(bk_forward(cp, bk_rand(BK_SHAPE(1, 2, 4, 4))), "conv2d", "padding", "too large");
    bk_module_free(cp);
    bk_conv2d_opts o = BK_CONV2D_DEFAULTS, d0 = o, g0 = o, g3 = o;
    d0.dilation[1] = 0, g0.groups = 0, g3.groups = 3;
    MISUSE(bk_nn_conv2d_ex(2, 4, NULL, o, true), "Conv2d", "kernel_size is NULL");
    MISUSE(bk_nn_conv2d_ex(2, 4, (const int64_t[2]){3, -3}, o, true), "Conv2d", "kernel_size (3, -3)");
    MISUSE(bk_nn_conv2d_ex(2, 4, (const int64_t[2]){3, 3}, d0, true), "Conv2d", "dilation (1, 0)");
    MISUSE(bk_nn_conv2d_ex(2, 4, (const int64_t[2]){3, 3}, g0, true), "Conv2d", "groups=0");
    MISUSE(bk_nn_conv2d_ex(2, 4, (const int64_t[2]){3, 3}, g3, false), "Conv2d", "groups=3");

    bk_conv1d_opts c1 = BK_CONV1D_DEFAULTS;
    bk_conv_transpose1d_opts t1 = BK_CONV_TRANSPOSE1D_DEFAULTS, t1op = t1;
    bk_conv_transpose2d_opts t2 = BK_CONV_TRANSPOSE2D_DEFAULTS, t2g = t2;
    t1op.output_padding = 1, t2g.groups = 3;
    MISUSE(bk_nn_conv1d(0, 4, 3, c1, true), "Conv1d", "in_channels=0");
    MISUSE(bk_nn_conv1d(2, 4, 0, c1, true), "Conv1d(2, 4)", "kernel_size (0,)");
    MISUSE(bk_nn_conv1d(2, 4, INT64_MAX, c1, true), "Conv1d", "too many elements");
    MISUSE(bk_nn_conv_transpose1d(2, 4, 3, t1op, true), "ConvTranspose1d(2, 4)", "output_padding (1,)");
    MISUSE(bk_nn_conv_transpose2d(2, 4, NULL, t2, true), "ConvTranspose2d", "kernel_size is NULL");
    MISUSE(bk_nn_conv_transpose2d(2, 4, (const int64_t[2]){3, 3}, t2g, true), "ConvTranspose2d", "groups=3");
    bk_module *ct = bk_nn_conv_transpose2d(2, 4, (const int64_t[2]){3, 3}, t2, true);
    MISUSE(bk_forward(ct, bk_rand(BK_SHAPE(1, 3, 4, 4))), "ConvTranspose2d", "conv_transpose2d",
           "(1, 3, 4, 4)");
    bk_module_free(ct);
    MISUSE(bk_nn_max_pool2d_ex((bk_pool2d_opts){{3, 2}, {0, 0}, {1, 2}}, (const int64_t[2]){1, 1}, false),
           "MaxPool2d", "padding=2", "kernel_size=2");
    MISUSE(bk_nn_max_pool2d_ex((bk_pool2d_opts){{3, 2}, {0, 0}, {1, 1}}, NULL, false), "MaxPool2d",
           "dilation is NULL");
    MISUSE(bk_nn_max_pool2d_ex((bk_pool2d_opts){{3, 2}, {0, 0}, {1, 1}}, (const int64_t[2]){1, 0}, true),
           "MaxPool2d", "dilation=0");
    MISUSE(bk_nn_avg_pool2d_ex((bk_pool2d_opts){{3, 0}, {0, 0}, {1, 0}}, true, false), "AvgPool2d",
           "kernel_size=0");
    MISUSE(bk_nn_max_pool1d(0, 0, 0, 1, false), "MaxPool1d", "kernel_size=0");
    MISUSE(bk_nn_max_pool1d(3, 1, 1, -2, false), "MaxPool1d", "dilation=-2");
    MISUSE(bk_nn_avg_pool1d(2, -1, 0, false, true), "AvgPool1d", "stride=-1");
    MISUSE(bk_nn_avg_pool1d(2, 1, 2, false, true), "AvgPool1d", "at most half");
    bk_module *mp1 = bk_nn_max_pool1d(3, 2, 0, 1, true);
    MISUSE(bk_forward(mp1, bk_rand(BK_SHAPE(2, 3, 4, 4))), "MaxPool1d", "3-d input", "(2, 3, 4, 4)");
    MISUSE(bk_forward(mp1, bk_rand(BK_SHAPE(2, 3, 2))), "MaxPool1d", "max_pool2d", "larger than");
    bk_module_free(mp1);
    bk_norm_opts bno = BK_BATCH_NORM_DEFAULTS, bad_m = bno, none = bno;
    bad_m.momentum = 2.0f, none.momentum_none = true, none.momentum = NAN; /* ignored with momentum_none */
    MISUSE(bk_nn_batch_norm_opts(0, 2, bno), "BatchNorm2d", "num_features=0");
    MISUSE(bk_nn_batch_norm_opts(4, 3, bno), "BatchNorm", "ndim_expected");
    MISUSE(bk_nn_batch_norm_opts(4, 1, bad_m), "BatchNorm1d", "momentum=2");
    bk_module *bn_none;
    ACCEPTS((bn_none = bk_nn_batch_norm_opts(4, 2, none)) != NULL,
            "momentum_none: the momentum field is not read");
    bk_module_free(bn_none);
    MISUSE(bk_nn_instance_norm2d(-1, BK_INSTANCE_NORM_DEFAULTS), "InstanceNorm2d", "num_features=-1");
    MISUSE(bk_nn_instance_norm2d(3, none), "InstanceNorm2d", "momentum=None");
    bk_module *in2 = bk_nn_instance_norm2d(3, BK_INSTANCE_NORM_DEFAULTS);
    MISUSE(bk_forward(in2, bk_rand(BK_SHAPE(2, 4, 5, 5))), "InstanceNorm2d", "(N, 3, H, W)", "(2, 4, 5, 5)");
    MISUSE(bk_forward(in2, bk_rand(BK_SHAPE(2, 3, 1, 1))), "batch_norm", "more than 1 value");
    bk_module_free(in2);
    MISUSE(bk_nn_group_norm(4, 6, 1e-5f, true), "GroupNorm", "num_groups=4", "num_channels=6");
    MISUSE(bk_nn_group_norm(0, 6, 1e-5f, true), "GroupNorm", "num_groups=0");
    MISUSE(bk_nn_group_norm(2, 6, INFINITY, false), "GroupNorm", "eps=inf");
    MISUSE(bk_nn_layer_norm_ex(0, (const int64_t[]){4}, 1e-5f, false), "LayerNorm", "1 to 8 dims");
    MISUSE(bk_nn_layer_norm_ex(1, NULL, 1e-5f, false), "LayerNorm", "shape NULL");
    MISUSE(bk_nn_upsample((bk_interp_opts){{0, 0}, {0, 0}, BK_INTERP_NEAREST, false}), "Upsample",
           "give either");
    MISUSE(bk_nn_upsample((bk_interp_opts){{0, 0}, {2, 2}, BK_INTERP_NEAREST, true}), "Upsample",
           "align_corners");
    bk_module *up = bk_nn_upsample((bk_interp_opts){{0, 0}, {0.5, 0.5}, BK_INTERP_NEAREST, false});
    MISUSE(bk_forward(up, bk_rand(BK_SHAPE(1, 1, 1, 3))), "Upsample", "interpolate", "empty");
    bk_module_free(up);

    MISUSE(bk_nn_max_pool2d(0, 0, 0), "MaxPool2d", "kernel_size=0");
    MISUSE(bk_nn_max_pool2d(2, -1, 0), "MaxPool2d", "stride=-1");
    MISUSE(bk_nn_max_pool2d(2, 2, -1), "MaxPool2d", "padding=-1");
    MISUSE(bk_nn_max_pool2d(2, 2, 2), "MaxPool2d", "at most half");
    MISUSE(bk_nn_max_pool2d(2, 2, INT64_MAX), "MaxPool2d", "at most half");
    MISUSE(bk_nn_avg_pool2d(-3, 0, 0), "AvgPool2d", "kernel_size=-3");
    MISUSE(bk_nn_avg_pool2d(3, 1, INT64_MAX), "AvgPool2d", "at most half");
    MISUSE(bk_nn_adaptive_avg_pool2d(0, 1), "AdaptiveAvgPool2d", "(0, 1)");
    MISUSE(bk_nn_adaptive_avg_pool2d(1, -1), "AdaptiveAvgPool2d", "(1, -1)");

    MISUSE(bk_nn_batch_norm1d(0), "BatchNorm1d", "num_features=0");
    MISUSE(bk_nn_batch_norm2d(-2), "BatchNorm2d", "num_features=-2");
    MISUSE(bk_nn_batch_norm2d(INT64_MAX), "BatchNorm2d", "do not fit in memory");
    MISUSE(bk_nn_batch_norm_ex(4, 1e-5f, 0.1f, 3), "BatchNorm", "ndim_expected must be 1");
    MISUSE(bk_nn_batch_norm_ex(4, -1.0f, 0.1f, 1), "BatchNorm1d", "eps=-1");
    MISUSE(bk_nn_batch_norm_ex(4, 1e-5f, 2.0f, 2), "BatchNorm2d", "momentum=2");
    MISUSE(bk_nn_batch_norm_ex(4, NAN, 0.1f, 2), "BatchNorm2d", "eps=nan");

    const int64_t ns[2] = {2, 3}, negns[2] = {2, -3};
    MISUSE(bk_nn_layer_norm(0, ns, 1e-5f), "LayerNorm", "got 0");
    MISUSE(bk_nn_layer_norm(-1, ns, 1e-5f), "LayerNorm", "got -1");
    MISUSE(bk_nn_layer_norm(BK_MAX_DIMS + 1, ns, 1e-5f), "LayerNorm", "got 9");
    MISUSE(bk_nn_layer_norm(2, NULL, 1e-5f), "LayerNorm", "NULL");
    MISUSE(bk_nn_layer_norm(2, negns, 1e-5f), "LayerNorm", "positive dims");
    MISUSE(bk_nn_layer_norm(2, ns, -1e-5f), "LayerNorm", "eps");
    MISUSE(bk_nn_dropout(-0.5f), "Dropout", "-0.5");
    MISUSE(bk_nn_dropout(1.01f), "Dropout", "between 0 and 1");
    MISUSE(bk_nn_dropout(NAN), "Dropout", "nan");

    MISUSE(bk_nn_residual(-1, 4, true, 1), "Residual", "in_channels=-1");
    MISUSE(bk_nn_residual(4, 0, false, 1), "Residual", "out_channels=0");
    MISUSE(bk_nn_residual(4, 4, false, 0), "Residual", "strides=0");
    MISUSE(bk_nn_residual(4, 4, true, -2), "Residual", "strides=-2");
    const int64_t c2[2] = {4, 8}, c3[2] = {2, 4}, c2neg[2] = {4, -8};
    MISUSE(bk_nn_inception(3, 4, NULL, c3, 4), "Inception", "NULL");
    MISUSE(bk_nn_inception(3, 4, c2, NULL, 4), "Inception", "NULL");
    MISUSE(bk_nn_inception(-3, 4, c2, c3, 4), "Inception", "in_channels=-3");
    MISUSE(bk_nn_inception(3, 0, c2, c3, 4), "Inception", "out_channels=0");
    MISUSE(bk_nn_inception(3, 4, c2neg, c3, 4), "Inception", "out_channels=-8");
    MISUSE(bk_nn_inception(3, 4, c2, c3, -1), "Inception", "out_channels=-1");

    bk_module *lin = bk_nn_linear(2, 2);
    MISUSE(bk_nn_sequential(-1), "Sequential", "-1");
    MISUSE(bk_nn_sequential(2, bk_nn_relu(), NULL), "Sequential", "block 1 is NULL");
    MISUSE(bk_nn_sequential(1, &FOREIGN_M), "Sequential", "not a live module");
    bk_module *blocks[2] = {bk_nn_relu(), NULL};
    MISUSE(bk_nn_sequential_from(2, blocks), "Sequential", "block 1 is NULL");
    MISUSE(bk_nn_sequential_from(-2, blocks), "Sequential", "n = -2");
    MISUSE(bk_nn_sequential_from(2, NULL), "Sequential", "n = 2");
    bk_module *seq = bk_nn_sequential(1, bk_nn_relu());
    EACH_BAD_MODULE("Sequential", bk_nn_sequential_append(M, bk_nn_relu()));
    MISUSE(bk_nn_sequential_append(lin, bk_nn_relu()), "Sequential", "expected a Sequential, got Linear");
    MISUSE(bk_nn_sequential_append(seq, NULL), "Sequential", "NULL");
    MISUSE(bk_nn_sequential_append(seq, &FOREIGN_M), "Sequential", "not a live module");
    EACH_BAD_MODULE("Sequential", bk_nn_sequential_len(M));
    MISUSE(bk_nn_sequential_len(lin), "Sequential", "got Linear");
    EACH_BAD_MODULE("Sequential", bk_nn_sequential_get(M, 0));
    MISUSE(bk_nn_sequential_get(lin, 0), "Sequential", "got Linear");
    MISUSE(bk_nn_sequential_get(seq, 1), "Sequential", "index 1 is out of range (length 1)");
    MISUSE(bk_nn_sequential_get(seq, -2), "Sequential", "index -2");
    MISUSE(bk_nn_sequential_get(seq, INT32_MIN), "Sequential", "out of range");
    bk_module_free(seq);
    bk_module_free(lin);
}

TEST(attention_layers) {
    MISUSE(bk_nn_embedding(-1, 4), "Embedding", "num_embeddings=-1");
    MISUSE(bk_nn_embedding(4, -1), "Embedding", "embedding_dim=-1");
    MISUSE(bk_nn_embedding(INT64_MAX, 4), "Embedding", "too many elements");
    MISUSE(bk_nn_embedding_padded(4, 2, 4), "Embedding", "padding_idx=4");
    MISUSE(bk_nn_embedding_padded(4, 2, -5), "Embedding", "padding_idx=-5");
    MISUSE(bk_nn_embedding_padded(-4, 2, 0), "Embedding", "num_embeddings=-4");
    MISUSE(bk_nn_embedding_ex(4, 2, true, 4, true), "Embedding", "padding_idx=4");
    MISUSE(bk_nn_embedding_ex(4, -2, false, 0, true), "Embedding", "embedding_dim=-2");
    bk_module *emb_any;
    ACCEPTS((emb_any = bk_nn_embedding_ex(4, 2, false, 99, false)) != NULL,
            "padded false: padding_idx is not read (torch's None)");
    bk_module_free(emb_any);
    MISUSE(bk_nn_positional_encoding(0, 0.1f, 10), "PositionalEncoding", "num_hiddens=0");
    MISUSE(bk_nn_positional_encoding(4, 0.1f, -1), "PositionalEncoding", "max_len=-1");
    MISUSE(bk_nn_positional_encoding(4, 2.0f, 10), "Dropout", "between 0 and 1");
    MISUSE(bk_nn_positional_encoding(4, 0.1f, INT64_MAX), "PositionalEncoding", "too many elements");
    MISUSE(bk_nn_learned_positional_embedding(-1, 4), "LearnedPositionalEmbedding", "max_len=-1");
    MISUSE(bk_nn_learned_positional_embedding(4, 0), "LearnedPositionalEmbedding", "num_hiddens=0");
    bk_module *pe = bk_nn_positional_encoding(4, 0, 3);
    MISUSE(bk_forward(pe, bk_rand(BK_SHAPE(1, 5, 4))), "PositionalEncoding", "exceeds max_len=3");
    bk_module_free(pe);

    MISUSE(bk_nn_multihead_attention(8, 3, 0, true, false), "MultiheadAttention", "divisible by num_heads=3");
    MISUSE(bk_nn_multihead_attention(8, 0, 0, true, false), "MultiheadAttention", "num_heads=0");
    MISUSE(bk_nn_multihead_attention(8, -2, 0, true, false), "MultiheadAttention", "num_heads=-2");
    MISUSE(bk_nn_multihead_attention(-8, 2, 0, true, false), "MultiheadAttention", "embed_dim=-8");
    MISUSE(bk_nn_multihead_attention(8, 2, -0.1f, true, false), "MultiheadAttention", "dropout");
    MISUSE(bk_nn_multihead_attention(INT64_MAX - 1, 2, 0, true, false), "MultiheadAttention",
           "too many elements");

    bk_module *mha = bk_nn_multihead_attention(4, 2, 0, true, true), *lin = bk_nn_linear(4, 4);
    bk_tensor *q = bk_rand(BK_SHAPE(2, 3, 4)), *kv = bk_rand(BK_SHAPE(2, 5, 4)), *w = NULL;
    EACH_BAD_MODULE("multihead_attention", bk_mha_forward(M, q, kv, kv, NULL, NULL, false, true, NULL));
    MISUSE(bk_mha_forward(lin, q, kv, kv, NULL, NULL, false, true, NULL), "multihead_attention",
           "got Linear");
    EACH_BAD_TENSOR("MultiheadAttention", bk_mha_forward(mha, T, kv, kv, NULL, NULL, false, true, NULL));
    EACH_BAD_TENSOR("MultiheadAttention", bk_mha_forward(mha, q, T, kv, NULL, NULL, false, true, NULL));
    EACH_BAD_TENSOR("MultiheadAttention", bk_mha_forward(mha, q, kv, T, NULL, NULL, false, true, NULL));
    T = STALE;
    MISUSE(bk_mha_forward(mha, q, kv, kv, T, NULL, false, true, NULL), "key_padding_mask", "arena was reset");
    MISUSE(bk_mha_forward(mha, q, kv, kv, NULL, T, false, true, NULL), "attn_mask", "arena was reset");
    T = &FOREIGN;
    MISUSE(bk_mha_forward(mha, q, kv, kv, T, NULL, false, true, NULL), "key_padding_mask",
           "not a brick tensor");
    MISUSE(bk_mha_forward(mha, q, kv, kv, NULL, T, false, true, NULL), "attn_mask", "not a brick tensor");
    MISUSE(bk_mha_forward(mha, q, bk_rand(BK_SHAPE(2, 5, 3)), kv, NULL, NULL, false, true, NULL),
           "MultiheadAttention", "embedding dimension 4");
    MISUSE(bk_mha_forward(mha, q, kv, kv, bk_zeros(BK_SHAPE(2, 4)), NULL, false, true, NULL),
           "MultiheadAttention", "key_padding_mask (2, 4)");
    ACCEPTS(bk_mha_forward(mha, q, kv, kv, NULL, NULL, true, true, NULL) != NULL,
            "attn_weights NULL: the weights are not returned");
    ACCEPTS(bk_mha_forward(mha, q, kv, kv, NULL, NULL, true, false, &w) != NULL && w != NULL,
            "masks NULL: no masks");

    bk_transformer_config c = BK_TRANSFORMER_DEFAULTS(4, 2);
    c.dim_feedforward = 8;
    bk_transformer_config bad[7] = {c, c, c, c, c, c, c};
    bad[0].d_model = 0, bad[1].nhead = -2, bad[2].nhead = 3, bad[3].dim_feedforward = -1;
    bad[4].dropout = 1.5f, bad[5].activation = (bk_activation)7, bad[6].layer_norm_eps = -1;
    const char *why[7] = {"d_model=0", "nhead=-2",     "nhead=3", "dim_feedforward=-1",
                          "dropout",   "activation 7", "eps"};
    for (int i = 0; i < 7; i++) {
        MISUSE(bk_nn_transformer_encoder_layer(bad[i]), "TransformerEncoderLayer", why[i]);
        MISUSE(bk_nn_transformer_decoder_layer(bad[i]), "TransformerDecoderLayer", why[i]);
    }
    bk_module *enc_layer = bk_nn_transformer_encoder_layer(c),
              *dec_layer = bk_nn_transformer_decoder_layer(c);
    bk_tensor *src = bk_rand(BK_SHAPE(3, 2, 4)), *mem = bk_rand(BK_SHAPE(5, 2, 4));
    EACH_BAD_MODULE("transformer_encoder_layer_forward",
                    bk_transformer_encoder_layer_forward(M, src, NULL, NULL));
    MISUSE(bk_transformer_encoder_layer_forward(dec_layer, src, NULL, NULL),
           "transformer_encoder_layer_forward", "got TransformerDecoderLayer");
    EACH_BAD_TENSOR("TransformerEncoderLayer",
                    bk_transformer_encoder_layer_forward(enc_layer, T, NULL, NULL));
    T = STALE;
    MISUSE(bk_transformer_encoder_layer_forward(enc_layer, src, T, NULL), "attn_mask", "arena was reset");
    MISUSE(bk_transformer_encoder_layer_forward(enc_layer, src, NULL, T), "key_padding_mask",
           "arena was reset");
    MISUSE(bk_transformer_encoder_layer_forward(enc_layer, bk_rand(BK_SHAPE(3, 2, 5)), NULL, NULL),
           "TransformerEncoderLayer", "(3, 2, 5)");
    EACH_BAD_MODULE("transformer_decoder_layer_forward",
                    bk_transformer_decoder_layer_forward(M, src, mem, NULL, NULL, NULL, NULL));
    MISUSE(bk_transformer_decoder_layer_forward(enc_layer, src, mem, NULL, NULL, NULL, NULL),
           "transformer_decoder_layer_forward", "got TransformerEncoderLayer");
    EACH_BAD_TENSOR("TransformerDecoderLayer",
                    bk_transformer_decoder_layer_forward(dec_layer, T, mem, NULL, NULL, NULL, NULL));
    EACH_BAD_TENSOR("TransformerDecoderLayer",
                    bk_transformer_decoder_layer_forward(dec_layer, src, T, NULL, NULL, NULL, NULL));
    T = STALE;
    MISUSE(bk_transformer_decoder_layer_forward(dec_layer, src, mem, T, NULL, NULL, NULL), "attn_mask",
           "arena was reset");
    MISUSE(bk_transformer_decoder_layer_forward(dec_layer, src, mem, NULL, T, NULL, NULL), "attn_mask",
           "arena was reset");
    MISUSE(bk_transformer_decoder_layer_forward(dec_layer, src, mem, NULL, NULL, T, NULL), "key_padding_mask",
           "arena was reset");
    MISUSE(bk_transformer_decoder_layer_forward(dec_layer, src, mem, NULL, NULL, NULL, T), "key_padding_mask",
           "arena was reset");
    MISUSE(bk_forward(dec_layer, src), "forward needs the encoder output");

    /* the stacks take ownership of the layer and the norm, also on failure */
    MISUSE(bk_nn_transformer_encoder(NULL, 2, NULL), "TransformerEncoder", "got ?");
    MISUSE(bk_nn_transformer_encoder(bk_nn_linear(2, 2), 2, NULL), "TransformerEncoder", "got Linear");
    MISUSE(bk_nn_transformer_encoder(bk_nn_transformer_encoder_layer(c), 0, NULL), "TransformerEncoder",
           "num_layers=0");
    MISUSE(bk_nn_transformer_encoder(bk_nn_transformer_encoder_layer(c), -1,
                                     bk_nn_layer_norm(BK_SHAPE(4), 1e-5f)),
           "TransformerEncoder", "num_layers=-1");
    MISUSE(bk_nn_transformer_encoder(&FOREIGN_M, 1, NULL), "TransformerEncoder", "not a live module");
    MISUSE(bk_nn_transformer_encoder(bk_nn_transformer_encoder_layer(c), 1, &FOREIGN_M), "TransformerEncoder",
           "norm", "not a live module");
    MISUSE(bk_nn_transformer_decoder(NULL, 2, NULL), "TransformerDecoder", "got ?");
    MISUSE(bk_nn_transformer_decoder(bk_nn_transformer_encoder_layer(c), 2, NULL), "TransformerDecoder",
           "got TransformerEncoderLayer");
    MISUSE(bk_nn_transformer_decoder(bk_nn_transformer_decoder_layer(c), INT32_MIN, NULL),
           "TransformerDecoder", "num_layers=-2147483648");
    bk_module *enc = bk_nn_transformer_encoder(enc_layer, 1, NULL),
              *dec = bk_nn_transformer_decoder(dec_layer, 1, NULL);
    EACH_BAD_MODULE("transformer_encoder_forward", bk_transformer_encoder_forward(M, src, NULL, NULL));
    MISUSE(bk_transformer_encoder_forward(dec, src, NULL, NULL), "transformer_encoder_forward",
           "got TransformerDecoder");
    EACH_BAD_TENSOR("TransformerEncoder", bk_transformer_encoder_forward(enc, T, NULL, NULL));
    T = STALE;
    MISUSE(bk_transformer_encoder_forward(enc, src, T, NULL), "attn_mask", "arena was reset");
    MISUSE(bk_transformer_encoder_forward(enc, src, NULL, T), "key_padding_mask", "arena was reset");
    EACH_BAD_MODULE("transformer_decoder_forward",
                    bk_transformer_decoder_forward(M, src, mem, NULL, NULL, NULL, NULL));
    MISUSE(bk_transformer_decoder_forward(enc, src, mem, NULL, NULL, NULL, NULL),
           "transformer_decoder_forward", "got TransformerEncoder");
    EACH_BAD_TENSOR("TransformerDecoder",
                    bk_transformer_decoder_forward(dec, T, mem, NULL, NULL, NULL, NULL));
    EACH_BAD_TENSOR("TransformerDecoder",
                    bk_transformer_decoder_forward(dec, src, T, NULL, NULL, NULL, NULL));
    T = &FOREIGN;
    MISUSE(bk_transformer_decoder_forward(dec, src, mem, T, NULL, NULL, NULL), "attn_mask",
           "not a brick tensor");
    MISUSE(bk_transformer_decoder_forward(dec, src, mem, NULL, NULL, NULL, T), "key_padding_mask",
           "not a brick tensor");
    /* nn.Transformer */
    MISUSE(bk_nn_transformer(bad[2], 1, 1), "Transformer", "TransformerEncoderLayer", "nhead=3");
    MISUSE(bk_nn_transformer(c, 0, 1), "Transformer", "num_layers=0");
    MISUSE(bk_nn_transformer(c, 1, -1), "Transformer", "TransformerDecoder", "num_layers=-1");
    bk_module *trf = bk_nn_transformer(c, 1, 1);
    bk_tensor *tgt = bk_rand(BK_SHAPE(5, 2, 4));
    EACH_BAD_MODULE("transformer_forward",
                    bk_transformer_forward(M, src, tgt, NULL, NULL, NULL, NULL, NULL, NULL));
    MISUSE(bk_transformer_forward(dec_layer, src, tgt, NULL, NULL, NULL, NULL, NULL, NULL),
           "transformer_forward", "got TransformerDecoderLayer");
    EACH_BAD_TENSOR("Transformer", bk_transformer_forward(trf, T, tgt, NULL, NULL, NULL, NULL, NULL, NULL));
    EACH_BAD_TENSOR("Transformer", bk_transformer_forward(trf, src, T, NULL, NULL, NULL, NULL, NULL, NULL));
    MISUSE(bk_transformer_forward(trf, src, bk_rand(BK_SHAPE(5, 3, 4)), NULL, NULL, NULL, NULL, NULL, NULL),
           "Transformer", "batch number", "(3, 2, 4)", "(5, 3, 4)");
    MISUSE(bk_transformer_forward(trf, src, bk_rand(BK_SHAPE(5, 2, 6)), NULL, NULL, NULL, NULL, NULL, NULL),
           "Transformer", "d_model=4", "(5, 2, 6)");
    MISUSE(bk_transformer_forward(trf, src, tgt, NULL, bk_causal_mask(4), NULL, NULL, NULL, NULL),
           "TransformerDecoder");
    MISUSE(bk_forward(trf, src), "Transformer", "needs tgt");
    bk_module_free(trf);
    bk_module_free(enc);
    bk_module_free(dec);
    bk_module_free(mha);
    bk_module_free(lin);
}

/* ---- parameter initialisation (torch.nn.init) ----------------------------------------------------- */

TEST(parameter_init) {
    bk_tensor *w = bk_rand(BK_SHAPE(4, 3)), *v = bk_rand(BK_SHAPE(3));
    int64_t fi, fo;
    EACH_BAD_TENSOR("init_uniform", bk_init_uniform(T, NULL, 0, 1));
    MISUSE(bk_init_uniform(w, NULL, 1, 0), "init_uniform", "a=1 > b=0");
    MISUSE(bk_init_uniform(w, NULL, 0, INFINITY), "init_uniform", "b=inf", "finite");
    ACCEPTS(bk_init_uniform(w, NULL, 2, 2) == 0 && all_equal(w, 2), "a == b: the constant a");
    EACH_BAD_TENSOR("init_normal", bk_init_normal(T, NULL, 0, 1));
    MISUSE(bk_init_normal(w, NULL, 0, -1), "init_normal", "std=-1");
    MISUSE(bk_init_normal(w, NULL, NAN, 1), "init_normal", "mean=nan");
    ACCEPTS(bk_init_normal(w, NULL, 3, 0) == 0 && all_equal(w, 3), "std 0: the mean");
    EACH_BAD_TENSOR("init_constant", bk_init_constant(T, 1));
    ACCEPTS(bk_init_constant(w, NAN) == 0 && isnan(w->data[0]), "any value, as torch's constant_");
    EACH_BAD_TENSOR("init_zeros", bk_init_zeros(T));
    EACH_BAD_TENSOR("init_ones", bk_init_ones(T));
    EACH_BAD_TENSOR("init_fans", bk_init_fans(T, &fi, &fo));
    MISUSE(bk_init_fans(v, &fi, &fo), "init_fans", "2 or more dimensions", "(3,)");
    MISUSE(bk_init_fans(w, NULL, &fo), "init_fans", "NULL");
    MISUSE(bk_init_fans(w, &fi, NULL), "init_fans", "NULL");
    MISUSE(bk_init_gain(NULL, NAN), "init_gain", "nonlinearity is NULL");
    MISUSE(bk_init_gain("Relu", NAN), "init_gain", "unsupported nonlinearity 'Relu'");
    MISUSE(bk_init_gain("leaky_relu", INFINITY), "init_gain", "negative_slope=inf");
    ACCEPTS(bk_init_gain("relu", 7) == sqrt(2.0), "param is read for leaky_relu only, as torch");
    EACH_BAD_TENSOR("xavier_uniform", bk_init_xavier_uniform(T, NULL, 1));
    MISUSE(bk_init_xavier_uniform(v, NULL, 1), "xavier_uniform", "2 or more dimensions", "(3,)");
    MISUSE(bk_init_xavier_uniform(w, NULL, -1), "xavier_uniform", "gain=-1");
    EACH_BAD_TENSOR("xavier_normal", bk_init_xavier_normal(T, NULL, 1));
    MISUSE(bk_init_xavier_normal(v, NULL, 1), "xavier_normal", "(3,)");
    MISUSE(bk_init_xavier_normal(w, NULL, NAN), "xavier_normal", "gain=nan");
    EACH_BAD_TENSOR("kaiming_uniform", bk_init_kaiming_uniform(T, NULL, 0, BK_FAN_IN, "relu"));
    MISUSE(bk_init_kaiming_uniform(v, NULL, 0, BK_FAN_IN, "relu"), "kaiming_uniform", "(3,)");
    MISUSE(bk_init_kaiming_uniform(w, NULL, 0, BK_FAN_MODE_COUNT, "relu"), "kaiming_uniform", "mode 2");
    MISUSE(bk_init_kaiming_uniform(w, NULL, 0, BK_FAN_IN, NULL), "kaiming_uniform", "nonlinearity is NULL");
    EACH_BAD_TENSOR("kaiming_normal", bk_init_kaiming_normal(T, NULL, 0, BK_FAN_OUT, "relu"));
    MISUSE(bk_init_kaiming_normal(w, NULL, 0, (bk_fan_mode)-1, "relu"), "kaiming_normal", "mode -1");
    MISUSE(bk_init_kaiming_normal(w, NULL, 0, BK_FAN_IN, "gelu"), "kaiming_normal", "unsupported", "'gelu'");
    EACH_BAD_TENSOR("orthogonal", bk_init_orthogonal(T, NULL, 1));
    MISUSE(bk_init_orthogonal(v, NULL, 1), "orthogonal", "2 or more dimensions", "(3,)");
    MISUSE(bk_init_orthogonal(w, NULL, INFINITY), "orthogonal", "gain=inf");
    EACH_BAD_TENSOR("trunc_normal", bk_init_trunc_normal(T, NULL, 0, 1, -2, 2));
    MISUSE(bk_init_trunc_normal(w, NULL, 0, 0, -2, 2), "trunc_normal", "std > 0", "std=0");
    MISUSE(bk_init_trunc_normal(w, NULL, 0, 1, 2, 2), "trunc_normal", "a < b", "a=2, b=2");
    MISUSE(bk_init_trunc_normal(w, NULL, 0, 1, NAN, 2), "trunc_normal", "a=nan");
    MISUSE(bk_init_trunc_normal(w, NULL, INFINITY, 1, -2, 2), "trunc_normal", "mean=inf");
    ACCEPTS(bk_init_trunc_normal(w, NULL, 0, 1, -INFINITY, INFINITY) == 0 && isfinite(w->data[0]),
            "infinite bounds: an untruncated normal");
}

/* ---- containers (ModuleList, ModuleDict) ------------------------------------------------------------ */

TEST(containers) {
    bk_module *l = bk_nn_module_list(), *d = bk_nn_module_dict();
    CANNOT_FAIL(freed(bk_nn_module_list()), "no arguments (out of memory aside)");
    CANNOT_FAIL(freed(bk_nn_module_dict()), "no arguments (out of memory aside)");
    EACH_BAD_MODULE("ModuleList.append", bk_nn_module_list_append(M, bk_nn_relu()));
    MISUSE(bk_nn_module_list_append(d, bk_nn_relu()), "ModuleList.append",
           "expected a ModuleList, got ModuleDict");
    MISUSE(bk_nn_module_list_append(l, NULL), "child \"0\" is NULL");
    MISUSE(bk_nn_module_list_append(l, &FOREIGN_M), "child \"0\"", "not a live module");
    EACH_BAD_MODULE("ModuleDict.set", bk_nn_module_dict_set(M, "k", bk_nn_relu()));
    MISUSE(bk_nn_module_dict_set(l, "k", bk_nn_relu()), "ModuleDict.set",
           "expected a ModuleDict, got ModuleList");
    MISUSE(bk_nn_module_dict_set(d, NULL, bk_nn_relu()), "ModuleDict", "invalid name");
    MISUSE(bk_nn_module_dict_set(d, "a.b", bk_nn_relu()), "ModuleDict", "invalid name \"a.b\"");
    MISUSE(bk_nn_module_dict_set(d, "k", NULL), "child \"k\" is NULL");
    CHECK(bk_nn_module_dict_set(d, "k", bk_nn_relu()) == 0);
    MISUSE(bk_nn_module_dict_set(d, "k", &FOREIGN_M), "ModuleDict.set", "not a live module");
    ACCEPTS(bk_nn_module_dict_set(d, "k", bk_nn_tanh()) == 0 &&
                !strcmp(bk_module_name(bk_module_child(d, 0)), "Tanh"),
            "an existing key: replaced in place, as torch's dict[key] = block");
    MISUSE(bk_forward(l, ones(BK_SHAPE(2))), "ModuleList has no forward");
    bk_module_free(l);
    bk_module_free(d);
}

/* ---- forward hooks ------------------------------------------------------------------------------------ */

static bk_tensor *pre_same(bk_module *m, bk_tensor *x, void *ud) { return (void)m, (void)ud, x; }
static bk_tensor *post_same(bk_module *m, bk_tensor *x, bk_tensor *y, void *ud) {
    return (void)m, (void)x, (void)ud, y;
}

static bk_tensor *bw_keep(bk_module *m, const bk_tensor *gi, const bk_tensor *go, void *ud) {
    return (void)m, (void)gi, (void)go, (void)ud, NULL;
}
static bk_tensor *grad_keep(bk_tensor *t, bk_tensor *g, void *ud) { return (void)t, (void)g, (void)ud, NULL; }

TEST(forward_hooks) {
    bk_module *lin = bk_nn_linear(2, 2);
    EACH_BAD_MODULE("module_add_forward_pre_hook", bk_module_add_forward_pre_hook(M, pre_same, NULL));
    MISUSE(bk_module_add_forward_pre_hook(lin, NULL, NULL), "module_add_forward_pre_hook", "Linear",
           "fn is NULL");
    EACH_BAD_MODULE("module_add_forward_hook", bk_module_add_forward_hook(M, post_same, NULL));
    MISUSE(bk_module_add_forward_hook(lin, NULL, NULL), "module_add_forward_hook", "fn is NULL");
    ACCEPTS(bk_module_add_forward_hook(lin, post_same, NULL) == 0, "ud NULL: the hook's business");
    EACH_BAD_MODULE("module_remove_hook", bk_module_remove_hook(M, 0));
    MISUSE(bk_module_remove_hook(lin, 7), "module_remove_hook", "Linear has no hook 7");
    MISUSE(bk_module_remove_hook(lin, -1), "module_remove_hook", "no hook -1");
    CHECK(bk_module_remove_hook(lin, 0) == 0);
    MISUSE(bk_module_remove_hook(lin, 0), "module_remove_hook", "no hook 0");
    EACH_BAD_MODULE("module_add_backward_hook", bk_module_add_backward_hook(M, bw_keep, NULL));
    MISUSE(bk_module_add_backward_hook(lin, NULL, NULL), "module_add_backward_hook", "Linear", "fn is NULL");
    ACCEPTS(bk_module_add_backward_hook(lin, bw_keep, NULL) == 1, "ud NULL: the hook's business");
    bk_module_free(lin);

    /* tensor hooks */
    bk_tensor *p = bk_requires_grad(bk_rand(BK_SHAPE(2)), true), *data = bk_rand(BK_SHAPE(2));
    EACH_BAD_TENSOR("tensor_register_hook", bk_tensor_register_hook(T, grad_keep, NULL));
    MISUSE(bk_tensor_register_hook(p, NULL, NULL), "tensor_register_hook", "fn is NULL");
    MISUSE(bk_tensor_register_hook(data, grad_keep, NULL), "tensor_register_hook", "(2,)",
           "does not require grad");
    ACCEPTS(bk_tensor_register_hook(p, grad_keep, NULL) == 0, "ud NULL: the hook's business");
    EACH_BAD_TENSOR("tensor_remove_hook", bk_tensor_remove_hook(T, 0));
    MISUSE(bk_tensor_remove_hook(p, 3), "tensor_remove_hook", "no hook 3");
}

TEST(recurrent_layers) {
    MISUSE(bk_nn_rnn_cell(BK_LSTM, 0, 4, true), "LSTMCell", "input_size=0");
    MISUSE(bk_nn_rnn_cell(BK_GRU, 3, -1, true), "GRUCell", "hidden_size=-1");
    MISUSE(bk_nn_rnn_cell((bk_rnn_mode)9, 3, 4, true), "rnn_cell", "unknown mode 9");
    MISUSE(bk_nn_rnn_cell(BK_RNN_TANH, 3, INT64_MAX / 2, true), "RNNCell", "not huge");
    bk_rnn_config c = BK_RNN_DEFAULTS(BK_LSTM, 3, 4);
    bk_rnn_config bad[4] = {c, c, c, c};
    bad[0].num_layers = 0, bad[1].dropout = 1.5f, bad[2].input_size = -3, bad[3].mode = (bk_rnn_mode)-1;
    const char *why[4] = {"num_layers=0", "dropout", "input_size=-3", "unknown mode -1"};
    for (int i = 0; i < 4; i++) MISUSE(bk_nn_rnn(bad[i]), i < 3 ? "LSTM" : "rnn", why[i]);

    bk_module *cell = bk_nn_rnn_cell(BK_LSTM, 3, 4, true), *lstm = bk_nn_rnn(c), *lin = bk_nn_linear(3, 4);
    bk_tensor *x = bk_rand(BK_SHAPE(2, 3)), *h = bk_zeros(BK_SHAPE(2, 4)), *c_out = NULL;
    EACH_BAD_MODULE("rnn_cell", bk_rnn_cell_forward(M, x, h, h, &c_out));
    MISUSE(bk_rnn_cell_forward(lin, x, h, h, &c_out), "rnn_cell", "got Linear");
    EACH_BAD_TENSOR("LSTMCell(3, 4)", bk_rnn_cell_forward(cell, T, h, h, &c_out));
    T = STALE;
    MISUSE(bk_rnn_cell_forward(cell, x, T, h, &c_out), "rnn_cell: h", "arena was reset");
    MISUSE(bk_rnn_cell_forward(cell, x, h, T, &c_out), "rnn_cell: c", "arena was reset");
    MISUSE(bk_rnn_cell_forward(cell, bk_rand(BK_SHAPE(2, 5)), h, h, &c_out), "LSTMCell(3, 4)",
           "input (2, 5)");
    ACCEPTS(bk_rnn_cell_forward(cell, x, NULL, NULL, NULL) != NULL, "h, c NULL: zero states; c_out NULL");

    bk_tensor *seq = bk_rand(BK_SHAPE(5, 2, 3)), *h0 = bk_zeros(BK_SHAPE(1, 2, 4)), *hn = NULL, *cn = NULL;
    EACH_BAD_MODULE("rnn", bk_rnn_forward(M, seq, h0, h0, NULL, &hn, &cn));
    MISUSE(bk_rnn_forward(cell, seq, h0, h0, NULL, &hn, &cn), "rnn", "got LSTMCell");
    EACH_BAD_TENSOR("LSTM(3, 4)", bk_rnn_forward(lstm, T, h0, h0, NULL, &hn, &cn));
    T = STALE;
    MISUSE(bk_rnn_forward(lstm, seq, T, h0, NULL, &hn, &cn), "rnn: h0", "arena was reset");
    MISUSE(bk_rnn_forward(lstm, seq, h0, T, NULL, &hn, &cn), "rnn: c0", "arena was reset");
    MISUSE(bk_rnn_forward(lstm, seq, h, h0, NULL, &hn, &cn), "LSTM(3, 4)", "h0 (2, 4)");
    MISUSE(bk_rnn_forward(lstm, seq, NULL, NULL, (const int64_t[]){0, 5}, &hn, &cn), "LSTM(3, 4)",
           "lengths[0]=0");
    ACCEPTS(bk_rnn_forward(lstm, seq, NULL, NULL, NULL, NULL, NULL) != NULL,
            "states, lengths, h_n, c_n NULL: zero states, full length, not returned");
    bk_module_free(cell);
    bk_module_free(lstm);
    bk_module_free(lin);
}
