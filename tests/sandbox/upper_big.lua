-- expect: string.upper: subject of 20971520 bytes exceeds the rule limit of 4 MiB
-- where: upper_big.lua:8:
-- phase: check
local rules = require "prm.rules"
rules.flag{ name = "ATTACK", description = "1000 x upper() on 20 MB", severity = "low", check = function()
  local s = ("x"):rep(4 << 20)
  s = s .. s .. s .. s .. s
  for _ = 1, 1000 do s:upper() end
end }
