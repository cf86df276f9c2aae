#!/bin/sh
# bench/scoring/pipeline.sh - deal scoring on the synthetic partner program.
#
#   sh bench/scoring/pipeline.sh [DEALS]     (default 1000000 for the throughput part)
#
# 1. Accuracy: the default sample (30k deals, 12 quarters), trained with the
#    time-honest split of `prmcast train`; the active model against the
#    partner-submitted probability (the manual baseline) on the newest
#    complete quarter: AUC, log loss, Brier and the reliability table.
# 2. Throughput: the DEALS-deal sample ingested, a model trained, then
#    `prmcast score` end to end (features from the store + model + drivers +
#    the shipped risk rules + storing scores and write-back payloads), timed
#    with /usr/bin/time; peak RSS reported.
set -eu
cd "$(dirname "$0")/../.."
DEALS=${1:-1000000}
# The sample is an export as of 2026-11-20: score and train as of that day.
export PRMCAST_NOW=${PRMCAST_NOW:-2026-11-20}
W=build/bench
mkdir -p "$W"
make -s prmcast

echo "== accuracy: default sample (30000 deals), newest complete quarter held out"
rm -rf "$W/sample30k" "$W"/acc.db*
./prmcast sample --out "$W/sample30k" >/dev/null
./prmcast --db "$W/acc.db" ingest "$W/sample30k" --quiet >/dev/null 2>&1
./prmcast --db "$W/acc.db" train --reliability

echo
echo "== throughput: $DEALS-deal sample"
X="$W/export-$DEALS"
[ -f "$X/TRUTH.md" ] || ./prmcast sample --out "$X" --deals "$DEALS" >/dev/null
DB="$W/score-$DEALS.db"
if [ ! -f "$DB" ]; then
  ./prmcast --db "$DB" ingest "$X" --quiet >/dev/null 2>&1 || true
fi
/usr/bin/time -f "train: %e s wall, %U s user, %M KB peak RSS" \
  ./prmcast --db "$DB" train --train-quarters 2 --step-days 28 --quiet
/usr/bin/time -f "%e %U %S %M" -o "$W/score.time" ./prmcast --db "$DB" score >"$W/score.out"
cat "$W/score.out"
read -r wall user sys rss <"$W/score.time"
total=$(sqlite3 "$DB" "select count(*) from deals")
open=$(sqlite3 "$DB" "select deals from score_runs order by id desc limit 1")
awk -v w="$wall" -v u="$user" -v s="$sys" -v r="$rss" -v t="$total" -v o="$open" 'BEGIN {
  printf "score: %.1f s wall, %.1f s CPU, peak RSS %.0f MB\n", w, u + s, r / 1024
  printf "  %d deals in the store: %.0f deals/s;  %d open deals scored: %.0f scored/s\n", t, t / w, o, o / w
}'
