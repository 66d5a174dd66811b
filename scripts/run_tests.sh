#!/usr/bin/env bash
# run_tests.sh - runs brick's test binaries and examples; `make test` and `make valgrind`
# call it after building.
#
#   scripts/run_tests.sh [--build DIR] [--jobs N] [--no-scripts] [--no-examples]
#
# 1. PyTorch parity data: if $BRICK_PYTHON (default /usr/bin/python3, Debian's python3-torch)
#    can import torch, runs tests/parity/gen_reference.py and then every other
#    tests/parity/gen_*.py with --out DIR/parity --seed SEED, SEED fresh and random
#    (printed; BRICK_SEED=n reuses one). BRICK_PARITY_DIR=DIR/parity is exported to the
#    tests either way (the directory is removed first, so it only exists when this run made
#    it). Without torch the parity tests are skipped with a loud warning;
#    BRICK_REQUIRE_TORCH=1 makes that an error.
# 2. Runs DIR/tests/test_X for every tests/test_X.c, and `bash tests/test_X.sh` (with
#    BRICK_BUILD=DIR) for every tests/test_X.sh (unless --no-scripts), from the repository
#    root, each one's output captured in DIR/test-logs/, continuing after failures. With
#    --jobs N, N test binaries run at once (reported as they finish); scripts and examples
#    always run one at a time.
# 3. Runs DIR/examples/X for every examples/X.c the same way (unless --no-examples); a
#    non-zero exit fails.
# 4. Prints "N passed, M failed" (one per program or script; a failed parity generator
#    counts as one failure) as the last line and exits 1 if anything failed.
#
# Environment: BRICK_TEST_WRAPPER (a command put in front of every test binary, e.g. valgrind),
# BRICK_TEST_TIMEOUT (seconds per program, default 900), ASAN_OPTIONS / UBSAN_OPTIONS
# (defaults detect_leaks=1 and print_stacktrace=1:halt_on_error=1).
set -uo pipefail

usage() { sed -n '2,/^set /{/^set /d;s/^# \{0,1\}//;p}' "$0"; }

build=build
examples=1
scripts=1
jobs=1
while [ $# -gt 0 ]; do
    case $1 in
        --build) build=${2:?--build needs a directory}; shift 2 ;;
        --jobs) jobs=${2:?--jobs needs a number}; shift 2 ;;
        --no-scripts) scripts=0; shift ;;
        --no-examples) examples=0; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "run_tests.sh: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
    esac
done

case $jobs in ''|*[!0-9]*|0) echo "run_tests.sh: --jobs needs a positive number, got '$jobs'" >&2; exit 2 ;; esac
# `wait -n -p` (which job finished) is bash 5.1; an older bash runs one at a time.
if [ "$jobs" -gt 1 ] && ! ((BASH_VERSINFO[0] > 5 || (BASH_VERSINFO[0] == 5 && BASH_VERSINFO[1] >= 1))); then
    echo "run_tests.sh: bash $BASH_VERSION cannot run tests in parallel (needs 5.1); --jobs 1" >&2
    jobs=1
fi

