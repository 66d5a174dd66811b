/* brick/nn.h - part of brick.h: modules (blocks) and the layers of torch.nn.
 * Include <brick.h>, which includes every part in order and states the ownership and
 * error rules once at its top. */
#ifndef BRICK_PART_NN_H
#define BRICK_PART_NN_H

#ifndef BRICK_H
#error "include <brick.h>, not <brick/nn.h>"
#endif

/* ------------------------------------------------------------------------------------ */
/* Modules (blocks)                                                                     */
/* ------------------------------------------------------------------------------------ */

/* What makes a kind of block: its name (as print(net) shows it), its forward, and
 * optionally a description of its settings and a destructor for extra state. */
typedef struct bk_module_class {
    const char *name;
    bk_tensor *(*forward)(bk_module *self, bk_tensor *x);
    /* Writes e.g. "in_features=20, out_features=256, bias=True" (may be NULL). */
    void (*extra_repr)(const bk_module *self, char *buf, size_t n);
    /* Frees what the block allocated itself (not params/children; may be NULL). */
    void (*destroy)(bk_module *self);
} bk_module_class;

typedef struct bk_named_tensor {
    char *name; /* local name ("weight") */
    bk_tensor *tensor;
    bool trainable;  /* parameters: true unless frozen; buffers: false */
    bool persistent; /* saved in the state dict */
} bk_named_tensor;

typedef struct bk_named_module {
    char *name;
    bk_module *module;
} bk_named_module;

/* The base of every block. User blocks embed it as their FIRST member:
 *     typedef struct { bk_module base; bk_module *hidden, *out; } MLP;
 * Fields are readable; change them through the API. */
struct bk_module {
    const bk_module_class *cls;
    bk_named_module *children;
    int n_children, cap_children;
    bk_named_tensor *params;
    int n_params, cap_params;
    bk_named_tensor *buffers;
    int n_buffers, cap_buffers;
    bool training;
    int refcount;
    struct bk_module_hooks *hooks; /* forward (pre-)hooks; NULL without (bk_module_add_*_hook) */
    bool lazy; /* a lazy layer before its first forward: its parameters do not exist yet */
};

/* Allocates a zeroed block of `size` bytes (>= sizeof(bk_module)) whose base is set up
 * for cls. Returns NULL on error. Free with bk_module_free. */
bk_module *bk_module_new(const bk_module_class *cls, size_t size);
/* Drops one reference; at zero frees params, buffers, children (recursively) and itself.
 * NULL is fine; what is not a live block is refused with an error (freeing it would
 * corrupt memory). */
void bk_module_free(bk_module *m);
/* Adds a reference (to register one block under two parents). Returns m, or NULL with an
 * error for NULL or what is not a live block. */
bk_module *bk_module_ref(bk_module *m);

/* Registers child under name (ordered). Takes ownership of `child` in every case: on
 * failure (NULL parent, duplicate name, NULL child) the child is freed and NULL returned.
 * Returns child. (A child that is not a live block is refused and left alone.) */
bk_module *bk_module_add(bk_module *m, const char *name, bk_module *child);
/* Creates a zero-filled trainable parameter owned by m (nn.Parameter). Borrowed. */
bk_tensor *bk_module_param(bk_module *m, const char *name, int ndim, const int64_t *shape);
/* Creates a zero-filled constant owned by m: never trained, no gradient; saved in the
 * state dict when persistent (register_buffer). Borrowed. */
bk_tensor *bk_module_buffer(bk_module *m, const char *name, int ndim, const int64_t *shape, bool persistent);
/* Freezes or unfreezes a parameter (requires_grad_). */
int bk_module_set_trainable(bk_module *m, const char *name, bool trainable);

