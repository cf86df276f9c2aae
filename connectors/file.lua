-- connectors/file.lua: a PRM export folder (CSV, JSON or JSON Lines).
--
-- One file per object; `files` names them (without extension) and `map`
-- turns one raw record (keyed by the export's column names) into the
-- store's canonical record. A mapping returns the record, `false` to skip
-- the row on purpose, or raises (via prm.map helpers) to reject it: the
-- ingest reports "<file>:<line>: <reason>" and carries on.
--
-- Copy this file to adapt another PRM's export: rename columns, change the
-- stage table, the date formats or the money scale.
local map = require "prm.map"

local stage = map.lookup({
  ["registered"] = "registered", ["deal registered"] = "registered", ["submitted"] = "registered",
  ["approved"] = "qualified", ["qualified"] = "qualified",
  ["solution design"] = "solution", ["discovery"] = "solution", ["demo"] = "solution",
  ["proposal sent"] = "proposal", ["proposal"] = "proposal", ["quote"] = "proposal",
  ["negotiation"] = "negotiation", ["contracting"] = "negotiation", ["commit"] = "negotiation",
  ["closed won"] = "closed_won", ["won"] = "closed_won",
  ["closed lost"] = "closed_lost", ["lost"] = "closed_lost", ["rejected"] = "closed_lost",
}, "Stage")

local status_of = { closed_won = "won", closed_lost = "lost" }

local category = map.lookup({
  ["commit"] = "commit", ["best case"] = "best_case", ["upside"] = "best_case",
  ["pipeline"] = "pipeline",
}, "Forecast Category")

local payout_kind = map.lookup({
  ["commission"] = "commission", ["mdf"] = "mdf", ["market development funds"] = "mdf",
  ["rebate"] = "rebate", ["spiff"] = "spiff",
}, "Type")

local partner_type = map.lookup({
  ["distributor"] = "distributor", ["reseller"] = "reseller", ["var"] = "reseller",
  ["referral"] = "referral", ["referral partner"] = "referral", ["msp"] = "msp",
  ["managed service provider"] = "msp",
}, "Partner Type")

-- The scale of bare numbers in the Partner Probability column: this PRM
-- writes whole percents ("40" is 40%). A value with '%' is a percent
-- whatever the scale; a PRM that writes fractions ("0.4") declares 1.
local PROBABILITY_SCALE = 100

-- Dates are read with "auto": ISO dates and instants, epoch seconds or
-- milliseconds, US month/day/year. A PRM writing day/month/year says "eu".

-- What a channel manager needs on a registration before it can be worked.
local required = { "Account Name", "Contact Name", "Contact Email", "Deal Amount", "Product",
                   "Expected Close Date", "Budget Confirmed" }

local function period(v, col)
  if v == nil then return nil end
  local y, q = tostring(v):match("^%s*F?Y?(%d%d%d%d)%s*%-?%s*Q([1-4])%s*$")
  if not y then y, q = tostring(v):match("^%s*Q([1-4])%s*%-?%s*F?Y?(%d%d%d%d)%s*$") ; y, q = q, y end
  if not y then error(("%s: not a quarter: %q"):format(col, v), 0) end
  return ("%s-Q%s"):format(y, q)
end

return {
  name = "file",
  source = "file",
  files = {
    partner = "partners", deal = "deals", deal_change = "deal_history", commit = "commits",
    quota = "quotas", transaction = "transactions", payout = "payouts", signal = "signals",
    fx = "fx_rates",
  },
  -- Columns a file must have, checked before anything of it is written.
  columns = {
    partner = { "Partner ID" },
    deal = { "Deal ID", "Partner ID", "Stage", "Created Date" },
    deal_change = { "Deal ID", "Changed At" },
    commit = { "Partner ID", "Period", "Forecast Category", "Amount", "Submitted At" },
    quota = { "Partner ID", "Period", "Quota", "Set At" },
    transaction = { "Transaction ID", "Partner ID", "Amount", "Booked Date" },
    payout = { "Payout ID", "Partner ID", "Type", "Amount (cents)", "Paid Date" },
    signal = { "Entity Type", "Entity", "Signal", "Date", "Value" },
    fx = { "Currency", "Date", "Rate to USD" },
  },
  -- What the PRM receives for each scored deal: custom fields on the deal
  -- registration (the send itself is the HTTP connector's job; payloads wait
  -- in writeback_outbox).
  writeback = function(s)
    local names, drivers = {}, {}
    for _, f in ipairs(s.flags) do names[#names + 1] = f.name end
    for i = 1, math.min(3, #s.drivers) do
      local d = s.drivers[i]
      drivers[i] = ("%s %s"):format(d.contribution > 0 and "+" or "-", d.feature)
    end
    return {
      id = s.deal,
      custom_fields = {
        ai_forecast_score = s.score,
        ai_win_probability = math.floor(s.probability * 1000 + 0.5) / 1000,
        ai_risk_flags = names,
        ai_top_drivers = drivers,
        ai_model_version = s.model,
        ai_last_scored_at = s.scored_at,
      },
    }
  end,

  map = {
    partner = function(r)
      return {
        external_id = r["Partner ID"], name = r["Partner Name"], tier = r["Tier"],
        region = r["Region"], country = r["Country"],
        type = partner_type(r["Partner Type"]), parent_id = r["Parent Partner ID"],
        currency = map.currency(r["Currency"], "Currency"), status = r["Status"],
        joined_at = map.date(r["Join Date"], "auto", "Join Date"),
        updated_at = map.instant(r["Last Modified"], "auto", "Last Modified"),
      }
    end,

    deal = function(r)
      local s = stage(r["Stage"])
      return {
        external_id = r["Deal ID"], partner_id = r["Partner ID"],
        account = r["Account Name"], contact_name = r["Contact Name"],
        contact_email = r["Contact Email"],
        amount = map.money(r["Deal Amount"], 1, "Deal Amount"), currency = map.currency(r["Currency"], "Currency"),
        product_family = r["Product"], stage = s, status = status_of[s] or "open",
        created_at = map.date(r["Created Date"], "auto", "Created Date"),
        expected_close = map.date(r["Expected Close Date"], "auto", "Expected Close Date"),
        closed_at = map.date(r["Closed Date"], "auto", "Closed Date"),
        partner_probability = map.percent(r["Partner Probability"], PROBABILITY_SCALE, "Partner Probability"),
        budget_confirmed = map.bool(r["Budget Confirmed"], "Budget Confirmed"),
        competitor = r["Competitor"], notes = r["Notes"],
        completeness = map.completeness(r, required),
        updated_at = map.instant(r["Last Modified"], "auto", "Last Modified"),
      }
    end,

    deal_change = function(r)
      local s = stage(r["Stage"])
      return {
        deal_id = r["Deal ID"],
        observed_at = map.instant(r["Changed At"], "auto", "Changed At"),
        stage = s, status = s and (status_of[s] or "open"),
        amount = map.money(r["Deal Amount"], 1, "Deal Amount"),
        expected_close = map.date(r["Expected Close Date"], "auto", "Expected Close Date"),
        partner_probability = map.percent(r["Partner Probability"], PROBABILITY_SCALE, "Partner Probability"),
      }
    end,

    commit = function(r)
      return {
        partner_id = r["Partner ID"], period = period(r["Period"], "Period"),
        category = category(r["Forecast Category"]),
        amount = map.money(r["Amount"], 1, "Amount"), currency = map.currency(r["Currency"], "Currency"),
        submitted_at = map.instant(r["Submitted At"], "auto", "Submitted At"),
      }
    end,

    quota = function(r)
      return {
        partner_id = r["Partner ID"], period = period(r["Period"], "Period"),
        amount = map.money(r["Quota"], 1, "Quota"), currency = map.currency(r["Currency"], "Currency"),
        set_at = map.instant(r["Set At"], "auto", "Set At"),
      }
    end,

    transaction = function(r)
      return {
        external_id = r["Transaction ID"], partner_id = r["Partner ID"], deal_id = r["Deal ID"],
        account = r["Account Name"], amount = map.money(r["Amount"], 1, "Amount"),
        currency = map.currency(r["Currency"], "Currency"), booked_at = map.date(r["Booked Date"], "auto", "Booked Date"),
      }
    end,

    -- This PRM sends payouts in cents.
    payout = function(r)
      return {
        external_id = r["Payout ID"], partner_id = r["Partner ID"], kind = payout_kind(r["Type"]),
        amount = map.money(r["Amount (cents)"], 0.01, "Amount (cents)"), currency = map.currency(r["Currency"], "Currency"),
        paid_at = map.date(r["Paid Date"], "auto", "Paid Date"), deal_id = r["Deal ID"],
      }
    end,

    signal = function(r)
      return {
        entity_type = r["Entity Type"], entity = r["Entity"], name = r["Signal"],
        date = map.date(r["Date"], "auto", "Date"), value = map.number(r["Value"], "Value"),
      }
    end,

    fx = function(r)
      return {
        currency = map.currency(r["Currency"], "Currency"), date = map.date(r["Date"], "auto", "Date"),
        rate = map.number(r["Rate to USD"], "Rate to USD"),
      }
    end,
  },
}
