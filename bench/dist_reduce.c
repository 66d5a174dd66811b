/* dist_reduce.c - the time of one gradient reduction (bk_ddp_reduce) across the ranks of
 * an mpirun job, for gradients of the zoo's sizes and larger, in both modes.
 *
 *   make bench && mpirun -np P build/bench/dist_reduce [-r REPEATS]
 *     -r N   reductions per size and mode (default 50); the median is printed
 *
 * Rank 0 prints, per size: the median time of one reduction (every rank ready: a barrier
 * before each) and the bus bandwidth 2 (P - 1) / P * bytes / time, the bytes each rank
 * sends and receives in a ring-like reduction (the deterministic mode's all-to-all plus
 * all-gather moves the same amount), which is what a projection to N machines needs
 * (docs/distributed.md). Without mpirun it runs as a world of one (no communication).
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime */
#include "brick.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    if (bk_dist_init(&argc, &argv, false) != 0) {
        fprintf(stderr, "dist_reduce: %s\n", bk_last_error());
        return 1;
    }
    int reps = 50;
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "-r") && i + 1 < argc) reps = atoi(argv[++i]);
    if (reps < 1) reps = 1;
    /* (name, floats): LeNet, the MLP and resnet:width=8 have 61,706, 203,530 and 176,634
     * parameters */
    static const struct {
        const char *name;
        int64_t n;
    } SIZES[] = {{"lenet", 61706},   {"resnet:width=8", 176634}, {"mlp", 203530},
                 {"4 MiB", 1 << 20}, {"16 MiB", 1 << 22},        {"64 MiB", 1 << 24}};
    int P = bk_dist_world_size(), rank = bk_dist_rank();
    if (rank == 0)
        printf("%d ranks, %d reductions per row (median)\n%-16s %10s %-13s %10s %10s\n", P, reps, "gradients",
               "floats", "mode", "ms", "bus GB/s");
    double *t = malloc((size_t)reps * sizeof *t);
    int rc = 0;
    for (size_t s = 0; s < sizeof SIZES / sizeof SIZES[0] && !rc; s++) {
        bk_module *m = bk_nn_linear_ex(SIZES[s].n, 1, false); /* one weight of n floats */
        for (int mode = 0; mode < BK_DIST_MODE_COUNT && m && !rc; mode++) {
            bk_ddp *d = bk_ddp_new(m, SIZES[s].name, (bk_dist_mode)mode);
            if (!d) {
                rc = 1;
                break;
            }
            bk_tensor *w = bk_module_get(m, "weight");
            for (int k = 0; k < reps && !rc; k++) {
                for (int64_t i = 0; i < w->numel && w->grad; i++) w->grad->data[i] = (float)(i % 7);
                rc |= bk_dist_barrier();
                double t0 = now();
                rc |= bk_ddp_reduce(d, (float)P);
                t[k] = now() - t0;
            }
            qsort(t, (size_t)reps, sizeof *t, cmp_double);
            double med = t[reps / 2], bytes = 4.0 * (double)SIZES[s].n;
            if (rank == 0)
                printf("%-16s %10lld %-13s %10.3f %10.2f\n", SIZES[s].name, (long long)SIZES[s].n,
                       mode ? "fast" : "deterministic", 1e3 * med,
                       P > 1 ? 2.0 * (P - 1) / P * bytes / med / 1e9 : 0.0);
            bk_ddp_free(d);
        }
        bk_module_free(m);
    }
    if (rc) fprintf(stderr, "dist_reduce: rank %d: %s\n", rank, bk_last_error());
    free(t);
    bk_dist_finalize();
    return rc;
}
