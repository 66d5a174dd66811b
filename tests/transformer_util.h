/* transformer_util.h - what test_transformer.c and test_transformer_layers.c share: the
 * test's random stream, gradcheck with its tolerances (see test_transformer.c), and checks
 * of a block's printing and names. Each test file includes it once.
 */
#ifndef BRICK_TESTS_TRANSFORMER_UTIL_H
#define BRICK_TESTS_TRANSFORMER_UTIL_H

#include "test.h"
#include "gradcheck.h"

#include <stdint.h>
#include <time.h>


static bk_rng g_rng;

static inline bk_tensor *randn_t(int nd, const int64_t *shape, float scale) {
    bk_tensor *t = bk_empty(nd, shape);
    if (t)
        for (int64_t i = 0; i < t->numel; i++) t->data[i] = scale * bk_rng_normal(&g_rng);
    return t;
}
#define RANDN(...) randn_t(BK_SHAPE(__VA_ARGS__), 1.0f)
#define LEAF(t) bk_requires_grad((t), true)

static inline bool repr_is(const bk_module *m, const char *want) {
    char got[8192];
    int n = bk_module_repr(m, got, sizeof got);
    bool ok = n >= 0 && strcmp(got, want) == 0;
    if (!ok) fprintf(stderr, "  repr:\n%s\n  want:\n%s\n", got, want);
    return ok;
}

static inline bool names_are(const bk_module *m, int which, const char *const *want, int n) {
    bk_param_list *l = bk_module_named(m, which);
    bool ok = l && l->n == n;
    for (int i = 0; ok && i < n; i++) ok = strcmp(l->names[i], want[i]) == 0;
    if (!ok) {
        fprintf(stderr, "  names:");
        for (int i = 0; l && i < l->n; i++) fprintf(stderr, " %s", l->names[i]);
        fprintf(stderr, "\n");
    }
    bk_param_list_free(l);
    return ok;
}

static inline double max_abs_diff(const bk_tensor *a, const bk_tensor *b) {
    if (!a || !b || a->numel != b->numel) return INFINITY;
    double m = 0;
    for (int64_t i = 0; i < a->numel; i++) {
        double d = fabs((double)a->data[i] - b->data[i]);
        if (!(d <= m)) m = d;
    }
    return m;
}

/* Seeds g_rng from $BRICK_TEST_SEED, else $BRICK_SEED, else the clock, and prints the seed. */
static inline void seed_from_env(const char *test) { bk_rng_seed(&g_rng, test_seed(test)); }

#endif /* BRICK_TESTS_TRANSFORMER_UTIL_H */
