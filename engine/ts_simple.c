/* ts_simple.c - Theta, intermittent demand (Croston, SBA, TSB) and the
 * baselines (naive, seasonal naive, drift, mean).
 *
 * Theta follows forecast::thetaf (Hyndman & Billah 2003): a 90% ACF test at
 * lag m decides on a classical multiplicative decomposition; the seasonally
 * adjusted series gets simple exponential smoothing plus half the slope of a
 * linear trend; the forecast is reseasonalised.  Baseline intervals are R's
 * (rwf, snaive, meanf with normal quantiles).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>

#include "ts_int.h"

/* ---- Theta ---- */

int ts_seasonal_test(const double *y, int n, int m)
{
    if (m < 2 || n <= 2 * m)
        return 0;
    double mu = 0.0;
    for (int i = 0; i < n; i++)
        mu += y[i];
    mu /= n;
    double c0 = 0.0;
    for (int i = 0; i < n; i++)
        c0 += (y[i] - mu) * (y[i] - mu);
    if (!(c0 > 0.0))
        return 0;
    double sum2 = 0.0, rm = 0.0;
    for (int k = 1; k <= m; k++) {
        double ck = 0.0;
        for (int i = 0; i + k < n; i++)
            ck += (y[i] - mu) * (y[i + k] - mu);
        double r = ck / c0;
        if (k < m)
            sum2 += r * r;
        else
            rm = r;
    }
    double stat = sqrt((1.0 + 2.0 * sum2) / n);
    return fabs(rm) / stat > 1.6448536269514722; /* qnorm(0.95) */
}

/* ---- seasonal indexes pooled over sibling series ---- */

/* The upper p-quantile of chi-square with k degrees of freedom (Wilson and
 * Hilferty 1931; within 1% of the exact value for k >= 3 at p = 0.01). */
static double chisq_upper(double k, double p)
{
    double z = ts_qnorm(1.0 - p), c = 2.0 / (9.0 * k);
    double w = 1.0 - c + z * sqrt(c);
    return k * w * w * w;
}

/* Ratios of one sibling to its own linear trend (fitted to its
 * deseasonalised values); 0 when it has too few positive points. */
static int sibling_ratios(const double *y, int n, int m, const double *fig, double *ratio)
{
    double sx = 0, sy = 0, sxx = 0, sxy = 0;
    int k = 0;
    for (int i = 0; i < n; i++) {
        if (!isfinite(y[i]))
            continue;
        double v = y[i] / fig[((i - n) % m + m) % m];
        sx += i;
        sy += v;
        sxx += (double)i * i;
        sxy += i * v;
        k++;
    }
    if (k < 3 || !(sy > 0))
        return 0;
    double d = k * sxx - sx * sx;
    double b = d > 0 ? (k * sxy - sx * sy) / d : 0.0, a = (sy - b * sx) / k;
    for (int i = 0; i < n; i++) {
        double tr = a + b * i;
        ratio[i] = isfinite(y[i]) && tr > 0 ? y[i] / tr : NAN;
    }
    return 1;
}

static int pool_done(double *ratio, int rc)
{
    free(ratio);
    return rc;
}

