/* clsmetrics.c - see clsmetrics.h. */
#include "clsmetrics.h"

#include <math.h>
#include <stdlib.h>

typedef struct py { double p, y; } py;

static int cmp_p(const void *a, const void *b)
{
    double x = ((const py *)a)->p, y = ((const py *)b)->p;
    return (x > y) - (x < y);
}

static int valid_y(const double *y, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!(y[i] >= 0 && y[i] <= 1)) return 0;
    return 1;
}

/* Mann-Whitney: P(a positive ranks above a negative), ties one half; a
 * row with y in between counts y as a positive and 1 - y as a negative
 * (the expected AUC of a censored row's outcome). */
double cls_auc(const double *p, const double *y, size_t n)
{
    if (n == 0 || !valid_y(y, n)) return NAN;
    py *s = malloc(n * sizeof *s);
    if (!s) return NAN;
    for (size_t i = 0; i < n; i++) { s[i].p = p[i]; s[i].y = y[i]; }
    qsort(s, n, sizeof *s, cmp_p);
    double n1 = 0, n0 = 0, above = 0, self = 0;   /* self: a fractional row's pair with itself */
    for (size_t i = 0; i < n;) {
        size_t k = i;
        double pos = 0, neg = 0;
        for (; k < n && s[k].p == s[i].p; k++) {
            pos += s[k].y;
            neg += 1 - s[k].y;
            self += s[k].y * (1 - s[k].y);
        }
        above += pos * (n0 + neg / 2);      /* negatives below, ties half */
        n1 += pos;
        n0 += neg;
        i = k;
    }
    free(s);
    if (n1 * n0 - self <= 0) return NAN;
    return (above - self / 2) / (n1 * n0 - self);
}

double cls_logloss(const double *p, const double *y, size_t n)
{
    if (n == 0 || !valid_y(y, n)) return NAN;
    double s = 0;
    for (size_t i = 0; i < n; i++) {
        double q = fmin(fmax(p[i], 1e-15), 1 - 1e-15);
        s -= y[i] * log(q) + (1 - y[i]) * log(1 - q);
    }
    return s / (double)n;
}

double cls_brier(const double *p, const double *y, size_t n)
{
    if (n == 0 || !valid_y(y, n)) return NAN;
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (p[i] - y[i]) * (p[i] - y[i]);
    return s / (double)n;
}

int cls_reliability(const double *p, const double *y, size_t n, size_t nbins, cls_bin *bins)
{
    if (nbins == 0) return -1;
    for (size_t i = 0; i < n; i++)
        if (!(p[i] >= 0 && p[i] <= 1)) return -1;
    double *sp = calloc(nbins, sizeof *sp), *sy = calloc(nbins, sizeof *sy);
    if (!sp || !sy) { free(sp); free(sy); return -1; }
    for (size_t b = 0; b < nbins; b++) {
        bins[b].lo = (double)b / (double)nbins;
        bins[b].hi = (double)(b + 1) / (double)nbins;
        bins[b].count = 0;
    }
    for (size_t i = 0; i < n; i++) {
        size_t b = (size_t)(p[i] * (double)nbins);
        if (b >= nbins) b = nbins - 1;
        bins[b].count++;
        sp[b] += p[i];
        sy[b] += y[i];
    }
    for (size_t b = 0; b < nbins; b++) {
        bins[b].mean_p = bins[b].count ? sp[b] / (double)bins[b].count : NAN;
        bins[b].mean_y = bins[b].count ? sy[b] / (double)bins[b].count : NAN;
    }
    free(sp);
    free(sy);
    return 0;
}

double cls_ece(const double *p, const double *y, size_t n, size_t nbins)
{
    if (n == 0 || nbins == 0) return NAN;
    cls_bin *b = calloc(nbins, sizeof *b);
    if (!b || cls_reliability(p, y, n, nbins, b) < 0) { free(b); return NAN; }
    double e = 0;
    for (size_t k = 0; k < nbins; k++)
        if (b[k].count) e += (double)b[k].count / (double)n * fabs(b[k].mean_p - b[k].mean_y);
    free(b);
    return e;
}
