#!/usr/bin/env python3
"""train_torch.py - the PyTorch side of bench/train_epoch.sh: `brick train`'s loop and models.

    /usr/bin/python3 bench/train_torch.py [--model mlp|softmax|lenet|resnet|googlenet]
        [--hidden 256] [--width 32] [--data DIR] [--epochs 10] [--batch-size 256] [--lr 0.1]
        [--optimizer sgd|adam|adamw|rmsprop|adagrad] [--momentum 0] [--weight-decay W]
        [--lr-schedule none|cosine|step|onecycle|plateau] [--lr-step-size N] [--lr-gamma 0.1]
        [--lr-min 0] [--lr-patience 10]
        [--threads T] [--seed 0]

--model also takes brick's spec form, e.g. `resnet:width=8` or `mlp:hidden=128`. The
models are those of brick's zoo (src/models/zoo.c), rebuilt with torch.nn and PyTorch's
default init:

  mlp        Flatten, Linear(784, hidden), ReLU, Linear(hidden, 10)
  softmax    Flatten, Linear(784, 10)
  lenet      Conv2d(1, 6, 5, padding=2), ReLU, MaxPool2d(2), Conv2d(6, 16, 5), ReLU,
             MaxPool2d(2), Flatten, Linear(400, 120), ReLU, Linear(120, 84), ReLU, Linear(84, 10)
  resnet     D2L's ResNet-18 for small images: a 3x3 stem Conv2d(1, w) + BatchNorm2d + ReLU
             (no max-pool), four stages of two Residual blocks (widths w, 2w, 4w, 8w, stride 2
             and a 1x1 shortcut conv from the second stage), AdaptiveAvgPool2d(1), Flatten,
             Linear(8w, 10)
  googlenet  the zoo's small GoogLeNet (a 3x3 stem, four Inception blocks)

The loop is brick train's: cross-entropy (mean), the optimizer as given (torch.optim's
SGD, Adam or AdamW; AdamW's weight decay defaults to 0.01 as in brick and torch), the
training split reshuffled every epoch in batches of --batch-size (the last one smaller),
pixels scaled to [0, 1]. The learning-rate schedule is brick train's (docs/cli.md): none,
CosineAnnealingLR(T_max=--epochs, eta_min=--lr-min) or StepLR(step_size=--lr-step-size,
gamma=--lr-gamma), stepped once after every epoch. After each epoch the test split is
evaluated in batches of --batch-size (as brick train does) in eval mode with grad off. An
epoch's time covers its training and its evaluation, as the `seconds` column of brick's CSV
log does; loading the data is not timed.

Prints one line per epoch and a last line

    RESULT model=lenet epochs=10 threads=1 median_epoch_s=1.234 final_test_acc=0.8512 max_rss_mib=312.5

(max_rss_mib: the process's peak resident memory in MiB, getrusage). Run it with /usr/bin/python3
(Debian's python3-torch); set OMP_WAIT_POLICY and OPENBLAS_NUM_THREADS in the environment
as the benchmark does.
"""
import argparse
import gzip
import os
import resource
import statistics
import sys
import time

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "parity"))
from brick_torch import Inception, Residual, add_training_args  # noqa: E402


def read_idx(path, want_ndim):
    """A u8 IDX file (plain or gzip) as a numpy array, with its header checked."""
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08 or raw[3] != want_ndim:
        sys.exit(f"train_torch.py: {path}: not a u8 IDX file of {want_ndim} dims")
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(want_ndim)]
    start = 4 + 4 * want_ndim
    if len(raw) - start != int(np.prod(dims)):
        sys.exit(f"train_torch.py: {path}: {len(raw) - start} data bytes for dims {dims}")
    return np.frombuffer(raw, dtype=np.uint8, offset=start).reshape(dims)


def find(data, name):
    for p in (os.path.join(data, name), os.path.join(data, name + ".gz")):
        if os.path.exists(p):
            return p
    sys.exit(f"train_torch.py: no {name}[.gz] in {data}")


