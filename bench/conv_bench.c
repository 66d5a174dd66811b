/* conv_bench.c - time brick's conv2d forward and forward+backward on the shapes of the
 * zoo's CNNs (LeNet, ResNet at width 8 and 32), batch 128.
 *
 *   make bench && build/bench/conv_bench [-t THREADS] [-r REPEATS] [-c] [SHAPE...]
 *     -t T   compute threads (default 1)
 *     -r N   repeats per shape (default 7); the median and the best are printed
 *     -c     time with the process's CPU time instead of the wall clock (on a shared
 *            machine this still estimates an idle machine's 1-thread time)
 *     SHAPE  only the shapes whose name contains one of these substrings
 *
 * fwd is one bk_conv2d; fwd+bwd adds bk_backward of sum(y * g) for a fixed random g,
 * which computes dx, dw and db. GFLOP/s counts 2 M N K per GEMM-equivalent: 1x for the
 * forward, 3x for forward+backward.
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime */
#include "brick.h"
#include "bench_timing.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct shape {
    const char *name;
    int64_t n, c, h, w, o, k, stride, pad;
} shape;

static const shape SHAPES[] = {
    {"lenet.conv1", 128, 1, 28, 28, 6, 5, 1, 2},     {"lenet.conv2", 128, 6, 14, 14, 16, 5, 1, 0},
    {"resnet8.stem", 128, 1, 28, 28, 8, 3, 1, 1},    {"resnet8.s1", 128, 8, 28, 28, 8, 3, 1, 1},
    {"resnet8.s2down", 128, 8, 28, 28, 16, 3, 2, 1}, {"resnet8.s2short1x1", 128, 8, 28, 28, 16, 1, 2, 0},
    {"resnet8.s2", 128, 16, 14, 14, 16, 3, 1, 1},    {"resnet8.s3", 128, 32, 7, 7, 32, 3, 1, 1},
    {"resnet8.s4", 128, 64, 4, 4, 64, 3, 1, 1},      {"resnet32.s1", 128, 32, 28, 28, 32, 3, 1, 1},
    {"resnet32.s2", 128, 64, 14, 14, 64, 3, 1, 1},   {"resnet32.s3", 128, 128, 7, 7, 128, 3, 1, 1},
    {"resnet32.s4", 128, 256, 4, 4, 256, 3, 1, 1},
};

static double now(bool cpu) { return clock_s(cpu ? CLOCK_PROCESS_CPUTIME_ID : CLOCK_MONOTONIC); }

/* A heap tensor (it outlives bk_arena_reset) of N(0, 1) values that wants a gradient. */
static bk_tensor *heap_randn(int ndim, const int64_t *dims) {
    bk_tensor *t = bk_tensor_new(ndim, dims);
    if (!t || bk_fill_normal(t, NULL, 0.0f, 1.0f) != 0) {
        bk_tensor_free(t);
        return NULL;
    }
    return bk_requires_grad(t, true);
}

/* One timed call: forward only, or forward + backward. Returns seconds, or -1 on error. */
static double run(const shape *s, bk_tensor *x, bk_tensor *w, bk_tensor *b, bk_tensor *g, bool bwd,
                  bool cpu) {
    bk_conv2d_opts o = BK_CONV2D_DEFAULTS;
    o.stride[0] = o.stride[1] = s->stride;
    o.padding[0] = o.padding[1] = s->pad;
    double t0 = now(cpu);
    bk_tensor *y = bk_conv2d(x, w, b, o);
    if (!y) return -1;
    if (bwd && bk_backward(bk_sum(bk_mul(y, g))) != 0) return -1;
    double t = now(cpu) - t0;
    bk_arena_reset(NULL);
    return t;
}

int main(int argc, char **argv) {
    int threads = 1, repeats = 7;
    bool cpu = false;
    int first = 1;
    for (; first < argc && argv[first][0] == '-'; first++) {
        if (!strcmp(argv[first], "-t") && first + 1 < argc) threads = atoi(argv[++first]);
        else if (!strcmp(argv[first], "-r") && first + 1 < argc) repeats = atoi(argv[++first]);
        else if (!strcmp(argv[first], "-c")) cpu = true;
        else {
            fprintf(stderr, "usage: conv_bench [-t THREADS] [-r REPEATS] [-c] [SHAPE...]\n");
            return 2;
        }
    }
    if (repeats < 1 || repeats > 1000 || threads < 1) {
        fprintf(stderr, "conv_bench: bad -r or -t\n");
        return 2;
    }
    bk_set_num_threads(threads);
    bk_manual_seed(0);
    printf("threads %d, %s time, %d repeats: median (best) ms, GFLOP/s of the median\n", threads,
           cpu ? "CPU" : "wall", repeats);
    printf("%-20s %22s %22s %9s %9s\n", "shape", "fwd ms", "fwd+bwd ms", "fwd GF/s", "f+b GF/s");
    double *t = malloc(sizeof(double) * (size_t)repeats * 2);
    if (!t) return 1;
    for (size_t i = 0; i < sizeof SHAPES / sizeof SHAPES[0]; i++) {
        const shape *s = &SHAPES[i];
        bool want = first >= argc;
        for (int a = first; a < argc; a++) want |= strstr(s->name, argv[a]) != NULL;
        if (!want) continue;
        int64_t oh = (s->h + 2 * s->pad - s->k) / s->stride + 1,
                ow = (s->w + 2 * s->pad - s->k) / s->stride + 1;
        bk_tensor *x = heap_randn(4, (int64_t[]){s->n, s->c, s->h, s->w});
        bk_tensor *w = heap_randn(4, (int64_t[]){s->o, s->c, s->k, s->k});
        bk_tensor *b = heap_randn(1, (int64_t[]){s->o});
        bk_tensor *g = heap_randn(4, (int64_t[]){s->n, s->o, oh, ow});
        if (!x || !w || !b || !g) {
            fprintf(stderr, "conv_bench: %s\n", bk_last_error());
            return 1;
        }
        double *tf = t, *tb = t + repeats;
        run(s, x, w, b, g, true, cpu); /* warm up the arena and the scratch buffers */
        for (int r = 0; r < repeats; r++) {
            tf[r] = run(s, x, w, b, g, false, cpu);
            tb[r] = run(s, x, w, b, g, true, cpu);
            if (tf[r] < 0 || tb[r] < 0) {
                fprintf(stderr, "conv_bench: %s: %s\n", s->name, bk_last_error());
                return 1;
            }
        }
        qsort(tf, (size_t)repeats, sizeof(double), cmp_double);
        qsort(tb, (size_t)repeats, sizeof(double), cmp_double);
        double flops = 2.0 * (double)s->n * (double)(s->o * oh * ow) * (double)(s->c * s->k * s->k);
        double mf = tf[repeats / 2], mb = tb[repeats / 2];
        printf("%-20s %12.2f (%7.2f) %12.2f (%7.2f) %9.1f %9.1f\n", s->name, 1e3 * mf, 1e3 * tf[0], 1e3 * mb,
               1e3 * tb[0], flops / mf * 1e-9, 3 * flops / mb * 1e-9);
        bk_tensor_free(x);
        bk_tensor_free(w);
        bk_tensor_free(b);
        bk_tensor_free(g);
    }
    free(t);
    return 0;
}
