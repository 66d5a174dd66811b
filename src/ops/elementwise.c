/* elementwise.c - unary, scalar and broadcasting binary ops, each with its backward.
 *
 * Broadcasting follows PyTorch: shapes are aligned at the right; a dimension of size 1
 * (or a missing one) stretches to the other's size. The backward of a broadcast input
 * sums the output gradient over the stretched dimensions, which falls out naturally here
 * because broadcast dimensions have stride 0 and the backward adds into them.
 *
 * The ops themselves are rows of elementwise_ops.h: this file turns each row into its
 * loops, its descriptor and its public function.
 *
 * Speed: each row's per-element math is pasted into loops of its own, and the switch on
 * the op sits outside the loops, so every op gets its own loop that the compiler
 * vectorises where the math allows it (`omp simd`: GCC -O2 alone does not vectorise loops
 * of unknown length); a unary or scalar row's loops are functions of their own, compiled
 * for AVX-512, AVX2 and the baseline (SIMD_CLONES). Large tensors are split in one
 * contiguous chunk per thread. Each element is computed by the same operations whatever the
 * split (no sum crosses elements), so results do not depend on the thread count.
 */
#include "internal.h"
#include "ops/elementwise_ops.h"
#include "ops/simd_clones.h"

#include <math.h>

/* Below these sizes one thread does the whole loop. A parallel region pays only when the
 * loop is long: on a 2-core Zen 3 VM (bench/ops_bench, best of 41) relu on 2^16 floats
 * takes 26 µs on 1 thread and 12 on 2, but with libgomp's default wait policy each region
 * also leaves the other thread spinning after it, which on a loaded machine costs more than
 * such gains: LeNet on 2 threads (load ~8, 4 runs) burned a median 13.6 s of CPU per 2
 * epochs with 2^16 here (and pooling and norms at 2^16, 2^15), 9.2 s with these, and ran
 * at the same speed with either under OMP_WAIT_POLICY=passive. So cheap ops
 * (memory bound, ~0.3 ns per element) go parallel from 2^20 elements (~300 µs), libm ops
 * (tanh: 15 µs per 2^10 elements) from 2^14. */
#define PARALLEL_MIN_CHEAP ((int64_t)1 << 20)
#define PARALLEL_MIN_COSTLY ((int64_t)1 << 14)

/* Loops start on a 64-byte boundary. The hot loops are a few instructions long (relu: 33
 * bytes) and run at one iteration every cycle or two; one that happens to straddle two
 * 64-byte lines fetches slower: relu's forward took 1.6 times as long on Zen 4 (bench/
 * ops_bench) when an unrelated edit moved its loop across a line. GCC aligns only the loops
 * its profile estimate calls hot (relu's forward is one, add's same-shape forward
 * is not: each case of a long switch looks rare), so the binary ops' loops still depend
 * on where they land; the unary rows' loops are one function each, hot to GCC. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("align-loops=64")
#endif

/* ---- broadcasting ------------------------------------------------------------------------ */

typedef struct bcast {
    int ndim;
    int64_t shape[BK_MAX_DIMS];
    int64_t sa[BK_MAX_DIMS], sb[BK_MAX_DIMS]; /* strides of a and b in the output's frame */
} bcast;

static bool bcast_init(const char *op, const bk_tensor *a, const bk_tensor *b, bcast *bc) {
    int nd = a->ndim > b->ndim ? a->ndim : b->ndim;
    bc->ndim = nd;
    for (int i = 0; i < nd; i++) {
        int ia = i - (nd - a->ndim), ib = i - (nd - b->ndim);
        int64_t da = ia >= 0 ? a->shape[ia] : 1, db = ib >= 0 ? b->shape[ib] : 1;
        if (da != db && da != 1 && db != 1) {
            char s1[128], s2[128];
            bk_set_error(
                "%s: shapes %s and %s cannot be broadcast together (dimension %d: "
                "%lld vs %lld)",
                op, bk_shape_str(a, s1, sizeof s1), bk_shape_str(b, s2, sizeof s2), i, (long long)da,
                (long long)db);
            return false;
        }
        bc->shape[i] = da == 1 ? db : da;
        bc->sa[i] = (ia >= 0 && da != 1) ? a->stride[ia] : 0;
        bc->sb[i] = (ib >= 0 && db != 1) ? b->stride[ib] : 0;
    }
    return true;
}

