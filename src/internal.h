/* internal.h - brick's private interfaces. Not installed; not part of the API.
 *
 * Naming: public symbols are bk_*, library-internal (cross-file) ones bk__*, and
 * file-local ones are static without a prefix.
 */
#ifndef BRICK_INTERNAL_H
#define BRICK_INTERNAL_H

#include "brick.h"

#include "core/buf.h"

#include <stdarg.h>
#include <string.h>

#define BK_TENSOR_DEAD 0x64616544u /* "Dead": an arena tensor after its arena was reset */

/* ---- errors -------------------------------------------------------------------------- */
/* True when the thread has an unread error (bk_clear_error resets it). */
bool bk__error_pending(void);
/* Records "<who>: <path>: <message>", the form of every file reader's and writer's
 * messages. Always returns false, for `return bk__file_error(...)`. */
bool bk__file_error(const char *who, const char *path, const char *fmt, ...) BK_PRINTF_FORMAT(3, 4);
/* Prefixes the current error message with "prefix: " (used to add context). */
void bk__error_prefix(const char *fmt, ...) BK_PRINTF_FORMAT(1, 2);
/* For public functions taking a block: false, with "<who>: module is NULL" or "<who>: not
 * a live module (...)", unless m is a block made by bk_module_new and not yet freed (as far
 * as can be told without a magic number: a class and a positive reference count, which
 * zeroed or freed-and-reused memory does not have). */
bool bk__module_ok(const bk_module *m, const char *who);
/* nn/hooks.c: bk_forward's hooks (x or y itself when m has none; NULL on failure), and
 * bk_module_free's clean-up. */
bk_tensor *bk__forward_pre_hooks(bk_module *m, bk_tensor *x);
bk_tensor *bk__forward_hooks(bk_module *m, bk_tensor *x, bk_tensor *y);
void bk__hooks_free(bk_module *m);
/* nn/hooks.c: bk_forward's part of the backward hooks: the input to give the block's
 * forward (x itself, or x through the identity op that calls m's backward hooks; *call
 * gets the record, NULL when m has none or grad mode is off), then the output to return
 * (y through the identity op that catches grad_output). NULL on failure. */
struct bk__backward_call;
bk_tensor *bk__backward_hooks_input(bk_module *m, bk_tensor *x, struct bk__backward_call **call);
bk_tensor *bk__backward_hooks_output(struct bk__backward_call *c, bk_tensor *y);
/* nn/module.c: a lazy layer's first forward (torch's LazyModuleMixin). init registers and
 * initialises m's parameters from x's shape (false with an error: x cannot give the size,
 * or out of memory); then m becomes a block of class cls, not lazy any more, and runs cls's
 * forward. On failure whatever init registered is dropped and m stays lazy. */
bk_tensor *bk__lazy_forward(bk_module *m, bk_tensor *x, bool (*init)(bk_module *m, const bk_tensor *x),
                            const bk_module_class *cls);
/* For public functions taking a data set (a public struct, so possibly filled in by hand):
 * false, with "<who>: malformed data set (...)", unless its fields are consistent (ranks,
 * shape product = sample_numel, x present, sizes that fit in memory). */
bool bk__dataset_ok(const bk_dataset *ds, const char *who);

/* ---- text (core/escape.c) ------------------------------------------------------------ */
/* The length (1..4) of the valid UTF-8 sequence at s[0..n), with its code point in *cp;
 * 0 when s does not start with one (overlong, surrogate, past U+10FFFF, cut short) or n is
 * 0. */
size_t bk__utf8_next(const unsigned char *s, size_t n, uint32_t *cp);

/* ---- files (io/file_read.c, io/atomic_file.c) ----------------------------------------- */
/* bk_file_open_read for brick's own readers, which word their messages themselves: NULL
 * with the problem ("cannot open: <reason>", "not a regular file (a FIFO)") in why. */
FILE *bk__open_regular(const char *path, char *why, size_t why_size);

/* A file being replaced atomically (bk_file_write_atomic, which is open + fwrite +
 * commit): bk__atomic_open gives the stream of a fresh temporary file next to path;
 * bk__atomic_commit flushes, fsyncs and renames it over path, then removes the leftovers
 * of writers of path that died. On failure each sets "<who>: <path>: cannot <step>
 * (<temporary file>): <reason>" (who may be NULL), removes the temporary file and leaves
 * path as it was. A caller whose own writes fail calls bk__atomic_fail(a, "write") (errno
 * says why). After a failure or a commit there is nothing left to free. */
