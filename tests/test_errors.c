/* test_errors.c - every bad input fails cleanly: NULL or -1, a message that names the op and
 * the shapes, the first error kept through NULL propagation, nothing leaked (run under
 * `make test SAN=1`), no crash.
 */
#include "test.h"

#include <stdint.h>

/* expr must fail with exactly this message. */
#define CHECK_ERR_EXACT(expr, msg)                                                                          \
    do {                                                                                                    \
        bk_clear_error();                                                                                   \
        int failed_ = !(expr);                                                                              \
        if (!failed_ || strcmp(bk_last_error(), (msg)) != 0) {                                              \
            fprintf(stderr, "  FAIL %s:%d [%s]: %s:\n       want \"%s\"\n       got  \"%s\"%s\n", __FILE__, \
                    __LINE__, test_current_, #expr, (msg), bk_last_error(),                                 \
                    failed_ ? "" : " (and it succeeded)");                                                  \
            test_failed_checks_++;                                                                          \
        }                                                                                                   \
        bk_clear_error();                                                                                   \
    } while (0)

/* float-returning calls fail with NaN */
#define FAILS_NAN(expr) (!isnan(expr))

/* ---- the messages users meet first ------------------------------------------------------ */

TEST(linear_wrong_in_features) {
    bk_module *lin = bk_nn_linear(20, 256);
    bk_tensor *x = bk_rand(BK_SHAPE(2, 30));
    CHECK_ERRS(bk_forward(lin, x), "Linear", "(2, 30)", "in_features=20");
    /* inside a Sequential the innermost failing block is named, once */
    bk_module *net = bk_nn_sequential(3, bk_nn_linear(20, 256), bk_nn_relu(), bk_nn_linear(128, 10));
    CHECK_ERRS(bk_forward(net, bk_rand(BK_SHAPE(2, 20))), "Linear(in_features=128", "(2, 256)");
    /* bk_linear directly */
    bk_tensor *w = bk_rand(BK_SHAPE(4, 3)), *b = bk_rand(BK_SHAPE(5));
    CHECK_ERRS(bk_linear(bk_rand(BK_SHAPE(2, 5)), w, NULL), "linear", "(2, 5)", "(4, 3)");
    CHECK_ERRS(bk_linear(bk_rand(BK_SHAPE(2, 3)), w, b), "linear: bias (5,)", "(4, 3)");
    CHECK_ERRS(bk_linear(bk_rand(BK_SHAPE(2, 3)), bk_rand(BK_SHAPE(3)), NULL), "linear", "weight (3,)");
    CHECK_ERRS(bk_linear(bk_scalar(1), w, NULL), "linear", "input ()");
    bk_module_free(lin);
    bk_module_free(net);
}

TEST(matmul_shapes) {
    bk_tensor *a = bk_rand(BK_SHAPE(2, 20)), *b = bk_rand(BK_SHAPE(30, 256));
    CHECK_ERR_EXACT(bk_matmul(a, b), "matmul: mat1 and mat2 shapes cannot be multiplied (2x20 and 30x256)");
    CHECK_ERRS(bk_matmul(bk_rand(BK_SHAPE(5)), b), "matmul", "5", "30x256");
    CHECK_ERRS(bk_matmul(a, bk_rand(BK_SHAPE(7))), "matmul", "2x20");
    CHECK_ERRS(bk_matmul(bk_rand(BK_SHAPE(3, 2, 4)), bk_rand(BK_SHAPE(2, 4, 5))), "matmul: batch dimensions",
               "(3, 2, 4)", "(2, 4, 5)");
    CHECK_ERRS(bk_matmul(bk_scalar(1), a), "matmul", "0D");
}