/* Runs the statements (using oi, ia, ib) for every output element in row-major order. The innermost
 * dimension runs as a tight loop. */
#define BCAST_LOOP(bc, numel, ...)                                                       \
    do {                                                                                 \
        int nd_ = (bc)->ndim;                                                            \
        int64_t idx_[BK_MAX_DIMS] = {0};                                                 \
        int64_t inner_ = nd_ ? (bc)->shape[nd_ - 1] : 1;                                 \
        int64_t isa_ = nd_ ? (bc)->sa[nd_ - 1] : 0, isb_ = nd_ ? (bc)->sb[nd_ - 1] : 0;  \
        int64_t offa_ = 0, offb_ = 0;                                                    \
        for (int64_t base_ = 0; base_ < (numel); base_ += inner_) {                      \
            for (int64_t j_ = 0; j_ < inner_; j_++) {                                    \
                int64_t oi = base_ + j_, ia = offa_ + j_ * isa_, ib = offb_ + j_ * isb_; \
                __VA_ARGS__;                                                             \
            }                                                                            \
            for (int d_ = nd_ - 2; d_ >= 0; d_--) {                                      \
                idx_[d_]++;                                                              \
                offa_ += (bc)->sa[d_];                                                   \
                offb_ += (bc)->sb[d_];                                                   \
                if (idx_[d_] < (bc)->shape[d_]) break;                                   \
                offa_ -= (bc)->sa[d_] * (bc)->shape[d_];                                 \
                offb_ -= (bc)->sb[d_] * (bc)->shape[d_];                                 \
                idx_[d_] = 0;                                                            \
            }                                                                            \
        }                                                                                \
    } while (0)

/* ---- binary ops ---------------------------------------------------------------------------- */

/* The rows are in elementwise_ops.h. In the loops below a row's expressions see the
 * element's a, b (and y, g in a gradient) as local floats; each row becomes its own loop,
 * with the switch on the op outside it. */
#define X_ENUM(name, ...) BIN_##name,
typedef enum { BK_BINARY_OPS(X_ENUM) BK_COMPARE_OPS(X_ENUM) } bin_kind;
#undef X_ENUM

typedef struct bin_params {
    bin_kind kind;
} bin_params;

static void binary_backward(bk_node *n);
/* comparisons have no backward: nothing is recorded for them */
#define X_DESC(name, ...) [BIN_##name] = {#name, binary_backward},
#define X_DESC_CMP(name, ...) [BIN_##name] = {#name, NULL},
static const bk_op BINARY_DESC[] = {BK_BINARY_OPS(X_DESC) BK_COMPARE_OPS(X_DESC_CMP)};
#undef X_DESC
#undef X_DESC_CMP