typedef struct bk__atomic_file {
    const char *path, *who; /* borrowed */
    char *tmp;              /* "<path>.tmp.XXXXXX" */
    int fd;                 /* holds the temporary file's flock until after the rename */
    FILE *f;                /* writes through a duplicate of fd */
    int err;                /* after a failure: its errno */
} bk__atomic_file;
FILE *bk__atomic_open(bk__atomic_file *a, const char *path, const char *who);
int bk__atomic_commit(bk__atomic_file *a);
void bk__atomic_fail(bk__atomic_file *a, const char *step);

/* The path a loaded file was read from (for messages). Do not free. */
const char *bk__safetensors_path(const bk_safetensors *st);
/* Matching wanted tensors against a loaded file before a load copies anything (state
 * dicts, checkpoints: a failed load changes nothing). For each of the n wanted names[i]
 * with the shape of want[i]: found[i] is the file's tensor of that name and shape, or NULL
 * with the name added to r->missing or (another shape) "<name> <file shape> in file vs
 * <shape><vs>" to r->mismatch. Every file tensor that no name asked for is added to
 * r->unexpected, except those whose name starts with skip_prefix (may be NULL). The
 * lists are ", "-separated (bk__str_item); check their oom flags. 0, or -1 with an error
 * (out of memory). Free the report with bk__st_report_free (also after a failure). */
typedef struct bk__st_report {
    bk__str missing, unexpected, mismatch;
    int n_missing, n_unexpected, n_mismatch;
} bk__st_report;
int bk__safetensors_match(const bk_safetensors *st, int n, const char *const *names, bk_tensor *const *want,
                          const char *vs, const char *skip_prefix, bk_tensor **found, bk__st_report *r);
void bk__st_report_free(bk__st_report *r);

/* ---- loops ---------------------------------------------------------------------------- */
/* for (i = 0; i < n; i++) { BODY }, vectorised (`omp simd`: GCC -O2 alone does not vectorise
 * loops of unknown length); on the threads, in one contiguous chunk each, when n >= min.
 * BODY must not depend on other elements (no sums across i), so that every element is
 * computed the same way whatever the split: results do not depend on the thread count.
 * Used by the element-wise ops, the optimizers' updates and fills. */
#define BK_MAP(n, min, ...)                                                                      \
    do {                                                                                         \
        int64_t n_ = (n);                                                                        \
        if (n_ < (min)) {                                                                        \
            _Pragma("omp simd") for (int64_t i = 0; i < n_; i++) { __VA_ARGS__; }                \
        } else {                                                                                 \
            _Pragma("omp parallel for simd schedule(static)") for (int64_t i = 0; i < n_; i++) { \
                __VA_ARGS__;                                                                     \
            }                                                                                    \
        }                                                                                        \
    } while (0)

/* ---- tensors given by a caller (tensor/tensor.c) ----------------------------------------- */
/* For NULL propagation: if any of the n tensors is NULL or released, records
 * "<op>: input <i> is NULL" (unless an error is already pending) and returns false.
 * Inline, since every op and block checks its inputs; the message is written out of line
 * (bk__inputs_report). */
bool bk__inputs_report(const char *op, int n, bk_tensor *const *ts);
static inline bool bk__inputs_ok(const char *op, int n, bk_tensor *const *ts) {
    for (int i = 0; i < n; i++)
        if (!ts[i] || ts[i]->magic != BK_TENSOR_MAGIC) return bk__inputs_report(op, n, ts);
    return true;
}

/* ---- sizes --------------------------------------------------------------------------- */
/* a*b into *out; false on overflow or negative operands. Inline, and with the compiler's
 * overflow check where there is one: every tensor an op makes checks its shape with it, and
 * the portable check's division (INT64_MAX / a) was 9% of a tiny network's step. */
