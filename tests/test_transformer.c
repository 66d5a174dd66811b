/* test_transformer.c - embeddings, positional encodings, attention, MultiheadAttention and
 * the Transformer layers and stacks: gradients against central differences, forward values
 * against naive references computed in double, structure (names, printing, init), and
 * every error path (messages asserted; ASan checks nothing leaks).
 *
 * Random values come from a PCG32 stream seeded from $BRICK_TEST_SEED, else $BRICK_SEED
 * (what `make test` prints), else the clock; the seed is printed first.
 *
 * Gradient tolerances (bk_gradcheck): eps = 1e-3, atol = 5e-3, rtol = 1e-2, as in
 * test_ops.c: float32 forwards differenced over a step of 2e-3 carry ~3e-5 |y| of rounding
 * per touched output, and the networks here stay below ~100 touched outputs of size ~1.
 * The layers are checked with GELU, which is smooth: a ReLU input within eps of its kink
 * would make the central difference meaningless (ReLU is covered by the PyTorch parity).
 */
#include "test.h"

#include <stdint.h>
#include <time.h>

#define EPS 1e-3
#define ATOL 5e-3
#define RTOL 1e-2

static bk_rng g_rng;

static bk_tensor *randn_t(int nd, const int64_t *shape, float scale) {
    bk_tensor *t = bk_empty(nd, shape);
    if (t)
        for (int64_t i = 0; i < t->numel; i++) t->data[i] = scale * bk_rng_normal(&g_rng);
    return t;
}
#define RANDN(...) randn_t(BK_SHAPE(__VA_ARGS__), 1.0f)
#define LEAF(t) bk_requires_grad((t), true)

static bool gradcheck_ok(const char *what, bk_gradcheck_fn f, bk_tensor *const *in, int n, void *ud) {
    double r = bk_gradcheck(f, in, n, ud, EPS, ATOL, RTOL, stderr);
    if (r >= 0 && r <= 1) return true;
    fprintf(stderr, "  %s: gradcheck %s %.3g (%s)\n", what, r < 0 ? "failed:" : "worst scaled error", r,
            r < 0 ? bk_last_error() : "");
    return false;
}

#define GRADCHECK(what, fn, ud, ...)                                                      \
    do {                                                                                  \
        bk_tensor *in_[] = {__VA_ARGS__};                                                 \
        CHECK(gradcheck_ok(what, fn, in_, (int)(sizeof in_ / sizeof *in_), ud));          \
    } while (0)

static bool repr_is(const bk_module *m, const char *want) {
    char got[8192];
    int n = bk_module_repr(m, got, sizeof got);
    bool ok = n >= 0 && strcmp(got, want) == 0;
    if (!ok) fprintf(stderr, "  repr:\n%s\n  want:\n%s\n", got, want);
    return ok;
}

static bool names_are(const bk_module *m, int which, const char *const *want, int n) {
    bk_param_list *l = bk_module_named(m, which);
    bool ok = l && l->n == n;
    for (int i = 0; ok && i < n; i++) ok = strcmp(l->names[i], want[i]) == 0;
    if (!ok) {
        fprintf(stderr, "  names:");
        for (int i = 0; l && i < l->n; i++) fprintf(stderr, " %s", l->names[i]);
        fprintf(stderr, "\n");
    }
    bk_param_list_free(l);
    return ok;
}

static double max_abs_diff(const bk_tensor *a, const bk_tensor *b) {
    if (!a || !b || a->numel != b->numel) return INFINITY;
    double m = 0;
    for (int64_t i = 0; i < a->numel; i++) {
        double d = fabs((double)a->data[i] - b->data[i]);
        if (!(d <= m)) m = d;
    }
    return m;
}

/* ======================================================================================
 * Embedding
 * ====================================================================================== */

static bk_tensor *f_embedding(bk_tensor *const *in, int n, void *ud) {
    (void)n;
    return bk_embedding((bk_tensor *)ud, in[0], -1);
}

TEST(embedding_values_and_gradient) {
    bk_tensor *w = LEAF(RANDN(5, 3));
    bk_tensor *ids = bk_from_data(BK_SHAPE(2, 3), (const float[]){1, 2, 4, 4, 0, 2});
    bk_tensor *y = bk_embedding(ids, w, 2);
    CHECK(y && y->ndim == 3 && y->shape[0] == 2 && y->shape[1] == 3 && y->shape[2] == 3);
    if (!y) return;
    for (int i = 0; i < 6; i++)
        for (int j = 0; j < 3; j++) CHECK(y->data[i * 3 + j] == w->data[(int)ids->data[i] * 3 + j]);
    /* without padding_idx the gradient is the derivative; with it, the padding row gets
     * none although the output depends on it (torch's definition), so no gradcheck there */
    GRADCHECK("embedding", f_embedding, ids, w);
    bk_fill(w->grad, 0.0f);
    /* the padding row gets no gradient; a repeated id gets the sum */
    bk_tensor *g = bk_ones(BK_SHAPE(2, 3, 3));
    CHECK(bk_backward_ex(bk_embedding(ids, w, 2), g, false) == 0);
    for (int j = 0; j < 3; j++) {
        CHECK(w->grad->data[2 * 3 + j] == 0.0f);
        CHECK(w->grad->data[4 * 3 + j] == 2.0f);
        CHECK(w->grad->data[3 * 3 + j] == 0.0f);
        CHECK(w->grad->data[1 * 3 + j] == 1.0f);
    }
    CHECK(ids->grad == NULL);
    bk_tensor_free(w->grad);
    w->grad = NULL;
}

TEST(embedding_module) {
    bk_manual_seed(7);
    bk_module *e = bk_nn_embedding(1000, 16);
    bk_module *p = bk_nn_embedding_padded(10, 4, -1); /* torch: -1 is the last row, 9 */
    CHECK(e && p);
    if (!e || !p) goto out;
    CHECK(repr_is(e, "Embedding(1000, 16)"));
    CHECK(repr_is(p, "Embedding(10, 4, padding_idx=9)"));
    CHECK(names_are(e, BK_STATE, (const char *const[]){"weight"}, 1));
    bk_tensor *w = bk_module_get(e, "weight");
    double s = 0, ss = 0;
    for (int64_t i = 0; i < w->numel; i++) s += w->data[i], ss += (double)w->data[i] * w->data[i];
    double mean = s / (double)w->numel, var = ss / (double)w->numel - mean * mean;
    CHECK(fabs(mean) < 0.05 && fabs(var - 1.0) < 0.05); /* N(0, 1), 16000 draws */
    bk_tensor *pw = bk_module_get(p, "weight");
    for (int j = 0; j < 4; j++) CHECK(pw->data[9 * 4 + j] == 0.0f);
    bk_tensor *y = bk_forward(p, bk_from_data(BK_SHAPE(3), (const float[]){9, 0, 9}));
    CHECK(y && y->shape[0] == 3 && y->shape[1] == 4 && y->data[0] == 0.0f && y->data[4] == pw->data[0]);
out:
    bk_module_free(e);
    bk_module_free(p);
}

