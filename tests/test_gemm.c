/* test_gemm.c - brick's own SGEMM (src/kernels/gemm.c) against a double-precision reference.
 *
 * Every micro-kernel this CPU can run is tested (bk__sgemm_kernel: AVX-512, AVX2+FMA and the
 * portable C one every CPU can run; a kernel the CPU, OS or build lacks, or valgrind cannot
 * run, is skipped with a message), and bk__sgemm (the one chosen), on random shapes with M,
 * N, K in 0..300 (edges, 1, multiples and non-multiples of the tiles and cache blocks), all
 * four transpose combinations, leading dimensions larger than needed, alpha in {1, 0.5, 0}
 * and beta in {0, 1, -0.5}. Padding around every matrix is checked to be untouched, and
 * beta == 0 must ignore NaN already in C. Edge shapes (one row, one column, tiny products,
 * K in many cache slices) are compared with the portable kernel too. Then: results bitwise
 * identical with 1, 2 and 3 OpenMP threads, for each kernel. With BRICK_TEST_QUICK (make
 * valgrind), 40 random cases per kernel instead of 200 and each thread count once: the same
 * kinds of checks, fewer repetitions.
 *
 * Tolerance: a float sum of K products with |terms| <= |a||b| has error at most about
 * K * eps * sum|a_ik b_kj| in the worst case, ~sqrt(K) * eps * sum|..| typically (random
 * rounding). We allow 1e-5 * sqrt(K + 1) relative to the scale
 * |alpha| * sum_k |a_ik b_kj| + |beta c_ij| + tiny (eps = 6e-8, so that is ~100x the
 * typical error and still far below the ~1e-1 error a wrong index or a lost term gives).
 */
#include "internal.h"
#include "test.h"

#ifdef _OPENMP
#include <omp.h>
#endif

typedef bk__sgemm_fn sgemm_fn;

/* The kernels, by their BRICK_GEMM_KERNEL names. */
static const char *const KERNELS[] = {"avx512", "avx2", "portable"};
#define N_KERNELS (sizeof KERNELS / sizeof *KERNELS)

/* The kernel's sgemm, or NULL after saying why the test skips it. */
static sgemm_fn *kernel_or_skip(const char *kernel, const char *test) {
    sgemm_fn *f = bk__sgemm_kernel(kernel);
    if (!f)
        printf(
            "  skip %s for kernel %s: this CPU, OS or build cannot run it (valgrind hides "
            "AVX-512)\n",
            test, kernel);
    return f;
}

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint64_t rnd(void) { /* xorshift64* */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1Dull;
}
static float rnd_float(void) { /* uniform in [-1, 1) */
    return (float)((double)(rnd() >> 11) / 9007199254740992.0) * 2.0f - 1.0f;
}
static int64_t rnd_int(int64_t n) { return (int64_t)(rnd() % (uint64_t)n); }

#define SENTINEL 12345.0f

/* rows x cols stored with row stride ld (>= cols), every element random; the padding
 * (columns cols..ld-1) holds SENTINEL so that stray reads show up and stray writes to C
 * can be detected. */
static float *matrix_new(int64_t rows, int64_t cols, int64_t ld) {
    size_t n = (size_t)(rows * ld) + 1;
    float *m = malloc(n * sizeof *m);
    if (!m) abort();
    for (int64_t i = 0; i < rows; i++)
        for (int64_t j = 0; j < ld; j++) m[i * ld + j] = j < cols ? rnd_float() : SENTINEL;
    m[rows * ld] = SENTINEL;
    return m;
}

/* Runs one product through f and compares with the double reference; returns false (after
 * printing the case) on any mismatch. */
