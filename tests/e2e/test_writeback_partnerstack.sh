#!/bin/sh
# The write-back sender against the PartnerStack peer (issue 10): `prmcast
# ingest connectors/partnerstack.lua` syncs, `score --connector` queues one
# payload per open deal, `writeback --dry-run` sends nothing, `writeback`
# delivers each payload once with its Idempotency-Key and only vendor-owned
# fields, a rerun sends nothing, an unchanged rescore queues nothing, a
# crash between send and ack resends under the same key, and a field the
# PRM refuses is a dead letter naming the field, not a retry storm.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/peers.sh"
export PEER_PUBLIC_KEY=pk_test_wb PEER_SECRET_KEY=sk_test_wb_9911
export PARTNERSTACK_PUBLIC_KEY=$PEER_PUBLIC_KEY PARTNERSTACK_SECRET_KEY=$PEER_SECRET_KEY
export PRMCAST_NOW=2026-11-20
cd "$T" || exit 1
"$P" sample --out x --partners 40 --deals 4000 --seed 5 >/dev/null
start_peer partnerstack "$T/x"; ok $? "peer started"
export PARTNERSTACK_BASE_URL="$PEER_URL"
CONN="$ROOT/connectors/partnerstack.lua"
"$P" --db s.db ingest "$CONN" >sync.out 2>sync.err; ok $? "prmcast ingest connectors/partnerstack.lua syncs" "$(tail -3 sync.err)"
grep -q "deal" sync.out; ok $? "and prints the sync summary" "$(cat sync.out)"
ok "$(test "$(q s.db "SELECT count(*) FROM deals")" -gt 3000; echo $?)" "the synced deals are in the store"
# The models learn from field history, which the export carries: the same
# program's export ingested, then its deals scored for PartnerStack.
"$P" --db a.db ingest x --quiet >/dev/null 2>&1; ok $? "export ingested"
"$P" --db a.db train --kind logistic --quiet >train.out 2>&1; ok $? "trained" "$(tail -2 train.out)"
"$P" --db a.db score --connector "$CONN" >score.out 2>&1; ok $? "scored with the PartnerStack connector" "$(cat score.out)"
queued=$(q a.db "SELECT count(*) FROM writeback_outbox WHERE target = 'partnerstack' AND status = 'pending'")
ok "$(test "$queued" -gt 20; echo $?)" "payloads queued for partnerstack ($queued)"

patches() { grep -c '"method": "PATCH"' "$PEER_LOG" 2>/dev/null || true; }
"$P" --db a.db writeback "$CONN" --dry-run >dry.out 2>&1; ok $? "writeback --dry-run" "$(tail -2 dry.out)"
grep -q "^PATCH /api/v2/deals/" dry.out; ok $? "dry run prints the requests"
ok "$(test "$(patches)" -eq 0; echo $?)" "and sends nothing"

"$P" --db a.db writeback "$CONN" >wb.out 2>wb.err; ok $? "writeback" "$(tail -3 wb.err)"
ok "$(test "$(patches)" -eq "$queued"; echo $?)" "every queued payload reached the peer once ($(patches) of $queued)"
ok "$(test "$(q a.db "SELECT count(*) FROM writeback_outbox WHERE target = 'partnerstack' AND status = 'sent'")" -eq "$queued"; echo $?)" "all acknowledged"
cat >chk.py <<'PY'
import json, sys
vendor = {"ai_forecast_score", "ai_risk_flags", "ai_last_scored_at", "ai_close_probability",
          "ai_model_version", "ai_drivers"}
keys, bad = [], []
for line in open(sys.argv[1]):
    e = json.loads(line)
    if e.get("method") != "PATCH":
        continue
    keys.append(e.get("idempotency_key"))
    b = e.get("body") or {}
    if set(b) - {"fields"}:
        bad.append("body keys %s" % sorted(b))
    for f in b.get("fields", []):
        if f["api_name"] not in vendor:
            bad.append(f["api_name"])
