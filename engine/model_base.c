/* model_base.c - the cold-start model: grouped base rates with beta-binomial
 * shrinkage over one or two categorical keys (e.g. tier, then stage).
 *
 *   global      p0  = wins / rows
 *   outer key   r_a  = (wins_a  + m1 * p0 ) / (rows_a  + m1)
 *   inner key   r_ab = (wins_ab + m2 * r_a) / (rows_ab + m2)
 *
 * Each level's pseudo-count m is prior_strength when given, otherwise the
 * method-of-moments estimate for a beta-binomial: with group rates r_g around
 * their parent's mu_g, z_g = (r_g - mu_g)^2 / (mu_g (1 - mu_g)) has
 * E[z_g] = rho + (1 - rho) / n_g where rho = 1 / (m + 1), so
 * rho = (sum n_g z_g - G) / (sum n_g - G) over the G groups, clamped to
 * [1e-6, 1). A missing or unseen key falls back to the parent's rate.
 */
#include "model_int.h"

#include <stdlib.h>
#include <string.h>

/* When there are too few groups to estimate it, the prior is worth this many
 * rows: enough to tame a group of 3 deals, small beside a group of 100. */
#define DEFAULT_STRENGTH 10.0

static double estimate_strength(const double *cnt, const double *win, const double *mu, size_t G)
{
    double snz = 0, sn = 0, g = 0;
    for (size_t k = 0; k < G; k++) {
        if (cnt[k] <= 0 || !(mu[k] > 0 && mu[k] < 1)) continue;
        double r = win[k] / cnt[k];
        snz += cnt[k] * (r - mu[k]) * (r - mu[k]) / (mu[k] * (1 - mu[k]));
        sn += cnt[k];
        g += 1;
    }
    if (g < 2 || sn <= g) return DEFAULT_STRENGTH;
    double rho = (snz - g) / (sn - g);
    if (rho < 1e-6) rho = 1e-6;
    if (rho > 1 - 1e-9) return 0;
    return 1 / rho - 1;
}

int base_fit(model *m, const mview *v, size_t n, const double *y, prm_error *err)
{
    size_t n1 = m->f[0].n_levels, n2 = m->nf > 1 ? m->f[1].n_levels : 0;
    double *c1 = model_xcalloc(n1, sizeof *c1), *w1 = model_xcalloc(n1, sizeof *w1),
           *mu1 = model_xcalloc(n1, sizeof *mu1), *c2 = model_xcalloc(n1 * n2, sizeof *c2),
           *w2 = model_xcalloc(n1 * n2, sizeof *w2), *mu2 = model_xcalloc(n1 * n2, sizeof *mu2);
    m->rate1 = model_xcalloc(n1, sizeof *m->rate1);
    m->rate2 = model_xcalloc(n1 * n2, sizeof *m->rate2);
    int rc = 0;
    if (!c1 || !w1 || !mu1 || !c2 || !w2 || !mu2 || !m->rate1 || !m->rate2) {
        rc = prm_error_set(err, "out of memory");
        goto done;
    }
    double wins = 0;
    for (size_t i = 0; i < n; i++) {
        wins += y[i];
        int a = mview_level(&v[0], i);
        if (a < 0) continue;
        c1[a] += 1;
        w1[a] += y[i];
        int b = n2 ? mview_level(&v[1], i) : -1;
        if (b < 0) continue;
        c2[(size_t)a * n2 + (size_t)b] += 1;
        w2[(size_t)a * n2 + (size_t)b] += y[i];
    }
    m->p0 = wins / (double)n;
    for (size_t a = 0; a < n1; a++) mu1[a] = m->p0;
    double ps = m->params.prior_strength;
    m->m1 = ps > 0 ? ps : estimate_strength(c1, w1, mu1, n1);
    for (size_t a = 0; a < n1; a++) m->rate1[a] = (w1[a] + m->m1 * m->p0) / (c1[a] + m->m1);
    if (n2) {
        for (size_t k = 0; k < n1 * n2; k++) mu2[k] = m->rate1[k / n2];
        m->m2 = ps > 0 ? ps : estimate_strength(c2, w2, mu2, n1 * n2);
        for (size_t k = 0; k < n1 * n2; k++)
            m->rate2[k] = c2[k] > 0 ? (w2[k] + m->m2 * mu2[k]) / (c2[k] + m->m2) : NAN;
    }
done:
    free(c1); free(w1); free(mu1); free(c2); free(w2); free(mu2);
    return rc;
}

/* The rates along row i's path: r[0] global, r[1] outer, r[2] inner. */
static void path(const model *m, const mview *v, size_t i, double r[3])
{
    r[0] = r[1] = r[2] = m->p0;
    int a = mview_level(&v[0], i);
    if (a < 0) return;
    r[1] = r[2] = m->rate1[a];
    if (m->nf < 2) return;
    size_t n2 = m->f[1].n_levels;
    int b = mview_level(&v[1], i);
    if (b >= 0 && !isnan(m->rate2[(size_t)a * n2 + (size_t)b])) r[2] = m->rate2[(size_t)a * n2 + (size_t)b];
}

void base_predict(const model *m, const mview *v, size_t n, double *z)
{
    for (size_t i = 0; i < n; i++) {
        double r[3];
        path(m, v, i, r);
        z[i] = model_logit(r[2]);
    }
}

void base_explain(const model *m, const mview *v, size_t row, double *contrib, double *base)
{
    double r[3];
    path(m, v, row, r);
    *base = model_logit(r[0]);
    contrib[0] = model_logit(r[1]) - model_logit(r[0]);
    if (m->nf > 1) contrib[1] = model_logit(r[2]) - model_logit(r[1]);
}

void base_free(model *m)
{
    free(m->rate1);
    free(m->rate2);
    m->rate1 = m->rate2 = NULL;
}
