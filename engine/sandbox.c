/* sandbox.c - see sandbox.h. Shaped after Suricata's util-lua-sandbox.c
 * (allocator limit, instruction limit, allow-list) and lua.c's docall
 * (message handler with traceback). */
#include "sandbox.h"

#include <lauxlib.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lprm.h"
#include "timeutil.h"
#include "embedded_lua.h"   /* generated from engine/lib/prm (build/gen) */

int luaopen_cjson(lua_State *L);

/* The builtins: the only modules require can produce from C. Which kind
 * may require which is the kinds table below. */
static const struct builtin {
    const char *name;
    lua_CFunction open;
} builtins[] = {
    { "prm", luaopen_prm },
    { "prm.store", luaopen_prm_store },
    { "prm.csv", luaopen_prm_csv },
    { "prm.scoring", luaopen_prm_scoring },
    { "prm.engine", luaopen_prm_engine },
    { "prm.ts", luaopen_prm_ts },
    { "prm.model", luaopen_prm_model },
    { "prm.http", luaopen_prm_http },
    { "cjson", luaopen_cjson },
    { NULL, NULL },
};

/* ---- the trust kinds ---------------------------------------------------- */

static const char *const connector_mods[] = { "prm", "prm.map", "cjson", "prm.http", NULL };
/* prm.ts and prm.model are not for per-deal rules: one forecast or fit is
 * seconds of C work the instruction budget cannot see (issue 8). */
static const char *const rule_mods[] = { "prm", "prm.rules", "prm.map", "cjson", NULL };
static const char *const prompt_mods[] = { "prm", "cjson", NULL };
static const char *const scenario_mods[] = { "prm", "prm.ts", "prm.model", "cjson", NULL };

static const sandbox_kind_spec kinds[SANDBOX_NKINDS] = {
    [SANDBOX_JOB] = { "job", NULL, 0, 0 },
    /* Connectors run inside the ingest job's state (a separate state would
     * copy every record across): they share its limits. */
    [SANDBOX_CONNECTOR] = { "connector", connector_mods, 0, 0 },
    [SANDBOX_RULE] = { "rule", rule_mods, SANDBOX_RULE_MEM, SANDBOX_RULE_INSTR },
    /* A prompt shapes text from a run's facts: a tenth of a rule's memory,
     * the same budget per call. */
    [SANDBOX_PROMPT] = { "prompt", prompt_mods, 16u << 20, SANDBOX_RULE_INSTR },
    /* A scenario re-runs forecasts: more memory, 100x a rule's budget. */
    [SANDBOX_SCENARIO] = { "scenario", scenario_mods, 256u << 20, 100 * SANDBOX_RULE_INSTR },
};

const sandbox_kind_spec *sandbox_kind_spec_of(sandbox_kind k)
{
    return k >= 0 && k < SANDBOX_NKINDS ? &kinds[k] : &kinds[SANDBOX_RULE];
}

static int kind_allows(sandbox_kind k, const char *name)
{
    const char *const *m = sandbox_kind_spec_of(k)->modules;
    if (!m) return 1;
    for (; *m; m++)
        if (strcmp(*m, name) == 0) return 1;
    return 0;
}

sandbox_ctx *sandbox_ctx_of(lua_State *L)
{
    return *(sandbox_ctx **)lua_getextraspace(L);
}

/* ---- allocator and hook ----------------------------------------------- */

static void *l_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    sandbox_ctx *c = ud;
    if (!ptr) osize = 0;                 /* osize is a type tag then */
    if (nsize == 0) {
        free(ptr);
        c->mem_used -= osize;
        return NULL;
    }
    /* Only growth is limited: Lua assumes shrinking never fails. */
    if (c->mem_limit && nsize > osize && c->mem_used + (nsize - osize) > c->mem_limit) {
        c->mem_exceeded = 1;
        return NULL;
    }
    void *p = realloc(ptr, nsize);
    if (!p) return NULL;
    c->mem_used = c->mem_used - osize + nsize;
    return p;
}

/* Counted every HOOK_EVERY instructions. Once the budget is spent the hook
 * re-arms to fire on every instruction, so a script's own pcall cannot
 * swallow the error and carry on (Redis's timeout hook). */
enum { HOOK_EVERY = 1000 };

