#!/usr/bin/env bash
# test_diverge.sh - a diverging `brick train` stops with a clear message instead of
# printing NaN or astronomically large losses, and leaves the last saved files intact.
#
#   bash tests/test_diverge.sh        (scripts/run_tests.sh runs it; BRICK_BUILD=dir picks
#                                      the build, default build/)
#
# Checks: --lr 1e6 stops at once (exit 1, one line naming the diverging loss, the batch and
# --lr) and does not touch the files an earlier run wrote to the same --out, which still
# load; --lr 1e30 (NaN) with --detect-anomaly names the op and the block; a run resumed
# from a good checkpoint and stopped by --max-loss in its next epoch keeps that
# checkpoint, which then resumes to the same model as an uninterrupted run.
# Speaks TAP (tests/lib.sh); exits 1 on any failure.
set -u
source "$(dirname "$0")/lib.sh"
bk_setup
data=data/fashion-mnist-subset

# one_line_fail NAME PATTERN: exit 1 and exactly one stderr line matching PATTERN.
one_line_fail() {
    local name=$1 pattern=$2 lines
    lines=$(printf '%s' "$err" | grep -c '')
    if [ "$rc" -eq 1 ] && [ "$lines" -eq 1 ] && grep -Eq -- "$pattern" <<<"$err"; then
        ok "$name"
    else
        bad "$name: expected exit 1 and one line matching /$pattern/" "exit $rc, $lines lines" \
            "stderr: ${err:0:500}" "stdout: ${out:0:300}"
    fi
}

common=(--model mlp --data "$data" --batch-size 256 --seed 4 --threads 1)
m=$tmp/m.safetensors

# ---- a good epoch first: the files a failed run must not touch --------------------------

run "$brick" train "${common[@]}" --epochs 1 --lr 0.1 --out "$m"
if [ "$rc" -eq 0 ]; then ok "one good epoch"; else bad "one good epoch" "exit $rc: ${err:0:300}"; fi
cp "$m" "$tmp/m.saved"
cp "$tmp/m.ckpt.safetensors" "$tmp/ckpt.saved"

# ---- --lr 1e6: a finite loss that explodes ----------------------------------------------

run "$brick" train "${common[@]}" --epochs 2 --lr 1e6 --force --out "$m"
one_line_fail "--lr 1e6: exit 1, one line" \
    "^brick train: the loss is diverging at epoch 1, batch [0-9]+ \([0-9.e+]+ > --max-loss 2302.59\): stopped; try a smaller --lr than 1e\+06"
if ! grep -Eq 'train loss|nan|inf' <<<"$out"; then ok "--lr 1e6: no epoch line with a NaN or huge loss"; else bad "--lr 1e6 printed losses" "${out:0:300}"; fi
if cmp -s "$m" "$tmp/m.saved" && cmp -s "$tmp/m.ckpt.safetensors" "$tmp/ckpt.saved"; then
    ok "--lr 1e6: the earlier model file and checkpoint are untouched"
else
    bad "--lr 1e6 changed the earlier files"
fi
run "$brick" eval "$tmp/m.ckpt.safetensors" --data "$data"
if [ "$rc" -eq 0 ] && grep -q "test accuracy" <<<"$out"; then ok "--lr 1e6: the previous checkpoint still loads"; else bad "previous checkpoint" "exit $rc: ${err:0:300}"; fi

# --max-loss 0 only stops at NaN/Inf; with --lr 1e30 the loss turns NaN
run "$brick" train "${common[@]}" --epochs 1 --lr 1e30 --max-loss 0 --out "$tmp/n.safetensors"
one_line_fail "--lr 1e30: NaN loss, exit 1" \
    "^brick train: the loss is (NaN|infinite) at epoch 1, batch [0-9]+: stopped; try a smaller --lr than 1e\+30 \(--detect-anomaly names the op"
if [ ! -e "$tmp/n.safetensors" ] && [ ! -e "$tmp/n.ckpt.safetensors" ]; then ok "--lr 1e30: nothing written"; else bad "--lr 1e30 wrote files" "$(ls "$tmp")"; fi

# ---- --detect-anomaly names the op and its block ------------------------------------------

run "$brick" train "${common[@]}" --epochs 1 --lr 1e30 --detect-anomaly --out "$tmp/n.safetensors"
one_line_fail "--detect-anomaly: the op and its block" \
    "^brick train: epoch 1, batch [0-9]+: anomaly: op '[a-z_]+' (produced|got) (NaN|-?Inf) .*(in Sequential/[0-9]+:[A-Za-z]+|parameter '[a-z]+' of Sequential/[0-9]+:[A-Za-z]+).*try a smaller --lr"
if grep -q "anomaly detection on" <<<"$out"; then ok "--detect-anomaly: says it is on"; else bad "--detect-anomaly banner" "${out:0:300}"; fi
run "$brick" train "${common[@]}" --epochs 1 --lr 0.1 --detect-anomaly --out "$tmp/ok.safetensors"
if [ "$rc" -eq 0 ] && cmp -s "$tmp/ok.safetensors" "$tmp/m.saved"; then
    ok "--detect-anomaly on a healthy run: same model file as without it"
else
    bad "--detect-anomaly on a healthy run" "exit $rc: ${err:0:300}" "$(cmp "$tmp/ok.safetensors" "$tmp/m.saved" 2>&1)"
fi

# ---- stopped in epoch 2 of a resumed run: epoch 1's checkpoint is kept and goes on --------

run "$brick" train --resume "$tmp/m.ckpt.safetensors" --epochs 2 --max-loss 0.05
one_line_fail "--max-loss stops epoch 2 at its first batch" \
    "^brick train: the loss is diverging at epoch 2, batch 1 \([0-9.e+-]+ > --max-loss 0.05\)"
if cmp -s "$m" "$tmp/m.saved" && cmp -s "$tmp/m.ckpt.safetensors" "$tmp/ckpt.saved"; then
    ok "stopped in epoch 2: epoch 1's model file and checkpoint are untouched"
else
    bad "stopped in epoch 2 changed epoch 1's files"
fi
run "$brick" train --resume "$tmp/m.ckpt.safetensors" --epochs 2
resumed=$rc
run "$brick" train "${common[@]}" --epochs 2 --lr 0.1 --out "$tmp/two.safetensors"
if [ "$resumed" -eq 0 ] && [ "$rc" -eq 0 ] && cmp -s "$m" "$tmp/two.safetensors"; then
    ok "the kept checkpoint resumes to the uninterrupted 2-epoch model, byte for byte"
else
    bad "resume from the kept checkpoint" "exits $resumed, $rc" "$(cmp "$m" "$tmp/two.safetensors" 2>&1)"
fi

bk_done
