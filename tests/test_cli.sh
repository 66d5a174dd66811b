#!/usr/bin/env bash
# test_cli.sh - end-to-end tests of the `brick` command on the bundled Fashion-MNIST subset.
#
#   bash tests/test_cli.sh            (scripts/run_tests.sh runs it; BRICK_BUILD=dir picks
#                                      the build, default build/)
#
# Checks: --help/--version; usage errors (exit 2, exactly one line "brick <cmd>: ...");
# runtime errors (exit 1: truncated checkpoint, NaN loss); `train` writes the model, the
# checkpoint, the CSV and the SVG; `eval`, `summary` (the MLP has 203,530 parameters) and
# `predict` (a PGM cut out of the test set, and --idx); resuming after epoch 1 gives a model
# file byte-identical to an uninterrupted 2-epoch run, and so does resuming a run with a
# cosine or step lr schedule stopped inside an epoch (with the torch lr of every epoch);
# the progress bar under a terminal; model specs with an activation, a dropout rate or a
# boolean (summary, errors, and the canonical spec through the files and --resume); the zoo
# as `brick models` and `brick train --model help` list it (counts equal to summary's).
# Speaks TAP (tests/lib.sh); exits 1 on any failure.
set -u
source "$(dirname "$0")/lib.sh"
bk_setup
data=data/fashion-mnist-subset

# same_tensors A B: the two safetensors files hold the same tensor bytes. The files are
# meant to be byte-identical (the model file has no time-dependent metadata), so cmp.
same_file() { cmp -s "$1" "$2"; }

# ---- help and version -------------------------------------------------------------------

expect "brick --help" 0 "usage: brick <command>" "$brick" --help
expect "brick help" 0 "commands:" "$brick" help
expect "brick --version" 0 "^brick [0-9]+\.[0-9]+\.[0-9]+ \(.*brick gemm (avx512 16x16|avx2-fma 6x16|portable 4x8)" "$brick" --version
expect "BRICK_GEMM_KERNEL=portable picks the portable kernel" 0 "brick gemm portable 4x8" \
    env BRICK_GEMM_KERNEL=portable "$brick" --version
expect "BRICK_GEMM_KERNEL=fast: told on stderr, the run goes on" 0 \
    "brick: BRICK_GEMM_KERNEL='fast' is not auto, avx512, avx2 or portable: using the .* kernel" \
    env BRICK_GEMM_KERNEL=fast "$brick" --version
# OpenMP's wait policy: PASSIVE unless the user chose (tools/main.c re-executes brick with it;
# not through a wrapper such as valgrind, whose child would run natively)
if [[ $("$brick" --version) == *OpenMP* ]]; then
    if [ "$brick" = "$build/brick" ]; then
        expect "no OMP_WAIT_POLICY: brick runs with PASSIVE" 0 "OpenMP wait policy PASSIVE[,)]" \
            env -u OMP_WAIT_POLICY -u GOMP_SPINCOUNT "$brick" --version
    fi
    expect "OMP_WAIT_POLICY=active is kept" 0 "OpenMP wait policy active[,)]" \
        env OMP_WAIT_POLICY=active "$brick" --version
    expect "GOMP_SPINCOUNT is kept" 0 "OpenMP GOMP_SPINCOUNT=1000[,)]" \
        env -u OMP_WAIT_POLICY GOMP_SPINCOUNT=1000 "$brick" --version
fi
# avx512 on a CPU (or under valgrind, which hides AVX-512) without it: told, then auto
expect "BRICK_GEMM_KERNEL=avx512: that kernel, or a message and auto" 0 \
    "brick gemm avx512 16x16|BRICK_GEMM_KERNEL=avx512, but this CPU or build has no such kernel" \
    env BRICK_GEMM_KERNEL=avx512 "$brick" --version
for c in train eval summary predict; do
    expect "brick $c --help" 0 "usage: brick $c" "$brick" "$c" --help
done
expect "brick help train" 0 "--optimizer" "$brick" help train

# ---- usage errors: exit 2, one line ------------------------------------------------------

usage "no command" "brick" "missing command" "$brick"
usage "unknown command" "brick" "unknown command 'frobnicate'" "$brick" frobnicate
usage "train: unknown flag" "brick train" "unknown option '--bogus'" "$brick" train --bogus
usage "train: negative epochs" "brick train" "--epochs" "$brick" train --epochs -3
usage "train: non-numeric epochs" "brick train" "--epochs.*'ten'" "$brick" train --epochs ten
usage "train: non-numeric lr" "brick train" "--lr" "$brick" train --lr fast
usage "train: lr=nan" "brick train" "--lr" "$brick" train --lr=nan
usage "train: zero batch" "brick train" "--batch-size" "$brick" train --batch-size 0
usage "train: missing value" "brick train" "--seed needs a value" "$brick" train --seed
usage "train: unknown optimizer" "brick train" "--optimizer must be one of sgd, adam, adamw, rmsprop, adagrad, got 'lbfgs'" "$brick" train --optimizer lbfgs
usage "train: unknown model" "brick train" "unknown model \"nosuchnet\"" "$brick" train --model nosuchnet
usage "train: bad model setting" "brick train" "hidden" "$brick" train --model mlp:hidden=-4
usage "train: momentum with adam" "brick train" "momentum" "$brick" train --optimizer adam --momentum 0.9
usage "train: missing data dir" "brick train" "$tmp/nope" "$brick" train --data "$tmp/nope"
usage "train: data dir without files" "brick train" "no data set there" "$brick" train --data "$tmp"
usage "train: out dir missing" "brick train" "directory does not exist" "$brick" train --data "$data" --out "$tmp/no/m.safetensors"
usage "train: missing checkpoint" "brick train" "no such file" "$brick" train --resume "$tmp/none.ckpt.safetensors"
usage "train: stray argument" "brick train" "extra" "$brick" train extra
usage "eval: missing file" "brick eval" "no such file" "$brick" eval "$tmp/none.safetensors"
usage "eval: no file" "brick eval" "expected a model FILE" "$brick" eval
usage "summary: nothing to summarise" "brick summary" "expected a model FILE or --model" "$brick" summary
usage "summary: unknown model" "brick summary" "unknown model" "$brick" summary --model nope
usage "predict: no images" "brick predict" "expected IMAGE" "$brick" predict "$tmp/x"
usage "train: unknown lr schedule" "brick train" "--lr-schedule must be one of none, cosine, step, onecycle, plateau, got 'linear'" "$brick" train --lr-schedule linear
usage "train: step schedule without a step size" "brick train" "needs --lr-step-size" "$brick" train --lr-schedule step
usage "train: --lr-gamma without the step schedule" "brick train" "for --lr-schedule step" "$brick" train --lr-schedule cosine --lr-gamma 0.5
usage "train: --lr-patience without the plateau schedule" "brick train" "for --lr-schedule plateau" "$brick" train --lr-schedule step --lr-step-size 2 --lr-patience 3
usage "train: plateau with a factor of 1" "brick train" "needs --lr-gamma below 1, got 1" "$brick" train --lr-schedule plateau --lr-gamma 1
usage "train: --lr-min without the cosine schedule" "brick train" "for --lr-schedule cosine" "$brick" train --lr-min 0.001
usage "train: zero step size" "brick train" "--lr-step-size" "$brick" train --lr-schedule step --lr-step-size 0

