-- rules/flags/competitor_engaged.lua: the partner reports a competitor.
local rules = require "prm.rules"

rules.flag{
  name        = "COMPETITOR_ENGAGED",
  description = "Open deal with a competitor named (values in `ignore` do not count)",
  severity    = "low",
  params      = {
    ignore = { "Comma-separated competitor values that mean none (case-insensitive)", "none,n/a,na,unknown,-" },
  },
  when = function(deal, ctx, p)
    local c = deal.competitor
    if deal.status ~= "open" or not c then return false end
    local v = c:lower():match("^%s*(.-)%s*$")
    if v == "" then return false end
    for word in p.ignore:gmatch("[^,]+") do
      if v == word:lower():match("^%s*(.-)%s*$") then return false end
    end
    return true, ("competitor engaged: %s"):format(c)
  end,
}