print(len(keys), len(set(keys)), sum(1 for k in keys if not k), ";".join(bad[:3]))
PY
read nw uniq nokey bad <<EOF2
$(/usr/bin/python3 chk.py "$PEER_LOG" 2>/dev/null || python3 chk.py "$PEER_LOG")
EOF2
ok "$(test "$nokey" -eq 0 && test "$uniq" -eq "$nw"; echo $?)" "each PATCH carries its own Idempotency-Key ($uniq keys, $nw writes)"
ok "$(test -z "$bad"; echo $?)" "only vendor-owned fields are written (no partner-entered field)" "$bad"

"$P" --db a.db writeback "$CONN" >/dev/null 2>&1
ok "$(test "$(patches)" -eq "$queued"; echo $?)" "a second writeback sends nothing"
"$P" --db a.db score --connector "$CONN" >score2.out 2>&1
ok "$(test "$(q a.db "SELECT count(*) FROM writeback_outbox WHERE status = 'pending'")" -eq 0; echo $?)" "an unchanged rescore queues nothing" "$(cat score2.out)"
grep -q "unchanged since the last delivery" score2.out; ok $? "and says so"

# A crash between send and ack: items claimed and sent, never acknowledged.
export PRMCAST_NOW=2026-11-27
"$P" --db a.db score --connector "$CONN" >/dev/null 2>&1
n2=$(q a.db "SELECT count(*) FROM writeback_outbox WHERE status = 'pending'")
cat >claim.lua <<'LUA'
local db = require("prm.store").default()
local items = db:outbox_claim("partnerstack", 3)
return { claimed = #items }
LUA
"$P" --db a.db run claim.lua >/dev/null 2>&1
ok "$(test "$(q a.db "SELECT count(*) FROM writeback_outbox WHERE status = 'sending'")" -ge 1; echo $?)" "items left 'sending' by a crashed sender"
before=$(patches)
"$P" --db a.db writeback "$CONN" >/dev/null 2>&1
ok "$(test "$(q a.db "SELECT count(*) FROM writeback_outbox WHERE status = 'sending'")" -ge 1; echo $?)" "within the lease they are not sent twice"
PRMCAST_NOW=2026-11-28T00:10:00Z "$P" --db a.db writeback "$CONN" >/dev/null 2>&1
ok "$(test "$(q a.db "SELECT count(*) FROM writeback_outbox WHERE status IN ('sending', 'pending')")" -eq 0; echo $?)" "after the lease the crashed items are delivered"
ok "$(test "$(( $(patches) - before ))" -eq "$n2"; echo $?)" "each change once: $(( $(patches) - before )) writes for $n2 payloads"

# A field the PRM refuses: a dead letter naming it, no retry storm.
sed 's/"ai_drivers" }/"ai_drivers", "ai_not_a_field" }/' "$CONN" >bad_conn.lua
sed -i 's/^  name = "partnerstack",/  name = "partnerstack",/' bad_conn.lua
cat >queue.lua <<'LUA'
local db = require("prm.store").default()
db:exec("UPDATE writeback_outbox SET status = 'pending', payload = json_set(payload, '$.ai_not_a_field', 1), attempts = 0 WHERE id = (SELECT max(id) FROM writeback_outbox)")
LUA
"$P" --db a.db run queue.lua >/dev/null 2>&1
before=$(patches)
"$P" --db a.db writeback "$T/bad_conn.lua" >bad.out 2>&1
ok "$(test "$(q a.db "SELECT count(*) FROM writeback_outbox WHERE status = 'dead'")" -eq 1; echo $?)" "the refused payload is a dead letter" "$(cat bad.out)"
q a.db "SELECT last_error FROM writeback_outbox WHERE status = 'dead'" | grep -q "ai_not_a_field"
ok $? "its error names the refused field"
ok "$(test "$(( $(patches) - before ))" -eq 1; echo $?)" "one attempt, not a retry storm"
! grep -q "$PEER_SECRET_KEY" wb.out wb.err bad.out sync.out sync.err
ok $? "no secret in any output"
done_testing
