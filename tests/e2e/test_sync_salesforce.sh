#!/bin/sh
# Salesforce over HTTP against tests/peers/salesforce.py: SOQL with
# nextRecordsUrl; full sync = file ingest; incremental by SystemModstamp;
# kill -9 and rerun; 403 REQUEST_LIMIT_EXCEEDED ridden out; a malformed
# batch stops with a clear error; a bad token fails cleanly; no secret in logs;
# OpportunityFieldHistory gives history rows at the API's timestamps; a
# deleted opportunity (queryAll, IsDeleted) is closed, not kept open, and so
# is one purged from the Recycle Bin (getDeleted).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/peers.sh"

TOKEN='00DPEER!AQ8AQ.s3cr3tT0ken_91zz'
export PEER_ACCESS_TOKEN=$TOKEN SALESFORCE_ACCESS_TOKEN=$TOKEN SALESFORCE_BATCH_SIZE=500
LOGS="$T/all-logs"
: >"$LOGS"
"$P" sample --out "$T/x" --partners 30 --deals 1500 --seed 5 >/dev/null
ok $? "sample written"
# One deal registered straight at Qualification: its stage at creation is
# only in its first OpportunityFieldHistory row's OldValue.
"$PY" - "$T/x/deal_history.csv" <<'PY'
import csv, sys
rows = list(csv.reader(open(sys.argv[1])))
for r in rows[1:]:
    if r[0] == "D0000001":
        r[2] = "Qualified"
        break
csv.writer(open(sys.argv[1], "w", newline="")).writerows(rows)
PY
start_peer salesforce "$T/x"
ok $? "Salesforce peer started"
export SALESFORCE_INSTANCE_URL="$PEER_URL"

sync() {
  db=$1; shift
  "$P" --db "$db" run "$ROOT/tests/e2e/sync.lua" connectors/salesforce.lua --backoff 0.01 "$@" >"$T/out" 2>"$T/err"
  rc=$?
  cat "$T/out" "$T/err" >>"$LOGS"
  return $rc
}
pd() { dump_current "$1" | grep -E '^(P|D)\|'; }

sync "$T/a.db"
ok $? "full sync" "$(tail -3 "$T/err")"
"$P" --db "$T/f.db" ingest "$T/x" --quiet >/dev/null 2>&1
pd "$T/a.db" >"$T/a.pd"; pd "$T/f.db" >"$T/f.pd"
cmp -s "$T/a.pd" "$T/f.pd"
ok $? "full sync equals a file ingest (partners, deals)" "$(diff "$T/a.pd" "$T/f.pd" | head -4)"
first() { q "$1" "SELECT d.external_id || '|' || (SELECT h.stage FROM deal_history h WHERE h.deal_id = d.id ORDER BY h.observed_at LIMIT 1) FROM deals d ORDER BY d.external_id"; }
first "$T/a.db" >"$T/a.first"; first "$T/f.db" >"$T/f.first"
cmp -s "$T/a.first" "$T/f.first"
ok $? "every deal's first history stage (its stage at creation) equals the export's" "$(diff "$T/a.first" "$T/f.first" | head -4)"
c1=$(q "$T/a.db" "SELECT h.observed_at || '|' || h.stage FROM deal_history h JOIN deals d ON d.id = h.deal_id WHERE d.external_id = 'D0000001' ORDER BY h.observed_at LIMIT 1")
ok "$(test "$c1" = "$(q "$T/a.db" "SELECT created_at FROM deals WHERE external_id = 'D0000001'")T00:00:00Z|qualified"; echo $?)" \
   "a deal created at Qualification: qualified from its CreatedDate (the first row's OldValue)" "got '$c1'"
