/* module.c - the block base: named children, parameters and buffers, and everything
 * that works on any block generically (forward dispatch, named iteration, modes,
 * zero_grad, apply, printing).
 *
 * A block's parameters and buffers are heap tensors it owns; its children are blocks it
 * holds a reference to (refcounted, so one block may be registered in two places and is
 * freed once). Registration order is kept everywhere, as in torch's OrderedDicts.
 */
#include "internal.h"

#include <stdlib.h>

bool bk__module_ok(const bk_module *m, const char *who) {
    if (!m) {
        bk_set_error("%s: module is NULL", who);
        return false;
    }
    if (!m->cls || !m->cls->name || m->refcount <= 0) {
        bk_set_error("%s: not a live module (freed, or not made by bk_module_new)", who);
        return false;
    }
    return true;
}

bk_module *bk_module_new(const bk_module_class *cls, size_t size) {
    if (!cls || !cls->name || !cls->forward) {
        bk_set_error("module_new: the class needs a name and a forward function");
        return NULL;
    }
    if (size < sizeof(bk_module)) {
        bk_set_error(
            "module_new: %s: size %zu is smaller than bk_module (%zu); embed bk_module "
            "as the first member",
            cls->name, size, sizeof(bk_module));
        return NULL;
    }
    bk_module *m = bk__calloc(1, size);
    if (!m) {
        bk_set_error("module_new: %s: out of memory", cls->name);
        return NULL;
    }
    m->cls = cls;
    m->training = true;
    m->refcount = 1;
    return m;
}

bk_module *bk_module_ref(bk_module *m) {
    if (!bk__module_ok(m, "module_ref")) return NULL;
    m->refcount++;
    return m;
}

void bk_module_free(bk_module *m) {
    if (!m) return;
    if (!bk__module_ok(m, "module_free")) return; /* refused: freeing it would corrupt memory */
    if (--m->refcount > 0) return;
    if (m->cls->destroy) m->cls->destroy(m);
    for (int i = 0; i < m->n_children; i++) {
        bk__free(m->children[i].name);
        bk_module_free(m->children[i].module);
    }
    for (int i = 0; i < m->n_params; i++) {
        bk__free(m->params[i].name);
        bk_tensor_free(m->params[i].tensor);
    }
    for (int i = 0; i < m->n_buffers; i++) {
        bk__free(m->buffers[i].name);
        bk_tensor_free(m->buffers[i].tensor);
    }
    bk__free(m->children);
    bk__free(m->params);
    bk__free(m->buffers);
    bk__hooks_free(m);
    bk__free(m);
}

static bool name_ok(const bk_module *m, const char *what, const char *name) {
    if (!name || !name[0] || strchr(name, '.')) {
        bk_set_error("%s: %s: invalid name \"%s\" (non-empty, without '.')", m->cls->name, what,
                     name ? name : "(null)");
        return false;
    }
    for (int i = 0; i < m->n_children; i++)
        if (!strcmp(m->children[i].name, name)) goto dup;
    for (int i = 0; i < m->n_params; i++)
        if (!strcmp(m->params[i].name, name)) goto dup;
    for (int i = 0; i < m->n_buffers; i++)
        if (!strcmp(m->buffers[i].name, name)) goto dup;
    return true;
dup:
    bk_set_error("%s: %s: attribute \"%s\" already exists", m->cls->name, what, name);
    return false;
}

/* Grows a registry array by one slot. */
static bool grow(void **arr, int n, int *cap, size_t elem) { return bk__grow(arr, n, cap, elem, 4); }

bk_module *bk_module_add(bk_module *m, const char *name, bk_module *child) {
    if (!child) {
        if (!bk__error_pending()) bk_set_error("module_add: child \"%s\" is NULL", name ? name : "?");
        else
            bk__error_prefix("%s: child \"%s\"", m && m->cls ? bk_module_name(m) : "module_add",
                             name ? name : "?");
        return NULL;
    }
    if (!bk__module_ok(child, "module_add")) { /* not ours to free */
        bk__error_prefix("module_add: child \"%s\"", name ? name : "?");
        return NULL;
    }
    if (!m) {
        bk_set_error("module_add: parent is NULL");
        goto fail;
    }
    if (!bk__module_ok(m, "module_add: parent")) goto fail;
    if (child == m) {
        bk_set_error("%s: add_module: a block cannot contain itself", m->cls->name);
        goto fail;
    }
    if (!name_ok(m, "add_module", name)) goto fail;
    if (!grow((void **)&m->children, m->n_children, &m->cap_children, sizeof *m->children)) goto oom;
    char *nm = bk__strdup(name);
    if (!nm) goto oom;
    m->children[m->n_children++] = (bk_named_module){nm, child};
    return child;
oom:
    bk_set_error("%s: add_module: out of memory", m->cls->name);
fail:
    bk_module_free(child);
    return NULL;
}

