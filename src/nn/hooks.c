/* hooks.c - forward pre-hooks, forward hooks and backward hooks on blocks (torch's
 * register_forward_pre_hook, register_forward_hook, register_full_backward_hook): a list
 * per block, run in the order added (the first two by bk_forward).
 *
 * Backward hooks work as torch's BackwardHook: when the block has some and grad mode is
 * on, bk_forward passes the input through an identity op ("BackwardHookFunction") before
 * the block's forward and the output through another after it, and puts a tensor hook
 * (autograd/tensor_hooks.c) on each. During backward the output's hook sees grad_output
 * first; the input's hook then calls the block's hooks with grad_input and grad_output and
 * hands back what they return. The pair shares a record in the step's arena.
 *
 * A block without hooks has hooks == NULL, so bk_forward pays one pointer test. Handles are
 * per block, increasing from 0, never reused.
 */
#include "internal.h"

typedef enum hook_kind { HOOK_PRE = 0, HOOK_FORWARD, HOOK_BACKWARD, HOOK_KIND_COUNT } hook_kind;

typedef struct hook {
    int handle;
    hook_kind kind;
    bk_forward_pre_hook pre_fn;
    bk_forward_hook fn;
    bk_backward_hook bw_fn;
    void *ud;
} hook;

struct bk_module_hooks {
    hook *list;
    int n, cap, next_handle;
};

static int add_hook(bk_module *m, const char *who, hook h_new) {
    if (!bk__module_ok(m, who)) return -1;
    if (!h_new.pre_fn && !h_new.fn && !h_new.bw_fn) {
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
    h_new.handle = h->next_handle;
    h->list[h->n++] = h_new;
    return h->next_handle++;
oom:
    bk_set_error("%s: %s: out of memory", who, m->cls->name);
    return -1;
}

int bk_module_add_forward_pre_hook(bk_module *m, bk_forward_pre_hook fn, void *ud) {
    return add_hook(m, "module_add_forward_pre_hook", (hook){.kind = HOOK_PRE, .pre_fn = fn, .ud = ud});
}

int bk_module_add_forward_hook(bk_module *m, bk_forward_hook fn, void *ud) {
    return add_hook(m, "module_add_forward_hook", (hook){.kind = HOOK_FORWARD, .fn = fn, .ud = ud});
}

int bk_module_add_backward_hook(bk_module *m, bk_backward_hook fn, void *ud) {
    return add_hook(m, "module_add_backward_hook", (hook){.kind = HOOK_BACKWARD, .bw_fn = fn, .ud = ud});
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
        if (h->list[i].kind == HOOK_PRE && !(x = h->list[i].pre_fn(m, x, h->list[i].ud)))
            return hook_failed(m, "pre-hook", h->list[i].handle);
    return x;
}

bk_tensor *bk__forward_hooks(bk_module *m, bk_tensor *x, bk_tensor *y) {
    const struct bk_module_hooks *h = m->hooks;
    for (int i = 0; y && i < h->n; i++)
        if (h->list[i].kind == HOOK_FORWARD && !(y = h->list[i].fn(m, x, y, h->list[i].ud)))
            return hook_failed(m, "hook", h->list[i].handle);
    return y;
}

/* ---- backward hooks ------------------------------------------------------------------------ */

/* One forward's record, shared by its input and output tensor hooks (arena). */
struct bk__backward_call {
    bk_module *m;
    const bk_tensor *grad_output; /* set by the output's hook */
    bool input_hooked;            /* the input needs a gradient: its hook calls the block's */
};

/* y = x; dx += dy (the op that carries the tensor hooks) */
static void backward_hook_fn_backward(bk_node *n) {
    const bk_tensor *dY = bk_node_grad_output(n);
    bk_tensor *dX = bk_node_grad_input(n, 0);
    for (int64_t i = 0; dX && i < dX->numel; i++) dX->data[i] += dY->data[i];
}

static const bk_op BACKWARD_HOOK_FN = {"BackwardHookFunction", backward_hook_fn_backward};

/* The block's backward hooks on grad_input (NULL: none needed) and the call's grad_output;
 * returns the replacement of grad_input, or NULL to keep it. */
static bk_tensor *call_backward_hooks(struct bk__backward_call *c, bk_tensor *grad_input) {
    const struct bk_module_hooks *h = c->m->hooks;
    bk_tensor *cur = grad_input;
    for (int i = 0; h && i < h->n; i++) {
        if (h->list[i].kind != HOOK_BACKWARD) continue;
        bk_tensor *r = h->list[i].bw_fn(c->m, cur, c->grad_output, h->list[i].ud);
        if (!r || !cur) continue; /* kept, or nothing to replace */
        if (!bk_tensor_ok(r, "backward") || !bk_same_shape(r, cur)) {
            char a[128], b[128];
            bk_set_error("%s: backward hook %d returned grad_input of shape %s for an input of shape %s",
                         c->m->cls->name, h->list[i].handle,
                         r->magic == BK_TENSOR_MAGIC ? bk_shape_str(r, a, sizeof a) : "?",
                         bk_shape_str(cur, b, sizeof b));
            return r; /* the tensor hook's check fails the backward with this message */
        }
        cur = r;
    }
    return cur == grad_input ? NULL : cur;
}

static bk_tensor *output_grad_hook(bk_tensor *t, bk_tensor *grad, void *ud) {
    (void)t;
    struct bk__backward_call *c = ud;
    c->grad_output = grad;
    if (!c->input_hooked) call_backward_hooks(c, NULL); /* torch: grad_input (None,) */
    return NULL;
}

static bk_tensor *input_grad_hook(bk_tensor *t, bk_tensor *grad, void *ud) {
    (void)t;
    return call_backward_hooks(ud, grad);
}

static bool has_backward_hooks(const bk_module *m) {
    for (int i = 0; m->hooks && i < m->hooks->n; i++)
        if (m->hooks->list[i].kind == HOOK_BACKWARD) return true;
    return false;
}

/* t through the identity op, with the tensor hook fn on the result */
static bk_tensor *hooked_identity(bk_tensor *t, bk_tensor_hook fn, struct bk__backward_call *c) {
    bk_tensor *v = bk__tensor_view(t, t->ndim, t->shape);
    v = bk_op_record(&BACKWARD_HOOK_FN, v, 1, &t, NULL, 0);
    if (v && bk_tensor_register_hook(v, fn, c) < 0) return NULL;
    return v;
}

bk_tensor *bk__backward_hooks_input(bk_module *m, bk_tensor *x, struct bk__backward_call **call) {
    *call = NULL;
    if (!has_backward_hooks(m) || !bk_is_grad_enabled()) return x;
    bk_arena *a = bk_arena_current();
    struct bk__backward_call *c = a ? bk__arena_alloc(a, sizeof *c) : NULL;
    if (!c) return NULL;
    *c = (struct bk__backward_call){m, NULL, x->requires_grad};
    *call = c;
    return x->requires_grad ? hooked_identity(x, input_grad_hook, c) : x;
}

bk_tensor *bk__backward_hooks_output(struct bk__backward_call *c, bk_tensor *y) {
    return y->requires_grad ? hooked_identity(y, output_grad_hook, c) : y;
}

void bk__hooks_free(bk_module *m) {
    if (!m->hooks) return;
    bk__free(m->hooks->list);
    bk__free(m->hooks);
    m->hooks = NULL;
}
