/* api_misuse/tensors.h - the API misuse sweep: errors, threads, random numbers, tensors,
 * arenas and autograd.
 *
 * Part of tests/test_api_misuse.c, which includes it after its harness (MISUSE, ACCEPTS,
 * CANNOT_FAIL, EACH_BAD_TENSOR, ...): the sweep's completeness check must see the calls of
 * every part in one process. Not a header of its own.
 */

/* ---- errors, threads, random numbers -------------------------------------------------------- */

TEST(errors_threads_rng) {
    CANNOT_FAIL(bk_last_error() != NULL, "returns the buffer, \"\" when there is no error");
    CANNOT_FAIL((bk_clear_error(), !bk_last_error()[0]), "no arguments");
    const char *volatile no_fmt = NULL; /* volatile: gcc rejects a literal NULL format */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-security" /* (clang: a variable format, on purpose) */
    MISUSE_VOID(bk_set_error(no_fmt), "set_error", "format is NULL");
#pragma GCC diagnostic pop
    CANNOT_FAIL((bk_set_error("%s", "m"), !strcmp(bk_last_error(), "m")), "any message: what it is for");
    char esc[8];
    ACCEPTS(!strcmp(bk_escape(NULL, esc, sizeof esc), "(null)"), "NULL prints as (null)");
    ACCEPTS(!strcmp(bk_escape("abc", NULL, 8), ""), "no buffer: \"\" (documented; never fails)");
    ACCEPTS(!strcmp(bk_escape("abcdefghij", esc, sizeof esc), "abcd..."), "too long: cut, \"...\"");
    CANNOT_FAIL(!strcmp(bk_escape("a\nb", esc, sizeof esc), "a\\nb"), "any string can be escaped");

    MISUSE(bk_set_num_threads(0), "set_num_threads", "0 threads");
    MISUSE(bk_set_num_threads(-3), "set_num_threads", "-3 threads");
    CANNOT_FAIL(bk_get_num_threads() >= 1, "no arguments");
    /* (a valid argv would execute the test again: only NULL is tried) */
    MISUSE(bk_passive_wait_policy(NULL), "passive_wait_policy", "argv is NULL");
    CANNOT_FAIL(bk_gemm_kernel() != NULL && bk_gemm_kernel()[0], "no arguments");

    bk_rng r;
    bk_rng_seed(&r, 7);
    bk_rng copy = *bk_default_rng();
    ACCEPTS((bk_rng_seed(NULL, 5), 1), "NULL seeds the thread's default generator");
    bk_manual_seed(5);
    bk_rng seeded = *bk_default_rng();
    bk_manual_seed(0);
    ACCEPTS((bk_rng_seed(NULL, 5), bk_default_rng()->state == seeded.state), "same as bk_manual_seed");
    ACCEPTS(bk_rng_u32(NULL) == bk_rng_u32(&seeded), "NULL draws from the default generator");
    ACCEPTS(bk_rng_uniform(NULL) == bk_rng_uniform(&seeded), "NULL draws from the default generator");
    ACCEPTS(bk_rng_normal(NULL) == bk_rng_normal(&seeded), "NULL draws from the default generator");
    CANNOT_FAIL((bk_rng_u32(&r), 1), "any state is a valid PCG32 state");
    MISUSE(bk_rng_set_state(&r, 0, 0), "rng_set_state", "even");
    MISUSE(bk_rng_set_state(&r, 5, UINT64_MAX - 1), "rng_set_state", "even");
    ACCEPTS(bk_rng_set_state(NULL, r.state, r.inc) == 0 && bk_default_rng()->state == r.state,
            "NULL sets the thread's default generator");
    bk_manual_seed(0);
    CANNOT_FAIL(bk_default_rng() != NULL, "no arguments");
    CANNOT_FAIL((bk_manual_seed(UINT64_MAX), 1), "any seed is valid");
    *bk_default_rng() = copy;
}

/* ---- tensors ---------------------------------------------------------------------------------- */

