/* attention.c - multi-head scaled dot-product attention as two fused ops, plus the mask
 * helpers. B = batch, H = heads, L = target (query) length, S = source (key) length,
 * D = head dim of queries and keys, Dv = head dim of values.
 *
 *   attention_weights: P[b, h] = softmax(scale * Q_bh K_bh^T + M_bh)           (B, H, L, S)
 *   attention_apply:   O_bh    = P[b, h] V_bh                 (head h's columns of O)
 *
 * Q_bh is the (L, D) block of head h (columns h*D .. h*D + D-1) of batch b of q, read in
 * place: q is (B, L, H*D) when batch_first, else (L, B, H*D), so a head's rows are a
 * strided matrix either way (row stride H*D or B*H*D) and go to the GEMM as they are.
 * nn.MultiheadAttention's in-projection output therefore needs no reshape or transpose,
 * and the output lands in the layout the out-projection reads.
 *
 * Masks (no gradient): attn_mask is additive, (L, S) for every (b, h) or (B*H, L, S) with
 * block b*H + h (torch's layout); key_padding_mask (B, S) puts -inf at every key whose
 * entry is nonzero. The softmax subtracts the row maximum, so it stays finite for any
 * finite scores. A row whose every entry is -inf has no defined softmax: like PyTorch
 * (1.13, every mode of nn.MultiheadAttention) it comes out NaN, and so do the outputs
 * and gradients that depend on it.
 *
 * Backward:  dS = P * (dP - rowsum(dP * P));  dQ_bh += scale dS K_bh;  dK_bh += scale dS^T Q_bh
 *            dP_bh += dO_bh V_bh^T;  dV_bh += P_bh^T dO_bh
 * The (b, h) blocks are independent and write disjoint memory, so they run in parallel
 * (OpenMP) when each block's products are small; large blocks leave the threading to the
 * GEMM. Results do not depend on the thread count.
 */
#include "internal.h"

#include "simd_sum.h"

#include <inttypes.h>
#include <math.h>

typedef struct attn_params {
    int64_t B, H, L, S, D, Dv;
    bool batch_first;
    float scale;
} attn_params;

/* Offset of head h of batch b, and the row stride, in a (B, T, H*d) or (T, B, H*d) tensor. */
static inline int64_t head_off(const attn_params *p, int64_t b, int64_t h, int64_t T, int64_t d) {
    return p->batch_first ? b * T * p->H * d + h * d : b * p->H * d + h * d;
}
static inline int64_t row_stride(const attn_params *p, int64_t d) {
    return p->batch_first ? p->H * d : p->B * p->H * d;
}

/* e^x for the softmax's x = score - row max <= 0: within 1 ulp of e^x where it is a normal
 * float (Cephes' expf: a degree-5 polynomial in r = x - n ln2, |r| <= ln2 / 2, times 2^n),
 * gradual underflow below, 0 from x = -104.5 on (so -inf gives 0); a NaN gives NaN or 0
 * (by its sign bit), so the softmax detects NaN rows itself.
 * libm's expf is a call per element and was the larger half of the softmax's time; this
 * is branch-free and call-free, so the loop around it vectorizes (`omp simd`). The clamp
 * is an integer min on the bits (for x <= 0, a larger magnitude is a larger pattern): a
 * float select with a constant arm lets GCC's PRE split the loop into branches. n comes
 * from the low mantissa bits of x / ln2 + 1.5 * 2^23, and 2^n = 2^n1 2^n2 with n1, n2 >=
 * -76 (both normal floats), so no float is ever converted to an integer. */
static inline float exp_nonpositive(float x) {
    const float lo = -104.5f, shifter = 12582912.0f; /* 1.5 * 2^23 */
    uint32_t bx, blo;
    memcpy(&bx, &x, sizeof bx);
    memcpy(&blo, &lo, sizeof blo);
    bx = bx < blo ? bx : blo; /* max(x, lo) for x <= 0 and -inf */
    float xc;
    memcpy(&xc, &bx, sizeof xc);
    float t = xc * 1.44269504088896341f + shifter; /* shifter + n, n = round(x / ln2) */
    float n = t - shifter;
    float r = (xc - n * 0.693359375f) - n * -2.12194440e-4f; /* x - n ln2, ln2 in two parts */
    float y = 1.9875691500e-4f;
    y = y * r + 1.3981999507e-3f;
    y = y * r + 8.3334519073e-3f;
    y = y * r + 4.1665795894e-2f;
    y = y * r + 1.6666665459e-1f;
    y = y * r + 5.0000001201e-1f;
    y = y * (r * r) + r + 1.0f; /* e^r */
    uint32_t k, h, b1, b2;
    memcpy(&k, &t, sizeof k);
    k = k - 0x4B400000u + 300u; /* n + 300, in [149, 300] */
    h = k >> 1;
    b1 = (h - 23u) << 23;     /* 2^n1, n1 = h - 150 */
    b2 = (k - h - 23u) << 23; /* 2^n2, n2 = n - n1 */
    float s1, s2;
    memcpy(&s1, &b1, sizeof s1);
    memcpy(&s2, &b2, sizeof s2);
    return y * s1 * s2;
}

