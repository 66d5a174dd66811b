/* test_transformer.c - embeddings, positional encodings, attention and MultiheadAttention
 * (the Transformer layers and stacks are in test_transformer_layers.c): gradients against
 * central differences, forward values against naive references computed in double,
 * structure (names, printing, init), and every error path (messages asserted; ASan checks
 * nothing leaks).
 *
 * Random values come from a PCG32 stream seeded from $BRICK_TEST_SEED, else $BRICK_SEED
 * (what `make test` prints), else the clock; the seed is printed first.
 *
 * Gradient tolerances (bk_gradcheck): eps = 1e-3, atol = 5e-3, rtol = 1e-2, as in
 * test_ops.c: float32 forwards differenced over a step of 2e-3 carry ~3e-5 |y| of rounding
 * per touched output, and the networks here stay below ~100 touched outputs of size ~1.
 */
#include "transformer_util.h"


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
    CHECK_ERR(bk_embedding(bk_zeros(BK_SHAPE(2)), bk_zeros(BK_SHAPE(4, 2)), 4),
              "padding_idx=4 is out of range");
    CHECK_ERR(bk_embedding(NULL, bk_zeros(BK_SHAPE(4, 2)), -1),
              "embedding: input 0 is NULL"); /* ids: argument 0 */
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
              "in LearnedPositionalEmbedding(max_len=10, num_hiddens=8): LearnedPositionalEmbedding: "
              "sequence "
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
                        int64_t iq = bf ? (b * L + l) * E : (l * B + b) * E,
                                ik = bf ? (b * S + s) * E : (s * B + b) * E;
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
        CHECK(P && P->ndim == 4 && P->shape[0] == B && P->shape[1] == H && P->shape[2] == L &&
              P->shape[3] == S);
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
    return bk_attention_apply(bk_attention_weights(in[0], in[1], c->H, c->bf, c->am, c->kpm, 0.0f), in[2],
                              c->bf);
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
        c.am = bk_from_data(BK_SHAPE(L, S), (const float[]){0, -INFINITY, 0.5f, -INFINITY, 0, 0, -1,
                                                            -INFINITY, 0, 0, 0, 0.25f});
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
        GRADCHECK("attention (q, q, v)", f_attention, &c, q, q,
                  LEAF(bf ? RANDN(B, L, 2 * H) : RANDN(L, B, 2 * H)));
    }
    attn_case c = {1, true, bk_causal_mask(3), NULL};
    GRADCHECK("scaled_dot_product_attention", f_sdpa, &c, LEAF(RANDN(2, 3, 4)), LEAF(RANDN(2, 3, 4)),
              LEAF(RANDN(2, 3, 5)));
}

