/* tensor.c - creating, filling, inspecting, checking and printing tensors.
 *
 * Shapes are int64_t and every element count is overflow-checked, because shapes come
 * from users and from files. Storage is contiguous row-major; see brick.h for ownership.
 */
#include "internal.h"

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>

char *bk__shape_fmt(int ndim, const int64_t *shape, char *buf, size_t n) {
    size_t k = 0;
    if (n == 0) return buf;
    buf[0] = '\0';
    k += (size_t)snprintf(buf + k, k < n ? n - k : 0, "(");
    for (int i = 0; i < ndim && k < n; i++)
        k += (size_t)snprintf(buf + k, n - k, "%s%" PRId64, i ? ", " : "", shape[i]);
    if (ndim == 1 && k < n) k += (size_t)snprintf(buf + k, n - k, ",");
    if (k < n) snprintf(buf + k, n - k, ")");
    return buf;
}

bool bk__shape_ok(const char *who, int ndim, const int64_t *shape, int64_t *numel) {
    if (ndim < 0 || ndim > BK_MAX_DIMS) {
        bk_set_error("%s: rank %d is outside 0..%d", who, ndim, BK_MAX_DIMS);
        return false;
    }
    if (ndim > 0 && !shape) {
        bk_set_error("%s: shape is NULL", who);
        return false;
    }
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0) {
            char buf[256];
            bk_set_error("%s: negative dimension %" PRId64 " in shape %s", who, shape[i],
                         bk__shape_fmt(ndim, shape, buf, sizeof buf));
            return false;
        }
        if (!bk__mul_ok(n, shape[i], &n)) {
            char buf[256];
            bk_set_error("%s: shape %s has too many elements", who,
                         bk__shape_fmt(ndim, shape, buf, sizeof buf));
            return false;
        }
    }
    if (numel) *numel = n;
    return true;
}

int bk__dim(const char *who, int dim, int ndim) {
    int d = dim < 0 ? dim + ndim : dim;
    if (d < 0 || d >= ndim) {
        bk_set_error("%s: dimension %d is out of range for a tensor of rank %d", who, dim, ndim);
        return -1;
    }
    return d;
}

void bk__set_contiguous(bk_tensor *t) {
    int64_t s = 1;
    for (int i = t->ndim - 1; i >= 0; i--) {
        t->stride[i] = s;
        /* Shapes are checked for overflow before they get here, but a zero-element shape
         * such as (0, 2^62, 78) passes that check and its trailing product still overflows
         * (found by fuzz_model_spec). Such strides are never used: saturate. */
        if (!bk__mul_ok(s, t->shape[i], &s)) s = INT64_MAX;
    }
    t->numel = s;
}

/* ---- heap tensors ------------------------------------------------------------------------ */

bk_tensor *bk_tensor_new(int ndim, const int64_t *shape) {
    int64_t numel;
    if (!bk__shape_ok("tensor_new", ndim, shape, &numel)) return NULL;
    if ((uint64_t)numel > SIZE_MAX / sizeof(float)) {
        bk_set_error("tensor_new: %" PRId64 " elements do not fit in memory", numel);
        return NULL;
    }
    bk_tensor *t = bk__calloc(1, sizeof *t);
    if (!t) goto oom;
    t->magic = BK_TENSOR_MAGIC;
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++) t->shape[i] = shape[i];
    bk__set_contiguous(t);
    t->owns_data = true;
    /* calloc(0) may return NULL legitimately; keep a valid pointer for empty tensors. */
    t->data = bk__calloc(numel ? (size_t)numel : 1, sizeof(float));
    if (!t->data) goto oom;
    return t;
oom:
    bk__free(t);
    bk_set_error("tensor_new: out of memory for %" PRId64 " elements", numel);
    return NULL;
}

void bk_tensor_free(bk_tensor *t) {
    if (!t) return;
    if (t->magic != BK_TENSOR_MAGIC || t->arena) {
        /* Freeing an arena tensor would corrupt the arena; refuse and say so. */
        bk_set_error("tensor_free: %s",
                     t->arena ? "arena tensors are released by bk_arena_reset" : "not a live heap tensor");
        return;
    }
    bk_tensor_free(t->grad);
    bk__tensor_hooks_free(t);
    t->magic = BK_TENSOR_DEAD;
    if (t->owns_data) bk__free(t->data);
    bk__free(t);
}

bk_tensor *bk_tensor_clone_owned(const bk_tensor *t) {
    if (!bk_tensor_ok(t, "tensor_clone_owned")) return NULL;
    bk_tensor *c = bk_tensor_new(t->ndim, t->shape);
    if (c) memcpy(c->data, t->data, (size_t)t->numel * sizeof(float));
    return c;
}

