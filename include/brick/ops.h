/* brick/ops.h - part of brick.h: ops: element-wise, reductions, shapes, matmul, convolution, pooling, normalisation, dropout, attention.
 * Include <brick.h>, which includes every part in order and states the ownership and
 * error rules once at its top. */
#ifndef BRICK_PART_OPS_H
#define BRICK_PART_OPS_H

#ifndef BRICK_H
#error "include <brick.h>, not <brick/ops.h>"
#endif

/* ------------------------------------------------------------------------------------ */
/* Ops. Each returns an arena tensor with autograd history, or NULL with an error.      */
/* Binary elementwise ops broadcast as PyTorch does.                                    */
/* ------------------------------------------------------------------------------------ */

bk_tensor *bk_add(bk_tensor *a, bk_tensor *b);    /* a + b */
bk_tensor *bk_sub(bk_tensor *a, bk_tensor *b);    /* a - b */
bk_tensor *bk_mul(bk_tensor *a, bk_tensor *b);    /* a * b */
bk_tensor *bk_div(bk_tensor *a, bk_tensor *b);    /* a / b */
bk_tensor *bk_add_scalar(bk_tensor *a, float s);  /* a + s */
bk_tensor *bk_mul_scalar(bk_tensor *a, float s);  /* a * s */
bk_tensor *bk_div_scalar(bk_tensor *a, float s);  /* a / s */
bk_tensor *bk_rsub_scalar(bk_tensor *a, float s); /* s - a */
bk_tensor *bk_neg(bk_tensor *a);                  /* -a */
bk_tensor *bk_abs(bk_tensor *a);                  /* |a|, d/da = sign(a) (0 at 0) */
bk_tensor *bk_exp(bk_tensor *a);                  /* e^a */
bk_tensor *bk_log(bk_tensor *a);                  /* ln a */
bk_tensor *bk_sqrt(bk_tensor *a);                 /* sqrt a */
bk_tensor *bk_pow_scalar(bk_tensor *a, float p);  /* a^p, d/da = p a^(p-1) */
bk_tensor *bk_pow(bk_tensor *a, bk_tensor *b);    /* a^b (a > 0 for d/db) */
bk_tensor *bk_relu(bk_tensor *a);                 /* max(a, 0), d/da = [a > 0] */
bk_tensor *bk_sigmoid(bk_tensor *a);              /* 1 / (1 + e^-a) */
bk_tensor *bk_tanh(bk_tensor *a);                 /* tanh a */
bk_tensor *bk_gelu(bk_tensor *a);                 /* x Phi(x), exact (erf) */
bk_tensor *bk_gelu_tanh(bk_tensor *a);            /* GELU, tanh approximation */
bk_tensor *bk_silu(bk_tensor *a);                 /* a sigmoid(a) (SiLU, swish) */
bk_tensor *bk_mish(bk_tensor *a);                 /* a tanh(softplus(a)) (Mish) */
bk_tensor *bk_hardswish(bk_tensor *a);            /* a relu6(a + 3) / 6 */
bk_tensor *bk_hardsigmoid(bk_tensor *a);          /* relu6(a + 3) / 6 */
/* F.leaky_relu: a > 0 ? a : negative_slope a; F.elu: a > 0 ? a : alpha (e^a - 1) */
bk_tensor *bk_leaky_relu(bk_tensor *a, float negative_slope);
bk_tensor *bk_elu(bk_tensor *a, float alpha);
/* F.softplus: ln(1 + e^(beta a)) / beta, or a where beta a > threshold (torch: 1, 20) */
bk_tensor *bk_softplus(bk_tensor *a, float beta, float threshold);
/* torch.clamp: min(max(a, lo), hi) (NaN stays NaN); d/da = [lo <= a <= hi]. One side only:
 * pass -INFINITY or INFINITY for the other. */
bk_tensor *bk_clamp(bk_tensor *a, float lo, float hi);
bk_tensor *bk_maximum(bk_tensor *a, bk_tensor *b); /* torch.maximum: NaN wins, a tie halves g */
bk_tensor *bk_minimum(bk_tensor *a, bk_tensor *b); /* torch.minimum */
/* a > 0 ? a : w a, w broadcast as any binary op: F.prelu(x (N, C, ...), w (C)) is
 * bk_prelu(x, w reshaped to (C, 1, ..., 1)) (nn.PReLU, bk_nn_prelu, does it) */
