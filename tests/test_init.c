/* test_init.c - torch.nn.init (bk_init_*): fans and gains equal to torch's, the
 * distributions' moments and bounds on large tensors, orthogonality, failures that leave
 * the tensor alone, and D2L 5.2's inits over a block tree with bk_module_apply.
 *
 * Statistical tolerances, on n = 2^20 draws (a run's seed is printed; BRICK_TEST_SEED
 * repeats it): the sample mean within 6 standard errors (6 std / sqrt(n)) of the mean; the
 * sample std within 1 % of the std (its standard error here is at most 0.07 %, so 1 % is
 * 14 standard errors at least, and still catches a wrong factor such as sqrt(2) or a fan
 * mixed up); uniform draws inside their bounds exactly.
 */
#include "test.h"
#include "test_rng.h"

#include <math.h>

#define N_DRAWS ((int64_t)1 << 20)

/* mean and std (population) of t's values, in double */
static void moments(const bk_tensor *t, double *mean, double *std) {
    double s = 0, ss = 0;
    for (int64_t i = 0; i < t->numel; i++) s += t->data[i];
    *mean = s / (double)t->numel;
    for (int64_t i = 0; i < t->numel; i++) ss += (t->data[i] - *mean) * (t->data[i] - *mean);
    *std = sqrt(ss / (double)t->numel);
}

static void check_moments(const bk_tensor *t, double want_mean, double want_std) {
    double mean, std;
    moments(t, &mean, &std);
    CHECK_CLOSE(mean, want_mean, 6 * want_std / sqrt((double)t->numel));
    CHECK_CLOSE(std, want_std, 0.01 * want_std);
}

static bool within(const bk_tensor *t, double lo, double hi) {
    for (int64_t i = 0; i < t->numel; i++)
        if (!(t->data[i] >= (float)lo && t->data[i] <= (float)hi)) return false;
    return true;
}

/* Values from torch 1.13: torch.nn.init._calculate_fan_in_and_fan_out(torch.empty(shape)). */
TEST(fans_match_torch) {
    static const struct {
        int ndim;
        int64_t shape[5], fan_in, fan_out;
    } cases[] = {
        {2, {256, 20}, 20, 256},      /* Linear(20, 256) */
        {2, {10, 256}, 256, 10},      /* Linear(256, 10) */
        {4, {6, 1, 5, 5}, 25, 150},   /* LeNet's Conv2d(1, 6, 5) */
        {4, {16, 6, 5, 5}, 150, 400}, /* Conv2d(6, 16, 5) */
        {4, {64, 3, 3, 3}, 27, 576},  /* Conv2d(3, 64, 3) */
        {3, {8, 4, 3}, 12, 24},       /* Conv1d(4, 8, 3) */
        {5, {5, 2, 2, 3, 3}, 36, 90}, /* Conv3d(2, 5, (2, 3, 3)) */
        {4, {7, 1, 1, 1}, 1, 7},      /* depthwise-like */
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        bk_tensor *w = bk_zeros(cases[i].ndim, cases[i].shape);
        int64_t fan_in = -1, fan_out = -1;
        CHECK(bk_init_fans(w, &fan_in, &fan_out) == 0);
        CHECK(fan_in == cases[i].fan_in && fan_out == cases[i].fan_out);
    }
    bk_module *lin = bk_nn_linear(20, 256), *conv = bk_nn_conv2d(6, 16, 5, 1, 0);
    int64_t fan_in, fan_out;
    CHECK(bk_init_fans(bk_module_get(lin, "weight"), &fan_in, &fan_out) == 0 && fan_in == 20 &&
          fan_out == 256);
    CHECK(bk_init_fans(bk_module_get(conv, "weight"), &fan_in, &fan_out) == 0 && fan_in == 150 &&
          fan_out == 400);
    bk_module_free(lin);
    bk_module_free(conv);
    CHECK_FAILS_INT(bk_init_fans(bk_zeros(BK_SHAPE(5)), &fan_in, &fan_out),
                    "2 or more dimensions (out, in, ...), got (5,)");
}

