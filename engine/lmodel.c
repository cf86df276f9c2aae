/* lmodel.c - the prm.model Lua module: deal-scoring models (model.h).
 *
 *   local model = require "prm.model"
 *   local m <close> = model.fit{
 *     kind = "gbdt",                          -- "logistic" | "gbdt" | "baserate"
 *     x = { amount = {1200, 300, 0/0}, tier = {"gold", "silver", "gold"} },
 *     y = { 1, 0, 0 },
 *     categorical = { "tier" },
 *     params = { learning_rate = 0.05 },
 *   }
 *   local p = m:predict(x)                    -- { 0.71, 0.12, 0.33 }
 *   local e = m:explain(x, 1)                 -- e.drivers[1].feature, .contribution
 *   local s = m:save()                        -- text; model.load(s) gives it back
 *
 * Columns are arrays of the same length (that of y when fitting). Numeric
 * values are numbers (booleans count 0/1); nil in the middle or 0/0 anywhere
 * is missing (a trailing nil shortens the column as # sees it, so use 0/0
 * there). Categorical values are strings, or numbers taken as labels (3 and
 * 3.0 are the label "3"); nil is missing. Columns are sorted by name, so the model does not depend on the
 * order pairs() visits them. Every C buffer lives in a userdata anchored on
 * the stack, so a raise anywhere frees everything through the GC.
 */
#include "clsmetrics.h"
#include "lprm.h"
#include "model.h"

#include <lauxlib.h>
#include <lua.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MODEL_MT "prm.model"
#define BUF_MT "prm.model.buf"

typedef struct lmodel {
    model *m;
} lmodel;

/* [-0, +0, m] a block of zeroed memory owned by the holder table at `holder`.
 * may raise */
static void *hold(lua_State *L, int holder, size_t size)
{
    void *p = lua_newuserdatauv(L, size ? size : 1, 0);
    memset(p, 0, size ? size : 1);
    lua_rawseti(L, holder, (lua_Integer)lua_rawlen(L, holder) + 1);
    return p;
}

typedef struct colspec {
    const char *name;
    int is_cat;
} colspec;

static int cmp_spec(const void *a, const void *b)
{
    return strcmp(((const colspec *)a)->name, ((const colspec *)b)->name);
}

/* Reads column `spec` (its table at stack index t) into c. n rows.
 * may raise */
static void read_column(lua_State *L, int holder, int t, size_t n, const colspec *spec, model_column *c)
{
    c->name = spec->name;
    if (!spec->is_cat) {
        double *v = hold(L, holder, n * sizeof *v);
        for (size_t i = 0; i < n; i++) {
            int ty = lua_rawgeti(L, t, (lua_Integer)i + 1);
            if (ty == LUA_TNIL) v[i] = NAN;
            else if (ty == LUA_TNUMBER) v[i] = lua_tonumber(L, -1);
            else if (ty == LUA_TBOOLEAN) v[i] = lua_toboolean(L, -1);
            else luaL_error(L, "column '%s' row %d: expected a number, got %s (list the column in categorical?)",
                            spec->name, (int)i + 1, luaL_typename(L, -1));
            if (isinf(v[i])) luaL_error(L, "column '%s' row %d is infinite", spec->name, (int)i + 1);
            lua_pop(L, 1);
        }
        c->type = MODEL_NUMERIC;
        c->num = v;
        return;
    }
    int32_t *code = hold(L, holder, n * sizeof *code);
    lua_newtable(L);                       /* label -> code */
    int labels = lua_gettop(L);
    size_t nv = 0;
    for (size_t i = 0; i < n; i++) {
        int ty = lua_rawgeti(L, t, (lua_Integer)i + 1);
        if (ty == LUA_TNIL) {
            code[i] = -1;
            lua_pop(L, 1);
            continue;
        }
        if (ty == LUA_TNUMBER) {
            /* a number is its label; 3 and 3.0 are the same label, so that
             * integers from the store and floats from JSON agree */
            lua_Number v = lua_tonumber(L, -1);
            if (!lua_isinteger(L, -1) && v == floor(v) && fabs(v) < 9007199254740992.0)
                lua_pushfstring(L, "%I", (LUA_INTEGER)v);
            else
                lua_pushstring(L, lua_tostring(L, -1));
            lua_remove(L, -2);
        } else if (ty == LUA_TBOOLEAN) {
            lua_pushstring(L, lua_toboolean(L, -1) ? "true" : "false");
            lua_remove(L, -2);
        } else if (ty != LUA_TSTRING) {
            luaL_error(L, "column '%s' row %d: expected a label, got %s", spec->name, (int)i + 1,
                       luaL_typename(L, -1));
        }
        lua_pushvalue(L, -1);
        if (lua_rawget(L, labels) == LUA_TNUMBER) {
            code[i] = (int32_t)lua_tointeger(L, -1);
            lua_pop(L, 2);
        } else {
            lua_pop(L, 1);
            code[i] = (int32_t)nv;
            lua_pushinteger(L, (lua_Integer)nv++);
            lua_rawset(L, labels);
        }
    }
    const char **vocab = hold(L, holder, nv * sizeof *vocab);
    lua_pushnil(L);
    while (lua_next(L, labels)) {          /* the labels stay alive in `labels` */
        vocab[lua_tointeger(L, -1)] = lua_tostring(L, -2);
        lua_pop(L, 1);
    }
    lua_rawseti(L, holder, (lua_Integer)lua_rawlen(L, holder) + 1);
    c->type = MODEL_CATEGORICAL;
    c->cat = code;
    c->vocab = vocab;
    c->n_vocab = nv;
}