TEST(tensor_creation) {
    const int64_t neg[2] = {2, -3}, huge[2] = {INT64_MAX, 2}, fine[2] = {2, 3};
    int64_t nine[BK_MAX_DIMS + 1];
    for (int i = 0; i <= BK_MAX_DIMS; i++) nine[i] = 1;
    const float data[6] = {0};

    MISUSE(bk_tensor_new(2, NULL), "tensor_new", "shape is NULL");
    MISUSE(bk_tensor_new(-1, fine), "tensor_new", "rank -1");
    MISUSE(bk_tensor_new(BK_MAX_DIMS + 1, nine), "tensor_new", "rank 9");
    MISUSE(bk_tensor_new(2, neg), "tensor_new", "negative dimension -3");
    MISUSE(bk_tensor_new(2, huge), "tensor_new", "too many elements");
    EACH_BAD_TENSOR("tensor_clone_owned", bk_tensor_clone_owned(T));

    ACCEPTS((bk_tensor_free(NULL), !bk_last_error()[0]), "NULL is fine, as for free()");
    bk_tensor *a = ones(2, fine);
    MISUSE_VOID(bk_tensor_free(a), "tensor_free", "bk_arena_reset");
    CHECK(bk_tensor_ok(a, "test") && a->data[5] == 1.0f); /* refused: still intact */
    MISUSE_VOID(bk_tensor_free(STALE), "tensor_free", "bk_arena_reset");
    MISUSE_VOID(bk_tensor_free(&FOREIGN), "tensor_free", "not a live heap tensor");

    /* every arena creation function goes through the same shape check */
#define BAD_SHAPES(who, CALL_NDIM_SHAPE)                       \
    do {                                                       \
        int nd_;                                               \
        const int64_t *sh_;                                    \
        nd_ = 2, sh_ = NULL;                                   \
        MISUSE(CALL_NDIM_SHAPE, who, "shape is NULL");         \
        nd_ = -1, sh_ = fine;                                  \
        MISUSE(CALL_NDIM_SHAPE, who, "rank -1");               \
        nd_ = BK_MAX_DIMS + 1, sh_ = nine;                     \
        MISUSE(CALL_NDIM_SHAPE, who, "rank 9");                \
        nd_ = 2, sh_ = neg;                                    \
        MISUSE(CALL_NDIM_SHAPE, who, "negative dimension -3"); \
        nd_ = 2, sh_ = huge;                                   \
        MISUSE(CALL_NDIM_SHAPE, who, "too many elements");     \
    } while (0)
    BAD_SHAPES("tensor", bk_empty(nd_, sh_));
    BAD_SHAPES("tensor", bk_zeros(nd_, sh_));
    BAD_SHAPES("tensor", bk_ones(nd_, sh_));
    BAD_SHAPES("tensor", bk_full(nd_, sh_, 2.0f));
    BAD_SHAPES("tensor", bk_from_data(nd_, sh_, data));
    BAD_SHAPES("tensor", bk_rand(nd_, sh_));
    BAD_SHAPES("tensor", bk_randn(nd_, sh_));
    BAD_SHAPES("tensor", bk_rand_rng(NULL, nd_, sh_));
    BAD_SHAPES("tensor", bk_randn_rng(NULL, nd_, sh_));
    MISUSE(bk_from_data(2, fine, NULL), "from_data", "data is NULL");
    ACCEPTS(bk_rand_rng(NULL, 2, fine) != NULL, "rng NULL: the thread's default generator");
    ACCEPTS(bk_randn_rng(NULL, 2, fine) != NULL, "rng NULL: the thread's default generator");
    CANNOT_FAIL(bk_scalar(NAN) != NULL, "any value (out of memory aside)");
    EACH_BAD_TENSOR("zeros_like", bk_zeros_like(T));
}

