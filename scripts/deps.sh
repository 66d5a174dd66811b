#!/usr/bin/env bash
# deps.sh - installs what building and testing brick need, on Debian 12 (bookworm).
#
#   scripts/deps.sh [--build-only] [--blas] [--dataset]
#
#   (default)     build tools and test tools: build-essential pkg-config zlib1g-dev libstb-dev
#                 (stb_image: PNG and JPEG for `brick predict`; optional, the build finds it), perl
#                 (`prove`, which runs the tests for `make test`), python3-torch
#                 python3-numpy python3-pil libopenblas0-pthread valgrind, and clang libclang-rt-14-dev
#                 (clang with libFuzzer, for `make fuzz` and the fuzzing stage of
#                 scripts/test.sh). libopenblas0-pthread is for PyTorch, not for
#                 brick: Debian's python3-torch calls whatever libblas.so.3 is installed, and
#                 without OpenBLAS that is the reference BLAS (about 6 GFLOP/s for torch.mm
#                 against about 100 on a Zen 4 core), which would make every PyTorch timing
#                 in bench/ meaningless (bench/compare.py refuses to compare against it).
#                 openmpi-bin libopenmpi-dev: Open MPI (the build finds mpicc and adds
#                 data-parallel training; tests/test_dist.sh runs mpirun)
#                 clang-format (the format stage of scripts/test.sh: scripts/format_check.sh)
#   --build-only  only what `make` and `make demo` need: build-essential pkg-config zlib1g-dev
#                 libstb-dev
#   --blas        also libopenblas-dev (optional: the build finds it and uses it for gemm)
#   --dataset     also dataset-fashion-mnist (optional: `brick train` and the demo then use
#                 the full data set instead of the subset bundled in data/)
#   (not installed by this script) fortunes: optional English text for `brick train-lm
#                 --text` (docs/text.md); the tests use data/text/fortunes-sample.txt instead
#
# Checks each package with dpkg-query first: quiet and quick when all are present. As root it
# installs the missing ones with apt-get (running apt-get update only then); otherwise it
# prints the apt-get command to run and carries on, so a build can still try its luck.
set -euo pipefail

build_only=0
blas=0
dataset=0
for arg in "$@"; do
    case $arg in
        --build-only) build_only=1 ;;
        --blas) blas=1 ;;
        --dataset) dataset=1 ;;
        -h|--help) sed -n '2,/^set /{/^set /d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
        *) echo "deps.sh: unknown argument '$arg'" >&2; exit 2 ;;
    esac
done

pkgs=(build-essential pkg-config zlib1g-dev libstb-dev)
if [ "$build_only" = 0 ]; then
    pkgs+=(perl python3-torch python3-numpy python3-pil libopenblas0-pthread valgrind clang libclang-rt-14-dev
           openmpi-bin libopenmpi-dev clang-format)
fi
if [ "$blas" = 1 ]; then
    pkgs+=(libopenblas-dev)
fi
if [ "$dataset" = 1 ]; then
    pkgs+=(dataset-fashion-mnist)
fi

if ! command -v dpkg >/dev/null 2>&1; then
    echo "deps.sh: not a Debian system (no dpkg); make sure these are installed: ${pkgs[*]}" >&2
    exit 0
fi

missing=()
for p in "${pkgs[@]}"; do
    if [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" != "install ok installed" ]; then
        missing+=("$p")
    fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" != 0 ]; then
    echo "deps.sh: missing packages: ${missing[*]}" >&2
    echo "deps.sh: install them with:" >&2
    echo "  sudo apt-get update && sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
    exit 0
fi

echo "deps.sh: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# python3-torch pulls in a lot; recommends are not needed for anything brick does.
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "deps.sh: done"
