/* sandbox_str.c - bounded string and table functions for sandboxed kinds
 * (issue 8). The instruction hook and the wall-clock deadline only act at
 * the next Lua instruction or call, so a C function that loops on its own
 * is out of their reach. These are the ones that can: pattern matching
 * (backtracking is exponential: ("a*"):rep(12).."b" on 25 a's), a naive
 * plain find (O(needle x subject)), and table functions whose loop count
 * comes from arguments or __len (table.move({}, 1, 1<<40, 1, {})). Each
 * replacement checks the kind's limits (sandbox_kind_spec) before doing
 * the work:
 *   find, match, gmatch, gsub   a matcher written for the sandbox with
 *                               Lua 5.4's pattern semantics and a step
 *                               budget per call; plain finds use memmem
 *                               (linear); subjects and gsub results are
 *                               capped at str_limit
 *   rep, upper, lower, reverse, format
 *                               result size checked against str_limit
 *                               first (format: after, its work is linear)
 *   table.move/concat/unpack/insert/remove/sort
 *                               element span capped at table_span
 * A refusal raises "string.rep: result of N bytes exceeds the rule limit
 * of 4 MiB" and records SANDBOX_LIMIT_SIZE in the state's context, so the
 * rules engine switches the rule off at once.
 */
#include <ctype.h>
#include <lauxlib.h>
#include <lua.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "sandbox.h"

enum { MAX_CAPTURES = 32, MAX_MATCH_DEPTH = 200 };
#define CAP_OPEN (-1)
#define CAP_POSITION (-2)

static const sandbox_kind_spec *spec_up(lua_State *L)
{
    return sandbox_kind_spec_of((sandbox_kind)lua_tointeger(L, lua_upvalueindex(1)));
}

/* may raise */
static int refuse(lua_State *L, const char *fmt, ...)
{
    sandbox_ctx *c = sandbox_ctx_of(L);
    if (c) c->limit_hit = SANDBOX_LIMIT_SIZE;
    va_list ap;
    va_start(ap, fmt);
    luaL_where(L, 1);
    lua_pushvfstring(L, fmt, ap);
    va_end(ap);
    lua_concat(L, 2);
    return lua_error(L);
}

static void check_str(lua_State *L, const sandbox_kind_spec *k, const char *fn, const char *what,
                      size_t n)
{
    if (k->str_limit && n > k->str_limit)
        refuse(L, "%s: %s of %I bytes exceeds the %s limit of %d MiB", fn, what, (lua_Integer)n,
               k->name, (int)(k->str_limit >> 20));
}

/* ---- the matcher ------------------------------------------------------ */

typedef struct matcher {
    lua_State *L;
    const char *src, *src_end, *pat_end;
    const char *fn;
    long steps, max_steps;             /* max_steps 0: unlimited */
    int depth, level;
    struct {
        const char *at;
        ptrdiff_t len;                 /* CAP_OPEN, CAP_POSITION or a length */
    } cap[MAX_CAPTURES];
} matcher;

static void too_complex(matcher *m)
{
    sandbox_ctx *c = sandbox_ctx_of(m->L);
    if (c) c->limit_hit = SANDBOX_LIMIT_SIZE;
    luaL_error(m->L, "%s: pattern too complex (more than %d matching steps)", m->fn, (int)m->max_steps);
}

#define STEP(m) do { if ((m)->max_steps && ++(m)->steps > (m)->max_steps) too_complex(m); } while (0)

/* The end of the single-character class at p ("%a", "[a-z]", "x", "."). */
static const char *class_end(matcher *m, const char *p)
{
    char ch = *p++;
    if (ch == '%') {
        if (p >= m->pat_end) luaL_error(m->L, "malformed pattern (ends with '%%')");
        return p + 1;
    }
    if (ch == '[') {
        if (p < m->pat_end && *p == '^') p++;
        /* The first character of a set may be ']' itself. */
        do {
            if (p >= m->pat_end) luaL_error(m->L, "malformed pattern (missing ']')");
            ch = *p++;
            if (ch == '%' && p < m->pat_end) p++;
        } while (p >= m->pat_end || *p != ']');
        return p + 1;
    }
    return p;
}

