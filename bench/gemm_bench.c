/* gemm_bench.c - GFLOP/s of brick's own SGEMM (bk__sgemm, and optionally another of its
 * kernels) against OpenBLAS's cblas_sgemm, on the shapes brick runs.
 *
 *   make bench && build/bench/gemm_bench [-r REPEATS] [-t SECONDS] [-c] [-k KERNEL] [-q]
 *                                        [SHAPE...]
 *     -r N   timed repeats per measurement (default 9; the median is reported)
 *     -t S   length of one repeat (default 0.1 s; shorter ones make the best of many
 *            repeats a better estimate of an idle machine's speed when it is shared)
 *     -k K   also time the kernel K (portable, avx2 or avx512) on 1 thread
 *     -p     the same as -k portable
 *     -c     time with the process's CPU time instead of the wall clock: on a busy machine
 *            this still estimates an idle machine's 1-thread speed (2-thread rates become
 *            flops per CPU-second x 2, so time spent waiting for the other thread counts)
 *     -q     quick: 3 repeats of ~20 ms
 *     SHAPE  only the shapes whose name contains one of these substrings
 *
 * OpenBLAS is loaded at run time (dlopen of libopenblas.so.0, whichever build the system's
 * alternatives point to), so any build of brick can be compared with it; without it, brick
 * alone is timed. OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE are removed from this process's
 * environment before the load: a value set for other purposes (a slower core type for
 * reproducible tests) would handicap it. The core type OpenBLAS picked is printed.
 *
 * Each measurement calls the routine back to back for ~0.1 s (at least once) and divides;
 * the columns are medians over the repeats. brick runs with 1 and 2 OpenMP threads
 * (omp_set_num_threads), OpenBLAS with 1 and 2 threads (openblas_set_num_threads, the same
 * as OPENBLAS_NUM_THREADS); "ratio" is brick 2T over the better OpenBLAS median. On a
 * shared machine medians drift with the load, so the best single repeat of brick 2T and of
 * OpenBLAS (either thread count) is printed too. Every shape's brick result is compared
 * with OpenBLAS's: "diff" is max |difference| / max |C|.
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime, nanosleep */
#include "internal.h"
#include "bench_timing.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <dlfcn.h>

#ifdef _OPENMP
#include <omp.h>
#endif

typedef struct shape {
    const char *name;
    bool ta, tb;
    int64_t M, N, K;
} shape;

/* MLP 784-256-256-10 on Fashion-MNIST, batch 256: y = x W^T (NT), dW = dY^T x (TN),
 * dX = dY W (NN). LeNet-style convolutions as im2col products, and 3x3 convolutions of
 * 8..64 channels (W (O, C*9) @ cols (C*9, H*W*batch): few rows, very many columns). The
 * seed MLP Linear(20,256)-ReLU-Linear(256,10) at batch 2: tiny products. */
static const shape SHAPES[] = {
    {"mlp fc1 fwd   x@W^T", false, true, 256, 256, 784},
    {"mlp fc1 dW  dY^T@x", true, false, 256, 784, 256},
    {"mlp fc1 dX   dY@W", false, false, 256, 784, 256},
    {"mlp fc2 fwd", false, true, 256, 256, 256},
    {"mlp fc2 dW", true, false, 256, 256, 256},
    {"mlp fc2 dX", false, false, 256, 256, 256},
    {"mlp fc3 fwd (->10)", false, true, 256, 10, 256},
    {"mlp fc3 dW", true, false, 10, 256, 256},
    {"mlp fc3 dX", false, false, 256, 256, 10},
    {"square 512 NN", false, false, 512, 512, 512},
    {"square 512 NT", false, true, 512, 512, 512},
    {"square 512 TN", true, false, 512, 512, 512},
    {"square 512 TT", true, true, 512, 512, 512},
    {"conv1 fwd W@cols", false, false, 6, 256 * 784, 25},
    {"conv1 dW dY@cols^T", false, true, 6, 25, 256 * 784},
    {"conv1 dcols W^T@dY", true, false, 25, 256 * 784, 6},
    {"conv2 fwd W@cols", false, false, 16, 256 * 100, 150},
    {"conv2 dW dY@cols^T", false, true, 16, 150, 256 * 100},
    {"conv2 dcols W^T@dY", true, false, 150, 256 * 100, 16},
    {"conv3x3 8<-3 fwd", false, false, 8, 32 * 32 * 32, 27},
    {"conv3x3 16<-8 fwd", false, false, 16, 32 * 32 * 32, 72},
    {"conv3x3 32<-16 fwd", false, false, 32, 16 * 16 * 32, 144},
    {"conv3x3 64<-32 fwd", false, false, 64, 8 * 8 * 32, 288},
    {"conv3x3 32<-16 dW", false, true, 32, 144, 16 * 16 * 32},
    {"conv3x3 32<-16 dcols", true, false, 144, 16 * 16 * 32, 32},
    {"seed fc1 fwd 2x20->256", false, true, 2, 256, 20},
    {"seed fc2 fwd 2x256->10", false, true, 2, 10, 256},
    {"seed fc2 dX", false, false, 2, 256, 10},
    {"seed fc2 dW", true, false, 10, 256, 2},
    {"seed fc1 dW", true, false, 256, 20, 2},
};
#define N_SHAPES (sizeof SHAPES / sizeof *SHAPES)

