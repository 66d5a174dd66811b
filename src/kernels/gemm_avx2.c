/* gemm_avx2.c - the AVX2+FMA SGEMM micro-kernel: a 6 x 16 tile of C held in 12 ymm
 * registers, updated with one rank-1 FMA step per k (2 loads of B, 6 broadcasts of A,
 * 12 FMAs), its packing, and its unpacked path for small products. See gemm.h for the
 * packed layouts and the contract.
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

__attribute__((target("avx2,fma"))) static void micro_6x16(int64_t kc, const float *a, const float *b,
                                                           int64_t bs, float alpha, float beta, float *c,
                                                           int64_t ldc) {
    __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps();
    __m256 c10 = _mm256_setzero_ps(), c11 = _mm256_setzero_ps();
    __m256 c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps();
    __m256 c30 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps();
    __m256 c40 = _mm256_setzero_ps(), c41 = _mm256_setzero_ps();
    __m256 c50 = _mm256_setzero_ps(), c51 = _mm256_setzero_ps();
    for (int64_t i = 0; i < MR; i++) _mm_prefetch((const char *)(c + i * ldc), _MM_HINT_T0);

/* F(i, lo, hi) for each row i of the tile and its two accumulators */
#define BK_ROWS(F)  \
    F(0, c00, c01); \
    F(1, c10, c11); \
    F(2, c20, c21); \
    F(3, c30, c31); \
    F(4, c40, c41); \
    F(5, c50, c51)
/* row i: (lo, hi) += a[i] * (b0, b1) */
#define BK_FMA(i, lo, hi)              \
    ai = _mm256_broadcast_ss(a + (i)); \
    lo = _mm256_fmadd_ps(ai, b0, lo);  \
    hi = _mm256_fmadd_ps(ai, b1, hi)

    /* One k per iteration: unrolling lets GCC interleave the steps until it runs out of
     * the 16 ymm registers and spills; the loop overhead hides behind the 12 FMAs. */
    for (int64_t k = 0; k < kc; k++) {
        const __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);
        __m256 ai;
        BK_ROWS(BK_FMA);
        a += MR;
        b += bs;
    }
#undef BK_FMA

    /* c = alpha * acc + beta * c; beta == 0 never reads c */
    const __m256 va = _mm256_set1_ps(alpha);
    if (beta == 0.0f) {
#define BK_STORE(i, lo, hi)                               \
    _mm256_storeu_ps(c + (i)*ldc, _mm256_mul_ps(va, lo)); \
    _mm256_storeu_ps(c + (i)*ldc + 8, _mm256_mul_ps(va, hi))
        BK_ROWS(BK_STORE);
#undef BK_STORE
    } else {
        const __m256 vb = _mm256_set1_ps(beta);
#define BK_UPDATE(i, lo, hi)                                                                                 \
    _mm256_storeu_ps(c + (i)*ldc, _mm256_fmadd_ps(va, lo, _mm256_mul_ps(vb, _mm256_loadu_ps(c + (i)*ldc)))); \
    _mm256_storeu_ps(c + (i)*ldc + 8,                                                                        \
                     _mm256_fmadd_ps(va, hi, _mm256_mul_ps(vb, _mm256_loadu_ps(c + (i)*ldc + 8))))
        BK_ROWS(BK_UPDATE);
#undef BK_UPDATE
    }
#undef BK_ROWS
}

/* Transposes the 8 x 8 block in r[0..7] in place: afterwards r[k] holds column k. */
#define BK_TRANSPOSE8(r)                                                                   \
    do {                                                                                   \
        __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);   \
        __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);   \
        __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);   \
        __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);   \
        __m256 s0 = _mm256_shuffle_ps(t0, t2, 0x44), s1 = _mm256_shuffle_ps(t0, t2, 0xEE); \
        __m256 s2 = _mm256_shuffle_ps(t1, t3, 0x44), s3 = _mm256_shuffle_ps(t1, t3, 0xEE); \
        __m256 s4 = _mm256_shuffle_ps(t4, t6, 0x44), s5 = _mm256_shuffle_ps(t4, t6, 0xEE); \
        __m256 s6 = _mm256_shuffle_ps(t5, t7, 0x44), s7 = _mm256_shuffle_ps(t5, t7, 0xEE); \
        r[0] = _mm256_permute2f128_ps(s0, s4, 0x20);                                       \
        r[1] = _mm256_permute2f128_ps(s1, s5, 0x20);                                       \
        r[2] = _mm256_permute2f128_ps(s2, s6, 0x20);                                       \
        r[3] = _mm256_permute2f128_ps(s3, s7, 0x20);                                       \
        r[4] = _mm256_permute2f128_ps(s0, s4, 0x31);                                       \
        r[5] = _mm256_permute2f128_ps(s1, s5, 0x31);                                       \
        r[6] = _mm256_permute2f128_ps(s2, s6, 0x31);                                       \
        r[7] = _mm256_permute2f128_ps(s3, s7, 0x31);                                       \
    } while (0)

