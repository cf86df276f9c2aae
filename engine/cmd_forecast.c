/* cmd_forecast.c - `prmcast forecast`, `prmcast attainment` and
 * `prmcast duplicates`: the channel forecast as of the engine clock
 * (forecast.h), partner attainment from the same simulations, and the
 * multi-tier duplicate pairs. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "forecast.h"
#include "json.h"
#include "store.h"
#include "store_forecast.h"
#include "timeutil.h"

int cmd_forecast(int argc, char **argv, const cli *c);
int cmd_attainment(int argc, char **argv, const cli *c);
int cmd_duplicates(int argc, char **argv, const cli *c);

/* CSV numbers: fixed two decimals; an undefined value is an empty cell. */
static void csv_num(double x)
{
    if (x == x) printf("%.2f", x);
}

static void csv_field(const char *s)
{
    if (strpbrk(s, ",\"\n\r")) {
        putchar('"');
        for (; *s; s++) {
            if (*s == '"') putchar('"');
            putchar(*s);
        }
        putchar('"');
    } else {
        cli_text(stdout, s, 0);
    }
}

static int common_opts(const cli *c, const char *cmd, int argc, char **argv, forecast_opts *o, int *csv,
                       int *at_risk, int *next)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        long x;
        prm_error err;
        if (strcmp(a, "--period") == 0) {
            if (!v) return cli_usage(c, cmd, "--period needs a quarter like 2026-Q4");
            if (forecast_parse_period(v, &o->fy, &o->q, &err) < 0) return cli_usage(c, cmd, "%s", err.msg);
            i++;
        } else if (strcmp(a, "--by") == 0 && csv) {
            if (!v) return cli_usage(c, cmd, "--by needs keys like region,tier");
            if (forecast_parse_by(v, o, &err) < 0) return cli_usage(c, cmd, "%s", err.msg);
            i++;
        } else if (strcmp(a, "--sims") == 0) {
            if (cli_int(c, cmd, a, v, 100, 1000000, &x) < 0) return EXIT_USAGE;
            o->sims = (int)x;
            i++;
        } else if (strcmp(a, "--seed") == 0) {
            if (cli_int(c, cmd, a, v, 0, 1L << 62, &x) < 0) return EXIT_USAGE;
            o->seed = (uint64_t)x;
            i++;
        } else if (strcmp(a, "--model") == 0) {
            if (cli_int(c, cmd, a, v, 1, 1L << 40, &x) < 0) return EXIT_USAGE;
            o->model_id = x;
            i++;
        } else if (strcmp(a, "--no-dedup") == 0) {
            o->dedup = 0;
        } else if (strcmp(a, "--no-bias-correction") == 0) {
            o->bias_correct = 0;
        } else if (strcmp(a, "--next") == 0 && next) {
            *next = 1;
        } else if (strcmp(a, "--csv") == 0 && csv) {
            *csv = 1;
        } else if (strcmp(a, "--at-risk") == 0 && at_risk) {
            *at_risk = 1;
        } else {
            return cli_usage(c, cmd, "%s '%s'", a[0] == '-' ? "unknown option" : "unexpected argument", a);
        }
    }
    return 0;
}

static void row_json(json *j, const char *period, const fc_row *r)
{
    json_obj(j);
    json_key(j, "period"); json_str(j, period);
    json_key(j, "segment"); json_str(j, r->segment);
    json_key(j, "p10"); json_num_fmt(j, r->p10, "%.2f");
    json_key(j, "p50"); json_num_fmt(j, r->p50, "%.2f");
    json_key(j, "p90"); json_num_fmt(j, r->p90, "%.2f");
    json_key(j, "mean"); json_num_fmt(j, r->mean, "%.2f");
    json_key(j, "sd"); json_num_fmt(j, r->sd, "%.2f");
    json_key(j, "closed"); json_num_fmt(j, r->closed, "%.2f");
    json_key(j, "pipeline"); json_num_fmt(j, r->pipeline, "%.2f");
    json_key(j, "unregistered"); json_num_fmt(j, r->unregistered, "%.2f");
    json_key(j, "commit"); json_num_fmt(j, r->commit, "%.2f");
    json_key(j, "open_deals"); json_int(j, (int64_t)r->open_deals);
    json_end(j);
}

