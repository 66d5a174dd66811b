#!/usr/bin/env bash
# test_cli_status.sh - the same mistake gives the same exit status in every command
# (docs/cli.md, "Exit statuses and messages"): a table of mistakes, each tried on every
# command it applies to. 2 for a usage error (a flag, a value, or a path on the command
# line that is not what it must be: missing, a directory for a file, a data directory
# without the files the command reads, an --out that exists or is a directory); 1 for a
# runtime failure (a file that is there but whose contents are refused). Every such run
# prints exactly one line on stderr, "brick <cmd>: ...", and for a usage error the line says
# what is wrong (the pattern of the table).
#
#   bash tests/test_cli_status.sh     (scripts/run_tests.sh runs it; BRICK_BUILD=dir picks
#                                      the build, default build/)
#
# Speaks TAP (tests/lib.sh); exits 1 on any failure.
set -u
source "$(dirname "$0")/lib.sh"
bk_setup
data=data/fashion-mnist-subset
text=data/text/fortunes-sample.txt

# The files of the table: a file that is no model, an existing output, an empty data
# directory, one with the training files only, a directory.
junk=$tmp/junk.safetensors
echo "not a safetensors file" >"$junk"
exists=$tmp/exists.safetensors
echo "an earlier run's" >"$exists"
mkdir -p "$tmp/empty" "$tmp/dir" "$tmp/train-only"
cp "$data"/train-*.gz "$tmp/train-only/"
nope=$tmp/nope.safetensors

# expect STATUS PATTERN ARGS...: `brick ARGS...` exits STATUS with one line on stderr,
# "brick <cmd>: ..." matching PATTERN (a grep -E expression).
expect() {
    local want=$1 pat=$2
    shift 2
    run "$brick" "$@"
    local lines
    lines=$(printf '%s\n' "$err" | grep -c .)
    if [ "$rc" -eq "$want" ] && [ "$lines" -eq 1 ] && [[ $err == "brick $1: "* ]] && grep -Eq -- "$pat" <<<"$err"; then
        ok "exit $want: brick $*"
    else
        bad "brick $*: exit $rc, $lines lines on stderr (want exit $want, one line matching /$pat/)" "stderr: ${err:0:400}"
    fi
}

# ---- usage errors (2) ---------------------------------------------------------------------

# an unknown flag
for cmd in train eval predict summary import train-lm generate models; do
    expect 2 "unknown option '--bogus'|--bogus" "$cmd" --bogus 1
done

# a number that is not one
expect 2 "--epochs" train --epochs x
expect 2 "--batch-size" eval "$junk" --batch-size x
expect 2 "--top" predict "$junk" "$junk" --top x
expect 2 "--batch-size" summary --model mlp --batch-size x
expect 2 "--classes" import --model mlp "$junk" --out "$tmp/i.safetensors" --classes x
expect 2 "--steps" train-lm --steps x
expect 2 "--length" generate "$junk" --length x

# a file named on the command line that does not exist
expect 2 "$nope: no such file" eval "$nope"
expect 2 "$nope: no such file" predict "$nope" "$junk"
expect 2 "$nope: no such file" summary "$nope"
expect 2 "$nope: no such file" import --model mlp "$nope" --out "$tmp/i.safetensors"
expect 2 "$nope: no such file" generate "$nope"
expect 2 "--resume $nope: no such file" train --resume "$nope"
expect 2 "--resume $nope: no such file" train-lm --resume "$nope"
expect 2 "--text $nope: no such file" train-lm --text "$nope"

# a directory where a file must be
expect 2 "$tmp/dir: not a regular file" eval "$tmp/dir"
expect 2 "$tmp/dir: not a regular file" predict "$tmp/dir" "$junk"
expect 2 "$tmp/dir: not a regular file" summary "$tmp/dir"
expect 2 "$tmp/dir: not a regular file" generate "$tmp/dir"
expect 2 "--resume $tmp/dir: not a regular file" train --resume "$tmp/dir"
expect 2 "--resume $tmp/dir: not a regular file" train-lm --resume "$tmp/dir"

# a data directory that does not exist, holds no data set (the message lists the formats), or
# lacks IDX files the command reads (train reads all four, eval the two test files; the
# message names each missing one)
for cmd in train eval; do
    args=(--out "$tmp/o.safetensors") # (what else the command needs)
    [ "$cmd" = eval ] && args=("$junk")
    expect 2 "--data $tmp/none: no such directory" "$cmd" "${args[@]}" --data "$tmp/none"
    expect 2 "--data $tmp/empty: no data set there: expected Fashion-MNIST IDX files .*, CIFAR-10 batches .*, an image folder .* or a CSV table" \
        "$cmd" "${args[@]}" --data "$tmp/empty"
    expect 2 "--data $tmp/train-only: no Fashion-MNIST files there: t10k-images-idx3-ubyte\[\.gz\], t10k-labels-idx1-ubyte\[\.gz\] are missing$" \
        "$cmd" "${args[@]}" --data "$tmp/train-only"
done

# an --out that is a directory, exists (an earlier run's), or is in no directory
expect 2 "--out $tmp/dir is a directory" train --model softmax --data "$data" --epochs 1 --out "$tmp/dir"
expect 2 "--out $tmp/dir is a directory" train-lm --text "$text" --steps 1 --out "$tmp/dir"
expect 2 "--out $tmp/dir is a directory" import --model mlp "$junk" --out "$tmp/dir"
expect 2 "$exists exists" train --model softmax --data "$data" --epochs 1 --out "$exists"
expect 2 "$exists exists" train-lm --text "$text" --steps 1 --out "$exists"
expect 2 "--out $exists exists" import --model mlp "$junk" --out "$exists"
for cmd in train train-lm; do
    expect 2 "--out $tmp/none/m.safetensors: its directory does not exist" "$cmd" --out "$tmp/none/m.safetensors"
done
expect 2 "--out $tmp/none/m.safetensors: its directory does not exist" import --model mlp "$junk" --out "$tmp/none/m.safetensors"

# ---- runtime failures (1): the file is there, its contents are refused --------------------

expect 1 "$junk" eval "$junk" --data "$data"
expect 1 "$junk" predict "$junk" "$junk"
expect 1 "$junk" summary "$junk"
expect 1 "$junk" import --model mlp "$junk" --out "$tmp/i.safetensors"
expect 1 "$junk" generate "$junk"
expect 1 "$junk" train --resume "$junk" --out "$tmp/r.safetensors"
expect 1 "$junk" train-lm --resume "$junk" --out "$tmp/r.safetensors"

bk_done
