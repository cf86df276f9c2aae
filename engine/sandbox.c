/* sandbox.c - see sandbox.h. Shaped after Suricata's util-lua-sandbox.c
 * (allocator limit, instruction limit, allow-list) and lua.c's docall
 * (message handler with traceback) and laction (a signal that sets a hook).
 *
 * What bounds a sandboxed call, honestly (rule defaults; issue 8):
 * - memory: the allocator refuses growth past 64 MiB (exact accounting).
 * - Lua work: a count hook, 10M VM instructions per sandbox_call (~50 ms),
 *   re-armed at count 1 once spent so the script's own pcall cannot go on.
 * - depth: call/return hooks count nested calls, 200 per sandbox_call (the
 *   C-call limit of stock Lua, LUAI_MAXCCALLS, is also 200; the shipped
 *   rules nest < 10). Lua-to-Lua calls have no other limit in stock 5.4
 *   but the 1M-slot stack: deep recursion cost 3 s per deal before.
 * - wall clock: 1000 ms per sandbox_call, C work included. A watchdog
 *   thread signals the thread; the handler only sets a hook (see "the
 *   wall-clock deadline" below), so the stop happens at the next Lua
 *   instruction or function call - C work in a loop (1000 x upper() on
 *   3 MB, ~10 s otherwise) stops within ~1 s + one C call. Why 1000 ms
 *   and not 250: on the test VM page faults cost ~50 us, a rule touching
 *   20 MB of fresh strings took 0.29 s (more under ASan), and a spurious
 *   time-out switches a rule off for the run; the shipped rules take
 *   ~5 us each. Cost: publishing the deadline is a vDSO clock read and two
 *   atomic stores; with the depth hooks, the 7 shipped rules went from
 *   ~30 to ~40-55 us per deal (noisy VM).
 * - one C function that loops without calling back cannot be interrupted
 *   by any hook. Those reachable from sandboxed code are bounded before
 *   they run (sandbox_str.c): pattern matching runs on our own matcher
 *   with 4M steps per call (~27 ms at ~7 ns a step; the stock matcher is
 *   exponential on ("a*"):rep(12).."b"); plain find is memmem (linear);
 *   string subjects and results of find/match/gmatch/gsub/rep/upper/lower/
 *   reverse/format and load's chunks are capped at 4 MiB (deal fields are
 *   < 10 KB; the memory-hoarding test builds 1.2 MB strings); table.move/
 *   concat/unpack/insert/remove/sort at 4M elements (the most a 64 MiB cap
 *   can hold as 16-byte values; __len may claim more).
 * - finalizers run with hooks off (lgc.c GCTM), inside any allocation, GC
 *   step or lua_close, so nothing could stop a looping one: sandboxed
 *   setmetatable refuses a metatable with __gc (and a __gc added later is
 *   never called: Lua marks objects only at setmetatable).
 * Not bounded: the engine's own C bindings reachable from rules (prm.date,
 *   cjson, prm.map) are linear in their input, which the caps above bound
 *   (prm.info & co. cut a line at 16 KiB and redact in O(length x secrets));
 *   a connector's method calls on strings use the job's stock string
 *   table (only its _ENV copies are bounded); the bounded matcher accepts
 *   the stock pattern syntax but a gsub over a 4 MiB subject may need more
 *   than 4M steps and is then refused as "pattern too complex". */
#include "sandbox.h"

#include <lauxlib.h>
#include <lualib.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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