static size_t col_len(lua_State *L, int x, const char *name)
{
    if (lua_getfield(L, x, name) != LUA_TTABLE)
        luaL_error(L, "x.%s must be a table (a column), got %s", name, luaL_typename(L, -1));
    size_t len = (size_t)lua_rawlen(L, -1);
    lua_pop(L, 1);
    return len;
}

/* Builds d from the columns `specs` of table x (stack index). n = (size_t)-1
 * means "the common length of the columns". may raise */
static void read_data(lua_State *L, int holder, int x, colspec *specs, size_t nc, size_t n, model_data *d)
{
    if (n == (size_t)-1) {
        n = 0;
        for (size_t j = 0; j < nc; j++) {
            size_t len = col_len(L, x, specs[j].name);
            if (j == 0) n = len;
            else if (len != n)
                luaL_error(L, "columns differ in length: '%s' has %d values, '%s' has %d",
                           specs[0].name, (int)n, specs[j].name, (int)len);
        }
    }
    model_column *cols = hold(L, holder, nc * sizeof *cols);
    for (size_t j = 0; j < nc; j++) {
        size_t len = col_len(L, x, specs[j].name);
        if (len != n)
            luaL_error(L, "column '%s' has %d values, y has %d", specs[j].name, (int)len, (int)n);
        lua_getfield(L, x, specs[j].name);
        read_column(L, holder, lua_gettop(L), n, &specs[j], &cols[j]);
        lua_pop(L, 1);
    }
    d->n_rows = n;
    d->n_cols = nc;
    d->cols = cols;
}

/* The columns a model needs, from table x. may raise */
static void read_for_model(lua_State *L, int holder, int x, const model *m, model_data *d)
{
    luaL_checktype(L, x, LUA_TTABLE);
    size_t nc = model_n_features(m);
    colspec *specs = hold(L, holder, nc * sizeof *specs);
    for (size_t j = 0; j < nc; j++) {
        specs[j].name = model_feature_name(m, j);
        specs[j].is_cat = model_feature_type(m, j) == MODEL_CATEGORICAL;
        if (lua_getfield(L, x, specs[j].name) == LUA_TNIL)
            luaL_error(L, "missing column '%s'", specs[j].name);
        lua_pop(L, 1);
    }
    read_data(L, holder, x, specs, nc, (size_t)-1, d);
}

/* may raise */
static model *check_model(lua_State *L, int i)
{
    lmodel *u = luaL_checkudata(L, i, MODEL_MT);
    if (!u->m) luaL_error(L, "attempt to use a closed model");
    return u->m;
}

/* [-0, +1, m] a new, empty model userdata; made before fitting or loading
 * so that a memory error raised while pushing cannot leak the model.
 * may raise */
