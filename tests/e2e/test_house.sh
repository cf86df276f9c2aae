#!/bin/sh
# The house's guarantees end to end (issue 7): a score for a past date does
# not change when later history arrives (deals and partners alike); a run
# pinned to an instant is reproducible byte for byte; closed deals are never
# scored or queued; `rules test` and `score` flag the same deals with the
# same reasons on the same date; rules see only ctx.now; explain shows the
# deal as it was when scored.
. "$(dirname "$0")/lib.sh"
cd "$T" || exit 1
"$P" sample --out x --partners 40 --deals 4000 --seed 11 >/dev/null
"$P" --db a.db ingest x --quiet >/dev/null 2>&1; ok $? "sample ingested"
export PRMCAST_NOW=2026-09-30
"$P" --db a.db train --kind logistic >train.out 2>&1; ok $? "trained as of 2026-09-30" "$(tail -3 train.out)"
cp a.db b.db
"$P" --db a.db score >/dev/null 2>&1; ok $? "scored as of 2026-09-30"
"$P" --db b.db score >/dev/null 2>&1
q a.db "SELECT deal_id, probability, score, drivers, flags, scored_at FROM scores ORDER BY 1" >a.scores
q b.db "SELECT deal_id, probability, score, drivers, flags, scored_at FROM scores ORDER BY 1" >b.scores
q a.db "SELECT deal_id, target, payload, idempotency_key, created_at FROM writeback_outbox ORDER BY 1" >a.outbox
q b.db "SELECT deal_id, target, payload, idempotency_key, created_at FROM writeback_outbox ORDER BY 1" >b.outbox
cmp -s a.scores b.scores && cmp -s a.outbox b.outbox
ok $? "a pinned run is reproducible byte for byte (scores and payloads)"
ok "$(test "$(wc -l <a.scores)" -gt 100; echo $?)" "and it scored deals ($(wc -l <a.scores))"

# Later syncs: the top partner promoted and moved under a distributor, its
# deals' budgets confirmed and product changed, new history rows - all after
# the as-of date.
P1=$(q a.db "SELECT p.external_id FROM scores s JOIN deals d ON d.id = s.deal_id JOIN partners p ON p.id = d.partner_id GROUP BY 1 ORDER BY count(*) DESC LIMIT 1")
DIST=$(q a.db "SELECT external_id FROM partners WHERE type = 'distributor' LIMIT 1")
cat >later.lua <<LUA
local db = require("prm.store").default()
db:begin()
for _, p in ipairs(db:query("SELECT * FROM partners WHERE external_id = ?", "$P1")) do
  assert(db:upsert("partner", { source = p.source, external_id = p.external_id, name = p.name,
    tier = p.tier == "Platinum" and "Registered" or "Platinum", region = p.region, country = p.country,
    type = p.type, parent_id = "$DIST", currency = p.currency, status = p.status, joined_at = p.joined_at,
    updated_at = "2026-11-25T00:00:00Z" }))
end
local n = 0
for _, d in ipairs(db:query([[SELECT d.*, p.external_id AS pext FROM deals d JOIN partners p ON p.id = d.partner_id
                               WHERE d.status = 'open' LIMIT 300]])) do
  assert(db:upsert("deal", { source = d.source, external_id = d.external_id, partner_id = d.pext,
    account = d.account, contact_name = d.contact_name, contact_email = d.contact_email,
    amount = d.amount, currency = d.currency, product_family = "Changed Later",
    stage = d.stage, status = d.status, created_at = d.created_at, expected_close = d.expected_close,
    closed_at = d.closed_at, partner_probability = d.partner_probability,
    budget_confirmed = d.budget_confirmed == 1 and 0 or 1, competitor = "Globex",
    completeness = 1.0, notes = d.notes, updated_at = "2026-11-25T00:00:00Z" }))
  assert(db:upsert("deal_change", { source = d.source, deal_id = d.external_id,
    observed_at = "2026-11-26T00:00:00Z", stage = "negotiation", status = "open", amount = (d.amount or 0) * 2 }))
  n = n + 1
end
db:commit()
return { changed = n }
LUA
"$P" --db a.db run later.lua >later.out 2>&1; ok $? "later changes written" "$(cat later.out)"
ok "$(test "$(q a.db "SELECT count(*) FROM attr_history")" -gt 300; echo $?)" "attribute changes kept in attr_history"
MODEL=$(q a.db "SELECT model_id FROM score_runs ORDER BY id DESC LIMIT 1")
"$P" --db a.db score --model "$MODEL" >/dev/null 2>&1; ok $? "re-scored as of 2026-09-30 after the later syncs"
q a.db "SELECT s.deal_id, s.probability, s.flags FROM scores s WHERE run_id = (SELECT max(id) FROM score_runs) ORDER BY 1" >re.scores
q b.db "SELECT s.deal_id, s.probability, s.flags FROM scores s ORDER BY 1" >orig.scores
cmp -s re.scores orig.scores
ok $? "later history (partner tier and parent, deal attributes, history rows) leaves the past date's scores unchanged" "$(diff orig.scores re.scores | head -4)"

