/* clsmetrics.h - metrics of binary classifiers: ROC AUC, log loss, Brier
 * score and a reliability (calibration) table.
 *
 * Numeric core: p holds predicted probabilities, y the outcomes (0 or 1, or
 * an expected outcome in between: a censored deal's P(win), counted as y
 * won and 1 - y lost), n rows. Each metric returns NaN when it is undefined
 * (no rows; AUC with a single class; y outside [0, 1]; allocation failure
 * for AUC), so a caller can
 * print it without a second status channel.
 *
 *   double auc = cls_auc(p, y, n);          // ties count one half
 *   double ll  = cls_logloss(p, y, n);      // p clipped to [1e-15, 1-1e-15]
 */
#ifndef PRM_CLSMETRICS_H
#define PRM_CLSMETRICS_H

#include <stddef.h>

double cls_auc(const double *p, const double *y, size_t n);
double cls_logloss(const double *p, const double *y, size_t n);
double cls_brier(const double *p, const double *y, size_t n);

/* Equal-width bins over [0, 1]: bin b holds b/nbins <= p < (b+1)/nbins (p = 1
 * in the last). Empty bins have count 0 and NaN means. */
typedef struct cls_bin {
    double lo, hi;
    size_t count;
    double mean_p, mean_y;
} cls_bin;

/* Fills bins[0..nbins); returns 0, or -1 if nbins is 0 or a p is outside [0,1]. */
int cls_reliability(const double *p, const double *y, size_t n, size_t nbins, cls_bin *bins);

/* Expected calibration error: sum over bins of count/n * |mean_p - mean_y|. */
double cls_ece(const double *p, const double *y, size_t n, size_t nbins);

#endif
