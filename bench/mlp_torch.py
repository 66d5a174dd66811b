#!/usr/bin/env python3
"""mlp_torch.py - the PyTorch side of bench/mlp_epoch.sh: brick's default training recipe.

    /usr/bin/python3 bench/mlp_torch.py [--data DIR] [--epochs 10] [--batch-size 256]
                                        [--lr 0.1] [--threads T] [--seed 0]

The recipe of `brick train` with its defaults: Flatten -> Linear(784, 256) -> ReLU ->
Linear(256, 10) with PyTorch's default init, cross-entropy (mean), SGD lr 0.1, batch 256
reshuffled every epoch (the last batch smaller, drop_last=False), pixels scaled to
[0, 1]. After each epoch the test split is evaluated in batches of 1000 with grad off.
An epoch's time covers its training and its evaluation, as the `seconds` column of
brick's CSV log does.

The IDX files (plain or gzip, detected from the content) are read with gzip + numpy,
validated against their headers. Prints one line per epoch and a last line

    RESULT epochs=10 threads=1 median_epoch_s=1.234 final_test_acc=0.8512

Run it with /usr/bin/python3 (Debian's python3-torch); set OMP_WAIT_POLICY and
OPENBLAS_NUM_THREADS in the environment as the benchmark does.
"""
import argparse
import gzip
import os
import statistics
import sys
import time

import numpy as np
import torch
from torch import nn


def read_idx(path, want_ndim):
    """A u8 IDX file (plain or gzip) as a numpy array, with its header checked."""
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08 or raw[3] != want_ndim:
        sys.exit(f"mlp_torch.py: {path}: not a u8 IDX file of {want_ndim} dims")
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(want_ndim)]
    start = 4 + 4 * want_ndim
    if len(raw) - start != int(np.prod(dims)):
        sys.exit(f"mlp_torch.py: {path}: {len(raw) - start} data bytes for dims {dims}")
    return np.frombuffer(raw, dtype=np.uint8, offset=start).reshape(dims)


def find(data, name):
    for p in (os.path.join(data, name), os.path.join(data, name + ".gz")):
        if os.path.exists(p):
            return p
    sys.exit(f"mlp_torch.py: no {name}[.gz] in {data}")


def load(data, split):
    x = read_idx(find(data, f"{split}-images-idx3-ubyte"), 3)
    y = read_idx(find(data, f"{split}-labels-idx1-ubyte"), 1)
    x = torch.from_numpy(x.astype(np.float32) / 255.0).unsqueeze(1)  # (N, 1, 28, 28)
    return x, torch.from_numpy(y.astype(np.int64))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    xtr, ytr = load(a.data, "train")
    xte, yte = load(a.data, "t10k")
    net = nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10))
    loss_fn = nn.CrossEntropyLoss()
    opt = torch.optim.SGD(net.parameters(), lr=a.lr)
    gen = torch.Generator().manual_seed(a.seed)
    n = xtr.shape[0]
    times, test_acc = [], 0.0
    for epoch in range(1, a.epochs + 1):
        t0 = time.perf_counter()
        net.train()
        perm = torch.randperm(n, generator=gen)
        total, correct = 0.0, 0
        for i in range(0, n, a.batch_size):
            idx = perm[i:i + a.batch_size]
            x, y = xtr[idx], ytr[idx]
            out = net(x)
            loss = loss_fn(out, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
            correct += (out.argmax(1) == y).sum().item()
        net.eval()
        test_total, test_correct = 0.0, 0
        with torch.no_grad():
            for i in range(0, xte.shape[0], 1000):
                out = net(xte[i:i + 1000])
                test_total += nn.functional.cross_entropy(out, yte[i:i + 1000], reduction="sum").item()
                test_correct += (out.argmax(1) == yte[i:i + 1000]).sum().item()
        secs = time.perf_counter() - t0
        times.append(secs)
        test_acc = test_correct / xte.shape[0]
        print(f"epoch {epoch:2d}/{a.epochs}  train loss {total / n:.4f}  train acc {correct / n:.4f}  "
              f"test loss {test_total / xte.shape[0]:.4f}  test acc {test_acc:.4f}  {secs:.2f} s",
              flush=True)
    print(f"RESULT epochs={a.epochs} threads={a.threads} median_epoch_s={statistics.median(times):.4f} "
          f"final_test_acc={test_acc:.4f}")


if __name__ == "__main__":
    main()
