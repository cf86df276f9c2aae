/* forecast.c - the channel forecast over the world as of T (forecast.h).
 *
 * One pass over the deals as of T gathers: what closed inside the period,
 * the open pipeline, the slip model's training snapshots and the amount
 * multipliers, and the past periods' revenue from deals registered after the
 * same offset. Past periods at the same offset give the shared effect. The
 * numeric work is mc_run (mc.h) and ts_forecast (ts.h).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "domain.h"
#include "forecast.h"
#include "scoring.h"
#include "store.h"
#include "timeutil.h"
#include "ts.h"
#include "world_int.h"

static const char *const key_names[FC_NKEYS] = { "region", "tier", "partner", "product_family",
                                                  "type", "currency", "distributor" };

int forecast_key_parse(const char *name)
{
    for (int k = 0; k < FC_NKEYS; k++)
        if (strcmp(name, key_names[k]) == 0) return k;
    if (strcmp(name, "product") == 0) return FC_PRODUCT;
    return -1;
}

const char *forecast_key_name(int k) { return k >= 0 && k < FC_NKEYS ? key_names[k] : "?"; }

void forecast_opts_init(forecast_opts *o)
{
    memset(o, 0, sizeof *o);
    o->sims = 10000;
    o->seed = 1;
    o->history_quarters = 8;
    o->dedup = 1;
    o->bias_correct = 1;
    o->censor_open = 1;
}

int forecast_parse_by(const char *text, forecast_opts *o, prm_error *err)
{
    if (o->nlevels >= FC_MAX_LEVELS) return prm_error_set(err, "at most %d --by levels", FC_MAX_LEVELS);
    int l = o->nlevels, n = 0;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", text);
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        int k = forecast_key_parse(tok);
        if (k < 0)
            return prm_error_set(err, "unknown segment key '%s' (region, tier, partner, product_family,"
                                      " type, currency, distributor)", tok);
        for (int i = 0; i < n; i++)
            if (o->keys[l][i] == k) return prm_error_set(err, "segment key '%s' given twice", tok);
        o->keys[l][n++] = k;
    }
    if (!n) return prm_error_set(err, "--by needs at least one key");
    o->nkeys[l] = n;
    o->nlevels++;
    return 0;
}

int forecast_parse_period(const char *text, int *fy, int *q, prm_error *err)
{
    char tail;
    if (sscanf(text, "%d-Q%d%c", fy, q, &tail) != 2 || *q < 1 || *q > 4 || *fy < 1900 || *fy > 9999)
        return prm_error_set(err, "period '%s' is not a fiscal quarter like 2026-Q4", text);
    return 0;
}

/* ---- small tables ------------------------------------------------------ */

typedef struct strmap {        /* string -> index, open addressing */
    char **key;
    int *val;
    size_t cap, n;
} strmap;