TEST(broadcast_mismatch) {
    bk_tensor *a = bk_rand(BK_SHAPE(2, 3)), *b = bk_rand(BK_SHAPE(4));
    CHECK_ERRS(bk_add(a, b), "add: shapes (2, 3) and (4,) cannot be broadcast");
    CHECK_ERRS(bk_sub(b, a), "sub", "(4,)", "(2, 3)");
    CHECK_ERRS(bk_mul(a, bk_rand(BK_SHAPE(3, 3))), "mul", "(2, 3)", "(3, 3)");
    CHECK_ERRS(bk_div(bk_rand(BK_SHAPE(2, 1, 3)), bk_rand(BK_SHAPE(4, 2))), "div", "(2, 1, 3)", "(4, 2)");
    CHECK_ERRS(bk_pow(a, b), "pow", "(2, 3)", "(4,)");
    CHECK_ERRS(bk_gt(a, b), "gt", "(2, 3)");
    CHECK_ERRS(bk_lt(a, b), "lt", "(2, 3)");
    CHECK_ERRS(bk_eq(a, b), "eq", "(2, 3)");
}

TEST(backward_errors) {
    bk_tensor *x = bk_requires_grad(bk_rand(BK_SHAPE(2, 3)), true);
    bk_tensor *y = bk_mul_scalar(x, 2);
    CHECK_FAILS_INT(bk_backward(y), "backward");
    CHECK_FAILS_INT(bk_backward(y), "(2, 3)");
    CHECK_FAILS_INT(bk_backward_ex(y, bk_ones(BK_SHAPE(3, 2)), false), "(3, 2)");
    CHECK_FAILS_INT(bk_backward(bk_sum(bk_rand(BK_SHAPE(2)))), "does not require grad");
    CHECK_FAILS_INT(bk_backward(NULL), "backward: input 0 is NULL");
    CHECK_FAILS_INT(bk_backward_ex(y, NULL, false), "only for scalar outputs");
    CHECK_ERRS(bk_requires_grad(y, false), "requires_grad", "leaf", "mul");
}

/* ---- NULL inputs ---------------------------------------------------------------------------- */

