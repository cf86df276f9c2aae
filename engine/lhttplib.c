/* lhttplib.c - `prm.http`: the HTTP client for connectors.
 *
 *   local http = require "prm.http"
 *   local c = http.client{ base_url = "https://api.partnerstack.com",
 *                          basic = { pub, secret }, throttle = { 429 },
 *                          retries = 4, budget = 50, timeout = 60 }
 *   local r, err, status = c:request{ method = "GET", path = "/api/v2/deals",
 *                                     query = { limit = 250 } }
 *   -- r.status, r.headers["content-type"], r.body
 *   for page, err in c:pages{ path = "/api/v2/deals", paginator = "cursor", limit = 250,
 *                             items = "data.items", has_more = "data.has_more",
 *                             key = "key", object = "deal" } do
 *     if not page then error(err) end
 *     -- page.items (decoded with cjson), page.page, page.state, page.url
 *   end
 *
 * Options come in one table; an unknown key raises and names it. Failures
 * of the remote side return nil, msg[, status] (pages: false, msg,
 * status, then the iteration ends). Messages and log lines never carry
 * credentials (http.h).
 */
#include <lauxlib.h>
#include <lua.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "http.h"
#include "jsonscan.h"
#include "lprm.h"
#include "paginate.h"
#include "timeutil.h"

int luaopen_cjson(lua_State *L);

#define CLIENT_MT "prm.http.client"
#define PAGES_MT "prm.http.pages"

typedef struct lclient {
    http_client *c;
    lua_State *L;              /* for the log callback, during a request */
    int log_ref;               /* a Lua function, LUA_NOREF: stderr, LUA_REFNIL: off */
} lclient;

/* ---- option tables ---------------------------------------------------- */

/* Raises when table `idx` has a key outside `keys`, naming it. may raise */
static void check_keys(lua_State *L, int idx, const char *what, const char *const *keys)
{
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        const char *k = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
        int ok = 0;
        for (const char *const *p = keys; k && *p && !ok; p++) ok = strcmp(*p, k) == 0;
        if (!ok) {
            luaL_error(L, "%s: unknown option '%s'", what, k ? k : luaL_typename(L, -1));
        }
    }
}

static const char *opt_str(lua_State *L, int t, const char *k, const char *d)
{
    lua_getfield(L, t, k);
    const char *s = lua_isnil(L, -1) ? d : lua_tostring(L, -1);
    if (!lua_isnil(L, -1) && !lua_isstring(L, -1)) luaL_error(L, "option '%s' must be a string", k);
    lua_pop(L, 1);                /* the string stays alive in the table */
    return s;
}

static double opt_num(lua_State *L, int t, const char *k, double d)
{
    lua_getfield(L, t, k);
    double v = d;
    if (!lua_isnil(L, -1)) {
        if (!lua_isnumber(L, -1)) luaL_error(L, "option '%s' must be a number", k);
        v = lua_tonumber(L, -1);
    }
    lua_pop(L, 1);
    return v;
}

/* [-0, +1, m] a table of name=value headers as "Name: value" strings in a
 * userdata-free array kept in a Lua table (so the strings stay alive);
 * fills out[] up to max-1 and NULL-terminates. may raise */
static int header_lines(lua_State *L, int t, const char *field, const char **out, int max)
{
    int n = 0;
    lua_newtable(L);              /* keeps the formatted strings alive */
    int keep = lua_gettop(L);
    lua_getfield(L, t, field);
    if (!lua_isnil(L, -1)) {
        luaL_checktype(L, -1, LUA_TTABLE);
        lua_pushnil(L);
        while (lua_next(L, -2)) {
            if (n >= max - 1) luaL_error(L, "too many headers");
            if (lua_type(L, -2) != LUA_TSTRING || !lua_isstring(L, -1))
                luaL_error(L, "option '%s' must map header names to strings", field);
            const char *line = lua_pushfstring(L, "%s: %s", lua_tostring(L, -2), lua_tostring(L, -1));
            lua_rawseti(L, keep, n + 1);
            out[n++] = line;
            lua_pop(L, 1);
        }
    }
    lua_pop(L, 1);
    out[n] = NULL;
    return n;
}

/* Query pairs sorted by name, so URLs (and the logs) are reproducible.
 * Values may be strings, numbers or booleans. [-0, +1, m] may raise */
