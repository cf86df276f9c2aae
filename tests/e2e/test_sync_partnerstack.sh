#!/bin/sh
# PartnerStack over HTTP against tests/peers/partnerstack.py: a full sync
# equals a file ingest of the same export; an incremental sync picks up
# exactly the changed records; kill -9 at random points then a rerun equals
# an uninterrupted run; a throttling storm is ridden out within the budget
# and a longer one fails cleanly; malformed pages stop the object with a
# clear error and no advance; wrong credentials fail without echoing the
# secret; no secret in any log line.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/peers.sh"

SECRET=sk_live_Zq81xVw0pLm27
PUB=pk_live_4Hc9TnR2
export PEER_PUBLIC_KEY=$PUB PEER_SECRET_KEY=$SECRET
export PARTNERSTACK_PUBLIC_KEY=$PUB PARTNERSTACK_SECRET_KEY=$SECRET
LOGS="$T/all-logs"
: >"$LOGS"

"$P" sample --out "$T/x" --partners 40 --deals 1500 --seed 11 >/dev/null
ok $? "sample written"
start_peer partnerstack "$T/x"
ok $? "PartnerStack peer started ($PEER_URL)"
export PARTNERSTACK_BASE_URL="$PEER_URL"

sync() {   # sync DB [options] : runs the sync, stderr appended to the logs
  db=$1; shift
  "$P" --db "$db" run "$ROOT/tests/e2e/sync.lua" connectors/partnerstack.lua --backoff 0.01 "$@" \
    >"$T/out" 2>"$T/err"
  rc=$?
  cat "$T/out" "$T/err" >>"$LOGS"
  return $rc
}

# ---- full sync = file ingest -------------------------------------------------
sync "$T/a.db"
ok $? "full sync" "$(tail -3 "$T/err")"
cp "$T/out" "$T/out.first"
grep -q "deal .* synced" "$T/out"
ok $? "deals synced" "$(cat "$T/out")"
ok "$(test "$(q "$T/a.db" 'SELECT count(*) FROM deals')" -gt 1200; echo $?)" "deals stored"
"$P" --db "$T/f.db" ingest "$T/x" --quiet >/dev/null 2>&1
dump_current "$T/a.db" >"$T/a.cur"
dump_current "$T/f.db" >"$T/f.cur"
cmp -s "$T/a.cur" "$T/f.cur"
ok $? "full sync equals a file ingest of the same data" "$(diff "$T/a.cur" "$T/f.cur" | head -6)"
grep -q "GET $PEER_URL/api/v2/deals?limit=250&starting_after=" "$T/err"
ok $? "requests logged with method and URL, cursor pagination"
q "$T/a.db" "SELECT watermark FROM sync_state WHERE object = 'deal'" | grep -q '^20[0-9-]*T'
ok $? "deal watermark stored"
ok "$(test "$(q "$T/a.db" "SELECT count(*) FROM sync_state WHERE object LIKE '%#run' AND watermark IS NOT NULL")" -eq 0; echo $?)" \
   "no unfinished run left behind"

# ---- a document object: an FX-rate CSV feed at a URL --------------------------------
FX_RATES_URL="$PEER_URL/__peer/feeds/fx_rates.csv" sync "$T/a.db" --object fx
ok $? "FX feed synced" "$(tail -2 "$T/err")"
sqlite3 "$T/a.db" "SELECT currency, date, rate FROM fx_rates ORDER BY 1, 2" >"$T/a.fx"
sqlite3 "$T/f.db" "SELECT currency, date, rate FROM fx_rates ORDER BY 1, 2" >"$T/f.fx"
cmp -s "$T/a.fx" "$T/f.fx" && test -s "$T/a.fx"
ok $? "FX rates from the feed equal the export's"
grep -q "fx .* skipped (FX_RATES_URL not set)" "$T/out.first"
ok $? "without FX_RATES_URL the feed is skipped" "$(cat "$T/out.first")"

