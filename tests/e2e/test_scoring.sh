#!/bin/sh
# Deal scoring end to end: train registers candidates and activates the best
# by held-out log loss, training is deterministic, score stores a probability,
# 1-10 score and drivers for every open deal and queues write-back payloads,
# explain shows one deal; cold start on a tiny program; clear errors.
. "$(dirname "$0")/lib.sh"
cd "$T"
"$P" sample --out x --partners 80 --deals 8000 --seed 5 >/dev/null
"$P" --db s.db ingest x --quiet >/dev/null 2>&1
"$P" --db s.db train >train.out 2>train.err; ok $? "train" "$(cat train.err)"
ok "$(test "$(q s.db 'select count(*) from models')" = 3; echo $?)" "three candidates registered"
ok "$(test "$(q s.db 'select count(*) from models where active = 1')" = 1; echo $?)" "exactly one active model"
best=$(q s.db "select id from models order by json_extract(metrics, '$.eval_logloss') limit 1")
ok "$(test "$(q s.db 'select id from models where active = 1')" = "$best"; echo $?)" "the active model has the lowest held-out log loss"
ok "$(test "$(q s.db "select count(*) from models where data_hash glob '[0-9a-f]*' and length(data_hash) = 64 and train_from < train_to and train_to < eval_to and (json_array_length(features) > 15 or (kind = 'baserate' and json_array_length(features) = 2))")" = 3; echo $?)" "registry rows carry hash, windows and features"
grep -q "partner" train.out; ok $? "train compares with the partner-submitted probability"

"$P" --db s.db train --kind logistic --no-activate >/dev/null 2>&1
"$P" --db s.db train --kind logistic --no-activate >/dev/null 2>&1
ok "$(test "$(q s.db "select count(distinct blob) || '/' || count(distinct data_hash) from models where kind = 'logistic'")" = "1/1"; echo $?)" "training twice gives identical parameters and data hash"
ok "$(test "$(q s.db 'select id from models where active = 1')" = "$best"; echo $?)" "--no-activate leaves the active model"
# A worse model on the same evaluation window is not activated without --force-activate (issue 8).
"$P" --db s.db train --kind baserate >br.out 2>&1; ok $? "train --kind baserate" "$(cat br.out)"
ok "$(test "$(q s.db 'select id from models where active = 1')" = "$best"; echo $?)" "a worse baserate does not replace the better active model"
grep -q "kept the active model $best (.*on the same evaluation window" br.out; ok $? "and train says why" "$(cat br.out)"
"$P" --db s.db train --kind baserate --force-activate >/dev/null 2>&1
ok "$(test "$(q s.db "select kind from models where active = 1")" = baserate; echo $?)" "--force-activate activates it anyway"
"$P" --db s.db train >/dev/null 2>&1
ok "$(test "$(q s.db "select kind from models where active = 1")" != baserate; echo $?)" "a better model replaces a worse active one without the flag"
best=$(q s.db 'select id from models where active = 1')

# scoring.train from a job takes the label horizon as the CLI's --label-days does
cat >lbl.lua <<'LUA'
local scoring = require "prm.scoring"
local t = assert(scoring.train{ kind = "logistic", label_days = 150, activate = false })
assert(t.label_days == 150, "label_days " .. tostring(t.label_days))
local ok, msg = pcall(scoring.train, { kind = "logistic", label_days = -1 })
assert(not ok and msg:find("label_days must be 0..3650"), tostring(msg))
LUA
"$P" --db s.db run lbl.lua >lbl.out 2>&1; ok $? "scoring.train{label_days=} from a job, out-of-range refused" "$(cat lbl.out)"
ok "$(test "$(q s.db 'select id from models where active = 1')" = "$best"; echo $?)" "activate = false leaves the active model"

