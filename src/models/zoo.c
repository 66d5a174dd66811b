/* zoo.c - models by name, for the CLI and for checkpoints that must rebuild their model.
 *
 * A spec is "name" or "name:key=value,key=value". Each model lists its settings, each
 * typed (an integer, a number, a boolean, or a word from a list such as an activation's
 * name) with its default and range. The canonical spec names the model's settings so that
 * a checkpoint's "brick.arch" rebuilds exactly the trained architecture, and it parses back
 * to the same model (tests/test_zoo.c checks every model). A setting added after brick
 * 0.1.0 wrote its first files ("act", "dropout", ...) is named only when it differs from its
 * default, so that a canonical spec from before it ("mlp:hidden=256") stays what it was and
 * the checkpoints holding it still resume. Adding a model = one entry in MODELS (its
 * settings), its parameter count and its build function (docs/design.md).
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
#include <math.h>
#include <stdlib.h>

#define ZOO_MAX_KEYS 8

/* The type of a setting's value. */
typedef enum zoo_kind {
    ZOO_INT,   /* an integer in [min, max] */
    ZOO_FLOAT, /* a finite number in [min, max] */
    ZOO_BOOL,  /* true or false (stored 1 or 0) */
    ZOO_WORD,  /* one of words[] (stored as its index) */
    ZOO_KIND_COUNT
} zoo_kind;

typedef struct zoo_setting {
    const char *key;
    zoo_kind kind;
    double def;               /* the default (ZOO_WORD: an index into words) */
    double min, max;          /* ZOO_INT, ZOO_FLOAT: the accepted range */
    const char *const *words; /* ZOO_WORD: the accepted words, NULL-terminated */
    bool optional;            /* named in the canonical spec only when not at def */
} zoo_setting;

/* A model's settings and their values (in the order of the model's list). */
typedef struct zoo_args {
    int n_keys;
    const zoo_setting *settings;
    double values[ZOO_MAX_KEYS];
} zoo_args;

/* The activations a setting can name, and their blocks. */
static const char *const ACTIVATIONS[] = {"relu", "sigmoid", "tanh", "gelu", NULL};
static bk_module *(*const ACTIVATION_NEW[])(void) = {bk_nn_relu, bk_nn_sigmoid, bk_nn_tanh, bk_nn_gelu};
static const char *const POOLS[] = {"max", "avg", NULL};

/* The shape of one input sample, e.g. (1, 28, 28), and its element count. */
typedef struct zoo_input {
    int ndim;
    const int64_t *shape;
    int64_t numel;
} zoo_input;

typedef struct zoo_entry {
    const char *name;
    const char *doc; /* what it builds; its settings, their words and ranges are in settings */
    int n_settings;
    const zoo_setting *settings;
    /* The parameter count the build will allocate, from the settings alone: in double, so
     * that no spec overflows it (exact below 2^53, far above BK_MODEL_MAX_PARAMS). Also
     * checks that the model can take the input; -1 with an error if not. */
    double (*params)(const zoo_args *a, const zoo_input *in, int n_classes);
    bk_module *(*build)(const zoo_args *a, const zoo_input *in, int n_classes);
} zoo_entry;

/* The value of setting `key` (an integer, a bool as 0/1, a word as its index). */
static double arg(const zoo_args *a, const char *key) {
    for (int i = 0; i < a->n_keys; i++)
        if (!strcmp(a->settings[i].key, key)) return a->values[i];
    return 0;
}

static int64_t arg_int(const zoo_args *a, const char *key) { return (int64_t)arg(a, key); }

/* The activation block named by setting `key`. */
static bk_module *arg_activation(const zoo_args *a, const char *key) {
    return ACTIVATION_NEW[arg_int(a, key)]();
}

/* Parameters of the layers, as src/nn builds them (weights and biases; BatchNorm's running
 * statistics are buffers, not parameters). */
static double linear_params(double in, double out) { return in * out + out; }
static double conv_params(double in, double out, double k) { return in * out * k * k + out; }
static double bn_params(double c) { return 2 * c; }

static double softmax_params(const zoo_args *a, const zoo_input *in, int n_classes) {
    return linear_params((double)in->numel, n_classes) - (arg(a, "bias") ? 0 : n_classes);
}

static double mlp_params(const zoo_args *a, const zoo_input *in, int n_classes) {
    double hidden = arg(a, "hidden");
    return linear_params((double)in->numel, hidden) + linear_params(hidden, n_classes);
}

