/* dist.c - data-parallel training on Open MPI, and gradient accumulation in one process.
 *
 * A world of P processes (ranks) each holds a replica of one model. Every optimizer step,
 * each rank computes the gradient of its slice of the global batch; bk_ddp_reduce sums the
 * P gradients and every replica applies the same update. Built with MPI (BK_HAVE_MPI, from
 * `make MPI=1`) the world is MPI_COMM_WORLD once bk_dist_init has run under mpirun;
 * otherwise every call works on a world of one process.
 *
 * The deterministic reduction (BK_DIST_DETERMINISTIC, the default) never lets MPI choose
 * the order of a sum. A model's gradients are packed into one flat buffer (the order of
 * bk_module_named(BK_PARAMS), trainable ones), cut into buckets of at most
 * P * BUCKET_CHUNK floats, and per bucket:
 *   1. MPI_Alltoall: rank j receives chunk j of every rank's bucket (P chunks of c floats);
 *   2. rank j sums them in rank order, acc = g_0; acc += g_1; ...; acc += g_{P-1}, and
 *      divides by the divisor (sum_in_order below);
 *   3. MPI_Allgather: every rank receives every summed chunk.
 * So each element is ((g_0 + g_1) + ...) / divisor, the same float operations whatever
 * MPI's algorithms, the network or the number of machines. Gradient accumulation in one
 * process (bk_ddp_accumulate, bk_ddp_finish) goes through the very same sum_in_order with
 * micro-batch k in the place of rank k, which is why `brick train --accumulate P` and
 * `mpirun -np P brick train` write byte-identical models. BK_DIST_FAST uses MPI_Allreduce
 * in place instead (one collective, fewer copies; its sums' order is MPI's choice, so
 * results may differ in the last bits between runs, world sizes and machines).
 *
 * Errors: MPI_COMM_WORLD's error handler is MPI_ERRORS_RETURN, so a failed MPI call
 * returns -1 here with the MPI message in the error; nothing in the library aborts.
 * A program that gives up while other ranks may wait on it calls bk_dist_abort.
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime */

#include "internal.h"

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <time.h>

#ifdef BK_HAVE_MPI
#include <mpi.h>
#endif

/* At most this many floats per rank and collective (16 MiB): keeps counts inside MPI's int
 * and the receive buffer bounded for a large model. */
#define BUCKET_CHUNK ((int64_t)1 << 22)

static int world_rank = 0, world_size = 1;
static bool mpi_on = false; /* this process called MPI_Init (and not yet MPI_Finalize) */

bool bk_dist_mpi_built(void) {
#ifdef BK_HAVE_MPI
    return true;
#else
    return false;
#endif
}

int bk_dist_rank(void) { return world_rank; }
int bk_dist_world_size(void) { return world_size; }

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- the transport: MPI, or a world of one ------------------------------------------- */

#ifdef BK_HAVE_MPI
/* -1 with "dist: <what>: <MPI's message>" unless rc is MPI_SUCCESS. */
static int mpi_check(int rc, const char *what) {
    if (rc == MPI_SUCCESS) return 0;
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(rc, msg, &len) != MPI_SUCCESS) snprintf(msg, sizeof msg, "error %d", rc);
    bk_set_error("dist: %s failed on rank %d of %d: %s", what, world_rank, world_size, msg);
    return -1;
}
#endif

/* Was this process started by an MPI launcher? (Open MPI, MPICH/Hydra, PMIx, Slurm's PMI) */
static bool launched_by_mpi(void) {
    static const char *const vars[] = {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_SIZE", "PMI_RANK"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
        if (getenv(vars[i])) return true;
    return false;
}

int bk_dist_init(int *argc, char ***argv, bool require_mpi) {
    if (mpi_on) return 0;
#ifdef BK_HAVE_MPI
    if (!require_mpi && !launched_by_mpi()) return 0; /* a world of one, MPI untouched */
    int done = 0;
    MPI_Finalized(&done);
    if (done) {
        bk_set_error("dist_init: MPI was already finalized in this process");
        return -1;
    }
    int inited = 0;
    MPI_Initialized(&inited);
    if (!inited && MPI_Init(argc, argv) != MPI_SUCCESS) {
        bk_set_error("dist_init: MPI_Init failed");
        return -1;
    }
    mpi_on = true;
    if (mpi_check(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN), "set_errhandler") ||
        mpi_check(MPI_Comm_rank(MPI_COMM_WORLD, &world_rank), "MPI_Comm_rank") ||
        mpi_check(MPI_Comm_size(MPI_COMM_WORLD, &world_size), "MPI_Comm_size"))
        return -1;
    return 0;
#else
    (void)argc;
    (void)argv;
    if (require_mpi) {
        bk_set_error(
            "dist_init: this brick was built without MPI (build it with make MPI=1, "
            "which needs Open MPI's mpicc)");
        return -1;
    }
    (void)launched_by_mpi;
    return 0;
#endif
}

