#!/usr/bin/env python3
"""seed_mlp_torch.py - PyTorch's side of bench/seed_mlp.c: the same steps on the same model.

    OMP_WAIT_POLICY=PASSIVE env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE \\
        python3 bench/seed_mlp_torch.py [-r REPEATS] [-n ITERS] [-t THREADS] [-c]

Sequential(Linear(20, 256), ReLU, Linear(256, 10)), input (2, 20) made once; cases:
  forward            y = net(x)
  forward+backward   net(x).sum().backward() (gradients accumulate, no zero_grad)
  forward no_grad    y = net(x) under torch.no_grad()
Prints microseconds per iteration, the median and the fastest of REPEATS timed loops of
ITERS iterations each, in seed_mlp.c's format. PyTorch at its best here is 1 thread
(torch.set_num_threads(1), the default of -t). -c: the process's CPU time instead of the
wall clock, as seed_mlp.c's -c.
"""
import argparse
import time

import torch


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-r", type=int, default=21)
    ap.add_argument("-n", type=int, default=20000)
    ap.add_argument("-t", type=int, default=1)
    ap.add_argument("-c", action="store_true")
    args = ap.parse_args()
    clock = time.process_time if args.c else time.perf_counter
    torch.set_num_threads(args.t)
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(20, 256), torch.nn.ReLU(), torch.nn.Linear(256, 10))
    x = torch.arange(40, dtype=torch.float32).remainder(7).mul(0.25).sub(0.75).reshape(2, 20)

    def forward():
        net(x)

    def forward_backward():
        net(x).sum().backward()

    def forward_no_grad():
        with torch.no_grad():
            net(x)

    cases = [("forward", forward), ("forward+backward", forward_backward),
             ("forward no_grad", forward_no_grad)]
    print(f"seed MLP Sequential(Linear(20, 256), ReLU, Linear(256, 10)), batch 2, "
          f"{torch.get_num_threads()} thread(s), torch {torch.__version__}")
    what = "CPU time" if args.c else "wall clock"
    print(f"{'case':<18} {'median':>10} {'best':>10}   (µs per iteration, {what}, {args.r} repeats of {args.n})")
    for name, fn in cases:
        for _ in range(args.n // 10 + 1):
            fn()
        times = []
        for _ in range(args.r):
            t0 = clock()
            for _ in range(args.n):
                fn()
            times.append((clock() - t0) / args.n * 1e6)
        times.sort()
        print(f"{name:<18} {times[len(times) // 2]:10.3f} {times[0]:10.3f}")


if __name__ == "__main__":
    main()
