/* ts_arima.c - seasonal ARIMA(p,d,q)(P,D,Q)m with a mean or drift, and its
 * automatic order selection in the way of Hyndman & Khandakar (2008),
 * R's forecast::auto.arima 8.20 (method notes in docs/TIMESERIES.md).
 *
 * The series is differenced first, (1-B)^d (1-B^m)^D y = w, and an ARMA
 * with mean mu is fitted to w: for the diffuse prior on the differencing
 * states this is the exact likelihood R's arima approximates with
 * kappa = 1e6.  Two estimators:
 *   CSS  conditional sum of squares (the first p + mP residuals set to 0),
 *        O(n (p + q)) per evaluation;
 *   ML   exact Gaussian likelihood by the Kalman filter on the ARMA in
 *        Harvey's state-space form, the stationary initial covariance by a
 *        doubling recursion, AR blocks kept stationary by R's PACF (tanh)
 *        transform, and a switch to the steady-state gain once the state
 *        covariance has converged.
 * Model search as R's default: for n <= 150 and m <= 12 every candidate is
 * fitted by CSS-ML and ranked by its exact AICc; otherwise candidates are
 * ranked by CSS (R's approximation = TRUE) and the best refitted by ML.  The
 * forecasts and the reported likelihood are the ML fit's.
 */
#include <complex.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>

#include "ts_int.h"

#define MAXLAG (TS_ARIMA_MAX_P + TS_ARIMA_MAX_SP * TS_ARIMA_MAX_PERIOD + 1)
_Static_assert(MAXLAG <= TS_POLY_MAXDEG, "ts_roots_outside takes every ARIMA polynomial");
#define MAXR (MAXLAG + 1)
#define MAXPAR (TS_ARIMA_MAX_P * 2 + TS_ARIMA_MAX_SP * 2 + 1)
/* The filter switches to the steady-state gain once no element of the
 * predicted state covariance (sigma^2 = 1) moves by more than this in a
 * step; the likelihood then changes by less than 1e-6 on the fixtures. */
#define KALMAN_STEADY 1e-8
#define ML_MAXIT_PER_DIM 60

/* A model being fitted: orders, the differenced and scaled series. */
typedef struct amodel {
    int p, q, P, Q, m, cons;
    int np, nq, npar;     /* expanded AR / MA degrees; free parameters */
    const double *w;      /* differenced series / scale */
    int nw;
    double *work;         /* nw residuals (CSS) */
    double *mat;          /* 4 MAXR x MAXR matrices (ML) */
} amodel;

/* ---- polynomials ---- */

/* phi(B) Phi(B^m) and theta(B) Theta(B^m), as the lag coefficients of
 * w_t = sum phi_k w_{t-k} + e_t + sum theta_k e_{t-k}, k = 1.. */
static void expand(const amodel *md, const double *phi, const double *theta, const double *sphi,
                   const double *stheta, double *ar, double *ma)
{
    int m = md->m;
    for (int k = 0; k <= md->np; k++)
        ar[k] = 0.0;
    for (int k = 0; k <= md->nq; k++)
        ma[k] = 0.0;
    for (int i = 1; i <= md->p; i++)
        ar[i] += phi[i - 1];
    for (int j = 1; j <= md->P; j++) {
        ar[j * m] += sphi[j - 1];
        for (int i = 1; i <= md->p; i++)
            ar[i + j * m] -= phi[i - 1] * sphi[j - 1];
    }
    for (int i = 1; i <= md->q; i++)
        ma[i] += theta[i - 1];
    for (int j = 1; j <= md->Q; j++) {
        ma[j * m] += stheta[j - 1];
        for (int i = 1; i <= md->q; i++)
            ma[i + j * m] += theta[i - 1] * stheta[j - 1];
    }
}

/* R's maInvert: the roots of 1 + sum ma_k z^k inside the unit circle are
 * replaced by their reciprocals (same autocorrelations, invertible).
 * Durand-Kerner for the roots; q <= TS_ARIMA_MAX_P. */
static void ma_invert(double *ma, int q)
{
    int q0 = q;
    while (q0 > 0 && ma[q0 - 1] == 0.0)
        q0--;
    if (q0 == 0)
        return;
    if (q0 == 1) {
        if (fabs(ma[0]) > 1.0)
            ma[0] = 1.0 / ma[0];
        return;
    }
    /* monic form: z^q0 + (ma[q0-2]/ma[q0-1]) z^(q0-1) + ... + 1/ma[q0-1] */
    double complex c[TS_ARIMA_MAX_P + 1], z[TS_ARIMA_MAX_P];
    c[q0] = 1.0;
    for (int k = 0; k < q0; k++)
        c[k] = (k == 0 ? 1.0 : ma[k - 1]) / ma[q0 - 1];
    for (int i = 0; i < q0; i++)
        z[i] = cpow(0.4 + 0.9 * I, i);
    for (int it = 0; it < 500; it++) {
        double moved = 0.0;
        for (int i = 0; i < q0; i++) {
            double complex num = c[q0], den = 1.0;
            for (int k = q0 - 1; k >= 0; k--)
                num = num * z[i] + c[k];
            for (int j = 0; j < q0; j++)
                if (j != i)
                    den *= z[i] - z[j];
            double complex dz = num / den;
            z[i] -= dz;
            moved = fmax(moved, cabs(dz));
        }
        if (moved < 1e-14)
            break;
    }
    int any = 0;
    for (int i = 0; i < q0; i++)
        if (cabs(z[i]) < 1.0) {
            z[i] = 1.0 / z[i];
            any = 1;
        }
    if (!any)
        return;
    /* rebuild prod (1 - z/root) = 1 + sum ma_k z^k */
    double complex x[TS_ARIMA_MAX_P + 1] = {1.0};
    int deg = 0;
    for (int i = 0; i < q0; i++) {
        x[deg + 1] = 0.0;
        for (int k = deg + 1; k >= 1; k--)
            x[k] -= x[k - 1] / z[i];
        deg++;
    }
    for (int k = 0; k < q0; k++)
        ma[k] = creal(x[k + 1]);
}

