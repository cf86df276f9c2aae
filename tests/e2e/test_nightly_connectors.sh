#!/bin/sh
# The nightly job end to end on every HTTP connector, as a new user runs it
# from cron (issue 10, "Done when"): the README's environment variables set,
# `prmcast run scripts/nightly.lua connectors/<prm>.lua` syncs the PRM's test
# peer, scores and writes the scores back; each open deal's scores reach the
# peer once; a second night with nothing changed sends nothing; a deal changed
# in the PRM is sent once more; no partner-entered field is touched (checked
# in the peer's own records); wrong credentials fail clearly without the
# secret. The models learn from deal history, which these APIs (but
# Salesforce's) do not serve: each store is first given the PRM's export
# (`ingest DIR --source <prm>`), as the README says a new tenant does; a
# store with only the sync waits for history instead of failing.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/peers.sh"
cd "$T" || exit 1
export PRMCAST_NOW=2026-11-20
"$P" sample --out x --partners 30 --deals 1500 --seed 23 >/dev/null
ok $? "sample written"
# Changes in the PRM during the day of the run (after every record's own
# update, before the run's as-of).
CHANGED_AT=$("$PY" -c "import datetime as d;print(int(d.datetime(2026,11,20,12,tzinfo=d.timezone.utc).timestamp()*1000))")

cat >writes.py <<'PY'
# writes.py PEER_LOG -> "total deal=count ..." of the write-backs the peer took
import json, sys, collections
n = collections.Counter()
for line in open(sys.argv[1]):
    e = json.loads(line)
    if e.get("method") not in ("PATCH", "POST") or e.get("status", 0) >= 300 or "/__peer/" in e.get("path", ""):
        continue
    b = e.get("body")
    if isinstance(b, dict) and isinstance(b.get("input"), list):      # Allbound {"input": [...]}
        for it in b["input"]:
            n[it.get("id")] += 1
    else:
        n[e["path"].rstrip("/").rsplit("/", 1)[-1]] += 1
print(sum(n.values()), " ".join("%s=%d" % kv for kv in sorted(n.items())))
PY
cat >untouched.py <<'PY'
# untouched.py BEFORE AFTER -> the deals whose partner-entered fields differ
# (vendor-owned fields and the API's own modification stamps left out), and
# how many deals carry a vendor-owned value after.
import json, sys
STAMPS = {"updated_at", "Updated", "LastModifiedDate", "SystemModstamp"}
def strip(rec, vendor):
    out = {}
    for k, v in rec.items():
        if k in vendor or k in STAMPS:
            continue
        if k == "field_data" and isinstance(v, dict):                 # PartnerStack custom values
            v = {a: b for a, b in v.items() if a not in vendor}
        if k == "fields" and isinstance(v, list):
            v = [f for f in v if not (isinstance(f, dict) and f.get("api_name") in vendor)]
        out[k] = v
    return out
a, b = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
vendor = set(b["vendor"])
diff = [k for k in a["records"] if strip(a["records"][k], vendor) != strip(b["records"].get(k, {}), vendor)]
def has_vendor(r):
    fd = r.get("field_data") if isinstance(r.get("field_data"), dict) else {}
    return any(r.get(v) is not None or fd.get(v) is not None for v in vendor)
scored = sum(1 for r in b["records"].values() if has_vendor(r))
print(len(diff), scored, " ".join(diff[:3]))
PY

# night PRM DB [VAR=VALUE...]: one nightly run with the connector's variables.
night() {
  prm=$1 db=$2; shift 2
  (cd "$ROOT" && env "$@" "$P" --db "$db" run scripts/nightly.lua "connectors/$prm.lua") \
    >"$T/night.out" 2>"$T/night.err"
}
records() { curl -s "$PEER_URL/__peer/records?object=$1"; }