# ---- rerun and incremental -------------------------------------------------------
sync "$T/a.db"
ok $? "second sync"
ok "$(grep -c 'starting_after' "$T/err" | awk '{print ($1 < 3) ? 0 : 1}')" "second sync fetches only the overlap window"
awk '$1 == "total" { exit !($4 == 0) }' "$T/out"
ok $? "nothing written when nothing changed" "$(tail -1 "$T/out")"
wm=$(q "$T/a.db" "SELECT watermark FROM sync_state WHERE object = 'deal'")
later=$("$PY" -c "import datetime as d;print(int((d.datetime.strptime('$wm','%Y-%m-%dT%H:%M:%SZ').replace(tzinfo=d.timezone.utc)+d.timedelta(hours=2)).timestamp()*1000))")
open3=$(q "$T/a.db" "SELECT external_id FROM deals WHERE status = 'open' ORDER BY external_id LIMIT 3")
for d in $open3; do
  peer_update "{\"object\": \"deals\", \"key\": \"$d\", \"set\": {\"stage\": \"Negotiation\", \"amount\": 4242400}, \"updated_at\": $later}"
done
peer_update "{\"object\": \"partnerships\", \"key\": \"pshp_P00002\", \"set\": {\"group\": {\"key\": \"gold\", \"name\": \"Gold\"}}, \"updated_at\": $later}"
hist0=$(q "$T/a.db" "SELECT count(*) FROM deal_history")
: >"$PEER_LOG"
sync "$T/a.db"
ok $? "incremental sync"
awk '$1 == "deal" { exit !($4 == 3) } ' "$T/out"
ok $? "incremental sync wrote exactly the 3 changed deals" "$(cat "$T/out")"
awk '$1 == "partner" { exit !($4 == 1) } ' "$T/out"
ok $? "and the 1 changed partner"
ok "$(test "$(q "$T/a.db" "SELECT count(*) FROM deals WHERE amount = 42424 AND stage = 'negotiation'")" -eq 3; echo $?)" "changes stored"
ok "$(test "$(q "$T/a.db" "SELECT count(*) FROM deal_history")" -eq $((hist0 + 3)); echo $?)" "one history row per changed deal"
grep -q '"min_updated"' "$PEER_LOG"
ok $? "incremental requests carry min_updated"
ok "$(test "$(q "$T/a.db" "SELECT tier FROM partners WHERE external_id = 'P00002'")" = Gold; echo $?)" "partner tier change synced"

# Declared tenant fields (the deal object's `fields`): stored in attr_history
# as x.<name> at the deal's updated_at, a row only on change, so a value is
# read as of any date; a wrong type rejects the record naming the field.
tf=$(q "$T/a.db" "SELECT external_id FROM deals WHERE status = 'open' ORDER BY external_id LIMIT 1 OFFSET 5")
peer_update "{\"object\": \"deals\", \"key\": \"$tf\", \"set\": {\"field_data\": {\"deal_type\": \"Renewal\", \"decision_maker_identified\": true}}, \"updated_at\": $later}"
sync "$T/a.db"
ok $? "sync with declared deal fields" "$(tail -3 "$T/err")"
xf() { q "$T/a.db" "SELECT h.field || '=' || coalesce(h.value, 'NULL') || '@' || h.observed_at FROM attr_history h JOIN deals d ON d.id = h.entity_id WHERE h.entity = 'deal' AND d.external_id = '$tf' AND h.field LIKE 'x.%' ORDER BY h.field, h.observed_at" | tr '\n' ' '; }
at1=$("$PY" -c "import datetime as d;print(d.datetime.fromtimestamp($later/1000, d.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ'))")
ok "$(test "$(xf)" = "x.deal_type=Renewal@$at1 x.decision_maker_identified=1@$at1 "; echo $?)" "deal_type and decision maker stored at the deal's updated_at" "got '$(xf)'"
xt=$(q "$T/a.db" "SELECT key || '=' || value FROM settings WHERE key LIKE 'field_type.%' ORDER BY key" | tr '\n' ' ')
ok "$(test "$xt" = "field_type.x.deal_type=category field_type.x.decision_maker_identified=yesno field_type.x.use_case=category "; echo $?)" "each declared field's type kept (settings field_type.x.<name>)" "got '$xt'"
peer_update "{\"object\": \"deals\", \"key\": \"$tf\", \"set\": {\"field_data\": {\"deal_type\": \"Expansion\"}}, \"updated_at\": $((later + 3600000))}"
sync "$T/a.db"
at2=$("$PY" -c "import datetime as d;print(d.datetime.fromtimestamp(($later + 3600000)/1000, d.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ'))")
asof() { q "$T/a.db" "SELECT h.value FROM attr_history h JOIN deals d ON d.id = h.entity_id WHERE h.entity = 'deal' AND d.external_id = '$tf' AND h.field = 'x.deal_type' AND h.observed_at <= '$1' ORDER BY h.observed_at DESC LIMIT 1"; }
ok "$(test "$(asof "$at1")" = Renewal && test "$(asof "$at2")" = Expansion; echo $?)" "a change keeps the old value as of its date" "$(xf)"
ok "$(test "$(xf | wc -w)" -eq 3; echo $?)" "an unchanged field writes no row" "$(xf)"
peer_update "{\"object\": \"deals\", \"key\": \"$tf\", \"set\": {\"field_data\": {\"decision_maker_identified\": \"perhaps\"}}, \"updated_at\": $((later + 7200000))}"
sync "$T/a.db"
q "$T/a.db" "SELECT reason FROM ingest_rejects WHERE reason LIKE '%$tf%'" | grep -q 'field_data.decision_maker_identified (decision_maker_identified): not a yesno: "perhaps"'
ok $? "a mistyped field rejects the record, naming it" "$(q "$T/a.db" "SELECT reason FROM ingest_rejects" | tail -2)"
peer_update "{\"object\": \"deals\", \"key\": \"$tf\", \"set\": {\"field_data\": {\"decision_maker_identified\": false}}, \"updated_at\": $((later + 10800000))}"

