#!/usr/bin/env bash
# mlp_epoch.sh - brick vs PyTorch on the same MLP recipe, on the same machine, in one run.
#
#   bench/mlp_epoch.sh [--data DIR] [--epochs N] [--repeats R] [--threads "1 2"]
#
# The recipe is `brick train`'s default: Flatten -> Linear(784, 256) -> ReLU ->
# Linear(256, 10), SGD lr 0.1, batch 256, shuffled, N epochs (default 10) on Fashion-MNIST
# (default /usr/share/datasets/fashion-mnist, else the bundled subset). PyTorch runs
# bench/mlp_torch.py under /usr/bin/python3 (Debian's python3-torch) with
# OMP_WAIT_POLICY=PASSIVE and OPENBLAS_NUM_THREADS=1.
#
# For every thread count T (default "1 2") each side trains R times (default 3), brick
# and PyTorch alternating so that a change in machine load hits both. A run's epoch time
# is the median of its epochs (training + test evaluation, the `seconds` column of
# brick's CSV); a configuration's is the median over its runs. Each side keeps its fastest
# configuration and the script prints both, their final test accuracies and the ratio
# brick / torch (below 1: brick is faster).
#
# It also checks reproducibility: two brick runs with the same seed and thread count must
# write byte-identical model files (cmp); exit 1 if they differ.
# Environment: BRICK (default build/brick, built if missing), BRICK_PYTHON.
set -uo pipefail

cd "$(dirname "$0")/.." || exit 2
data=
epochs=10
repeats=3
threads="1 2"
while [ $# -gt 0 ]; do
    case $1 in
        --data) data=$2; shift 2 ;;
        --epochs) epochs=$2; shift 2 ;;
        --repeats) repeats=$2; shift 2 ;;
        --threads) threads=$2; shift 2 ;;
        -h|--help) sed -n '2,/^set /{/^set /d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
        *) echo "mlp_epoch.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
done
if [ -z "$data" ]; then
    data=/usr/share/datasets/fashion-mnist
    [ -e "$data/train-images-idx3-ubyte.gz" ] || [ -e "$data/train-images-idx3-ubyte" ] ||
        data=data/fashion-mnist-subset
fi
brick=${BRICK:-build/brick}
python=${BRICK_PYTHON:-/usr/bin/python3}
if [ ! -x "$brick" ]; then
    make -s -j2 "$brick" || { echo "mlp_epoch.sh: cannot build $brick" >&2; exit 1; }
fi
if ! "$python" -c 'import torch, numpy' 2>/dev/null; then
    echo "mlp_epoch.sh: $python cannot import torch and numpy (apt-get install python3-torch)" >&2
    exit 1
fi
tmp=$(mktemp -d /tmp/brick-bench-XXXXXX)
trap 'rm -rf "$tmp"' EXIT

median() { sort -g | awk '{v[NR] = $1} END {if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }

echo "data: $data, $epochs epochs, $repeats runs per configuration, threads: $threads"
echo "machine: $(nproc) CPUs, $(uname -m), load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "$("$brick" --version); PyTorch $("$python" -c 'import torch; print(torch.__version__)')"
echo

declare -A time_of acc_of
for t in $threads; do
    : >"$tmp/brick-$t.times"
    : >"$tmp/torch-$t.times"
    for r in $(seq 1 "$repeats"); do
        out=$tmp/b-$t-$r.safetensors
        if ! "$brick" train --data "$data" --epochs "$epochs" --threads "$t" --out "$out" \
            >"$tmp/b.log" 2>&1; then
            echo "mlp_epoch.sh: brick train failed:" >&2
            cat "$tmp/b.log" >&2
            exit 1
        fi
        csv=${out%.safetensors}.csv
        tail -n +2 "$csv" | cut -d, -f6 | median >>"$tmp/brick-$t.times"
        acc_of[brick-$t]=$(tail -n 1 "$csv" | cut -d, -f5)
        printf '  brick t=%s run %s: epoch median %6.3f s, test acc %.4f\n' "$t" "$r" \
            "$(tail -n 1 "$tmp/brick-$t.times")" "${acc_of[brick-$t]}"

        if ! OMP_WAIT_POLICY=PASSIVE OPENBLAS_NUM_THREADS=1 "$python" bench/mlp_torch.py \
            --data "$data" --epochs "$epochs" --threads "$t" >"$tmp/t.log" 2>&1; then
            echo "mlp_epoch.sh: mlp_torch.py failed:" >&2
            cat "$tmp/t.log" >&2
            exit 1
        fi
        result=$(grep '^RESULT' "$tmp/t.log")
        sed -n 's/.*median_epoch_s=\([0-9.]*\).*/\1/p' <<<"$result" >>"$tmp/torch-$t.times"
        acc_of[torch-$t]=$(sed -n 's/.*final_test_acc=\([0-9.]*\).*/\1/p' <<<"$result")
        printf '  torch t=%s run %s: epoch median %6.3f s, test acc %.4f\n' "$t" "$r" \
            "$(tail -n 1 "$tmp/torch-$t.times")" "${acc_of[torch-$t]}"
    done
    time_of[brick-$t]=$(median <"$tmp/brick-$t.times")
    time_of[torch-$t]=$(median <"$tmp/torch-$t.times")
done

echo
printf '%-8s %-8s %18s %15s\n' side threads "epoch median (s)" "final test acc"
best_brick= best_torch=
for side in brick torch; do
    for t in $threads; do
        printf '%-8s %-8s %18.3f %15.4f\n' "$side" "$t" "${time_of[$side-$t]}" "${acc_of[$side-$t]}"
        if [ "$side" = brick ]; then
            if [ -z "$best_brick" ] || awk "BEGIN {exit !(${time_of[brick-$t]} < ${time_of[brick-$best_brick]})}"; then best_brick=$t; fi
        else
            if [ -z "$best_torch" ] || awk "BEGIN {exit !(${time_of[torch-$t]} < ${time_of[torch-$best_torch]})}"; then best_torch=$t; fi
        fi
    done
done
tb=${time_of[brick-$best_brick]}
tt=${time_of[torch-$best_torch]}
echo
printf 'fastest brick: %.3f s/epoch (threads %s), test acc %.4f\n' "$tb" "$best_brick" "${acc_of[brick-$best_brick]}"
printf 'fastest torch: %.3f s/epoch (threads %s, OMP_WAIT_POLICY=PASSIVE OPENBLAS_NUM_THREADS=1), test acc %.4f\n' \
    "$tt" "$best_torch" "${acc_of[torch-$best_torch]}"
printf 'ratio brick/torch: %.2f\n' "$(awk "BEGIN {print $tb / $tt}")"

# Reproducibility: the same seed and threads twice -> identical model files.
t1=$(cut -d' ' -f1 <<<"$threads")
a=$tmp/b-$t1-1.safetensors
b=$tmp/b-$t1-2.safetensors
if [ "$repeats" -lt 2 ]; then
    "$brick" train --data "$data" --epochs "$epochs" --threads "$t1" --out "$b" >/dev/null 2>&1
fi
if cmp -s "$a" "$b"; then
    echo "reproducible: two brick runs (seed 0, threads $t1) wrote identical model files"
else
    echo "NOT REPRODUCIBLE: $a and $b differ: $(cmp "$a" "$b" 2>&1)"
    exit 1
fi
