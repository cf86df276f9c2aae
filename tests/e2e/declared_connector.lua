-- tests/e2e/declared_connector.lua - a PartnerStack connector whose lists
-- declare a field of each kind (test_sync_declared.sh): text, money,
-- number, date (epoch ms and ISO), instant, percent, bool, lookup (and one
-- keeping unknown values), currency, completeness, join, a default, tenant
-- fields of each type, and a finish with inputs run for every record of
-- one list and only where a path is true in another.
local STAGES = {
  ["registered"] = "registered", ["qualified"] = "qualified", ["solution design"] = "solution",
  ["proposal sent"] = "proposal", ["negotiation"] = "negotiation",
  ["closed won"] = "closed_won", ["closed lost"] = "closed_lost",
}
local STATUS = {}
for k, v in pairs(STAGES) do
  STATUS[k] = v == "closed_won" and "won" or v == "closed_lost" and "lost" or "open"
end
local cursor = { paginator = "cursor", limit = 250, items = "data.items",
                 has_more = "data.has_more", key = "key" }
local wm = { field = "updated_at", format = "epoch_ms", param = "min_updated" }

return {
  name = "declared",
  source = "partnerstack",
  env = {
    base_url = { "PARTNERSTACK_BASE_URL" },
    public_key = { "PARTNERSTACK_PUBLIC_KEY", required = true },
    secret_key = { "PARTNERSTACK_SECRET_KEY", required = true, secret = true },
  },
  client = function(e)
    return { base_url = e.base_url, basic = { e.public_key, e.secret_key }, throttle = { 429 } }
  end,
  objects = {
    { path = "/api/v2/partnerships", object = "partner", pages = cursor, watermark = wm,
      declare = {
        external_id = "partner_key", name = "company.name", tier = "group.name",
        region = "m_data.region", country = "m_data.country",
        type = { "m_data.partner_type", "lookup", { reseller = "reseller", var = "reseller" },
                 keep_unknown = true },
        currency = { "m_data.currency", "currency" },
        joined_at = { "created_at", "date", "epoch_ms" },
        updated_at = { "updated_at", "instant", "epoch_ms" },
      } },
    { path = "/api/v2/deals", object = "deal", pages = cursor, watermark = wm,
      fields = {
        { name = "deal_type", type = "category", from = "field_data.deal_type" },
        { name = "seats", type = "number", from = "field_data.seats" },
        { name = "dm", type = "yesno", from = "field_data.decision_maker_identified" },
        { name = "kickoff", type = "date", from = "field_data.kickoff" },
      },
      declare = {
        external_id = "key", partner_id = "partner_key", account = "account_name",
        contact_name = { { "contact_first_name", "contact_last_name" }, "join", " " },
        contact_email = "field_data.contact_email",
        amount = { "amount", "money", 0.01 }, currency = { "field_data.currency", "currency" },
        product_family = "field_data.product",
        stage = { "stage", "lookup", STAGES }, status = { "stage", "lookup", STATUS },
        created_at = { "created_at", "date", "epoch_ms" },
        expected_close = { "close_date", "date", "iso" },
        partner_probability = { "field_data.partner_probability", "percent", 100 },
        budget_confirmed = { "field_data.budget_confirmed", "bool" },
        competitor = { "field_data.competitor", "text", default = "(none)" },
        updated_at = { "updated_at", "instant", "epoch_ms" },
        completeness = { { "account_name", "field_data.contact_email", "field_data.notes" },
                         "completeness" },
      },
      -- Lua for what the declaration cannot say, only for archived deals.
      finish_when = "archived",
      inputs = { "archived", "field_data.notes" },
      finish = function(d, raw, ctx)
        assert(raw.archived == true and ctx.object == "deal")
        d.stage, d.status = "closed_lost", "lost"
        d.notes = "archived: " .. (raw["field_data.notes"] or "-")
        return d
      end },
    { path = "/api/v2/transactions", object = "transaction", pages = cursor, watermark = wm,
      declare = {
        external_id = "key", partner_id = "customer.partner_key", deal_id = "metadata.deal_key",
        account = "customer.name", amount = { "amount", "number" }, currency = "currency",
        booked_at = { "created_at", "date", "epoch_ms" },
      },
      -- Lua for every record: skips one, refuses one, completes the rest.
      inputs = { "key" },
      finish = function(t, raw)
        if raw.key == "T0000001" then return false end
        if raw.key == "T0000002" then return nil, "refused by finish" end
        t.account = t.account and t.account:upper()
        return t
      end },
  },
}
