-- rules/flags/close_date_past.lua: still open after its expected close.
local rules = require "prm.rules"

rules.flag{
  name        = "CLOSE_DATE_PAST",
  description = "Open deal whose expected close date is more than `grace_days` days in the past",
  severity    = "high",
  params      = {
    grace_days = { "Days past the expected close before the deal is flagged", 0 },
  },
  when = function(deal, ctx, p)
    if deal.status ~= "open" then return false end
    local late = ctx.days_since(deal.expected_close)
    if not late or late <= p.grace_days then return false end
    return true, ("expected close %s passed %d day%s ago"):format(
      deal.expected_close, late, late == 1 and "" or "s")
  end,
}
