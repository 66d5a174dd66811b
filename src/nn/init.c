/* init.c - torch.nn.init: filling parameters (any tensor) in place from a distribution.
 *
 * The formulas are torch's (torch/nn/init.py):
 *   fans of a weight (out, in, k...):  fan_in = in prod(k), fan_out = out prod(k)
 *   xavier:   std = gain sqrt(2 / (fan_in + fan_out))
 *   kaiming:  std = calculate_gain(nonlinearity, a) / sqrt(fan_in or fan_out)
 *   uniform variants draw U(-sqrt(3) std, sqrt(3) std), which has that std.
 *   trunc_normal: U(2 Phi(alpha) - 1, 2 Phi(beta) - 1) through sqrt(2) erfinv, clamped.
 *   orthogonal: Q of a Gaussian (rows, cols) matrix with diag(R) > 0.
 * Settings are computed in double and each drawn value rounded to float32 once. Every
 * check happens before the first write, so a failing call leaves the tensor as it was.
 */
#include "internal.h"

#include <inttypes.h>
#include <math.h>
#include <string.h>

/* ---- checks ------------------------------------------------------------------------------------- */

static bool finite_ok(const char *who, const char *what, double v) {
    if (isfinite(v)) return true;
    bk_set_error("%s: %s=%g must be finite", who, what, v);
    return false;
}

/* torch's _calculate_fan_in_and_fan_out, naming who on failure. */
static int fans(const bk_tensor *t, const char *who, int64_t *fan_in, int64_t *fan_out) {
    if (!bk_tensor_ok(t, who)) return -1;
    if (t->ndim < 2) {
        char s[128];
        bk_set_error("%s: fan in and fan out need a tensor of 2 or more dimensions (out, in, ...), got %s",
                     who, bk_shape_str(t, s, sizeof s));
        return -1;
    }
    int64_t receptive = 1; /* prod(shape[2:]), at most numel: no overflow */
    for (int d = 2; d < t->ndim; d++) receptive *= t->shape[d];
    *fan_in = t->shape[1] * receptive;
    *fan_out = t->shape[0] * receptive;
    return 0;
}

/* ---- plain distributions ------------------------------------------------------------------------ */

static void fill_uniform(bk_tensor *t, bk_rng *rng, double a, double b) {
    if (!rng) rng = bk_default_rng();
    for (int64_t i = 0; i < t->numel; i++) t->data[i] = (float)(a + (b - a) * (double)bk_rng_uniform(rng));
}

static void fill_normal(bk_tensor *t, bk_rng *rng, double mean, double std) {
    if (!rng) rng = bk_default_rng();
    for (int64_t i = 0; i < t->numel; i++) t->data[i] = (float)(mean + std * (double)bk_rng_normal(rng));
}

int bk_init_uniform(bk_tensor *t, bk_rng *rng, double a, double b) {
    if (!bk_tensor_ok(t, "init_uniform")) return -1;
    if (!finite_ok("init_uniform", "a", a) || !finite_ok("init_uniform", "b", b)) return -1;
    if (a > b) {
        bk_set_error("init_uniform: needs a <= b, got a=%g > b=%g", a, b);
        return -1;
    }
    fill_uniform(t, rng, a, b);
    return 0;
}

int bk_init_normal(bk_tensor *t, bk_rng *rng, double mean, double std) {
    if (!bk_tensor_ok(t, "init_normal")) return -1;
    if (!finite_ok("init_normal", "mean", mean) || !finite_ok("init_normal", "std", std)) return -1;
    if (std < 0) {
        bk_set_error("init_normal: std=%g must be >= 0", std);
        return -1;
    }
    fill_normal(t, rng, mean, std);
    return 0;
}

int bk_init_constant(bk_tensor *t, double value) {
    if (!bk_tensor_ok(t, "init_constant")) return -1;
    return bk_fill(t, (float)value);
}

int bk_init_zeros(bk_tensor *t) {
    if (!bk_tensor_ok(t, "init_zeros")) return -1;
    return bk_fill(t, 0.0f);
}

int bk_init_ones(bk_tensor *t) {
    if (!bk_tensor_ok(t, "init_ones")) return -1;
    return bk_fill(t, 1.0f);
}

/* ---- fans and gains ------------------------------------------------------------------------------ */

int bk_init_fans(const bk_tensor *t, int64_t *fan_in, int64_t *fan_out) {
    if (!fan_in || !fan_out) {
        bk_set_error("init_fans: fan_in or fan_out is NULL");
        return -1;
    }
    return fans(t, "init_fans", fan_in, fan_out);
}

static const char *const LINEAR_GAIN[] = {"linear",           "conv1d",           "conv2d",
                                          "conv3d",           "conv_transpose1d", "conv_transpose2d",
                                          "conv_transpose3d", "sigmoid"};

