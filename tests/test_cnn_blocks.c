/* test_cnn_blocks.c - the CNN layers and blocks (Conv2d, pooling, BatchNorm, LayerNorm,
 * Dropout, GELU, Softmax, Residual, Inception) and the CNN models of the zoo (lenet,
 * resnet, googlenet): errors, print(net), parameter counts, modes, statistics, shapes and
 * gradient checks. (Values against PyTorch: tests/test_parity.c.)
 *
 * Expected strings and counts come from PyTorch 1.13 (/usr/bin/python3), with the classes
 * written as D2L writes them (see src/nn/residual.c and src/nn/inception.c) and the
 * models as src/models/zoo.c builds them:
 *
 *   lenet = nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2, 2),
 *       nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2, 2), nn.Flatten(),
 *       nn.Linear(16*5*5, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10))
 *   def stage(i, o, first):
 *       return nn.Sequential(Residual(i, o) if first else Residual(i, o, use_1x1conv=True, strides=2),
 *                            Residual(o, o))
 *   resnet = nn.Sequential(nn.Sequential(nn.Conv2d(1, w, 3, padding=1), nn.BatchNorm2d(w), nn.ReLU()),
 *       stage(w, w, True), stage(w, 2*w, False), stage(2*w, 4*w, False), stage(4*w, 8*w, False),
 *       nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten(), nn.Linear(8*w, 10))
 *   b1 = nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(3, stride=2, padding=1))
 *   b2 = nn.Sequential(Inception(32, 16, (24, 32), (4, 8), 8), Inception(64, 32, (32, 48), (8, 24), 16),
 *                      nn.MaxPool2d(3, stride=2, padding=1))
 *   b3 = nn.Sequential(Inception(120, 48, (24, 52), (4, 12), 16), Inception(128, 64, (40, 80), (8, 32), 32),
 *                      nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten())
 *   googlenet = nn.Sequential(b1, b2, b3, nn.Linear(208, 10))
 *   sum(p.numel() for p in net.parameters()), len(net.state_dict()), print(net)
 */
#include "test.h"

/* Gradient tolerances, as in test_ops.c: float32 forward, central differences in double. */
#define EPS 1e-3
#define ATOL 5e-3
#define RTOL 1e-2

/* True when print(m) is exactly `want`; prints both otherwise. */
static bool repr_is(const bk_module *m, const char *want) {
    char got[4096];
    int n = bk_module_repr(m, got, sizeof got);
    if (n >= 0 && (size_t)n < sizeof got && !strcmp(got, want)) return true;
    fprintf(stderr, "  repr mismatch:\n--- got\n%s\n--- want (PyTorch)\n%s\n", n >= 0 ? got : bk_last_error(),
            want);
    return false;
}

static bool shape_is(const bk_tensor *t, int ndim, const int64_t *shape) {
    if (!t || t->ndim != ndim) return false;
    for (int i = 0; i < ndim; i++)
        if (t->shape[i] != shape[i]) return false;
    return true;
}

/* max |a - b| (infinity for missing tensors or different sizes) */
static double max_diff(const bk_tensor *a, const bk_tensor *b) {
    if (!a || !b || a->numel != b->numel) return INFINITY;
    double d = 0;
    for (int64_t i = 0; i < a->numel; i++)
        if (fabs((double)a->data[i] - b->data[i]) > d) d = fabs((double)a->data[i] - b->data[i]);
    return d;
}

static bk_module *model(const char *spec) { return bk_model_build(spec, BK_SHAPE(1, 28, 28), 10, NULL, 0); }

/* ---- errors name the layer and the shapes --------------------------------------------- */

TEST(conv_errors) {
    bk_module *conv = bk_nn_conv2d(3, 6, 5, 1, 0);
    CHECK(conv != NULL);
    /* kernel larger than the padded input */
    CHECK_ERR(bk_forward(conv, bk_zeros(BK_SHAPE(2, 3, 4, 4))),
              "in Conv2d(3, 6, kernel_size=(5, 5), stride=(1, 1)): conv2d: kernel (5, 5)");
    CHECK_ERR(bk_forward(conv, bk_zeros(BK_SHAPE(2, 3, 4, 4))),
              "larger than the padded input (4, 4) of (2, 3, 4, 4)");
    /* channels that don't match */
    CHECK_ERR(bk_forward(conv, bk_zeros(BK_SHAPE(2, 4, 8, 8))), "in Conv2d(3, 6, ");
    CHECK_ERR(bk_forward(conv, bk_zeros(BK_SHAPE(2, 4, 8, 8))), "but input (2, 4, 8, 8) has 4 channels");
    /* a 3-d input to a 2-d layer */
    CHECK_ERR(bk_forward(conv, bk_zeros(BK_SHAPE(3, 8, 8))),
              "expected a 4-d input (N, C, H, W), got (3, 8, 8)");
    bk_module_free(conv);

    bk_conv2d_opts o = BK_CONV2D_DEFAULTS;
    const int64_t k3[2] = {3, 3};
    o.groups = 4;
    CHECK_ERR(bk_nn_conv2d_ex(4, 6, k3, o, true), "Conv2d(4, 6): groups=4 must be positive and divide both");
    o.groups = 3;
    CHECK_ERR(bk_nn_conv2d_ex(4, 6, k3, o, true), "groups=3");
    o.groups = 0;
    CHECK_ERR(bk_nn_conv2d_ex(4, 4, k3, o, true), "groups=0");
    o = BK_CONV2D_DEFAULTS;
    o.dilation[1] = 0;
    CHECK_ERR(bk_nn_conv2d_ex(4, 4, k3, o, true), "dilation (1, 0) must be positive");
    CHECK_ERR(bk_nn_conv2d(1, 6, 5, 0, 2), "Conv2d(1, 6): stride (0, 0) must be positive");
    CHECK_ERR(bk_nn_conv2d(1, 6, 0, 1, 0), "kernel_size (0, 0) must be positive");
    CHECK_ERR(bk_nn_conv2d(1, 6, 3, 1, -1), "padding (-1, -1) must be non-negative");
    CHECK_ERR(bk_nn_conv2d(0, 6, 3, 1, 0), "in_channels=0 and out_channels=6 must be positive");

    /* a grouped convolution: the weight holds in/groups channels */
    o = BK_CONV2D_DEFAULTS;
    o.groups = 2;
    bk_module *g = bk_nn_conv2d_ex(4, 6, k3, o, false);
    CHECK(g && bk_module_get(g, "weight")->shape[1] == 2 && !bk_module_get(g, "bias"));
    bk_tensor *y = bk_forward(g, bk_randn(BK_SHAPE(2, 4, 5, 5)));
    CHECK(shape_is(y, BK_SHAPE(2, 6, 3, 3)));
    bk_module_free(g);
}

