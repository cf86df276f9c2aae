/* ts_ets.c - ETS state-space models (Hyndman, Koehler, Ord & Snyder 2008).
 *
 * Error A/M, trend N/A/Ad, season N/A/M, fitted by maximum likelihood with
 * Nelder-Mead over the smoothing parameters and the initial states, as R's
 * forecast::ets: the same "both" parameter region (usual bounds and the
 * admissibility conditions), the same initial states (initstate), the same
 * likelihood (n log SSE, plus 2 sum log|f| for multiplicative errors) and the
 * same candidate set for automatic selection by AICc (no A-error with
 * M-season, no multiplicative trend).  Differences, all chosen for speed or
 * robustness and documented in docs/TIMESERIES.md: the series is divided by
 * its mean absolute value before fitting (so every parameter is O(1) and
 * the simplex can use per-coordinate steps), seasonal states live in a ring
 * buffer instead of being shifted every step, and the polynomial root test of
 * admissibility is a Schur-Cohn recursion instead of polyroot().
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ts_int.h"

#define MAXM TS_ETS_MAX_PERIOD
#define NSTATE (2 + MAXM)

typedef struct spec {
    char e, t, s;
    int damped;
} spec;

typedef struct fitctx {
    const double *y;   /* series divided by scale */
    int n, m;          /* m = 1 for non-seasonal models */
    spec sp;
    int ntrend;        /* 1 when the model has a trend state */
    int rlike;         /* R's likelihood (fit_one's R-like fit) */
    double ring[MAXM]; /* scratch for the seasonal states */
} fitctx;

/* ---- the filter: one pass over the data ---- */

/* Runs the model over y from initial state x0 (l, [b], s[0..m-1], s[0] the
 * newest).  Returns R's "lik" (-2 log likelihood up to a constant) or TS_BIG
 * when a multiplicative model meets a non-positive forecast.  Writes the
 * final state to xend and the sum of squared errors to *sse when not NULL. */
static inline __attribute__((always_inline)) double
filter_impl(fitctx *c, double alpha, double beta, double gamma, double phi, const double *x0,
            double *xend, double *sse_out, const char E, const char T, const char S)
{
    const double *y = c->y;
    int n = c->n, m = c->m;
    double l = x0[0], b = (T != 'N') ? x0[1] : 0.0;
    double *ring = c->ring;
    int off = 1 + c->ntrend;
    double bscale = (T != 'N') ? beta / alpha : 0.0;
    if (S != 'N')
        for (int j = 0; j < m; j++)
            ring[j] = x0[off + m - 1 - j];
    double sse = 0.0, slog = 0.0, prod = 1.0;
    int p = 0, cnt = 0;
    for (int i = 0; i < n; i++) {
        double s = 0.0, phib = phi * b;
        double q = l + phib;
        double f = q;
        if (S == 'A') {
            s = ring[p];
            f = q + s;
        } else if (S == 'M') {
            s = ring[p];
            f = q * s;
        }
        double e;
        if (E == 'A') {
            e = y[i] - f;
        } else if (c->rlike) {
            /* R's etscalc: any non-zero forecast, 2 sum log |f| */
            if (f == 0.0)
                return TS_BIG;
            e = (y[i] - f) / f;
            prod *= fabs(f);
            if (++cnt == 16) {
                slog += log(prod);
                prod = 1.0;
                cnt = 0;
            }
        } else {
            if (!(f > 1e-10))
                return TS_BIG;
            e = (y[i] - f) / f;
            prod *= f;
            if (++cnt == 16) {
                slog += log(prod);
                prod = 1.0;
                cnt = 0;
            }
        }
        sse += e * e;
        double pv = y[i];
        if (S == 'A') {
            pv -= s;
        } else if (S == 'M') {
            if (fabs(s) < 1e-10)
                return TS_BIG;
            pv /= s;
        }
        double lnew = q + alpha * (pv - q);
        if (T != 'N')
            b = phib + bscale * (lnew - l - phib);
        if (S != 'N') {
            double t;
            if (S == 'A') {
                t = y[i] - q;
            } else {
                if (fabs(q) < 1e-10)
                    return TS_BIG;
                t = y[i] / q;
            }
            ring[p] = s + gamma * (t - s);
            if (++p == m)
                p = 0;
        }
        l = lnew;
    }
    if (E == 'M')
        slog += log(prod);
    if (sse_out)
        *sse_out = sse;
    if (xend) {
        xend[0] = l;
        if (T != 'N')
            xend[1] = b;
        if (S != 'N')
            /* ring[p] holds the oldest of the last m seasonal states */
            for (int j = 0; j < m; j++)
                xend[off + j] = ring[(p + m - 1 - j) % m];
    }
    if (!(sse > 0.0))
        return -1e10; /* a perfect fit; R clips the same way */
    double lik = n * log(sse) + 2.0 * slog;
    if (!isfinite(lik))
        return TS_BIG;
    return lik < -1e10 ? -1e10 : lik;
}

/* One copy of the loop per model form, so that the compiler drops the
 * branches on the components (measured: 1.6x faster than one generic loop). */
