/* rules.c - see rules.h. The declarations are validated by prm.rules
 * (engine/lib/prm/rules.lua); this file loads the files, turns C deal
 * records into read-only Lua views and runs every check through
 * sandbox_call, counting what throws.
 *
 * The views are built once per handle: one backing table for the deal and
 * one for the context, refilled per deal, behind full userdata whose
 * metatables index them. Userdata rather than proxy tables because the
 * sandbox allows rawset, which would write through a table proxy.
 */
#include "rules.h"

#include <dirent.h>
#include <lauxlib.h>
#include <lua.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "domain.h"
#include "job.h"
#include "sandbox.h"
#include "timeutil.h"

typedef struct rule_meta {
    char *name, *description, *file;
    rule_severity severity;
    int check_ref, p_ref;
    int nparams;
    char **pkey, **pdoc, **pval;
    long errors;
    int limit_fails, disabled;
    char *msgs[RULES_KEEP_ERRORS];
} rule_meta;

struct rules {
    lua_State *L;
    int n;
    rule_meta *m;
    char **load_errs;
    int nload_errs;
    FILE *log;
    int engine_ref;
    int deal_tab, deal_view, ctx_tab, ctx_view, med_tab, partner_tab;
    int64_t now_days;
    int now_ok;
};


/* ---- small helpers ---------------------------------------------------- */

static char *dupstr(const char *s)
{
    if (!s) s = "";
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    if (p) memcpy(p, s, n);
    return p;
}

/* The first line of a message: sandbox_call appends a traceback. */
static char *first_line(const char *s)
{
    size_t n = strcspn(s, "\n");
    char *p = malloc(n + 1);
    if (!p) return NULL;
    memcpy(p, s, n);
    p[n] = 0;
    return p;
}

static void add_load_error(rules *r, const char *msg)
{
    char **e = realloc(r->load_errs, (size_t)(r->nload_errs + 1) * sizeof *e);
    if (!e) return;
    r->load_errs = e;
    char *m = first_line(msg);
    if (m) r->load_errs[r->nload_errs++] = m;
}

/* Days since 1970 of an ISO date or instant ("YYYY-MM-DD..."): the date
 * part through timeutil's one ISO parser; -1 if not one. */
static int parse_day(const char *s, int64_t *out)
{
    if (!s || strlen(s) < 10) return -1;
    char day[11];
    memcpy(day, s, 10);
    day[10] = 0;
    int64_t t;
    if (date_parse(day, DATE_ISO, &t, NULL) < 0) return -1;
    *out = t / 86400;
    return 0;
}

/* The path as messages show it: relative to the project root when inside it. */
static const char *display_name(const char *path)
{
    const char *root = job_root();
    size_t n = root ? strlen(root) : 0;
    if (n && strncmp(path, root, n) == 0 && path[n] == '/') return path + n + 1;
    if (strncmp(path, "./", 2) == 0) return path + 2;
    return path;
}

/* ---- the views --------------------------------------------------------- */

static int l_view_newindex(lua_State *L)
{
    luaL_where(L, 1);                    /* level 1: the rule that wrote */
    lua_pushfstring(L, "%s is read-only", lua_tostring(L, lua_upvalueindex(1)));
    lua_concat(L, 2);
    return lua_error(L);
}

/* for k, v in pairs(view): iterates the backing table without exposing it. */
static int l_view_next(lua_State *L)
{
    lua_settop(L, 2);
    if (lua_next(L, lua_upvalueindex(1))) return 2;
    lua_pushnil(L);
    return 1;
}

static int l_view_pairs(lua_State *L)
{
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_pushcclosure(L, l_view_next, 1);
    lua_pushvalue(L, 1);
    lua_pushnil(L);
    return 3;
}

/* [-0, +1, m] a read-only view of the table at `tab`, named `what` in errors. */
static void push_view(lua_State *L, int tab, const char *what)
{
    tab = lua_absindex(L, tab);
    lua_newuserdatauv(L, 0, 0);
    lua_createtable(L, 0, 4);
    lua_pushvalue(L, tab);
    lua_setfield(L, -2, "__index");
    lua_pushstring(L, what);
    lua_pushcclosure(L, l_view_newindex, 1);
    lua_setfield(L, -2, "__newindex");
    lua_pushvalue(L, tab);
    lua_pushcclosure(L, l_view_pairs, 1);
    lua_setfield(L, -2, "__pairs");
    lua_pushfstring(L, "%s is read-only", what);
    lua_setfield(L, -2, "__metatable");
    lua_setmetatable(L, -2);
}

