#!/usr/bin/env python3
"""compare.py - every benchmark workload in brick and in PyTorch, in one run, on one machine.

    bench/compare.py [--quick] [--only NAME[,NAME...]] [--rounds N] [--list]
                     [--write-docs [FILE]] [--build DIR] [--python PY]

Runs each workload below with brick (build/bench/model_bench, build/bench/encoder_layer,
build/brick train-lm) and with PyTorch (bench/model_torch.py, bench/encoder_layer_torch.py,
bench/lm_torch.py), alternating the two sides round by round (brick first in odd rounds,
PyTorch first in even ones) so that a change in machine load hits both, and prints one table:
workload, brick, PyTorch, the ratio brick / PyTorch of times (below 1: brick is faster; for
tokens/s, the inverse ratio of the rates, so that below 1 still means brick is faster), the
thread setting each side chose, the ratio of the process CPU times per iteration at 1
thread (all of the process's threads; on a shared, loaded machine other processes take
turns on the cores and stretch wall times, CPU times much less: the steadier figure there)
and each side's peak resident memory (the largest over its processes for that workload,
from wait4's ru_maxrss).

  seed-mlp-fwd     the seed MLP (examples/01_sequential_mlp.c: Linear(20, 256), ReLU,
                   Linear(256, 10)) forward, batch 2, grad off
  seed-mlp-train   the same forward and Y.sum().backward(), batch 2
  mlp-epoch        a training step of `brick train`'s MLP (SGD lr 0.1, batch 256)
  lenet-epoch      a training step of the zoo's LeNet (SGD lr 0.02 momentum 0.9, batch 128)
  resnet8-epoch    the same for resnet:width=8
  googlenet-epoch  the same for the zoo's small GoogLeNet
  encoder-step     one TransformerEncoderLayer training step (B 32, T 64, d 128, 4 heads,
                   ff 512: bench/encoder_layer.sh's workload)
  sgemm512         C = A @ B, 512 x 512 x 512 float32, 1 thread on both sides
  lm-tokens        `brick train-lm`'s training tokens/s beside bench/lm_torch.py, both from
                   brick's initial weights (bench/lm_tokens.sh's workload)
  lenet-infer      single-image inference latency (batch 1, eval mode, grad off), LeNet
  resnet8-infer    the same for resnet:width=8
  *-speedup        (derived, no runs of its own) for mlp, lenet and resnet8: each side's
                   1-thread step time over its best 2-thread one

Epoch workloads are measured on a fixed number of training steps on one random batch
(data loading and the test evaluation are not timed on either side) and shown per step and
extrapolated to an epoch of Fashion-MNIST's 60,000 images (ceil(60000 / batch) steps).

Threads: brick runs with OMP_WAIT_POLICY=PASSIVE and 1 and 2 threads. PyTorch is set up at
its best: OMP_WAIT_POLICY=PASSIVE, OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE removed from its
environment (this command only: they pin OpenBLAS to an older kernel), intra-op threads 1
and 2 (torch.set_num_threads) times OpenBLAS threads 1 and 2 (OPENBLAS_NUM_THREADS). Each
side keeps its fastest setting (median over the rounds). Before anything else the script
runs `model_torch.py blas-check`: which OpenBLAS kernel torch then uses, torch.mm's GFLOP/s
at 1 thread and its error against float64; below 50 GFLOP/s (the reference BLAS, not
OpenBLAS: scripts/deps.sh installs libopenblas0-pthread) it prints PyTorch's times but
refuses every ratio, and --write-docs fails.

--quick      1 round with few iterations (a smoke test: the numbers mean little)
--only       workloads whose name contains one of the comma-separated strings
--rounds N   rounds per workload (default 5; lm-tokens 3)
--write-docs replaces the section between the markers `<!-- compare.py begin -->` and
             `<!-- compare.py end -->` of FILE (default docs/performance.md) with the table,
             the machine (CPU model, family/model, ISA), the date and the command. Needs the
             full run (no --quick, no --only) and PyTorch.
--list       prints the workload names and exits

Without PyTorch (BRICK_PYTHON or --python cannot import torch) only brick's side runs.
Environment: BRICK_BUILD (as --build), BRICK_PYTHON (as --python), BRICK (the brick CLI to
run, default BUILD/brick; the test suite puts its valgrind wrapper there).
Exit status: 0 when every run worked (also when ratios are refused), 1 when a run failed,
2 on bad arguments.
"""
import argparse
import datetime
import math
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MIN_GFLOPS = 50.0
BEGIN, END = "<!-- compare.py begin -->", "<!-- compare.py end -->"
TORCH_DROP = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
ONE_THREAD = r"1 thread|intra-op 1, OpenBLAS 1"  # the configuration label of 1 thread on each side


