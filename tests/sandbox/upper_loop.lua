-- expect: time limit exceeded (1000 ms)
-- where: upper_loop.lua:8:
-- phase: check
local rules = require "prm.rules"
rules.flag{ name = "ATTACK", description = "1000 x upper() on 3 MB: C work the count hook cannot see", severity = "low",
  check = function()
    local s = ("x"):rep(3 << 20)
    for _ = 1, 1000 do s:upper() end
  end }