/* Forward hooks (torch's register_forward_pre_hook / register_forward_hook), run by
 * bk_forward in the order they were added:
 *   pre-hook: before the block's forward, returns the input to give it (x itself, or
 *     another tensor: torch's "return a modified input");
 *   hook: after it, given the input and the output y, returns the output to pass on (y, or
 *     a replacement).
 * A hook that returns NULL fails the forward (leave a message with bk_set_error; without
 * one the message names the hook). Hooks see every call, also under no-grad; ud is the
 * caller's. Each add returns a handle (>= 0) for bk_module_remove_hook, or -1 with an error
 * for a bad block, a NULL fn or out of memory. The block frees its hooks, not ud.
 * Activation statistics, feature extraction: examples/12_hooks.c. */
typedef bk_tensor *(*bk_forward_pre_hook)(bk_module *m, bk_tensor *x, void *ud);
typedef bk_tensor *(*bk_forward_hook)(bk_module *m, bk_tensor *x, bk_tensor *y, void *ud);
int bk_module_add_forward_pre_hook(bk_module *m, bk_forward_pre_hook fn, void *ud);
int bk_module_add_forward_hook(bk_module *m, bk_forward_hook fn, void *ud);
/* Backward hooks (torch's register_full_backward_hook): for every forward of m run with
 * grad mode on, fn(m, grad_input, grad_output, ud) runs during the backward once the
 * gradient with respect to the block's input (grad_input) is complete; grad_output is the
 * gradient with respect to its output. fn returns NULL to keep grad_input or a tensor of
 * its shape whose values replace it (what flows on to the input). When the input needs no
 * gradient (data), grad_input is NULL, fn runs as soon as grad_output is known and its
 * return is ignored. A replacement of another shape fails the backward naming the block.
 * m must outlive the backward. Handles and errors as the forward hooks'. */
typedef bk_tensor *(*bk_backward_hook)(bk_module *m, const bk_tensor *grad_input,
                                       const bk_tensor *grad_output, void *ud);
int bk_module_add_backward_hook(bk_module *m, bk_backward_hook fn, void *ud);
/* Removes the hook with that handle (handle.remove()). 0, or -1 with an error when m has
 * no such hook. */
int bk_module_remove_hook(bk_module *m, int handle);

/* Runs the block: m->cls->forward(m, x). NULL in, NULL out. On failure the error is
 * prefixed with the innermost failing block's class name (except anomaly-mode messages,
 * which already name the whole chain of blocks). */
bk_tensor *bk_forward(bk_module *m, bk_tensor *x);

/* True when m or a block under it is a lazy layer (bk_nn_lazy_linear, ...) that has not
 * run its first forward yet (torch's has_uninitialized_params()); false with an error for
 * what is not a live block. Until then listing the parameters (bk_module_named,
 * bk_module_num_params), and so saving or loading a state dict, making an optimizer or
 * clipping gradients, fails naming the lazy block: run one forward (a dry run on a batch)
 * first, as D2L 5.3 does. */
bool bk_module_has_uninitialized(const bk_module *m);

/* Children by position or name (borrowed; NULL if absent). */
bk_module *bk_module_child(const bk_module *m, int index);
bk_module *bk_module_child_by_name(const bk_module *m, const char *name);
/* Parameter or buffer by dotted name ("0.net.2.weight"); borrowed. */
bk_tensor *bk_module_get(const bk_module *m, const char *dotted);

/* Iterating a block tree. bk_named_params lists every parameter under its dotted name,
 * in registration order, each shared parameter once (named_parameters()). */
typedef struct bk_param_list {
    int n;
    char **names;        /* dotted names, owned by the list */
    bk_tensor **tensors; /* borrowed from the modules */
    bool *trainable;
} bk_param_list;
/* Which tensors of a block tree to list: BK_PARAMS (parameters), BK_BUFFERS (buffers),
 * BK_STATE (state dict order: per module its params then its persistent buffers, then its
 * children; duplicates kept under every name, as torch's state_dict); any other value is
 * an error. (The values are bits: BK_STATE = BK_PARAMS | BK_BUFFERS.) Free the list with
 * bk_param_list_free (NULL is fine). */