static int query_pairs(lua_State *L, int t, const char **out, int max)
{
    int n = 0;
    lua_newtable(L);
    int keep = lua_gettop(L);
    lua_getfield(L, t, "query");
    if (!lua_isnil(L, -1)) {
        luaL_checktype(L, -1, LUA_TTABLE);
        lua_pushnil(L);
        while (lua_next(L, -2)) {
            if (n >= max - 2) luaL_error(L, "too many query parameters");
            if (lua_type(L, -2) != LUA_TSTRING) luaL_error(L, "query keys must be strings");
            if (lua_isboolean(L, -1)) {
                lua_pushstring(L, lua_toboolean(L, -1) ? "true" : "false");
                lua_replace(L, -2);
            } else if (lua_isinteger(L, -1)) {
                lua_pushfstring(L, "%I", lua_tointeger(L, -1));
                lua_replace(L, -2);
            } else if (!lua_isstring(L, -1)) {
                luaL_error(L, "query value '%s' must be a string, number or boolean",
                           lua_tostring(L, -2));
            }
            lua_pushvalue(L, -2);
            lua_rawseti(L, keep, n + 1);
            lua_pushvalue(L, -1);
            lua_rawseti(L, keep, n + 2);
            lua_rawgeti(L, keep, n + 1);
            out[n] = lua_tostring(L, -1);
            lua_pop(L, 1);
            out[n + 1] = lua_tostring(L, -1);
            n += 2;
            lua_pop(L, 1);
        }
        /* insertion sort of pairs by name */
        for (int i = 2; i < n; i += 2)
            for (int j = i; j >= 2 && strcmp(out[j - 2], out[j]) > 0; j -= 2) {
                const char *a = out[j - 2], *b = out[j - 1];
                out[j - 2] = out[j], out[j - 1] = out[j + 1];
                out[j] = a, out[j + 1] = b;
            }
    }
    lua_pop(L, 1);
    out[n] = NULL;
    return n;
}

/* ---- the client ------------------------------------------------------- */

static void on_log(void *ud, const char *line)
{
    lclient *lc = ud;
    if (lc->log_ref == LUA_REFNIL) return;
    if (lc->log_ref == LUA_NOREF || !lc->L) {
        char ts[21];
        instant_iso((int64_t)time(NULL), ts);
        fprintf(stderr, "%s INFO  http %s\n", ts, line);
        return;
    }
    lua_rawgeti(lc->L, LUA_REGISTRYINDEX, lc->log_ref);
    lua_pushstring(lc->L, line);
    if (lua_pcall(lc->L, 1, 0, 0) != LUA_OK) lua_pop(lc->L, 1);   /* a log must not fail a request */
}

static lclient *check_client(lua_State *L)
{
    lclient *lc = luaL_checkudata(L, 1, CLIENT_MT);
    if (!lc->c) luaL_error(L, "attempt to use a closed HTTP client");
    return lc;
}

/* http.client{ base_url=, headers=, basic={user, password}, throttle={429, {status=, body=}},
 *              retries=, budget=, timeout=, connect_timeout=, backoff=, backoff_max=,
 *              retry_after_max=, max_body=, ca_file=, insecure=, secrets={...}, log=fn|false }
 *   -> client   (misuse raises) */
