#!/bin/sh
# bench/scoring/same_output.sh PEER_BIN [DB] - scores two copies of the same
# store, one with ./prmcast and one with PEER_BIN (e.g. main's binary), as of
# $PRMCAST_NOW (default 2026-11-20), and compares the md5 of every column of
# the new score run's scores and of the whole writeback_outbox. Prints
# "same" or "DIFFERENT" per table; exit 1 on a difference.
# RERUN=1: each copy is scored three times before the comparison: a rerun at
# the same date, then (after a third of the pending payloads are marked
# delivered, as a sender would) a run a week later, so the outbox's
# coalescing (supersede a pending payload, skip one equal to the delivered
# one) is compared too.
set -eu
cd "$(dirname "$0")/../.."
PEER=$1
DB=${2:-build/bench/score-1000000.db}
export PRMCAST_NOW=${PRMCAST_NOW:-2026-11-20} PRMCAST_HOME=$PWD
W=build/bench
dump() {   # dump DB -> "scores-md5 outbox-md5"
  s=$(sqlite3 "$1" "SELECT run_id, deal_id, probability, score, drivers, flags, model_id, scored_at FROM scores
                    WHERE run_id = (SELECT max(id) FROM score_runs) ORDER BY deal_id" | md5sum | cut -c1-32)
  o=$(sqlite3 "$1" "SELECT id, run_id, deal_id, target, payload, status, created_at, idempotency_key, attempts,
                           last_error, next_attempt_at, claimed_at, sent_at, payload_hash
                    FROM writeback_outbox ORDER BY id" | md5sum | cut -c1-32)
  echo "$s $o"
}
rc=0
for b in ./prmcast "$PEER"; do
  cp "$DB" "$W/same.db"; rm -f "$W/same.db-wal" "$W/same.db-shm"
  "$b" --db "$W/same.db" score >/dev/null 2>&1
  if [ "${RERUN:-0}" = 1 ]; then
    "$b" --db "$W/same.db" score >/dev/null 2>&1
    sqlite3 "$W/same.db" "UPDATE writeback_outbox SET status = 'sent', sent_at = created_at
                          WHERE status = 'pending' AND id % 3 = 0"
    PRMCAST_NOW=${RERUN_NOW:-2026-11-27} "$b" --db "$W/same.db" score >/dev/null 2>&1
  fi
  dump "$W/same.db" >>"$W/same.$$"
done
rm -f "$W/same.db" "$W/same.db-wal" "$W/same.db-shm"
{ read -r s1 o1; read -r s2 o2; } <"$W/same.$$"
rm -f "$W/same.$$"
[ "$s1" = "$s2" ] && echo "scores: same ($s1)" || { echo "scores: DIFFERENT ($s1 vs $s2)"; rc=1; }
[ "$o1" = "$o2" ] && echo "outbox: same ($o1)" || { echo "outbox: DIFFERENT ($o1 vs $o2)"; rc=1; }
exit $rc
