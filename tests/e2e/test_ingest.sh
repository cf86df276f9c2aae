#!/bin/sh
# File ingest: bad rows are reported with file, line and reason and good
# rows load; a file that is not CSV fails cleanly with nothing written;
# JSON and JSON Lines exports load; reruns are idempotent.
. "$(dirname "$0")/lib.sh"
E="$T/export"; mkdir -p "$E"
DB="$T/s.db"

printf 'Partner ID,Partner Name,Tier,Region,Country,Partner Type,Parent Partner ID,Currency,Status,Join Date,Last Modified\r\n' >"$E/partners.csv"
printf 'P1,"Acme, Inc",Gold,NA,US,Reseller,,USD,Active,2024-01-05,2025-01-01T00:00:00Z\r\n' >>"$E/partners.csv"
printf 'P2,Beta GmbH,Silver,EMEA,DE,Distributor,,EUR,Active,01/05/2024,1735689600000\r\n' >>"$E/partners.csv"
cat >"$E/deals.csv" <<'CSV'
Deal ID,Partner ID,Account Name,Contact Name,Contact Email,Deal Amount,Currency,Product,Stage,Created Date,Expected Close Date,Closed Date,Partner Probability,Budget Confirmed,Competitor,Notes,Last Modified
D1,P1,Cust A,Ann,a@x.example,"$12,000.00",USD,Core,Qualified,2025-01-10,03/31/2025,,40,Yes,,"multi
line note",2025-02-01T10:00:00Z
D2,P404,Cust B,Bob,b@x.example,500,USD,Core,Registered,2025-01-11,03/31/2025,,10,No,,,2025-02-01T10:00:00Z
D3,P1,Cust C,Cy,c@x.example,700,USD,Core,Registered,2025-01-12,13/45/2025,,10,No,,,2025-02-01T10:00:00Z
D4,P2,Cust D,Di,d@x.example,900,EUR,Core,Sorta Won,2025-01-13,03/31/2025,,10,No,,,2025-02-01T10:00:00Z
D5,P2,Cust E
D6,P2,Cust F,Fay,f@x.example,abc,EUR,Core,Registered,2025-01-13,03/31/2025,,10,No,,,2025-02-01T10:00:00Z
D7,P2,,,,1500,EUR,Core,Closed Won,2025-01-14,03/31/2025,2025-03-01,100,,Globex,,2025-03-01T10:00:00Z
CSV
"$P" --db "$DB" ingest "$E" >"$T/out" 2>"$T/err"
ok $? "ingest with bad rows exits 0" "$(cat "$T/err")"
grep -q 'deals.csv:4: unknown partner .P404.' "$T/err"; ok $? "unknown partner reported with file and line"
grep -q 'deals.csv:5: Expected Close Date: not a date: "13/45/2025"' "$T/err"; ok $? "bad date reported with column"
grep -q 'deals.csv:6: Stage: unknown value "Sorta Won"' "$T/err"; ok $? "unknown stage reported"
grep -q 'deals.csv:7: expected 17 fields, found 3' "$T/err"; ok $? "short row reported"
grep -q 'deals.csv:8: Deal Amount: not an amount: "abc"' "$T/err"; ok $? "bad amount reported"
ok "$(test "$(q "$DB" 'select count(*) from deals')" = 2; echo $?)" "good rows loaded (D1, D7)"
ok "$(test "$(q "$DB" 'select count(*) from ingest_rejects')" = 5; echo $?)" "five rejects stored"
ok "$(test "$(q "$DB" 'pragma page_size')" = 16384; echo $?)" "a new store has 16 KiB pages (STORE_PAGE_SIZE)" "$(q "$DB" 'pragma page_size')"
ok "$(test "$(q "$DB" "select amount || '|' || expected_close || '|' || partner_probability || '|' || budget_confirmed from deals where external_id='D1'")" = "12000.0|2025-03-31|0.4|1"; echo $?)" "money, US date, percent and flag parsed"
ok "$(test "$(q "$DB" "select notes from deals where external_id='D1'")" = "multi
line note"; echo $?)" "embedded newline kept"
ok "$(test "$(q "$DB" "select status || '|' || round(completeness, 4) from deals where external_id='D7'")" = "won|0.4286"; echo $?)" "status from stage, completeness computed"
ok "$(test "$(q "$DB" "select joined_at || '|' || updated_at from partners where external_id='P2'")" = "2024-01-05|2025-01-01T00:00:00Z"; echo $?)" "US join date and epoch-ms instant"
grep -q 'deals.csv .* 7 .* 2 .* 0 .* 5 ' "$T/out"; ok $? "summary counts read, written, rejected" "$(cat "$T/out")"