# An archived deal is not kept open: lost (a won one would keep its outcome).
arch=$(q "$T/a.db" "SELECT external_id FROM deals WHERE status = 'open' ORDER BY external_id DESC LIMIT 1")
peer_update "{\"object\": \"deals\", \"key\": \"$arch\", \"set\": {\"archived\": true}, \"updated_at\": $((later + 10800000))}"
sync "$T/a.db"
ok "$(test "$(q "$T/a.db" "SELECT stage || '|' || status FROM deals WHERE external_id = '$arch'")" = "closed_lost|lost"; echo $?)" "an archived open deal is stored as lost, not kept open"
ok "$(test "$(q "$T/a.db" "SELECT value FROM attr_history h JOIN deals d ON d.id = h.entity_id WHERE d.external_id = '$tf' AND h.field = 'x.decision_maker_identified' ORDER BY h.observed_at DESC LIMIT 1")" = 0; echo $?)" "the fixed field stored on the next sync"

# Rewards the store did not know: a trigger outside its kinds (the peer's
# distributor_margin and a tenant's own) is kept as 'other' with the raw
# trigger, a reward not paid yet is kept with its status and no paid date;
# none is rejected. Paid later, the same row gets its date.
set -- $(q "$T/a.db" "SELECT external_id FROM payouts ORDER BY external_id LIMIT 3")
peer_update "{\"object\": \"rewards\", \"key\": \"$1\", \"set\": {\"trigger\": {\"key\": \"distributor_margin\"}}, \"updated_at\": $later}"
peer_update "{\"object\": \"rewards\", \"key\": \"$2\", \"set\": {\"trigger\": {\"key\": \"Co-Sell Bounty\"}}, \"updated_at\": $later}"
peer_update "{\"object\": \"rewards\", \"key\": \"$3\", \"set\": {\"reward_status\": \"approved\"}, \"updated_at\": $later}"
sync "$T/a.db"
ok $? "sync with unknown reward triggers and an unpaid reward" "$(tail -3 "$T/err")"
awk '$1 == "payout" { exit !($4 == 3 && $6 == 0) }' "$T/out"
ok $? "all 3 written, none rejected" "$(grep payout "$T/out")"
pk() { q "$T/a.db" "SELECT kind || '|' || coalesce(kind_raw, '') || '|' || coalesce(paid_at, '') || '|' || coalesce(status, '') FROM payouts WHERE external_id = '$1'"; }
ok "$(pk "$1" | grep -q '^other|distributor_margin|20..-..-..|paid$'; echo $?)" "distributor_margin kept as other, raw trigger kept" "$(pk "$1")"
ok "$(pk "$2" | grep -q '^other|Co-Sell Bounty|'; echo $?)" "a tenant's own trigger too" "$(pk "$2")"
ok "$(pk "$3" | grep -q '^commission|commission||approved$'; echo $?)" "an approved, unpaid reward: its status, no paid date" "$(pk "$3")"
peer_update "{\"object\": \"rewards\", \"key\": \"$3\", \"set\": {\"reward_status\": \"paid\"}, \"updated_at\": $((later + 60000))}"
sync "$T/a.db"
ok "$(pk "$3" | grep -q '^commission|commission|20..-..-..|paid$'; echo $?)" "paid later: the same payout gets its paid date" "$(pk "$3")"

