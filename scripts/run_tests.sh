#!/usr/bin/env bash
# run_tests.sh - the recipes behind `make test` and `make valgrind`. make decides what runs
# (each test's result is a target, $(BUILD)/test-logs/<program>.tap, remade only when the
# program or its inputs changed or it failed last time; -jN runs N at once) and `prove`,
# perl's TAP runner, runs each program and judges its TAP. This script only says how:
#
#   run_tests.sh parity STAMP          PyTorch parity data into $BRICK_PARITY_DIR
#   run_tests.sh run KIND PROG TAP     one program (KIND: test, script or example)
#   run_tests.sh summary STAMP TAP...  the failures, and "N passed, M failed" last
#   run_tests.sh example PROG          an example as TAP (one test: its exit status)
#
# parity: if $BRICK_PYTHON (default /usr/bin/python3, Debian's python3-torch) imports torch,
#   runs tests/parity/gen_reference.py and then every other tests/parity/gen_*.py with
#   --out $BRICK_PARITY_DIR --seed SEED, SEED fresh and random (printed; BRICK_SEED=n
#   reuses one), and writes the seed to STAMP. The directory is removed first, so it only
#   holds this run's data. Without torch it warns loudly and the parity tests skip;
#   BRICK_REQUIRE_TORCH=1 makes that an error.
# run: `prove` runs PROG from the repository root under `timeout $BRICK_TEST_TIMEOUT`
#   (seconds, default 900) and $BRICK_TEST_WRAPPER (e.g. valgrind); a script as `bash PROG`
#   with BRICK_BUILD set, and with a wrapper BRICK_CLI=scripts/wrap_brick.sh, which puts
#   the wrapper in front of every brick the script starts (valgrind: one log per run in
#   TAP's directory, PROG.cli/, and the script passes only if it started brick at least once
#   and every log says "ERROR SUMMARY: 0 errors"). Under valgrind the examples and the CLI
#   use BRICK_GEMM_KERNEL=portable unless it is set: valgrind emulates the AVX2 kernel's FMA
#   instructions in its own code (an MLP evaluation: 21.6 s against 2.4 s). prove's
#   verbose output goes to TAP.log, renamed to TAP when it passed; a PASS or FAIL line
#   (with the end of the log) is printed.
# summary: a TAP file that exists passed (now or in an earlier run, and nothing it depends
#   on changed since); one that does not failed or did not run. A missing STAMP (parity
#   generation failed; - when no parity test was chosen) counts as one more failure.
set -uo pipefail