ok "$(test "$(grep -c 'query/01gPEER' "$T/err")" -ge 2; echo $?)" "batches followed through nextRecordsUrl"
grep -q 'sforce-limit-info: api-usage=' "$T/err"
ok $? "Sforce-Limit-Info logged"
# OpportunityFieldHistory rows older than the state a sync saw carry no
# partner probability: the later (final, 0 or 100) one would be look-ahead.
sync "$T/s.db"
ok "$(test "$(q "$T/s.db" "SELECT count(*) FROM deal_history h JOIN deals d ON d.id = h.deal_id WHERE h.observed_at < d.updated_at")" -gt 0 &&
      test "$(q "$T/s.db" "SELECT count(*) FROM deal_history h JOIN deals d ON d.id = h.deal_id WHERE h.observed_at < d.updated_at AND h.partner_probability IS NOT NULL")" -eq 0; echo $?)" \
  "history from the API before a synced state: no later partner probability leaks back"

wm=$(q "$T/a.db" "SELECT watermark FROM sync_state WHERE source = 'salesforce' AND object = 'deal'")
later=$("$PY" -c "import datetime as d;print(int((d.datetime.strptime('$wm','%Y-%m-%dT%H:%M:%SZ').replace(tzinfo=d.timezone.utc)+d.timedelta(hours=1)).timestamp()*1000))")
for d in $(q "$T/a.db" "SELECT external_id FROM deals WHERE status = 'open' ORDER BY external_id LIMIT 2"); do
  peer_update "{\"object\": \"Opportunity\", \"key\": \"$d\", \"set\": {\"StageName\": \"Closed Won\", \"IsClosed\": true, \"IsWon\": true}, \"updated_at\": $later}"
done
: >"$PEER_LOG"
sync "$T/a.db"
ok $? "incremental sync"
awk '$1 == "deal" { exit !($4 == 2) }' "$T/out"
ok $? "exactly the 2 changed opportunities written" "$(cat "$T/out")"
grep -q 'SystemModstamp > 20' "$PEER_LOG"
ok $? "the SOQL carries SystemModstamp > watermark - overlap"
ok "$(test "$(q "$T/a.db" "SELECT count(*) FROM deals WHERE status = 'won' AND updated_at > '$wm'")" -eq 2; echo $?)" "won deals stored"

# Two stage changes (and an amount change) between syncs, and a delete: the
# history rows carry OpportunityFieldHistory's own CreatedDate, also for the
# intermediate stage no sync observed; the deleted opportunity is not kept open.
at() { "$PY" -c "import datetime as d;print(int((d.datetime.strptime('$wm','%Y-%m-%dT%H:%M:%SZ').replace(tzinfo=d.timezone.utc)+d.timedelta(hours=$1)).timestamp()*1000))"; }
iso() { "$PY" -c "import datetime as d;print((d.datetime.strptime('$wm','%Y-%m-%dT%H:%M:%SZ')+d.timedelta(hours=$1)).strftime('%Y-%m-%dT%H:%M:%SZ'))"; }
set -- $(q "$T/a.db" "SELECT external_id FROM deals WHERE status = 'open' ORDER BY external_id LIMIT 2")
h1=$1 del=$2
peer_update "{\"object\": \"Opportunity\", \"key\": \"$h1\", \"set\": {\"StageName\": \"Negotiation/Review\", \"Amount\": 12345.0}, \"updated_at\": $(at 2)}"
peer_update "{\"object\": \"Opportunity\", \"key\": \"$h1\", \"set\": {\"StageName\": \"Closed Lost\", \"IsClosed\": true}, \"updated_at\": $(at 3)}"
peer_update "{\"object\": \"Opportunity\", \"key\": \"$del\", \"set\": {\"IsDeleted\": true}, \"updated_at\": $(at 3)}"
: >"$PEER_LOG"
sync "$T/a.db"
ok $? "incremental sync after stage changes and a delete" "$(tail -3 "$T/err")"
grep -q 'FROM OpportunityFieldHistory' "$PEER_LOG"
ok $? "OpportunityFieldHistory queried"
grep -q 'CreatedDate > 20' "$PEER_LOG"
ok $? "incrementally, by CreatedDate"
grep -q '/services/data/v59.0/queryAll' "$PEER_LOG"
ok $? "opportunities read through queryAll"
hist() { q "$T/a.db" "SELECT h.stage || '|' || h.status || '|' || h.amount FROM deal_history h JOIN deals d ON d.id = h.deal_id WHERE d.external_id = '$1' AND h.observed_at = '$2'"; }
r2=$(hist "$h1" "$(iso 2)"); r3=$(hist "$h1" "$(iso 3)")
ok "$(test "$r2" = "negotiation|open|12345.0"; echo $?)" "the unobserved stage change stored at its CreatedDate $(iso 2)" "got '$r2'"
ok "$(test "$r3" = "closed_lost|lost|12345.0"; echo $?)" "the closing change at $(iso 3), amount carried" "got '$r3'"
n_old=$(q "$T/a.db" "SELECT count(*) FROM deal_history h JOIN deals d ON d.id = h.deal_id WHERE d.external_id = '$h1' AND h.observed_at < '$(iso 2)' AND h.stage = 'negotiation'")
ok "$(test "$n_old" -eq 0; echo $?)" "no look-back: nothing earlier says negotiation"
dl=$(q "$T/a.db" "SELECT stage || '|' || status || '|' || closed_at FROM deals WHERE external_id = '$del'")
ok "$(test "$dl" = "closed_lost|lost|$(iso 3 | cut -c1-10)"; echo $?)" "a deleted opportunity is closed as lost on its delete day" "got '$dl'"
sync "$T/a.db"
ok $? "a rerun"
awk '$1 == "deal" || $1 == "deal_history" || $1 == "deal_created" { if ($4 != 0) exit 1 }' "$T/out"
ok $? "writes nothing new" "$(cat "$T/out")"

