/* ts.h - the time-series forecasting core: ETS, Theta, intermittent demand,
 * baselines and their combination (issue 3; method notes in docs/TIMESERIES.md).
 *
 * Plain arrays in, a ts_result out; nothing here knows about Lua or SQLite.
 * The forecast-assembly module calls it directly:
 *
 *   ts_options o;
 *   ts_options_init(&o);            // auto method, 80/95% intervals
 *   o.period = 12; o.h = 18;
 *   ts_result r;
 *   if (ts_forecast(y, n, &o, &r, &err) != 0) ... err.msg ...
 *   ... r.mean[k], ts_lower(&r, 0)[k] (80%), ts_upper(&r, 1)[k] (95%) ...
 *   ts_result_free(&r);
 *
 * Missing values are NaN.  Leading NaNs are dropped, interior NaNs are filled
 * by linear interpolation, a trailing NaN is an error (the forecast origin
 * would be ambiguous).  Every successful result holds only finite numbers.
 * Results are deterministic: the simulation paths use opt->seed.
 */
#ifndef PRM_TS_H
#define PRM_TS_H

#include "error.h"

#define TS_MAX_LEVELS 8      /* interval levels per call */
#define TS_MAX_PARAMS 8      /* named parameters reported per result */
#define TS_ETS_MAX_PERIOD 24 /* ETS seasonal models only for m <= 24, as R */

typedef enum ts_method {
    TS_AUTO = 0,   /* intermittent family when >= 30% zeros, else TS_COMBO */
    TS_ETS,        /* ETS, model chosen by AICc unless opt->ets_model is set */
    TS_THETA,      /* standard Theta (forecast::thetaf) */
    TS_CROSTON,    /* intermittent: best of Croston/SBA/TSB by in-sample MSE */
    TS_CROSTON_CLASSIC, TS_SBA, TS_TSB,
    TS_NAIVE, TS_SNAIVE, TS_DRIFT, TS_MEAN,
    TS_DAMPED,     /* ETS restricted to damped-trend models, by AICc */
    TS_COMBO,      /* equal-weight mean of auto-ETS, auto-ARIMA and Theta ("EAT") */
    TS_ARIMA       /* seasonal ARIMA, orders chosen as forecast::auto.arima */
} ts_method;
#define TS_METHOD_LAST TS_ARIMA

typedef struct ts_options {
    int period;            /* seasonal period m (12 monthly, 4 quarterly); 1 = none */
    int h;                 /* forecast horizon, 1..10000 */
    ts_method method;
    const char *ets_model; /* "ZZZ" (auto) or e.g. "MAdM", "ANN", "AZN"; NULL = auto */
    int nlevels;           /* interval levels in percent, each in (0, 100) */
    double levels[TS_MAX_LEVELS];
    unsigned long long seed; /* simulation seed (ETS models without analytic intervals) */
    int npaths;            /* simulation paths, default 2000 (fewer when
                              npaths x h > 2.5M, at least 100) */
    int calib_origins;     /* TS_COMBO (and so TS_AUTO): rolling origins in the
                              training data whose errors rescale the interval
                              widths, default TS_CALIB_ORIGINS; 0 = members'
                              widths unchanged (docs/TIMESERIES.md) */
    double calib_pool[TS_MAX_LEVELS]; /* per level: the width factor pooled over
                              series of the same frequency (ts_calib_pool): a
                              series with fewer rolling-origin errors than
                              CAL_MIN_ERRORS (ts.c) takes it in place of its own
                              factor (no shrinkage); 0 = none */
    const struct ts_calib_cache *calib_cache; /* NULL, or the ratios kept by
                              ts_calib_pool_keep: the calibration of series
                              calib_index takes its rolling-origin ratios from
                              there instead of refitting them (the same series
                              and options as the pool pass; an entry whose
                              data, h, levels or origins differ is refitted) */
    int calib_index;
    const double *season;  /* period indexes from ts_season_pool (NULL = none):
                              a series shorter than 2 periods is divided by
                              them, forecast without a season and multiplied
                              back; longer series ignore them */
} ts_options;
#define TS_CALIB_ORIGINS 5

typedef struct ts_param {
    char name[16];
    double value;
} ts_param;

