/* metrics.h - forecast accuracy measures shared by every backtest.
 *
 * Conventions (docs/TIMESERIES.md has the formulas):
 *   MAPE  = 100 mean |y-f|/|y| over the points with y != 0
 *   WAPE  = 100 sum |y-f| / sum |y|
 *   sMAPE = mean 200 |y-f| / (|y|+|f|)   (the M3 definition; 0/0 counts 0)
 *   MASE  = mean |y-f| / mean_{t>m} |x_t - x_{t-m}| over the in-sample x
 *           (seasonal scaling with period m; m = 1 when x is too short)
 *   bias  = mean (f - y), so over-forecasting is positive;
 *   bias_pct = 100 sum (f-y) / sum |y|
 *   coverage = percent of y inside [lower, upper]
 *   pinball  = mean over steps of the quantile (pinball) losses of the lower
 *              bound at tau = (1-L)/2 and the upper bound at 1-tau, averaged
 *   msis  = mean interval score (Gneiting & Raftery) scaled like MASE
 * A measure that is undefined for the data (MAPE with every y = 0, MASE
 * without in-sample data or with a constant in-sample series) is NaN.
 */
#ifndef PRM_METRICS_H
#define PRM_METRICS_H

#include "error.h"

#define METRICS_MAX_LEVELS 8

typedef struct metrics_interval {
    double level;               /* percent, e.g. 80 */
    const double *lower, *upper; /* h values each */
} metrics_interval;

typedef struct metrics_result {
    int n;                       /* points scored */
    double mape, wape, smape, mase, bias, bias_pct, mae, rmse;
    int nlevels;
    double level[METRICS_MAX_LEVELS];
    double coverage[METRICS_MAX_LEVELS];
    double pinball[METRICS_MAX_LEVELS];
    double msis[METRICS_MAX_LEVELS];
} metrics_result;

/* Scores forecast[0..h-1] against actual[0..h-1].  insample (n_in values,
 * may be NULL) gives the MASE/MSIS scale with seasonal period `period`.
 * Points where the actual or the forecast is NaN are skipped. */
int metrics_compute(const double *actual, const double *forecast, int h,
                    const double *insample, int n_in, int period,
                    const metrics_interval *iv, int niv, metrics_result *out,
                    prm_error *err);

/* The in-sample MAE of the seasonal naive forecast (the MASE denominator);
 * NaN when undefined. */
double metrics_mase_scale(const double *insample, int n_in, int period);
double metrics_smape(const double *actual, const double *forecast, int h);
/* The pinball loss of quantile q at probability tau for one point. */
double metrics_pinball(double actual, double q, double tau);

#endif
