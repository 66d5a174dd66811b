#!/usr/bin/env bash
# test_interrupt.sh - Ctrl-C during `brick train`: the step in progress finishes, the
# checkpoint is saved with the position inside the epoch, the exit status is 128 + signal,
# and --resume ends with a model file byte-identical to an uninterrupted run's.
#
#   bash tests/test_interrupt.sh      (scripts/run_tests.sh runs it; BRICK_BUILD=dir picks
#                                      the build, default build/)
#
# Deterministic interrupts use the hidden BRICK_TEST_INTERRUPT_AT_STEP=N (SIGINT raised in
# the process after step N): inside epoch 1, at the last batch of an epoch, twice in a row,
# and with Adam. Then real signals from outside: `kill -INT` and `kill -TERM` of a run in
# the background, whose exact step does not matter. Then repeated signals: two at once
# (one request), a second one during the save (it waits), a second one to a run that hangs
# (it exits at once), and GNU timeout's two SIGTERMs. Every resume runs the "to continue:"
# command the interrupted run printed. Speaks TAP (tests/lib.sh); exits 1 on any failure.
set -u
source "$(dirname "$0")/lib.sh"
bk_setup
data=data/fashion-mnist-subset
bg_pid=
bk_on_exit='[ -n "$bg_pid" ] && kill "$bg_pid" 2>/dev/null'

# One recipe for every run: 24 batches of 256 per epoch on the 6000-image subset.
mlp=(--model mlp --data "$data" --epochs 2 --batch-size 256 --lr 0.05 --momentum 0.9 --seed 5 --threads 1)

# continue_run (lib.sh): the "to continue:" command of brick train, finished when stdout
# has this line.
continue_cmd=train
continue_done='final test accuracy'

# same_model NAME A B: byte-identical model files, and the CSV logs agree but for the times.
same_model() {
    local name=$1
    if cmp -s "$2" "$3"; then
        ok "$name: the model file is byte-identical to the uninterrupted run's"
    else
        bad "$name: model file differs from the uninterrupted run's" "$(cmp "$2" "$3" 2>&1)"
    fi
    local c2=${2%.safetensors}.csv c3=${3%.safetensors}.csv
    if [ "$(cut -d, -f1-5 "$c2" 2>&1)" = "$(cut -d, -f1-5 "$c3" 2>&1)" ]; then
        ok "$name: the CSV log equals the uninterrupted one (all but the times)"
    else
        bad "$name: CSV logs differ" "$(diff <(cut -d, -f1-5 "$c2") <(cut -d, -f1-5 "$c3") 2>&1 | head -n 6)"
    fi
}

# ---- the reference: two uninterrupted epochs ----------------------------------------------

ref=$tmp/ref.safetensors
run "$brick" train "${mlp[@]}" --out "$ref"
if [ "$rc" -eq 0 ] && [ -s "$ref" ]; then
    ok "reference run (2 epochs, SGD with momentum)"
else
    bad "reference run" "exit $rc" "stderr: ${err:0:400}"
fi

# ---- SIGINT inside epoch 1 (after step 10 of 24) -------------------------------------------

a=$tmp/a.safetensors
run env BRICK_TEST_INTERRUPT_AT_STEP=10 "$brick" train "${mlp[@]}" --out "$a"
if [ "$rc" -eq 130 ]; then ok "SIGINT in epoch 1: exit status 130"; else bad "SIGINT in epoch 1: exit $rc, expected 130" "stderr: ${err:0:400}"; fi
if grep -q "interrupted by SIGINT in epoch 1 after batch 10 of 24 (step 10): saved the checkpoint $tmp/a.ckpt.safetensors" <<<"$err" &&
    grep -q "to continue: brick train --resume $tmp/a.ckpt.safetensors$" <<<"$err"; then
    ok "SIGINT: says where the checkpoint is and how to resume"
else
    bad "SIGINT message" "stderr: ${err:0:600}"
fi
if [ ! -e "$a" ] && [ -s "$tmp/a.ckpt.safetensors" ] && grep -aq '"brick.batch":"10"' "$tmp/a.ckpt.safetensors" &&
    grep -aq '"brick.epoch":"0"' "$tmp/a.ckpt.safetensors"; then
    ok "SIGINT: only the checkpoint is written, holding epoch 0 + batch 10"
