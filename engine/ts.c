/* ts.c - the time-series front door: input cleaning, method dispatch,
 * fallbacks, the combination forecast, and the small numerical helpers
 * (Nelder-Mead, random numbers, normal quantiles) shared by ts_*.c.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>

#include "ts_int.h"

/* ---- helpers ---- */

void ts_options_init(ts_options *opt)
{
    memset(opt, 0, sizeof *opt);
    opt->period = 1;
    opt->h = 1;
    opt->method = TS_AUTO;
    opt->nlevels = 2;
    opt->levels[0] = 80.0;
    opt->levels[1] = 95.0;
    opt->seed = 42;
    opt->npaths = 2000;
    opt->calib_origins = TS_CALIB_ORIGINS;
}

void ts_result_free(ts_result *r)
{
    if (!r)
        return;
    free(r->mean);
    r->mean = r->lower = r->upper = NULL;
}

int ts_result_alloc(ts_result *r, const ts_options *opt, prm_error *err)
{
    memset(r, 0, sizeof *r);
    int h = opt->h, nl = opt->nlevels;
    /* one block: mean, then lower, then upper */
    r->mean = calloc((size_t)h * (size_t)(1 + 2 * nl), sizeof(double));
    if (!r->mean)
        return prm_error_set(err, "ts: out of memory");
    r->lower = r->mean + h;
    r->upper = r->lower + (size_t)h * (size_t)nl;
    r->h = h;
    r->nlevels = nl;
    for (int j = 0; j < nl; j++)
        r->levels[j] = opt->levels[j];
    r->aicc = r->loglik = r->sigma2 = NAN;
    return 0;
}

const double *ts_lower(const ts_result *r, int j)
{
    return r->lower + (size_t)j * (size_t)r->h;
}

const double *ts_upper(const ts_result *r, int j)
{
    return r->upper + (size_t)j * (size_t)r->h;
}

void ts_normal_intervals(ts_result *r, const double *se)
{
    for (int j = 0; j < r->nlevels; j++) {
        double z = ts_qnorm(0.5 + r->levels[j] / 200.0);
        for (int k = 0; k < r->h; k++) {
            r->lower[j * r->h + k] = r->mean[k] - z * se[k];
            r->upper[j * r->h + k] = r->mean[k] + z * se[k];
        }
    }
}

void ts_add_param(ts_result *r, const char *name, double value)
{
    if (r->nparams >= TS_MAX_PARAMS)
        return;
    ts_param *p = &r->params[r->nparams++];
    snprintf(p->name, sizeof p->name, "%s", name);
    p->value = value;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The step-down (Schur-Cohn) recursion: on the coefficients of the
 * polynomial in z / radius, the partial autocorrelations must all lie
 * inside (-1, 1).  It works on a copy, so every step reads the previous
 * step's coefficients (ETS's own in-place reduction once read ones it had
 * already overwritten; issue 11, ts8). */
int ts_roots_outside(const double *c, int p, double radius)
{
    double a[TS_POLY_MAXDEG + 1], b[TS_POLY_MAXDEG + 1], s = 1.0;
    while (p > 0 && c[p] == 0.0)
        p--;
    if (p > TS_POLY_MAXDEG)
        return 0;
    for (int k = 1; k <= p; k++) {
        s *= radius;
        a[k] = c[k] * s;
    }
    for (int j = p; j >= 1; j--) {
        double r = a[j];
        if (!(fabs(r) < 1.0))
            return 0;
        for (int k = 1; k < j; k++)
            b[k] = (a[k] + r * a[j - k]) / (1.0 - r * r);
        for (int k = 1; k < j; k++)
            a[k] = b[k];
    }
    return 1;
}

int ts_solve(double *A, double *b, int n, double tiny)
{
    for (int c = 0; c < n; c++) {
        int piv = c;
        for (int i = c + 1; i < n; i++)
            if (fabs(A[i * n + c]) > fabs(A[piv * n + c]))
                piv = i;
        if (!(fabs(A[piv * n + c]) >= tiny) || A[piv * n + c] == 0.0)
            return -1;
        if (piv != c) {
            for (int j = 0; j < n; j++) {
                double t = A[c * n + j];
                A[c * n + j] = A[piv * n + j];
                A[piv * n + j] = t;
            }
            double t = b[c];
            b[c] = b[piv];
            b[piv] = t;
        }
        for (int i = c + 1; i < n; i++) {
            double f = A[i * n + c] / A[c * n + c];
            if (f == 0.0)
                continue;
            for (int j = c; j < n; j++)
                A[i * n + j] -= f * A[c * n + j];
            b[i] -= f * b[c];
        }
    }
    for (int i = n - 1; i >= 0; i--) {
        double v = b[i];
        for (int j = i + 1; j < n; j++)
            v -= A[i * n + j] * b[j];
        b[i] = v / A[i * n + i];
    }
    return 0;
}

void ts_sort(double *x, int n)
{
    qsort(x, (size_t)n, sizeof *x, cmp_double);
}

double ts_quantile_sorted(const double *x, int n, double p)
{
    if (n <= 0)
        return NAN;
    double pos = p * (n - 1);
    int i = (int)floor(pos);
    if (i < 0)
        return x[0];
    if (i >= n - 1)
        return x[n - 1];
    double w = pos - i;
    return x[i] + w * (x[i + 1] - x[i]);
}

/* Acklam's rational approximation refined by one Halley step on erfc:
 * accurate to about 1e-15 over (0, 1). */
