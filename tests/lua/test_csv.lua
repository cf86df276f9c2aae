-- CSV edge cases through prm.csv (libcsv underneath).
local t = require "tests.lua.tap"
local csv = require "prm.csv"

local function read_all(content)
  local path = t.tmpfile(content)
  local r, err = csv.open(path)
  if not r then os.remove(path) return nil, err end
  local recs = {}
  while true do
    local rec, line, msg = r:read()
    if rec == nil then break end
    recs[#recs + 1] = { rec = rec, line = line, msg = msg }
  end
  local header = r:header()
  r:close()
  os.remove(path)
  return recs, header
end

local recs, h = read_all('id,name,amount\n1,"Smith, Jones & Co",10\n2,"He said ""hi""",20\n')
t.eq(#recs, 2, "two records")
t.eq(recs[1].rec.name, "Smith, Jones & Co", "quoted comma")
t.eq(recs[2].rec.name, 'He said "hi"', "doubled quotes")
t.eq(h[3], "amount", "header names")

recs = read_all('id,notes,x\n1,"line one\nline two\nline three",a\n2,plain,b\n')
t.eq(recs[1].rec.notes, "line one\nline two\nline three", "embedded newlines kept")
t.eq(recs[1].line, 2, "record starts on line 2")
t.eq(recs[2].line, 5, "next record's line counts the embedded newlines")

recs = read_all('id,name\r\n1,a\r\n2,"b\r\nc"\r\n')
t.eq(#recs, 2, "CRLF rows")
t.eq(recs[1].rec.name, "a", "no stray CR in the value")
t.eq(recs[2].rec.name, "b\r\nc", "CRLF inside quotes is data")

recs, h = read_all('\239\187\191id,name\n1,a\n')
t.eq(h[1], "id", "UTF-8 BOM stripped from the first header")
t.eq(recs[1].rec.id, "1", "BOM file reads")

recs = read_all('id,name,amount\n1,,5\n2,"",6\n')
t.eq(recs[1].rec.name, nil, "empty field is nil")
t.eq(recs[1].rec.amount, "5", "fields after an empty one")

recs = read_all('id,name\n1,a\n2\n3,c,extra\n4,d\n')
t.eq(#recs, 4, "short and long rows still come out")
t.eq(recs[2].rec, false, "short row is an error")
t.ok(recs[2].msg and recs[2].msg:find("expected 2 fields, found 1", 1, true), "short row message")
t.eq(recs[2].line, 3, "short row line")
t.ok(recs[3].rec == false and recs[3].msg:find("found 3", 1, true), "long row is an error")
t.eq(recs[4].rec.name, "d", "good row after bad rows")

recs = read_all('id,name\n1,"bad"quote\n2,ok\n')
t.ok(recs[1].rec == false and recs[1].msg:find("malformed", 1, true), "malformed quote reported")
t.eq(recs[1].line, 2, "malformed quote line")
t.eq(recs[#recs].rec and recs[#recs].rec.name, "ok", "parsing resumes after a malformed row")

recs = read_all('id,name\n1,a\n2,"never closed\n')
t.ok(recs[#recs].rec == false and recs[#recs].msg:find("unclosed quote opened on line 3", 1, true),
  "unterminated quote at end of file names its line", recs[#recs].msg)

-- An unclosed quote mid-file: the row is rejected naming the line and the
-- lines it took, and the rows after it are still read as rows.
recs = read_all('id,name\n1,a\n2,"oops\n3,c\n4,d\n')
t.eq(#recs, 4, "rows after an unclosed quote are not swallowed")
t.ok(recs[2].rec == false and recs[2].line == 3 and
  recs[2].msg:find("unclosed quote opened on line 3", 1, true) and
  recs[2].msg:find("lines 3-5", 1, true) and recs[2].msg:find("resumes on line 4", 1, true),
  "unclosed quote: line, lines lost, where reading resumed", recs[2].msg)
t.ok(recs[3].rec and recs[3].rec.name == "c" and recs[3].line == 4, "row after the quote read")
t.ok(recs[4].rec and recs[4].rec.name == "d" and recs[4].line == 5, "last row read")

-- A NUL byte anywhere (here past the first 64 KiB) rejects the row instead
-- of truncating the value where it is stored.
local filler = {}
for i = 1, 2000 do filler[i] = ("F%05d,%s\n"):format(i, ("y"):rep(40)) end
recs = read_all('id,name\n' .. table.concat(filler) .. 'D0019797\0Z,n\nD2,ok\n')
t.eq(#recs, 2002, "all rows come out")
t.ok(recs[2001].rec == false and recs[2001].msg:find("NUL byte in column 'id'", 1, true),
  "NUL past 64 KiB rejects the row", recs[2001].msg)
t.eq(recs[2002].rec and recs[2002].rec.id, "D2", "row after the NUL row")

recs = read_all('id,name\n1,caf\233\n2,caf\195\169\n')
t.ok(recs[1].rec == false and recs[1].msg:find("invalid UTF-8 in column 'name'", 1, true),
  "invalid UTF-8 rejects the row", recs[1].msg)
t.eq(recs[2].rec and recs[2].rec.name, "caf\195\169", "valid UTF-8 kept")

_, err = read_all('id,name,Name,name\n1,2,3,4\n')
t.ok(err and err:find("duplicate column 'name' in header (columns 2 and 4)", 1, true),
  "duplicate header column refused", err)

recs = read_all('id,name\n1,a\n2,b')
t.eq(#recs, 2, "last line without newline")
t.eq(recs[2].rec.name, "b", "last field without newline")

recs = read_all('id,name\n')
t.eq(#recs, 0, "header only: no records")

local _, err = read_all("")
t.ok(err and err:find("empty file", 1, true), "empty file refused")
_, err = read_all("PK\3\4\0\0binary zip content")
t.ok(err and err:find("not a CSV file", 1, true), "binary file refused")
_, err = read_all('id,,name\n1,2,3\n')
t.ok(err and err:find("empty column name", 1, true), "empty column name refused")
local r2, err2 = csv.open("/nonexistent/x.csv")
t.ok(r2 == nil and err2:find("cannot open", 1, true), "missing file")
t.raises(function() csv.open("x", { delimter = ";" }) end, "unknown option 'delimter'", "unknown option raises")

-- Semicolon-delimited export (common in EU locales).
local p = t.tmpfile('id;amount\n1;"1.234,50"\n')
local r = assert(csv.open(p, { delimiter = ";" }))
local rec = r:read()
t.eq(rec.amount, "1.234,50", "custom delimiter")
r:close()
os.remove(p)

-- Memory is bounded by the record, not the file: a runaway quote is cut.
p = t.tmpfile('id,notes\n1,"' .. ("x"):rep(3000) .. '\n2,b\n')
r = assert(csv.open(p, { max_record = 1000 }))
local bad, line, msg = r:read()
t.ok(bad == false and msg:find("outgrew 1000 bytes", 1, true) and line == 2, "record size cap", msg)
local nxt = r:read()
t.eq(nxt and nxt.id, "2", "reading resumes after a record over the cap")
r:close()
os.remove(p)

-- Repeated keys in JSON records, which cjson resolves silently.
local d = csv.json_dup_keys('[{"a":1,"b":2},{"a":1,"a":2},{"x":{"k":1,"k":2}},3,{"a":1}]')
t.ok(d[1] == nil and d[2] == "a" and d[3] == "k" and d[4] == nil and d[5] == nil,
  "duplicate keys found per record, nested too")
d = csv.json_dup_keys('{"data":[{"a":"x,y"},{"a":"\\"","b":1,"a":0}],"data2":1,"a":1,"a":2}', "data")
t.ok(d[1] == nil and d[2] == "a" and next(d, next(d)) == nil, "wrapper array; strings with , and escapes")
t.eq(csv.json_dup_keys('{"Deal ID":"1","Deal ID":"2"}')[1], "Deal ID", "one JSON Lines record")

-- Declared mappings: r:map converts the columns in C as rows are read.
p = t.tmpfile('ID,Amt,When,Pct,Ok,St,Cur,Opt,N\n' ..
  'a1,"$1,200.50",03/31/2025,40,Yes,Closed-Won,eur,,2.5\n' ..
  'a2,12,2025-04-01T10:00:00Z,5%,no,lost,USD,x,1\n' ..
  'a3,1,2025-01-01,40,maybe,won,USD,,1\n' ..
  'a4,1,2025-01-01,40,y,Sorta,USD,,1\n' ..
  'a5,"1,2,3",2025-01-01,40,y,won,USD,,1\n' ..
  'a6,1,2025-01-01,40,y,won,XYZ,,1\n' ..
  'a7,1,13/45/2025,40,y,won,USD,,1\n' ..
  'a8,1,2025-01-01,140,y,won,USD,,1\n' ..
  'a9,1,2025-01-01,40,y,won,USD,,1e\n')
r = assert(csv.open(p))
r:map {
  { "external_id", "ID", "text" }, { "amount", "Amt", "money", 0.5 },
  { "created_at", "When", "date", "auto" }, { "updated_at", "When", "instant", "auto" },
  { "partner_probability", "Pct", "percent", 100 }, { "budget_confirmed", "Ok", "bool" },
  { "stage", "St", "lookup", { ["closed won"] = "closed_won", won = "closed_won", lost = "closed_lost" } },
  { "currency", "Cur", "currency" }, { "competitor", "Opt", "text" }, { "value", "N", "number" },
  { "completeness", { "Opt", "Cur", "Nope", "ID" }, "completeness" }, { "notes", "No Such Column", "text" },
}
local got = {}
while true do
  local rec, line, msg = r:read()
  if rec == nil then break end
  got[#got + 1] = { rec = rec, line = line, msg = msg }
end
r:close()
os.remove(p)
local a1 = got[1].rec
t.ok(a1 and a1.external_id == "a1" and a1.amount == 600.25 and a1.created_at == "2025-03-31" and
  a1.partner_probability == 0.4 and a1.budget_confirmed == 1 and a1.stage == "closed_won" and
  a1.currency == "EUR" and a1.competitor == nil and a1.value == 2.5 and a1.completeness == 0.5 and
  a1.notes == nil and a1.updated_at == "2025-03-31T00:00:00Z", "declared kinds convert in C")
local a2 = got[2].rec
t.ok(a2 and a2.partner_probability == 0.05 and a2.budget_confirmed == 0 and a2.stage == "closed_lost" and
  a2.created_at == "2025-04-01" and a2.updated_at == "2025-04-01T10:00:00Z" and a2.completeness == 0.75,
  "percent sign, no, ISO instant")
local function reason(i) return got[i].rec == false and got[i].msg or tostring(got[i].msg) end
t.eq(reason(3), 'Ok: not yes/no: "maybe"', "bad flag names column and value")
t.eq(reason(4), 'St: unknown value "Sorta"', "unknown lookup value")
t.eq(reason(5), 'Amt: not an amount: "1,2,3"', "bad amount")
t.eq(reason(6), 'Cur: not an ISO 4217 currency code: "XYZ"', "bad currency")
t.eq(reason(7), 'When: not a date: "13/45/2025"', "bad date")
t.eq(reason(8), 'Pct: out of range: "140"', "percent out of range")
t.eq(reason(9), 'N: not a number: "1e"', "bad number")
t.eq(got[9].line, 10, "bad rows keep their line")

-- Fuzzing findings (tests/fuzz/regress): a malformed header line used to be
-- parsed again over the header names already read (a leak, and a shrunk
-- array freed past its end); an object that closes before any key was seen.
_, err = read_all('Deal ID,"Partner"ID,x\nD1,P1,2\n')
t.ok(err and err:find("no readable CSV header line", 1, true), "malformed header refused", err)
t.eq(next(csv.json_dup_keys('[{[""a"]}]')), nil, "an object with no keys in a record scans")

local fp1 = csv.fingerprint("tests/lua/test_csv.lua")
t.ok(type(fp1) == "string" and fp1 == csv.fingerprint("tests/lua/test_csv.lua"), "fingerprint is stable")
t.done()
