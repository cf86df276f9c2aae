/* test_ts.c - the time-series core (ts.h): parameter recovery from simulated
 * ETS series, exact answers on constants and lines, agreement with R's
 * forecast package on classic series (fixtures, no R needed), and every
 * degenerate input of docs/TIMESERIES.md.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tap.h"
#include "ts.h"
#include "ts_int.h"

#include "../fixtures/ts/r_fixtures.h"

/* A small deterministic normal generator for the simulations (independent of
 * the one in the engine, so that a change there cannot hide a bug). */
static unsigned long long lcg = 12345;
static double unif(void)
{
    lcg = lcg * 6364136223846793005ULL + 1442695040888963407ULL;
    return ((lcg >> 11) + 0.5) / 9007199254740992.0;
}
static double gauss(void)
{
    return sqrt(-2.0 * log(unif())) * cos(2.0 * M_PI * unif());
}

/* Simulates an additive-error ETS series: level, trend (damped by phi),
 * additive season of period m (m = 1: none). */
static void sim_additive(double *y, int n, double alpha, double beta, double gamma, double phi,
                         double l, double b, int m, const double *s0, double sigma)
{
    double s[24] = {0};
    for (int j = 0; j < m && s0; j++)
        s[j] = s0[j];
    for (int t = 0; t < n; t++) {
        int p = t % m;
        double e = sigma * gauss();
        double season = s0 ? s[p] : 0.0;
        y[t] = l + phi * b + season + e;
        double lold = l;
        l = lold + phi * b + alpha * e;
        b = phi * b + beta * e;
        if (s0)
            s[p] = season + gamma * e;
    }
}

static int finite_result(const ts_result *r)
{
    for (int k = 0; k < r->h; k++) {
        if (!isfinite(r->mean[k]))
            return 0;
        for (int j = 0; j < r->nlevels; j++)
            if (!isfinite(ts_lower(r, j)[k]) || !isfinite(ts_upper(r, j)[k]) ||
                ts_lower(r, j)[k] > r->mean[k] + 1e-9 * fabs(r->mean[k]) ||
                ts_upper(r, j)[k] < r->mean[k] - 1e-9 * fabs(r->mean[k]))
                return 0;
    }
    return 1;
}

static double max_rel_diff(const double *a, const double *b, int n)
{
    double d = 0.0;
    for (int i = 0; i < n; i++)
        d = fmax(d, fabs(a[i] - b[i]) / fabs(b[i]));
    return d;
}

static void test_qnorm(void)
{
    T_NEAR(ts_qnorm(0.975), 1.959963984540054, 1e-12, "qnorm(0.975)");
    T_NEAR(ts_qnorm(0.9), 1.2815515655446004, 1e-12, "qnorm(0.9)");
    T_NEAR(ts_qnorm(0.5), 0.0, 1e-15, "qnorm(0.5)");
    T_NEAR(ts_qnorm(1e-10), -6.361340902404056, 1e-9, "qnorm(1e-10)");
}

static void test_recovery(void)
{
    prm_error err;
    ts_ets fit;
    double y[600];

    lcg = 1;
    sim_additive(y, 500, 0.3, 0, 0, 1.0, 100.0, 0.0, 1, NULL, 2.0);
    T_OK(ts_ets_fit(y, 500, 1, "ANN", 0, &fit, &err) == 0, "ANN fit");
    T_NEAR(fit.alpha, 0.3, 0.06, "ANN: alpha recovered");
    T_NEAR(sqrt(fit.sigma2), 2.0, 0.2, "ANN: sigma recovered");

    lcg = 2;
    sim_additive(y, 500, 0.5, 0.1, 0, 1.0, 50.0, 1.0, 1, NULL, 1.0);
    T_OK(ts_ets_fit(y, 500, 1, "AAN", 0, &fit, &err) == 0, "AAN fit");
    T_NEAR(fit.alpha, 0.5, 0.1, "AAN: alpha recovered");
    T_NEAR(fit.beta, 0.1, 0.05, "AAN: beta recovered");

    lcg = 3;
    double s4[4] = {10.0, -5.0, -15.0, 10.0};
    sim_additive(y, 480, 0.2, 0, 0.3, 1.0, 200.0, 0.0, 4, s4, 2.0);
    T_OK(ts_ets_fit(y, 480, 4, "ANA", 0, &fit, &err) == 0, "ANA fit");
    T_NEAR(fit.alpha, 0.2, 0.07, "ANA: alpha recovered");
    T_NEAR(fit.gamma, 0.3, 0.1, "ANA: gamma recovered");
    /* automatic selection must see the seasonality */
    T_OK(ts_ets_fit(y, 480, 4, "ZZZ", 0, &fit, &err) == 0 && fit.season != 'N',
         "auto-ETS selects a seasonal model for a seasonal series");

    lcg = 4;
    sim_additive(y, 500, 0.3, 0, 0, 1.0, 100.0, 0.0, 1, NULL, 2.0);
    T_OK(ts_ets_fit(y, 500, 1, "ZZZ", 0, &fit, &err) == 0 && fit.trend == 'N' &&
             fit.season == 'N', "auto-ETS selects a model without trend or season for a level series");

    /* damped trend: phi within its region, forecasts flatten */
    lcg = 5;
    sim_additive(y, 400, 0.4, 0.1, 0, 0.9, 100.0, 2.0, 1, NULL, 0.5);
    T_OK(ts_ets_fit(y, 400, 1, "AAdN", 0, &fit, &err) == 0, "AAdN fit");
    T_OK(fit.phi >= 0.8 && fit.phi <= 0.98 && fit.damped, "AAdN: phi in [0.8, 0.98]");
}