/* R's partrans: tanh of the raw values as partial autocorrelations, then
 * Durbin-Levinson to AR coefficients (always stationary). */
static void partrans(int p, const double *raw, double *out)
{
    double work[TS_ARIMA_MAX_P + 1];
    for (int j = 0; j < p; j++)
        work[j] = out[j] = tanh(raw[j]);
    for (int j = 1; j < p; j++) {
        double a = out[j];
        for (int k = 0; k < j; k++)
            work[k] -= a * out[j - k - 1];
        for (int k = 0; k < j; k++)
            out[k] = work[k];
    }
}

/* The inverse of partrans; -1 when the coefficients are not stationary. */
static int invpartrans(int p, const double *phi, double *raw)
{
    double work[TS_ARIMA_MAX_P + 1], cur[TS_ARIMA_MAX_P + 1];
    for (int j = 0; j < p; j++)
        cur[j] = phi[j];
    for (int j = p - 1; j > 0; j--) {
        double a = cur[j];
        if (!(fabs(a) < 1.0))
            return -1;
        for (int k = 0; k < j; k++)
            work[k] = (cur[k] + a * cur[j - k - 1]) / (1.0 - a * a);
        for (int k = 0; k < j; k++)
            cur[k] = work[k];
    }
    for (int j = 0; j < p; j++) {
        if (!(fabs(cur[j]) < 1.0))
            return -1;
        /* keep the optimiser away from the boundary, as R's atanh would not */
        raw[j] = atanh(fmax(-0.9999, fmin(0.9999, cur[j])));
    }
    return 0;
}

/* Splits a parameter vector [phi, theta, Phi, Theta, mu]; the AR blocks
 * through partrans when trans is set. */
static double unpack(const amodel *md, const double *par, int trans, double *phi, double *theta,
                     double *sphi, double *stheta)
{
    const double *x = par;
    if (trans)
        partrans(md->p, x, phi);
    else
        memcpy(phi, x, (size_t)md->p * sizeof *phi);
    x += md->p;
    memcpy(theta, x, (size_t)md->q * sizeof *theta);
    x += md->q;
    if (trans)
        partrans(md->P, x, sphi);
    else
        memcpy(sphi, x, (size_t)md->P * sizeof *sphi);
    x += md->P;
    memcpy(stheta, x, (size_t)md->Q * sizeof *stheta);
    x += md->Q;
    return md->cons ? *x : 0.0;
}

/* ---- CSS ---- */

/* Conditional sum of squares over t >= np; returns ssq, *nu the count. */
static double css_ssq(const amodel *md, const double *ar, const double *ma, double mu, int *nu)
{
    const double *w = md->w;
    double *e = md->work, ssq = 0.0, ca[MAXLAG + 1], cm[MAXLAG + 1];
    int n = md->nw, np = md->np, nq = md->nq, la[MAXLAG + 1], lm[MAXLAG + 1], na = 0, nm = 0;
    /* the expanded seasonal polynomials are mostly zeros: loop over the
     * non-zero lags only (the search's cost is here) */
    double c0 = mu;
    for (int k = 1; k <= np; k++)
        if (ar[k] != 0.0) {
            la[na] = k;
            ca[na++] = ar[k];
            c0 -= ar[k] * mu;
        }
    for (int k = 1; k <= nq; k++)
        if (ma[k] != 0.0) {
            lm[nm] = k;
            cm[nm++] = ma[k];
        }
    for (int t = 0; t < n && t < np; t++)
        e[t] = 0.0;
    for (int t = np; t < n; t++) {
        double v = w[t] - c0;
        for (int i = 0; i < na; i++)
            v -= ca[i] * w[t - la[i]];
        for (int i = 0; i < nm && lm[i] <= t; i++)
            v -= cm[i] * e[t - lm[i]];
        e[t] = v;
        ssq += v * v;
    }
    *nu = n - np;
    return ssq;
}

static double css_objective(const double *par, void *ctx)
{
    const amodel *md = ctx;
    double phi[TS_ARIMA_MAX_P], theta[TS_ARIMA_MAX_P], sphi[TS_ARIMA_MAX_SP],
        stheta[TS_ARIMA_MAX_SP], ar[MAXLAG + 1], ma[MAXLAG + 1];
    double mu = unpack(md, par, 0, phi, theta, sphi, stheta);
    expand(md, phi, theta, sphi, stheta, ar, ma);
    int nu;
    double ssq = css_ssq(md, ar, ma, mu, &nu);
    if (nu < 1 || !isfinite(ssq))
        return TS_BIG;
    double v = 0.5 * log(fmax(ssq, 1e-300) / nu);
    return isfinite(v) && v < TS_BIG ? v : TS_BIG;
}

/* ---- exact likelihood (Kalman filter) ---- */

/* The first row P0[k] = Cov(y_t, alpha_t[k]) of the stationary state
 * covariance (sigma^2 = 1) of the ARMA in Harvey's form: sum_{j>=k}
 * phi_{j+1} gamma(j+1-k) + theta_j psi_{j-k}, from the autocovariances
 * gamma (a (p+1)-equation linear system) and the psi weights.  The filter
 * needs no more of P0 (see kalman).  O(p^3 + r^2). */
