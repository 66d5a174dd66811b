#!/usr/bin/env bash
# test_torch_interop.sh - weights move between brick and PyTorch:
#   - brick -> torch: a model trained by `brick train` loads STRICTLY into the equivalent
#     torch.nn model (tests/parity/brick_model_in_torch.py) and gives the same test loss and
#     accuracy as `brick eval` on the same file;
#   - torch -> brick: a ResNet (BatchNorm: running statistics and an int64
#     num_batches_tracked) trained in PyTorch and saved as a plain state dict in F32, F64,
#     F16 and BF16 (examples/pytorch_interop.py, the script of docs/pytorch.md) gives torch's
#     test loss and accuracy under `brick eval --model SPEC`; `brick import` makes a model
#     file of it that loads back into torch strictly with the same numbers.
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

# same_numbers NAME BRICK_EVAL_LINE TORCH_LINE: loss to brick's 4 decimals, accuracy exactly
same_numbers() {
    local name=$1 ev=$2 th=$3 bl ba tl ta
    echo "    brick: $ev"
    echo "    torch: $th"
    bl=$(echo "$ev" | awk '{print $3}'); ba=$(echo "$ev" | awk '{print $6}')
    tl=$(echo "$th" | sed -n 's/.*test_loss=\([0-9.]*\).*/\1/p'); ta=$(echo "$th" | sed -n 's/.*test_acc=\([0-9.]*\).*/\1/p')
    check "$name: same test loss (4 decimals)" "[ -n '$bl' ] && [ -n '$tl' ] && awk -v a='$bl' -v b='$tl' 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d <= 0.00006) }'"
    check "$name: same test accuracy (4 decimals)" "[ -n '$ta' ] && [ '$ba' = '$ta' ]"
}

spec=resnet:width=4
"$py" examples/pytorch_interop.py export --model $spec --data "$data" --steps 150 --seed 5 \
    --dtype f32,f64,f16,bf16 --out "$tmp/resnet-{dtype}.safetensors" > "$tmp/export.log" 2>&1
check "torch -> brick: the example script trains and writes plain state dicts" '[ $? -eq 0 ]'
for dtype in f32 f64 f16 bf16; do
    f="$tmp/resnet-$dtype.safetensors"
    th=$(grep "^$dtype: TORCH" "$tmp/export.log")
    ev=$("$brick" eval --model $spec "$f" --data "$data" --threads 1 2>&1 | grep '^test loss')
    same_numbers "torch -> brick, $dtype" "$ev" "$th"
done
"$brick" import --model $spec "$tmp/resnet-bf16.safetensors" --out "$tmp/imported.safetensors" > "$tmp/import.log" 2>&1
check "brick import of a BF16 + I64 state dict" '[ $? -eq 0 ] && grep -q "BF16 x 110, I64 x 17" "$tmp/import.log"'
ev=$("$brick" eval "$tmp/imported.safetensors" --data "$data" --threads 1 2>&1 | grep '^test loss')
th=$("$py" examples/pytorch_interop.py load "$tmp/imported.safetensors" --data "$data" 2>&1 | grep '^TORCH')
same_numbers "brick import -> torch (strict)" "$ev" "$th"
bk_done