TEST(null_inputs) {
    bk_tensor *x = bk_rand(BK_SHAPE(2, 3));
    int perm[2] = {1, 0};
    bk_tensor *none[2] = {x, NULL};
    CHECK_ERR_EXACT(bk_add(NULL, x), "add: input 0 is NULL");
    CHECK_ERR_EXACT(bk_add(x, NULL), "add: input 1 is NULL");
    CHECK_ERR_EXACT(bk_sub(NULL, x), "sub: input 0 is NULL");
    CHECK_ERR_EXACT(bk_mul(x, NULL), "mul: input 1 is NULL");
    CHECK_ERR_EXACT(bk_div(NULL, NULL), "div: input 0 is NULL");
    CHECK_ERR_EXACT(bk_pow(NULL, x), "pow: input 0 is NULL");
    CHECK_ERR_EXACT(bk_gt(NULL, x), "gt: input 0 is NULL");
    CHECK_ERR_EXACT(bk_lt(x, NULL), "lt: input 1 is NULL");
    CHECK_ERR_EXACT(bk_eq(NULL, x), "eq: input 0 is NULL");
    CHECK_ERR_EXACT(bk_add_scalar(NULL, 1), "add_scalar: input 0 is NULL");
    CHECK_ERR_EXACT(bk_mul_scalar(NULL, 1), "mul_scalar: input 0 is NULL");
    CHECK_ERR_EXACT(bk_div_scalar(NULL, 1), "div_scalar: input 0 is NULL");
    CHECK_ERR_EXACT(bk_rsub_scalar(NULL, 1), "rsub_scalar: input 0 is NULL");
    CHECK_ERR_EXACT(bk_pow_scalar(NULL, 2), "pow_scalar: input 0 is NULL");
    CHECK_ERR_EXACT(bk_neg(NULL), "neg: input 0 is NULL");
    CHECK_ERR_EXACT(bk_abs(NULL), "abs: input 0 is NULL");
    CHECK_ERR_EXACT(bk_exp(NULL), "exp: input 0 is NULL");
    CHECK_ERR_EXACT(bk_log(NULL), "log: input 0 is NULL");
    CHECK_ERR_EXACT(bk_sqrt(NULL), "sqrt: input 0 is NULL");
    CHECK_ERR_EXACT(bk_relu(NULL), "relu: input 0 is NULL");
    CHECK_ERR_EXACT(bk_sigmoid(NULL), "sigmoid: input 0 is NULL");
    CHECK_ERR_EXACT(bk_tanh(NULL), "tanh: input 0 is NULL");
    CHECK_ERR_EXACT(bk_matmul(NULL, x), "matmul: input 0 is NULL");
    CHECK_ERR_EXACT(bk_matmul(x, NULL), "matmul: input 1 is NULL");
    CHECK_ERR_EXACT(bk_linear(NULL, x, NULL), "linear: input 0 is NULL");
    CHECK_ERR_EXACT(bk_linear(x, NULL, NULL), "linear: input 1 is NULL");
    CHECK_ERR_EXACT(bk_sum(NULL), "sum: input 0 is NULL");
    CHECK_ERR_EXACT(bk_mean(NULL), "mean: input 0 is NULL");
    CHECK_ERR_EXACT(bk_max(NULL), "max: input 0 is NULL");
    CHECK_ERR_EXACT(bk_sum_dim(NULL, 0, false), "sum: input 0 is NULL");
    CHECK_ERR_EXACT(bk_mean_dim(NULL, 0, true), "mean: input 0 is NULL");
    CHECK_ERR_EXACT(bk_max_dim(NULL, 0, false), "max: input 0 is NULL");
    CHECK_ERR_EXACT(bk_reshape(NULL, BK_SHAPE(6)), "reshape: input 0 is NULL");
    CHECK_ERR_EXACT(bk_flatten(NULL, 0, -1), "flatten: input 0 is NULL");
    CHECK_ERR_EXACT(bk_transpose(NULL, 0, 1), "transpose: input 0 is NULL");
    CHECK_ERR_EXACT(bk_permute(NULL, perm), "permute: input 0 is NULL");
    CHECK_ERR_EXACT(bk_concat(2, none, 0), "concat: input 1 is NULL");
    CHECK_ERR_EXACT(bk_slice(NULL, 0, 0, 1), "slice: input 0 is NULL");
    CHECK_ERR_EXACT(bk_select(NULL, 0, 0), "select: input 0 is NULL");
    CHECK_ERR_EXACT(bk_clone(NULL), "clone: input 0 is NULL");
    CHECK_ERR_EXACT(bk_detach(NULL), "detach: input 0 is NULL");
    CHECK_ERR_EXACT(bk_zeros_like(NULL), "zeros_like: input 0 is NULL");
    CHECK_ERR_EXACT(bk_requires_grad(NULL, true), "requires_grad: input 0 is NULL");
    CHECK_ERR_EXACT(bk_tensor_clone_owned(NULL), "tensor_clone_owned: input 0 is NULL");
    CHECK_FAILS_INT(bk_fill(NULL, 0), "fill: input 0 is NULL");
    CHECK_FAILS_INT(bk_copy(NULL, x), "copy: input 0 is NULL");
    CHECK_FAILS_INT(bk_copy(x, NULL), "copy: input 0 is NULL"); /* checked one at a time */
    CHECK_ERR(FAILS_NAN(bk_item(NULL)), "item: input 0 is NULL");
    bk_module *lin = bk_nn_linear(3, 2);
    CHECK_ERR_EXACT(bk_forward(lin, NULL), "Linear: input 0 is NULL");
    CHECK_ERRS(bk_forward(NULL, x), "forward: module is NULL");
    bk_module_free(lin);
    /* printing a NULL tensor says so instead of crashing */
    FILE *f = tmpfile();
    if (f) {
        bk_print(NULL, f);
        char buf[256] = "";
        rewind(f);
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        buf[n] = '\0';
        CHECK(strstr(buf, "invalid") && strstr(buf, "NULL"));
        fclose(f);
    }
}

