-- connectors/partnerstack.lua: PartnerStack Vendor API v2, synced by prm.sync.
--
--   PARTNERSTACK_BASE_URL   default https://api.partnerstack.com (the connector adds /api/v2/...)
--   PARTNERSTACK_PUBLIC_KEY, PARTNERSTACK_SECRET_KEY   HTTP Basic public:secret
--
-- Confirmed from the public documentation (docs.partnerstack.com: "Partner
-- API", "Update a deal"): Basic auth with the public and secret key; list
-- envelope {data: {items, has_more}, message, status}; `limit` 1..250;
-- `starting_after` cursor by item `key`; times (fields and filters) in epoch
-- milliseconds; money in integer cents; deals' `account_name`, `amount`,
-- `close_date` (YYYY-MM-DD), `contact_first_name`/`contact_last_name`,
-- `stage`, `partner_key`, `field_data`, `fields`; PATCH /api/v2/deals/{key}
-- leaves unsent keys unchanged; partnerships sorted newest first.
--
-- The tenant's to adjust: the stage names (set per group in PartnerStack),
-- the keys inside `field_data` / `m_data` (each company defines its own deal
-- and partner fields: product, probability, budget, region, type, parent,
-- currency below are this program's), the reward trigger keys, how a
-- transaction's customer points at its partner, and the names of the
-- vendor-owned write-back fields.
local map = require "prm.map"

-- The lookups of the declared fields (keys compare as prm.map's norm:
-- case, spaces, '_' and '-' do not matter).
local STAGES = {
  ["registered"] = "registered", ["submitted"] = "registered", ["qualified"] = "qualified",
  ["approved"] = "qualified", ["solution design"] = "solution", ["demo"] = "solution",
  ["proposal sent"] = "proposal", ["proposal"] = "proposal", ["negotiation"] = "negotiation",
  ["closed won"] = "closed_won", ["won"] = "closed_won",
  ["closed lost"] = "closed_lost", ["lost"] = "closed_lost", ["rejected"] = "closed_lost",
}
local status_of = { closed_won = "won", closed_lost = "lost" }
-- A deal's status from its stage label: won, lost or open.
local STATUS = {}
for label, st in pairs(STAGES) do STATUS[label] = status_of[st] or "open" end

local PARTNER_TYPES = {
  ["distributor"] = "distributor", ["reseller"] = "reseller", ["var"] = "reseller",
  ["referral"] = "referral", ["msp"] = "msp",
}

local PARTNER_STATUS = {
  ["active"] = "Active", ["inactive"] = "Inactive", ["archived"] = "Archived",
  ["pending"] = "Pending",
}

-- Reward triggers to payout kinds. A trigger this table does not know (a
-- `distributor_margin`, a tenant's own) is passed on as it is
-- (keep_unknown): the store keeps it as kind "other" with the trigger in
-- kind_raw, never rejects it.
local REWARD_KINDS = {
  commission = "commission", mdf = "mdf", rebate = "rebate", spiff = "spiff", bonus = "spiff",
}

-- The vendor-owned deal fields (the tenant's names for them): the only
-- fields a write-back may set.
local VENDOR_FIELDS = { "ai_forecast_score", "ai_risk_flags", "ai_last_scored_at",
                        "ai_close_probability", "ai_model_version", "ai_drivers" }

local cursor = { paginator = "cursor", limit = 250, items = "data.items",
                 has_more = "data.has_more", key = "key" }

local function list(path, object, extra)
  local o = { path = path, object = object, pages = cursor,
              watermark = { field = "updated_at", format = "epoch_ms", param = "min_updated" } }
  for k, v in pairs(extra or {}) do o[k] = v end
  return o
end

return {
  name = "partnerstack",
  source = "partnerstack",
  env = {
    base_url = { "PARTNERSTACK_BASE_URL", default = "https://api.partnerstack.com" },
    public_key = { "PARTNERSTACK_PUBLIC_KEY", required = true },
    secret_key = { "PARTNERSTACK_SECRET_KEY", required = true, secret = true },
  },
  client = function(e)
    return { base_url = e.base_url, basic = { e.public_key, e.secret_key },
             headers = { Accept = "application/json" }, throttle = { 429 } }
  end,
  -- Records updated in the last 10 minutes before the previous sync's
  -- newest one are fetched again: PartnerStack's updated_at is stamped when
  -- the write starts, so a slow write can land behind the watermark.
  overlap = 600,

  -- Each list declares its fields as data (`declare`: store field = the
  -- record's path, or {path, kind [, arg]}, as an export connector's
  -- fields.<object>): pages are walked and records stored in C. `finish`
  -- (rec, raw, ctx) says what a declaration cannot; raw holds the `inputs`
  -- paths with their JSON types.
  objects = {
    list("/api/v2/partnerships", "partner", {
      declare = {
        external_id = "partner_key", name = "company.name", tier = "group.name",
        region = "m_data.region", country = "m_data.country",
        type = { "m_data.partner_type", "lookup", PARTNER_TYPES },
        parent_id = "m_data.parent_partner_key", currency = "m_data.currency",
        status = { "status", "lookup", PARTNER_STATUS },
        joined_at = { "created_at", "date", "epoch_ms" },
        updated_at = { "updated_at", "instant", "epoch_ms" },
      },
    }),
    list("/api/v2/deals", "deal", {
      -- The company's own deal fields to keep (stored with history, as of
      -- the deal's updated_at): name, type (category, number, yesno, date)
      -- and where the record has it. PartnerStack returns a deal's custom
      -- values keyed by field key in `field_data`; these keys are this
      -- program's - the tenant's to adjust.
      fields = {
        { name = "deal_type", type = "category", from = "field_data.deal_type" },
        { name = "decision_maker_identified", type = "yesno",
          from = "field_data.decision_maker_identified" },
        { name = "use_case", type = "category", from = "field_data.use_case" },
      },
      declare = {
        external_id = "key", partner_id = "partner_key", account = "account_name",
        contact_email = "field_data.contact_email",
        amount = { "amount", "money", 0.01 }, currency = "field_data.currency",
        product_family = "field_data.product", stage = { "stage", "lookup", STAGES },
        status = { "stage", "lookup", STATUS },
        contact_name = { { "contact_first_name", "contact_last_name" }, "join", " " },
        created_at = { "created_at", "date", "epoch_ms" },
        expected_close = { "close_date", "date", "iso" },
        closed_at = { "field_data.closed_date", "date", "iso" },
        partner_probability = { "field_data.partner_probability", "percent", 100 },
        budget_confirmed = { "field_data.budget_confirmed", "bool" },
        competitor = "field_data.competitor", notes = "field_data.notes",
        updated_at = { "updated_at", "instant", "epoch_ms" },
        -- What a channel manager needs on a registration (as
        -- connectors/file.lua): the contact counts when its first name is there.
        completeness = { { "account_name", "contact_first_name", "field_data.contact_email",
                           "amount", "field_data.product", "close_date",
                           "field_data.budget_confirmed" }, "completeness" },
      },
      -- An archived deal is no longer worked: it is lost, not kept open
      -- (a won one keeps its outcome). Only archived deals reach Lua.
      finish_when = "archived",
      finish = function(d)
        if d.status == "open" then d.stage, d.status = "closed_lost", "lost" end
        return d
      end,
    }),
    list("/api/v2/transactions", "transaction", {
      declare = {
        external_id = "key", partner_id = "customer.partner_key", deal_id = "metadata.deal_key",
        account = "customer.name", amount = { "amount", "money", 0.01 }, currency = "currency",
        booked_at = { "created_at", "date", "epoch_ms" },
      },
    }),
    list("/api/v2/rewards", "payout", {
      declare = {
        external_id = "key", partner_id = "partner_key",
        kind = { "trigger.key", "lookup", REWARD_KINDS, keep_unknown = true },
        kind_raw = "trigger.key", amount = { "amount", "money", 0.01 }, currency = "currency",
        deal_id = "deal_key",
      },
      inputs = { "reward_status", "paid_at", "created_at" },
      finish = function(p, raw)
        -- Every reward is kept with its status; one not paid yet (pending,
        -- approved, declined) has no paid date until a later sync sees it paid.
        local st = raw.reward_status or "paid"
        p.status = st
        if st == "paid" then
          p.paid_at = map.date(raw.paid_at or raw.created_at, "epoch_ms", "created_at")
        end
        return p
      end,
    }),
    -- Not PartnerStack's: an FX-rate feed the finance team publishes as CSV
    -- (Currency, Date, Rate to USD) at the URL in FX_RATES_URL, fetched
    -- without the PRM's credentials and mapped like an export file; skipped
    -- when the variable is unset. A tenant's custom object (commits, quotas,
    -- MDF) is declared the same way as the lists above: path, pages,
    -- watermark, map.
    { name = "fx", object = "fx", document = "csv", url = "FX_RATES_URL",
      map = function(r)
        return { currency = r["Currency"], date = map.date(r["Date"], "auto", "Date"),
                 rate = map.number(r["Rate to USD"], "Rate to USD") }
      end },
  },

  -- Write-back: only these deal fields are the vendor's; the sender never
  -- touches partner-entered ones (stage, amount, close date, probability).
  vendor_fields = VENDOR_FIELDS,
  -- The request for one deal's vendor-owned values (PartnerStack's deal
  -- fields are `fields: [{api_name, value}]`; only declared names are sent).
  writeback_request = function(deal_key, values)
    local fields = {}
    for _, name in ipairs(VENDOR_FIELDS) do
      if values[name] ~= nil then fields[#fields + 1] = { api_name = name, value = values[name] } end
    end
    return { method = "PATCH", path = "/api/v2/deals/" .. deal_key, body = { fields = fields } }
  end,
}
