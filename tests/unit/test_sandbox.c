/* test_sandbox.c - the rule sandbox: blocked functions, the instruction
 * budget, the memory cap, text-only loading, the require allow-list; each
 * failure gives a clear message and the state stays usable. */
#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "json.h"
#include "lprm.h"
#include "sandbox.h"
#include "tap.h"

static char path[256];

/* Writes src to a rule file and runs it; returns 0 or -1 with err. */
static int run(lua_State *L, const char *src, prm_error *err)
{
    FILE *f = fopen(path, "w");
    fputs(src, f);
    fclose(f);
    err->msg[0] = 0;
    int rc = sandbox_dofile(L, path, 1, err);
    if (rc == 0) lua_pop(L, 1);
    return rc;
}

static int has(const prm_error *e, const char *s) { return strstr(e->msg, s) != NULL; }

int main(void)
{
    snprintf(path, sizeof path, "/tmp/prmcast-rule-%d.lua", (int)getpid());
    prm_error err;
    sandbox_opts o = { SANDBOX_RULE, SANDBOX_RULE_MEM, SANDBOX_RULE_INSTR, NULL, ".", 0, 0 };
    lua_State *L = sandbox_new(&o, &err);
    T_OK(L != NULL, "rule state created");
    {
        /* One walk, two texts: the whole value, and the outbox's comparison
         * text with the volatile keys left out at any depth. */
        const char *const skip[] = { "ai_last_scored_at", NULL };
        (void)luaL_dostring(L, "return { b = 1, ai_last_scored_at = 'x', sub = { ai_last_scored_at = 2.5, "
                         "c = { 1, 'q\"' }, d = {} }, e = true }");
        json j, c;
        json_init(&j);
        json_init(&c);
        T_OK(lprm_json_encode(L, -1, &j, &c, skip, &err) == 0, "json encode: payload and comparison text");
        T_OK(strcmp(json_cstr(&j), "{\"ai_last_scored_at\":\"x\",\"b\":1,\"e\":true,\"sub\":"
                                  "{\"ai_last_scored_at\":2.5,\"c\":[1,\"q\\\"\"],\"d\":[]}}") == 0,
             "json encode: the payload keeps every key");
        T_OK(strcmp(json_cstr(&c), "{\"b\":1,\"e\":true,\"sub\":{\"c\":[1,\"q\\\"\"],\"d\":[]}}") == 0,
             "json encode: the comparison text leaves the volatile keys out at every depth");
        printf("# %s\n# %s\n", json_cstr(&j), json_cstr(&c));
        json_free(&j);
        json_free(&c);
        lua_settop(L, 0);
    }
    sandbox_ctx *c = sandbox_ctx_of(L);

    T_OK(run(L, "return 1 + 1", &err) == 0, "plain code runs");
    T_OK(run(L, "return os.execute('touch /tmp/pwned')", &err) < 0 &&
         has(&err, "blocked function: os.execute") && has(&err, ".lua:1:"),
         "os.execute is blocked, with file:line");
    T_OK(access("/tmp/pwned", F_OK) != 0, "and nothing ran");
    T_OK(run(L, "local f = io.open('/etc/passwd') return f", &err) < 0 &&
         has(&err, "blocked function: io.open"), "io.open is blocked");
    T_OK(run(L, "return dofile('/etc/passwd')", &err) < 0 && has(&err, "blocked function: dofile"),
         "dofile is blocked");
    T_OK(run(L, "return require('prm.store')", &err) < 0 && has(&err, "not available to rules"),
         "the store is not available to rules");
    T_OK(run(L, "return require('socket')", &err) < 0 && has(&err, "not found"),
         "unknown modules are not found");
    T_OK(run(L, "return string.dump", &err) == 0, "string.dump lookup does not raise");
    T_OK(run(L, "assert(string.dump == nil, 'dump present') return 1", &err) == 0,
         "string.dump is absent");
    T_OK(run(L, "local f, e = load('\\27Lua\\84\\0') assert(f == nil) assert(e:find('binary')) return 1", &err) == 0,
         "load refuses bytecode");
    T_OK(run(L, "local f = load('return x') local ok, e = pcall(f) return 1", &err) == 0,
         "load of text works with a sandbox env");
    T_OK(run(L, "local m = require('prm') return m.date('03/07/2025') == '2025-03-07' or error('x')", &err) == 0,
         "prm is available to rules");
    T_OK(run(L, "x = 1\nlocal t = nil\nreturn t.field", &err) < 0 && has(&err, ".lua:3:"),
         "runtime errors keep file:line");
    T_OK(run(L, "error('boom')", &err) < 0 && has(&err, "boom") && has(&err, ".lua:1:"),
         "error() message and line");

    long before = c->errors;
    T_OK(run(L, "while true do end", &err) < 0 && has(&err, "instruction limit exceeded"),
         "infinite loop stopped by the instruction budget");
    T_OK(run(L, "while true do pcall(function() while true do end end) end", &err) < 0 &&
         has(&err, "instruction limit exceeded"), "pcall cannot swallow the budget");
    T_OK(c->errors == before + 2, "errors are counted");

    size_t mem0 = c->mem_used;
    T_OK(run(L, "local s = string.rep('x', 2^31 - 1) return #s", &err) < 0 &&
         has(&err, "string.rep: result of 2147483647 bytes exceeds the rule limit of 4 MiB") &&
         c->limit_hit == SANDBOX_LIMIT_SIZE, "a 2 GB string.rep is refused before any work");
    T_OK(run(L, "local s = ('x'):rep(4 << 20) return #(s .. s .. s .. s .. s .. s .. s .. s .. s .. s .. s .. s .. s .. s .. s .. s .. s)", &err) < 0 &&
         has(&err, "memory limit exceeded") && c->limit_hit == SANDBOX_LIMIT_MEM,
         "a 68 MiB concatenation meets the memory cap");
    T_OK(run(L, "local t = {} for i = 1, 1e9 do t[i] = {i} end", &err) < 0 &&
         (has(&err, "memory limit exceeded") || has(&err, "instruction limit exceeded") ||
          has(&err, "time limit exceeded")),
         "unbounded table growth is stopped");
    T_OK(c->mem_used < mem0 + (4u << 20), "memory is returned after the failure");

    /* Limits on C-level work (issue 8); tests/sandbox has one file per attack. */
    T_OK(run(L, "return ('a'):rep(25):find(('a*'):rep(12) .. 'b')", &err) < 0 &&
         has(&err, "string.find: pattern too complex") && has(&err, ".lua:1:"),
         "pattern backtracking is stopped, with file:line");
    T_OK(run(L, "return string.find(('a'):rep(25), ('a*'):rep(12) .. 'b')", &err) < 0 &&
         has(&err, "pattern too complex"), "through string.find too");
    T_OK(run(L, "return ('k=v; x=y'):gsub('(%w+)=(%w+)', '%2=%1') == 'v=k; y=x' or error('gsub')", &err) == 0,
         "ordinary patterns still work");
    T_OK(run(L, "return table.move({}, 1, 1 << 40, 1, {})", &err) < 0 &&
         has(&err, "table.move: 1099511627776 elements exceed the rule limit"), "table.move is bounded");
    T_OK(run(L, "return #table.concat({1, 2, 3}, ',') == 5 and table.unpack({1, 2}) == 1 or error('x')", &err) == 0,
         "small table functions still work");
    T_OK(run(L, "local function f() return 1 + f() end return f()", &err) < 0 &&
         has(&err, "recursion limit exceeded (200 levels)") && c->limit_hit == SANDBOX_LIMIT_DEPTH,
         "deep recursion stops at the depth limit");
    T_OK(run(L, "local function f(n) if n == 0 then return 0 end return 1 + f(n - 1) end return f(150)", &err) == 0,
         "150 levels are fine");
    T_OK(run(L, "for i = 1, 50 do pcall(function() local function f() return f() + 1 end f() end) end", &err) < 0 &&
         has(&err, "recursion limit exceeded"), "a pcall cannot swallow the depth limit");
    T_OK(run(L, "local function f(n) if n == 0 then error('x') end return f(n - 1) + 1 end\n"
                "for i = 1, 300 do pcall(f, 100) end\n"
                "local function g(n) if n == 0 then return 0 end return 1 + g(n - 1) end return g(150)", &err) == 0,
         "errors unwinding 100 frames 300 times do not add up to the limit");
    T_OK(run(L, "setmetatable({}, {__gc = function() end})", &err) < 0 &&
         has(&err, "__gc metamethods are not allowed"), "no __gc from sandboxed code");
    T_OK(run(L, "local s = ('x'):rep(3 << 20) for i = 1, 1000 do s:upper() end", &err) < 0 &&
         has(&err, "time limit exceeded (1000 ms)") && has(&err, ".lua:1:") && c->limit_hit == SANDBOX_LIMIT_TIME,
         "C work in a loop meets the wall-clock limit");
    T_OK(run(L, "local f = load((' '):rep(4 << 20) .. 'x = 1')", &err) < 0 && has(&err, "load: chunk of"),
         "load of a huge chunk is refused");
    T_OK(run(L, "return 40 + 2", &err) == 0, "the state still works after every failure");
    T_OK(run(L, "os = nil; string.upper = nil; return 1", &err) == 0, "a rule may scribble on its env");
    T_OK(run(L, "return string.upper('a') == 'A' or error('shared string table')", &err) == 0,
         "but not on the next rule's");
    T_OK(run(L, "return getmetatable('') == false or error('string metatable exposed')", &err) == 0,
         "the string metatable is hidden");
    T_OK(run(L, "local m = require('prm') m.date = nil return 1", &err) < 0 &&
         has(&err, "read-only module"), "a required module cannot be changed");
    T_OK(run(L, "local m = require('prm') rawset(m, 'date', 1) return 1", &err) == 0 &&
         run(L, "return type(require('prm').date) == 'function' or error('module changed')", &err) == 0,
         "rawset on a module only touches the caller's view");
    sandbox_close(L);

    /* A job state is trusted: the standard libraries are there. */
    sandbox_opts j = { SANDBOX_JOB, 0, 0, NULL, ".", 0, 0 };
    L = sandbox_new(&j, &err);
    T_OK(L && run(L, "return os.time() > 0 and io.write ~= nil and prm.date('2025-01-02') or error('x')", &err) == 0,
         "job state has os, io and the prm global");
    T_OK(run(L, "return prm.model ~= nil or error('no prm.model')", &err) == 0, "prm.model reachable as a field");
    sandbox_close(L);
    unlink(path);
    return t_done();
}
