-- expect: string.find: subject of 5242880 bytes exceeds the rule limit of 4 MiB
-- where: plain_find_big.lua:9:
-- phase: check
local rules = require "prm.rules"
rules.flag{ name = "ATTACK", description = "a 2.5 MB needle in a 5 MB string", severity = "low", check = function()
  local mb = ("a"):rep(1 << 20)
  local hay = mb .. mb .. mb .. mb .. mb
  local needle = mb .. mb .. ("a"):rep(1 << 19) .. "b"
  return hay:find(needle, 1, true)
end }