double ts_qnorm(double p)
{
    static const double a[] = {-3.969683028665376e+01, 2.209460984245205e+02,
                               -2.759285104469687e+02, 1.383577518672690e+02,
                               -3.066479806614716e+01, 2.506628277459239e+00};
    static const double b[] = {-5.447609879822406e+01, 1.615858368580409e+02,
                               -1.556989798598866e+02, 6.680131188771972e+01,
                               -1.328068155288572e+01};
    static const double c[] = {-7.784894002430293e-03, -3.223964580411365e-01,
                               -2.400758277161838e+00, -2.549732539343734e+00,
                               4.374664141464968e+00, 2.938163982698783e+00};
    static const double d[] = {7.784695709041462e-03, 3.224671290700398e-01,
                               2.445134137142996e+00, 3.754408661907416e+00};
    if (!(p > 0.0 && p < 1.0))
        return p == 0.0 ? -INFINITY : p == 1.0 ? INFINITY : NAN;
    double x, q, r;
    if (p < 0.02425) {
        q = sqrt(-2.0 * log(p));
        x = (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
            ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1.0);
    } else if (p <= 1.0 - 0.02425) {
        q = p - 0.5;
        r = q * q;
        x = (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q /
            (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1.0);
    } else {
        q = sqrt(-2.0 * log(1.0 - p));
        x = -(((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
            ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1.0);
    }
    double e = 0.5 * erfc(-x / sqrt(2.0)) - p;
    double u = e * sqrt(2.0 * M_PI) * exp(x * x / 2.0);
    return x - u / (1.0 + x * u / 2.0);
}

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void ts_rng_seed(ts_rng *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix(&seed);
    r->has_spare = 0;
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static double rng_uniform(ts_rng *r)
{
    uint64_t *s = r->s;
    uint64_t res = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return ((double)(res >> 11) + 0.5) * 0x1.0p-53; /* in (0, 1), exact */
}

double ts_rng_normal(ts_rng *r)
{
    if (r->has_spare) {
        r->has_spare = 0;
        return r->spare;
    }
    double u = rng_uniform(r), v = rng_uniform(r);
    double rad = sqrt(-2.0 * log(u)), th = 2.0 * M_PI * v;
    r->spare = rad * sin(th);
    r->has_spare = 1;
    return rad * cos(th);
}

/* Nelder-Mead with the usual coefficients (1, 2, 0.5, 0.5).  The first
 * simplex steps step[i] along each axis, flipping or shrinking a step whose
 * vertex is infeasible so that the search starts with a full-rank simplex
 * inside the region. */
int ts_nelder_mead(ts_objective f, void *ctx, double *par, const double *step, int dim,
                   int maxit, double abstol, double *fmin)
{
    if (dim < 1 || dim > TS_NM_MAXDIM)
        return -1;
    double sx[(TS_NM_MAXDIM + 1) * TS_NM_MAXDIM], fv[TS_NM_MAXDIM + 1];
    double cen[TS_NM_MAXDIM], xr[TS_NM_MAXDIM], xe[TS_NM_MAXDIM];
    int n1 = dim + 1;
    memcpy(sx, par, (size_t)dim * sizeof(double));
    fv[0] = f(sx, ctx);
    for (int i = 1; i < n1; i++) {
        double *v = sx + i * dim, st = step[i - 1];
        if (st == 0.0)
            st = 0.1;
        memcpy(v, par, (size_t)dim * sizeof(double));
        for (int tries = 0; tries < 8; tries++) {
            v[i - 1] = par[i - 1] + st;
            fv[i] = f(v, ctx);
            if (fv[i] < TS_BIG)
                break;
            v[i - 1] = par[i - 1] - st;
            fv[i] = f(v, ctx);
            if (fv[i] < TS_BIG)
                break;
            st *= 0.25;
        }
    }
    int it = 0;
    for (; it < maxit; it++) {
        int lo = 0, hi = 0, nh;
        for (int i = 1; i < n1; i++) {
            if (fv[i] < fv[lo])
                lo = i;
            if (fv[i] > fv[hi])
                hi = i;
        }
        nh = lo;
        for (int i = 0; i < n1; i++)
            if (i != hi && fv[i] > fv[nh])
                nh = i;
        if (fv[hi] - fv[lo] <= abstol + 1e-10 * fabs(fv[lo]))
            break;
        for (int j = 0; j < dim; j++)
            cen[j] = 0.0;
        for (int i = 0; i < n1; i++) {
            if (i == hi)
                continue;
            const double *v = sx + i * dim;
            for (int j = 0; j < dim; j++)
                cen[j] += v[j];
        }
        double *xh = sx + hi * dim;
        for (int j = 0; j < dim; j++) {
            cen[j] /= dim;
            xr[j] = cen[j] + (cen[j] - xh[j]);
        }
        double fr = f(xr, ctx);
        if (fr < fv[lo]) {
            for (int j = 0; j < dim; j++)
                xe[j] = cen[j] + 2.0 * (cen[j] - xh[j]);
            double fe = f(xe, ctx);
            if (fe < fr) {
                memcpy(xh, xe, (size_t)dim * sizeof(double));
                fv[hi] = fe;
            } else {
                memcpy(xh, xr, (size_t)dim * sizeof(double));
                fv[hi] = fr;
            }
            continue;
        }
        if (fr < fv[nh]) {
            memcpy(xh, xr, (size_t)dim * sizeof(double));
            fv[hi] = fr;
            continue;
        }
        double fc;
        if (fr < fv[hi]) {
            for (int j = 0; j < dim; j++)
                xe[j] = cen[j] + 0.5 * (xr[j] - cen[j]);
            fc = f(xe, ctx);
            if (fc <= fr) {
                memcpy(xh, xe, (size_t)dim * sizeof(double));
                fv[hi] = fc;
                continue;
            }
        } else {
            for (int j = 0; j < dim; j++)
                xe[j] = cen[j] + 0.5 * (xh[j] - cen[j]);
            fc = f(xe, ctx);
            if (fc < fv[hi]) {
                memcpy(xh, xe, (size_t)dim * sizeof(double));
                fv[hi] = fc;
                continue;
            }
        }
        /* shrink towards the best vertex */
        const double *xl = sx + lo * dim;
        for (int i = 0; i < n1; i++) {
            if (i == lo)
                continue;
            double *v = sx + i * dim;
            for (int j = 0; j < dim; j++)
                v[j] = xl[j] + 0.5 * (v[j] - xl[j]);
            fv[i] = f(v, ctx);
        }
    }
    int lo = 0;
    for (int i = 1; i < n1; i++)
        if (fv[i] < fv[lo])
            lo = i;
    memcpy(par, sx + lo * dim, (size_t)dim * sizeof(double));
    *fmin = fv[lo];
    return 0;
}

/* R's Nelder-Mead (optim's nmmin, src/appl/optim.c), step for step, for a
 * fit that stops where R's does (issue 11, item 5): one step size for every
 * coordinate, 0.1 max |par_i| (0.1 when all are 0); reflection 1,
 * contraction 0.5, expansion 2; stops when the simplex's values span at most
 * reltol (|f| + reltol), after maxit evaluations, or when a shrink does not
 * reduce the simplex.  Values >= TS_BIG play R's non-finite values (R
 * replaces them by 1e35).  ts_nelder_mead above is the engine's own (per-
 * coordinate steps, a feasible first simplex); this one exists only to
 * reproduce R's stopping point.  Returns the evaluations used, -1 on bad
 * arguments or an infeasible start. */
int ts_nmmin(ts_objective f, void *ctx, double *par, int dim, int maxit, double reltol,
             double *fmin)
{
    if (dim < 1 || dim > TS_NM_MAXDIM)
        return -1;
    enum { NV = TS_NM_MAXDIM + 2 };
    double P[TS_NM_MAXDIM + 1][NV]; /* P[i][j]: coordinate i of vertex j; row dim: value */
    double B[TS_NM_MAXDIM];
    int n = dim, n1 = dim + 1, C = dim + 2;
    double fv = f(par, ctx);
    if (!(fv < TS_BIG))
        return -1;
    int funcount = 1, L = 1, H;
    double convtol = reltol * (fabs(fv) + reltol);
    P[n1 - 1][0] = fv;
    for (int i = 0; i < n; i++)
        P[i][0] = par[i];
    double step = 0.0, size = 0.0;
    for (int i = 0; i < n; i++)
        if (0.1 * fabs(par[i]) > step)
            step = 0.1 * fabs(par[i]);
    if (step == 0.0)
        step = 0.1;
    for (int j = 2; j <= n1; j++) {
        for (int i = 0; i < n; i++)
            P[i][j - 1] = par[i];
        double trystep = step;
        while (P[j - 2][j - 1] == par[j - 2]) {
            P[j - 2][j - 1] = par[j - 2] + trystep;
            trystep *= 10;
        }
        size += trystep;
    }
    double oldsize = size, VH, VL, VR;
    int calcvert = 1;
    for (;;) {
        if (calcvert) {
            for (int j = 0; j < n1; j++) {
                if (j + 1 != L) {
                    for (int i = 0; i < n; i++)
                        B[i] = P[i][j];
                    P[n1 - 1][j] = f(B, ctx);
                    funcount++;
                }
            }
            calcvert = 0;
        }
        VL = P[n1 - 1][L - 1];
        VH = VL;
        H = L;
        for (int j = 1; j <= n1; j++) {
            if (j != L) {
                double v = P[n1 - 1][j - 1];
                if (v < VL) {
                    L = j;
                    VL = v;
                }
                if (v > VH) {
                    H = j;
                    VH = v;
                }
            }
        }
        if (VH <= VL + convtol)
            break;
        for (int i = 0; i < n; i++) {
            double t = -P[i][H - 1];
            for (int j = 0; j < n1; j++)
                t += P[i][j];
            P[i][C - 1] = t / n;
        }
        for (int i = 0; i < n; i++)
            B[i] = 2.0 * P[i][C - 1] - P[i][H - 1];
        double fr = f(B, ctx);
        funcount++;
        VR = fr;
        if (VR < VL) {
            P[n1 - 1][C - 1] = fr;
            for (int i = 0; i < n; i++) {
                double e = 2.0 * B[i] - P[i][C - 1];
                P[i][C - 1] = B[i];
                B[i] = e;
            }
            double fe = f(B, ctx);
            funcount++;
            if (fe < VR) {
                for (int i = 0; i < n; i++)
                    P[i][H - 1] = B[i];
                P[n1 - 1][H - 1] = fe;
            } else {
                for (int i = 0; i < n; i++)
                    P[i][H - 1] = P[i][C - 1];
                P[n1 - 1][H - 1] = VR;
            }
        } else {
            if (VR < VH) {
                for (int i = 0; i < n; i++)
                    P[i][H - 1] = B[i];
                P[n1 - 1][H - 1] = VR;
            }
            for (int i = 0; i < n; i++)
                B[i] = 0.5 * P[i][H - 1] + 0.5 * P[i][C - 1];
            double fc = f(B, ctx);
            funcount++;
            if (fc < P[n1 - 1][H - 1]) {
                for (int i = 0; i < n; i++)
                    P[i][H - 1] = B[i];
                P[n1 - 1][H - 1] = fc;
            } else if (VR >= VH) {
                calcvert = 1;
                size = 0.0;
                for (int j = 0; j < n1; j++) {
                    if (j + 1 != L) {
                        for (int i = 0; i < n; i++) {
                            P[i][j] = 0.5 * (P[i][j] - P[i][L - 1]) + P[i][L - 1];
                            size += fabs(P[i][j] - P[i][L - 1]);
                        }
                    }
                }
                if (size < oldsize)
                    oldsize = size;
                else
                    break;
            }
        }
        if (funcount > maxit)
            break;
    }
    for (int i = 0; i < n; i++)
        par[i] = P[i][L - 1];
    *fmin = P[n1 - 1][L - 1];
    return funcount;
}

/* ---- names ---- */

static const char *const method_names[] = {
    "auto", "ets", "theta", "croston", "croston_classic", "sba", "tsb",
    "naive", "snaive", "drift", "mean", "damped", "combo", "arima", NULL};

int ts_method_parse(const char *name)
{
    for (int i = 0; method_names[i]; i++)
        if (strcmp(name, method_names[i]) == 0)
            return i;
    return -1;
}

const char *ts_method_name(ts_method m)
{
    if ((int)m < 0 || (int)m > TS_METHOD_LAST)
        return "?";
    return method_names[m];
}

/* ---- the front door ---- */

static int check_options(const ts_options *opt, prm_error *err)
{
    if (opt->h < 1 || opt->h > 10000)
        return prm_error_set(err, "ts: horizon h must be in 1..10000, got %d", opt->h);
    if (opt->period < 1 || opt->period > 1000)
        return prm_error_set(err, "ts: period must be in 1..1000, got %d", opt->period);
    if (opt->nlevels < 0 || opt->nlevels > TS_MAX_LEVELS)
        return prm_error_set(err, "ts: at most %d interval levels, got %d", TS_MAX_LEVELS,
                             opt->nlevels);
    for (int j = 0; j < opt->nlevels; j++)
        if (!(opt->levels[j] > 0.0 && opt->levels[j] < 100.0))
            return prm_error_set(err, "ts: interval level %g is not in (0, 100)", opt->levels[j]);
    if ((int)opt->method < 0 || (int)opt->method > TS_METHOD_LAST)
        return prm_error_set(err, "ts: unknown method %d", (int)opt->method);
    if (opt->npaths < 0 || opt->npaths > 1000000)
        return prm_error_set(err, "ts: npaths must be in 0..1000000, got %d", opt->npaths);
    if (opt->calib_origins < 0 || opt->calib_origins > 100)
        return prm_error_set(err, "ts: calib_origins must be in 0..100, got %d",
                             opt->calib_origins);
    for (int j = 0; j < TS_MAX_LEVELS; j++)
        if (!(opt->calib_pool[j] >= 0.0 && opt->calib_pool[j] <= 100.0))
            return prm_error_set(err, "ts: calib_pool[%d] must be in 0..100, got %g", j,
                                 opt->calib_pool[j]);
    return 0;
}

/* Drops leading NaNs, interpolates interior ones.  Returns a malloc'd copy. */
static double *clean(const double *y, int n, int *nout, int *nfilled, prm_error *err)
{
    if (!y || n < 1) {
        prm_error_set(err, "ts: empty series");
        return NULL;
    }
    int first = 0;
    while (first < n && isnan(y[first]))
        first++;
    if (first == n) {
        prm_error_set(err, "ts: every value is missing (NaN)");
        return NULL;
    }
    if (isnan(y[n - 1])) {
        prm_error_set(err, "ts: the last value is missing (NaN); trim the series to its last "
                      "observed value");
        return NULL;
    }
    int len = n - first;
    double *c = malloc((size_t)len * sizeof *c);
    if (!c) {
        prm_error_set(err, "ts: out of memory");
        return NULL;
    }
    int filled = 0;
    for (int i = 0; i < len; i++) {
        double v = y[first + i];
        if (isinf(v)) {
            free(c);
            prm_error_set(err, "ts: y[%d] is infinite", first + i + 1);
            return NULL;
        }
        c[i] = v;
    }
    for (int i = 1; i < len; i++) {
        if (!isnan(c[i]))
            continue;
        int j = i;
        while (isnan(c[j]))
            j++; /* c[len-1] is not NaN */
        for (int k = i; k < j; k++)
            c[k] = c[i - 1] + (c[j] - c[i - 1]) * (k - i + 1) / (double)(j - i + 1);
        filled += j - i;
        i = j;
    }
    *nout = len;
    *nfilled = filled;
    return c;
}

static int constant_forecast(const double *y, int n, const ts_options *opt, ts_result *r,
                             prm_error *err)
{
    if (ts_result_alloc(r, opt, err) != 0)
        return -1;
    for (int k = 0; k < opt->h; k++) {
        r->mean[k] = y[n - 1];
        for (int j = 0; j < r->nlevels; j++)
            r->lower[j * r->h + k] = r->upper[j * r->h + k] = y[n - 1];
    }
    snprintf(r->method, sizeof r->method, "Constant");
    return 0;
}

static int ets_or_damped(const double *y, int n, const ts_options *opt, int damped,
                         ts_result *r, prm_error *err)
{
    ts_ets fit;
    const char *spec = opt->ets_model ? opt->ets_model : "ZZZ";
    if (damped)
        spec = "ZZZ";
    /* an explicit model is fitted as asked; a search avoids implausible ones */
    int search = strchr(spec, 'Z') != NULL || damped;
    if (ts_ets_select(y, n, opt->period, spec, damped, search ? opt->h : 0, &fit, NULL, err) != 0)
        return -1;
    return ts_ets_forecast(&fit, opt, r, err);
}

/* Weighted mean of the members' point forecasts and of their interval
 * bounds (averaging quantiles, "Vincentisation"). */
static int combine(ts_result *mem, const double *w, int nm, const ts_options *opt,
                   ts_result *r, prm_error *err)
{
    if (ts_result_alloc(r, opt, err) != 0)
        return -1;
    int h = opt->h, nl = opt->nlevels;
    double wsum = 0.0;
    for (int i = 0; i < nm; i++)
        wsum += w[i];
    for (int i = 0; i < nm; i++) {
        double wi = w[i] / wsum;
        for (int k = 0; k < h; k++)
            r->mean[k] += wi * mem[i].mean[k];
        for (int k = 0; k < h * nl; k++) {
            r->lower[k] += wi * mem[i].lower[k];
            r->upper[k] += wi * mem[i].upper[k];
        }
    }
    int off = snprintf(r->method, sizeof r->method, "Combo(");
    for (int i = 0; i < nm && off < (int)sizeof r->method; i++)
        off += snprintf(r->method + off, sizeof r->method - (size_t)off, "%s%s", i ? "," : "",
                        mem[i].method);
    if (off < (int)sizeof r->method)
        snprintf(r->method + off, sizeof r->method - (size_t)off, ")");
    for (int i = 0; i < nm; i++) {
        char name[16];
        snprintf(name, sizeof name, "w%d", i + 1);
        ts_add_param(r, name, w[i] / wsum);
    }
    return 0;
}

static int arima_auto(const double *y, int n, const ts_options *opt, ts_result *r,
                      prm_error *err)
{
    ts_arima fit;
    if (ts_arima_auto(y, n, opt->period, &fit, err) != 0)
        return -1;
    return ts_arima_forecast(&fit, y, n, opt, r, err);
}

/* The "EAT" combination: the equal-weight mean of auto-ETS, auto-ARIMA and
 * Theta (Hyndman's published M3 benchmark; Petropoulos & Svetunkov 2020).
 * Fixed from the literature, not chosen on our evaluation data.  A member
 * that cannot be fitted is left out and the others are averaged. */
static int combo(const double *y, int n, const ts_options *opt, ts_result *r, prm_error *err)
{
    ts_ets best;
    ts_result mem[3];
    double w[3] = {1.0, 1.0, 1.0};
    int nm = 0, rc = -1;
    if (ts_ets_select(y, n, opt->period, "ZZZ", 0, opt->h, &best, NULL, err) == 0 &&
        ts_ets_forecast(&best, opt, &mem[nm], err) == 0)
        nm++;
    if (arima_auto(y, n, opt, &mem[nm], err) == 0)
        nm++;
    if (ts_theta(y, n, opt->period, opt, &mem[nm], err) == 0)
        nm++;
    if (nm > 0)
        rc = combine(mem, w, nm, opt, r, err);
    for (int i = 0; i < nm; i++)
        ts_result_free(&mem[i]);
    if (rc == 0 && opt->calib_origins > 0)
        ts_calibrate_widths(y, n, opt, r);
    return rc;
}

/* Whether opt's pooled seasonal indexes apply to a series of len values. */
static int uses_season(const ts_options *opt, int len)
{
    return opt->season && opt->period > 1 && len < 2 * opt->period;
}

/* c divided by opt->season (end-aligned, ts_season_pool); malloc'd, or NULL
 * with err set. */
static double *deseason(const double *c, int len, const ts_options *opt, prm_error *err)
{
    int m = opt->period;
    for (int k = 0; k < m; k++)
        if (!(isfinite(opt->season[k]) && opt->season[k] > 0)) {
            prm_error_set(err, "ts: season[%d] must be a positive index, got %g", k,
                          opt->season[k]);
            return NULL;
        }
    double *a = malloc((size_t)len * sizeof *a);
    if (!a) {
        prm_error_set(err, "ts: out of memory");
        return NULL;
    }
    for (int i = 0; i < len; i++)
        a[i] = c[i] / opt->season[((i - len) % m + m) % m];
    return a;
}

static int share_zero_at_least(const double *y, int n, double share)
{
    int z = 0;
    for (int i = 0; i < n; i++)
        z += (y[i] == 0.0);
    return z >= share * n;
}

/* Model-based methods need this many observations; shorter series get the
 * naive forecast (ETS(A,N,N) has 2 parameters and needs n >= 6). */
#define MIN_N_MODEL 6

/* Rolling-origin interval calibration of the combination.  The members'
 * intervals ignore parameter and model-selection uncertainty and come out
 * narrow on short series.  The uncalibrated combination is refitted at the
 * non-overlapping origins n - hh (k + 1), k = 0 .. calib_origins - 1, with
 * hh = min(h, n - MIN_N_CAL) and every origin >= MIN_N_CAL: only data before
 * each origin is used, and nothing after y[n-1].  Each error is divided by
 * its interval's half-width on its own side (upper - mean above the mean,
 * mean - lower below); the level-p factor is the median of those ratios
 * times z_p / 0.6745 (the median |error| of a normal is 0.6745 sigma), and
 * the level's half-widths are multiplied by it about the mean (asymmetric
 * intervals keep their shape).  The factor is kept in [CAL_FMIN, CAL_FMAX],
 * needs at least CAL_MIN_ERRORS errors, and the levels stay nested.  The
 * rule (median, non-overlapping origins) was chosen over the p-quantile, the
 * conformal rank and the RMS of the ratios, and over overlapping origins, on
 * the M3 training parts' own last h observations (bench/m3 with
 * M3_TRAIN_HOLDOUT=1), never on the test parts; docs/TIMESERIES.md.
 *
 * A series with fewer than CAL_MIN_ERRORS errors (most short yearly series)
 * takes its frequency's pooled factor when the caller set one
 * (ts_calib_pool: the level-p quantile of every series' ratios together,
 * taken as the conformal rank ceil((N + 1) p), pool_quantile).
 * That rule was chosen the same way, on the training-part holdout, over
 * the pooled median factor, over shrinking each series' factor toward
 * either pool by N0 = 6..96 pseudo-errors, and over a larger own-factor
 * threshold, as the rule with every subset within 3 points of nominal and
 * then the smallest summed distance (bench/m3/calib_rules.py; the figures
 * in bench/RESULTS.md). */
#define MIN_N_CAL 8
#define CAL_MIN_ERRORS 8
#define CAL_FMIN 0.5
#define CAL_FMAX 4.0

/* The rolling-origin ratios |error| / half-width of the uncalibrated
 * combination on y[0..n-1] (see above): ratio holds one block of cap =
 * calib_origins * h entries per level; returns how many ratios each level
 * got (0 when the series is too short or the refits fail). */
int ts_calib_ratios(const double *y, int n, const ts_options *opt, double *ratio, int cap,
                    int *fitlen)
{
    int hh = opt->h < n - MIN_N_CAL ? opt->h : n - MIN_N_CAL;
    int K = opt->calib_origins, nl = opt->nlevels;
    if (hh < 1 || nl < 1)
        return 0;
    int N = 0;
    ts_options o = *opt;
    o.h = hh;
    o.calib_origins = 0;
    for (int k = 0; k < K; k++) {
        int origin = n - hh * (k + 1);
        if (origin < MIN_N_CAL)
            break;
        ts_result f;
        prm_error e;
        if (combo(y, origin, &o, &f, &e) != 0)
            continue;
        for (int t = 0; t < hh && N < cap; t++) {
            double err = y[origin + t] - f.mean[t];
            int ok = isfinite(err);
            for (int j = 0; j < nl && ok; j++) {
                double half = err >= 0 ? ts_upper(&f, j)[t] - f.mean[t]
                                       : f.mean[t] - ts_lower(&f, j)[t];
                ok = isfinite(half) && half > 1e-12 * fmax(1.0, fabs(f.mean[t]));
            }
            if (!ok)
                continue;
            for (int j = 0; j < nl; j++) {
                double half = err >= 0 ? ts_upper(&f, j)[t] - f.mean[t]
                                       : f.mean[t] - ts_lower(&f, j)[t];
                ratio[(size_t)j * (size_t)cap + (size_t)N] = fabs(err) / half;
            }
            if (fitlen)
                fitlen[N] = origin;
            N++;
        }
        ts_result_free(&f);
    }
    return N;
}

/* The level-p factor from N ratios (sorted in place): the median ratio,
 * scaled as if the errors were normal (a level-p half-width is z_p sigma,
 * and the median |error| is 0.6745 sigma). */
static double median_factor(double *ratio, int N, double level)
{
    ts_sort(ratio, N);
    double zp = ts_qnorm(0.5 + level / 200.0);
    return ts_quantile_sorted(ratio, N, 0.5) * zp / 0.6744897501960817;
}

/* FNV-1a over the values' bytes: the cache serves only the data it was
 * computed on. */
static uint64_t data_hash(const double *y, int n)
{
    uint64_t h = 1469598103934665603ULL;
    const unsigned char *b = (const unsigned char *)y;
    for (size_t k = 0; k < (size_t)n * sizeof *y; k++)
        h = (h ^ b[k]) * 1099511628211ULL;
    return h;
}

/* Series opt->calib_index's ratios from opt->calib_cache into ratio (cap per
 * level) when the cache holds them for this length and these options; -1
 * when it does not (the caller refits). */
static int cached_ratios(const double *y, int n, const ts_options *opt, double *ratio, int cap)
{
    const ts_calib_cache *c = opt->calib_cache;
    int i = opt->calib_index, nl = opt->nlevels;
    if (!c || i < 0 || i >= c->count || c->len[i] != n || c->nratios[i] < 0 ||
        c->hash[i] != data_hash(y, n) ||
        c->cap != cap || c->nlevels != nl || c->h != opt->h || c->origins != opt->calib_origins)
        return -1;
    for (int j = 0; j < nl; j++)
        if (c->levels[j] != opt->levels[j])
            return -1;
    int N = c->nratios[i];
    for (int j = 0; j < nl; j++)
        memcpy(ratio + (size_t)j * (size_t)cap,
               c->ratio + ((size_t)i * (size_t)nl + (size_t)j) * (size_t)cap,
               (size_t)N * sizeof(double));
    return N;
}

int ts_calibrate_widths(const double *y, int n, const ts_options *opt, ts_result *r)
{
    int nl = r->nlevels, cap = opt->calib_origins * opt->h;
    int pooled = opt->calib_pool[0] > 0;
    if (nl < 1 || cap < 1)
        return 0;
    double *ratio = malloc((size_t)nl * (size_t)cap * sizeof(double));
    if (!ratio)
        return 0; /* widths left as the members give them */
    int N = cached_ratios(y, n, opt, ratio, cap);
    if (N < 0)
        N = ts_calib_ratios(y, n, opt, ratio, cap, NULL);
    int done = N >= CAL_MIN_ERRORS || pooled;
    for (int j = 0; j < nl && done; j++) {
        /* a series' own factor when it has the errors for one, else its
         * frequency's pooled factor */
        double fac = N >= CAL_MIN_ERRORS
                         ? median_factor(ratio + (size_t)j * (size_t)cap, N, r->levels[j])
                         : opt->calib_pool[j];
        fac = fmin(CAL_FMAX, fmax(CAL_FMIN, fac));
        for (int t = 0; t < r->h; t++) {
            double *lo = r->lower + (size_t)j * (size_t)r->h + t;
            double *up = r->upper + (size_t)j * (size_t)r->h + t;
            *lo = r->mean[t] - fac * (r->mean[t] - *lo);
            *up = r->mean[t] + fac * (*up - r->mean[t]);
        }
        char name[16];
        snprintf(name, sizeof name, "calib%d", (int)(r->levels[j] + 0.5) % 100);
        ts_add_param(r, name, fac);
    }
    if (done) {
        /* nested: a wider level's bounds never inside a narrower one's */
        for (int j = 0; j < nl; j++)
            for (int i = 0; i < nl; i++)
                if (r->levels[i] > r->levels[j])
                    for (int t = 0; t < r->h; t++) {
                        double *loi = r->lower + (size_t)i * (size_t)r->h + t;
                        double *upi = r->upper + (size_t)i * (size_t)r->h + t;
                        *loi = fmin(*loi, r->lower[(size_t)j * (size_t)r->h + t]);
                        *upi = fmax(*upi, r->upper[(size_t)j * (size_t)r->h + t]);
                    }
    }
    free(ratio);
    return done;
}

/* The pooled factor of level p from N sorted ratios: the ratio of rank
 * ceil((N + 1) p), the split-conformal quantile that covers a new error
 * with probability >= p when the ratios are exchangeable (the largest when
 * the rank passes N).  With many ratios (M3) it is the p-quantile; with a
 * few dozen (eight short siblings) the type-7 quantile covered too little. */
static double pool_quantile(const double *sorted, int N, double p)
{
    int k = (int)ceil((N + 1) * p - 1e-9);
    return sorted[(k < 1 ? 1 : k > N ? N : k) - 1];
}

void ts_calib_cache_free(ts_calib_cache *cache)
{
    if (!cache)
        return;
    free(cache->len);
    free(cache->hash);
    free(cache->nratios);
    free(cache->ratio);
    memset(cache, 0, sizeof *cache);
}

static int cache_init(ts_calib_cache *c, int count, const ts_options *opt, prm_error *err)
{
    ts_calib_cache_free(c);
    int nl = opt->nlevels, cap = opt->calib_origins * opt->h;
    c->len = calloc((size_t)count, sizeof *c->len);
    c->hash = calloc((size_t)count, sizeof *c->hash);
    c->nratios = malloc((size_t)count * sizeof *c->nratios);
    c->ratio = malloc((size_t)count * (size_t)nl * (size_t)cap * sizeof *c->ratio);
    if (!c->len || !c->hash || !c->nratios || !c->ratio) {
        ts_calib_cache_free(c);
        return prm_error_set(err, "ts: out of memory");
    }
    for (int i = 0; i < count; i++)
        c->nratios[i] = -1;
    c->count = count;
    c->cap = cap;
    c->nlevels = nl;
    c->h = opt->h;
    c->origins = opt->calib_origins;
    memcpy(c->levels, opt->levels, sizeof c->levels);
    return 0;
}

int ts_calib_pool(const double *const *y, const int *n, int count, ts_options *opt,
                  prm_error *err)
{
    return ts_calib_pool_keep(y, n, count, opt, NULL, err);
}

int ts_calib_pool_keep(const double *const *y, const int *n, int count, ts_options *opt,
                       ts_calib_cache *cache, prm_error *err)
{
    int nl = opt->nlevels, cap = opt->calib_origins * opt->h;
    memset(opt->calib_pool, 0, sizeof opt->calib_pool);
    ts_calib_cache_free(cache);
    if (check_options(opt, err) != 0)
        return -1;
    if (count < 1 || cap < 1 || nl < 1)
        return 0;
    if (cache && cache_init(cache, count, opt, err) != 0)
        return -1;
    size_t room = (size_t)count * (size_t)cap;
    double *all = malloc((size_t)nl * room * sizeof(double));
    double *ratio = malloc((size_t)nl * (size_t)cap * sizeof(double));
    if (!all || !ratio) {
        free(all);
        free(ratio);
        ts_calib_cache_free(cache);
        return prm_error_set(err, "ts: out of memory");
    }
    ts_options o = *opt;
    memset(o.calib_pool, 0, sizeof o.calib_pool);
    o.calib_cache = NULL;
    size_t N = 0;
    for (int i = 0; i < count; i++) {
        int len, filled;
        prm_error e;
        double *c = clean(y[i], n[i], &len, &filled, &e);
        if (!c)
            continue; /* a series the forecast itself would refuse */
        /* a short sibling with pooled seasonal indexes is calibrated as
         * it will be forecast: adjusted, without a season */
        ts_options oi = o;
        if (uses_season(opt, len)) {
            double *a = deseason(c, len, opt, &e);
            free(c);
            if (!(c = a))
                continue;
            oi.period = 1;
            oi.season = NULL;
        }
        int kept = len >= MIN_N_MODEL && !share_zero_at_least(c, len, 0.3);
        int Ni = kept ? ts_calib_ratios(c, len, &oi, ratio, cap, NULL) : 0;
        if (cache && kept) {
            /* a skipped series (not calibrated by the forecast's default
             * route) keeps nratios -1: refitted if ever calibrated */
            cache->len[i] = len;
            cache->hash[i] = data_hash(c, len);
            cache->nratios[i] = Ni;
            for (int j = 0; j < nl; j++)
                memcpy(cache->ratio + ((size_t)i * (size_t)nl + (size_t)j) * (size_t)cap,
                       ratio + (size_t)j * (size_t)cap, (size_t)Ni * sizeof(double));
        }
        for (int j = 0; j < nl; j++)
            memcpy(all + (size_t)j * room + N, ratio + (size_t)j * (size_t)cap,
                   (size_t)Ni * sizeof(double));
        N += (size_t)Ni;
        free(c);
    }
    /* the level's conformal quantile of all the ratios: the factor that
     * would have covered a share p of the pooled rolling-origin errors, and
     * of one more exchangeable error */
    if (N >= CAL_MIN_ERRORS)
        for (int j = 0; j < nl; j++) {
            double *aj = all + (size_t)j * room;
            ts_sort(aj, (int)N);
            double q = pool_quantile(aj, (int)N, opt->levels[j] / 100.0);
            opt->calib_pool[j] = fmin(CAL_FMAX, fmax(CAL_FMIN, q));
        }
    free(all);
    free(ratio);
    return N >= CAL_MIN_ERRORS ? 1 : 0;
}

static int all_finite(const ts_result *r)
{
    for (int k = 0; k < r->h * (1 + 2 * r->nlevels); k++)
        if (!isfinite(r->mean[k]))
            return 0;
    return 1;
}


/* A short series with its siblings' pooled seasonal indexes (ts_season_pool):
 * divided by them, forecast without a season, the forecasts and bounds
 * multiplied back (indexes are positive, so the bounds stay ordered). */
static int pooled_season_forecast(const double *c, int len, const ts_options *opt,
                                  ts_result *out, prm_error *err)
{
    int m = opt->period;
    double *a = deseason(c, len, opt, err);
    if (!a)
        return -1;
    ts_options o = *opt;
    o.season = NULL;
    o.period = 1;
    int rc = ts_forecast(a, len, &o, out, err);
    free(a);
    if (rc != 0)
        return rc;
    for (int k = 0; k < out->h; k++) {
        double f = opt->season[k % m];
        out->mean[k] *= f;
        for (int j = 0; j < out->nlevels; j++) {
            out->lower[(size_t)j * (size_t)out->h + k] *= f;
            out->upper[(size_t)j * (size_t)out->h + k] *= f;
        }
    }
    size_t used = strlen(out->method);
    snprintf(out->method + used, sizeof out->method - used, " x pooled season");
    return 0;
}

int ts_forecast(const double *y, int n, const ts_options *opt, ts_result *out, prm_error *err)
{
    prm_error local;
    char why[96];
    if (!err)
        err = &local; /* the fallback note quotes the message */
    memset(out, 0, sizeof *out);
    if (check_options(opt, err) != 0)
        return -1;
    int len, filled;
    double *c = clean(y, n, &len, &filled, err);
    if (!c)
        return -1;
    int rc = -1;
    ts_method m = opt->method;
    const char *note = NULL;
    if (len < 2) {
        prm_error_set(err, "ts: need at least 2 observations, got %d", len);
        goto done;
    }
    if (uses_season(opt, len)) {
        rc = pooled_season_forecast(c, len, opt, out, err);
        goto done;
    }
    double lo = c[0], hi = c[0];
    for (int i = 1; i < len; i++) {
        lo = fmin(lo, c[i]);
        hi = fmax(hi, c[i]);
    }
    if (hi - lo <= 1e-12 * fmax(1.0, fabs(hi))) {
        rc = constant_forecast(c, len, opt, out, err);
        note = "constant series: zero-width intervals";
        goto done;
    }
    if (m == TS_AUTO)
        m = share_zero_at_least(c, len, 0.3) ? TS_CROSTON : TS_COMBO;
    if (len < MIN_N_MODEL && (m == TS_ETS || m == TS_THETA || m == TS_DAMPED || m == TS_COMBO ||
                             m == TS_ARIMA)) {
        note = "series too short for a model: naive forecast";
        m = TS_NAIVE;
    }
    switch (m) {
    case TS_ETS:
    case TS_DAMPED:
        rc = ets_or_damped(c, len, opt, m == TS_DAMPED, out, err);
        break;
    case TS_THETA:
        rc = ts_theta(c, len, opt->period, opt, out, err);
        break;
    case TS_COMBO:
        rc = combo(c, len, opt, out, err);
        break;
    case TS_ARIMA:
        rc = arima_auto(c, len, opt, out, err);
        break;
    case TS_CROSTON:
    case TS_CROSTON_CLASSIC:
    case TS_SBA:
    case TS_TSB:
        rc = ts_intermittent(c, len, m, opt, out, err);
        break;
    default:
        rc = ts_baseline(c, len, opt->period, m, opt, out, err);
        break;
    }
    if (rc == 0 && !all_finite(out)) {
        ts_result_free(out);
        rc = prm_error_set(err, "ts: %s produced a non-finite forecast", ts_method_name(m));
    }
    /* A model that cannot be fitted to this series (rather than a model the
     * caller named wrongly) leaves the naive forecast, with the reason. */
    if (rc != 0 && !opt->ets_model &&
        (m == TS_ETS || m == TS_THETA || m == TS_DAMPED || m == TS_COMBO || m == TS_ARIMA)) {
        snprintf(why, sizeof why, "%s failed, naive forecast: %.60s", ts_method_name(m),
                 err->msg);
        note = why;
        rc = ts_baseline(c, len, opt->period, TS_NAIVE, opt, out, err);
        if (rc == 0 && !all_finite(out)) {
            ts_result_free(out);
            rc = prm_error_set(err, "ts: no finite forecast for this series");
        }
    }
done:
    free(c);
    if (rc == 0) {
        out->n_used = len;
        out->n_filled = filled;
        if (note)
            snprintf(out->note, sizeof out->note, "%s", note);
    } else {
        memset(out, 0, sizeof *out);
    }
    return rc;
}
