/* group_norm.c - F.group_norm: normalisation over groups of channels, composed from
 * layer_norm, reshape and broadcasting mul / add (no backward of its own).
 *
 * N = batch, C = channels, G = groups, S = the spatial size (product of the dims after C).
 *   x (N, C, *) viewed as (N, G, C/G S); each of the N G rows normalised on its own:
 *   xhat = (x - mean) / sqrt(var + eps) (var biased); y = xhat weight[c] + bias[c].
 * InstanceNorm is G = C.
 */
#include "internal.h"

#include <inttypes.h>
#include <math.h>

bk_tensor *bk_group_norm(bk_tensor *x, int64_t num_groups, bk_tensor *weight, bk_tensor *bias, float eps) {
    bk_tensor *in[3] = {x, weight, bias};
    int n_in = bias ? 3 : weight ? 2 : 1;
    if (x && !weight && bias) {
        bk_set_error(
            "group_norm: weight is NULL but bias is not (a bias needs a weight: pass both or neither)");
        return NULL;
    }
    if (!bk__inputs_ok("group_norm", n_in, in)) return NULL;
    char s1[128], s2[128];
    if (x->ndim < 2) {
        bk_set_error("group_norm: expected an input (N, C, ...) of at least 2 dimensions, got %s",
                     bk_shape_str(x, s1, sizeof s1));
        return NULL;
    }
    int64_t N = x->shape[0], C = x->shape[1];
    if (num_groups <= 0 || C % num_groups) {
        bk_set_error("group_norm: num_groups=%" PRId64 " must be positive and divide the %" PRId64
                     " channels of input %s",
                     num_groups, C, bk_shape_str(x, s1, sizeof s1));
        return NULL;
    }
    for (int i = 1; i < n_in; i++)
        if (in[i]->ndim != 1 || in[i]->shape[0] != C) {
            bk_set_error("group_norm: input %s has %" PRId64 " channels, but %s has shape %s",
                         bk_shape_str(x, s1, sizeof s1), C, i == 1 ? "weight" : "bias",
                         bk_shape_str(in[i], s2, sizeof s2));
            return NULL;
        }
    if (!(eps >= 0.0f && eps < INFINITY)) {
        bk_set_error("group_norm: eps=%g must be finite and non-negative", (double)eps);
        return NULL;
    }
    int64_t D = N * num_groups > 0 ? x->numel / (N * num_groups) : 0;  /* values per group */
    bk_tensor *rows = bk_reshape(x, 3, (int64_t[]){N, num_groups, D}); // (N, G, C/G S)
    bk_tensor *y = bk_layer_norm(rows, 1, bk_ones(1, &D), bk_zeros(1, &D), eps);
    y = bk_reshape(y, x->ndim, x->shape); // (N, C, *)
    return bk__channel_affine(y, weight, bias);
}

bk_tensor *bk__channel_affine(bk_tensor *y, bk_tensor *weight, bk_tensor *bias) {
    if (!weight || !y) return y;
    int64_t per_channel[BK_MAX_DIMS] = {y->shape[1]}; /* (C, 1, ..., 1): broadcasts over (N, C, *) */
    for (int i = 1; i < y->ndim - 1; i++) per_channel[i] = 1;
    y = bk_mul(y, bk_reshape(weight, y->ndim - 1, per_channel));
    return bias ? bk_add(y, bk_reshape(bias, y->ndim - 1, per_channel)) : y;
}
