-- connectors/file.lua: a PRM export folder (CSV, JSON or JSON Lines).
--
-- One file per object; `files` names them (without extension). `fields`
-- declares, per object, which export column feeds each of the store's
-- fields and how it is read (data the engine compiles once and runs in C);
-- `finish.<object>(rec, ctx)` may add what a declaration cannot say (none
-- needed here: a deal's status is its stage label looked up as a status).
-- Where that is not enough,
-- `map.<object>` is a function from one raw record (keyed by the export's
-- column names) to the store's canonical record (none needed here either).
-- A mapping returns the record, `false` to skip the row on purpose, or
-- raises (via prm.map helpers) to reject it; a bad value of a declared
-- field rejects the row the same way: the ingest reports
-- "<file>:<line>: <column>: <reason>" and carries on.
--
-- Copy this file to adapt another PRM's export: rename columns, change the
-- stage table, the date formats or the money scale.
local map = require "prm.map"

local stages = {
  ["registered"] = "registered", ["deal registered"] = "registered", ["submitted"] = "registered",
  ["approved"] = "qualified", ["qualified"] = "qualified",
  ["solution design"] = "solution", ["discovery"] = "solution", ["demo"] = "solution",
  ["proposal sent"] = "proposal", ["proposal"] = "proposal", ["quote"] = "proposal",
  ["negotiation"] = "negotiation", ["contracting"] = "negotiation", ["commit"] = "negotiation",
  ["closed won"] = "closed_won", ["won"] = "closed_won",
  ["closed lost"] = "closed_lost", ["lost"] = "closed_lost", ["rejected"] = "closed_lost",
}
local stage = map.lookup(stages, "Stage")

local status_of = { closed_won = "won", closed_lost = "lost" }
-- A deal's status follows from its stage: the same labels, read as a status.
local stage_status = {}
for label, s in pairs(stages) do stage_status[label] = status_of[s] or "open" end

local categories = {
  ["commit"] = "commit", ["best case"] = "best_case", ["upside"] = "best_case",
  ["pipeline"] = "pipeline",
}

local payout_kinds = {
  ["commission"] = "commission", ["mdf"] = "mdf", ["market development funds"] = "mdf",
  ["rebate"] = "rebate", ["spiff"] = "spiff",
}

local partner_types = {
  ["distributor"] = "distributor", ["reseller"] = "reseller", ["var"] = "reseller",
  ["referral"] = "referral", ["referral partner"] = "referral", ["msp"] = "msp",
  ["managed service provider"] = "msp",
}

-- The scale of bare numbers in the Partner Probability column: this PRM
-- writes whole percents ("40" is 40%). A value with '%' is a percent
-- whatever the scale; a PRM that writes fractions ("0.4") declares 1.
local PROBABILITY_SCALE = 100

-- Dates are read with "auto": ISO dates and instants, epoch seconds or
-- milliseconds, US month/day/year. A PRM writing day/month/year says "eu".

-- What a channel manager needs on a registration before it can be worked.
local required = { "Account Name", "Contact Name", "Contact Email", "Deal Amount", "Product",
                   "Expected Close Date", "Budget Confirmed" }

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

  -- The company's own deal columns to keep, as the HTTP connectors'
  -- `fields` (stored as attribute history x.<name>, as of the row's Last
  -- Modified, and picked up by the scoring features): name, type
  -- (category, number, yesno, date) and the export's column. None in this
  -- PRM's export; for example:
  --   tenant_fields = { deal = {
  --     { name = "deal_type", type = "category", from = "Deal Type" },
  --     { name = "seats", type = "number", from = "Seats" },
  --   } },
  -- A file with declared tenant columns is mapped by the Lua rules, not in C.

  -- Declared fields: the store's field = the export's column, or
  -- { column, kind, arg } (kinds: text money number date instant percent
  -- bool lookup currency completeness; a lookup with keep_unknown = true
  -- passes a value its table lacks as it is). Compiled once to column indexes and
  -- converted in C for CSV.
  fields = {
    partner = {
      external_id = "Partner ID", name = "Partner Name", tier = "Tier", region = "Region",
      country = "Country", type = { "Partner Type", "lookup", partner_types },
      parent_id = "Parent Partner ID", currency = { "Currency", "currency" }, status = "Status",
      joined_at = { "Join Date", "date", "auto" },
      updated_at = { "Last Modified", "instant", "auto" },
    },

    deal = {
      external_id = "Deal ID", partner_id = "Partner ID", account = "Account Name",
      contact_name = "Contact Name", contact_email = "Contact Email",
      amount = { "Deal Amount", "money", 1 }, currency = { "Currency", "currency" },
      product_family = "Product", stage = { "Stage", "lookup", stages },
      status = { "Stage", "lookup", stage_status },
      created_at = { "Created Date", "date", "auto" },
      expected_close = { "Expected Close Date", "date", "auto" },
      closed_at = { "Closed Date", "date", "auto" },
      partner_probability = { "Partner Probability", "percent", PROBABILITY_SCALE },
      budget_confirmed = { "Budget Confirmed", "bool" },
      competitor = "Competitor", notes = "Notes",
      completeness = { required, "completeness" },
      updated_at = { "Last Modified", "instant", "auto" },
    },

    deal_change = {
      deal_id = "Deal ID", observed_at = { "Changed At", "instant", "auto" },
      stage = { "Stage", "lookup", stages }, status = { "Stage", "lookup", stage_status },
      amount = { "Deal Amount", "money", 1 },
      expected_close = { "Expected Close Date", "date", "auto" },
      partner_probability = { "Partner Probability", "percent", PROBABILITY_SCALE },
    },

    commit = {
      partner_id = "Partner ID", period = { "Period", "quarter" },
      category = { "Forecast Category", "lookup", categories },
      amount = { "Amount", "money", 1 }, currency = { "Currency", "currency" },
      submitted_at = { "Submitted At", "instant", "auto" },
    },

    quota = {
      partner_id = "Partner ID", period = { "Period", "quarter" },
      amount = { "Quota", "money", 1 }, currency = { "Currency", "currency" },
      set_at = { "Set At", "instant", "auto" },
    },

    transaction = {
      external_id = "Transaction ID", partner_id = "Partner ID", deal_id = "Deal ID",
      account = "Account Name", amount = { "Amount", "money", 1 },
      currency = { "Currency", "currency" }, booked_at = { "Booked Date", "date", "auto" },
    },

    -- This PRM sends payouts in cents. A Type the table does not know (a
    -- "Distributor Margin", the tenant's own) is passed on as it is: the
    -- store keeps it as kind "other" with the Type in kind_raw, as the HTTP
    -- connectors do with a reward trigger, never rejects it.
    payout = {
      external_id = "Payout ID", partner_id = "Partner ID",
      kind = { "Type", "lookup", payout_kinds, keep_unknown = true },
      amount = { "Amount (cents)", "money", 0.01 },
      currency = { "Currency", "currency" }, paid_at = { "Paid Date", "date", "auto" },
      deal_id = "Deal ID",
    },

    signal = {
      entity_type = "Entity Type", entity = "Entity", name = "Signal",
      date = { "Date", "date", "auto" }, value = { "Value", "number" },
    },

    fx = {
      currency = { "Currency", "currency" }, date = { "Date", "date", "auto" },
      rate = { "Rate to USD", "number" },
    },
  },
}
