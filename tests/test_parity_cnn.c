/* test_parity_cnn.c - brick's CNN layers, blocks and models against PyTorch 1.13.
 *
 * tests/parity/gen_cnn.py builds each case with torch.nn (Conv2d in several settings,
 * Conv1d, ConvTranspose1d/2d, Upsample, MaxPool2d, AvgPool2d, AdaptiveAvgPool2d,
 * BatchNorm1d/2d (also with their options), GroupNorm, InstanceNorm2d, LayerNorm, GELU, Softmax,
 * LogSoftmax, Dropout, D2L's Residual and Inception, and the zoo's lenet, resnet:width=8
 * and googlenet), randomises the normalisation parameters and running statistics, and
 * writes <case>.safetensors (the state dict before any pass) and <case>.ref.safetensors
 * (warm-up inputs, input, output, upstream, input and parameter gradients, buffers after
 * the passes). This file builds the same modules with brick, loads the state dict
 * strictly, sets the mode, runs the warm-up training passes and one forward and backward,
 * and compares. Case names end in _train / _eval where the mode matters. See
 * tests/parity/README.md.
 *
 * Environment:
 *   BRICK_PARITY_DIR     where the references are (default build/parity)
 *   BRICK_REQUIRE_TORCH  1: a missing directory or file is a failure, not a skip
 *   BRICK_TEST_VERBOSE   print max abs / rel error of every compared tensor and case
 */
#include "parity.h"

/* Tolerances, as torch.allclose: |brick - torch| <= ATOL + E_K E + RTOL |torch|, with E
 * torch's own float32 error on that tensor (metadata f32err.<name>: its distance from a
 * float64 run of the same case), the rule of tests/test_parity.c with E_K = 3 in place of 2:
 * RTOL: both sides are float32 and sum in different orders (im2col + gemm here, oneDNN /
 * native kernels in torch), so they agree to a few ulps per layer.
 * ATOL: gradients are float32 sums of up to N*H*W*C*KH*KW terms whose exact value can be
 * near zero; their rounding scales with the terms, not the result.
 * E_K E: brick may be as far from the exact value as torch is, on the other side. E is
 * measured per tensor and per draw, so the widening is as large as torch's own float32
 * error, never a blanket factor; it covers batch norm's backward (two sums over N*H*W
 * terms for every dx) and the deep models, where E reaches 1e-5 on gradients of size ~1.
 * E_K is 3, not 2, because brick's own error there is up to twice torch's: dumping
 * brick's gradients for the train-mode resnet:width=8 and comparing them with the float64
 * run gave |brick - exact| = 1.3 .. 2.0 E on the worst ten tensors (grad.4.1.conv1.weight
 * 6.6e-6 vs E 3.4e-6, grad.7.weight 6.0e-6 vs 3.3e-6), errors that pile up through ten
 * batch norms' forward and backward, so |brick - torch| reaches ~3E. E is capped
 * (F32ERR_CAP) so that an ill-conditioned draw cannot loosen the test much. */
#define RTOL 1e-5
#define ATOL 1e-6
#define E_K 3.0
#define F32ERR_CAP 1e-4
/* Plus NOISE_K * S for the gradients of the weights and biases of every convolution (1d,
 * 2d, transposed), Linear, BatchNorm and LayerNorm, where S = 2^-24 max |terms| (metadata
 * f32noise.grad.<param>, recorded by the generator) is the largest sum of |terms| that one element of that
 * gradient adds up over the batch and positions (sum |dy| for a bias, sum |dy| |x| for a
 * conv / linear weight, sum |dy| |xhat| for a norm weight): the size of float32 rounding
 * in such a sum. It matters where the sum cancels, around train-mode batch norms. The
 * norm subtracts the batch mean, so the bias gradient of the conv before it is exactly 0
 * and its weight gradient nearly cancels, and the parameters further upstream inherit the
 * noise of the norm's backward; both libraries then return rounding noise of size ~S
 * (observed: up to 8e-6 on conv-bias gradients of exactly 0, 1.5e-5 on a weight-gradient
 * element of 0.13 in a tensor reaching 56): two independent samples, of which E (torch's
 * one sample) says little. Each library's noise comes from a few roundings shared by all
 * terms of the sum (the norm's channel means of dL/dxhat and of x, each rounded to float32
 * once and subtracted from every term, and the sum itself), each about u sum |terms|;
 * NOISE_K = 4 bounds the difference of the two. Away from batch norm S is below ATOL and
 * changes nothing. */
