/* gemm_avx512.c - the AVX-512 SGEMM micro-kernel, a 16 x 16 tile of C in 16 zmm registers
 * (one rank-1 FMA step per k: 1 load of B, 16 broadcasts of A, 16 FMAs), and a path for
 * tiny products that needs no packing. See gemm.h for the packed layouts and the contract.
 *
 * Why 16 x 16 (measured on a Zen 4, AMD EPYC family 25 model 17, gemm_bench -c, 1 thread):
 * Zen 4 runs a 512-bit FMA as two 256-bit halves, so every tile tried (8x48, 12x32, 14x32,
 * 6x64, 16x16) reached the same ~105 GFLOP/s as the AVX2 6x16 kernel on 512^3 and the MLP's
 * 256-sized products; what differs is the waste at the edges. 16 rows fit the 8..64-channel
 * convolutions (few rows of C, very many columns) exactly, and a narrow 16-column tile
 * wastes little when N is small (the MLP's 10 outputs): conv 16<-8 3x3 ran at 54 GFLOP/s
 * against 41-49 for the other tiles and 43 for AVX2. Panels with at most 8 rows (M = 8, or
 * the last panel) use micro_8x16, which reads the same 16-row packed A panel and does the
 * same arithmetic for its rows, so results do not depend on which of the two ran.
 *
 * Only this file's functions are compiled for AVX-512F (via the target attribute), so it
 * builds with the default flags; gemm.c calls them only after usable() said the CPU and OS
 * allow it. valgrind (3.19) cannot run AVX-512 and hides it from CPUID, so there auto picks
 * the AVX2 kernel and BRICK_GEMM_KERNEL=avx512 falls back with a message.
 */
#include "gemm.h"

#ifdef BK_GEMM_HAVE_AVX512

#include <immintrin.h>

#define MR 16
/* most rows of a tiny product's op(A) @ B block: 6 x 4 accumulators in the 32 registers
 * (10x256x256 A^T @ B: 12.9 us, 14.0 in blocks of 4 rows; gemm_small_tmpl.h) */
#define NN_ROWS 6
#define NR 16
#define BK_UNROLL _Pragma("GCC unroll 16")

/* c = alpha * sum_k a[k*MR + i] * b[k*bs + j] (+ beta * c) for rows i < mr of the tile. With
 * mr a constant and the loops unrolled, acc[] lives in mr zmm registers. */
__attribute__((target("avx512f"), always_inline)) static inline void
micro_rows(const int mr, int64_t kc, const float *a, const float *b, int64_t bs, float alpha, float beta,
           float *c, int64_t ldc) {
    __m512 acc[MR];
    BK_UNROLL for (int i = 0; i < mr; i++) acc[i] = _mm512_setzero_ps();
    for (int64_t k = 0; k < kc; k++, a += MR, b += bs) {
        const __m512 bk = _mm512_loadu_ps(b);
        BK_UNROLL for (int i = 0; i < mr; i++) acc[i] = _mm512_fmadd_ps(_mm512_set1_ps(a[i]), bk, acc[i]);
    }
    /* c = alpha * acc + beta * c; beta == 0 never reads c */
    const __m512 va = _mm512_set1_ps(alpha);
    if (beta == 0.0f) {
        BK_UNROLL for (int i = 0; i < mr; i++) /* (alpha * x == x when alpha == 1) */
            _mm512_storeu_ps(c + i * ldc, alpha == 1.0f ? acc[i] : _mm512_mul_ps(va, acc[i]));
    } else {
        const __m512 vb = _mm512_set1_ps(beta);
        BK_UNROLL for (int i = 0; i < mr; i++) {
            const __m512 old = _mm512_mul_ps(vb, _mm512_loadu_ps(c + i * ldc));
            _mm512_storeu_ps(c + i * ldc, _mm512_fmadd_ps(va, acc[i], old));
        }
    }
}