def load(data, split):
    x = read_idx(find(data, f"{split}-images-idx3-ubyte"), 3)
    y = read_idx(find(data, f"{split}-labels-idx1-ubyte"), 1)
    x = torch.from_numpy(x.astype(np.float32) / 255.0).unsqueeze(1)  # (N, 1, 28, 28)
    return x, torch.from_numpy(y.astype(np.int64))


# ---- the zoo (src/models/zoo.c), module for module ---------------------------------------

# Residual and Inception: D2L's blocks, as brick's, from tests/parity/brick_torch.py.


def resnet_stage(in_channels, channels, first_stage):
    first = Residual(in_channels, channels) if first_stage else Residual(in_channels, channels, True, 2)
    return nn.Sequential(first, Residual(channels, channels))


def build(name, hidden, width, n_classes=10):
    if name == "softmax":
        return nn.Sequential(nn.Flatten(), nn.Linear(784, n_classes))
    if name == "mlp":
        return nn.Sequential(nn.Flatten(), nn.Linear(784, hidden), nn.ReLU(), nn.Linear(hidden, n_classes))
    if name == "lenet":
        return nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2, 2),
                             nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2, 2), nn.Flatten(),
                             nn.Linear(16 * 5 * 5, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(),
                             nn.Linear(84, n_classes))
    if name == "resnet":
        w = width
        return nn.Sequential(nn.Sequential(nn.Conv2d(1, w, 3, 1, 1), nn.BatchNorm2d(w), nn.ReLU()),
                             resnet_stage(w, w, True), resnet_stage(w, 2 * w, False),
                             resnet_stage(2 * w, 4 * w, False), resnet_stage(4 * w, 8 * w, False),
                             nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten(), nn.Linear(8 * w, n_classes))
    if name == "googlenet":
        b1 = nn.Sequential(nn.Conv2d(1, 32, 3, 1, 1), nn.ReLU(), nn.MaxPool2d(3, 2, 1))
        b2 = nn.Sequential(Inception(32, 16, (24, 32), (4, 8), 8), Inception(64, 32, (32, 48), (8, 24), 16),
                           nn.MaxPool2d(3, 2, 1))
        b3 = nn.Sequential(Inception(120, 48, (24, 52), (4, 12), 16), Inception(128, 64, (40, 80), (8, 32), 32),
                           nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten())
        return nn.Sequential(b1, b2, b3, nn.Linear(208, n_classes))
    sys.exit(f"train_torch.py: unknown model '{name}' (softmax, mlp, lenet, resnet, googlenet)")


def parse_spec(a):
    """--model resnet:width=8 -> a.model = resnet, a.width = 8 (brick's spec syntax)."""
    name, _, settings = a.model.partition(":")
    a.model = name
    for kv in filter(None, settings.split(",")):
        key, eq, value = kv.partition("=")
        if not eq or key not in ("hidden", "width") or not value.isdigit() or int(value) <= 0:
            sys.exit(f"train_torch.py: bad model setting '{kv}' (hidden=N for mlp, width=N for resnet)")
        setattr(a, key, int(value))


def make_optimizer(a, params):
    if a.optimizer == "sgd":
        return torch.optim.SGD(params, lr=a.lr, momentum=a.momentum, weight_decay=a.weight_decay or 0.0)
    if a.optimizer == "adam":
        return torch.optim.Adam(params, lr=a.lr, weight_decay=a.weight_decay or 0.0)
    if a.optimizer == "adamw":
        wd = 0.01 if a.weight_decay is None else a.weight_decay
        return torch.optim.AdamW(params, lr=a.lr, weight_decay=wd)
    if a.optimizer == "rmsprop":
        return torch.optim.RMSprop(params, lr=a.lr, momentum=a.momentum, weight_decay=a.weight_decay or 0.0)
    if a.optimizer == "adagrad":
        return torch.optim.Adagrad(params, lr=a.lr, weight_decay=a.weight_decay or 0.0)
    sys.exit(f"train_torch.py: unknown optimizer '{a.optimizer}' (sgd, adam, adamw, rmsprop, adagrad)")