/* ctx.days_since(date) -> integer | nil: days from date to ctx.now.
 * nil for a missing or unparsable date; a non-string raises. */
static int days_between(lua_State *L, int sign)
{
    rules *r = lua_touserdata(L, lua_upvalueindex(1));
    if (lua_isnoneornil(L, 1)) return 0;
    const char *s = luaL_checkstring(L, 1);
    int64_t d;
    if (!r->now_ok || parse_day(s, &d) < 0) return 0;
    lua_pushinteger(L, (lua_Integer)(sign * (r->now_days - d)));
    return 1;
}

static int l_ctx_days_since(lua_State *L) { return days_between(L, 1); }
/* ctx.days_until(date) -> integer | nil: days from ctx.now to date. */
static int l_ctx_days_until(lua_State *L) { return days_between(L, -1); }

/* may raise: run protected. Builds the backing tables and views once. */
static int build_views(lua_State *L)
{
    rules *r = lua_touserdata(L, 1);
    lua_createtable(L, 0, 40);
    lua_pushvalue(L, -1);
    r->deal_tab = luaL_ref(L, LUA_REGISTRYINDEX);
    push_view(L, -1, "deal");
    r->deal_view = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_pop(L, 1);

    lua_createtable(L, 0, 8);            /* ctx */
    lua_pushlightuserdata(L, r);
    lua_pushcclosure(L, l_ctx_days_since, 1);
    lua_setfield(L, -2, "days_since");
    lua_pushlightuserdata(L, r);
    lua_pushcclosure(L, l_ctx_days_until, 1);
    lua_setfield(L, -2, "days_until");
    lua_createtable(L, 0, RULE_STAGES);
    lua_pushvalue(L, -1);
    r->med_tab = luaL_ref(L, LUA_REGISTRYINDEX);
    push_view(L, -1, "ctx.stage_median_days");
    lua_setfield(L, -3, "stage_median_days");
    lua_pop(L, 1);
    lua_createtable(L, 0, 2);
    lua_pushvalue(L, -1);
    r->partner_tab = luaL_ref(L, LUA_REGISTRYINDEX);
    push_view(L, -1, "ctx.partner");
    lua_setfield(L, -3, "partner");
    lua_pop(L, 1);
    lua_pushvalue(L, -1);
    r->ctx_tab = luaL_ref(L, LUA_REGISTRYINDEX);
    push_view(L, -1, "ctx");
    r->ctx_view = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_pop(L, 1);
    return 0;
}

static void set_str(lua_State *L, const char *k, const char *v)
{
    if (v && *v) lua_pushstring(L, v);   /* "" is missing too */
    else lua_pushnil(L);
    lua_setfield(L, -2, k);
}

static void set_num(lua_State *L, const char *k, double v)
{
    if (isnan(v)) lua_pushnil(L);
    else lua_pushnumber(L, v);
    lua_setfield(L, -2, k);
}

static void set_int(lua_State *L, const char *k, int v)
{
    lua_pushinteger(L, v);
    lua_setfield(L, -2, k);
}