/* Flatten -> Linear(in, classes) (bias: with a bias): softmax regression (D2L 3.6) */
static bk_module *build_softmax(const zoo_args *a, const zoo_input *in, int n_classes) {
    return bk_nn_sequential(2, bk_nn_flatten(1, -1),
                            bk_nn_linear_ex(in->numel, n_classes, arg(a, "bias") != 0));
}

/* Flatten -> Linear(in, hidden) -> act -> [Dropout(dropout)] -> Linear(hidden, classes)
 * (D2L 4.2; the dropout of D2L 4.6, only when dropout > 0) */
static bk_module *build_mlp(const zoo_args *a, const zoo_input *in, int n_classes) {
    int64_t hidden = arg_int(a, "hidden");
    bk_module *head = bk_nn_linear(hidden, n_classes);
    double p = arg(a, "dropout");
    if (p > 0)
        return bk_nn_sequential(5, bk_nn_flatten(1, -1), bk_nn_linear(in->numel, hidden),
                                arg_activation(a, "act"), bk_nn_dropout((float)p), head);
    return bk_nn_sequential(4, bk_nn_flatten(1, -1), bk_nn_linear(in->numel, hidden),
                            arg_activation(a, "act"), head);
}

/* ---- CNNs: C = in channels, H x W = image size, taken from the input shape (C, H, W) -- */

