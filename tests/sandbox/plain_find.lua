-- Under the size limit a plain find is linear (memmem), not needle x subject.
-- phase: none
local rules = require "prm.rules"
rules.flag{ name = "ATTACK", description = "a 1.5 MB needle in a 3 MB string", severity = "low", check = function()
  local hay = ("a"):rep(3 << 20)
  local needle = ("a"):rep(3 << 19) .. "b"
  return hay:find(needle, 1, true) == nil, "not found"
end }