TEST(embedding_errors) {
    bk_module *e = bk_nn_embedding(10, 4);
    CHECK(e != NULL);
    CHECK_ERR(bk_forward(e, bk_from_data(BK_SHAPE(2, 2), (const float[]){1, 2, 12, 3})),
              "in Embedding(10, 4): embedding: id 12 (element 2 of ids (2, 2)) is out of range");
    CHECK_ERR(bk_forward(e, bk_from_data(BK_SHAPE(2), (const float[]){-1, 2})), "[0, 10)");
    CHECK_ERR(bk_forward(e, bk_from_data(BK_SHAPE(2), (const float[]){1.5f, 2})), "id 1.5");
    CHECK_ERR(bk_forward(e, bk_from_data(BK_SHAPE(1), (const float[]){NAN})), "id nan");
    CHECK_ERR(bk_nn_embedding_padded(10, 4, 10), "padding_idx=10 must be within num_embeddings");
    CHECK_ERR(bk_nn_embedding_padded(10, 4, -11), "padding_idx=-11");
    CHECK_ERR(bk_nn_embedding(-1, 4), "num_embeddings=-1");
    CHECK_ERR(bk_embedding(bk_zeros(BK_SHAPE(2)), bk_zeros(BK_SHAPE(4)), -1), "weight must be 2-d");
    CHECK_ERR(bk_embedding(bk_zeros(BK_SHAPE(2)), bk_zeros(BK_SHAPE(4, 2)), 4), "padding_idx=4 is out of range");
    CHECK_ERR(bk_embedding(NULL, bk_zeros(BK_SHAPE(4, 2)), -1), "embedding: input 0 is NULL"); /* ids: argument 0 */
    bk_module_free(e);
}

/* ======================================================================================
 * Positional encodings
 * ====================================================================================== */

TEST(positional_encoding_values) {
    for (int64_t d = 6; d <= 7; d++) { /* even and odd widths */
        bk_module *pe = bk_nn_positional_encoding(d, 0.0f, 50);
        CHECK(pe != NULL);
        if (!pe) return;
        bk_tensor *x = RANDN(2, 9, d);
        bk_tensor *y = bk_forward(pe, x);
        CHECK(y && bk_same_shape(x, y));
        if (!y) {
            bk_module_free(pe);
            return;
        }
        double worst = 0;
        for (int64_t b = 0; b < 2; b++)
            for (int64_t t = 0; t < 9; t++)
                for (int64_t j = 0; j < d; j++) {
                    double ang = (double)t / pow(10000.0, (double)(2 * (j / 2)) / (double)d);
                    double p = j % 2 ? cos(ang) : sin(ang);
                    int64_t k = (b * 9 + t) * d + j;
                    double diff = fabs(y->data[k] - (x->data[k] + p));
                    if (diff > worst) worst = diff;
                }
        CHECK(worst < 1e-6);
        /* a non-persistent buffer: no parameters, nothing in the state dict */
        CHECK(names_are(pe, BK_STATE, NULL, 0));
        CHECK(names_are(pe, BK_BUFFERS, (const char *const[]){"P"}, 1));
        CHECK(bk_module_num_params(pe, false) == 0);
        CHECK(repr_is(pe, "PositionalEncoding(\n  (dropout): Dropout(p=0.0, inplace=False)\n)"));
        /* unbatched (T, d) */
        bk_tensor *y2 = bk_forward(pe, bk_select(x, 0, 1));
        CHECK(y2 && y2->ndim == 2 && max_abs_diff(y2, bk_select(y, 0, 1)) == 0);
        bk_module_free(pe);
    }
}

static bk_tensor *f_module(bk_tensor *const *in, int n, void *ud) {
    (void)n;
    return bk_forward((bk_module *)ud, in[0]);
}

TEST(learned_positional_embedding) {
    bk_module *pe = bk_nn_learned_positional_embedding(6, 3);
    CHECK(pe != NULL);
    if (!pe) return;
    CHECK(repr_is(pe, "LearnedPositionalEmbedding(max_len=6, num_hiddens=3)"));
    CHECK(names_are(pe, BK_STATE, (const char *const[]){"weight"}, 1));
    bk_tensor *w = bk_module_get(pe, "weight");
    bk_tensor *x = LEAF(RANDN(2, 4, 3));
    GRADCHECK("learned positional (x, weight)", f_module, pe, x, w);
    for (int64_t i = 4 * 3; i < 6 * 3; i++) CHECK(w->grad && w->grad->data[i] == 0.0f); /* rows >= T */
    bk_module_free(pe);
}

TEST(positional_errors) {
    bk_module *pe = bk_nn_positional_encoding(8, 0.1f, 10);
    bk_module *le = bk_nn_learned_positional_embedding(10, 8);
    CHECK(pe && le);
    CHECK_ERR(bk_forward(pe, bk_zeros(BK_SHAPE(2, 11, 8))),
              "PositionalEncoding: sequence length 11 of input (2, 11, 8) exceeds max_len=10");
    CHECK_ERR(bk_forward(le, bk_zeros(BK_SHAPE(2, 12, 8))),
              "in LearnedPositionalEmbedding(max_len=10, num_hiddens=8): LearnedPositionalEmbedding: sequence "
              "length 12 of input (2, 12, 8) exceeds max_len=10");
    CHECK_ERR(bk_forward(le, bk_zeros(BK_SHAPE(2, 3, 7))), "input (2, 3, 7) must be (batch, length, 8)");
    CHECK_ERR(bk_forward(pe, bk_zeros(BK_SHAPE(8))), "input (8,) must be");
    CHECK_ERR(bk_nn_positional_encoding(0, 0.1f, 10), "num_hiddens=0 must be positive");
    CHECK_ERR(bk_nn_positional_encoding(4, 1.5f, 10), "Dropout: dropout probability");
    CHECK_ERR(bk_nn_learned_positional_embedding(-1, 4), "max_len=-1");
    bk_module_free(pe);
    bk_module_free(le);
}

/* ======================================================================================
 * Attention ops
 * ====================================================================================== */

/* Naive reference in double for head h of batch b: P[l, s]. */
static void naive_weights(const bk_tensor *q, const bk_tensor *k, int64_t H, bool bf, const bk_tensor *am,
                          const bk_tensor *kpm, double *P) {
    int64_t B = bf ? q->shape[0] : q->shape[1], L = bf ? q->shape[1] : q->shape[0];
    int64_t S = bf ? k->shape[1] : k->shape[0], E = q->shape[2], D = E / H;
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < H; h++)
            for (int64_t l = 0; l < L; l++) {
                double *row = P + ((b * H + h) * L + l) * S, m = -INFINITY;
                for (int64_t s = 0; s < S; s++) {
                    double dot = 0;
                    for (int64_t d = 0; d < D; d++) {
                        int64_t iq = bf ? (b * L + l) * E : (l * B + b) * E, ik = bf ? (b * S + s) * E : (s * B + b) * E;
                        dot += (double)q->data[iq + h * D + d] * k->data[ik + h * D + d];
                    }
                    row[s] = dot / sqrt((double)D);
                    if (am) row[s] += am->data[(am->ndim == 3 ? (b * H + h) * L * S : 0) + l * S + s];
                    if (kpm && kpm->data[b * S + s] != 0) row[s] = -INFINITY;
                    if (row[s] > m) m = row[s];
                }
                double sum = 0;
                for (int64_t s = 0; s < S; s++) sum += (row[s] = exp(row[s] - m));
                for (int64_t s = 0; s < S; s++) row[s] /= sum;
            }
}

