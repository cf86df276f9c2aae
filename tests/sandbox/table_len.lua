-- expect: table.insert: 1099511627776 elements exceed the rule limit of 4194304
-- where: table_len.lua:7:
-- phase: check
local rules = require "prm.rules"
rules.flag{ name = "ATTACK", description = "an inflated __len", severity = "low", check = function()
  local t = setmetatable({}, { __len = function() return 1 << 40 end })
  table.insert(t, 1, "x")
end }
