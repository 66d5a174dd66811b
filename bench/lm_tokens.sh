#!/usr/bin/env bash
# lm_tokens.sh - training tokens/s of `brick train-lm`'s language model beside PyTorch's for
# the same model, data and loop, on the same machine, in one run.
#
#   bench/lm_tokens.sh [STEPS] [RUNS] [--threads "1 2"] [--own-init] [--spin]
#                      [--keep DIR] [-- extra train-lm options for both sides]
#
# STEPS (default 200) optimizer steps per run, RUNS (default 3) runs per configuration.
# brick runs `build/brick train-lm` (default model: context 64, d_model 64, 2 layers, 4
# heads, ff 256, learned positions; batch 32, AdamW lr 3e-3 cosine-decayed, seed 0; see
# docs/text.md); PyTorch runs bench/lm_torch.py, which rebuilds that model and loop with
# torch.nn and samples the same windows, under /usr/bin/python3 with
# OMP_WAIT_POLICY=PASSIVE and OPENBLAS_NUM_THREADS=1 (OPENBLAS_CORETYPE and
# OPENBLAS_L2_SIZE unset, as in bench/compare.py); brick runs with
# OMP_WAIT_POLICY=PASSIVE too, as in bench/train_epoch.sh (on a loaded machine libgomp's
# spinning made brick's 2-thread runs crawl: ~500 tokens/s against ~3,000 at 1 thread,
# barriers waiting for descheduled threads). --spin leaves brick's environment as it is
# (--passive, the old spelling of the default, is still accepted). Options after `--`
# (--context, --d-model, --layers, --heads, --ff, --positions, --batch-size, --lr, --text,
# --seed) go to both sides.
#
# Both sides start from the same weights: brick's initial ones (train-lm --steps 0), which
# lm_torch.py loads with --init, so that the validation losses after STEPS steps must
# agree closely (the check that the two models really are the same). --own-init gives
# PyTorch its own default init instead (same distributions, different values; the losses
# then agree only roughly).
#
# tokens/s = training tokens (steps x batch x context) / time of the steps alone (forward,
# backward, optimizer step; not the sampling of windows, not the evaluations), as both
# programs print it. For every thread count T (default "1 2") each side trains RUNS times,
# alternating (brick first in odd runs, PyTorch first in even ones) so that a change in
# machine load hits both; a configuration's figure is the median over its runs. Each side
# keeps its fastest configuration; the script prints both with their validation losses, the
# ratio brick / torch of tokens/s (above 1: brick is faster), then one
# `SUMMARY key=value ...` line. The 1-minute load average is sampled before every run; the
# summary gives its mean.
#
# Reproducibility: with RUNS >= 2 the first two brick runs at the first thread count must
# write byte-identical model files (cmp); exit 1 if they differ.
# --keep DIR keeps every run's log and model file in DIR.
# Environment: BRICK (default build/brick, built if missing), BRICK_PYTHON.
set -uo pipefail

cd "$(dirname "$0")/.." || exit 2
. bench/lib.sh
steps= runs= threads="1 2" own_init=0 keep= passive=1
extra=()
while [ $# -gt 0 ]; do
    bench_opt "threads keep" "$@" && { shift 2; continue; }
    case $1 in
        --own-init) own_init=1; shift ;;
        --passive) passive=1; shift ;;
        --spin) passive=0; shift ;;
        --) shift; extra=("$@"); break ;;
        *) bench_arg "$1" steps runs; shift ;;
    esac
done
steps=${steps:-200}
runs=${runs:-3}
for v in "$steps" "$runs"; do
    [[ $v =~ ^[1-9][0-9]*$ ]] || { echo "lm_tokens.sh: STEPS and RUNS must be positive integers, got '$v'" >&2; exit 2; }
done
for a in "${extra[@]}"; do
    case $a in
        --steps|--eval-every|--threads|--out|--init)
            echo "lm_tokens.sh: $a is set by the script (see --help)" >&2; exit 2 ;;
    esac
done
common=(--steps "$steps" --eval-every 0 "${extra[@]}")
brick_env=()
[ "$passive" = 1 ] && brick_env=(OMP_WAIT_POLICY=PASSIVE)

bench_sides lm_tokens.sh
bench_tmp lm-bench
bench_keep "$keep"

# The initial weights both sides start from.
init=()
if [ "$own_init" = 0 ]; then
    if ! "$brick" train-lm --steps 0 "${extra[@]}" --threads 1 --force --out "$tmp_keep/init.safetensors" \
        >"$tmp_keep/init.log" 2>&1; then
        echo "lm_tokens.sh: brick train-lm --steps 0 failed:" >&2
        cat "$tmp_keep/init.log" >&2
        exit 1
    fi
    init=(--init "$tmp_keep/init.safetensors")
fi

echo "$(sed -n 's/^model: //p' "$tmp_keep/init.log" 2>/dev/null || echo "model: train-lm's defaults ${extra[*]}")"
echo "$steps steps per run, $runs runs per configuration, threads: $threads;" \
     "PyTorch starts from $([ "$own_init" = 1 ] && echo "its own init" || echo "brick's initial weights");" \
     "brick's OMP_WAIT_POLICY: $([ "$passive" = 1 ] && echo PASSIVE || echo "${OMP_WAIT_POLICY:-unset}")"