# Rerun: nothing changed, nothing written.
"$P" --db "$DB" ingest "$E" >"$T/out2" 2>&1
grep -q 'deals.csv .* unchanged' "$T/out2"; ok $? "unchanged file skipped on rerun"
touch -d '2020-01-01' "$E/deals.csv"
"$P" --db "$DB" ingest "$E" >"$T/out3" 2>&1
grep -q 'deals.csv .* 7 .* 0 .* 2 .* 5 ' "$T/out3"; ok $? "touched file re-read: 0 written, 2 unchanged" "$(cat "$T/out3")"
ok "$(test "$(q "$DB" 'select count(*) from deal_history')" = 2; echo $?)" "no history rows added by a rerun"

# A file that is not CSV: clear error, nothing of it written, exit 1.
B="$T/binary"; mkdir -p "$B"
cp "$E/partners.csv" "$B/"
head -c 3000 /bin/ls >"$B/deals.csv"
"$P" --db "$T/b.db" ingest "$B" >"$T/bout" 2>"$T/berr"
ok "$(test $? -eq 1; echo $?)" "binary export exits 1"
grep -q 'deals.csv: not a CSV file (binary content)' "$T/berr"; ok $? "binary file named with reason" "$(cat "$T/berr")"
ok "$(test "$(q "$T/b.db" 'select count(*) from deals')" = 0; echo $?)" "nothing of the binary file written"
ok "$(test "$(q "$T/b.db" 'select count(*) from partners')" = 2; echo $?)" "other files still loaded"

# A CSV of the wrong kind: missing required columns, nothing written.
W="$T/wrong"; mkdir -p "$W"
cp "$E/partners.csv" "$W/"
printf 'foo,bar\n1,2\n' >"$W/deals.csv"
"$P" --db "$T/w.db" ingest "$W" >/dev/null 2>"$T/werr"
ok "$(test $? -eq 1; echo $?)" "wrong CSV exits 1"
grep -q "deals.csv: not a deal export: missing column(s) Deal ID, Partner ID, Stage, Created Date" "$T/werr"
ok $? "missing columns named" "$(cat "$T/werr")"

# JSON array and JSON Lines exports.
J="$T/json"; mkdir -p "$J"
cat >"$J/partners.json" <<'JSON'
{"data": [{"Partner ID": "P1", "Tier": "Gold", "Partner Type": "msp", "Join Date": "2024-02-03"},
          {"Partner ID": "P2", "Tier": null, "Partner Type": "Referral"}]}
JSON
cat >"$J/deals.jsonl" <<'JSON'
{"Deal ID": "J1", "Partner ID": "P1", "Stage": "Proposal Sent", "Created Date": "2025-04-01", "Deal Amount": 1200.5}
not json at all
{"Deal ID": "J2", "Partner ID": "P2", "Stage": "Closed Lost", "Created Date": "2025-04-02", "Expected Close Date": "05/01/2025"}

