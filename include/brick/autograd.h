/* brick/autograd.h - part of brick.h: autograd (recording, backward, grad mode, custom ops) and gradient checking.
 * Include <brick.h>, which includes every part in order and states the ownership and
 * error rules once at its top. */
#ifndef BRICK_PART_AUTOGRAD_H
#define BRICK_PART_AUTOGRAD_H

#ifndef BRICK_H
#error "include <brick.h>, not <brick/autograd.h>"
#endif

/* ------------------------------------------------------------------------------------ */
/* Autograd                                                                             */
/* ------------------------------------------------------------------------------------ */

/* Gradient recording is on by default. bk_set_grad_enabled returns the previous state so
 * that `bool prev = bk_set_grad_enabled(false); ... bk_set_grad_enabled(prev);` is
 * torch.no_grad(). Per thread. */
bool bk_set_grad_enabled(bool on);
bool bk_is_grad_enabled(void);

/* Backward from a one-element tensor (dL/droot = 1). Returns 0, or -1 with an error (root
 * not scalar, root without history, graph already used). Gradients accumulate into the
 * `grad` of every leaf that requires grad, parameters included. */
int bk_backward(bk_tensor *root);
/* Backward with an explicit upstream gradient (same shape as root). retain_graph lets the
 * same graph be differentiated again. */
int bk_backward_ex(bk_tensor *root, const bk_tensor *grad_root, bool retain_graph);
/* Gradient hooks on a tensor (torch's Tensor.register_hook), run by every backward that
 * reaches t, in the order added: fn(t, grad, ud) gets t's complete gradient of this
 * backward (shape of t; for a leaf, what this backward adds to t->grad) and returns NULL
 * to keep it (torch's None) or a tensor of the same shape whose values replace it: passed
 * on to t's inputs, or for a leaf added into t->grad instead. A replacement of another
 * shape fails the backward, naming the hook. t must require grad. The hooks of an arena
 * tensor go with its arena (bk_arena_reset); a heap tensor's (a parameter's) stay until
 * removed or the tensor is freed. Returns a handle (>= 0) for bk_tensor_remove_hook, or -1
 * with an error (bad tensor, NULL fn, t not requiring grad, out of memory).
 * bk_tensor_remove_hook: 0, or -1 with an error when t has no such hook. Gradient
 * clipping per tensor, logging gradient norms: examples/12_hooks.c. */
typedef bk_tensor *(*bk_tensor_hook)(bk_tensor *t, bk_tensor *grad, void *ud);
int bk_tensor_register_hook(bk_tensor *t, bk_tensor_hook fn, void *ud);
int bk_tensor_remove_hook(bk_tensor *t, int handle);

/* Same values, no history (torch's detach()). Shares storage with t. */
bk_tensor *bk_detach(bk_tensor *t);

/* Anomaly detection (torch.autograd.set_detect_anomaly): off by default, per thread, like
 * the grad mode; bk_set_detect_anomaly returns the previous state. When on, the output of
 * every op (grad mode on or off, user ops included: the check is in bk_op_record) and every
 * gradient a backward function produces are checked for NaN and Inf. The first one found
 * makes the op return NULL (so a forward fails as for any error) or bk_backward return -1,
 * with a message naming the op, the element and the block the op ran in (the chain of
 * bk_forward calls, each level "<child name>:<class>"):
 *   anomaly: op 'log' produced NaN in its output (3,) at index 0 (in Sequential/1:Linear)
 *   anomaly: op 'sqrt' produced Inf in the gradient of its input 0 (3,) at index 0 during
 *   backward (in Net/act:Sqrt)
 * An op given an input that already holds a NaN or Inf (data, a parameter after a
 * diverging optimizer step, a tensor made with the mode off) is reported as "got ... in
 * its input", naming the parameter when it is the running block's own. Cost when on: a
 * pass over each op's output and each produced gradient, and a short string per recorded
 * op; off: one thread-local test per op. */
bool bk_set_detect_anomaly(bool on);
bool bk_is_detect_anomaly(void);

/* User-defined differentiable ops (torch.autograd.Function). The forward is any code that
 * computes the output tensor from its inputs; then bk_op_record() attaches the backward:
 *
 *   static void square_backward(bk_node *n) {
 *       const bk_tensor *x = bk_node_input(n, 0), *dy = bk_node_grad_output(n);
 *       bk_tensor *dx = bk_node_grad_input(n, 0);           // NULL: x needs no grad
 *       if (dx) for (int64_t i = 0; i < x->numel; i++) dx->data[i] += 2 * x->data[i] * dy->data[i];
 *   }
 *   static const bk_op SQUARE = { "square", square_backward };
 *   bk_tensor *square(bk_tensor *x) {
 *       bk_tensor *y = bk_empty(x->ndim, x->shape);
 *       for (...) y->data[i] = x->data[i] * x->data[i];
 *       return bk_op_record(&SQUARE, y, 1, &x, NULL, 0);
 *   }
 *
 * Backward functions ADD into the input gradients they are given. */
typedef void (*bk_backward_fn)(bk_node *node);
typedef struct bk_op {
    const char *name;
    bk_backward_fn backward;
} bk_op;

/* Attaches op to out (if grad mode is on and an input requires grad), saving a copy of
 * the `params` bytes for the backward. Returns out, or NULL (out NULL, bad arguments, or
 * in anomaly mode a NaN or Inf in out). Call it for every output, also with grad off. */
bk_tensor *bk_op_record(const bk_op *op, bk_tensor *out, int n_inputs, bk_tensor *const *inputs,
                        const void *params, size_t params_size);
const bk_tensor *bk_node_input(const bk_node *n, int i);
const bk_tensor *bk_node_output(const bk_node *n);
const bk_tensor *bk_node_grad_output(const bk_node *n);
/* The zero-initialised-on-first-use gradient of input i to add into, or NULL when input i
 * needs no gradient. */
bk_tensor *bk_node_grad_input(bk_node *n, int i);
const void *bk_node_params(const bk_node *n);
int bk_node_num_inputs(const bk_node *n);
const char *bk_node_op_name(const bk_node *n); /* "?" for NULL */
/* The accessors above return NULL (-1 for bk_node_num_inputs) with an error for a NULL
 * node or an input index out of range. */

/* ------------------------------------------------------------------------------------ */
/* Gradient checking                                                                    */
/* ------------------------------------------------------------------------------------ */

/* f maps the inputs to a tensor; gradcheck compares autograd's gradient of
 * sum(f(inputs) * w) (w a fixed random weight) with central differences computed in
 * double precision, for every input that requires grad. Perturbs inputs in place and
 * restores them. Returns the worst error, scaled: max |g_auto - g_num| / (atol + rtol*|g_num|)
 * (<= 1 is a pass), or a negative number on error (also for eps <= 0 or a negative atol or
 * rtol). `report` (may be NULL) gets the first mismatches. */
typedef bk_tensor *(*bk_gradcheck_fn)(bk_tensor *const *inputs, int n, void *ud);
double bk_gradcheck(bk_gradcheck_fn f, bk_tensor *const *inputs, int n, void *ud, double eps, double atol,
                    double rtol, FILE *report);

#endif /* BRICK_PART_AUTOGRAD_H */