static bool check_case(const char *what, sgemm_fn *f, bool ta, bool tb, int64_t M, int64_t N, int64_t K,
                       float alpha, float beta, int64_t pad) {
    int64_t ar = ta ? K : M, ac = ta ? M : K, br = tb ? N : K, bc = tb ? K : N;
    int64_t lda = ac + pad, ldb = bc + pad, ldc = N + pad;
    float *A = matrix_new(ar, ac, lda), *B = matrix_new(br, bc, ldb), *C = matrix_new(M, N, ldc);
    float *C0 = malloc(((size_t)(M * ldc) + 1) * sizeof *C0);
    if (!C0) abort();
    memcpy(C0, C, ((size_t)(M * ldc) + 1) * sizeof *C0);
    if (beta == 0.0f && M > 0 && N > 0) C[0] = C0[0] = NAN; /* must not leak into the result */

    f(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);

    /* reference operands in double, op() applied, both k-contiguous */
    double *Ad = malloc(((size_t)(M * K) + 1) * sizeof *Ad);
    double *Bt = malloc(((size_t)(N * K) + 1) * sizeof *Bt);
    if (!Ad || !Bt) abort();
    for (int64_t i = 0; i < M; i++)
        for (int64_t k = 0; k < K; k++) Ad[i * K + k] = ta ? A[k * lda + i] : A[i * lda + k];
    for (int64_t j = 0; j < N; j++)
        for (int64_t k = 0; k < K; k++) Bt[j * K + k] = tb ? B[j * ldb + k] : B[k * ldb + j];
    bool ok = true;
    for (int64_t i = 0; i < M && ok; i++) {
        for (int64_t j = 0; j < ldc; j++) {
            float got = C[i * ldc + j];
            if (j >= N) { /* padding must be untouched */
                if (got != SENTINEL) ok = false;
                continue;
            }
            double s = 0, scale = 0;
            for (int64_t k = 0; k < K; k++) {
                double ab = Ad[i * K + k] * Bt[j * K + k];
                s += ab;
                scale += fabs(ab);
            }
            double c0 = beta == 0.0f ? 0.0 : C0[i * ldc + j];
            double want = (double)alpha * s + (double)beta * c0;
            scale = fabs((double)alpha) * scale + fabs((double)beta * c0) + 1e-30;
            if (!(fabs(got - want) / scale <= 1e-5 * sqrt((double)K + 1.0))) {
                fprintf(stderr, "    C[%lld, %lld] = %.9g, want %.9g\n", (long long)i, (long long)j, got,
                        want);
                ok = false;
                break;
            }
        }
    }
    free(Ad);
    free(Bt);
    if (M > 0 && C[M * ldc] != SENTINEL) ok = false; /* one past the end */
    if (!ok)
        fprintf(stderr,
                "  %s: trans %d%d M=%lld N=%lld K=%lld alpha=%g beta=%g pad=%lld: "
                "MISMATCH\n",
                what, ta, tb, (long long)M, (long long)N, (long long)K, alpha, beta, (long long)pad);
    free(A);
    free(B);
    free(C);
    free(C0);
    return ok;
}

static const float ALPHAS[] = {1.0f, 0.5f, 0.0f};
static const float BETAS[] = {0.0f, 1.0f, -0.5f};

/* Sizes that hit the edges of the 16x16 / 6x16 / 4x8 tiles and the 192/144/128 x 256 cache
 * blocks. */
static int64_t edge_size(void) {
    static const int64_t sizes[] = {0,   1,   2,   3,   4,   5,   6,   7,   8,   9,   12,  13,  15,  16,
                                    17,  31,  32,  33,  47,  48,  49,  95,  96,  97,  127, 128, 129, 143,
                                    144, 145, 150, 191, 192, 193, 200, 255, 256, 257, 288, 289, 300};
    return rnd_int(2) ? sizes[rnd_int((int64_t)(sizeof sizes / sizeof *sizes))] : rnd_int(301);
}

static void run_random(const char *what, sgemm_fn *f, int cases) {
    int failures = 0;
    for (int n = 0; n < cases && failures < 5; n++) {
        bool ta = n & 1, tb = (n >> 1) & 1;
        int64_t M = edge_size(), N = edge_size(), K = edge_size();
        float alpha = ALPHAS[rnd_int(3)], beta = BETAS[rnd_int(3)];
        int64_t pad = rnd_int(3) ? rnd_int(9) : 0;
        if (!check_case(what, f, ta, tb, M, N, K, alpha, beta, pad)) failures++;
    }
    CHECK(failures == 0);
}

