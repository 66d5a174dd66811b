#!/usr/bin/python3
"""model_torch.py - PyTorch's side of bench/compare.py: the workloads of bench/model_bench.c
(see there), timed the same way, for each intra-op thread count asked for.

    OMP_WAIT_POLICY=PASSIVE OPENBLAS_NUM_THREADS=K /usr/bin/python3 bench/model_torch.py
        WORKLOAD [--model SPEC] [--batch B] [--lr LR] [--momentum M] [--iters N]
        [--warmup W] [--threads 1,2]
    /usr/bin/python3 bench/model_torch.py blas-check

WORKLOAD: train, infer, seed-fwd, seed-train, sgemm, as in model_bench.c; the models are
bench/train_torch.py's (the zoo rebuilt with torch.nn). For every thread count T
(torch.set_num_threads, in the order given) W warm-up iterations, then N timed ones (short
ones in groups of G, as model_bench.c times them); one line

    RESULT threads=T median_ms=1.234 cpu_ms=1.200 iters=N group=G

blas-check prints which BLAS torch loaded (the libblas* mapped into the process, and, if it
is OpenBLAS, openblas_get_corename / openblas_get_num_threads through ctypes), the GFLOP/s
of torch.mm on 512 x 512 float32 matrices with 1 intra-op thread (per CPU second of the
process, median of 9 repeats of 50 ms) and the largest relative error of that product
against float64 (max |C - C64| / max |C64|), as one line

    BLAS lib=/usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3 core=Cooperlake threads=1 gflops=104.1 rel_err=4.89e-07
"""
import argparse
import ctypes
import os
import statistics
import sys
import time

import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from train_torch import build, parse_spec  # noqa: E402
from brick_torch import time_steps  # noqa: E402  (train_torch put its directory on sys.path)


def blas_lib():
    """The BLAS torch loaded: the first mapped libblas* or libopenblas* (Debian's torch links
    libblas.so.3, which the alternatives system points at OpenBLAS or the reference BLAS)."""
    with open("/proc/self/maps") as f:
        paths = sorted({line.split()[-1] for line in f if "/" in line})
    for p in paths:
        if os.path.basename(p).startswith(("libblas", "libopenblas")):
            return p
    return None


def blas_check():
    lib = blas_lib()
    core, nthreads = "none (not OpenBLAS)", "-"
    try:
        handle = ctypes.CDLL(lib)
        get_core = handle.openblas_get_corename
        get_core.restype = ctypes.c_char_p
        core = get_core().decode()
        nthreads = handle.openblas_get_num_threads()
    except (OSError, AttributeError, TypeError):
        pass
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    a = torch.rand(512, 512, generator=g) * 2 - 1
    b = torch.rand(512, 512, generator=g) * 2 - 1
    c = torch.mm(a, b)
    ref = torch.mm(a.double(), b.double())
    rel_err = ((c.double() - ref).abs().max() / ref.abs().max()).item()
    # The rate per CPU second of this process: with 1 thread that is the core's speed even
    # when other processes share the core (a wall-clock rate halves on a loaded machine).
    rates = []
    for _ in range(9):
        n, c0 = 0, time.process_time()
        while True:
            torch.mm(a, b)
            n += 1
            dt = time.process_time() - c0
            if dt > 0.05:
                break
        rates.append(2 * 512 ** 3 * n / dt / 1e9)
    print(f"BLAS lib={lib} core={core.replace(' ', '_')} threads={nthreads} "
          f"gflops={statistics.median(rates):.1f} rel_err={rel_err:.2e}")


def time_grouped(step, warmup, iters, min_groups=21):
    """model_bench.c's timing: steps shorter than 0.5 ms timed in groups of G (doubled from 1
    until a group takes 0.5 ms), at least min_groups groups and iters steps; (wall ms, CPU ms)
    per step for each group, and G. The clocks' own cost (process_time is a system call of
    ~5 us in this VM) is then spread over the group instead of added to every step."""
    for _ in range(warmup):
        step()
    group = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(group):
            step()
        if time.perf_counter() - t0 >= 5e-4 or group >= 1 << 20:
            break
        group *= 2
    if group == 1:
        return (*time_steps(step, 0, iters), 1)
    wall, cpu = [], []
    for _ in range(max(min_groups, -(-iters // group))):
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(group):
            step()
        wall.append((time.perf_counter() - t0) * 1e3 / group)
        cpu.append((time.process_time() - c0) * 1e3 / group)
    return wall, cpu, group


def setup(a):
    """The module, the step function and what it closes over, for a.workload."""
    torch.manual_seed(0)
    B = a.batch
    if a.workload == "sgemm":
        A, B2 = torch.rand(B, B) * 2 - 1, torch.rand(B, B) * 2 - 1
        torch.set_grad_enabled(False)
        return lambda: torch.mm(A, B2)
    if a.workload in ("seed-fwd", "seed-train"):
        net = nn.Sequential(nn.Linear(20, 256), nn.ReLU(), nn.Linear(256, 10))
        X = torch.rand(B, 20)
        if a.workload == "seed-fwd":
            torch.set_grad_enabled(False)
            return lambda: net(X)

        def seed_train():
            net.zero_grad(set_to_none=False)
            net(X).sum().backward()
        return seed_train
    parse_spec(a)
    net = build(a.model, a.hidden, a.width)
    X = torch.rand(B, 1, 28, 28)
    y = torch.randint(0, 10, (B,))
    if a.workload == "infer":
        net.eval()
        torch.set_grad_enabled(False)
        return lambda: net(X)
    loss_fn = nn.CrossEntropyLoss()
    opt = torch.optim.SGD(net.parameters(), lr=a.lr, momentum=a.momentum)

    def train_step():
        loss = loss_fn(net(X), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return train_step


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("workload", choices=["train", "infer", "seed-fwd", "seed-train", "sgemm", "blas-check"])
    ap.add_argument("--model", default="mlp")
    ap.add_argument("--batch", type=int, default=None)
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--momentum", type=float, default=0.0)
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", default="1,2")
    a = ap.parse_args()
    if a.workload == "blas-check":
        blas_check()
        return
    if a.batch is None:
        a.batch = {"seed-fwd": 2, "seed-train": 2, "sgemm": 512, "infer": 1}.get(a.workload, 128)
    a.hidden, a.width = 256, 32  # train_torch.build's defaults; a spec overrides them
    step = setup(a)
    for t in (int(s) for s in a.threads.split(",")):
        torch.set_num_threads(t)
        wall, cpu, group = time_grouped(step, a.warmup, a.iters)
        print(f"RESULT threads={t} median_ms={statistics.median(wall):.6f} "
              f"cpu_ms={statistics.median(cpu):.6f} iters={len(wall) * group} group={group}", flush=True)


if __name__ == "__main__":
    main()
