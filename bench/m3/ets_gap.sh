#!/bin/sh
# bench/m3/ets_gap.sh - our ETS optimiser against R's ets (issue 11, item 5).
#
#   bench/m3/ets_gap.sh SUBSET [STEP [OUT]]
#
# Runs R's ets (bench/m3/r_forecast.R, METHODS=ets) and our auto-ETS on the
# same M3 series (R's outputs kept in OUT, default build/m3ets, and reused
# when present with the same step), and, on the series where both chose the
# same model, compares the log-likelihoods and the MASE: how many series our
# optimiser stops more than 0.1 below R's likelihood (and above), and the
# mean MASE of both there.  Columns: subset, series, same model, ours
# > 0.1 below R's loglik, above, mean MASE ours / R on the same-model series,
# the same on the series where ours is below, and where ours is above.
set -eu
cd "$(dirname "$0")/../.."
SUBSET=$1
STEP=${2:-1}
OUT=${3:-build/m3ets}
M3_DIR=${M3_DIR:-../shared/data/m3}
mkdir -p "$OUT"
if [ ! -f "$OUT/r_${SUBSET}_ets_models.csv" ] || [ "$(cat "$OUT/r_$SUBSET.step" 2>/dev/null)" != "$STEP" ]; then
    OMP_NUM_THREADS=1 Rscript bench/m3/r_forecast.R "$M3_DIR" "$SUBSET" "$OUT" "$STEP" ets
    echo "$STEP" > "$OUT/r_$SUBSET.step"
fi
${CC:-cc} -std=c11 -O2 -D_DEFAULT_SOURCE -D_GNU_SOURCE -Wall -Wextra -iquote engine \
    bench/m3/m3bench.c engine/ts*.c engine/metrics.c engine/error.c -lm -o "$OUT/m3bench"
# EFFORT="MAXIT_PER_DIM ABSTOL RESTARTS" overrides the optimiser effort (ts_ets_set_effort)
# shellcheck disable=SC2086
M3_METHODS=ets "$OUT/m3bench" "$M3_DIR" "$SUBSET" "$OUT" "$STEP" ${EFFORT:-} > /dev/null
awk -F, '
FNR == 1 { f++; if (f < 3) next }
f == 1 { ours[$1] = $2 "," $3 "," $4; oll[$1] = $NF }  # "ETS(M,Ad,M)" holds two commas
f == 2 { r[$1] = $2 "," $3 "," $4; rll[$1] = $NF }
f == 3 && $2 == "prm auto-ETS" { om[$1] = $4 }
f == 3 && $2 == "R_ets" { rm[$1] = $4 }
END {
    for (s in ours) {
        if (!(s in r)) continue
        n++
        if (ours[s] != r[s]) continue
        same++; d = oll[s] - rll[s]
        if (d < -0.1) { below++; bo += om[s]; br += rm[s] }
        else if (d > 0.1) { above++; ao += om[s]; ar += rm[s] }
        mo += om[s]; mr += rm[s]
    }
    printf "| %s | %d | %d | %d | %d | %.4f | %.4f | %.4f | %.4f | %.4f | %.4f |\n", SUBSET, n, same,
        below, above, mo / same, mr / same, below ? bo / below : 0, below ? br / below : 0,
        above ? ao / above : 0, above ? ar / above : 0
}' SUBSET="$SUBSET" "$OUT/ours_${SUBSET}_ets_models.csv" "$OUT/r_${SUBSET}_ets_models.csv" \
    "$OUT/ours_$SUBSET.csv"