/* may raise: run protected. Refills the backing tables for one deal. */
static int fill_views(lua_State *L)
{
    rules *r = lua_touserdata(L, 1);
    const deal_view *d = lua_touserdata(L, 2);
    const rule_ctx *c = lua_touserdata(L, 3);
    lua_rawgeti(L, LUA_REGISTRYINDEX, r->deal_tab);
    set_str(L, "external_id", d->external_id);
    set_str(L, "partner_id", d->partner_id);
    set_str(L, "partner_tier", d->tier);
    set_str(L, "partner_type", d->partner_type);
    set_str(L, "partner_region", d->region);
    set_str(L, "partner_parent", d->parent_id);
    set_str(L, "account", d->account);
    set_str(L, "contact_name", d->contact_name);
    set_str(L, "contact_email", d->contact_email);
    set_str(L, "product_family", d->product_family);
    set_str(L, "stage", d->stage);
    set_str(L, "status", d->status);
    set_str(L, "currency", d->currency);
    set_str(L, "competitor", d->competitor);
    set_str(L, "notes", d->notes);
    set_num(L, "amount", d->amount);
    set_num(L, "amount_base", d->amount_base);
    set_num(L, "amount_usd", d->amount_base);     /* the name rules were written with */
    set_num(L, "partner_probability", d->partner_probability);
    set_num(L, "completeness", d->completeness);
    if (d->budget_confirmed < 0) lua_pushnil(L);
    else lua_pushboolean(L, d->budget_confirmed);
    lua_setfield(L, -2, "budget_confirmed");
    set_str(L, "created_at", d->created_at);
    set_str(L, "expected_close", d->expected_close);
    set_str(L, "closed_at", d->closed_at);
    set_str(L, "stage_changed_at", d->stage_changed_at);
    set_str(L, "updated_at", d->updated_at);
    set_int(L, "age_days", d->age_days);
    set_int(L, "days_in_stage", d->days_in_stage);
    set_int(L, "close_date_slips", d->close_date_slips);
    set_int(L, "days_slipped", d->days_slipped);
    set_int(L, "stage_regressions", d->stage_regressions);
    lua_pop(L, 1);

    r->now_ok = parse_day(c->now, &r->now_days) == 0;
    lua_rawgeti(L, LUA_REGISTRYINDEX, r->ctx_tab);
    set_str(L, "now", c->now);
    set_num(L, "tier_median_amount", c->tier_median_amount);
    lua_pop(L, 1);
    lua_rawgeti(L, LUA_REGISTRYINDEX, r->med_tab);
    for (int i = 0; i < RULE_STAGES; i++) set_num(L, domain_stage_names[i], c->stage_median_days[i]);
    lua_pop(L, 1);
    lua_rawgeti(L, LUA_REGISTRYINDEX, r->partner_tab);
    set_num(L, "win_rate", c->partner_win_rate);
    set_num(L, "median_amount", c->partner_median_amount);
    lua_pop(L, 1);
    return 0;
}

/* ---- loading ----------------------------------------------------------- */

/* engine[fn](args below) with nres results, through sandbox_call. */
static int engine_call(rules *r, const char *fn, int nargs, int nres, prm_error *err)
{
    lua_State *L = r->L;
    if (!lua_checkstack(L, 2)) return prm_error_set(err, "Lua stack overflow");
    lua_rawgeti(L, LUA_REGISTRYINDEX, r->engine_ref);
    lua_getfield(L, -1, fn);
    lua_remove(L, -2);
    lua_insert(L, -1 - nargs);
    return sandbox_call(L, nargs, nres, err);
}

/* may raise: run protected. Loads prm.rules and returns its engine side.
 * (sandbox.c hides the string metatable from every rule state.) */
static int open_engine(lua_State *L)
{
    lua_getglobal(L, "require");
    lua_pushliteral(L, "prm.rules");
    lua_call(L, 1, 0);
    lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
    lua_getfield(L, -1, "prm.rules.engine");
    return 1;
}

static void free_meta(rules *r)
{
    for (int i = 0; i < r->n; i++) {
        rule_meta *m = &r->m[i];
        free(m->name);
        free(m->description);
        free(m->file);
        for (int k = 0; k < m->nparams; k++) {
            if (m->pkey) free(m->pkey[k]);
            if (m->pdoc) free(m->pdoc[k]);
            if (m->pval) free(m->pval[k]);
        }
        free(m->pkey);
        free(m->pdoc);
        free(m->pval);
        for (int k = 0; k < RULES_KEEP_ERRORS; k++) free(m->msgs[k]);
        if (r->L) {
            luaL_unref(r->L, LUA_REGISTRYINDEX, m->check_ref);
            luaL_unref(r->L, LUA_REGISTRYINDEX, m->p_ref);
        }
    }
    free(r->m);
    r->m = NULL;
    r->n = 0;
}

static char *field_str(lua_State *L, int t, const char *k)
{
    lua_getfield(L, t, k);
    char *s = dupstr(luaL_tolstring(L, -1, NULL));
    lua_pop(L, 2);
    return s;
}

/* may raise: run protected. Copies the accepted rules (the table at 2)
 * into r->m. Every malloc'd string is stored in r at once, so a raise
 * half-way leaks nothing: rules_free finds it. */
