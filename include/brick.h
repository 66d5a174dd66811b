/* brick.h - neural networks out of layers and blocks, in plain C.
 *
 * This is the whole public API. A quick tour:
 *
 *   bk_tensor *X   = bk_rand(BK_SHAPE(2, 20));             // (2, 20), in the step arena
 *   bk_module *net = bk_nn_sequential(3, bk_nn_linear(20, 256), bk_nn_relu(),
 *                                        bk_nn_linear(256, 10));
 *   bk_tensor *Y   = bk_forward(net, X);                    // (2, 10)
 *   bk_tensor *L   = bk_sum(Y);                             // scalar
 *   bk_backward(L);                                         // fills every param's grad
 *   bk_arena_reset(NULL);                                   // frees X, Y, L and the tape
 *   bk_module_free(net);
 *
 * Ownership (read this once; everything else follows from it):
 *   - Every tensor returned by an op (bk_add, bk_matmul, bk_forward, ...) and by the
 *     creation helpers (bk_zeros, bk_rand, bk_from_data, ...) lives in the calling thread's
 *     current arena. One call, bk_arena_reset(), releases all of them together with the
 *     autograd tape that links them. Never free such a tensor yourself. Once warmed up, an
 *     arena reuses its memory, so a training step allocates nothing.
 *   - A module owns its parameters, buffers and children and frees them recursively in
 *     bk_module_free(). Parameters and buffers are never in an arena; their gradients live
 *     with them and accumulate until bk_module_zero_grad().
 *   - bk_tensor_new() makes a heap tensor that the caller owns and frees with
 *     bk_tensor_free() (data sets, inputs you keep across steps).
 *   - Functions returning `const char *` or a borrowed pointer say "do not free".
 *
 * Errors: no brick function exits or aborts on bad input. Failing functions return NULL
 * (or -1, or NaN for those returning a float) and leave a message in a thread-local
 * buffer, read with bk_last_error(); a function returning nothing leaves the message and
 * does nothing. Every op given a NULL input returns NULL without overwriting the first
 * message, so a forward can be checked once at its end. Messages name the op and the
 * shapes involved, e.g.
 *   "matmul: mat1 and mat2 shapes cannot be multiplied (2x20 and 30x256)".
 * A tensor whose arena was reset, or memory that is not a tensor brick made, is reported
 * as "not a live tensor"; a block that was freed or not made by bk_module_new as "not a
 * live module" (detected as far as the memory still says so; tests/test_api_misuse.c
 * sweeps every function here with such arguments). Free functions accept NULL, as free().
 *
 * Threads: arenas, the grad mode and the default random generator are per thread; modules
 * may be used from several threads only if each thread has its own arena and only one
 * runs backward into a module's gradients at a time.
 */
#ifndef BRICK_H
#define BRICK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#define BK_VERSION_MAJOR 0
#define BK_VERSION_MINOR 1
#define BK_VERSION_PATCH 0
#define BK_VERSION_STRING "0.1.0"

#define BK_MAX_DIMS 8 /* rank limit of a tensor */

/* After a printf-like function's declaration: argument fmt is its format and the values
 * start at argument first, so that GCC and Clang check the calls (other compilers: nothing). */
#if defined(__GNUC__)
#define BK_PRINTF_FORMAT(fmt, first) __attribute__((format(printf, fmt, first)))
#else
#define BK_PRINTF_FORMAT(fmt, first)
#endif

/* ------------------------------------------------------------------------------------ */
/* Errors                                                                               */
/* ------------------------------------------------------------------------------------ */

/* The message of the last failure in this thread, or "" if none. Do not free. */
const char *bk_last_error(void);
/* Forget the last failure (so that the next NULL-propagation reports afresh). */
void bk_clear_error(void);
/* Records a failure message (printf-style), as brick's own functions do. For user ops.
 * A NULL fmt records "set_error: format is NULL". The message is stored escaped
 * (bk_escape), so bk_last_error() never holds a control character or invalid UTF-8. */
void bk_set_error(const char *fmt, ...) BK_PRINTF_FORMAT(1, 2);
/* Makes s (a name or value read from a file) safe to print on a terminal: control
 * characters become \n, \r, \t or \xNN, C1 controls and bidirectional overrides
 * \uNNNN, bytes that are not valid UTF-8 \xNN; everything else is copied, backslashes
 * included (so escaping twice changes nothing). Writes at most n bytes, NUL included, into
 * buf and returns buf; a longer result is cut between characters and ends in "...". s NULL
 * gives "(null)"; buf NULL or n 0 gives "" (a static string). Never fails. */
const char *bk_escape(const char *s, char *buf, size_t n);

/* ------------------------------------------------------------------------------------ */
/* Threads                                                                              */
/* ------------------------------------------------------------------------------------ */

/* Threads for brick's kernels (OpenMP and, when built with it, OpenBLAS) called from this
 * thread. Results do not depend on it: work is never split along a summation. */
int bk_set_num_threads(int n);
int bk_get_num_threads(void);
/* The GEMM micro-kernel brick's own matrix products use, e.g. "avx512 16x16", "avx2-fma 6x16"
 * or "portable 4x8": AVX-512, else AVX2+FMA, when the CPU has it. The environment variable
 * BRICK_GEMM_KERNEL=auto|avx512|avx2|portable, read once per process, overrides the choice:
 * "portable" makes matrix products round the same on every x86-64 CPU and is what to use
 * under valgrind (where an MLP evaluation ran 9x slower with the AVX2 kernel). */
const char *bk_gemm_kernel(void);

/* ------------------------------------------------------------------------------------ */
/* Random numbers                                                                       */
/* ------------------------------------------------------------------------------------ */

/* PCG32 (O'Neill, XSH-RR, 64-bit state): small, fast, reproducible on every platform.
 * Uniform floats take the top 24 bits: u = (x >> 8) * 2^-24, in [0, 1).
 * Normals use Box-Muller on two uniforms. See docs/design.md. */
typedef struct bk_rng {
    uint64_t state;
    uint64_t inc;
} bk_rng;

/* rng NULL means the calling thread's default generator, here as everywhere in the API. */
void bk_rng_seed(bk_rng *rng, uint64_t seed);
/* Restores a saved state (two words as read from a bk_rng, e.g. from a checkpoint). PCG
 * needs an odd increment: with an even one the generator's period collapses (state 0 and
 * increment 0 give 0 forever, on which a loader's shuffle would loop forever), so an even
 * inc is refused: -1 with an error, and rng is left as it was. 0 on success. */
int bk_rng_set_state(bk_rng *rng, uint64_t state, uint64_t inc);
uint32_t bk_rng_u32(bk_rng *rng);
float bk_rng_uniform(bk_rng *rng); /* [0, 1) */
float bk_rng_normal(bk_rng *rng);  /* N(0, 1) */
/* The calling thread's default generator (used when a function is given rng NULL).
 * Seeded with 0 on first use. Do not free. */
bk_rng *bk_default_rng(void);
/* Seeds this thread's default generator (torch.manual_seed). */
void bk_manual_seed(uint64_t seed);

/* ------------------------------------------------------------------------------------ */
/* Tensors                                                                              */
/* ------------------------------------------------------------------------------------ */

typedef struct bk_node bk_node;
typedef struct bk_arena bk_arena;
typedef struct bk_module bk_module; /* a block: "Modules (blocks)" below */

/* A float32 n-dimensional tensor. Storage is always contiguous and row-major; `stride`
 * is kept for the backends and for views. Read fields freely; change them only through
 * the API. Element (i, j) of a 2-d tensor is data[i * stride[0] + j]. */
typedef struct bk_tensor {
    uint32_t magic; /* BK_TENSOR_MAGIC while alive */
    int ndim;       /* 0 for a scalar */
    int64_t shape[BK_MAX_DIMS];
    int64_t stride[BK_MAX_DIMS]; /* in elements */
    int64_t numel;
    float *data;
    struct bk_tensor *grad; /* NULL until a backward reaches it */
    bk_node *node;          /* the op that produced it (NULL for leaves) */
    bk_arena *arena;        /* NULL for owned tensors (parameters, bk_tensor_new) */
    bool requires_grad;     /* gradient wanted for this tensor */
    bool is_param;          /* owned by a module as a parameter or buffer */
    bool owns_data;         /* heap tensors: data is freed with the tensor */
} bk_tensor;

