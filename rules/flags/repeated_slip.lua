-- rules/flags/repeated_slip.lua: a close date that keeps moving out.
local rules = require "prm.rules"

rules.flag{
  name        = "REPEATED_SLIP",
  description = "Open deal whose expected close moved out at least `slips` times or by `days` days in total",
  severity    = "medium",
  params      = {
    slips = { "Number of times the expected close moved later", 2 },
    days  = { "Total days the expected close moved later", 60 },
  },
  when = function(deal, ctx, p)
    if deal.status ~= "open" then return false end
    local n, d = deal.close_date_slips, deal.days_slipped
    if n < p.slips and d < p.days then return false end
    return true, ("close date moved out %d time%s, %d days in total"):format(n, n == 1 and "" or "s", d)
  end,
}
