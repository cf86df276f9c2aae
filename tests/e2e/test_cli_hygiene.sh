#!/bin/sh
# CLI hygiene (issue 8): usage errors exit 2 with one line and no Lua
# traceback; read-only commands never create a store; --db "" is refused;
# --json stays JSON on failure; --version; a bad PRMCAST_NOW is refused.
. "$(dirname "$0")/lib.sh"
cd "$T" || exit 1

usage() {   # usage NAME CMD... : exit 2, one line on stderr naming the problem, no traceback
  name=$1; shift
  "$@" >out 2>err
  rc=$?
  lines=$(grep -vc "^(see 'prmcast" err)
  ok "$(test $rc -eq 2 && test "$lines" -eq 1 && ! grep -q "traceback\|\.lua:[0-9]" err; echo $?)" "$name" "exit $rc: $(cat err)"
}
usage "train --bogus: usage error" "$P" --db u.db train --bogus
usage "ingest --batch abc: usage error" "$P" --db u.db ingest . --batch abc
usage "sample --deals -5: usage error" "$P" sample --out s --deals -5
usage "audit verify extra: usage error" "$P" --db u.db audit verify extra
usage "score --model x: usage error" "$P" --db u.db score --model x
usage "unknown command" "$P" frobnicate
usage "--db '' refused" "$P" --db "" status
PRMCAST_NOW=yesterday "$P" --db u.db status >out 2>err; ok "$(test $? -eq 2; echo $?)" "a PRMCAST_NOW that is not a date is a usage error" "$(cat err)"
grep -q "PRMCAST_NOW" err; ok $? "and says which setting"

"$P" --db typo.db status >out 2>err; ok "$(test $? -eq 1; echo $?)" "status on a missing store fails"
ok "$(test ! -e typo.db; echo $?)" "and does not create it"
"$P" --db typo.db explain D1 >/dev/null 2>&1; ok "$(test ! -e typo.db; echo $?)" "explain does not create a store either"
"$P" --db typo.db audit verify >/dev/null 2>&1; ok "$(test ! -e typo.db; echo $?)" "nor does audit verify"
grep -q "no store at typo.db" err; ok $? "the message names the path" "$(cat err)"

"$P" --db typo.db --json status >out.json 2>/dev/null
printf 'local t = require("cjson").decode(io.open(arg[1]):read("a")) assert(t.ok == false and t.error:find("no store"))\n' >chk.lua
"$P" --db j.db run chk.lua out.json >/dev/null 2>&1; ok $? "--json failures are a JSON object on stdout" "$(cat out.json)"
"$P" --db j.db --json init >init.json 2>/dev/null
printf 'local t = require("cjson").decode(io.open(arg[1]):read("a")) assert(t.ok and t.schema_version >= 5)\n' >chk2.lua
"$P" --db j.db run chk2.lua init.json >/dev/null 2>&1; ok $? "init --json" "$(cat init.json)"
"$P" --version >v.txt; ok $? "--version"
grep -q "^prmcast [0-9a-f]" v.txt; ok $? "--version prints the build's git describe" "$(cat v.txt)"
sqlite3 neg.db "PRAGMA user_version = -1; CREATE TABLE x (a);"
"$P" --db neg.db status >/dev/null 2>err; grep -q "not a prmcast store" err; ok $? "a negative schema version is named, not 'not an error'" "$(cat err)"
# A job left 'running' by a killed process is marked on the next start.
"$P" --db jr.db init >/dev/null 2>&1
sqlite3 jr.db "INSERT INTO jobs (script, started_at, status, pid) VALUES ('x', '2026-01-01T00:00:00Z', 'running', 999999)"
printf 'return {}\n' >nop.lua
"$P" --db jr.db run nop.lua >/dev/null 2>&1
ok "$(test "$(q jr.db "SELECT status FROM jobs WHERE id = 1")" = killed; echo $?)" "a job whose process died is marked killed on the next start"
# A script's error: the clear message only; the traceback with PRMCAST_LOG=debug.
printf 'local function f() error("the clear error", 0) end\nf()\n' >boom.lua
"$P" --db jr.db run boom.lua >/dev/null 2>err; ok "$(test $? -eq 1; echo $?)" "a failing script exits 1"
grep -q "prmcast run: the clear error" err; ok $? "its clear error is printed" "$(cat err)"
! grep -q "stack traceback" err; ok $? "without a Lua traceback" "$(cat err)"
PRMCAST_LOG=debug "$P" --db jr.db run boom.lua >/dev/null 2>err
grep -q "stack traceback" err && grep -q "boom.lua:1: in local 'f'" err; ok $? "PRMCAST_LOG=debug adds the traceback" "$(cat err)"
ok "$(q jr.db "SELECT count(*) FROM jobs WHERE error LIKE '%stack traceback%'" | grep -qx '[1-9][0-9]*'; echo $?)" "the jobs table keeps the whole message"
done_testing
