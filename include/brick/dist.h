/* brick/dist.h - part of brick.h: data-parallel training and gradient accumulation.
 * Include <brick.h>, which includes every part in order and states the ownership and
 * error rules once at its top. */
#ifndef BRICK_PART_DIST_H
#define BRICK_PART_DIST_H

#ifndef BRICK_H
#error "include <brick.h>, not <brick/dist.h>"
#endif

/* ------------------------------------------------------------------------------------ */
/* Data-parallel training (Open MPI) and gradient accumulation (docs/distributed.md)   */
/* ------------------------------------------------------------------------------------ */

/* A world of processes (ranks), each with a replica of the model, each training on its own
 * slice of every global batch; after the backward their gradients are summed, so every
 * replica makes the same update (torch's DistributedDataParallel). In a build with MPI
 * (`make MPI=1`, the default when Open MPI's mpicc is installed) started by mpirun, the
 * world is MPI_COMM_WORLD; otherwise every call below works on a world of one process.
 * A loop on every rank:
 *     bk_dist_init(&argc, &argv, false);
 *     bk_module *m = ...;                                  // the same model on every rank
 *     bk_ddp *ddp = bk_ddp_new(m, "my model", BK_DIST_DETERMINISTIC); // rank 0's weights
 *     for (...) {                                          // every rank its own slice
 *         bk_optim_zero_grad(o);
 *         bk_backward(bk_cross_entropy(bk_forward(m, x), y, n, BK_REDUCTION_MEAN));
 *         bk_ddp_reduce(ddp, (float)bk_dist_world_size()); // the mean of the ranks' grads
 *         bk_optim_step(o);
 *     }
 *     bk_ddp_free(ddp); bk_dist_finalize();
 * Errors: every call returns -1 (or NULL) with the error set, also for a failed MPI call
 * (MPI errors are returned, never aborted on, inside the library). A program that stops
 * while other ranks may still wait on it must call bk_dist_abort, or they wait forever. */

/* Joins the world: MPI_Init when this process was started by mpirun (or another MPI
 * launcher), or always with require_mpi (an error in a build without MPI); otherwise a
 * world of one, without touching MPI. 0 or -1. */
int bk_dist_init(int *argc, char ***argv, bool require_mpi);
/* MPI_Finalize when bk_dist_init started MPI; then a world of one again. */
int bk_dist_finalize(void);
int bk_dist_rank(void);       /* 0 .. world size - 1 (0 in a world of one) */
int bk_dist_world_size(void); /* 1 without MPI */
bool bk_dist_mpi_built(void); /* was this library built with MPI? */
int bk_dist_barrier(void);
/* Every rank's `bytes` bytes, in rank order, into all (world size * bytes). */
int bk_dist_allgather(const void *mine, void *all, size_t bytes);
/* Ends every rank of the job with this status (MPI_Abort); returns only without MPI. */
void bk_dist_abort(int status);
/* Checks that every rank built the same model (the names and shapes of its parameters and
 * buffers, and desc, e.g. a canonical model spec; NULL is fine) and copies rank 0's
 * parameters and buffers to every rank. On a mismatch every rank returns -1 with an error
 * naming rank 0's model and the first rank whose model differs. */
int bk_dist_broadcast_module(bk_module *m, const char *desc);

/* How bk_ddp_reduce sums. DETERMINISTIC: each element is ((g_0 + g_1) + ... + g_{P-1}) /
 * divisor with g_r rank r's gradient, whatever MPI's algorithms and the machines: the
 * same float operations as P micro-batches accumulated with bk_ddp_accumulate in one
 * process (MPI_Alltoall, sums in rank order, MPI_Allgather). FAST: MPI_Allreduce in place,
 * whose order of sums MPI picks: not bitwise reproducible across runs or world sizes. */
typedef enum bk_dist_mode { BK_DIST_DETERMINISTIC = 0, BK_DIST_FAST, BK_DIST_MODE_COUNT } bk_dist_mode;

/* A model's trainable parameters' gradients as one flat buffer (named_parameters order,
 * reduced in buckets of at most 4M floats per rank), for summing across ranks or
 * micro-batches. bk_ddp_new broadcasts the model (bk_dist_broadcast_module); m must
 * outlive it. After a reduce or finish every trainable parameter has a gradient (zero where
 * none had one). */
typedef struct bk_ddp bk_ddp;
bk_ddp *bk_ddp_new(bk_module *m, const char *desc, bk_dist_mode mode);
void bk_ddp_free(bk_ddp *d);
/* Every rank's current gradients summed (in rank order, for DETERMINISTIC) and divided by
 * divisor (> 0), written back into every rank's gradients: the world size for the mean of
 * per-rank mean losses; the global batch size for per-rank SUM losses. */
int bk_ddp_reduce(bk_ddp *d, float divisor);
/* In one process: adds the current gradients to an accumulator (the first call after a
 * finish copies them), after each micro-batch's backward from zeroed gradients; finish
 * writes accumulator / divisor into the gradients. P micro-batches accumulated give the
 * same bits as P ranks' bk_ddp_reduce with the same divisor. */
int bk_ddp_accumulate(bk_ddp *d);
int bk_ddp_finish(bk_ddp *d, float divisor);
/* Rank 0's buffers (BatchNorm's running statistics) to every rank. */
int bk_ddp_sync_buffers(bk_ddp *d);
/* A copy of the buffers, and putting it back: in one process, the mirror of sync_buffers
 * (keep micro-batch 0's running statistics as the ranks keep rank 0's). */
int bk_ddp_save_buffers(bk_ddp *d);
int bk_ddp_restore_buffers(bk_ddp *d);
int64_t bk_ddp_numel(const bk_ddp *d);       /* floats reduced per step; -1 for NULL */
double bk_ddp_comm_seconds(const bk_ddp *d); /* time in reduce and sync_buffers; NaN for NULL */

#endif /* BRICK_PART_DIST_H */
