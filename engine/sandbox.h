/* sandbox.h - the lua_State factory: allocator, instruction hook, module
 * allow-list, loader and the one protected call every engine->Lua call
 * goes through.
 *
 * Trust kinds (one table in sandbox.c says what each may use):
 *   SANDBOX_JOB        jobs (`prmcast run`, the CLI's drivers): Lua's standard
 *                      libraries plus every prm module, including the store.
 *   SANDBOX_CONNECTOR  connectors/<prm>.lua: the mapping helpers (prm, prm.map,
 *                      cjson) and prm.http; no io, os, package or debug.
 *   SANDBOX_RULE       risk flags, triggers, thresholds: prm, prm.rules,
 *                      prm.map, cjson and rules.lib.*; time only from ctx.now.
 *   SANDBOX_PROMPT     LLM prompt templates: prm, cjson.
 *   SANDBOX_SCENARIO   what-if scripts: prm, prm.ts, prm.model, cjson.
 * Every kind but JOB gets a fresh _ENV per file with an allow-list of base
 * functions and copies of string (no dump), table, math, utf8; os, io, debug,
 * package and coroutine raise "blocked function: os.execute"; load is text
 * only; prm.now and prm.today raise (their time is ctx.now, the as-of
 * instant). A state's memory cap and per-call instruction budget are its
 * kind's (sandbox_kind_spec); a sandboxed _ENV loaded into a job's state
 * (a connector inside the ingest job) shares the job's limits.
 */
#ifndef PRM_SANDBOX_H
#define PRM_SANDBOX_H

#include <lua.h>
#include <stdint.h>

#include "error.h"

struct store;

typedef enum {
    SANDBOX_JOB, SANDBOX_CONNECTOR, SANDBOX_RULE, SANDBOX_PROMPT, SANDBOX_SCENARIO, SANDBOX_NKINDS
} sandbox_kind;
typedef sandbox_kind sandbox_trust;       /* the old name */

/* Each kind's limits; 0 = unlimited. The measurements behind the rule
 * defaults are in sandbox.c's header comment. */
typedef struct sandbox_kind_spec {
    const char *name;                     /* "rule" */
    const char *const *modules;           /* what require may give (NULL-terminated) */
    size_t mem_limit;                     /* bytes */
    long instr_limit;                     /* VM instructions per sandbox_call */
    long time_limit_ms;                   /* wall clock per sandbox_call, C work included */
    int depth_limit;                      /* nested calls per sandbox_call */
    size_t str_limit;                     /* bytes of a string subject or result (string.*) */
    long match_steps;                     /* pattern-matching steps per find/match/gsub call */
    long table_span;                      /* elements of one table.move/concat/unpack/... */
} sandbox_kind_spec;

/* Which limit stopped the last failed sandbox_call (sandbox_ctx.limit_hit). */
typedef enum {
    SANDBOX_LIMIT_NONE, SANDBOX_LIMIT_INSTR, SANDBOX_LIMIT_MEM, SANDBOX_LIMIT_TIME,
    SANDBOX_LIMIT_DEPTH, SANDBOX_LIMIT_SIZE
} sandbox_limit;

const sandbox_kind_spec *sandbox_kind_spec_of(sandbox_kind k);

typedef struct sandbox_opts {
    sandbox_kind trust;
    size_t mem_limit;          /* bytes; 0 = unlimited (jobs) */
    long instr_limit;          /* VM instructions per sandbox_call; 0 = unlimited */
    struct store *db;          /* the store the prm.store module opens onto; may be NULL */
    const char *root;          /* project root for require; NULL = "." */
    /* The kind's wall-clock and depth limits apply unless set here:
     * > 0 overrides, < 0 turns off (tests). */
    long time_limit_ms;
    int depth_limit;
} sandbox_opts;

/* The engine context of a state, reached with sandbox_ctx_of(L)
 * (lua_getextraspace): store, project root, as-of clock, job. */