static int class_has(int c, int cl)
{
    int r;
    switch (tolower(cl)) {
    case 'a': r = isalpha(c); break;
    case 'c': r = iscntrl(c); break;
    case 'd': r = isdigit(c); break;
    case 'g': r = isgraph(c); break;
    case 'l': r = islower(c); break;
    case 'p': r = ispunct(c); break;
    case 's': r = isspace(c); break;
    case 'u': r = isupper(c); break;
    case 'w': r = isalnum(c); break;
    case 'x': r = isxdigit(c); break;
    case 'z': r = c == 0; break;     /* deprecated in Lua, still matched */
    default: return cl == c;
    }
    r = r != 0;
    return isupper(cl) ? !r : r;
}

/* c in the set [ ... ] from p ('[') to last (its ']'). */
static int set_has(int c, const char *p, const char *last)
{
    int in = 1;
    p++;
    if (*p == '^') {
        in = 0;
        p++;
    }
    while (p < last) {
        if (*p == '%' && p + 1 < last) {
            if (class_has(c, (unsigned char)p[1])) return in;
            p += 2;
        } else if (p + 2 < last && p[1] == '-') {
            if ((unsigned char)p[0] <= c && c <= (unsigned char)p[2]) return in;
            p += 3;
        } else {
            if ((unsigned char)*p == c) return in;
            p++;
        }
    }
    return !in;
}

static int single(matcher *m, const char *s, const char *p, const char *ep)
{
    if (s >= m->src_end) return 0;
    int c = (unsigned char)*s;
    switch (*p) {
    case '.': return 1;
    case '%': return class_has(c, (unsigned char)p[1]);
    case '[': return set_has(c, p, ep - 1);
    default: return (unsigned char)*p == c;
    }
}

static const char *do_match(matcher *m, const char *s, const char *p);

static const char *greedy(matcher *m, const char *s, const char *p, const char *ep)
{
    ptrdiff_t i = 0;
    while (single(m, s + i, p, ep)) {
        STEP(m);
        i++;
    }
    for (; i >= 0; i--) {
        const char *r = do_match(m, s + i, ep + 1);
        if (r) return r;
    }
    return NULL;
}

static const char *lazy(matcher *m, const char *s, const char *p, const char *ep)
{
    for (;;) {
        const char *r = do_match(m, s, ep + 1);
        if (r) return r;
        if (!single(m, s, p, ep)) return NULL;
        STEP(m);
        s++;
    }
}

static const char *open_capture(matcher *m, const char *s, const char *p, ptrdiff_t what)
{
    if (m->level >= MAX_CAPTURES) luaL_error(m->L, "too many captures");
    m->cap[m->level].at = s;
    m->cap[m->level].len = what;
    m->level++;
    const char *r = do_match(m, s, p);
    if (!r) m->level--;
    return r;
}

static const char *close_capture(matcher *m, const char *s, const char *p)
{
    int l = m->level - 1;
    while (l >= 0 && m->cap[l].len != CAP_OPEN) l--;
    if (l < 0) luaL_error(m->L, "invalid pattern capture");
    m->cap[l].len = s - m->cap[l].at;
    const char *r = do_match(m, s, p);
    if (!r) m->cap[l].len = CAP_OPEN;
    return r;
}

static const char *balance(matcher *m, const char *s, const char *p)
{
    if (p + 1 >= m->pat_end) luaL_error(m->L, "malformed pattern (missing arguments to '%%b')");
    if (s >= m->src_end || *s != *p) return NULL;
    char open = p[0], close = p[1];
    int depth = 1;
    while (++s < m->src_end) {
        STEP(m);
        if (*s == close) {
            if (--depth == 0) return s + 1;
        } else if (*s == open) {
            depth++;
        }
    }
    return NULL;
}

static const char *backref(matcher *m, const char *s, int digit)
{
    int l = digit - '1';
    if (l < 0 || l >= m->level || m->cap[l].len == CAP_OPEN)
        luaL_error(m->L, "invalid capture index %%%d", l + 1);
    size_t len = (size_t)m->cap[l].len;
    if ((size_t)(m->src_end - s) >= len && memcmp(m->cap[l].at, s, len) == 0) return s + len;
    return NULL;
}

