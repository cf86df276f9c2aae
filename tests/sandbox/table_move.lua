-- expect: table.move: 1099511627776 elements exceed the rule limit of 4194304
-- where: table_move.lua:6:
-- phase: check
local rules = require "prm.rules"
rules.flag{ name = "ATTACK", description = "a 2^40 element move", severity = "low", check = function()
  return table.move({}, 1, 1 << 40, 1, {})
end }
