#!/bin/sh
# The command line: help, exit codes, --db placement, the job runner
# (arg, jobs table, audit, failures), sample determinism, status.
. "$(dirname "$0")/lib.sh"
cd "$T"
"$P" help >out; ok $? "help exits 0"
grep -q "ingest" out; ok $? "help lists commands"
"$P" ingest --help >out; ok $? "command --help exits 0"
grep -q "resumable" out; ok $? "command help has the details"
"$P" >/dev/null 2>&1; ok "$(test $? -eq 2; echo $?)" "no command: usage error 2"
"$P" frobnicate >/dev/null 2>err; ok "$(test $? -eq 2; echo $?)" "unknown command: 2"
grep -q "unknown command 'frobnicate'" err; ok $? "unknown command named"
"$P" sample >/dev/null 2>err; ok "$(test $? -eq 2; echo $?)" "missing --out: 2"
"$P" sample --out s --deals many >/dev/null 2>&1; ok "$(test $? -eq 2; echo $?)" "bad number: 2"
"$P" --db >/dev/null 2>&1; ok "$(test $? -eq 2; echo $?)" "--db without path: 2"

"$P" init >/dev/null; ok $? "init in the current directory"
test -f prmcast.db; ok $? "default store is ./prmcast.db"
"$P" init --db other.db >/dev/null && test -f other.db; ok $? "--db after the command"
PRMCAST_DB=env.db "$P" init >/dev/null && test -f env.db; ok $? "PRMCAST_DB"

cat >job.lua <<'LUA'
local db = prm.store.default()
print("args", #arg, arg[0], arg[1], arg[2], select('#', ...))
db:exec("CREATE TABLE IF NOT EXISTS scratch (x)")
db:exec("INSERT INTO scratch VALUES (?)", arg[1])
return { rows = db:query("SELECT count(*) AS n FROM scratch")[1].n }
LUA
"$P" --db j.db run job.lua alpha "two words" >out; ok $? "run a job script"
grep -q "args	2	job.lua	alpha	two words	2" out; ok $? "arg and ... as the lua interpreter sets them" "$(cat out)"
ok "$(test "$(q j.db "select status || '|' || counts from jobs where script = 'job.lua'")" = 'ok|{"rows":1}'; echo $?)" "job recorded with counts"
ok "$(test "$(q j.db "select count(*) from audit_log where action in ('job.start', 'job.end')")" = 2; echo $?)" "job audited"
"$P" run job.lua --db x >/dev/null 2>&1
ok "$(test ! -f x; echo $?)" "options after SCRIPT belong to the script"

printf 'local x = 1\nlocal y = nil\nreturn y.z\n' >bad.lua
"$P" --db j.db run bad.lua >/dev/null 2>err; ok "$(test $? -eq 1; echo $?)" "failing job exits 1"
grep -q "bad.lua:3:" err; ok $? "failing job names file and line" "$(cat err)"
ok "$(test "$(q j.db "select status from jobs where script = 'bad.lua'")" = failed; echo $?)" "failed job recorded"
"$P" --db j.db run missing.lua >/dev/null 2>err; ok "$(test $? -eq 1; echo $?)" "missing script: 1"
"$P" --db j.db audit verify >out; ok $? "audit verify"
grep -q "intact" out; ok $? "audit verify says intact"
"$P" --db j.db audit verify --json >out && grep -q '"ok":true' out; ok $? "audit verify --json"

"$P" sample --out s1 --partners 40 --deals 3000 --seed 11 >/dev/null
"$P" sample --out s2 --partners 40 --deals 3000 --seed 11 >/dev/null
"$P" sample --out s3 --partners 40 --deals 3000 --seed 12 >/dev/null
diff -r s1 s2 >/dev/null; ok $? "sample is deterministic per seed"
cmp -s s1/deals.csv s3/deals.csv; ok "$(test $? -ne 0; echo $?)" "another seed gives other data"
for f in partners deals deal_history commits quotas transactions payouts signals fx_rates; do
  test -s "s1/$f.csv" || missing="$missing $f"
done
ok "$(test -z "${missing:-}"; echo $?)" "every export file written${missing:-}"
ok "$(test "$(grep -c ',Distributor\|,distributor' s1/partners.csv)" -ge 1; echo $?)" "distributors present"
ok "$(test "$(awk -F, 'NR>1 && $7 != ""' s1/partners.csv | wc -l)" -ge 1; echo $?)" "resellers under distributors"

"$P" --db s.db ingest s1 --quiet >/dev/null 2>&1
"$P" --db s.db status >out; ok $? "status"
grep -q "deals" out && grep -q "ingest" out; ok $? "status shows tables and jobs"
"$P" --db s.db status --json >out.json; ok $? "status --json"
printf 'local t = require("cjson").decode(io.open("out.json"):read("a"))\nassert(t.schema_version and #t.tables > 5)\n' >chk.lua
"$P" --db j.db run chk.lua >/dev/null 2>&1; ok $? "status --json is valid JSON"
done_testing