#define BK_TENSOR_MAGIC 0x6b72624bu /* "Kbrk" */

/* BK_SHAPE(2, 20) expands to the (ndim, shape) pair that shape-taking functions expect. */
#define BK_SHAPE(...) \
    (int)(sizeof((const int64_t[]){__VA_ARGS__}) / sizeof(int64_t)), (const int64_t[]) { __VA_ARGS__ }

/* Heap tensor owned by the caller, zero-filled. Free with bk_tensor_free(). */
bk_tensor *bk_tensor_new(int ndim, const int64_t *shape);
/* Heap copy of any tensor's values (no autograd history). */
bk_tensor *bk_tensor_clone_owned(const bk_tensor *t);
/* Frees a heap tensor and its gradient. NULL is fine. Arena tensors are refused
 * (they are freed by bk_arena_reset). */
void bk_tensor_free(bk_tensor *t);

/* Arena tensors (see the ownership note at the top). */
bk_tensor *bk_empty(int ndim, const int64_t *shape); /* uninitialised */
bk_tensor *bk_zeros(int ndim, const int64_t *shape);
bk_tensor *bk_ones(int ndim, const int64_t *shape);
bk_tensor *bk_full(int ndim, const int64_t *shape, float value);
bk_tensor *bk_scalar(float value);                                          /* rank 0 */
bk_tensor *bk_from_data(int ndim, const int64_t *shape, const float *data); /* copies */
bk_tensor *bk_rand(int ndim, const int64_t *shape);                         /* U[0, 1), default rng */
bk_tensor *bk_randn(int ndim, const int64_t *shape);                        /* N(0, 1), default rng */
bk_tensor *bk_rand_rng(bk_rng *rng, int ndim, const int64_t *shape);
bk_tensor *bk_randn_rng(bk_rng *rng, int ndim, const int64_t *shape);
bk_tensor *bk_zeros_like(const bk_tensor *t);

/* Fills in place (no autograd). Return 0, or -1 on error. */
int bk_fill(bk_tensor *t, float value);
int bk_fill_uniform(bk_tensor *t, bk_rng *rng, float lo, float hi);
int bk_fill_normal(bk_tensor *t, bk_rng *rng, float mean, float std);
/* Copies src's values into dst (same numel). */
int bk_copy(bk_tensor *dst, const bk_tensor *src);

/* Marks a leaf tensor as wanting a gradient (torch's requires_grad_()). Returns t. */
bk_tensor *bk_requires_grad(bk_tensor *t, bool on);

/* Shape helpers. */
bool bk_same_shape(const bk_tensor *a, const bk_tensor *b);
/* Writes "(2, 20)" into buf (at most n bytes, as snprintf; t NULL gives "(null)"); returns
 * buf. NULL with an error when buf is NULL and n > 0. */
char *bk_shape_str(const bk_tensor *t, char *buf, size_t n);
/* The value of a one-element tensor (torch's item()). NaN and an error otherwise. */
float bk_item(const bk_tensor *t);
/* Element at a full index (ndim entries; may be NULL for rank 0), for tests and printing.
 * NaN with an error for an index out of range. */
float bk_get(const bk_tensor *t, const int64_t *index);
/* Prints like torch: "tensor([[0.1, 0.2], ...], shape=(2, 2))". */
void bk_print(const bk_tensor *t, FILE *f);
/* Checks that t is a live tensor (not NULL, not released). Sets an error naming `who`. */
bool bk_tensor_ok(const bk_tensor *t, const char *who);

/* ------------------------------------------------------------------------------------ */
/* Arenas: where a step's intermediates live                                            */
/* ------------------------------------------------------------------------------------ */

bk_arena *bk_arena_new(void);
void bk_arena_free(bk_arena *a);
/* Releases every tensor and tape entry made in the arena since the last reset, keeping
 * its memory for reuse. NULL means the calling thread's current arena. */
void bk_arena_reset(bk_arena *a);
/* Makes `a` the calling thread's current arena; returns the previous one (to restore).
 * NULL switches back to the thread's default arena. */
bk_arena *bk_arena_use(bk_arena *a);
/* The calling thread's current arena (the default one is created on first use). */
bk_arena *bk_arena_current(void);
/* Bytes the arena holds now and its high-water mark. NULL means the thread's current arena
 * (also for bk_arena_allocations). */
size_t bk_arena_bytes_used(const bk_arena *a);
size_t bk_arena_bytes_reserved(const bk_arena *a);
/* Number of malloc calls the arena has made over its life (to verify a warmed-up step
 * allocates nothing). */
uint64_t bk_arena_allocations(const bk_arena *a);
/* Frees the thread's default arena and default rng state. Call at thread exit. */
void bk_thread_cleanup(void);

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
/* Ops. Each returns an arena tensor with autograd history, or NULL with an error.      */
/* Binary elementwise ops broadcast as PyTorch does.                                    */
/* ------------------------------------------------------------------------------------ */

bk_tensor *bk_add(bk_tensor *a, bk_tensor *b);    /* a + b */
bk_tensor *bk_sub(bk_tensor *a, bk_tensor *b);    /* a - b */
bk_tensor *bk_mul(bk_tensor *a, bk_tensor *b);    /* a * b */
bk_tensor *bk_div(bk_tensor *a, bk_tensor *b);    /* a / b */
bk_tensor *bk_add_scalar(bk_tensor *a, float s);  /* a + s */
bk_tensor *bk_mul_scalar(bk_tensor *a, float s);  /* a * s */
bk_tensor *bk_div_scalar(bk_tensor *a, float s);  /* a / s */
bk_tensor *bk_rsub_scalar(bk_tensor *a, float s); /* s - a */
bk_tensor *bk_neg(bk_tensor *a);                  /* -a */
bk_tensor *bk_abs(bk_tensor *a);                  /* |a|, d/da = sign(a) (0 at 0) */
bk_tensor *bk_exp(bk_tensor *a);                  /* e^a */
bk_tensor *bk_log(bk_tensor *a);                  /* ln a */
bk_tensor *bk_sqrt(bk_tensor *a);                 /* sqrt a */
bk_tensor *bk_pow_scalar(bk_tensor *a, float p);  /* a^p, d/da = p a^(p-1) */
bk_tensor *bk_pow(bk_tensor *a, bk_tensor *b);    /* a^b (a > 0 for d/db) */
bk_tensor *bk_relu(bk_tensor *a);                 /* max(a, 0), d/da = [a > 0] */
bk_tensor *bk_sigmoid(bk_tensor *a);              /* 1 / (1 + e^-a) */
bk_tensor *bk_tanh(bk_tensor *a);                 /* tanh a */
bk_tensor *bk_gelu(bk_tensor *a);                 /* x Phi(x), exact (erf) */
bk_tensor *bk_gelu_tanh(bk_tensor *a);            /* GELU, tanh approximation */
bk_tensor *bk_silu(bk_tensor *a);                 /* a sigmoid(a) (SiLU, swish) */

/* (..., M, K) @ (..., K, N) -> (..., M, N); batch dims broadcast; 1-d operands are
 * promoted as in torch.matmul. */
bk_tensor *bk_matmul(bk_tensor *a, bk_tensor *b);
/* torch.nn.functional.linear: x (..., in) @ w(out, in)^T + b(out) -> (..., out). b may be NULL. */
bk_tensor *bk_linear(bk_tensor *x, bk_tensor *w, bk_tensor *b);