TEST(attention_weights_values) {
    for (int trial = 0; trial < 4; trial++) {
        bool bf = trial & 1, mask3 = trial & 2;
        int64_t B = 2, L = 3, S = 4, H = 2, E = 6;
        bk_tensor *q = bf ? RANDN(B, L, E) : RANDN(L, B, E);
        bk_tensor *k = bf ? RANDN(B, S, E) : RANDN(S, B, E);
        bk_tensor *am = mask3 ? RANDN(B * H, L, S) : RANDN(L, S);
        bk_tensor *kpm = bk_from_data(BK_SHAPE(B, S), (const float[]){0, 0, 1, 0, 0, 0, 0, 1});
        bk_tensor *P = bk_attention_weights(q, k, H, bf, am, kpm, 0.0f);
        CHECK(P && P->ndim == 4 && P->shape[0] == B && P->shape[1] == H && P->shape[2] == L && P->shape[3] == S);
        if (!P) return;
        double ref[2 * 2 * 3 * 4], worst = 0;
        naive_weights(q, k, H, bf, am, kpm, ref);
        for (int64_t i = 0; i < P->numel; i++) worst = fmax(worst, fabs(P->data[i] - ref[i]));
        CHECK(worst < 1e-6);
        for (int64_t h = 0; h < H; h++) /* masked keys get exactly 0 */
            for (int64_t l = 0; l < L; l++) CHECK(P->data[((0 * H + h) * L + l) * S + 2] == 0.0f);
    }
}

typedef struct attn_case {
    int64_t H;
    bool bf;
    bk_tensor *am, *kpm;
} attn_case;

static bk_tensor *f_attn_weights(bk_tensor *const *in, int n, void *ud) {
    (void)n;
    attn_case *c = ud;
    return bk_attention_weights(in[0], in[1], c->H, c->bf, c->am, c->kpm, 0.0f);
}

static bk_tensor *f_attn_apply(bk_tensor *const *in, int n, void *ud) {
    (void)n;
    return bk_attention_apply(in[0], in[1], ((attn_case *)ud)->bf);
}

static bk_tensor *f_attention(bk_tensor *const *in, int n, void *ud) {
    (void)n;
    attn_case *c = ud;
    return bk_attention_apply(bk_attention_weights(in[0], in[1], c->H, c->bf, c->am, c->kpm, 0.0f), in[2], c->bf);
}

static bk_tensor *f_sdpa(bk_tensor *const *in, int n, void *ud) {
    (void)n;
    return bk_scaled_dot_product_attention(in[0], in[1], in[2], ((attn_case *)ud)->am, 0.0f, false, NULL);
}

TEST(attention_gradients) {
    for (int trial = 0; trial < 4; trial++) {
        bool bf = trial & 1;
        int64_t B = 2, L = 3, S = 4, H = trial < 2 ? 2 : 1, E = 4;
        attn_case c = {H, bf, NULL, NULL};
        /* causal-like additive mask plus padding: every row keeps at least one key */
        c.am = bk_from_data(BK_SHAPE(L, S), (const float[]){0, -INFINITY, 0.5f, -INFINITY, 0, 0, -1, -INFINITY,
                                                             0, 0, 0, 0.25f});
        c.kpm = trial == 3 ? NULL : bk_from_data(BK_SHAPE(B, S), (const float[]){0, 0, 0, 1, 0, 0, 1, 1});
        bk_tensor *q = LEAF(bf ? RANDN(B, L, E) : RANDN(L, B, E));
        bk_tensor *k = LEAF(bf ? RANDN(B, S, E) : RANDN(S, B, E));
        bk_tensor *v = LEAF(bf ? RANDN(B, S, 2 * H) : RANDN(S, B, 2 * H));
        GRADCHECK("attention_weights (q, k)", f_attn_weights, &c, q, k);
        bk_tensor *P = LEAF(randn_t(BK_SHAPE(B, H, L, S), 1.0f));
        GRADCHECK("attention_apply (weights, v)", f_attn_apply, &c, P, v);
        GRADCHECK("attention (q, k, v)", f_attention, &c, q, k, v);
        /* q used as its own key (self-attention on one tensor): both gradients add up */
        c.am = NULL, c.kpm = NULL; /* L = S here */
        GRADCHECK("attention (q, q, v)", f_attention, &c, q, q, LEAF(bf ? RANDN(B, L, 2 * H) : RANDN(L, B, 2 * H)));
    }
    attn_case c = {1, true, bk_causal_mask(3), NULL};
    GRADCHECK("scaled_dot_product_attention", f_sdpa, &c, LEAF(RANDN(2, 3, 4)), LEAF(RANDN(2, 3, 4)),
              LEAF(RANDN(2, 3, 5)));
}

TEST(attention_masks_and_stability) {
    bk_tensor *cm = bk_causal_mask(3);
    CHECK(cm && cm->data[0] == 0 && isinf(cm->data[1]) && cm->data[1] < 0 && cm->data[3] == 0 && cm->data[4] == 0 &&
          isinf(cm->data[5]) && cm->data[8] == 0);
    bk_tensor *bm = bk_attn_mask_from_bool(bk_from_data(BK_SHAPE(2), (const float[]){1, 0}));
    CHECK(bm && isinf(bm->data[0]) && bm->data[0] < 0 && bm->data[1] == 0);
    /* causal: weights above the diagonal are exactly 0 */
    bk_tensor *q = RANDN(1, 3, 4), *k = RANDN(1, 3, 4);
    bk_tensor *P = bk_attention_weights(q, k, 1, true, cm, NULL, 0.0f);
    CHECK(P && P->data[1] == 0 && P->data[2] == 0 && P->data[5] == 0 && P->data[0] == 1.0f);
    /* huge scores: the max is subtracted, so no inf or nan */
    bk_tensor *big = bk_mul_scalar(RANDN(2, 5, 4), 1e4f);
    P = bk_attention_weights(big, big, 2, true, NULL, NULL, 0.0f);
    bool finite = P != NULL;
    for (int64_t i = 0; P && i < P->numel; i++) finite = finite && isfinite(P->data[i]);
    CHECK(finite);
    /* a fully masked row is NaN (torch 1.13), the other rows are not touched */
    bk_tensor *kpm = bk_from_data(BK_SHAPE(2, 3), (const float[]){0, 1, 0, 1, 1, 1});
    bk_tensor *qq = LEAF(RANDN(2, 2, 4)), *kk = LEAF(RANDN(2, 3, 4)), *vv = LEAF(RANDN(2, 3, 4));
    P = bk_attention_weights(qq, kk, 2, true, NULL, kpm, 0.0f);
    bk_tensor *O = bk_attention_apply(P, vv, true);
    CHECK(P && O);
    if (!P || !O) return;
    for (int64_t i = 0; i < 2 * 2 * 3; i++) CHECK(isfinite(P->data[i]) && isnan(P->data[12 + i]));
    for (int64_t i = 0; i < 8; i++) CHECK(isfinite(O->data[i]) && isnan(O->data[8 + i]));
    CHECK(bk_backward_ex(O, bk_ones(BK_SHAPE(2, 2, 4)), false) == 0);
    for (int64_t i = 0; i < 8; i++) CHECK(isfinite(qq->grad->data[i]) && isnan(qq->grad->data[8 + i]));
    bk_tensor_free(qq->grad), bk_tensor_free(kk->grad), bk_tensor_free(vv->grad);
    qq->grad = kk->grad = vv->grad = NULL;
}

/* The softmax's exp (attention.c computes it itself): score differences from 0 down to
 * -110 against exp in double, within 4e-7 relative where the weight is a normal float and
 * 1e-44 absolute below (gradual underflow, then 0); a NaN score makes its row NaN. */
