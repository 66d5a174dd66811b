/* consumer.c - a program outside the tree, built against the *installed* brick.
 *
 * scripts/install_check.sh compiles it with `pkg-config --cflags --libs brick` (shared) and
 * `pkg-config --static ...` (static) and expects the line
 *   output shape (2, 10), 7946 parameters
 * and exit status 0. 7946 = 20*256 + 256 (first Linear) + 256*10 + 10 (second Linear).
 */
#include <brick.h>

#include <stdio.h>

int main(void) {
    bk_module *net = bk_nn_sequential(3, bk_nn_linear(20, 256), bk_nn_relu(), bk_nn_linear(256, 10));
    if (!net) {
        fprintf(stderr, "consumer: building the network failed: %s\n", bk_last_error());
        return 1;
    }
    bk_tensor *x = bk_rand(BK_SHAPE(2, 20)); // (2, 20)
    bk_tensor *y = bk_forward(net, x);       // (2, 10)
    if (!y) {
        fprintf(stderr, "consumer: forward failed: %s\n", bk_last_error());
        bk_module_free(net);
        bk_thread_cleanup();
        return 1;
    }

    char shape[64];
    int64_t n_params = bk_module_num_params(net, false);
    printf("output shape %s, %lld parameters\n", bk_shape_str(y, shape, sizeof shape), (long long)n_params);
    int ok = y->ndim == 2 && y->shape[0] == 2 && y->shape[1] == 10 && n_params == 7946;
    if (!ok) fprintf(stderr, "consumer: expected shape (2, 10) and 7946 parameters\n");

    bk_arena_reset(NULL);
    bk_module_free(net);
    bk_thread_cleanup();
    if (ok) printf("consumer: ok (brick %s)\n", BK_VERSION_STRING);
    return ok ? 0 : 1;
}