__attribute__((target("avx512f"))) static void micro_16x16(int64_t kc, const float *a, const float *b,
                                                           int64_t bs, float alpha, float beta, float *c,
                                                           int64_t ldc) {
    micro_rows(16, kc, a, b, bs, alpha, beta, c, ldc);
}

__attribute__((target("avx512f"))) static void micro_8x16(int64_t kc, const float *a, const float *b,
                                                          int64_t bs, float alpha, float beta, float *c,
                                                          int64_t ldc) {
    micro_rows(8, kc, a, b, bs, alpha, beta, c, ldc);
}

/* ---- tiny products ---------------------------------------------------------------------
 * C = alpha * op(A) @ op(B) + beta * C read where the operands lie: no packing, no buffer,
 * one thread. Each C element's sum runs over k in increasing order when op(B) = B; for
 * op(B) = B^T (rows of B contiguous in k) it is a dot product over k in 16 lanes, reduced at
 * the end. The loops over the blocks are gemm_small_tmpl.h's; this file gives its 16-lane
 * blocks. */

/* lanes [0, n) of a 16-float vector (none for n <= 0, all for n >= 16) */
__attribute__((target("avx512f"))) static inline __mmask16 lanes(int64_t n) {
    return (__mmask16)(n >= 16 ? 0xFFFF : n <= 0 ? 0 : (1u << n) - 1u);
}

/* C[i0 .. i0+mr, j .. j+16nv) = alpha * op(A) @ B (+ beta * C), the rows sharing each load
 * of B: acc[r][v] += op(A)[i0 + r, k] * B[k, j + 16v ..], k in increasing order (the same
 * arithmetic for an element whatever mr). m: the lanes of each vector inside N. */
__attribute__((target("avx512f"), always_inline)) static inline void
nn_block(const int mr, const int nv, const __mmask16 *m, int64_t K, const float *a, int64_t ars, int64_t aks,
         const float *bj, int64_t ldb, float alpha, float beta, float *cij, int64_t ldc) {
    __m512 acc[NN_ROWS][4];
    BK_UNROLL for (int r = 0; r < mr; r++) BK_UNROLL for (int v = 0; v < nv; v++)
        acc[r][v] = _mm512_setzero_ps();
    for (int64_t k = 0; k < K; k++, a += aks, bj += ldb) {
        __m512 b[4];
        BK_UNROLL for (int v = 0; v < nv; v++) b[v] = _mm512_maskz_loadu_ps(m[v], bj + 16 * v);
        BK_UNROLL for (int r = 0; r < mr; r++) {
            const __m512 ar = _mm512_set1_ps(a[r * ars]);
            BK_UNROLL for (int v = 0; v < nv; v++) acc[r][v] = _mm512_fmadd_ps(ar, b[v], acc[r][v]);
        }
    }
    BK_UNROLL for (int r = 0; r < mr; r++) BK_UNROLL for (int v = 0; v < nv; v++) {
        float *c = cij + r * ldc + 16 * v;
        __m512 x = alpha == 1.0f ? acc[r][v] : _mm512_mul_ps(_mm512_set1_ps(alpha), acc[r][v]);
        if (beta != 0.0f) x = _mm512_fmadd_ps(_mm512_set1_ps(beta), _mm512_maskz_loadu_ps(m[v], c), x);
        _mm512_mask_storeu_ps(c, m[v], x);
    }
}

/* the template's nn_rows: nn_block, the edge masked like the rest (masked stores cost
 * nothing here) */
#define nn_rows(mr, nv, full, ...) nn_block(mr, nv, __VA_ARGS__)

/* The 16 lane sums of x[0..15], lane j holding x[4 * (j % 4) + j / 4]'s (a tree of
 * 128-bit, 64-bit and 32-bit shuffles: 45 instructions instead of 16 reductions of ~8). */
