/* simd_clones.h - SIMD_CLONES, the attribute that compiles a function for AVX-512, AVX2 and
 * the baseline, chosen at run time. Internal to src/ops.
 *
 * The default -O2 build targets SSE2 only (4 floats a vector); GCC's target_clones compiles
 * the function three times and picks the widest one the CPU has when the program loads, so
 * the rest of brick needs no -mavx2 or -mavx512f. A clone must compute the same bits as the
 * others: the same operations in the same order. Element-wise loops (`omp simd`, one element
 * per lane, ISO C: no contraction into FMAs) and the sums of simd_sum.h give that.
 * OpenMP outlines a parallel region into a function of its own, which is not cloned: put the
 * parallel loop outside, and the SIMD_CLONES function inside it (one call per row or block).
 */
#ifndef BRICK_OPS_SIMD_CLONES_H
#define BRICK_OPS_SIMD_CLONES_H

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define SIMD_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define SIMD_CLONES
#endif

#endif /* BRICK_OPS_SIMD_CLONES_H */
