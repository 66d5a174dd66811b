#!/usr/bin/python3
"""lm_torch.py - the PyTorch side of bench/lm_tokens.sh: `brick train-lm`'s model, data and
loop (tools/cmd_lm.c, docs/text.md) rebuilt with torch.nn.

    OMP_WAIT_POLICY=PASSIVE OPENBLAS_NUM_THREADS=1 /usr/bin/python3 bench/lm_torch.py
        [--text data/text/fortunes-sample.txt] [--arch transformer|lstm|gru] [--context 64] [--d-model 64] [--layers 2]
        [--heads 4] [--ff 256] [--positions learned|sinusoidal] [--steps 2000]
        [--batch-size 32] [--lr 3e-3] [--eval-every 250] [--seed 0] [--threads T]
        [--init FILE]

The model, module for module and with brick's state-dict names:
  tok_emb   Embedding(V, d), N(0, 1)
  pos       learned: a parameter "weight" (context, d), N(0, 1), x + weight[:T]; or
            sinusoidal: D2L's fixed table (no parameter), x + P[:T]
  encoder   TransformerEncoder(TransformerEncoderLayer(d, heads, ff, dropout=0, gelu,
            batch_first, norm_first) x layers, norm=LayerNorm(d)), run with the additive
            causal mask (-inf above the diagonal); torch deep-copies the layer, as brick does
  head      Linear(d, V) -> logits (B*T, V)
or, with --arch lstm | gru, D2L's RNNModel (train-lm's CharRNN):
  rnn       LSTM / GRU(V, d, num_layers=layers, batch_first=True) on one-hot ids (B, T, V),
            from zero states
  head      Linear(d, V) on every step -> logits (B*T, V)
PyTorch's default init everywhere (the distributions brick's init follows; the values
differ, the generators being different). --init FILE starts from the weights of a brick
model file instead (`brick train-lm --steps 0 --out FILE` writes its initial weights), so
that both sides train the very same network.

The data and loop are train-lm's: the text's bytes without NUL, '\\r' and bytes >= 128; the
vocabulary its distinct bytes in byte order; the first 90% the train split, the rest the
validation split; each step takes --batch-size windows at positions drawn from brick's
generator (PCG32, replicated here bit for bit, seeded as train-lm seeds it), so both sides
see the same windows in the same order; cross-entropy (mean); AdamW (betas 0.9, 0.999,
eps 1e-8, weight decay 0.01) with the learning rate cosine-decayed from --lr to --lr/10.
The validation loss covers every full, non-overlapping window of the validation split, in
batches of 32, in eval mode with grad off; next to it the add-one bigram baseline counted
on the train split (it must equal brick's: a check that the split is the same).

tokens/s counts the training tokens (steps x batch x context) over the time of the steps
alone (forward, backward, optimizer step), without building the batches or evaluating, as
train-lm does. Prints train-lm's progress lines and a last line

    RESULT steps=500 threads=1 tokens_per_s=12345 train_s=66.4 val_loss=2.1234 bigram=2.5791 params=116189
"""
import argparse
import json
import math
import struct
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

EVAL_BATCH = 32
M64 = (1 << 64) - 1


class Pcg32:
    """brick's bk_rng (src/core/rng.c): PCG32 XSH-RR, pcg32_srandom(seed, 54)."""

    def __init__(self, seed):
        self.inc = (54 << 1) | 1
        self.state = 0
        self.u32()
        self.state = (self.state + seed) & M64
        self.u32()

    def u32(self):
        old = self.state
        self.state = (old * 6364136223846793005 + self.inc) & M64
        x = (((old >> 18) ^ old) >> 27) & 0xFFFFFFFF
        rot = old >> 59
        return ((x >> rot) | (x << ((-rot) & 31))) & 0xFFFFFFFF

    def uniform(self):
        return np.float32(self.u32() >> 8) * np.float32(1.0 / 16777216.0)


class LearnedPositions(nn.Module):
    def __init__(self, max_len, d):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(max_len, d))

    def forward(self, x):
        return x + self.weight[: x.shape[1]]


