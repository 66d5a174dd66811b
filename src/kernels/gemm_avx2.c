/* gemm_avx2.c - the AVX2+FMA SGEMM micro-kernel: a 6 x 16 tile of C held in 12 ymm
 * registers, updated with one rank-1 FMA step per k (2 loads of B, 6 broadcasts of A,
 * 12 FMAs). See gemm.h for the packed layouts and the contract.
 *
 * Only this function is compiled for AVX2 (via the target attribute), so the file builds
 * with the default flags; gemm.c calls it only after __builtin_cpu_supports("avx2") and
 * ("fma") said yes. Blocking for a Zen 3 / Skylake-class core: a KC x 16 B micro-panel
 * (16 KiB) stays in L1, an MC x KC A block (144 KiB) in L2, the KC x NC B panel in L3.
 */
#include "gemm.h"

#ifdef BK_GEMM_HAVE_AVX2

#include <immintrin.h>

#define MR 6
#define NR 16
#define PACK_AHEAD 64 /* pack_rows prefetches the rows this many floats ahead: the */
                      /* hardware prefetcher alone leaves tall-K packing waiting on DRAM */

__attribute__((target("avx2,fma"))) static void micro_6x16(int64_t kc, const float *a,
                                                           const float *b, int64_t bs,
                                                           float alpha, float beta, float *c,
                                                           int64_t ldc) {
    __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps();
    __m256 c10 = _mm256_setzero_ps(), c11 = _mm256_setzero_ps();
    __m256 c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps();
    __m256 c30 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps();
    __m256 c40 = _mm256_setzero_ps(), c41 = _mm256_setzero_ps();
    __m256 c50 = _mm256_setzero_ps(), c51 = _mm256_setzero_ps();
    for (int64_t i = 0; i < MR; i++) _mm_prefetch((const char *)(c + i * ldc), _MM_HINT_T0);

#define BK_STEP(k)                                                                         \
    do {                                                                                   \
        const __m256 b0 = _mm256_loadu_ps(b + (k) * bs), b1 = _mm256_loadu_ps(b + (k) * bs + 8); \
        __m256 ai = _mm256_broadcast_ss(a + (k) * MR + 0);                                 \
        c00 = _mm256_fmadd_ps(ai, b0, c00);                                                \
        c01 = _mm256_fmadd_ps(ai, b1, c01);                                                \
        ai = _mm256_broadcast_ss(a + (k) * MR + 1);                                        \
        c10 = _mm256_fmadd_ps(ai, b0, c10);                                                \
        c11 = _mm256_fmadd_ps(ai, b1, c11);                                                \
        ai = _mm256_broadcast_ss(a + (k) * MR + 2);                                        \
        c20 = _mm256_fmadd_ps(ai, b0, c20);                                                \
        c21 = _mm256_fmadd_ps(ai, b1, c21);                                                \
        ai = _mm256_broadcast_ss(a + (k) * MR + 3);                                        \
        c30 = _mm256_fmadd_ps(ai, b0, c30);                                                \
        c31 = _mm256_fmadd_ps(ai, b1, c31);                                                \
        ai = _mm256_broadcast_ss(a + (k) * MR + 4);                                        \
        c40 = _mm256_fmadd_ps(ai, b0, c40);                                                \
        c41 = _mm256_fmadd_ps(ai, b1, c41);                                                \
        ai = _mm256_broadcast_ss(a + (k) * MR + 5);                                        \
        c50 = _mm256_fmadd_ps(ai, b0, c50);                                                \
        c51 = _mm256_fmadd_ps(ai, b1, c51);                                                \
    } while (0)

    /* One k per iteration: unrolling lets GCC interleave the steps until it runs out of
     * the 16 ymm registers and spills; the loop overhead hides behind the 12 FMAs. */
    for (int64_t k = 0; k < kc; k++) {
        BK_STEP(0);
        a += MR;
        b += bs;
    }
#undef BK_STEP

    /* c = alpha * acc + beta * c; beta == 0 never reads c */
    const __m256 va = _mm256_set1_ps(alpha);
    if (beta == 0.0f) {
#define BK_STORE(i, lo, hi)                                            \
    _mm256_storeu_ps(c + (i) * ldc, _mm256_mul_ps(va, lo));           \
    _mm256_storeu_ps(c + (i) * ldc + 8, _mm256_mul_ps(va, hi))
        BK_STORE(0, c00, c01);
        BK_STORE(1, c10, c11);
        BK_STORE(2, c20, c21);
        BK_STORE(3, c30, c31);
        BK_STORE(4, c40, c41);
        BK_STORE(5, c50, c51);
#undef BK_STORE
    } else {
        const __m256 vb = _mm256_set1_ps(beta);
#define BK_UPDATE(i, lo, hi)                                                                 \
    _mm256_storeu_ps(c + (i) * ldc,                                                         \
                     _mm256_fmadd_ps(va, lo, _mm256_mul_ps(vb, _mm256_loadu_ps(c + (i) * ldc)))); \
    _mm256_storeu_ps(c + (i) * ldc + 8,                                                     \
                     _mm256_fmadd_ps(va, hi,                                                \
                                     _mm256_mul_ps(vb, _mm256_loadu_ps(c + (i) * ldc + 8))))
        BK_UPDATE(0, c00, c01);
        BK_UPDATE(1, c10, c11);
        BK_UPDATE(2, c20, c21);
        BK_UPDATE(3, c30, c31);
        BK_UPDATE(4, c40, c41);
        BK_UPDATE(5, c50, c51);
#undef BK_UPDATE
    }
}