cd "$(dirname "$0")/.." || exit 2
root=$(pwd)
case $build in /*) ;; *) build=$root/$build ;; esac
if [ ! -d "$build" ]; then
    echo "run_tests.sh: no build directory $build (run make first)" >&2
    exit 2
fi

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
timeout_s=${BRICK_TEST_TIMEOUT:-900}
read -r -a wrapper <<<"${BRICK_TEST_WRAPPER:-}"
python=${BRICK_PYTHON:-/usr/bin/python3}
logs=$build/test-logs
rm -rf "$logs"
mkdir -p "$logs"

passed=0
failed=0
failures=()

# Shows the end of a log, indented, after a failure.
show_log() {
    local lines
    lines=$(wc -l <"$1")
    if [ "$lines" -gt 80 ]; then
        echo "    ... ($((lines - 80)) earlier lines in $1)"
    fi
    tail -n 80 "$1" | sed 's/^/    | /'
}

# ---- 1. parity reference data ----------------------------------------------------------

parity_dir=$build/parity
parity_skipped=0
rm -rf "$parity_dir"
# Always set, so no test falls back to some other (stale) directory; it only exists when
# this run generated it, and a parity test finding no directory skips (or, with
# BRICK_REQUIRE_TORCH=1, fails).
export BRICK_PARITY_DIR=$parity_dir
gen=tests/parity/gen_reference.py
if [ ! -f "$gen" ]; then
    echo "parity: $gen does not exist yet; no reference data generated"
elif "$python" -c 'import torch' >/dev/null 2>&1; then
    seed=${BRICK_SEED:-$(od -An -N4 -tu4 /dev/urandom | tr -d ' \n')}
    torch_version=$("$python" -c 'import torch; print(torch.__version__)' 2>/dev/null)
    echo "parity: PyTorch $torch_version, seed $seed (BRICK_SEED=$seed reproduces this run)"
    # Every generator (tests/parity/gen_*.py, gen_reference.py first) writes into the same
    # directory with the same seed; a new generator needs no edit here.
    gens=("$gen")
    for g in tests/parity/gen_*.py; do
        [ "$g" != "$gen" ] && gens+=("$g")
    done
    for g in "${gens[@]}"; do
        start=$SECONDS
        glog=$logs/$(basename "$g" .py).log
        if timeout "$timeout_s" "$python" "$g" --out "$parity_dir" --seed "$seed" \
            >"$glog" 2>&1; then
            echo "parity: $(basename "$g"): reference data in $parity_dir ($((SECONDS - start))s)"
        else
            status=$?
            echo "FAIL  parity reference generation: $g (exit $status)"
            show_log "$glog"
            failed=$((failed + 1))
            failures+=("$g")
        fi
    done
else
    parity_skipped=1
    echo "################################################################################"
    echo "##  WARNING: PyTorch is not importable by $python."
    echo "##  The PyTorch PARITY TESTS ARE SKIPPED: results below say nothing about them."
    echo "##  Install it with: apt-get install python3-torch (or run scripts/deps.sh)."
    echo "################################################################################"
    if [ "${BRICK_REQUIRE_TORCH:-0}" = 1 ]; then
        echo "FAIL  BRICK_REQUIRE_TORCH=1 but PyTorch is missing"
        failed=$((failed + 1))
        failures+=("PyTorch (BRICK_REQUIRE_TORCH=1)")
    fi
fi

# ---- 2 and 3. programs -----------------------------------------------------------------

log_of() { local name=${1#"$build"/}; echo "$logs/${name//\//_}.log"; }

# start_one PROGRAM [WRAPPER...]: runs it from the repository root; its output goes to its
# log, its exit status, wall seconds and CPU seconds (user + system, of it and its children:
# on a busy machine the wall time says little) to the log's .status file.
start_one() {
    local prog=$1 log start status TIMEFORMAT='%U %S'
    shift
    log=$(log_of "$prog")
    start=$SECONDS
    # The subshell (kept by the trailing exit) reports a crash into the log, not the terminal.
    { time { (timeout --kill-after=10 "$timeout_s" "$@" "$prog" </dev/null; exit $?) >"$log" 2>&1; }; } 2>"$log.cpu"
    status=$?
    echo "$status $((SECONDS - start)) $(awk '{ printf "%.0f", $1 + $2 }' "$log.cpu")" >"$log.status"
    rm -f "$log.cpu"
}

# report_one KIND PROGRAM: prints and counts what start_one left. Test binaries must also
# print their "suite: N passed, M failed" line.
report_one() {
    local kind=$1 prog=$2
    local name=${prog#"$build"/} log status secs cpu summary
    log=$(log_of "$prog")
    read -r status secs cpu <"$log.status"
    summary=$(grep -E '^[^ ].*: [0-9]+ passed, [0-9]+ failed$' "$log" | tail -n 1)
    if [ "$status" -eq 0 ] && { [ "$kind" != test ] || [ -n "$summary" ]; }; then
        passed=$((passed + 1))
        printf 'PASS  %-32s %4ss  cpu %4ss  %s\n' "$name" "$secs" "$cpu" "${summary:-$(tail -n 1 "$log" | cut -c1-60)}"
        return
    fi
    failed=$((failed + 1))
    failures+=("$name")
    local why="exit $status"
    if [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; then
        why="timed out after ${timeout_s}s"
    elif [ "$status" -gt 128 ]; then
        why="killed by signal $((status - 128))"
    elif [ "$status" -eq 0 ]; then
        why="exit 0 but no 'N passed, M failed' summary line"
    fi
    printf 'FAIL  %-32s %4ss  cpu %4ss  %s%s\n' "$name" "$secs" "$cpu" "$why" "${summary:+; $summary}"
    show_log "$log"
}

# run_one KIND PROGRAM [WRAPPER...]: runs it, then reports it.
run_one() {
    local kind=$1 prog=$2
    shift 2
    start_one "$prog" "$@"
    report_one "$kind" "$prog"
}

# The programs to run come from the sources, so a stale binary whose source is gone never
# runs, and one that should exist but does not is a failure.
shopt -s nullglob
programs_for() { # programs_for SRCDIR GLOB: the build paths of SRCDIR/GLOB.c, sorted
    local src
    for src in "$1"/$2.c; do
        src=${src%.c}
        echo "$build/$src"
    done
}
missing() {
    failed=$((failed + 1))
    failures+=("${1#"$build"/}")
    echo "FAIL  ${1#"$build"/}: not built (run make)"
}

mapfile -t tests < <(programs_for tests 'test_*')
if [ ${#tests[@]} -eq 0 ]; then
    echo "FAIL  no tests/test_*.c"
    failed=$((failed + 1))
    failures+=("(no tests)")
fi
echo "running ${#tests[@]} test binaries${wrapper[0]:+ under ${wrapper[*]}}$( [ "$jobs" -gt 1 ] && echo ", $jobs at a time")"
declare -A running=() # pid -> test binary, with --jobs
reap_one() { # waits for one of the running test binaries to finish and reports it
    local done_pid=
    wait -n -p done_pid "${!running[@]}"
    if [ -n "$done_pid" ] && [ -n "${running[$done_pid]+set}" ]; then
        report_one test "${running[$done_pid]}"
        unset "running[$done_pid]"
    fi
}
for t in "${tests[@]}"; do
    if [ ! -x "$t" ]; then
        missing "$t"
    elif [ "$jobs" -eq 1 ]; then
        run_one test "$t" "${wrapper[@]}"
    else
        while [ ${#running[@]} -ge "$jobs" ]; do reap_one; done
        start_one "$t" "${wrapper[@]}" &
        running[$!]=$t
    fi
done
while [ ${#running[@]} -gt 0 ]; do reap_one; done
# Shell tests (the brick CLI's): bash tests/test_X.sh, told the build through BRICK_BUILD.
test_scripts=(tests/test_*.sh)
if [ "$scripts" = 0 ]; then
    echo "not running the ${#test_scripts[@]} test scripts (--no-scripts)"
elif [ ${#test_scripts[@]} -gt 0 ]; then
    echo "running ${#test_scripts[@]} test scripts"
    for s in "${test_scripts[@]}"; do run_one test "$s" env BRICK_BUILD="$build" bash; done
fi

if [ "$examples" = 1 ]; then
    mapfile -t exs < <(programs_for examples '*')
    echo "running ${#exs[@]} examples"
    for x in "${exs[@]}"; do
        if [ -x "$x" ]; then run_one example "$x"; else missing "$x"; fi
    done
fi

# ---- 4. summary ------------------------------------------------------------------------

if [ "$parity_skipped" = 1 ]; then
    echo "WARNING: PyTorch parity tests were SKIPPED (no torch for $python)"
fi
if [ "$failed" -gt 0 ]; then
    echo "failed: ${failures[*]}  (logs in ${logs#"$root"/}/)"
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
