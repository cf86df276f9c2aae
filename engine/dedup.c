/* dedup.c - multi-tier de-duplication: a distributor's copy of one of its
 * resellers' registrations (forecast.h). The thresholds are a Lua
 * declaration, rules/dedup.lua, loaded sandboxed as a rule:
 *
 *   return { same_account = true, same_product = true, parent_relationship = true,
 *            amount_within_pct = 5, days_within = 14 }
 */
#include <ctype.h>
#include <lauxlib.h>
#include <lua.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "forecast.h"
#include "job.h"
#include "sandbox.h"
#include "store.h"
#include "store_forecast.h"
#include "world_int.h"

static void defaults(dedup_rule *r)
{
    r->same_account = 1;
    r->same_product = 1;
    r->require_parent = 1;
    r->amount_pct = 5;
    r->days = 14;
}

/* [-0, +0, -] a boolean or number field of the table on top; 0 or -1 with err. */
static int field(lua_State *L, const char *name, int boolean, double lo, double hi, double *out,
                 const char *path, prm_error *err)
{
    int t = lua_getfield(L, -1, name);
    int rc = 0;
    if (t == LUA_TNIL) {
        /* keep the default */
    } else if (boolean) {
        if (t != LUA_TBOOLEAN) rc = prm_error_set(err, "%s: '%s' must be true or false", path, name);
        else *out = lua_toboolean(L, -1);
    } else {
        int isnum;
        double v = lua_tonumberx(L, -1, &isnum);
        if (!isnum || !(v >= lo && v <= hi))
            rc = prm_error_set(err, "%s: '%s' must be a number in [%g, %g]", path, name, lo, hi);
        else *out = v;
    }
    lua_pop(L, 1);
    return rc;
}

int dedup_rule_load(const char *path, dedup_rule *r, prm_error *err)
{
    defaults(r);
    char buf[1100];
    if (!path) {
        snprintf(buf, sizeof buf, "%s/rules/dedup.lua", job_root());
        if (access(buf, R_OK) != 0) return 0;   /* no rule file: the defaults */
        path = buf;
    }
    sandbox_opts o = { SANDBOX_RULE, SANDBOX_RULE_MEM, SANDBOX_RULE_INSTR, NULL, job_root(), 0, 0 };
    lua_State *L = sandbox_new(&o, err);
    if (!L) return -1;
    int rc = -1;
    if (sandbox_loadfile(L, path, NULL, SANDBOX_RULE, err) < 0) goto out;
    if (sandbox_call(L, 0, 1, err) < 0) goto out;
    if (!lua_istable(L, -1)) {
        prm_error_set(err, "%s: must return a table of thresholds", path);
        goto out;
    }
    double a = r->same_account, p = r->same_product, par = r->require_parent, pct = r->amount_pct,
           days = r->days;
    if (field(L, "same_account", 1, 0, 0, &a, path, err) < 0 || field(L, "same_product", 1, 0, 0, &p, path, err) < 0 ||
        field(L, "parent_relationship", 1, 0, 0, &par, path, err) < 0 ||
        field(L, "amount_within_pct", 0, 0, 100, &pct, path, err) < 0 ||
        field(L, "days_within", 0, 0, 3650, &days, path, err) < 0)
        goto out;
    r->same_account = a != 0;
    r->same_product = p != 0;
    r->require_parent = par != 0;
    r->amount_pct = pct;
    r->days = (int)days;
    rc = 0;
out:
    sandbox_close(L);
    return rc;
}

typedef struct dacct {
    size_t deal;
    char *key;                 /* normalised account */
} dacct;

typedef struct acctlist {
    const world *w;
    int64_t *row2deal;         /* rowid -> deal index + 1 */
    int64_t max_row;
    dacct *a;
    size_t n, cap;
} acctlist;

static int add_account(void *ud, int64_t rowid, const char *account)
{
    acctlist *l = ud;
    if (rowid < 0 || rowid > l->max_row || !l->row2deal[rowid]) return 0;
    if (l->n == l->cap) {
        size_t nc = l->cap ? l->cap * 2 : 1024;
        dacct *na = realloc(l->a, sizeof *na * nc);
        if (!na) return -1;
        l->a = na;
        l->cap = nc;
    }
    size_t len = strlen(account);
    char *k = malloc(len + 1), *q = k;
    if (!k) return -1;
    for (const char *c = account; *c; c++)
        if (isalnum((unsigned char)*c)) *q++ = (char)tolower((unsigned char)*c);
    *q = 0;
    if (!*k) {
        free(k);
        return 0;
    }
    l->a[l->n++] = (dacct){ (size_t)(l->row2deal[rowid] - 1), k };
    return 0;
}