static int initial_cov(const double *arr, const double *rv, int np, int r, double *P0,
                       double *A)
{
    double psi[MAXR], rhs[MAXR + 1], g[MAXR + 1];
    for (int j = 0; j < r; j++) {
        double v = rv[j];
        for (int i = 1; i <= j && i <= np; i++)
            v += arr[i - 1] * psi[j - i];
        psi[j] = v;
    }
    /* gamma(k) - sum_i phi_i gamma(k - i) = sum_{j>=k} theta_j psi_{j-k} */
    for (int k = 0; k <= r; k++) {
        double v = 0.0;
        for (int j = k; j < r; j++)
            v += rv[j] * psi[j - k];
        rhs[k] = v;
    }
    int ns = np + 1;
    for (int k = 0; k < ns * ns; k++)
        A[k] = 0.0;
    for (int k = 0; k < ns; k++) {
        A[k * ns + k] += 1.0;
        for (int i = 1; i <= np; i++)
            A[k * ns + abs(k - i)] -= arr[i - 1];
        g[k] = rhs[k];
    }
    if (ts_solve(A, g, ns, 1e-300) != 0)
        return -1;
    for (int k = ns; k <= r; k++) {
        double v = rhs[k];
        for (int i = 1; i <= np; i++)
            v += arr[i - 1] * g[k - i];
        g[k] = v;
    }
    for (int k = 0; k < r; k++) {
        double v = 0.0;
        for (int j = k; j < r; j++)
            v += arr[j] * g[j + 1 - k] + rv[j] * psi[j - k];
        P0[k] = v;
    }
    return 0;
}

/* Runs the filter over x = w - mu.  Returns 0 with ssq = sum v^2/F and
 * sumlog = sum log F; the predicted state for time nw goes to a_end (r
 * values) and r to *r_out when not NULL.
 *
 * Chandrasekhar recursions (Morf, Sidhu & Kailath 1974) instead of the
 * Riccati update: started from the stationary P0, the change of the state
 * covariance from one step to the next is a rank-one L M L', and with
 * G = T P Z' and F = Z P Z' (Z = e_1)
 *   a' = T a + G v / F,  G' = G + (T L) M (Z L),  F' = F + (Z L)^2 M,
 *   L' = T L - G (Z L) / F,  M' = M F / F',
 * starting from L = G, M = -1/F: O(r) a step instead of O(r^2). */
static int kalman(const amodel *md, const double *ar, const double *ma, double mu, double *ssq,
                  double *sumlog, double *a_end, int *r_out)
{
    int np = md->np, nq = md->nq, r = np > nq + 1 ? np : nq + 1;
    double arr[MAXR + 1], rv[MAXR], a[MAXR + 1], G[MAXR + 1], L[MAXR + 1], P0[MAXR] = {0};
    for (int i = 0; i < r; i++) {
        arr[i] = i < np ? ar[i + 1] : 0.0;
        rv[i] = i == 0 ? 1.0 : (i <= nq ? ma[i] : 0.0);
        a[i] = 0.0;
    }
    arr[r] = a[r] = 0.0;
    if (initial_cov(arr, rv, np, r, P0, md->mat) != 0)
        return -1;
    double F = P0[0];
    for (int i = 0; i < r; i++)
        L[i] = G[i] = arr[i] * P0[0] + (i + 1 < r ? P0[i + 1] : 0.0);
    L[r] = G[r] = 0.0;
    double M = -1.0 / F, s = 0.0, sl = 0.0;
    int steady = 0;
    for (int t = 0; t < md->nw; t++) {
        if (!(F > 0.0) || !isfinite(F))
            return -1;
        double v = md->w[t] - mu - a[0];
        s += v * v / F;
        sl += log(F);
        double k = v / F, a0 = a[0];
        for (int i = 0; i < r; i++)
            a[i] = arr[i] * a0 + a[i + 1] + G[i] * k;
        if (steady)
            continue;
        double zl = L[0], l0 = L[0], f_old = F;
        F += zl * zl * M;
        double gm = M * zl, ll = 0.0;
        for (int i = 0; i < r; i++) {
            double tl = arr[i] * l0 + L[i + 1];
            double g_old = G[i];
            G[i] += tl * gm;
            L[i] = tl - g_old * zl / f_old;
            ll = fmax(ll, L[i] * L[i]);
        }
        M = M * f_old / F;
        /* the covariance has stopped moving (every element of L M L', not
         * only the first: a seasonal MA moves it m steps later): keep F, G */
        if (ll * fabs(M) < KALMAN_STEADY * F)
            steady = 1;
    }
    *ssq = s;
    *sumlog = sl;
    if (a_end)
        memcpy(a_end, a, (size_t)r * sizeof *a);
    if (r_out)
        *r_out = r;
    return 0;
}

static double ml_objective(const double *par, void *ctx)
{
    const amodel *md = ctx;
    double phi[TS_ARIMA_MAX_P], theta[TS_ARIMA_MAX_P], sphi[TS_ARIMA_MAX_SP],
        stheta[TS_ARIMA_MAX_SP], ar[MAXLAG + 1], ma[MAXLAG + 1], ssq, sl;
    for (int i = 0; i < md->npar; i++)
        if (!(fabs(par[i]) < 1e3))
            return TS_BIG;
    double mu = unpack(md, par, 1, phi, theta, sphi, stheta);
    expand(md, phi, theta, sphi, stheta, ar, ma);
    if (kalman(md, ar, ma, mu, &ssq, &sl, NULL, NULL) != 0)
        return TS_BIG;
    double v = 0.5 * log(fmax(ssq, 1e-300) / md->nw) + 0.5 * sl / md->nw;
    return isfinite(v) && v < TS_BIG ? v : TS_BIG;
}

/* ---- fitting one model ---- */

/* The differencing polynomial (1-B)^d (1-B^m)^D as lag coefficients
 * delta[1..dd]: y_t = w_t + sum delta_k y_{t-k}.  Returns dd. */
