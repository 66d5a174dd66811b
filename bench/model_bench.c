/* model_bench.c - brick's side of bench/compare.py: times one workload (a training step,
 * an inference, a forward, a matrix product) for each thread count asked for, in one
 * process; bench/model_torch.py times the same workloads in PyTorch.
 *
 *   build/bench/model_bench WORKLOAD [--model SPEC] [--batch B] [--lr LR] [--momentum M]
 *                           [--iters N] [--warmup W] [--threads 1,2]
 *
 * WORKLOAD:
 *   train       one SGD step of a zoo model (SPEC: mlp, lenet, resnet:width=8, googlenet)
 *               on a fixed batch of B random (1, 28, 28) images in [0, 1) with random
 *               labels: forward, cross-entropy (mean), zero_grad, backward, optimizer step,
 *               arena reset (the loop of `brick train`, tools/train_loop.c, without the data
 *               loader's copy of the batch)
 *   infer       the zoo model's forward of B images in eval mode with grad off (B = 1:
 *               single-image latency)
 *   seed-fwd    the seed MLP of examples/01_sequential_mlp.c, Linear(20, 256), ReLU,
 *               Linear(256, 10), forward of B rows of U[0, 1) (D2L's batch: 2)
 *   seed-train  the same forward, then Y.sum().backward() (gradients zeroed first)
 *   sgemm       C = A @ B for (B x B) matrices (bk_matmul, grad off): SGEMM B^3
 *
 * For every thread count T (bk_set_num_threads, in the order given) it runs W warm-up
 * iterations, then N timed ones, and prints one line
 *
 *   RESULT threads=T median_ms=1.234 cpu_ms=1.200 iters=N group=G
 *
 * (median wall time of an iteration; cpu_ms: the process's CPU time, all threads, median).
 * Iterations shorter than ~0.5 ms are timed in groups of G (doubled from 1 until a group
 * takes 0.5 ms), at least 21 groups and N iterations in all, each group's time divided by
 * G: reading the clocks is not free (in this VM a CPU-time read is a system call of ~5 µs,
 * a wall-clock read ~0.2 µs), and timing each 1 µs iteration by itself reported the seed
 * MLP's forward at 2.5 µs when it took 0.9. G is 1 for a training step.
 * Results do not depend on T (brick never splits a summation), so the runs are comparable.
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime */
#include "brick.h"

#include "bench_timing.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_THREAD_COUNTS 8

typedef enum { W_TRAIN, W_INFER, W_SEED_FWD, W_SEED_TRAIN, W_SGEMM } workload;

typedef struct bench {
    workload w;
    bk_module *m;
    bk_optim *o;
    bk_tensor *X;  /* the input: (B, 1, 28, 28), (B, 20) or A of (B, B) */
    bk_tensor *B2; /* sgemm's second matrix (B, B) */
    int64_t *y;    /* labels (B) */
    int64_t batch;
} bench;

/* One iteration of the workload; 0 or -1 (error in bk_last_error()). */
static int iterate(bench *b) {
    int rc = 0;
    switch (b->w) {
    case W_TRAIN: {
        bk_tensor *logits = bk_forward(b->m, b->X); /* (B, 10) */
        bk_tensor *loss = bk_cross_entropy(logits, b->y, b->batch, BK_REDUCTION_MEAN);
        bk_optim_zero_grad(b->o);
        rc = loss && bk_backward(loss) == 0 && bk_optim_step(b->o) == 0 ? 0 : -1;
        break;
    }
    case W_INFER:
    case W_SEED_FWD:
        rc = bk_forward(b->m, b->X) ? 0 : -1; /* (B, 10) */
        break;
    case W_SEED_TRAIN: {
        bk_module_zero_grad(b->m);
        bk_tensor *Y = bk_forward(b->m, b->X); /* (B, 10) */
        rc = Y && bk_backward(bk_sum(Y)) == 0 ? 0 : -1;
        break;
    }
    case W_SGEMM:
        rc = bk_matmul(b->X, b->B2) ? 0 : -1; /* (B, B) */
        break;
    }
    bk_arena_reset(NULL);
    return rc;
}

