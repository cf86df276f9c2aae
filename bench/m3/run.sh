#!/bin/sh
# bench/m3/run.sh - the M3 benchmark of prm.ts (issues 3 and 11).
#
#   bench/m3/run.sh [-k STEP] [-m MONTHLY_STEP] [-s "SUBSETS"] [-r]
#
# Forecasts every STEP-th (default: every) yearly (h=6), quarterly (h=8),
# monthly (h=18) and other (h=8) M3 series with each prm.ts method, with R's
# forecast::ets, forecast::thetaf and forecast::auto.arima (and their mean),
# scores all of them and the 24 original M3 submissions with
# engine/metrics.c, and prints one markdown table per subset (sMAPE, MASE,
# 80/95% coverage, wall/CPU seconds, R's CPU time over ours).  -m sets a
# separate step for the monthly subset (R's auto.arima takes ~2 CPU-s a
# monthly series); -s limits the subsets; -r reuses R's forecasts from an
# earlier run with the same step.
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
MSTEP=
SUBSETS="yearly quarterly monthly other"
REUSE_R=0
while getopts "k:m:s:r" opt; do
    case $opt in
    k) STEP=$OPTARG ;;
    m) MSTEP=$OPTARG ;;
    s) SUBSETS=$OPTARG ;;
    r) REUSE_R=1 ;;
    *) echo "usage: $0 [-k STEP] [-m MONTHLY_STEP] [-s SUBSETS] [-r]" >&2; exit 2 ;;
    esac
done
[ -f "$M3_DIR/m3_monthly_train.csv.gz" ] || { echo "run.sh: no M3 data in $M3_DIR (set M3_DIR)" >&2; exit 1; }
mkdir -p "$OUT"
step_of() { if [ "$1" = monthly ] && [ -n "$MSTEP" ]; then echo "$MSTEP"; else echo "$STEP"; fi; }

if ! Rscript -e 'suppressMessages(library(forecast))' >/dev/null 2>&1; then
    echo "run.sh: installing r-base-core r-cran-forecast" >&2
    SUDO=$([ "$(id -u)" = 0 ] || echo sudo)
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq r-base-core r-cran-forecast
fi

CC=${CC:-cc}
$CC -std=c11 -O2 -D_DEFAULT_SOURCE -D_GNU_SOURCE -Wall -Wextra -iquote engine \
    bench/m3/m3bench.c engine/ts*.c engine/metrics.c engine/error.c -lm -o "$OUT/m3bench"

export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
for subset in $SUBSETS; do
    k=$(step_of "$subset")
    if [ "$REUSE_R" = 1 ] && [ -f "$OUT/r_${subset}_arima.csv" ] &&
       [ "$(cat "$OUT/r_$subset.step" 2>/dev/null)" = "$k" ]; then
        echo "run.sh: reusing R's $subset forecasts (step $k)" >&2
    else
        echo "run.sh: R forecast::ets, thetaf and auto.arima on $subset (step $k)..." >&2
        rm -f "$OUT/r_$subset.step"
        Rscript bench/m3/r_forecast.R "$M3_DIR" "$subset" "$OUT" "$k"
        echo "$k" > "$OUT/r_$subset.step"
    fi
done
echo "## M3 time-series"
echo
echo "$(date -u +%Y-%m-%d), $(uname -m), $(nproc) cores, commit $(git describe --always --dirty 2>/dev/null || echo '?');"
echo "R $(Rscript -e 'cat(R.version$major, R.version$minor, sep=".")') with forecast $(Rscript -e 'cat(as.character(packageVersion("forecast")))'), single-threaded."
for subset in $SUBSETS; do
    "$OUT/m3bench" "$M3_DIR" "$subset" "$OUT" "$(step_of "$subset")"
done