typedef enum bk_named_kind { BK_PARAMS = 1, BK_BUFFERS = 2, BK_STATE = 3 } bk_named_kind;
bk_param_list *bk_module_named(const bk_module *m, bk_named_kind which);
void bk_param_list_free(bk_param_list *l);

int64_t bk_module_num_params(const bk_module *m, bool trainable_only);
/* Sets training mode recursively (train(True) / eval()). */
void bk_module_train(bk_module *m, bool training);
/* Sets every parameter's gradient to zero (keeps the buffers). */
void bk_module_zero_grad(bk_module *m);
/* Calls fn on every descendant (children first, depth-first) and then on m, like
 * torch's apply(). */
void bk_module_apply(bk_module *m, void (*fn)(bk_module *m, void *ud), void *ud);
/* Writes the block tree the way print(net) does. Returns bytes written (as snprintf: buf
 * NULL with n 0 measures). */
int bk_module_repr(const bk_module *m, char *buf, size_t n);
void bk_module_print(const bk_module *m, FILE *f);
/* The class name ("Linear"), or "?" for NULL. */
const char *bk_module_name(const bk_module *m);

/* ------------------------------------------------------------------------------------ */
/* Layers and blocks (torch.nn). Constructors return NULL with an error on bad input.  */
/* ------------------------------------------------------------------------------------ */

/* nn.Linear: weight (out, in) and bias (out,), both U(-1/sqrt(in), 1/sqrt(in)) from the
 * thread's default rng, as PyTorch initialises them. */
bk_module *bk_nn_linear(int64_t in_features, int64_t out_features);
bk_module *bk_nn_linear_ex(int64_t in_features, int64_t out_features, bool bias);
bk_module *bk_nn_relu(void);
bk_module *bk_nn_sigmoid(void);
bk_module *bk_nn_tanh(void);
bk_module *bk_nn_identity(void);
/* nn.Flatten(start_dim=1, end_dim=-1). */
bk_module *bk_nn_flatten(int start_dim, int end_dim);

/* nn.Conv2d(in, out, kernel_size, stride, padding, dilation, groups, bias): weight
 * (out, in/groups, kh, kw) and bias (out) initialised as torch does (U(+-1/sqrt(fan_in))). */
bk_module *bk_nn_conv2d(int64_t in_channels, int64_t out_channels, int64_t kernel_size, int64_t stride,
                        int64_t padding);
bk_module *bk_nn_conv2d_ex(int64_t in_channels, int64_t out_channels, const int64_t kernel[2],
                           bk_conv2d_opts opts, bool bias);
/* nn.Conv1d(in, out, kernel_size, stride, padding, dilation, groups, bias): weight
 * (out, in/groups, k), bias (out), U(+-1/sqrt(in/groups k)) as torch. BK_CONV1D_DEFAULTS
 * are torch's defaults. */
bk_module *bk_nn_conv1d(int64_t in_channels, int64_t out_channels, int64_t kernel_size, bk_conv1d_opts opts,
                        bool bias);
/* nn.ConvTranspose1d / nn.ConvTranspose2d(in, out, kernel_size, stride, padding,
 * output_padding, groups, bias, dilation): weight (in, out/groups, k...) and bias (out),
 * U(+-1/sqrt(out/groups prod(k))) as torch (fan_in is the weight's dim 1 times the kernel). */
bk_module *bk_nn_conv_transpose1d(int64_t in_channels, int64_t out_channels, int64_t kernel_size,
                                  bk_conv_transpose1d_opts opts, bool bias);
bk_module *bk_nn_conv_transpose2d(int64_t in_channels, int64_t out_channels, const int64_t kernel[2],
                                  bk_conv_transpose2d_opts opts, bool bias);
