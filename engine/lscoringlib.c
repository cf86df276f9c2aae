/* lscoringlib.c - `prm.scoring`: train, score and explain from Lua jobs.
 *
 *   local scoring = require "prm.scoring"
 *   local t = scoring.train{ as_of = "2026-11-20", kind = "auto" }
 *   print(t.best.kind, t.best.eval_logloss, t.partner_brier)
 *   local s = scoring.score{ }                 -- the active model, as of the last observation
 *   print(s.run_id, s.deals, s.flagged)
 *
 * Misuse (unknown option) raises; an operational failure (no history, no
 * active model) returns nil, msg.
 */
#include <lauxlib.h>
#include <lua.h>
#include <math.h>
#include <string.h>

#include "lprm.h"
#include "sandbox.h"
#include "scoring.h"

static struct store *db_of(lua_State *L)
{
    sandbox_ctx *c = sandbox_ctx_of(L);
    if (!c->db) luaL_error(L, "no store is open in this context");
    return c->db;
}

static void setnum(lua_State *L, const char *k, double v)
{
    if (v == v) lua_pushnumber(L, v);
    else lua_pushnil(L);
    lua_setfield(L, -2, k);
}

/* [-0, +1, m] bins as { {lo=, hi=, n=, mean_p=, mean_y=}, ... } */
static void push_bins(lua_State *L, const cls_bin *b, int n)
{
    lua_createtable(L, n, 0);
    for (int i = 0; i < n; i++) {
        lua_createtable(L, 0, 5);
        setnum(L, "lo", b[i].lo);
        setnum(L, "hi", b[i].hi);
        lua_pushinteger(L, (lua_Integer)b[i].count);
        lua_setfield(L, -2, "n");
        setnum(L, "mean_p", b[i].count ? b[i].mean_p : NAN);
        setnum(L, "mean_y", b[i].count ? b[i].mean_y : NAN);
        lua_rawseti(L, -2, i + 1);
    }
}

static void check_keys(lua_State *L, int idx, const char *const *allowed, const char *fn)
{
    if (lua_isnoneornil(L, idx)) return;
    luaL_checktype(L, idx, LUA_TTABLE);
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "?";
        int ok = 0;
        for (const char *const *a = allowed; *a; a++) ok |= strcmp(*a, k) == 0;
        if (!ok) luaL_error(L, "%s: unknown option '%s'", fn, k);
        lua_pop(L, 1);
    }
}

static const char *opt_str(lua_State *L, int idx, const char *k, const char *def)
{
    if (lua_isnoneornil(L, idx)) return def;
    lua_getfield(L, idx, k);
    const char *s = lua_isnil(L, -1) ? def : luaL_checkstring(L, -1);
    lua_pop(L, 1);    /* the option table keeps the string alive */
    return s;
}

static lua_Integer opt_int(lua_State *L, int idx, const char *k, lua_Integer def)
{
    if (lua_isnoneornil(L, idx)) return def;
    lua_getfield(L, idx, k);
    lua_Integer v = lua_isnil(L, -1) ? def : luaL_checkinteger(L, -1);
    lua_pop(L, 1);
    return v;
}

/* scoring.train{as_of=, kind=, train_quarters=, step_days=, activate=, force_activate=}
 *   -> result | nil, msg */
