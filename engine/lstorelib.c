/* lstorelib.c - `prm.store`: the SQLite store for jobs and connectors.
 *
 *   local store = require "prm.store"
 *   local db = store.default()                 -- the engine's open store
 *   local rows = db:query("SELECT tier, count(*) AS n FROM partners GROUP BY tier")
 *   for row in db:rows("SELECT * FROM deals WHERE status = ?", "open") do ... end
 *   local ok, err = db:upsert("deal", { source = "file", external_id = "D1", ... })
 *   db:begin() ... db:commit()
 *   local db2 <close> = store.open("/tmp/other.db")
 *
 * SQL text comes from the (trusted) job script; values are always bound.
 * Misuse raises; a record the store refuses returns nil, msg.
 */
#include <lauxlib.h>
#include <lua.h>
#include <stdlib.h>
#include <string.h>

#include "lprm.h"
#include "outbox.h"
#include "sandbox.h"
#include "store.h"

#define DB_MT "prm.store.db"

typedef struct ldb {
    store *s;
    int owned;                 /* store.open: closed by __gc/__close */
} ldb;

static ldb *check_db(lua_State *L)
{
    ldb *d = luaL_checkudata(L, 1, DB_MT);
    if (!d->s) luaL_error(L, "attempt to use a closed store");
    return d;
}

/* The store behind a db object at idx, for other engine modules that load
 * rows in C (prm.csv's r:load). Raises on anything else. */
store *lstore_check(lua_State *L, int idx)
{
    ldb *d = luaL_checkudata(L, idx, DB_MT);
    if (!d->s) luaL_error(L, "attempt to use a closed store");
    return d->s;
}

/* [-0, +0, -] Lua value at idx -> store_value (strings borrowed). */
static store_value to_value(lua_State *L, int idx)
{
    store_value v = { SV_NULL, NULL, 0, 0 };
    switch (lua_type(L, idx)) {
    case LUA_TNUMBER:
        if (lua_isinteger(L, idx)) { v.kind = SV_INT; v.i = lua_tointeger(L, idx); }
        else { v.kind = SV_REAL; v.r = lua_tonumber(L, idx); }
        break;
    case LUA_TSTRING: v.kind = SV_TEXT; v.s = lua_tostring(L, idx); break;
    case LUA_TBOOLEAN: v.kind = SV_INT; v.i = lua_toboolean(L, idx); break;
    default: break;
    }
    return v;
}

/* [-0, +1, m] */
static void push_value(lua_State *L, store_value v)
{
    switch (v.kind) {
    case SV_INT: lua_pushinteger(L, v.i); break;
    case SV_REAL: lua_pushnumber(L, v.r); break;
    case SV_TEXT: lua_pushstring(L, v.s); break;
    default: lua_pushnil(L); break;
    }
}

/* Prepares sql (arg 2) and binds args 3..top. may raise */
static store_stmt *prepare(lua_State *L, ldb *d)
{
    prm_error err;
    store_stmt *st;
    const char *sql = luaL_checkstring(L, 2);
    if (store_prepare(d->s, sql, &st, &err) < 0) luaL_error(L, "%s", err.msg);
    int n = lua_gettop(L) - 2, want = store_nparams(st);
    if (n != want) {
        store_finalize(st);
        luaL_error(L, "SQL has %d parameter(s), %d value(s) given", want, n);
    }
    for (int i = 1; i <= n; i++) {
        int t = lua_type(L, i + 2);
        if (t != LUA_TNIL && t != LUA_TNUMBER && t != LUA_TSTRING && t != LUA_TBOOLEAN) {
            store_finalize(st);
            luaL_argerror(L, i + 2, "SQL values must be nil, boolean, number or string");
        }
        store_value v = to_value(L, i + 2);
        if (store_bind(st, i, &v, &err) < 0) {
            store_finalize(st);
            luaL_error(L, "%s", err.msg);
        }
    }
    return st;
}