#define NOISE_K 4.0

/* ======================================================================================
 * The modules of each case (CASES in gen_cnn.py; keep the two tables in step)
 * ====================================================================================== */

static bk_module *conv_ex(int64_t in, int64_t out, int64_t kh, int64_t kw, int64_t sh, int64_t sw, int64_t ph,
                          int64_t pw, int64_t dh, int64_t dw, int64_t groups, bool bias) {
    bk_conv2d_opts o = {{sh, sw}, {ph, pw}, {dh, dw}, groups};
    return bk_nn_conv2d_ex(in, out, (const int64_t[2]){kh, kw}, o, bias);
}

// nn.Conv2d(3, 6, 3, padding=1) etc.
static bk_module *b_conv_pad(void) { return bk_nn_conv2d(3, 6, 3, 1, 1); }
static bk_module *b_conv_stride2(void) { return bk_nn_conv2d(4, 6, 3, 2, 1); }
static bk_module *b_conv_groups2(void) { return conv_ex(4, 6, 3, 3, 1, 1, 1, 1, 1, 1, 2, true); }
static bk_module *b_conv_dilation2(void) { return conv_ex(3, 5, 3, 3, 1, 1, 2, 2, 2, 2, 1, true); }
static bk_module *b_conv_nobias(void) { return conv_ex(3, 4, 2, 3, 2, 1, 1, 0, 1, 1, 1, false); }
static bk_module *b_conv_mixed(void) { return conv_ex(6, 9, 3, 2, 1, 2, 2, 1, 1, 3, 3, true); }
static bk_module *b_conv_depthwise(void) { return conv_ex(4, 8, 3, 3, 2, 2, 0, 0, 1, 1, 4, false); }
static bk_module *b_conv_1x1(void) { return bk_nn_conv2d(5, 3, 1, 1, 0); }
static bk_module *b_conv1d(void) { return bk_nn_conv1d(3, 5, 3, (bk_conv1d_opts){1, 1, 1, 1}, true); }
static bk_module *b_conv1d_mixed(void) { return bk_nn_conv1d(4, 6, 3, (bk_conv1d_opts){2, 2, 2, 2}, false); }
static bk_module *convt2d(int64_t in, int64_t out, int64_t kh, int64_t kw, bk_conv_transpose2d_opts o,
                          bool bias) {
    return bk_nn_conv_transpose2d(in, out, (const int64_t[2]){kh, kw}, o, bias);
}
static bk_module *b_convt2d(void) {
    return convt2d(3, 4, 3, 3, (bk_conv_transpose2d_opts){{2, 2}, {1, 1}, {1, 1}, {1, 1}, 1}, true);
}
static bk_module *b_convt2d_k4s2(void) {
    return convt2d(8, 4, 4, 4, (bk_conv_transpose2d_opts){{2, 2}, {1, 1}, {0, 0}, {1, 1}, 1}, true);
}
static bk_module *b_convt2d_mixed(void) {
    return convt2d(4, 6, 3, 2, (bk_conv_transpose2d_opts){{1, 2}, {2, 0}, {0, 1}, {2, 1}, 2}, false);
}
static bk_module *b_convt1d(void) {
    return bk_nn_conv_transpose1d(4, 6, 3, (bk_conv_transpose1d_opts){3, 1, 2, 1, 2}, true);
}
static bk_module *b_convt1d_dilation3(void) {
    return bk_nn_conv_transpose1d(3, 2, 2, (bk_conv_transpose1d_opts){1, 0, 1, 3, 1}, true);
}
static bk_module *b_maxpool_k3s2p1(void) { return bk_nn_max_pool2d(3, 2, 1); }
static bk_module *b_maxpool_k2(void) { return bk_nn_max_pool2d(2, 0, 0); }
static bk_module *b_maxpool_k3s1p1(void) { return bk_nn_max_pool2d(3, 1, 1); }
static bk_module *b_avgpool_k3s2p1(void) { return bk_nn_avg_pool2d(3, 2, 1); }
static bk_module *b_avgpool_k2(void) { return bk_nn_avg_pool2d(2, 0, 0); }
static bk_module *b_avgpool_k3s1p1(void) { return bk_nn_avg_pool2d(3, 1, 1); }
static bk_module *b_maxpool_rect_dil_ceil(void) {
    return bk_nn_max_pool2d_ex((bk_pool2d_opts){{3, 2}, {2, 1}, {1, 1}}, (const int64_t[2]){2, 2}, true);
}
static bk_module *b_maxpool_ceil(void) {
    return bk_nn_max_pool2d_ex((bk_pool2d_opts){{3, 3}, {2, 2}, {0, 0}}, (const int64_t[2]){1, 1}, true);
}
static bk_module *b_avgpool_rect_ceil_nopad(void) {
    return bk_nn_avg_pool2d_ex((bk_pool2d_opts){{3, 2}, {2, 1}, {1, 1}}, true, false);
}
static bk_module *b_avgpool_ceil_pad(void) {
    return bk_nn_avg_pool2d_ex((bk_pool2d_opts){{3, 3}, {2, 2}, {1, 1}}, true, true);
}
static bk_module *b_maxpool1d(void) { return bk_nn_max_pool1d(3, 2, 1, 2, true); }
static bk_module *b_maxpool1d_k2(void) { return bk_nn_max_pool1d(2, 0, 0, 1, false); }
static bk_module *b_avgpool1d(void) { return bk_nn_avg_pool1d(3, 2, 1, true, false); }
static bk_module *b_adaptive_7to3(void) { return bk_nn_adaptive_avg_pool2d(3, 3); }
static bk_module *b_adaptive_to1(void) { return bk_nn_adaptive_avg_pool2d(1, 1); }
static bk_module *b_adaptive_7x5to3x2(void) { return bk_nn_adaptive_avg_pool2d(3, 2); }
static bk_module *b_adaptive_up(void) { return bk_nn_adaptive_avg_pool2d(5, 4); }
static bk_module *ups(int64_t oh, int64_t ow, double sh, double sw, bk_interp_mode mode, bool align) {
    return bk_nn_upsample((bk_interp_opts){{oh, ow}, {sh, sw}, mode, align});
}
static bk_module *b_upsample_nearest2(void) { return ups(0, 0, 2, 2, BK_INTERP_NEAREST, false); }
static bk_module *b_upsample_nearest_size(void) { return ups(7, 4, 0, 0, BK_INTERP_NEAREST, false); }
static bk_module *b_upsample_nearest_1p7(void) { return ups(0, 0, 1.7, 1.7, BK_INTERP_NEAREST, false); }
static bk_module *b_upsample_bilinear2(void) { return ups(0, 0, 2, 2, BK_INTERP_BILINEAR, false); }
static bk_module *b_upsample_bilinear_ac(void) { return ups(5, 9, 0, 0, BK_INTERP_BILINEAR, true); }
static bk_module *b_upsample_bilinear_mixed(void) { return ups(0, 0, 0.6, 1.5, BK_INTERP_BILINEAR, false); }
static bk_module *b_upsample_bilinear_down_ac(void) { return ups(3, 4, 0, 0, BK_INTERP_BILINEAR, true); }
static bk_module *b_bn1d_5(void) { return bk_nn_batch_norm1d(5); }
static bk_module *b_bn1d_4(void) { return bk_nn_batch_norm1d(4); }
static bk_module *b_bn2d_3(void) { return bk_nn_batch_norm2d(3); }
static bk_module *b_layernorm_64(void) { return bk_nn_layer_norm(1, (const int64_t[]){64}, 1e-5f); }
static bk_module *b_layernorm_1(void) { return bk_nn_layer_norm(1, (const int64_t[]){8}, 1e-5f); }
static bk_module *b_layernorm_2(void) { return bk_nn_layer_norm(2, (const int64_t[]){4, 6}, 1e-5f); }
static bk_module *b_layernorm_noaffine(void) {
    return bk_nn_layer_norm_ex(2, (const int64_t[]){4, 6}, 1e-5f, false);
}
static bk_module *bn_opts(int64_t c, int dims, bool none, bool affine, bool track) {
    return bk_nn_batch_norm_opts(c, dims, (bk_norm_opts){1e-5f, 0.1f, none, affine, track});
}
static bk_module *b_bn2d_noaffine(void) { return bn_opts(3, 2, false, false, true); }
static bk_module *b_bn1d_notrack(void) { return bn_opts(5, 1, false, true, false); }
static bk_module *b_bn2d_cma(void) { return bn_opts(3, 2, true, true, true); }
static bk_module *b_groupnorm(void) { return bk_nn_group_norm(2, 6, 1e-5f, true); }
static bk_module *b_groupnorm_1group_2d(void) { return bk_nn_group_norm(1, 8, 1e-5f, true); }
static bk_module *b_groupnorm_noaffine_3d(void) { return bk_nn_group_norm(3, 3, 1e-5f, false); }
static bk_module *b_instnorm(void) { return bk_nn_instance_norm2d(3, BK_INSTANCE_NORM_DEFAULTS); }
static bk_module *b_instnorm_affine_track(void) {
    return bk_nn_instance_norm2d(4, (bk_norm_opts){1e-5f, 0.1f, false, true, true});
}
static bk_module *b_gelu(void) { return bk_nn_gelu(); }
static bk_module *b_softmax_dim1(void) { return bk_nn_softmax(1); }
static bk_module *b_softmax_last(void) { return bk_nn_softmax(-1); }
static bk_module *b_logsoftmax_dim1(void) { return bk_nn_log_softmax(1); }
static bk_module *b_dropout_p0(void) { return bk_nn_dropout(0.0f); }
static bk_module *b_dropout_p05(void) { return bk_nn_dropout(0.5f); }
static bk_module *b_residual(void) { return bk_nn_residual(3, 3, false, 1); }
static bk_module *b_residual_1x1(void) { return bk_nn_residual(3, 6, true, 2); }
static bk_module *b_inception(void) {
    return bk_nn_inception(5, 2, (const int64_t[2]){3, 4}, (const int64_t[2]){2, 3}, 2);
}
static bk_module *zoo(const char *spec) { return bk_model_build(spec, BK_SHAPE(1, 28, 28), 10, NULL, 0); }
static bk_module *b_lenet(void) { return zoo("lenet"); }
static bk_module *b_googlenet(void) { return zoo("googlenet"); }
static bk_module *b_resnet(void) { return zoo("resnet:width=8"); }