static double filter(fitctx *c, double alpha, double beta, double gamma, double phi,
                     const double *x0, double *xend, double *sse_out)
{
#define F_(E, T, S) filter_impl(c, alpha, beta, gamma, phi, x0, xend, sse_out, E, T, S)
    int key = (c->sp.e == 'M') * 9 + (c->sp.t != 'N') * 3 +
              (c->sp.s == 'A' ? 1 : c->sp.s == 'M' ? 2 : 0);
    switch (key) {
    case 0: return F_('A', 'N', 'N');
    case 1: return F_('A', 'N', 'A');
    case 2: return F_('A', 'N', 'M');
    case 3: return F_('A', 'A', 'N');
    case 4: return F_('A', 'A', 'A');
    case 5: return F_('A', 'A', 'M');
    case 9: return F_('M', 'N', 'N');
    case 10: return F_('M', 'N', 'A');
    case 11: return F_('M', 'N', 'M');
    case 12: return F_('M', 'A', 'N');
    case 13: return F_('M', 'A', 'A');
    default: return F_('M', 'A', 'M');
    }
#undef F_
}

/* ---- the parameter region ---- */

/* R's admissible() for seasonal models (the non-seasonal conditions always
 * hold inside the usual bounds; Hyndman, Akram & Archibald 2008): three
 * linear conditions, then every root of the characteristic polynomial
 *   phi (1 - alpha - gamma) + (alpha + beta - alpha phi + gamma - 1) z
 *   + sum_{j=2..m-1} (alpha + beta - alpha phi) z^j + (alpha + beta - phi) z^m
 *   + z^(m+1)
 * within modulus 1 + 1e-10, R's tolerance (an undamped model with beta = 0
 * has a root at z = 1).  The roots of p inside radius r are those of its
 * reverse, z^(m+1) p(1/z) = 1 + c[m] z + ... + c[0] z^(m+1), outside 1 / r,
 * which is ts_roots_outside's form.  Until issue 11's ts8 session the own
 * fit used beta - alpha phi as the z^m coefficient and an in-place
 * reduction that read coefficients it had overwritten (wrong from degree
 * 3, i.e. for every seasonal model); bench/RESULTS.md has the measurement
 * of the fix. */
int ts_ets_admissible(double alpha, double beta, double gamma, double phi, int m)
{
    if (m < 2 || m > MAXM)
        return 0;
    if (gamma < fmax(1.0 - 1.0 / phi - alpha, 0.0) || gamma > 1.0 + 1.0 / phi - alpha)
        return 0;
    if (alpha < 1.0 - 1.0 / phi - gamma * (1.0 - m + phi + phi * m) / (2.0 * phi * m))
        return 0;
    if (beta < -(1.0 - phi) * (gamma / m + alpha))
        return 0;
    double c[MAXM + 2], rev[MAXM + 2];
    c[0] = phi * (1.0 - alpha - gamma);
    c[1] = alpha + beta - alpha * phi + gamma - 1.0;
    for (int j = 2; j < m; j++)
        c[j] = alpha + beta - alpha * phi;
    c[m] = alpha + beta - phi;
    for (int i = 1; i <= m + 1; i++)
        rev[i] = -c[m + 1 - i];
    return ts_roots_outside(rev, m + 1, 1.0 / (1.0 + 1e-10));
}

/* Unpacks par = alpha, [beta], [gamma], [phi], l0, [b0], s0..s(m-2) into the
 * smoothing parameters and the full initial state (the last seasonal state
 * makes them sum to 0, or to m when multiplicative).  Returns 0 outside the
 * region. */
static int unpack(const fitctx *c, const double *par, double *alpha, double *beta,
                  double *gamma, double *phi, double *x0)
{
    int k = 0;
    *alpha = par[k++];
    *beta = (c->sp.t != 'N') ? par[k++] : 0.0;
    *gamma = (c->sp.s != 'N') ? par[k++] : 0.0;
    *phi = c->sp.damped ? par[k++] : 1.0;
    const double lo = 1e-4, hi = 0.9999;
    if (*alpha < lo || *alpha > hi)
        return 0;
    if (c->sp.t != 'N' && (*beta < lo || *beta > *alpha || *beta > hi))
        return 0;
    if (c->sp.damped && (*phi < 0.8 || *phi > 0.98))
        return 0;
    if (c->sp.s != 'N' && (*gamma < lo || *gamma > 1.0 - *alpha || *gamma > hi))
        return 0;
    if (c->sp.s != 'N' && c->m > 1 && !ts_ets_admissible(*alpha, *beta, *gamma, *phi, c->m))
        return 0;
    int ns = 1 + c->ntrend;
    for (int j = 0; j < ns; j++)
        x0[j] = par[k++];
    if (c->sp.s != 'N') {
        double sum = 0.0;
        for (int j = 0; j < c->m - 1; j++) {
            x0[ns + j] = par[k + j];
            sum += par[k + j];
        }
        x0[ns + c->m - 1] = (c->sp.s == 'M' ? c->m : 0.0) - sum;
        if (c->sp.s == 'M')
            for (int j = 0; j < c->m; j++)
                if (x0[ns + j] < 0.0)
                    return 0;
    }
    return 1;
}

/* A prior on the trend's share of the smoothing, beta / alpha (issue 11,
 * item 5): -2 log prior = g_beta_prior (beta / alpha)^2 is added to the
 * fitted objective (never to the reported likelihood or AICc). */
static double g_beta_prior = 0.0;

static double objective(const double *par, void *vctx)
{
    fitctx *c = vctx;
    double alpha, beta, gamma, phi, x0[NSTATE];
    if (!unpack(c, par, &alpha, &beta, &gamma, &phi, x0))
        return TS_BIG;
    double lik = filter(c, alpha, beta, gamma, phi, x0, NULL, NULL);
    if (c->ntrend && g_beta_prior > 0.0 && lik < TS_BIG) {
        double r = beta / alpha;
        lik += g_beta_prior * r * r;
    }
    return lik;
}