static inline bool bk__mul_ok(int64_t a, int64_t b, int64_t *out) {
    if (a < 0 || b < 0) return false;
#if defined(__GNUC__)
    int64_t r;
    if (__builtin_mul_overflow(a, b, &r)) return false;
    *out = r; /* (as below: *out untouched on failure) */
    return true;
#else
    if (a != 0 && b > INT64_MAX / a) return false;
    *out = a * b;
    return true;
#endif
}
/* Validates a shape (0 <= ndim <= BK_MAX_DIMS, dims >= 0, numel fits) for `who`. */
bool bk__shape_ok(const char *who, int ndim, const int64_t *shape, int64_t *numel);
/* Formats a raw shape as "(2, 20)". */
char *bk__shape_fmt(int ndim, const int64_t *shape, char *buf, size_t n);
/* Normalises a possibly negative dim for a rank-ndim tensor; -1 (and an error) if out of
 * range. */
int bk__dim(const char *who, int dim, int ndim);
/* Sets contiguous row-major strides and numel. */
void bk__set_contiguous(bk_tensor *t);

/* ---- the heap (core/alloc.c) ---------------------------------------------------------
 * Every allocation in src/ goes through these, never malloc & co. directly, so that tests
 * can make the k-th one fail. Same contracts as the C functions they wrap; memory from
 * any of them is released with bk__free. */
void *bk__malloc(size_t bytes);
void *bk__calloc(size_t count, size_t size);
void *bk__realloc(void *p, size_t bytes);
void *bk__aligned_alloc(size_t alignment, size_t bytes);
char *bk__strdup(const char *s);
void bk__free(void *p);
/* Test hooks, per thread. bk__alloc_fail_after(k): of the allocations from now on, the
 * one numbered k (0-based) fails, once; -1 disarms. bk__alloc_failures: faults injected
 * so far (a sweep over k is done when arming k injects none). bk__alloc_calls: allocations
 * requested so far. bk__alloc_limit(bytes): every single allocation above bytes fails
 * (0 = no limit; the fuzz targets use it). bk__alloc_live: blocks allocated and not yet
 * freed, all threads together (a leak check that needs no sanitizer). */
void bk__alloc_fail_after(long k);
long bk__alloc_failures(void);
unsigned long long bk__alloc_calls(void);
void bk__alloc_limit(size_t bytes);
long bk__alloc_live(void);

/* ---- arenas -------------------------------------------------------------------------- */
/* 64-byte aligned bytes from the arena; NULL (with an error) on out of memory. */
void *bk__arena_alloc(bk_arena *a, size_t bytes);
/* A tensor header + data in the current arena. zero: fill with 0. */
bk_tensor *bk__tensor_arena(int ndim, const int64_t *shape, bool zero);
/* A tensor header in the current arena that shares `data` (views). */
bk_tensor *bk__tensor_view(const bk_tensor *src, int ndim, const int64_t *shape);
/* A zero-filled gradient tensor for t: in t's arena, or on the heap for owned tensors. */
bk_tensor *bk__grad_for(bk_tensor *t);
/* The same for a caller that writes the whole gradient: when t had none yet, *fresh = true
 * and the new buffer is NOT zero-filled (every element must be assigned, not added to);
 * else *fresh = false and the caller adds into it as usual. */
bk_tensor *bk__grad_for_write(bk_tensor *t, bool *fresh);

/* A per-thread temporary of count floats (slot 0..3), valid until the next call with the
 * same slot; freed by bk_thread_cleanup. NULL (with an error) on out of memory. */
float *bk__scratch(int slot, size_t count);

/* ---- autograd ------------------------------------------------------------------------ */
struct bk_node {
    const bk_op *op;
    bk_tensor *out;
    int n_inputs;
    bk_tensor **inputs;
    void *params;
    uint32_t visit;    /* backward: visited stamp */
    bool released;     /* its graph was consumed by a backward without retain_graph */
    const char *block; /* anomaly mode: the block path it ran in (arena), else NULL */
};
/* A backward function calls this when it cannot finish (out of memory), after setting
 * the error; bk_backward then fails instead of returning partial gradients. */
void bk__backward_fail(void);
/* bk_node_grad_input for a backward that writes all of input i's gradient: *fresh = true
 * when the buffer is new and not zero-filled (assign every element), false when it already
 * holds other consumers' gradients (add into it). See bk__grad_for_write. */
bk_tensor *bk__node_grad_input_write(bk_node *n, int i, bool *fresh);
/* ---- tensor gradient hooks (autograd/tensor_hooks.c) -------------------------------------- */
/* Runs t's hooks on its complete gradient t->grad (an interior tensor, before its op's
 * backward), writing a replacement into t->grad. false with an error (a replacement of
 * another shape). */