/* Reductions. dim may be negative (counts from the end). */
bk_tensor *bk_sum(bk_tensor *a); /* all -> rank 0 */
bk_tensor *bk_mean(bk_tensor *a);
bk_tensor *bk_max(bk_tensor *a); /* ties share the gradient evenly, as torch's max() */
bk_tensor *bk_sum_dim(bk_tensor *a, int dim, bool keepdim);
bk_tensor *bk_mean_dim(bk_tensor *a, int dim, bool keepdim);
bk_tensor *bk_max_dim(bk_tensor *a, int dim, bool keepdim); /* grad to the first maximum */

/* Comparisons: 1.0 where true, 0.0 elsewhere; no gradient. Broadcasting. */
bk_tensor *bk_gt(bk_tensor *a, bk_tensor *b);
bk_tensor *bk_lt(bk_tensor *a, bk_tensor *b);
bk_tensor *bk_eq(bk_tensor *a, bk_tensor *b);

/* Shapes. reshape/view/flatten share storage with their input; one -1 is inferred.
 * transpose/permute return a contiguous copy. */
bk_tensor *bk_reshape(bk_tensor *a, int ndim, const int64_t *shape);
bk_tensor *bk_flatten(bk_tensor *a, int start_dim, int end_dim);
bk_tensor *bk_transpose(bk_tensor *a, int dim0, int dim1);
bk_tensor *bk_permute(bk_tensor *a, const int *dims); /* dims has a->ndim entries */
bk_tensor *bk_concat(int n, bk_tensor *const *ts, int dim);
/* Elements start..end-1 along dim (torch's narrow / a[..., start:end]). */
bk_tensor *bk_slice(bk_tensor *a, int dim, int64_t start, int64_t end);
/* Index i along dim, which is removed (a[i] for dim 0). */
bk_tensor *bk_select(bk_tensor *a, int dim, int64_t index);
bk_tensor *bk_clone(bk_tensor *a);

/* ------------------------------------------------------------------------------------ */
/* Convolution, pooling, normalisation, dropout (NCHW)                                  */
/* ------------------------------------------------------------------------------------ */

typedef struct bk_conv2d_opts {
    int64_t stride[2], padding[2], dilation[2], groups;
} bk_conv2d_opts;
#define BK_CONV2D_DEFAULTS ((bk_conv2d_opts){{1, 1}, {0, 0}, {1, 1}, 1})

/* F.conv2d: x (N, C, H, W), w (O, C/groups, KH, KW), b (O) or NULL -> (N, O, OH, OW). */
bk_tensor *bk_conv2d(bk_tensor *x, bk_tensor *w, bk_tensor *b, bk_conv2d_opts opts);

typedef struct bk_pool2d_opts {
    int64_t kernel[2], stride[2], padding[2];
} bk_pool2d_opts;
/* F.max_pool2d / F.avg_pool2d (floor mode; avg counts padding, torch's defaults). */
bk_tensor *bk_max_pool2d(bk_tensor *x, bk_pool2d_opts opts);
bk_tensor *bk_avg_pool2d(bk_tensor *x, bk_pool2d_opts opts);
/* F.adaptive_avg_pool2d to (out_h, out_w). */
bk_tensor *bk_adaptive_avg_pool2d(bk_tensor *x, int64_t out_h, int64_t out_w);

/* F.batch_norm over channel dim 1 of x (N, C, ...). training: batch statistics, and the
 * running stats are updated in place (running = (1 - momentum) running + momentum stat,
 * variance unbiased); otherwise the running stats are used. */
bk_tensor *bk_batch_norm(bk_tensor *x, bk_tensor *running_mean, bk_tensor *running_var, bk_tensor *weight,
                         bk_tensor *bias, bool training, float momentum, float eps);
/* F.layer_norm over the last n_norm_dims dims; weight and bias have those dims' shape. */
bk_tensor *bk_layer_norm(bk_tensor *x, int n_norm_dims, bk_tensor *weight, bk_tensor *bias, float eps);
/* F.dropout: in training, zeroes each element with probability p (from rng, NULL = the
 * thread's default) and scales the rest by 1 / (1 - p); otherwise returns x. */
bk_tensor *bk_dropout(bk_tensor *x, float p, bool training, bk_rng *rng);

/* ------------------------------------------------------------------------------------ */
/* Attention and Transformers                                                           */
/* ------------------------------------------------------------------------------------ */

/* B = batch, L = target (query) length, S = source (key) length, E = embed_dim,
 * H = heads, D = E / H. Sequences are (L, B, E), torch's default, or (B, L, E) with
 * batch_first. Masks are float tensors that never get a gradient:
 *   attn_mask (L, S) or (B*H, L, S) (block b*H + h), ADDITIVE: 0 lets a query see a key,
 *     -inf forbids it (other values are added to the scores). A boolean mask (nonzero =
 *     forbidden, torch's True) converts with bk_attn_mask_from_bool; bk_causal_mask makes
 *     the causal one.
 *   key_padding_mask (B, S), BOOLEAN: a nonzero entry marks a padding key that no query
 *     sees (torch's True).
 * The softmax subtracts the row maximum, so it stays finite for any finite scores. A query
 * that may see no key at all (its whole row masked) gets NaN weights, and NaN outputs and
 * gradients follow from them, exactly as in PyTorch 1.13's nn.MultiheadAttention (which
 * gives NaN there in training and in eval mode; only TransformerEncoder's eval-mode
 * nested-tensor fast path returns 0 for padded positions). */

/* F.embedding: out[..., :] = weight[ids[...], :]. ids (any shape) holds integer ids as
 * floats, each in [0, num_embeddings); weight (num_embeddings, dim) -> (*ids.shape, dim).
 * padding_idx in [0, num_embeddings), or -1 for none: that row gets no gradient. ids get
 * no gradient. An id out of range or not an integer is an error naming it. */
bk_tensor *bk_embedding(bk_tensor *ids, bk_tensor *weight, int64_t padding_idx);

/* Multi-head attention weights (nn.MultiheadAttention's softmax), one fused op:
 *   P[b, h] = softmax(scale * Q_bh K_bh^T + attn_mask_bh, -inf at padding keys)  (rows of S)
 * q (B, L, H*D) and k (B, S, H*D) with batch_first, else (L, B, H*D) and (S, B, H*D);
 * Q_bh is head h's columns h*D .. h*D+D-1 of batch b (read in place, no copy).
 * scale 0 means 1/sqrt(D). Returns P (B, H, L, S). Masks may be NULL. */
bk_tensor *bk_attention_weights(bk_tensor *q, bk_tensor *k, int64_t num_heads, bool batch_first,
                                bk_tensor *attn_mask, bk_tensor *key_padding_mask, float scale);
/* The weighted values: O_bh = P[b, h] V_bh, written into head h's columns of O.
 * weights (B, H, L, S), v (B, S, H*Dv) or (S, B, H*Dv) -> (B, L, H*Dv) or (L, B, H*Dv). */
bk_tensor *bk_attention_apply(bk_tensor *weights, bk_tensor *v, bool batch_first);
/* Single-head scaled dot-product attention, softmax(q k^T / sqrt(D) + attn_mask) v with
 * dropout on the weights: q (B, L, D), k (B, S, D), v (B, S, Dv), attn_mask (L, S) or
 * (B, L, S) additive or NULL -> (B, L, Dv). */
bk_tensor *bk_scaled_dot_product_attention(bk_tensor *q, bk_tensor *k, bk_tensor *v, bk_tensor *attn_mask,
                                           float dropout_p, bool training, bk_rng *rng);
/* The causal mask (size, size): 0 on and below the diagonal, -inf above
 * (nn.Transformer.generate_square_subsequent_mask). Arena tensor. */
bk_tensor *bk_causal_mask(int64_t size);
/* A boolean mask (nonzero = forbidden) as an additive one (-inf / 0). Arena tensor. */
bk_tensor *bk_attn_mask_from_bool(bk_tensor *mask);

/* nn.Embedding(num_embeddings, embedding_dim): weight N(0, 1). bk_forward(m, ids) looks
 * the ids up (see bk_embedding). The _padded form is nn.Embedding(..., padding_idx):
 * negative padding_idx counts from the end, as in torch; that row starts at zero and gets
 * no gradient. */