static int l_scoring_train(lua_State *L)
{
    static const char *const keys[] = { "as_of", "kind", "train_quarters", "step_days",
                                        "activate", "force_activate", NULL };
    check_keys(L, 1, keys, "scoring.train");
    train_opts o;
    train_opts_init(&o);
    o.as_of = opt_str(L, 1, "as_of", NULL);
    o.kind = opt_str(L, 1, "kind", "auto");
    o.train_quarters = (int)opt_int(L, 1, "train_quarters", o.train_quarters);
    o.step_days = (int)opt_int(L, 1, "step_days", o.step_days);
    if (!lua_isnoneornil(L, 1)) {
        lua_getfield(L, 1, "activate");
        if (!lua_isnil(L, -1)) o.activate = lua_toboolean(L, -1);
        lua_pop(L, 1);
        lua_getfield(L, 1, "force_activate");
        o.force_activate = lua_toboolean(L, -1);
        lua_pop(L, 1);
    }
    luaL_argcheck(L, o.train_quarters >= 1 && o.train_quarters <= 40, 1, "train_quarters must be 1..40");
    luaL_argcheck(L, o.step_days >= 1 && o.step_days <= 92, 1, "step_days must be 1..92");
    train_result r;
    prm_error err;
    if (scoring_train(db_of(L), &o, &r, &err) < 0) {
        luaL_pushfail(L);
        lua_pushstring(L, err.msg);
        return 2;
    }
    lua_newtable(L);
    lua_pushstring(L, r.as_of); lua_setfield(L, -2, "as_of");
    lua_pushstring(L, r.train_from); lua_setfield(L, -2, "train_from");
    lua_pushstring(L, r.calib_from); lua_setfield(L, -2, "calib_from");
    lua_pushstring(L, r.eval_from); lua_setfield(L, -2, "eval_from");
    lua_pushstring(L, r.eval_to); lua_setfield(L, -2, "eval_to");
    lua_pushinteger(L, (lua_Integer)r.n_fit); lua_setfield(L, -2, "n_fit");
    lua_pushinteger(L, (lua_Integer)r.n_calib); lua_setfield(L, -2, "n_calib");
    lua_pushinteger(L, (lua_Integer)r.n_eval); lua_setfield(L, -2, "n_eval");
    lua_pushinteger(L, (lua_Integer)r.closed_deals); lua_setfield(L, -2, "closed_deals");
    lua_pushboolean(L, r.cold_start); lua_setfield(L, -2, "cold_start");
    lua_pushstring(L, r.data_hash); lua_setfield(L, -2, "data_hash");
    lua_pushboolean(L, r.activated); lua_setfield(L, -2, "activated");
    if (r.kept_model_id > 0) {
        lua_pushinteger(L, (lua_Integer)r.kept_model_id); lua_setfield(L, -2, "kept_model_id");
        setnum(L, "kept_logloss", r.kept_logloss);
    }
    setnum(L, "partner_brier", r.partner_brier);
    setnum(L, "partner_logloss", r.partner_logloss);
    setnum(L, "partner_auc", r.partner_auc);
    push_bins(L, r.partner_rel, TRAIN_REL_BINS);
    lua_setfield(L, -2, "partner_reliability");
    lua_createtable(L, r.ncand, 0);
    for (int i = 0; i < r.ncand; i++) {
        lua_newtable(L);
        lua_pushstring(L, r.cand[i].kind); lua_setfield(L, -2, "kind");
        lua_pushinteger(L, r.cand[i].model_id); lua_setfield(L, -2, "model_id");
        setnum(L, "eval_auc", r.cand[i].auc);
        setnum(L, "eval_logloss", r.cand[i].logloss);
        setnum(L, "eval_brier", r.cand[i].brier);
        setnum(L, "eval_ece", r.cand[i].ece);
        push_bins(L, r.cand[i].rel, TRAIN_REL_BINS);
        lua_setfield(L, -2, "reliability");
        if (i == r.best) {
            lua_pushvalue(L, -1);
            lua_setfield(L, -4, "best");
        }
        lua_rawseti(L, -2, i + 1);
    }
    lua_setfield(L, -2, "candidates");
    return 1;
}

/* scoring.score{as_of=, model_id=, flags=true} -> result | nil, msg */
static int l_scoring_score(lua_State *L)
{
    static const char *const keys[] = { "as_of", "model_id", "flags", NULL };
    check_keys(L, 1, keys, "scoring.score");
    score_opts o;
    score_opts_init(&o);
    o.as_of = opt_str(L, 1, "as_of", NULL);
    o.model_id = opt_int(L, 1, "model_id", 0);
    int want_flags = 1;
    if (!lua_isnoneornil(L, 1)) {
        lua_getfield(L, 1, "flags");
        if (!lua_isnil(L, -1)) want_flags = lua_toboolean(L, -1);
        lua_pop(L, 1);
    }
    prm_error err;
    void *ud = NULL;
    if (want_flags) {
        ud = scoring_rules_open(sandbox_ctx_of(L)->root, &err);
        if (!ud) {
            luaL_pushfail(L);
            lua_pushfstring(L, "risk rules: %s", err.msg);
            return 2;
        }
        o.flags = scoring_rules_flags;
        o.flags_ud = ud;
    }
    score_result r;
    int rc = scoring_score(db_of(L), &o, &r, &err);
    if (ud) scoring_rules_close(ud);
    if (rc < 0) {
        luaL_pushfail(L);
        lua_pushstring(L, err.msg);
        return 2;
    }
    lua_newtable(L);
    lua_pushinteger(L, r.run_id); lua_setfield(L, -2, "run_id");
    lua_pushinteger(L, r.model_id); lua_setfield(L, -2, "model_id");
    lua_pushstring(L, r.model_kind); lua_setfield(L, -2, "model_kind");
    lua_pushstring(L, r.as_of); lua_setfield(L, -2, "as_of");
    lua_pushinteger(L, (lua_Integer)r.deals); lua_setfield(L, -2, "deals");
    lua_pushinteger(L, (lua_Integer)r.flagged); lua_setfield(L, -2, "flagged");
    setnum(L, "mean_probability", r.mean_p);
    setnum(L, "seconds_features", r.seconds_features);
    setnum(L, "seconds_model", r.seconds_model);
    setnum(L, "seconds_store", r.seconds_store);
    return 1;
}

int luaopen_prm_scoring(lua_State *L)
{
    static const luaL_Reg fns[] = {
        { "train", l_scoring_train }, { "score", l_scoring_score }, { NULL, NULL },
    };
    luaL_newlib(L, fns);
    return 1;
}
