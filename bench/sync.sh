#!/bin/sh
# bench/sync.sh - a full PartnerStack sync of the sample over loopback from
# tests/peers/partnerstack.py: deals/s, requests, peak RSS of prmcast.
#
#   sh bench/sync.sh [DEALS]        (default 100000; results: bench/RESULTS.md)
#
# The peer (Python stdlib, 250-record pages from its caches of encoded
# records) waits for prmcast's next request, so its own time per page is
# part of the wall clock: its CPU seconds during the sync are reported
# beside prmcast's (user + system), with the load average.
set -eu
cd "$(dirname "$0")/.."
DEALS=${1:-100000}
W=build/bench
mkdir -p "$W"
make -s prmcast
X="$W/export-$DEALS"
if [ ! -f "$X/TRUTH.md" ]; then
  ./prmcast sample --out "$X" --deals "$DEALS" >/dev/null
fi
rm -f "$W/sync.port"
PY=/usr/bin/python3; [ -x "$PY" ] || PY=python3
"$PY" tests/peers/partnerstack.py --data "$X" --port-file "$W/sync.port" >/dev/null 2>&1 &
PEER=$!
trap 'kill $PEER 2>/dev/null' EXIT
i=0
# The peer reads and encodes the whole sample first (~1-2 min at 1M deals).
while [ ! -s "$W/sync.port" ] && [ $i -lt 6000 ]; do sleep 0.1; i=$((i + 1)); done
export PARTNERSTACK_BASE_URL="http://127.0.0.1:$(cat "$W/sync.port")"
export PARTNERSTACK_PUBLIC_KEY=pk_test PARTNERSTACK_SECRET_KEY=sk_test PRMCAST_LOG=warn
rm -f "$W"/sync.db*
peer_cpu() { awk '{ print $14 + $15 }' "/proc/$PEER/stat"; }     # clock ticks
p0=$(peer_cpu)
/usr/bin/time -f "%e %U %S %M" -o "$W/sync.time" \
  ./prmcast --db "$W/sync.db" run tests/e2e/sync.lua connectors/partnerstack.lua >"$W/sync.out"
p1=$(peer_cpu)
read -r wall user sys rss <"$W/sync.time"
n=$(sqlite3 "$W/sync.db" "select count(*) from deals")
cat "$W/sync.out"
echo "deals stored: $n; wall $wall s, prmcast CPU $(echo "$user + $sys" | bc) s, peak RSS $((rss / 1024)) MB"
echo "peer CPU $(echo "scale=2; ($p1 - $p0) / $(getconf CLK_TCK)" | bc) s; load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "deals/s (wall): $(echo "$n / $wall" | bc); deals/s (prmcast CPU): $(echo "$n / ($user + $sys)" | bc)"