# Closed deals are never scored or queued.
ok "$(test "$(q a.db "SELECT count(*) FROM scores s JOIN deals d ON d.id = s.deal_id WHERE d.status <> 'open' AND s.run_id IN (SELECT id FROM score_runs WHERE as_of >= '2026-11')")" -eq 0; echo $?)" "no closed deal scored"
unset PRMCAST_NOW
export PRMCAST_NOW=2026-11-20
"$P" --db a.db score >now.out 2>now.err; ok $? "scored as of 2026-11-20"
RUN=$(q a.db "SELECT max(id) FROM score_runs")
ok "$(test "$(q a.db "SELECT count(*) FROM scores s JOIN deals d ON d.id = s.deal_id WHERE s.run_id = $RUN AND d.status <> 'open'")" -eq 0; echo $?)" "closed deals are not scored"
ok "$(test "$(q a.db "SELECT count(*) FROM writeback_outbox o JOIN deals d ON d.id = o.deal_id WHERE o.run_id = $RUN AND d.status <> 'open'")" -eq 0; echo $?)" "nor queued for write-back"
ok "$(test "$(q a.db "SELECT count(*) FROM writeback_outbox WHERE run_id = $RUN")" -gt 0; echo $?)" "open deals are queued"
ok "$(test "$(q a.db "SELECT count(*) FROM writeback_outbox WHERE status = 'superseded'")" -gt 0; echo $?)" "a newer run supersedes still-pending payloads"

# rules test and score: the same deals, the same flags, the same date.
"$P" --db a.db --json rules test "$ROOT"/rules/flags/*.lua --deals 1000000 >rt.json 2>/dev/null
cat >cmp.lua <<'LUA'
local cjson = require "cjson"
local t = cjson.decode(io.open(arg[1]):read("a"))
local db = require("prm.store").default()
local run = db:query("SELECT max(id) AS id, deals FROM score_runs")[1]
local bad = {}
if t.deals ~= run.deals then bad[#bad + 1] = ("deals %d vs %d"):format(t.deals, run.deals) end
for _, r in ipairs(t.rules) do
  local n = db:query([[SELECT count(*) AS n FROM scores s, json_each(s.flags) f
                        WHERE s.run_id = ? AND json_extract(f.value, '$.name') = ?]], run.id, r.name)[1].n
  if n ~= r.fired then bad[#bad + 1] = ("%s fired %d in rules test, %d in score"):format(r.name, r.fired, n) end
end
if #bad > 0 then error(table.concat(bad, "; "), 0) end
LUA
"$P" --db a.db run cmp.lua rt.json >cmp.out 2>&1; ok $? "rules test and score flag the same number of deals per rule" "$(cat cmp.out)"

# Rules see only ctx.now: the wall clock is blocked, the as-of is theirs.
mkdir -p r
cat >r/clock.lua <<'LUA'
local rules = require "prm.rules"
rules.flag{ name = "CLOCK", description = "reads the wall clock", severity = "low",
  when = function(deal, ctx) return true, prm.today() end }
LUA
cat >r/now.lua <<'LUA'
local rules = require "prm.rules"
local prm = require "prm"
rules.flag{ name = "NOW", description = "says ctx.now", severity = "low",
  when = function(deal, ctx) return true, "now=" .. ctx.now end }
rules.flag{ name = "TODAY", description = "calls prm.today", severity = "low",
  when = function(deal, ctx) return true, prm.today() end }
LUA
"$P" --db a.db --as-of 2025-01-01 rules test r/now.lua --deals 3 >now.txt 2>&1
grep -q "now=2025-01-01" now.txt; ok $? "a rule run as of 2025-01-01 sees ctx.now = 2025-01-01" "$(head -5 now.txt)"
grep -q "blocked function: prm.today" now.txt; ok $? "prm.today() raises in a rule: blocked function" "$(cat now.txt)"

# explain: the deal as it was when scored beside its current state.
D=$(q a.db "SELECT d.external_id FROM scores s JOIN deals d ON d.id = s.deal_id WHERE s.run_id = $RUN LIMIT 1")
"$P" --db a.db explain "$D" >ex.txt 2>&1; ok $? "explain $D" "$(cat ex.txt)"
grep -q "when scored" ex.txt; ok $? "explain shows the deal as it was when scored"
"$P" --db a.db --json explain "$D" >ex.json 2>&1
printf 'local t = require("cjson").decode(io.open(arg[1]):read("a")) assert(t.when_scored.stage and t.model.id)\n' >exj.lua
"$P" --db a.db run exj.lua ex.json >/dev/null 2>&1; ok $? "explain --json carries when_scored and the model"
done_testing
