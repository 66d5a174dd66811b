/* loss.c - softmax, log_softmax and the losses: cross-entropy (fused log-sum-exp), MSE,
 * BCE with logits, plus accuracy helpers.
 *
 * Every exp here is of (x - max), so logits of +-1e4, +-FLT_MAX or -inf in non-target
 * classes stay finite: the largest term is exp(0) = 1 and the sum is in [1, C].
 */
#include "internal.h"

#include "fastmath.h"
#include "simd_sum.h"

#include <inttypes.h>
#include <math.h>

static bool reduction_ok(const char *who, bk_reduction r) {
    if ((int)r < 0 || r >= BK_REDUCTION_COUNT) {
        bk_set_error("%s: unknown reduction %d", who, (int)r);
        return false;
    }
    return true;
}

/* Reduces a per-element loss tensor (already recorded) as asked. */
static bk_tensor *reduce_loss(bk_tensor *l, bk_reduction r) {
    if (r == BK_REDUCTION_MEAN) return bk_mean(l);
    if (r == BK_REDUCTION_SUM) return bk_sum(l);
    return l;
}

/* ---- softmax / log_softmax along a dim ---------------------------------------------------------
 * The tensor is viewed as (outer, n, inner) around dim. */

typedef struct sm_params {
    bool log;
    int64_t outer, n, inner;
} sm_params;

static void softmax_backward(bk_node *node) {
    const sm_params *p = bk_node_params(node);
    const float *Y = bk_node_output(node)->data, *G = bk_node_grad_output(node)->data;
    bk_tensor *dx = bk_node_grad_input(node, 0);
    if (!dx) return;
    for (int64_t o = 0; o < p->outer; o++)
        for (int64_t i = 0; i < p->inner; i++) {
            int64_t base = o * p->n * p->inner + i;
            double s = 0;
            if (p->log) { /* dx = dy - softmax * sum(dy) */
                for (int64_t j = 0; j < p->n; j++) s += G[base + j * p->inner];
                for (int64_t j = 0; j < p->n; j++) {
                    int64_t k = base + j * p->inner;
                    dx->data[k] += G[k] - expf(Y[k]) * (float)s;
                }
            } else { /* dx = y * (dy - sum(dy * y)) */
                for (int64_t j = 0; j < p->n; j++)
                    s += (double)G[base + j * p->inner] * Y[base + j * p->inner];
                for (int64_t j = 0; j < p->n; j++) {
                    int64_t k = base + j * p->inner;
                    dx->data[k] += Y[k] * (G[k] - (float)s);
                }
            }
        }
}

static const bk_op OP_SOFTMAX = {"softmax", softmax_backward};
static const bk_op OP_LOG_SOFTMAX = {"log_softmax", softmax_backward};

static bk_tensor *softmax_impl(bk_tensor *x, int dim, bool take_log) {
    const bk_op *op = take_log ? &OP_LOG_SOFTMAX : &OP_SOFTMAX;
    if (!bk__inputs_ok(op->name, 1, &x)) return NULL;
    int d = x->ndim == 0 ? 0 : bk__dim(op->name, dim, x->ndim);
    if (d < 0) return NULL;
    sm_params p = {take_log, 1, x->ndim ? x->shape[d] : 1, 1};
    for (int i = 0; i < d; i++) p.outer *= x->shape[i];
    for (int i = d + 1; i < x->ndim; i++) p.inner *= x->shape[i];
    bk_tensor *y = bk__tensor_arena(x->ndim, x->shape, false);
    if (!y) return NULL;
    const float *X = x->data;
    for (int64_t o = 0; o < p.outer; o++)
        for (int64_t i = 0; i < p.inner; i++) {
            int64_t base = o * p.n * p.inner + i;
            float m = -INFINITY;
            for (int64_t j = 0; j < p.n; j++) m = fmaxf(m, X[base + j * p.inner]);
            if (m == -INFINITY) m = 0; /* all -inf: torch gives nan for softmax, -inf/nan for log */
            double s = 0;
            for (int64_t j = 0; j < p.n; j++) s += expf(X[base + j * p.inner] - m);
            float lse = (float)log(s);
            for (int64_t j = 0; j < p.n; j++) {
                int64_t k = base + j * p.inner;
                y->data[k] = take_log ? X[k] - m - lse : (float)(expf(X[k] - m) / s);
            }
        }
    return bk_op_record(op, y, 1, &x, &p, sizeof p);
}

bk_tensor *bk_log_softmax(bk_tensor *x, int dim) { return softmax_impl(x, dim, true); }
bk_tensor *bk_softmax(bk_tensor *x, int dim) { return softmax_impl(x, dim, false); }

/* ---- cross-entropy ------------------------------------------------------------------------------
 * loss_i = logsumexp(x_i) - x_i[t_i];  d loss_i / d x_i = softmax(x_i) - onehot(t_i) */

typedef struct ce_params {
    int64_t N, C;
    const int64_t *target; /* arena copy */
    const float *max;      /* arena: per-row max of the logits */
    const float *inv;      /* arena: per-row 1 / sum_c e^(x_c - max): softmax = e^(x - max) inv */
} ce_params;