bk_tensor *bk_prelu(bk_tensor *a, bk_tensor *w);

/* (..., M, K) @ (..., K, N) -> (..., M, N); batch dims broadcast; 1-d operands are
 * promoted as in torch.matmul. */
bk_tensor *bk_matmul(bk_tensor *a, bk_tensor *b);
/* torch.nn.functional.linear: x (..., in) @ w(out, in)^T + b(out) -> (..., out). b may be NULL. */
bk_tensor *bk_linear(bk_tensor *x, bk_tensor *w, bk_tensor *b);

/* Reductions. dim may be negative (counts from the end). */
bk_tensor *bk_sum(bk_tensor *a); /* all -> rank 0 */
bk_tensor *bk_mean(bk_tensor *a);
bk_tensor *bk_max(bk_tensor *a); /* ties share the gradient evenly, as torch's max() */
bk_tensor *bk_sum_dim(bk_tensor *a, int dim, bool keepdim);
bk_tensor *bk_mean_dim(bk_tensor *a, int dim, bool keepdim);
bk_tensor *bk_max_dim(bk_tensor *a, int dim, bool keepdim); /* grad to the first maximum */

/* Comparisons: 1.0 where true, 0.0 elsewhere; no gradient. Broadcasting. */
bk_tensor *bk_gt(bk_tensor *a, bk_tensor *b);
bk_tensor *bk_lt(bk_tensor *a, bk_tensor *b);
bk_tensor *bk_eq(bk_tensor *a, bk_tensor *b);

/* Shapes. reshape/view/flatten share storage with their input; one -1 is inferred.
 * transpose/permute return a contiguous copy. */
bk_tensor *bk_reshape(bk_tensor *a, int ndim, const int64_t *shape);
bk_tensor *bk_flatten(bk_tensor *a, int start_dim, int end_dim);
bk_tensor *bk_transpose(bk_tensor *a, int dim0, int dim1);
bk_tensor *bk_permute(bk_tensor *a, const int *dims); /* dims has a->ndim entries */
bk_tensor *bk_concat(int n, bk_tensor *const *ts, int dim);
/* Elements start..end-1 along dim (torch's narrow / a[..., start:end]). */
bk_tensor *bk_slice(bk_tensor *a, int dim, int64_t start, int64_t end);
/* Index i along dim, which is removed (a[i] for dim 0). */
bk_tensor *bk_select(bk_tensor *a, int dim, int64_t index);
bk_tensor *bk_clone(bk_tensor *a);

/* Indexing. Indices are float tensors holding integers (as bk_embedding's ids), never given
 * a gradient; one that is not an integer in range is an error naming it. */
/* torch.gather: y[c] = x[c with c_dim = index[c]]; index has x's rank and is no larger than
 * x in any dim but dim; y has index's shape. */
bk_tensor *bk_gather(bk_tensor *x, int dim, bk_tensor *index);
/* torch.scatter_add (out of place): y = x, then y[c with c_dim = index[c]] += src[c] for
 * every c of index (index has x's rank, no larger than src anywhere nor than x but in dim). */
bk_tensor *bk_scatter_add(bk_tensor *x, int dim, bk_tensor *index, bk_tensor *src);
/* torch.index_select: the entries index[j] (index 1-d) along dim. */
bk_tensor *bk_index_select(bk_tensor *x, int dim, bk_tensor *index);
/* torch.where: cond != 0 ? a : b, all three broadcast together; cond gets no gradient. */
bk_tensor *bk_where(bk_tensor *cond, bk_tensor *a, bk_tensor *b);
/* torch.masked_fill: mask != 0 ? value : x; mask broadcasts to x's shape. */
bk_tensor *bk_masked_fill(bk_tensor *x, bk_tensor *mask, float value);
/* torch.stack: n tensors of one shape joined along a new dim (0 .. rank). */
bk_tensor *bk_stack(int n, bk_tensor *const *ts, int dim);
/* torch.split(x, split_size, dim) / torch.chunk(x, chunks, dim): pieces along dim (each a
 * copy with autograd history) into out[0..]; the last may be smaller. Returns how many, or
 * -1 with an error (also when they would be more than max_out). */
