/* test_threads.c - results must not depend on the number of threads.
 *
 * brick's OpenMP loops split work over elements, planes, channels or rows, never over a
 * sum, so every op must give the same bits on 1, 2 or 3 threads (docs/design.md). Each case
 * runs an op with an OpenMP path on inputs large enough to take it (above the ops'
 * thresholds), forward and backward from a fixed upstream gradient, with 1 thread and
 * then 2, 3 and 2 threads again (a race shows up only sometimes), and compares the output,
 * every input gradient and (batch norm) the running statistics with memcmp.
 * tests/test_gemm.c does the same for the GEMM, tests/test_ops_cnn.c (conv2d_threads_bitwise)
 * for conv2d.
 */
#include "test.h"

#ifdef _OPENMP
#include <omp.h>
#endif

typedef enum {
    T_RELU,
    T_TANH,
    T_GELU,
    T_ADD,
    T_MUL,
    T_ADD_BCAST,
    T_MUL_SCALAR,
    T_MAX_POOL_2X2,
    T_MAX_POOL_3S2P1,
    T_AVG_POOL,
    T_ADAPTIVE,
    T_BN_TRAIN,
    T_BN_EVAL,
    T_BN_1D,
    T_LAYER_NORM,
    T_ATTENTION,
    T_CROSS_ENTROPY,
    T_COUNT
} case_kind;

typedef struct thr_case {
    const char *name;
    int ndim;
    int64_t shape[4]; /* of the first input */
} thr_case;

/* Sizes: element-wise ops go parallel from 2^20 elements (2^14 for tanh and gelu), pooling from
 * 2^18 input elements, the norms from 2^17 elements; odd sizes leave a ragged last chunk. */
static const thr_case CASES[T_COUNT] = {
    [T_RELU] = {"relu", 1, {(1 << 20) + 3}},
    [T_TANH] = {"tanh", 1, {(1 << 14) + 5}},
    [T_GELU] = {"gelu", 1, {(1 << 14) + 5}}, /* blocks of 2^13 (elementwise.c): a last one of 5 */
    [T_ADD] = {"add", 2, {1031, 1021}},
    [T_MUL] = {"mul", 2, {1031, 1021}},
    [T_ADD_BCAST] = {"add (N, F) + (F)", 2, {301, 437}},
    [T_MUL_SCALAR] = {"mul_scalar", 1, {(1 << 20) + 1}},
    [T_MAX_POOL_2X2] = {"max_pool2d 2x2", 4, {64, 6, 28, 26}},
    [T_MAX_POOL_3S2P1] = {"max_pool2d k3 s2 p1", 4, {64, 6, 28, 27}},
    [T_AVG_POOL] = {"avg_pool2d k3 s2 p1", 4, {64, 6, 28, 27}},
    [T_ADAPTIVE] = {"adaptive_avg_pool2d 3x3", 4, {64, 6, 28, 27}},
    [T_BN_TRAIN] = {"batch_norm train", 4, {53, 13, 14, 15}},
    [T_BN_EVAL] = {"batch_norm eval", 4, {53, 13, 14, 15}},
    [T_BN_1D] = {"batch_norm (N, C)", 2, {10099, 13}},
    [T_LAYER_NORM] = {"layer_norm", 2, {1031, 129}},
    [T_ATTENTION] = {"scaled_dot_product_attention", 3, {8, 33, 16}},
    [T_CROSS_ENTROPY] = {"cross_entropy (no reduction)", 2, {1031, 131}}, /* rows split from 2^17 logits */
};

#define MAX_IN 5

typedef struct thr_inputs {
    bk_tensor *in[MAX_IN]; /* heap tensors; those that require grad get gradients */
    int n;
} thr_inputs;

static bk_tensor *rand_leaf(bk_rng *rng, int ndim, const int64_t *shape, float lo, float hi, bool grad) {
    bk_tensor *t = bk_tensor_new(ndim, shape);
    if (t) bk_fill_uniform(t, rng, lo, hi);
    return t ? bk_requires_grad(t, grad) : NULL;
}

