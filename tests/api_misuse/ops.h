/* api_misuse/ops.h - the API misuse sweep: ops (the element-wise ones from their rows,
 * matmul, reductions, shapes, CNN, attention) and losses.
 *
 * Part of tests/test_api_misuse.c, which includes it after its harness (MISUSE, ACCEPTS,
 * CANNOT_FAIL, EACH_BAD_TENSOR, ...): the sweep's completeness check must see the calls of
 * every part in one process. Not a header of its own.
 */
#include "ops/elementwise_ops.h" /* the element-wise ops, one row each: all are swept */

/* ---- ops ------------------------------------------------------------------------------------------ */

/* record_call reads the function a check calls from the check's text, so no loop over
 * function pointers: each call is spelled out, here by these macros, one per row. */
#define UNARY(fn, who) EACH_BAD_TENSOR(who, fn(T))
#define SCALAR(fn, who) EACH_BAD_TENSOR(who, fn(T, 2.0f))
#define SCALAR2(fn, who) EACH_BAD_TENSOR(who, fn(T, 1.0f, 2.0f))
#define BINARY(fn, who)                                                                    \
    do {                                                                                   \
        EACH_BAD_TENSOR(who, fn(T, x));                                                    \
        EACH_BAD_TENSOR(who, fn(x, T));                                                    \
        MISUSE(fn(x, bk_rand(BK_SHAPE(4))), who, "(2, 3)", "(4,)", "cannot be broadcast"); \
    } while (0)

/* every row of src/ops/elementwise_ops.h: bk_<name> with each bad tensor, and a bad
 * broadcast for the binary ones */
TEST(elementwise_ops) {
    bk_tensor *x = bk_rand(BK_SHAPE(2, 3));
#define X_BINARY(name, ...) BINARY(bk_##name, #name);
#define X_SCALAR(name, ...) SCALAR(bk_##name, #name);
#define X_UNARY(name, ...) UNARY(bk_##name, #name);
#define X_SCALAR2(name, ...) SCALAR2(bk_##name, #name);
    BK_BINARY_OPS(X_BINARY)
    BK_COMPARE_OPS(X_BINARY)
    BK_SCALAR_OPS(X_SCALAR)
    BK_UNARY_OPS(X_UNARY)
    BK_SCALAR2_OPS(X_SCALAR2)
#undef X_BINARY
#undef X_SCALAR
#undef X_UNARY
#undef X_SCALAR2
}

TEST(matmul_reduce_ops) {
    bk_tensor *a = bk_rand(BK_SHAPE(2, 3)), *b = bk_rand(BK_SHAPE(3, 4));
    EACH_BAD_TENSOR("matmul", bk_matmul(T, b));
    EACH_BAD_TENSOR("matmul", bk_matmul(a, T));
    MISUSE(bk_matmul(a, a), "matmul", "2x3 and 2x3");
    MISUSE(bk_matmul(bk_scalar(1), b), "matmul", "0D");
    MISUSE(bk_matmul(bk_rand(BK_SHAPE(5)), b), "matmul", "cannot be multiplied");
    bk_tensor *w = bk_rand(BK_SHAPE(4, 3)), *bias = bk_rand(BK_SHAPE(4));
    EACH_BAD_TENSOR("linear", bk_linear(T, w, bias));
    EACH_BAD_TENSOR("linear", bk_linear(a, T, bias));
    T = STALE;
    MISUSE(bk_linear(a, w, T), "linear", "input 2", "arena was reset");
    T = &FOREIGN;
    MISUSE(bk_linear(a, w, T), "linear", "input 2", "not a brick tensor");
    ACCEPTS(bk_linear(a, w, NULL) != NULL, "bias NULL: no bias");
    MISUSE(bk_linear(a, bk_rand(BK_SHAPE(4)), NULL), "linear", "weight (4,)");
    MISUSE(bk_linear(bk_scalar(1), w, NULL), "linear", "input ()");
    MISUSE(bk_linear(bk_rand(BK_SHAPE(2, 5)), w, NULL), "linear", "(2, 5)", "in_features=3");
    MISUSE(bk_linear(a, w, bk_rand(BK_SHAPE(5))), "linear", "bias (5,)");

    EACH_BAD_TENSOR("sum", bk_sum(T));
    EACH_BAD_TENSOR("mean", bk_mean(T));
    EACH_BAD_TENSOR("max", bk_max(T));
    MISUSE(bk_max(bk_zeros(BK_SHAPE(0, 3))), "max", "empty");
    EACH_BAD_TENSOR("sum", bk_sum_dim(T, 0, false));
    EACH_BAD_TENSOR("mean", bk_mean_dim(T, 0, false));
    EACH_BAD_TENSOR("max", bk_max_dim(T, 0, false));
    const int dims[4] = {2, -3, INT32_MAX, INT32_MIN};
    for (int i = 0; i < 4; i++) {
        MISUSE(bk_sum_dim(a, dims[i], false), "sum", "out of range for a tensor of rank 2");
        MISUSE(bk_mean_dim(a, dims[i], true), "mean", "out of range");
        MISUSE(bk_max_dim(a, dims[i], false), "max", "out of range");
    }
    MISUSE(bk_max_dim(bk_zeros(BK_SHAPE(2, 0)), 1, false), "max", "empty");
}

