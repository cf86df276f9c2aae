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
t.ok(recs[#recs].rec == false and recs[#recs].msg:find("unterminated", 1, true),
  "unterminated quote at end of file")

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
t.ok(bad == false and msg:find("longer than", 1, true) and line == 2, "record size cap")
r:close()
os.remove(p)

local fp1 = csv.fingerprint("tests/lua/test_csv.lua")
t.ok(type(fp1) == "string" and fp1 == csv.fingerprint("tests/lua/test_csv.lua"), "fingerprint is stable")
t.done()