TEST(test_gemm_small_exhaustive) {
    /* every shape up to 9 x 9 x 9 and every flag combination: M*N*K < 512 takes the
     * unpacked loop, the rest the packed path with mostly partial tiles */
    int failures = 0;
    for (int64_t M = 0; M <= 9; M++)
        for (int64_t N = 0; N <= 9; N++)
            for (int64_t K = 0; K <= 9; K += 3)
                for (int t = 0; t < 4; t++)
                    if (!check_case("small", bk__sgemm, t & 1, t >> 1, M, N, K, 0.5f, BETAS[(M + N + K) % 3],
                                    (M + K) % 3))
                        failures++;
    CHECK(failures == 0);
}

/* 200 random cases per kernel (40 under BRICK_TEST_QUICK, i.e. make valgrind) */
TEST(test_gemm_random_best) { run_random(bk_gemm_kernel(), bk__sgemm, test_reps(200, 40)); }

TEST(test_gemm_random_kernels) {
    for (size_t k = 0; k < N_KERNELS; k++) {
        sgemm_fn *f = kernel_or_skip(KERNELS[k], "random");
        if (f) run_random(KERNELS[k], f, test_reps(200, 40));
    }
}

TEST(test_gemm_blocking_edges) {
    /* several K blocks (K > 256), several M blocks per thread, several N panels and N
     * blocks (N > 4096: 7 blocks, the last one narrower), for every kernel and all flag
     * combinations */
    static const int64_t shapes[][3] = {{150, 40, 600},  {290, 33, 257}, {7, 300, 513},
                                        {300, 300, 300}, {64, 1000, 25}, {16, 25600, 40}};
    int failures = 0;
    for (size_t k = 0; k < N_KERNELS; k++) {
        sgemm_fn *f = kernel_or_skip(KERNELS[k], "blocking edges");
        for (size_t s = 0; s < sizeof shapes / sizeof *shapes && f; s++)
            for (int t = 0; t < 4; t++)
                if (!check_case(KERNELS[k], f, t & 1, t >> 1, shapes[s][0], shapes[s][1], shapes[s][2],
                                k % 2 ? 0.5f : 1.0f, k % 2 ? 1.0f : -0.5f, 3))
                    failures++;
    }
    CHECK(failures == 0);
}

/* max |f - portable| / scale on one product (both from the same C), with check_case's
 * tolerance and its scale bounded from above (|a|, |b|, |c| <= 1) */
static bool agrees_with_portable(const char *kernel, sgemm_fn *f, bool ta, bool tb, int64_t M, int64_t N,
                                 int64_t K, float alpha, float beta) {
    int64_t lda = ta ? M : K, ldb = tb ? K : N;
    float *A = matrix_new(ta ? K : M, lda, lda), *B = matrix_new(tb ? N : K, ldb, ldb);
    float *C1 = matrix_new(M, N, N);
    size_t bytes = ((size_t)(M * N) + 1) * sizeof(float);
    float *C2 = malloc(bytes);
    if (!C2) abort();
    if (beta == 0.0f && M > 0 && N > 0) C1[0] = NAN; /* must not leak into the result */
    memcpy(C2, C1, bytes);
    f(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C1, N);
    bk__sgemm_kernel("portable")(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C2, N);
    double worst = 0;
    for (int64_t i = 0; i < M * N; i++) {
        /* |a|, |b|, |c| <= 1: sum_k |a b| <= K */
        double scale = fabs((double)alpha) * (double)K + fabs((double)beta) + 1.0;
        double d = fabs((double)C1[i] - (double)C2[i]) / scale;
        if (!(d <= worst)) worst = d; /* NaN counts as worst */
    }
    bool ok = worst <= 1e-5 * sqrt((double)K + 1.0) && C1[M * N] == SENTINEL;
    if (!ok)
        fprintf(stderr,
                "  %s vs portable: trans %d%d M=%lld N=%lld K=%lld alpha=%g beta=%g: "
                "max scaled difference %.3g\n",
                kernel, ta, tb, (long long)M, (long long)N, (long long)K, alpha, beta, worst);
    free(A);
    free(B);
    free(C1);
    free(C2);
    return ok;
}

