/* test_module_layers.c - built-in layers seen as blocks: Linear's initialisation bounds
 * (PyTorch's kaiming_uniform_ with a = sqrt(5)) and Flatten / Identity / Tanh (split from
 * test_module.c, which tests the block system itself).
 */
#include "test.h"

/* ======================================================================================
 * Built-in blocks
 * ====================================================================================== */

TEST(linear_init_bounds) {
    bk_manual_seed(6);
    const int64_t sizes[][2] = {{20, 256}, {256, 10}, {3, 5}, {1, 1000}, {1000, 2}};
    for (int k = 0; k < 5; k++) {
        bk_module *lin = bk_nn_linear(sizes[k][0], sizes[k][1]);
        CHECK(lin != NULL);
        if (!lin) continue;
        const float bound = 1.0f / sqrtf((float)sizes[k][0]);
        const char *names[] = {"weight", "bias"};
        for (int p = 0; p < 2; p++) {
            const bk_tensor *t = bk_module_get(lin, names[p]);
            CHECK(t && t->numel == (p ? sizes[k][1] : sizes[k][0] * sizes[k][1]));
            if (!t) continue;
            float lo = t->data[0], hi = t->data[0];
            for (int64_t i = 0; i < t->numel; i++) {
                lo = fminf(lo, t->data[i]);
                hi = fmaxf(hi, t->data[i]);
            }
            CHECK(lo >= -bound && hi <= bound);          // U(-1/sqrt(in), 1/sqrt(in))
            CHECK(lo < hi);                              // not all equal
            if (t->numel >= 100) CHECK(hi - lo > bound); // and spread over the range
        }
        bk_module_free(lin);
    }
    bk_module *nobias = bk_nn_linear_ex(4, 3, false);
    CHECK(nobias && nobias->n_params == 1);
    CHECK(bk_module_num_params(nobias, false) == 12);
    CHECK_ERR(bk_module_get(nobias, "bias"), "no parameter");
    bk_tensor *y = bk_forward(nobias, bk_ones(BK_SHAPE(2, 4)));
    CHECK(y && y->shape[0] == 2 && y->shape[1] == 3);
    bk_module_free(nobias);
    // two layers made in a row differ (the generator advances)
    bk_module *l1 = bk_nn_linear(5, 5), *l2 = bk_nn_linear(5, 5);
    CHECK(l1 && l2 && bk_module_get(l1, "weight")->data[0] != bk_module_get(l2, "weight")->data[0]);
    bk_module_free(l1);
    bk_module_free(l2);
    // and the same seed gives the same layer
    bk_manual_seed(6);
    bk_module *again = bk_nn_linear(20, 256);
    bk_manual_seed(6);
    bk_module *again2 = bk_nn_linear(20, 256);
    CHECK(again && again2 &&
          memcmp(bk_module_get(again, "weight")->data, bk_module_get(again2, "weight")->data,
                 20 * 256 * sizeof(float)) == 0);
    bk_module_free(again);
    bk_module_free(again2);
    CHECK_ERR(bk_nn_linear(-1, 3), "non-negative");
}

TEST(flatten_identity_tanh) {
    bk_manual_seed(7);
    bk_tensor *x = bk_requires_grad(bk_randn(BK_SHAPE(2, 3, 4, 5)), true);
    bk_module *flat = bk_nn_flatten(1, -1), *flat_all = bk_nn_flatten(0, -1), *flat_mid = bk_nn_flatten(1, 2);
    bk_module *id = bk_nn_identity(), *th = bk_nn_tanh();
    CHECK(x && flat && flat_all && flat_mid && id && th);
    bk_tensor *y = bk_forward(flat, x);
    CHECK(y && y->ndim == 2 && y->shape[0] == 2 && y->shape[1] == 60);
    bk_tensor *ya = bk_forward(flat_all, x);
    CHECK(ya && ya->ndim == 1 && ya->shape[0] == 120);
    bk_tensor *ym = bk_forward(flat_mid, x);
    CHECK(ym && ym->ndim == 3 && ym->shape[0] == 2 && ym->shape[1] == 12 && ym->shape[2] == 5);
    for (int64_t i = 0; y && i < y->numel; i++) CHECK(y->data[i] == x->data[i]);
    bk_tensor *yi = bk_forward(id, x);
    CHECK(yi == x); // nn.Identity returns its input
    bk_tensor *yt = bk_forward(th, x);
    CHECK(yt && bk_same_shape(yt, x));
    for (int64_t i = 0; yt && i < yt->numel; i++) CHECK_CLOSE(yt->data[i], tanhf(x->data[i]), 1e-6);
    // gradients flow back through the views, in the input's shape
    CHECK(bk_backward(bk_sum(bk_add(bk_forward(th, y), bk_forward(flat, yi)))) == 0);
    CHECK(x->grad && bk_same_shape(x->grad, x));
    for (int64_t i = 0; x->grad && i < x->numel; i++) {
        float t = tanhf(x->data[i]);
        CHECK_CLOSE(x->grad->data[i], 1.0f - t * t + 1.0f, 1e-5);
    }
    CHECK(bk_module_num_params(flat, false) == 0 && bk_module_num_params(th, false) == 0);
    CHECK_ERR(bk_forward(flat, bk_ones(BK_SHAPE(3))), "Flatten");
    bk_module_free(flat);
    bk_module_free(flat_all);
    bk_module_free(flat_mid);
    bk_module_free(id);
    bk_module_free(th);
}

int main(void) {
    RUN(linear_init_bounds);
    RUN(flatten_identity_tanh);
    return test_summary("test_module_layers");
}
