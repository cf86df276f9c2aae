/* lprmlib.c - the core `prm` module: dates, fiscal periods, money, logging.
 *
 *   local prm = require "prm"
 *   prm.date("03/07/2025")            --> "2025-03-07"
 *   prm.instant("1700000000000")      --> "2023-11-14T22:13:20Z"
 *   prm.quarter("2025-03-07")         --> "2025-Q1", 2025, 1
 *   prm.money("$1,234.50")            --> 1234.5
 *   prm.info("loaded %d deals", n)
 *
 * Pure functions only: no store, no files; rules may use it.
 */
#include <lauxlib.h>
#include <lua.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "domain.h"
#include "json.h"
#include "cli.h"
#include "lprm.h"
#include "currency.h"
#include "numparse.h"
#include "sandbox.h"
#include "timeutil.h"

#include "version.h"   /* build/gen: git describe */

/* [-0, +0, v] */
static date_format check_format(lua_State *L, int arg)
{
    date_format f = DATE_AUTO;
    const char *name = luaL_optstring(L, arg, "auto");
    if (date_format_parse(name, &f) < 0)
        luaL_argerror(L, arg, lua_pushfstring(L, "unknown date format '%s' (auto, iso, us, eu,"
                                                 " epoch_ms, epoch_s)", name));
    return f;
}

/* Parses arg 1 (string or number). Returns 1 on success, or pushes nil, msg
 * and returns 0. Numbers are epoch seconds or, when large, milliseconds. */
static int parse_arg(lua_State *L, date_format f, int64_t *secs)
{
    prm_error err;
    char buf[64];
    const char *s;
    if (lua_type(L, 1) == LUA_TNUMBER) {
        snprintf(buf, sizeof buf, "%.0f", lua_tonumber(L, 1));
        s = buf;
        if (f == DATE_AUTO) f = strlen(buf) >= 11 ? DATE_EPOCH_MS : DATE_EPOCH_S;
    } else {
        s = luaL_checkstring(L, 1);
        while (*s == ' ') s++;
        size_t n = strlen(s);
        if (n >= sizeof buf) n = sizeof buf - 1;
        memcpy(buf, s, n);
        buf[n] = 0;
        while (n && buf[n - 1] == ' ') buf[--n] = 0;
        s = buf;
    }
    if (date_parse(s, f, secs, &err) < 0) {
        luaL_pushfail(L);
        lua_pushstring(L, err.msg);
        return 0;
    }
    return 1;
}

/* prm.date(text|number [, format]) -> "YYYY-MM-DD" | nil, msg */
static int l_prm_date(lua_State *L)
{
    int64_t t;
    if (!parse_arg(L, check_format(L, 2), &t)) return 2;
    char out[11];
    date_iso(t, out);
    lua_pushstring(L, out);
    return 1;
}

/* prm.instant(text|number [, format]) -> "YYYY-MM-DDTHH:MM:SSZ" | nil, msg */
static int l_prm_instant(lua_State *L)
{
    int64_t t;
    if (!parse_arg(L, check_format(L, 2), &t)) return 2;
    char out[21];
    instant_iso(t, out);
    lua_pushstring(L, out);
    return 1;
}

/* prm.days(date) -> days since 1970-01-01 | nil, msg */
static int l_prm_days(lua_State *L)
{
    int64_t t;
    if (!parse_arg(L, DATE_ISO, &t)) return 2;
    lua_pushinteger(L, t / 86400 - (t % 86400 < 0));
    return 1;
}

/* prm.from_days(n) -> "YYYY-MM-DD" */
static int l_prm_from_days(lua_State *L)
{
    char out[11];
    date_iso((int64_t)luaL_checkinteger(L, 1) * 86400, out);
    lua_pushstring(L, out);
    return 1;
}

/* prm.now() -> instant: the engine clock (--as-of, $PRMCAST_NOW, else the
 * wall clock; timeutil.h), for jobs. Sandboxed kinds get ctx.now instead. */