static int run(const cli *c, const char *cmd, forecast_opts *o, forecast_result *r)
{
    prm_error err;
    store *s = cli_store(c, 0, &err);
    if (!s) return cli_fail(c, cmd, "%s", err.msg);
    o->as_of = clock_now();
    /* An empty store (or a date before its first deal) is no data, said
     * as such (exit 1), not a table of zeros nor an internal message. */
    char at[21];
    instant_iso(o->as_of, at);
    int any, krc = store_deals_known(s, at, &any, &err);
    if (krc < 0 || !any) {
        store_close(s);
        if (krc < 0) return cli_fail(c, cmd, "%s", err.msg);
        return cli_fail(c, cmd, "no data: no deal known as of %s (ingest first)", at);
    }
    cli_progress(c, "forecasting...");
    int rc = forecast_run(s, NULL, o, r, &err);
    store_close(s);
    if (rc < 0) return cli_fail(c, cmd, "%s", err.msg);
    return EXIT_OK;
}

int cmd_forecast(int argc, char **argv, const cli *c)
{
    forecast_opts o;
    forecast_opts_init(&o);
    int csv = 0;
    int u = common_opts(c, "forecast", argc, argv, &o, &csv, NULL, NULL);
    if (u) return u;
    if (csv && c->json) return cli_usage(c, "forecast", "--json and --csv exclude each other");
    forecast_result r;
    int rc = run(c, "forecast", &o, &r);
    if (rc) return rc;
    /* A period the data says nothing about (before the program, say):
     * nothing closed, no open deal that can close in it, no run-rate.
     * A clear notice and exit 1, not a table of zeros. */
    const fc_row *t0 = &r.rows[0];
    if (t0->closed == 0 && t0->pipeline == 0 && t0->unregistered == 0 && t0->p90 == 0) {
        char period[sizeof r.period], as_of[sizeof r.as_of];
        snprintf(period, sizeof period, "%s", r.period);
        snprintf(as_of, sizeof as_of, "%s", r.as_of);
        forecast_result_free(&r);
        return cli_fail(c, "forecast", "no data for %s as of %s: nothing closed in it, no open deal can close"
                        " in it, no past quarter gives a run-rate", period, as_of);
    }
    if (csv) {
        printf("period,segment,p10,p50,p90,mean,closed,pipeline,unregistered,commit\n");
        for (size_t i = 0; i < r.nrows; i++) {
            const fc_row *x = &r.rows[i];
            printf("%s,", r.period);
            csv_field(x->segment);
            double v[8] = { x->p10, x->p50, x->p90, x->mean, x->closed, x->pipeline, x->unregistered, x->commit };
            for (int k = 0; k < 8; k++) {
                putchar(',');
                csv_num(v[k]);
            }
            putchar('\n');
        }
    } else if (c->json) {
        json j;
        json_init(&j);
        json_obj(&j);
        json_key(&j, "period"); json_str(&j, r.period);
        json_key(&j, "as_of"); json_str(&j, r.as_of);
        json_key(&j, "currency"); json_str(&j, r.base);
        json_key(&j, "probabilities"); json_str(&j, r.model);
        json_key(&j, "sims"); json_int(&j, r.n_sims);
        json_key(&j, "seed"); json_int(&j, (int64_t)r.seed);
        json_key(&j, "open_deals"); json_int(&j, (int64_t)r.n_open);
        json_key(&j, "closed_deals"); json_int(&j, (int64_t)r.n_closed);
        json_key(&j, "duplicates"); json_int(&j, (int64_t)r.n_duplicates);
        json_key(&j, "period_effect_sd"); json_num_fmt(&j, r.global_sd, "%.4f");
        json_key(&j, "effect_periods"); json_int(&j, r.effect_periods);
        json_key(&j, "past_bias_logit"); json_num_fmt(&j, r.global_bias, "%.4f");
        json_key(&j, "bias_applied_logit"); json_num_fmt(&j, r.bias_applied, "%.4f");
        json_key(&j, "close_shift_logit"); json_num_fmt(&j, r.close_shift, "%.4f");
        /* P(close inside the period | win)'s recalibration on past periods at
         * the same offset: 15 logit offsets, stage (registered .. negotiation)
         * x amount tercile; null for a program without such a period yet */
        json_key(&j, "close_timing_offsets");
        if (r.close_recalibrated) {
            json_arr(&j);
            for (int k = 0; k < 15; k++) json_num_fmt(&j, r.close_offset[k], "%.4f");
            json_end(&j);
        } else {
            json_null(&j);
        }
        json_key(&j, "rows");
        json_arr(&j);
        for (size_t i = 0; i < r.nrows; i++) row_json(&j, r.period, &r.rows[i]);
        json_end(&j);
        json_key(&j, "top_deals");
        json_arr(&j);
        for (size_t i = 0; i < r.ntop; i++) {
            const fc_deal *d = &r.top[i];
            json_obj(&j);
            json_key(&j, "deal"); json_str(&j, d->id);
            json_key(&j, "partner"); json_str(&j, d->partner);
            json_key(&j, "amount"); json_num_fmt(&j, d->amount, "%.2f");
            json_key(&j, "p_win"); json_num_fmt(&j, d->p_win, "%.4f");
            json_key(&j, "p_close_in_period"); json_num_fmt(&j, d->p_close, "%.4f");
            json_key(&j, "expected"); json_num_fmt(&j, d->mean, "%.2f");
            json_key(&j, "variance_share"); json_num_fmt(&j, d->share, "%.4f");
            json_end(&j);
        }
        json_end(&j);
        json_key(&j, "top_partners");
        json_arr(&j);
        for (size_t i = 0; i < r.ntop_partners; i++) {
            const fc_partner *p = &r.top_partners[i];
            json_obj(&j);
            json_key(&j, "partner"); json_str(&j, p->id);
            json_key(&j, "expected"); json_num_fmt(&j, p->mean, "%.2f");
            json_key(&j, "closed"); json_num_fmt(&j, p->closed, "%.2f");
            json_key(&j, "commit"); json_num_fmt(&j, p->commit, "%.2f");
            json_key(&j, "variance_share"); json_num_fmt(&j, p->share, "%.4f");
            json_end(&j);
        }
        json_end(&j);
        json_end(&j);
        printf("%s\n", json_cstr(&j));
        json_free(&j);
    } else {
        printf("forecast %s as of %s in %s (%d simulations, seed %llu; P(win): %s)\n", r.period, r.as_of,
               r.base, r.n_sims, (unsigned long long)r.seed, r.model);
        printf("  %zu open deals, %zu won so far, %zu duplicate registration(s) dropped;"
               " period effect sd %.3f from %d past periods\n\n",
               r.n_open, r.n_closed, r.n_duplicates, r.global_sd, r.effect_periods);
        printf("%-36s %12s %12s %12s %12s %12s %12s %12s %12s\n", "segment", "P10", "P50", "P90", "mean",
               "closed", "pipeline", "unregistered", "commit");
        for (size_t i = 0; i < r.nrows; i++) {
            const fc_row *x = &r.rows[i];
            cli_text(stdout, x->segment, 36);
            printf(" %12.0f %12.0f %12.0f %12.0f %12.0f %12.0f %12.0f ", x->p10, x->p50, x->p90, x->mean,
                   x->closed, x->pipeline, x->unregistered);
            if (x->commit == x->commit) printf("%12.0f\n", x->commit);
            else printf("%12s\n", "-");
        }
        printf("\ndeals that move the number (share of the total's variance):\n");
        for (size_t i = 0; i < r.ntop && i < 5; i++) {
            const fc_deal *d = &r.top[i];
            printf("  ");
            cli_text(stdout, d->id, 14);
            printf(" partner ");
            cli_text(stdout, d->partner[0] ? d->partner : "-", 8);
            printf(" amount %11.0f  P(win) %.2f  P(in period) %.2f  share %4.1f%%\n", d->amount, d->p_win,
                   d->p_close, 100 * d->share);
        }
        printf("partners that move the number:\n");
        for (size_t i = 0; i < r.ntop_partners && i < 5; i++) {
            const fc_partner *p = &r.top_partners[i];
            printf("  ");
            cli_text(stdout, p->id, 14);
            printf(" expected %11.0f  commit ", p->mean);
            if (p->commit == p->commit) printf("%11.0f", p->commit);
            else printf("%11s", "-");
            printf("  share %4.1f%%\n", 100 * p->share);
        }
    }
    forecast_result_free(&r);
    return EXIT_OK;
}