/* nn.MaxPool2d / nn.AvgPool2d (stride 0 means stride = kernel, as torch's default). */
bk_module *bk_nn_max_pool2d(int64_t kernel_size, int64_t stride, int64_t padding);
bk_module *bk_nn_avg_pool2d(int64_t kernel_size, int64_t stride, int64_t padding);
/* The same with every setting of torch's (bk_max_pool2d_ex, bk_avg_pool2d_ex): per-dim
 * kernel, stride (0: = kernel) and padding; dilation and ceil_mode; ceil_mode and
 * count_include_pad (torch's defaults: dilation 1, false, true). */
bk_module *bk_nn_max_pool2d_ex(bk_pool2d_opts opts, const int64_t dilation[2], bool ceil_mode);
bk_module *bk_nn_avg_pool2d_ex(bk_pool2d_opts opts, bool ceil_mode, bool count_include_pad);
/* nn.MaxPool1d / nn.AvgPool1d on (N, C, L): the 2-d ops on (N, C, 1, L). */
bk_module *bk_nn_max_pool1d(int64_t kernel_size, int64_t stride, int64_t padding, int64_t dilation,
                            bool ceil_mode);
bk_module *bk_nn_avg_pool1d(int64_t kernel_size, int64_t stride, int64_t padding, bool ceil_mode,
                            bool count_include_pad);
bk_module *bk_nn_adaptive_avg_pool2d(int64_t out_h, int64_t out_w);
/* nn.Upsample(size or scale_factor, mode, align_corners) on (N, C, H, W): bk_interpolate
 * with these settings (checked here). No parameters. */
bk_module *bk_nn_upsample(bk_interp_opts opts);
/* nn.BatchNorm1d / nn.BatchNorm2d(num_features, eps=1e-5, momentum=0.1): weight 1, bias 0,
 * buffers running_mean 0, running_var 1, num_batches_tracked 0 (a float counter here). */
bk_module *bk_nn_batch_norm1d(int64_t num_features);
bk_module *bk_nn_batch_norm2d(int64_t num_features);
/* ndim_expected: 1 for BatchNorm1d (input (N, C) or (N, C, L)), 2 for BatchNorm2d ((N, C, H, W)). */
bk_module *bk_nn_batch_norm_ex(int64_t num_features, float eps, float momentum, int ndim_expected);
/* The options of torch's norm layers (BatchNorm, InstanceNorm): momentum_none is
 * momentum=None (a cumulative average of the batches' statistics; BatchNorm only); affine
 * false: no weight and bias; track_running_stats false: no running_mean, running_var and
 * num_batches_tracked, and the batch's own statistics in eval mode too. */
typedef struct bk_norm_opts {
    float eps, momentum;
    bool momentum_none, affine, track_running_stats;
} bk_norm_opts;
#define BK_BATCH_NORM_DEFAULTS ((bk_norm_opts){1e-5f, 0.1f, false, true, true})
#define BK_INSTANCE_NORM_DEFAULTS ((bk_norm_opts){1e-5f, 0.1f, false, false, false})
bk_module *bk_nn_batch_norm_opts(int64_t num_features, int ndim_expected, bk_norm_opts opts);
/* Lazy layers (D2L 5.3 deferred initialisation; torch.nn.LazyLinear, LazyConv2d,
 * LazyBatchNorm1d/2d): the same layers without their input size, which the first forward
 * takes from its input (in_features: the last dim; in_channels, num_features: dim 1). Until
 * then the block has no parameters (see bk_module_has_uninitialized) and prints with size
 * 0 under its Lazy class name; the first forward registers and initialises them exactly
 * as the eager constructor would at that point (same names, order and draws from the
 * thread's default rng) and the block becomes that layer (class Linear, Conv2d,
 * BatchNorm1d/2d, as torch's cls_to_become). A first input that cannot give the size (a
 * LazyLinear on a scalar, a LazyConv2d input that is not 4-D, a LazyBatchNorm input of the
 * wrong rank) fails naming the layer and the shape and leaves the block lazy.
 * bk_nn_lazy_batch_norm: ndim_expected 1 (BatchNorm1d) or 2 (BatchNorm2d). */
