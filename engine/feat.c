/* feat.c - see feat.h. Loads what scoring needs from the store
 * once (through store.h, never sqlite3.h) and computes features for any
 * instant from memory, so a training set of many snapshots costs one read. */
#include "feat.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"
#include "timeutil.h"

static const char *const stage_names[] = { "registered", "qualified", "solution", "proposal",
                                           "negotiation", "closed_won", "closed_lost" };
enum { ST_WON = 5, ST_LOST = 6, STATUS_OPEN = 0, STATUS_WON = 1, STATUS_LOST = 2 };
enum { MAX_SIGNALS = 8, PARTNER_MEDIAN_WINDOW = 200 };
#define DAY 86400LL
#define WIN_RATE_WINDOW_DAYS 365

const char *feat_stage_name(int i) { return i >= 0 && i < 7 ? stage_names[i] : "?"; }

/* ---- interned strings ------------------------------------------------- */

typedef struct strtab {
    char **s;
    int n, cap;
} strtab;

static int intern(strtab *t, const char *s)
{
    if (!s) return -1;
    for (int i = 0; i < t->n; i++)
        if (strcmp(t->s[i], s) == 0) return i;
    if (t->n == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 16;
        t->s = realloc(t->s, sizeof *t->s * (size_t)t->cap);
    }
    t->s[t->n] = strdup(s);
    return t->n++;
}

static void strtab_free(strtab *t)
{
    for (int i = 0; i < t->n; i++) free(t->s[i]);
    free(t->s);
}

/* ---- the world -------------------------------------------------------- */

typedef struct fhist {
    int64_t t;
    double amount;
    int32_t close_day;         /* INT32_MIN: none */
    float prob;                /* NaN: none */
    int8_t stage, status;
} fhist;

typedef struct fdeal {
    int64_t rowid;
    char *ext;
    int partner, source, product, currency, competitor;   /* interned, -1 none */
    int8_t budget;             /* 1, 0, -1 */
    uint8_t present;           /* bit 0 account, 1 contact, 2 email */
    double completeness;
    int32_t created;           /* day */
    size_t h0, hn;             /* history slice */
    int8_t outcome;            /* STATUS_* of the last observation */
    int64_t outcome_t;         /* first observation of the outcome; INT64_MAX if open */
    float last_open_prob;      /* the partner's probability just before the outcome */
} fdeal;

typedef struct fpartner {
    int64_t rowid;
    char *ext;
    int tier, type, region;
    size_t *deals;             /* indices, by created day */
    size_t nd;
    /* commits of category 'commit': quarter key, amount, submitted */
    int32_t *cq;
    double *camt;
    int64_t *ct;
    size_t nc;
} fpartner;

typedef struct series {        /* one signal or FX curve: days ascending */
    int32_t *day;
    double *v;
    size_t n, cap;
} series;

struct feat_world {
    fdeal *d;
    size_t nd;
    fhist *h;
    size_t nh;
    fpartner *p;
    size_t np;
    int64_t *prow;             /* partner rowid -> index + 1 (0: none) */
    int64_t max_prow;
    strtab tiers, types, regions, products, currencies, sources, competitors;
    series *fx;                /* by currency index */
    strtab sig_names;          /* "region:economic_index" */
    int sig_kind[MAX_SIGNALS]; /* 0 region, 1 partner */
    series *sig;               /* [signal][entity]: regions or partners */
    int64_t last_t;
    int fiscal_start;          /* settings.fiscal_start_month */
    /* partner statistics of the last feat_open, for feat_view */
    struct pstats *ps;
    int64_t ps_at;
    double ps_med[FEAT_STAGES];   /* stage medians of that feat_open */
};

static int32_t day_of(const char *iso)
{
    int64_t t;
    if (!iso || date_parse(iso, DATE_ISO, &t, NULL) < 0) return INT32_MIN;
    return (int32_t)(t / DAY - (t % DAY < 0));
}

static int64_t instant_of(const char *iso)
{
    int64_t t;
    if (!iso || date_parse(iso, DATE_ISO, &t, NULL) < 0) return INT64_MIN;
    return t;
}

static int stage_index(const char *s)
{
    if (!s) return -1;
    for (int i = 0; i < 7; i++)
        if (strcmp(s, stage_names[i]) == 0) return i;
    return -1;
}

static int status_index(const char *s)
{
    if (!s) return -1;
    return strcmp(s, "open") == 0 ? STATUS_OPEN : strcmp(s, "won") == 0 ? STATUS_WON
         : strcmp(s, "lost") == 0 ? STATUS_LOST : -1;
}

static void series_add(series *s, int32_t day, double v)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 16;
        s->day = realloc(s->day, sizeof *s->day * s->cap);
        s->v = realloc(s->v, sizeof *s->v * s->cap);
    }
    s->day[s->n] = day;
    s->v[s->n++] = v;
}

/* Latest value at or before `day`; NaN when none. */
static double series_at(const series *s, int32_t day)
{
    size_t lo = 0, hi = s->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (s->day[mid] <= day) lo = mid + 1; else hi = mid;
    }
    return lo ? s->v[lo - 1] : NAN;
}

static const char *txt(store_stmt *st, int i)
{
    store_value v = store_column(st, i);
    return v.kind == SV_TEXT ? v.s : NULL;
}

static double num(store_stmt *st, int i)
{
    store_value v = store_column(st, i);
    return v.kind == SV_REAL ? v.r : v.kind == SV_INT ? (double)v.i : NAN;
}

static int64_t integer(store_stmt *st, int i)
{
    store_value v = store_column(st, i);
    return v.kind == SV_INT ? v.i : v.kind == SV_REAL ? (int64_t)v.r : 0;
}