static void test_exact(void)
{
    prm_error err;
    ts_options o;
    ts_result r;
    double y[60];
    ts_options_init(&o);
    o.h = 6;
    for (int i = 0; i < 40; i++)
        y[i] = 7.5;
    for (int mth = TS_AUTO; mth <= TS_COMBO; mth++) {
        o.method = (ts_method)mth;
        int ok = ts_forecast(y, 40, &o, &r, &err) == 0;
        char name[80];
        snprintf(name, sizeof name, "constant series, method %s: constant forecast",
                 ts_method_name(o.method));
        T_OK(ok && r.mean[0] == 7.5 && r.mean[5] == 7.5 && ts_lower(&r, 1)[5] == 7.5 &&
                 ts_upper(&r, 1)[5] == 7.5, name);
        if (ok)
            ts_result_free(&r);
    }
    /* a straight line: drift exactly, ETS(A,A,N) to 1e-3 */
    for (int i = 0; i < 40; i++)
        y[i] = 10.0 + 2.0 * i;
    o.method = TS_DRIFT;
    T_OK(ts_forecast(y, 40, &o, &r, &err) == 0, "drift on a line");
    T_NEAR(r.mean[5], 10.0 + 2.0 * 45, 1e-9, "drift continues the line");
    ts_result_free(&r);
    o.method = TS_ETS;
    o.ets_model = "AAN";
    T_OK(ts_forecast(y, 40, &o, &r, &err) == 0, "ETS(A,A,N) on a line");
    T_NEAR(r.mean[0], 90.0, 0.09, "ETS(A,A,N) continues the line, h=1");
    T_NEAR(r.mean[5], 100.0, 0.1, "ETS(A,A,N) continues the line, h=6");
    ts_result_free(&r);
    o.ets_model = NULL;
    o.method = TS_AUTO;
    T_OK(ts_forecast(y, 40, &o, &r, &err) == 0 && r.mean[5] > r.mean[0] && r.mean[0] > 88.0,
         "auto forecast of a line keeps rising");
    ts_result_free(&r);
    /* ETS intervals use Student-t quantiles with n - k degrees of freedom:
     * ETS(A,N,N) on 30 points has k = 2 (alpha, l0), so the one-step bounds
     * are mean -+ t(0.9, 28) sigma and t(0.975, 28) sigma */
    for (int i = 0; i < 30; i++)
        y[i] = 100.0 + ((i * 7) % 11) - 5.0;
    o.method = TS_ETS;
    o.ets_model = "ANN";
    T_OK(ts_forecast(y, 30, &o, &r, &err) == 0 && r.sigma2 > 0.0, "ETS(A,N,N) on 30 points");
    double sd = sqrt(r.sigma2);
    T_NEAR((ts_upper(&r, 0)[0] - r.mean[0]) / sd, 1.312527, 2e-4, "80% bound: t quantile, 28 df");
    T_NEAR((r.mean[0] - ts_lower(&r, 1)[0]) / sd, 2.048407, 2e-4, "95% bound: t quantile, 28 df");
    ts_result_free(&r);
    o.ets_model = NULL;
}

static void test_against_r(void)
{
    prm_error err;
    for (size_t i = 0; i < sizeof r_fixtures / sizeof *r_fixtures; i++) {
        const r_fixture *fx = &r_fixtures[i];
        char name[160];
        ts_ets fit;
        int m = fx->m, h = 2 * m;
        /* Our optimiser must reach at least R's likelihood for fixed models. */
        const char *specs[] = {"ANN", "AAN", "MAM", "AAA"};
        double rll[] = {fx->ll_ANN, fx->ll_AAN, fx->ll_MAM, fx->ll_AAA};
        for (int s = 0; s < 4; s++) {
            snprintf(name, sizeof name, "%s ETS %s: loglik >= R's (%.2f) - 0.01", fx->name,
                     specs[s], rll[s]);
            int ok = ts_ets_fit(fx->y, fx->n, m, specs[s], 0, &fit, &err) == 0;
            T_OK(ok && fit.loglik >= rll[s] - 0.01, name);
        }
        /* Automatic selection: within 3 AICc units of R's choice (AirPassengers:
         * the same ETS(M,Ad,M) since the admissibility fix (ts8), our optimum
         * 2.5 AICc short of R's). */
        T_OK(ts_ets_fit(fx->y, fx->n, m, "ZZZ", 0, &fit, &err) == 0, "auto-ETS fits");
        snprintf(name, sizeof name, "%s auto-ETS AICc %.2f within 3 of R's %.2f", fx->name,
                 fit.aicc, fx->aicc);
        T_OK(fit.aicc <= fx->aicc + 3.0, name);

        ts_options o;
        ts_options_init(&o);
        o.period = m;
        o.h = h;
        ts_result r;
        o.method = TS_ETS;
        T_OK(ts_forecast(fx->y, fx->n, &o, &r, &err) == 0, "auto-ETS forecast");
        /* every fixture's choice is R's since the admissibility fix (before
         * it, AirPassengers took ETS(M,A,M): R's ETS(M,Ad,M) optimum was
         * outside the wrong region) */
        snprintf(name, sizeof name, "%s auto-ETS picks R's %s (we: %s)", fx->name,
                 fx->auto_method, r.method);
        T_OK(strcmp(r.method, fx->auto_method) == 0, name);
        double tol_mean = 0.03, tol_pi = 0.06;
        if (strcmp(r.method, fx->auto_method) == 0 && fit.aicc > fx->aicc + 0.1) {
            /* AirPassengers: our ETS(M,Ad,M) stops at a lower likelihood
             * than R's (-680.8 against -679.6, issue 11 item 5), with
             * another alpha (0.77), and its simulated class-3 bounds part
             * from R's approximate ones by up to 10.4% at 24 steps (6.5%
             * for the worse fit before ts8): the wider tolerances that this
             * test has always given this fixture's ETS(M,Ad,M), the bounds'
             * a little wider */
            tol_mean = 0.05;
            tol_pi = 0.12;
        }
        if (strcmp(r.method, fx->auto_method) != 0) {
            /* Another model than R's: compare R's model as we fit it, with
             * the wider tolerances. */
            char spec[8];
            const char *a = fx->auto_method;
            snprintf(spec, sizeof spec, "%c%s%c", a[4], a[7] == 'd' ? "Ad" : (a[6] == 'N' ? "N" : "A"),
                     a[strlen(a) - 2]);
            snprintf(name, sizeof name, "%s: we pick %s, R %s; comparing our %s", fx->name,
                     r.method, fx->auto_method, spec);
            T_OK(1, name);
            ts_result_free(&r);
            o.ets_model = spec;
            T_OK(ts_forecast(fx->y, fx->n, &o, &r, &err) == 0, "R's model forecast");
            o.ets_model = NULL;
            tol_mean = 0.05;
            tol_pi = 0.10;
        }
        double d = max_rel_diff(r.mean, fx->auto_mean, h);
        snprintf(name, sizeof name, "%s %s mean within %.0f%% of R (max %.2f%%)", fx->name,
                 r.method, 100 * tol_mean, 100 * d);
        T_OK(d < tol_mean, name);
        d = fmax(max_rel_diff(ts_lower(&r, 1), fx->auto_lo95, h),
                 max_rel_diff(ts_upper(&r, 1), fx->auto_hi95, h));
        snprintf(name, sizeof name, "%s %s 95%% bounds within %.0f%% of R (max %.2f%%)",
                 fx->name, r.method, 100 * tol_pi, 100 * d);
        T_OK(d < tol_pi, name);
        ts_result_free(&r);

        o.method = TS_THETA;
        T_OK(ts_forecast(fx->y, fx->n, &o, &r, &err) == 0, "theta forecast");
        d = max_rel_diff(r.mean, fx->theta_mean, h);
        snprintf(name, sizeof name, "%s Theta mean within 0.05%% of thetaf (max %.4f%%)",
                 fx->name, 100 * d);
        T_OK(d < 5e-4, name);
        d = fmax(max_rel_diff(ts_lower(&r, 0), fx->theta_lo80, h),
                 max_rel_diff(ts_upper(&r, 0), fx->theta_hi80, h));
        snprintf(name, sizeof name, "%s Theta 80%% bounds within 0.05%% of thetaf", fx->name);
        T_OK(d < 5e-4, name);
        ts_result_free(&r);

        o.method = TS_SNAIVE;
        T_OK(ts_forecast(fx->y, fx->n, &o, &r, &err) == 0 &&
                 max_rel_diff(r.mean, fx->snaive_mean, h) < 1e-12, "seasonal naive equals R");
        ts_result_free(&r);

        o.method = TS_COMBO;
        T_OK(ts_forecast(fx->y, fx->n, &o, &r, &err) == 0 && finite_result(&r) &&
                 strncmp(r.method, "Combo(ETS(", 10) == 0 && strstr(r.method, ",ARIMA(") &&
                     strstr(r.method, ",Theta)"), "combination forecast: ETS, ARIMA and Theta");
        ts_result_free(&r);
    }
}

