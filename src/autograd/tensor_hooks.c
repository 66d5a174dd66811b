/* tensor_hooks.c - gradient hooks on tensors (torch's Tensor.register_hook): functions
 * called during backward with a tensor's complete gradient, which may replace it.
 *
 * An interior tensor's gradient is complete when the backward loop reaches its node (every
 * consumer comes earlier in the order): its hooks run then, before the node's backward
 * reads the gradient. A leaf's gradient accumulates into ->grad across backwards, so the
 * hooks get this backward's contribution: a copy of ->grad is kept before the loop and the
 * difference is handed to the hooks after it (->grad itself when the leaf had none, so a
 * hook that replaces nothing changes no bit). What a hook returns replaces the gradient:
 * for an interior tensor its values are written into ->grad, for a leaf ->grad becomes
 * the old gradient plus them.
 *
 * A tensor's hook list lives where the tensor lives: in its arena (released with it by
 * bk_arena_reset) or on the heap (freed by bk_tensor_free). A thread-local flag keeps a
 * backward from looking for hooked leaves until some hook was registered.
 */
#include "internal.h"

typedef struct tensor_hook {
    int handle;
    bk_tensor_hook fn;
    void *ud;
} tensor_hook;

struct bk_tensor_hooks {
    tensor_hook *list;
    int n, cap, next_handle;
};

static _Thread_local bool any_hook; /* a hook was registered in this thread */

/* bytes from t's arena, or the heap for a heap tensor (zeroed either way) */
static void *hooks_alloc(const bk_tensor *t, size_t bytes) {
    if (!t->arena) return bk__calloc(1, bytes);
    void *p = bk__arena_alloc(t->arena, bytes);
    if (p) memset(p, 0, bytes);
    return p;
}

int bk_tensor_register_hook(bk_tensor *t, bk_tensor_hook fn, void *ud) {
    if (!bk_tensor_ok(t, "tensor_register_hook")) return -1;
    if (!fn) {
        bk_set_error("tensor_register_hook: fn is NULL");
        return -1;
    }
    if (!t->requires_grad) {
        char s[128];
        bk_set_error("tensor_register_hook: cannot register a hook on tensor %s, which does not require grad",
                     bk_shape_str(t, s, sizeof s));
        return -1;
    }
    struct bk_tensor_hooks *h = t->hooks;
    if (!h && !(h = t->hooks = hooks_alloc(t, sizeof *h))) goto oom;
    if (h->n == h->cap) {
        int cap = h->cap ? 2 * h->cap : 2;
        tensor_hook *list = hooks_alloc(t, (size_t)cap * sizeof *list);
        if (!list) goto oom;
        if (h->n) memcpy(list, h->list, (size_t)h->n * sizeof *list);
        if (!t->arena) bk__free(h->list); /* an arena's old list goes with the arena */
        h->list = list;
        h->cap = cap;
    }
    h->list[h->n++] = (tensor_hook){h->next_handle, fn, ud};
    any_hook = true;
    return h->next_handle++;
oom:
    bk_set_error("tensor_register_hook: out of memory");
    return -1;
}

int bk_tensor_remove_hook(bk_tensor *t, int handle) {
    if (!bk_tensor_ok(t, "tensor_remove_hook")) return -1;
    struct bk_tensor_hooks *h = t->hooks;
    for (int i = 0; h && i < h->n; i++)
        if (h->list[i].handle == handle) {
            for (int k = i + 1; k < h->n; k++) h->list[k - 1] = h->list[k];
            h->n--;
            return 0;
        }
    bk_set_error("tensor_remove_hook: the tensor has no hook %d", handle);
    return -1;
}

void bk__tensor_hooks_free(bk_tensor *t) {
    if (!t->hooks || t->arena) return;
    bk__free(t->hooks->list);
    bk__free(t->hooks);
    t->hooks = NULL;
}

/* Runs t's hooks on g in order, each on what the previous one left; *out is the result
 * (g itself when none replaced it). */
