#!/usr/bin/env python3
"""pytorch_interop.py - weights between PyTorch and brick (the script of docs/pytorch.md).

PyTorch -> brick: build a model of brick's zoo as plain torch.nn modules, train it a little
on Fashion-MNIST, evaluate it, and save its state dict as a plain safetensors file (no brick
metadata), in float32, float64, float16 or bfloat16; BatchNorm's num_batches_tracked stays
int64, as torch keeps it:

    python3 examples/pytorch_interop.py export --model resnet:width=8 \\
        --data data/fashion-mnist-subset --steps 300 --out resnet.safetensors
    build/brick eval --model resnet:width=8 resnet.safetensors --data data/fashion-mnist-subset
    build/brick import --model resnet:width=8 resnet.safetensors --out resnet-brick.safetensors

brick -> PyTorch: load a model file written by `brick train` or `brick import` STRICTLY
into the same torch.nn model and evaluate it:

    python3 examples/pytorch_interop.py load resnet-brick.safetensors --data data/fashion-mnist-subset

Both print "TORCH test_loss=... test_acc=...", which `brick eval` matches on the same
weights. `--dtype f32,f16 --out resnet-{dtype}.safetensors` writes one file per dtype. Needs torch and numpy only: safetensors files are read and written by hand below
(the format is 8 bytes of header length, a JSON header, then the raw little-endian data).
"""
import argparse
import gzip
import json
import math
import os
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

# ---- safetensors by hand -----------------------------------------------------------------

DTYPES = {"f32": (torch.float32, "F32"), "f64": (torch.float64, "F64"),
          "f16": (torch.float16, "F16"), "bf16": (torch.bfloat16, "BF16")}
NP_OF = {"F32": "<f4", "F64": "<f8", "F16": "<f2", "I64": "<i8", "I32": "<i4"}


def save_plain(path, state, dtype):
    """state dict -> safetensors: floating tensors in `dtype`, integer buffers as I64."""
    header, blobs, offset = {}, [], 0
    for name, t in state.items():
        t = t.detach().cpu().contiguous()
        if t.is_floating_point():
            torch_dtype, st_dtype = DTYPES[dtype]
            t = t.to(torch_dtype)
            # numpy has no bfloat16: write its 16 bits as they are
            raw = (t.view(torch.int16) if st_dtype == "BF16" else t).numpy().tobytes()
        else:
            st_dtype, raw = "I64", t.to(torch.int64).numpy().astype("<i8").tobytes()
        header[name] = {"dtype": st_dtype, "shape": list(t.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path + ".tmp", "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))
    os.replace(path + ".tmp", path)


def load_safetensors(path):
    """safetensors -> ({name: tensor}, metadata). F32, F64, F16, BF16, I64, I32."""
    buf = open(path, "rb").read()
    (n,) = struct.unpack("<Q", buf[:8])
    header = json.loads(buf[8:8 + n])
    meta = header.pop("__metadata__", {})
    data, out = buf[8 + n:], {}
    for name, info in header.items():
        b, e = info["data_offsets"]
        if info["dtype"] == "BF16":
            bits = np.frombuffer(data[b:e], dtype="<i2").astype(np.int32) << 16
            a = bits.view(np.float32)
        else:
            a = np.frombuffer(data[b:e], dtype=NP_OF[info["dtype"]])
        out[name] = torch.from_numpy(a.reshape(info["shape"]).copy())
    return out, meta

# ---- brick's zoo as torch.nn (same child names, so the same state dict) -------------------


class Residual(nn.Module):
    """D2L's ResNet block, as brick's src/nn/residual.c."""

    def __init__(self, cin, c, use_1x1conv=False, strides=1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, c, 3, padding=1, stride=strides)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1)
        self.conv3 = nn.Conv2d(cin, c, 1, stride=strides) if use_1x1conv else None
        self.bn1, self.bn2 = nn.BatchNorm2d(c), nn.BatchNorm2d(c)

    def forward(self, X):
        Y = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(X)))))
        return F.relu(Y + (self.conv3(X) if self.conv3 is not None else X))