bk_module *bk_nn_lazy_linear(int64_t out_features, bool bias);
bk_module *bk_nn_lazy_conv2d(int64_t out_channels, const int64_t kernel[2], bk_conv2d_opts opts, bool bias);
bk_module *bk_nn_lazy_batch_norm(int ndim_expected, bk_norm_opts opts);
/* nn.InstanceNorm2d(num_features, eps, momentum, affine=False, track_running_stats=False)
 * on (N, C, H, W): each sample's channel normalised over its H W positions; with
 * track_running_stats, training updates the running statistics with the mean over the
 * batch of the per-sample ones (as torch) and eval mode normalises with them. */
bk_module *bk_nn_instance_norm2d(int64_t num_features, bk_norm_opts opts);
/* nn.GroupNorm(num_groups, num_channels, eps=1e-5, affine=True): bk_group_norm with weight
 * (C) = 1 and bias (C) = 0 (absent without affine). */
bk_module *bk_nn_group_norm(int64_t num_groups, int64_t num_channels, float eps, bool affine);
/* nn.LayerNorm(normalized_shape, eps=1e-5), weight 1 and bias 0. */
bk_module *bk_nn_layer_norm(int ndim, const int64_t *normalized_shape, float eps);
/* elementwise_affine false: no weight and bias. */
bk_module *bk_nn_layer_norm_ex(int ndim, const int64_t *normalized_shape, float eps, bool elementwise_affine);
/* nn.Dropout(p): uses the thread's default generator (seed with bk_manual_seed). */
bk_module *bk_nn_dropout(float p);
bk_module *bk_nn_gelu(void);
bk_module *bk_nn_softmax(int dim);
bk_module *bk_nn_log_softmax(int dim);
/* nn.GELU(approximate='tanh'), nn.SiLU, nn.Mish, nn.Hardswish, nn.Hardsigmoid. */
bk_module *bk_nn_gelu_tanh(void);
bk_module *bk_nn_silu(void);
bk_module *bk_nn_mish(void);
bk_module *bk_nn_hardswish(void);
bk_module *bk_nn_hardsigmoid(void);
/* nn.LeakyReLU(negative_slope=0.01), nn.ELU(alpha=1.0), nn.Softplus(beta=1, threshold=20)
 * (beta must be nonzero). */
bk_module *bk_nn_leaky_relu(float negative_slope);
bk_module *bk_nn_elu(float alpha);
bk_module *bk_nn_softplus(float beta, float threshold);
/* nn.Softmax2d: softmax over dim -3 of a (C, H, W) or (N, C, H, W) input. */
bk_module *bk_nn_softmax2d(void);
/* nn.PReLU(num_parameters=1, init=0.25): parameter "weight" (num_parameters), one slope per
 * channel (dim 1 of the input; num_parameters 1 shares one slope). */
bk_module *bk_nn_prelu(int64_t num_parameters, float init);

/* D2L's ResNet block ("Residual Networks"), class Residual(input_channels, num_channels,
 * use_1x1conv, strides): children conv1 = Conv2d(in, num, 3, padding=1, stride=strides),
 * conv2 = Conv2d(num, num, 3, padding=1), conv3 = Conv2d(in, num, 1, stride=strides) (only
 * with use_1x1conv), bn1, bn2 = BatchNorm2d(num), registered in that order.
 *   Y = relu(bn1(conv1(X))); Y = bn2(conv2(Y)); return relu(Y + (conv3 ? conv3(X) : X))
 * (N, in, H, W) -> (N, num, (H - 1) / strides + 1, (W - 1) / strides + 1). Without
 * use_1x1conv the input must already have that shape (in == num, strides 1), else forward
 * fails naming both shapes. */
