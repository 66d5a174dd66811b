/* zoo.c - models by name, for the CLI and for checkpoints that must rebuild their model.
 *
 * A spec is "name" or "name:key=value,key=value" with integer values. Each model lists
 * its settings with defaults; the canonical spec names every setting, so a checkpoint's
 * "brick.arch" rebuilds exactly the trained architecture. Adding a model = one entry in
 * MODELS, its parameter count and its build function.
 *
 * A spec comes from a command line or from a file (a checkpoint's "brick.arch"), so its
 * size is counted from the settings before anything is allocated: a model over
 * BK_MODEL_MAX_PARAMS is refused at once instead of allocating gigabytes first. The count
 * also holds the checks of the input shape, so the builds can assume a valid input.
 * tests/test_cnn_blocks.c checks count == bk_module_num_params of the built model.
 */
#include "internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>

#define ZOO_MAX_KEYS 8

typedef struct zoo_args {
    int n_keys;
    const char *keys[ZOO_MAX_KEYS];
    int64_t values[ZOO_MAX_KEYS];
} zoo_args;

/* The shape of one input sample, e.g. (1, 28, 28), and its element count. */
typedef struct zoo_input {
    int ndim;
    const int64_t *shape;
    int64_t numel;
} zoo_input;

typedef struct zoo_entry {
    const char *name;
    const char *doc;
    zoo_args defaults;
    /* The parameter count the build will allocate, from the settings alone: in double, so
     * that no spec overflows it (exact below 2^53, far above BK_MODEL_MAX_PARAMS). Also
     * checks that the model can take the input; -1 with an error if not. */
    double (*params)(const zoo_args *a, const zoo_input *in, int n_classes);
    bk_module *(*build)(const zoo_args *a, const zoo_input *in, int n_classes);
} zoo_entry;

static int64_t arg(const zoo_args *a, const char *key) {
    for (int i = 0; i < a->n_keys; i++)
        if (!strcmp(a->keys[i], key)) return a->values[i];
    return 0;
}

/* Parameters of the layers, as src/nn builds them (weights and biases; BatchNorm's running
 * statistics are buffers, not parameters). */
static double linear_params(double in, double out) { return in * out + out; }
static double conv_params(double in, double out, double k) { return in * out * k * k + out; }
static double bn_params(double c) { return 2 * c; }

static double softmax_params(const zoo_args *a, const zoo_input *in, int n_classes) {
    (void)a;
    return linear_params((double)in->numel, n_classes);
}

static double mlp_params(const zoo_args *a, const zoo_input *in, int n_classes) {
    double hidden = (double)arg(a, "hidden");
    return linear_params((double)in->numel, hidden) + linear_params(hidden, n_classes);
}

/* Flatten -> Linear(in, classes): softmax regression (D2L 3.6) */
static bk_module *build_softmax(const zoo_args *a, const zoo_input *in, int n_classes) {
    (void)a;
    return bk_nn_sequential(2, bk_nn_flatten(1, -1), bk_nn_linear(in->numel, n_classes));
}

/* Flatten -> Linear(in, hidden) -> ReLU -> Linear(hidden, classes) (D2L 4.2) */
static bk_module *build_mlp(const zoo_args *a, const zoo_input *in, int n_classes) {
    int64_t hidden = arg(a, "hidden");
    return bk_nn_sequential(4, bk_nn_flatten(1, -1), bk_nn_linear(in->numel, hidden), bk_nn_relu(),
                            bk_nn_linear(hidden, n_classes));
}

/* ---- CNNs: C = in channels, H x W = image size, taken from the input shape (C, H, W) -- */

static bool image_input(const zoo_input *in) {
    char s[128];
    if (in->ndim != 3) {
        bk_set_error("expects image inputs of shape (C, H, W), got %s", bk__shape_fmt(in->ndim, in->shape, s, sizeof s));
        return false;
    }
    if (in->numel == 0) {
        bk_set_error("input shape %s is empty", bk__shape_fmt(in->ndim, in->shape, s, sizeof s));
        return false;
    }
    return true;
}

/* LeNet as the issue asks (D2L 7.6 with ReLU and max-pooling in place of sigmoid and
 * average pooling). (C, 28, 28) -> 6 x 28 x 28 -> 6 x 14 x 14 -> 16 x 10 x 10 -> 16 x 5 x 5. */
