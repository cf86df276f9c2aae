/* test_forecast.c - the channel forecast (forecast.h) on a small synthetic
 * program: a distributor's copy of its reseller's deal counted once (and
 * listed with why), closed revenue at the FX rate of its close day and
 * pipeline at the as-of rate, every simulation's segments summing to its
 * total, seeded runs reproducible, attainment from the same draws, a
 * reseller that changes distributor rolled up under the parent of the
 * date, and no look-ahead: history added after the as-of date leaves that
 * date's forecast unchanged to the last bit. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "forecast.h"
#include "scoring.h"
#include "store.h"
#include "tap.h"
#include "teststore.h"
#include "timeutil.h"
#include "world.h"


static int64_t T(const char *iso)
{
    int64_t t = 0;
    clock_parse(iso, &t, NULL);
    return t;
}

static void partner(const char *id, const char *tier, const char *region, const char *type, const char *parent,
                    const char *ccy, const char *at)
{
    const char *kv[] = { "external_id", id, "tier", tier, "region", region, "type", type, "parent_id", parent,
                         "currency", ccy, "updated_at", at, NULL };
    put("partner", kv);
}

static void day_iso(int64_t day, char out[11]) { date_iso(day * 86400, out); }

/* A deal created on `created`, open at `stage` with a close date, then
 * (when close_day > 0) won or lost on close_day. */
static void deal(const char *id, const char *p, const char *account, double amount, const char *ccy,
                 int64_t created, int64_t expect, const char *stage, int64_t close_day, const char *outcome)
{
    char c[11], e[11], cl[11], up[32], up2[32], amt[32];
    day_iso(created, c);
    day_iso(expect, e);
    snprintf(up, sizeof up, "%sT09:00:00Z", c);
    snprintf(amt, sizeof amt, "%.2f", amount);
    const char *kv[] = { "external_id", id, "partner_id", p, "account", account, "amount", amt, "currency", ccy,
                         "product_family", "Core", "stage", stage, "status", "open", "created_at", c,
                         "expected_close", e, "updated_at", up, NULL };
    put("deal", kv);
    if (close_day > 0) {
        day_iso(close_day, cl);
        snprintf(up2, sizeof up2, "%sT10:00:00Z", cl);
        int won = strcmp(outcome, "won") == 0;
        const char *kv2[] = { "external_id", id, "partner_id", p, "account", account, "amount", amt, "currency",
                              ccy, "product_family", "Core", "stage", won ? "closed_won" : "closed_lost",
                              "status", outcome, "created_at", c, "expected_close", e, "closed_at", cl,
                              "updated_at", up2, NULL };
        put("deal", kv2);
    }
}

/* A fresh store for one test at /tmp/prmcast-test-NAME-PID.db (path). */
static int fresh_store(char path[128], const char *name)
{
    prm_error err;
    snprintf(path, 128, "/tmp/prmcast-test-%s-%d.db", name, (int)getpid());
    unlink(path);
    return store_open(path, &s, &err);
}

static int64_t D(const char *iso) { return T(iso) / 86400; }

static const fc_row *row(const forecast_result *r, const char *seg)
{
    for (size_t i = 0; i < r->nrows; i++)
        if (strcmp(r->rows[i].segment, seg) == 0) return &r->rows[i];
    return NULL;
}

static int run(const char *as_of, const char *by, uint64_t seed, forecast_result *r)
{
    forecast_opts o;
    forecast_opts_init(&o);
    o.as_of = T(as_of);
    o.sims = 2000;
    o.seed = seed;
    o.keep_draws = 1;
    o.fy = 2026;
    o.q = 4;
    prm_error err;
    if (by && forecast_parse_by(by, &o, &err) < 0) {
        printf("# by: %s\n", err.msg);
        return -1;
    }
    if (forecast_run(s, NULL, &o, r, &err) < 0) {
        printf("# forecast: %s\n", err.msg);
        return -1;
    }
    return 0;
}

/* 2026-Q4 as of `as_of` with the win hazard (no model). */
static int run_hazard(const char *as_of, int sims, int bias_correct, int keep_deals, forecast_result *r)
{
    forecast_opts o;
    forecast_opts_init(&o);
    o.as_of = T(as_of);
    o.fy = 2026;
    o.q = 4;
    o.sims = sims;
    o.model_id = -1;
    o.bias_correct = bias_correct;
    o.keep_deals = keep_deals;
    prm_error err;
    return forecast_run(s, NULL, &o, r, &err);
}

