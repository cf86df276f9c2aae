-- rules/flags/missing_info.lua: a registration too thin to forecast on.
local rules = require "prm.rules"

-- The fields a partner should fill in, in the order the reason lists them.
local FIELDS = { "account", "contact_name", "contact_email", "amount", "expected_close", "product_family" }

rules.flag{
  name        = "MISSING_INFO",
  description = "Open deal whose completeness is below `threshold` (or, with no score, that lacks `min_missing` key fields)",
  severity    = "low",
  params      = {
    threshold   = { "Completeness (0..1) below which a deal is flagged", 0.6 },
    min_missing = { "Key fields missing before a deal without a completeness score is flagged", 2 },
  },
  when = function(deal, ctx, p)
    if deal.status ~= "open" then return false end
    local missing = {}
    for _, f in ipairs(FIELDS) do
      if deal[f] == nil then missing[#missing + 1] = f end
    end
    local c = deal.completeness
    local list = #missing > 0 and ("; missing " .. table.concat(missing, ", ")) or ""
    if c then
      if c >= p.threshold then return false end
      return true, ("completeness %.2f below %.2f%s"):format(c, p.threshold, list)
    end
    if #missing < p.min_missing then return false end
    return true, ("%d key fields missing%s"):format(#missing, list)
  end,
}
