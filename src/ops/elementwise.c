/* elementwise.c - unary, scalar and broadcasting binary ops, each with its backward.
 *
 * Broadcasting follows PyTorch: shapes are aligned at the right; a dimension of size 1
 * (or a missing one) stretches to the other's size. The backward of a broadcast input
 * sums the output gradient over the stretched dimensions, which falls out naturally here
 * because broadcast dimensions have stride 0 and the backward adds into them.
 *
 * Speed: the per-element math is written once (bin_apply, un_apply and their gradients),
 * and each loop switches on the op outside the loop, so every op gets its own loop that
 * the compiler vectorises where the math allows it (`omp simd`: GCC -O2 alone does not
 * vectorise loops of unknown length). Large tensors are split in one contiguous chunk per
 * thread. Each element is computed by the same operations whatever the split (no sum
 * crosses elements), so results do not depend on the thread count.
 */
#include "internal.h"
#include "ops/fastmath.h"

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
            bk_set_error("%s: shapes %s and %s cannot be broadcast together (dimension %d: "
                         "%lld vs %lld)", op, bk_shape_str(a, s1, sizeof s1),
                         bk_shape_str(b, s2, sizeof s2), i, (long long)da, (long long)db);
            return false;
        }
        bc->shape[i] = da == 1 ? db : da;
        bc->sa[i] = (ia >= 0 && da != 1) ? a->stride[ia] : 0;
        bc->sb[i] = (ib >= 0 && db != 1) ? b->stride[ib] : 0;
    }
    return true;
}

/* Calls body(oi, ia, ib) for every output element in row-major order. The innermost
 * dimension runs as a tight loop. */
#define BCAST_LOOP(bc, numel, BODY)                                                       \
    do {                                                                                  \
        int nd_ = (bc)->ndim;                                                             \
        int64_t idx_[BK_MAX_DIMS] = {0};                                                  \
        int64_t inner_ = nd_ ? (bc)->shape[nd_ - 1] : 1;                                  \
        int64_t isa_ = nd_ ? (bc)->sa[nd_ - 1] : 0, isb_ = nd_ ? (bc)->sb[nd_ - 1] : 0;   \
        int64_t offa_ = 0, offb_ = 0;                                                     \
        for (int64_t base_ = 0; base_ < (numel); base_ += inner_) {                       \
            for (int64_t j_ = 0; j_ < inner_; j_++) {                                     \
                int64_t oi = base_ + j_, ia = offa_ + j_ * isa_, ib = offb_ + j_ * isb_;  \
                BODY;                                                                     \
            }                                                                             \
            for (int d_ = nd_ - 2; d_ >= 0; d_--) {                                       \
                idx_[d_]++;                                                               \
                offa_ += (bc)->sa[d_];                                                    \
                offb_ += (bc)->sb[d_];                                                    \
                if (idx_[d_] < (bc)->shape[d_]) break;                                    \
                offa_ -= (bc)->sa[d_] * (bc)->shape[d_];                                  \
                offb_ -= (bc)->sb[d_] * (bc)->shape[d_];                                  \
                idx_[d_] = 0;                                                             \
            }                                                                             \
        }                                                                                 \
    } while (0)

/* ---- binary ops ---------------------------------------------------------------------------- */

typedef enum { BIN_ADD, BIN_SUB, BIN_MUL, BIN_DIV, BIN_POW, BIN_GT, BIN_LT, BIN_EQ } bin_kind;
#define BIN_KINDS(X) X(BIN_ADD) X(BIN_SUB) X(BIN_MUL) X(BIN_DIV) X(BIN_POW) X(BIN_GT) X(BIN_LT) X(BIN_EQ)
#define BIN_GRAD_KINDS(X) X(BIN_ADD) X(BIN_SUB) X(BIN_MUL) X(BIN_DIV) X(BIN_POW) /* the differentiable ones */

typedef struct bin_params {
    bin_kind kind;
} bin_params;

static inline float bin_apply(bin_kind k, float x, float y) {
    switch (k) {
    case BIN_ADD: return x + y;
    case BIN_SUB: return x - y;
    case BIN_MUL: return x * y;
    case BIN_DIV: return x / y;
    case BIN_POW: return powf(x, y);
    case BIN_GT: return x > y ? 1.0f : 0.0f;
    case BIN_LT: return x < y ? 1.0f : 0.0f;
    case BIN_EQ: return x == y ? 1.0f : 0.0f;
    }
    return 0.0f;
}

/* What one element adds into da and db, given a, b, y and the output gradient g:
 * d(a+b) = (g, g); d(a-b) = (g, -g); d(ab) = (g b, g a); d(a/b) = (g/b, -g a/b^2);
 * d(a^b) = (g b a^(b-1), g a^b ln a) */
