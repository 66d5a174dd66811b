#!/usr/bin/env bash
# mlp_epoch.sh - brick vs PyTorch on brick train's default MLP recipe (issue 3's benchmark).
#
#   bench/mlp_epoch.sh [--data DIR] [--epochs N] [--repeats R] [--threads "1 2"]
#
# A thin wrapper: `bench/train_epoch.sh mlp N R --repro` (see its --help). The recipe is
# `brick train`'s default: Flatten -> Linear(784, 256) -> ReLU -> Linear(256, 10), SGD lr
# 0.1, batch 256, shuffled, N epochs (default 10), R runs per thread count (default 3),
# brick and PyTorch (bench/train_torch.py) alternating; it prints each side's fastest median
# epoch time, the final test accuracies, peak memory and the ratio brick / torch, and exits
# 1 if two brick runs with the same seed write different model files.
set -uo pipefail
. "$(dirname "$0")/lib.sh"

epochs=10
repeats=3
args=()
while [ $# -gt 0 ]; do
    case $1 in
        --data|--threads) args+=("$1" "$2"); shift 2 ;;
        --epochs) epochs=$2; shift 2 ;;
        --repeats) repeats=$2; shift 2 ;;
        -h|--help) bench_usage; exit 0 ;;
        *) echo "mlp_epoch.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
done
exec "$(dirname "$0")/train_epoch.sh" mlp "$epochs" "$repeats" --repro "${args[@]}"