cd "$(dirname "$0")/.." || exit 2
root=$(pwd)
read -r -a wrapper <<<"${BRICK_TEST_WRAPPER:-}"
valgrind=0
[ ${#wrapper[@]} -gt 0 ] && [ "$(basename "${wrapper[0]}")" = valgrind ] && valgrind=1
timeout_s=${BRICK_TEST_TIMEOUT:-900}
python=${BRICK_PYTHON:-/usr/bin/python3}

# Shows the end of a log, indented, after a failure.
show_log() {
    local lines
    lines=$(wc -l <"$1")
    [ "$lines" -gt 80 ] && echo "    ... ($((lines - 80)) earlier lines in $1)"
    tail -n 80 "$1" | sed 's/^/    | /'
}

parity() {
    local stamp=$1 dir=${BRICK_PARITY_DIR:?BRICK_PARITY_DIR must be set} seed g start status
    rm -rf "$dir" "$stamp"
    if ! "$python" -c 'import torch' >/dev/null 2>&1; then
        echo "################################################################################"
        echo "##  WARNING: PyTorch is not importable by $python."
        echo "##  The PyTorch PARITY TESTS ARE SKIPPED: results below say nothing about them."
        echo "##  Install it with: apt-get install python3-torch (or run scripts/deps.sh)."
        echo "################################################################################"
        if [ "${BRICK_REQUIRE_TORCH:-0}" = 1 ]; then
            echo "FAIL  BRICK_REQUIRE_TORCH=1 but PyTorch is missing"
            return 1
        fi
        echo skipped >"$stamp"
        return 0
    fi
    seed=${BRICK_SEED:-$(od -An -N4 -tu4 /dev/urandom | tr -d ' \n')}
    echo "parity: PyTorch $("$python" -c 'import torch; print(torch.__version__)'), seed $seed (BRICK_SEED=$seed reproduces this run)"
    mkdir -p "$dir"
    # gen_reference.py first, then every other generator, all with the same seed: a new
    # generator needs no edit here.
    for g in tests/parity/gen_reference.py $(ls tests/parity/gen_*.py | grep -v '/gen_reference\.py$'); do
        start=$SECONDS
        if timeout "$timeout_s" "$python" "$g" --out "$dir" --seed "$seed" >"$dir/$(basename "$g" .py).log" 2>&1; then
            echo "parity: $(basename "$g"): reference data in ${dir#"$root"/} ($((SECONDS - start))s)"
        else
            status=$?
            echo "FAIL  parity reference generation: $g (exit $status)"
            show_log "$dir/$(basename "$g" .py).log"
            return 1
        fi
    done
    echo "$seed" >"$stamp"
}

# cli_check DIR: what the valgrind logs of a script's brick runs say (see the top).
cli_check() {
    local n=0 bad=() f
    for f in "$1"/valgrind.*.log; do
        [ -e "$f" ] || continue
        n=$((n + 1))
        grep -q 'ERROR SUMMARY: 0 errors' "$f" && continue
        # A run killed by a signal's default action (a test's SIGTERM that came before brick
        # set its handlers, while it loaded data) frees nothing on the way out: its leaks are
        # not bugs, its other errors are. So there only the leak records may be errors (the
        # first such run: test_interrupt.sh's `timeout -s TERM 1.5` on a loaded CI machine).
        if grep -q 'Process terminating with default action of signal' "$f"; then
            local errs leaks
            errs=$(sed -n 's/.*ERROR SUMMARY: \([0-9]*\) errors.*/\1/p' "$f" | tail -n 1)
            leaks=$(grep -c 'lost in loss record' "$f")
            [ -n "$errs" ] && [ "$errs" -le "$leaks" ] && continue
        fi
        bad+=("$f")
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

run_one() {
    local kind=$1 prog=$2 tap=$3 exec note= status why
    case $tap in /*) ;; *) tap=$root/$tap ;; esac
    local log=$tap.log
    mkdir -p "$(dirname "$tap")"
    rm -f "$tap"
    case $kind in
        test) exec="timeout -k 10 $timeout_s ${wrapper[*]}" ;;
        example) exec="bash scripts/run_tests.sh example" ;;
        script)
            exec="timeout -k 10 $timeout_s env BRICK_BUILD=${BRICK_BUILD:-build}"
            if [ ${#wrapper[@]} -gt 0 ]; then
                rm -rf "$tap.cli"
                mkdir -p "$tap.cli"
                exec+=" BRICK_CLI=$root/scripts/wrap_brick.sh BRICK_CLI_LOGS=$tap.cli"
            fi
            exec+=" bash"
            ;;
        *) echo "run_tests.sh: unknown kind '$kind'" >&2; return 2 ;;
    esac
    # --merge: stderr (diagnostics) in the log too; </dev/null: no test reads the terminal.
    prove --norc --merge -v --exec "$exec" "$prog" </dev/null >"$log" 2>&1
    status=$?
    if [ "$status" -eq 0 ] && [ "$kind" = script ] && [ "$valgrind" = 1 ]; then
        # (a script that may start no brick, such as a check of the docs, says so:
        # bk_setup --no-brick; the brick runs it does start are checked all the same)
        if ! compgen -G "$tap.cli/valgrind.*.log" >/dev/null && grep -q '^bk_setup --no-brick' "$prog"; then
            note="starts no brick"
        else
            note=$(cli_check "$tap.cli") || status=1
        fi
    fi
    # prove's last lines: "Files=1, Tests=37, 12 wallclock secs ( ... = 11.52 CPU)"
    local tests secs cpu
    tests=$(sed -n 's/^Files=1, Tests=\([0-9]*\),.*/\1/p' "$log")
    secs=$(sed -n 's/^Files=1, .* \([0-9]*\) wallclock secs.*/\1/p' "$log")
    cpu=$(sed -n 's/^Files=1, .*= *\([0-9.]*\) CPU).*/\1/p' "$log")
    if [ "$status" -eq 0 ]; then
        mv "$log" "$tap"
        printf 'PASS  %-34s %4ss  cpu %5ss  %s tests%s\n' "$prog" "${secs:-?}" "${cpu:-?}" "${tests:-?}" "${note:+; $note}"
        return 0
    fi
    why=$(grep -Eo 'Wstat: [0-9]+ \(exited [0-9]+\)|Wstat: [0-9]+ \([^)]*\)|Failed [0-9]+/[0-9]+ subtests|No plan found|Bad plan.*' "$log" | head -n 2 | tr '\n' ' ')
    grep -q 'exited 124)' "$log" && why="timed out after ${timeout_s}s; $why"
    printf 'FAIL  %-34s %4ss  cpu %5ss  %s%s\n' "$prog" "${secs:-?}" "${cpu:-?}" "$why" "${note:+; $note}"
    show_log "$log"
    return 1
}

# example PROG: runs an example (which prints no TAP) and reports its exit status as TAP.
example() {
    local slow_env=() status
    [ "$valgrind" = 1 ] && slow_env=(env "BRICK_GEMM_KERNEL=${BRICK_GEMM_KERNEL:-portable}")
    echo "1..1"
    timeout -k 10 "$timeout_s" "${slow_env[@]}" "${wrapper[@]}" "$1" 2>&1 | sed 's/^/# /'
    status=${PIPESTATUS[0]}
    if [ "$status" -eq 0 ]; then echo "ok 1 - $1 exits 0"; else echo "not ok 1 - $1 exits $status"; fi
    return "$status"
}

summary() {
    local stamp=$1 passed=0 failed=0 failures=() t
    shift
    if [ "$stamp" = - ]; then
        : # no parity test selected
    elif [ ! -e "$stamp" ]; then
        failed=1
        failures=("parity reference generation")
    elif [ "$(cat "$stamp")" = skipped ]; then
        echo "WARNING: PyTorch parity tests were SKIPPED (no torch for $python)"
    else
        echo "parity: seed $(cat "$stamp") (BRICK_SEED=$(cat "$stamp") reproduces it)"
    fi
    for t in "$@"; do
        if [ -e "$t" ]; then
            passed=$((passed + 1))
        else
            failed=$((failed + 1))
            failures+=("${t%.tap}")
        fi
    done
    if [ "$failed" -gt 0 ]; then
        echo "failed:"
        printf '  %s\n' "${failures[@]}"
        echo "(logs: the same paths + .tap.log; rerun one: make test T=<name>)"
    fi
    echo "$passed passed, $failed failed"
    [ "$failed" -eq 0 ]
}

case ${1:-} in
    parity) parity "$2" ;;
    run) run_one "$2" "$3" "$4" ;;
    example) example "$2" ;;
    summary) shift; summary "$@" ;;
    -h | --help) sed -n '2,/^set /{/^set /d;s/^# \{0,1\}//;p}' "$0" ;;
    *) echo "run_tests.sh: unknown command '${1:-}' (see --help)" >&2; exit 2 ;;
esac