/* The first failure is what the user reads at the end of a forward. */
TEST(null_propagation_keeps_first_error) {
    bk_tensor *a = bk_rand(BK_SHAPE(2, 20)), *b = bk_rand(BK_SHAPE(30, 256));
    const char *first = "matmul: mat1 and mat2 shapes cannot be multiplied (2x20 and 30x256)";
    CHECK_ERR_EXACT(bk_relu(bk_matmul(a, b)), first);
    CHECK_ERR_EXACT(bk_sum(bk_tanh(bk_add(bk_relu(bk_matmul(a, b)), bk_rand(BK_SHAPE(2, 256))))), first);
    bk_module *net = bk_nn_sequential(2, bk_nn_linear(256, 4), bk_nn_relu());
    CHECK_ERR_EXACT(bk_forward(net, bk_matmul(a, b)), first);
    CHECK_FAILS_INT(bk_backward(bk_sum(bk_forward(net, bk_matmul(a, b)))), first);
    bk_module_free(net);
    /* after bk_clear_error a NULL is reported afresh */
    bk_clear_error();
    CHECK_ERR_EXACT(bk_exp(NULL), "exp: input 0 is NULL");
}

/* ---- shapes and dims -------------------------------------------------------------------------- */

TEST(reshape_errors) {
    bk_tensor *x = bk_rand(BK_SHAPE(3, 5));
    CHECK_ERR_EXACT(bk_reshape(x, BK_SHAPE(4, 4)),
                    "reshape: shape (4, 4) is invalid for input (3, 5) of 15 elements");
    CHECK_ERRS(bk_reshape(x, BK_SHAPE(-1, 4)), "reshape", "(-1, 4)", "(3, 5)");
    CHECK_ERRS(bk_reshape(x, BK_SHAPE(-1, -1)), "reshape: only one dimension can be inferred");
    CHECK_ERRS(bk_reshape(x, BK_SHAPE(0, -1)), "reshape", "(0, -1)", "(3, 5)");
    CHECK_ERRS(bk_reshape(x, BK_SHAPE(-2, 5)), "reshape: invalid shape (-2, 5)");
    CHECK_ERRS(bk_reshape(x, BK_SHAPE(INT64_MAX, 4)), "reshape", "9223372036854775807");
    int64_t big[BK_MAX_DIMS + 1];
    for (int i = 0; i <= BK_MAX_DIMS; i++) big[i] = 1;
    CHECK_ERRS(bk_reshape(x, BK_MAX_DIMS + 1, big), "reshape", "rank 9");
    CHECK_ERRS(bk_reshape(x, -1, big), "reshape", "rank -1");
}

TEST(dim_errors) {
    bk_tensor *x = bk_rand(BK_SHAPE(2, 3));
    CHECK_ERR_EXACT(bk_sum_dim(x, 2, false), "sum: dimension 2 is out of range for a tensor of rank 2");
    CHECK_ERRS(bk_sum_dim(x, -3, true), "sum", "dimension -3", "rank 2");
    CHECK_ERRS(bk_mean_dim(x, 5, false), "mean", "dimension 5");
    CHECK_ERRS(bk_max_dim(x, -4, false), "max", "dimension -4");
    CHECK_ERRS(bk_sum_dim(bk_scalar(1), 0, false), "sum", "rank 0");
    CHECK_ERRS(bk_transpose(x, 0, 2), "transpose", "dimension 2");
    CHECK_ERRS(bk_transpose(x, -3, 0), "transpose", "dimension -3");
    CHECK_ERRS(bk_slice(x, 2, 0, 1), "slice", "dimension 2");
    CHECK_ERRS(bk_select(x, -3, 0), "select", "dimension -3");
    bk_tensor *pair[2] = {x, x};
    CHECK_ERRS(bk_concat(2, pair, 2), "concat", "dimension 2");
    CHECK_ERRS(bk_flatten(x, 0, 2), "flatten", "dimension 2");
    CHECK_ERRS(bk_flatten(x, -3, 1), "flatten", "dimension -3");
    CHECK_ERRS(bk_flatten(x, 1, 0), "flatten: start_dim 1 comes after end_dim 0");
    int bad[2] = {0, 2}, rep[2] = {1, 1};
    CHECK_ERRS(bk_permute(x, bad), "permute", "dimension 2");
    CHECK_ERRS(bk_permute(x, rep), "permute: dimension 1 repeats");
    CHECK_ERRS(bk_permute(x, NULL), "permute: dims is NULL");
}

