/* ops_bench.c - time of the non-GEMM ops that dominate CNN training (ReLU, the residual
 * add, pooling, batch norm, layer norm), forward and backward, on the shapes the zoo's
 * lenet and resnet:width=8 run with batch 128, GELU on the feed-forward activation of
 * `brick train-lm`'s default model, and a sweep of sizes for the element-wise ops'
 * parallel thresholds.
 *
 *   make bench && build/bench/ops_bench [-r REPEATS] [-t SECONDS] [-c] [-q] [-T "1 2"] [CASE...]
 *     -r N   timed repeats per measurement (default 9; the median is reported)
 *     -t S   length of one repeat (default 0.1 s)
 *     -c     time with the process's CPU time instead of the wall clock: on a busy machine
 *            this estimates an idle machine's 1-thread time. With T threads it is the
 *            CPU time of all of them (ideally the 1-thread time), which includes the time
 *            libgomp's idle threads spin (OMP_WAIT_POLICY=passive stops that)
 *     -q     quick: 3 repeats of ~20 ms
 *     -T L   the thread counts to time (default "1 2")
 *     CASE   only the cases whose name contains one of these substrings
 *
 * Columns: microseconds per call, forward then backward for each thread count: the median
 * over the repeats, then the fastest repeat ("best": on a shared machine, the estimate of
 * an idle machine's time; short repeats, -t 0.01 -r 31, make it a better one). A forward is the op's call (the output allocated from the arena, the tape
 * entry recorded) and an arena reset; a backward is one call of the op's backward
 * function, which adds into the inputs' gradients. "hash" is an FNV-1a hash of the bytes of
 * the output and of every input gradient after one forward and backward from zero
 * gradients, with 1 thread and with the largest thread count ("=" when they agree): two
 * builds that print the same hash computed the same bits.
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime, nanosleep */
#include "internal.h"
#include "bench_timing.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef enum {
    CASE_RELU,
    CASE_TANH,
    CASE_GELU,
    CASE_ADD,
    CASE_MAX_POOL,
    CASE_AVG_POOL,
    CASE_ADAPTIVE,
    CASE_BN_TRAIN,
    CASE_BN_EVAL,
    CASE_LAYER_NORM
} case_kind;

typedef struct bench_case {
    const char *name;
    case_kind kind;
    int ndim;
    int64_t shape[4];
    int64_t k, s, p; /* pooling: kernel, stride, padding (adaptive: k is the output size) */
} bench_case;

/* N = 128: lenet's conv1/conv2 outputs (N, 6, 28, 28), (N, 16, 10, 10) and hidden (N, 120);
 * resnet:width=8's four stage widths (N, 8, 28, 28) ... (N, 64, 4, 4). */
