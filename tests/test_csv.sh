#!/usr/bin/env bash
# test_csv.sh - `brick train` and `brick eval` on CSV tables (--data DIR with train.csv and
# test.csv), end to end, on small tables generated here with a fixed seed.
#
#   bash tests/test_csv.sh            (scripts/run_tests.sh runs it)
#
# Checks: classification on two well separated blobs reaches test accuracy >= 0.95 (a
# model that learned nothing scores about 0.5); regression of y = 3 a - 2 b + 10 (+ small
# noise) reaches test RMSE below 1.5 with targets whose std is about 20 (predicting the
# mean scores about 20); the standardisation and task are in the model file, and eval
# reproduces the final line of train; --target picks a column; the auto task; the log's
# columns. Errors: a malformed table fails with exit 1 naming the file, line and column;
# usage errors (exit 2) for --task/--target without a table and --early-stop-on acc with
# regression; eval on the wrong kind of data (exit 1, as for IDX data of another shape). IDX
# files with a classes.txt: its names in the model file and eval, a short one refused.
set -u
source "$(dirname "$0")/lib.sh"
bk_setup

# gen DIR KIND: train.csv (200 rows) and test.csv (100 rows) of KIND blobs|linear.
gen() {
    mkdir -p "$1"
    "$py" - "$1" "$2" <<'EOF'
import random, sys
d, kind = sys.argv[1], sys.argv[2]
r = random.Random(7)
for name, n in (("train.csv", 200), ("test.csv", 100)):
    with open(f"{d}/{name}", "w") as f:
        if kind == "blobs":  # class 2: around (30, -5), class 5: around (34, -1); noise 1
            f.write("a,b,kind\n")
            for i in range(n):
                c = (2, 5)[i % 2]
                f.write("%.4f,%.4f,%d\n" % (30 + (c - 2) * 4 / 3 + r.gauss(0, 1), -5 + (c - 2) * 4 / 3 + r.gauss(0, 1), c))
        else:  # y in the first column, a and b after it
            f.write("y,a,b\n")
            for i in range(n):
                a, b = r.uniform(-10, 10), r.uniform(-10, 10)
                f.write("%.4f,%.4f,%.4f\n" % (3 * a - 2 * b + 10 + r.gauss(0, 0.3), a, b))
EOF
}
# meta FILE KEY: a metadata value of a safetensors file
meta() {
    "$py" -c 'import json, struct, sys
f = open(sys.argv[1], "rb")
n = struct.unpack("<Q", f.read(8))[0]
print(json.loads(f.read(n))["__metadata__"].get(sys.argv[2], "(none)"))' "$1" "$2"
}
gen "$tmp/blobs" blobs
gen "$tmp/lin" linear
m=$tmp/m.safetensors

# ---- classification ------------------------------------------------------------------------
run "$brick" train --data "$tmp/blobs" --out "$m" --epochs 15 --batch-size 16 --lr 0.1
acc=$(sed -n 's/^final test accuracy \([0-9.]*\) (100 test rows)$/\1/p' <<<"$out")
check "classification: trains (exit 0), 2 classes from the data" \
    '[ "$rc" -eq 0 ] && grep -q "200 training and 100 test rows of shape (2), 2 classes" <<<"$out"'
check "classification: test accuracy $acc >= 0.95" '[ -n "$acc" ] && awk "BEGIN { exit !($acc >= 0.95) }"'
check "classification: class names 2,5 and the standardisation in the model file" \
    '[ "$(meta "$m" brick.class_names)" = 2,5 ] && [ "$(meta "$m" brick.task)" = classification ] &&
     [[ $(meta "$m" brick.feature_mean) =~ ^3[123]\.[0-9]*,-[234]\.[0-9]*$ ]] &&
     [[ $(meta "$m" brick.feature_std) =~ ^[123]\.[0-9]*,[123]\.[0-9]*$ ]]'
expect "eval: the same accuracy, classes by value" 0 "test accuracy $acc \(.*\n?.*" "$brick" eval "$m" --data "$tmp/blobs"
check "eval: confusion matrix rows named 2 and 5" 'grep -q "^  0 2 " <<<"$out" && grep -q "^  1 5 " <<<"$out"'
expect "predict --table: rows with their classes and the truth" 0 "^#1 \(true: 5\): 5 [01]\.[0-9]{4}, 2 [01]\.[0-9]{4}$" \
    "$brick" predict "$m" --table "$tmp/blobs" --index 1 --count 2
usage "predict --table past the end" "brick predict" "--index 100 --count 1 is past the end of .*test.csv \(100 rows\)" \
    "$brick" predict "$m" --table "$tmp/blobs" --index 100
expect "eval on IDX data: exit 1" 1 "trained on a CSV table, but .* holds no train.csv" \
    "$brick" eval "$m" --data data/fashion-mnist-subset

# ---- regression ------------------------------------------------------------------------
run "$brick" train --data "$tmp/lin" --target y --out "$m" --force --epochs 30 --batch-size 16 --lr 0.01
rmse=$(sed -n 's/^final test rmse \([0-9.]*\)  test mae \([0-9.]*\) (100 test rows)$/\1/p' <<<"$out")
check "regression: trains (auto task: fractional targets), 2 features" \
    '[ "$rc" -eq 0 ] && grep -q "200 training and 100 test rows of 2 features, regression" <<<"$out"'
check "regression: test rmse $rmse < 1.5 (target std about 20)" '[ -n "$rmse" ] && awk "BEGIN { exit !($rmse < 1.5) }"'
check "regression: the log has rmse and mae columns" \
    'head -n 1 "$tmp/m.csv" | grep -qx "epoch,train_loss,test_loss,test_rmse,test_mae,lr,seconds" &&
     [ "$(wc -l <"$tmp/m.csv")" -eq 31 ]'
