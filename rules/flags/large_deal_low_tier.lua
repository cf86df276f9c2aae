-- rules/flags/large_deal_low_tier.lua: a deal far larger than what partners
-- of a low tier usually bring.
local rules = require "prm.rules"

local function money(v)
  local s = ("%.0f"):format(v)
  local out = s:reverse():gsub("(%d%d%d)", "%1,"):reverse()
  return (out:gsub("^,", ""))
end

rules.flag{
  name        = "LARGE_DEAL_LOW_TIER",
  description = "Open deal from a partner in `tiers` worth more than `factor` x the tier's median amount or more than `threshold` USD",
  severity    = "medium",
  params      = {
    tiers     = { "Comma-separated low partner tiers (case-insensitive)", "Silver,Registered" },
    factor    = { "Multiple of the tier's median deal amount", 5 },
    threshold = { "Amount in USD above which any low-tier deal is flagged", 250000 },
  },
  when = function(deal, ctx, p)
    local tier, amount = deal.partner_tier, deal.amount_usd or deal.amount
    if deal.status ~= "open" or not tier or not amount then return false end
    local low = false
    for t in p.tiers:gmatch("[^,]+") do
      if t:lower():match("^%s*(.-)%s*$") == tier:lower() then low = true end
    end
    if not low then return false end
    local median = ctx.tier_median_amount
    if median and median > 0 and amount > p.factor * median then
      return true, ("USD %s from a %s partner is %.1fx the tier median (%s)"):format(
        money(amount), tier, amount / median, money(median))
    end
    if amount > p.threshold then
      return true, ("USD %s from a %s partner is above %s"):format(money(amount), tier, money(p.threshold))
    end
    return false
  end,
}
