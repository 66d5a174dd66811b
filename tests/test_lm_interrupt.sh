#!/usr/bin/env bash
# test_lm_interrupt.sh - `brick train-lm` has brick train's outer loop (tools/loop.c): Ctrl-C
# and SIGTERM finish the step, save the checkpoint and exit 128 + signal; --resume ends with
# a model file byte-identical to an uninterrupted run's; a new run refuses an earlier run's
# files without --force; a resumed run keeps its settings; the progress bar on a terminal.
#
#   bash tests/test_lm_interrupt.sh   (scripts/run_tests.sh runs it; BRICK_BUILD=dir picks
#                                      the build, default build/)
#
# Deterministic interrupts use the hidden BRICK_TEST_INTERRUPT_AT_STEP=N (SIGINT raised in
# the process after step N), as tests/test_interrupt.sh does for brick train: inside a
# stretch between validations, and at a validation (whose files already hold the run).
# Then repeated signals (at once, during the save, to a run that hangs) and a real `kill
# -TERM` from outside. Every resume runs the "to continue:" command the interrupted run
# printed. Speaks TAP (tests/lib.sh); exits 1 on any failure.
set -u
source "$(dirname "$0")/lib.sh"
bk_setup
text=data/text/fortunes-sample.txt
bg_pid=
bk_on_exit='[ -n "$bg_pid" ] && kill "$bg_pid" 2>/dev/null'

# One small recipe: 30 steps, validation (and files) every 10.
lm=(--text "$text" --context 32 --d-model 32 --layers 1 --heads 2 --ff 64 --batch-size 16 --lr 1e-2
    --steps 30 --eval-every 10 --threads 1 --seed 1)

# continue_run (lib.sh): the "to continue:" command of brick train-lm, finished when stdout
# has this line.
continue_cmd=train-lm
continue_done='^final: val loss'

# same_model NAME A B: byte-identical model files, and the CSV logs agree but for the times.
same_model() {
    if cmp -s "$2" "$3"; then
        ok "$1: the model file is byte-identical to the uninterrupted run's"
    else
        bad "$1: model file differs from the uninterrupted run's" "$(cmp "$2" "$3" 2>&1)"
    fi
    local c2=${2%.safetensors}.csv c3=${3%.safetensors}.csv
    if [ "$(cut -d, -f1-5 "$c2" 2>&1)" = "$(cut -d, -f1-5 "$c3" 2>&1)" ] && [ "$(wc -l <"$c2")" -eq 4 ]; then
        ok "$1: the CSV log equals the uninterrupted one (all but the times)"
    else
        bad "$1: CSV logs differ" "$(diff <(cut -d, -f1-5 "$c2") <(cut -d, -f1-5 "$c3") 2>&1 | head -n 6)"
    fi
}

# ---- the reference: 30 uninterrupted steps ------------------------------------------------

ref=$tmp/ref.safetensors
run "$brick" train-lm "${lm[@]}" --out "$ref"
if [ "$rc" -eq 0 ] && [ -s "$ref" ] && [ -s "$tmp/ref.ckpt.safetensors" ] &&
    grep -q "^wrote $ref, $tmp/ref.ckpt.safetensors, $tmp/ref.csv$" <<<"$out" &&
    [ "$(head -n 1 "$tmp/ref.csv")" = "step,train_loss,val_loss,bigram_loss,lr,train_seconds" ] &&
    [ "$(tail -n +2 "$tmp/ref.csv" | awk -F, '{ printf "%d,%.4f ", $1, $3 }')" = "$(grep '^step ' <<<"$out" | awk '{ printf "%d,%s ", $2, $6 }')" ]; then
    ok "reference run: the model file, its checkpoint, and a CSV row per validation"
else
    bad "reference run" "exit $rc" "stdout: ${out:0:400}" "stderr: ${err:0:400}"
fi
ref_out=$out

# ---- SIGINT between validations (after step 14) ---------------------------------------------

a=$tmp/a.safetensors
run env BRICK_TEST_INTERRUPT_AT_STEP=14 "$brick" train-lm "${lm[@]}" --out "$a"
if [ "$rc" -eq 130 ] &&
    grep -q "interrupted by SIGINT after step 14 of 30: saved the checkpoint $tmp/a.ckpt.safetensors" <<<"$err" &&
    grep -q "to continue: brick train-lm --resume $tmp/a.ckpt.safetensors$" <<<"$err"; then
    ok "SIGINT after step 14: exit 130, says where the checkpoint is and how to resume"
else
    bad "SIGINT after step 14 (exit $rc, expected 130)" "stderr: ${err:0:600}"