static const char *match_at(matcher *m, const char *s, const char *p)
{
    for (;;) {
        STEP(m);
        if (p == m->pat_end) return s;
        if (*p == '(') {
            if (p + 1 < m->pat_end && p[1] == ')') return open_capture(m, s, p + 2, CAP_POSITION);
            return open_capture(m, s, p + 1, CAP_OPEN);
        }
        if (*p == ')') return close_capture(m, s, p + 1);
        if (*p == '$' && p + 1 == m->pat_end) return s == m->src_end ? s : NULL;
        if (*p == '%' && p + 1 < m->pat_end) {
            if (p[1] == 'b') {
                s = balance(m, s, p + 2);
                if (!s) return NULL;
                p += 4;
                continue;
            }
            if (p[1] == 'f') {
                p += 2;
                if (p >= m->pat_end || *p != '[') luaL_error(m->L, "missing '[' after '%%f' in pattern");
                const char *ep = class_end(m, p);
                int prev = s == m->src ? 0 : (unsigned char)s[-1];
                int cur = s < m->src_end ? (unsigned char)*s : 0;
                if (set_has(prev, p, ep - 1) || !set_has(cur, p, ep - 1)) return NULL;
                p = ep;
                continue;
            }
            if (isdigit((unsigned char)p[1])) {
                s = backref(m, s, (unsigned char)p[1]);
                if (!s) return NULL;
                p += 2;
                continue;
            }
        }
        const char *ep = class_end(m, p);
        char q = ep < m->pat_end ? *ep : 0;
        if (!single(m, s, p, ep)) {
            if (q == '*' || q == '?' || q == '-') {
                p = ep + 1;
                continue;
            }
            return NULL;
        }
        switch (q) {
        case '?': {
            const char *r = do_match(m, s + 1, ep + 1);
            if (r) return r;
            p = ep + 1;
            continue;
        }
        case '+': return greedy(m, s + 1, p, ep);
        case '*': return greedy(m, s, p, ep);
        case '-': return lazy(m, s, p, ep);
        default:
            s++;
            p = ep;
        }
    }
}

static const char *do_match(matcher *m, const char *s, const char *p)
{
    if (++m->depth > MAX_MATCH_DEPTH) luaL_error(m->L, "pattern too complex (nesting)");
    const char *r = match_at(m, s, p);
    m->depth--;
    return r;
}

static void matcher_init(matcher *m, lua_State *L, const char *fn, const char *s, size_t ls,
                         const char *p, size_t lp, const sandbox_kind_spec *k)
{
    m->L = L;
    m->fn = fn;
    m->src = s;
    m->src_end = s + ls;
    m->pat_end = p + lp;
    m->steps = 0;
    m->max_steps = k->match_steps;
    m->depth = m->level = 0;
}

/* [-0, +1, e] capture i of the match s..e */
static void push_capture(matcher *m, int i, const char *s, const char *e)
{
    if (i >= m->level) {
        if (i != 0) luaL_error(m->L, "invalid capture index %%%d", i + 1);
        lua_pushlstring(m->L, s, (size_t)(e - s));
        return;
    }
    ptrdiff_t len = m->cap[i].len;
    if (len == CAP_OPEN) luaL_error(m->L, "unfinished capture");
    if (len == CAP_POSITION) lua_pushinteger(m->L, (lua_Integer)(m->cap[i].at - m->src) + 1);
    else lua_pushlstring(m->L, m->cap[i].at, (size_t)len);
}

static int push_captures(matcher *m, const char *s, const char *e, int whole)
{
    int n = m->level == 0 && whole ? 1 : m->level;
    luaL_checkstack(m->L, n, "too many captures");
    for (int i = 0; i < n; i++) push_capture(m, i, s, e);
    return n;
}

static size_t start_index(lua_Integer pos, size_t len)
{
    if (pos > 0) return (size_t)pos;
    if (pos == 0) return 1;
    if (pos < -(lua_Integer)len) return 1;
    return len + (size_t)pos + 1;
}

