#!/usr/bin/env bash
# thread_split.sh - how much of a 2-thread `brick train` runs on both threads: an estimate of
# the 1 -> 2 thread speed-up an idle machine would give, when the machine at hand is too loaded
# for wall-clock timings to mean anything.
#
#   bench/thread_split.sh [--runs R] [--model M] [--epochs E] [--data DIR] [BRICK...]
#
# Records `BRICK train` (default build/brick; several binaries are compared, alternating)
# on 2 threads under OMP_WAIT_POLICY=PASSIVE with `perf record` (CPU-clock samples) and
# splits the samples by thread, leaving out loading the data (zlib, bk_idx_load) and kernel
# time. The main thread runs the serial part S and half the parallel part P, the worker the
# other half: main = S + P/2, worker = P/2. On an idle machine 1 thread would take S + P and
# 2 threads S + P/2, so the speed-up is (main + worker) / main. It leaves out what a CPU
# profile cannot see (waiting at barriers, waking a sleeping thread), so it is an upper
# bound. R runs (default 2) per binary; the model (default mlp: SGD lr 0.1, batch 256) trains
# E epochs (default 3).
set -uo pipefail

cd "$(dirname "$0")/.." || exit 2
. bench/lib.sh
runs=2 model=mlp epochs=3 data=/usr/share/datasets/fashion-mnist bricks=()
while [ $# -gt 0 ]; do
    bench_opt "runs model epochs data" "$@" && { shift 2; continue; }
    case $1 in
        -h|--help) bench_usage; exit 0 ;;
        *) bricks+=("$1"); shift ;;
    esac
done
[ ${#bricks[@]} -gt 0 ] || bricks=(build/brick)
[ -d "$data" ] || data=data/fashion-mnist-subset
command -v perf >/dev/null || { echo "thread_split.sh: needs perf" >&2; exit 1; }
bench_tmp split

echo "$model, $epochs epochs, 2 threads; $(nproc) CPUs ($(cpu_model)); $(date -u '+%Y-%m-%d %H:%M UTC')"
for r in $(seq 1 "$runs"); do
    for b in "${bricks[@]}"; do
        OMP_WAIT_POLICY=PASSIVE perf record -q -o "$tmp/perf.data" "$b" train --model "$model" \
            --epochs "$epochs" --lr 0.1 --batch-size 256 --seed 0 --data "$data" --threads 2 \
            --out "$tmp/m.safetensors" >"$tmp/log" 2>&1 ||
            { echo "thread_split.sh: $b train failed" >&2; cat "$tmp/log" >&2; exit 1; }
        perf report -i "$tmp/perf.data" --no-children --sort pid,dso,sym --stdio -g none 2>/dev/null |
            awk -v b="$b" -v r="$r" '
                /%/ {
                    pct = $1 + 0; pid = $2; dso = $3; sym = $NF
                    if (dso ~ /libz/ || dso == "[kernel.kallsyms]" || sym == "bk_idx_load") next
                    t[pid] += pct
                }
                END {
                    for (p in t) if (t[p] > m) { m = t[p]; main = p }
                    for (p in t) if (p != main) w += t[p]
                    printf "  run %s %-40s main %5.1f %%, worker %5.1f %% -> speed-up at most %.2f\n", r, b, m, w, (m + w) / m
                }'
    done
done
