#!/usr/bin/env bash
# coverage.sh - line coverage of brick's test suite, measured with gcc --coverage and gcov.
#
#   scripts/coverage.sh [--build DIR] [--report-only] [-- MAKE_ARGS...]
#
# 1. Builds everything into DIR (default build-cov/) with CFLAGS="-O0 -g --coverage" and
#    LDFLAGS=--coverage (the Makefile adds its warnings and -std on top), removes the
#    counters of earlier runs, and runs the whole suite there: `make test BUILD=DIR ...`
#    (tests, CLI test scripts, examples, PyTorch parity when torch is installed).
#    MAKE_ARGS go to both make calls (e.g. -- BLAS=auto to measure the OpenBLAS build
#    instead of brick's own gemm, the default).
# 2. Reads the counters with `gcov --stdout` (no lcov or gcovr needed) and prints one row
#    per source file: executable lines, lines run, percent; then the totals for the file
#    readers (src/io/safetensors.c, src/io/checkpoint.c, src/data/idx.c), for the library
#    (src/*/*.c) and, for information, for the CLI (tools/*.c).
# 3. Checks the targets: readers >= 95 %, library >= 85 %.
# --report-only skips step 1 and reports the counters already in DIR.
#
# The last line is "coverage: readers R %, library L % (targets met|BELOW TARGET)".
# Exit status: 0 when the suite passed and both targets are met, 1 otherwise, 2 on bad
# usage. Environment: JOBS (make -j, default 2), and what `make test` reads.
set -uo pipefail

usage() { sed -n '2,/^set /{/^set /d;s/^# \{0,1\}//;p}' "$0"; }

build=build-cov
run=1
make_args=()
while [ $# -gt 0 ]; do
    case $1 in
        --build) build=${2:?--build needs a directory}; shift 2 ;;
        --report-only) run=0; shift ;;
        --) shift; make_args=("$@"); break ;;
        -h|--help) usage; exit 0 ;;
        *) echo "coverage.sh: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
    esac
done

cd "$(dirname "$0")/.." || exit 2
command -v gcov >/dev/null || { echo "coverage.sh: gcov not found (it comes with gcc)" >&2; exit 2; }
jobs=${JOBS:-2}
flags=(BUILD="$build" CFLAGS="-O0 -g --coverage" LDFLAGS=--coverage "${make_args[@]}")

suite_status=0
if [ "$run" = 1 ]; then
    echo "=== make -j$jobs all ${flags[*]}"
    make -j"$jobs" all "${flags[@]}" || { echo "coverage.sh: the coverage build failed" >&2; exit 1; }
    # Counters add up across runs: start from zero.
    find "$build" -name '*.gcda' -delete
    echo "=== make test FRESH=1 ${flags[*]}"
    make test FRESH=1 "${flags[@]}" # FRESH=1: every test runs, not only the changed ones
    suite_status=$?
    [ "$suite_status" -eq 0 ] || echo "coverage.sh: the test suite FAILED (exit $suite_status); coverage below is of a failing run"
fi
[ -d "$build" ] || { echo "coverage.sh: no $build (run without --report-only)" >&2; exit 2; }

# cov_file SRC: prints "RUN TOTAL" (executable lines of SRC run at least once, and all of
# them) from gcov's annotated listing; a file whose counters are missing counts as unrun.
cov_file() {
    local src=$1
    gcov --stdout -o "$build/$(dirname "$src")" "$src" 2>/dev/null | awk -v want="$src" '
        /^ *-: *0:Source:/ { cur = $0; sub(/^ *-: *0:Source:/, "", cur); next }
        cur == want {
            c = $0; sub(/:.*/, "", c); gsub(/[ *]/, "", c)
            if (c == "-") next
            total++
            if (c != "#####" && c != "=====") ran++
        }
        END { print ran + 0, total + 0 }'
}

pct() { awk -v r="$1" -v t="$2" 'BEGIN { printf "%.1f", t ? 100 * r / t : 0 }'; }

readers=(src/io/safetensors.c src/io/json.c src/io/checkpoint.c src/data/idx.c)
is_reader() { local r; for r in "${readers[@]}"; do [ "$r" = "$1" ] && return 0; done; return 1; }

lib_run=0 lib_total=0 rd_run=0 rd_total=0 cli_run=0 cli_total=0
echo
printf '%-38s %7s %7s %7s\n' "file" "lines" "run" "%"
printf '%-38s %7s %7s %7s\n' "----" "-----" "---" "-"
shopt -s nullglob
stale=()
for src in src/*/*.c tools/*.c; do
    read -r ran total < <(cov_file "$src")
    notes=$build/${src%.c}.gcno
    mark=
    if [ ! -e "$notes" ]; then
        mark="  (not built)"
    elif [ "$src" -nt "$notes" ]; then # gcov would map the counters onto the wrong lines
        mark="  (STALE: changed after the build)"
        stale+=("$src")
    fi
    printf '%-38s %7d %7d %6s%%%s%s\n' "$src" "$total" "$ran" "$(pct "$ran" "$total")" \
        "$(is_reader "$src" && echo '  (reader)')" "$mark"
    case $src in
        src/*) lib_run=$((lib_run + ran)); lib_total=$((lib_total + total)) ;;
        tools/*) cli_run=$((cli_run + ran)); cli_total=$((cli_total + total)) ;;
    esac
    if is_reader "$src"; then rd_run=$((rd_run + ran)); rd_total=$((rd_total + total)); fi
done

rd_pct=$(pct "$rd_run" "$rd_total")
lib_pct=$(pct "$lib_run" "$lib_total")
echo
printf '%-38s %7d %7d %6s%%   target 95%%\n' "TOTAL file readers (3 files)" "$rd_total" "$rd_run" "$rd_pct"
printf '%-38s %7d %7d %6s%%   target 85%%\n' "TOTAL library (src/*/*.c)" "$lib_total" "$lib_run" "$lib_pct"
printf '%-38s %7d %7d %6s%%   (no target)\n' "the brick CLI (tools/*.c)" "$cli_total" "$cli_run" "$(pct "$cli_run" "$cli_total")"
[ ${#stale[@]} -eq 0 ] || echo "WARNING: ${stale[*]} changed after the coverage build; rerun for exact numbers"
echo "(gcov $(gcov --version | head -n 1 | awk '{print $NF}'); unrun lines per file: gcov --stdout -o $build/src/DIR src/DIR/FILE.c | grep '#####')"

met=$(awk -v r="$rd_pct" -v l="$lib_pct" 'BEGIN { print (r >= 95 && l >= 85) ? 1 : 0 }')
echo "coverage: readers $rd_pct %, library $lib_pct % ($([ "$met" = 1 ] && echo "targets met" || echo "BELOW TARGET"))"
[ "$suite_status" -eq 0 ] && [ "$met" = 1 ]