TEST(attention_softmax_range) {
    enum { S = 1101 };
    static float kd[S];
    for (int s = 0; s < S; s++) kd[s] = -0.1f * (float)s; /* one head, D = 1, q = 1: score = k */
    bk_tensor *q = bk_from_data(BK_SHAPE(1, 2, 1), (const float[]){1.0f, NAN});
    bk_tensor *k = bk_from_data(BK_SHAPE(1, S, 1), kd);
    bk_tensor *P = bk_attention_weights(q, k, 1, true, NULL, NULL, 1.0f);
    CHECK(P != NULL);
    if (!P) return;
    double sum = 0, worst_rel = 0, worst_abs = 0;
    for (int s = 0; s < S; s++) sum += exp((double)kd[s]);
    for (int s = 0; s < S; s++) {
        double want = exp((double)kd[s]) / sum, got = P->data[s];
        if (want >= 1.1754944e-38) worst_rel = fmax(worst_rel, fabs(got - want) / want);
        else worst_abs = fmax(worst_abs, fabs(got - want));
    }
    CHECK(worst_rel < 4e-7);
    CHECK(worst_abs < 1e-44);
    CHECK(P->data[S - 1] == 0.0f); /* e^-110 is below the smallest float */
    bool row_nan = true;
    for (int s = 0; s < S; s++) row_nan = row_nan && isnan(P->data[S + s]);
    CHECK(row_nan);
}

TEST(attention_errors) {
    bk_tensor *q = bk_zeros(BK_SHAPE(3, 2, 4)), *k = bk_zeros(BK_SHAPE(5, 2, 4));
    CHECK_ERR(bk_attention_weights(q, k, 3, false, NULL, NULL, 0), "last dim 4 is not divisible by num_heads=3");
    CHECK_ERR(bk_attention_weights(q, bk_zeros(BK_SHAPE(5, 3, 4)), 2, false, NULL, NULL, 0),
              "key (5, 3, 4) does not fit query (3, 2, 4)");
    CHECK_ERR(bk_attention_weights(q, k, 2, false, bk_zeros(BK_SHAPE(3, 4)), NULL, 0),
              "attn_mask (3, 4) does not fit: expected (L, S) = (3, 5) or (batch * num_heads, L, S) = (4, 3, 5)");
    CHECK_ERR(bk_attention_weights(q, k, 2, false, NULL, bk_zeros(BK_SHAPE(5, 2)), 0),
              "key_padding_mask (5, 2) does not fit: expected (batch, S) = (2, 5)");
    CHECK_ERR(bk_attention_weights(bk_zeros(BK_SHAPE(3, 4)), k, 2, false, NULL, NULL, 0), "query must be 3-d");
    CHECK_ERR(bk_attention_apply(bk_zeros(BK_SHAPE(2, 2, 3, 5)), bk_zeros(BK_SHAPE(4, 2, 4)), false),
              "value (4, 2, 4) does not fit weights (2, 2, 3, 5)");
    CHECK_ERR(bk_attention_apply(bk_zeros(BK_SHAPE(2, 3, 5)), k, false), "weights must be 4-d");
    CHECK_ERR(bk_causal_mask(-1), "size -1");
}

/* ======================================================================================
 * MultiheadAttention
 * ====================================================================================== */

TEST(mha_structure_and_init) {
    bk_manual_seed(3);
    bk_module *m = bk_nn_multihead_attention(64, 4, 0.0f, true, false);
    bk_module *nb = bk_nn_multihead_attention(8, 2, 0.0f, false, true);
    CHECK(m && nb);
    if (!m || !nb) goto out;
    CHECK(names_are(m, BK_STATE,
                    (const char *const[]){"in_proj_weight", "in_proj_bias", "out_proj.weight", "out_proj.bias"}, 4));
    CHECK(names_are(nb, BK_STATE, (const char *const[]){"in_proj_weight", "out_proj.weight"}, 2));
    CHECK(repr_is(m, "MultiheadAttention(\n  (out_proj): NonDynamicallyQuantizableLinear(in_features=64, "
                     "out_features=64, bias=True)\n)"));
    CHECK(repr_is(nb, "MultiheadAttention(\n  (out_proj): NonDynamicallyQuantizableLinear(in_features=8, "
                      "out_features=8, bias=False)\n)"));
    bk_tensor *w = bk_module_get(m, "in_proj_weight"), *ow = bk_module_get(m, "out_proj.weight");
    CHECK(w->shape[0] == 192 && w->shape[1] == 64);
    /* xavier_uniform_: U(-a, a), a = sqrt(6 / (64 + 192)); out_proj: Linear's U(+-1/8) */
    double a = sqrt(6.0 / 256.0), mx = 0, ss = 0;
    for (int64_t i = 0; i < w->numel; i++) mx = fmax(mx, fabs(w->data[i])), ss += (double)w->data[i] * w->data[i];
    CHECK(mx <= a && mx > 0.95 * a && fabs(ss / (double)w->numel - a * a / 3) < 0.1 * a * a / 3);
    double mo = 0;
    for (int64_t i = 0; i < ow->numel; i++) mo = fmax(mo, fabs(ow->data[i]));
    CHECK(mo <= 0.125 && mo > 0.11);
    bk_tensor *b1 = bk_module_get(m, "in_proj_bias"), *b2 = bk_module_get(m, "out_proj.bias");
    for (int64_t i = 0; i < b1->numel; i++) CHECK(b1->data[i] == 0);
    for (int64_t i = 0; i < b2->numel; i++) CHECK(b2->data[i] == 0);
out:
    bk_module_free(m);
    bk_module_free(nb);
}

typedef struct mha_case {
    bk_module *m;
    bk_tensor *kpm, *am;
    bool need_weights, average;
} mha_case;

static bk_tensor *f_mha(bk_tensor *const *in, int n, void *ud) {
    (void)n;
    mha_case *c = ud;
    bk_tensor *w = NULL;
    bk_tensor *y = bk_mha_forward(c->m, in[0], in[1], in[2], c->kpm, c->am, c->need_weights, c->average, &w);
    /* both results, so that the weights' gradient is checked too */
    return c->need_weights ? bk_concat(2, (bk_tensor *[]){bk_flatten(y, 0, -1), bk_flatten(w, 0, -1)}, 0) : y;
}

TEST(mha_gradients) {
    for (int trial = 0; trial < 3; trial++) {
        bool bf = trial == 1;
        bk_module *m = bk_nn_multihead_attention(4, 2, 0.0f, trial != 2, bf);
        CHECK(m != NULL);
        if (!m) return;
        bk_param_list *ps = bk_module_named(m, BK_PARAMS);
        for (int i = 0; i < ps->n; i++) /* non-zero biases, so that their use is checked */
            for (int64_t j = 0; j < ps->tensors[i]->numel; j++) ps->tensors[i]->data[j] += 0.3f * bk_rng_normal(&g_rng);
        int64_t B = 2, L = 3, S = 4;
        mha_case c = {m, bk_from_data(BK_SHAPE(B, S), (const float[]){0, 0, 1, 0, 0, 0, 0, 1}),
                      trial == 0 ? bk_causal_mask(4) : NULL, trial != 2, trial == 0};
        if (c.am) c.am = bk_slice(c.am, 0, 0, 3); /* (L, S) = (3, 4) */
        bk_tensor *q = LEAF(bf ? RANDN(B, L, 4) : RANDN(L, B, 4));
        bk_tensor *kv = LEAF(bf ? RANDN(B, S, 4) : RANDN(S, B, 4));
        bk_tensor *v = LEAF(bf ? RANDN(B, S, 4) : RANDN(S, B, 4));
        bk_tensor *in[3 + 4] = {q, kv, v};
        for (int i = 0; i < ps->n; i++) in[3 + i] = ps->tensors[i];
        CHECK(gradcheck_ok("MultiheadAttention (query, key, value, params)", f_mha, in, 3 + ps->n, &c));
        bk_param_list_free(ps);
        bk_module_free(m);
    }
}