static int same(const forecast_result *a, const forecast_result *b)
{
    if (a->nrows != b->nrows) return 0;
    for (size_t i = 0; i < a->nrows; i++) {
        const fc_row *x = &a->rows[i], *y = &b->rows[i];
        if (strcmp(x->segment, y->segment) || memcmp(&x->mean, &y->mean, sizeof(double) * 9)) return 0;
    }
    return memcmp(a->total_draws, b->total_draws, sizeof(double) * (size_t)a->n_sims) == 0;
}

/* A program of `days` days from `from` with `per_day` registrations a day,
 * the store's clock at `now`. Deal k: k % 10 < 5 lost after 20 days
 * (registered); 5, 6 won after `win_life` days and 7..9 lost after
 * `lose_life` (qualified): the long-lived deals are mostly losses and they
 * resolve last. Outcomes after `now` are not recorded (those deals are open). */
static void program_lives(const char *from, int days, int per_day, const char *now, int win_life, int lose_life)
{
    prm_error err;
    store_begin(s, &err);
    partner("P1", "Gold", "NA", "reseller", NULL, "USD", "2020-01-01T00:00:00Z");
    int64_t d0 = D(from), end = D(now);
    char id[32], acct[32];
    int k = 0;
    for (int d = 0; d < days; d++)
        for (int j = 0; j < per_day; j++, k++) {
            int g = k % 10, life = g < 5 ? 20 : g < 7 ? win_life : lose_life;
            int64_t c = d0 + d, close = c + life;
            snprintf(id, sizeof id, "C%06d", k);
            snprintf(acct, sizeof acct, "Acct %d", k);
            deal(id, "P1", acct, 10000, "USD", c, c + 60, g < 5 ? "registered" : "qualified",
                 close <= end ? close : 0, g == 5 || g == 6 ? "won" : "lost");
        }
    store_commit(s, &err);
}

static void program(const char *from, int days, int per_day, const char *now, int win_life)
{
    program_lives(from, days, per_day, now, win_life, 400);
}

/* The mean P(win) a model gives the deals open at `at` that program()
 * made qualified (k % 10 >= 5). */
/* The mean P(win) of the open qualified deals: the model's own
 * (scoring_model_probs), or as the forecast takes it, anchored to the win
 * hazard as of `at` (scoring_open_probs). */
static double qualified_mean_of(int64_t model_id, const char *at, int anchored)
{
    prm_error err;
    world *w;
    if (world_load(s, &w, &err) < 0) return NAN;
    size_t nd = world_n_deals(w), n_open = 0;
    double *p = malloc(sizeof *p * (nd + 1)), sum = 0;
    int64_t used;
    int cnt = 0;
    if (p && (anchored ? scoring_open_probs : scoring_model_probs)(s, w, model_id, T(at), p, &n_open, &used, &err) == 0)
        for (size_t i = 0; i < nd; i++) {
            int k = atoi(world_deal_id(w, i) + 1);
            if (p[i] == p[i] && k % 10 >= 5) {
                sum += p[i];
                cnt++;
            }
        }
    free(p);
    world_free(w);
    return cnt ? sum / cnt : NAN;
}

static double qualified_mean(int64_t model_id, const char *at)
{
    return qualified_mean_of(model_id, at, 0);
}

/* Trains (not activated) as of `as_of`; prints the error when it fails. */
static int train_as_of(const char *as_of, const char *kind, int label_days, train_result *r)
{
    train_opts o;
    train_opts_init(&o);
    o.as_of = as_of;
    o.kind = kind;
    o.activate = 0;
    o.label_days = label_days;
    prm_error err;
    int rc = scoring_train(s, &o, r, &err);
    if (rc < 0) printf("# train as of %s (label_days %d): %s\n", as_of, label_days, err.msg);
    return rc;
}

/* A young program of `days` days (program(), 6 a day, 100-day wins)
 * trained as of `now`: it trains a real model, the window starting at the
 * first registration; the mean P(win) of its open qualified deals is
 * within `tol` of `truth` (NaN: printed, not asserted). */
