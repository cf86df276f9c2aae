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

-- map.date(value, format, column) -> "YYYY-MM-DD" | nil (value absent)
function M.date(v, fmt, col)
  if v == nil then return nil end
  local d, err = prm.date(v, fmt)
  if not d then error(("%s: %s"):format(col or "date", err), 0) end
  return d
end

-- map.instant(value, format, column) -> "YYYY-MM-DDTHH:MM:SSZ" | nil
function M.instant(v, fmt, col)
  if v == nil then return nil end
  local t, err = prm.instant(v, fmt)
  if not t then error(("%s: %s"):format(col or "time", err), 0) end
  return t
end

-- map.money(value, scale, column) -> number | nil
function M.money(v, scale, col)
  if v == nil then return nil end
  local x, err = prm.money(v, scale)
  if not x then error(("%s: %s"):format(col or "amount", err), 0) end
  return x
end

-- map.number(value, column) -> number | nil
function M.number(v, col)
  if v == nil then return nil end
  local x = tonumber(v)
  if not x then error(("%s: not a number: %q"):format(col or "value", v), 0) end
  return x
end

-- map.percent(value, column) -> 0..1 | nil   ("35", "35%", "0.35")
-- Exports repeat a handful of values, so parsed results are cached (up to
-- CACHE_MAX distinct values; past that, values are parsed each time).
local CACHE_MAX = 4096
local percent_cache, percent_n = {}, 0
function M.percent(v, col)
  if v == nil then return nil end
  local x = percent_cache[v]
  if x then return x end
  x = tonumber(v) or tonumber((tostring(v):gsub("%%%s*$", "")))
  if not x then error(("%s: not a percentage: %q"):format(col or "probability", v), 0) end
  if x > 1 then x = x / 100 end
  if x < 0 or x > 1 then error(("%s: out of range: %q"):format(col or "probability", v), 0) end
  if percent_n < CACHE_MAX then
    percent_cache[v] = x
    percent_n = percent_n + 1
  end
  return x
end

-- map.bool(value, column) -> 1 | 0 | nil   (yes/no, true/false, 1/0, y/n)
local truth = { yes = 1, y = 1, ["true"] = 1, ["1"] = 1, no = 0, n = 0, ["false"] = 0, ["0"] = 0 }
local bool_cache, bool_n = {}, 0
function M.bool(v, col)
  if v == nil then return nil end
  local b = bool_cache[v]
  if b then return b end
  b = truth[norm(tostring(v))]
  if b == nil then error(("%s: not yes/no: %q"):format(col or "flag", v), 0) end
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
    c = n[norm(v)]
    if c == nil then error(("%s: unknown value %q"):format(col or "value", v), 0) end
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