static bk_tensor *add_tensor(bk_module *m, const char *what, const char *name, int ndim, const int64_t *shape,
                             bool is_param, bool persistent) {
    if (!bk__module_ok(m, what)) return NULL;
    if (!name_ok(m, what, name)) return NULL;
    bk_named_tensor **arr = is_param ? &m->params : &m->buffers;
    int *n = is_param ? &m->n_params : &m->n_buffers;
    int *cap = is_param ? &m->cap_params : &m->cap_buffers;
    if (!grow((void **)arr, *n, cap, sizeof **arr)) goto oom;
    bk_tensor *t = bk_tensor_new(ndim, shape);
    if (!t) {
        bk__error_prefix("%s: %s \"%s\"", m->cls->name, what, name);
        return NULL;
    }
    char *nm = bk__strdup(name);
    if (!nm) {
        bk_tensor_free(t);
        goto oom;
    }
    t->is_param = true;
    t->requires_grad = is_param;
    (*arr)[(*n)++] = (bk_named_tensor){nm, t, is_param, is_param || persistent};
    return t;
oom:
    bk_set_error("%s: %s: out of memory", m->cls->name, what);
    return NULL;
}

bk_tensor *bk_module_param(bk_module *m, const char *name, int ndim, const int64_t *shape) {
    return add_tensor(m, "register_parameter", name, ndim, shape, true, true);
}

bk_tensor *bk_module_buffer(bk_module *m, const char *name, int ndim, const int64_t *shape, bool persistent) {
    return add_tensor(m, "register_buffer", name, ndim, shape, false, persistent);
}

int bk_module_set_trainable(bk_module *m, const char *name, bool trainable) {
    if (!bk__module_ok(m, "set_trainable")) return -1;
    if (!name) {
        bk_set_error("set_trainable: name is NULL");
        return -1;
    }
    for (int i = 0; i < m->n_params; i++)
        if (!strcmp(m->params[i].name, name)) {
            m->params[i].trainable = trainable;
            m->params[i].tensor->requires_grad = trainable;
            return 0;
        }
    bk_set_error("set_trainable: %s has no parameter \"%s\"", m->cls->name, name);
    return -1;
}

/* ---- forward ------------------------------------------------------------------------------- */

bk_tensor *bk_forward(bk_module *m, bk_tensor *x) {
    if (!m) {
        if (!bk__error_pending()) bk_set_error("forward: module is NULL");
        return NULL;
    }
    if (!bk__module_ok(m, "forward")) return NULL;
    if (!bk__inputs_ok(m->cls->name, 1, &x)) return NULL;
    bool had_error = bk__error_pending();
    bk__block_push(m); /* names the block in anomaly messages */
    bk_tensor *in = m->hooks ? bk__forward_pre_hooks(m, x) : x;
    struct bk__backward_call *bw = NULL;
    if (in && m->hooks) in = bk__backward_hooks_input(m, in, &bw);
    bk_tensor *y = in ? m->cls->forward(m, in) : NULL;
    if (y && m->hooks) y = bk__forward_hooks(m, in, y);
    if (y && bw) y = bk__backward_hooks_output(bw, y);
    bk__block_pop();
    if (!y) {
        /* Name the innermost block only: outer blocks see a message that already has it
         * (anomaly messages carry the whole block path). */
        if (!bk__error_pending()) bk_set_error("%s: forward returned NULL", m->cls->name);
        else if (!had_error && strncmp(bk_last_error(), "in ", 3) != 0 &&
                 strncmp(bk_last_error(), "anomaly: ", 9) != 0) {
            char repr[256] = "";
            if (m->cls->extra_repr) m->cls->extra_repr(m, repr, sizeof repr);
            bk__error_prefix("in %s(%s)", m->cls->name, repr);
        }
    }
    return y;
}

