/* feat.c - see feat.h. Features for any instant from a world (world.h):
 * a training set of many snapshots costs one read of the store. */
#include "feat.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "domain.h"
#include "mc.h"
#include "timeutil.h"
#include "world_int.h"

enum { PARTNER_MEDIAN_WINDOW = 200 };
#define WIN_RATE_WINDOW_DAYS 365

const char *feat_stage_name(int i) { return i >= 0 && i < STAGE_COUNT ? domain_stage_names[i] : "?"; }

/* The numeric core's one quantile (R type 7; the median of an even count
 * is the mean of the middle two). */
static double median_of(double *v, size_t n)
{
    return n ? mc_quantile(v, n, 0.5) : NAN;
}

void feat_stage_medians(const world *w, int64_t at, double med[FEAT_STAGES])
{
    /* Reservoir of spell lengths per stage; exact median over all spells
     * would need them all, and the median is stable well before that. */
    enum { CAP = 20000 };
    double *buf[FEAT_STAGES];
    size_t n[FEAT_STAGES] = { 0 }, seen[FEAT_STAGES] = { 0 };
    uint64_t x = 0x9e3779b97f4a7c15ULL;
    for (int k = 0; k < FEAT_STAGES; k++) buf[k] = malloc(sizeof(double) * CAP);
    for (size_t i = 0; i < w->nd; i++) {
        const whist *h = w->h + w->d[i].h0;
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
            med[k] = median_of(buf[k], n[k]);  /* n bounded by CAP */
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


/* Win rates shrunk toward the tier's rate with an empirical-Bayes
 * beta-binomial prior (method of moments per tier), over outcomes observed
 * in the trailing WIN_RATE_WINDOW_DAYS; commit accuracy over the last four
 * quarters that ended before t; trailing median deal size. */
static void partner_stats(const world *w, int64_t t, pstats *ps)
{
    size_t np = w->np;
    int nt = w->tiers.n + 1;
    double *wins = calloc(np, sizeof *wins), *n = calloc(np, sizeof *n);
    double *pb = calloc(np, sizeof *pb), *pbn = calloc(np, sizeof *pbn);
    double *booked = calloc(np * 4, sizeof *booked);
    int64_t lo = t - WIN_RATE_WINDOW_DAYS * DAY;
    int qnow = world_quarter_key(w, t / DAY);
    /* Tiers as of t: a partner promoted later was not Gold then. */
    int *ptier = malloc(sizeof *ptier * (np + 1));
    for (size_t i = 0; ptier && i < np; i++) ptier[i] = wp_tier(w, &w->p[i], t);
    for (size_t i = 0; i < w->nd; i++) {
        const wdeal *d = &w->d[i];
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
            int k = qnow - world_quarter_key(w, d->outcome_t / DAY);
            if (k >= 1 && k <= 4) {
                const whist *h = w->h + d->h0 + d->hn - 1;
                booked[(size_t)d->partner * 4 + (size_t)(k - 1)] += h->amount == h->amount ? h->amount : 0;
            }
        }
    }
    /* Tier priors. */
    double *tw = calloc((size_t)nt, sizeof *tw), *tn = calloc((size_t)nt, sizeof *tn),
           *m = calloc((size_t)nt, sizeof *m);
    for (size_t i = 0; i < np; i++) {
        int k = (ptier ? ptier[i] : w->p[i].tier) + 1;
        tw[k] += wins[i];
        tn[k] += n[i];
    }
    for (int k = 0; k < nt; k++) {
        double p = tn[k] > 0 ? tw[k] / tn[k] : 0.3;
        double sv = 0, sb = 0, cnt = 0;
        for (size_t i = 0; i < np; i++) {
            if ((ptier ? ptier[i] : w->p[i].tier) + 1 != k || n[i] < 5) continue;
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
        const wpartner *p = &w->p[i];
        int k = (ptier ? ptier[i] : p->tier) + 1;
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
            const wdeal *d = &w->d[p->deals[j - 1]];
            if (!d->hn) continue;
            double a = world_amount_base(w, d, w->h[d->h0].amount, d->created);
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
    free(ptier);
}

static void pstats_alloc(const world *w, pstats *ps)
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

static int set_init(const world *w, feat_set *fs)
{
    memset(fs, 0, sizeof *fs);
    size_t nc = N_NUM + (size_t)w->sig_names.n + N_CAT + (size_t)w->nx;
    fs->cols = calloc(nc, sizeof *fs->cols);
    fs->num = calloc(N_NUM + MAX_SIGNALS, sizeof *fs->num);
    fs->cat = calloc(N_CAT, sizeof *fs->cat);
    fs->nx = w->nx;
    fs->xnum = calloc((size_t)w->nx + 1, sizeof *fs->xnum);
    fs->xcat = calloc((size_t)w->nx + 1, sizeof *fs->xcat);
    if (!fs->cols || !fs->num || !fs->cat || !fs->xnum || !fs->xcat) return -1;
    fs->data.cols = fs->cols;
    fs->data.n_cols = nc;
    return 0;
}

static int set_grow(const world *w, feat_set *fs)
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
    for (int k = 0; k < fs->nx; k++) {
        if (w->xtype[k] == XT_CATEGORY) {
            int32_t *p = realloc(fs->xcat[k], sizeof(int32_t) * cap);
            if (!p) return -1;
            fs->xcat[k] = p;
        } else {
            double *p = realloc(fs->xnum[k], sizeof(double) * cap);
            if (!p) return -1;
            fs->xnum[k] = p;
        }
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

static void set_finish(const world *w, feat_set *fs)
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
        if (i == C_STAGE) { fs->cols[c].vocab = domain_stage_names; fs->cols[c].n_vocab = FEAT_STAGES; }
        else if (i == C_BUDGET) { fs->cols[c].vocab = budget_vocab; fs->cols[c].n_vocab = 2; }
        else { fs->cols[c].vocab = (const char *const *)vt[i]->s; fs->cols[c].n_vocab = (size_t)vt[i]->n; }
        c++;
    }
    for (int k = 0; k < fs->nx; k++, c++) {
        fs->cols[c].name = w->xname[k];
        if (w->xtype[k] == XT_CATEGORY) {
            fs->cols[c].type = MODEL_CATEGORICAL;
            fs->cols[c].cat = fs->xcat[k];
            fs->cols[c].vocab = (const char *const *)w->xvals[k].s;
            fs->cols[c].n_vocab = (size_t)w->xvals[k].n;
        } else {
            fs->cols[c].type = MODEL_NUMERIC;
            fs->cols[c].num = fs->xnum[k];
        }
    }
    fs->data.n_rows = fs->n;
}

/* Row r's tenant-declared fields as of t (feat.h): every field the world
 * has a type for, no code per field. */
static void tenant_fields(const world *w, feat_set *fs, size_t r, const wdeal *d, int64_t t)
{
    int32_t today = (int32_t)(t / DAY);
    for (int k = 0; k < fs->nx; k++) {
        switch (w->xtype[k]) {
        case XT_CATEGORY: fs->xcat[k][r] = wd_x_i(w, d, k, t); break;
        case XT_DATE: fs->xnum[k][r] = wd_x_d(w, d, k, t) - today; break;
        default: fs->xnum[k][r] = wd_x_d(w, d, k, t); break;   /* number, yes/no 0/1 */
        }
    }
}

static int add_row(const world *w, feat_set *fs, size_t di, int64_t t, const wstate *s,
                   const pstats *ps, const double med[FEAT_STAGES], double label)
{
    if (set_grow(w, fs) < 0) return -1;
    const wdeal *d = &w->d[di];
    const wpartner *p = d->partner >= 0 ? &w->p[d->partner] : NULL;
    size_t r = fs->n++;
    int32_t today = (int32_t)(t / DAY);
    const whist *h = s->now;
    double usd = world_amount_base(w, d, h->amount, today);
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
    x[F_COMPLETENESS][r] = wd_completeness(w, d, t);
    x[F_PARTNER_PROB][r] = h->prob;
    x[F_COMPETITOR][r] = wd_competitor(w, d, t) >= 0;
    x[F_PARTNER_WIN_RATE][r] = p ? ps->win_rate[d->partner] : NAN;
    x[F_PARTNER_CLOSED][r] = p ? log1p(ps->closed[d->partner]) : NAN;
    x[F_COMMIT_ACC][r] = p ? ps->commit_acc[d->partner] : NAN;
    x[F_PROB_BIAS][r] = p ? ps->prob_bias[d->partner] : NAN;
    size_t per = (size_t)(w->regions.n > (int)w->np ? w->regions.n : (int)w->np) + 1;
    int region = p ? wp_region(w, p, t) : -1;
    for (int k = 0; k < w->sig_names.n; k++) {
        int ent = !p ? -1 : w->sig_kind[k] ? d->partner : region;
        x[N_NUM + k][r] = ent >= 0 ? world_series_at(&w->sig[(size_t)k * per + (size_t)ent], today) : NAN;
    }
    /* Attributes as of t (world.h): never a later value. */
    fs->cat[C_TIER][r] = p ? wp_tier(w, p, t) : -1;
    fs->cat[C_TYPE][r] = p ? wp_type(w, p, t) : -1;
    fs->cat[C_REGION][r] = region;
    fs->cat[C_PRODUCT][r] = wd_product(w, d, t);
    fs->cat[C_STAGE][r] = h->stage;
    fs->cat[C_BUDGET][r] = wd_budget(w, d, t);
    tenant_fields(w, fs, r, d, t);
    fs->label[r] = label;
    fs->deal[r] = di;
    fs->at[r] = t;
    return 0;
}

int feat_snapshots(const world *w, int64_t from, int64_t to, int step_days,
                   int64_t label_cutoff, int horizon_days, const double *open_p, feat_set *out,
                   prm_error *err)
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
            const wdeal *d = &w->d[i];
            if (d->outcome_t <= t) continue;
            /* With a horizon the label is "won within it", a row only when
             * the horizon ended by the cutoff: fully observed, whether the
             * deal resolved early, late or not yet (censoring by outcome
             * time would keep the fast outcomes and drop the slow). */
            int64_t h_end = horizon_days > 0 ? t + horizon_days * DAY : INT64_MAX;
            if (open_p ? t >= label_cutoff
                       : horizon_days > 0 ? h_end > label_cutoff : d->outcome_t >= label_cutoff) continue;
            wstate s;
            if (!world_open_at(w, d, t, &s)) continue;
            double y = d->outcome == STATUS_WON && d->outcome_t < label_cutoff && d->outcome_t <= h_end;
            /* Still open at the cutoff: its P(win) then (the win hazard). */
            if (open_p && d->outcome_t >= label_cutoff) {
                y = open_p[i];
                if (!(y == y)) continue;
            }
            if (add_row(w, out, i, t, &s, &ps, med, y) < 0) {
                rc = prm_error_set(err, "out of memory building features");
                break;
            }
        }
    }
    pstats_free(&ps);
    set_finish(w, out);
    return rc;
}