static int l_http_client(lua_State *L)
{
    static const char *const keys[] = { "base_url", "headers", "basic", "throttle", "retries",
        "budget", "timeout", "connect_timeout", "backoff", "backoff_max", "retry_after_max",
        "max_body", "ca_file", "insecure", "secrets", "log", NULL };
    luaL_checktype(L, 1, LUA_TTABLE);
    check_keys(L, 1, "http.client", keys);
    http_opts o;
    memset(&o, 0, sizeof o);
    o.base_url = opt_str(L, 1, "base_url", "");
    const char *hdr[33];
    header_lines(L, 1, "headers", hdr, 33);
    o.headers = hdr;
    lua_getfield(L, 1, "basic");
    if (!lua_isnil(L, -1)) {
        luaL_checktype(L, -1, LUA_TTABLE);
        lua_rawgeti(L, -1, 1);
        lua_rawgeti(L, -2, 2);
        if (!lua_isstring(L, -2) || !lua_isstring(L, -1))
            return luaL_error(L, "option 'basic' must be { user, password } strings");
        o.user = lua_tostring(L, -2);
        o.password = lua_tostring(L, -1);
        lua_pop(L, 2);
    }
    lua_pop(L, 1);
    http_throttle thr[16];
    lua_getfield(L, 1, "throttle");
    if (!lua_isnil(L, -1)) {
        luaL_checktype(L, -1, LUA_TTABLE);
        int n = (int)lua_rawlen(L, -1);
        if (n > 16) return luaL_error(L, "option 'throttle': at most 16 rules");
        for (int i = 0; i < n; i++) {
            lua_rawgeti(L, -1, i + 1);
            thr[i].body = NULL;
            if (lua_isinteger(L, -1)) {
                thr[i].status = (long)lua_tointeger(L, -1);
            } else if (lua_istable(L, -1)) {
                static const char *const tk[] = { "status", "body", NULL };
                check_keys(L, lua_gettop(L), "throttle rule", tk);
                thr[i].status = (long)opt_num(L, -1, "status", 0);
                thr[i].body = opt_str(L, -1, "body", NULL);
            } else {
                return luaL_error(L, "option 'throttle': rule %d must be a status or "
                                  "{ status =, body = }", i + 1);
            }
            lua_pop(L, 1);
        }
        o.throttle = thr;
        o.nthrottle = n;
    }
    lua_pop(L, 1);
    o.retries = (int)opt_num(L, 1, "retries", -1);
    o.budget = (int)opt_num(L, 1, "budget", -1);
    o.timeout_ms = (long)(opt_num(L, 1, "timeout", 0) * 1000);
    o.connect_timeout_ms = (long)(opt_num(L, 1, "connect_timeout", 0) * 1000);
    o.backoff_ms = (long)(opt_num(L, 1, "backoff", 0) * 1000);
    o.backoff_max_ms = (long)(opt_num(L, 1, "backoff_max", 0) * 1000);
    o.retry_after_max_ms = (long)(opt_num(L, 1, "retry_after_max", 0) * 1000);
    o.max_body = (size_t)opt_num(L, 1, "max_body", 0);
    o.ca_file = opt_str(L, 1, "ca_file", NULL);
    lua_getfield(L, 1, "insecure");
    o.insecure = lua_toboolean(L, -1);
    lua_pop(L, 1);
    const char *sec[17];
    int ns = 0;
    lua_getfield(L, 1, "secrets");
    if (!lua_isnil(L, -1)) {
        luaL_checktype(L, -1, LUA_TTABLE);
        for (int i = 1; i <= (int)lua_rawlen(L, -1) && ns < 16; i++) {
            lua_rawgeti(L, -1, i);
            if (lua_isstring(L, -1)) sec[ns++] = lua_tostring(L, -1);
            lua_pop(L, 1);                    /* alive in the options table */
        }
    }
    lua_pop(L, 1);
    sec[ns] = NULL;
    o.secrets = sec;

    lclient *lc = lua_newuserdatauv(L, sizeof *lc, 0);
    lc->c = NULL;
    lc->L = NULL;
    lc->log_ref = LUA_NOREF;
    luaL_setmetatable(L, CLIENT_MT);
    lua_getfield(L, 1, "log");
    if (lua_isfunction(L, -1)) {
        lc->log_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    } else {
        if (lua_toboolean(L, -1) == 0 && !lua_isnil(L, -1)) lc->log_ref = LUA_REFNIL;
        lua_pop(L, 1);
    }
    o.log = on_log;
    o.log_ud = lc;
    prm_error err;
    if (http_client_new(&o, &lc->c, &err) < 0) return luaL_error(L, "%s", err.msg);
    return 1;
}

/* [-0, +1, m] the response as { status, headers, body, attempts, ms, url } */
static void push_response(lua_State *L, const http_response *r)
{
    lua_createtable(L, 0, 6);
    lua_pushinteger(L, r->status);
    lua_setfield(L, -2, "status");
    lua_createtable(L, 0, r->nheaders);
    for (int i = 0; i < r->nheaders; i++) {
        /* A repeated header keeps its first value, as most APIs expect. */
        if (lua_getfield(L, -1, r->headers[i].name) == LUA_TNIL) {
            lua_pop(L, 1);
            lua_pushstring(L, r->headers[i].value);
            lua_setfield(L, -2, r->headers[i].name);
        } else {
            lua_pop(L, 1);
        }
    }
    lua_setfield(L, -2, "headers");
    lua_pushlstring(L, r->body ? r->body : "", r->body_len);
    lua_setfield(L, -2, "body");
    lua_pushinteger(L, r->attempts);
    lua_setfield(L, -2, "attempts");
    lua_pushnumber(L, r->ms);
    lua_setfield(L, -2, "ms");
    lua_pushstring(L, r->url);
    lua_setfield(L, -2, "url");
}

/* The request table's fields into r; strings borrowed from the table and
 * from two keep-alive tables left on the stack. may raise */
static void read_request(lua_State *L, int t, http_request *r, const char **q, const char **h)
{
    r->method = opt_str(L, t, "method", "GET");
    r->path = opt_str(L, t, "path", "");
    query_pairs(L, t, q, 65);
    header_lines(L, t, "headers", h, 33);
    r->query = q;
    r->headers = h;
    lua_getfield(L, t, "body");
    if (!lua_isnil(L, -1)) {
        if (!lua_isstring(L, -1)) luaL_error(L, "option 'body' must be a string");
        r->body = lua_tolstring(L, -1, &r->body_len);
    }
    lua_pop(L, 1);
}

