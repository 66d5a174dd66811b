#!/usr/bin/env bash
# test_dist.sh - `brick train --accumulate N` and data-parallel `mpirun -np P brick train`
# (docs/distributed.md).
#
#   bash tests/test_dist.sh        (scripts/run_tests.sh runs it; BRICK_BUILD=dir picks
#                                   the build, default build/)
#
# One process, always: bad --accumulate / --reduce values are usage errors; a run with
# --accumulate 3 interrupted mid-epoch and resumed (without the flag: the checkpoint's)
# writes the same model file as an uninterrupted one; --accumulate 3 and 4 differ (so
# that the comparisons below can fail).
# With a brick built with MPI and mpirun installed (else skipped, loudly, or with
# BRICK_REQUIRE_MPI=1 a failure; always skipped under a valgrind wrapper): for the MLP and LeNet and P = 2, 3, 4 ranks, `mpirun -np P` writes a model
# file byte-identical (cmp) to one process with --accumulate P, on 602 images in batches of
# 50 (uneven slices; the last batch of 2 leaves ranks without a sample); the checkpoint
# records the world size; regression on a CSV table too (2 ranks); examples/09_data_parallel (the C API in a loop of one's own) gives
# the same weights on 3 and 4 ranks as with 3 and 4 micro-batches; SIGINT on every rank
# saves one mid-epoch checkpoint that resumes to the uninterrupted run's model; a 2-rank checkpoint resumed on 3 ranks equals --accumulate 2
# resumed with --accumulate 3; ranks that built different models stop with an error naming
# both; a rank killed mid-epoch ends the job within a bounded time, naming the rank, and
# the last checkpoint still loads; a rank that fails stops every rank, each exiting 1.
# Speaks TAP (tests/lib.sh); exits 1 on any failure.
set -u
source "$(dirname "$0")/lib.sh"
bk_setup

# A small data set: 602 training images (the last batch of 50 has 2), 200 test images.
if ! "$py" scripts/make_subset.py --src data/fashion-mnist-subset --out "$tmp/data" \
    --train 602 --test 200 >"$tmp/subset.log" 2>&1; then
    bad "make_subset.py" "$(tail -3 "$tmp/subset.log")"
    bk_done
fi
common=(--data "$tmp/data" --epochs 1 --batch-size 50 --threads 1 --force) # (the loops below write the same --out again)

# ---- one process ---------------------------------------------------------------------

run "$brick" train --accumulate 0 "${common[@]}" --out "$tmp/x.safetensors"
if [ "$rc" = 2 ] && [[ $err == *--accumulate* ]]; then ok "--accumulate 0 is a usage error"
else bad "--accumulate 0: exit $rc" "$err"; fi
run "$brick" train --reduce sometimes "${common[@]}" --out "$tmp/x.safetensors"
if [ "$rc" = 2 ] && [[ $err == *"--reduce must be one of deterministic, fast, got 'sometimes'"* ]]; then ok "--reduce sometimes is a usage error"
else bad "--reduce sometimes: exit $rc" "$err"; fi

run "$brick" train --model mlp --accumulate 3 "${common[@]}" --epochs 2 --out "$tmp/a3.safetensors"
a3_rc=$rc
run "$brick" train --model mlp --accumulate 4 "${common[@]}" --out "$tmp/a4.safetensors"
if [ "$a3_rc" = 0 ] && [ "$rc" = 0 ] && ! cmp -s "$tmp/a3.safetensors" "$tmp/a4.safetensors"; then
    ok "--accumulate 3 and 4 train (and differ in the last bits)"
else
    bad "--accumulate 3 / 4: exit $a3_rc / $rc, or identical files" "$err"
fi
BRICK_TEST_INTERRUPT_AT_STEP=17 run "$brick" train --model mlp --accumulate 3 "${common[@]}" \
    --epochs 2 --out "$tmp/i3.safetensors"
i_rc=$rc
run "$brick" train --resume "$tmp/i3.ckpt.safetensors"
if [ "$i_rc" = 130 ] && [ "$rc" = 0 ] && cmp -s "$tmp/a3.safetensors" "$tmp/i3.safetensors"; then
    ok "--accumulate 3 interrupted in epoch 2 and resumed = uninterrupted (byte-identical)"
else
    bad "--accumulate 3 interrupt + resume: exit $i_rc then $rc, or files differ" "$err"
fi
if grep -aq '"brick.accumulate":"3"' "$tmp/i3.ckpt.safetensors"; then
    ok "the checkpoint records brick.accumulate"
else
    bad "no brick.accumulate 3 in the checkpoint"
fi

# ---- ranks ----------------------------------------------------------------------------

skip=""
if ! "$build/brick" --version | grep -q MPI; then
    skip="$build/brick was built without MPI (make MPI=1; scripts/deps.sh installs Open MPI)"
    run "$brick" train --dist "${common[@]}" --out "$tmp/x.safetensors"
    if [ "$rc" = 2 ] && [[ $err == *"built without MPI"* ]]; then ok "--dist without MPI is a usage error"
    else bad "--dist without MPI: exit $rc" "$err"; fi
