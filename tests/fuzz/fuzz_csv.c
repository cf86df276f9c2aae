/* fuzz_csv.c - libFuzzer target: prm.csv (engine/lcsvlib.c over libcsv) as
 * the ingest uses it, on arbitrary file contents. Beyond memory safety it
 * checks the reader's promises: every value is NUL-free valid UTF-8, a
 * bad row comes back as false + line + message, and line numbers never go
 * backwards (the ingest's resume cursor relies on that). */
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "lprm.h"

static const char check[] =
    "local csv, path = ...\n"
    "local r = csv.open(path, { max_record = 2048 })\n"
    "if not r then return end\n"
    "for _, h in ipairs(r:header()) do assert(utf8.len(h), 'header not UTF-8') end\n"
    "local last = 0\n"
    "while true do\n"
    "  local rec, line, msg = r:read()\n"
    "  if rec == nil then break end\n"
    "  assert(math.type(line) == 'integer' and line >= last, 'line went backwards')\n"
    "  last = line\n"
    "  if rec == false then assert(type(msg) == 'string' and #msg > 0, 'no message')\n"
    "  else for k, v in pairs(rec) do\n"
    "    assert(type(v) == 'string' and #v > 0, 'empty value')\n"
    "    assert(utf8.len(v) and not v:find('\\0', 1, true), 'value not NUL-free UTF-8')\n"
    "  end end\n"
    "end\n"
    "r:close()\n";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char path[64];
    if (!path[0]) snprintf(path, sizeof path, "/tmp/prmcast-fuzz-csv-%d.csv", (int)getpid());
    FILE *f = fopen(path, "wb");
    if (!f) abort();
    fwrite(data, 1, size, f);
    fclose(f);
    lua_State *L = luaL_newstate();
    luaL_openlibs(L);
    if (luaL_loadbuffer(L, check, sizeof check - 1, "=fuzz_csv") != LUA_OK) abort();
    luaopen_prm_csv(L);
    lua_pushstring(L, path);
    if (lua_pcall(L, 2, 0, 0) != LUA_OK) {
        fprintf(stderr, "fuzz_csv: %s\n", lua_tostring(L, -1));
        abort();
    }
    lua_close(L);
    return 0;
}