typedef struct ts_result {
    int h, nlevels;
    double levels[TS_MAX_LEVELS];
    double *mean;          /* h point forecasts */
    double *lower, *upper; /* nlevels * h; level j is lower[j*h .. j*h+h-1] */
    char method[96];       /* "ETS(M,Ad,M)", "Theta", "SBA", "Combo(...)" */
    int nparams;
    ts_param params[TS_MAX_PARAMS]; /* alpha, beta, gamma, phi, ... */
    double aicc, loglik, sigma2;    /* ETS only; NaN otherwise */
    int n_used;            /* observations used after dropping leading NaNs */
    int n_filled;          /* interior NaNs filled by interpolation */
    char note[96];         /* the fallback taken, if any ("" otherwise) */
} ts_result;

void ts_options_init(ts_options *opt);

/* Forecasts y[0..n-1] h steps ahead.  Returns 0 and fills *out (free it with
 * ts_result_free), or -1 with err->msg; *out needs no freeing on failure. */
int ts_forecast(const double *y, int n, const ts_options *opt, ts_result *out,
                prm_error *err);
void ts_result_free(ts_result *r);

/* Pools the combination's rolling-origin calibration over count series of
 * the same frequency (the training data of each; opt->period, h, levels and
 * calib_origins as they will be forecast): sets opt->calib_pool[j] to the
 * width factor of all their ratios together, so that a short series, whose
 * own rolling-origin errors are few, borrows from its frequency.  Series
 * the forecast would not calibrate (too short, intermittent, unreadable) are
 * skipped; with opt->season set, a series shorter than 2 periods is
 * calibrated as it will be forecast (divided by the indexes, without a
 * season), so siblings pool their widths too.  Returns 1 when the pool was set, 0 when the series gave too few
 * errors (calib_pool left 0), -1 on bad options. */
int ts_calib_pool(const double *const *y, const int *n, int count, ts_options *opt,
                  prm_error *err);

/* Each series' rolling-origin ratios from the pool pass, kept so that the
 * forecasts after it do not refit them (issue 11: the pass made the default
 * cost 1.55-1.8x its unpooled CPU).  Filled by ts_calib_pool_keep, freed by
 * ts_calib_cache_free; read-only while forecasts use it. */
typedef struct ts_calib_cache {
    int count, cap, nlevels, h, origins;  /* the options the ratios were made with */
    double levels[TS_MAX_LEVELS];
    int *len;              /* per series: cleaned length (0 = not kept) */
    unsigned long long *hash; /* per series: hash of the data the ratios came from */
    int *nratios;          /* per series: ratios kept (-1 = not computed) */
    double *ratio;         /* series i, level j: ratio[(i * nlevels + j) * cap ..] */
} ts_calib_cache;

/* ts_calib_pool that also keeps every series' ratios in *cache (freed and
 * refilled); then forecast series i with opt->calib_cache = cache and
 * opt->calib_index = i: the result is the same as without the cache. */
int ts_calib_pool_keep(const double *const *y, const int *n, int count, ts_options *opt,
                       ts_calib_cache *cache, prm_error *err);
void ts_calib_cache_free(ts_calib_cache *cache);

/* The bounds of interval level index j (0 <= j < r->nlevels). */
const double *ts_lower(const ts_result *r, int j);
const double *ts_upper(const ts_result *r, int j);

/* Parses "auto", "ets", "theta", "croston", "sba", "tsb", "croston_classic",
 * "naive", "snaive", "drift", "mean", "damped", "combo", "arima"; -1 when
 * unknown. */
int ts_method_parse(const char *name);
const char *ts_method_name(ts_method m);

/* ---- lower-level pieces, exposed for tests and the benchmark ---- */

/* A fitted ETS model (states on the scale of the data). */
typedef struct ts_ets {
    char error, trend, season;   /* 'A'/'M', 'N'/'A', 'N'/'A'/'M' */
    int damped, m;               /* m = 1 for non-seasonal models */
    double alpha, beta, gamma, phi;
    double x[2 + TS_ETS_MAX_PERIOD]; /* final state: l, [b], s (s[0] newest) */
    double x0[2 + TS_ETS_MAX_PERIOD];/* initial state, same layout */
    int n, npar;                 /* observations; estimated parameters */
    double loglik, aic, aicc, bic, sigma2, mse;
} ts_ets;

/* Fits one ETS model given by a three- or four-letter spec ("MAdM", "ANN"),
 * or selects one by AICc when the spec contains 'Z' ("ZZZ", "ZAdZ").
 * damped_only restricts the search to damped-trend models. */
int ts_ets_fit(const double *y, int n, int period, const char *spec, int damped_only,
               ts_ets *fit, prm_error *err);
/* Point forecasts and intervals from a fitted model into r (allocated). */
int ts_ets_forecast(const ts_ets *fit, const ts_options *opt, ts_result *r,
                    prm_error *err);