# Deletes purged from the Recycle Bin before a sync saw them: gone from
# queryAll too, listed only by getDeleted (sobjects/Opportunity/deleted/).
# The open one is closed as lost on its delete day, the won one keeps its
# outcome; a rerun closes nothing again. The engine clock is set an hour
# after the deletes (getDeleted ignores seconds and lists up to its end).
fwm=$(q "$T/a.db" "SELECT watermark FROM sync_state WHERE source = 'salesforce' AND object = 'deal#deleted'")
ok "$(test -n "$fwm"; echo $?)" "the first sync marked where the delete log is read from" "got '$fwm'"
off() { "$PY" -c "import datetime as d;t=d.datetime.strptime('$fwm','%Y-%m-%dT%H:%M:%SZ').replace(tzinfo=d.timezone.utc)+d.timedelta(minutes=$1);print(int(t.timestamp()*1000) if '${2:-}' == 'ms' else t.strftime('%Y-%m-%dT%H:%M:%SZ'))"; }
purged=$(q "$T/a.db" "SELECT external_id FROM deals WHERE status = 'open' ORDER BY external_id DESC LIMIT 1")
wonp=$(q "$T/a.db" "SELECT external_id FROM deals WHERE status = 'won' ORDER BY external_id LIMIT 1")
for d in $purged $wonp; do
  curl -s -X POST --data "{\"object\": \"Opportunity\", \"key\": \"$d\", \"deleted_at\": $(off 10 ms)}" "$PEER_URL/__peer/delete" >/dev/null
done
: >"$PEER_LOG"
PRMCAST_NOW=$(off 60) sync "$T/a.db"
ok $? "incremental sync after purged deletes" "$(tail -3 "$T/err")"
grep -q '"path": "/services/data/v59.0/sobjects/Opportunity/deleted/", "query": {"end": "[^"]*", "start": "' "$PEER_LOG"
ok $? "the delete log is read (getDeleted with start and end)"
pl=$(q "$T/a.db" "SELECT stage || '|' || status || '|' || closed_at FROM deals WHERE external_id = '$purged'")
ok "$(test "$pl" = "closed_lost|lost|$(off 10 | cut -c1-10)"; echo $?)" "a purged open opportunity is closed as lost on its delete day" "got '$pl'"
ok "$(test "$(q "$T/a.db" "SELECT status FROM deals WHERE external_id = '$wonp'")" = won; echo $?)" "a purged won one keeps its outcome"
ph=$(q "$T/a.db" "SELECT h.status FROM deal_history h JOIN deals d ON d.id = h.deal_id WHERE d.external_id = '$purged' ORDER BY h.observed_at DESC LIMIT 1")
ok "$(test "$ph" = lost; echo $?)" "with a history row for the close" "got '$ph'"
grep -q "1 deleted in the PRM closed" "$T/out"
ok $? "the summary counts it" "$(grep deal "$T/out" | head -1)"
PRMCAST_NOW=$(off 61) sync "$T/a.db"
ok "$(test $? -eq 0 && ! grep -q "deleted in the PRM closed" "$T/out"; echo $?)" "a rerun closes nothing again" "$(cat "$T/out")"
# A delete log that starts after the run's start (older entries purged) is said.
faults "{\"delete_log_from\": $(off 2000 ms)}"
PRMCAST_NOW=$(off 2100) sync "$T/a.db"
ok "$(test $? -eq 0 && grep -q "delete log starts at" "$T/err"; echo $?)" "a delete log purged past the last run is warned about" "$(tail -2 "$T/err")"
faults '{}'

