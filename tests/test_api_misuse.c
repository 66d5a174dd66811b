/* test_api_misuse.c - API misuse, swept over every public function (issue 6).
 *
 * Every function declared in include/brick.h (in its parts, include/brick/<area>.h) is
 * called here the way a careless caller would call it: NULL for each pointer argument, negative sizes and ranks, huge sizes,
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
 * sweep_is_complete, the last test, reads include/brick.h and its parts, lists every
 * function declared there, and fails naming each one that no check here called. So a public function added to
 * brick.h fails this test until its misuse is swept too. The counts it prints are the ones
 * docs/reliability.md quotes.
 *
 * Layout: this file has the harness, the completeness check and main; the checks are in
 * tests/api_misuse/, one file per API area, included below (one process, so that the
 * completeness check sees every call): tensors.h, ops.h, modules.h, io.h.
 */
#define _POSIX_C_SOURCE 200809L /* mkdtemp */

#include "test.h"
#include "files.h"

#include <ctype.h>
#include <dirent.h>
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
        if (strncmp(expr, "bk_", 3) != 0 ||
            (expr > all && (isalnum((unsigned char)expr[-1]) || expr[-1] == '_')))
            continue;
        for (n = 0; isalnum((unsigned char)expr[n]) || expr[n] == '_';) n++;
        if (expr[n] == '(') break;
        expr += n - 1;
    }
    if (!*expr) {
        expr = all;
        fprintf(stderr, "  FAIL [%s]: a sweep check must start with the call it checks: %s\n", test_current_,
                expr);
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
#define FAILED_(v)                   \
    _Generic((v), float              \
             : failed_float, double  \
             : failed_double, int    \
             : failed_int, long      \
             : failed_int, long long \
             : failed_int, default   \
             : failed_ptr)(v)

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
        fprintf(stderr, "  FAIL %s:%d [%s]: %s\n       expected %s with \"%s\", got %s \"%s\"\n", file, line,
                test_current_, expr, is_void ? "an error message" : "failure",
                missing ? missing : "(any message)", failed ? "" : "SUCCESS and", e);
        test_failed_checks_++;
    }
    bk_clear_error();
}

/* expr must fail, leaving a message that contains every one of the substrings. */
#define MISUSE(expr, ...)                                                             \
    misuse_check(__FILE__, __LINE__, #expr, (bk_clear_error(), FAILED_(expr)), false, \
                 (const char *const[]){__VA_ARGS__, NULL})
