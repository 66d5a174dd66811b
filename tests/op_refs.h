/* op_refs.h - what the op tests that check against naive references in double share
 * (test_ops_cnn.c, test_ops_pool.c, test_ops_norm_act.c): the test's own random stream and
 * its draws (test_rng.h: main calls test_rng_seed first), and the comparisons of a float32
 * result with a double reference that print the first mismatches.
 */
#ifndef BRICK_TEST_OP_REFS_H
#define BRICK_TEST_OP_REFS_H

#include "test.h"
#include "gradcheck.h"
#include "test_rng.h"

#include <stdint.h>

#define TRIALS 6 /* random cases per check */

/* float32 unit roundoff, for the rounding bounds of the naive references */
#define U32 (1.0 / 16777216.0)

/* A leaf that requires grad, N(mean, std^2). */
static inline bk_tensor *leaf_normal(int nd, const int64_t *shape, float mean, float std) {
    bk_tensor *t = bk_empty(nd, shape);
    if (!t) return NULL;
    bk_fill_normal(t, &g_rng, mean, std);
    return bk_requires_grad(t, true);
}

static inline const char *shape_s(const bk_tensor *t, char *buf) { return bk_shape_str(t, buf, 64); }

static inline bool shape_is(const bk_tensor *t, int nd, const int64_t *shape) {
    if (!t || t->ndim != nd) return false;
    for (int i = 0; i < nd; i++)
        if (t->shape[i] != shape[i]) return false;
    return true;
}

/* got must equal want (double, n values) within atol + rtol |want|; prints the first
 * mismatches. */
static inline bool close_to(const char *what, const float *got, const double *want, int64_t n, double rtol,
                            double atol) {
    int bad = 0;
    for (int64_t i = 0; i < n; i++)
        if (!(fabs(got[i] - want[i]) <= atol + rtol * fabs(want[i])) && bad++ < 5)
            fprintf(stderr, "    %s[%lld]: got %.9g, want %.9g\n", what, (long long)i, (double)got[i],
                    want[i]);
    if (bad) fprintf(stderr, "  %s: %d of %lld values differ\n", what, bad, (long long)n);
    return bad == 0;
}

/* |got - want| <= tol elementwise (tol per element); prints the first mismatches. */
static inline bool within(const char *what, const float *got, const double *want, const double *tol,
                          int64_t n) {
    int bad = 0;
    for (int64_t i = 0; i < n; i++)
        if (!(fabs(got[i] - want[i]) <= tol[i]) && bad++ < 5)
            fprintf(stderr, "    %s[%lld]: got %.9g, want %.9g (tol %.3g)\n", what, (long long)i,
                    (double)got[i], want[i], tol[i]);
    if (bad) fprintf(stderr, "  %s: %d of %lld values differ\n", what, bad, (long long)n);
    return bad == 0;
}

#endif /* BRICK_TEST_OP_REFS_H */