int cmd_attainment(int argc, char **argv, const cli *c)
{
    forecast_opts o;
    forecast_opts_init(&o);
    int at_risk = 0;
    int u = common_opts(c, "attainment", argc, argv, &o, NULL, &at_risk, NULL);
    if (u) return u;
    forecast_result r;
    int rc = run(c, "attainment", &o, &r);
    if (rc) return rc;
    json j;
    json_init(&j);
    if (c->json) {
        json_obj(&j);
        json_key(&j, "period"); json_str(&j, r.period);
        json_key(&j, "as_of"); json_str(&j, r.as_of);
        json_key(&j, "partners");
        json_arr(&j);
    } else {
        printf("attainment %s as of %s (%s; registered deals: closed + simulated pipeline)\n", r.period,
               r.as_of, r.base);
        printf("%-10s %12s %12s %12s %9s %9s  %s\n", "partner", "quota", "closed", "expected", "attain",
               "P(>=100%)", at_risk ? "why" : "");
    }
    size_t shown = 0;
    for (size_t i = 0; i < r.npartners; i++) {
        const fc_partner *p = &r.partners[i];
        if (!(p->quota == p->quota)) continue;
        if (at_risk && !p->at_risk) continue;
        shown++;
        if (c->json) {
            json_obj(&j);
            json_key(&j, "partner"); json_str(&j, p->id);
            json_key(&j, "quota"); json_num_fmt(&j, p->quota, "%.2f");
            json_key(&j, "closed"); json_num_fmt(&j, p->closed, "%.2f");
            json_key(&j, "expected"); json_num_fmt(&j, p->mean, "%.2f");
            json_key(&j, "expected_attainment"); json_num_fmt(&j, p->expected_attainment, "%.4f");
            json_key(&j, "p_attain"); json_num_fmt(&j, p->p_attain, "%.4f");
            json_key(&j, "commit"); json_num_fmt(&j, p->commit, "%.2f");
            json_key(&j, "at_risk"); json_bool(&j, p->at_risk);
            json_key(&j, "why"); json_str(&j, p->why);
            json_end(&j);
        } else {
            cli_text(stdout, p->id, 10);
            printf(" %12.0f %12.0f %12.0f %8.0f%% %9.2f  ", p->quota, p->closed, p->mean,
                   100 * p->expected_attainment, p->p_attain);
            if (p->at_risk) cli_text(stdout, p->why, 0);
            putchar('\n');
        }
    }
    if (c->json) {
        json_end(&j);
        json_end(&j);
        printf("%s\n", json_cstr(&j));
    } else {
        printf("%zu partner(s)%s\n", shown, at_risk ? " at risk" : " with a quota for the period");
    }
    json_free(&j);
    forecast_result_free(&r);
    return EXIT_OK;
}

