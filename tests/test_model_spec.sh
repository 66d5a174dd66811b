#!/usr/bin/env bash
# test_model_spec.sh - model specs with settings that are not integers (src/models/zoo.c,
# docs/cli.md "Models") through the brick command: an activation, a dropout rate, a
# boolean.
#
#   bash tests/test_model_spec.sh    (scripts/run_tests.sh runs it; BRICK_BUILD=dir picks
#                                     the build, default build/)
#
# Checks: `brick summary --model` prints the canonical spec and the blocks the settings
# name; a model trained with them writes its canonical spec into the model file and the
# checkpoint, and summary, eval and --resume rebuild it from there (--resume with the same
# model spelled another way is accepted, another model refused); a bad value exits 2 with
# one line naming the spec, the setting and the value. Prints "test_model_spec: N passed,
# M failed" last and exits 1 on any failure.
set -u

cd "$(dirname "$0")/.." || exit 2
build=${BRICK_BUILD:-build}
brick=${BRICK_CLI:-$build/brick} # BRICK_CLI: a wrapper around it (make valgrind)
data=data/fashion-mnist-subset
tmp=$(mktemp -d /tmp/brick-spec-XXXXXX)
trap 'rm -rf "$tmp"' EXIT

passed=0
failed=0
ok() { passed=$((passed + 1)); echo "  ok   $1"; }
bad() { failed=$((failed + 1)); echo "  FAIL $1"; shift; for l in "$@"; do echo "       $l"; done; }

if [ ! -x "$brick" ]; then
    echo "test_model_spec: $brick is not built (run make)"
    echo "test_model_spec: 0 passed, 1 failed"
    exit 1
fi

run() {
    "$@" >"$tmp/out" 2>"$tmp/err"
    rc=$?
    out=$(cat "$tmp/out")
    err=$(cat "$tmp/err")
}
# expect NAME RC PATTERN CMD...: exit status RC and PATTERN (grep -E) in stdout+stderr
expect() {
    local name=$1 want=$2 pattern=$3
    shift 3
    run "$@"
    if [ "$rc" -eq "$want" ] && grep -Eq -- "$pattern" <<<"$out$err"; then
        ok "$name"
    else
        bad "$name" "exit $rc (want $want), pattern: $pattern" "stdout: ${out:0:300}" "stderr: ${err:0:300}"
    fi
}

# ---- summary: the canonical spec and the blocks ---------------------------------------
expect "summary: an activation and a dropout rate" 0 "^mlp:hidden=32,act=gelu,dropout=0.1$" \
    "$brick" summary --model "mlp:dropout=0.1,act=gelu,hidden=32"
if grep -q "GELU" <<<"$out" && grep -q "Dropout(p=0.1" <<<"$out" && ! grep -q "ReLU" <<<"$out"; then
    ok "summary: GELU and Dropout(0.1) in place of ReLU"
else
    bad "summary: the blocks" "${out:0:600}"
fi
expect "summary: a boolean (softmax without a bias: 784 x 10 weights)" 0 "total parameters: 7,840" \
    "$brick" summary --model softmax:bias=false
expect "summary: D2L's original LeNet (sigmoid, average pooling)" 0 "AvgPool2d" \
    "$brick" summary --model lenet:act=sigmoid,pool=avg
expect "summary: the spec of brick 0.1.0 stays canonical" 0 "^mlp:hidden=256$" "$brick" summary --model mlp

# ---- bad values: one line naming the spec, the setting and the value ------------------
one_line() { [ "$(wc -l <<<"$err")" -eq 1 ] && [ -z "$out" ]; }
expect "bad word: exit 2" 2 '^brick train: model: mlp:act=swish: act must be one of relu, sigmoid, tanh, gelu, got "swish"$' \
    "$brick" train --model mlp:act=swish --data "$data"
one_line && ok "bad word: one line" || bad "bad word: one line" "$err"
expect "bad number: exit 2" 2 '^brick summary: model: mlp:dropout=2: dropout must be a number in \[0, 1\], got "2"$' \
    "$brick" summary --model mlp:dropout=2
expect "bad boolean: exit 2" 2 'model: softmax:bias=no: bias must be true or false, got "no"' \
    "$brick" summary --model softmax:bias=no

# ---- files: the canonical spec is written and rebuilt ---------------------------------
m=$tmp/m.safetensors
spec="mlp:hidden=16,act=tanh,dropout=0.2"
expect "train with the settings" 0 "^model: $spec \(12,730 parameters\)|^model: $spec \(12730 parameters\)" \
    "$brick" train --model "mlp:act=tanh,dropout=0.2,hidden=16" --data "$data" --epochs 1 --threads 1 --out "$m"
expect "summary of the model file: its spec" 0 "$spec" "$brick" summary "$m"
expect "eval rebuilds it from the file" 0 "accuracy" "$brick" eval "$m" --data "$data"
expect "resume: the same model spelled another way is accepted" 0 "^epoch 2/2" \
    "$brick" train --resume "$tmp/m.ckpt.safetensors" --epochs 2 --model "mlp:dropout=0.2,hidden=16,act=tanh"
expect "resume: another activation is refused" 2 "--model mlp:hidden=16,act=relu,dropout=0.2 differs from the checkpoint's $spec" \
    "$brick" train --resume "$tmp/m.ckpt.safetensors" --epochs 3 --model "mlp:hidden=16,act=relu,dropout=0.2"

echo "test_model_spec: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