# ---- the workloads ------------------------------------------------------------------------

def W(name, what, kind, args=(), iters=20, quick_iters=3, warmup=3, batch=None, unit="ms",
      one_thread=False, rounds=None):
    return dict(name=name, what=what, kind=kind, args=list(args), iters=iters, quick_iters=quick_iters,
                warmup=warmup, batch=batch, unit=unit, one_thread=one_thread, rounds=rounds)


SGD_CNN = ["--lr", "0.02", "--momentum", "0.9"]
WORKLOADS = [
    W("seed-mlp-fwd", "seed MLP forward, batch 2", "model", ["seed-fwd"], 2000, 50, 50, unit="us"),
    W("seed-mlp-train", "seed MLP forward + backward, batch 2", "model", ["seed-train"], 1000, 50, 50,
      unit="us"),
    W("mlp-epoch", "MLP training step, batch 256 (SGD 0.1)", "model",
      ["train", "--model", "mlp", "--lr", "0.1", "--momentum", "0"], 100, 5, 5, batch=256),
    W("lenet-epoch", "LeNet training step, batch 128 (SGD 0.02 m 0.9)", "model",
      ["train", "--model", "lenet"] + SGD_CNN, 40, 3, 3, batch=128),
    W("resnet8-epoch", "ResNet width 8 training step, batch 128", "model",
      ["train", "--model", "resnet:width=8"] + SGD_CNN, 8, 1, 2, batch=128),
    W("googlenet-epoch", "GoogLeNet training step, batch 128", "model",
      ["train", "--model", "googlenet"] + SGD_CNN, 8, 1, 2, batch=128),
    W("encoder-step", "TransformerEncoderLayer step (B 32, T 64, d 128)", "encoder", [], 20, 2, 3),
    W("sgemm512", "SGEMM 512^3, 1 thread", "model", ["sgemm"], 50, 5, 5, one_thread=True),
    W("lm-tokens", "train-lm training tokens/s", "lm", [], 60, 5, 0, unit="tokens/s", rounds=3),
    W("lenet-infer", "LeNet inference latency, 1 image", "model", ["infer", "--model", "lenet"], 300, 20, 30,
      unit="us"),
    W("resnet8-infer", "ResNet width 8 inference latency, 1 image", "model",
      ["infer", "--model", "resnet:width=8"], 100, 10, 10, unit="us"),
]
SPEEDUPS = [("mlp-speedup", "mlp-epoch", "MLP"), ("lenet-speedup", "lenet-epoch", "LeNet"),
            ("resnet8-speedup", "resnet8-epoch", "ResNet width 8")]


# ---- running a process --------------------------------------------------------------------

class RunError(Exception):
    pass


def run(cmd, env):
    """Runs cmd; returns (its output, its peak RSS in MiB). Raises RunError on failure."""
    with tempfile.TemporaryFile(mode="w+") as out:
        p = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        _, status, usage = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read()
    if p.returncode != 0:
        raise RunError(f"{' '.join(cmd)} failed (exit {p.returncode}):\n{text[-3000:]}")
    return text, usage.ru_maxrss / 1024.0


def results(text, cmd):
    """{threads: (median_ms, cpu_ms)} from the RESULT lines of model_bench / model_torch.py."""
    got = {int(t): (float(ms), float(cpu)) for t, ms, cpu in
           re.findall(r"^RESULT threads=(\d+) median_ms=([0-9.]+) cpu_ms=([0-9.]+)", text, re.M)}
    if not got:
        raise RunError(f"{' '.join(cmd)}: no RESULT line in:\n{text[-2000:]}")
    return got


def load1():
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