/* Values from torch 1.13: repr(torch.nn.init.calculate_gain(name[, param])). */
TEST(gains_match_torch) {
    static const char *const ones[] = {"linear",           "conv1d",           "conv2d",           "conv3d",
                                       "conv_transpose1d", "conv_transpose2d", "conv_transpose3d", "sigmoid"};
    for (size_t i = 0; i < sizeof ones / sizeof *ones; i++) CHECK(bk_init_gain(ones[i], NAN) == 1.0);
    CHECK(bk_init_gain("tanh", NAN) == 1.6666666666666667);
    CHECK(bk_init_gain("relu", NAN) == 1.4142135623730951);
    CHECK(bk_init_gain("selu", NAN) == 0.75);
    CHECK_CLOSE(bk_init_gain("leaky_relu", NAN), 1.4141428569978354, 1e-15);
    CHECK_CLOSE(bk_init_gain("leaky_relu", 0.2), 1.3867504905630728, 1e-15);
    CHECK_CLOSE(bk_init_gain("leaky_relu", sqrt(5.0)), 0.5773502691896257, 1e-15);
    bk_clear_error();
    CHECK(isnan(bk_init_gain("swish", NAN)) && strstr(bk_last_error(), "unsupported nonlinearity 'swish'"));
}

TEST(plain_distributions) {
    bk_tensor *t = bk_tensor_new(BK_SHAPE(N_DRAWS));
    CHECK(bk_init_uniform(t, NULL, -0.5, 2.0) == 0);
    CHECK(within(t, -0.5, 2.0));
    check_moments(t, 0.75, 2.5 / sqrt(12.0));
    CHECK(bk_init_normal(t, NULL, 3.0, 0.25) == 0);
    check_moments(t, 3.0, 0.25);
    CHECK(bk_init_constant(t, 0.1) == 0 && all_equal(t, 0.1f));
    CHECK(bk_init_zeros(t) == 0 && all_equal(t, 0.0f));
    CHECK(bk_init_ones(t) == 0 && all_equal(t, 1.0f));
    bk_rng r1, r2; /* an explicit generator is the one used */
    bk_rng_seed(&r1, 7);
    bk_rng_seed(&r2, 7);
    bk_tensor *u = bk_tensor_new(BK_SHAPE(16));
    CHECK(bk_init_normal(t, &r1, 0, 1) == 0 && bk_init_normal(u, &r2, 0, 1) == 0);
    CHECK(memcmp(t->data, u->data, 16 * sizeof(float)) == 0);
    bk_tensor_free(u);
    bk_tensor_free(t);
}

/* (rows, cols) weights of 2^20 elements, as Linear and Conv2d shape them */
TEST(xavier_and_kaiming) {
    bk_tensor *lin = bk_tensor_new(BK_SHAPE(2048, 512));       /* fan_in 512, fan_out 2048 */
    bk_tensor *conv = bk_tensor_new(BK_SHAPE(256, 128, 4, 8)); /* fan_in 4096, fan_out 8192 */
    double bound = sqrt(3.0) * 0.5 * sqrt(2.0 / 2560.0);
    CHECK(bk_init_xavier_uniform(lin, NULL, 0.5) == 0);
    CHECK(within(lin, -bound, bound));
    check_moments(lin, 0, 0.5 * sqrt(2.0 / 2560.0));
    CHECK(bk_init_xavier_normal(conv, NULL, 5.0 / 3) == 0);
    check_moments(conv, 0, 5.0 / 3 * sqrt(2.0 / (4096 + 8192)));

    CHECK(bk_init_kaiming_uniform(lin, NULL, 0, BK_FAN_IN, "leaky_relu") == 0); /* torch's defaults */
    CHECK(within(lin, -sqrt(3.0) * sqrt(2.0 / 512), sqrt(3.0) * sqrt(2.0 / 512)));
    check_moments(lin, 0, sqrt(2.0 / 512));
    CHECK(bk_init_kaiming_uniform(lin, NULL, sqrt(5.0), BK_FAN_IN, "leaky_relu") == 0); /* nn.Linear's */
    CHECK(within(lin, -1 / sqrt(512.0), 1 / sqrt(512.0)));
    check_moments(lin, 0, 1 / sqrt(3.0 * 512));
    CHECK(bk_init_kaiming_normal(conv, NULL, 0, BK_FAN_OUT, "relu") == 0);
    check_moments(conv, 0, sqrt(2.0 / 8192));
    CHECK(bk_init_kaiming_normal(conv, NULL, 0.3, BK_FAN_IN, "tanh") == 0); /* a only for leaky_relu */
    check_moments(conv, 0, 5.0 / 3 / sqrt(4096.0));
    bk_tensor_free(lin);
    bk_tensor_free(conv);
}

