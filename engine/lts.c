/* lts.c - the prm.ts Lua module: time-series forecasts and accuracy
 * measures over ts.h and metrics.h (method notes in docs/TIMESERIES.md).
 *
 *   local ts = require "prm.ts"
 *   local fc = ts.forecast(y, { period = 12, h = 18, method = "auto", levels = { 80, 95 } })
 *   -- fc.mean[1], fc.lower[80][1], fc.upper[95][18], fc.method == "ETS(M,Ad,M)",
 *   -- fc.params.alpha, fc.aicc (ETS only), fc.note (a fallback taken, if any)
 *   local acc = ts.accuracy(actual, fc, { period = 12, insample = y })
 *   -- acc.smape, acc.mase, acc.coverage[80], acc.pinball[95], ...
 *
 * Series are arrays of numbers; a missing month is 0/0 or false (a nil
 * would end the array as # sees it).  Misuse (a wrong type, an unknown
 * option, a bad level) raises naming the argument; a series the methods
 * cannot forecast (all missing, ending in a missing value, one point)
 * returns nil, msg.  Every C buffer is a userdata, so a raise frees it.
 */
#include <lauxlib.h>
#include <lua.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lprm.h"
#include "metrics.h"
#include "ts.h"

/* [-0, +1, m] reads the array at idx into a new userdata of doubles;
 * false and NaN are missing (NaN).  may raise */
static double *read_array(lua_State *L, int idx, const char *what, int *n)
{
    luaL_checktype(L, idx, LUA_TTABLE);
    lua_Integer len = luaL_len(L, idx);
    if (len > 10000000)
        luaL_error(L, "%s: too long (%d values)", what, (int)len);
    double *v = lua_newuserdatauv(L, (size_t)(len ? len : 1) * sizeof(double), 0);
    for (lua_Integer i = 1; i <= len; i++) {
        int t = lua_geti(L, idx, i);
        if (t == LUA_TNUMBER)
            v[i - 1] = lua_tonumber(L, -1);
        else if (t == LUA_TBOOLEAN && !lua_toboolean(L, -1))
            v[i - 1] = NAN;
        else
            luaL_error(L, "%s[%d] is a %s; want a number (0/0 or false when missing)", what,
                       (int)i, luaL_typename(L, -1));
        lua_pop(L, 1);
    }
    *n = (int)len;
    return v;
}

/* [-0, +1, m] an array table of v[0..n-1]; NaN becomes false.  may raise */
static void push_array(lua_State *L, const double *v, int n)
{
    lua_createtable(L, n, 0);
    for (int i = 0; i < n; i++) {
        if (isnan(v[i]))
            lua_pushboolean(L, 0);
        else
            lua_pushnumber(L, v[i]);
        lua_rawseti(L, -2, i + 1);
    }
}

/* The integer option `key` of the table at t, in lo..hi, or dflt when
 * absent.  may raise */
static int opt_int(lua_State *L, int t, const char *key, int dflt, int lo, int hi)
{
    int ty = lua_getfield(L, t, key);
    int v = dflt;
    if (ty != LUA_TNIL) {
        int ok;
        lua_Integer x = lua_tointegerx(L, -1, &ok);
        if (!ok || x < lo || x > hi)
            luaL_error(L, "option '%s' must be an integer in %d..%d", key, lo, hi);
        v = (int)x;
    }
    lua_pop(L, 1);
    return v;
}

/* [-0, +1, m] t[level] = array, for every level.  may raise */
static void push_bounds(lua_State *L, const ts_result *r, const double *base)
{
    lua_createtable(L, 0, r->nlevels);
    for (int j = 0; j < r->nlevels; j++) {
        lua_pushnumber(L, r->levels[j]); /* 80.0 becomes the integer key 80 */
        push_array(L, base + (size_t)j * (size_t)r->h, r->h);
        lua_settable(L, -3);
    }
}

/* [-0, +0, m] t.key = v for the table on top, unless v is not finite (so an
 * undefined measure reads as nil).  may raise */
static void set_num(lua_State *L, const char *key, double v)
{
    if (!isfinite(v))
        return;
    lua_pushnumber(L, v);
    lua_setfield(L, -2, key);
}

/* ts.forecast(y, {period=, h=, method=, model=, levels=, seed=, npaths=})
 *   -> {mean, lower, upper, levels, method, params, aicc, sigma2, loglik,
 *       n, filled, note} | nil, msg
 * Misuse raises; a series that cannot be forecast returns nil, msg.
 * may raise */
