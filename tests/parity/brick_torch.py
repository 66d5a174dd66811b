"""brick_torch.py - what brick's PyTorch scripts share: the parity generators
(tests/parity/gen_*.py) and the PyTorch side of the benchmarks (bench/*_torch.py).

- safetensors by hand (st_write / st_read: no safetensors package on Debian);
- the generators' conventions: a stream per case (case_seed), torch's own float32 error per
  result tensor (f32_error / f32_errors, metadata "f32err.<name>"), the op cases
  (make_op_case), the command line (generator_args), writing a case and reading it back
  (write_case), and the check that the weight file alone reproduces the output
  (check_reload);
- the kink check (Recorder, kinks_ok): inputs too close to a ReLU's 0 or a max pool's tie
  for float32 to decide like float64 are drawn again;
- D2L's Residual and Inception blocks, as brick's src/nn/residual.c and inception.c (same
  child names, so the same state dict), for the CNN parity cases and the benchmarks' zoo;
- the benchmarks' timing loop (time_steps) and training options (add_training_args).

A generator imports it from its own directory; a bench script (run from the repository root
by bench/*.sh and bench/compare.py, or from anywhere) first puts this directory on sys.path:

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "parity"))
"""

import argparse
import json
import math
import os
import struct
import time
import zlib

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

# ---------------------------------------------------------------------------------------
# Kink margins: every F.relu and F.max_pool2d call, recorded in call order
# ---------------------------------------------------------------------------------------

# An input is redrawn when a ReLU input or a pooling window's runner-up is within MARGIN x
# torch's float32 error of the kink; MAX_DRAWS bounds the redraws.
MARGIN = 5.0
MAX_DRAWS = 200


class Recorder:
    """Within `with Recorder() as r:`, F.relu and F.max_pool2d (which nn.ReLU and
    nn.MaxPool2d call) append ("relu", input) / ("pool", input, k, s, p) to r.calls."""

    def __init__(self):
        self.calls = []

    def __enter__(self):
        self.relu, self.pool = F.relu, F.max_pool2d
        rec = self

        def relu(x, *a, **kw):
            rec.calls.append(("relu", x.detach().clone()))
            return rec.relu(x, *a, **kw)

        def max_pool2d(x, kernel_size, stride=None, padding=0, *a, **kw):
            rec.calls.append(("pool", x.detach().clone(), kernel_size, stride or kernel_size, padding))
            return rec.pool(x, kernel_size, stride, padding, *a, **kw)

        F.relu, F.max_pool2d = relu, max_pool2d
        return self

    def __exit__(self, *exc):
        F.relu, F.max_pool2d = self.relu, self.pool
        return False


def pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def window_gap(x, k, s, p):
    """Per pooling window of x (N, C, H, W) (padding -inf): (max, max - the largest value
    below the max), the gap inf when the whole window ties."""
    (kh, kw), (sh, sw), (ph, pw) = pair(k), pair(s), pair(p)
    xp = F.pad(x, (pw, pw, ph, ph), value=-float("inf"))
    n, c = x.shape[:2]
    cols = F.unfold(xp.reshape(n * c, 1, *xp.shape[2:]), (kh, kw), stride=(sh, sw))  # (NC, k, L)
    top = cols.max(dim=1, keepdim=True).values
    below = cols.masked_fill(cols == top, -float("inf")).max(dim=1).values
    return top.squeeze(1), top.squeeze(1) - below


def kinks_ok(calls32, calls64):
    """True when no ReLU input or pooling window is within MARGIN x torch's float32 error
    of a kink (see gen_cnn.py's docstring). Different call sequences (an input near a
    branch such as FixedHiddenMLP's loop test) are not OK either."""
    if len(calls32) != len(calls64):
        return False
    for c32, c64 in zip(calls32, calls64):
        x32, x64 = c32[1].double(), c64[1]
        rms = x64.pow(2).mean().sqrt().item()
        err = (x32 - x64).abs().max().item()
        slack = MARGIN * err + 1e-9 * rms
        if c32[0] == "relu":
            if x64.numel() and x64.abs().min().item() <= slack:
                return False
        else:
            _, gap = window_gap(x64, *c64[2:])
            if (gap <= slack).any():
                return False
    return True