TEST(concat_slice_select_errors) {
    bk_tensor *a = bk_rand(BK_SHAPE(2, 3)), *b = bk_rand(BK_SHAPE(2, 4)), *c = bk_rand(BK_SHAPE(2, 3, 1));
    bk_tensor *ab[2] = {a, b}, *ac[2] = {a, c};
    CHECK_ERRS(bk_concat(2, ab, 0),
               "concat: tensor 1 of shape (2, 4) does not match tensor 0 of shape (2, 3)");
    CHECK(bk_concat(2, ab, 1) != NULL); /* fine along the differing dim */
    CHECK_ERRS(bk_concat(2, ac, 0), "concat", "(2, 3, 1)", "(2, 3)");
    CHECK_ERRS(bk_concat(0, ab, 0), "concat", "non-empty");
    CHECK_ERRS(bk_concat(2, NULL, 0), "concat", "non-empty");
    CHECK_ERR_EXACT(bk_slice(a, 1, 2, 5), "slice: range [2, 5) is outside dimension 1 of (2, 3)");
    CHECK_ERRS(bk_slice(a, 0, 2, 1), "slice", "[2, 1)", "(2, 3)");
    CHECK_ERRS(bk_slice(a, -1, -1, 2), "slice", "[-1, 2)");
    CHECK_ERRS(bk_select(a, 0, 2), "select: index 2 is out of range for dimension 0 of (2, 3)");
    CHECK_ERRS(bk_select(a, 1, -4), "select", "(2, 3)");
    CHECK_ERRS(bk_max(bk_zeros(BK_SHAPE(0, 3))), "max", "empty", "(0, 3)");
    CHECK_ERRS(bk_max_dim(bk_zeros(BK_SHAPE(2, 0)), 1, false), "max", "(2, 0)");
}

TEST(item_get_copy_errors) {
    bk_tensor *x = bk_rand(BK_SHAPE(2, 3));
    CHECK_ERRS(FAILS_NAN(bk_item(x)), "item", "6 elements", "(2, 3)");
    CHECK_ERRS(FAILS_NAN(bk_get(x, (const int64_t[]){1, 3})), "get", "index 3", "(2, 3)");
    CHECK_ERRS(FAILS_NAN(bk_get(x, (const int64_t[]){-1, 0})), "get", "index -1");
    CHECK_FAILS_INT(bk_copy(x, bk_rand(BK_SHAPE(5))), "copy: destination (2, 3) and source (5,)");
    CHECK_ERRS(bk_from_data(BK_SHAPE(2), NULL), "from_data: data is NULL");
    CHECK(!isnan(bk_item(bk_rand(BK_SHAPE(1, 1, 1))))); /* one element of any rank is fine */
}

/* ---- creating tensors --------------------------------------------------------------------------- */