static int query(store *s, const char *sql, store_stmt **st, prm_error *err)
{
    return store_prepare(s, sql, st, err);
}

static int partner_index(const feat_world *w, int64_t rowid)
{
    if (rowid < 1 || rowid > w->max_prow) return -1;
    return (int)w->prow[rowid] - 1;
}

static int cmp_created(const void *a, const void *b, void *ctx)
{
    const feat_world *w = ctx;
    const fdeal *x = &w->d[*(const size_t *)a], *y = &w->d[*(const size_t *)b];
    return (x->created > y->created) - (x->created < y->created);
}

static int quarter_key(const feat_world *w, int64_t day)
{
    int fy, q;
    fiscal_quarter(day, w->fiscal_start, &fy, &q);
    return fy * 4 + q - 1;
}

static int load_partners(store *s, feat_world *w, prm_error *err)
{
    store_stmt *st;
    if (query(s, "SELECT id, external_id, tier, type, region FROM partners ORDER BY id", &st, err) < 0)
        return -1;
    size_t cap = 0;
    int rc;
    while ((rc = store_step(st, err)) == 1) {
        if (w->np == cap) {
            cap = cap ? cap * 2 : 256;
            w->p = realloc(w->p, sizeof *w->p * cap);
        }
        fpartner *p = &w->p[w->np++];
        memset(p, 0, sizeof *p);
        p->rowid = integer(st, 0);
        p->ext = strdup(txt(st, 1) ? txt(st, 1) : "");
        p->tier = intern(&w->tiers, txt(st, 2));
        p->type = intern(&w->types, txt(st, 3));
        p->region = intern(&w->regions, txt(st, 4));
        if (p->rowid > w->max_prow) w->max_prow = p->rowid;
    }
    store_finalize(st);
    if (rc < 0) return -1;
    w->prow = calloc((size_t)w->max_prow + 1, sizeof *w->prow);
    for (size_t i = 0; i < w->np; i++) w->prow[w->p[i].rowid] = (int64_t)i + 1;
    return 0;
}

static int load_deals(store *s, feat_world *w, prm_error *err)
{
    store_stmt *st;
    if (query(s, "SELECT id, source, external_id, partner_id, product_family, currency,"
                 " budget_confirmed, competitor, completeness, created_at,"
                 " account IS NOT NULL, contact_name IS NOT NULL, contact_email IS NOT NULL"
                 " FROM deals ORDER BY id", &st, err) < 0)
        return -1;
    size_t cap = 0;
    int rc;
    while ((rc = store_step(st, err)) == 1) {
        if (w->nd == cap) {
            cap = cap ? cap * 2 : 4096;
            w->d = realloc(w->d, sizeof *w->d * cap);
        }
        fdeal *d = &w->d[w->nd++];
        memset(d, 0, sizeof *d);
        d->rowid = integer(st, 0);
        d->source = intern(&w->sources, txt(st, 1));
        d->ext = strdup(txt(st, 2) ? txt(st, 2) : "");
        d->partner = partner_index(w, integer(st, 3));
        d->product = intern(&w->products, txt(st, 4));
        d->currency = intern(&w->currencies, txt(st, 5));
        store_value b = store_column(st, 6);
        d->budget = b.kind == SV_INT ? (b.i ? 1 : 0) : -1;
        d->competitor = intern(&w->competitors, txt(st, 7));
        d->completeness = num(st, 8);
        d->created = day_of(txt(st, 9));
        d->present = (uint8_t)((integer(st, 10) ? 1 : 0) | (integer(st, 11) ? 2 : 0) |
                               (integer(st, 12) ? 4 : 0));
        d->outcome = -1;
        d->outcome_t = INT64_MAX;
        d->last_open_prob = NAN;
    }
    store_finalize(st);
    return rc < 0 ? -1 : 0;
}

static int cmp_hist_t(const void *a, const void *b)
{
    int64_t x = ((const fhist *)a)->t, y = ((const fhist *)b)->t;
    return (x > y) - (x < y);
}

/* History is read in table order (a sequential scan: ordering by the
 * (deal_id, observed_at) index would cost a table lookup per row), then
 * grouped by deal with a counting sort and ordered in time per deal. */
