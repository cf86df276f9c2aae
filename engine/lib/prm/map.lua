-- prm.map: helpers for connector field mappings (connectors/*.lua).
--
--   local map = require "prm.map"
--   local stage = map.lookup({ ["closed won"] = "closed_won", ... }, "stage")
--   rec.stage = stage(r["Stage"])          -- case- and space-insensitive
--   rec.created_at = map.date(r["Created"], "iso", "Created")
--   rec.amount = map.money(r["Amount (cents)"], 0.01, "Amount (cents)")
--
-- Each helper raises "<column>: <why>" on a bad value; the ingest driver
-- catches it and reports the row with its file and line.
local prm = require "prm"

local M = {}

local function norm(s)
  return (s:lower():gsub("[%s_%-]+", " "):gsub("^ ", ""):gsub(" $", ""))
end
-- The key lookups compare (prm.csv's declared lookups normalise the same way).
M.norm = norm

-- Values reach the helpers as text (CSV; JSON records are turned into text
-- by the ingest) or numbers; anything else is a bad value of its column,
-- reported as such rather than as a Lua error inside the helper.
local function scalar(v, col, what)
  local t = type(v)
  if t ~= "string" and t ~= "number" then
    error(("%s: not %s: %s"):format(col, what, tostring(v)), 0)
  end
end

-- map.date(value, format, column) -> "YYYY-MM-DD" | nil (value absent)
function M.date(v, fmt, col)
  if v == nil then return nil end
  scalar(v, col or "date", "a date")
  local d, err = prm.date(v, fmt)
  if not d then error(("%s: %s"):format(col or "date", err), 0) end
  return d
end

-- map.quarter(value, column) -> "YYYY-Qn" | nil   ("FY2026 Q1", "Q1 2026", ...)
function M.quarter(v, col)
  if v == nil then return nil end
  scalar(v, col or "period", "a quarter")
  local q, err = prm.quarter_label(tostring(v))
  if not q then error(("%s: %s"):format(col or "period", err), 0) end
  return q
end

-- map.instant(value, format, column) -> "YYYY-MM-DDTHH:MM:SSZ" | nil
function M.instant(v, fmt, col)
  if v == nil then return nil end
  scalar(v, col or "time", "a time")
  local t, err = prm.instant(v, fmt)
  if not t then error(("%s: %s"):format(col or "time", err), 0) end
  return t
end

-- map.money(value, scale, column) -> number | nil
function M.money(v, scale, col)
  if v == nil then return nil end
  scalar(v, col or "amount", "an amount")
  local x, err = prm.money(v, scale)
  if not x then error(("%s: %s"):format(col or "amount", err), 0) end
  return x
end

-- map.number(value, column) -> number | nil
function M.number(v, col)
  if v == nil then return nil end
  local x = tonumber(v)
  if not x or x ~= x or x - x ~= 0 then
    error(("%s: not a number: %q"):format(col or "value", tostring(v)), 0)
  end
  return x
end

-- map.percent(value, scale, column) -> 0..1 | nil
-- A value with '%' is a percent ("35%", "0.5%" -> 0.005). A bare number is
-- read in the column's declared scale: 100 (or "0-100": "35" -> 0.35) or
-- 1 (or "0-1": "0.35" -> 0.35); nothing is guessed from the value. Exports
-- repeat a handful of values, so parsed results are cached (up to
-- CACHE_MAX distinct values per scale; past that, parsed each time).
local CACHE_MAX = 4096
local scales = { [1] = 1, [100] = 100, ["0-1"] = 1, ["0-100"] = 100 }
local percent_cache = { [1] = { n = 0, v = {} }, [100] = { n = 0, v = {} } }
function M.percent(v, scale, col)
  local sc = scales[scale]
  if not sc then
    error(("map.percent: scale must be 1 or 100 (\"0-1\" or \"0-100\"), got %s"):format(
      tostring(scale)), 2)
  end
  if v == nil then return nil end
  local cache = percent_cache[sc]
  local x = cache.v[v]
  if x then return x end
  scalar(v, col or "probability", "a percentage")
  local err
  x, err = prm.percent(v, sc)
  if not x then error(("%s: %s"):format(col or "probability", err), 0) end
  if cache.n < CACHE_MAX then
    cache.v[v] = x
    cache.n = cache.n + 1
  end
  return x
end

-- map.currency(value, column) -> "EUR" | nil   (ISO 4217; case and spaces ignored)
local currency_cache, currency_n = {}, 0
function M.currency(v, col)
  if v == nil then return nil end
  local c = currency_cache[v]
  if c then return c end
  scalar(v, col or "currency", "a currency code")
  local err
  c, err = prm.currency(tostring(v))
  if not c then error(("%s: %s"):format(col or "currency", err), 0) end
  if currency_n < CACHE_MAX then
    currency_cache[v] = c
    currency_n = currency_n + 1
  end
  return c
end

-- map.bool(value, column) -> 1 | 0 | nil   (yes/no, true/false, 1/0, y/n)
local truth = { yes = 1, y = 1, ["true"] = 1, ["1"] = 1, no = 0, n = 0, ["false"] = 0, ["0"] = 0 }
local bool_cache, bool_n = {}, 0
function M.bool(v, col)
  if v == nil then return nil end
  local b = bool_cache[v]
  if b then return b end
  b = truth[norm(tostring(v))]
  if b == nil then error(("%s: not yes/no: %q"):format(col or "flag", tostring(v)), 0) end
  if bool_n < CACHE_MAX then
    bool_cache[v] = b
    bool_n = bool_n + 1
  end
  return b
end

-- map.lookup(table, column) -> function(value) -> canonical | nil
-- Keys are matched ignoring case, spaces, '_' and '-'. An unknown value
-- raises, naming the column and the value.
function M.lookup(t, col)
  local n = {}
  for k, v in pairs(t) do n[norm(k)] = v end
  local cache, cached = {}, 0
  return function(v)
    if v == nil then return nil end
    local c = cache[v]
    if c then return c end
    c = n[norm(tostring(v))]
    if c == nil then error(("%s: unknown value %q"):format(col or "value", tostring(v)), 0) end
    if cached < CACHE_MAX then
      cache[v] = c
      cached = cached + 1
    end
    return c
  end
end

-- map.completeness(record, fields) -> share of fields present (0..1)
function M.completeness(r, fields)
  local have = 0
  for i = 1, #fields do
    if r[fields[i]] ~= nil then have = have + 1 end
  end
  return have / #fields
end

return M
