/* alloc.c - the one door through which brick's own code reaches the heap.
 *
 * Every malloc, calloc, realloc, aligned_alloc, strdup and free in src/ goes through the
 * bk__ functions below (declared in internal.h), which today only forward to the C
 * library. The door exists so that tests can close it: bk__alloc_fail_after(k) makes the
 * calling thread's allocation number k (0-based, counted from that call) fail once, as a
 * real out-of-memory would, which is how tests/test_faults.c proves that every failure
 * point of checkpoint loading and saving, the readers and a training step reports an
 * error, leaks nothing and changes nothing. bk__alloc_limit(bytes) refuses single
 * allocations above a size, which the fuzz targets use so that a hostile input that asks
 * for a huge model or tensor exercises the out-of-memory path instead of the machine's
 * memory.
 *
 * Both hooks are per thread (thread-local counters), so a test that injects faults in one
 * thread does not disturb another; allocations made by other libraries (zlib inside
 * gzread, the C library inside fopen, OpenBLAS) do not pass here and are not counted.
 * bk__alloc_live counts the blocks alive over all threads, for the tests' leak checks.
 * The cost when no hook is set: a few thread-local loads and compares and one relaxed
 * atomic add per allocation, nothing next to malloc itself.
 */
#include "internal.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>

static _Thread_local long fail_countdown = -1; /* allocations to let through; -1: off */
static _Thread_local long failures;            /* faults injected so far in this thread */
static _Thread_local unsigned long long calls; /* allocations requested in this thread */
static _Thread_local size_t size_limit;        /* 0: none */
/* Blocks allocated and not yet freed, over all threads (a block may be freed by another
 * thread than the one that made it): the tests' leak check in builds without ASan. */
static atomic_long live;

/* Counts a block handed out (p not NULL). Returns p. */
static void *born(void *p) {
    if (p) atomic_fetch_add_explicit(&live, 1, memory_order_relaxed);
    return p;
}

/* Should this allocation of `bytes` fail? Counts it either way. */
static bool refuse(size_t bytes) {
    calls++;
    if (size_limit && bytes > size_limit) return true;
    if (fail_countdown < 0) return false;
    if (fail_countdown > 0) {
        fail_countdown--;
        return false;
    }
    fail_countdown = -1; /* one fault per arming: the code after it runs as it would */
    failures++;
    return true;
}

void bk__alloc_fail_after(long k) { fail_countdown = k < 0 ? -1 : k; }

long bk__alloc_failures(void) { return failures; }

unsigned long long bk__alloc_calls(void) { return calls; }

void bk__alloc_limit(size_t bytes) { size_limit = bytes; }

long bk__alloc_live(void) { return atomic_load_explicit(&live, memory_order_relaxed); }

void *bk__malloc(size_t bytes) {
    if (refuse(bytes)) {
        errno = ENOMEM;
        return NULL;
    }
    return born(malloc(bytes));
}

void *bk__calloc(size_t count, size_t size) {
    /* calloc itself checks count * size for overflow; the limit needs the product. */
    size_t bytes = size && count > SIZE_MAX / size ? SIZE_MAX : count * size;
    if (refuse(bytes)) {
        errno = ENOMEM;
        return NULL;
    }
    return born(calloc(count, size));
}

void *bk__realloc(void *p, size_t bytes) {
    if (refuse(bytes)) { /* as a failing realloc: p is untouched and still owned */
        errno = ENOMEM;
        return NULL;
    }
    void *q = realloc(p, bytes);
    if (!p) return born(q);
    if (!q && bytes == 0) atomic_fetch_sub_explicit(&live, 1, memory_order_relaxed); /* freed p */
    return q;
}

void *bk__aligned_alloc(size_t alignment, size_t bytes) {
    if (refuse(bytes)) {
        errno = ENOMEM;
        return NULL;
    }
    return born(aligned_alloc(alignment, bytes));
}

char *bk__strdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = bk__malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

void bk__free(void *p) {
    if (p) atomic_fetch_sub_explicit(&live, 1, memory_order_relaxed);
    free(p);
}