TEST(pool_errors) {
    bk_module *mp = bk_nn_max_pool2d(4, 0, 0);
    CHECK_ERR(bk_forward(mp, bk_zeros(BK_SHAPE(1, 2, 3, 3))),
              "in MaxPool2d(kernel_size=4, stride=4, padding=0, dilation=1, ceil_mode=False): max_pool2d: "
              "kernel (4, 4) "
              "is larger than the padded input (3, 3) of (1, 2, 3, 3)");
    CHECK_ERR(bk_forward(mp, bk_zeros(BK_SHAPE(2, 8, 8))),
              "max_pool2d: expected a 4-d input (N, C, H, W), got (2, 8, 8)");
    bk_module_free(mp);
    bk_module *ap = bk_nn_adaptive_avg_pool2d(1, 1);
    CHECK_ERR(bk_forward(ap, bk_zeros(BK_SHAPE(2, 8))), "in AdaptiveAvgPool2d(output_size=(1, 1))");
    bk_module_free(ap);
    CHECK_ERR(bk_nn_max_pool2d(2, -1, 0), "MaxPool2d: kernel_size=2 must be positive, stride=-1");
    CHECK_ERR(bk_nn_avg_pool2d(0, 1, 0), "AvgPool2d: kernel_size=0 must be positive");
    CHECK_ERR(bk_nn_max_pool2d(3, 1, 2), "MaxPool2d: padding=2 should be at most half of kernel_size=3");
    CHECK_ERR(bk_nn_adaptive_avg_pool2d(0, 1), "AdaptiveAvgPool2d: output_size (0, 1) must be positive");
}

TEST(norm_and_dropout_errors) {
    bk_module *bn2 = bk_nn_batch_norm2d(6), *bn1 = bk_nn_batch_norm1d(6),
              *ln = bk_nn_layer_norm(BK_SHAPE(8), 1e-5f);
    CHECK_ERR(bk_forward(bn2, bk_zeros(BK_SHAPE(4, 6, 8))),
              "BatchNorm2d: expected 4D input (got 3D input (4, 6, 8))");
    CHECK_ERR(bk_forward(bn2, bk_zeros(BK_SHAPE(4, 5, 2, 2))),
              "BatchNorm2d: expected 6 channels (num_features), got 5 in input (4, 5, 2, 2)");
    CHECK_ERR(bk_forward(bn1, bk_zeros(BK_SHAPE(4, 6, 2, 2))),
              "BatchNorm1d: expected 2D or 3D input (got 4D input");
    CHECK_ERR(bk_forward(bn1, bk_zeros(BK_SHAPE(6))),
              "BatchNorm1d: expected 2D or 3D input (got 1D input (6,))");
    /* training needs more than one value per channel, as in torch */
    CHECK_ERR(bk_forward(bn1, bk_zeros(BK_SHAPE(1, 6))),
              "expected more than 1 value per channel when training");
    CHECK(bk_module_get(bn1, "num_batches_tracked")->data[0] == 0.0f); /* failed batches don't count */
    CHECK_ERR(bk_forward(ln, bk_zeros(BK_SHAPE(2, 7))),
              "in LayerNorm((8,), eps=1e-05, elementwise_affine=True)");
    bk_module_free(bn2);
    bk_module_free(bn1);
    bk_module_free(ln);
    CHECK_ERR(bk_nn_batch_norm2d(0), "BatchNorm2d: num_features=0 must be positive");
    CHECK_ERR(bk_nn_batch_norm_ex(4, 1e-5f, 0.1f, 3),
              "ndim_expected must be 1 (BatchNorm1d) or 2 (BatchNorm2d)");
    CHECK_ERR(bk_nn_batch_norm_ex(4, 1e-5f, 1.5f, 2), "momentum=1.5 in [0, 1]");
    CHECK_ERR(bk_nn_layer_norm(0, NULL, 1e-5f), "LayerNorm: normalized_shape needs 1 to 8 dims");
    CHECK_ERR(bk_nn_layer_norm(BK_SHAPE(4, 0), 1e-5f),
              "LayerNorm: normalized_shape (4, 0) must have positive dims");
    CHECK_ERR(bk_nn_dropout(1.5f), "Dropout: dropout probability has to be between 0 and 1, but got 1.5");
    CHECK_ERR(bk_nn_dropout(-0.1f), "between 0 and 1");
}

TEST(block_errors) {
    CHECK_ERR(bk_nn_residual(3, 6, true, 0), "Residual(3, 6): strides=0 must be positive");
    CHECK_ERR(bk_nn_residual(0, 6, false, 1), "Residual: child \"conv1\": Conv2d: in_channels=0");
    CHECK_ERR(bk_nn_inception(4, 2, (const int64_t[2]){0, 5}, (const int64_t[2]){1, 2}, 3),
              "Inception: child \"p2_1\": Conv2d: in_channels=4 and out_channels=0 must be positive");
    CHECK_ERR(bk_nn_inception(4, 2, NULL, (const int64_t[2]){1, 2}, 3), "Inception: c2 and c3");

    /* without a 1x1 convolution the shortcut must already have the output's shape */
    bk_module *r = bk_nn_residual(3, 6, false, 1);
    CHECK_ERR(bk_forward(r, bk_randn(BK_SHAPE(2, 3, 4, 4))),
              "Residual: the convolutions give (2, 6, 4, 4) but the shortcut (the input, no 1x1 conv) is (2, "
              "3, 4, 4)");
    /* an inner layer's failure names that layer, not the block */
    CHECK_ERR(bk_forward(r, bk_randn(BK_SHAPE(2, 4, 4, 4))), "in Conv2d(3, 6, kernel_size=(3, 3)");
    bk_module_free(r);
    bk_module *inc = bk_nn_inception(4, 2, (const int64_t[2]){3, 5}, (const int64_t[2]){1, 2}, 3);
    CHECK_ERR(bk_forward(inc, bk_randn(BK_SHAPE(2, 3, 5, 5))), "in Conv2d(4, 2, kernel_size=(1, 1)");
    CHECK_ERR(bk_forward(inc, bk_randn(BK_SHAPE(3, 5, 5))), "expected a 4-d input");
    bk_module_free(inc);

    /* CNN models need image inputs (C, H, W) */
    CHECK_ERR(bk_model_build("lenet", BK_SHAPE(784), 10, NULL, 0),
              "model lenet: expects image inputs of shape (C, H, W), got (784,)");
    CHECK_ERR(bk_model_build("resnet", BK_SHAPE(28, 28), 10, NULL, 0), "model resnet: expects image inputs");
    CHECK_ERR(bk_model_build("googlenet", BK_SHAPE(1, 1, 28, 28), 10, NULL, 0),
              "model googlenet: expects image inputs");
    CHECK_ERR(bk_model_build("lenet", BK_SHAPE(1, 10, 28), 10, NULL, 0),
              "LeNet needs H and W of at least 12");
    CHECK_ERR(bk_model_build("resnet:width=0", BK_SHAPE(1, 28, 28), 10, NULL, 0),
              "width must be a positive integer");
}