typedef bk__sgemm_fn sgemm_fn;

/* OpenBLAS through dlopen: cblas_sgemm's enums and int are spelled out (CblasRowMajor =
 * 101, CblasNoTrans = 111, CblasTrans = 112; the 32-bit-integer build). */
typedef void cblas_sgemm_fn(int order, int ta, int tb, int M, int N, int K, float alpha, const float *A,
                            int lda, const float *B, int ldb, float beta, float *C, int ldc);
static cblas_sgemm_fn *g_cblas_sgemm;
static void (*g_openblas_set_num_threads)(int);
static char *(*g_openblas_get_corename)(void);

static bool openblas_load(void) {
    unsetenv("OPENBLAS_CORETYPE");
    unsetenv("OPENBLAS_L2_SIZE");
    void *lib = dlopen("libopenblas.so.0", RTLD_NOW | RTLD_LOCAL);
    if (!lib) return false;
    /* (POSIX: a void * from dlsym converts to a function pointer through memcpy) */
    void *sym[3] = {dlsym(lib, "cblas_sgemm"), dlsym(lib, "openblas_set_num_threads"),
                    dlsym(lib, "openblas_get_corename")};
    if (!sym[0] || !sym[1] || !sym[2]) return false;
    memcpy(&g_cblas_sgemm, &sym[0], sizeof g_cblas_sgemm);
    memcpy(&g_openblas_set_num_threads, &sym[1], sizeof g_openblas_set_num_threads);
    memcpy(&g_openblas_get_corename, &sym[2], sizeof g_openblas_get_corename);
    return true;
}

static void sgemm_openblas(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                           int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc) {
    g_cblas_sgemm(101, ta ? 112 : 111, tb ? 112 : 111, (int)M, (int)N, (int)K, alpha, A, (int)lda, B,
                  (int)ldb, beta, C, (int)ldc);
}

static bool g_cputime; /* -c: process CPU time instead of wall-clock time */

static double now(void) { return clock_s(g_cputime ? CLOCK_PROCESS_CPUTIME_ID : CLOCK_MONOTONIC); }

typedef struct timing {
    double median, best; /* GFLOP/s */
} timing;

static int g_repeats = 9;
static double g_seconds = 0.1;

/* GFLOP/s of f on shape s (C = A B, beta 0) running on `threads` threads, median and best
 * of g_repeats measurements (with -c: per CPU-second, times `threads`).
 * It first sleeps 0.2 s: OpenBLAS's idle worker threads busy-wait for ~0.1 s after a
 * threaded call (and OpenMP's for a moment), which would steal a core from the next run. */
static timing measure(sgemm_fn *f, int threads, const shape *s, const float *A, const float *B, float *C) {
    nanosleep(&(struct timespec){0, 200000000}, NULL);
    int64_t lda = s->ta ? s->M : s->K, ldb = s->tb ? s->K : s->N;
    double flop = 2.0 * (double)s->M * (double)s->N * (double)s->K;
    f(s->ta, s->tb, s->M, s->N, s->K, 1.0f, A, lda, B, ldb, 0.0f, C, s->N); /* warm up */
    double t0 = now();
    f(s->ta, s->tb, s->M, s->N, s->K, 1.0f, A, lda, B, ldb, 0.0f, C, s->N);
    double once = now() - t0;
    int calls = once > 0 ? (int)(g_seconds / once) : 1000;
    if (calls < 1) calls = 1;
    if (calls > 100000) calls = 100000;
    double rates[128];
    for (int r = 0; r < g_repeats; r++) {
        t0 = now();
        for (int c = 0; c < calls; c++)
            f(s->ta, s->tb, s->M, s->N, s->K, 1.0f, A, lda, B, ldb, 0.0f, C, s->N);
        rates[r] = flop * calls / (now() - t0) * 1e-9 * (g_cputime ? threads : 1);
    }
    qsort(rates, (size_t)g_repeats, sizeof *rates, cmp_double);
    return (timing){rates[g_repeats / 2], rates[g_repeats - 1]};
}

static void set_brick_threads(int n) {
#ifdef _OPENMP
    omp_set_num_threads(n);
#else
    (void)n;
#endif
}

