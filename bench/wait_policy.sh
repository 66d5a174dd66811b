#!/usr/bin/env bash
# wait_policy.sh - how OpenMP's wait policy changes `brick train`: epoch time and CPU time.
#
#   bench/wait_policy.sh [MODEL] [EPOCHS] [RUNS] [--threads T] [--data DIR]
#                        [--policies "passive spin300000 active"] [--brick PATH]
#
# Trains MODEL (default mlp; its recipe: SGD lr 0.1, batch 256, seed 0) for EPOCHS (default
# 2) on T threads (default 2), RUNS times (default 3) under each policy, the policies
# alternating within a run so that a change of machine load hits them all. Policies:
#   passive       OMP_WAIT_POLICY=PASSIVE: an idle thread sleeps at once (brick's default
#                 since tools/main.c sets it when the user set nothing)
#   spinN         GOMP_SPINCOUNT=N: spin N rounds, then sleep. spin300000 is libgomp's
#                 own default when nothing is set (about a millisecond of spinning)
#   active        OMP_WAIT_POLICY=ACTIVE: idle threads never sleep
# Any of them set by hand keeps brick from setting its default. For each policy: the
# median over runs of the epoch time (the median epoch of the run, the CSV's `seconds`),
# the CPU seconds per epoch (user + sys of the whole process / EPOCHS, loading included),
# and the mean 1-minute load average sampled before its runs. The machine's other work is
# the point: on an idle machine the policies differ little.
# Environment: BRICK (default build/brick).
set -uo pipefail

cd "$(dirname "$0")/.." || exit 2
. bench/lib.sh
model=mlp epochs=2 runs=3 threads=2 data=/usr/share/datasets/fashion-mnist
[ -d "$data" ] || data=data/fashion-mnist-subset
policies="passive spin300000 active"
brick=${BRICK:-build/brick}
pos=0
while [ $# -gt 0 ]; do
    bench_opt "threads data policies brick" "$@" && { shift 2; continue; }
    case $1 in
        -h|--help) bench_usage; exit 0 ;;
        *)
            case $pos in 0) model=$1 ;; 1) epochs=$1 ;; 2) runs=$1 ;; *) echo "wait_policy.sh: too many arguments" >&2; exit 2 ;; esac
            pos=$((pos + 1)); shift ;;
    esac
done
[ -x "$brick" ] || make -s -j2 "$brick" || exit 1
[ -x /usr/bin/time ] || { echo "wait_policy.sh: needs /usr/bin/time" >&2; exit 1; }
bench_tmp policy

env_of() {
    case $1 in
        passive) echo OMP_WAIT_POLICY=PASSIVE ;;
        active) echo OMP_WAIT_POLICY=ACTIVE ;;
        spin*) echo "GOMP_SPINCOUNT=${1#spin}" ;;
        *) echo "wait_policy.sh: unknown policy '$1'" >&2; exit 2 ;;
    esac
}

echo "model $model, $epochs epochs, $threads threads, $runs runs per policy; data $data"
echo "machine: $(nproc) CPUs ($(cpu_model)); $("$brick" --version)"
echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
for r in $(seq 1 "$runs"); do
    for p in $policies; do
        e=$(env_of "$p") || exit 2
        cut -d' ' -f1 /proc/loadavg >>"$tmp/$p.load"
        if ! env -u OMP_WAIT_POLICY -u GOMP_SPINCOUNT "$e" /usr/bin/time -f '%U %S' -o "$tmp/time" \
            "$brick" train --model "$model" --epochs "$epochs" --lr 0.1 --batch-size 256 --seed 0 \
            --data "$data" --threads "$threads" --force --out "$tmp/m.safetensors" >"$tmp/log" 2>&1; then
            echo "wait_policy.sh: brick train failed under $e:" >&2
            cat "$tmp/log" >&2
            exit 1
        fi
        tail -n +2 "$tmp/m.csv" | cut -d, -f6 | median >>"$tmp/$p.epoch"
        awk -v e="$epochs" '{printf "%.3f\n", ($1 + $2) / e}' "$tmp/time" >>"$tmp/$p.cpu"
        printf '  run %s %-12s epoch %6.3f s, cpu %6.3f s per epoch (load %s)\n' "$r" "$p" \
            "$(tail -n 1 "$tmp/$p.epoch")" "$(tail -n 1 "$tmp/$p.cpu")" "$(tail -n 1 "$tmp/$p.load")"
    done
done
echo
printf '%-12s %-24s %18s %20s %10s\n' policy environment "epoch median (s)" "CPU s per epoch" "load"
for p in $policies; do
    printf '%-12s %-24s %18.3f %20.3f %10.2f\n' "$p" "$(env_of "$p")" "$(median <"$tmp/$p.epoch")" \
        "$(median <"$tmp/$p.cpu")" "$(awk '{s += $1} END {print s / NR}' "$tmp/$p.load")"
done
