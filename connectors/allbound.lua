-- connectors/allbound.lua: Allbound through its Open API, synced by prm.sync.
--
--   ALLBOUND_BASE_URL   e.g. https://<instance>.allbound.com (the connector adds /api/v1/...)
--   ALLBOUND_API_KEY    sent as X-API-KEY
--   ALLBOUND_INSTANCE   sent as X-API-INSTANCE
--
-- From issue 10's description (Allbound documents its Open API to
-- customers only; confirm against the tenant's): the X-API-KEY and
-- X-API-INSTANCE headers, the {status, result} envelope, writes as
-- {"input": [...]}, and 406 as the throttle status (the throttle rule
-- below).
--
-- Allbound's public API collection (developers.allbound.com) confirms the
-- 406 throttle, at 20 requests a minute. Deletes: no list of deleted or
-- archived deals is published, and listing every live id each night (as
-- impartner.lua does) costs one request per page of 200 at 20 a minute, with
-- no GET by id to confirm an unlisted one; so a deal deleted in Allbound is
-- not seen here (it stays as last synced). A tenant whose deal status has an
-- archived value can map it to closed_lost in `stage` below.
--
-- The tenant's to adjust: the endpoint paths (/api/v1/partners,
-- /api/v1/deals), the page parameters (`page` from 1 and `limit`), the
-- `updated_since` filter, the field names, the stage names, and the names
-- of the vendor-owned AI fields. This program's export sends amounts and
-- probabilities as text and dates in US format, which the mapping parses.
local map = require "prm.map"

local stage = map.lookup({
  ["registered"] = "registered", ["submitted"] = "registered", ["approved"] = "qualified",
  ["qualified"] = "qualified", ["solution design"] = "solution", ["proposal sent"] = "proposal",
  ["proposal"] = "proposal", ["negotiation"] = "negotiation", ["closed won"] = "closed_won",
  ["won"] = "closed_won", ["closed lost"] = "closed_lost", ["lost"] = "closed_lost",
  ["declined"] = "closed_lost",
}, "stage")
local status_of = { closed_won = "won", closed_lost = "lost" }

local partner_type = map.lookup({
  ["distributor"] = "distributor", ["reseller"] = "reseller", ["var"] = "reseller",
  ["referral"] = "referral", ["msp"] = "msp",
}, "partner_type")

local function completeness(d)
  local need = { d.account, d.contact_name, d.contact_email, d.amount, d.product_family,
                 d.expected_close, d.budget_confirmed }
  local have = 0
  for i = 1, 7 do
    if need[i] ~= nil then have = have + 1 end
  end
  return have / 7
end

-- The vendor-owned deal fields (their Allbound names are the same here).
local VENDOR_FIELDS = { "ai_forecast_score", "ai_risk_flags", "ai_last_scored_at",
                        "ai_close_probability", "ai_model_version", "ai_drivers" }

local pages = { paginator = "page", limit = 200, limit_param = "limit", page_param = "page",
                items = "result" }
local watermark = { field = "updated_at", format = "iso_z", param = "updated_since" }

return {
  name = "allbound",
  source = "allbound",
  env = {
    base_url = { "ALLBOUND_BASE_URL", required = true },
    api_key = { "ALLBOUND_API_KEY", required = true, secret = true },
    instance = { "ALLBOUND_INSTANCE", required = true },
  },
  client = function(e)
    return { base_url = e.base_url, throttle = { 406 },
             headers = { ["X-API-KEY"] = e.api_key, ["X-API-INSTANCE"] = e.instance,
                         Accept = "application/json" } }
  end,
  overlap = 300,

  objects = {
    { name = "partner", object = "partner", path = "/api/v1/partners", pages = pages,
      watermark = watermark,
      map = function(r)
        return {
          external_id = r.id, name = r.company_name, tier = r.tier, region = r.region,
          country = r.country, type = partner_type(r.partner_type), parent_id = r.parent_id,
          currency = r.currency, status = r.status,
          joined_at = map.date(r.joined_on, "auto", "joined_on"),
          updated_at = map.instant(r.updated_at, "auto", "updated_at"),
        }
      end },
    { name = "deal", object = "deal", path = "/api/v1/deals", pages = pages,
      watermark = watermark,
      map = function(r)
        local s = stage(r.stage)
        local d = {
          external_id = r.id, partner_id = r.partner_id, account = r.customer_company,
          contact_name = r.contact_name, contact_email = r.contact_email,
          amount = map.money(r.amount, 1, "amount"), currency = r.currency,
          product_family = r.product, stage = s, status = status_of[s] or "open",
          created_at = map.date(r.created_on, "iso", "created_on"),
          expected_close = map.date(r.expected_close, "us", "expected_close"),
          closed_at = map.date(r.closed_on, "iso", "closed_on"),
          partner_probability = map.percent(r.partner_probability, 100, "partner_probability"),
          budget_confirmed = map.bool(r.budget_confirmed, "budget_confirmed"),
          competitor = r.competitor, notes = r.notes,
          updated_at = map.instant(r.updated_at, "auto", "updated_at"),
        }
        d.completeness = completeness(d)
        return d
      end },
  },

  vendor_fields = VENDOR_FIELDS,
  -- One request can carry many deals: {"input": [{id, <field> = value}, ...]}.
  writeback_request = function(id, values)
    local item = { id = id }
    for _, name in ipairs(VENDOR_FIELDS) do item[name] = values[name] end
    return { method = "POST", path = "/api/v1/deals/update", body = { input = { item } } }
  end,
}
