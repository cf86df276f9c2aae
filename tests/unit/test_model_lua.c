/* test_model_lua.c - the prm.model Lua binding (lmodel.c), driven by a Lua
 * script in a bare lua_State: fit / predict / explain / save / load /
 * calibrate, and the errors a script sees for bad input.
 */
#include "lprm.h"
#include "tap.h"

#include <lauxlib.h>
#include <lualib.h>
#include <stdlib.h>

/* T(cond, name [, detail]) */
static int l_t(lua_State *L)
{
    t_check(lua_toboolean(L, 1), luaL_checkstring(L, 2), "model_test.lua", 0, luaL_optstring(L, 3, NULL));
    return 0;
}

static const char *const script =
    "local model = require 'prm.model'\n"
    "local function raises(f, pat, name)\n"
    "  local ok, msg = pcall(f)\n"
    "  T(not ok and tostring(msg):find(pat, 1, true) ~= nil, name, tostring(msg))\n"
    "end\n"
    /* a small problem: amount matters, tier matters, one missing amount */
    "local x = { amount = {}, tier = {}, age = {} }\n"
    "local y = {}\n"
    "local seed = 1\n"
    "local function rnd() seed = (seed * 1103515245 + 12345) % 2147483648; return seed / 2147483648 end\n"
    "local tiers = { 'gold', 'silver', 'bronze' }\n"
    "for i = 1, 400 do\n"
    "  local a, t = rnd() * 10, tiers[1 + (i % 3)]\n"
    "  x.amount[i] = (i == 7) and 0/0 or a\n"
    "  x.tier[i] = t\n"
    "  x.age[i] = i % 17\n"
    "  local eta = (a - 5) * 0.6 + (t == 'gold' and 1 or t == 'bronze' and -1 or 0)\n"
    "  y[i] = rnd() < 1 / (1 + math.exp(-eta)) and 1 or 0\n"
    "end\n"
    "for _, kind in ipairs{ 'logistic', 'gbdt' } do\n"
    "  local m <close> = model.fit{ kind = kind, x = x, y = y, categorical = { 'tier' },\n"
    "                               params = kind == 'gbdt' and { max_iter = 30, min_samples_leaf = 5 } or nil }\n"
    "  local p = m:predict(x)\n"
    "  T(#p == 400 and p[1] > 0 and p[1] < 1, kind .. ': predict gives 400 probabilities')\n"
    "  local r = model.metrics(p, y)\n"
    "  T(r.auc > 0.8, kind .. ': in-sample AUC > 0.8', tostring(r.auc))\n"
    "  local e = m:explain(x, 3)\n"
    "  local s = e.base\n"
    "  for _, d in ipairs(e.drivers) do s = s + d.contribution end\n"
    "  T(#e.drivers == 3 and math.abs(s - e.logit) < 1e-9, kind .. ': base + drivers = logit')\n"
    "  T(math.abs(e.p - p[3]) < 1e-12, kind .. ': explain p = predict p')\n"
    "  T(math.abs(e.drivers[1].contribution) >= math.abs(e.drivers[2].contribution), kind .. ': sorted by |c|')\n"
    "  for _, d in ipairs(e.positive) do T(d.contribution > 0, kind .. ': positive driver') end\n"
    "  for _, d in ipairs(e.negative) do T(d.contribution < 0, kind .. ': negative driver') end\n"
    "  local tierd\n"
    "  for _, d in ipairs(e.drivers) do if d.feature == 'tier' then tierd = d end end\n"
    "  T(tierd and tierd.value == x.tier[3], kind .. ': categorical driver carries its label')\n"
    "  local s1 = m:save()\n"
    "  local m2 = assert(model.load(s1))\n"
    "  local p2 = m2:predict(x)\n"
    "  local same = true\n"
    "  for i = 1, 400 do same = same and p2[i] == p[i] end\n"
    "  T(same, kind .. ': load(save()) predicts identically')\n"
    "  local m3 = model.fit{ kind = kind, x = x, y = y, categorical = { 'tier' },\n"
    "                      params = kind == 'gbdt' and { max_iter = 30, min_samples_leaf = 5 } or nil }\n"
    "  T(m3:save() == s1, kind .. ': fitting twice gives identical parameters')\n"
    "  T(m:info().kind == kind and #m:info().features == 3, kind .. ': info')\n"
    /* columns in another order / extra columns / unseen label */
    "  local p4 = m:predict{ tier = { 'platinum', 'gold' }, age = { 1, 2 }, amount = { 5, 0/0 }, extra = { 1, 2 } }\n"
    "  T(#p4 == 2 and p4[1] > 0 and p4[1] < 1, kind .. ': unseen label and extra column')\n"
    "  m:calibrate(x, y, 'isotonic')\n"
    "  T(m:info().calibration == 'isotonic', kind .. ': calibrated')\n"
    "end\n"
    "local mn = model.fit{ kind = 'baserate', x = { k = { 1, 2, 1, 2, 3 } }, y = { 1, 0, 1, 0, 1 }, categorical = { 'k' },\n"
    "                      params = { prior_strength = 1 } }\n"
    "local pn = mn:predict{ k = { 1.0, '1', 2 } }\n"
    "T(pn[1] == pn[2] and pn[1] > pn[3], 'categorical numbers: 1, 1.0 and \"1\" are one label')\n"
    "local c = model.fit{ kind = 'logistic', x = x, y = y, categorical = { 'tier' } }:coefs()\n"
    "T(#c.terms == 6 and c.terms[1].name == 'age' and c.terms[3].name == 'amount=missing', 'logistic: coefs')\n"
    "local b = model.fit{ kind = 'baserate', x = { tier = x.tier }, y = y, categorical = { 'tier' } }\n"
    "T(#b:predict{ tier = { 'gold' } } == 1, 'baserate: fits and predicts')\n"
    /* bad input */
    "raises(function() model.fit{ kind = 'logistic', x = {}, y = {} } end, 'no rows', 'error: empty')\n"
    "raises(function() model.fit{ x = { a = { 1, 2, 3 } }, y = { 0, 1, 2 } } end, 'y[3] is 2', 'error: y not 0/1')\n"
    "raises(function() model.fit{ x = { a = { 1, 2, 3 } }, y = { 0, 1 } } end, \"column 'a' has 3 values, y has 2\", 'error: mismatched lengths')\n"
    "raises(function() model.fit{ x = { a = { 1, 2 } }, y = { 0, 1 }, params = { bogus = 1 } } end, \"unknown parameter 'bogus'\", 'error: unknown params key')\n"
    "raises(function() model.fit{ x = { a = { 1, 2 } }, y = { 0, 1 }, extra = 1 } end, \"unknown key 'extra'\", 'error: unknown fit key')\n"
    "raises(function() model.fit{ kind = 'forest', x = { a = { 1, 2 } }, y = { 0, 1 } } end, 'kind must be', 'error: unknown kind')\n"
    "raises(function() model.fit{ x = { a = { 'p', 'q' } }, y = { 0, 1 } } end, 'expected a number', 'error: string in a numeric column')\n"
    "raises(function() model.fit{ x = { a = { 1, 2 } }, y = { 1, 1 } } end, 'single class', 'error: single class')\n"
    "local m = model.fit{ x = { a = { 1, 2, 3, 4 } }, y = { 0, 1, 0, 1 } }\n"
    "raises(function() m:predict{ b = { 1 } } end, \"missing column 'a'\", 'error: predict without the column')\n"
    "raises(function() m:explain({ a = { 1 } }, 2) end, 'row out of range', 'error: explain row')\n"
    "local bad, msg = model.load('prmcast-model 1\\nkind gbdt\\n')\n"
    "T(bad == nil and msg:find('corrupt', 1, true), 'load: corrupt text gives nil, msg', tostring(msg))\n"
    "m:close()\n"
    "raises(function() m:predict{ a = { 1 } } end, 'closed model', 'error: closed model')\n";

