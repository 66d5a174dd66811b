#!/usr/bin/env bash
# test_image_data.sh - `brick train/eval/predict` on image data: a generated image folder
# (RGB PNGs of three colours, some of another size, a grey PGM per class) and generated
# CIFAR-10 batches (tests/make_image_data.py, seeded; needs python3 with PIL).
#
# Checks: training learns the colours (test accuracy 1.0 with mlp, lenet and resnet on
# 3 x 32 x 32); the model files record the shape, the classes, brick.normalize and
# brick.augment; eval and predict apply the normalisation (eval's accuracy is the
# training's last); --channels/--image-size; the same seed with --augment gives the same
# model bytes, and a resumed augmented run the bytes of an uninterrupted one; errors: an
# empty class folder, no classes, an undecodable image (named), a test class not in
# training, a CIFAR batch of the wrong size, bad --normalize/--augment values.
# Speaks TAP (tests/lib.sh); exits 1 on any failure.
set -u
source "$(dirname "$0")/lib.sh"
bk_setup
if ! "$py" -c 'import PIL' 2>/dev/null; then bk_skip_all "no python3 PIL to write the images"; fi
"$py" tests/make_image_data.py folder "$tmp/f" && "$py" tests/make_image_data.py cifar "$tmp/c" ||
    { bad "tests/make_image_data.py"; bk_done; }

# meta FILE KEY: a metadata value of a safetensors file.
meta() {
    "$py" -c 'import json, struct, sys
b = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", b[:8])[0]
print(json.loads(b[8:8 + n])["__metadata__"].get(sys.argv[2], ""))' "$1" "$2"
}
# acc OUTPUT: the last "test accuracy X" / "final test accuracy X" of a run's output.
acc() { grep -Eo 'test accuracy [0-9.]+' <<<"$1" | tail -1 | awk '{print $3}'; }
# good ACC: at least 0.9 (the generated classes are far apart: brick learns them in a few
# steps; not 1.0 exactly, so that another GEMM kernel's rounding cannot fail the test)
good() { awk -v a="${1:-0}" 'BEGIN { exit !(a >= 0.9) }'; }
# same_eval FILE: the eval just run ($rc, $out) printed FILE's recorded test loss and
# accuracy (to its 4 decimals)
same_eval() {
    local loss
    loss=$(grep -Eo 'test loss [0-9.]+' <<<"$out" | awk '{print $3}')
    [ "$rc" -eq 0 ] && awk -v a="$(acc "$out")" -v b="$(meta "$1" brick.test_acc)" -v l="${loss:-x}" \
        -v m="$(meta "$1" brick.test_loss)" 'BEGIN { exit !((a - b) ^ 2 < 1e-8 && (l - m) ^ 2 < 1e-8) }'
}

# ---- an image folder ------------------------------------------------------------------
expect "train mlp on an image folder" 0 "63 training and 24 test images \(3,12,12\), 3 classes" \
    "$brick" train --data "$tmp/f" --epochs 3 --batch-size 16 --out "$tmp/f.safetensors"
check "it learns the colours (test accuracy >= 0.9, chance 1/3)" 'good "$(acc "$out")"'
check "the model file records shape and classes" \
    '[ "$(meta "$tmp/f.safetensors" brick.in_shape)" = 3,12,12 ] && [ "$(meta "$tmp/f.safetensors" brick.class_names)" = blue,green,red ]'
check "no normalisation or augmentation recorded when off" \
    '[ -z "$(meta "$tmp/f.safetensors" brick.normalize)$(meta "$tmp/f.safetensors" brick.augment)" ]'
run "$brick" eval "$tmp/f.safetensors" --data "$tmp/f"
check "eval on the image folder (its loss and accuracy are the training's)" 'same_eval "$tmp/f.safetensors"'
expect "--channels 1 --image-size 8" 0 "\(1,8,8\), 3 classes" \
    "$brick" train --data "$tmp/f" --epochs 1 --channels 1 --image-size 8 --out "$tmp/g.safetensors"
expect "eval reads the folder at the model's size" 0 "24 test images" \
    "$brick" eval "$tmp/g.safetensors" --data "$tmp/f"

# ---- CIFAR-10 batches, normalised and augmented ----------------------------------------
for model in lenet resnet:width=4 mlp; do
    expect "train $model on CIFAR-10 batches, --normalize auto --augment crop,flip" 0 \
        "200 training and 60 test images \(3,32,32\), 10 classes" \
        "$brick" train --data "$tmp/c" --model "$model" --epochs 3 --batch-size 10 --lr 0.02 \
        --normalize auto --augment crop,flip --out "$tmp/c-${model%%:*}.safetensors"
    check "$model learns the generated classes (test accuracy >= 0.9, chance 1/3)" 'good "$(acc "$out")"'
done
m=$tmp/c-lenet.safetensors
check "brick.augment and brick.normalize recorded" \
    '[ "$(meta "$m" brick.augment)" = crop=4,flip ] && [[ "$(meta "$m" brick.normalize)" =~ ^0\.3[0-9]*,0\.3[0-9]*,0\.3[0-9]*/0\.[0-9]*,0\.[0-9]*,0\.[0-9]*$ ]]'