# ---------------------------------------------------------------------------------------
# safetensors, by hand
# ---------------------------------------------------------------------------------------


def st_write(path, tensors, metadata):
    """Writes {name: float32 tensor} in file order, with {str: str} metadata, atomically."""
    header, blobs, offset = {}, [], 0
    for name, t in tensors.items():
        a = t.detach().to(torch.float32).contiguous().cpu().numpy().astype("<f4", copy=False)
        raw = a.tobytes(order="C")
        header[name] = {"dtype": "F32", "shape": list(a.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    hjson = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hjson += b" " * (-len(hjson) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(hjson)))
        f.write(hjson)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)


def st_read(path):
    """Reads a file written by st_write (or any F32 safetensors): (tensors, metadata)."""
    with open(path, "rb") as f:
        buf = f.read()
    (n,) = struct.unpack("<Q", buf[:8])
    assert n % 8 == 0 and 8 + n <= len(buf), f"{path}: bad header length {n}"
    header = json.loads(buf[8:8 + n].decode("utf-8"))
    meta = header.pop("__metadata__", {})
    data = buf[8 + n:]
    tensors, end = {}, 0
    for name, info in header.items():
        assert info["dtype"] == "F32", f"{path}: {name}: dtype {info['dtype']}"
        b, e = info["data_offsets"]
        count = math.prod(info["shape"])
        assert e - b == 4 * count and e <= len(data), f"{path}: {name}: bad offsets"
        a = np.frombuffer(data[b:e], dtype="<f4").reshape(info["shape"])
        tensors[name] = torch.from_numpy(a.copy())
        end = max(end, e)
    assert end == len(data), f"{path}: {len(data) - end} trailing bytes"
    return tensors, meta


# ---------------------------------------------------------------------------------------
# The generators' conventions
# ---------------------------------------------------------------------------------------

def case_seed(seed, name):
    # Each case has its own stream, so adding or reordering cases changes no other case.
    return (seed * 1000003 + zlib.crc32(name.encode())) % (2 ** 63)


def loss_of(output):
    """L = output for a scalar, else L = (output * upstream).sum() with a random upstream,
    so that every output element gets a different gradient: (L, upstream or None)."""
    if output.dim() == 0:
        return output, None
    upstream = torch.randn(output.shape)
    return (output * upstream).sum(), upstream


def f32_error(t32, t64):
    """max |float32 - float64| over the entries finite in both (NaN patterns must match)."""
    a, b = t32.detach().double(), t64.detach()
    assert torch.equal(torch.isnan(a), torch.isnan(b)), "float32 and float64 disagree on NaN"
    fin = torch.isfinite(a) & torch.isfinite(b)
    return (a[fin] - b[fin]).abs().max().item() if fin.any() else 0.0


def f32_errors(ref, exact):
    """Metadata "f32err.<name>": torch's float32 error on each result tensor. Two float32
    implementations that each sit within E of the exact value can be 2E apart; the C tests
    widen their absolute tolerance by that much (see README.md)."""
    return {"f32err." + k: "%.3e" % f32_error(ref[k], t64) for k, t64 in exact.items()}


def backward_case(name, kind, seed, inputs, output):
    """Runs the backward of loss_of(output) and returns (ref, meta, upstream): ref holds the
    inputs, "output", "upstream" (vector outputs) and "<input>.grad"; meta the case, kind,
    seeds, torch version and "inputs" (their names)."""
    loss, upstream = loss_of(output)
    loss.backward()
    ref = dict(inputs)
    ref["output"] = output
    if upstream is not None:
        ref["upstream"] = upstream
    for k, t in inputs.items():
        ref[k + ".grad"] = t.grad
    meta = {"case": name, "kind": kind, "seed": str(seed),
            "case_seed": str(case_seed(seed, name)), "torch": torch.__version__,
            "inputs": ",".join(inputs.keys())}
    return ref, meta, upstream