/* "ETS(M,Ad,M)" */
void ts_ets_name(const ts_ets *fit, char *buf, int size);

/* The inverse of the standard normal distribution function. */
double ts_qnorm(double p);

/* forecast::thetaf's seasonality test: the lag-m autocorrelation exceeds its
 * 90% two-sided bound (one-sided 95%).  Needs n > 2m. */
int ts_seasonal_test(const double *y, int n, int m);

/* Classical multiplicative (or additive) decomposition as R's decompose():
 * fills figure[0..m-1], the seasonal index of the position of y[0], y[1], ... */
int ts_decompose(const double *y, int n, int m, int multiplicative, double *figure);

/* Seasonal indexes pooled over sibling series (issue 11, item 4): count
 * series of n values each, row-major in y (NaN = missing), on one time axis
 * that ends at the forecast origin, with period m (2..TS_ETS_MAX_PERIOD).
 * Each sibling is divided by its own linear trend; the ratios are averaged
 * per season over all siblings (three rounds, the trends refitted to the
 * adjusted values), and a one-way analysis of variance of the ratios by
 * season decides (chi-square at TS_SEASON_POOL_ALPHA).  figure[k] is the
 * multiplicative index of the season of forecast step k + 1 (so y[i] has
 * figure[(i - n) mod m]); mean 1.  Returns 1 when the pooled data are
 * seasonal, 0 when not (figure all 1: negative data, fewer than two usable
 * siblings, a season seen fewer than twice, the test), -1 on bad arguments.
 * Pass figure as ts_options.season to forecast a short sibling with it. */
#define TS_SEASON_POOL_ALPHA 0.01
int ts_season_pool(const double *y, int count, int n, int m, double *figure, prm_error *err);

/* ---- ARIMA (ts_arima.c) ---- */

#define TS_ARIMA_MAX_P 5       /* p, q <= 5 */
#define TS_ARIMA_MAX_SP 2      /* P, Q <= 2 */
#define TS_ARIMA_MAX_PERIOD 24 /* seasonal ARIMA only for m <= 24 */
#define TS_ARIMA_NMODELS 94    /* stepwise search budget, as auto.arima */

/* ARIMA(p,d,q)(P,D,Q)m; with a constant, mu is the mean of the differenced
 * series (the mean for d + D = 0; the drift per period for d = 1, D = 0;
 * m times the drift for D = 1, d = 0). */
typedef struct ts_arima {
    int p, d, q, P, D, Q, m;     /* m = 1 for non-seasonal models */
    int constant;
    double phi[TS_ARIMA_MAX_P], theta[TS_ARIMA_MAX_P];
    double sphi[TS_ARIMA_MAX_SP], stheta[TS_ARIMA_MAX_SP];
    double mu, sigma2, loglik, aic, aicc, bic;
    int n;                       /* observations */
    int nmodels;                 /* models the search fitted (0: fixed orders) */
} ts_arima;

/* Fits the orders {p, d, q, P, D, Q} (seasonal ones with period m) by CSS
 * then exact maximum likelihood; constant needs d + D <= 1. */
int ts_arima_fit(const double *y, int n, int m, const int order[6], int constant,
                 ts_arima *fit, prm_error *err);
/* Chooses d (KPSS), D (seasonal strength) and the orders (stepwise AICc)
 * as forecast::auto.arima; the chosen model is fitted by exact ML. */
int ts_arima_auto(const double *y, int n, int m, ts_arima *fit, prm_error *err);
/* Point forecasts and normal intervals of a fit to the same y. */
int ts_arima_forecast(const ts_arima *fit, const double *y, int n, const ts_options *opt,
                      ts_result *r, prm_error *err);
/* "ARIMA(0,1,1)(0,1,1)[12]", "ARIMA(1,1,0) with drift" */
void ts_arima_name(const ts_arima *fit, char *buf, int size);
/* KPSS level-stationarity statistic (Bartlett lag trunc(3 sqrt(n) / 13)). */
double ts_kpss(const double *x, int n);
/* Differences needed by the 5% KPSS test (0..2), as forecast::ndiffs. */
int ts_ndiffs(const double *x, int n);
/* Seasonal strength max(0, 1 - var(R) / var(S + R)) of a classical additive
 * decomposition (0 when n <= 2m), and nsdiffs: strength > 0.64. */
double ts_seasonal_strength(const double *y, int n, int m);
int ts_nsdiffs(const double *y, int n, int m);

#endif
