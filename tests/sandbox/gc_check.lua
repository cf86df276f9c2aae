-- expect: setmetatable: __gc metamethods are not allowed in sandboxed code
-- where: gc_check.lua:6:
-- phase: check
local rules = require "prm.rules"
rules.flag{ name = "ATTACK", description = "a looping finalizer", severity = "low", check = function()
  local t = setmetatable({}, { __gc = function() while true do end end })
  return t ~= nil
end }