else
    bad "SIGINT: files" "$(ls "$tmp")"
fi
interrupt_err=$err
run "$brick" eval "$tmp/a.ckpt.safetensors" --data "$data"
if [ "$rc" -eq 0 ] && grep -q "test accuracy" <<<"$out"; then ok "the mid-epoch checkpoint loads (brick eval)"; else bad "eval of the mid-epoch checkpoint" "exit $rc: ${err:0:300}"; fi
continue_run "resume in epoch 1" "$interrupt_err"
if grep -q "resuming $tmp/a.ckpt.safetensors in epoch 1 of 2, after batch 10 of 24" <<<"$out"; then
    ok "resume says where it goes on"
else
    bad "resume message" "stdout: ${out:0:300}"
fi
same_model "resume in epoch 1" "$ref" "$a"

# ---- SIGINT at the end of an epoch (step 24 = the last batch of epoch 1) -------------------

b=$tmp/b.safetensors
run env BRICK_TEST_INTERRUPT_AT_STEP=24 "$brick" train "${mlp[@]}" --out "$b"
if [ "$rc" -eq 130 ] && grep -q "in epoch 1 after batch 24 of 24" <<<"$err"; then
    ok "SIGINT after the last batch of epoch 1: exit 130, before its evaluation"
else
    bad "SIGINT at the end of an epoch" "exit $rc" "stderr: ${err:0:400}"
fi
continue_run "resume at the end of epoch 1"
same_model "resume at the end of epoch 1" "$ref" "$b"

# ---- interrupted twice: epoch 1 step 5, then epoch 2 step 35 --------------------------------

c=$tmp/c.safetensors
run env BRICK_TEST_INTERRUPT_AT_STEP=5 "$brick" train "${mlp[@]}" --out "$c"
first=$rc
run env BRICK_TEST_INTERRUPT_AT_STEP=35 "$brick" train --resume "$tmp/c.ckpt.safetensors"
if [ "$first" -eq 130 ] && [ "$rc" -eq 130 ] && grep -q "in epoch 2 after batch 11 of 24 (step 35)" <<<"$err" &&
    [ -s "$c" ] && grep -aq '"brick.epoch":"1"' "$c"; then
    ok "interrupted again after a resume (epoch 2, batch 11); epoch 1's model file was written"
else
    bad "second interrupt" "exits $first, $rc" "stderr: ${err:0:400}"
fi
continue_run "second resume"
same_model "interrupted twice" "$ref" "$c"

# ---- Adam: its step counters and moments go through the checkpoint --------------------------

adam=(--model softmax --optimizer adam --lr 0.01 --data "$data" --epochs 2 --batch-size 128 --seed 2 --threads 1)
run "$brick" train "${adam[@]}" --out "$tmp/adam-ref.safetensors"
ref_rc=$rc
run env BRICK_TEST_INTERRUPT_AT_STEP=61 "$brick" train "${adam[@]}" --out "$tmp/adam.safetensors"
if [ "$ref_rc" -eq 0 ] && [ "$rc" -eq 130 ] && grep -q "in epoch 2 after batch 14 of 47" <<<"$err"; then
    ok "Adam: interrupted in epoch 2"
else
    bad "Adam interrupt" "exits $ref_rc, $rc" "stderr: ${err:0:400}"
fi
continue_run "Adam resume"
same_model "Adam" "$tmp/adam-ref.safetensors" "$tmp/adam.safetensors"

# ---- real signals from outside ------------------------------------------------------------

# (wait_for, interrupt_until_gone: lib.sh)

