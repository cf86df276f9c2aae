/* lscoringlib.c - `prm.scoring`: train, score and explain from Lua jobs.
 *
 *   local scoring = require "prm.scoring"
 *   local t = scoring.train{ as_of = "2026-11-20", kind = "auto" }
 *   print(t.best.kind, t.best.eval_logloss, t.partner_brier)
 *   local s = scoring.score{ }                 -- the active model, as of the last observation
 *   print(s.run_id, s.deals, s.flagged)
 *   local f = scoring.forecast{ period = "2026-Q4", by = "region,tier", sims = 5000, seed = 1 }
 *   for _, r in ipairs(f.rows) do print(r.segment, r.p10, r.p50, r.p90, r.commit) end
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
#include "forecast.h"
#include "scoring.h"
#include "timeutil.h"
#include "world.h"
#include <stdio.h>
#include <stdlib.h>

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

/* scoring.train{as_of=, kind=, train_quarters=, step_days=, label_days=, activate=} -> result | nil, msg */
static int l_scoring_train(lua_State *L)
{
    static const char *const keys[] = { "as_of", "kind", "train_quarters", "step_days",
                                        "label_days", "activate", "force_activate", NULL };
    lprm_check_options(L, 1, "scoring.train", keys);
    train_opts o;
    train_opts_init(&o);
    o.as_of = opt_str(L, 1, "as_of", NULL);
    o.kind = opt_str(L, 1, "kind", "auto");
    o.train_quarters = (int)opt_int(L, 1, "train_quarters", o.train_quarters);
    o.step_days = (int)opt_int(L, 1, "step_days", o.step_days);
    lua_Integer label_days = opt_int(L, 1, "label_days", o.label_days);
    luaL_argcheck(L, label_days >= 0 && label_days <= 3650, 1, "label_days must be 0..3650");
    o.label_days = (int)label_days;
    if (!lua_isnoneornil(L, 1)) {
        lua_getfield(L, 1, "activate");
        if (!lua_isnil(L, -1)) o.activate = lua_toboolean(L, -1);
        lua_pop(L, 1);
        lua_getfield(L, 1, "force_activate");
        if (lua_toboolean(L, -1) && o.activate) o.activate = 2;
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
    lua_pushstring(L, r.calib_to); lua_setfield(L, -2, "calib_to");
    lua_pushinteger(L, r.label_days); lua_setfield(L, -2, "label_days");
    lua_pushinteger(L, r.calib_label_days); lua_setfield(L, -2, "calib_label_days");
    lua_pushstring(L, r.eval_from); lua_setfield(L, -2, "eval_from");
    lua_pushstring(L, r.eval_to); lua_setfield(L, -2, "eval_to");
    lua_pushinteger(L, (lua_Integer)r.n_fit); lua_setfield(L, -2, "n_fit");
    lua_pushinteger(L, (lua_Integer)r.n_calib); lua_setfield(L, -2, "n_calib");
    lua_pushinteger(L, (lua_Integer)r.n_eval); lua_setfield(L, -2, "n_eval");
    lua_pushinteger(L, (lua_Integer)r.closed_deals); lua_setfield(L, -2, "closed_deals");
    lua_pushboolean(L, r.cold_start); lua_setfield(L, -2, "cold_start");
    lua_pushstring(L, r.data_hash); lua_setfield(L, -2, "data_hash");
    lua_pushboolean(L, r.activated); lua_setfield(L, -2, "activated");
    if (r.note[0]) {
        lua_pushstring(L, r.note);
        lua_setfield(L, -2, "note");
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

/* scoring.score{as_of=, model_id=, flags=true, connector="connectors/file.lua"}
 *   -> result | nil, msg
 * One score run in C: scores, drivers, risk flags and the connector's
 * write-back payloads, committed together. */
static int l_scoring_score(lua_State *L)
{
    static const char *const keys[] = { "as_of", "model_id", "flags", "connector", NULL };
    lprm_check_options(L, 1, "scoring.score", keys);
    score_opts o;
    score_opts_init(&o);
    o.as_of = opt_str(L, 1, "as_of", NULL);
    o.model_id = opt_int(L, 1, "model_id", 0);
    o.connector = opt_str(L, 1, "connector", NULL);
    o.flags = 1;
    if (!lua_isnoneornil(L, 1)) {
        lua_getfield(L, 1, "flags");
        if (!lua_isnil(L, -1)) o.flags = lua_toboolean(L, -1);
        lua_pop(L, 1);
    }
    prm_error err;
    score_result r;
    if (scoring_score(db_of(L), &o, &r, &err) < 0) {
        luaL_pushfail(L);
        lua_pushstring(L, err.msg);
        return 2;
    }
    lua_newtable(L);
    lua_pushinteger(L, r.run_id); lua_setfield(L, -2, "run_id");
    lua_pushinteger(L, r.model_id); lua_setfield(L, -2, "model_id");
    lua_pushstring(L, r.model_kind); lua_setfield(L, -2, "model_kind");
    lua_pushstring(L, r.model_version); lua_setfield(L, -2, "model_version");
    lua_pushstring(L, r.as_of); lua_setfield(L, -2, "as_of");
    lua_pushinteger(L, (lua_Integer)r.deals); lua_setfield(L, -2, "deals");
    lua_pushinteger(L, (lua_Integer)r.flagged); lua_setfield(L, -2, "flagged");
    lua_pushinteger(L, (lua_Integer)r.queued); lua_setfield(L, -2, "queued");
    lua_pushinteger(L, (lua_Integer)r.unchanged); lua_setfield(L, -2, "unchanged");
    lua_pushinteger(L, (lua_Integer)r.kept); lua_setfield(L, -2, "kept");
    lua_pushstring(L, r.target); lua_setfield(L, -2, "target");
    lua_pushinteger(L, (lua_Integer)r.rule_errors); lua_setfield(L, -2, "rule_errors");
    lua_pushinteger(L, r.rule_problems); lua_setfield(L, -2, "rule_problems");
    lua_pushinteger(L, r.rules_disabled); lua_setfield(L, -2, "rules_disabled");
    lua_pushinteger(L, (lua_Integer)r.conflicts); lua_setfield(L, -2, "conflicts");
    if (r.conflict_example[0]) {
        lua_pushstring(L, r.conflict_example);
        lua_setfield(L, -2, "conflict_example");
    }
    lua_pushstring(L, r.warnings); lua_setfield(L, -2, "warnings");
    setnum(L, "mean_probability", r.mean_p);
    setnum(L, "seconds_features", r.seconds_features);
    setnum(L, "seconds_model", r.seconds_model);
    setnum(L, "seconds_store", r.seconds_store);
    return 1;
}

/* scoring.pipeline{as_of=} -> { base = "USD", as_of = , cells = { {stage=, quarter=, deals=,
 *   amount=, no_rate=}, ... } } | nil, msg
 * The open pipeline as the world knows it at the instant (world.h): the
 * nightly summary's numbers come from the same facts as scoring. */
static int l_scoring_pipeline(lua_State *L)
{
    static const char *const keys[] = { "as_of", NULL };
    lprm_check_options(L, 1, "scoring.pipeline", keys);
    const char *as_of = opt_str(L, 1, "as_of", NULL);
    prm_error err;
    int64_t t = clock_now();
    if (as_of && clock_parse(as_of, &t, &err) < 0) return luaL_error(L, "scoring.pipeline: %s", err.msg);
    world *w;
    if (world_load(db_of(L), &w, &err) < 0) {
        luaL_pushfail(L);
        lua_pushstring(L, err.msg);
        return 2;
    }
    pipeline_cell *c;
    size_t n;
    if (world_pipeline(w, t, &c, &n, &err) < 0) {
        world_free(w);
        luaL_pushfail(L);
        lua_pushstring(L, err.msg);
        return 2;
    }
    /* Move everything into C locals before anything can raise. */
    char base[4];
    snprintf(base, sizeof base, "%s", world_base_currency(w));
    world_free(w);
    lua_createtable(L, 0, 3);
    lua_pushstring(L, base);
    lua_setfield(L, -2, "base");
    char at[21];
    instant_iso(t, at);
    lua_pushstring(L, at);
    lua_setfield(L, -2, "as_of");
    lua_createtable(L, (int)n, 0);
    for (size_t i = 0; i < n; i++) {
        lua_createtable(L, 0, 5);
        lua_pushstring(L, feat_stage_name(c[i].stage));
        lua_setfield(L, -2, "stage");
        if (c[i].fy) lua_pushfstring(L, "%d-Q%d", c[i].fy, c[i].q);
        else lua_pushliteral(L, "no date");
        lua_setfield(L, -2, "quarter");
        lua_pushinteger(L, (lua_Integer)c[i].deals);
        lua_setfield(L, -2, "deals");
        lua_pushnumber(L, c[i].amount);
        lua_setfield(L, -2, "amount");
        lua_pushinteger(L, (lua_Integer)c[i].no_rate);
        lua_setfield(L, -2, "no_rate");
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    free(c);
    lua_setfield(L, -2, "cells");
    return 1;
}

#define FORECAST_MT "prm.scoring.forecast"

static int l_forecast_gc(lua_State *L)
{
    forecast_result *r = luaL_checkudata(L, 1, FORECAST_MT);
    forecast_result_free(r);
    return 0;
}

/* scoring.forecast{period=, by= "k,k" | {"k,k", ...}, sims=, seed=, as_of=} ->
 *   { period=, as_of=, base=, sims=, open_deals=, rows = { {segment=, p10=, p50=, p90=, mean=,
 *     closed=, pipeline=, unregistered=, commit=}, ... } } | nil, msg
 * The result lives in a userdatum with __gc until it is copied, so a raise
 * while building the table leaks nothing. */
static int l_scoring_forecast(lua_State *L)
{
    static const char *const keys[] = { "period", "by", "sims", "seed", "as_of", NULL };
    lprm_check_options(L, 1, "scoring.forecast", keys);
    forecast_opts o;
    forecast_opts_init(&o);
    prm_error err;
    const char *period = opt_str(L, 1, "period", NULL);
    if (period && forecast_parse_period(period, &o.fy, &o.q, &err) < 0)
        return luaL_error(L, "scoring.forecast: %s", err.msg);
    const char *as_of = opt_str(L, 1, "as_of", NULL);
    o.as_of = clock_now();
    if (as_of && clock_parse(as_of, &o.as_of, &err) < 0) return luaL_error(L, "scoring.forecast: %s", err.msg);
    o.sims = (int)opt_int(L, 1, "sims", 10000);
    if (o.sims < 100 || o.sims > 1000000) return luaL_error(L, "scoring.forecast: sims must be in [100, 1000000]");
    o.seed = (uint64_t)opt_int(L, 1, "seed", 1);
    if (!lua_isnoneornil(L, 1)) {
        lua_getfield(L, 1, "by");
        if (lua_type(L, -1) == LUA_TSTRING) {
            if (forecast_parse_by(lua_tostring(L, -1), &o, &err) < 0)
                return luaL_error(L, "scoring.forecast: %s", err.msg);
        } else if (lua_istable(L, -1)) {
            for (lua_Integer i = 1; lua_rawgeti(L, -1, i) == LUA_TSTRING; i++) {
                if (forecast_parse_by(lua_tostring(L, -1), &o, &err) < 0)
                    return luaL_error(L, "scoring.forecast: %s", err.msg);
                lua_pop(L, 1);
            }
            lua_pop(L, 1);
        } else if (!lua_isnil(L, -1)) {
            return luaL_error(L, "scoring.forecast: by must be a string or a list of strings");
        }
        lua_pop(L, 1);
    }
    forecast_result *r = lua_newuserdatauv(L, sizeof *r, 0);
    memset(r, 0, sizeof *r);
    if (luaL_newmetatable(L, FORECAST_MT)) {
        lua_pushcfunction(L, l_forecast_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_setmetatable(L, -2);
    if (forecast_run(db_of(L), NULL, &o, r, &err) < 0) {
        luaL_pushfail(L);
        lua_pushstring(L, err.msg);
        return 2;
    }
    lua_createtable(L, 0, 6);
    lua_pushstring(L, r->period); lua_setfield(L, -2, "period");
    lua_pushstring(L, r->as_of); lua_setfield(L, -2, "as_of");
    lua_pushstring(L, r->base); lua_setfield(L, -2, "base");
    lua_pushinteger(L, r->n_sims); lua_setfield(L, -2, "sims");
    lua_pushinteger(L, (lua_Integer)r->n_open); lua_setfield(L, -2, "open_deals");
    lua_pushstring(L, r->model); lua_setfield(L, -2, "probabilities");
    lua_createtable(L, (int)r->nrows, 0);
    for (size_t i = 0; i < r->nrows; i++) {
        const fc_row *x = &r->rows[i];
        lua_createtable(L, 0, 9);
        lua_pushstring(L, x->segment); lua_setfield(L, -2, "segment");
        setnum(L, "p10", x->p10);
        setnum(L, "p50", x->p50);
        setnum(L, "p90", x->p90);
        setnum(L, "mean", x->mean);
        setnum(L, "closed", x->closed);
        setnum(L, "pipeline", x->pipeline);
        setnum(L, "unregistered", x->unregistered);
        setnum(L, "commit", x->commit);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    lua_setfield(L, -2, "rows");
    return 1;
}

int luaopen_prm_scoring(lua_State *L)
{
    static const luaL_Reg fns[] = {
        { "train", l_scoring_train }, { "score", l_scoring_score },
        { "pipeline", l_scoring_pipeline }, { "forecast", l_scoring_forecast }, { NULL, NULL },
    };
    luaL_newlib(L, fns);
    return 1;
}
