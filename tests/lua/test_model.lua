-- tests/lua/test_model.lua: the prm.model Lua binding as scripts see it, inside the real
-- binary's job state (moved from a bare lua_State in tests/unit).
local t = require "tests.lua.tap"
local function T(cond, name, detail) t.ok(cond, name, detail) end
local model = require 'prm.model'
local function raises(f, pat, name)
  local ok, msg = pcall(f)
  T(not ok and tostring(msg):find(pat, 1, true) ~= nil, name, tostring(msg))
end
local x = { amount = {}, tier = {}, age = {} }
local y = {}
local seed = 1
local function rnd() seed = (seed * 1103515245 + 12345) % 2147483648; return seed / 2147483648 end
local tiers = { 'gold', 'silver', 'bronze' }
for i = 1, 400 do
  local a, t = rnd() * 10, tiers[1 + (i % 3)]
  x.amount[i] = (i == 7) and 0/0 or a
  x.tier[i] = t
  x.age[i] = i % 17
  local eta = (a - 5) * 0.6 + (t == 'gold' and 1 or t == 'bronze' and -1 or 0)
  y[i] = rnd() < 1 / (1 + math.exp(-eta)) and 1 or 0
end
for _, kind in ipairs{ 'logistic', 'gbdt' } do
  local m <close> = model.fit{ kind = kind, x = x, y = y, categorical = { 'tier' },
                               params = kind == 'gbdt' and { max_iter = 30, min_samples_leaf = 5 } or nil }
  local p = m:predict(x)
  T(#p == 400 and p[1] > 0 and p[1] < 1, kind .. ': predict gives 400 probabilities')
  local r = model.metrics(p, y)
  T(r.auc > 0.8, kind .. ': in-sample AUC > 0.8', tostring(r.auc))
  local e = m:explain(x, 3)
  local s = e.base
  for _, d in ipairs(e.drivers) do s = s + d.contribution end
  T(#e.drivers == 3 and math.abs(s - e.logit) < 1e-9, kind .. ': base + drivers = logit')
  T(math.abs(e.p - p[3]) < 1e-12, kind .. ': explain p = predict p')
  T(math.abs(e.drivers[1].contribution) >= math.abs(e.drivers[2].contribution), kind .. ': sorted by |c|')
  for _, d in ipairs(e.positive) do T(d.contribution > 0, kind .. ': positive driver') end
  for _, d in ipairs(e.negative) do T(d.contribution < 0, kind .. ': negative driver') end
  local tierd
  for _, d in ipairs(e.drivers) do if d.feature == 'tier' then tierd = d end end
  T(tierd and tierd.value == x.tier[3], kind .. ': categorical driver carries its label')
  local s1 = m:save()
  local m2 = assert(model.load(s1))
  local p2 = m2:predict(x)
  local same = true
  for i = 1, 400 do same = same and p2[i] == p[i] end
  T(same, kind .. ': load(save()) predicts identically')
  local m3 = model.fit{ kind = kind, x = x, y = y, categorical = { 'tier' },
                      params = kind == 'gbdt' and { max_iter = 30, min_samples_leaf = 5 } or nil }
  T(m3:save() == s1, kind .. ': fitting twice gives identical parameters')
  T(m:info().kind == kind and #m:info().features == 3, kind .. ': info')
  local p4 = m:predict{ tier = { 'platinum', 'gold' }, age = { 1, 2 }, amount = { 5, 0/0 }, extra = { 1, 2 } }
  T(#p4 == 2 and p4[1] > 0 and p4[1] < 1, kind .. ': unseen label and extra column')
  m:calibrate(x, y, 'isotonic')
  T(m:info().calibration == 'isotonic', kind .. ': calibrated')
end
local mn = model.fit{ kind = 'baserate', x = { k = { 1, 2, 1, 2, 3 } }, y = { 1, 0, 1, 0, 1 }, categorical = { 'k' },
                      params = { prior_strength = 1 } }
local pn = mn:predict{ k = { 1.0, '1', 2 } }
T(pn[1] == pn[2] and pn[1] > pn[3], 'categorical numbers: 1, 1.0 and "1" are one label')
local c = model.fit{ kind = 'logistic', x = x, y = y, categorical = { 'tier' } }:coefs()
T(#c.terms == 6 and c.terms[1].name == 'age' and c.terms[3].name == 'amount=missing', 'logistic: coefs')
local b = model.fit{ kind = 'baserate', x = { tier = x.tier }, y = y, categorical = { 'tier' } }
T(#b:predict{ tier = { 'gold' } } == 1, 'baserate: fits and predicts')
raises(function() model.fit{ kind = 'logistic', x = {}, y = {} } end, 'no rows', 'error: empty')
raises(function() model.fit{ x = { a = { 1, 2, 3 } }, y = { 0, 1, 2 } } end, 'y[3] is 2', 'error: y not 0/1')
raises(function() model.fit{ x = { a = { 1, 2, 3 } }, y = { 0, 1 } } end, "column 'a' has 3 values, y has 2", 'error: mismatched lengths')
raises(function() model.fit{ x = { a = { 1, 2 } }, y = { 0, 1 }, params = { bogus = 1 } } end, "unknown parameter 'bogus'", 'error: unknown params key')
raises(function() model.fit{ x = { a = { 1, 2 } }, y = { 0, 1 }, extra = 1 } end, "unknown option 'extra'", 'error: unknown fit key')
raises(function() model.fit{ kind = 'forest', x = { a = { 1, 2 } }, y = { 0, 1 } } end, 'kind must be', 'error: unknown kind')
raises(function() model.fit{ x = { a = { 'p', 'q' } }, y = { 0, 1 } } end, 'expected a number', 'error: string in a numeric column')
raises(function() model.fit{ x = { a = { 1, 2 } }, y = { 1, 1 } } end, 'single class', 'error: single class')
local m = model.fit{ x = { a = { 1, 2, 3, 4 } }, y = { 0, 1, 0, 1 } }
raises(function() m:predict{ b = { 1 } } end, "missing column 'a'", 'error: predict without the column')
raises(function() m:explain({ a = { 1 } }, 2) end, 'row out of range', 'error: explain row')
local bad, msg = model.load('prmcast-model 1\nkind gbdt\n')
T(bad == nil and msg:find('corrupt', 1, true), 'load: corrupt text gives nil, msg', tostring(msg))
m:close()
raises(function() m:predict{ a = { 1 } } end, 'closed model', 'error: closed model')

t.done()