# ---- training ------------------------------------------------------------------------------

m=$tmp/m.safetensors
run "$brick" train --model mlp --data "$data" --epochs 2 --batch-size 256 --lr 0.1 --seed 3 --out "$m"
if [ "$rc" -eq 0 ] && [ "$(grep -c '^epoch [0-9]/2 .*train loss.*train acc.*test acc' <<<"$out")" -eq 2 ] &&
    grep -q "final test accuracy" <<<"$out"; then
    ok "train 2 epochs (exit 0, one line per epoch)"
else
    bad "train 2 epochs" "exit $rc" "stdout: ${out:0:500}" "stderr: ${err:0:500}"
fi
if [[ $out$err != *$'\r'* ]]; then ok "train: no progress bar when not a terminal"; else bad "train: \\r in non-tty output"; fi
for f in m.safetensors m.ckpt.safetensors m.csv m.svg; do
    if [ -s "$tmp/$f" ]; then ok "train wrote $f"; else bad "train wrote $f" "missing or empty"; fi
done
if [ "$(head -n 1 "$tmp/m.csv")" = "epoch,train_loss,train_acc,test_loss,test_acc,lr,seconds" ] &&
    [ "$(wc -l <"$tmp/m.csv")" -eq 3 ] && grep -Eq '^2,[0-9.]+,[0-9.]+,[0-9.]+,[0-9.]+,0\.1,[0-9.]+$' "$tmp/m.csv"; then
    ok "CSV log: header and one row per epoch, with the lr"
else
    bad "CSV log" "$(cat "$tmp/m.csv")"
fi
if grep -q '<svg' "$tmp/m.svg" && grep -q 'train loss' "$tmp/m.svg" && grep -q 'test acc' "$tmp/m.svg" &&
    grep -q 'test loss' "$tmp/m.svg" && [ "$(grep -c '<polyline' "$tmp/m.svg")" -eq 4 ] && tail -n 1 "$tmp/m.svg" | grep -q '</svg>'; then
    ok "SVG plot: four curves (train/test loss and accuracy) and a legend"
else
    bad "SVG plot" "$(head -c 300 "$tmp/m.svg")"
fi
if grep -aq '"brick.arch":"mlp:hidden=256"' "$m" && grep -aq '"brick.format":"brick-model-1"' "$m" &&
    grep -aq '"brick.class_names":"T-shirt/top,Trouser' "$m"; then
    ok "model file metadata"
else
    bad "model file metadata" "$(head -c 600 "$m" | tr -c '[:print:]' .)"
fi

# An earlier run's files are not replaced by a new run unless --force is given.
cp "$m" "$tmp/m.before"
usage "train: --out of an earlier run" "brick train" "m.safetensors exists .*--force.*--resume .*m.ckpt.safetensors" \
    "$brick" train --model mlp --data "$data" --epochs 1 --out "$m"
if cmp -s "$m" "$tmp/m.before"; then ok "the refused run left the earlier model file alone"; else bad "refused run changed $m"; fi
rm -f "$tmp/m.before"

# --keep-best: STEM.best.safetensors holds the epoch of the highest test accuracy.
kb=$tmp/kb.safetensors
run "$brick" train --model mlp --data "$data" --epochs 3 --batch-size 256 --lr 0.5 --seed 3 --keep-best --out "$kb"
best_row=$(tail -n +2 "$tmp/kb.csv" | sort -t, -k5,5gr -k1,1n | head -n 1)
best_epoch=${best_row%%,*}
if [ "$rc" -eq 0 ] && [ -s "$tmp/kb.best.safetensors" ] &&
    grep -q "^best epoch $best_epoch (test acc " <<<"$out" &&
    grep -aq "\"brick.epoch\":\"$best_epoch\"" "$tmp/kb.best.safetensors"; then
    ok "--keep-best: kb.best.safetensors is epoch $best_epoch, the best of the log"
else
    bad "--keep-best" "exit $rc, best row $best_row" "stdout: ${out:0:600}" "stderr: ${err:0:300}"
fi
run "$brick" eval "$tmp/kb.best.safetensors" --data "$data"
if [ "$rc" -eq 0 ] && grep -q "test accuracy $(cut -d, -f5 <<<"$best_row" | cut -c1-6)" <<<"$out"; then
    ok "--keep-best: the best model evaluates to the logged accuracy"
else
    bad "--keep-best eval" "exit $rc, want $best_row" "${out:0:300}" "${err:0:300}"
fi
run "$brick" train --model mlp --data "$data" --epochs 1 --batch-size 256 --seed 3 --force --out "$kb"
if [ "$rc" -eq 0 ]; then ok "train --force replaces an earlier run's files"; else bad "--force" "exit $rc: ${err:0:300}"; fi

# ---- eval, summary, predict ---------------------------------------------------------------

last_acc=$(tail -n 1 "$tmp/m.csv" | cut -d, -f5)
expect "eval prints accuracy and a confusion matrix" 0 "Ankle boot" "$brick" eval "$m" --data "$data"
if grep -Eq "test accuracy ${last_acc:0:6}" <<<"$out" && grep -q "confusion matrix" <<<"$out"; then
    ok "eval accuracy = the last epoch's ($last_acc)"
else
    bad "eval accuracy" "CSV says $last_acc" "${out:0:400}"
fi
expect "eval works on the checkpoint too" 0 "test accuracy ${last_acc:0:6}" "$brick" eval "$tmp/m.ckpt.safetensors" --data "$data"
expect "summary FILE" 0 "total parameters: 203,530" "$brick" summary "$m"
expect "summary FILE shows block shapes" 0 "^1 +Linear +\(1, 256\) +200,960" "$brick" summary "$m"
expect "summary --model mlp" 0 "total parameters: 203,530" "$brick" summary --model mlp
expect "summary --model softmax" 0 "^1 +Linear +\(1, 10\) +7,850" "$brick" summary --model softmax
expect "summary --model mlp:hidden=32" 0 "^\(total\) +Sequential +\(1, 10\) +25,450" "$brick" summary --model mlp:hidden=32
# multiply-adds: LeNet's first conv 6*25 weights at 28*28 positions, 416,520 in all (as
# torchinfo counts them); activations at batch 128: 15,002 floats a sample = 7.3 MiB
expect "summary: a conv's multiply-adds" 0 "^0 +Conv2d +\(1, 6, 28, 28\) +156 +117,600$" "$brick" summary --model lenet
expect "summary: multiply-adds per sample" 0 "^multiply-adds per sample: 416,520 " "$brick" summary --model lenet
expect "summary: the memory of a training batch" 0 \
    "^memory for a batch of 128 \(float32\): parameters 241.0 KiB, gradients 241.0 KiB, activations 7.3 MiB, total 7.8 MiB$" \
    "$brick" summary --model lenet --batch-size 128