fi
if grep -aq '"brick.step":"14"' "$tmp/a.ckpt.safetensors" && grep -aq '"brick.format":"brick-lm-checkpoint-1"' "$tmp/a.ckpt.safetensors"; then
    ok "the checkpoint holds step 14"
else
    bad "checkpoint contents" "$(head -c 600 "$tmp/a.ckpt.safetensors" | tr -c '[:print:]' .)"
fi
continue_run "resume after step 14"
if grep -q "resuming $tmp/a.ckpt.safetensors after step 14 of 30" <<<"$out" &&
    [ "$(grep '^step ' <<<"$out" | cut -c1-60)" = "$(grep '^step  *[23]0 ' <<<"$ref_out" | cut -c1-60)" ]; then
    ok "the resumed run prints the uninterrupted run's validation lines"
else
    bad "resumed run's lines" "stdout: ${out:0:500}" "reference: ${ref_out:0:500}"
fi
same_model "resume after step 14" "$ref" "$a"

# ---- SIGINT at a validation (step 20): its files already hold the run ------------------------

b=$tmp/b.safetensors
run env BRICK_TEST_INTERRUPT_AT_STEP=20 "$brick" train-lm "${lm[@]}" --out "$b"
if [ "$rc" -eq 130 ] && grep -q "interrupted by SIGINT after step 20 of 30: the checkpoint $tmp/b.ckpt.safetensors holds it" <<<"$err"; then
    ok "SIGINT at a validation: exit 130, the checkpoint of that validation holds it"
else
    bad "SIGINT at step 20 (exit $rc)" "stderr: ${err:0:400}"
fi
continue_run "resume after step 20"
same_model "resume after step 20" "$ref" "$b"

# ---- repeated signals (the hooks of tools/loop.c, which brick train's tests also use) ---------

e=$tmp/e.safetensors
run env BRICK_TEST_INTERRUPT_AT_STEP=14 BRICK_TEST_INTERRUPT_REPEAT=now "$brick" train-lm "${lm[@]}" --out "$e"
if [ "$rc" -eq 130 ] && grep -q "after step 14 of 30: saved the checkpoint" <<<"$err"; then
    ok "two signals at once: one request, the checkpoint saved, exit 130"
else
    bad "two signals at once (exit $rc)" "stderr: ${err:0:400}"
fi
continue_run "resume after two signals at once"
same_model "two signals at once" "$ref" "$e"
run env BRICK_TEST_INTERRUPT_AT_STEP=14 BRICK_TEST_INTERRUPT_REPEAT=save "$brick" train-lm "${lm[@]}" --out "$tmp/f.safetensors"
if [ "$rc" -eq 130 ] && grep -q "after step 14 of 30: saved the checkpoint" <<<"$err" && ! grep -q "stopped at once" <<<"$err" &&
    grep -aq '"brick.step":"14"' "$tmp/f.ckpt.safetensors"; then
    ok "a second signal 1.1 s later, during the save, waits for it: checkpoint saved, exit 130"
else
    bad "a second signal during the save (exit $rc)" "stderr: ${err:0:400}"
fi
# A run that hangs after step 14 (never reaching its check) stops at once on a later
# signal; the files of its validation at step 10 stay whole. Signals every 0.5 s until it
# exits (those within 1 s of the hook's own count as the same request), 240 s at most.
BRICK_TEST_INTERRUPT_AT_STEP=14 BRICK_TEST_INTERRUPT_REPEAT=hang "$brick" train-lm "${lm[@]}" --out "$tmp/g.safetensors" \
    >"$tmp/out" 2>"$tmp/err" &
bg_pid=$!
wait_for 'test hook: hanging' "$tmp/err" # (lib.sh)
cp "$tmp/g.safetensors" "$tmp/g10.safetensors" 2>/dev/null
interrupt_until_gone
if [ "$rc" -eq 130 ] && grep -q "brick train-lm: stopped at once by a second signal" <<<"$err" &&
    cmp -s "$tmp/g.safetensors" "$tmp/g10.safetensors" && grep -aq '"brick.step":"10"' "$tmp/g.ckpt.safetensors"; then
    ok "a hung run stops on a later signal: exit 130 at once ($sent sent), step 10's files untouched"
else
    bad "a hung run and a second signal" "exit $rc after $sent signals" "stderr: ${err:0:400}"
fi

# ---- a new run does not replace an earlier one's files; --force does -------------------------