int cmd_duplicates(int argc, char **argv, const cli *c)
{
    const char *rule = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--rule") == 0 && i + 1 < argc) rule = argv[++i];
        else return cli_usage(c, "duplicates", "%s '%s'", argv[i][0] == '-' ? "unknown option" : "unexpected argument", argv[i]);
    }
    prm_error err;
    store *s = cli_store(c, 0, &err);
    if (!s) return cli_fail(c, "duplicates", "%s", err.msg);
    world *w = NULL;
    dedup_rule dr;
    dedup_pair *pairs = NULL;
    size_t n = 0;
    int64_t T = clock_now();
    if (dedup_rule_load(rule, &dr, &err) < 0 || world_load(s, &w, &err) < 0 ||
        dedup_find(s, w, T, &dr, &pairs, &n, &err) < 0) {
        world_free(w);
        store_close(s);
        return cli_fail(c, "duplicates", "%s", err.msg);
    }
    json j;
    json_init(&j);
    if (c->json) {
        json_obj(&j);
        json_key(&j, "pairs");
        json_arr(&j);
    } else {
        printf("%-16s %-16s  why (the distributor's copy is dropped; the reseller's record counts)\n",
               "kept (reseller)", "dropped (distr.)");
    }
    for (size_t i = 0; i < n; i++) {
        const char *keep = world_deal_id(w, pairs[i].keep), *drop = world_deal_id(w, pairs[i].drop);
        if (c->json) {
            json_obj(&j);
            json_key(&j, "kept"); json_str(&j, keep);
            json_key(&j, "dropped"); json_str(&j, drop);
            json_key(&j, "amount_diff_pct"); json_num_fmt(&j, pairs[i].amount_diff_pct, "%.2f");
            json_key(&j, "days_apart"); json_int(&j, pairs[i].days_apart);
            json_key(&j, "why"); json_str(&j, pairs[i].why);
            json_end(&j);
        } else {
            cli_text(stdout, keep, 16);
            putchar(' ');
            cli_text(stdout, drop, 16);
            printf("  %s\n", pairs[i].why);
        }
    }
    if (c->json) {
        json_end(&j);
        json_end(&j);
        printf("%s\n", json_cstr(&j));
    } else {
        printf("%zu pair(s)\n", n);
    }
    json_free(&j);
    free(pairs);
    world_free(w);
    store_close(s);
    return EXIT_OK;
}

