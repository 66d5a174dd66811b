/* op_cases.h - the random shapes, values and checks of test_ops.c and test_ops_shape.c: the
 * test's stream (test_rng.h: main calls test_rng_seed), shapes of rank 0..4 with
 * size-1 dims and broadcasting pairs, leaves over a range, the comparison of a result with a
 * reference computed in double (values_ok), and one function per op under gradcheck (f_<op>,
 * its non-tensor arguments in an `args`). Tolerances: test_ops.c's header comment.
 */
#ifndef BRICK_TEST_OP_CASES_H
#define BRICK_TEST_OP_CASES_H

#include "test.h"

#include "gradcheck.h"
#include "test_rng.h"
#include "ops/elementwise_ops.h" /* the element-wise ops' rows: one f_<name> each */

#include <stdint.h>

#define TRIALS 4 /* random cases per op */

typedef struct shp {
    int nd;
    int64_t d[BK_MAX_DIMS];
} shp; /* a shape, by value */

/* A dim of 1..4, 1 a third of the time. */
static inline int64_t rand_dim(void) { return rand_int(0, 2) == 0 ? 1 : rand_int(1, 4); }

static inline shp rand_shape(int min_rank, int max_rank) {
    shp s = {rand_int(min_rank, max_rank), {0}};
    for (int i = 0; i < s.nd; i++) s.d[i] = rand_dim();
    return s;
}

/* Two shapes that broadcast: both are taken from the right end of one random shape, each
 * dim kept or replaced by 1, each at a random rank. */
static inline void rand_bcast_pair(shp *a, shp *b) {
    shp out = rand_shape(0, 4);
    shp *ab[2] = {a, b};
    for (int k = 0; k < 2; k++) {
        ab[k]->nd = rand_int(0, out.nd);
        for (int i = 0; i < ab[k]->nd; i++) {
            int64_t d = out.d[out.nd - ab[k]->nd + i];
            ab[k]->d[i] = rand_int(0, 2) == 0 ? 1 : d;
        }
    }
}

/* Keeps the last `max` dims of s (which still broadcast with the other shape). */
static inline void keep_trailing(shp *s, int max) {
    if (s->nd <= max) return;
    memmove(s->d, s->d + s->nd - max, sizeof(int64_t) * (size_t)max);
    s->nd = max;
}

/* A leaf that requires grad, values uniform in [lo, hi]. */
static inline bk_tensor *leaf(shp s, float lo, float hi) {
    bk_tensor *t = bk_empty(s.nd, s.d);
    if (!t) return NULL;
    for (int64_t i = 0; i < t->numel; i++) t->data[i] = rand_float(lo, hi);
    return bk_requires_grad(t, true);
}

/* Magnitudes in [lo, hi] with random signs (for ops with a kink or a pole at 0). */
static inline bk_tensor *leaf_signed(shp s, float lo, float hi) {
    bk_tensor *t = leaf(s, lo, hi);
    if (t)
        for (int64_t i = 0; i < t->numel; i++)
            if (rand_int(0, 1)) t->data[i] = -t->data[i];
    return t;
}

/* Distinct values 0.01 apart in random order, so no max is tied even after +-eps. */
static inline bk_tensor *leaf_distinct(shp s) {
    bk_tensor *t = leaf(s, 0, 0);
    if (!t) return NULL;
    for (int64_t i = 0; i < t->numel; i++) t->data[i] = 0.01f * (float)(i - t->numel / 2);
    for (int64_t i = t->numel - 1; i > 0; i--) { /* Fisher-Yates */
        int64_t j = (int64_t)(bk_rng_u32(&g_rng) % (uint32_t)(i + 1));
        float tmp = t->data[i];
        t->data[i] = t->data[j], t->data[j] = tmp;
    }
    return t;
}

static inline shp shape_of(const bk_tensor *t) {
    shp s = {t->ndim, {0}};
    for (int i = 0; i < t->ndim; i++) s.d[i] = t->shape[i];
    return s;
}

static inline void unravel(int64_t i, int nd, const int64_t *shape, int64_t *idx) {
    for (int k = nd - 1; k >= 0; k--) {
        idx[k] = shape[k] ? i % shape[k] : 0;
        i = shape[k] ? i / shape[k] : 0;
    }
}

