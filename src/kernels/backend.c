/* backend.c - the CPU compute backend: a cache-blocked, OpenMP-parallel SGEMM, or
 * OpenBLAS's when the build found it (BK_HAVE_OPENBLAS).
 *
 * The portable kernel packs op(B) into contiguous row panels so that the innermost loop
 * is a unit-stride axpy over N that the compiler vectorises; rows of C are split across
 * threads, so results do not depend on the thread count (each C element is always summed
 * in the same k order).
 */
#include "internal.h"

#include <stdlib.h>

#ifdef BK_HAVE_OPENBLAS
#include <cblas.h>
#endif

#define KC 256 /* k-block: a KC x NC panel of B stays in L2 */
#define NC 512

static void gemm_portable(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha,
                          const float *A, int64_t lda, const float *B, int64_t ldb, float beta,
                          float *C, int64_t ldc) {
    /* C = beta C first, so the blocked loop only accumulates. */
    for (int64_t i = 0; i < M; i++) {
        float *c = C + i * ldc;
        if (beta == 0.0f)
            for (int64_t j = 0; j < N; j++) c[j] = 0.0f;
        else if (beta != 1.0f)
            for (int64_t j = 0; j < N; j++) c[j] *= beta;
    }
    if (K == 0 || M == 0 || N == 0 || alpha == 0.0f) return;
    float bpanel_stack[KC * 64];
    float *bpanel = (N <= 64) ? bpanel_stack : NULL;
    bool heap = false;
    for (int64_t j0 = 0; j0 < N; j0 += NC) {
        int64_t nb = N - j0 < NC ? N - j0 : NC;
        for (int64_t k0 = 0; k0 < K; k0 += KC) {
            int64_t kb = K - k0 < KC ? K - k0 : KC;
            if (!bpanel) {
                bpanel = malloc(sizeof(float) * KC * NC);
                heap = true;
                if (!bpanel) goto slow; /* out of memory: fall back to the unpacked loop */
            }
            /* pack op(B)[k0:k0+kb, j0:j0+nb] row-major */
            for (int64_t k = 0; k < kb; k++)
                for (int64_t j = 0; j < nb; j++)
                    bpanel[k * nb + j] = tb ? B[(j0 + j) * ldb + (k0 + k)] : B[(k0 + k) * ldb + (j0 + j)];
            const float *bp = bpanel;
#pragma omp parallel for schedule(static) if (M * nb * kb > 32768)
            for (int64_t i = 0; i < M; i++) {
                float *c = C + i * ldc + j0;
                for (int64_t k = 0; k < kb; k++) {
                    float a = alpha * (ta ? A[(k0 + k) * lda + i] : A[i * lda + (k0 + k)]);
                    const float *b = bp + k * nb;
                    for (int64_t j = 0; j < nb; j++) c[j] += a * b[j];
                }
            }
        }
    }
    if (heap) free(bpanel);
    return;
slow:
    for (int64_t i = 0; i < M; i++)
        for (int64_t k = 0; k < K; k++) {
            float a = alpha * (ta ? A[k * lda + i] : A[i * lda + k]);
            for (int64_t j = 0; j < N; j++) C[i * ldc + j] += a * (tb ? B[j * ldb + k] : B[k * ldb + j]);
        }
}

#ifdef BK_HAVE_OPENBLAS
static void gemm_openblas(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha,
                          const float *A, int64_t lda, const float *B, int64_t ldb, float beta,
                          float *C, int64_t ldc) {
    if (M == 0 || N == 0) return;
    if (K == 0) { /* BLAS leaves C alone when K == 0 only if beta == 1 */
        gemm_portable(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                (blasint)M, (blasint)N, (blasint)K, alpha, A, (blasint)lda, B, (blasint)ldb, beta,
                C, (blasint)ldc);
}
static const bk_backend BACKEND = {"cpu+openblas", gemm_openblas};
#else
static const bk_backend BACKEND = {"cpu", gemm_portable};
#endif

const bk_backend *bk__backend(void) { return &BACKEND; }
