/* loader.c - mini-batches over a bk_dataset (torch.utils.data.DataLoader, in process).
 *
 * Invariants:
 *   - Each epoch's order depends only on the loader's generator state when the epoch
 *     starts: bk_loader_start resets `order` to 0..n-1 and then shuffles it (Fisher-Yates,
 *     unbiased bounded draws) from the loader's own bk_rng. So saving bk_loader_rng()
 *     between epochs and restoring it with bk_loader_set_rng() into a fresh loader
 *     reproduces every later epoch exactly.
 *   - Everything is allocated in bk_loader_new (and bk_loader_set_augment); a batch only
 *     allocates its x (and targets) tensor in the current arena, and its labels go to a
 *     buffer the loader owns.
 *   - Augmentation (bk_loader_set_augment) draws, for each sample of a batch in order, a
 *     crop offset (top, then left, each uniform in 0..2 * padding) and then a flip bit,
 *     from the same generator, after the shuffle; the draws do not depend on whether x is
 *     asked for, so skipping batches (a resume) consumes the same ones.
 */
#include "internal.h"

#include <inttypes.h>
#include <math.h>
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
    /* augmentation: off when pad == 0 and !hflip */
    int64_t pad;
    bool hflip;
    float *fill;    /* (C,) the padding's value per channel */
    int64_t *draws; /* (batch_size, 3): top, left, flip of each sample of the batch */
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
    bk__free(l->fill);
    bk__free(l->draws);
    bk__free(l);
}

int bk_loader_set_augment(bk_loader *l, int64_t crop_padding, bool hflip, const float *fill) {
    const char *who = "loader_set_augment";
    if (!l) {
        bk_set_error("%s: loader is NULL", who);
        return -1;
    }
    const bk_dataset *ds = l->ds;
    if (ds->ndim != 3) {
        bk_set_error("%s: crops and flips take samples (C, H, W), not samples of rank %d", who, ds->ndim);
        return -1;
    }
    if (crop_padding < 0 || crop_padding > 65536) {
        bk_set_error("%s: crop_padding %" PRId64 " is outside 0..65536", who, crop_padding);
        return -1;
    }
    int64_t C = ds->shape[0];
    for (int64_t c = 0; fill && c < C; c++)
        if (!isfinite(fill[c])) {
            bk_set_error("%s: fill[%" PRId64 "] is %g, not a finite number", who, c, (double)fill[c]);
            return -1;
        }
    int64_t cap = l->batch_size < ds->n ? l->batch_size : ds->n;
    float *f = bk__calloc((size_t)C, sizeof *f);
    int64_t *draws = bk__malloc((size_t)(cap > 0 ? cap : 1) * 3 * sizeof *draws);
    if (!f || !draws) {
        bk__free(f);
        bk__free(draws);
        bk_set_error("%s: out of memory", who);
        return -1;
    }
    if (fill) memcpy(f, fill, (size_t)C * sizeof *f);
    bk__free(l->fill);
    bk__free(l->draws);
    l->fill = f;
    l->draws = draws;
    l->pad = crop_padding;
    l->hflip = hflip;
    return 0;
}

/* Sample `src` (C, H, W) cropped at (top, left) of its padded self and maybe flipped,
 * into dst (C, H, W): dst[c, y, x] = padded[c, top + y, left + x'] with x' = W - 1 - x when
 * flipped, where padded[c, i, j] = src[c, i - pad, j - pad] inside src, else fill[c]. */
static void augment_sample(const bk_loader *l, const float *src, float *dst, const int64_t *draw) {
    const bk_dataset *ds = l->ds;
    int64_t C = ds->shape[0], H = ds->shape[1], W = ds->shape[2];
    for (int64_t c = 0; c < C; c++)
        for (int64_t y = 0; y < H; y++) {
            int64_t sy = draw[0] + y - l->pad;
            float *out = dst + (c * H + y) * W;
            for (int64_t x = 0; x < W; x++) {
                int64_t sx = draw[1] + (draw[2] ? W - 1 - x : x) - l->pad;
                out[x] = sy >= 0 && sy < H && sx >= 0 && sx < W ? src[(c * H + sy) * W + sx] : l->fill[c];
            }
        }
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
    bool augment = l->pad > 0 || l->hflip;
    for (int64_t b = 0; augment && b < B; b++) {
        int64_t *d = l->draws + 3 * b;
        d[0] = l->pad ? (int64_t)rng_below(&l->rng, (uint64_t)(2 * l->pad + 1)) : l->pad;
        d[1] = l->pad ? (int64_t)rng_below(&l->rng, (uint64_t)(2 * l->pad + 1)) : l->pad;
        d[2] = l->hflip ? (int64_t)rng_below(&l->rng, 2) : 0;
    }

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
        for (int64_t b = 0; b < B; b++) {
            if (augment)
                augment_sample(l, ds->x + idx[b] * ds->sample_numel, xb->data + b * ds->sample_numel,
                               l->draws + 3 * b);
            else memcpy(xb->data + b * ds->sample_numel, ds->x + idx[b] * ds->sample_numel, row);
        }
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
