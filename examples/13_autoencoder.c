/* 13_autoencoder.c - generation beside classification and regression: a convolutional
 * autoencoder on Fashion-MNIST that squeezes each 28 x 28 image through a 32 x 7 x 7 code
 * and rebuilds it, with ConvTranspose2d (default) or Upsample + Conv2d in the decoder. As
 * PyTorch:
 *
 *   enc = nn.Sequential(nn.Conv2d(1, 16, 3, stride=2, padding=1), nn.ReLU(),      # 16 x 14 x 14
 *                       nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU())     # 32 x 7 x 7
 *   dec = nn.Sequential(nn.ConvTranspose2d(32, 16, 3, stride=2, padding=1, output_padding=1),
 *                       nn.ReLU(),                                                # 16 x 14 x 14
 *                       nn.ConvTranspose2d(16, 1, 3, stride=2, padding=1, output_padding=1),
 *                       nn.Sigmoid())                                             # 1 x 28 x 28
 *   # or (argument "upsample"): nn.Upsample(scale_factor=2), nn.Conv2d(32, 16, 3, padding=1),
 *   #   nn.ReLU(), nn.Upsample(scale_factor=2), nn.Conv2d(16, 1, 3, padding=1), nn.Sigmoid()
 *   net = nn.Sequential(enc, dec); loss = nn.MSELoss()
 *   trainer = torch.optim.Adam(net.parameters(), lr=2e-3)   # batch 64, images in [0, 1]
 *
 * Trains on the bundled subset (data/fashion-mnist-subset: 6000 training, 1000 test
 * images) for 1 epoch, or 5 with BRICK_EXAMPLE_FULL=1, and prints the test reconstruction
 * loss (mean squared error per pixel) after each epoch beside the loss of the best constant
 * answer, the mean training image (what a network that ignores its input can reach).
 * Exits 1 unless the autoencoder beats that baseline by half. Usage:
 *   build/examples/13_autoencoder [convt|upsample] [data dir]
 */
#include "common.h"

#include <stdlib.h>

/* The decoder: two x2 upsamplings, 32 -> 16 -> 1 channels, ending in a Sigmoid. */
static bk_module *decoder(bool upsample) {
    if (upsample) {
        bk_interp_opts up = {{0, 0}, {2, 2}, BK_INTERP_NEAREST, false};
        return bk_nn_sequential(6, bk_nn_upsample(up), bk_nn_conv2d(32, 16, 3, 1, 1), bk_nn_relu(),
                                bk_nn_upsample(up), bk_nn_conv2d(16, 1, 3, 1, 1), bk_nn_sigmoid());
    }
    bk_conv_transpose2d_opts o = {{2, 2}, {1, 1}, {1, 1}, {1, 1}, 1};
    const int64_t k3[2] = {3, 3};
    return bk_nn_sequential(4, bk_nn_conv_transpose2d(32, 16, k3, o, true), bk_nn_relu(),
                            bk_nn_conv_transpose2d(16, 1, k3, o, true), bk_nn_sigmoid());
}

/* Mean squared error per pixel of the net's reconstructions over a whole data set, and
 * of the constant answer `mean` (the mean training image, 784 values) when mean_loss is
 * not NULL. -1 on error. */
static double test_loss(bk_module *net, bk_loader *loader, const float *mean, double *mean_loss) {
    double sum = 0, sum_mean = 0;
    int64_t pixels = 0;
    bool prev = bk_set_grad_enabled(false);
    bk_loader_start(loader);
    bk_tensor *xb;
    while (bk_loader_next(loader, &xb, NULL, NULL) > 0) {
        bk_tensor *l = bk_mse_loss(bk_forward(net, xb), xb, BK_REDUCTION_SUM);
        if (!l) {
            bk_set_grad_enabled(prev);
            return -1;
        }
        sum += bk_item(l);
        for (int64_t i = 0; mean_loss && i < xb->numel; i++) {
            double d = (double)xb->data[i] - mean[i % 784];
            sum_mean += d * d;
        }
        pixels += xb->numel;
        bk_arena_reset(NULL);
    }
    bk_set_grad_enabled(prev);
    if (mean_loss) *mean_loss = sum_mean / (double)pixels;
    return sum / (double)pixels;
}