/* The inputs of case k, the same values on every call. */
static thr_inputs inputs_new(case_kind k) {
    const thr_case *c = &CASES[k];
    bk_rng rng;
    bk_rng_seed(&rng, 1234 + (uint64_t)k);
    thr_inputs t = {{NULL}, 1};
    t.in[0] = rand_leaf(&rng, c->ndim, c->shape, -2, 2, true);
    if (t.in[0] && (k == T_MAX_POOL_2X2 || k == T_MAX_POOL_3S2P1)) /* ties in most windows */
        for (int64_t i = 0; i < t.in[0]->numel; i++) t.in[0]->data[i] = (float)(int)(t.in[0]->data[i]);
    int64_t C = c->ndim > 1 ? c->shape[1] : 1;
    switch (k) {
    case T_ADD:
    case T_MUL: t.in[t.n++] = rand_leaf(&rng, c->ndim, c->shape, -2, 2, true); break;
    case T_ADD_BCAST: t.in[t.n++] = rand_leaf(&rng, 1, &c->shape[1], -2, 2, true); break;
    case T_BN_TRAIN:
    case T_BN_EVAL:
    case T_BN_1D:
    case T_LAYER_NORM: {
        int64_t F = k == T_LAYER_NORM ? c->shape[1] : C;
        t.in[t.n++] = rand_leaf(&rng, 1, &F, 0.5f, 1.5f, true);  /* weight */
        t.in[t.n++] = rand_leaf(&rng, 1, &F, -0.5f, 0.5f, true); /* bias */
        if (k != T_LAYER_NORM) {
            t.in[t.n++] = rand_leaf(&rng, 1, &F, -0.2f, 0.2f, false); /* running mean */
            t.in[t.n++] = rand_leaf(&rng, 1, &F, 0.5f, 1.5f, false);  /* running var */
        }
        break;
    }
    case T_ATTENTION:
        t.in[t.n++] = rand_leaf(&rng, BK_SHAPE(8, 29, 16), -1, 1, true);
        t.in[t.n++] = rand_leaf(&rng, BK_SHAPE(8, 29, 12), -1, 1, true);
        break;
    default: break;
    }
    return t;
}

static void inputs_free(thr_inputs *t) {
    for (int i = 0; i < t->n; i++) bk_tensor_free(t->in[i]);
}

static bk_tensor *forward(case_kind k, bk_tensor **in) {
    bk_pool2d_opts k3s2p1 = {{3, 3}, {2, 2}, {1, 1}};
    switch (k) {
    case T_RELU: return bk_relu(in[0]);
    case T_TANH: return bk_tanh(in[0]);
    case T_GELU: return bk_gelu(in[0]);
    case T_ADD:
    case T_ADD_BCAST: return bk_add(in[0], in[1]);
    case T_MUL: return bk_mul(in[0], in[1]);
    case T_MUL_SCALAR: return bk_mul_scalar(in[0], 0.75f);
    case T_MAX_POOL_2X2: return bk_max_pool2d(in[0], (bk_pool2d_opts){{2, 2}, {2, 2}, {0, 0}});
    case T_MAX_POOL_3S2P1: return bk_max_pool2d(in[0], k3s2p1);
    case T_AVG_POOL: return bk_avg_pool2d(in[0], k3s2p1);
    case T_ADAPTIVE: return bk_adaptive_avg_pool2d(in[0], 3, 3);
    case T_BN_TRAIN:
    case T_BN_1D: return bk_batch_norm(in[0], in[3], in[4], in[1], in[2], true, 0.1f, 1e-5f);
    case T_BN_EVAL: return bk_batch_norm(in[0], in[3], in[4], in[1], in[2], false, 0.1f, 1e-5f);
    case T_LAYER_NORM: return bk_layer_norm(in[0], 1, in[1], in[2], 1e-5f);
    case T_ATTENTION: return bk_scaled_dot_product_attention(in[0], in[1], in[2], NULL, 0.0f, false, NULL);
    case T_CROSS_ENTROPY: {
        static int64_t target[1031];
        for (int64_t i = 0; i < 1031; i++) target[i] = i * 7 % 131;
        return bk_cross_entropy(in[0], target, 1031, BK_REDUCTION_NONE);
    }
    default: return NULL;
    }
}

