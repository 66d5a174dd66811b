#!/usr/bin/env bash
# test.sh - everything CI checks, in one command (the README's test command).
#
#   scripts/test.sh
#
# Stages, each run to the end even if an earlier one failed:
#   1. scripts/deps.sh               (installs missing packages as root, else says what)
#   2. make -j$JOBS test             (build, PyTorch parity data, tests, examples)
#   3. make -j$JOBS test SAN=1       (the same under ASan + UBSan, in build-san/)
#   4. make -j$JOBS valgrind         (every test binary of build/ under valgrind: any error
#                                     or leak fails; skipped with a warning when valgrind is
#                                     not installed, an error with BRICK_REQUIRE_VALGRIND=1)
#   5. scripts/install_check.sh      (make install to a temporary prefix + consumer program)
#   6. scripts/format_check.sh       (every C file as .clang-format says; skipped with a
#                                     warning when clang-format is not installed)
#   7. make CC=clang BUILD=build-clang (the tree builds with clang's warnings as errors too)
#   8. fuzz/run.sh all $FUZZ_SECONDS (each libFuzzer target for FUZZ_SECONDS, default 60;
#                                     only when clang can link a libFuzzer program here)
# The last line is "N passed, M failed", summed over the stages' own counts (a stage that
# fails before reporting counts as one failure). Exit status 1 on any failure.
# Environment: JOBS (default 2), FUZZ_SECONDS (default 60; 0 skips fuzzing),
# BRICK_REQUIRE_VALGRIND (1: a missing valgrind fails the run; .ci/run sets it),
# BRICK_REQUIRE_MPI (1: tests/test_dist.sh fails instead of skipping its mpirun tests when
# the build has no MPI or mpirun is missing; .ci/run sets it), and whatever
# make and scripts/run_tests.sh read
# (BRICK_SEED, BRICK_REQUIRE_TORCH, BLAS via MAKEFLAGS, ...).
set -uo pipefail

cd "$(dirname "$0")/.." || exit 2
jobs=${JOBS:-2}
logdir=$(mktemp -d)
trap 'rm -rf "$logdir"' EXIT

total_passed=0
total_failed=0
report=()

# stage NAME COMMAND...: runs it with its output shown and kept, then adds its counts.
stage() {
    local name=$1 log status line p f
    shift
    log=$logdir/stage$((${#report[@]} + 1)).log
    echo
    echo "=== $name"
    "$@" 2>&1 | tee "$log"
    status=${PIPESTATUS[0]}
    line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$log" | tail -n 1)
    if [ -n "$line" ]; then
        p=${line%% passed*}
        f=${line#*passed, }
        f=${f%% failed}
    else
        p=0
        f=0
    fi
    # A failing stage always counts at least one failure (a build error prints no counts).
    if [ "$status" -ne 0 ] && [ "$f" -eq 0 ]; then
        f=1
    fi
    total_passed=$((total_passed + p))
    total_failed=$((total_failed + f))
    report+=("$(printf '%-24s %s' "$name" "$( [ "$status" -eq 0 ] && echo ok || echo "FAILED (exit $status)"): $p passed, $f failed")")
}

echo "=== scripts/deps.sh"
if ! bash scripts/deps.sh; then
    echo "scripts/deps.sh failed; continuing with what is installed"
fi

# FRESH=1: every stage runs every test again, with fresh parity data (a plain `make test`
# reruns only what changed or failed).
stage "make test" make -j"$jobs" test FRESH=1
stage "make test SAN=1" make -j"$jobs" test SAN=1 FRESH=1
if command -v valgrind >/dev/null || [ "${BRICK_REQUIRE_VALGRIND:-0}" = 1 ]; then
    stage "make valgrind" make -j"$jobs" valgrind VALGRIND_JOBS="$jobs" FRESH=1
else
    echo; echo "=== make valgrind: skipped (valgrind is not installed; scripts/deps.sh installs it)"
fi
stage "install check" bash scripts/install_check.sh
if command -v clang-format >/dev/null; then
    # counts as one check: it lists the files that are not formatted, if any
    stage "format check" bash -c 'bash scripts/format_check.sh && echo "1 passed, 0 failed" ||
        { echo "0 passed, 1 failed"; exit 1; }'
else
    echo; echo "=== format check: skipped (clang-format is not installed; scripts/deps.sh installs it)"
fi
if command -v clang >/dev/null; then
    # the whole tree with clang's warnings as errors (a user's compiler too; gcc's build
    # above is the one that runs the tests)
    stage "clang build (-Werror)" bash -c 'make -j"$1" CC=clang BUILD=build-clang >/dev/null &&
        echo "1 passed, 0 failed" || { make CC=clang BUILD=build-clang 2>&1 | grep -E "error|warning" | head -n 20;
        echo "0 passed, 1 failed"; exit 1; }' _ "$jobs"
else
    echo; echo "=== clang build: skipped (clang is not installed; scripts/deps.sh installs it)"
fi

# clang with libFuzzer: can it link a fuzz target?
fuzz_secs=${FUZZ_SECONDS:-60}
printf 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n);\n%s\n' \
    'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n) { (void)d; (void)n; return 0; }' \
    >"$logdir/probe.c"
if [ "$fuzz_secs" = 0 ]; then
    echo; echo "=== fuzz: skipped (FUZZ_SECONDS=0)"
elif command -v clang >/dev/null &&
    clang -fsanitize=fuzzer,address,undefined "$logdir/probe.c" -o "$logdir/probe" >/dev/null 2>&1; then
    stage "fuzz (${fuzz_secs}s each)" bash fuzz/run.sh all "$fuzz_secs"
else
    echo; echo "=== fuzz: skipped (no clang with libFuzzer; scripts/deps.sh installs clang libclang-rt-14-dev)"
fi

echo
echo "=== summary"
printf '%s\n' "${report[@]}"
echo "$total_passed passed, $total_failed failed"
[ "$total_failed" -eq 0 ]