/* W W^T (rows < cols) or W^T W (rows >= cols) is gain^2 I to float rounding. */
static void check_orthogonal(int ndim, const int64_t *shape, double gain) {
    bk_tensor *w = bk_tensor_new(ndim, shape);
    CHECK(bk_init_orthogonal(w, NULL, gain) == 0);
    int64_t rows = shape[0], cols = w->numel / rows;
    bool by_cols = rows >= cols;
    int64_t n = by_cols ? cols : rows, m = by_cols ? rows : cols;
    double worst = 0;
    for (int64_t a = 0; a < n; a++)
        for (int64_t b = 0; b < n; b++) {
            double d = 0;
            for (int64_t k = 0; k < m; k++)
                d += by_cols ? (double)w->data[k * cols + a] * w->data[k * cols + b]
                             : (double)w->data[a * cols + k] * w->data[b * cols + k];
            worst = fmax(worst, fabs(d - (a == b ? gain * gain : 0)));
        }
    CHECK(worst <= 1e-5 * gain * gain * sqrt((double)m));
    if (worst > 1e-5 * gain * gain * sqrt((double)m)) fprintf(stderr, "#   worst |W^T W - I| = %g\n", worst);
    bk_tensor_free(w);
}

TEST(orthogonal) {
    check_orthogonal(BK_SHAPE(50, 30), 1.0);
    check_orthogonal(BK_SHAPE(30, 50), 1.0);
    check_orthogonal(BK_SHAPE(64, 64), sqrt(2.0));
    check_orthogonal(BK_SHAPE(8, 3, 2, 2), 1.0); /* (8, 12): orthonormal rows */
    check_orthogonal(BK_SHAPE(200, 1), 0.5);
    /* uniform over the orthogonal group: an entry of a random 64 x 64 one has mean 0 and
     * variance 1/64; over 256 draws (2^20 entries) */
    bk_tensor *all = bk_tensor_new(BK_SHAPE(N_DRAWS)), *w = bk_tensor_new(BK_SHAPE(64, 64));
    for (int k = 0; k < 256; k++) {
        CHECK(bk_init_orthogonal(w, NULL, 1.0) == 0);
        memcpy(all->data + k * 4096, w->data, 4096 * sizeof(float));
    }
    check_moments(all, 0, 1 / 8.0);
    bk_tensor_free(all);
    bk_tensor_free(w);
}

static double phi(double x) { return exp(-x * x / 2) / 2.5066282746310002 /* sqrt(2 pi) */; }
static double cdf(double x) { return (1 + erf(x / sqrt(2.0))) / 2; }

/* the truncated normal's mean and std (Johnson, Kotz, Balakrishnan) */
static void check_trunc(double mean, double std, double a, double b) {
    bk_tensor *t = bk_tensor_new(BK_SHAPE(N_DRAWS));
    CHECK(bk_init_trunc_normal(t, NULL, mean, std, a, b) == 0);
    CHECK(within(t, a, b));
    double al = (a - mean) / std, be = (b - mean) / std, z = cdf(be) - cdf(al);
    double m = mean + std * (phi(al) - phi(be)) / z;
    double v = std * std * (1 + (al * phi(al) - be * phi(be)) / z - pow((phi(al) - phi(be)) / z, 2));
    check_moments(t, m, sqrt(v));
    bk_tensor_free(t);
}