static const bench_case CASES[] = {
    {"relu lenet c1", CASE_RELU, 4, {128, 6, 28, 28}, 0, 0, 0},
    {"relu lenet c2", CASE_RELU, 4, {128, 16, 10, 10}, 0, 0, 0},
    {"relu lenet fc", CASE_RELU, 2, {128, 120, 1, 1}, 0, 0, 0},
    {"relu resnet s1", CASE_RELU, 4, {128, 8, 28, 28}, 0, 0, 0},
    {"relu resnet s4", CASE_RELU, 4, {128, 64, 4, 4}, 0, 0, 0},
    /* train-lm's default model: batch 32, context 64, ff 256 */
    {"gelu lm ff (32,64,256)", CASE_GELU, 3, {32, 64, 256, 1}, 0, 0, 0},
    {"add resnet s1", CASE_ADD, 4, {128, 8, 28, 28}, 0, 0, 0},
    {"add resnet s3", CASE_ADD, 4, {128, 32, 7, 7}, 0, 0, 0},
    {"maxpool2 lenet c1", CASE_MAX_POOL, 4, {128, 6, 28, 28}, 2, 2, 0},
    {"maxpool2 lenet c2", CASE_MAX_POOL, 4, {128, 16, 10, 10}, 2, 2, 0},
    {"maxpool3s2p1 (N,32,28,28)", CASE_MAX_POOL, 4, {128, 32, 28, 28}, 3, 2, 1},
    {"avgpool2 (N,6,28,28)", CASE_AVG_POOL, 4, {128, 6, 28, 28}, 2, 2, 0},
    {"avgpool3s1p1 (N,8,28,28)", CASE_AVG_POOL, 4, {128, 8, 28, 28}, 3, 1, 1},
    {"adaptive1 resnet s4", CASE_ADAPTIVE, 4, {128, 64, 4, 4}, 1, 0, 0},
    {"bn train resnet s1", CASE_BN_TRAIN, 4, {128, 8, 28, 28}, 0, 0, 0},
    {"bn train resnet s2", CASE_BN_TRAIN, 4, {128, 16, 14, 14}, 0, 0, 0},
    {"bn train resnet s3", CASE_BN_TRAIN, 4, {128, 32, 7, 7}, 0, 0, 0},
    {"bn train resnet s4", CASE_BN_TRAIN, 4, {128, 64, 4, 4}, 0, 0, 0},
    {"bn eval resnet s1", CASE_BN_EVAL, 4, {128, 8, 28, 28}, 0, 0, 0},
    {"layernorm (4096,128)", CASE_LAYER_NORM, 2, {4096, 128, 1, 1}, 0, 0, 0},
    /* sizes around the thresholds where the element-wise ops go parallel */
    {"sweep relu 2^12", CASE_RELU, 1, {1 << 12}, 0, 0, 0},
    {"sweep relu 2^14", CASE_RELU, 1, {1 << 14}, 0, 0, 0},
    {"sweep relu 2^16", CASE_RELU, 1, {1 << 16}, 0, 0, 0},
    {"sweep relu 2^18", CASE_RELU, 1, {1 << 18}, 0, 0, 0},
    {"sweep relu 2^20", CASE_RELU, 1, {1 << 20}, 0, 0, 0},
    {"sweep add 2^14", CASE_ADD, 1, {1 << 14}, 0, 0, 0},
    {"sweep add 2^16", CASE_ADD, 1, {1 << 16}, 0, 0, 0},
    {"sweep add 2^18", CASE_ADD, 1, {1 << 18}, 0, 0, 0},
    {"sweep tanh 2^10", CASE_TANH, 1, {1 << 10}, 0, 0, 0},
    {"sweep tanh 2^12", CASE_TANH, 1, {1 << 12}, 0, 0, 0},
    {"sweep tanh 2^14", CASE_TANH, 1, {1 << 14}, 0, 0, 0},
};
#define N_CASES (sizeof CASES / sizeof *CASES)

/* The inputs of one case: in[0] is x; the others as the op takes them. Heap tensors. */
typedef struct bench_inputs {
    bk_tensor *in[5];
    int n;
    bk_tensor *G; /* upstream gradient, the output's shape */
} bench_inputs;

static bool g_cputime;
static int g_repeats = 9;
static double g_seconds = 0.1;

static double now(void) { return clock_s(g_cputime ? CLOCK_PROCESS_CPUTIME_ID : CLOCK_MONOTONIC); }

static bk_tensor *forward(const bench_case *c, bench_inputs *b) {
    bk_tensor **in = b->in;
    bk_pool2d_opts o = {{c->k, c->k}, {c->s, c->s}, {c->p, c->p}};
    switch (c->kind) {
    case CASE_RELU: return bk_relu(in[0]);
    case CASE_TANH: return bk_tanh(in[0]);
    case CASE_GELU: return bk_gelu(in[0]);
    case CASE_ADD: return bk_add(in[0], in[1]);
    case CASE_MAX_POOL: return bk_max_pool2d(in[0], o);
    case CASE_AVG_POOL: return bk_avg_pool2d(in[0], o);
    case CASE_ADAPTIVE: return bk_adaptive_avg_pool2d(in[0], c->k, c->k);
    case CASE_BN_TRAIN:
    case CASE_BN_EVAL:
        return bk_batch_norm(in[0], in[3], in[4], in[1], in[2], c->kind == CASE_BN_TRAIN, 0.1f, 1e-5f);
    case CASE_LAYER_NORM: return bk_layer_norm(in[0], 1, in[1], in[2], 1e-5f);
    }
    return NULL;
}