static int diff_poly(int d, int D, int m, double *delta)
{
    double c[MAXLAG + 2] = {1.0};
    int deg = 0;
    for (int i = 0; i < d + D; i++) {
        int lag = i < d ? 1 : m;
        for (int k = deg + lag; k >= lag; k--)
            c[k] -= c[k - lag];
        deg += lag;
    }
    for (int k = 1; k <= deg; k++)
        delta[k] = -c[k];
    return deg;
}

/* w = the differenced y; returns its length (n - dd). */
static int difference(const double *y, int n, int d, int D, int m, double *w)
{
    double delta[MAXLAG + 2];
    int dd = diff_poly(d, D, m, delta);
    for (int t = dd; t < n; t++) {
        double v = y[t];
        for (int k = 1; k <= dd; k++)
            v -= delta[k] * y[t - k];
        w[t - dd] = v;
    }
    return n - dd;
}

static void set_orders(amodel *md, int p, int q, int P, int Q, int m, int cons)
{
    md->p = p;
    md->q = q;
    md->P = P;
    md->Q = Q;
    md->m = m;
    md->cons = cons;
    md->np = p + P * m;
    md->nq = q + Q * m;
    md->npar = p + q + P + Q + cons;
}

/* The expanded polynomials pass auto.arima's root check (every root of the
 * AR and MA polynomials outside |z| = 1.01). */
static int roots_ok(const amodel *md, const double *ar, const double *ma)
{
    double neg[MAXLAG + 1];
    for (int k = 1; k <= md->nq; k++)
        neg[k] = -ma[k];
    return ts_roots_outside(ar, md->np, 1.01) && ts_roots_outside(neg, md->nq, 1.01);
}

/* CSS fit: par (raw coefficients, mu scaled) from zeros; returns sigma2 on
 * the scaled data (INFINITY when the fit fails); *roots says whether it
 * passes the root check. */
static double fit_css(amodel *md, double *par, double wmean, int *roots)
{
    int k = md->npar;
    double step[MAXPAR], fmin;
    for (int i = 0; i < k; i++) {
        par[i] = 0.0;
        step[i] = 0.1;
    }
    if (md->cons)
        par[k - 1] = wmean;
    if (k == 0) {
        fmin = css_objective(par, md);
    } else {
        /* a restart from the optimum: cheap here, and the simplex often
         * stalls on the first run in 6+ dimensions */
        for (int run = 0; run < 2; run++)
            ts_nelder_mead(css_objective, md, par, step, k, 200 * k + 200, 1e-9, &fmin);
    }
    if (!(fmin < TS_BIG))
        return INFINITY;
    double phi[TS_ARIMA_MAX_P], theta[TS_ARIMA_MAX_P], sphi[TS_ARIMA_MAX_SP],
        stheta[TS_ARIMA_MAX_SP], ar[MAXLAG + 1], ma[MAXLAG + 1];
    unpack(md, par, 0, phi, theta, sphi, stheta);
    expand(md, phi, theta, sphi, stheta, ar, ma);
    *roots = roots_ok(md, ar, ma);
    return exp(2.0 * fmin);
}

/* Exact ML from the CSS estimates (raw coefficients, replaced by the ML
 * estimates, untransformed).  Returns the objective (R's 0.5 log s2 +
 * 0.5 sumlog / n) or INFINITY. */
static double fit_ml(amodel *md, double *par)
{
    int k = md->npar;
    double x[MAXPAR], step[MAXPAR], fmin;
    memcpy(x, par, (size_t)k * sizeof *x);
    if (invpartrans(md->p, par, x) != 0 ||
        invpartrans(md->P, par + md->p + md->q, x + md->p + md->q) != 0)
        return INFINITY; /* R: "non-stationary AR part from CSS" */
    ma_invert(x + md->p, md->q);
    ma_invert(x + md->p + md->q + md->P, md->Q);
    for (int i = 0; i < k; i++)
        step[i] = 0.1;
    /* One run from the CSS estimates, which are close: a restart changed
     * no fixture's loglik by more than 1e-3 and doubled the time. */
    if (k == 0)
        fmin = ml_objective(x, md);
    else
        ts_nelder_mead(ml_objective, md, x, step, k, ML_MAXIT_PER_DIM * k + 50, 1e-9, &fmin);
    if (!(fmin < TS_BIG))
        return INFINITY;
    double phi[TS_ARIMA_MAX_P], theta[TS_ARIMA_MAX_P], sphi[TS_ARIMA_MAX_SP],
        stheta[TS_ARIMA_MAX_SP], ar[MAXLAG + 1], ma[MAXLAG + 1];
    double mu = unpack(md, x, 1, phi, theta, sphi, stheta);
    expand(md, phi, theta, sphi, stheta, ar, ma);
    if (!roots_ok(md, ar, ma))
        return INFINITY;
    double *o = par;
    memcpy(o, phi, (size_t)md->p * sizeof *o);
    o += md->p;
    memcpy(o, theta, (size_t)md->q * sizeof *o);
    o += md->q;
    memcpy(o, sphi, (size_t)md->P * sizeof *o);
    o += md->P;
    memcpy(o, stheta, (size_t)md->Q * sizeof *o);
    o += md->Q;
    if (md->cons)
        *o = mu;
    return fmin;
}

/* The data side of a fit: differenced, scaled series and workspaces. */
typedef struct adata {
    double *w, *work, *mat;
    int nw;
    double scale, wmean;
} adata;

static void adata_free(adata *a)
{
    free(a->w);
    free(a->work);
    free(a->mat);
}