/* c:request{ method=, path=, query=, headers=, body= }
 *   -> { status, headers, body, attempts, ms, url } | nil, msg, status */
static int l_client_request(lua_State *L)
{
    static const char *const keys[] = { "method", "path", "query", "headers", "body", NULL };
    lclient *lc = check_client(L);
    luaL_checktype(L, 2, LUA_TTABLE);
    check_keys(L, 2, "request", keys);
    http_request r;
    memset(&r, 0, sizeof r);
    const char *q[65], *h[33];
    read_request(L, 2, &r, q, h);
    http_response resp;
    prm_error err;
    lc->L = L;
    int rc = http_request_send(lc->c, &r, &resp, &err);
    lc->L = NULL;
    if (rc < 0) {
        luaL_pushfail(L);
        lua_pushstring(L, err.msg);
        lua_pushinteger(L, resp.status);
        http_response_free(&resp);
        return 3;
    }
    push_response(L, &resp);
    http_response_free(&resp);
    return 1;
}

/* c:stats() -> { requests, retries, throttled, bytes, budget_left } */
static int l_client_stats(lua_State *L)
{
    lclient *lc = check_client(L);
    http_stats st;
    http_client_stats(lc->c, &st);
    lua_createtable(L, 0, 5);
    lua_pushinteger(L, st.requests);
    lua_setfield(L, -2, "requests");
    lua_pushinteger(L, st.retries);
    lua_setfield(L, -2, "retries");
    lua_pushinteger(L, st.throttled);
    lua_setfield(L, -2, "throttled");
    lua_pushinteger(L, st.bytes);
    lua_setfield(L, -2, "bytes");
    lua_pushinteger(L, st.budget_left);
    lua_setfield(L, -2, "budget_left");
    return 1;
}

/* c:redact(text) -> text with this client's secrets and the environment's masked */
static int l_client_redact(lua_State *L)
{
    lclient *lc = check_client(L);
    size_t n;
    const char *s = luaL_checklstring(L, 2, &n);
    char *out = malloc(n * 2 + 64);
    if (!out) return luaL_error(L, "out of memory");
    http_redact(lc->c, s, out, n * 2 + 64);
    lua_pushstring(L, out);
    free(out);
    return 1;
}

static int l_client_close(lua_State *L)
{
    lclient *lc = luaL_checkudata(L, 1, CLIENT_MT);
    http_client_free(lc->c);
    lc->c = NULL;
    if (lc->log_ref != LUA_NOREF && lc->log_ref != LUA_REFNIL) {
        luaL_unref(L, LUA_REGISTRYINDEX, lc->log_ref);
        lc->log_ref = LUA_NOREF;
    }
    return 0;
}

/* ---- pages ------------------------------------------------------------ */

typedef struct lpages {
    paginator *p;
    int done;
    int walk;                  /* walk = true */
    json_walker *jw;           /* walk = true: pages walked in C, not decoded */
    unsigned gen;              /* pages walked: a walked page is current while equal */
    char last_key[256];
} lpages;

/* page.walked: the records of the page the iterator walked last, kept in
 * its walker for prm.csv's r:load_json (the page is walked once). The
 * pages userdata is its user value, alive as long as it is. */
typedef struct lwalked { lpages *lp; unsigned gen; } lwalked;

struct json_walker *lhttp_walked(lua_State *L, int idx)
{
    lwalked *w = luaL_testudata(L, idx, LPRM_WALKED_MT);
    if (!w) return NULL;
    if (!w->lp->jw || w->gen != w->lp->gen)
        luaL_error(L, "a walked page is read before the iterator's next page");
    return w->lp->jw;
}

static int l_pages_gc(lua_State *L)
{
    lpages *lp = luaL_checkudata(L, 1, PAGES_MT);
    pg_free(lp->p);
    lp->p = NULL;
    json_walker_free(lp->jw);
    lp->jw = NULL;
    return 0;
}

/* The walk's record callback: the last record's cursor key, kept. */
typedef struct keyscan { lpages *lp; const char *key; size_t klen; int have; } keyscan;

static int last_key(void *ud, long index, json_kind kind, const json_leaf *l, size_t n)
{
    keyscan *k = ud;
    (void)index;
    k->have = 0;
    if (kind != JV_OBJECT) return 0;
    for (size_t i = n; i-- > 0;)
        if (l[i].plen == k->klen && memcmp(l[i].path, k->key, k->klen) == 0) {
            if ((l[i].kind == JV_STRING || l[i].kind == JV_NUMBER) && l[i].n < sizeof k->lp->last_key) {
                memcpy(k->lp->last_key, l[i].v, l[i].n + 1);
                k->have = 1;
            }
            break;
        }
    return 0;
}