/* Allocation-failure sweep: the binding must raise cleanly, never crash
 * or leak (ASan checks the leaks), whichever Lua allocation fails. */
typedef struct limit { long left; int armed; } limit;

static void *limit_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    limit *l = ud;
    if (nsize == 0) {
        free(ptr);
        return NULL;
    }
    if (l->armed && nsize > (ptr ? osize : 0)) {
        if (l->left <= 0) return NULL;
        l->left--;
    }
    return realloc(ptr, nsize);
}

static const char *const sweep =
    "local model = require 'prm.model'\n"
    "local x = { a = { 1, 2, 3, 4, 5, 6, 0/0, 8 }, t = { 'p', 'q', 'p', 'q', 'r', 'p', 'q', 'r' } }\n"
    "local y = { 0, 1, 0, 1, 1, 0, 1, 0 }\n"
    "for _, kind in ipairs{ 'logistic', 'gbdt' } do\n"
    "  local m <close> = model.fit{ kind = kind, x = x, y = y, categorical = { 't' },\n"
    "                               params = kind == 'gbdt' and { min_samples_leaf = 1, max_iter = 3 } or nil }\n"
    "  m:predict(x)\n"
    "  m:explain(x, 2)\n"
    "  local m2 <close> = assert(model.load(m:save()))\n"
    "  m2:calibrate(x, y)\n"
    "end\n";

static void test_alloc_sweep(void)
{
    int done = 0, crashed = 0;
    long n;
    for (n = 0; n < 20000 && !done; n++) {
        limit l = { 0, 0 };
        lua_State *L = lua_newstate(limit_alloc, &l);
        if (!L) break;
        luaL_openlibs(L);
        luaL_requiref(L, "prm.model", luaopen_prm_model, 0);
        lua_pop(L, 1);
        if (luaL_loadbufferx(L, sweep, strlen(sweep), "@sweep.lua", "t") != LUA_OK) {
            crashed = 1;
            lua_close(L);
            break;
        }
        l.left = n;
        l.armed = 1;
        int rc = lua_pcall(L, 0, 0, 0);
        l.armed = 0;
        if (rc == LUA_OK) done = 1;
        else if (rc != LUA_ERRMEM && !strstr(lua_tostring(L, -1) ? lua_tostring(L, -1) : "", "memory")) {
            printf("# allocation %ld: %s\n", n, lua_tostring(L, -1));
            crashed = 1;
        }
        lua_close(L);
    }
    printf("# the sweep script needs %ld Lua allocations\n", n - 1);
    T_OK(done, "alloc sweep: the script completes once allocations suffice");
    T_OK(!crashed, "alloc sweep: every failure is a memory error, raised cleanly");
}

int main(void)
{
    lua_State *L = luaL_newstate();
    luaL_openlibs(L);
    luaL_requiref(L, "prm.model", luaopen_prm_model, 0);
    lua_pop(L, 1);
    lua_register(L, "T", l_t);
    if (luaL_loadbufferx(L, script, strlen(script), "@model_test.lua", "t") != LUA_OK ||
        lua_pcall(L, 0, 0, 0) != LUA_OK)
        t_check(0, "script runs", "model_test.lua", 0, lua_tostring(L, -1));
    lua_close(L);
    test_alloc_sweep();
    return t_done();
}