/* calculate_gain, naming who on failure (NaN). */
static double gain_of(const char *who, const char *nonlinearity, double param) {
    if (!nonlinearity) {
        bk_set_error("%s: nonlinearity is NULL", who);
        return NAN;
    }
    for (size_t i = 0; i < sizeof LINEAR_GAIN / sizeof *LINEAR_GAIN; i++)
        if (!strcmp(nonlinearity, LINEAR_GAIN[i])) return 1.0;
    if (!strcmp(nonlinearity, "tanh")) return 5.0 / 3;
    if (!strcmp(nonlinearity, "relu")) return sqrt(2.0);
    if (!strcmp(nonlinearity, "selu")) return 3.0 / 4;
    if (!strcmp(nonlinearity, "leaky_relu")) {
        double slope = isnan(param) ? 0.01 : param;
        if (!finite_ok(who, "negative_slope", slope)) return NAN;
        return sqrt(2.0 / (1 + slope * slope));
    }
    bk_set_error(
        "%s: unsupported nonlinearity '%s' (linear, conv1d, conv2d, conv3d, conv_transpose1d, "
        "conv_transpose2d, conv_transpose3d, sigmoid, tanh, relu, leaky_relu, selu)",
        who, nonlinearity);
    return NAN;
}

double bk_init_gain(const char *nonlinearity, double param) {
    return gain_of("init_gain", nonlinearity, param);
}

/* ---- xavier and kaiming -------------------------------------------------------------------------- */

/* std = gain sqrt(2 / (fan_in + fan_out)); NaN on error. */
static double xavier_std(const bk_tensor *t, const char *who, double gain) {
    int64_t fan_in, fan_out;
    if (fans(t, who, &fan_in, &fan_out) < 0) return NAN;
    if (!finite_ok(who, "gain", gain)) return NAN;
    if (gain < 0) {
        bk_set_error("%s: gain=%g must be >= 0", who, gain);
        return NAN;
    }
    return fan_in + fan_out > 0 ? gain * sqrt(2.0 / (double)(fan_in + fan_out)) : 0.0;
}

int bk_init_xavier_uniform(bk_tensor *t, bk_rng *rng, double gain) {
    double std = xavier_std(t, "xavier_uniform", gain);
    if (isnan(std)) return -1;
    fill_uniform(t, rng, -sqrt(3.0) * std, sqrt(3.0) * std);
    return 0;
}

int bk_init_xavier_normal(bk_tensor *t, bk_rng *rng, double gain) {
    double std = xavier_std(t, "xavier_normal", gain);
    if (isnan(std)) return -1;
    fill_normal(t, rng, 0.0, std);
    return 0;
}

/* std = calculate_gain(nonlinearity, a) / sqrt(fan); NaN on error. */
static double kaiming_std(const bk_tensor *t, const char *who, double a, bk_fan_mode mode,
                          const char *nonlinearity) {
    int64_t fan_in, fan_out;
    if (fans(t, who, &fan_in, &fan_out) < 0) return NAN;
    if ((unsigned)mode >= BK_FAN_MODE_COUNT) {
        bk_set_error("%s: mode %d is neither BK_FAN_IN nor BK_FAN_OUT", who, (int)mode);
        return NAN;
    }
    double gain = gain_of(who, nonlinearity, a);
    if (isnan(gain)) return NAN;
    int64_t fan = mode == BK_FAN_IN ? fan_in : fan_out;
    return fan > 0 ? gain / sqrt((double)fan) : 0.0; /* fan 0: no elements */
}

int bk_init_kaiming_uniform(bk_tensor *t, bk_rng *rng, double a, bk_fan_mode mode, const char *nonlinearity) {
    double std = kaiming_std(t, "kaiming_uniform", a, mode, nonlinearity);
    if (isnan(std)) return -1;
    fill_uniform(t, rng, -sqrt(3.0) * std, sqrt(3.0) * std);
    return 0;
}

int bk_init_kaiming_normal(bk_tensor *t, bk_rng *rng, double a, bk_fan_mode mode, const char *nonlinearity) {
    double std = kaiming_std(t, "kaiming_normal", a, mode, nonlinearity);
    if (isnan(std)) return -1;
    fill_normal(t, rng, 0.0, std);
    return 0;
}

/* ---- orthogonal ---------------------------------------------------------------------------------- */