def make_op_case(name, spec, seed):
    """An op case: spec = ({input: maker}, fn). Inputs, output, upstream and the inputs'
    gradients, with the float64 run's errors in the metadata."""
    torch.manual_seed(case_seed(seed, name))
    makers, fn = spec
    inputs = {k: make().float().requires_grad_(True) for k, make in makers.items()}
    ref, meta, upstream = backward_case(name, "op", seed, inputs, fn(**inputs))
    inputs64 = {k: t.detach().double().requires_grad_(True) for k, t in inputs.items()}
    out64 = fn(**inputs64)
    (out64 if upstream is None else (out64 * upstream.double()).sum()).backward()
    exact = {"output": out64}
    exact.update({k + ".grad": t.grad for k, t in inputs64.items()})
    meta.update(f32_errors(ref, exact))
    return ref, meta


def self_check_file(path, tensors, metadata):
    """Reads a written file back: the same names, shapes, values (NaN where NaN) and metadata."""
    got, meta = st_read(path)
    assert list(got.keys()) == list(tensors.keys()), f"{path}: names differ on read-back"
    for k, t in tensors.items():
        want = t.detach().float().reshape(got[k].shape)
        assert torch.equal(torch.isnan(got[k]), torch.isnan(want)), f"{path}: {k} (NaN)"
        assert torch.equal(torch.nan_to_num(got[k]), torch.nan_to_num(want)), f"{path}: {k}"
        assert tuple(got[k].shape) == tuple(t.shape), f"{path}: {k} shape"
    assert meta == {str(k): str(v) for k, v in metadata.items()}, f"{path}: metadata"


def generator_args(doc):
    """The generators' command line (--out DIR --seed N [--only a,b]) and torch settings.
    args.wanted(name) says whether --only lets a case through."""
    ap = argparse.ArgumentParser(description=doc.split("\n")[0])
    ap.add_argument("--out", required=True, help="output directory")
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--only", default=None, help="comma-separated case names")
    args = ap.parse_args()
    torch.set_default_dtype(torch.float32)
    torch.set_num_threads(1)  # deterministic reductions
    os.makedirs(args.out, exist_ok=True)
    only = set(args.only.split(",")) if args.only else None
    args.wanted = lambda name: not only or name in only
    return args


def write_case(out, fname, ref, meta, state=None):
    """Writes <fname>.ref.safetensors (and, given a state dict, <fname>.safetensors with
    {"format": "pt"}) into out and reads them back; returns the weight file's path."""
    wpath = os.path.join(out, fname + ".safetensors")
    rpath = os.path.join(out, fname + ".ref.safetensors")
    if state is not None:
        st_write(wpath, state, {"format": "pt"})
    st_write(rpath, ref, meta)
    if state is not None:
        self_check_file(wpath, state, {"format": "pt"})
    self_check_file(rpath, ref, meta)
    return wpath


def write_op_cases(args, op_cases):
    """Writes every op case (make_op_case) that args.wanted lets through; returns how many."""
    count = 0
    for name, spec in op_cases.items():
        if args.wanted(name):
            ref, meta = make_op_case(name, spec, args.seed)
            write_case(args.out, name, ref, meta)
            count += 1
    return count


def report(args, generator, count, note=""):
    """The generator's last line (into the parity log); returns its exit status, 0."""
    print(f"{generator}: {count} cases{note}, seed {args.seed}, torch {torch.__version__} -> {args.out}")
    return 0