# ---- kill -9 at random points, then rerun ----------------------------------------
sync "$T/u.db" --batch 300
ok $? "uninterrupted reference sync"
dump_all "$T/u.db" >"$T/u.dump"
rand() { od -An -N2 -tu2 /dev/urandom | tr -d ' '; }
kills=0
total=$(q "$T/u.db" "SELECT (SELECT count(*) FROM partners) + (SELECT count(*) FROM deals)")
for round in 1 2 3; do
  # SIGKILL at a random record of the run, from the test build's fault
  # hook: no timing involved.
  at=$(( $(rand) % (total / 6) + 1 ))
  PRMCAST_FAULT_KILL_AFTER=$at "$ROOT/build/prmcast-fault" --db "$T/k.db" run "$ROOT/tests/e2e/sync.lua" \
    connectors/partnerstack.lua --batch 300 >/dev/null 2>>"$LOGS"
  [ $? -eq 137 ] && kills=$((kills + 1))
  echo "# round $round: kill -9 at record $at"
done
faults '{}'
ok "$(test "$kills" -eq 3; echo $?)" "syncs killed mid-run ($kills of 3)"
sync "$T/k.db" --batch 300
ok $? "rerun after kills completes"
dump_all "$T/k.db" >"$T/k.dump"
cmp -s "$T/u.dump" "$T/k.dump"
ok $? "killed-and-rerun store equals the uninterrupted one" "$(diff "$T/u.dump" "$T/k.dump" | head -5)"
sqlite3 "$T/k.db" 'PRAGMA integrity_check' | grep -qx ok
ok $? "SQLite integrity after kills"

# ---- throttling -------------------------------------------------------------------
faults '{"throttle": 6, "retry_after": "0"}'
sync "$T/t.db" --budget 10
ok $? "a throttling storm of 6 is ridden out with a budget of 10" "$(tail -2 "$T/err")"
grep -q "6 retries (6 throttled), budget left 4" "$T/out"
ok $? "retries and budget reported" "$(head -1 "$T/out")"
grep -q ' 429 .* throttled' "$T/err"
ok $? "throttled responses logged"
faults '{"throttle": 100, "retry_after": "0"}'
sync "$T/t2.db" --budget 3
rc=$?
ok "$(test $rc -ne 0; echo $?)" "a storm past the budget fails the sync"
grep -q "retry budget exhausted" "$T/err"
ok $? "with 'retry budget exhausted'" "$(tail -2 "$T/err")"
ok "$(test -z "$(q "$T/t2.db" "SELECT watermark FROM sync_state WHERE object = 'partner'")"; echo $?)" "and no watermark moved"
faults '{}'

# ---- malformed pages ------------------------------------------------------------
for fault in truncate_page html_page wrong_type_page repeated_items_page; do
  rm -f "$T/m.db"*
  faults "{\"$fault\": 2, \"object\": \"deals\"}"
  sync "$T/m.db"
  rc=$?
  ok "$(test $rc -ne 0; echo $?)" "$fault: the sync fails"
  case $fault in
    truncate_page) want="invalid or truncated JSON" ;;
    html_page) want="not JSON (text/html" ;;
    wrong_type_page) want="'data.items' is an object, not a list" ;;
    repeated_items_page) want="repeated key 'items' in the page's envelope" ;;
  esac
  grep -q "deal: malformed page 2 of $PEER_URL/api/v2/deals?limit=250&starting_after=D[0-9]*: $want" "$T/err"
  ok $? "$fault: error names object, URL and page" "$(grep malformed "$T/err" | head -2)"
  ok "$(test -z "$(q "$T/m.db" "SELECT watermark FROM sync_state WHERE object = 'deal'")"; echo $?)" "$fault: deal watermark not advanced"
  ok "$(test "$(q "$T/m.db" "SELECT count(*) FROM deals")" -eq 250; echo $?)" "$fault: only the good page stored"