static int adata_init(adata *a, const double *y, int n, int d, int D, int m, prm_error *err)
{
    memset(a, 0, sizeof *a);
    a->w = malloc((size_t)n * sizeof *a->w);
    a->work = malloc((size_t)n * sizeof *a->work);
    a->mat = malloc((size_t)(4 * MAXR * MAXR) * sizeof *a->mat);
    if (!a->w || !a->work || !a->mat) {
        adata_free(a);
        return prm_error_set(err, "arima: out of memory");
    }
    a->nw = difference(y, n, d, D, m, a->w);
    double mu = 0.0, ss = 0.0;
    for (int t = 0; t < a->nw; t++)
        mu += a->w[t];
    mu /= a->nw;
    for (int t = 0; t < a->nw; t++)
        ss += (a->w[t] - mu) * (a->w[t] - mu);
    double sd = sqrt(ss / a->nw);
    a->scale = sd > 1e-12 * fmax(1.0, fabs(mu)) ? sd : fmax(1.0, fabs(mu));
    for (int t = 0; t < a->nw; t++)
        a->w[t] /= a->scale;
    a->wmean = mu / a->scale;
    return 0;
}

static void model_on(amodel *md, const adata *a)
{
    md->w = a->w;
    md->nw = a->nw;
    md->work = a->work;
    md->mat = a->mat;
}

/* Information criteria as auto.arima (myarima): npar coefficients + 1. */
static void set_ic(ts_arima *f, double loglik, int ncoef, int nstar)
{
    int k = ncoef + 1;
    f->loglik = loglik;
    f->aic = -2.0 * loglik + 2.0 * k;
    f->bic = f->aic + k * (log((double)nstar) - 2.0);
    f->aicc = nstar - k - 1 > 0 ? f->aic + 2.0 * k * (k + 1) / (nstar - k - 1) : INFINITY;
}

/* Fills fit from an ML parameter vector (untransformed) and objective. */
static void store_fit(ts_arima *f, const amodel *md, const adata *a, const double *par,
                      double obj, int d, int D, int n)
{
    memset(f, 0, sizeof *f);
    f->p = md->p;
    f->d = d;
    f->q = md->q;
    f->P = md->P;
    f->D = D;
    f->Q = md->Q;
    f->m = md->m;
    f->constant = md->cons;
    const double *x = par;
    memcpy(f->phi, x, (size_t)md->p * sizeof *x);
    x += md->p;
    memcpy(f->theta, x, (size_t)md->q * sizeof *x);
    x += md->q;
    memcpy(f->sphi, x, (size_t)md->P * sizeof *x);
    x += md->P;
    memcpy(f->stheta, x, (size_t)md->Q * sizeof *x);
    x += md->Q;
    f->mu = md->cons ? *x * a->scale : 0.0;
    f->n = n;
    int nu = a->nw;
    /* obj = 0.5 log(s2) + 0.5 sumlog / nu on the scaled data */
    double sl = 0.0, ssq = 0.0;
    {
        double phi[TS_ARIMA_MAX_P], theta[TS_ARIMA_MAX_P], sphi[TS_ARIMA_MAX_SP],
            stheta[TS_ARIMA_MAX_SP], ar[MAXLAG + 1], ma[MAXLAG + 1];
        memcpy(phi, f->phi, sizeof phi);
        memcpy(theta, f->theta, sizeof theta);
        memcpy(sphi, f->sphi, sizeof sphi);
        memcpy(stheta, f->stheta, sizeof stheta);
        expand(md, phi, theta, sphi, stheta, ar, ma);
        if (kalman(md, ar, ma, md->cons ? f->mu / a->scale : 0.0, &ssq, &sl, NULL, NULL) != 0)
            ssq = exp(2.0 * obj) * nu, sl = 0.0;
    }
    (void)obj;
    double s2 = fmax(ssq, 1e-300) / nu;
    double value = 0.5 * log(s2 * a->scale * a->scale) + 0.5 * sl / nu;
    /* forecast::Arima reports (and forecasts with) ssq / (nstar - ncoef) */
    f->sigma2 = fmax(ssq, 1e-300) / (nu - md->npar > 0 ? nu - md->npar : 1) * a->scale * a->scale;
    double loglik = -0.5 * (2.0 * nu * value + nu + nu * log(2.0 * M_PI));
    set_ic(f, loglik, md->npar, n - d - D * md->m);
}

static int check_orders(int n, int m, int p, int d, int q, int P, int D, int Q, prm_error *err)
{
    if (p < 0 || q < 0 || p > TS_ARIMA_MAX_P || q > TS_ARIMA_MAX_P || d < 0 || d > 2)
        return prm_error_set(err, "arima: orders must be p, q in 0..%d and d in 0..2",
                             TS_ARIMA_MAX_P);
    if (P < 0 || Q < 0 || D < 0 || P > TS_ARIMA_MAX_SP || Q > TS_ARIMA_MAX_SP || D > 1)
        return prm_error_set(err, "arima: seasonal orders must be P, Q in 0..%d and D in 0..1",
                             TS_ARIMA_MAX_SP);
    if ((P || D || Q) && (m < 2 || m > TS_ARIMA_MAX_PERIOD))
        return prm_error_set(err, "arima: seasonal orders need a period in 2..%d, got %d",
                             TS_ARIMA_MAX_PERIOD, m);
    int dd = d + D * m, k = p + q + P + Q + 2;
    if (n - dd - (p + P * m) < k + 2)
        return prm_error_set(err, "arima: %d observations are too few for this model", n);
    return 0;
}

int ts_arima_fit(const double *y, int n, int m, const int order[6], int constant, ts_arima *fit,
                 prm_error *err)
{
    int p = order[0], d = order[1], q = order[2], P = order[3], D = order[4], Q = order[5];
    if (!(P || D || Q))
        m = 1;
    if (check_orders(n, m, p, d, q, P, D, Q, err) != 0)
        return -1;
    if (constant && d + D > 1)
        return prm_error_set(err, "arima: a constant needs d + D <= 1");
    adata a;
    if (adata_init(&a, y, n, d, D, m, err) != 0)
        return -1;
    amodel md;
    model_on(&md, &a);
    set_orders(&md, p, q, P, Q, m, constant);
    double par[MAXPAR];
    int roots;
    double s2 = fit_css(&md, par, a.wmean, &roots);
    double obj = isfinite(s2) ? fit_ml(&md, par) : INFINITY;
    if (!isfinite(obj)) {
        adata_free(&a);
        return prm_error_set(err, "arima: no stationary, invertible fit for this model");
    }
    store_fit(fit, &md, &a, par, obj, d, D, n);
    adata_free(&a);
    return 0;
}