static int64_t now_secs(lua_State *L)
{
    (void)L;
    return clock_now();
}

static int l_prm_now(lua_State *L)
{
    char out[21];
    instant_iso(now_secs(L), out);
    lua_pushstring(L, out);
    return 1;
}

static int l_prm_today(lua_State *L)
{
    char out[11];
    date_iso(now_secs(L), out);
    lua_pushstring(L, out);
    return 1;
}

static int start_month(lua_State *L, int arg)
{
    lua_Integer m;
    if (lua_isnoneornil(L, arg)) {
        lua_getfield(L, lua_upvalueindex(1), "fiscal_start_month");
        m = lua_isinteger(L, -1) ? lua_tointeger(L, -1) : 1;
        lua_pop(L, 1);
    } else {
        m = luaL_checkinteger(L, arg);
    }
    luaL_argcheck(L, m >= 1 && m <= 12, arg, "fiscal start month must be 1..12");
    return (int)m;
}

/* prm.quarter(date [, start_month]) -> "FY-Qn", fy, q | nil, msg */
static int l_prm_quarter(lua_State *L)
{
    int64_t t;
    int sm = start_month(L, 2);
    if (!parse_arg(L, DATE_AUTO, &t)) return 2;
    int fy, q;
    fiscal_quarter(t / 86400 - (t % 86400 < 0), sm, &fy, &q);
    lua_pushfstring(L, "%d-Q%d", fy, q);
    lua_pushinteger(L, fy);
    lua_pushinteger(L, q);
    return 3;
}

static int parse_period(const char *s, int *fy, int *q)
{
    char tail;
    if (sscanf(s, "%d-Q%d%c", fy, q, &tail) != 2 && sscanf(s, "FY%d-Q%d%c", fy, q, &tail) != 2)
        return -1;
    return *q >= 1 && *q <= 4 && *fy > 1900 && *fy < 2200 ? 0 : -1;
}

/* prm.quarter_bounds("2026-Q1" [, start_month]) -> first day, first day of next quarter */
static int l_prm_quarter_bounds(lua_State *L)
{
    int fy, q, sm = start_month(L, 2);
    const char *p = luaL_checkstring(L, 1);
    if (parse_period(p, &fy, &q) < 0) {
        luaL_pushfail(L);
        lua_pushfstring(L, "not a quarter: \"%s\" (expected e.g. 2026-Q1)", p);
        return 2;
    }
    char a[11], b[11];
    date_iso(fiscal_quarter_start(fy, q, sm) * 86400, a);
    date_iso(fiscal_quarter_start(q == 4 ? fy + 1 : fy, q == 4 ? 1 : q + 1, sm) * 86400, b);
    lua_pushstring(L, a);
    lua_pushstring(L, b);
    return 2;
}

/* prm.quarter_label("FY2026 Q1") -> "2026-Q1" | nil, msg: a quarter label
 * as exports write it, normalised (quarter_label_parse in timeutil). */
static int l_prm_quarter_label(lua_State *L)
{
    size_t n;
    const char *p = luaL_checklstring(L, 1, &n);
    char out[8];
    if (quarter_label_parse(p, n, out) < 0) {
        luaL_pushfail(L);
        lua_pushfstring(L, "not a quarter: \"%s\"", p);
        return 2;
    }
    lua_pushstring(L, out);
    return 1;
}

/* prm.quarter_add("2026-Q1", n) -> "2026-Q(1+n)" normalised */
static int l_prm_quarter_add(lua_State *L)
{
    int fy, q;
    const char *p = luaL_checkstring(L, 1);
    lua_Integer n = luaL_checkinteger(L, 2);
    if (parse_period(p, &fy, &q) < 0) return luaL_argerror(L, 1, "not a quarter (e.g. 2026-Q1)");
    lua_Integer k = (lua_Integer)fy * 4 + (q - 1) + n;
    lua_pushfstring(L, "%d-Q%d", (int)(k / 4), (int)(k % 4) + 1);
    return 1;
}