bk_module *bk_nn_residual(int64_t input_channels, int64_t num_channels, bool use_1x1conv, int64_t strides);
/* D2L's GoogLeNet block ("Multi-Branch Networks"), class Inception(in_channels, c1, c2, c3,
 * c4): four paths, each conv followed by a ReLU, concatenated on the channels:
 *   p1_1 = Conv2d(in, c1, 1);
 *   p2_1 = Conv2d(in, c2[0], 1), p2_2 = Conv2d(c2[0], c2[1], 3, padding=1);
 *   p3_1 = Conv2d(in, c3[0], 1), p3_2 = Conv2d(c3[0], c3[1], 5, padding=2);
 *   p4_1 = MaxPool2d(3, stride=1, padding=1), p4_2 = Conv2d(in, c4, 1).
 * (N, in, H, W) -> (N, c1 + c2[1] + c3[1] + c4, H, W). */
bk_module *bk_nn_inception(int64_t in_channels, int64_t c1, const int64_t c2[2], const int64_t c3[2],
                           int64_t c4);

/* nn.Sequential of n blocks (takes ownership of all of them, also on failure), named
 * "0", "1", ... */
bk_module *bk_nn_sequential(int n, ...);
bk_module *bk_nn_sequential_from(int n, bk_module *const *blocks);
/* Appends a block under the next index name. Returns 0 or -1. */
int bk_nn_sequential_append(bk_module *seq, bk_module *block);
int bk_nn_sequential_len(const bk_module *seq);
bk_module *bk_nn_sequential_get(const bk_module *seq, int index); /* negative counts from end */

/* nn.ModuleList / nn.ModuleDict: containers of blocks with no forward of their own (forward
 * fails saying so); their children are registered, so named_parameters ("0.weight",
 * "enc.bias"), state dicts, train/eval, apply and print(net) include them. Read them with
 * bk_module_child / bk_module_child_by_name and n_children.
 *   bk_nn_module_list_append: adds block under the next index name ("0", "1", ...).
 *   bk_nn_module_dict_set: adds block under key (a valid block name: not empty, no '.'), or
 *     replaces the child under an existing key in place (the old one is freed), as torch's
 *     dict[key] = block.
 * Both take ownership of block in every case (freed on failure, as bk_module_add) and
 * return 0, or -1 with an error for a container of another kind, a NULL block or a bad key. */
bk_module *bk_nn_module_list(void);
bk_module *bk_nn_module_dict(void);
int bk_nn_module_list_append(bk_module *list, bk_module *block);
int bk_nn_module_dict_set(bk_module *dict, const char *key, bk_module *block);


/* ------------------------------------------------------------------------------------ */
/* Parameter initialisation (torch.nn.init)                                             */
/* ------------------------------------------------------------------------------------ */

/* Fill any tensor in place (a parameter from bk_module_get / bk_module_named, a buffer, a
 * user's tensor), with no autograd, as torch.nn.init's functions under no_grad. rng NULL
 * means the thread's default generator (values differ from torch's generator; the
 * distributions are torch's). Settings are doubles; each value is rounded to float32 once.
 * A tensor with no elements is left alone (torch warns and does the same). Each returns 0,
 * or -1 with an error naming the function and the bad value or shape (t is then left as
 * it was). Over a block tree, call them from bk_module_apply (examples/11_param_init.c:
 * D2L's init_normal, init_constant, init_xavier and a custom init).
 *   uniform_(a, b): U(a, b), a <= b.       normal_(mean, std): N(mean, std^2), std >= 0.
 *   constant_(value), zeros_, ones_. */
int bk_init_uniform(bk_tensor *t, bk_rng *rng, double a, double b);
int bk_init_normal(bk_tensor *t, bk_rng *rng, double mean, double std);
int bk_init_constant(bk_tensor *t, double value);
int bk_init_zeros(bk_tensor *t);
int bk_init_ones(bk_tensor *t);
/* torch's _calculate_fan_in_and_fan_out for a weight of rank >= 2 (out, in, k...):
 * fan_in = in * prod(k), fan_out = out * prod(k), so Linear (out, in) gives (in, out) and
 * Conv2d (out, in/groups, kh, kw) gives (in/groups kh kw, out kh kw). -1 with an error for
 * rank < 2 or NULL outputs. */