/* ---- lookup ---------------------------------------------------------------------------------- */

bk_module *bk_module_child(const bk_module *m, int index) {
    if (!bk__module_ok(m, "module_child")) return NULL;
    if (index < 0 || index >= m->n_children) {
        bk_set_error("module_child: index %d is out of range (%d children)", index, m->n_children);
        return NULL;
    }
    return m->children[index].module;
}

bk_module *bk_module_child_by_name(const bk_module *m, const char *name) {
    if (!bk__module_ok(m, "module_child")) return NULL;
    if (!name) {
        bk_set_error("module_child: name is NULL");
        return NULL;
    }
    for (int i = 0; i < m->n_children; i++)
        if (!strcmp(m->children[i].name, name)) return m->children[i].module;
    bk_set_error("module_child: %s has no child \"%s\"", m->cls->name, name);
    return NULL;
}

bk_tensor *bk_module_get(const bk_module *m, const char *dotted) {
    if (!bk__module_ok(m, "module_get")) return NULL;
    if (!dotted) {
        bk_set_error("module_get: name is NULL");
        return NULL;
    }
    const bk_module *cur = m;
    const char *p = dotted;
    for (;;) {
        const char *dot = strchr(p, '.');
        size_t len = dot ? (size_t)(dot - p) : strlen(p);
        if (!dot) {
            for (int i = 0; i < cur->n_params; i++)
                if (strlen(cur->params[i].name) == len && !strncmp(cur->params[i].name, p, len))
                    return cur->params[i].tensor;
            for (int i = 0; i < cur->n_buffers; i++)
                if (strlen(cur->buffers[i].name) == len && !strncmp(cur->buffers[i].name, p, len))
                    return cur->buffers[i].tensor;
            break;
        }
        const bk_module *next = NULL;
        for (int i = 0; i < cur->n_children; i++)
            if (strlen(cur->children[i].name) == len && !strncmp(cur->children[i].name, p, len))
                next = cur->children[i].module;
        if (!next) break;
        cur = next;
        p = dot + 1;
    }
    bk_set_error("module_get: %s has no parameter or buffer \"%s\"", m->cls->name, dotted);
    return NULL;
}

/* ---- named iteration --------------------------------------------------------------------------- */

typedef struct lister {
    bk_param_list *l;
    int cap;
    bool dedup;
    bool failed;
    bool lazy;       /* failed on a lazy block (its message is set) */
    const char *who; /* the public function, for that message */
} lister;

static void list_add(lister *ls, const char *prefix, const char *name, bk_tensor *t, bool trainable) {
    if (ls->failed) return;
    bk_param_list *l = ls->l;
    if (ls->dedup)
        for (int i = 0; i < l->n; i++)
            if (l->tensors[i] == t) return;
    /* three parallel arrays of one capacity: each grows from a copy of it */
    int cap_names = ls->cap, cap_tensors = ls->cap, cap_trainable = ls->cap;
    if (!bk__grow((void **)&l->names, l->n, &cap_names, sizeof *l->names, 16) ||
        !bk__grow((void **)&l->tensors, l->n, &cap_tensors, sizeof *l->tensors, 16) ||
        !bk__grow((void **)&l->trainable, l->n, &cap_trainable, sizeof *l->trainable, 16)) {
        ls->failed = true;
        return;
    }
    ls->cap = cap_names;
    size_t len = strlen(prefix) + strlen(name) + 1;
    char *full = bk__malloc(len);
    if (!full) {
        ls->failed = true;
        return;
    }
    snprintf(full, len, "%s%s", prefix, name);
    l->names[l->n] = full;
    l->tensors[l->n] = t;
    l->trainable[l->n] = trainable;
    l->n++;
}