bk_module *bk_nn_embedding(int64_t num_embeddings, int64_t embedding_dim);
bk_module *bk_nn_embedding_padded(int64_t num_embeddings, int64_t embedding_dim, int64_t padding_idx);
/* D2L's PositionalEncoding(num_hiddens, dropout, max_len) ("Attention is all you need"):
 *   P[pos, 2i] = sin(pos / 10000^(2i / d)),  P[pos, 2i + 1] = cos(pos / 10000^(2i / d))
 * kept as a non-persistent buffer "P" (1, max_len, d) (computed in double, rounded once);
 * forward(X) = dropout(X + P[:, :T]) for X (B, T, d) or (T, d). Child "dropout".
 * T > max_len is an error. */
bk_module *bk_nn_positional_encoding(int64_t num_hiddens, float dropout, int64_t max_len);
/* A learned positional embedding: parameter "weight" (max_len, d), N(0, 1) (as an
 * nn.Embedding over positions); forward(X) = X + weight[:T] for X (B, T, d) or (T, d).
 * T > max_len is an error naming both. */
bk_module *bk_nn_learned_positional_embedding(int64_t max_len, int64_t num_hiddens);

/* nn.MultiheadAttention(embed_dim, num_heads, dropout, bias, batch_first) with
 * kdim = vdim = embed_dim: parameters in_proj_weight (3E, E) (xavier_uniform_),
 * in_proj_bias (3E) (zeros; absent without bias) and child out_proj, a
 * NonDynamicallyQuantizableLinear(E, E) (Linear's init, bias zero), as torch names them.
 * embed_dim must be divisible by num_heads. bk_forward(m, x) is self-attention without
 * masks. dropout applies to the attention weights in training mode. */
bk_module *bk_nn_multihead_attention(int64_t embed_dim, int64_t num_heads, float dropout, bool bias,
                                     bool batch_first);
/* MultiheadAttention.forward(query, key, value, key_padding_mask, need_weights, attn_mask,
 * average_attn_weights): query (L, B, E) / (B, L, E), key and value (S, B, E) / (B, S, E)
 * (or unbatched (L, E), (S, E)); masks as described at the top of this section, or NULL.
 * Returns the output, shaped like query. attn_weights may be NULL; otherwise it is set to
 * NULL, or with need_weights to the attention weights (after dropout, with autograd
 * history, as torch returns them): averaged over heads (B, L, S) or per head (B, H, L, S)
 * (unbatched: (L, S), (H, L, S)). key_padding_mask is boolean only (torch 1.13 also takes
 * an additive float one; put that in a (B*H, L, S) attn_mask instead). Errors name the
 * layer and the shapes. */
bk_tensor *bk_mha_forward(bk_module *m, bk_tensor *query, bk_tensor *key, bk_tensor *value,
                          bk_tensor *key_padding_mask, bk_tensor *attn_mask, bool need_weights,
                          bool average_attn_weights, bk_tensor **attn_weights);

typedef enum bk_activation {
    BK_ACTIVATION_RELU = 0, /* torch's default, F.relu */
    BK_ACTIVATION_GELU,     /* F.gelu, exact (erf) */
    BK_ACTIVATION_COUNT
} bk_activation;

/* The arguments of nn.TransformerEncoderLayer / nn.TransformerDecoderLayer. */
typedef struct bk_transformer_config {
    int64_t d_model, nhead, dim_feedforward;
    float dropout;
    bk_activation activation;
    float layer_norm_eps;
    bool batch_first, norm_first;
} bk_transformer_config;
/* torch's defaults: dim_feedforward 2048, dropout 0.1, relu, eps 1e-5, (L, B, E), post-norm */
#define BK_TRANSFORMER_DEFAULTS(d_model_, nhead_) \
    ((bk_transformer_config){(d_model_), (nhead_), 2048, 0.1f, BK_ACTIVATION_RELU, 1e-5f, false, false})

/* nn.TransformerEncoderLayer: children self_attn (MultiheadAttention), linear1 (d_model ->
 * dim_feedforward), dropout, linear2, norm1, norm2 (LayerNorm), dropout1, dropout2, each
 * initialised as torch does. With x the input:
 *   post-norm: x = norm1(x + dropout1(sa(x))); x = norm2(x + dropout2(ff(x)))
 *   norm_first: x = x + dropout1(sa(norm1(x))); x = x + dropout2(ff(norm2(x)))
 * ff(x) = linear2(dropout(act(linear1(x)))). bk_forward(m, src) runs it without masks. */
bk_module *bk_nn_transformer_encoder_layer(bk_transformer_config cfg);
bk_tensor *bk_transformer_encoder_layer_forward(bk_module *m, bk_tensor *src, bk_tensor *src_mask,
                                                bk_tensor *src_key_padding_mask);
/* nn.TransformerDecoderLayer: children self_attn, multihead_attn, linear1, dropout,
 * linear2, norm1, norm2, norm3, dropout1, dropout2, dropout3:
 *   post-norm: x = norm1(x + sa(x)); x = norm2(x + mha(x, memory)); x = norm3(x + ff(x))
 *   norm_first: x = x + sa(norm1(x)); x = x + mha(norm2(x), memory); x = x + ff(norm3(x))
 * (each block followed by its dropout). It needs the memory, so bk_forward fails on it. */
bk_module *bk_nn_transformer_decoder_layer(bk_transformer_config cfg);
bk_tensor *bk_transformer_decoder_layer_forward(bk_module *m, bk_tensor *tgt, bk_tensor *memory,
                                                bk_tensor *tgt_mask, bk_tensor *memory_mask,
                                                bk_tensor *tgt_key_padding_mask,
                                                bk_tensor *memory_key_padding_mask);
/* nn.TransformerEncoder(encoder_layer, num_layers, norm) / nn.TransformerDecoder: child
 * "layers", a ModuleList "0" .. "num_layers-1" of copies of the layer (same settings and
 * parameter values, like torch's deepcopy; the given layer itself becomes layers.0), then
 * "norm" when norm is not NULL (applied to the last layer's output). Takes ownership of
 * the layer and of norm, also on failure. The layer must come from the matching
 * bk_nn_transformer_*_layer. */
bk_module *bk_nn_transformer_encoder(bk_module *encoder_layer, int num_layers, bk_module *norm);
bk_tensor *bk_transformer_encoder_forward(bk_module *m, bk_tensor *src, bk_tensor *mask,
                                          bk_tensor *src_key_padding_mask);
bk_module *bk_nn_transformer_decoder(bk_module *decoder_layer, int num_layers, bk_module *norm);
bk_tensor *bk_transformer_decoder_forward(bk_module *m, bk_tensor *tgt, bk_tensor *memory,
                                          bk_tensor *tgt_mask, bk_tensor *memory_mask,
                                          bk_tensor *tgt_key_padding_mask,
                                          bk_tensor *memory_key_padding_mask);

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

/* ------------------------------------------------------------------------------------ */
/* Modules (blocks)                                                                     */
/* ------------------------------------------------------------------------------------ */

/* What makes a kind of block: its name (as print(net) shows it), its forward, and
 * optionally a description of its settings and a destructor for extra state. */
typedef struct bk_module_class {
    const char *name;
    bk_tensor *(*forward)(bk_module *self, bk_tensor *x);
    /* Writes e.g. "in_features=20, out_features=256, bias=True" (may be NULL). */
    void (*extra_repr)(const bk_module *self, char *buf, size_t n);
    /* Frees what the block allocated itself (not params/children; may be NULL). */
    void (*destroy)(bk_module *self);
} bk_module_class;

typedef struct bk_named_tensor {
    char *name; /* local name ("weight") */
    bk_tensor *tensor;
    bool trainable;  /* parameters: true unless frozen; buffers: false */
    bool persistent; /* saved in the state dict */
} bk_named_tensor;

typedef struct bk_named_module {
    char *name;
    bk_module *module;
} bk_named_module;