int ts_season_pool(const double *y, int count, int n, int m, double *figure, prm_error *err)
{
    if (m < 2 || m > TS_ETS_MAX_PERIOD)
        return prm_error_set(err, "ts: season pool period must be in 2..%d, got %d",
                             TS_ETS_MAX_PERIOD, m);
    if (!y || count < 0 || n < 1)
        return prm_error_set(err, "ts: season pool needs count >= 0 series of n >= 1 values");
    for (int k = 0; k < m; k++)
        figure[k] = 1.0;
    for (size_t i = 0; i < (size_t)count * (size_t)n; i++)
        if (y[i] < 0)
            return 0; /* multiplicative indexes need non-negative data */
    double *ratio = malloc((size_t)n * sizeof *ratio);
    if (!ratio)
        return prm_error_set(err, "ts: out of memory");
    double fig[TS_ETS_MAX_PERIOD], sum[TS_ETS_MAX_PERIOD], ss[TS_ETS_MAX_PERIOD];
    int cnt[TS_ETS_MAX_PERIOD], used = 0;
    for (int k = 0; k < m; k++)
        fig[k] = 1.0;
    /* Three rounds: each sibling's trend is refitted to its values adjusted
     * by the pooled indexes of the round before. */
    for (int round = 0; round < 3; round++) {
        memset(sum, 0, sizeof sum);
        memset(ss, 0, sizeof ss);
        memset(cnt, 0, sizeof cnt);
        used = 0;
        for (int s = 0; s < count; s++) {
            if (!sibling_ratios(y + (size_t)s * (size_t)n, n, m, fig, ratio))
                continue;
            used++;
            for (int i = 0; i < n; i++)
                if (isfinite(ratio[i])) {
                    int k = ((i - n) % m + m) % m;
                    sum[k] += ratio[i];
                    ss[k] += ratio[i] * ratio[i];
                    cnt[k]++;
                }
        }
        double mean = 0;
        for (int k = 0; k < m; k++) {
            if (cnt[k] < 2) {
                free(ratio);
                return 0; /* a season seen fewer than twice: nothing to pool */
            }
            fig[k] = sum[k] / cnt[k];
            mean += fig[k] / m;
        }
        for (int k = 0; k < m; k++)
            fig[k] /= mean;
    }
    /* One-way analysis of variance of the last round's ratios by season:
     * (m - 1) F against chi-square(m - 1) at 1%.  Siblings whose patterns
     * differ (or have none) leave the seasons' means close together against
     * the spread within each season. */
    double N = 0, grand = 0, ssb = 0, ssw = 0;
    for (int k = 0; k < m; k++) {
        N += cnt[k];
        grand += sum[k];
    }
    grand /= N;
    for (int k = 0; k < m; k++) {
        double mk = sum[k] / cnt[k];
        ssb += cnt[k] * (mk - grand) * (mk - grand);
        ssw += ss[k] - cnt[k] * mk * mk;
    }
    if (used < 2 || N - m < 1 || !(ssw > 0))
        return pool_done(ratio, 0);
    double stat = ssb / (ssw / (N - m));
    if (!(stat > chisq_upper(m - 1, TS_SEASON_POOL_ALPHA)))
        return pool_done(ratio, 0);
    /* The siblings must share the pattern, not only average to one: the
     * indexes pooled without a sibling must bring significantly more than
     * half of them closer to their own ratios than no season does
     * (siblings with their own phases still average to a weak pattern,
     * which the test above finds in a quarter of such groups of 8). */
    int closer = 0;
    for (int s = 0; s < count; s++) {
        if (!sibling_ratios(y + (size_t)s * (size_t)n, n, m, fig, ratio))
            continue;
        double os[TS_ETS_MAX_PERIOD] = {0}, e1 = 0, ef = 0;
        int oc[TS_ETS_MAX_PERIOD] = {0};
        for (int i = 0; i < n; i++)
            if (isfinite(ratio[i])) {
                int k = ((i - n) % m + m) % m;
                os[k] += ratio[i];
                oc[k]++;
            }
        for (int i = 0; i < n; i++) {
            if (!isfinite(ratio[i]))
                continue;
            int k = ((i - n) % m + m) % m;
            double rest = cnt[k] > oc[k] ? (sum[k] - os[k]) / (cnt[k] - oc[k]) : 1.0;
            e1 += (ratio[i] - 1) * (ratio[i] - 1);
            ef += (ratio[i] - rest) * (ratio[i] - rest);
        }
        closer += ef < e1;
    }
    /* a one-sided sign test at 5%: P(X >= closer) for X ~ Binomial(used,
     * 1/2); so at least 5 siblings, 7 of 8, 8 of 10 */
    double tail = 0, c = 1;
    for (int k = 0; k <= used; k++) {
        if (k >= closer)
            tail += c;
        c = c * (used - k) / (k + 1);
    }
    if (!(tail * pow(0.5, used) < 0.05))
        return pool_done(ratio, 0);
    for (int k = 0; k < m; k++)
        figure[k] = fig[k];
    return pool_done(ratio, 1);
}

