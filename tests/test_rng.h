/* test_rng.h - a randomised test's own PCG32 stream and its draws (shapes, settings,
 * values), shared by the op tests' headers (op_cases.h, op_refs.h). main calls
 * test_rng_seed first: it reads and prints the run's seed (test_seed) and seeds both this
 * stream and the global one the ops draw from (dropout, fills without a stream), so that
 * BRICK_TEST_SEED=<seed> repeats a run.
 */
#ifndef BRICK_TEST_RNG_H
#define BRICK_TEST_RNG_H

#include "gradcheck.h"

#include <stdint.h>

static bk_rng g_rng; /* the test's own stream */

static inline void test_rng_seed(const char *suite) {
    uint64_t seed = test_seed(suite);
    bk_rng_seed(&g_rng, seed);
    bk_manual_seed(seed);
}

/* uniform in [lo, hi] (hi - lo < 2^32) */
static inline int64_t rand_int(int64_t lo, int64_t hi) {
    return lo + (int64_t)(bk_rng_u32(&g_rng) % (uint32_t)(hi - lo + 1));
}
static inline float rand_float(float lo, float hi) { return lo + (hi - lo) * bk_rng_uniform(&g_rng); }

#endif /* BRICK_TEST_RNG_H */
