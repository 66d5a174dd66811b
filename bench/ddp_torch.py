#!/usr/bin/env python3
"""ddp_torch.py - the PyTorch DistributedDataParallel (gloo) side of bench/dist_epoch.sh.

    /usr/bin/python3 bench/ddp_torch.py [--model lenet] [--world 2] [--data DIR] [--epochs 1]
        [--batch-size 128] [--lr 0.02] [--momentum 0.9] [--threads 1] [--seed 0]

Starts --world processes on this machine (torch.multiprocessing, gloo over 127.0.0.1),
each with --threads threads, each with the model of bench/train_torch.py (brick's zoo in
torch.nn) wrapped in DistributedDataParallel. Every epoch the training split is shuffled
from the shared seed and every global batch of --batch-size is cut into --world slices,
the first B % world one sample longer (as `mpirun -np P brick train` does); each rank's
loss is the mean over its slice (DDP averages the gradients over the ranks). After the
epoch rank 0 evaluates the test split (the others wait at a barrier), as brick's rank 0
does. Prints rank 0's epoch lines and a last line

    RESULT model=lenet world=2 threads=1 median_epoch_s=1.234 final_test_acc=0.8512
"""
import argparse
import os
import socket
import statistics
import sys
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel as DDP

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from train_torch import add_training_args, build, load, parse_spec  # noqa: E402


def worker(rank, a, port):
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=a.world)
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    xtr, ytr = load(a.data, "train")
    xte, yte = load(a.data, "t10k")
    net = DDP(build(a.model, a.hidden, a.width))
    opt = torch.optim.SGD(net.parameters(), lr=a.lr, momentum=a.momentum)
    gen = torch.Generator().manual_seed(a.seed)
    n, P, times, acc = xtr.shape[0], a.world, [], 0.0
    for epoch in range(1, a.epochs + 1):
        t0 = time.perf_counter()
        net.train()
        perm = torch.randperm(n, generator=gen)
        for i in range(0, n, a.batch_size):
            idx = perm[i:i + a.batch_size]
            B = len(idx)
            off = rank * (B // P) + min(rank, B % P)
            mine = idx[off:off + B // P + (rank < B % P)]
            loss = F.cross_entropy(net(xtr[mine]), ytr[mine])
            opt.zero_grad()
            loss.backward()
            opt.step()
        if rank == 0:
            net.eval()
            correct = 0
            with torch.no_grad():
                for i in range(0, xte.shape[0], a.batch_size):
                    out = net.module(xte[i:i + a.batch_size])
                    correct += (out.argmax(1) == yte[i:i + a.batch_size]).sum().item()
            acc = correct / xte.shape[0]
        dist.barrier()
        secs = time.perf_counter() - t0
        times.append(secs)
        if rank == 0:
            print(f"epoch {epoch}/{a.epochs}  test acc {acc:.4f}  {secs:.2f} s", flush=True)
    if rank == 0:
        print(f"RESULT model={a.model} world={a.world} threads={a.threads} "
              f"median_epoch_s={statistics.median(times):.4f} final_test_acc={acc:.4f}", flush=True)
    dist.destroy_process_group()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_training_args(ap, model="lenet", data="data/fashion-mnist-subset", epochs=1, batch_size=128,
                      lr=0.02, momentum=0.9)
    ap.add_argument("--world", type=int, default=2)
    a = ap.parse_args()
    parse_spec(a)
    with socket.socket() as s:  # a free port for the rendezvous
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(worker, args=(a, port), nprocs=a.world, join=True)


if __name__ == "__main__":
    main()
