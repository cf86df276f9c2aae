-- A __gc added after setmetatable: Lua never marks those objects, so the
-- looping finalizer cannot run during GC or at close.
-- phase: none
local rules = require "prm.rules"
rules.flag{ name = "ATTACK", description = "a finalizer added late", severity = "low", check = function()
  local mt = {}
  for i = 1, 1000 do setmetatable({}, mt) end
  mt.__gc = function() while true do end end
  for i = 1, 20000 do local g = { i, tostring(i) } end     -- garbage: GC steps run
  return true, "late __gc ignored"
end }
