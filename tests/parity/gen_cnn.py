#!/usr/bin/python3
"""gen_cnn.py - PyTorch references for the CNN layers, blocks and models (tests/test_parity_cnn.c).

Usage:  /usr/bin/python3 tests/parity/gen_cnn.py --out build/parity --seed 123

Writes into --out, next to gen_reference.py's files, for every case (all names start
with "cnn_"):

  <case>.safetensors      the module's state_dict() under PyTorch's names, as it was
                          BEFORE any forward pass (batch norm's running statistics change
                          during training passes). num_batches_tracked, an int64 in torch,
                          is stored as float32 (brick keeps it as a float32 scalar).
  <case>.ref.safetensors  "warmup.<i>" (inputs of the training passes run before the
                          checked one, no backward), "input", "output", "upstream",
                          "input.grad", "grad.<param>" for every named parameter, and
                          "state.<buffer>" for every buffer after all passes (the running
                          statistics after 1 + warmup training passes, or unchanged in
                          eval mode). Metadata: case, mode ("train"/"eval"), warmup, exact
                          ("1": compare bit for bit), seed, case_seed, torch, param_names,
                          state_names, buffer_names, f32err.<tensor>, redraws.
  cnn_op_<name>.ref.safetensors  functional ops (GELU, exact and tanh form), in the
                          op-case format of gen_reference.py.

Cases (CASES below; tests/test_parity_cnn.c has the same table): Conv2d with padding,
stride 2, groups 2, dilation 2, no bias, mixed per-dim settings with groups 3, depthwise,
1x1; Conv1d, ConvTranspose1d and ConvTranspose2d (stride, padding, output_padding,
dilation, groups); Upsample (nearest and bilinear, by size or factor, align_corners);
MaxPool2d and AvgPool2d (k3 s2 p1, k2, k3 s1 p1; rectangular, dilated, ceil_mode,
count_include_pad=False), MaxPool1d and AvgPool1d; AdaptiveAvgPool2d (7 -> 3, -> 1,
7x5 -> 3x2, 3 -> 5x4); BatchNorm1d on (N, C) and (N, C, L), BatchNorm2d, and one at a
realistic size (16, 3, 28, 28), BatchNorm with affine=False, track_running_stats=False and
momentum=None; GroupNorm, InstanceNorm2d (plain, and affine with running statistics);
LayerNorm over 1 and 2 dims, over 64 features of 4096 rows and without affine; GELU; Softmax / LogSoftmax (dim 1, -1, over channels of a 4-d input); Dropout(0) in
training and Dropout(0.5) in eval (bit for bit); D2L's Residual (with and without the 1x1
conv, strides 2) and Inception; the zoo's lenet, googlenet and resnet:width=8 for
(1, 28, 28) inputs. Where the mode matters, train mode runs two warm-up training passes
first, so the running statistics are checked after three.

The loss is L = (output * upstream).sum() with a random upstream. Batch-norm and
layer-norm weights and biases, and batch norm's running statistics, are randomised (not
torch's 1/0 defaults) so that they matter. Modules whose result depends on the mode
(batch norm, dropout and what contains them) have a _train and an _eval case.

Kinks. ReLU and max pooling are not differentiable where a ReLU input is 0 or where two
values of a pooling window tie; an input that lands within rounding error of such a point
can be decided differently by brick's float32 and torch's float32, which changes a
gradient by O(1), not by rounding. So each input is checked before use: the case is run
in float32 and float64 with every F.relu and F.max_pool2d call recorded, and an input is
drawn again (metadata "redraws") if some ReLU input has |x64| <= MARGIN * max|x32 - x64|
(+ 1e-9 of the tensor's RMS), or some pooling window's float64 maximum is that close to
the largest other value in the window. Exact ties are fine: they are copies of one value
(ReLU's zeros, or a value that an earlier overlapping max pool repeated), so both libraries
see the same tie and take the first. MARGIN = 5 times torch's largest error on the tensor
leaves room for brick's error at the one element that matters (typically far below the
tensor's largest). GoogLeNet's four max pools over ~25k windows still reject ~3 of 4
draws at batch 2, so its batch is 1.

The float64 rerun gives "f32err.<tensor>" = max |torch float32 - torch float64|, and hooks
give "f32noise.grad.<param>" = 2^-24 times the largest sum of |terms| in that parameter's
gradient; tests/test_parity_cnn.c explains how each widens its tolerance.
"""
import copy
import os
import sys

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from brick_torch import (MAX_DRAWS, Inception, Recorder, Residual, case_seed, check_reload,  # noqa: E402
                         f32_errors, generator_args, kinks_ok, report, write_case, write_op_cases)