TEST(shape_ops) {
    bk_tensor *a = bk_rand(BK_SHAPE(2, 3));
    int64_t nine[BK_MAX_DIMS + 1];
    for (int i = 0; i <= BK_MAX_DIMS; i++) nine[i] = 1;
    EACH_BAD_TENSOR("reshape", bk_reshape(T, BK_SHAPE(6)));
    MISUSE(bk_reshape(a, 1, NULL), "reshape", "rank 1");
    MISUSE(bk_reshape(a, -1, nine), "reshape", "rank -1");
    MISUSE(bk_reshape(a, BK_MAX_DIMS + 1, nine), "reshape", "rank 9");
    MISUSE(bk_reshape(a, BK_SHAPE(-2, 3)), "reshape", "invalid shape (-2, 3)");
    MISUSE(bk_reshape(a, BK_SHAPE(-1, -1)), "reshape", "only one dimension can be inferred");
    MISUSE(bk_reshape(a, BK_SHAPE(4, 2)), "reshape", "(4, 2)", "6 elements");
    MISUSE(bk_reshape(a, BK_SHAPE(INT64_MAX, 2)), "reshape", "invalid shape");

    EACH_BAD_TENSOR("flatten", bk_flatten(T, 0, -1));
    MISUSE(bk_flatten(a, 2, -1), "flatten", "dimension 2");
    MISUSE(bk_flatten(a, 0, -3), "flatten", "dimension -3");
    MISUSE(bk_flatten(a, 1, 0), "flatten", "start_dim 1 comes after end_dim 0");
    EACH_BAD_TENSOR("transpose", bk_transpose(T, 0, 1));
    MISUSE(bk_transpose(a, 0, 2), "transpose", "dimension 2");
    MISUSE(bk_transpose(a, INT32_MIN, 0), "transpose", "out of range");
    const int perm[2] = {1, 0}, bad[2] = {0, 5}, rep[2] = {1, -1};
    EACH_BAD_TENSOR("permute", bk_permute(T, perm));
    MISUSE(bk_permute(a, NULL), "permute", "dims is NULL");
    MISUSE(bk_permute(a, bad), "permute", "dimension 5");
    MISUSE(bk_permute(a, rep), "permute", "repeats");

    bk_tensor *pair[2] = {a, a};
    MISUSE(bk_concat(0, pair, 0), "concat", "non-empty");
    MISUSE(bk_concat(-1, pair, 0), "concat", "non-empty");
    MISUSE(bk_concat(2, NULL, 0), "concat", "non-empty");
    pair[1] = T;
    EACH_BAD_TENSOR("concat", (pair[1] = T, bk_concat(2, pair, 0)));
    pair[1] = a;
    MISUSE(bk_concat(2, pair, 2), "concat", "dimension 2");
    MISUSE(bk_concat(2, pair, -3), "concat", "dimension -3");
    pair[1] = bk_rand(BK_SHAPE(2, 4));
    MISUSE(bk_concat(2, pair, 0), "concat", "(2, 4)", "(2, 3)");

    EACH_BAD_TENSOR("slice", bk_slice(T, 0, 0, 1));
    MISUSE(bk_slice(a, 2, 0, 1), "slice", "dimension 2");
    MISUSE(bk_slice(a, 1, -1, 2), "slice", "[-1, 2)");
    MISUSE(bk_slice(a, 1, 2, 1), "slice", "[2, 1)");
    MISUSE(bk_slice(a, 1, 0, 4), "slice", "[0, 4)", "(2, 3)");
    MISUSE(bk_slice(a, 1, INT64_MIN, INT64_MAX), "slice", "outside dimension 1");
    EACH_BAD_TENSOR("select", bk_select(T, 0, 0));
    MISUSE(bk_select(a, 2, 0), "select", "dimension 2");
    MISUSE(bk_select(a, 0, 2), "select", "index 2");
    MISUSE(bk_select(a, 0, -3), "select", "out of range");
    MISUSE(bk_select(a, 0, INT64_MIN), "select", "out of range");
    EACH_BAD_TENSOR("clone", bk_clone(T));
}

/* gather, scatter_add, index_select, where, masked_fill, stack, split, chunk (index.c) and
 * cumsum, logsumexp, norm, argmax, argmin, min over a dim, topk (reduce_ext.c) */
