#!/bin/sh
# bench/scoring/ibm.sh - our deal-scoring models against scikit-learn on the
# IBM "Sales Win Loss" sample (../shared/data/deals/ibm_sales_win_loss, see
# its PROVENANCE.md; the data is read in place, never copied into the repo).
#
# Split: sorted unique Opportunity Number, the first 80% of ids train, the
# rest is the out-of-time test. Two feature sets: "all" columns, and
# "registration", only what is known when a deal is registered (product,
# region, route, client size / history, competitor, amount) - the stage and
# day counts are measured through the close and leak the outcome.
# Models: our logistic vs LogisticRegression(C=1) on standardised numerics +
# one-hot categoricals; our gbdt vs HistGradientBoostingClassifier (native
# categoricals); both at their defaults. Train time is the best of $REPEATS
# fits in CPU seconds on one thread (OMP_NUM_THREADS=1 for scikit-learn).
#
# Calibration on held-out time: each model fitted on the first 90% of the
# training rows, isotonic / Platt maps fitted on the last 10%, all scored on
# the test rows (the second table).
#
# Usage: bench/scoring/ibm.sh            (REPEATS=5 by default)
set -eu
cd "$(dirname "$0")/../.."
DATA=../shared/data/deals/ibm_sales_win_loss/WA_Fn-UseC_-Sales-Win-Loss.csv.gz
REPEATS=${REPEATS:-5}
OUT=build/bench
[ -f "$DATA" ] || { echo "ibm.sh: $DATA not found" >&2; exit 1; }

# scikit-learn comes from Debian; prefer the system python that sees it.
PY=python3
[ -x /usr/bin/python3 ] && PY=/usr/bin/python3
if ! $PY -c "import sklearn, pandas" 2>/dev/null; then
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
    echo "ibm.sh: installing python3-sklearn python3-pandas" >&2
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3-sklearn python3-pandas >&2
fi

mkdir -p $OUT
# the same flags as the Makefile's release build
${CC:-cc} -std=c11 -O2 -D_DEFAULT_SOURCE -D_GNU_SOURCE -Wall -Wextra -iquote engine \
    bench/scoring/ibm_bench.c engine/model.c engine/model_logit.c engine/model_gbdt.c \
    engine/model_base.c engine/clsmetrics.c engine/error.c -lm -o $OUT/ibm_bench

export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1
: > $OUT/ibm.txt
for fset in all registration; do
    $OUT/ibm_bench "$DATA" $fset "$REPEATS" >> $OUT/ibm.txt
    $OUT/ibm_bench "$DATA" $fset "$REPEATS" gbdt.refit=0 | grep '^ours gbdt' | sed 's/^ours gbdt/ours gbdt-norefit/' >> $OUT/ibm.txt
    $PY bench/scoring/sk_ibm.py "$DATA" $fset "$REPEATS" >> $OUT/ibm.txt
done

# ours <model> <fset> auc logloss brier secs ntr nte [trees]
awk '
$1 == "sklearn" { key = $2 " " $3; sa[key] = $4; sl[key] = $5; sb[key] = $6; st[key] = $7 }
$1 == "ours" { n++; m[n] = $2; f[n] = $3; a[n] = $4; l[n] = $5; b[n] = $6; t[n] = $7; trees[n] = $10;
               ntr = $8; nte = $9 }
END {
    printf "train rows %d, test rows %d (out of time)\n\n", ntr, nte
    printf "| model | features | AUC ours / sklearn | log loss ours / sklearn | Brier ours / sklearn | train s ours / sklearn | speed-up | target |\n"
    printf "|---|---|---|---|---|---|---|---|\n"
    for (i = 1; i <= n; i++) {
        sk = (m[i] == "logistic" ? "logistic" : "gbdt") " " f[i]
        if (m[i] == "logistic")
            ok = (a[i] >= sa[sk] - 0.003) ? "AUC ok" : "AUC MISS"
        else
            ok = (a[i] >= sa[sk] && l[i] <= sl[sk] && b[i] <= sb[sk]) ? "AUC/LL/Brier ok" : "quality MISS"
        ok = ok ", " (st[sk] / t[i] >= 5 ? "time ok" : "time MISS")
        name = m[i] (trees[i] != "" && m[i] != "logistic" ? " (" trees[i] " trees)" : "")
        printf "| %s | %s | %.4f / %.4f | %.4f / %.4f | %.4f / %.4f | %.3f / %.3f | %.1fx | %s |\n",
               name, f[i], a[i], sa[sk], l[i], sl[sk], b[i], sb[sk], t[i], st[sk], st[sk] / t[i], ok
    }
}' $OUT/ibm.txt

echo
echo "calibration (fit on the first 90% of training rows, calibrate on the last 10%, score the test rows)"
echo
echo "| model | features | calibration | AUC | log loss | Brier | ECE (10 bins) |"
echo "|---|---|---|---|---|---|---|"
awk '$1 == "calib" { printf "| %s | %s | %s | %.4f | %.4f | %.4f | %.4f |\n", $2, $3, $4, $5, $6, $7, $8 }' $OUT/ibm.txt