JSON
"$P" --db "$T/j.db" ingest "$J" >"$T/jout" 2>"$T/jerr"
ok $? "JSON export ingests" "$(cat "$T/jerr")"
ok "$(test "$(q "$T/j.db" "select group_concat(external_id || ':' || type, ',') from partners")" = "P1:msp,P2:referral"; echo $?)" "JSON array with data wrapper and nulls"
ok "$(test "$(q "$T/j.db" "select group_concat(external_id || ':' || status || ':' || coalesce(amount, '-'), ',') from deals")" = "J1:open:1200.5,J2:lost:-"; echo $?)" "JSON Lines records"
grep -q 'deals.jsonl:2: not valid JSON' "$T/jerr"; ok $? "bad JSON line reported with line"
printf '{"data": [1, 2' >"$J/partners.json"
"$P" --db "$T/j2.db" ingest "$J" >/dev/null 2>"$T/j2err"
grep -q 'partners.json: not valid JSON' "$T/j2err"; ok $? "truncated JSON file refused" "$(cat "$T/j2err")"

# JSON from a plain CSV conversion: empty strings are absent values, a
# nested object is kept as JSON text, a JSON boolean where an amount belongs
# is reported with the column, and a repeated key rejects the record.
K="$T/jsonbad"; mkdir -p "$K"
printf '[{"Partner ID": "P1", "Partner Type": "msp", "Tier": {"name": "Gold", "rank": 1}, "Join Date": ""}]' >"$K/partners.json"
cat >"$K/deals.json" <<'JSON'
[{"Deal ID": "K1", "Partner ID": "P1", "Stage": "Registered", "Created Date": "2025-04-01", "Expected Close Date": "", "Closed Date": "", "Partner Probability": "", "Deal Amount": "1,200", "Currency": "eur"},
 {"Deal ID": "K2", "Partner ID": "P1", "Stage": "Registered", "Created Date": "2025-04-01", "Deal Amount": true},
 {"Deal ID": "K3", "Partner ID": "P1", "Stage": "Registered", "Created Date": "2025-04-01", "Deal ID": "K4"},
 {"Deal ID": "K5", "Partner ID": "P1", "Stage": "Registered", "Created Date": "2025-04-01", "Expected Close Date": "2025-06-30", "Partner Probability": "0.5%"}]
JSON
printf '[]' >"$K/transactions.json"
"$P" --db "$T/k.db" ingest "$K" >"$T/kout" 2>"$T/kerr"
ok $? "JSON export with empty strings, nested values and an empty array ingests" "$(cat "$T/kerr")"
ok "$(test "$(q "$T/k.db" "select group_concat(external_id || ':' || coalesce(expected_close, '-') || ':' || coalesce(partner_probability, '-') || ':' || coalesce(amount, '-') || ':' || coalesce(currency, '-'), ',') from deals")" = "K1:-:-:1200.0:EUR,K5:2025-06-30:0.005:-:-"; echo $?)" \
  "empty strings are absent; ISO expected close; 0.5% is half a percent" "$(q "$T/k.db" "select * from deals")"
ok "$(test "$(q "$T/k.db" "select tier || '|' || coalesce(joined_at, '-') from partners")" = '{"name":"Gold","rank":1}|-' -o "$(q "$T/k.db" "select tier || '|' || coalesce(joined_at, '-') from partners")" = '{"rank":1,"name":"Gold"}|-'; echo $?)" \
  "a nested object is kept as JSON text" "$(q "$T/k.db" "select tier from partners")"
grep -q 'deals.json:2: Deal Amount: not an amount: "true"' "$T/kerr"; ok $? "a JSON boolean amount is reported with column and value" "$(cat "$T/kerr")"
grep -q 'prm.map' "$T/kerr"; ok "$(test $? -ne 0; echo $?)" "no internal Lua locations in reject messages"
grep -q 'deals.json:3: duplicate key "Deal ID" in the record' "$T/kerr"; ok $? "a repeated key rejects the record naming the key"
grep -q 'transactions.json .* 0 .* loaded' "$T/kout"; ok $? "an empty JSON array loads zero rows" "$(cat "$T/kout")"

