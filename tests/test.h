/* test.h - the tiny test harness every brick test binary uses.
 *
 *   TEST(name) { CHECK(cond); CHECK_CLOSE(a, b, tol); CHECK_ERR(expr_returning_ptr, "substr"); }
 *   int main(void) { RUN(name); ...; return test_summary("file"); }
 *
 * The binary speaks TAP (the Test Anything Protocol, https://testanything.org), which
 * `prove` and `make test` read: each RUN prints "ok N - name" or "not ok N - name", and
 * test_summary prints the plan "1..N" last. Every check that fails prints a "# FAIL
 * file:line ..." diagnostic (on stderr) with the values, and makes the binary exit 1.
 * Each test runs with a fresh arena state (the arena is reset after it) and the error
 * state cleared. test_summary also prints "# suite: N passed, M failed" and returns the
 * exit status.
 */
#ifndef BRICK_TEST_H
#define BRICK_TEST_H

#include "brick.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int test_failed_checks_;
static int test_passed_;
static int test_failed_;
static int test_skipped_;
static const char *test_current_;

#define TEST(name) static void name(void)

#define CHECK(cond)                                                                               \
    do {                                                                                          \
        if (!(cond)) {                                                                            \
            fprintf(stderr, "# FAIL %s:%d [%s]: %s\n", __FILE__, __LINE__, test_current_, #cond); \
            if (bk_last_error()[0]) fprintf(stderr, "#      last error: %s\n", bk_last_error());  \
            test_failed_checks_++;                                                                \
        }                                                                                         \
    } while (0)

#define CHECK_CLOSE(a, b, tol)                                                                        \
    do {                                                                                              \
        double a_ = (double)(a), b_ = (double)(b);                                                    \
        if (!(fabs(a_ - b_) <= (tol))) {                                                              \
            fprintf(stderr, "# FAIL %s:%d [%s]: %s = %.9g, %s = %.9g (tol %g)\n", __FILE__, __LINE__, \
                    test_current_, #a, a_, #b, b_, (double)(tol));                                    \
            test_failed_checks_++;                                                                    \
        }                                                                                             \
    } while (0)

/* expr must fail (return NULL or a negative int) and leave an error containing substr. */
#define CHECK_ERR(expr, substr)                                                                            \
    do {                                                                                                   \
        bk_clear_error();                                                                                  \
        int failed_ = !(expr);                                                                             \
        const char *e_ = bk_last_error();                                                                  \
        if (!failed_ || !strstr(e_, (substr))) {                                                           \
            fprintf(stderr, "# FAIL %s:%d [%s]: %s: expected failure with \"%s\", got %s \"%s\"\n",        \
                    __FILE__, __LINE__, test_current_, #expr, (substr), failed_ ? "error" : "success and", \
                    e_);                                                                                   \
            test_failed_checks_++;                                                                         \
        }                                                                                                  \
        bk_clear_error();                                                                                  \
    } while (0)

/* expr must fail and leave an error containing every one of the substrings. */
#define CHECK_ERRS(expr, ...)                                                                           \
    do {                                                                                                \
        bk_clear_error();                                                                               \
        int failed_ = !(expr);                                                                          \
        const char *subs_[] = {__VA_ARGS__};                                                            \
        for (size_t k_ = 0; k_ < sizeof subs_ / sizeof *subs_; k_++) {                                  \
            if (!failed_ || !strstr(bk_last_error(), subs_[k_])) {                                      \
                fprintf(stderr, "# FAIL %s:%d [%s]: %s: expected failure with \"%s\", got %s \"%s\"\n", \
                        __FILE__, __LINE__, test_current_, #expr, subs_[k_],                            \
                        failed_ ? "error" : "success and", bk_last_error());                            \
                test_failed_checks_++;                                                                  \
                break;                                                                                  \
            }                                                                                           \
        }                                                                                               \
        bk_clear_error();                                                                               \
    } while (0)

#define CHECK_FAILS_INT(expr, substr) CHECK_ERR((expr) >= 0 ? 1 : 0, substr)

/* Runs one test under `name` (RUN(fn) is test_run("fn", fn)): clears the error state, calls
 * it, resets the arena and prints its TAP line. */
static inline void test_run(const char *name, void (*fn)(void)) {
    int before = test_failed_checks_;
    test_current_ = name;
    bk_clear_error();
    fn();
    bk_arena_reset(NULL);
    int ok = test_failed_checks_ == before;
    if (ok) test_passed_++;
    else test_failed_++;
    fflush(stderr); /* a diagnostic printed there shows before the result line */
    printf("%s %d - %s\n", ok ? "ok" : "not ok", test_passed_ + test_failed_ + test_skipped_, name);
    fflush(stdout);
}

/* A test that cannot run here: a TAP "ok N - name # SKIP why" line (counts neither as
 * passed nor as failed in test_summary's line). */
static inline void test_skip(const char *name, const char *why) {
    test_skipped_++;
    printf("ok %d - %s # SKIP %s\n", test_passed_ + test_failed_ + test_skipped_, name, why);
    fflush(stdout);
}

#define RUN(name) test_run(#name, name)

/* How many times to repeat a randomised or repeated check: `full`, or `quick` when
 * BRICK_TEST_QUICK is set (make valgrind sets it: there a run costs 20-50 times more, and
 * valgrind runs a program's threads one at a time, so repeating a run to catch a race finds
 * nothing new). Every kind of check still runs, only fewer times. */
static inline int test_reps(int full, int quick) {
    const char *q = getenv("BRICK_TEST_QUICK");
    return q && q[0] && strcmp(q, "0") != 0 ? quick : full;
}

static inline int test_summary(const char *suite) {
    bk_thread_cleanup();
    printf("1..%d\n# %s: %d passed, %d failed", test_passed_ + test_failed_ + test_skipped_, suite,
           test_passed_, test_failed_);
    if (test_skipped_) printf(", %d skipped", test_skipped_);
    printf("\n");
    return test_failed_ ? 1 : 0;
}

/* True when every element of t equals v (false for NULL). */
static inline bool all_equal(const bk_tensor *t, float v) {
    if (!t) return false;
    for (int64_t i = 0; i < t->numel; i++)
        if (t->data[i] != v) return false;
    return true;
}

/* max |a - b| / (atol + rtol * |b|) over all elements: <= 1 means allclose. Prints the
 * first few mismatches and the max abs / rel error under `what`. */
static inline double test_compare(const char *what, const bk_tensor *a, const bk_tensor *b, double rtol,
                                  double atol) {
    if (!a || !b) {
        fprintf(stderr, "# %s: missing tensor (%s)\n", what, bk_last_error());
        return INFINITY;
    }
    if (a->numel != b->numel) {
        char sa[64], sb[64];
        fprintf(stderr, "# %s: shapes differ %s vs %s\n", what, bk_shape_str(a, sa, 64),
                bk_shape_str(b, sb, 64));
        return INFINITY;
    }
    double worst = 0, max_abs = 0, max_rel = 0;
    int shown = 0;
    for (int64_t i = 0; i < a->numel; i++) {
        double x = a->data[i], y = b->data[i], d = fabs(x - y);
        double r = d == 0 ? 0 : d / (atol + rtol * fabs(y)); /* exact match passes even at tol 0 */
        if (!(r <= 1) && shown < 5) {
            fprintf(stderr, "#   %s[%lld]: got %.9g, want %.9g\n", what, (long long)i, x, y);
            shown++;
        }
        if (!(r <= worst)) worst = r;
        if (d > max_abs) max_abs = d;
        if (fabs(y) > 0 && d / fabs(y) > max_rel) max_rel = d / fabs(y);
    }
    if (getenv("BRICK_TEST_VERBOSE") || !(worst <= 1))
        fprintf(stderr, "# %-40s max abs %.3g  max rel %.3g  (%s)\n", what, max_abs, max_rel,
                worst <= 1 ? "ok" : "MISMATCH");
    return worst;
}

#endif /* BRICK_TEST_H */
