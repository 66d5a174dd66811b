/* brick/tensor.h - part of brick.h: errors, threads, random numbers, tensors and arenas.
 * Include <brick.h>, which includes every part in order and states the ownership and
 * error rules once at its top. */
#ifndef BRICK_PART_TENSOR_H
#define BRICK_PART_TENSOR_H

#ifndef BRICK_H
#error "include <brick.h>, not <brick/tensor.h>"
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
/* Makes OpenMP's idle threads sleep at once (OMP_WAIT_POLICY=PASSIVE) unless the user chose
 * a policy (OMP_WAIT_POLICY or GOMP_SPINCOUNT set). Call it first thing in main with main's
 * argv. libgomp's idle threads otherwise spin about a millisecond after every parallel
 * region, and on a machine shared with other work a 2-thread training ran 6 to 9 times
 * slower (docs/performance.md, "OpenMP's wait policy"). libgomp reads the policy once,
 * when it is loaded, before main, and has no call to change it; nothing a library runs by
 * itself comes in time (a constructor runs after libgomp's; a .preinit_array function
 * before libc's, which resets the environment), so this sets the variable and executes
 * the program again (Linux: /proc/self/exe, the same argv). Returns 0 without exec when
 * there is nothing to do (a policy set, a build without OpenMP or not on Linux, under
 * valgrind, whose child would run natively); does not return when the exec works; -1 with
 * an error when argv is NULL or the exec fails (the program goes on with libgomp's
 * default policy). */
int bk_passive_wait_policy(char **argv);
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
    struct bk_tensor *grad;        /* NULL until a backward reaches it */
    bk_node *node;                 /* the op that produced it (NULL for leaves) */
    bk_arena *arena;               /* NULL for owned tensors (parameters, bk_tensor_new) */
    bool requires_grad;            /* gradient wanted for this tensor */
    bool is_param;                 /* owned by a module as a parameter or buffer */
    bool owns_data;                /* heap tensors: data is freed with the tensor */
    struct bk_tensor_hooks *hooks; /* gradient hooks (bk_tensor_register_hook); NULL without */
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

#endif /* BRICK_PART_TENSOR_H */