int bk_init_fans(const bk_tensor *t, int64_t *fan_in, int64_t *fan_out);
/* calculate_gain(nonlinearity, param): 1 for "linear", "conv1d", "conv2d", "conv3d",
 * "conv_transpose1d/2d/3d", "sigmoid"; 5/3 for "tanh"; sqrt(2) for "relu"; 3/4 for "selu";
 * sqrt(2 / (1 + slope^2)) for "leaky_relu" with slope param (NaN: torch's None, 0.01).
 * NaN with an error for NULL or another name. */
double bk_init_gain(const char *nonlinearity, double param);
/* xavier_uniform_ / xavier_normal_(gain >= 0): std = gain sqrt(2 / (fan_in + fan_out)); the
 * uniform one draws U(-sqrt(3) std, sqrt(3) std). Rank >= 2. */
int bk_init_xavier_uniform(bk_tensor *t, bk_rng *rng, double gain);
int bk_init_xavier_normal(bk_tensor *t, bk_rng *rng, double gain);
/* kaiming_uniform_ / kaiming_normal_(a, mode, nonlinearity): std = gain / sqrt(fan) with
 * gain = bk_init_gain(nonlinearity, a) and fan = fan_in or fan_out by mode; the uniform one
 * draws U(-sqrt(3) std, sqrt(3) std). torch's defaults: a 0, BK_FAN_IN, "leaky_relu" (so
 * std = sqrt(2 / fan_in)); nn.Linear's own init is a = sqrt(5). Rank >= 2. */
typedef enum bk_fan_mode { BK_FAN_IN = 0, BK_FAN_OUT, BK_FAN_MODE_COUNT } bk_fan_mode;
int bk_init_kaiming_uniform(bk_tensor *t, bk_rng *rng, double a, bk_fan_mode mode, const char *nonlinearity);
int bk_init_kaiming_normal(bk_tensor *t, bk_rng *rng, double a, bk_fan_mode mode, const char *nonlinearity);
/* orthogonal_(gain): t viewed as (rows = shape[0], cols = numel / rows) becomes gain times
 * a (semi-)orthogonal matrix: orthonormal columns if rows >= cols, else orthonormal rows
 * (W^T W = I or W W^T = I), uniformly distributed (the Q of a Gaussian matrix with R's
 * diagonal made positive, as torch does; here by Gram-Schmidt, twice, in double). Rank >= 2. */
int bk_init_orthogonal(bk_tensor *t, bk_rng *rng, double gain);
/* trunc_normal_(mean, std, a, b): N(mean, std^2) conditioned on [a, b] (torch's defaults
 * 0, 1, -2, 2), drawn by the inverse CDF as torch does. std > 0 and a < b. */
int bk_init_trunc_normal(bk_tensor *t, bk_rng *rng, double mean, double std, double a, double b);
/* ---- Recurrent layers (torch.nn.RNN / LSTM / GRU and their cells; src/nn/rnn.c) ------- */

/* Which recurrence: nn.RNN(nonlinearity='tanh' | 'relu'), nn.LSTM, nn.GRU. With x the
 * input, h the state, and W_i* / W_h* the row blocks of weight_ih / weight_hh in
 * PyTorch's gate order (same for the biases b_i*, b_h*):
 *   RNN:  h' = act(x W_ih^T + b_ih + h W_hh^T + b_hh)
 *   LSTM: i, f, g, o = sig, sig, tanh, sig(x W_i*^T + b_i* + h W_h*^T + b_h*)
 *         c' = f c + i g,  h' = o tanh(c')
 *   GRU:  r, z = sig(x W_i*^T + b_i* + h W_h*^T + b_h*)
 *         n = tanh(x W_in^T + b_in + r (h W_hn^T + b_hn)),  h' = (1 - z) n + z h */