static int cmp_acct(const void *x, const void *y)
{
    const dacct *a = x, *b = y;
    int c = strcmp(a->key, b->key);
    return c ? c : (a->deal > b->deal) - (a->deal < b->deal);
}

static int is_distributor(const world *w, int pi, int64_t t)
{
    if (pi < 0) return 0;
    int ty = wp_type(w, &w->p[pi], t);
    return ty >= 0 && ty < w->types.n && strcmp(w->types.s[ty], "distributor") == 0;
}

int dedup_find(store *s, const world *w, int64_t t, const dedup_rule *r, dedup_pair **pairs, size_t *n,
               prm_error *err)
{
    *pairs = NULL;
    *n = 0;
    acctlist l = { w, NULL, 0, NULL, 0, 0 };
    for (size_t i = 0; i < w->nd; i++)
        if (w->d[i].rowid > l.max_row) l.max_row = w->d[i].rowid;
    l.row2deal = calloc((size_t)l.max_row + 1, sizeof *l.row2deal);
    if (!l.row2deal) return prm_error_set(err, "out of memory");
    for (size_t i = 0; i < w->nd; i++) l.row2deal[w->d[i].rowid] = (int64_t)i + 1;
    int rc = -1;
    dedup_pair *out = NULL;
    size_t nout = 0, cap = 0;
    uint8_t *used = calloc(w->nd + 1, 1);
    if (!used) goto oom;
    if (r->same_account) {
        if (store_deal_accounts(s, add_account, &l, err) < 0) goto out;
    } else {
        /* without the account rule every known deal is a candidate of one group */
        for (size_t i = 0; i < w->nd; i++)
            if (add_account(&l, w->d[i].rowid, "all") < 0) goto oom;
    }
    qsort(l.a, l.n, sizeof *l.a, cmp_acct);
    int32_t day = (int32_t)(t / DAY);
    for (size_t g0 = 0; g0 < l.n;) {
        size_t g1 = g0 + 1;
        while (g1 < l.n && strcmp(l.a[g1].key, l.a[g0].key) == 0) g1++;
        for (size_t i = g0; i < g1; i++) {
            size_t di = l.a[i].deal;   /* the distributor's copy */
            const wdeal *dd = &w->d[di];
            wstate sd;
            if (used[di] || !world_state_at(w, dd, t, &sd) || !is_distributor(w, dd->partner, t)) continue;
            for (size_t j = g0; j < g1; j++) {
                size_t ri = l.a[j].deal;   /* the reseller's record */
                const wdeal *rd = &w->d[ri];
                wstate sr;
                if (ri == di || used[ri] || rd->partner == dd->partner || is_distributor(w, rd->partner, t))
                    continue;
                if (!world_state_at(w, rd, t, &sr)) continue;
                int parent = rd->partner >= 0 ? wp_parent(w, &w->p[rd->partner], t) : -1;
                if (r->require_parent && parent != dd->partner) continue;
                if (r->same_product && wd_product(w, rd, t) != wd_product(w, dd, t)) continue;
                double a1 = world_amount_base(w, rd, sr.now->amount, day);
                double a2 = world_amount_base(w, dd, sd.now->amount, day);
                if (!(a1 == a1) || !(a2 == a2)) continue;
                double big = fmax(fabs(a1), fabs(a2));
                double pct = big > 0 ? 100 * fabs(a1 - a2) / big : 0;
                if (pct > r->amount_pct + 1e-9) continue;
                int apart = rd->created != INT32_MIN && dd->created != INT32_MIN ? abs(rd->created - dd->created) : 0;
                if (apart > r->days) continue;
                if (nout == cap) {
                    size_t nc = cap ? cap * 2 : 64;
                    dedup_pair *np = realloc(out, sizeof *np * nc);
                    if (!np) goto oom;
                    out = np;
                    cap = nc;
                }
                dedup_pair *p = &out[nout++];
                p->keep = ri;
                p->drop = di;
                p->amount_diff_pct = pct;
                p->days_apart = apart;
                snprintf(p->why, sizeof p->why, "%s%s%samounts %.1f%% apart, registered %d day(s) apart",
                         r->same_account ? "same account, " : "", r->same_product ? "same product, " : "",
                         parent == dd->partner ? "distributor is the reseller's parent, " : "", pct, apart);
                used[ri] = used[di] = 1;
                break;
            }
        }
        g0 = g1;
    }
    *pairs = out;
    *n = nout;
    out = NULL;
    rc = 0;
    goto out;
oom:
    prm_error_set(err, "out of memory matching duplicates");
out:
    free(out);
    for (size_t i = 0; i < l.n; i++) free(l.a[i].key);
    free(l.a);
    free(l.row2deal);
    free(used);
    return rc;
}