static void instr_hook(lua_State *L, lua_Debug *ar)
{
    (void)ar;
    sandbox_ctx *c = sandbox_ctx_of(L);
    c->instr_used += c->instr_exceeded ? 1 : HOOK_EVERY;
    if (c->instr_used > c->instr_limit) {
        if (!c->instr_exceeded) {
            c->instr_exceeded = 1;
            lua_sethook(L, instr_hook, LUA_MASKCOUNT, 1);
        }
        luaL_error(L, "instruction limit exceeded (%I instructions)", (lua_Integer)c->instr_limit);
    }
}

static int l_panic(lua_State *L)
{
    const char *msg = lua_tostring(L, -1);
    fprintf(stderr, "prmcast: unprotected Lua error: %s\n", msg ? msg : "?");
    return 0;                            /* then abort(): a bug in the engine */
}

/* ---- loading ---------------------------------------------------------- */

static int msg_handler(lua_State *L)
{
    const char *msg = lua_tostring(L, 1);
    if (!msg) {
        if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING) return 1;
        msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    }
    luaL_traceback(L, L, msg, 1);
    return 1;
}

int sandbox_call(lua_State *L, int nargs, int nres, prm_error *err)
{
    sandbox_ctx *c = sandbox_ctx_of(L);
    int base = lua_gettop(L) - nargs;
    lua_pushcfunction(L, msg_handler);
    lua_insert(L, base);
    c->instr_used = 0;
    c->instr_exceeded = 0;
    c->mem_exceeded = 0;
    if (c->instr_limit) lua_sethook(L, instr_hook, LUA_MASKCOUNT, HOOK_EVERY);
    int rc = lua_pcall(L, nargs, nres, base);
    if (c->instr_limit) lua_sethook(L, instr_hook, LUA_MASKCOUNT, HOOK_EVERY);
    lua_remove(L, base);
    if (rc == LUA_OK) return 0;
    c->errors++;
    const char *msg = lua_tostring(L, -1);
    if (rc == LUA_ERRMEM || c->mem_exceeded) {
        prm_error_set(err, "memory limit exceeded (%zu MiB)%s%s", c->mem_limit >> 20,
                      msg && rc != LUA_ERRMEM ? ": " : "", msg && rc != LUA_ERRMEM ? msg : "");
    } else {
        /* Keep "file:line: message" and the first frames of the traceback. */
        prm_error_set(err, "%s", msg ? msg : "error");
    }
    lua_pop(L, 1);
    lua_gc(L, LUA_GCCOLLECT);
    return -1;
}

/* A fresh environment for sandboxed code: allowed globals copied from the
 * real ones, blocked libraries present as tables that raise a clear error. */
static const char *const safe_globals[] = {
    "assert", "error", "ipairs", "next", "pairs", "pcall", "select", "tonumber",
    "tostring", "type", "xpcall", "rawequal", "rawget", "rawlen", "rawset",
    "setmetatable", "getmetatable", "_VERSION", NULL,
};
static const char *const safe_libs[] = { "string", "table", "math", "utf8", NULL };
static const char *const blocked_libs[] = { "os", "io", "debug", "package", "coroutine", NULL };

static int blocked_index(lua_State *L)
{
    const char *lib = lua_tostring(L, lua_upvalueindex(1));
    const char *key = luaL_optstring(L, 2, "?");
    return luaL_error(L, "blocked function: %s.%s", lib, key);
}

static int blocked_global(lua_State *L)
{
    return luaL_error(L, "blocked function: %s", lua_tostring(L, lua_upvalueindex(1)));
}

static int kind_require(lua_State *L);
static int rule_load(lua_State *L);