run "$brick" train-lm "${lm[@]}" --out "$ref"
if [ "$rc" -eq 2 ] && [ "$(grep -c . <<<"$err")" -eq 1 ] &&
    grep -q "$ref exists (an earlier run's?): give --force to replace it, --resume $tmp/ref.ckpt.safetensors" <<<"$err"; then
    ok "an existing --out is refused (exit 2, one line naming --force and --resume)"
else
    bad "existing --out (exit $rc)" "stderr: ${err:0:400}"
fi
rm -f "$tmp/c.safetensors"
touch "$tmp/c.ckpt.safetensors"
run "$brick" train-lm "${lm[@]}" --out "$tmp/c.safetensors"
if [ "$rc" -eq 2 ] && grep -q "c.ckpt.safetensors exists" <<<"$err"; then ok "an existing checkpoint alone is refused too"; else bad "existing checkpoint (exit $rc)" "stderr: ${err:0:400}"; fi
run "$brick" train-lm "${lm[@]}" --steps 3 --out "$ref" --force
if [ "$rc" -eq 0 ] && grep -q '^final: ' <<<"$out"; then ok "--force replaces it"; else bad "--force (exit $rc)" "stderr: ${err:0:400}"; fi

# ---- a resumed run keeps its settings ----------------------------------------------------------

run env BRICK_TEST_INTERRUPT_AT_STEP=5 "$brick" train-lm "${lm[@]}" --out "$tmp/d.safetensors"
usage_case() { # usage_case DESC PATTERN ARGS...: exit 2, one line matching PATTERN
    local desc=$1 pat=$2
    shift 2
    run "$brick" "$@"
    if [ "$rc" -eq 2 ] && [ "$(grep -c . <<<"$err")" -eq 1 ] && grep -q -- "$pat" <<<"$err"; then
        ok "resume: $desc (exit 2)"
    else
        bad "resume: $desc (exit $rc)" "stderr: ${err:0:400}"
    fi
}
ck=$tmp/d.ckpt.safetensors
cp "$ck" "$tmp/d5.ckpt.safetensors" # (step 5 of 30, for the hostile copies below)
usage_case "another --lr" "--lr differs from the checkpoint's 0.01" train-lm --resume "$ck" --lr 0.5
usage_case "another --context" "--context differs from the checkpoint's 32" train-lm --resume "$ck" --context 16
usage_case "another --arch" "--arch differs from the checkpoint's transformer" train-lm --resume "$ck" --arch gru
usage_case "--steps not above the steps done" "--steps 4 is not more than the 5 steps" train-lm --resume "$ck" --steps 4
cp "$ck" "$tmp/e.bin"
usage_case "a checkpoint name without --out" "give --out" train-lm --resume "$tmp/e.bin"
run "$brick" train-lm --resume "$ref"
if [ "$rc" -eq 1 ] && grep -q "not a brick train-lm checkpoint (brick.format is brick-lm-1)" <<<"$err"; then
    ok "resume: a model file is not a checkpoint (exit 1)"
else
    bad "resume from a model file (exit $rc)" "stderr: ${err:0:400}"
fi
run "$brick" train-lm --resume "$ck" --steps 12 --eval-every 0
if [ "$rc" -eq 0 ] && grep -q "resuming $ck after step 5 of 12" <<<"$out" && grep -q '^training: 12 steps' <<<"$out"; then
    ok "resume: --steps may grow and --eval-every change"
else
    bad "resume with more --steps (exit $rc)" "stdout: ${out:0:400}" "stderr: ${err:0:400}"
fi

# ---- a hostile checkpoint: every value checked, refused (exit 1) with the key -------------------
# (crafted from d's checkpoint after step 5 with tests/craft_safetensors.py: plain python3,
# skipped without it)