/* An order-preserving image of the non-NaN floats in the unsigned integers (the sign bit
 * of a positive float set, every bit of a negative one flipped: -inf -> 0x007FFFFF, +inf ->
 * 0xFF800000), and its inverse. The softmax takes its row max on these: an integer max
 * reduction vectorizes with any compiler, a float one (NaN-aware) not with clang. */
static inline uint32_t float_key(float x) {
    uint32_t b;
    memcpy(&b, &x, sizeof b);
    return b & 0x80000000u ? ~b : b | 0x80000000u;
}

static inline float key_float(uint32_t k) {
    uint32_t b = k & 0x80000000u ? k & 0x7FFFFFFFu : ~k;
    float x;
    memcpy(&x, &b, sizeof x);
    return x;
}

/* Row r (S scores) of the weights: r += a (the additive mask; NULL: none), -inf where
 * kpm[s] != 0 (NULL: none), then the softmax with the max subtracted. As torch, a row with
 * a NaN score comes out NaN (whether or not the max picks the NaN: hence the count), and so
 * does an all -inf row: its x are -inf - -inf = NaN, whose e^x is NaN or 0, and 0 * (1 / 0)
 * is NaN too. The sum of the exponentials is a sumv (simd_sum.h): the same bits from every
 * clone. */
SIMD_CLONES static void softmax_row(float *r, int64_t S, const float *a, const float *kpm) {
    if (a) {
#pragma omp simd
        for (int64_t s = 0; s < S; s++) r[s] += a[s];
    }
    if (kpm)
        for (int64_t s = 0; s < S; s++)
            if (kpm[s] != 0.0f) r[s] = -INFINITY;
    int nans = 0;
    uint32_t mkey = 0; /* the max as an ordered integer: see float_key */
#pragma omp simd reduction(max : mkey) reduction(+ : nans)
    for (int64_t s = 0; s < S; s++) {
        uint32_t key = float_key(r[s]);
        mkey = key > mkey ? key : mkey;
        nans += r[s] != r[s];
    }
    float m = key_float(mkey);
#pragma omp simd
    for (int64_t s = 0; s < S; s++) r[s] = exp_nonpositive(r[s] - m);
    sumv sum;
    sumv_zero(&sum);
    sumv_row(&sum, r, S);
    float inv = nans ? NAN : (float)(1.0 / sumv_total(&sum));
#pragma omp simd
    for (int64_t s = 0; s < S; s++) r[s] *= inv;
}

/* Row of the weights' backward: d = p * (g - dot(g, p)), the dot a sumv. */
SIMD_CLONES static void softmax_row_backward(float *d, const float *p, const float *g, int64_t S) {
    sumv dot;
    sumv_zero(&dot);
    sumv_dot(&dot, g, p, S);
    float fd = (float)sumv_total(&dot);
#pragma omp simd
    for (int64_t s = 0; s < S; s++) d[s] = p[s] * (g[s] - fd);
}

/* Parallel over the (b, h) blocks when one block's GEMMs are too small for the GEMM to
 * thread itself (and so that nested threading never happens), but only when all the blocks
 * together are worth a parallel region: about 2^20 multiply-adds, ~50-100 us on one core.
 * Below that, opening the region (and libgomp's waiting threads) costs more than the work;
 * under valgrind, which runs the threads one at a time, it cost 20x. Only the OpenMP
 * pragmas call it, hence the attribute for builds without OpenMP. */
#define ATTN_PARALLEL_MIN ((int64_t)1 << 20)
__attribute__((unused)) static inline bool blocks_parallel(const attn_params *p, int64_t d) {
    int64_t per_block = p->L * p->S * d;
    return p->B * p->H > 1 && per_block < (1 << 18) && p->B * p->H * per_block >= ATTN_PARALLEL_MIN;
}