# D2L's blocks (d2l.ai, PyTorch edition), children named as in brick: Residual and Inception
# of brick_torch.py.

# ---------------------------------------------------------------------------------------
# The zoo's models (src/models/zoo.c), same nesting so that the state-dict names match
# ---------------------------------------------------------------------------------------

def lenet(c=1, classes=10):
    return nn.Sequential(nn.Conv2d(c, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2, 2),
                         nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2, 2), nn.Flatten(),
                         nn.Linear(16 * 5 * 5, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(),
                         nn.Linear(84, classes))


def resnet_stage(i, o, first):
    return nn.Sequential(Residual(i, o) if first else Residual(i, o, use_1x1conv=True, strides=2),
                         Residual(o, o))


def resnet(w, c=1, classes=10):
    return nn.Sequential(nn.Sequential(nn.Conv2d(c, w, 3, padding=1), nn.BatchNorm2d(w), nn.ReLU()),
                         resnet_stage(w, w, True), resnet_stage(w, 2 * w, False),
                         resnet_stage(2 * w, 4 * w, False), resnet_stage(4 * w, 8 * w, False),
                         nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten(), nn.Linear(8 * w, classes))


def googlenet(c=1, classes=10):
    b1 = nn.Sequential(nn.Conv2d(c, 32, 3, padding=1), nn.ReLU(),
                       nn.MaxPool2d(3, stride=2, padding=1))
    b2 = nn.Sequential(Inception(32, 16, (24, 32), (4, 8), 8),
                       Inception(64, 32, (32, 48), (8, 24), 16),
                       nn.MaxPool2d(3, stride=2, padding=1))
    b3 = nn.Sequential(Inception(120, 48, (24, 52), (4, 12), 16),
                       Inception(128, 64, (40, 80), (8, 32), 32),
                       nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten())
    return nn.Sequential(b1, b2, b3, nn.Linear(208, classes))


# ---------------------------------------------------------------------------------------
# Cases: name -> (builder, input maker, modes, warmup passes in train mode, exact)
# tests/test_parity_cnn.c has the same table (with the mode suffixes spelled out).
# ---------------------------------------------------------------------------------------

def randn(*s, scale=1.0, shift=0.0):
    return lambda: torch.randn(*s) * scale + shift


def rand(*s):
    return lambda: torch.rand(*s)


ONE = ("train",)       # the module does the same in both modes: one case
BOTH = ("train", "eval")

