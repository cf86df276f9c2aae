-- tests/e2e/writeback_probe.lua CONNECTOR DEAL_ID: sends the connector's
-- write-back request for one deal (vendor fields only) with an
-- Idempotency-Key, then one with an undeclared field, and prints
-- "<status> <status>". Until the outbox sender lands this is how the
-- peers' write endpoints are exercised.
local sync = require "prm.sync"
local http = require "prm.http"
local cjson = require "cjson"
local path, deal = ...
local conn = sync.load_connector(path)
local env = sync.env(conn)
local c <close> = http.client(conn.client(env))
local values = { ai_forecast_score = 7, ai_risk_flags = "STALLED", ai_close_probability = 0.42,
                 ai_model_version = "gbdt-3", ai_last_scored_at = "2026-11-20T00:00:00Z",
                 ai_drivers = "+ stage" }
local req = conn.writeback_request(deal, values)
local function send(body, key)
  local r, err = c:request{ method = req.method, path = req.path, body = cjson.encode(body),
                            headers = { ["Content-Type"] = "application/json",
                                        ["Idempotency-Key"] = key } }
  if not r then error(err, 0) end
  return r.status
end
local s1 = send(req.body, "deal-" .. deal .. "-run-1")
local bad = cjson.decode(cjson.encode(req.body))
if bad.fields then bad.fields[#bad.fields + 1] = { api_name = "no_such_field", value = 1 }
elseif bad.input then bad.input[1].no_such_field = 1
else bad.No_Such_Field__x = 1 end
local s2 = send(bad, "deal-" .. deal .. "-run-2")
print(s1, s2)
