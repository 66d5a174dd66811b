/* test_dist.c - the distributed layer in a world of one process (bk_dist_*, bk_ddp): what
 * `make test` checks without mpirun (tests/test_dist.sh runs the ranks).
 *
 *   - a world of one: rank 0, size 1, barrier, allgather copies, broadcast_module changes
 *     nothing, bk_dist_init outside mpirun leaves MPI alone;
 *   - accumulation is exact: three micro-batches (3, 2, 2 samples of 7) give gradients
 *     bitwise equal to ((g_0 + g_1) + g_2) / 7 computed here by hand, and close to the
 *     whole batch's mean-loss gradient;
 *   - bk_ddp_reduce in a world of one divides by the divisor, bit for bit;
 *   - a frozen parameter is left out; a parameter without a gradient gets zeros;
 *   - save/restore of the buffers (BatchNorm's running statistics);
 *   - misuse: NULL, nothing accumulated, a divisor <= 0, an unknown mode.
 */
#include "test.h"

#include <stdint.h>

/* Linear(4, 5) -> ReLU -> Linear(5, 3), weights from seed 7. */
static bk_module *small_mlp(void) {
    bk_manual_seed(7);
    return bk_nn_sequential(3, bk_nn_linear(4, 5), bk_nn_relu(), bk_nn_linear(5, 3));
}

enum { N = 7, F = 4 };
static float xs[N * F];
static const int64_t ys[N] = {0, 2, 1, 1, 0, 2, 2};

/* The SUM loss of samples [off, off + len) backpropagated into freshly zeroed gradients. */
static void backward_slice(bk_module *m, int off, int len, bk_reduction red) {
    bk_module_zero_grad(m);
    bk_tensor *X = bk_from_data(BK_SHAPE(len, F), xs + off * F);
    bk_tensor *loss = bk_cross_entropy(bk_forward(m, X), ys + off, len, red);
    CHECK(bk_backward(loss) == 0);
    bk_arena_reset(NULL);
}

/* Every parameter's gradient, concatenated (malloc'ed). */
static float *grads(const bk_module *m, int64_t *n) {
    bk_param_list *l = bk_module_named(m, BK_PARAMS);
    int64_t total = 0;
    for (int i = 0; i < l->n; i++) total += l->tensors[i]->numel;
    float *buf = calloc((size_t)total + 1, sizeof *buf), *p = buf;
    for (int i = 0; i < l->n; i++) {
        if (l->tensors[i]->grad)
            memcpy(p, l->tensors[i]->grad->data, (size_t)l->tensors[i]->numel * sizeof *p);
        p += l->tensors[i]->numel;
    }
    bk_param_list_free(l);
    *n = total;
    return buf;
}

TEST(world_of_one) {
    CHECK(bk_dist_init(NULL, NULL, false) == 0); /* not under mpirun: MPI untouched */
    CHECK(bk_dist_rank() == 0);
    CHECK(bk_dist_world_size() == 1);
    CHECK(bk_dist_barrier() == 0);
    int64_t mine[2] = {42, -1}, all[2] = {0, 0};
    CHECK(bk_dist_allgather(mine, all, sizeof mine) == 0);
    CHECK(all[0] == 42 && all[1] == -1);
    CHECK_FAILS_INT(bk_dist_allgather(NULL, all, 8), "NULL");
    bk_module *m = small_mlp();
    bk_tensor *w = bk_module_get(m, "0.weight");
    float before = w->data[3];
    CHECK(bk_dist_broadcast_module(m, "mlp") == 0);
    CHECK(w->data[3] == before);
    CHECK_FAILS_INT(bk_dist_broadcast_module(NULL, "mlp"), "module is NULL");
    bk_module_free(m);
    CHECK(bk_dist_finalize() == 0);
}

