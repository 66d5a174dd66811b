/* train_dist.c - one optimizer step of `brick train` over several slots: the micro-batches
 * of --accumulate N in one process, or the ranks of `mpirun -np P` (docs/distributed.md).
 *
 * The global batch of B samples (the loader's, the same on every rank: one shuffle per
 * epoch from the shared seed) is cut into S slots, S = N or P; slot k holds the samples
 * [off_k, off_k + len_k), len_k = B / S + (k < B % S): the first B % S slots get one more.
 * Slot k's gradient is that of the SUM of its per-sample losses, computed from zeroed
 * gradients; the step's gradient is (g_0 + g_1 + ... + g_{S-1}) / B, summed in slot order
 * by the library (bk_ddp_finish in one process, bk_ddp_reduce across ranks: the same float
 * operations), so that both give the same bits. An empty slot (B < S) contributes zeros.
 *
 * Per slot, as a rank would see it:
 *   - the dropout stream is the default generator reseeded from (seed, step, slot), so no
 *     two slots share one and a resume needs no generator state;
 *   - BatchNorm normalises with the slot's own batch statistics (torch DDP's semantics);
 *     the running statistics kept are slot 0's (rank 0's, broadcast after the step: DDP's
 *     broadcast_buffers), which one process mirrors by saving the buffers after slot 0
 *     and restoring them after the last slot.
 * Across ranks, one small all-gather per step carries each rank's status (failed or not,
 * a pending SIGINT/SIGTERM) and its loss sum and correct count, summed in rank order, so
 * that every rank takes the same decision (go on, stop on a bad loss, stop because rank k
 * failed, stop for a signal) and logs the same numbers.
 */
#define _XOPEN_SOURCE 700

#include "cli.h"

#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t mix64(uint64_t x) {
    x += 0x9E3779B97F4A7C15u;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9u;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBu;
    return x ^ (x >> 31);
}

int64_t cli_slot_range(int64_t B, int slots, int k, int64_t *off) {
    int64_t base = B / slots, extra = B % slots;
    *off = (int64_t)k * base + (k < extra ? k : extra);
    return base + (k < extra);
}

int cli_slots_init(cli_slots *s, bk_module *m, const char *arch, int accumulate, int64_t seed,
                   bk_dist_mode mode) {
    s->rank = bk_dist_rank();
    s->world = bk_dist_world_size();
    s->accumulate = accumulate;
    s->n_slots = s->world * accumulate;
    s->seed = seed;
    s->ddp = NULL;
    s->x_cap = s->y_cap = s->t_cap = 0;
    s->x = NULL;
    s->y = NULL;
    s->t = NULL;
    if (s->n_slots == 1) return 0; /* the classic step: mean loss, no copy */
    s->ddp = bk_ddp_new(m, arch, mode);
    return s->ddp ? 0 : -1;
}

void cli_slots_free(cli_slots *s) {
    bk_ddp_free(s->ddp);
    free(s->x);
    free(s->y);
    free(s->t);
    s->ddp = NULL;
    s->x = NULL;
    s->y = NULL;
    s->t = NULL;
}

/* The hidden BRICK_TEST_DIST_FAULT=RANK:STEP:kill|fail (tests/test_dist.sh): rank RANK
 * dies by SIGKILL, or fails as a forward would, in step STEP (1-based). 0: none, 1: kill,
 * 2: fail. */
static int test_fault(int rank, int64_t step) {
    const char *f = getenv("BRICK_TEST_DIST_FAULT");
    long long at = 0;
    int who = -1, used = 0;
    char what[8] = "";
    if (!f || sscanf(f, "%d:%lld:%7[a-z]%n", &who, &at, what, &used) != 3 || f[used] || who != rank ||
        at != step + 1)
        return 0;
    return !strcmp(what, "kill") ? 1 : !strcmp(what, "fail") ? 2 : 0;
}

/* What each rank tells the others after its slots. */
typedef struct rank_report {
    double loss_sum;
    int64_t correct;
    int32_t failed, signal;
} rank_report;