/* ---- weights: P = softmax(scale Q K^T + mask) ------------------------------------------- */

static void weights_backward(bk_node *n) {
    const attn_params *p = bk_node_params(n);
    const bk_tensor *q = bk_node_input(n, 0), *k = bk_node_input(n, 1);
    const float *P = bk_node_output(n)->data, *G = bk_node_grad_output(n)->data;
    bk_tensor *dq = bk_node_grad_input(n, 0), *dk = bk_node_grad_input(n, 1);
    if (!dq && !dk) return;
    int64_t LS = p->L * p->S, nb = p->B * p->H;
    int64_t total = nb * LS;
    float *dS = bk__arena_alloc(bk_arena_current(), sizeof(float) * (size_t)(total > 0 ? total : 1));
    if (!dS) {
        bk__backward_fail();
        return;
    }
    const bk_backend *be = bk__backend();
    int64_t ldq = row_stride(p, p->D);
    float *DQ = dq ? dq->data : NULL, *DK = dk ? dk->data : NULL;
#pragma omp parallel for schedule(static) if (blocks_parallel(p, p->D))
    for (int64_t bh = 0; bh < nb; bh++) {
        int64_t b = bh / p->H, h = bh % p->H;
        const float *Pb = P + bh * LS, *Gb = G + bh * LS;
        float *dSb = dS + bh * LS;
        for (int64_t l = 0; l < p->L; l++)
            softmax_row_backward(dSb + l * p->S, Pb + l * p->S, Gb + l * p->S, p->S);
        int64_t oq = head_off(p, b, h, p->L, p->D), ok = head_off(p, b, h, p->S, p->D);
        if (DQ) /* (L, S) @ (S, D) */
            be->sgemm(false, false, p->L, p->D, p->S, p->scale, dSb, p->S, k->data + ok, ldq, 1.0f, DQ + oq,
                      ldq);
        if (DK) /* (S, L) @ (L, D) */
            be->sgemm(true, false, p->S, p->D, p->L, p->scale, dSb, p->S, q->data + oq, ldq, 1.0f, DK + ok,
                      ldq);
    }
}

static const bk_op OP_ATTENTION_WEIGHTS = {"attention_weights", weights_backward};

/* Checks a (B, T, C) / (T, B, C) operand and reads its B and T. */
static bool operand_ok(const char *what, const bk_tensor *t, bool batch_first, int64_t *B, int64_t *T) {
    char s[128];
    if (t->ndim != 3) {
        bk_set_error("attention: %s must be 3-d %s, got %s", what,
                     batch_first ? "(batch, length, heads * head_dim)" : "(length, batch, heads * head_dim)",
                     bk_shape_str(t, s, sizeof s));
        return false;
    }
    *B = batch_first ? t->shape[0] : t->shape[1];
    *T = batch_first ? t->shape[1] : t->shape[0];
    return true;
}

