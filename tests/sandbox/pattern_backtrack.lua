-- expect: string.find: pattern too complex
-- where: pattern_backtrack.lua:6:
-- phase: check
local rules = require "prm.rules"
rules.flag{ name = "ATTACK", description = "exponential backtracking", severity = "low", check = function()
  return ("a"):rep(25):find(("a*"):rep(12) .. "b")
end }