# killed_run NAME SIGNAL STATUS OUT: starts a 3-epoch run in the background, sends SIGNAL
# once training has begun, and expects exit STATUS. Sets $rc, $out, $err.
long=(--model mlp --data "$data" --epochs 3 --batch-size 64 --lr 0.05 --seed 9 --threads 1)
killed_run() {
    local name=$1 sig=$2 want=$3 o=$4
    "$brick" train "${long[@]}" --out "$o" >"$tmp/out" 2>"$tmp/err" &
    bg_pid=$!
    wait_for '^model: ' "$tmp/out" # training has started
    sleep 0.3
    kill "-$sig" "$bg_pid" 2>/dev/null
    wait "$bg_pid"
    rc=$?
    bg_pid=
    out=$(cat "$tmp/out")
    err=$(cat "$tmp/err")
    if [ "$rc" -eq 0 ]; then
        skip "$name" "the run finished before the signal arrived"
        return 1
    fi
    if [ "$rc" -eq "$want" ] && grep -Eq "interrupted by SIG$sig (in epoch [0-9]+ after batch [0-9]+ of 94 \(step [0-9]+\): saved the checkpoint|after epoch [0-9]+: the checkpoint .* holds it)" <<<"$err"; then
        ok "$name: exit $want, checkpoint saved ($(grep -o 'interrupted by [^:]*' <<<"$err"))"
    else
        bad "$name: expected exit $want and the interrupt message" "exit $rc" "stderr: ${err:0:400}"
    fi
    return 0
}

run "$brick" train "${long[@]}" --out "$tmp/long-ref.safetensors"
long_rc=$rc
[ "$long_rc" -eq 0 ] || bad "reference 3-epoch run" "exit $long_rc: ${err:0:300}"

if killed_run "kill -INT" INT 130 "$tmp/k.safetensors"; then
    continue_run "resume after kill -INT"
    same_model "kill -INT" "$tmp/long-ref.safetensors" "$tmp/k.safetensors"
fi
# SIGTERM, with an --out whose name does not give the checkpoint's (so the printed command
# must carry --out).
if killed_run "kill -TERM" TERM 143 "$tmp/t.model"; then
    if grep -q "to continue: brick train --resume $tmp/t.model.ckpt.safetensors --out $tmp/t.model$" <<<"$err"; then
        ok "kill -TERM: the printed command carries --out"
    else
        bad "kill -TERM: --out in the printed command" "stderr: ${err:0:400}"
    fi
    continue_run "resume after kill -TERM"
    if cmp -s "$tmp/long-ref.safetensors" "$tmp/t.model"; then
        ok "kill -TERM: the model file is byte-identical to the uninterrupted run's"
    else
        bad "kill -TERM: model file differs" "$(cmp "$tmp/long-ref.safetensors" "$tmp/t.model" 2>&1)"
    fi
fi

# ---- repeated signals -------------------------------------------------------------------------
# Within 1 s of the first: the same request (GNU timeout sends two). Later, during the save:
# it waits for the save. Later, with no save going on (the loop does not reach its check):
# exit at once, 128 + signal. The first two are raised in the process by the test hook
# (BRICK_TEST_INTERRUPT_REPEAT), timed by the process's own clock; the third comes from here.

d=$tmp/dup.safetensors
run env BRICK_TEST_INTERRUPT_AT_STEP=10 BRICK_TEST_INTERRUPT_REPEAT=now "$brick" train "${mlp[@]}" --out "$d"
if [ "$rc" -eq 130 ] && grep -q "in epoch 1 after batch 10 of 24 (step 10): saved the checkpoint" <<<"$err" &&
    [ -s "$tmp/dup.ckpt.safetensors" ]; then
    ok "two signals at once count as one: the checkpoint is saved, exit 130"
else
    bad "two signals at once" "exit $rc" "stderr: ${err:0:400}"
fi
continue_run "resume after two signals at once"
same_model "two signals at once" "$ref" "$d"

s2=$tmp/save.safetensors
run env BRICK_TEST_INTERRUPT_AT_STEP=10 BRICK_TEST_INTERRUPT_REPEAT=save "$brick" train "${mlp[@]}" --out "$s2"
if [ "$rc" -eq 130 ] && grep -q "in epoch 1 after batch 10 of 24 (step 10): saved the checkpoint" <<<"$err" &&
    grep -aq '"brick.batch":"10"' "$tmp/save.ckpt.safetensors" 2>/dev/null && ! grep -q "stopped at once" <<<"$err"; then
    ok "a second signal 1.1 s later, during the save, waits for it: checkpoint saved, exit 130"
else
    bad "a second signal during the save" "exit $rc" "stderr: ${err:0:400}"
fi