static void young_program(const char *from, int days, const char *now, const char *name, double truth, double tol)
{
    char path[128], at[32], what[160];
    if (fresh_store(path, "young") < 0) return;
    program(from, days, 6, now, 100);
    snprintf(at, sizeof at, "%sT00:00:00Z", now);
    train_result r;
    int rc = train_as_of(at, NULL, TRAIN_LABEL_DAYS, &r);
    snprintf(what, sizeof what, "%s: trains, the window from the first registration", name);
    T_OK(rc == 0 && strcmp(r.train_from, from) == 0 && r.label_days > 0 && r.label_days <= TRAIN_LABEL_DAYS, what);
    int stat = 0;
    for (int i = 0; rc == 0 && i < r.ncand; i++) stat |= strcmp(r.cand[i].kind, "baserate") != 0;
    snprintf(what, sizeof what, "%s: not a cold start, logistic and gbdt are fitted, not the base rates only", name);
    T_OK(rc == 0 && !r.cold_start && stat, what);
    /* as the forecast takes it: anchored to the win hazard as of the date */
    double m = rc == 0 ? qualified_mean_of(r.cand[r.best].model_id, at, 1) : NAN;
    double own = rc == 0 ? qualified_mean(r.cand[r.best].model_id, at) : NAN;
    if (rc == 0)
        printf("# %s: fit %s..%s, H %d, evaluate %s..%s, %zu fit rows, best %s, mean P(win) of the open qualified"
               " deals %.3f anchored, %.3f the model's own (truth %.3f)\n", name, r.train_from, r.calib_from,
               r.label_days, r.eval_from, r.eval_to, r.n_fit, r.cand[r.best].kind, m, own, truth);
    snprintf(what, sizeof what, "%s: the open long-lived deals' mean P(win) %s", name,
             tol == tol ? "recovers their win rate" : "is a probability");
    T_OK(tol == tol ? fabs(m - truth) < tol : m > 0 && m < 1, what);
    store_close(s);
    unlink(path);
}

