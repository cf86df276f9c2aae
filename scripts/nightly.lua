-- scripts/nightly.lua: the nightly job.
--
--   prmcast run scripts/nightly.lua EXPORT_DIR [--connector FILE]
--
--   prmcast run scripts/nightly.lua connectors/partnerstack.lua   (an HTTP connector: sync,
--                                                                 and write the scores back)
--
-- Ingests the PRM export (or syncs the PRM), then prints what a channel ops team checks each
-- morning: partners by tier, the open pipeline by stage and expected-close
-- quarter (in the store's base currency, at FX as of the run), and the
-- data-quality problems found. Then it scores every open deal: the models
-- are retrained when the active one is older than $PRMCAST_RETRAIN_DAYS
-- (default 7) or missing, and the scores, drivers, risk flags and write-back
-- payloads of the run are stored. Later stages (forecast, outputs) append
-- to this same script. With an HTTP connector the payloads are then sent
-- (prm.writeback); a new store synced from an API without field history
-- has nothing to learn from yet, and the night says so and scores nothing
-- rather than failing (history accumulates with each sync, or comes from the
-- PRM's export ingested once with --source).
local ingest = require "prm.ingest"
local pipeline = require "prm.pipeline"
local store = require "prm.store"
local scoring = require "prm.scoring"

local dir = arg[1] or os.getenv("PRMCAST_EXPORT_DIR")
if not dir then error("usage: prmcast run scripts/nightly.lua EXPORT_DIR [--connector FILE]", 0) end
local args = { dir }
for i = 2, #arg do args[#args + 1] = arg[i] end

-- A connector file (connectors/<prm>.lua) is an HTTP connector: the PRM is
-- synced through it and the scores are written back through it at the end;
-- a folder is an export, ingested (with --connector FILE for its mapping).
local http_connector = dir:match("%.lua$") ~= nil
local ok, res, text
if http_connector then ok, res, text = require("prm.sync").cli(args)
else ok, res, text = ingest.cli(args) end
if not ok then error(res, 0) end
-- Export data reaches these lines: prm.safe shows control and ANSI escape
-- characters as \xHH (issue 8), line by line so the layout stays.
if text then io.stdout:write((text:gsub("[^\n]+", prm.safe))) end

local db = store.default()
local out = io.stdout
local function section(title) out:write("\n", title, "\n") end
local function money(x) return x and ("%14.0f"):format(x) or ("%14s"):format("-") end

section("Partners by tier")
out:write(("  %-12s %8s %8s %8s %8s %8s\n"):format("tier", "partners", "distrib", "reseller",
  "referral", "msp"))
for _, r in ipairs(db:query([[
    SELECT COALESCE(tier, '(none)') AS tier, count(*) AS n,
           sum(type = 'distributor') AS d, sum(type = 'reseller') AS r,
           sum(type = 'referral') AS f, sum(type = 'msp') AS m
      FROM partners GROUP BY 1
     ORDER BY CASE tier WHEN 'Platinum' THEN 1 WHEN 'Gold' THEN 2 WHEN 'Silver' THEN 3 ELSE 4 END]])) do
  out:write(("  %-12s %8d %8d %8d %8d %8d\n"):format(prm.safe(r.tier), r.n, r.d, r.r, r.f, r.m))
end

-- The open pipeline as the engine knows it now (the world: each deal's
-- state and currency as of the run, FX as of the run, in the base currency).
local pipe = assert(scoring.pipeline {})
local stages = {}
for i = 1, #prm.stages do if prm.stages.open[prm.stages[i]] then stages[#stages + 1] = prm.stages[i] end end
local grid, quarters, qset, no_rate = {}, {}, {}, 0
for _, c in ipairs(pipe.cells) do
  if not qset[c.quarter] then qset[c.quarter] = true; quarters[#quarters + 1] = c.quarter end
  grid[c.stage] = grid[c.stage] or {}
  grid[c.stage][c.quarter] = (grid[c.stage][c.quarter] or 0) + c.amount
  no_rate = no_rate + c.no_rate
end
table.sort(quarters)
section(("Open pipeline by stage and expected-close quarter (%s)"):format(pipe.base))
out:write(("  %-12s"):format("stage"))
for _, q in ipairs(quarters) do out:write(("%14s"):format(q)) end
out:write(("%14s\n"):format("total"))
local coltot, grand = {}, 0
for _, s in ipairs(stages) do
  local row, tot = grid[s] or {}, 0
  out:write(("  %-12s"):format(s))
  for _, q in ipairs(quarters) do
    out:write(money(row[q] or 0))
    tot = tot + (row[q] or 0)
    coltot[q] = (coltot[q] or 0) + (row[q] or 0)
  end
  grand = grand + tot
  out:write(money(tot), "\n")
end
out:write(("  %-12s"):format("total"))
for _, q in ipairs(quarters) do out:write(money(coltot[q])) end
out:write(money(grand), "\n")

section("Data-quality problems")
local today = prm.today()
local checks = {
  { "rows rejected at ingest (see ingest_rejects)", "SELECT count(*) AS n FROM ingest_rejects" },
  { "open deals with a close date in the past",
    "SELECT count(*) AS n FROM deals WHERE status = 'open' AND expected_close < ?", today },
  { "open deals without an expected close date",
    "SELECT count(*) AS n FROM deals WHERE status = 'open' AND expected_close IS NULL" },
  { "deals without an amount", "SELECT count(*) AS n FROM deals WHERE amount IS NULL" },
  { "open deals missing required fields (completeness < 100%)",
    "SELECT count(*) AS n FROM deals WHERE status = 'open' AND completeness < 1" },
  { "won deals without a closed date",
    "SELECT count(*) AS n FROM deals WHERE status = 'won' AND closed_at IS NULL" },
  { "resellers whose parent distributor is not in the export", [[
    SELECT count(*) AS n FROM partners p WHERE parent_external_id IS NOT NULL
       AND NOT EXISTS (SELECT 1 FROM partners q WHERE q.source = p.source
                          AND q.external_id = p.parent_external_id)]] },
  { "currencies without an FX rate", [[
    SELECT count(DISTINCT currency) AS n FROM deals d WHERE currency IS NOT NULL
       AND currency <> (SELECT value FROM settings WHERE key = 'base_currency')
       AND NOT EXISTS (SELECT 1 FROM fx_rates f WHERE f.currency = d.currency)]] },
}
local problems = {}
for _, c in ipairs(checks) do
  local n = db:query(c[2], table.unpack(c, 3))[1].n
  problems[c[1]] = n
  out:write(("  %8d  %s\n"):format(n, c[1]))
end
if no_rate > 0 then
  out:write(("  %8d  open deals left out of the %s pipeline (no FX rate)\n"):format(no_rate, pipe.base))
end

-- Scoring.
section("Deal scoring")
local retrain_days = tonumber(os.getenv("PRMCAST_RETRAIN_DAYS") or "7")
local last = db:query([[SELECT created_at FROM models WHERE active = 1 ORDER BY id DESC LIMIT 1]])[1]
local trained, waiting
if not last or prm.days(prm.today()) - prm.days(last.created_at:sub(1, 10)) >= retrain_days then
  local t, terr = pipeline.train {}
  if not t and not last and (terr:find("not enough history", 1, true)
                             or terr:find("no evaluation window", 1, true)) then
    -- A new store synced from an API without field history (PartnerStack,
    -- Impartner, Allbound): each deal is known only from the day a sync
    -- first saw it, so there is nothing honest to learn from yet. Not a
    -- failure of the night: history accumulates with every sync.
    waiting = terr
    out:write("  no model yet: ", terr, "\n  History accumulates with each nightly sync; "
      .. "to start scoring sooner, ingest the PRM's export once (its deal history) into this "
      .. "store with --source ", res.source or "<the connector's source>", ".\n")
  elseif not t then
    error("train: " .. terr, 0)
  else
    trained = t.best
  end
else
  out:write(("  active model trained %s (retrain every %d days)\n"):format(last.created_at, retrain_days))
end
local s, serr
if not waiting then
  s, serr = pipeline.score { connector = http_connector and dir or nil }
  if not s then error("score: " .. serr, 0) end
end

if s then
  out:write("\n  score band    deals   expected wins\n")
  for _, r in ipairs(db:query([[
      SELECT CAST(s.score AS INTEGER) AS band, count(*) AS n, sum(s.probability) AS wins
        FROM scores s WHERE s.run_id = ? GROUP BY 1 ORDER BY 1 DESC]], s.run_id)) do
    out:write(("  %5d-%-5d %8d %15.1f\n"):format(r.band, r.band + 1, r.n, r.wins or 0))
  end
  out:write("\n  most frequent risk flags\n")
  for _, r in ipairs(db:query([[
      SELECT json_extract(f.value, '$.name') AS flag, count(*) AS n
        FROM scores s, json_each(s.flags) f WHERE s.run_id = ? GROUP BY 1 ORDER BY 2 DESC]], s.run_id)) do
    out:write(("  %8d  %s\n"):format(r.n, prm.safe(r.flag)))
  end
end

-- The channel forecast: the current and the next fiscal period.
section("Channel forecast")
local forecasts = {}
local now = scoring.forecast { sims = 5000 }
if now then
  local y, n = now.period:match("^(%d+)-Q(%d)$")
  y, n = tonumber(y), tonumber(n)
  local nxt = n == 4 and ("%d-Q1"):format(y + 1) or ("%d-Q%d"):format(y, n + 1)
  for _, f in ipairs { now, scoring.forecast { period = nxt, sims = 5000 } } do
    out:write(("\n  %s as of %s (%s, %s)\n"):format(f.period, f.as_of:sub(1, 10), f.base, f.probabilities))
    out:write(("  %-14s %14s %14s %14s %14s %14s %14s\n"):format("", "P10", "P50", "P90", "closed",
      "pipeline", "commit"))
    local r = f.rows[1]
    out:write(("  %-14s %14.0f %14.0f %14.0f %14.0f %14.0f %14.0f\n"):format(r.segment, r.p10, r.p50, r.p90,
      r.closed, r.pipeline, r.commit or 0))
    forecasts[#forecasts + 1] = { period = f.period, p10 = r.p10, p50 = r.p50, p90 = r.p90 }
  end
else
  out:write("  no forecast (no deal history yet)\n")
end


-- Scores back to the PRM: the outbox drained through the connector.
local sent
if http_connector and s then
  local wok, wres, wtext = require("prm.writeback").cli { dir }
  if not wok then error("writeback: " .. tostring(wres), 0) end
  section("Write-back")
  out:write("  ", wtext)
  sent = wres.sent
end


return { ingest = { read = res.read, written = res.written, rejected = res.rejected }, sent = sent,
         open_pipeline = grand, base_currency = pipe.base, problems = problems,
         scoring = s and { run = s.run_id, deals = s.deals, flagged = s.flagged,
                           trained = trained and trained.kind or nil } or { waiting = waiting },
         forecast = forecasts }