static void test_degenerate(void)
{
    prm_error err;
    ts_options o;
    ts_result r;
    double y[200];
    ts_options_init(&o);
    o.period = 12;
    o.h = 18;

    T_OK(ts_forecast(y, 0, &o, &r, &err) == -1 && strstr(err.msg, "empty"), "empty series: error");
    double nan2[3] = {NAN, NAN, NAN};
    T_OK(ts_forecast(nan2, 3, &o, &r, &err) == -1 && strstr(err.msg, "missing"),
         "all missing: error");
    double tail[4] = {1, 2, 3, NAN};
    T_OK(ts_forecast(tail, 4, &o, &r, &err) == -1 && strstr(err.msg, "last value"),
         "trailing missing: error");
    double one[1] = {5};
    T_OK(ts_forecast(one, 1, &o, &r, &err) == -1 && strstr(err.msg, "at least 2"),
         "one observation: error");

    /* all zeros: a constant zero forecast */
    memset(y, 0, sizeof y);
    T_OK(ts_forecast(y, 48, &o, &r, &err) == 0 && r.mean[17] == 0.0 && finite_result(&r) &&
             strcmp(r.method, "Constant") == 0, "all zeros: zero forecast");
    ts_result_free(&r);

    /* interior missing values are interpolated, leading ones dropped */
    for (int i = 0; i < 60; i++)
        y[i] = 100 + 10 * sin(i * M_PI / 6) + i;
    y[0] = y[1] = NAN;
    y[20] = y[21] = y[40] = NAN;
    T_OK(ts_forecast(y, 60, &o, &r, &err) == 0 && finite_result(&r) && r.n_filled == 3 &&
             r.n_used == 58, "missing months: filled and forecast");
    ts_result_free(&r);

    /* negative values: multiplicative models excluded, or an error if asked for */
    for (int i = 0; i < 60; i++)
        y[i] = -50 + 30 * sin(i * M_PI / 6) + 0.5 * i;
    o.method = TS_ETS;
    T_OK(ts_forecast(y, 60, &o, &r, &err) == 0 && finite_result(&r) &&
             r.method[4] == 'A' && r.method[strlen(r.method) - 2] != 'M',
         "negative data: auto-ETS uses additive components");
    ts_result_free(&r);
    o.ets_model = "MAM";
    T_OK(ts_forecast(y, 60, &o, &r, &err) == -1 && strstr(err.msg, "positive"),
         "negative data with ETS(M,A,M): clear error");
    o.ets_model = NULL;
    for (int mth = TS_AUTO; mth <= TS_COMBO; mth++) {
        o.method = (ts_method)mth;
        char name[80];
        snprintf(name, sizeof name, "negative data, method %s: finite", ts_method_name(o.method));
        int ok = ts_forecast(y, 60, &o, &r, &err) == 0;
        T_OK(ok && finite_result(&r), name);
        if (ok)
            ts_result_free(&r);
    }

    /* too short for anything but naive */
    double s5[5] = {3, 4, 3, 5, 4};
    o.method = TS_AUTO;
    T_OK(ts_forecast(s5, 5, &o, &r, &err) == 0 && strcmp(r.method, "Naive") == 0 &&
             strstr(r.note, "too short") && finite_result(&r), "5 points: naive fallback");
    ts_result_free(&r);
    /* 14 months: too short for a seasonal ETS (needs n >= dim + 4) */
    for (int i = 0; i < 14; i++)
        y[i] = 100 + 20 * sin(i * M_PI / 6) + (i % 3);
    o.method = TS_ETS;
    T_OK(ts_forecast(y, 14, &o, &r, &err) == 0 && finite_result(&r) &&
             r.method[strlen(r.method) - 2] == 'N', "14 months: non-seasonal ETS");
    ts_result_free(&r);
    o.method = TS_SNAIVE;
    T_OK(ts_forecast(y, 10, &o, &r, &err) == 0 && strcmp(r.method, "Naive") == 0,
         "seasonal naive with less than a period: naive");
    ts_result_free(&r);
    o.ets_model = "AAA";
    o.method = TS_ETS;
    T_OK(ts_forecast(y, 10, &o, &r, &err) == -1 && strstr(err.msg, "seasonal"),
         "seasonal ETS on 10 months: clear error");
    o.ets_model = NULL;

    /* intermittent demand: auto picks the Croston family */
    for (int i = 0; i < 48; i++)
        y[i] = (i % 4 == 1) ? 3 + (i % 7) : 0;
    o.method = TS_AUTO;
    T_OK(ts_forecast(y, 48, &o, &r, &err) == 0 && finite_result(&r) &&
             (strcmp(r.method, "SBA") == 0 || strcmp(r.method, "Croston") == 0 ||
              strcmp(r.method, "TSB") == 0) && ts_lower(&r, 1)[0] >= 0.0,
         "intermittent series: Croston family, non-negative bounds");
    ts_result_free(&r);
    o.method = TS_SBA;
    T_OK(ts_forecast(y, 48, &o, &r, &err) == 0 && r.mean[0] > 0.5 && r.mean[0] < 3.0,
         "SBA forecast is the demand rate");
    ts_result_free(&r);

    /* extreme scales */
    for (int i = 0; i < 60; i++)
        y[i] = 1e12 * (1 + 0.1 * sin(i * M_PI / 6) + 0.001 * i);
    o.method = TS_COMBO;
    T_OK(ts_forecast(y, 60, &o, &r, &err) == 0 && finite_result(&r), "values near 1e12: finite");
    ts_result_free(&r);
    for (int i = 0; i < 60; i++)
        y[i] = 1e-12 * (1 + 0.1 * sin(i * M_PI / 6) + 0.001 * i);
    T_OK(ts_forecast(y, 60, &o, &r, &err) == 0 && finite_result(&r), "values near 1e-12: finite");
    ts_result_free(&r);

    /* a long period (weekly data, m = 52): ETS goes non-seasonal, Theta and
     * seasonal naive still use it */
    for (int i = 0; i < 160; i++)
        y[i] = 50 + 10 * sin(i * 2 * M_PI / 52) + 0.1 * i;
    o.period = 52;
    o.method = TS_AUTO;
    T_OK(ts_forecast(y, 160, &o, &r, &err) == 0 && finite_result(&r), "period 52: finite");
    ts_result_free(&r);
    o.period = 12;

    /* option checks */
    o.h = 0;
    T_OK(ts_forecast(y, 60, &o, &r, &err) == -1 && strstr(err.msg, "horizon"), "h = 0: error");
    o.h = 10001;
    T_OK(ts_forecast(y, 60, &o, &r, &err) == -1 && strstr(err.msg, "horizon"), "h > 10000: error");
    /* a long horizon with simulated intervals stays within its memory cap */
    o.h = 10000;
    o.method = TS_ETS;
    o.ets_model = "MNM";
    for (int i = 0; i < 60; i++)
        y[i] = 100 + 20 * sin(i * M_PI / 6) + (i % 5);
    T_OK(ts_forecast(y, 60, &o, &r, &err) == 0 && finite_result(&r), "h = 10000 with simulation");
    ts_result_free(&r);
    o.ets_model = NULL;
    o.h = 18;
    o.levels[1] = 100;
    T_OK(ts_forecast(y, 60, &o, &r, &err) == -1 && strstr(err.msg, "level"), "level 100: error");
    o.levels[1] = 95;
    o.method = TS_ETS;
    o.ets_model = "XYZ";
    T_OK(ts_forecast(y, 60, &o, &r, &err) == -1 && strstr(err.msg, "bad model"),
         "bad ETS model: error");
    o.ets_model = "AAM";
    T_OK(ts_forecast(y, 60, &o, &r, &err) == -1 && strstr(err.msg, "unstable"),
         "ETS(A,A,M): refused as unstable");
    o.ets_model = NULL;
    double infy[3] = {1, INFINITY, 2};
    T_OK(ts_forecast(infy, 3, &o, &r, &err) == -1 && strstr(err.msg, "infinite"),
         "infinite value: error");
}