TEST(tensor_fill_copy_inspect) {
    bk_tensor *x = bk_rand(BK_SHAPE(2, 3));
    EACH_BAD_TENSOR("fill", bk_fill(T, 1.0f));
    EACH_BAD_TENSOR("fill_uniform", bk_fill_uniform(T, NULL, 0, 1));
    EACH_BAD_TENSOR("fill_normal", bk_fill_normal(T, NULL, 0, 1));
    ACCEPTS(bk_fill_uniform(x, NULL, 0, 1) == 0, "rng NULL: the thread's default generator");
    ACCEPTS(bk_fill_normal(x, NULL, 0, 1) == 0, "rng NULL: the thread's default generator");
    EACH_BAD_TENSOR("copy", bk_copy(T, x));
    EACH_BAD_TENSOR("copy", bk_copy(x, T));
    MISUSE(bk_copy(x, bk_rand(BK_SHAPE(7))), "copy", "(2, 3)", "(7,)", "differ in size");
    EACH_BAD_TENSOR("requires_grad", bk_requires_grad(T, true));
    MISUSE(bk_requires_grad(bk_mul(leaf(BK_SHAPE(2)), leaf(BK_SHAPE(2))), false), "requires_grad", "leaf");

    ACCEPTS(!bk_same_shape(NULL, x) && !bk_same_shape(x, NULL), "NULL has no shape: false, no error");
    ACCEPTS(!bk_same_shape(&FOREIGN, x), "compares shapes only (foreign: rank 0 here): never an error");
    char buf[64];
    ACCEPTS(!strcmp(bk_shape_str(NULL, buf, sizeof buf), "(null)"), "NULL is written as \"(null)\"");
    MISUSE(bk_shape_str(x, NULL, 16), "shape_str", "buf is NULL");
    ACCEPTS(bk_shape_str(x, buf, 0) == buf, "n = 0 writes nothing, as snprintf");
    EACH_BAD_TENSOR("item", bk_item(T));
    MISUSE(bk_item(x), "item", "6 elements", "(2, 3)");
    const int64_t at[2] = {1, 2}, row_out[2] = {2, 0}, col_out[2] = {0, 3}, neg[2] = {-1, 0};
    EACH_BAD_TENSOR("get", bk_get(T, at));
    MISUSE(bk_get(x, NULL), "get", "index is NULL");
    MISUSE(bk_get(x, row_out), "get", "index 2", "dimension 0");
    MISUSE(bk_get(x, col_out), "get", "index 3", "dimension 1");
    MISUSE(bk_get(x, neg), "get", "index -1");
    ACCEPTS(!isnan(bk_get(bk_scalar(1), NULL)), "a rank-0 tensor needs no index");

    FILE *f = tmpfile();
    CHECK(f != NULL);
    if (f) {
        T = NULL;
        MISUSE_VOID(bk_print(T, f), "print", "NULL");
        T = STALE;
        MISUSE_VOID(bk_print(T, f), "print", "arena was reset");
        T = &FOREIGN;
        MISUSE_VOID(bk_print(T, f), "print", "not a brick tensor");
        fclose(f);
    }
    ACCEPTS((bk_print(bk_scalar(1), stdout), !bk_last_error()[0]), "f NULL means stdout (here given stdout)");
    EACH_BAD_TENSOR("who", bk_tensor_ok(T, "who") ? &FOREIGN : NULL);
    MISUSE(bk_tensor_ok(NULL, NULL) ? x : NULL, "tensor_ok", "NULL");
}

/* ---- arenas ------------------------------------------------------------------------------------ */

TEST(arenas) {
    bk_arena *a;
    CANNOT_FAIL((a = bk_arena_new()) != NULL, "no arguments (out of memory aside)");
    ACCEPTS((bk_arena_free(NULL), !bk_last_error()[0]), "NULL is fine, as for free()");
    ACCEPTS((bk_arena_reset(NULL), !bk_last_error()[0]), "NULL means the thread's current arena");
    bk_arena *prev = bk_arena_use(a);
    ACCEPTS(bk_arena_use(NULL) == a && bk_arena_current() != a, "NULL switches back to the default arena");
    bk_arena_use(prev);
    CANNOT_FAIL(bk_arena_current() != NULL, "no arguments (out of memory aside)");
    bk_tensor *t = bk_ones(BK_SHAPE(1000));
    (void)t;
    ACCEPTS(bk_arena_bytes_used(NULL) == bk_arena_bytes_used(bk_arena_current()) &&
                bk_arena_bytes_used(NULL) > 0,
            "NULL means the thread's current arena, as for bk_arena_reset");
    ACCEPTS(bk_arena_bytes_reserved(NULL) == bk_arena_bytes_reserved(bk_arena_current()),
            "NULL means the thread's current arena");
    ACCEPTS(bk_arena_allocations(NULL) == bk_arena_allocations(bk_arena_current()),
            "NULL means the thread's current arena");
    bk_arena_free(a);
    /* bk_thread_cleanup is called by test_summary at the end (it frees the default arena) */
    CANNOT_FAIL((bk_thread_cleanup(), bk_arena_current() != NULL),
                "no arguments; a later call makes a new default arena");
}

