/* anomaly.c - anomaly detection (torch.autograd.set_detect_anomaly).
 *
 * With the mode on (per thread, off by default), bk_op_record checks the output of every
 * op, recorded or not, and bk_backward checks every gradient a backward function produced
 * right after it ran. The first NaN or Inf fails the op (NULL) or the backward (-1) with a
 * message naming the op, the element and the block:
 *   anomaly: op 'log' produced NaN in its output (3,) at index 0 (in Sequential/1:Linear)
 * An op whose *input* already holds a non-finite value is told apart: no checked op made
 * it, so it came from data, a parameter (named when it is the block's own: a diverging
 * optimizer step writes Inf there) or a tensor made while the mode was off.
 *
 * Where an op runs: autograd knows nothing of blocks. The block stack lives in nn
 * (nn/block_stack.c), which hands this file two hooks (bk__anomaly_set_where): the
 * current path and the owner of a tensor. Recorded nodes keep an arena copy of the path
 * (only in anomaly mode), because a backward runs after the forward's blocks have returned.
 *
 * The switch itself (bk_set_detect_anomaly) lives in autograd.c next to the grad mode, so
 * that with the mode off bk_op_record pays one read of a thread-local it already has at
 * hand, and calls nothing here.
 */
#include "internal.h"

#include <inttypes.h>
#include <stdio.h>

#define PATH_MAX_CHARS 512

/* Where ops run, as the layer above tells it (NULL: nothing ran inside a block yet). */
static _Thread_local const bk__where_hooks *where_hooks;

void bk__anomaly_set_where(const bk__where_hooks *h) { where_hooks = h; }

/* ---- where an op runs ------------------------------------------------------------------ */

static void block_path(char *buf, size_t n) {
    buf[0] = '\0';
    if (where_hooks) where_hooks->path(buf, n);
}

/* " (in PATH)" or " (outside any block)" for messages; `path` NULL means the current one. */
static void where(char *buf, size_t n, const char *path) {
    char cur[PATH_MAX_CHARS];
    if (!path) {
        block_path(cur, sizeof cur);
        path = cur;
    }
    if (path[0]) snprintf(buf, n, " (in %s)", path);
    else snprintf(buf, n, " (outside any block)");
}

const char *bk__anomaly_block_copy(bk_arena *a) {
    char path[PATH_MAX_CHARS];
    block_path(path, sizeof path);
    if (!path[0]) return ""; /* known: outside any block */
    size_t len = strlen(path) + 1;
    char *copy = bk__arena_alloc(a, len);
    if (copy) memcpy(copy, path, len);
    else bk_clear_error(); /* the path is a nicety: its absence is not an error */
    return copy;
}

/* ---- the checks ----------------------------------------------------------------------- */

/* Index of the first NaN or Inf in t, or -1. Compares exponent bits, so it also works
 * where a compiler was told to assume finite math; blocks without an early exit let the
 * compiler vectorise the common, all-finite case. */
static int64_t first_nonfinite(const bk_tensor *t) {
    const float *p = t->data;
    for (int64_t start = 0; start < t->numel; start += 1024) {
        int64_t end = t->numel - start < 1024 ? t->numel : start + 1024;
        uint32_t any = 0;
        for (int64_t i = start; i < end; i++) {
            uint32_t u;
            memcpy(&u, &p[i], sizeof u);
            any |= (u & 0x7f800000u) == 0x7f800000u;
        }
        if (!any) continue;
        for (int64_t i = start; i < end; i++) {
            uint32_t u;
            memcpy(&u, &p[i], sizeof u);
            if ((u & 0x7f800000u) == 0x7f800000u) return i;
        }
    }
    return -1;
}

static const char *kind_of(float v) { return v != v ? "NaN" : v > 0 ? "Inf" : "-Inf"; }

/* "parameter 'weight' of Sequential/1:Linear" when t is a parameter or buffer of the
 * innermost running block, else "". */
static void owner_of(const bk_tensor *t, char *buf, size_t n) {
    buf[0] = '\0';
    if (where_hooks) where_hooks->owner(t, buf, n);
}

bool bk__anomaly_check_output(const bk_op *op, const bk_tensor *out, int n_inputs, bk_tensor *const *inputs) {
    int64_t bad = first_nonfinite(out);
    if (bad < 0) return true;
    char shape[128], at[PATH_MAX_CHARS + 32];
    /* Blame an input that was already non-finite: this op only passed it on. */
    for (int i = 0; i < n_inputs; i++) {
        int64_t ib = first_nonfinite(inputs[i]);
        if (ib < 0) continue;
        char owner[PATH_MAX_CHARS + 64];
        owner_of(inputs[i], owner, sizeof owner);
        where(at, sizeof at, NULL);
        if (owner[0])
            bk_set_error("anomaly: op '%s' got %s in its input %d %s at index %" PRId64
                         ": %s, "
                         "which no op produced (an optimizer step or a load put it there)",
                         op->name, kind_of(inputs[i]->data[ib]), i,
                         bk_shape_str(inputs[i], shape, sizeof shape), ib, owner);
        else
            bk_set_error("anomaly: op '%s' got %s in its input %d %s at index %" PRId64
                         ", which no checked op produced (input data, a parameter, or a tensor "
                         "made while anomaly mode was off)%s",
                         op->name, kind_of(inputs[i]->data[ib]), i,
                         bk_shape_str(inputs[i], shape, sizeof shape), ib, at);
        return false;
    }
    where(at, sizeof at, NULL);
    bk_set_error("anomaly: op '%s' produced %s in its output %s at index %" PRId64 "%s", op->name,
                 kind_of(out->data[bad]), bk_shape_str(out, shape, sizeof shape), bad, at);
    return false;
}

bool bk__anomaly_check_grads(const bk_node *n) {
    for (int i = 0; i < n->n_inputs; i++) {
        const bk_tensor *t = n->inputs[i];
        if (!t->requires_grad || !t->grad) continue;
        int64_t bad = first_nonfinite(t->grad);
        if (bad < 0) continue;
        char shape[128], at[PATH_MAX_CHARS + 32] = "";
        if (n->block) where(at, sizeof at, n->block); /* NULL: recorded with the mode off */
        bk_set_error(
            "anomaly: op '%s' produced %s in the gradient of its input %d %s at index "
            "%" PRId64 " during backward%s",
            n->op->name, kind_of(t->grad->data[bad]), i, bk_shape_str(t->grad, shape, sizeof shape), bad, at);
        return false;
    }
    return true;
}