TEST(mha_layouts_agree) {
    /* batch_first and (L, B, E) layers with the same weights give permuted results; an
     * unbatched input gives batch element 0's; bk_forward is self-attention */
    bk_module *a = bk_nn_multihead_attention(6, 3, 0.0f, true, false), *b = bk_nn_multihead_attention(6, 3, 0.0f, true, true);
    CHECK(a && b);
    if (!a || !b) goto out;
    bk_param_list *pa = bk_module_named(a, BK_PARAMS), *pb = bk_module_named(b, BK_PARAMS);
    for (int i = 0; i < pa->n; i++) {
        bk_fill_normal(pa->tensors[i], &g_rng, 0, 0.5f);
        bk_copy(pb->tensors[i], pa->tensors[i]);
    }
    bk_param_list_free(pa);
    bk_param_list_free(pb);
    bk_tensor *x = RANDN(5, 2, 6), *mem = RANDN(4, 2, 6); /* (L, B, E) */
    bk_tensor *kpm = bk_from_data(BK_SHAPE(2, 4), (const float[]){0, 0, 0, 1, 1, 0, 0, 0});
    bk_tensor *wa = NULL, *wb = NULL, *wh = NULL;
    bk_tensor *ya = bk_mha_forward(a, x, mem, mem, kpm, NULL, true, true, &wa);
    bk_tensor *yb = bk_mha_forward(b, bk_transpose(x, 0, 1), bk_transpose(mem, 0, 1), bk_transpose(mem, 0, 1), kpm,
                                   NULL, true, false, &wh);
    CHECK(ya && yb && wa && wh);
    if (!ya || !yb || !wa || !wh) goto out;
    CHECK(max_abs_diff(ya, bk_transpose(yb, 0, 1)) < 1e-6);
    CHECK(wa->ndim == 3 && wh->ndim == 4 && max_abs_diff(wa, bk_mean_dim(wh, 1, false)) < 1e-7);
    /* unbatched: batch element 1 alone */
    bk_tensor *x1 = bk_select(x, 1, 1), *m1 = bk_select(mem, 1, 1);
    bk_tensor *y1 = bk_mha_forward(a, x1, m1, m1, bk_select(kpm, 0, 1), NULL, true, true, &wb);
    CHECK(y1 && y1->ndim == 2 && max_abs_diff(y1, bk_select(ya, 1, 1)) < 1e-6);
    CHECK(wb && wb->ndim == 2 && max_abs_diff(wb, bk_select(wa, 0, 1)) < 1e-7);
    /* bk_forward: self-attention without masks, no weights */
    bk_tensor *ys = bk_forward(a, x), *ys2 = bk_mha_forward(a, x, x, x, NULL, NULL, false, true, &wb);
    CHECK(ys && ys2 && wb == NULL && max_abs_diff(ys, ys2) == 0);
out:
    bk_module_free(a);
    bk_module_free(b);
}

TEST(mha_dropout_modes) {
    bk_manual_seed(11);
    bk_module *m = bk_nn_multihead_attention(8, 2, 0.5f, true, true);
    CHECK(m != NULL);
    if (!m) return;
    bk_tensor *x = RANDN(2, 5, 8), *w1 = NULL, *w2 = NULL;
    bk_tensor *y1 = bk_mha_forward(m, x, x, x, NULL, NULL, true, false, &w1);
    int zeros = 0;
    for (int64_t i = 0; w1 && i < w1->numel; i++) zeros += w1->data[i] == 0.0f;
    CHECK(zeros > 10); /* dropout on the weights in training mode (about half of 100) */
    bk_module_train(m, false);
    bk_tensor *y2 = bk_mha_forward(m, x, x, x, NULL, NULL, true, false, &w2), *y3 = bk_forward(m, x);
    CHECK(y1 && y2 && y3 && max_abs_diff(y2, y3) == 0 && max_abs_diff(y1, y2) > 1e-3);
    for (int64_t i = 0; w2 && i < w2->numel; i++) CHECK(w2->data[i] > 0.0f);
    bk_module_free(m);
}

TEST(mha_errors) {
    CHECK_ERR(bk_nn_multihead_attention(10, 3, 0.0f, true, false),
              "MultiheadAttention: embed_dim=10 must be divisible by num_heads=3");
    CHECK_ERR(bk_nn_multihead_attention(8, 2, -0.5f, true, false), "dropout probability");
    bk_module *m = bk_nn_multihead_attention(8, 2, 0.0f, true, false);
    CHECK(m != NULL);
    bk_tensor *q = bk_zeros(BK_SHAPE(3, 2, 8)), *kv = bk_zeros(BK_SHAPE(5, 2, 8));
    const char *who = "in MultiheadAttention(embed_dim=8, num_heads=2): ";
    char want[512];
    snprintf(want, sizeof want, "%skey_padding_mask (2, 4) should be (batch, source length) = (2, 5)", who);
    CHECK_ERR(bk_mha_forward(m, q, kv, kv, bk_zeros(BK_SHAPE(2, 4)), NULL, false, true, NULL), want);
    snprintf(want, sizeof want, "%sattn_mask (3, 3) should be (L, S) = (3, 5) or (batch * num_heads, L, S) = (4, 3, 5)",
             who);
    CHECK_ERR(bk_mha_forward(m, q, kv, kv, NULL, bk_zeros(BK_SHAPE(3, 3)), false, true, NULL), want);
    CHECK_ERR(bk_mha_forward(m, q, kv, kv, NULL, bk_zeros(BK_SHAPE(2, 3, 5)), false, true, NULL),
              "attn_mask (2, 3, 5) should be");
    CHECK_ERR(bk_mha_forward(m, q, kv, bk_zeros(BK_SHAPE(4, 2, 8)), NULL, NULL, false, true, NULL),
              "key shape (5, 2, 8) does not match value shape (4, 2, 8)");
    CHECK_ERR(bk_mha_forward(m, bk_zeros(BK_SHAPE(3, 2, 6)), kv, kv, NULL, NULL, false, true, NULL),
              "was expecting embedding dimension 8, but query is (3, 2, 6)");
    CHECK_ERR(bk_mha_forward(m, q, bk_zeros(BK_SHAPE(5, 3, 8)), bk_zeros(BK_SHAPE(5, 3, 8)), NULL, NULL, false, true,
                             NULL), "different batch sizes");
    CHECK_ERR(bk_forward(m, bk_zeros(BK_SHAPE(2, 3, 4, 8))), "query should be unbatched 2-d or batched 3-d");
    bk_module *relu = bk_nn_relu();
    CHECK_ERR(bk_mha_forward(relu, q, q, q, NULL, NULL, false, true, NULL), "expected a MultiheadAttention, got ReLU");
    bk_module_free(relu);
    bk_module_free(m);
}

/* ======================================================================================
 * Transformer layers and stacks
 * ====================================================================================== */

static bk_transformer_config small_cfg(bool norm_first, bool batch_first, bk_activation act) {
    bk_transformer_config c = BK_TRANSFORMER_DEFAULTS(4, 2);
    c.dim_feedforward = 6;
    c.dropout = 0.0f;
    c.activation = act;
    c.norm_first = norm_first;
    c.batch_first = batch_first;
    return c;
}