#define MIN_GROUPS 21 /* timed samples when iterations are grouped */

static long max_long(long a, long b) { return a > b ? a : b; }

/* Iterations per timed sample: 1, doubled until they take 0.5 ms of wall time together (the
 * runs count as warm-up); -1 if an iteration fails. */
static long group_size(bench *b) {
    for (long g = 1;; g *= 2) {
        double t0 = clock_ms(CLOCK_MONOTONIC);
        for (long i = 0; i < g; i++)
            if (iterate(b) != 0) return -1;
        if (clock_ms(CLOCK_MONOTONIC) - t0 >= 0.5 || g >= 1L << 20) return g;
    }
}

/* Builds the model and the inputs of b->w; 0 or -1. The inputs come from bk_tensor_new,
 * so they are owned here and survive every bk_arena_reset of the loop. */
static int setup(bench *b, const char *spec, double lr, double momentum) {
    bk_manual_seed(0);
    int64_t B = b->batch;
    if (b->w == W_SGEMM) {
        int64_t shape[2] = {B, B};
        b->X = bk_tensor_new(2, shape);
        b->B2 = bk_tensor_new(2, shape);
        if (!b->X || !b->B2) return -1;
        bk_fill_uniform(b->X, NULL, -1.0f, 1.0f);
        bk_fill_uniform(b->B2, NULL, -1.0f, 1.0f);
        bk_set_grad_enabled(false);
        return 0;
    }
    if (b->w == W_SEED_FWD || b->w == W_SEED_TRAIN) {
        b->m = bk_nn_sequential(3, bk_nn_linear(20, 256), bk_nn_relu(), bk_nn_linear(256, 10));
        int64_t shape[2] = {B, 20};
        b->X = bk_tensor_new(2, shape);
        if (!b->m || !b->X) return -1;
        bk_fill_uniform(b->X, NULL, 0.0f, 1.0f);
        if (b->w == W_SEED_FWD) bk_set_grad_enabled(false);
        return 0;
    }
    int64_t in_shape[3] = {1, 28, 28};
    b->m = bk_model_build(spec, 3, in_shape, 10, NULL, 0);
    int64_t shape[4] = {B, 1, 28, 28};
    b->X = bk_tensor_new(4, shape);
    b->y = malloc(sizeof(int64_t) * (size_t)B);
    if (!b->m || !b->X || !b->y) return -1;
    bk_fill_uniform(b->X, NULL, 0.0f, 1.0f);
    bk_rng rng;
    bk_rng_seed(&rng, 1);
    for (int64_t i = 0; i < B; i++) b->y[i] = (int64_t)(bk_rng_u32(&rng) % 10u);
    if (b->w == W_INFER) {
        bk_module_train(b->m, false);
        bk_set_grad_enabled(false);
        return 0;
    }
    bk_sgd_config cfg = BK_SGD_DEFAULTS(lr);
    cfg.momentum = momentum;
    b->o = bk_optim_sgd(b->m, cfg);
    return b->o ? 0 : -1;
}

static void teardown(bench *b) {
    bk_optim_free(b->o);
    bk_module_free(b->m);
    bk_tensor_free(b->X);
    bk_tensor_free(b->B2);
    free(b->y);
}

static int parse_threads(const char *s, int *t, int max) {
    int n = 0;
    while (*s) {
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s || v < 1 || v > 1024 || n == max || (*end && *end != ',')) return -1;
        t[n++] = (int)v;
        s = *end ? end + 1 : end;
    }
    return n;
}

