/* parity.h - what the PyTorch parity tests (tests/test_parity*.c) share: finding and
 * loading a case's reference files, reading their metadata, comparing brick's tensors with
 * torch's within a tolerance (printing max abs / rel error and the first mismatches), and
 * skipping a case, or the whole test, when PyTorch made no references.
 *
 * A test includes it instead of test.h, sets parity_prefix_ if its files carry one
 * ("trf_"), and in main():
 *
 *   if (parity_skip_all("test_parity_x", "gen_x.py")) return test_summary("test_parity_x");
 *   parity_run("case", fn, true);   // fn runs if case(.ref).safetensors are there
 *   return parity_summary("test_parity_x");
 *
 * Environment:
 *   BRICK_PARITY_DIR     where the references are (default build/parity; `make test` sets it)
 *   BRICK_REQUIRE_TORCH  1: a missing directory or file is a failure, not a skip
 *   BRICK_TEST_VERBOSE   print max abs / rel error of every compared tensor and case
 */
#ifndef BRICK_PARITY_H
#define BRICK_PARITY_H

#include "test.h"

#include <sys/stat.h>

/* Prefix of this test's file names in the parity directory ("trf_<case>..."). */
static const char *parity_prefix_ = "";

static inline const char *parity_dir(void) {
    const char *d = getenv("BRICK_PARITY_DIR");
    return d && d[0] ? d : "build/parity";
}

static inline bool parity_require_torch(void) {
    const char *r = getenv("BRICK_REQUIRE_TORCH");
    return r && strcmp(r, "1") == 0;
}

static inline bool parity_verbose(void) { return getenv("BRICK_TEST_VERBOSE") != NULL; }