/* ---- tests for d and D ---- */

double ts_kpss(const double *x, int n)
{
    if (n < 3)
        return 0.0;
    double mu = 0.0;
    for (int t = 0; t < n; t++)
        mu += x[t];
    mu /= n;
    double s = 0.0, eta = 0.0, s0 = 0.0;
    for (int t = 0; t < n; t++) {
        double e = x[t] - mu;
        s += e;
        eta += s * s;
        s0 += e * e;
    }
    eta /= (double)n * n;
    /* urca::ur.kpss(type = "mu", use.lag = trunc(3 sqrt(n) / 13)) as
     * forecast::ndiffs, Bartlett weights */
    int l = (int)(3.0 * sqrt((double)n) / 13.0);
    double s2 = s0 / n;
    for (int i = 1; i <= l; i++) {
        double c = 0.0;
        for (int t = i; t < n; t++)
            c += (x[t] - mu) * (x[t - i] - mu);
        s2 += 2.0 * (1.0 - i / (l + 1.0)) * c / n;
    }
    return s2 > 0.0 ? eta / s2 : 0.0;
}

static int is_constant(const double *x, int n)
{
    for (int t = 1; t < n; t++)
        if (x[t] != x[0])
            return 0;
    return 1;
}

int ts_ndiffs(const double *x, int n)
{
    double *w = malloc((size_t)(n > 0 ? n : 1) * sizeof *w);
    if (!w)
        return 0;
    memcpy(w, x, (size_t)n * sizeof *w);
    int d = 0, len = n;
    /* 0.463: the 5% critical value of the level-stationarity KPSS test */
    while (d < 2 && len > 3 && !is_constant(w, len) && ts_kpss(w, len) > 0.463) {
        for (int t = 0; t + 1 < len; t++)
            w[t] = w[t + 1] - w[t];
        len--;
        d++;
    }
    free(w);
    return d;
}

double ts_seasonal_strength(const double *y, int n, int m)
{
    if (m < 2 || n <= 2 * m || m > 256)
        return 0.0;
    double fig[256];
    if (ts_decompose(y, n, m, 0, fig) != 0)
        return 0.0;
    /* remainder and seasonal + remainder over the span the centred moving
     * average covers (classical additive decomposition) */
    int half = m / 2;
    double sr = 0.0, srr = 0.0, sx = 0.0, sxx = 0.0;
    int cnt = 0;
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
        double dt = y[t] - tr, rem = dt - fig[t % m];
        sr += rem;
        srr += rem * rem;
        sx += dt;
        sxx += dt * dt;
        cnt++;
    }
    if (cnt < 3)
        return 0.0;
    double vr = srr - sr * sr / cnt, vx = sxx - sx * sx / cnt;
    if (!(vx > 0.0))
        return 0.0;
    return fmax(0.0, fmin(1.0, 1.0 - vr / vx));
}

int ts_nsdiffs(const double *y, int n, int m)
{
    if (m < 2 || is_constant(y, n))
        return 0;
    /* forecast::nsdiffs(test = "seas"): seasonal strength above 0.64 */
    return ts_seasonal_strength(y, n, m) > 0.64;
}

/* ---- automatic selection ---- */

typedef struct cand {
    int p, q, P, Q, cons;
    double ic;
} cand;

typedef struct search {
    amodel md;
    const adata *a;
    int m, nstar, n, d, D;
    int approx; /* rank by CSS (R's approximation = TRUE) */
    cand res[TS_ARIMA_NMODELS];
    int k;
} search;

static int seen(const search *s, int p, int q, int P, int Q, int cons)
{
    for (int i = 0; i < s->k; i++) {
        const cand *c = &s->res[i];
        if (c->p == p && c->q == q && c->P == P && c->Q == Q && c->cons == cons)
            return 1;
    }
    return 0;
}

/* CSS fit of one candidate; its AICc as R's approximation (offset omitted:
 * it is the same for every candidate). */
static double try_model(search *s, int p, int q, int P, int Q, int cons)
{
    double ic = INFINITY, par[MAXPAR];
    set_orders(&s->md, p, q, P, Q, s->m, cons);
    int k = s->md.npar + 1;
    if (s->a->nw - s->md.np >= k + 2 && s->nstar - k - 1 > 0) {
        int roots;
        double s2 = fit_css(&s->md, par, s->a->wmean, &roots);
        if (isfinite(s2) && roots)
            ic = s->nstar * log(s2) + 2.0 * k + 2.0 * k * (k + 1) / (s->nstar - k - 1);
        /* R's default (approximation = n > 150 || m > 12): short series
         * rank every candidate by its exact-ML AICc (CSS-ML). */
        if (isfinite(ic) && !s->approx) {
            double obj = fit_ml(&s->md, par);
            ts_arima tmp;
            if (isfinite(obj)) {
                store_fit(&tmp, &s->md, s->a, par, obj, s->d, s->D, s->n);
                ic = isfinite(tmp.aicc) ? tmp.aicc : INFINITY;
            } else
                ic = INFINITY;
        }
    }
    if (s->k < TS_ARIMA_NMODELS) {
        cand *c = &s->res[s->k++];
        c->p = p;
        c->q = q;
        c->P = P;
        c->Q = Q;
        c->cons = cons;
        c->ic = ic;
    }
    return ic;
}

static int cmp_cand(const void *x, const void *y)
{
    const cand *a = x, *b = y;
    return (a->ic > b->ic) - (a->ic < b->ic);
}

