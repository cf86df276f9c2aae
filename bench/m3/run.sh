#!/bin/sh
# bench/m3/run.sh - the M3 benchmark of prm.ts (issue 3).
#
#   bench/m3/run.sh [-k STEP] [-r]
#
# Forecasts every STEP-th (default: every) monthly (h=18) and quarterly (h=8)
# M3 series with each prm.ts method, with R's forecast::ets and
# forecast::thetaf, scores all of them and the 24 original M3 submissions
# with engine/metrics.c, and prints one markdown table per subset (sMAPE,
# MASE, 80/95% coverage, wall/CPU seconds, our CPU time as a fraction of
# R's ets).  -r reuses R's forecasts from an earlier run with the same STEP
# (R's ets takes ~15 CPU-minutes on the monthly subset).
#
# The data stay outside the repository: M3_DIR (default ../shared/data/m3,
# relative to the repository root; see its PROVENANCE.md).  Outputs go to
# OUT (default build/m3).  R runs single-threaded, then our side, so the two
# never compete for the CPU.
set -eu
cd "$(dirname "$0")/../.."
M3_DIR=${M3_DIR:-../shared/data/m3}
OUT=${OUT:-build/m3}
STEP=1
REUSE_R=0
while getopts "k:r" opt; do
    case $opt in
    k) STEP=$OPTARG ;;
    r) REUSE_R=1 ;;
    *) echo "usage: $0 [-k STEP] [-r]" >&2; exit 2 ;;
    esac
done
[ -f "$M3_DIR/m3_monthly_train.csv.gz" ] || { echo "run.sh: no M3 data in $M3_DIR (set M3_DIR)" >&2; exit 1; }
mkdir -p "$OUT"

if ! Rscript -e 'suppressMessages(library(forecast))' >/dev/null 2>&1; then
    echo "run.sh: installing r-base-core r-cran-forecast" >&2
    SUDO=$([ "$(id -u)" = 0 ] || echo sudo)
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq r-base-core r-cran-forecast
fi

CC=${CC:-cc}
$CC -std=c11 -O2 -D_DEFAULT_SOURCE -D_GNU_SOURCE -Wall -Wextra -iquote engine \
    bench/m3/m3bench.c engine/ts.c engine/ts_ets.c engine/ts_simple.c engine/metrics.c \
    engine/error.c -lm -o "$OUT/m3bench"

export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
for subset in monthly quarterly; do
    if [ "$REUSE_R" = 1 ] && [ -f "$OUT/r_$subset.csv" ] &&
       [ "$(cat "$OUT/r_$subset.step" 2>/dev/null)" = "$STEP" ]; then
        echo "run.sh: reusing R's $subset forecasts (step $STEP)" >&2
    else
        echo "run.sh: R forecast::ets and thetaf on $subset (step $STEP)..." >&2
        rm -f "$OUT/r_$subset.step"
        Rscript bench/m3/r_forecast.R "$M3_DIR" "$subset" "$OUT" "$STEP"
        echo "$STEP" > "$OUT/r_$subset.step"
    fi
done
echo "## M3 time-series (issue 3)"
echo
echo "$(date -u +%Y-%m-%d), $(uname -m), $(nproc) cores, commit $(git describe --always --dirty 2>/dev/null || echo '?');"
echo "R $(Rscript -e 'cat(R.version$major, R.version$minor, sep=".")') with forecast $(Rscript -e 'cat(as.character(packageVersion("forecast")))'), single-threaded."
for subset in monthly quarterly; do
    "$OUT/m3bench" "$M3_DIR" "$subset" "$OUT" "$STEP"
done