TEST(attention_masks_and_stability) {
    bk_tensor *cm = bk_causal_mask(3);
    CHECK(cm && cm->data[0] == 0 && isinf(cm->data[1]) && cm->data[1] < 0 && cm->data[3] == 0 &&
          cm->data[4] == 0 && isinf(cm->data[5]) && cm->data[8] == 0);
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
    CHECK_ERR(bk_attention_weights(q, k, 3, false, NULL, NULL, 0),
              "last dim 4 is not divisible by num_heads=3");
    CHECK_ERR(bk_attention_weights(q, bk_zeros(BK_SHAPE(5, 3, 4)), 2, false, NULL, NULL, 0),
              "key (5, 3, 4) does not fit query (3, 2, 4)");
    CHECK_ERR(bk_attention_weights(q, k, 2, false, bk_zeros(BK_SHAPE(3, 4)), NULL, 0),
              "attn_mask (3, 4) does not fit: expected (L, S) = (3, 5) or (batch * num_heads, L, S) = (4, 3, "
              "5)");
    CHECK_ERR(bk_attention_weights(q, k, 2, false, NULL, bk_zeros(BK_SHAPE(5, 2)), 0),
              "key_padding_mask (5, 2) does not fit: expected (batch, S) = (2, 5)");
    CHECK_ERR(bk_attention_weights(bk_zeros(BK_SHAPE(3, 4)), k, 2, false, NULL, NULL, 0),
              "query must be 3-d");
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
    CHECK(
        names_are(m, BK_STATE,
                  (const char *const[]){"in_proj_weight", "in_proj_bias", "out_proj.weight", "out_proj.bias"},
                  4));
    CHECK(names_are(nb, BK_STATE, (const char *const[]){"in_proj_weight", "out_proj.weight"}, 2));
    CHECK(repr_is(m,
                  "MultiheadAttention(\n  (out_proj): NonDynamicallyQuantizableLinear(in_features=64, "
                  "out_features=64, bias=True)\n)"));
    CHECK(repr_is(nb,
                  "MultiheadAttention(\n  (out_proj): NonDynamicallyQuantizableLinear(in_features=8, "
                  "out_features=8, bias=False)\n)"));
    bk_tensor *w = bk_module_get(m, "in_proj_weight"), *ow = bk_module_get(m, "out_proj.weight");
    CHECK(w->shape[0] == 192 && w->shape[1] == 64);
    /* xavier_uniform_: U(-a, a), a = sqrt(6 / (64 + 192)); out_proj: Linear's U(+-1/8) */
    double a = sqrt(6.0 / 256.0), mx = 0, ss = 0;
    for (int64_t i = 0; i < w->numel; i++)
        mx = fmax(mx, fabs(w->data[i])), ss += (double)w->data[i] * w->data[i];
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
            for (int64_t j = 0; j < ps->tensors[i]->numel; j++)
                ps->tensors[i]->data[j] += 0.3f * bk_rng_normal(&g_rng);
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
    bk_module *a = bk_nn_multihead_attention(6, 3, 0.0f, true, false),
              *b = bk_nn_multihead_attention(6, 3, 0.0f, true, true);
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
    bk_tensor *yb = bk_mha_forward(b, bk_transpose(x, 0, 1), bk_transpose(mem, 0, 1), bk_transpose(mem, 0, 1),
                                   kpm, NULL, true, false, &wh);
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
    snprintf(want, sizeof want,
             "%sattn_mask (3, 3) should be (L, S) = (3, 5) or (batch * num_heads, L, S) = (4, 3, 5)", who);
    CHECK_ERR(bk_mha_forward(m, q, kv, kv, NULL, bk_zeros(BK_SHAPE(3, 3)), false, true, NULL), want);
    CHECK_ERR(bk_mha_forward(m, q, kv, kv, NULL, bk_zeros(BK_SHAPE(2, 3, 5)), false, true, NULL),
              "attn_mask (2, 3, 5) should be");
    CHECK_ERR(bk_mha_forward(m, q, kv, bk_zeros(BK_SHAPE(4, 2, 8)), NULL, NULL, false, true, NULL),
              "key shape (5, 2, 8) does not match value shape (4, 2, 8)");
    CHECK_ERR(bk_mha_forward(m, bk_zeros(BK_SHAPE(3, 2, 6)), kv, kv, NULL, NULL, false, true, NULL),
              "was expecting embedding dimension 8, but query is (3, 2, 6)");
    CHECK_ERR(bk_mha_forward(m, q, bk_zeros(BK_SHAPE(5, 3, 8)), bk_zeros(BK_SHAPE(5, 3, 8)), NULL, NULL,
                             false, true, NULL),
              "different batch sizes");
    CHECK_ERR(bk_forward(m, bk_zeros(BK_SHAPE(2, 3, 4, 8))), "query should be unbatched 2-d or batched 3-d");
    bk_module *relu = bk_nn_relu();
    CHECK_ERR(bk_mha_forward(relu, q, q, q, NULL, NULL, false, true, NULL),
              "expected a MultiheadAttention, got ReLU");
    bk_module_free(relu);
    bk_module_free(m);
}

int main(void) {
    seed_from_env("test_transformer");

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
    return test_summary("test_transformer");
}