int bk_dist_finalize(void) {
    if (!mpi_on) return 0;
    mpi_on = false;
    world_rank = 0;
    world_size = 1;
#ifdef BK_HAVE_MPI
    if (MPI_Finalize() != MPI_SUCCESS) {
        bk_set_error("dist_finalize: MPI_Finalize failed");
        return -1;
    }
#endif
    return 0;
}

void bk_dist_abort(int status) {
#ifdef BK_HAVE_MPI
    if (mpi_on) MPI_Abort(MPI_COMM_WORLD, status);
#endif
    (void)status;
}

int bk_dist_barrier(void) {
#ifdef BK_HAVE_MPI
    if (mpi_on) return mpi_check(MPI_Barrier(MPI_COMM_WORLD), "MPI_Barrier");
#endif
    return 0;
}

int bk_dist_allgather(const void *mine, void *all, size_t bytes) {
    if ((!mine || !all) && bytes) {
        bk_set_error("dist_allgather: buffer is NULL");
        return -1;
    }
    if (bytes > (size_t)INT32_MAX) {
        bk_set_error("dist_allgather: %zu bytes are too many for one call", bytes);
        return -1;
    }
#ifdef BK_HAVE_MPI
    if (mpi_on)
        return mpi_check(MPI_Allgather(mine, (int)bytes, MPI_BYTE, all, (int)bytes, MPI_BYTE, MPI_COMM_WORLD),
                         "MPI_Allgather");
#endif
    if (bytes) memmove(all, mine, bytes);
    return 0;
}

/* n floats from rank 0 to every rank, in pieces that fit an int count. */
static int broadcast_floats(float *p, int64_t n) {
#ifdef BK_HAVE_MPI
    for (int64_t off = 0; mpi_on && off < n; off += BUCKET_CHUNK) {
        int64_t len = n - off < BUCKET_CHUNK ? n - off : BUCKET_CHUNK;
        if (mpi_check(MPI_Bcast(p + off, (int)len, MPI_FLOAT, 0, MPI_COMM_WORLD), "MPI_Bcast")) return -1;
    }
#else
    (void)p;
    (void)n;
#endif
    return 0;
}

/* ---- the architecture check and the broadcast of a module ---------------------------- */

/* What every rank tells the others about the model it built. */
typedef struct model_sig {
    uint64_t hash;  /* FNV-1a of every state name and shape, params and buffers */
    int64_t numel;  /* parameters and buffers, in floats */
    int32_t count;  /* named tensors */
    char desc[196]; /* the caller's description (e.g. the canonical spec), cut */
} model_sig;

static uint64_t fnv1a(uint64_t h, const void *p, size_t n) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3u;
    return h;
}

/* The parameters then the buffers of m (each shared tensor once), for packing. */
static bk_param_list *module_tensors(const bk_module *m, bk_param_list **buffers) {
    bk_param_list *p = bk_module_named(m, BK_PARAMS);
    *buffers = p ? bk_module_named(m, BK_BUFFERS) : NULL;
    if (!*buffers) {
        bk_param_list_free(p);
        return NULL;
    }
    return p;
}

static void sig_add(model_sig *s, const bk_param_list *l) {
    for (int i = 0; i < l->n; i++) {
        const bk_tensor *t = l->tensors[i];
        s->hash = fnv1a(s->hash, l->names[i], strlen(l->names[i]) + 1);
        s->hash = fnv1a(s->hash, &t->ndim, sizeof t->ndim);
        s->hash = fnv1a(s->hash, t->shape, (size_t)t->ndim * sizeof t->shape[0]);
        s->numel += t->numel;
        s->count++;
    }
}