int bk_init_orthogonal(bk_tensor *t, bk_rng *rng, double gain) {
    if (!bk_tensor_ok(t, "orthogonal")) return -1;
    if (t->ndim < 2) {
        char s[128];
        bk_set_error("orthogonal: needs a tensor of 2 or more dimensions, got %s",
                     bk_shape_str(t, s, sizeof s));
        return -1;
    }
    if (!finite_ok("orthogonal", "gain", gain)) return -1;
    if (t->numel == 0) return 0;
    if (!rng) rng = bk_default_rng();
    // rows = shape[0], cols = numel / rows; the n = min(rows, cols) vectors of length
    // m = max(rows, cols) to make orthonormal are the columns (rows >= cols) or the rows.
    int64_t rows = t->shape[0], cols = t->numel / rows;
    bool by_cols = rows >= cols;
    int64_t n = by_cols ? cols : rows, m = by_cols ? rows : cols;
    double *V = bk__malloc((size_t)t->numel * sizeof(double)); /* V[k m + i]: vector k */
    if (!V) return -1;
    for (int64_t r = 0; r < rows; r++) /* the Gaussian matrix, drawn row by row as torch does */
        for (int64_t c = 0; c < cols; c++) V[by_cols ? c * m + r : r * m + c] = (double)bk_rng_normal(rng);
    // Gram-Schmidt, each vector orthogonalised twice against the earlier ones ("twice is
    // enough": orthogonal to rounding in double). R's diagonal is the norm, positive, which
    // is torch's sign correction of the QR.
    for (int64_t k = 0; k < n; k++) {
        double *v = V + k * m;
        for (int pass = 0; pass < 2; pass++)
            for (int64_t j = 0; j < k; j++) {
                const double *q = V + j * m;
                double d = 0;
                for (int64_t i = 0; i < m; i++) d += q[i] * v[i];
                for (int64_t i = 0; i < m; i++) v[i] -= d * q[i];
            }
        double norm = 0;
        for (int64_t i = 0; i < m; i++) norm += v[i] * v[i];
        norm = sqrt(norm);
        if (!(norm > 0)) { /* probability 0 for a Gaussian matrix */
            bk__free(V);
            bk_set_error("orthogonal: the random matrix came out rank-deficient; try again");
            return -1;
        }
        for (int64_t i = 0; i < m; i++) v[i] /= norm;
    }
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++)
            t->data[r * cols + c] = (float)(gain * V[by_cols ? c * m + r : r * m + c]);
    bk__free(V);
    return 0;
}

/* ---- truncated normal ---------------------------------------------------------------------------- */

/* erfinv(y) for y in [-1, 1]: M. Giles' single-precision approximation ("Approximating the
 * erfinv function", 2010) refined by two Newton steps on erf (quadratic: double accuracy). */
static double erfinv(double y) {
    if (y <= -1) return -INFINITY;
    if (y >= 1) return INFINITY;
    double w = -log((1.0 - y) * (1.0 + y)), x;
    if (w < 5.0) {
        w -= 2.5;
        x = 2.81022636e-08;
        x = 3.43273939e-07 + x * w;
        x = -3.5233877e-06 + x * w;
        x = -4.39150654e-06 + x * w;
        x = 0.00021858087 + x * w;
        x = -0.00125372503 + x * w;
        x = -0.00417768164 + x * w;
        x = 0.246640727 + x * w;
        x = 1.50140941 + x * w;
    } else {
        w = sqrt(w) - 3.0;
        x = -0.000200214257;
        x = 0.000100950558 + x * w;
        x = 0.00134934322 + x * w;
        x = -0.00367342844 + x * w;
        x = 0.00573950773 + x * w;
        x = -0.0076224613 + x * w;
        x = 0.00943887047 + x * w;
        x = 1.00167406 + x * w;
        x = 2.83297682 + x * w;
    }
    x *= y;
    for (int it = 0; it < 2; it++) x -= (erf(x) - y) / (1.1283791670955126 * exp(-x * x)); /* 2/sqrt(pi) */
    return x;
}

static double norm_cdf(double x) { return (1.0 + erf(x / sqrt(2.0))) / 2.0; }

int bk_init_trunc_normal(bk_tensor *t, bk_rng *rng, double mean, double std, double a, double b) {
    const char *who = "trunc_normal";
    if (!bk_tensor_ok(t, who)) return -1;
    if (!finite_ok(who, "mean", mean) || !finite_ok(who, "std", std)) return -1;
    if (!(std > 0) || !(a < b)) { /* (also NaN bounds) */
        bk_set_error("%s: needs std > 0 and a < b, got std=%g, a=%g, b=%g", who, std, a, b);
        return -1;
    }
    if (!rng) rng = bk_default_rng();
    double lo = 2 * norm_cdf((a - mean) / std) - 1, hi = 2 * norm_cdf((b - mean) / std) - 1;
    for (int64_t i = 0; i < t->numel; i++) {
        /* the middle of the uniform's 2^-24 bin: never exactly lo, where erfinv is infinite */
        double u = lo + (hi - lo) * ((double)bk_rng_uniform(rng) + 0x1p-25);
        double x = mean + std * sqrt(2.0) * erfinv(u);
        t->data[i] = (float)fmin(fmax(x, a), b);
    }
    return 0;
}
