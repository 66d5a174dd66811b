/* elementwise_ops.h - every element-wise op, one row each. Internal to src/ops and tests.
 *
 * A row is all there is to an element-wise op. src/ops/elementwise.c makes from it the
 * forward loop, the backward loop, the op descriptor (its name in errors and anomaly
 * reports) and the public function bk_<name>, which include/brick/ops.h declares. The tests
 * include this file too: tests/test_ops.c value-checks each row against its double
 * reference and gradchecks it on its input domain, and tests/test_api_misuse.c calls each
 * bk_<name> with NULL, stale and foreign tensors. docs/design.md, "How to add an op".
 *
 * Unary rows:  X(name, cost, forward, gradient, reference, x domain)
 * Scalar rows: X(name, cost, forward, gradient, reference, x domain, s domain)
 *              (bk_<name>(a, s) takes a float s; the expressions may use s)
 * Two-scalar rows: X(name, cost, forward, gradient, reference, x domain, s domain, t domain)
 *              (bk_<name>(a, s, t) takes floats s and t; the expressions may use both)
 * Binary rows: X(name, cost, forward, gradient a, gradient b, reference, a domain, b domain)
 *              (broadcasting as PyTorch; the expressions use a, b and y, g)
 * Comparison rows: X(name, forward, reference, a domain, b domain) (no gradient)
 *
 *   cost       CHEAP (a few float operations: the loop goes parallel from 2^20 elements) or
 *              COSTLY (a libm call or a polynomial: from 2^14), see elementwise.c
 *   forward    y as a float expression of x (a, b) and s; GCC must vectorise it under
 *              `omp simd`: no branches it cannot if-convert, and libm's erff / expf only
 *              where nothing faster exists (fastmath.h has vectorisable ones)
 *   gradient   what one element adds into dx (da, db): a float expression of x (a, b), y,
 *              the output gradient g and s. Usually g * dy/dx.
 *   reference  y in double from double x (a, b) and s: the tests' truth
 *   domain     where the tests draw inputs: IN(lo, hi), uniform in [lo, hi], or
 *              PLUS_MINUS(lo, hi), magnitudes in [lo, hi] with random signs (for a kink or
 *              a pole at 0). Keep f''' moderate there: the gradcheck's central differences
 *              have a truncation error of eps^2 / 6 * f''' (tests/test_ops.c)
 *
 * Every row's expressions are macro arguments: a comma at their top level must sit inside
 * parentheses. A helper an expression needs goes above the lists, static inline, float.
 */
#ifndef BRICK_OPS_ELEMENTWISE_OPS_H
#define BRICK_OPS_ELEMENTWISE_OPS_H

#include "ops/fastmath.h"

#include <math.h>

/* d/dx of GELU's tanh form, with t = tanh(c (x + 0.044715 x^3)), c = sqrt(2 / pi):
 * 0.5 (1 + t) + 0.5 x (1 - t^2) c (1 + 3 * 0.044715 x^2) */
static inline float bk__gelu_tanh_dydx(float x) {
    float t = tanhf(0.79788456080286536f * (x + 0.044715f * x * x * x));
    return 0.5f * (1.0f + t) +
           0.5f * x * (1.0f - t * t) * 0.79788456080286536f * (1.0f + 3.0f * 0.044715f * x * x);
}

/* d/dx of SiLU, x s(x) with s(x) = 1 / (1 + e^-x): s(x) (1 + x (1 - s(x))), as torch's */
static inline float bk__silu_dydx(float x) {
    float sg = 1.0f / (1.0f + expf(-x));
    return sg * (1.0f + x * (1.0f - sg));
}

/* tanh(softplus(x)) = tanh(ln(1 + e^x)) = (n^2 + 2n) / (n^2 + 2n + 2) with n = e^x, written
 * with m = e^-|x| <= 1 so that nothing overflows: for x > 0, divided by n^2,
 * (1 + 2m) / (1 + 2m + 2m^2). All terms are positive (no cancellation), e^-|x| is
 * fastmath.h's, and both sides are computed and selected, so Mish's loops vectorise where
 * torch's formula takes three libm calls per element. NaN stays NaN. */
