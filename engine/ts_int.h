/* ts_int.h - helpers shared by the ts_*.c files; not part of the contract. */
#ifndef PRM_TS_INT_H
#define PRM_TS_INT_H

#include <stdint.h>

#include "ts.h"

/* Nelder-Mead minimiser.  f returns a large finite value (TS_BIG) outside the
 * feasible region, as R's optim does with non-finite values. */
#define TS_BIG 1e30
#define TS_NM_MAXDIM 32
typedef double (*ts_objective)(const double *par, void *ctx);
int ts_nelder_mead(ts_objective f, void *ctx, double *par, const double *step, int dim,
                   int maxit, double abstol, double *fmin);
/* R's optim Nelder-Mead (nmmin) step for step: one step size, R's relative
 * stopping rule, at most maxit evaluations; returns the evaluations used or
 * -1 (bad dim, infeasible start).  ts.c. */
int ts_nmmin(ts_objective f, void *ctx, double *par, int dim, int maxit, double reltol,
             double *fmin);

/* xoshiro256** seeded through splitmix64; normal deviates by Box-Muller. */
typedef struct ts_rng {
    uint64_t s[4];
    int has_spare;
    double spare;
} ts_rng;
void ts_rng_seed(ts_rng *r, uint64_t seed);
double ts_rng_normal(ts_rng *r);

/* Allocates r->mean/lower/upper for opt->h and opt->levels. */
int ts_result_alloc(ts_result *r, const ts_options *opt, prm_error *err);
/* Sets mean +- z * se[k] for every level. */
void ts_normal_intervals(ts_result *r, const double *se);
void ts_add_param(ts_result *r, const char *name, double value);
/* Linear-interpolation (type 7) quantile of a sorted array. */
double ts_quantile_sorted(const double *x, int n, double p);
void ts_sort(double *x, int n);
/* Solves the n x n system A x = b in place (Gaussian elimination with
 * partial pivoting; x in b); -1 when a pivot's magnitude is below tiny. */
int ts_solve(double *A, double *b, int n, double tiny);
/* All roots of 1 - sum c_k z^k (k = 1..p, c[1..p]; c[0] unused) lie
 * strictly outside the circle of radius `radius` (0 when p, after trailing
 * zeros, exceeds TS_POLY_MAXDEG).  ARIMA's stationarity / invertibility
 * check and ETS's admissibility test.  ts.c. */
#define TS_POLY_MAXDEG 64
int ts_roots_outside(const double *c, int p, double radius);
/* Rescales r's interval half-widths (about the mean) by the rolling-origin
 * errors of the combination on y[0..n-1] (opt->calib_origins origins); 1 when
 * it did, 0 when the series is too short (r unchanged).  ts.c. */
int ts_calibrate_widths(const double *y, int n, const ts_options *opt, ts_result *r);
/* The rolling-origin ratios |error| / half-width behind it: level j's in
 * ratio[j * cap ..], at most cap of them; returns their count.  fitlen
 * (NULL or cap entries) gets each ratio's origin, the length of the data
 * its forecast was fitted on.  ts.c. */
int ts_calib_ratios(const double *y, int n, const ts_options *opt, double *ratio, int cap,
                    int *fitlen);

/* ts_ets_fit that also returns the best damped-trend model (aicc INFINITY
 * when none was fitted).  h_positive > 0: for strictly positive data, pass
 * over models whose point forecasts reach zero within h_positive steps. */
int ts_ets_select(const double *y, int n, int period, const char *spec, int damped_only,
                  int h_positive, ts_ets *fit, ts_ets *best_damped, prm_error *err);
/* R's admissible(alpha, beta, gamma, phi, m) for a seasonal ETS model
 * (2 <= m <= TS_ETS_MAX_PERIOD; beta = 0 without trend, phi = 1 undamped):
 * 1 when the parameters are in the forecastable region.  ts_ets.c. */
int ts_ets_admissible(double alpha, double beta, double gamma, double phi, int m);
/* Optimiser effort (the benchmark measures it); <= 0 / < 0 keeps a value. */
void ts_ets_set_effort(int maxit_per_dim, double abstol, int restarts);
/* The weight of the prior on beta / alpha (ts_ets.c); < 0 keeps it. */
void ts_ets_set_beta_prior(double weight);
/* Which ETS fit (ts_ets.c; issue 11, item 5): the own optimiser, R's
 * (forecast::ets's Nelder-Mead, start and stopping rule, on the data's
 * scale), the own search with the chosen model's two fits compared by
 * rolling origin on the training data, or the own search with the chosen
 * model refitted R's way.  Other values keep the setting. */
enum { TS_ETS_FIT_OWN, TS_ETS_FIT_R, TS_ETS_FIT_CHOOSE, TS_ETS_FIT_R_CHOSEN };
#define TS_ETS_CHOOSE_ORIGINS 3
void ts_ets_set_fit(int which);

/* Theta, intermittent and baseline forecasters (y is clean: finite, n >= 2). */
int ts_theta(const double *y, int n, int m, const ts_options *opt, ts_result *r,
             prm_error *err);
int ts_intermittent(const double *y, int n, ts_method which, const ts_options *opt,
                    ts_result *r, prm_error *err);
int ts_baseline(const double *y, int n, int m, ts_method which, const ts_options *opt,
                ts_result *r, prm_error *err);

#endif