static int has_specials(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strchr("^$*+?.([%-", p[i]) && p[i]) return 1;
    return 0;
}

/* may raise */
static int find_or_match(lua_State *L, int find)
{
    const sandbox_kind_spec *k = spec_up(L);
    const char *fn = find ? "string.find" : "string.match";
    size_t ls, lp;
    const char *s = luaL_checklstring(L, 1, &ls);
    const char *p = luaL_checklstring(L, 2, &lp);
    size_t init = start_index(luaL_optinteger(L, 3, 1), ls) - 1;
    if (init > ls) {
        luaL_pushfail(L);
        return 1;
    }
    check_str(L, k, fn, "subject", ls);
    if (find && (lua_toboolean(L, 4) || !has_specials(p, lp))) {
        /* glibc's memmem is linear (two-way); the stock one is not. */
        const char *r = lp == 0 ? s + init : memmem(s + init, ls - init, p, lp);
        if (!r) {
            luaL_pushfail(L);
            return 1;
        }
        lua_pushinteger(L, (lua_Integer)(r - s) + 1);
        lua_pushinteger(L, (lua_Integer)(r - s + (ptrdiff_t)lp));
        return 2;
    }
    matcher m;
    int anchor = lp > 0 && *p == '^';
    if (anchor) {
        p++;
        lp--;
    }
    matcher_init(&m, L, fn, s, ls, p, lp, k);
    const char *s1 = s + init;
    do {
        m.level = m.depth = 0;
        const char *e = do_match(&m, s1, p);
        if (e) {
            if (find) {
                lua_pushinteger(L, (lua_Integer)(s1 - s) + 1);
                lua_pushinteger(L, (lua_Integer)(e - s));
                return push_captures(&m, NULL, NULL, 0) + 2;
            }
            return push_captures(&m, s1, e, 1);
        }
    } while (s1++ < m.src_end && !anchor);
    luaL_pushfail(L);
    return 1;
}

/* string.find(s, pattern [, init [, plain]]) */
static int l_find(lua_State *L) { return find_or_match(L, 1); }
/* string.match(s, pattern [, init]) */
static int l_match(lua_State *L) { return find_or_match(L, 0); }

typedef struct gm_state {
    size_t pos;
    ptrdiff_t last;                    /* end of the last match, -1 none */
} gm_state;

static int gmatch_next(lua_State *L)
{
    const sandbox_kind_spec *k = spec_up(L);
    size_t ls, lp;
    const char *s = lua_tolstring(L, lua_upvalueindex(2), &ls);
    const char *p = lua_tolstring(L, lua_upvalueindex(3), &lp);
    gm_state *st = lua_touserdata(L, lua_upvalueindex(4));
    matcher m;
    matcher_init(&m, L, "string.gmatch", s, ls, p, lp, k);
    for (const char *src = s + st->pos; src <= m.src_end; src++) {
        m.level = m.depth = 0;
        const char *e = do_match(&m, src, p);
        if (e && e - s != st->last) {
            st->pos = (size_t)(e - s);
            st->last = e - s;
            return push_captures(&m, src, e, 1);
        }
    }
    return 0;
}

/* string.gmatch(s, pattern [, init]) */
static int l_gmatch(lua_State *L)
{
    const sandbox_kind_spec *k = spec_up(L);
    size_t ls;
    luaL_checklstring(L, 1, &ls);
    luaL_checkstring(L, 2);
    check_str(L, k, "string.gmatch", "subject", ls);
    size_t init = start_index(luaL_optinteger(L, 3, 1), ls) - 1;
    if (init > ls) init = ls + 1;
    lua_settop(L, 2);
    gm_state *st = lua_newuserdatauv(L, sizeof *st, 0);
    st->pos = init;
    st->last = -1;
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_pushcclosure(L, gmatch_next, 4);
    return 1;
}