typedef struct cnn_case {
    const char *name;
    bk_module *(*build)(void);
} cnn_case;

static const cnn_case CASES[] = {
    {"cnn_conv_pad", b_conv_pad},
    {"cnn_conv_stride2", b_conv_stride2},
    {"cnn_conv_groups2", b_conv_groups2},
    {"cnn_conv_dilation2", b_conv_dilation2},
    {"cnn_conv_nobias", b_conv_nobias},
    {"cnn_conv_mixed", b_conv_mixed},
    {"cnn_conv_depthwise", b_conv_depthwise},
    {"cnn_conv_1x1", b_conv_1x1},
    {"cnn_conv1d", b_conv1d},
    {"cnn_conv1d_mixed", b_conv1d_mixed},
    {"cnn_convt2d", b_convt2d},
    {"cnn_convt2d_k4s2", b_convt2d_k4s2},
    {"cnn_convt2d_mixed", b_convt2d_mixed},
    {"cnn_convt1d", b_convt1d},
    {"cnn_convt1d_dilation3", b_convt1d_dilation3},
    {"cnn_maxpool_k3s2p1", b_maxpool_k3s2p1},
    {"cnn_maxpool_k2", b_maxpool_k2},
    {"cnn_maxpool_k3s1p1", b_maxpool_k3s1p1},
    {"cnn_avgpool_k3s2p1", b_avgpool_k3s2p1},
    {"cnn_avgpool_k2", b_avgpool_k2},
    {"cnn_avgpool_k3s1p1", b_avgpool_k3s1p1},
    {"cnn_maxpool_rect_dil_ceil", b_maxpool_rect_dil_ceil},
    {"cnn_maxpool_ceil", b_maxpool_ceil},
    {"cnn_avgpool_rect_ceil_nopad", b_avgpool_rect_ceil_nopad},
    {"cnn_avgpool_ceil_pad", b_avgpool_ceil_pad},
    {"cnn_maxpool1d", b_maxpool1d},
    {"cnn_maxpool1d_k2", b_maxpool1d_k2},
    {"cnn_avgpool1d", b_avgpool1d},
    {"cnn_adaptive_7to3", b_adaptive_7to3},
    {"cnn_adaptive_to1", b_adaptive_to1},
    {"cnn_adaptive_7x5to3x2", b_adaptive_7x5to3x2},
    {"cnn_adaptive_up", b_adaptive_up},
    {"cnn_upsample_nearest2", b_upsample_nearest2},
    {"cnn_upsample_nearest_size", b_upsample_nearest_size},
    {"cnn_upsample_nearest_1p7", b_upsample_nearest_1p7},
    {"cnn_upsample_bilinear2", b_upsample_bilinear2},
    {"cnn_upsample_bilinear_ac", b_upsample_bilinear_ac},
    {"cnn_upsample_bilinear_mixed", b_upsample_bilinear_mixed},
    {"cnn_upsample_bilinear_down_ac", b_upsample_bilinear_down_ac},
    {"cnn_bn1d_2d_train", b_bn1d_5},
    {"cnn_bn1d_2d_eval", b_bn1d_5},
    {"cnn_bn1d_3d_train", b_bn1d_4},
    {"cnn_bn1d_3d_eval", b_bn1d_4},
    {"cnn_bn2d_train", b_bn2d_3},
    {"cnn_bn2d_eval", b_bn2d_3},
    {"cnn_bn2d_big_train", b_bn2d_3},
    {"cnn_bn2d_big_eval", b_bn2d_3},
    {"cnn_layernorm_big", b_layernorm_64},
    {"cnn_layernorm_1", b_layernorm_1},
    {"cnn_layernorm_2", b_layernorm_2},
    {"cnn_layernorm_noaffine", b_layernorm_noaffine},
    {"cnn_bn2d_noaffine_train", b_bn2d_noaffine},
    {"cnn_bn2d_noaffine_eval", b_bn2d_noaffine},
    {"cnn_bn1d_notrack_train", b_bn1d_notrack},
    {"cnn_bn1d_notrack_eval", b_bn1d_notrack},
    {"cnn_bn2d_cma_train", b_bn2d_cma},
    {"cnn_bn2d_cma_eval", b_bn2d_cma},
    {"cnn_groupnorm", b_groupnorm},
    {"cnn_groupnorm_1group_2d", b_groupnorm_1group_2d},
    {"cnn_groupnorm_noaffine_3d", b_groupnorm_noaffine_3d},
    {"cnn_instnorm", b_instnorm},
    {"cnn_instnorm_affine_track_train", b_instnorm_affine_track},
    {"cnn_instnorm_affine_track_eval", b_instnorm_affine_track},
    {"cnn_gelu", b_gelu},
    {"cnn_softmax_dim1", b_softmax_dim1},
    {"cnn_softmax_last", b_softmax_last},
    {"cnn_logsoftmax_dim1", b_logsoftmax_dim1},
    {"cnn_logsoftmax_4d", b_logsoftmax_dim1},
    {"cnn_dropout_p0", b_dropout_p0},
    {"cnn_dropout_p05", b_dropout_p05},
    {"cnn_residual_train", b_residual},
    {"cnn_residual_eval", b_residual},
    {"cnn_residual_1x1_train", b_residual_1x1},
    {"cnn_residual_1x1_eval", b_residual_1x1},
    {"cnn_inception", b_inception},
    {"cnn_lenet", b_lenet},
    {"cnn_googlenet", b_googlenet},
    {"cnn_resnet_train", b_resnet},
    {"cnn_resnet_eval", b_resnet},
};
#define N_CASES ((int)(sizeof CASES / sizeof CASES[0]))

