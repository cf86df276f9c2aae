-- expect: time limit exceeded (1000 ms)
-- where: time_pcall.lua:
-- phase: check
local rules = require "prm.rules"
rules.flag{ name = "ATTACK", description = "C work inside pcall, retried", severity = "low", check = function()
  local s = ("x"):rep(3 << 20)
  while true do pcall(function() for _ = 1, 1000 do s:lower() end end) end
end }
