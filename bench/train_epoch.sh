#!/usr/bin/env bash
# train_epoch.sh - brick vs PyTorch on the same model and recipe, on the same machine, in one run.
#
#   bench/train_epoch.sh MODEL [EPOCHS] [RUNS] [--data DIR] [--threads "1 2"] [--repro]
#                        [--lr LR] [--batch-size B] [--optimizer O] [--momentum M]
#                        [--weight-decay W] [--lr-schedule S] [--lr-min LR] [--lr-step-size N]
#                        [--lr-gamma G] [--keep DIR]
#
# MODEL is a spec of brick's zoo (docs/cli.md): mlp, lenet, resnet:width=N, googlenet,
# softmax. A bare `resnet` means resnet:width=8 here (the zoo's default width 32 makes an
# epoch about 16 times longer). EPOCHS defaults to 10, RUNS (runs per configuration) to 3.
# PyTorch runs bench/train_torch.py, which rebuilds the zoo's models with torch.nn, under
# /usr/bin/python3 with OMP_WAIT_POLICY=PASSIVE and OPENBLAS_NUM_THREADS=1 (OPENBLAS_CORETYPE and
# OPENBLAS_L2_SIZE unset, as in bench/compare.py); brick runs with
# OMP_WAIT_POLICY=PASSIVE too (on a shared machine, libgomp's spinning threads make 2-thread
# runs up to 3 times slower; on an idle one the policy changes little).
#
# The recipe (the same for both sides; each flag above overrides its part):
#   mlp, softmax                   SGD lr 0.1, batch 256 (brick train's defaults)
#   lenet, resnet, googlenet       SGD lr 0.02 momentum 0.9, batch 128
# (the momentum for SGD only), with the optimizer's default weight decay and no lr schedule
# unless given (the schedule flags are brick train's, docs/cli.md; train_torch.py maps them
# to CosineAnnealingLR and StepLR stepped once per epoch), always on Fashion-MNIST (default
# /usr/share/datasets/fashion-mnist, else the bundled subset), shuffled every epoch, seed 0,
# pixels in [0, 1], PyTorch's default init.
#
# For every thread count T (default "1 2") each side trains RUNS times, brick and PyTorch
# alternating so that a change in machine load hits both. A run's epoch time is the median
# of its epochs (training + test evaluation: the `seconds` column of brick's CSV); a
# configuration's is the median over its runs. Each side keeps its fastest configuration;
# the script prints both, their final test accuracies, their peak memory (max RSS in MiB of the
# whole process from /usr/bin/time, the largest over the configuration's runs) and the
# ratio brick / torch (below 1: brick is faster), then one `SUMMARY key=value ...` line.
# The 1-minute load average is sampled before every run; the summary gives its mean.
#
# Reproducibility: with RUNS >= 2 (or with --repro, which adds a run when RUNS is 1) two
# brick runs with the same seed and thread count must write byte-identical model files
# (cmp); exit 1 if they differ.
# --keep DIR keeps every run's log, CSV and model file in DIR.
# Environment: BRICK (default build/brick, built if missing), BRICK_PYTHON.
set -uo pipefail

cd "$(dirname "$0")/.." || exit 2
. bench/lib.sh
model= epochs= runs= data= threads="1 2" repro=0 keep=
lr= batch_size= optimizer= momentum=
extra=() # recipe flags passed as they are to both sides when given
while [ $# -gt 0 ]; do
    bench_opt "data threads lr batch-size optimizer momentum keep" "$@" && { shift 2; continue; }
    case $1 in
        --repro) repro=1; shift ;;
        --weight-decay|--lr-schedule|--lr-min|--lr-step-size|--lr-gamma)
            [ $# -ge 2 ] || { echo "train_epoch.sh: $1 needs a value" >&2; exit 2; }
            extra+=("$1" "$2"); shift 2 ;;
        *) bench_arg "$1" model epochs runs; shift ;;
    esac
done
[ -n "$model" ] || { bench_usage >&2; exit 2; }
epochs=${epochs:-10}
runs=${runs:-3}
for v in "$epochs" "$runs"; do
    [[ $v =~ ^[1-9][0-9]*$ ]] || { echo "train_epoch.sh: EPOCHS and RUNS must be positive integers, got '$v'" >&2; exit 2; }