TEST(trunc_normal) {
    check_trunc(0, 1, -2, 2); /* torch's defaults */
    check_trunc(0, 0.02, -0.04, 0.04);
    check_trunc(1, 2, 0, 10); /* one-sided, asymmetric */
    check_trunc(0, 1, 3, 4);  /* far in the tail: the inverse CDF still lands inside */
}

/* A failed init changes nothing. */
TEST(failures_leave_the_tensor) {
    bk_tensor *w = bk_full(BK_SHAPE(4, 3), 7.0f), *v = bk_full(BK_SHAPE(3), 7.0f);
    CHECK_FAILS_INT(bk_init_uniform(w, NULL, 1, 0), "a=1 > b=0");
    CHECK_FAILS_INT(bk_init_normal(w, NULL, 0, -1), "std=-1");
    CHECK_FAILS_INT(bk_init_xavier_uniform(v, NULL, 1), "xavier_uniform: fan in and fan out need");
    CHECK_FAILS_INT(bk_init_xavier_normal(w, NULL, -1), "gain=-1");
    CHECK_FAILS_INT(bk_init_kaiming_uniform(w, NULL, 0, BK_FAN_IN, "swish"), "kaiming_uniform: unsupported");
    CHECK_FAILS_INT(bk_init_kaiming_normal(w, NULL, 0, (bk_fan_mode)5, "relu"), "mode 5");
    CHECK_FAILS_INT(bk_init_orthogonal(v, NULL, 1), "orthogonal: needs a tensor of 2 or more");
    CHECK_FAILS_INT(bk_init_trunc_normal(w, NULL, 0, 1, 2, -2), "a < b");
    CHECK_FAILS_INT(bk_init_trunc_normal(w, NULL, 0, 0, -2, 2), "std > 0");
    CHECK(all_equal(w, 7.0f) && all_equal(v, 7.0f));
    bk_tensor *empty = bk_zeros(BK_SHAPE(0, 5)); /* no elements: nothing to do, as torch */
    CHECK(bk_init_kaiming_uniform(empty, NULL, 0, BK_FAN_OUT, "relu") == 0);
    CHECK(bk_init_orthogonal(empty, NULL, 1) == 0);
}

/* D2L 5.2.2: net.apply(init_normal) / net.apply(init_constant) over the Linear blocks. */
static void init_normal(bk_module *m, void *ud) {
    (void)ud;
    if (strcmp(bk_module_name(m), "Linear") != 0) return;
    bk_init_normal(bk_module_get(m, "weight"), NULL, 0, 0.01);
    bk_init_zeros(bk_module_get(m, "bias"));
}

static void init_constant(bk_module *m, void *ud) {
    if (strcmp(bk_module_name(m), "Linear") != 0) return;
    bk_init_constant(bk_module_get(m, "weight"), *(const double *)ud);
    bk_init_zeros(bk_module_get(m, "bias"));
}

TEST(apply_over_a_block_tree) {
    bk_module *net = bk_nn_sequential(3, bk_nn_linear(512, 1024), bk_nn_relu(),
                                      bk_nn_sequential(2, bk_nn_linear(1024, 1024), bk_nn_tanh()));
    bk_module_apply(net, init_normal, NULL);
    bk_tensor *w0 = bk_module_get(net, "0.weight"), *w2 = bk_module_get(net, "2.0.weight");
    check_moments(w0, 0, 0.01);
    check_moments(w2, 0, 0.01);
    CHECK(all_equal(bk_module_get(net, "0.bias"), 0) && all_equal(bk_module_get(net, "2.0.bias"), 0));
    double one = 1;
    bk_module_apply(net, init_constant, &one);
    CHECK(all_equal(w0, 1) && all_equal(w2, 1));
    bk_module_free(net);
}

int main(void) {
    test_rng_seed("test_init");
    RUN(fans_match_torch);
    RUN(gains_match_torch);
    RUN(plain_distributions);
    RUN(xavier_and_kaiming);
    RUN(orthogonal);
    RUN(trunc_normal);
    RUN(failures_leave_the_tensor);
    RUN(apply_over_a_block_tree);
    return test_summary("test_init");
}
