/* test_ops_group_norm.c - bk_group_norm (F.group_norm, composed from layer_norm, reshape
 * and broadcasting ops): gradients against central differences and values against a
 * reference in double, on random shapes (rank 2 to 4), group counts and with or without
 * the affine weight and bias.
 *
 * Seed: $BRICK_TEST_SEED, else $BRICK_SEED, else the clock (printed first). Gradient
 * tolerances as test_ops.c (eps 1e-3, atol 5e-3, rtol 1e-2); the inputs are N(0, 1) and each
 * group has at least 2 values, so the variance stays away from 0 and the normalisation is
 * smooth at the step. Values: within 1e-5 (1 + |y|) of the double reference.
 */
#include "test.h"
#include "gradcheck.h"
#include "op_refs.h"

#include <stdint.h>

typedef struct gn_case {
    int64_t G;
    float eps;
} gn_case;

static bk_tensor *f_gn(bk_tensor *const *in, int n, void *ud) {
    const gn_case *c = ud;
    return bk_group_norm(in[0], c->G, n > 1 ? in[1] : NULL, n > 2 ? in[2] : NULL, c->eps);
}

TEST(group_norm_gradcheck_values) {
    for (int t = 0; t < 3 * TRIALS; t++) {
        int nd = (int)rand_int(2, 4);
        int64_t G = rand_int(1, 3),
                shape[4] = {rand_int(1, 3), G * rand_int(1, 3), rand_int(2, 4), rand_int(1, 3)};
        if (nd == 2 && shape[1] / G < 2) shape[1] = 2 * G; /* at least 2 values per group */
        gn_case c = {G, t % 2 ? 1e-5f : 0.1f};
        bk_tensor *in[3] = {leaf_normal(nd, shape, 0, 1), leaf_normal(1, &shape[1], 1, 0.5f),
                            leaf_normal(1, &shape[1], 0, 0.5f)};
        int n = (int)rand_int(1, 3);
        char what[160], s[64];
        snprintf(what, sizeof what, "group_norm x %s G %lld inputs %d", bk_shape_str(in[0], s, sizeof s),
                 (long long)G, n);
        CHECK(gradcheck_ok(what, f_gn, in, n, &c));
        bk_tensor *y = f_gn(in, n, &c);
        CHECK(y && bk_same_shape(y, in[0]));
        int64_t N = shape[0], C = shape[1], S = in[0]->numel / (N * C), D = C / G * S;
        for (int64_t r = 0; y && r < N * G; r++) { /* row r: sample r / G, group r % G, D values */
            const float *x = in[0]->data + r * D;
            double mean = 0, var = 0;
            for (int64_t i = 0; i < D; i++) mean += x[i];
            mean /= (double)D;
            for (int64_t i = 0; i < D; i++) var += (x[i] - mean) * (x[i] - mean);
            var /= (double)D;
            for (int64_t i = 0; i < D; i++) {
                int64_t ch = r % G * (C / G) + i / S;
                double want = (x[i] - mean) / sqrt(var + c.eps);
                if (n > 1) want *= in[1]->data[ch];
                if (n > 2) want += in[2]->data[ch];
                if (!(fabs(y->data[r * D + i] - want) <= 1e-5 * (1 + fabs(want)))) {
                    fprintf(stderr, "  %s: y[%lld] = %.8g, want %.8g\n", what, (long long)(r * D + i),
                            (double)y->data[r * D + i], want);
                    CHECK(!"group_norm values");
                    r = N * G;
                    break;
                }
            }
        }
        bk_arena_reset(NULL);
    }
}

TEST(group_norm_errors) {
    bk_tensor *x = bk_randn(BK_SHAPE(2, 6, 3)), *w = bk_ones(BK_SHAPE(6));
    CHECK(bk_group_norm(x, 4, w, NULL, 1e-5f) == NULL);
    CHECK(strstr(bk_last_error(), "num_groups=4") && strstr(bk_last_error(), "(2, 6, 3)"));
    CHECK(bk_group_norm(x, 2, bk_ones(BK_SHAPE(4)), NULL, 1e-5f) == NULL);
    CHECK(strstr(bk_last_error(), "weight has shape (4,)") != NULL);
    CHECK(bk_group_norm(x, 2, NULL, w, 1e-5f) == NULL);
    CHECK(strstr(bk_last_error(), "weight is NULL but bias is not") != NULL);
    CHECK(bk_group_norm(bk_randn(BK_SHAPE(6)), 2, NULL, NULL, 1e-5f) == NULL);
    bk_arena_reset(NULL);
}

int main(void) {
    test_rng_seed("test_ops_group_norm");
    RUN(group_norm_gradcheck_values);
    RUN(group_norm_errors);
    return test_summary("test_ops_group_norm");
}
