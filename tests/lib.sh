# lib.sh - what every CLI test script (tests/test_*.sh) shares; sourced, not run:
#
#   source "$(dirname "$0")/lib.sh"
#   bk_setup NAME [NEEDS_BRICK]     (cd to the repository root, $build, $brick, $py, $tmp)
#   ok "what held"; bad "what failed" "detail line"...; check "name" 'shell condition'
#   run CMD...                      ($rc, $out, $err)
#   expect NAME STATUS PATTERN CMD...; usage NAME PREFIX PATTERN CMD...  (a command's result)
#   bk_done                         (the TAP plan, the summary line, the exit status)
#
# The scripts speak TAP (https://testanything.org), like the test binaries (tests/test.h):
# ok prints "ok N - name", bad "not ok N - name" and its detail lines as "# ..." comments,
# bk_done the plan "1..N" and "# NAME: P passed, F failed", and exits 1 when anything
# failed. Other output (indented logs) is ignored by a TAP reader. `make test` runs them
# (scripts/run_tests.sh), and so does `prove --exec bash tests/test_cli.sh`.
#
# Environment: BRICK_BUILD (the build directory, default build), BRICK_CLI (the brick to run,
# default $BRICK_BUILD/brick; `make valgrind` points it at scripts/brick_wrapped.sh, which
# starts brick under valgrind), BRICK_PYTHON (default /usr/bin/python3).

bk_name_=${0##*/}
bk_name_=${bk_name_%.sh}
bk_count_=0
passed=0
failed=0

ok() {
    passed=$((passed + 1))
    bk_count_=$((bk_count_ + 1))
    echo "ok $bk_count_ - $1"
}

# bad NAME [DETAIL...]: a failed check; each DETAIL (which may hold newlines) follows as
# "#" comment lines.
bad() {
    failed=$((failed + 1))
    bk_count_=$((bk_count_ + 1))
    echo "not ok $bk_count_ - $1"
    shift
    local l
    for l in "$@"; do printf '%s\n' "$l" | sed 's/^/#      /'; done
}

# check NAME CONDITION: ok when `eval CONDITION` succeeds, else bad.
check() { if eval "$2"; then ok "$1"; else bad "$1"; fi; }

# skip NAME REASON: a check that cannot run here (a TAP "# SKIP" line; counts as passed
# for TAP, not in this script's own passed count).
skip() {
    bk_count_=$((bk_count_ + 1))
    echo "ok $bk_count_ - $1 # SKIP $2"
}

# run CMD...: runs CMD, keeping its status in $rc, stdout in $out, stderr in $err.
run() {
    "$@" >"$tmp/out" 2>"$tmp/err"
    rc=$?
    out=$(cat "$tmp/out")
    err=$(cat "$tmp/err")
}

# expect NAME STATUS PATTERN CMD...: exit status STATUS and stdout+stderr matching PATTERN
# (an extended regex; "" matches anything).
expect() {
    local name=$1 want=$2 pattern=$3
    shift 3
    run "$@"
    if [ "$rc" -ne "$want" ]; then
        bad "$name" "exit $rc, expected $want: $*" "stdout: ${out:0:300}" "stderr: ${err:0:300}"
    elif [ -n "$pattern" ] && ! grep -Eq -- "$pattern" <<<"$out$err"; then
        bad "$name" "output does not match /$pattern/: $*" "stdout: ${out:0:300}" "stderr: ${err:0:300}"
    else
        ok "$name"
    fi
}

# usage NAME PREFIX PATTERN CMD...: exit 2, nothing on stdout, ONE stderr line
# "PREFIX: ..." matching PATTERN.
usage() {
    local name=$1 prefix=$2 pattern=$3
    shift 3
    run "$@"
    local lines
    lines=$(printf '%s' "$err" | grep -c '')
    if [ "$rc" -ne 2 ] || [ -n "$out" ] || [ "$lines" -ne 1 ] || [[ $err != "$prefix: "* ]] ||
        ! grep -Eq -- "$pattern" <<<"$err"; then
        bad "$name" "expected exit 2 and one line '$prefix: ...' matching /$pattern/: $*" \
            "got exit $rc, $lines stderr lines: ${err:0:300}" "stdout: ${out:0:200}"
    else
        ok "$name"
    fi
}

bk_done() {
    echo "1..$bk_count_"
    echo "# $bk_name_: $passed passed, $failed failed"
    [ "$failed" -eq 0 ]
    exit
}

# bk_skip_all REASON: nothing here can run (a TAP "1..0 # SKIP" plan); exits 0.
bk_skip_all() {
    echo "1..0 # SKIP $1"
    exit 0
}

# bk_setup [--no-brick]: the repository root as the working directory; $build, $brick (a
# wrapper around it with BRICK_CLI), $py and a fresh $tmp, removed on exit (with whatever
# $bk_on_exit says to run first). Fails the script at once (one "not ok") when brick is not
# built, unless --no-brick.
bk_setup() {
    cd "$(dirname "$0")/.." || exit 2
    root=$(pwd)
    build=${BRICK_BUILD:-build}
    brick=${BRICK_CLI:-$build/brick}
    py=${BRICK_PYTHON:-/usr/bin/python3}
    tmp=$(mktemp -d "/tmp/brick-$bk_name_-XXXXXX")
    bk_on_exit=
    trap 'eval "$bk_on_exit"; rm -rf "$tmp"' EXIT
    if [ "${1:-}" != --no-brick ] && [ ! -x "$build/brick" ]; then
        bad "$build/brick is not built (run make)"
        bk_done
    fi
}