/* Issue 9 item 5: the censoring of training labels and the adaptive window. */
static void censoring_tests(void)
{
    char path[128];
    prm_error err;
    snprintf(path, sizeof path, "/tmp/prmcast-test-censor-%d.db", (int)getpid());
    unlink(path);
    if (store_open(path, &s, &err) < 0) {
        printf("# %s\n", err.msg);
        return;
    }
    program("2021-07-01", 1660, 1, "2026-01-15", 100);
    /* At 2026-01-15 the open qualified deals are, by construction, 2 in 10
     * a day younger than 100 days (they will win) and 3 in 10 a day younger
     * than 400 (they will lose): a win rate of 20 / (20 + 120) = 0.143. */
    double truth = 20.0 / 140.0, mean[2] = { NAN, NAN }, anchored[2] = { NAN, NAN };
    int label_days[2] = { TRAIN_LABEL_DAYS, 0 };
    for (int v = 0; v < 2; v++) {
        train_result r;
        if (train_as_of("2026-01-15T00:00:00Z", "logistic", label_days[v], &r) < 0) continue;
        mean[v] = qualified_mean(r.cand[0].model_id, "2026-01-15T00:00:00Z");
        anchored[v] = qualified_mean_of(r.cand[0].model_id, "2026-01-15T00:00:00Z", 1);
        printf("# label_days %d: mean P(win) of the open qualified deals %.3f, anchored to the win hazard %.3f"
               " (truth %.3f)\n", label_days[v], mean[v], anchored[v], truth);
    }
    /* The forecast's P(win) is anchored to the win hazard as of the date
     * (scoring_open_probs): even the model of the censored labels, which
     * over-predicts on its own (below), then says the known rate. */
    T_OK(fabs(anchored[0] - truth) < 0.03 && fabs(anchored[1] - truth) < 0.03,
         "anchored to the win hazard, both models' P(win) of the long-lived deals is their win rate");
    T_OK(fabs(mean[0] - truth) < 0.06, "with fully observed labels the calibrated P(win) of long-lived deals"
                                        " recovers their win rate");
    T_OK(mean[1] > truth + 0.15, "training on deals resolved by each cutoff (the censored labels) over-predicts them");
    store_close(s);
    unlink(path);

    /* Wins that take longer than the label horizon (200 days against
     * H = 120): every row is labelled "won at all", a deal still open at
     * the cutoff at its win-hazard P(win), so a slow win is not a loss.
     * Open qualified deals at T: 2 in 10 a day younger than 200 days (they
     * will win), 3 in 10 younger than 400: 40 / 160. (Labelled "won within
     * H", the mean came out near 24 / 160: only the winners older than 80
     * days win within H.) */
    if (fresh_store(path, "slow") < 0) return;
    program("2021-07-01", 1660, 1, "2026-01-15", 200);
    {
        train_result r;
        int rc = train_as_of("2026-01-15T00:00:00Z", "logistic", TRAIN_LABEL_DAYS, &r);
        T_OK(rc == 0, "a program with slow wins trains");
        T_OK(rc == 0 && r.label_days == TRAIN_LABEL_DAYS && r.calib_label_days == 0,
             "the calibration rows are labelled as of the evaluation window's start, where they end");
        double m = rc == 0 ? qualified_mean(r.cand[0].model_id, "2026-01-15T00:00:00Z") : NAN;
        printf("# slow wins: H %d, calibrated to %d, mean P(win) of the open qualified deals %.3f (truth %.3f)\n",
               r.label_days, r.calib_label_days, m, 40.0 / 160.0);
        T_OK(fabs(m - 40.0 / 160.0) < 0.05, "wins slower than the label horizon: the calibrated P(win) recovers the"
                                           " eventual win rate");
    }
    store_close(s);
    unlink(path);

    /* The win hazard itself (feat_win_hazard): at 2026-01-15 the program
     * with 100-day wins has 1,200 qualified deals that will lose at 400
     * days still open, censored, against 20 that will win: P(win) of the
     * open qualified deals 20 / 140. Leaving the censored deals out
     * (the stage win rates over resolved deals) gives 2/5. */
    if (fresh_store(path, "hazard") < 0) return;
    program("2021-07-01", 1660, 1, "2026-01-15", 100);
    {
        world *w = NULL;
        double sum = 0, lo = 1, hi = 0;
        int cnt = 0, rc = world_load(s, &w, &err);
        size_t nd = rc == 0 ? world_n_deals(w) : 0;
        double *p = malloc(sizeof *p * (nd + 1));
        rc = rc == 0 && p ? feat_win_hazard(w, T("2026-01-15T00:00:00Z"), 14, p, &err) : -1;
        for (size_t i = 0; rc == 0 && i < nd; i++) {
            int k = atoi(world_deal_id(w, i) + 1);
            if (p[i] == p[i] && k % 10 >= 5) {
                sum += p[i];
                cnt++;
                lo = fmin(lo, p[i]);
                hi = fmax(hi, p[i]);
            }
        }
        double m = cnt ? sum / cnt : NAN;
        printf("# win hazard: mean P(win) of %d open qualified deals %.3f (truth %.3f), %.3f..%.3f\n", cnt, m,
               20.0 / 140, lo, hi);
        T_OK(rc == 0 && cnt == 140, "win hazard: a P(win) for every open qualified deal");
        T_OK(fabs(m - 20.0 / 140) < 0.02, "win hazard: censored long-lived deals at risk, the known win rate recovered");
        T_OK(hi > 0.3 && lo < 0.05, "win hazard: young deals (may still win) above old ones (past the wins' age)");
        /* The strata the forecast anchors the model to (model_anchor):
         * the same P(win), one value per stratum, -1 where there is none. */
        double *p2 = malloc(sizeof *p2 * (nd + 1)), byk[FEAT_HAZARD_STRATA];
        int32_t *k2 = malloc(sizeof *k2 * (nd + 1));
        int same = p2 && k2 && rc == 0 &&
                   feat_win_hazard_strata(w, T("2026-01-15T00:00:00Z"), 14, p2, k2, &err) == 0;
        for (int k = 0; k < FEAT_HAZARD_STRATA; k++) byk[k] = NAN;
        size_t nk = 0;
        for (size_t i = 0; same && i < nd; i++) {
            if (p[i] != p[i]) { same = p2[i] != p2[i] && k2[i] == -1; continue; }
            same = p2[i] == p[i] && k2[i] >= 0 && k2[i] < FEAT_HAZARD_STRATA;
            if (!same) break;
            if (byk[k2[i]] != byk[k2[i]]) { byk[k2[i]] = p[i]; nk++; }
            same = byk[k2[i]] == p[i];
        }
        T_OK(same && nk >= 2, "win hazard strata: the same P(win), one value per stratum, -1 for deals not open");
        free(p2);
        free(k2);
        free(p);
        world_free(w);
    }
    store_close(s);
    unlink(path);

    /* An eight-month program: none of its 400-day losers has resolved,
     * and a real model still trains, on labels from the win hazard. Open
     * qualified deals at T, per 10 a day: 2 x 100 winners (younger than
     * 100 days) against 3 x 240 losers (all since the start): 0.217. At
     * the cutoff the labels are taken at (day 120) the qualified deals have
     * shown wins only, so the hazard's tail, the rates of the last bin
     * seen, says they all win: the model's own mean comes out near 1
     * (0.995, a known limit, bench/RESULTS.md). Anchored to the hazard as
     * of T, which has seen 240 days, it is 0.296: within 0.1 asserted,
     * the rest is the same tail at T (nobody seen past 240 days). */
    young_program("2025-05-06", 240, "2026-01-01", "eight months", 200.0 / 920, 0.1);
    /* Fifteen months: the 400-day losers have started to resolve. */
    young_program("2024-10-01", 456, "2025-12-31", "15 months", 20.0 / 140, 0.05);
}

/* Without a model, P(win) comes from stage win rates as of T. A program of
 * 300 days whose qualified deals win after 60 days or lose after 150: at T
 * the resolved qualified deals won 480 / 930 = 0.52, but the open ones are
 * the young (2 in 5 of those under 60 days win) and the losers waiting
 * (3 a day aged 60..149): 120 / 570 = 0.21 win. The rates by age, with
 * the open deals censored, see that. */