/* ---- initial states (R's initstate) ---- */

/* Least-squares line through (1..k, v[0..k-1]): intercept and slope. */
static void line_fit(const double *v, int k, double *a, double *b)
{
    double mx = (k + 1) / 2.0, my = 0.0;
    for (int i = 0; i < k; i++)
        my += v[i];
    my /= k;
    double sxy = 0.0, sxx = 0.0;
    for (int i = 0; i < k; i++) {
        double dx = (i + 1) - mx;
        sxy += dx * (v[i] - my);
        sxx += dx * dx;
    }
    *b = sxx > 0.0 ? sxy / sxx : 0.0;
    *a = my - *b * mx;
}

int ts_decompose(const double *y, int n, int m, int multiplicative, double *figure)
{
    if (m < 2 || n < 2 * m)
        return -1;
    double sum[256], cnt[256];
    if (m > 256)
        return -1;
    for (int i = 0; i < m; i++)
        sum[i] = cnt[i] = 0.0;
    int half = m / 2;
    for (int t = half; t + half < n; t++) {
        double tr = 0.0;
        if (m % 2 == 0) {
            tr = 0.5 * (y[t - half] + y[t + half]);
            for (int j = -half + 1; j < half; j++)
                tr += y[t + j];
        } else {
            for (int j = -half; j <= half; j++)
                tr += y[t + j];
        }
        tr /= m;
        double v;
        if (multiplicative) {
            /* R's decompose divides: 0/0 is NaN and mean(na.rm = TRUE)
             * drops it; only a zero trend under a non-zero value fails */
            if (tr == 0.0) {
                if (y[t] == 0.0)
                    continue;
                return -1;
            }
            v = y[t] / tr;
        } else {
            v = y[t] - tr;
        }
        sum[t % m] += v;
        cnt[t % m] += 1.0;
    }
    double mean = 0.0;
    for (int i = 0; i < m; i++) {
        if (cnt[i] == 0.0)
            return -1;
        figure[i] = sum[i] / cnt[i];
        mean += figure[i];
    }
    mean /= m;
    for (int i = 0; i < m; i++) {
        if (multiplicative) {
            if (mean == 0.0)
                return -1;
            figure[i] /= mean;
        } else {
            figure[i] -= mean;
        }
    }
    return 0;
}

/* Initial l0, [b0], s0..s(m-2) for trend T and season S into par (R's
 * initstate).  m is the data period.  Returns the number of values. */
static int init_states(const double *y, int n, int m, char T, char S, double *out,
                       double *work)
{
    double *seas = work, *ysa = work + n;
    int k = 0;
    if (S != 'N') {
        double fig[MAXM];
        if (n < 3 * m || ts_decompose(y, n, m, S == 'M', fig) != 0) {
            /* y ~ 1 + t + cos + sin at the fundamental frequency */
            int nreg = (m == 2) ? 3 : 4;
            double a[16] = {0}, rhs[4] = {0}, xr[4];
            for (int t = 0; t < n; t++) {
                double tt = t + 1.0;
                xr[0] = 1.0;
                xr[1] = tt;
                xr[2] = cos(2.0 * M_PI * tt / m);
                xr[3] = sin(2.0 * M_PI * tt / m);
                for (int i = 0; i < nreg; i++) {
                    rhs[i] += xr[i] * y[t];
                    for (int j = 0; j < nreg; j++)
                        a[i * nreg + j] += xr[i] * xr[j];
                }
            }
            if (ts_solve(a, rhs, nreg, 1e-12) != 0) {
                double mu = 0.0;
                for (int t = 0; t < n; t++)
                    mu += y[t];
                rhs[0] = mu / n;
                rhs[1] = 0.0;
            }
            for (int t = 0; t < n; t++) {
                double tr = rhs[0] + rhs[1] * (t + 1.0);
                seas[t] = (S == 'A') ? y[t] - tr : (tr != 0.0 ? y[t] / tr : 1.0);
            }
        } else {
            for (int t = 0; t < n; t++)
                seas[t] = fig[t % m];
        }
        /* init.seas <- rev(seasonal[2:m]) */
        double *is = out + 1 + (T != 'N');
        for (int j = 0; j < m - 1; j++)
            is[j] = seas[m - 1 - j];
        if (S == 'A') {
            for (int t = 0; t < n; t++)
                ysa[t] = y[t] - seas[t];
        } else {
            double sum = 0.0;
            for (int j = 0; j < m - 1; j++) {
                if (is[j] < 1e-2)
                    is[j] = 1e-2;
                sum += is[j];
            }
            if (sum > m)
                for (int j = 0; j < m - 1; j++)
                    is[j] /= sum + 1e-2 * (m - 1);
            for (int t = 0; t < n; t++)
                ysa[t] = y[t] / fmax(seas[t], 1e-2);
        }
        k = m - 1;
    } else {
        memcpy(ysa, y, (size_t)n * sizeof *y);
        m = 1;
    }
    int maxn = 2 * m > 10 ? 2 * m : 10;
    if (maxn > n)
        maxn = n;
    if (T == 'N') {
        double mu = 0.0;
        for (int t = 0; t < maxn; t++)
            mu += ysa[t];
        out[0] = mu / maxn;
        return 1 + k;
    }
    double l0, b0;
    line_fit(ysa, maxn, &l0, &b0);
    if (fabs(l0 + b0) < 1e-8) {
        l0 *= 1 + 1e-3;
        b0 *= 1 + 1e-3;
    }
    out[0] = l0;
    out[1] = b0;
    return 2 + k;
}