static int load_history(store *s, feat_world *w, prm_error *err)
{
    int64_t max_rowid = w->nd ? w->d[w->nd - 1].rowid : 0;
    int32_t *idx = malloc(sizeof *idx * (size_t)(max_rowid + 1));
    if (!idx) return prm_error_set(err, "out of memory");
    for (int64_t i = 0; i <= max_rowid; i++) idx[i] = -1;
    for (size_t i = 0; i < w->nd; i++) idx[w->d[i].rowid] = (int32_t)i;

    store_stmt *st;
    if (query(s, "SELECT deal_id, observed_at, stage, amount, expected_close, status,"
                 " partner_probability FROM deal_history", &st, err) < 0) {
        free(idx);
        return -1;
    }
    fhist *tmp = NULL;
    int32_t *owner = NULL;
    size_t cap = 0, n = 0;
    int rc;
    while ((rc = store_step(st, err)) == 1) {
        int64_t rowid = integer(st, 0);
        if (rowid < 1 || rowid > max_rowid || idx[rowid] < 0) continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 16384;
            fhist *t2 = realloc(tmp, sizeof *tmp * cap);
            int32_t *o2 = realloc(owner, sizeof *owner * cap);
            if (t2) tmp = t2;
            if (o2) owner = o2;
            if (!t2 || !o2) {
                rc = prm_error_set(err, "out of memory loading history");
                break;
            }
        }
        fhist *h = &tmp[n];
        h->t = instant_of(txt(st, 1));
        if (h->t == INT64_MIN) continue;
        h->stage = (int8_t)stage_index(txt(st, 2));
        h->amount = num(st, 3);
        h->close_day = day_of(txt(st, 4));
        h->status = (int8_t)status_index(txt(st, 5));
        h->prob = (float)num(st, 6);
        owner[n++] = idx[rowid];
    }
    store_finalize(st);
    free(idx);
    if (rc < 0) {
        free(tmp);
        free(owner);
        return -1;
    }
    /* Counting sort by deal, then time order within each deal. */
    for (size_t i = 0; i < n; i++) w->d[owner[i]].hn++;
    size_t pos = 0;
    for (size_t i = 0; i < w->nd; i++) {
        w->d[i].h0 = pos;
        pos += w->d[i].hn;
        w->d[i].hn = 0;
    }
    w->h = malloc(sizeof *w->h * (n + 1));
    if (!w->h) {
        free(tmp);
        free(owner);
        return prm_error_set(err, "out of memory loading history");
    }
    for (size_t i = 0; i < n; i++) {
        fdeal *d = &w->d[owner[i]];
        w->h[d->h0 + d->hn++] = tmp[i];
    }
    w->nh = n;
    free(tmp);
    free(owner);
    for (size_t i = 0; i < w->nd; i++) {
        fdeal *d = &w->d[i];
        fhist *h = w->h + d->h0;
        int sorted = 1;
        for (size_t j = 1; j < d->hn && sorted; j++) sorted = h[j - 1].t <= h[j].t;
        if (!sorted) qsort(h, d->hn, sizeof *h, cmp_hist_t);
        for (size_t j = 0; j < d->hn; j++) {
            if (h[j].status > STATUS_OPEN && d->outcome_t == INT64_MAX) d->outcome_t = h[j].t;
            if (h[j].status == STATUS_OPEN) d->last_open_prob = h[j].prob;
            if (h[j].status >= 0) d->outcome = h[j].status;
            if (h[j].t > w->last_t) w->last_t = h[j].t;
        }
        /* An outcome later reopened is not an outcome. */
        if (d->outcome == STATUS_OPEN || d->outcome < 0) d->outcome_t = INT64_MAX;
    }
    return 0;
}

static int load_series(store *s, feat_world *w, prm_error *err)
{
    store_stmt *st;
    w->fx = calloc((size_t)w->currencies.n + 1, sizeof *w->fx);
    if (query(s, "SELECT currency, date, rate FROM fx_rates ORDER BY currency, date", &st, err) < 0)
        return -1;
    int rc;
    while ((rc = store_step(st, err)) == 1) {
        const char *c = txt(st, 0);
        for (int i = 0; i < w->currencies.n; i++)
            if (c && strcmp(w->currencies.s[i], c) == 0) series_add(&w->fx[i], day_of(txt(st, 1)), num(st, 2));
    }
    store_finalize(st);
    if (rc < 0) return -1;

    /* Every region- and partner-level signal becomes a feature. */
    if (query(s, "SELECT DISTINCT entity_type, name FROM signals WHERE entity_type IN"
                 " ('region', 'partner') ORDER BY 1, 2", &st, err) < 0)
        return -1;
    while ((rc = store_step(st, err)) == 1 && w->sig_names.n < MAX_SIGNALS) {
        char key[160];
        snprintf(key, sizeof key, "signal_%s_%s", txt(st, 0), txt(st, 1));
        w->sig_kind[w->sig_names.n] = strcmp(txt(st, 0), "partner") == 0;
        intern(&w->sig_names, key);
    }
    store_finalize(st);
    if (rc < 0) return -1;
    size_t per = (size_t)(w->regions.n > (int)w->np ? w->regions.n : (int)w->np) + 1;
    w->sig = calloc((size_t)w->sig_names.n * per + 1, sizeof *w->sig);
    if (query(s, "SELECT entity_type, entity, name, date, value FROM signals"
                 " WHERE entity_type IN ('region', 'partner') ORDER BY entity_type, entity, name, date",
              &st, err) < 0)
        return -1;
    const char *last_ent = NULL;
    int ent = -1;
    char entbuf[128] = "";
    while ((rc = store_step(st, err)) == 1) {
        char key[160];
        const char *et = txt(st, 0), *e = txt(st, 1);
        snprintf(key, sizeof key, "signal_%s_%s", et, txt(st, 2));
        int k = -1;
        for (int i = 0; i < w->sig_names.n; i++)
            if (strcmp(w->sig_names.s[i], key) == 0) k = i;
        if (k < 0 || !e) continue;
        if (!last_ent || strcmp(entbuf, e) != 0) {
            snprintf(entbuf, sizeof entbuf, "%s", e);
            last_ent = entbuf;
            ent = -1;
            if (strcmp(et, "region") == 0) {
                for (int i = 0; i < w->regions.n; i++)
                    if (strcmp(w->regions.s[i], e) == 0) ent = i;
            } else {
                for (size_t i = 0; i < w->np; i++)
                    if (strcmp(w->p[i].ext, e) == 0) { ent = (int)i; break; }
            }
        }
        if (ent >= 0) series_add(&w->sig[(size_t)k * per + (size_t)ent], day_of(txt(st, 3)), num(st, 4));
    }
    store_finalize(st);
    return rc < 0 ? -1 : 0;
}