static void list_rec(const bk_module *m, const char *prefix, bk_named_kind which, lister *ls, int depth) {
    if (ls->failed) return; /* keeps the first error (the first lazy block's) */
    if (depth > 256) {      /* a cycle (a block registered inside itself) would recurse forever */
        ls->failed = true;
        return;
    }
    if (m->lazy) { /* torch lists UninitializedParameters; brick has nothing to list yet */
        size_t at = strlen(prefix);
        bk_set_error(
            "%s: %s%s%.*s%s has uninitialized parameters (a lazy layer makes them on its first "
            "forward): run a forward first",
            ls->who, m->cls->name, at ? " at \"" : "", at ? (int)at - 1 : 0, prefix, at ? "\"" : "");
        ls->failed = ls->lazy = true;
        return;
    }
    if (which & BK_PARAMS)
        for (int i = 0; i < m->n_params; i++)
            list_add(ls, prefix, m->params[i].name, m->params[i].tensor, m->params[i].trainable);
    if (which & BK_BUFFERS)
        for (int i = 0; i < m->n_buffers; i++)
            if (which != BK_STATE || m->buffers[i].persistent)
                list_add(ls, prefix, m->buffers[i].name, m->buffers[i].tensor, false);
    for (int i = 0; i < m->n_children; i++) {
        size_t len = strlen(prefix) + strlen(m->children[i].name) + 2;
        char *sub = bk__malloc(len);
        if (!sub) {
            ls->failed = true;
            return;
        }
        snprintf(sub, len, "%s%s.", prefix, m->children[i].name);
        list_rec(m->children[i].module, sub, which, ls, depth + 1);
        bk__free(sub);
    }
}

/* bk_module_named for `who` (the public function the caller is). */
static bk_param_list *module_named(const bk_module *m, bk_named_kind which, const char *who) {
    if (!bk__module_ok(m, who)) return NULL;
    if (which != BK_PARAMS && which != BK_BUFFERS && which != BK_STATE) {
        bk_set_error("%s: which %d is not BK_PARAMS, BK_BUFFERS or BK_STATE", who, (int)which);
        return NULL;
    }
    bk_param_list *l = bk__calloc(1, sizeof *l);
    if (!l) {
        bk_set_error("%s: out of memory", who);
        return NULL;
    }
    /* torch: named_parameters/named_buffers list shared tensors once; state_dict keeps
     * every name. */
    lister ls = {l, 0, which != BK_STATE, false, false, who};
    list_rec(m, "", which, &ls, 0);
    if (ls.failed) {
        bk_param_list_free(l);
        if (!ls.lazy) bk_set_error("%s: out of memory or module cycle", who);
        return NULL;
    }
    return l;
}

bk_param_list *bk_module_named(const bk_module *m, bk_named_kind which) {
    return module_named(m, which, "module_named");
}

void bk_param_list_free(bk_param_list *l) {
    if (!l) return;
    for (int i = 0; i < l->n; i++) bk__free(l->names[i]);
    bk__free(l->names);
    bk__free(l->tensors);
    bk__free(l->trainable);
    bk__free(l);
}

int64_t bk_module_num_params(const bk_module *m, bool trainable_only) {
    bk_param_list *l = module_named(m, BK_PARAMS, "module_num_params");
    if (!l) return -1;
    int64_t n = 0;
    for (int i = 0; i < l->n; i++)
        if (!trainable_only || l->trainable[i]) n += l->tensors[i]->numel;
    bk_param_list_free(l);
    return n;
}

/* ---- lazy layers (torch's LazyModuleMixin) ------------------------------------------------------ */

static bool has_uninitialized_rec(const bk_module *m, int depth) {
    if (m->lazy) return true;
    for (int i = 0; depth < 256 && i < m->n_children; i++)
        if (has_uninitialized_rec(m->children[i].module, depth + 1)) return true;
    return false;
}

bool bk_module_has_uninitialized(const bk_module *m) {
    return bk__module_ok(m, "module_has_uninitialized") && has_uninitialized_rec(m, 0);
}

/* Frees the parameters and buffers from index n_params, n_buffers on (a failed init's). */
static void drop_tensors_from(bk_module *m, int n_params, int n_buffers) {
    for (int i = n_params; i < m->n_params; i++) {
        bk__free(m->params[i].name);
        bk_tensor_free(m->params[i].tensor);
    }
    for (int i = n_buffers; i < m->n_buffers; i++) {
        bk__free(m->buffers[i].name);
        bk_tensor_free(m->buffers[i].tensor);
    }
    m->n_params = n_params;
    m->n_buffers = n_buffers;
}

