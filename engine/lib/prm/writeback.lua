-- prm.writeback: the write-back sender. Drains writeback_outbox for one
-- connector through prm.http: each claimed payload becomes the connector's
-- writeback_request(deal, values) with only its declared vendor-owned
-- fields, sent with an Idempotency-Key (target:deal:run), acknowledged on
-- 2xx, retried with backoff on transport errors and 5xx, and a dead letter
-- at once on a refusal (4xx other than throttling: an unknown field is a
-- 400 naming it), or after max_attempts. A crash between send and ack
-- leaves the item 'sending'; after its lease it is claimed again with the
-- same key, so the PRM sees one change.
--
--   prmcast writeback connectors/partnerstack.lua [--dry-run] [--limit N] [--max-attempts N]
local sync = require "prm.sync"
local http = require "prm.http"
local cjson = require "cjson"
local store = require "prm.store"

local M = {}

-- The values a payload carries for the PRM: a connector-built payload may
-- nest them under custom_fields (connectors/file.lua's shape).
local function values_of(payload)
  local ok, v = pcall(cjson.decode, payload)
  if not ok or type(v) ~= "table" then return nil, "payload is not JSON" end
  if type(v.custom_fields) == "table" then v = v.custom_fields end
  return v
end

-- Only the connector's declared vendor-owned fields leave: a payload key
-- that is not one is dropped (never a partner-entered or standard field).
local function vendor_only(conn, values)
  local allowed = {}
  local vf = conn.vendor_fields or {}
  for k, v in pairs(vf) do
    if type(k) == "number" then allowed[v] = true else allowed[k] = true end
  end
  local out = {}
  for k, v in pairs(values) do
    if allowed[k] then out[k] = v end
  end
  return out
end

function M.run(opts)
  local db = opts.db or store.default()
  local conn = sync.load_connector(opts.connector)
  if type(conn.writeback_request) ~= "function" then
    error(("%s: no writeback_request: this connector cannot write back"):format(opts.connector), 0)
  end
  local target = conn.name
  local limit = opts.limit or math.huge
  local max_attempts = opts.max_attempts or 8
  local summary = { connector = target, sent = 0, failed = 0, dead = 0, dry_run = opts.dry_run or false,
                    payloads = {} }
  if opts.dry_run then
    for _, it in ipairs(db:outbox_claim(target, math.min(limit, 100000), true)) do
      local values = values_of(it.payload) or {}
      local req = conn.writeback_request(it.deal, vendor_only(conn, values))
      summary.payloads[#summary.payloads + 1] = { deal = it.deal, key = it.key, method = req.method,
                                                  path = req.path, body = req.body }
    end
    return summary
  end
  local env, secrets = sync.env(conn)
  local copts = conn.client(env)
  copts.secrets = copts.secrets or secrets
  if copts.log == nil then copts.log = function(line) prm.info("http %s", line) end end
  local client <close> = http.client(copts)
  local done = 0
  while done < limit do
    local batch = db:outbox_claim(target, math.min(100, limit - done))
    if #batch == 0 then break end
    for _, it in ipairs(batch) do
      done = done + 1
      local values, verr = values_of(it.payload)
      if not values then
        db:outbox_fail(it.id, verr, true, 0, max_attempts)
        summary.dead = summary.dead + 1
      else
        local req = conn.writeback_request(it.deal, vendor_only(conn, values))
        local headers = { ["Content-Type"] = "application/json", ["Idempotency-Key"] = it.key }
        for k, v in pairs(req.headers or {}) do headers[k] = v end
        local r, err, status = client:request { method = req.method or "PATCH", path = req.path,
          query = req.query, headers = headers,
          body = req.body ~= nil and cjson.encode(req.body) or nil }
        status = r and r.status or status or 0
        if r and status >= 200 and status < 300 then
          db:outbox_ack(it.id)
          summary.sent = summary.sent + 1
        else
          local msg = client:redact(err or ("HTTP %d: %s"):format(status, (r and r.body or ""):sub(1, 300)))
          -- A refusal names what is wrong (a field the PRM does not know):
          -- retrying would only repeat it. Throttling and 5xx retry later.
          local permanent = status >= 400 and status < 500 and status ~= 408 and status ~= 409
            and status ~= 423 and status ~= 429
          local backoff = math.min(3600, 30 * 2 ^ math.max(0, it.attempts - 1))
          db:outbox_fail(it.id, msg, permanent, math.floor(backoff), max_attempts)
          if permanent or it.attempts >= max_attempts then summary.dead = summary.dead + 1
          else summary.failed = summary.failed + 1 end
          if status == 0 then break end            -- the remote does not answer: stop
        end
      end
    end
  end
  local c = db:outbox_count(target)
  summary.pending, summary.dead_total = c.pending, c.dead
  db:audit("writeback", target, cjson.encode { sent = summary.sent, failed = summary.failed,
                                               dead = summary.dead })
  return summary
end

function M.format(s)
  if s.dry_run then
    local out = {}
    for _, p in ipairs(s.payloads) do
      out[#out + 1] = ("%s %s  %s  (Idempotency-Key %s)\n"):format(p.method or "PATCH", p.path,
        prm.safe(prm.json(p.body or {}) or "?"), p.key)
    end
    out[#out + 1] = ("%d payload(s) would be sent to %s (dry run: nothing sent)\n"):format(#s.payloads,
      s.connector)
    return table.concat(out)
  end
  return ("writeback %s: %d sent, %d to retry, %d dead letters; %d pending, %d dead in the outbox\n")
    :format(s.connector, s.sent, s.failed, s.dead, s.pending or 0, s.dead_total or 0)
end

local function writeback_option(a, args, i, opts)
  if a == "--dry-run" then
    opts.dry_run = true
    return i + 1
  elseif a == "--limit" or a == "--max-attempts" then
    local v = math.tointeger(tonumber(args[i + 1] or ""))
    if not v or v < 1 then return nil, a .. " needs a positive integer" end
    opts[a == "--limit" and "limit" or "max_attempts"] = v
    return i + 2
  end
  return false
end

-- `prmcast writeback CONNECTOR [--dry-run] [--limit N] [--max-attempts N]`
function M.cli(args)
  local ok, res = sync.connector_cli(args, writeback_option, M.run)
  if not ok then return false, res end
  local text = M.format(res)
  res.payloads = nil
  return true, res, text
end

return M
