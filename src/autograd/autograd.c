/* autograd.c - define-by-run reverse-mode differentiation.
 *
 * Every op that produces a tensor from inputs needing gradients records a node (op,
 * inputs, typed params) in the arena, linked from the output. bk_backward() walks the
 * nodes reachable from the root in reverse topological order and calls each op's
 * backward, which ADDS into its inputs' gradients. Because the graph is rebuilt by every
 * forward, C control flow (loops, branches, a layer used twice) is differentiated as run.
 *
 * Leaves keep accumulating into ->grad (parameters until bk_module_zero_grad); interior
 * gradients are recomputed from zero on each backward.
 *
 * Tensor hooks (tensor_hooks.c) run on an interior tensor's gradient just before its op's
 * backward, and on leaves' contributions after the loop.
 *
 * Anomaly mode (anomaly.c) hooks in two places: bk_op_record, which every op's forward
 * output passes through, and the backward loop, after each op's backward.
 */
#include "internal.h"

#include <stddef.h>
#include <stdlib.h>

static _Thread_local bool grad_disabled; /* zero-initialised: grad mode on */
static _Thread_local bool anomaly_on;    /* anomaly detection, off by default */
static _Thread_local uint32_t visit_stamp;

bool bk_set_grad_enabled(bool on) {
    bool prev = !grad_disabled;
    grad_disabled = !on;
    return prev;
}

bool bk_is_grad_enabled(void) { return !grad_disabled; }

bool bk_set_detect_anomaly(bool on) {
    bool prev = anomaly_on;
    anomaly_on = on;
    return prev;
}

bool bk_is_detect_anomaly(void) { return anomaly_on; }

bool bk__needs_grad(int n, bk_tensor *const *ts) {
    if (grad_disabled) return false;
    for (int i = 0; i < n; i++)
        if (ts[i] && ts[i]->requires_grad) return true;
    return false;
}

bk_tensor *bk_op_record(const bk_op *op, bk_tensor *out, int n_inputs, bk_tensor *const *inputs,
                        const void *params, size_t params_size) {
    bool op_ok = op && op->name && op->backward;
    if (!out) { /* an op whose forward failed: keep its message */
        if (!bk__error_pending()) bk_set_error("%s: output is NULL", op_ok ? op->name : "op_record");
        return NULL;
    }
    if (!op_ok || n_inputs < 0 || (n_inputs > 0 && !inputs)) {
        bk_set_error("op_record: invalid op descriptor or inputs");
        return NULL;
    }
    if (params_size && !params) {
        bk_set_error("%s: params is NULL but params_size is %zu", op->name, params_size);
        return NULL;
    }
    if (!bk__inputs_ok(op->name, 1, &out) || !bk__inputs_ok(op->name, n_inputs, inputs)) return NULL;
    /* Every op's output passes here, recorded or not: the one place to check them all. */
    bool anomaly = anomaly_on;
    if (anomaly && !bk__anomaly_check_output(op, out, n_inputs, inputs)) return NULL;
    if (!bk__needs_grad(n_inputs, inputs)) return out;
    if (!out->arena) {
        bk_set_error("%s: the output of a recorded op must be an arena tensor", op->name);
        return NULL;
    }
    /* One arena allocation for the node, its input list and its params (in that order,
     * each piece aligned as malloc would): three were a fifth of the recording's cost. */
    bk_arena *a = out->arena;
    const size_t ALIGN = _Alignof(max_align_t);
    if (params_size > SIZE_MAX / 4 || (size_t)n_inputs > SIZE_MAX / 4 / sizeof(bk_tensor *)) {
        bk_set_error("%s: params (%zu bytes) or inputs (%d) too large", op->name, params_size, n_inputs);
        return NULL;
    }
    size_t node_bytes = (sizeof(bk_node) + ALIGN - 1) / ALIGN * ALIGN;
    size_t inputs_bytes = (sizeof(bk_tensor *) * (size_t)n_inputs + ALIGN - 1) / ALIGN * ALIGN;
    char *mem = bk__arena_alloc(a, node_bytes + inputs_bytes + params_size);
    if (!mem) return NULL;
    bk_node *n = (bk_node *)mem;
    memset(n, 0, sizeof *n);
    n->op = op;
    n->out = out;
    n->n_inputs = n_inputs;
    n->inputs = (bk_tensor **)(mem + node_bytes);
    for (int i = 0; i < n_inputs; i++) n->inputs[i] = inputs[i];
    if (params_size) {
        n->params = mem + node_bytes + inputs_bytes;
        memcpy(n->params, params, params_size);
    }
    if (anomaly) n->block = bk__anomaly_block_copy(a);
    out->node = n;
    out->requires_grad = true;
    return out;
}