TEST(test_gemm_kernel_edges) {
    /* one row, one column, the seed MLP's tiny products (Linear(20,256), Linear(256,10) at
     * batch 2 and their backward shapes) and others on either side of the unpacked path's
     * limits (the MLP's 10-wide layer, M*N*K around 1Mi: 17x300x250 packs, with a last
     * panel of 1 row), tails of every tile (and of the unpacked path's passes: whole
     * blocks, 1 to 3 vectors left, an edge of N % 16 columns; AVX-512's flat pass for A^T @ B
     * with K <= 8: whole and partial periods, 1 to 9 vectors a period; A @ B^T's rows in fours, a pair
     * and one left, a last group of 1 to 7 columns), a huge K (many cache slices); each kernel
     * against the double reference and against the portable kernel */
    static const int64_t shapes[][3] = {{1, 1, 1},      {1, 300, 77},   {300, 1, 77},  {1, 1, 5000},
                                        {2, 256, 20},   {2, 10, 256},   {2, 256, 10},  {10, 256, 2},
                                        {256, 20, 2},   {20, 256, 2},   {256, 2, 10},  {31, 33, 31},
                                        {33, 31, 33},   {17, 65, 9},    {9, 15, 17},   {40, 40, 20},
                                        {23, 45, 4097}, {16, 16, 16},   {8, 100, 64},  {24, 130, 31},
                                        {10, 256, 256}, {256, 10, 256}, {7, 33, 1000}, {17, 300, 250},
                                        {8, 520, 300},  {25, 200, 260}, {5, 56, 7},    {9, 85, 3},
                                        {6, 112, 2},    {3, 37, 5},     {300, 20, 2},  {301, 20, 3},
                                        {77, 12, 4},    {50, 10, 1},    {40, 24, 8},   {45, 36, 2},
                                        {70, 1, 3},     {17, 20, 8},    {7, 23, 21},   {6, 7, 9}};
    static const float alphas[] = {1.0f, 0.5f, -2.0f};
    static const float betas[] = {0.0f, 1.0f, -0.5f};
    int failures = 0;
    for (size_t k = 0; k < N_KERNELS; k++) {
        sgemm_fn *f = kernel_or_skip(KERNELS[k], "kernel edges");
        for (size_t s = 0; s < sizeof shapes / sizeof *shapes && f; s++)
            for (int t = 0; t < 4; t++) {
                const int64_t M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
                const float alpha = alphas[(s + (size_t)t) % 3], beta = betas[(s + k + (size_t)t) % 3];
                if (!check_case(KERNELS[k], f, t & 1, t >> 1, M, N, K, alpha, beta, s % 3)) failures++;
                if (!agrees_with_portable(KERNELS[k], f, t & 1, t >> 1, M, N, K, alpha, beta)) failures++;
            }
    }
    CHECK(failures == 0);
}

TEST(test_gemm_backend) {
    /* the backend (OpenBLAS or brick's) agrees with the reference too */
    CHECK(check_case("backend", bk__backend()->sgemm, false, true, 70, 90, 110, 1.0f, 1.0f, 2));
    CHECK(check_case("backend", bk__backend()->sgemm, true, false, 33, 17, 0, 1.0f, -0.5f, 0));
}

