#!/bin/sh
# Declared sync objects (`declare`, walked and stored in C) against the
# PartnerStack peer, with tests/e2e/declared_connector.lua: a field of each
# kind stored as declared, tenant fields of each type, a lookup miss and
# wrong-typed values rejected naming the field, a declared + Lua finish mix
# (every record; only where a path is true), and bad declarations refused
# at load. (test_sync_partnerstack.sh: the declared connector's full sync
# equals a file ingest, incremental, kill -9, malformed pages.)
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/peers.sh"

export PEER_PUBLIC_KEY=pk_d PEER_SECRET_KEY=sk_decl_secret_9
export PARTNERSTACK_PUBLIC_KEY=pk_d PARTNERSTACK_SECRET_KEY=sk_decl_secret_9
"$P" sample --out "$T/x" --partners 40 --deals 1500 --seed 11 >/dev/null
start_peer partnerstack "$T/x"
ok $? "peer started"
export PARTNERSTACK_BASE_URL="$PEER_URL"
C="$ROOT/tests/e2e/declared_connector.lua"
sync() {   # sync DB CONNECTOR [options]
  db=$1; c=$2; shift 2
  "$P" --db "$db" run "$ROOT/tests/e2e/sync.lua" "$c" --backoff 0.01 "$@" >"$T/out" 2>"$T/err"
}

sync "$T/a.db" "$C"
ok $? "declared sync" "$(tail -3 "$T/err")"
d=$(q "$T/a.db" "SELECT external_id FROM deals WHERE account IS NOT NULL AND contact_name LIKE '% %' AND partner_probability IS NOT NULL AND budget_confirmed IS NOT NULL AND expected_close IS NOT NULL ORDER BY external_id LIMIT 1")
csv() { "$PY" - "$T/x/$1" "$2" "$3" <<'PY'
import csv, sys
for r in csv.DictReader(open(sys.argv[1])):
    if r[sys.argv[2].split('=')[0]] == sys.argv[2].split('=')[1]:
        print(r[sys.argv[3]])
PY
}
row=$(q "$T/a.db" "SELECT account || '|' || contact_name || '|' || amount || '|' || stage || '|' || status || '|' || created_at || '|' || expected_close || '|' || partner_probability || '|' || budget_confirmed || '|' || updated_at FROM deals WHERE external_id = '$d'")
exp_name=$(csv deals.csv "Deal ID=$d" "Contact Name")
exp_amt=$(csv deals.csv "Deal ID=$d" "Deal Amount")
case "$row" in
  *"|$exp_name|"*) ok 0 "join: first and last name joined" ;;
  *) ok 1 "join: first and last name joined" "$row vs $exp_name" ;;
esac
ok "$(test "$(q "$T/a.db" "SELECT amount = $exp_amt FROM deals WHERE external_id = '$d'")" = 1; echo $?)" \
   "money: cents scaled by 0.01" "$row vs $exp_amt"
echo "$row" | grep -Eq '\|20[0-9]{2}-[0-9]{2}-[0-9]{2}\|20[0-9]{2}-[0-9]{2}-[0-9]{2}\|[01](\.[0-9]+)?\|[01]\|20[0-9-]+T[0-9:]+Z$'
ok $? "date (epoch ms, ISO), percent, bool and instant converted" "$row"
ok "$(test "$(q "$T/a.db" "SELECT count(*) FROM deals WHERE competitor = '(none)'")" -gt 0 && \
      test "$(q "$T/a.db" "SELECT count(*) FROM deals WHERE competitor IS NULL")" -eq 0; echo $?)" \
   "default: an absent competitor stored as the declared text"
ok "$(test "$(q "$T/a.db" "SELECT count(*) FROM deals WHERE status = 'open' AND stage IN ('closed_won', 'closed_lost')")" -eq 0 && \
      test "$(q "$T/a.db" "SELECT count(*) FROM deals WHERE status = 'won'")" -gt 0; echo $?)" "lookup: stage and status from one label"
ok "$(test "$(q "$T/a.db" "SELECT count(DISTINCT completeness) > 1 AND max(completeness) = 1.0 FROM deals")" = 1; echo $?)" \
   "completeness: the share of the listed paths present"
t3=$(q "$T/a.db" "SELECT external_id || '|' || amount || '|' || account FROM transactions WHERE external_id = 'T0000003'")
exp_t=$(csv transactions.csv "Transaction ID=T0000003" "Amount")
exp_acc=$(csv transactions.csv "Transaction ID=T0000003" "Account Name" | tr a-z A-Z)
ok "$(test "$t3" = "T0000003|$("$PY" -c "print(round($exp_t * 100, 1))")|$exp_acc"; echo $?)" \
   "number: unscaled; finish (every record) upper-cases the account" "$t3 vs $exp_t $exp_acc"
