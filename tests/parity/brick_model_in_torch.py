#!/usr/bin/env python3
"""brick_model_in_torch.py - the brick -> PyTorch direction of weight exchange.

    /usr/bin/python3 tests/parity/brick_model_in_torch.py MODEL.safetensors DATA_DIR

Loads a model file written by `brick train` with a hand-written safetensors reader (Debian
has no safetensors package), rebuilds the architecture its metadata names ("brick.arch":
mlp or softmax) as plain torch.nn modules, loads the state dict STRICTLY (every name and
shape must match PyTorch's), evaluates the test split of DATA_DIR and prints

    TORCH test_loss=0.396812 test_acc=0.8640

so that tests/test_torch_interop.sh can compare it with `brick eval` on the same file.
"""
import gzip
import os
import sys

import numpy as np
import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from brick_torch import st_read  # noqa: E402


def read_idx(path, ndim):
    raw = open(path, "rb").read()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def find(data, name):
    for p in (os.path.join(data, name), os.path.join(data, name + ".gz")):
        if os.path.exists(p):
            return p
    sys.exit(f"brick_model_in_torch.py: no {name}[.gz] in {data}")


def build(arch, in_features, n_classes):
    name, _, settings = arch.partition(":")
    kv = dict(s.split("=") for s in settings.split(",") if s)
    if name == "mlp":
        h = int(kv["hidden"])
        return nn.Sequential(nn.Flatten(), nn.Linear(in_features, h), nn.ReLU(), nn.Linear(h, n_classes))
    if name == "softmax":
        return nn.Sequential(nn.Flatten(), nn.Linear(in_features, n_classes))
    sys.exit(f"brick_model_in_torch.py: architecture {arch} is not rebuilt here")


def main():
    model_path, data = sys.argv[1], sys.argv[2]
    tensors, meta = st_read(model_path)
    in_shape = [int(d) for d in meta["brick.in_shape"].split(",")]
    net = build(meta["brick.arch"], int(np.prod(in_shape)), int(meta["brick.n_classes"]))
    net.load_state_dict(tensors, strict=True)
    net.eval()
    x = read_idx(find(data, "t10k-images-idx3-ubyte"), 3).astype(np.float32) / 255.0
    y = read_idx(find(data, "t10k-labels-idx1-ubyte"), 1).astype(np.int64)
    with torch.no_grad():
        logits = net(torch.from_numpy(x).reshape(-1, *in_shape))
        loss = nn.functional.cross_entropy(logits, torch.from_numpy(y)).item()
        acc = (logits.argmax(1).numpy() == y).mean()
    print(f"TORCH test_loss={loss:.6f} test_acc={acc:.4f}")


if __name__ == "__main__":
    main()
