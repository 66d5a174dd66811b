/* gemm.c - brick's own SGEMM: C = alpha * op(A) @ op(B) + beta * C, row-major.
 *
 * GotoBLAS / BLIS design. For each NC-wide column block of C and each KC-deep slice of K,
 * op(B)[pc:pc+kc, jc:jc+nc] is packed into NR-wide micro-panels; each thread then packs
 * MC x KC blocks of its rows of op(A) into MR-tall micro-panels and sweeps a
 * register-blocked micro-kernel over its MR x NR tiles of C. Packing absorbs the four
 * transpose combinations and the leading dimensions and zero-pads the edges, so a
 * micro-kernel only sees whole tiles; partial tiles of C go through a small buffer. With
 * few rows of C and op(B) = B, the kernel reads B in place instead (packing would cost
 * more than it saves).
 *
 * Micro-kernels (gemm.h): AVX-512 16x16 (gemm_avx512.c) or AVX2+FMA 6x16 (gemm_avx2.c) when
 * the CPU has it, else a portable 4x8 one (GCC/Clang vector extensions: SSE2, NEON, or
 * scalar); chosen once per process (choose_kernel). Products that run on one thread
 * (M*N*K < PARALLEL_MIN_MNK) take the kernel's own unpacked path when it has one and says it
 * is faster for the shape (AVX-512: vectorised, no packing, no allocation), else tiny ones
 * (M*N*K < SMALL_MNK) a plain loop.
 *
 * Threads (OpenMP, for M*N*K >= PARALLEL_MIN_MNK) split the tiles of C in a grid of row
 * bands x column bands (thread_grid). With a column split alone each thread packs the B
 * panels it uses and they never wait for each other; otherwise they pack the shared B
 * panels together, with one barrier per panel (double-buffered).
 *
 * Determinism: threads split the tiles of C, never K, and the K slicing depends only on K
 * and the kernel. Every C element is therefore summed in the same order whatever the
 * thread count: results are bitwise identical for 1 or n threads (tests/test_gemm.c
 * checks it). They may differ between kernels, or between the small and the packed path
 * (different rounding: FMA, order); the path depends on the shape only.
 *
 * Memory: one aligned allocation per call for the packing buffers: (1 or 2) x KC x NC +
 * threads x (MC + NR) x KC floats at most (~9 MiB with 2 threads, far less for small
 * shapes). malloc + free cost ~0.1 µs here, well under 1% of any packed call (a 32^3
 * product takes ~1.5 µs). If it fails, the unpacked loop computes the result anyway.
 */
#include "internal.h"

#include "gemm.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#define SMALL_MNK 512              /* below this M*N*K, the unpacked loop (measured: */
                                   /* packing wins from about 8 x 8 x 8 up) */
#define PARALLEL_MIN_MNK (1 << 20) /* below this M*N*K, one thread (measured: 2 threads */
                                   /* lose at 64^3, win at 100^3) */
#define B_DIRECT_MAX_M 12          /* up to this M, a non-transposed B is read in place */

#if defined(__GNUC__)
#define BK_ALWAYS_INLINE __attribute__((always_inline))
#else
#define BK_ALWAYS_INLINE
#endif

/* ---- the portable micro-kernel ------------------------------------------------------- */

#define PMR 4
#define PNR 8

#if defined(__GNUC__)
/* GCC / Clang vector extensions: SSE2 on any x86-64, NEON on ARM, scalar code elsewhere.
 * The 4 x 8 tile lives in eight 4-float accumulators; memcpy makes the loads and stores
 * unaligned-safe (it compiles to plain vector moves). */
typedef float v4f __attribute__((vector_size(16)));