int bk_split(bk_tensor *x, int64_t split_size, int dim, bk_tensor **out, int max_out);
int bk_chunk(bk_tensor *x, int chunks, int dim, bk_tensor **out, int max_out);

/* More reductions along dim. Sums run in double. */
bk_tensor *bk_cumsum(bk_tensor *x, int dim);                  /* torch.cumsum */
bk_tensor *bk_logsumexp(bk_tensor *x, int dim, bool keepdim); /* ln sum e^x, stable */
/* torch.norm(x, p) over all elements (rank 0), or over dim: (sum |x|^p)^(1/p), p > 0 */
bk_tensor *bk_norm(bk_tensor *x, float p);
bk_tensor *bk_norm_dim(bk_tensor *x, float p, int dim, bool keepdim);
/* torch.argmax / argmin over dim: the first extreme (NaN counts as largest), as float
 * indices; no gradient. */
bk_tensor *bk_argmax(bk_tensor *x, int dim, bool keepdim);
bk_tensor *bk_argmin(bk_tensor *x, int dim, bool keepdim);
/* torch.min(x, dim).values: gradient to the first minimum (indices: bk_argmin). */
bk_tensor *bk_min_dim(bk_tensor *x, int dim, bool keepdim);
/* torch.topk(x, k, dim, largest, sorted=True): the values (gradient to the chosen
 * elements); *indices (if not NULL) gets their float indices. Ties keep index order. */
bk_tensor *bk_topk(bk_tensor *x, int64_t k, int dim, bool largest, bk_tensor **indices);

/* ------------------------------------------------------------------------------------ */
/* Convolution, pooling, normalisation, dropout (NCHW)                                  */
/* ------------------------------------------------------------------------------------ */

typedef struct bk_conv2d_opts {
    int64_t stride[2], padding[2], dilation[2], groups;
} bk_conv2d_opts;
#define BK_CONV2D_DEFAULTS ((bk_conv2d_opts){{1, 1}, {0, 0}, {1, 1}, 1})

/* F.conv2d: x (N, C, H, W), w (O, C/groups, KH, KW), b (O) or NULL -> (N, O, OH, OW). */
bk_tensor *bk_conv2d(bk_tensor *x, bk_tensor *w, bk_tensor *b, bk_conv2d_opts opts);

/* F.conv_transpose2d: x (N, C, H, W), w (C, O/groups, KH, KW), b (O) or NULL -> (N, O, OH, OW),
 *   OH = (H - 1) SH - 2 PH + DH (KH - 1) + OPH + 1 (likewise OW); output_padding must be
 * smaller than stride or dilation (per dim), as in torch. */
typedef struct bk_conv_transpose2d_opts {
    int64_t stride[2], padding[2], output_padding[2], dilation[2], groups;
} bk_conv_transpose2d_opts;
#define BK_CONV_TRANSPOSE2D_DEFAULTS ((bk_conv_transpose2d_opts){{1, 1}, {0, 0}, {0, 0}, {1, 1}, 1})
bk_tensor *bk_conv_transpose2d(bk_tensor *x, bk_tensor *w, bk_tensor *b, bk_conv_transpose2d_opts opts);
/* F.conv1d and F.conv_transpose1d on (N, C, L): the 2-d ops on a height-1 view, weights
 * (O, C/groups, K) and (C, O/groups, K). */
typedef struct bk_conv1d_opts {
    int64_t stride, padding, dilation, groups;
} bk_conv1d_opts;
#define BK_CONV1D_DEFAULTS ((bk_conv1d_opts){1, 0, 1, 1})
bk_tensor *bk_conv1d(bk_tensor *x, bk_tensor *w, bk_tensor *b, bk_conv1d_opts opts);
typedef struct bk_conv_transpose1d_opts {
    int64_t stride, padding, output_padding, dilation, groups;
} bk_conv_transpose1d_opts;
#define BK_CONV_TRANSPOSE1D_DEFAULTS ((bk_conv_transpose1d_opts){1, 0, 0, 1, 1})
bk_tensor *bk_conv_transpose1d(bk_tensor *x, bk_tensor *w, bk_tensor *b, bk_conv_transpose1d_opts opts);