/* ---- print(net) is PyTorch's text ------------------------------------------------------ */

TEST(layer_reprs) {
    const int64_t k35[2] = {3, 5};
    bk_conv2d_opts o = BK_CONV2D_DEFAULTS;
    o.stride[1] = 2, o.padding[0] = 1, o.padding[1] = 2, o.dilation[0] = o.dilation[1] = 2, o.groups = 2;
    bk_conv2d_opts o2 = BK_CONV2D_DEFAULTS;
    o2.stride[0] = o2.stride[1] = 2, o2.padding[0] = o2.padding[1] = 1;
    bk_conv2d_opts o3 = BK_CONV2D_DEFAULTS;
    o3.dilation[0] = 2;
    struct {
        bk_module *m;
        const char *want;
    } cases[] = {
        {bk_nn_conv2d(1, 6, 5, 1, 2), "Conv2d(1, 6, kernel_size=(5, 5), stride=(1, 1), padding=(2, 2))"},
        {bk_nn_conv2d(6, 16, 5, 1, 0), "Conv2d(6, 16, kernel_size=(5, 5), stride=(1, 1))"},
        {bk_nn_conv2d_ex(3, 6, (const int64_t[2]){3, 3}, o2, false),
         "Conv2d(3, 6, kernel_size=(3, 3), stride=(2, 2), padding=(1, 1), bias=False)"},
        {bk_nn_conv2d_ex(4, 8, k35, o, true),
         "Conv2d(4, 8, kernel_size=(3, 5), stride=(1, 2), padding=(1, 2), dilation=(2, 2), groups=2)"},
        {bk_nn_conv2d_ex(4, 8, (const int64_t[2]){3, 3}, o3, true),
         "Conv2d(4, 8, kernel_size=(3, 3), stride=(1, 1), dilation=(2, 1))"},
        {bk_nn_conv1d(3, 5, 3, (bk_conv1d_opts){1, 1, 1, 1}, true),
         "Conv1d(3, 5, kernel_size=(3,), stride=(1,), padding=(1,))"},
        {bk_nn_conv1d(4, 6, 3, (bk_conv1d_opts){2, 2, 2, 2}, false),
         "Conv1d(4, 6, kernel_size=(3,), stride=(2,), padding=(2,), dilation=(2,), groups=2, bias=False)"},
        {bk_nn_conv_transpose2d(4, 6, (const int64_t[2]){3, 2},
                                (bk_conv_transpose2d_opts){{1, 2}, {2, 0}, {0, 1}, {2, 1}, 2}, false),
         "ConvTranspose2d(4, 6, kernel_size=(3, 2), stride=(1, 2), padding=(2, 0), dilation=(2, 1), "
         "output_padding=(0, 1), groups=2, bias=False)"},
        {bk_nn_conv_transpose2d(8, 4, (const int64_t[2]){4, 4},
                                (bk_conv_transpose2d_opts){{2, 2}, {1, 1}, {0, 0}, {1, 1}, 1}, true),
         "ConvTranspose2d(8, 4, kernel_size=(4, 4), stride=(2, 2), padding=(1, 1))"},
        {bk_nn_conv_transpose1d(4, 6, 3, (bk_conv_transpose1d_opts){3, 1, 2, 1, 2}, true),
         "ConvTranspose1d(4, 6, kernel_size=(3,), stride=(3,), padding=(1,), output_padding=(2,), groups=2)"},
        {bk_nn_max_pool2d(2, 2, 0),
         "MaxPool2d(kernel_size=2, stride=2, padding=0, dilation=1, ceil_mode=False)"},
        {bk_nn_max_pool2d(2, 0, 0),
         "MaxPool2d(kernel_size=2, stride=2, padding=0, dilation=1, ceil_mode=False)"},
        {bk_nn_max_pool2d(3, 1, 1),
         "MaxPool2d(kernel_size=3, stride=1, padding=1, dilation=1, ceil_mode=False)"},
        {bk_nn_max_pool2d_ex((bk_pool2d_opts){{3, 2}, {2, 1}, {1, 1}}, (const int64_t[2]){2, 2}, true),
         "MaxPool2d(kernel_size=(3, 2), stride=(2, 1), padding=1, dilation=2, ceil_mode=True)"},
        {bk_nn_avg_pool2d_ex((bk_pool2d_opts){{3, 2}, {2, 1}, {1, 1}}, true, false),
         "AvgPool2d(kernel_size=(3, 2), stride=(2, 1), padding=1)"},
        {bk_nn_max_pool1d(3, 0, 0, 1, false),
         "MaxPool1d(kernel_size=3, stride=3, padding=0, dilation=1, ceil_mode=False)"},
        {bk_nn_max_pool1d(3, 2, 1, 2, true),
         "MaxPool1d(kernel_size=3, stride=2, padding=1, dilation=2, ceil_mode=True)"},
        {bk_nn_avg_pool1d(3, 2, 1, true, false), "AvgPool1d(kernel_size=(3,), stride=(2,), padding=(1,))"},
        {bk_nn_avg_pool2d(2, 0, 0), "AvgPool2d(kernel_size=2, stride=2, padding=0)"},
        {bk_nn_avg_pool2d(3, 2, 1), "AvgPool2d(kernel_size=3, stride=2, padding=1)"},
        {bk_nn_adaptive_avg_pool2d(1, 1), "AdaptiveAvgPool2d(output_size=(1, 1))"},
        {bk_nn_upsample((bk_interp_opts){{0, 0}, {2, 2}, BK_INTERP_NEAREST, false}),
         "Upsample(scale_factor=2.0, mode=nearest)"},
        {bk_nn_upsample((bk_interp_opts){{7, 4}, {0, 0}, BK_INTERP_NEAREST, false}),
         "Upsample(size=(7, 4), mode=nearest)"},
        {bk_nn_upsample((bk_interp_opts){{0, 0}, {0.6, 1.5}, BK_INTERP_BILINEAR, false}),
         "Upsample(scale_factor=(0.6, 1.5), mode=bilinear)"},
        {bk_nn_upsample((bk_interp_opts){{5, 5}, {0, 0}, BK_INTERP_BILINEAR, true}),
         "Upsample(size=5, mode=bilinear)"},
        {bk_nn_adaptive_avg_pool2d(2, 3), "AdaptiveAvgPool2d(output_size=(2, 3))"},
        {bk_nn_batch_norm2d(6),
         "BatchNorm2d(6, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True)"},
        {bk_nn_batch_norm1d(6),
         "BatchNorm1d(6, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True)"},
        {bk_nn_batch_norm_ex(6, 1e-3f, 0.2f, 2),
         "BatchNorm2d(6, eps=0.001, momentum=0.2, affine=True, track_running_stats=True)"},
        {bk_nn_layer_norm_ex(BK_SHAPE(4, 6), 1e-5f, false),
         "LayerNorm((4, 6), eps=1e-05, elementwise_affine=False)"},
        {bk_nn_group_norm(2, 6, 1e-5f, true), "GroupNorm(2, 6, eps=1e-05, affine=True)"},
        {bk_nn_group_norm(3, 3, 1e-5f, false), "GroupNorm(3, 3, eps=1e-05, affine=False)"},
        {bk_nn_instance_norm2d(3, BK_INSTANCE_NORM_DEFAULTS),
         "InstanceNorm2d(3, eps=1e-05, momentum=0.1, affine=False, track_running_stats=False)"},
        {bk_nn_instance_norm2d(4, (bk_norm_opts){1e-5f, 0.1f, false, true, true}),
         "InstanceNorm2d(4, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True)"},
        {bk_nn_batch_norm_opts(3, 2, (bk_norm_opts){1e-5f, 0.1f, true, false, false}),
         "BatchNorm2d(3, eps=1e-05, momentum=None, affine=False, track_running_stats=False)"},
        {bk_nn_layer_norm(BK_SHAPE(8), 1e-5f), "LayerNorm((8,), eps=1e-05, elementwise_affine=True)"},
        {bk_nn_layer_norm(BK_SHAPE(4, 8), 1e-5f), "LayerNorm((4, 8), eps=1e-05, elementwise_affine=True)"},
        {bk_nn_dropout(0.5f), "Dropout(p=0.5, inplace=False)"},
        {bk_nn_dropout(0.3f), "Dropout(p=0.3, inplace=False)"},
        {bk_nn_dropout(0.25f), "Dropout(p=0.25, inplace=False)"},
        {bk_nn_dropout(0.0f), "Dropout(p=0.0, inplace=False)"},
        {bk_nn_gelu(), "GELU(approximate='none')"},
        {bk_nn_softmax(1), "Softmax(dim=1)"},
        {bk_nn_softmax(0), "Softmax(dim=0)"},
        {bk_nn_log_softmax(-1), "LogSoftmax(dim=-1)"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        CHECK(cases[i].m && repr_is(cases[i].m, cases[i].want));
        bk_module_free(cases[i].m);
    }
}

TEST(lenet_repr) {
    bk_module *net = model("lenet");
    CHECK(net && repr_is(net,
                         "Sequential(\n"
                         "  (0): Conv2d(1, 6, kernel_size=(5, 5), stride=(1, 1), padding=(2, 2))\n"
                         "  (1): ReLU()\n"
                         "  (2): MaxPool2d(kernel_size=2, stride=2, padding=0, dilation=1, ceil_mode=False)\n"
                         "  (3): Conv2d(6, 16, kernel_size=(5, 5), stride=(1, 1))\n"
                         "  (4): ReLU()\n"
                         "  (5): MaxPool2d(kernel_size=2, stride=2, padding=0, dilation=1, ceil_mode=False)\n"
                         "  (6): Flatten(start_dim=1, end_dim=-1)\n"
                         "  (7): Linear(in_features=400, out_features=120, bias=True)\n"
                         "  (8): ReLU()\n"
                         "  (9): Linear(in_features=120, out_features=84, bias=True)\n"
                         "  (10): ReLU()\n"
                         "  (11): Linear(in_features=84, out_features=10, bias=True)\n"
                         ")"));
    bk_module_free(net);
}

TEST(residual_and_inception_repr) {
    bk_module *r1 = bk_nn_residual(3, 6, true, 2), *r2 = bk_nn_residual(6, 6, false, 1);
    bk_module *inc = bk_nn_inception(4, 2, (const int64_t[2]){3, 5}, (const int64_t[2]){1, 2}, 3);
    CHECK(r1 &&
          repr_is(r1,
                  "Residual(\n"
                  "  (conv1): Conv2d(3, 6, kernel_size=(3, 3), stride=(2, 2), padding=(1, 1))\n"
                  "  (conv2): Conv2d(6, 6, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))\n"
                  "  (conv3): Conv2d(3, 6, kernel_size=(1, 1), stride=(2, 2))\n"
                  "  (bn1): BatchNorm2d(6, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True)\n"
                  "  (bn2): BatchNorm2d(6, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True)\n"
                  ")"));
    CHECK(r2 &&
          repr_is(r2,
                  "Residual(\n"
                  "  (conv1): Conv2d(6, 6, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))\n"
                  "  (conv2): Conv2d(6, 6, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))\n"
                  "  (bn1): BatchNorm2d(6, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True)\n"
                  "  (bn2): BatchNorm2d(6, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True)\n"
                  ")"));
    CHECK(inc &&
          repr_is(inc,
                  "Inception(\n"
                  "  (p1_1): Conv2d(4, 2, kernel_size=(1, 1), stride=(1, 1))\n"
                  "  (p2_1): Conv2d(4, 3, kernel_size=(1, 1), stride=(1, 1))\n"
                  "  (p2_2): Conv2d(3, 5, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))\n"
                  "  (p3_1): Conv2d(4, 1, kernel_size=(1, 1), stride=(1, 1))\n"
                  "  (p3_2): Conv2d(1, 2, kernel_size=(5, 5), stride=(1, 1), padding=(2, 2))\n"
                  "  (p4_1): MaxPool2d(kernel_size=3, stride=1, padding=1, dilation=1, ceil_mode=False)\n"
                  "  (p4_2): Conv2d(4, 3, kernel_size=(1, 1), stride=(1, 1))\n"
                  ")"));
    /* state-dict names: list(Residual(3, 6, True, 2).state_dict()) */
    static const char *const want[] = {"conv1.weight",
                                       "conv1.bias",
                                       "conv2.weight",
                                       "conv2.bias",
                                       "conv3.weight",
                                       "conv3.bias",
                                       "bn1.weight",
                                       "bn1.bias",
                                       "bn1.running_mean",
                                       "bn1.running_var",
                                       "bn1.num_batches_tracked",
                                       "bn2.weight",
                                       "bn2.bias",
                                       "bn2.running_mean",
                                       "bn2.running_var",
                                       "bn2.num_batches_tracked"};
    bk_param_list *l = r1 ? bk_module_named(r1, BK_STATE) : NULL;
    CHECK(l && l->n == 16);
    for (int i = 0; l && i < l->n && i < 16; i++) {
        if (strcmp(l->names[i], want[i]))
            fprintf(stderr, "  state name %d: %s, want %s\n", i, l->names[i], want[i]);
        CHECK(!strcmp(l->names[i], want[i]));
    }
    bk_param_list_free(l);
    bk_tensor *nbt = r1 ? bk_module_get(r1, "bn1.num_batches_tracked") : NULL;
    CHECK(nbt && nbt->ndim == 0 && nbt->numel == 1 && !nbt->requires_grad);
    bk_module_free(r1);
    bk_module_free(r2);
    bk_module_free(inc);
}

/* ---- parameter counts equal PyTorch's ----------------------------------------------------- */

TEST(model_parameter_counts) {
    struct {
        const char *spec, *canonical;
        int64_t params, state;
    } cases[] = {
        {"lenet", "lenet", 61706, 10},
        {"resnet", "resnet:width=32", 2798538, 127},
        {"resnet:width=16", "resnet:width=16", 701930, 127},
        {"googlenet", "googlenet", 113810, 52},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char canon[128] = "";
        bk_module *net = bk_model_build(cases[i].spec, BK_SHAPE(1, 28, 28), 10, canon, sizeof canon);
        CHECK(net != NULL);
        if (!net) continue;
        CHECK(!strcmp(canon, cases[i].canonical));
        int64_t n = bk_module_num_params(net, false);
        if (n != cases[i].params) fprintf(stderr, "  %s: %lld parameters\n", cases[i].spec, (long long)n);
        CHECK(n == cases[i].params);
        bk_param_list *l = bk_module_named(net, BK_STATE);
        CHECK(l && l->n == cases[i].state);
        bk_param_list_free(l);
        /* a batch of two images through the model: (2, 1, 28, 28) -> (2, 10) */
        bk_tensor *y = bk_forward(net, bk_randn(BK_SHAPE(2, 1, 28, 28)));
        CHECK(shape_is(y, BK_SHAPE(2, 10)));
        CHECK(y && bk_backward(bk_sum(y)) == 0);
        bk_arena_reset(NULL);
        bk_module_free(net);
    }
    /* other image sizes and channel counts work too */
    bk_module *net = bk_model_build("resnet:width=4", BK_SHAPE(3, 17, 13), 5, NULL, 0);
    bk_tensor *y = bk_forward(net, bk_randn(BK_SHAPE(2, 3, 17, 13)));
    CHECK(shape_is(y, BK_SHAPE(2, 5)));
    bk_module_free(net);
    net = bk_model_build("lenet", BK_SHAPE(3, 32, 32), 10, NULL, 0); /* 16 * 6 * 6 features */
    bk_tensor *w7 = net ? bk_module_get(net, "7.weight") : NULL;
    CHECK(w7 && w7->shape[1] == 576);
    bk_module_free(net);
}

/* bk_model_num_params counts from the spec alone what bk_model_build allocates, for every
 * model, and refuses a model over BK_MODEL_MAX_PARAMS before anything is allocated. */
TEST(model_num_params_from_spec) {
    struct {
        const char *spec;
        int ndim;
        int64_t shape[3];
        int classes;
    } cases[] = {
        {"softmax", 3, {1, 28, 28}, 10},       {"mlp:hidden=7", 1, {13}, 3},
        {"mlp", 3, {1, 28, 28}, 10},           {"lenet", 3, {3, 32, 29}, 7},
        {"resnet:width=4", 3, {3, 17, 13}, 5}, {"resnet:width=3", 3, {1, 28, 28}, 10},
        {"googlenet", 3, {2, 28, 28}, 4},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char c1[128] = "", c2[128] = "";
        int64_t counted = bk_model_num_params(cases[i].spec, cases[i].ndim, cases[i].shape, cases[i].classes,
                                              c1, sizeof c1);
        bk_module *net = bk_model_build(cases[i].spec, cases[i].ndim, cases[i].shape, cases[i].classes, c2,
                                        sizeof c2);
        int64_t built = net ? bk_module_num_params(net, false) : -2;
        if (counted != built)
            fprintf(stderr, "  %s: counted %lld, built %lld\n", cases[i].spec, (long long)counted,
                    (long long)built);
        CHECK(counted == built);
        CHECK(!strcmp(c1, c2));
        bk_module_free(net);
    }
    /* mlp on (1, 28, 28): 795 hidden + 10 parameters; 2^30 allows hidden <= 1350618 */
    CHECK(bk_model_num_params("mlp:hidden=1350618", BK_SHAPE(1, 28, 28), 10, NULL, 0) == 1073741320);
    CHECK_ERR(bk_model_num_params("mlp:hidden=1350619", BK_SHAPE(1, 28, 28), 10, NULL, 0) >= 0,
              "more than the 1073741824 (BK_MODEL_MAX_PARAMS)");
    /* refused before allocating: 78 G parameters, 292 GiB */
    CHECK_ERR(bk_model_build("mlp:hidden=100000000", BK_SHAPE(1, 28, 28), 10, NULL, 0),
              "model mlp: mlp:hidden=100000000 has 7.95e+10 parameters");
    CHECK_ERR(bk_model_build("resnet:width=65536", BK_SHAPE(1, 28, 28), 10, NULL, 0), "BK_MODEL_MAX_PARAMS");
    CHECK_ERR(bk_model_build("mlp:hidden=4294967296", BK_SHAPE(3, 4096, 4096), 256, NULL, 0),
              "BK_MODEL_MAX_PARAMS");
    /* the input checks of the build come first, as there */
    CHECK_ERR(bk_model_num_params("lenet", BK_SHAPE(1, 10, 28), 10, NULL, 0) >= 0,
              "LeNet needs H and W of at least 12");
}

/* ---- BatchNorm ------------------------------------------------------------------------------ */

/* per-channel mean and unbiased variance of x (N, C, S...) */
static void channel_stats(const bk_tensor *x, int64_t c, double *mean, double *var) {
    int64_t N = x->shape[0], C = x->shape[1], S = x->numel / (N * C);
    double s = 0, ss = 0;
    for (int64_t n = 0; n < N; n++)
        for (int64_t i = 0; i < S; i++) s += x->data[(n * C + c) * S + i];
    *mean = s / (double)(N * S);
    for (int64_t n = 0; n < N; n++)
        for (int64_t i = 0; i < S; i++) {
            double d = x->data[(n * C + c) * S + i] - *mean;
            ss += d * d;
        }
    *var = ss / (double)(N * S - 1);
}

TEST(batch_norm_running_stats) {
    bk_manual_seed(7);
    bk_module *bn = bk_nn_batch_norm2d(3);
    bk_tensor *rm = bk_module_get(bn, "running_mean"), *rv = bk_module_get(bn, "running_var");
    bk_tensor *nbt = bk_module_get(bn, "num_batches_tracked");
    bk_fill_uniform(bk_module_get(bn, "weight"), NULL, 0.5f, 1.5f);
    bk_fill_uniform(bk_module_get(bn, "bias"), NULL, -1.0f, 1.0f);
    CHECK(rm->data[0] == 0.0f && rv->data[0] == 1.0f && nbt->data[0] == 0.0f);
    bk_tensor *x1 = bk_add_scalar(bk_mul_scalar(bk_randn(BK_SHAPE(4, 3, 2, 5)), 2.0f), 3.0f);
    bk_tensor *x2 = bk_add_scalar(bk_randn(BK_SHAPE(4, 3, 2, 5)), -1.0f);
    double want_m[3], want_v[3];
    for (int64_t c = 0; c < 3; c++) want_m[c] = 0, want_v[c] = 1;
    /* train mode: two batches update the running statistics and the counter */
    bk_tensor *xs[2] = {x1, x2};
    for (int b = 0; b < 2; b++) {
        bk_tensor *y = bk_forward(bn, xs[b]);
        CHECK(y != NULL);
        for (int64_t c = 0; c < 3; c++) {
            double m, v;
            channel_stats(xs[b], c, &m, &v);
            want_m[c] = 0.9 * want_m[c] + 0.1 * m;
            want_v[c] = 0.9 * want_v[c] + 0.1 * v;
            CHECK_CLOSE(rm->data[c], want_m[c], 1e-5);
            CHECK_CLOSE(rv->data[c], want_v[c], 1e-5);
            /* the output is normalised with the batch statistics (biased variance) */
            double ym, yv;
            channel_stats(y, c, &ym, &yv);
            CHECK_CLOSE(ym, bk_module_get(bn, "bias")->data[c], 1e-5);
            double w = bk_module_get(bn, "weight")->data[c];
            CHECK_CLOSE(yv * (40.0 - 1) / 40.0, w * w * (v * 39 / 40) / (v * 39 / 40 + 1e-5), 1e-4);
        }
        CHECK(nbt->data[0] == (float)(b + 1));
    }
    /* eval mode: the running statistics are used and left alone; the counter stays */
    bk_module_train(bn, false);
    float rm0[3], rv0[3];
    for (int c = 0; c < 3; c++) rm0[c] = rm->data[c], rv0[c] = rv->data[c];
    bk_tensor *y = bk_forward(bn, x1);
    CHECK(y != NULL);
    for (int64_t i = 0; y && i < y->numel; i++) {
        int64_t c = (i / 10) % 3;
        double w = bk_module_get(bn, "weight")->data[c], bb = bk_module_get(bn, "bias")->data[c];
        double want = (x1->data[i] - rm0[c]) / sqrt(rv0[c] + 1e-5) * w + bb;
        if (fabs(y->data[i] - want) > 1e-5) {
            CHECK_CLOSE(y->data[i], want, 1e-5);
            break;
        }
    }
    for (int c = 0; c < 3; c++) CHECK(rm->data[c] == rm0[c] && rv->data[c] == rv0[c]);
    CHECK(nbt->data[0] == 2.0f);
    /* back to training: the counter moves again */
    bk_module_train(bn, true);
    CHECK(bk_forward(bn, x2) != NULL);
    CHECK(nbt->data[0] == 3.0f);
    bk_module_free(bn);
}

TEST(batch_norm1d_shapes) {
    bk_module *bn = bk_nn_batch_norm1d(3);
    bk_tensor *x2 = bk_randn(BK_SHAPE(5, 3)), *x3 = bk_randn(BK_SHAPE(4, 3, 6));
    bk_tensor *y2 = bk_forward(bn, x2), *y3 = bk_forward(bn, x3);
    CHECK(shape_is(y2, BK_SHAPE(5, 3)) && shape_is(y3, BK_SHAPE(4, 3, 6)));
    for (int64_t c = 0; y2 && y3 && c < 3; c++) {
        double m, v;
        channel_stats(y2, c, &m, &v);
        CHECK_CLOSE(m, 0.0, 1e-5);
        CHECK_CLOSE(v * 4 / 5, 1.0, 1e-3);
        channel_stats(y3, c, &m, &v);
        CHECK_CLOSE(m, 0.0, 1e-5);
        CHECK_CLOSE(v * 23 / 24, 1.0, 1e-3);
    }
    CHECK(bk_module_get(bn, "num_batches_tracked")->data[0] == 2.0f);
    bk_module_free(bn);
}

TEST(layer_norm_and_activations) {
    bk_module *ln = bk_nn_layer_norm(BK_SHAPE(8), 1e-5f);
    bk_tensor *x = bk_mul_scalar(bk_randn(BK_SHAPE(3, 4, 8)), 3.0f);
    bk_tensor *y = bk_forward(ln, x);
    CHECK(shape_is(y, BK_SHAPE(3, 4, 8)));
    for (int64_t r = 0; y && r < 12; r++) {
        double s = 0, ss = 0;
        for (int i = 0; i < 8; i++) s += y->data[r * 8 + i];
        for (int i = 0; i < 8; i++) ss += (y->data[r * 8 + i] - s / 8) * (y->data[r * 8 + i] - s / 8);
        CHECK_CLOSE(s / 8, 0.0, 1e-5);
        CHECK_CLOSE(ss / 8, 1.0, 1e-3);
    }
    bk_module_free(ln);
    bk_module *g = bk_nn_gelu(), *sm = bk_nn_softmax(1), *lsm = bk_nn_log_softmax(-1);
    bk_tensor *a = bk_forward(g, x), *b = bk_gelu(x);
    bk_tensor *s1 = bk_forward(sm, x), *s2 = bk_softmax(x, 1);
    bk_tensor *l1 = bk_forward(lsm, x), *l2 = bk_log_softmax(x, -1);
    CHECK(test_compare("GELU block", a, b, 0, 1e-12) <= 1);
    CHECK(test_compare("Softmax block", s1, s2, 0, 1e-12) <= 1);
    CHECK(test_compare("LogSoftmax block", l1, l2, 0, 1e-12) <= 1);
    CHECK_ERR(bk_forward(sm, bk_randn(BK_SHAPE(4))), "in Softmax(dim=1)");
    bk_module_free(g);
    bk_module_free(sm);
    bk_module_free(lsm);
}

/* ---- Dropout and the train/eval switch --------------------------------------------------- */

TEST(dropout_statistics) {
    bk_manual_seed(3);
    enum { N = 100000 };
    bk_tensor *x = bk_ones(BK_SHAPE(N));
    /* p = 0 is the identity, in training too */
    bk_module *d0 = bk_nn_dropout(0.0f);
    bk_tensor *in0 = bk_randn(BK_SHAPE(7, 3));
    bk_tensor *out0 = bk_forward(d0, in0);
    CHECK(test_compare("Dropout(p=0)", out0, in0, 0, 1e-12) <= 1);
    bk_module_free(d0);
    /* p = 0.3: each element kept with probability 0.7, so the kept count is Binomial(N, 0.7):
     * mean 0.7 N, sd sqrt(N 0.7 0.3) = 145. Allow 5 sd (a false failure ~ 6e-7). */
    bk_module *d = bk_nn_dropout(0.3f);
    bk_tensor *y = bk_forward(d, x);
    CHECK(y != NULL);
    int64_t kept = 0, bad = 0;
    const float scale = 1.0f / (1.0f - 0.3f);
    for (int64_t i = 0; y && i < N; i++) {
        if (y->data[i] != 0.0f) kept++;
        if (y->data[i] != 0.0f && y->data[i] != scale) bad++;
    }
    double frac = (double)kept / N, bound = 5 * sqrt(0.7 * 0.3 / N);
    if (!(fabs(frac - 0.7) <= bound))
        fprintf(stderr, "  kept fraction %.5f, want 0.7 +- %.5f\n", frac, bound);
    CHECK(fabs(frac - 0.7) <= bound);
    CHECK(bad == 0); /* kept values are exactly x / (1 - p) */
    CHECK_CLOSE(scale, 1.0 / 0.7, 1e-7);
    /* the gradient flows through the kept elements only, with the same scale */
    bk_tensor *xg = bk_requires_grad(bk_ones(BK_SHAPE(1000)), true);
    bk_tensor *yg = bk_forward(d, xg);
    CHECK(yg && bk_backward(bk_sum(yg)) == 0 && xg->grad);
    for (int64_t i = 0; xg->grad && i < 1000; i++) CHECK(xg->grad->data[i] == yg->data[i]);
    /* eval mode: identity */
    bk_module_train(d, false);
    bk_tensor *ye = bk_forward(d, x);
    CHECK(test_compare("Dropout eval", ye, x, 0, 1e-12) <= 1);
    bk_module_free(d);
    /* p = 1 drops everything */
    bk_module *d1 = bk_nn_dropout(1.0f);
    bk_tensor *y1 = bk_forward(d1, bk_ones(BK_SHAPE(100)));
    double s = 0;
    for (int i = 0; y1 && i < 100; i++) s += fabs(y1->data[i]);
    CHECK(y1 && s == 0);
    bk_module_free(d1);
}

TEST(train_eval_switch) {
    bk_manual_seed(11);
    bk_module *net = bk_nn_sequential(4, bk_nn_conv2d(2, 4, 3, 1, 1), bk_nn_batch_norm2d(4), bk_nn_relu(),
                                      bk_nn_dropout(0.5f));
    bk_tensor *x = bk_randn(BK_SHAPE(3, 2, 5, 5));
    bk_module *bn = bk_nn_sequential_get(net, 1);
    /* training: dropout differs between two calls; BN uses batch statistics */
    bk_tensor *a = bk_forward(net, x), *b = bk_forward(net, x);
    CHECK(a && b && max_diff(a, b) > 0.1);
    CHECK(bk_module_get(bn, "num_batches_tracked")->data[0] == 2.0f);
    /* eval: deterministic, and BN uses the running statistics */
    bk_module_train(net, false);
    CHECK(!bn->training && !bk_nn_sequential_get(net, 3)->training);
    bk_tensor *c = bk_forward(net, x), *d = bk_forward(net, x);
    CHECK(c && d && test_compare("eval: deterministic", c, d, 0, 1e-12) <= 1);
    CHECK(bk_module_get(bn, "num_batches_tracked")->data[0] == 2.0f);
    /* BN alone: train and eval outputs differ (batch vs running statistics) */
    bk_module *conv_bn = bk_nn_sequential(2, bk_nn_conv2d(2, 4, 3, 1, 1), bk_nn_batch_norm2d(4));
    bk_tensor *t = bk_forward(conv_bn, x);
    bk_module_train(conv_bn, false);
    bk_tensor *e = bk_forward(conv_bn, x);
    CHECK(t && e && max_diff(t, e) > 0.1);
    bk_module_free(conv_bn);
    bk_module_free(net);
}

/* ---- Residual and Inception -------------------------------------------------------------- */

TEST(block_shapes) {
    struct {
        int64_t in, num, strides;
        bool conv1x1;
        int64_t x[4], y[4];
    } cases[] = {
        {3, 6, 2, true, {4, 3, 6, 6}, {4, 6, 3, 3}},  /* D2L: Residual(3, 6, use_1x1conv=True, strides=2) */
        {3, 3, 1, false, {4, 3, 6, 6}, {4, 3, 6, 6}}, /* D2L: Residual(3, 3) */
        {3, 6, 1, true, {2, 3, 5, 5}, {2, 6, 5, 5}},  /* 1x1 conv, same size */
        {3, 6, 2, true, {2, 3, 7, 7}, {2, 6, 4, 4}},  /* odd sizes round up */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        bk_module *r = bk_nn_residual(cases[i].in, cases[i].num, cases[i].conv1x1, cases[i].strides);
        CHECK(r && (bk_module_child_by_name(r, "conv3") != NULL) == cases[i].conv1x1);
        CHECK(r && r->n_children == (cases[i].conv1x1 ? 5 : 4));
        bk_tensor *y = bk_forward(r, bk_randn(4, cases[i].x));
        CHECK(shape_is(y, 4, cases[i].y));
        /* relu(Y + X) is non-negative */
        bool nonneg = y != NULL;
        for (int64_t k = 0; y && k < y->numel; k++) nonneg = nonneg && y->data[k] >= 0;
        CHECK(nonneg);
        bk_module_free(r);
    }
    bk_module *inc = bk_nn_inception(4, 2, (const int64_t[2]){3, 5}, (const int64_t[2]){1, 2}, 3);
    bk_tensor *y = bk_forward(inc, bk_randn(BK_SHAPE(2, 4, 5, 5)));
    CHECK(shape_is(y, BK_SHAPE(2, 12, 5, 5))); /* 2 + 5 + 2 + 3 channels */
    CHECK(inc && bk_module_num_params(inc, false) ==
                     (4 * 2 + 2) + (4 * 3 + 3) + (3 * 5 * 9 + 5) + (4 + 1) + (1 * 2 * 25 + 2) + (4 * 3 + 3));
    bk_module_free(inc);
}

/* L = sum(block(x) * w) in double, for the numerical derivatives. */
static double weighted_loss(bk_module *m, bk_tensor *x, const bk_tensor *w) {
    bk_tensor *y = bk_forward(m, x);
    if (!y) return NAN;
    double s = 0;
    for (int64_t i = 0; i < y->numel; i++) s += (double)y->data[i] * w->data[i];
    return s;
}

/* Central difference of L in element i of t with step eps (the step actually taken). */
static double central_diff(bk_module *m, bk_tensor *x, const bk_tensor *w, bk_tensor *t, int64_t i,
                           double eps) {
    float orig = t->data[i];
    t->data[i] = (float)(orig + eps);
    double lp = weighted_loss(m, x, w);
    t->data[i] = (float)(orig - eps);
    double lm = weighted_loss(m, x, w);
    t->data[i] = orig;
    return (lp - lm) / ((double)(float)(orig + eps) - (double)(float)(orig - eps));
}

/* bk_gradcheck's comparison for a block, wrt its input x and every parameter, made robust
 * to the kinks of ReLU and max-pooling: a pre-activation within eps of 0, or two values of
 * a pooling window within eps of each other, make a central difference meaningless there.
 * So each derivative is taken twice, with eps and eps/2; where the two disagree, the
 * function is not smooth at that point and the element is skipped (counted; at most 5% may
 * be skipped). Everywhere else autograd must match the numerical derivative within
 * atol + rtol |numeric|. A wrong backward shows up on most elements, so it still fails. */
static void gradcheck_block(const char *what, bk_module *m, bk_tensor *x) {
    bk_param_list *l = bk_module_named(m, BK_PARAMS);
    CHECK(l != NULL);
    if (!l) return;
    bk_tensor *in[64];
    int n = 0;
    in[n++] = bk_requires_grad(x, true);
    for (int i = 0; i < l->n && n < 64; i++) in[n++] = l->tensors[i];
    bk_module_zero_grad(m);
    if (x->grad) bk_fill(x->grad, 0.0f);
    bk_tensor *y = bk_forward(m, x);
    bk_tensor *w = y ? bk_rand(y->ndim, y->shape) : NULL; /* fixed weights in [-1, 1) */
    for (int64_t i = 0; w && i < w->numel; i++) w->data[i] = 2.0f * w->data[i] - 1.0f;
    CHECK(y && w && bk_backward_ex(y, w, false) == 0);
    if (!y || !w) {
        bk_param_list_free(l);
        return;
    }
    bool prev = bk_set_grad_enabled(false);
    int64_t total = 0, skipped = 0, failed = 0;
    double worst = 0;
    for (int k = 0; k < n; k++)
        for (int64_t i = 0; i < in[k]->numel; i++) {
            double g1 = central_diff(m, x, w, in[k], i, EPS), g2 = central_diff(m, x, w, in[k], i, EPS / 2);
            double ana = in[k]->grad ? in[k]->grad->data[i] : 0.0;
            total++;
            if (!(fabs(g1 - g2) <= ATOL + RTOL * fabs(g1))) {
                skipped++;
                continue;
            }
            double err = fabs(ana - g1) / (ATOL + RTOL * fabs(g1));
            if (!(err <= 1) && failed++ < 5)
                fprintf(stderr, "    %s: input %d element %lld: autograd %.8g, numeric %.8g\n", what, k,
                        (long long)i, ana, g1);
            if (!(err <= worst)) worst = err;
        }
    bk_set_grad_enabled(prev);
    if (failed || skipped * 20 > total || getenv("BRICK_TEST_VERBOSE"))
        fprintf(stderr, "  %s: %lld derivatives, worst scaled error %.3g, %lld skipped at kinks\n", what,
                (long long)total, worst, (long long)skipped);
    CHECK(failed == 0);
    CHECK(skipped * 20 <= total);
    bk_param_list_free(l);
}

TEST(gradcheck_residual) {
    bk_manual_seed(1);
    /* train mode: BatchNorm uses (and differentiates through) the batch statistics */
    bk_module *r = bk_nn_residual(2, 3, true, 2);
    gradcheck_block("Residual(2, 3, use_1x1conv=True, strides=2)", r, bk_randn(BK_SHAPE(2, 2, 4, 4)));
    bk_module_free(r);
    bk_module *r2 = bk_nn_residual(2, 2, false, 1);
    gradcheck_block("Residual(2, 2)", r2, bk_randn(BK_SHAPE(2, 2, 3, 3)));
    /* eval mode: the running statistics are constants */
    bk_module_train(r2, false);
    gradcheck_block("Residual(2, 2) eval", r2, bk_randn(BK_SHAPE(2, 2, 3, 3)));
    bk_module_free(r2);
}

TEST(gradcheck_inception) {
    bk_manual_seed(2);
    bk_module *inc = bk_nn_inception(3, 2, (const int64_t[2]){2, 3}, (const int64_t[2]){1, 2}, 2);
    gradcheck_block("Inception(3, 2, (2, 3), (1, 2), 2)", inc, bk_randn(BK_SHAPE(2, 3, 4, 4)));
    bk_module_free(inc);
}

int main(void) {
    RUN(conv_errors);
    RUN(pool_errors);
    RUN(norm_and_dropout_errors);
    RUN(block_errors);
    RUN(layer_reprs);
    RUN(lenet_repr);
    RUN(residual_and_inception_repr);
    RUN(model_parameter_counts);
    RUN(model_num_params_from_spec);
    RUN(batch_norm_running_stats);
    RUN(batch_norm1d_shapes);
    RUN(layer_norm_and_activations);
    RUN(dropout_statistics);
    RUN(train_eval_switch);
    RUN(block_shapes);
    RUN(gradcheck_residual);
    RUN(gradcheck_inception);
    return test_summary("test_cnn_blocks");
}