static void test_determinism(void)
{
    prm_error err;
    ts_options o;
    ts_result a, b;
    ts_options_init(&o);
    o.period = 12;
    o.h = 24;
    o.method = TS_ETS;
    o.ets_model = "MAM"; /* intervals by simulation */
    const r_fixture *fx = &r_fixtures[0];
    T_OK(ts_forecast(fx->y, fx->n, &o, &a, &err) == 0, "MAM forecast (1)");
    T_OK(ts_forecast(fx->y, fx->n, &o, &b, &err) == 0, "MAM forecast (2)");
    T_OK(memcmp(a.upper, b.upper, sizeof(double) * 48) == 0, "same seed: identical simulated bounds");
    /* the 95% band holds the 80% band */
    int nested = 1;
    for (int k = 0; k < 24; k++)
        nested &= ts_lower(&a, 1)[k] <= ts_lower(&a, 0)[k] && ts_upper(&a, 1)[k] >= ts_upper(&a, 0)[k];
    T_OK(nested, "95% band contains the 80% band");
    ts_result_free(&a);
    ts_result_free(&b);
    T_EQ_INT(ts_method_parse("combo"), TS_COMBO, "method names parse");
    T_EQ_INT(ts_method_parse("nope"), -1, "unknown method name");
    T_EQ_STR(ts_method_name(TS_SNAIVE), "snaive", "method name");
}


/* Random short, lumpy, gappy, signed and badly scaled series through every
 * method: each call either succeeds with finite, ordered bounds or fails
 * with a message.  (Sizes keep the binary fast under ASan.) */
static void test_fuzz(void)
{
    static const int periods[] = {1, 4, 7, 12, 52};
    double y[80];
    int bad = 0, ok_count = 0, err_count = 0;
    char detail[200] = "";
    lcg = 99;
    for (int s = 0; s < 90; s++) {
        int n = 1 + (int)(unif() * 70);
        int m = periods[(int)(unif() * 5)];
        int kind = (int)(unif() * 6);
        double scale = pow(10.0, -6 + (int)(unif() * 13));
        double level = 0.0;
        for (int i = 0; i < n; i++) {
            level += gauss();
            double v;
            switch (kind) {
            case 0: v = level; break;                                      /* random walk, signed */
            case 1: v = 50 + 10 * sin(2 * M_PI * i / m) + gauss(); break;   /* seasonal */
            case 2: v = unif() < 0.7 ? 0.0 : 1 + (int)(unif() * 9); break;  /* intermittent */
            case 3: v = (double)(i % 3 == 0); break;                       /* 0/1 pattern */
            case 4: v = 100 + 0.5 * i + 3 * gauss(); break;                 /* trend */
            default: v = unif() < 0.5 ? -5.0 : 5.0; break;                  /* two values */
            }
            y[i] = v * scale;
            if (unif() < 0.05)
                y[i] = NAN;
        }
        for (int mth = TS_AUTO; mth <= TS_COMBO; mth++) {
            ts_options o;
            ts_result r;
            prm_error err;
            ts_options_init(&o);
            o.period = m;
            o.h = 1 + (int)(unif() * 24);
            o.method = (ts_method)mth;
            err.msg[0] = 0;
            if (ts_forecast(y, n, &o, &r, &err) == 0) {
                ok_count++;
                if (!finite_result(&r) && !bad++)
                    snprintf(detail, sizeof detail, "series %d (kind %d, n %d, m %d) %s: not finite",
                             s, kind, n, m, r.method);
                ts_result_free(&r);
            } else {
                err_count++;
                if (getenv("FUZZ_VERBOSE"))
                    printf("# %s: %s\n", ts_method_name(o.method), err.msg);
                if (err.msg[0] == 0 && !bad++)
                    snprintf(detail, sizeof detail, "series %d %s: error without a message", s,
                             ts_method_name(o.method));
            }
        }
    }
    t_check(bad == 0, "fuzz: every result finite and ordered, every error explained", __FILE__,
            __LINE__, detail);
    char name[80];
    snprintf(name, sizeof name, "fuzz: %d forecasts, %d clean errors", ok_count, err_count);
    T_OK(ok_count > 10 * err_count, name);
}

/* The combination's rolling-origin calibration (ts_calibrate_widths): a
 * series whose recent noise is six times its early noise gets wider
 * intervals than its members give, the reverse gets narrower ones, a
 * homogeneous one about the same; the point forecasts never change and the
 * levels stay nested. */
static double calib_factor(const ts_result *r)
{
    for (int i = 0; i < r->nparams; i++)
        if (strcmp(r->params[i].name, "calib80") == 0)
            return r->params[i].value;
    return NAN;
}

