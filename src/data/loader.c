/* loader.c - mini-batches over a bk_dataset (torch.utils.data.DataLoader, in process).
 *
 * Invariants:
 *   - Each epoch's order depends only on the loader's generator state when the epoch
 *     starts: bk_loader_start resets `order` to 0..n-1 and then shuffles it (Fisher-Yates,
 *     unbiased bounded draws) from the loader's own bk_rng. So saving bk_loader_rng()
 *     between epochs and restoring it with bk_loader_set_rng() into a fresh loader
 *     reproduces every later epoch exactly.
 *   - Everything is allocated in bk_loader_new; a batch only allocates its x (and targets)
 *     tensor in the current arena, and its labels go to a buffer the loader owns.
 */
#include "internal.h"

#include <inttypes.h>
#include <stdlib.h>

/* Batches of at least this many floats are copied by the threads. */
#define LOADER_PARALLEL_MIN ((int64_t)1 << 16)

struct bk_loader {
    const bk_dataset *ds; /* borrowed: must outlive the loader */
    int64_t batch_size;
    bool shuffle, drop_last;
    bool started; /* has an epoch been started? */
    bk_rng rng;
    int64_t pos;     /* next position in order */
    int64_t *order;  /* (n,) sample indices of this epoch */
    int64_t *labels; /* (batch_size,) the current batch's labels */
};

/* Uniform integer in [0, bound), bound >= 1, without modulo bias (PCG's bounded rand:
 * reject the draws below 2^k mod bound). */
static uint64_t rng_below(bk_rng *rng, uint64_t bound) {
    if (bound <= UINT32_MAX) {
        uint32_t b = (uint32_t)bound, threshold = (uint32_t)(-b) % b;
        for (;;) {
            uint32_t r = bk_rng_u32(rng);
            if (r >= threshold) return r % b;
        }
    }
    uint64_t threshold = (uint64_t)(-bound) % bound;
    for (;;) {
        uint64_t r = (uint64_t)bk_rng_u32(rng) << 32 | bk_rng_u32(rng);
        if (r >= threshold) return r % bound;
    }
}

bk_loader *bk_loader_new(const bk_dataset *ds, int64_t batch_size, bool shuffle, uint64_t seed,
                         bool drop_last) {
    if (!bk__dataset_ok(ds, "loader_new")) return NULL;
    if (batch_size < 1) {
        bk_set_error("loader_new: batch_size %" PRId64 " must be >= 1", batch_size);
        return NULL;
    }
    if ((uint64_t)ds->n > SIZE_MAX / sizeof(int64_t)) {
        bk_set_error("loader_new: %" PRId64 " samples are too many", ds->n);
        return NULL;
    }
    /* A batch never holds more than n samples. */
    int64_t cap = batch_size < ds->n ? batch_size : ds->n;
    bk_loader *l = bk__calloc(1, sizeof *l);
    if (!l) goto oom;
    l->ds = ds;
    l->batch_size = batch_size;
    l->shuffle = shuffle;
    l->drop_last = drop_last;
    bk_rng_seed(&l->rng, seed);
    l->order = bk__malloc(ds->n > 0 ? (size_t)ds->n * sizeof *l->order : 1);
    l->labels = bk__malloc(cap > 0 ? (size_t)cap * sizeof *l->labels : 1);
    if (!l->order || !l->labels) goto oom;
    l->pos = ds->n; /* nothing left until an epoch starts */
    return l;
oom:
    bk_loader_free(l);
    bk_set_error("loader_new: out of memory for %" PRId64 " samples", ds->n);
    return NULL;
}

void bk_loader_free(bk_loader *l) {
    if (!l) return;
    bk__free(l->order);
    bk__free(l->labels);
    bk__free(l);
}

void bk_loader_start(bk_loader *l) {
    if (!l) {
        bk_set_error("loader_start: loader is NULL");
        return;
    }
    int64_t n = l->ds->n;
    for (int64_t i = 0; i < n; i++) l->order[i] = i;
    if (l->shuffle) {
        for (int64_t i = n - 1; i > 0; i--) {
            int64_t j = (int64_t)rng_below(&l->rng, (uint64_t)i + 1);
            int64_t t = l->order[i];
            l->order[i] = l->order[j];
            l->order[j] = t;
        }
    }
    l->pos = 0;
    l->started = true;
}

int64_t bk_loader_next(bk_loader *l, bk_tensor **x, const int64_t **y, bk_tensor **targets) {
    if (x) *x = NULL;
    if (y) *y = NULL;
    if (targets) *targets = NULL;
    if (!l) {
        bk_set_error("loader_next: loader is NULL");
        return -1;
    }
    if (!l->started) bk_loader_start(l);
    const bk_dataset *ds = l->ds;
    int64_t left = ds->n - l->pos;
    int64_t B = left < l->batch_size ? left : l->batch_size;
    if (B == 0 || (l->drop_last && B < l->batch_size)) {
        l->pos = ds->n;
        return 0;
    }
    const int64_t *idx = l->order + l->pos;

    if (x) {
        int64_t shape[BK_MAX_DIMS];
        shape[0] = B;
        for (int i = 0; i < ds->ndim; i++) shape[i + 1] = ds->shape[i];
        bk_tensor *xb = bk_empty(ds->ndim + 1, shape); /* (B, shape...) */
        if (!xb) return -1;
        size_t row = (size_t)ds->sample_numel * sizeof(float);
        /* A gather of rows from all over the data set (a shuffled Fashion-MNIST batch of
         * 256: 800 KB from 188 MB), bound by memory latency: the threads share it. */
#pragma omp parallel for schedule(static) if ((int64_t)B * ds->sample_numel >= LOADER_PARALLEL_MIN)
        for (int64_t b = 0; b < B; b++)
            memcpy(xb->data + b * ds->sample_numel, ds->x + idx[b] * ds->sample_numel, row);
        *x = xb;
    }
    if (targets && ds->targets) {
        bk_tensor *tb = bk_empty(BK_SHAPE(B, ds->target_dim)); /* (B, target_dim) */
        if (!tb) {
            if (x) *x = NULL;
            return -1;
        }
        size_t row = (size_t)ds->target_dim * sizeof(float);
        for (int64_t b = 0; b < B; b++)
            memcpy(tb->data + b * ds->target_dim, ds->targets + idx[b] * ds->target_dim, row);
        *targets = tb;
    }
    if (y && ds->y) {
        for (int64_t b = 0; b < B; b++) l->labels[b] = ds->y[idx[b]];
        *y = l->labels;
    }
    l->pos += B;
    return B;
}

int64_t bk_loader_num_batches(const bk_loader *l) {
    if (!l) {
        bk_set_error("loader_num_batches: loader is NULL");
        return -1;
    }
    int64_t n = l->ds->n, B = l->batch_size;
    return l->drop_last ? n / B : n / B + (n % B != 0);
}

bk_rng bk_loader_rng(const bk_loader *l) {
    if (!l) {
        bk_set_error("loader_rng: loader is NULL");
        return (bk_rng){0, 0};
    }
    return l->rng;
}

int bk_loader_set_rng(bk_loader *l, bk_rng rng) {
    if (!l) {
        bk_set_error("loader_set_rng: loader is NULL");
        return -1;
    }
    /* (rng_below would loop forever on a generator stuck at 0.) */
    if (bk_rng_set_state(&l->rng, rng.state, rng.inc) != 0) {
        bk__error_prefix("loader_set_rng");
        return -1;
    }
    return 0;
}