static void add_replacement(matcher *m, luaL_Buffer *b, const char *s, const char *e, int tr)
{
    lua_State *L = m->L;
    if (tr == LUA_TNUMBER || tr == LUA_TSTRING) {
        size_t l;
        const char *r = lua_tolstring(L, 3, &l);
        for (size_t i = 0; i < l; i++) {
            if (r[i] != '%') {
                luaL_addchar(b, r[i]);
                continue;
            }
            i++;
            if (i < l && r[i] == '%') {
                luaL_addchar(b, '%');
            } else if (i < l && isdigit((unsigned char)r[i])) {
                if (r[i] == '0') lua_pushlstring(L, s, (size_t)(e - s));
                else push_capture(m, r[i] - '1', s, e);
                luaL_tolstring(L, -1, NULL);
                lua_remove(L, -2);
                luaL_addvalue(b);
            } else {
                luaL_error(L, "invalid use of '%%' in replacement string");
            }
        }
        return;
    }
    if (tr == LUA_TTABLE) {
        push_capture(m, 0, s, e);
        lua_gettable(L, 3);
    } else {
        lua_pushvalue(L, 3);
        int n = push_captures(m, s, e, 1);
        lua_call(L, n, 1);
    }
    if (!lua_toboolean(L, -1)) {
        lua_pop(L, 1);
        luaL_addlstring(b, s, (size_t)(e - s));
    } else if (!lua_isstring(L, -1)) {
        luaL_error(L, "invalid replacement value (a %s)", luaL_typename(L, -1));
    } else {
        luaL_addvalue(b);
    }
}

/* string.gsub(s, pattern, repl [, n]) */
static int l_gsub(lua_State *L)
{
    const sandbox_kind_spec *k = spec_up(L);
    size_t ls, lp;
    const char *s = luaL_checklstring(L, 1, &ls);
    const char *p = luaL_checklstring(L, 2, &lp);
    int tr = lua_type(L, 3);
    lua_Integer max_n = luaL_optinteger(L, 4, (lua_Integer)ls + 1);
    luaL_argexpected(L, tr == LUA_TNUMBER || tr == LUA_TSTRING || tr == LUA_TFUNCTION || tr == LUA_TTABLE,
                     3, "string/function/table");
    check_str(L, k, "string.gsub", "subject", ls);
    int anchor = lp > 0 && *p == '^';
    if (anchor) {
        p++;
        lp--;
    }
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    matcher m;
    matcher_init(&m, L, "string.gsub", s, ls, p, lp, k);
    const char *src = s, *last = NULL;
    lua_Integer n = 0;
    while (n < max_n) {
        m.level = m.depth = 0;
        const char *e = do_match(&m, src, p);
        if (e && e != last) {
            n++;
            add_replacement(&m, &b, src, e, tr);
            src = last = e;
        } else if (src < m.src_end) {
            luaL_addchar(&b, *src++);
        } else {
            break;
        }
        check_str(L, k, "string.gsub", "result", luaL_bufflen(&b));
        if (anchor) break;
    }
    luaL_addlstring(&b, src, (size_t)(m.src_end - src));
    check_str(L, k, "string.gsub", "result", luaL_bufflen(&b));
    luaL_pushresult(&b);
    lua_pushinteger(L, n);
    return 2;
}

/* ---- size checks in front of the stock functions ---------------------- */

/* Runs the stock C function (upvalue 2) in this call's own frame, so its
 * argument errors name the function and the caller's line as before. The
 * stock string and table functions use no upvalues. */
static int call_stock(lua_State *L)
{
    lua_CFunction f = lua_tocfunction(L, lua_upvalueindex(2));
    return f(L);
}

static int l_rep(lua_State *L)
{
    const sandbox_kind_spec *k = spec_up(L);
    size_t l, lsep = 0;
    luaL_checklstring(L, 1, &l);
    lua_Integer n = luaL_checkinteger(L, 2);
    luaL_optlstring(L, 3, "", &lsep);
    if (n > 0 && k->str_limit) {
        /* n*l + (n-1)*lsep, without overflow */
        double total = (double)n * (double)l + (double)(n - 1) * (double)lsep;
        if (total > (double)k->str_limit)
            refuse(L, "string.rep: result of %I bytes exceeds the %s limit of %d MiB",
                   total < 9e18 ? (lua_Integer)total : LUA_MAXINTEGER, k->name, (int)(k->str_limit >> 20));
    }
    return call_stock(L);
}