static void calib_case(const double *y, int n, const char *what, double lo, double hi)
{
    ts_options o;
    ts_options_init(&o);
    o.method = TS_COMBO;
    o.h = 6;
    ts_result cal, raw;
    prm_error err;
    char name[120];
    int rc = ts_forecast(y, n, &o, &cal, &err);
    o.calib_origins = 0;
    int rc2 = ts_forecast(y, n, &o, &raw, &err);
    snprintf(name, sizeof name, "calibration, %s: both fits", what);
    T_OK(rc == 0 && rc2 == 0, name);
    if (rc || rc2)
        return;
    double f = calib_factor(&cal), same = 0, ratio = 0;
    int nested = 1;
    for (int k = 0; k < o.h; k++) {
        same = fmax(same, fabs(cal.mean[k] - raw.mean[k]));
        ratio += (ts_upper(&cal, 0)[k] - ts_lower(&cal, 0)[k]) /
                 (ts_upper(&raw, 0)[k] - ts_lower(&raw, 0)[k]) / o.h;
        nested &= ts_lower(&cal, 1)[k] <= ts_lower(&cal, 0)[k] &&
                  ts_lower(&cal, 0)[k] <= cal.mean[k] && cal.mean[k] <= ts_upper(&cal, 0)[k] &&
                  ts_upper(&cal, 0)[k] <= ts_upper(&cal, 1)[k];
    }
    snprintf(name, sizeof name, "calibration, %s: factor %.3f in [%g, %g], width ratio %.3f",
             what, f, lo, hi, ratio);
    T_OK(f >= lo && f <= hi && fabs(ratio - f) < 1e-6 * f, name);
    snprintf(name, sizeof name, "calibration, %s: same point forecasts, nested bounds", what);
    T_OK(same == 0.0 && nested, name);
    snprintf(name, sizeof name, "calibration, %s: calib_origins = 0 leaves no factor", what);
    T_OK(isnan(calib_factor(&raw)), name);
    ts_result_free(&cal);
    ts_result_free(&raw);
}

static void test_calibration(void)
{
    enum { N = 60 };
    double up[N], down[N], flat[N];
    lcg = 77;
    for (int t = 0; t < N; t++) {
        double e = gauss();
        up[t] = 100 + (t < 36 ? 1.0 : 6.0) * e;
        down[t] = 100 + (t < 24 ? 6.0 : 1.0) * e;
        flat[t] = 100 + 2.0 * e;
    }
    calib_case(up, N, "recent noise 6x", 1.3, 4.0);
    calib_case(down, N, "early noise 6x", 0.5, 0.8);
    calib_case(flat, N, "homogeneous noise", 0.6, 1.6);
    /* too short for 8 rolling errors (n - 8 < 1 with 8 observations): unchanged */
    ts_options o;
    ts_options_init(&o);
    o.method = TS_COMBO;
    o.h = 6;
    ts_result r;
    prm_error err;
    T_OK(ts_forecast(flat, 8, &o, &r, &err) == 0 && isnan(calib_factor(&r)),
         "calibration: a series of 8 keeps its members' widths");
    if (r.mean)
        ts_result_free(&r);
    o.calib_origins = -1;
    T_OK(ts_forecast(flat, N, &o, &r, &err) != 0 && strstr(err.msg, "calib_origins"),
         "calibration: calib_origins < 0 is a clear error");
}

/* The pooled calibration (ts_calib_pool): a short series (14 observations,
 * h = 6: one rolling origin, 6 errors, too few for its own factor) takes
 * its frequency's pooled factor: wider intervals when the siblings' later
 * errors outgrow their widths, narrower when they shrink; the point
 * forecasts never change; too few pooled errors leave no pool. */
static void pool_case(int grow, const double *shorty, const char *what)
{
    enum { NS = 30, N = 40 };
    static double ys[NS][N];
    const double *yp[NS];
    int ns[NS];
    for (int i = 0; i < NS; i++) {
        for (int t = 0; t < N; t++) {
            double e = gauss();
            int late = t >= 20;
            ys[i][t] = 100 + (late == grow ? 6.0 : 1.0) * e;
        }
        yp[i] = ys[i];
        ns[i] = N;
    }
    ts_options o;
    ts_options_init(&o);
    o.method = TS_COMBO;
    o.h = 6;
    prm_error err;
    char name[160];
    int rc = ts_calib_pool(yp, ns, NS, &o, &err);
    snprintf(name, sizeof name, "calibration pool, %s: pooled factors %.3f / %.3f", what,
             o.calib_pool[0], o.calib_pool[1]);
    T_OK(rc == 1 && (grow ? o.calib_pool[0] > 1.3 : o.calib_pool[0] < 0.8) &&
             o.calib_pool[1] > 0, name);
    ts_result pooled, own;
    int rc1 = ts_forecast(shorty, 14, &o, &pooled, &err);
    memset(o.calib_pool, 0, sizeof o.calib_pool);
    int rc2 = ts_forecast(shorty, 14, &o, &own, &err);
    snprintf(name, sizeof name, "calibration pool, %s: both fits", what);
    T_OK(rc1 == 0 && rc2 == 0, name);
    if (rc1 || rc2)
        return;
    double ratio = 0, same = 0;
    for (int k = 0; k < o.h; k++) {
        same = fmax(same, fabs(pooled.mean[k] - own.mean[k]));
        ratio += (ts_upper(&pooled, 0)[k] - ts_lower(&pooled, 0)[k]) /
                 (ts_upper(&own, 0)[k] - ts_lower(&own, 0)[k]) / o.h;
    }
    snprintf(name, sizeof name,
             "calibration pool, %s: the short series' 80%% width x %.3f, its own factor none",
             what, ratio);
    T_OK(isnan(calib_factor(&own)) && fabs(calib_factor(&pooled) - ratio) < 1e-6 * ratio &&
             (grow ? ratio > 1.3 : ratio < 0.8) && same == 0.0,
         name);
    ts_result_free(&pooled);
    ts_result_free(&own);
}

static void test_calib_pool(void)
{
    double shorty[14];
    lcg = 91;
    for (int t = 0; t < 14; t++)
        shorty[t] = 50 + 0.5 * t + 2.0 * gauss();
    pool_case(1, shorty, "later errors grow");
    pool_case(0, shorty, "later errors shrink");
    /* one short series alone gives 6 errors: no pool */
    const double *one[1] = {shorty};
    int n1[1] = {14};
    ts_options o;
    ts_options_init(&o);
    o.method = TS_COMBO;
    o.h = 6;
    prm_error err;
    T_OK(ts_calib_pool(one, n1, 1, &o, &err) == 0 && o.calib_pool[0] == 0.0,
         "calibration pool: 6 errors set no pool");
    o.calib_pool[1] = -1;
    ts_result r;
    T_OK(ts_forecast(shorty, 14, &o, &r, &err) != 0 && strstr(err.msg, "calib_pool[1]"),
         "calibration pool: a negative pooled factor is a clear error");
}

