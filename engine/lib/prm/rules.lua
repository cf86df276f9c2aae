-- prm.rules: how risk-flag rules declare themselves (rules/flags/*.lua).
--
--   local rules = require "prm.rules"
--   rules.flag{
--     name        = "STALLED",
--     description = "Open deal with no stage change for `days` days",
--     severity    = "medium",                      -- "low" | "medium" | "high"
--     params      = { days = { "Days without a stage change", 30 } },
--     when = function(deal, ctx, p)                 -- a pure predicate ("check" also accepted)
--       local idle = ctx.days_since(deal.stage_changed_at)
--       if not idle or idle < p.days then return false end
--       return true, ("no stage change for %d days"):format(idle)
--     end,
--   }
--
-- Declarations are allowed only while rules load (the engine opens and
-- closes that phase); afterwards rules.flag raises. A misdeclared rule is
-- not raised: it is rejected with its file, line and field, the engine
-- reports it, and the other rules of the file still load (rspamd's
-- disable_module). The engine's side of this module (phase, the list of
-- rules, config overrides) is package.loaded["prm.rules.engine"], which a
-- sandboxed rule cannot require.

local M = {}
local engine = {}

local loading = false          -- the load phase is open
local file = nil               -- the file being loaded (display name)
local list = {}                -- accepted rules, in declaration order
local by_name = {}
local rejected = {}            -- messages of rejected declarations

local SEVERITY = { low = true, medium = true, high = true }
-- `when` is the hook's name in the issue that defined rules; STYLE.md's
-- examples call it `check`, and both are accepted (one of them per rule).
local FIELDS = { name = true, description = true, severity = true, params = true, when = true,
                 check = true }

-- The first line outside this module on the stack: the rule file's call.
local function where()
  local self = debug.getinfo(1, "S").source
  for level = 2, 20 do
    local info = debug.getinfo(level, "Sl")
    if not info then break end
    if info.source ~= self and info.currentline and info.currentline > 0 then
      return ("%s:%d"):format(file or info.short_src, info.currentline), info.currentline
    end
  end
  return file or "?", 0
end

local function reject(name, field, why)
  local at = where()
  rejected[#rejected + 1] = ("%s: rule '%s': field '%s' %s"):format(at, name or "?", field, why)
  return false
end

-- rules.flag{ name=, description=, severity=, params=, when= } -> true | false
-- Raises only when called outside the load phase.
function M.flag(t)
  if not loading then
    error("prm.rules.flag can only be called while rules are loading", 2)
  end
  if type(t) ~= "table" then return reject(nil, "(declaration)", "must be a table") end
  local name = t.name
  if type(name) ~= "string" then return reject(nil, "name", "must be a string") end
  if not name:match("^[A-Z][A-Z0-9_]*$") then
    return reject(name, "name", "must match ^[A-Z][A-Z0-9_]*$")
  end
  for k in pairs(t) do
    if not FIELDS[k] then return reject(name, tostring(k), "is not a known field") end
  end
  if type(t.description) ~= "string" or t.description == "" then
    return reject(name, "description", "must be a non-empty string")
  end
  if not SEVERITY[t.severity] then
    return reject(name, "severity", 'must be "low", "medium" or "high"')
  end
  if t.when ~= nil and t.check ~= nil then
    return reject(name, "when", "and 'check' are the same hook: give one of them")
  end
  local fn = t.when
  if fn == nil then fn = t.check end
  if type(fn) ~= "function" then
    return reject(name, t.check ~= nil and "check" or "when", "must be a function")
  end
  local params, values = {}, {}
  if t.params ~= nil then
    if type(t.params) ~= "table" then return reject(name, "params", "must be a table") end
    for k, v in pairs(t.params) do
      if type(k) ~= "string" or not k:match("^[%a_][%w_]*$") then
        return reject(name, "params", "has a key that is not a name")
      end
      local field = "params." .. k
      if type(v) ~= "table" or type(v[1]) ~= "string" then
        return reject(name, field, 'must be { "doc", default }')
      end
      local dt = type(v[2])
      if dt ~= "number" and dt ~= "string" and dt ~= "boolean" then
        return reject(name, field, "default must be a number, string or boolean")
      end
      params[#params + 1] = { key = k, doc = v[1], default = v[2] }
      values[k] = v[2]
    end
    table.sort(params, function(a, b) return a.key < b.key end)
  end
  local at, line = where()
  if by_name[name] then
    return reject(name, "name", ("duplicates the rule declared at %s"):format(by_name[name].at))
  end
  local r = {
    name = name, description = t.description, severity = t.severity,
    check = fn, params = params, values = values, file = file, line = line, at = at,
  }
  -- What check() sees as p: read-only, so a rule cannot change its own
  -- thresholds from one deal to the next by accident.
  r.p = setmetatable({}, {
    __index = values,
    __newindex = function() error("params are read-only", 2) end,
    __metatable = false,
  })
  list[#list + 1] = r
  by_name[name] = r
  return true
end

-- ---- the engine's side ------------------------------------------------------

-- Opens the load phase for one file (its display name).
function engine.begin(f)
  loading, file = true, f
end

-- Closes the load phase of the current file. When the file's chunk failed,
-- the rules it declared before failing are dropped with it.
function engine.finish(ok)
  if not ok then
    for i = #list, 1, -1 do
      if list[i].file == file then
        by_name[list[i].name] = nil
        table.remove(list, i)
      end
    end
  end
  loading, file = false, nil
end

-- The accepted rules, and the rejections since the last call.
function engine.rules() return list end

function engine.take_rejected()
  local r = rejected
  rejected = {}
  return r
end

-- Applies overrides { RULE = { param = value } } from a config table.
-- Returns a list of problems (unknown rule, unknown param, wrong type);
-- the valid entries are applied.
function engine.configure(cfg, src)
  local problems = {}
  if type(cfg) ~= "table" then
    return { ("%s: must return a table { RULE = { param = value } }"):format(src) }
  end
  for name, over in pairs(cfg) do
    local r = by_name[name]
    if not r then
      problems[#problems + 1] = ("%s: unknown rule '%s'"):format(src, tostring(name))
    elseif type(over) ~= "table" then
      problems[#problems + 1] = ("%s: '%s' must be a table of params"):format(src, name)
    else
      for k, v in pairs(over) do
        local d = r.values[k]
        if d == nil then
          problems[#problems + 1] = ("%s: rule '%s' has no param '%s'"):format(src, name, tostring(k))
        elseif type(v) ~= type(d) then
          problems[#problems + 1] = ("%s: %s.%s must be a %s"):format(src, name, k, type(d))
        else
          r.values[k] = v
        end
      end
    end
  end
  table.sort(problems)
  return problems
end

package.loaded["prm.rules.engine"] = engine

-- Rule files share this module; they get a read-only face of it.
return setmetatable({}, {
  __index = M,
  __newindex = function() error("prm.rules is read-only", 2) end,
  __metatable = false,
})