check "class names from batches.meta.txt" '[ "$(meta "$m" brick.class_names)" = airplane,automobile,bird,cat,deer,dog,frog,horse,ship,truck ]'
run "$brick" eval "$m" --data "$tmp/c"
check "eval normalises as training did (its loss and accuracy are the training's)" 'same_eval "$m"'
expect "predict normalises its input (a red image is label 0)" 0 "img000.png: airplane (1\.0|0\.9)" \
    "$brick" predict "$m" "$tmp/f/test/red/img000.png"
expect "--normalize MEANS/STDS" 0 "final test accuracy" "$brick" train --data "$tmp/c" --model mlp --epochs 1 \
    --normalize 0.4,0.4,0.4/0.3,0.3,0.3 --out "$tmp/n.safetensors"
check "given values recorded" '[ "$(meta "$tmp/n.safetensors" brick.normalize)" = 0.400000006,0.400000006,0.400000006/0.300000012,0.300000012,0.300000012 ]'

# ---- reproducible augmentation ---------------------------------------------------------
for k in 1 2; do
    "$brick" train --data "$tmp/c" --model mlp --epochs 2 --augment crop=2,flip --seed 5 \
        --out "$tmp/r$k.safetensors" >/dev/null 2>&1
done
check "the same seed with --augment gives the same model bytes" 'cmp -s "$tmp/r1.safetensors" "$tmp/r2.safetensors"'
"$brick" train --data "$tmp/c" --model mlp --epochs 2 --augment crop=2,flip --seed 6 --out "$tmp/r3.safetensors" \
    >/dev/null 2>&1
check "another seed, other bytes" '! cmp -s "$tmp/r1.safetensors" "$tmp/r3.safetensors"'
"$brick" train --data "$tmp/c" --model mlp --epochs 1 --augment crop=2,flip --seed 5 --out "$tmp/s.safetensors" \
    >/dev/null 2>&1
expect "resume an augmented run" 0 "resuming" "$brick" train --resume "$tmp/s.ckpt.safetensors" --epochs 2
check "a resumed augmented run gives the uninterrupted run's bytes" 'cmp -s "$tmp/r1.safetensors" "$tmp/s.safetensors"'
usage "a resumed run refuses --augment" "brick train" "a resumed run keeps" \
    "$brick" train --resume "$tmp/s.ckpt.safetensors" --epochs 3 --augment flip

# ---- errors ------------------------------------------------------------------------------
usage "bad --augment" "brick train" "--augment spin" "$brick" train --data "$tmp/c" --augment spin
usage "bad --normalize" "brick train" "--normalize 1,2/3" "$brick" train --data "$tmp/c" --normalize 1,2/3
usage "--channels 2" "brick train" "1 \(grey\) or 3" "$brick" train --data "$tmp/c" --channels 2
usage "--image-size on CIFAR-10" "brick train" "are for image folders" \
    "$brick" train --data "$tmp/c" --image-size 16 --out "$tmp/x.safetensors"
usage "a directory of nothing" "brick train" "no data set there" "$brick" train --data "$tmp" --out "$tmp/x.safetensors"
expect "--normalize with 2 values on RGB" 2 "2 values per statistic but the samples have 3 channels" \
    "$brick" train --data "$tmp/c" --normalize 0.5,0.5/0.2,0.2 --out "$tmp/x.safetensors"
cp -r "$tmp/c" "$tmp/c2" && head -c 3000 "$tmp/c/test_batch.bin" >"$tmp/c2/test_batch.bin"
expect "a CIFAR batch of the wrong size" 1 "test_batch.bin: 3000 bytes is not a whole number of records" \
    "$brick" train --data "$tmp/c2" --out "$tmp/x.safetensors"
cp -r "$tmp/f" "$tmp/e1" && mkdir "$tmp/e1/train/empty"
expect "an empty class folder" 1 "e1/train/empty: an empty class folder" \
    "$brick" train --data "$tmp/e1" --out "$tmp/x.safetensors"
mkdir -p "$tmp/e2/train" "$tmp/e2/test"
expect "no classes" 1 "e2/train: no class folders" "$brick" train --data "$tmp/e2" --out "$tmp/x.safetensors"
cp -r "$tmp/f" "$tmp/e3" && printf 'garbage' >"$tmp/e3/train/red/img005.png"
expect "an undecodable image is named" 1 "e3/train/red/img005.png: not a PNG, JPEG or PGM" \
    "$brick" train --data "$tmp/e3" --out "$tmp/x.safetensors"
cp -r "$tmp/f" "$tmp/e4" && mv "$tmp/e4/test/red" "$tmp/e4/test/purple"
expect "a test class not in training" 1 "class folder \"purple\" is not one of the 3 classes of the training split" \
    "$brick" train --data "$tmp/e4" --out "$tmp/x.safetensors"
"$py" tests/craft_safetensors.py "$m" "$tmp/bad-norm.safetensors" brick.normalize=0.5,0.5/0.2,0.2
expect "a model file whose brick.normalize does not fit its channels" 1 \
    "metadata brick.normalize \"0.5,0.5/0.2,0.2\" has 2 values per statistic" \
    "$brick" predict "$tmp/bad-norm.safetensors" "$tmp/f/test/red/img000.png"
"$py" tests/craft_safetensors.py "$m" "$tmp/bad-aug.safetensors" brick.augment=spin
expect "a model file with a bad brick.augment" 1 "metadata brick.augment \"spin\"" \
    "$brick" eval "$tmp/bad-aug.safetensors" --data "$tmp/c"
bk_done
