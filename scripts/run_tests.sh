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
#    root, each one's output captured in DIR/test-logs/, continuing after failures.
# 3. Runs DIR/examples/X for every examples/X.c the same way (unless --no-examples); a
#    non-zero exit fails.
#    With --jobs N, N programs (tests, scripts, examples) run at once, reported as they
#    finish.
# 4. Prints "N passed, M failed" (one per program or script; a failed parity generator
#    counts as one failure) as the last line and exits 1 if anything failed.
#
# Environment: BRICK_TEST_WRAPPER (a command put in front of every test binary and example,
# e.g. valgrind; the test scripts get it in front of every `brick` they start, through
# BRICK_CLI: a wrapper script in DIR/test-logs/. When the wrapper is valgrind, each CLI run
# writes its own valgrind log there, and a script passes only if it started brick at least
# once and every one of those logs says "ERROR SUMMARY: 0 errors"; the CLI runs and the
# examples then use BRICK_GEMM_KERNEL=portable unless it is set), BRICK_TEST_TIMEOUT
# (seconds per program, default 900), ASAN_OPTIONS / UBSAN_OPTIONS (defaults detect_leaks=1
# and print_stacktrace=1:halt_on_error=1).
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

# Ctrl-C or kill: timeout(1) runs each program in a process group of its own, which the
# terminal's SIGINT does not reach, so pass the signal to every timeout below this script
# (each one passes it to its program); otherwise tests would go on running, and writing
# into the next run's logs, after this script has gone.
stop_all() {
    local pids
    pids=$(ps -e -o pid=,ppid=,comm= | awk -v root=$$ '
        { parent[$1] = $2; comm[$1] = $3 }
        END { for (p in parent) if (comm[p] == "timeout") {
                  for (q = parent[p]; q > 1; q = parent[q]) if (q == root) { print p; break } } }')
    [ -n "$pids" ] && kill -TERM $pids 2>/dev/null
    echo "run_tests.sh: stopped by a signal" >&2
    exit 130
}
trap stop_all INT TERM HUP
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
# cli_dir_of SCRIPT: where a test script's CLI wrapper and its runs' valgrind logs go.
cli_dir_of() { local d=${1%.sh}.cli; echo "$logs/${d//\//_}"; }

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

# cli_check SCRIPT: for a test script run with a valgrind wrapper, what its brick runs' own
# valgrind logs say: prints "N brick runs under valgrind, 0 errors" and returns 0, or prints
# why not (no run at all: the script did not use $BRICK_CLI; a log without its ERROR
# SUMMARY: the run was killed; errors or leaks) and returns 1. Other scripts: returns 0.
cli_check() {
    local dir n=0 bad=() f
    dir=$(cli_dir_of "$1")
    [ -d "$dir" ] && [ "$wrapper_is_valgrind" = 1 ] || return 0
    for f in "$dir"/valgrind.*.log; do
        n=$((n + 1))
        grep -q 'ERROR SUMMARY: 0 errors' "$f" || bad+=("$f")
    done
    if [ "$n" -eq 0 ]; then
        echo "started no brick under valgrind (does it run \$BRICK_CLI?)"
        return 1
    elif [ ${#bad[@]} -gt 0 ]; then
        echo "valgrind: errors, leaks or no ERROR SUMMARY (killed?) in ${#bad[@]} of $n brick runs, first ${bad[0]#"$root"/}"
        return 1
    fi
    echo "$n brick runs under valgrind, 0 errors"
}

# report_one KIND PROGRAM: prints and counts what start_one left. Tests and scripts must
# also print their "suite: N passed, M failed" line.
report_one() {
    local kind=$1 prog=$2
    local name=${prog#"$build"/} log status secs cpu summary cli
    log=$(log_of "$prog")
    read -r status secs cpu <"$log.status"
    summary=$(grep -E '^[^ ].*: [0-9]+ passed, [0-9]+ failed$' "$log" | tail -n 1)
    local cli_ok=1
    if [ "$kind" = script ]; then
        cli=$(cli_check "$prog") || cli_ok=0
        summary+=${cli:+"; $cli"}
    fi
    if [ "$status" -eq 0 ] && [ "$cli_ok" = 1 ] && { [ "$kind" = example ] || [ -n "$summary" ]; }; then
        passed=$((passed + 1))
        printf 'PASS  %-32s %4ss  cpu %4ss  %s\n' "$name" "$secs" "$cpu" "${summary:-$(grep -v '^==[0-9]*==' "$log" | tail -n 1 | cut -c1-60)}"
        return
    fi
    failed=$((failed + 1))
    failures+=("$name")
    local why="exit $status"
    if [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; then
        why="timed out after ${timeout_s}s"
    elif [ "$status" -gt 128 ]; then
        why="killed by signal $((status - 128))"
    elif [ "$status" -eq 0 ] && [ "$cli_ok" = 1 ]; then
        why="exit 0 but no 'N passed, M failed' summary line"
    fi
    printf 'FAIL  %-32s %4ss  cpu %4ss  %s%s\n' "$name" "$secs" "$cpu" "$why" "${summary:+; $summary}"
    show_log "$log"
}

# launch KIND PROGRAM [WRAPPER...]: runs it and reports it; with --jobs N, starts it in the
# background once fewer than N are running (reap_one reports it when it finishes).
declare -A running=() # pid -> "KIND PROGRAM"
reap_one() {
    local done_pid=
    wait -n -p done_pid "${!running[@]}"
    if [ -n "$done_pid" ] && [ -n "${running[$done_pid]+set}" ]; then
        report_one ${running[$done_pid]}
        unset "running[$done_pid]"
    fi
}
launch() {
    local kind=$1 prog=$2
    shift 2
    if [ "$jobs" -eq 1 ]; then
        start_one "$prog" "$@"
        report_one "$kind" "$prog"
        return
    fi
    while [ ${#running[@]} -ge "$jobs" ]; do reap_one; done
    start_one "$prog" "$@" &
    running[$!]="$kind $prog"
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

wrapper_is_valgrind=0
[ ${#wrapper[@]} -gt 0 ] && [ "$(basename "${wrapper[0]}")" = valgrind ] && wrapper_is_valgrind=1
# Under valgrind the CLI runs and the examples use the portable GEMM kernel (unless
# BRICK_GEMM_KERNEL is set): valgrind emulates the AVX2 kernel's FMA instructions in its own
# code (an MLP evaluation: 21.6 s against 2.4 s), and they train models, where the test binaries check the kernels
# themselves (with the CPU's best kernel, test_gemm both).
slow_env=()
[ "$wrapper_is_valgrind" = 1 ] && slow_env=(env "BRICK_GEMM_KERNEL=${BRICK_GEMM_KERNEL:-portable}")

mapfile -t tests < <(programs_for tests 'test_*')
if [ ${#tests[@]} -eq 0 ]; then
    echo "FAIL  no tests/test_*.c"
    failed=$((failed + 1))
    failures+=("(no tests)")
fi
test_scripts=(tests/test_*.sh)
[ "$scripts" = 1 ] || test_scripts=()
exs=()
[ "$examples" = 1 ] && mapfile -t exs < <(programs_for examples '*')
echo "running ${#tests[@]} test binaries, ${#test_scripts[@]} test scripts and ${#exs[@]} examples$(
    [ ${#wrapper[@]} -gt 0 ] && echo " under ${wrapper[*]}")$( [ "$jobs" -gt 1 ] && echo ", $jobs at a time")"
[ "$scripts" = 1 ] || echo "(--no-scripts: not running tests/test_*.sh)"
[ "$examples" = 1 ] || echo "(--no-examples: not running the examples)"

launch_tests() {
    local t
    for t in "${tests[@]}"; do
        if [ -x "$t" ]; then launch test "$t" "${wrapper[@]}"; else missing "$t"; fi
    done
}
# In parallel the scripts and the examples (the longest programs under valgrind: a few minutes
# each for test_cli.sh, test_interrupt.sh and 07_seq2seq_reverse) start first, so that the
# short tests fill the gaps instead of one long program running alone at the end.
[ "$jobs" -eq 1 ] && launch_tests
# Test scripts (the brick CLI's): bash tests/test_X.sh, told the build through BRICK_BUILD
# and, with a wrapper, the brick to run through BRICK_CLI: a script that puts the wrapper in
# front of DIR/brick (valgrind: with a log file per run, checked by cli_check).
for s in "${test_scripts[@]}"; do
    cli=()
    if [ ${#wrapper[@]} -gt 0 ]; then
        d=$(cli_dir_of "$s")
        mkdir -p "$d"
        extra=()
        [ "$wrapper_is_valgrind" = 1 ] && extra=("--log-file=$d/valgrind.%p.log")
        {
            echo '#!/usr/bin/env bash'
            # at run time, so that a script's own BRICK_GEMM_KERNEL=... reaches brick
            [ ${#slow_env[@]} -gt 0 ] && echo 'export BRICK_GEMM_KERNEL=${BRICK_GEMM_KERNEL:-portable}'
            echo "exec $(printf '%q ' "${wrapper[@]}" "${extra[@]}" "$build/brick")\"\$@\""
        } >"$d/brick"
        chmod +x "$d/brick"
        cli=("BRICK_CLI=$d/brick")
    fi
    launch script "$s" env BRICK_BUILD="$build" "${cli[@]}" bash
done
for x in "${exs[@]}"; do
    if [ -x "$x" ]; then launch example "$x" "${slow_env[@]}" "${wrapper[@]}"; else missing "$x"; fi
done
[ "$jobs" -gt 1 ] && launch_tests
while [ ${#running[@]} -gt 0 ]; do reap_one; done

# ---- 4. summary ------------------------------------------------------------------------

if [ "$parity_skipped" = 1 ]; then
    echo "WARNING: PyTorch parity tests were SKIPPED (no torch for $python)"
fi
if [ "$failed" -gt 0 ]; then
    echo "failed: ${failures[*]}  (logs in ${logs#"$root"/}/)"
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