# A run that hangs after step 10 (the hook: it never reaches its check). One signal does
# not stop it; a later one must, at once. Signals go every 0.5 s until it exits (the first
# ones within 1 s of the hook's own SIGINT count as the same request), 240 s at most.
h=$tmp/hang.safetensors
cp "$ref" "$h" # files of an earlier save, which must stay whole
cp "${ref%.safetensors}.ckpt.safetensors" "$tmp/hang.ckpt.safetensors"
BRICK_TEST_INTERRUPT_AT_STEP=10 BRICK_TEST_INTERRUPT_REPEAT=hang "$brick" train "${mlp[@]}" --force --out "$h" >"$tmp/out" 2>"$tmp/err" &
bg_pid=$!
wait_for 'test hook: hanging' "$tmp/err"
interrupt_until_gone
if [ "$rc" -eq 130 ] && grep -q "stopped at once by a second signal" <<<"$err" &&
    cmp -s "$ref" "$h" && cmp -s "${ref%.safetensors}.ckpt.safetensors" "$tmp/hang.ckpt.safetensors"; then
    ok "a hung run stops on a later signal: exit 130 at once ($sent sent), the earlier files untouched"
else
    bad "a hung run and a second signal" "exit $rc after $sent signals" "stderr: ${err:0:400}"
fi

# Two SIGTERMs from outside, 20 ms apart (well within the 1 s): one request. (Before, the
# second one killed the run whenever the first had been handled and the step and the save
# were still going on; a wide MLP makes that window long.)
o=$tmp/twice.safetensors
"$brick" train "${long[@]}" --model mlp:hidden=2048 --epochs 1000 --out "$o" >"$tmp/out" 2>"$tmp/err" &
bg_pid=$!
wait_for '^model: ' "$tmp/out"
sleep 0.3
t0=${EPOCHREALTIME/[.,]/}
kill -TERM "$bg_pid" 2>/dev/null
sleep 0.02
kill -TERM "$bg_pid" 2>/dev/null
gap_us=$((${EPOCHREALTIME/[.,]/} - t0)) # what the shell managed: a stalled machine may not
wait "$bg_pid"
rc=$?
bg_pid=
err=$(cat "$tmp/err")
if [ "$rc" -eq 143 ] && grep -Eq "interrupted by SIGTERM (in epoch|after epoch)" <<<"$err" &&
    [ -s "$tmp/twice.ckpt.safetensors" ]; then
    ok "kill -TERM twice, 20 ms apart: one request, the checkpoint is saved, exit 143"
elif [ "$gap_us" -ge 900000 ] && grep -q "stopped at once by a second signal" <<<"$err"; then
    skip "kill -TERM twice" "the shell sent them $((gap_us / 1000)) ms apart (a stalled machine), which is a second request"
else
    bad "kill -TERM twice" "exit $rc" "stderr: ${err:0:400}"
fi

# GNU timeout: SIGTERM to brick and then to its process group, at once. Before, the second
# killed the run before its checkpoint was written (1 run in 20).
for k in 1 2 3; do
    o=$tmp/timeout$k.safetensors
    timeout -s TERM 1.5 "$brick" train "${long[@]}" --epochs 1000 --out "$o" >"$tmp/out" 2>"$tmp/err"
    rc=$?
    err=$(cat "$tmp/err")
    if [ "$rc" -eq 0 ] || ! grep -q '^model: ' "$tmp/out"; then
        skip "timeout run $k" "the signal came before training began or after it ended (exit $rc)"
        continue
    fi
    if grep -q "stopped at once by a second signal" <<<"$err"; then
        # timeout sends them back to back; only a stalled machine puts 1 s between them
        skip "timeout run $k" "its two signals came 1 s or more apart (a stalled machine)"
        continue
    fi
    ck=$tmp/timeout$k.ckpt.safetensors
    if [ "$rc" -eq 124 ] && grep -Eq "interrupted by SIGTERM (in epoch|after epoch)" <<<"$err" && [ -s "$ck" ] &&
        "$brick" eval "$ck" --data "$data" >/dev/null 2>&1; then
        ok "timeout -s TERM (two signals) run $k: the checkpoint is saved and loads"
    else
        bad "timeout -s TERM run $k" "exit $rc" "stderr: ${err:0:400}"
    fi
done

bk_done