done
# The Lua-mapped path (cjson) refuses the repeated records array as the walk does.
faults '{"repeated_items_page": 2, "object": "deals"}'
for how in walk decode; do
  "$P" --db "$T/probe.db" run "$ROOT/tests/e2e/pages_probe.lua" "$PEER_URL" "$PARTNERSTACK_PUBLIC_KEY" \
    "$PARTNERSTACK_SECRET_KEY" "$how" >"$T/probe.out" 2>>"$LOGS"
  grep -q "^deal: malformed page 2 of .*: repeated key 'items' in the page's envelope" "$T/probe.out"
  ok $? "repeated records array, $how path: the page refused" "$(cat "$T/probe.out")"
done
faults '{}'
a=$("$P" --db "$T/probe.db" run "$ROOT/tests/e2e/pages_probe.lua" "$PEER_URL" "$PARTNERSTACK_PUBLIC_KEY" "$PARTNERSTACK_SECRET_KEY" walk 2>>"$LOGS")
b=$("$P" --db "$T/probe.db" run "$ROOT/tests/e2e/pages_probe.lua" "$PEER_URL" "$PARTNERSTACK_PUBLIC_KEY" "$PARTNERSTACK_SECRET_KEY" decode 2>>"$LOGS")
ok "$(test "$a" = "$b" && case "$a" in "ok "*) true ;; *) false ;; esac; echo $?)" "a clean listing: both paths read the same pages and records" "$a / $b"
q "$T/m.db" "SELECT watermark FROM sync_state WHERE object = 'payout'" | grep -q '^20'
ok $? "the other objects still synced"
faults '{}'
sync "$T/m.db"
ok $? "after the fault clears, the rerun completes"
dump_current "$T/m.db" >"$T/m.cur"
dump_current "$T/u.db" >"$T/u.cur"
cmp -s "$T/m.cur" "$T/u.cur"
ok $? "and equals a clean sync" "$(diff "$T/m.cur" "$T/u.cur" | head -4)"

# ---- bad records -------------------------------------------------------------------
rm -f "$T/r.db"*
faults '{"bad_records": 2, "object": "deals"}'
sync "$T/r.db"
ok $? "mistyped records do not fail the sync"
ok "$(test "$(q "$T/r.db" "SELECT count(*) FROM ingest_rejects WHERE source = 'partnerstack' AND reason LIKE 'deal D%amount%'")" -eq 2; echo $?)" \
   "the 2 mistyped deals are rejected with key and field"
faults '{}'
# An updated_at that is a number but no instant (1e300) is not the
# watermark's maximum: the batch's advance is kept, as a clean sync's.
rm -f "$T/h.db"*
faults '{"huge_updated": 2, "object": "deals"}'
sync "$T/h.db"
wm() { q "$1" "SELECT watermark FROM sync_state WHERE source = 'partnerstack' AND object = 'deal'"; }
ok "$(test -n "$(wm "$T/h.db")" && test "$(wm "$T/h.db")" = "$(wm "$T/u.db")"; echo $?)" \
   "a huge numeric updated_at does not hold the watermark back" "$(wm "$T/h.db") vs $(wm "$T/u.db")"
faults '{}'

# ---- credentials -----------------------------------------------------------------
PARTNERSTACK_SECRET_KEY=wrong_Secret_77aa1 sync "$T/c.db"
rc=$?
ok "$(test $rc -ne 0; echo $?)" "wrong credentials fail"
grep -q "authentication failed (HTTP 401); check PARTNERSTACK_PUBLIC_KEY, PARTNERSTACK_SECRET_KEY" "$T/err"
ok $? "with a clear message" "$(tail -1 "$T/err")"
! grep -q "wrong_Secret_77aa1" "$T/err"
ok $? "that does not echo the secret"
grep -q '"auth": "bad"' "$PEER_LOG"
ok $? "the peer saw bad credentials"
PARTNERSTACK_SECRET_KEY= sync "$T/c.db"
grep -q "PARTNERSTACK_SECRET_KEY is not set" "$T/err"
ok $? "a missing key is named"