/* ---- fitting ---- */

/* Nelder-Mead effort, measured on M3 (docs/TIMESERIES.md): 30 iterations
 * per parameter, no restart.  More effort (100 or 200 per parameter, or a
 * restart from the optimum) finds better likelihoods but forecasts no better
 * (quarterly sMAPE 9.62 at 30/dim, 9.65 at 50, 9.69 at 200 or with one
 * restart) and costs 2-4x the time. */
static int g_maxit_per_dim = 30;
static double g_abstol = 1e-5;
static int g_restarts = 0;

/* Which fit (issue 11, item 5; ts_ets_set_fit): TS_ETS_FIT_OWN (above),
 * TS_ETS_FIT_R (R's own optimiser and stopping rule, below) or
 * TS_ETS_FIT_CHOOSE (the own search, then the chosen model's two fits
 * compared by rolling origin on the training data) or TS_ETS_FIT_R_CHOSEN
 * (the own search, the chosen model refitted R's way). */
static int g_fit = TS_ETS_FIT_OWN;

/* R's optimisation budget and tolerance (forecast::etsmodel: maxit = 2000
 * evaluations, etsNelderMead(..., abstol = -Inf, intol = sqrt(eps))). */
#define R_MAXIT 2000
#define R_RELTOL 1.490116119384765625e-8

/* The fit in R's coordinates: the states on the data's scale (additive
 * seasonal states too; multiplicative ones are ratios), the objective R's
 * "lik" on the data (the scaled one plus 2 n log scale).  Both matter for
 * R's stopping point: its one simplex step is 0.1 max |par| (mostly the
 * level, in data units) and its tolerance is relative to |lik|. */
typedef struct rawctx {
    fitctx *c;
    int dim, k0, k1;   /* coordinates k0..k1-1 are divided by scale */
    double scale, off; /* off = 2 n log scale */
} rawctx;

static double objective_raw(const double *raw, void *vctx)
{
    rawctx *r = vctx;
    double par[TS_NM_MAXDIM];
    for (int j = 0; j < r->dim; j++)
        par[j] = (j >= r->k0 && j < r->k1) ? raw[j] / r->scale : raw[j];
    double lik = objective(par, r->c);
    return lik < TS_BIG ? lik + r->off : TS_BIG;
}

static int fit_one(const double *ys, int n, int mdata, spec sp, const double *init,
                   double scale, int rlike, ts_ets *fit, double *lik_out)
{
    fitctx c;
    memset(&c, 0, sizeof c);
    c.y = ys;
    c.n = n;
    c.m = (sp.s != 'N') ? mdata : 1;
    c.sp = sp;
    c.ntrend = (sp.t != 'N');
    c.rlike = rlike;
    double par[TS_NM_MAXDIM], step[TS_NM_MAXDIM];
    int k = 0;
    double alpha = 1e-4 + 0.2 * (0.9999 - 1e-4) / c.m;
    par[k] = alpha;
    step[k++] = 0.1;
    if (sp.t != 'N') {
        double ub = fmin(0.9999, alpha);
        par[k] = 1e-4 + 0.1 * (ub - 1e-4);
        step[k] = 0.5 * (ub - par[k]);
        k++;
    }
    if (sp.s != 'N') {
        double ub = fmin(0.9999, 1.0 - alpha);
        par[k] = 1e-4 + 0.05 * (ub - 1e-4);
        step[k++] = 0.1;
    }
    if (sp.damped) {
        par[k] = 0.8 + 0.99 * (0.98 - 0.8);
        step[k++] = -0.05;
    }
    int ns = 1 + c.ntrend + (sp.s != 'N' ? c.m - 1 : 0);
    for (int j = 0; j < ns; j++) {
        double v = init[j];
        par[k] = v;
        if (j == 0)
            step[k] = 0.1 * fmax(fabs(v), 0.1);
        else if (j == 1 && c.ntrend)
            step[k] = 0.1 * fmax(fabs(v), 0.01);
        else
            step[k] = (sp.s == 'M') ? 0.05 : 0.1 * fmax(fabs(v), 0.1);
        k++;
    }
    int dim = k;
    if (n < dim + 4)
        return -1;
    double f0;
    int maxit = g_maxit_per_dim * dim;
    if (maxit < 200)
        maxit = 200;
    if (rlike) {
        /* R's start (the same par), R's coordinates, R's optimiser */
        int k0 = dim - ns;
        rawctx rc = {&c, dim, k0, k0 + 1 + c.ntrend + (sp.s == 'A' ? c.m - 1 : 0), scale,
                     2.0 * n * log(scale)};
        double raw[TS_NM_MAXDIM];
        for (int j = 0; j < dim; j++)
            raw[j] = (j >= rc.k0 && j < rc.k1) ? par[j] * scale : par[j];
        if (ts_nmmin(objective_raw, &rc, raw, dim, R_MAXIT, R_RELTOL, &f0) < 0 || f0 >= TS_BIG)
            return -1;
        for (int j = 0; j < dim; j++)
            par[j] = (j >= rc.k0 && j < rc.k1) ? raw[j] / scale : raw[j];
    } else if (ts_nelder_mead(objective, &c, par, step, dim, maxit, g_abstol, &f0) != 0 ||
               f0 >= TS_BIG) {
        return -1;
    }
    for (int r = 0; r < g_restarts && !rlike; r++) {
        /* Restart from the optimum with a fresh simplex: Nelder-Mead in 17
         * dimensions often stalls on a ridge. */
        double f1, p1[TS_NM_MAXDIM];
        memcpy(p1, par, (size_t)dim * sizeof(double));
        if (ts_nelder_mead(objective, &c, p1, step, dim, maxit, g_abstol, &f1) != 0)
            break;
        if (f1 < f0) {
            memcpy(par, p1, (size_t)dim * sizeof(double));
            double gain = f0 - f1;
            f0 = f1;
            if (gain < 1e-3)
                break;
        } else {
            break;
        }
    }
    double x0[NSTATE], xend[NSTATE], sse;
    unpack(&c, par, &fit->alpha, &fit->beta, &fit->gamma, &fit->phi, x0);
    double lik = filter(&c, fit->alpha, fit->beta, fit->gamma, fit->phi, x0, xend, &sse);
    if (lik >= TS_BIG)
        return -1;
    fit->error = sp.e;
    fit->trend = sp.t;
    fit->season = sp.s;
    fit->damped = sp.damped;
    fit->m = c.m;
    fit->n = n;
    fit->npar = dim;
    int nst = 1 + c.ntrend + (sp.s != 'N' ? c.m : 0);
    memcpy(fit->x, xend, (size_t)nst * sizeof(double));
    memcpy(fit->x0, x0, (size_t)nst * sizeof(double));
    fit->mse = sse / n;
    fit->sigma2 = sse / (n > dim ? n - dim : n);
    *lik_out = lik;
    return 0;
}