/* The base of every block. User blocks embed it as their FIRST member:
 *     typedef struct { bk_module base; bk_module *hidden, *out; } MLP;
 * Fields are readable; change them through the API. */
struct bk_module {
    const bk_module_class *cls;
    bk_named_module *children;
    int n_children, cap_children;
    bk_named_tensor *params;
    int n_params, cap_params;
    bk_named_tensor *buffers;
    int n_buffers, cap_buffers;
    bool training;
    int refcount;
};

/* Allocates a zeroed block of `size` bytes (>= sizeof(bk_module)) whose base is set up
 * for cls. Returns NULL on error. Free with bk_module_free. */
bk_module *bk_module_new(const bk_module_class *cls, size_t size);
/* Drops one reference; at zero frees params, buffers, children (recursively) and itself.
 * NULL is fine; what is not a live block is refused with an error (freeing it would
 * corrupt memory). */
void bk_module_free(bk_module *m);
/* Adds a reference (to register one block under two parents). Returns m, or NULL with an
 * error for NULL or what is not a live block. */
bk_module *bk_module_ref(bk_module *m);

/* Registers child under name (ordered). Takes ownership of `child` in every case: on
 * failure (NULL parent, duplicate name, NULL child) the child is freed and NULL returned.
 * Returns child. (A child that is not a live block is refused and left alone.) */
bk_module *bk_module_add(bk_module *m, const char *name, bk_module *child);
/* Creates a zero-filled trainable parameter owned by m (nn.Parameter). Borrowed. */
bk_tensor *bk_module_param(bk_module *m, const char *name, int ndim, const int64_t *shape);
/* Creates a zero-filled constant owned by m: never trained, no gradient; saved in the
 * state dict when persistent (register_buffer). Borrowed. */
bk_tensor *bk_module_buffer(bk_module *m, const char *name, int ndim, const int64_t *shape, bool persistent);
/* Freezes or unfreezes a parameter (requires_grad_). */
int bk_module_set_trainable(bk_module *m, const char *name, bool trainable);

/* Runs the block: m->cls->forward(m, x). NULL in, NULL out. On failure the error is
 * prefixed with the innermost failing block's class name (except anomaly-mode messages,
 * which already name the whole chain of blocks). */
bk_tensor *bk_forward(bk_module *m, bk_tensor *x);

/* Children by position or name (borrowed; NULL if absent). */
bk_module *bk_module_child(const bk_module *m, int index);
bk_module *bk_module_child_by_name(const bk_module *m, const char *name);
/* Parameter or buffer by dotted name ("0.net.2.weight"); borrowed. */
bk_tensor *bk_module_get(const bk_module *m, const char *dotted);

/* Iterating a block tree. bk_named_params lists every parameter under its dotted name,
 * in registration order, each shared parameter once (named_parameters()). */
typedef struct bk_param_list {
    int n;
    char **names;        /* dotted names, owned by the list */
    bk_tensor **tensors; /* borrowed from the modules */
    bool *trainable;
} bk_param_list;
/* Which tensors of a block tree to list: BK_PARAMS (parameters), BK_BUFFERS (buffers),
 * BK_STATE (state dict order: per module its params then its persistent buffers, then its
 * children; duplicates kept under every name, as torch's state_dict); any other value is
 * an error. (The values are bits: BK_STATE = BK_PARAMS | BK_BUFFERS.) Free the list with
 * bk_param_list_free (NULL is fine). */
typedef enum bk_named_kind { BK_PARAMS = 1, BK_BUFFERS = 2, BK_STATE = 3 } bk_named_kind;
bk_param_list *bk_module_named(const bk_module *m, bk_named_kind which);
void bk_param_list_free(bk_param_list *l);

int64_t bk_module_num_params(const bk_module *m, bool trainable_only);
/* Sets training mode recursively (train(True) / eval()). */
void bk_module_train(bk_module *m, bool training);
/* Sets every parameter's gradient to zero (keeps the buffers). */
void bk_module_zero_grad(bk_module *m);
/* Calls fn on every descendant (children first, depth-first) and then on m, like
 * torch's apply(). */
void bk_module_apply(bk_module *m, void (*fn)(bk_module *m, void *ud), void *ud);
/* Writes the block tree the way print(net) does. Returns bytes written (as snprintf: buf
 * NULL with n 0 measures). */
int bk_module_repr(const bk_module *m, char *buf, size_t n);
void bk_module_print(const bk_module *m, FILE *f);
/* The class name ("Linear"), or "?" for NULL. */
const char *bk_module_name(const bk_module *m);

/* ------------------------------------------------------------------------------------ */
/* Layers and blocks (torch.nn). Constructors return NULL with an error on bad input.  */
/* ------------------------------------------------------------------------------------ */

/* nn.Linear: weight (out, in) and bias (out,), both U(-1/sqrt(in), 1/sqrt(in)) from the
 * thread's default rng, as PyTorch initialises them. */
bk_module *bk_nn_linear(int64_t in_features, int64_t out_features);
bk_module *bk_nn_linear_ex(int64_t in_features, int64_t out_features, bool bias);
bk_module *bk_nn_relu(void);
bk_module *bk_nn_sigmoid(void);
bk_module *bk_nn_tanh(void);
bk_module *bk_nn_identity(void);
/* nn.Flatten(start_dim=1, end_dim=-1). */
bk_module *bk_nn_flatten(int start_dim, int end_dim);

/* nn.Conv2d(in, out, kernel_size, stride, padding, dilation, groups, bias): weight
 * (out, in/groups, kh, kw) and bias (out) initialised as torch does (U(+-1/sqrt(fan_in))). */
bk_module *bk_nn_conv2d(int64_t in_channels, int64_t out_channels, int64_t kernel_size, int64_t stride,
                        int64_t padding);
bk_module *bk_nn_conv2d_ex(int64_t in_channels, int64_t out_channels, const int64_t kernel[2],
                           bk_conv2d_opts opts, bool bias);
/* nn.MaxPool2d / nn.AvgPool2d (stride 0 means stride = kernel, as torch's default). */
bk_module *bk_nn_max_pool2d(int64_t kernel_size, int64_t stride, int64_t padding);
bk_module *bk_nn_avg_pool2d(int64_t kernel_size, int64_t stride, int64_t padding);
bk_module *bk_nn_adaptive_avg_pool2d(int64_t out_h, int64_t out_w);
/* nn.BatchNorm1d / nn.BatchNorm2d(num_features, eps=1e-5, momentum=0.1): weight 1, bias 0,
 * buffers running_mean 0, running_var 1, num_batches_tracked 0 (a float counter here). */
bk_module *bk_nn_batch_norm1d(int64_t num_features);
bk_module *bk_nn_batch_norm2d(int64_t num_features);
/* ndim_expected: 1 for BatchNorm1d (input (N, C) or (N, C, L)), 2 for BatchNorm2d ((N, C, H, W)). */
bk_module *bk_nn_batch_norm_ex(int64_t num_features, float eps, float momentum, int ndim_expected);
/* nn.LayerNorm(normalized_shape, eps=1e-5), weight 1 and bias 0. */
bk_module *bk_nn_layer_norm(int ndim, const int64_t *normalized_shape, float eps);
/* nn.Dropout(p): uses the thread's default generator (seed with bk_manual_seed). */
bk_module *bk_nn_dropout(float p);
bk_module *bk_nn_gelu(void);
bk_module *bk_nn_softmax(int dim);
bk_module *bk_nn_log_softmax(int dim);

/* D2L's ResNet block ("Residual Networks"), class Residual(input_channels, num_channels,
 * use_1x1conv, strides): children conv1 = Conv2d(in, num, 3, padding=1, stride=strides),
 * conv2 = Conv2d(num, num, 3, padding=1), conv3 = Conv2d(in, num, 1, stride=strides) (only
 * with use_1x1conv), bn1, bn2 = BatchNorm2d(num), registered in that order.
 *   Y = relu(bn1(conv1(X))); Y = bn2(conv2(Y)); return relu(Y + (conv3 ? conv3(X) : X))
 * (N, in, H, W) -> (N, num, (H - 1) / strides + 1, (W - 1) / strides + 1). Without
 * use_1x1conv the input must already have that shape (in == num, strides 1), else forward
 * fails naming both shapes. */