for prm in partnerstack impartner allbound salesforce; do
  case $prm in
    partnerstack) SECRET=sk_live_ps_5Ue8rT; export PEER_PUBLIC_KEY=pk_ps PEER_SECRET_KEY=$SECRET
      VARS="PARTNERSTACK_PUBLIC_KEY=pk_ps PARTNERSTACK_SECRET_KEY=$SECRET"; BAD="PARTNERSTACK_SECRET_KEY=sk_live_WRONG_41"
      URLVAR=PARTNERSTACK_BASE_URL OBJ=deals AMOUNT=amount SCALE=100 ;;
    impartner) SECRET=imp_live_k3Yw7Q; export PEER_API_KEY=$SECRET PEER_TENANT_ID=77
      VARS="IMPARTNER_API_KEY=$SECRET IMPARTNER_TENANT_ID=77"; BAD="IMPARTNER_API_KEY=imp_live_WRONG_41"
      URLVAR=IMPARTNER_BASE_URL OBJ=Opportunity AMOUNT=Amount SCALE=1 ;;
    allbound) SECRET=ab_live_q8Zr2P; export PEER_API_KEY=$SECRET PEER_INSTANCE=acme
      VARS="ALLBOUND_API_KEY=$SECRET ALLBOUND_INSTANCE=acme"; BAD="ALLBOUND_API_KEY=ab_live_WRONG_41"
      URLVAR=ALLBOUND_BASE_URL OBJ=deals AMOUNT=amount SCALE=1 ;;
    salesforce) SECRET='00DPEER!nightly_T0k3n_x9'; export PEER_ACCESS_TOKEN=$SECRET
      VARS="SALESFORCE_ACCESS_TOKEN=$SECRET"; BAD="SALESFORCE_ACCESS_TOKEN=00DPEER!WRONG_41"
      URLVAR=SALESFORCE_INSTANCE_URL OBJ=Opportunity AMOUNT=Amount SCALE=1 ;;
  esac
  start_peer $prm "$T/x"; ok $? "$prm: peer started"
  VARS="$URLVAR=$PEER_URL $VARS"
  # shellcheck disable=SC2086
  set -- $VARS

  # A store with only the sync: no history to learn from yet, said plainly.
  if [ $prm = partnerstack ]; then
    night $prm "$T/$prm-new.db" "$@"
    ok "$(test $? -eq 0 && grep -q "no model yet" night.out; echo $?)" "$prm: a first night with no history waits for it, does not fail" "$(tail -3 night.err)"
    ok "$(test "$("$PY" writes.py "$PEER_LOG" | cut -d' ' -f1)" -eq 0; echo $?)" "$prm: and sends nothing"
  fi

  "$P" --db "$T/$prm.db" ingest x --source $prm --quiet >/dev/null 2>&1; ok $? "$prm: the PRM's export ingested once for its history"
  records $OBJ >before.json
  night $prm "$T/$prm.db" "$@"
  ok $? "$prm: nightly run" "$(grep -v ' http ' night.err | tail -3)"
  ok "$(grep -q "^sync $prm" night.out && grep -q "^  deal .*synced" night.out; echo $?)" "$prm: the PRM synced" "$(head -3 night.out)"
  queued=$(sed -n 's/^score run 1 .* \([0-9]*\) write-back payloads queued.*/\1/p' night.out)
  ok "$(test -n "$queued" && test "$queued" -gt 20; echo $?)" "$prm: open deals scored and queued ($queued)" "$(grep '^score run' night.out)"
  set -- $("$PY" writes.py "$PEER_LOG")
  n1=$1; shift
  ok "$(test "$n1" -eq "$queued" && ! echo "$*" | grep -q '=[2-9]'; echo $?)" "$prm: each scored deal written back once ($n1 writes)" "$*"
  grep -q "writeback $prm: $queued sent, 0 to retry, 0 dead letters" night.out
  ok $? "$prm: the night says so" "$(grep "^  writeback" night.out)"
  records $OBJ >after.json
  set -- $("$PY" untouched.py before.json after.json)
  ok "$(test "$1" -eq 0; echo $?)" "$prm: no partner-entered field touched at the peer" "$*"
  ok "$(test "$2" -eq "$queued"; echo $?)" "$prm: the vendor-owned fields set on the $queued scored deals" "$*"

  # shellcheck disable=SC2086
  set -- $VARS
  night $prm "$T/$prm.db" "$@"
  ok $? "$prm: second night" "$(tail -2 night.err)"
  ok "$(test "$("$PY" writes.py "$PEER_LOG" | cut -d' ' -f1)" -eq "$n1" && grep -q "writeback $prm: 0 sent" night.out; echo $?)" \
    "$prm: nothing changed, nothing sent" "$(grep -e '^score run' -e '^  writeback' night.out)"

  # A deal changed in the PRM (its amount, five times over) is sent once more.
  deal=$(q "$T/$prm.db" "SELECT external_id FROM deals WHERE source = '$prm' AND status = 'open' AND amount > 0 ORDER BY external_id LIMIT 1")
  amt=$(q "$T/$prm.db" "SELECT CAST(amount * 5 * $SCALE AS INTEGER) FROM deals WHERE source = '$prm' AND external_id = '$deal'")
  [ $prm = allbound ] && amt="\"$amt\""
  peer_update "{\"object\": \"$OBJ\", \"key\": \"$deal\", \"set\": {\"$AMOUNT\": $amt}, \"updated_at\": $CHANGED_AT}"
  set -- $VARS
  night $prm "$T/$prm.db" "$@"
  ok $? "$prm: third night, after a change" "$(tail -2 night.err)"
  q3=$(sed -n 's/^score run 3 .* \([0-9]*\) write-back payloads queued.*/\1/p' night.out)
  set -- $("$PY" writes.py "$PEER_LOG")
  ok "$(test "$1" -eq $((n1 + q3)) && test "$q3" -ge 1 && echo "$*" | grep -q " $deal=2\( \|$\)"; echo $?)" \
    "$prm: the changed deal is written once more, with only the deals whose score moved ($q3)" "$(grep '^score run' night.out)"

  set -- $VARS $BAD
  night $prm "$T/$prm-bad.db" "$@"
  ok "$(test $? -ne 0 && grep -q "authentication failed" night.err; echo $?)" "$prm: wrong credentials: a clear error" "$(grep -v ' http ' night.err | head -2)"
  ! grep -q -e "WRONG_41" -e "$SECRET" night.out night.err "$PEER_LOG"
  ok $? "$prm: without the secret, nor the right one in any log"
  kill "$PEER_PID" 2>/dev/null
done
done_testing