static void stage_rate_test(void)
{
    char path[128];
    prm_error err;
    if (fresh_store(path, "stagerate") < 0) return;
    program_lives("2026-01-01", 300, 10, "2026-10-28", 60, 150);
    forecast_result r;
    int rc = run_hazard("2026-10-27T23:59:59Z", 200, 0, 1, &r);
    T_OK(rc == 0, "a young program forecasts with the stage win rates");
    if (rc == 0) {
        world *w;
        double sum = 0;
        int n = 0;
        if (world_load(s, &w, &err) == 0) {
            for (size_t i = 0; i < r.n_open; i++) {
                int k = atoi(world_deal_id(w, r.open_deal[i]) + 1);
                if (k % 10 >= 5) {
                    sum += r.open_p_win[i];
                    n++;
                }
            }
            world_free(w);
        }
        double m = n ? sum / n : NAN;
        printf("# stage rates: mean P(win) of %d open qualified deals %.3f (truth %.3f, resolved-only 0.52)\n", n,
               m, 120.0 / 570);
        T_OK(n > 500 && fabs(m - 120.0 / 570) < 0.08, "stage win rates by age with the open deals censored:"
                                                     " the open qualified deals' P(win) near their win rate");
        forecast_result_free(&r);
    }
    store_close(s);
    unlink(path);
}

/* A program that began with a quarter, forecast the day before the next
 * one (the backtest's 13-week point): its one past quarter is all revenue
 * from deals registered inside it, the run-rate's one value (it was left
 * out as "before the program", and the not-yet-registered part was 0);
 * with no past period to estimate it from, the period effect's sd is the
 * prior's. */
static void first_quarter_runrate_test(void)
{
    char path[128];
    if (fresh_store(path, "runrate") < 0) return;
    program("2026-07-01", 92, 6, "2026-09-30", 30);
    /* program(): deals 5, 6 of every 10 won 30 days after registration */
    double truth = 0;
    for (int k = 0; k < 92 * 6; k++)
        if ((k % 10 == 5 || k % 10 == 6) && D("2026-07-01") + k / 6 + 30 <= D("2026-09-30")) truth += 10000;
    forecast_result r;
    /* the split is the draws' mean: sd/mean 0.5 over 4,000 draws, se 0.8% */
    int rc = run_hazard("2026-09-30T23:59:59Z", 4000, 1, 0, &r);
    T_OK(rc == 0, "a one-quarter-old program forecasts its second quarter");
    if (rc == 0) {
        printf("# first quarter run-rate: unregistered %.0f, the first quarter's in-quarter revenue %.0f\n",
               r.rows[0].unregistered, truth);
        T_OK(truth > 0 && fabs(r.rows[0].unregistered - truth) < 0.05 * truth,
             "the not-yet-registered part is the first quarter's revenue from deals registered in it");
        /* no past date at this offset past the ramp-up: the prior effect */
        T_OK(r.effect_periods == 0 && r.global_sd == FC_PRIOR_EFFECT_SD && r.rows[0].p90 - r.rows[0].p10 > 0,
             "a period effect without past periods takes the prior sd, not none");
        forecast_result_free(&r);
    }
    store_close(s);
    unlink(path);
}

/* The past periods' mean shift moves the total's mean, not P(win): with
 * the correction on, every open deal's P(win) is the one without it (the
 * model's, here the win hazard's), and the pipeline's expected revenue
 * moves by as much as the same logit shift on P(win) would have moved it,
 * carried on P(close inside the period | win). */
