/* bench_timing.h - the clocks and the median that the programs in bench/ time with.
 * Header-only (static inline): each bench/NAME.c is its own program, linked alone with
 * libbrick.a by the Makefile. Include after defining _POSIX_C_SOURCE 200809L.
 */
#ifndef BRICK_BENCH_TIMING_H
#define BRICK_BENCH_TIMING_H

#include <stdlib.h>
#include <time.h>

/* Milliseconds on clock c: CLOCK_MONOTONIC (wall) or CLOCK_PROCESS_CPUTIME_ID (CPU time of
 * the process, all threads). */
static inline double clock_ms(clockid_t c) {
    struct timespec ts;
    clock_gettime(c, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

/* Seconds on clock c (CLOCK_MONOTONIC or CLOCK_PROCESS_CPUTIME_ID, as clock_ms). */
static inline double clock_s(clockid_t c) {
    struct timespec ts;
    clock_gettime(c, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* qsort's comparison for doubles, ascending */
static inline int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The median of v[0..n) (n >= 1); sorts v in place. */
static inline double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

#endif /* BRICK_BENCH_TIMING_H */