class SinusoidalPositions(nn.Module):
    def __init__(self, max_len, d):
        super().__init__()
        pos = np.arange(max_len, dtype=np.float64)[:, None]
        j = np.arange(d)
        angle = pos / np.power(10000.0, (j - j % 2) / d)
        table = np.where(j % 2 == 1, np.cos(angle), np.sin(angle)).astype(np.float32)
        self.register_buffer("P", torch.from_numpy(table), persistent=False)

    def forward(self, x):
        return x + self.P[: x.shape[1]]


class CharGPT(nn.Module):
    def __init__(self, vocab, context, d, layers, heads, ff, learned):
        super().__init__()
        self.tok_emb = nn.Embedding(vocab, d)
        self.pos = LearnedPositions(context, d) if learned else SinusoidalPositions(context, d)
        layer = nn.TransformerEncoderLayer(d, heads, ff, dropout=0.0, activation="gelu", batch_first=True,
                                           norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, norm=nn.LayerNorm(d, eps=1e-5))
        self.head = nn.Linear(d, vocab)
        self.masks = {}

    def forward(self, ids):  # ids (B, T) int64 -> logits (B*T, V)
        b, t = ids.shape
        if t not in self.masks:
            self.masks[t] = torch.triu(torch.full((t, t), float("-inf")), diagonal=1)
        h = self.encoder(self.pos(self.tok_emb(ids)), mask=self.masks[t])
        return self.head(h.reshape(b * t, h.shape[2]))


class CharRNN(nn.Module):
    def __init__(self, vocab, d, layers, arch):
        super().__init__()
        self.vocab = vocab
        self.rnn = (nn.LSTM if arch == "lstm" else nn.GRU)(vocab, d, num_layers=layers, batch_first=True)
        self.head = nn.Linear(d, vocab)

    def forward(self, ids):  # ids (B, T) int64 -> logits (B*T, V)
        b, t = ids.shape
        h, _ = self.rnn(F.one_hot(ids, self.vocab).float())
        return self.head(h.reshape(b * t, h.shape[2]))


def st_read(path):
    """The F32 tensors of a safetensors file (Debian has no safetensors package)."""
    with open(path, "rb") as f:
        buf = f.read()
    (n,) = struct.unpack("<Q", buf[:8])
    header = json.loads(buf[8:8 + n].decode("utf-8"))
    header.pop("__metadata__", None)
    out = {}
    for name, info in header.items():
        if info["dtype"] != "F32":
            sys.exit(f"lm_torch.py: {path}: {name} is {info['dtype']}, expected F32")
        b, e = info["data_offsets"]
        a = np.frombuffer(buf[8 + n + b:8 + n + e], dtype="<f4").reshape(info["shape"])
        out[name] = torch.from_numpy(a.copy())
    return out