/* ======================================================================================
 * Comparing
 * ====================================================================================== */

/* Per-case worst errors, for the verbose summary line. */
static parity_stats case_err_;

/* Compares brick's `got` with torch's `want`: shape, then values within the tolerance
 * above (E: metadata f32err.<what>, S: f32noise.<what>, both capped at F32ERR_CAP), or
 * bit for bit (up to the sign of zero) when `exact`. */
static void compare(const char *case_name, const char *what, const bk_tensor *got, const bk_tensor *want,
                    const bk_safetensors *ref, bool exact) {
    char label[256];
    snprintf(label, sizeof label, "%s %s", case_name, what);
    double atol = ATOL + E_K * parity_meta_error(ref, "f32err", what, F32ERR_CAP) +
                  NOISE_K * parity_meta_error(ref, "f32noise", what, F32ERR_CAP);
    case_err_.exact = exact;
    parity_compare(label, got, want, RTOL, atol, &case_err_);
}

static bk_tensor *arena_copy(const bk_tensor *t) { return bk_from_data(t->ndim, t->shape, t->data); }

static bool ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* ======================================================================================
 * One module case: names, strict load, mode, warm-up passes, forward, backward, buffers.
 * ====================================================================================== */

static void run_module_case(const cnn_case *c) {
    const char *name = c->name;
    case_err_ = (parity_stats){0};
    bk_safetensors *w = parity_open(name, ".safetensors");
    bk_safetensors *ref = parity_open(name, ".ref.safetensors");
    bk_module *m = c->build();
    bk_param_list *params = NULL, *state = NULL, *buffers = NULL;
    CHECK(w && ref && m);
    if (!w || !ref || !m) goto done;
    const char *meta_case = bk_safetensors_meta(ref, "case"), *mode = bk_safetensors_meta(ref, "mode");
    const char *warm = bk_safetensors_meta(ref, "warmup"), *ex = bk_safetensors_meta(ref, "exact");
    CHECK(meta_case && strcmp(meta_case, name) == 0);
    CHECK(mode && (strcmp(mode, "train") == 0 || strcmp(mode, "eval") == 0) && warm && ex);
    if (!mode || !warm || !ex) goto done;
    bool training = strcmp(mode, "train") == 0, exact = strcmp(ex, "1") == 0;
    /* a name that says its mode must have been generated in that mode */
    CHECK(!ends_with(name, "_train") || training);
    CHECK(!ends_with(name, "_eval") || !training);

    if (!parity_module_names(name, m, ref, &params, &state, &buffers)) goto done;

    if (state->n > 0) { /* parameter-free blocks have an empty state dict */
        int rc = bk_module_load_from(m, w, true);
        CHECK(rc == 0);
        if (rc != 0) goto done;
    }
    bk_module_train(m, training);

    /* The warm-up training passes (torch ran them under no_grad): they only move the
     * running statistics, which are compared at the end. */
    int n_warm = atoi(warm);
    bool prev = bk_set_grad_enabled(false);
    for (int i = 0; i < n_warm; i++) {
        char key[32];
        snprintf(key, sizeof key, "warmup.%d", i);
        const bk_tensor *xw = bk_safetensors_get(ref, key);
        CHECK(xw != NULL);
        if (!xw) break;
        CHECK(bk_forward(m, arena_copy(xw)) != NULL);
    }
    bk_set_grad_enabled(prev);

    const bk_tensor *X = bk_safetensors_get(ref, "input");
    CHECK(X != NULL);
    if (!X) goto done;
    bk_tensor *x = bk_requires_grad(arena_copy(X), true);
    bk_tensor *y = bk_forward(m, x);
    compare(name, "output", y, bk_safetensors_get(ref, "output"), ref, exact);
    if (!y) goto done;

    /* L = (output * upstream).sum() */
    int rc = bk_backward_ex(y, bk_safetensors_get(ref, "upstream"), false);
    CHECK(rc == 0);
    if (rc != 0) goto done;
    compare(name, "input.grad", x->grad, bk_safetensors_get(ref, "input.grad"), ref, exact);
    for (int i = 0; i < params->n; i++) {
        char key[200];
        snprintf(key, sizeof key, "grad.%s", params->names[i]);
        compare(name, key, params->tensors[i]->grad, bk_safetensors_get(ref, key), ref, exact);
    }
    /* Buffers after all passes: running statistics and num_batches_tracked (float32 here,
     * int64 in torch, converted by the generator); unchanged in eval mode. */
    for (int i = 0; i < buffers->n; i++) {
        char key[200];
        snprintf(key, sizeof key, "state.%s", buffers->names[i]);
        compare(name, key, buffers->tensors[i], bk_safetensors_get(ref, key), ref, exact);
        CHECK(buffers->tensors[i]->grad == NULL);
    }
    parity_stats_print(name, &case_err_);

done:
    parity_module_case_free(m, w, ref, params, state, buffers);
}

