#!/usr/bin/env bash
# dist_epoch.sh - time per epoch of data-parallel `brick train` on this machine: P processes
# x 1 thread against 1 process x T threads, and PyTorch DDP (gloo) beside it.
#
#   bench/dist_epoch.sh MODEL [RUNS] [--data DIR] [--no-torch]
#
# MODEL: mlp, lenet or resnet (= resnet:width=8). RUNS (default 3) runs of one epoch per
# configuration, the configurations alternating so that a change in machine load hits all.
# Recipe: mlp SGD lr 0.1, batch 256; lenet and resnet SGD lr 0.02 momentum 0.9, batch 128;
# on --data (default the bundled data/fashion-mnist-subset: 6000 training, 1000 test images).
# Configurations (brick with OMP_WAIT_POLICY=PASSIVE, --reduce deterministic; mpirun with
# --bind-to none and mpi_yield_when_idle 1: on a machine shared with other work a rank that
# busy-polls in a collective takes the core its peer needs; LeNet's epoch on the full
# data set took 25 s instead of 37 with it, under a load average of 13):
#   brick 1x1, brick 1x2       one process, 1 or 2 threads
#   brick 2x1, brick 4x1       mpirun -np 2 or 4 (oversubscribed on 2 cores), 1 thread each
#   torch 1x2, torch DDP 2x1   bench/train_torch.py --threads 2; bench/ddp_torch.py --world 2
#                              (/usr/bin/python3, OMP_WAIT_POLICY=PASSIVE; skipped with
#                              --no-torch or without torch)
# An epoch's time is training + test evaluation (rank 0 evaluates; the others wait), the
# `seconds` of brick's CSV. Prints per configuration the median epoch time, its ratio to
# brick 1x2 (above 1: slower), the median CPU seconds of the whole command (user + system,
# all processes: on a machine shared with other work, where wall times mostly measure the
# scheduler, this says how much work each configuration does), and for the mpirun rows the median time per step in the
# gradient reduction (bk_ddp_comm_seconds: the all-to-all and all-gather, and the wait
# for the slowest rank) as a share of the step.
# Environment: BRICK (default build/brick; must be built with MPI), BRICK_PYTHON.
set -uo pipefail

cd "$(dirname "$0")/.." || exit 2
. bench/lib.sh
model= runs= data=data/fashion-mnist-subset torch=1
while [ $# -gt 0 ]; do
    bench_opt "data" "$@" && { shift 2; continue; }
    case $1 in
        --no-torch) torch=0; shift ;;
        *) bench_arg "$1" model runs; shift ;;
    esac
done
[ -n "$model" ] || { bench_usage >&2; exit 2; }
runs=${runs:-3}
[ "$model" = resnet ] && model=resnet:width=8
case ${model%%:*} in
    mlp) recipe=(--lr 0.1 --batch-size 256); trecipe=(--lr 0.1 --batch-size 256 --momentum 0) ;;
    *) recipe=(--lr 0.02 --momentum 0.9 --batch-size 128); trecipe=(--lr 0.02 --batch-size 128 --momentum 0.9) ;;
esac
brick=${BRICK:-build/brick}
python=${BRICK_PYTHON:-/usr/bin/python3}
"$brick" --version | grep -q MPI || { echo "dist_epoch.sh: $brick has no MPI (make MPI=1)" >&2; exit 2; }
if [ "$torch" = 1 ] && ! "$python" -c 'import torch.distributed as d; assert d.is_gloo_available()' 2>/dev/null; then
    echo "dist_epoch.sh: no torch with gloo under $python: PyTorch skipped" >&2
    torch=0
fi
bench_tmp dist-bench
export OMP_WAIT_POLICY=PASSIVE

