#!/bin/sh
# Text outputs never print raw control or ANSI escape characters from
# export data (issue 8): a deal whose account and competitor hold
# ESC[31m and a CR, partners whose tier does, shown by the nightly job,
# `rules test`, `explain` and `status` as \x1b / \x0d; --json stays JSON.
. "$(dirname "$0")/lib.sh"
cd "$T"
export PRMCAST_NOW=2026-11-20
"$P" sample --out x --partners 10 --deals 200 --seed 3 >/dev/null
# The first open deal (no Closed Date) gets the escapes in account and competitor.
python3 - <<'PY'
import csv
rows = list(csv.reader(open("x/deals.csv", newline="")))
h = rows[0]
for r in rows[1:]:
    if not r[h.index("Closed Date")] and r[h.index("Stage")] not in ("Closed Won", "Closed Lost"):
        r[h.index("Account Name")] = "Evil\x1b[31m Corp\r"
        r[h.index("Competitor")] = "Globex\x1b[2J\r"
        open("deal_id", "w").write(r[0])
        break
csv.writer(open("x/deals.csv", "w", newline="")).writerows(rows)
rows = list(csv.reader(open("x/partners.csv", newline="")))
for r in rows[1:]:
    r[rows[0].index("Tier")] = "Gold\x1b[5m\r"
csv.writer(open("x/partners.csv", "w", newline="")).writerows(rows)
PY
deal=$(cat deal_id)
esc=$(printf '\033')
cr=$(printf '\r')
raw() { grep -c "[$esc$cr]" "$1"; }   # lines holding a raw ESC or CR

"$P" --db s.db run "$ROOT/scripts/nightly.lua" x >nightly.out 2>nightly.err; ok $? "nightly job runs" "$(tail -3 nightly.err)"
ok "$(test "$(q s.db "select count(*) from deals where competitor like '%'||char(27)||'%'")" = 1; echo $?)" "the escape is stored as data"
grep -q "COMPETITOR_ENGAGED" nightly.out; ok $? "the competitor flag is in the nightly summary"
grep -qF 'Gold\x1b[5m\x0d' nightly.out; ok $? "nightly shows the partner tier escaped" "$(head -30 nightly.out)"
ok "$(test "$(raw nightly.out)" = 0; echo $?)" "nightly output has no raw ESC or CR"

"$P" --db s.db rules test "$ROOT/rules/flags/competitor_engaged.lua" >rt.out 2>rt.err
grep -q 'Globex\\x1b\[2J\\x0d' rt.out; ok $? "rules test shows the competitor escaped" "$(cat rt.out)"
ok "$(test "$(raw rt.out)" = 0; echo $?)" "rules test output has no raw ESC or CR"
"$P" --db s.db rules test "$ROOT/rules/flags/competitor_engaged.lua" --json >rt.json 2>/dev/null
python3 -c 'import json,sys; d=json.load(open("rt.json")); assert any("\x1b" in e["reason"] for r in d["rules"] for e in r["examples"])'
ok $? "rules test --json keeps the value, escaped as JSON"

"$P" --db s.db explain "$deal" >ex.out 2>ex.err; ok $? "explain the deal" "$(cat ex.err)"
grep -qF 'Globex\u001b' ex.out; ok $? "explain shows the flag reason escaped" "$(cat ex.out)"
grep -qF 'Gold\x1b[5m\x0d tier' ex.out; ok $? "explain shows the tier escaped"
ok "$(test "$(raw ex.out)" = 0; echo $?)" "explain output has no raw ESC or CR"
"$P" --db s.db explain "$deal" --json >ex.json
python3 -c 'import json; d=json.load(open("ex.json")); assert d["deal"] and any("\x1b" in f["reason"] for f in d["flags"])'
ok $? "explain --json is valid JSON with the reason"

# A job's own report (ingest names the directory it read) goes through the same escaping.
cp -r x "x${esc}[31m"
"$P" --db i.db ingest "x${esc}[31m" >ing.out 2>/dev/null; ok $? "ingest of a directory with an escape in its name"
grep -qF 'x\x1b[31m' ing.out; ok $? "its report shows the name escaped" "$(head -2 ing.out)"
ok "$(test "$(raw ing.out)" = 0; echo $?)" "ingest's report has no raw ESC or CR"

# A sync cursor (it comes from the source) with escapes, shown by status.
sqlite3 s.db "update sync_state set cursor = 'c'||char(27)||'[31m'||char(13)"
"$P" --db s.db status >st.out 2>&1; ok $? "status runs"
grep -qF 'c\x1b[31m\x0d' st.out; ok $? "status shows the cursor escaped" "$(cat st.out)"
ok "$(test "$(raw st.out)" = 0; echo $?)" "status output has no raw ESC or CR"
done_testing