/* Copies the tensors of l to (to_flat) or from a flat buffer at *off. */
static void pack(const bk_param_list *l, float *flat, int64_t *off, bool to_flat) {
    for (int i = 0; i < l->n; i++) {
        bk_tensor *t = l->tensors[i];
        size_t bytes = (size_t)t->numel * sizeof(float);
        if (to_flat) memcpy(flat + *off, t->data, bytes);
        else memcpy(t->data, flat + *off, bytes);
        *off += t->numel;
    }
}

/* Same names, shapes and description on every rank, else -1 with an error naming rank 0's
 * model and the first rank whose model differs. Every rank reaches the same verdict. */
static int check_same_model(const bk_param_list *p, const bk_param_list *b, const char *desc) {
    model_sig mine;
    memset(&mine, 0, sizeof mine);
    mine.hash = 0xcbf29ce484222325u;
    sig_add(&mine, p);
    sig_add(&mine, b);
    snprintf(mine.desc, sizeof mine.desc, "%s", desc ? desc : "");
    mine.hash = fnv1a(mine.hash, mine.desc, strlen(mine.desc) + 1);
    model_sig *all = bk__calloc((size_t)world_size, sizeof *all);
    if (!all) {
        bk_set_error("dist_broadcast_module: out of memory");
        return -1;
    }
    int rc = bk_dist_allgather(&mine, all, sizeof mine);
    for (int r = 1; !rc && r < world_size; r++) {
        if (all[r].hash == all[0].hash && all[r].numel == all[0].numel && all[r].count == all[0].count)
            continue;
        bk_set_error("dist: the ranks built different models: rank 0 built %s (%d tensors, %" PRId64
                     " floats, hash %016llx), rank %d built %s (%d tensors, %" PRId64
                     " floats, hash %016llx)",
                     all[0].desc[0] ? all[0].desc : "its model", (int)all[0].count, all[0].numel,
                     (unsigned long long)all[0].hash, r, all[r].desc[0] ? all[r].desc : "its model",
                     (int)all[r].count, all[r].numel, (unsigned long long)all[r].hash);
        rc = -1;
    }
    bk__free(all);
    return rc;
}

int bk_dist_broadcast_module(bk_module *m, const char *desc) {
    if (!bk__module_ok(m, "dist_broadcast_module")) return -1;
    bk_param_list *b = NULL, *p = module_tensors(m, &b);
    if (!p) return -1;
    int rc = check_same_model(p, b, desc);
    int64_t n = 0;
    for (int i = 0; i < p->n; i++) n += p->tensors[i]->numel;
    for (int i = 0; i < b->n; i++) n += b->tensors[i]->numel;
    float *flat = rc || world_size == 1 ? NULL : bk__malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
    if (!rc && world_size > 1 && !flat) {
        bk_set_error("dist_broadcast_module: out of memory for %" PRId64 " floats", n);
        rc = -1;
    }
    if (flat) {
        int64_t off = 0;
        pack(p, flat, &off, true);
        pack(b, flat, &off, true);
        rc = broadcast_floats(flat, n);
        off = 0;
        if (!rc) {
            pack(p, flat, &off, false);
            pack(b, flat, &off, false);
        }
    }
    bk__free(flat);
    bk_param_list_free(p);
    bk_param_list_free(b);
    return rc;
}

/* ---- gradients ----------------------------------------------------------------------- */

struct bk_ddp {
    bk_module *m; /* borrowed */
    bk_dist_mode mode;
    int n_params;
    bk_tensor **params; /* trainable parameters, named_parameters order (borrowed) */
    int64_t numel;      /* their floats */
    float *flat;        /* (numel + world) gradients, zero-padded for the last bucket */
    float *recv;        /* (world * chunk) the chunks received in a bucket */
    float *acc;         /* (numel) accumulation of micro-batches, allocated on first use */
    int acc_count;      /* micro-batches in acc */
    bk_param_list *buffers;
    float *saved; /* (buffers' numel) bk_ddp_save_buffers' copy */
    int64_t buffer_numel;
    double comm_seconds;
};

/* acc (n) = acc + src, element by element; then, last, acc /= divisor. The one sum both
 * the distributed reduction and the accumulation use (see the file's header). */
static void add_in_order(float *acc, const float *src, int64_t n) {
    for (int64_t i = 0; i < n; i++) acc[i] += src[i];
}
static void divide(float *acc, int64_t n, float divisor) {
    for (int64_t i = 0; i < n; i++) acc[i] /= divisor;
}

