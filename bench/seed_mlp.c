/* seed_mlp.c - the per-op overhead of a tiny network: the seed MLP of brick.h's manual,
 * Sequential(Linear(20, 256), ReLU, Linear(256, 10)) on a batch of 2, where the arithmetic
 * (about 15,000 multiply-adds forward) takes well under a microsecond and what is left is
 * the cost of allocating outputs, recording the tape, dispatching blocks and checking
 * arguments. bench/seed_mlp_torch.py times the same steps in PyTorch.
 *
 *   make bench && build/bench/seed_mlp [-r REPEATS] [-n ITERS] [-c] [-g]
 *     -r N   timed repeats (default 21; the median and the fastest are reported)
 *     -n N   iterations per repeat (default 20000)
 *     -c     time with the process's CPU time instead of the wall clock: on a machine
 *            loaded by other work, the time the process waits for a core is not counted
 *            (with more than 1 thread it counts every thread's time)
 *     -g     also time the seed MLP's five matrix products alone (the backend's sgemm on
 *            its shapes, with the beta its layers use: the forward adds into the bias
 *            copied into Y, the backward into gradients), µs per call
 *
 * Cases, each timed as a loop a real program would run (the parameters and the input X
 * (2, 20) are owned tensors made once; everything else lives in the arena):
 *   forward            Y = net(X); arena reset
 *   forward+backward   Y = net(X); L = sum(Y); backward(L); arena reset (the weight
 *                      gradients accumulate, as in the PyTorch script: no zero_grad)
 *   forward no_grad    the forward under bk_set_grad_enabled(false) (no tape)
 * The same three cases run on a second network, Sequential(Linear(2, 2), ReLU, Linear(2, 2))
 * ("overhead"): its products are 8 multiply-adds, so its times are the cost of everything
 * but the arithmetic (GEMM calls included).
 * Output: microseconds per iteration, median and best over the repeats, and a checksum of
 * the seed MLP's output and gradients so that two builds can be compared.
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime */
#include "internal.h"           /* bk__backend, for -g */
#include "bench_timing.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static bool cpu_clock; /* -c */

static double now(void) { return clock_s(cpu_clock ? CLOCK_PROCESS_CPUTIME_ID : CLOCK_MONOTONIC); }

typedef enum { CASE_FORWARD, CASE_FORWARD_BACKWARD, CASE_FORWARD_NO_GRAD } case_kind;

/* One iteration; false (with bk_last_error) on failure. */
static bool step(case_kind k, bk_module *net, bk_tensor *X) {
    bool ok = true;
    if (k == CASE_FORWARD_NO_GRAD) {
        bool prev = bk_set_grad_enabled(false);
        ok = bk_forward(net, X) != NULL;
        bk_set_grad_enabled(prev);
    } else if (k == CASE_FORWARD) {
        ok = bk_forward(net, X) != NULL;
    } else {
        bk_tensor *L = bk_sum(bk_forward(net, X));
        ok = L && bk_backward(L) == 0;
    }
    bk_arena_reset(NULL);
    return ok;
}

/* -g: each product of the seed MLP's step called back to back, as bk_linear and its backward
 * call it (op(A) @ op(B), M x N x K; beta 1: C accumulates); the median and fastest of the
 * repeats, µs per call. Inputs are fixed values; C grows, which does not change the time. */
static void time_products(int repeats, long iters, double *t) {
    static const struct {
        const char *name;
        bool ta, tb;
        int64_t M, N, K;
    } P[] = {{"fc1 fwd x W1^T", false, true, 2, 256, 20},
             {"fc2 fwd h W2^T", false, true, 2, 10, 256},
             {"fc2 dX dy W2", false, false, 2, 256, 10},
             {"fc2 dW dy^T h", true, false, 10, 256, 2},
             {"fc1 dW dy^T x", true, false, 256, 20, 2}};
    static _Alignas(64) float A[256 * 20], B[256 * 20],
        C[256 * 20]; /* (alignment fixed: it moves the times) */
    for (int i = 0; i < 256 * 20; i++) A[i] = (float)(i % 13) * 0.01f, B[i] = (float)(i % 7) * 0.02f;
    printf("products (sgemm alone, beta 1)   median       best\n");
    for (size_t p = 0; p < sizeof P / sizeof P[0]; p++) {
        const int64_t lda = P[p].ta ? P[p].M : P[p].K, ldb = P[p].tb ? P[p].K : P[p].N;
        for (int r = 0; r < repeats; r++) {
            double t0 = now();
            for (long i = 0; i < iters; i++)
                bk__backend()->sgemm(P[p].ta, P[p].tb, P[p].M, P[p].N, P[p].K, 1.0f, A, lda, B, ldb, 1.0f, C,
                                     P[p].N);
            t[r] = (now() - t0) / (double)iters * 1e6;
        }
        qsort(t, (size_t)repeats, sizeof *t, cmp_double);
        printf("%-14s %3lldx%3lldx%3lld %s%s %10.3f %10.3f\n", P[p].name, (long long)P[p].M,
               (long long)P[p].N, (long long)P[p].K, P[p].ta ? "T" : "N", P[p].tb ? "T" : "N", t[repeats / 2],
               t[0]);
    }
}