/* Randomises every parameter (non-zero biases, non-trivial LayerNorm weights). */
static void jitter(bk_module *m, float scale) {
    bk_param_list *ps = bk_module_named(m, BK_PARAMS);
    for (int i = 0; ps && i < ps->n; i++)
        for (int64_t j = 0; j < ps->tensors[i]->numel; j++) ps->tensors[i]->data[j] += scale * bk_rng_normal(&g_rng);
    bk_param_list_free(ps);
}

typedef struct layer_case {
    bk_module *m;
    bk_tensor *mask, *kpm, *mem_kpm;
} layer_case;

static bk_tensor *f_encoder_layer(bk_tensor *const *in, int n, void *ud) {
    (void)n;
    layer_case *c = ud;
    return bk_transformer_encoder_layer_forward(c->m, in[0], c->mask, c->kpm);
}

static bk_tensor *f_decoder_layer(bk_tensor *const *in, int n, void *ud) {
    (void)n;
    layer_case *c = ud;
    return bk_transformer_decoder_layer_forward(c->m, in[0], in[1], c->mask, NULL, c->kpm, c->mem_kpm);
}

/* gradcheck over the inputs and n_params named parameters of m */
static void check_layer_grads(const char *what, bk_gradcheck_fn f, layer_case *c, bk_tensor *x, bk_tensor *mem,
                              const char *const *params, int n_params) {
    bk_tensor *in[16];
    int n = 0;
    in[n++] = x;
    if (mem) in[n++] = mem;
    for (int i = 0; i < n_params; i++) in[n++] = bk_module_get(c->m, params[i]);
    CHECK(gradcheck_ok(what, f, in, n, c));
}

TEST(encoder_layer_structure) {
    bk_transformer_config cfg = BK_TRANSFORMER_DEFAULTS(8, 2);
    cfg.dim_feedforward = 16;
    bk_module *m = bk_nn_transformer_encoder_layer(cfg);
    CHECK(m != NULL);
    if (!m) return;
    CHECK(names_are(m, BK_STATE,
                    (const char *const[]){"self_attn.in_proj_weight", "self_attn.in_proj_bias", "self_attn.out_proj.weight",
                                          "self_attn.out_proj.bias", "linear1.weight", "linear1.bias", "linear2.weight",
                                          "linear2.bias", "norm1.weight", "norm1.bias", "norm2.weight", "norm2.bias"},
                    12));
    CHECK(repr_is(m, "TransformerEncoderLayer(\n"
                     "  (self_attn): MultiheadAttention(\n"
                     "    (out_proj): NonDynamicallyQuantizableLinear(in_features=8, out_features=8, bias=True)\n"
                     "  )\n"
                     "  (linear1): Linear(in_features=8, out_features=16, bias=True)\n"
                     "  (dropout): Dropout(p=0.1, inplace=False)\n"
                     "  (linear2): Linear(in_features=16, out_features=8, bias=True)\n"
                     "  (norm1): LayerNorm((8,), eps=1e-05, elementwise_affine=True)\n"
                     "  (norm2): LayerNorm((8,), eps=1e-05, elementwise_affine=True)\n"
                     "  (dropout1): Dropout(p=0.1, inplace=False)\n"
                     "  (dropout2): Dropout(p=0.1, inplace=False)\n"
                     ")"));
    bk_module_free(m);
}

TEST(encoder_layer_gradients) {
    for (int trial = 0; trial < 2; trial++) {
        bool nf = trial == 1, bf = trial == 0;
        layer_case c = {bk_nn_transformer_encoder_layer(small_cfg(nf, bf, BK_ACTIVATION_GELU)), NULL, NULL, NULL};
        CHECK(c.m != NULL);
        if (!c.m) return;
        jitter(c.m, 0.3f);
        c.mask = bk_causal_mask(3);
        c.kpm = bk_from_data(BK_SHAPE(2, 3), (const float[]){0, 0, 1, 0, 0, 0});
        bk_tensor *x = LEAF(bf ? RANDN(2, 3, 4) : RANDN(3, 2, 4));
        const char *ps[] = {"self_attn.in_proj_weight", "self_attn.in_proj_bias", "self_attn.out_proj.weight",
                            "linear1.weight", "linear2.bias", "norm1.weight", "norm2.bias"};
        check_layer_grads(nf ? "encoder layer (norm_first)" : "encoder layer", f_encoder_layer, &c, x, NULL, ps, 7);
        bk_module_free(c.m);
    }
}

TEST(decoder_layer_structure_and_gradients) {
    bk_transformer_config cfg = BK_TRANSFORMER_DEFAULTS(8, 2);
    cfg.dim_feedforward = 16;
    cfg.dropout = 0.0f;
    cfg.layer_norm_eps = 1e-6f;
    bk_module *d = bk_nn_transformer_decoder_layer(cfg);
    CHECK(d != NULL);
    if (!d) return;
    CHECK(repr_is(d, "TransformerDecoderLayer(\n"
                     "  (self_attn): MultiheadAttention(\n"
                     "    (out_proj): NonDynamicallyQuantizableLinear(in_features=8, out_features=8, bias=True)\n"
                     "  )\n"
                     "  (multihead_attn): MultiheadAttention(\n"
                     "    (out_proj): NonDynamicallyQuantizableLinear(in_features=8, out_features=8, bias=True)\n"
                     "  )\n"
                     "  (linear1): Linear(in_features=8, out_features=16, bias=True)\n"
                     "  (dropout): Dropout(p=0.0, inplace=False)\n"
                     "  (linear2): Linear(in_features=16, out_features=8, bias=True)\n"
                     "  (norm1): LayerNorm((8,), eps=1e-06, elementwise_affine=True)\n"
                     "  (norm2): LayerNorm((8,), eps=1e-06, elementwise_affine=True)\n"
                     "  (norm3): LayerNorm((8,), eps=1e-06, elementwise_affine=True)\n"
                     "  (dropout1): Dropout(p=0.0, inplace=False)\n"
                     "  (dropout2): Dropout(p=0.0, inplace=False)\n"
                     "  (dropout3): Dropout(p=0.0, inplace=False)\n"
                     ")"));
    CHECK(names_are(d, BK_PARAMS,
                    (const char *const[]){"self_attn.in_proj_weight", "self_attn.in_proj_bias", "self_attn.out_proj.weight",
                                          "self_attn.out_proj.bias", "multihead_attn.in_proj_weight",
                                          "multihead_attn.in_proj_bias", "multihead_attn.out_proj.weight",
                                          "multihead_attn.out_proj.bias", "linear1.weight", "linear1.bias",
                                          "linear2.weight", "linear2.bias", "norm1.weight", "norm1.bias", "norm2.weight",
                                          "norm2.bias", "norm3.weight", "norm3.bias"},
                    18));
    CHECK_ERR(bk_forward(d, bk_zeros(BK_SHAPE(3, 2, 8))),
              "in TransformerDecoderLayer: forward needs the encoder output too");
    bk_module_free(d);
    for (int trial = 0; trial < 2; trial++) {
        bool nf = trial == 0, bf = trial == 1;
        layer_case c = {bk_nn_transformer_decoder_layer(small_cfg(nf, bf, BK_ACTIVATION_GELU)), NULL, NULL, NULL};
        CHECK(c.m != NULL);
        if (!c.m) return;
        jitter(c.m, 0.3f);
        c.mask = bk_causal_mask(3);
        c.kpm = bk_from_data(BK_SHAPE(2, 3), (const float[]){0, 0, 0, 0, 0, 1});
        c.mem_kpm = bk_from_data(BK_SHAPE(2, 4), (const float[]){0, 0, 0, 1, 0, 1, 0, 0});
        bk_tensor *x = LEAF(bf ? RANDN(2, 3, 4) : RANDN(3, 2, 4)), *mem = LEAF(bf ? RANDN(2, 4, 4) : RANDN(4, 2, 4));
        const char *ps[] = {"self_attn.in_proj_weight", "multihead_attn.in_proj_weight", "multihead_attn.in_proj_bias",
                            "multihead_attn.out_proj.bias", "linear1.bias", "norm3.weight"};
        check_layer_grads(nf ? "decoder layer (norm_first)" : "decoder layer", f_decoder_layer, &c, x, mem, ps, 6);
        bk_module_free(c.m);
    }
}