bool bk__tensor_hooks_run(bk_tensor *t);
/* Leaves with hooks among the inputs of order[0..n) (none unless a hook was ever
 * registered in this thread), each with a copy of its gradient before this backward:
 * bk__leaf_hooks_begin before the backward's loop, bk__leaf_hooks_end after it (which
 * runs the hooks on each leaf's new contribution and adds what they return). false with
 * an error. */
typedef struct bk__leaf_hooks bk__leaf_hooks;
bool bk__leaf_hooks_begin(bk_arena *a, bk_node **order, int64_t n, bk__leaf_hooks **out);
bool bk__leaf_hooks_end(bk__leaf_hooks *lh);
/* A heap tensor's hooks, freed with it. */
void bk__tensor_hooks_free(bk_tensor *t);

/* Should an op with these inputs record history? (grad mode on and any input needs it) */
bool bk__needs_grad(int n, bk_tensor *const *ts);

/* ---- anomaly mode (autograd/anomaly.c) ------------------------------------------------ */
/* Anomaly mode only (bk_is_detect_anomaly): false, with the error set, when out holds a
 * NaN or Inf (blaming an input that already held one). */
bool bk__anomaly_check_output(const bk_op *op, const bk_tensor *out, int n_inputs, bk_tensor *const *inputs);
/* Anomaly mode only: false, with the error set, when a gradient of n's inputs holds a NaN
 * or Inf after n's backward ran. */
bool bk__anomaly_check_grads(const bk_node *n);
/* The current location copied into arena a for a node ("" outside any block), or NULL
 * if out of memory. Called in anomaly mode only. */
const char *bk__anomaly_block_copy(bk_arena *a);
/* Where an op runs, for anomaly messages. Autograd knows nothing of blocks: the layer
 * above (nn/block_stack.c) installs these hooks on a thread; without them every op runs
 * "outside any block". Each writes a NUL-terminated string of at most n bytes. */
typedef struct bk__where_hooks {
    /* the running location ("Sequential/1:Linear"), "" outside any block */
    void (*path)(char *buf, size_t n);
    /* "parameter 'weight' of <path>" when t belongs to the innermost location, else "" */
    void (*owner)(const bk_tensor *t, char *buf, size_t n);
} bk__where_hooks;
void bk__anomaly_set_where(const bk__where_hooks *hooks);

/* ---- the block stack (nn/block_stack.c) ------------------------------------------------- */
/* bk_forward brackets a block's forward with these (the stack names blocks in anomaly
 * messages). */
void bk__block_push(const bk_module *m);
void bk__block_pop(void);

/* ---- layers used inside other layers (src/nn) ------------------------------------------ */
/* MultiheadAttention's out_proj (nn/linear.c): Linear(E, E) under torch's class name
 * NonDynamicallyQuantizableLinear, its weight initialised as Linear's, its bias zero. */
bk_module *bk__nn_out_proj(int64_t E, bool bias);

/* ---- interpolation (ops/upsample.c) ----------------------------------------------------- */
/* The checks of bk_interpolate's settings alone (mode, size or scale factor), for nn.Upsample's
 * constructor: false with "<who>: ..." */
bool bk__interp_opts_ok(const char *who, bk_interp_opts o);

/* ---- per-channel affine (ops/group_norm.c) ------------------------------------------------ */
/* y (N, C, *) * weight[c] + bias[c] by broadcasting ops (GroupNorm's, InstanceNorm's and
 * BatchNorm's affine step where the normalisation ran without one). weight NULL: y itself;
 * bias may be NULL. */
bk_tensor *bk__channel_affine(bk_tensor *y, bk_tensor *weight, bk_tensor *bias);

/* ---- norm blocks' options (nn/batchnorm.c; InstanceNorm shares them) ------------------------ */
/* torch's _NormBase extra_repr. */
void bk__norm_repr(int64_t num_features, const bk_norm_opts *o, char *buf, size_t n);
/* num_features, eps and momentum checked for `who`: false with an error. */
bool bk__norm_opts_ok(const char *who, int64_t num_features, const bk_norm_opts *o);
/* Registers weight, bias (affine) and running_mean, running_var, num_batches_tracked
 * (track_running_stats) on m, initialised as torch does; false on failure (free m). */