ok "$(test -z "$(q "$T/a.db" "SELECT 1 FROM transactions WHERE external_id = 'T0000001'")"; echo $?)" "finish returning false skips the record"
awk '$1 == "transaction" { exit !($7 == 1 && $6 == 1) }' "$T/out"
ok $? "counted as skipped, and the one finish refused as rejected" "$(grep transaction "$T/out")"
q "$T/a.db" "SELECT reason FROM ingest_rejects" | grep -q "^transaction T0000002: refused by finish$"
ok $? "the refusal's reason names the record" "$(q "$T/a.db" "SELECT reason FROM ingest_rejects")"
ok "$(test "$(q "$T/a.db" "SELECT type FROM partners WHERE type NOT IN ('reseller') LIMIT 1")" != ""; echo $?)" \
   "lookup keep_unknown: an unknown partner type passes as it is"

# Changes: tenant fields of each type, a lookup miss, wrong types, an archived deal.
wm=$(q "$T/a.db" "SELECT watermark FROM sync_state WHERE object = 'deal'")
later=$("$PY" -c "import datetime as d;print(int((d.datetime.strptime('$wm','%Y-%m-%dT%H:%M:%SZ').replace(tzinfo=d.timezone.utc)+d.timedelta(hours=2)).timestamp()*1000))")
set -- $(q "$T/a.db" "SELECT external_id FROM deals WHERE status = 'open' ORDER BY external_id LIMIT 9")
peer_update "{\"object\": \"deals\", \"key\": \"$1\", \"set\": {\"field_data\": {\"deal_type\": \"Renewal\", \"seats\": 12, \"decision_maker_identified\": \"Yes\", \"kickoff\": \"2026-03-04\"}}, \"updated_at\": $later}"
peer_update "{\"object\": \"deals\", \"key\": \"$2\", \"set\": {\"stage\": \"Bogus Stage\"}, \"updated_at\": $later}"
peer_update "{\"object\": \"deals\", \"key\": \"$3\", \"set\": {\"amount\": \"lots\"}, \"updated_at\": $later}"
peer_update "{\"object\": \"deals\", \"key\": \"$4\", \"set\": {\"field_data\": {\"seats\": true}}, \"updated_at\": $later}"
peer_update "{\"object\": \"deals\", \"key\": \"$5\", \"set\": {\"archived\": true, \"field_data\": {\"notes\": \"gone\"}}, \"updated_at\": $later}"
peer_update "{\"object\": \"deals\", \"key\": \"$6\", \"set\": {\"account_name\": [\"a\", \"b\"]}, \"updated_at\": $later}"
peer_update "{\"object\": \"deals\", \"key\": \"$7\", \"set\": {\"account_name\": {\"name\": \"Acme\"}}, \"updated_at\": $later}"
peer_update "{\"object\": \"deals\", \"key\": \"$8\", \"set\": {\"account_name\": true}, \"updated_at\": $later}"
peer_update "{\"object\": \"deals\", \"key\": \"$9\", \"set\": {\"field_data\": {\"deal_type\": {\"v\": 1}}}, \"updated_at\": $later}"
acct7=$(q "$T/a.db" "SELECT account FROM deals WHERE external_id = '$7'")
sync "$T/a.db" "$C"
ok $? "incremental declared sync" "$(tail -3 "$T/err")"
awk '$1 == "deal" { exit !($4 == 2 && $6 == 7) }' "$T/out"
ok $? "2 deals written, 7 rejected" "$(grep deal "$T/out")"
xf=$(q "$T/a.db" "SELECT group_concat(h.field || '=' || h.value, ' ') FROM (SELECT * FROM attr_history ORDER BY field) h JOIN deals d ON d.id = h.entity_id WHERE d.external_id = '$1' AND h.field LIKE 'x.%'")
ok "$(test "$xf" = "x.deal_type=Renewal x.dm=1 x.kickoff=2026-03-04 x.seats=12"; echo $?)" \
   "tenant fields: category, yesno, date and number stored" "got '$xf'"
rj() { q "$T/a.db" "SELECT reason FROM ingest_rejects WHERE reason LIKE 'deal $1:%'"; }
ok "$(test "$(rj "$2")" = "deal $2: stage: unknown value \"Bogus Stage\""; echo $?)" "a lookup miss rejects the record, naming field and value" "$(rj "$2")"
rj "$3" | grep -q "^deal $3: amount: "
ok $? "a string where money is expected: rejected, field named" "$(rj "$3")"
ok "$(test "$(rj "$4")" = "deal $4: field_data.seats (seats): not a number: \"true\""; echo $?)" \
   "a boolean for a number tenant field: rejected, field named" "$(rj "$4")"
