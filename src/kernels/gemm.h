/* gemm.h - private to src/kernels/: the contract between the SGEMM driver (gemm.c) and its
 * micro-kernels (the portable one in gemm.c, the AVX2+FMA one in gemm_avx2.c, the AVX-512
 * one in gemm_avx512.c).
 *
 * The driver packs op(A) and op(B) into micro-panels; a micro-kernel only ever sees whole
 * mr x nr tiles of packed data:
 *   A micro-panel: op(A)[i0 : i0+mr, k0 : k0+kc] stored as a[k*mr + i]
 *   B micro-panel: op(B)[k0 : k0+kc, j0 : j0+nr] stored as b[k*nr + j]
 * with the rows / columns past the edge of the matrix filled with zeros. Packed buffers are
 * 64-byte aligned; micro-panels need not be (kernels use unaligned loads).
 */
#ifndef BRICK_KERNELS_GEMM_H
#define BRICK_KERNELS_GEMM_H

#include <stdbool.h>
#include <stdint.h>

#define BK_GEMM_MR_MAX 16 /* largest register tile any kernel may declare */
#define BK_GEMM_NR_MAX 64

/* c[i*ldc + j] = alpha * sum_k a[k*mr + i] * b[k*bs + j] + beta * c[i*ldc + j] for the full
 * mr x nr tile, k summed in increasing order. bs is nr for a packed B micro-panel, or the
 * row stride of op(B) when the driver lets the kernel read B where it lies (b is then not
 * aligned). beta == 0: c is only written (not read, so a NaN already in c does not
 * propagate), as in BLAS. */
typedef void bk__gemm_micro_fn(int64_t kc, const float *a, const float *b, int64_t bs, float alpha,
                               float beta, float *c, int64_t ldc);

/* C = alpha * op(A) @ op(B) + beta * C over the whole product, unpacked (small_nn: op(B) = B;
 * small_nt: op(A) = A, op(B) = B^T). beta == 0: C is only written. */
typedef void bk__gemm_small_fn(bool ta, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                               int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc);

typedef struct bk__gemm_kernel {
    const char *name;     /* for bk_gemm_kernel(), e.g. "avx2-fma 6x16" */
    const char *key;      /* its BRICK_GEMM_KERNEL value: "portable", "avx2", "avx512" */
    bool (*usable)(void); /* whether this CPU and OS can run it (NULL: always) */
    int mr, nr;           /* register tile; mr <= BK_GEMM_MR_MAX, nr <= BK_GEMM_NR_MAX */
    int64_t mc, kc, nc;   /* cache blocks (upper bounds): mc % mr == 0, nc % nr == 0 */
    bk__gemm_micro_fn *micro;
    /* Optional: micro for a tile of at most mr/2 rows (the rows past them are not computed
     * and not stored). It reads the same mr-tall A micro-panel and must do the same
     * arithmetic as micro for its rows, so either may run. */
    bk__gemm_micro_fn *micro_half;
    /* Optional (NULL: the driver's C loops): packs rows [0, rows) of X, whose rows are
     * contiguous in k (element (r, k) at X[r*rs + k], k < kc), into micro-panels of height
     * w as described above, panel p at dst + p*ps, zero-padding the last. Returns false,
     * having done nothing, for a w it does not handle. */
    bool (*pack_rows)(int w, const float *X, int64_t rs, int64_t rows, int64_t kc, float *dst, int64_t ps);
    /* Optional (both or neither): the whole product read where the operands lie, no
     * packing, no allocation: small_nn for op(A) @ B (A transposed when ta), small_nt for
     * A @ B^T. The driver decides when they beat packing (gemm.c, small_product) and calls
     * them only for products it runs on one thread. */
    bk__gemm_small_fn *small_nn;
    bk__gemm_small_fn *small_nt; /* (ta is always false) */
} bk__gemm_kernel;

/* The AVX2+FMA and AVX-512 kernels exist on x86 with GCC or Clang (they are compiled with
 * __attribute__((target(...))), so the rest of brick needs no -mavx2 or -mavx512f); the
 * driver uses one only when its usable() (__builtin_cpu_supports) says the CPU and OS
 * allow it. */
#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__)
#define BK_GEMM_HAVE_AVX2 1
#define BK_GEMM_HAVE_AVX512 1
extern const bk__gemm_kernel bk__gemm_kernel_avx2;
extern const bk__gemm_kernel bk__gemm_kernel_avx512;
/* The AVX2 kernel's pack_rows (gemm_avx2.c), for panel heights that are 6 or a multiple of
 * 8 up to BK_GEMM_NR_MAX; the AVX-512 kernel packs with it too. */
bool bk__gemm_pack_rows_avx2(int w, const float *X, int64_t rs, int64_t rows, int64_t kc, float *dst,
                             int64_t ps);
#endif

#endif /* BRICK_KERNELS_GEMM_H */