TEST(layers_take_unbatched_input) {
    /* (L, E) gives what (L, 1, E) gives, for both layers and both layouts */
    for (int trial = 0; trial < 2; trial++) {
        bool bf = trial == 1;
        bk_module *e = bk_nn_transformer_encoder_layer(small_cfg(bf, bf, BK_ACTIVATION_RELU));
        bk_module *d = bk_nn_transformer_decoder_layer(small_cfg(!bf, bf, BK_ACTIVATION_GELU));
        CHECK(e && d);
        if (!e || !d) {
            bk_module_free(e);
            bk_module_free(d);
            return;
        }
        jitter(e, 0.3f);
        jitter(d, 0.3f);
        bk_tensor *x = RANDN(3, 4), *mem = RANDN(5, 4);
        int64_t one = 1;
        bk_tensor *xb = bk_reshape(x, BK_SHAPE(bf ? one : 3, bf ? 3 : one, 4));
        bk_tensor *mb = bk_reshape(mem, BK_SHAPE(bf ? one : 5, bf ? 5 : one, 4));
        bk_tensor *y = bk_transformer_encoder_layer_forward(e, x, bk_causal_mask(3), NULL);
        bk_tensor *yb = bk_transformer_encoder_layer_forward(e, xb, bk_causal_mask(3), NULL);
        CHECK(y && yb && y->ndim == 2 && max_abs_diff(y, yb) < 1e-6);
        y = bk_transformer_decoder_layer_forward(d, x, mem, bk_causal_mask(3), NULL, NULL, NULL);
        yb = bk_transformer_decoder_layer_forward(d, xb, mb, bk_causal_mask(3), NULL, NULL, NULL);
        CHECK(y && yb && y->ndim == 2 && max_abs_diff(y, yb) < 1e-6);
        bk_module_free(e);
        bk_module_free(d);
    }
}

TEST(layer_errors) {
    bk_transformer_config cfg = BK_TRANSFORMER_DEFAULTS(10, 3);
    CHECK_ERR(bk_nn_transformer_encoder_layer(cfg), "TransformerEncoderLayer: d_model=10 must be divisible by nhead=3");
    CHECK_ERR(bk_nn_transformer_decoder_layer(cfg), "TransformerDecoderLayer: d_model=10 must be divisible by nhead=3");
    cfg = BK_TRANSFORMER_DEFAULTS(8, 2);
    cfg.activation = BK_ACTIVATION_COUNT;
    CHECK_ERR(bk_nn_transformer_encoder_layer(cfg), "unknown activation");
    cfg = BK_TRANSFORMER_DEFAULTS(8, 2);
    cfg.dropout = 2.0f;
    CHECK_ERR(bk_nn_transformer_encoder_layer(cfg), "dropout probability has to be between 0 and 1, but got 2");
    cfg = BK_TRANSFORMER_DEFAULTS(8, 2);
    cfg.dim_feedforward = 16;
    bk_module *e = bk_nn_transformer_encoder_layer(cfg), *d = bk_nn_transformer_decoder_layer(cfg);
    CHECK(e && d);
    bk_tensor *src = bk_zeros(BK_SHAPE(4, 2, 8)), *mem = bk_zeros(BK_SHAPE(5, 2, 8));
    CHECK_ERR(bk_transformer_encoder_layer_forward(e, src, bk_zeros(BK_SHAPE(3, 3)), NULL),
              "in TransformerEncoderLayer(d_model=8, nhead=2): self_attn (src_mask, src_key_padding_mask): in "
              "MultiheadAttention(embed_dim=8, num_heads=2): attn_mask (3, 3) should be (L, S) = (4, 4)");
    CHECK_ERR(bk_transformer_encoder_layer_forward(e, src, NULL, bk_zeros(BK_SHAPE(4, 2))),
              "key_padding_mask (4, 2) should be (batch, source length) = (2, 4)");
    CHECK_ERR(bk_forward(e, bk_zeros(BK_SHAPE(4, 2, 6))),
              "in TransformerEncoderLayer(d_model=8, nhead=2): src (4, 2, 6) should be (length, batch, d_model) or "
              "unbatched (length, 8)");
    CHECK_ERR(bk_transformer_decoder_layer_forward(d, src, mem, NULL, bk_zeros(BK_SHAPE(4, 4)), NULL, NULL),
              "in TransformerDecoderLayer(d_model=8, nhead=2): multihead_attn (memory_mask, memory_key_padding_mask): "
              "in MultiheadAttention(embed_dim=8, num_heads=2): attn_mask (4, 4) should be (L, S) = (4, 5)");
    CHECK_ERR(bk_transformer_decoder_layer_forward(d, src, mem, NULL, NULL, NULL, bk_zeros(BK_SHAPE(2, 4))),
              "memory_key_padding_mask): in MultiheadAttention(embed_dim=8, num_heads=2): key_padding_mask (2, 4) "
              "should be (batch, source length) = (2, 5)");
    CHECK_ERR(bk_transformer_decoder_layer_forward(d, src, mem, bk_zeros(BK_SHAPE(5, 5)), NULL, NULL, NULL),
              "self_attn (tgt_mask, tgt_key_padding_mask)");
    CHECK_ERR(bk_transformer_decoder_layer_forward(d, src, bk_zeros(BK_SHAPE(5, 8)), NULL, NULL, NULL, NULL),
              "must both be batched (3-d) or both unbatched (2-d)");
    CHECK_ERR(bk_transformer_encoder_layer_forward(d, src, NULL, NULL), "expected a TransformerEncoderLayer, got "
                                                                         "TransformerDecoderLayer");
    CHECK_ERR(bk_transformer_encoder_layer_forward(e, NULL, NULL, NULL), "input 0 is NULL");
    bk_module_free(e);
    bk_module_free(d);
}