/* Results must not depend on the thread count: same bits with 1, 2 and 3 threads. */
static void check_threads_bitwise(sgemm_fn *f, const char *what) {
#ifdef _OPENMP
    /* MLP shapes, row and column splits, B read in place, and blocks of unequal size, K
     * slices (K = 259: 130 + 129) or N blocks (N = 25600: 6 x 3664 + 3616), which once let
     * a fast thread overwrite B panels that a slower one was still reading */
    static const int64_t shapes[][3] = {{256, 256, 784}, {256, 784, 256}, {130, 70, 300},  {6, 8000, 25},
                                        {300, 10, 400},  {97, 301, 513},  {251, 128, 259}, {24, 600, 259},
                                        {275, 268, 277}, {16, 25600, 40}, {150, 25600, 16}};
    int saved = omp_get_max_threads();
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++)
        for (int t = 0; t < 4; t++) {
            bool ta = t & 1, tb = t >> 1;
            int64_t M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
            float *A = matrix_new(ta ? K : M, ta ? M : K, ta ? M : K);
            float *B = matrix_new(tb ? N : K, tb ? K : N, tb ? K : N);
            float *C1 = matrix_new(M, N, N);
            size_t bytes = ((size_t)(M * N) + 1) * sizeof(float);
            float *C0 = malloc(bytes), *C2 = malloc(bytes);
            if (!C0 || !C2) abort();
            memcpy(C0, C1, bytes);
            omp_set_num_threads(1);
            f(ta, tb, M, N, K, 1.0f, A, ta ? M : K, B, tb ? K : N, 0.5f, C1, N);
            /* 2 threads a few times (a race shows up only sometimes), and 3 (an odd team);
             * each once under BRICK_TEST_QUICK (valgrind serialises threads: no race shows) */
            static const int teams[] = {2, 3, 2, 2};
            for (int r = 0; r < test_reps(4, 2); r++) {
                memcpy(C2, C0, bytes);
                omp_set_num_threads(teams[r]);
                f(ta, tb, M, N, K, 1.0f, A, ta ? M : K, B, tb ? K : N, 0.5f, C2, N);
                bool same = memcmp(C1, C2, bytes) == 0;
                if (!same)
                    fprintf(stderr,
                            "  %s: trans %d%d %lldx%lldx%lld differs between 1 and %d "
                            "threads\n",
                            what, ta, tb, (long long)M, (long long)N, (long long)K, teams[r]);
                CHECK(same);
            }
            free(C0);
            free(A);
            free(B);
            free(C1);
            free(C2);
        }
    omp_set_num_threads(saved);
#else
    (void)f;
    printf("  (built without OpenMP: %s runs on one thread)\n", what);
#endif
}

TEST(test_gemm_threads_bitwise) {
    check_threads_bitwise(bk__sgemm, "best");
    for (size_t k = 0; k < N_KERNELS; k++) {
        sgemm_fn *f = kernel_or_skip(KERNELS[k], "threads bitwise");
        if (f) check_threads_bitwise(f, KERNELS[k]);
    }
}

TEST(test_gemm_small_row_groups) {
    /* The unpacked path takes rows of C in groups that share each load of B (AVX-512: A @ B^T
     * four, two or one at a time; op(A) @ B six, four, then 1 to 3): a row of C must have the
     * same bits as when computed alone. M = 11 (op(A) @ B: 6 + 4 + 1) and 7 (A @ B^T, which
     * takes this path for M <= 8 only: 4 + 2 + 1); N = 23: groups
     * of 4, 8 and 16 columns with a partial last one; K = 21: a partial last vector of k. */
    enum { M = 11, N = 23, K = 21 };
    float *A = matrix_new(M, K, K), *B = matrix_new(N, K, K); /* A^T: K x M, B: K x N, fits */
    float all[M * N], one[N];
    static const bool TA[] = {false, false, true}, TB[] = {true, false, false};
    for (size_t k = 0; k < N_KERNELS; k++) {
        sgemm_fn *f = kernel_or_skip(KERNELS[k], "small row groups");
        for (int t = 0; t < 3 && f; t++) {
            const bool ta = TA[t], tb = TB[t];
            const int64_t rows = tb ? 7 : M, lda = ta ? M : K, ldb = tb ? K : N;
            f(ta, tb, rows, N, K, 1.0f, A, lda, B, ldb, 0.0f, all, N);
            for (int64_t i = 0; i < rows; i++) {
                f(ta, tb, 1, N, K, 1.0f, ta ? A + i : A + i * K, lda, B, ldb, 0.0f, one, N);
                bool same = memcmp(all + i * N, one, sizeof one) == 0;
                if (!same)
                    fprintf(stderr, "  %s: trans %d%d row %lld of %lldx%dx%d differs from the row alone\n",
                            KERNELS[k], ta, tb, (long long)i, (long long)rows, N, K);
                CHECK(same);
            }
        }
    }
    free(A);
    free(B);
}

int main(void) {
    printf("test_gemm: kernel %s, backend %s\n", bk_gemm_kernel(), bk__backend()->name);
    RUN(test_gemm_small_exhaustive);
    RUN(test_gemm_random_best);
    RUN(test_gemm_random_kernels);
    RUN(test_gemm_blocking_edges);
    RUN(test_gemm_kernel_edges);
    RUN(test_gemm_small_row_groups);
    RUN(test_gemm_backend);
    RUN(test_gemm_threads_bitwise);
    return test_summary("test_gemm");
}