CASES = {
    # nn.Conv2d
    "conv_pad": (lambda: nn.Conv2d(3, 6, 3, padding=1), randn(2, 3, 8, 8), ONE, 0, False),
    "conv_stride2": (lambda: nn.Conv2d(4, 6, 3, stride=2, padding=1), randn(2, 4, 9, 10), ONE, 0, False),
    "conv_groups2": (lambda: nn.Conv2d(4, 6, 3, padding=1, groups=2), randn(2, 4, 6, 7), ONE, 0, False),
    "conv_dilation2": (lambda: nn.Conv2d(3, 5, 3, padding=2, dilation=2), randn(2, 3, 9, 8), ONE, 0,
                       False),
    "conv_nobias": (lambda: nn.Conv2d(3, 4, (2, 3), stride=(2, 1), padding=(1, 0), bias=False),
                    randn(2, 3, 7, 8), ONE, 0, False),
    "conv_mixed": (lambda: nn.Conv2d(6, 9, (3, 2), stride=(1, 2), padding=(2, 1), dilation=(1, 3),
                                     groups=3), randn(3, 6, 8, 10), ONE, 0, False),
    "conv_depthwise": (lambda: nn.Conv2d(4, 8, 3, stride=2, groups=4, bias=False), randn(2, 4, 9, 9),
                       ONE, 0, False),
    "conv_1x1": (lambda: nn.Conv2d(5, 3, 1), randn(2, 5, 4, 4), ONE, 0, False),
    # nn.Conv1d, nn.ConvTranspose1d / 2d
    "conv1d": (lambda: nn.Conv1d(3, 5, 3, padding=1), randn(2, 3, 11), ONE, 0, False),
    "conv1d_mixed": (lambda: nn.Conv1d(4, 6, 3, stride=2, padding=2, dilation=2, groups=2, bias=False),
                     randn(3, 4, 13), ONE, 0, False),
    "convt2d": (lambda: nn.ConvTranspose2d(3, 4, 3, stride=2, padding=1, output_padding=1), randn(2, 3, 5, 6),
                ONE, 0, False),
    "convt2d_k4s2": (lambda: nn.ConvTranspose2d(8, 4, 4, stride=2, padding=1), randn(2, 8, 7, 7), ONE, 0,
                     False),
    "convt2d_mixed": (lambda: nn.ConvTranspose2d(4, 6, (3, 2), stride=(1, 2), padding=(2, 0),
                                                 output_padding=(0, 1), groups=2, bias=False, dilation=(2, 1)),
                      randn(2, 4, 6, 5), ONE, 0, False),
    "convt1d": (lambda: nn.ConvTranspose1d(4, 6, 3, stride=3, padding=1, output_padding=2, groups=2),
                randn(2, 4, 7), ONE, 0, False),
    "convt1d_dilation3": (lambda: nn.ConvTranspose1d(3, 2, 2, output_padding=1, dilation=3), randn(2, 3, 5),
                          ONE, 0, False),
    # pooling
    "maxpool_k3s2p1": (lambda: nn.MaxPool2d(3, 2, 1), randn(2, 3, 9, 9), ONE, 0, False),
    "maxpool_k2": (lambda: nn.MaxPool2d(2), randn(2, 3, 8, 7), ONE, 0, False),
    "maxpool_k3s1p1": (lambda: nn.MaxPool2d(3, 1, 1), randn(2, 2, 5, 6), ONE, 0, False),
    "avgpool_k3s2p1": (lambda: nn.AvgPool2d(3, 2, 1), randn(2, 3, 9, 9), ONE, 0, False),
    "avgpool_k2": (lambda: nn.AvgPool2d(2), randn(2, 3, 8, 7), ONE, 0, False),
    "avgpool_k3s1p1": (lambda: nn.AvgPool2d(3, 1, 1), randn(2, 2, 5, 6), ONE, 0, False),
    # rectangular kernels, dilation, ceil_mode, count_include_pad; MaxPool1d, AvgPool1d
    "maxpool_rect_dil_ceil": (lambda: nn.MaxPool2d((3, 2), stride=(2, 1), padding=1, dilation=2, ceil_mode=True),
                              randn(2, 3, 9, 8), ONE, 0, False),
    "maxpool_ceil": (lambda: nn.MaxPool2d(3, 2, ceil_mode=True), randn(2, 2, 8, 8), ONE, 0, False),
    "avgpool_rect_ceil_nopad": (lambda: nn.AvgPool2d((3, 2), stride=(2, 1), padding=1, ceil_mode=True,
                                                     count_include_pad=False), randn(2, 3, 8, 7), ONE, 0, False),
    "avgpool_ceil_pad": (lambda: nn.AvgPool2d(3, 2, 1, ceil_mode=True), randn(2, 2, 8, 8), ONE, 0, False),
    "maxpool1d": (lambda: nn.MaxPool1d(3, 2, 1, dilation=2, ceil_mode=True), randn(2, 3, 11), ONE, 0, False),
    "maxpool1d_k2": (lambda: nn.MaxPool1d(2), randn(2, 4, 9), ONE, 0, False),
    "avgpool1d": (lambda: nn.AvgPool1d(3, 2, 1, ceil_mode=True, count_include_pad=False), randn(2, 3, 10), ONE,
                  0, False),
    "adaptive_7to3": (lambda: nn.AdaptiveAvgPool2d((3, 3)), randn(2, 3, 7, 7), ONE, 0, False),
    "adaptive_to1": (lambda: nn.AdaptiveAvgPool2d((1, 1)), randn(2, 4, 5, 6), ONE, 0, False),
    "adaptive_7x5to3x2": (lambda: nn.AdaptiveAvgPool2d((3, 2)), randn(2, 3, 7, 5), ONE, 0, False),
    "adaptive_up": (lambda: nn.AdaptiveAvgPool2d((5, 4)), randn(2, 2, 3, 3), ONE, 0, False),
    # nn.Upsample (F.interpolate)
    "upsample_nearest2": (lambda: nn.Upsample(scale_factor=2), randn(2, 3, 4, 5), ONE, 0, False),
    "upsample_nearest_size": (lambda: nn.Upsample(size=(7, 4)), randn(2, 2, 3, 5), ONE, 0, False),
    "upsample_nearest_1p7": (lambda: nn.Upsample(scale_factor=1.7), randn(1, 2, 5, 6), ONE, 0, False),
    "upsample_bilinear2": (lambda: nn.Upsample(scale_factor=2, mode="bilinear"), randn(2, 3, 4, 5), ONE, 0,
                           False),
    "upsample_bilinear_ac": (lambda: nn.Upsample(size=(5, 9), mode="bilinear", align_corners=True),
                             randn(2, 2, 3, 4), ONE, 0, False),
    "upsample_bilinear_mixed": (lambda: nn.Upsample(scale_factor=(0.6, 1.5), mode="bilinear"),
                                randn(2, 2, 7, 5), ONE, 0, False),
    "upsample_bilinear_down_ac": (lambda: nn.Upsample(size=(3, 4), mode="bilinear", align_corners=True),
                                  randn(1, 3, 7, 9), ONE, 0, False),
    # normalisation
    "bn1d_2d": (lambda: nn.BatchNorm1d(5), randn(8, 5, scale=2.0, shift=1.0), BOTH, 2, False),
    "bn1d_3d": (lambda: nn.BatchNorm1d(4), randn(3, 4, 6, scale=1.5, shift=-0.5), BOTH, 2, False),
    "bn2d": (lambda: nn.BatchNorm2d(3), randn(4, 3, 5, 5, scale=0.7, shift=0.3), BOTH, 2, False),
    # realistic sizes: sums over N*H*W = 12544 and over 4096 rows of 64
    "bn2d_big": (lambda: nn.BatchNorm2d(3), randn(16, 3, 28, 28, scale=0.7, shift=0.3), BOTH, 2, False),
    "layernorm_big": (lambda: nn.LayerNorm(64), randn(64, 64, 64, scale=2.0, shift=1.0), ONE, 0, False),
    "layernorm_1": (lambda: nn.LayerNorm(8), randn(3, 4, 8, scale=2.0, shift=1.0), ONE, 0, False),
    "layernorm_2": (lambda: nn.LayerNorm((4, 6)), randn(2, 3, 4, 6), ONE, 0, False),
    "layernorm_noaffine": (lambda: nn.LayerNorm((4, 6), elementwise_affine=False), randn(2, 3, 4, 6, scale=2.0),
                           ONE, 0, False),
    # BatchNorm's options: affine=False, track_running_stats=False (batch statistics in eval
    # too), momentum=None (cumulative average from a random num_batches_tracked)
    "bn2d_noaffine": (lambda: nn.BatchNorm2d(3, affine=False), randn(4, 3, 5, 5, scale=0.7, shift=0.3), BOTH, 2,
                      False),
    "bn1d_notrack": (lambda: nn.BatchNorm1d(5, track_running_stats=False), randn(8, 5, scale=2.0, shift=1.0),
                     BOTH, 2, False),
    "bn2d_cma": (lambda: nn.BatchNorm2d(3, momentum=None), randn(4, 3, 5, 5, scale=0.7, shift=0.3), BOTH, 2,
                 False),
    # GroupNorm, InstanceNorm2d
    "groupnorm": (lambda: nn.GroupNorm(2, 6), randn(3, 6, 4, 5, scale=1.5, shift=0.5), ONE, 0, False),
    "groupnorm_1group_2d": (lambda: nn.GroupNorm(1, 8), randn(5, 8, scale=2.0, shift=-1.0), ONE, 0, False),
    "groupnorm_noaffine_3d": (lambda: nn.GroupNorm(3, 3, affine=False), randn(4, 3, 7), ONE, 0, False),
    "instnorm": (lambda: nn.InstanceNorm2d(3), randn(2, 3, 5, 6, scale=1.5, shift=0.5), ONE, 0, False),
    "instnorm_affine_track": (lambda: nn.InstanceNorm2d(4, affine=True, track_running_stats=True),
                              randn(3, 4, 5, 4, scale=1.5, shift=0.5), BOTH, 2, False),
    # activations, softmax, dropout
    "gelu": (lambda: nn.GELU(), randn(3, 17, scale=3.0), ONE, 0, False),
    "softmax_dim1": (lambda: nn.Softmax(dim=1), randn(4, 7, scale=2.0), ONE, 0, False),
    "softmax_last": (lambda: nn.Softmax(dim=-1), randn(2, 3, 5, scale=2.0), ONE, 0, False),
    "logsoftmax_dim1": (lambda: nn.LogSoftmax(dim=1), randn(4, 7, scale=2.0), ONE, 0, False),
    "logsoftmax_4d": (lambda: nn.LogSoftmax(dim=1), randn(2, 5, 3, 3, scale=2.0), ONE, 0, False),
    "dropout_p0": (lambda: nn.Dropout(p=0.0), randn(3, 4, 5), ("train",), 0, True),
    "dropout_p05": (lambda: nn.Dropout(p=0.5), randn(3, 4, 5), ("eval",), 0, True),
    # D2L blocks
    "residual": (lambda: Residual(3, 3), randn(2, 3, 6, 6), BOTH, 2, False),
    "residual_1x1": (lambda: Residual(3, 6, use_1x1conv=True, strides=2), randn(4, 3, 7, 7), BOTH, 2,
                     False),
    "inception": (lambda: Inception(5, 2, (3, 4), (2, 3), 2), randn(2, 5, 6, 6), ONE, 0, False),
    # whole models, as bk_model_build("lenet" / "resnet:width=8" / "googlenet", (1, 28, 28), 10)
    "lenet": (lambda: lenet(), rand(2, 1, 28, 28), ("eval",), 0, False),
    "googlenet": (lambda: googlenet(), rand(1, 1, 28, 28), ("eval",), 0, False),
    "resnet": (lambda: resnet(8), randn(2, 1, 28, 28), BOTH, 2, False),
}