/* prm.month(date) -> "YYYY-MM" */
static int l_prm_month(lua_State *L)
{
    int64_t t;
    if (!parse_arg(L, DATE_AUTO, &t)) return 2;
    char out[11];
    date_iso(t, out);
    out[7] = 0;
    lua_pushstring(L, out);
    return 1;
}

/* prm.money(text|number [, scale]) -> number | nil, msg
 * Accepts "$1,234.50", "1234.5", "(99.00)" (negative), "EUR 12", "-3";
 * thousands separators only between groups of three ("1,2,3" is refused);
 * scale multiplies (0.01 for PRMs that send cents). */
static int l_prm_money(lua_State *L)
{
    double scale = luaL_optnumber(L, 2, 1.0);
    if (lua_type(L, 1) == LUA_TNUMBER) {
        lua_pushnumber(L, lua_tonumber(L, 1) * scale);
        return 1;
    }
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    double v;
    prm_error err;
    if (money_parse(s, len, &v, &err) < 0) {
        luaL_pushfail(L);
        lua_pushstring(L, err.msg);
        return 2;
    }
    lua_pushnumber(L, v * scale);
    return 1;
}

/* prm.currency(text) -> "EUR" | nil, msg
 * An ISO 4217 code (currency.c, the one table), spaces and case ignored. */
static int l_prm_currency(lua_State *L)
{
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    while (len && *s == ' ') { s++; len--; }
    while (len && s[len - 1] == ' ') len--;
    char up[4] = { 0 };
    for (size_t i = 0; i < len && i < 3; i++)
        up[i] = (char)(s[i] >= 'a' && s[i] <= 'z' ? s[i] - 32 : s[i]);
    if (!currency_valid_n(up, len)) {
        luaL_pushfail(L);
        lua_pushfstring(L, "not an ISO 4217 currency code: \"%s\"", luaL_checkstring(L, 1));
        return 2;
    }
    lua_pushstring(L, up);
    return 1;
}

/* prm.percent(text|number, scale) -> fraction 0..1 | nil, msg
 * "35%" is a percent whatever the scale; a bare number is read in the
 * column's scale (100: 0-100, 1: 0-1); scale 0 refuses bare numbers. */
static int l_prm_percent(lua_State *L)
{
    lua_Integer scale = luaL_checkinteger(L, 2);
    luaL_argcheck(L, scale == 0 || scale == 1 || scale == 100, 2, "scale must be 1 or 100");
    size_t len;
    double v;
    prm_error err;
    if (lua_type(L, 1) == LUA_TNUMBER) {
        /* a JSON number is a bare number too: the scale decides */
        char num[32];
        len = (size_t)snprintf(num, sizeof num, "%.15g", lua_tonumber(L, 1));
        v = lua_tonumber(L, 1) / (scale == 100 ? 100 : 1);
        if (scale == 0 || !(v >= 0 && v <= 1)) {
            percent_parse(num, len, (int)scale, &v, &err);
            if (scale) snprintf(err.msg, sizeof err.msg, "out of range: %s", num);
            luaL_pushfail(L);
            lua_pushstring(L, err.msg);
            return 2;
        }
        lua_pushnumber(L, v);
        return 1;
    }
    const char *s = luaL_checklstring(L, 1, &len);
    if (percent_parse(s, len, (int)scale, &v, &err) < 0) {
        luaL_pushfail(L);
        lua_pushstring(L, err.msg);
        return 2;
    }
    lua_pushnumber(L, v);
    return 1;
}

/* ---- logging ---------------------------------------------------------- */

static int log_threshold(void)
{
    const char *e = getenv("PRMCAST_LOG");
    if (!e) return 1;
    if (strcmp(e, "debug") == 0) return 0;
    if (strcmp(e, "warn") == 0) return 2;
    if (strcmp(e, "error") == 0) return 3;
    return 1;
}