# A PGM: the first test image, cut out of the IDX file (16-byte header).
pgm=$tmp/first.pgm
{ printf 'P5\n# first test image\n28 28\n255\n'; gzip -dc "$data/t10k-images-idx3-ubyte.gz" | tail -c +17 | head -c 784; } >"$pgm"
expect "predict PGM (top 3)" 0 "first.pgm: [A-Za-z/ -]+ 0\.[0-9]{4}, .+ 0\.[0-9]{4}, .+ 0\.[0-9]{4}$" "$brick" predict "$m" "$pgm"
expect "predict --top 1" 0 "first.pgm: [A-Za-z/ -]+ [01]\.[0-9]{4}$" "$brick" predict "$m" "$pgm" --top 1
expect "predict --idx" 0 "^#2 \(true: Trouser\): " "$brick" predict "$m" --idx "$data/t10k-images-idx3-ubyte.gz" --index 1 --count 3
head -c 200 "$pgm" >"$tmp/cut.pgm"
expect "predict truncated PGM: exit 1 naming it" 1 "cut.pgm: truncated" "$brick" predict "$m" "$tmp/cut.pgm"

# ---- resume: 1 + 1 epochs == 2 epochs, bit for bit -----------------------------------------

r=$tmp/r.safetensors
run "$brick" train --model mlp --data "$data" --epochs 1 --seed 3 --out "$r"
first=$rc
run "$brick" train --resume "$tmp/r.ckpt.safetensors" --epochs 2
if [ "$first" -eq 0 ] && [ "$rc" -eq 0 ] && grep -q "resuming" <<<"$out" && same_file "$m" "$r"; then
    ok "resume after epoch 1 = uninterrupted 2 epochs (byte-identical model files)"
else
    bad "resume equivalence" "exits $first, $rc; cmp: $(cmp "$m" "$r" 2>&1)" "${err:0:300}"
fi
if [ "$(wc -l <"$tmp/r.csv")" -eq 3 ] && [ "$(cut -d, -f1-5 "$tmp/r.csv")" = "$(cut -d, -f1-5 "$tmp/m.csv")" ]; then
    ok "resumed CSV log holds both epochs, equal to the uninterrupted one"
else
    bad "resumed CSV" "$(cat "$tmp/r.csv")"
fi
s1=$tmp/soft.safetensors
run "$brick" train --model softmax --optimizer adam --lr 0.01 --data "$data" --epochs 1 --out "$s1"
first=$rc
run "$brick" train --resume "$tmp/soft.ckpt.safetensors" --epochs 2
if [ "$first" -eq 0 ] && [ "$rc" -eq 0 ] && grep -q "^model: softmax .*Adam" <<<"$out" &&
    grep -aq '"brick.arch":"softmax"' "$s1" && grep -aq '"brick.epoch":"2"' "$s1"; then
    ok "resume keeps the checkpoint's model and optimizer (softmax, Adam)"
else
    bad "resume keeps the checkpoint's model" "exits $first, $rc" "${out:0:300}" "${err:0:300}"
fi
usage "resume with a contradicting --model" "brick train" "--model mlp differs" "$brick" train --resume "$tmp/soft.ckpt.safetensors" --epochs 3 --model mlp
usage "resume with a contradicting --lr" "brick train" "--lr differs" "$brick" train --resume "$tmp/r.ckpt.safetensors" --epochs 3 --lr 0.5
usage "resume with nothing left to do" "brick train" "not more than" "$brick" train --resume "$tmp/r.ckpt.safetensors" --epochs 2

# ---- lr schedules: set per epoch as torch's, kept by the checkpoint -------------------------
# Each schedule: 3 epochs uninterrupted, and 3 epochs stopped inside epoch 2 (step 30 of 24
# batches per epoch) and resumed without repeating the schedule's flags: the same model file.

# stopped_and_resumed NAME FIRST_RC U I TRAIN_ARGS...: `brick train TRAIN_ARGS --out I` stopped at
# step 30 (inside epoch 2 of 24 batches) and resumed gives the bytes of the uninterrupted U.
stopped_and_resumed() {
    local name=$1 first=$2 u=$3 i=$4
    shift 4
    run env BRICK_TEST_INTERRUPT_AT_STEP=30 "$brick" train "$@" --out "$i"
    local stopped=$rc
    run "$brick" train --resume "${i%.safetensors}.ckpt.safetensors"
    if [ "$first" -eq 0 ] && [ "$stopped" -eq 130 ] && [ "$rc" -eq 0 ] && grep -q "resuming" <<<"$out" &&
        same_file "$u" "$i"; then
        ok "$name: stopped inside epoch 2 and resumed = uninterrupted (byte-identical model files)"
    else
        bad "$name: resume equivalence" "exits $first, $stopped, $rc; cmp: $(cmp "$u" "$i" 2>&1)" "${err:0:300}"
    fi
}
sched_case() {
    local name=$1 lrs=$2
    shift 2
    local u=$tmp/$name-u.safetensors i=$tmp/$name-i.safetensors
    run "$brick" train --model mlp --data "$data" --epochs 3 --momentum 0.9 --weight-decay 5e-4 --seed 3 \
        --out "$u" "$@"
    local first=$rc got
    got=$(sed -n 's/^epoch .*  lr \([0-9.e-]*\)$/\1/p' <<<"$out" | tr '\n' ' ')
    if [ "$first" -eq 0 ] && [ "$got" = "$lrs" ]; then
        ok "$name: the lr of each epoch is torch's ($got)"
    else
        bad "$name: lr per epoch" "exit $first; got '$got', want '$lrs'" "${out:0:400}" "${err:0:300}"
    fi
    stopped_and_resumed "$name" "$first" "$u" "$i" --model mlp --data "$data" --epochs 3 --momentum 0.9 \
        --weight-decay 5e-4 --seed 3 "$@"
}
# RMSprop (with momentum: every state slot in use) and Adagrad: the checkpoint holds their
# whole state.
for opt in "rmsprop --momentum 0.5" "adagrad --weight-decay 1e-4"; do
    # shellcheck disable=SC2206 # $opt is the optimizer and its flags
    args=(--model softmax --optimizer $opt --lr 0.01 --data "$data" --epochs 2 --seed 3)
    run "$brick" train "${args[@]}" --out "$tmp/${opt%% *}-u.safetensors"
    stopped_and_resumed "${opt%% *}" "$rc" "$tmp/${opt%% *}-u.safetensors" "$tmp/${opt%% *}-i.safetensors" "${args[@]}"
done
# CosineAnnealingLR(T_max=3): 0.1 (1 + cos(pi e / 3)) / 2; StepLR(2, 0.5): 0.1 0.5^floor(e / 2)
sched_case "cosine schedule" "0.1 0.075 0.025 " --lr-schedule cosine
sched_case "step schedule" "0.1 0.1 0.05 " --lr-schedule step --lr-step-size 2 --lr-gamma 0.5
# OneCycleLR(max_lr=0.1, total_steps=72): the lr of each epoch's last step (23, 47, 71), torch's
sched_case "onecycle schedule" "0.0994415 0.0462637 4e-07 " --lr-schedule onecycle
# onecycle sets the momentum of every step (0.95 -> 0.85 -> 0.95, torch's cycle_momentum):
# any --momentum > 0 then trains the same bytes; Adagrad (none to cycle) trains as before
cyc=(train --model softmax --data "$data" --epochs 1 --seed 3 --lr-schedule onecycle)
run "$brick" "${cyc[@]}" --momentum 0.9 --out "$tmp/cyc9.safetensors"
run "$brick" "${cyc[@]}" --momentum 0.5 --out "$tmp/cyc5.safetensors"
run "$brick" "${cyc[@]}" --momentum 0 --out "$tmp/cyc0.safetensors"
# same_tensors A B: the two safetensors files hold the same tensors, bit for bit (their
# metadata, which records --momentum, aside)
same_tensors() {
    "$py" - "$1" "$2" <<'PY'
import json, struct, sys
def tensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        head = json.loads(f.read(n))
        data = f.read()
    head.pop("__metadata__", None)
    return {k: (v["dtype"], v["shape"], data[v["data_offsets"][0]:v["data_offsets"][1]]) for k, v in head.items()}
sys.exit(0 if tensors(sys.argv[1]) == tensors(sys.argv[2]) else 1)
PY
}
check "onecycle cycles SGD's momentum: --momentum 0.9 and 0.5 give the same weights" \
    "same_tensors $tmp/cyc9.safetensors $tmp/cyc5.safetensors"