static double lenet_params(const zoo_args *a, const zoo_input *in, int n_classes) {
    (void)a;
    if (!image_input(in)) return -1;
    int64_t C = in->shape[0], H = in->shape[1], W = in->shape[2];
    if (H / 2 < 6 || W / 2 < 6) {
        char s[128];
        bk_set_error("input %s is too small: LeNet needs H and W of at least 12",
                     bk__shape_fmt(in->ndim, in->shape, s, sizeof s));
        return -1;
    }
    double h = (double)((H / 2 - 4) / 2), w = (double)((W / 2 - 4) / 2);
    return conv_params((double)C, 6, 5) + conv_params(6, 16, 5) + linear_params(16 * h * w, 120) +
           linear_params(120, 84) + linear_params(84, n_classes);
}

static bk_module *build_lenet(const zoo_args *a, const zoo_input *in, int n_classes) {
    (void)a;
    int64_t C = in->shape[0], H = in->shape[1], W = in->shape[2];
    int64_t h = (H / 2 - 4) / 2, w = (W / 2 - 4) / 2; /* after conv1 (same), pool, conv2 (-4), pool */
    return bk_nn_sequential(12, bk_nn_conv2d(C, 6, 5, 1, 2), bk_nn_relu(), bk_nn_max_pool2d(2, 2, 0),
                            bk_nn_conv2d(6, 16, 5, 1, 0), bk_nn_relu(), bk_nn_max_pool2d(2, 2, 0),
                            bk_nn_flatten(1, -1), bk_nn_linear(16 * h * w, 120), bk_nn_relu(),
                            bk_nn_linear(120, 84), bk_nn_relu(), bk_nn_linear(84, n_classes));
}

/* D2L's resnet_block: two Residual blocks; all but the first stage halve H and W and
 * change the width through a 1x1 convolution in their first block. */
static bk_module *resnet_stage(int64_t in_channels, int64_t channels, bool first_stage) {
    return bk_nn_sequential(2, first_stage ? bk_nn_residual(in_channels, channels, false, 1)
                                           : bk_nn_residual(in_channels, channels, true, 2),
                            bk_nn_residual(channels, channels, false, 1));
}

/* ResNet-18 as D2L 8.6 builds it, for small images: the stem is a 3x3 convolution without
 * max-pooling (28 x 28 is already small), and the widths are w, 2w, 4w, 8w.
 * (C, 28, 28) -> w x 28 x 28 -> w x 28 x 28 -> 2w x 14 x 14 -> 4w x 7 x 7 -> 8w x 4 x 4
 * -> 8w -> classes. */
static double residual_params(double in, double c, bool use_1x1conv) {
    return conv_params(in, c, 3) + conv_params(c, c, 3) + (use_1x1conv ? conv_params(in, c, 1) : 0) +
           2 * bn_params(c);
}

static double resnet_stage_params(double in, double c, bool first_stage) {
    return residual_params(in, c, !first_stage) + residual_params(c, c, false);
}

static double resnet_params(const zoo_args *a, const zoo_input *in, int n_classes) {
    if (!image_input(in)) return -1;
    double C = (double)in->shape[0], w = (double)arg(a, "width");
    return conv_params(C, w, 3) + bn_params(w) + resnet_stage_params(w, w, true) +
           resnet_stage_params(w, 2 * w, false) + resnet_stage_params(2 * w, 4 * w, false) +
           resnet_stage_params(4 * w, 8 * w, false) + linear_params(8 * w, n_classes);
}

static bk_module *build_resnet(const zoo_args *a, const zoo_input *in, int n_classes) {
    int64_t C = in->shape[0], w = arg(a, "width");
    return bk_nn_sequential(8, bk_nn_sequential(3, bk_nn_conv2d(C, w, 3, 1, 1), bk_nn_batch_norm2d(w), bk_nn_relu()),
                            resnet_stage(w, w, true), resnet_stage(w, 2 * w, false),
                            resnet_stage(2 * w, 4 * w, false), resnet_stage(4 * w, 8 * w, false),
                            bk_nn_adaptive_avg_pool2d(1, 1), bk_nn_flatten(1, -1), bk_nn_linear(8 * w, n_classes));
}

/* A small GoogLeNet (D2L 8.4) for 28 x 28 inputs: D2L's stages with about a quarter of
 * the channels, a single 3x3 stem convolution and two Inception stages.
 * (C, 28, 28) -> 32 x 14 x 14 -> 64 -> 120 x 7 x 7 -> 128 -> 208 x 7 x 7 -> 208 -> classes. */