static int collect(lua_State *L)
{
    rules *r = lua_touserdata(L, 1);
    int n = (int)luaL_len(L, 2);
    r->m = calloc((size_t)(n ? n : 1), sizeof *r->m);
    if (!r->m) return luaL_error(L, "out of memory");
    for (int i = 0; i < n; i++) {
        rule_meta *m = &r->m[i];
        m->check_ref = m->p_ref = LUA_NOREF;
        r->n = i + 1;
        lua_rawgeti(L, 2, i + 1);
        int t = lua_gettop(L);
        m->name = field_str(L, t, "name");
        m->description = field_str(L, t, "description");
        m->file = field_str(L, t, "at");
        lua_getfield(L, t, "severity");
        const char *sev = lua_tostring(L, -1);
        m->severity = sev && strcmp(sev, "high") == 0 ? RULE_HIGH
                    : sev && strcmp(sev, "medium") == 0 ? RULE_MEDIUM : RULE_LOW;
        lua_pop(L, 1);
        lua_getfield(L, t, "check");
        m->check_ref = luaL_ref(L, LUA_REGISTRYINDEX);
        lua_getfield(L, t, "p");
        m->p_ref = luaL_ref(L, LUA_REGISTRYINDEX);
        lua_getfield(L, t, "params");
        lua_getfield(L, t, "values");
        int np = (int)luaL_len(L, -2);
        m->pkey = calloc((size_t)(np ? np : 1), sizeof(char *));
        m->pdoc = calloc((size_t)(np ? np : 1), sizeof(char *));
        m->pval = calloc((size_t)(np ? np : 1), sizeof(char *));
        if (!m->pkey || !m->pdoc || !m->pval) return luaL_error(L, "out of memory");
        for (int k = 0; k < np; k++) {
            m->nparams = k + 1;
            lua_rawgeti(L, -2, k + 1);
            m->pkey[k] = field_str(L, -1, "key");
            m->pdoc[k] = field_str(L, -1, "doc");
            lua_getfield(L, -2, m->pkey[k] ? m->pkey[k] : "");
            m->pval[k] = dupstr(luaL_tolstring(L, -1, NULL));
            lua_pop(L, 3);
        }
        lua_settop(L, t - 1);
    }
    return 0;
}

static int recollect(rules *r, prm_error *err)
{
    free_meta(r);
    if (engine_call(r, "rules", 0, 1, err) < 0) return -1;
    lua_pushcfunction(r->L, collect);
    lua_insert(r->L, -2);
    lua_pushlightuserdata(r->L, r);
    lua_insert(r->L, -2);
    return sandbox_call(r->L, 2, 0, err);
}

static void take_rejected(rules *r)
{
    prm_error e;
    if (engine_call(r, "take_rejected", 0, 1, &e) < 0) {
        add_load_error(r, e.msg);
        return;
    }
    int n = (int)lua_rawlen(r->L, -1);
    for (int k = 1; k <= n; k++) {
        lua_rawgeti(r->L, -1, k);
        const char *s = lua_tostring(r->L, -1);
        if (s) add_load_error(r, s);
        lua_pop(r->L, 1);
    }
    lua_pop(r->L, 1);
}

/* Pushes the chunk of `path`, named after its display name, with a fresh
 * rule environment. */
static int load_chunk(lua_State *L, const char *path, const char *shown, prm_error *err)
{
    char chunk[512];
    snprintf(chunk, sizeof chunk, "@%s", shown);
    return sandbox_loadfile(L, path, chunk, SANDBOX_RULE, err);
}

static int load_file(rules *r, const char *path)
{
    lua_State *L = r->L;
    const char *shown = display_name(path);
    prm_error e;
    lua_pushstring(L, shown);
    if (engine_call(r, "begin", 1, 0, &e) < 0) {
        add_load_error(r, e.msg);
        return -1;
    }
    int ok = load_chunk(L, path, shown, &e) == 0 && sandbox_call(L, 0, 0, &e) == 0;
    if (!ok) add_load_error(r, e.msg);
    lua_pushboolean(L, ok);
    if (engine_call(r, "finish", 1, 0, &e) < 0) {
        add_load_error(r, e.msg);
        ok = 0;
    }
    take_rejected(r);
    return ok ? 0 : -1;
}