"$P" --db s.db score >score.out 2>score.err; ok $? "score" "$(cat score.err)"
open=$(q s.db "select count(*) from deals where status = 'open'")
scored=$(q s.db "select deals from score_runs order by id desc limit 1")
ok "$(test "$scored" -gt 0 && test "$scored" -ge $((open * 9 / 10)); echo $?)" "open deals scored ($scored of $open open)"
ok "$(test "$(q s.db "select count(*) from scores where probability < 0 or probability > 1 or score < 1 or score > 10")" = 0; echo $?)" "probabilities in [0,1], scores in [1,10]"
ok "$(test "$(q s.db "select count(*) from scores where json_array_length(drivers) between 1 and 6")" = "$scored"; echo $?)" "every score has drivers"
ok "$(test "$(q s.db "select count(*) from scores s, json_each(s.flags) f where json_extract(f.value, '$.name') in ('STALLED', 'REPEATED_SLIP', 'COMPETITOR_ENGAGED')")" -gt 0; echo $?)" "risk flags from the shipped rules stored with scores"
ok "$(test "$(q s.db "select count(*) from writeback_outbox where json_extract(payload, '$.custom_fields.ai_forecast_score') between 1 and 10 and json_type(payload, '$.custom_fields.ai_risk_flags') = 'array'")" = "$scored"; echo $?)" "write-back payloads queued with custom fields"
deal=$(q s.db "select d.external_id from scores s join deals d on d.id = s.deal_id order by s.probability desc limit 1")
"$P" --db s.db explain "$deal" >explain.out; ok $? "explain a scored deal"
grep -q "probability of close" explain.out && grep -q "drivers" explain.out; ok $? "explain shows probability and drivers"
"$P" --db s.db explain "$deal" --json >explain.json
printf 'local t = require("cjson").decode(io.open("explain.json"):read("a"))\nassert(t.deal and t.probability and #t.drivers > 0 and t.model.id)\n' >chk.lua
"$P" --db s.db run chk.lua >/dev/null 2>&1; ok $? "explain --json is valid and complete"
"$P" --db s.db explain NOPE >/dev/null 2>err; ok "$(test $? -eq 1; echo $?)" "unknown deal: exit 1"
grep -q "has no score" err; ok $? "unknown deal named"
"$P" --db s.db audit verify >/dev/null; ok $? "audit chain intact after train and score"
ok "$(test "$(q s.db "select count(*) from audit_log where action in ('model.train', 'score.run')")" -ge 4; echo $?)" "train and score audited"

"$P" --db s.db score --json >score.json 2>/dev/null
printf 'local t = require("cjson").decode(io.open("score.json"):read("a"))\nassert(t.run and t.deals > 0 and t.queued + t.kept == t.deals)\n' >chk2.lua
"$P" --db s.db run chk2.lua >/dev/null 2>&1; ok $? "score --json prints the run as JSON only"

# Point in time: scoring as of an earlier date sees only what was known then.
"$P" --db s.db score --as-of 2025-06-30 >/dev/null 2>&1; ok $? "score as of a past date"
ok "$(test "$(q s.db "select as_of from score_runs order by id desc limit 1")" = "2025-06-30T23:59:59Z"; echo $?)" "run records its as-of"

# A rule that throws fails alone: scoring goes on, other rules still flag.
H="$T/home"; mkdir -p "$H"
cp -r "$ROOT/rules" "$ROOT/connectors" "$H/"
cat >"$H/rules/flags/zz_broken.lua" <<'LUA'
local rules = require "prm.rules"
rules.flag{ name = "ZZ_BROKEN", description = "always throws", severity = "low",
  check = function(deal, ctx, p)
    local x = nil
    return x.boom
  end }
LUA
PRMCAST_HOME="$H" "$P" --db s.db score >broken.out 2>broken.err; ok $? "scoring with a throwing rule succeeds" "$(cat broken.err)"
grep -q "zz_broken.lua:5" broken.err; ok $? "the throwing rule is reported with file and line" "$(head -3 broken.err)"
run=$(q s.db "select max(id) from score_runs")
ok "$(test "$(q s.db "select count(*) from scores s, json_each(s.flags) f where s.run_id = $run and json_extract(f.value, '$.name') = 'REPEATED_SLIP'")" -gt 0; echo $?)" "the other rules still flag in that run"
ok "$(test "$(q s.db "select deals from score_runs where id = $run")" = "$scored"; echo $?)" "every open deal still scored"

# Cold start: a tiny program trains only the base-rate model (400 deals: the
# fit window of fully observed labels ends 2H + 3 months before T, and goes
# back 8 quarters from there, so a 600-deal program now clears 300).
"$P" sample --out tiny --partners 12 --deals 400 --seed 3 >/dev/null
"$P" --db t.db ingest tiny --quiet >/dev/null 2>&1
"$P" --db t.db train >tiny.out 2>&1; ok $? "train on a tiny program" "$(cat tiny.out)"
grep -q "cold start" tiny.out; ok $? "cold start announced"
ok "$(test "$(q t.db "select kind from models where active = 1")" = baserate; echo $?)" "base-rate model active"

"$P" --db empty.db score >/dev/null 2>err; ok "$(test $? -eq 1; echo $?)" "score on an empty store: exit 1"
grep -q "nothing to score: no deal known as of .* (ingest first); no run recorded" err; ok $? "says there is nothing to score" "$(cat err)"
"$P" --db nomodel.db ingest tiny --quiet >/dev/null 2>&1
"$P" --db nomodel.db score >/dev/null 2>err; ok "$(test $? -eq 1; echo $?)" "score without a model: exit 1"
grep -q "no active model" err; ok $? "says to train first"
"$P" --db empty.db train >/dev/null 2>err; ok "$(test $? -eq 1; echo $?)" "train without data: exit 1"
grep -q "no deal history" err; ok $? "says there is no history" "$(cat err)"
"$P" --db s.db train --kind forest >/dev/null 2>err; ok "$(test $? -eq 2; echo $?)" "unknown kind refused as a usage error (exit 2)"
done_testing
