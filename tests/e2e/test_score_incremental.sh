#!/bin/sh
# A score run builds write-back payloads only for deals whose score row
# changed since their live payload (issue 9 item 6): a rerun with the same
# scores builds and queues none and leaves the outbox as it was; a deal whose
# score changes is queued again (superseding its pending payload); an edited
# connector mapping rebuilds every payload once; a delivered payload counts
# as live too.
. "$(dirname "$0")/lib.sh"
cd "$T"
export PRMCAST_NOW=2026-11-20
"$P" sample --out x --partners 40 --deals 3000 --seed 11 >/dev/null
"$P" --db s.db ingest x --quiet >/dev/null 2>&1
"$P" --db s.db train --kind logistic --quiet >/dev/null 2>&1; ok $? "train"

js() { "$P" --db s.db --json score "$@" 2>score.err; }
field() { sed -n "s/.*\"$1\":\([0-9]*\).*/\1/p"; }

js >r1.json; ok $? "first score run" "$(cat score.err)"
deals=$(field deals <r1.json)
ok "$(test "$deals" -gt 0 && test "$(field queued <r1.json)" = "$deals" && test "$(field kept <r1.json)" = 0; echo $?)" \
  "the first run builds and queues every open deal's payload" "$(cat r1.json)"
ok "$(test -n "$(q s.db "SELECT value FROM settings WHERE key = 'writeback_mapping.file'")"; echo $?)" \
  "the run records the mapping it built with"
q s.db "SELECT id, run_id, deal_id, payload, status FROM writeback_outbox ORDER BY id" >ob1

js >r2.json; ok $? "second run, nothing changed"
ok "$(test "$(field queued <r2.json)" = 0 && test "$(field kept <r2.json)" = "$deals"; echo $?)" \
  "same scores: no payload built or queued, every deal kept" "$(cat r2.json)"
q s.db "SELECT id, run_id, deal_id, payload, status FROM writeback_outbox ORDER BY id" >ob2
cmp -s ob1 ob2; ok $? "the outbox is untouched (the pending payloads stay, none superseded)"
ok "$(test "$(q s.db "SELECT count(*) FROM scores WHERE run_id = (SELECT max(id) FROM score_runs)")" = "$deals"; echo $?)" \
  "the run's scores are all stored"

# One deal changes before the as-of date: its score changes, it alone is queued.
DEAL=$(q s.db "SELECT d.external_id FROM deals d JOIN scores s ON s.deal_id = d.id
               WHERE s.run_id = (SELECT max(id) FROM score_runs) ORDER BY d.id LIMIT 1")
cat >chg.lua <<LUA
local db = require("prm.store").default()
db:begin()
local d = db:query("SELECT * FROM deals WHERE external_id = ?", "$DEAL")[1]
assert(db:upsert("deal_change", { source = d.source, deal_id = d.external_id,
  observed_at = "2026-11-19T00:00:00Z", stage = "negotiation", status = "open", amount = (d.amount or 1000) * 3 }))
db:commit()
LUA
"$P" --db s.db run chg.lua >chg.out 2>&1; ok $? "a deal changes" "$(cat chg.out)"
js >r3.json; ok $? "third run"
# (its partner's statistics move too, so some of the partner's deals change)
ok "$(test "$(field queued <r3.json)" -ge 1 && test "$(field kept <r3.json)" -gt $((deals / 2)) &&
      test $(($(field queued <r3.json) + $(field kept <r3.json))) = "$deals"; echo $?)" \
  "only the deals whose score changed are queued again" "$(cat r3.json)"
changed=$(q s.db "SELECT count(*) FROM scores a JOIN scores b ON b.deal_id = a.deal_id AND b.run_id = 3
                   WHERE a.run_id = 2 AND (a.probability <> b.probability OR a.flags <> b.flags OR a.drivers <> b.drivers)")
ok "$(test "$changed" = "$(field queued <r3.json)"; echo $?)" "exactly those ($changed)"
ok "$(test "$(q s.db "SELECT group_concat(o.status) FROM writeback_outbox o JOIN deals d ON d.id = o.deal_id
                      WHERE d.external_id = '$DEAL' ORDER BY o.id")" = "superseded,pending"; echo $?)" \
  "its older pending payload is superseded by the new one"

# A delivered payload is live too: after an ack, the same score queues nothing.
ID=$(q s.db "SELECT o.id FROM writeback_outbox o JOIN deals d ON d.id = o.deal_id
             WHERE d.external_id = '$DEAL' AND o.status = 'pending'")
q s.db "UPDATE writeback_outbox SET status = 'sent' WHERE id = $ID"
js >r4.json; ok $? "fourth run"
ok "$(test "$(field queued <r4.json)" = 0 && test "$(field kept <r4.json)" = "$deals"; echo $?)" \
  "a delivered payload with the same score is not rebuilt" "$(cat r4.json)"

# An edited mapping (same target name) rebuilds every payload once.
{ cat "$ROOT/connectors/file.lua"; echo "-- edited"; } >edited.lua
js --connector "$T/edited.lua" >r5.json; ok $? "run with an edited connector" "$(cat score.err)"
ok "$(test "$(field kept <r5.json)" = 0 && test "$(field queued <r5.json)" -ge $((deals - 1)); echo $?)" \
  "an edited mapping rebuilds every payload" "$(cat r5.json)"
js --connector "$T/edited.lua" >r6.json
ok "$(test "$(field kept <r6.json)" = "$deals" && test "$(field queued <r6.json)" = 0; echo $?)" \
  "and the next run with it keeps them again" "$(cat r6.json)"
# A dead payload is not live: the same score is queued again.
ID=$(q s.db "SELECT max(id) FROM writeback_outbox WHERE status = 'pending'")
q s.db "UPDATE writeback_outbox SET status = 'dead' WHERE id = $ID"
js --connector "$T/edited.lua" >r7.json
ok "$(test "$(field queued <r7.json)" = 1 && test "$(field kept <r7.json)" = $((deals - 1)); echo $?)" \
  "a deal whose payload died is queued again" "$(cat r7.json)"
"$P" --db s.db audit verify >/dev/null; ok $? "audit chain intact"
done_testing