TEST(accumulate_is_exact) {
    for (int i = 0; i < N * F; i++) xs[i] = (float)((i * 37) % 11) / 5.0f - 1.0f;
    bk_module *m = small_mlp();
    bk_ddp *d = bk_ddp_new(m, "mlp", BK_DIST_DETERMINISTIC);
    CHECK(d != NULL);
    CHECK(bk_ddp_numel(d) == 4 * 5 + 5 + 5 * 3 + 3);
    /* by hand: g_k of each slice, then ((g_0 + g_1) + g_2) / 7 in float */
    static const int off[3] = {0, 3, 5}, len[3] = {3, 2, 2};
    float *g[3];
    int64_t n = 0;
    for (int k = 0; k < 3; k++) {
        backward_slice(m, off[k], len[k], BK_REDUCTION_SUM);
        g[k] = grads(m, &n);
    }
    float *want = malloc((size_t)n * sizeof *want);
    for (int64_t i = 0; i < n; i++) {
        float s = g[0][i];
        s += g[1][i];
        s += g[2][i];
        want[i] = s / 7.0f;
    }
    /* through the library */
    for (int k = 0; k < 3; k++) {
        backward_slice(m, off[k], len[k], BK_REDUCTION_SUM);
        CHECK(bk_ddp_accumulate(d) == 0);
    }
    CHECK(bk_ddp_finish(d, 7.0f) == 0);
    float *got = grads(m, &n);
    CHECK(memcmp(got, want, (size_t)n * sizeof *got) == 0);
    /* and the whole batch's mean loss, to rounding */
    backward_slice(m, 0, N, BK_REDUCTION_MEAN);
    float *whole = grads(m, &n);
    double worst = 0;
    for (int64_t i = 0; i < n; i++) worst = fmax(worst, fabs((double)whole[i] - got[i]));
    CHECK(worst < 1e-6);
    /* a reduce in a world of one: the gradients / divisor, bit for bit */
    backward_slice(m, 0, N, BK_REDUCTION_SUM);
    float *sum = grads(m, &n);
    CHECK(bk_ddp_reduce(d, 7.0f) == 0);
    free(got);
    got = grads(m, &n);
    bool same = true;
    for (int64_t i = 0; i < n; i++) same = same && got[i] == sum[i] / 7.0f;
    CHECK(same);
    CHECK(bk_ddp_comm_seconds(d) >= 0);
    for (int k = 0; k < 3; k++) free(g[k]);
    free(want);
    free(got);
    free(whole);
    free(sum);
    bk_ddp_free(d);
    bk_module_free(m);
}

TEST(frozen_and_missing_gradients) {
    bk_module *m = small_mlp();
    CHECK(bk_module_set_trainable(bk_module_child(m, 0), "bias", false) == 0);
    bk_ddp *d = bk_ddp_new(m, NULL, BK_DIST_FAST);
    CHECK(bk_ddp_numel(d) == 4 * 5 + 5 * 3 + 3);
    /* no backward yet: no parameter has a gradient; finish gives every trainable one zeros */
    CHECK(bk_ddp_accumulate(d) == 0);
    CHECK(bk_ddp_finish(d, 2.0f) == 0);
    bk_tensor *w = bk_module_get(m, "2.weight");
    CHECK(w->grad != NULL && w->grad->data[0] == 0.0f);
    CHECK(bk_module_get(m, "0.bias")->grad == NULL);
    bk_ddp_free(d);
    bk_module_free(m);
}

TEST(buffers_saved_and_restored) {
    bk_module *bn = bk_nn_batch_norm1d(3);
    bk_ddp *d = bk_ddp_new(bn, "bn", BK_DIST_DETERMINISTIC);
    bk_tensor *mean = bk_module_get(bn, "running_mean");
    CHECK(bk_ddp_save_buffers(d) == 0);
    float x[6] = {1, 2, 3, 5, 7, 9};
    bk_forward(bn, bk_from_data(BK_SHAPE(2, 3), x)); /* training: updates running_mean */
    CHECK(mean->data[0] != 0.0f);
    CHECK(bk_ddp_restore_buffers(d) == 0);
    CHECK(mean->data[0] == 0.0f);
    CHECK(bk_ddp_sync_buffers(d) == 0); /* a world of one: nothing to do */
    bk_ddp_free(d);
    bk_module_free(bn);
}

TEST(misuse) {
    bk_module *m = small_mlp();
    CHECK_ERR(bk_ddp_new(NULL, NULL, BK_DIST_DETERMINISTIC), "module is NULL");
    CHECK_ERR(bk_ddp_new(m, NULL, BK_DIST_MODE_COUNT), "unknown mode");
    bk_ddp *d = bk_ddp_new(m, NULL, BK_DIST_DETERMINISTIC);
    CHECK_FAILS_INT(bk_ddp_finish(d, 1.0f), "nothing was accumulated");
    CHECK_FAILS_INT(bk_ddp_reduce(d, 0.0f), "divisor");
    CHECK_FAILS_INT(bk_ddp_reduce(NULL, 1.0f), "ddp is NULL");
    CHECK_FAILS_INT(bk_ddp_accumulate(NULL), "ddp is NULL");
    CHECK_FAILS_INT(bk_ddp_restore_buffers(d), "no buffers were saved");
    CHECK(bk_ddp_accumulate(d) == 0);
    CHECK_FAILS_INT(bk_ddp_finish(d, -1.0f), "divisor");
    CHECK(bk_ddp_numel(NULL) == -1);
    bk_ddp_free(d);
    bk_ddp_free(NULL);
    bk_module_free(m);
}

int main(void) {
    RUN(world_of_one);
    RUN(accumulate_is_exact);
    RUN(frozen_and_missing_gradients);
    RUN(buffers_saved_and_restored);
    RUN(misuse);
    return test_summary("test_dist");
}
