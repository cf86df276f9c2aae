/* metrics.c - forecast accuracy measures (see metrics.h for the formulas). */
#include <math.h>
#include <string.h>

#include "metrics.h"

double metrics_mase_scale(const double *x, int n, int period)
{
    if (!x || n < 2)
        return NAN;
    int m = (period >= 1 && n > period) ? period : 1;
    double s = 0.0;
    int c = 0;
    for (int t = m; t < n; t++) {
        if (isnan(x[t]) || isnan(x[t - m]))
            continue;
        s += fabs(x[t] - x[t - m]);
        c++;
    }
    if (c == 0 || !(s > 0.0))
        return NAN;
    return s / c;
}

double metrics_smape(const double *y, const double *f, int h)
{
    double s = 0.0;
    int c = 0;
    for (int k = 0; k < h; k++) {
        if (isnan(y[k]) || isnan(f[k]))
            continue;
        double d = fabs(y[k]) + fabs(f[k]);
        s += d > 0.0 ? 200.0 * fabs(y[k] - f[k]) / d : 0.0;
        c++;
    }
    return c ? s / c : NAN;
}

double metrics_pinball(double y, double q, double tau)
{
    return y >= q ? tau * (y - q) : (1.0 - tau) * (q - y);
}

int metrics_compute(const double *y, const double *f, int h, const double *insample,
                    int n_in, int period, const metrics_interval *iv, int niv,
                    metrics_result *out, prm_error *err)
{
    memset(out, 0, sizeof *out);
    if (!y || !f || h < 1)
        return prm_error_set(err, "metrics: need at least one actual and forecast");
    if (niv < 0 || niv > METRICS_MAX_LEVELS)
        return prm_error_set(err, "metrics: at most %d interval levels", METRICS_MAX_LEVELS);
    for (int j = 0; j < niv; j++)
        if (!(iv[j].level > 0.0 && iv[j].level < 100.0) || !iv[j].lower || !iv[j].upper)
            return prm_error_set(err, "metrics: interval %d needs a level in (0, 100) and bounds",
                                 j + 1);
    double sape = 0.0, sae = 0.0, say = 0.0, se = 0.0, sse = 0.0, ssm = 0.0;
    int n = 0, nape = 0;
    double cov[METRICS_MAX_LEVELS] = {0}, pin[METRICS_MAX_LEVELS] = {0},
           isc[METRICS_MAX_LEVELS] = {0};
    for (int k = 0; k < h; k++) {
        if (isnan(y[k]) || isnan(f[k]))
            continue;
        double e = f[k] - y[k], ae = fabs(e);
        n++;
        sae += ae;
        say += fabs(y[k]);
        se += e;
        sse += e * e;
        if (y[k] != 0.0) {
            sape += ae / fabs(y[k]);
            nape++;
        }
        double d = fabs(y[k]) + fabs(f[k]);
        ssm += d > 0.0 ? 200.0 * ae / d : 0.0;
        for (int j = 0; j < niv; j++) {
            double lo = iv[j].lower[k], hi = iv[j].upper[k];
            double a = 1.0 - iv[j].level / 100.0, tau = a / 2.0;
            cov[j] += (y[k] >= lo && y[k] <= hi);
            pin[j] += 0.5 * (metrics_pinball(y[k], lo, tau) + metrics_pinball(y[k], hi, 1.0 - tau));
            isc[j] += (hi - lo) + (2.0 / a) * (lo - y[k]) * (y[k] < lo) +
                      (2.0 / a) * (y[k] - hi) * (y[k] > hi);
        }
    }
    if (n == 0)
        return prm_error_set(err, "metrics: every point is missing");
    double scale = metrics_mase_scale(insample, n_in, period);
    out->n = n;
    out->mape = nape ? 100.0 * sape / nape : NAN;
    out->wape = say > 0.0 ? 100.0 * sae / say : NAN;
    out->smape = ssm / n;
    out->mae = sae / n;
    out->mase = out->mae / scale; /* NaN when the scale is */
    out->bias = se / n;
    out->bias_pct = say > 0.0 ? 100.0 * se / say : NAN;
    out->rmse = sqrt(sse / n);
    out->nlevels = niv;
    for (int j = 0; j < niv; j++) {
        out->level[j] = iv[j].level;
        out->coverage[j] = 100.0 * cov[j] / n;
        out->pinball[j] = pin[j] / n;
        out->msis[j] = isc[j] / n / scale;
    }
    return 0;
}