typedef struct sandbox_ctx {
    sandbox_kind trust;
    struct store *db;
    size_t mem_used, mem_limit;
    long instr_limit, instr_used;
    int mem_exceeded, instr_exceeded;
    long time_limit_ms;
    int depth_limit, depth, depth_base;
    volatile int time_exceeded;        /* set by the deadline signal */
    sandbox_limit limit_hit;           /* of the last failed call */
    long errors;               /* errors caught by sandbox_call */
    int64_t job_id;
    int64_t now;               /* the as-of instant (clock_now at creation) */
    char root[512];
} sandbox_ctx;

/* Defaults chosen for rules: 64 MiB is ~100x what the shipped rules use on
 * the 1M-deal sample; 10M instructions is ~5000x one rule evaluation, and
 * still stops a runaway loop in ~50 ms. The others: see sandbox.c. */
#define SANDBOX_RULE_MEM   (64u << 20)
#define SANDBOX_RULE_INSTR 10000000L
#define SANDBOX_RULE_TIME_MS 1000L
#define SANDBOX_RULE_DEPTH 200
#define SANDBOX_RULE_STR   (4u << 20)
#define SANDBOX_RULE_STEPS 4000000L
#define SANDBOX_RULE_SPAN  (1L << 22)

lua_State *sandbox_new(const sandbox_opts *opts, prm_error *err);
void sandbox_close(lua_State *L);
sandbox_ctx *sandbox_ctx_of(lua_State *L);

/* Calls the function below nargs arguments with a traceback handler, a
 * fresh instruction budget, call depth and wall-clock deadline. On error
 * the stack is left without the function and arguments, err holds
 * "file:line: message" (limits are named: "instruction limit exceeded",
 * "memory limit exceeded", "time limit exceeded", "recursion limit
 * exceeded", "... exceeds the rule limit of 4 MiB", "pattern too
 * complex"), ctx->limit_hit says which limit (SANDBOX_LIMIT_NONE for a
 * plain error), and -1 is returned. */
int sandbox_call(lua_State *L, int nargs, int nres, prm_error *err);

/* Loads a script file once, as text (never bytecode), under the chunk name
 * `chunkname` ("@rules/flags/x.lua"; NULL: "@" + path), and gives it a
 * fresh environment of `kind` unless kind is SANDBOX_JOB. Pushes the chunk;
 * on failure pushes nothing and returns -1 with "file:line: message". */
int sandbox_loadfile(lua_State *L, const char *path, const char *chunkname, sandbox_kind kind,
                     prm_error *err);
/* sandbox_loadfile with the state's own kind and the path as name. */
int sandbox_load(lua_State *L, const char *path, prm_error *err);
/* [-0, +1, m] a fresh environment table of `kind` (for chunks the caller
 * loads itself). */
void sandbox_push_env(lua_State *L, sandbox_kind kind);
/* sandbox_load + sandbox_call with nres results. */
int sandbox_dofile(lua_State *L, const char *path, int nres, prm_error *err);

/* The modules code of `kind` has required in L so far, in name order:
 * fn(ud, name, src) once each, src the module's embedded Lua source, or
 * NULL when it has none (a C builtin, whose code is the binary's; a
 * project file such as rules/lib/x.lua). -> how many, or -1
 * when more than 64 (the first 64 are passed). What a loaded script
 * depends on beyond its own text (the write-back mapping hash). */
int sandbox_each_required(lua_State *L, sandbox_kind kind,
                          void (*fn)(void *ud, const char *name, const char *src), void *ud);
/* Every module code of `kind` may require (its allow-list; the job kind's
 * is every builtin and library module), in name order, as
 * sandbox_each_required passes them -> how many. What a script of the kind
 * can depend on at any time, a require inside a function included: the
 * write-back mapping hash covers these, not only what loading required. */
int sandbox_each_allowed(sandbox_kind kind, void (*fn)(void *ud, const char *name, const char *src),
                         void *ud);

/* Internal (sandbox_str.c): replace the functions of the string / table
 * library table at `tab` by versions bounded by `kind`'s limits. */
void sandbox_bound_string(lua_State *L, int tab, sandbox_kind kind);
void sandbox_bound_table(lua_State *L, int tab, sandbox_kind kind);

#endif