/* [-0, +1, m] the current row as a table keyed by column name */
static void push_row(lua_State *L, store_stmt *st)
{
    int n = store_ncols(st);
    lua_createtable(L, 0, n);
    for (int i = 0; i < n; i++) {
        push_value(L, store_column(st, i));
        lua_setfield(L, -2, store_colname(st, i));
    }
}

/* db:query(sql, ...) -> { row, ... }   (raises on SQL errors) */
static int l_db_query(lua_State *L)
{
    ldb *d = check_db(L);
    store_stmt *st = prepare(L, d);
    prm_error err;
    int rc, k = 0;
    lua_newtable(L);
    while ((rc = store_step(st, &err)) == 1) {
        push_row(L, st);
        lua_rawseti(L, -2, ++k);
    }
    store_finalize(st);
    if (rc < 0) return luaL_error(L, "%s", err.msg);
    return 1;
}

/* db:exec(sql, ...) -> true   (statements without rows; raises on errors) */
static int l_db_exec(lua_State *L)
{
    ldb *d = check_db(L);
    store_stmt *st = prepare(L, d);
    prm_error err;
    int rc;
    while ((rc = store_step(st, &err)) == 1) {}
    store_finalize(st);
    if (rc < 0) return luaL_error(L, "%s", err.msg);
    lua_pushboolean(L, 1);
    return 1;
}

#define ITER_MT "prm.store.iter"

typedef struct liter { store_stmt *st; } liter;

static int l_iter_gc(lua_State *L)
{
    liter *it = luaL_checkudata(L, 1, ITER_MT);
    store_finalize(it->st);
    it->st = NULL;
    return 0;
}

static int iter_next(lua_State *L)
{
    liter *it = luaL_checkudata(L, lua_upvalueindex(1), ITER_MT);
    prm_error err;
    if (!it->st) return 0;
    int rc = store_step(it->st, &err);
    if (rc == 1) {
        push_row(L, it->st);
        return 1;
    }
    store_finalize(it->st);
    it->st = NULL;
    if (rc < 0) return luaL_error(L, "%s", err.msg);
    return 0;
}

/* db:rows(sql, ...) -> iterator over row tables (a generic-for closes it) */
static int l_db_rows(lua_State *L)
{
    ldb *d = check_db(L);
    store_stmt *st = prepare(L, d);
    liter *it = lua_newuserdatauv(L, sizeof *it, 0);
    it->st = st;
    luaL_setmetatable(L, ITER_MT);
    lua_pushvalue(L, -1);
    lua_pushcclosure(L, iter_next, 1);
    lua_insert(L, -2);
    lua_pushnil(L);
    lua_insert(L, -2);
    /* iterator, nil state, nil control, closing value */
    lua_pushnil(L);
    lua_insert(L, -2);
    return 4;
}

/* db:upsert(object, record) -> written(boolean) | nil, msg
 * Unknown objects and fields raise (a mapping bug); a record the store
 * refuses (missing field, unknown partner, bad value) returns nil, msg. */
static int l_db_upsert(lua_State *L)
{
    ldb *d = check_db(L);
    const char *name = luaL_checkstring(L, 2);
    luaL_checktype(L, 3, LUA_TTABLE);
    const store_object *o = store_object_find(name);
    if (!o) return luaL_argerror(L, 2, lua_pushfstring(L, "unknown object '%s'", name));
    store_value v[32];
    int found = 0;
    for (int i = 0; i < o->nfields; i++) {
        lua_getfield(L, 3, o->fields[i].name);
        int t = lua_type(L, -1);
        if (t != LUA_TNIL && t != LUA_TNUMBER && t != LUA_TSTRING && t != LUA_TBOOLEAN)
            return luaL_error(L, "%s field '%s' has a %s value", name, o->fields[i].name,
                              lua_typename(L, t));
        v[i] = to_value(L, -1);
        found += t != LUA_TNIL;
        lua_pop(L, 1);                   /* strings stay alive in the record table */
    }
    /* Catch mapping typos without a lookup per key on the fast path. */
    int keys = 0;
    lua_pushnil(L);
    while (lua_next(L, 3)) {
        keys++;
        lua_pop(L, 1);
    }
    if (keys != found) {
        lua_pushnil(L);
        while (lua_next(L, 3)) {
            if (lua_type(L, -2) != LUA_TSTRING || store_field_index(o, lua_tostring(L, -2)) < 0)
                return luaL_error(L, "%s has no field '%s'", name,
                                  lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "?");
            lua_pop(L, 1);
        }
    }
    prm_error err;
    int written = 0;
    if (store_upsert(d->s, o, v, &written, &err) < 0) {
        luaL_pushfail(L);
        lua_pushstring(L, err.msg);
        return 2;
    }
    lua_pushboolean(L, written);
    return 1;
}