/* Rescales a fit made on y/scale back to the data's scale. */
static void rescale(ts_ets *f, double scale)
{
    int nst = 1 + (f->trend != 'N') + (f->season != 'N' ? f->m : 0);
    int s0 = 1 + (f->trend != 'N');
    for (int j = 0; j < nst; j++) {
        if (j >= s0 && f->season == 'M')
            continue;
        f->x[j] *= scale;
        f->x0[j] *= scale;
    }
    if (f->error == 'A')
        f->sigma2 *= scale * scale;
}

static void point_forecasts(const ts_ets *f, int h, double *out);

/* Log-likelihood and information criteria of a fit to y / scale with R's
 * "lik" value lik (on the scaled data). */
static void set_criteria(ts_ets *f, double lik, int n, double scale)
{
    double np = f->npar + 1.0;
    double lik0 = lik + 2.0 * n * log(scale);
    f->loglik = -0.5 * lik0;
    f->aic = lik0 + 2.0 * np;
    f->bic = lik0 + log((double)n) * np;
    f->aicc = (n - np - 1.0 > 0.0) ? f->aic + 2.0 * np * (np + 1.0) / (n - np - 1.0) : INFINITY;
}

static spec spec_of(const ts_ets *f)
{
    spec sp = {f->error, f->trend, f->season, f->damped};
    return sp;
}

/* The model of fit (on ys = y / scale), fitted again with R's optimiser
 * from R's start on ys[0..n-1]. */
static int fit_rlike_same(const double *ys, int n, int m, double scale, const ts_ets *fit,
                          ts_ets *alt, double *work)
{
    double init[NSTATE], lik;
    init_states(ys, n, m, fit->trend, fit->season, init, work);
    memset(alt, 0, sizeof *alt);
    if (fit_one(ys, n, m, spec_of(fit), init, scale, 1, alt, &lik) != 0)
        return -1;
    set_criteria(alt, lik, n, scale);
    return isfinite(alt->aicc) ? 0 : -1;
}

/* Rolling origin inside the training data (issue 11, item 5): the model of
 * fit is refitted on ys[0..o-1] both ways (the own optimiser and R's) at
 * TS_ETS_CHOOSE_ORIGINS non-overlapping origins o = n - hh (k + 1), hh =
 * min(h, n / 4) and o long enough to fit the model, and the fits' mean
 * absolute errors on ys[o..o+hh-1] compared.  Only data up to y[n-1] are
 * used.  Returns 1 when R's fit's errors, averaged over the origins where
 * both fits could be made, are smaller; 0 otherwise (ties, and when no
 * origin can be used, keep the own fit). */
static int choose_by_origin(const double *ys, int n, int m, double scale, const ts_ets *fit,
                            int h, double *work)
{
    int hh = h < n / 4 ? h : n / 4;
    if (hh < 1)
        return 0;
    spec sp = spec_of(fit);
    double mae[2] = {0.0, 0.0};
    int used = 0;
    for (int k = 0; k < TS_ETS_CHOOSE_ORIGINS; k++) {
        int o = n - hh * (k + 1);
        if (o < fit->npar + 4 || (sp.s != 'N' && o <= m))
            break;
        double init[NSTATE], lik, buf[64], a[2];
        init_states(ys, o, m, sp.t, sp.s, init, work);
        int ok = 1;
        for (int w = 0; w < 2 && ok; w++) {
            ts_ets f;
            memset(&f, 0, sizeof f);
            if (fit_one(ys, o, m, sp, init, scale, w, &f, &lik) != 0) {
                ok = 0;
                break;
            }
            int hk = hh > 64 ? 64 : hh;
            point_forecasts(&f, hk, buf);
            a[w] = 0.0;
            for (int t = 0; t < hk; t++)
                a[w] += fabs(ys[o + t] - buf[t]);
            a[w] /= hk;
        }
        if (!ok)
            continue;
        mae[0] += a[0];
        mae[1] += a[1];
        used++;
    }
    return used > 0 && mae[1] < mae[0];
}