static inline float bk__tanh_softplus(float x, float *sigmoid) {
    float m = bk__expf_nonpos(-fabsf(x));
    float num = bk__select(x > 0.0f, 1.0f + 2.0f * m, m * m + 2.0f * m);
    float den = num + bk__select(x > 0.0f, 2.0f * m * m, 2.0f);
    *sigmoid = bk__select(x > 0.0f, 1.0f, m) / (1.0f + m); /* 1 / (1 + e^-x) */
    return num / den;
}

static inline float bk__mish(float x) {
    float sg;
    return x * bk__tanh_softplus(x, &sg);
}

/* d/dx of Mish, x tanh(softplus(x)), with t = tanh(softplus(x)): t + x s(x) (1 - t^2), as
 * torch's mish_backward */
static inline float bk__mish_dydx(float x) {
    float sg;
    float t = bk__tanh_softplus(x, &sg);
    return t + x * sg * (1.0f - t * t);
}

/* min(max(x + 3, 0), 6), NaN staying NaN: Hardswish's and Hardsigmoid's ramp, as torch
 * computes it. Selects, not ?: (fastmath.h's bk__select: GCC does not if-convert a ?: with
 * float arithmetic on one side, and the loop then branches on every element's sign). */
static inline float bk__relu6_shift(float x) {
    float t = x + 3.0f;
    t = bk__select(t < 0.0f, 0.0f, t);
    return bk__select(t > 6.0f, 6.0f, t);
}

/* what one element adds into Hardswish's dx: 0 below -3, g (x / 3 + 1 / 2) up to 3, g
 * above, as torch's hardswish_backward (NaN x: g) */
static inline float bk__hardswish_dx(float x, float g) {
    float mid = g * (x / 3.0f + 0.5f);
    return bk__select(x < -3.0f, 0.0f, bk__select(x <= 3.0f, mid, g));
}

/* clang-format off */
#define BK_UNARY_OPS(X)                                                                                     \
    X(neg, CHEAP, -x, g * -1.0f, -x, IN(-1, 1))                                                             \
    X(abs, CHEAP, fabsf(x), g * (x > 0.0f ? 1.0f : (x < 0.0f ? -1.0f : 0.0f)), fabs(x), PLUS_MINUS(0.1, 1)) \
    X(exp, COSTLY, expf(x), g * y, exp(x), IN(-2, 2))                                                       \
    X(log, COSTLY, logf(x), g * (1.0f / x), log(x), IN(0.2, 2))                                             \
    X(sqrt, CHEAP, sqrtf(x), g * (0.5f / y), sqrt(x), IN(0.2, 2))                                           \
    /* y as torch: NaN stays NaN, -0 stays -0; dx as torch's threshold_backward: g where */                 \
    /* y > 0 or y is NaN, else 0 (even where g is NaN) */                                                   \
    X(relu, CHEAP, x < 0.0f ? 0.0f : x, x <= 0.0f ? 0.0f : g, x > 0 ? x : 0, PLUS_MINUS(0.1, 1))            \
    /* two forms, so that e^x never overflows */                                                            \
    X(sigmoid, COSTLY, x >= 0.0f ? 1.0f / (1.0f + expf(-x)) : expf(x) / (1.0f + expf(x)),                   \
      g * (y * (1.0f - y)), 1 / (1 + exp(-x)), IN(-3, 3))                                                   \
    X(tanh, COSTLY, tanhf(x), g * (1.0f - y * y), tanh(x), IN(-2, 2))                                       \
    /* x Phi(x); dx: Phi(x) + x phi(x). bk__erff, not libm's erff, which keeps the loop */                  \
    /* from vectorising (fastmath.h) */                                                                     \
    X(gelu, COSTLY, 0.5f * x * (1.0f + bk__erff(x * 0.70710678118654752f)),                                 \
      g * (0.5f * (1.0f + bk__erff(x * 0.70710678118654752f)) +                                             \
           x * 0.39894228040143268f * bk__expf_nonpos(-0.5f * x * x)),                                      \
      0.5 * x * (1 + erf(x / sqrt(2.0))), IN(-3, 3))                                                        \
    /* 0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3))) */                                                 \
    X(gelu_tanh, COSTLY, 0.5f * x * (1.0f + tanhf(0.79788456080286536f * (x + 0.044715f * x * x * x))),     \
      g * bk__gelu_tanh_dydx(x),                                                                            \
      0.5 * x * (1 + tanh(sqrt(2 / 3.14159265358979323846) * (x + 0.044715 * x * x * x))), IN(-3, 3))     \
    /* SiLU (swish): x s(x) = x / (1 + e^-x), as torch computes it */                                       \
    X(silu, COSTLY, x / (1.0f + expf(-x)), g * bk__silu_dydx(x), x / (1 + exp(-x)), IN(-4, 4))             \
    /* Mish: x tanh(softplus(x)) = x tanh(ln(1 + e^x)) */                                                   \
    X(mish, COSTLY, bk__mish(x), g * bk__mish_dydx(x), x * tanh(log1p(exp(x))), IN(-4, 4))                  \
    /* x relu6(x + 3) / 6 in torch's order of operations; kinks at -3 and 3 (tests stay inside) */         \
    X(hardswish, CHEAP, x * bk__relu6_shift(x) / 6.0f, bk__hardswish_dx(x, g),                              \
      x <= -3 ? 0 : (x >= 3 ? x : x * (x + 3) / 6), IN(-2.9, 2.9))                                          \
    /* relu6(x + 3) / 6; dx: g / 6 strictly inside (-3, 3), as torch */                                     \
    X(hardsigmoid, CHEAP, bk__relu6_shift(x) / 6.0f, bk__select((x > -3.0f) & (x < 3.0f), g * (1.0f / 6.0f), 0.0f), \
      x <= -3 ? 0 : (x >= 3 ? 1 : (x + 3) / 6), IN(-2.9, 2.9))