TEST(index_ops) {
    bk_tensor *x = bk_rand(BK_SHAPE(2, 3)), *i2 = bk_zeros(BK_SHAPE(2, 2)),
              *bad = bk_full(BK_SHAPE(2, 2), 3.0f);
    EACH_BAD_TENSOR("gather", bk_gather(T, 1, i2));
    EACH_BAD_TENSOR("gather", bk_gather(x, 1, T));
    MISUSE(bk_gather(x, 2, i2), "gather", "dimension 2");
    MISUSE(bk_gather(x, 1, bk_zeros(BK_SHAPE(3, 1))), "gather", "index (3, 1)", "(2, 3)");
    MISUSE(bk_gather(x, 1, bad), "gather", "index 3", "(2, 2)", "(2, 3)");
    MISUSE(bk_gather(x, 1, bk_full(BK_SHAPE(2, 2), 0.5f)), "gather", "index 0.5");
    EACH_BAD_TENSOR("scatter_add", bk_scatter_add(T, 1, i2, x));
    EACH_BAD_TENSOR("scatter_add", bk_scatter_add(x, 1, T, x));
    EACH_BAD_TENSOR("scatter_add", bk_scatter_add(x, 1, i2, T));
    MISUSE(bk_scatter_add(x, 1, i2, bk_rand(BK_SHAPE(2, 1))), "scatter_add", "index (2, 2)", "src (2, 1)");
    MISUSE(bk_scatter_add(x, 1, bad, x), "scatter_add", "index 3", "(2, 3)");
    EACH_BAD_TENSOR("index_select", bk_index_select(T, 0, bk_zeros(BK_SHAPE(2))));
    EACH_BAD_TENSOR("index_select", bk_index_select(x, 0, T));
    MISUSE(bk_index_select(x, 0, i2), "index_select", "(2, 2)", "must be 1-d");
    MISUSE(bk_index_select(x, 0, bk_full(BK_SHAPE(1), -1.0f)), "index_select", "index -1", "(2, 3)");
    EACH_BAD_TENSOR("where", bk_where(T, x, x));
    EACH_BAD_TENSOR("where", bk_where(x, T, x));
    EACH_BAD_TENSOR("where", bk_where(x, x, T));
    MISUSE(bk_where(x, i2, x), "where", "(2, 3)", "(2, 2)", "cannot be broadcast");
    EACH_BAD_TENSOR("masked_fill", bk_masked_fill(T, x, 0.0f));
    EACH_BAD_TENSOR("masked_fill", bk_masked_fill(x, T, 0.0f));
    MISUSE(bk_masked_fill(bk_rand(BK_SHAPE(3)), x, 0.0f), "masked_fill", "mask (2, 3)", "input (3,)");
    bk_tensor *pair[2] = {x, x};
    EACH_BAD_TENSOR("stack", (pair[1] = T, bk_stack(2, pair, 0)));
    pair[1] = i2;
    MISUSE(bk_stack(2, pair, 0), "stack", "tensor 1 of shape (2, 2)", "(2, 3)");
    MISUSE(bk_stack(0, pair, 0), "stack", "non-empty");
    MISUSE(bk_stack(1, pair, 3), "stack", "dimension 3");
    bk_tensor *out[4];
    EACH_BAD_TENSOR("split", bk_split(T, 1, 0, out, 4));
    MISUSE(bk_split(x, 0, 0, out, 4), "split", "split_size=0");
    MISUSE(bk_split(x, 1, 1, out, 2), "split", "3 pieces", "(2, 3)", "max_out=2");
    MISUSE(bk_split(x, 1, 2, out, 2), "split", "dimension 2");
    EACH_BAD_TENSOR("chunk", bk_chunk(T, 2, 0, out, 4));
    MISUSE(bk_chunk(x, 0, 0, out, 4), "chunk", "chunks=0");
    MISUSE(bk_chunk(x, 3, 1, NULL, 0), "split", "3 pieces");

    EACH_BAD_TENSOR("cumsum", bk_cumsum(T, 0));
    MISUSE(bk_cumsum(x, -3), "cumsum", "dimension -3");
    EACH_BAD_TENSOR("logsumexp", bk_logsumexp(T, 0, false));
    MISUSE(bk_logsumexp(x, 2, true), "logsumexp", "dimension 2");
    EACH_BAD_TENSOR("norm", bk_norm(T, 2.0f));
    MISUSE(bk_norm(x, 0.0f), "norm", "p=0");
    EACH_BAD_TENSOR("norm", bk_norm_dim(T, 2.0f, 0, false));
    MISUSE(bk_norm_dim(x, INFINITY, 0, false), "norm", "p=inf");
    MISUSE(bk_norm_dim(x, 1.0f, 5, false), "norm", "dimension 5");
    EACH_BAD_TENSOR("argmax", bk_argmax(T, 0, false));
    MISUSE(bk_argmax(bk_zeros(BK_SHAPE(2, 0)), 1, false), "argmax", "empty dimension", "(2, 0)");
    EACH_BAD_TENSOR("argmin", bk_argmin(T, 0, false));
    MISUSE(bk_argmin(x, 2, false), "argmin", "dimension 2");
    EACH_BAD_TENSOR("min", bk_min_dim(T, 0, false));
    MISUSE(bk_min_dim(bk_zeros(BK_SHAPE(0, 2)), 0, false), "min", "empty dimension", "(0, 2)");
    EACH_BAD_TENSOR("topk", bk_topk(T, 1, 0, true, NULL));
    MISUSE(bk_topk(x, 4, 1, true, NULL), "topk", "k=4", "(2, 3)");
    MISUSE(bk_topk(x, 1, 2, false, NULL), "topk", "dimension 2");
}

