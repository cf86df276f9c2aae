#!/bin/sh
# The audit chain under attack (issue 8): with $PRMCAST_AUDIT_KEY the chain
# is HMAC-keyed, so an edited row whose chain is recomputed without the key
# fails verify; every job prints the head to stderr and `audit head` prints
# it, so `audit verify --expect HEAD` catches deleting the last rows or all
# of them (which a bare verify cannot); --json stays JSON on failure.
. "$(dirname "$0")/lib.sh"
cd "$T"
export PRMCAST_NOW=2026-11-20
export PRMCAST_AUDIT_KEY=correct-horse-battery-staple
printf 'return 1\n' >job.lua
"$P" --db a.db init >/dev/null 2>&1
for i in 1 2 3; do "$P" --db a.db run job.lua >/dev/null 2>job.err; done
grep -Eq '^audit head [0-9a-f]{64} \(7 rows\)$' job.err; ok $? "a job prints the audit head to stderr" "$(cat job.err)"
head=$(sed -n 's/^audit head \([0-9a-f]*\) .*/\1/p' job.err)
ok "$(test "$("$P" --db a.db audit head)" = "$head"; echo $?)" "audit head prints the same hash"
ok "$(test "$(q a.db "select count(*) from audit_log where alg = 'hmac-sha256'")" = 7; echo $?)" "rows written with the key are keyed"
"$P" --db a.db audit verify --expect "$head" >out 2>&1; ok $? "with the key, an intact chain verifies against its head" "$(cat out)"
"$P" --db a.db run job.lua >/dev/null 2>&1
"$P" --db a.db audit verify --expect "$head" >out 2>&1; ok $? "rows appended after the recorded head are fine" "$(cat out)"
grep -q "2 row(s) after it" out; ok $? "and counted" "$(cat out)"
PRMCAST_AUDIT_KEY= "$P" --db a.db audit verify >out 2>&1; ok "$(test $? -eq 1; echo $?)" "keyed rows cannot be verified without the key"
grep -q "set PRMCAST_AUDIT_KEY" out; ok $? "and verify says so" "$(cat out)"
PRMCAST_AUDIT_KEY=wrong "$P" --db a.db audit verify >out 2>&1; ok "$(test $? -eq 1; echo $?)" "a wrong key fails" "$(cat out)"

# Truncation: a bare verify cannot see it, the recorded head can.
head=$("$P" --db a.db audit head)
cp a.db t.db
sqlite3 t.db "DROP TRIGGER audit_log_no_delete; DELETE FROM audit_log WHERE id > (SELECT max(id) - 2 FROM audit_log)"
"$P" --db t.db audit verify >/dev/null 2>&1; ok $? "deleting the last rows leaves a chain that links"
"$P" --db t.db audit verify --expect "$head" >out 2>&1; ok "$(test $? -eq 1; echo $?)" "verify --expect catches the deleted last rows" "$(cat out)"
grep -q "is not in the chain" out; ok $? "naming the missing head" "$(cat out)"
"$P" --db t.db --json audit verify --expect "$head" >out.json 2>/dev/null; rc=$?
python3 -c 'import json; d = json.load(open("out.json")); assert d["ok"] is False and "not in the chain" in d["error"]'
ok "$(test $? -eq 0 && test $rc -eq 1; echo $?)" "--json stays JSON on failure, exit 1" "$(cat out.json)"
sqlite3 t.db "DELETE FROM audit_log"
"$P" --db t.db audit verify --expect "$head" >out 2>&1; ok "$(test $? -eq 1; echo $?)" "verify --expect catches deleting every row" "$(cat out)"
"$P" --db t.db audit verify --expect nothex >/dev/null 2>&1; ok "$(test $? -eq 2; echo $?)" "a malformed --expect is a usage error"

# An edited row whose chain is recomputed without the key (the attacker
# has the file, not the key): plain SHA-256 over the same fields.
cp a.db e.db
cat >recompute.py <<'PY'
import hashlib, sqlite3, sys
db = sqlite3.connect(sys.argv[1])
db.executescript("DROP TRIGGER audit_log_no_update; UPDATE audit_log SET detail = '{\"job\":666}' WHERE id = 3")
prev = "0" * 64
for row in db.execute("SELECT id, at, actor, action, subject, detail FROM audit_log ORDER BY id").fetchall():
    m = hashlib.sha256(b"%d;" % row[0])
    for p in list(row[1:]) + [prev]:
        b = (p if p is not None else "").encode()
        m.update(b"%d%s" % (len(b), b":" if p is not None else b"~") + b)
    h = m.hexdigest()
    db.execute("UPDATE audit_log SET prev_hash = ?, hash = ?, alg = 'sha256' WHERE id = ?", (prev, h, row[0]))
    prev = h
db.commit()
print(prev)
PY
forged=$(python3 recompute.py e.db)
PRMCAST_AUDIT_KEY= "$P" --db e.db audit verify >out 2>&1; ok $? "without the key the forged chain looks intact (why the key matters)" "$(cat out)"
"$P" --db e.db audit verify >out 2>&1; ok "$(test $? -eq 1; echo $?)" "with the key the recomputed chain fails" "$(cat out)"
grep -q "not keyed" out; ok $? "and says it was written without the key" "$(cat out)"
"$P" --db e.db audit verify --expect "$head" >/dev/null 2>&1; ok "$(test $? -eq 1; echo $?)" "and the recorded head is not in it"
ok "$(test "$forged" != "$head"; echo $?)" "the forged head differs from the recorded one"

# A store without the key keeps working as before (plain SHA-256).
unset PRMCAST_AUDIT_KEY
"$P" --db p.db init >/dev/null 2>&1 && "$P" --db p.db run job.lua >/dev/null 2>&1
"$P" --db p.db audit verify >/dev/null 2>&1; ok $? "an unkeyed chain verifies without the key"
ok "$(test "$(q p.db "select count(distinct alg) || alg from audit_log")" = 1sha256; echo $?)" "its rows are plain sha256"
done_testing