static int cmp_dbl(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The pool pass's ratios kept (ts_calib_pool_keep): forecasting each series
 * with the cache gives the very same bounds as without it (long series with
 * their own factor, short ones with the pool); the cache is really read (a
 * doubled kept ratio set changes the widths), and an entry whose data differ
 * from the series forecast is refitted, not used. */
static void test_calib_cache(void)
{
    enum { NS = 12, N = 40 };
    static double ys[NS][N];
    const double *yp[NS];
    int ns[NS];
    lcg = 77;
    for (int i = 0; i < NS; i++) {
        for (int t = 0; t < N; t++)
            ys[i][t] = 100 + 0.8 * t * (i % 3) + (2.0 + i % 4) * gauss();
        yp[i] = ys[i];
        ns[i] = i % 3 == 0 ? 14 : N; /* every third one short: pooled */
    }
    ts_options o;
    ts_options_init(&o);
    o.method = TS_COMBO;
    o.h = 6;
    prm_error err;
    ts_calib_cache cache = {0};
    int rc = ts_calib_pool_keep(yp, ns, NS, &o, &cache, &err);
    double pool80 = o.calib_pool[0];
    ts_options plain = o; /* the same pool, no cache */
    T_OK(rc == 1 && pool80 > 0 && cache.count == NS && cache.nratios[0] == 6 &&
             cache.nratios[1] >= 8,
         "calibration cache: the pool pass keeps each series' ratios");
    T_OK(ts_calib_pool(yp, ns, NS, &plain, &err) == 1 && plain.calib_pool[0] == pool80 &&
             plain.calib_pool[1] == o.calib_pool[1],
         "calibration cache: the same pool as ts_calib_pool");
    /* the pooled factor is the kept ratios' rank ceil((cnt + 1) p) element */
    int conf_ok = 1;
    for (int j = 0; j < o.nlevels; j++) {
        static double all[NS * TS_CALIB_ORIGINS * 6];
        int cnt = 0;
        for (int i = 0; i < NS; i++)
            for (int k = 0; k < cache.nratios[i]; k++)
                all[cnt++] = cache.ratio[((size_t)i * cache.nlevels + j) * cache.cap + k];
        qsort(all, (size_t)cnt, sizeof *all, cmp_dbl);
        int rank = (int)ceil((cnt + 1) * o.levels[j] / 100.0 - 1e-9);
        double want = fmin(4.0, fmax(0.5, all[(rank > cnt ? cnt : rank) - 1]));
        conf_ok = conf_ok && o.calib_pool[j] == want;
    }
    T_OK(conf_ok, "calibration pool: the factor is the ratios' conformal rank ceil((N+1)p)");
    o.calib_cache = &cache;
    double worst = 0;
    int ok = 1;
    for (int i = 0; i < NS && ok; i++) {
        ts_result a, b;
        o.calib_index = i;
        ok = ts_forecast(yp[i], ns[i], &o, &a, &err) == 0 &&
             ts_forecast(yp[i], ns[i], &plain, &b, &err) == 0;
        for (int k = 0; ok && k < o.h * (1 + 2 * o.nlevels); k++)
            worst = fmax(worst, fabs(a.mean[k] - b.mean[k]));
        if (ok) {
            ts_result_free(&a);
            ts_result_free(&b);
        }
    }
    T_OK(ok && worst == 0.0, "calibration cache: the forecasts are identical with it");
    /* series 1 has its own factor: doubling its kept ratios doubles the factor */
    for (int j = 0; j < cache.nlevels; j++)
        for (int k = 0; k < cache.nratios[1]; k++)
            cache.ratio[((size_t)1 * cache.nlevels + j) * cache.cap + k] *= 2;
    ts_result a, b, c;
    o.calib_index = 1;
    int rca = ts_forecast(yp[1], ns[1], &o, &a, &err);
    int rcb = ts_forecast(yp[1], ns[1], &plain, &b, &err);
    o.calib_index = 2; /* the entry of another series: its data differ */
    int rcc = ts_forecast(yp[1], ns[1], &o, &c, &err);
    T_OK(rca == 0 && rcb == 0 && rcc == 0, "calibration cache: the probes fit");
    if (rca == 0 && rcb == 0 && rcc == 0) {
        char name[160];
        double wa = ts_upper(&a, 0)[0] - a.mean[0], wb = ts_upper(&b, 0)[0] - b.mean[0];
        snprintf(name, sizeof name, "calibration cache: doubled kept ratios give %.3f x the width",
                 wa / wb);
        T_OK(fabs(wa / wb - 2.0) < 1e-9 || (wa / wb > 1.0 && calib_factor(&a) == 4.0), name);
        T_OK(ts_upper(&c, 0)[0] == ts_upper(&b, 0)[0] && ts_lower(&c, 1)[3] == ts_lower(&b, 1)[3],
             "calibration cache: another series' entry is not used");
        ts_result_free(&a);
        ts_result_free(&b);
        ts_result_free(&c);
    }
    ts_calib_cache_free(&cache);
    ts_calib_cache_free(&cache); /* idempotent */
    T_OK(cache.count == 0 && cache.ratio == NULL, "calibration cache: freed");
}

/* Seasonal indexes pooled over short siblings (ts_season_pool): ten
 * monthly series of 18 observations (< 2 seasons) sharing one pattern give
 * it back, and a short sibling forecast with it follows the season; when
 * every sibling has its own phase, or none has a season, nothing is pooled;
 * a series of two seasons or more ignores the pooled indexes. */
enum { SP_K = 10, SP_N = 18, SP_M = 12, SP_H = 6 };

static void siblings(double *y, double *future, int own_phase, double amp)
{
    for (int s = 0; s < SP_K; s++) {
        double level = 50 + 20 * s, phase = own_phase ? 0.63 * s : 0.7;
        for (int t = 0; t < SP_N + SP_H; t++) {
            int k = ((t - SP_N) % SP_M + SP_M) % SP_M;
            double mu = level * (1 + 0.005 * t) * (1 + amp * sin(2 * M_PI * k / SP_M + phase));
            if (t < SP_N)
                y[s * SP_N + t] = mu * (1 + 0.1 * gauss());
            else if (s == 0)
                future[t - SP_N] = mu;
        }
    }
}

static void test_season_pool(void)
{
    static double y[SP_K * SP_N];
    double future[SP_H], fig[SP_M];
    prm_error err;
    char name[300];
    lcg = 123;
    siblings(y, future, 0, 0.3);
    int rc = ts_season_pool(y, SP_K, SP_N, SP_M, fig, &err);
    /* 10-20 ratios a season with 10% noise: a standard error near 0.035;
     * the indexes left at 1 would be 0.19 off on average */
    double worst = 0, mad = 0;
    for (int k = 0; k < SP_M; k++) {
        double d = fabs(fig[k] - (1 + 0.3 * sin(2 * M_PI * k / SP_M + 0.7)));
        worst = fmax(worst, d);
        mad += d / SP_M;
    }
    snprintf(name, sizeof name,
             "season pool: shared pattern recovered (indexes off %.3f on average, %.3f worst)",
             mad, worst);
    T_OK(rc == 1 && mad < 0.04 && worst < 0.1, name);

    ts_options o;
    ts_options_init(&o);
    o.period = SP_M;
    o.h = SP_H;
    ts_result with, without;
    o.season = fig;
    int rc1 = ts_forecast(y, SP_N, &o, &with, &err);
    o.season = NULL;
    int rc2 = ts_forecast(y, SP_N, &o, &without, &err);
    T_OK(rc1 == 0 && rc2 == 0, "season pool: both forecasts of a short sibling");
    if (rc1 == 0 && rc2 == 0) {
        double ew = 0, eo = 0;
        int ordered = 1;
        for (int k = 0; k < SP_H; k++) {
            ew += fabs(with.mean[k] - future[k]) / SP_H;
            eo += fabs(without.mean[k] - future[k]) / SP_H;
            ordered &= ts_lower(&with, 1)[k] <= ts_lower(&with, 0)[k] &&
                       ts_lower(&with, 0)[k] <= with.mean[k] &&
                       with.mean[k] <= ts_upper(&with, 0)[k] &&
                       ts_upper(&with, 0)[k] <= ts_upper(&with, 1)[k];
        }
        snprintf(name, sizeof name,
                 "season pool: the short sibling's error %.2f with the pool, %.2f without (%.80s)",
                 ew, eo, with.method);
        T_OK(ew < 0.5 * eo && ordered && strstr(with.method, "pooled season"), name);
        ts_result_free(&with);
        ts_result_free(&without);
    }

    /* the siblings' widths pooled as they will be forecast (adjusted, no
     * season): the short sibling takes that factor inside the season */
    const double *rows[SP_K];
    int lens[SP_K];
    for (int s = 0; s < SP_K; s++) {
        rows[s] = y + s * SP_N;
        lens[s] = SP_N;
    }
    o.season = fig;
    int prc = ts_calib_pool(rows, lens, SP_K, &o, &err);
    double adjusted = o.calib_pool[0];
    o.season = NULL;
    int prc2 = ts_calib_pool(rows, lens, SP_K, &o, &err);
    double raw = o.calib_pool[0];
    o.season = fig;
    o.calib_pool[0] = adjusted;
    if (prc == 1 && ts_forecast(y, SP_N, &o, &with, &err) == 0) {
        snprintf(name, sizeof name,
                 "season pool: widths pooled over the adjusted siblings (%.3f; unadjusted %.3f) "
                 "reach the short sibling's 80%% interval",
                 adjusted, raw);
        T_OK(prc2 == 1 && adjusted != raw && fabs(calib_factor(&with) - adjusted) < 1e-12 &&
                 strstr(with.method, "pooled season"),
             name);
        ts_result_free(&with);
    } else {
        T_OK(0, "season pool: the calibration pool over adjusted siblings");
    }
    memset(o.calib_pool, 0, sizeof o.calib_pool);
    o.season = NULL;

    siblings(y, future, 1, 0.3);
    rc = ts_season_pool(y, SP_K, SP_N, SP_M, fig, &err);
    T_OK(rc == 0 && fig[0] == 1.0 && fig[5] == 1.0,
         "season pool: siblings with their own phases pool nothing");
    siblings(y, future, 0, 0.0);
    T_OK(ts_season_pool(y, SP_K, SP_N, SP_M, fig, &err) == 0,
         "season pool: siblings without a season pool nothing");
    T_OK(ts_season_pool(y, SP_K, SP_N, 1, fig, &err) == -1 && strstr(err.msg, "period"),
         "season pool: period 1 is a clear error");

    /* two seasons or more: the pooled indexes are ignored */
    double lng[30];
    for (int t = 0; t < 30; t++)
        lng[t] = 100 * (1 + 0.3 * sin(2 * M_PI * t / SP_M)) * (1 + 0.05 * gauss());
    for (int k = 0; k < SP_M; k++)
        fig[k] = k == 0 ? 2.0 : 1.0;
    o.season = fig;
    rc1 = ts_forecast(lng, 30, &o, &with, &err);
    o.season = NULL;
    rc2 = ts_forecast(lng, 30, &o, &without, &err);
    T_OK(rc1 == 0 && rc2 == 0 && memcmp(with.mean, without.mean, SP_H * sizeof(double)) == 0,
         "season pool: a series of 30 months ignores the pooled indexes");
    if (rc1 == 0)
        ts_result_free(&with);
    if (rc2 == 0)
        ts_result_free(&without);
    fig[3] = 0.0;
    o.season = fig;
    T_OK(ts_forecast(y, SP_N, &o, &with, &err) != 0 && strstr(err.msg, "season[3]"),
         "season pool: a zero index is a clear error");
}

/* R's optim Nelder-Mead, step for step: ?optim's Rosenbrock example from
 * (-1.2, 1) ends at (1.000260, 1.000506) after 195 evaluations in R 4.2.2,
 * and a 3-parameter quadratic with a cross term at (0.00216, 2.00549,
 * 3.00650) after 128 (both printed by R with digits = 12). */
static double rosenbrock(const double *x, void *c)
{
    (void)c;
    double a = x[1] - x[0] * x[0], b = 1.0 - x[0];
    return 100.0 * a * a + b * b;
}

static double cross_quad(const double *x, void *c)
{
    (void)c;
    return (x[0] - 1) * (x[0] - 1) + (x[1] - 2) * (x[1] - 2) + (x[2] - 3) * (x[2] - 3) +
           x[0] * x[1];
}

static void test_nmmin(void)
{
    const double reltol = 1.490116119384765625e-8; /* sqrt(.Machine$double.eps) */
    double p[3] = {-1.2, 1.0}, f;
    T_OK(ts_nmmin(rosenbrock, NULL, p, 2, 500, reltol, &f) == 195, "nmmin: R's 195 evaluations");
    T_NEAR(p[0], 1.00026013873, 1e-10, "nmmin: R's x1 on Rosenbrock");
    T_NEAR(p[1], 1.00050599930, 1e-10, "nmmin: R's x2 on Rosenbrock");
    T_NEAR(f, 8.82524109672e-08, 1e-17, "nmmin: R's value on Rosenbrock");
    double q[3] = {3.0, -2.0, 0.5};
    T_OK(ts_nmmin(cross_quad, NULL, q, 3, 500, reltol, &f) == 128, "nmmin: R's 128 evaluations");
    T_NEAR(q[0], 0.00215727076073, 1e-11, "nmmin: R's x1, 3 dims");
    T_NEAR(q[2], 3.00649759248024, 1e-11, "nmmin: R's x3, 3 dims");
    double one[1] = {0.0};
    T_OK(ts_nmmin(rosenbrock, NULL, one, 0, 500, reltol, &f) == -1, "nmmin: bad dim refused");
    /* the budget is R's: it stops after maxit evaluations (plus the step) */
    double r[2] = {-1.2, 1.0};
    int used = ts_nmmin(rosenbrock, NULL, r, 2, 40, reltol, &f);
    T_OK(used > 40 && used <= 43 && f > 1e-3, "nmmin: stops at the evaluation budget");
}

/* The R-like ETS fit (issue 11, item 5): R's optimiser from R's start on the
 * data's scale, in R's parameter region, reaches R's own log-likelihood, not
 * a better one, on every fixed model of the fixtures (ETS(A,A,A) at m = 12
 * ends 12-32 units away from R's unless the region's root test is exact and
 * its polynomial R's; the own fit is above R's on 9 of the 12). */
static void test_rlike_fit(void)
{
    prm_error err;
    ts_ets own, rl;
    for (size_t i = 0; i < sizeof r_fixtures / sizeof *r_fixtures; i++) {
        const r_fixture *fx = &r_fixtures[i];
        const char *specs[] = {"ANN", "AAN", "MAM", "AAA"};
        double rll[] = {fx->ll_ANN, fx->ll_AAN, fx->ll_MAM, fx->ll_AAA};
        for (int s = 0; s < 4; s++) {
            char name[160];
            ts_ets_set_fit(TS_ETS_FIT_R);
            int ok = ts_ets_fit(fx->y, fx->n, fx->m, specs[s], 0, &rl, &err) == 0;
            ts_ets_set_fit(TS_ETS_FIT_OWN);
            snprintf(name, sizeof name, "%s ETS %s, R's optimiser: loglik %.4f = R's %.4f", fx->name,
                     specs[s], ok ? rl.loglik : NAN, rll[s]);
            T_OK(ok && fabs(rl.loglik - rll[s]) < 0.005, name);
        }
    }
    /* R stops short on USAccDeaths ETS(M,A,M) (-562.23 against our -554.49):
     * the two fits differ, and the chosen-by-origin mode returns one of them */
    const r_fixture *ua = &r_fixtures[1];
    T_OK(ts_ets_fit(ua->y, ua->n, 12, "MAM", 0, &own, &err) == 0 && own.loglik > -560.0,
         "USAccDeaths ETS(M,A,M): the own fit is above R's stop");
    ts_ets_set_fit(TS_ETS_FIT_CHOOSE);
    ts_ets ch;
    int ok = ts_ets_fit(ua->y, ua->n, 12, "MAM", 0, &ch, &err) == 0;
    ts_ets_set_fit(TS_ETS_FIT_OWN);
    T_OK(ok && (fabs(ch.loglik - own.loglik) < 1e-9 || fabs(ch.loglik - ua->ll_MAM) < 0.005),
         "chosen by rolling origin: the own fit or R's");
    ts_ets_set_fit(99); /* out of range: kept */
    T_OK(ts_ets_fit(ua->y, ua->n, 12, "MAM", 0, &rl, &err) == 0 &&
             fabs(rl.loglik - own.loglik) < 1e-9,
         "ts_ets_set_fit: an unknown mode keeps the own fit");
}

/* The root test and ETS's admissible region (issue 11, ts8).  The polynomial
 * (1 - z/2)(1 - z/3)(1 + z/4) = 1 - (7/12 z + 1/24 z^2 - 1/24 z^3) has its
 * roots at 2, 3 and -4.  The ETS points are R's forecast:::admissible()
 * (forecast 8.20) answers; the largest root moduli, from polyroot, are in
 * the comments.  Main's own test (in place, z^m coefficient beta - alpha
 * phi) got the m = 4 point (0.901, ...) and both m = 12 points wrong. */
static void test_admissible(void)
{
    const double c[] = {0.0, 7.0 / 12.0, 1.0 / 24.0, -1.0 / 24.0};
    T_OK(ts_roots_outside(c, 3, 1.0), "roots 2, 3, -4: outside the unit circle");
    T_OK(ts_roots_outside(c, 3, 1.9), "roots 2, 3, -4: outside radius 1.9");
    T_OK(!ts_roots_outside(c, 3, 2.5), "roots 2, 3, -4: not all outside radius 2.5 (2 is inside)");
    T_OK(!ts_roots_outside(c, 3, 3.5), "roots 2, 3, -4: not all outside radius 3.5");
    const double c2[] = {0.0, 7.0 / 12.0, 1.0 / 24.0, -1.0 / 24.0, 0.0, 0.0};
    T_OK(ts_roots_outside(c2, 5, 1.9) && !ts_roots_outside(c2, 5, 2.5),
         "trailing zero coefficients: the same polynomial");
    /* 1 - 2.5 z + z^2 = (1 - 2z)(1 - z/2): a root at 1/2 */
    const double c3[] = {0.0, 2.5, -1.0};
    T_OK(!ts_roots_outside(c3, 2, 1.0), "a root at 1/2 is inside the unit circle");
    struct { double a, b, g, phi; int m, r; const char *why; } pt[] = {
        {0.134, 0.114, 0.661, 0.846, 4, 1, "max |root| 0.714"},
        {0.901, 0.028, 0.003, 0.897, 4, 1, "max |root| 0.9992"},
        {0.976, 0.955, 0.014, 0.803, 4, 0, "max |root| 1.00025"},
        {0.544, 0.242, 0.122, 1.0, 12, 0, "max |root| 1.0023"},
        {0.754, 0.103, 0.065, 1.0, 12, 1, "max |root| 0.99947"},
        {0.581, 0.092, 0.181, 0.871, 12, 1, "max |root| 0.9975"},
        {0.956, 0.906, 0.003, 1.0, 12, 0, "max |root| 1.000116"},
        {0.5, -0.2, 0.1, 0.8, 4, 0, "beta < -(1 - phi)(gamma / m + alpha)"},
    };
    for (size_t i = 0; i < sizeof pt / sizeof *pt; i++) {
        char name[200];
        snprintf(name, sizeof name, "admissible(%g, %g, %g, %g, m = %d) = %d as R's (%s)", pt[i].a,
                 pt[i].b, pt[i].g, pt[i].phi, pt[i].m, pt[i].r, pt[i].why);
        T_OK(ts_ets_admissible(pt[i].a, pt[i].b, pt[i].g, pt[i].phi, pt[i].m) == pt[i].r, name);
    }
    /* an undamped model with beta = 0 has a root at exactly z = 1, which R's
     * 1 + 1e-10 tolerance accepts */
    T_OK(ts_ets_admissible(0.3, 0.0, 0.2, 1.0, 12), "a unit root is within R's tolerance");
}

int main(void)
{
    test_qnorm();
    test_recovery();
    test_exact();
    test_against_r();
    test_degenerate();
    test_determinism();
    test_fuzz();
    test_calibration();
    test_calib_pool();
    test_calib_cache();
    test_season_pool();
    test_nmmin();
    test_rlike_fit();
    test_admissible();
    return t_done();
}