__attribute__((target("avx512f"))) static inline __m512 sum_lanes16(const __m512 *x) {
    __m512 r[8], s[4], u[2];
    BK_UNROLL for (int p = 0; p < 8; p++) /* 128-bit quarters 0+2, 1+3 of two vectors */
        r[p] = _mm512_add_ps(_mm512_shuffle_f32x4(x[2 * p], x[2 * p + 1], 0x44),
                             _mm512_shuffle_f32x4(x[2 * p], x[2 * p + 1], 0xEE));
    BK_UNROLL for (int p = 0; p < 4; p++) /* then 0+1: a vector's 4 partial sums per quarter */
        s[p] = _mm512_add_ps(_mm512_shuffle_f32x4(r[2 * p], r[2 * p + 1], 0x88),
                             _mm512_shuffle_f32x4(r[2 * p], r[2 * p + 1], 0xDD));
    BK_UNROLL for (int p = 0; p < 2; p++) /* within each quarter: 2 partial sums */
        u[p] = _mm512_add_ps(_mm512_unpacklo_ps(s[2 * p], s[2 * p + 1]),
                             _mm512_unpackhi_ps(s[2 * p], s[2 * p + 1]));
    const __m512d u0 = _mm512_castps_pd(u[0]), u1 = _mm512_castps_pd(u[1]);
    return _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(u0, u1)),
                         _mm512_castpd_ps(_mm512_unpackhi_pd(u0, u1)));
}

/* C[i0 .. i0+mr, j0 .. j0+nj) = alpha * dot(A[i, :], B[j, :]) (+ beta * C), nj <= W =
 * 16 / mr, with the rows of A and B contiguous in k: 16 dot products over k in 16 lanes,
 * reduced together. mr rows of A share each load of B (Zen 4, gemm_bench -c: 256x10x256 took
 * 27.4 us a row at a time, 16.3 in pairs, 15.3 in fours; the seed MLP's 2x10x256 0.21 and
 * 0.14 in pairs; its 2x256x20 stayed at ~0.65, bound by its FMAs, 12 of whose 32 lanes a
 * row are padding, and the reduction).
 * Slot s of acc holds the dot product that
 * sum_lanes16 leaves in lane L = 4 * (s % 4) + s / 4, i.e. row L / W, column L % W; each
 * slot's lanes are summed in the same order whatever the slot, so an element has the same
 * bits whatever mr. `full` (nj == W) drops the test for columns past N. */
__attribute__((target("avx512f"), always_inline)) static inline void
nt_rows(const int mr, const bool full, int64_t nj, int64_t K, const float *ai, int64_t lda, const float *bj,
        int64_t ldb, float alpha, float beta, float *cij, int64_t ldc) {
    const int W = 16 / mr;
    __m512 acc[16];
    BK_UNROLL for (int s = 0; s < 16; s++) acc[s] = _mm512_setzero_ps();
    for (int64_t k = 0; k < K; k += 16) {
        const __mmask16 m = lanes(K - k);
        __m512 a[4];
        BK_UNROLL for (int r = 0; r < mr; r++) a[r] = _mm512_maskz_loadu_ps(m, ai + r * lda + k);
        BK_UNROLL for (int col = 0; col < W; col++) {
            if (!full && col >= nj) continue;
            const __m512 b = _mm512_maskz_loadu_ps(m, bj + col * ldb + k);
            BK_UNROLL for (int r = 0; r < mr; r++) {
                const int L = r * W + col, s = 4 * (L % 4) + L / 4;
                acc[s] = _mm512_fmadd_ps(a[r], b, acc[s]);
            }
        }
    }
    __m512 sum = sum_lanes16(acc);
    if (alpha != 1.0f) sum = _mm512_mul_ps(_mm512_set1_ps(alpha), sum);
    const __mmask16 mj = lanes(nj);
    const __m512i lane = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
    BK_UNROLL for (int r = 0; r < mr; r++) { /* row r: lanes [r W, r W + W) moved down to 0 */
        const __m512i from = _mm512_add_epi32(_mm512_set1_epi32(r * W), lane);
        __m512 x = r == 0 ? sum : _mm512_permutexvar_ps(from, sum);
        float *c = cij + r * ldc;
        if (beta != 0.0f) x = _mm512_fmadd_ps(_mm512_set1_ps(beta), _mm512_maskz_loadu_ps(mj, c), x);
        _mm512_mask_storeu_ps(c, mj, x);
    }
}