TEST(cnn_ops) {
    bk_tensor *x = bk_rand(BK_SHAPE(1, 2, 5, 5)), *w = bk_rand(BK_SHAPE(4, 2, 3, 3)),
              *b = bk_rand(BK_SHAPE(4));
    bk_conv2d_opts o = BK_CONV2D_DEFAULTS;
    EACH_BAD_TENSOR("conv2d", bk_conv2d(T, w, b, o));
    EACH_BAD_TENSOR("conv2d", bk_conv2d(x, T, b, o));
    T = STALE;
    MISUSE(bk_conv2d(x, w, T, o), "conv2d", "input 2", "arena was reset");
    ACCEPTS(bk_conv2d(x, w, NULL, o) != NULL, "bias NULL: no bias");
    MISUSE(bk_conv2d(bk_rand(BK_SHAPE(2, 5, 5)), w, b, o), "conv2d", "4-d input", "(2, 5, 5)");
    MISUSE(bk_conv2d(x, bk_rand(BK_SHAPE(4, 2, 3)), b, o), "conv2d", "4-d weight");
    MISUSE(bk_conv2d(x, bk_rand(BK_SHAPE(4, 3, 3, 3)), b, o), "conv2d", "channels");
    MISUSE(bk_conv2d(x, w, bk_rand(BK_SHAPE(3)), o), "conv2d", "bias (3,)");
    MISUSE(bk_conv2d(x, bk_rand(BK_SHAPE(4, 2, 7, 7)), b, o), "conv2d", "larger than the padded input");
    const int64_t bad_vals[3] = {0, -1, INT64_MIN};
    for (int i = 0; i < 3; i++) {
        bk_conv2d_opts s = o, d = o, g = o;
        s.stride[1] = bad_vals[i], d.dilation[0] = bad_vals[i], g.groups = bad_vals[i];
        MISUSE(bk_conv2d(x, w, b, s), "conv2d", "stride");
        MISUSE(bk_conv2d(x, w, b, d), "conv2d", "dilation");
        MISUSE(bk_conv2d(x, w, b, g), "conv2d", "groups");
    }
    bk_conv2d_opts p = o;
    p.padding[0] = -1;
    MISUSE(bk_conv2d(x, w, b, p), "conv2d", "padding");
    bk_conv2d_opts g3 = o;
    g3.groups = 3;
    MISUSE(bk_conv2d(x, w, b, g3), "conv2d", "groups=3");
    /* sizes so large that the output-size arithmetic would overflow */
    bk_conv2d_opts hp = o, hs = o, hd = o;
    hp.padding[1] = INT64_MAX, hs.stride[0] = INT64_MAX, hd.dilation[1] = INT64_MAX;
    MISUSE(bk_conv2d(x, w, b, hp), "conv2d", "padding");
    ACCEPTS(bk_conv2d(x, w, b, hs) != NULL, "a stride larger than the input gives one output row");
    MISUSE(bk_conv2d(x, w, b, hd), "conv2d", "dilation");

    bk_pool2d_opts po = {{2, 2}, {2, 2}, {0, 0}};
    EACH_BAD_TENSOR("max_pool2d", bk_max_pool2d(T, po));
    EACH_BAD_TENSOR("avg_pool2d", bk_avg_pool2d(T, po));
    EACH_BAD_TENSOR("adaptive_avg_pool2d", bk_adaptive_avg_pool2d(T, 1, 1));
    MISUSE(bk_max_pool2d(bk_rand(BK_SHAPE(2, 5, 5)), po), "max_pool2d", "4-d input");
    MISUSE(bk_avg_pool2d(bk_rand(BK_SHAPE(5, 5)), po), "avg_pool2d", "4-d input");
    MISUSE(bk_adaptive_avg_pool2d(bk_rand(BK_SHAPE(5)), 1, 1), "adaptive_avg_pool2d", "4-d input");
    const bk_pool2d_opts bad_pools[] = {
        {{0, 2}, {2, 2}, {0, 0}},         {{2, -2}, {2, 2}, {0, 0}},        {{2, 2}, {0, 2}, {0, 0}},
        {{2, 2}, {2, -1}, {0, 0}},        {{2, 2}, {2, 2}, {-1, 0}},        {{2, 2}, {2, 2}, {2, 0}},
        {{9, 9}, {1, 1}, {0, 0}},         {{2, 2}, {2, 2}, {0, INT64_MAX}}, {{INT64_MAX, 2}, {1, 1}, {0, 0}},
        {{INT64_MIN, 2}, {1, 1}, {0, 0}},
    };
    for (size_t i = 0; i < sizeof bad_pools / sizeof *bad_pools; i++) {
        MISUSE(bk_max_pool2d(x, bad_pools[i]), "max_pool2d", "(");
        MISUSE(bk_avg_pool2d(x, bad_pools[i]), "avg_pool2d", "(");
    }
    ACCEPTS(bk_max_pool2d(x, (bk_pool2d_opts){{2, 2}, {INT64_MAX, INT64_MAX}, {0, 0}}) != NULL,
            "a stride larger than the input gives one output");
    MISUSE(bk_adaptive_avg_pool2d(x, 0, 1), "adaptive_avg_pool2d", "output size (0, 1)");
    MISUSE(bk_adaptive_avg_pool2d(x, 1, -1), "adaptive_avg_pool2d", "must be positive");
    MISUSE(bk_adaptive_avg_pool2d(bk_rand(BK_SHAPE(1, 1, 0, 3)), 1, 1), "adaptive_avg_pool2d", "non-empty");

    bk_tensor *rm = bk_zeros(BK_SHAPE(2)), *rv = bk_ones(BK_SHAPE(2)), *g = bk_ones(BK_SHAPE(2)),
              *be = bk_zeros(BK_SHAPE(2));
    bk_tensor *x2 = bk_rand(BK_SHAPE(3, 2));
    EACH_BAD_TENSOR("batch_norm", bk_batch_norm(T, rm, rv, g, be, true, 0.1f, 1e-5f));
    EACH_BAD_TENSOR("batch_norm", bk_batch_norm(x2, T, rv, g, be, true, 0.1f, 1e-5f));
    EACH_BAD_TENSOR("batch_norm", bk_batch_norm(x2, rm, T, g, be, true, 0.1f, 1e-5f));
    EACH_BAD_TENSOR("batch_norm", bk_batch_norm(x2, rm, rv, T, be, true, 0.1f, 1e-5f));
    EACH_BAD_TENSOR("batch_norm", bk_batch_norm(x2, rm, rv, g, T, true, 0.1f, 1e-5f));
    T = NULL; /* the message numbers the argument as it comes in the call */
    MISUSE(bk_batch_norm(x2, T, rv, g, be, true, 0.1f, 1e-5f), "batch_norm", "input 1 is NULL");
    MISUSE(bk_batch_norm(x2, rm, rv, g, T, true, 0.1f, 1e-5f), "batch_norm", "input 4 is NULL");
    MISUSE(bk_batch_norm(bk_rand(BK_SHAPE(3)), rm, rv, g, be, true, 0.1f, 1e-5f), "batch_norm",
           "at least 2 dimensions");
    MISUSE(bk_batch_norm(bk_rand(BK_SHAPE(3, 5)), rm, rv, g, be, true, 0.1f, 1e-5f), "batch_norm",
           "5 channels");
    MISUSE(bk_batch_norm(bk_rand(BK_SHAPE(1, 2)), rm, rv, g, be, true, 0.1f, 1e-5f), "batch_norm",
           "more than 1 value");

    bk_tensor *ln_w = bk_ones(BK_SHAPE(2)), *ln_b = bk_zeros(BK_SHAPE(2));
    EACH_BAD_TENSOR("layer_norm", bk_layer_norm(T, 1, ln_w, ln_b, 1e-5f));
    EACH_BAD_TENSOR("layer_norm", bk_layer_norm(x2, 1, T, ln_b, 1e-5f));
    EACH_BAD_TENSOR("layer_norm", bk_layer_norm(x2, 1, ln_w, T, 1e-5f));
    MISUSE(bk_layer_norm(x2, 0, ln_w, ln_b, 1e-5f), "layer_norm", "last 0 dims");
    MISUSE(bk_layer_norm(x2, -1, ln_w, ln_b, 1e-5f), "layer_norm", "last -1 dims");
    MISUSE(bk_layer_norm(x2, 3, ln_w, ln_b, 1e-5f), "layer_norm", "last 3 dims");
    MISUSE(bk_layer_norm(x2, 1, bk_ones(BK_SHAPE(3)), ln_b, 1e-5f), "layer_norm", "weight (3,)");

    EACH_BAD_TENSOR("dropout", bk_dropout(T, 0.5f, true, NULL));
    MISUSE(bk_dropout(x2, -0.1f, true, NULL), "dropout", "between 0 and 1");
    MISUSE(bk_dropout(x2, 1.5f, false, NULL), "dropout", "between 0 and 1");
    MISUSE(bk_dropout(x2, NAN, true, NULL), "dropout", "nan");
    ACCEPTS(bk_dropout(x2, 0.5f, true, NULL) != NULL, "rng NULL: the thread's default generator");
}