/* Secrets come from the environment (*_TOKEN, *_KEY, *_SECRET, *_PASSWORD)
 * and must never reach a log: any occurrence of their values is masked.
 * The secrets are collected once per message, so the scan is O(length x
 * secrets), not O(length x environment): a rule logging a 4 MiB string
 * took seconds of C work no hook could stop. */
enum { MAX_SECRETS = 32 };

static void redact(luaL_Buffer *b, const char *msg, size_t len)
{
    extern char **environ;
    const char *sv[MAX_SECRETS];
    size_t sl[MAX_SECRETS];
    int ns = 0;
    static const char *const sfx[] = { "_TOKEN", "_KEY", "_SECRET", "_PASSWORD", NULL };
    for (char **e = environ; *e && ns < MAX_SECRETS; e++) {
        const char *eq = strchr(*e, '=');
        if (!eq || strlen(eq + 1) < 4) continue;
        size_t klen = (size_t)(eq - *e);
        for (const char *const *x = sfx; *x; x++) {
            size_t xl = strlen(*x);
            if (klen >= xl && strncmp(*e + klen - xl, *x, xl) == 0) {
                sv[ns] = eq + 1;
                sl[ns++] = strlen(eq + 1);
                break;
            }
        }
    }
    size_t i = 0;
    while (i < len) {
        size_t best = 0;
        for (int k = 0; k < ns; k++)
            if (sl[k] > best && sl[k] <= len - i && memcmp(msg + i, sv[k], sl[k]) == 0) best = sl[k];
        if (best) {
            luaL_addstring(b, "[REDACTED]");
            i += best;
        } else {
            luaL_addchar(b, msg[i++]);
        }
    }
}

/* [-0, +1, e] pushes string.format(...) of args from `first` */
static void format_args(lua_State *L, int first)
{
    int n = lua_gettop(L);
    lua_getglobal(L, "string");
    lua_getfield(L, -1, "format");
    lua_remove(L, -2);
    for (int i = first; i <= n; i++) lua_pushvalue(L, i);
    lua_call(L, n - first + 1, 1);
}

static int do_log(lua_State *L, int level, int first)
{
    static const char *const names[] = { "DEBUG", "INFO", "WARN", "ERROR" };
    if (level < log_threshold()) return 0;
    format_args(L, first);
    /* Take the message before luaL_buffinit: in 5.4 it pushes a placeholder,
     * so -1 is no longer the message afterwards (issue 8: SIGSEGV). The
     * string stays anchored at its slot below the buffer. */
    size_t len = 0;
    const char *msg = lua_tolstring(L, -1, &len);
    /* A log line is for people: the first LOG_MAX bytes, and the size. */
    enum { LOG_MAX = 16384 };
    size_t shown = len > LOG_MAX ? LOG_MAX : len;
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    redact(&b, msg ? msg : "", msg ? shown : 0);
    if (shown < len) {
        char more[64];
        snprintf(more, sizeof more, "... (%zu bytes)", len);
        luaL_addstring(&b, more);
    }
    luaL_pushresult(&b);
    char ts[21];
    instant_iso((int64_t)time(NULL), ts);
    fprintf(stderr, "%s %-5s %s\n", ts, names[level], lua_tostring(L, -1));
    return 0;
}

/* prm.log(level, fmt, ...) ; prm.debug/info/warn/error(fmt, ...) */
static int l_prm_log(lua_State *L)
{
    static const char *const lv[] = { "debug", "info", "warn", "error", NULL };
    return do_log(L, luaL_checkoption(L, 1, NULL, lv), 2);
}
static int l_prm_debug(lua_State *L) { return do_log(L, 0, 1); }
static int l_prm_info(lua_State *L) { return do_log(L, 1, 1); }
static int l_prm_warn(lua_State *L) { return do_log(L, 2, 1); }
static int l_prm_error(lua_State *L) { return do_log(L, 3, 1); }

/* prm.redact(text) -> text with secret values masked */
static int l_prm_redact(lua_State *L)
{
    luaL_Buffer b;
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    luaL_buffinit(L, &b);
    redact(&b, s, len);
    luaL_pushresult(&b);
    return 1;
}