int ts_theta(const double *y, int n, int m, const ts_options *opt, ts_result *r, prm_error *err)
{
    double *x = malloc((size_t)n * sizeof *x);
    if (!x)
        return prm_error_set(err, "theta: out of memory");
    double fig[256];
    int seasonal = 0, additive = 0;
    for (int i = 0; i < n; i++)
        if (y[i] < 0.0)
            additive = 1;
    /* R's test and multiplicative decomposition, which zeros do not break
     * (0/0 terms are dropped); negative values would make the seasonal
     * indexes meaningless, so there the decomposition is additive (not in
     * R, documented). */
    if (m > 1 && m <= 256 && ts_seasonal_test(y, n, m) &&
        ts_decompose(y, n, m, !additive, fig) == 0) {
        seasonal = 1;
        /* A season that is zero every year has an index of 0.  thetaf then
         * leaves the data unadjusted but still multiplies the forecasts by
         * the indexes; we decompose additively instead (documented). */
        for (int i = 0; i < m && !additive; i++)
            if (!(fabs(fig[i]) >= 1e-4)) {
                additive = 1;
                if (ts_decompose(y, n, m, 0, fig) != 0)
                    seasonal = 0;
            }
    }
    for (int i = 0; i < n; i++)
        x[i] = !seasonal ? y[i] : additive ? y[i] - fig[i % m] : y[i] / fig[i % m];
    ts_ets ses;
    if (ts_ets_fit(x, n, 1, "ANN", 0, &ses, err) != 0) {
        free(x);
        return prm_error_prefix(err, "theta: ");
    }
    /* half the slope of lsfit(0:(n-1), x) */
    double mt = (n - 1) / 2.0, mx = 0.0, sxy = 0.0, sxx = 0.0;
    for (int i = 0; i < n; i++)
        mx += x[i];
    mx /= n;
    for (int i = 0; i < n; i++) {
        sxy += (i - mt) * (x[i] - mx);
        sxx += (i - mt) * (i - mt);
    }
    double b = sxy / sxx / 2.0;
    free(x);
    if (ts_result_alloc(r, opt, err) != 0)
        return -1;
    double alpha = fmax(1e-10, ses.alpha);
    double tail = (1.0 - pow(1.0 - alpha, n)) / alpha;
    double *se = malloc((size_t)opt->h * sizeof *se);
    if (!se) {
        ts_result_free(r);
        return prm_error_set(err, "theta: out of memory");
    }
    for (int k = 0; k < opt->h; k++) {
        double f = ses.x[0] + b * (k + tail);
        if (seasonal && additive)
            f += fig[(n + k) % m];
        else if (seasonal)
            f *= fig[(n + k) % m];
        r->mean[k] = f;
        se[k] = sqrt(ses.sigma2) * sqrt(k * alpha * alpha + 1.0);
    }
    ts_normal_intervals(r, se);
    free(se);
    snprintf(r->method, sizeof r->method, "Theta");
    ts_add_param(r, "alpha", ses.alpha);
    ts_add_param(r, "drift", b);
    ts_add_param(r, "seasonal", seasonal ? (additive ? 2 : 1) : 0);
    r->sigma2 = ses.sigma2;
    return 0;
}

/* ---- intermittent demand ---- */

typedef struct icast {
    double fc;   /* forecast per period */
    double mse;  /* in-sample one-step MSE from the first demand on */
    double a, b; /* smoothing parameters */
} icast;

/* Croston (sba = 0) or Syntetos-Boylan (sba = 1) with smoothing alpha, both
 * SES filters started at their first value (R's croston, initial "simple").
 * Residuals go to res (length n) when not NULL; returns their count. */