echo "machine: $(nproc) CPUs ($(cpu_model)), $(uname -m), load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "$("$brick" --version); PyTorch $("$python" -c 'import torch; print(torch.__version__)')"
echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
echo

# run_brick T R / run_torch T R: one run; appends tokens/s and the validation loss.
run_brick() {
    local t=$1 r=$2 log=$tmp_keep/brick-t$1-r$2.log
    load1 >>"$tmp/loads"
    if ! env "${brick_env[@]}" "$brick" train-lm "${common[@]}" --threads "$t" --force \
        --out "$tmp_keep/brick-t$t-r$r.safetensors" >"$log" 2>&1; then
        echo "lm_tokens.sh: brick train-lm failed:" >&2
        cat "$log" >&2
        exit 1
    fi
    sed -n 's/^training: .*: \([0-9.]*\) tokens\/s$/\1/p' "$log" >>"$tmp/brick-$t.tps"
    val_of[brick-$t]=$(sed -n 's/^final: val loss \([0-9.]*\) .*/\1/p' "$log")
    printf '  brick t=%s run %s: %8.0f tokens/s, val loss %s (load %s)\n' "$t" "$r" \
        "$(tail -n 1 "$tmp/brick-$t.tps")" "${val_of[brick-$t]}" "$(tail -n 1 "$tmp/loads")"
}
run_torch() {
    local t=$1 r=$2 log=$tmp_keep/torch-t$1-r$2.log
    load1 >>"$tmp/loads"
    if ! env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OMP_WAIT_POLICY=PASSIVE OPENBLAS_NUM_THREADS=1 "$python" bench/lm_torch.py "${common[@]}" "${init[@]}" \
        --threads "$t" >"$log" 2>&1; then
        echo "lm_tokens.sh: lm_torch.py failed:" >&2
        cat "$log" >&2
        exit 1
    fi
    local result
    result=$(grep '^RESULT' "$log")
    sed -n 's/.*tokens_per_s=\([0-9.]*\).*/\1/p' <<<"$result" >>"$tmp/torch-$t.tps"
    val_of[torch-$t]=$(sed -n 's/.*val_loss=\([0-9.]*\).*/\1/p' <<<"$result")
    printf '  torch t=%s run %s: %8.0f tokens/s, val loss %s (load %s)\n' "$t" "$r" \
        "$(tail -n 1 "$tmp/torch-$t.tps")" "${val_of[torch-$t]}" "$(tail -n 1 "$tmp/loads")"
}

: >"$tmp/loads"
declare -A tps_of val_of
for t in $threads; do
    for side in brick torch; do : >"$tmp/$side-$t.tps"; done
    for r in $(seq 1 "$runs"); do
        if [ $((r % 2)) = 1 ]; then run_brick "$t" "$r"; run_torch "$t" "$r"
        else run_torch "$t" "$r"; run_brick "$t" "$r"; fi
    done
    for side in brick torch; do tps_of[$side-$t]=$(median <"$tmp/$side-$t.tps"); done
done

echo
printf '%-8s %-8s %20s %18s\n' side threads "tokens/s (median)" "val loss (nats)"
for side in brick torch; do
    for t in $threads; do
        printf '%-8s %-8s %20.0f %18s\n' "$side" "$t" "${tps_of[$side-$t]}" "${val_of[$side-$t]}"
    done
done
bt=$(best_threads tps_of '>' brick) tt=$(best_threads tps_of '>' torch)
tb=${tps_of[brick-$bt]} ttorch=${tps_of[torch-$tt]}
ratio=$(awk "BEGIN {printf \"%.2f\", $tb / $ttorch}")
vb=${val_of[brick-$bt]} vt=${val_of[torch-$tt]}
vdiff=$(awk "BEGIN {d = $vb - $vt; printf \"%.4f\", d < 0 ? -d : d}")
echo
printf 'fastest brick: %.0f tokens/s (threads %s%s), val loss %s after %s steps\n' "$tb" "$bt" \
    "$([ "$passive" = 1 ] && echo ", OMP_WAIT_POLICY=PASSIVE")" "$vb" "$steps"
printf 'fastest torch: %.0f tokens/s (threads %s, OMP_WAIT_POLICY=PASSIVE OPENBLAS_NUM_THREADS=1), val loss %s after %s steps\n' \
    "$ttorch" "$tt" "$vt" "$steps"
printf 'ratio brick/torch (tokens/s): %s; validation losses differ by %s nats/char\n' "$ratio" "$vdiff"
load_report "$tmp/loads"

# Reproducibility: the same seed and threads twice -> identical model files.
t1=$(cut -d' ' -f1 <<<"$threads")
a=$tmp_keep/brick-t$t1-r1.safetensors
b=$tmp_keep/brick-t$t1-r2.safetensors
repro_check "$a" "$b" "threads $t1"
echo "SUMMARY steps=$steps runs=$runs brick_tps=$tb brick_threads=$bt brick_val=$vb torch_tps=$ttorch" \
    "torch_threads=$tt torch_val=$vt ratio=$ratio val_diff=$vdiff same_init=$((1 - own_init)) brick_passive=$passive" \
    "load_mean=$load_mean repro=$repro_result"
[ "$repro_result" != DIFFERENT ]
