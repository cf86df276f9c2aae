-- connectors/salesforce.lua: Salesforce PRM (Experience Cloud partner
-- portals): partner accounts and deal registrations as Opportunities with
-- PartnerAccountId, synced by prm.sync over the REST API.
--
--   SALESFORCE_INSTANCE_URL (or SALESFORCE_BASE_URL)  https://<domain>.my.salesforce.com
--   SALESFORCE_ACCESS_TOKEN   an OAuth access token (the connector does not run the OAuth flow)
--   SALESFORCE_API_VERSION    default 59.0
--   SALESFORCE_BATCH_SIZE     records per query batch, 200..2000 (default 2000)
--
-- Confirmed from the public REST API reference: Bearer auth; GET
-- /services/data/vNN.N/query?q=<SOQL> answering {totalSize, done, records,
-- nextRecordsUrl}, the rest of a result at nextRecordsUrl until done; the
-- Sforce-Query-Options: batchSize header; SOQL datetime literals unquoted
-- (SystemModstamp > 2026-01-01T00:00:00Z); Sforce-Limit-Info on responses
-- (logged per page); 403 REQUEST_LIMIT_EXCEEDED when the org's API limit is
-- spent (the throttle rule); PATCH /sobjects/Opportunity/{Id} -> 204;
-- standard fields Opportunity.PartnerAccountId, StageName, Amount,
-- CloseDate, ForecastCategoryName, IsClosed, IsWon, CurrencyIsoCode (with
-- multi-currency), Description, Account.IsPartner.
--
-- Also confirmed: GET /services/data/vNN.N/queryAll?q=<SOQL> returns
-- soft-deleted records too (IsDeleted = true; a delete moves
-- SystemModstamp), its further batches at a nextRecordsUrl under /query/;
-- OpportunityFieldHistory (OpportunityId, Field, OldValue, NewValue,
-- CreatedDate) holds one row per change of a tracked Opportunity field.
--
-- Deletes: Opportunities are read through queryAll, so one deleted since
-- the last sync arrives with IsDeleted = true; an open one is stored as
-- closed_lost (closed the day it was deleted), never kept open; a won or
-- lost one keeps its outcome. A record purged from the Recycle Bin (after
-- 15 days, or emptied) before a sync saw it deleted is gone from queryAll
-- too: the sObject Get Deleted resource (confirmed from the REST API
-- reference: GET sobjects/Opportunity/deleted/?start=&end=, ISO 8601
-- datetimes with an offset, seconds ignored, answering {deletedRecords:
-- [{id, deletedDate}], earliestDateAvailable, latestDateCovered}, at most
-- 15 days back) lists those ids, and prm.sync closes them the same way
-- (the deal object's `deletes`). Each run asks from where the last one's
-- list was covered; a sync paused longer than the delete log keeps is
-- warned about (earliestDateAvailable after the start).
--
-- History: deal_history rows come from OpportunityFieldHistory (StageName,
-- Amount, CloseDate), each stamped with the change's own CreatedDate, as
-- partial changes (`changed` names the field; the store carries the other
-- fields from the deal's state at that instant). Field history tracking
-- must be on for those fields in the org (Setup > Object Manager >
-- Opportunity > Fields & Relationships > Set History Tracking).
--
-- The tenant's to adjust: every field ending __c (tier, region, partner
-- type and status on Account; contact, product, partner probability,
-- budget, competitor and closed date on Opportunity; the AI write-back
-- fields) and the stage names.
local map = require "prm.map"

local stage = map.lookup({
  ["prospecting"] = "registered", ["registered"] = "registered",
  ["qualification"] = "qualified", ["qualified"] = "qualified",
  ["needs analysis"] = "solution", ["value proposition"] = "solution",
  ["id. decision makers"] = "solution", ["solution design"] = "solution",
  ["perception analysis"] = "proposal", ["proposal/price quote"] = "proposal",
  ["proposal sent"] = "proposal", ["negotiation/review"] = "negotiation",
  ["negotiation"] = "negotiation", ["closed won"] = "closed_won", ["closed lost"] = "closed_lost",
}, "StageName")

local partner_type = map.lookup({
  ["distributor"] = "distributor", ["reseller"] = "reseller", ["var"] = "reseller",
  ["referral"] = "referral", ["msp"] = "msp",
}, "Partner_Type__c")

local function bool(v, col)
  if v == nil then return nil end
  if type(v) == "boolean" then return v and 1 or 0 end
  return map.bool(v, col)
end

local function completeness(d)
  local need = { d.account, d.contact_name, d.contact_email, d.amount, d.product_family,
                 d.expected_close, d.budget_confirmed }
  local have = 0
  for i = 1, 7 do
    if need[i] ~= nil then have = have + 1 end
  end
  return have / 7
end

-- The vendor-owned Opportunity fields, canonical name -> the tenant's API name.
local VENDOR_FIELDS = {
  ai_forecast_score = "AI_Forecast_Score__c", ai_risk_flags = "AI_Risk_Flags__c",
  ai_last_scored_at = "AI_Last_Scored_At__c", ai_close_probability = "AI_Close_Probability__c",
  ai_model_version = "AI_Model_Version__c", ai_drivers = "AI_Drivers__c",
}

local ACCOUNT = { "Id", "Name", "Partner_Tier__c", "Region__c", "BillingCountry",
                  "Partner_Type__c", "ParentId", "CurrencyIsoCode", "Partner_Status__c",
                  "Partner_Since__c", "CreatedDate", "LastModifiedDate", "SystemModstamp" }
local OPPORTUNITY = { "Id", "PartnerAccountId", "Account.Name", "Contact_Name__c",
                      "Contact_Email__c", "Amount", "CurrencyIsoCode", "Product_Family__c",
                      "StageName", "IsClosed", "IsWon", "ForecastCategoryName", "CloseDate",
                      "Closed_Date__c", "Partner_Probability__c", "Budget_Confirmed__c",
                      "Competitor__c", "Description", "CreatedDate", "LastModifiedDate",
                      "SystemModstamp", "IsDeleted" }
-- The tenant's own Opportunity fields to keep (stored with history, as of
-- LastModifiedDate): Type is standard; the __c names are the tenant's.
local DEAL_FIELDS = {
  { name = "deal_type", type = "category", from = "Type" },
  { name = "decision_maker_identified", type = "yesno", from = "Decision_Maker_Identified__c" },
  { name = "use_case", type = "category", from = "Use_Case__c" },
}
for _, f in ipairs(DEAL_FIELDS) do OPPORTUNITY[#OPPORTUNITY + 1] = f.from end
local FIELD_HISTORY = { "Id", "OpportunityId", "Field", "OldValue", "NewValue", "CreatedDate" }

-- An incremental SOQL query: ordered by its watermark field (SystemModstamp,
-- or CreatedDate for history rows, which never change) so a batch boundary
-- never skips a record.
local function soql(fields, object, where, stamp)
  stamp = stamp or "SystemModstamp"
  return function(since)
    local w = {}
    if where then w[#w + 1] = where end
    if since then w[#w + 1] = stamp .. " > " .. since end
    return { query = { q = ("SELECT %s FROM %s%s ORDER BY " .. stamp .. ", Id"):format(
      table.concat(fields, ", "), object, #w > 0 and (" WHERE " .. table.concat(w, " AND ")) or "") } }
  end
end

local pages = { paginator = "next_url", items = "records", done = "done", next = "nextRecordsUrl" }
local watermark = { field = "SystemModstamp", format = "soql" }

local version = "59.0"

return {
  name = "salesforce",
  source = "salesforce",
  env = {
    base_url = { "SALESFORCE_INSTANCE_URL", "SALESFORCE_BASE_URL", required = true },
    token = { "SALESFORCE_ACCESS_TOKEN", required = true, secret = true },
    version = { "SALESFORCE_API_VERSION", default = version },
    batch_size = { "SALESFORCE_BATCH_SIZE", default = "2000" },
  },
  client = function(e)
    version = e.version
    return { base_url = e.base_url, headers = { Authorization = "Bearer " .. e.token,
             Accept = "application/json",
             ["Sforce-Query-Options"] = "batchSize=" .. e.batch_size },
             throttle = { { status = 403, body = "REQUEST_LIMIT_EXCEEDED" } } }
  end,
  log_headers = { "sforce-limit-info" },
  overlap = 300,

  objects = {
    { name = "partner", object = "partner", path = "/services/data/v59.0/query",
      request = function(since)
        local r = soql(ACCOUNT, "Account", "IsPartner = true")(since)
        r.path = "/services/data/v" .. version .. "/query"
        return r
      end,
      pages = pages, watermark = watermark,
      map = function(r)
        return {
          external_id = r.Id, name = r.Name, tier = r.Partner_Tier__c, region = r.Region__c,
          country = r.BillingCountry, type = partner_type(r.Partner_Type__c),
          parent_id = r.ParentId, currency = r.CurrencyIsoCode, status = r.Partner_Status__c,
          joined_at = map.date(r.Partner_Since__c or r.CreatedDate, "auto", "Partner_Since__c"),
          updated_at = map.instant(r.LastModifiedDate, "auto", "LastModifiedDate"),
        }
      end },
    { name = "deal", object = "deal", path = "/services/data/v59.0/query",
      request = function(since)
        -- queryAll: deleted Opportunities come too, with IsDeleted = true.
        local r = soql(OPPORTUNITY, "Opportunity", nil)(since)
        r.path = "/services/data/v" .. version .. "/queryAll"
        return r
      end,
      pages = pages, watermark = watermark, fields = DEAL_FIELDS,
      -- Purged deletes: the delete log, from the last covered instant.
      deletes = { feed = true, items = "deletedRecords", id = "id", at = "deletedDate",
                  covered = "latestDateCovered", earliest = "earliestDateAvailable", days = 15,
                  request = function(start, stop)
                    local function sf(t) return t:sub(1, 19) .. "+00:00" end
                    return { path = ("/services/data/v%s/sobjects/Opportunity/deleted/"):format(version),
                             query = { start = sf(start), ["end"] = sf(stop) } }
                  end },
      map = function(r)
        -- A deal registration is an Opportunity with a partner account.
        if r.PartnerAccountId == nil then return false end
        local s = stage(r.StageName)
        if r.IsWon == true then s = "closed_won"
        elseif r.IsClosed == true then s = "closed_lost" end
        local closed = map.date(r.Closed_Date__c, "iso", "Closed_Date__c")
        if r.IsDeleted == true and s ~= "closed_won" and s ~= "closed_lost" then
          -- Deleted while open: no longer worked, so lost as of the delete.
          s = "closed_lost"
          closed = closed or map.date(r.SystemModstamp, "auto", "SystemModstamp")
        end
        local d = {
          external_id = r.Id, partner_id = r.PartnerAccountId,
          account = r.Account and r.Account.Name, contact_name = r.Contact_Name__c,
          contact_email = r.Contact_Email__c, amount = map.money(r.Amount, 1, "Amount"),
          currency = r.CurrencyIsoCode, product_family = r.Product_Family__c, stage = s,
          status = s == "closed_won" and "won" or s == "closed_lost" and "lost" or "open",
          created_at = map.date(r.CreatedDate, "auto", "CreatedDate"),
          expected_close = map.date(r.CloseDate, "iso", "CloseDate"),
          closed_at = closed,
          partner_probability = map.percent(r.Partner_Probability__c, 100, "Partner_Probability__c"),
          budget_confirmed = bool(r.Budget_Confirmed__c, "Budget_Confirmed__c"),
          competitor = r.Competitor__c, notes = r.Description,
          updated_at = map.instant(r.LastModifiedDate, "auto", "LastModifiedDate"),
        }
        d.completeness = completeness(d)
        return d
      end },
    -- The API's own history: one row per tracked field change, stamped with
    -- its CreatedDate; the store fills the fields the row does not change.
    { name = "deal_history", object = "deal_change", path = "/services/data/v59.0/query",
      request = function(since)
        local r = soql(FIELD_HISTORY, "OpportunityFieldHistory",
          "Field IN ('StageName', 'Amount', 'CloseDate') AND Opportunity.PartnerAccountId != null",
          "CreatedDate")(since)
        r.path = "/services/data/v" .. version .. "/query"
        return r
      end,
      pages = pages, watermark = { field = "CreatedDate", format = "soql" },
      map = function(r)
        local c = { deal_id = r.OpportunityId,
                    observed_at = map.instant(r.CreatedDate, "auto", "CreatedDate") }
        if r.Field == "StageName" then
          local s = stage(r.NewValue)
          c.stage, c.changed = s, "stage,status"
          c.status = s == "closed_won" and "won" or s == "closed_lost" and "lost" or "open"
        elseif r.Field == "Amount" then
          c.amount, c.changed = map.money(r.NewValue, 1, "NewValue"), "amount"
        elseif r.Field == "CloseDate" then
          c.expected_close, c.changed = map.date(r.NewValue, "iso", "NewValue"), "expected_close"
        else
          return false
        end
        return c
      end },
  },

  vendor_fields = VENDOR_FIELDS,
  -- PATCH one Opportunity with only the vendor-owned fields; 204 on success.
  writeback_request = function(deal_id, values)
    local body = {}
    for name, api in pairs(VENDOR_FIELDS) do
      if values[name] ~= nil then body[api] = values[name] end
    end
    return { method = "PATCH", path = ("/services/data/v%s/sobjects/Opportunity/%s"):format(
      version, deal_id), body = body }
  end,
}