# CSV hardening: an unclosed quote, a NUL byte past 64 KiB, invalid UTF-8,
# "1,2,3" as an amount, an unknown currency, a duplicate header column.
C="$T/csvbad"; mkdir -p "$C"
cp "$E/partners.csv" "$C/"
{
  echo 'Deal ID,Partner ID,Account Name,Deal Amount,Currency,Stage,Created Date,Expected Close Date,Partner Probability,Notes'
  i=0
  while [ $i -lt 1500 ]; do
    echo "F$i,P1,Filler account with a long name to pass 64 KiB,100,USD,Registered,2025-01-10,2025-03-31,40,padding padding"
    i=$((i + 1))
  done
  printf 'D0019797\000Z,P1,Nul Co,100,USD,Registered,2025-01-10,,,\n'
  printf 'U1,P1,Caf\351,100,USD,Registered,2025-01-10,,,\n'
  echo 'M1,P1,Comma Co,"1,2,3",USD,Registered,2025-01-10,,,'
  echo 'X1,P1,Money Co,100,XYZ,Registered,2025-01-10,,,'
  echo 'Q1,P1,Quote Co,100,USD,Registered,2025-01-10,,,"this note never closes'
  echo 'A1,P1,After Co,100,USD,Registered,2025-01-10,,1%,'
  echo 'A2,P1,After Co,100,USD,Registered,2025-01-10,,1,'
} >"$C/deals.csv"
"$P" --db "$T/c.db" ingest "$C" >"$T/cout" 2>"$T/cerr"
ok $? "CSV with bad rows ingests the good ones" "$(cat "$T/cerr")"
grep -q "deals.csv:1502: NUL byte in column 'Deal ID'" "$T/cerr"; ok $? "NUL byte past 64 KiB rejects the row" "$(cat "$T/cerr")"
ok "$(test "$(q "$T/c.db" "select count(*) from deals where external_id like 'D00197%'")" = 0; echo $?)" "no truncated id stored"
grep -q "deals.csv:1503: invalid UTF-8 in column 'Account Name'" "$T/cerr"; ok $? "invalid UTF-8 rejects the row"
grep -q 'deals.csv:1504: Deal Amount: not an amount: "1,2,3"' "$T/cerr"; ok $? '"1,2,3" is not read as 123'
grep -q 'deals.csv:1505: Currency: not an ISO 4217 currency code: "XYZ"' "$T/cerr"; ok $? "unknown currency code rejected"
grep -q 'deals.csv:1506: unclosed quote opened on line 1506: .*lines 1506-1508.* resumes on line 1507' "$T/cerr"; ok $? "unclosed quote names its line and what it took" "$(grep 1506 "$T/cerr")"
ok "$(test "$(q "$T/c.db" "select group_concat(external_id || ':' || partner_probability, ',') from deals where external_id like 'A%'")" = "A1:0.01,A2:0.01"; echo $?)" \
  "rows after the unclosed quote load; 1% and a bare 1 are 1%"
ok "$(test "$(q "$T/c.db" "select count(*) from deals")" = 1502; echo $?)" "1500 fillers and two rows after the quote loaded"
D="$T/duphead"; mkdir -p "$D"
printf 'Deal ID,Partner ID,Stage,Created Date,Stage\nD1,P1,Registered,2025-01-10,Won\n' >"$D/deals.csv"
"$P" --db "$T/d.db" ingest "$D" >/dev/null 2>"$T/derr"
ok "$(test $? -eq 1; echo $?)" "a duplicate header column fails the file"
grep -q "deals.csv: duplicate column 'Stage' in header (columns 3 and 5)" "$T/derr"; ok $? "the duplicate column is named" "$(cat "$T/derr")"
ok "$(test "$(q "$T/d.db" "select count(*) from deals")" = 0; echo $?)" "nothing written for a duplicate header"
cp "$E/deals.csv" "$D/deals.csv"; cp "$E/partners.csv" "$D/"
printf '[]' >"$D/deals.json"
"$P" --db "$T/d2.db" ingest "$D" >/dev/null 2>"$T/d2err"
ok "$(test $? -eq 1; echo $?)" "deals.csv beside deals.json is an error"
grep -q 'deals.csv, deals.json all exist' "$T/d2err"; ok $? "both files are named" "$(cat "$T/d2err")"

