#!/usr/bin/env bash
# test_torch_interop.sh - weights move from brick to PyTorch: a model trained by `brick train`
# loads STRICTLY into the equivalent torch.nn model (tests/parity/brick_model_in_torch.py)
# and gives the same test loss and accuracy as `brick eval` on the same file. (The other
# direction, PyTorch -> brick, is what every test_parity_* test does.)
#
# Skips without PyTorch (/usr/bin/python3 with torch), unless BRICK_REQUIRE_TORCH=1.
set -u
source "$(dirname "$0")/lib.sh"
bk_setup
data=data/fashion-mnist-subset

if ! "$py" -c 'import torch' 2>/dev/null; then
    if [ "${BRICK_REQUIRE_TORCH:-0}" = 1 ]; then bad "BRICK_REQUIRE_TORCH=1 but $py cannot import torch"; bk_done; fi
    bk_skip_all "$py cannot import torch"
fi

for model in mlp softmax; do
    "$brick" train --model "$model" --epochs 1 --data "$data" --seed 3 --threads 1 \
        --out "$tmp/$model.safetensors" > "$tmp/train.log" 2>&1
    check "$model: brick train" '[ $? -eq 0 ] && [ -f "$tmp/$model.safetensors" ]'
    ev=$("$brick" eval "$tmp/$model.safetensors" --data "$data" 2>&1 | grep '^test loss')
    th=$("$py" tests/parity/brick_model_in_torch.py "$tmp/$model.safetensors" "$data" 2>&1 | grep '^TORCH')
    echo "    brick: $ev"
    echo "    torch: $th"
    bl=$(echo "$ev" | awk '{print $3}'); ba=$(echo "$ev" | awk '{print $6}')
    tl=$(echo "$th" | sed 's/.*test_loss=\([0-9.]*\).*/\1/'); ta=$(echo "$th" | sed 's/.*test_acc=\([0-9.]*\).*/\1/')
    # brick eval prints the loss to 4 decimals: equal to that rounding; accuracy exactly
    check "$model: torch loads the file strictly" '[ -n "$tl" ] && [ -n "$bl" ]'
    check "$model: same test loss (4 decimals)" "awk -v a='$bl' -v b='$tl' 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d <= 0.00006) }'"
    check "$model: same test accuracy" "[ '$ba' = '$ta' ]"
done
bk_done