static int croston(const double *y, int n, double alpha, int sba, icast *out, double *res)
{
    double z = 0.0, p = 0.0, sse = 0.0;
    int started = 0, last = -1, nres = 0;
    double corr = sba ? 1.0 - alpha / 2.0 : 1.0;
    for (int t = 0; t < n; t++) {
        if (started) {
            double f = corr * z / p, e = y[t] - f;
            sse += e * e;
            if (res)
                res[nres] = e;
            nres++;
        }
        if (y[t] != 0.0) {
            double q = t - last;
            if (!started) {
                z = y[t];
                p = q;
                started = 1;
            } else {
                z += alpha * (y[t] - z);
                p += alpha * (q - p);
            }
            last = t;
        }
    }
    out->fc = started ? corr * z / p : 0.0;
    out->mse = nres ? sse / nres : INFINITY;
    out->a = alpha;
    out->b = NAN;
    return nres;
}

/* Teunter-Syntetos-Babai: demand probability updated every period, size on
 * demand; the forecast is probability x size. */
static int tsb(const double *y, int n, double alpha, double beta, icast *out, double *res)
{
    int first = 0, nz = 0;
    double zsum = 0.0;
    for (int t = 0; t < n; t++)
        if (y[t] != 0.0) {
            nz++;
            zsum += y[t];
        }
    while (first < n && y[first] == 0.0)
        first++;
    double d = (double)nz / n, z = nz ? zsum / nz : 0.0, sse = 0.0;
    int nres = 0;
    for (int t = 0; t < n; t++) {
        if (t > first) {
            double e = y[t] - d * z;
            sse += e * e;
            if (res)
                res[nres] = e;
            nres++;
        }
        int hit = y[t] != 0.0;
        d += beta * (hit - d);
        if (hit)
            z += alpha * (y[t] - z);
    }
    out->fc = d * z;
    out->mse = nres ? sse / nres : INFINITY;
    out->a = alpha;
    out->b = beta;
    return nres;
}

int ts_intermittent(const double *y, int n, ts_method which, const ts_options *opt,
                    ts_result *r, prm_error *err)
{
    static const double ga[] = {0.05, 0.1, 0.2, 0.3};
    static const double gb[] = {0.02, 0.05, 0.1, 0.2, 0.3};
    icast cr, sb, ts = {0, INFINITY, 0, 0}, t;
    croston(y, n, 0.1, 0, &cr, NULL);
    croston(y, n, 0.1, 1, &sb, NULL);
    for (size_t i = 0; i < sizeof ga / sizeof *ga; i++)
        for (size_t j = 0; j < sizeof gb / sizeof *gb; j++) {
            tsb(y, n, ga[i], gb[j], &t, NULL);
            if (t.mse < ts.mse)
                ts = t;
        }
    if (which == TS_CROSTON) {
        which = TS_SBA;
        double best = sb.mse;
        if (cr.mse < best) {
            best = cr.mse;
            which = TS_CROSTON_CLASSIC;
        }
        if (ts.mse < best)
            which = TS_TSB;
    }
    double *res = malloc((size_t)(n + 1) * sizeof *res);
    if (!res)
        return prm_error_set(err, "croston: out of memory");
    icast c;
    int nres;
    const char *name;
    if (which == TS_TSB) {
        nres = tsb(y, n, ts.a, ts.b, &c, res);
        name = "TSB";
    } else {
        nres = croston(y, n, 0.1, which == TS_SBA, &c, res);
        name = which == TS_SBA ? "SBA" : "Croston";
    }
    if (ts_result_alloc(r, opt, err) != 0) {
        free(res);
        return -1;
    }
    snprintf(r->method, sizeof r->method, "%s", name);
    ts_add_param(r, "alpha", c.a);
    if (which == TS_TSB)
        ts_add_param(r, "beta", c.b);
    int nonneg = 1;
    for (int i = 0; i < n; i++)
        if (y[i] < 0.0)
            nonneg = 0;
    /* Intervals: the empirical distribution of in-sample one-step errors
     * around the per-period forecast (flat over the horizon); with fewer than
     * 5 errors, normal quantiles with the sample's standard deviation. */
    ts_sort(res, nres);
    double sd = 0.0, mu = 0.0;
    for (int i = 0; i < n; i++)
        mu += y[i];
    mu /= n;
    for (int i = 0; i < n; i++)
        sd += (y[i] - mu) * (y[i] - mu);
    sd = sqrt(sd / (n - 1));
    for (int k = 0; k < opt->h; k++) {
        r->mean[k] = c.fc;
        for (int j = 0; j < r->nlevels; j++) {
            double a = (1.0 - r->levels[j] / 100.0) / 2.0, lo, hi;
            if (nres >= 5) {
                lo = c.fc + ts_quantile_sorted(res, nres, a);
                hi = c.fc + ts_quantile_sorted(res, nres, 1.0 - a);
            } else {
                double z = ts_qnorm(1.0 - a);
                lo = c.fc - z * sd;
                hi = c.fc + z * sd;
            }
            if (nonneg && lo < 0.0)
                lo = 0.0;
            if (lo > c.fc)
                lo = c.fc;
            if (hi < c.fc)
                hi = c.fc;
            r->lower[j * opt->h + k] = lo;
            r->upper[j * opt->h + k] = hi;
        }
    }
    r->sigma2 = c.mse;
    free(res);
    return 0;
}

