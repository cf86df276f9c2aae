-- tests/lua/test_ts.lua: the prm.ts Lua binding as scripts see it, inside the real
-- binary's job state (moved from a bare lua_State in tests/unit).
local t = require "tests.lua.tap"
local function T(cond, name, detail) t.ok(cond, name, detail) end
local ts = require 'prm.ts'
local function raises(f, pat, name)
  local ok, msg = pcall(f)
  T(not ok and tostring(msg):find(pat, 1, true) ~= nil, name, tostring(msg))
end
local y = {}
for i = 1, 60 do y[i] = 100 + 20 * math.sin(i * math.pi / 6) + i + (i * 7919 % 13 - 6) end
local fc = ts.forecast(y, { period = 12, h = 18, method = 'ets', levels = { 80, 95 } })
T(#fc.mean == 18, 'forecast: 18 means')
T(#fc.lower[80] == 18 and #fc.upper[95] == 18, 'forecast: bounds keyed by level')
T(fc.lower[95][18] < fc.lower[80][18] and fc.upper[80][18] < fc.upper[95][18], 'forecast: nested bands')
T(fc.method:match('^ETS%(') ~= nil, 'forecast: method names the model', fc.method)
T(type(fc.params.alpha) == 'number' and type(fc.aicc) == 'number', 'forecast: params and aicc')
T(fc.levels[1] == 80 and fc.levels[2] == 95 and fc.n == 60, 'forecast: levels and n')
local auto = ts.forecast(y, { period = 12, h = 6 })
T(auto.method:match('^Combo%(') ~= nil and auto.aicc == nil, 'auto: the combination', auto.method)
for _, m in ipairs{ 'theta', 'croston', 'snaive', 'naive', 'drift', 'mean', 'damped', 'combo', 'sba', 'tsb' } do
  local r = ts.forecast(y, { period = 12, h = 3, method = m })
  T(r and #r.mean == 3 and r.mean[3] == r.mean[3], 'method ' .. m)
end
local ra = ts.forecast(y, { period = 12, h = 3, method = 'arima' })
T(ra.method:match('^ARIMA%(') ~= nil and ra.aicc == ra.aicc and ra.sigma2 > 0, 'method arima: an ARIMA with its AICc', ra.method)
local r = ts.forecast(y, { period = 12, h = 3, model = 'AAA' })
T(r.method == 'ETS(A,A,A)', 'model option fits that model', r.method)
local actual = {}
for i = 61, 78 do actual[i - 60] = 100 + 20 * math.sin(i * math.pi / 6) + i end
local acc = ts.accuracy(actual, fc, { period = 12, insample = y })
T(acc.n == 18 and acc.smape >= 0 and acc.mase >= 0 and acc.wape >= 0 and acc.mape >= 0, 'accuracy: point measures')
T(acc.coverage[80] >= 0 and acc.coverage[95] >= acc.coverage[80] and acc.pinball[80] >= 0 and acc.msis[95] >= 0, 'accuracy: interval measures')
local a2 = ts.accuracy({ 10, 20 }, { 11, 18, 99 })
T(a2.n == 2 and math.abs(a2.bias + 0.5) < 1e-12 and a2.mase == nil and a2.coverage == nil, 'accuracy: plain array, overlap only, no MASE without insample')
local g = { 1, 2, false, 4, 0/0, 6, 7, 8 }
local rg = ts.forecast(g, { h = 2 })
T(rg.filled == 2 and rg.mean[1] == rg.mean[1], 'missing values filled')
local rc = ts.forecast({ 5, 5, 5, 5 }, { h = 2 })
T(rc.method == 'Constant' and rc.note ~= nil and rc.lower[80][1] == 5, 'constant series')
local rs = ts.forecast({ 3, 4, 5 }, { h = 2 })
T(rs.method == 'Naive' and rs.note:find('too short') ~= nil, 'short series: naive')
local nf, msg = ts.forecast({ 0/0, 0/0 }, {})
T(nf == nil and msg:find('missing') ~= nil, 'all missing: nil, msg', msg)
nf, msg = ts.forecast({ 1, 2, 0/0 }, {})
T(nf == nil and msg:find('last value') ~= nil, 'trailing missing: nil, msg', msg)
nf, msg = ts.forecast(y, { model = 'XYZ' })
T(nf == nil and msg:find('bad model') ~= nil, 'bad model: nil, msg', msg)
raises(function() ts.forecast(y, { period = 12, hh = 3 }) end, "unknown option 'hh'", 'unknown option raises')
raises(function() ts.forecast(y, { method = 'bogus' }) end, "unknown method 'bogus'", 'unknown method raises')
raises(function() ts.forecast({ 1, 'x' }) end, 'y[2] is a string', 'non-number raises')
raises(function() ts.forecast(y, { levels = { 80, 100 } }) end, "'levels'[2]", 'bad level raises')
raises(function() ts.forecast(y, { h = 0 }) end, "option 'h'", 'h = 0 raises')
raises(function() ts.forecast('abc') end, 'table expected', 'non-table raises')
raises(function() ts.accuracy({}, { 1 }) end, 'nothing to score', 'empty accuracy raises')
raises(function() ts.accuracy({ 1 }, { 1 }, { insample = 3 }) end, 'table expected', 'bad insample raises')

t.done()
