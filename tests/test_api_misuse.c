/* test_api_misuse.c - API misuse, swept over every public function (issue 6).
 *
 * Every function declared in include/brick.h is called here the way a careless caller
 * would call it: NULL for each pointer argument, negative sizes and ranks, huge sizes,
 * out-of-range indices and dims, a tensor whose arena was reset ("stale", see
 * bk_arena_reset), a struct brick never made ("foreign": zeroed memory, which is what a
 * freed heap block or an uninitialised struct most often looks like) and a block of the
 * wrong kind passed to a kind-specific function. Each such call must fail as the contract
 * says - NULL, a negative number or NaN, or for a function that returns nothing a message
 * left in bk_last_error() - with a message naming the function (or the op / block it
 * implements) and the problem. Nothing may crash, leak (`make test SAN=1`, `make valgrind`)
 * or hit undefined behaviour (UBSan aborts the SAN=1 build on any).
 *
 *   MISUSE(expr, "who", "what")   expr must fail, and the message hold every substring.
 *   MISUSE_VOID(stmt, ...)        for functions returning nothing: the message is checked.
 *   ACCEPTS(cond, "why")          NULL (or the odd value) has a documented meaning; cond
 *                                 checks that meaning.
 *   CANNOT_FAIL(cond, "why")      nothing to misuse (no arguments, or any value is valid).
 *
 * Completeness: each of these macros records the function its expression starts with.
 * sweep_is_complete, the last test, reads include/brick.h, lists every function declared
 * there, and fails naming each one that no check here called. So a public function added to
 * brick.h fails this test until its misuse is swept too. The counts it prints are the ones
 * docs/reliability.md quotes.
 */
#define _POSIX_C_SOURCE 200809L /* mkdtemp */

#include "test.h"

#include "ops/elementwise_ops.h" /* the element-wise ops, one row each: all are swept */

#include <ctype.h>
#include <stdint.h>

/* ---- the harness ------------------------------------------------------------------------ */

static int n_misuse, n_accepts, n_cannot_fail;

#define MAX_CALLED 1024
static const char *called[MAX_CALLED]; /* leading identifiers of the checked expressions */
static size_t called_len[MAX_CALLED];
static int called_kind[MAX_CALLED]; /* KIND_* bits: how the function was checked */
static int n_called;
enum { KIND_MISUSE = 1, KIND_ACCEPTS = 2, KIND_CANNOT_FAIL = 4 };

/* Records the function an expression like "bk_add(NULL, x)", "(bk_free(p), 1)" or
 * "!strcmp(bk_name(NULL), "?")" checks: the first bk_... it calls. */
static void record_call(const char *expr, int kind) {
    const char *all = expr;
    size_t n = 0;
    for (; *expr; expr++) { /* the first bk_... called */
        if (strncmp(expr, "bk_", 3) != 0 || (expr > all && (isalnum((unsigned char)expr[-1]) || expr[-1] == '_')))
            continue;
        for (n = 0; isalnum((unsigned char)expr[n]) || expr[n] == '_';) n++;
        if (expr[n] == '(') break;
        expr += n - 1;
    }
    if (!*expr) {
        expr = all;
        fprintf(stderr, "  FAIL [%s]: a sweep check must start with the call it checks: %s\n",
                test_current_, expr);
        test_failed_checks_++;
        return;
    }
    for (int i = 0; i < n_called; i++)
        if (called_len[i] == n && !strncmp(called[i], expr, n)) {
            called_kind[i] |= kind;
            return;
        }
    if (n_called < MAX_CALLED) {
        called[n_called] = expr;
        called_kind[n_called] = kind;
        called_len[n_called++] = n;
    }
}

/* What counts as a failure for each return type: NULL, a negative number, NaN. */
static bool failed_ptr(const void *p) { return p == NULL; }
static bool failed_int(long long v) { return v < 0; }
static bool failed_float(double v) { return isnan(v); }
static bool failed_double(double v) { return isnan(v) || v < 0; } /* bk_gradcheck: negative */
#define FAILED_(v)                                                                        \
    _Generic((v), float: failed_float, double: failed_double, int: failed_int, long: failed_int, \
             long long: failed_int, default: failed_ptr)(v)

static void misuse_check(const char *file, int line, const char *expr, bool failed, bool is_void,
                         const char *const *subs) {
    record_call(expr, KIND_MISUSE);
    n_misuse++;
    const char *e = bk_last_error();
    const char *missing = NULL;
    for (int k = 0; subs[k]; k++)
        if (!strstr(e, subs[k])) {
            missing = subs[k];
            break;
        }
    if (!failed || missing || !e[0]) {
        fprintf(stderr, "  FAIL %s:%d [%s]: %s\n       expected %s with \"%s\", got %s \"%s\"\n",
                file, line, test_current_, expr, is_void ? "an error message" : "failure",
                missing ? missing : "(any message)", failed ? "" : "SUCCESS and", e);
        test_failed_checks_++;
    }
    bk_clear_error();
}

/* expr must fail, leaving a message that contains every one of the substrings. */
#define MISUSE(expr, ...)                                                                 \
    misuse_check(__FILE__, __LINE__, #expr, (bk_clear_error(), FAILED_(expr)), false,     \
                 (const char *const[]){__VA_ARGS__, NULL})