static float *random_floats(int64_t n) {
    float *x = malloc((size_t)n * sizeof *x);
    if (!x) {
        fprintf(stderr, "gemm_bench: out of memory\n");
        exit(1);
    }
    uint32_t st = 12345u;
    for (int64_t i = 0; i < n; i++) {
        st = st * 1664525u + 1013904223u;
        x[i] = (float)(st >> 8) / 16777216.0f - 0.5f;
    }
    return x;
}

int main(int argc, char **argv) {
    const char *extra = NULL; /* -k: another kernel to time */
    int n_filters = 0;
    const char *filters[32];
    for (int i = 1; i < argc; i++) {
        if (timing_option(argc, argv, &i, &g_repeats, &g_seconds, &g_cputime)) continue; /* -r -t -c -q */
        if (!strcmp(argv[i], "-k") && i + 1 < argc) {
            extra = argv[++i];
        } else if (!strcmp(argv[i], "-p")) {
            extra = "portable";
        } else if (argv[i][0] == '-') {
            fprintf(stderr,
                    "usage: %s [-r REPEATS] [-t SECONDS] [-c] [-k KERNEL] [-p] [-q] "
                    "[SHAPE...]\n",
                    argv[0]);
            return 2;
        } else if (n_filters < 32) {
            filters[n_filters++] = argv[i];
        }
    }
    sgemm_fn *extra_fn = extra ? bk__sgemm_kernel(extra) : NULL;
    if (extra && !extra_fn) {
        fprintf(stderr, "gemm_bench: no kernel '%s' on this CPU or build\n", extra);
        return 2;
    }
    const bool blas = openblas_load();
    printf("brick sgemm kernel: %s; OpenBLAS: %s; median of %d runs of ~%.0f ms%s, GFLOP/s\n",
           bk_gemm_kernel(), blas ? g_openblas_get_corename() : "(libopenblas.so.0 not found)", g_repeats,
           g_seconds * 1e3, g_cputime ? " of CPU time" : "");
    printf("%-22s %5s %6s %6s | %7s %7s %7s", "shape", "M", "N", "K", "us 1T", "brick1T", "brick2T");
    if (extra) printf(" %7.7s", extra);
    if (blas)
        printf(" | %7s %7s | %5s %5s | %11s | %s", "oblas1T", "oblas2T", "1T", "2T", "best: bk ob", "diff");
    else printf(" | %7s", "best2T");
    printf("\n");

    for (size_t i = 0; i < N_SHAPES; i++) {
        const shape *s = &SHAPES[i];
        if (!bench_selected(s->name, filters, n_filters)) continue;
        float *A = random_floats(s->M * s->K), *B = random_floats(s->K * s->N);
        float *C = random_floats(s->M * s->N);
        const double flop = 2.0 * (double)s->M * (double)s->N * (double)s->K;
        printf("%-22s %5lld %6lld %6lld |", s->name, (long long)s->M, (long long)s->N, (long long)s->K);
        fflush(stdout);
        set_brick_threads(1);
        timing b1 = measure(bk__sgemm, 1, s, A, B, C);
        set_brick_threads(2);
        timing b2 = measure(bk__sgemm, 2, s, A, B, C);
        printf(" %7.3f %7.1f %7.1f", flop / b1.median * 1e-3, b1.median, b2.median);
        if (extra_fn) {
            set_brick_threads(1);
            printf(" %7.1f", measure(extra_fn, 1, s, A, B, C).median);
        }
        fflush(stdout);
        if (!blas) {
            printf(" | %7.1f\n", b2.best);
        } else {
            /* ratios: brick 1T / OpenBLAS 1T, brick 2T / OpenBLAS's better thread count */
            float *C2 = random_floats(s->M * s->N);
            g_openblas_set_num_threads(1);
            timing o1 = measure(sgemm_openblas, 1, s, A, B, C2);
            g_openblas_set_num_threads(2);
            timing o2 = measure(sgemm_openblas, 2, s, A, B, C2);
            double omed = o1.median > o2.median ? o1.median : o2.median;
            double obest = o1.best > o2.best ? o1.best : o2.best;
            bk__sgemm(s->ta, s->tb, s->M, s->N, s->K, 1.0f, A, s->ta ? s->M : s->K, B, s->tb ? s->K : s->N,
                      0.0f, C, s->N);
            double diff = 0, cmax = 0; /* max |brick - OpenBLAS| / max |OpenBLAS| */
            for (int64_t j = 0; j < s->M * s->N; j++) {
                double d = fabs((double)C[j] - C2[j]);
                if (d > diff) diff = d;
                if (fabs((double)C2[j]) > cmax) cmax = fabs((double)C2[j]);
            }
            diff /= cmax > 0 ? cmax : 1;
            printf(" | %7.1f %7.1f | %4.0f%% %4.0f%% | %5.1f %5.1f | %.1e\n", o1.median, o2.median,
                   100.0 * b1.median / o1.median, 100.0 * b2.median / omed, b2.best, obest, diff);
            free(C2);
        }
        free(A);
        free(B);
        free(C);
    }
    return 0;
}