static int l_ts_forecast(lua_State *L)
{
    static const char *const keys[] = {"period", "h", "method", "model", "levels",
                                       "seed", "npaths", NULL};
    int n;
    lua_settop(L, 2);
    double *y = read_array(L, 1, "y", &n); /* a userdata at index 3 */
    if (!lua_isnil(L, 2))
        luaL_checktype(L, 2, LUA_TTABLE);
    else {
        lua_newtable(L);
        lua_replace(L, 2);
    }
    lprm_check_options(L, 2, "ts.forecast", keys);
    ts_options o;
    ts_options_init(&o);
    o.period = opt_int(L, 2, "period", 1, 1, 1000);
    o.h = opt_int(L, 2, "h", o.period > 1 ? 2 * o.period : 10, 1, 10000);
    o.npaths = opt_int(L, 2, "npaths", o.npaths, 100, 1000000);
    lua_getfield(L, 2, "seed");
    if (!lua_isnil(L, -1)) {
        int ok;
        lua_Integer s = lua_tointegerx(L, -1, &ok);
        if (!ok)
            luaL_error(L, "option 'seed' must be an integer");
        o.seed = (unsigned long long)s;
    }
    lua_pop(L, 1);
    lua_getfield(L, 2, "method");
    if (!lua_isnil(L, -1)) {
        const char *name = lua_tostring(L, -1);
        int mth = name ? ts_method_parse(name) : -1;
        if (mth < 0)
            luaL_error(L, "option 'method': unknown method '%s' (want auto, ets, theta, arima, "
                       "croston, sba, tsb, croston_classic, naive, snaive, drift, mean, damped, "
                       "combo)",
                       name ? name : luaL_typename(L, -1));
        o.method = (ts_method)mth;
    }
    lua_pop(L, 1);
    lua_getfield(L, 2, "model");
    if (!lua_isnil(L, -1)) {
        if (lua_type(L, -1) != LUA_TSTRING)
            luaL_error(L, "option 'model' must be a string such as \"ZZZ\" or \"MAdM\"");
        o.ets_model = lua_tostring(L, -1); /* kept alive by the options table */
        if (o.method == TS_AUTO)
            o.method = TS_ETS;
    }
    lua_pop(L, 1);
    if (lua_getfield(L, 2, "levels") != LUA_TNIL) {
        if (!lua_istable(L, -1))
            luaL_error(L, "option 'levels' must be an array of percentages");
        lua_Integer nl = luaL_len(L, -1);
        if (nl > TS_MAX_LEVELS)
            luaL_error(L, "option 'levels': at most %d levels", TS_MAX_LEVELS);
        o.nlevels = (int)nl;
        for (lua_Integer j = 1; j <= nl; j++) {
            lua_geti(L, -1, j);
            int ok;
            double v = lua_tonumberx(L, -1, &ok);
            if (!ok || !(v > 0.0 && v < 100.0))
                luaL_error(L, "option 'levels'[%d] must be a number in (0, 100)", (int)j);
            o.levels[j - 1] = v;
            lua_pop(L, 1);
        }
    }
    lua_pop(L, 1);

    ts_result r;
    prm_error err;
    if (ts_forecast(y, n, &o, &r, &err) != 0) {
        luaL_pushfail(L);
        lua_pushstring(L, err.msg);
        return 2;
    }
    /* Move the numbers into a userdata before any allocation that may raise. */
    size_t cnt = (size_t)r.h * (size_t)(1 + 2 * r.nlevels);
    double *buf = lua_newuserdatauv(L, cnt * sizeof(double), 0);
    memcpy(buf, r.mean, cnt * sizeof(double));
    ts_result_free(&r);
    r.mean = buf;
    r.lower = buf + r.h;
    r.upper = r.lower + (size_t)r.h * (size_t)r.nlevels;

    lua_createtable(L, 0, 12);
    push_array(L, r.mean, r.h);
    lua_setfield(L, -2, "mean");
    push_bounds(L, &r, r.lower);
    lua_setfield(L, -2, "lower");
    push_bounds(L, &r, r.upper);
    lua_setfield(L, -2, "upper");
    push_array(L, r.levels, r.nlevels);
    lua_setfield(L, -2, "levels");
    lua_pushstring(L, r.method);
    lua_setfield(L, -2, "method");
    lua_createtable(L, 0, r.nparams);
    for (int j = 0; j < r.nparams; j++) {
        lua_pushnumber(L, r.params[j].value);
        lua_setfield(L, -2, r.params[j].name);
    }
    lua_setfield(L, -2, "params");
    set_num(L, "aicc", r.aicc);
    set_num(L, "sigma2", r.sigma2);
    set_num(L, "loglik", r.loglik);
    lua_pushinteger(L, r.n_used);
    lua_setfield(L, -2, "n");
    lua_pushinteger(L, r.n_filled);
    lua_setfield(L, -2, "filled");
    if (r.note[0]) {
        lua_pushstring(L, r.note);
        lua_setfield(L, -2, "note");
    }
    return 1;
}