static const char *const kind_names[] = { "userdata", "boolean", "boolean", "number", "string",
                                          "table", "table", "missing" };

/* A walked page's facts (the decoded one's, in C). Returns 0, or -1 with
 * msg set to what is malformed. */
static int walk_facts(lua_State *L, lpages *lp, int spec, const char *body, size_t len,
                      pg_facts *f, char *msg, size_t cap)
{
    const char *items_path = opt_str(L, spec, "items", "");
    keyscan ks = { lp, opt_str(L, spec, "key", "key"), 0, 0 };
    ks.klen = strlen(ks.key);
    prm_error err;
    lp->gen++;
    if (json_walk_keep(lp->jw, body, len, items_path, &err) < 0 ||
        json_walk_last(lp->jw, last_key, &ks, &err) < 0) {
        if (strncmp(err.msg, "repeated key", 12) == 0) snprintf(msg, cap, "%s", err.msg);
        else snprintf(msg, cap, "invalid or truncated JSON (%d bytes: %s)", (int)len, err.msg);
        return -1;
    }
    long nitems = 0;
    json_kind ik = json_walk_items(lp->jw, &nitems);
    if (ik == JV_OBJECT) {
        snprintf(msg, cap, "'%s' is an object, not a list", items_path);
        return -1;
    }
    if (ik != JV_ARRAY) {
        snprintf(msg, cap, "'%s' is %s, not a list", *items_path ? items_path : "the body",
                 kind_names[ik]);
        return -1;
    }
    *f = (pg_facts){ nitems, -1, NULL, -1, -1, NULL };
    const json_leaf *x;
    const char *has_more = opt_str(L, spec, "has_more", NULL);
    if (has_more && (x = json_walk_get(lp->jw, has_more)) && (x->kind == JV_TRUE || x->kind == JV_FALSE))
        f->has_more = x->kind == JV_TRUE;
    const char *done = opt_str(L, spec, "done", NULL);
    if (done && (x = json_walk_get(lp->jw, done)) && (x->kind == JV_TRUE || x->kind == JV_FALSE))
        f->done = x->kind == JV_TRUE;
    const char *total = opt_str(L, spec, "total", NULL);
    if (total && (x = json_walk_get(lp->jw, total)) && x->kind == JV_NUMBER) {
        double d = strtod(x->v, NULL);   /* a count: a whole number in range, else left unread */
        if (d >= 0 && d <= 1e15 && d == (double)(long)d) f->total = (long)d;
    }
    const char *next = opt_str(L, spec, "next", NULL);
    if (next && (x = json_walk_get(lp->jw, next)) && x->kind == JV_STRING) f->next_url = x->v;
    if (nitems > 0 && ks.have) f->last_key = lp->last_key;
    return 0;
}

/* [-0, +1, -] the value at a dotted path ("data.items") of the table at
 * idx, or nil when a step is missing or not a table. */
static int push_path(lua_State *L, int idx, const char *path)
{
    idx = lua_absindex(L, idx);
    lua_pushvalue(L, idx);
    const char *p = path;
    while (*p) {
        size_t n = strcspn(p, ".");
        if (!lua_istable(L, -1)) {
            lua_pop(L, 1);
            lua_pushnil(L);
            return LUA_TNIL;
        }
        lua_pushlstring(L, p, n);
        lua_gettable(L, -2);
        lua_remove(L, -2);
        p += n;
        if (*p == '.') p++;
    }
    return lua_type(L, -1);
}

/* A short printable excerpt of a body, for "not JSON" messages. */
static void excerpt(const char *s, size_t n, char *out, size_t outlen)
{
    size_t o = 0;
    while (n && (*s == ' ' || *s == '\n' || *s == '\r' || *s == '\t')) s++, n--;
    for (size_t i = 0; i < n && o + 1 < outlen && o < 40; i++)
        out[o++] = (s[i] >= 32 && s[i] < 127) ? s[i] : ' ';
    out[o] = 0;
}

/* The Link header's rel="next" URL, copied into out ("" when none). */
static void link_next(const char *link, char *out, size_t outlen)
{
    out[0] = 0;
    for (const char *p = link; p && *p;) {
        const char *lt = strchr(p, '<'), *gt = lt ? strchr(lt, '>') : NULL;
        if (!gt) return;
        const char *end = strchr(gt, ',');
        size_t seg = end ? (size_t)(end - gt) : strlen(gt);
        char params[256];
        snprintf(params, sizeof params, "%.*s", (int)(seg < 255 ? seg : 255), gt);
        if (strstr(params, "rel=\"next\"") || strstr(params, "rel=next")) {
            size_t n = (size_t)(gt - lt - 1);
            if (n >= outlen) n = outlen - 1;
            memcpy(out, lt + 1, n);
            out[n] = 0;
            return;
        }
        p = end ? end + 1 : NULL;
    }
}

