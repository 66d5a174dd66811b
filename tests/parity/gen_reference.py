#!/usr/bin/python3
"""gen_reference.py - PyTorch reference data for brick's parity test (tests/test_parity.c).

Usage:  /usr/bin/python3 tests/parity/gen_reference.py --out build/parity --seed 123

Builds the "layers and blocks" networks of D2L section 5.1 (and a few standalone op
expressions) with torch.nn in float32, runs one forward and one backward on fresh random
inputs, and writes for every case two safetensors files into --out:

  <case>.safetensors      the model's state_dict under PyTorch's own names ("0.weight",
                          "hidden.weight", "2.rand_weight", "0.net.2.weight", ...) and
                          nothing else, exactly what a user exporting a checkpoint has, so
                          that brick can load it with strict name matching.
  <case>.ref.safetensors  "input" (X), "output", "upstream" (R, for vector outputs),
                          "input.grad" and "grad.<param>" for every named parameter; the
                          metadata holds case, seed, torch version, param_names,
                          state_names, "redraws" (inputs drawn again near a kink or a branch: see
                          make_module_case) and, where a FixedHiddenMLP runs, "halvings".
  Op cases have no state dict: their ref file holds the inputs "a", "b", ..., their
  gradients "a.grad", ..., and metadata "inputs" = "a,b,...".

The loss is L = output for a scalar output, else L = (output * R).sum() with a fixed random
R, so that every element of the output gets a different upstream gradient.

There is no safetensors package on this system, so the format is written (and read back
for a self-check) by hand (brick_torch.py): 8-byte little-endian header length, a JSON
header padded with spaces to a multiple of 8, then the raw little-endian float32 data.
"""
import copy
import math
import os
import sys

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from brick_torch import (MAX_DRAWS, Recorder, case_seed, check_reload, f32_errors,  # noqa: E402
                         generator_args, kinks_ok, loss_of, report, write_case, write_op_cases)


# ---------------------------------------------------------------------------------------
# The blocks of D2L 5.1
# ---------------------------------------------------------------------------------------

class MLP(nn.Module):
    """The custom block: hidden layer of 256 with ReLU (functional), output layer of 10."""

    def __init__(self):
        super().__init__()
        self.hidden = nn.Linear(20, 256)
        self.out = nn.Linear(256, 10)

    def forward(self, X):
        return self.out(F.relu(self.hidden(X)))


class MySequential(nn.Module):
    def __init__(self, *args):
        super().__init__()
        for idx, module in enumerate(args):
            self._modules[str(idx)] = module

    def forward(self, X):
        for block in self._modules.values():
            X = block(X)
        return X


class FixedHiddenMLP(nn.Module):
    """D2L's FixedHiddenMLP, with rand_weight registered as a buffer so that it is part of
    the state dict (a plain attribute would not be saved, and brick could not load it)."""

    def __init__(self):
        super().__init__()
        self.register_buffer("rand_weight", torch.rand(20, 20))
        self.linear = nn.Linear(20, 20)
        self.halvings = 0
        self.margin = math.inf  # closest |X.abs().sum() - 1| seen by the loop test

    def forward(self, X):
        X = self.linear(X)
        X = F.relu(torch.mm(X, self.rand_weight) + 1)
        X = self.linear(X)  # the same layer again: shared parameters
        self.halvings, self.margin = 0, math.inf
        while True:  # while X.abs().sum() > 1: X /= 2
            s = X.abs().sum()
            self.margin = min(self.margin, abs(s.item() - 1.0))
            if not s > 1:
                break
            X = X / 2
            self.halvings += 1
        return X.sum()


class NestMLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 32), nn.ReLU())
        self.linear = nn.Linear(32, 16)

    def forward(self, X):
        return self.linear(self.net(X))