typedef enum bk_rnn_mode { BK_RNN_TANH = 0, BK_RNN_RELU, BK_LSTM, BK_GRU, BK_RNN_MODE_COUNT } bk_rnn_mode;

/* nn.RNNCell(input_size, hidden_size, bias, nonlinearity) (mode BK_RNN_TANH / BK_RNN_RELU),
 * nn.LSTMCell or nn.GRUCell: parameters weight_ih (G H, input_size), weight_hh (G H, H),
 * bias_ih and bias_hh (G H; absent without bias), G = 1, 4 (i, f, g, o) or 3 (r, z, n),
 * all U(-1/sqrt(H), 1/sqrt(H)) as torch. bk_forward(cell, x) is one step from a zero state
 * and returns h'. */
bk_module *bk_nn_rnn_cell(bk_rnn_mode mode, int64_t input_size, int64_t hidden_size, bool bias);
/* One step of a cell: x (B, input_size) or unbatched (input_size); h (and c, LSTMCell only)
 * shaped (B, H) / (H), or NULL for zeros. Returns h'; for an LSTMCell *c_out (if not NULL)
 * gets c' (else NULL). A c for another cell, or a shape that does not fit, is an error
 * naming the cell and the shapes. */
bk_tensor *bk_rnn_cell_forward(bk_module *cell, bk_tensor *x, bk_tensor *h, bk_tensor *c, bk_tensor **c_out);

/* The arguments of nn.RNN / nn.LSTM / nn.GRU. */
typedef struct bk_rnn_config {
    bk_rnn_mode mode;
    int64_t input_size, hidden_size, num_layers;
    bool bias, batch_first, bidirectional;
    float dropout; /* on the outputs of every layer but the last, in training mode */
} bk_rnn_config;
/* torch's defaults: one layer, biases, (T, B, input_size), one direction, no dropout */
#define BK_RNN_DEFAULTS(mode_, input_size_, hidden_size_) \
    ((bk_rnn_config){(mode_), (input_size_), (hidden_size_), 1, true, false, false, 0.0f})
/* nn.RNN / nn.LSTM / nn.GRU: for layer k and direction suffix s ("" or "_reverse"), the
 * parameters weight_ih_l{k}{s} (G H, layer input: input_size, then D H), weight_hh_l{k}{s}
 * (G H, H), bias_ih_l{k}{s}, bias_hh_l{k}{s}, in torch's order and init (as the cells).
 * D = 2 with bidirectional, else 1. bk_forward(m, x) runs bk_rnn_forward from zero states
 * and returns the output. */
bk_module *bk_nn_rnn(bk_rnn_config cfg);
/* The layer's forward: x (T, B, input_size), (B, T, input_size) with batch_first, or
 * unbatched (T, input_size); h0 and c0 (LSTM only) (num_layers D, B, H) or unbatched
 * (num_layers D, H), NULL for zeros. lengths (B entries, each in [1, T]; NULL: all T) gives
 * each sequence's length, as pack_padded_sequence(enforce_sorted=False): its outputs past
 * it are 0 and its final states are those of its last valid step (the reverse direction
 * starts there). Returns the output (T, B, D H) or (B, T, D H) (the last layer's h at
 * every step, directions concatenated; T steps, where torch's pad_packed_sequence gives
 * max(lengths) unless total_length=T); *h_n and *c_n (if not NULL) get the final states
 * (num_layers D, B, H), c_n NULL but for an LSTM. Errors name the layer and the shapes. */
bk_tensor *bk_rnn_forward(bk_module *m, bk_tensor *x, bk_tensor *h0, bk_tensor *c0, const int64_t *lengths,
                          bk_tensor **h_n, bk_tensor **c_n);

#endif /* BRICK_PART_NN_H */