/* For functions that return nothing: stmt must leave such a message. */
#define MISUSE_VOID(stmt, ...)                                                            \
    do {                                                                                  \
        bk_clear_error();                                                                 \
        stmt;                                                                             \
        misuse_check(__FILE__, __LINE__, #stmt, true, true, (const char *const[]){__VA_ARGS__, NULL}); \
    } while (0)

static void accept_check(const char *file, int line, const char *expr, bool ok, int *counter,
                         const char *why) {
    record_call(expr, counter == &n_accepts ? KIND_ACCEPTS : KIND_CANNOT_FAIL);
    (*counter)++;
    if (!ok) {
        fprintf(stderr, "  FAIL %s:%d [%s]: %s (%s) does not hold; last error \"%s\"\n", file,
                line, test_current_, expr, why, bk_last_error());
        test_failed_checks_++;
    }
    bk_clear_error();
}
/* cond (which starts with the call) must hold: NULL or the value has a documented meaning. */
#define ACCEPTS(cond, why) accept_check(__FILE__, __LINE__, #cond, (bk_clear_error(), (cond)), &n_accepts, why)
/* cond must hold: the function has no argument a caller could get wrong. */
#define CANNOT_FAIL(cond, why) accept_check(__FILE__, __LINE__, #cond, (bk_clear_error(), (cond)), &n_cannot_fail, why)

/* ---- bad objects ---------------------------------------------------------------------------- */

static bk_arena *dead_arena;  /* reset once; nothing is ever allocated in it again */
static bk_tensor *STALE;      /* a tensor of dead_arena: released by its reset */
static bk_tensor FOREIGN;     /* zeroed memory: not a tensor brick made */
static bk_module FOREIGN_M;   /* zeroed memory: not a block brick made */
static bk_tensor *T;          /* the bad tensor EACH_BAD_TENSOR substitutes */
static bk_module *M;          /* the bad block EACH_BAD_MODULE substitutes */

/* CALL (an expression using T) with T NULL, stale and foreign: each must fail naming who. */
#define EACH_BAD_TENSOR(who, CALL)                                                        \
    do {                                                                                  \
        T = NULL;                                                                         \
        MISUSE(CALL, who, "NULL");                                                        \
        T = STALE;                                                                        \
        MISUSE(CALL, who, "not a live tensor", "arena was reset");                        \
        T = &FOREIGN;                                                                     \
        MISUSE(CALL, who, "not a live tensor", "not a brick tensor");                     \
    } while (0)
/* CALL (using M) with M NULL and foreign. */
#define EACH_BAD_MODULE(who, CALL)                                                        \
    do {                                                                                  \
        M = NULL;                                                                         \
        MISUSE(CALL, who, "NULL");                                                        \
        M = &FOREIGN_M;                                                                   \
        MISUSE(CALL, who, "not a live module");                                           \
    } while (0)

/* Frees a block made in a check; true if there was one. */
static bool freed(bk_module *m) {
    bk_module_free(m);
    return m != NULL;
}

static bk_tensor *ones(int ndim, const int64_t *shape) { return bk_ones(ndim, shape); }
static bk_tensor *leaf(int ndim, const int64_t *shape) { return bk_requires_grad(bk_rand(ndim, shape), true); }

/* ---- errors, threads, random numbers -------------------------------------------------------- */

TEST(errors_threads_rng) {
    CANNOT_FAIL(bk_last_error() != NULL, "returns the buffer, \"\" when there is no error");
    CANNOT_FAIL((bk_clear_error(), !bk_last_error()[0]), "no arguments");
    const char *volatile no_fmt = NULL; /* volatile: gcc rejects a literal NULL format */
    MISUSE_VOID(bk_set_error(no_fmt), "set_error", "format is NULL");
    CANNOT_FAIL((bk_set_error("%s", "m"), !strcmp(bk_last_error(), "m")), "any message: what it is for");
    char esc[8];
    ACCEPTS(!strcmp(bk_escape(NULL, esc, sizeof esc), "(null)"), "NULL prints as (null)");
    ACCEPTS(!strcmp(bk_escape("abc", NULL, 8), ""), "no buffer: \"\" (documented; never fails)");
    ACCEPTS(!strcmp(bk_escape("abcdefghij", esc, sizeof esc), "abcd..."), "too long: cut, \"...\"");
    CANNOT_FAIL(!strcmp(bk_escape("a\nb", esc, sizeof esc), "a\\nb"), "any string can be escaped");

    MISUSE(bk_set_num_threads(0), "set_num_threads", "0 threads");
    MISUSE(bk_set_num_threads(-3), "set_num_threads", "-3 threads");
    CANNOT_FAIL(bk_get_num_threads() >= 1, "no arguments");
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
#define BAD_SHAPES(who, CALL_NDIM_SHAPE)                                                  \
    do {                                                                                  \
        int nd_;                                                                          \
        const int64_t *sh_;                                                               \
        nd_ = 2, sh_ = NULL;                                                              \
        MISUSE(CALL_NDIM_SHAPE, who, "shape is NULL");                                    \
        nd_ = -1, sh_ = fine;                                                             \
        MISUSE(CALL_NDIM_SHAPE, who, "rank -1");                                          \
        nd_ = BK_MAX_DIMS + 1, sh_ = nine;                                                \
        MISUSE(CALL_NDIM_SHAPE, who, "rank 9");                                           \
        nd_ = 2, sh_ = neg;                                                               \
        MISUSE(CALL_NDIM_SHAPE, who, "negative dimension -3");                            \
        nd_ = 2, sh_ = huge;                                                              \
        MISUSE(CALL_NDIM_SHAPE, who, "too many elements");                                \
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
    ACCEPTS(bk_arena_bytes_used(NULL) == bk_arena_bytes_used(bk_arena_current()) && bk_arena_bytes_used(NULL) > 0,
            "NULL means the thread's current arena, as for bk_arena_reset");
    ACCEPTS(bk_arena_bytes_reserved(NULL) == bk_arena_bytes_reserved(bk_arena_current()),
            "NULL means the thread's current arena");
    ACCEPTS(bk_arena_allocations(NULL) == bk_arena_allocations(bk_arena_current()),
            "NULL means the thread's current arena");
    bk_arena_free(a);
    /* bk_thread_cleanup is called by test_summary at the end (it frees the default arena) */
    CANNOT_FAIL((bk_thread_cleanup(), bk_arena_current() != NULL), "no arguments; a later call makes a new default arena");
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
    MISUSE(bk_backward_ex(y2, STALE, false), "backward", "arena was reset");   /* grad_root NULL: */
    MISUSE(bk_backward_ex(y2, &FOREIGN, false), "backward", "not a brick tensor"); /* implicit (below) */
    MISUSE(bk_backward_ex(y2, NULL, false), "backward", "only for scalar outputs");
    MISUSE(bk_backward_ex(y2, bk_ones(BK_SHAPE(3, 2)), false), "backward", "(3, 2)", "(2, 3)");
    MISUSE(bk_backward_ex(y2, bk_ones(BK_SHAPE(6)), false), "backward", "(6,)", "(2, 3)");
    CHECK(bk_backward_ex(y2, bk_ones(BK_SHAPE(2, 3)), true) == 0);
    ACCEPTS(bk_backward_ex(y2, bk_ones(BK_SHAPE(2, 3)), false) == 0, "retain_graph: a second backward is fine");
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
    MISUSE(bk_op_record(&ok_op, bk_empty(BK_SHAPE(2, 3)), 2, in, NULL, 0), "user", "input 1", "arena was reset");
    in[1] = &FOREIGN;
    MISUSE(bk_op_record(&ok_op, bk_empty(BK_SHAPE(2, 3)), 2, in, NULL, 0), "user", "input 1", "not a brick tensor");
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

/* ---- ops ------------------------------------------------------------------------------------------ */

typedef bk_tensor *(*unary_fn)(bk_tensor *);
typedef bk_tensor *(*scalar_fn)(bk_tensor *, float);
typedef bk_tensor *(*binary_fn)(bk_tensor *, bk_tensor *);

/* The function-pointer loops below cannot tell record_call which function they call, so
 * each loop body is spelled out per function through these macros. */
#define UNARY(fn, who) EACH_BAD_TENSOR(who, fn(T))
#define SCALAR(fn, who) EACH_BAD_TENSOR(who, fn(T, 2.0f))
#define BINARY(fn, who)                                                                   \
    do {                                                                                  \
        EACH_BAD_TENSOR(who, fn(T, x));                                                   \
        EACH_BAD_TENSOR(who, fn(x, T));                                                   \
        MISUSE(fn(x, bk_rand(BK_SHAPE(4))), who, "(2, 3)", "(4,)", "cannot be broadcast"); \
    } while (0)

/* every row of src/ops/elementwise_ops.h: bk_<name> with each bad tensor, and a bad
 * broadcast for the binary ones */
TEST(elementwise_ops) {
    bk_tensor *x = bk_rand(BK_SHAPE(2, 3));
#define X_BINARY(name, ...) BINARY(bk_##name, #name);
#define X_SCALAR(name, ...) SCALAR(bk_##name, #name);
#define X_UNARY(name, ...) UNARY(bk_##name, #name);
    BK_BINARY_OPS(X_BINARY)
    BK_COMPARE_OPS(X_BINARY)
    BK_SCALAR_OPS(X_SCALAR)
    BK_UNARY_OPS(X_UNARY)
#undef X_BINARY
#undef X_SCALAR
#undef X_UNARY
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

TEST(cnn_ops) {
    bk_tensor *x = bk_rand(BK_SHAPE(1, 2, 5, 5)), *w = bk_rand(BK_SHAPE(4, 2, 3, 3)), *b = bk_rand(BK_SHAPE(4));
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
        {{0, 2}, {2, 2}, {0, 0}}, {{2, -2}, {2, 2}, {0, 0}}, {{2, 2}, {0, 2}, {0, 0}},
        {{2, 2}, {2, -1}, {0, 0}}, {{2, 2}, {2, 2}, {-1, 0}}, {{2, 2}, {2, 2}, {2, 0}},
        {{9, 9}, {1, 1}, {0, 0}}, {{2, 2}, {2, 2}, {0, INT64_MAX}}, {{INT64_MAX, 2}, {1, 1}, {0, 0}},
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

    bk_tensor *rm = bk_zeros(BK_SHAPE(2)), *rv = bk_ones(BK_SHAPE(2)), *g = bk_ones(BK_SHAPE(2)), *be = bk_zeros(BK_SHAPE(2));
    bk_tensor *x2 = bk_rand(BK_SHAPE(3, 2));
    EACH_BAD_TENSOR("batch_norm", bk_batch_norm(T, rm, rv, g, be, true, 0.1f, 1e-5f));
    EACH_BAD_TENSOR("batch_norm", bk_batch_norm(x2, T, rv, g, be, true, 0.1f, 1e-5f));
    EACH_BAD_TENSOR("batch_norm", bk_batch_norm(x2, rm, T, g, be, true, 0.1f, 1e-5f));
    EACH_BAD_TENSOR("batch_norm", bk_batch_norm(x2, rm, rv, T, be, true, 0.1f, 1e-5f));
    EACH_BAD_TENSOR("batch_norm", bk_batch_norm(x2, rm, rv, g, T, true, 0.1f, 1e-5f));
    T = NULL; /* the message numbers the argument as it comes in the call */
    MISUSE(bk_batch_norm(x2, T, rv, g, be, true, 0.1f, 1e-5f), "batch_norm", "input 1 is NULL");
    MISUSE(bk_batch_norm(x2, rm, rv, g, T, true, 0.1f, 1e-5f), "batch_norm", "input 4 is NULL");
    MISUSE(bk_batch_norm(bk_rand(BK_SHAPE(3)), rm, rv, g, be, true, 0.1f, 1e-5f), "batch_norm", "at least 2 dimensions");
    MISUSE(bk_batch_norm(bk_rand(BK_SHAPE(3, 5)), rm, rv, g, be, true, 0.1f, 1e-5f), "batch_norm", "5 channels");
    MISUSE(bk_batch_norm(bk_rand(BK_SHAPE(1, 2)), rm, rv, g, be, true, 0.1f, 1e-5f), "batch_norm", "more than 1 value");

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
    MISUSE(bk_embedding(bk_from_data(BK_SHAPE(1), (const float[]){5}), weight, -1), "embedding", "id 5");
    MISUSE(bk_embedding(bk_from_data(BK_SHAPE(1), (const float[]){-1}), weight, -1), "embedding", "id -1");
    MISUSE(bk_embedding(bk_from_data(BK_SHAPE(1), (const float[]){1.5f}), weight, -1), "embedding", "id 1.5");
    MISUSE(bk_embedding(bk_from_data(BK_SHAPE(1), (const float[]){NAN}), weight, -1), "embedding", "nan");

    bk_tensor *q = bk_rand(BK_SHAPE(2, 3, 4)), *k = bk_rand(BK_SHAPE(2, 5, 4)), *v = bk_rand(BK_SHAPE(2, 5, 6));
    EACH_BAD_TENSOR("attention_weights", bk_attention_weights(T, k, 2, true, NULL, NULL, 0));
    EACH_BAD_TENSOR("attention_weights", bk_attention_weights(q, T, 2, true, NULL, NULL, 0));
    T = STALE;
    MISUSE(bk_attention_weights(q, k, 2, true, T, NULL, 0), "attention_weights", "attn_mask", "arena was reset");
    MISUSE(bk_attention_weights(q, k, 2, true, NULL, T, 0), "attention_weights", "key_padding_mask", "arena was reset");
    T = &FOREIGN;
    MISUSE(bk_attention_weights(q, k, 2, true, T, NULL, 0), "attention_weights", "attn_mask", "not a brick tensor");
    ACCEPTS(bk_attention_weights(q, k, 2, true, NULL, NULL, 0) != NULL, "masks NULL: no masks; scale 0: 1/sqrt(D)");
    const int64_t heads[4] = {0, -2, 3, INT64_MAX};
    for (int i = 0; i < 4; i++)
        MISUSE(bk_attention_weights(q, k, heads[i], true, NULL, NULL, 0), "attention", "num_heads");
    MISUSE(bk_attention_weights(bk_rand(BK_SHAPE(2, 0)), bk_rand(BK_SHAPE(2, 0)), INT64_MAX, true, NULL, NULL, 0),
           "attention", "3-d");
    MISUSE(bk_attention_weights(bk_rand(BK_SHAPE(2, 2, 0)), bk_rand(BK_SHAPE(2, 2, 0)), INT64_MAX, true, NULL, NULL, 0),
           "attention_weights", "num_heads", "too many elements");
    MISUSE(bk_attention_weights(q, bk_rand(BK_SHAPE(3, 5, 4)), 2, true, NULL, NULL, 0), "attention", "key (3, 5, 4)");
    MISUSE(bk_attention_weights(q, k, 2, true, bk_zeros(BK_SHAPE(3, 4)), NULL, 0), "attention", "attn_mask (3, 4)");
    MISUSE(bk_attention_weights(q, k, 2, true, NULL, bk_zeros(BK_SHAPE(2, 4)), 0), "attention", "key_padding_mask (2, 4)");

    bk_tensor *P = bk_attention_weights(q, k, 2, true, NULL, NULL, 0);
    EACH_BAD_TENSOR("attention_apply", bk_attention_apply(T, v, true));
    EACH_BAD_TENSOR("attention_apply", bk_attention_apply(P, T, true));
    MISUSE(bk_attention_apply(q, v, true), "attention", "weights must be 4-d");
    MISUSE(bk_attention_apply(P, bk_rand(BK_SHAPE(2, 4, 6)), true), "attention", "value (2, 4, 6)");
    MISUSE(bk_attention_apply(P, bk_rand(BK_SHAPE(2, 5, 5)), true), "attention", "divisible");
    MISUSE(bk_attention_apply(bk_rand(BK_SHAPE(2, 0, 3, 5)), v, true), "attention", "heads");

    EACH_BAD_TENSOR("scaled_dot_product_attention", bk_scaled_dot_product_attention(T, k, v, NULL, 0, false, NULL));
    EACH_BAD_TENSOR("scaled_dot_product_attention", bk_scaled_dot_product_attention(q, T, v, NULL, 0, false, NULL));
    EACH_BAD_TENSOR("scaled_dot_product_attention", bk_scaled_dot_product_attention(q, k, T, NULL, 0, false, NULL));
    T = STALE;
    MISUSE(bk_scaled_dot_product_attention(q, k, v, T, 0, false, NULL), "attn_mask", "arena was reset");
    MISUSE(bk_scaled_dot_product_attention(q, k, v, NULL, 1.5f, true, NULL), "dropout", "between 0 and 1");
    MISUSE(bk_scaled_dot_product_attention(q, k, v, NULL, -1, false, NULL), "dropout", "between 0 and 1");
    ACCEPTS(bk_scaled_dot_product_attention(q, k, v, NULL, 0.5f, true, NULL) != NULL, "rng NULL: the default generator");

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

/* ---- modules ---------------------------------------------------------------------------------------- */

static bk_tensor *id_forward(bk_module *m, bk_tensor *x) {
    (void)m;
    return x;
}
static const bk_module_class USER = {"User", id_forward, NULL, NULL};
static void count_block(bk_module *m, void *ud) {
    (void)m;
    (*(int *)ud)++;
}

TEST(module_base) {
    static const bk_module_class nameless = {NULL, id_forward, NULL, NULL}, no_forward = {"X", NULL, NULL, NULL};
    MISUSE(bk_module_new(NULL, sizeof(bk_module)), "module_new", "class");
    MISUSE(bk_module_new(&nameless, sizeof(bk_module)), "module_new", "name");
    MISUSE(bk_module_new(&no_forward, sizeof(bk_module)), "module_new", "forward");
    MISUSE(bk_module_new(&USER, sizeof(bk_module) - 1), "module_new", "smaller than bk_module");
    ACCEPTS((bk_module_free(NULL), !bk_last_error()[0]), "NULL is fine, as for free()");
    MISUSE_VOID(bk_module_free(&FOREIGN_M), "module_free", "not a live module");
    MISUSE(bk_module_ref(NULL), "module_ref", "NULL");
    MISUSE(bk_module_ref(&FOREIGN_M), "module_ref", "not a live module");

    bk_module *m = bk_module_new(&USER, sizeof(bk_module));
    EACH_BAD_MODULE("module_add", bk_module_add(M, "c", bk_nn_relu()));
    MISUSE(bk_module_add(m, "c", NULL), "module_add", "child \"c\" is NULL");
    MISUSE(bk_module_add(m, "c", &FOREIGN_M), "module_add", "child \"c\"", "not a live module");
    MISUSE(bk_module_add(m, NULL, bk_nn_relu()), "add_module", "invalid name \"(null)\"");
    MISUSE(bk_module_add(m, "", bk_nn_relu()), "add_module", "invalid name");
    MISUSE(bk_module_add(m, "a.b", bk_nn_relu()), "add_module", "invalid name \"a.b\"");
    MISUSE(bk_module_add(m, "self", bk_module_ref(m)), "add_module", "cannot contain itself");
    CHECK(bk_module_add(m, "c", bk_nn_relu()) != NULL);
    MISUSE(bk_module_add(m, "c", bk_nn_relu()), "add_module", "\"c\" already exists");

    const int64_t fine[1] = {2}, neg[1] = {-2};
    int64_t nine[BK_MAX_DIMS + 1];
    for (int i = 0; i <= BK_MAX_DIMS; i++) nine[i] = 1;
    EACH_BAD_MODULE("register_parameter", bk_module_param(M, "w", 1, fine));
    MISUSE(bk_module_param(m, NULL, 1, fine), "register_parameter", "invalid name");
    MISUSE(bk_module_param(m, "w", 1, NULL), "register_parameter", "shape is NULL");
    MISUSE(bk_module_param(m, "w", -1, fine), "register_parameter", "rank -1");
    MISUSE(bk_module_param(m, "w", BK_MAX_DIMS + 1, nine), "register_parameter", "rank 9");
    MISUSE(bk_module_param(m, "w", 1, neg), "register_parameter", "negative dimension -2");
    MISUSE(bk_module_param(m, "c", 1, fine), "register_parameter", "\"c\" already exists");
    EACH_BAD_MODULE("register_buffer", bk_module_buffer(M, "b", 1, fine, true));
    MISUSE(bk_module_buffer(m, "x.y", 1, fine, true), "register_buffer", "invalid name");
    MISUSE(bk_module_buffer(m, "b", 1, neg, false), "register_buffer", "negative dimension");
    MISUSE(bk_module_buffer(m, "b", -4, fine, false), "register_buffer", "rank -4");
    CHECK(bk_module_param(m, "w", 1, fine) != NULL);
    EACH_BAD_MODULE("set_trainable", bk_module_set_trainable(M, "w", false));
    MISUSE(bk_module_set_trainable(m, NULL, false), "set_trainable", "NULL");
    MISUSE(bk_module_set_trainable(m, "nope", false), "set_trainable", "no parameter \"nope\"");

    bk_tensor *x = bk_rand(BK_SHAPE(2, 3));
    EACH_BAD_MODULE("forward", bk_forward(M, x));
    EACH_BAD_TENSOR("User", bk_forward(m, T));

    EACH_BAD_MODULE("module_child", bk_module_child(M, 0));
    MISUSE(bk_module_child(m, 1), "module_child", "index 1 is out of range (1 children)");
    MISUSE(bk_module_child(m, -1), "module_child", "index -1");
    MISUSE(bk_module_child(m, INT32_MIN), "module_child", "out of range");
    EACH_BAD_MODULE("module_child", bk_module_child_by_name(M, "c"));
    MISUSE(bk_module_child_by_name(m, NULL), "module_child", "name is NULL");
    MISUSE(bk_module_child_by_name(m, "d"), "module_child", "no child \"d\"");
    EACH_BAD_MODULE("module_get", bk_module_get(M, "w"));
    MISUSE(bk_module_get(m, NULL), "module_get", "NULL");
    MISUSE(bk_module_get(m, "c.w"), "module_get", "no parameter or buffer \"c.w\"");
    MISUSE(bk_module_get(m, ".."), "module_get", "\"..\"");

    EACH_BAD_MODULE("module_named", bk_module_named(M, BK_PARAMS));
    MISUSE(bk_module_named(m, 0), "module_named", "which 0");
    MISUSE(bk_module_named(m, 4), "module_named", "which 4");
    MISUSE(bk_module_named(m, -1), "module_named", "which -1");
    ACCEPTS((bk_param_list_free(NULL), !bk_last_error()[0]), "NULL is fine, as for free()");
    EACH_BAD_MODULE("module_num_params", bk_module_num_params(M, false));

    M = NULL;
    MISUSE_VOID(bk_module_train(M, false), "module_train", "NULL");
    MISUSE_VOID(bk_module_zero_grad(M), "module_zero_grad", "NULL");
    MISUSE_VOID(bk_module_apply(M, count_block, NULL), "module_apply", "NULL");
    M = &FOREIGN_M;
    MISUSE_VOID(bk_module_train(M, false), "module_train", "not a live module");
    MISUSE_VOID(bk_module_zero_grad(M), "module_zero_grad", "not a live module");
    MISUSE_VOID(bk_module_apply(M, count_block, NULL), "module_apply", "not a live module");
    MISUSE_VOID(bk_module_apply(m, NULL, NULL), "module_apply", "fn is NULL");
    int count = 0;
    ACCEPTS((bk_module_apply(m, count_block, &count), count == 2), "ud NULL is the caller's business");

    char buf[256];
    EACH_BAD_MODULE("module_repr", bk_module_repr(M, buf, sizeof buf));
    ACCEPTS(bk_module_repr(m, NULL, 0) > 0, "buf NULL with n 0 measures, as snprintf");
    MISUSE(bk_module_repr(m, NULL, 10), "module_repr", "buf is NULL");
    FILE *f = tmpfile();
    CHECK(f != NULL);
    if (f) {
        M = NULL;
        MISUSE_VOID(bk_module_print(M, f), "module_repr", "NULL");
        M = &FOREIGN_M;
        MISUSE_VOID(bk_module_print(M, f), "not a live module");
        fclose(f);
    }
    ACCEPTS(!strcmp(bk_module_name(NULL), "?") && !strcmp(bk_module_name(&FOREIGN_M), "?"),
            "\"?\" for NULL and for what is not a block (documented)");
    bk_module_free(m);
}

TEST(layers) {
    /* constructors: negative, zero where it is not allowed, huge, NaN */
    MISUSE(bk_nn_linear(-1, 3), "Linear", "in_features=-1");
    MISUSE(bk_nn_linear(3, -1), "Linear", "out_features=-1");
    MISUSE(bk_nn_linear(INT64_MAX, 2), "Linear", "too many elements");
    MISUSE(bk_nn_linear_ex(-5, 3, false), "Linear", "in_features=-5");
    MISUSE(bk_nn_linear_ex(2, INT64_MIN, true), "Linear", "must be non-negative");
    CANNOT_FAIL(freed(bk_nn_relu()), "no arguments");
    CANNOT_FAIL(freed(bk_nn_sigmoid()), "no arguments");
    CANNOT_FAIL(freed(bk_nn_tanh()), "no arguments");
    CANNOT_FAIL(freed(bk_nn_identity()), "no arguments");
    CANNOT_FAIL(freed(bk_nn_gelu()), "no arguments");
    /* dims are checked against each input, as torch does (negative dims count from the end) */
    bk_module *fl, *sm, *lsm;
    ACCEPTS((fl = bk_nn_flatten(3, -1)) != NULL, "dims are checked per input");
    ACCEPTS((sm = bk_nn_softmax(2)) != NULL, "dims are checked per input");
    ACCEPTS((lsm = bk_nn_log_softmax(-3)) != NULL, "dims are checked per input");
    bk_tensor *x = bk_rand(BK_SHAPE(2, 3));
    MISUSE(bk_forward(fl, x), "Flatten", "dimension 3 is out of range");
    MISUSE(bk_forward(sm, x), "Softmax", "dimension 2 is out of range");
    MISUSE(bk_forward(lsm, x), "LogSoftmax", "dimension -3 is out of range");
    bk_module_free(fl);
    bk_module_free(sm);
    bk_module_free(lsm);

    MISUSE(bk_nn_conv2d(0, 4, 3, 1, 1), "Conv2d", "in_channels=0");
    MISUSE(bk_nn_conv2d(2, -4, 3, 1, 1), "Conv2d", "out_channels=-4");
    MISUSE(bk_nn_conv2d(2, 4, 0, 1, 1), "Conv2d", "kernel_size (0, 0)");
    MISUSE(bk_nn_conv2d(2, 4, 3, 0, 1), "Conv2d", "stride (0, 0)");
    MISUSE(bk_nn_conv2d(2, 4, 3, 1, -1), "Conv2d", "padding (-1, -1)");
    MISUSE(bk_nn_conv2d(2, 4, INT64_MAX, 1, 0), "Conv2d", "too many elements");
    bk_module *cp;
    ACCEPTS((cp = bk_nn_conv2d(2, 4, 3, 1, INT64_MAX)) != NULL, "a huge padding is refused by the forward");
    MISUSE(bk_forward(cp, bk_rand(BK_SHAPE(1, 2, 4, 4))), "conv2d", "padding", "too large");
    bk_module_free(cp);
    bk_conv2d_opts o = BK_CONV2D_DEFAULTS, d0 = o, g0 = o, g3 = o;
    d0.dilation[1] = 0, g0.groups = 0, g3.groups = 3;
    MISUSE(bk_nn_conv2d_ex(2, 4, NULL, o, true), "Conv2d", "kernel_size is NULL");
    MISUSE(bk_nn_conv2d_ex(2, 4, (const int64_t[2]){3, -3}, o, true), "Conv2d", "kernel_size (3, -3)");
    MISUSE(bk_nn_conv2d_ex(2, 4, (const int64_t[2]){3, 3}, d0, true), "Conv2d", "dilation (1, 0)");
    MISUSE(bk_nn_conv2d_ex(2, 4, (const int64_t[2]){3, 3}, g0, true), "Conv2d", "groups=0");
    MISUSE(bk_nn_conv2d_ex(2, 4, (const int64_t[2]){3, 3}, g3, false), "Conv2d", "groups=3");

    MISUSE(bk_nn_max_pool2d(0, 0, 0), "MaxPool2d", "kernel_size=0");
    MISUSE(bk_nn_max_pool2d(2, -1, 0), "MaxPool2d", "stride=-1");
    MISUSE(bk_nn_max_pool2d(2, 2, -1), "MaxPool2d", "padding=-1");
    MISUSE(bk_nn_max_pool2d(2, 2, 2), "MaxPool2d", "at most half");
    MISUSE(bk_nn_max_pool2d(2, 2, INT64_MAX), "MaxPool2d", "at most half");
    MISUSE(bk_nn_avg_pool2d(-3, 0, 0), "AvgPool2d", "kernel_size=-3");
    MISUSE(bk_nn_avg_pool2d(3, 1, INT64_MAX), "AvgPool2d", "at most half");
    MISUSE(bk_nn_adaptive_avg_pool2d(0, 1), "AdaptiveAvgPool2d", "(0, 1)");
    MISUSE(bk_nn_adaptive_avg_pool2d(1, -1), "AdaptiveAvgPool2d", "(1, -1)");

    MISUSE(bk_nn_batch_norm1d(0), "BatchNorm1d", "num_features=0");
    MISUSE(bk_nn_batch_norm2d(-2), "BatchNorm2d", "num_features=-2");
    MISUSE(bk_nn_batch_norm2d(INT64_MAX), "BatchNorm2d", "do not fit in memory");
    MISUSE(bk_nn_batch_norm_ex(4, 1e-5f, 0.1f, 3), "BatchNorm", "ndim_expected must be 1");
    MISUSE(bk_nn_batch_norm_ex(4, -1.0f, 0.1f, 1), "BatchNorm1d", "eps=-1");
    MISUSE(bk_nn_batch_norm_ex(4, 1e-5f, 2.0f, 2), "BatchNorm2d", "momentum=2");
    MISUSE(bk_nn_batch_norm_ex(4, NAN, 0.1f, 2), "BatchNorm2d", "eps=nan");

    const int64_t ns[2] = {2, 3}, negns[2] = {2, -3};
    MISUSE(bk_nn_layer_norm(0, ns, 1e-5f), "LayerNorm", "got 0");
    MISUSE(bk_nn_layer_norm(-1, ns, 1e-5f), "LayerNorm", "got -1");
    MISUSE(bk_nn_layer_norm(BK_MAX_DIMS + 1, ns, 1e-5f), "LayerNorm", "got 9");
    MISUSE(bk_nn_layer_norm(2, NULL, 1e-5f), "LayerNorm", "NULL");
    MISUSE(bk_nn_layer_norm(2, negns, 1e-5f), "LayerNorm", "positive dims");
    MISUSE(bk_nn_layer_norm(2, ns, -1e-5f), "LayerNorm", "eps");
    MISUSE(bk_nn_dropout(-0.5f), "Dropout", "-0.5");
    MISUSE(bk_nn_dropout(1.01f), "Dropout", "between 0 and 1");
    MISUSE(bk_nn_dropout(NAN), "Dropout", "nan");

    MISUSE(bk_nn_residual(-1, 4, true, 1), "Residual", "in_channels=-1");
    MISUSE(bk_nn_residual(4, 0, false, 1), "Residual", "out_channels=0");
    MISUSE(bk_nn_residual(4, 4, false, 0), "Residual", "strides=0");
    MISUSE(bk_nn_residual(4, 4, true, -2), "Residual", "strides=-2");
    const int64_t c2[2] = {4, 8}, c3[2] = {2, 4}, c2neg[2] = {4, -8};
    MISUSE(bk_nn_inception(3, 4, NULL, c3, 4), "Inception", "NULL");
    MISUSE(bk_nn_inception(3, 4, c2, NULL, 4), "Inception", "NULL");
    MISUSE(bk_nn_inception(-3, 4, c2, c3, 4), "Inception", "in_channels=-3");
    MISUSE(bk_nn_inception(3, 0, c2, c3, 4), "Inception", "out_channels=0");
    MISUSE(bk_nn_inception(3, 4, c2neg, c3, 4), "Inception", "out_channels=-8");
    MISUSE(bk_nn_inception(3, 4, c2, c3, -1), "Inception", "out_channels=-1");

    bk_module *lin = bk_nn_linear(2, 2);
    MISUSE(bk_nn_sequential(-1), "Sequential", "-1");
    MISUSE(bk_nn_sequential(2, bk_nn_relu(), NULL), "Sequential", "block 1 is NULL");
    MISUSE(bk_nn_sequential(1, &FOREIGN_M), "Sequential", "not a live module");
    bk_module *blocks[2] = {bk_nn_relu(), NULL};
    MISUSE(bk_nn_sequential_from(2, blocks), "Sequential", "block 1 is NULL");
    MISUSE(bk_nn_sequential_from(-2, blocks), "Sequential", "n = -2");
    MISUSE(bk_nn_sequential_from(2, NULL), "Sequential", "n = 2");
    bk_module *seq = bk_nn_sequential(1, bk_nn_relu());
    EACH_BAD_MODULE("Sequential", bk_nn_sequential_append(M, bk_nn_relu()));
    MISUSE(bk_nn_sequential_append(lin, bk_nn_relu()), "Sequential", "expected a Sequential, got Linear");
    MISUSE(bk_nn_sequential_append(seq, NULL), "Sequential", "NULL");
    MISUSE(bk_nn_sequential_append(seq, &FOREIGN_M), "Sequential", "not a live module");
    EACH_BAD_MODULE("Sequential", bk_nn_sequential_len(M));
    MISUSE(bk_nn_sequential_len(lin), "Sequential", "got Linear");
    EACH_BAD_MODULE("Sequential", bk_nn_sequential_get(M, 0));
    MISUSE(bk_nn_sequential_get(lin, 0), "Sequential", "got Linear");
    MISUSE(bk_nn_sequential_get(seq, 1), "Sequential", "index 1 is out of range (length 1)");
    MISUSE(bk_nn_sequential_get(seq, -2), "Sequential", "index -2");
    MISUSE(bk_nn_sequential_get(seq, INT32_MIN), "Sequential", "out of range");
    bk_module_free(seq);
    bk_module_free(lin);
}

TEST(attention_layers) {
    MISUSE(bk_nn_embedding(-1, 4), "Embedding", "num_embeddings=-1");
    MISUSE(bk_nn_embedding(4, -1), "Embedding", "embedding_dim=-1");
    MISUSE(bk_nn_embedding(INT64_MAX, 4), "Embedding", "too many elements");
    MISUSE(bk_nn_embedding_padded(4, 2, 4), "Embedding", "padding_idx=4");
    MISUSE(bk_nn_embedding_padded(4, 2, -5), "Embedding", "padding_idx=-5");
    MISUSE(bk_nn_embedding_padded(-4, 2, 0), "Embedding", "num_embeddings=-4");
    MISUSE(bk_nn_positional_encoding(0, 0.1f, 10), "PositionalEncoding", "num_hiddens=0");
    MISUSE(bk_nn_positional_encoding(4, 0.1f, -1), "PositionalEncoding", "max_len=-1");
    MISUSE(bk_nn_positional_encoding(4, 2.0f, 10), "Dropout", "between 0 and 1");
    MISUSE(bk_nn_positional_encoding(4, 0.1f, INT64_MAX), "PositionalEncoding", "too many elements");
    MISUSE(bk_nn_learned_positional_embedding(-1, 4), "LearnedPositionalEmbedding", "max_len=-1");
    MISUSE(bk_nn_learned_positional_embedding(4, 0), "LearnedPositionalEmbedding", "num_hiddens=0");
    bk_module *pe = bk_nn_positional_encoding(4, 0, 3);
    MISUSE(bk_forward(pe, bk_rand(BK_SHAPE(1, 5, 4))), "PositionalEncoding", "exceeds max_len=3");
    bk_module_free(pe);

    MISUSE(bk_nn_multihead_attention(8, 3, 0, true, false), "MultiheadAttention", "divisible by num_heads=3");
    MISUSE(bk_nn_multihead_attention(8, 0, 0, true, false), "MultiheadAttention", "num_heads=0");
    MISUSE(bk_nn_multihead_attention(8, -2, 0, true, false), "MultiheadAttention", "num_heads=-2");
    MISUSE(bk_nn_multihead_attention(-8, 2, 0, true, false), "MultiheadAttention", "embed_dim=-8");
    MISUSE(bk_nn_multihead_attention(8, 2, -0.1f, true, false), "MultiheadAttention", "dropout");
    MISUSE(bk_nn_multihead_attention(INT64_MAX - 1, 2, 0, true, false), "MultiheadAttention", "too many elements");

    bk_module *mha = bk_nn_multihead_attention(4, 2, 0, true, true), *lin = bk_nn_linear(4, 4);
    bk_tensor *q = bk_rand(BK_SHAPE(2, 3, 4)), *kv = bk_rand(BK_SHAPE(2, 5, 4)), *w = NULL;
    EACH_BAD_MODULE("multihead_attention", bk_mha_forward(M, q, kv, kv, NULL, NULL, false, true, NULL));
    MISUSE(bk_mha_forward(lin, q, kv, kv, NULL, NULL, false, true, NULL), "multihead_attention", "got Linear");
    EACH_BAD_TENSOR("MultiheadAttention", bk_mha_forward(mha, T, kv, kv, NULL, NULL, false, true, NULL));
    EACH_BAD_TENSOR("MultiheadAttention", bk_mha_forward(mha, q, T, kv, NULL, NULL, false, true, NULL));
    EACH_BAD_TENSOR("MultiheadAttention", bk_mha_forward(mha, q, kv, T, NULL, NULL, false, true, NULL));
    T = STALE;
    MISUSE(bk_mha_forward(mha, q, kv, kv, T, NULL, false, true, NULL), "key_padding_mask", "arena was reset");
    MISUSE(bk_mha_forward(mha, q, kv, kv, NULL, T, false, true, NULL), "attn_mask", "arena was reset");
    T = &FOREIGN;
    MISUSE(bk_mha_forward(mha, q, kv, kv, T, NULL, false, true, NULL), "key_padding_mask", "not a brick tensor");
    MISUSE(bk_mha_forward(mha, q, kv, kv, NULL, T, false, true, NULL), "attn_mask", "not a brick tensor");
    MISUSE(bk_mha_forward(mha, q, bk_rand(BK_SHAPE(2, 5, 3)), kv, NULL, NULL, false, true, NULL), "MultiheadAttention",
           "embedding dimension 4");
    MISUSE(bk_mha_forward(mha, q, kv, kv, bk_zeros(BK_SHAPE(2, 4)), NULL, false, true, NULL), "MultiheadAttention",
           "key_padding_mask (2, 4)");
    ACCEPTS(bk_mha_forward(mha, q, kv, kv, NULL, NULL, true, true, NULL) != NULL,
            "attn_weights NULL: the weights are not returned");
    ACCEPTS(bk_mha_forward(mha, q, kv, kv, NULL, NULL, true, false, &w) != NULL && w != NULL,
            "masks NULL: no masks");

    bk_transformer_config c = BK_TRANSFORMER_DEFAULTS(4, 2);
    c.dim_feedforward = 8;
    bk_transformer_config bad[7] = {c, c, c, c, c, c, c};
    bad[0].d_model = 0, bad[1].nhead = -2, bad[2].nhead = 3, bad[3].dim_feedforward = -1;
    bad[4].dropout = 1.5f, bad[5].activation = (bk_activation)7, bad[6].layer_norm_eps = -1;
    const char *why[7] = {"d_model=0", "nhead=-2", "nhead=3", "dim_feedforward=-1", "dropout", "activation 7", "eps"};
    for (int i = 0; i < 7; i++) {
        MISUSE(bk_nn_transformer_encoder_layer(bad[i]), "TransformerEncoderLayer", why[i]);
        MISUSE(bk_nn_transformer_decoder_layer(bad[i]), "TransformerDecoderLayer", why[i]);
    }
    bk_module *enc_layer = bk_nn_transformer_encoder_layer(c), *dec_layer = bk_nn_transformer_decoder_layer(c);
    bk_tensor *src = bk_rand(BK_SHAPE(3, 2, 4)), *mem = bk_rand(BK_SHAPE(5, 2, 4));
    EACH_BAD_MODULE("transformer_encoder_layer_forward", bk_transformer_encoder_layer_forward(M, src, NULL, NULL));
    MISUSE(bk_transformer_encoder_layer_forward(dec_layer, src, NULL, NULL), "transformer_encoder_layer_forward",
           "got TransformerDecoderLayer");
    EACH_BAD_TENSOR("TransformerEncoderLayer", bk_transformer_encoder_layer_forward(enc_layer, T, NULL, NULL));
    T = STALE;
    MISUSE(bk_transformer_encoder_layer_forward(enc_layer, src, T, NULL), "attn_mask", "arena was reset");
    MISUSE(bk_transformer_encoder_layer_forward(enc_layer, src, NULL, T), "key_padding_mask", "arena was reset");
    MISUSE(bk_transformer_encoder_layer_forward(enc_layer, bk_rand(BK_SHAPE(3, 2, 5)), NULL, NULL),
           "TransformerEncoderLayer", "(3, 2, 5)");
    EACH_BAD_MODULE("transformer_decoder_layer_forward",
                    bk_transformer_decoder_layer_forward(M, src, mem, NULL, NULL, NULL, NULL));
    MISUSE(bk_transformer_decoder_layer_forward(enc_layer, src, mem, NULL, NULL, NULL, NULL),
           "transformer_decoder_layer_forward", "got TransformerEncoderLayer");
    EACH_BAD_TENSOR("TransformerDecoderLayer", bk_transformer_decoder_layer_forward(dec_layer, T, mem, NULL, NULL, NULL, NULL));
    EACH_BAD_TENSOR("TransformerDecoderLayer", bk_transformer_decoder_layer_forward(dec_layer, src, T, NULL, NULL, NULL, NULL));
    T = STALE;
    MISUSE(bk_transformer_decoder_layer_forward(dec_layer, src, mem, T, NULL, NULL, NULL), "attn_mask", "arena was reset");
    MISUSE(bk_transformer_decoder_layer_forward(dec_layer, src, mem, NULL, T, NULL, NULL), "attn_mask", "arena was reset");
    MISUSE(bk_transformer_decoder_layer_forward(dec_layer, src, mem, NULL, NULL, T, NULL), "key_padding_mask", "arena was reset");
    MISUSE(bk_transformer_decoder_layer_forward(dec_layer, src, mem, NULL, NULL, NULL, T), "key_padding_mask", "arena was reset");
    MISUSE(bk_forward(dec_layer, src), "forward needs the encoder output");

    /* the stacks take ownership of the layer and the norm, also on failure */
    MISUSE(bk_nn_transformer_encoder(NULL, 2, NULL), "TransformerEncoder", "got ?");
    MISUSE(bk_nn_transformer_encoder(bk_nn_linear(2, 2), 2, NULL), "TransformerEncoder", "got Linear");
    MISUSE(bk_nn_transformer_encoder(bk_nn_transformer_encoder_layer(c), 0, NULL), "TransformerEncoder", "num_layers=0");
    MISUSE(bk_nn_transformer_encoder(bk_nn_transformer_encoder_layer(c), -1, bk_nn_layer_norm(BK_SHAPE(4), 1e-5f)),
           "TransformerEncoder", "num_layers=-1");
    MISUSE(bk_nn_transformer_encoder(&FOREIGN_M, 1, NULL), "TransformerEncoder", "not a live module");
    MISUSE(bk_nn_transformer_encoder(bk_nn_transformer_encoder_layer(c), 1, &FOREIGN_M), "TransformerEncoder", "norm",
           "not a live module");
    MISUSE(bk_nn_transformer_decoder(NULL, 2, NULL), "TransformerDecoder", "got ?");
    MISUSE(bk_nn_transformer_decoder(bk_nn_transformer_encoder_layer(c), 2, NULL), "TransformerDecoder",
           "got TransformerEncoderLayer");
    MISUSE(bk_nn_transformer_decoder(bk_nn_transformer_decoder_layer(c), INT32_MIN, NULL), "TransformerDecoder",
           "num_layers=-2147483648");
    bk_module *enc = bk_nn_transformer_encoder(enc_layer, 1, NULL), *dec = bk_nn_transformer_decoder(dec_layer, 1, NULL);
    EACH_BAD_MODULE("transformer_encoder_forward", bk_transformer_encoder_forward(M, src, NULL, NULL));
    MISUSE(bk_transformer_encoder_forward(dec, src, NULL, NULL), "transformer_encoder_forward", "got TransformerDecoder");
    EACH_BAD_TENSOR("TransformerEncoder", bk_transformer_encoder_forward(enc, T, NULL, NULL));
    T = STALE;
    MISUSE(bk_transformer_encoder_forward(enc, src, T, NULL), "attn_mask", "arena was reset");
    MISUSE(bk_transformer_encoder_forward(enc, src, NULL, T), "key_padding_mask", "arena was reset");
    EACH_BAD_MODULE("transformer_decoder_forward", bk_transformer_decoder_forward(M, src, mem, NULL, NULL, NULL, NULL));
    MISUSE(bk_transformer_decoder_forward(enc, src, mem, NULL, NULL, NULL, NULL), "transformer_decoder_forward",
           "got TransformerEncoder");
    EACH_BAD_TENSOR("TransformerDecoder", bk_transformer_decoder_forward(dec, T, mem, NULL, NULL, NULL, NULL));
    EACH_BAD_TENSOR("TransformerDecoder", bk_transformer_decoder_forward(dec, src, T, NULL, NULL, NULL, NULL));
    T = &FOREIGN;
    MISUSE(bk_transformer_decoder_forward(dec, src, mem, T, NULL, NULL, NULL), "attn_mask", "not a brick tensor");
    MISUSE(bk_transformer_decoder_forward(dec, src, mem, NULL, NULL, NULL, T), "key_padding_mask", "not a brick tensor");
    bk_module_free(enc);
    bk_module_free(dec);
    bk_module_free(mha);
    bk_module_free(lin);
}

/* ---- files ------------------------------------------------------------------------------------------ */

static char tmpdir[64];
static char path_in_tmp[128];
static const char *in_tmp(const char *name) {
    snprintf(path_in_tmp, sizeof path_in_tmp, "%s/%s", tmpdir, name);
    return path_in_tmp;
}

TEST(safetensors_files) {
    bk_tensor *t = bk_ones(BK_SHAPE(2));
    const char *names[2] = {"a", "b"}, *dup[2] = {"a", "a"}, *reserved[1] = {"__metadata__"};
    const bk_tensor *ts[2] = {t, t}, *with_null[2] = {t, NULL}, *stale[1] = {STALE}, *foreign[1] = {&FOREIGN};
    const char *keys[1] = {"k"}, *values[1] = {"v"};
    char good[128];
    snprintf(good, sizeof good, "%s", in_tmp("good.safetensors"));
    CHECK(bk_safetensors_save(good, 2, names, ts, 1, keys, values) == 0);

    MISUSE(bk_safetensors_save(NULL, 2, names, ts, 0, NULL, NULL), "safetensors", "path is NULL");
    const char *p = in_tmp("x.safetensors");
    MISUSE(bk_safetensors_save(p, -1, names, ts, 0, NULL, NULL), "safetensors", "negative tensor or metadata count");
    MISUSE(bk_safetensors_save(p, 2, names, ts, -1, keys, values), "safetensors", "negative");
    MISUSE(bk_safetensors_save(p, 2, NULL, ts, 0, NULL, NULL), "safetensors", "names or tensors is NULL");
    MISUSE(bk_safetensors_save(p, 2, names, NULL, 0, NULL, NULL), "safetensors", "names or tensors is NULL");
    MISUSE(bk_safetensors_save(p, 2, names, with_null, 0, NULL, NULL), "safetensors", "'b' (#1) is NULL");
    MISUSE(bk_safetensors_save(p, 1, names, stale, 0, NULL, NULL), "safetensors", "not a live tensor");
    MISUSE(bk_safetensors_save(p, 1, names, foreign, 0, NULL, NULL), "safetensors", "not a live tensor");
    MISUSE(bk_safetensors_save(p, 2, dup, ts, 0, NULL, NULL), "safetensors", "duplicate");
    MISUSE(bk_safetensors_save(p, 1, reserved, ts, 0, NULL, NULL), "safetensors", "reserved");
    MISUSE(bk_safetensors_save(p, 2, names, ts, 1, NULL, values), "safetensors", "metadata keys or values is NULL");
    MISUSE(bk_safetensors_save(p, 2, names, ts, 1, keys, NULL), "safetensors", "metadata keys or values is NULL");
    MISUSE(bk_safetensors_save(in_tmp("no/such/dir/x"), 2, names, ts, 0, NULL, NULL), "safetensors", "No such file");

    MISUSE(bk_safetensors_load(NULL), "safetensors", "path is NULL");
    MISUSE(bk_safetensors_load(in_tmp("missing.safetensors")), "safetensors", "cannot open");
    MISUSE(bk_safetensors_load(tmpdir), "safetensors", tmpdir);
    MISUSE(bk_file_open_read(NULL), "file_open_read", "path is NULL");
    MISUSE(bk_file_open_read(tmpdir), tmpdir, "not a regular file (a directory)");
    MISUSE(bk_file_open_read(in_tmp("missing")), "missing", "cannot open");
    MISUSE(bk_file_write_atomic(NULL, "x", 1), "file_write_atomic", "path is NULL");
    MISUSE(bk_file_write_atomic(in_tmp("w.txt"), NULL, 1), "file_write_atomic", "data is NULL");
    MISUSE(bk_file_write_atomic(in_tmp("no/such/dir/w"), "x", 1), "no/such/dir/w", "No such file");
    MISUSE(bk_file_write_atomic(tmpdir, "x", 1), tmpdir, "cannot rename");
    ACCEPTS(bk_file_write_atomic(in_tmp("w.txt"), NULL, 0) == 0, "no data with n 0: an empty file");
    MISUSE(bk_file_check_writable(NULL, 1), "file_check_writable", "path is NULL");
    MISUSE(bk_file_check_writable(in_tmp("no/such/dir/w"), 1), "no/such/dir/w", "cannot create a file there");
    bk_safetensors *st = bk_safetensors_load(good);
    CHECK(st != NULL);
    ACCEPTS((bk_safetensors_free(NULL), !bk_last_error()[0]), "NULL is fine, as for free()");
    MISUSE(bk_safetensors_count(NULL), "safetensors_count", "NULL");
    MISUSE(bk_safetensors_name(NULL, 0), "safetensors_name", "NULL");
    MISUSE(bk_safetensors_name(st, 2), "safetensors", "index 2 is out of range (2 tensors)");
    MISUSE(bk_safetensors_name(st, -1), "safetensors", "index -1");
    MISUSE(bk_safetensors_get(NULL, "a"), "safetensors_get", "file is NULL");
    MISUSE(bk_safetensors_get(st, NULL), "safetensors_get", "name is NULL");
    MISUSE(bk_safetensors_get(st, "c"), "safetensors", "no tensor named 'c'");
    MISUSE(bk_safetensors_meta(NULL, "k"), "safetensors_meta", "file is NULL");
    MISUSE(bk_safetensors_meta(st, NULL), "safetensors_meta", "key is NULL");
    ACCEPTS(bk_safetensors_meta(st, "absent") == NULL && !bk_last_error()[0], "an absent key is NULL without an error (documented)");

    bk_module *lin = bk_nn_linear(2, 3), *other = bk_nn_linear(3, 3);
    EACH_BAD_MODULE("module_save", bk_module_save(M, in_tmp("m.safetensors")));
    MISUSE(bk_module_save(lin, NULL), "safetensors", "path is NULL");
    EACH_BAD_MODULE("load_state_dict", bk_module_load(M, good, true));
    MISUSE(bk_module_load(lin, NULL, true), "safetensors", "path is NULL");
    MISUSE(bk_module_load(lin, in_tmp("missing"), false), "safetensors", "cannot open");
    EACH_BAD_MODULE("load_state_dict", bk_module_load_from(M, st, true));
    MISUSE(bk_module_load_from(lin, NULL, true), "load_state_dict", "file is NULL");
    MISUSE(bk_module_load_from(lin, st, true), "load_state_dict", "missing: weight, bias", "unexpected: a, b");
    CHECK(bk_module_save(lin, in_tmp("lin.safetensors")) == 0);
    MISUSE(bk_module_load(other, in_tmp("lin.safetensors"), false), "load_state_dict", "shape mismatch");
    bk_safetensors_free(st);
    bk_module_free(lin);
    bk_module_free(other);
}

/* ---- optimizers ---------------------------------------------------------------------------------------- */

TEST(optimizers) {
    bk_module *lin = bk_nn_linear(2, 2);
    EACH_BAD_MODULE("SGD", bk_optim_sgd(M, BK_SGD_DEFAULTS(0.1)));
    bk_sgd_config s = BK_SGD_DEFAULTS(-0.1);
    MISUSE(bk_optim_sgd(lin, s), "SGD", "lr=-0.1");
    s = BK_SGD_DEFAULTS(NAN);
    MISUSE(bk_optim_sgd(lin, s), "SGD", "lr=nan");
    s = BK_SGD_DEFAULTS(0.1), s.momentum = -1;
    MISUSE(bk_optim_sgd(lin, s), "SGD", "momentum=-1");
    s = BK_SGD_DEFAULTS(0.1), s.weight_decay = -1;
    MISUSE(bk_optim_sgd(lin, s), "SGD", "weight_decay=-1");
    s = BK_SGD_DEFAULTS(0.1), s.nesterov = true;
    MISUSE(bk_optim_sgd(lin, s), "SGD", "Nesterov");
    EACH_BAD_MODULE("Adam", bk_optim_adam(M, BK_ADAM_DEFAULTS(1e-3)));
    EACH_BAD_MODULE("AdamW", bk_optim_adamw(M, BK_ADAMW_DEFAULTS(1e-3)));
    bk_adam_config a = BK_ADAM_DEFAULTS(-1);
    MISUSE(bk_optim_adam(lin, a), "Adam", "lr=-1");
    a = BK_ADAM_DEFAULTS(1e-3), a.beta1 = 1;
    MISUSE(bk_optim_adam(lin, a), "Adam", "betas=(1, ");
    a = BK_ADAM_DEFAULTS(1e-3), a.beta2 = -0.5;
    MISUSE(bk_optim_adamw(lin, a), "AdamW", "0.9, -0.5");
    a = BK_ADAMW_DEFAULTS(1e-3), a.eps = -1;
    MISUSE(bk_optim_adamw(lin, a), "AdamW", "eps=-1");
    a = BK_ADAMW_DEFAULTS(1e-3), a.weight_decay = NAN;
    MISUSE(bk_optim_adamw(lin, a), "AdamW", "weight_decay=nan");

    bk_optim *o = bk_optim_sgd(lin, BK_SGD_DEFAULTS(0.1));
    ACCEPTS((bk_optim_free(NULL), !bk_last_error()[0]), "NULL is fine, as for free()");
    MISUSE(bk_optim_step(NULL), "optim_step", "NULL");
    MISUSE_VOID(bk_optim_zero_grad(NULL), "optim_zero_grad", "NULL");
    MISUSE(bk_optim_lr(NULL), "optim_lr", "NULL");
    MISUSE_VOID(bk_optim_set_lr(NULL, 0.1), "optim_set_lr", "NULL");
    MISUSE_VOID(bk_optim_set_lr(o, -0.1), "optim_set_lr", "lr=-0.1");
    MISUSE_VOID(bk_optim_set_lr(o, NAN), "optim_set_lr", "lr=nan");
    CHECK(bk_optim_lr(o) == 0.1); /* unchanged by the refused calls */
    ACCEPTS(!strcmp(bk_optim_name(NULL), "?"), "\"?\" for NULL, as bk_module_name");
    MISUSE(bk_optim_state_count(NULL), "optim_state_count", "NULL");
    MISUSE(bk_optim_state_name(NULL, 0), "optim_state_name", "NULL");
    MISUSE(bk_optim_state_name(o, 4), "optim_state_name", "index 4 is out of range (4 state tensors)");
    MISUSE(bk_optim_state_name(o, -1), "optim_state_name", "index -1");
    MISUSE(bk_optim_state_tensor(NULL, 0), "optim_state_tensor", "NULL");
    MISUSE(bk_optim_state_tensor(o, 4), "optim_state_tensor", "index 4");
    MISUSE(bk_optim_state_tensor(o, INT32_MIN), "optim_state_tensor", "out of range");

    MISUSE(bk_lr_step_decay(0.1f, 3, 0, 0.5f), "lr_step_decay", "step_size 0");
    MISUSE(bk_lr_step_decay(0.1f, 3, -2, 0.5f), "lr_step_decay", "step_size -2");
    MISUSE(bk_lr_step_decay(0.1f, -1, 2, 0.5f), "lr_step_decay", "epoch -1");
    MISUSE(bk_lr_cosine(0.1f, 3, 0, 0), "lr_cosine", "total_epochs 0");
    MISUSE(bk_lr_cosine(0.1f, 3, -10, 0), "lr_cosine", "total_epochs -10");
    MISUSE(bk_lr_cosine(0.1f, -3, 10, 0), "lr_cosine", "epoch -3");
    bk_optim_free(o);
    bk_module_free(lin);
}

/* ---- data ------------------------------------------------------------------------------------------------- */

TEST(data_sets_and_loaders) {
    MISUSE(bk_idx_load(NULL, "l", 10), "idx", "images path is NULL");
    MISUSE(bk_idx_load("i", NULL, 10), "idx", "labels path is NULL");
    MISUSE(bk_idx_load("i", "l", 0), "idx", "n_classes 0");
    MISUSE(bk_idx_load("i", "l", 257), "idx", "n_classes 257");
    MISUSE(bk_idx_load("i", "l", -1), "idx", "n_classes -1");
    MISUSE(bk_idx_load(in_tmp("missing-images"), in_tmp("missing-labels"), 10), "idx", "missing-images");
    MISUSE(bk_fashion_mnist_load(NULL, true), "fashion_mnist", "NULL");
    MISUSE(bk_fashion_mnist_load(in_tmp("nowhere"), false), "fashion_mnist", "nowhere");
    MISUSE(bk_fashion_mnist_load(tmpdir, true), "fashion_mnist", "found no");

    const int64_t shape[2] = {1, 2}, neg[2] = {1, -2};
    const float x[6] = {0, 1, 2, 3, 4, 5}, t[3] = {1, 2, 3};
    const int64_t y[3] = {0, 1, 1}, ybad[3] = {0, 2, 1}, yneg[3] = {0, -1, 1};
    const char *w = "dataset_from_arrays";
    MISUSE(bk_dataset_from_arrays(-1, 2, shape, x, y, 2, NULL, 0), w, "negative number of samples -1");
    MISUSE(bk_dataset_from_arrays(3, -1, shape, x, y, 2, NULL, 0), w, "rank -1");
    MISUSE(bk_dataset_from_arrays(3, BK_MAX_DIMS, shape, x, y, 2, NULL, 0), w, "rank 8");
    MISUSE(bk_dataset_from_arrays(3, 2, NULL, x, y, 2, NULL, 0), w, "shape is NULL");
    MISUSE(bk_dataset_from_arrays(3, 2, neg, x, y, 2, NULL, 0), w, "negative dimension -2");
    MISUSE(bk_dataset_from_arrays(INT64_MAX, 2, shape, x, y, 2, NULL, 0), w, "too many");
    MISUSE(bk_dataset_from_arrays(3, 2, shape, NULL, y, 2, NULL, 0), w, "x is NULL");
    MISUSE(bk_dataset_from_arrays(3, 2, shape, x, ybad, 2, NULL, 0), w, "label 2 at index 1");
    MISUSE(bk_dataset_from_arrays(3, 2, shape, x, yneg, 2, NULL, 0), w, "label -1");
    MISUSE(bk_dataset_from_arrays(3, 2, shape, x, y, 0, NULL, 0), w, "n_classes 0");
    MISUSE(bk_dataset_from_arrays(3, 2, shape, x, y, -3, NULL, 0), w, "n_classes -3");
    MISUSE(bk_dataset_from_arrays(3, 2, shape, x, NULL, 2, NULL, 0), w, "without labels");
    MISUSE(bk_dataset_from_arrays(3, 2, shape, x, NULL, 0, t, 0), w, "target_dim 0");
    MISUSE(bk_dataset_from_arrays(3, 2, shape, x, NULL, 0, t, -1), w, "target_dim -1");
    MISUSE(bk_dataset_from_arrays(3, 2, shape, x, NULL, 0, NULL, 1), w, "without targets");
    ACCEPTS((bk_dataset_free(NULL), !bk_last_error()[0]), "NULL is fine, as for free()");

    bk_dataset *ds = bk_dataset_from_arrays(3, 2, shape, x, y, 2, NULL, 0);
    CHECK(ds != NULL);
    /* foreign data sets: the struct is public, so a caller can fill one in by hand */
    bk_dataset hand = *ds;
    hand.x = NULL;
    bk_dataset bad_rank = *ds, bad_numel = *ds, bad_n = *ds, bad_targets = *ds, bad_dim = *ds;
    bad_rank.ndim = BK_MAX_DIMS;
    bad_numel.sample_numel = 1000;
    bad_n.n = -5;
    bad_targets.target_dim = -1, bad_targets.targets = (float *)x;
    bad_dim.shape[1] = -2;
    MISUSE(bk_dataset_normalize(NULL, 0, 1), "dataset_normalize", "NULL");
    MISUSE(bk_dataset_normalize(ds, 0, 0), "dataset_normalize", "std 0");
    MISUSE(bk_dataset_normalize(ds, 0, -1), "dataset_normalize", "std -1");
    MISUSE(bk_dataset_normalize(ds, NAN, 1), "dataset_normalize", "mean nan");
    MISUSE(bk_dataset_normalize(ds, 0, INFINITY), "dataset_normalize", "std inf");
    MISUSE(bk_dataset_normalize(&hand, 0, 1), "dataset_normalize", "malformed", "x NULL");
    MISUSE(bk_dataset_normalize(&bad_numel, 0, 1), "dataset_normalize", "malformed");
    MISUSE(bk_dataset_normalize(&bad_n, 0, 1), "dataset_normalize", "malformed");

    MISUSE(bk_loader_new(NULL, 2, false, 0, false), "loader_new", "data set is NULL");
    MISUSE(bk_loader_new(ds, 0, false, 0, false), "loader_new", "batch_size 0");
    MISUSE(bk_loader_new(ds, -2, false, 0, false), "loader_new", "batch_size -2");
    MISUSE(bk_loader_new(&hand, 2, false, 0, false), "loader_new", "malformed", "x NULL");
    MISUSE(bk_loader_new(&bad_rank, 2, false, 0, false), "loader_new", "malformed", "rank 8");
    MISUSE(bk_loader_new(&bad_numel, 2, false, 0, false), "loader_new", "malformed", "sample_numel 1000");
    MISUSE(bk_loader_new(&bad_n, 2, false, 0, false), "loader_new", "malformed", "n -5");
    MISUSE(bk_loader_new(&bad_targets, 2, false, 0, false), "loader_new", "malformed", "target_dim -1");
    MISUSE(bk_loader_new(&bad_dim, 2, false, 0, false), "loader_new", "malformed", "negative dimension -2");
    bk_loader *l = bk_loader_new(ds, 2, true, 1, false);
    CHECK(l != NULL);
    ACCEPTS((bk_loader_free(NULL), !bk_last_error()[0]), "NULL is fine, as for free()");
    MISUSE_VOID(bk_loader_start(NULL), "loader_start", "NULL");
    bk_tensor *bx;
    const int64_t *by;
    MISUSE(bk_loader_next(NULL, &bx, &by, NULL), "loader_next", "NULL");
    CHECK(bx == NULL && by == NULL); /* the outputs are cleared on failure */
    ACCEPTS(bk_loader_next(l, NULL, NULL, NULL) == 2, "NULL outputs: nothing is copied (skips a batch)");
    MISUSE(bk_loader_num_batches(NULL), "loader_num_batches", "NULL");
    MISUSE_VOID(bk_loader_rng(NULL), "loader_rng", "NULL");
    MISUSE(bk_loader_set_rng(NULL, *bk_default_rng()), "loader_set_rng", "NULL");
    MISUSE(bk_loader_set_rng(l, (bk_rng){0, 0}), "loader_set_rng", "even");
    bk_loader_free(l);
    bk_dataset_free(ds);
}

TEST(distributed) {
    ACCEPTS(bk_dist_init(NULL, NULL, false) == 0, "outside mpirun, without require_mpi: a world of one");
    CANNOT_FAIL(bk_dist_rank() == 0, "no arguments (0 in a world of one)");
    CANNOT_FAIL(bk_dist_world_size() == 1, "no arguments (1 in a world of one)");
    CANNOT_FAIL(bk_dist_mpi_built() || !bk_dist_mpi_built(), "no arguments");
    CANNOT_FAIL(bk_dist_barrier() == 0, "no arguments");
    CANNOT_FAIL((bk_dist_abort(1), 1), "any status; in a world of one it returns");
    int64_t v = 1, all = 0;
    MISUSE(bk_dist_allgather(NULL, &all, 8), "dist_allgather", "NULL");
    MISUSE(bk_dist_allgather(&v, NULL, 8), "dist_allgather", "NULL");
    MISUSE(bk_dist_allgather(&v, &all, (size_t)1 << 40), "dist_allgather", "too many");
    EACH_BAD_MODULE("dist_broadcast_module", bk_dist_broadcast_module(M, "m"));
    EACH_BAD_MODULE("ddp_new", bk_ddp_new(M, "m", BK_DIST_DETERMINISTIC));
    bk_module *m = bk_nn_linear(3, 2);
    MISUSE(bk_ddp_new(m, NULL, (bk_dist_mode)-1), "ddp_new", "unknown mode -1");
    bk_ddp *d = bk_ddp_new(m, NULL, BK_DIST_DETERMINISTIC);
    MISUSE(bk_ddp_reduce(NULL, 1.0f), "ddp_reduce", "NULL");
    MISUSE(bk_ddp_reduce(d, 0.0f), "ddp_reduce", "divisor 0");
    MISUSE(bk_ddp_reduce(d, NAN), "ddp_reduce", "divisor nan");
    MISUSE(bk_ddp_accumulate(NULL), "ddp_accumulate", "NULL");
    MISUSE(bk_ddp_finish(NULL, 1.0f), "ddp_finish", "NULL");
    MISUSE(bk_ddp_finish(d, 1.0f), "ddp_finish", "nothing was accumulated");
    MISUSE(bk_ddp_sync_buffers(NULL), "ddp_sync_buffers", "NULL");
    MISUSE(bk_ddp_save_buffers(NULL), "ddp_save_buffers", "NULL");
    MISUSE(bk_ddp_restore_buffers(NULL), "ddp_restore_buffers", "NULL");
    MISUSE(bk_ddp_restore_buffers(d), "ddp_restore_buffers", "no buffers were saved");
    MISUSE(bk_ddp_numel(NULL), "ddp_numel", "NULL");
    MISUSE(bk_ddp_comm_seconds(NULL), "ddp_comm_seconds", "NULL");
    ACCEPTS((bk_ddp_free(NULL), !bk_last_error()[0]), "NULL is fine, as for free()");
    bk_ddp_free(d);
    bk_module_free(m);
    CANNOT_FAIL(bk_dist_finalize() == 0, "no arguments");
}

TEST(models_and_checkpoints) {
    const int64_t in[3] = {1, 4, 4}, neg[3] = {1, -4, 4};
    char canon[64];
    CANNOT_FAIL(bk_model_names() != NULL && bk_model_names()[0] != NULL, "no arguments");
    MISUSE(bk_model_build(NULL, 3, in, 10, canon, sizeof canon), "model", "spec is NULL");
    MISUSE(bk_model_build("nonet", 3, in, 10, canon, sizeof canon), "model", "unknown model \"nonet\"");
    MISUSE(bk_model_build("mlp:depth=2", 3, in, 10, canon, sizeof canon), "model", "no setting \"depth\"");
    MISUSE(bk_model_build("mlp:hidden=-2", 3, in, 10, canon, sizeof canon), "model", "positive integer");
    MISUSE(bk_model_build("mlp:hidden=99999999999", 3, in, 10, canon, sizeof canon), "model", "positive integer");
    MISUSE(bk_model_build("mlp", -1, in, 10, canon, sizeof canon), "model", "rank -1");
    MISUSE(bk_model_build("mlp", 0, in, 10, canon, sizeof canon), "model", "at least one dimension");
    MISUSE(bk_model_build("mlp", 9, in, 10, canon, sizeof canon), "model", "rank 9");
    MISUSE(bk_model_build("mlp", 3, NULL, 10, canon, sizeof canon), "model", "shape is NULL");
    MISUSE(bk_model_build("mlp", 3, neg, 10, canon, sizeof canon), "model", "negative dimension -4");
    MISUSE(bk_model_build("mlp", 3, in, 0, canon, sizeof canon), "model", "classes");
    MISUSE(bk_model_build("mlp", 3, in, -10, canon, sizeof canon), "model", "-10");
    MISUSE(bk_model_build("mlp:hidden=4294967296", 3, in, 10, canon, sizeof canon), "model", "BK_MODEL_MAX_PARAMS");
    MISUSE(bk_model_num_params(NULL, 3, in, 10, canon, sizeof canon), "model", "spec is NULL");
    MISUSE(bk_model_num_params("nonet", 3, in, 10, canon, sizeof canon), "model", "unknown model");
    MISUSE(bk_model_num_params("mlp", 3, NULL, 10, canon, sizeof canon), "model", "shape is NULL");
    MISUSE(bk_model_num_params("mlp", 3, in, 0, canon, sizeof canon), "model", "classes");
    MISUSE(bk_model_num_params("resnet:width=65536", 3, in, 10, canon, sizeof canon), "model", "BK_MODEL_MAX_PARAMS");
    ACCEPTS(bk_model_num_params("mlp:hidden=8", 3, in, 10, NULL, 0) == 16 * 8 + 8 + 8 * 10 + 10,
            "canonical NULL: not written");
    bk_module *m = NULL;
    ACCEPTS((m = bk_model_build("mlp:hidden=8", 3, in, 10, NULL, 0)) != NULL, "canonical NULL: not written");
    bk_module *m2 = NULL;
    ACCEPTS((m2 = bk_model_build("mlp:hidden=8", 3, in, 10, canon, 3)) != NULL && !strcmp(canon, "ml"),
            "a short canonical buffer is truncated, as snprintf");
    bk_module_free(m2);

    char ck[128];
    snprintf(ck, sizeof ck, "%s", in_tmp("m.ckpt"));
    bk_optim *o = bk_optim_adam(m, BK_ADAM_DEFAULTS(1e-3));
    const char *keys[1] = {"k"}, *values[1] = {"v"};
    MISUSE(bk_checkpoint_save(NULL, m, o, 0, NULL, NULL), "checkpoint_save", "path is NULL");
    EACH_BAD_MODULE("checkpoint_save", bk_checkpoint_save(ck, M, o, 0, NULL, NULL));
    MISUSE(bk_checkpoint_save(ck, m, o, -1, keys, values), "safetensors", "negative");
    MISUSE(bk_checkpoint_save(ck, m, o, 1, NULL, values), "safetensors", "metadata keys or values is NULL");
    ACCEPTS(bk_checkpoint_save(ck, m, NULL, 1, keys, values) == 0, "optimizer NULL: the model only");
    MISUSE(bk_checkpoint_load(NULL, m, o), "checkpoint_load", "path is NULL");
    EACH_BAD_MODULE("checkpoint_load", bk_checkpoint_load(ck, M, o));
    MISUSE(bk_checkpoint_load(in_tmp("missing.ckpt"), m, NULL), "safetensors", "cannot open");
    MISUSE(bk_checkpoint_load(ck, m, o), "checkpoint_load", "missing");
    ACCEPTS(bk_checkpoint_load(ck, m, NULL) == 0, "optimizer NULL: the model only");
    bk_safetensors *ck_st = bk_safetensors_load(ck);
    MISUSE(bk_checkpoint_load_from(NULL, m, o), "checkpoint_load", "file is NULL");
    EACH_BAD_MODULE("checkpoint_load", bk_checkpoint_load_from(ck_st, M, o));
    MISUSE(bk_checkpoint_load_from(ck_st, m, o), "checkpoint_load", "missing");
    ACCEPTS(bk_checkpoint_load_from(ck_st, m, NULL) == 0, "optimizer NULL: the model only");
    bk_safetensors_free(ck_st);
    bk_optim_free(o);
    bk_module_free(m);
}

/* ---- completeness ------------------------------------------------------------------------------------------ */

/* The functions declared in the header: comments and preprocessor lines removed, every
 * identifier bk_... directly followed by '(' (a function pointer type is "(*name)(", so its
 * name is followed by ')'). */
static int header_functions(const char *path, char names[][64], int max) {
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    static char src[1 << 17];
    size_t n = fread(src, 1, sizeof src - 1, f);
    fclose(f);
    src[n] = '\0';
    /* blank out comments, strings and preprocessor lines (with their continuations) */
    bool line_start = true;
    for (size_t i = 0; i < n; i++) {
        if (src[i] == '/' && src[i + 1] == '*') {
            char *end = strstr(src + i + 2, "*/");
            size_t stop = end ? (size_t)(end - src) + 2 : n;
            for (; i < stop; i++)
                if (src[i] != '\n') src[i] = ' ';
            i--;
        } else if (src[i] == '/' && src[i + 1] == '/') {
            for (; i < n && src[i] != '\n'; i++) src[i] = ' ';
        } else if (src[i] == '"') {
            for (i++; i < n && src[i] != '"'; i++) src[i] = ' ';
        } else if (line_start && src[i] == '#') {
            for (; i < n && !(src[i] == '\n' && src[i - 1] != '\\'); i++)
                if (src[i] != '\n') src[i] = ' ';
        }
        if (src[i] == '\n') line_start = true;
        else if (!isspace((unsigned char)src[i])) line_start = false;
    }
    int count = 0;
    for (size_t i = 0; i + 3 < n; i++) {
        if (strncmp(src + i, "bk_", 3) != 0 || (i > 0 && (isalnum((unsigned char)src[i - 1]) || src[i - 1] == '_')))
            continue;
        size_t len = 0;
        while (isalnum((unsigned char)src[i + len]) || src[i + len] == '_') len++;
        size_t j = i + len;
        while (isspace((unsigned char)src[j])) j++;
        if (src[j] == '(' && len < 64 && count < max) {
            bool dup = false;
            for (int k = 0; k < count; k++)
                if (strlen(names[k]) == len && !strncmp(names[k], src + i, len)) dup = true;
            if (!dup) {
                memcpy(names[count], src + i, len);
                names[count++][len] = '\0';
            }
        }
        i += len;
    }
    return count;
}

TEST(sweep_is_complete) {
    static char names[512][64];
    const char *header = getenv("BRICK_HEADER") ? getenv("BRICK_HEADER") : "include/brick.h";
    int n = header_functions(header, names, 512);
    CHECK(n > 0); /* run from the repository root (run_tests.sh does), or set BRICK_HEADER */
    if (n <= 0) {
        fprintf(stderr, "  cannot read the functions of %s\n", header);
        return;
    }
    int missing = 0, with_misuse = 0;
    char only_accepts[4096] = "", nothing[4096] = "";
    for (int i = 0; i < n; i++) {
        int kind = 0;
        for (int k = 0; k < n_called && !kind; k++)
            if (called_len[k] == strlen(names[i]) && !strncmp(called[k], names[i], called_len[k])) kind = called_kind[k];
        if (kind & KIND_MISUSE) with_misuse++;
        else if (kind) { /* listed for the record: functions with no misuse to check */
            char *list = kind & KIND_ACCEPTS ? only_accepts : nothing;
            size_t len = strlen(list);
            snprintf(list + len, 4096 - len, "%s%s", len ? " " : "", names[i]);
        }
        if (!kind) {
            fprintf(stderr, "  FAIL [%s]: %s is declared in %s but not swept here: add its misuse checks "
                    "(or ACCEPTS / CANNOT_FAIL with the reason)\n", test_current_, names[i], header);
            missing++;
        }
    }
    if (missing) test_failed_checks_++;
    printf("  api misuse sweep: %d public functions in %s, %d swept (%d with misuse that must fail); %d misuse "
           "calls checked, %d documented accepted values, %d calls of functions with nothing to misuse\n",
           n, header, n - missing, with_misuse, n_misuse, n_accepts, n_cannot_fail);
    printf("  no failing misuse, NULL or the value has a documented meaning: %s\n", only_accepts);
    printf("  nothing to misuse (no arguments, or any value is valid): %s\n", nothing);
}

int main(void) {
    /* the stale tensor: made in an arena of its own, released by its reset, and never
     * overwritten since nothing is made in that arena again */
    dead_arena = bk_arena_new();
    bk_arena *prev = bk_arena_use(dead_arena);
    STALE = bk_ones(BK_SHAPE(2, 3));
    bk_arena_use(prev);
    bk_arena_reset(dead_arena);
    snprintf(tmpdir, sizeof tmpdir, "/tmp/brick-misuse-XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }

    RUN(errors_threads_rng);
    RUN(tensor_creation);
    RUN(tensor_fill_copy_inspect);
    RUN(arenas);
    RUN(autograd);
    RUN(elementwise_ops);
    RUN(matmul_reduce_ops);
    RUN(shape_ops);
    RUN(cnn_ops);
    RUN(attention_ops);
    RUN(loss_ops);
    RUN(module_base);
    RUN(layers);
    RUN(attention_layers);
    RUN(safetensors_files);
    RUN(optimizers);
    RUN(data_sets_and_loaders);
    RUN(models_and_checkpoints);
    RUN(distributed);
    RUN(sweep_is_complete);

    bk_arena_free(dead_arena);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    return test_summary("test_api_misuse");
}