ok "$(test "$(rj "$6")" = "deal $6: account_name: a JSON array where one value is expected"; echo $?)" \
   "an array where one value is declared: rejected, field named" "$(rj "$6")"
ok "$(test "$(rj "$7")" = "deal $7: account_name: a JSON object where one value is expected"; echo $?)" \
   "an object where one value is declared: rejected, field named (never stored NULL)" "$(rj "$7")"
ok "$(test "$(q "$T/a.db" "SELECT account FROM deals WHERE external_id = '$7'")" = "$acct7" && test -n "$acct7"; echo $?)" \
   "and the stored account is kept" "$acct7"
ok "$(test "$(rj "$8")" = "deal $8: account_name: JSON true where text is expected"; echo $?)" \
   "a boolean in a declared text field: rejected, field named" "$(rj "$8")"
rj "$9" | grep -q "^deal $9: field_data.deal_type (deal_type): not a category"
ok $? "an object for a category tenant field: rejected, field named" "$(rj "$9")"
ok "$(test "$(q "$T/a.db" "SELECT stage || '|' || status || '|' || notes FROM deals WHERE external_id = '$5'")" = "closed_lost|lost|archived: gone"; echo $?)" \
   "finish_when: the archived deal finished in Lua (inputs with their JSON types)"
ok "$(test "$(q "$T/a.db" "SELECT count(*) FROM deals WHERE notes LIKE 'archived:%'")" -eq 1; echo $?)" "and only that one"
ok "$(test "$(q "$T/a.db" "SELECT watermark FROM sync_state WHERE object = 'deal'")" \> "$wm"; echo $?)" "the watermark moved"

# A changed amount: the deal's new state is one history row, stamped with
# its update (the page's history rows wait and are written in one statement,
# r:load_json), and counted once.
d10=$(q "$T/a.db" "SELECT external_id FROM deals WHERE status = 'open' ORDER BY external_id LIMIT 1 OFFSET 9")
h10=$(q "$T/a.db" "SELECT count(*) FROM deal_history h JOIN deals d ON d.id = h.deal_id WHERE d.external_id = '$d10'")
later2=$((later + 3600000))
peer_update "{\"object\": \"deals\", \"key\": \"$d10\", \"set\": {\"amount\": 123456}, \"updated_at\": $later2}"
sync "$T/a.db" "$C"
ok $? "incremental declared sync (a changed amount)" "$(tail -3 "$T/err")"
awk '$1 == "deal" { exit !($4 == 1) }' "$T/out"
ok $? "1 deal written (the refused ones read again are refused again)" "$(grep deal "$T/out")"
ok "$(test "$(q "$T/a.db" "SELECT count(*) FROM deal_history h JOIN deals d ON d.id = h.deal_id WHERE d.external_id = '$d10'")" -eq $((h10 + 1)); echo $?)" \
   "the change wrote one history row"
at10=$("$PY" -c "import datetime as d;print(d.datetime.fromtimestamp($later2/1000, d.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ'))")
ok "$(test "$(q "$T/a.db" "SELECT h.observed_at || '|' || h.amount FROM deal_history h JOIN deals d ON d.id = h.deal_id WHERE d.external_id = '$d10' ORDER BY h.observed_at DESC LIMIT 1")" = "$at10|1234.56"; echo $?)" \
   "the history row has the new amount at the deal's update" \
   "$(q "$T/a.db" "SELECT h.observed_at || '|' || h.amount FROM deal_history h JOIN deals d ON d.id = h.deal_id WHERE d.external_id = '$d10' ORDER BY h.observed_at DESC LIMIT 1") vs $at10"

# Bad declarations are refused at load, naming file and field.
bad() {   # bad NAME LUA-EDIT EXPECTED
  sed "$2" "$C" >"$T/bad_$1.lua"
  sync "$T/b.db" "$T/bad_$1.lua"
  rc=$?
  ok "$(test $rc -ne 0 && grep -q "$3" "$T/err"; echo $?)" "bad declaration ($1) refused" "$(tail -2 "$T/err")"
}
bad kind 's/"money", 0.01 }, currency/"moolah", 0.01 }, currency/' "fields.deal.amount: unknown kind 'moolah'"
bad field 's/account = "account_name",/acct = "account_name",/' "the store's deal has no field 'acct'"
bad both 's/finish_when = "archived",/finish_when = "archived", map = function() end,/' "field 'objects\[2\].map' must be absent when .declare declares the fields"
bad when 's/finish_when = "archived",/finish_when = 3,/' "objects\[2\].finish_when' must be a path"
done_testing