/* Gradients -> flat (a parameter without a gradient contributes zeros). */
static void grads_to(const bk_ddp *d, float *flat) {
    int64_t off = 0;
    for (int i = 0; i < d->n_params; i++) {
        bk_tensor *t = d->params[i];
        if (t->grad) memcpy(flat + off, t->grad->data, (size_t)t->numel * sizeof(float));
        else memset(flat + off, 0, (size_t)t->numel * sizeof(float));
        off += t->numel;
    }
}

/* flat -> gradients; every trainable parameter gets one. */
static int grads_from(bk_ddp *d, const float *flat) {
    int64_t off = 0;
    for (int i = 0; i < d->n_params; i++) {
        bk_tensor *t = d->params[i];
        bk_tensor *g = bk__grad_for(t);
        if (!g) {
            bk__error_prefix("ddp");
            return -1;
        }
        memcpy(g->data, flat + off, (size_t)t->numel * sizeof(float));
        off += t->numel;
    }
    return 0;
}

void bk_ddp_free(bk_ddp *d) {
    if (!d) return;
    bk__free(d->params);
    bk__free(d->flat);
    bk__free(d->recv);
    bk__free(d->acc);
    bk__free(d->saved);
    bk_param_list_free(d->buffers);
    bk__free(d);
}

bk_ddp *bk_ddp_new(bk_module *m, const char *desc, bk_dist_mode mode) {
    if (!bk__module_ok(m, "ddp_new")) return NULL;
    if ((int)mode < 0 || mode >= BK_DIST_MODE_COUNT) {
        bk_set_error("ddp_new: unknown mode %d", (int)mode);
        return NULL;
    }
    if (bk_dist_broadcast_module(m, desc) != 0) return NULL;
    bk_param_list *p = bk_module_named(m, BK_PARAMS);
    if (!p) return NULL;
    bk_ddp *d = bk__calloc(1, sizeof *d);
    if (!d) goto oom;
    d->m = m;
    d->mode = mode;
    d->params = bk__calloc((size_t)(p->n > 0 ? p->n : 1), sizeof *d->params);
    if (!d->params) goto oom;
    for (int i = 0; i < p->n; i++)
        if (p->trainable[i]) {
            d->params[d->n_params++] = p->tensors[i];
            d->numel += p->tensors[i]->numel;
        }
    d->flat = bk__calloc((size_t)(d->numel + world_size), sizeof(float));
    int64_t chunk = (d->numel + world_size - 1) / world_size;
    if (chunk > BUCKET_CHUNK) chunk = BUCKET_CHUNK;
    d->recv = world_size > 1 ? bk__malloc((size_t)(world_size * (chunk > 0 ? chunk : 1)) * sizeof(float))
                             : NULL;
    d->buffers = bk_module_named(m, BK_BUFFERS);
    if (!d->flat || (world_size > 1 && !d->recv) || !d->buffers) goto oom;
    for (int i = 0; i < d->buffers->n; i++) d->buffer_numel += d->buffers->tensors[i]->numel;
    bk_param_list_free(p);
    return d;
oom:
    bk_set_error("ddp_new: out of memory for the gradients of %" PRId64 " floats", d ? d->numel : 0);
    bk_param_list_free(p);
    bk_ddp_free(d);
    return NULL;
}

int64_t bk_ddp_numel(const bk_ddp *d) {
    if (!d) bk_set_error("ddp_numel: ddp is NULL");
    return d ? d->numel : -1;
}

double bk_ddp_comm_seconds(const bk_ddp *d) {
    if (!d) bk_set_error("ddp_comm_seconds: ddp is NULL");
    return d ? d->comm_seconds : NAN;
}

#ifdef BK_HAVE_MPI
/* Buckets of d->flat: alltoall, sum in rank order, allgather (the file's header). */
static int reduce_deterministic(bk_ddp *d, float divisor) {
    const int P = world_size;
    for (int64_t start = 0; start < d->numel; start += (int64_t)P * BUCKET_CHUNK) {
        int64_t len = d->numel - start;
        if (len > (int64_t)P * BUCKET_CHUNK) len = (int64_t)P * BUCKET_CHUNK;
        int c = (int)((len + P - 1) / P); /* the last bucket reads into the zero padding */
        float *bucket = d->flat + start;
        if (mpi_check(MPI_Alltoall(bucket, c, MPI_FLOAT, d->recv, c, MPI_FLOAT, MPI_COMM_WORLD),
                      "MPI_Alltoall"))
            return -1;
        for (int r = 1; r < P; r++) add_in_order(d->recv, d->recv + (int64_t)r * c, c);
        divide(d->recv, c, divisor);
        if (mpi_check(MPI_Allgather(d->recv, c, MPI_FLOAT, bucket, c, MPI_FLOAT, MPI_COMM_WORLD),
                      "MPI_Allgather"))
            return -1;
    }
    return 0;
}

