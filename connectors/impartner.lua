-- connectors/impartner.lua: Impartner PRM through its Objects API, synced by
-- prm.sync.
--
--   IMPARTNER_BASE_URL    e.g. https://prod.impartner.live (the connector adds /api/objects/v1/...)
--   IMPARTNER_API_KEY     sent as "Authorization: prm-key <key>"
--   IMPARTNER_TENANT_ID   sent as X-PRM-TenantId
--
-- From issue 10's description of the Objects API (Impartner's reference is
-- behind its partner login; confirm against the tenant's): GET
-- /api/objects/v1/{Object} with fields / filter / orderby / skip / take;
-- the answer {data: {count, entity, results}, success}; PascalCase field
-- names in requests, first letter lower-cased in responses; custom fields
-- end in __cf; the filter is SQL-like, `Updated > '2026-01-01T00:00:00'`
-- (ISO without a zone); PATCH /api/objects/v1/{Object}/{id}.
--
-- The tenant's to adjust: the object names (Account, Opportunity), every
-- __cf field (partner type, join date, product, partner probability,
-- budget, competitor, closed date, the AI write-back fields), the tier
-- field, the stage names, and `take` (100 here).
--
-- Deletes: the Objects API deletes outright (DELETE .../{Object}/{id}; a
-- public client, Syncari's, reads a deleted record's GET .../{id} as 404
-- "Record not found") and publishes neither a list of deleted records nor
-- an archived flag, so the deal object's `deletes` lists every live
-- Opportunity id (fields=Id, take 500) after each sync: an open deal no
-- longer listed, and whose GET answers 404, is closed as lost on the day
-- the sync saw it gone. A tenant that archives through a custom field
-- (or a stage such as Rejected, mapped to lost above) can map it instead.
--
-- Offset paging over a filter on Updated, ordered by Id: a record updated
-- while the sync pages can only join the set, which shifts later records
-- by one and repeats one of them (harmless: upserts are idempotent); none
-- is skipped.
local map = require "prm.map"