TEST(layer_ops) {
    bk_tensor *x = bk_rand(BK_SHAPE(1, 2, 3, 3)), *w = bk_rand(BK_SHAPE(2, 3, 2, 2)),
              *b = bk_rand(BK_SHAPE(3));
    bk_conv_transpose2d_opts o = BK_CONV_TRANSPOSE2D_DEFAULTS;
    EACH_BAD_TENSOR("conv_transpose2d", bk_conv_transpose2d(T, w, b, o));
    EACH_BAD_TENSOR("conv_transpose2d", bk_conv_transpose2d(x, T, b, o));
    ACCEPTS(bk_conv_transpose2d(x, w, NULL, o) != NULL, "bias NULL: no bias");
    MISUSE(bk_conv_transpose2d(bk_rand(BK_SHAPE(2, 3, 3)), w, b, o), "conv_transpose2d", "4-d input",
           "(2, 3, 3)");
    MISUSE(bk_conv_transpose2d(x, w, bk_rand(BK_SHAPE(2)), o), "conv_transpose2d", "bias (2,)");
    MISUSE(bk_conv_transpose2d(bk_rand(BK_SHAPE(1, 3, 3, 3)), w, b, o), "conv_transpose2d", "(1, 3, 3, 3)",
           "(2, 3, 2, 2)");
    bk_conv_transpose2d_opts s = o, op = o, hp = o, hs = o, g = o;
    s.stride[0] = 0, op.output_padding[1] = 1, hp.padding[0] = INT64_MAX, hs.stride[1] = INT64_MAX,
    g.groups = 3;
    MISUSE(bk_conv_transpose2d(x, w, b, s), "conv_transpose2d", "stride (0, 1)");
    MISUSE(bk_conv_transpose2d(x, w, b, op), "conv_transpose2d", "output_padding (0, 1)", "smaller");
    MISUSE(bk_conv_transpose2d(x, w, b, hp), "conv_transpose2d", "no valid output size");
    MISUSE(bk_conv_transpose2d(x, w, b, hs), "conv_transpose2d", "no valid output size");
    MISUSE(bk_conv_transpose2d(x, w, b, g), "conv_transpose2d", "groups=3");
    bk_tensor *x3 = bk_rand(BK_SHAPE(1, 2, 5)), *w3 = bk_rand(BK_SHAPE(2, 3, 2));
    EACH_BAD_TENSOR("conv_transpose1d", bk_conv_transpose1d(T, w3, b, BK_CONV_TRANSPOSE1D_DEFAULTS));
    EACH_BAD_TENSOR("conv1d", bk_conv1d(x3, T, NULL, BK_CONV1D_DEFAULTS));
    MISUSE(bk_conv1d(x, w3, NULL, BK_CONV1D_DEFAULTS), "conv1d", "3-d input", "(1, 2, 3, 3)");
    MISUSE(bk_conv_transpose1d(x3, w, b, BK_CONV_TRANSPOSE1D_DEFAULTS), "conv_transpose1d", "3-d weight");
    MISUSE(bk_conv1d(x3, bk_rand(BK_SHAPE(3, 2, 9)), NULL, BK_CONV1D_DEFAULTS), "conv1d", "conv2d", "kernel");
    MISUSE(bk_conv_transpose1d(x3, w3, b, (bk_conv_transpose1d_opts){1, 0, 1, 1, 1}), "conv_transpose1d",
           "output_padding");
    bk_interp_opts io = {{0, 0}, {2, 2}, BK_INTERP_BILINEAR, false}, bad_mode = io, no_size = io, both = io;
    bad_mode.mode = BK_INTERP_COUNT, no_size.scale_factor[1] = 0, both.size[0] = both.size[1] = 4;
    EACH_BAD_TENSOR("interpolate", bk_interpolate(T, io));
    MISUSE(bk_interpolate(bk_rand(BK_SHAPE(2, 3, 3)), io), "interpolate", "4-d input", "(2, 3, 3)");
    bk_pool2d_opts pk = {{3, 2}, {2, 1}, {1, 1}};
    const int64_t dil[2] = {2, 1};
    EACH_BAD_TENSOR("max_pool2d", bk_max_pool2d_ex(T, pk, dil, true));
    EACH_BAD_TENSOR("avg_pool2d", bk_avg_pool2d_ex(T, pk, true, false));
    MISUSE(bk_max_pool2d_ex(x, pk, NULL, false), "max_pool2d", "dilation is NULL");
    MISUSE(bk_max_pool2d_ex(x, pk, (const int64_t[2]){0, 1}, false), "max_pool2d", "dilation (0, 1)");
    MISUSE(bk_max_pool2d_ex(x, pk, (const int64_t[2]){INT64_MAX, 1}, false), "max_pool2d", "too large");
    MISUSE(bk_avg_pool2d_ex(x, (bk_pool2d_opts){{3, 3}, {1, 1}, {2, 2}}, true, false), "avg_pool2d",
           "at most half");
    MISUSE(bk_avg_pool2d_ex(bk_rand(BK_SHAPE(3, 3)), pk, true, true), "avg_pool2d", "4-d input");
    bk_tensor *gx = bk_rand(BK_SHAPE(2, 4, 3)), *gw = bk_rand(BK_SHAPE(4));
    EACH_BAD_TENSOR("group_norm", bk_group_norm(T, 2, gw, gw, 1e-5f));
    EACH_BAD_TENSOR("group_norm", bk_group_norm(gx, 2, T, gw, 1e-5f));
    ACCEPTS(bk_group_norm(gx, 2, NULL, NULL, 1e-5f) != NULL, "weight and bias NULL: no affine");
    MISUSE(bk_group_norm(gx, 3, gw, gw, 1e-5f), "group_norm", "num_groups=3", "(2, 4, 3)");
    MISUSE(bk_group_norm(gx, 0, NULL, NULL, 1e-5f), "group_norm", "num_groups=0");
    MISUSE(bk_group_norm(gx, 2, NULL, gw, 1e-5f), "group_norm", "weight is NULL but bias is not");
    MISUSE(bk_group_norm(gx, 2, gw, bk_rand(BK_SHAPE(3)), 1e-5f), "group_norm", "bias has shape (3,)");
    MISUSE(bk_group_norm(bk_rand(BK_SHAPE(4)), 2, NULL, NULL, 1e-5f), "group_norm", "at least 2 dimensions");
    MISUSE(bk_group_norm(gx, 2, NULL, NULL, -1.0f), "group_norm", "eps=-1");
    MISUSE(bk_interpolate(x, bad_mode), "interpolate", "unknown mode");
    MISUSE(bk_interpolate(x, no_size), "interpolate", "give either");
    MISUSE(bk_interpolate(x, both), "interpolate", "not both");
    MISUSE(bk_interpolate(x, (bk_interp_opts){{0, 0}, {1e30, 1}, BK_INTERP_NEAREST, false}), "interpolate",
           "too large");
    MISUSE(bk_interpolate(x, (bk_interp_opts){{INT64_MAX, INT64_MAX}, {0, 0}, BK_INTERP_NEAREST, false}),
           "interpolate", "too many elements");
}