"$P" --db "$T/j3.db" ingest "$E" --json >"$T/ingest.json" 2>/dev/null
printf 'local t = require("cjson").decode(io.open(arg[1]):read("a"))\nassert(t.rejected == 5 and #t.files == 2)\n' >"$T/chk.lua"
"$P" --db "$T/j3.db" run "$T/chk.lua" "$T/ingest.json" >/dev/null 2>&1; ok $? "ingest --json prints the summary as JSON"

# A connector is sandboxed: no os, no io, and it is told so with its file.
mkdir -p "$T/hc"
printf 'os.execute("touch %s/pwned")\nreturn {}\n' "$T" >"$T/hc/evil.lua"
"$P" --db "$T/hc.db" ingest "$E" --connector "$T/hc/evil.lua" >/dev/null 2>"$T/hcerr"
ok "$(test $? -ne 0 && test ! -e "$T/pwned"; echo $?)" "a connector calling os.execute fails and runs nothing"
grep -q 'evil.lua:1: blocked function: os.execute' "$T/hcerr"; ok $? "the connector's blocked call is named with file and line" "$(cat "$T/hcerr")"
printf 'local f = io.open("/etc/passwd")\nreturn {}\n' >"$T/hc/evil2.lua"
"$P" --db "$T/hc.db" ingest "$E" --connector "$T/hc/evil2.lua" >/dev/null 2>"$T/hcerr2"
grep -q 'blocked function: io.open' "$T/hcerr2"; ok $? "a connector cannot open files" "$(cat "$T/hcerr2")"

# Declared fields run in C for CSV; the same declarations applied in Lua
# (the JSON path) give the same store, row for row.
"$P" sample --out "$T/s" --deals 2000 --partners 30 --seed 3 >/dev/null
"$P" --db "$T/fc.db" ingest "$T/s" --quiet >/dev/null 2>&1
printf 'local s = require("prm.ingest").run{ dir = arg[1], lua_plan = true, quiet = true }\nassert(s.failed == 0)\n' >"$T/lp.lua"
"$P" --db "$T/fl.db" run "$T/lp.lua" "$T/s" >/dev/null 2>&1; ok $? "ingest with the declarations applied in Lua"
for x in fc fl; do
  sqlite3 "$T/$x.db" "SELECT * FROM partners ORDER BY external_id; SELECT * FROM deals ORDER BY id;
    SELECT * FROM deal_history ORDER BY deal_id, observed_at; SELECT * FROM attr_history ORDER BY 1, 2, 3, 4;
    SELECT * FROM commits ORDER BY id; SELECT * FROM quotas ORDER BY id; SELECT * FROM transactions ORDER BY id;
    SELECT * FROM payouts ORDER BY id; SELECT * FROM signals ORDER BY id; SELECT * FROM fx_rates ORDER BY 1, 2;
    SELECT file, line, reason FROM ingest_rejects ORDER BY 1, 2" >"$T/$x.dump"
done
cmp -s "$T/fc.dump" "$T/fl.dump"; ok $? "C and Lua application of the declared fields agree" "$(diff "$T/fc.dump" "$T/fl.dump" | head -4)"
ok "$(test "$(wc -l <"$T/fc.dump")" -gt 10000; echo $?)" "the compared stores are not trivially small"
ok "$(test "$(q "$T/fc.db" 'select count(*) from deals')" -gt 1900; echo $?)" "the sample's deals load through the declarations"
mkdir -p "$T/bc"
sed 's/"Deal Amount", "money", 1 }/"Deal Amount", "monye", 1 }/' "$ROOT/connectors/file.lua" >"$T/bc/typo.lua"
"$P" --db "$T/bc.db" ingest "$E" --connector "$T/bc/typo.lua" >/dev/null 2>"$T/bcerr"
ok "$(test $? -ne 0; echo $?)" "a declaration with an unknown kind fails"
grep -q "typo.lua: fields.deal.amount: unknown kind 'monye'" "$T/bcerr"; ok $? "the bad declaration is named with file, object and field" "$(cat "$T/bcerr")"

