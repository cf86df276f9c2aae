# tests/e2e/peers.sh - start and stop the PRM test peers (tests/peers/*.py)
# from an e2e test. Sourced after lib.sh.
#
#   start_peer partnerstack "$T/data"     # sets PEER_URL, PEER_PID, PEER_LOG
#   faults '{"throttle": 3, "retry_after": "0"}'
#   peer_update '{"object": "deals", "key": "D0000001", "set": {"stage": "Closed Won"}}'
#
# The peer listens on a free port the kernel picks; it is killed on exit.
# Debian's python3 when present: a pyenv shim costs seconds per start.
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
PEERS=""
trap 'for p in $PEERS; do kill "$p" 2>/dev/null; done; [ -n "${KEEP:-}" ] || rm -rf "$T"' EXIT

start_peer() {   # start_peer NAME DATA_DIR
  PEER_LOG="$T/peer-$1.log"
  rm -f "$T/peer-$1.port"
  "$PY" "$ROOT/tests/peers/$1.py" --data "$2" --log "$PEER_LOG" \
    --port-file "$T/peer-$1.port" >/dev/null 2>"$T/peer-$1.err" &
  PEER_PID=$!
  PEERS="$PEERS $PEER_PID"
  i=0
  while [ ! -s "$T/peer-$1.port" ] && [ $i -lt 200 ]; do
    kill -0 "$PEER_PID" 2>/dev/null || break
    sleep 0.05
    i=$((i + 1))
  done
  if [ ! -s "$T/peer-$1.port" ]; then
    echo "# peer $1 did not start:"; sed 's/^/#   /' "$T/peer-$1.err"
    return 1
  fi
  PEER_URL="http://127.0.0.1:$(cat "$T/peer-$1.port")"
}

faults() { curl -s -X POST --data "$1" "$PEER_URL/__peer/faults" >/dev/null; }
peer_update() { curl -s -X POST --data "$1" "$PEER_URL/__peer/update" >/dev/null; }

# The store's synced objects in natural keys, without the source column, so
# that a sync and a file ingest of the same data compare equal.
dump_current() {
  sqlite3 "$1" <<'SQL'
.mode list
SELECT 'P', external_id, name, tier, region, country, type, parent_external_id, currency, status, joined_at, updated_at FROM partners ORDER BY external_id;
SELECT 'D', d.external_id, p.external_id, account, contact_name, contact_email, amount, d.currency, product_family, stage, d.status, created_at, expected_close, closed_at, partner_probability, budget_confirmed, competitor, completeness, notes, d.updated_at FROM deals d JOIN partners p ON p.id = d.partner_id ORDER BY d.external_id;
SELECT 'T', t.external_id, p.external_id, deal_external_id, account, amount, t.currency, booked_at FROM transactions t JOIN partners p ON p.id = t.partner_id ORDER BY 2;
SELECT 'Y', y.external_id, p.external_id, kind, amount, y.currency, paid_at, deal_external_id FROM payouts y JOIN partners p ON p.id = y.partner_id ORDER BY 2;
SQL
}

# Everything a sync leaves, sync state included (not its wall-clock column).
dump_all() {
  dump_current "$1"
  sqlite3 "$1" <<'SQL'
.mode list
SELECT 'H', d.external_id, h.observed_at, h.stage, h.amount, h.expected_close, h.status, h.partner_probability FROM deal_history h JOIN deals d ON d.id = h.deal_id ORDER BY d.external_id, h.observed_at;
SELECT 'R', source, file, line, reason FROM ingest_rejects ORDER BY 2, 3, 4;
SELECT 'W', source, object, watermark, cursor FROM sync_state ORDER BY 2, 3;
SQL
}
