/* 08_linear_regression.c - regression, the other task D2L's blocks serve (D2L 3.3,
 * "Concise Implementation of Linear Regression"), on a documented synthetic data set:
 *
 *   true_w = torch.tensor([2, -3.4]); true_b = 4.2
 *   X = torch.normal(0, 1, (1000, 2)); y = X @ true_w + true_b + torch.normal(0, 0.01, (1000,))
 *   data_iter = DataLoader(TensorDataset(X, y.reshape(-1, 1)), batch_size=10, shuffle=True)
 *   net = nn.Sequential(nn.Linear(2, 1))
 *   net[0].weight.data.normal_(0, 0.01); net[0].bias.data.fill_(0)
 *   loss = nn.MSELoss(); trainer = torch.optim.SGD(net.parameters(), lr=0.03)
 *   for epoch in range(3):
 *       for X, y in data_iter:
 *           l = loss(net(X), y); trainer.zero_grad(); l.backward(); trainer.step()
 *
 * Prints the loss per epoch and the learned w and b beside the true ones; exits 1 unless
 * they are recovered (|error| < 0.01, the noise level).
 */
#include "common.h"

#include <math.h>
#include <stdlib.h>

#define N 1000

int main(void) {
    bk_manual_seed(0);
    const float true_w[2] = {2.0f, -3.4f}, true_b = 4.2f;
    static float x[N * 2], y[N];
    synthetic_data(N, true_w, true_b, x, y);
    bk_dataset *ds = bk_dataset_from_arrays(N, BK_SHAPE(2), x, NULL, 0, y, 1);
    bk_module *net = bk_nn_sequential(1, bk_nn_linear(2, 1));
    bk_loader *loader = ds ? bk_loader_new(ds, 10, true, 42, false) : NULL;
    if (!net || !loader) goto fail;
    bk_fill_normal(bk_module_get(net, "0.weight"), NULL, 0.0f, 0.01f);
    bk_fill(bk_module_get(net, "0.bias"), 0.0f);
    bk_optim *trainer = bk_optim_sgd(net, BK_SGD_DEFAULTS(0.03));
    if (!trainer) goto fail;
    bk_module_print(net, stdout);
    for (int epoch = 0; epoch < 3; epoch++) {
        bk_loader_start(loader);
        bk_tensor *xb, *yb;
        while (bk_loader_next(loader, &xb, NULL, &yb) > 0) {
            bk_tensor *l = bk_mse_loss(bk_forward(net, xb), yb, BK_REDUCTION_MEAN);
            bk_optim_zero_grad(trainer);
            if (!l || bk_backward(l) != 0 || bk_optim_step(trainer) != 0) goto fail_optim;
            bk_arena_reset(NULL);
        }
        /* loss over the whole data set, as D2L prints it */
        bool prev = bk_set_grad_enabled(false);
        bk_tensor *all_x = bk_from_data(BK_SHAPE(N, 2), x), *all_y = bk_from_data(BK_SHAPE(N, 1), y);
        bk_tensor *l = bk_mse_loss(bk_forward(net, all_x), all_y, BK_REDUCTION_MEAN);
        bk_set_grad_enabled(prev);
        if (!l) goto fail_optim;
        printf("epoch %d, loss %.6f\n", epoch + 1, (double)bk_item(l));
        bk_arena_reset(NULL);
    }
    const float *w = bk_module_get(net, "0.weight")->data, b = bk_module_get(net, "0.bias")->data[0];
    printf("w = (%.4f, %.4f), true (%.4f, %.4f); error (%.2e, %.2e)\n", (double)w[0], (double)w[1],
           (double)true_w[0], (double)true_w[1], (double)(true_w[0] - w[0]), (double)(true_w[1] - w[1]));
    printf("b = %.4f, true %.4f; error %.2e\n", (double)b, (double)true_b, (double)(true_b - b));
    int ok = fabsf(true_w[0] - w[0]) < 0.01f && fabsf(true_w[1] - w[1]) < 0.01f && fabsf(true_b - b) < 0.01f;
    bk_optim_free(trainer);
    bk_loader_free(loader);
    bk_dataset_free(ds);
    bk_module_free(net);
    bk_thread_cleanup();
    if (!ok) fprintf(stderr, "08_linear_regression: parameters not recovered\n");
    return ok ? 0 : 1;
fail_optim:
    bk_optim_free(trainer);
fail:
    fprintf(stderr, "08_linear_regression: %s\n", bk_last_error());
    bk_loader_free(loader);
    bk_dataset_free(ds);
    bk_module_free(net);
    bk_thread_cleanup();
    return 1;
}
