-- expect: recursion limit exceeded (200 levels)
-- where: recursion_pcall.lua:
-- phase: check
local rules = require "prm.rules"
local function deep(n) return 1 + deep(n + 1) end
rules.flag{ name = "ATTACK", description = "recursion retried under pcall", severity = "low", check = function()
  while true do pcall(deep, 1) end
end }