/* ---- the win hazard (feat.h) ------------------------------------------ */

/* Strata: the stage at the landmark x the deal's age then, in buckets
 * (days) whose edges were chosen on the seed-7 sample (bench/RESULTS.md). */
static const int age_edges[] = { 30, 90, 180 };
enum { N_AGE = 4, N_HSTRATA = FEAT_STAGES * N_AGE };
_Static_assert((int)N_HSTRATA == (int)FEAT_HAZARD_STRATA, "feat.h names the strata count");

static int32_t hazard_stratum(const wdeal *d, const wstate *s, int64_t t)
{
    int stage = s->now->stage;
    if (stage < 0 || stage >= FEAT_STAGES) return -1;
    int age = d->created != INT32_MIN ? (int)(t / DAY - d->created) : 0, a = 0;
    while (a < N_AGE - 1 && age >= age_edges[a]) a++;
    return stage * N_AGE + a;
}

int feat_win_hazard(const world *w, int64_t at, int step_days, double *p, prm_error *err)
{
    return feat_win_hazard_strata(w, at, step_days, p, NULL, err);
}

int feat_win_hazard_strata(const world *w, int64_t at, int step_days, double *p, int32_t *stratum,
                           prm_error *err)
{
    if (step_days < 1) return prm_error_set(err, "landmark step must be at least one day");
    for (size_t i = 0; i < w->nd; i++) p[i] = NAN;
    if (stratum)
        for (size_t i = 0; i < w->nd; i++) stratum[i] = -1;
    int64_t first = world_first_created(w);
    if (first == INT64_MIN || first >= at) return 1;
    size_t n = 0, cap = 4096;
    model_hazard_row *rows = malloc(sizeof *rows * cap);
    if (!rows) return prm_error_set(err, "out of memory");
    /* Landmarks every step_days back from `at` (t_k = at - k * step, k >= 1,
     * t_k >= first): each open deal followed to its outcome, or to `at`
     * when it was still open then (censored). Deal by deal, over the
     * landmarks of its own lifetime only: the landmark-major loop visited
     * every deal at every landmark (1-3 s CPU a call on the 1M-deal store,
     * ~80 landmarks; the same rows in another order). */
    const int64_t S = step_days * DAY;
    for (size_t i = 0; i < w->nd; i++) {
        const wdeal *d = &w->d[i];
        int64_t lo = first;
        if (d->created != INT32_MIN && (int64_t)d->created * DAY > lo) lo = (int64_t)d->created * DAY;
        if (lo > at - S) continue;
        int64_t kmax = (at - lo) / S, kmin = 1;
        if (d->outcome_t < at) kmin = (at - d->outcome_t) / S;   /* t_k < outcome_t; checked below */
        if (kmin < 1) kmin = 1;
        for (int64_t kk = kmax; kk >= kmin; kk--) {
            int64_t t = at - kk * S;
            wstate s;
            if (t < first) continue;
            if (d->outcome_t <= t || (d->created != INT32_MIN && d->created > t / DAY)) continue;
            if (!world_open_at(w, d, t, &s)) continue;
            int32_t k = hazard_stratum(d, &s, t);
            if (k < 0) continue;
            if (n == cap) {
                model_hazard_row *nr = realloc(rows, sizeof *rows * cap * 2);
                if (!nr) {
                    free(rows);
                    return prm_error_set(err, "out of memory");
                }
                rows = nr;
                cap *= 2;
            }
            int done = d->outcome_t < at;
            rows[n].stratum = k;
            rows[n].days = (double)((done ? d->outcome_t : at) - t) / DAY;
            rows[n].event = !done ? 0 : d->outcome == STATUS_WON ? 1 : 2;
            n++;
        }
    }
    int32_t parent[N_HSTRATA];
    for (int k = 0; k < N_HSTRATA; k++) parent[k] = k / N_AGE;
    model_hazard_params hp;
    model_hazard_params_init(&hp);
    model_hazard *h = NULL;
    size_t events = 0;
    for (size_t i = 0; i < n; i++) events += rows[i].event != 0;
    if (!events) {                              /* no outcome yet: nothing to say */
        free(rows);
        return 1;
    }
    int rc = model_hazard_fit(rows, n, N_HSTRATA, parent, FEAT_STAGES, &hp, &h, err);
    free(rows);
    if (rc < 0) return -1;
    for (size_t i = 0; i < w->nd; i++) {
        wstate s;
        if (!world_open_at(w, &w->d[i], at, &s)) continue;
        int32_t k = hazard_stratum(&w->d[i], &s, at);
        p[i] = model_hazard_p_win(h, k);
        if (stratum) stratum[i] = k;
    }
    model_hazard_free(h);
    return 0;
}