done
[ "$model" = resnet ] && model=resnet:width=8
case ${model%%:*} in
    mlp|softmax) : "${lr:=0.1}" "${batch_size:=256}" "${optimizer:=sgd}" "${momentum:=0}" ;;
    lenet|resnet|googlenet) : "${lr:=0.02}" "${batch_size:=128}" "${optimizer:=sgd}" "${momentum:=0.9}" ;;
    *) echo "train_epoch.sh: unknown model '$model' (mlp, softmax, lenet, resnet[:width=N], googlenet)" >&2; exit 2 ;;
esac
recipe=(--model "$model" --epochs "$epochs" --lr "$lr" --batch-size "$batch_size" --optimizer "$optimizer"
        --seed 0 ${extra[@]+"${extra[@]}"})
# brick train refuses --momentum for Adam and AdamW (it has no meaning there)
[ "$optimizer" = sgd ] && recipe+=(--momentum "$momentum")

if [ -z "$data" ]; then
    data=/usr/share/datasets/fashion-mnist
    [ -e "$data/train-images-idx3-ubyte.gz" ] || [ -e "$data/train-images-idx3-ubyte" ] ||
        data=data/fashion-mnist-subset
fi
bench_sides train_epoch.sh
timer=()
[ -x /usr/bin/time ] && timer=(/usr/bin/time -f %M -o)
bench_tmp bench
bench_keep "$keep"

