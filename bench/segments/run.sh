#!/bin/sh
# bench/segments/run.sh - the synthetic segment-series benchmark (issue 11).
#
#   bench/segments/run.sh [NSERIES_PER_FAMILY [SEED]]
#
# Builds segbench against the numeric core and prints the coverage of the
# 80% and 95% intervals per family of series and method (markdown).
set -eu
cd "$(dirname "$0")/../.."
OUT=${OUT:-build/segments}
mkdir -p "$OUT"
CC=${CC:-cc}
$CC -std=c11 -O2 -D_DEFAULT_SOURCE -D_GNU_SOURCE -Wall -Wextra -iquote engine \
    bench/segments/segbench.c engine/ts*.c engine/metrics.c engine/rng.c engine/error.c \
    -lm -o "$OUT/segbench"
"$OUT/segbench" "${1:-400}" "${2:-2026}"