/* For functions that return nothing: stmt must leave such a message. */
#define MISUSE_VOID(stmt, ...)                                                                         \
    do {                                                                                               \
        bk_clear_error();                                                                              \
        stmt;                                                                                          \
        misuse_check(__FILE__, __LINE__, #stmt, true, true, (const char *const[]){__VA_ARGS__, NULL}); \
    } while (0)

static void accept_check(const char *file, int line, const char *expr, bool ok, int *counter,
                         const char *why) {
    record_call(expr, counter == &n_accepts ? KIND_ACCEPTS : KIND_CANNOT_FAIL);
    (*counter)++;
    if (!ok) {
        fprintf(stderr, "  FAIL %s:%d [%s]: %s (%s) does not hold; last error \"%s\"\n", file, line,
                test_current_, expr, why, bk_last_error());
        test_failed_checks_++;
    }
    bk_clear_error();
}
/* cond (which starts with the call) must hold: NULL or the value has a documented meaning. */
#define ACCEPTS(cond, why) \
    accept_check(__FILE__, __LINE__, #cond, (bk_clear_error(), (cond)), &n_accepts, why)
/* cond must hold: the function has no argument a caller could get wrong. */
#define CANNOT_FAIL(cond, why) \
    accept_check(__FILE__, __LINE__, #cond, (bk_clear_error(), (cond)), &n_cannot_fail, why)

/* ---- bad objects ---------------------------------------------------------------------------- */

static bk_arena *dead_arena; /* reset once; nothing is ever allocated in it again */
static bk_tensor *STALE;     /* a tensor of dead_arena: released by its reset */
static bk_tensor FOREIGN;    /* zeroed memory: not a tensor brick made */
static bk_module FOREIGN_M;  /* zeroed memory: not a block brick made */
static bk_tensor *T;         /* the bad tensor EACH_BAD_TENSOR substitutes */
static bk_module *M;         /* the bad block EACH_BAD_MODULE substitutes */

/* CALL (an expression using T) with T NULL, stale and foreign: each must fail naming who. */
#define EACH_BAD_TENSOR(who, CALL)                                    \
    do {                                                              \
        T = NULL;                                                     \
        MISUSE(CALL, who, "NULL");                                    \
        T = STALE;                                                    \
        MISUSE(CALL, who, "not a live tensor", "arena was reset");    \
        T = &FOREIGN;                                                 \
        MISUSE(CALL, who, "not a live tensor", "not a brick tensor"); \
    } while (0)
/* CALL (using M) with M NULL and foreign. */
#define EACH_BAD_MODULE(who, CALL)              \
    do {                                        \
        M = NULL;                               \
        MISUSE(CALL, who, "NULL");              \
        M = &FOREIGN_M;                         \
        MISUSE(CALL, who, "not a live module"); \
    } while (0)

/* Frees a block made in a check; true if there was one. */
static bool freed(bk_module *m) {
    bk_module_free(m);
    return m != NULL;
}

static bk_tensor *ones(int ndim, const int64_t *shape) { return bk_ones(ndim, shape); }
static bk_tensor *leaf(int ndim, const int64_t *shape) {
    return bk_requires_grad(bk_rand(ndim, shape), true);
}

/* ---- the checks, by API area ------------------------------------------------------------- */

#include "api_misuse/tensors.h"
#include "api_misuse/ops.h"
#include "api_misuse/modules.h"
#include "api_misuse/io.h"

/* ---- completeness ------------------------------------------------------------------------------------------ */

/* The functions declared in the header: comments and preprocessor lines removed, every
 * identifier bk_... directly followed by '(' (a function pointer type is "(*name)(", so its
 * name is followed by ')'). */
static int header_functions(const char *path, char names[][64], int count, int max) {
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
    for (size_t i = 0; i + 3 < n; i++) {
        if (strncmp(src + i, "bk_", 3) != 0 ||
            (i > 0 && (isalnum((unsigned char)src[i - 1]) || src[i - 1] == '_')))
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
    /* brick.h and its parts, include/brick/<area>.h (BRICK_HEADER: one header instead) */
    const char *header = getenv("BRICK_HEADER") ? getenv("BRICK_HEADER") : "include/brick.h";
    int n = header_functions(header, names, 0, 512);
    DIR *parts = getenv("BRICK_HEADER") ? NULL : opendir("include/brick");
    for (struct dirent *e; n >= 0 && parts && (e = readdir(parts));) {
        size_t len = strlen(e->d_name);
        char path[512];
        if (len < 3 || strcmp(e->d_name + len - 2, ".h")) continue;
        snprintf(path, sizeof path, "include/brick/%s", e->d_name);
        n = header_functions(path, names, n, 512);
    }
    if (parts) closedir(parts);
    CHECK(n > 0); /* run from the repository root (run_tests.sh does), or set BRICK_HEADER */
    if (n <= 0) {
        fprintf(stderr, "  cannot read the functions of %s and its parts\n", header);
        return;
    }
    int missing = 0, with_misuse = 0;
    char only_accepts[4096] = "", nothing[4096] = "";
    for (int i = 0; i < n; i++) {
        int kind = 0;
        for (int k = 0; k < n_called && !kind; k++)
            if (called_len[k] == strlen(names[i]) && !strncmp(called[k], names[i], called_len[k]))
                kind = called_kind[k];
        if (kind & KIND_MISUSE) with_misuse++;
        else if (kind) { /* listed for the record: functions with no misuse to check */
            char *list = kind & KIND_ACCEPTS ? only_accepts : nothing;
            size_t len = strlen(list);
            snprintf(list + len, 4096 - len, "%s%s", len ? " " : "", names[i]);
        }
        if (!kind) {
            fprintf(stderr,
                    "  FAIL [%s]: %s is declared in %s or its parts but not swept here: add its misuse "
                    "checks "
                    "(or ACCEPTS / CANNOT_FAIL with the reason)\n",
                    test_current_, names[i], header);
            missing++;
        }
    }
    if (missing) test_failed_checks_++;
    printf(
        "  api misuse sweep: %d public functions in %s, %d swept (%d with misuse that must fail); %d misuse "
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
    if (!files_init("misuse", NULL)) return 1;

    RUN(errors_threads_rng);
    RUN(tensor_creation);
    RUN(tensor_fill_copy_inspect);
    RUN(arenas);
    RUN(autograd);
    RUN(elementwise_ops);
    RUN(matmul_reduce_ops);
    RUN(shape_ops);
    RUN(index_ops);
    RUN(cnn_ops);
    RUN(layer_ops);
    RUN(attention_ops);
    RUN(loss_ops);
    RUN(module_base);
    RUN(layers);
    RUN(attention_layers);
    RUN(parameter_init);
    RUN(containers);
    RUN(forward_hooks);
    RUN(recurrent_layers);
    RUN(safetensors_files);
    RUN(images);
    RUN(optimizers);
    RUN(lr_schedules);
    RUN(param_groups);
    RUN(data_sets_and_loaders);
    RUN(models_and_checkpoints);
    RUN(distributed);
    RUN(sweep_is_complete);

    bk_arena_free(dead_arena);
    files_cleanup();
    return test_summary("test_api_misuse");
}