check "onecycle with --momentum 0 keeps none (cycle_momentum=False): other weights" \
    "! same_tensors $tmp/cyc9.safetensors $tmp/cyc0.safetensors"
expect "onecycle with adagrad (no momentum to cycle)" 0 "" "$brick" "${cyc[@]}" --optimizer adagrad \
    --lr 0.01 --out "$tmp/cyc-ada.safetensors"
# ReduceLROnPlateau(factor=0.5, patience=0): at lr 1 the test loss rises after epoch 2 (2.13 to
# 2.59 on the subset), so epoch 3 trains at 0.5; the resume goes on from the saved state
sched_case "plateau schedule" "1 1 0.5 " --lr 1 --lr-schedule plateau --lr-patience 0 --lr-gamma 0.5
usage "resume with a contradicting --lr-patience" "brick train" "--lr-patience differs from the checkpoint's 0" \
    "$brick" train --resume "$tmp/plateau schedule-i.ckpt.safetensors" --epochs 4 --lr-patience 2
usage "resume with a contradicting --lr-schedule" "brick train" "--lr-schedule differs from the checkpoint's cosine" \
    "$brick" train --resume "$tmp/cosine schedule-i.ckpt.safetensors" --epochs 4 --lr-schedule step --lr-step-size 1
usage "resume with a contradicting --lr-gamma" "brick train" "--lr-gamma differs" \
    "$brick" train --resume "$tmp/step schedule-i.ckpt.safetensors" --epochs 4 --lr-gamma 0.1
run "$brick" train --resume "$tmp/cosine schedule-i.ckpt.safetensors" --epochs 4
if [ "$rc" -eq 0 ] && grep -q "rises again" <<<"$out" && grep -q "^epoch 4/4 .*  lr 0$" <<<"$out"; then
    ok "resuming a cosine run past its T_max keeps torch's formula (lr 0 at epoch T_max + 1) and says so"
else
    bad "cosine past T_max" "exit $rc" "${out:0:500}" "${err:0:300}"
fi

# ---- early stopping ---------------------------------------------------------------------------
# At lr 0 nothing changes, so epoch 2 does not improve on epoch 1 on either metric (an equal
# value is no improvement): --early-stop 1 stops after epoch 2 of 6, exit 0. (A diverging
# lr 1 was used before; its trajectory depends on the GEMM kernel, and under valgrind's
# portable kernel the accuracy rose in epoch 2.)
usage "train: --early-stop-on without --early-stop" "brick train" "needs --early-stop N" "$brick" train --early-stop-on acc
for on in loss acc; do
    run "$brick" train --model mlp --data "$data" --epochs 6 --seed 3 --lr 0 \
        --early-stop 1 --early-stop-on $on --out "$tmp/es-$on.safetensors"
    if [ "$rc" -eq 0 ] && grep -q "^early stop: the test .* has not improved for 1 epochs (best .*, epoch 1)$" <<<"$out" &&
        grep -q "^epoch 2/6" <<<"$out" && ! grep -q "^epoch 3/6" <<<"$out"; then
        ok "--early-stop 1 on the test $on: stops after epoch 2 of 6, exit 0"
    else
        bad "--early-stop on $on" "exit $rc" "${out:0:500}" "${err:0:300}"
    fi
done

# ---- runtime errors: exit 1 ---------------------------------------------------------------

head -c 5000 "$tmp/m.ckpt.safetensors" >"$tmp/trunc.ckpt.safetensors"
run "$brick" train --resume "$tmp/trunc.ckpt.safetensors"
if [ "$rc" -eq 1 ] && [ "$(printf '%s' "$err" | grep -c '')" -eq 1 ] && [[ $err == "brick train: "*trunc.ckpt.safetensors* ]]; then
    ok "truncated checkpoint: exit 1, one line naming the file"
else
    bad "truncated checkpoint" "exit $rc: $err"
fi
expect "eval of a truncated file: exit 1" 1 "trunc.ckpt.safetensors" "$brick" eval "$tmp/trunc.ckpt.safetensors" --data "$data"
printf 'not a model' >"$tmp/junk.safetensors"
expect "eval of a junk file: exit 1" 1 "junk.safetensors" "$brick" eval "$tmp/junk.safetensors" --data "$data"
expect "NaN loss: exit 1" 1 "brick train: the loss is (NaN|infinite)" "$brick" train --model mlp --data "$data" --epochs 1 --lr 1e30 --out "$tmp/nan.safetensors"

# ---- hostile checkpoints, models and outputs (issue 11) ---------------------------------------
# Every value read back from a checkpoint passes the check of the flag that set it; a bad
# one is refused (exit 1) with the file, the key and the value, before anything is trained.
# Crafted with tests/craft_safetensors.py (plain python3: skipped without it).