elif ! command -v mpirun >/dev/null; then
    skip="mpirun is not installed (scripts/deps.sh installs openmpi-bin)"
elif [[ ${BRICK_TEST_WRAPPER:-} == *valgrind* ]]; then
    skip="not under valgrind (Open MPI's own allocations swamp it)"
fi
if [ -n "$skip" ] && [ "${BRICK_REQUIRE_MPI:-0}" = 1 ] && [[ $skip != *valgrind* ]]; then
    bad "BRICK_REQUIRE_MPI=1 but $skip"
elif [ -n "$skip" ]; then
    skip "the multi-process tests" "$skip"
fi
[ -z "$skip" ] || bk_done

# Open MPI keeps some memory to the end of the process: LeakSanitizer is told (a sanitized
# build) to ignore leaks from its libraries only. Those are built without frame pointers,
# so only the slow unwinder finds them in a leak's stack.
export LSAN_OPTIONS="suppressions=$root/tests/lsan_mpi.supp:print_suppressions=0:fast_unwind_on_malloc=0${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
mpi() {
    local np=$1
    shift
    timeout --kill-after=10 120 mpirun --allow-run-as-root --oversubscribe -np "$np" "$@"
}

for model in mlp lenet; do
    for P in 2 3 4; do
        run "$brick" train --model $model --accumulate $P "${common[@]}" --out "$tmp/acc.safetensors"
        a_rc=$rc
        run mpi $P "$brick" train --model $model "${common[@]}" --out "$tmp/mpi.safetensors"
        if [ "$a_rc" = 0 ] && [ "$rc" = 0 ] && cmp -s "$tmp/acc.safetensors" "$tmp/mpi.safetensors"; then
            ok "$model: mpirun -np $P = --accumulate $P (byte-identical model files)"
        else
            bad "$model: mpirun -np $P (exit $rc) vs --accumulate $P (exit $a_rc): files differ" \
                "$(echo "$err" | tail -5)"
        fi
    done
done
if grep -aq '"brick.world_size":"4"' "$tmp/mpi.ckpt.safetensors" &&
    grep -aq '"brick.batch_size":"50"' "$tmp/mpi.ckpt.safetensors"; then
    ok "the checkpoint records the world size and the global batch size"
else
    bad "no brick.world_size 4 / brick.batch_size 50 in the checkpoint"
fi
n_lines=$(echo "$out" | grep -c 'epoch 1/1')
if [ "$n_lines" = 1 ]; then ok "one epoch line from 4 ranks (rank 0 logs)"
else bad "the epoch line is printed $n_lines times" "$out"; fi

# Regression on a CSV table (the squared error summed per slot): the same promise.
mkdir -p "$tmp/table"
"$py" -c 'import random, sys
r = random.Random(3)
for name, n in (("train.csv", 150), ("test.csv", 40)):
    with open(sys.argv[1] + "/" + name, "w") as f:
        f.write("a,b,y\n")
        for _ in range(n):
            a, b = r.uniform(-1, 1), r.uniform(-1, 1)
            f.write("%.5f,%.5f,%.5f\n" % (a, b, 2 * a - b + r.gauss(0, 0.1)))' "$tmp/table"
table=(--data "$tmp/table" --epochs 2 --batch-size 16 --lr 0.05 --threads 1 --force)
run "$brick" train --accumulate 2 "${table[@]}" --out "$tmp/racc.safetensors"
a_rc=$rc
run mpi 2 "$brick" train "${table[@]}" --out "$tmp/rmpi.safetensors"
if [ "$a_rc" = 0 ] && [ "$rc" = 0 ] && grep -q "^final test rmse" <<<"$out" &&
    cmp -s "$tmp/racc.safetensors" "$tmp/rmpi.safetensors"; then
    ok "regression (CSV): mpirun -np 2 = --accumulate 2 (byte-identical model files)"
else
    bad "regression: mpirun -np 2 (exit $rc) vs --accumulate 2 (exit $a_rc): files differ" "$(echo "$err" | tail -5)"
fi

# The C API in a user's loop: examples/09_data_parallel on P ranks = P micro-batches.
for P in 3 4; do
    run "$build/examples/09_data_parallel" $P
    one=$(echo "$out" | sed -n 's/.*fingerprint //p')
    run mpi $P "$build/examples/09_data_parallel"
    many=$(echo "$out" | sed -n 's/.*fingerprint //p')
    if [ "$rc" = 0 ] && [ -n "$one" ] && [ "$one" = "$many" ]; then
        ok "examples/09_data_parallel: $P ranks = $P micro-batches (weights $many)"
    else
        bad "examples/09_data_parallel on $P ranks: exit $rc, weights '$many' vs '$one'" "$err"
    fi
done