static bool image_input(const zoo_input *in) {
    char s[128];
    if (in->ndim != 3) {
        bk_set_error("expects image inputs of shape (C, H, W), got %s",
                     bk__shape_fmt(in->ndim, in->shape, s, sizeof s));
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

/* act and pool: lenet:act=sigmoid,pool=avg is D2L's original LeNet. */
static bk_module *lenet_pool(const zoo_args *a) {
    return arg_int(a, "pool") ? bk_nn_avg_pool2d(2, 2, 0) : bk_nn_max_pool2d(2, 2, 0);
}

static bk_module *build_lenet(const zoo_args *a, const zoo_input *in, int n_classes) {
    int64_t C = in->shape[0], H = in->shape[1], W = in->shape[2];
    int64_t h = (H / 2 - 4) / 2, w = (W / 2 - 4) / 2; /* after conv1 (same), pool, conv2 (-4), pool */
    return bk_nn_sequential(12, bk_nn_conv2d(C, 6, 5, 1, 2), arg_activation(a, "act"), lenet_pool(a),
                            bk_nn_conv2d(6, 16, 5, 1, 0), arg_activation(a, "act"), lenet_pool(a),
                            bk_nn_flatten(1, -1), bk_nn_linear(16 * h * w, 120), arg_activation(a, "act"),
                            bk_nn_linear(120, 84), arg_activation(a, "act"), bk_nn_linear(84, n_classes));
}

/* D2L's resnet_block: two Residual blocks; all but the first stage halve H and W and
 * change the width through a 1x1 convolution in their first block. */
static bk_module *resnet_stage(int64_t in_channels, int64_t channels, bool first_stage) {
    return bk_nn_sequential(2,
                            first_stage ? bk_nn_residual(in_channels, channels, false, 1)
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
    double C = (double)in->shape[0], w = arg(a, "width");
    return conv_params(C, w, 3) + bn_params(w) + resnet_stage_params(w, w, true) +
           resnet_stage_params(w, 2 * w, false) + resnet_stage_params(2 * w, 4 * w, false) +
           resnet_stage_params(4 * w, 8 * w, false) + linear_params(8 * w, n_classes);
}

static bk_module *build_resnet(const zoo_args *a, const zoo_input *in, int n_classes) {
    int64_t C = in->shape[0], w = arg_int(a, "width");
    return bk_nn_sequential(8,
                            bk_nn_sequential(3, bk_nn_conv2d(C, w, 3, 1, 1), bk_nn_batch_norm2d(w),
                                             bk_nn_relu()),
                            resnet_stage(w, w, true), resnet_stage(w, 2 * w, false),
                            resnet_stage(2 * w, 4 * w, false), resnet_stage(4 * w, 8 * w, false),
                            bk_nn_adaptive_avg_pool2d(1, 1), bk_nn_flatten(1, -1),
                            bk_nn_linear(8 * w, n_classes));
}

/* A small GoogLeNet (D2L 8.4) for 28 x 28 inputs: D2L's stages with about a quarter of
 * the channels, a single 3x3 stem convolution and two Inception stages.
 * (C, 28, 28) -> 32 x 14 x 14 -> 64 -> 120 x 7 x 7 -> 128 -> 208 x 7 x 7 -> 208 -> classes. */
typedef struct inception_cfg {
    int64_t in, c1, c2[2], c3[2], c4; /* bk_nn_inception's arguments */
} inception_cfg;

/* The four Inception blocks, two a stage: googlenet_params counts what build_googlenet builds. */
static const inception_cfg GOOGLENET_INCEPTION[4] = {
    {32, 16, {24, 32}, {4, 8}, 8},
    {64, 32, {32, 48}, {8, 24}, 16},
    {120, 48, {24, 52}, {4, 12}, 16},
    {128, 64, {40, 80}, {8, 32}, 32},
};

static double inception_params(const inception_cfg *c) {
    return conv_params(c->in, c->c1, 1) + conv_params(c->in, c->c2[0], 1) +
           conv_params(c->c2[0], c->c2[1], 3) + conv_params(c->in, c->c3[0], 1) +
           conv_params(c->c3[0], c->c3[1], 5) + conv_params(c->in, c->c4, 1);
}

static double googlenet_params(const zoo_args *a, const zoo_input *in, int n_classes) {
    (void)a;
    if (!image_input(in)) return -1;
    double n = conv_params((double)in->shape[0], 32, 3);
    for (int i = 0; i < 4; i++) n += inception_params(&GOOGLENET_INCEPTION[i]);
    return n + linear_params(208, n_classes);
}

static bk_module *inception(int i) {
    const inception_cfg *c = &GOOGLENET_INCEPTION[i];
    return bk_nn_inception(c->in, c->c1, c->c2, c->c3, c->c4);
}

static bk_module *build_googlenet(const zoo_args *a, const zoo_input *in, int n_classes) {
    (void)a;
    int64_t C = in->shape[0];
    bk_module *b1 = bk_nn_sequential(3, bk_nn_conv2d(C, 32, 3, 1, 1), bk_nn_relu(),
                                     bk_nn_max_pool2d(3, 2, 1));
    bk_module *b2 = bk_nn_sequential(3, inception(0), inception(1), bk_nn_max_pool2d(3, 2, 1));
    bk_module *b3 = bk_nn_sequential(4, inception(2), inception(3), bk_nn_adaptive_avg_pool2d(1, 1),
                                     bk_nn_flatten(1, -1));
    return bk_nn_sequential(4, b1, b2, b3, bk_nn_linear(208, n_classes));
}

/* The settings of the models. A size (hidden, width) goes up to 2^32: BK_MODEL_MAX_PARAMS
 * refuses the large ones with a better message. */
#define ZOO_SIZE(key, def) \
    { key, ZOO_INT, def, 1, 4294967296.0, NULL, false }
#define ZOO_ACT \
    { "act", ZOO_WORD, 0, 0, 0, ACTIVATIONS, true } /* default relu */
static const zoo_setting SOFTMAX_SETTINGS[] = {{"bias", ZOO_BOOL, 1, 0, 1, NULL, true}};
static const zoo_setting MLP_SETTINGS[] = {ZOO_SIZE("hidden", 256),
                                           ZOO_ACT,
                                           {"dropout", ZOO_FLOAT, 0, 0, 1, NULL, true}};
static const zoo_setting LENET_SETTINGS[] = {ZOO_ACT, {"pool", ZOO_WORD, 0, 0, 0, POOLS, true}};
static const zoo_setting RESNET_SETTINGS[] = {ZOO_SIZE("width", 32)};
#define ZOO_SETTINGS(list) (int)(sizeof list / sizeof list[0]), list

static const zoo_entry MODELS[] = {
    {"softmax", "softmax regression: Flatten, Linear(in, classes)", ZOO_SETTINGS(SOFTMAX_SETTINGS),
     softmax_params, build_softmax},
    {"mlp",
     "multilayer perceptron: Flatten, Linear(in, hidden), act, [Dropout(dropout) when dropout > 0], "
     "Linear(hidden, classes)",
     ZOO_SETTINGS(MLP_SETTINGS), mlp_params, build_mlp},
    {"lenet",
     "LeNet (ReLU, max-pool): Conv2d(C, 6, 5, padding=2), MaxPool2d(2), Conv2d(6, 16, 5), MaxPool2d(2), "
     "Linear(400, 120), Linear(120, 84), Linear(84, classes); needs (C, H, W) inputs "
     "(act=sigmoid,pool=avg: D2L's original)",
     ZOO_SETTINGS(LENET_SETTINGS), lenet_params, build_lenet},
    {"resnet",
     "ResNet-18 for small images: 3x3 stem Conv2d(C, width) + BatchNorm2d + ReLU, four stages of two "
     "Residual blocks (widths width..8*width, stride 2 from stage 2), global average pool, Linear",
     ZOO_SETTINGS(RESNET_SETTINGS), resnet_params, build_resnet},
    {"googlenet",
     "small GoogLeNet: 3x3 stem Conv2d(C, 32) + MaxPool2d, four Inception blocks (64, 120, 128, 208 "
     "channels) with a MaxPool2d between the pairs, global average pool, Linear(208, classes)",
     0, NULL, googlenet_params, build_googlenet},
};
#define N_MODELS (sizeof MODELS / sizeof MODELS[0])

const char *const *bk_model_names(void) {
    static const char *names[N_MODELS + 1];
    for (size_t i = 0; i < N_MODELS; i++) names[i] = MODELS[i].name;
    names[N_MODELS] = NULL;
    return names;
}

/* ---- settings: parsing and printing ------------------------------------------------ */

/* Parses the value v of setting st into *out; else writes why ("must be ...") to why[n]. */
static bool setting_parse(const zoo_setting *st, const char *v, double *out, char *why, size_t n) {
    char *end = NULL;
    errno = 0;
    switch (st->kind) {
    case ZOO_INT: {
        long long x = strtoll(v, &end, 10);
        if (*v && !*end && !errno && (double)x >= st->min && (double)x <= st->max) {
            *out = (double)x;
            return true;
        }
        if (st->min == 1) snprintf(why, n, "must be a positive integer (at most %.0f)", st->max);
        else snprintf(why, n, "must be an integer in %.0f..%.0f", st->min, st->max);
        return false;
    }
    case ZOO_FLOAT: {
        double x = strtod(v, &end);
        if (*v && !*end && !errno && isfinite(x) && x >= st->min && x <= st->max) {
            *out = x;
            return true;
        }
        snprintf(why, n, "must be a number in [%g, %g]", st->min, st->max);
        return false;
    }
    case ZOO_BOOL:
        if (!strcmp(v, "true") || !strcmp(v, "false")) {
            *out = !strcmp(v, "true");
            return true;
        }
        snprintf(why, n, "must be true or false");
        return false;
    case ZOO_WORD: {
        size_t k = (size_t)snprintf(why, n, "must be one of");
        for (int i = 0; st->words[i]; i++) {
            if (!strcmp(v, st->words[i])) {
                *out = i;
                return true;
            }
            if (k < n) k += (size_t)snprintf(why + k, n - k, "%s %s", i ? "," : "", st->words[i]);
        }
        return false;
    }
    default: snprintf(why, n, "has an unknown kind (internal error)"); return false;
    }
}

/* The shortest "%.Ng" of x that strtod reads back as x, so that a canonical spec holds
 * "0.1", not "0.10000000000000001", and still parses back to the same number. */
static void number_print(double x, char *buf, size_t n) {
    for (int digits = 1; digits <= 17; digits++) {
        snprintf(buf, n, "%.*g", digits, x);
        if (strtod(buf, NULL) == x) return;
    }
}

/* The value v of setting st as a spec writes it (setting_parse reads it back). */
static void setting_print(const zoo_setting *st, double v, char *buf, size_t n) {
    if (st->kind == ZOO_INT) snprintf(buf, n, "%.0f", v);
    else if (st->kind == ZOO_FLOAT) number_print(v, buf, n);
    else if (st->kind == ZOO_BOOL) snprintf(buf, n, "%s", v ? "true" : "false");
    else snprintf(buf, n, "%s", st->words[(int)v]);
}

/* name, then ":key=value" for each setting a canonical spec names (see the top). */
static void canonical_spec(const zoo_entry *e, const zoo_args *a, char *out, size_t size) {
    size_t k = (size_t)snprintf(out, size, "%s", e->name);
    for (int i = 0, named = 0; i < a->n_keys && k < size; i++) {
        const zoo_setting *st = &a->settings[i];
        double v = a->values[i];
        if (st->optional && v == st->def) continue;
        char text[64];
        setting_print(st, v, text, sizeof text);
        k += (size_t)snprintf(out + k, size - k, "%c%s=%s", named++ ? ',' : ':', st->key, text);
    }
}

/* The model called name[0..len), or NULL with the error that lists the known names. */
static const zoo_entry *model_find(const char *name, size_t len) {
    for (size_t i = 0; i < N_MODELS; i++)
        if (strlen(MODELS[i].name) == len && !strncmp(MODELS[i].name, name, len)) return &MODELS[i];
    char known[256] = "";
    for (size_t i = 0; i < N_MODELS; i++) {
        strncat(known, i ? ", " : "", sizeof known - strlen(known) - 1);
        strncat(known, MODELS[i].name, sizeof known - strlen(known) - 1);
    }
    bk_set_error("model: unknown model \"%.*s\" (known: %s)", (int)len, name, known);
    return NULL;
}

const char *bk_model_describe(const char *name, int *n_settings) {
    if (!name) {
        bk_set_error("model_describe: name is NULL");
        return NULL;
    }
    const zoo_entry *e = model_find(name, strlen(name));
    if (e && n_settings) *n_settings = e->n_settings;
    return e ? e->doc : NULL;
}

int bk_model_setting_info(const char *name, int i, bk_model_setting *out) {
    if (!name || !out) {
        bk_set_error("model_setting_info: %s is NULL", name ? "out" : "name");
        return -1;
    }
    const zoo_entry *e = model_find(name, strlen(name));
    if (!e) return -1;
    if (i < 0 || i >= e->n_settings) {
        bk_set_error("model %s: setting index %d is out of range (%d settings)", e->name, i, e->n_settings);
        return -1;
    }
    static const char *const TYPES[ZOO_KIND_COUNT] = {"integer", "number", "boolean", "word"};
    const zoo_setting *st = &e->settings[i];
    out->key = st->key;
    out->type = TYPES[st->kind];
    setting_print(st, st->def, out->def, sizeof out->def);
    if (st->kind == ZOO_INT) {
        snprintf(out->values, sizeof out->values, "%.0f..%.0f", st->min, st->max);
    } else if (st->kind == ZOO_FLOAT) {
        char lo[32], hi[32];
        number_print(st->min, lo, sizeof lo);
        number_print(st->max, hi, sizeof hi);
        snprintf(out->values, sizeof out->values, "%s..%s", lo, hi);
    } else if (st->kind == ZOO_BOOL) {
        snprintf(out->values, sizeof out->values, "true|false");
    } else {
        size_t k = 0;
        out->values[0] = '\0';
        for (int w = 0; st->words[w] && k < sizeof out->values; w++)
            k += (size_t)snprintf(out->values + k, sizeof out->values - k, "%s%s", w ? "|" : "",
                                  st->words[w]);
    }
    return 0;
}

/* Parses spec for the input and classes into *e and *a, writes the canonical spec and
 * counts the parameters (checked against BK_MODEL_MAX_PARAMS). -1 with an error. */
static int64_t model_check(const char *spec, int in_ndim, const int64_t *in_shape, int n_classes,
                           char *canonical, size_t canonical_size, const zoo_entry **entry, zoo_args *args,
                           zoo_input *input) {
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
    const zoo_entry *e = model_find(spec, name_len);
    if (!e) return -1;
    zoo_args a = {e->n_settings, e->settings, {0}};
    for (int i = 0; i < a.n_keys; i++) a.values[i] = a.settings[i].def;
    for (const char *p = colon ? colon + 1 : NULL; p && *p;) {
        const char *eq = strchr(p, '='), *end = strchr(p, ',');
        if (!end) end = p + strlen(p);
        if (!eq || eq > end) {
            bk_set_error("model: %s: expected key=value, got \"%.*s\"", spec, (int)(end - p), p);
            return -1;
        }
        int k = -1;
        for (int i = 0; i < a.n_keys; i++)
            if (strlen(a.settings[i].key) == (size_t)(eq - p) &&
                !strncmp(a.settings[i].key, p, (size_t)(eq - p)))
                k = i;
        if (k < 0) {
            bk_set_error("model: %s: model %s has no setting \"%.*s\"", spec, e->name, (int)(eq - p), p);
            return -1;
        }
        char value[64], why[160];
        size_t len = (size_t)(end - eq - 1);
        snprintf(value, sizeof value, "%.*s", (int)(len < sizeof value ? len : sizeof value - 1), eq + 1);
        if (len >= sizeof value || !setting_parse(&a.settings[k], value, &a.values[k], why, sizeof why)) {
            if (len >= sizeof value) snprintf(why, sizeof why, "is too long");
            bk_set_error("model: %s: %s %s, got \"%.*s\"", spec, a.settings[k].key, why, (int)len, eq + 1);
            return -1;
        }
        p = *end ? end + 1 : end;
    }
    if (canonical && canonical_size) canonical_spec(e, &a, canonical, canonical_size);
    zoo_input in = {in_ndim, in_shape, in_features};
    double params = e->params(&a, &in, n_classes);
    if (params < 0) {
        bk__error_prefix("model %s", e->name);
        return -1;
    }
    if (params > (double)BK_MODEL_MAX_PARAMS) {
        bk_set_error(
            "model %s: %s has %.4g parameters (%.3g GiB of float32 weights), more than "
            "the %" PRId64 " (BK_MODEL_MAX_PARAMS) a model may have",
            e->name, spec, params, params * 4 / 1073741824.0, (int64_t)BK_MODEL_MAX_PARAMS);
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
