-- tests/lua/tap.lua: TAP assertions for Lua tests run inside the real
-- binary (`prmcast run tests/lua/test_x.lua`), counted by tests/run.sh.
local M = { n = 0, failed = 0 }

function M.ok(cond, name, detail)
  M.n = M.n + 1
  if cond then
    print(("ok %d - %s"):format(M.n, name))
  else
    M.failed = M.failed + 1
    local info = debug.getinfo(2, "Sl")
    print(("not ok %d - %s\n#   at %s:%d%s"):format(M.n, name, info.short_src, info.currentline,
      detail and (": " .. tostring(detail)) or ""))
  end
  return cond
end

function M.eq(got, want, name)
  return M.ok(got == want, name, ("got %s, want %s"):format(tostring(got), tostring(want)))
end

function M.near(got, want, tol, name)
  return M.ok(type(got) == "number" and math.abs(got - want) <= tol, name,
    ("got %s, want %s (tol %g)"):format(tostring(got), tostring(want), tol))
end

-- Expects f to raise an error containing `pattern` (plain text).
function M.raises(f, pattern, name)
  local ok, err = pcall(f)
  return M.ok(not ok and tostring(err):find(pattern, 1, true) ~= nil, name,
    ok and "no error" or tostring(err))
end

function M.done()
  print(("1..%d"):format(M.n))
  if M.failed > 0 then error(("%d test(s) failed"):format(M.failed), 0) end
end

function M.tmpfile(content)
  local path = os.tmpname()
  local f = assert(io.open(path, "wb"))
  f:write(content)
  f:close()
  return path
end

return M