static int subject_checked(lua_State *L, const char *fn)
{
    size_t l;
    luaL_checklstring(L, 1, &l);
    check_str(L, spec_up(L), fn, "subject", l);
    return call_stock(L);
}

static int l_upper(lua_State *L) { return subject_checked(L, "string.upper"); }
static int l_lower(lua_State *L) { return subject_checked(L, "string.lower"); }
static int l_reverse(lua_State *L) { return subject_checked(L, "string.reverse"); }

static int l_format(lua_State *L)
{
    const sandbox_kind_spec *k = spec_up(L);
    call_stock(L);                       /* pushes the result */
    size_t l;
    lua_tolstring(L, -1, &l);
    check_str(L, k, "string.format", "result", l);
    return 1;
}

static void check_span(lua_State *L, const char *fn, lua_Integer from, lua_Integer to)
{
    const sandbox_kind_spec *k = spec_up(L);
    if (k->table_span && to >= from && (lua_Unsigned)to - (lua_Unsigned)from >= (lua_Unsigned)k->table_span)
        refuse(L, "%s: %I elements exceed the %s limit of %I", fn,
               (lua_Integer)((lua_Unsigned)to - (lua_Unsigned)from + 1u), k->name, (lua_Integer)k->table_span);
}

/* table.move(a1, f, e, t [, a2]) */
static int l_tmove(lua_State *L)
{
    check_span(L, "table.move", luaL_checkinteger(L, 2), luaL_checkinteger(L, 3));
    return call_stock(L);
}

/* The range [i, j] of table.concat(t, sep, i, j) and table.unpack(t, i, j). */
static int ranged(lua_State *L, const char *fn, int iarg)
{
    lua_Integer i = luaL_optinteger(L, iarg, 1);
    lua_Integer j = lua_isnoneornil(L, iarg + 1) ? luaL_len(L, 1) : luaL_checkinteger(L, iarg + 1);
    check_span(L, fn, i, j);
    return call_stock(L);
}

static int l_tconcat(lua_State *L) { return ranged(L, "table.concat", 3); }
static int l_tunpack(lua_State *L) { return ranged(L, "table.unpack", 2); }

/* insert, remove and sort loop up to #t, which __len may inflate. */
static int whole(lua_State *L, const char *fn)
{
    if (lua_type(L, 1) == LUA_TTABLE) check_span(L, fn, 1, luaL_len(L, 1));
    return call_stock(L);
}

static int l_tinsert(lua_State *L) { return whole(L, "table.insert"); }
static int l_tremove(lua_State *L) { return whole(L, "table.remove"); }
static int l_tsort(lua_State *L) { return whole(L, "table.sort"); }

static const luaL_Reg string_fns[] = {
    { "find", l_find }, { "match", l_match }, { "gmatch", l_gmatch }, { "gsub", l_gsub },
    { "rep", l_rep }, { "upper", l_upper }, { "lower", l_lower }, { "reverse", l_reverse },
    { "format", l_format }, { NULL, NULL },
};
static const luaL_Reg table_fns[] = {
    { "move", l_tmove }, { "concat", l_tconcat }, { "unpack", l_tunpack }, { "insert", l_tinsert },
    { "remove", l_tremove }, { "sort", l_tsort }, { NULL, NULL },
};

static void bound(lua_State *L, int tab, const luaL_Reg *fns, sandbox_kind kind)
{
    tab = lua_absindex(L, tab);
    for (const luaL_Reg *f = fns; f->name; f++) {
        lua_pushinteger(L, kind);
        lua_getfield(L, tab, f->name);     /* the stock function: upvalue 2 */
        lua_pushcclosure(L, f->func, 2);
        lua_setfield(L, tab, f->name);
    }
}

void sandbox_bound_string(lua_State *L, int tab, sandbox_kind kind) { bound(L, tab, string_fns, kind); }
void sandbox_bound_table(lua_State *L, int tab, sandbox_kind kind) { bound(L, tab, table_fns, kind); }
