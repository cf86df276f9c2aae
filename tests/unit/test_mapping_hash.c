/* test_mapping_hash.c - the write-back mapping's identity (issue 10): a
 * score run rebuilds payloads when the connector file, a module it
 * requires, the engine version or the volatile keys change, and only then.
 * The modules come from the sandbox's record of what a script required. */
#include <lauxlib.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "sandbox.h"
#include "scoring.h"
#include "tap.h"

typedef struct seen {
    char names[8][64];
    int embedded[8];
    int n;
} seen;

static void note(void *ud, const char *name, const char *src)
{
    seen *s = ud;
    if (s->n < 8) {
        snprintf(s->names[s->n], sizeof s->names[0], "%s", name);
        s->embedded[s->n] = src != NULL && strlen(src) > 0;
        s->n++;
    }
}

int main(void)
{
    char path[256];
    snprintf(path, sizeof path, "/tmp/prmcast-conn-%d.lua", (int)getpid());
    FILE *f = fopen(path, "w");
    fputs("local map = require 'prm.map'\nlocal cjson = require 'cjson'\n"
          "local again = require 'prm.map'\nreturn { name = 'x' }\n", f);
    fclose(f);
    prm_error err;
    sandbox_opts o = { SANDBOX_CONNECTOR, 64u << 20, SANDBOX_RULE_INSTR, NULL, ".", 0, 0 };
    lua_State *L = sandbox_new(&o, &err);
    T_OK(L != NULL, "connector state created");
    seen s0 = { .n = 0 };
    T_OK(sandbox_each_required(L, SANDBOX_CONNECTOR, note, &s0) == 0 && s0.n == 0,
         "a fresh state has required nothing");
    T_OK(sandbox_loadfile(L, path, NULL, SANDBOX_CONNECTOR, &err) == 0 &&
         sandbox_call(L, 0, 1, &err) == 0, "a connector requiring prm.map and cjson loads");
    seen s = { .n = 0 };
    int n = sandbox_each_required(L, SANDBOX_CONNECTOR, note, &s);
    T_OK(n == 2 && s.n == 2, "each required module is listed once");
    T_OK(strcmp(s.names[0], "cjson") == 0 && strcmp(s.names[1], "prm.map") == 0,
         "in name order");
    T_OK(!s.embedded[0] && s.embedded[1],
         "cjson is a C builtin (no source), prm.map comes with its embedded source");
    seen r = { .n = 0 };
    T_OK(sandbox_each_required(L, SANDBOX_RULE, note, &r) == 0, "another kind's requires are not listed");
    sandbox_close(L);
    unlink(path);

    /* A require inside a function (writeback calling require later) runs
     * after the hash is taken: the hash covers every module a connector may
     * require. Each one listed loads in a connector state; nothing else does. */
    seen al = { .n = 0 };
    int na = sandbox_each_allowed(SANDBOX_CONNECTOR, note, &al);
    T_OK(na == 4 && al.n == 4 && strcmp(al.names[0], "cjson") == 0 && strcmp(al.names[1], "prm") == 0 &&
         strcmp(al.names[2], "prm.http") == 0 && strcmp(al.names[3], "prm.map") == 0,
         "a connector may require cjson, prm, prm.http, prm.map (name order)");
    T_OK(al.embedded[3] && !al.embedded[0], "prm.map with its embedded source, cjson without");
    L = sandbox_new(&o, &err);
    int all_load = 1;
    for (int i = 0; i < al.n; i++) {
        char chunk[160];
        snprintf(chunk, sizeof chunk, "return function() return require '%s' end", al.names[i]);
        if (luaL_loadstring(L, chunk) != LUA_OK) { all_load = 0; break; }
        sandbox_push_env(L, SANDBOX_CONNECTOR);
        lua_setupvalue(L, -2, 1);
        if (sandbox_call(L, 0, 1, &err) < 0 || sandbox_call(L, 0, 1, &err) < 0) all_load = 0;
        lua_settop(L, 0);
    }
    T_OK(all_load, "each listed module loads from inside a function");
    static const char *const others[] = { "prm.store", "prm.sync", "prm.ingest", "prm.csv", "os", NULL };
    int none = 1;
    for (int i = 0; others[i]; i++) {
        char chunk[160];
        snprintf(chunk, sizeof chunk, "return require '%s'", others[i]);
        luaL_loadstring(L, chunk);
        sandbox_push_env(L, SANDBOX_CONNECTOR);
        lua_setupvalue(L, -2, 1);
        if (sandbox_call(L, 0, 1, &err) == 0) none = 0;
        lua_settop(L, 0);
    }
    T_OK(none, "modules not listed cannot be required by a connector (so the list is complete)");
    sandbox_close(L);

    const char *text = "return { name = 'x' }";
    const char *mods[] = { "cjson", NULL, "prm.map", "local M = {} return M", NULL };
    const char *mods2[] = { "cjson", NULL, "prm.map", "local M = {1} return M", NULL };
    const char *mods3[] = { "cjson", NULL, NULL };
    const char *skip[] = { "ai_last_scored_at", NULL };
    const char *skip2[] = { "ai_last_scored_at", "ai_drivers", NULL };
    char a[65], b[65];
    T_OK(scoring_mapping_digest("v1", text, strlen(text), mods, skip, a) == 0 && strlen(a) == 64,
         "a digest is 64 hex digits");
    scoring_mapping_digest("v1", text, strlen(text), mods, skip, b);
    T_OK(strcmp(a, b) == 0, "the same parts give the same digest (runs keep their payloads)");
    scoring_mapping_digest("v2", text, strlen(text), mods, skip, b);
    T_OK(strcmp(a, b) != 0, "another engine version changes it (an upgrade rebuilds payloads)");
    scoring_mapping_digest("v1", text, strlen(text), mods2, skip, b);
    T_OK(strcmp(a, b) != 0, "an edited required module changes it");
    scoring_mapping_digest("v1", text, strlen(text), mods3, skip, b);
    T_OK(strcmp(a, b) != 0, "requiring one module fewer changes it");
    scoring_mapping_digest("v1", text, strlen(text) - 1, mods, skip, b);
    T_OK(strcmp(a, b) != 0, "an edited connector text changes it");
    scoring_mapping_digest("v1", text, strlen(text), mods, skip2, b);
    T_OK(strcmp(a, b) != 0, "another volatile key changes it");
    /* Parts are delimited: moving a byte from the version into the text is
     * another mapping. */
    scoring_mapping_digest("v", "1return { name = 'x' }", strlen(text) + 1, mods, skip, b);
    T_OK(strcmp(a, b) != 0, "parts are delimited, not concatenated");
    return t_done();
}