static int cmp_level(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* ts.accuracy(actual, forecast, {period=, insample=})
 *   -> {n, mape, wape, smape, mase, bias, bias_pct, mae, rmse,
 *       coverage = {[80]=..}, pinball = {[80]=..}, msis = {[80]=..}}
 * forecast is an array of point forecasts or a table with .mean and
 * optionally .lower/.upper keyed by level (a ts.forecast result).  The first
 * min(#actual, #mean) steps are scored.  Undefined measures are nil.
 * Misuse raises.  may raise */
static int l_ts_accuracy(lua_State *L)
{
    static const char *const keys[] = {"period", "insample", NULL};
    int na, nf, nin = 0;
    lua_settop(L, 3);
    double *a = read_array(L, 1, "actual", &na);
    luaL_checktype(L, 2, LUA_TTABLE);
    if (!lua_isnil(L, 3)) {
        luaL_checktype(L, 3, LUA_TTABLE);
        lprm_check_options(L, 3, "ts.accuracy", keys);
    }
    int period = 1;
    double *in = NULL;
    if (lua_istable(L, 3)) {
        period = opt_int(L, 3, "period", 1, 1, 1000);
        if (lua_getfield(L, 3, "insample") != LUA_TNIL)
            in = read_array(L, lua_gettop(L), "insample", &nin);
        else
            lua_pop(L, 1);
    }
    int fidx = 2, is_result = lua_getfield(L, 2, "mean") == LUA_TTABLE;
    if (is_result)
        fidx = lua_gettop(L);
    double *f = read_array(L, fidx, "forecast.mean", &nf);
    int h = na < nf ? na : nf;
    if (h < 1)
        luaL_error(L, "accuracy: nothing to score (%d actuals, %d forecasts)", na, nf);

    metrics_interval iv[METRICS_MAX_LEVELS];
    double lv[METRICS_MAX_LEVELS];
    int niv = 0;
    if (is_result && lua_getfield(L, 2, "lower") == LUA_TTABLE) {
        int lo = lua_gettop(L);
        lua_getfield(L, 2, "upper");
        int up = lua_gettop(L);
        if (!lua_istable(L, up))
            luaL_error(L, "accuracy: forecast.lower given without forecast.upper");
        lua_pushnil(L);
        while (lua_next(L, lo)) {
            lua_pop(L, 1);
            if (!lua_isnumber(L, -1) || niv == METRICS_MAX_LEVELS)
                luaL_error(L, "accuracy: forecast.lower must map at most %d levels to arrays",
                           METRICS_MAX_LEVELS);
            lv[niv++] = lua_tonumber(L, -1);
        }
        qsort(lv, (size_t)niv, sizeof *lv, cmp_level);
        for (int j = 0; j < niv; j++) {
            int nl, nu;
            lua_pushnumber(L, lv[j]);
            lua_gettable(L, lo);
            double *l = read_array(L, lua_gettop(L), "forecast.lower[level]", &nl);
            lua_pushnumber(L, lv[j]);
            lua_gettable(L, up);
            double *u = read_array(L, lua_gettop(L), "forecast.upper[level]", &nu);
            if (nl < h || nu < h)
                luaL_error(L, "accuracy: the %g%% bounds have fewer than %d values", lv[j], h);
            iv[j].level = lv[j];
            iv[j].lower = l;
            iv[j].upper = u;
        }
    }
    metrics_result m;
    prm_error err;
    if (metrics_compute(a, f, h, in, nin, period, iv, niv, &m, &err) != 0)
        luaL_error(L, "accuracy: %s", err.msg);
    lua_createtable(L, 0, 12);
    lua_pushinteger(L, m.n);
    lua_setfield(L, -2, "n");
    set_num(L, "mape", m.mape);
    set_num(L, "wape", m.wape);
    set_num(L, "smape", m.smape);
    set_num(L, "mase", m.mase);
    set_num(L, "bias", m.bias);
    set_num(L, "bias_pct", m.bias_pct);
    set_num(L, "mae", m.mae);
    set_num(L, "rmse", m.rmse);
    if (m.nlevels) {
        const char *names[] = {"coverage", "pinball", "msis"};
        const double *vals[] = {m.coverage, m.pinball, m.msis};
        for (int t = 0; t < 3; t++) {
            lua_createtable(L, 0, m.nlevels);
            for (int j = 0; j < m.nlevels; j++) {
                if (!isfinite(vals[t][j]))
                    continue;
                lua_pushnumber(L, m.level[j]);
                lua_pushnumber(L, vals[t][j]);
                lua_settable(L, -3);
            }
            lua_setfield(L, -2, names[t]);
        }
    }
    return 1;
}

static const luaL_Reg ts_funcs[] = {
    {"forecast", l_ts_forecast},
    {"accuracy", l_ts_accuracy},
    {NULL, NULL}};

int luaopen_prm_ts(lua_State *L)
{
    luaL_newlib(L, ts_funcs);
    return 1;
}