static inline v4f v4f_load(const float *p) {
    v4f v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline void v4f_store(float *p, v4f v) { memcpy(p, &v, sizeof v); }

static void micro_portable(int64_t kc, const float *a, const float *b, int64_t bs, float alpha, float beta,
                           float *c, int64_t ldc) {
    /* rows spelled out: GCC -O2 would keep an array of accumulators in memory */
    v4f c00 = {0}, c01 = {0}, c10 = {0}, c11 = {0}, c20 = {0}, c21 = {0}, c30 = {0}, c31 = {0};
    for (int64_t k = 0; k < kc; k++, a += PMR, b += bs) {
        const v4f b0 = v4f_load(b), b1 = v4f_load(b + 4);
        v4f ai = {a[0], a[0], a[0], a[0]};
        c00 += ai * b0;
        c01 += ai * b1;
        ai = (v4f){a[1], a[1], a[1], a[1]};
        c10 += ai * b0;
        c11 += ai * b1;
        ai = (v4f){a[2], a[2], a[2], a[2]};
        c20 += ai * b0;
        c21 += ai * b1;
        ai = (v4f){a[3], a[3], a[3], a[3]};
        c30 += ai * b0;
        c31 += ai * b1;
    }
    const v4f acc[PMR][2] = {{c00, c01}, {c10, c11}, {c20, c21}, {c30, c31}};
    const v4f va = {alpha, alpha, alpha, alpha}, vb = {beta, beta, beta, beta};
    for (int i = 0; i < PMR; i++) {
        float *ci = c + i * ldc;
        if (beta == 0.0f) {
            v4f_store(ci, va * acc[i][0]);
            v4f_store(ci + 4, va * acc[i][1]);
        } else {
            v4f_store(ci, va * acc[i][0] + vb * v4f_load(ci));
            v4f_store(ci + 4, va * acc[i][1] + vb * v4f_load(ci + 4));
        }
    }
}
#else
/* Plain C for other compilers. */
static void micro_portable(int64_t kc, const float *a, const float *b, int64_t bs, float alpha, float beta,
                           float *c, int64_t ldc) {
    float acc[PMR][PNR] = {{0}};
    for (int64_t k = 0; k < kc; k++)
        for (int i = 0; i < PMR; i++)
            for (int j = 0; j < PNR; j++) acc[i][j] += a[k * PMR + i] * b[k * bs + j];
    for (int i = 0; i < PMR; i++)
        for (int j = 0; j < PNR; j++)
            c[i * ldc + j] = beta == 0.0f ? alpha * acc[i][j] : alpha * acc[i][j] + beta * c[i * ldc + j];
}
#endif

/* the fields grouped by what they are (clang-format would write one a line) */
/* clang-format off */
static const bk__gemm_kernel KERNEL_PORTABLE = {
    .name = "portable 4x8", .key = "portable",
    .mr = PMR, .nr = PNR,                 /* register tile */
    .mc = 128, .kc = 256, .nc = 4096,     /* cache blocks */
    .micro = micro_portable,
};
/* clang-format on */

/* ---- packing ---------------------------------------------------------------------------
 * op(X)[r, k] is X[r*ld + k] when not transposed, X[k*ld + r] when transposed; op(A) is
 * M x K and op(B) is K x N, but B's panels run along its columns, so packing B is packing
 * op(B)^T, whose "rows" are op(B)'s columns: the same routine serves both with the
 * transpose flag inverted. The source is read along whichever direction is contiguous, a
 * cache line at a time (a power-of-two leading dimension would otherwise thrash L1). */

/* Packs rows [r0, r0+rows) x k in [k0, k0+kc) of X (element (r, k) at X[r*rs + k*ks],
 * rs == 1 or ks == 1) into micro-panels of height w, zero-padding the last one; panel p
 * starts at dst + p*ps (ps >= w*kc). */
static inline BK_ALWAYS_INLINE void pack_panels_w(int w, const float *X, int64_t rs, int64_t ks, int64_t r0,
                                                  int64_t rows, int64_t k0, int64_t kc, float *dst,
                                                  int64_t ps) {
    const int64_t full = rows / w, h = rows - full * w; /* whole panels, rows in the last */
    if (rs == 1) {
        /* each k is a contiguous run over the rows: read it once, scatter to the panels */
        for (int64_t k = 0; k < kc; k++) {
            const float *src = X + r0 + (k0 + k) * ks;
            float *d = dst + k * w;
            for (int64_t p = 0; p < full; p++, src += w, d += ps)
                memcpy(d, src, sizeof(float) * (size_t)w); /* w constant: vector moves */
            if (h) {
                memcpy(d, src, sizeof(float) * (size_t)h);
                memset(d + h, 0, sizeof(float) * (size_t)(w - h));
            }
        }
        return;
    }
    /* each row is contiguous in k: gather w rows into a panel */
    for (int64_t p = 0; p < full; p++, dst += ps) {
        const float *src = X + (r0 + p * w) * rs + k0 * ks;
        for (int64_t k = 0; k < kc; k++)
            for (int i = 0; i < w; i++) dst[k * w + i] = src[i * rs + k * ks];
    }
    if (h) {
        const float *src = X + (r0 + full * w) * rs + k0 * ks;
        for (int64_t k = 0; k < kc; k++) {
            for (int64_t i = 0; i < h; i++) dst[k * w + i] = src[i * rs + k * ks];
            for (int64_t i = h; i < w; i++) dst[k * w + i] = 0.0f;
        }
    }
}

/* The same, with the common panel widths made compile-time constants. */
static void pack_panels(const bk__gemm_kernel *kern, int w, const float *X, int64_t rs, int64_t ks,
                        int64_t r0, int64_t rows, int64_t k0, int64_t kc, float *dst, int64_t ps) {
    if (ks == 1 && rs != 1 && kern->pack_rows && kern->pack_rows(w, X + r0 * rs + k0, rs, rows, kc, dst, ps))
        return; /* the kernel's own, vectorised gather */
    switch (w) {
    case 4: pack_panels_w(4, X, rs, ks, r0, rows, k0, kc, dst, ps); break;
    case 6: pack_panels_w(6, X, rs, ks, r0, rows, k0, kc, dst, ps); break;
    case 8: pack_panels_w(8, X, rs, ks, r0, rows, k0, kc, dst, ps); break;
    case 16: pack_panels_w(16, X, rs, ks, r0, rows, k0, kc, dst, ps); break;
    case 32: pack_panels_w(32, X, rs, ks, r0, rows, k0, kc, dst, ps); break;
    case 48: pack_panels_w(48, X, rs, ks, r0, rows, k0, kc, dst, ps); break;
    case 64: pack_panels_w(64, X, rs, ks, r0, rows, k0, kc, dst, ps); break;
    default: pack_panels_w(w, X, rs, ks, r0, rows, k0, kc, dst, ps); break;
    }
}

/* ---- the unpacked path for tiny products ---------------------------------------------- */

/* Straight loops, k innermost per element and in increasing order. Also the fallback when
 * the packing buffers cannot be allocated. */
static void gemm_small(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                       int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc) {
    int64_t ars = ta ? 1 : lda, aks = ta ? lda : 1; /* op(A)[i, k] = A[i*ars + k*aks] */
    int64_t bks = tb ? 1 : ldb, bcs = tb ? ldb : 1; /* op(B)[k, j] = B[k*bks + j*bcs] */
    enum { JB = 16 };
    for (int64_t i = 0; i < M; i++) {
        float *c = C + i * ldc;
        for (int64_t j0 = 0; j0 < N; j0 += JB) {
            int64_t nb = N - j0 < JB ? N - j0 : JB;
            float acc[JB] = {0};
            for (int64_t k = 0; k < K; k++) {
                float a = A[i * ars + k * aks];
                const float *b = B + k * bks + j0 * bcs;
                for (int64_t j = 0; j < nb; j++) acc[j] += a * b[j * bcs];
            }
            for (int64_t j = 0; j < nb; j++)
                c[j0 + j] = beta == 0.0f ? alpha * acc[j] : alpha * acc[j] + beta * c[j0 + j];
        }
    }
}

/* C = beta * C (the whole product is zero: K == 0 or alpha == 0). */
static void scale_c(int64_t M, int64_t N, float beta, float *C, int64_t ldc) {
    for (int64_t i = 0; i < M; i++) {
        float *c = C + i * ldc;
        if (beta == 0.0f)
            for (int64_t j = 0; j < N; j++) c[j] = 0.0f;
        else if (beta != 1.0f)
            for (int64_t j = 0; j < N; j++) c[j] *= beta;
    }
}

/* ---- the blocked, threaded driver ------------------------------------------------------ */

typedef struct gemm_plan {
    const bk__gemm_kernel *kern;
    bool ta, tb;
    int64_t M, N, K;
    float alpha, beta;
    const float *A, *B;
    int64_t lda, ldb, ldc;
    float *C;
    int64_t kc, nc;  /* K and N block sizes for this call (<= kern->kc, kern->nc) */
    bool b_direct;   /* the kernel reads op(B) = B in place (not transposed, few rows of C) */
    float *bpack[2]; /* packed B panels (unless b_direct): 2 buffers of nc + threads */
                     /* micro-panels of kc x nr; see gemm_thread */
    float *tbuf;     /* per thread t: tbuf + t * tstride: its A block (mc x kc), then a */
    int64_t tstride; /*   kc x nr micro-panel for B's partial edge panel when b_direct */
} gemm_plan;

static int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

/* Splits T threads into a tm x tn grid over the tiles of C, the one whose busiest thread
 * finishes first by a rough cycle count: its multiply-adds (16 a cycle), packing its A
 * rows (~4 a cycle; a column split packs all of A in every thread) and, when several
 * threads share the packed B panels (tm > 1), a barrier per B panel (taken as ~4 µs: a
 * barrier is cheap on an idle machine but costly when the cores are oversubscribed). */
static void thread_grid(const gemm_plan *p, int T, int *tm, int *tn) {
    const bk__gemm_kernel *kern = p->kern;
    const int64_t mp = ceil_div(p->M, kern->mr), np = ceil_div(p->N, kern->nr);
    const double K = (double)p->K;
    const double barriers = p->b_direct ? 0 : (double)ceil_div(p->N, p->nc) * ceil_div(p->K, p->kc);
    double best = 0;
    *tm = T;
    *tn = 1;
    for (int r = T; r >= 1; r--) {
        if (T % r) continue;
        const int c = T / r;
        const double rows = (double)ceil_div(mp, r) * kern->mr;
        const double cols = (double)ceil_div(np, c) * kern->nr;
        const double cycles = rows * cols * K / 16 + rows * K / 4 + (r > 1 ? 1e4 * barriers : 0);
        if (r == T || cycles < best) {
            best = cycles;
            *tm = r;
            *tn = c;
        }
    }
}

/* Updates the tiles of C in rows [ic, ic+mcur) x micro-panels [q0, q1) of the column block
 * at jc, for the K slice at pc, from the packed A block and B: packed (micro-panel q at
 * bq0 + (q - q0) * nr * kc), or in place. */
static void macro_kernel(const gemm_plan *p, const float *apack, const float *bq0, int64_t ic, int64_t mcur,
                         int64_t jc, int64_t q0, int64_t q1, int64_t pc, int64_t kcur, float *bedge) {
    const bk__gemm_kernel *kern = p->kern;
    const int mr = kern->mr, nr = kern->nr;
    const float beta = pc == 0 ? p->beta : 1.0f; /* later K slices accumulate */
    _Alignas(64) float tile[BK_GEMM_MR_MAX * BK_GEMM_NR_MAX] = {0};
    for (int64_t q = q0; q < q1; q++) {
        const int64_t col = jc + q * nr, cols = min64(nr, p->N - col);
        const float *bp;
        int64_t bs = nr; /* row stride of the B micro-panel */
        if (!p->b_direct) {
            bp = bq0 + (q - q0) * nr * p->kc;
        } else if (cols == nr) {
            bp = p->B + pc * p->ldb + col;
            bs = p->ldb;
        } else { /* the ragged right edge: zero-padded copy */
            pack_panels(kern, nr, p->B, 1, p->ldb, col, cols, pc, kcur, bedge, nr * kcur);
            bp = bedge;
        }
        for (int64_t ir = 0; ir < mcur; ir += mr) {
            const float *ap = apack + ir * p->kc;
            const int64_t rows = min64(mr, mcur - ir);
            float *c = p->C + (ic + ir) * p->ldc + col;
            bk__gemm_micro_fn *micro = rows <= mr / 2 && kern->micro_half ? kern->micro_half : kern->micro;
            if (rows == mr && cols == nr) {
                micro(kcur, ap, bp, bs, p->alpha, beta, c, p->ldc);
                continue;
            }
            /* partial tile: the same kernel on a copy, so the arithmetic is identical to a
             * whole tile's */
            if (beta != 0.0f)
                for (int64_t i = 0; i < rows; i++)
                    for (int64_t j = 0; j < cols; j++) tile[i * nr + j] = c[i * p->ldc + j];
            micro(kcur, ap, bp, bs, p->alpha, beta, tile, nr);
            for (int64_t i = 0; i < rows; i++)
                for (int64_t j = 0; j < cols; j++) c[i * p->ldc + j] = tile[i * nr + j];
        }
    }
}

/* One thread's share: thread t of T. All threads walk the same (jc, pc) blocks.
 *
 * Shared B (tm > 1): each thread packs its part of the block's B panel into a common
 * buffer, waits for the others at a barrier, then updates its tiles. Blocks alternate
 * between two buffers, so one barrier per block suffices: a thread past block n's barrier
 * knows that everyone has finished block n-1, whose buffer block n+1 reuses.
 *
 * Column split only (tn == T): each thread packs just the micro-panels of its own column
 * band, into a region of its own, and nobody waits. (Not into a common buffer at the
 * band's position: the bands of a narrower last block start elsewhere, so a thread ahead
 * would overwrite panels that a slower one still reads.) */
static void gemm_thread(const gemm_plan *p, int t, int T) {
    const bk__gemm_kernel *kern = p->kern;
    const int mr = kern->mr, nr = kern->nr;
    int tm, tn;
    thread_grid(p, T, &tm, &tn);
    const int tr = t / tn, tc = t % tn;
    /* this thread's rows of C: whole micro-panels */
    const int64_t mp = ceil_div(p->M, mr);
    const int64_t m0 = min64(p->M, mp * tr / tm * mr), m1 = min64(p->M, mp * (tr + 1) / tm * mr);
    /* MC blocks of equal size (in whole micro-panels) over [m0, m1) */
    const int64_t mrows = m1 - m0;
    const int64_t nmb = ceil_div(mrows, kern->mc);
    const int64_t mc = nmb ? ceil_div(ceil_div(mrows, nmb), mr) * mr : 0;
    float *apack = p->tbuf + t * p->tstride;
    float *bedge = apack + (p->tstride - p->kc * nr);
    /* op(A)[i, k] = A[i*ars + k*aks]; op(B)^T[j, k] = B[j*bjs + k*bks] */
    const int64_t ars = p->ta ? 1 : p->lda, aks = p->ta ? p->lda : 1;
    const int64_t bjs = p->tb ? p->ldb : 1, bks = p->tb ? 1 : p->ldb;
    const bool shared = !p->b_direct && tn < T;
    const int64_t panel = nr * p->kc; /* floats between packed B micro-panels */
    float *const bown = p->bpack[0] + t * ceil_div(p->nc / nr, T) * panel; /* column split */
    int block = 0;

    for (int64_t jc = 0; jc < p->N; jc += p->nc) {
        const int64_t ncur = min64(p->nc, p->N - jc);
        const int64_t npan = ceil_div(ncur, nr);
        /* my tiles: rows [m0, m1) x micro-panels [j0, j1) of this column block */
        const int64_t j0 = npan * tc / tn, j1 = npan * (tc + 1) / tn;
        for (int64_t pc = 0; pc < p->K; pc += p->kc, block++) {
            const int64_t kcur = min64(p->kc, p->K - pc);
            const float *bq0 = NULL; /* where micro-panel j0 lies */
            if (shared) {
                float *bpack = p->bpack[block & 1];
                const int64_t q0 = npan * t / T, q1 = npan * (t + 1) / T; /* my packing share */
                if (q1 > q0)
                    pack_panels(kern, nr, p->B, bjs, bks, jc + q0 * nr, min64(ncur, q1 * nr) - q0 * nr, pc,
                                kcur, bpack + q0 * panel, panel);
#ifdef _OPENMP
#pragma omp barrier
#endif
                bq0 = bpack + j0 * panel;
            } else if (!p->b_direct) {
                if (j1 > j0)
                    pack_panels(kern, nr, p->B, bjs, bks, jc + j0 * nr, min64(ncur, j1 * nr) - j0 * nr, pc,
                                kcur, bown, panel);
                bq0 = bown;
            }
            for (int64_t ic = m0; ic < m1 && j1 > j0; ic += mc) {
                const int64_t mcur = min64(mc, m1 - ic);
                pack_panels(kern, mr, p->A, ars, aks, ic, mcur, pc, kcur, apack, mr * p->kc);
                macro_kernel(p, apack, bq0, ic, mcur, jc, j0, j1, pc, kcur, bedge);
            }
        }
    }
}

/* The kernel's unpacked path where it beats packing, for products run on one thread; false,
 * having done nothing, elsewhere. Measured on Zen 4 with the AVX-512 kernel; the AVX2 one
 * follows the same limits. Both forms re-read B for every block of rows of C, so B
 * must stay in L2 (K * N <= 64Ki floats = 256 KiB); then op(A) @ B ran as fast as the packed
 * path or faster up to there (10x256x256 TN 17.6 against 23.9 us, 64x32x32 1.3 against
 * 2.0 us). The dot products of op(A) = A @ B^T waste lanes when K is small and cost a
 * reduction per 16 outputs: they won only with K >= 8 and few rows of C (4x256x256 10.8
 * against 28.1 us; 256x20x2 lost, 7.4 against 1.7 us) or few columns (the MLP's 10 outputs:
 * 256x10x256). A^T @ B^T always packs. */
static bool small_product(const bk__gemm_kernel *kern, bool ta, bool tb, int64_t M, int64_t N, int64_t K,
                          float alpha, const float *A, int64_t lda, const float *B, int64_t ldb, float beta,
                          float *C, int64_t ldc) {
    if (!kern->small_nn || (double)K * (double)N > 65536.0) return false;
    if (!tb) kern->small_nn(ta, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    else if (!ta && K >= 8 && (M <= 8 || N <= 16))
        kern->small_nt(false, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    else return false;
    return true;
}

static void gemm_blocked(const bk__gemm_kernel *kern, bool ta, bool tb, int64_t M, int64_t N, int64_t K,
                         float alpha, const float *A, int64_t lda, const float *B, int64_t ldb, float beta,
                         float *C, int64_t ldc) {
    if (M <= 0 || N <= 0) return;
    if (K <= 0 || alpha == 0.0f) {
        scale_c(M, N, beta, C, ldc);
        return;
    }
    /* one thread's worth: the kernel's unpacked path where it says that is faster; tiny
     * ones: plain loops */
    const double mnk = (double)M * (double)N * (double)K;
    if (mnk < PARALLEL_MIN_MNK && small_product(kern, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc))
        return;
    if (mnk < SMALL_MNK) {
        gemm_small(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    /* the call (clang-format would write one field a line) */
    /* clang-format off */
    gemm_plan p = {.kern = kern, .ta = ta, .tb = tb, .M = M, .N = N, .K = K, .alpha = alpha, .beta = beta,
                   .A = A, .B = B, .lda = lda, .ldb = ldb, .ldc = ldc, .C = C};
    /* clang-format on */
    /* K in equal slices (the slicing fixes the summation order: it depends on K only) */
    p.kc = ceil_div(K, ceil_div(K, kern->kc));
    /* N in equal blocks of whole micro-panels */
    int64_t nnb = ceil_div(N, kern->nc);
    p.nc = ceil_div(ceil_div(N, nnb), kern->nr) * kern->nr;
    /* With few rows of C, each packed B panel would be used only a few times: cheaper to
     * read B's rows where they lie (possible when op(B) = B; a transposed B needs the
     * packing's gather). Same arithmetic either way. */
    p.b_direct = !tb && M <= B_DIRECT_MAX_M;

    int nth = 1;
#ifdef _OPENMP
    if ((double)M * (double)N * (double)K >= PARALLEL_MIN_MNK && !omp_in_parallel())
        nth = omp_get_max_threads();
    if (nth > 256) nth = 256;
#endif
    /* packing buffers, one allocation of 64-byte aligned pieces: B panels (a second buffer
     * when threads share them; room for a partial band per thread when they do not), then
     * each thread's A block and edge panel */
    const int64_t mc_max = min64(kern->mc, ceil_div(M, kern->mr) * kern->mr);
    const size_t bfloats = p.b_direct ? 0
                                      : (size_t)((p.nc / kern->nr + nth) * kern->nr * p.kc + 15) / 16 * 16;
    const size_t nbuf = nth > 1 ? 2 : 1;
    p.tstride = (mc_max * p.kc + p.kc * kern->nr + 15) / 16 * 16;
    size_t bytes = (nbuf * bfloats + (size_t)p.tstride * (size_t)nth) * sizeof(float);
    float *buf = aligned_alloc(64, (bytes + 63) / 64 * 64);
    if (!buf) { /* out of memory: the unpacked loop needs none */
        gemm_small(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    p.bpack[0] = buf;
    p.bpack[1] = buf + (nbuf - 1) * bfloats;
    p.tbuf = buf + nbuf * bfloats;
#ifdef _OPENMP
    if (nth > 1) {
#pragma omp parallel num_threads(nth)
        gemm_thread(&p, omp_get_thread_num(), omp_get_num_threads());
    } else
#endif
        gemm_thread(&p, 0, 1);
    free(buf);
}

/* ---- entry points ------------------------------------------------------------------- */

/* The kernels, best first; the portable one, last, runs everywhere. */
static const bk__gemm_kernel *kernel_table(size_t i) {
    switch (i) {
#ifdef BK_GEMM_HAVE_AVX512
    case 0: return &bk__gemm_kernel_avx512;
#endif
#ifdef BK_GEMM_HAVE_AVX2
    case 1: return &bk__gemm_kernel_avx2;
#endif
    case 2: return &KERNEL_PORTABLE;
    default: return NULL;
    }
}
#define N_KERNELS 3

static bool kernel_usable(const bk__gemm_kernel *k) { return k && (!k->usable || k->usable()); }

/* The kernel whose key is `key` if this CPU and build can run it, else NULL. */
static const bk__gemm_kernel *kernel_named(const char *key) {
    for (size_t i = 0; i < N_KERNELS; i++) {
        const bk__gemm_kernel *k = kernel_table(i);
        if (k && !strcmp(k->key, key)) return kernel_usable(k) ? k : NULL;
    }
    return NULL;
}

/* The micro-kernel: the first usable one of AVX-512, AVX2+FMA and portable, unless
 * BRICK_GEMM_KERNEL says otherwise: "portable" rounds the same on every CPU and runs about
 * 9x faster under valgrind, which emulates the FMA instructions in its own code (and cannot
 * run AVX-512 at all: it hides it from CPUID, so auto picks AVX2 there); "avx512" or "avx2"
 * insists on that kernel; "auto" (or unset) chooses. A bad value, or a kernel this CPU
 * cannot run, is told on stderr once and falls back to auto. */
static const bk__gemm_kernel *choose_kernel(void) {
    const bk__gemm_kernel *best = NULL;
    for (size_t i = 0; i < N_KERNELS && !best; i++)
        if (kernel_usable(kernel_table(i))) best = kernel_table(i);
    const char *want = getenv("BRICK_GEMM_KERNEL");
    if (!want || !want[0] || !strcmp(want, "auto")) return best;
    const bk__gemm_kernel *k = kernel_named(want);
    if (k) return k;
    if (!strcmp(want, "avx512") || !strcmp(want, "avx2"))
        fprintf(stderr,
                "brick: BRICK_GEMM_KERNEL=%s, but this CPU or build has no such kernel: "
                "using the %s kernel\n",
                want, best->name);
    else
        fprintf(stderr,
                "brick: BRICK_GEMM_KERNEL='%s' is not auto, avx512, avx2 or portable: "
                "using the %s kernel\n",
                want, best->name);
    return best;
}

/* Chosen once per process. Threads that race on the first call all choose the same kernel. */
static const bk__gemm_kernel *best_kernel(void) {
    static _Atomic(const bk__gemm_kernel *) chosen;
    const bk__gemm_kernel *k = atomic_load_explicit(&chosen, memory_order_acquire);
    if (!k) {
        k = choose_kernel();
        atomic_store_explicit(&chosen, k, memory_order_release);
    }
    return k;
}

void bk__sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
               int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc) {
    gemm_blocked(best_kernel(), trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

/* bk__sgemm with one kernel forced: one function per kernel of the table. */
#define BK_SGEMM_WITH(i)                                                                             \
    static void sgemm_with_##i(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha,       \
                               const float *A, int64_t lda, const float *B, int64_t ldb, float beta, \
                               float *C, int64_t ldc) {                                              \
        gemm_blocked(kernel_table(i), ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);         \
    }
BK_SGEMM_WITH(0)
BK_SGEMM_WITH(1)
BK_SGEMM_WITH(2)
#undef BK_SGEMM_WITH

bk__sgemm_fn *bk__sgemm_kernel(const char *kernel) {
    static bk__sgemm_fn *const with[N_KERNELS] = {sgemm_with_0, sgemm_with_1, sgemm_with_2};
    for (size_t i = 0; i < N_KERNELS; i++) {
        const bk__gemm_kernel *k = kernel_table(i);
        if (k && kernel_usable(k) && !strcmp(k->key, kernel)) return with[i];
    }
    return NULL;
}

const char *bk_gemm_kernel(void) { return best_kernel()->name; }