/* MAPE/WAPE-style summaries of the backtest points of one horizon (h < 0: all). */
typedef struct bt_sum {
    double ape, bias, cover, pin, seg_err, seg_act, seg_cov, seg_n, n;
    double commit_ape, commit_n, bc_ape, bc_n, sw_ape, sw_n, sn_ape, sn_n;
    double sn_model_ape;       /* the forecast's APE over the seasonal naive's points */
    double snm_ape, snm_model_ape, snm_n;   /* the same over those past the ramp-up */
} bt_sum;

static void bt_add(bt_sum *s, const backtest_point *p)
{
    if (!(p->actual > 0)) return;
    s->n++;
    s->ape += fabs(p->p50 - p->actual) / p->actual;
    s->bias += (p->p50 - p->actual) / p->actual;
    s->cover += p->actual >= p->p10 && p->actual <= p->p90;
    s->pin += p->pinball;
    s->seg_err += p->seg_abs_err;
    s->seg_act += p->seg_actual;
    s->seg_cov += (double)p->seg_covered;
    s->seg_n += (double)p->seg_n;
    if (p->commit == p->commit) { s->commit_ape += fabs(p->commit - p->actual) / p->actual; s->commit_n++; }
    if (p->commit_bc == p->commit_bc) { s->bc_ape += fabs(p->commit_bc - p->actual) / p->actual; s->bc_n++; }
    s->sw_ape += fabs(p->stage_weighted - p->actual) / p->actual;
    s->sw_n++;
    if (p->snaive == p->snaive) {
        s->sn_ape += fabs(p->snaive - p->actual) / p->actual;
        s->sn_model_ape += fabs(p->p50 - p->actual) / p->actual;
        s->sn_n++;
        if (p->snaive_mature) {
            s->snm_ape += fabs(p->snaive - p->actual) / p->actual;
            s->snm_model_ape += fabs(p->p50 - p->actual) / p->actual;
            s->snm_n++;
        }
    }
}

static void pct(double num, double den)
{
    if (den > 0) printf(" %8.1f%%", 100 * num / den);
    else printf(" %9s", "-");
}