local STAGES = {
  ["registered"] = "registered", ["submitted"] = "registered", ["pending approval"] = "registered",
  ["approved"] = "qualified", ["qualified"] = "qualified", ["solution design"] = "solution",
  ["proposal sent"] = "proposal", ["proposal"] = "proposal", ["negotiation"] = "negotiation",
  ["closed won"] = "closed_won", ["won"] = "closed_won", ["closed lost"] = "closed_lost",
  ["lost"] = "closed_lost", ["rejected"] = "closed_lost", ["expired"] = "closed_lost",
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

-- The vendor-owned Opportunity fields: canonical name -> the tenant's __cf.
local VENDOR_FIELDS = {
  ai_forecast_score = "AiForecastScore__cf", ai_risk_flags = "AiRiskFlags__cf",
  ai_last_scored_at = "AiLastScoredAt__cf", ai_close_probability = "AiCloseProbability__cf",
  ai_model_version = "AiModelVersion__cf", ai_drivers = "AiDrivers__cf",
}

local ACCOUNT = { "Id", "Name", "PartnerTier", "Region", "Country", "PartnerType__cf",
                  "ParentAccountId", "Currency", "Status", "JoinDate__cf", "Created", "Updated" }
local OPPORTUNITY = { "Id", "AccountId", "CustomerName", "ContactName", "ContactEmail", "Amount",
                      "Currency", "ProductFamily__cf", "Stage", "CloseDate", "ClosedDate__cf",
                      "PartnerProbability__cf", "BudgetConfirmed__cf", "Competitor__cf", "Notes",
                      "Created", "Updated" }

-- The tenant's own deal fields to keep (stored with history, as of
-- Updated): requested by their API name (PascalCase, ending __cf), read
-- from the response's first-letter-lowercased key. The names are the
-- tenant's to adjust.
local DEAL_FIELDS = {
  { name = "deal_type", type = "category", from = "dealType__cf" },
  { name = "decision_maker_identified", type = "yesno", from = "decisionMakerIdentified__cf" },
  { name = "use_case", type = "category", from = "useCase__cf" },
}
for _, f in ipairs(DEAL_FIELDS) do
  OPPORTUNITY[#OPPORTUNITY + 1] = f.from:sub(1, 1):upper() .. f.from:sub(2)
end

local function request(fields)
  return function(since)
    return { query = { fields = table.concat(fields, ","), orderby = "Id",
                       filter = since and ("Updated > '%s'"):format(since) or nil } }
  end
end

local pages = { paginator = "offset", limit = 100, limit_param = "take", offset_param = "skip",
                items = "data.results", total = "data.count" }
local watermark = { field = "updated", format = "iso" }

return {
  name = "impartner",
  source = "impartner",
  env = {
    base_url = { "IMPARTNER_BASE_URL", required = true },
    api_key = { "IMPARTNER_API_KEY", required = true, secret = true },
    tenant = { "IMPARTNER_TENANT_ID", required = true },
  },
  client = function(e)
    return { base_url = e.base_url, throttle = { 429 },
             headers = { Authorization = "prm-key " .. e.api_key, ["X-PRM-TenantId"] = e.tenant,
                         Accept = "application/json" } }
  end,
  overlap = 300,

  objects = {
    { name = "partner", object = "partner", path = "/api/objects/v1/Account",
      request = request(ACCOUNT), pages = pages, watermark = watermark,
      -- Fields declared as data (walked and stored in C, see docs/SCRIPTING.md).
      declare = {
        external_id = "id", name = "name", tier = "partnerTier", region = "region",
        country = "country", type = { "partnerType__cf", "lookup", PARTNER_TYPES },
        parent_id = "parentAccountId", currency = "currency", status = "status",
        updated_at = { "updated", "instant", "auto" },
      },
      -- The join date, else the record's creation (a few hundred partners:
      -- Lua for each is cheap).
      inputs = { "joinDate__cf", "created" },
      finish = function(p, raw)
        p.joined_at = map.date(raw.joinDate__cf or raw.created, "auto", "joinDate__cf")
        return p
      end },
    { name = "deal", object = "deal", path = "/api/objects/v1/Opportunity",
      request = request(OPPORTUNITY), pages = pages, watermark = watermark, fields = DEAL_FIELDS,
      deletes = { absent = true, path = "/api/objects/v1/Opportunity",
                  query = { fields = "Id", orderby = "Id" }, id = "id",
                  pages = { paginator = "offset", limit = 500, limit_param = "take",
                            offset_param = "skip", items = "data.results", total = "data.count" },
                  confirm = function(id) return { path = "/api/objects/v1/Opportunity/" .. id } end },
      declare = {
        external_id = "id", partner_id = "accountId", account = "customerName",
        contact_name = "contactName", contact_email = "contactEmail",
        amount = { "amount", "money", 1 }, currency = "currency",
        product_family = "productFamily__cf", stage = { "stage", "lookup", STAGES },
        status = { "stage", "lookup", STATUS },
        created_at = { "created", "date", "auto" },
        expected_close = { "closeDate", "date", "iso" },
        closed_at = { "closedDate__cf", "date", "iso" },
        partner_probability = { "partnerProbability__cf", "percent", 100 },
        budget_confirmed = { "budgetConfirmed__cf", "bool" },
        competitor = "competitor__cf", notes = "notes",
        updated_at = { "updated", "instant", "auto" },
        -- What a channel manager needs on a registration (as connectors/file.lua).
        completeness = { { "customerName", "contactName", "contactEmail", "amount",
                           "productFamily__cf", "closeDate", "budgetConfirmed__cf" },
                         "completeness" },
      } },
  },

  vendor_fields = VENDOR_FIELDS,
  writeback_request = function(id, values)
    local body = {}
    for name, api in pairs(VENDOR_FIELDS) do
      if values[name] ~= nil then body[api] = values[name] end
    end
    return { method = "PATCH", path = "/api/objects/v1/Opportunity/" .. id, body = body }
  end,
}