class Bench:
    def __init__(self, a):
        self.a = a
        self.build = a.build
        self.brick = a.brick
        self.py = a.python
        base = dict(os.environ, OMP_WAIT_POLICY="PASSIVE")
        self.brick_env = base
        self.torch_base = {k: v for k, v in base.items() if k not in TORCH_DROP}
        self.loads = []
        self.tmp = tempfile.mkdtemp(prefix="brick-compare-")

    def torch_env(self, blas):
        return dict(self.torch_base, OPENBLAS_NUM_THREADS=str(blas))

    def iters(self, w):
        return w["quick_iters"] if self.a.quick else w["iters"]

    def rounds(self, w):
        if self.a.quick:
            return 1
        return self.a.rounds or w["rounds"] or 5

    # Each side's run of one round: a list of (config label, value, rss).
    def brick_round(self, w):
        threads = [1] if w["one_thread"] else [1, 2]
        n = self.iters(w)
        if w["kind"] == "model":
            cmd = [f"{self.build}/bench/model_bench"] + w["args"] + [
                "--iters", str(n), "--warmup", str(w["warmup"]), "--threads", ",".join(map(str, threads))]
            if w["batch"]:
                cmd += ["--batch", str(w["batch"])]
            text, rss = run(cmd, self.brick_env)
            return [(f"{t} thread{'s' * (t > 1)}", ms, rss, cpu) for t, (ms, cpu) in results(text, cmd).items()]
        out = []
        for t in threads:
            if w["kind"] == "encoder":
                cmd = [f"{self.build}/bench/encoder_layer", "--iters", str(n), "--warmup", str(w["warmup"]),
                       "--runs", "1"]
                text, rss = run(cmd, dict(self.brick_env, OMP_NUM_THREADS=str(t)))
                m = re.search(r"median of 1 runs ([0-9.]+) ms/step \(cpu ([0-9.]+) ms/step\)", text)
            else:  # lm
                # --force: each round replaces the last one's files (train-lm refuses otherwise)
                cmd = [self.brick, "train-lm", "--steps", str(n), "--eval-every", "0", "--threads",
                       str(t), "--force", "--out", os.path.join(self.tmp, "lm.safetensors")]
                text, rss = run(cmd, self.brick_env)
                m = re.search(r"^training: .*: ([0-9.]+) tokens/s$", text, re.M)
                self.note_val("brick", t, text)
            if not m:
                raise RunError(f"{' '.join(cmd)}: no result in:\n{text[-2000:]}")
            cpu = float(m.group(2)) if w["kind"] == "encoder" else None
            out.append((f"{t} thread{'s' * (t > 1)}", float(m.group(1)), rss, cpu))
        return out

    def torch_round(self, w, r):
        blas_counts = [1] if w["one_thread"] else ([1, 2] if r % 2 else [2, 1])
        threads = [1] if w["one_thread"] else [1, 2]
        n = self.iters(w)
        out = []
        for b in blas_counts:
            env = self.torch_env(b)
            label = lambda t: f"intra-op {t}, OpenBLAS {b}"  # noqa: E731
            if w["kind"] == "model":
                cmd = [self.py, "bench/model_torch.py"] + w["args"] + [
                    "--iters", str(n), "--warmup", str(w["warmup"]), "--threads", ",".join(map(str, threads))]
                if w["batch"]:
                    cmd += ["--batch", str(w["batch"])]
                text, rss = run(cmd, env)
                out += [(label(t), ms, rss, cpu) for t, (ms, cpu) in results(text, cmd).items()]
            elif w["kind"] == "encoder":
                cmd = [self.py, "bench/encoder_layer_torch.py", "--iters", str(n), "--warmup", str(w["warmup"]),
                       "--runs", "1", "--threads", ",".join(map(str, threads))]
                text, rss = run(cmd, env)
                got = re.findall(r"^torch threads (\d+): median of 1 runs ([0-9.]+) ms/step \(cpu ([0-9.]+) ms/step\)",
                                 text, re.M)
                if not got:
                    raise RunError(f"{' '.join(cmd)}: no result in:\n{text[-2000:]}")
                out += [(label(int(t)), float(ms), rss, float(cpu)) for t, ms, cpu in got]
            else:  # lm: one intra-op thread count per process
                for t in threads:
                    cmd = [self.py, "bench/lm_torch.py", "--steps", str(n), "--eval-every", "0", "--threads", str(t),
                           "--init", self.lm_init]
                    text, rss = run(cmd, env)
                    m = re.search(r"^RESULT .*tokens_per_s=([0-9.]+)", text, re.M)
                    if not m:
                        raise RunError(f"{' '.join(cmd)}: no RESULT in:\n{text[-2000:]}")
                    self.note_val("torch", t, text)
                    out.append((label(t), float(m.group(1)), rss, None))
        return out

    def note_val(self, side, t, text):
        m = re.search(r"val loss ([0-9.]+)", text) if side == "brick" else re.search(r"val_loss=([0-9.]+)", text)
        if m:
            self.val[side] = m.group(1)

    def lm_setup(self):
        """brick's initial weights, which lm_torch.py starts from (as bench/lm_tokens.sh does)."""
        self.lm_init = os.path.join(self.tmp, "lm-init.safetensors")
        run([self.brick, "train-lm", "--steps", "0", "--threads", "1", "--force", "--out", self.lm_init],
            self.brick_env)
        self.val = {}

    def measure(self, w, with_torch):
        """Alternating rounds; returns {side: (best value, its config, max rss, {config: median},
        median CPU time at 1 thread or None)}."""
        if w["kind"] == "lm":
            self.lm_setup()
        per = {"brick": {}, "torch": {}}
        cpu1 = {"brick": [], "torch": []}
        rss = {"brick": 0.0, "torch": 0.0}
        for r in range(1, self.rounds(w) + 1):
            sides = ["brick", "torch"] if r % 2 else ["torch", "brick"]
            for side in sides:
                if side == "torch" and not with_torch:
                    continue
                self.loads.append(load1())
                got = self.brick_round(w) if side == "brick" else self.torch_round(w, r)
                for label, value, mib, cpu in got:
                    per[side].setdefault(label, []).append(value)
                    if cpu is not None and re.fullmatch(ONE_THREAD, label):
                        cpu1[side].append(cpu)
                    rss[side] = max(rss[side], mib)
            print(f"  round {r}: " + "; ".join(
                f"{side} " + ", ".join(f"{lab} {v[-1]:.4g}" for lab, v in per[side].items())
                for side in ("brick", "torch") if per[side]) + f" (load {self.loads[-1]:.2f})", flush=True)
        out = {}
        higher_better = w["unit"] == "tokens/s"
        for side in per:
            if not per[side]:
                continue
            meds = {lab: statistics.median(v) for lab, v in per[side].items()}
            best = (max if higher_better else min)(meds, key=meds.get)
            out[side] = (meds[best], best, rss[side], meds,
                         statistics.median(cpu1[side]) if cpu1[side] else None)
        return out


