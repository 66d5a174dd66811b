#!/usr/bin/python3
"""autoencoder_torch.py - examples/13_autoencoder.c in PyTorch: the same model, Adam lr 2e-3,
batch 64, MSE, on the bundled Fashion-MNIST subset, printing the test reconstruction loss per
epoch beside the mean-image baseline.

Usage (from the repository root):
    OMP_NUM_THREADS=1 /usr/bin/python3 bench/autoencoder_torch.py [convt|upsample] [epochs]
Initial weights and shuffling come from torch's generator, so the numbers match brick's to the
noise between seeds, not bit for bit.
"""
import gzip
import sys

import numpy as np
import torch
from torch import nn

DATA = "data/fashion-mnist-subset/"


def images(name):
    with gzip.open(DATA + name) as f:
        raw = np.frombuffer(f.read(), np.uint8, offset=16)  # IDX header: 16 bytes
    return torch.tensor(raw.reshape(-1, 1, 28, 28) / 255.0, dtype=torch.float32)


def main():
    torch.manual_seed(0)
    torch.set_num_threads(1)
    upsample = len(sys.argv) > 1 and sys.argv[1] == "upsample"
    epochs = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    xtr, xte = images("train-images-idx3-ubyte.gz"), images("t10k-images-idx3-ubyte.gz")
    enc = nn.Sequential(nn.Conv2d(1, 16, 3, stride=2, padding=1), nn.ReLU(),
                        nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU())
    if upsample:
        dec = nn.Sequential(nn.Upsample(scale_factor=2), nn.Conv2d(32, 16, 3, padding=1), nn.ReLU(),
                            nn.Upsample(scale_factor=2), nn.Conv2d(16, 1, 3, padding=1), nn.Sigmoid())
    else:
        dec = nn.Sequential(nn.ConvTranspose2d(32, 16, 3, stride=2, padding=1, output_padding=1), nn.ReLU(),
                            nn.ConvTranspose2d(16, 1, 3, stride=2, padding=1, output_padding=1), nn.Sigmoid())
    net = nn.Sequential(enc, dec)
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    base = ((xte - xtr.mean(0)) ** 2).mean().item()
    print(sum(p.numel() for p in net.parameters()), "parameters")
    for epoch in range(epochs):
        perm = torch.randperm(len(xtr))
        for i in range(0, len(xtr), 64):
            xb = xtr[perm[i:i + 64]]
            loss = nn.functional.mse_loss(net(xb), xb)
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            test = nn.functional.mse_loss(net(xte), xte).item()
        print(f"epoch {epoch + 1}: test reconstruction loss {test:.5f} (mean image: {base:.5f})")


if __name__ == "__main__":
    main()