static inline float bin_grad_a(bin_kind k, float a, float b, float g) {
    switch (k) {
    case BIN_ADD:
    case BIN_SUB: return g;
    case BIN_MUL: return g * b;
    case BIN_DIV: return g / b;
    case BIN_POW: return b == 0.0f ? 0.0f : g * b * powf(a, b - 1.0f);
    default: return 0.0f;
    }
}

static inline float bin_grad_b(bin_kind k, float a, float b, float y, float g) {
    switch (k) {
    case BIN_ADD: return g;
    case BIN_SUB: return -g;
    case BIN_MUL: return g * a;
    case BIN_DIV: return -(g * a / (b * b));
    case BIN_POW: return a == 0.0f && b >= 0.0f ? 0.0f : g * y * logf(a);
    default: return 0.0f;
    }
}

static inline int64_t bin_parallel_min(bin_kind k) {
    return k == BIN_POW ? PARALLEL_MIN_COSTLY : PARALLEL_MIN_CHEAP;
}

static void binary_backward(bk_node *n);
static const bk_op OP_ADD = {"add", binary_backward};
static const bk_op OP_SUB = {"sub", binary_backward};
static const bk_op OP_MUL = {"mul", binary_backward};
static const bk_op OP_DIV = {"div", binary_backward};
static const bk_op OP_POW = {"pow", binary_backward};

static const bk_op *bin_op(bin_kind k) {
    switch (k) {
    case BIN_ADD: return &OP_ADD;
    case BIN_SUB: return &OP_SUB;
    case BIN_MUL: return &OP_MUL;
    case BIN_DIV: return &OP_DIV;
    case BIN_POW: return &OP_POW;
    default: return NULL; /* comparisons have no gradient */
    }
}

static const char *bin_name(bin_kind k) {
    static const char *names[] = {"add", "sub", "mul", "div", "pow", "gt", "lt", "eq"};
    return names[k];
}

static bk_tensor *binary(bin_kind k, bk_tensor *a, bk_tensor *b) {
    bk_tensor *in[2] = {a, b};
    const char *name = bin_name(k);
    if (!bk__inputs_ok(name, 2, in)) return NULL;
    bcast bc;
    if (!bcast_init(name, a, b, &bc)) return NULL;
    bk_tensor *y = bk__tensor_arena(bc.ndim, bc.shape, false);
    if (!y) return NULL;
    const float *A = a->data, *B = b->data;
    float *Y = y->data;
    int64_t n = y->numel;
    if (bk_same_shape(a, b)) {
#define X_CASE(K) case K: BK_MAP(n, bin_parallel_min(K), Y[i] = bin_apply(K, A[i], B[i])); break;
        switch (k) { BIN_KINDS(X_CASE) }
#undef X_CASE
    } else if (b->numel == 1) {
        float s = B[0];
#define X_CASE(K) case K: BK_MAP(n, bin_parallel_min(K), Y[i] = bin_apply(K, A[i], s)); break;
        switch (k) { BIN_KINDS(X_CASE) }
#undef X_CASE
    } else {
#define X_CASE(K) case K: BCAST_LOOP(&bc, n, Y[oi] = bin_apply(K, A[ia], B[ib])); break;
        switch (k) { BIN_KINDS(X_CASE) }
#undef X_CASE
    }
    const bk_op *op = bin_op(k);
    if (!op) return y;
    bin_params p = {k};
    return bk_op_record(op, y, 2, in, &p, sizeof p);
}

static void binary_backward(bk_node *n) {
    const bin_params *p = bk_node_params(n);
    const bk_tensor *a = bk_node_input(n, 0), *b = bk_node_input(n, 1);
    const bk_tensor *y = bk_node_output(n), *dy = bk_node_grad_output(n);
    bk_tensor *da = bk_node_grad_input(n, 0), *db = bk_node_grad_input(n, 1);
    bcast bc;
    if (!bcast_init("backward", a, b, &bc)) return;
    const float *A = a->data, *B = b->data, *Y = y->data, *G = dy->data;
    float *DA = da ? da->data : NULL, *DB = db ? db->data : NULL;
    int64_t N = y->numel;
    if (bk_same_shape(a, b)) { /* (da and db may be one buffer: bk_add(x, x)) */
#define X_CASE(K)                                                                                \
    case K:                                                                                      \
        if (DA) BK_MAP(N, bin_parallel_min(K), DA[i] += bin_grad_a(K, A[i], B[i], G[i]));           \
        if (DB) BK_MAP(N, bin_parallel_min(K), DB[i] += bin_grad_b(K, A[i], B[i], Y[i], G[i]));     \
        break;
        switch (p->kind) {
            BIN_GRAD_KINDS(X_CASE)
        default: break;
        }
#undef X_CASE
        return;
    }
    /* broadcast: a stretched input's gradient sums over the stretched dims, so one
     * thread walks the elements in order */
#define X_CASE(K)                                                                                \
    case K:                                                                                      \
        BCAST_LOOP(&bc, N, {                                                                     \
            if (DA) DA[ia] += bin_grad_a(K, A[ia], B[ib], G[oi]);                                \
            if (DB) DB[ib] += bin_grad_b(K, A[ia], B[ib], Y[oi], G[oi]);                         \
        });                                                                                      \
        break;
    switch (p->kind) {
        BIN_GRAD_KINDS(X_CASE)
    default: break;
    }
#undef X_CASE
}