static bk_tensor *leaf(bk_rng *rng, int ndim, const int64_t *shape, float lo, float hi, bool grad) {
    bk_tensor *t = bk_tensor_new(ndim, shape);
    if (!t || bk_fill_uniform(t, rng, lo, hi) != 0) {
        fprintf(stderr, "ops_bench: %s\n", bk_last_error());
        exit(1);
    }
    return bk_requires_grad(t, grad);
}

static bench_inputs inputs_new(const bench_case *c) {
    bk_rng rng;
    bk_rng_seed(&rng, 7);
    bench_inputs b = {{NULL}, 1, NULL};
    b.in[0] = leaf(&rng, c->ndim, c->shape, -1.0f, 1.0f, true);
    int64_t C = c->shape[1];
    switch (c->kind) {
    case CASE_ADD:
        b.in[1] = leaf(&rng, c->ndim, c->shape, -1.0f, 1.0f, true);
        b.n = 2;
        break;
    case CASE_BN_TRAIN:
    case CASE_BN_EVAL:
        b.in[1] = leaf(&rng, 1, &C, 0.5f, 1.5f, true);
        b.in[2] = leaf(&rng, 1, &C, -0.5f, 0.5f, true);
        b.in[3] = leaf(&rng, 1, &C, -0.1f, 0.1f, false);
        b.in[4] = leaf(&rng, 1, &C, 0.5f, 1.5f, false);
        b.n = 5;
        break;
    case CASE_LAYER_NORM:
        b.in[1] = leaf(&rng, 1, &C, 0.5f, 1.5f, true);
        b.in[2] = leaf(&rng, 1, &C, -0.5f, 0.5f, true);
        b.n = 3;
        break;
    default: break;
    }
    bk_tensor *y = forward(c, &b);
    if (!y) {
        fprintf(stderr, "ops_bench: %s: %s\n", c->name, bk_last_error());
        exit(1);
    }
    b.G = leaf(&rng, y->ndim, y->shape, -1.0f, 1.0f, false);
    bk_arena_reset(NULL);
    return b;
}

static void inputs_free(bench_inputs *b) {
    for (int i = 0; i < b->n; i++) bk_tensor_free(b->in[i]);
    bk_tensor_free(b->G);
}

/* Running statistics move with every training forward; put them back so that each
 * measurement and each hash starts from the same state. */
static void reset_state(const bench_case *c, bench_inputs *b) {
    if (c->kind == CASE_BN_TRAIN || c->kind == CASE_BN_EVAL) {
        bk_rng rng;
        bk_rng_seed(&rng, 8);
        bk_fill_uniform(b->in[3], &rng, -0.1f, 0.1f);
        bk_fill_uniform(b->in[4], &rng, 0.5f, 1.5f);
    }
    for (int i = 0; i < b->n; i++)
        if (b->in[i]->grad) bk_fill(b->in[i]->grad, 0.0f);
}

typedef struct timing {
    double fwd, bwd, fwd_best, bwd_best; /* microseconds per call */
} timing;

/* Calls per repeat so that one repeat lasts ~g_seconds. */
static int calls_for(double once) {
    int calls = once > 0 ? (int)(g_seconds / once) : 1000;
    return calls < 1 ? 1 : calls > 100000 ? 100000 : calls;
}

static timing measure(const bench_case *c, bench_inputs *b, int threads) {
    bk_set_num_threads(threads);
    reset_state(c, b);
    /* idle OpenMP workers spin for a moment after a parallel region */
    nanosleep(&(struct timespec){0, 100000000}, NULL);
    const double scale = 1e6;
    double f[128], g[128];

    forward(c, b); /* warm up */
    bk_arena_reset(NULL);
    double t0 = now();
    forward(c, b);
    bk_arena_reset(NULL);
    int calls = calls_for(now() - t0);
    for (int r = 0; r < g_repeats; r++) {
        t0 = now();
        for (int i = 0; i < calls; i++) {
            forward(c, b);
            bk_arena_reset(NULL);
        }
        f[r] = (now() - t0) / calls * scale;
    }

    bk_tensor *y = forward(c, b);
    y->grad = b->G;
    bk_node *node = y->node;
    node->op->backward(node); /* warm up (and the gradients get allocated) */
    t0 = now();
    node->op->backward(node);
    calls = calls_for(now() - t0);
    for (int r = 0; r < g_repeats; r++) {
        t0 = now();
        for (int i = 0; i < calls; i++) node->op->backward(node);
        g[r] = (now() - t0) / calls * scale;
    }
    y->grad = NULL;
    bk_arena_reset(NULL);
    qsort(f, (size_t)g_repeats, sizeof *f, cmp_double);
    qsort(g, (size_t)g_repeats, sizeof *g, cmp_double);
    return (timing){f[g_repeats / 2], g[g_repeats / 2], f[0], g[0]};
}