static inline int64_t numel_of(int nd, const int64_t *shape) {
    int64_t n = 1;
    for (int i = 0; i < nd; i++) n *= shape[i];
    return n;
}

/* ---- checks ---------------------------------------------------------------------------- */

/* got must have shape (nd, shape) and the values of ref (row-major; references are
 * computed in double and rounded once). */
static inline bool values_ok(const char *what, const bk_tensor *got, int nd, const int64_t *shape,
                             const float *ref) {
    bk_tensor *want = bk_empty(nd, shape);
    if (!got || !want) {
        fprintf(stderr, "  %s: no result (%s)\n", what, bk_last_error());
        return false;
    }
    bool same = got->ndim == nd;
    for (int i = 0; same && i < nd; i++) same = got->shape[i] == shape[i];
    if (!same) {
        char s1[128], s2[128];
        fprintf(stderr, "  %s: shape %s, want %s\n", what, bk_shape_str(got, s1, sizeof s1),
                bk_shape_str(want, s2, sizeof s2));
        return false;
    }
    memcpy(want->data, ref, sizeof(float) * (size_t)want->numel);
    return test_compare(what, got, want, 1e-5, 1e-6) <= 1;
}

/* Offset of the element of t that broadcasts to output index idx (nd dims). */
static inline int64_t bcast_off(const bk_tensor *t, int nd, const int64_t *idx) {
    int64_t off = 0;
    for (int i = 0; i < t->ndim; i++)
        if (t->shape[i] != 1) off += idx[i + nd - t->ndim] * t->stride[i];
    return off;
}

/* ---- the functions under gradcheck ----------------------------------------------------- */

typedef struct args { /* the non-tensor arguments of the op under test */
    int dim, dim1, nd, perm[BK_MAX_DIMS];
    bool keepdim;
    int64_t start, end, shape[BK_MAX_DIMS];
    float s, t;
} args;

#define FN(name, expr)                                                    \
    static inline bk_tensor *name(bk_tensor *const *x, int n, void *ud) { \
        const args *p = ud;                                               \
        (void)p, (void)n;                                                 \
        return (expr);                                                    \
    }
/* the element-wise ops: one function per row of src/ops/elementwise_ops.h */
#define X_FN(name, ...) FN(f_##name, bk_##name(x[0], x[1]))
BK_BINARY_OPS(X_FN)
BK_COMPARE_OPS(X_FN)
#undef X_FN
#define X_FN(name, ...) FN(f_##name, bk_##name(x[0]))
BK_UNARY_OPS(X_FN)
#undef X_FN
#define X_FN(name, ...) FN(f_##name, bk_##name(x[0], p->s))
BK_SCALAR_OPS(X_FN)
#undef X_FN
#define X_FN(name, ...) FN(f_##name, bk_##name(x[0], p->s, p->t))
BK_SCALAR2_OPS(X_FN)
#undef X_FN
FN(f_matmul, bk_matmul(x[0], x[1]))
FN(f_linear, bk_linear(x[0], x[1], n > 2 ? x[2] : NULL))
FN(f_sum, bk_sum(x[0]))
FN(f_mean, bk_mean(x[0]))
FN(f_max, bk_max(x[0]))
FN(f_sum_dim, bk_sum_dim(x[0], p->dim, p->keepdim))
FN(f_mean_dim, bk_mean_dim(x[0], p->dim, p->keepdim))
FN(f_max_dim, bk_max_dim(x[0], p->dim, p->keepdim))
FN(f_reshape, bk_reshape(x[0], p->nd, p->shape))
FN(f_flatten, bk_flatten(x[0], p->dim, p->dim1))
FN(f_transpose, bk_transpose(x[0], p->dim, p->dim1))
FN(f_permute, bk_permute(x[0], p->perm))
FN(f_concat, bk_concat(n, x, p->dim))
FN(f_slice, bk_slice(x[0], p->dim, p->start, p->end))
FN(f_select, bk_select(x[0], p->dim, p->start))
FN(f_clone, bk_clone(x[0]))
FN(f_mlp, bk_forward((bk_module *)ud, x[0]))
#undef FN

#endif