/* The slot's forward and backward; adds to *loss_sum and *correct. 0 or -1 (error set). */
static int run_slot(cli_slots *s, bk_module *m, int slot, int64_t B, int64_t step, const int64_t *shape,
                    int ndim, double *loss_sum, int64_t *correct) {
    int64_t off, len = cli_slot_range(B, s->n_slots, slot, &off);
    bk_module_zero_grad(m);
    if (len == 0) return 0;
    int64_t sample = 1;
    for (int d = 1; d < ndim; d++) sample *= shape[d];
    int64_t xshape[BK_MAX_DIMS];
    memcpy(xshape, shape, (size_t)ndim * sizeof *shape);
    xshape[0] = len;
    bk_tensor *x = bk_empty(ndim, xshape); /* (len, shape...) */
    if (!x) return -1;
    memcpy(x->data, s->x + off * sample, (size_t)(len * sample) * sizeof(float));
    bk_rng_seed(bk_default_rng(), mix64(mix64(mix64((uint64_t)s->seed) ^ (uint64_t)step) ^ (uint64_t)slot));
    const int64_t *y = s->y + off;
    bk_tensor *logits = bk_forward(m, x); /* (len, classes), regression: (len, 1) */
    bk_tensor *loss = NULL;
    int64_t ok = 0;
    if (s->regression) { /* sum of squared errors: the mean over the global batch after bk_ddp */
        bk_tensor *t = bk_from_data(2, (int64_t[]){len, 1}, s->t + off);
        loss = t ? bk_mse_loss(logits, t, BK_REDUCTION_SUM) : NULL;
    } else {
        loss = bk_cross_entropy(logits, y, len, BK_REDUCTION_SUM);
        ok = loss ? bk_count_correct(logits, y, len) : 0;
    }
    if (!loss) return -1;
    *loss_sum += (double)bk_item(loss);
    if (ok < 0 || bk_backward(loss) != 0) return -1;
    *correct += ok;
    return 0;
}

int cli_slots_step(cli_slots *s, bk_module *m, bk_tensor *x, const int64_t *y, const bk_tensor *t, int64_t B,
                   int64_t step, int signal, cli_step *out) {
    memset(out, 0, sizeof *out);
    out->failed_rank = -1;
    /* The batch to the heap, so that each slot's arena can be reset after its backward
     * (accumulation then needs a slot's memory, not the batch's). */
    size_t xn = (size_t)x->numel, yn = (size_t)B;
    if (xn > s->x_cap) {
        float *p = realloc(s->x, xn * sizeof *p);
        if (!p) return cli_fail("out of memory for a batch of %" PRId64 " samples", B);
        s->x = p;
        s->x_cap = xn;
    }
    s->regression = y == NULL;
    if (s->regression && yn > s->t_cap) {
        float *p = realloc(s->t, yn * sizeof *p);
        if (!p) return cli_fail("out of memory for a batch of %" PRId64 " samples", B);
        s->t = p;
        s->t_cap = yn;
    }
    if (!s->regression && yn > s->y_cap) {
        int64_t *p = realloc(s->y, yn * sizeof *p);
        if (!p) return cli_fail("out of memory for a batch of %" PRId64 " samples", B);
        s->y = p;
        s->y_cap = yn;
    }
    int ndim = x->ndim;
    int64_t shape[BK_MAX_DIMS];
    memcpy(shape, x->shape, (size_t)ndim * sizeof *shape);
    memcpy(s->x, x->data, xn * sizeof(float));
    if (s->regression) memcpy(s->t, t->data, yn * sizeof *s->t); /* (B, 1) */
    else memcpy(s->y, y, yn * sizeof *y);
    bk_arena_reset(NULL);

    rank_report me = {0, 0, 0, signal};
    int fault = test_fault(s->rank, step);
    if (fault == 1) raise(SIGKILL);
    for (int a = 0; a < s->accumulate && !me.failed; a++) {
        int slot = s->rank * s->accumulate + a;
        if (fault == 2) bk_set_error("injected failure (BRICK_TEST_DIST_FAULT)");
        if (fault == 2 || run_slot(s, m, slot, B, step, shape, ndim, &me.loss_sum, &me.correct) != 0 ||
            (s->world == 1 && slot == 0 && bk_ddp_save_buffers(s->ddp) != 0) ||
            (s->world == 1 && bk_ddp_accumulate(s->ddp) != 0)) {
            me.failed = 1;
            /* the message now, before the arena that may hold its tensors is reset */
            snprintf(out->error, sizeof out->error, "%s", bk_last_error());
        }
        bk_arena_reset(NULL);
    }
    if (s->world == 1) { /* micro-batch 0's running statistics; the mean gradient */
        out->loss_sum = me.loss_sum;
        out->correct = me.correct;
        out->signal = signal;
        if (!me.failed && (bk_ddp_restore_buffers(s->ddp) != 0 || bk_ddp_finish(s->ddp, (float)B) != 0)) {
            me.failed = 1;
            snprintf(out->error, sizeof out->error, "%s", bk_last_error());
        }
        out->failed_rank = me.failed ? 0 : -1;
        return me.failed ? CLI_RUNTIME : CLI_OK;
    }
    rank_report *all = calloc((size_t)s->world, sizeof *all);
    if (!all) return cli_fail("out of memory");
    if (bk_dist_allgather(&me, all, sizeof me) != 0) {
        free(all);
        return cli_fail(NULL);
    }
    for (int r = 0; r < s->world; r++) { /* in rank order: the same sums on every rank */
        out->loss_sum += all[r].loss_sum;
        out->correct += all[r].correct;
        if (all[r].signal > out->signal) out->signal = all[r].signal;
        if (all[r].failed && out->failed_rank < 0) out->failed_rank = r;
    }
    free(all);
    if (out->failed_rank >= 0) { /* every rank knows: all stop, none aborts */
        out->agreed = true;
        return CLI_RUNTIME;
    }
    if (bk_ddp_reduce(s->ddp, (float)B) != 0 || bk_ddp_sync_buffers(s->ddp) != 0) return cli_fail(NULL);
    return CLI_OK;
}