def gelu_tanh_input():
    return torch.randn(4, 9) * 3


OP_CASES = {
    "cnn_op_gelu": ({"x": gelu_tanh_input}, lambda x: F.gelu(x)),
    "cnn_op_gelu_tanh": ({"x": gelu_tanh_input}, lambda x: F.gelu(x, approximate="tanh")),
}


def case_names():
    """[(full case name, base name, mode)] in table order."""
    out = []
    for base, (_, _, modes, _, _) in CASES.items():
        for mode in modes:
            suffix = "" if len(modes) == 1 else "_" + mode
            out.append(("cnn_" + base + suffix, base, mode))
    return out


# ---------------------------------------------------------------------------------------
# Generation
# ---------------------------------------------------------------------------------------

def randomize(model, g_scale=0.5):
    """Batch norm / layer norm: random affine parameters and running statistics."""
    with torch.no_grad():
        for m in model.modules():
            norms = (nn.BatchNorm1d, nn.BatchNorm2d, nn.LayerNorm, nn.GroupNorm, nn.InstanceNorm2d)
            if isinstance(m, norms) and m.weight is not None:
                m.weight.copy_(1 + g_scale * torch.randn(m.weight.shape))
                m.bias.copy_(g_scale * torch.randn(m.bias.shape))
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d, nn.InstanceNorm2d)) and m.running_mean is not None:
                m.running_mean.copy_(0.5 * torch.randn(m.running_mean.shape))
                m.running_var.copy_(0.5 + torch.rand(m.running_var.shape))
                m.num_batches_tracked.fill_(int(torch.randint(1, 100, ()).item()))