static lmodel *new_model(lua_State *L)
{
    lmodel *u = lua_newuserdatauv(L, sizeof *u, 0);
    u->m = NULL;
    luaL_setmetatable(L, MODEL_MT);
    return u;
}

static const char *const fit_keys[] = { "kind", "x", "y", "categorical", "params", NULL };

/* model.fit{kind=, x=, y=, categorical=, params=} -> model; raises on bad input */
static int l_model_fit(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lprm_check_options(L, 1, "model.fit", fit_keys);
    lua_getfield(L, 1, "kind");
    const char *kname = lua_isnil(L, -1) ? "logistic" : lua_tostring(L, -1);
    int kind = kname && lua_type(L, -1) != LUA_TNUMBER ? model_kind_parse(kname) : -1;
    if (kind < 0)
        return luaL_error(L, "model.fit: kind must be \"logistic\", \"gbdt\" or \"baserate\"");
    lua_pop(L, 1);
    lua_newtable(L);
    int holder = lua_gettop(L);

    model_params p;
    prm_error err;
    model_params_init(&p, (model_kind)kind);
    if (lua_getfield(L, 1, "params") != LUA_TNIL) {
        luaL_argexpected(L, lua_istable(L, -1), 1, "params must be a table");
        int pt = lua_gettop(L);
        lua_pushnil(L);
        while (lua_next(L, pt)) {
            if (lua_type(L, -2) != LUA_TSTRING) return luaL_error(L, "model.fit: params keys must be names");
            const char *key = lua_tostring(L, -2);
            double v;
            if (lua_type(L, -1) == LUA_TBOOLEAN) v = lua_toboolean(L, -1);
            else if (lua_type(L, -1) == LUA_TNUMBER) v = lua_tonumber(L, -1);
            else return luaL_error(L, "model.fit: parameter '%s' must be a number", key);
            if (model_params_set(&p, key, v, &err) < 0) return luaL_error(L, "model.fit: %s", err.msg);
            lua_pop(L, 1);
        }
    }
    lua_pop(L, 1);

    if (lua_getfield(L, 1, "y") != LUA_TTABLE) return luaL_error(L, "model.fit: y must be an array of 0/1");
    size_t n = (size_t)lua_rawlen(L, -1);
    if (n == 0) return luaL_error(L, "model.fit: no rows (y is empty)");
    double *y = hold(L, holder, n * sizeof *y);
    for (size_t i = 0; i < n; i++) {
        int ty = lua_rawgeti(L, -1, (lua_Integer)i + 1);
        if (ty == LUA_TBOOLEAN) y[i] = lua_toboolean(L, -1);
        else if (ty == LUA_TNUMBER && (lua_tonumber(L, -1) == 0 || lua_tonumber(L, -1) == 1)) y[i] = lua_tonumber(L, -1);
        else return luaL_error(L, "model.fit: y[%d] is %s; y must be 0 or 1", (int)i + 1, luaL_tolstring(L, -1, NULL));
        lua_pop(L, 1);
    }
    lua_pop(L, 1);

    if (lua_getfield(L, 1, "x") != LUA_TTABLE) return luaL_error(L, "model.fit: x must be a table of columns");
    int x = lua_gettop(L);
    size_t nc = 0;
    lua_pushnil(L);
    while (lua_next(L, x)) {
        if (lua_type(L, -2) != LUA_TSTRING) return luaL_error(L, "model.fit: x keys must be column names");
        nc++;
        lua_pop(L, 1);
    }
    if (nc == 0) return luaL_error(L, "model.fit: x has no columns");
    colspec *specs = hold(L, holder, nc * sizeof *specs);
    nc = 0;
    lua_pushnil(L);
    while (lua_next(L, x)) {
        specs[nc++].name = lua_tostring(L, -2);   /* keys of x stay alive */
        lua_pop(L, 1);
    }
    qsort(specs, nc, sizeof *specs, cmp_spec);
    size_t order_key = 0;
    if (lua_getfield(L, 1, "categorical") != LUA_TNIL) {
        if (!lua_istable(L, -1)) return luaL_error(L, "model.fit: categorical must be a list of column names");
        size_t k = (size_t)lua_rawlen(L, -1);
        for (size_t i = 1; i <= k; i++) {
            lua_rawgeti(L, -1, (lua_Integer)i);
            const char *name = lua_tostring(L, -1);
            size_t j = 0;
            while (j < nc && (!name || strcmp(specs[j].name, name) != 0)) j++;
            if (j == nc) return luaL_error(L, "model.fit: categorical column '%s' is not in x", name ? name : "?");
            specs[j].is_cat = 1;
            /* baserate: the keys go outer first, in the order listed */
            if (kind == MODEL_BASERATE && j >= order_key) {
                colspec t = specs[order_key];
                specs[order_key] = specs[j];
                specs[j] = t;
                order_key++;
            }
            lua_pop(L, 1);
        }
    }
    lua_pop(L, 1);
    model_data d;
    read_data(L, holder, x, specs, nc, n, &d);
    lmodel *u = new_model(L);
    if (model_fit((model_kind)kind, &d, y, &p, &u->m, &err) < 0) return luaL_error(L, "%s", err.msg);
    return 1;
}