#define BK_SCALAR_OPS(X)                                                                                    \
    X(add_scalar, CHEAP, x + s, g * 1.0f, x + s, IN(-1, 1), IN(-2, 2))                                      \
    X(mul_scalar, CHEAP, x * s, g * s, x * s, IN(-1, 1), IN(-2, 2))                                         \
    X(div_scalar, CHEAP, x / s, g * (1.0f / s), x / s, IN(-1, 1), PLUS_MINUS(0.5, 2))                      \
    X(rsub_scalar, CHEAP, s - x, g * -1.0f, s - x, IN(-1, 1), IN(-2, 2))                                    \
    X(pow_scalar, COSTLY, powf(x, s), g * (s == 0.0f ? 0.0f : s * powf(x, s - 1.0f)), pow(x, s),           \
      IN(0.5, 1.5), IN(-2, 3))                                                                              \
    /* LeakyReLU(negative_slope = s): x > 0 ? x : s x, dx as torch's: g where x > 0, else s g */            \
    /* (x times 1 or s: the product is made for every element, so the loop needs no branch) */            \
    X(leaky_relu, CHEAP, x * bk__select(x > 0.0f, 1.0f, s), g * bk__select(x > 0.0f, 1.0f, s),              \
      x > 0 ? x : x * s, PLUS_MINUS(0.1, 1), IN(0, 0.5))                                                    \
    /* ELU(alpha = s): x > 0 ? x : s (e^x - 1) with torch's e^x - 1 (within 1e-7 of expm1 near 0), */       \
    /* e^x from fastmath.h on min(x, 0) (NaN stays NaN); dx: s e^x g for x <= 0 */                          \
    X(elu, COSTLY, bk__select(x > 0.0f, x, s * (bk__expf_nonpos(bk__select(x > 0.0f, 0.0f, x)) - 1.0f)),    \
      g * bk__select(x > 0.0f, 1.0f, s * bk__expf_nonpos(bk__select(x > 0.0f, 0.0f, x))),                  \
      x > 0 ? x : s * expm1(x), PLUS_MINUS(0.1, 2), IN(0.5, 2))