/* The node accessors are for backward functions, which get a valid node; misuse still
 * gets a message. */
static bool node_ok(const bk_node *n, const char *who) {
    if (!n) bk_set_error("%s: node is NULL", who);
    return n != NULL;
}
static bool node_index_ok(const bk_node *n, int i, const char *who) {
    if (!node_ok(n, who)) return false;
    if (i >= 0 && i < n->n_inputs) return true;
    bk_set_error("%s: input %d is out of range (op %s has %d input%s)", who, i, n->op->name, n->n_inputs,
                 n->n_inputs == 1 ? "" : "s");
    return false;
}

const bk_tensor *bk_node_input(const bk_node *n, int i) {
    return node_index_ok(n, i, "node_input") ? n->inputs[i] : NULL;
}
const bk_tensor *bk_node_output(const bk_node *n) { return node_ok(n, "node_output") ? n->out : NULL; }
const bk_tensor *bk_node_grad_output(const bk_node *n) {
    return node_ok(n, "node_grad_output") ? n->out->grad : NULL;
}
const void *bk_node_params(const bk_node *n) { return node_ok(n, "node_params") ? n->params : NULL; }
int bk_node_num_inputs(const bk_node *n) { return node_ok(n, "node_num_inputs") ? n->n_inputs : -1; }
const char *bk_node_op_name(const bk_node *n) { return n ? n->op->name : "?"; }

static _Thread_local bool backward_failed;

void bk__backward_fail(void) { backward_failed = true; }

bk_tensor *bk_node_grad_input(bk_node *n, int i) {
    if (!node_index_ok(n, i, "node_grad_input")) return NULL;
    bk_tensor *t = n->inputs[i];
    if (!t->requires_grad) return NULL;
    bk_tensor *g = bk__grad_for(t);
    if (!g) backward_failed = true;
    return g;
}

bk_tensor *bk__node_grad_input_write(bk_node *n, int i, bool *fresh) {
    *fresh = false;
    if (!node_index_ok(n, i, "node_grad_input")) return NULL;
    bk_tensor *t = n->inputs[i];
    if (!t->requires_grad) return NULL;
    bk_tensor *g = bk__grad_for_write(t, fresh);
    if (!g) backward_failed = true;
    return g;
}

/* Nodes reachable from root, in an order where every node comes after the nodes that
 * consume its output (reverse postorder of a DFS over inputs). */
static bk_node **topo_order(bk_arena *a, bk_node *root, int64_t *count) {
    uint32_t stamp = ++visit_stamp;
    size_t cap = 64, n_order = 0, n_stack = 0;
    /* The stack and result live in the arena: one allocation each, grown by copying. */
    bk_node **order = bk__arena_alloc(a, cap * sizeof *order);
    bk_node **stack = bk__arena_alloc(a, cap * sizeof *stack);
    int *next_in = bk__arena_alloc(a, cap * sizeof *next_in);
    size_t scap = cap;
    if (!order || !stack || !next_in) return NULL;
    root->visit = stamp;
    stack[n_stack] = root;
    next_in[n_stack++] = 0;
    while (n_stack) {
        bk_node *top = stack[n_stack - 1];
        int k = next_in[n_stack - 1];
        if (k < top->n_inputs) {
            next_in[n_stack - 1]++;
            bk_node *child = top->inputs[k]->node;
            if (child && child->visit != stamp) {
                child->visit = stamp;
                if (n_stack == scap) {
                    size_t nc = scap * 2;
                    bk_node **ns = bk__arena_alloc(a, nc * sizeof *ns);
                    int *ni = bk__arena_alloc(a, nc * sizeof *ni);
                    if (!ns || !ni) return NULL;
                    memcpy(ns, stack, n_stack * sizeof *ns);
                    memcpy(ni, next_in, n_stack * sizeof *ni);
                    stack = ns, next_in = ni, scap = nc;
                }
                stack[n_stack] = child;
                next_in[n_stack++] = 0;
            }
        } else {
            n_stack--;
            if (n_order == cap) {
                size_t nc = cap * 2;
                bk_node **no = bk__arena_alloc(a, nc * sizeof *no);
                if (!no) return NULL;
                memcpy(no, order, n_order * sizeof *no);
                order = no, cap = nc;
            }
            order[n_order++] = top; /* postorder: inputs before consumers */
        }
    }
    *count = (int64_t)n_order;
    return order;
}