static int load_commits(store *s, feat_world *w, prm_error *err)
{
    store_stmt *st;
    if (query(s, "SELECT partner_id, period, amount, submitted_at FROM commits"
                 " WHERE category = 'commit' ORDER BY partner_id, period, submitted_at", &st, err) < 0)
        return -1;
    int rc;
    size_t *cap = calloc(w->np + 1, sizeof *cap);
    while ((rc = store_step(st, err)) == 1) {
        int pi = partner_index(w, integer(st, 0));
        int fy, q;
        const char *per = txt(st, 1);
        if (pi < 0 || !per || sscanf(per, "%d-Q%d", &fy, &q) != 2) continue;
        fpartner *p = &w->p[pi];
        if (p->nc == cap[pi]) {
            cap[pi] = cap[pi] ? cap[pi] * 2 : 16;
            p->cq = realloc(p->cq, sizeof *p->cq * cap[pi]);
            p->camt = realloc(p->camt, sizeof *p->camt * cap[pi]);
            p->ct = realloc(p->ct, sizeof *p->ct * cap[pi]);
        }
        p->cq[p->nc] = fy * 4 + q - 1;
        p->camt[p->nc] = num(st, 2);
        p->ct[p->nc] = instant_of(txt(st, 3));
        p->nc++;
    }
    free(cap);
    store_finalize(st);
    return rc < 0 ? -1 : 0;
}

static void pstats_free(struct pstats *ps);

int feat_load(store *s, feat_world **out, prm_error *err)
{
    feat_world *w = calloc(1, sizeof *w);
    if (!w) return prm_error_set(err, "out of memory");
    /* Commit periods and evaluation quarters are fiscal quarters. */
    w->fiscal_start = 1;
    store_stmt *fs;
    if (store_prepare(s, "SELECT value FROM settings WHERE key = 'fiscal_start_month'", &fs, NULL) == 0) {
        if (store_step(fs, NULL) == 1) {
            store_value v = store_column(fs, 0);
            int m = v.kind == SV_TEXT ? atoi(v.s) : v.kind == SV_INT ? (int)v.i : 1;
            if (m >= 1 && m <= 12) w->fiscal_start = m;
        }
        store_finalize(fs);
    }
    if (load_partners(s, w, err) < 0 || load_deals(s, w, err) < 0 ||
        load_history(s, w, err) < 0 || load_series(s, w, err) < 0 ||
        load_commits(s, w, err) < 0) {
        feat_free(w);
        return prm_error_prefix(err, "loading features: ");
    }
    /* Each partner's deals by creation day, for trailing medians. */
    size_t *cnt = calloc(w->np + 1, sizeof *cnt);
    for (size_t i = 0; i < w->nd; i++)
        if (w->d[i].partner >= 0) cnt[w->d[i].partner]++;
    for (size_t i = 0; i < w->np; i++) w->p[i].deals = malloc(sizeof(size_t) * (cnt[i] + 1));
    for (size_t i = 0; i < w->nd; i++)
        if (w->d[i].partner >= 0) {
            fpartner *p = &w->p[w->d[i].partner];
            p->deals[p->nd++] = i;
        }
    for (size_t i = 0; i < w->np; i++)
        qsort_r(w->p[i].deals, w->p[i].nd, sizeof(size_t), cmp_created, w);
    free(cnt);
    *out = w;
    return 0;
}

void feat_free(feat_world *w)
{
    if (!w) return;
    for (size_t i = 0; i < w->nd; i++) free(w->d[i].ext);
    for (size_t i = 0; i < w->np; i++) {
        free(w->p[i].ext);
        free(w->p[i].deals);
        free(w->p[i].cq);
        free(w->p[i].camt);
        free(w->p[i].ct);
    }
    if (w->fx)
        for (int i = 0; i <= w->currencies.n; i++) { free(w->fx[i].day); free(w->fx[i].v); }
    if (w->sig) {
        size_t per = (size_t)(w->regions.n > (int)w->np ? w->regions.n : (int)w->np) + 1;
        for (size_t i = 0; i < (size_t)w->sig_names.n * per; i++) { free(w->sig[i].day); free(w->sig[i].v); }
    }
    free(w->fx);
    free(w->sig);
    free(w->d);
    free(w->h);
    free(w->p);
    free(w->prow);
    if (w->ps) {
        pstats_free(w->ps);
        free(w->ps);
    }
    strtab *tabs[] = { &w->tiers, &w->types, &w->regions, &w->products, &w->currencies,
                       &w->sources, &w->competitors, &w->sig_names };
    for (size_t i = 0; i < sizeof tabs / sizeof tabs[0]; i++) strtab_free(tabs[i]);
    free(w);
}

int64_t feat_last_observed(const feat_world *w) { return w->last_t; }
int feat_fiscal_start(const feat_world *w) { return w->fiscal_start; }
const double *feat_open_medians(const feat_world *w) { return w->ps_med; }
size_t feat_n_deals(const feat_world *w) { return w->nd; }
const char *feat_deal_external_id(const feat_world *w, size_t i) { return w->d[i].ext; }
const char *feat_deal_source(const feat_world *w, size_t i)
{
    return w->d[i].source >= 0 ? w->sources.s[w->d[i].source] : "";
}
int64_t feat_deal_rowid(const feat_world *w, size_t i) { return w->d[i].rowid; }

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* ---- state of a deal at an instant ------------------------------------ */

typedef struct dstate {
    const fhist *now;          /* latest observation at or before t */
    int64_t stage_since;
    int slips, slipped_days, regressions;
} dstate;

static int state_at(const feat_world *w, const fdeal *d, int64_t t, dstate *s)
{
    const fhist *h = w->h + d->h0;
    size_t lo = 0, hi = d->hn;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (h[mid].t <= t) lo = mid + 1; else hi = mid;
    }
    if (lo == 0) return 0;
    memset(s, 0, sizeof *s);
    s->now = &h[lo - 1];
    s->stage_since = h[0].t;
    for (size_t i = 1; i < lo; i++) {
        if (h[i].stage != h[i - 1].stage) {
            s->stage_since = h[i].t;
            if (h[i].stage >= 0 && h[i].stage < FEAT_STAGES && h[i - 1].stage >= 0 &&
                h[i].stage < h[i - 1].stage)
                s->regressions++;
        }
        if (h[i].close_day != INT32_MIN && h[i - 1].close_day != INT32_MIN &&
            h[i].close_day > h[i - 1].close_day) {
            s->slips++;
            s->slipped_days += h[i].close_day - h[i - 1].close_day;
        }
    }
    return 1;
}

