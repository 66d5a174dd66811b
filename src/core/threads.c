/* threads.c - how many threads brick's kernels use (OpenMP, and OpenBLAS when built with
 * it). The setting is OpenMP's per-thread ICV: it applies to kernels called from the
 * calling thread.
 */
#include "internal.h"

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