/* Packs rows [0, rows) of X (element (r, k) at X[r*rs + k], so each row is contiguous in
 * k) into micro-panels of height w ps floats apart, zero-padding the last one, 8 x 8 blocks
 * at a time through registers. w is MR (6) or a multiple of 8 up to BK_GEMM_NR_MAX (this
 * kernel's NR, and the AVX-512 kernel's MR and NR); returns false for another w (the
 * driver then packs). */
__attribute__((target("avx2"))) bool bk__gemm_pack_rows_avx2(int w, const float *X, int64_t rs, int64_t rows,
                                                             int64_t kc, float *dst, int64_t ps) {
    if (w != 6 && (w % 8 || w > BK_GEMM_NR_MAX)) return false;
    const int64_t k8 = kc / 8 * 8;
    for (int64_t r0 = 0; r0 < rows; r0 += w, dst += ps) {
        const float *src = X + r0 * rs;
        const int64_t h = rows - r0 < w ? rows - r0 : w; /* rows in this panel */
#define BK_ROW(i, k) ((i) < h ? _mm256_loadu_ps(src + (i)*rs + (k)) : _mm256_setzero_ps())
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
                    _mm_storel_pi((__m64 *)(dst + (k + i) * 6 + 4), _mm256_extractf128_ps(r[i], 1));
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

/* ---- tiny products ---------------------------------------------------------------------
 * The AVX-512 kernel's unpacked path (gemm_avx512.c, which says why and when) in 8 lanes:
 * op(A) @ B in blocks of 4 rows sharing each load of B, k in increasing order; A @ B^T as 8
 * dot products over k at a time, reduced together. Edges through masked loads and stores.
 * The loops over the blocks are gemm_small_tmpl.h's; this file gives its 8-lane blocks. */

#define BK_UNROLL _Pragma("GCC unroll 16")

/* the mask of lanes [0, n) of an 8-float vector (none for n <= 0) */
__attribute__((target("avx2"))) static inline __m256i lanes8(int64_t n) {
    const int c = n <= 0 ? 0 : n >= 8 ? 8 : (int)n;
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(c), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/* C[i0 .. i0+mr, j .. j+8nv) = alpha * op(A) @ B (+ beta * C): acc[r][v] += op(A)[i0 + r, k]
 * * B[k, j + 8v ..]. Masked loads only at the right edge (!full), and no masked stores:
 * AMD CPUs run them as microcode, ~10x slower than a plain store (256x20x2: 2.95 us with
 * masks everywhere on Zen 4, 1.57 us with masked stores at the edge only). */
#define BK_LOAD(p, mask) (full ? _mm256_loadu_ps(p) : _mm256_maskload_ps((p), (mask)))
__attribute__((target("avx2,fma"), always_inline)) static inline void
nn_block(const bool full, const int mr, const int nv, const __m256i *m, int64_t K, const float *a,
         int64_t ars, int64_t aks, const float *bj, int64_t ldb, float alpha, float beta, float *cij,
         int64_t ldc) {
    __m256 acc[4][4];
    BK_UNROLL for (int r = 0; r < mr; r++) BK_UNROLL for (int v = 0; v < nv; v++)
        acc[r][v] = _mm256_setzero_ps();
    for (int64_t k = 0; k < K; k++, a += aks, bj += ldb) {
        __m256 b[4];
        BK_UNROLL for (int v = 0; v < nv; v++) b[v] = BK_LOAD(bj + 8 * v, m[v]);
        BK_UNROLL for (int r = 0; r < mr; r++) {
            const __m256 ar = _mm256_broadcast_ss(a + r * ars);
            BK_UNROLL for (int v = 0; v < nv; v++) acc[r][v] = _mm256_fmadd_ps(ar, b[v], acc[r][v]);
        }
    }
    BK_UNROLL for (int r = 0; r < mr; r++) BK_UNROLL for (int v = 0; v < nv; v++) {
        float *c = cij + r * ldc + 8 * v;
        /* (alpha * x == x when alpha == 1) */
        __m256 x = alpha == 1.0f ? acc[r][v] : _mm256_mul_ps(_mm256_set1_ps(alpha), acc[r][v]);
        if (beta != 0.0f) x = _mm256_fmadd_ps(_mm256_set1_ps(beta), BK_LOAD(c, m[v]), x);
        const int n = full ? 8 : __builtin_popcount((unsigned)_mm256_movemask_ps(_mm256_castsi256_ps(m[v])));
        if (n == 8) {
            _mm256_storeu_ps(c, x);
        } else { /* through memory: cheaper than a masked store on AMD */
            float t[8];
            _mm256_storeu_ps(t, x);
            for (int l = 0; l < n; l++) c[l] = t[l];
        }
    }
}

/* nn_block for rows [i, i + mr), full or at the edge */
__attribute__((target("avx2,fma"), always_inline)) static inline void
nn_rows(const int mr, const int nv, bool full, const __m256i *m, int64_t K, const float *a, int64_t ars,
        int64_t aks, const float *bj, int64_t ldb, float alpha, float beta, float *cij, int64_t ldc) {
    if (full) nn_block(true, mr, nv, m, K, a, ars, aks, bj, ldb, alpha, beta, cij, ldc);
    else nn_block(false, mr, nv, m, K, a, ars, aks, bj, ldb, alpha, beta, cij, ldc);
}

/* C[i, j0 .. j0+nj) = alpha * dot(A[i, :], B[j, :]) (+ beta * C), nj <= 8: 8 dot products
 * over k in 8 lanes, reduced by a tree of horizontal adds into lanes 0..7 in order; `full`
 * (nj == 8) drops the test for rows past N. */
__attribute__((target("avx2,fma"), always_inline)) static inline void
nt_row(const bool full, int64_t nj, int64_t K, const float *ai, const float *bj, int64_t ldb, float alpha,
       float beta, float *cij) {
    __m256 acc[8];
    BK_UNROLL for (int j = 0; j < 8; j++) acc[j] = _mm256_setzero_ps();
    for (int64_t k = 0; k < K; k += 8) {
        const __m256i m = lanes8(K - k);
        const __m256 a = _mm256_maskload_ps(ai + k, m);
        BK_UNROLL for (int j = 0; j < 8; j++) if (full || j < nj)
            acc[j] = _mm256_fmadd_ps(a, _mm256_maskload_ps(bj + j * ldb + k, m), acc[j]);
    }
    /* hadd pairs, then pairs of pairs: each 128-bit half holds 4 rows' partial sums */
    const __m256 h01 = _mm256_hadd_ps(acc[0], acc[1]), h23 = _mm256_hadd_ps(acc[2], acc[3]);
    const __m256 h45 = _mm256_hadd_ps(acc[4], acc[5]), h67 = _mm256_hadd_ps(acc[6], acc[7]);
    const __m256 g0 = _mm256_hadd_ps(h01, h23), g1 = _mm256_hadd_ps(h45, h67);
    const __m256 sum = _mm256_add_ps(_mm256_permute2f128_ps(g0, g1, 0x20),
                                     _mm256_permute2f128_ps(g0, g1, 0x31));
    const __m256i mj = lanes8(nj);
    __m256 r = alpha == 1.0f ? sum : _mm256_mul_ps(_mm256_set1_ps(alpha), sum);
    if (beta != 0.0f) r = _mm256_fmadd_ps(_mm256_set1_ps(beta), BK_LOAD(cij, mj), r);
    if (full) {
        _mm256_storeu_ps(cij, r);
    } else {
        float t[8];
        _mm256_storeu_ps(t, r);
        for (int64_t l = 0; l < nj; l++) cij[l] = t[l];
    }
}
#undef BK_LOAD

/* the template's nt_group: a row of C at a time */
#define NT_ROWS 1
#define nt_group(mr, full, nj, K, ai, lda, bj, ldb, alpha, beta, cij, ldc) \
    nt_row(full, nj, K, ai, bj, ldb, alpha, beta, cij)
#define VW 8
#define NV_MAX 3
#define KTARGET "avx2,fma"
#define MASK __m256i
#define NN_FULL 1 /* nn_rows tells a block inside N from the edge */
#define LANES(n) lanes8(n)
#include "gemm_small_tmpl.h"

static bool usable(void) { return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"); }

/* the fields grouped by what they are (clang-format would write one a line) */
/* clang-format off */
const bk__gemm_kernel bk__gemm_kernel_avx2 = {
    .name = "avx2-fma 6x16", .key = "avx2", .usable = usable,
    .mr = MR, .nr = NR,                   /* register tile */
    .mc = 144, .kc = 256, .nc = 4080,     /* cache blocks */
    .micro = micro_6x16, .pack_rows = bk__gemm_pack_rows_avx2,
    .small_nn = small_nn, .small_nt = small_nt, /* gemm_small_tmpl.h */
};
/* clang-format on */

#else
/* ISO C forbids an empty translation unit. */
typedef int bk__gemm_avx2_unavailable;
#endif
