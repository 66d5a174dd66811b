#!/usr/bin/env python3
"""mlp_torch.py - brick train's default MLP recipe in PyTorch: bench/train_torch.py --model mlp.

    /usr/bin/python3 bench/mlp_torch.py [--data DIR] [--epochs 10] [--batch-size 256]
                                        [--lr 0.1] [--threads T] [--seed 0]

Kept for old command lines; every option of train_torch.py works here too (see its
docstring), with --model defaulting to mlp.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import train_torch  # noqa: E402

if __name__ == "__main__":
    train_torch.main()