int main(int argc, char **argv) {
    bool upsample = argc > 1 && !strcmp(argv[1], "upsample");
    const char *dir = argc > 2 ? argv[2] : "data/fashion-mnist-subset";
    const bool full = getenv("BRICK_EXAMPLE_FULL") && !strcmp(getenv("BRICK_EXAMPLE_FULL"), "1");
    const int epochs = full ? 5 : 1;
    bk_manual_seed(0);
    bk_dataset *train = bk_fashion_mnist_load(dir, true), *test = bk_fashion_mnist_load(dir, false);
    bk_module *net = bk_nn_sequential(2,
                                      bk_nn_sequential(4, bk_nn_conv2d(1, 16, 3, 2, 1), bk_nn_relu(),
                                                       bk_nn_conv2d(16, 32, 3, 2, 1), bk_nn_relu()),
                                      decoder(upsample));
    bk_loader *loader = train ? bk_loader_new(train, 64, true, 42, false) : NULL;
    bk_loader *test_loader = test ? bk_loader_new(test, 250, false, 0, false) : NULL;
    bk_optim *trainer = net ? bk_optim_adam(net, BK_ADAM_DEFAULTS(2e-3)) : NULL;
    float *mean = calloc(784, sizeof(float));
    int ok = 0;
    if (!net || !loader || !test_loader || !trainer || !mean) goto done;
    bk_module_print(net, stdout);
    printf("%" PRId64 " parameters; %s decoder; %d epoch(s) on %" PRId64 " images\n",
           bk_module_num_params(net, true), upsample ? "Upsample + Conv2d" : "ConvTranspose2d", epochs,
           train->n);
    /* the mean training image: the best answer that ignores the input */
    bk_loader_start(loader);
    bk_tensor *xb;
    while (bk_loader_next(loader, &xb, NULL, NULL) > 0) {
        for (int64_t i = 0; i < xb->numel; i++) mean[i % 784] += xb->data[i] / (float)train->n;
        bk_arena_reset(NULL);
    }
    double base, loss = -1;
    if (test_loss(net, test_loader, mean, &base) < 0) goto done;
    for (int epoch = 0; epoch < epochs; epoch++) {
        double train_sum = 0;
        int64_t steps = 0;
        bk_loader_start(loader);
        while (bk_loader_next(loader, &xb, NULL, NULL) > 0) {
            bk_tensor *l = bk_mse_loss(bk_forward(net, xb), xb,
                                       BK_REDUCTION_MEAN); // (B, 1, 28, 28) vs itself
            bk_optim_zero_grad(trainer);
            if (!l || bk_backward(l) != 0 || bk_optim_step(trainer) != 0) goto done;
            train_sum += bk_item(l), steps++;
            bk_arena_reset(NULL);
        }
        loss = test_loss(net, test_loader, NULL, NULL);
        if (loss < 0) goto done;
        printf("epoch %d: train loss %.5f, test reconstruction loss %.5f (mean image: %.5f)\n", epoch + 1,
               train_sum / (double)steps, loss, base);
    }
    ok = loss < 0.5 * base;
    if (!ok)
        fprintf(stderr, "13_autoencoder: test loss %.5f is not below half the baseline %.5f\n", loss, base);
done:
    if (!ok && bk_last_error()[0]) fprintf(stderr, "13_autoencoder: %s\n", bk_last_error());
    free(mean);
    bk_optim_free(trainer);
    bk_loader_free(loader);
    bk_loader_free(test_loader);
    bk_dataset_free(train);
    bk_dataset_free(test);
    bk_module_free(net);
    bk_thread_cleanup();
    return ok ? 0 : 1;
}
