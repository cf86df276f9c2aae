/* test_ts_arima.c - ARIMA (ts_arima.c) and Theta on series with zeros and
 * negative values, against R 4.2.2 / forecast 8.20 fixtures
 * (tests/fixtures/ts/make_arima_fixtures.R; no R needed), plus parameter
 * recovery from a simulated series and the degenerate inputs.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tap.h"
#include "ts.h"

#include "../fixtures/ts/arima_fixtures.h"

static double max_rel_diff(const double *a, const double *b, int n)
{
    double d = 0.0;
    for (int i = 0; i < n; i++)
        d = fmax(d, fabs(a[i] - b[i]) / fmax(1e-9, fabs(b[i])));
    return d;
}

static void test_against_r(void)
{
    char name[400];
    prm_error err;
    int parted = 0;
    for (size_t i = 0; i < sizeof arima_fixtures / sizeof *arima_fixtures; i++) {
        const arima_fixture *fx = &arima_fixtures[i];
        snprintf(name, sizeof name, "%s: ndiffs %d as R", fx->name, fx->ndiffs);
        T_OK(ts_ndiffs(fx->y, fx->n) == fx->ndiffs, name);
        snprintf(name, sizeof name, "%s: nsdiffs %d as R", fx->name, fx->nsdiffs);
        T_OK(ts_nsdiffs(fx->y, fx->n, fx->m) == fx->nsdiffs, name);

        /* R's model (from its exact search), fitted as a fixed model */
        const int *o = fx->exact;
        int ord[6] = {o[0], o[1], o[2], o[3], o[4], o[5]};
        ts_arima fit;
        int ok = ts_arima_fit(fx->y, fx->n, fx->m, ord, o[7], &fit, &err) == 0;
        snprintf(name, sizeof name, "%s ARIMA(%d,%d,%d)(%d,%d,%d): loglik %.4f within 0.01 of R's %.4f",
                 fx->name, o[0], o[1], o[2], o[3], o[4], o[5], ok ? fit.loglik : NAN, fx->loglik);
        T_OK(ok && fabs(fit.loglik - fx->loglik) < 0.01, name);
        snprintf(name, sizeof name, "%s: AICc %.3f within 0.01 of R's %.3f", fx->name,
                 ok ? fit.aicc : NAN, fx->aicc);
        T_OK(ok && fabs(fit.aicc - fx->aicc) < 0.01, name);
        ts_options opt;
        ts_options_init(&opt);
        opt.period = fx->m;
        opt.h = fx->h;
        ts_result r;
        ok = ok && ts_arima_forecast(&fit, fx->y, fx->n, &opt, &r, &err) == 0;
        double dm = ok ? max_rel_diff(r.mean, fx->mean, fx->h) : 1.0;
        snprintf(name, sizeof name, "%s: forecasts within 0.1%% of R's (max %.4f%%)", fx->name,
                 100 * dm);
        T_OK(dm < 1e-3, name);
        double dp = ok ? fmax(max_rel_diff(ts_lower(&r, 1), fx->lo95, fx->h),
                              max_rel_diff(ts_upper(&r, 1), fx->hi95, fx->h))
                       : 1.0;
        snprintf(name, sizeof name, "%s: 95%% bounds within 1%% of R's (max %.3f%%)", fx->name,
                 100 * dp);
        T_OK(dp < 1e-2, name);
        if (ok)
            ts_result_free(&r);

        /* the search as R's default: n <= 150 and m <= 12 (all six fixtures)
         * rank every candidate by its exact-ML AICc (approximation = FALSE),
         * longer series by CSS then an ML refit (approximation = TRUE) */
        int exact = fx->n <= 150 && fx->m <= 12;
        const int *a = exact ? fx->exact : fx->approx;
        double r_aicc = exact ? fx->exact_aicc : fx->approx_aicc;
        ok = ts_arima_auto(fx->y, fx->n, fx->m, &fit, &err) == 0;
        char got[96];
        if (ok)
            ts_arima_name(&fit, got, sizeof got);
        else
            snprintf(got, sizeof got, "%.80s", err.msg);
        int same = ok && fit.p == a[0] && fit.d == a[1] && fit.q == a[2] && fit.P == a[3] &&
                   fit.D == a[4] && fit.Q == a[5] && fit.constant == a[7];
        /* the stepwise path can part from R's (AirPassengers: R's exact search
         * reaches (2,1,1)(0,1,0) through a neighbour our likelihood ranks
         * differently); then the model must be no worse than R's
         * approximation's and no better than R's exact optimum */
        int between = ok && !same && fit.aicc <= fx->approx_aicc + 0.01 &&
                      fit.aicc >= fx->exact_aicc - 0.01;
        parted += !same;
        snprintf(name, sizeof name, "%s: auto picks %s, R (%s) ARIMA(%d,%d,%d)(%d,%d,%d)%s%s",
                 fx->name, got, exact ? "exact" : "approximation", a[0], a[1], a[2], a[3],
                 a[4], a[5], a[7] ? " with a constant" : "",
                 between ? "; a different path, AICc between R's exact and approximate" : "");
        T_OK(same || between, name);
        snprintf(name, sizeof name, "%s: auto AICc %.3f within 0.01 of R's %.3f", fx->name,
                 ok ? fit.aicc : NAN, r_aicc);
        T_OK(ok && (between || fabs(fit.aicc - r_aicc) < 0.01), name);
        T_OK(ok && fit.nmodels > 3 && fit.nmodels <= TS_ARIMA_NMODELS, "search size reported");
    }
    snprintf(name, sizeof name, "auto.arima search: R's own model on all but %d of the fixtures",
             parted);
    T_OK(parted <= 1, name);
}