static int parse_spec(const char *s, char *e, char *t, char *d, char *se)
{
    /* E T [d] S, with Z meaning "any" */
    size_t len = strlen(s);
    if (len != 3 && len != 4)
        return -1;
    *e = s[0];
    *t = s[1];
    *d = 'Z';
    *se = s[len - 1];
    if (len == 4) {
        if (s[2] != 'd' || (*t != 'A' && *t != 'Z'))
            return -1;
        *d = 'Y';
        if (*t == 'Z')
            *t = 'A';
    }
    if (!strchr("AMZ", *e) || !strchr("NAZ", *t) || !strchr("NAMZ", *se))
        return -1;
    return 0;
}

int ts_ets_fit(const double *y, int n, int period, const char *specstr, int damped_only,
               ts_ets *fit, prm_error *err)
{
    return ts_ets_select(y, n, period, specstr, damped_only, 0, fit, NULL, err);
}

/* Does the model, fitted on y/scale, forecast a non-positive value within h
 * steps?  (States are still on the fitting scale, which keeps the sign.) */
static int goes_nonpositive(const ts_ets *f, int h)
{
    double buf[64];
    if (h > 64)
        h = 64;
    point_forecasts(f, h, buf);
    for (int k = 0; k < h; k++)
        if (!(buf[k] > 0.0))
            return 1;
    return 0;
}

int ts_ets_select(const double *y, int n, int period, const char *specstr, int damped_only,
                  int h_positive, ts_ets *fit, ts_ets *best_damped, prm_error *err)
{
    char E, T, D, S;
    if (!specstr)
        specstr = "ZZZ";
    if (parse_spec(specstr, &E, &T, &D, &S) != 0)
        return prm_error_set(err, "ets: bad model \"%s\" (want e.g. \"ZZZ\", \"MAdM\", \"ANN\")",
                             specstr);
    if (E == 'A' && S == 'M')
        return prm_error_set(err, "ets: %s has additive errors with multiplicative seasonality, "
                             "which is numerically unstable; use \"MxM\" or \"AxA\"", specstr);
    if (n < 3)
        return prm_error_set(err, "ets: need at least 3 observations, got %d", n);
    double scale = 0.0, ymin = y[0];
    for (int i = 0; i < n; i++) {
        scale += fabs(y[i]);
        if (y[i] < ymin)
            ymin = y[i];
    }
    scale /= n;
    if (!(scale > 0.0) || !isfinite(scale))
        return prm_error_set(err, "ets: series is all zeros or not finite");
    int positive = ymin > 0.0;
    int m = period;
    int seasonal_ok = m >= 2 && m <= MAXM && n > m;
    if (S == 'M' || S == 'A') {
        if (!seasonal_ok)
            return prm_error_set(err, "ets: seasonal model needs 2 <= period <= %d and more than "
                                 "one period of data (period %d, n %d)", MAXM, m, n);
    }
    if ((E == 'M' || S == 'M') && !positive)
        return prm_error_set(err, "ets: multiplicative model %s needs strictly positive data",
                             specstr);
    double *ys = malloc((size_t)n * 3 * sizeof(double));
    if (!ys)
        return prm_error_set(err, "ets: out of memory");
    double *work = ys + n;
    for (int i = 0; i < n; i++)
        ys[i] = y[i] / scale;

    double best = INFINITY, bestd = INFINITY;
    ts_ets cand, best_implausible;
    int found = 0, found_implausible = 0;
    memset(&best_implausible, 0, sizeof best_implausible);
    if (best_damped)
        best_damped->aicc = INFINITY;
    const char errs[] = "AM", trends[] = "NAD", seas[] = "NAM";
    double init[3][3][NSTATE];
    int have_init[3][3] = {{0}};
    for (int ie = 0; ie < 2; ie++) {
        for (int it = 0; it < 3; it++) {
            for (int is = 0; is < 3; is++) {
                char e = errs[ie], t = trends[it] == 'D' ? 'A' : trends[it], s = seas[is];
                int damped = trends[it] == 'D';
                if (E != 'Z' && e != E)
                    continue;
                if (T != 'Z' && t != T)
                    continue;
                if (D == 'Y' && !damped)
                    continue;
                if (D == 'Z' && T == 'A' && strlen(specstr) == 3 && damped)
                    continue; /* "AAN" means undamped */
                if (damped_only && !damped)
                    continue;
                if (S != 'Z' && s != S)
                    continue;
                if (s != 'N' && !seasonal_ok)
                    continue;
                if ((e == 'M' || s == 'M') && !positive)
                    continue;
                if (e == 'A' && s == 'M')
                    continue; /* unstable; excluded as forecast::ets does */
                int ti = (t != 'N'), si = is;
                if (!have_init[ti][si]) {
                    init_states(ys, n, m, t, s, init[ti][si], work);
                    have_init[ti][si] = 1;
                }
                spec sp = {e, t, s, damped};
                double lik;
                memset(&cand, 0, sizeof cand);
                if (fit_one(ys, n, m, sp, init[ti][si], scale, g_fit == TS_ETS_FIT_R, &cand,
                            &lik) != 0)
                    continue;
                set_criteria(&cand, lik, n, scale);
                if (!isfinite(cand.aicc))
                    continue;
                /* Strictly positive data: a model whose forecasts cross zero
                 * within the horizon is implausible; it competes only when
                 * every model does (docs/TIMESERIES.md). */
                int implausible = h_positive > 0 && positive && goes_nonpositive(&cand, h_positive);
                if (implausible) {
                    if (!found_implausible || cand.aicc < best_implausible.aicc)
                        best_implausible = cand;
                    found_implausible = 1;
                    continue;
                }
                if (cand.aicc < best) {
                    best = cand.aicc;
                    *fit = cand;
                    found = 1;
                }
                if (best_damped && damped && cand.aicc < bestd) {
                    bestd = cand.aicc;
                    *best_damped = cand;
                }
            }
        }
    }
    if (!found && found_implausible) {
        *fit = best_implausible;
        found = 1;
    }
    if (found && (g_fit == TS_ETS_FIT_CHOOSE || g_fit == TS_ETS_FIT_R_CHOSEN)) {
        ts_ets alt;
        if (fit_rlike_same(ys, n, m, scale, fit, &alt, work) == 0 &&
            !(h_positive > 0 && positive && goes_nonpositive(&alt, h_positive)) &&
            (g_fit == TS_ETS_FIT_R_CHOSEN ||
             choose_by_origin(ys, n, m, scale, fit, h_positive > 0 ? h_positive : 1, work) == 1))
            *fit = alt;
    }
    free(ys);
    if (!found)
        return prm_error_set(err, "ets: no admissible %s model could be fitted (n %d, period %d)",
                             specstr, n, m);
    rescale(fit, scale);
    if (best_damped && isfinite(bestd))
        rescale(best_damped, scale);
    return 0;
}

