#!/usr/bin/env bash
# install_check.sh - checks that an installed brick works for a program outside the tree.
#
#   scripts/install_check.sh        (make variables may be passed in MAKEFLAGS, e.g. BLAS=0)
#
# Installs into a temporary prefix with `make install PREFIX=...` (and runs the installed
# `brick --version` when the CLI exists), then builds
# tests/install/consumer.c with the flags `pkg-config brick` gives, once against the shared
# library (run with LD_LIBRARY_PATH) and once against libbrick.a (`pkg-config --static`),
# runs both and checks their output. Also checks that brick.h compiles as C++, that a
# DESTDIR install lands in the staging directory, and that `make uninstall` removes every
# file. Prints "N passed, M failed" last; exits 1 on any failure.
set -uo pipefail

cd "$(dirname "$0")/.." || exit 2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
prefix=$tmp/prefix
cc=${CC:-cc}
cflags=(-std=c11 -O1 -Wall -Wextra -Wpedantic -Werror)

passed=0
failed=0
pass() { passed=$((passed + 1)); echo "PASS  $*"; }
fail() { failed=$((failed + 1)); echo "FAIL  $*"; }
finish() { echo "$passed passed, $failed failed"; [ "$failed" -eq 0 ]; exit $?; }

if ! make -s install PREFIX="$prefix" >"$tmp/install.log" 2>&1; then
    fail "make install PREFIX=$prefix"
    sed 's/^/    | /' "$tmp/install.log" | tail -n 40
    finish
fi
version=$(sed -n 's/^#define BK_VERSION_STRING "\(.*\)"/\1/p' include/brick.h)
for f in lib/libbrick.a "lib/libbrick.so.$version" lib/libbrick.so.0 lib/libbrick.so \
         include/brick.h include/brick/tensor.h include/brick/dist.h lib/pkgconfig/brick.pc; do
    [ -e "$prefix/$f" ] || fail "make install did not install $f"
done
if [ -n "$(ls tools/*.c 2>/dev/null)" ]; then
    if "$prefix/bin/brick" --version >"$tmp/brick.out" 2>&1; then
        pass "installed CLI: $prefix/bin/brick --version: $(head -n 1 "$tmp/brick.out")"
    else
        fail "installed CLI: $prefix/bin/brick --version"
        sed 's/^/    | /' "$tmp/brick.out"
    fi
fi
if [ -x "$prefix/bin/brick" ]; then
    # The installed CLI finds what ships with it (<prefix>/share/brick) from any directory.
    if (cd "$tmp" && "$prefix/bin/brick" train-lm --steps 0 --out "$tmp/lm.safetensors") >"$tmp/lm.out" 2>&1 &&
        grep -q "^text $prefix/share/brick/text/fortunes-sample.txt: " "$tmp/lm.out"; then
        pass "installed CLI: train-lm finds its default text from another directory"
    else
        fail "installed CLI: train-lm's default text"
        sed 's/^/    | /' "$tmp/lm.out"
    fi
    if [ -e /usr/share/datasets/fashion-mnist ]; then
        echo "SKIP  installed CLI: the bundled data set (the full one in /usr/share/datasets comes first)"
    elif (cd "$tmp" && env -u BRICK_DATA "$prefix/bin/brick" train --model softmax --epochs 1 \
        --out "$tmp/s.safetensors") >"$tmp/train.out" 2>&1 &&
        grep -q "^data: $prefix/share/brick/fashion-mnist-subset (the bundled subset" "$tmp/train.out"; then
        pass "installed CLI: train finds the bundled data set from another directory"
    else
        fail "installed CLI: train's bundled data set"
        sed 's/^/    | /' "$tmp/train.out"
    fi
fi
echo "installed into $prefix:" $(cd "$prefix" && find . -type f -o -type l | sort)

export PKG_CONFIG_PATH=$prefix/lib/pkgconfig
if [ "$(pkg-config --modversion brick 2>&1)" != "$version" ]; then
    fail "pkg-config --modversion brick: $(pkg-config --modversion brick 2>&1), want $version"
    finish
