/* gradcheck.h - what the randomised op tests share: the run's seed, and bk_gradcheck with
 * the tolerances and a report that names the case. Include after test.h.
 *
 *   uint64_t seed = test_seed("test_ops");   reads and prints the seed (first line of output)
 *   CHECK(gradcheck_ok(what, f, in, n, ud)); or GRADCHECK(what, f, ud, x, w, b);
 *
 * Tolerances (the reasoning is in tests/test_ops.c's header): eps 1e-3 (a failure is
 * checked again at eps / 4: see gradcheck_ok), atol 5e-3, rtol 1e-2. BRICK_TEST_VERBOSE=1 prints every check's worst scaled error.
 */
#ifndef BRICK_TEST_GRADCHECK_H
#define BRICK_TEST_GRADCHECK_H

#include "test.h"

#include <stdint.h>
#include <time.h>

#define GRADCHECK_EPS 1e-3
#define GRADCHECK_ATOL 5e-3
#define GRADCHECK_RTOL 1e-2

/* The seed of this run: $BRICK_TEST_SEED, else $BRICK_SEED (the one `make test` prints),
 * else the clock. Printed first, so that a failure can be rerun with the same values. */
static inline uint64_t test_seed(const char *suite) {
    const char *e = getenv("BRICK_TEST_SEED");
    if (!e || !*e) e = getenv("BRICK_SEED");
    uint64_t seed = e && *e ? strtoull(e, NULL, 10) : (uint64_t)time(NULL) ^ ((uint64_t)clock() << 20);
    printf("%s: seed %llu (BRICK_TEST_SEED=%llu reproduces this run)\n", suite, (unsigned long long)seed,
           (unsigned long long)seed);
    fflush(stdout);
    return seed;
}

/* Runs bk_gradcheck; on failure prints `what` and the input shapes.
 *
 * A central difference is off by about eps^2 / 6 times the third derivative: where the
 * function curves sharply (a LayerNorm over 4 features whose variance happens to be small, as
 * test_transformer_layers drew at BRICK_TEST_SEED=2423732174: autograd -19.040, numeric
 * -18.808 at eps 1e-3, -17.066 at 3e-3, within tolerance at 5e-4), the estimate, not the
 * gradient, is wrong. So a failed check is repeated once at eps / 4, which cuts that error
 * 16-fold, with the same tolerances: a wrong gradient fails at both steps. */
static inline bool gradcheck_ok(const char *what, bk_gradcheck_fn f, bk_tensor *const *in, int n, void *ud) {
    double r = bk_gradcheck(f, in, n, ud, GRADCHECK_EPS, GRADCHECK_ATOL, GRADCHECK_RTOL, stderr);
    if (getenv("BRICK_TEST_VERBOSE")) fprintf(stderr, "  %-60s gradcheck worst %.3g\n", what, r);
    if (r >= 0 && r <= 1) return true;
    if (r > 1) {
        double r4 = bk_gradcheck(f, in, n, ud, GRADCHECK_EPS / 4, GRADCHECK_ATOL, GRADCHECK_RTOL, stderr);
        fprintf(stderr, "  %s: scaled error %.3g at eps %g, %.3g at eps %g\n", what, r, GRADCHECK_EPS, r4,
                GRADCHECK_EPS / 4);
        if (r4 >= 0 && r4 <= 1) return true;
    }
    fprintf(stderr, "  %s: gradcheck %s %.3g, inputs", what, r < 0 ? "failed:" : "worst scaled error", r);
    char sh[128];
    for (int i = 0; i < n; i++) fprintf(stderr, " %s", bk_shape_str(in[i], sh, sizeof sh));
    fprintf(stderr, r < 0 ? " (%s)\n" : "\n", bk_last_error());
    return false;
}

/* CHECKs gradcheck_ok over the tensors listed. */
#define GRADCHECK(what, fn, ud, ...)                                             \
    do {                                                                         \
        bk_tensor *in_[] = {__VA_ARGS__};                                        \
        CHECK(gradcheck_ok(what, fn, in_, (int)(sizeof in_ / sizeof *in_), ud)); \
    } while (0)

#endif /* BRICK_TEST_GRADCHECK_H */