static bk_tensor *binary(bin_kind k, bk_tensor *ta, bk_tensor *tb) {
    bk_tensor *in[2] = {ta, tb};
    const bk_op *op = &BINARY_DESC[k];
    if (!bk__inputs_ok(op->name, 2, in)) return NULL;
    bcast bc;
    if (!bcast_init(op->name, ta, tb, &bc)) return NULL;
    bk_tensor *ty = bk__tensor_arena(bc.ndim, bc.shape, false);
    if (!ty) return NULL;
    const float *A = ta->data, *B = tb->data;
    float *Y = ty->data;
    int64_t n = ty->numel;
    if (bk_same_shape(ta, tb)) {
#define X_CASE(name, cost, fwd, ...)                                                  \
    case BIN_##name:                                                                  \
        BK_MAP(n, PARALLEL_MIN_##cost, float a = A[i]; float b = B[i]; Y[i] = (fwd)); \
        break;
#define X_CASE_CMP(name, fwd, ...) X_CASE(name, CHEAP, fwd, (no gradient))
        switch (k) { BK_BINARY_OPS(X_CASE) BK_COMPARE_OPS(X_CASE_CMP) }
#undef X_CASE
    } else if (tb->numel == 1) {
        float s = B[0];
#define X_CASE(name, cost, fwd, ...) \
    case BIN_##name: BK_MAP(n, PARALLEL_MIN_##cost, float a = A[i]; float b = s; Y[i] = (fwd)); break;
        switch (k) { BK_BINARY_OPS(X_CASE) BK_COMPARE_OPS(X_CASE_CMP) }
#undef X_CASE
    } else {
#define X_CASE(name, cost, fwd, ...) \
    case BIN_##name: BCAST_LOOP(&bc, n, float a = A[ia]; float b = B[ib]; Y[oi] = (fwd)); break;
        switch (k) { BK_BINARY_OPS(X_CASE) BK_COMPARE_OPS(X_CASE_CMP) }
#undef X_CASE
    }
#undef X_CASE_CMP
    if (!op->backward) return ty;
    bin_params p = {k};
    return bk_op_record(op, ty, 2, in, &p, sizeof p);
}

static void binary_backward(bk_node *n) {
    const bin_params *p = bk_node_params(n);
    const bk_tensor *ta = bk_node_input(n, 0), *tb = bk_node_input(n, 1);
    const bk_tensor *ty = bk_node_output(n), *dy = bk_node_grad_output(n);
    /* new gradients are not zero-filled (fresh): the same-shape loops assign them, the
     * broadcast loop adds, so it zeroes them first. da is asked for first: for bk_add(x, x)
     * db is then the same buffer, not fresh, and its loop runs after da's. */
    bool fa, fb;
    bk_tensor *da = bk__node_grad_input_write(n, 0, &fa), *db = bk__node_grad_input_write(n, 1, &fb);
    bcast bc;
    if (!bcast_init("backward", ta, tb, &bc)) return;
    const float *A = ta->data, *B = tb->data, *Y = ty->data, *G = dy->data;
    float *DA = da ? da->data : NULL, *DB = db ? db->data : NULL;
    int64_t N = ty->numel;
    if (bk_same_shape(ta, tb)) { /* (da and db may be one buffer: bk_add(x, x)) */
#define X_CASE(name, cost, fwd, grad_a, grad_b, ...)                                                         \
    case BIN_##name:                                                                                         \
        if (DA && fa)                                                                                        \
            BK_MAP(N, PARALLEL_MIN_##cost, float a = A[i]; float b = B[i]; float g = G[i]; (void)a; (void)b; \
                   DA[i] = (grad_a));                                                                        \
        else if (DA)                                                                                         \
            BK_MAP(N, PARALLEL_MIN_##cost, float a = A[i]; float b = B[i]; float g = G[i]; (void)a; (void)b; \
                   DA[i] += (grad_a));                                                                       \
        if (DB && fb)                                                                                        \
            BK_MAP(N, PARALLEL_MIN_##cost, float a = A[i]; float b = B[i]; float y = Y[i]; float g = G[i];   \
                   (void)a; (void)b; (void)y; DB[i] = (grad_b));                                             \
        else if (DB)                                                                                         \
            BK_MAP(N, PARALLEL_MIN_##cost, float a = A[i]; float b = B[i]; float y = Y[i]; float g = G[i];   \
                   (void)a; (void)b; (void)y; DB[i] += (grad_b));                                            \
        break;
        switch (p->kind) {
            BK_BINARY_OPS(X_CASE)
        default: break;
        }
#undef X_CASE
        return;
    }
    /* broadcast: a stretched input's gradient sums over the stretched dims, so one
     * thread walks the elements in order */
    if (DA && fa) memset(DA, 0, sizeof(float) * (size_t)ta->numel);
    if (DB && fb) memset(DB, 0, sizeof(float) * (size_t)tb->numel);
#define X_CASE(name, cost, fwd, grad_a, grad_b, ...) \
    case BIN_##name:                                 \
        BCAST_LOOP(&bc, N, {                         \
            float a = A[ia];                         \
            float b = B[ib];                         \
            float y = Y[oi];                         \
            float g = G[oi];                         \
            (void)a, (void)b, (void)y;               \
            if (DA) DA[ia] += (grad_a);              \
            if (DB) DB[ib] += (grad_b);              \
        });                                          \
        break;
    switch (p->kind) {
        BK_BINARY_OPS(X_CASE)
    default: break;
    }
#undef X_CASE
}

/* ---- unary and scalar ops -------------------------------------------------------------------- */

/* The rows are in elementwise_ops.h; a row's expressions see the element's x (and y, g in
 * the gradient) as local floats, and the scalars s and t. */
#define X_ENUM(name, ...) UN_##name,
typedef enum { BK_UNARY_OPS(X_ENUM) BK_SCALAR_OPS(X_ENUM) BK_SCALAR2_OPS(X_ENUM) } un_kind;
#undef X_ENUM

typedef struct un_params {
    un_kind kind;
    float s, t; /* the scalars of the scalar ops (t: of the two-scalar ones) */
} un_params;

/* Each row's loops are functions of their own, SIMD_CLONES (simd_clones.h): compiled for
 * AVX-512, AVX2 and the baseline, the widest one the CPU has chosen at run time. With the
 * default build's SSE2 alone exact GELU ran 4 floats a vector and was 19.5% of a `brick
 * train-lm` step; AVX-512 runs 16. Every clone computes each element by the same operations
 * (no FMA contraction in ISO C), so the bits do not depend on the CPU either.
 *   forward:  Y[i] = fwd(x = X[i]),                       i in [0, n)
 *   backward: D[i] (+)= grad(x = X[i], y = Y[i], g = G[i]) */
typedef void un_forward_fn(const float *X, float *Y, int64_t n, float s, float t);
typedef void un_backward_fn(const float *X, const float *Y, const float *G, float *D, int64_t n, bool fresh,
                            float s, float t);

#define X_KERNELS(name, cost, fwd, grad, ...)                                                            \
    SIMD_CLONES static void un_forward_##name(const float *X, float *Y, int64_t n, float s, float t) {   \
        (void)s, (void)t;                                                                                \
        _Pragma("omp simd") for (int64_t i = 0; i < n; i++) {                                            \
            float x = X[i];                                                                              \
            Y[i] = (fwd);                                                                                \
        }                                                                                                \
    }                                                                                                    \
    SIMD_CLONES static void un_backward_##name(const float *X, const float *Y, const float *G, float *D, \
                                               int64_t n, bool fresh, float s, float t) {                \
        (void)s, (void)t;                                                                                \
        if (fresh) {                                                                                     \
            _Pragma("omp simd") for (int64_t i = 0; i < n; i++) {                                        \
                float x = X[i], y = Y[i], g = G[i];                                                      \
                (void)x, (void)y;                                                                        \
                D[i] = (grad);                                                                           \
            }                                                                                            \
        } else {                                                                                         \
            _Pragma("omp simd") for (int64_t i = 0; i < n; i++) {                                        \
                float x = X[i], y = Y[i], g = G[i];                                                      \
                (void)x, (void)y;                                                                        \
                D[i] += (grad);                                                                          \
            }                                                                                            \
        }                                                                                                \
    }