/* Above this many logits the rows are split among threads (each row is one thread's, so
 * results do not depend on the thread count): ~0.3 ns per logit with AVX-512, so 2^17 are
 * ~40 us, enough to pay for a parallel region. */
#define CE_PARALLEL_MIN ((int64_t)1 << 17)

/* The max of a row of C logits, NaNs skipped (as fmaxf), -inf for C == 0. */
SIMD_CLONES static float ce_row_max(const float *x, int64_t C) {
    float m = -INFINITY;
#pragma omp simd reduction(max : m)
    for (int64_t c = 0; c < C; c++) m = x[c] > m ? x[c] : m;
    return m;
}

/* sum_c e^(x_c - m) over a row of C logits, m its max (finite). The exponentials go 16 at a
 * time through a small buffer into a sumv (simd_sum.h): the same additions in the same
 * order as sumv_row over the whole row, in every clone. bk__expf_nonpos is within ~1 ulp,
 * and 0 below e^-87.3 (terms that cannot change a sum of at least 1). */
SIMD_CLONES static double ce_row_sum(const float *x, int64_t C, float m) {
    sumv s;
    sumv_zero(&s);
    float e[LANES];
    for (int64_t c0 = 0; c0 < C; c0 += LANES) {
        const int64_t n = C - c0 < LANES ? C - c0 : LANES;
#pragma omp simd
        for (int64_t j = 0; j < n; j++) e[j] = bk__expf_nonpos(x[c0 + j] - m);
        sumv_row(&s, e, n);
    }
    return sumv_total(&s);
}

/* d += g softmax(x): the softmax recomputed from the forward's max and 1 / sum. */
SIMD_CLONES static void ce_row_backward(float *d, const float *x, int64_t C, float g, float m, float inv) {
#pragma omp simd
    for (int64_t c = 0; c < C; c++) d[c] += g * (bk__expf_nonpos(x[c] - m) * inv);
}

static void ce_backward(bk_node *node) {
    const ce_params *p = bk_node_params(node);
    const bk_tensor *x = bk_node_input(node, 0);
    const float *G = bk_node_grad_output(node)->data;
    bk_tensor *dx = bk_node_grad_input(node, 0);
    if (!dx) return;
#pragma omp parallel for schedule(static) if (p->N * p->C >= CE_PARALLEL_MIN)
    for (int64_t i = 0; i < p->N; i++) {
        float *di = dx->data + i * p->C;
        ce_row_backward(di, x->data + i * p->C, p->C, G[i], p->max[i], p->inv[i]);
        di[p->target[i]] -= G[i];
    }
}
static const bk_op OP_CE = {"cross_entropy", ce_backward};

bk_tensor *bk_cross_entropy(bk_tensor *logits, const int64_t *target, int64_t n, bk_reduction r) {
    if (!bk__inputs_ok("cross_entropy", 1, &logits) || !reduction_ok("cross_entropy", r)) return NULL;
    char s[128];
    if (logits->ndim != 2) {
        bk_set_error("cross_entropy: expected logits of shape (N, C), got %s",
                     bk_shape_str(logits, s, sizeof s));
        return NULL;
    }
    ce_params p = {logits->shape[0], logits->shape[1], NULL, NULL, NULL};
    if (!target || n != p.N) {
        bk_set_error("cross_entropy: %" PRId64 " targets for logits %s (expected %" PRId64 ")",
                     target ? n : 0, bk_shape_str(logits, s, sizeof s), p.N);
        return NULL;
    }
    for (int64_t i = 0; i < n; i++)
        if (target[i] < 0 || target[i] >= p.C) {
            bk_set_error("cross_entropy: target %" PRId64 " at position %" PRId64
                         " is out of bounds for %" PRId64 " classes",
                         target[i], i, p.C);
            return NULL;
        }
    bk_arena *a = bk_arena_current();
    size_t rows = (size_t)(n ? n : 1);
    int64_t *tcopy = bk__arena_alloc(a, sizeof(int64_t) * rows);
    float *max = bk__arena_alloc(a, sizeof(float) * rows), *inv = bk__arena_alloc(a, sizeof(float) * rows);
    bk_tensor *l = bk__tensor_arena(1, &p.N, false);
    if (!tcopy || !max || !inv || !l) return NULL;
    memcpy(tcopy, target, sizeof(int64_t) * (size_t)n);
#pragma omp parallel for schedule(static) if (p.N * p.C >= CE_PARALLEL_MIN)
    for (int64_t i = 0; i < p.N; i++) {
        const float *xi = logits->data + i * p.C;
        float m = ce_row_max(xi, p.C);
        double lse = m; /* all -inf, or +inf present: the loss is nan/inf as in torch */
        double sum = 1.0;
        if (m != -INFINITY && m != INFINITY) {
            /* in double: at |x| ~ 1e4 a float lse would round away the log term */
            sum = ce_row_sum(xi, p.C, m);
            lse = (double)m + log(sum);
        }
        max[i] = m;
        inv[i] = (float)(1.0 / sum);
        l->data[i] = (float)(lse - (double)xi[target[i]]);
    }
    p.target = tcopy;
    p.max = max;
    p.inv = inv;
    l = bk_op_record(&OP_CE, l, 1, &logits, &p, sizeof p);
    return reduce_loss(l, r);
}

