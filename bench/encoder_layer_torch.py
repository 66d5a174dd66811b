#!/usr/bin/python3
"""encoder_layer_torch.py - times one nn.TransformerEncoderLayer training step in PyTorch,
the counterpart of bench/encoder_layer.c (same sizes, same step, same report).

Usage:  OMP_WAIT_POLICY=PASSIVE /usr/bin/python3 bench/encoder_layer_torch.py
            [--batch 32] [--seq 64] [--d-model 128] [--heads 4] [--ff 512] [--iters 30]
            [--warmup 5] [--runs 5] [--threads 1,2] [--batch-first] [--gelu]

Each iteration: zero the gradients, Y = layer(X) in training mode with dropout 0 (torch's
standard path, not the inference fast path), L = (Y * R).sum(), backward. A run's time is
the median over its iterations; runs alternate over the thread counts
(torch.set_num_threads), and the faster thread count's median of runs is reported last.
The process CPU time per step (all threads) is reported too, as by encoder_layer.c.
OMP_WAIT_POLICY must be set before torch starts its thread pool, hence in the environment.
"""
import argparse
import os
import statistics
import sys

import torch
from torch import nn

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "parity"))
from brick_torch import time_steps  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seq", type=int, default=64)
    ap.add_argument("--d-model", type=int, default=128)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--ff", type=int, default=512)
    ap.add_argument("--iters", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--batch-first", action="store_true")
    ap.add_argument("--gelu", action="store_true")
    a = ap.parse_args()

    torch.manual_seed(1)
    layer = nn.TransformerEncoderLayer(a.d_model, a.heads, a.ff, dropout=0.0,
                                       activation="gelu" if a.gelu else "relu",
                                       batch_first=a.batch_first)
    layer.train()
    shape = (a.batch, a.seq, a.d_model) if a.batch_first else (a.seq, a.batch, a.d_model)
    X = torch.randn(shape, requires_grad=True)
    R = torch.randn(shape)

    def step():
        layer.zero_grad(set_to_none=False)
        X.grad = None
        Y = layer(X)
        (Y * R).sum().backward()

    threads = [int(t) for t in a.threads.split(",")]
    medians = {t: [] for t in threads}
    cpu_medians = {t: [] for t in threads}
    for r in range(a.runs):
        for t in threads:
            torch.set_num_threads(t)
            times, cpu = time_steps(step, a.warmup, a.iters)
            medians[t].append(statistics.median(times))
            cpu_medians[t].append(statistics.median(cpu))
            print(f"torch run {r + 1} threads {t}: median {medians[t][-1]:.2f} ms/step "
                  f"(cpu {cpu_medians[t][-1]:.2f} ms) over {a.iters} steps")
    best = min(threads, key=lambda t: statistics.median(medians[t]))
    for t in threads:
        print(f"torch threads {t}: median of {a.runs} runs {statistics.median(medians[t]):.2f} ms/step "
              f"(cpu {statistics.median(cpu_medians[t]):.2f} ms/step)")
    print(f"torch {torch.__version__} encoder layer B={a.batch} T={a.seq} d_model={a.d_model} "
          f"heads={a.heads} ff={a.ff} {'batch_first' if a.batch_first else '(T, B, E)'} "
          f"{'gelu' if a.gelu else 'relu'} (OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}): "
          f"best threads {best}, median of {a.runs} runs {statistics.median(medians[best]):.2f} ms/step")


if __name__ == "__main__":
    main()