/* prm.safe(text) -> text with control characters (ANSI escapes, CR, NUL)
 * shown as \xHH, as the CLI's text outputs print export data; non-strings
 * go through tostring. */
static int l_prm_safe(lua_State *L)
{
    size_t len;
    const char *s = luaL_tolstring(L, 1, &len);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (cli_text_unsafe(ch)) {
            char esc[5];
            snprintf(esc, sizeof esc, "\\x%02x", ch);
            luaL_addstring(&b, esc);
        } else {
            luaL_addchar(&b, (char)ch);
        }
    }
    luaL_pushresult(&b);
    return 1;
}

/* ---- option tables ------------------------------------------------------ */

void lprm_check_options(lua_State *L, int idx, const char *fn, const char *const *keys)
{
    if (lua_isnoneornil(L, idx)) return;
    luaL_checktype(L, idx, LUA_TTABLE);
    idx = lua_absindex(L, idx);
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        const char *k = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
        int ok = 0;
        for (int i = 0; k && keys[i]; i++) ok |= strcmp(k, keys[i]) == 0;
        if (!ok) {
            if (k) luaL_error(L, "%s: unknown option '%s'", fn, k);
            luaL_error(L, "%s: option keys must be names, not a %s", fn, luaL_typename(L, -1));
        }
    }
}

/* ---- JSON from Lua values ---------------------------------------------- */

static int is_array(lua_State *L, int idx, lua_Integer *n)
{
    lua_Integer count = 0, max = 0;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 1) {
            lua_pop(L, 1);
            return 0;
        }
        lua_Integer k = lua_tointeger(L, -1);
        if (k > max) max = k;
        count++;
    }
    *n = max;
    return max == count;
}

static int skipped(const char *k, const char *const *skip)
{
    for (; skip && *skip; skip++)
        if (strcmp(*skip, k) == 0) return 1;
    return 0;
}

/* A leaf value just written to j at offset n0 (after the member comma
 * sep() may have put there: no JSON value starts with ','), copied to c. */
static void mirror(json *j, size_t n0, json *c)
{
    if (!c || j->failed) return;
    size_t at = n0 < j->n && j->s[n0] == ',' ? n0 + 1 : n0;
    json_raw(c, j->s + at);
}

/* Writes the value at idx into j, and into c (when not NULL) with the keys
 * in skip left out: one walk and one key sort for both texts.
 * [-0, +0, m] */