static int is_open_at(const feat_world *w, const fdeal *d, int64_t t, dstate *s)
{
    if (d->created != INT32_MIN && (int64_t)d->created * DAY > t) return 0;
    if (!state_at(w, d, t, s)) return 0;
    return s->now->status == STATUS_OPEN && s->now->stage >= 0 && s->now->stage < FEAT_STAGES;
}

void feat_stage_medians(const feat_world *w, int64_t at, double med[FEAT_STAGES])
{
    /* Reservoir of spell lengths per stage; exact median over all spells
     * would need them all, and the median is stable well before that. */
    enum { CAP = 20000 };
    double *buf[FEAT_STAGES];
    size_t n[FEAT_STAGES] = { 0 }, seen[FEAT_STAGES] = { 0 };
    uint64_t x = 0x9e3779b97f4a7c15ULL;
    for (int k = 0; k < FEAT_STAGES; k++) buf[k] = malloc(sizeof(double) * CAP);
    for (size_t i = 0; i < w->nd; i++) {
        const fhist *h = w->h + w->d[i].h0;
        size_t start = 0;
        for (size_t j = 1; j < w->d[i].hn && h[j].t <= at; j++) {
            if (h[j].stage == h[start].stage) continue;
            int k = h[start].stage;
            if (k >= 0 && k < FEAT_STAGES) {
                double len = (double)(h[j].t - h[start].t) / DAY;
                seen[k]++;
                if (n[k] < CAP) {
                    buf[k][n[k]++] = len;
                } else {
                    x ^= x << 13; x ^= x >> 7; x ^= x << 17;
                    size_t r = x % seen[k];
                    if (r < CAP) buf[k][r] = len;
                }
            }
            start = j;
        }
    }
    for (int k = 0; k < FEAT_STAGES; k++) {
        if (n[k] == 0) {
            med[k] = 14;                        /* no history: two weeks */
        } else {
            size_t m = n[k];                    /* bounded by CAP */
            qsort(buf[k], m, sizeof(double), cmp_double);
            med[k] = m % 2 ? buf[k][m / 2] : 0.5 * (buf[k][m / 2 - 1] + buf[k][m / 2]);
            if (med[k] < 1) med[k] = 1;
        }
        free(buf[k]);
    }
}


/* ---- partner statistics at an instant --------------------------------- */

struct pstats {
    double *win_rate, *closed, *commit_acc, *median_amount, *prob_bias;
    double *tier_median;       /* by tier */
};
typedef struct pstats pstats;