/* [-0, +1, m] */
void sandbox_push_env(lua_State *L, sandbox_kind kind)
{
    lua_newtable(L);
    for (const char *const *g = safe_globals; *g; g++) {
        lua_getglobal(L, *g);
        lua_setfield(L, -2, *g);
    }
    for (const char *const *g = safe_libs; *g; g++) {
        /* A copy, so one rule cannot change string.format for the others;
         * string.dump is left out: it would expose bytecode. */
        lua_getglobal(L, *g);
        lua_newtable(L);
        lua_pushnil(L);
        while (lua_next(L, -3)) {
            if (!(strcmp(*g, "string") == 0 && strcmp(lua_tostring(L, -2), "dump") == 0)) {
                lua_pushvalue(L, -2);
                lua_insert(L, -2);
                lua_settable(L, -4);
            } else {
                lua_pop(L, 1);
            }
        }
        lua_remove(L, -2);
        lua_setfield(L, -2, *g);
    }
    for (const char *const *b = blocked_libs; *b; b++) {
        lua_newtable(L);
        lua_newtable(L);
        lua_pushstring(L, *b);
        lua_pushcclosure(L, blocked_index, 1);
        lua_setfield(L, -2, "__index");
        lua_setmetatable(L, -2);
        lua_setfield(L, -2, *b);
    }
    static const char *const blocked_fns[] = { "dofile", "loadfile", "collectgarbage", NULL };
    for (const char *const *b = blocked_fns; *b; b++) {
        lua_pushstring(L, *b);
        lua_pushcclosure(L, blocked_global, 1);
        lua_setfield(L, -2, *b);
    }
    lua_pushinteger(L, kind);
    lua_pushcclosure(L, kind_require, 1);
    lua_setfield(L, -2, "require");
    lua_pushinteger(L, kind);
    lua_pushcclosure(L, rule_load, 1);
    lua_setfield(L, -2, "load");
    lua_pushvalue(L, -1);
    lua_setfield(L, -2, "_G");
}

static int set_env(lua_State *L, int fn)
{
    /* The first upvalue of a main chunk is its _ENV. */
    return lua_setupvalue(L, fn, 1) != NULL;
}

static char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 8192, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap) break;
        char *nb = realloc(buf, cap * 2);
        if (!nb) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = nb;
        cap *= 2;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        return NULL;
    }
    *len = n;
    return buf;
}

int sandbox_loadfile(lua_State *L, const char *path, const char *chunkname, sandbox_kind kind,
                     prm_error *err)
{
    char name[1024];
    if (!chunkname) {
        snprintf(name, sizeof name, "@%s", path);
        chunkname = name;
    }
    size_t len;
    char *buf = read_all(path, &len);
    if (!buf) return prm_error_set(err, "%s: cannot read (%s)", chunkname[0] == '@' ? chunkname + 1 : path,
                                   "missing or unreadable");
    /* A "#!" first line, as luaL_loadfile skips it. */
    size_t skip = 0;
    if (len > 1 && buf[0] == '#')
        while (skip < len && buf[skip] != '\n') skip++;
    int rc = luaL_loadbufferx(L, buf + skip, len - skip, chunkname, "t");
    free(buf);
    if (rc != LUA_OK) {
        prm_error_set(err, "%s", lua_tostring(L, -1));
        lua_pop(L, 1);
        return -1;
    }
    if (kind != SANDBOX_JOB) {
        sandbox_push_env(L, kind);
        set_env(L, -2);
    }
    return 0;
}

int sandbox_load(lua_State *L, const char *path, prm_error *err)
{
    return sandbox_loadfile(L, path, NULL, sandbox_ctx_of(L)->trust, err);
}

int sandbox_dofile(lua_State *L, const char *path, int nres, prm_error *err)
{
    if (sandbox_load(L, path, err) < 0) return -1;
    return sandbox_call(L, 0, nres, err);
}

/* load(text [, name [, mode [, env]]]) for sandboxed code: text only, and
 * the chunk gets a fresh sandbox environment unless one is given. */
static int rule_load(lua_State *L)
{
    sandbox_kind kind = (sandbox_kind)lua_tointeger(L, lua_upvalueindex(1));
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    const char *name = luaL_optstring(L, 2, "=(load)");
    if (luaL_loadbufferx(L, s, len, name, "t") != LUA_OK) {
        luaL_pushfail(L);
        lua_insert(L, -2);
        return 2;
    }
    if (lua_gettop(L) >= 5 && !lua_isnil(L, 4)) {
        lua_pushvalue(L, 4);
    } else {
        sandbox_push_env(L, kind);
    }
    set_env(L, -2);
    return 1;
}

static int readonly_newindex(lua_State *L)
{
    return luaL_error(L, "attempt to modify a read-only module table");
}

/* [-1, +1, m] Replaces a module table on top with a fresh read-only proxy,
 * so one rule file cannot change a module for the others: writes raise,
 * rawset only touches the caller's own proxy, and getmetatable hides the
 * real table. Other values pass through. */
static int push_readonly(lua_State *L)
{
    if (!lua_istable(L, -1)) return 1;
    lua_newtable(L);
    lua_createtable(L, 0, 3);
    lua_pushvalue(L, -3);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, readonly_newindex);
    lua_setfield(L, -2, "__newindex");
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    lua_setmetatable(L, -2);
    return 1;
}