# ---- the write endpoint (for the outbox sender) ------------------------------------
d1=$(q "$T/a.db" "SELECT external_id FROM deals WHERE status = 'open' ORDER BY external_id LIMIT 1")
: >"$PEER_LOG"
"$P" --db "$T/a.db" run "$ROOT/tests/e2e/writeback_probe.lua" connectors/partnerstack.lua "$d1" \
  >"$T/wb" 2>>"$LOGS"
ok "$(test "$(cat "$T/wb")" = "$(printf '200\t400')"; echo $?)" "PATCH with vendor fields 200, an undeclared field 400" "$(cat "$T/wb")"
"$PY" - "$PEER_LOG" "$d1" <<'PY'
import json, sys
log = [json.loads(l) for l in open(sys.argv[1])]
w = [e for e in log if e["method"] == "PATCH"]
assert len(w) == 2, w
assert w[0]["path"] == "/api/v2/deals/" + sys.argv[2] and w[0]["status"] == 200
assert w[0]["idempotency_key"].endswith("-run-1")
names = {f["api_name"] for f in w[0]["body"]["fields"]}
assert names == {"ai_forecast_score", "ai_risk_flags", "ai_close_probability", "ai_model_version",
                 "ai_last_scored_at", "ai_drivers"}, names
assert set(w[0]["body"]) == {"fields"}, w[0]["body"]
assert w[1]["status"] == 400
PY
ok $? "the peer logged one write with only vendor-owned fields and its Idempotency-Key"

# ---- the Link-header paginator (a generic list on the peer) ------------------------
"$P" --db "$T/a.db" run "$ROOT/tests/e2e/link_probe.lua" "$PEER_URL" >"$T/link" 2>>"$LOGS"
ok "$(test "$(cat "$T/link")" = "$(printf '3\t25\tL000\tL024')"; echo $?)" \
   "Link rel=next followed: 3 pages, 25 items, none twice" "$(cat "$T/link")"

# ---- a resume cursor that no longer exists ------------------------------------------
faults '{"slow_ms": 40}'
rm -f "$T/g.db"*
"$P" --db "$T/g.db" run "$ROOT/tests/e2e/sync.lua" connectors/partnerstack.lua --batch 250 \
  >/dev/null 2>>"$LOGS" &
pid=$!
i=0
while [ $i -lt 300 ]; do
  st=$(q "$T/g.db" "SELECT watermark FROM sync_state WHERE object = 'deal#run' AND watermark IS NOT NULL" 2>/dev/null)
  [ -n "$st" ] && break
  sleep 0.02; i=$((i + 1))
done
kill -9 "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
faults '{}'
# Read the cursor after the kill: the run may have committed another batch.
st=$(q "$T/g.db" "SELECT watermark FROM sync_state WHERE object = 'deal#run'")
gone=$(echo "$st" | sed -n 's/.*"state":"[0-9]* [0-9]* \([^"]*\)".*/\1/p')
ok "$(test -n "$gone"; echo $?)" "killed with a saved deal cursor ($gone)"
curl -s -X POST --data "{\"object\": \"deals\", \"key\": \"$gone\"}" "$PEER_URL/__peer/delete" >/dev/null
sync "$T/g.db" --batch 250
ok $? "the rerun completes although its cursor record was deleted" "$(tail -2 "$T/err")"
grep -q "deal: cannot resume after page [0-9]* (.*HTTP 400.*); restarting the run's pages" "$T/err"
ok $? "and says it restarted the run's pages" "$(head -c 600 "$T/err")"
ok "$(test "$(q "$T/g.db" "SELECT count(*) FROM deals")" -eq "$(q "$T/u.db" "SELECT count(*) FROM deals")"; echo $?)" \
   "no deal missed"

# ---- no secret anywhere ------------------------------------------------------------
b64=$(printf '%s:%s' "$PUB" "$SECRET" | base64)
! grep -q -e "$SECRET" -e "$b64" "$LOGS" "$PEER_LOG"
ok $? "no secret in any log line ($(wc -l <"$LOGS") lines)"
done_testing