int rules_load(const char *const *files, int nfiles, rules **out, prm_error *err)
{
    *out = NULL;
    rules *r = calloc(1, sizeof *r);
    if (!r) return prm_error_set(err, "out of memory");
    r->log = stderr;
    r->engine_ref = r->deal_tab = r->deal_view = r->ctx_tab = r->ctx_view = LUA_NOREF;
    r->med_tab = r->partner_tab = LUA_NOREF;
    sandbox_opts o = { SANDBOX_RULE, SANDBOX_RULE_MEM, SANDBOX_RULE_INSTR, NULL, job_root(), 0, 0 };
    r->L = sandbox_new(&o, err);
    if (!r->L) {
        free(r);
        return -1;
    }
    lua_pushcfunction(r->L, open_engine);
    if (sandbox_call(r->L, 0, 1, err) < 0) goto fail;
    r->engine_ref = luaL_ref(r->L, LUA_REGISTRYINDEX);
    int loaded = 0;
    for (int i = 0; i < nfiles; i++)
        if (load_file(r, files[i]) == 0) loaded++;
    if (nfiles > 0 && loaded == 0) {
        prm_error_set(err, "no rule file loaded: %s",
                      r->nload_errs ? r->load_errs[0] : "unknown error");
        goto fail;
    }
    if (recollect(r, err) < 0) goto fail;
    lua_pushcfunction(r->L, build_views);
    lua_pushlightuserdata(r->L, r);
    if (sandbox_call(r->L, 1, 0, err) < 0) goto fail;
    *out = r;
    return 0;
fail:
    r->log = NULL;
    rules_free(r);
    return -1;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int rules_load_dir(const char *dir, rules **out, prm_error *err)
{
    DIR *d = opendir(dir);
    if (!d) return prm_error_set(err, "%s: cannot open directory", dir);
    char **files = NULL;
    int n = 0, rc = -1;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (len < 5 || e->d_name[0] == '.' || strcmp(e->d_name + len - 4, ".lua") != 0) continue;
        char **nf = realloc(files, (size_t)(n + 1) * sizeof *nf);
        if (!nf) goto oom;
        files = nf;
        size_t sz = strlen(dir) + len + 2;
        if (!(files[n] = malloc(sz))) goto oom;
        snprintf(files[n++], sz, "%s/%s", dir, e->d_name);
    }
    if (n) qsort(files, (size_t)n, sizeof *files, by_name);
    rc = rules_load((const char *const *)files, n, out, err);
    if (0) {
oom:
        *out = NULL;
        prm_error_set(err, "out of memory");
    }
    closedir(d);
    for (int i = 0; i < n; i++) free(files[i]);
    free(files);
    return rc;
}

void rules_free(rules *r)
{
    if (!r) return;
    for (int i = 0; i < r->n; i++)
        if (r->log && r->m[i].errors > 1)
            fprintf(r->log, "prmcast: rule %s failed on %ld deal(s)%s\n", r->m[i].name,
                    r->m[i].errors, r->m[i].disabled ? " and was switched off" : "");
    free_meta(r);
    for (int k = 0; k < r->nload_errs; k++) free(r->load_errs[k]);
    free(r->load_errs);
    sandbox_close(r->L);
    free(r);
}