static int blocked_clock(lua_State *L)
{
    return luaL_error(L, "blocked function: %s (sandboxed scripts get the time from ctx.now)",
                      lua_tostring(L, lua_upvalueindex(1)));
}

/* [-1, +1, m] The prm module as sandboxed kinds see it: a proxy whose
 * wall-clock functions raise. */
static void push_prm_face(lua_State *L)
{
    lua_newtable(L);                     /* overrides */
    static const char *const clock_fns[] = { "now", "today", NULL };
    for (const char *const *f = clock_fns; *f; f++) {
        lua_pushfstring(L, "prm.%s", *f);
        lua_pushcclosure(L, blocked_clock, 1);
        lua_setfield(L, -2, *f);
    }
    lua_createtable(L, 0, 1);
    lua_pushvalue(L, -3);
    lua_setfield(L, -2, "__index");
    lua_setmetatable(L, -2);
    lua_remove(L, -2);
}

/* require for sandboxed code: the kind's modules (builtins and the
 * embedded prm library), and for rules rules/lib/<name>.lua from the
 * project, loaded as text into a fresh environment. Results are cached
 * per state and kind; each caller gets a read-only view. */
static int kind_require(lua_State *L)
{
    sandbox_kind kind = (sandbox_kind)lua_tointeger(L, lua_upvalueindex(1));
    const char *name = luaL_checkstring(L, 1);
    lua_getfield(L, LUA_REGISTRYINDEX, "prm.rule_loaded");
    lua_pushfstring(L, "%d:%s", (int)kind, name);
    const char *key = lua_tostring(L, -1);
    int keyidx = lua_gettop(L);
    if (lua_getfield(L, -2, key) != LUA_TNIL) return push_readonly(L);
    lua_pop(L, 1);
    int idx = keyidx - 1;
    const char *kn = sandbox_kind_spec_of(kind)->name;
    for (const struct builtin *b = builtins; b->name; b++)
        if (strcmp(b->name, name) == 0) {
            if (!kind_allows(kind, name))
                return luaL_error(L, "module '%s' is not available to %ss", name, kn);
            luaL_requiref(L, name, b->open, 0);
            if (strcmp(name, "prm") == 0) push_prm_face(L);
            goto done;
        }
    for (int i = 0; lualib[i].name; i++)
        if (strcmp(lualib[i].name, name) == 0) {
            if (!kind_allows(kind, name))
                return luaL_error(L, "module '%s' is not available to %ss", name, kn);
            lua_getglobal(L, "require");       /* the real require: preload has it */
            if (lua_isnil(L, -1)) {
                lua_pop(L, 1);
                lua_getfield(L, LUA_REGISTRYINDEX, "prm.real_require");
            }
            lua_pushstring(L, name);
            lua_call(L, 1, 1);
            goto done;
        }
    if (kind == SANDBOX_RULE && strncmp(name, "rules.lib.", 10) == 0 && !strstr(name, "..") &&
        !strchr(name, '/')) {
        char path[1024], chunk[1100];
        sandbox_ctx *c = sandbox_ctx_of(L);
        snprintf(path, sizeof path, "%s/rules/lib/%s.lua", c->root, name + 10);
        snprintf(chunk, sizeof chunk, "@rules/lib/%s.lua", name + 10);
        prm_error e;
        if (sandbox_loadfile(L, path, chunk, kind, &e) < 0) return luaL_error(L, "%s", e.msg);
        lua_pushstring(L, name);
        lua_call(L, 1, 1);
        goto done;
    }
    if (kind == SANDBOX_RULE)
        return luaL_error(L, "module '%s' not found (rules may require prm modules and rules.lib.*)", name);
    return luaL_error(L, "module '%s' is not available to %ss", name, kn);
done:
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        lua_pushboolean(L, 1);
    }
    lua_pushvalue(L, -1);
    lua_setfield(L, idx, key);
    return push_readonly(L);
}

/* ---- the state -------------------------------------------------------- */