int main(int argc, char **argv) {
    static const char *const names[] = {"train", "infer", "seed-fwd", "seed-train", "sgemm"};
    if (argc < 2) {
        fprintf(stderr,
                "model_bench: usage: model_bench train|infer|seed-fwd|seed-train|sgemm [options] "
                "(see the comment at the top of bench/model_bench.c)\n");
        return 2;
    }
    bench b = {0};
    int w = -1;
    for (int i = 0; i < 5; i++)
        if (!strcmp(argv[1], names[i])) w = i;
    if (w < 0) {
        fprintf(stderr, "model_bench: unknown workload '%s' (train, infer, seed-fwd, seed-train, sgemm)\n",
                argv[1]);
        return 2;
    }
    b.w = (workload)w;
    const char *spec = "mlp", *threads_arg = "1,2";
    double lr = 0.1, momentum = 0.0;
    int iters = 20, warmup = 3;
    b.batch = b.w == W_SEED_FWD || b.w == W_SEED_TRAIN ? 2 : b.w == W_SGEMM ? 512 : b.w == W_INFER ? 1 : 128;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) {
            fprintf(stderr, "model_bench: '%s' needs a value\n", a);
            return 2;
        }
        i++;
        if (!strcmp(a, "--model")) spec = v;
        else if (!strcmp(a, "--batch")) b.batch = atoll(v);
        else if (!strcmp(a, "--lr")) lr = atof(v);
        else if (!strcmp(a, "--momentum")) momentum = atof(v);
        else if (!strcmp(a, "--iters")) iters = atoi(v);
        else if (!strcmp(a, "--warmup")) warmup = atoi(v);
        else if (!strcmp(a, "--threads")) threads_arg = v;
        else {
            fprintf(stderr, "model_bench: unknown argument '%s' (see bench/model_bench.c)\n", a);
            return 2;
        }
    }
    int threads[MAX_THREAD_COUNTS];
    int n_threads = parse_threads(threads_arg, threads, MAX_THREAD_COUNTS);
    if (n_threads < 1 || iters < 1 || iters > 100000 || warmup < 0 || b.batch < 1 || b.batch > 65536) {
        fprintf(stderr,
                "model_bench: need --threads like 1,2, 1 <= --iters <= 100000, --warmup >= 0, "
                "1 <= --batch <= 65536\n");
        return 2;
    }
    const size_t n_samples = (size_t)max_long(iters, MIN_GROUPS);
    double *wall = malloc(sizeof(double) * n_samples), *cpu = malloc(sizeof(double) * n_samples);
    int status = 1;
    if (!wall || !cpu || setup(&b, spec, lr, momentum) != 0) {
        fprintf(stderr, "model_bench: %s: setup failed: %s\n", argv[1], bk_last_error());
        goto done;
    }
    for (int k = 0; k < n_threads; k++) {
        if (bk_set_num_threads(threads[k]) != 0) {
            fprintf(stderr, "model_bench: cannot use %d threads: %s\n", threads[k], bk_last_error());
            goto done;
        }
        for (int it = 0; it < warmup; it++)
            if (iterate(&b) != 0) goto failed;
        const long group = group_size(&b);
        if (group < 1) goto failed;
        const int samples = group == 1 ? iters : (int)max_long(MIN_GROUPS, (iters + group - 1) / group);
        for (int s = 0; s < samples; s++) {
            double t0 = clock_ms(CLOCK_MONOTONIC), c0 = clock_ms(CLOCK_PROCESS_CPUTIME_ID);
            for (long g = 0; g < group; g++)
                if (iterate(&b) != 0) goto failed;
            wall[s] = (clock_ms(CLOCK_MONOTONIC) - t0) / (double)group;
            cpu[s] = (clock_ms(CLOCK_PROCESS_CPUTIME_ID) - c0) / (double)group;
        }
        printf("RESULT threads=%d median_ms=%.6f cpu_ms=%.6f iters=%ld group=%ld\n", threads[k],
               median(wall, samples), median(cpu, samples), (long)samples * group, group);
        fflush(stdout);
    }
    status = 0;
    goto done;
failed:
    fprintf(stderr, "model_bench: %s: iteration failed: %s\n", argv[1], bk_last_error());
done:
    free(wall);
    free(cpu);
    teardown(&b);
    bk_thread_cleanup();
    return status;
}
