#!/usr/bin/env bash
# test_hostile_cli.sh - hostile files, checkpoints and names through the `brick` command
# (issue 11, part B): no crash, no hang, no silent change.
#
#   bash tests/test_hostile_cli.sh    (scripts/run_tests.sh runs it; BRICK_BUILD=dir picks
#                                      the build, default build/)
#
# Checks:
#   - `brick generate` on a classifier says which format the file has (it read freed memory);
#   - a FIFO named like a data file (with a valid .gz beside it), like a model or like an
#     image: train, eval, summary, predict and train-lm fail at once with a clear message
#     (each run is under `timeout`: the data directory case blocked forever; a FIFO named
#     on the command line was refused as "no such file");
#   - a checkpoint whose generator state is 0:0 (even increment): train --resume fails with
#     a message naming it (it looped forever in the loader's shuffle);
#   - class names and tensor names holding a newline and ESC sequences: eval, predict and the
#     error messages print them escaped; no raw control byte reaches the output, and no
#     forged line appears;
#   - the leftovers of killed runs next to the CSV and SVG are removed by the next run's
#     writes (only the same process id's was, before).
# Hostile files are made by rewriting a real file's header with perl (Debian's perl-base).
# Speaks TAP (tests/lib.sh); exits 1 on any failure.
set -u
source "$(dirname "$0")/lib.sh"
bk_setup
data=data/fashion-mnist-subset
limit=${BRICK_HANG_LIMIT:-300} # seconds before a run counts as hung (valgrind is slow)

# hang_run CMD...: lib.sh's run under timeout, with no stdin ($rc 124: it hung).
hang_run() { run timeout -k 10 "$limit" "$@" </dev/null; }

# no_control NAME: stdout and stderr of the last run hold no control byte but newline (no
# ESC, no CR, no BEL...). (LC_ALL=C: bytes, whatever the locale.)
no_control() {
    if LC_ALL=C grep -q $'[\x01-\x09\x0b-\x1f\x7f]' "$tmp/out" "$tmp/err"; then
        bad "$1: a control byte reached the output" "$(LC_ALL=C grep -n $'[\x01-\x09\x0b-\x1f\x7f]' "$tmp/out" "$tmp/err" | od -c | head -n 5)"
    else
        ok "$1: no control byte in the output"
    fi
}

# rewrite_header FILE PERL: applies the perl substitution(s) PERL to the JSON header of the
# safetensors FILE ($h) and writes the file back with the new header length.
rewrite_header() {
    perl -e '
        my ($f, $code) = @ARGV;
        open(my $fh, "<:raw", $f) or die "$f: $!";
        local $/;
        my $d = <$fh>;
        close $fh;
        my $n = unpack("Q<", substr($d, 0, 8));
        my $h = substr($d, 8, $n);
        my $rest = substr($d, 8 + $n);
        ($_ = $h) =~ s/\s+$//;
        my $before = $_;
        eval $code;
        die $@ if $@;
        die "rewrite_header: $code changed nothing\n" if $_ eq $before;
        $h = $_;
        $h .= " " while length($h) % 8;
        open($fh, ">:raw", $f) or die "$f: $!";
        print $fh pack("Q<", length $h), $h, $rest;
        close $fh;' "$1" "$2"
}

# ---- a model and a checkpoint to start from ------------------------------------------------

model=$tmp/m.safetensors
hang_run "$brick" train --model softmax --data "$data" --epochs 1 --batch-size 256 --lr 0.1 --seed 1 --threads 1 --out "$model"
if [ "$rc" -eq 0 ] && [ -s "$model" ] && [ -s "$tmp/m.ckpt.safetensors" ]; then
    ok "a softmax model to start from"
else
    bad "training the starting model" "exit $rc" "stderr: ${err:0:400}"
fi

# ---- generate on a classifier: the message quoted freed memory ------------------------------

hang_run "$brick" generate "$model"
if [ "$rc" -eq 1 ] && grep -q "not a language model written by brick train-lm (format brick-model-1)" <<<"$err"; then
    ok "generate on a classifier names its format"