TEST(attention_ops) {
    bk_tensor *weight = bk_rand(BK_SHAPE(5, 4)), *ids = bk_from_data(BK_SHAPE(3), (const float[]){0, 4, 2});
    EACH_BAD_TENSOR("embedding", bk_embedding(T, weight, -1));
    EACH_BAD_TENSOR("embedding", bk_embedding(ids, T, -1));
    T = NULL;
    MISUSE(bk_embedding(T, weight, -1), "embedding", "input 0 is NULL"); /* ids come first */
    MISUSE(bk_embedding(ids, T, -1), "embedding", "input 1 is NULL");
    MISUSE(bk_embedding(ids, bk_rand(BK_SHAPE(5)), -1), "embedding", "weight must be 2-d");
    MISUSE(bk_embedding(ids, weight, -2), "embedding", "padding_idx=-2");
    MISUSE(bk_embedding(ids, weight, 5), "embedding", "padding_idx=5");
    EACH_BAD_TENSOR("embedding", bk_embedding_ex(T, weight, -1, true));
    MISUSE(bk_embedding_ex(ids, weight, 5, true), "embedding", "padding_idx=5");
    MISUSE(bk_embedding_ex(ids, bk_rand(BK_SHAPE(5)), -1, true), "embedding", "weight must be 2-d");
    MISUSE(bk_embedding(bk_from_data(BK_SHAPE(1), (const float[]){5}), weight, -1), "embedding", "id 5");
    MISUSE(bk_embedding(bk_from_data(BK_SHAPE(1), (const float[]){-1}), weight, -1), "embedding", "id -1");
    MISUSE(bk_embedding(bk_from_data(BK_SHAPE(1), (const float[]){1.5f}), weight, -1), "embedding", "id 1.5");
    MISUSE(bk_embedding(bk_from_data(BK_SHAPE(1), (const float[]){NAN}), weight, -1), "embedding", "nan");

    bk_tensor *q = bk_rand(BK_SHAPE(2, 3, 4)), *k = bk_rand(BK_SHAPE(2, 5, 4)),
              *v = bk_rand(BK_SHAPE(2, 5, 6));
    EACH_BAD_TENSOR("attention_weights", bk_attention_weights(T, k, 2, true, NULL, NULL, 0));
    EACH_BAD_TENSOR("attention_weights", bk_attention_weights(q, T, 2, true, NULL, NULL, 0));
    T = STALE;
    MISUSE(bk_attention_weights(q, k, 2, true, T, NULL, 0), "attention_weights", "attn_mask",
           "arena was reset");
    MISUSE(bk_attention_weights(q, k, 2, true, NULL, T, 0), "attention_weights", "key_padding_mask",
           "arena was reset");
    T = &FOREIGN;
    MISUSE(bk_attention_weights(q, k, 2, true, T, NULL, 0), "attention_weights", "attn_mask",
           "not a brick tensor");
    ACCEPTS(bk_attention_weights(q, k, 2, true, NULL, NULL, 0) != NULL,
            "masks NULL: no masks; scale 0: 1/sqrt(D)");
    const int64_t heads[4] = {0, -2, 3, INT64_MAX};
    for (int i = 0; i < 4; i++)
        MISUSE(bk_attention_weights(q, k, heads[i], true, NULL, NULL, 0), "attention", "num_heads");
    MISUSE(bk_attention_weights(bk_rand(BK_SHAPE(2, 0)), bk_rand(BK_SHAPE(2, 0)), INT64_MAX, true, NULL, NULL,
                                0),
           "attention", "3-d");
    MISUSE(bk_attention_weights(bk_rand(BK_SHAPE(2, 2, 0)), bk_rand(BK_SHAPE(2, 2, 0)), INT64_MAX, true, NULL,
                                NULL, 0),
           "attention_weights", "num_heads", "too many elements");
    MISUSE(bk_attention_weights(q, bk_rand(BK_SHAPE(3, 5, 4)), 2, true, NULL, NULL, 0), "attention",
           "key (3, 5, 4)");
    MISUSE(bk_attention_weights(q, k, 2, true, bk_zeros(BK_SHAPE(3, 4)), NULL, 0), "attention",
           "attn_mask (3, 4)");
    MISUSE(bk_attention_weights(q, k, 2, true, NULL, bk_zeros(BK_SHAPE(2, 4)), 0), "attention",
           "key_padding_mask (2, 4)");

    bk_tensor *P = bk_attention_weights(q, k, 2, true, NULL, NULL, 0);
    EACH_BAD_TENSOR("attention_apply", bk_attention_apply(T, v, true));
    EACH_BAD_TENSOR("attention_apply", bk_attention_apply(P, T, true));
    MISUSE(bk_attention_apply(q, v, true), "attention", "weights must be 4-d");
    MISUSE(bk_attention_apply(P, bk_rand(BK_SHAPE(2, 4, 6)), true), "attention", "value (2, 4, 6)");
    MISUSE(bk_attention_apply(P, bk_rand(BK_SHAPE(2, 5, 5)), true), "attention", "divisible");
    MISUSE(bk_attention_apply(bk_rand(BK_SHAPE(2, 0, 3, 5)), v, true), "attention", "heads");

    EACH_BAD_TENSOR("scaled_dot_product_attention",
                    bk_scaled_dot_product_attention(T, k, v, NULL, 0, false, NULL));
    EACH_BAD_TENSOR("scaled_dot_product_attention",
                    bk_scaled_dot_product_attention(q, T, v, NULL, 0, false, NULL));
    EACH_BAD_TENSOR("scaled_dot_product_attention",
                    bk_scaled_dot_product_attention(q, k, T, NULL, 0, false, NULL));
    T = STALE;
    MISUSE(bk_scaled_dot_product_attention(q, k, v, T, 0, false, NULL), "attn_mask", "arena was reset");
    MISUSE(bk_scaled_dot_product_attention(q, k, v, NULL, 1.5f, true, NULL), "dropout", "between 0 and 1");
    MISUSE(bk_scaled_dot_product_attention(q, k, v, NULL, -1, false, NULL), "dropout", "between 0 and 1");
    ACCEPTS(bk_scaled_dot_product_attention(q, k, v, NULL, 0.5f, true, NULL) != NULL,
            "rng NULL: the default generator");

    MISUSE(bk_causal_mask(-1), "causal_mask", "-1");
    MISUSE(bk_causal_mask(INT64_MIN), "causal_mask", "non-negative");
    MISUSE(bk_causal_mask(INT64_MAX), "too many elements");
    EACH_BAD_TENSOR("attn_mask_from_bool", bk_attn_mask_from_bool(T));
}