static int reduce_fast(bk_ddp *d, float divisor) {
    for (int64_t start = 0; start < d->numel; start += BUCKET_CHUNK) {
        int64_t len = d->numel - start < BUCKET_CHUNK ? d->numel - start : BUCKET_CHUNK;
        if (mpi_check(MPI_Allreduce(MPI_IN_PLACE, d->flat + start, (int)len, MPI_FLOAT, MPI_SUM,
                                    MPI_COMM_WORLD),
                      "MPI_Allreduce"))
            return -1;
    }
    divide(d->flat, d->numel, divisor);
    return 0;
}
#endif

int bk_ddp_reduce(bk_ddp *d, float divisor) {
    if (!d) {
        bk_set_error("ddp_reduce: ddp is NULL");
        return -1;
    }
    if (!(divisor > 0)) {
        bk_set_error("ddp_reduce: divisor %g must be > 0", (double)divisor);
        return -1;
    }
    grads_to(d, d->flat);
    int rc = 0;
    double t0 = now_seconds();
#ifdef BK_HAVE_MPI
    if (mpi_on && world_size > 1)
        rc = d->mode == BK_DIST_FAST ? reduce_fast(d, divisor) : reduce_deterministic(d, divisor);
    else
#endif
        divide(d->flat, d->numel, divisor);
    d->comm_seconds += now_seconds() - t0;
    return rc ? -1 : grads_from(d, d->flat);
}

int bk_ddp_accumulate(bk_ddp *d) {
    if (!d) {
        bk_set_error("ddp_accumulate: ddp is NULL");
        return -1;
    }
    if (!d->acc && !(d->acc = bk__malloc((size_t)(d->numel > 0 ? d->numel : 1) * sizeof(float)))) {
        bk_set_error("ddp_accumulate: out of memory for %" PRId64 " floats", d->numel);
        return -1;
    }
    if (d->acc_count == 0) {
        grads_to(d, d->acc); /* micro-batch 0 is copied, as rank 0's chunk is */
    } else {
        grads_to(d, d->flat);
        add_in_order(d->acc, d->flat, d->numel);
    }
    d->acc_count++;
    return 0;
}

int bk_ddp_finish(bk_ddp *d, float divisor) {
    if (!d) {
        bk_set_error("ddp_finish: ddp is NULL");
        return -1;
    }
    if (d->acc_count == 0 || !(divisor > 0)) {
        bk_set_error("ddp_finish: %s", d->acc_count ? "the divisor must be > 0" : "nothing was accumulated");
        return -1;
    }
    divide(d->acc, d->numel, divisor);
    d->acc_count = 0;
    return grads_from(d, d->acc);
}

int bk_ddp_save_buffers(bk_ddp *d) {
    if (!d) {
        bk_set_error("ddp_save_buffers: ddp is NULL");
        return -1;
    }
    if (!d->saved && !(d->saved = bk__malloc((size_t)(d->buffer_numel + 1) * sizeof(float)))) {
        bk_set_error("ddp_save_buffers: out of memory");
        return -1;
    }
    int64_t off = 0;
    pack(d->buffers, d->saved, &off, true);
    return 0;
}

int bk_ddp_restore_buffers(bk_ddp *d) {
    if (!d || !d->saved) {
        bk_set_error("ddp_restore_buffers: %s", d ? "no buffers were saved" : "ddp is NULL");
        return -1;
    }
    int64_t off = 0;
    pack(d->buffers, d->saved, &off, false);
    return 0;
}

int bk_ddp_sync_buffers(bk_ddp *d) {
    if (!d) {
        bk_set_error("ddp_sync_buffers: ddp is NULL");
        return -1;
    }
    if (world_size == 1 || d->buffer_numel == 0) return 0;
    if (bk_ddp_save_buffers(d) != 0) return -1;
    double t0 = now_seconds();
    int rc = broadcast_floats(d->saved, d->buffer_numel);
    d->comm_seconds += now_seconds() - t0;
    return rc ? -1 : bk_ddp_restore_buffers(d);
}