check "regression: target and its standardisation in the model file" \
    '[ "$(meta "$m" brick.target)" = y ] && [[ $(meta "$m" brick.target_std) =~ ^(19|2[0-9])\.[0-9]*$ ]] &&
     [ "$(meta "$m" brick.task)" = regression ] && [ "$(meta "$m" brick.n_classes)" = 1 ]'
expect "eval: the same rmse" 0 "test rmse $rmse  test mae" "$brick" eval "$m" --data "$tmp/lin"
expect "predict --table: a regression's values in the target's units" 0 "^#0 -?[0-9.]+ \(true: -?[0-9.]+\)$" \
    "$brick" predict "$m" --table "$tmp/lin" --count 1
expect "regression --resume goes on" 0 "final test rmse" "$brick" train --resume "$tmp/m.ckpt.safetensors" --epochs 31
expect "the default target (last column, b) is a regression too" 0 "final test rmse" \
    "$brick" train --data "$tmp/lin" --out "$m" --force --epochs 1
expect "--task classification with fractional targets: exit 1 naming the cell" 1 \
    "csv: .*/lin/train.csv: line 2, column 1 \(y\): target .* is not an integer" \
    "$brick" train --data "$tmp/lin" --target y --task classification --out "$m" --force --epochs 1

# ---- errors ------------------------------------------------------------------------------
mkdir -p "$tmp/bad"
cp "$tmp/blobs/test.csv" "$tmp/bad/test.csv"
bad_table() { # NAME TRAIN-TEXT PATTERN
    printf '%b' "$2" >"$tmp/bad/train.csv"
    expect "malformed: $1" 1 "^brick train: csv: .*/bad/train.csv: $3" \
        "$brick" train --data "$tmp/bad" --out "$m" --force --epochs 1
}
bad_table "ragged row" 'a,b,kind\n1,2,2\n3,4\n' "line 3: 2 cells, but the header has 3 columns"
bad_table "non-numeric cell" 'a,b,kind\n1,two,2\n' "line 2, column 2 \(b\): \"two\" is not a number"
bad_table "NaN cell" 'a,b,kind\n1,2,2\nnan,2,5\n' "line 3, column 1 \(a\): \"nan\" is not a finite"
bad_table "infinite cell" 'a,b,kind\n1,inf,2\n' "line 2, column 2 \(b\): \"inf\" is not a finite"
bad_table "empty file" '' "the file is empty"
bad_table "header only" 'a,b,kind\n' "no data rows \(only the header"
expect "missing target column" 1 "csv: .*/blobs/train.csv: no target column named \"c\" in the header \(columns: a, b, kind\)" \
    "$brick" train --data "$tmp/blobs" --target c --out "$m" --force --epochs 1
mkdir -p "$tmp/half"
cp "$tmp/blobs/train.csv" "$tmp/half/"
usage "train.csv without test.csv" "brick train" "needs both train.csv and test.csv; test.csv is missing" \
    "$brick" train --data "$tmp/half" --out "$m" --force
usage "--task without a table" "brick train" "--task is for a CSV table" \
    "$brick" train --data data/fashion-mnist-subset --task regression --out "$m" --force
usage "--task with a bad word" "brick train" "--task" "$brick" train --task maybe
expect "regression with --accumulate 3 (the squared error summed per micro-batch)" 0 "final test rmse" \
    "$brick" train --data "$tmp/lin" --accumulate 3 --out "$m" --force --epochs 1
usage "regression with --early-stop-on acc" "brick train" "--early-stop-on acc: not for regression" \
    "$brick" train --data "$tmp/lin" --early-stop 2 --early-stop-on acc --out "$m" --force --epochs 1
run "$brick" train --data "$tmp/lin" --target y --keep-best --out "$m" --force --epochs 4 --batch-size 16 --lr 0.01
best=$(sed -n 's/^best epoch \([0-9]\) (test rmse \([0-9.]*\)): .*best.safetensors$/\1 \2/p' <<<"$out")
lowest=$(sed -n 's/^epoch \([0-9]\)\/4 .* test rmse \([0-9.]*\) .*/\2 \1/p' <<<"$out" | sort -g -k1,1 -s | head -n 1)
check "regression --keep-best: the epoch of the lowest test rmse ($best; ${lowest#* } ${lowest% *})" \
    '[ "$rc" -eq 0 ] && [ -n "$best" ] && [ "$best" = "${lowest#* } ${lowest% *}" ] && [ -f "$tmp/m.best.safetensors" ]'

# ---- IDX files with a names file (another data set in MNIST's format) -------------------------
mkdir -p "$tmp/named"
cp data/fashion-mnist-subset/*-ubyte.gz "$tmp/named/"
printf '%s\n' zero one two three four five six seven eight nine >"$tmp/named/classes.txt"
run "$brick" train --data "$tmp/named" --model softmax --out "$m" --force --epochs 1
check "IDX + classes.txt: its names in the model file" \
    '[ "$rc" -eq 0 ] && [ "$(meta "$m" brick.class_names)" = zero,one,two,three,four,five,six,seven,eight,nine ]'
expect "IDX + classes.txt: eval names the rows" 0 "  9 nine " "$brick" eval "$m" --data "$tmp/named"
printf 'a\nb\n' >"$tmp/named/classes.txt"
expect "IDX + a short classes.txt: exit 1 naming it" 1 "classes.txt: 2 names, but sample 0 has label 9" \
    "$brick" train --data "$tmp/named" --model softmax --out "$m" --force --epochs 1

bk_done