h=$tmp/h.safetensors
run "$brick" train --model softmax --data "$data" --epochs 1 --out "$h"
[ "$rc" -eq 0 ] || bad "hostile: the checkpoint to craft from" "exit $rc: ${err:0:300}"
hc=$tmp/h.ckpt.safetensors
# refused NAME PATTERN EDIT...: a copy of $hc with EDITs is refused on resume, nothing trained
refused() {
    local name=$1 pattern=$2
    shift 2
    rm -f "$tmp/bad.safetensors"
    "$py" tests/craft_safetensors.py "$hc" "$tmp/bad.ckpt.safetensors" "$@" || { bad "$name" "craft failed"; return; }
    expect "$name" 1 "$pattern" "$brick" train --resume "$tmp/bad.ckpt.safetensors" --epochs 2
    if grep -q "^epoch 2/2" <<<"$out" || [ -e "$tmp/bad.safetensors" ]; then bad "$name: it trained"; fi
}
if "$py" -c '' 2>/dev/null; then
    "$py" tests/craft_safetensors.py "$hc" "$tmp/same.ckpt.safetensors"
    expect "hostile: an unchanged rewritten checkpoint resumes (the crafting keeps it valid)" 0 "^epoch 2/2" \
        "$brick" train --resume "$tmp/same.ckpt.safetensors" --epochs 2
    ck="bad.ckpt.safetensors: metadata"
    refused "resume: batch_size 2^61 (wrapped the prediction buffer)" \
        "$ck brick.batch_size \"2305843009213693952\" must be an integer in 1..1000000000 \(as --batch-size\)" \
        brick.batch_size=2305843009213693952
    refused "resume: lr 'fast' (was 0 by atof)" "$ck brick.lr \"fast\" must be a number >= 0 \(as --lr\)" brick.lr=fast
    refused "resume: lr 1e400" "$ck brick.lr \"1e400\"" brick.lr=1e400
    refused "resume: seed -5" "$ck brick.seed \"-5\"" brick.seed=-5
    refused "resume: lr_t_max 2^32+1 (was cast to 1)" "$ck brick.lr_t_max \"4294967297\" .*\(as --epochs\)" \
        brick.lr_schedule=cosine brick.lr_t_max=4294967297 brick.lr_min=0
    refused "resume: lr_step_size 2^32 (was 0)" "$ck brick.lr_step_size \"4294967296\" .*\(as --lr-step-size\)" \
        brick.lr_schedule=step brick.lr_step_size=4294967296 brick.lr_gamma=0.1
    refused "resume: lr_gamma missing" "metadata brick.lr_gamma is missing" \
        brick.lr_schedule=step brick.lr_step_size=1
    refused "resume: unknown optimizer (was AdamW)" "$ck brick.optimizer \"lbfgs\" must be one of sgd, adam, adamw, rmsprop, adagrad" \
        brick.optimizer=lbfgs
    refused "resume: unknown lr schedule" "$ck brick.lr_schedule \"linear\" must be one of none, cosine, step" \
        brick.lr_schedule=linear
    refused "resume: plateau state with a NaN best" "$ck brick.lr_plateau \"0x1p-3,nan,0,0,1\" is not a plateau state" \
        brick.lr_schedule=plateau brick.lr_gamma=0.5 brick.lr_patience=1 brick.lr_plateau=0x1p-3,nan,0,0,1
    refused "resume: plateau state missing" "$ck brick.lr_plateau \"\(missing\)\"" \
        brick.lr_schedule=plateau brick.lr_gamma=0.5 brick.lr_patience=1
    refused "resume: plateau factor 1.5" "brick.lr_gamma or brick.lr_patience: lr_plateau_init: needs 0 <= factor < 1" \
        brick.lr_schedule=plateau brick.lr_gamma=1.5 brick.lr_patience=1 brick.lr_plateau=0x1p-3,inf,0,0,1
    refused "resume: threads 100000" "$ck brick.threads \"100000\" must be an integer in 0..1024" brick.threads=100000
    refused "resume: epoch_loss_sum nan" "$ck brick.epoch_loss_sum \"nan\"" \
        brick.batch=1 brick.epoch_loss_sum=nan brick.epoch_correct=0 brick.epoch_seen=0
    refused "resume: epoch_correct above epoch_seen" "brick.epoch_correct 9 is more than brick.epoch_seen 3" \
        brick.batch=1 brick.epoch_loss_sum=0x1p+2 brick.epoch_correct=9 brick.epoch_seen=3
    refused "resume: an even PCG increment" "$ck brick.loader_rng \"9a4aa19c3b8f0cac:000000000000006c\" is not a generator state" \
        brick.loader_rng=9a4aa19c3b8f0cac:000000000000006c
    refused "resume: a generator state with 0x" "$ck brick.model_rng \"0x4aa19c3b8f0cac:000000000000006d\"" \
        brick.model_rng=0x4aa19c3b8f0cac:000000000000006d
    refused "resume: NaN weights are named (not 'the loss is NaN, try a smaller --lr')" \
        "bad.ckpt.safetensors: tensor \"1.weight\" holds a non-finite value \(nan" nan:1.weight
    refused "resume: an infinite optimizer state is named" \
        "tensor \"optim.1.bias.momentum_buffer\" holds a non-finite value \(inf" inf:optim.1.bias.momentum_buffer
    "$py" tests/craft_safetensors.py "$h" "$tmp/nanw.safetensors" nan:1.bias
    expect "eval of a model with NaN weights: exit 1 naming the tensor (was 'test loss nan', exit 0)" 1 \
        "nanw.safetensors: tensor \"1.bias\" holds a non-finite value" "$brick" eval "$tmp/nanw.safetensors" --data "$data"
    expect "summary of a model with NaN weights: exit 1 naming the tensor" 1 \
        "nanw.safetensors: tensor \"1.bias\" holds a non-finite value" "$brick" summary "$tmp/nanw.safetensors"
    "$py" tests/craft_safetensors.py "$h" "$tmp/huge.safetensors" "brick.arch=mlp:hidden=4294967296"
    expect "eval of a file whose brick.arch is a 3.4 T-parameter MLP: refused before allocating" 1 \
        "huge.safetensors: cannot rebuild its model: .*BK_MODEL_MAX_PARAMS" "$brick" eval "$tmp/huge.safetensors" --data "$data"
else
    skip "hostile checkpoint tests" "no $py"
fi

# outputs: --out must not replace the checkpoint being resumed (by inode, so a link too)
cp "$hc" "$tmp/keep.ckpt"
usage "resume: --out the checkpoint itself" "brick train" "the model file .*h.ckpt.safetensors would replace the checkpoint being resumed" \
    "$brick" train --resume "$hc" --epochs 2 --out "$hc"
ln -sf "$hc" "$tmp/link.safetensors"
usage "resume: --out a link to the checkpoint" "brick train" "would replace the checkpoint being resumed" \
    "$brick" train --resume "$hc" --epochs 2 --out "$tmp/link.safetensors"
if cmp -s "$hc" "$tmp/keep.ckpt"; then ok "resume: the checkpoint is left as it was"; else bad "resume: the checkpoint was overwritten"; fi

# outputs that cannot be written are found before training, not after the first epoch
usage "train: --out a directory" "brick train" "--out $tmp is a directory" "$brick" train --data "$data" --out "$tmp"
mkdir -p "$tmp/ro"
chmod 555 "$tmp/ro"
ro=$tmp/ro/m.safetensors
if touch "$tmp/ro/x" 2>/dev/null; then ro=/proc/brick-test-m.safetensors; fi # root writes anywhere
expect "train: a read-only directory is refused before training" 1 "--out $ro cannot be written" \
    "$brick" train --model softmax --data "$data" --epochs 1 --out "$ro"
if grep -q "^epoch" <<<"$out"; then bad "read-only directory: it trained first"; fi
# a full disk, as a file size limit: no room for the model's 0.8 MB
run bash -c 'trap "" XFSZ; ulimit -f 64; exec "$@"' _ "$brick" train --model mlp --data "$data" --epochs 1 --out "$tmp/full.safetensors"
if [ "$rc" -eq 1 ] && grep -q "full.safetensors cannot be written: no room for its 0.8 MiB: File too large" <<<"$err" &&
    ! grep -q "^epoch" <<<"$out"; then
    ok "train: no room for the outputs is found before training"
else
    bad "train: no room for the outputs" "exit $rc" "stdout: ${out:0:300}" "stderr: ${err:0:300}"
fi
# models beyond BK_MODEL_MAX_PARAMS: a usage error, before allocating anything (was a 4 GB
# layer, then "out of memory" with exit 2)
usage "train: a 79 G-parameter MLP" "brick train" "has 7.95e\+10 parameters .*more than the 1073741824 \(BK_MODEL_MAX_PARAMS\)" \
    "$brick" train --model mlp:hidden=100000000 --data "$data"