static int load_embedded(lua_State *L)
{
    const char *name = lua_tostring(L, 1);
    for (int i = 0; lualib[i].name; i++)
        if (strcmp(lualib[i].name, name) == 0) {
            char chunk[128];
            snprintf(chunk, sizeof chunk, "=[engine]/%s.lua", name);
            if (luaL_loadbufferx(L, lualib[i].src, strlen(lualib[i].src), chunk, "t") != LUA_OK)
                return lua_error(L);
            lua_pushstring(L, name);
            lua_call(L, 1, 1);
            return 1;
        }
    return luaL_error(L, "no embedded module '%s'", name);
}

/* In job states `prm.ts`, `prm.store`, ... resolve through require on
 * first use, so scripts may write either form. */
static int prm_index(lua_State *L)
{
    const char *key = luaL_checkstring(L, 2);
    lua_getglobal(L, "require");
    lua_pushfstring(L, "prm.%s", key);
    lua_getfield(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
    if (lua_getfield(L, -1, lua_tostring(L, -2)) == LUA_TNIL) return 0;
    lua_pop(L, 2);
    lua_call(L, 1, 1);
    return 1;
}

static int setup(lua_State *L)
{
    sandbox_ctx *c = sandbox_ctx_of(L);
    luaL_openlibs(L);
    /* Builtins and the embedded library go into package.preload: the only
     * C modules require can load (cpath is emptied). */
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
    for (const struct builtin *b = builtins; b->name; b++) {
        lua_pushcfunction(L, b->open);
        lua_setfield(L, -2, b->name);
    }
    for (int i = 0; lualib[i].name; i++) {
        lua_pushcfunction(L, load_embedded);
        lua_setfield(L, -2, lualib[i].name);
    }
    lua_pop(L, 1);
    lua_getglobal(L, "package");
    lua_pushfstring(L, "%s/?.lua;%s/?/init.lua", c->root, c->root);
    lua_setfield(L, -2, "path");
    lua_pushliteral(L, "");
    lua_setfield(L, -2, "cpath");
    lua_pop(L, 1);
    lua_newtable(L);
    lua_setfield(L, LUA_REGISTRYINDEX, "prm.rule_loaded");
    lua_getglobal(L, "require");
    lua_setfield(L, LUA_REGISTRYINDEX, "prm.real_require");

    /* The global `prm` with lazy submodules. */
    lua_getglobal(L, "require");
    lua_pushliteral(L, "prm");
    lua_call(L, 1, 1);
    lua_pushstring(L, c->root);
    lua_setfield(L, -2, "root");
    lua_newtable(L);
    lua_pushcfunction(L, prm_index);
    lua_setfield(L, -2, "__index");
    lua_setmetatable(L, -2);
    if (c->trust == SANDBOX_JOB) {
        lua_setglobal(L, "prm");
    } else {
        lua_pop(L, 1);
        /* getmetatable("").__index is the one real string table: hide the
         * metatable, or a rule could rewrite string.format for every other
         * rule and the engine's own Lua code. */
        lua_pushliteral(L, "");
        if (lua_getmetatable(L, -1)) {
            lua_pushboolean(L, 0);
            lua_setfield(L, -2, "__metatable");
            lua_pop(L, 1);
        }
        lua_pop(L, 1);
    }
    return 0;
}

lua_State *sandbox_new(const sandbox_opts *o, prm_error *err)
{
    sandbox_ctx *c = calloc(1, sizeof *c);
    if (!c) {
        prm_error_set(err, "out of memory");
        return NULL;
    }
    c->trust = o->trust;
    c->db = o->db;
    c->mem_limit = o->mem_limit;
    c->instr_limit = o->instr_limit;
    c->now = clock_now();
    snprintf(c->root, sizeof c->root, "%s", o->root ? o->root : ".");
    lua_State *L = lua_newstate(l_alloc, c);
    if (!L) {
        free(c);
        prm_error_set(err, "cannot create Lua state");
        return NULL;
    }
    *(sandbox_ctx **)lua_getextraspace(L) = c;
    lua_atpanic(L, l_panic);
    /* Setup itself runs protected (lua.c's docall; NSE open_nse). */
    size_t saved = c->mem_limit;
    c->mem_limit = 0;
    lua_pushcfunction(L, setup);
    if (sandbox_call(L, 0, 0, err) < 0) {
        sandbox_close(L);
        return NULL;
    }
    c->mem_limit = saved;
    c->errors = 0;
    return L;
}

void sandbox_close(lua_State *L)
{
    if (!L) return;
    sandbox_ctx *c = sandbox_ctx_of(L);
    lua_close(L);
    free(c);
}
