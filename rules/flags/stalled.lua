-- rules/flags/stalled.lua: an open deal that has not moved for a long time,
-- long meaning longer than the floor `days` and than `median_factor` times
-- the median days deals spend in its stage.
local rules = require "prm.rules"

rules.flag{
  name        = "STALLED",
  description = "Open deal with no stage change for max(`days`, `median_factor` x the stage's median days)",
  severity    = "medium",
  params      = {
    days          = { "Days without a stage change before a deal counts as stalled", 30 },
    median_factor = { "Multiple of the stage's median days in stage", 2 },
  },
  when = function(deal, ctx, p)
    if deal.status ~= "open" then return false end
    local idle = ctx.days_since(deal.stage_changed_at or deal.created_at) or deal.days_in_stage
    local median = ctx.stage_median_days[deal.stage]
    local limit = p.days
    if median and median * p.median_factor > limit then limit = median * p.median_factor end
    if idle < limit then return false end
    return true, ("no stage change for %d days in %s (limit %d%s)"):format(
      idle, deal.stage, math.ceil(limit),
      median and (", stage median %.0f days"):format(median) or "")
  end,
}
