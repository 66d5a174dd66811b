#!/usr/bin/env bash
# run.sh - runs brick's libFuzzer targets (docs/reliability.md).
#
#   fuzz/run.sh TARGET SECONDS [libFuzzer flags...]   one target (safetensors, idx,
#                                                     model_spec, cli, ckpt, escape, image,
#                                                     cifar, image_folder, csv)
#   fuzz/run.sh all SECONDS [libFuzzer flags...]      each target in turn, SECONDS each
#
# Builds the targets first (make fuzz: clang + libFuzzer, ASan, UBSan, into build-fuzz/).
# Each run starts from fuzz/corpus/TARGET (the seeds), fuzz/regressions/TARGET and what
# earlier runs found (build-fuzz/corpus/TARGET, where new inputs go), with the dictionary
# fuzz/TARGET.dict when there is one, 30 s per input at most (generous, for a loaded
# machine), 2 GiB of memory. Prints one line per target (executions, speed, coverage,
# corpus, crashes) and, for a crash, where
# the input is and how to keep it as a regression input. The last line is
# "N passed, M failed" (one per target); the exit status is 1 if any target crashed.
set -uo pipefail

usage() { sed -n '2,/^set /{/^set /d;s/^# \{0,1\}//;p}' "$0"; }
if [ "${1:-}" = -h ] || [ "${1:-}" = --help ]; then
    usage
    exit 0
fi
if [ $# -lt 2 ]; then
    usage >&2
    exit 2
fi
cd "$(dirname "$0")/.." || exit 2
what=$1
secs=$2
shift 2
case $secs in '' | *[!0-9]*) echo "run.sh: SECONDS must be a whole number, got '$secs'" >&2; exit 2 ;; esac

all=()
for src in fuzz/fuzz_*.c; do
    t=${src#fuzz/fuzz_}
    all+=("${t%.c}")
done
if [ "$what" = all ]; then
    targets=("${all[@]}")
else
    case " ${all[*]} " in
        *" $what "*) targets=("$what") ;;
        *) echo "run.sh: no target '$what' (targets: ${all[*]})" >&2; exit 2 ;;
    esac
fi

mkdir -p build-fuzz
if ! make --no-print-directory -s fuzz >build-fuzz/make.log 2>&1; then
    tail -n 40 build-fuzz/make.log >&2
    echo "run.sh: make fuzz failed (needs clang and libclang-rt-14-dev: scripts/deps.sh;" \
        "the whole output is in build-fuzz/make.log)" >&2
    exit 1
fi

passed=0
failed=0
for t in "${targets[@]}"; do
    work=build-fuzz/corpus/$t
    artifacts=build-fuzz/artifacts/$t
    log=build-fuzz/logs/$t.log
    mkdir -p "$work" "$artifacts" "$(dirname "$log")"
    dirs=("$work" "fuzz/corpus/$t")
    [ -d "fuzz/regressions/$t" ] && dirs+=("fuzz/regressions/$t")
    dict=()
    [ -f "fuzz/$t.dict" ] && dict=("-dict=fuzz/$t.dict")
    stamp=$artifacts/.start
    touch "$stamp"
    echo "fuzz $t: ${secs}s (log: $log)"
    # the targets' own output is dropped (stdout; the CLI's stderr too: its usage errors),
    # libFuzzer's and the sanitizers' reports are kept
    quiet=1
    case $t in cli | ckpt) quiet=3 ;; esac
    build-fuzz/fuzz/"$t" -max_total_time="$secs" -timeout=30 -rss_limit_mb=2048 \
        -close_fd_mask=$quiet -print_final_stats=1 -artifact_prefix="$artifacts/" \
        "${dict[@]}" "$@" "${dirs[@]}" >"$log" 2>&1
    status=$?
    # the last status line: "#N  DONE  cov: C ft: F corp: K/S ... exec/s: E ..."
    last=$(grep -E '^#[0-9]+' "$log" | tail -n 1)
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
    cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
    ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
    corp=$(sed -n 's/.* corp: \([0-9]*\).*/\1/p' <<<"$last")
    # slow-unit-* files are libFuzzer's reports of inputs that took over 10 s (on a loaded
    # machine, often only because the process got little CPU): kept for a look, not failures
    found=$(find "$artifacts" -type f ! -name .start ! -name 'slow-unit-*' -newer "$stamp" | head -n 1)
    slow=$(find "$artifacts" -type f -name 'slow-unit-*' -newer "$stamp" | wc -l)
    if [ "$status" -eq 0 ] && [ -z "$found" ]; then
        passed=$((passed + 1))
        printf 'PASS  fuzz %-12s %5ss  %s execs (%s/s), cov %s, ft %s, corpus %s, no crash\n' \
            "$t" "$secs" "${execs:-?}" "${speed:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}"
        [ "$slow" -gt 0 ] && echo "    ($slow slow-unit report(s) in $artifacts: inputs that took over 10 s)"
    else
        failed=$((failed + 1))
        printf 'FAIL  fuzz %-12s exit %s after %s execs, cov %s\n' "$t" "$status" "${execs:-?}" "${cov:-?}"
        grep -E 'ERROR|invariant broken|SUMMARY|Test unit written' "$log" | head -n 8 | sed 's/^/    | /'
        if [ -n "$found" ]; then
            echo "    input: $found"
            echo "    reproduce: build-fuzz/fuzz/$t $found"
            echo "    keep it, once fixed: cp $found fuzz/regressions/$t/ (make test replays it)"
        fi
    fi
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