bool bk__norm_register(bk_module *m, int64_t C, const bk_norm_opts *o, bk_tensor **weight, bk_tensor **bias,
                       bk_tensor **running_mean, bk_tensor **running_var, bk_tensor **num_batches_tracked);

/* ---- fused batch norm (ops/norm.c, nn/batchnorm.c) ----------------------------------------
 * bk_batch_norm with a residual added and a ReLU applied in the same pass, one recorded node:
 * y = relu(batch_norm(x) + residual), the same bits as bk_relu(bk_add(bk_batch_norm(...),
 * residual)) forward and backward, two to four passes over memory fewer. residual may be
 * NULL; it must have x's shape and not be x itself (error otherwise). */
bk_tensor *bk__batch_norm_act(bk_tensor *x, bk_tensor *running_mean, bk_tensor *running_var,
                              bk_tensor *weight, bk_tensor *bias, bool training, float momentum, float eps,
                              bk_tensor *residual, bool relu);
/* relu(bn(x) + residual) for a BatchNorm1d/2d module bn (residual may be NULL), fused when
 * nothing would see bn's own output: bn has no hooks and x is what bn expects; otherwise
 * bk_relu(bk_add(bk_forward(bn, x), residual)), whose errors name bn as bk_forward does. */
bk_tensor *bk__batch_norm_relu(bk_module *bn, bk_tensor *x, bk_tensor *residual);

/* ---- ops y = f(x, w[, b]) (linear, conv2d, batch_norm, layer_norm) --------------------- */
/* For their backward: the inputs x and w, dL/dy, and where to add the gradients, dx, dw and
 * db, each NULL when not wanted (db also when there is no bias). */
typedef struct bk__xwb {
    const bk_tensor *x, *w;
    bk_tensor *dx, *dw, *db;
    const float *dy;
} bk__xwb;
static inline bk__xwb bk__xwb_grads(bk_node *n) {
    return (bk__xwb){bk_node_input(n, 0),
                     bk_node_input(n, 1),
                     bk_node_grad_input(n, 0),
                     bk_node_grad_input(n, 1),
                     bk_node_num_inputs(n) > 2 ? bk_node_grad_input(n, 2) : NULL,
                     bk_node_grad_output(n)->data};
}

/* ---- the compute backend --------------------------------------------------------------
 * Every heavy kernel goes through this table so that a BLAS, threaded or GPU backend can
 * replace it without touching the ops. Matrices are row-major.
 *   C = alpha * op(A) @ op(B) + beta * C, op(X) = X or X^T;  A: M x K, B: K x N, C: M x N
 *   (before op), lda/ldb/ldc are row strides. */
typedef struct bk_backend {
    const char *name;
    void (*sgemm)(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                  int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc);
    /* The same product, for calls from inside brick's OpenMP parallel regions (conv2d runs
     * one product per chunk of images on each thread): several may run at once, each on its
     * calling thread; outside an active parallel region it may use the threads itself. */
    void (*sgemm_serial)(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                         const float *A, int64_t lda, const float *B, int64_t ldb, float beta, float *C,
                         int64_t ldc);
} bk_backend;
const bk_backend *bk__backend(void);

/* brick's own SGEMM (src/kernels/gemm.c), with the contract of bk_backend.sgemm: packed,
 * cache-blocked, OpenMP-threaded over rows / columns of C, with an AVX2+FMA micro-kernel
 * chosen at run time when the CPU has it. Results are bitwise identical for any number of
 * threads. The backend uses it unless the build has OpenBLAS. */
void bk__sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
               int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc);
/* The same with one micro-kernel forced, for tests and benchmarks: `kernel` is a
 * BRICK_GEMM_KERNEL value, "portable" (what CPUs without AVX2 run), "avx2" or "avx512".
 * NULL when this CPU, OS or build cannot run that kernel. */
typedef void bk__sgemm_fn(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                          const float *A, int64_t lda, const float *B, int64_t ldb, float beta, float *C,
                          int64_t ldc);
bk__sgemm_fn *bk__sgemm_kernel(const char *kernel);
/* The micro-kernel bk__sgemm uses: bk_gemm_kernel() in brick.h. */

#endif /* BRICK_INTERNAL_H */
