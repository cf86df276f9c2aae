/* test_ts_lua.c - the prm.ts Lua binding (lts.c), driven by a Lua script in
 * a bare lua_State: the result shape of ts.forecast, ts.accuracy on a
 * forecast table and on a plain array, missing values, fallbacks, and the
 * errors a script sees for bad input.
 */
#include "lprm.h"
#include "tap.h"

#include <lauxlib.h>
#include <lualib.h>

/* T(cond, name [, detail]) */
static int l_t(lua_State *L)
{
    t_check(lua_toboolean(L, 1), luaL_checkstring(L, 2), "ts_test.lua", 0,
            luaL_optstring(L, 3, NULL));
    return 0;
}

static const char *const script =
    "local ts = require 'prm.ts'\n"
    "local function raises(f, pat, name)\n"
    "  local ok, msg = pcall(f)\n"
    "  T(not ok and tostring(msg):find(pat, 1, true) ~= nil, name, tostring(msg))\n"
    "end\n"
    "local y = {}\n"
    "for i = 1, 60 do y[i] = 100 + 20 * math.sin(i * math.pi / 6) + i + (i * 7919 % 13 - 6) end\n"
    "local fc = ts.forecast(y, { period = 12, h = 18, method = 'ets', levels = { 80, 95 } })\n"
    "T(#fc.mean == 18, 'forecast: 18 means')\n"
    "T(#fc.lower[80] == 18 and #fc.upper[95] == 18, 'forecast: bounds keyed by level')\n"
    "T(fc.lower[95][18] < fc.lower[80][18] and fc.upper[80][18] < fc.upper[95][18], 'forecast: nested bands')\n"
    "T(fc.method:match('^ETS%(') ~= nil, 'forecast: method names the model', fc.method)\n"
    "T(type(fc.params.alpha) == 'number' and type(fc.aicc) == 'number', 'forecast: params and aicc')\n"
    "T(fc.levels[1] == 80 and fc.levels[2] == 95 and fc.n == 60, 'forecast: levels and n')\n"
    "local auto = ts.forecast(y, { period = 12, h = 6 })\n"
    "T(auto.method:match('^Combo%(') ~= nil and auto.aicc == nil, 'auto: the combination', auto.method)\n"
    "for _, m in ipairs{ 'theta', 'croston', 'snaive', 'naive', 'drift', 'mean', 'damped', 'combo', 'sba', 'tsb' } do\n"
    "  local r = ts.forecast(y, { period = 12, h = 3, method = m })\n"
    "  T(r and #r.mean == 3 and r.mean[3] == r.mean[3], 'method ' .. m)\n"
    "end\n"
    "local ra = ts.forecast(y, { period = 12, h = 3, method = 'arima' })\n"
    "T(ra.method:match('^ARIMA%(') ~= nil and ra.aicc == ra.aicc and ra.sigma2 > 0, 'method arima: "
    "an ARIMA with its AICc', ra.method)\n"
    "local r = ts.forecast(y, { period = 12, h = 3, model = 'AAA' })\n"
    "T(r.method == 'ETS(A,A,A)', 'model option fits that model', r.method)\n"
    /* accuracy on a forecast table and on an array */
    "local actual = {}\n"
    "for i = 61, 78 do actual[i - 60] = 100 + 20 * math.sin(i * math.pi / 6) + i end\n"
    "local acc = ts.accuracy(actual, fc, { period = 12, insample = y })\n"
    "T(acc.n == 18 and acc.smape >= 0 and acc.mase >= 0 and acc.wape >= 0 and acc.mape >= 0, 'accuracy: point measures')\n"
    "T(acc.coverage[80] >= 0 and acc.coverage[95] >= acc.coverage[80] and acc.pinball[80] >= 0 and acc.msis[95] >= 0, 'accuracy: interval measures')\n"
    "local a2 = ts.accuracy({ 10, 20 }, { 11, 18, 99 })\n"
    "T(a2.n == 2 and math.abs(a2.bias + 0.5) < 1e-12 and a2.mase == nil and a2.coverage == nil, 'accuracy: plain array, overlap only, no MASE without insample')\n"
    /* missing values and fallbacks */
    "local g = { 1, 2, false, 4, 0/0, 6, 7, 8 }\n"
    "local rg = ts.forecast(g, { h = 2 })\n"
    "T(rg.filled == 2 and rg.mean[1] == rg.mean[1], 'missing values filled')\n"
    "local rc = ts.forecast({ 5, 5, 5, 5 }, { h = 2 })\n"
    "T(rc.method == 'Constant' and rc.note ~= nil and rc.lower[80][1] == 5, 'constant series')\n"
    "local rs = ts.forecast({ 3, 4, 5 }, { h = 2 })\n"
    "T(rs.method == 'Naive' and rs.note:find('too short') ~= nil, 'short series: naive')\n"
    "local nf, msg = ts.forecast({ 0/0, 0/0 }, {})\n"
    "T(nf == nil and msg:find('missing') ~= nil, 'all missing: nil, msg', msg)\n"
    "nf, msg = ts.forecast({ 1, 2, 0/0 }, {})\n"
    "T(nf == nil and msg:find('last value') ~= nil, 'trailing missing: nil, msg', msg)\n"
    "nf, msg = ts.forecast(y, { model = 'XYZ' })\n"
    "T(nf == nil and msg:find('bad model') ~= nil, 'bad model: nil, msg', msg)\n"
    /* misuse raises */
    "raises(function() ts.forecast(y, { period = 12, hh = 3 }) end, \"unknown option 'hh'\", 'unknown option raises')\n"
    "raises(function() ts.forecast(y, { method = 'bogus' }) end, \"unknown method 'bogus'\", 'unknown method raises')\n"
    "raises(function() ts.forecast({ 1, 'x' }) end, 'y[2] is a string', 'non-number raises')\n"
    "raises(function() ts.forecast(y, { levels = { 80, 100 } }) end, \"'levels'[2]\", 'bad level raises')\n"
    "raises(function() ts.forecast(y, { h = 0 }) end, \"option 'h'\", 'h = 0 raises')\n"
    "raises(function() ts.forecast('abc') end, 'table expected', 'non-table raises')\n"
    "raises(function() ts.accuracy({}, { 1 }) end, 'nothing to score', 'empty accuracy raises')\n"
    "raises(function() ts.accuracy({ 1 }, { 1 }, { insample = 3 }) end, 'table expected', 'bad insample raises')\n";

int main(void)
{
    lua_State *L = luaL_newstate();
    luaL_openlibs(L);
    luaL_requiref(L, "prm.ts", luaopen_prm_ts, 0);
    lua_pop(L, 1);
    lua_register(L, "T", l_t);
    if (luaL_loadbufferx(L, script, strlen(script), "@ts_test.lua", "t") != LUA_OK ||
        lua_pcall(L, 0, 0, 0) != LUA_OK)
        t_check(0, "script runs", "ts_test.lua", 0, lua_tostring(L, -1));
    lua_close(L);
    return t_done();
}