int ts_arima_auto(const double *y, int n, int m, ts_arima *fit, prm_error *err)
{
    if (n < 4)
        return prm_error_set(err, "arima: need at least 4 observations, got %d", n);
    int approx = n > 150 || m > 12;
    if (m < 1 || m > TS_ARIMA_MAX_PERIOD)
        m = 1;
    int max_p = TS_ARIMA_MAX_P, max_q = TS_ARIMA_MAX_P;
    int max_P = TS_ARIMA_MAX_SP, max_Q = TS_ARIMA_MAX_SP;
    if (max_p > n / 3)
        max_p = max_q = n / 3;
    if (m > 1) {
        int cap = n / 3 / m;
        if (max_P > cap)
            max_P = max_Q = cap;
    } else {
        max_P = max_Q = 0;
    }
    int D = 0;
    if (m > 1 && (max_P > 0 || max_Q > 0))
        D = ts_nsdiffs(y, n, m);
    double *dx = malloc((size_t)n * sizeof *dx);
    if (!dx)
        return prm_error_set(err, "arima: out of memory");
    int ndx = difference(y, n, 0, D, m, dx);
    int d = ts_ndiffs(dx, ndx);
    free(dx);
    if (D == 0 && max_P == 0)
        m = 1;
    int allowdrift = d + D == 1, allowmean = d + D == 0;
    int constant = allowdrift || allowmean;
    search *s = malloc(sizeof *s);
    if (!s)
        return prm_error_set(err, "arima: out of memory");
    adata a;
    if (adata_init(&a, y, n, d, D, m, err) != 0) {
        free(s);
        return -1;
    }
    model_on(&s->md, &a);
    s->a = &a;
    s->m = m;
    s->nstar = n - d - D * m;
    s->n = n;
    s->d = d;
    s->D = D;
    s->approx = approx;
    s->k = 0;

    int p = 2 < max_p ? 2 : max_p, q = 2 < max_q ? 2 : max_q;
    int P = 1 < max_P ? 1 : max_P, Q = 1 < max_Q ? 1 : max_Q;
    double best = try_model(s, p, q, P, Q, constant), ic;
    if ((ic = try_model(s, 0, 0, 0, 0, constant)) < best) {
        best = ic;
        p = q = P = Q = 0;
    }
    if (max_p > 0 || max_P > 0) {
        int sp = max_P > 0;
        if ((ic = try_model(s, max_p > 0, 0, sp, 0, constant)) < best) {
            best = ic;
            p = max_p > 0;
            P = sp;
            q = Q = 0;
        }
    }
    if (max_q > 0 || max_Q > 0) {
        int sq = max_Q > 0;
        if ((ic = try_model(s, 0, max_q > 0, 0, sq, constant)) < best) {
            best = ic;
            p = P = 0;
            Q = sq;
            q = max_q > 0;
        }
    }
    if (constant) {
        if ((ic = try_model(s, 0, 0, 0, 0, 0)) < best) {
            best = ic;
            p = q = P = Q = 0;
            constant = 0;
        }
    }
    /* The stepwise neighbourhood, in auto.arima's order; an improvement
     * restarts the scan from the new model. */
    static const int moves[][5] = {
        {0, 0, -1, 0, 0}, {0, 0, 0, -1, 0}, {0, 0, 1, 0, 0},  {0, 0, 0, 1, 0},
        {0, 0, -1, -1, 0}, {0, 0, -1, 1, 0}, {0, 0, 1, -1, 0}, {0, 0, 1, 1, 0},
        {-1, 0, 0, 0, 0}, {0, -1, 0, 0, 0}, {1, 0, 0, 0, 0},  {0, 1, 0, 0, 0},
        {-1, -1, 0, 0, 0}, {-1, 1, 0, 0, 0}, {1, -1, 0, 0, 0}, {1, 1, 0, 0, 0},
        {0, 0, 0, 0, 1}};
    int improved = 1;
    while (improved && s->k < TS_ARIMA_NMODELS) {
        improved = 0;
        for (size_t i = 0; i < sizeof moves / sizeof *moves && s->k < TS_ARIMA_NMODELS; i++) {
            int np = p + moves[i][0], nq = q + moves[i][1], nP = P + moves[i][2],
                nQ = Q + moves[i][3], nc = moves[i][4] ? !constant : constant;
            if (moves[i][4] && !(allowdrift || allowmean))
                continue;
            if (np < 0 || nq < 0 || nP < 0 || nQ < 0 || np > max_p || nq > max_q ||
                nP > max_P || nQ > max_Q || seen(s, np, nq, nP, nQ, nc))
                continue;
            if ((ic = try_model(s, np, nq, nP, nQ, nc)) < best) {
                best = ic;
                p = np;
                q = nq;
                P = nP;
                Q = nQ;
                constant = nc;
                improved = 1;
                break;
            }
        }
    }
    /* Refit by ML in the order of the CSS criterion until one passes. */
    qsort(s->res, (size_t)s->k, sizeof *s->res, cmp_cand);
    int rc = -1;
    for (int i = 0; i < s->k && isfinite(s->res[i].ic); i++) {
        const cand *c = &s->res[i];
        double par[MAXPAR];
        set_orders(&s->md, c->p, c->q, c->P, c->Q, m, c->cons);
        int roots;
        if (!isfinite(fit_css(&s->md, par, a.wmean, &roots)))
            continue;
        double obj = fit_ml(&s->md, par);
        if (!isfinite(obj))
            continue;
        store_fit(fit, &s->md, &a, par, obj, d, D, n);
        if (!isfinite(fit->aicc) && i + 1 < s->k)
            continue;
        fit->nmodels = s->k;
        rc = 0;
        break;
    }
    adata_free(&a);
    free(s);
    if (rc != 0)
        return prm_error_set(err, "arima: no suitable model found");
    return 0;
}