/* ---- arena tensors ------------------------------------------------------------------------- */

bk_tensor *bk_empty(int ndim, const int64_t *shape) { return bk__tensor_arena(ndim, shape, false); }
bk_tensor *bk_zeros(int ndim, const int64_t *shape) { return bk__tensor_arena(ndim, shape, true); }

bk_tensor *bk_full(int ndim, const int64_t *shape, float value) {
    bk_tensor *t = bk__tensor_arena(ndim, shape, false);
    if (t) bk_fill(t, value);
    return t;
}

bk_tensor *bk_ones(int ndim, const int64_t *shape) { return bk_full(ndim, shape, 1.0f); }
bk_tensor *bk_scalar(float value) { return bk_full(0, NULL, value); }

bk_tensor *bk_from_data(int ndim, const int64_t *shape, const float *data) {
    if (!data) {
        bk_set_error("from_data: data is NULL");
        return NULL;
    }
    bk_tensor *t = bk__tensor_arena(ndim, shape, false);
    if (t) memcpy(t->data, data, (size_t)t->numel * sizeof(float));
    return t;
}

bk_tensor *bk_rand_rng(bk_rng *rng, int ndim, const int64_t *shape) {
    bk_tensor *t = bk__tensor_arena(ndim, shape, false);
    if (t) bk_fill_uniform(t, rng, 0.0f, 1.0f);
    return t;
}

bk_tensor *bk_randn_rng(bk_rng *rng, int ndim, const int64_t *shape) {
    bk_tensor *t = bk__tensor_arena(ndim, shape, false);
    if (t) bk_fill_normal(t, rng, 0.0f, 1.0f);
    return t;
}

bk_tensor *bk_rand(int ndim, const int64_t *shape) { return bk_rand_rng(NULL, ndim, shape); }
bk_tensor *bk_randn(int ndim, const int64_t *shape) { return bk_randn_rng(NULL, ndim, shape); }

bk_tensor *bk_zeros_like(const bk_tensor *t) {
    if (!bk_tensor_ok(t, "zeros_like")) return NULL;
    return bk_zeros(t->ndim, t->shape);
}

/* ---- in-place fills (no autograd) ---------------------------------------------------------- */

int bk_fill(bk_tensor *t, float value) {
    if (!bk_tensor_ok(t, "fill")) return -1;
    float *D = t->data;
    /* (zeroing the gradients before every step: the threads share large ones, such as the
     * MLP's first weight, 2^17.6 floats) */
    BK_MAP(t->numel, (int64_t)1 << 16, D[i] = value);
    return 0;
}

int bk_fill_uniform(bk_tensor *t, bk_rng *rng, float lo, float hi) {
    if (!bk_tensor_ok(t, "fill_uniform")) return -1;
    if (!rng) rng = bk_default_rng();
    for (int64_t i = 0; i < t->numel; i++) t->data[i] = lo + (hi - lo) * bk_rng_uniform(rng);
    return 0;
}

int bk_fill_normal(bk_tensor *t, bk_rng *rng, float mean, float std) {
    if (!bk_tensor_ok(t, "fill_normal")) return -1;
    if (!rng) rng = bk_default_rng();
    for (int64_t i = 0; i < t->numel; i++) t->data[i] = mean + std * bk_rng_normal(rng);
    return 0;
}

int bk_copy(bk_tensor *dst, const bk_tensor *src) {
    if (!bk_tensor_ok(dst, "copy") || !bk_tensor_ok(src, "copy")) return -1;
    if (dst->numel != src->numel) {
        char a[128], b[128];
        bk_set_error("copy: destination %s and source %s differ in size", bk_shape_str(dst, a, sizeof a),
                     bk_shape_str(src, b, sizeof b));
        return -1;
    }
    if (src->numel) memmove(dst->data, src->data, (size_t)src->numel * sizeof(float));
    return 0;
}

bk_tensor *bk_requires_grad(bk_tensor *t, bool on) {
    if (!bk_tensor_ok(t, "requires_grad")) return NULL;
    if (t->node) {
        bk_set_error(
            "requires_grad: only leaf tensors can change requires_grad "
            "(this one was made by %s); use bk_detach first",
            t->node->op->name);
        return NULL;
    }
    t->requires_grad = on;
    return t;
}

/* ---- inspection ---------------------------------------------------------------------------- */

