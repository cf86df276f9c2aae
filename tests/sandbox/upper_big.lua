-- expect: string.upper: subject of 5242880 bytes exceeds the rule limit of 4 MiB
-- where: upper_big.lua:9:
-- phase: check
local rules = require "prm.rules"
rules.flag{ name = "ATTACK", description = "1000 x upper() on 5 MB", severity = "low", check = function()
  -- just over the limit: the attack is the 1000 calls, not the size (a 20 MB
  -- build came near the 1 s wall limit under ASan on a machine at load 9)
  local h = ("x"):rep(5 << 19); local s = h .. h
  for _ = 1, 1000 do s:upper() end
end }