typedef struct bk_pool2d_opts {
    int64_t kernel[2], stride[2], padding[2];
} bk_pool2d_opts;
/* F.max_pool2d / F.avg_pool2d (floor mode; avg counts padding, torch's defaults). */
bk_tensor *bk_max_pool2d(bk_tensor *x, bk_pool2d_opts opts);
bk_tensor *bk_avg_pool2d(bk_tensor *x, bk_pool2d_opts opts);
/* F.max_pool2d(x, kernel, stride, padding, dilation, ceil_mode) and F.avg_pool2d(x, kernel,
 * stride, padding, ceil_mode, count_include_pad): ceil_mode rounds the output size up (a
 * last window may then hang over the padded input; it is dropped if it would start past the
 * input and its left padding); dilation spaces max pooling's taps; count_include_pad false
 * divides by the window's values inside the input only. */
bk_tensor *bk_max_pool2d_ex(bk_tensor *x, bk_pool2d_opts opts, const int64_t dilation[2], bool ceil_mode);
bk_tensor *bk_avg_pool2d_ex(bk_tensor *x, bk_pool2d_opts opts, bool ceil_mode, bool count_include_pad);
/* F.interpolate on x (N, C, H, W) -> (N, C, OH, OW): to size (OH, OW) when size is given
 * (both > 0, scale_factor {0, 0}), else by scale_factor (both > 0, size {0, 0}):
 * OH = floor(H scale_factor[0]), and the source coordinates use 1 / scale_factor, as torch
 * does (recompute_scale_factor=None). mode nearest (torch's 'nearest', floor) or bilinear;
 * align_corners only with bilinear. */
typedef enum bk_interp_mode { BK_INTERP_NEAREST = 0, BK_INTERP_BILINEAR, BK_INTERP_COUNT } bk_interp_mode;
typedef struct bk_interp_opts {
    int64_t size[2];
    double scale_factor[2];
    bk_interp_mode mode;
    bool align_corners;
} bk_interp_opts;
bk_tensor *bk_interpolate(bk_tensor *x, bk_interp_opts opts);
/* F.adaptive_avg_pool2d to (out_h, out_w). */
bk_tensor *bk_adaptive_avg_pool2d(bk_tensor *x, int64_t out_h, int64_t out_w);

/* F.batch_norm over channel dim 1 of x (N, C, ...). training: batch statistics, and the
 * running stats are updated in place (running = (1 - momentum) running + momentum stat,
 * variance unbiased); otherwise the running stats are used. */
bk_tensor *bk_batch_norm(bk_tensor *x, bk_tensor *running_mean, bk_tensor *running_var, bk_tensor *weight,
                         bk_tensor *bias, bool training, float momentum, float eps);
/* F.layer_norm over the last n_norm_dims dims; weight and bias have those dims' shape. */
bk_tensor *bk_layer_norm(bk_tensor *x, int n_norm_dims, bk_tensor *weight, bk_tensor *bias, float eps);
/* F.group_norm: x (N, C, *) normalised over each of num_groups groups of C / num_groups
 * channels (and all positions), per sample; then weight[c] xhat + bias[c] (weight and bias
 * (C) may be NULL: no affine; bias needs weight). C % num_groups must be 0. */
bk_tensor *bk_group_norm(bk_tensor *x, int64_t num_groups, bk_tensor *weight, bk_tensor *bias, float eps);
/* F.dropout: in training, zeroes each element with probability p (from rng, NULL = the
 * thread's default) and scales the rest by 1 / (1 - p); otherwise returns x. */
bk_tensor *bk_dropout(bk_tensor *x, float p, bool training, bk_rng *rng);

/* ------------------------------------------------------------------------------------ */
/* Attention and Transformers                                                           */
/* ------------------------------------------------------------------------------------ */

/* B = batch, L = target (query) length, S = source (key) length, E = embed_dim,
 * H = heads, D = E / H. Sequences are (L, B, E), torch's default, or (B, L, E) with
 * batch_first. Masks are float tensors that never get a gradient:
 *   attn_mask (L, S) or (B*H, L, S) (block b*H + h), ADDITIVE: 0 lets a query see a key,
 *     -inf forbids it (other values are added to the scores). A boolean mask (nonzero =
 *     forbidden, torch's True) converts with bk_attn_mask_from_bool; bk_causal_mask makes
 *     the causal one.
 *   key_padding_mask (B, S), BOOLEAN: a nonzero entry marks a padding key that no query
 *     sees (torch's True).
 * The softmax subtracts the row maximum, so it stays finite for any finite scores. A query
 * that may see no key at all (its whole row masked) gets NaN weights, and NaN outputs and
 * gradients follow from them, exactly as in PyTorch 1.13's nn.MultiheadAttention (which
 * gives NaN there in training and in eval mode; only TransformerEncoder's eval-mode
 * nested-tensor fast path returns 0 for padded positions). */

