#!/usr/bin/env bash
# wrap_brick.sh - the `brick` a CLI test script runs under `make valgrind` (BRICK_CLI):
# $BRICK_BUILD/brick behind $BRICK_TEST_WRAPPER. With valgrind each run writes its own log,
# $BRICK_CLI_LOGS/valgrind.<pid>.log, which scripts/run_tests.sh checks after the script,
# and brick uses the portable GEMM kernel unless BRICK_GEMM_KERNEL is set (valgrind emulates
# the AVX2 kernel's FMA instructions in its own code: 9 times slower).
read -r -a wrapper <<<"${BRICK_TEST_WRAPPER:-}"
extra=()
if [ ${#wrapper[@]} -gt 0 ] && [ "$(basename "${wrapper[0]}")" = valgrind ]; then
    extra=("--log-file=${BRICK_CLI_LOGS:?BRICK_CLI_LOGS must be set}/valgrind.%p.log")
    export BRICK_GEMM_KERNEL=${BRICK_GEMM_KERNEL:-portable}
fi
exec "${wrapper[@]}" "${extra[@]}" "${BRICK_BUILD:-build}/brick" "$@"