bk_tensor *bk__lazy_forward(bk_module *m, bk_tensor *x, bool (*init)(bk_module *m, const bk_tensor *x),
                            const bk_module_class *cls) {
    int n_params = m->n_params, n_buffers = m->n_buffers;
    if (!init(m, x)) {
        drop_tensors_from(m, n_params, n_buffers);
        return NULL;
    }
    m->cls = cls;
    m->lazy = false;
    return cls->forward(m, x);
}

/* ---- modes, zero_grad, apply --------------------------------------------------------------------- */

/* The recursive parts run on a checked tree; the public entry points check its root. */
static void train_rec(bk_module *m, bool training) {
    m->training = training;
    for (int i = 0; i < m->n_children; i++) train_rec(m->children[i].module, training);
}

void bk_module_train(bk_module *m, bool training) {
    if (bk__module_ok(m, "module_train")) train_rec(m, training);
}

static void zero_grad_rec(bk_module *m) {
    for (int i = 0; i < m->n_params; i++)
        if (m->params[i].tensor->grad) bk_fill(m->params[i].tensor->grad, 0.0f);
    for (int i = 0; i < m->n_children; i++) zero_grad_rec(m->children[i].module);
}

void bk_module_zero_grad(bk_module *m) {
    if (bk__module_ok(m, "module_zero_grad")) zero_grad_rec(m);
}

/* torch's children(): a block registered twice under one parent is visited once */
static bool seen_before(const bk_module *m, int i) {
    for (int k = 0; k < i; k++)
        if (m->children[k].module == m->children[i].module) return true;
    return false;
}

static void apply_rec(bk_module *m, void (*fn)(bk_module *m, void *ud), void *ud) {
    for (int i = 0; i < m->n_children; i++)
        if (!seen_before(m, i)) apply_rec(m->children[i].module, fn, ud);
    fn(m, ud);
}

void bk_module_apply(bk_module *m, void (*fn)(bk_module *m, void *ud), void *ud) {
    if (!bk__module_ok(m, "module_apply")) return;
    if (!fn) {
        bk_set_error("module_apply: fn is NULL");
        return;
    }
    apply_rec(m, fn, ud);
}

const char *bk_module_name(const bk_module *m) { return m && m->cls ? m->cls->name : "?"; }

/* ---- printing (torch's nn.Module.__repr__) ------------------------------------------------------- */

static void repr_rec(const bk_module *m, bk__str *b, int indent) {
    char extra[512] = "";
    if (m->cls->extra_repr) m->cls->extra_repr(m, extra, sizeof extra);
    if (m->n_children == 0) {
        bk__str_printf(b, "%s(%s)", m->cls->name, extra);
        return;
    }
    /* torch puts the extra text on its own lines, indented like the children */
    bk__str_printf(b, "%s(\n", m->cls->name);
    if (extra[0])
        for (char *line = extra; line;) {
            char *nl = strchr(line, '\n');
            bk__str_printf(b, "%*s%.*s\n", indent + 2, "", nl ? (int)(nl - line) : (int)strlen(line), line);
            line = nl ? nl + 1 : NULL;
        }
    for (int i = 0; i < m->n_children; i++) {
        bk__str_printf(b, "%*s(%s): ", indent + 2, "", m->children[i].name);
        repr_rec(m->children[i].module, b, indent + 2);
        bk__str_printf(b, "\n");
    }
    bk__str_printf(b, "%*s)", indent, "");
}

int bk_module_repr(const bk_module *m, char *buf, size_t n) {
    if (!bk__module_ok(m, "module_repr")) return -1;
    if (!buf && n > 0) {
        bk_set_error("module_repr: buf is NULL (with n = %zu)", n);
        return -1;
    }
    bk__str b = bk__str_fixed(buf, n); /* measures what does not fit, as snprintf */
    repr_rec(m, &b, 0);
    return (int)b.len;
}

void bk_module_print(const bk_module *m, FILE *f) {
    if (!f) f = stdout;
    int n = bk_module_repr(m, NULL, 0);
    if (n < 0) {
        fprintf(f, "<invalid module: %s>\n", bk_last_error());
        return;
    }
    char *buf = bk__malloc((size_t)n + 1);
    if (!buf) {
        fprintf(f, "<out of memory>\n");
        return;
    }
    bk_module_repr(m, buf, (size_t)n + 1);
    fprintf(f, "%s\n", buf);
    bk__free(buf);
}