# ---- the table ----------------------------------------------------------------------------

def fmt_value(w, v):
    if w["unit"] == "tokens/s":
        return f"{v:,.0f} tokens/s"
    if w["unit"] == "us":
        return f"{v * 1e3:.1f} µs"
    if w["batch"]:
        steps = math.ceil(60000 / w["batch"])
        return f"{v:.2f} ms/step ({v * steps / 1e3:.1f} s/epoch)"
    return f"{v:.3f} ms"


def ratio_of(w, b, t):
    return t / b if w["unit"] == "tokens/s" else b / t


def table(rows, refuse):
    head = ["workload", "brick", "PyTorch", "brick / PyTorch", "brick threads", "PyTorch threads",
            "CPU time at 1 thread, brick / PyTorch", "peak RSS brick / PyTorch"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        lines.append("| " + " | ".join(r) + " |")
    if refuse:
        lines.append("")
        lines.append(f"No ratios: {refuse}")
    return "\n".join(lines)


def make_rows(done, refuse):
    rows = []
    for w, res in done:
        b = res.get("brick")
        t = res.get("torch")
        ratio = "-" if not (b and t) else "refused" if refuse else f"{ratio_of(w, b[0], t[0]):.2f}"
        rss = f"{b[2]:.0f} / {t[2]:.0f} MiB" if b and t else f"{b[2]:.0f} MiB / -"
        cpu = "-"
        if b and t and b[4] and t[4]:
            cpu = "refused" if refuse else f"{b[4] / t[4]:.2f}"
        rows.append([f"{w['name']}: {w['what']}", fmt_value(w, b[0]), fmt_value(w, t[0]) if t else "-", ratio,
                     b[1], t[1] if t else "-", cpu, rss])
    by_name = {w["name"]: res for w, res in done}
    for name, src, what in SPEEDUPS:
        res = by_name.get(src)
        if not res:
            continue
        cells = []
        for side in ("brick", "torch"):
            meds = res[side][3] if side in res else None
            if not meds:
                cells.append("-")
                continue
            one = [v for lab, v in meds.items() if re.fullmatch(ONE_THREAD, lab)]
            two = [v for lab, v in meds.items() if not re.fullmatch(ONE_THREAD, lab)]
            cells.append(f"{one[0] / min(two):.2f}x" if one and two else "-")
        rows.append([f"{name}: {what} training step, 1 -> 2 threads", cells[0], cells[1], "", "1 vs 2",
                     "1 vs best of the others", "", ""])
    return rows


# ---- the machine and the docs -------------------------------------------------------------

def lscpu():
    info = {}
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        for line in text.splitlines():
            k, _, v = line.partition(":")
            info[k.strip()] = v.strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    return info


def zen(family, model):
    """AMD's core generation from the CPU family and model (decimal)."""
    if family == 23:
        return "Zen 2" if model >= 0x30 else "Zen / Zen+"
    if family == 25:
        return "Zen 3" if model < 0x10 or 0x20 <= model < 0x60 else "Zen 4"
    if family == 26:
        return "Zen 5"
    return None


def machine():
    info = lscpu()
    name = info.get("Model name", "unknown CPU")
    fam, mod = info.get("CPU family", "?"), info.get("Model", "?")
    gen = zen(int(fam), int(mod)) if info.get("Vendor ID") == "AuthenticAMD" and fam.isdigit() and mod.isdigit() else None
    flags = set(info.get("Flags", "").split())
    isa = [f for f in ("avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16") if f in flags]
    cores = info.get("CPU(s)", "?")
    return (f"{name} (family {fam}, model {mod}{': ' + gen if gen else ''}), {cores} CPUs, "
            f"ISA {' '.join(isa) or 'no AVX2'}")


def versions(a, torch_ok, blas_line):
    try:
        bv = subprocess.run([a.brick, "--version"], capture_output=True, text=True).stdout.strip()
    except OSError:
        bv = "brick ?"
    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip()
    tv = "no PyTorch"
    if torch_ok:
        tv = "PyTorch " + subprocess.run([a.python, "-c", "import torch; print(torch.__version__)"],
                                         capture_output=True, text=True).stdout.strip()
    return f"{bv} (git {commit or '?'}{', with local changes' if dirty else ''}); {tv}; {blas_line}"


def write_docs(path, section):
    with open(path) as f:
        text = f.read()
    i, j = text.find(BEGIN), text.find(END)
    if i < 0 or j < i:
        raise SystemExit(f"compare.py: {path} has no '{BEGIN}' ... '{END}' markers to write between")
    new = text[:i + len(BEGIN)] + "\n" + section + "\n" + text[j:]
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(new)
    os.replace(tmp, path)
    print(f"compare.py: wrote the table into {path}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", default="")
    ap.add_argument("--rounds", type=int, default=0)
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--write-docs", nargs="?", const="docs/performance.md", default=None)
    ap.add_argument("--build", default=os.environ.get("BRICK_BUILD", "build"))
    ap.add_argument("--python", default=os.environ.get("BRICK_PYTHON", "/usr/bin/python3"))
    a = ap.parse_args()
    a.brick = os.environ.get("BRICK") or f"{a.build}/brick"
    if a.list:
        print("\n".join(w["name"] for w in WORKLOADS))
        return 0
    if a.rounds < 0:
        ap.error("--rounds must be positive")
    chosen = [w for w in WORKLOADS if not a.only or any(s and s in w["name"] for s in a.only.split(","))]
    if not chosen:
        ap.error(f"--only {a.only!r} matches no workload (see --list)")
    if a.write_docs and (a.quick or a.only):
        ap.error("--write-docs needs the full run (no --quick, no --only)")
    os.chdir(ROOT)
    need = [f"{a.build}/bench/model_bench", f"{a.build}/bench/encoder_layer", a.brick]
    if a.build == "build":
        # Always through make, not only when a program is missing: a stale build/brick next to
        # a rebuilt libbrick.a would time the old code (it happened: the train-lm row and the
        # version line of one run came from a brick built before the merges they reported).
        subprocess.run(["make", "-s", "-j2"] + need, check=True)
    missing = [p for p in need if not os.access(p, os.X_OK)]
    if missing:
        print(f"compare.py: missing {', '.join(missing)} (build them with make)", file=sys.stderr)
        return 1

    torch_ok = subprocess.run([a.python, "-c", "import torch"], capture_output=True).returncode == 0
    bench = Bench(a)
    refuse, blas_line = "", "PyTorch not importable: brick only"
    if torch_ok:
        text, _ = run([a.python, "bench/model_torch.py", "blas-check"], bench.torch_env(1))
        blas_line = text.strip().splitlines()[-1]
        m = re.search(r"gflops=([0-9.]+) rel_err=([0-9.e+-]+)", blas_line)
        if not m:
            print(f"compare.py: unexpected blas-check output: {text}", file=sys.stderr)
            return 1
        gflops, err = float(m.group(1)), float(m.group(2))
        if gflops < MIN_GFLOPS:
            refuse = (f"torch.mm ran at {gflops:.1f} GFLOP/s on 1 thread (below {MIN_GFLOPS:.0f}): PyTorch is "
                      f"on the reference BLAS, not OpenBLAS (install libopenblas0-pthread: scripts/deps.sh)")
        if err > 1e-5:
            refuse = f"torch.mm is wrong: relative error {err:.2e} against float64 (OpenBLAS kernel broken?)"
    else:
        print(f"compare.py: WARNING: {a.python} cannot import torch: brick's side only")
    mach = machine()
    soft = versions(a, torch_ok, blas_line)  # before the run: --write-docs then changes the tree
    start = datetime.datetime.now(datetime.timezone.utc)
    print(f"machine: {mach}")
    print(f"software: {soft}")
    print(f"date: {start:%Y-%m-%d %H:%M} UTC; load average {' '.join(open('/proc/loadavg').read().split()[:3])}")
    if refuse:
        print(f"compare.py: REFUSING RATIOS: {refuse}")

    done = []
    try:
        for w in chosen:
            print(f"{w['name']}: {w['what']} ({bench.rounds(w)} rounds of {bench.iters(w)} iterations)", flush=True)
            t0 = time.time()
            res = bench.measure(w, torch_ok)
            done.append((w, res))
            if w["kind"] == "lm" and bench.val:
                print(f"  validation loss after {bench.iters(w)} steps: brick {bench.val.get('brick')}, "
                      f"PyTorch {bench.val.get('torch', '-')} (same initial weights: they must agree)")
            print(f"  ({time.time() - t0:.0f} s)", flush=True)
    except RunError as e:
        print(f"compare.py: {e}", file=sys.stderr)
        return 1
    end = datetime.datetime.now(datetime.timezone.utc)
    loads = bench.loads
    load_line = (f"1-minute load average before the runs: mean {statistics.mean(loads):.2f}, "
                 f"min {min(loads):.2f}, max {max(loads):.2f}")
    cpus = os.cpu_count() or 1
    if statistics.mean(loads) > cpus:
        # More runnable threads than cores: the scheduler shares the cores by thread, so a
        # 2-thread run gets a bigger share than a 1-thread one and wall times stretch.
        load_line += (f". LOADED: more than {cpus} runnable threads on {cpus} CPUs on average, so wall times "
                      f"are stretched and a 2-thread run gets a larger share of the cores than a 1-thread one "
                      f"(speed-ups above {cpus}x are that, not the code): the CPU-time column is the steadier "
                      f"comparison")
    tab = table(make_rows(done, refuse), refuse)
    print()
    print(tab)
    print()
    print(load_line)
    if a.write_docs:
        if refuse or not torch_ok:
            print("compare.py: not writing the docs: no valid PyTorch comparison", file=sys.stderr)
            return 1
        cmd = "bench/compare.py --write-docs" + (f" --rounds {a.rounds}" if a.rounds else "")
        section = "\n".join([
            f"Measured {start:%Y-%m-%d %H:%M} to {end:%H:%M} UTC by `{cmd}` "
            f"(about {(end - start).total_seconds() / 60:.0f} minutes).",
            "",
            f"* machine: {mach}",
            f"* software: {soft}",
            f"* {load_line} (the machine is shared: ratios, not absolute times, are the result)",
            "",
            tab,
        ])
        write_docs(a.write_docs, section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
