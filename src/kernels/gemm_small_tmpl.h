/* gemm_small_tmpl.h - the unpacked path for tiny products (small_nn, small_nt; gemm.h has
 * their contract) for one instruction set: the loops over blocks of C, the same for every
 * set. gemm_avx2.c and gemm_avx512.c include it once, after defining
 *   VW          floats per vector (8, 16); NV_MAX: most vectors per block of columns (3, 4)
 *   KTARGET     the target attribute's string ("avx2,fma", "avx512f")
 *   MASK        the type of a lane mask, LANES(n): the mask of lanes [0, n) of a vector
 * and two always-inline functions for their vectors (and optionally NN_FLAT(ta, M, N, K, alpha,
 * A, lda, B, ldb, beta, C, ldc): a whole small_nn for the shapes it takes, true when it did):
 *   nn_rows(mr, nv, full, m, K, a, ars, aks, bj, ldb, alpha, beta, cij, ldc):
 *     C[i0 .. i0+mr, j .. j+VW nv) = alpha * op(A) @ B (+ beta * C), op(A)[i0 + r, k] at
 *     a[r*ars + k*aks], B's columns from bj; m: each vector's lanes inside N, full: all are
 *     (only with NN_FULL defined; else nn_rows is a macro that drops `full` unread: GCC 12
 *     allocated the AVX-512 loop's registers differently when it computed even a dead one)
 *   nt_group(mr, full, nj, K, ai, lda, bj, ldb, alpha, beta, cij, ldc), mr 1 to NT_ROWS:
 *     C[i .. i+mr, j0 .. j0+nj) = alpha * dot(A[i, :], B[j, :]) (+ beta * C), nj <= VW / mr,
 *     A's rows from ai (stride lda), C's from cij (stride ldc); NT_ROWS 1, 2 or 4 (the
 *     rows taken a pair or four at a time; mr then 1, 2 or 4)
 *   NN_ROWS     (optional, default 4) most rows of a small_nn block: 4 or more (AVX-512: 6,
 *               6 x 4 accumulators in its 32 registers), the last rows then in a block of 4
 *               and one of 1 to 3
 * Not a header for anyone else; it #undefs its parameters at its end.
 */
#ifndef NN_ROWS
#define NN_ROWS 4
#endif

/* C = alpha * op(A) @ B (+ beta * C) in blocks of NN_ROWS rows, then 4, then 1 to 3, x VW nv
 * columns, the rows sharing each load of B (an element's sum is the same in any block). */
__attribute__((target(KTARGET), always_inline)) static inline void
small_nn_v(const int nv, bool ta, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
           const float *B, int64_t ldb, float beta, float *C, int64_t ldc) {
    const int64_t ars = ta ? 1 : lda, aks = ta ? lda : 1; /* op(A)[i, k] = A[i*ars + k*aks] */
    for (int64_t j = 0; j < N; j += VW * nv) {
        MASK m[4];
        BK_UNROLL for (int v = 0; v < nv; v++) m[v] = LANES(N - j - VW * v);
#ifdef NN_FULL
        const bool full = j + VW * nv <= N; /* no column of the block past N */
#endif
        int64_t i = 0;
#if NN_ROWS > 4
        for (; i + NN_ROWS <= M; i += NN_ROWS)
            nn_rows(NN_ROWS, nv, full, m, K, A + i * ars, ars, aks, B + j, ldb, alpha, beta, C + i * ldc + j,
                    ldc);
#endif
        for (; i + 4 <= M; i += 4)
            nn_rows(4, nv, full, m, K, A + i * ars, ars, aks, B + j, ldb, alpha, beta, C + i * ldc + j, ldc);
        const float *a = A + i * ars; /* the last 1 to 3 rows */
        float *c = C + i * ldc + j;
        if (M - i == 3) nn_rows(3, nv, full, m, K, a, ars, aks, B + j, ldb, alpha, beta, c, ldc);
        if (M - i == 2) nn_rows(2, nv, full, m, K, a, ars, aks, B + j, ldb, alpha, beta, c, ldc);
        if (M - i == 1) nn_rows(1, nv, full, m, K, a, ars, aks, B + j, ldb, alpha, beta, c, ldc);
    }
}

