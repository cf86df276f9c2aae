#!/bin/sh
# Kill-and-rerun equivalence: SIGKILL an ingest at random points, rerun it
# to completion, and compare a canonical dump (natural keys, no surrogate
# ids or wall-clock columns) with an uninterrupted run's.
. "$(dirname "$0")/lib.sh"
"$P" sample --out "$T/x" --partners 60 --deals 15000 --seed 7 >/dev/null
ok $? "sample written"

dump() {
  sqlite3 "$1" <<'SQL'
.mode list
SELECT 'P', source, external_id, name, tier, region, country, type, parent_external_id, currency, status, joined_at, updated_at FROM partners ORDER BY source, external_id;
SELECT 'D', d.source, d.external_id, p.external_id, account, contact_name, contact_email, amount, d.currency, product_family, stage, d.status, created_at, expected_close, closed_at, partner_probability, budget_confirmed, competitor, completeness, notes, d.updated_at FROM deals d JOIN partners p ON p.id = d.partner_id ORDER BY d.source, d.external_id;
SELECT 'H', d.external_id, h.observed_at, h.stage, h.amount, h.expected_close, h.status, h.partner_probability FROM deal_history h JOIN deals d ON d.id = h.deal_id ORDER BY d.external_id, h.observed_at;
SELECT 'C', p.external_id, period, category, amount, c.currency, submitted_at FROM commits c JOIN partners p ON p.id = c.partner_id ORDER BY 2, 3, 4, 7;
SELECT 'Q', p.external_id, period, amount, q.currency, set_at FROM quotas q JOIN partners p ON p.id = q.partner_id ORDER BY 2, 3, 6;
SELECT 'T', t.source, t.external_id, p.external_id, deal_external_id, account, amount, t.currency, booked_at FROM transactions t JOIN partners p ON p.id = t.partner_id ORDER BY 2, 3;
SELECT 'Y', y.source, y.external_id, p.external_id, kind, amount, y.currency, paid_at, deal_external_id FROM payouts y JOIN partners p ON p.id = y.partner_id ORDER BY 2, 3;
SELECT 'S', entity_type, entity, name, date, value FROM signals ORDER BY 2, 3, 4, 5;
SELECT 'F', currency, date, rate FROM fx_rates ORDER BY 2, 3;
SELECT 'R', source, file, line, reason FROM ingest_rejects ORDER BY 2, 3, 4;
SELECT 'W', source, object, watermark, cursor FROM sync_state ORDER BY 2, 3;
SQL
}

"$P" --db "$T/a.db" ingest "$T/x" --quiet --batch 500
ok $? "uninterrupted ingest"
dump "$T/a.db" >"$T/a.dump"

# Kill points: a random number of rows into the run, anywhere in any file
# and mid-batch, delivered as SIGKILL by the ingest's fault-injection hook
# (no timing involved). Each killed run resumes where the last committed
# batch left off; the next kill lands further on.
total=$(cat "$T"/x/*.csv | wc -l)
rand() { od -An -N4 -tu4 /dev/urandom | tr -d ' '; }
kills=0
for round in 1 2 3; do
  at=$(( $(rand) % (total / 3) + 1 ))
  PRMCAST_FAULT_KILL_AFTER=$at "$ROOT/build/prmcast-fault" --db "$T/b.db" ingest "$T/x" --quiet --batch 500 >/dev/null 2>&1
  rc=$?
  [ "$rc" -eq 137 ] && kills=$((kills + 1))
  echo "# round $round: SIGKILL after $at rows (exit $rc)"
  if [ "$round" -eq 1 ]; then
    # A first load builds the secondary indexes after its rows: the killed
    # one left them out (read without prmcast, whose open would build them).
    ni=$(sqlite3 "$T/b.db" "SELECT count(*) FROM sqlite_master WHERE name IN ('deals_partner', 'deals_status_close', 'commits_partner_period')")
    ok "$(test "$ni" -eq 0; echo $?)" "a killed first load had its secondary indexes off" "$ni"
  fi
done
ok "$(test "$kills" -eq 3; echo $?)" "every run was killed mid-ingest ($kills of 3)"
"$P" --db "$T/b.db" ingest "$T/x" --batch 500 >"$T/resume.out" 2>&1
ok $? "rerun after kills completes"
dump "$T/b.db" >"$T/b.dump"
cmp -s "$T/a.dump" "$T/b.dump"
ok $? "killed-and-rerun store equals the uninterrupted one" "$(diff "$T/a.dump" "$T/b.dump" | head -5)"
ok "$(test "$(wc -l <"$T/a.dump")" -gt 100000; echo $?)" "the dump is not trivially small"
idx() { sqlite3 "$1" "SELECT name, sql FROM sqlite_master WHERE type = 'index' ORDER BY name"; }
"$P" --db "$T/e.db" init >/dev/null 2>&1
idx "$T/e.db" >"$T/e.idx"; idx "$T/a.db" >"$T/a.idx"; idx "$T/b.db" >"$T/b.idx"
cmp -s "$T/e.idx" "$T/a.idx" && cmp -s "$T/e.idx" "$T/b.idx"
ok $? "after a first load, and after kills and a rerun, the indexes are the schema's" "$(diff "$T/e.idx" "$T/b.idx" | head -4)"
sqlite3 "$T/b.db" 'PRAGMA integrity_check' | grep -qx ok
ok $? "SQLite integrity check after kills"
"$P" --db "$T/b.db" audit verify >/dev/null
ok $? "audit chain intact after kills"
# The release binary has no fault hook: the same variable changes nothing.
PRMCAST_FAULT_KILL_AFTER=5 "$P" --db "$T/c.db" ingest "$T/x" --quiet --batch 500 >/dev/null 2>&1
ok $? "the release prmcast ignores PRMCAST_FAULT_KILL_AFTER (no fault hook)"
done_testing