/* The bytes of one run: output, then every gradient, then every input that does not
 * require grad (batch norm's running statistics, which the forward updates). */
typedef struct result {
    unsigned char *bytes;
    size_t n;
} result;

static void append(result *r, const bk_tensor *t) {
    size_t add = (size_t)t->numel * sizeof(float);
    unsigned char *b = realloc(r->bytes, r->n + add + 1);
    if (!b) abort();
    memcpy(b + r->n, t->data, add);
    r->bytes = b, r->n += add;
}

static void set_threads(int threads) {
#ifdef _OPENMP
    omp_set_num_threads(threads);
#else
    (void)threads;
#endif
}

static result run(case_kind k, int threads) {
    result r = {NULL, 0};
    set_threads(threads);
    thr_inputs t = inputs_new(k);
    bk_tensor *y = forward(k, t.in);
    CHECK(y != NULL);
    if (y) {
        bk_rng rng;
        bk_rng_seed(&rng, 99);
        bk_tensor *G = bk_empty(y->ndim, y->shape);
        bk_fill_uniform(G, &rng, -1, 1);
        append(&r, y);
        CHECK(bk_backward_ex(y, G, false) == 0);
        for (int i = 0; i < t.n; i++) {
            if (t.in[i]->requires_grad) CHECK(t.in[i]->grad != NULL);
            append(&r, t.in[i]->requires_grad && t.in[i]->grad ? t.in[i]->grad : t.in[i]);
        }
    }
    bk_arena_reset(NULL);
    inputs_free(&t);
    return r;
}

TEST(ops_bitwise_across_thread_counts) {
#ifdef _OPENMP
    int saved = omp_get_max_threads();
    static const int teams[] = {2, 3, 2};
    for (int k = 0; k < T_COUNT; k++) {
        result one = run((case_kind)k, 1);
        for (size_t i = 0; i < sizeof teams / sizeof *teams; i++) {
            result r = run((case_kind)k, teams[i]);
            bool same = r.n == one.n && one.n > 0 && memcmp(r.bytes, one.bytes, one.n) == 0;
            if (!same) fprintf(stderr, "  %s: 1 and %d threads differ\n", CASES[k].name, teams[i]);
            CHECK(same);
            free(r.bytes);
        }
        free(one.bytes);
    }
    omp_set_num_threads(saved);
#else
    /* built without OpenMP: every op runs on one thread; still run each case once */
    for (int k = 0; k < T_COUNT; k++) {
        result one = run((case_kind)k, 1);
        CHECK(one.n > 0);
        free(one.bytes);
    }
    printf("  (built without OpenMP: every op runs on one thread)\n");
#endif
}

/* ---- optimizer steps and loader batches ------------------------------------------------
 * The optimizers' updates (from OPTIM_PARALLEL_MIN = 2^15 elements) and the loader's gather
 * of a batch (from 2^16 floats) run on the threads. */

enum { OPT_SGD, OPT_SGD_MOMENTUM, OPT_SGD_NESTEROV, OPT_ADAM, OPT_ADAMW_AMSGRAD, OPT_COUNT };

/* The weight (255, 257) = 65,535 floats of a Linear after 3 steps of optimizer `which` from
 * the same initial values and gradients, on `threads` threads. */