static double median_of(double *v, size_t n)
{
    if (!n) return NAN;
    qsort(v, n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static double deal_amount_usd(const feat_world *w, const fdeal *d, double amount, int32_t day)
{
    if (!(amount == amount)) return NAN;
    if (d->currency < 0 || strcmp(w->currencies.s[d->currency], "USD") == 0) return amount;
    return amount * series_at(&w->fx[d->currency], day);
}

/* Win rates shrunk toward the tier's rate with an empirical-Bayes
 * beta-binomial prior (method of moments per tier), over outcomes observed
 * in the trailing WIN_RATE_WINDOW_DAYS; commit accuracy over the last four
 * quarters that ended before t; trailing median deal size. */
static void partner_stats(const feat_world *w, int64_t t, pstats *ps)
{
    size_t np = w->np;
    int nt = w->tiers.n + 1;
    double *wins = calloc(np, sizeof *wins), *n = calloc(np, sizeof *n);
    double *pb = calloc(np, sizeof *pb), *pbn = calloc(np, sizeof *pbn);
    double *booked = calloc(np * 4, sizeof *booked);
    int64_t lo = t - WIN_RATE_WINDOW_DAYS * DAY;
    int qnow = quarter_key(w, t / DAY);
    for (size_t i = 0; i < w->nd; i++) {
        const fdeal *d = &w->d[i];
        if (d->partner < 0 || d->outcome_t > t) continue;
        if (d->outcome_t > lo) {
            n[d->partner] += 1;
            wins[d->partner] += d->outcome == STATUS_WON;
            if (d->last_open_prob == d->last_open_prob) {
                pb[d->partner] += d->last_open_prob - (d->outcome == STATUS_WON);
                pbn[d->partner] += 1;
            }
        }
        if (d->outcome == STATUS_WON) {
            int k = qnow - quarter_key(w, d->outcome_t / DAY);
            if (k >= 1 && k <= 4) {
                const fhist *h = w->h + d->h0 + d->hn - 1;
                booked[(size_t)d->partner * 4 + (size_t)(k - 1)] += h->amount == h->amount ? h->amount : 0;
            }
        }
    }
    /* Tier priors. */
    double *tw = calloc((size_t)nt, sizeof *tw), *tn = calloc((size_t)nt, sizeof *tn),
           *m = calloc((size_t)nt, sizeof *m);
    for (size_t i = 0; i < np; i++) {
        int k = w->p[i].tier + 1;
        tw[k] += wins[i];
        tn[k] += n[i];
    }
    for (int k = 0; k < nt; k++) {
        double p = tn[k] > 0 ? tw[k] / tn[k] : 0.3;
        double sv = 0, sb = 0, cnt = 0;
        for (size_t i = 0; i < np; i++) {
            if (w->p[i].tier + 1 != k || n[i] < 5) continue;
            double r = wins[i] / n[i];
            sv += (r - p) * (r - p);
            sb += p * (1 - p) / n[i];
            cnt++;
        }
        double between = cnt > 1 ? (sv - sb) / cnt : 0;
        m[k] = between > 1e-6 ? p * (1 - p) / between - 1 : 200;
        if (m[k] < 2) m[k] = 2;
        if (m[k] > 200) m[k] = 200;
        tw[k] = p;                                   /* reuse: tier rate */
    }
    double *buf = malloc(sizeof(double) * (PARTNER_MEDIAN_WINDOW + 1));
    double **tierbuf = calloc((size_t)nt, sizeof *tierbuf);
    size_t *tiern = calloc((size_t)nt, sizeof *tiern);
    for (int k = 0; k < nt; k++) tierbuf[k] = malloc(sizeof(double) * (np * 20 + 1));
    int32_t today = (int32_t)(t / DAY);
    for (size_t i = 0; i < np; i++) {
        const fpartner *p = &w->p[i];
        int k = p->tier + 1;
        ps->win_rate[i] = (wins[i] + m[k] * tw[k]) / (n[i] + m[k]);
        ps->closed[i] = n[i];
        /* How far the partner's submitted probabilities ran above (or
         * below) what happened, shrunk toward zero like the win rate. */
        ps->prob_bias[i] = pbn[i] > 0 ? pb[i] / (pbn[i] + m[k]) : NAN;
        /* commit accuracy: log((booked + 1) / (commit + 1)) averaged */
        double acc = 0;
        int na = 0;
        for (int back = 1; back <= 4; back++) {
            int q = qnow - back;
            int64_t qend = fiscal_quarter_start((q + 1) / 4, (q + 1) % 4 + 1, w->fiscal_start) * DAY;
            double commit = NAN;
            for (size_t c = 0; c < p->nc; c++)
                if (p->cq[c] == q && p->ct[c] <= qend && p->ct[c] <= t) commit = p->camt[c];
            if (commit == commit) {
                acc += log((booked[i * 4 + (size_t)(back - 1)] + 1) / (commit + 1));
                na++;
            }
        }
        ps->commit_acc[i] = na ? acc / na : NAN;
        /* trailing median amount over the last deals created by today */
        size_t hi = 0, lo2 = 0, len = p->nd;
        while (lo2 < len) {
            size_t mid = (lo2 + len) / 2;
            if (w->d[p->deals[mid]].created <= today) lo2 = mid + 1; else len = mid;
        }
        hi = lo2;
        size_t nb = 0;
        for (size_t j = hi; j > 0 && nb < PARTNER_MEDIAN_WINDOW; j--) {
            const fdeal *d = &w->d[p->deals[j - 1]];
            if (!d->hn) continue;
            double a = deal_amount_usd(w, d, w->h[d->h0].amount, d->created);
            if (a == a) {
                buf[nb++] = a;
                if (tiern[k] < np * 20) tierbuf[k][tiern[k]++] = a;
            }
        }
        ps->median_amount[i] = median_of(buf, nb);
    }
    for (int k = 0; k < nt; k++) {
        ps->tier_median[k] = median_of(tierbuf[k], tiern[k]);
        free(tierbuf[k]);
    }
    free(tierbuf);
    free(tiern);
    free(buf);
    free(wins);
    free(n);
    free(pb);
    free(pbn);
    free(booked);
    free(tw);
    free(tn);
    free(m);
}

static void pstats_alloc(const feat_world *w, pstats *ps)
{
    ps->win_rate = calloc(w->np + 1, sizeof(double));
    ps->closed = calloc(w->np + 1, sizeof(double));
    ps->commit_acc = calloc(w->np + 1, sizeof(double));
    ps->median_amount = calloc(w->np + 1, sizeof(double));
    ps->prob_bias = calloc(w->np + 1, sizeof(double));
    ps->tier_median = calloc((size_t)w->tiers.n + 2, sizeof(double));
}

static void pstats_free(pstats *ps)
{
    free(ps->win_rate);
    free(ps->closed);
    free(ps->commit_acc);
    free(ps->median_amount);
    free(ps->prob_bias);
    free(ps->tier_median);
}

/* ---- feature sets ----------------------------------------------------- */

enum {
    F_LOG_AMOUNT, F_AMOUNT_VS_PARTNER, F_AGE, F_DAYS_IN_STAGE, F_STAGE_VELOCITY, F_REGRESSIONS,
    F_SLIPS, F_DAYS_SLIPPED, F_DAYS_TO_CLOSE, F_COMPLETENESS, F_PARTNER_PROB, F_COMPETITOR,
    F_PARTNER_WIN_RATE, F_PARTNER_CLOSED, F_COMMIT_ACC, F_PROB_BIAS, N_NUM
};
static const char *const num_names[N_NUM] = {
    "log_amount_usd", "amount_vs_partner_median", "deal_age_days", "days_in_stage",
    "stage_velocity", "stage_regressions", "close_date_slips", "days_slipped",
    "days_to_expected_close", "completeness", "partner_probability", "competitor_mentioned",
    "partner_win_rate", "partner_closed_deals", "partner_commit_accuracy",
    "partner_probability_bias",
};
enum { C_TIER, C_TYPE, C_REGION, C_PRODUCT, C_STAGE, C_BUDGET, N_CAT };
static const char *const cat_names[N_CAT] = { "tier", "partner_type", "region",
                                              "product_family", "stage", "budget" };
static const char *const budget_vocab[] = { "no", "yes" };

static int set_init(const feat_world *w, feat_set *fs)
{
    memset(fs, 0, sizeof *fs);
    size_t nc = N_NUM + (size_t)w->sig_names.n + N_CAT;
    fs->cols = calloc(nc, sizeof *fs->cols);
    fs->num = calloc(N_NUM + MAX_SIGNALS, sizeof *fs->num);
    fs->cat = calloc(N_CAT, sizeof *fs->cat);
    if (!fs->cols || !fs->num || !fs->cat) return -1;
    fs->data.cols = fs->cols;
    fs->data.n_cols = nc;
    return 0;
}

static int set_grow(const feat_world *w, feat_set *fs)
{
    if (fs->n < fs->cap) return 0;
    size_t cap = fs->cap ? fs->cap * 2 : 1024;
    int nn = N_NUM + w->sig_names.n;
    for (int i = 0; i < nn; i++) {
        double *p = realloc(fs->num[i], sizeof(double) * cap);
        if (!p) return -1;
        fs->num[i] = p;
    }
    for (int i = 0; i < N_CAT; i++) {
        int32_t *p = realloc(fs->cat[i], sizeof(int32_t) * cap);
        if (!p) return -1;
        fs->cat[i] = p;
    }
    double *l = realloc(fs->label, sizeof(double) * cap);
    size_t *d = realloc(fs->deal, sizeof(size_t) * cap);
    int64_t *a = realloc(fs->at, sizeof(int64_t) * cap);
    if (l) fs->label = l;
    if (d) fs->deal = d;
    if (a) fs->at = a;
    if (!l || !d || !a) return -1;
    fs->cap = cap;
    return 0;
}

static void set_finish(const feat_world *w, feat_set *fs)
{
    int nn = N_NUM + w->sig_names.n;
    size_t c = 0;
    for (int i = 0; i < nn; i++) {
        fs->cols[c].name = i < N_NUM ? num_names[i] : w->sig_names.s[i - N_NUM];
        fs->cols[c].type = MODEL_NUMERIC;
        fs->cols[c].num = fs->num[i];
        c++;
    }
    const strtab *vt[N_CAT] = { &w->tiers, &w->types, &w->regions, &w->products, NULL, NULL };
    for (int i = 0; i < N_CAT; i++) {
        fs->cols[c].name = cat_names[i];
        fs->cols[c].type = MODEL_CATEGORICAL;
        fs->cols[c].cat = fs->cat[i];
        if (i == C_STAGE) { fs->cols[c].vocab = stage_names; fs->cols[c].n_vocab = FEAT_STAGES; }
        else if (i == C_BUDGET) { fs->cols[c].vocab = budget_vocab; fs->cols[c].n_vocab = 2; }
        else { fs->cols[c].vocab = (const char *const *)vt[i]->s; fs->cols[c].n_vocab = (size_t)vt[i]->n; }
        c++;
    }
    fs->data.n_rows = fs->n;
}

static int add_row(const feat_world *w, feat_set *fs, size_t di, int64_t t, const dstate *s,
                   const pstats *ps, const double med[FEAT_STAGES], double label)
{
    if (set_grow(w, fs) < 0) return -1;
    const fdeal *d = &w->d[di];
    const fpartner *p = d->partner >= 0 ? &w->p[d->partner] : NULL;
    size_t r = fs->n++;
    int32_t today = (int32_t)(t / DAY);
    const fhist *h = s->now;
    double usd = deal_amount_usd(w, d, h->amount, today);
    double pm = p ? ps->median_amount[d->partner] : NAN;
    double in_stage = (double)(t - s->stage_since) / DAY;
    double **x = fs->num;
    x[F_LOG_AMOUNT][r] = usd == usd && usd > 0 ? log(usd) : NAN;
    x[F_AMOUNT_VS_PARTNER][r] = usd == usd && usd > 0 && pm == pm && pm > 0 ? log(usd / pm) : NAN;
    x[F_AGE][r] = d->created != INT32_MIN ? today - d->created : NAN;
    x[F_DAYS_IN_STAGE][r] = in_stage;
    x[F_STAGE_VELOCITY][r] = in_stage / med[h->stage];
    x[F_REGRESSIONS][r] = s->regressions;
    x[F_SLIPS][r] = s->slips;
    x[F_DAYS_SLIPPED][r] = s->slipped_days;
    x[F_DAYS_TO_CLOSE][r] = h->close_day != INT32_MIN ? h->close_day - today : NAN;
    x[F_COMPLETENESS][r] = d->completeness;
    x[F_PARTNER_PROB][r] = h->prob;
    x[F_COMPETITOR][r] = d->competitor >= 0;
    x[F_PARTNER_WIN_RATE][r] = p ? ps->win_rate[d->partner] : NAN;
    x[F_PARTNER_CLOSED][r] = p ? log1p(ps->closed[d->partner]) : NAN;
    x[F_COMMIT_ACC][r] = p ? ps->commit_acc[d->partner] : NAN;
    x[F_PROB_BIAS][r] = p ? ps->prob_bias[d->partner] : NAN;
    size_t per = (size_t)(w->regions.n > (int)w->np ? w->regions.n : (int)w->np) + 1;
    for (int k = 0; k < w->sig_names.n; k++) {
        int ent = !p ? -1 : w->sig_kind[k] ? d->partner : p->region;
        x[N_NUM + k][r] = ent >= 0 ? series_at(&w->sig[(size_t)k * per + (size_t)ent], today) : NAN;
    }
    fs->cat[C_TIER][r] = p ? p->tier : -1;
    fs->cat[C_TYPE][r] = p ? p->type : -1;
    fs->cat[C_REGION][r] = p ? p->region : -1;
    fs->cat[C_PRODUCT][r] = d->product;
    fs->cat[C_STAGE][r] = h->stage;
    fs->cat[C_BUDGET][r] = d->budget;
    fs->label[r] = label;
    fs->deal[r] = di;
    fs->at[r] = t;
    return 0;
}

int feat_snapshots(const feat_world *w, int64_t from, int64_t to, int step_days,
                   int64_t label_cutoff, feat_set *out, prm_error *err)
{
    if (step_days < 1) return prm_error_set(err, "snapshot step must be at least one day");
    if (set_init(w, out) < 0) return prm_error_set(err, "out of memory");
    pstats ps;
    pstats_alloc(w, &ps);
    double med[FEAT_STAGES];
    /* Stage medians from what was known at the label cutoff: part of the
     * training window, never the evaluation period after it. */
    feat_stage_medians(w, label_cutoff, med);
    int rc = 0;
    for (int64_t t = from; t < to && rc == 0; t += step_days * DAY) {
        partner_stats(w, t, &ps);
        for (size_t i = 0; i < w->nd; i++) {
            const fdeal *d = &w->d[i];
            if (d->outcome_t >= label_cutoff || d->outcome_t <= t) continue;
            dstate s;
            if (!is_open_at(w, d, t, &s)) continue;
            if (add_row(w, out, i, t, &s, &ps, med, d->outcome == STATUS_WON) < 0) {
                rc = prm_error_set(err, "out of memory building features");
                break;
            }
        }
    }
    pstats_free(&ps);
    set_finish(w, out);
    return rc;
}

int feat_open(feat_world *w, int64_t at, feat_set *out, prm_error *err)
{
    if (set_init(w, out) < 0) return prm_error_set(err, "out of memory");
    pstats ps;
    pstats_alloc(w, &ps);
    partner_stats(w, at, &ps);
    double *med = w->ps_med;
    feat_stage_medians(w, at, med);
    int rc = 0;
    for (size_t i = 0; i < w->nd; i++) {
        dstate s;
        if (!is_open_at(w, &w->d[i], at, &s)) continue;
        if (add_row(w, out, i, at, &s, &ps, med, NAN) < 0) {
            rc = prm_error_set(err, "out of memory building features");
            break;
        }
    }
    /* Kept for feat_view (rules see the partner's statistics too). */
    if (w->ps) {
        pstats_free(w->ps);
        free(w->ps);
    }
    w->ps = malloc(sizeof *w->ps);
    if (w->ps) {
        *w->ps = ps;
        w->ps_at = at;
    } else {
        pstats_free(&ps);
    }
    set_finish(w, out);
    return rc;
}

void feat_set_free(feat_set *fs)
{
    if (fs->num)
        for (int i = 0; i < N_NUM + MAX_SIGNALS; i++) free(fs->num[i]);
    if (fs->cat)
        for (int i = 0; i < N_CAT; i++) free(fs->cat[i]);
    free(fs->num);
    free(fs->cat);
    free(fs->cols);
    free(fs->label);
    free(fs->deal);
    free(fs->at);
    memset(fs, 0, sizeof *fs);
}

void feat_view(const feat_world *w, size_t di, int64_t at, feat_deal_view *v)
{
    static const char provided[] = "(provided)";
    const fdeal *d = &w->d[di];
    const fpartner *p = d->partner >= 0 ? &w->p[d->partner] : NULL;
    memset(v, 0, sizeof *v);
    v->external_id = d->ext;
    v->partner_id = p ? p->ext : NULL;
    v->tier = p && p->tier >= 0 ? w->tiers.s[p->tier] : NULL;
    v->partner_type = p && p->type >= 0 ? w->types.s[p->type] : NULL;
    v->region = p && p->region >= 0 ? w->regions.s[p->region] : NULL;
    /* Names and emails are not kept in memory (PII, and size); rules see
     * whether they were provided. */
    v->account = d->present & 1 ? provided : NULL;
    v->contact_name = d->present & 2 ? provided : NULL;
    v->contact_email = d->present & 4 ? provided : NULL;
    v->product_family = d->product >= 0 ? w->products.s[d->product] : NULL;
    v->currency = d->currency >= 0 ? w->currencies.s[d->currency] : NULL;
    v->competitor = d->competitor >= 0 ? w->competitors.s[d->competitor] : NULL;
    v->budget_confirmed = d->budget;
    v->completeness = d->completeness;
    v->amount = v->amount_usd = v->partner_probability = NAN;
    v->partner_win_rate = v->partner_median_amount = v->tier_median_amount = NAN;
    v->stage_index = -1;
    if (d->created != INT32_MIN) date_iso((int64_t)d->created * DAY, v->created_at);
    dstate s;
    if (!state_at(w, d, at, &s)) return;
    const fhist *h = s.now;
    int32_t today = (int32_t)(at / DAY);
    v->stage = h->stage >= 0 ? stage_names[h->stage] : NULL;
    v->stage_index = h->stage < FEAT_STAGES ? h->stage : -1;
    v->status = h->status == STATUS_OPEN ? "open" : h->status == STATUS_WON ? "won" : "lost";
    v->amount = h->amount;
    v->amount_usd = deal_amount_usd(w, d, h->amount, today);
    v->partner_probability = h->prob;
    if (h->close_day != INT32_MIN) {
        date_iso((int64_t)h->close_day * DAY, v->expected_close);
        v->has_close = 1;
    }
    instant_iso(s.stage_since, v->stage_changed_at);
    instant_iso(h->t, v->updated_at);
    v->age_days = d->created != INT32_MIN ? today - d->created : 0;
    v->days_in_stage = (int)((at - s.stage_since) / DAY);
    v->close_date_slips = s.slips;
    v->days_slipped = s.slipped_days;
    v->stage_regressions = s.regressions;
    if (w->ps && w->ps_at == at && p) {
        v->partner_win_rate = w->ps->win_rate[d->partner];
        v->partner_median_amount = w->ps->median_amount[d->partner];
        v->tier_median_amount = w->ps->tier_median[p->tier + 1];
    }
}
