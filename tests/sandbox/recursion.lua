-- expect: recursion limit exceeded (200 levels)
-- where: recursion.lua:5:
-- phase: check
local rules = require "prm.rules"
local function deep(n) return 1 + deep(n + 1) end
rules.flag{ name = "ATTACK", description = "unbounded recursion", severity = "low", check = function()
  return deep(1) > 0
end }