usage "summary: a 79 G-parameter MLP" "brick summary" "BK_MODEL_MAX_PARAMS" "$brick" summary --model mlp:hidden=100000000
# a model within the limit that memory cannot hold: a resource failure (1), not usage (2)
if [ -z "${BRICK_CLI:-}" ] && ! grep -q __asan_init "$brick"; then
    run bash -c 'ulimit -v 1048576; exec "$@"' _ "$brick" summary --model mlp:hidden=1000000
    if [ "$rc" -eq 1 ] && grep -q "out of memory" <<<"$err"; then
        ok "summary: a 795 M-parameter MLP in 1 GiB of address space: exit 1 (out of memory)"
    else
        bad "summary: out of memory is not usage" "exit $rc: ${err:0:300}"
    fi
fi

# the test images must have the training images' shape: checked before training
mkdir -p "$tmp/d20"
for f in train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz t10k-labels-idx1-ubyte.gz; do ln -sf "$PWD/$data/$f" "$tmp/d20/$f"; done
if "$py" - "$data/t10k-images-idx3-ubyte.gz" "$tmp/d20/t10k-images-idx3-ubyte" <<'PY' 2>/dev/null; then
import gzip, struct, sys
b = gzip.open(sys.argv[1]).read()
magic, n, r, c = struct.unpack(">IIII", b[:16])
out = bytearray(struct.pack(">IIII", magic, n, 20, 20))
for i in range(n):
    img = b[16 + i * r * c: 16 + (i + 1) * r * c]
    for y in range(20):
        out += img[y * c: y * c + 20]
open(sys.argv[2], "wb").write(bytes(out))
PY
    for m_ in mlp resnet:width=2; do
        expect "train $m_: 20x20 test images beside 28x28 training images are refused before training" 1 \
            "the test images $tmp/d20/t10k-images-idx3-ubyte are \(1, 20, 20\) but the training images $tmp/d20/train-images-idx3-ubyte.gz are \(1, 28, 28\)" \
            "$brick" train --model "$m_" --data "$tmp/d20" --epochs 1 --out "$tmp/d20.safetensors"
        if grep -q "^epoch" <<<"$out"; then bad "20x20 test images: $m_ trained first"; fi
    done
else
    skip "the test-image shape test" "no $py"
fi

# --batch-size inside its range no longer sizes the evaluation's buffers (was 8 GB of
# predictions for 1e9): under a 2 GiB address space (not with ASan or valgrind, which
# reserve more)
if [ -z "${BRICK_CLI:-}" ] && ! grep -q __asan_init "$brick"; then
    run bash -c 'ulimit -v 2097152; exec "$@"' _ "$brick" train --model softmax --data "$data" --epochs 1 --batch-size 1000000000 --out "$tmp/b.safetensors"
    if [ "$rc" -eq 0 ] && grep -q "^epoch 1/1" <<<"$out"; then
        ok "train --batch-size 1e9 runs in 2 GiB (the buffers hold at most the data set)"
    else
        bad "train --batch-size 1e9 in 2 GiB" "exit $rc" "stdout: ${out:0:300}" "stderr: ${err:0:300}"
    fi
fi

# ---- data defaults --------------------------------------------------------------------------

expect "BRICK_DATA picks the data" 0 "data: $data \(from \\\$BRICK_DATA\)" \
    env BRICK_DATA="$data" "$brick" train --model softmax --epochs 1 --out "$tmp/s.safetensors"

# ---- the progress bar under a terminal (when util-linux `script` exists) -------------------

if command -v script >/dev/null 2>&1; then
    script -qec "$brick train --model softmax --data $data --epochs 1 --batch-size 64 --out $tmp/p.safetensors" \
        /dev/null >"$tmp/tty" 2>&1 </dev/null
    rc=$?
    if [ "$rc" -eq 0 ] && grep -q $'\r' "$tmp/tty" && grep -q 'samples/s' "$tmp/tty" && grep -q 'ETA' "$tmp/tty" &&
        grep -q '\[####' "$tmp/tty"; then
        ok "progress bar on a terminal (\\r, samples/s, ETA)"
    else
        bad "progress bar on a terminal" "exit $rc: $(head -c 300 "$tmp/tty" | tr '\r' '|')"
    fi
    # a 50-column terminal: no drawn line is wider than 49 columns (a wrapped line cannot
    # be redrawn; the bar goes first), and the evaluation shows
    script -qec "stty cols 50; $brick train --model softmax --data $data --epochs 1 --batch-size 64 --force --out $tmp/p.safetensors" \
        /dev/null >"$tmp/tty" 2>&1 </dev/null
    rc=$?
    widest=$(tr '\r' '\n' <"$tmp/tty" | grep -aE '^epoch 1/1 .*(samples/s|evaluating)' | awk '{ if (length($0) > w) w = length($0) } END { print w + 0 }')
    if [ "$rc" -eq 0 ] && [ "$widest" -gt 0 ] && [ "$widest" -le 49 ] &&
        grep -aq 'epoch 1/1 evaluating 1000 test images' "$tmp/tty"; then
        ok "progress bar in a 50-column terminal: lines of at most 49 columns ($widest), evaluation shown"
    else
        bad "progress bar in a 50-column terminal" "exit $rc, widest $widest: $(head -c 400 "$tmp/tty" | tr '\r' '|')"
    fi
else
    skip "progress bar test" "no util-linux script"
fi

# ---- the zoo on the command line: brick models, brick train --model help ------------------
expect "models --help" 0 "^usage: brick models \[NAME\]" "$brick" models --help
expect "brick --help lists models" 0 "^  models " "$brick" --help
run "$brick" models
models_out=$out
check "models: exit 0, every model once, with its description" \
    '[ "$rc" -eq 0 ] && [ -z "$err" ] && [ "$(grep -c "^model " <<<"$models_out")" -eq 5 ] &&
     grep -q "^  multilayer perceptron: " <<<"$models_out"'
check "models: every setting with its type, default and values" \
    'grep -qx "  setting hidden=256: integer, 1..4294967296" <<<"$models_out" &&
     grep -qx "  setting act=relu: word, relu|sigmoid|tanh|gelu" <<<"$models_out" &&
     grep -qx "  setting dropout=0: number, 0..1" <<<"$models_out" &&
     grep -qx "  setting bias=true: boolean, true|false" <<<"$models_out" &&
     grep -qx "  setting pool=max: word, max|avg" <<<"$models_out" &&
     grep -qx "  setting width=32: integer, 1..4294967296" <<<"$models_out"'
# the parameter counts are those `brick summary --model NAME` totals
for name in softmax mlp lenet resnet googlenet; do
    listed=$(sed -n "s/^model $name: \([0-9]*\) parameters (input 1,28,28, 10 classes, default settings)$/\1/p" <<<"$models_out")
    summed=$("$brick" summary --model "$name" | sed -n 's/^total parameters: \([0-9,]*\) .*/\1/p' | tr -d ,)
    check "models: $name has the $summed parameters of summary" '[ -n "$listed" ] && [ "$listed" = "$summed" ]'
