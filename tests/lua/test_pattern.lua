-- The sandbox's own pattern matcher (engine/sandbox_str.c) against Lua's:
-- the same results for find, match, gmatch and gsub over a table of
-- subjects and patterns, and a step budget that stops backtracking. The
-- bounded functions are taken from a connector-kind _ENV inside this job
-- state, where the global string table is still Lua's stock one.
local t = require "tests.lua.tap"
local engine = require "prm.engine"
local path = t.tmpfile("return string")
local bs = assert(engine.load(path, "connector"))
os.remove(path)
t.ok(bs.find ~= string.find and bs.gsub ~= string.gsub, "the connector env has bounded copies")

local subjects = { "", "hello world", "  key = value  ", "a,b,,c", "THE (quick) [brown] fox",
  "aaa", "x=1, y=22, z=333", "f(a(b)c)d", "%d+", "line1\nline2\r\n", "\0bin\0ary", "über straße",
  "THE (quick) fox", "2025-03-07T10:00:00Z", "abcabcabc", "  ", "a.b.c" }
local patterns = { "", "o", "l+", "l*", "l-o", "^h", "d$", "^$", "%a+", "%A+", "%d+", "%s*(%S+)%s*",
  "(%w+)%s*=%s*(%w+)", "[aeiou]", "[^aeiou ]+", "[%a_][%w_]*", "%b()", "%b[]", "%f[%w]%w+", "%f[%W]",
  "(a)(b)?", "()a()", "(a*(.)%w(%s*))", "(.)%1", "[a-c]+", "[]]", "[^]]+", "[%]]", ".-b", "x?y",
  "(%d)(%d?)", "%.", "[.]", "%%", "^(%d+)-(%d+)-(%d+)T", ",", ",,", "\0", "%z", "[%z]", "ü", "a-",
  "(%a+) (%a+)", "^%s*$", "[%-]", "[a%-z]", "%u%l*", "%x+", "%p", "%c", "%g+" }

local function pack(ok, ...) return { ok = ok, n = select("#", ...), ... } end
local function same(a, b)
  if a.ok ~= b.ok then return false end
  if not a.ok then return true end        -- both raise; messages may differ
  if a.n ~= b.n then return false end
  for i = 1, a.n do if a[i] ~= b[i] then return false end end
  return true
end
local function all(f, s, p)
  local out = {}
  for a, b, c in f(s, p) do out[#out + 1] = tostring(a) .. "|" .. tostring(b) .. "|" .. tostring(c) end
  return table.concat(out, ";")
end

local bad, cases = {}, 0
for _, s in ipairs(subjects) do
  for _, p in ipairs(patterns) do
    for _, init in ipairs({ 1, 2, -3, 100 }) do
      cases = cases + 1
      if not same(pack(pcall(string.find, s, p, init)), pack(pcall(bs.find, s, p, init))) then
        bad[#bad + 1] = ("find(%q, %q, %d)"):format(s, p, init)
      end
      if not same(pack(pcall(string.find, s, p, init, true)), pack(pcall(bs.find, s, p, init, true))) then
        bad[#bad + 1] = ("plain find(%q, %q, %d)"):format(s, p, init)
      end
      if not same(pack(pcall(string.match, s, p, init)), pack(pcall(bs.match, s, p, init))) then
        bad[#bad + 1] = ("match(%q, %q, %d)"):format(s, p, init)
      end
    end
    if not same(pack(pcall(all, string.gmatch, s, p)), pack(pcall(all, bs.gmatch, s, p))) then
      bad[#bad + 1] = ("gmatch(%q, %q)"):format(s, p)
    end
    for _, r in ipairs({ "<%0>", "%1", "[%2%1]", "%%", "", 7 }) do
      if not same(pack(pcall(string.gsub, s, p, r)), pack(pcall(bs.gsub, s, p, r))) then
        bad[#bad + 1] = ("gsub(%q, %q, %q)"):format(s, p, r)
      end
    end
    local fr = function(a, b) return a and (a .. "!" .. tostring(b)) end
    if not same(pack(pcall(string.gsub, s, p, fr, 2)), pack(pcall(bs.gsub, s, p, fr, 2))) then
      bad[#bad + 1] = ("gsub(%q, %q, function, 2)"):format(s, p)
    end
    local tr = { a = "A", hello = false, l = 1 }
    if not same(pack(pcall(string.gsub, s, p, tr)), pack(pcall(bs.gsub, s, p, tr))) then
      bad[#bad + 1] = ("gsub(%q, %q, table)"):format(s, p)
    end
  end
end
t.ok(#bad == 0, ("the same results as Lua's matcher on %d cases"):format(cases * 3), table.concat(bad, "\n#   ", 1, math.min(#bad, 10)))
for _, p in ipairs({ "%", "[a", "(()", "%b", "%f", "(%1)", ")" }) do
  t.ok(not pcall(bs.match, "abc", p) and not pcall(string.match, "abc", p), "malformed pattern raises: " .. p)
end

local t0 = os.clock()
local ok, err = pcall(bs.find, ("a"):rep(25), ("a*"):rep(12) .. "b")
t.ok(not ok and err:find("pattern too complex", 1, true), "backtracking is stopped", err)
t.ok(os.clock() - t0 < 2, "in bounded time", os.clock() - t0)
local hay = ("ab"):rep(1 << 20)
t0 = os.clock()
t.eq(bs.find(hay .. "c", ("ab"):rep(1 << 19) .. "c", 1, true), (1 << 20) + 1, "a plain find of a 1 MiB needle is linear")
t.ok(os.clock() - t0 < 1, "and fast", os.clock() - t0)
t.done()
