/* lprm.h - the openers of the engine's Lua modules.
 *
 * Each prm.<name> module is one l<name>lib.c / l<name>.c file, the only kind
 * of file that includes both lua.h and an engine header. sandbox.c holds the
 * one table of builtins (the allow-list) that maps module names to these.
 */
#ifndef PRM_LPRM_H
#define PRM_LPRM_H

#include <lua.h>

int luaopen_prm(lua_State *L);        /* lprmlib.c: dates, periods, log, json */
int luaopen_prm_store(lua_State *L);  /* lstorelib.c: the SQLite store */
int luaopen_prm_csv(lua_State *L);    /* lcsvlib.c: streaming CSV reader */
int luaopen_prm_ts(lua_State *L);     /* lts.c: time-series forecasting */
int luaopen_prm_model(lua_State *L);  /* lmodel.c: logistic / GBDT models */
int luaopen_prm_scoring(lua_State *L); /* lscoringlib.c: train, score */
int luaopen_prm_engine(lua_State *L); /* lprmlib.c: the engine's loaders (jobs only) */

/* The one options-table checker of the bindings: raises "fn: unknown
 * option 'key'" for any key of the table at idx not in keys (NULL-ended);
 * nothing when the argument is none or nil. may raise */
void lprm_check_options(lua_State *L, int idx, const char *fn, const char *const *keys);

/* Encodes the Lua value at idx as JSON into j (json.h): sorted object keys,
 * an empty table as []. When cmp is not NULL, the same text with the keys
 * named in skip (NULL-terminated) left out at any depth goes into cmp in
 * the same walk (the outbox's comparison text). 0, or -1 with err.
 * [-0, +0, m] */
struct json;
struct prm_error;
int lprm_json_encode(lua_State *L, int idx, struct json *j, struct json *cmp, const char *const *skip,
                     struct prm_error *err);
int luaopen_prm_http(lua_State *L);   /* lhttplib.c: HTTP client, paginators */
/* lhttplib.c: the walker holding a walked page's records (c:pages{walk =
 * true}'s page.walked) at idx, NULL when idx is not one; raises when the
 * iterator has moved past that page. may raise */
#define LPRM_WALKED_MT "prm.http.walked"
struct json_walker;
struct json_walker *lhttp_walked(lua_State *L, int idx);
/* lstorelib.c: the store of a prm.store db object (raises otherwise). */
struct store;
struct store *lstore_check(lua_State *L, int idx);

#endif