/* Softplus(beta = s, threshold = t): ln(1 + e^(s x)) / s, or x where s x > t (torch's form);
 * dx = g sigmoid(s x) below the threshold, g above. The jump at the threshold is
 * ln(1 + e^-t) / s: the tests keep t >= 15 so that it is below the gradcheck's noise.
 * clamp(min = s, max = t): min(max(x, s), t) (NaN stays NaN; s > t gives t everywhere, as
 * torch); dx = g where s <= x <= t, as torch. Its tests keep every x away from s and t. */
#define BK_SCALAR2_OPS(X)                                                                                   \
    X(softplus, COSTLY, bk__select(x * s > t, x, log1pf(expf(x * s)) / s),                                  \
      bk__select(x * s > t, g, g / (1.0f + expf(-x * s))),                                                  \
      x * s > t ? x : log1p(exp(x * s)) / s, IN(-4, 12), IN(1, 2), IN(15, 20))                             \
    X(clamp, CHEAP, (x < s ? s : x) > t ? t : (x < s ? s : x), x >= s && x <= t ? g : 0.0f,                \
      (x < s ? s : x) > t ? t : (x < s ? s : x), PLUS_MINUS(0.6, 1.4), IN(-2, -1.6), IN(0.3, 0.5))

/* d(a^b) = (g b a^(b-1), g a^b ln a): pow's base stays positive in the tests (ln a) */
#define BK_BINARY_OPS(X)                                                                                    \
    X(add, CHEAP, a + b, g, g, a + b, IN(-1, 1), IN(-1, 1))                                                 \
    X(sub, CHEAP, a - b, g, -g, a - b, IN(-1, 1), IN(-1, 1))                                                \
    X(mul, CHEAP, a * b, g * b, g * a, a * b, IN(-1, 1), IN(-1, 1))                                         \
    X(div, CHEAP, a / b, g / b, -(g * a / (b * b)), a / b, IN(-1, 1), PLUS_MINUS(0.5, 1.5))                 \
    X(pow, COSTLY, powf(a, b), b == 0.0f ? 0.0f : g * b * powf(a, b - 1.0f),                                \
      a == 0.0f && b >= 0.0f ? 0.0f : g * y * logf(a), pow(a, b), IN(0.5, 1.5), IN(-1.5, 1.5))            \
    /* torch.maximum / minimum: NaN wins; a tie splits g in halves, as torch. The tests */                 \
    /* keep |a| > |b| so that no pair is near a tie */                                                      \
    X(maximum, CHEAP, a > b || a != a ? a : b, bk__select(a == b, 0.5f * g, a < b ? 0.0f : g),              \
      bk__select(a == b, 0.5f * g, a > b ? 0.0f : g), a > b ? a : b, PLUS_MINUS(0.55, 1), IN(-0.45, 0.45))  \
    X(minimum, CHEAP, a < b || a != a ? a : b, bk__select(a == b, 0.5f * g, a > b ? 0.0f : g),              \
      bk__select(a == b, 0.5f * g, a < b ? 0.0f : g), a < b ? a : b, PLUS_MINUS(0.55, 1), IN(-0.45, 0.45))  \
    /* PReLU: a > 0 ? a : b a with the slopes b broadcast (F.prelu's weight (C) must be shaped */          \
    /* (C, 1, ..., 1) against (N, C, ...): nn.PReLU does it) */                                             \
    X(prelu, CHEAP, a * bk__select(a > 0.0f, 1.0f, b), g * bk__select(a > 0.0f, 1.0f, b),                   \
      bk__select(a > 0.0f, 0.0f, g * a), a > 0 ? a : b * a, PLUS_MINUS(0.1, 1), IN(0.05, 0.5))

/* 1 where it holds, else 0; not differentiable (the result never requires grad) */
#define BK_COMPARE_OPS(X)                                                                                   \
    X(gt, a > b ? 1.0f : 0.0f, a > b, IN(-1, 1), IN(-1, 1))                                                 \
    X(lt, a < b ? 1.0f : 0.0f, a < b, IN(-1, 1), IN(-1, 1))                                                 \
    X(eq, a == b ? 1.0f : 0.0f, a == b, IN(-1, 1), IN(-1, 1))
/* clang-format on */

#endif
