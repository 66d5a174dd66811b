#!/usr/bin/env bash
# epoch_cpu.sh - CPU seconds per MLP epoch: a measure that a loaded machine disturbs less
# than the wall clock (time spent waiting for a core is not counted; caches shared with other
# work still are: on the shared 2-core development machine at a load average of 14, one side's
# CPU times spread by up to 30 %, its wall-clock epochs by 2x).
#
#   bench/epoch_cpu.sh [--runs R] [--threads T] [--torch] [--data DIR] [BRICK...]
#
# For each brick binary (default build/brick; give several to compare builds) and, with
# --torch, bench/train_torch.py: trains the MLP (SGD lr 0.1, batch 256, seed 0) for 1 and
# for 3 epochs on T threads (default 1) and prints (CPU of 3 epochs - CPU of 1 epoch) / 2,
# user + sys of the whole process (/usr/bin/time), so loading and start-up cancel out.
# R rounds (default 3), the sides alternating within a round; then the median per side.
# Everyone runs with OMP_WAIT_POLICY=PASSIVE (idle threads would otherwise burn CPU time
# spinning); torch also with OPENBLAS_NUM_THREADS=1 and without OPENBLAS_CORETYPE /
# OPENBLAS_L2_SIZE. With T = 1 the CPU time is what an idle machine's wall clock would show.
set -uo pipefail

cd "$(dirname "$0")/.." || exit 2
. bench/lib.sh
runs=3 threads=1 torch=0 data=/usr/share/datasets/fashion-mnist bricks=()
while [ $# -gt 0 ]; do
    bench_opt "runs threads data" "$@" && { shift 2; continue; }
    case $1 in
        --torch) torch=1; shift ;;
        -h|--help) bench_usage; exit 0 ;;
        *) bricks+=("$1"); shift ;;
    esac
done
[ ${#bricks[@]} -gt 0 ] || bricks=(build/brick)
[ -d "$data" ] || data=data/fashion-mnist-subset
bench_tmp cpu
recipe=(--model mlp --lr 0.1 --batch-size 256 --seed 0 --data "$data" --threads "$threads")

# cpu_of EPOCHS CMD...: user + sys seconds of CMD --epochs EPOCHS
cpu_of() {
    local e=$1; shift
    OMP_WAIT_POLICY=PASSIVE /usr/bin/time -f '%U %S' -o "$tmp/time" "$@" --epochs "$e" >"$tmp/log" 2>&1 ||
        { echo "epoch_cpu.sh: failed: $*" >&2; cat "$tmp/log" >&2; exit 1; }
    awk '{print $1 + $2}' "$tmp/time"
}
# per_epoch NAME CMD...: one measurement of side NAME
per_epoch() {
    local name=$1; shift
    local c1 c3
    c1=$(cpu_of 1 "$@") || exit 1
    c3=$(cpu_of 3 "$@") || exit 1
    awk -v a="$c1" -v b="$c3" 'BEGIN {printf "%.3f\n", (b - a) / 2}' | tee -a "$tmp/$name" >/dev/null
    printf '  run %s %-8s %s CPU s per epoch (load %s)\n' "$r" "$name" "$(tail -n 1 "$tmp/$name")" "$(cut -d' ' -f1 /proc/loadavg)"
}

echo "MLP epoch CPU time, $threads thread(s), $runs rounds; $(nproc) CPUs ($(cpu_model)); $(date -u '+%Y-%m-%d %H:%M UTC')"
for r in $(seq 1 "$runs"); do
    for i in "${!bricks[@]}"; do
        per_epoch "brick$i" "${bricks[$i]}" train "${recipe[@]}" --force --out "$tmp/m.safetensors"
    done
    if [ "$torch" = 1 ]; then
        per_epoch torch env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OPENBLAS_NUM_THREADS=1 \
            /usr/bin/python3 bench/train_torch.py "${recipe[@]}" --optimizer sgd --momentum 0
    fi
done
echo
for i in "${!bricks[@]}"; do
    printf 'brick%s %-40s median %s CPU s per epoch\n' "$i" "${bricks[$i]}" "$(median <"$tmp/brick$i")"
done
[ "$torch" = 1 ] && printf '%-47s median %s CPU s per epoch\n' torch "$(median <"$tmp/torch")"
exit 0
