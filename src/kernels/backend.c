/* backend.c - the CPU compute backend: brick's own packed, AVX2-or-portable, OpenMP SGEMM
 * (gemm.c), or OpenBLAS's when the build found it (BK_HAVE_OPENBLAS).
 */
#include "internal.h"

#ifdef BK_HAVE_OPENBLAS
#include <cblas.h>

static void gemm_openblas(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                          int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc) {
    if (M == 0 || N == 0) return;
    if (K == 0) { /* BLAS leaves C alone when K == 0 only if beta == 1 */
        bk__sgemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, (blasint)M,
                (blasint)N, (blasint)K, alpha, A, (blasint)lda, B, (blasint)ldb, beta, C, (blasint)ldc);
}
/* Inside brick's own parallel regions, brick's kernel: OpenBLAS's pthread build would start
 * its own threads there and fight brick's for the cores. */
static const bk_backend BACKEND = {"cpu+openblas", gemm_openblas, bk__sgemm};
#else
static const bk_backend BACKEND = {"cpu", bk__sgemm, bk__sgemm};
#endif

const bk_backend *bk__backend(void) { return &BACKEND; }