class Inception(nn.Module):
    """D2L's GoogLeNet block, as brick's src/nn/inception.c."""

    def __init__(self, cin, c1, c2, c3, c4):
        super().__init__()
        self.p1_1 = nn.Conv2d(cin, c1, 1)
        self.p2_1, self.p2_2 = nn.Conv2d(cin, c2[0], 1), nn.Conv2d(c2[0], c2[1], 3, padding=1)
        self.p3_1, self.p3_2 = nn.Conv2d(cin, c3[0], 1), nn.Conv2d(c3[0], c3[1], 5, padding=2)
        self.p4_1, self.p4_2 = nn.MaxPool2d(3, stride=1, padding=1), nn.Conv2d(cin, c4, 1)

    def forward(self, x):
        return torch.cat((F.relu(self.p1_1(x)), F.relu(self.p2_2(F.relu(self.p2_1(x)))),
                          F.relu(self.p3_2(F.relu(self.p3_1(x)))), F.relu(self.p4_2(self.p4_1(x)))), 1)


ACT = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "gelu": nn.GELU}


def build(spec, in_shape, n_classes):
    """The torch.nn twin of brick's bk_model_build(spec) (src/models/zoo.c)."""
    name, _, settings = spec.partition(":")
    kv = dict(s.split("=") for s in settings.split(",") if s)
    C, H, W = (list(in_shape) + [1, 1])[:3]
    numel = math.prod(in_shape)
    if name == "softmax":
        return nn.Sequential(nn.Flatten(), nn.Linear(numel, n_classes, bias=kv.get("bias", "true") == "true"))
    if name == "mlp":
        h, act, p = int(kv.get("hidden", 256)), ACT[kv.get("act", "relu")], float(kv.get("dropout", 0))
        mid = [nn.Dropout(p)] if p > 0 else []
        return nn.Sequential(nn.Flatten(), nn.Linear(numel, h), act(), *mid, nn.Linear(h, n_classes))
    if name == "lenet":
        act = ACT[kv.get("act", "relu")]
        pool = (lambda: nn.AvgPool2d(2, 2)) if kv.get("pool") == "avg" else (lambda: nn.MaxPool2d(2, 2))
        h, w = (H // 2 - 4) // 2, (W // 2 - 4) // 2
        return nn.Sequential(nn.Conv2d(C, 6, 5, padding=2), act(), pool(), nn.Conv2d(6, 16, 5), act(), pool(),
                             nn.Flatten(), nn.Linear(16 * h * w, 120), act(), nn.Linear(120, 84), act(),
                             nn.Linear(84, n_classes))
    if name == "resnet":
        w = int(kv.get("width", 32))

        def stage(cin, c, first):
            return nn.Sequential(Residual(cin, c) if first else Residual(cin, c, True, 2), Residual(c, c))
        return nn.Sequential(nn.Sequential(nn.Conv2d(C, w, 3, padding=1), nn.BatchNorm2d(w), nn.ReLU()),
                             stage(w, w, True), stage(w, 2 * w, False), stage(2 * w, 4 * w, False),
                             stage(4 * w, 8 * w, False), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                             nn.Linear(8 * w, n_classes))
    if name == "googlenet":
        cfg = [(32, 16, (24, 32), (4, 8), 8), (64, 32, (32, 48), (8, 24), 16),
               (120, 48, (24, 52), (4, 12), 16), (128, 64, (40, 80), (8, 32), 32)]
        return nn.Sequential(nn.Sequential(nn.Conv2d(C, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(3, 2, 1)),
                             nn.Sequential(Inception(*cfg[0]), Inception(*cfg[1]), nn.MaxPool2d(3, 2, 1)),
                             nn.Sequential(Inception(*cfg[2]), Inception(*cfg[3]), nn.AdaptiveAvgPool2d(1),
                                           nn.Flatten()),
                             nn.Linear(208, n_classes))
    sys.exit(f"pytorch_interop.py: no torch twin for model '{spec}'")

# ---- Fashion-MNIST (IDX files, plain or .gz) ------------------------------------------------


def read_idx(data, name):
    for p in (os.path.join(data, name), os.path.join(data, name + ".gz")):
        if os.path.exists(p):
            raw = open(p, "rb").read()
            raw = gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw
            ndim = raw[3]
            dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
            return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)
    sys.exit(f"pytorch_interop.py: no {name}[.gz] in {data}")


def split(data, train):
    kind = "train" if train else "t10k"
    x = torch.from_numpy(read_idx(data, f"{kind}-images-idx3-ubyte").astype(np.float32) / 255.0)
    return x.unsqueeze(1), torch.from_numpy(read_idx(data, f"{kind}-labels-idx1-ubyte").astype(np.int64))


def evaluate(net, data):
    x, y = split(data, False)
    net.eval()
    with torch.no_grad():
        logits = net(x)
        loss = F.cross_entropy(logits, y).item()
        acc = (logits.argmax(1) == y).double().mean().item()
    print(f"TORCH test_loss={loss:.6f} test_acc={acc:.4f}")

# ---- the two directions ----------------------------------------------------------------------


def export(a):
    torch.manual_seed(a.seed)
    x, y = split(a.data, True)
    net = build(a.model, (1, 28, 28), 10)
    opt = torch.optim.SGD(net.parameters(), lr=a.lr, momentum=0.9)
    net.train()
    g = torch.Generator().manual_seed(a.seed)
    for step in range(a.steps):
        idx = torch.randint(0, len(y), (a.batch_size,), generator=g)
        opt.zero_grad()
        F.cross_entropy(net(x[idx]), y[idx]).backward()
        opt.step()
    trained = {k: v.clone() for k, v in net.state_dict().items()}
    for dtype in a.dtype.split(","):
        # What brick will read: the weights rounded to the file's dtype (exact for f32, f64).
        state = {k: (v.to(DTYPES[dtype][0]).to(torch.float32) if v.is_floating_point() else v)
                 for k, v in trained.items()}
        net.load_state_dict(state)
        out = a.out.replace("{dtype}", dtype)
        print(f"{dtype}: ", end="")
        evaluate(net, a.data)
        save_plain(out, net.state_dict(), dtype)
        print(f"wrote {out}: {len(state)} tensors, floating ones as {DTYPES[dtype][1]}")


def load(a):
    tensors, meta = load_safetensors(a.file)
    in_shape = [int(d) for d in meta["brick.in_shape"].split(",")]
    net = build(meta["brick.arch"], in_shape, int(meta["brick.n_classes"]))
    state = net.state_dict()
    # brick keeps every tensor as float32; torch's integer buffers take their own dtype back
    net.load_state_dict({k: v.to(state[k].dtype) if k in state else v for k, v in tensors.items()},
                        strict=True)
    evaluate(net, a.data)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("export", help="train in PyTorch, save a plain state dict")
    e.add_argument("--model", default="resnet:width=8")
    e.add_argument("--data", default="data/fashion-mnist-subset")
    e.add_argument("--steps", type=int, default=300)
    e.add_argument("--batch-size", type=int, default=64)
    e.add_argument("--lr", type=float, default=0.05)
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--dtype", default="f32",
                   help="f32, f64, f16 or bf16, or several comma-separated (each to its own --out)")
    e.add_argument("--out", required=True, help="the file; {dtype} in it is replaced by the dtype")
    lo = sub.add_parser("load", help="load a brick model file into PyTorch")
    lo.add_argument("file")
    lo.add_argument("--data", default="data/fashion-mnist-subset")
    a = ap.parse_args()
    if a.cmd == "export" and (any(d not in DTYPES for d in a.dtype.split(","))
                              or ("," in a.dtype and "{dtype}" not in a.out)):
        ap.error(f"--dtype {a.dtype}: each of f32, f64, f16, bf16; several need {{dtype}} in --out")
    torch.set_num_threads(1)
    export(a) if a.cmd == "export" else load(a)


if __name__ == "__main__":
    main()