done
run "$brick" models mlp
check "models mlp: that model alone" \
    '[ "$rc" -eq 0 ] && [ "$(grep -c "^model " <<<"$out")" -eq 1 ] && grep -q "^model mlp: 203530 parameters" <<<"$out"'
expect "models googlenet: no settings" 0 "^  \(no settings\)$" "$brick" models googlenet
usage "models: an unknown name lists the known ones" "brick models" \
    'unknown model "nope" \(known: softmax, mlp, lenet, resnet, googlenet\)' "$brick" models nope
usage "models: a spec is not a name" "brick models" 'unknown model "mlp:hidden=8"' "$brick" models mlp:hidden=8
usage "models: one name at most" "brick models" "unexpected argument" "$brick" models mlp lenet
usage "models: no options but --help" "brick models" "unknown option" "$brick" models --all
run "$brick" train --model help
check "train --model help: the same list, exit 0, nothing trained" \
    '[ "$rc" -eq 0 ] && [ "$out" = "$models_out" ] && [ ! -e model.safetensors ]'
check "models: every model has a recipe" \
    '[ "$(grep -c "^  recipe: " <<<"$models_out")" -eq 5 ] &&
     grep -qx "  recipe: SGD lr 0.02, momentum 0.9, cosine schedule, batch 128" <<<"$models_out"'
# brick train takes the recipe for what its flags leave open; another optimizer takes its
# plain defaults
run "$brick" train --model lenet --data "$data" --epochs 1 --force --out "$tmp/r.safetensors"
check "train: lenet's recipe by default" \
    '[ "$rc" -eq 0 ] && grep -q "^model: lenet (61706 parameters), SGD lr 0.02, momentum 0.9, cosine schedule to 0 over 1 epochs, batch 128," <<<"$out"'
run "$brick" train --model lenet --data "$data" --epochs 1 --lr 0.01 --batch-size 500 --force --out "$tmp/r.safetensors"
check "train: flags override their part of the recipe" \
    '[ "$rc" -eq 0 ] && grep -q "^model: lenet (61706 parameters), SGD lr 0.01, momentum 0.9, cosine schedule to 0 over 1 epochs, batch 500," <<<"$out"'
run "$brick" train --model lenet --data "$data" --epochs 1 --optimizer adam --lr-schedule none --lr 0.001 --force --out "$tmp/r.safetensors"
check "train: another --optimizer leaves the recipe's optimizer settings" \
    '[ "$rc" -eq 0 ] && grep -q "^model: lenet (61706 parameters), Adam lr 0.001, batch 128," <<<"$out"'

# ---- model specs with settings that are not integers (docs/cli.md "Models") ------------
expect "spec: an activation and a dropout rate" 0 "^mlp:hidden=32,act=gelu,dropout=0.1$" \
    "$brick" summary --model "mlp:dropout=0.1,act=gelu,hidden=32"
if grep -q "GELU" <<<"$out" && grep -q "Dropout(p=0.1" <<<"$out" && ! grep -q "ReLU" <<<"$out"; then
    ok "spec: GELU and Dropout(0.1) in place of ReLU"
else
    bad "spec: the blocks" "${out:0:600}"
fi
expect "spec: a boolean (softmax without a bias: 784 x 10 weights)" 0 "total parameters: 7,840" \
    "$brick" summary --model softmax:bias=false
expect "spec: D2L's original LeNet (sigmoid, average pooling)" 0 "AvgPool2d" \
    "$brick" summary --model lenet:act=sigmoid,pool=avg
expect "spec: the spec of brick 0.1.0 stays canonical" 0 "^mlp:hidden=256$" "$brick" summary --model mlp
usage "spec: a bad word names the spec, the setting and the value" "brick train" \
    '^brick train: model: mlp:act=swish: act must be one of relu, sigmoid, tanh, gelu, got "swish"$' \
    "$brick" train --model mlp:act=swish --data "$data"
usage "spec: a bad number" "brick summary" 'model: mlp:dropout=2: dropout must be a number in \[0, 1\], got "2"$' \
    "$brick" summary --model mlp:dropout=2
usage "spec: a bad boolean" "brick summary" 'model: softmax:bias=no: bias must be true or false, got "no"$' \
    "$brick" summary --model softmax:bias=no
spec="mlp:hidden=16,act=tanh,dropout=0.2"
expect "spec: trains with the settings" 0 "^model: $spec \(12730 parameters\)" \
    "$brick" train --model "mlp:act=tanh,dropout=0.2,hidden=16" --data "$data" --epochs 1 --threads 1 \
    --out "$tmp/spec.safetensors"
expect "spec: the model file holds the canonical spec" 0 "$spec" "$brick" summary "$tmp/spec.safetensors"
expect "spec: eval rebuilds the model from the file" 0 "accuracy" "$brick" eval "$tmp/spec.safetensors" --data "$data"
expect "spec: resume with the same model spelled another way" 0 "^epoch 2/2" \
    "$brick" train --resume "$tmp/spec.ckpt.safetensors" --epochs 2 --model "mlp:dropout=0.2,hidden=16,act=tanh"
usage "spec: resume with another activation is refused" "brick train" \
    "--model mlp:hidden=16,act=relu,dropout=0.2 differs from the checkpoint's $spec" \
    "$brick" train --resume "$tmp/spec.ckpt.safetensors" --epochs 3 --model "mlp:hidden=16,act=relu,dropout=0.2"

# ---- plain state dicts: PyTorch's weights without brick's metadata (issue 14) -------------
# $m's tensors rewritten as PyTorch would save them (F64 here, no metadata), with an extra
# int64 buffer in one copy, a truncated copy and one of a dtype brick does not read.
"$py" - "$m" "$tmp" <<'PY'
import json, struct, sys
src, tmp = sys.argv[1], sys.argv[2]
buf = open(src, "rb").read()
(n,) = struct.unpack("<Q", buf[:8])
head = json.loads(buf[8:8 + n]); head.pop("__metadata__", None)
data = buf[8 + n:]
def write(path, tensors):
    h, blobs, off = {}, [], 0
    for name, (dtype, shape, raw) in tensors.items():
        h[name] = {"dtype": dtype, "shape": shape, "data_offsets": [off, off + len(raw)]}
        blobs.append(raw); off += len(raw)
    hj = json.dumps(h).encode(); hj += b" " * (-len(hj) % 8)
    open(path, "wb").write(struct.pack("<Q", len(hj)) + hj + b"".join(blobs))