/* the template's nt_group: rows of A in fours (4 columns a group), then pairs (8), then one */
#define NT_ROWS 4
#define nt_group(mr, full, ...) nt_rows(mr, full, __VA_ARGS__)

#define FLAT_MAX_K 8
#define FLAT_MAX_V 16
/* nn_flat's whole periods for rows [0, M) (M a multiple of R), V a constant */
__attribute__((target("avx512f"), always_inline)) static inline void
flat_periods(const int V, int64_t M, int64_t R, int64_t N, int64_t K, float alpha, const float *A,
             int64_t lda, const __m512 *bp, const __m512i *idx, float beta, float *C) {
    const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
    const __mmask16 mr = lanes(R);
    for (int64_t i0 = 0; i0 < M; i0 += R) {
        __m512 acc[FLAT_MAX_V];
        BK_UNROLL for (int v = 0; v < V; v++) acc[v] = _mm512_setzero_ps();
        for (int64_t k = 0; k < K; k++) {
            const __m512 a = _mm512_maskz_loadu_ps(mr, A + k * lda + i0);
            BK_UNROLL for (int v = 0; v < V; v++)
                acc[v] = _mm512_fmadd_ps(_mm512_permutexvar_ps(idx[v], a), bp[k * FLAT_MAX_V + v], acc[v]);
        }
        float *c = C + i0 * N;
        BK_UNROLL for (int v = 0; v < V; v++) {
            __m512 x = alpha == 1.0f ? acc[v] : _mm512_mul_ps(va, acc[v]);
            if (beta != 0.0f) x = _mm512_fmadd_ps(vb, _mm512_loadu_ps(c + 16 * v), x);
            _mm512_storeu_ps(c + 16 * v, x);
        }
    }
}

/* A^T @ B with few k (a weight gradient dy^T x at a small batch) into a C whose rows are
 * contiguous (ldc == N) and whose N is not a multiple of 16: C's rows seen as one flat
 * array, in periods of R = 16 / gcd(N, 16) rows = V = N / gcd(N, 16) whole vectors (N = 20:
 * 4 rows in 5 vectors). Lane l of vector v of a period is C[i0 + r, j] with
 * 16 v + l = r N + j; its product term for k is A^T[i0 + r, k] (A[k, i0 ..] loaded once and
 * permuted into place) times B[k, j] (a period of B's row k, built once per call). The
 * row-wise blocks store each row as 1-2 vectors, the last one masked and mostly split
 * across cache lines: 256 x 20 x 2 took 0.6 us that way. Each element's sum is nn_block's
 * (k increasing from zero, then alpha, then beta C), so the bits are the same. Returns
 * false, having done nothing, outside these shapes. */