/* db:fields(object) -> { {name=, type=, required=}, ... } */
static int l_db_fields(lua_State *L)
{
    static const char *const types[] = { "text", "real", "int", "date", "instant" };
    const store_object *o = store_object_find(luaL_checkstring(L, 2));
    if (!o) return luaL_argerror(L, 2, "unknown object");
    lua_createtable(L, o->nfields, 0);
    for (int i = 0; i < o->nfields; i++) {
        lua_createtable(L, 0, 3);
        lua_pushstring(L, o->fields[i].name);
        lua_setfield(L, -2, "name");
        lua_pushstring(L, types[o->fields[i].type]);
        lua_setfield(L, -2, "type");
        lua_pushboolean(L, o->fields[i].required);
        lua_setfield(L, -2, "required");
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

static int txn(lua_State *L, int (*fn)(store *, prm_error *))
{
    ldb *d = check_db(L);
    prm_error err;
    if (fn(d->s, &err) < 0) return luaL_error(L, "%s", err.msg);
    return 0;
}

/* db:begin() / db:commit() / db:rollback()   (raise on failure) */
static int l_db_begin(lua_State *L) { return txn(L, store_begin); }
static int l_db_commit(lua_State *L) { return txn(L, store_commit); }
static int l_db_rollback(lua_State *L)
{
    store_rollback(check_db(L)->s);
    return 0;
}

/* db:sync_get(source, object) -> watermark|nil, cursor */
static int l_db_sync_get(lua_State *L)
{
    ldb *d = check_db(L);
    char wm[512];
    int64_t cur;
    prm_error err;
    if (store_sync_get(d->s, luaL_checkstring(L, 2), luaL_checkstring(L, 3), wm, sizeof wm,
                       &cur, &err) < 0)
        return luaL_error(L, "%s", err.msg);
    if (wm[0]) lua_pushstring(L, wm);
    else lua_pushnil(L);
    lua_pushinteger(L, cur);
    return 2;
}

/* db:sync_set(source, object, watermark, cursor) */
static int l_db_sync_set(lua_State *L)
{
    ldb *d = check_db(L);
    prm_error err;
    if (store_sync_set(d->s, luaL_checkstring(L, 2), luaL_checkstring(L, 3),
                       luaL_optstring(L, 4, NULL), luaL_optinteger(L, 5, 0), &err) < 0)
        return luaL_error(L, "%s", err.msg);
    return 0;
}

/* db:reject(source, file, line, reason) -- records a bad input row */
static int l_db_reject(lua_State *L)
{
    ldb *d = check_db(L);
    prm_error err;
    sandbox_ctx *c = sandbox_ctx_of(L);
    if (store_reject(d->s, luaL_checkstring(L, 2), luaL_checkstring(L, 3), luaL_checkinteger(L, 4),
                     luaL_checkstring(L, 5), c->job_id, &err) < 0)
        return luaL_error(L, "%s", err.msg);
    return 0;
}

/* db:bulk_begin() -> true when the store was empty and its secondary
 * indexes wait for db:bulk_end() (store_bulk_begin) */
static int l_db_bulk_begin(lua_State *L)
{
    ldb *d = check_db(L);
    prm_error err;
    int bulk;
    if (store_bulk_begin(d->s, &bulk, &err) < 0) return luaL_error(L, "%s", err.msg);
    lua_pushboolean(L, bulk);
    return 1;
}

static int l_db_bulk_end(lua_State *L)
{
    ldb *d = check_db(L);
    prm_error err;
    if (store_bulk_end(d->s, &err) < 0) return luaL_error(L, "%s", err.msg);
    return 0;
}

/* db:audit(action, subject [, detail_json]) -- appends to the audit chain */
static int l_db_audit(lua_State *L)
{
    ldb *d = check_db(L);
    prm_error err;
    if (store_audit(d->s, NULL, luaL_checkstring(L, 2),
                    luaL_optstring(L, 3, NULL), luaL_optstring(L, 4, NULL), &err) < 0)
        return luaL_error(L, "%s", err.msg);
    return 0;
}

/* db:outbox_claim(target, limit [, peek]) -> { {id=, run=, deal=, key=, payload=, attempts=}, ... }
 * Claims due write-back items (outbox.h); peek = true lists them without
 * claiming. Raises on store errors. */
static int l_db_outbox_claim(lua_State *L)
{
    ldb *d = check_db(L);
    const char *target = luaL_checkstring(L, 2);
    int limit = (int)luaL_optinteger(L, 3, 100);
    int peek = lua_toboolean(L, 4);
    luaL_argcheck(L, limit >= 1 && limit <= 100000, 3, "limit must be 1..100000");
    outbox_item *it;
    int n;
    prm_error err;
    if ((peek ? outbox_peek : outbox_claim)(d->s, target, limit, &it, &n, &err) < 0)
        return luaL_error(L, "%s", err.msg);
    /* Copy into C-owned space first: nothing below may raise with it unfreed
     * except the table pushes, which are done with it still referenced. */
    lua_createtable(L, n, 0);
    for (int i = 0; i < n; i++) {
        lua_createtable(L, 0, 6);
        lua_pushinteger(L, it[i].id); lua_setfield(L, -2, "id");
        lua_pushinteger(L, it[i].run_id); lua_setfield(L, -2, "run");
        lua_pushstring(L, it[i].deal); lua_setfield(L, -2, "deal");
        lua_pushstring(L, it[i].key); lua_setfield(L, -2, "key");
        lua_pushstring(L, it[i].payload); lua_setfield(L, -2, "payload");
        lua_pushinteger(L, it[i].attempts); lua_setfield(L, -2, "attempts");
        lua_rawseti(L, -2, i + 1);
    }
    outbox_free(it, n);
    return 1;
}

/* db:outbox_ack(id) */
static int l_db_outbox_ack(lua_State *L)
{
    ldb *d = check_db(L);
    prm_error err;
    if (outbox_ack(d->s, luaL_checkinteger(L, 2), &err) < 0) return luaL_error(L, "%s", err.msg);
    return 0;
}

/* db:outbox_fail(id, error, permanent, retry_after_seconds [, max_attempts]) */
static int l_db_outbox_fail(lua_State *L)
{
    ldb *d = check_db(L);
    prm_error err;
    if (outbox_fail(d->s, luaL_checkinteger(L, 2), luaL_checkstring(L, 3), lua_toboolean(L, 4),
                    (int)luaL_optinteger(L, 5, 60), (int)luaL_optinteger(L, 6, 0), &err) < 0)
        return luaL_error(L, "%s", err.msg);
    return 0;
}

/* db:outbox_count([target]) -> { pending=, sending=, sent=, superseded=, dead= } */
static int l_db_outbox_count(lua_State *L)
{
    ldb *d = check_db(L);
    outbox_counts c;
    prm_error err;
    if (outbox_count(d->s, luaL_optstring(L, 2, NULL), &c, &err) < 0) return luaL_error(L, "%s", err.msg);
    lua_createtable(L, 0, 5);
    lua_pushinteger(L, c.pending); lua_setfield(L, -2, "pending");
    lua_pushinteger(L, c.sending); lua_setfield(L, -2, "sending");
    lua_pushinteger(L, c.sent); lua_setfield(L, -2, "sent");
    lua_pushinteger(L, c.superseded); lua_setfield(L, -2, "superseded");
    lua_pushinteger(L, c.dead); lua_setfield(L, -2, "dead");
    return 1;
}

static int l_db_path(lua_State *L)
{
    lua_pushstring(L, store_path(check_db(L)->s));
    return 1;
}

/* db:close() -- idempotent; also __gc and __close */
static int l_db_close(lua_State *L)
{
    ldb *d = luaL_checkudata(L, 1, DB_MT);
    if (d->owned && d->s) store_close(d->s);
    d->s = NULL;
    return 0;
}

static void push_db(lua_State *L, store *s, int owned)
{
    ldb *d = lua_newuserdatauv(L, sizeof *d, 0);
    d->s = s;
    d->owned = owned;
    luaL_setmetatable(L, DB_MT);
}

/* store.open(path) -> db | nil, msg */
static int l_store_open(lua_State *L)
{
    store *s;
    prm_error err;
    if (store_open(luaL_checkstring(L, 1), &s, &err) < 0) {
        luaL_pushfail(L);
        lua_pushstring(L, err.msg);
        return 2;
    }
    push_db(L, s, 1);
    return 1;
}

/* store.default() -> the engine's store (raises when the engine has none) */
static int l_store_default(lua_State *L)
{
    sandbox_ctx *c = sandbox_ctx_of(L);
    if (!c->db) return luaL_error(L, "no store is open in this context");
    if (lua_getfield(L, LUA_REGISTRYINDEX, "prm.store.default") == LUA_TNIL) {
        lua_pop(L, 1);
        push_db(L, c->db, 0);
        lua_pushvalue(L, -1);
        lua_setfield(L, LUA_REGISTRYINDEX, "prm.store.default");
    }
    return 1;
}

/* store.objects() -> { "partner", "deal", ... } */
static int l_store_objects(lua_State *L)
{
    int n;
    const store_object *o = store_objects(&n);
    lua_createtable(L, n, 0);
    for (int i = 0; i < n; i++) {
        lua_pushstring(L, o[i].name);
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

int luaopen_prm_store(lua_State *L)
{
    static const luaL_Reg methods[] = {
        { "query", l_db_query }, { "rows", l_db_rows }, { "exec", l_db_exec },
        { "upsert", l_db_upsert }, { "fields", l_db_fields }, { "begin", l_db_begin },
        { "commit", l_db_commit }, { "rollback", l_db_rollback },
        { "sync_get", l_db_sync_get }, { "sync_set", l_db_sync_set },
        { "reject", l_db_reject }, { "bulk_begin", l_db_bulk_begin }, { "bulk_end", l_db_bulk_end }, { "audit", l_db_audit }, { "path", l_db_path },
        { "close", l_db_close }, { "outbox_claim", l_db_outbox_claim },
        { "outbox_ack", l_db_outbox_ack }, { "outbox_fail", l_db_outbox_fail },
        { "outbox_count", l_db_outbox_count }, { NULL, NULL },
    };
    static const luaL_Reg fns[] = {
        { "open", l_store_open }, { "default", l_store_default },
        { "objects", l_store_objects }, { NULL, NULL },
    };
    if (luaL_newmetatable(L, DB_MT)) {
        luaL_newlib(L, methods);
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, l_db_close);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, l_db_close);
        lua_setfield(L, -2, "__close");
    }
    lua_pop(L, 1);
    if (luaL_newmetatable(L, ITER_MT)) {
        lua_pushcfunction(L, l_iter_gc);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, l_iter_gc);
        lua_setfield(L, -2, "__close");
    }
    lua_pop(L, 1);
    luaL_newlib(L, fns);
    return 1;
}