/* F.embedding: out[..., :] = weight[ids[...], :]. ids (any shape) holds integer ids as
 * floats, each in [0, num_embeddings); weight (num_embeddings, dim) -> (*ids.shape, dim).
 * padding_idx in [0, num_embeddings), or -1 for none: that row gets no gradient. ids get
 * no gradient. An id out of range or not an integer is an error naming it. */
bk_tensor *bk_embedding(bk_tensor *ids, bk_tensor *weight, int64_t padding_idx);
/* The same with scale_grad_by_freq: each lookup's gradient is divided by the number of
 * times its id occurs in ids (F.embedding(..., scale_grad_by_freq=True)); not the
 * derivative of the forward by design, so it is checked against torch's values rather than
 * central differences (tests/parity/gen_transformer.py, case embedding_freq). */
bk_tensor *bk_embedding_ex(bk_tensor *ids, bk_tensor *weight, int64_t padding_idx, bool scale_grad_by_freq);

/* Multi-head attention weights (nn.MultiheadAttention's softmax), one fused op:
 *   P[b, h] = softmax(scale * Q_bh K_bh^T + attn_mask_bh, -inf at padding keys)  (rows of S)
 * q (B, L, H*D) and k (B, S, H*D) with batch_first, else (L, B, H*D) and (S, B, H*D);
 * Q_bh is head h's columns h*D .. h*D+D-1 of batch b (read in place, no copy).
 * scale 0 means 1/sqrt(D). Returns P (B, H, L, S). Masks may be NULL. */
bk_tensor *bk_attention_weights(bk_tensor *q, bk_tensor *k, int64_t num_heads, bool batch_first,
                                bk_tensor *attn_mask, bk_tensor *key_padding_mask, float scale);
/* The weighted values: O_bh = P[b, h] V_bh, written into head h's columns of O.
 * weights (B, H, L, S), v (B, S, H*Dv) or (S, B, H*Dv) -> (B, L, H*Dv) or (L, B, H*Dv). */
bk_tensor *bk_attention_apply(bk_tensor *weights, bk_tensor *v, bool batch_first);
/* Single-head scaled dot-product attention, softmax(q k^T / sqrt(D) + attn_mask) v with
 * dropout on the weights: q (B, L, D), k (B, S, D), v (B, S, Dv), attn_mask (L, S) or
 * (B, L, S) additive or NULL -> (B, L, Dv). */
bk_tensor *bk_scaled_dot_product_attention(bk_tensor *q, bk_tensor *k, bk_tensor *v, bk_tensor *attn_mask,
                                           float dropout_p, bool training, bk_rng *rng);
/* The causal mask (size, size): 0 on and below the diagonal, -inf above
 * (nn.Transformer.generate_square_subsequent_mask). Arena tensor. */
bk_tensor *bk_causal_mask(int64_t size);
/* A boolean mask (nonzero = forbidden) as an additive one (-inf / 0). Arena tensor. */
bk_tensor *bk_attn_mask_from_bool(bk_tensor *mask);

/* nn.Embedding(num_embeddings, embedding_dim): weight N(0, 1). bk_forward(m, ids) looks
 * the ids up (see bk_embedding). The _padded form is nn.Embedding(..., padding_idx):
 * negative padding_idx counts from the end, as in torch; that row starts at zero and gets
 * no gradient. */
bk_module *bk_nn_embedding(int64_t num_embeddings, int64_t embedding_dim);
bk_module *bk_nn_embedding_padded(int64_t num_embeddings, int64_t embedding_dim, int64_t padding_idx);
/* Every option brick has: padded false is torch's padding_idx=None (padding_idx then
 * ignored); scale_grad_by_freq as bk_embedding_ex. (max_norm is not supported.) */
bk_module *bk_nn_embedding_ex(int64_t num_embeddings, int64_t embedding_dim, bool padded, int64_t padding_idx,
                              bool scale_grad_by_freq);
