/* job.c - see job.h. */
#include "job.h"

#include <lauxlib.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <errno.h>
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
static int apply_settings(lua_State *L, store *db, prm_error *err)
{
    int m;
    if (store_fiscal_start(db, &m, err) < 0) return -1;
    if (lua_getglobal(L, "prm") == LUA_TTABLE) {
        lua_pushinteger(L, m);
        lua_setfield(L, -2, "fiscal_start_month");
    }
    lua_settop(L, 0);
    return 0;
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

static lua_State *job_state(store *db, prm_error *err)
{
    sandbox_opts o = { SANDBOX_JOB, 0, 0, db, job_root(), 0, 0 };
    lua_State *L = sandbox_new(&o, err);
    if (!L) return NULL;
    if (apply_settings(L, db, err) < 0) {
        sandbox_close(L);
        return NULL;
    }
    return L;
}

static int job_begin(store *db, lua_State *L, const char *script, int argc, char **argv, int64_t *id,
                     prm_error *err)
{
    if (job_open(db, script, argc, argv, id, err) < 0) return -1;
    sandbox_ctx_of(L)->job_id = *id;
    return 0;
}

/* A job that returns with its own transaction still open did not finish
 * its work: roll back and record it failed, never ok. */
static int job_finish(store *db, const char *script, int64_t id, int rc, const char *counts,
                      prm_error *err)
{
    if (store_in_transaction(db)) {
        store_rollback(db);
        if (rc == 0) {
            prm_error_set(err, "%s: returned with a transaction still open (rolled back)", script);
            rc = -1;
        }
    }
    store_job_end(db, id, rc == 0 ? "ok" : "failed", rc == 0 ? counts : NULL, rc == 0 ? NULL : err->msg, NULL);
    char detail[160];
    snprintf(detail, sizeof detail, "{\"job\":%lld,\"status\":\"%s\"}", (long long)id,
             rc == 0 ? "ok" : "failed");
    store_audit(db, NULL, "job.end", script, detail, NULL);
    /* The head leaves the store here: a log of these lines (cron mail, CI)
     * is what `audit verify --expect` checks truncation against. */
    char head[65];
    int64_t rows;
    fflush(stdout); /* the job's own output first, not cut by this line */
    if (store_audit_head(db, head, &rows, NULL) == 0)
        fprintf(stderr, "audit head %s (%lld rows)\n", head, (long long)rows);
    return rc;
}

int job_open(store *db, const char *name, int argc, char **argv, int64_t *id, prm_error *err)
{
    char args[1024] = "";
    for (int i = 0; i < argc; i++) {
        size_t n = strlen(args);
        snprintf(args + n, sizeof args - n, "%s%s", i ? " " : "", argv[i]);
    }
    job_reap(db, NULL);
    if (store_job_start(db, name, args, (int64_t)getpid(), id, err) < 0) return -1;
    char detail[160];
    snprintf(detail, sizeof detail, "{\"job\":%lld}", (long long)*id);
    return store_audit(db, NULL, "job.start", name, detail, err);
}

int job_close(store *db, const char *name, int64_t id, int ok, const char *counts, const char *error)
{
    if (store_in_transaction(db)) store_rollback(db);
    store_job_end(db, id, ok ? "ok" : "failed", ok ? counts : NULL, ok ? NULL : error, NULL);
    char detail[160];
    snprintf(detail, sizeof detail, "{\"job\":%lld,\"status\":\"%s\"}", (long long)id,
             ok ? "ok" : "failed");
    return store_audit(db, NULL, "job.end", name, detail, NULL);
}

int job_reap(store *db, prm_error *err)
{
    int64_t ids[64], pids[64], dead[64];
    int n = store_jobs_running(db, ids, pids, 64, err), k = 0;
    if (n < 0) return -1;
    for (int i = 0; i < n; i++)
        /* No pid (older rows), or no such process: the job died. */
        if (pids[i] <= 0 || (kill((pid_t)pids[i], 0) < 0 && errno == ESRCH) || pids[i] == (int64_t)getpid())
            dead[k++] = ids[i];
    for (int i = 0; i < k; i++)
        store_job_end(db, dead[i], "killed", NULL,
                      "the process ended without finishing (killed?); a rerun resumes", NULL);
    return k;
}

int job_call(store *db, const char *name, const char *module, const char *fn, int argc, char **argv,
             char **counts_out, char **text_out, prm_error *err)
{
    if (counts_out) *counts_out = NULL;
    if (text_out) *text_out = NULL;
    lua_State *L = job_state(db, err);
    if (!L) return -1;
    int64_t id;
    if (job_begin(db, L, name, argc, argv, &id, err) < 0) {
        sandbox_close(L);
        return -1;
    }
    /* require(module)[fn] */
    lua_getglobal(L, "require");
    lua_pushstring(L, module);
    int rc = sandbox_call(L, 1, 1, err);
    char *counts = NULL, *text = NULL;
    if (rc == 0) {
        lua_getfield(L, -1, fn);
        lua_remove(L, -2);
        lua_createtable(L, argc, 0);
        for (int i = 0; i < argc; i++) {
            lua_pushstring(L, argv[i]);
            lua_rawseti(L, -2, i + 1);
        }
        rc = sandbox_call(L, 1, 3, err);
    }
    if (rc == 0) {
        if (!lua_toboolean(L, -3)) {
            prm_error_set(err, "%s", lua_isstring(L, -2) ? lua_tostring(L, -2) : "failed");
            rc = -1;
        } else {
            if (lua_isstring(L, -1)) text = strdup(lua_tostring(L, -1));
            lua_pop(L, 1);
            counts = counts_json(L);
        }
    }
    rc = job_finish(db, name, id, rc, counts, err);
    if (counts_out) *counts_out = counts;
    else free(counts);
    if (text_out) *text_out = text;
    else free(text);
    sandbox_close(L);
    return rc;
}

int job_run(store *db, const char *script, const char *chunk, int argc, char **argv,
            char **counts_out, prm_error *err)
{
    lua_State *L = job_state(db, err);
    if (!L) return -1;

    /* arg, as the lua interpreter builds it */
    lua_createtable(L, argc, 1);
    lua_pushstring(L, script);
    lua_rawseti(L, -2, 0);
    for (int i = 0; i < argc; i++) {
        lua_pushstring(L, argv[i]);
        lua_rawseti(L, -2, i + 1);
    }
    lua_setglobal(L, "arg");

    int64_t id;
    if (job_begin(db, L, script, argc, argv, &id, err) < 0) {
        sandbox_close(L);
        return -1;
    }
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
    rc = job_finish(db, script, id, rc, counts, err);
    if (counts_out) *counts_out = counts;
    else free(counts);
    sandbox_close(L);
    return rc;
}