def noise_hooks(model, noise):
    """Hooks that fill noise["grad.<param>"] for the weight and bias of every convolution
    (1d, 2d, transposed), Linear, BatchNorm and LayerNorm with S = 2^-24 max |terms|: the
    largest sum of |terms| that one element of that gradient adds up over the batch (and
    positions): sum |dL/dy| for a bias, sum |dL/dy| |x| for a convolution / Linear weight
    (the gradient of sum(|dL/dy| * layer(|x|)) with respect to the weight, since the layer
    is linear in it), sum |dL/dy| |xhat| for a norm weight. That is the size of float32 rounding noise in the gradient, and it matters
    where the sum cancels: a Conv2d feeding a train-mode batch norm has a bias gradient of
    exactly 0 and a weight gradient that nearly cancels (the norm subtracts the batch
    mean), and the parameters upstream of a train-mode batch norm inherit the noise of its
    backward. Both libraries return rounding noise of size ~S there, two independent
    samples, of which E (torch's one sample) says little. Returns the hook handles."""
    u = 2.0 ** -24
    convs = (nn.Conv1d, nn.Conv2d, nn.ConvTranspose1d, nn.ConvTranspose2d)
    kinds = convs + (nn.Linear, nn.BatchNorm1d, nn.BatchNorm2d, nn.LayerNorm)
    handles = []
    for mname, m in model.named_modules():
        if not isinstance(m, kinds) or m.weight is None:
            continue
        prefix = "grad." + (mname + "." if mname else "")

        def fwd(mod, inp, out, prefix=prefix):
            if not out.requires_grad:
                return
            x = inp[0].detach().double()
            if isinstance(mod, (nn.BatchNorm1d, nn.BatchNorm2d)):  # stats over all but dim 1
                dims = [d for d in range(x.dim()) if d != 1]
                view = [1] * x.dim()
                view[1] = -1
                if mod.training or mod.running_mean is None:  # batch statistics
                    mean, var = x.mean(dim=dims), x.var(dim=dims, unbiased=False)
                else:
                    mean, var = mod.running_mean.double(), mod.running_var.double()
                xhat = ((x - mean.reshape(view)) / (var.reshape(view) + mod.eps).sqrt()).abs()
            elif isinstance(mod, nn.LayerNorm):  # stats over the trailing dims
                nd = len(mod.normalized_shape)
                dims = list(range(x.dim() - nd, x.dim()))
                mean, var = x.mean(dim=dims, keepdim=True), x.var(dim=dims, unbiased=False, keepdim=True)
                xhat = ((x - mean) / (var + mod.eps).sqrt()).abs()
                dims = list(range(x.dim() - nd))  # the gradient sums over the leading dims
            x = x.abs()

            def save(g):
                g = g.detach().double().abs()
                if isinstance(mod, convs):
                    w = mod.weight.detach().double().requires_grad_()
                    with torch.enable_grad():
                        y = (mod._conv_forward(x, w, None) if isinstance(mod, (nn.Conv1d, nn.Conv2d)) else
                             (F.conv_transpose1d if isinstance(mod, nn.ConvTranspose1d) else F.conv_transpose2d)(
                                 x, w, None, mod.stride, mod.padding, mod.output_padding, mod.groups,
                                 mod.dilation))
                        terms, = torch.autograd.grad((y * g).sum(), w)
                    bias_terms = g.sum(dim=[d for d in range(g.dim()) if d != 1])
                elif isinstance(mod, nn.Linear):
                    terms = g.reshape(-1, g.shape[-1]).t() @ x.reshape(-1, x.shape[-1])
                    bias_terms = g.reshape(-1, g.shape[-1]).sum(dim=0)
                else:
                    terms, bias_terms = (g * xhat).sum(dim=dims), g.sum(dim=dims)
                noise[prefix + "weight"] = u * terms.max().item()
                if mod.bias is not None:
                    noise[prefix + "bias"] = u * bias_terms.max().item()
            out.register_hook(save)
        handles.append(m.register_forward_hook(fwd))
    return handles


