#!/bin/sh
# bench/ingest.sh - ingest throughput of the 1M-deal sample export through
# connectors/file.lua, against a peer run in the same script: pandas
# read_csv + to_sql of the same files into SQLite.
#
#   sh bench/ingest.sh [DEALS]        (default 1000000; results: bench/RESULTS.md)
#   PEER_BIN=path/to/prmcast sh bench/ingest.sh   also runs another prmcast build
#       (e.g. main's) on a fresh store in the same script, just before ours
#   SKIP_PANDAS=1                     leaves pandas out (an A/B of two builds)
#
# Reports wall and CPU seconds, deals/s, all rows/s and peak RSS for both.
# Single-threaded by construction (prmcast is; pandas' to_sql is).
set -eu
cd "$(dirname "$0")/.."
DEALS=${1:-1000000}
W=build/bench
mkdir -p "$W"
# Debian's python3 (a pyenv or venv python may lack the Debian pandas)
PY=/usr/bin/python3
"$PY" -c 'import pandas' 2>/dev/null || {
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get install -y -qq python3-pandas >/dev/null
}
make -s prmcast
X="$W/export-$DEALS"
if [ ! -f "$X/TRUTH.md" ]; then
  ./prmcast sample --out "$X" --deals "$DEALS" >/dev/null
fi
ROWS=$(cat "$X"/partners.csv "$X"/deals.csv "$X"/deal_history.csv "$X"/commits.csv "$X"/quotas.csv \
       "$X"/transactions.csv "$X"/payouts.csv "$X"/signals.csv "$X"/fx_rates.csv | wc -l)
ROWS=$((ROWS - 9 - $(grep -c . /dev/null || true)))
# deals.csv has quoted notes spanning two lines; count records, not lines
DREC=$DEALS

p2_wall=0 p2_user=0 p2_sys=0 p2_rss=0
if [ -n "${PEER_BIN:-}" ]; then
  rm -f "$W"/ingest-peer.db*
  PRMCAST_HOME="$(pwd)" /usr/bin/time -f "%e %U %S %M" -o "$W/peer.time" "$PEER_BIN" --db "$W/ingest-peer.db" ingest "$X" --quiet >/dev/null 2>&1
  read -r p2_wall p2_user p2_sys p2_rss <"$W/peer.time"
  rm -f "$W"/ingest-peer.db*
fi

rm -f "$W"/ingest.db*
/usr/bin/time -f "%e %U %S %M" -o "$W/ours.time" ./prmcast --db "$W/ingest.db" ingest "$X" --quiet >/dev/null 2>&1
read -r o_wall o_user o_sys o_rss <"$W/ours.time"
LOADED=$(sqlite3 "$W/ingest.db" "select count(*) from deals")

p_wall=0 p_user=0 p_sys=0 p_rss=0
if [ -z "${SKIP_PANDAS:-}" ]; then
  rm -f "$W"/pandas.db
  /usr/bin/time -f "%e %U %S %M" -o "$W/pandas.time" "$PY" bench/ingest_pandas.py "$X" "$W/pandas.db" >"$W/pandas.out"
  read -r p_wall p_user p_sys p_rss <"$W/pandas.time"
  rm -f "$W"/pandas.db
fi

awk -v d="$DREC" -v r="$ROWS" -v ow="$o_wall" -v ou="$o_user" -v os="$o_sys" -v orss="$o_rss" \
    -v pw="$p_wall" -v pu="$p_user" -v ps="$p_sys" -v prss="$p_rss" -v loaded="$LOADED" \
    -v qw="$p2_wall" -v qu="$p2_user" -v qs="$p2_sys" -v qrss="$p2_rss" 'BEGIN {
  printf "ingest of %d deals (%d rows in all files), %d deals loaded by prmcast\n", d, r, loaded
  printf "%-10s %9s %9s %12s %12s %10s\n", "tool", "wall s", "cpu s", "deals/s", "rows/s", "peak RSS"
  printf "%-10s %9.1f %9.1f %12.0f %12.0f %8.0f MB   (cpu %.1f user + %.1f sys)\n", "prmcast", ow, ou+os, d/ow, r/ow, orss/1024, ou, os
  if (qw > 0)
    printf "%-10s %9.1f %9.1f %12.0f %12.0f %8.0f MB   (cpu %.1f user + %.1f sys)\n", "peer bin", qw, qu+qs, d/qw, r/qw, qrss/1024, qu, qs
  if (pw > 0) {
    printf "%-10s %9.1f %9.1f %12.0f %12.0f %8.0f MB   (cpu %.1f user + %.1f sys)\n", "pandas", pw, pu+ps, d/pw, r/pw, prss/1024, pu, ps
    printf "ratio pandas / prmcast: %.2f by wall, %.2f by CPU seconds\n", pw/ow, (pu+ps)/(ou+os)
  }
  if (qw > 0) printf "ratio peer bin / prmcast: %.2f by wall, %.2f by CPU seconds\n", qw/ow, (qu+qs)/(ou+os)
}'