void ts_ets_name(const ts_ets *f, char *buf, int size)
{
    snprintf(buf, (size_t)size, "ETS(%c,%s,%c)", f->error,
             f->trend == 'N' ? "N" : (f->damped ? "Ad" : "A"), f->season);
}

/* ---- forecasting ---- */

/* One step of the model from state (l, b, ring at position p); returns the
 * forecast and, when y is given, updates the state with the observation. */
static void point_forecasts(const ts_ets *f, int h, double *out)
{
    int m = f->m, off = 1 + (f->trend != 'N');
    double l = f->x[0], b = (f->trend != 'N') ? f->x[1] : 0.0, phi = f->damped ? f->phi : 1.0;
    double phistar = 0.0, pk = 1.0;
    for (int k = 1; k <= h; k++) {
        pk *= phi;
        phistar += pk;
        double v = l + phistar * b;
        if (f->season != 'N') {
            int j = m - 1 - ((k - 1) % m);
            v = (f->season == 'A') ? v + f->x[off + j] : v * f->x[off + j];
        }
        out[k - 1] = v;
    }
}

/* Degrees of freedom of the innovation variance: sigma2 = SSE / (n - k),
 * k the estimated parameters (smoothing parameters and free initial states),
 * as R's forecast::ets. */
static double ets_df(const ts_ets *f)
{
    int df = f->n - f->npar;
    return df >= 1 ? (double)df : 1.0;
}

/* Quantile of Student's t with df degrees of freedom: the Cornish-Fisher
 * expansion in 1/df (Abramowitz & Stegun 26.7.5).  Relative error at the
 * worst case df = 4 (fit_one needs n >= k + 4; the bound is for safety):
 * 0.03% for 95% intervals, 0.2% for 99%, 1.3% for 99.9%; at df = 10 below
 * 0.03% up to 99.9%. */
static double qt(double p, double df)
{
    double x = ts_qnorm(p), x2 = x * x, v = df < 4.0 ? 4.0 : df;
    double g1 = (x2 + 1.0) * x / 4.0;
    double g2 = ((5.0 * x2 + 16.0) * x2 + 3.0) * x / 96.0;
    double g3 = (((3.0 * x2 + 19.0) * x2 + 17.0) * x2 - 15.0) * x / 384.0;
    double g4 = ((((79.0 * x2 + 776.0) * x2 + 1482.0) * x2 - 1920.0) * x2 - 945.0) * x / 92160.0;
    return x + g1 / v + g2 / (v * v) + g3 / (v * v * v) + g4 / (v * v * v * v);
}

/* Sample paths for models without an analytic variance (M error with M
 * season): quantiles of simulated futures at each step.  Each path draws its
 * own innovation variance, sigma2 df / chi2(df) (chi2 by Wilson-Hilferty),
 * so that the estimation error of sigma2 is in the intervals as in the
 * t quantiles of the analytic classes. */