/* m:predict(x) -> { p1, p2, ... }; raises on a missing or mistyped column */
static int l_model_predict(lua_State *L)
{
    model *m = check_model(L, 1);
    lua_newtable(L);
    int holder = lua_gettop(L);
    model_data d;
    read_for_model(L, holder, 2, m, &d);
    double *p = hold(L, holder, d.n_rows * sizeof *p);
    prm_error err;
    if (model_predict(m, &d, p, &err) < 0) return luaL_error(L, "%s", err.msg);
    lua_createtable(L, (int)d.n_rows, 0);
    for (size_t i = 0; i < d.n_rows; i++) {
        lua_pushnumber(L, p[i]);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    return 1;
}

/* [-0, +1, m] may raise */
static void push_driver(lua_State *L, const model_driver *dr)
{
    lua_createtable(L, 0, 3);
    lua_pushstring(L, dr->feature);
    lua_setfield(L, -2, "feature");
    lua_pushnumber(L, dr->contribution);
    lua_setfield(L, -2, "contribution");
    if (dr->level) {
        lua_pushstring(L, dr->level);
        lua_setfield(L, -2, "value");
    } else if (!isnan(dr->value)) {
        lua_pushnumber(L, dr->value);
        lua_setfield(L, -2, "value");
    }
}

/* m:explain(x, i [, top]) -> { base=, logit=, p=, drivers={...}, positive={...},
 * negative={...} }: drivers sorted by |contribution| (log-odds), positive the
 * ones above zero (largest first), negative below zero (most negative
 * first), each cut to `top` (default: all). Raises on a bad row or column. */
static int l_model_explain(lua_State *L)
{
    model *m = check_model(L, 1);
    lua_Integer row = luaL_checkinteger(L, 3);
    lua_Integer top = luaL_optinteger(L, 4, (lua_Integer)model_n_features(m));
    luaL_argcheck(L, top >= 0, 4, "must be >= 0");
    lua_newtable(L);
    int holder = lua_gettop(L);
    model_data d;
    read_for_model(L, holder, 2, m, &d);
    luaL_argcheck(L, row >= 1 && (size_t)row <= d.n_rows, 3, "row out of range");
    size_t nf = model_n_features(m);
    model_driver *dr = hold(L, holder, nf * sizeof *dr);
    double base, sum = 0;
    prm_error err;
    int k = model_explain(m, &d, (size_t)row - 1, dr, nf, &base, &err);
    if (k < 0) return luaL_error(L, "%s", err.msg);
    lua_createtable(L, 0, 6);
    lua_pushnumber(L, base);
    lua_setfield(L, -2, "base");
    for (int i = 0; i < k; i++) sum += dr[i].contribution;
    lua_pushnumber(L, base + sum);
    lua_setfield(L, -2, "logit");
    lua_pushnumber(L, 1 / (1 + exp(-(base + sum))));
    lua_setfield(L, -2, "p");
    lua_createtable(L, k, 0);
    for (int i = 0; i < k && i < top; i++) {
        push_driver(L, &dr[i]);
        lua_rawseti(L, -2, i + 1);
    }
    lua_setfield(L, -2, "drivers");
    for (int sign = 1; sign >= -1; sign -= 2) {
        lua_newtable(L);
        int c = 0;
        for (int i = 0; i < k && c < top; i++)   /* sorted by |c|, so by c within a sign */
            if (sign * dr[i].contribution > 0) {
                push_driver(L, &dr[i]);
                lua_rawseti(L, -2, ++c);
            }
        lua_setfield(L, -2, sign > 0 ? "positive" : "negative");
    }
    return 1;
}

/* m:calibrate(x, y [, "isotonic" | "platt" | "none"]) -> m; fits on held-out
 * (later) rows. Raises on bad input. */
static int l_model_calibrate(lua_State *L)
{
    model *m = check_model(L, 1);
    static const char *const methods[] = { "none", "isotonic", "platt", NULL };
    int method = luaL_checkoption(L, 4, "isotonic", methods);
    luaL_checktype(L, 3, LUA_TTABLE);
    lua_newtable(L);
    int holder = lua_gettop(L);
    model_data d;
    read_for_model(L, holder, 2, m, &d);
    double *y = hold(L, holder, d.n_rows * sizeof *y);
    if ((size_t)lua_rawlen(L, 3) != d.n_rows)
        return luaL_error(L, "calibrate: y has %d values, x has %d rows", (int)lua_rawlen(L, 3), (int)d.n_rows);
    for (size_t i = 0; i < d.n_rows; i++) {
        lua_rawgeti(L, 3, (lua_Integer)i + 1);
        y[i] = lua_isboolean(L, -1) ? lua_toboolean(L, -1) : lua_tonumber(L, -1);
        lua_pop(L, 1);
    }
    prm_error err;
    if (model_calibrate(m, &d, y, (model_calib_kind)method, &err) < 0) return luaL_error(L, "%s", err.msg);
    lua_settop(L, 1);
    return 1;
}

static int l_buf_gc(lua_State *L)
{
    char **box = lua_touserdata(L, 1);
    free(*box);
    *box = NULL;
    return 0;
}

/* m:save() -> string */
static int l_model_save(lua_State *L)
{
    model *m = check_model(L, 1);
    /* the C buffer sits in a box with a __gc, so a raise while pushing the
     * string cannot leak it */
    char **box = lua_newuserdatauv(L, sizeof *box, 0);
    *box = NULL;
    luaL_setmetatable(L, BUF_MT);
    size_t len;
    prm_error err;
    if (model_save(m, box, &len, &err) < 0) return luaL_error(L, "%s", err.msg);
    lua_pushlstring(L, *box, len);
    free(*box);
    *box = NULL;
    return 1;
}

/* model.load(text) -> model | nil, err */
static int l_model_load(lua_State *L)
{
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    lmodel *u = new_model(L);
    prm_error err;
    if (model_load(s, len, &u->m, &err) < 0) {
        lua_pushnil(L);
        lua_pushstring(L, err.msg);
        return 2;
    }
    return 1;
}

/* m:info() -> { kind=, features={ {name=, type=}... }, n_iter=, calibration= } */
static int l_model_info(lua_State *L)
{
    model *m = check_model(L, 1);
    lua_createtable(L, 0, 4);
    lua_pushstring(L, model_kind_name(model_get_kind(m)));
    lua_setfield(L, -2, "kind");
    lua_createtable(L, (int)model_n_features(m), 0);
    for (size_t j = 0; j < model_n_features(m); j++) {
        lua_createtable(L, 0, 2);
        lua_pushstring(L, model_feature_name(m, j));
        lua_setfield(L, -2, "name");
        lua_pushstring(L, model_feature_type(m, j) == MODEL_NUMERIC ? "numeric" : "categorical");
        lua_setfield(L, -2, "type");
        lua_rawseti(L, -2, (lua_Integer)j + 1);
    }
    lua_setfield(L, -2, "features");
    lua_pushinteger(L, model_n_iter(m));
    lua_setfield(L, -2, "n_iter");
    static const char *const cal[] = { "none", "isotonic", "platt" };
    lua_pushstring(L, cal[model_calib_get_kind(m)]);
    lua_setfield(L, -2, "calibration");
    return 1;
}

/* m:coefs() -> { intercept=, terms={ {name=, coef=}... } }; raises unless logistic */
static int l_model_coefs(lua_State *L)
{
    model *m = check_model(L, 1);
    double b;
    const double *w;
    const char *const *names;
    size_t nt;
    prm_error err;
    if (model_coefs(m, &b, &w, &names, &nt, &err) < 0) return luaL_error(L, "%s", err.msg);
    lua_createtable(L, 0, 2);
    lua_pushnumber(L, b);
    lua_setfield(L, -2, "intercept");
    lua_createtable(L, (int)nt, 0);
    for (size_t t = 0; t < nt; t++) {
        lua_createtable(L, 0, 2);
        lua_pushstring(L, names[t]);
        lua_setfield(L, -2, "name");
        lua_pushnumber(L, w[t]);
        lua_setfield(L, -2, "coef");
        lua_rawseti(L, -2, (lua_Integer)t + 1);
    }
    lua_setfield(L, -2, "terms");
    return 1;
}

static int l_model_close(lua_State *L)
{
    lmodel *u = luaL_checkudata(L, 1, MODEL_MT);
    model_free(u->m);
    u->m = NULL;
    return 0;
}

static int l_model_tostring(lua_State *L)
{
    lmodel *u = luaL_checkudata(L, 1, MODEL_MT);
    if (u->m) lua_pushfstring(L, "prm.model (%s, %d features)", model_kind_name(model_get_kind(u->m)),
                              (int)model_n_features(u->m));
    else lua_pushliteral(L, "prm.model (closed)");
    return 1;
}

/* model.metrics(p, y) -> { auc=, logloss=, brier=, n= }; raises on bad input */
static int l_model_metrics(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    luaL_checktype(L, 2, LUA_TTABLE);
    size_t n = (size_t)lua_rawlen(L, 1);
    luaL_argcheck(L, (size_t)lua_rawlen(L, 2) == n, 2, "p and y differ in length");
    double *p = lua_newuserdatauv(L, (n ? n : 1) * 2 * sizeof *p, 0), *y = p + n;
    for (size_t i = 0; i < n; i++) {
        lua_rawgeti(L, 1, (lua_Integer)i + 1);
        lua_rawgeti(L, 2, (lua_Integer)i + 1);
        p[i] = lua_tonumber(L, -2);
        y[i] = lua_isboolean(L, -1) ? lua_toboolean(L, -1) : lua_tonumber(L, -1);
        if (y[i] != 0 && y[i] != 1) return luaL_error(L, "model.metrics: y[%d] must be 0 or 1", (int)i + 1);
        if (!(p[i] >= 0 && p[i] <= 1)) return luaL_error(L, "model.metrics: p[%d] must be in [0, 1]", (int)i + 1);
        lua_pop(L, 2);
    }
    lua_createtable(L, 0, 4);
    lua_pushnumber(L, cls_auc(p, y, n));
    lua_setfield(L, -2, "auc");
    lua_pushnumber(L, cls_logloss(p, y, n));
    lua_setfield(L, -2, "logloss");
    lua_pushnumber(L, cls_brier(p, y, n));
    lua_setfield(L, -2, "brier");
    lua_pushinteger(L, (lua_Integer)n);
    lua_setfield(L, -2, "n");
    return 1;
}

static const luaL_Reg model_methods[] = {
    { "predict", l_model_predict },
    { "explain", l_model_explain },
    { "calibrate", l_model_calibrate },
    { "save", l_model_save },
    { "info", l_model_info },
    { "coefs", l_model_coefs },
    { "close", l_model_close },
    { NULL, NULL }
};

static const luaL_Reg model_meta[] = {
    { "__gc", l_model_close },
    { "__close", l_model_close },
    { "__tostring", l_model_tostring },
    { "__index", NULL },
    { NULL, NULL }
};

static const luaL_Reg model_funcs[] = {
    { "fit", l_model_fit },
    { "load", l_model_load },
    { "metrics", l_model_metrics },
    { NULL, NULL }
};

int luaopen_prm_model(lua_State *L)
{
    luaL_newmetatable(L, MODEL_MT);
    luaL_setfuncs(L, model_meta, 0);
    luaL_newlib(L, model_methods);
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);
    luaL_newmetatable(L, BUF_MT);
    lua_pushcfunction(L, l_buf_gc);
    lua_setfield(L, -2, "__gc");
    lua_pop(L, 1);
    luaL_newlib(L, model_funcs);
    return 1;
}