bk_tensor *bk_attention_weights(bk_tensor *q, bk_tensor *k, int64_t num_heads, bool batch_first,
                                bk_tensor *attn_mask, bk_tensor *key_padding_mask, float scale) {
    bk_tensor *in[2] = {q, k};
    if (!bk__inputs_ok("attention_weights", 2, in)) return NULL;
    if (attn_mask && !bk_tensor_ok(attn_mask, "attention_weights: attn_mask")) return NULL;
    if (key_padding_mask && !bk_tensor_ok(key_padding_mask, "attention_weights: key_padding_mask"))
        return NULL;
    char s1[128], s2[128];
    attn_params p = {0};
    p.batch_first = batch_first;
    p.H = num_heads;
    int64_t Bk;
    if (!operand_ok("query", q, batch_first, &p.B, &p.L) || !operand_ok("key", k, batch_first, &Bk, &p.S))
        return NULL;
    if (num_heads < 1 || q->shape[2] % num_heads != 0) {
        bk_set_error("attention: query's last dim %" PRId64 " is not divisible by num_heads=%" PRId64,
                     q->shape[2], num_heads);
        return NULL;
    }
    p.D = q->shape[2] / num_heads;
    if (Bk != p.B || k->shape[2] != q->shape[2]) {
        bk_set_error("attention: key %s does not fit query %s (same batch size and last dim expected)",
                     bk_shape_str(k, s2, sizeof s2), bk_shape_str(q, s1, sizeof s1));
        return NULL;
    }
    if (attn_mask) {
        bool ok2 = attn_mask->ndim == 2 && attn_mask->shape[0] == p.L && attn_mask->shape[1] == p.S;
        bool ok3 = attn_mask->ndim == 3 && attn_mask->shape[0] == p.B * p.H && attn_mask->shape[1] == p.L &&
                   attn_mask->shape[2] == p.S;
        if (!ok2 && !ok3) {
            bk_set_error("attention: attn_mask %s does not fit: expected (L, S) = (%" PRId64 ", %" PRId64
                         ") or (batch * num_heads, L, S) = (%" PRId64 ", %" PRId64 ", %" PRId64 ")",
                         bk_shape_str(attn_mask, s1, sizeof s1), p.L, p.S, p.B * p.H, p.L, p.S);
            return NULL;
        }
    }
    if (key_padding_mask && !(key_padding_mask->ndim == 2 && key_padding_mask->shape[0] == p.B &&
                              key_padding_mask->shape[1] == p.S)) {
        bk_set_error("attention: key_padding_mask %s does not fit: expected (batch, S) = (%" PRId64
                     ", %" PRId64 ")",
                     bk_shape_str(key_padding_mask, s1, sizeof s1), p.B, p.S);
        return NULL;
    }
    p.scale = scale != 0.0f ? scale : (p.D > 0 ? (float)(1.0 / sqrt((double)p.D)) : 1.0f);
    bk_tensor *y = bk__tensor_arena(4, (const int64_t[]){p.B, p.H, p.L, p.S}, false);
    if (!y) {
        bk__error_prefix("attention_weights: num_heads=%" PRId64, p.H);
        return NULL;
    }
    const bk_backend *be = bk__backend();
    int64_t LS = p.L * p.S, nb = p.B * p.H, ld = row_stride(&p, p.D);
    const float *AM = attn_mask ? attn_mask->data : NULL,
                *KPM = key_padding_mask ? key_padding_mask->data : NULL;
    bool mask3 = attn_mask && attn_mask->ndim == 3;
#pragma omp parallel for schedule(static) if (blocks_parallel(&p, p.D))
    for (int64_t bh = 0; bh < nb; bh++) {
        int64_t b = bh / p.H, h = bh % p.H;
        float *Y = y->data + bh * LS;
        be->sgemm(false, true, p.L, p.S, p.D, p.scale, q->data + head_off(&p, b, h, p.L, p.D), ld,
                  k->data + head_off(&p, b, h, p.S, p.D), ld, 0.0f, Y, p.S);
        const float *am = AM ? AM + (mask3 ? bh * LS : 0) : NULL, *kpm = KPM ? KPM + b * p.S : NULL;
        for (int64_t l = 0; l < p.L; l++) softmax_row(Y + l * p.S, p.S, am ? am + l * p.S : NULL, kpm);
    }
    return bk_op_record(&OP_ATTENTION_WEIGHTS, y, 2, in, &p, sizeof p);
}

/* ---- apply: O = P V ------------------------------------------------------------------------- */

static void apply_backward(bk_node *n) {
    const attn_params *p = bk_node_params(n);
    const bk_tensor *P = bk_node_input(n, 0), *v = bk_node_input(n, 1);
    const float *G = bk_node_grad_output(n)->data;
    bk_tensor *dP = bk_node_grad_input(n, 0), *dv = bk_node_grad_input(n, 1);
    if (!dP && !dv) return;
    const bk_backend *be = bk__backend();
    int64_t LS = p->L * p->S, nb = p->B * p->H, ld = row_stride(p, p->Dv);
    float *DP = dP ? dP->data : NULL, *DV = dv ? dv->data : NULL;
#pragma omp parallel for schedule(static) if (blocks_parallel(p, p->Dv))
    for (int64_t bh = 0; bh < nb; bh++) {
        int64_t b = bh / p->H, h = bh % p->H;
        int64_t oo = head_off(p, b, h, p->L, p->Dv), ov = head_off(p, b, h, p->S, p->Dv);
        if (DP) /* (L, Dv) @ (Dv, S) */
            be->sgemm(false, true, p->L, p->S, p->Dv, 1.0f, G + oo, ld, v->data + ov, ld, 1.0f, DP + bh * LS,
                      p->S);
        if (DV) /* (S, L) @ (L, Dv) */
            be->sgemm(true, false, p->S, p->Dv, p->L, 1.0f, P->data + bh * LS, p->S, G + oo, ld, 1.0f,
                      DV + ov, ld);
    }
}