def check_reload(name, wpath, fresh, run, want):
    """The weight file alone reproduces the output: loads it strictly into the fresh
    instance and compares run(fresh) (under no_grad) with want, NaN equal to NaN."""
    loaded, _ = st_read(wpath)
    fresh.load_state_dict(loaded, strict=True)
    with torch.no_grad():
        again = run(fresh)
    assert torch.equal(torch.nan_to_num(again, nan=12345.0),
                       torch.nan_to_num(want.detach(), nan=12345.0)), f"{name}: reload changes the output"


# ---------------------------------------------------------------------------------------
# D2L's blocks, as brick's
# ---------------------------------------------------------------------------------------

class Residual(nn.Module):
    """D2L's ResNet block, as src/nn/residual.c (same child names, so same state dict)."""

    def __init__(self, input_channels, num_channels, use_1x1conv=False, strides=1):
        super().__init__()
        self.conv1 = nn.Conv2d(input_channels, num_channels, kernel_size=3, padding=1, stride=strides)
        self.conv2 = nn.Conv2d(num_channels, num_channels, kernel_size=3, padding=1)
        self.conv3 = (nn.Conv2d(input_channels, num_channels, kernel_size=1, stride=strides)
                      if use_1x1conv else None)
        self.bn1 = nn.BatchNorm2d(num_channels)
        self.bn2 = nn.BatchNorm2d(num_channels)

    def forward(self, X):
        Y = F.relu(self.bn1(self.conv1(X)))
        Y = self.bn2(self.conv2(Y))
        if self.conv3 is not None:
            X = self.conv3(X)
        return F.relu(Y + X)


class Inception(nn.Module):
    """D2L's GoogLeNet block, as src/nn/inception.c."""

    def __init__(self, in_channels, c1, c2, c3, c4):
        super().__init__()
        self.p1_1 = nn.Conv2d(in_channels, c1, kernel_size=1)
        self.p2_1 = nn.Conv2d(in_channels, c2[0], kernel_size=1)
        self.p2_2 = nn.Conv2d(c2[0], c2[1], kernel_size=3, padding=1)
        self.p3_1 = nn.Conv2d(in_channels, c3[0], kernel_size=1)
        self.p3_2 = nn.Conv2d(c3[0], c3[1], kernel_size=5, padding=2)
        self.p4_1 = nn.MaxPool2d(kernel_size=3, stride=1, padding=1)
        self.p4_2 = nn.Conv2d(in_channels, c4, kernel_size=1)

    def forward(self, x):
        p1 = F.relu(self.p1_1(x))
        p2 = F.relu(self.p2_2(F.relu(self.p2_1(x))))
        p3 = F.relu(self.p3_2(F.relu(self.p3_1(x))))
        p4 = F.relu(self.p4_2(self.p4_1(x)))
        return torch.cat((p1, p2, p3, p4), dim=1)


# ---------------------------------------------------------------------------------------
# Benchmarks
# ---------------------------------------------------------------------------------------

def time_steps(step, warmup, iters):
    """Runs step() warmup times untimed, then iters times: (wall ms, CPU ms) per step."""
    wall, cpu = [], []
    for it in range(-warmup, iters):
        t0, c0 = time.perf_counter(), time.process_time()
        step()
        if it >= 0:
            wall.append((time.perf_counter() - t0) * 1e3)
            cpu.append((time.process_time() - c0) * 1e3)
    return wall, cpu


def add_training_args(ap, model, data, epochs, batch_size, lr, momentum):
    """The options `brick train` and the PyTorch training benchmarks share, with defaults."""
    ap.add_argument("--model", default=model)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--width", type=int, default=32)
    ap.add_argument("--data", default=data)
    ap.add_argument("--epochs", type=int, default=epochs)
    ap.add_argument("--batch-size", type=int, default=batch_size)
    ap.add_argument("--lr", type=float, default=lr)
    ap.add_argument("--momentum", type=float, default=momentum)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