def make_scheduler(a, opt, steps_per_epoch):
    """brick train's --lr-schedule: a torch.optim.lr_scheduler (OneCycleLR: stepped after every
    batch; ReduceLROnPlateau: with the test loss; the others once per epoch), or None."""
    if a.lr_schedule == "none":
        return None
    if a.lr_schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=a.epochs, eta_min=a.lr_min)
    if a.lr_schedule == "step":
        if a.lr_step_size is None or a.lr_step_size < 1:
            sys.exit("train_torch.py: --lr-schedule step needs --lr-step-size N (N >= 1)")
        return torch.optim.lr_scheduler.StepLR(opt, step_size=a.lr_step_size, gamma=a.lr_gamma)
    if a.lr_schedule == "onecycle":  # brick's optimizers keep their momentum: no cycling
        return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=a.lr, epochs=a.epochs,
                                                   steps_per_epoch=steps_per_epoch, cycle_momentum=False)
    if a.lr_schedule == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=a.lr_gamma, patience=a.lr_patience)
    sys.exit(f"train_torch.py: unknown --lr-schedule '{a.lr_schedule}' (none, cosine, step, onecycle, plateau)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_training_args(ap, model="mlp", data="/usr/share/datasets/fashion-mnist", epochs=10,
                      batch_size=256, lr=0.1, momentum=0.0)
    ap.add_argument("--optimizer", default="sgd")
    ap.add_argument("--weight-decay", type=float, default=None)
    ap.add_argument("--lr-schedule", default="none")
    ap.add_argument("--lr-step-size", type=int, default=None)
    ap.add_argument("--lr-gamma", type=float, default=0.1)
    ap.add_argument("--lr-min", type=float, default=0.0)
    ap.add_argument("--lr-patience", type=int, default=10)
    a = ap.parse_args()
    parse_spec(a)

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    xtr, ytr = load(a.data, "train")
    xte, yte = load(a.data, "t10k")
    net = build(a.model, a.hidden, a.width)
    loss_fn = nn.CrossEntropyLoss()
    opt = make_optimizer(a, net.parameters())
    gen = torch.Generator().manual_seed(a.seed)
    n = xtr.shape[0]
    sched = make_scheduler(a, opt, (n + a.batch_size - 1) // a.batch_size)
    per_step = a.lr_schedule == "onecycle"
    times, test_acc = [], 0.0
    for epoch in range(1, a.epochs + 1):
        t0 = time.perf_counter()
        lr = opt.param_groups[0]["lr"]
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
            if per_step:
                lr = opt.param_groups[0]["lr"]  # (printed: the lr of the epoch's last step)
                if sched.last_epoch < sched.total_steps:  # brick keeps the last lr past the end
                    sched.step()
            total += loss.item() * len(idx)
            correct += (out.argmax(1) == y).sum().item()
        net.eval()
        test_total, test_correct = 0.0, 0
        with torch.no_grad():
            for i in range(0, xte.shape[0], a.batch_size):
                out = net(xte[i:i + a.batch_size])
                test_total += F.cross_entropy(out, yte[i:i + a.batch_size], reduction="sum").item()
                test_correct += (out.argmax(1) == yte[i:i + a.batch_size]).sum().item()
        if a.lr_schedule == "plateau":
            sched.step(test_total / xte.shape[0])
        elif sched is not None and not per_step:
            sched.step()
        secs = time.perf_counter() - t0
        times.append(secs)
        test_acc = test_correct / xte.shape[0]
        print(f"epoch {epoch:2d}/{a.epochs}  train loss {total / n:.4f}  train acc {correct / n:.4f}  "
              f"test loss {test_total / xte.shape[0]:.4f}  test acc {test_acc:.4f}  {secs:.2f} s"
              + (f"  lr {lr:.6g}" if sched is not None else ""),
              flush=True)
    max_rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # ru_maxrss: KiB on Linux
    print(f"RESULT model={a.model} epochs={a.epochs} threads={a.threads} "
          f"median_epoch_s={statistics.median(times):.4f} final_test_acc={test_acc:.4f} "
          f"max_rss_mib={max_rss_mib:.1f}")


if __name__ == "__main__":
    main()
