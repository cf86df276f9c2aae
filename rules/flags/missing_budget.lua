-- rules/flags/missing_budget.lua: late-stage deals whose budget nobody has
-- confirmed.
local rules = require "prm.rules"

local ORDER = { registered = 1, qualified = 2, solution = 3, proposal = 4, negotiation = 5 }

rules.flag{
  name        = "MISSING_BUDGET",
  description = "Open deal at `from_stage` or later whose budget is not confirmed (no, or unknown)",
  severity    = "high",
  params      = {
    from_stage = { "First stage at which a confirmed budget is expected", "proposal" },
  },
  when = function(deal, ctx, p)
    local at, from = ORDER[deal.stage], ORDER[p.from_stage]
    if deal.status ~= "open" or not at or not from or at < from then return false end
    if deal.budget_confirmed == true then return false end
    local what = deal.budget_confirmed == false and "not confirmed" or "unknown"
    return true, ("budget %s at %s"):format(what, deal.stage)
  end,
}
