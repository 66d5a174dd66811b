/* zoo.c - models by name, for the CLI and for checkpoints that must rebuild their model.
 *
 * A spec is "name" or "name:key=value,key=value" with integer values. Each model lists
 * its settings with defaults; the canonical spec names every setting, so a checkpoint's
 * "brick.arch" rebuilds exactly the trained architecture. Adding a model = one entry in
 * MODELS and its build function.
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

typedef struct zoo_entry {
    const char *name;
    const char *doc;
    zoo_args defaults;
    bk_module *(*build)(const zoo_args *a, int64_t in_features, int n_classes);
} zoo_entry;

static int64_t arg(const zoo_args *a, const char *key) {
    for (int i = 0; i < a->n_keys; i++)
        if (!strcmp(a->keys[i], key)) return a->values[i];
    return 0;
}

/* Flatten -> Linear(in, classes): softmax regression (D2L 3.6) */
static bk_module *build_softmax(const zoo_args *a, int64_t in, int n_classes) {
    (void)a;
    return bk_nn_sequential(2, bk_nn_flatten(1, -1), bk_nn_linear(in, n_classes));
}

/* Flatten -> Linear(in, hidden) -> ReLU -> Linear(hidden, classes) (D2L 4.2) */
static bk_module *build_mlp(const zoo_args *a, int64_t in, int n_classes) {
    int64_t hidden = arg(a, "hidden");
    return bk_nn_sequential(4, bk_nn_flatten(1, -1), bk_nn_linear(in, hidden), bk_nn_relu(),
                            bk_nn_linear(hidden, n_classes));
}

static const zoo_entry MODELS[] = {
    {"softmax", "softmax regression: Flatten, Linear(in, classes)", {0, {NULL}, {0}}, build_softmax},
    {"mlp", "multilayer perceptron: Flatten, Linear(in, hidden), ReLU, Linear(hidden, classes)",
     {1, {"hidden"}, {256}}, build_mlp},
};
#define N_MODELS (sizeof MODELS / sizeof MODELS[0])

const char *const *bk_model_names(void) {
    static const char *names[N_MODELS + 1];
    for (size_t i = 0; i < N_MODELS; i++) names[i] = MODELS[i].name;
    names[N_MODELS] = NULL;
    return names;
}

bk_module *bk_model_build(const char *spec, int in_ndim, const int64_t *in_shape, int n_classes,
                          char *canonical, size_t canonical_size) {
    if (!spec) {
        bk_set_error("model: spec is NULL");
        return NULL;
    }
    int64_t in_features;
    if (!bk__shape_ok("model", in_ndim, in_shape, &in_features)) return NULL;
    if (n_classes <= 0) {
        bk_set_error("model: %s: the number of classes must be positive (got %d)", spec, n_classes);
        return NULL;
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
        return NULL;
    }
    zoo_args a = e->defaults;
    for (const char *p = colon ? colon + 1 : NULL; p && *p;) {
        const char *eq = strchr(p, '='), *end = strchr(p, ',');
        if (!end) end = p + strlen(p);
        if (!eq || eq > end) {
            bk_set_error("model: %s: expected key=value, got \"%.*s\"", spec, (int)(end - p), p);
            return NULL;
        }
        int k = -1;
        for (int i = 0; i < a.n_keys; i++)
            if (strlen(a.keys[i]) == (size_t)(eq - p) && !strncmp(a.keys[i], p, (size_t)(eq - p))) k = i;
        if (k < 0) {
            bk_set_error("model: %s: model %s has no setting \"%.*s\"", spec, e->name, (int)(eq - p), p);
            return NULL;
        }
        char *num_end;
        errno = 0;
        long long v = strtoll(eq + 1, &num_end, 10);
        if (num_end != end || errno || v <= 0 || v > (1LL << 32)) {
            bk_set_error("model: %s: %s must be a positive integer, got \"%.*s\"", spec, a.keys[k],
                         (int)(end - eq - 1), eq + 1);
            return NULL;
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
    bk_module *m = e->build(&a, in_features, n_classes);
    if (!m) bk__error_prefix("model %s", e->name);
    return m;
}
