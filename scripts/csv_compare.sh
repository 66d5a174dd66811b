#!/bin/bash
# csv_compare.sh - brick next to PyTorch on scikit-learn's tabular data sets (docs/data.md).
#
#   scripts/csv_compare.sh [SEEDS] [BRICK]     (default: 5 seeds, build/brick)
#
# Converts iris, wine, breast_cancer and diabetes with scripts/sklearn_csv.py into a
# temporary directory, trains each with `brick train` and with scripts/torch_csv.py (the
# same recipe: mlp hidden 256, SGD, batch 16, 30 epochs, lr 0.1; diabetes: regression, lr
# 0.01) for seeds 0..SEEDS-1, and prints the median of the final test accuracy (or RMSE
# and MAE) of each, and every seed's value.
set -euo pipefail
seeds=${1:-5}
brick=${2:-build/brick}
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
/usr/bin/python3 "$here/sklearn_csv.py" "$tmp" >/dev/null

median() { tr ' ' '\n' | grep . | sort -g | awk '{v[NR]=$1} END {print (NR%2 ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2)}'; }

printf '%-14s %-8s %-26s %-26s\n' "data set" metric "brick: median (seeds)" "PyTorch: median (seeds)"
for name in iris wine breast_cancer diabetes; do
    flags=(--epochs 30 --batch-size 16 --lr 0.1)
    [ "$name" = diabetes ] && flags=(--epochs 30 --batch-size 16 --lr 0.01 --task regression)
    declare -A got=()
    for s in $(seq 0 $((seeds - 1))); do
        b=$("$brick" train --data "$tmp/$name" --out "$tmp/m.safetensors" --force --seed "$s" "${flags[@]}" | grep '^final')
        t=$(/usr/bin/python3 "$here/torch_csv.py" "$tmp/$name" --seed "$s" "${flags[@]}")
        if [ "$name" = diabetes ]; then
            got[brmse]+="$(awk '{print $4}' <<<"$b") "
            got[bmae]+="$(awk '{print $7}' <<<"$b") "
            got[trmse]+="$(awk '{print $4}' <<<"$t") "
            got[tmae]+="$(awk '{print $7}' <<<"$t") "
        else
            got[bacc]+="$(awk '{print $4}' <<<"$b") "
            got[tacc]+="$(awk '{print $4}' <<<"$t") "
        fi
    done
    if [ "$name" = diabetes ]; then
        printf '%-14s %-8s %-26s %-26s\n' "$name" rmse "$(median <<<"${got[brmse]}") (${got[brmse]% })" \
            "$(median <<<"${got[trmse]}") (${got[trmse]% })"
        printf '%-14s %-8s %-26s %-26s\n' "" mae "$(median <<<"${got[bmae]}") (${got[bmae]% })" \
            "$(median <<<"${got[tmae]}") (${got[tmae]% })"
    else
        printf '%-14s %-8s %-26s %-26s\n' "$name" accuracy "$(median <<<"${got[bacc]}") (${got[bacc]% })" \
            "$(median <<<"${got[tacc]}") (${got[tacc]% })"
    fi
    unset got
done