BK_UNARY_OPS(X_KERNELS)
BK_SCALAR_OPS(X_KERNELS)
BK_SCALAR2_OPS(X_KERNELS)
#undef X_KERNELS

typedef struct un_row {
    un_forward_fn *forward;
    un_backward_fn *backward;
    int64_t parallel_min; /* PARALLEL_MIN_CHEAP or _COSTLY */
} un_row;
#define X_ROW(name, cost, ...) [UN_##name] = {un_forward_##name, un_backward_##name, PARALLEL_MIN_##cost},
static const un_row UN_ROWS[] = {BK_UNARY_OPS(X_ROW) BK_SCALAR_OPS(X_ROW) BK_SCALAR2_OPS(X_ROW)};
#undef X_ROW

/* Runs CALL, which uses lo and len, on [0, n): once below min, else on blocks of UN_BLOCK
 * elements, the threads taking one contiguous run of blocks each. An OpenMP region is
 * outlined into a function that target_clones does not clone, so the cloned loops are
 * called inside it. */
#define UN_BLOCK ((int64_t)1 << 13)
#define UN_SPLIT(n, min, CALL)                                                                  \
    do {                                                                                        \
        int64_t n_ = (n);                                                                       \
        if (n_ < (min)) {                                                                       \
            int64_t lo = 0, len = n_;                                                           \
            CALL;                                                                               \
        } else {                                                                                \
            int64_t nb_ = (n_ + UN_BLOCK - 1) / UN_BLOCK;                                       \
            _Pragma("omp parallel for schedule(static)") for (int64_t b_ = 0; b_ < nb_; b_++) { \
                int64_t lo = b_ * UN_BLOCK, len = n_ - lo < UN_BLOCK ? n_ - lo : UN_BLOCK;      \
                CALL;                                                                           \
            }                                                                                   \
        }                                                                                       \
    } while (0)