__attribute__((target("avx512f"))) static bool nn_flat(bool ta, int64_t M, int64_t N, int64_t K, float alpha,
                                                       const float *A, int64_t lda, const float *B,
                                                       int64_t ldb, float beta, float *C, int64_t ldc) {
    const int64_t g = N % 16 == 0 ? 16 : N % 8 == 0 ? 8 : N % 4 == 0 ? 4 : N % 2 == 0 ? 2 : 1;
    const int64_t R = 16 / g, V = N / g; /* rows and vectors of a period */
    if (!ta || ldc != N || g == 16 || K < 1 || K > FLAT_MAX_K || V > FLAT_MAX_V || M < R) return false;
    __m512 bp[FLAT_MAX_K][FLAT_MAX_V]; /* bp[k][v] lane l: B[k, (16 v + l) % N] */
    __m512i idx[FLAT_MAX_V];           /* idx[v] lane l: (16 v + l) / N, the row in the period */
    float lane[FLAT_MAX_K][16];
    int32_t row[16];
    for (int64_t v = 0, r = 0, col = 0; v < V; v++) { /* (16 v + l) = r N + col, counted */
        for (int l = 0; l < 16; l++) {
            for (int64_t k = 0; k < K; k++) lane[k][l] = B[k * ldb + col];
            row[l] = (int32_t)r;
            if (++col == N) col = 0, r++;
        }
        for (int64_t k = 0; k < K; k++) bp[k][v] = _mm512_loadu_ps(lane[k]);
        idx[v] = _mm512_loadu_si512(row);
    }
    /* the whole periods, their V accumulators in registers (V <= 8) */
    const int64_t i0 = V <= 8 ? M / R * R : 0;
    const __m512 *bq = &bp[0][0];
    if (V == 1) flat_periods(1, i0, R, N, K, alpha, A, lda, bq, idx, beta, C);
    else if (V == 2) flat_periods(2, i0, R, N, K, alpha, A, lda, bq, idx, beta, C);
    else if (V == 3) flat_periods(3, i0, R, N, K, alpha, A, lda, bq, idx, beta, C);
    else if (V == 4) flat_periods(4, i0, R, N, K, alpha, A, lda, bq, idx, beta, C);
    else if (V == 5) flat_periods(5, i0, R, N, K, alpha, A, lda, bq, idx, beta, C);
    else if (V == 6) flat_periods(6, i0, R, N, K, alpha, A, lda, bq, idx, beta, C);
    else if (V == 7) flat_periods(7, i0, R, N, K, alpha, A, lda, bq, idx, beta, C);
    else if (V == 8) flat_periods(8, i0, R, N, K, alpha, A, lda, bq, idx, beta, C);
    const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
    for (int64_t i = i0; i < M; i += R) { /* the rest (every period when V > 8), a vector at a time */
        const int64_t rows = M - i < R ? M - i : R, n = rows * N; /* floats of this period */
        __m512 a[FLAT_MAX_K];
        for (int64_t k = 0; k < K; k++) a[k] = _mm512_maskz_loadu_ps(lanes(rows), A + k * lda + i);
        float *c = C + i * N;
        for (int64_t v = 0; v < V && 16 * v < n; v++) {
            __m512 acc = _mm512_setzero_ps();
            for (int64_t k = 0; k < K; k++)
                acc = _mm512_fmadd_ps(_mm512_permutexvar_ps(idx[v], a[k]), bp[k][v], acc);
            const __mmask16 m = lanes(n - 16 * v);
            __m512 x = alpha == 1.0f ? acc : _mm512_mul_ps(va, acc);
            if (beta != 0.0f) x = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m, c + 16 * v), x);
            _mm512_mask_storeu_ps(c + 16 * v, m, x);
        }
    }
    return true;
}
#define NN_FLAT(...) nn_flat(__VA_ARGS__)

#define VW 16
#define NV_MAX 4
#define KTARGET "avx512f"
#define MASK __mmask16
#define LANES(n) lanes(n)
#include "gemm_small_tmpl.h"
#undef nn_rows
#undef NN_FLAT

static bool usable(void) {
    /* the packing uses AVX2 (every AVX-512 CPU has it) */
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx2");
}

/* the fields grouped by what they are (clang-format would write one a line) */
/* clang-format off */
const bk__gemm_kernel bk__gemm_kernel_avx512 = {
    .name = "avx512 16x16", .key = "avx512", .usable = usable,
    .mr = MR, .nr = NR,                   /* register tile */
    .mc = 192, .kc = 256, .nc = 4096,     /* cache blocks */
    .micro = micro_16x16, .micro_half = micro_8x16, .pack_rows = bk__gemm_pack_rows_avx2,
    .small_nn = small_nn, .small_nt = small_nt, /* gemm_small_tmpl.h */
};
/* clang-format on */

#else
/* ISO C forbids an empty translation unit. */
typedef int bk__gemm_avx512_unavailable;
#endif