fi

# check_run NAME BINARY [ENV...]: runs the consumer and checks its output.
check_run() {
    local name=$1 bin=$2 out status
    shift 2
    out=$(env "$@" "$bin" 2>&1)
    status=$?
    if [ "$status" -eq 0 ] && grep -q '^output shape (2, 10), 7946 parameters$' <<<"$out"; then
        pass "$name: $(tail -n 1 <<<"$out")"
    else
        fail "$name: exit $status"
        sed 's/^/    | /' <<<"$out"
    fi
}

# Shared: -lbrick finds libbrick.so; the loader must then pick the installed one.
shared_flags=$(pkg-config --cflags --libs brick)
echo "shared: $cc consumer.c $shared_flags"
if $cc "${cflags[@]}" tests/install/consumer.c -o "$tmp/consumer_shared" $shared_flags \
    2>"$tmp/cc.log"; then
    # (grep -q on a captured string: in a pipe its early exit would fail the pipeline)
    libs=$(LD_LIBRARY_PATH=$prefix/lib ldd "$tmp/consumer_shared")
    if grep -qF "$prefix/lib/libbrick.so.0" <<<"$libs"; then
        check_run "consumer, shared library" "$tmp/consumer_shared" LD_LIBRARY_PATH="$prefix/lib"
    else
        fail "consumer, shared library: not linked against $prefix/lib/libbrick.so.0"
        sed 's/^/    | /' <<<"$libs"
    fi
else
    fail "consumer, shared library: does not compile"
    sed 's/^/    | /' "$tmp/cc.log"
fi

# Static: the same flags with --static (adds Libs.private), -lbrick pinned to the archive
# since the linker would otherwise prefer the .so next to it.
static_flags=$(pkg-config --static --cflags --libs brick | sed 's/-lbrick\b/-l:libbrick.a/')
echo "static: $cc consumer.c $static_flags"
if $cc "${cflags[@]}" tests/install/consumer.c -o "$tmp/consumer_static" $static_flags \
    2>"$tmp/cc.log"; then
    if grep -q 'NEEDED.*libbrick' <<<"$(readelf -d "$tmp/consumer_static")"; then
        fail "consumer, static library: still needs libbrick.so"
    else
        check_run "consumer, static library" "$tmp/consumer_static"
    fi
else
    fail "consumer, static library: does not compile"
    sed 's/^/    | /' "$tmp/cc.log"
fi

# The header promises extern "C"; a C++ compiler must accept it.
if command -v c++ >/dev/null 2>&1; then
    if printf '#include <brick.h>\nint main() { return bk_last_error() == nullptr; }\n' |
        c++ -std=c++11 -Wall -Wextra -Wpedantic -Werror -I"$prefix/include" -x c++ - \
            -fsyntax-only 2>"$tmp/cxx.log"; then
        pass "brick.h compiles as C++11"
    else
        fail "brick.h does not compile as C++11"
        sed 's/^/    | /' "$tmp/cxx.log"
    fi
fi

# DESTDIR: a staged install puts everything under DESTDIR and writes the real prefix into
# brick.pc.
if make -s install DESTDIR="$tmp/stage" PREFIX=/opt/brick >"$tmp/install.log" 2>&1 &&
    [ -f "$tmp/stage/opt/brick/lib/libbrick.so.$version" ] &&
    grep -qx 'prefix=/opt/brick' "$tmp/stage/opt/brick/lib/pkgconfig/brick.pc"; then
    pass "make install DESTDIR=... PREFIX=/opt/brick"
else
    fail "make install DESTDIR=... PREFIX=/opt/brick"
    sed 's/^/    | /' "$tmp/install.log"
    find "$tmp/stage" | sed 's/^/    | /'
fi

# Uninstall removes every file install made.
make -s uninstall PREFIX="$prefix" >"$tmp/uninstall.log" 2>&1
left=$(find "$prefix" -type f -o -type l)
if [ -z "$left" ]; then
    pass "make uninstall removes every installed file"
else
    fail "make uninstall left: $left"
fi

finish