bk_tensor *bk_add(bk_tensor *a, bk_tensor *b) { return binary(BIN_ADD, a, b); }
bk_tensor *bk_sub(bk_tensor *a, bk_tensor *b) { return binary(BIN_SUB, a, b); }
bk_tensor *bk_mul(bk_tensor *a, bk_tensor *b) { return binary(BIN_MUL, a, b); }
bk_tensor *bk_div(bk_tensor *a, bk_tensor *b) { return binary(BIN_DIV, a, b); }
bk_tensor *bk_pow(bk_tensor *a, bk_tensor *b) { return binary(BIN_POW, a, b); }
bk_tensor *bk_gt(bk_tensor *a, bk_tensor *b) { return binary(BIN_GT, a, b); }
bk_tensor *bk_lt(bk_tensor *a, bk_tensor *b) { return binary(BIN_LT, a, b); }
bk_tensor *bk_eq(bk_tensor *a, bk_tensor *b) { return binary(BIN_EQ, a, b); }

/* ---- unary and scalar ops -------------------------------------------------------------------- */

/* The one list of unary ops: it makes the enum, the descriptors and the loops. */
#define UNARY_OPS(X)                                                                      \
    X(UN_NEG, "neg") X(UN_ABS, "abs") X(UN_EXP, "exp") X(UN_LOG, "log") X(UN_SQRT, "sqrt") \
    X(UN_RELU, "relu") X(UN_SIGMOID, "sigmoid") X(UN_TANH, "tanh") X(UN_ADD_S, "add_scalar") \
    X(UN_MUL_S, "mul_scalar") X(UN_DIV_S, "div_scalar") X(UN_RSUB_S, "rsub_scalar")         \
    X(UN_POW_S, "pow_scalar") X(UN_GELU, "gelu") X(UN_GELU_TANH, "gelu_tanh")

#define X_ENUM(kind, name) kind,
typedef enum { UNARY_OPS(X_ENUM) } un_kind;
#undef X_ENUM

typedef struct un_params {
    un_kind kind;
    float s; /* the scalar of the scalar ops */
} un_params;

static inline float un_apply(un_kind k, float x, float s) {
    switch (k) {
    case UN_NEG: return -x;
    case UN_ABS: return fabsf(x);
    case UN_EXP: return expf(x);
    case UN_LOG: return logf(x);
    case UN_SQRT: return sqrtf(x);
    case UN_RELU: return x < 0.0f ? 0.0f : x; /* as torch: NaN stays NaN, -0 stays -0 */
    case UN_SIGMOID: return x >= 0.0f ? 1.0f / (1.0f + expf(-x)) : expf(x) / (1.0f + expf(x));
    case UN_TANH: return tanhf(x);
    case UN_ADD_S: return x + s;
    case UN_MUL_S: return x * s;
    case UN_DIV_S: return x / s;
    case UN_RSUB_S: return s - x;
    case UN_POW_S: return powf(x, s);
    /* bk__erff rather than libm's erff, which keeps the loop from vectorising (fastmath.h) */
    case UN_GELU: return 0.5f * x * (1.0f + bk__erff(x * 0.70710678118654752f));
    case UN_GELU_TANH: return 0.5f * x * (1.0f + tanhf(0.79788456080286536f * (x + 0.044715f * x * x * x)));
    }
    return 0.0f;
}

/* What one element adds into dx: g dy/dx, given x, y = f(x), the output gradient g and the
 * scalar s. */