TEST(bad_shapes_at_creation) {
    const int64_t neg[2] = {-1, 2}, huge[2] = {INT64_MAX, 4}, toobig[2] = {(int64_t)1 << 61, 2};
    /* every creation function goes through the same check */
    CHECK_ERRS(bk_zeros(2, neg), "tensor: negative dimension -1 in shape (-1, 2)");
    CHECK_ERRS(bk_zeros(2, huge), "tensor: shape (9223372036854775807, 4) has too many elements");
    CHECK_ERRS(bk_zeros(2, toobig), "tensor", "do not fit in memory");
    CHECK_ERRS(bk_ones(2, huge), "too many elements");
    CHECK_ERRS(bk_empty(2, neg), "negative dimension");
    CHECK_ERRS(bk_full(2, huge, 1.0f), "too many elements");
    CHECK_ERRS(bk_rand(2, neg), "negative dimension");
    CHECK_ERRS(bk_randn(2, huge), "too many elements");
    const float data[2] = {1, 2};
    CHECK_ERRS(bk_from_data(2, neg, data), "negative dimension");
    CHECK_ERRS(bk_tensor_new(2, neg), "tensor_new: negative dimension -1 in shape (-1, 2)");
    CHECK_ERRS(bk_tensor_new(2, huge), "tensor_new", "(9223372036854775807, 4)", "too many elements");
    CHECK_ERRS(bk_tensor_new(2, toobig), "tensor_new", "do not fit in memory");
    /* overflow that only shows in the product of several dims */
    const int64_t prod[4] = {1 << 20, 1 << 20, 1 << 20, 1 << 4};
    CHECK_ERRS(bk_zeros(4, prod), "too many elements");
    CHECK_ERRS(bk_tensor_new(4, prod), "too many elements");
    /* rank */
    int64_t nine[BK_MAX_DIMS + 1];
    for (int i = 0; i <= BK_MAX_DIMS; i++) nine[i] = 1;
    CHECK_ERRS(bk_zeros(BK_MAX_DIMS + 1, nine), "tensor: rank 9 is outside 0..8");
    CHECK_ERRS(bk_tensor_new(BK_MAX_DIMS + 1, nine), "tensor_new: rank 9 is outside 0..8");
    CHECK_ERRS(bk_zeros(-1, nine), "rank -1");
    CHECK_ERRS(bk_zeros(2, NULL), "shape is NULL");
    CHECK(bk_zeros(BK_MAX_DIMS, nine) != NULL); /* the limit itself is fine */
    CHECK(bk_zeros(BK_SHAPE(0, 3)) != NULL);    /* and so is an empty tensor */
    bk_tensor *e = bk_tensor_new(BK_SHAPE(0));
    CHECK(e && e->numel == 0);
    bk_tensor_free(e);
}

/* ---- modules ------------------------------------------------------------------------------------ */

TEST(module_registration_errors) {
    bk_module *seq = bk_nn_sequential(1, bk_nn_relu());
    CHECK(seq != NULL);
    /* every failure frees the child it was given (ASan: no leak) */
    CHECK_ERRS(bk_module_add(seq, "0", bk_nn_linear(2, 2)), "Sequential", "\"0\" already exists");
    CHECK_ERRS(bk_module_add(seq, "x", NULL), "module_add: child \"x\" is NULL");
    CHECK_ERRS(bk_module_add(NULL, "x", bk_nn_linear(3, 3)), "module_add: parent is NULL");
    CHECK_ERRS(bk_module_add(seq, "a.b", bk_nn_tanh()), "invalid name \"a.b\"");
    CHECK_ERRS(bk_module_add(seq, "", bk_nn_tanh()), "invalid name");
    CHECK_ERRS(bk_module_add(seq, NULL, bk_nn_tanh()), "invalid name");
    CHECK_ERRS(bk_module_add(seq, "me", bk_module_ref(seq)), "cannot contain itself");
    /* a failing constructor's error is kept and the child's name added */
    CHECK_ERRS(bk_module_add(seq, "lin", bk_nn_linear(-1, 3)), "child \"lin\"", "in_features=-1");
    CHECK(bk_nn_sequential_len(seq) == 1);
    /* parameters and buffers */
    CHECK_ERRS(bk_module_param(seq, "0", BK_SHAPE(2)), "\"0\" already exists");
    CHECK(bk_module_param(seq, "w", BK_SHAPE(2)) != NULL);
    CHECK_ERRS(bk_module_param(seq, "w", BK_SHAPE(3)), "\"w\" already exists");
    CHECK_ERRS(bk_module_buffer(seq, "w", BK_SHAPE(3), true), "\"w\" already exists");
    CHECK_ERRS(bk_module_param(seq, "v", BK_SHAPE(-2)), "Sequential", "\"v\"", "negative dimension");
    CHECK_ERRS(bk_module_param(NULL, "v", BK_SHAPE(2)), "module is NULL");
    CHECK_FAILS_INT(bk_module_set_trainable(seq, "nope", false), "no parameter \"nope\"");
    CHECK_FAILS_INT(bk_nn_sequential_append(bk_module_child(seq, 0), bk_nn_relu()),
                    "expected a Sequential, got ReLU");
    CHECK_ERRS(bk_nn_linear(5, -2), "Linear", "out_features=-2");
    bk_module_free(seq);
}

