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
    T_RELU, T_TANH, T_ADD, T_MUL, T_ADD_BCAST, T_MUL_SCALAR, T_MAX_POOL_2X2, T_MAX_POOL_3S2P1,
    T_AVG_POOL, T_ADAPTIVE, T_BN_TRAIN, T_BN_EVAL, T_BN_1D, T_LAYER_NORM, T_ATTENTION,
    T_COUNT
} case_kind;

typedef struct thr_case {
    const char *name;
    int ndim;
    int64_t shape[4]; /* of the first input */
} thr_case;

/* Sizes: element-wise ops go parallel from 2^20 elements (2^14 for tanh), pooling from
 * 2^18 input elements, the norms from 2^17 elements; odd sizes leave a ragged last chunk. */
static const thr_case CASES[T_COUNT] = {
    [T_RELU] = {"relu", 1, {(1 << 20) + 3}},
    [T_TANH] = {"tanh", 1, {(1 << 14) + 5}},
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
    case T_MUL:
        t.in[t.n++] = rand_leaf(&rng, c->ndim, c->shape, -2, 2, true);
        break;
    case T_ADD_BCAST:
        t.in[t.n++] = rand_leaf(&rng, 1, &c->shape[1], -2, 2, true);
        break;
    case T_BN_TRAIN:
    case T_BN_EVAL:
    case T_BN_1D:
    case T_LAYER_NORM: {
        int64_t F = k == T_LAYER_NORM ? c->shape[1] : C;
        t.in[t.n++] = rand_leaf(&rng, 1, &F, 0.5f, 1.5f, true);   /* weight */
        t.in[t.n++] = rand_leaf(&rng, 1, &F, -0.5f, 0.5f, true);  /* bias */
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

static result run(case_kind k, int threads) {
    result r = {NULL, 0};
#ifdef _OPENMP
    omp_set_num_threads(threads);
#else
    (void)threads;
#endif
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

int main(void) {
    RUN(ops_bitwise_across_thread_counts);
    return test_summary("test_threads");
}
