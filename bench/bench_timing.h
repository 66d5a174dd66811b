/* bench_timing.h - the clocks and the median that the programs in bench/ time with, and
 * their choice of cases by name.
 * Header-only (static inline): each bench/NAME.c is its own program, linked alone with
 * libbrick.a by the Makefile. Include after defining _POSIX_C_SOURCE 200809L.
 */
#ifndef BRICK_BENCH_TIMING_H
#define BRICK_BENCH_TIMING_H

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
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

/* Whether the case called name is chosen by the filters[0..n) given on the command line
 * (any of them a substring of name; with none, every case is). */
static inline bool bench_selected(const char *name, const char *const *filters, int n) {
    for (int f = 0; f < n; f++)
        if (strstr(name, filters[f])) return true;
    return n == 0;
}

/* The options of a bench that times repeats of ~`seconds` each: -r N (repeats, 1..128),
 * -t S (seconds per repeat; 0.1 if not positive), -c (CPU time instead of the wall clock),
 * -q (quick: 3 repeats of 20 ms). Returns whether argv[*i] is one of them, having read it
 * (and moved *i past its value). */
static inline bool timing_option(int argc, char **argv, int *i, int *repeats, double *seconds,
                                 bool *cputime) {
    const char *a = argv[*i];
    if (!strcmp(a, "-r") && *i + 1 < argc) {
        int r = atoi(argv[++*i]);
        *repeats = r < 1 ? 1 : r > 128 ? 128 : r;
    } else if (!strcmp(a, "-t") && *i + 1 < argc) {
        *seconds = atof(argv[++*i]);
        if (!(*seconds > 0)) *seconds = 0.1;
    } else if (!strcmp(a, "-c")) {
        *cputime = true;
    } else if (!strcmp(a, "-q")) {
        *repeats = 3;
        *seconds = 0.02;
    } else {
        return false;
    }
    return true;
}

#endif /* BRICK_BENCH_TIMING_H */
