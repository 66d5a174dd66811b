/* test_tensor.c - creating, filling, inspecting and printing tensors; the PCG32 generator.
 *
 * The statistical tests draw from a seed taken from $BRICK_TEST_SEED (else $BRICK_SEED,
 * else the clock), printed first; their bounds are 5 standard errors wide, so a correct
 * generator fails one of them about once in a million runs.
 */
#include "test.h"
#include "gradcheck.h"

#include <time.h>

static uint64_t g_seed;

/* Captures what print(f) writes. Returns a malloc'd string ("" on failure). */
static char *capture(void (*print)(const bk_tensor *, FILE *), const bk_tensor *t) {
    FILE *f = tmpfile();
    char *buf = calloc(1, 1 << 16);
    if (!f || !buf) {
        if (f) fclose(f);
        return buf;
    }
    print(t, f);
    rewind(f);
    size_t n = fread(buf, 1, (1 << 16) - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

/* print must write exactly `want`. */
static bool prints_as(const bk_tensor *t, const char *want) {
    char *got = capture(bk_print, t);
    bool ok = got && !strcmp(got, want);
    if (!ok) fprintf(stderr, "  bk_print wrote:\n%s  want:\n%s", got ? got : "(nothing)\n", want);
    free(got);
    return ok;
}

/* A fresh arena tensor of the current arena, no autograd state. */
static bool plain_arena_tensor(const bk_tensor *t) {
    return t && t->magic == BK_TENSOR_MAGIC && t->arena == bk_arena_current() && !t->requires_grad &&
           t->node == NULL && t->grad == NULL && !t->is_param;
}

/* ---- creation ------------------------------------------------------------------------------ */

TEST(creation) {
    bk_tensor *z = bk_zeros(BK_SHAPE(2, 3)), *o = bk_ones(BK_SHAPE(4)),
              *f = bk_full(BK_SHAPE(2, 1, 2), -1.5f);
    CHECK(plain_arena_tensor(z) && z->ndim == 2 && z->numel == 6 && all_equal(z, 0));
    CHECK(plain_arena_tensor(o) && o->ndim == 1 && o->shape[0] == 4 && all_equal(o, 1));
    CHECK(plain_arena_tensor(f) && f->numel == 4 && all_equal(f, -1.5f));
    bk_tensor *s = bk_scalar(3.25f);
    CHECK(plain_arena_tensor(s) && s->ndim == 0 && s->numel == 1 && s->data[0] == 3.25f);
    float src[6] = {1, 2, 3, 4, 5, 6};
    bk_tensor *d = bk_from_data(BK_SHAPE(3, 2), src);
    src[0] = 100; /* from_data copies */
    CHECK(plain_arena_tensor(d) && d->data != src && d->data[0] == 1 && d->data[5] == 6);
    bk_tensor *zl = bk_zeros_like(f);
    CHECK(plain_arena_tensor(zl) && bk_same_shape(zl, f) && all_equal(zl, 0));
    bk_tensor *e = bk_empty(BK_SHAPE(0, 3));
    CHECK(plain_arena_tensor(e) && e->numel == 0 && e->shape[0] == 0 && e->shape[1] == 3);
    /* arena data is 64-byte aligned (for vector kernels) */
    CHECK(z && ((uintptr_t)z->data % 64) == 0 && o && ((uintptr_t)o->data % 64) == 0);
    /* heap tensors: owned, zero-filled, no arena */
    bk_tensor *h = bk_tensor_new(BK_SHAPE(3, 2));
    CHECK(h && h->arena == NULL && h->owns_data && !h->requires_grad && all_equal(h, 0));
    bk_tensor *hc = bk_tensor_clone_owned(d);
    CHECK(hc && hc->arena == NULL && hc->data != d->data && bk_same_shape(hc, d) && hc->data[5] == 6);
    bk_tensor *h0 = bk_tensor_new(0, NULL);
    CHECK(h0 && h0->ndim == 0 && h0->numel == 1 && h0->data[0] == 0);
    bk_tensor_free(h);
    bk_tensor_free(hc);
    bk_tensor_free(h0);
}

TEST(fill_copy_requires_grad) {
    bk_tensor *t = bk_empty(BK_SHAPE(5, 7));
    CHECK(bk_fill(t, 2.5f) == 0 && all_equal(t, 2.5f));
    bk_rng r;
    bk_rng_seed(&r, g_seed);
    CHECK(bk_fill_uniform(t, &r, -2, 3) == 0);
    bool in_range = true;
    for (int64_t i = 0; i < t->numel; i++) in_range &= t->data[i] >= -2 && t->data[i] < 3;
    CHECK(in_range);
    CHECK(bk_fill_normal(t, &r, 10, 0.5f) == 0);
    double m = 0;
    for (int64_t i = 0; i < t->numel; i++) m += t->data[i];
    CHECK_CLOSE(m / 35, 10, 5 * 0.5 / sqrt(35));
    bk_tensor *u = bk_rand(BK_SHAPE(35)); /* any shape with the same numel */
    CHECK(bk_copy(u, t) == 0 && !memcmp(u->data, t->data, 35 * sizeof(float)));
    CHECK(bk_requires_grad(t, true) == t && t->requires_grad);
    CHECK(bk_requires_grad(t, false) == t && !t->requires_grad);
    CHECK(bk_same_shape(t, bk_zeros(BK_SHAPE(5, 7))) && !bk_same_shape(t, u) && !bk_same_shape(t, NULL));
}

/* ---- random numbers --------------------------------------------------------------------------- */

/* pcg32_srandom(42, 54) in O'Neill's pcg32-demo prints these first six numbers. */
TEST(pcg32_known_answer) {
    static const uint32_t want[6] = {0xa15c02b7u, 0x7b47f409u, 0xba1d3330u,
                                     0x83d2f293u, 0xbfa4784bu, 0xcbed606eu};
    bk_rng r;
    bk_rng_seed(&r, 42);
    for (int i = 0; i < 6; i++) {
        uint32_t got = bk_rng_u32(&r);
        if (got != want[i]) fprintf(stderr, "  output %d: 0x%08x, want 0x%08x\n", i, got, want[i]);
        CHECK(got == want[i]);
    }
}

/* Uniform floats take the top 24 bits: u = (x >> 8) * 2^-24, so 1.0 is never returned. */
TEST(uniform_is_top_24_bits) {
    bk_rng a, b;
    bk_rng_seed(&a, g_seed);
    bk_rng_seed(&b, g_seed);
    for (int i = 0; i < 1000; i++) {
        float u = bk_rng_uniform(&a);
        uint32_t x = bk_rng_u32(&b);
        CHECK(u == (float)(x >> 8) * (1.0f / 16777216.0f));
        if (u != (float)(x >> 8) * (1.0f / 16777216.0f)) break;
    }
    /* the largest possible output still maps below 1 */
    CHECK((float)(0xffffffffu >> 8) * (1.0f / 16777216.0f) < 1.0f);
}

/* 100k draws: mean, variance, range, and for the normal the 2-sigma tail mass, each
 * within 5 standard errors. */
TEST(rand_and_randn_statistics) {
    enum { N = 100000 };
    bk_manual_seed(g_seed);
    bk_tensor *u = bk_rand(BK_SHAPE(N)), *z = bk_randn(BK_SHAPE(100, N / 100));
    CHECK(u && z);
    if (!u || !z) return;
    double su = 0, su2 = 0, lo = 1, hi = 0;
    for (int i = 0; i < N; i++) {
        double x = u->data[i];
        su += x, su2 += x * x;
        lo = x < lo ? x : lo, hi = x > hi ? x : hi;
    }
    double mu = su / N, vu = su2 / N - mu * mu;
    CHECK(lo >= 0 && hi < 1 && lo < 1e-3 && hi > 1 - 1e-3);
    CHECK_CLOSE(mu, 0.5, 5 * sqrt(1.0 / 12 / N));                    /* se of the mean: 0.0009 */
    CHECK_CLOSE(vu, 1.0 / 12, 5 * sqrt((1.0 / 80 - 1.0 / 144) / N)); /* se of the variance: 0.00024 */
    double sz = 0, sz2 = 0;
    int tail = 0;
    bool finite = true;
    for (int i = 0; i < N; i++) {
        double x = z->data[i];
        finite &= isfinite(x);
        sz += x, sz2 += x * x;
        tail += fabs(x) > 2;
    }
    double mz = sz / N, sdz = sqrt(sz2 / N - mz * mz), pt = 0.0455003;
    CHECK(finite);
    CHECK_CLOSE(mz, 0, 5 / sqrt(N));        /* se 0.0032 */
    CHECK_CLOSE(sdz, 1, 5 / sqrt(2.0 * N)); /* se of the std: 0.0022 */
    CHECK_CLOSE((double)tail / N, pt, 5 * sqrt(pt * (1 - pt) / N));
}

TEST(manual_seed_reproducible) {
    bk_manual_seed(g_seed);
    bk_tensor *a = bk_rand(BK_SHAPE(64)), *an = bk_randn(BK_SHAPE(64));
    bk_manual_seed(g_seed);
    bk_tensor *b = bk_rand(BK_SHAPE(64)), *bn = bk_randn(BK_SHAPE(64));
    bk_manual_seed(g_seed + 1);
    bk_tensor *c = bk_rand(BK_SHAPE(64));
    CHECK(!memcmp(a->data, b->data, 64 * sizeof(float)) && !memcmp(an->data, bn->data, 64 * sizeof(float)));
    CHECK(memcmp(a->data, c->data, 64 * sizeof(float)) != 0);
    /* a private generator does not disturb the default stream */
    bk_manual_seed(g_seed);
    bk_rng mine;
    bk_rng_seed(&mine, 7);
    bk_tensor *p = bk_rand_rng(&mine, BK_SHAPE(16)), *d = bk_rand(BK_SHAPE(64));
    CHECK(p && !memcmp(d->data, a->data, 64 * sizeof(float)));
    bk_rng_seed(&mine, 7);
    bk_tensor *p2 = bk_rand_rng(&mine, BK_SHAPE(16));
    CHECK(p2 && !memcmp(p->data, p2->data, 16 * sizeof(float)));
    CHECK(bk_default_rng() == bk_default_rng());
}

/* ---- inspection ---------------------------------------------------------------------------------- */

TEST(shape_strings) {
    char buf[64];
    CHECK(!strcmp(bk_shape_str(bk_zeros(BK_SHAPE(2, 20)), buf, sizeof buf), "(2, 20)"));
    CHECK(!strcmp(bk_shape_str(bk_zeros(BK_SHAPE(5)), buf, sizeof buf), "(5,)"));
    CHECK(!strcmp(bk_shape_str(bk_scalar(1), buf, sizeof buf), "()"));
    CHECK(!strcmp(bk_shape_str(bk_zeros(BK_SHAPE(0, 3, 1, 7)), buf, sizeof buf), "(0, 3, 1, 7)"));
    CHECK(!strcmp(bk_shape_str(NULL, buf, sizeof buf), "(null)"));
    /* a short buffer is truncated, never overrun */
    char small[8];
    memset(small, 'x', sizeof small);
    bk_shape_str(bk_zeros(BK_SHAPE(1000, 1, 1, 1)), small, 6);
    CHECK(memchr(small, '\0', 6) != NULL && small[6] == 'x' && small[7] == 'x');
}

TEST(item_and_get) {
    CHECK(bk_item(bk_scalar(-2.5f)) == -2.5f);
    CHECK(bk_item(bk_full(BK_SHAPE(1, 1, 1), 7)) == 7);
    float v[24];
    for (int i = 0; i < 24; i++) v[i] = (float)i;
    bk_tensor *t = bk_from_data(BK_SHAPE(2, 3, 4), v);
    bool ok = true;
    for (int64_t i = 0; i < 2; i++)
        for (int64_t j = 0; j < 3; j++)
            for (int64_t k = 0; k < 4; k++)
                ok &= bk_get(t, (const int64_t[]){i, j, k}) == (float)(i * 12 + j * 4 + k);
    CHECK(ok);
    CHECK(bk_get(bk_scalar(4), NULL) == 4); /* rank 0: no index */
}

/* Row-major contiguous strides, for arena, heap and view tensors alike. */
TEST(strides_row_major) {
    bk_tensor *t = bk_zeros(BK_SHAPE(2, 3, 4));
    CHECK(t->stride[0] == 12 && t->stride[1] == 4 && t->stride[2] == 1 && t->numel == 24);
    bk_tensor *h = bk_tensor_new(BK_SHAPE(5, 1, 6));
    CHECK(h && h->stride[0] == 6 && h->stride[1] == 6 && h->stride[2] == 1 && h->numel == 30);
    bk_tensor_free(h);
    bk_tensor *v = bk_reshape(t, BK_SHAPE(4, -1));
    CHECK(v && v->shape[1] == 6 && v->stride[0] == 6 && v->stride[1] == 1);
    bk_tensor *e = bk_zeros(BK_SHAPE(0, 3));
    CHECK(e->stride[0] == 3 && e->stride[1] == 1 && e->numel == 0);
    bk_tensor *s = bk_scalar(1);
    CHECK(s->ndim == 0 && s->numel == 1);
    /* element (i, j) of a 2-d tensor is data[i * stride[0] + j] */
    float d[6] = {0, 1, 2, 3, 4, 5};
    bk_tensor *m = bk_from_data(BK_SHAPE(2, 3), d);
    CHECK(m->data[1 * m->stride[0] + 2] == bk_get(m, (const int64_t[]){1, 2}));
}

TEST(views_share_storage) {
    float d[6] = {0, 1, 2, 3, 4, 5};
    bk_tensor *x = bk_from_data(BK_SHAPE(2, 3), d);
    bk_tensor *r = bk_reshape(x, BK_SHAPE(3, 2)), *f = bk_flatten(x, 0, -1), *dt = bk_detach(x);
    CHECK(r && f && dt && r->data == x->data && f->data == x->data && dt->data == x->data);
    x->data[5] = 42;
    CHECK(bk_get(r, (const int64_t[]){2, 1}) == 42 && bk_get(f, (const int64_t[]){5}) == 42);
    /* transpose, permute and clone copy */
    bk_tensor *tr = bk_transpose(x, 0, 1), *c = bk_clone(x);
    CHECK(tr && c && tr->data != x->data && c->data != x->data);
    CHECK(bk_get(tr, (const int64_t[]){2, 1}) == 42 && bk_get(tr, (const int64_t[]){1, 0}) == 1);
    x->data[5] = 5;
    CHECK(bk_get(c, (const int64_t[]){1, 2}) == 42);
}

/* A heap tensor gets a heap gradient, freed with it (ASan checks the free). */
TEST(heap_tensor_gradient) {
    bk_tensor *w = bk_tensor_new(BK_SHAPE(3));
    bk_fill(w, 2);
    bk_requires_grad(w, true);
    bk_tensor *y = bk_sum(bk_mul(w, w));
    CHECK(y && y->arena == bk_arena_current());
    CHECK(bk_backward(y) == 0);
    CHECK(w->grad && w->grad->arena == NULL && all_equal(w->grad, 4));
    bk_arena_reset(NULL);
    CHECK(bk_tensor_ok(w, "w") && bk_tensor_ok(w->grad, "w.grad")); /* outlive the arena */
    bk_tensor_free(w);
}

/* ---- printing ----------------------------------------------------------------------------------- */

TEST(print_format) {
    float d[4] = {1, 2, 3, 4};
    CHECK(prints_as(bk_from_data(BK_SHAPE(2, 2), d),
                    "tensor([[1.0000, 2.0000],\n        [3.0000, 4.0000]], shape=(2, 2))\n"));
    CHECK(prints_as(bk_from_data(BK_SHAPE(2), (const float[]){1, -2.5f}),
                    "tensor([1.0000, -2.5000], shape=(2,))\n"));
    CHECK(prints_as(bk_scalar(3.5f), "tensor(3.5000, shape=())\n"));
    CHECK(prints_as(bk_zeros(BK_SHAPE(0, 3)), "tensor([], shape=(0, 3))\n"));
    bk_tensor *x = bk_requires_grad(bk_from_data(BK_SHAPE(2), d), true);
    CHECK(prints_as(x, "tensor([1.0000, 2.0000], shape=(2,), requires_grad=True)\n"));
    CHECK(prints_as(bk_mul(x, x), "tensor([1.0000, 4.0000], shape=(2,), grad_fn=<mul>)\n"));
    /* rank 3: nested brackets, one row per line */
    char *s = capture(bk_print, bk_from_data(BK_SHAPE(2, 1, 2), d));
    CHECK(s && !strncmp(s, "tensor([[[1.0000, 2.0000]],", 27) &&
          strstr(s, "[[3.0000, 4.0000]]], shape=(2, 1, 2))\n"));
    free(s);
    /* long tensors are summarised like torch: first and last three of each long dim */
    bk_tensor *big = bk_zeros(BK_SHAPE(2000));
    for (int i = 0; i < 2000; i++) big->data[i] = (float)i;
    s = capture(bk_print, big);
    CHECK(s &&
          strstr(s, "tensor([0.0000, 1.0000, 2.0000, ..., 1997.0000, 1998.0000, 1999.0000], shape=(2000,))"));
    free(s);
    /* stale tensors print a diagnostic instead of garbage */
    bk_arena *a = bk_arena_new(), *prev = bk_arena_use(a);
    bk_tensor *t = bk_ones(BK_SHAPE(2));
    bk_arena_reset(a);
    s = capture(bk_print, t);
    CHECK(s && strstr(s, "invalid") && strstr(s, "released"));
    free(s);
    bk_arena_use(prev);
    bk_arena_free(a);
    bk_clear_error();
}

/* ---- main ------------------------------------------------------------------------------------------ */

int main(void) {
    g_seed = test_seed("test_tensor");
    RUN(creation);
    RUN(fill_copy_requires_grad);
    RUN(pcg32_known_answer);
    RUN(uniform_is_top_24_bits);
    RUN(rand_and_randn_statistics);
    RUN(manual_seed_reproducible);
    RUN(shape_strings);
    RUN(item_and_get);
    RUN(strides_row_major);
    RUN(views_share_storage);
    RUN(heap_tensor_gradient);
    RUN(print_format);
    return test_summary("test_tensor");
}