t = {}
for name, info in head.items():
    b, e = info["data_offsets"]
    vals = struct.unpack("<%df" % ((e - b) // 4), data[b:e])
    t[name] = ("F64", info["shape"], struct.pack("<%dd" % len(vals), *vals))
write(tmp + "/plain.safetensors", t)
write(tmp + "/plain-extra.safetensors", dict(t, **{"extra.num_batches_tracked": ("I64", [], struct.pack("<q", 7))}))
write(tmp + "/plain-u8.safetensors", dict(t, **{"mask": ("U8", [2], b"\x01\x00")}))
raw = open(tmp + "/plain.safetensors", "rb").read()
open(tmp + "/plain-cut.safetensors", "wb").write(raw[:len(raw) - 100])
PY
check "plain state dicts written (python3)" '[ -s "$tmp/plain.safetensors" ] && [ -s "$tmp/plain-cut.safetensors" ]'
plain=$tmp/plain.safetensors
want=$("$brick" eval "$m" --data "$data" | grep '^test loss')
expect "eval --model mlp PLAIN (F64): the model file's numbers" 0 "^${want//(/\\(}" "$brick" eval --model mlp "$plain" --data "$data"
expect "eval --model: class names from the data set" 0 "Ankle boot" "$brick" eval --model mlp "$plain" --data "$data"
expect "summary --model mlp PLAIN" 0 "total parameters: 203,530" "$brick" summary --model mlp "$plain"
expect "predict --model mlp PLAIN --idx" 0 "^#2 \(true: class 1\): " "$brick" predict --model mlp "$plain" --idx "$data/t10k-images-idx3-ubyte.gz" --index 1 --count 3
expect "predict --model --class-names" 0 "^#1 \(true: c\): " "$brick" predict --model mlp --class-names a,b,c,d,e,f,g,h,i,j "$plain" --idx "$data/t10k-images-idx3-ubyte.gz" --index 1
expect "strict: an unexpected name is an error naming it (exit 1)" 1 "plain-extra.safetensors: unexpected: extra.num_batches_tracked.*--non-strict" "$brick" eval --model mlp "$tmp/plain-extra.safetensors" --data "$data"
expect "--non-strict loads and lists what it skipped" 0 "1 unexpected \(ignored\): extra.num_batches_tracked" "$brick" eval --model mlp --non-strict "$tmp/plain-extra.safetensors" --data "$data"
expect "another model: shape mismatch named, exit 1" 1 "shape mismatch: 1.weight \(256, 784\) in file vs \(64, 784\) in model" "$brick" eval --model mlp:hidden=64 "$plain" --data "$data"
expect "a truncated plain file: exit 1 naming the file" 1 "safetensors: $tmp/plain-cut.safetensors: .*go past the end of the file" "$brick" eval --model mlp "$tmp/plain-cut.safetensors" --data "$data"
expect "a U8 tensor: exit 1 naming the dtype and file" 1 "plain-u8.safetensors: dtype U8 of tensor 'mask' is not supported" "$brick" eval --model mlp "$tmp/plain-u8.safetensors" --data "$data"
imp=$tmp/imported.safetensors
expect "import PLAIN --out: a brick model file" 0 "imported .*\(F64 x 4, converted to float32\)" "$brick" import --model mlp "$plain" --out "$imp" --class-names a,b,c,d,e,f,g,h,i,j
expect "the imported file evaluates with no flags, as the original" 0 "^${want//(/\\(}" "$brick" eval "$imp" --data "$data"
expect "the imported file keeps its class names" 0 "^#0 \(true: j\): j " "$brick" predict "$imp" --idx "$data/t10k-images-idx3-ubyte.gz" --top 1
usage "import: an existing --out is refused" "brick import" "exists \(--force replaces it\)" "$brick" import --model mlp "$plain" --out "$imp"
expect "import --force replaces it" 0 "wrote " "$brick" import --model mlp "$plain" --out "$imp" --force
usage "import: --model is required" "brick import" "--model SPEC is required" "$brick" import "$plain" --out "$tmp/x.safetensors"
usage "import: --out is required" "brick import" "--out FILE is required" "$brick" import --model mlp "$plain"
usage "import: --out is the input" "brick import" "is the input file" "$brick" import --model mlp "$plain" --out "$plain"
usage "import: a bad spec" "brick import" "unknown model" "$brick" import --model nope "$plain" --out "$tmp/x.safetensors"
usage "eval: --in-shape needs --model" "brick eval" "--in-shape goes with --model" "$brick" eval "$m" --in-shape 1,28,28
usage "eval: --non-strict needs --model" "brick eval" "--non-strict goes with --model" "$brick" eval "$m" --non-strict
usage "predict: a bad --in-shape" "brick predict" "--in-shape must be positive sizes" "$brick" predict --model mlp --in-shape 1,x "$plain" "$pgm"
usage "summary: --non-strict needs a PLAIN file" "brick summary" "--non-strict goes with a PLAIN file" "$brick" summary --model mlp --non-strict

# ---- images for predict: PNG, JPEG, PGM P2/P5 8/16-bit, any size (issue 14) ----------------
# From the first test image ($pgm): a P2 twice its size, a 16-bit P5, an inverted copy, an
# RGB PNG (written with python's zlib) and a corrupt PNG.
"$py" - "$pgm" "$tmp" <<'PY'
import struct, sys, zlib
src, tmp = sys.argv[1], sys.argv[2]
px = open(src, "rb").read()[-784:]
big = [px[(y // 2) * 28 + x // 2] for y in range(56) for x in range(56)]
open(tmp + "/big.pgm", "w").write("P2\n56 56\n255\n" + " ".join(map(str, big)) + "\n")
open(tmp + "/wide.pgm", "wb").write(b"P5 28 28 65535\n" + b"".join(struct.pack(">H", v * 257) for v in px))
open(tmp + "/inverted.pgm", "wb").write(b"P5 28 28 255\n" + bytes(255 - v for v in px))
def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
rows = b"".join(b"\0" + bytes(c for v in px[y * 28:(y + 1) * 28] for c in (v, v, v)) for y in range(28))
png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 28, 28, 8, 2, 0, 0, 0)) + \
    chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")
open(tmp + "/rgb.png", "wb").write(png)
open(tmp + "/corrupt.png", "wb").write(png[:60] + b"\xff" * 20 + png[80:])
PY
first=$("$brick" predict "$m" "$pgm" --top 1 | sed 's/.*: //')
expect "predict a 16-bit PGM: the 8-bit one's answer" 0 "wide.pgm: ${first}$" "$brick" predict "$m" "$tmp/wide.pgm" --top 1
expect "predict a P2 PGM of 56x56: says it resized" 0 "big.pgm: PGM 56x56 grey 8-bit -> resized to 28x28 \(bilinear, antialiased: torchvision Resize\)" "$brick" predict "$m" "$tmp/big.pgm"
expect "predict an inverted image: a warning" 0 "inverted.pgm: warning: the image looks inverted" "$brick" predict "$m" "$tmp/inverted.pgm"
expect "predict --invert: the original's answer" 0 "inverted.pgm: ${first}$" "$brick" predict "$m" "$tmp/inverted.pgm" --invert --top 1
if "$brick" --version | grep -q "PNG/JPEG"; then
    expect "predict an RGB PNG: made grey, said" 0 "rgb.png: PNG 28x28 RGB 8-bit -> grey \(torchvision Grayscale\)" "$brick" predict "$m" "$tmp/rgb.png"
    expect "predict a corrupt PNG: exit 1 naming it" 1 "image: $tmp/corrupt.png: (not a valid|cannot decode the) PNG image" "$brick" predict "$m" "$tmp/corrupt.png"
else
    expect "predict a PNG without libstb: exit 1 saying what to install" 1 "rgb.png: a PNG image, but this brick was built without an image decoder: install libstb-dev" "$brick" predict "$m" "$tmp/rgb.png"
fi
usage "predict: --invert goes with IMAGE files" "brick predict" "--invert goes with IMAGE files" "$brick" predict "$m" --idx "$data/t10k-images-idx3-ubyte.gz" --invert

bk_done
