/* fastmath.h - branch-free float erf and exp that GCC vectorises. Internal to src/ops.
 *
 * Why: libm's erff and expf are scalar calls with branches, so a loop that calls them is
 * never vectorised; exact GELU spent 27% of a `brick train-lm` step in them. These use
 * only float +, -, *, comparisons, and integer and bitwise operations on the floats' bits,
 * all of which SSE2 has as vector instructions: under `omp simd` GELU's loops run 4 floats
 * at a time. No divisions, tables, branches or libm calls.
 *
 * Accuracy, measured on every finite float against double erf and exp (tests/test_ops_cnn.c
 * checks a dense sweep and the special values): bk__erff is within 1.43e-7 absolute
 * (about 1.2 ulp near 1; relative 2.2e-7 near 0); erf(+-0) = +-0, erf(+-inf) = +-1, NaN
 * stays NaN. bk__expf_nonpos is within 1.01 ulp on [-87.3, 0] and 0 below (where e^x is
 * subnormal: absolute error < 1.2e-38). Both assume round-to-nearest and no -ffast-math
 * (the build uses neither).
 */
#ifndef BRICK_OPS_FASTMATH_H
#define BRICK_OPS_FASTMATH_H

#include <math.h>
#include <stdint.h>
#include <string.h>

/* c ? a : b, as bit operations. A ?: is a branch to GCC, and it moves (sinks) arithmetic
 * used on one side of the branch into it; float arithmetic may trap, so GCC then refuses
 * to if-convert the branch and the loop does not vectorise. Masks keep it straight-line. */
static inline float bk__select(int c, float a, float b) {
    uint32_t m = 0u - (uint32_t)(c != 0), ua, ub;
    memcpy(&ua, &a, sizeof ua);
    memcpy(&ub, &b, sizeof ub);
    uint32_t r = (ua & m) | (ub & ~m);
    float y;
    memcpy(&y, &r, sizeof y);
    return y;
}

/* e^x for x <= 0 (callers pass -x^2 terms; x > 0 gives garbage). NaN stays NaN; below
 * -87.3, where e^x is subnormal, the result is 0.
 * Cody-Waite reduction x = k ln2 + r, |r| <= ln2 / 2, Cephes' degree-7 expf polynomial,
 * and 2^k written into the exponent bits. The polynomials here are evaluated by Estrin's
 * scheme where it costs little accuracy (1.01 ulp here instead of Horner's 0.98): the
 * loop is bound by the latency of its longest chain of dependent operations (~10% faster).
 * No input is clamped before the arithmetic: GCC would fold the clamped constant through
 * the polynomial and leave the arithmetic on one side of a branch (see bk__select).
 * Out-of-range inputs compute garbage, in unsigned arithmetic so it is defined, and the
 * select at the end discards it. */
static inline float bk__expf_nonpos(float x) {
    /* z = 1.5 * 2^23 + round(x / ln2): the integer sits in z's low mantissa bits (for
     * |x / ln2| < 2^22), so neither rintf nor a float -> int conversion (undefined for NaN)
     * is needed */
    float z = x * 1.44269504088896341f + 12582912.0f;
    float kf = z - 12582912.0f;
    float r = x - kf * 0.693359375f; /* ln2 in two parts: kf * 0.693359375 is exact */
    r = r + kf * 2.12194440e-4f;
    float r2 = r * r, r4 = r2 * r2;
    float p = (5.0000001201e-1f + 1.6666665459e-1f * r) + r2 * (4.1665795894e-2f + 8.3334519073e-3f * r) +
              r4 * (1.3981999507e-3f + 1.9875691500e-4f * r);
    p = p * r2 + r + 1.0f;
    uint32_t zbits;
    memcpy(&zbits, &z, sizeof zbits);
    uint32_t bits = (zbits - 0x4B400000u + 127u) << 23; /* 2^k, k in [-126, 0]: normal */
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    float y = p * scale;
    return bk__select(x < -87.3f, 0.0f, y); /* NaN: the comparison is false, y is NaN */
}

/* erf(x). |x| < 1: x P(x^2), P of degree 5; 1 <= |x| < 4: 1 - e^R(|x|), R of degree 6
 * fitting log(erfc) on [1, 4] (minimax in erfc's absolute error, Lawson's algorithm in
 * double); from 4 on, 1 - erfc(x) rounds to 1 in float. All three are computed and one
 * is selected (see bk__expf_nonpos for why nothing is clamped first). */
static inline float bk__erff(float x) {
    float t = fabsf(x);
    float s = x * x;
    float p = -5.46292630e-4f; /* Horner: Estrin's scheme would add up to 4e-8 at |x| = 1 */
    p = p * s + 4.87070288e-3f;
    p = p * s - 2.66638098e-2f;
    p = p * s + 1.12780642e-1f;
    p = p * s - 3.76119390e-1f;
    p = p * s + 1.12837892e+0f;
    float small = x * p; /* keeps erf(-0) = -0 */
    float t2 = t * t, t4 = t2 * t2;
    float q = (-3.53716969e-4f - 1.12704005e+0f * t) + t2 * (-6.38225661e-1f - 1.03037383e-1f * t) +
              t4 * ((2.18053249e-2f - 2.93960892e-3f * t) + 1.85574172e-4f * t2);
    float big = bk__select(t >= 4.0f, 1.0f, 1.0f - bk__expf_nonpos(q)); /* NaN: the right */
    return bk__select(t < 1.0f, small, copysignf(big, x));
}

#endif