bk_module *bk_nn_residual(int64_t input_channels, int64_t num_channels, bool use_1x1conv, int64_t strides);
/* D2L's GoogLeNet block ("Multi-Branch Networks"), class Inception(in_channels, c1, c2, c3,
 * c4): four paths, each conv followed by a ReLU, concatenated on the channels:
 *   p1_1 = Conv2d(in, c1, 1);
 *   p2_1 = Conv2d(in, c2[0], 1), p2_2 = Conv2d(c2[0], c2[1], 3, padding=1);
 *   p3_1 = Conv2d(in, c3[0], 1), p3_2 = Conv2d(c3[0], c3[1], 5, padding=2);
 *   p4_1 = MaxPool2d(3, stride=1, padding=1), p4_2 = Conv2d(in, c4, 1).
 * (N, in, H, W) -> (N, c1 + c2[1] + c3[1] + c4, H, W). */
bk_module *bk_nn_inception(int64_t in_channels, int64_t c1, const int64_t c2[2], const int64_t c3[2],
                           int64_t c4);

/* nn.Sequential of n blocks (takes ownership of all of them, also on failure), named
 * "0", "1", ... */
bk_module *bk_nn_sequential(int n, ...);
bk_module *bk_nn_sequential_from(int n, bk_module *const *blocks);
/* Appends a block under the next index name. Returns 0 or -1. */
int bk_nn_sequential_append(bk_module *seq, bk_module *block);
int bk_nn_sequential_len(const bk_module *seq);
bk_module *bk_nn_sequential_get(const bk_module *seq, int index); /* negative counts from end */

/* ------------------------------------------------------------------------------------ */
/* Files                                                                                */
/* ------------------------------------------------------------------------------------ */

/* Opens path for reading ("rb") if it is a regular file, and only then: it is opened
 * non-blocking and checked with fstat before anything is read, so a FIFO, a terminal or a
 * device named like a data file gives an error at once instead of blocking forever (the
 * stream is made blocking again once the type is known). Every brick reader opens its
 * files this way. NULL with the error "<path>: cannot open: <reason>" or "<path>: not a
 * regular file (a FIFO)" (a directory, a character device, ...). Close with fclose. */
FILE *bk_file_open_read(const char *path);
/* Replaces path with the n bytes of data, atomically: a temporary file
 * "<path>.tmp.XXXXXX" in the same directory, written, fsync'ed and renamed over path, so a
 * reader sees the old file or the new one, never a mix; on failure path is left as it was
 * and the temporary file is removed. A write that is killed leaves its temporary file,
 * which the next successful write of path removes (those no running writer holds; the
 * same rule as bk_safetensors_save). A new file gets mode 0666 & ~umask. 0, or -1 with
 * the error "<path>: cannot <step> (<temporary file>): <reason>". */
int bk_file_write_atomic(const char *path, const void *data, size_t n);
/* Checks, before a long run, that bk_file_write_atomic can later write `bytes` bytes to
 * path: creates the temporary file such a write makes, reserves the room
 * (posix_fallocate; not checked on a file system without it) and removes it. path itself
 * is not touched. 0, or -1 with the error "<path> cannot be written: cannot create a file
 * there: <reason>" or "<path> cannot be written: no room for its <n> MiB: <reason>". */
int bk_file_check_writable(const char *path, int64_t bytes);

/* ------------------------------------------------------------------------------------ */
/* safetensors files                                                                    */
/* ------------------------------------------------------------------------------------ */

/* A loaded safetensors file: named float32 tensors (F32 only for now) and metadata. */
typedef struct bk_safetensors bk_safetensors;

/* Reads and validates the whole file (a regular file only: see bk_file_open_read). NULL
 * with an error naming the file and the problem. */
bk_safetensors *bk_safetensors_load(const char *path);
void bk_safetensors_free(bk_safetensors *st);
/* Number of tensors (-1 with an error for NULL). Tensors are numbered in data order; for
 * files brick wrote, the order they were saved in. */
int bk_safetensors_count(const bk_safetensors *st);
/* The name of tensor i (0 <= i < count), decoded from the header: NUL-terminated UTF-8
 * (it may hold any character but NUL, so escape it before printing: bk_escape). Borrowed
 * from st: valid until bk_safetensors_free(st), do not free. NULL with an error for NULL
 * or an index out of range. */
const char *bk_safetensors_name(const bk_safetensors *st, int i);
/* Borrowed heap tensor owned by st (valid until bk_safetensors_free(st)), or NULL (with an
 * error) if absent. */
bk_tensor *bk_safetensors_get(const bk_safetensors *st, const char *name);
/* Metadata value, or NULL (without an error) when the key is absent. Like a name: decoded
 * UTF-8, borrowed from st, valid until bk_safetensors_free(st), do not free. */
const char *bk_safetensors_meta(const bk_safetensors *st, const char *key);

/* Writes n tensors under the given names, with optional metadata (n_meta key/value
 * pairs), atomically: a temporary file in the same directory, fsync, rename. Names must be
 * unique, valid UTF-8 and not "__metadata__". A new file gets mode 0666 & ~umask; on failure
 * an existing file is left as it was. A save killed midway leaves its temporary file
 * "<path>.tmp.XXXXXX", which loads ignore and the next successful save of path removes
 * (only those no running save holds; docs/reliability.md). */
int bk_safetensors_save(const char *path, int n, const char *const *names, const bk_tensor *const *tensors,
                        int n_meta, const char *const *meta_keys, const char *const *meta_values);

/* A module's state dict (parameters and persistent buffers under dotted names), with the
 * metadata format=pt that PyTorch-side loaders expect. */
int bk_module_save(const bk_module *m, const char *path);
/* Loads a state dict. strict: every name must match in both directions with equal
 * shapes; on any problem nothing is changed and the error lists every missing,
 * unexpected and mis-shaped name. */
int bk_module_load(bk_module *m, const char *path, bool strict);
int bk_module_load_from(bk_module *m, const bk_safetensors *st, bool strict);

/* ------------------------------------------------------------------------------------ */
/* Losses and metrics                                                                   */
/* ------------------------------------------------------------------------------------ */

typedef enum bk_reduction {
    BK_REDUCTION_MEAN = 0, /* the default, as in torch */
    BK_REDUCTION_SUM,
    BK_REDUCTION_NONE,
    BK_REDUCTION_COUNT
} bk_reduction;

/* log_softmax / softmax along dim, computed stably (max subtracted). */
bk_tensor *bk_log_softmax(bk_tensor *x, int dim);
bk_tensor *bk_softmax(bk_tensor *x, int dim);
/* nn.CrossEntropyLoss on logits (N, C) and class indices target[N] in [0, C): a fused,
 * numerically stable log-sum-exp. NONE gives shape (N,). */
bk_tensor *bk_cross_entropy(bk_tensor *logits, const int64_t *target, int64_t n, bk_reduction r);
/* nn.MSELoss: (input - target)^2; shapes must match. */
bk_tensor *bk_mse_loss(bk_tensor *input, bk_tensor *target, bk_reduction r);
/* nn.BCEWithLogitsLoss: max(x, 0) - x t + log(1 + e^-|x|); shapes must match. */
bk_tensor *bk_bce_with_logits(bk_tensor *logits, bk_tensor *target, bk_reduction r);
/* Number of rows of logits (N, C) whose argmax equals target (ties: first). -1 on error
 * (also for C = 0 with N > 0: no argmax). */
int64_t bk_count_correct(const bk_tensor *logits, const int64_t *target, int64_t n);
/* Row-wise argmax of (N, C) into out[N]. 0, or -1 with an error. */
int bk_argmax_rows(const bk_tensor *logits, int64_t *out);