int rules_configure(rules *r, const char *path, prm_error *err)
{
    lua_State *L = r->L;
    const char *shown = display_name(path);
    prm_error e;
    if (load_chunk(L, path, shown, &e) < 0 || sandbox_call(L, 0, 1, &e) < 0) {
        char *m = first_line(e.msg);
        prm_error_set(err, "%s", m ? m : e.msg);
        free(m);
        return -1;
    }
    lua_pushstring(L, shown);
    if (engine_call(r, "configure", 2, 1, err) < 0) return -1;
    int n = (int)lua_rawlen(L, -1);
    char msg[sizeof err->msg] = "";
    for (int k = 1; k <= n && k <= 3; k++) {
        lua_rawgeti(L, -1, k);
        size_t used = strlen(msg);
        snprintf(msg + used, sizeof msg - used, "%s%s", k > 1 ? "; " : "", lua_tostring(L, -1));
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    if (recollect(r, err) < 0) return -1;
    if (n) return prm_error_set(err, "%s%s", msg, n > 3 ? "; ..." : "");
    return 0;
}

/* ---- accessors --------------------------------------------------------- */

int rules_load_errors(const rules *r) { return r->nload_errs; }

const char *rules_load_error(const rules *r, int k)
{
    return k >= 0 && k < r->nload_errs ? r->load_errs[k] : NULL;
}

int rules_count(const rules *r) { return r->n; }
const char *rules_name(const rules *r, int i) { return r->m[i].name; }
const char *rules_description(const rules *r, int i) { return r->m[i].description; }
rule_severity rules_severity(const rules *r, int i) { return r->m[i].severity; }
const char *rules_file(const rules *r, int i) { return r->m[i].file; }
int rules_nparams(const rules *r, int i) { return r->m[i].nparams; }
long rules_errors(const rules *r, int i) { return r->m[i].errors; }
int rules_disabled(const rules *r, int i) { return r->m[i].disabled; }
void rules_set_log(rules *r, FILE *log) { r->log = log; }
size_t rules_memory(const rules *r) { return sandbox_ctx_of(r->L)->mem_used; }

const char *rules_severity_name(rule_severity s)
{
    return s == RULE_HIGH ? "high" : s == RULE_MEDIUM ? "medium" : "low";
}

int rules_index(const rules *r, const char *name)
{
    for (int i = 0; i < r->n; i++)
        if (strcmp(r->m[i].name, name) == 0) return i;
    return -1;
}

void rules_param(const rules *r, int i, int k, const char **key, const char **doc,
                 const char **value)
{
    const rule_meta *m = &r->m[i];
    if (key) *key = m->pkey[k];
    if (doc) *doc = m->pdoc[k];
    if (value) *value = m->pval[k];
}

const char *rules_error_msg(const rules *r, int i, int k)
{
    return k >= 0 && k < RULES_KEEP_ERRORS ? r->m[i].msgs[k] : NULL;
}

void rule_ctx_init(rule_ctx *c, const char *now)
{
    memset(c, 0, sizeof *c);
    c->now = now;
    for (int i = 0; i < RULE_STAGES; i++) c->stage_median_days[i] = NAN;
    c->partner_win_rate = c->partner_median_amount = c->tier_median_amount = NAN;
}

/* ---- evaluation -------------------------------------------------------- */

/* may raise: run protected. Forgets a switched-off rule's check, so what
 * it holds (a table it filled until the memory cap) can be collected. */
static int drop_check(lua_State *L)
{
    rules *r = lua_touserdata(L, 1);
    int i = (int)lua_tointeger(L, 2);
    lua_rawgeti(L, LUA_REGISTRYINDEX, r->engine_ref);
    lua_getfield(L, -1, "rules");
    lua_call(L, 0, 1);
    if (lua_rawgeti(L, -1, i + 1) == LUA_TTABLE) {
        lua_pushnil(L);
        lua_setfield(L, -2, "check");
    }
    luaL_unref(L, LUA_REGISTRYINDEX, r->m[i].check_ref);
    r->m[i].check_ref = LUA_NOREF;
    return 0;
}

static void rule_failed(rules *r, int i, const char *msg)
{
    rule_meta *m = &r->m[i];
    sandbox_ctx *c = sandbox_ctx_of(r->L);
    if (m->errors < RULES_KEEP_ERRORS) m->msgs[m->errors] = first_line(msg);
    m->errors++;
    if (m->errors == 1 && r->log)
        fprintf(r->log, "prmcast: rule %s failed: %.*s (further failures are counted)\n",
                m->name, (int)strcspn(msg, "\n"), msg);
    /* Time, depth and size limits are switched off at once: one such call
     * costs up to the deadline, and the next deal would cost it again.
     * Instruction and memory limits get RULES_MAX_LIMIT_FAILS chances. */
    sandbox_limit hit = c->limit_hit;
    int now = hit == SANDBOX_LIMIT_TIME || hit == SANDBOX_LIMIT_DEPTH || hit == SANDBOX_LIMIT_SIZE;
    if (now || hit == SANDBOX_LIMIT_INSTR || hit == SANDBOX_LIMIT_MEM) m->limit_fails++;
    if (now || m->limit_fails >= RULES_MAX_LIMIT_FAILS) {
        if (!m->limit_fails) return;
        m->disabled = 1;
        prm_error e;
        lua_pushcfunction(r->L, drop_check);
        lua_pushlightuserdata(r->L, r);
        lua_pushinteger(r->L, i);
        if (sandbox_call(r->L, 2, 0, &e) == 0) lua_gc(r->L, LUA_GCCOLLECT);
        if (r->log)
            fprintf(r->log, "prmcast: rule %s (%s) switched off for this run after %d limit failure%s\n",
                    m->name, m->file, m->limit_fails, m->limit_fails == 1 ? "" : "s");
    }
}

int rules_eval(rules *r, const deal_view *d, const rule_ctx *c, rule_hit *hits, int max_hits,
               int *nhits, prm_error *err)
{
    lua_State *L = r->L;
    *nhits = 0;
    lua_pushcfunction(L, fill_views);
    lua_pushlightuserdata(L, r);
    lua_pushlightuserdata(L, (void *)d);
    lua_pushlightuserdata(L, (void *)c);
    if (sandbox_call(L, 3, 0, err) < 0) return -1;
    prm_error e;
    for (int i = 0; i < r->n; i++) {
        rule_meta *m = &r->m[i];
        if (m->disabled) continue;
        lua_rawgeti(L, LUA_REGISTRYINDEX, m->check_ref);
        lua_rawgeti(L, LUA_REGISTRYINDEX, r->deal_view);
        lua_rawgeti(L, LUA_REGISTRYINDEX, r->ctx_view);
        lua_rawgeti(L, LUA_REGISTRYINDEX, m->p_ref);
        if (sandbox_call(L, 3, 2, &e) < 0) {
            rule_failed(r, i, e.msg);
            continue;
        }
        if (lua_toboolean(L, -2) && *nhits < max_hits) {
            rule_hit *h = &hits[(*nhits)++];
            h->rule = i;
            h->name = m->name;
            h->severity = m->severity;
            h->reason[0] = 0;
            if (lua_type(L, -1) == LUA_TSTRING) {
                size_t len;
                const char *s = lua_tolstring(L, -1, &len);
                if (len >= sizeof h->reason) {
                    len = sizeof h->reason - 1;
                    /* Cut at a character boundary, not inside a UTF-8 sequence. */
                    while (len > 0 && ((unsigned char)s[len] & 0xC0) == 0x80) len--;
                }
                memcpy(h->reason, s, len);
                h->reason[len] = 0;
            } else if (lua_type(L, -1) == LUA_TNUMBER) {
                snprintf(h->reason, sizeof h->reason, "%g", lua_tonumber(L, -1));
            }
        }
        lua_pop(L, 2);
    }
    return 0;
}

/* Appends s as a JSON string at out[*len]; 0, or -1 when it does not fit. */
static int json_put(char *out, size_t cap, size_t *len, const char *s, int quote)
{
    size_t n = *len;
    if (quote) {
        if (n + 1 >= cap) return -1;
        out[n++] = '"';
    }
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        char esc[8];
        int k;
        if (quote && (c == '"' || c == '\\')) k = snprintf(esc, sizeof esc, "\\%c", c);
        else if (quote && c < 0x20) k = snprintf(esc, sizeof esc, "\\u%04x", c);
        else k = (esc[0] = (char)c, 1);
        if (n + (size_t)k >= cap) return -1;
        memcpy(out + n, esc, (size_t)k);
        n += (size_t)k;
    }
    if (quote) {
        if (n + 1 >= cap) return -1;
        out[n++] = '"';
    }
    out[n] = 0;
    *len = n;
    return 0;
}

int rules_hits_json(const rule_hit *hits, int n, char *out, size_t cap)
{
    if (cap < 3) return -1;
    size_t len = 1;
    out[0] = '[';
    out[1] = 0;
    int written = 0;
    for (int i = 0; i < n; i++) {
        size_t mark = len;
        if ((written && json_put(out, cap, &len, ",", 0) < 0) ||
            json_put(out, cap, &len, "{\"name\":", 0) < 0 ||
            json_put(out, cap, &len, hits[i].name, 1) < 0 ||
            json_put(out, cap, &len, ",\"severity\":\"", 0) < 0 ||
            json_put(out, cap, &len, rules_severity_name(hits[i].severity), 0) < 0 ||
            json_put(out, cap, &len, "\",\"reason\":", 0) < 0 ||
            json_put(out, cap, &len, hits[i].reason, 1) < 0 ||
            json_put(out, cap, &len, "}", 0) < 0 || len + 1 >= cap) {
            len = mark;                  /* leave it out; keep room for ']' */
            break;
        }
        written++;
    }
    out[len++] = ']';
    out[len] = 0;
    return written;
}
