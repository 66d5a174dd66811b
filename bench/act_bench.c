/* act_bench.c - time of the activation rows on one large tensor: forward, and forward +
 * backward (through a sum), per op.
 *
 *   make bench && OMP_NUM_THREADS=1 build/bench/act_bench [N]
 *
 * x is N (default 2^20) floats from N(0, 9), so about half are negative: a row whose loop
 * branches on the sign mispredicts every other element, which this shows (issue 16: the
 * first leaky_relu, elu, hardswish and hardsigmoid rows ran 15 to 20 times slower than
 * relu). Times are the calling thread's CPU time (CLOCK_THREAD_CPUTIME_ID), median of 21
 * runs, so other processes on a shared machine disturb them less than wall time; with more
 * than one thread they undercount (the other threads' time is not included).
 */
#define _POSIX_C_SOURCE 200809L
#include <brick.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define RUNS 21

static double thread_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static int by_value(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static bk_tensor *apply(int k, bk_tensor *x) {
    switch (k) {
    case 0: return bk_relu(x);
    case 1: return bk_leaky_relu(x, 0.01f);
    case 2: return bk_elu(x, 1.0f);
    case 3: return bk_softplus(x, 1.0f, 20.0f);
    case 4: return bk_mish(x);
    case 5: return bk_hardswish(x);
    case 6: return bk_hardsigmoid(x);
    case 7: return bk_clamp(x, -1.0f, 1.0f);
    case 8: return bk_silu(x);
    default: return bk_gelu(x);
    }
}

int main(int argc, char **argv) {
    static const char *const names[] = {"relu",      "leaky_relu",  "elu",   "softplus", "mish",
                                        "hardswish", "hardsigmoid", "clamp", "silu",     "gelu"};
    int64_t n = argc > 1 ? atoll(argv[1]) : (int64_t)1 << 20;
    bk_tensor *x = bk_tensor_new(1, (int64_t[]){n});
    if (!x || bk_fill_normal(x, NULL, 0.0f, 3.0f) != 0) {
        fprintf(stderr, "act_bench: %s\n", bk_last_error());
        return 1;
    }
    bk_requires_grad(x, true);
    printf("act_bench: %lld floats, thread CPU time, median of %d\n", (long long)n, RUNS);
    printf("%-12s %12s %14s\n", "op", "forward us", "fwd+bwd us");
    for (int k = 0; k < 10; k++) {
        double fwd[RUNS], both[RUNS];
        for (int r = 0; r < RUNS; r++) {
            double t0 = thread_seconds();
            bk_tensor *y = apply(k, x);
            double t1 = thread_seconds();
            if (!y || bk_backward(bk_sum(y)) != 0) {
                fprintf(stderr, "act_bench: %s: %s\n", names[k], bk_last_error());
                return 1;
            }
            double t2 = thread_seconds();
            fwd[r] = t1 - t0;
            both[r] = t2 - t0;
            bk_arena_reset(NULL);
        }
        qsort(fwd, RUNS, sizeof *fwd, by_value);
        qsort(both, RUNS, sizeof *both, by_value);
        printf("%-12s %12.0f %14.0f\n", names[k], fwd[RUNS / 2] * 1e6, both[RUNS / 2] * 1e6);
    }
    bk_tensor_free(x);
    return 0;
}
