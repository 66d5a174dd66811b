/* sequential.c - nn.Sequential: children "0", "1", ... run in order. */
#include "internal.h"

#include <stdarg.h>

static bk_tensor *sequential_forward(bk_module *m, bk_tensor *x) {
    for (int i = 0; i < m->n_children && x; i++) x = bk_forward(m->children[i].module, x);
    return x;
}

static const bk_module_class SEQUENTIAL = {"Sequential", sequential_forward, NULL, NULL};

static bool is_sequential(const bk_module *m, const char *who) {
    if (!bk__module_ok(m, who)) return false;
    if (m->cls != &SEQUENTIAL) {
        bk_set_error("%s: expected a Sequential, got %s", who, bk_module_name(m));
        return false;
    }
    return true;
}

int bk_nn_sequential_append(bk_module *seq, bk_module *block) {
    if (!is_sequential(seq, "Sequential.append")) {
        if (block && bk__module_ok(block, "Sequential.append")) bk_module_free(block);
        return -1;
    }
    if (!block) { /* a failed constructor's message is kept */
        if (bk__error_pending()) bk__error_prefix("Sequential.append: block");
        else bk_set_error("Sequential.append: block is NULL");
        return -1;
    }
    if (!bk__module_ok(block, "Sequential.append: block")) return -1; /* not ours to free */
    char name[32];
    snprintf(name, sizeof name, "%d", seq->n_children);
    return bk_module_add(seq, name, block) ? 0 : -1;
}

bk_module *bk_nn_sequential_from(int n, bk_module *const *blocks) {
    bk_module *seq = n >= 0 && (n == 0 || blocks) ? bk_module_new(&SEQUENTIAL, sizeof(bk_module)) : NULL;
    if (!seq && n >= 0 && (n == 0 || blocks)) { /* out of memory: still consume the blocks */
        for (int i = 0; i < n; i++) bk_module_free(blocks[i]);
        return NULL;
    }
    if (!seq) {
        bk_set_error("Sequential: invalid block list (n = %d)", n);
        return NULL;
    }
    bool ok = true;
    for (int i = 0; i < n; i++) {
        if (!blocks[i]) {
            if (ok) bk__error_prefix("Sequential: block %d is NULL", i);
            ok = false;
            continue;
        }
        if (!ok) {
            bk_module_free(blocks[i]);
            continue;
        }
        ok = bk_nn_sequential_append(seq, blocks[i]) == 0;
    }
    if (!ok) {
        bk_module_free(seq);
        return NULL;
    }
    return seq;
}

bk_module *bk_nn_sequential(int n, ...) {
    enum { MAX_ARGS = 64 };
    if (n < 0) {
        bk_set_error("Sequential: invalid block count %d", n);
        return NULL;
    }
    bk_module *list[MAX_ARGS];
    if (n > MAX_ARGS) {
        bk_set_error("Sequential: at most 64 blocks in one call; append the rest");
        va_list ap;
        va_start(ap, n);
        for (int i = 0; i < n; i++) bk_module_free(va_arg(ap, bk_module *));
        va_end(ap);
        return NULL;
    }
    va_list ap;
    va_start(ap, n);
    for (int i = 0; i < n; i++) list[i] = va_arg(ap, bk_module *);
    va_end(ap);
    return bk_nn_sequential_from(n, list);
}

int bk_nn_sequential_len(const bk_module *seq) {
    return is_sequential(seq, "Sequential.len") ? seq->n_children : -1;
}

bk_module *bk_nn_sequential_get(const bk_module *seq, int index) {
    if (!is_sequential(seq, "Sequential[]")) return NULL;
    int i = index < 0 ? index + seq->n_children : index;
    if (i < 0 || i >= seq->n_children) {
        bk_set_error("Sequential[]: index %d is out of range (length %d)", index, seq->n_children);
        return NULL;
    }
    return seq->children[i].module;
}
