/* dropout.c - inverted dropout as a product with a random mask: y = x * m, where
 * m = 1 / (1 - p) with probability 1 - p and 0 otherwise. The product (bk_mul) carries the
 * gradient, so dropout needs no backward of its own.
 */
#include "internal.h"

bk_tensor *bk_dropout(bk_tensor *x, float p, bool training, bk_rng *rng) {
    if (!bk__inputs_ok("dropout", 1, &x)) return NULL;
    if (!(p >= 0.0f && p <= 1.0f)) {
        bk_set_error("dropout: probability has to be between 0 and 1, but got %g", (double)p);
        return NULL;
    }
    if (!training || p == 0.0f) return x;
    if (!rng) rng = bk_default_rng();
    bk_tensor *mask = bk__tensor_arena(x->ndim, x->shape, false);
    if (!mask) return NULL;
    float scale = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
    for (int64_t i = 0; i < mask->numel; i++) mask->data[i] = bk_rng_uniform(rng) < p ? 0.0f : scale;
    return bk_mul(x, mask);
}
