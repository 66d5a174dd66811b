#!/usr/bin/env bash
# format_check.sh - are brick's C files formatted as .clang-format says?
#
#   scripts/format_check.sh [--diff] [FILE...]
#
# Checks FILE..., or every tracked *.c and *.h under src/ include/ tools/ tests/ examples/
# bench/, with clang-format (CLANG_FORMAT, default clang-format; the style is written for
# version 14). Lists the files that clang-format would change, one a line, and exits 1 if
# there are any (--diff also prints what it would change); exits 0 when every file is
# formatted, 2 when clang-format is missing. It changes no file: to format one, run
# `clang-format -i FILE`.
set -u

cd "$(dirname "$0")/.." || exit 2
cf=${CLANG_FORMAT:-clang-format}
show_diff=false
if [ "${1:-}" = "--diff" ]; then
    show_diff=true
    shift
fi
case "${1:-}" in -h | --help)
    sed -n '2,/^set -u/p' "$0" | sed '$d; s/^# \{0,1\}//'
    exit 0
    ;;
esac
if ! command -v "$cf" >/dev/null; then
    echo "format_check: $cf not found (apt-get install clang-format)" >&2
    exit 2
fi
if [ $# -gt 0 ]; then
    files=("$@")
else
    mapfile -t files < <(git ls-files -- 'src/*.[ch]' 'include/*.h' 'tools/*.[ch]' 'tests/*.[ch]' \
        'examples/*.[ch]' 'bench/*.[ch]' 'fuzz/*.[ch]')
fi
unformatted=0
for f in "${files[@]}"; do
    if ! "$cf" --style=file "$f" | cmp -s "$f" -; then
        echo "$f"
        unformatted=$((unformatted + 1))
        if $show_diff; then "$cf" --style=file "$f" | diff -u "$f" - | sed '1,2d'; fi
    fi
done
if [ "$unformatted" -gt 0 ]; then
    echo "format_check: $unformatted of ${#files[@]} files are not formatted (clang-format -i FILE formats one)" >&2
    exit 1
fi
echo "format_check: ${#files[@]} files formatted"