static int fail_page(lua_State *L, lpages *lp, long status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    lp->done = 1;
    lua_pushboolean(L, 0);     /* false, not nil: a generic for would stop silently */
    lua_pushvfstring(L, fmt, ap);
    va_end(ap);
    lua_pushinteger(L, status);
    return 3;
}

/* [-0, +0, m] A page table's common fields (on the table at the top);
 * returns 1, the page. */
static int page_fields(lua_State *L, lpages *lp, long page, const char *url, long status, int hdrs)
{
    lua_pushinteger(L, page);
    lua_setfield(L, -2, "page");
    lua_pushstring(L, pg_state(lp->p));
    lua_setfield(L, -2, "state");
    lua_pushboolean(L, !pg_has_next(lp->p));
    lua_setfield(L, -2, "last");
    lua_pushstring(L, url);
    lua_setfield(L, -2, "url");
    lua_pushinteger(L, status);
    lua_setfield(L, -2, "status");
    lua_pushvalue(L, hdrs);
    lua_setfield(L, -2, "headers");
    return 1;
}

/* Iterator step: upvalues 1 client, 2 spec table, 3 pages userdata,
 * 4 cjson.decode. -> page | false, msg, status | nil (end) */
static int pages_next(lua_State *L)
{
    lclient *lc = luaL_checkudata(L, lua_upvalueindex(1), CLIENT_MT);
    lpages *lp = luaL_checkudata(L, lua_upvalueindex(3), PAGES_MT);
    int spec = lua_upvalueindex(2);
    if (lp->done || !lp->p || !lc->c || !pg_has_next(lp->p)) return 0;
    const char *object = opt_str(L, spec, "object", NULL);
    if (!object) object = opt_str(L, spec, "path", "?");
    http_request r;
    memset(&r, 0, sizeof r);
    const char *q[80], *h[33], *pq[9], *over;
    read_request(L, spec, &r, q, h);
    pg_next(lp->p, &over, pq);
    if (over) {
        r.path = over;
        q[0] = NULL;
    }
    int n = 0;
    while (q[n]) n++;
    for (int i = 0; pq[i] && n < 78; i++) q[n++] = pq[i];
    q[n] = NULL;
    long page = pg_pages(lp->p) + 1;
    http_response resp;
    prm_error err;
    lc->L = L;
    int rc = http_request_send(lc->c, &r, &resp, &err);
    lc->L = NULL;
    if (rc < 0) {
        long st = resp.status;
        http_response_free(&resp);
        return fail_page(L, lp, st, "%s: page %d: %s", object, (int)page, err.msg);
    }
    /* From here on the response is freed before any raise or return. */
    char url[2048], ex[64];
    snprintf(url, sizeof url, "%s", resp.url);
    excerpt(resp.body, resp.body_len, ex, sizeof ex);
    long status = resp.status;
    if (status < 200 || status > 299) {
        char red[256];
        http_redact(lc->c, ex, red, sizeof red);
        http_response_free(&resp);
        return fail_page(L, lp, status, "%s: page %d of %s: HTTP %d: %s", object, (int)page, url,
                         (int)status, red);
    }
    lua_createtable(L, 0, resp.nheaders);
    for (int i = 0; i < resp.nheaders; i++) {
        lua_pushstring(L, resp.headers[i].value);
        lua_setfield(L, -2, resp.headers[i].name);
    }
    int hdrs = lua_gettop(L);
    char link[2048] = "";
    const char *lh = http_response_header(&resp, "link");
    if (lh) link_next(lh, link, sizeof link);
    char ctype[128];
    const char *ct = http_response_header(&resp, "content-type");
    snprintf(ctype, sizeof ctype, "%s", ct ? ct : "");
    int html = strstr(ctype, "html") != NULL;
    const char *b = resp.body;
    while (*b == ' ' || *b == '\n' || *b == '\r' || *b == '\t') b++;
    if (html || (*b != '{' && *b != '[')) {
        http_response_free(&resp);
        return fail_page(L, lp, status, "%s: malformed page %d of %s: not JSON (%s%s\"%s\")",
                         object, (int)page, url, html ? ctype : "", html ? ", " : "", ex);
    }
    if (lp->walk) {
        /* Walked in C: the page's facts without a Lua table; the body goes
         * to the caller (r:load_json) as a string. */
        pg_facts f;
        char msg[1200];
        if (walk_facts(L, lp, spec, resp.body, resp.body_len, &f, msg, sizeof msg) < 0) {
            http_response_free(&resp);
            return fail_page(L, lp, status, "%s: malformed page %d of %s: %s", object, (int)page,
                             url, msg);
        }
        if (*link) f.next_url = link;
        if (pg_advance(lp->p, &f, &err) < 0) {
            http_response_free(&resp);
            return fail_page(L, lp, status, "%s: malformed page %d of %s: %s", object, (int)page,
                             url, err.msg);
        }
        lua_createtable(L, 0, 8);
        http_response_free(&resp);
        lwalked *wk = lua_newuserdatauv(L, sizeof *wk, 1);
        wk->lp = lp;
        wk->gen = lp->gen;
        lua_pushvalue(L, lua_upvalueindex(3));
        lua_setiuservalue(L, -2, 1);
        luaL_setmetatable(L, LPRM_WALKED_MT);
        lua_setfield(L, -2, "walked");
        lua_pushinteger(L, f.nitems);
        lua_setfield(L, -2, "count");
        return page_fields(L, lp, page, url, status, hdrs);
    }
    /* The walker's verdict on a repeated envelope key, which cjson would
     * resolve silently to the last value: both paths refuse such a page. */
    if (json_walk(lp->jw, resp.body, resp.body_len, opt_str(L, spec, "items", ""), NULL, NULL,
                  &err) < 0 && strncmp(err.msg, "repeated key", 12) == 0) {
        http_response_free(&resp);
        return fail_page(L, lp, status, "%s: malformed page %d of %s: %s", object, (int)page,
                         url, err.msg);
    }
    lua_pushvalue(L, lua_upvalueindex(4));
    lua_pushlstring(L, resp.body, resp.body_len);
    size_t body_len = resp.body_len;
    http_response_free(&resp);
    if (lua_pcall(L, 1, 1, 0) != LUA_OK)
        return fail_page(L, lp, status, "%s: malformed page %d of %s: invalid or truncated JSON "
                         "(%d bytes: %s)", object, (int)page, url, (int)body_len,
                         lua_tostring(L, -1));
    int doc = lua_gettop(L);
    const char *items_path = opt_str(L, spec, "items", "");
    int t = *items_path ? push_path(L, doc, items_path) : (lua_pushvalue(L, doc), lua_type(L, -1));
    if (t != LUA_TTABLE)
        return fail_page(L, lp, status, "%s: malformed page %d of %s: '%s' is %s, not a list",
                         object, (int)page, url, *items_path ? items_path : "the body",
                         t == LUA_TNIL ? "missing" : lua_typename(L, t));
    int items = lua_gettop(L);
    pg_facts f = { (long)lua_rawlen(L, items), -1, NULL, -1, -1, NULL };
    if (f.nitems == 0) {
        lua_pushnil(L);
        if (lua_next(L, items)) {
            lua_pop(L, 2);
            return fail_page(L, lp, status, "%s: malformed page %d of %s: '%s' is an object, "
                             "not a list", object, (int)page, url, items_path);
        }
    }
    const char *has_more = opt_str(L, spec, "has_more", NULL);
    if (has_more && push_path(L, doc, has_more) == LUA_TBOOLEAN) f.has_more = lua_toboolean(L, -1);
    const char *done = opt_str(L, spec, "done", NULL);
    if (done && push_path(L, doc, done) == LUA_TBOOLEAN) f.done = lua_toboolean(L, -1);
    const char *total = opt_str(L, spec, "total", NULL);
    if (total && push_path(L, doc, total) == LUA_TNUMBER) f.total = (long)lua_tointeger(L, -1);
    const char *next = opt_str(L, spec, "next", NULL);
    if (next && push_path(L, doc, next) == LUA_TSTRING) f.next_url = lua_tostring(L, -1);
    if (*link) f.next_url = link;
    const char *key = opt_str(L, spec, "key", "key");
    if (f.nitems > 0) {
        lua_rawgeti(L, items, (lua_Integer)f.nitems);
        if (lua_istable(L, -1)) {
            lua_getfield(L, -1, key);
            if (lua_type(L, -1) == LUA_TSTRING || lua_type(L, -1) == LUA_TNUMBER)
                f.last_key = lua_tostring(L, -1);
        }
    }
    if (pg_advance(lp->p, &f, &err) < 0)
        return fail_page(L, lp, status, "%s: malformed page %d of %s: %s", object, (int)page,
                         url, err.msg);
    lua_createtable(L, 0, 6);
    lua_pushvalue(L, items);
    lua_setfield(L, -2, "items");
    lua_pushvalue(L, doc);
    lua_setfield(L, -2, "doc");
    return page_fields(L, lp, page, url, status, hdrs);
}