sync "$T/u.db"
dump_all "$T/u.db" >"$T/u.dump"
faults '{"slow_ms": 60}'
rand() { od -An -N2 -tu2 /dev/urandom | tr -d ' '; }
kills=0
total=$(q "$T/u.db" "SELECT (SELECT count(*) FROM partners) + (SELECT count(*) FROM deals)")
for round in 1 2; do
  # SIGKILL at a random record from the test build's fault hook: no timing.
  at=$(( $(rand) % (total / 4) + 1 ))
  PRMCAST_FAULT_KILL_AFTER=$at "$ROOT/build/prmcast-fault" --db "$T/k.db" run "$ROOT/tests/e2e/sync.lua" \
    connectors/salesforce.lua --batch 200 >/dev/null 2>>"$LOGS"
  [ $? -eq 137 ] && kills=$((kills + 1))
  echo "# round $round: kill -9 at record $at"
done
faults '{}'
ok "$(test "$kills" -eq 2; echo $?)" "syncs killed mid-run ($kills of 2)"
sync "$T/k.db" --batch 200
ok $? "rerun after kills"
dump_all "$T/k.db" >"$T/k.dump"
cmp -s "$T/u.dump" "$T/k.dump"
ok $? "killed-and-rerun store equals the uninterrupted one" "$(diff "$T/u.dump" "$T/k.dump" | head -4)"

faults '{"throttle": 5}'
sync "$T/t.db" --budget 8
ok $? "403 REQUEST_LIMIT_EXCEEDED storm ridden out" "$(tail -2 "$T/err")"
grep -q "5 retries (5 throttled)" "$T/out"
ok $? "throttles counted" "$(head -1 "$T/out")"
faults '{}'

faults '{"truncate_page": 2, "object": "Opportunity"}'
sync "$T/m.db"
ok "$(test $? -ne 0; echo $?)" "a truncated batch fails the sync"
grep -q "deal: malformed page 2 of $PEER_URL/services/data/v59.0/query/01gPEER[0-9]*-500: invalid or truncated JSON" "$T/err"
ok $? "error names object, URL and page" "$(grep -a malformed "$T/err" | head -1)"
ok "$(test -z "$(q "$T/m.db" "SELECT watermark FROM sync_state WHERE object = 'deal'")"; echo $?)" "no advance"
faults '{}'
sync "$T/m.db"
ok $? "rerun after the fault"
pd "$T/m.db" >"$T/m.pd"; pd "$T/u.db" >"$T/u.pd"
cmp -s "$T/m.pd" "$T/u.pd"
ok $? "ends equal to a clean sync"

SALESFORCE_ACCESS_TOKEN='00DPEER!wrongTokenValue_5521' sync "$T/c.db"
ok "$(test $? -ne 0; echo $?)" "a bad token fails"
grep -q "authentication failed (HTTP 401).*INVALID_SESSION_ID\|authentication failed (HTTP 401)" "$T/err"
ok $? "clearly" "$(tail -1 "$T/err")"
! grep -q "wrongTokenValue_5521" "$T/err"
ok $? "without echoing the token"
! grep -q -e "s3cr3tT0ken_91zz" "$LOGS" "$PEER_LOG"
ok $? "no secret in any log line ($(wc -l <"$LOGS") lines)"
done_testing