/* Transposes the 8 x 8 block in r[0..7] in place: afterwards r[k] holds column k. */
#define BK_TRANSPOSE8(r)                                                                \
    do {                                                                                \
        __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]); \
        __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]); \
        __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]); \
        __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]); \
        __m256 s0 = _mm256_shuffle_ps(t0, t2, 0x44), s1 = _mm256_shuffle_ps(t0, t2, 0xEE); \
        __m256 s2 = _mm256_shuffle_ps(t1, t3, 0x44), s3 = _mm256_shuffle_ps(t1, t3, 0xEE); \
        __m256 s4 = _mm256_shuffle_ps(t4, t6, 0x44), s5 = _mm256_shuffle_ps(t4, t6, 0xEE); \
        __m256 s6 = _mm256_shuffle_ps(t5, t7, 0x44), s7 = _mm256_shuffle_ps(t5, t7, 0xEE); \
        r[0] = _mm256_permute2f128_ps(s0, s4, 0x20);                                    \
        r[1] = _mm256_permute2f128_ps(s1, s5, 0x20);                                    \
        r[2] = _mm256_permute2f128_ps(s2, s6, 0x20);                                    \
        r[3] = _mm256_permute2f128_ps(s3, s7, 0x20);                                    \
        r[4] = _mm256_permute2f128_ps(s0, s4, 0x31);                                    \
        r[5] = _mm256_permute2f128_ps(s1, s5, 0x31);                                    \
        r[6] = _mm256_permute2f128_ps(s2, s6, 0x31);                                    \
        r[7] = _mm256_permute2f128_ps(s3, s7, 0x31);                                    \
    } while (0)

/* Packs rows [0, rows) of X (element (r, k) at X[r*rs + k], so each row is contiguous in
 * k) into micro-panels of height w ps floats apart, zero-padding the last one, 8 x 8 blocks
 * at a time through registers. w is MR (6) or a multiple of 8 up to BK_GEMM_NR_MAX (this
 * kernel's NR, and the AVX-512 kernel's MR and NR); returns false for another w (the
 * driver then packs). */
__attribute__((target("avx2"))) bool bk__gemm_pack_rows_avx2(int w, const float *X, int64_t rs,
                                                             int64_t rows, int64_t kc,
                                                             float *dst, int64_t ps) {
    if (w != 6 && (w % 8 || w > BK_GEMM_NR_MAX)) return false;
    const int64_t k8 = kc / 8 * 8;
    for (int64_t r0 = 0; r0 < rows; r0 += w, dst += ps) {
        const float *src = X + r0 * rs;
        const int64_t h = rows - r0 < w ? rows - r0 : w; /* rows in this panel */
#define BK_ROW(i, k) ((i) < h ? _mm256_loadu_ps(src + (i) * rs + (k)) : _mm256_setzero_ps())
        for (int64_t k = 0; k < k8; k += 8) {
            __m256 r[8];
            if (k % 16 == 0) /* a line of each row, PACK_AHEAD floats ahead (never faults) */
                for (int64_t i = 0; i < h; i++)
                    _mm_prefetch((const char *)(src + i * rs + k + PACK_AHEAD), _MM_HINT_T0);
            if (w == 6) {
                for (int i = 0; i < 6; i++) r[i] = BK_ROW(i, k);
                r[6] = r[7] = _mm256_setzero_ps();
                BK_TRANSPOSE8(r);
                for (int i = 0; i < 8; i++) { /* 6 floats: 4 + 2 */
                    _mm_storeu_ps(dst + (k + i) * 6, _mm256_castps256_ps128(r[i]));
                    _mm_storel_pi((__m64 *)(dst + (k + i) * 6 + 4),
                                  _mm256_extractf128_ps(r[i], 1));
                }
                continue;
            }
            for (int i0 = 0; i0 < w; i0 += 8) { /* rows i0 .. i0+7 of the panel */
                for (int i = 0; i < 8; i++) r[i] = BK_ROW(i0 + i, k);
                BK_TRANSPOSE8(r);
                for (int i = 0; i < 8; i++) _mm256_storeu_ps(dst + (k + i) * w + i0, r[i]);
            }
        }
#undef BK_ROW
        for (int64_t k = k8; k < kc; k++)
            for (int i = 0; i < w; i++) dst[k * w + i] = i < h ? src[i * rs + k] : 0.0f;
    }
    return true;
}
#undef BK_TRANSPOSE8

static bool usable(void) {
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

const bk__gemm_kernel bk__gemm_kernel_avx2 = {
    .name = "avx2-fma 6x16",
    .key = "avx2",
    .usable = usable,
    .mr = MR,
    .nr = NR,
    .mc = 144,
    .kc = 256,
    .nc = 4080,
    .micro = micro_6x16,
    .pack_rows = bk__gemm_pack_rows_avx2,
};

#else
/* ISO C forbids an empty translation unit. */
typedef int bk__gemm_avx2_unavailable;
#endif