static result optim_run(int which, int threads) {
    result r = {NULL, 0};
    set_threads(threads);
    bk_manual_seed(5);
    bk_module *m = bk_nn_linear(257, 255);
    bk_sgd_config mom = {0.1, 0.9, 0.0, 1e-3, false}, nest = {0.1, 0.9, 0.0, 0.0, true};
    bk_adam_config ams = BK_ADAMW_DEFAULTS(0.01);
    ams.amsgrad = true;
    bk_optim *o = which == OPT_SGD            ? bk_optim_sgd(m, BK_SGD_DEFAULTS(0.1))
                  : which == OPT_SGD_MOMENTUM ? bk_optim_sgd(m, mom)
                  : which == OPT_SGD_NESTEROV ? bk_optim_sgd(m, nest)
                  : which == OPT_ADAM         ? bk_optim_adam(m, BK_ADAM_DEFAULTS(0.01))
                                              : bk_optim_adamw(m, ams);
    CHECK(m != NULL && o != NULL);
    bk_tensor *W = bk_module_get(m, "weight");
    bk_tensor *X = bk_tensor_new(BK_SHAPE(3, 257));
    bk_fill_uniform(X, NULL, -1, 1);
    for (int step = 0; W && step < 3; step++) {
        bk_optim_zero_grad(o);
        CHECK(bk_backward(bk_sum(bk_tanh(bk_forward(m, X)))) == 0);
        CHECK(bk_optim_step(o) == 0);
        bk_arena_reset(NULL);
    }
    if (W) append(&r, W);
    bk_tensor_free(X);
    bk_optim_free(o);
    bk_module_free(m);
    return r;
}

/* Every batch of an epoch (300 samples of 17 x 16 floats, shuffled, batches of 256 and 44)
 * on `threads` threads; each sample's floats all hold its index, which the check uses. */
static result loader_run(int threads) {
    result r = {NULL, 0};
    set_threads(threads);
    enum { N = 300, F = 17 * 16 };
    float *x = malloc(sizeof(float) * N * F);
    int64_t *y = malloc(sizeof(int64_t) * N);
    if (!x || !y) abort();
    for (int i = 0; i < N; i++) {
        y[i] = i % 10;
        for (int j = 0; j < F; j++) x[i * F + j] = (float)i;
    }
    bk_dataset *ds = bk_dataset_from_arrays(N, BK_SHAPE(17, 16), x, y, 10, NULL, 0);
    bk_loader *l = ds ? bk_loader_new(ds, 256, true, 42, false) : NULL;
    CHECK(l != NULL);
    bk_tensor *xb;
    const int64_t *yb;
    int64_t B;
    while (l && (B = bk_loader_next(l, &xb, &yb, NULL)) > 0) {
        bool rows_ok = true; /* row b is one sample, whole, and its label goes with it */
        for (int64_t b = 0; b < B; b++)
            for (int j = 0; j < F; j++)
                rows_ok &= xb->data[b * F + j] == xb->data[b * F] && (int64_t)xb->data[b * F] % 10 == yb[b];
        CHECK(rows_ok);
        append(&r, xb);
        bk_arena_reset(NULL);
    }
    bk_loader_free(l);
    bk_dataset_free(ds);
    free(x);
    free(y);
    return r;
}

TEST(optim_and_loader_bitwise_across_thread_counts) {
#ifdef _OPENMP
    int saved = omp_get_max_threads();
#endif
    static const int teams[] = {2, 3};
    static const char *names[OPT_COUNT] = {"SGD", "SGD momentum + weight decay", "SGD Nesterov", "Adam",
                                           "AdamW amsgrad"};
    for (int k = 0; k <= OPT_COUNT; k++) { /* OPT_COUNT: the loader */
        const char *name = k < OPT_COUNT ? names[k] : "loader batches";
        result one = k < OPT_COUNT ? optim_run(k, 1) : loader_run(1);
        CHECK(one.n > 0);
        for (size_t i = 0; i < sizeof teams / sizeof *teams; i++) {
            result t = k < OPT_COUNT ? optim_run(k, teams[i]) : loader_run(teams[i]);
            bool same = t.n == one.n && one.n > 0 && memcmp(t.bytes, one.bytes, one.n) == 0;
            if (!same) fprintf(stderr, "  %s: 1 and %d threads differ\n", name, teams[i]);
            CHECK(same);
            free(t.bytes);
        }
        free(one.bytes);
    }
#ifdef _OPENMP
    omp_set_num_threads(saved);
#endif
}

int main(void) {
    RUN(ops_bitwise_across_thread_counts);
    RUN(optim_and_loader_bitwise_across_thread_counts);
    return test_summary("test_threads");
}
