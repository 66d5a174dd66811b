/* 09_data_parallel.c - one model trained by several processes in your own loop (torch's
 * DistributedDataParallel), and the same steps with gradient accumulation in one process
 * (docs/distributed.md).
 *
 *   build/examples/09_data_parallel [N]            one process, N micro-batches (default 3)
 *   mpirun -np P build/examples/09_data_parallel   P processes, one slice each
 *
 * The regression of 08_linear_regression.c (y = X (2, -3.4) + 4.2 + noise) with an MLP,
 * batches of 50 cut into slots (the first 50 % S slots one sample longer). Each slot's
 * loss is the SUM of its squared errors; the gradients are summed in slot order and divided
 * by the batch size: across the ranks by bk_ddp_reduce, across the micro-batches by
 * bk_ddp_accumulate and bk_ddp_finish, the same float operations. So `mpirun -np 3` and
 * `09_data_parallel 3` print the same fingerprint of the final weights
 * (tests/test_dist.sh checks it). Rank 0 prints; exits 1 unless the loss comes down.
 */
#include "common.h"

#include <stdlib.h>
#include <string.h>

#define N 1000
#define BATCH 50

/* FNV-1a over every parameter's bytes: equal fingerprints, equal weights. */
static unsigned long long fingerprint(const bk_module *m) {
    bk_param_list *l = bk_module_named(m, BK_PARAMS);
    unsigned long long h = 0xcbf29ce484222325ull;
    for (int i = 0; l && i < l->n; i++) {
        const unsigned char *b = (const unsigned char *)l->tensors[i]->data;
        for (size_t k = 0; k < (size_t)l->tensors[i]->numel * sizeof(float); k++)
            h = (h ^ b[k]) * 0x100000001b3ull;
    }
    bk_param_list_free(l);
    return h;
}

int main(int argc, char **argv) {
    if (bk_dist_init(&argc, &argv, false) != 0) {
        fprintf(stderr, "09_data_parallel: %s\n", bk_last_error());
        return 1;
    }
    int rank = bk_dist_rank(), world = bk_dist_world_size();
    int micro = world == 1 ? (argc > 1 ? atoi(argv[1]) : 3) : 1; /* slots of this process */
    int slots = world * micro;
    if (micro < 1) micro = slots = 1;
    static float x[N * 2], y[N];
    synthetic_data(N, (const float[2]){2.0f, -3.4f}, 4.2f, x, y); /* y = 2 x0 - 3.4 x1 + 4.2 + noise */
    bk_manual_seed(0); /* the same model on every rank (bk_ddp_new checks it and copies rank 0's) */
    bk_module *net = bk_nn_sequential(3, bk_nn_linear(2, 16), bk_nn_relu(), bk_nn_linear(16, 1));
    bk_optim *opt = net ? bk_optim_sgd(net, BK_SGD_DEFAULTS(0.02)) : NULL;
    bk_ddp *ddp = opt ? bk_ddp_new(net, "2-16-1 MLP", BK_DIST_DETERMINISTIC) : NULL;
    double first = 0, last = 0;
    if (!ddp) goto fail;
    for (int epoch = 0; epoch < 3; epoch++) {
        double epoch_loss = 0;
        for (int start = 0; start < N; start += BATCH) { /* every rank sees every batch */
            double loss_sum = 0;
            for (int k = 0; k < micro; k++) {
                int slot = rank * micro + k, len = BATCH / slots + (slot < BATCH % slots);
                int off = start + slot * (BATCH / slots) + (slot < BATCH % slots ? slot : BATCH % slots);
                bk_optim_zero_grad(opt);
                bk_tensor *xs = bk_from_data(BK_SHAPE(len, 2), x + 2 * off);
                bk_tensor *ys = bk_from_data(BK_SHAPE(len, 1), y + off);
                bk_tensor *l = bk_mse_loss(bk_forward(net, xs), ys, BK_REDUCTION_SUM);
                if (!l || bk_backward(l) != 0) goto fail;
                loss_sum += bk_item(l);
                if (world == 1 && bk_ddp_accumulate(ddp) != 0) goto fail;
                bk_arena_reset(NULL);
            }
            /* the mean over the batch: sum of the slots' gradients / BATCH */
            int rc = world == 1 ? bk_ddp_finish(ddp, BATCH) : bk_ddp_reduce(ddp, BATCH);
            if (rc != 0 || bk_optim_step(opt) != 0) goto fail;
            epoch_loss += loss_sum; /* this rank's share */
        }
        double all[64] = {0}; /* every rank's share, summed in rank order */
        if (world > 64 || bk_dist_allgather(&epoch_loss, all, sizeof epoch_loss) != 0) goto fail;
        double total = 0;
        for (int r = 0; r < world; r++) total += all[r];
        last = total / N;
        if (epoch == 0) first = last;
        if (rank == 0) printf("epoch %d, mean loss %.6f\n", epoch + 1, last);
    }
    if (rank == 0)
        printf("%d slots (%d processes x %d micro-batches): weights fingerprint %016llx\n", slots, world,
               micro, fingerprint(net));
    bk_ddp_free(ddp);
    bk_optim_free(opt);
    bk_module_free(net);
    bk_thread_cleanup();
    bk_dist_finalize();
    if (!(last < first)) fprintf(stderr, "09_data_parallel: the loss did not come down\n");
    return last < first ? 0 : 1;
fail:
    fprintf(stderr, "09_data_parallel: rank %d: %s\n", rank, bk_last_error());
    bk_ddp_free(ddp);
    bk_optim_free(opt);
    bk_module_free(net);
    bk_thread_cleanup();
    if (world > 1) bk_dist_abort(1); /* the other ranks would wait for this one */
    bk_dist_finalize();
    return 1;
}
