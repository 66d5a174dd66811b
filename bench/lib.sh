# lib.sh - what the shell benchmarks in bench/ share. Each script cds to the repository
# root and then sources it: `. bench/lib.sh`. Defines functions only.

# The script's manual: its opening comment (line 2 up to `set ...`), without the '# '.
bench_usage() { sed -n '2,/^set /{/^set /d;s/^# \{0,1\}//;p}' "$0"; }

# bench_opt "NAME..." ARGS...: when ARGS starts with --NAME VALUE for one of the NAMEs, sets
# the variable NAME (dashes as underscores) to VALUE and returns 0 (the caller shifts 2);
# returns 1 for any other argument. A missing VALUE exits 2 with a message.
bench_opt() {
    local names=$1 n
    shift
    for n in $names; do
        if [ "$1" = "--$n" ]; then
            [ $# -ge 2 ] || { echo "$(basename "$0"): $1 needs a value" >&2; exit 2; }
            printf -v "${n//-/_}" '%s' "$2"
            return 0
        fi
    done
    return 1
}

# bench_arg ARG NAME...: an argument that is not an option with a value (bench_opt): -h or
# --help prints the manual and exits 0; another -X exits 2 (unknown option); anything else
# is positional: it sets the first of the variables NAME... that is empty, or exits 2 when
# none is.
bench_arg() {
    local arg=$1 n
    shift
    case $arg in
        -h | --help) bench_usage; exit 0 ;;
        -*) echo "$(basename "$0"): unknown option '$arg' (see --help)" >&2; exit 2 ;;
    esac
    for n in "$@"; do
        if [ -z "${!n}" ]; then
            printf -v "$n" '%s' "$arg"
            return 0
        fi
    done
    echo "$(basename "$0"): too many arguments at '$arg' (see --help)" >&2
    exit 2
}

# The median of the numbers on stdin (one or more per line, separated by blanks).
median() {
    tr -s ' \t' '\n\n' | grep . | sort -g |
        awk '{v[NR] = $1} END {if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2}'
}

# The 1-minute load average.
load1() { cut -d' ' -f1 /proc/loadavg; }

# The CPU's model name, as every quoted number must carry it.
cpu_model() { sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1; }

# bench_tmp NAME: sets tmp to a fresh /tmp/brick-NAME-XXXXXX directory, removed at exit;
# exits the script if none can be made.
bench_tmp() {
    tmp=$(mktemp -d "/tmp/brick-$1-XXXXXX") || exit 1
    trap 'rm -rf "$tmp"' EXIT
}

# bench_sides SCRIPT: brick=${BRICK:-build/brick} (built first if missing) and
# python=${BRICK_PYTHON:-/usr/bin/python3}, which must import torch and numpy; otherwise
# exits 1 with a message that names SCRIPT.
bench_sides() {
    brick=${BRICK:-build/brick}
    python=${BRICK_PYTHON:-/usr/bin/python3}
    if [ ! -x "$brick" ]; then
        make -s -j2 "$brick" || { echo "$1: cannot build $brick" >&2; exit 1; }
    fi
    if ! "$python" -c 'import torch, numpy' 2>/dev/null; then
        echo "$1: $python cannot import torch and numpy (apt-get install python3-torch)" >&2
        exit 1
    fi
}

# bench_keep DIR: sets tmp_keep, where a run's files go: DIR (made if needed; --keep), or
# $tmp (bench_tmp) when DIR is empty.
bench_keep() {
    tmp_keep=${1:-$tmp}
    mkdir -p "$tmp_keep" || exit 1
}

# load_report FILE: sets load_mean to the mean (%.2f) of the 1-minute load averages in FILE
# (one a line, recorded before each run) and prints the line that says how loaded the
# machine was: their mean, min and max, and the load averages at the end.
load_report() {
    load_mean=$(awk '{s += $1} END {printf "%.2f", s / NR}' "$1")
    printf 'load average (1 min) before the runs: mean %s, min %s, max %s; at the end %s\n' "$load_mean" \
        "$(sort -g "$1" | head -n 1)" "$(sort -g "$1" | tail -n 1)" "$(cut -d' ' -f1-3 /proc/loadavg)"
}

# best_threads ARRAY CMP SIDE: the thread count in $threads whose ARRAY[SIDE-t] is best: with
# CMP '<' the smallest (seconds), with '>' the largest (a rate); the first of equals.
best_threads() {
    local -n of=$1
    local best='' t
    for t in $threads; do
        if [ -z "$best" ] || awk "BEGIN {exit !(${of[$3-$t]} $2 ${of[$3-$best]})}"; then
            best=$t
        fi
    done
    echo "$best"
}

# repro_check A B WHAT: two runs' model files. Sets repro_result to identical or DIFFERENT,
# and says so (WHAT: the runs' settings), when B exists; otherwise sets it to skipped and
# returns 1.
repro_check() {
    repro_result=skipped
    [ -e "$2" ] || return 1
    if cmp -s "$1" "$2"; then
        repro_result=identical
        echo "reproducible: two brick runs ($3) wrote identical model files"
    else
        repro_result=DIFFERENT
        echo "NOT REPRODUCIBLE: $1 and $2 differ: $(cmp "$1" "$2" 2>&1)"
    fi
}