static void period_shift_test(void)
{
    char path[128];
    if (fresh_store(path, "pshift") < 0) return;
    /* 680 days of 4 registrations a day; a deal wins after 90 days or
     * loses after 150, and the share that wins rises from 0.3 to 0.7:
     * every past period won more than its own as-of date's rates gave. */
    prm_error err;
    store_begin(s, &err);
    partner("P1", "Gold", "NA", "reseller", NULL, "USD", "2020-01-01T00:00:00Z");
    int64_t d0 = D("2025-01-01"), now = D("2026-11-12");
    for (int k = 0; k < 680 * 4; k++) {
        int64_t c = d0 + k / 4;
        int won = (k * 7) % 20 < 6 + (8 * (k / 4)) / 680, life = won ? 90 : 150;
        char id[32], acct[32];
        snprintf(id, sizeof id, "S%06d", k);
        snprintf(acct, sizeof acct, "Acct %d", k);
        deal(id, "P1", acct, 10000, "USD", c, c + 60, "qualified", c + life <= now ? c + life : 0,
             won ? "won" : "lost");
    }
    store_commit(s, &err);
    forecast_result r0, r1;
    int rc0 = run_hazard("2026-11-11T23:59:59Z", 4000, 0, 1, &r0);
    int rc1 = run_hazard("2026-11-11T23:59:59Z", 4000, 1, 1, &r1);
    T_OK(rc0 == 0 && rc1 == 0, "a program with past periods forecasts with and without the mean shift");
    if (rc0 == 0 && rc1 == 0) {
        double b = r1.bias_applied, want = 0, got = 0, base = 0;
        int same_pwin = r0.n_open == r1.n_open && r0.n_open > 0;
        for (size_t i = 0; same_pwin && i < r0.n_open; i++) {
            double pw = r0.open_p_win[i], pc = r0.open_p_close[i];
            same_pwin = r0.open_deal[i] == r1.open_deal[i] && r0.open_p_win[i] == r1.open_p_win[i];
            double pb = pw > 0 && pw < 1 ? 1 / (1 + exp(-(log(pw / (1 - pw)) + b))) : pw;
            base += pw * pc;
            want += pb * pc;
            got += pw * r1.open_p_close[i];
        }
        printf("# period shift: b %.3f, close shift %.3f, %zu open; sum pw pc %.2f, with b on P(win) %.2f, "
               "on P(close) %.2f x amounts %.3f; pipeline mean %.0f -> %.0f\n", b, r1.close_shift, r0.n_open, base, want,
               got, r1.amount_scale, r0.rows[0].pipeline, r1.rows[0].pipeline);
        T_OK(fabs(b) > 0.05 && r1.effect_periods >= 2, "the past periods ran at a mean shift");
        T_OK(same_pwin, "P(win) is the model's whatever the period shift");
        /* every deal has one amount and stage: sum pw pc is the revenue's scale */
        T_OK(r1.close_shift != 0 && fabs(got * r1.amount_scale - want) < 0.02 * fabs(want - base),
             "P(close), and past its bound the amounts, carry the shift's expected revenue");
        double dsim = r1.rows[0].pipeline - r0.rows[0].pipeline, dexp = (want - base) / base * r0.rows[0].pipeline;
        T_OK(dsim * b > 0 && fabs(dsim - dexp) < 0.25 * fabs(dexp),
             "the total's pipeline mean moves by the shift");
        forecast_result_free(&r0);
        forecast_result_free(&r1);
    }
    store_close(s);
    unlink(path);
}

