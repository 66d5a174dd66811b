/* arena.c - the per-step arena that owns a step's intermediate tensors and autograd tape.
 *
 * Memory is bump-allocated from chunks. bk_arena_reset() marks every tensor made since
 * the last reset as released (so a stale pointer is reported, not silently used, until
 * its memory is handed out again) and rewinds. When a step needed more than one chunk,
 * reset replaces them with one chunk as large as the high-water mark, so from the second
 * identical step on the arena makes no allocation at all.
 */
#include "internal.h"

#include <stdlib.h>

#define ARENA_ALIGN 64
#define ARENA_MIN_CHUNK ((size_t)1 << 20)

typedef struct chunk {
    struct chunk *next;
    size_t size, used;
    /* data follows, aligned */
} chunk;

struct bk_arena {
    chunk *head;       /* chunk being filled */
    chunk *full;       /* chunks filled since the last reset */
    size_t used;       /* bytes handed out since the last reset */
    size_t high_water; /* max of used over the arena's life */
    uint64_t mallocs;
    bk_tensor **tensors; /* tensors handed out since the last reset (for poisoning) */
    size_t n_tensors, cap_tensors;
};

static size_t chunk_header(void) { return (sizeof(chunk) + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1); }

static chunk *chunk_new(bk_arena *a, size_t payload) {
    chunk *c = bk__aligned_alloc(ARENA_ALIGN, chunk_header() + payload);
    if (!c) return NULL;
    a->mallocs++;
    c->next = NULL;
    c->size = payload;
    c->used = 0;
    return c;
}

bk_arena *bk_arena_new(void) {
    bk_arena *a = bk__calloc(1, sizeof *a);
    if (!a) bk_set_error("arena: out of memory");
    return a;
}

/* The calling thread's arenas (see bk_arena_current below). */
static _Thread_local bk_arena *default_arena;
static _Thread_local bk_arena *current_arena;

void bk_arena_free(bk_arena *a) {
    if (!a) return;
    /* Never leave the thread pointing at freed memory: freeing the current arena switches
     * back to the default one. */
    if (a == current_arena) current_arena = NULL;
    if (a == default_arena) default_arena = NULL;
    bk_arena_reset(a);
    for (chunk *c = a->head, *n; c; c = n) {
        n = c->next;
        bk__free(c);
    }
    bk__free(a->tensors);
    bk__free(a);
}

/* The slow path of arena_alloc: a new chunk (at least twice the current one, so a growing
 * step makes few), the current one retired to the full list. need is already rounded. */
static void *arena_grow(bk_arena *a, size_t need) {
    chunk *c = a->head;
    size_t payload = need > ARENA_MIN_CHUNK ? need : ARENA_MIN_CHUNK;
    if (c && payload < c->size * 2 && need <= c->size * 2) payload = c->size * 2;
    chunk *nc = chunk_new(a, payload);
    if (!nc) {
        bk_set_error("arena: out of memory allocating %zu bytes", need);
        return NULL;
    }
    if (c) { /* retire the current chunk to the full list */
        c->next = a->full;
        a->full = c;
    }
    a->head = nc;
    nc->used = need;
    a->used += need;
    if (a->used > a->high_water) a->high_water = a->used;
    return (char *)nc + chunk_header();
}