configs=("brick 1x1" "brick 1x2" "brick 2x1" "brick 4x1")
[ "$torch" = 1 ] && configs+=("torch 1x2" "torch DDP 2x1")
declare -A times comm cpu
run_one() { # CONFIG -> appends the epoch seconds (and the reduction ms per step)
    local c=$1 out=$tmp/run.out secs ms
    local b=(/usr/bin/time -o "$tmp/cpu" -f "%U %S" "$brick" train --model "$model" --data "$data" --epochs 1 "${recipe[@]}" --force --out "$tmp/m.safetensors")
    local mpi=(mpirun --allow-run-as-root --oversubscribe --bind-to none --mca mpi_yield_when_idle 1
               -x OMP_WAIT_POLICY)
    case $c in
        "brick 1x1") "${b[@]}" --threads 1 >"$out" 2>&1 ;;
        "brick 1x2") "${b[@]}" --threads 2 >"$out" 2>&1 ;;
        "brick 2x1") /usr/bin/time -o "$tmp/cpu" -f "%U %S" "${mpi[@]}" -np 2 "${b[@]:5}" --threads 1 >"$out" 2>&1 ;;
        "brick 4x1") /usr/bin/time -o "$tmp/cpu" -f "%U %S" "${mpi[@]}" -np 4 "${b[@]:5}" --threads 1 >"$out" 2>&1 ;;
        "torch 1x2") /usr/bin/time -o "$tmp/cpu" -f "%U %S" env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OPENBLAS_NUM_THREADS=1 \
            "$python" bench/train_torch.py --model "$model" --data "$data" --epochs 1 \
            "${trecipe[@]}" --threads 2 >"$out" 2>&1 ;;
        "torch DDP 2x1") /usr/bin/time -o "$tmp/cpu" -f "%U %S" env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OPENBLAS_NUM_THREADS=1 \
            "$python" bench/ddp_torch.py --model "$model" --data "$data" --epochs 1 \
            "${trecipe[@]}" --world 2 --threads 1 >"$out" 2>&1 ;;
    esac || { echo "dist_epoch.sh: $c failed:" >&2; tail -5 "$out" >&2; exit 1; }
    case $c in
        brick*) secs=$(sed -n 's/^epoch 1\/1 .*  \([0-9.]*\) s$/\1/p' "$out") ;;
        torch*) secs=$(sed -n 's/^RESULT .*median_epoch_s=\([0-9.]*\).*/\1/p' "$out") ;;
    esac
    times[$c]+="$secs "
    cpu[$c]+="$(awk '{ print $1 + $2 }' "$tmp/cpu") "
    ms=$(sed -n 's/^gradient reduction: .* \([0-9.]*\) ms per step.*/\1/p' "$out")
    [ -n "$ms" ] && comm[$c]+="$ms "
    return 0
}

n=$("$python" -c "import gzip,struct; f=gzip.open('$data/train-images-idx3-ubyte.gz'); f.read(4); print(struct.unpack('>i', f.read(4))[0])" 2>/dev/null || echo 6000)
B=${recipe[-1]}
steps=$(( (n + B - 1) / B ))
echo "model $model, $runs runs of 1 epoch ($n images, $steps steps of $B), $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores"
load0=$(cut -d' ' -f1-3 /proc/loadavg)
for ((k = 1; k <= runs; k++)); do
    for c in "${configs[@]}"; do run_one "$c"; done
done
base=$(echo "${times[brick 1x2]}" | median)
echo "load average before: $load0, after: $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-16s %10s %12s %9s %16s\n' config "epoch s" "vs brick 1x2" "cpu s" "reduce ms/step"
for c in "${configs[@]}"; do
    t=$(echo "${times[$c]}" | median)
    r=$(awk -v a="$t" -v b="$base" 'BEGIN { printf "%.2f", a / b }')
    m=-
    if [ -n "${comm[$c]:-}" ]; then
        cm=$(echo "${comm[$c]}" | median)
        m=$(awk -v m="$cm" -v t="$t" -v s="$steps" 'BEGIN { printf "%.2f (%.1f%%)", m, 100 * m / (1000 * t / s) }')
    fi
    printf '%-16s %10.3f %12s %9.2f %16s\n' "$c" "$t" "$r" "$(echo "${cpu[$c]}" | median)" "$m"
done