# Resuming on another world size: 2 ranks, then 3 = --accumulate 2, then --accumulate 3.
run mpi 2 "$brick" train --model mlp "${common[@]}" --out "$tmp/w2.safetensors"
run mpi 3 "$brick" train --resume "$tmp/w2.ckpt.safetensors" --epochs 2
w_rc=$rc
run "$brick" train --model mlp --accumulate 2 "${common[@]}" --out "$tmp/s2.safetensors"
run "$brick" train --resume "$tmp/s2.ckpt.safetensors" --accumulate 3 --epochs 2
if [ "$w_rc" = 0 ] && [ "$rc" = 0 ] && cmp -s "$tmp/w2.safetensors" "$tmp/s2.safetensors"; then
    ok "a 2-rank checkpoint resumed on 3 ranks = --accumulate 2 resumed with --accumulate 3"
else
    bad "resume on another world size: exit $w_rc / $rc, or files differ" "$err"
fi

# SIGINT on every rank after step 17 (BRICK_TEST_INTERRUPT_AT_STEP): the ranks agree at
# the next step's exchange, rank 0 saves the mid-epoch checkpoint, all exit 130; the resumed
# run ends with the same model file as an uninterrupted 3-rank run.
run mpi 3 "$brick" train --model mlp "${common[@]}" --epochs 2 --out "$tmp/u3.safetensors"
BRICK_TEST_INTERRUPT_AT_STEP=17 run mpi 3 "$brick" train --model mlp "${common[@]}" --epochs 2 \
    --out "$tmp/s3.safetensors"
s_rc=$rc
s_err=$err
run mpi 3 "$brick" train --resume "$tmp/s3.ckpt.safetensors"
if [ "$s_rc" = 130 ] && [[ $s_err == *"rank 0: interrupted by SIGINT in epoch 2"* ]] && [ "$rc" = 0 ] &&
    cmp -s "$tmp/u3.safetensors" "$tmp/s3.safetensors"; then
    ok "SIGINT on 3 ranks: one checkpoint, exit 130, resumed = uninterrupted (byte-identical)"
else
    bad "SIGINT on 3 ranks: exit $s_rc, resume exit $rc, or files differ" "$s_err" "$err"
fi

# Different models on two ranks (MPMD): one clear error naming both.
run mpi 1 "$brick" train --model mlp "${common[@]}" --out "$tmp/x.safetensors" : \
    -np 1 "$brick" train --model mlp:hidden=128 "${common[@]}" --out "$tmp/x.safetensors"
if [ "$rc" != 0 ] && [[ $err == *"rank 0 built mlp:hidden=256"*"rank 1 built mlp:hidden=128"* ]]; then
    ok "different models on the ranks: the error names both"
else
    bad "different models: exit $rc" "$err"
fi

# A rank killed in epoch 2 (step 20 of 13 per epoch): the job ends, the checkpoint of
# epoch 1 loads.
start=$SECONDS
BRICK_TEST_DIST_FAULT=1:20:kill run mpi 3 "$brick" train --model mlp "${common[@]}" --epochs 2 \
    --out "$tmp/k.safetensors"
k_rc=$rc
k_err=$err
took=$((SECONDS - start))
run "$brick" eval "$tmp/k.ckpt.safetensors" --data "$tmp/data"
if [ "$k_rc" != 0 ] && [ "$k_rc" != 124 ] && [ "$took" -lt 100 ] && [[ $k_err == *"rank 1"* ]] &&
    [ "$rc" = 0 ] && grep -aq '"brick.epoch":"1"' "$tmp/k.ckpt.safetensors"; then
    ok "a rank killed mid-epoch: the job stops in ${took}s naming rank 1; epoch 1's checkpoint loads"
else
    bad "a rank killed: exit $k_rc after ${took}s, eval exit $rc" "$k_err"
fi

# A rank whose step fails: every rank stops (exit 1, no abort), rank 0 names it.
BRICK_TEST_DIST_FAULT=2:20:fail run mpi 3 "$brick" train --model mlp "${common[@]}" --epochs 2 \
    --out "$tmp/f.safetensors"
if [ "$rc" = 1 ] && [[ $err == *"rank 0: rank 2 failed in epoch 2, batch 7"* ]] &&
    [[ $err == *"rank 2: epoch 2, batch 7: injected failure"* ]] && [[ $err != *MPI_ABORT* ]]; then
    ok "a rank that fails: every rank stops together, rank 0 names rank 2"
else
    bad "a rank that fails: exit $rc" "$err"
fi

# A diverging loss (the same on every rank): all stop, one message.
run mpi 3 "$brick" train --model mlp "${common[@]}" --lr 1e6 --out "$tmp/d.safetensors"
if [ "$rc" = 1 ] && [ "$(echo "$err" | grep -c 'the loss is')" = 1 ]; then
    ok "a diverging loss stops every rank, with one message"
else
    bad "a diverging loss under mpirun: exit $rc" "$err"
fi

bk_done