static double inception_params(double in, double c1, const double c2[2], const double c3[2], double c4) {
    return conv_params(in, c1, 1) + conv_params(in, c2[0], 1) + conv_params(c2[0], c2[1], 3) +
           conv_params(in, c3[0], 1) + conv_params(c3[0], c3[1], 5) + conv_params(in, c4, 1);
}

static double googlenet_params(const zoo_args *a, const zoo_input *in, int n_classes) {
    (void)a;
    if (!image_input(in)) return -1;
    return conv_params((double)in->shape[0], 32, 3) +
           inception_params(32, 16, (const double[2]){24, 32}, (const double[2]){4, 8}, 8) +
           inception_params(64, 32, (const double[2]){32, 48}, (const double[2]){8, 24}, 16) +
           inception_params(120, 48, (const double[2]){24, 52}, (const double[2]){4, 12}, 16) +
           inception_params(128, 64, (const double[2]){40, 80}, (const double[2]){8, 32}, 32) +
           linear_params(208, n_classes);
}

static bk_module *build_googlenet(const zoo_args *a, const zoo_input *in, int n_classes) {
    (void)a;
    int64_t C = in->shape[0];
    bk_module *b1 = bk_nn_sequential(3, bk_nn_conv2d(C, 32, 3, 1, 1), bk_nn_relu(), bk_nn_max_pool2d(3, 2, 1));
    bk_module *b2 = bk_nn_sequential(3, bk_nn_inception(32, 16, (const int64_t[2]){24, 32}, (const int64_t[2]){4, 8}, 8),
                                     bk_nn_inception(64, 32, (const int64_t[2]){32, 48}, (const int64_t[2]){8, 24}, 16),
                                     bk_nn_max_pool2d(3, 2, 1));
    bk_module *b3 = bk_nn_sequential(4, bk_nn_inception(120, 48, (const int64_t[2]){24, 52}, (const int64_t[2]){4, 12}, 16),
                                     bk_nn_inception(128, 64, (const int64_t[2]){40, 80}, (const int64_t[2]){8, 32}, 32),
                                     bk_nn_adaptive_avg_pool2d(1, 1), bk_nn_flatten(1, -1));
    return bk_nn_sequential(4, b1, b2, b3, bk_nn_linear(208, n_classes));
}

static const zoo_entry MODELS[] = {
    {"softmax", "softmax regression: Flatten, Linear(in, classes)", {0, {NULL}, {0}}, softmax_params, build_softmax},
    {"mlp", "multilayer perceptron: Flatten, Linear(in, hidden), ReLU, Linear(hidden, classes)",
     {1, {"hidden"}, {256}}, mlp_params, build_mlp},
    {"lenet",
     "LeNet (ReLU, max-pool): Conv2d(C, 6, 5, padding=2), MaxPool2d(2), Conv2d(6, 16, 5), MaxPool2d(2), "
     "Linear(400, 120), Linear(120, 84), Linear(84, classes); needs (C, H, W) inputs",
     {0, {NULL}, {0}}, lenet_params, build_lenet},
    {"resnet",
     "ResNet-18 for small images: 3x3 stem Conv2d(C, width) + BatchNorm2d + ReLU, four stages of two "
     "Residual blocks (widths width..8*width, stride 2 from stage 2), global average pool, Linear",
     {1, {"width"}, {32}}, resnet_params, build_resnet},
    {"googlenet",
     "small GoogLeNet: 3x3 stem Conv2d(C, 32) + MaxPool2d, four Inception blocks (64, 120, 128, 208 "
     "channels) with a MaxPool2d between the pairs, global average pool, Linear(208, classes)",
     {0, {NULL}, {0}}, googlenet_params, build_googlenet},
};
#define N_MODELS (sizeof MODELS / sizeof MODELS[0])

const char *const *bk_model_names(void) {
    static const char *names[N_MODELS + 1];
    for (size_t i = 0; i < N_MODELS; i++) names[i] = MODELS[i].name;
    names[N_MODELS] = NULL;
    return names;
}

/* Parses spec for the input and classes into *e and *a, writes the canonical spec and
 * counts the parameters (checked against BK_MODEL_MAX_PARAMS). -1 with an error. */