maximum() { sort -g | tail -n 1; }
# run_timed RSSFILE CMD...: CMD under /usr/bin/time, its peak RSS (KiB) into RSSFILE.
run_timed() {
    local rss=$1; shift
    if [ ${#timer[@]} -gt 0 ]; then "${timer[@]}" "$rss" "$@"; else echo 0 >"$rss"; "$@"; fi
}
rss_mib() { awk '/^[0-9]+$/ {kb = $1} END {printf "%.1f\n", kb / 1024}' "$1"; }

echo "model: $model; recipe: $optimizer lr $lr$([ "$optimizer" = sgd ] && echo " momentum $momentum"), batch $batch_size, seed 0${extra[*]:+, ${extra[*]}}"
echo "data: $data, $epochs epochs, $runs runs per configuration, threads: $threads"
echo "machine: $(nproc) CPUs ($(cpu_model)), $(uname -m), load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "$("$brick" --version); PyTorch $("$python" -c 'import torch; print(torch.__version__)')"
echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
echo

: >"$tmp/loads"
declare -A time_of acc_of rss_of
for t in $threads; do
    for side in brick torch; do : >"$tmp/$side-$t.times"; : >"$tmp/$side-$t.rss"; done
    for r in $(seq 1 "$runs"); do
        load1 >>"$tmp/loads"
        out=$tmp_keep/brick-t$t-r$r.safetensors
        if ! OMP_WAIT_POLICY=PASSIVE run_timed "$tmp/rss" "$brick" train "${recipe[@]}" --data "$data" --threads "$t" --force --out "$out" \
            >"$tmp_keep/brick-t$t-r$r.log" 2>&1; then
            echo "train_epoch.sh: brick train failed:" >&2
            cat "$tmp_keep/brick-t$t-r$r.log" >&2
            exit 1
        fi
        csv=${out%.safetensors}.csv
        tail -n +2 "$csv" | cut -d, -f6 | median >>"$tmp/brick-$t.times"
        acc_of[brick-$t]=$(tail -n 1 "$csv" | cut -d, -f5 | xargs printf '%.4f')
        rss_mib "$tmp/rss" >>"$tmp/brick-$t.rss"
        printf '  brick t=%s run %s: epoch median %8.3f s, test acc %.4f, max RSS %7.1f MiB (load %s)\n' "$t" "$r" \
            "$(tail -n 1 "$tmp/brick-$t.times")" "${acc_of[brick-$t]}" "$(tail -n 1 "$tmp/brick-$t.rss")" \
            "$(tail -n 1 "$tmp/loads")"

        load1 >>"$tmp/loads"
        log=$tmp_keep/torch-t$t-r$r.log
        if ! OMP_WAIT_POLICY=PASSIVE OPENBLAS_NUM_THREADS=1 run_timed "$tmp/rss" env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "$python" bench/train_torch.py \
            "${recipe[@]}" --data "$data" --threads "$t" >"$log" 2>&1; then
            echo "train_epoch.sh: train_torch.py failed:" >&2
            cat "$log" >&2
            exit 1
        fi
        result=$(grep '^RESULT' "$log")
        sed -n 's/.*median_epoch_s=\([0-9.]*\).*/\1/p' <<<"$result" >>"$tmp/torch-$t.times"
        acc_of[torch-$t]=$(sed -n 's/.*final_test_acc=\([0-9.]*\).*/\1/p' <<<"$result")
        if [ ${#timer[@]} -gt 0 ]; then rss_mib "$tmp/rss"; else sed -n 's/.*max_rss_mib=\([0-9.]*\).*/\1/p' <<<"$result"; fi \
            >>"$tmp/torch-$t.rss"
        printf '  torch t=%s run %s: epoch median %8.3f s, test acc %.4f, max RSS %7.1f MiB (load %s)\n' "$t" "$r" \
            "$(tail -n 1 "$tmp/torch-$t.times")" "${acc_of[torch-$t]}" "$(tail -n 1 "$tmp/torch-$t.rss")" \
            "$(tail -n 1 "$tmp/loads")"
    done
    for side in brick torch; do
        time_of[$side-$t]=$(median <"$tmp/$side-$t.times")
        rss_of[$side-$t]=$(maximum <"$tmp/$side-$t.rss")
    done
done

echo
printf '%-8s %-8s %18s %15s %14s\n' side threads "epoch median (s)" "final test acc" "max RSS (MiB)"
for side in brick torch; do
    for t in $threads; do
        printf '%-8s %-8s %18.3f %15.4f %14.1f\n' "$side" "$t" "${time_of[$side-$t]}" "${acc_of[$side-$t]}" "${rss_of[$side-$t]}"
    done
done
bt=$(best_threads time_of '<' brick) tt=$(best_threads time_of '<' torch)
tb=${time_of[brick-$bt]} ttorch=${time_of[torch-$tt]}
ratio=$(awk "BEGIN {printf \"%.2f\", $tb / $ttorch}")
echo
printf 'fastest brick: %.3f s/epoch (threads %s, OMP_WAIT_POLICY=PASSIVE), test acc %.4f, max RSS %.1f MiB\n' "$tb" "$bt" "${acc_of[brick-$bt]}" "${rss_of[brick-$bt]}"
printf 'fastest torch: %.3f s/epoch (threads %s, OMP_WAIT_POLICY=PASSIVE OPENBLAS_NUM_THREADS=1), test acc %.4f, max RSS %.1f MiB\n' \
    "$ttorch" "$tt" "${acc_of[torch-$tt]}" "${rss_of[torch-$tt]}"
printf 'ratio brick/torch: %s\n' "$ratio"
load_report "$tmp/loads"

# Reproducibility: the same seed and threads twice -> identical model files.
t1=$(cut -d' ' -f1 <<<"$threads")
a=$tmp_keep/brick-t$t1-r1.safetensors
b=$tmp_keep/brick-t$t1-r2.safetensors
if [ "$runs" -lt 2 ] && [ "$repro" = 1 ]; then
    "$brick" train "${recipe[@]}" --data "$data" --threads "$t1" --force --out "$b" >/dev/null 2>&1
fi
repro_check "$a" "$b" "seed 0, threads $t1" ||
    echo "reproducibility not checked (one run; pass --repro to add a second brick run)"
echo "SUMMARY model=$model epochs=$epochs runs=$runs brick_s=$tb brick_threads=$bt brick_acc=${acc_of[brick-$bt]}" \
    "brick_rss_mib=${rss_of[brick-$bt]} torch_s=$ttorch torch_threads=$tt torch_acc=${acc_of[torch-$tt]}" \
    "torch_rss_mib=${rss_of[torch-$tt]} ratio=$ratio load_mean=$load_mean repro=$repro_result"
[ "$repro_result" != DIFFERENT ]
