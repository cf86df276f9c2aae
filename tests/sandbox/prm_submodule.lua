-- prm's lazy submodules (prm.ts, prm.model, prm.store in job states) are
-- not reachable through require "prm" in a rule: only the kinds table says
-- what a rule may load.
-- phase: none
local rules = require "prm.rules"
local prm = require "prm"
rules.flag{ name = "ATTACK", description = "prm.ts through the prm module", severity = "low", check = function()
  return prm.ts == nil and prm.model == nil and prm.store == nil and prm.engine == nil, "no submodules"
end }