static void unary_backward(bk_node *n) {
    const un_params *p = bk_node_params(n);
    const bk_tensor *tx = bk_node_input(n, 0), *ty = bk_node_output(n), *dy = bk_node_grad_output(n);
    bool fresh; /* dx new and not zero-filled: assign rather than add */
    bk_tensor *dx = bk__node_grad_input_write(n, 0, &fresh);
    if (!dx) return;
    const float *X = tx->data, *Y = ty->data, *G = dy->data;
    float *D = dx->data;
    const un_row *row = &UN_ROWS[p->kind];
    UN_SPLIT(tx->numel, row->parallel_min,
             row->backward(X + lo, Y + lo, G + lo, D + lo, len, fresh, p->s, p->t));
}

#define X_DESC(name, ...) [UN_##name] = {#name, unary_backward},
static const bk_op UNARY_DESC[] = {BK_UNARY_OPS(X_DESC) BK_SCALAR_OPS(X_DESC) BK_SCALAR2_OPS(X_DESC)};
#undef X_DESC

static bk_tensor *unary(un_kind k, bk_tensor *tx, float s, float t) {
    const bk_op *op = &UNARY_DESC[k];
    if (!bk__inputs_ok(op->name, 1, &tx)) return NULL;
    bk_tensor *ty = bk__tensor_arena(tx->ndim, tx->shape, false);
    if (!ty) return NULL;
    const float *X = tx->data;
    float *Y = ty->data;
    const un_row *row = &UN_ROWS[k];
    UN_SPLIT(tx->numel, row->parallel_min, row->forward(X + lo, Y + lo, len, s, t));
    un_params p = {k, s, t};
    return bk_op_record(op, ty, 1, &tx, &p, sizeof p);
}

/* ---- the public functions: one per row ---------------------------------------------------- */

#define X_FN(name, ...) \
    bk_tensor *bk_##name(bk_tensor *a, bk_tensor *b) { return binary(BIN_##name, a, b); }
BK_BINARY_OPS(X_FN)
BK_COMPARE_OPS(X_FN)
#undef X_FN
#define X_FN(name, ...) \
    bk_tensor *bk_##name(bk_tensor *a) { return unary(UN_##name, a, 0, 0); }
BK_UNARY_OPS(X_FN)
#undef X_FN
#define X_FN(name, ...) \
    bk_tensor *bk_##name(bk_tensor *a, float s) { return unary(UN_##name, a, s, 0); }
BK_SCALAR_OPS(X_FN)
#undef X_FN
#define X_FN(name, ...) \
    bk_tensor *bk_##name(bk_tensor *a, float s, float t) { return unary(UN_##name, a, s, t); }
BK_SCALAR2_OPS(X_FN)
#undef X_FN