bool bk_same_shape(const bk_tensor *a, const bk_tensor *b) {
    if (!a || !b || a->ndim != b->ndim) return false;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i]) return false;
    return true;
}

char *bk_shape_str(const bk_tensor *t, char *buf, size_t n) {
    if (!buf) {
        if (n == 0) return NULL;
        bk_set_error("shape_str: buf is NULL (with n = %zu)", n);
        return NULL;
    }
    if (!t) {
        snprintf(buf, n, "(null)");
        return buf;
    }
    return bk__shape_fmt(t->ndim, t->shape, buf, n);
}

float bk_item(const bk_tensor *t) {
    if (!bk_tensor_ok(t, "item")) return NAN;
    if (t->numel != 1) {
        char s[128];
        bk_set_error("item: a tensor with %" PRId64 " elements %s cannot be converted to a scalar", t->numel,
                     bk_shape_str(t, s, sizeof s));
        return NAN;
    }
    return t->data[0];
}

float bk_get(const bk_tensor *t, const int64_t *index) {
    if (!bk_tensor_ok(t, "get")) return NAN;
    if (!index && t->ndim > 0) {
        char s[128];
        bk_set_error("get: index is NULL (a tensor %s needs %d indices)", bk_shape_str(t, s, sizeof s),
                     t->ndim);
        return NAN;
    }
    int64_t off = 0;
    for (int i = 0; i < t->ndim; i++) {
        if (index[i] < 0 || index[i] >= t->shape[i]) {
            char s[128];
            bk_set_error("get: index %" PRId64 " is out of range for dimension %d of %s", index[i], i,
                         bk_shape_str(t, s, sizeof s));
            return NAN;
        }
        off += index[i] * t->stride[i];
    }
    return t->data[off];
}

static void print_rec(const bk_tensor *t, FILE *f, int dim, int64_t off, int indent) {
    const int64_t edge = 3; /* like torch: summarise long dims as a, b, c, ..., x, y, z */
    int64_t n = t->shape[dim];
    bool cut = n > 2 * edge + 1 && t->numel > 1000;
    fputc('[', f);
    for (int64_t i = 0; i < n; i++) {
        if (cut && i == edge) {
            fprintf(f, "...");
            i = n - edge - 1;
            fputs(dim == t->ndim - 1 ? ", " : ",\n", f);
            if (dim != t->ndim - 1)
                for (int k = 0; k < indent + 1; k++) fputc(' ', f);
            continue;
        }
        if (dim == t->ndim - 1) fprintf(f, "%.4f", (double)t->data[off + i * t->stride[dim]]);
        else print_rec(t, f, dim + 1, off + i * t->stride[dim], indent + 1);
        if (i + 1 < n) {
            if (dim == t->ndim - 1) {
                fputs(", ", f);
            } else {
                fputs(",\n", f);
                for (int k = 0; k < indent + 1; k++) fputc(' ', f);
            }
        }
    }
    fputc(']', f);
}

void bk_print(const bk_tensor *t, FILE *f) {
    if (!f) f = stdout;
    if (!bk_tensor_ok(t, "print")) {
        fprintf(f, "tensor(<invalid: %s>)\n", bk_last_error());
        return;
    }
    char s[128];
    fputs("tensor(", f);
    if (t->ndim == 0) fprintf(f, "%.4f", (double)t->data[0]);
    else if (t->numel == 0) fputs("[]", f);
    else print_rec(t, f, 0, 0, 7);
    fprintf(f, ", shape=%s", bk_shape_str(t, s, sizeof s));
    if (t->node) fprintf(f, ", grad_fn=<%s>", t->node->op->name);
    else if (t->requires_grad) fprintf(f, ", requires_grad=True");
    fputs(")\n", f);
}

/* ---- checking tensors given by a caller ------------------------------------------------ */

bool bk__inputs_report(const char *op, int n, bk_tensor *const *ts) {
    for (int i = 0; i < n; i++) {
        if (!ts[i]) {
            if (!bk__error_pending()) bk_set_error("%s: input %d is NULL", op, i);
            return false;
        }
        if (ts[i]->magic != BK_TENSOR_MAGIC) {
            bk_set_error("%s: input %d is not a live tensor (%s)", op, i,
                         ts[i]->magic == BK_TENSOR_DEAD ? "its arena was reset, so it was released"
                                                        : "freed or not a brick tensor");
            return false;
        }
    }
    return true;
}

bool bk_tensor_ok(const bk_tensor *t, const char *who) {
    bk_tensor *tt = (bk_tensor *)t;
    return bk__inputs_ok(who ? who : "tensor_ok", 1, &tt);
}