def run(model, warmups, X, upstream):
    """The warm-up passes (no backward), then output and L = (output * upstream).sum()."""
    with torch.no_grad():
        for w in warmups:
            model(w)
    out = model(X)
    (out * upstream).sum().backward()
    return out


def make_case(name, base, mode, seed):
    builder, make_input, _, warmup, exact = CASES[base]
    cs = case_seed(seed, name)
    torch.manual_seed(cs)
    model = builder().float()
    randomize(model)
    model.train(mode == "train")
    n_warm = warmup if mode == "train" else 0
    warmups = [make_input() for _ in range(n_warm)]
    redraws = 0
    while True:
        X = make_input()
        # Train-mode outputs do not depend on the running statistics, so the warm-ups
        # can be left out of this check (they have no backward).
        with Recorder() as r32:
            with torch.no_grad():
                copy.deepcopy(model)(X)
        with Recorder() as r64:
            with torch.no_grad():
                copy.deepcopy(model).double()(X.double())
        if kinks_ok(r32.calls, r64.calls):
            break
        redraws += 1
        assert redraws < MAX_DRAWS, f"{name}: no input away from the kinks in {MAX_DRAWS} draws"
    with torch.no_grad():
        out_shape = copy.deepcopy(model)(X).shape
    upstream = torch.randn(out_shape)

    init = copy.deepcopy(model)  # the state before any pass, for the file and float64
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    X = X.clone().requires_grad_(True)
    noise = {}
    handles = noise_hooks(model, noise)
    output = run(model, warmups, X, upstream)
    for h in handles:
        h.remove()

    params = list(model.named_parameters())
    buffers = list(model.named_buffers())
    ref = {}
    for i, w in enumerate(warmups):
        ref["warmup.%d" % i] = w
    ref.update({"input": X, "output": output, "upstream": upstream, "input.grad": X.grad})
    for pname, p in params:
        assert p.grad is not None, f"{name}: {pname} got no gradient"
        ref["grad." + pname] = p.grad
    for bname, b in buffers:
        ref["state." + bname] = b
    meta = {"case": name, "kind": "module", "mode": mode, "warmup": str(n_warm),
            "exact": "1" if exact else "0", "seed": str(seed), "case_seed": str(cs),
            "torch": torch.__version__, "redraws": str(redraws),
            "param_names": ",".join(n for n, _ in params),
            "state_names": ",".join(state.keys()),
            "buffer_names": ",".join(n for n, _ in buffers)}

    # float64: the same float32 weights, inputs and upstream
    model64 = copy.deepcopy(init).double()
    X64 = X.detach().double().requires_grad_(True)
    out64 = run(model64, [w.double() for w in warmups], X64, upstream.double())
    exact64 = {"output": out64, "input.grad": X64.grad}
    for pname, p in model64.named_parameters():
        exact64["grad." + pname] = p.grad
    for bname, b in model64.named_buffers():
        exact64["state." + bname] = b
    meta.update(f32_errors(ref, exact64))
    meta.update({"f32noise." + k: "%.3e" % v for k, v in noise.items()})
    return init, state, ref, meta


def main():
    args = generator_args(__doc__)
    count = redraws = 0
    for name, base, mode in case_names():
        if not args.wanted(name):
            continue
        init, state, ref, meta = make_case(name, base, mode, args.seed)
        wpath = write_case(args.out, name, ref, meta, state)
        # The weight file alone must reproduce the (first-pass) output: load it strictly
        # into a fresh instance and compare with the saved model on the same input.
        fresh = CASES[base][0]()
        fresh.train(mode == "train")
        X = ref["input"].detach()
        with torch.no_grad():
            want = init(X)
        check_reload(name, wpath, fresh, lambda m: m(X), want)
        count += 1
        redraws += int(meta["redraws"])
    count += write_op_cases(args, OP_CASES)
    return report(args, "gen_cnn", count, f" ({redraws} inputs redrawn near kinks)")


if __name__ == "__main__":
    sys.exit(main())
