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
 * of unknown length). Large tensors are split in one contiguous chunk per
 * thread. Each element is computed by the same operations whatever the split (no sum
 * crosses elements), so results do not depend on the thread count.
 */
#include "internal.h"
#include "ops/elementwise_ops.h"

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
 * is not: each case of a long switch looks rare), so some loops still depend on where
 * they land; one function per row would make every loop hot to GCC. */
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

static void unary_backward(bk_node *n) {
    const un_params *p = bk_node_params(n);
    const bk_tensor *tx = bk_node_input(n, 0), *ty = bk_node_output(n), *dy = bk_node_grad_output(n);
    bool fresh; /* dx new and not zero-filled: assign rather than add */
    bk_tensor *dx = bk__node_grad_input_write(n, 0, &fresh);
    if (!dx) return;
    const float *X = tx->data, *Y = ty->data, *G = dy->data;
    float *D = dx->data;
    float s = p->s, t = p->t;
    int64_t N = tx->numel;
#define X_CASE(name, cost, fwd, grad, ...)                                                                   \
    case UN_##name:                                                                                          \
        if (fresh)                                                                                           \
            BK_MAP(N, PARALLEL_MIN_##cost, float x = X[i]; float y = Y[i]; float g = G[i]; (void)x; (void)y; \
                   D[i] = (grad));                                                                           \
        else                                                                                                 \
            BK_MAP(N, PARALLEL_MIN_##cost, float x = X[i]; float y = Y[i]; float g = G[i]; (void)x; (void)y; \
                   D[i] += (grad));                                                                          \
        break;
    switch (p->kind) { BK_UNARY_OPS(X_CASE) BK_SCALAR_OPS(X_CASE) BK_SCALAR2_OPS(X_CASE) }
    (void)s, (void)t;
#undef X_CASE
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
    int64_t N = tx->numel;
#define X_CASE(name, cost, fwd, ...) \
    case UN_##name: BK_MAP(N, PARALLEL_MIN_##cost, float x = X[i]; Y[i] = (fwd)); break;
    switch (k) { BK_UNARY_OPS(X_CASE) BK_SCALAR_OPS(X_CASE) BK_SCALAR2_OPS(X_CASE) }
#undef X_CASE
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