static void add_into(bk_tensor *g, const bk_tensor *src) {
    for (int64_t i = 0; i < g->numel; i++) g->data[i] += src ? src->data[i] : 1.0f;
}

int bk_backward_ex(bk_tensor *root, const bk_tensor *grad_root, bool retain_graph) {
    if (!bk_tensor_ok(root, "backward")) return -1;
    if (grad_root && !bk_tensor_ok(grad_root, "backward")) return -1;
    char s1[128], s2[128];
    if (!root->requires_grad) {
        bk_set_error("backward: tensor %s does not require grad and has no grad_fn",
                     bk_shape_str(root, s1, sizeof s1));
        return -1;
    }
    if (!grad_root && root->numel != 1) {
        bk_set_error(
            "backward: grad can be implicitly created only for scalar outputs "
            "(got a tensor of shape %s; pass an upstream gradient)",
            bk_shape_str(root, s1, sizeof s1));
        return -1;
    }
    if (grad_root && !bk_same_shape(grad_root, root)) { /* as torch: same shape, not just numel */
        bk_set_error("backward: upstream gradient shape %s does not match output shape %s",
                     bk_shape_str(grad_root, s1, sizeof s1), bk_shape_str(root, s2, sizeof s2));
        return -1;
    }
    backward_failed = false;
    if (!root->node) { /* a leaf: its gradient is the upstream gradient */
        bk_tensor *g = bk__grad_for(root);
        if (!g) return -1;
        add_into(g, grad_root);
        return 0;
    }
    if (root->node->released) {
        bk_set_error(
            "backward: trying to backward through the graph a second time (its "
            "intermediates were released by the first backward); pass "
            "retain_graph=true to bk_backward_ex the first time");
        return -1;
    }
    bk_arena *a = root->arena ? root->arena : bk_arena_current();
    int64_t n = 0;
    bk_node **order = topo_order(a, root->node, &n);
    if (!order) return -1;
    for (int64_t i = 0; i < n; i++) {
        if (order[i]->released) {
            bk_set_error(
                "backward: part of this graph (op %s) was already consumed by an "
                "earlier backward without retain_graph",
                order[i]->op->name);
            return -1;
        }
        order[i]->out->grad = NULL; /* interior gradients start from zero */
    }
    bk__leaf_hooks *leaf_hooks;
    if (!bk__leaf_hooks_begin(a, order, n, &leaf_hooks)) return -1;
    bk_tensor *g = bk__grad_for(root);
    if (!g) return -1;
    add_into(g, grad_root);
    bool anomaly = anomaly_on;
    for (int64_t i = n - 1; i >= 0; i--) {
        bk_node *node = order[i];
        if (!node->out->grad) continue; /* no gradient flows through here */
        if (node->out->hooks && !bk__tensor_hooks_run(node->out)) return -1;
        node->op->backward(node);
        if (backward_failed) {
            bk__error_prefix("backward (in %s)", node->op->name);
            return -1;
        }
        if (anomaly && !bk__anomaly_check_grads(node)) return -1;
    }
    if (!bk__leaf_hooks_end(leaf_hooks)) return -1;
    if (!retain_graph)
        for (int64_t i = 0; i < n; i++) order[i]->released = true;
    return 0;
}

int bk_backward(bk_tensor *root) { return bk_backward_ex(root, NULL, false); }

bk_tensor *bk_detach(bk_tensor *t) {
    if (!bk_tensor_ok(t, "detach")) return NULL;
    return bk__tensor_view(t, t->ndim, t->shape); /* no node, requires_grad false */
}