/* c:pages{ method=, path=, query=, headers=, body=, object=,
 *          paginator = "none"|"cursor"|"offset"|"page"|"link"|"next_url",
 *          limit=, limit_param=, cursor_param=, offset_param=, page_param=, first_page=,
 *          items = "data.items", has_more=, key = "key", total=, next=, done=,
 *          resume = page.state, walk = false }
 *   -> iterator over pages { items, doc, page, state, last, url, status, headers };
 *      with walk = true the page is walked once in C (jsonscan.h), not
 *      decoded: { walked, count, page, state, last, url, status, headers },
 *      `walked` its records for csv's r:load_json (until the next page);
 *      a failed page yields false, msg, status and ends the iteration. */
static int l_client_pages(lua_State *L)
{
    static const char *const keys[] = { "method", "path", "query", "headers", "body", "object",
        "paginator", "limit", "limit_param", "cursor_param", "offset_param", "page_param",
        "first_page", "items", "has_more", "key", "total", "next", "done", "resume", "walk", NULL };
    static const char *const kinds[] = { "none", "cursor", "offset", "page", "link", "next_url",
                                         NULL };
    check_client(L);
    luaL_checktype(L, 2, LUA_TTABLE);
    check_keys(L, 2, "pages", keys);
    pg_spec s;
    memset(&s, 0, sizeof s);
    lua_getfield(L, 2, "paginator");
    s.kind = (pg_kind)luaL_checkoption(L, -1, "none", kinds);
    lua_pop(L, 1);
    s.limit = (long)opt_num(L, 2, "limit", 0);
    s.limit_param = opt_str(L, 2, "limit_param", NULL);
    s.cursor_param = opt_str(L, 2, "cursor_param", NULL);
    s.offset_param = opt_str(L, 2, "offset_param", NULL);
    s.page_param = opt_str(L, 2, "page_param", NULL);
    s.first_page = (long)opt_num(L, 2, "first_page", 1);
    const char *resume = opt_str(L, 2, "resume", NULL);
    lpages *lp = lua_newuserdatauv(L, sizeof *lp, 0);
    lp->p = NULL;
    lp->done = 0;
    lp->jw = NULL;
    luaL_setmetatable(L, PAGES_MT);
    lp->gen = 0;
    lua_getfield(L, 2, "walk");
    lp->walk = lua_toboolean(L, -1);
    lua_pop(L, 1);
    if (!(lp->jw = json_walker_new())) return luaL_error(L, "out of memory");
    prm_error err;
    /* The spec's strings stay alive in its table, an upvalue below. */
    if (pg_new(&s, resume, &lp->p, &err) < 0) return luaL_error(L, "pages: %s", err.msg);
    int ud = lua_gettop(L);
    lua_pushvalue(L, 1);
    lua_pushvalue(L, 2);
    lua_pushvalue(L, ud);
    luaL_requiref(L, "cjson", luaopen_cjson, 0);
    lua_getfield(L, -1, "decode");
    lua_remove(L, -2);
    lua_pushcclosure(L, pages_next, 4);
    return 1;
}

