#!/usr/bin/env bash
# model_rss.sh - peak memory (maximum resident set, /usr/bin/time -f %M) of `brick eval`,
# `brick predict` and `brick summary` on a big model file (docs/reliability.md, "Model
# files are read once").
#
#   bash bench/model_rss.sh [BRICK...]      default build/brick; several binaries: one row
#                                           each, on the same model file
#   HIDDEN=N  the MLP's hidden width (default 65536: 51.4 M parameters, a 206 MB file)
#
# The model is trained for one epoch on a 256-image cut of the bundled subset (the weights
# do not matter, the file's size does), with the first binary given.
set -euo pipefail

cd "$(dirname "$0")/.."
. bench/lib.sh
bins=("$@")
[ ${#bins[@]} -gt 0 ] || bins=(build/brick)
hidden=${HIDDEN:-65536}
bench_tmp rss

# The first 256 samples of each file: IDX header (count at bytes 4-7) and 256 items.
mkdir -p "$tmp/data"
for f in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte; do
    gunzip -c "data/fashion-mnist-subset/$f.gz" | perl -e '
        local $/; my $d = <STDIN>;
        my $dims = ord(substr($d, 3, 1));
        my $item = 1; $item *= unpack("N", substr($d, 8 + 4 * $_, 4)) for 0 .. $dims - 2;
        my $head = 4 + 4 * $dims;
        print substr($d, 0, 4), pack("N", 256), substr($d, 8, $head - 8), substr($d, $head, 256 * $item);' \
        >"$tmp/data/$f"
done

model=$tmp/big.safetensors
"${bins[0]}" train --model "mlp:hidden=$hidden" --data "$tmp/data" --epochs 1 --batch-size 256 \
    --out "$model" >/dev/null
echo "model file: mlp:hidden=$hidden, $(stat -c %s "$model") bytes"
printf '%-40s %12s %12s %12s\n' "binary" "eval KiB" "predict KiB" "summary KiB"
for b in "${bins[@]}"; do
    rss() { /usr/bin/time -f %M "$@" 2>&1 >/dev/null | tail -n 1; }
    e=$(rss "$b" eval "$model" --data "$tmp/data")
    p=$(rss "$b" predict "$model" --idx "$tmp/data/t10k-images-idx3-ubyte" --count 1)
    s=$(rss "$b" summary "$model")
    printf '%-40s %12s %12s %12s\n' "$b" "$e" "$p" "$s"
done