static uint64_t fnv(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

/* The index of s, adding it as n when new; -1 out of memory. */
static int strmap_get(strmap *m, const char *s, int *added)
{
    if (added) *added = 0;
    if (m->n * 2 >= m->cap) {
        size_t nc = m->cap ? m->cap * 2 : 64;
        char **nk = calloc(nc, sizeof *nk);
        int *nv = calloc(nc, sizeof *nv);
        if (!nk || !nv) {
            free(nk);
            free(nv);
            return -1;
        }
        for (size_t i = 0; i < m->cap; i++)
            if (m->key[i]) {
                size_t j = fnv(m->key[i]) & (nc - 1);
                while (nk[j]) j = (j + 1) & (nc - 1);
                nk[j] = m->key[i];
                nv[j] = m->val[i];
            }
        free(m->key);
        free(m->val);
        m->key = nk;
        m->val = nv;
        m->cap = nc;
    }
    size_t j = fnv(s) & (m->cap - 1);
    while (m->key[j]) {
        if (strcmp(m->key[j], s) == 0) return m->val[j];
        j = (j + 1) & (m->cap - 1);
    }
    if (!(m->key[j] = strdup(s))) return -1;
    m->val[j] = (int)m->n++;
    if (added) *added = 1;
    return m->val[j];
}

static void strmap_free(strmap *m)
{
    for (size_t i = 0; i < m->cap; i++) free(m->key[i]);
    free(m->key);
    free(m->val);
}

static const char *nm(const strtab *t, int i) { return i >= 0 && i < t->n ? t->s[i] : "(none)"; }

/* A partner-level key's value as of t. */
static const char *partner_value(const world *w, int pi, int key, int64_t t)
{
    if (pi < 0) return "(none)";
    const wpartner *p = &w->p[pi];
    switch (key) {
    case FC_REGION: return nm(&w->regions, wp_region(w, p, t));
    case FC_TIER: return nm(&w->tiers, wp_tier(w, p, t));
    case FC_PARTNER: return p->ext;
    case FC_TYPE: return nm(&w->types, wp_type(w, p, t));
    case FC_DISTRIBUTOR: {
        int parent = wp_parent(w, p, t);
        if (parent >= 0) return w->p[parent].ext;
        const char *ty = nm(&w->types, wp_type(w, p, t));
        return strcmp(ty, "distributor") == 0 ? p->ext : "(direct)";
    }
    default: return NULL;
    }
}

static const char *deal_value(const world *w, const wdeal *d, int key, int64_t t)
{
    if (key == FC_PRODUCT) return nm(&w->products, wd_product(w, d, t));
    if (key == FC_CURRENCY) return nm(&w->currencies, wd_currency(w, d, t));
    return partner_value(w, d->partner, key, t);
}

static int deal_level_key(int k) { return k == FC_PRODUCT || k == FC_CURRENCY; }

/* "k=v,k=v" for the given keys; values from a deal (d) or a partner (pi). */
static void label_of(const world *w, const wdeal *d, int pi, const int *keys, int nk, int64_t t,
                     char *out, size_t cap)
{
    size_t u = 0;
    out[0] = 0;
    for (int i = 0; i < nk && u < cap; i++) {
        const char *v = d ? deal_value(w, d, keys[i], t) : partner_value(w, pi, keys[i], t);
        u += (size_t)snprintf(out + u, cap - u, "%s%s=%s", i ? "," : "", key_names[keys[i]], v ? v : "(none)");
    }
}

/* ---- facts as of T ------------------------------------------------------ */

/* The day deal d was won, as known at t (INT32_MIN: not won by t); *amount
 * gets its amount then (the deal's currency). */
static int32_t won_day(const world *w, const wdeal *d, int64_t t, double *amount)
{
    const whist *h = w->h + d->h0;
    size_t lo = 0, hi = d->hn;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (h[mid].t <= t) lo = mid + 1; else hi = mid;
    }
    if (lo == 0 || h[lo - 1].status != STATUS_WON) return INT32_MIN;
    size_t f = lo - 1;
    while (f > 0 && h[f - 1].status == STATUS_WON) f--;
    int32_t day = (int32_t)(h[f].t / DAY);
    if (d->closed_day != INT32_MIN && d->closed_day <= day) day = d->closed_day;
    *amount = h[lo - 1].amount;
    return day;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The close-timing recalibration's group: stage x amount tercile. */
static int32_t close_group(int stage, double amount, double cut1, double cut2)
{
    return stage * 3 + (amount < cut1 ? 0 : amount < cut2 ? 1 : 2);
}


static int age_bucket(int days) { return days < 30 ? 0 : days < 90 ? 1 : days < 180 ? 2 : 3; }

typedef struct dvec {
    double *v;
    size_t n, cap;
} dvec;

static int dvec_push(dvec *a, double x)
{
    if (a->n == a->cap) {
        size_t nc = a->cap ? a->cap * 2 : 256;
        double *nv = realloc(a->v, sizeof *nv * nc);
        if (!nv) return -1;
        a->v = nv;
        a->cap = nc;
    }
    a->v[a->n++] = x;
    return 0;
}

/* The pipeline of one instant and window, in mc's arrays. */
typedef struct pipe {
    size_t n;
    size_t *deal;
    double *p_win, *p_close, *amount;
    int32_t *mult, *partner;
    uint64_t *key;
    size_t no_rate;
} pipe;

static double logit_moved(double p, double shift)
{
    return shift != 0 && p > 0 && p < 1 ? 1 / (1 + exp(-(log(p / (1 - p)) + shift))) : p;
}

/* Expected revenue of the pipeline, sum P(win) P(close) amount E[mult],
 * with P(win) and P(close) each moved by a logit offset (0: unmoved).
 * Deals at P = 0 or 1 are not moved (as the close offsets). */
static double pipe_expected(const pipe *P, const double *m1, double win_shift, double close_shift)
{
    double mu = 0;
    for (size_t k = 0; k < P->n; k++)
        mu += logit_moved(P->p_win[k], win_shift) * logit_moved(P->p_close[k], close_shift) *
              P->amount[k] * (P->mult[k] >= 0 ? m1[P->mult[k]] : 1);
    return mu;
}

/* Carries the logit offset b on P(win) into the simulation without moving
 * P(win): the logit offset c on every deal's P(close | win) whose expected
 * revenue equals that of b (bisection on [-FC_CLOSE_SHIFT_MAX,
 * FC_CLOSE_SHIFT_MAX]; expected revenue rises with c), applied to
 * P->p_close; what that bound or a certain timing (every P(close) 0 or 1)
 * leaves, as one factor on the amounts (*amount_scale, else 1). Returns c. */
static double close_shift_matching(pipe *P, const double *m1, double b, double *amount_scale)
{
    *amount_scale = 1;
    if (b == 0 || P->n == 0) return 0;
    size_t movable = 0;
    for (size_t k = 0; k < P->n; k++) movable += P->p_close[k] > 0 && P->p_close[k] < 1;
    double target = pipe_expected(P, m1, b, 0), c = 0;
    if (movable) {
        double lo = -FC_CLOSE_SHIFT_MAX, hi = FC_CLOSE_SHIFT_MAX;
        for (int it = 0; it < 50; it++) {
            double mid = 0.5 * (lo + hi);
            if (pipe_expected(P, m1, 0, mid) < target) lo = mid;
            else hi = mid;
        }
        c = 0.5 * (lo + hi);
        for (size_t k = 0; k < P->n; k++) P->p_close[k] = logit_moved(P->p_close[k], c);
    }
    double got = pipe_expected(P, m1, 0, 0);
    if (got > 0 && fabs(got - target) > 1e-6 * target) {
        *amount_scale = target / got;
        for (size_t k = 0; k < P->n; k++) P->amount[k] *= *amount_scale;
    }
    return c;
}

static void pipe_free(pipe *p)
{
    free(p->deal);
    free(p->p_win);
    free(p->p_close);
    free(p->amount);
    free(p->mult);
    free(p->partner);
    free(p->key);
}

static double timing_p(const mc_timing *tm, const world *w, const wdeal *d, const wstate *s, int64_t t,
                       int32_t start, int32_t end)
{
    int32_t A = (int32_t)(t / DAY);
    if (end <= A + 1) return 0;
    int32_t E = s->now->close_day == INT32_MIN ? A + 1 : s->now->close_day;
    mc_timing_row q = { s->now->stage, age_bucket(d->created != INT32_MIN ? A - d->created : 0),
                        s->slips > 3 ? 3 : s->slips, -1, d->partner, 0, 0, 0, 1 };
    if (d->partner >= 0) q.tier = wp_tier(w, &w->p[d->partner], t);
    double p = mc_timing_p_window(tm, &q, start - E, end - E, A + 1 - E);
    return p == p ? fmin(1, fmax(0, p)) : 0;
}

static uint64_t deal_key(const world *w, size_t i)
{
    return (uint64_t)w->d[i].rowid * 0x9E3779B97F4A7C15ULL ^ fnv(w->d[i].ext);
}

static int build_pipe(const world *w, const mc_timing *tm, int64_t t, int32_t start, int32_t end,
                      const double *pw, const double stage_rate[STAGE_OPEN_COUNT], const uint8_t *drop,
                      pipe *out, prm_error *err)
{
    memset(out, 0, sizeof *out);
    size_t cap = 1024;
    int32_t A = (int32_t)(t / DAY);
    for (size_t i = 0; i < w->nd; i++) {
        const wdeal *d = &w->d[i];
        wstate s;
        if (drop && drop[i]) continue;
        if (!world_open_at(w, d, t, &s)) continue;
        double amt = world_amount_base(w, d, s.now->amount, A);
        if (!(amt == amt) || amt < 0) {
            out->no_rate += !(amt == amt);
            continue;
        }
        if (out->n == 0 || out->n == cap) {
            size_t nc = out->n ? cap * 2 : cap;
#define GROW(f) do { void *np_ = realloc(out->f, sizeof *out->f * nc); if (!np_) goto oom; out->f = np_; } while (0)
            GROW(deal); GROW(p_win); GROW(p_close); GROW(amount); GROW(mult); GROW(partner); GROW(key);
#undef GROW
            cap = nc;
        }
        size_t k = out->n++;
        double p = pw ? pw[i] : NAN;
        if (!(p == p)) p = stage_rate[s.now->stage];
        out->deal[k] = i;
        out->p_win[k] = p;
        out->p_close[k] = timing_p(tm, w, d, &s, t, start, end);
        out->amount[k] = amt;
        out->mult[k] = s.now->stage;
        out->partner[k] = d->partner;
        out->key[k] = deal_key(w, i);
    }
    return 0;
oom:
    pipe_free(out);
    return prm_error_set(err, "out of memory building the pipeline");
}

static int quarter_of_key(int key, int *fy, int *q)
{
    *fy = key / 4;
    *q = key % 4 + 1;
    return 0;
}

static int32_t key_start(int key, int sm)
{
    int fy, q;
    quarter_of_key(key, &fy, &q);
    return (int32_t)fiscal_quarter_start(fy, q, sm);
}

/* A partner's latest commit for the quarter key submitted by t, in the
 * base currency at day A (NaN: none). */
static double partner_commit(const world *w, int pi, int qkey, int64_t t, int32_t A)
{
    const wpartner *p = &w->p[pi];
    double amt = NAN;
    int64_t best = INT64_MIN;
    for (size_t i = 0; i < p->nc; i++)
        if (p->cq[i] == qkey && p->ct[i] <= t && p->ct[i] >= best) {
            best = p->ct[i];
            amt = p->camt[i];
        }
    if (!(amt == amt)) return NAN;
    int c = p->an ? world_attr_i(w, p->a0, p->an, A_PCURRENCY, t, p->currency) : p->currency;
    double fx = c >= 0 ? world_fx(w, w->currencies.s[c], A) : 1;
    return fx == fx ? amt * fx : NAN;
}

/* Its latest quota revision for the quarter set by t (NaN: none), in the
 * base currency at the rate of the day it was set (the world keeps the
 * amount in the partner's currency). */
static double partner_quota(const world *w, int pi, int qkey, int64_t t)
{
    const wpartner *p = &w->p[pi];
    double amt = NAN;
    int64_t best = INT64_MIN;
    for (size_t i = 0; i < p->nq; i++)
        if (p->qq[i] == qkey && p->qt[i] <= t && p->qt[i] >= best) {
            best = p->qt[i];
            amt = p->qamt[i];
        }
    if (!(amt > 0)) return NAN;
    int c = p->an ? world_attr_i(w, p->a0, p->an, A_PCURRENCY, best, p->currency) : p->currency;
    double fx = c >= 0 ? world_fx(w, w->currencies.s[c], best / DAY) : 1;
    if (!(fx == fx)) fx = c >= 0 ? world_fx(w, w->currencies.s[c], t / DAY) : 1;
    return fx == fx ? amt * fx : NAN;
}

/* The at-risk signals of a partner as of t. */
static void risk_signals(const world *w, fc_partner *fp, int64_t t, const uint8_t *drop, int32_t start,
                         int32_t end)
{
    const wpartner *p = &w->p[fp->partner];
    int32_t A = (int32_t)(t / DAY);
    double won[2] = { 0, 0 }, res[2] = { 0, 0 }, regs[2] = { 0, 0 }, open_in = 0, open_amt = 0, slip_amt = 0;
    for (size_t k = 0; k < p->nd; k++) {
        size_t i = p->deals[k];
        const wdeal *d = &w->d[i];
        if (drop && drop[i]) continue;
        if (d->created != INT32_MIN && d->created <= A) {
            int age = A - d->created;
            if (age < 90) regs[0]++;
            else if (age < 360) regs[1]++;
        }
        wstate s;
        if (!world_state_at(w, d, t, &s)) continue;
        if (s.now->status == STATUS_OPEN) {
            double a = world_amount_base(w, d, s.now->amount, A);
            if (!(a == a)) continue;
            open_amt += a;
            if (s.slips >= 2) slip_amt += a;
            if (s.now->close_day != INT32_MIN && s.now->close_day < end && s.now->close_day >= start - 30)
                open_in += a;
        } else {
            int age = A - (int32_t)(s.now->t / DAY);
            int b = age < 180 ? 0 : age < 365 ? 1 : -1;
            if (b < 0) continue;
            res[b]++;
            won[b] += s.now->status == STATUS_WON;
        }
    }
    fp->win_rate_recent = res[0] >= 5 ? won[0] / res[0] : NAN;
    fp->win_rate_before = res[1] >= 5 ? won[1] / res[1] : NAN;
    fp->regs_recent = regs[0];
    fp->regs_before = regs[1] / 3;
    fp->slipping_share = open_amt > 0 ? slip_amt / open_amt : 0;
    double gap = fp->quota - fp->closed;
    fp->coverage = gap > 0 ? open_in / gap : INFINITY;
    fp->at_risk = fp->quota == fp->quota && (fp->p_attain < 0.5);
    size_t u = 0;
    fp->why[0] = 0;
#define WHY(...) u += (size_t)snprintf(fp->why + u, u < sizeof fp->why ? sizeof fp->why - u : 0, __VA_ARGS__)
    if (fp->at_risk) {
        if (fp->coverage < 2) WHY("%slow pipeline coverage %.1fx", u ? "; " : "", fp->coverage);
        if (fp->win_rate_recent == fp->win_rate_recent && fp->win_rate_before == fp->win_rate_before &&
            fp->win_rate_recent < fp->win_rate_before - 0.08)
            WHY("%sfalling win rate %.0f%% -> %.0f%%", u ? "; " : "", 100 * fp->win_rate_before,
                100 * fp->win_rate_recent);
        if (fp->regs_before >= 2 && fp->regs_recent < 0.6 * fp->regs_before)
            WHY("%sregistrations drying up (%.0f in 90 days, %.1f before)", u ? "; " : "", fp->regs_recent,
                fp->regs_before);
        if (fp->slipping_share > 0.3)
            WHY("%sslipping deals (%.0f%% of open amount slipped twice or more)", u ? "; " : "",
                100 * fp->slipping_share);
        if (!u) WHY("expected attainment %.0f%%", 100 * fp->expected_attainment);
    }
#undef WHY
}

static int cmp_share_deal(const void *a, const void *b)
{
    const fc_deal *x = a, *y = b;
    return (x->share < y->share) - (x->share > y->share);
}

static int cmp_share_partner(const void *a, const void *b)
{
    const fc_partner *x = a, *y = b;
    return (x->share < y->share) - (x->share > y->share);
}

/* ---- the run ------------------------------------------------------------- */

typedef struct leafset {
    strmap map;
    int nk;
    int keys[FC_NKEYS];
    /* per leaf: the values of each key (the deal or partner owns the text) */
    const char *(*val)[FC_NKEYS];
    int *region;               /* region index of the leaf (-1: none), for shift groups */
    size_t cap;
} leafset;

static int leaf_of(leafset *L, const world *w, const wdeal *d, int64_t t)
{
    char buf[512];
    label_of(w, d, -1, L->keys, L->nk, t, buf, sizeof buf);
    int added;
    int k = strmap_get(&L->map, buf, &added);
    if (k < 0) return -1;
    if (added) {
        if ((size_t)k >= L->cap) {
            size_t nc = L->cap ? L->cap * 2 : 64;
            void *nv = realloc(L->val, sizeof *L->val * nc);
            if (!nv) return -1;
            L->val = nv;
            int *nr = realloc(L->region, sizeof *nr * nc);
            if (!nr) return -1;
            L->region = nr;
            L->cap = nc;
        }
        for (int i = 0; i < L->nk; i++) L->val[k][i] = deal_value(w, d, L->keys[i], t);
        L->region[k] = d->partner >= 0 ? wp_region(w, &w->p[d->partner], t) : -1;
    }
    return k;
}

typedef struct unreg_hist {   /* per leaf, per past quarter */
    double *y;                /* nleaf_cap * K */
    size_t cap;
} unreg_hist;

int forecast_run(store *s, world *w_in, const forecast_opts *o, forecast_result *r, prm_error *err)
{
    memset(r, 0, sizeof *r);
    world *w = w_in;
    if (!w && world_load(s, &w, err) < 0) return -1;
    int rc = -1;
    int64_t T = o->as_of ? o->as_of : clock_now();
    int32_t A = (int32_t)(T / DAY - (T % DAY < 0));
    int sm = w->fiscal_start;
    int fy = o->fy, q = o->q;
    if (!fy) fiscal_quarter(A, sm, &fy, &q);
    int pkey = fy * 4 + q - 1;
    int32_t start = (int32_t)fiscal_quarter_start(fy, q, sm), end = key_start(pkey + 1, sm);
    int32_t off = A - start;   /* the as-of day's offset into the period (negative before it) */
    snprintf(r->period, sizeof r->period, "%d-Q%d", fy, q);
    instant_iso(T, r->as_of);
    snprintf(r->base, sizeof r->base, "%s", w->base);
    r->fy = fy;
    r->q = q;
    r->start_day = start;
    r->end_day = end;
    r->n_sims = o->sims > 0 ? o->sims : 10000;
    r->seed = o->seed;
    int K = o->history_quarters > 0 ? o->history_quarters : 8;
    size_t nd = w->nd, np = w->np;

    /* resources */
    leafset L;
    memset(&L, 0, sizeof L);
    int *deal_leaf = NULL;
    double *pw = NULL, *pwk = NULL, *partner_closed = NULL, *quota = NULL, *commit = NULL;
    uint8_t *drop = NULL;
    dvec mults[STAGE_OPEN_COUNT];
    memset(mults, 0, sizeof mults);
    mc_timing_row *trow = NULL;
    size_t *trow_deal = NULL;  /* the deal of each timing row */
    size_t ntrow = 0, tcap = 0;
    mc_timing *tm = NULL;
    unreg_hist uh = { NULL, 0 };
    double *seg_closed = NULL;
    mc_segment *segs = NULL;
    pipe P;
    memset(&P, 0, sizeof P);
    mc_result mr;
    memset(&mr, 0, sizeof mr);
    int have_mr = 0;
    mc_period_obs *obs = NULL;
    size_t nobs = 0;
    mc_effect eff;
    memset(&eff, 0, sizeof eff);
    int have_eff = 0;
    pipe pastq[64];            /* the past periods' pipelines at the same offset */
    int pastj[64], npast = 0;
    double *group_sd = NULL;
    double *scratch = NULL;
    mc_dist dists[STAGE_OPEN_COUNT];
    strmap *lvmap = NULL;

    /* Segment keys: the union of the --by levels, in canonical order. */
    int used[FC_NKEYS] = { 0 };
    for (int l = 0; l < o->nlevels; l++)
        for (int i = 0; i < o->nkeys[l]; i++) used[o->keys[l][i]] = 1;
    for (int k = 0; k < FC_NKEYS; k++)
        if (used[k]) L.keys[L.nk++] = k;
    int by_region = used[FC_REGION];

    deal_leaf = malloc(sizeof *deal_leaf * (nd + 1));
    pw = malloc(sizeof *pw * (nd + 1));
    pwk = malloc(sizeof *pwk * (nd + 1));
    drop = calloc(nd + 1, 1);
    partner_closed = calloc(np + 1, sizeof *partner_closed);
    if (!deal_leaf || !pw || !pwk || !drop || !partner_closed) goto oom;
    for (size_t i = 0; i < nd; i++) deal_leaf[i] = -1;

    /* De-duplication as of T: the distributor's copy is dropped. */
    if (o->dedup) {
        dedup_rule rule;
        if (dedup_rule_load(o->dedup_rule, &rule, err) < 0) goto out;
        dedup_pair *pairs = NULL;
        size_t npairs = 0;
        if (dedup_find(s, w, T, &rule, &pairs, &npairs, err) < 0) goto out;
        for (size_t i = 0; i < npairs; i++) drop[pairs[i].drop] = 1;
        r->n_duplicates = npairs;
        free(pairs);
    }

    /* P(win) as of T. */
    int64_t used_model = 0;
    int prc = o->model_id < 0 ? 1 : scoring_open_probs(s, w, o->model_id, T, pw, NULL, &used_model, err);
    if (prc < 0) goto out;
    int have_model = prc == 0;
    if (have_model) snprintf(r->model, sizeof r->model, "model %lld", (long long)used_model);
    else snprintf(r->model, sizeof r->model, "win hazard by stage and age (no model)");
    /* Without a model: P(win) from the win hazard as of T (feat.h), the
     * censored deals at risk; the stage win rates below stand in only
     * where it has nothing to say. */
    if (!have_model && feat_win_hazard(w, T, 14, pw, err) < 0) goto out;

    /* One pass over the deals: closed in the period, stage win rates,
     * slip-model rows, amount multipliers, the run-rate history. */
    double stage_won[STAGE_OPEN_COUNT] = { 0 }, stage_res[STAGE_OPEN_COUNT] = { 0 };
    int first_key = pkey - K;
    /* The program's first registration as known at T: a quarter whose
     * offset falls before it is no history (its "revenue registered after
     * the offset" is not zero but undefined; as zeros, the first quarters'
     * run-rate came out at half or less). */
    int32_t first = INT32_MAX;
    for (size_t i = 0; i < nd; i++) {
        wstate st;
        if (w->d[i].created != INT32_MIN && w->d[i].created < first && world_state_at(w, &w->d[i], T, &st))
            first = w->d[i].created;
    }
    /* past quarters usable: ended by A, their offset inside them and not
     * before the program. An as-of day before the period (off < 0: the
     * 13-week point is the day before the quarter) counts from the
     * quarter's start: a program that began with that quarter has its
     * whole revenue from deals registered inside it, the same kind of
     * revenue (left out, the first 13-week point had no run-rate at all:
     * 0 against 3.7M, seed 7). */
    int nq = 0;
    int qkeys[64];
    for (int k = pkey - 1; k >= pkey - 40 && nq < K && nq < 64; k--)
        if (key_start(k + 1, sm) <= A + 1 && key_start(k, sm) + off < key_start(k + 1, sm) &&
            key_start(k, sm) + (off > 0 ? off : 0) >= first)
            qkeys[nq++] = k;
    /* oldest first */
    for (int i = 0; i < nq / 2; i++) {
        int tmp = qkeys[i];
        qkeys[i] = qkeys[nq - 1 - i];
        qkeys[nq - 1 - i] = tmp;
    }
    (void)first_key;
    int32_t snap_from = A - 730;
    for (size_t i = 0; i < nd; i++) {
        const wdeal *d = &w->d[i];
        if (drop[i]) continue;
        wstate st;
        if (!world_state_at(w, d, T, &st)) continue;
        if (d->created != INT32_MIN && d->created > A) continue;
        double wamt = NAN;
        int32_t W = won_day(w, d, T, &wamt);
        int status = st.now->status;
        /* stage win rates over resolved deals */
        if (status != STATUS_OPEN) {
            unsigned seen = 0;
            for (size_t h = d->h0; h < d->h0 + d->hn && w->h[h].t <= T; h++)
                if (w->h[h].stage >= 0 && w->h[h].stage < STAGE_OPEN_COUNT) seen |= 1u << w->h[h].stage;
            for (int k = 0; k < STAGE_OPEN_COUNT; k++)
                if (seen & 1u << k) {
                    stage_res[k]++;
                    stage_won[k] += status == STATUS_WON;
                }
        }
        /* closed inside the period */
        if (W != INT32_MIN && W >= start && W < end && W <= A) {
            double b = world_amount_base(w, d, wamt, W);
            if (b == b) {
                int lf = leaf_of(&L, w, d, T);
                if (lf < 0) goto oom;
                deal_leaf[i] = lf;
                r->n_closed++;
                if (d->partner >= 0) partner_closed[d->partner] += b;
            }
        }
        /* slip-model snapshots and multipliers: deals won by T, and deals
         * still open at T as censored rows weighted by their P(win) as of T
         * (the slip is that of a win; most open deals will be lost, and at
         * weight 1 they pulled the hazards down: P(won inside the period)
         * 0.253 against 0.296 observed, ECE 0.043). Without them a young
         * program's slips are those of its fastest wins only, and the
         * backtest's first quarters over-forecast by 25-30%
         * (bench/RESULTS.md). */
        int open_now = status == STATUS_OPEN && o->censor_open;
        if ((W != INT32_MIN || open_now) && d->created != INT32_MIN) {
            int32_t x0 = d->created > snap_from ? d->created : snap_from + (d->created - snap_from) % 14 + 14;
            if (x0 < d->created) x0 = d->created;
            for (int32_t x = x0; x <= A; x += 14) {
                wstate sx;
                if (!world_open_at(w, d, (int64_t)x * DAY + DAY - 1, &sx)) {
                    if (W != INT32_MIN && x >= W) break;
                    continue;
                }
                if (W != INT32_MIN && sx.now->amount > 0 && wamt == wamt)
                    if (dvec_push(&mults[sx.now->stage], fmin(20, fmax(0.05, wamt / sx.now->amount))) < 0)
                        goto oom;
                if (sx.now->close_day == INT32_MIN) continue;
                if (ntrow == tcap) {
                    size_t nc = tcap ? tcap * 2 : 4096;
                    mc_timing_row *nr = realloc(trow, sizeof *nr * nc);
                    if (!nr) goto oom;
                    trow = nr;
                    size_t *nd_ = realloc(trow_deal, sizeof *nd_ * nc);
                    if (!nd_) goto oom;
                    trow_deal = nd_;
                    tcap = nc;
                }
                trow_deal[ntrow] = i;
                int32_t E = sx.now->close_day;
                mc_timing_row *tr = &trow[ntrow++];
                tr->stage = sx.now->stage;
                tr->age_bucket = age_bucket(x - d->created);
                tr->n_slips = sx.slips > 3 ? 3 : sx.slips;
                tr->tier = d->partner >= 0 ? wp_tier(w, &w->p[d->partner], (int64_t)x * DAY) : -1;
                tr->partner = d->partner;
                tr->entry = x - E;
                tr->censored = W == INT32_MIN;
                tr->slip = W != INT32_MIN ? W - E : A - E;
                tr->weight = 1;
            }
        }
    }
    for (int k = 0; k < STAGE_OPEN_COUNT; k++) stage_won[k] = (stage_won[k] + 1) / (stage_res[k] + 4);
    /* The censored rows' weights: P(win) as of T (the model's or the win
     * hazard's, else the stage win rate of the deal's stage at T). */
    for (size_t k = 0; k < ntrow; k++) {
        if (!trow[k].censored) continue;
        size_t i = trow_deal[k];
        double p = pw[i];
        if (!(p == p)) {
            wstate st;
            p = world_open_at(w, &w->d[i], T, &st) ? stage_won[st.now->stage] : 0;
        }
        trow[k].weight = fmax(1e-6, fmin(1, p));
    }
    r->n_timing_rows = ntrow;
    mc_timing_params tp;
    mc_timing_params_init(&tp);
    if (ntrow == 0) {
        char iso[21];
        instant_iso(T, iso);
        prm_error_set(err, "no deals with a stated close date known as of %s: no close timing"
                           " to learn, nothing to forecast from", iso);
        goto out;
    }
    if (mc_timing_fit(trow, ntrow, &tp, &tm, err) < 0) goto out;

    /* The multiplier distributions per stage (a deterministic thinning of
     * big samples keeps the alias tables small). */
    double m1[STAGE_OPEN_COUNT], m2[STAGE_OPEN_COUNT];
    for (int k = 0; k < STAGE_OPEN_COUNT; k++) {
        dvec *v = &mults[k];
        if (v->n > 5000) {
            size_t step = v->n / 5000 + 1, j = 0;
            for (size_t i = 0; i < v->n; i += step) v->v[j++] = v->v[i];
            v->n = j;
        }
        if (v->n == 0 && dvec_push(v, 1) < 0) goto oom;
        double a = 0, b = 0;
        for (size_t i = 0; i < v->n; i++) {
            a += v->v[i];
            b += v->v[i] * v->v[i];
        }
        m1[k] = a / (double)v->n;
        m2[k] = b / (double)v->n;
        dists[k] = (mc_dist){ v->n, v->v, NULL };
    }

    /* The pipeline at T. */
    if (build_pipe(w, tm, T, start, end, pw, stage_won, drop, &P, err) < 0) goto out;
    r->n_open = P.n;
    int32_t *pseg = malloc(sizeof *pseg * (P.n + 1));
    if (!pseg) goto oom;
    for (size_t k = 0; k < P.n; k++) {
        int lf = leaf_of(&L, w, &w->d[P.deal[k]], T);
        if (lf < 0) {
            free(pseg);
            goto oom;
        }
        pseg[k] = lf;
        deal_leaf[P.deal[k]] = lf;
    }

    /* The run-rate history: each past quarter's revenue from deals
     * registered after the same offset into it, per leaf. */
    for (size_t i = 0; i < nd && nq > 0; i++) {
        const wdeal *d = &w->d[i];
        if (drop[i] || d->created == INT32_MIN) continue;
        double wamt;
        int32_t W = won_day(w, d, T, &wamt);
        if (W == INT32_MIN || W > A) continue;
        int wk = world_quarter_key(w, W);
        int qi = -1;
        for (int j = 0; j < nq; j++)
            if (qkeys[j] == wk) qi = j;
        if (qi < 0) continue;
        if (d->created <= key_start(wk, sm) + off) continue;
        double b = world_amount_base(w, d, wamt, W);
        if (!(b == b)) continue;
        int lf = leaf_of(&L, w, d, T);
        if (lf < 0) {
            free(pseg);
            goto oom;
        }
        size_t need = (L.map.n + 1) * (size_t)nq;
        if (need > uh.cap) {
            size_t nc = need * 2;
            double *ny = realloc(uh.y, sizeof *ny * nc);
            if (!ny) {
                free(pseg);
                goto oom;
            }
            memset(ny + uh.cap, 0, sizeof *ny * (nc - uh.cap));
            uh.y = ny;
            uh.cap = nc;
        }
        uh.y[(size_t)lf * nq + qi] += b;
    }
    size_t nleaf = L.map.n ? L.map.n : 1;
    if (!L.map.n) {   /* no deal at all: one empty total segment */
        char empty[1] = "";
        if (strmap_get(&L.map, empty, NULL) < 0) { free(pseg); goto oom; }
        if (!L.val) {
            L.val = calloc(1, sizeof *L.val);
            L.region = calloc(1, sizeof *L.region);
            if (!L.val || !L.region) { free(pseg); goto oom; }
            L.region[0] = -1;
        }
        nleaf = 1;
    }
    if (uh.cap < nleaf * (size_t)(nq ? nq : 1)) {
        size_t nc = nleaf * (size_t)(nq ? nq : 1);
        double *ny = realloc(uh.y, sizeof *ny * nc);
        if (!ny) { free(pseg); goto oom; }
        memset(ny + uh.cap, 0, sizeof *ny * (nc - uh.cap));
        uh.y = ny;
        uh.cap = nc;
    }

    /* Segments: closed, the run-rate forecast, the shift group. */
    segs = calloc(nleaf, sizeof *segs);
    seg_closed = calloc(nleaf, sizeof *seg_closed);
    if (!segs || !seg_closed) { free(pseg); goto oom; }
    for (size_t i = 0; i < nd; i++) {
        const wdeal *d = &w->d[i];
        if (drop[i] || deal_leaf[i] < 0) continue;
        double wamt;
        int32_t W = won_day(w, d, T, &wamt);
        if (W != INT32_MIN && W >= start && W < end && W <= A) {
            double b = world_amount_base(w, d, wamt, W);
            if (b == b) seg_closed[deal_leaf[i]] += b;
        }
    }
    int ngroups = by_region ? w->regions.n : 0;
    /* Segments with under two years of quarters borrow a season from their
     * siblings when the pooled data show a shared one (ts_season_pool). */
    double sfig[4];
    int spool = nq >= 6 && nq < 8 && nleaf > 1 &&
                ts_season_pool(uh.y, (int)nleaf, nq, 4, sfig, NULL) == 1;
    for (size_t k = 0; k < nleaf; k++) {
        mc_segment *g = &segs[k];
        g->closed = seg_closed[k];
        g->group = by_region && L.region[k] >= 0 ? L.region[k] : -1;
        if (nq < 1) continue;
        const double *y = uh.y + k * (size_t)nq;
        double sum = 0, ss = 0;
        int nz = 0;
        for (int j = 0; j < nq; j++) {
            sum += y[j];
            ss += y[j] * y[j];
            nz += y[j] > 0;
        }
        if (nz == 0) continue;
        /* one past quarter (a program in its second quarter): its value,
         * with half of it as the spread */
        double mean = sum / nq, sd = nq > 1 ? sqrt(fmax(0, ss / nq - mean * mean) * nq / (nq - 1.0)) : 0.5 * mean;
        /* The time-series core where there is enough history; few
         * non-zero quarters keep the plain mean and spread. */
        if (nz >= 4 && nq >= 6) {
            ts_options to;
            ts_options_init(&to);
            to.period = nq >= 8 || spool ? 4 : 1;
            to.season = spool ? sfig : NULL;
            to.h = 1;
            to.method = nleaf > 40 ? TS_THETA : TS_AUTO;
            to.seed = o->seed;
            ts_result tr;
            prm_error terr;
            if (ts_forecast(y, nq, &to, &tr, &terr) == 0) {
                double m = tr.mean[0], lo = ts_lower(&tr, 0)[0], hi = ts_upper(&tr, 0)[0];
                double z = ts_qnorm(0.5 + tr.levels[0] / 200);
                if (m == m && m > 0) {
                    mean = m;
                    if (hi > lo && z > 0) sd = (hi - lo) / (2 * z);
                }
                ts_result_free(&tr);
            }
        }
        if (mean > 0) {
            g->unreg = MC_UNREG_LOGNORMAL;
            g->unreg_mean = mean;
            g->unreg_sd = sd > 0 ? sd : 0.2 * mean;
        }
    }

    /* The shared period effect from past quarters at the same offset. */
    if (nq >= 2) {
        int gcount = by_region ? ngroups : 1;
        obs = calloc((size_t)nq * (size_t)(gcount > 0 ? gcount : 1), sizeof *obs);
        if (!obs) { free(pseg); goto oom; }
        for (int j = 0; j < nq; j++) {
            int32_t ks = key_start(qkeys[j], sm), ke = key_start(qkeys[j] + 1, sm);
            int64_t tk = (int64_t)(ks + off) * DAY + DAY - 1;
            if (tk <= 0 || tk >= T) continue;
            /* a past date in the program's ramp-up tells nothing of a
             * period's shared variation: its pipeline was a few weeks'
             * registrations (as one of 3 periods it made the sd 1.1 logit,
             * P10-P90 19-51M at the backtest's first model point) */
            if (ks + off < first + FC_RAMP_DAYS) continue;
            const double *pk = NULL;
            if (have_model) {
                int rk = scoring_open_probs(s, w, used_model, tk, pwk, NULL, NULL, err);
                if (rk < 0) { free(pseg); goto out; }
                if (rk == 0) pk = pwk;
            } else {
                if (feat_win_hazard(w, tk, 14, pwk, err) < 0) { free(pseg); goto out; }
                pk = pwk;
            }
            pipe *Q = &pastq[npast];
            if (build_pipe(w, tm, tk, ks, ke, pk, stage_won, drop, Q, err) < 0) { free(pseg); goto out; }
            pastj[npast++] = j;
        }
        /* P(close inside the period | win), recalibrated on the same past
         * periods at the same offset, one logit offset per stage x amount
         * tercile (model_logit_offsets, 20 pseudo-deals toward all rows'):
         * the slip model is relative to the stated date, blind to the
         * calendar (closes pile up before a quarter's end) and to size
         * (big deals move slower), so at 4 weeks it said 0.27 where 0.31
         * of the wins closed inside (0.74 / 0.93 in negotiation; dev seed
         * 7). Each past deal counts with its outcome known at T: a win,
         * inside the period or not; a deal still open at T, not inside,
         * weighted by its P(win) as of T; a loss not at all (the timing
         * is a win's). Per stage alone, count-weighted, the offsets moved
         * revenue by size (small deals were the late ones) and the past
         * periods' logit shift took it back out of P(win) (ECE 0.020-0.026
         * -> 0.027-0.034); amount-weighted, P(close) hardly moved
         * (bench/RESULTS.md). */
        if (npast > 0) {
            size_t nrow = 0;
            for (int pq = 0; pq < npast; pq++) nrow += pastq[pq].n;
            double *cp = malloc(sizeof *cp * (nrow + 1)), *cy = malloc(sizeof *cy * (nrow + 1));
            double *cw = malloc(sizeof *cw * (nrow + 1)), *sa = malloc(sizeof *sa * (nrow + 1));
            int32_t *cg = malloc(sizeof *cg * (nrow + 1));
            if (!cp || !cy || !cw || !sa || !cg) {
                free(cp); free(cy); free(cw); free(sa); free(cg); free(pseg);
                goto oom;
            }
            size_t m = 0;
            for (int pq = 0; pq < npast; pq++)
                for (size_t k = 0; k < pastq[pq].n; k++) sa[m++] = pastq[pq].amount[k];
            qsort(sa, m, sizeof *sa, cmp_double);
            double cut1 = m ? sa[m / 3] : 0, cut2 = m ? sa[2 * m / 3] : 0;
            free(sa);
            m = 0;
            for (int pq = 0; pq < npast; pq++) {
                const pipe *Q = &pastq[pq];
                int32_t ks = key_start(qkeys[pastj[pq]], sm), ke = key_start(qkeys[pastj[pq]] + 1, sm);
                for (size_t k = 0; k < Q->n; k++) {
                    size_t i = Q->deal[k];
                    double wamt;
                    int32_t W = won_day(w, &w->d[i], T, &wamt);
                    wstate st;
                    double wt = W != INT32_MIN ? 1 : world_open_at(w, &w->d[i], T, &st) && pw[i] == pw[i] ? pw[i] : 0;
                    cp[m] = Q->p_close[k];
                    cy[m] = W != INT32_MIN && W >= ks && W < ke;
                    cw[m] = fmax(0, fmin(1, wt));
                    cg[m++] = close_group(Q->mult[k], Q->amount[k], cut1, cut2);
                }
            }
            double coff[STAGE_OPEN_COUNT * 3];
            int orc = model_logit_offsets(cp, cy, cw, cg, m, STAGE_OPEN_COUNT * 3, 20, coff, err);
            free(cp); free(cy); free(cw); free(cg);
            if (orc < 0) { free(pseg); goto out; }
            for (int k = 0; k < STAGE_OPEN_COUNT * 3; k++) r->close_offset[k] = coff[k];
            r->close_recalibrated = 1;
            for (int pq = 0; pq <= npast; pq++) {
                pipe *Q = pq < npast ? &pastq[pq] : &P;
                for (size_t k = 0; k < Q->n; k++) {
                    Q->p_close[k] = logit_moved(Q->p_close[k], coff[close_group(Q->mult[k], Q->amount[k], cut1, cut2)]);
                }
            }
        }
        for (int pq = 0; pq < npast; pq++) {
            int j = pastj[pq];
            int32_t ks = key_start(qkeys[j], sm), ke = key_start(qkeys[j] + 1, sm);
            pipe *Q = &pastq[pq];
            mc_period_obs *ob = obs + nobs;
            for (int g = 0; g < gcount; g++) ob[g] = (mc_period_obs){ j, g, 0, 0, 0, 0 };
            for (size_t k = 0; k < Q->n; k++) {
                const wdeal *d = &w->d[Q->deal[k]];
                int g = 0;
                if (by_region) {
                    g = d->partner >= 0 ? wp_region(w, &w->p[d->partner], T) : -1;
                    if (g < 0 || g >= gcount) continue;
                }
                double mu, v, D;
                int st = Q->mult[k];
                mc_period_moments(&Q->p_win[k], &Q->p_close[k], &Q->amount[k], &m1[st], &m2[st], 1, &mu, &v, &D);
                ob[g].predicted += mu;
                ob[g].var_indep += v;
                ob[g].sensitivity += D;
                double wamt;
                int32_t W = won_day(w, d, T, &wamt);
                if (W != INT32_MIN && W >= ks && W < ke) {
                    double b = world_amount_base(w, d, wamt, W);
                    if (b == b) ob[g].actual += b;
                }
            }
            int any = 0;
            for (int g = 0; g < gcount; g++) any |= ob[g].predicted > 0;
            if (any) nobs += (size_t)gcount;
        }
        if (nobs / (size_t)gcount >= 2) {
            if (mc_effect_estimate(obs, nobs, (size_t)gcount, 4, &eff, err) < 0) { free(pseg); goto out; }
            have_eff = 1;
            r->effect_periods = eff.n_periods;
            r->global_bias = eff.global_bias;
            /* the forecast moves its mean by the past shift (below): the
             * spread left is the one about that shift, not about 0 */
            double gv = o->bias_correct && eff.global_bias == eff.global_bias ? eff.global_var_centred
                                                                             : eff.global_var;
            if (!by_region && eff.group_var) gv += eff.group_var[0];
            r->global_sd = sqrt(fmin(gv, 4.0));
            if (by_region) {
                group_sd = calloc((size_t)gcount, sizeof *group_sd);
                if (!group_sd) { free(pseg); goto oom; }
                for (int g = 0; g < gcount; g++) group_sd[g] = sqrt(fmin(eff.group_var[g], 4.0));
            }
        }
    }
    /* Too few past periods for an estimate (a program in its first year:
     * under two past dates at this offset past its ramp-up): the period
     * still has a shared variation, only it is unmeasured, so the range
     * takes a prior sd instead of none (FC_PRIOR_EFFECT_SD, forecast.h),
     * not a guessed shift. */
    if (!have_eff) r->global_sd = FC_PRIOR_EFFECT_SD;
    /* The mean shift past periods ran at (bounded, in the period effect's
     * units: a logit offset on P(win)) is what deals-in-a-period add beyond
     * the deal model (slips into or out of the period, amounts), measured
     * only on periods before T. It moves the total's mean, not P(win): the
     * model's P(win) is calibrated on deals and is what the forecast
     * simulates with and reports. So it becomes the logit offset on every
     * open deal's P(close inside the period | win) that moves the
     * pipeline's expected revenue by as much as the P(win) offset would,
     * and what P(close) cannot carry (bounded, or already 0 or 1) goes on
     * the amounts (close_shift_matching). */
    r->bias_applied = 0;
    r->close_shift = 0;
    r->amount_scale = 1;
    if (have_eff && o->bias_correct && eff.global_bias == eff.global_bias) {
        double b = fmax(-1.0, fmin(1.0, eff.global_bias));
        r->bias_applied = b;
        r->close_shift = close_shift_matching(&P, m1, b, &r->amount_scale);
    }
    if (by_region && !group_sd) {
        for (size_t k = 0; k < nleaf; k++) segs[k].group = -1;
        ngroups = 0;
    }

    /* Quotas and commits. */
    quota = malloc(sizeof *quota * (np + 1));
    commit = malloc(sizeof *commit * (np + 1));
    if (!quota || !commit) { free(pseg); goto oom; }
    for (size_t p = 0; p < np; p++) {
        quota[p] = partner_quota(w, (int)p, pkey, T);
        commit[p] = partner_commit(w, (int)p, pkey, T, A);
    }

    /* The simulation. */
    r->unreg_rho = 0.5;
    mc_input in = { .n_deals = P.n, .p_win = P.p_win, .p_close = P.p_close, .amount = P.amount,
                    .segment = pseg, .partner = P.partner, .mult = P.mult, .key = P.key,
                    .n_mults = STAGE_OPEN_COUNT, .mults = dists, .n_segments = nleaf, .segments = segs,
                    .global_sd = r->global_sd, .n_groups = (size_t)ngroups, .group_sd = group_sd,
                    .unreg_rho = r->unreg_rho, .n_partners = np, .partner_closed = partner_closed,
                    .quota = quota };
    mc_options mo;
    mc_options_init(&mo);
    mo.n_sims = r->n_sims;
    mo.seed = o->seed;
    mo.covariance = 1;
    int mrc = mc_run(&in, &mo, &mr, err);
    free(pseg);
    if (mrc < 0) goto out;
    have_mr = 1;

    /* Rows: the total, then each level's roll-up of the leaves. */
    size_t rcap = 1;
    lvmap = calloc((size_t)o->nlevels + 1, sizeof *lvmap);
    if (!lvmap) goto oom;
    int **leaf_row = calloc((size_t)o->nlevels + 1, sizeof *leaf_row);
    if (!leaf_row) goto oom;
    size_t nrows = 1;
    int level_base[FC_MAX_LEVELS];
    for (int l = 0; l < o->nlevels; l++) {
        leaf_row[l] = malloc(sizeof **leaf_row * nleaf);
        if (!leaf_row[l]) goto oom_rows;
        for (size_t k = 0; k < nleaf; k++) {
            char buf[512];
            size_t u = 0;
            buf[0] = 0;
            for (int i = 0; i < o->nkeys[l]; i++) {
                int key = o->keys[l][i], pos = 0;
                while (L.keys[pos] != key) pos++;
                const char *v = L.val[k][pos];
                u += (size_t)snprintf(buf + u, sizeof buf - u, "%s%s=%s", i ? "," : "", key_names[key],
                                      v ? v : "(none)");
            }
            int g = strmap_get(&lvmap[l], buf, NULL);
            if (g < 0) goto oom_rows;
            leaf_row[l][k] = (int)nrows + g;
        }
        level_base[l] = (int)nrows - 1;
        nrows += lvmap[l].n;
    }
    size_t level_n[FC_MAX_LEVELS];
    for (int l = 0; l < o->nlevels; l++) level_n[l] = lvmap[l].n;
    rcap = nrows;
    r->rows = calloc(rcap, sizeof *r->rows);
    scratch = malloc(sizeof *scratch * (size_t)r->n_sims);
    double *acc = calloc((size_t)r->n_sims, sizeof *acc);
    if (!r->rows || !scratch || !acc) {
        free(acc);
        goto oom_rows;
    }
    r->nrows = nrows;
    if (o->keep_draws) {
        r->row_draws = malloc(sizeof *r->row_draws * nrows * (size_t)r->n_sims);
        if (!r->row_draws) {
            free(acc);
            goto oom_rows;
        }
        memcpy(r->row_draws, mr.total, sizeof *r->row_draws * (size_t)r->n_sims);
    }
    fc_row *tot = &r->rows[0];
    tot->level = -1;
    snprintf(tot->segment, sizeof tot->segment, "total");
    tot->mean = mr.total_sum.mean;
    tot->sd = mr.total_sum.sd;
    tot->p10 = mr.total_sum.p10;
    tot->p50 = mr.total_sum.p50;
    tot->p90 = mr.total_sum.p90;
    tot->closed = mr.total_sum.closed;
    tot->pipeline = mr.total_sum.pipeline;
    tot->unregistered = mr.total_sum.unregistered;
    tot->open_deals = P.n;
    tot->commit = 0;
    for (size_t p = 0; p < np; p++)
        if (commit[p] == commit[p]) tot->commit += commit[p];
    for (int l = 0; l < o->nlevels; l++) {
        size_t base = (size_t)level_base[l];
        for (size_t cap = 0; cap < lvmap[l].cap; cap++)
            if (lvmap[l].key[cap]) {
                fc_row *row = &r->rows[1 + base + (size_t)lvmap[l].val[cap]];
                row->level = l;
                snprintf(row->segment, sizeof row->segment, "%s", lvmap[l].key[cap]);
            }
        int deal_level = 0;
        for (int i = 0; i < o->nkeys[l]; i++) deal_level |= deal_level_key(o->keys[l][i]);
        for (size_t g = 0; g < level_n[l]; g++) {
            fc_row *row = &r->rows[1 + base + g];
            memset(acc, 0, sizeof *acc * (size_t)r->n_sims);
            for (size_t k = 0; k < nleaf; k++) {
                if ((size_t)leaf_row[l][k] != 1 + base + g) continue;
                const double *sd = mr.seg + k * (size_t)r->n_sims;
                for (int x = 0; x < r->n_sims; x++) acc[x] += sd[x];
                row->closed += mr.seg_sum[k].closed;
                row->pipeline += mr.seg_sum[k].pipeline;
                row->unregistered += mr.seg_sum[k].unregistered;
            }
            if (r->row_draws)
                memcpy(r->row_draws + (1 + base + g) * (size_t)r->n_sims, acc, sizeof *acc * (size_t)r->n_sims);
            mc_summary su;
            if (mc_summarise(acc, r->n_sims, scratch, &su, err) < 0) {
                free(acc);
                goto oom_rows;
            }
            row->mean = su.mean;
            row->sd = su.sd;
            row->p10 = su.p10;
            row->p50 = su.p50;
            row->p90 = su.p90;
            row->commit = deal_level ? NAN : 0;
        }
        if (!deal_level)
            for (size_t p = 0; p < np; p++) {
                if (!(commit[p] == commit[p])) continue;
                char buf[512];
                label_of(w, NULL, (int)p, o->keys[l], o->nkeys[l], T, buf, sizeof buf);
                int g = strmap_get(&lvmap[l], buf, NULL);
                if (g < 0) { free(acc); goto oom_rows; }
                if ((size_t)g < level_n[l]) r->rows[1 + base + (size_t)g].commit += commit[p];
            }
    }
    free(acc);
    for (size_t k = 0; k < P.n; k++)
        for (int l = 0; l < o->nlevels; l++) r->rows[leaf_row[l][deal_leaf[P.deal[k]]]].open_deals++;
    for (int l = 0; l < o->nlevels; l++) free(leaf_row[l]);
    free(leaf_row);
    leaf_row = NULL;

    if (o->keep_deals) {
        r->open_deal = malloc(sizeof *r->open_deal * (P.n + 1));
        r->open_p_win = malloc(sizeof *r->open_p_win * (P.n + 1));
        r->open_p_close = malloc(sizeof *r->open_p_close * (P.n + 1));
        if (!r->open_deal || !r->open_p_win || !r->open_p_close) goto oom;
        memcpy(r->open_deal, P.deal, sizeof *P.deal * P.n);
        memcpy(r->open_p_win, P.p_win, sizeof *P.p_win * P.n);
        memcpy(r->open_p_close, P.p_close, sizeof *P.p_close * P.n);
    }
    r->total_draws = malloc(sizeof *r->total_draws * (size_t)r->n_sims);
    if (!r->total_draws) goto oom;
    memcpy(r->total_draws, mr.total, sizeof *r->total_draws * (size_t)r->n_sims);

    /* Drivers: the deals and partners with the largest share of the spread. */
    double var = mr.total_sum.sd * mr.total_sum.sd;
    fc_deal *all = malloc(sizeof *all * (P.n + 1));
    double *pshare = calloc(np + 1, sizeof *pshare);
    if (!all || !pshare) {
        free(all);
        free(pshare);
        goto oom;
    }
    for (size_t k = 0; k < P.n; k++) {
        const wdeal *d = &w->d[P.deal[k]];
        double sh = var > 0 && mr.deal_cov_total ? mr.deal_cov_total[k] / var : 0;
        fc_deal *fd = &all[k];
        memset(fd, 0, sizeof *fd);
        fd->deal = P.deal[k];
        snprintf(fd->id, sizeof fd->id, "%s", d->ext);
        snprintf(fd->partner, sizeof fd->partner, "%s", d->partner >= 0 ? w->p[d->partner].ext : "");
        fd->amount = P.amount[k] / r->amount_scale;   /* the deal's own amount */
        fd->p_win = P.p_win[k];
        fd->p_close = P.p_close[k];
        fd->mean = mr.deal_mean[k];
        fd->share = sh;
        if (d->partner >= 0) pshare[d->partner] += sh;
    }
    qsort(all, P.n, sizeof *all, cmp_share_deal);
    r->ntop = P.n < FC_TOP ? P.n : FC_TOP;
    memcpy(r->top, all, sizeof *all * r->ntop);
    free(all);

    /* Partners: attainment, commits, at-risk signals. */
    r->partners = calloc(np + 1, sizeof *r->partners);
    if (!r->partners) {
        free(pshare);
        goto oom;
    }
    for (size_t p = 0; p < np; p++) {
        const mc_partner *mp = &mr.partner[p];
        if (!(quota[p] == quota[p]) && !(commit[p] == commit[p]) && mp->n_deals == 0 && partner_closed[p] == 0)
            continue;
        fc_partner *fp = &r->partners[r->npartners++];
        fp->partner = (int)p;
        snprintf(fp->id, sizeof fp->id, "%s", w->p[p].ext);
        fp->closed = partner_closed[p];
        fp->mean = mp->mean;
        fp->sd = mp->sd;
        fp->quota = quota[p];
        fp->commit = commit[p];
        fp->expected_attainment = quota[p] == quota[p] ? mp->mean / quota[p] : NAN;
        fp->p_attain = quota[p] == quota[p] ? mp->p_attain : NAN;
        fp->share = pshare[p];
        fp->open_deals = mp->n_deals;
        if (quota[p] == quota[p]) risk_signals(w, fp, T, drop, start, end);
    }
    free(pshare);
    fc_partner *tops = malloc(sizeof *tops * (r->npartners + 1));
    if (!tops) goto oom;
    memcpy(tops, r->partners, sizeof *tops * r->npartners);
    qsort(tops, r->npartners, sizeof *tops, cmp_share_partner);
    r->ntop_partners = r->npartners < FC_TOP ? r->npartners : FC_TOP;
    memcpy(r->top_partners, tops, sizeof *tops * r->ntop_partners);
    free(tops);
    rc = 0;
    goto out;
oom_rows:
    if (leaf_row) {
        for (int l = 0; l < o->nlevels; l++) free(leaf_row[l]);
        free(leaf_row);
    }
oom:
    prm_error_set(err, "out of memory in the forecast");
out:
    if (rc < 0) forecast_result_free(r);
    if (lvmap) {
        for (int l = 0; l < o->nlevels; l++) strmap_free(&lvmap[l]);
        free(lvmap);
    }
    free(scratch);
    free(group_sd);
    if (have_eff) mc_effect_free(&eff);
    free(obs);
    if (have_mr) mc_result_free(&mr);
    pipe_free(&P);
    for (int i = 0; i < npast; i++) pipe_free(&pastq[i]);
    free(segs);
    free(seg_closed);
    free(uh.y);
    mc_timing_free(tm);
    free(trow);
    free(trow_deal);
    for (int k = 0; k < STAGE_OPEN_COUNT; k++) free(mults[k].v);
    free(quota);
    free(commit);
    free(partner_closed);
    free(drop);
    free(pwk);
    free(pw);
    free(deal_leaf);
    strmap_free(&L.map);
    free(L.val);
    free(L.region);
    if (!w_in) world_free(w);
    return rc;
}

void forecast_result_free(forecast_result *r)
{
    free(r->rows);
    free(r->partners);
    free(r->total_draws);
    free(r->row_draws);
    free(r->open_deal);
    free(r->open_p_win);
    free(r->open_p_close);
    r->open_deal = NULL;
    r->open_p_win = r->open_p_close = NULL;
    r->row_draws = NULL;
    r->rows = NULL;
    r->partners = NULL;
    r->total_draws = NULL;
    r->nrows = r->npartners = 0;
}