/* ---- MSE and BCE with logits ------------------------------------------------------------------- */

static bool same_shapes(const char *who, const bk_tensor *a, const bk_tensor *b) {
    if (bk_same_shape(a, b)) return true;
    char s1[128], s2[128];
    bk_set_error("%s: input %s and target %s must have the same shape", who, bk_shape_str(a, s1, sizeof s1),
                 bk_shape_str(b, s2, sizeof s2));
    return false;
}

bk_tensor *bk_mse_loss(bk_tensor *input, bk_tensor *target, bk_reduction r) {
    bk_tensor *in[2] = {input, target};
    if (!bk__inputs_ok("mse_loss", 2, in) || !reduction_ok("mse_loss", r) ||
        !same_shapes("mse_loss", input, target))
        return NULL;
    bk_tensor *d = bk_sub(input, target);
    return reduce_loss(bk_mul(d, d), r);
}

/* l = max(x, 0) - x t + log(1 + e^-|x|);  dl/dx = sigmoid(x) - t;  dl/dt = -x */
static void bce_backward(bk_node *node) {
    const bk_tensor *x = bk_node_input(node, 0), *t = bk_node_input(node, 1);
    const float *G = bk_node_grad_output(node)->data;
    bk_tensor *dx = bk_node_grad_input(node, 0), *dt = bk_node_grad_input(node, 1);
    for (int64_t i = 0; i < x->numel; i++) {
        float xv = x->data[i];
        float sig = xv >= 0 ? 1.0f / (1.0f + expf(-xv)) : expf(xv) / (1.0f + expf(xv));
        if (dx) dx->data[i] += G[i] * (sig - t->data[i]);
        if (dt) dt->data[i] -= G[i] * xv;
    }
}
static const bk_op OP_BCE = {"bce_with_logits", bce_backward};

bk_tensor *bk_bce_with_logits(bk_tensor *logits, bk_tensor *target, bk_reduction r) {
    bk_tensor *in[2] = {logits, target};
    if (!bk__inputs_ok("bce_with_logits", 2, in) || !reduction_ok("bce_with_logits", r) ||
        !same_shapes("bce_with_logits", logits, target))
        return NULL;
    bk_tensor *l = bk__tensor_arena(logits->ndim, logits->shape, false);
    if (!l) return NULL;
    for (int64_t i = 0; i < l->numel; i++) {
        float x = logits->data[i], t = target->data[i];
        l->data[i] = fmaxf(x, 0.0f) - x * t + log1pf(expf(-fabsf(x)));
    }
    l = bk_op_record(&OP_BCE, l, 2, in, NULL, 0);
    return reduce_loss(l, r);
}

/* ---- metrics -------------------------------------------------------------------------------------- */

static int64_t row_argmax(const float *xi, int64_t C) {
    int64_t best = 0;
    for (int64_t c = 1; c < C; c++)
        if (xi[c] > xi[best]) best = c;
    return best;
}

/* Shared checks of the two metrics: logits (N, C) with C > 0 unless N = 0. */
static bool metric_logits_ok(const bk_tensor *logits, const char *who) {
    if (!bk_tensor_ok(logits, who)) return false;
    char s[128];
    if (logits->ndim != 2) {
        bk_set_error("%s: expected logits of shape (N, C), got %s", who, bk_shape_str(logits, s, sizeof s));
        return false;
    }
    if (logits->shape[1] == 0 && logits->shape[0] > 0) {
        bk_set_error("%s: logits %s have no columns to take the maximum of", who,
                     bk_shape_str(logits, s, sizeof s));
        return false;
    }
    return true;
}

int bk_argmax_rows(const bk_tensor *logits, int64_t *out) {
    if (!metric_logits_ok(logits, "argmax_rows")) return -1;
    if (!out) {
        bk_set_error("argmax_rows: out is NULL");
        return -1;
    }
    int64_t N = logits->shape[0], C = logits->shape[1];
    for (int64_t i = 0; i < N; i++) out[i] = row_argmax(logits->data + i * C, C);
    return 0;
}

int64_t bk_count_correct(const bk_tensor *logits, const int64_t *target, int64_t n) {
    if (!metric_logits_ok(logits, "count_correct")) return -1;
    char s[128];
    if (!target) {
        bk_set_error("count_correct: target is NULL");
        return -1;
    }
    if (n != logits->shape[0]) {
        bk_set_error("count_correct: %" PRId64 " targets for logits %s", n,
                     bk_shape_str(logits, s, sizeof s));
        return -1;
    }
    int64_t C = logits->shape[1], correct = 0;
    for (int64_t i = 0; i < n; i++) correct += row_argmax(logits->data + i * C, C) == target[i];
    return correct;
}