int main(int argc, char **argv) {
    int repeats = 21;
    long iters = 20000;
    bool products = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-r") && i + 1 < argc) repeats = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-n") && i + 1 < argc) iters = atol(argv[++i]);
        else if (!strcmp(argv[i], "-c")) cpu_clock = true;
        else if (!strcmp(argv[i], "-g")) products = true;
        else {
            fprintf(stderr, "usage: %s [-r REPEATS] [-n ITERS] [-c] [-g]\n", argv[0]);
            return 2;
        }
    }
    if (repeats < 1 || repeats > 1000 || iters < 1) {
        fprintf(stderr, "seed_mlp: -r must be 1..1000 and -n positive\n");
        return 2;
    }
    bk_manual_seed(0);
    bk_module *net = bk_nn_sequential(3, bk_nn_linear(20, 256), bk_nn_relu(), bk_nn_linear(256, 10));
    bk_module *tiny = bk_nn_sequential(3, bk_nn_linear(2, 2), bk_nn_relu(), bk_nn_linear(2, 2));
    bk_tensor *X = bk_tensor_new(BK_SHAPE(2, 20)); // (2, 20)
    bk_tensor *Xt = bk_tensor_new(BK_SHAPE(2, 2)); // (2, 2)
    double *t = malloc(sizeof *t * (size_t)repeats);
    if (!net || !tiny || !X || !Xt || !t) {
        fprintf(stderr, "seed_mlp: %s\n", bk_last_error());
        return 1;
    }
    for (int64_t i = 0; i < X->numel; i++) X->data[i] = (float)(i % 7) * 0.25f - 0.75f;
    for (int64_t i = 0; i < Xt->numel; i++) Xt->data[i] = (float)i * 0.5f - 0.75f;

    static const struct {
        const char *name;
        case_kind kind;
    } cases[] = {{"forward", CASE_FORWARD},
                 {"forward+backward", CASE_FORWARD_BACKWARD},
                 {"forward no_grad", CASE_FORWARD_NO_GRAD}};
    const struct {
        const char *title;
        bk_module *net;
        bk_tensor *X;
    } nets[] = {{"seed MLP Sequential(Linear(20, 256), ReLU, Linear(256, 10)), batch 2", net, X},
                {"overhead Sequential(Linear(2, 2), ReLU, Linear(2, 2)), batch 2", tiny, Xt}};
    for (size_t m = 0; m < sizeof nets / sizeof nets[0]; m++) {
        printf("%s, %d thread(s)\n", nets[m].title, bk_get_num_threads());
        printf("%-18s %10s %10s   (µs per iteration, %s, %d repeats of %ld)\n", "case", "median", "best",
               cpu_clock ? "CPU time" : "wall clock", repeats, iters);
        for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
            for (long i = 0; i < iters / 10 + 1; i++) /* warm up: the arena reaches its size */
                if (!step(cases[c].kind, nets[m].net, nets[m].X)) {
                    fprintf(stderr, "seed_mlp: %s: %s\n", cases[c].name, bk_last_error());
                    return 1;
                }
            for (int r = 0; r < repeats; r++) {
                double t0 = now();
                for (long i = 0; i < iters; i++) step(cases[c].kind, nets[m].net, nets[m].X);
                t[r] = (now() - t0) / (double)iters * 1e6;
            }
            qsort(t, (size_t)repeats, sizeof *t, cmp_double);
            printf("%-18s %10.3f %10.3f\n", cases[c].name, t[repeats / 2], t[0]);
        }
    }
    if (products) time_products(repeats, iters, t);
    /* checksum: one forward and backward from zero gradients */
    bk_module_zero_grad(net);
    bk_tensor *Y = bk_forward(net, X);
    double sum = 0;
    for (int64_t i = 0; Y && i < Y->numel; i++) sum += Y->data[i];
    if (!Y || bk_backward(bk_sum(Y)) != 0) {
        fprintf(stderr, "seed_mlp: %s\n", bk_last_error());
        return 1;
    }
    bk_tensor *W0 = bk_module_get(net, "0.weight");
    for (int64_t i = 0; W0 && W0->grad && i < W0->grad->numel; i++) sum += W0->grad->data[i];
    printf("checksum %.9g\n", sum);
    bk_arena_reset(NULL);
    free(t);
    bk_tensor_free(X);
    bk_tensor_free(Xt);
    bk_module_free(net);
    bk_module_free(tiny);
    bk_thread_cleanup();
    return 0;
}