static inline bool parity_file_exists(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

/* <dir>/<prefix><case><suffix> into buf. */
static inline char *parity_case_path(char *buf, size_t n, const char *case_name, const char *suffix) {
    snprintf(buf, n, "%s/%s%s%s", parity_dir(), parity_prefix_, case_name, suffix);
    return buf;
}

/* Loads a case's file (suffix ".safetensors" or ".ref.safetensors"), or says why not. */
static inline bk_safetensors *parity_open(const char *case_name, const char *suffix) {
    char path[1024];
    bk_safetensors *st = bk_safetensors_load(parity_case_path(path, sizeof path, case_name, suffix));
    if (!st) fprintf(stderr, "# %s: cannot load %s: %s\n", case_name, path, bk_last_error());
    return st;
}

static inline bool parity_has_tensor(const bk_safetensors *st, const char *name) {
    for (int i = 0; i < bk_safetensors_count(st); i++)
        if (strcmp(bk_safetensors_name(st, i), name) == 0) return true;
    return false;
}

/* The metadata value under key, "" when absent (or ref is NULL). */
static inline const char *parity_meta(const bk_safetensors *ref, const char *key) {
    const char *v = ref ? bk_safetensors_meta(ref, key) : NULL;
    return v ? v : "";
}

/* The integer in metadata "cfg.<key>" (the generators' case settings), 0 when absent. */
static inline int64_t parity_cfg_int(const bk_safetensors *ref, const char *key) {
    char k[128];
    snprintf(k, sizeof k, "cfg.%s", key);
    return strtoll(parity_meta(ref, k), NULL, 10);
}

/* The number in metadata "<prefix>.<what>" (the generators' f32err.<tensor>: torch's own
 * float32 error on it, f32noise.<tensor>: its rounding-noise scale), capped at cap so that
 * an ill-conditioned draw can never loosen a test much; 0 when not recorded. */
static inline double parity_meta_error(const bk_safetensors *ref, const char *prefix, const char *what,
                                       double cap) {
    char key[192];
    snprintf(key, sizeof key, "%s.%s", prefix, what);
    double e = strtod(parity_meta(ref, key), NULL);
    return e > 0 ? fmin(e, cap) : 0;
}

/* Splits a comma-separated list into at most cap names (pointers into buf). */
static inline int parity_split_csv(const char *csv, char *buf, size_t n, char **names, int cap) {
    snprintf(buf, n, "%s", csv ? csv : "");
    int count = 0;
    for (char *p = buf; *p && count < cap;) {
        names[count++] = p;
        char *comma = strchr(p, ',');
        if (!comma) break;
        *comma = '\0';
        p = comma + 1;
    }
    return count;
}

/* The names of `l` must be exactly the comma-separated `csv` (torch's), in order. */
static inline void parity_check_names(const char *case_name, const char *what, const bk_param_list *l,
                                      const char *csv) {
    static char buf[16384];
    char *want[512];
    int n = parity_split_csv(csv, buf, sizeof buf, want, 512);
    bool same = l && l->n == n;
    for (int i = 0; same && i < n; i++) same = strcmp(l->names[i], want[i]) == 0;
    if (!same) {
        fprintf(stderr, "# %s %s: brick [", case_name, what);
        for (int i = 0; l && i < l->n; i++) fprintf(stderr, "%s%s", i ? "," : "", l->names[i]);
        fprintf(stderr, "], torch [%s]\n", csv ? csv : "");
    }
    CHECK(same);
}

/* The module's parameter, state-dict and buffer name lists (the caller frees them), each
 * checked against torch's (ref metadata param_names, state_names, buffer_names: the state
 * dict brick would save must be PyTorch's, in PyTorch's order). False when a list could
 * not be made. */
static inline bool parity_module_names(const char *case_name, const bk_module *m, const bk_safetensors *ref,
                                       bk_param_list **params, bk_param_list **state,
                                       bk_param_list **buffers) {
    *params = bk_module_named(m, BK_PARAMS);
    *state = bk_module_named(m, BK_STATE);
    *buffers = bk_module_named(m, BK_BUFFERS);
    CHECK(*params && *state && *buffers);
    if (!*params || !*state || !*buffers) return false;
    parity_check_names(case_name, "named parameters", *params, bk_safetensors_meta(ref, "param_names"));
    parity_check_names(case_name, "state dict", *state, bk_safetensors_meta(ref, "state_names"));
    parity_check_names(case_name, "buffers", *buffers, bk_safetensors_meta(ref, "buffer_names"));
    return true;
}

/* Frees what a module case holds (any of it may be NULL). */
static inline void parity_module_case_free(bk_module *m, bk_safetensors *w, bk_safetensors *ref,
                                           bk_param_list *params, bk_param_list *state,
                                           bk_param_list *buffers) {
    bk_param_list_free(params);
    bk_param_list_free(state);
    bk_param_list_free(buffers);
    bk_module_free(m);
    bk_safetensors_free(w);
    bk_safetensors_free(ref);
}

/* The generators' loss: backward from y with the ref's "upstream" (L = sum(y * upstream)),
 * or from the scalar y itself when there is none. CHECKs and returns bk_backward's status. */
static inline int parity_backward(bk_tensor *y, const bk_safetensors *ref) {
    int rc = parity_has_tensor(ref, "upstream")
                 ? bk_backward_ex(y, bk_safetensors_get(ref, "upstream"), false)
                 : bk_backward(y);
    CHECK(rc == 0);
    return rc;
}

/* The loss of several named outputs: L = sum over i of sum(outs[i] * ref's
 * "<names[i]>.upstream"). NULL when an output or an upstream is missing. */
static inline bk_tensor *parity_outputs_loss(const bk_safetensors *ref, int n, char *const *names,
                                             bk_tensor *const *outs) {
    bk_tensor *loss = NULL;
    for (int i = 0; i < n; i++) {
        char up[128];
        snprintf(up, sizeof up, "%s.upstream", names[i]);
        const bk_tensor *u = bk_safetensors_get(ref, up);
        bk_tensor *term = u && outs[i] ? bk_sum(bk_mul(outs[i], bk_from_data(u->ndim, u->shape, u->data)))
                                       : NULL;
        if (!term) return NULL;
        loss = i == 0 ? term : bk_add(loss, term);
    }
    return loss;
}

/* Worst errors over a group of comparisons (a case, or one optimizer step), and how a
 * group compares: exact (bit for bit, up to the sign of zero) or nan_equal (a NaN in
 * torch's tensor must be a NaN in brick's; otherwise a NaN never passes). */
typedef struct parity_stats {
    bool exact, nan_equal;
    double worst; /* max |got - want| / (atol + rtol |want|): <= 1 passes */
    double max_abs, max_rel;
    double norm_rel; /* max over tensors of |got - want|_2 / |want|_2 */
    int compared, nans;
    char worst_what[256];
} parity_stats;

/* Compares brick's `got` with torch's `want` under `label` (e.g. "case output"): the same
 * shape, then |got - want| <= atol + rtol |want| for every element (equal values, infinite
 * ones included, always pass). Prints the first mismatches and, when it fails or under
 * BRICK_TEST_VERBOSE, the max abs / rel error; adds to *acc and CHECKs the result. */
static inline void parity_compare(const char *label, const bk_tensor *got, const bk_tensor *want, double rtol,
                                  double atol, parity_stats *acc) {
    if (!want || !got) {
        fprintf(stderr, "# %s: %s tensor missing (%s)\n", label, want ? "brick's" : "reference",
                bk_last_error());
        CHECK(want && got);
        return;
    }
    if (!bk_same_shape(got, want)) {
        char a[64], b[64];
        fprintf(stderr, "# %s: shape %s, want %s\n", label, bk_shape_str(got, a, sizeof a),
                bk_shape_str(want, b, sizeof b));
        CHECK(bk_same_shape(got, want));
        return;
    }
    double worst = 0, max_abs = 0, max_rel = 0, dd = 0, yy = 0;
    int shown = 0, nans = 0;
    for (int64_t i = 0; i < got->numel; i++) {
        double x = got->data[i], y = want->data[i], d = x == y ? 0 : fabs(x - y), r;
        if (acc->nan_equal && isnan(y)) {
            nans++;
            r = d = isnan(x) ? 0 : INFINITY;
        } else {
            r = acc->exact ? (d == 0 ? 0 : INFINITY) : d / (atol + rtol * fabs(y));
        }
        if (!(r <= 1) && shown++ < 5)
            fprintf(stderr, "#   %s[%lld]: got %.9g, want %.9g%s\n", label, (long long)i, x, y,
                    acc->exact ? " (exact)" : "");
        if (!(r <= worst)) worst = r;
        if (!(d <= max_abs)) max_abs = d;
        if (fabs(y) > 0 && !(d / fabs(y) <= max_rel)) max_rel = d / fabs(y);
        if (isfinite(d) && isfinite(y)) {
            dd += d * d;
            yy += y * y;
        }
    }
    if (parity_verbose() || !(worst <= 1))
        fprintf(stderr,
                "# %-44s max abs %.3g  max rel %.3g  worst %.3g of tolerance (rtol %g, atol %g)%s%s\n", label,
                max_abs, max_rel, worst, rtol, atol, nans ? "  (NaN pattern equal)" : "",
                worst <= 1 ? "" : "  MISMATCH");
    CHECK(worst <= 1);
    if (!(worst <= acc->worst)) {
        acc->worst = worst;
        snprintf(acc->worst_what, sizeof acc->worst_what, "%s", label);
    }
    if (!(max_abs <= acc->max_abs)) acc->max_abs = max_abs;
    if (!(max_rel <= acc->max_rel)) acc->max_rel = max_rel;
    if (yy > 0 && sqrt(dd / yy) > acc->norm_rel) acc->norm_rel = sqrt(dd / yy);
    acc->compared++;
    acc->nans += nans;
}

/* One line per case (or group) under BRICK_TEST_VERBOSE, in a fixed format that scripts
 * can collect:
 *   "# == <case> <n> tensors max abs <a> max rel <r> norm rel <n> worst <w> of tolerance (<label>)" */
static inline void parity_stats_print(const char *what, const parity_stats *s) {
    if (parity_verbose())
        fprintf(stderr,
                "# == %-28s %2d tensors  max abs %.3g  max rel %.3g  norm rel %.3g  worst %.3g of "
                "tolerance (%s)\n",
                what, s->compared, s->max_abs, s->max_rel, s->norm_rel, s->worst,
                s->worst_what[0] ? s->worst_what : "-");
}

/* Runs test fn under the case's name if its reference file (and, for a module case, its
 * weight file) is there; otherwise a TAP skip, or under BRICK_REQUIRE_TORCH=1 a run that
 * fails saying which file is missing. */
static inline void parity_run(const char *case_name, void (*fn)(void), bool is_module) {
    char p1[1024], p2[1024];
    bool there = parity_file_exists(parity_case_path(p1, sizeof p1, case_name, ".ref.safetensors")) &&
                 (!is_module ||
                  parity_file_exists(parity_case_path(p2, sizeof p2, case_name, ".safetensors")));
    if (there || parity_require_torch()) {
        test_run(case_name, fn);
    } else {
        char why[1100];
        snprintf(why, sizeof why, "no reference file in %s", parity_dir());
        test_skip(case_name, why);
    }
}

TEST(references_present) {
    struct stat sb;
    bool there = stat(parity_dir(), &sb) == 0 && S_ISDIR(sb.st_mode);
    if (!there) fprintf(stderr, "# no directory %s and BRICK_REQUIRE_TORCH=1\n", parity_dir());
    CHECK(there);
}

/* No parity directory and no BRICK_REQUIRE_TORCH=1: says how to make the references for
 * `generator` (tests/parity/<generator>) and returns true (the test skips everything).
 * Otherwise runs references_present and returns false. */
static inline bool parity_skip_all(const char *test, const char *generator) {
    struct stat sb;
    if (!(stat(parity_dir(), &sb) == 0 && S_ISDIR(sb.st_mode)) && !parity_require_torch()) {
        printf(
            "# %s: SKIP: no PyTorch references in %s. Generate them with\n"
            "#   /usr/bin/python3 tests/parity/%s --out %s --seed N\n"
            "# (needs torch), or point BRICK_PARITY_DIR at them. BRICK_REQUIRE_TORCH=1 "
            "makes this a failure.\n",
            test, parity_dir(), generator, parity_dir());
        return true;
    }
    RUN(references_present);
    return false;
}

#endif /* BRICK_PARITY_H */