/* What the last feat_open computed, kept in the world for feat_view. */
typedef struct featcache {
    pstats ps;
    int64_t at;
    double med[FEAT_STAGES];
} featcache;

static void cache_free(void *p)
{
    featcache *c = p;
    pstats_free(&c->ps);
    free(c);
}

static featcache *cache_of(world *w)
{
    if (!w->feat_cache) {
        featcache *c = calloc(1, sizeof *c);
        if (!c) return NULL;
        pstats_alloc(w, &c->ps);
        c->at = INT64_MIN;
        w->feat_cache = c;
        w->feat_cache_free = cache_free;
    }
    return w->feat_cache;
}

int feat_prepare(world *w, int64_t at, prm_error *err)
{
    featcache *c = cache_of(w);
    if (!c) return prm_error_set(err, "out of memory");
    if (c->at == at) return 0;
    partner_stats(w, at, &c->ps);
    feat_stage_medians(w, at, c->med);
    c->at = at;
    return 0;
}

int feat_open(world *w, int64_t at, feat_set *out, prm_error *err)
{
    if (set_init(w, out) < 0) return prm_error_set(err, "out of memory");
    if (feat_prepare(w, at, err) < 0) return -1;
    featcache *c = w->feat_cache;
    const pstats *pp = &c->ps;
    const double *med = c->med;
    int rc = 0;
    for (size_t i = 0; i < w->nd; i++) {
        wstate s;
        if (!world_open_at(w, &w->d[i], at, &s)) continue;
        if (add_row(w, out, i, at, &s, pp, med, NAN) < 0) {
            rc = prm_error_set(err, "out of memory building features");
            break;
        }
    }
    set_finish(w, out);
    return rc;
}