int cli_dist_agree(int rc, bool *agreed) {
    int world = bk_dist_world_size();
    if (world == 1) return rc;
    int32_t mine = rc, *all = calloc((size_t)world, sizeof *all);
    if (!all || bk_dist_allgather(&mine, all, sizeof mine) != 0) {
        free(all);
        return all ? cli_fail(NULL) : cli_fail("out of memory");
    }
    int worst = CLI_OK;
    for (int r = 0; r < world; r++)
        if (all[r] > worst) worst = all[r];
    free(all);
    if (worst != CLI_OK) *agreed = true;
    return worst;
}

int cli_dist_evaluate(bk_module *m, const bk_dataset *ds, int64_t batch, double *loss, double *acc,
                      bool *agreed) {
    int rank = bk_dist_rank(), world = bk_dist_world_size();
    if (world == 1) return cli_evaluate(m, ds, batch, loss, acc, NULL, 0) == 0 ? CLI_OK : cli_fail(NULL);
    /* per batch: its loss sum and correct count; the last entry says whether the rank failed */
    typedef struct {
        double loss;
        int64_t correct, failed;
    } batch_result;
    int64_t n_batches = (ds->n + batch - 1) / batch;
    size_t n = (size_t)n_batches + 1;
    double *bl = calloc(n, sizeof *bl);
    int64_t *bc = calloc(n, sizeof *bc);
    batch_result *mine = calloc(n, sizeof *mine), *all = calloc(n * (size_t)world, sizeof *all);
    int rc = CLI_OK;
    if (!bl || !bc || !mine || !all) {
        rc = cli_fail("out of memory");
        goto done;
    }
    int failed = cli_evaluate_part(m, ds, batch, rank, world, bl, bc, NULL, 0) != 0;
    if (failed) cli_fail(NULL);
    for (int64_t j = 0; j < n_batches; j++) mine[j] = (batch_result){bl[j], bc[j], 0};
    mine[n_batches].failed = failed;
    if (bk_dist_allgather(mine, all, n * sizeof *mine) != 0) {
        rc = cli_fail(NULL);
        goto done;
    }
    for (int64_t j = 0; j < n_batches; j++) { /* batch j came from rank j % world */
        bl[j] = all[(size_t)(j % world) * n + (size_t)j].loss;
        bc[j] = all[(size_t)(j % world) * n + (size_t)j].correct;
    }
    for (int r = 0; r < world; r++)
        if (all[(size_t)r * n + (size_t)n_batches].failed) rc = CLI_RUNTIME;
    if (rc) {
        *agreed = true;
        if (rank == 0 && !failed)
            cli_fail("the evaluation failed on another rank (its message is on its stderr)");
    } else {
        cli_evaluate_sum(ds, batch, bl, bc, loss, acc);
    }
done:
    free(bl);
    free(bc);
    free(mine);
    free(all);
    return rc;
}
