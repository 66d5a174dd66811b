/* simd_sum.h - sums of floats in double whose order does not depend on the instruction set.
 * Internal to src/ops (norm.c's statistics, attention.c's softmax, loss.c).
 *
 * A sum is kept as 17 partial sums: element k of a row goes to partial k % 16 while a whole
 * block of 16 remains, the row's last n % 16 elements to the 17th, and the total is the 16
 * added pairwise (j + 8, j + 4, j + 2, j + 1), then the 17th. One running sum is a chain of
 * dependent additions (4 cycles each); 16 independent ones are two vectors of 8 doubles
 * (GCC's vector extension: one AVX-512 register each, or two or four smaller ones). The order
 * depends only on the shape, so results do not depend on the thread count, nor on the
 * instruction set that ran them (ISO C: no contraction into FMAs).
 *
 * The functions that use these sums are SIMD_CLONES (simd_clones.h).
 */
#ifndef BRICK_OPS_SIMD_SUM_H
#define BRICK_OPS_SIMD_SUM_H

#include "simd_clones.h"

#include <stdint.h>
#include <string.h>

#define LANES 16

/* vectors are passed only to and from functions inlined here, so their ABI is moot */
#pragma GCC diagnostic ignored "-Wpsabi"
typedef float v8f __attribute__((vector_size(32)));
typedef double v8d __attribute__((vector_size(64)));

typedef struct sumv {
    v8d lo, hi;  /* partials 0..7 and 8..15 */
    double tail; /* the rows' last n % 16 elements */
} sumv;

static inline void sumv_zero(sumv *a) { a->lo = a->hi = (v8d){0}, a->tail = 0; }

static inline double sumv_total(const sumv *a) {
    v8d t = a->lo + a->hi;
    double u[8];
    memcpy(u, &t, sizeof u);
    return (((u[0] + u[4]) + (u[2] + u[6])) + ((u[1] + u[5]) + (u[3] + u[7]))) + a->tail;
}

static inline __attribute__((always_inline)) v8f load8(const float *x) {
    v8f v;
    memcpy(&v, x, sizeof v);
    return v;
}

#define widen(v) __builtin_convertvector((v), v8d) /* 8 floats to 8 doubles */

/* a += x[k] */
static inline void sumv_row(sumv *a, const float *x, int64_t n) {
    int64_t k = 0;
    v8d lo = a->lo, hi = a->hi;
    for (; k + LANES <= n; k += LANES) lo += widen(load8(x + k)), hi += widen(load8(x + k + 8));
    for (; k < n; k++) a->tail += x[k];
    a->lo = lo, a->hi = hi;
}

/* a += x[k] y[k] (each product exact in double) */
static inline void sumv_dot(sumv *a, const float *x, const float *y, int64_t n) {
    int64_t k = 0;
    v8d lo = a->lo, hi = a->hi;
    for (; k + LANES <= n; k += LANES)
        lo += widen(load8(x + k)) * widen(load8(y + k)),
            hi += widen(load8(x + k + 8)) * widen(load8(y + k + 8));
    for (; k < n; k++) a->tail += (double)x[k] * y[k];
    a->lo = lo, a->hi = hi;
}

#endif /* BRICK_OPS_SIMD_SUM_H */