TEST(sequential_with_null_block) {
    /* fails, frees the blocks it was given (ASan: no leak) */
    CHECK_ERR_EXACT(bk_nn_sequential(3, bk_nn_linear(2, 3), NULL, bk_nn_relu()),
                    "Sequential: block 1 is NULL");
    CHECK_ERRS(bk_nn_sequential(3, bk_nn_linear(-1, 3), bk_nn_relu(), bk_nn_linear(3, 1)),
               "Sequential: block 0 is NULL", "Linear: in_features=-1");
    bk_module *blocks[2] = {bk_nn_relu(), NULL};
    CHECK_ERRS(bk_nn_sequential_from(2, blocks), "block 1 is NULL");
    CHECK_ERRS(bk_nn_sequential(-1), "Sequential", "-1");
    CHECK_ERRS(bk_nn_sequential_from(2, NULL), "Sequential");
}

TEST(module_lookup_errors) {
    bk_module *net = bk_nn_sequential(2, bk_nn_linear(3, 4), bk_nn_relu());
    CHECK(bk_module_get(net, "0.weight") != NULL);
    CHECK_ERRS(bk_module_get(net, "1.weight"),
               "module_get: Sequential has no parameter or buffer \"1.weight\"");
    CHECK_ERRS(bk_module_get(net, "nope"), "\"nope\"");
    CHECK_ERRS(bk_module_get(net, "0.weight.x"), "\"0.weight.x\"");
    CHECK_ERRS(bk_module_get(net, "5.bias"), "\"5.bias\"");
    CHECK_ERRS(bk_module_get(net, ""), "no parameter");
    CHECK_ERRS(bk_module_get(NULL, "0.weight"), "module_get");
    CHECK_ERRS(bk_nn_sequential_get(net, 2), "Sequential[]: index 2 is out of range (length 2)");
    CHECK_ERRS(bk_nn_sequential_get(net, -3), "index -3 is out of range (length 2)");
    CHECK(bk_nn_sequential_get(net, -1) == bk_module_child(net, 1));
    CHECK_ERRS(bk_nn_sequential_get(bk_module_child(net, 0), 0), "expected a Sequential, got Linear");
    CHECK_ERRS(bk_module_child(net, 7), "index 7 is out of range");
    CHECK_ERRS(bk_module_child_by_name(net, "x"), "no child \"x\"");
    bk_module_free(net);
}

/* ---- arenas and ownership ------------------------------------------------------------------------- */

TEST(tensor_free_refuses_arena_tensors) {
    bk_tensor *t = bk_ones(BK_SHAPE(2, 2));
    bk_clear_error();
    bk_tensor_free(t); /* refused: the arena owns it */
    CHECK(strstr(bk_last_error(), "tensor_free") && strstr(bk_last_error(), "bk_arena_reset"));
    CHECK(bk_tensor_ok(t, "test") && t->data[3] == 1.0f); /* still alive and intact */
    bk_tensor_free(NULL);                                 /* fine */
}

/* A stale pointer is detected until the arena hands its memory out again (the next tensor
 * made in that arena reuses it), so nothing is allocated in `a` between the reset and the
 * checks: every call below fails before allocating. */