/* D2L's PositionalEncoding(num_hiddens, dropout, max_len) ("Attention is all you need"):
 *   P[pos, 2i] = sin(pos / 10000^(2i / d)),  P[pos, 2i + 1] = cos(pos / 10000^(2i / d))
 * kept as a non-persistent buffer "P" (1, max_len, d) (computed in double, rounded once);
 * forward(X) = dropout(X + P[:, :T]) for X (B, T, d) or (T, d). Child "dropout".
 * T > max_len is an error. */
bk_module *bk_nn_positional_encoding(int64_t num_hiddens, float dropout, int64_t max_len);
/* A learned positional embedding: parameter "weight" (max_len, d), N(0, 1) (as an
 * nn.Embedding over positions); forward(X) = X + weight[:T] for X (B, T, d) or (T, d).
 * T > max_len is an error naming both. */
bk_module *bk_nn_learned_positional_embedding(int64_t max_len, int64_t num_hiddens);

/* nn.MultiheadAttention(embed_dim, num_heads, dropout, bias, batch_first) with
 * kdim = vdim = embed_dim: parameters in_proj_weight (3E, E) (xavier_uniform_),
 * in_proj_bias (3E) (zeros; absent without bias) and child out_proj, a
 * NonDynamicallyQuantizableLinear(E, E) (Linear's init, bias zero), as torch names them.
 * embed_dim must be divisible by num_heads. bk_forward(m, x) is self-attention without
 * masks. dropout applies to the attention weights in training mode. */
bk_module *bk_nn_multihead_attention(int64_t embed_dim, int64_t num_heads, float dropout, bool bias,
                                     bool batch_first);
/* MultiheadAttention.forward(query, key, value, key_padding_mask, need_weights, attn_mask,
 * average_attn_weights): query (L, B, E) / (B, L, E), key and value (S, B, E) / (B, S, E)
 * (or unbatched (L, E), (S, E)); masks as described at the top of this section, or NULL.
 * Returns the output, shaped like query. attn_weights may be NULL; otherwise it is set to
 * NULL, or with need_weights to the attention weights (after dropout, with autograd
 * history, as torch returns them): averaged over heads (B, L, S) or per head (B, H, L, S)
 * (unbatched: (L, S), (H, L, S)). key_padding_mask is boolean only (torch 1.13 also takes
 * an additive float one; put that in a (B*H, L, S) attn_mask instead). Errors name the
 * layer and the shapes. */
bk_tensor *bk_mha_forward(bk_module *m, bk_tensor *query, bk_tensor *key, bk_tensor *value,
                          bk_tensor *key_padding_mask, bk_tensor *attn_mask, bool need_weights,
                          bool average_attn_weights, bk_tensor **attn_weights);

typedef enum bk_activation {
    BK_ACTIVATION_RELU = 0, /* torch's default, F.relu */
    BK_ACTIVATION_GELU,     /* F.gelu, exact (erf) */
    BK_ACTIVATION_COUNT
} bk_activation;

/* The arguments of nn.TransformerEncoderLayer / nn.TransformerDecoderLayer. */
typedef struct bk_transformer_config {
    int64_t d_model, nhead, dim_feedforward;
    float dropout;
    bk_activation activation;
    float layer_norm_eps;
    bool batch_first, norm_first;
} bk_transformer_config;
/* torch's defaults: dim_feedforward 2048, dropout 0.1, relu, eps 1e-5, (L, B, E), post-norm */
#define BK_TRANSFORMER_DEFAULTS(d_model_, nhead_) \
    ((bk_transformer_config){(d_model_), (nhead_), 2048, 0.1f, BK_ACTIVATION_RELU, 1e-5f, false, false})

/* nn.TransformerEncoderLayer: children self_attn (MultiheadAttention), linear1 (d_model ->
 * dim_feedforward), dropout, linear2, norm1, norm2 (LayerNorm), dropout1, dropout2, each
 * initialised as torch does. With x the input:
 *   post-norm: x = norm1(x + dropout1(sa(x))); x = norm2(x + dropout2(ff(x)))
 *   norm_first: x = x + dropout1(sa(norm1(x))); x = x + dropout2(ff(norm2(x)))
 * ff(x) = linear2(dropout(act(linear1(x)))). bk_forward(m, src) runs it without masks. */
