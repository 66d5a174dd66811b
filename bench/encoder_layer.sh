#!/usr/bin/env bash
# encoder_layer.sh - brick vs PyTorch on one nn.TransformerEncoderLayer training step
# (forward + backward), same sizes, same machine, alternating so that a change in machine
# load hits both.
#
#   bench/encoder_layer.sh [--rounds R] [--threads "1 2"] [-- extra args for both programs]
#
# Defaults: batch 32, seq 64, d_model 128, 4 heads, ff 512 (see bench/encoder_layer.c).
# Each round runs bench/encoder_layer_torch.py (torch.set_num_threads for each T) and
# build/bench/encoder_layer once per thread count T (OMP_NUM_THREADS = OPENBLAS_NUM_THREADS
# = T), all with OMP_WAIT_POLICY=PASSIVE; every program reports the median of its runs.
# At the end, each side's thread count with the lowest median over the rounds is printed
# with that median, and the ratio brick / torch (below 1: brick is faster). Process CPU
# times are printed too (steadier than wall time on a shared machine).
set -uo pipefail

cd "$(dirname "$0")/.." || exit 2
rounds=3
threads="1 2"
extra=()
while [ $# -gt 0 ]; do
    case $1 in
        --rounds) rounds=$2; shift 2 ;;
        --threads) threads=$2; shift 2 ;;
        --) shift; extra=("$@"); break ;;
        -h|--help) sed -n '2,/^set /{/^set /d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
        *) echo "encoder_layer.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
done
python=${BRICK_PYTHON:-/usr/bin/python3}
bin=${BRICK_BUILD:-build}/bench/encoder_layer
if [ ! -x "$bin" ]; then
    make -s -j2 "$bin" || { echo "encoder_layer.sh: cannot build $bin" >&2; exit 1; }
fi
export OMP_WAIT_POLICY=PASSIVE
declare -A wall cpu
tlist=${threads// /,}
for ((r = 1; r <= rounds; r++)); do
    out=$("$python" bench/encoder_layer_torch.py --threads "$tlist" "${extra[@]}") || exit 1
    for t in $threads; do
        line=$(grep "^torch threads $t: median" <<<"$out")
        wall[torch,$t]+="$(sed -E 's/.*runs ([0-9.]+) ms.*/\1/' <<<"$line") "
        cpu[torch,$t]+="$(sed -E 's/.*cpu ([0-9.]+) ms.*/\1/' <<<"$line") "
        echo "round $r: $line"
    done
    for t in $threads; do
        line=$(OMP_NUM_THREADS=$t OPENBLAS_NUM_THREADS=$t "$bin" "${extra[@]}" | tail -n 1) || exit 1
        wall[brick,$t]+="$(sed -E 's/.*runs ([0-9.]+) ms.*/\1/' <<<"$line") "
        cpu[brick,$t]+="$(sed -E 's/.*cpu ([0-9.]+) ms.*/\1/' <<<"$line") "
        echo "round $r: brick threads $t: ${line#*: }"
    done
done
median() { tr ' ' '\n' | grep . | sort -g | awk '{v[NR]=$1} END {print (NR%2 ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2)}'; }
for side in torch brick; do
    best= bestt=
    for t in $threads; do
        m=$(median <<<"${wall[$side,$t]}")
        c=$(median <<<"${cpu[$side,$t]}")
        echo "$side threads $t: median over $rounds rounds ${m} ms/step (cpu ${c} ms/step)"
        if [ -z "$best" ] || awk "BEGIN {exit !($m < $best)}"; then best=$m bestt=$t; fi
    done
    declare "best_$side=$best" "bestt_$side=$bestt"
done
echo "torch best (threads $bestt_torch): $best_torch ms/step; brick best (threads $bestt_brick): $best_brick ms/step;" \
     "brick / torch = $(awk "BEGIN {printf \"%.2f\", $best_brick / $best_torch}")"
