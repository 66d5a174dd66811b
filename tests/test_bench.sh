#!/usr/bin/env bash
# test_bench.sh - a smoke test of bench/compare.py, the benchmark driver: `--quick --only
# seed-mlp` runs and prints a table with a brick figure for both seed-MLP workloads (and a
# PyTorch figure when torch is importable), PyTorch on the reference BLAS makes it refuse
# every ratio, bad arguments are refused, and --write-docs replaces only the text between
# its markers. Never a timing assertion: a slow machine passes.
#
# Needs the bench programs (`make` builds them with everything else). Runs brick through
# BRICK_CLI when the test runner gives one (make valgrind).
set -u
source "$(dirname "$0")/lib.sh"
bk_setup --no-brick
compare() { BRICK=$brick "$py" bench/compare.py --build "$build" "$@"; }
has_torch=0
"$py" -c 'import torch' 2>/dev/null && has_torch=1

compare --quick --only seed-mlp >"$tmp/out" 2>&1
rc=$?
sed 's/^/    /' "$tmp/out"
check "--quick --only seed-mlp exits 0" "[ $rc -eq 0 ]"
check "it prints the table's header" "grep -q '^| workload | brick | PyTorch | brick / PyTorch |' '$tmp/out'"
for w in seed-mlp-fwd seed-mlp-train; do
    check "$w: a row with brick's time in µs" "grep -Eq '^\| $w: [^|]*\| [0-9.]+ µs \|' '$tmp/out'"
    if [ "$has_torch" = 1 ]; then
        check "$w: PyTorch's time and a ratio (or 'refused')" \
            "grep -Eq '^\| $w: [^|]*\| [0-9.]+ µs \| [0-9.]+ µs \| ([0-9.]+|refused) \|' '$tmp/out'"
    fi
done
check "only the chosen workloads ran" "! grep -q '^| lenet' '$tmp/out'"
check "the machine is named" "grep -q '^machine: .*CPUs' '$tmp/out'"

# PyTorch on the reference BLAS (where Debian has it beside OpenBLAS): ratios refused.
ref=/usr/lib/x86_64-linux-gnu/blas
if [ "$has_torch" = 1 ] && [ -e "$ref/libblas.so.3" ]; then
    LD_LIBRARY_PATH=$ref compare --quick --only seed-mlp-fwd >"$tmp/ref" 2>&1
    rc=$?
    grep -E 'BLAS|REFUS|^\| seed' "$tmp/ref" | sed 's/^/    /'
    check "reference BLAS: still exits 0 with a table" "[ $rc -eq 0 ] && grep -q '^| seed-mlp-fwd' '$tmp/ref'"
    check "reference BLAS: the ratio is refused" "grep -Eq '^\| seed-mlp-fwd: [^|]*\|[^|]*\|[^|]*\| refused \|' '$tmp/ref'"
    check "reference BLAS: says why" "grep -q 'REFUSING RATIOS: torch.mm ran at' '$tmp/ref'"
else
    skip "reference BLAS: the ratio is refused" "no PyTorch or no reference BLAS in $ref"
fi

# lm-tokens runs brick train-lm several times into the same files (it needs --force: a run
# without it was refused, and the full benchmark stopped there)
if [ "$has_torch" = 1 ]; then
    compare --quick --only lm-tokens >"$tmp/lm" 2>&1
    rc=$?
    grep -E 'failed|^\| lm' "$tmp/lm" | sed 's/^/    /'
    check "--quick --only lm-tokens exits 0 with its row" \
        "[ $rc -eq 0 ] && grep -Eq '^\| lm-tokens: [^|]*\| [0-9,]+ tokens/s \|' '$tmp/lm'"
else
    skip "--quick --only lm-tokens" "no PyTorch"
fi

compare --only no-such-workload >"$tmp/bad" 2>&1
check "--only matching nothing: exit 2" "[ $? -eq 2 ] && grep -q 'matches no workload' '$tmp/bad'"
compare --quick --write-docs "$tmp/doc.md" >"$tmp/bad" 2>&1
check "--write-docs with --quick: refused (exit 2)" "[ $? -eq 2 ] && grep -q 'needs the full run' '$tmp/bad'"

# --write-docs's file handling, without a full run: only the text between the markers changes.
printf 'before\n<!-- compare.py begin -->\nold table\n<!-- compare.py end -->\nafter\n' >"$tmp/doc.md"
"$py" -c 'import sys; sys.path.insert(0, "bench"); import compare; compare.write_docs(sys.argv[1], "NEW")' \
    "$tmp/doc.md" >/dev/null
check "write_docs replaces the marked section only" \
    "[ \"\$(cat '$tmp/doc.md')\" = \"\$(printf 'before\n<!-- compare.py begin -->\nNEW\n<!-- compare.py end -->\nafter')\" ]"
printf 'no markers\n' >"$tmp/nomark.md"
"$py" -c 'import sys; sys.path.insert(0, "bench"); import compare; compare.write_docs(sys.argv[1], "NEW")' \
    "$tmp/nomark.md" >"$tmp/bad" 2>&1
check "write_docs without markers: an error naming them, file unchanged" \
    "[ \$? -ne 0 ] && grep -q 'markers' '$tmp/bad' && [ \"\$(cat '$tmp/nomark.md')\" = 'no markers' ]"
bk_done