int feat_one(world *w, size_t deal, int64_t at, feat_set *out, prm_error *err)
{
    if (set_init(w, out) < 0) return prm_error_set(err, "out of memory");
    if (feat_prepare(w, at, err) < 0) return -1;
    featcache *c = w->feat_cache;
    wstate s;
    int rc = 0;
    if (!world_open_at(w, &w->d[deal], at, &s)) rc = prm_error_set(err, "the deal is not open then");
    else if (add_row(w, out, deal, at, &s, &c->ps, c->med, NAN) < 0) rc = prm_error_set(err, "out of memory");
    set_finish(w, out);
    return rc;
}

static int cmp_count_desc(const void *a, const void *b, void *arg)
{
    const size_t *cnt = arg;
    int x = *(const int *)a, y = *(const int *)b;
    return cnt[x] < cnt[y] ? 1 : cnt[x] > cnt[y] ? -1 : (x > y) - (x < y);
}

int feat_cap_levels(feat_set *fit, int keep)
{
    for (int k = 0; k < fit->nx; k++) {
        int32_t *c = fit->xcat[k];
        if (!c || keep < 1) continue;
        int nv = 0;
        for (size_t r = 0; r < fit->n; r++)
            if (c[r] >= nv) nv = c[r] + 1;
        if (nv <= keep) continue;
        size_t *cnt = calloc((size_t)nv, sizeof *cnt);
        int *order = malloc(sizeof *order * (size_t)nv);
        char *kept = calloc((size_t)nv, 1);
        if (!cnt || !order || !kept) {
            free(cnt);
            free(order);
            free(kept);
            return -1;
        }
        for (size_t r = 0; r < fit->n; r++)
            if (c[r] >= 0) cnt[c[r]]++;
        for (int v = 0; v < nv; v++) order[v] = v;
        qsort_r(order, (size_t)nv, sizeof *order, cmp_count_desc, cnt);
        for (int v = 0; v < keep; v++) kept[order[v]] = 1;
        for (size_t r = 0; r < fit->n; r++)
            if (c[r] >= 0 && !kept[c[r]]) c[r] = -1;
        free(cnt);
        free(order);
        free(kept);
    }
    return 0;
}