/* ---- forecasting ---- */

void ts_arima_name(const ts_arima *f, char *buf, int size)
{
    int off = snprintf(buf, (size_t)size, "ARIMA(%d,%d,%d)", f->p, f->d, f->q);
    if (off < size && (f->P || f->D || f->Q))
        off += snprintf(buf + off, (size_t)(size - off), "(%d,%d,%d)[%d]", f->P, f->D, f->Q,
                        f->m);
    if (off < size && f->constant)
        snprintf(buf + off, (size_t)(size - off), "%s",
                 f->d + f->D == 0 ? " with non-zero mean" : " with drift");
}

int ts_arima_forecast(const ts_arima *f, const double *y, int n, const ts_options *opt,
                      ts_result *r, prm_error *err)
{
    int h = opt->h, m = f->m;
    adata a;
    if (adata_init(&a, y, n, f->d, f->D, m, err) != 0)
        return -1;
    amodel md;
    model_on(&md, &a);
    set_orders(&md, f->p, f->q, f->P, f->Q, m, f->constant);
    double phi[TS_ARIMA_MAX_P], theta[TS_ARIMA_MAX_P], sphi[TS_ARIMA_MAX_SP],
        stheta[TS_ARIMA_MAX_SP], ar[MAXLAG + 1], ma[MAXLAG + 1], st[MAXR], ssq, sl;
    memcpy(phi, f->phi, sizeof phi);
    memcpy(theta, f->theta, sizeof theta);
    memcpy(sphi, f->sphi, sizeof sphi);
    memcpy(stheta, f->stheta, sizeof stheta);
    expand(&md, phi, theta, sphi, stheta, ar, ma);
    int rdim;
    double mu = f->constant ? f->mu / a.scale : 0.0;
    if (kalman(&md, ar, ma, mu, &ssq, &sl, st, &rdim) != 0) {
        adata_free(&a);
        return prm_error_set(err, "arima: the filter failed on this series");
    }
    double *buf = malloc((size_t)(n + h) * 2 * sizeof *buf);
    if (!buf || ts_result_alloc(r, opt, err) != 0) {
        free(buf);
        adata_free(&a);
        return buf ? -1 : prm_error_set(err, "arima: out of memory");
    }
    double *yy = buf, *psi = buf + n + h;
    memcpy(yy, y, (size_t)n * sizeof *yy);
    double delta[MAXLAG + 2];
    int dd = diff_poly(f->d, f->D, m, delta);
    /* w forecasts from the state, then the differencing undone */
    for (int k = 0; k < h; k++) {
        double wk = (st[0] + mu) * a.scale;
        double a0 = st[0];
        for (int i = 0; i < rdim; i++)
            st[i] = (i < md.np ? ar[i + 1] : 0.0) * a0 + (i + 1 < rdim ? st[i + 1] : 0.0);
        double v = wk;
        for (int j = 1; j <= dd; j++)
            v += delta[j] * yy[n + k - j];
        yy[n + k] = v;
        r->mean[k] = v;
    }
    /* psi weights of the full model (AR times the differencing) */
    double full[2 * MAXLAG + 4];
    int nf = md.np + dd;
    for (int k = 0; k <= nf; k++)
        full[k] = 0.0;
    /* (1 - sum ar B^k)(1 - sum delta B^j) = 1 - sum full B^k */
    {
        double c1[2 * MAXLAG + 4] = {0}, c2[2 * MAXLAG + 4] = {0};
        c1[0] = c2[0] = 1.0;
        for (int k = 1; k <= md.np; k++)
            c1[k] = -ar[k];
        for (int k = 1; k <= dd; k++)
            c2[k] = -delta[k];
        for (int i = 0; i <= md.np; i++)
            for (int j = 0; j <= dd; j++)
                full[i + j] -= c1[i] * c2[j];
        full[0] = 0.0;
    }
    double *se = malloc((size_t)h * sizeof *se);
    if (!se) {
        free(buf);
        ts_result_free(r);
        adata_free(&a);
        return prm_error_set(err, "arima: out of memory");
    }
    double acc = 0.0;
    for (int j = 0; j < h; j++) {
        double v = j == 0 ? 1.0 : (j <= md.nq ? ma[j] : 0.0);
        for (int k = 1; k <= nf && k <= j; k++)
            v += full[k] * psi[j - k];
        psi[j] = v;
        acc += v * v;
        se[j] = sqrt(f->sigma2 * acc);
    }
    ts_normal_intervals(r, se);
    free(se);
    free(buf);
    adata_free(&a);
    ts_arima_name(f, r->method, (int)sizeof r->method);
    for (int i = 0; i < f->p; i++) {
        char nm[16];
        snprintf(nm, sizeof nm, "ar%d", i + 1);
        ts_add_param(r, nm, f->phi[i]);
    }
    for (int i = 0; i < f->q; i++) {
        char nm[16];
        snprintf(nm, sizeof nm, "ma%d", i + 1);
        ts_add_param(r, nm, f->theta[i]);
    }
    for (int i = 0; i < f->P; i++) {
        char nm[16];
        snprintf(nm, sizeof nm, "sar%d", i + 1);
        ts_add_param(r, nm, f->sphi[i]);
    }
    for (int i = 0; i < f->Q; i++) {
        char nm[16];
        snprintf(nm, sizeof nm, "sma%d", i + 1);
        ts_add_param(r, nm, f->stheta[i]);
    }
    if (f->constant)
        ts_add_param(r, f->d + f->D == 0 ? "mean" : "drift",
                     f->d + f->D == 0 ? f->mu : f->mu / (f->D ? m : 1));
    r->aicc = f->aicc;
    r->loglik = f->loglik;
    r->sigma2 = f->sigma2;
    return 0;
}