if "$py" -c '' 2>/dev/null; then
    refused() { # refused NAME PATTERN EDIT...: a copy of $ck with EDITs is refused, nothing written
        local name=$1 pat=$2
        shift 2
        rm -f "$tmp/h.safetensors"
        "$py" tests/craft_safetensors.py "$tmp/d5.ckpt.safetensors" "$tmp/h.ckpt.safetensors" "$@" || {
            bad "$name" "craft failed"
            return
        }
        run "$brick" train-lm --resume "$tmp/h.ckpt.safetensors"
        if [ "$rc" -eq 1 ] && [ "$(grep -c . <<<"$err")" -eq 1 ] && grep -q -- "$pat" <<<"$err" && [ ! -e "$tmp/h.safetensors" ]; then
            ok "hostile checkpoint: $name (exit 1)"
        else
            bad "hostile checkpoint: $name (exit $rc)" "stderr: ${err:0:400}"
        fi
    }
    "$py" tests/craft_safetensors.py "$tmp/d5.ckpt.safetensors" "$tmp/same.ckpt.safetensors"
    run "$brick" train-lm --resume "$tmp/same.ckpt.safetensors" --steps 6
    check "an unchanged rewritten checkpoint resumes (the crafting keeps it valid)" '[ "$rc" -eq 0 ]'
    refused "batch size 2^61" 'metadata brick.batch_size "2305843009213693952" must be an integer in 1..65536 (as --batch-size)' \
        brick.batch_size=2305843009213693952
    refused "an unknown arch" 'metadata brick.lm.arch "mamba" must be one of transformer, lstm, gru' brick.lm.arch=mamba
    refused "a generator state that is not one" 'metadata brick.lm.window_rng "zz" is not a generator state' brick.lm.window_rng=zz
    refused "step past steps" 'metadata brick.step 40 is more than brick.steps 30' brick.step=40
    refused "heads not dividing d_model" 'brick.lm.d_model 32 is not divisible by brick.lm.heads 3' brick.lm.heads=3
    refused "an escape sequence in the log" 'metadata brick.lm.log "\\x1b\[31m" is not rows of the log' $'brick.lm.log=\e[31m'
    refused "an escape sequence in the text's path" 'metadata brick.lm.text ".*\\x1b.*" is not a plain path' $'brick.lm.text=a\e[31m.txt'
    refused "a model file's format" 'not a brick train-lm checkpoint (brick.format is brick-lm-1)' brick.format=brick-lm-1
    refused "another vocabulary" 'trained on .* characters of another vocabulary or length' brick.lm.text_chars=12
    refused "a NaN weight" 'holds a non-finite value' nan:head.weight
else
    skip "hostile train-lm checkpoints" "no python3"
fi

# ---- a real SIGTERM from outside ------------------------------------------------------------------

long=("${lm[@]}")
long[${#long[@]}]=--steps
long[${#long[@]}]=1000000
"$brick" train-lm "${long[@]}" --out "$tmp/t.model" >"$tmp/out" 2>"$tmp/err" &
bg_pid=$!
wait_for '^step  *10 ' "$tmp/out" # the first validation's line: training has begun
kill -TERM "$bg_pid" 2>/dev/null
wait "$bg_pid"
rc=$?
bg_pid=
err=$(cat "$tmp/err")
if [ "$rc" -eq 143 ] && grep -Eq "interrupted by SIGTERM after step [0-9]+ of 1000000: (saved the checkpoint|the checkpoint .* holds it)" <<<"$err" &&
    grep -q "to continue: brick train-lm --resume $tmp/t.model.ckpt.safetensors --out $tmp/t.model$" <<<"$err"; then
    ok "kill -TERM: exit 143, checkpoint saved, the printed command carries --out"
else
    bad "kill -TERM (exit $rc, expected 143)" "stderr: ${err:0:400}"
fi
done_steps=$(grep -o 'after step [0-9]*' <<<"$err" | grep -o '[0-9]*$')
run "$brick" train-lm --resume "$tmp/t.model.ckpt.safetensors" --out "$tmp/t.model" --steps $((${done_steps:-0} + 2)) --eval-every 0
if [ "$rc" -eq 0 ] && grep -q '^final: ' <<<"$out"; then ok "kill -TERM: the checkpoint resumes"; else bad "resume after kill -TERM (exit $rc)" "stderr: ${err:0:400}"; fi

# ---- the progress bar under a terminal (when util-linux `script` exists) -----------------------

if command -v script >/dev/null 2>&1; then
    script -qec "$brick train-lm ${lm[*]} --steps 12 --eval-every 6 --out $tmp/p.safetensors" /dev/null >"$tmp/tty" 2>&1 </dev/null
    rc=$?
    if [ "$rc" -eq 0 ] && grep -q $'\r' "$tmp/tty" && grep -aq 'steps 7-12/12 .*tokens/s' "$tmp/tty" && grep -q '\[####' "$tmp/tty"; then
        ok "progress bar on a terminal (steps 7-12/12, tokens/s)"
    else
        bad "progress bar on a terminal" "exit $rc: $(head -c 400 "$tmp/tty" | tr '\r' '|')"
    fi
else
    skip "progress bar test" "no util-linux script"
fi
run "$brick" train-lm "${lm[@]}" --steps 3 --out "$tmp/q.safetensors"
if [[ $out$err != *$'\r'* ]]; then ok "no progress bar when not a terminal"; else bad "\\r in non-tty output"; fi

bk_done
