#!/usr/bin/env bash
# encoder_layer.sh - brick vs PyTorch on one nn.TransformerEncoderLayer training step
# (forward + backward), same sizes, same machine, alternating so that a change in machine
# load hits both.
#
#   bench/encoder_layer.sh [--rounds R] [--iters N] [--threads "1 2"]
#                          [-- extra args for both programs]
#
# Defaults: batch 32, seq 64, d_model 128, 4 heads, ff 512 (see bench/encoder_layer.c),
# 5 rounds of 20 timed steps (after 5 warm-up steps) per program and thread count.
# In every round, for each thread count T, build/bench/encoder_layer (OMP_NUM_THREADS =
# OPENBLAS_NUM_THREADS = T) and bench/encoder_layer_torch.py (torch.set_num_threads(T),
# OPENBLAS_NUM_THREADS=1, OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset as in bench/compare.py)
# run one after the other, brick first in odd rounds and PyTorch
# first in even ones, all with OMP_WAIT_POLICY=PASSIVE; each run reports the median of
# its steps. A configuration's figure is the median over the rounds. Each side keeps its
# fastest thread count; the script prints both, the ratio brick / torch (below 1: brick
# is faster), the process CPU times per step (all threads; steadier than wall time on a
# shared machine) and the 1-minute load average sampled before every run, then one
# `SUMMARY key=value ...` line.
set -uo pipefail

cd "$(dirname "$0")/.." || exit 2
. bench/lib.sh
rounds=5
iters=20
threads="1 2"
extra=()
while [ $# -gt 0 ]; do
    case $1 in
        --rounds) rounds=$2; shift 2 ;;
        --iters) iters=$2; shift 2 ;;
        --threads) threads=$2; shift 2 ;;
        --) shift; extra=("$@"); break ;;
        -h|--help) bench_usage; exit 0 ;;
        *) echo "encoder_layer.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
done
for v in "$rounds" "$iters"; do
    [[ $v =~ ^[1-9][0-9]*$ ]] || { echo "encoder_layer.sh: --rounds and --iters must be positive integers, got '$v'" >&2; exit 2; }
done
python=${BRICK_PYTHON:-/usr/bin/python3}
bin=${BRICK_BUILD:-build}/bench/encoder_layer
if [ ! -x "$bin" ]; then
    make -s -j2 "$bin" || { echo "encoder_layer.sh: cannot build $bin" >&2; exit 1; }
fi
export OMP_WAIT_POLICY=PASSIVE
args=(--iters "$iters" --runs 1 "${extra[@]}")
loads=()
declare -A wall cpu

echo "encoder layer fwd+bwd: ${extra[*]:-B=32 T=64 d_model=128 heads=4 ff=512 (T, B, E) relu}; $rounds rounds of $iters steps"
echo "machine: $(nproc) CPUs ($(cpu_model)), load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"

# run_side SIDE T R: one run; its median ms/step and cpu ms/step appended to wall/cpu.
run_side() {
    local side=$1 t=$2 r=$3 line l
    l=$(load1)
    loads+=("$l")
    if [ "$side" = torch ]; then
        line=$(env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OPENBLAS_NUM_THREADS=1 "$python" bench/encoder_layer_torch.py --threads "$t" "${args[@]}" |
               grep "^torch threads $t: median") || { echo "encoder_layer.sh: the torch run failed" >&2; exit 1; }
    else
        line=$(OMP_NUM_THREADS=$t OPENBLAS_NUM_THREADS=$t "$bin" "${args[@]}" | tail -n 1) ||
            { echo "encoder_layer.sh: the brick run failed" >&2; exit 1; }
    fi
    wall[$side,$t]+="$(sed -E 's/.*runs? ([0-9.]+) ms.*/\1/' <<<"$line") "
    cpu[$side,$t]+="$(sed -E 's/.*cpu ([0-9.]+) ms.*/\1/' <<<"$line") "
    printf 'round %s: %-5s threads %s: %s (load %s)\n' "$r" "$side" "$t" \
        "$(sed -E 's/.*(median.*)/\1/' <<<"$line")" "$l"
}

for ((r = 1; r <= rounds; r++)); do
    for t in $threads; do
        if ((r % 2)); then run_side brick "$t" "$r"; run_side torch "$t" "$r"
        else run_side torch "$t" "$r"; run_side brick "$t" "$r"; fi
    done
done

echo
declare -A med cmed
for side in torch brick; do
    best= bestt=
    for t in $threads; do
        m=$(median <<<"${wall[$side,$t]}")
        c=$(median <<<"${cpu[$side,$t]}")
        med[$side,$t]=$m cmed[$side,$t]=$c
        echo "$side threads $t: median over $rounds rounds ${m} ms/step (cpu ${c} ms/step)"
        if [ -z "$best" ] || awk "BEGIN {exit !($m < $best)}"; then best=$m bestt=$t; fi
    done
    declare "best_$side=$best" "bestt_$side=$bestt"
done
ratio=$(awk "BEGIN {printf \"%.2f\", $best_brick / $best_torch}")
t1=$(cut -d' ' -f1 <<<"$threads")
cpu_ratio=$(awk "BEGIN {printf \"%.2f\", ${cmed[brick,$t1]} / ${cmed[torch,$t1]}}")
load_mean=$(printf '%s\n' "${loads[@]}" | awk '{s += $1} END {printf "%.2f", s / NR}')
echo "torch best (threads $bestt_torch): $best_torch ms/step; brick best (threads $bestt_brick): $best_brick ms/step;" \
     "brick / torch = $ratio"
echo "cpu time per step at $t1 thread(s): brick ${cmed[brick,$t1]} ms, torch ${cmed[torch,$t1]} ms, brick / torch = $cpu_ratio"
echo "load average (1 min) before the runs: mean $load_mean, min $(printf '%s\n' "${loads[@]}" | sort -g | head -n 1)," \
     "max $(printf '%s\n' "${loads[@]}" | sort -g | tail -n 1); at the end $(cut -d' ' -f1-3 /proc/loadavg)"
echo "SUMMARY rounds=$rounds iters=$iters brick_ms=$best_brick brick_threads=$bestt_brick torch_ms=$best_torch" \
     "torch_threads=$bestt_torch ratio=$ratio brick_cpu_ms_t$t1=${cmed[brick,$t1]} torch_cpu_ms_t$t1=${cmed[torch,$t1]}" \
     "cpu_ratio_t$t1=$cpu_ratio load_mean=$load_mean"
