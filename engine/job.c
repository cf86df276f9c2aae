/* job.c - see job.h. */
#include "job.h"

#include <lauxlib.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sandbox.h"
#include "store.h"

const char *job_root(void)
{
    static char root[PATH_MAX];
    if (root[0]) return root;
    const char *env = getenv("PRMCAST_HOME");
    if (env && *env) {
        snprintf(root, sizeof root, "%s", env);
        return root;
    }
    ssize_t n = readlink("/proc/self/exe", root, sizeof root - 1);
    if (n <= 0) {
        snprintf(root, sizeof root, ".");
        return root;
    }
    root[n] = 0;
    char *slash = strrchr(root, '/');
    if (slash) *slash = 0;
    return root;
}

/* The fiscal year start lives in the store's settings; periods follow it. */
static void apply_settings(lua_State *L, store *db)
{
    store_stmt *st;
    if (store_prepare(db, "SELECT value FROM settings WHERE key = 'fiscal_start_month'", &st, NULL) < 0)
        return;
    if (store_step(st, NULL) == 1) {
        store_value v = store_column(st, 0);
        int m = v.kind == SV_TEXT ? atoi(v.s) : v.kind == SV_INT ? (int)v.i : 0;
        if (m >= 1 && m <= 12 && lua_getglobal(L, "prm") == LUA_TTABLE) {
            lua_pushinteger(L, m);
            lua_setfield(L, -2, "fiscal_start_month");
        }
        lua_settop(L, 0);
    }
    store_finalize(st);
}

/* Encodes the script's result table as JSON with lua-cjson; NULL if none. */
static char *counts_json(lua_State *L)
{
    if (!lua_istable(L, -1)) return NULL;
    lua_getglobal(L, "require");
    lua_pushliteral(L, "cjson");
    if (lua_pcall(L, 1, 1, 0) != LUA_OK) return NULL;
    lua_getfield(L, -1, "encode");
    lua_pushvalue(L, -3);
    if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
        lua_pop(L, 2);
        return NULL;
    }
    char *s = strdup(lua_tostring(L, -1));
    lua_pop(L, 2);
    return s;
}

int job_run(store *db, const char *script, const char *chunk, int argc, char **argv,
            char **counts_out, prm_error *err)
{
    sandbox_opts o = { SANDBOX_JOB, 0, 0, db, job_root() };
    lua_State *L = sandbox_new(&o, err);
    if (!L) return -1;
    apply_settings(L, db);

    /* arg, as the lua interpreter builds it */
    lua_createtable(L, argc, 1);
    lua_pushstring(L, script);
    lua_rawseti(L, -2, 0);
    for (int i = 0; i < argc; i++) {
        lua_pushstring(L, argv[i]);
        lua_rawseti(L, -2, i + 1);
    }
    lua_setglobal(L, "arg");

    char args[1024] = "";
    for (int i = 0; i < argc; i++) {
        size_t n = strlen(args);
        snprintf(args + n, sizeof args - n, "%s%s", i ? " " : "", argv[i]);
    }
    int64_t id;
    if (store_job_start(db, script, args, &id, err) < 0) {
        sandbox_close(L);
        return -1;
    }
    sandbox_ctx_of(L)->job_id = id;
    char detail[160];
    snprintf(detail, sizeof detail, "{\"job\":%lld}", (long long)id);
    store_audit(db, NULL, "job.start", script, detail, NULL);

    int rc;
    if (chunk) {
        rc = luaL_loadbufferx(L, chunk, strlen(chunk), script, "t") == LUA_OK ? 0 : -1;
        if (rc < 0) {
            prm_error_set(err, "%s", lua_tostring(L, -1));
            lua_pop(L, 1);
        }
    } else {
        rc = sandbox_load(L, script, err);
    }
    if (rc == 0) {
        for (int i = 0; i < argc; i++) lua_pushstring(L, argv[i]);   /* ... as the chunk's varargs */
        rc = sandbox_call(L, argc, 1, err);
    }
    char *counts = rc == 0 ? counts_json(L) : NULL;
    /* A script that failed inside a transaction must not leave it open. */
    store_rollback(db);
    store_job_end(db, id, rc == 0 ? "ok" : "failed", counts, rc == 0 ? NULL : err->msg, NULL);
    snprintf(detail, sizeof detail, "{\"job\":%lld,\"status\":\"%s\"}", (long long)id,
             rc == 0 ? "ok" : "failed");
    store_audit(db, NULL, "job.end", script, detail, NULL);
    if (counts_out) *counts_out = counts;
    else free(counts);
    sandbox_close(L);
    return rc;
}