/* ---- autograd ------------------------------------------------------------------------------------ */

static void noop_backward(bk_node *n) { (void)n; }
static bk_tensor *f_square(bk_tensor *const *x, int n, void *ud) {
    (void)n, (void)ud;
    return bk_mul(x[0], x[0]);
}

TEST(autograd) {
    CANNOT_FAIL(bk_set_grad_enabled(true) || 1, "a flag");
    CANNOT_FAIL(bk_is_grad_enabled(), "no arguments");
    CANNOT_FAIL(!bk_set_detect_anomaly(false), "a flag");
    CANNOT_FAIL(!bk_is_detect_anomaly(), "no arguments");

    bk_tensor *w = leaf(BK_SHAPE(2, 3));
    EACH_BAD_TENSOR("backward", bk_backward(T));
    MISUSE(bk_backward(bk_mul(w, w)), "backward", "only for scalar outputs", "(2, 3)");
    MISUSE(bk_backward(bk_sum(bk_rand(BK_SHAPE(3)))), "backward", "does not require grad");
    bk_tensor *L = bk_sum(bk_mul(w, w));
    CHECK(bk_backward(L) == 0);
    MISUSE(bk_backward(L), "backward", "second time", "retain_graph");
    /* a new root over a consumed part of the graph */
    bk_tensor *y = bk_mul(w, w), *L1 = bk_sum(y), *L2 = bk_mean(y);
    CHECK(bk_backward(L1) == 0);
    MISUSE(bk_backward(L2), "backward", "already consumed");

    bk_tensor *y2 = bk_mul_scalar(w, 3);
    EACH_BAD_TENSOR("backward", bk_backward_ex(T, NULL, false));
    MISUSE(bk_backward_ex(y2, STALE, false), "backward", "arena was reset");       /* grad_root NULL: */
    MISUSE(bk_backward_ex(y2, &FOREIGN, false), "backward", "not a brick tensor"); /* implicit (below) */
    MISUSE(bk_backward_ex(y2, NULL, false), "backward", "only for scalar outputs");
    MISUSE(bk_backward_ex(y2, bk_ones(BK_SHAPE(3, 2)), false), "backward", "(3, 2)", "(2, 3)");
    MISUSE(bk_backward_ex(y2, bk_ones(BK_SHAPE(6)), false), "backward", "(6,)", "(2, 3)");
    CHECK(bk_backward_ex(y2, bk_ones(BK_SHAPE(2, 3)), true) == 0);
    ACCEPTS(bk_backward_ex(y2, bk_ones(BK_SHAPE(2, 3)), false) == 0,
            "retain_graph: a second backward is fine");
    MISUSE(bk_backward_ex(y2, bk_ones(BK_SHAPE(2, 3)), false), "backward", "second time");
    EACH_BAD_TENSOR("detach", bk_detach(T));

    /* user ops */
    static const bk_op ok_op = {"user", noop_backward}, nameless = {NULL, noop_backward},
                       no_backward = {"user", NULL};
    bk_tensor *in[2] = {w, NULL};
    MISUSE(bk_op_record(NULL, bk_empty(BK_SHAPE(2, 3)), 1, in, NULL, 0), "op_record", "invalid op");
    MISUSE(bk_op_record(&nameless, bk_empty(BK_SHAPE(2, 3)), 1, in, NULL, 0), "op_record", "invalid op");
    MISUSE(bk_op_record(&no_backward, bk_empty(BK_SHAPE(2, 3)), 1, in, NULL, 0), "op_record", "invalid op");
    MISUSE(bk_op_record(&ok_op, bk_empty(BK_SHAPE(2, 3)), -1, in, NULL, 0), "op_record", "inputs");
    MISUSE(bk_op_record(&ok_op, bk_empty(BK_SHAPE(2, 3)), 1, NULL, NULL, 0), "op_record", "inputs");
    MISUSE(bk_op_record(&ok_op, bk_empty(BK_SHAPE(2, 3)), 2, in, NULL, 0), "user", "input 1 is NULL");
    MISUSE(bk_op_record(&ok_op, NULL, 1, in, NULL, 0), "user", "output is NULL");
    in[1] = STALE;
    MISUSE(bk_op_record(&ok_op, bk_empty(BK_SHAPE(2, 3)), 2, in, NULL, 0), "user", "input 1",
           "arena was reset");
    in[1] = &FOREIGN;
    MISUSE(bk_op_record(&ok_op, bk_empty(BK_SHAPE(2, 3)), 2, in, NULL, 0), "user", "input 1",
           "not a brick tensor");
    MISUSE(bk_op_record(&ok_op, STALE, 1, in, NULL, 0), "user", "arena was reset");
    MISUSE(bk_op_record(&ok_op, &FOREIGN, 1, in, NULL, 0), "user", "not a brick tensor");
    bk_tensor *heap = bk_tensor_new(BK_SHAPE(2, 3));
    MISUSE(bk_op_record(&ok_op, heap, 1, in, NULL, 0), "user", "arena tensor");
    bk_tensor_free(heap);
    MISUSE(bk_op_record(&ok_op, bk_empty(BK_SHAPE(2, 3)), 1, in, NULL, 8), "user", "params is NULL");

    bk_tensor *yy = bk_mul_scalar(w, 2);
    bk_node *n = yy->node;
    CHECK(n != NULL);
    MISUSE(bk_node_input(NULL, 0), "node_input", "node is NULL");
    MISUSE(bk_node_input(n, 1), "node_input", "input 1", "1 input");
    MISUSE(bk_node_input(n, -1), "node_input", "input -1");
    MISUSE(bk_node_output(NULL), "node_output", "node is NULL");
    MISUSE(bk_node_grad_output(NULL), "node_grad_output", "node is NULL");
    MISUSE(bk_node_grad_input(NULL, 0), "node_grad_input", "node is NULL");
    MISUSE(bk_node_grad_input(n, 1), "node_grad_input", "input 1");
    MISUSE(bk_node_grad_input(n, -2), "node_grad_input", "input -2");
    MISUSE(bk_node_params(NULL), "node_params", "node is NULL");
    MISUSE(bk_node_num_inputs(NULL), "node_num_inputs", "node is NULL");
    ACCEPTS(!strcmp(bk_node_op_name(NULL), "?"), "\"?\" for NULL, as bk_module_name");

    /* gradcheck */
    bk_tensor *x = leaf(BK_SHAPE(3));
    MISUSE(bk_gradcheck(NULL, &x, 1, NULL, 1e-3, 1e-3, 1e-2, NULL), "gradcheck", "invalid arguments");
    MISUSE(bk_gradcheck(f_square, NULL, 1, NULL, 1e-3, 1e-3, 1e-2, NULL), "gradcheck", "invalid arguments");
    MISUSE(bk_gradcheck(f_square, &x, 0, NULL, 1e-3, 1e-3, 1e-2, NULL), "gradcheck", "invalid arguments");
    MISUSE(bk_gradcheck(f_square, &x, -1, NULL, 1e-3, 1e-3, 1e-2, NULL), "gradcheck", "invalid arguments");
    EACH_BAD_TENSOR("gradcheck", bk_gradcheck(f_square, &T, 1, NULL, 1e-3, 1e-3, 1e-2, NULL));
    MISUSE(bk_gradcheck(f_square, &x, 1, NULL, 0, 1e-3, 1e-2, NULL), "gradcheck", "eps");
    MISUSE(bk_gradcheck(f_square, &x, 1, NULL, -1e-3, 1e-3, 1e-2, NULL), "gradcheck", "eps");
    MISUSE(bk_gradcheck(f_square, &x, 1, NULL, 1e-3, -1, 1e-2, NULL), "gradcheck", "atol");
    MISUSE(bk_gradcheck(f_square, &x, 1, NULL, 1e-3, 1e-3, NAN, NULL), "gradcheck", "rtol");
    ACCEPTS(bk_gradcheck(f_square, &x, 1, NULL, 1e-3, 1e-3, 1e-2, NULL) <= 1, "report NULL: no report");
}