static int simulate(const ts_ets *f, const ts_options *opt, ts_result *r, prm_error *err)
{
    int h = opt->h, np = opt->npaths > 0 ? opt->npaths : 2000, m = f->m;
    /* at most 2.5M stored values (20 MB): long horizons get fewer paths */
    if ((long)np * h > 2500000L)
        np = (int)(2500000L / h) > 100 ? (int)(2500000L / h) : 100;
    int off = 1 + (f->trend != 'N');
    double *paths = malloc((size_t)h * (size_t)np * sizeof(double));
    if (!paths)
        return prm_error_set(err, "ets: out of memory (simulation)");
    ts_rng rng;
    ts_rng_seed(&rng, opt->seed);
    double sigma = sqrt(f->sigma2), phi = f->damped ? f->phi : 1.0;
    double bscale = (f->trend != 'N') ? f->beta / f->alpha : 0.0;
    double ring[MAXM];
    double df = ets_df(f), wh = 2.0 / (9.0 * df);
    for (int i = 0; i < np; i++) {
        double l = f->x[0], b = (f->trend != 'N') ? f->x[1] : 0.0;
        double u = 1.0 - wh + sqrt(wh) * ts_rng_normal(&rng), chi = u > 0.05 ? u * u * u : 1.25e-4;
        double sigma_i = sigma / sqrt(chi); /* chi = chi2(df) / df */
        if (f->season != 'N')
            for (int j = 0; j < m; j++)
                ring[j] = f->x[off + m - 1 - j];
        int p = 0;
        for (int k = 0; k < h; k++) {
            double phib = phi * b, q = l + phib, s = 0.0, fc = q;
            if (f->season == 'A') {
                s = ring[p];
                fc = q + s;
            } else if (f->season == 'M') {
                s = ring[p];
                fc = q * s;
            }
            double e = sigma_i * ts_rng_normal(&rng);
            double yv = (f->error == 'A') ? fc + e : fc * (1.0 + e);
            paths[(size_t)k * (size_t)np + (size_t)i] = yv;
            double pv = yv;
            if (f->season == 'A')
                pv -= s;
            else if (f->season == 'M')
                pv = fabs(s) > 1e-300 ? pv / s : q;
            double lnew = q + f->alpha * (pv - q);
            if (f->trend != 'N')
                b = phib + bscale * (lnew - l - phib);
            if (f->season != 'N') {
                double t = (f->season == 'A') ? yv - q : (fabs(q) > 1e-300 ? yv / q : s);
                ring[p] = s + f->gamma * (t - s);
                if (++p == m)
                    p = 0;
            }
            l = lnew;
        }
    }
    for (int k = 0; k < h; k++) {
        double *col = paths + (size_t)k * (size_t)np;
        ts_sort(col, np);
        for (int j = 0; j < r->nlevels; j++) {
            double a = (1.0 - r->levels[j] / 100.0) / 2.0;
            r->lower[j * h + k] = ts_quantile_sorted(col, np, a);
            r->upper[j * h + k] = ts_quantile_sorted(col, np, 1.0 - a);
        }
    }
    free(paths);
    return 0;
}

int ts_ets_forecast(const ts_ets *f, const ts_options *opt, ts_result *r, prm_error *err)
{
    if (ts_result_alloc(r, opt, err) != 0)
        return -1;
    int h = opt->h;
    point_forecasts(f, h, r->mean);
    ts_ets_name(f, r->method, sizeof r->method);
    ts_add_param(r, "alpha", f->alpha);
    if (f->trend != 'N')
        ts_add_param(r, "beta", f->beta);
    if (f->season != 'N')
        ts_add_param(r, "gamma", f->gamma);
    if (f->damped)
        ts_add_param(r, "phi", f->phi);
    r->aicc = f->aicc;
    r->loglik = f->loglik;
    r->sigma2 = f->sigma2;
    if (f->season == 'M') {
        if (simulate(f, opt, r, err) != 0) {
            ts_result_free(r);
            return -1;
        }
        return 0;
    }
    /* Classes 1 and 2 of Hyndman et al. (2008, ch. 6): c_j = alpha +
     * beta * (phi + ... + phi^j) + gamma [j = 0 mod m]. */
    double *se = malloc((size_t)h * 2 * sizeof(double));
    if (!se) {
        ts_result_free(r);
        return prm_error_set(err, "ets: out of memory");
    }
    double *c = se + h, phi = f->damped ? f->phi : 1.0, pj = 1.0, phisum = 0.0;
    for (int j = 1; j < h; j++) {
        pj *= phi;
        phisum += pj;
        c[j] = f->alpha + (f->trend != 'N' ? f->beta * phisum : 0.0) +
               ((f->season != 'N' && j % f->m == 0) ? f->gamma : 0.0);
    }
    if (f->error == 'A') {
        double acc = 0.0;
        for (int k = 0; k < h; k++) {
            if (k > 0)
                acc += c[k] * c[k];
            se[k] = sqrt(f->sigma2 * (1.0 + acc));
        }
    } else {
        /* theta_k = mu_k^2 + sigma2 sum_{j<k} c_j^2 theta_{k-j};
         * var_k = (1 + sigma2) theta_k - mu_k^2 */
        double *th = malloc((size_t)h * sizeof(double));
        if (!th) {
            free(se);
            ts_result_free(r);
            return prm_error_set(err, "ets: out of memory");
        }
        for (int k = 0; k < h; k++) {
            double mu = r->mean[k], v = mu * mu;
            for (int j = 1; j <= k; j++)
                v += f->sigma2 * c[j] * c[j] * th[k - j];
            th[k] = v;
            double var = (1.0 + f->sigma2) * v - mu * mu;
            se[k] = sqrt(var > 0.0 ? var : 0.0);
        }
        free(th);
    }
    /* Student-t quantiles with the df of sigma2 (its estimation error; for
     * class 2, whose variance is not proportional to sigma2, an
     * approximation). */
    double df = ets_df(f);
    for (int j = 0; j < r->nlevels; j++) {
        double z = qt(0.5 + r->levels[j] / 200.0, df);
        for (int k = 0; k < h; k++) {
            r->lower[j * h + k] = r->mean[k] - z * se[k];
            r->upper[j * h + k] = r->mean[k] + z * se[k];
        }
    }
    free(se);
    return 0;
}

/* For the benchmark's measurement of the optimiser effort. */
void ts_ets_set_beta_prior(double weight)
{
    if (weight >= 0.0)
        g_beta_prior = weight;
}

void ts_ets_set_fit(int which)
{
    if (which >= TS_ETS_FIT_OWN && which <= TS_ETS_FIT_R_CHOSEN)
        g_fit = which;
}

void ts_ets_set_effort(int maxit_per_dim, double abstol, int restarts)
{
    if (maxit_per_dim > 0)
        g_maxit_per_dim = maxit_per_dim;
    if (abstol > 0.0)
        g_abstol = abstol;
    if (restarts >= 0)
        g_restarts = restarts;
}
