/* fuzz_model_spec.c - bk_model_build, the "name:key=value,..." parser behind --model and
 * behind every checkpoint's brick.arch.
 *
 * The input is text, one field per line (missing lines take the default):
 *   line 1  the spec, e.g. "mlp:hidden=64"
 *   line 2  the input shape, e.g. "1,28,28" (up to 9 comma-separated integers, any sign)
 *   line 3  n_classes (default 10)
 *   line 4  the size of the canonical-spec buffer (default 256; 0 passes NULL)
 * bk_model_num_params must give the parameter count of the model bk_model_build builds,
 * or refuse (with an error) what the build refuses without allocating.
 * bk_model_build must fail with an error, or return a model such that:
 *   - the canonical spec it wrote (when the buffer was big enough) builds the same
 *     architecture again and canonicalises to itself;
 *   - a small enough model (<= 500k parameters, input <= 4096 values, room for the batch
 *     dimension) runs a forward pass
 *     on a batch of one input of that shape and gives (1, n_classes): a model that builds
 *     for an input shape must accept it.
 */
#ifndef _XOPEN_SOURCE
#define _XOPEN_SOURCE 700 /* mkdtemp */
#endif
#include "fuzz.h"

#include <errno.h>

#define SPEC_MAX_LINE 512

/* Line `index` (0-based) of the input into buf (NUL-terminated); false if absent. */
static bool spec_line(const uint8_t *data, size_t size, int index, char *buf, size_t n) {
    size_t start = 0;
    for (int i = 0; i < index; i++) {
        const uint8_t *nl = memchr(data + start, '\n', size - start);
        if (!nl) return false;
        start = (size_t)(nl - data) + 1;
    }
    const uint8_t *nl = memchr(data + start, '\n', size - start);
    size_t len = (nl ? (size_t)(nl - data) : size) - start;
    if (len >= n) len = n - 1;
    memcpy(buf, data + start, len);
    buf[len] = '\0';
    return true;
}

static bool spec_int(const char *s, long long *out) {
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (end == s || errno) return false;
    *out = v;
    return true;
}

/* A forward pass of a batch of one: must give (1, n_classes). */
static void spec_forward(bk_module *m, int ndim, const int64_t *shape, int n_classes) {
    int64_t full[BK_MAX_DIMS + 1] = {1};
    for (int d = 0; d < ndim; d++) full[d + 1] = shape[d];
    bool grad = bk_set_grad_enabled(false);
    bk_module_train(m, false);
    bk_tensor *x = bk_zeros(ndim + 1, full);
    bk_tensor *y = x ? bk_forward(m, x) : NULL;
    FUZZ_ASSERT(y || strstr(bk_last_error(), "out of memory"));
    FUZZ_ASSERT(!y || (y->ndim == 2 && y->shape[0] == 1 && y->shape[1] == n_classes));
    bk_arena_reset(NULL);
    bk_set_grad_enabled(grad);
}

FUZZ_TARGET(model_spec) {
    fuzz_begin();
    char spec[SPEC_MAX_LINE], line[SPEC_MAX_LINE];
    spec_line(data, size, 0, spec, sizeof spec);
    int64_t shape[BK_MAX_DIMS + 1] = {1, 28, 28};
    int ndim = 3;
    if (spec_line(data, size, 1, line, sizeof line) && line[0]) {
        ndim = 0;
        for (char *p = line; ndim <= BK_MAX_DIMS;) {
            long long v;
            if (!spec_int(p, &v)) break;
            shape[ndim++] = (int64_t)v;
            p = strchr(p, ',');
            if (!p) break;
            p++;
        }
    }
    long long v;
    int n_classes = 10;
    if (spec_line(data, size, 2, line, sizeof line) && spec_int(line, &v) && v >= INT32_MIN && v <= INT32_MAX)
        n_classes = (int)v;
    size_t canon_size = 256;
    if (spec_line(data, size, 3, line, sizeof line) && spec_int(line, &v) && v >= 0 && v <= 4096)
        canon_size = (size_t)v;
    /* exactly canon_size bytes, so that ASan sees any write past them */
    char *canon = canon_size ? malloc(canon_size) : NULL;

    /* the count from the spec alone: what the build allocates, or the build's refusal */
    int64_t counted = bk_model_num_params(spec, ndim, shape, n_classes, NULL, 0);
    FUZZ_ASSERT(counted >= 0 || bk_last_error()[0]);
    FUZZ_ASSERT(counted <= BK_MODEL_MAX_PARAMS);
    bk_module *m = bk_model_build(spec, ndim, shape, n_classes, canon, canon_size);
    FUZZ_ASSERT(!m || counted == bk_module_num_params(m, false));
    FUZZ_ASSERT(counted >= 0 || !m); /* a refused count is a refused build */
    FUZZ_ASSERT(counted < 0 || m || strstr(bk_last_error(), "out of memory")); /* else only OOM */
    if (!m) {
        FUZZ_ASSERT(bk_last_error()[0]);
    } else {
        size_t len = canon ? strnlen(canon, canon_size) : 0;
        FUZZ_ASSERT(!canon || len < canon_size); /* always NUL-terminated */
        if (canon && len + 1 < canon_size) {     /* not truncated: it rebuilds itself */
            char again[4096];
            bk_module *m2 = bk_model_build(canon, ndim, shape, n_classes, again, sizeof again);
            FUZZ_ASSERT(m2 || strstr(bk_last_error(), "out of memory"));
            FUZZ_ASSERT(!m2 || !strcmp(again, canon));
            FUZZ_ASSERT(!m2 || bk_module_num_params(m2, false) == bk_module_num_params(m, false));
            bk_module_free(m2);
        }
        int64_t in_numel = 1;
        for (int d = 0; d < ndim; d++) in_numel *= shape[d]; /* bk_model_build checked it */
        if (ndim < BK_MAX_DIMS && bk_module_num_params(m, false) <= 500000 && in_numel <= 4096)
            spec_forward(m, ndim, shape, n_classes);
        bk_module_free(m);
    }
    free(canon);
    fuzz_end();
    return 0;
}