bk_module *bk_nn_transformer_encoder_layer(bk_transformer_config cfg);
bk_tensor *bk_transformer_encoder_layer_forward(bk_module *m, bk_tensor *src, bk_tensor *src_mask,
                                                bk_tensor *src_key_padding_mask);
/* nn.TransformerDecoderLayer: children self_attn, multihead_attn, linear1, dropout,
 * linear2, norm1, norm2, norm3, dropout1, dropout2, dropout3:
 *   post-norm: x = norm1(x + sa(x)); x = norm2(x + mha(x, memory)); x = norm3(x + ff(x))
 *   norm_first: x = x + sa(norm1(x)); x = x + mha(norm2(x), memory); x = x + ff(norm3(x))
 * (each block followed by its dropout). It needs the memory, so bk_forward fails on it. */
bk_module *bk_nn_transformer_decoder_layer(bk_transformer_config cfg);
bk_tensor *bk_transformer_decoder_layer_forward(bk_module *m, bk_tensor *tgt, bk_tensor *memory,
                                                bk_tensor *tgt_mask, bk_tensor *memory_mask,
                                                bk_tensor *tgt_key_padding_mask,
                                                bk_tensor *memory_key_padding_mask);
/* nn.TransformerEncoder(encoder_layer, num_layers, norm) / nn.TransformerDecoder: child
 * "layers", a ModuleList "0" .. "num_layers-1" of copies of the layer (same settings and
 * parameter values, like torch's deepcopy; the given layer itself becomes layers.0), then
 * "norm" when norm is not NULL (applied to the last layer's output). Takes ownership of
 * the layer and of norm, also on failure. The layer must come from the matching
 * bk_nn_transformer_*_layer. */
bk_module *bk_nn_transformer_encoder(bk_module *encoder_layer, int num_layers, bk_module *norm);
bk_tensor *bk_transformer_encoder_forward(bk_module *m, bk_tensor *src, bk_tensor *mask,
                                          bk_tensor *src_key_padding_mask);
bk_module *bk_nn_transformer_decoder(bk_module *decoder_layer, int num_layers, bk_module *norm);
bk_tensor *bk_transformer_decoder_forward(bk_module *m, bk_tensor *tgt, bk_tensor *memory,
                                          bk_tensor *tgt_mask, bk_tensor *memory_mask,
                                          bk_tensor *tgt_key_padding_mask,
                                          bk_tensor *memory_key_padding_mask);
/* nn.Transformer(d_model, nhead, num_encoder_layers, num_decoder_layers, dim_feedforward,
 * dropout, activation, layer_norm_eps, batch_first, norm_first) (torch's defaults: cfg
 * BK_TRANSFORMER_DEFAULTS(512, 8), 6 and 6 layers): children encoder, a
 * TransformerEncoder of num_encoder_layers layers with a final LayerNorm(d_model,
 * layer_norm_eps) "norm", and decoder, the same of TransformerDecoder layers; every
 * parameter of rank > 1 then drawn with xavier_uniform_, as torch's _reset_parameters.
 * bk_transformer_forward(src, tgt, src_mask, tgt_mask, memory_mask, src_key_padding_mask,
 * tgt_key_padding_mask, memory_key_padding_mask) = decoder(tgt, encoder(src, src_mask,
 * src_key_padding_mask), ...): src (S, N, E), tgt (T, N, E) (batch_first: (N, S, E),
 * (N, T, E); or unbatched) -> (T, N, E); masks as above, any may be NULL (the causal
 * tgt_mask is bk_causal_mask(T), torch's generate_square_subsequent_mask). Batched src and
 * tgt of different batch sizes, or whose last dim is not d_model, are an error naming
 * both shapes. bk_forward(m, x) fails: the model needs tgt. */
bk_module *bk_nn_transformer(bk_transformer_config cfg, int num_encoder_layers, int num_decoder_layers);
bk_tensor *bk_transformer_forward(bk_module *m, bk_tensor *src, bk_tensor *tgt, bk_tensor *src_mask,
                                  bk_tensor *tgt_mask, bk_tensor *memory_mask,
                                  bk_tensor *src_key_padding_mask, bk_tensor *tgt_key_padding_mask,
                                  bk_tensor *memory_key_padding_mask);

#endif /* BRICK_PART_OPS_H */
