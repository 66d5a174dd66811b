#!/usr/bin/python3
"""gen_ops.py - PyTorch references for the activations and the indexing / reduction ops
(tests/test_parity_ops.c).

Usage:  /usr/bin/python3 tests/parity/gen_ops.py --out build/parity --seed 123

Writes <case>.ref.safetensors into --out for every case of CASES (names start with "ops_"):
the differentiable inputs, the constant ones (indices, masks and conditions, as float32
holding integers: brick's index tensors), "output", "upstream" and "<input>.grad" for each
differentiable input. Metadata as gen_reference.py's op cases ("inputs"), plus "consts"
(the constant inputs' names) and f32err.<tensor>, torch's own float32 error against a
float64 run of the same expression (the C test widens its tolerance by twice that).

Inputs are scaled so that every branch is taken: softplus crosses its threshold, the hard
activations saturate on both sides, clamp cuts on both sides. Kinks (leaky_relu, prelu,
clamp, hardswish, maximum) are measure-zero for randn inputs; a tie in maximum / topk /
min would need two equal random floats.
"""
import os
import sys

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from brick_torch import (backward_case, case_seed, f32_errors, generator_args, report,  # noqa: E402
                         write_case)


def randn(*s, scale=1.0):
    return lambda: torch.randn(*s) * scale


def index(n, *s):  # integers in [0, n) as float32, as brick takes indices
    return lambda: torch.randint(0, n, s).float()


def mask(*s):  # 0 or 1
    return lambda: torch.randint(0, 2, s).float()


L = torch.Tensor.long

# name: ({differentiable input: maker}, {constant input: maker}, fn(**inputs) -> output).
# tests/test_parity_ops.c builds the same expressions with brick; keep the two in step.
CASES = {
    "ops_leaky_relu": ({"x": randn(4, 7, scale=3)}, {}, lambda x: F.leaky_relu(x, 0.1)),
    "ops_elu": ({"x": randn(4, 7, scale=3)}, {}, lambda x: F.elu(x, 0.7)),
    "ops_softplus": ({"x": randn(4, 7, scale=6)}, {}, lambda x: F.softplus(x, beta=1.5, threshold=10)),
    "ops_softplus_default": ({"x": randn(4, 7, scale=8)}, {}, lambda x: F.softplus(x)),
    "ops_mish": ({"x": randn(4, 7, scale=3)}, {}, lambda x: F.mish(x)),
    "ops_hardswish": ({"x": randn(4, 7, scale=4)}, {}, lambda x: F.hardswish(x)),
    "ops_hardsigmoid": ({"x": randn(4, 7, scale=4)}, {}, lambda x: F.hardsigmoid(x)),
    "ops_silu": ({"x": randn(4, 7, scale=3)}, {}, lambda x: F.silu(x)),
    "ops_prelu": ({"x": randn(2, 3, 4, 5), "w": lambda: torch.rand(3)}, {}, lambda x, w: F.prelu(x, w)),
    "ops_softmax2d": ({"x": randn(2, 3, 4, 5, scale=2)}, {}, lambda x: nn.Softmax2d()(x)),
    "ops_clamp": ({"x": randn(4, 7)}, {}, lambda x: torch.clamp(x, -0.5, 0.8)),
    "ops_maximum": ({"a": randn(3, 1, 4), "b": randn(2, 4)}, {}, lambda a, b: torch.maximum(a, b)),
    "ops_minimum": ({"a": randn(3, 1, 4), "b": randn(2, 4)}, {}, lambda a, b: torch.minimum(a, b)),
    "ops_gather": ({"x": randn(3, 5)}, {"i": index(5, 3, 4)}, lambda x, i: torch.gather(x, 1, L(i))),
    "ops_gather_dim0": ({"x": randn(4, 3, 2)}, {"i": index(4, 6, 2, 2)}, lambda x, i: torch.gather(x, 0, L(i))),
    "ops_scatter_add": ({"x": randn(3, 5), "src": randn(3, 4)}, {"i": index(5, 3, 4)},
                        lambda x, src, i: torch.scatter_add(x, 1, L(i), src)),
    "ops_index_select": ({"x": randn(4, 3, 2)}, {"i": index(3, 5)},
                         lambda x, i: torch.index_select(x, 1, L(i))),
    "ops_where": ({"a": randn(3, 4), "b": randn(4)}, {"c": mask(3, 1)},
                  lambda a, b, c: torch.where(c != 0, a, b)),
    "ops_masked_fill": ({"x": randn(2, 3, 4)}, {"m": mask(3, 1)},
                        lambda x, m: x.masked_fill(m != 0, -1.5)),
    "ops_cumsum": ({"x": randn(3, 4, 5)}, {}, lambda x: torch.cumsum(x, 1)),
    "ops_logsumexp": ({"x": randn(3, 4, 5, scale=4)}, {}, lambda x: torch.logsumexp(x, -1, keepdim=True)),
    "ops_norm2_dim": ({"x": randn(3, 4, 5)}, {}, lambda x: torch.norm(x, 2, 1)),
    "ops_norm1_all": ({"x": randn(3, 4)}, {}, lambda x: torch.norm(x, 1)),
    "ops_norm3_keepdim": ({"x": randn(3, 4)}, {}, lambda x: torch.norm(x, 3, 0, keepdim=True)),
    "ops_min_dim": ({"x": randn(3, 4, 5)}, {}, lambda x: torch.min(x, 1).values),
    "ops_argmax_gather": ({"x": randn(3, 6)}, {}, lambda x: torch.gather(x, 1, x.argmax(1, keepdim=True))),
    "ops_topk": ({"x": randn(3, 6)}, {}, lambda x: torch.topk(x, 3, -1).values),
    "ops_topk_smallest": ({"x": randn(5, 3)}, {}, lambda x: torch.topk(x, 2, 0, largest=False).values),
    "ops_stack": ({"a": randn(2, 3), "b": randn(2, 3), "c": randn(2, 3)}, {},
                  lambda a, b, c: torch.stack([a, b, c], 1)),
    "ops_split": ({"x": randn(7, 3)}, {}, lambda x: torch.cat(list(reversed(torch.split(x, 3, 0))), 0)),
    "ops_chunk": ({"x": randn(2, 7)}, {}, lambda x: torch.cat(list(reversed(torch.chunk(x, 3, 1))), 1)),
}


def make_case(name, spec, seed):
    torch.manual_seed(case_seed(seed, name))
    makers, const_makers, fn = spec
    inputs = {k: make().float().requires_grad_(True) for k, make in makers.items()}
    consts = {k: make().float() for k, make in const_makers.items()}
    ref, meta, upstream = backward_case(name, "op", seed, inputs, fn(**inputs, **consts))
    ref.update(consts)
    meta["consts"] = ",".join(consts.keys())
    inputs64 = {k: t.detach().double().requires_grad_(True) for k, t in inputs.items()}
    out64 = fn(**inputs64, **{k: t.double() for k, t in consts.items()})
    (out64 if upstream is None else (out64 * upstream.double()).sum()).backward()
    exact = {"output": out64}
    exact.update({k + ".grad": t.grad for k, t in inputs64.items()})
    meta.update(f32_errors(ref, exact))
    return ref, meta


def main():
    args = generator_args(__doc__)
    count = 0
    for name, spec in CASES.items():
        if args.wanted(name):
            ref, meta = make_case(name, spec, args.seed)
            write_case(args.out, name, ref, meta)
            count += 1
    return report(args, "gen_ops", count)


if __name__ == "__main__":
    sys.exit(main())
