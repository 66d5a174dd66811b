/* hooks.c - forward pre-hooks and forward hooks on blocks (torch's register_forward_pre_hook
 * and register_forward_hook): a list per block, run by bk_forward in the order added.
 *
 * A block without hooks has hooks == NULL, so bk_forward pays one pointer test. Handles are
 * per block, increasing from 0, never reused.
 */
#include "internal.h"

typedef struct hook {
    int handle;
    bool pre;
    bk_forward_pre_hook pre_fn;
    bk_forward_hook fn;
    void *ud;
} hook;

struct bk_module_hooks {
    hook *list;
    int n, cap, next_handle;
};

static int add_hook(bk_module *m, const char *who, bool pre, bk_forward_pre_hook pre_fn, bk_forward_hook fn,
                    void *ud) {
    if (!bk__module_ok(m, who)) return -1;
    if (!pre_fn && !fn) {
        bk_set_error("%s: %s: fn is NULL", who, m->cls->name);
        return -1;
    }
    struct bk_module_hooks *h = m->hooks;
    if (!h && !(h = m->hooks = bk__calloc(1, sizeof *h))) goto oom;
    if (h->n == h->cap) {
        int cap = h->cap ? 2 * h->cap : 4;
        hook *list = bk__realloc(h->list, (size_t)cap * sizeof *list);
        if (!list) goto oom;
        h->list = list;
        h->cap = cap;
    }
    h->list[h->n++] = (hook){h->next_handle, pre, pre_fn, fn, ud};
    return h->next_handle++;
oom:
    bk_set_error("%s: %s: out of memory", who, m->cls->name);
    return -1;
}

int bk_module_add_forward_pre_hook(bk_module *m, bk_forward_pre_hook fn, void *ud) {
    return add_hook(m, "module_add_forward_pre_hook", true, fn, NULL, ud);
}

int bk_module_add_forward_hook(bk_module *m, bk_forward_hook fn, void *ud) {
    return add_hook(m, "module_add_forward_hook", false, NULL, fn, ud);
}

int bk_module_remove_hook(bk_module *m, int handle) {
    if (!bk__module_ok(m, "module_remove_hook")) return -1;
    struct bk_module_hooks *h = m->hooks;
    for (int i = 0; h && i < h->n; i++)
        if (h->list[i].handle == handle) {
            for (int k = i + 1; k < h->n; k++) h->list[k - 1] = h->list[k];
            h->n--;
            return 0;
        }
    bk_set_error("module_remove_hook: %s has no hook %d", m->cls->name, handle);
    return -1;
}

/* A hook gave NULL: keep its message, or leave one naming it. */
static bk_tensor *hook_failed(const bk_module *m, const char *kind, int handle) {
    if (!bk__error_pending()) bk_set_error("%s: forward %s %d returned NULL", m->cls->name, kind, handle);
    return NULL;
}

bk_tensor *bk__forward_pre_hooks(bk_module *m, bk_tensor *x) {
    const struct bk_module_hooks *h = m->hooks;
    for (int i = 0; x && i < h->n; i++)
        if (h->list[i].pre && !(x = h->list[i].pre_fn(m, x, h->list[i].ud)))
            return hook_failed(m, "pre-hook", h->list[i].handle);
    return x;
}

bk_tensor *bk__forward_hooks(bk_module *m, bk_tensor *x, bk_tensor *y) {
    const struct bk_module_hooks *h = m->hooks;
    for (int i = 0; y && i < h->n; i++)
        if (!h->list[i].pre && !(y = h->list[i].fn(m, x, y, h->list[i].ud)))
            return hook_failed(m, "hook", h->list[i].handle);
    return y;
}

void bk__hooks_free(bk_module *m) {
    if (!m->hooks) return;
    bk__free(m->hooks->list);
    bk__free(m->hooks);
    m->hooks = NULL;
}
