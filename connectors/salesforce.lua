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
--
-- Every object's fields are declared as data (`declare`, walked and stored
-- in C, docs/SCRIPTING.md); Lua `finish` only where a declaration cannot say
-- it: a partner's join date falling back to CreatedDate, a closed or
-- deleted Opportunity's outcome (only those records reach Lua), and which
-- field a history row changes.
local map = require "prm.map"

local STAGES = {
  ["prospecting"] = "registered", ["registered"] = "registered",
  ["qualification"] = "qualified", ["qualified"] = "qualified",
  ["needs analysis"] = "solution", ["value proposition"] = "solution",
  ["id. decision makers"] = "solution", ["solution design"] = "solution",
  ["perception analysis"] = "proposal", ["proposal/price quote"] = "proposal",
  ["proposal sent"] = "proposal", ["negotiation/review"] = "negotiation",
  ["negotiation"] = "negotiation", ["closed won"] = "closed_won", ["closed lost"] = "closed_lost",
}
-- A deal's status from its stage label: won, lost or open.
local STATUS = {}
for label, st in pairs(STAGES) do
  STATUS[label] = st == "closed_won" and "won" or st == "closed_lost" and "lost" or "open"
end
local stage = map.lookup(STAGES, "StageName")
local function status_of(s)
  return s == "closed_won" and "won" or s == "closed_lost" and "lost" or "open"
end

local PARTNER_TYPES = {
  ["distributor"] = "distributor", ["reseller"] = "reseller", ["var"] = "reseller",
  ["referral"] = "referral", ["msp"] = "msp",
}

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

-- A history row's change of one tracked field (value v) into the
-- deal_change record c; false for a field this connector does not read.
local function change(c, field, v, col)
  if field == "StageName" then
    c.stage, c.changed = stage(v), "stage,status"
    c.status = status_of(c.stage)
  elseif field == "Amount" then
    c.amount, c.changed = map.money(v, 1, col), "amount"
  elseif field == "CloseDate" then
    c.expected_close, c.changed = map.date(v, "iso", col), "expected_close"
  else
    return false
  end
  return c
end
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
      declare = {
        external_id = "Id", name = "Name", tier = "Partner_Tier__c", region = "Region__c",
        country = "BillingCountry", type = { "Partner_Type__c", "lookup", PARTNER_TYPES },
        parent_id = "ParentId", currency = "CurrencyIsoCode", status = "Partner_Status__c",
        joined_at = { "Partner_Since__c", "date", "auto" },
        updated_at = { "LastModifiedDate", "instant", "auto" },
      },
      -- Without a Partner Since date the account's creation stands in.
      inputs = { "CreatedDate" },
      finish = function(p, raw)
        if p.joined_at == nil and raw.CreatedDate then
          p.joined_at = map.date(raw.CreatedDate, "auto", "CreatedDate")
        end
        return p
      end },
    { name = "deal", object = "deal", path = "/services/data/v59.0/query",
      request = function(since)
        -- queryAll: deleted Opportunities come too, with IsDeleted = true.
        -- A deal registration is an Opportunity with a partner account.
        local r = soql(OPPORTUNITY, "Opportunity", "PartnerAccountId != null")(since)
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
      declare = {
        external_id = "Id", partner_id = "PartnerAccountId", account = "Account.Name",
        contact_name = "Contact_Name__c", contact_email = "Contact_Email__c",
        amount = { "Amount", "money", 1 }, currency = "CurrencyIsoCode",
        product_family = "Product_Family__c",
        stage = { "StageName", "lookup", STAGES }, status = { "StageName", "lookup", STATUS },
        created_at = { "CreatedDate", "date", "auto" },
        expected_close = { "CloseDate", "date", "iso" },
        closed_at = { "Closed_Date__c", "date", "iso" },
        partner_probability = { "Partner_Probability__c", "percent", 100 },
        budget_confirmed = { "Budget_Confirmed__c", "bool" },
        competitor = "Competitor__c", notes = "Description",
        updated_at = { "LastModifiedDate", "instant", "auto" },
        -- What a channel manager needs on a registration (as connectors/file.lua).
        completeness = { { "Account.Name", "Contact_Name__c", "Contact_Email__c", "Amount",
                           "Product_Family__c", "CloseDate", "Budget_Confirmed__c" }, "completeness" },
      },
      -- IsWon / IsClosed decide the outcome over the stage label; a deal
      -- deleted while open is no longer worked: lost as of the delete. Only
      -- closed or deleted Opportunities reach Lua.
      finish_when = { "IsClosed", "IsDeleted" },
      inputs = { "IsWon", "IsClosed", "IsDeleted", "SystemModstamp" },
      finish = function(d, raw)
        if raw.IsWon == true then d.stage = "closed_won"
        elseif raw.IsClosed == true then d.stage = "closed_lost" end
        if raw.IsDeleted == true and d.stage ~= "closed_won" and d.stage ~= "closed_lost" then
          d.stage = "closed_lost"
          d.closed_at = d.closed_at or map.date(raw.SystemModstamp, "auto", "SystemModstamp")
        end
        d.status = status_of(d.stage)
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
      declare = { deal_id = "OpportunityId", observed_at = { "CreatedDate", "instant", "auto" } },
      -- Which field the row changes is data in the row: said in Lua.
      inputs = { "Field", "NewValue" },
      finish = function(c, raw) return change(c, raw.Field, raw.NewValue, "NewValue") end },
    -- The state at creation: before its first change a field held that
    -- row's OldValue, from the Opportunity's CreatedDate on (a deal the
    -- first sync sees after it changed has no other record of it). Rows of
    -- the Opportunities created since the watermark, newest first, so the
    -- oldest change of each field is written last and stands (also after a
    -- kill and a resume: the pages resume in the same order).
    { name = "deal_created", object = "deal_change", path = "/services/data/v59.0/query",
      request = function(since)
        local w = { "Field IN ('StageName', 'Amount', 'CloseDate')",
                    "Opportunity.PartnerAccountId != null" }
        if since then w[#w + 1] = "Opportunity.CreatedDate > " .. since end
        return { path = "/services/data/v" .. version .. "/query",
                 query = { q = ("SELECT %s FROM OpportunityFieldHistory WHERE %s ORDER BY CreatedDate DESC, Id DESC"):format(
                   "Id, OpportunityId, Field, OldValue, CreatedDate, Opportunity.CreatedDate",
                   table.concat(w, " AND ")) } }
      end,
      pages = pages, watermark = { field = "Opportunity.CreatedDate", format = "soql" },
      declare = { deal_id = "OpportunityId", observed_at = { "Opportunity.CreatedDate", "instant", "auto" } },
      inputs = { "Field", "OldValue" },
      finish = function(c, raw) return change(c, raw.Field, raw.OldValue, "OldValue") end },
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