int cmd_backtest(int argc, char **argv, const cli *c);

int cmd_backtest(int argc, char **argv, const cli *c)
{
    backtest_opts o;
    backtest_opts_init(&o);
    prm_error err;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        long x;
        if ((strcmp(a, "--from") == 0 || strcmp(a, "--to") == 0) && v) {
            int fy, q;
            if (forecast_parse_period(v, &fy, &q, &err) < 0) return cli_usage(c, "backtest", "%s", err.msg);
            if (a[2] == 'f') { o.from_fy = fy; o.from_q = q; } else { o.to_fy = fy; o.to_q = q; }
            i++;
        } else if (strcmp(a, "--weeks-before-end") == 0 && v) {
            o.nweeks = 0;
            char buf[128];
            snprintf(buf, sizeof buf, "%s", v);
            for (char *sv = NULL, *t = strtok_r(buf, ",", &sv); t; t = strtok_r(NULL, ",", &sv)) {
                if (o.nweeks == 8) return cli_usage(c, "backtest", "at most 8 horizons");
                if (cli_int(c, "backtest", a, t, 0, 13, &x) < 0) return EXIT_USAGE;
                o.weeks[o.nweeks++] = (int)x;
            }
            i++;
        } else if (strcmp(a, "--sims") == 0) {
            if (cli_int(c, "backtest", a, v, 100, 100000, &x) < 0) return EXIT_USAGE;
            o.sims = (int)x;
            i++;
        } else if (strcmp(a, "--label-days") == 0) {
            if (cli_int(c, "backtest", a, v, 0, 3650, &x) < 0) return EXIT_USAGE;
            o.label_days = (int)x;
            i++;
        } else if (strcmp(a, "--no-retrain") == 0) {
            o.retrain = 0;
        } else if (strcmp(a, "--kind") == 0 && v) {
            o.kind = v;
            i++;
        } else {
            return cli_usage(c, "backtest", "%s '%s'", a[0] == '-' ? "unknown option" : "unexpected argument", a);
        }
    }
    store *s = cli_store(c, 0, &err);
    if (!s) return cli_fail(c, "backtest", "%s", err.msg);
    /* The quarters asked for are a usage matter, said before any work: in
     * order, and begun by now (a backtest compares forecasts as of past
     * dates with what closed; a quarter not yet begun has neither). */
    int fsm;
    if (store_fiscal_start(s, &fsm, &err) < 0) {
        store_close(s);
        return cli_fail(c, "backtest", "%s", err.msg);
    }
    int k0 = o.from_fy * 4 + o.from_q - 1, k1 = o.to_fy * 4 + o.to_q - 1;
    int64_t now = clock_now(), now_day = now / 86400 - (now % 86400 < 0);
    const char *late = fiscal_quarter_start(o.from_fy, o.from_q, fsm) > now_day ? "--from"
                       : fiscal_quarter_start(o.to_fy, o.to_q, fsm) > now_day ? "--to" : NULL;
    if (k1 < k0 || k1 - k0 > 40 || late) {
        store_close(s);
        char today[11];
        date_iso(now, today);
        if (late)
            return cli_usage(c, "backtest", "%s %d-Q%d has not begun as of %s: a backtest scores forecasts of"
                             " past quarters against what closed", late, late[2] == 'f' ? o.from_fy : o.to_fy,
                             late[2] == 'f' ? o.from_q : o.to_q, today);
        return cli_usage(c, "backtest", "--from must be before --to, at most 40 quarters apart");
    }
    backtest_point *p;
    size_t n;
    backtest_calib cal;
    cli_progress(c, "backtesting...");
    int rc = forecast_backtest(s, &o, &p, &n, &cal, &err);
    store_close(s);
    if (rc < 0) return cli_fail(c, "backtest", "%s", err.msg);
    if (c->json) {
        json j;
        json_init(&j);
        json_arr(&j);
        for (size_t i = 0; i < n; i++) {
            json_obj(&j);
            json_key(&j, "period"); json_str(&j, p[i].period);
            json_key(&j, "as_of"); json_str(&j, p[i].as_of);
            json_key(&j, "weeks_before_end"); json_int(&j, p[i].weeks);
            json_key(&j, "actual"); json_num_fmt(&j, p[i].actual, "%.2f");
            json_key(&j, "p10"); json_num_fmt(&j, p[i].p10, "%.2f");
            json_key(&j, "p50"); json_num_fmt(&j, p[i].p50, "%.2f");
            json_key(&j, "p90"); json_num_fmt(&j, p[i].p90, "%.2f");
            json_key(&j, "commit"); json_num_fmt(&j, p[i].commit, "%.2f");
            json_key(&j, "commit_bias_corrected"); json_num_fmt(&j, p[i].commit_bc, "%.2f");
            json_key(&j, "stage_weighted"); json_num_fmt(&j, p[i].stage_weighted, "%.2f");
            json_key(&j, "seasonal_naive"); json_num_fmt(&j, p[i].snaive, "%.2f");
            json_key(&j, "seasonal_naive_past_ramp_up"); json_int(&j, p[i].snaive_mature);
            json_key(&j, "segment_wape"); json_num_fmt(&j, p[i].seg_actual > 0 ? p[i].seg_abs_err / p[i].seg_actual : NAN, "%.4f");
            json_key(&j, "calibration"); json_obj(&j);
            json_key(&j, "resolved_deals"); json_int(&j, (int64_t)p[i].cal_n_win);
            json_key(&j, "mean_p_win"); json_num_fmt(&j, p[i].cal_p_win, "%.4f");
            json_key(&j, "mean_p_win_before_shift"); json_num_fmt(&j, p[i].cal_p_win_raw, "%.4f");
            json_key(&j, "logit_shift"); json_num_fmt(&j, p[i].bias_applied, "%.4f");
            json_key(&j, "won"); json_num_fmt(&j, p[i].cal_won, "%.4f");
            json_key(&j, "ece_win"); json_num_fmt(&j, p[i].cal_ece_win, "%.4f");
            json_key(&j, "period_deals"); json_int(&j, (int64_t)p[i].cal_n_period);
            json_key(&j, "mean_p_period"); json_num_fmt(&j, p[i].cal_p_period, "%.4f");
            json_key(&j, "won_in_period"); json_num_fmt(&j, p[i].cal_in, "%.4f");
            json_key(&j, "ece_period"); json_num_fmt(&j, p[i].cal_ece_period, "%.4f");
            json_end(&j);
            json_end(&j);
        }
        json_end(&j);
        printf("%s\n", json_cstr(&j));
        json_free(&j);
        free(p);
        return EXIT_OK;
    }
    printf("%-8s %-10s %3s %12s %12s %12s %12s %12s %12s %12s %12s\n", "period", "as of", "wk", "actual", "P10",
           "P50", "P90", "commit", "commit(bc)", "stage-wtd", "snaive");
    for (size_t i = 0; i < n; i++) {
        printf("%-8s %-10s %3d", p[i].period, p[i].as_of, p[i].weeks);
        double v[8] = { p[i].actual, p[i].p10, p[i].p50, p[i].p90, p[i].commit, p[i].commit_bc,
                        p[i].stage_weighted, p[i].snaive };
        for (int k = 0; k < 8; k++) {
            if (v[k] == v[k]) printf(" %12.0f", v[k]);
            else printf(" %12s", "-");
        }
        printf("%s\n", p[i].model_id < 0 ? "  (win hazard: too little history to train)" : "");
    }
    printf("\n%-10s %9s %9s %9s %9s %9s %9s | MAPE: %9s %9s %9s %9s\n", "horizon", "MAPE", "bias", "cover", "pinball",
           "segWAPE", "segCover", "commit", "commit-bc", "stage-wtd", "snaive");
    for (int h = -1; h < o.nweeks; h++) {
        bt_sum sm;
        memset(&sm, 0, sizeof sm);
        for (size_t i = 0; i < n; i++)
            if (h < 0 || p[i].weeks == o.weeks[h]) bt_add(&sm, &p[i]);
        if (h < 0) printf("%-10s", "all");
        else printf("%2d weeks  ", o.weeks[h]);
        pct(sm.ape, sm.n);
        pct(sm.bias, sm.n);
        pct(sm.cover, sm.n);
        pct(sm.pin, sm.n);
        pct(sm.seg_err, sm.seg_act);
        pct(sm.seg_cov, sm.seg_n);
        printf(" |      ");
        pct(sm.commit_ape, sm.commit_n);
        pct(sm.bc_ape, sm.bc_n);
        pct(sm.sw_ape, sm.sw_n);
        pct(sm.sn_ape, sm.sn_n);
        printf("\n");
    }
    printf("(MAPE/bias/cover/pinball: the total; segWAPE/segCover: %s segments; cover: P10 <= actual <= P90)\n",
           "the backtest level's");
    /* The baselines are scored where they exist; seasonal naive beside
     * the forecast over the same points, the pair the "2x lower" target
     * compares where there are no commits. */
    printf("seasonal naive's points (a year-earlier quarter the program ran through; of them past its ramp-up):\n");
    for (int h = 0; h < o.nweeks; h++) {
        bt_sum sm;
        memset(&sm, 0, sizeof sm);
        for (size_t i = 0; i < n; i++)
            if (p[i].weeks == o.weeks[h]) bt_add(&sm, &p[i]);
        printf("  %2d weeks  %.0f points: MAPE", o.weeks[h], sm.sn_n);
        pct(sm.sn_model_ape, sm.sn_n);
        printf(" vs snaive");
        pct(sm.sn_ape, sm.sn_n);
        printf(";  %.0f points: MAPE", sm.snm_n);
        pct(sm.snm_model_ape, sm.snm_n);
        printf(" vs snaive");
        pct(sm.snm_ape, sm.snm_n);
        printf("\n");
    }
    printf("\ncalibration over every point's open deals (10 bins):\n"
           "  P(win)                     ECE %.4f  mean p %.3f  won %.3f  (%zu resolved deals)\n"
           "  P(won inside the period)   ECE %.4f  mean p %.3f  won %.3f  (%zu deals)\n",
           cal.ece_win, cal.mean_p_win, cal.rate_win, cal.n_win, cal.ece_period, cal.mean_p_period,
           cal.rate_period, cal.n_period);
    printf("  P(win) before the logit shift ECE %.4f  mean p %.3f  (the deal model's, anchored; the forecast\n"
           "                             simulates with it: the past periods' shift is on P(close))\n",
           cal.ece_win_raw, cal.mean_p_win_raw);
    const char *what[2] = { "P(win)", "P(won inside the period)" };
    for (int k = 0; k < 2; k++) {
        printf("reliability, %s:  bin  deals  mean p  won\n", what[k]);
        for (int b = 0; b < BACKTEST_REL_BINS; b++) {
            const cls_bin *x = &cal.rel[k][b];
            if (x->count) printf("  %.1f-%.1f %8zu  %.3f  %.3f\n", x->lo, x->hi, x->count, x->mean_p, x->mean_y);
        }
    }
    printf("calibration by point: P(win) mean p (before the logit shift, the past periods' shift carried on"
           " P(close)), won, ECE | P(won inside the period) mean p, won, ECE\n");
    for (size_t i = 0; i < n; i++)
        printf("  %-8s %-10s %3d %6zu  %.3f (%.3f %+.2f)  %.3f  %.3f | %.3f  %.3f  %.3f%s\n", p[i].period,
               p[i].as_of, p[i].weeks, p[i].cal_n_win, p[i].cal_p_win, p[i].cal_p_win_raw, p[i].bias_applied,
               p[i].cal_won, p[i].cal_ece_win, p[i].cal_p_period, p[i].cal_in, p[i].cal_ece_period,
               p[i].model_id < 0 ? "  (win hazard)" : "");
    free(p);
    return EXIT_OK;
}