static void test_theta_zeros(void)
{
    char name[160];
    prm_error err;
    for (size_t i = 0; i < sizeof theta_fixtures / sizeof *theta_fixtures; i++) {
        const theta_fixture *fx = &theta_fixtures[i];
        ts_options o;
        ts_options_init(&o);
        o.period = fx->m;
        o.h = fx->h;
        o.method = TS_THETA;
        ts_result r;
        int ok = ts_forecast(fx->y, fx->n, &o, &r, &err) == 0;
        double seasonal = ok ? r.params[2].value : -1;
        if (strncmp(fx->name, "shutdown", 8) == 0) {
            /* thetaf: "Seasonal indexes close to zero", unadjusted data times
             * the indexes; we adjust additively instead */
            snprintf(name, sizeof name, "%s: additive seasonal adjustment", fx->name);
            T_OK(ok && seasonal == 2, name);
            double lo = INFINITY, hi = 0.0;
            for (int k = 0; ok && k < fx->h; k++) {
                lo = fmin(lo, r.mean[k]);
                hi = fmax(hi, r.mean[k]);
            }
            double d = ok ? max_rel_diff(r.mean, fx->mean, fx->h) : 0.0;
            snprintf(name, sizeof name, "%s: the shutdown season near 0 (%.1f, others up to "
                     "%.1f); R's forecasts differ (by up to %.0f%%)", fx->name, lo, hi, 100 * d);
            T_OK(ok && fabs(lo) < 0.15 * hi && d > 0.1, name);
        } else {
            double d = ok ? max_rel_diff(r.mean, fx->mean, fx->h) : 1.0;
            double dp = ok ? fmax(max_rel_diff(ts_lower(&r, 0), fx->lo80, fx->h),
                                  max_rel_diff(ts_upper(&r, 0), fx->hi80, fx->h))
                           : 1.0;
            /* the same seasonal decision and decomposition; the SES fits
             * differ within the optimisers' tolerance (zero_yearly: R stops
             * at alpha = 1e-4, l0 = 91.446, in-sample MSE 1625.756; ours at
             * l0 = 91.328, MSE 1625.740) */
            snprintf(name, sizeof name, "%s (seasonal %g): Theta within 0.2%% of thetaf, bounds "
                     "0.5%% (mean %.4f%%, 80%% bounds %.4f%%)", fx->name, seasonal, 100 * d,
                     100 * dp);
            T_OK(d < 2e-3 && dp < 5e-3, name);
        }
        if (ok)
            ts_result_free(&r);
    }
    /* Negative values: additive decomposition, a finite seasonal forecast. */
    double y[60];
    for (int t = 0; t < 60; t++)
        y[t] = 20.0 * sin(2 * M_PI * t / 12.0) + 0.1 * t + ((t * 7) % 5 - 2);
    ts_options o;
    ts_options_init(&o);
    o.period = 12;
    o.h = 12;
    o.method = TS_THETA;
    ts_result r;
    int ok = ts_forecast(y, 60, &o, &r, &err) == 0;
    T_OK(ok && r.params[2].value == 2, "negative data: additive seasonal Theta");
    double maxe = 0.0;
    for (int k = 0; ok && k < 12; k++)
        maxe = fmax(maxe, fabs(r.mean[k] - 20.0 * sin(2 * M_PI * (60 + k) / 12.0) - 6.0));
    snprintf(name, sizeof name, "negative data: the season is forecast (max error %.2f of "
             "amplitude 20)", maxe);
    T_OK(ok && maxe < 5.0, name);
    if (ok)
        ts_result_free(&r);
}