/*                 name        modules        memory       instructions  time ms  depth  string  steps  span */
static const sandbox_kind_spec kinds[SANDBOX_NKINDS] = {
    [SANDBOX_JOB] = { "job", NULL, 0, 0, 0, 0, 0, 0, 0 },
    /* Connectors run inside the ingest job's state (a separate state would
     * copy every record across): they share its memory, budget and clock,
     * and only their own _ENV's string and table functions are bounded
     * (method calls on strings use the job's string table). */
    [SANDBOX_CONNECTOR] = { "connector", connector_mods, 0, 0, 0, 0, 0, SANDBOX_RULE_STEPS, 0 },
    [SANDBOX_RULE] = { "rule", rule_mods, SANDBOX_RULE_MEM, SANDBOX_RULE_INSTR, SANDBOX_RULE_TIME_MS,
                       SANDBOX_RULE_DEPTH, SANDBOX_RULE_STR, SANDBOX_RULE_STEPS, SANDBOX_RULE_SPAN },
    /* A prompt shapes text from a run's facts: a tenth of a rule's memory,
     * the same budget per call. */
    [SANDBOX_PROMPT] = { "prompt", prompt_mods, 16u << 20, SANDBOX_RULE_INSTR, SANDBOX_RULE_TIME_MS,
                         SANDBOX_RULE_DEPTH, SANDBOX_RULE_STR, SANDBOX_RULE_STEPS, SANDBOX_RULE_SPAN },
    /* A scenario re-runs forecasts: more memory, 100x a rule's budget. */
    [SANDBOX_SCENARIO] = { "scenario", scenario_mods, 256u << 20, 100 * SANDBOX_RULE_INSTR,
                           100 * SANDBOX_RULE_TIME_MS, SANDBOX_RULE_DEPTH, 16 * SANDBOX_RULE_STR,
                           10 * SANDBOX_RULE_STEPS, 16 * SANDBOX_RULE_SPAN },
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

/* Counted every HOOK_EVERY instructions. Once a limit is hit the hook
 * re-arms to fire on every instruction and call, so a script's own pcall
 * cannot swallow the error and carry on (Redis's timeout hook). */
enum { HOOK_EVERY = 1000 };

static void limit_hook(lua_State *L, lua_Debug *ar);
static int msg_handler(lua_State *L);

/* [-0, +1, m] "file:line: " of the innermost Lua function running: a
 * hook may fire at the call of a C function, where luaL_where has none. */
static void push_where(lua_State *L)
{
    lua_Debug d;
    for (int lv = 0; lua_getstack(L, lv, &d); lv++) {
        if (lua_getinfo(L, "Sl", &d) && d.currentline > 0) {
            lua_pushfstring(L, "%s:%d: ", d.short_src, d.currentline);
            return;
        }
    }
    lua_pushliteral(L, "");
}

/* may raise: the message of the limit that stops this call. */
static void raise_stop(lua_State *L, sandbox_ctx *c)
{
    push_where(L);
    if (c->limit_hit == SANDBOX_LIMIT_TIME)
        lua_pushfstring(L, "time limit exceeded (%d ms)", (int)c->time_limit_ms);
    else if (c->limit_hit == SANDBOX_LIMIT_DEPTH)
        lua_pushfstring(L, "recursion limit exceeded (%d levels)", c->depth_limit);
    else
        lua_pushfstring(L, "instruction limit exceeded (%I instructions)", (lua_Integer)c->instr_limit);
    lua_concat(L, 2);
    lua_error(L);
}

/* may raise */
static void stop(lua_State *L, sandbox_ctx *c, sandbox_limit what)
{
    c->limit_hit = what;
    lua_sethook(L, limit_hook, LUA_MASKCALL | LUA_MASKRET | LUA_MASKCOUNT, 1);
    raise_stop(L, c);
}

static int stopping(const sandbox_ctx *c)
{
    return c->limit_hit == SANDBOX_LIMIT_TIME || c->limit_hit == SANDBOX_LIMIT_DEPTH ||
           c->limit_hit == SANDBOX_LIMIT_INSTR;
}

/* may raise (it is the point). Count events spend the instruction budget;
 * call and return events count the depth; once a limit is hit every event
 * raises again - except the return hooks and the call of sandbox_call's
 * own message handler, where a raise would turn the message into "error
 * in error handling". */
static void limit_hook(lua_State *L, lua_Debug *ar)
{
    sandbox_ctx *c = sandbox_ctx_of(L);
    if (c->time_exceeded && c->limit_hit != SANDBOX_LIMIT_TIME) {
        if (ar->event == LUA_HOOKRET) return;
        stop(L, c, SANDBOX_LIMIT_TIME);
    }
    if (stopping(c)) {
        if (ar->event == LUA_HOOKRET) return;
        if (ar->event == LUA_HOOKCALL && lua_getinfo(L, "f", ar)) {
            int handler = lua_tocfunction(L, -1) == msg_handler;
            lua_pop(L, 1);
            if (handler) return;
        }
        raise_stop(L, c);
    }
    switch (ar->event) {
    case LUA_HOOKCALL:
        if (!c->depth_limit || ++c->depth <= c->depth_limit) return;
        /* Frames unwound by an error return no hook, so the count may be
         * high: check the real stack and resync (amortised: only here). */
        lua_Debug d;
        if (lua_getstack(L, c->depth_base + c->depth_limit, &d)) stop(L, c, SANDBOX_LIMIT_DEPTH);
        int n = c->depth_base;
        while (lua_getstack(L, n, &d)) n++;
        c->depth = n - c->depth_base;
        return;
    case LUA_HOOKRET:
        if (c->depth > 0) c->depth--;
        return;
    case LUA_HOOKCOUNT:
        if (!c->instr_limit) return;
        c->instr_used += HOOK_EVERY;
        if (c->instr_used > c->instr_limit) {
            c->instr_exceeded = 1;
            stop(L, c, SANDBOX_LIMIT_INSTR);
        }
        return;
    default:
        return;
    }
}

static void set_hook(lua_State *L, sandbox_ctx *c)
{
    if (!c->instr_limit && !c->depth_limit && !c->time_limit_ms) return;
    int mask = (c->instr_limit ? LUA_MASKCOUNT : 0) | (c->depth_limit ? LUA_MASKCALL | LUA_MASKRET : 0);
    lua_sethook(L, mask ? limit_hook : NULL, mask, HOOK_EVERY);
}

/* ---- the wall-clock deadline -------------------------------------------
 * A watchdog thread ticks every WATCH_TICK_MS and compares the clock with
 * the deadline each engine thread publishes when it enters a timed
 * sandbox_call (two atomic stores and a vDSO clock read: a POSIX timer
 * armed per call cost ~18 us in two syscalls, 6x a rule evaluation). Past
 * the deadline it sends DEADLINE_SIG to that thread, whose handler only
 * calls lua_sethook on the state being run - what lua.c's SIGINT handler
 * does, and the one thing the Lua manual says may be done asynchronously -
 * so the hook raises at the next instruction or call, including the first
 * one after a long C function returns. Generations keep a late signal from
 * stopping the next call. A realtime signal, not SIGALRM: libcurl's
 * resolver uses alarm(). */
#define DEADLINE_SIG (SIGRTMIN + 2)
enum { WATCH_TICK_MS = 5, WATCH_SLOTS = 64 };

typedef struct watch_slot {
    _Atomic int64_t deadline_ns;       /* 0: no timed call running */
    _Atomic unsigned gen, kill_gen;
    pthread_t thread;
} watch_slot;

static watch_slot slots[WATCH_SLOTS];
static _Atomic int nslots;
static pthread_once_t watch_once = PTHREAD_ONCE_INIT;
static int watch_ok;

static _Thread_local struct armed {
    lua_State *L;
    sandbox_ctx *c;
    unsigned gen;
} armed;
static _Thread_local watch_slot *my_slot;

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void on_deadline(int sig)
{
    (void)sig;
    lua_State *L = armed.L;
    if (!L || !my_slot || armed.gen != atomic_load(&my_slot->kill_gen)) return;
    armed.c->time_exceeded = 1;
    lua_sethook(L, limit_hook, LUA_MASKCALL | LUA_MASKRET | LUA_MASKCOUNT, 1);
}

static void *watchdog(void *arg)
{
    (void)arg;
    struct timespec tick = { 0, WATCH_TICK_MS * 1000000L };
    for (;;) {
        nanosleep(&tick, NULL);
        int64_t now = mono_ns();
        int n = atomic_load(&nslots);
        for (int i = 0; i < n && i < WATCH_SLOTS; i++) {
            watch_slot *w = &slots[i];
            unsigned g = atomic_load(&w->gen);
            int64_t d = atomic_load(&w->deadline_ns);
            if (!d || now < d || atomic_load(&w->gen) != g || atomic_load(&w->kill_gen) == g) continue;
            atomic_store(&w->kill_gen, g);
            pthread_kill(w->thread, DEADLINE_SIG);
        }
    }
    return NULL;
}

static void watch_start(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_deadline;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    if (sigaction(DEADLINE_SIG, &sa, NULL) < 0) return;
    /* The watchdog itself never takes the signal. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pthread_t t;
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&at, 64 << 10);
    watch_ok = pthread_create(&t, &at, watchdog, NULL) == 0;
    pthread_attr_destroy(&at);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
}

/* 1 when this thread can take deadlines (the watchdog runs, a slot is free). */
static int watch_ready(void)
{
    pthread_once(&watch_once, watch_start);
    if (!watch_ok) return 0;
    if (my_slot) return 1;
    int i = atomic_fetch_add(&nslots, 1);
    if (i >= WATCH_SLOTS) return 0;
    slots[i].thread = pthread_self();
    my_slot = &slots[i];
    return 1;
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
    c->limit_hit = SANDBOX_LIMIT_NONE;
    int saved_depth = c->depth, saved_base = c->depth_base;
    if (c->depth_limit) {
        lua_Debug d;
        int n = 0;
        while (lua_getstack(L, n, &d)) n++;
        c->depth_base = n;
        c->depth = 0;
    }
    /* The deadline is absolute, so a nested timed call (a rule state run
     * from a job's call) puts the outer one back on the way out. */
    struct armed outer = armed;
    int64_t outer_deadline = 0;
    int timed = c->time_limit_ms > 0 && my_slot;
    if (timed) {
        outer_deadline = atomic_load(&my_slot->deadline_ns);
        c->time_exceeded = 0;
        armed.L = NULL;                  /* no signal acts on a half-set pair */
        armed.c = c;
        armed.gen = atomic_fetch_add(&my_slot->gen, 1) + 1;
        armed.L = L;
        atomic_store(&my_slot->deadline_ns, mono_ns() + (int64_t)c->time_limit_ms * 1000000);
    }
    set_hook(L, c);
    int rc = lua_pcall(L, nargs, nres, base);
    if (timed) {
        atomic_store(&my_slot->deadline_ns, 0);
        armed.L = NULL;
        if (outer.L) {
            outer.gen = atomic_fetch_add(&my_slot->gen, 1) + 1;
            armed.c = outer.c;
            armed.gen = outer.gen;
            armed.L = outer.L;
            atomic_store(&my_slot->deadline_ns, outer_deadline);
        }
    }
    set_hook(L, c);
    c->depth = saved_depth;
    c->depth_base = saved_base;
    lua_remove(L, base);
    if (rc == LUA_OK) {
        c->limit_hit = SANDBOX_LIMIT_NONE;
        return 0;
    }
    c->errors++;
    const char *msg = lua_tostring(L, -1);
    if (rc == LUA_ERRMEM || c->mem_exceeded) {
        c->limit_hit = SANDBOX_LIMIT_MEM;
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

/* setmetatable(t, mt) for sandboxed code: the stock behaviour, except that
 * a metatable with a __gc field is refused. Finalizers run with hooks off
 * (lgc.c GCTM), inside any allocation, lua_gc or lua_close: a looping one
 * could never be stopped. A __gc added to mt later does not count: Lua
 * marks an object for finalization only when its metatable is set. */
static int safe_setmetatable(lua_State *L)
{
    int t = lua_type(L, 2);
    luaL_checktype(L, 1, LUA_TTABLE);
    luaL_argexpected(L, t == LUA_TNIL || t == LUA_TTABLE, 2, "nil or table");
    if (t == LUA_TTABLE) {
        lua_pushliteral(L, "__gc");
        int has_gc = lua_rawget(L, 2) != LUA_TNIL;
        lua_pop(L, 1);
        if (has_gc) {
            sandbox_ctx_of(L)->limit_hit = SANDBOX_LIMIT_SIZE;
            return luaL_error(L, "setmetatable: __gc metamethods are not allowed in sandboxed code");
        }
    }
    if (luaL_getmetafield(L, 1, "__metatable") != LUA_TNIL)
        return luaL_error(L, "cannot change a protected metatable");
    lua_settop(L, 2);
    lua_setmetatable(L, 1);
    return 1;
}

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
        /* In a sandboxed state the real string and table libraries are
         * already bounded (setup); in a job's state bound the copies. */
        if (sandbox_ctx_of(L)->trust == SANDBOX_JOB) {
            if (strcmp(*g, "string") == 0) sandbox_bound_string(L, -1, kind);
            if (strcmp(*g, "table") == 0) sandbox_bound_table(L, -1, kind);
        }
        lua_setfield(L, -2, *g);
    }
    lua_pushcfunction(L, safe_setmetatable);
    lua_setfield(L, -2, "setmetatable");
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
    size_t lim = sandbox_kind_spec_of(kind)->str_limit;
    if (lim && len > lim) {
        sandbox_ctx_of(L)->limit_hit = SANDBOX_LIMIT_SIZE;
        return luaL_error(L, "load: chunk of %I bytes exceeds the %s limit of %d MiB", (lua_Integer)len,
                          sandbox_kind_spec_of(kind)->name, (int)(lim >> 20));
    }
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

/* __index of the prm face: the module's own fields only. Going through the
 * module's metatable would reach its lazy submodules (prm_index) and hand
 * a rule prm.ts, prm.model and prm.store past the kinds table. */
static int raw_field(lua_State *L)
{
    lua_settop(L, 2);
    lua_rawget(L, lua_upvalueindex(1));
    return 1;
}

/* [-1, +1, m] The prm module as sandboxed kinds see it: a proxy whose
 * wall-clock functions raise and that has no lazy submodules. */
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
    lua_pushcclosure(L, raw_field, 1);
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

static int cmp_names(const void *a, const void *b)
{
    return strcmp((const char *)a, (const char *)b);
}

/* fn(ud, name, embedded source or NULL) for names[0..n), in name order. */
static void each_sorted(char (*names)[64], int n, void (*fn)(void *ud, const char *name, const char *src),
                        void *ud)
{
    qsort(names, (size_t)n, sizeof names[0], cmp_names);
    for (int i = 0; i < n; i++) {
        const char *src = NULL;
        for (int j = 0; lualib[j].name; j++)
            if (strcmp(lualib[j].name, names[i]) == 0) src = lualib[j].src;
        fn(ud, names[i], src);
    }
}

int sandbox_each_required(lua_State *L, sandbox_kind kind,
                          void (*fn)(void *ud, const char *name, const char *src), void *ud)
{
    char names[64][64], prefix[16];
    int n = 0, over = 0;
    snprintf(prefix, sizeof prefix, "%d:", (int)kind);
    size_t pl = strlen(prefix);
    lua_getfield(L, LUA_REGISTRYINDEX, "prm.rule_loaded");
    if (lua_istable(L, -1)) {
        lua_pushnil(L);
        while (lua_next(L, -2)) {
            lua_pop(L, 1);
            if (lua_type(L, -1) != LUA_TSTRING) continue;
            const char *k = lua_tostring(L, -1);
            if (strncmp(k, prefix, pl) != 0 || strlen(k + pl) >= sizeof names[0]) continue;
            if (n == 64) {
                over = 1;
                continue;
            }
            snprintf(names[n++], sizeof names[0], "%s", k + pl);
        }
    }
    lua_pop(L, 1);
    each_sorted(names, n, fn, ud);
    return over ? -1 : n;
}

int sandbox_each_allowed(sandbox_kind kind, void (*fn)(void *ud, const char *name, const char *src),
                         void *ud)
{
    char names[64][64];
    int n = 0;
    const char *const *m = sandbox_kind_spec_of(kind)->modules;
    if (m) {
        for (; *m && n < 64; m++) snprintf(names[n++], sizeof names[0], "%s", *m);
    } else {
        /* The job kind: every builtin and every module of the library. */
        for (const struct builtin *b = builtins; b->name && n < 64; b++)
            snprintf(names[n++], sizeof names[0], "%s", b->name);
        for (int i = 0; lualib[i].name && n < 64; i++)
            snprintf(names[n++], sizeof names[0], "%s", lualib[i].name);
    }
    each_sorted(names, n, fn, ud);
    return n;
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
        /* The real string and table libraries, bounded: method calls on
         * strings ("x"):find(...) reach the string table through the
         * string metatable, not through a rule's _ENV. */
        lua_getglobal(L, "string");
        sandbox_bound_string(L, -1, c->trust);
        lua_getglobal(L, "table");
        sandbox_bound_table(L, -1, c->trust);
        lua_pop(L, 2);
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
    /* The kind's wall clock and depth, after setup (which is ours). */
    const sandbox_kind_spec *k = sandbox_kind_spec_of(o->trust);
    c->time_limit_ms = o->time_limit_ms > 0 ? o->time_limit_ms : o->time_limit_ms < 0 ? 0 : k->time_limit_ms;
    c->depth_limit = o->depth_limit > 0 ? o->depth_limit : o->depth_limit < 0 ? 0 : k->depth_limit;
    if (c->time_limit_ms && !watch_ready()) {
        sandbox_close(L);
        prm_error_set(err, "cannot create the sandbox's deadline timer");
        return NULL;
    }
    return L;
}

void sandbox_close(lua_State *L)
{
    if (!L) return;
    sandbox_ctx *c = sandbox_ctx_of(L);
    if (armed.c == c) {
        armed.L = NULL;
        armed.c = NULL;
    }
    lua_close(L);
    free(c);
}