TEST(released_tensor_use) {
    bk_tensor *fresh = bk_ones(BK_SHAPE(3, 2)); /* in the default arena */
    bk_arena *a = bk_arena_new();               /* one small chunk: stale headers stay readable */
    bk_arena *prev = bk_arena_use(a);
    bk_module *lin = bk_nn_linear(2, 2);
    bk_tensor *t = bk_ones(BK_SHAPE(3, 2));
    bk_tensor *y = bk_sum(bk_forward(lin, bk_requires_grad(bk_ones(BK_SHAPE(1, 2)), true)));
    bk_arena_reset(a);
    CHECK_ERRS(bk_relu(t), "relu: input 0 is not a live tensor", "arena was reset", "released");
    CHECK_ERRS(bk_add(fresh, t), "add: input 1", "released");
    CHECK_ERRS(bk_forward(lin, t), "Linear: input 0", "released");
    CHECK_ERRS(FAILS_NAN(bk_item(t)), "item", "released");
    CHECK_ERRS(bk_backward(y) >= 0, "backward", "released");
    CHECK_ERRS(bk_fill(t, 0) >= 0, "fill", "released");
    bk_module_free(lin);
    bk_arena_use(prev);
    bk_arena_free(a);
}

/* ---- user ops and gradcheck ------------------------------------------------------------------------ */

static void noop_backward(bk_node *n) { (void)n; }
static bk_tensor *f_identity(bk_tensor *const *x, int n, void *ud) {
    (void)n, (void)ud;
    return x[0];
}

TEST(op_record_and_gradcheck_errors) {
    static const bk_op nameless = {NULL, noop_backward}, ok_op = {"user", noop_backward};
    bk_tensor *x = bk_requires_grad(bk_rand(BK_SHAPE(2)), true);
    CHECK_ERRS(bk_op_record(&nameless, bk_empty(BK_SHAPE(2)), 1, &x, NULL, 0), "op_record", "invalid op");
    CHECK_ERRS(bk_op_record(NULL, bk_empty(BK_SHAPE(2)), 1, &x, NULL, 0), "op_record");
    CHECK_ERRS(bk_op_record(&ok_op, bk_empty(BK_SHAPE(2)), 1, NULL, NULL, 0), "op_record");
    bk_tensor *nul = NULL;
    CHECK_ERRS(bk_op_record(&ok_op, bk_empty(BK_SHAPE(2)), 1, &nul, NULL, 0), "user: input 0 is NULL");
    bk_tensor *heap = bk_tensor_new(BK_SHAPE(2));
    CHECK_ERRS(bk_op_record(&ok_op, heap, 1, &x, NULL, 0), "user", "arena tensor");
    bk_tensor_free(heap);
    bk_clear_error();
    CHECK(bk_gradcheck(NULL, &x, 1, NULL, 1e-3, 1e-3, 1e-2, NULL) < 0 &&
          strstr(bk_last_error(), "gradcheck"));
    bk_clear_error();
    CHECK(bk_gradcheck(f_identity, &x, 0, NULL, 1e-3, 1e-3, 1e-2, NULL) < 0 &&
          strstr(bk_last_error(), "gradcheck"));
    bk_tensor *bad = NULL;
    bk_clear_error();
    CHECK(bk_gradcheck(f_identity, &bad, 1, NULL, 1e-3, 1e-3, 1e-2, NULL) < 0 &&
          strstr(bk_last_error(), "NULL"));
}

int main(void) {
    RUN(linear_wrong_in_features);
    RUN(matmul_shapes);
    RUN(broadcast_mismatch);
    RUN(backward_errors);
    RUN(null_inputs);
    RUN(null_propagation_keeps_first_error);
    RUN(reshape_errors);
    RUN(dim_errors);
    RUN(concat_slice_select_errors);
    RUN(item_get_copy_errors);
    RUN(bad_shapes_at_creation);
    RUN(module_registration_errors);
    RUN(sequential_with_null_block);
    RUN(module_lookup_errors);
    RUN(tensor_free_refuses_arena_tensors);
    RUN(released_tensor_use);
    RUN(op_record_and_gradcheck_errors);
    return test_summary("test_errors");
}