void feat_set_free(feat_set *fs)
{
    if (fs->num)
        for (int i = 0; i < N_NUM + MAX_SIGNALS; i++) free(fs->num[i]);
    if (fs->cat)
        for (int i = 0; i < N_CAT; i++) free(fs->cat[i]);
    for (int k = 0; k < fs->nx; k++) {
        if (fs->xnum) free(fs->xnum[k]);
        if (fs->xcat) free(fs->xcat[k]);
    }
    free(fs->xnum);
    free(fs->xcat);
    free(fs->num);
    free(fs->cat);
    free(fs->cols);
    free(fs->label);
    free(fs->deal);
    free(fs->at);
    memset(fs, 0, sizeof *fs);
}

void feat_view(const world *w, size_t di, int64_t at, deal_view *v)
{
    world_view(w, di, at, v);
    const featcache *c = w->feat_cache;
    const wdeal *d = &w->d[di];
    if (c && c->at == at && d->partner >= 0) {
        v->partner_win_rate = c->ps.win_rate[d->partner];
        v->partner_median_amount = c->ps.median_amount[d->partner];
        v->tier_median_amount = c->ps.tier_median[wp_tier(w, &w->p[d->partner], at) + 1];
    }
}

const double *feat_medians(const world *w)
{
    const featcache *c = w->feat_cache;
    return c ? c->med : NULL;
}