# Foreign-key checks are off only while rows load (the upsert resolves
# every reference itself): on again after an ingest, and after one that fails.
cat >"$T/fk.lua" <<'LUA'
local ingest, store = require "prm.ingest", require "prm.store"
local db = store.default()
ingest.run{ dir = arg[1], quiet = true, db = db }
local on1 = db:query("PRAGMA foreign_keys")[1].foreign_keys
local ok = pcall(ingest.run, { dir = arg[1], quiet = true, db = db, connector = { name = "x", files = { deal = "deals" }, map = { deal = function() return { bogus = 1 } end } } })
local on2 = db:query("PRAGMA foreign_keys")[1].foreign_keys
print(on1, on2, ok)
LUA
"$P" --db "$T/fk.db" run "$T/fk.lua" "$E" >"$T/fk.out" 2>"$T/fk.err"
ok "$(test "$(cat "$T/fk.out")" = "1	1	false"; echo $?)" "foreign keys are on again after an ingest and after a failed one" "$(cat "$T/fk.out")"

# A payout Type the connector's table lacks passes on (kind "other", the
# Type in kind_raw) instead of rejecting the row, in C for CSV and by the
# Lua rules for JSON alike; a connector's declared tenant columns
# (tenant_fields, as the HTTP connectors' deal fields) are stored as
# attribute history x.<name> with their types, a bad value rejects the row
# with the field named, and a rerun writes nothing.
X="$T/x"; mkdir -p "$X" "$T/xj"
cp "$E/partners.csv" "$X/"; cp "$E/partners.csv" "$T/xj/"
cat >"$X/deals.csv" <<'CSV'
Deal ID,Partner ID,Stage,Created Date,Last Modified,Deal Type,Seats,DM Known,Kickoff
X1,P1,Registered,2025-01-10,2025-02-01T10:00:00Z,Upsell,40,Yes,2025-03-01
X2,P1,Registered,2025-01-11,2025-02-01T10:00:00Z,,lots,No,
X3,P2,Registered,2025-01-12,2025-02-02T10:00:00Z,New,,,03/15/2025
CSV
printf 'Payout ID,Partner ID,Type,Amount (cents),Currency,Paid Date,Deal ID\nY1,P1,Commission,10000,USD,2025-02-01,\nY2,P1,Distributor Margin,2500,USD,2025-02-02,\nY3,P1,Bogus Type,100,USD,not a date,\n' >"$X/payouts.csv"
printf '[{"Payout ID":"Z1","Partner ID":"P1","Type":"MDF","Amount (cents)":"500","Currency":"USD","Paid Date":"2025-02-03"},\n {"Payout ID":"Z2","Partner ID":"P2","Type":"distributor_margin","Amount (cents)":"700","Currency":"EUR","Paid Date":"2025-02-04"}]\n' >"$T/xj/payouts.json"
mkdir -p "$T/xc"
sed 's/^  source = "file",$/  source = "file",\n  tenant_fields = { deal = {\n    { name = "deal_type", type = "category", from = "Deal Type" },\n    { name = "seats", type = "number", from = "Seats" },\n    { name = "dm", type = "yesno", from = "DM Known" },\n    { name = "kickoff", type = "date", from = "Kickoff" },\n  } },/' \
  "$ROOT/connectors/file.lua" >"$T/xc/tenant.lua"