TEST(stacks) {
    bk_manual_seed(5);
    bk_transformer_config cfg = small_cfg(false, false, BK_ACTIVATION_RELU);
    bk_module *enc = bk_nn_transformer_encoder(bk_nn_transformer_encoder_layer(cfg), 2,
                                               bk_nn_layer_norm(1, (const int64_t[]){4}, 1e-5f));
    bk_module *dec = bk_nn_transformer_decoder(bk_nn_transformer_decoder_layer(cfg), 3, NULL);
    CHECK(enc && dec);
    if (!enc || !dec) goto out;
    bk_param_list *l = bk_module_named(enc, BK_STATE);
    CHECK(l && l->n == 2 * 12 + 2 && !strcmp(l->names[0], "layers.0.self_attn.in_proj_weight") &&
          !strcmp(l->names[12], "layers.1.self_attn.in_proj_weight") && !strcmp(l->names[24], "norm.weight"));
    for (int i = 0; l && i < 12; i++) /* the copies start equal, as torch's deepcopy */
        CHECK(max_abs_diff(l->tensors[i], l->tensors[12 + i]) == 0 && l->tensors[i] != l->tensors[12 + i]);
    bk_param_list_free(l);
    CHECK(bk_module_num_params(dec, false) == 3 * bk_module_num_params(bk_module_child(bk_module_child(dec, 0), 0), false));
    char buf[16384];
    CHECK(bk_module_repr(enc, buf, sizeof buf) > 0);
    const char *head = "TransformerEncoder(\n  (layers): ModuleList(\n    (0): TransformerEncoderLayer(\n";
    CHECK(strncmp(buf, head, strlen(head)) == 0);
    CHECK(strstr(buf, "\n    (1): TransformerEncoderLayer(\n      (self_attn): MultiheadAttention(\n") != NULL);
    CHECK(strstr(buf, "\n  )\n  (norm): LayerNorm((4,), eps=1e-05, elementwise_affine=True)\n)") != NULL);
    jitter(enc, 0.3f);
    jitter(dec, 0.3f);
    /* the stack is its layers in turn, then the norm */
    bk_tensor *x = RANDN(3, 2, 4), *mem = RANDN(5, 2, 4), *mask = bk_causal_mask(3);
    bk_tensor *kpm = bk_from_data(BK_SHAPE(2, 3), (const float[]){0, 0, 0, 0, 0, 1});
    bk_tensor *y = bk_transformer_encoder_forward(enc, x, mask, kpm);
    bk_module *layers = bk_module_child_by_name(enc, "layers");
    bk_tensor *r = x;
    for (int i = 0; i < 2; i++) r = bk_transformer_encoder_layer_forward(bk_module_child(layers, i), r, mask, kpm);
    r = bk_forward(bk_module_child_by_name(enc, "norm"), r);
    CHECK(y && r && max_abs_diff(y, r) == 0);
    bk_tensor *yd = bk_transformer_decoder_forward(dec, x, mem, mask, NULL, kpm, NULL);
    layers = bk_module_child_by_name(dec, "layers");
    r = x;
    for (int i = 0; i < 3; i++)
        r = bk_transformer_decoder_layer_forward(bk_module_child(layers, i), r, mem, mask, NULL, kpm, NULL);
    CHECK(yd && r && max_abs_diff(yd, r) == 0);
    CHECK(max_abs_diff(bk_forward(enc, x), bk_transformer_encoder_forward(enc, x, NULL, NULL)) == 0);
    CHECK_ERR(bk_forward(dec, x), "in TransformerDecoder: forward needs the encoder output too");
    CHECK_ERR(bk_forward(layers, x), "in ModuleList: a ModuleList has no forward");
    CHECK_ERR(bk_transformer_encoder_forward(enc, x, bk_causal_mask(4), NULL),
              "in TransformerEncoderLayer(d_model=4, nhead=2): self_attn (src_mask, src_key_padding_mask)");
    /* training mode reaches every copy */
    bk_module_train(enc, false);
    CHECK(!bk_module_child(bk_module_child_by_name(enc, "layers"), 1)->training);
out:
    bk_module_free(enc);
    bk_module_free(dec);
}

TEST(stack_errors) {
    bk_transformer_config cfg = small_cfg(false, false, BK_ACTIVATION_RELU);
    /* the layer and the norm are freed on every failure (ASan's leak check sees this) */
    CHECK_ERR(bk_nn_transformer_encoder(bk_nn_transformer_decoder_layer(cfg), 2, bk_nn_relu()),
              "TransformerEncoder: the layer must be a TransformerEncoderLayer, got TransformerDecoderLayer");
    CHECK_ERR(bk_nn_transformer_decoder(bk_nn_transformer_decoder_layer(cfg), 0, bk_nn_relu()),
              "TransformerDecoder: num_layers=0 must be positive");
    CHECK_ERR(bk_nn_transformer_encoder(NULL, 2, bk_nn_relu()), "got ?");
    cfg.nhead = 3;
    CHECK_ERR(bk_nn_transformer_encoder(bk_nn_transformer_encoder_layer(cfg), 2, NULL), "d_model=4 must be divisible");
    bk_module *enc = bk_nn_transformer_encoder(bk_nn_transformer_encoder_layer(small_cfg(true, true, BK_ACTIVATION_GELU)),
                                               1, NULL);
    CHECK_ERR(bk_transformer_decoder_forward(enc, NULL, NULL, NULL, NULL, NULL, NULL),
              "expected a TransformerDecoder, got TransformerEncoder");
    bk_module_free(enc);
}

/* A training step of an encoder layer allocates nothing once the arena is warm. */
TEST(encoder_step_allocates_nothing_when_warm) {
    bk_arena *a = bk_arena_new();
    bk_arena *prev = bk_arena_use(a);
    bk_transformer_config cfg = BK_TRANSFORMER_DEFAULTS(16, 4);
    cfg.dim_feedforward = 32;
    bk_module *m = bk_nn_transformer_encoder_layer(cfg);
    bk_tensor *x = bk_tensor_new(BK_SHAPE(6, 3, 16));
    CHECK(m && x);
    uint64_t allocs[4] = {0};
    for (int s = 0; m && x && s < 4; s++) {
        bk_fill_normal(x, &g_rng, 0, 1);
        bk_tensor *kpm = bk_zeros(BK_SHAPE(3, 6));
        bk_tensor *y = bk_transformer_encoder_layer_forward(m, x, bk_causal_mask(6), kpm);
        CHECK(y && bk_backward(bk_sum(y)) == 0);
        bk_module_zero_grad(m);
        bk_arena_reset(a);
        allocs[s] = bk_arena_allocations(a);
    }
    CHECK(allocs[2] == allocs[1] && allocs[3] == allocs[1]);
    bk_tensor_free(x);
    bk_module_free(m);
    bk_arena_use(prev);
    bk_arena_free(a);
}

int main(void) {
    const char *s = getenv("BRICK_TEST_SEED");
    if (!s || !s[0]) s = getenv("BRICK_SEED");
    uint64_t seed = s && s[0] ? strtoull(s, NULL, 10) : (uint64_t)time(NULL);
    printf("test_transformer: seed %llu (BRICK_TEST_SEED=%llu reproduces it)\n", (unsigned long long)seed,
           (unsigned long long)seed);
    bk_rng_seed(&g_rng, seed);

    RUN(embedding_values_and_gradient);
    RUN(embedding_module);
    RUN(embedding_errors);
    RUN(positional_encoding_values);
    RUN(learned_positional_embedding);
    RUN(positional_errors);
    RUN(attention_weights_values);
    RUN(attention_gradients);
    RUN(attention_masks_and_stability);
    RUN(attention_softmax_range);
    RUN(attention_errors);
    RUN(mha_structure_and_init);
    RUN(mha_gradients);
    RUN(mha_layouts_agree);
    RUN(mha_dropout_modes);
    RUN(mha_errors);
    RUN(encoder_layer_structure);
    RUN(encoder_layer_gradients);
    RUN(decoder_layer_structure_and_gradients);
    RUN(layers_take_unbatched_input);
    RUN(layer_errors);
    RUN(stacks);
    RUN(stack_errors);
    RUN(encoder_step_allocates_nothing_when_warm);
    return test_summary("test_transformer");
}
