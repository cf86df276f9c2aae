/* sandbox.h - the lua_State factory: allocator, instruction hook, module
 * allow-list, loader and the one protected call every engine->Lua call
 * goes through.
 *
 * Two trust levels (DESIGN.md):
 *   SANDBOX_JOB   jobs and connectors: Lua's standard libraries plus every
 *                 prm module, including the store.
 *   SANDBOX_RULE  risk flags, triggers, thresholds, prompts: a fresh _ENV
 *                 with an allow-list of base functions, string/table/math/
 *                 utf8, no os/io/debug/package, text-only load, require
 *                 limited to allowed prm modules and the rules/ tree, an
 *                 instruction budget per call and a memory cap. A blocked
 *                 function raises "blocked function: os.execute".
 */
#ifndef PRM_SANDBOX_H
#define PRM_SANDBOX_H

#include <lua.h>
#include <stdint.h>

#include "error.h"

struct store;

typedef enum { SANDBOX_JOB, SANDBOX_RULE } sandbox_trust;

typedef struct sandbox_opts {
    sandbox_trust trust;
    size_t mem_limit;          /* bytes; 0 = unlimited (jobs) */
    long instr_limit;          /* VM instructions per sandbox_call; 0 = unlimited */
    struct store *db;          /* the store the prm.store module opens onto; may be NULL */
    const char *root;          /* project root for require; NULL = "." */
} sandbox_opts;

/* Per-state context, reached with sandbox_ctx(L) (lua_getextraspace). */
typedef struct sandbox_ctx {
    sandbox_trust trust;
    struct store *db;
    size_t mem_used, mem_limit;
    long instr_limit, instr_used;
    int mem_exceeded, instr_exceeded;
    long errors;               /* errors caught by sandbox_call */
    int64_t job_id;
    char root[512];
} sandbox_ctx;

/* Defaults chosen for rules: 64 MiB is ~100x what the shipped rules use on
 * the 1M-deal sample; 10M instructions is ~5000x one rule evaluation, and
 * still stops a runaway loop in ~50 ms. */
#define SANDBOX_RULE_MEM   (64u << 20)
#define SANDBOX_RULE_INSTR 10000000L

lua_State *sandbox_new(const sandbox_opts *opts, prm_error *err);
void sandbox_close(lua_State *L);
sandbox_ctx *sandbox_ctx_of(lua_State *L);

/* Calls the function below nargs arguments with a traceback handler and
 * a fresh instruction budget. On error the stack is left without the
 * function and arguments, err holds "file:line: message" (limits are
 * named: "instruction limit exceeded", "memory limit exceeded"), and -1 is
 * returned. */
int sandbox_call(lua_State *L, int nargs, int nres, prm_error *err);

/* Loads a script file as text (never bytecode); in a rule state its _ENV is
 * a fresh sandbox environment. Pushes the chunk. */
int sandbox_load(lua_State *L, const char *path, prm_error *err);
/* sandbox_load + sandbox_call with nres results. */
int sandbox_dofile(lua_State *L, const char *path, int nres, prm_error *err);

#endif