static bool run_hooks(bk_tensor *t, bk_tensor *g, bk_tensor **out) {
    const struct bk_tensor_hooks *h = t->hooks;
    *out = g;
    for (int i = 0; h && i < h->n; i++) {
        bk_tensor *r = h->list[i].fn(t, *out, h->list[i].ud);
        if (!r) continue; /* torch's None: unchanged */
        if (!bk_tensor_ok(r, "backward") || !bk_same_shape(r, g)) {
            char a[128], b[128];
            if (bk__error_pending()) /* a block's backward hook said what was wrong */
                bk__error_prefix("backward");
            else if (r && r->magic == BK_TENSOR_MAGIC)
                bk_set_error(
                    "backward: tensor hook %d returned a gradient of shape %s for a tensor of shape %s",
                    h->list[i].handle, bk_shape_str(r, a, sizeof a), bk_shape_str(g, b, sizeof b));
            else bk__error_prefix("tensor hook %d returned no tensor", h->list[i].handle);
            return false;
        }
        *out = r;
    }
    return true;
}

bool bk__tensor_hooks_run(bk_tensor *t) {
    bk_tensor *g = t->grad, *r;
    if (!run_hooks(t, g, &r)) return false;
    if (r != g) memcpy(g->data, r->data, (size_t)g->numel * sizeof(float));
    return true;
}

/* ---- leaves ------------------------------------------------------------------------------- */

struct bk__leaf_hooks {
    int n;
    bk_tensor **leaf;
    bk_tensor **before; /* a copy of the leaf's gradient before this backward, or NULL */
    bk_arena *arena;
};

static bool collect(bk__leaf_hooks *lh, bk_tensor *t, int cap) {
    for (int i = 0; i < lh->n; i++)
        if (lh->leaf[i] == t) return true;
    if (lh->n == cap) return false;
    bk_tensor *before = NULL;
    if (t->grad) {
        bk_arena *saved = bk_arena_use(lh->arena);
        before = bk_empty(t->ndim, t->shape);
        bk_arena_use(saved);
        if (!before) return false;
        memcpy(before->data, t->grad->data, (size_t)t->numel * sizeof(float));
    }
    lh->leaf[lh->n] = t;
    lh->before[lh->n++] = before;
    return true;
}

bool bk__leaf_hooks_begin(bk_arena *a, bk_node **order, int64_t n, bk__leaf_hooks **out) {
    *out = NULL;
    if (!any_hook) return true;
    int cap = 0;
    for (int64_t i = 0; i < n; i++)
        for (int k = 0; k < order[i]->n_inputs; k++) {
            const bk_tensor *t = order[i]->inputs[k];
            if (!t->node && t->hooks && t->hooks->n && t->requires_grad) cap++;
        }
    if (!cap) return true;
    bk__leaf_hooks *lh = bk__arena_alloc(a, sizeof *lh);
    bk_tensor **arr = lh ? bk__arena_alloc(a, 2 * (size_t)cap * sizeof *arr) : NULL;
    if (!arr) return false;
    *lh = (bk__leaf_hooks){0, arr, arr + cap, a};
    for (int64_t i = 0; i < n; i++)
        for (int k = 0; k < order[i]->n_inputs; k++) {
            bk_tensor *t = order[i]->inputs[k];
            if (!t->node && t->hooks && t->hooks->n && t->requires_grad && !collect(lh, t, cap)) return false;
        }
    *out = lh;
    return true;
}

bool bk__leaf_hooks_end(bk__leaf_hooks *lh) {
    for (int i = 0; lh && i < lh->n; i++) {
        bk_tensor *t = lh->leaf[i], *before = lh->before[i], *g = t->grad, *r;
        if (!g) continue; /* no gradient reached it */
        if (!before) {
            if (!bk__tensor_hooks_run(t)) return false;
            continue;
        }
        bk_arena *saved = bk_arena_use(lh->arena);
        bk_tensor *delta = bk_empty(t->ndim, t->shape);
        bk_arena_use(saved);
        if (!delta) return false;
        for (int64_t k = 0; k < g->numel; k++) delta->data[k] = g->data[k] - before->data[k];
        if (!run_hooks(t, delta, &r)) return false;
        if (r != delta)
            for (int64_t k = 0; k < g->numel; k++) g->data[k] = before->data[k] + r->data[k];
    }
    return true;
}
