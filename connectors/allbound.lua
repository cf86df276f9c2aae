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
-- Allbound's public API collection (developers.allbound.com, "Allbound
-- Public API 1.0.0", published 2024-07-01) confirms API-key auth created
-- under Advanced Settings > Open API Authentication and the 406 throttle
-- at 20 requests a minute. Deletes (looked up again 2026-12-02 in the
-- stored copy of that collection and in public pages): no endpoint lists
-- deleted or archived deals, no record carries a deleted flag, and no GET
-- of one deal by id is documented, so nothing tells a sync that a deal
-- went. What is faithful: `--full` reconciles (deletes.full_only below):
-- every live deal id is listed, twice (page/limit paging shifts when a deal
-- goes mid-listing, and there is no GET to confirm an unlisted id), and an
-- open deal absent from both listings is closed as lost as of the run (a
-- won or lost one keeps its outcome). Not every night: at 20 requests a
-- minute two listings of 100k deals take ~50 minutes. An incremental sync
-- leaves a deleted deal as last synced until the next --full run. A tenant
-- whose deal status has an archived value can map it to closed_lost in
-- `stage` below.
--
-- The tenant's to adjust: the endpoint paths (/api/v1/partners,
-- /api/v1/deals), the page parameters (`page` from 1 and `limit`), the
-- `updated_since` filter, the field names, the stage names, and the names
-- of the vendor-owned AI fields. This program's export sends amounts and
-- probabilities as text and dates in US format, which the mapping parses.
local STAGES = {
  ["registered"] = "registered", ["submitted"] = "registered", ["approved"] = "qualified",
  ["qualified"] = "qualified", ["solution design"] = "solution", ["proposal sent"] = "proposal",
  ["proposal"] = "proposal", ["negotiation"] = "negotiation", ["closed won"] = "closed_won",
  ["won"] = "closed_won", ["closed lost"] = "closed_lost", ["lost"] = "closed_lost",
  ["declined"] = "closed_lost",
}
-- A deal's status from its stage label: won, lost or open.
local STATUS = {}
for label, st in pairs(STAGES) do
  STATUS[label] = st == "closed_won" and "won" or st == "closed_lost" and "lost" or "open"
end

local PARTNER_TYPES = {
  ["distributor"] = "distributor", ["reseller"] = "reseller", ["var"] = "reseller",
  ["referral"] = "referral", ["msp"] = "msp",
}

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
      -- Fields declared as data (walked and stored in C, see docs/SCRIPTING.md).
      declare = {
        external_id = "id", name = "company_name", tier = "tier", region = "region",
        country = "country", type = { "partner_type", "lookup", PARTNER_TYPES },
        parent_id = "parent_id", currency = "currency", status = "status",
        joined_at = { "joined_on", "date", "auto" },
        updated_at = { "updated_at", "instant", "auto" },
      } },
    { name = "deal", object = "deal", path = "/api/v1/deals", pages = pages,
      watermark = watermark,
      declare = {
        external_id = "id", partner_id = "partner_id", account = "customer_company",
        contact_name = "contact_name", contact_email = "contact_email",
        amount = { "amount", "money", 1 }, currency = "currency", product_family = "product",
        stage = { "stage", "lookup", STAGES }, status = { "stage", "lookup", STATUS },
        created_at = { "created_on", "date", "iso" },
        expected_close = { "expected_close", "date", "us" },
        closed_at = { "closed_on", "date", "iso" },
        partner_probability = { "partner_probability", "percent", 100 },
        budget_confirmed = { "budget_confirmed", "bool" },
        competitor = "competitor", notes = "notes",
        updated_at = { "updated_at", "instant", "auto" },
        -- What a channel manager needs on a registration (as connectors/file.lua).
        completeness = { { "customer_company", "contact_name", "contact_email", "amount",
                           "product", "expected_close", "budget_confirmed" }, "completeness" },
      },
      -- No delete signal: a --full sync lists the live ids (twice, no
      -- confirm request exists) and closes the open deals missing from both.
      deletes = { absent = true, full_only = true, path = "/api/v1/deals", id = "id",
                  pages = pages } },
  },

  vendor_fields = VENDOR_FIELDS,
  -- One request can carry many deals: {"input": [{id, <field> = value}, ...]}.
  writeback_request = function(id, values)
    local item = { id = id }
    for _, name in ipairs(VENDOR_FIELDS) do item[name] = values[name] end
    return { method = "POST", path = "/api/v1/deals/update", body = { input = { item } } }
  end,
}