/* bytes rounded up to whole ARENA_ALIGN units (at least one); 0 when too large. */
static inline size_t arena_round(size_t bytes) {
    if (bytes > SIZE_MAX / 2) return 0;
    size_t need = (bytes + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
    return need ? need : ARENA_ALIGN;
}

/* need (rounded by arena_round, nonzero) bytes: a bump of the current chunk, which every
 * op's output, node and gradient takes, so it stays a few instructions. */
static inline void *arena_bump(bk_arena *a, size_t need) {
    chunk *c = a->head;
    if (!c || c->size - c->used < need) return arena_grow(a, need);
    void *p = (char *)c + chunk_header() + c->used;
    c->used += need;
    a->used += need;
    if (a->used > a->high_water) a->high_water = a->used;
    return p;
}

void *bk__arena_alloc(bk_arena *a, size_t bytes) {
    size_t need = arena_round(bytes);
    if (!need) {
        bk_set_error("arena: allocation of %zu bytes is too large", bytes);
        return NULL;
    }
    return arena_bump(a, need);
}

static bool track_tensor(bk_arena *a, bk_tensor *t) {
    if (a->n_tensors == a->cap_tensors) {
        size_t cap = a->cap_tensors ? a->cap_tensors * 2 : 256;
        bk_tensor **nt = bk__realloc(a->tensors, cap * sizeof *nt);
        if (!nt) {
            bk_set_error("arena: out of memory");
            return false;
        }
        a->mallocs++;
        a->tensors = nt;
        a->cap_tensors = cap;
    }
    a->tensors[a->n_tensors++] = t;
    return true;
}

void bk_arena_reset(bk_arena *a) {
    if (!a) a = bk_arena_current();
    if (!a) return;
    for (size_t i = 0; i < a->n_tensors; i++) a->tensors[i]->magic = BK_TENSOR_DEAD;
    a->n_tensors = 0;
    if (a->full) {
        /* The step outgrew one chunk: replace them all by one of the high-water size. */
        for (chunk *c = a->full, *n; c; c = n) {
            n = c->next;
            bk__free(c);
        }
        a->full = NULL;
        bk__free(a->head);
        a->head = chunk_new(a, a->high_water > ARENA_MIN_CHUNK ? a->high_water : ARENA_MIN_CHUNK);
        /* On failure head stays NULL and the next allocation retries. */
    } else if (a->head) {
        a->head->used = 0;
    }
    a->used = 0;
}

/* NULL means the calling thread's current arena, as for bk_arena_reset. */
size_t bk_arena_bytes_used(const bk_arena *a) {
    if (!a) a = bk_arena_current();
    return a ? a->used : 0;
}
size_t bk_arena_bytes_reserved(const bk_arena *a) {
    if (!a) a = bk_arena_current();
    return a ? a->high_water : 0;
}
uint64_t bk_arena_allocations(const bk_arena *a) {
    if (!a) a = bk_arena_current();
    return a ? a->mallocs : 0;
}

/* ---- per-thread current arena ---------------------------------------------------------- */

bk_arena *bk_arena_current(void) {
    if (current_arena) return current_arena;
    if (!default_arena) default_arena = bk_arena_new();
    return default_arena;
}

bk_arena *bk_arena_use(bk_arena *a) {
    bk_arena *prev = current_arena ? current_arena : default_arena;
    current_arena = a;
    return prev;
}

/* ---- per-thread scratch buffers ---------------------------------------------------------
 * Large temporaries that an op needs only while it runs (im2col columns): kept per thread
 * and grown as needed, so they are neither leaked into the arena nor reallocated per step. */

#define SCRATCH_SLOTS 4
static _Thread_local float *scratch[SCRATCH_SLOTS];
static _Thread_local size_t scratch_cap[SCRATCH_SLOTS];

float *bk__scratch(int slot, size_t count) {
    if (slot < 0 || slot >= SCRATCH_SLOTS) return NULL;
    if (count > scratch_cap[slot]) {
        bk__free(scratch[slot]);
        scratch_cap[slot] = 0;
        scratch[slot] = count > SIZE_MAX / sizeof(float)
                            ? NULL
                            : bk__aligned_alloc(ARENA_ALIGN,
                                                ((count * sizeof(float) + ARENA_ALIGN - 1) / ARENA_ALIGN) *
                                                    ARENA_ALIGN);
        if (!scratch[slot]) {
            bk_set_error("scratch: out of memory for %zu floats", count);
            return NULL;
        }
        scratch_cap[slot] = count;
    }
    return scratch[slot];
}

void bk_thread_cleanup(void) {
    for (int i = 0; i < SCRATCH_SLOTS; i++) {
        bk__free(scratch[i]);
        scratch[i] = NULL;
        scratch_cap[i] = 0;
    }
    if (current_arena == default_arena) current_arena = NULL;
    bk_arena_free(default_arena);
    default_arena = NULL;
}

/* ---- tensors in the arena ---------------------------------------------------------------- */

/* A live arena tensor for a valid shape, with room for `data_bytes` of data
 * right after it (data_bytes 0: no data, a view). Every field is written once rather than
 * memset first: `rep stos` on the 200-byte header was 70% of the header's cost, 12% of a
 * tiny network's step. */
static bk_tensor *tensor_header(bk_arena *a, int ndim, const int64_t *shape, size_t data_bytes) {
    size_t head = arena_round(sizeof(bk_tensor));
    size_t need = data_bytes ? arena_round(data_bytes) : 0;
    if (data_bytes && (!need || need > SIZE_MAX / 2 - head)) {
        bk_set_error("arena: allocation of %zu bytes is too large", data_bytes);
        return NULL;
    }
    bk_tensor *t = arena_bump(a, head + need);
    if (!t) return NULL;
    if (!track_tensor(a, t)) return NULL;
    t->magic = BK_TENSOR_MAGIC;
    t->ndim = ndim;
    int64_t stride = 1; /* contiguous row-major strides, as bk__set_contiguous */
    for (int i = BK_MAX_DIMS - 1; i >= ndim; i--) {
        t->shape[i] = 0;
        t->stride[i] = 0;
    }
    for (int i = ndim - 1; i >= 0; i--) {
        t->shape[i] = shape[i];
        t->stride[i] = stride;
        if (!bk__mul_ok(stride, shape[i], &stride)) stride = INT64_MAX; /* (0, 2^62, 78) */
    }
    t->numel = stride;
    t->data = need ? (float *)((char *)t + head) : NULL;
    t->grad = NULL;
    t->node = NULL;
    t->arena = a;
    t->requires_grad = false;
    t->is_param = false;
    t->owns_data = false;
    t->hooks = NULL;
    return t;
}

bk_tensor *bk__tensor_arena(int ndim, const int64_t *shape, bool zero) {
    int64_t numel;
    if (!bk__shape_ok("tensor", ndim, shape, &numel)) return NULL;
    if ((uint64_t)numel > SIZE_MAX / sizeof(float)) {
        bk_set_error("tensor: %lld elements do not fit in memory", (long long)numel);
        return NULL;
    }
    bk_arena *a = bk_arena_current();
    if (!a) return NULL;
    /* (a zero-element tensor still gets a data pointer: one unit) */
    size_t bytes = (size_t)numel * sizeof(float);
    bk_tensor *t = tensor_header(a, ndim, shape, bytes ? bytes : 1);
    if (t && zero) memset(t->data, 0, bytes);
    return t;
}

bk_tensor *bk__tensor_view(const bk_tensor *src, int ndim, const int64_t *shape) {
    bk_arena *a = bk_arena_current();
    if (!a) return NULL;
    bk_tensor *t = tensor_header(a, ndim, shape, 0);
    if (!t) return NULL;
    t->data = src->data;
    return t;
}

/* The gradient buffer of t; a new one is zero-filled unless fresh is given, when an arena
 * tensor's new buffer is left as it is and *fresh says so (the caller then writes every
 * element: a memset per gradient was 6 to 8 % of a ResNet or LeNet step, in the thread that
 * runs the backward alone). */
static bk_tensor *grad_get(bk_tensor *t, bool *fresh) {
    if (fresh) *fresh = false;
    if (t->grad) return t->grad;
    bk_tensor *g;
    if (t->arena) {
        /* The gradient lives where its tensor lives, so both are released together. */
        size_t bytes = (size_t)t->numel * sizeof(float);
        g = tensor_header(t->arena, t->ndim, t->shape, bytes ? bytes : 1);
        if (!g) return NULL;
        if (fresh) *fresh = true;
        else memset(g->data, 0, bytes);
    } else {
        g = bk_tensor_new(t->ndim, t->shape);
        if (!g) return NULL;
    }
    t->grad = g;
    return g;
}

bk_tensor *bk__grad_for(bk_tensor *t) { return grad_get(t, NULL); }

bk_tensor *bk__grad_for_write(bk_tensor *t, bool *fresh) { return grad_get(t, fresh); }
