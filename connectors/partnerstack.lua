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

local stage = map.lookup({
  ["registered"] = "registered", ["submitted"] = "registered", ["qualified"] = "qualified",
  ["approved"] = "qualified", ["solution design"] = "solution", ["demo"] = "solution",
  ["proposal sent"] = "proposal", ["proposal"] = "proposal", ["negotiation"] = "negotiation",
  ["closed won"] = "closed_won", ["won"] = "closed_won",
  ["closed lost"] = "closed_lost", ["lost"] = "closed_lost", ["rejected"] = "closed_lost",
}, "stage")
local status_of = { closed_won = "won", closed_lost = "lost" }

local partner_type = map.lookup({
  ["distributor"] = "distributor", ["reseller"] = "reseller", ["var"] = "reseller",
  ["referral"] = "referral", ["msp"] = "msp",
}, "m_data.partner_type")

local partner_status = map.lookup({
  ["active"] = "Active", ["inactive"] = "Inactive", ["archived"] = "Archived",
  ["pending"] = "Pending",
}, "status")

-- Reward triggers to payout kinds. A trigger this table does not know (a
-- `distributor_margin`, a tenant's own) is passed on as it is: the store
-- keeps it as kind "other" with the trigger in kind_raw, never rejects it.
local REWARD_KINDS = {
  commission = "commission", mdf = "mdf", rebate = "rebate", spiff = "spiff", bonus = "spiff",
}
local function reward_kind(key)
  if key == nil then return nil end
  return REWARD_KINDS[tostring(key):lower()] or key
end

local function bool(v, col)
  if v == nil then return nil end
  if type(v) == "boolean" then return v and 1 or 0 end
  return map.bool(v, col)
end

-- What a channel manager needs on a registration (as connectors/file.lua).
local function completeness(d)
  local need = { d.account, d.contact_name, d.contact_email, d.amount, d.product_family,
                 d.expected_close, d.budget_confirmed }
  local have = 0
  for i = 1, 7 do
    if need[i] ~= nil then have = have + 1 end
  end
  return have / 7
end

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

  objects = {
    list("/api/v2/partnerships", "partner", {
      map = function(r)
        local m = r.m_data or {}
        return {
          external_id = r.partner_key, name = r.company and r.company.name,
          tier = r.group and r.group.name, region = m.region, country = m.country,
          type = partner_type(m.partner_type), parent_id = m.parent_partner_key,
          currency = m.currency, status = partner_status(r.status),
          joined_at = map.date(r.created_at, "epoch_ms", "created_at"),
          updated_at = map.instant(r.updated_at, "epoch_ms", "updated_at"),
        }
      end,
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
      map = function(r)
        local f = r.field_data or {}
        local s = stage(r.stage)
        -- An archived deal is no longer worked: it is lost, not kept open.
        if r.archived == true and not status_of[s] then s = "closed_lost" end
        local name = r.contact_first_name
        if name and r.contact_last_name then name = name .. " " .. r.contact_last_name end
        local d = {
          external_id = r.key, partner_id = r.partner_key, account = r.account_name,
          contact_name = name, contact_email = f.contact_email,
          amount = map.money(r.amount, 0.01, "amount"), currency = f.currency,
          product_family = f.product, stage = s, status = status_of[s] or "open",
          created_at = map.date(r.created_at, "epoch_ms", "created_at"),
          expected_close = map.date(r.close_date, "iso", "close_date"),
          closed_at = map.date(f.closed_date, "iso", "field_data.closed_date"),
          partner_probability = map.percent(f.partner_probability, 100, "field_data.partner_probability"),
          budget_confirmed = bool(f.budget_confirmed, "field_data.budget_confirmed"),
          competitor = f.competitor, notes = f.notes,
          updated_at = map.instant(r.updated_at, "epoch_ms", "updated_at"),
        }
        d.completeness = completeness(d)
        return d
      end,
    }),
    list("/api/v2/transactions", "transaction", {
      map = function(r)
        local c = r.customer or {}
        return {
          external_id = r.key, partner_id = c.partner_key,
          deal_id = r.metadata and r.metadata.deal_key, account = c.name,
          amount = map.money(r.amount, 0.01, "amount"), currency = r.currency,
          booked_at = map.date(r.created_at, "epoch_ms", "created_at"),
        }
      end,
    }),
    list("/api/v2/rewards", "payout", {
      map = function(r)
        -- Every reward is kept with its status; one not paid yet (pending,
        -- approved, declined) has no paid date until a later sync sees it paid.
        local st = r.reward_status or "paid"
        local key = r.trigger and r.trigger.key
        return {
          external_id = r.key, partner_id = r.partner_key,
          kind = reward_kind(key), kind_raw = key,
          amount = map.money(r.amount, 0.01, "amount"), currency = r.currency,
          paid_at = st == "paid" and map.date(r.paid_at or r.created_at, "epoch_ms", "created_at")
                    or nil,
          status = st, deal_id = r.deal_key,
        }
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
