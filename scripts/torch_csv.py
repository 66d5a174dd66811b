#!/usr/bin/python3
"""torch_csv.py - PyTorch's side of brick's CSV demos: the recipe of `brick train --data DIR`.

Trains on DIR/train.csv and reports on DIR/test.csv what `brick train` prints at its end,
with the same recipe: brick's mlp (Flatten, Linear(in, hidden), ReLU, Linear(hidden, out)
in PyTorch's default init), SGD (no momentum, no weight decay), the same lr, batch size and
epochs, a reshuffle every epoch, and the same standardisation: each feature's mean and
population std over the training rows (a constant feature: std 1), applied to both splits;
regression: the target standardised the same way, MSE on it, RMSE and MAE in its units.

    scripts/torch_csv.py DIR [--task classification|regression] [--epochs 30]
                             [--batch-size 16] [--lr 0.1] [--hidden 256] [--seed 0]

Prints one line: "final test accuracy X" or "final test rmse X  test mae Y".
"""
import argparse
import csv

import torch


def read(path):
    with open(path) as f:
        rows = list(csv.reader(f))
    return rows[0], torch.tensor([[float(c) for c in r] for r in rows[1:] if r], dtype=torch.float32)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--task", choices=["classification", "regression"])
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    torch.manual_seed(a.seed)
    _, train = read(a.dir + "/train.csv")
    _, test = read(a.dir + "/test.csv")
    xtr, ytr, xte, yte = train[:, :-1], train[:, -1], test[:, :-1], test[:, -1]
    integral = bool((ytr == ytr.floor()).all() and (yte == yte.floor()).all())
    regression = a.task == "regression" if a.task else not integral
    # (double, as brick's bk_dataset_feature_stats)
    mean = xtr.double().mean(0)
    std = xtr.double().std(0, unbiased=False)
    std[std == 0] = 1
    xtr = ((xtr - mean.float()) / std.float()).float()
    xte = ((xte - mean.float()) / std.float()).float()
    if regression:
        tm, ts = float(ytr.double().mean()), float(ytr.double().std(unbiased=False))
        ytr, yte = ((ytr - tm) / ts).unsqueeze(1), ((yte - tm) / ts).unsqueeze(1)
        n_out = 1
    else:
        classes = torch.unique(ytr)  # sorted: label k is the k-th smallest value
        ytr = torch.searchsorted(classes, ytr.contiguous())
        yte = torch.searchsorted(classes, yte.contiguous())
        n_out = len(classes)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(xtr.shape[1], a.hidden), torch.nn.ReLU(),
                                torch.nn.Linear(a.hidden, n_out))
    opt = torch.optim.SGD(model.parameters(), lr=a.lr)
    loss_fn = torch.nn.MSELoss() if regression else torch.nn.CrossEntropyLoss()
    for _ in range(a.epochs):
        model.train()
        order = torch.randperm(len(xtr))
        for i in range(0, len(xtr), a.batch_size):
            idx = order[i:i + a.batch_size]
            opt.zero_grad()
            loss = loss_fn(model(xtr[idx]), ytr[idx])
            loss.backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        out = model(xte)
    if regression:
        d = (out - yte).double() * ts
        print("final test rmse %.4f  test mae %.4f" % (float(d.pow(2).mean().sqrt()), float(d.abs().mean())))
    else:
        print("final test accuracy %.4f" % float((out.argmax(1) == yte).float().mean()))


if __name__ == "__main__":
    main()