static int64_t model_check(const char *spec, int in_ndim, const int64_t *in_shape, int n_classes,
                           char *canonical, size_t canonical_size, const zoo_entry **entry,
                           zoo_args *args, zoo_input *input) {
    if (!spec) {
        bk_set_error("model: spec is NULL");
        return -1;
    }
    int64_t in_features;
    if (!bk__shape_ok("model", in_ndim, in_shape, &in_features)) return -1;
    if (in_ndim < 1) { /* a batch of scalars (N,) has nothing for Flatten(1, -1) to keep */
        bk_set_error("model: %s: the input shape needs at least one dimension", spec);
        return -1;
    }
    if (n_classes <= 0) {
        bk_set_error("model: %s: the number of classes must be positive (got %d)", spec, n_classes);
        return -1;
    }
    const char *colon = strchr(spec, ':');
    size_t name_len = colon ? (size_t)(colon - spec) : strlen(spec);
    const zoo_entry *e = NULL;
    for (size_t i = 0; i < N_MODELS; i++)
        if (strlen(MODELS[i].name) == name_len && !strncmp(MODELS[i].name, spec, name_len)) e = &MODELS[i];
    if (!e) {
        char known[256] = "";
        for (size_t i = 0; i < N_MODELS; i++) {
            strncat(known, i ? ", " : "", sizeof known - strlen(known) - 1);
            strncat(known, MODELS[i].name, sizeof known - strlen(known) - 1);
        }
        bk_set_error("model: unknown model \"%.*s\" (known: %s)", (int)name_len, spec, known);
        return -1;
    }
    zoo_args a = e->defaults;
    for (const char *p = colon ? colon + 1 : NULL; p && *p;) {
        const char *eq = strchr(p, '='), *end = strchr(p, ',');
        if (!end) end = p + strlen(p);
        if (!eq || eq > end) {
            bk_set_error("model: %s: expected key=value, got \"%.*s\"", spec, (int)(end - p), p);
            return -1;
        }
        int k = -1;
        for (int i = 0; i < a.n_keys; i++)
            if (strlen(a.keys[i]) == (size_t)(eq - p) && !strncmp(a.keys[i], p, (size_t)(eq - p))) k = i;
        if (k < 0) {
            bk_set_error("model: %s: model %s has no setting \"%.*s\"", spec, e->name, (int)(eq - p), p);
            return -1;
        }
        char *num_end;
        errno = 0;
        long long v = strtoll(eq + 1, &num_end, 10);
        if (num_end != end || errno || v <= 0 || v > (1LL << 32)) {
            bk_set_error("model: %s: %s must be a positive integer, got \"%.*s\"", spec, a.keys[k],
                         (int)(end - eq - 1), eq + 1);
            return -1;
        }
        a.values[k] = v;
        p = *end ? end + 1 : end;
    }
    if (canonical && canonical_size) {
        size_t k = (size_t)snprintf(canonical, canonical_size, "%s", e->name);
        for (int i = 0; i < a.n_keys && k < canonical_size; i++)
            k += (size_t)snprintf(canonical + k, canonical_size - k, "%c%s=%" PRId64, i ? ',' : ':',
                                  a.keys[i], a.values[i]);
    }
    zoo_input in = {in_ndim, in_shape, in_features};
    double params = e->params(&a, &in, n_classes);
    if (params < 0) {
        bk__error_prefix("model %s", e->name);
        return -1;
    }
    if (params > (double)BK_MODEL_MAX_PARAMS) {
        bk_set_error("model %s: %s has %.4g parameters (%.3g GiB of float32 weights), more than "
                     "the %" PRId64 " (BK_MODEL_MAX_PARAMS) a model may have", e->name, spec,
                     params, params * 4 / 1073741824.0, (int64_t)BK_MODEL_MAX_PARAMS);
        return -1;
    }
    *entry = e;
    *args = a;
    *input = in;
    return (int64_t)params;
}

int64_t bk_model_num_params(const char *spec, int in_ndim, const int64_t *in_shape, int n_classes,
                            char *canonical, size_t canonical_size) {
    const zoo_entry *e;
    zoo_args a;
    zoo_input in;
    return model_check(spec, in_ndim, in_shape, n_classes, canonical, canonical_size, &e, &a, &in);
}

bk_module *bk_model_build(const char *spec, int in_ndim, const int64_t *in_shape, int n_classes,
                          char *canonical, size_t canonical_size) {
    const zoo_entry *e;
    zoo_args a;
    zoo_input in;
    if (model_check(spec, in_ndim, in_shape, n_classes, canonical, canonical_size, &e, &a, &in) < 0)
        return NULL;
    bk_module *m = e->build(&a, &in, n_classes);
    if (!m) bk__error_prefix("model %s", e->name);
    return m;
}