static int encode(lua_State *L, int idx, json *j, json *c, const char *const *skip, int depth, prm_error *err)
{
    idx = lua_absindex(L, idx);
    if (depth > 20) return prm_error_set(err, "JSON: nested more than 20 levels (a cycle?)");
    size_t n0 = j->n;
    switch (lua_type(L, idx)) {
    case LUA_TNIL: json_null(j); mirror(j, n0, c); return 0;
    case LUA_TBOOLEAN: json_bool(j, lua_toboolean(L, idx)); mirror(j, n0, c); return 0;
    case LUA_TNUMBER:
        if (lua_isinteger(L, idx)) json_int(j, lua_tointeger(L, idx));
        else json_num(j, lua_tonumber(L, idx));
        mirror(j, n0, c);
        return 0;
    case LUA_TSTRING: {
        size_t n;
        const char *s = lua_tolstring(L, idx, &n);
        json_strn(j, s, n);
        mirror(j, n0, c);
        return 0;
    }
    case LUA_TTABLE: break;
    default:
        return prm_error_set(err, "JSON: cannot encode a %s value", luaL_typename(L, idx));
    }
    if (!lua_checkstack(L, 4)) return prm_error_set(err, "JSON: Lua stack overflow");
    lua_Integer n;
    /* An empty table is a list: payloads hold lists of flags and drivers
     * far more often than empty objects (lua-cjson cannot tell either). */
    if (is_array(L, idx, &n)) {
        json_arr(j);
        if (c) json_arr(c);
        for (lua_Integer i = 1; i <= n; i++) {
            lua_rawgeti(L, idx, i);
            int rc = encode(L, -1, j, c, skip, depth + 1, err);
            lua_pop(L, 1);
            if (rc < 0) return -1;
        }
        json_end(j);
        if (c) json_end(c);
        return 0;
    }
    /* Keys in sorted order: the same table always gives the same text (the
     * outbox compares payloads by hash). */
    lua_newtable(L);
    int keys = lua_gettop(L);
    lua_Integer nk = 0;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        if (lua_type(L, -1) == LUA_TSTRING) {
            lua_pushvalue(L, -1);
            lua_rawseti(L, keys, ++nk);
        } else if (lua_type(L, -1) != LUA_TNUMBER) {
            lua_pop(L, 2);
            return prm_error_set(err, "JSON: object keys must be strings");
        } else {
            lua_pushvalue(L, -1);
            lua_pushfstring(L, "%s", lua_tostring(L, -1));
            lua_remove(L, -2);
            lua_rawseti(L, keys, ++nk);
        }
    }
    /* insertion sort: payload objects have a handful of keys */
    for (lua_Integer a = 2; a <= nk; a++)
        for (lua_Integer b = a; b > 1; b--) {
            lua_rawgeti(L, keys, b - 1);
            lua_rawgeti(L, keys, b);
            if (strcmp(lua_tostring(L, -2), lua_tostring(L, -1)) <= 0) {
                lua_pop(L, 2);
                break;
            }
            lua_rawseti(L, keys, b - 1);
            lua_rawseti(L, keys, b);
        }
    json_obj(j);
    if (c) json_obj(c);
    for (lua_Integer a = 1; a <= nk; a++) {
        lua_rawgeti(L, keys, a);
        const char *k = lua_tostring(L, -1);
        json *ck = c && !skipped(k, skip) ? c : NULL;
        json_key(j, k);
        if (ck) json_key(ck, k);
        lua_pushvalue(L, -1);
        lua_gettable(L, idx);
        if (lua_isnil(L, -1)) {
            /* a numeric key written as text */
            lua_pop(L, 1);
            lua_pushinteger(L, (lua_Integer)strtoll(k, NULL, 10));
            lua_gettable(L, idx);
        }
        int rc = encode(L, -1, j, ck, skip, depth + 1, err);
        lua_pop(L, 2);
        if (rc < 0) {
            lua_settop(L, keys - 1);
            return -1;
        }
    }
    json_end(j);
    if (c) json_end(c);
    lua_settop(L, keys - 1);
    return 0;
}

int lprm_json_encode(lua_State *L, int idx, json *j, json *c, const char *const *skip, prm_error *err)
{
    if (encode(L, idx, j, c, skip, 0, err) < 0) return -1;
    if (json_failed(j) || (c && json_failed(c))) return prm_error_set(err, "JSON: out of memory");
    return 0;
}

/* prm.json(value) -> text | nil, msg   (sorted keys; an empty table is []) */
static int l_prm_json(lua_State *L)
{
    luaL_checkany(L, 1);
    json j;
    json_init(&j);
    prm_error err;
    if (lprm_json_encode(L, 1, &j, NULL, NULL, &err) < 0) {
        json_free(&j);
        luaL_pushfail(L);
        lua_pushstring(L, err.msg);
        return 2;
    }
    lua_pushstring(L, json_cstr(&j));
    json_free(&j);
    return 1;
}

/* ---- prm.engine: the engine's own loaders (job states only) ------------- */

/* engine.load(path, kind [, chunkname]) -> value the file returns | nil, msg
 * Loads a script at a trust kind ("connector", "rule", "prompt",
 * "scenario"): a fresh sandboxed environment, text only, then runs it. */