static uint64_t fnv(uint64_t h, const bk_tensor *t) {
    const unsigned char *p = (const unsigned char *)t->data;
    for (size_t i = 0; i < (size_t)t->numel * sizeof(float); i++) h = (h ^ p[i]) * 1099511628211u;
    return h;
}

/* The hash of one forward and backward from zero gradients on `threads` threads. */
static uint64_t result_hash(const bench_case *c, bench_inputs *b, int threads) {
    bk_set_num_threads(threads);
    reset_state(c, b);
    bk_tensor *y = forward(c, b);
    y->grad = b->G;
    y->node->op->backward(y->node);
    uint64_t h = fnv(14695981039346656037u, y);
    for (int i = 0; i < b->n; i++)
        if (b->in[i]->grad) h = fnv(h, b->in[i]->grad);
    if (c->kind == CASE_BN_TRAIN) h = fnv(fnv(h, b->in[3]), b->in[4]);
    y->grad = NULL;
    bk_arena_reset(NULL);
    return h;
}

int main(int argc, char **argv) {
    int n_filters = 0, n_threads = 0, threads[8];
    const char *filters[32], *tlist = "1 2";
    for (int i = 1; i < argc; i++) {
        if (timing_option(argc, argv, &i, &g_repeats, &g_seconds, &g_cputime)) continue; /* -r -t -c -q */
        if (!strcmp(argv[i], "-T") && i + 1 < argc) {
            tlist = argv[++i];
        } else if (argv[i][0] == '-') {
            fprintf(stderr, "usage: %s [-r REPEATS] [-t SECONDS] [-c] [-q] [-T \"1 2\"] [CASE...]\n",
                    argv[0]);
            return 2;
        } else if (n_filters < 32) {
            filters[n_filters++] = argv[i];
        }
    }
    for (const char *s = tlist; *s && n_threads < 8;) {
        char *end;
        long t = strtol(s, &end, 10);
        if (end == s) break;
        threads[n_threads++] = t < 1 ? 1 : (int)t;
        s = end;
    }
    if (n_threads == 0) threads[n_threads++] = 1;

    printf("median of %d runs of ~%.0f ms%s, microseconds per call\n", g_repeats, g_seconds * 1e3,
           g_cputime ? " of CPU time" : "");
    printf("%-24s %-18s", "case", "shape");
    for (int t = 0; t < n_threads; t++)
        printf(" | %2dT fwd %7s %8s %7s", threads[t], "bwd", "best fwd", "bwd");
    printf(" | %s\n", "hash");
    for (size_t i = 0; i < N_CASES; i++) {
        const bench_case *c = &CASES[i];
        if (!bench_selected(c->name, filters, n_filters)) continue;
        char shape[64];
        bk__shape_fmt(c->ndim, c->shape, shape, sizeof shape);
        printf("%-24s %-18s", c->name, shape);
        fflush(stdout);
        bench_inputs b = inputs_new(c);
        for (int t = 0; t < n_threads; t++) {
            timing m = measure(c, &b, threads[t]);
            printf(" | %7.1f %7.1f %8.1f %7.1f", m.fwd, m.bwd, m.fwd_best, m.bwd_best);
            fflush(stdout);
        }
        uint64_t h1 = result_hash(c, &b, 1), hn = result_hash(c, &b, threads[n_threads - 1]);
        printf(" | %016llx %s\n", (unsigned long long)h1, h1 == hn ? "=" : "DIFFERS");
        inputs_free(&b);
    }
    bk_thread_cleanup();
    return 0;
}