/* ------------------------------------------------------------------------------------ */
/* Optimizers (torch.optim: the same update formulas, step by step)                     */
/* ------------------------------------------------------------------------------------ */

typedef struct bk_optim bk_optim;

/* Settings are doubles, as torch's are Python floats: factors like 1 - beta2 are formed in
 * double and then rounded to float32, exactly as torch rounds them. */
typedef struct bk_sgd_config {
    double lr, momentum, dampening, weight_decay;
    bool nesterov;
} bk_sgd_config;

typedef struct bk_adam_config {
    double lr, beta1, beta2, eps, weight_decay;
    bool amsgrad;
} bk_adam_config;

/* Defaults as in torch (SGD needs an lr: 0 here means "set it"). */
#define BK_SGD_DEFAULTS(lr_) ((bk_sgd_config){(lr_), 0.0, 0.0, 0.0, false})
#define BK_ADAM_DEFAULTS(lr_) ((bk_adam_config){(lr_), 0.9, 0.999, 1e-8, 0.0, false})
#define BK_ADAMW_DEFAULTS(lr_) ((bk_adam_config){(lr_), 0.9, 0.999, 1e-8, 1e-2, false})

/* An optimizer over the trainable parameters of m (at the time of the call, in
 * named_parameters order). The module must outlive the optimizer. NULL on bad config. */
bk_optim *bk_optim_sgd(bk_module *m, bk_sgd_config cfg);
bk_optim *bk_optim_adam(bk_module *m, bk_adam_config cfg);
bk_optim *bk_optim_adamw(bk_module *m, bk_adam_config cfg); /* decoupled weight decay */
void bk_optim_free(bk_optim *o);
/* One update from the parameters' current gradients (parameters without a gradient are
 * skipped, as in torch). 0 or -1. */
int bk_optim_step(bk_optim *o);
/* Zeroes the gradients of the optimizer's parameters. */
void bk_optim_zero_grad(bk_optim *o);
double bk_optim_lr(const bk_optim *o); /* NaN with an error for NULL */
/* lr must be >= 0 (else an error, and the lr is unchanged). */
void bk_optim_set_lr(bk_optim *o, double lr);
const char *bk_optim_name(const bk_optim *o); /* "SGD", "Adam", "AdamW"; "?" for NULL */
/* Optimizer state as named tensors (for checkpoints): names like
 * "0.weight.momentum_buffer", "0.weight.exp_avg", "0.weight.step". Borrowed list; the
 * tensors can be written to restore a state. -1 or NULL with an error for NULL or an index
 * out of range. */
int bk_optim_state_count(const bk_optim *o);
const char *bk_optim_state_name(const bk_optim *o, int i);
bk_tensor *bk_optim_state_tensor(const bk_optim *o, int i);

/* Learning-rate schedules, stepped once per epoch as torch's schedulers usually are: the lr
 * to train epoch `epoch` (0-based) with, i.e. the lr after `epoch` calls of scheduler.step().
 * Set it with bk_optim_set_lr before the epoch. In double, as torch computes them.
 *   bk_lr_step_decay: StepLR(step_size, gamma): base_lr gamma^floor(epoch / step_size)
 *   bk_lr_cosine:     CosineAnnealingLR(T_max = total_epochs, eta_min = min_lr):
 *                     min_lr + (base_lr - min_lr) (1 + cos(pi epoch / total_epochs)) / 2,
 *                     which, like torch's, rises again past total_epochs
 * Both return NaN with an error for a negative epoch or a step_size / total_epochs below 1. */
double bk_lr_step_decay(double base_lr, int epoch, int step_size, double gamma);
double bk_lr_cosine(double base_lr, int epoch, int total_epochs, double min_lr);

/* ------------------------------------------------------------------------------------ */
/* Data                                                                                 */
/* ------------------------------------------------------------------------------------ */

/* An in-memory labelled data set: n samples of shape `shape` (ndim dims), float32, and
 * integer labels in [0, n_classes) (or n_classes = 0 and no labels for regression
 * targets in `targets`, each of target_dim floats). */
typedef struct bk_dataset {
    int64_t n;
    int ndim;
    int64_t shape[BK_MAX_DIMS - 1];
    int64_t sample_numel;
    float *x;       /* n * sample_numel */
    int64_t *y;     /* n labels, or NULL */
    float *targets; /* n * target_dim regression targets, or NULL */
    int64_t target_dim;
    int n_classes;
    const char *const *class_names; /* static strings or NULL */
} bk_dataset;

/* Reads an IDX images file (magic 0x00000803, u8) and labels file (0x00000801, u8), plain
 * or gzip-compressed (detected from the content), validating every header field against
 * the file size. Pixels are scaled to [0, 1]; samples have shape (1, rows, cols). Labels
 * must be < n_classes (1..256). Free with bk_dataset_free. NULL with an error
 * "idx: <path>: <problem>" on a bad or inconsistent file. */
bk_dataset *bk_idx_load(const char *images_path, const char *labels_path, int n_classes);
/* The standard Fashion-MNIST file names in dir (each optionally .gz, plain preferred);
 * train: train-*, else t10k-*. Sets the class names and n_classes = 10. A missing
 * directory or file gives an error listing what was looked for. */
bk_dataset *bk_fashion_mnist_load(const char *dir, bool train);
/* Copies user arrays into a data set (y or targets may be NULL; n_classes must be 0
 * without y and target_dim 0 without targets). Labels are checked to be in range. */
bk_dataset *bk_dataset_from_arrays(int64_t n, int ndim, const int64_t *shape, const float *x,
                                   const int64_t *y, int n_classes, const float *targets, int64_t target_dim);
/* Frees the data set and its arrays. NULL is fine. */
void bk_dataset_free(bk_dataset *ds);
/* In place: x = (x - mean) / std (std > 0). A data set filled in by hand must be
 * consistent (shape product = sample_numel, x for every sample, ...), here and for
 * bk_loader_new, else "malformed data set" is the error. */
int bk_dataset_normalize(bk_dataset *ds, float mean, float std);

/* Mini-batches over a data set, reshuffled each epoch from its own generator (seeded with
 * `seed`: the same seed gives the same orders). Borrows ds, which must outlive the loader.
 * Allocates everything up front; a batch allocates only its arena tensors. */
typedef struct bk_loader bk_loader;
bk_loader *bk_loader_new(const bk_dataset *ds, int64_t batch_size, bool shuffle, uint64_t seed,
                         bool drop_last);
void bk_loader_free(bk_loader *l);
/* Starts an epoch: the order restarts from 0..n-1 and is shuffled if asked, so it depends
 * only on the generator state at this call. bk_loader_next on a loader never started
 * starts the first epoch itself. */
void bk_loader_start(bk_loader *l);
/* The next batch: *x an arena tensor (B, shape...), *y borrowed labels (valid until the
 * next call), *targets borrowed regression targets; returns the batch size, 0 at the end
 * of the epoch, -1 on error. Any of the out pointers may be NULL. */
int64_t bk_loader_next(bk_loader *l, bk_tensor **x, const int64_t **y, bk_tensor **targets);
/* Batches per epoch: ceil(n / batch_size), or floor with drop_last. */
int64_t bk_loader_num_batches(const bk_loader *l);
/* The generator state, for resuming with the same shuffles: save it before an epoch's
 * bk_loader_start; a loader given it by bk_loader_set_rng then starts the same epochs.
 * (For a NULL loader: an error, and bk_loader_rng gives a zero state.) */
bk_rng bk_loader_rng(const bk_loader *l);
/* 0, or -1 with an error and the loader unchanged for a state bk_rng_set_state refuses (an
 * even increment). */
int bk_loader_set_rng(bk_loader *l, bk_rng rng);

/* ------------------------------------------------------------------------------------ */
/* Models by name (what the CLI trains and what checkpoints record)                     */
/* ------------------------------------------------------------------------------------ */