int main(void)
{
    char path[128];
    snprintf(path, sizeof path, "/tmp/prmcast-test-forecast-%d.db", (int)getpid());
    unlink(path);
    prm_error err;
    if (store_open(path, &s, &err) < 0) {
        printf("# %s\n", err.msg);
        return 1;
    }
    chdir("/nonexistent-root-for-dedup-defaults");   /* the rule's defaults when no file */
    partner("DIST1", "Gold", "EMEA", "distributor", NULL, "USD", "2024-01-01T00:00:00Z");
    partner("DIST2", "Gold", "EMEA", "distributor", NULL, "USD", "2024-01-01T00:00:00Z");
    partner("R1", "Silver", "EMEA", "reseller", "DIST1", "USD", "2024-01-01T00:00:00Z");
    partner("R2", "Gold", "NA", "reseller", NULL, "EUR", "2024-01-01T00:00:00Z");
    const char *fx1[] = { "currency", "EUR", "date", "2024-01-01", "rate", "1.10", NULL };
    put("fx", fx1);
    const char *fx2[] = { "currency", "EUR", "date", "2026-11-01", "rate", "1.20", NULL };
    put("fx", fx2);

    /* Two years of history: deals every 5 days, two in three won 40-100
     * days after registration, a quarter of them late. */
    char id[32];
    int64_t d0 = D("2024-06-01");
    for (int k = 0; k < 170; k++) {
        int64_t c = d0 + 5 * k, close = c + 40 + (k * 7) % 60;
        if (close >= D("2026-10-01")) continue;
        snprintf(id, sizeof id, "H%03d", k);
        deal(id, k % 2 ? "R1" : "R2", NULL, 1000 + 37 * (k % 11), k % 2 ? "USD" : "EUR", c, c + 45, "proposal",
             close, k % 3 ? "won" : "lost");
    }
    /* Won inside 2026-Q4 before the as-of date: a EUR deal (its close-day
     * rate is 1.20) and a reseller deal with a distributor's copy. */
    deal("W1", "R2", NULL, 2000, "EUR", D("2026-09-01"), D("2026-10-20"), "negotiation", D("2026-11-05"), "won");
    deal("DUPR", "R1", "Acme Corp", 10000, "USD", D("2026-10-01"), D("2026-10-25"), "negotiation",
         D("2026-10-20"), "won");
    deal("DUPD", "DIST1", "ACME corp.", 10200, "USD", D("2026-10-05"), D("2026-10-25"), "negotiation",
         D("2026-10-21"), "won");
    /* Open at the as-of date. */
    deal("O1", "R1", NULL, 5000, "USD", D("2026-09-15"), D("2026-12-10"), "proposal", 0, NULL);
    deal("O2", "R2", NULL, 4000, "EUR", D("2026-10-01"), D("2026-12-01"), "negotiation", 0, NULL);
    deal("O3", "R1", NULL, 3000, "USD", D("2026-06-01"), D("2026-12-20"), "qualified", 0, NULL);
    const char *q1[] = { "partner_id", "R1", "period", "2026-Q4", "amount", "9000", "currency", "USD",
                         "set_at", "2026-09-20T00:00:00Z", NULL };
    put("quota", q1);
    const char *c1[] = { "partner_id", "R1", "period", "2026-Q4", "category", "commit", "amount", "12000",
                         "currency", "USD", "submitted_at", "2026-10-01T00:00:00Z", NULL };
    put("commit", c1);
    const char *c2[] = { "partner_id", "R1", "period", "2026-Q4", "category", "commit", "amount", "15000",
                         "currency", "USD", "submitted_at", "2026-11-15T00:00:00Z", NULL };
    put("commit", c2);
    const char *c3[] = { "partner_id", "R1", "period", "2026-Q4", "category", "commit", "amount", "99000",
                         "currency", "USD", "submitted_at", "2026-11-25T00:00:00Z", NULL };
    put("commit", c3);

    /* The duplicate pair, matched with why. */
    world *w;
    if (world_load(s, &w, &err) < 0) { printf("# %s\n", err.msg); return 1; }
    dedup_rule rule;
    T_OK(dedup_rule_load(NULL, &rule, &err) == 0, "the dedup rule's defaults without a rule file");
    dedup_pair *pairs = NULL;
    size_t np = 0;
    T_OK(dedup_find(s, w, T("2026-11-20"), &rule, &pairs, &np, &err) == 0, "dedup_find runs");
    T_EQ_INT((int)np, 1, "one duplicate pair");
    if (np == 1) {
        T_EQ_STR(world_deal_id(w, pairs[0].keep), "DUPR", "the reseller's record is kept");
        T_EQ_STR(world_deal_id(w, pairs[0].drop), "DUPD", "the distributor's copy is dropped");
        T_OK(strstr(pairs[0].why, "same account") && strstr(pairs[0].why, "parent"), "and the pair says why");
    }
    free(pairs);
    rule.amount_pct = 1;
    dedup_find(s, w, T("2026-11-20"), &rule, &pairs, &np, &err);
    T_EQ_INT((int)np, 0, "a tighter amount threshold (1%, the pair is 2% apart) matches nothing");
    free(pairs);
    world_free(w);

    /* The forecast as of 2026-11-20. */
    forecast_result a, b, c;
    T_OK(run("2026-11-20", "region,tier", 7, &a) == 0, "forecast by region,tier");
    const fc_row *tot = &a.rows[0];
    T_EQ_STR(tot->segment, "total", "the first row is the total");
    /* closed: W1 at the rate of its close day (1.20) + DUPR, never DUPD */
    double closed = 2000 * 1.20 + 10000;
    T_NEAR(tot->closed, closed, 1e-6, "closed counts the double registration once, EUR at its close-day rate");
    T_EQ_INT((int)a.n_duplicates, 1, "the run reports the dropped copy");
    T_EQ_INT((int)a.n_open, 3, "three open deals simulated");
    T_OK(tot->p10 <= tot->p50 && tot->p50 <= tot->p90 && tot->p10 >= closed - 1e-6, "P10 <= P50 <= P90, above closed");
    T_NEAR(tot->commit, 15000, 1e-9, "commit: the latest revision submitted by the date (not the later one)");
    /* every simulation: the rows of a level sum to the total */
    double worst = 0, msum = 0, csum = 0;
    for (int x = 0; x < a.n_sims; x++) {
        double sum = 0;
        for (size_t i = 1; i < a.nrows; i++) sum += a.row_draws[i * (size_t)a.n_sims + (size_t)x];
        worst = fmax(worst, fabs(sum - a.total_draws[x]));
    }
    for (size_t i = 1; i < a.nrows; i++) {
        msum += a.rows[i].mean;
        csum += a.rows[i].closed;
    }
    T_OK(worst < 1e-6 * (1 + tot->mean), "every draw: the segments sum to the total");
    T_NEAR(msum, tot->mean, 1e-6 * tot->mean, "segment means sum to the total's");
    T_NEAR(csum, tot->closed, 1e-6, "segment closed sums to the total's");
    const fc_row *emea = row(&a, "region=EMEA,tier=Silver"), *na = row(&a, "region=NA,tier=Gold");
    T_OK(emea && na, "segments named key=value,key=value");
    if (emea) T_NEAR(emea->commit, 15000, 1e-9, "R1's commit rolls up into its segment");
    if (na) T_NEAR(na->closed, 2400, 1e-6, "the EUR deal's segment holds its converted amount");

    /* Pipeline FX as of the date: O2 (EUR 4000) at 1.20, the rate of 2026-11-01. */
    int seen = 0;
    for (size_t i = 0; i < a.ntop; i++)
        if (strcmp(a.top[i].id, "O2") == 0) {
            T_NEAR(a.top[i].amount, 4800, 1e-6, "an open EUR deal at the as-of rate");
            seen = 1;
        }
    T_OK(seen, "the open EUR deal is among the drivers");

    /* Reproducible with a seed, different without it. */
    T_OK(run("2026-11-20", "region,tier", 7, &b) == 0, "again with the same seed");
    T_OK(same(&a, &b), "a seeded run is reproducible bit for bit");
    forecast_result_free(&b);
    T_OK(run("2026-11-20", "region,tier", 8, &b) == 0, "another seed");
    T_OK(memcmp(a.total_draws, b.total_draws, sizeof(double) * (size_t)a.n_sims) != 0, "another seed, other draws");
    forecast_result_free(&b);

    /* Attainment from the same draws: R1's mean is its segment's closed +
     * pipeline (R1 is alone in region=EMEA,tier=Silver). */
    const fc_partner *r1 = NULL;
    for (size_t i = 0; i < a.npartners; i++)
        if (strcmp(a.partners[i].id, "R1") == 0) r1 = &a.partners[i];
    T_OK(r1 != NULL, "R1 has an attainment row");
    if (r1 && emea) {
        T_NEAR(r1->quota, 9000, 1e-9, "its quota for the period");
        T_NEAR(r1->mean, emea->closed + emea->pipeline, 1e-6 * (1 + r1->mean), "partner mean = its closed + simulated pipeline");
        T_NEAR(r1->expected_attainment, r1->mean / 9000, 1e-12, "expected attainment = mean / quota");
        T_OK(r1->p_attain == 1, "R1 closed 10000 against 9000: attained in every simulation");
    }

    /* No look-ahead: later history changes nothing as of 2026-11-20. */
    deal("LATE", "R1", NULL, 50000, "USD", D("2026-11-22"), D("2026-12-15"), "proposal", 0, NULL);
    deal("O1", "R1", NULL, 5000, "USD", D("2026-09-15"), D("2026-12-10"), "proposal", D("2026-11-28"), "won");
    const char *fx3[] = { "currency", "EUR", "date", "2026-11-25", "rate", "3.00", NULL };
    put("fx", fx3);
    partner("R1", "Platinum", "EMEA", "reseller", "DIST2", "USD", "2026-11-26T00:00:00Z");
    T_OK(run("2026-11-20", "region,tier", 7, &b) == 0, "the same date after later history");
    T_OK(same(&a, &b), "history after the as-of date leaves its forecast unchanged");
    forecast_result_free(&b);

    /* The distributor of the date: R1 under DIST1 before its move (Nov 26),
     * under DIST2 after. */
    T_OK(run("2026-11-20", "distributor", 7, &b) == 0, "by distributor before the move");
    const fc_row *d1 = row(&b, "distributor=DIST1"), *d2 = row(&b, "distributor=DIST2");
    T_OK(d1 && d1->open_deals == 2 && (!d2 || d2->open_deals == 0), "before: R1's deals under DIST1");
    T_OK(run("2026-11-30", "distributor", 7, &c) == 0, "by distributor after the move");
    d1 = row(&c, "distributor=DIST1");
    d2 = row(&c, "distributor=DIST2");
    T_OK(d2 && d2->open_deals >= 2 && (!d1 || d1->open_deals == 0), "after: R1's deals under DIST2");
    T_OK(!row(&c, "distributor=(direct)") || row(&c, "distributor=(direct)")->open_deals == 1,
         "R2 (no parent) is direct");
    forecast_result_free(&b);
    forecast_result_free(&c);
    forecast_result_free(&a);

    prm_error perr;
    int fy, q;
    T_OK(forecast_parse_period("2026-Q5", &fy, &q, &perr) < 0, "a bad period is refused");
    forecast_opts o;
    forecast_opts_init(&o);
    T_OK(forecast_parse_by("region,colour", &o, &perr) < 0 && strstr(perr.msg, "colour"), "an unknown key is named");

    store_close(s);
    unlink(path);
    censoring_tests();
    stage_rate_test();
    period_shift_test();
    first_quarter_runrate_test();
    return t_done();
}