/* ---- baselines ---- */

int ts_baseline(const double *y, int n, int m, ts_method which, const ts_options *opt,
                ts_result *r, prm_error *err)
{
    int h = opt->h;
    const char *note = NULL;
    if (which == TS_SNAIVE && (m < 2 || n <= m)) {
        which = TS_NAIVE;
        note = m < 2 ? NULL : "seasonal naive needs more than one period: naive";
    }
    if (which == TS_DRIFT && n < 3)
        which = TS_NAIVE;
    if (ts_result_alloc(r, opt, err) != 0)
        return -1;
    double *se = malloc((size_t)h * sizeof *se);
    if (!se) {
        ts_result_free(r);
        return prm_error_set(err, "baseline: out of memory");
    }
    double s2 = 0.0;
    int cnt = 0;
    if (which == TS_NAIVE || which == TS_SNAIVE) {
        int lag = which == TS_SNAIVE ? m : 1;
        for (int t = lag; t < n; t++) {
            double e = y[t] - y[t - lag];
            s2 += e * e;
            cnt++;
        }
        double sig = sqrt(s2 / cnt);
        for (int k = 0; k < h; k++) {
            if (which == TS_NAIVE) {
                r->mean[k] = y[n - 1];
                se[k] = sig * sqrt(k + 1.0);
            } else {
                r->mean[k] = y[n - m + (k % m)];
                se[k] = sig * sqrt((double)(k / m + 1));
            }
        }
        snprintf(r->method, sizeof r->method, which == TS_NAIVE ? "Naive" : "Seasonal naive");
    } else if (which == TS_DRIFT) {
        double slope = (y[n - 1] - y[0]) / (n - 1);
        for (int t = 1; t < n; t++) {
            double e = y[t] - y[t - 1] - slope;
            s2 += e * e;
        }
        double sig = sqrt(s2 / (n - 2));
        for (int k = 0; k < h; k++) {
            double kk = k + 1.0;
            r->mean[k] = y[n - 1] + slope * kk;
            se[k] = sig * sqrt(kk * (1.0 + kk / (n - 1)));
        }
        snprintf(r->method, sizeof r->method, "Drift");
        ts_add_param(r, "drift", slope);
    } else {
        double mu = 0.0;
        for (int t = 0; t < n; t++)
            mu += y[t];
        mu /= n;
        for (int t = 0; t < n; t++)
            s2 += (y[t] - mu) * (y[t] - mu);
        double sig = sqrt(s2 / (n - 1));
        for (int k = 0; k < h; k++) {
            r->mean[k] = mu;
            se[k] = sig * sqrt(1.0 + 1.0 / n);
        }
        snprintf(r->method, sizeof r->method, "Mean");
    }
    ts_normal_intervals(r, se);
    free(se);
    if (note)
        snprintf(r->note, sizeof r->note, "%s", note);
    return 0;
}