/* Builds a model from a spec "name" or "name:key=value,key=value" (e.g. "mlp",
 * "mlp:hidden=512,act=gelu,dropout=0.1", "softmax:bias=false"; a setting is an integer, a
 * number, true/false or a word from a list: docs/cli.md "Models"), for inputs of shape
 * in_shape (e.g. (1, 28, 28)) and n_classes outputs. The canonical spec, which builds the
 * same model, is written to *canonical (may be NULL) so that it can be stored in a
 * checkpoint. A bad value: NULL with an error naming the spec, the setting and the value. */
bk_module *bk_model_build(const char *spec, int in_ndim, const int64_t *in_shape, int n_classes,
                          char *canonical, size_t canonical_size);
/* The most parameters a model of the zoo may have: 2^30, 4 GiB of float32 weights (with
 * gradients and Adam's two moments, 16 GiB to train). bk_model_build and
 * bk_model_num_params refuse a spec beyond it before allocating anything. */
#define BK_MODEL_MAX_PARAMS (INT64_C(1) << 30)
/* The number of parameters bk_model_build(spec, ...) would allocate, computed from the
 * spec alone (nothing is allocated), after the same checks (the spec, the input shape, the
 * classes, BK_MODEL_MAX_PARAMS); the canonical spec goes to *canonical as there. -1 with
 * an error if bk_model_build would refuse the spec. */
int64_t bk_model_num_params(const char *spec, int in_ndim, const int64_t *in_shape, int n_classes,
                            char *canonical, size_t canonical_size);
/* Names of the models bk_model_build knows, NULL-terminated. */
const char *const *bk_model_names(void);


/* ------------------------------------------------------------------------------------ */
/* Checkpoints                                                                          */
/* ------------------------------------------------------------------------------------ */

/* Saves m's state dict and, when o is not NULL, the optimizer state under
 * "optim.<state name>", with n_meta string metadata pairs (e.g. "brick.arch"). Atomic:
 * an interrupted save leaves any previous file intact. */
int bk_checkpoint_save(const char *path, const bk_module *m, const bk_optim *o, int n_meta,
                       const char *const *meta_keys, const char *const *meta_values);
/* Loads a checkpoint into m (strict) and, when o is not NULL, the optimizer state (which
 * must be present). On any failure neither m nor o is changed. */
int bk_checkpoint_load(const char *path, bk_module *m, bk_optim *o);
/* The same from a file already read (bk_safetensors_load), so that a caller who needs its
 * metadata too (to rebuild the model) reads the file once and holds its tensors once.
 * st is only read; it may be freed as soon as this returns. */
int bk_checkpoint_load_from(const bk_safetensors *st, bk_module *m, bk_optim *o);

/* ------------------------------------------------------------------------------------ */
/* Data-parallel training (Open MPI) and gradient accumulation (docs/distributed.md)   */
/* ------------------------------------------------------------------------------------ */

/* A world of processes (ranks), each with a replica of the model, each training on its own
 * slice of every global batch; after the backward their gradients are summed, so every
 * replica makes the same update (torch's DistributedDataParallel). In a build with MPI
 * (`make MPI=1`, the default when Open MPI's mpicc is installed) started by mpirun, the
 * world is MPI_COMM_WORLD; otherwise every call below works on a world of one process.
 * A loop on every rank:
 *     bk_dist_init(&argc, &argv, false);
 *     bk_module *m = ...;                                  // the same model on every rank
 *     bk_ddp *ddp = bk_ddp_new(m, "my model", BK_DIST_DETERMINISTIC); // rank 0's weights
 *     for (...) {                                          // every rank its own slice
 *         bk_optim_zero_grad(o);
 *         bk_backward(bk_cross_entropy(bk_forward(m, x), y, n, BK_REDUCTION_MEAN));
 *         bk_ddp_reduce(ddp, (float)bk_dist_world_size()); // the mean of the ranks' grads
 *         bk_optim_step(o);
 *     }
 *     bk_ddp_free(ddp); bk_dist_finalize();
 * Errors: every call returns -1 (or NULL) with the error set, also for a failed MPI call
 * (MPI errors are returned, never aborted on, inside the library). A program that stops
 * while other ranks may still wait on it must call bk_dist_abort, or they wait forever. */

/* Joins the world: MPI_Init when this process was started by mpirun (or another MPI
 * launcher), or always with require_mpi (an error in a build without MPI); otherwise a
 * world of one, without touching MPI. 0 or -1. */
int bk_dist_init(int *argc, char ***argv, bool require_mpi);
/* MPI_Finalize when bk_dist_init started MPI; then a world of one again. */
int bk_dist_finalize(void);
int bk_dist_rank(void);       /* 0 .. world size - 1 (0 in a world of one) */
int bk_dist_world_size(void); /* 1 without MPI */
bool bk_dist_mpi_built(void); /* was this library built with MPI? */
int bk_dist_barrier(void);
/* Every rank's `bytes` bytes, in rank order, into all (world size * bytes). */
int bk_dist_allgather(const void *mine, void *all, size_t bytes);
/* Ends every rank of the job with this status (MPI_Abort); returns only without MPI. */
void bk_dist_abort(int status);
/* Checks that every rank built the same model (the names and shapes of its parameters and
 * buffers, and desc, e.g. a canonical model spec; NULL is fine) and copies rank 0's
 * parameters and buffers to every rank. On a mismatch every rank returns -1 with an error
 * naming rank 0's model and the first rank whose model differs. */
int bk_dist_broadcast_module(bk_module *m, const char *desc);

/* How bk_ddp_reduce sums. DETERMINISTIC: each element is ((g_0 + g_1) + ... + g_{P-1}) /
 * divisor with g_r rank r's gradient, whatever MPI's algorithms and the machines: the
 * same float operations as P micro-batches accumulated with bk_ddp_accumulate in one
 * process (MPI_Alltoall, sums in rank order, MPI_Allgather). FAST: MPI_Allreduce in place,
 * whose order of sums MPI picks: not bitwise reproducible across runs or world sizes. */
typedef enum bk_dist_mode { BK_DIST_DETERMINISTIC = 0, BK_DIST_FAST, BK_DIST_MODE_COUNT } bk_dist_mode;

/* A model's trainable parameters' gradients as one flat buffer (named_parameters order,
 * reduced in buckets of at most 4M floats per rank), for summing across ranks or
 * micro-batches. bk_ddp_new broadcasts the model (bk_dist_broadcast_module); m must
 * outlive it. After a reduce or finish every trainable parameter has a gradient (zero where
 * none had one). */
typedef struct bk_ddp bk_ddp;
bk_ddp *bk_ddp_new(bk_module *m, const char *desc, bk_dist_mode mode);
void bk_ddp_free(bk_ddp *d);
/* Every rank's current gradients summed (in rank order, for DETERMINISTIC) and divided by
 * divisor (> 0), written back into every rank's gradients: the world size for the mean of
 * per-rank mean losses; the global batch size for per-rank SUM losses. */
int bk_ddp_reduce(bk_ddp *d, float divisor);
/* In one process: adds the current gradients to an accumulator (the first call after a
 * finish copies them), after each micro-batch's backward from zeroed gradients; finish
 * writes accumulator / divisor into the gradients. P micro-batches accumulated give the
 * same bits as P ranks' bk_ddp_reduce with the same divisor. */
int bk_ddp_accumulate(bk_ddp *d);
int bk_ddp_finish(bk_ddp *d, float divisor);
/* Rank 0's buffers (BatchNorm's running statistics) to every rank. */
int bk_ddp_sync_buffers(bk_ddp *d);
/* A copy of the buffers, and putting it back: in one process, the mirror of sync_buffers
 * (keep micro-batch 0's running statistics as the ranks keep rank 0's). */
int bk_ddp_save_buffers(bk_ddp *d);
int bk_ddp_restore_buffers(bk_ddp *d);
int64_t bk_ddp_numel(const bk_ddp *d);       /* floats reduced per step; -1 for NULL */
double bk_ddp_comm_seconds(const bk_ddp *d); /* time in reduce and sync_buffers; NaN for NULL */

#ifdef __cplusplus
}
#endif
#endif /* BRICK_H */
