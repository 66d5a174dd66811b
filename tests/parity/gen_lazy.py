#!/usr/bin/python3
"""gen_lazy.py - PyTorch reference data for tests/test_parity_lazy.c.

Usage:  /usr/bin/python3 tests/parity/gen_lazy.py --out build/parity --seed 123

Builds nn.LazyLinear, nn.LazyConv2d and nn.LazyBatchNorm1d/2d (D2L 5.3, deferred
initialisation), prints them (repr_lazy), runs a first forward on "first_input" (which
makes the parameters from its shape; its batch size differs from the later input's), prints
them again (repr: torch turns them into Linear, Conv2d, BatchNorm*), jitters every
parameter, and runs one forward and backward on "input" (in train or eval mode), in
float32, with fresh random sizes drawn from the case's seed.

For every case, as gen_rnn.py (whose conventions the C side shares):
  lazy_<case>.safetensors      the state_dict after the first forward, PyTorch's names.
  lazy_<case>.ref.safetensors  first_input, input, output, output.upstream, input.grad,
                               grad.<param>; metadata: kind, cfg.* (the constructor
                               arguments), case, seed, torch, param_names, state_names,
                               buffer_names, repr_lazy, repr, f32err.<tensor>.
The loss is L = (output * upstream).sum().
"""
import copy
import os
import random
import sys
import warnings

import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import brick_torch  # noqa: E402
from brick_torch import check_reload, f32_errors, generator_args, report, write_case  # noqa: E402
from gen_transformer import run  # noqa: E402  (forward, loss with upstream, backward)

warnings.filterwarnings("ignore", message="Lazy modules are a new feature")


def linear_case(bias, rank):
    def build(rnd):
        I, O, B = rnd.randint(1, 12), rnd.randint(1, 9), rnd.randint(1, 5)
        lead = (B,) if rank == 2 else (B, rnd.randint(1, 4))
        m = nn.LazyLinear(O, bias=bias)
        cfg = {"out_features": O, "bias": int(bias)}
        return m, torch.randn(*lead[:-1], B + 1, I), torch.randn(*lead, I), cfg, "linear"
    return build


def conv_case(bias, stride, padding, groups, kernel):
    def build(rnd):
        C, O = groups * rnd.randint(1, 3), groups * rnd.randint(1, 3)
        N, H, W = rnd.randint(1, 3), rnd.randint(kernel[0], 8), rnd.randint(kernel[1], 8)
        m = nn.LazyConv2d(O, kernel, stride=stride, padding=padding, groups=groups, bias=bias)
        cfg = {"out_channels": O, "kh": kernel[0], "kw": kernel[1], "stride": stride, "padding": padding,
               "groups": groups, "bias": int(bias)}
        return m, torch.randn(N + 1, C, H, W), torch.randn(N, C, H, W), cfg, "conv2d"
    return build


def norm_case(dims, rank, affine, track, train):
    def build(rnd):
        C, N = rnd.randint(1, 6), rnd.randint(2, 5)
        rest = [rnd.randint(1, 4) for _ in range(rank - 2)]
        cls = nn.LazyBatchNorm1d if dims == 1 else nn.LazyBatchNorm2d
        m = cls(eps=1e-5, momentum=0.1, affine=affine, track_running_stats=track)
        cfg = {"ndim_expected": dims, "affine": int(affine), "track_running_stats": int(track),
               "train": int(train)}
        return m, torch.randn(N + 1, C, *rest) * 2 + 1, torch.randn(N, C, *rest), cfg, "batch_norm"
    return build


CASES = {
    "linear": linear_case(True, 2),
    "linear_3d_nobias": linear_case(False, 3),
    "conv2d": conv_case(True, 2, 1, 1, (3, 3)),
    "conv2d_groups_nobias": conv_case(False, 1, 0, 2, (3, 2)),
    "batch_norm1d": norm_case(1, 2, True, True, True),
    "batch_norm1d_3d_eval": norm_case(1, 3, True, True, False),
    "batch_norm2d": norm_case(2, 4, True, True, True),
    "batch_norm2d_noaffine": norm_case(2, 4, False, True, True),
}


def fwd(m, i, masks=None):
    return {"output": m(i["input"])}


def make_case(name, builder, seed):
    cs = brick_torch.case_seed(seed, "lazy_" + name)
    torch.manual_seed(cs)
    model, first, x, cfg, kind = builder(random.Random(cs))
    repr_lazy = repr(model)
    with torch.no_grad():
        model(first)  # makes the parameters (and, train mode, updates a norm's running statistics)
    model = model.float().train(bool(cfg.get("train", 1)))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}  # before the measured forward
    ins = {"input": x.clone().requires_grad_(True)}
    model64 = copy.deepcopy(model).double()
    outs, upstream = run(model, ins, {}, fwd)

    ref = {"first_input": first, "input": ins["input"], "output": outs["output"],
           "output.upstream": upstream["output"], "input.grad": ins["input"].grad}
    params = list(model.named_parameters())
    for pname, p in params:
        ref["grad." + pname] = p.grad

    ins64 = {"input": x.double().requires_grad_(True)}
    outs64, _ = run(model64, ins64, {}, fwd, upstream)
    exact = {"output": outs64["output"], "input.grad": ins64["input"].grad}
    exact.update({"grad." + n: p.grad for n, p in model64.named_parameters()})

    meta = {"case": name, "kind": kind, "seed": str(seed), "case_seed": str(cs), "torch": torch.__version__,
            "param_names": ",".join(n for n, _ in params), "state_names": ",".join(state.keys()),
            "buffer_names": ",".join(n for n, _ in model.named_buffers()),
            "repr_lazy": repr_lazy, "repr": repr(model)}
    meta.update({"cfg." + k: str(v) for k, v in cfg.items()})
    meta.update(f32_errors(ref, exact))
    return model, ref, meta, state, x


def main():
    args = generator_args(__doc__)
    count = 0
    for name, builder in CASES.items():
        if not args.wanted(name):
            continue
        model, ref, meta, state, x = make_case(name, builder, args.seed)
        wpath = write_case(args.out, "lazy_" + name, ref, meta, state)
        # The weight file alone reproduces the output in a fresh, materialised instance.
        cs = brick_torch.case_seed(args.seed, "lazy_" + name)
        torch.manual_seed(args.seed + 1)
        first = builder(random.Random(cs))[1]
        fresh = builder(random.Random(cs))[0]
        with torch.no_grad():
            fresh(first)
        fresh.train(model.training)
        check_reload(name, wpath, fresh, lambda m: m(x), ref["output"])
        count += 1
    return report(args, "gen_lazy", count)


if __name__ == "__main__":
    sys.exit(main())