static inline float un_grad(un_kind k, float x, float y, float g, float s) {
    switch (k) {
    case UN_NEG: return g * -1.0f;
    case UN_ABS: return g * (x > 0.0f ? 1.0f : (x < 0.0f ? -1.0f : 0.0f));
    case UN_EXP: return g * y;
    case UN_LOG: return g * (1.0f / x);
    case UN_SQRT: return g * (0.5f / y);
    /* torch's threshold_backward: g where y > 0 or y is NaN, else 0 (even if g is NaN) */
    case UN_RELU: return x <= 0.0f ? 0.0f : g;
    case UN_SIGMOID: return g * (y * (1.0f - y));
    case UN_TANH: return g * (1.0f - y * y);
    case UN_ADD_S: return g * 1.0f;
    case UN_MUL_S: return g * s;
    case UN_DIV_S: return g * (1.0f / s);
    case UN_RSUB_S: return g * -1.0f;
    case UN_POW_S: return g * (s == 0.0f ? 0.0f : s * powf(x, s - 1.0f));
    case UN_GELU: /* Phi(x) + x phi(x) */
        return g * (0.5f * (1.0f + bk__erff(x * 0.70710678118654752f)) + x * 0.39894228040143268f * bk__expf_nonpos(-0.5f * x * x));
    case UN_GELU_TANH: {
        float t = tanhf(0.79788456080286536f * (x + 0.044715f * x * x * x));
        return g * (0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * 0.79788456080286536f * (1.0f + 3.0f * 0.044715f * x * x));
    }
    }
    return 0.0f;
}

/* The ops that cost a libm call or a polynomial per element go parallel from fewer
 * elements. */
static inline int64_t un_parallel_min(un_kind k) {
    switch (k) {
    case UN_NEG: case UN_ABS: case UN_SQRT: case UN_RELU: case UN_ADD_S: case UN_MUL_S:
    case UN_DIV_S: case UN_RSUB_S: return PARALLEL_MIN_CHEAP;
    default: return PARALLEL_MIN_COSTLY;
    }
}

static void unary_backward(bk_node *n) {
    const un_params *p = bk_node_params(n);
    const bk_tensor *x = bk_node_input(n, 0), *y = bk_node_output(n), *dy = bk_node_grad_output(n);
    bk_tensor *dx = bk_node_grad_input(n, 0);
    if (!dx) return;
    const float *X = x->data, *Y = y->data, *G = dy->data;
    float *D = dx->data;
    float s = p->s;
    int64_t N = x->numel;
#define X_CASE(kind, name) case kind: BK_MAP(N, un_parallel_min(kind), D[i] += un_grad(kind, X[i], Y[i], G[i], s)); break;
    switch (p->kind) { UNARY_OPS(X_CASE) }
#undef X_CASE
}

#define X_DESC(kind, name) [kind] = {name, unary_backward},
static const bk_op UNARY_DESC[] = {UNARY_OPS(X_DESC)};
#undef X_DESC

static bk_tensor *unary(un_kind k, bk_tensor *x, float s) {
    const bk_op *op = &UNARY_DESC[k];
    if (!bk__inputs_ok(op->name, 1, &x)) return NULL;
    bk_tensor *y = bk__tensor_arena(x->ndim, x->shape, false);
    if (!y) return NULL;
    const float *X = x->data;
    float *Y = y->data;
    int64_t N = x->numel;
#define X_CASE(kind, name) case kind: BK_MAP(N, un_parallel_min(kind), Y[i] = un_apply(kind, X[i], s)); break;
    switch (k) { UNARY_OPS(X_CASE) }
#undef X_CASE
    un_params p = {k, s};
    return bk_op_record(op, y, 1, &x, &p, sizeof p);
}

bk_tensor *bk_neg(bk_tensor *a) { return unary(UN_NEG, a, 0); }
bk_tensor *bk_abs(bk_tensor *a) { return unary(UN_ABS, a, 0); }
bk_tensor *bk_exp(bk_tensor *a) { return unary(UN_EXP, a, 0); }
bk_tensor *bk_log(bk_tensor *a) { return unary(UN_LOG, a, 0); }
bk_tensor *bk_sqrt(bk_tensor *a) { return unary(UN_SQRT, a, 0); }
bk_tensor *bk_relu(bk_tensor *a) { return unary(UN_RELU, a, 0); }
bk_tensor *bk_sigmoid(bk_tensor *a) { return unary(UN_SIGMOID, a, 0); }
bk_tensor *bk_tanh(bk_tensor *a) { return unary(UN_TANH, a, 0); }
bk_tensor *bk_add_scalar(bk_tensor *a, float s) { return unary(UN_ADD_S, a, s); }
bk_tensor *bk_mul_scalar(bk_tensor *a, float s) { return unary(UN_MUL_S, a, s); }
bk_tensor *bk_div_scalar(bk_tensor *a, float s) { return unary(UN_DIV_S, a, s); }
bk_tensor *bk_rsub_scalar(bk_tensor *a, float s) { return unary(UN_RSUB_S, a, s); }
bk_tensor *bk_pow_scalar(bk_tensor *a, float p) { return unary(UN_POW_S, a, p); }
bk_tensor *bk_gelu(bk_tensor *a) { return unary(UN_GELU, a, 0); }
bk_tensor *bk_gelu_tanh(bk_tensor *a) { return unary(UN_GELU_TANH, a, 0); }