static int l_engine_load(lua_State *L)
{
    static const char *const names[] = { "job", "connector", "rule", "prompt", "scenario", NULL };
    const char *path = luaL_checkstring(L, 1);
    int kind = luaL_checkoption(L, 2, NULL, names);
    const char *chunk = luaL_optstring(L, 3, NULL);
    prm_error err;
    lua_settop(L, 3);
    if (sandbox_loadfile(L, path, chunk, (sandbox_kind)kind, &err) < 0) {
        luaL_pushfail(L);
        lua_pushstring(L, err.msg);
        return 2;
    }
    if (sandbox_call(L, 0, 1, &err) < 0) {
        luaL_pushfail(L);
        lua_pushstring(L, err.msg);
        return 2;
    }
    return 1;
}

#ifdef PRM_FAULT_INJECTION
#include <signal.h>
/* engine.fault(point): the test build's kill switch. With
 * PRMCAST_FAULT_KILL_AFTER=N the process SIGKILLs itself at the N-th call,
 * exactly as an operator's kill -9 would land. Not in release builds. */
static int l_engine_fault(lua_State *L)
{
    static long seen, after = -1;
    (void)luaL_checkstring(L, 1);
    if (after < 0) {
        const char *e = getenv("PRMCAST_FAULT_KILL_AFTER");
        after = e && *e ? atol(e) : 0;
    }
    if (after > 0 && ++seen >= after) raise(SIGKILL);
    return 0;
}
#endif

int luaopen_prm_engine(lua_State *L)
{
    static const luaL_Reg fns[] = {
        { "load", l_engine_load },
#ifdef PRM_FAULT_INJECTION
        { "fault", l_engine_fault },
#endif
        { NULL, NULL },
    };
    luaL_newlib(L, fns);
    return 1;
}

int luaopen_prm(lua_State *L)
{
    static const luaL_Reg fns[] = {
        { "date", l_prm_date }, { "instant", l_prm_instant }, { "days", l_prm_days },
        { "from_days", l_prm_from_days }, { "now", l_prm_now }, { "today", l_prm_today },
        { "quarter", l_prm_quarter }, { "quarter_bounds", l_prm_quarter_bounds },
        { "quarter_label", l_prm_quarter_label },
        { "quarter_add", l_prm_quarter_add }, { "month", l_prm_month },
        { "money", l_prm_money }, { "percent", l_prm_percent }, { "currency", l_prm_currency },
        { "log", l_prm_log }, { "debug", l_prm_debug },
        { "info", l_prm_info }, { "warn", l_prm_warn }, { "error", l_prm_error },
        { "redact", l_prm_redact }, { "json", l_prm_json }, { "safe", l_prm_safe }, { NULL, NULL },
    };
    lua_newtable(L);
    lua_pushvalue(L, -1);               /* upvalue: the module, for fiscal_start_month */
    luaL_setfuncs(L, fns, 1);
    lua_pushliteral(L, PRM_VERSION);
    lua_setfield(L, -2, "version");
    /* prm.stages = { "registered", ..., open = { registered = 1, ... }, index = { ... } } */
    lua_createtable(L, STAGE_COUNT, 2);
    lua_createtable(L, 0, STAGE_OPEN_COUNT);
    lua_createtable(L, 0, STAGE_COUNT);
    for (int i = 0; i < STAGE_COUNT; i++) {
        lua_pushstring(L, domain_stage_names[i]);
        lua_rawseti(L, -4, i + 1);
        lua_pushinteger(L, i + 1);
        lua_setfield(L, -2, domain_stage_names[i]);
        if (i < STAGE_OPEN_COUNT) {
            lua_pushinteger(L, i + 1);
            lua_setfield(L, -3, domain_stage_names[i]);
        }
    }
    lua_setfield(L, -3, "index");
    lua_setfield(L, -2, "open");
    lua_setfield(L, -2, "stages");
    const char *fs = getenv("PRMCAST_FISCAL_START");
    lua_pushinteger(L, fs && atoi(fs) >= 1 && atoi(fs) <= 12 ? atoi(fs) : 1);
    lua_setfield(L, -2, "fiscal_start_month");
    return 1;
}