/* small_nn_v over the columns: first the whole vectors (blocks of NV_MAX, then one block of
 * the 1 to NV_MAX-1 left), then the last N % VW columns as a pass of their own. Why the
 * passes: a block's rows overlap when its width exceeds ldc, and a row's masked store of
 * the edge vector then covers the next row's load of C (beta != 0): a load that overlaps an
 * older masked store waits for it to retire (no store forwarding), ~30 cycles a row. The
 * weight gradient of Linear(20, 256) on a batch of 2 (256 x 20, K = 2) took 1.8 us in one
 * pass of 32-wide blocks, 0.3 us in these (Zen 5). Every element's sum is the same. */
__attribute__((target(KTARGET))) static void small_nn(bool ta, int64_t M, int64_t N, int64_t K, float alpha,
                                                      const float *A, int64_t lda, const float *B,
                                                      int64_t ldb, float beta, float *C, int64_t ldc) {
#ifdef NN_FLAT /* the ISA's flat pass for the shapes it takes */
    if (NN_FLAT(ta, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc)) return;
#endif
    const int64_t nfull = N / VW * VW, nwide = nfull / (VW * NV_MAX) * (VW * NV_MAX);
    if (nwide > 0) small_nn_v(NV_MAX, ta, M, nwide, K, alpha, A, lda, B, ldb, beta, C, ldc);
    const int64_t rest = (nfull - nwide) / VW; /* 0 .. NV_MAX-1 whole vectors */
    const float *b = B + nwide;
    float *c = C + nwide;
    if (rest == 1) small_nn_v(1, ta, M, VW, K, alpha, A, lda, b, ldb, beta, c, ldc);
    else if (rest == 2) small_nn_v(2, ta, M, 2 * VW, K, alpha, A, lda, b, ldb, beta, c, ldc);
#if NV_MAX > 3
    else if (rest == 3) small_nn_v(3, ta, M, 3 * VW, K, alpha, A, lda, b, ldb, beta, c, ldc);
#endif
    if (N > nfull) small_nn_v(1, ta, M, N - nfull, K, alpha, A, lda, B + nfull, ldb, beta, C + nfull, ldc);
}

/* rows [i, i+mr) of A @ B^T in groups of VW / mr columns (the last one narrower) */
__attribute__((target(KTARGET), always_inline)) static inline void
small_nt_rows(const int mr, int64_t i, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
              const float *B, int64_t ldb, float beta, float *C, int64_t ldc) {
    const int64_t w = VW / mr;
    const float *ai = A + i * lda;
    float *ci = C + i * ldc;
    int64_t j0 = 0;
    for (; j0 + w <= N; j0 += w)
        nt_group(mr, true, w, K, ai, lda, B + j0 * ldb, ldb, alpha, beta, ci + j0, ldc);
    if (j0 < N) nt_group(mr, false, N - j0, K, ai, lda, B + j0 * ldb, ldb, alpha, beta, ci + j0, ldc);
}

/* A @ B^T, 4 rows of C at a time (NT_ROWS 4), then 2 (NT_ROWS >= 2), then 1 */
__attribute__((target(KTARGET))) static void small_nt(bool ta, int64_t M, int64_t N, int64_t K, float alpha,
                                                      const float *A, int64_t lda, const float *B,
                                                      int64_t ldb, float beta, float *C, int64_t ldc) {
    (void)ta; /* (always false: A @ B^T) */
    int64_t i = 0;
#if NT_ROWS > 2
    for (; i + 4 <= M; i += 4) small_nt_rows(4, i, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
#endif
#if NT_ROWS > 1
    for (; i + 2 <= M; i += 2) small_nt_rows(2, i, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
#endif
    for (; i < M; i++) small_nt_rows(1, i, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

#undef NN_FULL
#undef NN_ROWS
#undef NT_ROWS
#undef nt_group
#undef VW
#undef NV_MAX
#undef KTARGET
#undef MASK
#undef LANES
