#!/usr/bin/env bash
# test_lm.sh - end-to-end tests of `brick train-lm` and `brick generate` (docs/text.md) on
# the bundled text sample data/text/fortunes-sample.txt.
#
#   bash tests/test_lm.sh            (scripts/run_tests.sh runs it; BRICK_BUILD=dir picks
#                                     the build, default build/)
#
# Checks: a small model trained for 400 steps ends with a validation loss below the
# add-one bigram baseline printed next to it; generate prints the prompt followed by
# exactly N sampled characters (and a newline), the same for the same seed; greedy
# decoding (temperature 0) works; --arch lstm also beats the baseline and generates; bad flags exit 2 with exactly one line on stderr; a file
# that is not a language model exits 1. Speaks TAP (tests/lib.sh); exits 1 on any failure.
set -u
source "$(dirname "$0")/lib.sh"
bk_setup
text=data/text/fortunes-sample.txt

# ---- training beats the bigram baseline ------------------------------------------------
model=$tmp/lm.safetensors
run "$brick" train-lm --text "$text" --context 32 --d-model 32 --layers 1 --heads 2 --ff 64 \
    --batch-size 16 --lr 1e-2 --steps 400 --eval-every 200 --threads 1 --seed 1 --out "$model"
final=$(grep '^final:' "$tmp/out")
if [ "$rc" -eq 0 ] && [ -f "$model" ] && [ -n "$final" ]; then
    ok "train-lm exits 0 and writes the model ($final)"
else
    bad "train-lm (exit $rc)" "$out" "$err"
fi
read -r val bigram < <(echo "$final" | sed -n 's/^final: val loss \([0-9.]*\) nats\/char, bigram baseline \([0-9.]*\).*/\1 \2/p')
if [ -n "${val:-}" ] && awk -v v="$val" -v b="$bigram" 'BEGIN { exit !(v < b) }'; then
    ok "validation loss $val < bigram baseline $bigram nats/char"
else
    bad "validation loss not below the bigram baseline" "$final"
fi
if grep -q '^step *200 .*val [0-9.]* nats/char  (bigram' "$tmp/out"; then
    ok "periodic validation lines"
else
    bad "no periodic validation line at step 200" "$out"
fi

# ---- --arch lstm: D2L's recurrent model also beats the baseline, and generates ----------
rmodel=$tmp/lstm.safetensors
run "$brick" train-lm --arch lstm --text "$text" --context 32 --d-model 64 --layers 1 --batch-size 16 \
    --lr 1e-2 --steps 300 --eval-every 0 --threads 1 --seed 1 --out "$rmodel"
rfinal=$(grep '^final:' "$tmp/out")
read -r rval rbigram < <(echo "$rfinal" | sed -n 's/^final: val loss \([0-9.]*\) nats\/char, bigram baseline \([0-9.]*\).*/\1 \2/p')
if [ "$rc" -eq 0 ] && grep -q '^model: lstm, ' "$tmp/out" && [ -n "${rval:-}" ] &&
    awk -v v="$rval" -v b="$rbigram" 'BEGIN { exit !(v < b) }'; then
    ok "train-lm --arch lstm: validation loss $rval < bigram baseline $rbigram nats/char"
else
    bad "train-lm --arch lstm (exit $rc)" "$out" "$err"
fi
run "$brick" generate "$rmodel" --prompt "Q:" --length 30 --temperature 0.8 --seed 2
if [ "$rc" -eq 0 ] && [ ${#out} -eq 32 ]; then ok "generate from an LSTM model"; else bad "generate from an LSTM model (exit $rc)" "$out" "$err"; fi

# ---- generate --------------------------------------------------------------------------
prompt="The meaning of life is"
n=50
if [ -f "$model" ]; then
    "$brick" generate "$model" --prompt "$prompt" --length $n --temperature 0.8 --seed 3 >"$tmp/g1" 2>"$tmp/err"
    rc=$?
    size=$(wc -c <"$tmp/g1")
    if [ "$rc" -eq 0 ] && [ "$(head -c ${#prompt} "$tmp/g1")" = "$prompt" ] && [ "$size" -eq $((${#prompt} + n + 1)) ]; then
        ok "generate prints the prompt and $n characters"
    else
        bad "generate (exit $rc, $size bytes, want $((${#prompt} + n + 1)))" "$(cat "$tmp/g1")" "$(cat "$tmp/err")"
    fi
    "$brick" generate "$model" --prompt "$prompt" --length $n --temperature 0.8 --seed 3 >"$tmp/g2" 2>/dev/null
    if cmp -s "$tmp/g1" "$tmp/g2"; then ok "same seed, same text"; else bad "same seed gave different text"; fi
    run "$brick" generate "$model" --prompt "A" --length 20 --temperature 0
    if [ "$rc" -eq 0 ] && [ ${#out} -eq 21 ]; then ok "greedy generation"; else bad "greedy generation (exit $rc)" "$out" "$err"; fi
else
    bad "generate: no model to sample from"
fi

# ---- usage and runtime errors ------------------------------------------------------------
usage_case() { # usage_case DESC ARGS...: exit 2 and one line "brick <cmd>: ..."
    local desc=$1
    shift
    run "$brick" "$@"
    local lines
    lines=$(printf '%s\n' "$err" | grep -c .)
    if [ "$rc" -eq 2 ] && [ "$lines" -eq 1 ] && [[ $err == "brick "* ]]; then
        ok "usage error: $desc"
    else
        bad "usage error: $desc (exit $rc, $lines lines)" "$err"
    fi
}
usage_case "unknown flag" train-lm --bogus 1
usage_case "bad number" train-lm --steps abc
usage_case "heads not dividing d-model" train-lm --d-model 30 --heads 4 --steps 1
usage_case "missing text" train-lm --text "$tmp/nope.txt" --steps 1
usage_case "bad positions" train-lm --positions rotary
usage_case "bad arch" train-lm --arch mamba
usage_case "generate without a file" generate
usage_case "negative temperature" generate "$model" --temperature -1
usage_case "generate unknown flag" generate "$model" --frobnicate
usage_case "prompt outside the vocabulary" generate "$model" --prompt $'\x01'
echo "not a model" >"$tmp/bad.safetensors"
run "$brick" generate "$tmp/bad.safetensors"
if [ "$rc" -eq 1 ]; then ok "a file that is not a model exits 1"; else bad "bad model file (exit $rc)" "$err"; fi

bk_done
