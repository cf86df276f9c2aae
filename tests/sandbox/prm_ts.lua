-- expect: module 'prm.ts' is not available to rules
-- where: prm_ts.lua:4:
-- phase: load
local ts = require "prm.ts"
local rules = require "prm.rules"
rules.flag{ name = "ATTACK", description = "a forecast per deal", severity = "low", check = function() return ts ~= nil end }