static const bk_op OP_ATTENTION_APPLY = {"attention_apply", apply_backward};

bk_tensor *bk_attention_apply(bk_tensor *weights, bk_tensor *v, bool batch_first) {
    bk_tensor *in[2] = {weights, v};
    if (!bk__inputs_ok("attention_apply", 2, in)) return NULL;
    char s1[128], s2[128];
    if (weights->ndim != 4) {
        bk_set_error("attention: weights must be 4-d (batch, heads, L, S), got %s",
                     bk_shape_str(weights, s1, sizeof s1));
        return NULL;
    }
    attn_params p = {0};
    p.batch_first = batch_first;
    p.B = weights->shape[0], p.H = weights->shape[1], p.L = weights->shape[2], p.S = weights->shape[3];
    int64_t Bv, Sv;
    if (!operand_ok("value", v, batch_first, &Bv, &Sv)) return NULL;
    if (Bv != p.B || Sv != p.S || p.H < 1 || v->shape[2] % p.H != 0) {
        bk_set_error("attention: value %s does not fit weights %s (batch %" PRId64 ", length S = %" PRId64
                     " and a last dim divisible by %" PRId64 " heads expected)",
                     bk_shape_str(v, s1, sizeof s1), bk_shape_str(weights, s2, sizeof s2), p.B, p.S, p.H);
        return NULL;
    }
    p.Dv = v->shape[2] / p.H;
    int64_t shape[3] = {batch_first ? p.B : p.L, batch_first ? p.L : p.B, v->shape[2]};
    bk_tensor *y = bk__tensor_arena(3, shape, false);
    if (!y) return NULL;
    const bk_backend *be = bk__backend();
    int64_t LS = p.L * p.S, nb = p.B * p.H, ld = row_stride(&p, p.Dv);
#pragma omp parallel for schedule(static) if (blocks_parallel(&p, p.Dv))
    for (int64_t bh = 0; bh < nb; bh++) {
        int64_t b = bh / p.H, h = bh % p.H;
        be->sgemm(false, false, p.L, p.Dv, p.S, 1.0f, weights->data + bh * LS, p.S,
                  v->data + head_off(&p, b, h, p.S, p.Dv), ld, 0.0f, y->data + head_off(&p, b, h, p.L, p.Dv),
                  ld);
    }
    return bk_op_record(&OP_ATTENTION_APPLY, y, 2, in, &p, sizeof p);
}

/* ---- the single-head convenience and the masks ------------------------------------------------ */

bk_tensor *bk_scaled_dot_product_attention(bk_tensor *q, bk_tensor *k, bk_tensor *v, bk_tensor *attn_mask,
                                           float dropout_p, bool training, bk_rng *rng) {
    bk_tensor *in[3] = {q, k, v};
    if (!bk__inputs_ok("scaled_dot_product_attention", 3, in)) return NULL;
    /* one head: (B*H, L, S) masks are (B, L, S) */
    bk_tensor *P = bk_attention_weights(q, k, 1, true, attn_mask, NULL, 0.0f); // (B, 1, L, S)
    P = bk_dropout(P, dropout_p, training, rng);
    return bk_attention_apply(P, v, true); // (B, L, Dv)
}

bk_tensor *bk_causal_mask(int64_t size) {
    if (size < 0) {
        bk_set_error("causal_mask: size %" PRId64 " must be non-negative", size);
        return NULL;
    }
    bk_tensor *m = bk_empty(BK_SHAPE(size, size));
    if (!m) return NULL;
    for (int64_t i = 0; i < size; i++)
        for (int64_t j = 0; j < size; j++) m->data[i * size + j] = j > i ? -INFINITY : 0.0f;
    return m;
}

bk_tensor *bk_attn_mask_from_bool(bk_tensor *mask) {
    if (!bk__inputs_ok("attn_mask_from_bool", 1, &mask)) return NULL;
    bk_tensor *m = bk__tensor_arena(mask->ndim, mask->shape, false);
    if (!m) return NULL;
    for (int64_t i = 0; i < m->numel; i++) m->data[i] = mask->data[i] != 0.0f ? -INFINITY : 0.0f;
    return m;
}