static unsigned long long lcg = 99;
static double gauss(void)
{
    double u[2];
    for (int i = 0; i < 2; i++) {
        lcg = lcg * 6364136223846793005ULL + 1442695040888963407ULL;
        u[i] = ((lcg >> 11) + 0.5) / 9007199254740992.0;
    }
    return sqrt(-2.0 * log(u[0])) * cos(2.0 * M_PI * u[1]);
}

static void test_recovery(void)
{
    enum { N = 600 };
    static double y[N];
    prm_error err;
    /* ARIMA(1,1,0) with drift: w_t - 0.5 = 0.7 (w_{t-1} - 0.5) + e_t, y = cumsum(w) */
    double w = 0.5, lvl = 100.0;
    for (int t = 0; t < N; t++) {
        w = 0.5 + 0.7 * (w - 0.5) + gauss();
        lvl += w;
        y[t] = lvl;
    }
    int ord[6] = {1, 1, 0, 0, 0, 0};
    ts_arima f;
    int ok = ts_arima_fit(y, N, 1, ord, 1, &f, &err) == 0;
    char name[160];
    snprintf(name, sizeof name, "ARIMA(1,1,0) with drift recovered: ar1 %.3f (0.7), drift %.3f "
             "(0.5), sigma2 %.3f (1)", ok ? f.phi[0] : NAN, ok ? f.mu : NAN, ok ? f.sigma2 : NAN);
    /* the drift's standard error is 1 / (0.3 sqrt(600)) = 0.136: 3.5 of them */
    T_OK(ok && fabs(f.phi[0] - 0.7) < 0.08 && fabs(f.mu - 0.5) < 0.48 &&
             fabs(f.sigma2 - 1.0) < 0.15, name);
    lvl = 0.0;
    for (int t = 0; t < 300; t++) {
        lvl += gauss();
        y[t] = lvl;
    }
    ok = ts_arima_auto(y, 300, 1, &f, &err) == 0;
    snprintf(name, sizeof name, "auto-ARIMA differences a random walk once (d %d)",
             ok ? f.d : -1);
    T_OK(ok && f.d == 1, name);
    /* KPSS: white noise is stationary, a random walk is not */
    double x[200], rw = 0.0;
    for (int t = 0; t < 200; t++) {
        x[t] = gauss();
    }
    T_OK(ts_kpss(x, 200) < 0.463, "KPSS accepts white noise");
    for (int t = 0; t < 200; t++) {
        rw += gauss();
        x[t] = rw;
    }
    T_OK(ts_kpss(x, 200) > 0.463, "KPSS rejects a random walk");
}

static void test_degenerate(void)
{
    prm_error err;
    double y[8] = {1, 3, 2, 5, 4, 6, 5, 7};
    ts_arima f;
    int ord[6] = {2, 1, 2, 1, 1, 1};
    T_OK(ts_arima_fit(y, 8, 4, ord, 0, &f, &err) != 0 && strstr(err.msg, "too few"),
         "fixed ARIMA on too few observations: error");
    int bad[6] = {1, 3, 0, 0, 0, 0};
    T_OK(ts_arima_fit(y, 8, 1, bad, 0, &f, &err) != 0 && strstr(err.msg, "d in 0..2"),
         "d = 3: error naming the range");
    int drift2[6] = {0, 2, 1, 0, 0, 0};
    double z[40];
    for (int t = 0; t < 40; t++)
        z[t] = t * t + (t % 3);
    T_OK(ts_arima_fit(z, 40, 1, drift2, 1, &f, &err) != 0 && strstr(err.msg, "constant"),
         "a constant with d = 2: error");
    ts_options o;
    ts_options_init(&o);
    o.method = TS_ARIMA;
    o.h = 3;
    ts_result r;
    T_OK(ts_forecast(y, 5, &o, &r, &err) == 0 && strstr(r.note, "naive"),
         "ARIMA on 5 observations: naive, noted");
    ts_result_free(&r);
    /* a straight line: differenced once it is constant; finite forecasts */
    double line[30];
    for (int t = 0; t < 30; t++)
        line[t] = 10.0 + 2.0 * t;
    T_OK(ts_forecast(line, 30, &o, &r, &err) == 0 && fabs(r.mean[2] - 74.0) < 1e-6,
         "ARIMA on a straight line continues it");
    ts_result_free(&r);
    T_OK(ts_method_parse("arima") == TS_ARIMA &&
             strcmp(ts_method_name(TS_ARIMA), "arima") == 0, "method name arima");
}

int main(void)
{
    test_against_r();
    test_theta_zeros();
    test_recovery();
    test_degenerate();
    return t_done();
}