/* ======================================================================================
 * Op cases (OP_CASES in gen_cnn.py): input "x", output, upstream, x.grad
 * ====================================================================================== */

static void run_op_case(const char *name, bk_tensor *(*fn)(bk_tensor *)) {
    case_err_ = (parity_stats){0};
    bk_safetensors *ref = parity_open(name, ".ref.safetensors");
    CHECK(ref != NULL);
    if (!ref) return;
    const char *inputs = bk_safetensors_meta(ref, "inputs");
    CHECK(inputs && strcmp(inputs, "x") == 0);
    const bk_tensor *X = bk_safetensors_get(ref, "x");
    CHECK(X != NULL);
    if (X) {
        bk_tensor *x = bk_requires_grad(arena_copy(X), true);
        bk_tensor *y = fn(x);
        compare(name, "output", y, bk_safetensors_get(ref, "output"), ref, false);
        if (y) {
            CHECK(bk_backward_ex(y, bk_safetensors_get(ref, "upstream"), false) == 0);
            compare(name, "x.grad", x->grad, bk_safetensors_get(ref, "x.grad"), ref, false);
        }
        parity_stats_print(name, &case_err_);
    }
    bk_safetensors_free(ref);
}

TEST(cnn_op_gelu) { run_op_case("cnn_op_gelu", bk_gelu); }
TEST(cnn_op_gelu_tanh) { run_op_case("cnn_op_gelu_tanh", bk_gelu_tanh); }

/* ======================================================================================
 * Running
 * ====================================================================================== */

static const cnn_case *current_case_;
TEST(module_case) { run_module_case(current_case_); }

int main(void) {
    if (parity_skip_all("test_parity_cnn", "gen_cnn.py")) return test_summary("test_parity_cnn (skipped)");
    for (int i = 0; i < N_CASES; i++) {
        current_case_ = &CASES[i];
        parity_run(CASES[i].name, module_case, true);
    }
    parity_run("cnn_op_gelu", cnn_op_gelu, false);
    parity_run("cnn_op_gelu_tanh", cnn_op_gelu_tanh, false);
    return test_summary("test_parity_cnn");
}
