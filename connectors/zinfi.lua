-- connectors/zinfi.lua: ZINFI Unified Partner Management, from its exports.
--
-- ZINFI publishes no public REST API. Two routes:
--   1. Exports (this connector): the partner and deal-registration reports
--      exported from the ZINFI portal (Reports -> Export; save XLSX as CSV,
--      UTF-8), one folder per run:
--        prmcast ingest EXPORT_DIR --connector connectors/zinfi.lua
--   2. Salesforce: ZINFI tenants that run its Salesforce-native package keep
--      partner accounts and deal registrations in the org (Accounts with
--      IsPartner, Opportunities with PartnerAccountId): sync them with
--      connectors/salesforce.lua (SALESFORCE_INSTANCE_URL,
--      SALESFORCE_ACCESS_TOKEN), mapping the package's __c fields there.
--
-- The column names below are this program's report layout; ZINFI reports
-- are configurable, so the tenant adjusts the names on the left of each
-- mapping (and the stage names) to their report. Money is in the deal's
-- currency, dates in the portal's US format (MM/DD/YYYY), ISO also accepted.
local map = require "prm.map"

local stage = map.lookup({
  ["new"] = "registered", ["submitted"] = "registered", ["registered"] = "registered",
  ["approved"] = "qualified", ["qualified"] = "qualified", ["in progress"] = "solution",
  ["solution design"] = "solution", ["proposal sent"] = "proposal", ["quoted"] = "proposal",
  ["negotiation"] = "negotiation", ["closed won"] = "closed_won", ["won"] = "closed_won",
  ["closed lost"] = "closed_lost", ["lost"] = "closed_lost", ["rejected"] = "closed_lost",
  ["expired"] = "closed_lost",
}, "Deal Status")
local status_of = { closed_won = "won", closed_lost = "lost" }

local partner_type = map.lookup({
  ["distributor"] = "distributor", ["reseller"] = "reseller", ["var"] = "reseller",
  ["referral"] = "referral", ["msp"] = "msp", ["managed service provider"] = "msp",
}, "Partner Type")

local required = { "End Customer Company", "Customer Contact Name", "Customer Contact Email",
                   "Deal Value", "Product Line", "Expected Close Date", "Budget Approved" }

return {
  name = "zinfi",
  source = "zinfi",
  files = { partner = "zinfi_partners", deal = "zinfi_deal_registrations" },
  columns = {
    partner = { "Partner Company ID", "Partner Company Name" },
    deal = { "Deal Registration ID", "Partner Company ID", "Deal Status", "Registered On" },
  },
  map = {
    partner = function(r)
      return {
        external_id = r["Partner Company ID"], name = r["Partner Company Name"],
        tier = r["Partner Level"], region = r["Region"], country = r["Country"],
        type = partner_type(r["Partner Type"]), parent_id = r["Parent Partner ID"],
        currency = r["Currency"], status = r["Partner Status"],
        joined_at = map.date(r["Onboarded On"], "auto", "Onboarded On"),
        updated_at = map.instant(r["Last Updated On"], "auto", "Last Updated On"),
      }
    end,
    deal = function(r)
      local s = stage(r["Deal Status"])
      return {
        external_id = r["Deal Registration ID"], partner_id = r["Partner Company ID"],
        account = r["End Customer Company"], contact_name = r["Customer Contact Name"],
        contact_email = r["Customer Contact Email"],
        amount = map.money(r["Deal Value"], 1, "Deal Value"), currency = r["Currency"],
        product_family = r["Product Line"], stage = s, status = status_of[s] or "open",
        created_at = map.date(r["Registered On"], "auto", "Registered On"),
        expected_close = map.date(r["Expected Close Date"], "auto", "Expected Close Date"),
        closed_at = map.date(r["Closed On"], "auto", "Closed On"),
        partner_probability = map.percent(r["Win Probability (%)"], 100, "Win Probability (%)"),
        budget_confirmed = map.bool(r["Budget Approved"], "Budget Approved"),
        competitor = r["Competitor"], notes = r["Comments"],
        completeness = map.completeness(r, required),
        updated_at = map.instant(r["Last Updated On"], "auto", "Last Updated On"),
      }
    end,
  },
}
