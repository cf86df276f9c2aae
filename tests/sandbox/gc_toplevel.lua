-- expect: setmetatable: __gc metamethods are not allowed in sandboxed code
-- where: gc_toplevel.lua:5:
-- phase: load
local rules = require "prm.rules"
setmetatable({}, { __gc = function() while true do end end })
rules.flag{ name = "ATTACK", description = "never declared", severity = "low", check = function() return true end }