/* http.redact_url(url) -> url with userinfo and secret query values masked */
static int l_http_redact_url(lua_State *L)
{
    char out[4096];
    http_redact_url(NULL, luaL_checkstring(L, 1), out, sizeof out);
    lua_pushstring(L, out);
    return 1;
}

/* http.retry_after(value [, now]) -> milliseconds | nil */
static int l_http_retry_after(lua_State *L)
{
    long ms = http_retry_after_ms(luaL_checkstring(L, 1), (long)luaL_optinteger(L, 2, time(NULL)));
    if (ms < 0) luaL_pushfail(L);
    else lua_pushinteger(L, ms);
    return 1;
}

int luaopen_prm_http(lua_State *L)
{
    static const luaL_Reg methods[] = {
        { "request", l_client_request }, { "pages", l_client_pages }, { "stats", l_client_stats },
        { "redact", l_client_redact }, { "close", l_client_close }, { NULL, NULL },
    };
    static const luaL_Reg fns[] = {
        { "client", l_http_client }, { "redact_url", l_http_redact_url },
        { "retry_after", l_http_retry_after }, { NULL, NULL },
    };
    if (luaL_newmetatable(L, CLIENT_MT)) {
        luaL_newlib(L, methods);
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, l_client_close);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, l_client_close);
        lua_setfield(L, -2, "__close");
    }
    lua_pop(L, 1);
    if (luaL_newmetatable(L, PAGES_MT)) {
        lua_pushcfunction(L, l_pages_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_pop(L, 1);
    luaL_newmetatable(L, LPRM_WALKED_MT);
    lua_pop(L, 1);
    luaL_newlib(L, fns);
    return 1;
}