else
    bad "generate on a classifier" "exit $rc" "stderr: ${err:0:300}"
fi
no_control "generate on a classifier"

# ---- FIFOs named like data, models and images -----------------------------------------------

fifo_data=$tmp/fifo-data
mkdir -p "$fifo_data"
cp "$data"/*.gz "$fifo_data"/
mkfifo "$fifo_data/t10k-images-idx3-ubyte"
hang_run "$brick" eval "$model" --data "$fifo_data"
if [ "$rc" -eq 1 ] && grep -q "t10k-images-idx3-ubyte: not a regular file (a FIFO)" <<<"$err"; then
    ok "eval: a FIFO images file beside its .gz fails at once"
else
    bad "eval with a FIFO images file" "exit $rc (124: it hung)" "stderr: ${err:0:300}"
fi
hang_run "$brick" train --model softmax --data "$fifo_data" --epochs 1 --out "$tmp/f.safetensors"
if [ "$rc" -eq 1 ] && grep -q "not a regular file (a FIFO)" <<<"$err"; then
    ok "train: a FIFO images file beside its .gz fails at once"
else
    bad "train with a FIFO images file" "exit $rc (124: it hung)" "stderr: ${err:0:300}"
fi

mkfifo "$tmp/fifo.safetensors" "$tmp/fifo.pgm" "$tmp/fifo.txt"
for cmd in eval summary predict generate; do
    extra=()
    [ $cmd = predict ] && extra=("$tmp/fifo.pgm")
    hang_run "$brick" $cmd "$tmp/fifo.safetensors" "${extra[@]}"
    if [ "$rc" -eq 2 ] && grep -q "fifo.safetensors: not a regular file" <<<"$err"; then
        ok "$cmd: a FIFO for the model file fails at once (exit $rc)"
    else
        bad "$cmd with a FIFO model file" "exit $rc (124: it hung)" "stderr: ${err:0:300}"
    fi
done
hang_run "$brick" predict "$model" "$tmp/fifo.pgm"
if [ "$rc" -eq 2 ] && grep -q "fifo.pgm: not a regular file" <<<"$err"; then
    ok "predict: a FIFO for an image fails at once (exit $rc)"
else
    bad "predict with a FIFO image" "exit $rc (124: it hung)" "stderr: ${err:0:300}"
fi
hang_run "$brick" train-lm --text "$tmp/fifo.txt" --steps 1 --out "$tmp/lm.safetensors"
if [ "$rc" -eq 2 ] && grep -q "\-\-text $tmp/fifo.txt: not a regular file" <<<"$err"; then
    ok "train-lm: a FIFO for the text fails at once (exit $rc)"
else
    bad "train-lm with a FIFO text" "exit $rc (124: it hung)" "stderr: ${err:0:300}"
fi

# ---- a generator state with an even increment ------------------------------------------------

for key in loader_rng model_rng; do
    ck=$tmp/rng-$key.ckpt.safetensors
    cp "$tmp/m.ckpt.safetensors" "$ck"
    rewrite_header "$ck" 's/"brick\.'"$key"'":"[0-9a-f]*:[0-9a-f]*"/"brick.'"$key"'":"0000000000000000:0000000000000000"/'
    hang_run "$brick" train --resume "$ck" --epochs 2
    if [ "$rc" -eq 1 ] && grep -q "brick\.$key \"0000000000000000:0000000000000000\" is not a generator state .*odd" <<<"$err"; then
        ok "train --resume: brick.$key 0:0 is refused with a message"
    else
        bad "train --resume with brick.$key 0:0" "exit $rc (124: it hung)" "stderr: ${err:0:300}"
    fi
done

# ---- names with newlines and ESC sequences ---------------------------------------------------

evil=$tmp/evil.safetensors
cp "$model" "$evil"
# class 0 holds an ESC sequence, class 1 a newline that would forge a line, class 2 a BEL,
# class 3 a C1 CSI (U+009B), class 4 invalid UTF-8 is impossible in JSON: a bidi override.
rewrite_header "$evil" 's/"brick\.class_names":"[^"]*"/"brick.class_names":"red\\u001b[31mX,x\\nbrick eval: all good,bell\\u0007,c1\\u009b2J,bidi\\u202eevil,5,6,7,8,9"/'
hang_run "$brick" eval "$evil" --data "$data"
if [ "$rc" -eq 0 ] && grep -q 'red\\x1b\[31mX' <<<"$out" && ! grep -q '^brick eval: all good' <<<"$out$err"; then
    ok "eval: class names with ESC and newline print escaped in the confusion matrix"
else
    bad "eval with hostile class names" "exit $rc" "stdout: ${out:0:600}" "stderr: ${err:0:300}"
fi
no_control "eval with hostile class names"
if ! LC_ALL=C grep -q $'\xc2\x9b\|\xe2\x80\xae' "$tmp/out"; then
    ok "eval: C1 controls and bidi overrides print as \\u escapes"
else
    bad "eval: a C1 control or bidi override reached the output"
fi
hang_run "$brick" predict "$evil" --idx "$data/t10k-images-idx3-ubyte.gz" --count 20
if [ "$rc" -eq 0 ] && ! grep -q '^brick eval: all good' <<<"$out$err"; then
    ok "predict: hostile class names forge no line"
else
    bad "predict with hostile class names" "exit $rc" "stdout: ${out:0:300}" "stderr: ${err:0:300}"
fi
no_control "predict with hostile class names"

forged=$tmp/forged.safetensors
cp "$model" "$forged"
rewrite_header "$forged" 's/"1\.bias":/"x\\nbrick eval: all good, accuracy 1.0000\\u001b]0;title\\u0007":/'
hang_run "$brick" eval "$forged" --data "$data"
lines=$(printf '%s\n' "$err" | grep -c '')
if [ "$rc" -eq 1 ] && [ "$lines" -eq 1 ] && grep -q 'unexpected: x\\nbrick eval: all good, accuracy 1.0000\\x1b\]0;title\\x07' <<<"$err"; then
    ok "eval: a tensor name with a newline and ESC is quoted escaped on one line"
else
    bad "eval with a forged tensor name" "exit $rc, $lines stderr lines" "stderr: ${err:0:400}"
fi
no_control "eval with a forged tensor name"

fmt=$tmp/format.safetensors
cp "$model" "$fmt"
rewrite_header "$fmt" 's/"brick\.format":"brick-model-1"/"brick.format":"\\u001b[2Jx\\ny"/'
hang_run "$brick" eval "$fmt" --data "$data"
if [ "$rc" -eq 1 ] && grep -q 'brick.format is "\\x1b\[2Jx\\ny"' <<<"$err"; then
    ok "eval: a hostile brick.format is quoted escaped"
else
    bad "eval with a hostile brick.format" "exit $rc" "stderr: ${err:0:300}"
fi
no_control "eval with a hostile brick.format"
hang_run "$brick" generate "$fmt"
no_control "generate with a hostile brick.format"

# ---- leftovers of killed runs next to the CSV and SVG -----------------------------------------

out_dir=$tmp/leftovers
mkdir -p "$out_dir"
for f in run.csv.tmp.AbCdEf run.svg.tmp.123456 run.safetensors.tmp.Zz9Zz9 run.csv.tmp.1; do
    : >"$out_dir/$f"
done
hang_run "$brick" train --model softmax --data "$data" --epochs 1 --seed 3 --out "$out_dir/run.safetensors"
left=$(cd "$out_dir" && ls | grep '\.tmp\.' | tr '\n' ' ')
if [ "$rc" -eq 0 ] && [ "$left" = "run.csv.tmp.1 " ]; then
    ok "the next run's writes remove the leftovers of killed runs (and only names they make)"
else
    bad "leftover temporary files" "exit $rc" "left: '$left' (want only run.csv.tmp.1)" "stderr: ${err:0:300}"
fi

bk_done
