/* threads.c - how many threads brick's kernels use (OpenMP, and OpenBLAS when built with
 * it). The setting is OpenMP's per-thread ICV: it applies to kernels called from the
 * calling thread. And how OpenMP's idle threads wait (bk_passive_wait_policy).
 */
#define _POSIX_C_SOURCE 200809L /* setenv, unsetenv, execv */

#include "internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#if defined(__linux__) && defined(_OPENMP)
#include <unistd.h>
#endif

#ifdef BK_HAVE_OPENBLAS
#include <cblas.h>
#endif
#ifdef _OPENMP
#include <omp.h>
#endif

int bk_set_num_threads(int n) {
    if (n < 1) {
        bk_set_error("set_num_threads: %d threads (need at least 1)", n);
        return -1;
    }
#ifdef BK_HAVE_OPENBLAS
    openblas_set_num_threads(n);
#endif
#ifdef _OPENMP
    omp_set_num_threads(n);
#endif
    return 0;
}

int bk_get_num_threads(void) {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

/* Measured before this was written (2 cores, loaded; a loop of 3000 two-thread regions with
 * 0.1 ms of serial work between them): unset policy 10 to 25 s, OMP_WAIT_POLICY=PASSIVE in
 * the environment at start 0.3 s; setenv in a constructor (after libgomp's initializer) or
 * in .preinit_array (before libc's initializer, which sets environ back to the process's
 * initial environment) 8 to 21 s: neither reaches libgomp. Hence the exec. */
int bk_passive_wait_policy(char **argv) {
    if (!argv || !argv[0]) {
        bk_set_error("passive_wait_policy: argv is NULL (pass main's argv)");
        return -1;
    }
#if defined(__linux__) && defined(_OPENMP)
    if (getenv("OMP_WAIT_POLICY") || getenv("GOMP_SPINCOUNT")) return 0; /* the user's choice */
    const char *preload = getenv("LD_PRELOAD");
    if (preload && strstr(preload, "vgpreload")) return 0;
    if (setenv("OMP_WAIT_POLICY", "PASSIVE", 1) != 0) {
        bk_set_error("passive_wait_policy: setenv: %s", strerror(errno));
        return -1;
    }
    execv("/proc/self/exe", argv);
    int e = errno;
    unsetenv("OMP_WAIT_POLICY"); /* (libgomp runs with its default: say so) */
    bk_set_error("passive_wait_policy: exec /proc/self/exe: %s (libgomp's default policy stays)",
                 strerror(e));
    return -1;
#else
    return 0;
#endif
}
