/* encoder_layer.c - times one nn.TransformerEncoderLayer training step (forward + backward)
 * in brick; bench/encoder_layer_torch.py times the same in PyTorch.
 *
 *   build/bench/encoder_layer [--batch 32] [--seq 64] [--d-model 128] [--heads 4] [--ff 512]
 *                             [--iters 30] [--warmup 5] [--runs 5] [--batch-first] [--gelu]
 *
 * Each iteration: zero the gradients, Y = layer(X) (dropout 0, training mode: torch's standard
 * path), L = sum(Y * R) with a fixed R, backward (into X's gradient and every parameter's),
 * reset the arena. A run's time is the median over its iterations; the script prints every
 * run's median and the median of the runs, in milliseconds per step. It also reports the
 * process CPU time per step (all threads): on a shared machine, where other processes
 * take turns on the cores, the single-thread CPU time is the steadier figure.
 */
#define _POSIX_C_SOURCE 200809L
#include "brick.h"

#include "bench_timing.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int main(int argc, char **argv) {
    int64_t B = 32, T = 64, E = 128, H = 4, F = 512;
    int iters = 30, warmup = 5, runs = 5;
    bool batch_first = false, gelu = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--batch-first")) batch_first = true;
        else if (!strcmp(a, "--gelu")) gelu = true;
        else if (v && !strcmp(a, "--batch")) B = atoll(argv[++i]);
        else if (v && !strcmp(a, "--seq")) T = atoll(argv[++i]);
        else if (v && !strcmp(a, "--d-model")) E = atoll(argv[++i]);
        else if (v && !strcmp(a, "--heads")) H = atoll(argv[++i]);
        else if (v && !strcmp(a, "--ff")) F = atoll(argv[++i]);
        else if (v && !strcmp(a, "--iters")) iters = atoi(argv[++i]);
        else if (v && !strcmp(a, "--warmup")) warmup = atoi(argv[++i]);
        else if (v && !strcmp(a, "--runs")) runs = atoi(argv[++i]);
        else {
            fprintf(stderr,
                    "encoder_layer: unknown or incomplete argument '%s' (see the comment at the top)\n", a);
            return 2;
        }
    }
    if (iters < 1 || runs < 1 || warmup < 0 || runs > 100) {
        fprintf(stderr, "encoder_layer: need iters >= 1, 1 <= runs <= 100, warmup >= 0\n");
        return 2;
    }
    bk_manual_seed(1);
    bk_transformer_config cfg = BK_TRANSFORMER_DEFAULTS(E, H);
    cfg.dim_feedforward = F;
    cfg.dropout = 0.0f;
    cfg.batch_first = batch_first;
    cfg.activation = gelu ? BK_ACTIVATION_GELU : BK_ACTIVATION_RELU;
    bk_module *layer = bk_nn_transformer_encoder_layer(cfg);
    int64_t shape[3] = {batch_first ? B : T, batch_first ? T : B, E};
    bk_tensor *X = bk_tensor_new(3, shape), *R = bk_tensor_new(3, shape);
    double *times = malloc(sizeof(double) * (size_t)iters), *cpu = malloc(sizeof(double) * (size_t)iters);
    double run_medians[100], cpu_medians[100];
    if (!layer || !X || !R || !times || !cpu) {
        fprintf(stderr, "encoder_layer: setup failed: %s\n", bk_last_error());
        return 1;
    }
    bk_fill_normal(X, NULL, 0.0f, 1.0f);
    bk_fill_normal(R, NULL, 0.0f, 1.0f);
    bk_requires_grad(X, true);
    for (int r = 0; r < runs; r++) {
        for (int it = -warmup; it < iters; it++) {
            double t0 = clock_ms(CLOCK_MONOTONIC), c0 = clock_ms(CLOCK_PROCESS_CPUTIME_ID);
            bk_module_zero_grad(layer);
            bk_tensor *Y = bk_forward(layer, X);
            bk_tensor *L = bk_sum(bk_mul(Y, R));
            if (!L || bk_backward(L) != 0) {
                fprintf(stderr, "encoder_layer: step failed: %s\n", bk_last_error());
                return 1;
            }
            bk_arena_reset(NULL);
            if (it >= 0) {
                times[it] = clock_ms(CLOCK_MONOTONIC) - t0;
                cpu[it] = clock_ms(CLOCK_PROCESS_CPUTIME_ID) - c0;
            }
        }
        run_medians[r] = median(times, iters);
        cpu_medians[r] = median(cpu, iters);
        printf("brick run %d: median %.2f ms/step (cpu %.2f ms) over %d steps\n", r + 1, run_medians[r],
               cpu_medians[r], iters);
    }
    printf(
        "brick encoder layer B=%lld T=%lld d_model=%lld heads=%lld ff=%lld %s %s: median of %d runs %.2f "
        "ms/step "
        "(cpu %.2f ms/step)\n",
        (long long)B, (long long)T, (long long)E, (long long)H, (long long)F,
        batch_first ? "batch_first" : "(T, B, E)", gelu ? "gelu" : "relu", runs, median(run_medians, runs),
        median(cpu_medians, runs));
    free(times);
    free(cpu);
    bk_tensor_free(X);
    bk_tensor_free(R);
    bk_module_free(layer);
    bk_thread_cleanup();
    return 0;
}
