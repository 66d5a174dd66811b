#!/usr/bin/env bash
# demo.sh - the README's main-job command: builds brick and trains the MLP on Fashion-MNIST
# (784 -> 256 ReLU -> 10, SGD lr 0.1, batch 256, 10 epochs), printing the test accuracy.
#
#   scripts/demo.sh [extra `brick train` flags]
#
# Uses the full data set when Debian's dataset-fashion-mnist is installed, the bundled
# subset (data/fashion-mnist-subset) otherwise. Writes build/demo/mlp.safetensors (+ .csv,
# .svg, .ckpt.safetensors). Needs only the build tools, not PyTorch. JOBS: make's
# parallelism (default 2).
set -euo pipefail

cd "$(dirname "$0")/.."
bash scripts/deps.sh --build-only
make -j"${JOBS:-2}" tools
mkdir -p build/demo
build/brick train --model mlp --epochs 10 --batch-size 256 --lr 0.1 --optimizer sgd --seed 0 \
    --force --out build/demo/mlp.safetensors "$@"
echo "model, log and plot: build/demo/mlp.safetensors, build/demo/mlp.csv, build/demo/mlp.svg"