grep -q 'tenant_fields = { deal' "$T/xc/tenant.lua"; ok $? "the test connector declares tenant columns"
"$P" --db "$T/x.db" ingest "$X" --connector "$T/xc/tenant.lua" >"$T/xout" 2>"$T/xerr"
ok $? "ingest with declared tenant columns" "$(cat "$T/xerr")"
grep -q 'deals.csv:3: Seats (seats): not a number: "lots"' "$T/xerr"; ok $? "a bad tenant value rejects the row, field named" "$(cat "$T/xerr")"
ok "$(test "$(q "$T/x.db" "select group_concat(external_id, ',') from deals order by external_id")" = "X1,X3"; echo $?)" "the other deals load"
xa() { q "$T/x.db" "select group_concat(d.external_id || ':' || a.field || '=' || coalesce(a.value, '-') || '@' || a.observed_at, ' ') from (select * from attr_history order by entity_id, field) a join deals d on d.id = a.entity_id where a.entity = 'deal' and a.field like 'x.%'"; }
ok "$(test "$(xa)" = "X1:x.deal_type=Upsell@2025-02-01T10:00:00Z X1:x.dm=1@2025-02-01T10:00:00Z X1:x.kickoff=2025-03-01@2025-02-01T10:00:00Z X1:x.seats=40@2025-02-01T10:00:00Z X3:x.deal_type=New@2025-02-02T10:00:00Z X3:x.kickoff=2025-03-15@2025-02-02T10:00:00Z"; echo $?)" \
  "tenant columns stored as x.<name> history as of Last Modified (yes/no 1, US date read)" "$(xa)"
ok "$(test "$(q "$T/x.db" "select group_concat(key || '=' || value, ',') from (select * from settings where key like 'field_type.x.%' order by key)")" = "field_type.x.deal_type=category,field_type.x.dm=yesno,field_type.x.kickoff=date,field_type.x.seats=number"; echo $?)" \
  "each tenant field's type is kept for the scoring features"
ok "$(test "$(q "$T/x.db" "select group_concat(external_id || ':' || kind || ':' || coalesce(kind_raw, '-'), ',') from (select * from payouts order by external_id)")" = "Y1:commission:-,Y2:other:Distributor Margin"; echo $?)" \
  "an unknown payout Type is kept as other + kind_raw (CSV, in C)"
grep -q 'payouts.csv:4: Paid Date: not a date' "$T/xerr"; ok $? "a bad value in a passed-through row still rejects it" "$(cat "$T/xerr")"
touch -d '2020-01-01' "$X/deals.csv"
before=$(q "$T/x.db" "select count(*) from attr_history")
"$P" --db "$T/x.db" ingest "$X" --connector "$T/xc/tenant.lua" >"$T/xout2" 2>&1
ok "$(test "$(q "$T/x.db" "select count(*) from attr_history")" = "$before"; echo $?)" "a rerun adds no tenant field rows"
grep -q 'deals.csv .* 3 .* 0 .* 2 .* 1 ' "$T/xout2"; ok $? "rerun: 0 written, 2 unchanged" "$(cat "$T/xout2")"
"$P" --db "$T/xj.db" ingest "$T/xj" >"$T/xjout" 2>"$T/xjerr"
ok "$(test "$(q "$T/xj.db" "select group_concat(external_id || ':' || kind || ':' || coalesce(kind_raw, '-'), ',') from (select * from payouts order by external_id)")" = "Z1:mdf:-,Z2:other:distributor_margin"; echo $?)" \
  "an unknown payout Type is kept as other + kind_raw (JSON, Lua rules)" "$(cat "$T/xjerr")"
# The same through the default connector's C conversion, two passed-through
# Types in a row: a converted value is remembered for the next row, but a
# passed-through one points into its own row and must not be.
XP="$T/xp"; mkdir -p "$XP"; cp "$E/partners.csv" "$XP/"
printf 'Payout ID,Partner ID,Type,Amount (cents),Currency,Paid Date,Deal ID\nW1,P1,Distributor Margin,100,USD,2025-02-01,\nW2-with-a-longer-id,P1,Distributor Margin,200,USD,2025-02-02,\nW3,P1,Commission,300,USD,2025-02-03,\nW4,P1,Commission,400,USD,2025-02-04,\nW5,P1,Referral Bonus,500,USD,2025-02-05,\n' >"$XP/payouts.csv"
"$P" --db "$T/xp.db" ingest "$XP" >/dev/null 2>"$T/xperr"
ok "$(test "$(q "$T/xp.db" "select group_concat(external_id || ':' || kind || ':' || coalesce(kind_raw, '-'), ',') from (select * from payouts order by external_id)")" = "W1:other:Distributor Margin,W2-with-a-longer-id:other:Distributor Margin,W3:commission:-,W4:commission:-,W5:other:Referral Bonus"; echo $?)" \
  "passed-through Types in consecutive rows each keep their own text (CSV, in C)" "$(cat "$T/xperr")"