def evaluate(model, val, ctx):
    """Mean cross-entropy over the full non-overlapping windows of val (int64 numpy)."""
    windows = (len(val) - 1) // ctx
    total = 0.0
    model.eval()
    with torch.no_grad():
        for w0 in range(0, windows, EVAL_BATCH):
            nb = min(EVAL_BATCH, windows - w0)
            seg = torch.from_numpy(val[w0 * ctx:(w0 + nb) * ctx + 1])
            x = seg[:-1].reshape(nb, ctx)
            y = seg[1:].reshape(nb * ctx)
            total += F.cross_entropy(model(x), y, reduction="sum").item()
    model.train()
    return total / (windows * ctx)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--text", default="data/text/fortunes-sample.txt")
    ap.add_argument("--arch", choices=["transformer", "lstm", "gru"], default="transformer")
    ap.add_argument("--context", type=int, default=64)
    ap.add_argument("--d-model", type=int, default=64)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--ff", type=int, default=256)
    ap.add_argument("--positions", choices=["learned", "sinusoidal"], default="learned")
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--eval-every", type=int, default=250)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--init", help="start from the weights of this brick model file")
    a = ap.parse_args()
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    ctx, batch = a.context, a.batch_size

    raw = np.frombuffer(open(a.text, "rb").read(), dtype=np.uint8)
    raw = raw[(raw != 0) & (raw != 13) & (raw < 128)]
    vocab = np.unique(raw)
    id_of = np.full(128, -1, dtype=np.int64)
    id_of[vocab] = np.arange(len(vocab))
    ids = id_of[raw]
    n, V = len(ids), len(vocab)
    n_train = n * 9 // 10
    train, val = ids[:n_train], ids[n_train:]
    # add-one bigram baseline: counts of the train split, on the validation targets
    cnt = np.ones((V, V))
    np.add.at(cnt, (train[:-1], train[1:]), 1.0)
    logp = np.log(cnt / cnt.sum(axis=1, keepdims=True))
    windows = (len(val) - 1) // ctx
    tv = val[:windows * ctx + 1]
    tv_in = tv[:-1]
    tv_out = tv[1:]
    bigram = -logp[tv_in, tv_out].sum() / (windows * ctx)

    torch.manual_seed(a.seed)
    if a.arch == "transformer":
        model = CharGPT(V, ctx, a.d_model, a.layers, a.heads, a.ff, a.positions == "learned")
    else:
        model = CharRNN(V, a.d_model, a.layers, a.arch)
    if a.init:
        model.load_state_dict(st_read(a.init), strict=True)
    params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)
    rng = Pcg32((a.seed * 0x9E3779B97F4A7C15 + 1) & M64)
    span = np.float32(n_train - ctx - 1)
    train_t = torch.from_numpy(train)
    offs = torch.arange(ctx)
    print(f"text {a.text}: {n} characters, vocabulary {V}; train {n_train}, validation {n - n_train}")
    desc = (f"context {ctx}, d_model {a.d_model}, {a.layers} layers, {a.heads} heads, ff {a.ff}, "
            f"{a.positions} positions" if a.arch == "transformer" else
            f"{a.arch}, context {ctx}, hidden {a.d_model}, {a.layers} layers, one-hot inputs")
    print(f"model: {desc}, {params} parameters; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads{', init from ' + a.init if a.init else ''}")
    sys.stdout.flush()
    t0 = time.perf_counter()
    train_s, run, run_n, vloss = 0.0, 0.0, 0, float("nan")
    model.train()
    for step in range(1, a.steps + 1):
        frac = (step - 1) / (a.steps - 1) if a.steps > 1 else 0.0
        for g in opt.param_groups:
            g["lr"] = a.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))
        starts = []
        for _ in range(batch):
            s = int(rng.uniform() * span)
            starts.append(min(s, n_train - ctx - 1))
        idx = torch.tensor(starts).unsqueeze(1) + offs
        x, y = train_t[idx], train_t[idx + 1].reshape(batch * ctx)
        ts = time.perf_counter()
        loss = F.cross_entropy(model(x), y)
        lv = loss.item()
        if not math.isfinite(lv):
            sys.exit(f"lm_torch.py: step {step}: the loss is {lv}; stopping")
        opt.zero_grad()
        loss.backward()
        opt.step()
        train_s += time.perf_counter() - ts
        run += lv
        run_n += 1
        if (a.eval_every > 0 and step % a.eval_every == 0) or step == a.steps:
            vloss = evaluate(model, val, ctx)
            print(f"step {step:6d}  train {run / run_n:.4f}  val {vloss:.4f} nats/char  (bigram {bigram:.4f})  "
                  f"{time.perf_counter() - t0:.1f}s  {step * batch * ctx / train_s:.0f} tok/s")
            sys.stdout.flush()
            run, run_n = 0.0, 0
    if a.steps == 0:
        vloss = evaluate(model, val, ctx)
    tokens = a.steps * batch * ctx
    tps = tokens / train_s if train_s > 0 else 0.0
    print(f"final: val loss {vloss:.4f} nats/char, bigram baseline {bigram:.4f} nats/char")
    print(f"training: {a.steps} steps, {tokens} tokens in {train_s:.2f} s: {tps:.0f} tokens/s")
    print(f"RESULT steps={a.steps} threads={torch.get_num_threads()} tokens_per_s={tps:.0f} train_s={train_s:.3f} "
          f"val_loss={vloss:.4f} bigram={bigram:.4f} params={params}")


if __name__ == "__main__":
    main()