/* ---- losses ---------------------------------------------------------------------------------------- */

TEST(loss_ops) {
    bk_tensor *logits = bk_rand(BK_SHAPE(3, 4)), *target = bk_rand(BK_SHAPE(3, 4));
    const int64_t labels[3] = {0, 3, 1}, big[3] = {0, 4, 1}, negl[3] = {0, -1, 1};
    EACH_BAD_TENSOR("log_softmax", bk_log_softmax(T, 1));
    EACH_BAD_TENSOR("softmax", bk_softmax(T, 1));
    MISUSE(bk_log_softmax(logits, 2), "log_softmax", "dimension 2");
    MISUSE(bk_softmax(logits, -3), "softmax", "dimension -3");
    MISUSE(bk_softmax(logits, INT32_MIN), "softmax", "out of range");

    EACH_BAD_TENSOR("cross_entropy", bk_cross_entropy(T, labels, 3, BK_REDUCTION_MEAN));
    MISUSE(bk_cross_entropy(logits, NULL, 3, BK_REDUCTION_MEAN), "cross_entropy", "targets");
    MISUSE(bk_cross_entropy(logits, labels, 2, BK_REDUCTION_MEAN), "cross_entropy", "2 targets");
    MISUSE(bk_cross_entropy(logits, labels, -1, BK_REDUCTION_MEAN), "cross_entropy", "-1 targets");
    MISUSE(bk_cross_entropy(logits, big, 3, BK_REDUCTION_MEAN), "cross_entropy", "target 4", "out of bounds");
    MISUSE(bk_cross_entropy(logits, negl, 3, BK_REDUCTION_MEAN), "cross_entropy", "target -1");
    MISUSE(bk_cross_entropy(logits, labels, 3, (bk_reduction)-1), "cross_entropy", "unknown reduction -1");
    MISUSE(bk_cross_entropy(logits, labels, 3, BK_REDUCTION_COUNT), "cross_entropy", "unknown reduction");
    MISUSE(bk_cross_entropy(bk_rand(BK_SHAPE(3)), labels, 3, BK_REDUCTION_MEAN), "cross_entropy", "(N, C)");

    EACH_BAD_TENSOR("mse_loss", bk_mse_loss(T, target, BK_REDUCTION_MEAN));
    EACH_BAD_TENSOR("mse_loss", bk_mse_loss(logits, T, BK_REDUCTION_MEAN));
    MISUSE(bk_mse_loss(logits, bk_rand(BK_SHAPE(4, 3)), BK_REDUCTION_SUM), "mse_loss", "(3, 4)", "(4, 3)");
    MISUSE(bk_mse_loss(logits, target, (bk_reduction)9), "mse_loss", "unknown reduction 9");
    EACH_BAD_TENSOR("bce_with_logits", bk_bce_with_logits(T, target, BK_REDUCTION_MEAN));
    EACH_BAD_TENSOR("bce_with_logits", bk_bce_with_logits(logits, T, BK_REDUCTION_MEAN));
    MISUSE(bk_bce_with_logits(logits, bk_rand(BK_SHAPE(12)), BK_REDUCTION_NONE), "bce_with_logits", "(12,)");
    MISUSE(bk_bce_with_logits(logits, target, (bk_reduction)-5), "bce_with_logits", "unknown reduction -5");

    EACH_BAD_TENSOR("count_correct", bk_count_correct(T, labels, 3));
    MISUSE(bk_count_correct(logits, NULL, 3), "count_correct", "target is NULL");
    MISUSE(bk_count_correct(logits, labels, 2), "count_correct", "2 targets", "(3, 4)");
    MISUSE(bk_count_correct(logits, labels, -1), "count_correct", "-1 targets");
    MISUSE(bk_count_correct(bk_rand(BK_SHAPE(3)), labels, 3), "count_correct", "(N, C)");
    int64_t out[3];
    EACH_BAD_TENSOR("argmax_rows", bk_argmax_rows(T, out));
    MISUSE(bk_argmax_rows(logits, NULL), "argmax_rows", "out is NULL");
    MISUSE(bk_argmax_rows(bk_rand(BK_SHAPE(2, 3, 4)), out), "argmax_rows", "(N, C)", "(2, 3, 4)");
    MISUSE(bk_argmax_rows(bk_zeros(BK_SHAPE(3, 0)), out), "argmax_rows", "no columns");
}