sed 's/type = "number", from = "Seats"/type = "count", from = "Seats"/' "$T/xc/tenant.lua" >"$T/xc/badtype.lua"
"$P" --db "$T/xb.db" ingest "$X" --connector "$T/xc/badtype.lua" >/dev/null 2>"$T/xberr"
ok "$(test $? -ne 0; echo $?)" "a tenant column of an unknown type fails the connector"
grep -q "badtype.lua: field 'tenant_fields.deal\[2\].type' must be category, number, yesno or date" "$T/xberr"; ok $? "the bad declaration is named" "$(cat "$T/xberr")"

# r:load's writer thread (the default) and PRMCAST_THREADS=1 (one thread)
# give the same store, the same rejects in the same order with file and
# line, and the same summary; also on the hand-made bad CSV above.
"$P" sample --out "$T/thr" --partners 40 --deals 3000 --seed 5 >/dev/null
for th in 1 2; do
  PRMCAST_THREADS=$th "$P" --db "$T/thr$th.db" ingest "$T/thr" --batch 700 >"$T/thr$th.out" 2>"$T/thr$th.err"
  sqlite3 "$T/thr$th.db" "select * from deals order by id; select * from deal_history order by 1, 2;
    select source, file, line, reason from ingest_rejects order by 1, 2, 3;
    select * from attr_history order by 1, 2, 3, 4; select * from commits order by id" >"$T/thr$th.dump"
  grep -v 'CPU' "$T/thr$th.out" >"$T/thr$th.sum"
  # the first export's bad rows: store-side (an unknown partner) and parse-side ones mixed
  PRMCAST_THREADS=$th "$P" --db "$T/cthr$th.db" ingest "$C" >/dev/null 2>"$T/cthr$th.e"
  PRMCAST_THREADS=$th "$P" --db "$T/ethr$th.db" ingest "$E" >/dev/null 2>>"$T/cthr$th.e"
  grep -v '^audit head' "$T/thr$th.err" >"$T/thr$th.rej"; grep -v '^audit head' "$T/cthr$th.e" >"$T/cthr$th.err"
done
cmp -s "$T/thr1.dump" "$T/thr2.dump"; ok $? "one thread and two: the same store" "$(diff "$T/thr1.dump" "$T/thr2.dump" | head -3)"
cmp -s "$T/thr1.rej" "$T/thr2.rej" && cmp -s "$T/cthr1.err" "$T/cthr2.err"
ok $? "one thread and two: the same rejects, in order" "$(diff "$T/thr1.rej" "$T/thr2.rej" | head -3)"
cmp -s "$T/thr1.sum" "$T/thr2.sum"; ok $? "one thread and two: the same summary counts" "$(diff "$T/thr1.sum" "$T/thr2.sum" | head -3)"
ok "$(test "$(grep -c 'csv:[0-9]*: ' "$T/cthr2.err")" -ge 5 && grep -q 'deals.csv:1506: unclosed quote' "$T/cthr2.err" &&
  grep -q 'deals.csv:4: unknown partner' "$T/cthr2.err" && test "$(wc -l <"$T/thr1.dump")" -gt 20000; echo $?)" \
  "the comparison has rejects and rows to compare"

# The store's audit chain recorded the ingest and verifies.
"$P" --db "$DB" audit verify >"$T/audit"
ok $? "audit chain intact after ingests"
ok "$(test "$(q "$DB" "select count(*) from audit_log where action = 'ingest'")" -ge 3; echo $?)" "ingests are audited"
done_testing