class Inner(nn.Module):
    """A custom block holding a Sequential, used inside another custom block's Sequential."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(32, 24), nn.ReLU(), nn.Linear(24, 16))

    def forward(self, X):
        return self.net(X)


class Outer(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(20, 32), nn.Tanh(), Inner(), nn.Sigmoid())
        self.out = nn.Linear(16, 16)

    def forward(self, X):
        return self.out(self.net(X))


def fixed_blocks(model):
    return [m for m in model.modules() if isinstance(m, FixedHiddenMLP)]


# ---------------------------------------------------------------------------------------
# Cases
# ---------------------------------------------------------------------------------------

def case_seq_mlp():
    net = nn.Sequential(nn.Linear(20, 256), nn.ReLU(), nn.Linear(256, 10))
    return net, lambda: torch.rand(2, 20)


def case_custom_mlp():
    return MLP(), lambda: torch.rand(2, 20)


def case_my_sequential():
    net = MySequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 10), nn.Sigmoid())
    return net, lambda: torch.randn(2, 4)


def case_fixed_hidden_mlp():
    return FixedHiddenMLP(), lambda: torch.rand(2, 20)


def case_fixed_hidden_mlp_big():
    return FixedHiddenMLP(), lambda: torch.rand(2, 20) * 10


def case_nest_mlp():
    chimera = nn.Sequential(NestMLP(), nn.Linear(16, 20), FixedHiddenMLP())
    return chimera, lambda: torch.rand(2, 20)


def case_deep_nest():
    # names like "0.net.2.net.0.weight": Sequential > custom > Sequential > custom > Sequential
    net = nn.Sequential(Outer(), nn.ReLU(), nn.Linear(16, 10))
    return net, lambda: torch.randn(3, 20)


def case_shared_seq():
    # D2L 5.2's shared layer: one Linear registered as "2" and "4". named_parameters lists
    # it once (as "2.*"), state_dict under both names.
    shared = nn.Linear(8, 8)
    net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), shared, nn.ReLU(), shared, nn.ReLU(),
                        nn.Linear(8, 1))
    return net, lambda: torch.randn(2, 4)


MODULE_CASES = {
    "seq_mlp": case_seq_mlp,
    "custom_mlp": case_custom_mlp,
    "my_sequential": case_my_sequential,
    "fixed_hidden_mlp": case_fixed_hidden_mlp,
    "fixed_hidden_mlp_big": case_fixed_hidden_mlp_big,
    "nest_mlp": case_nest_mlp,
    "deep_nest": case_deep_nest,
    "shared_seq": case_shared_seq,
}


def randn(*s):
    return torch.randn(*s)


def rand(*s):
    return torch.rand(*s)


def pos(*s):  # strictly positive, away from 0: for log, sqrt, pow
    return torch.rand(*s) + 0.5


# name: ({input name: maker}, fn(**inputs) -> output). The C test builds the same
# expressions with brick's ops; keep the two tables in step.
OP_CASES = {
    "op_broadcast_arith": ({"a": lambda: randn(3, 1, 4), "b": lambda: rand(2, 4),
                            "c": lambda: randn(4)},
                           lambda a, b, c: (a + b) * c - a / (b + 2)),
    "op_broadcast_sub_div": ({"a": lambda: randn(2, 3, 1), "b": lambda: pos(1, 1, 5)},
                             lambda a, b: (a - b) / b + a * 3),
    "op_unary_chain": ({"x": lambda: pos(3, 5)},
                       lambda x: torch.sigmoid(torch.tanh(x) * 2) + torch.sqrt(x) * torch.log(x)
                       - torch.abs(x + (-1)) + x ** 1.5 + torch.exp(-x) + (1 - x) / 4),
    "op_pow_tensor": ({"a": lambda: pos(2, 3), "b": lambda: randn(3)},
                      lambda a, b: a ** b),
    "op_matmul_batched": ({"a": lambda: randn(2, 3, 4, 5), "b": lambda: randn(5, 6)},
                          lambda a, b: a @ b),
    "op_matmul_broadcast": ({"a": lambda: randn(2, 1, 4, 5), "b": lambda: randn(3, 5, 2)},
                            lambda a, b: a @ b),
    "op_matmul_mv": ({"a": lambda: randn(4, 5), "v": lambda: randn(5)},
                     lambda a, v: a @ v),
    "op_matmul_vm_batched": ({"v": lambda: randn(4), "a": lambda: randn(3, 4, 5)},
                             lambda v, a: v @ a),
    "op_linear_3d": ({"x": lambda: randn(2, 3, 4), "w": lambda: randn(5, 4),
                      "b": lambda: randn(5)},
                     lambda x, w, b: F.linear(x, w, b)),
    "op_sum_all": ({"x": lambda: randn(3, 4, 5)}, lambda x: x.sum()),
    "op_mean_all": ({"x": lambda: randn(3, 4, 5)}, lambda x: x.mean()),
    "op_max_all": ({"x": lambda: randn(3, 4, 5)}, lambda x: x.max()),
    "op_sum_dim": ({"x": lambda: randn(3, 4, 5)}, lambda x: x.sum(dim=1)),
    "op_mean_dim_keepdim": ({"x": lambda: randn(3, 4, 5)},
                            lambda x: x.mean(dim=-1, keepdim=True)),
    "op_max_dim": ({"x": lambda: randn(3, 4, 5)}, lambda x: x.max(dim=0).values),
    "op_max_dim_keepdim": ({"x": lambda: randn(3, 4, 5)},
                           lambda x: x.max(dim=-2, keepdim=True).values),
}


# ---------------------------------------------------------------------------------------
# Generation
# ---------------------------------------------------------------------------------------

def make_module_case(name, builder, seed):
    torch.manual_seed(case_seed(seed, name))
    model, make_input = builder()
    model = model.float()
    # An input is drawn again when float32 could decide a branch differently from exact
    # arithmetic: FixedHiddenMLP's loop test (an abs-sum within 1e-4, relative, of the
    # threshold) or a ReLU input within rounding error of 0 (kinks_ok: the case run in
    # float32 and float64 with every F.relu recorded; a near-zero ReLU input flips a
    # gradient by O(1), as at seed 3326486905, where custom_mlp had an input of 1.5e-8 in
    # torch's float32 and -1.3e-8 exactly).
    model64 = copy.deepcopy(model).double()
    redraws = 0
    while True:
        X = make_input()
        with Recorder() as r32, torch.no_grad():
            model(X)
        with Recorder() as r64, torch.no_grad():
            model64(X.double())
        if all(b.margin > 1e-4 for b in fixed_blocks(model)) and kinks_ok(r32.calls, r64.calls):
            break
        redraws += 1
        assert redraws < MAX_DRAWS, f"{name}: no input away from the kinks in {MAX_DRAWS} draws"
    X = X.clone().requires_grad_(True)
    output = model(X)
    loss, upstream = loss_of(output)
    loss.backward()

    state = model.state_dict()
    params = list(model.named_parameters())
    ref = {"input": X, "output": output}
    if upstream is not None:
        ref["upstream"] = upstream
    ref["input.grad"] = X.grad
    for pname, p in params:
        assert p.grad is not None, f"{name}: {pname} got no gradient"
        ref["grad." + pname] = p.grad
    meta = {"case": name, "kind": "module", "seed": str(seed),
            "case_seed": str(case_seed(seed, name)), "torch": torch.__version__,
            "redraws": str(redraws),
            "param_names": ",".join(n for n, _ in params),
            "state_names": ",".join(state.keys()),
            "buffer_names": ",".join(n for n, _ in model.named_buffers())}
    blocks = fixed_blocks(model)
    if blocks:
        meta["halvings"] = ",".join(str(b.halvings) for b in blocks)

    # The same case in float64 (same float32 values of weights, input and upstream): how
    # far torch's own float32 results are from the exact ones.
    model64.zero_grad(set_to_none=True)
    X64 = X.detach().double().requires_grad_(True)
    out64 = model64(X64)
    loss64 = out64 if upstream is None else (out64 * upstream.double()).sum()
    loss64.backward()
    assert [b.halvings for b in fixed_blocks(model64)] == [b.halvings for b in blocks]
    exact = {"output": out64, "input.grad": X64.grad}
    for pname, p in model64.named_parameters():
        exact["grad." + pname] = p.grad
    meta.update(f32_errors(ref, exact))
    return model, state, ref, meta, X


def main():
    args = generator_args(__doc__)
    count = 0
    for name, builder in MODULE_CASES.items():
        if not args.wanted(name):
            continue
        model, state, ref, meta, X = make_module_case(name, builder, args.seed)
        wpath = write_case(args.out, name, ref, meta, state)
        # The weight file alone must reproduce the output: load it strictly into a fresh
        # instance (built from another seed) and run the same input again.
        torch.manual_seed(args.seed + 1)
        fresh, _ = builder()
        check_reload(name, wpath, fresh, lambda m: m(X.detach()), ref["output"])
        count += 1
    count += write_op_cases(args, OP_CASES)
    return report(args, "gen_reference", count)


if __name__ == "__main__":
    sys.exit(main())
