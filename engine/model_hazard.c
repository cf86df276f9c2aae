/* model_hazard.c - the competing-risks win hazard (model.h, "Win hazard"). */
#include "model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct model_hazard {
    int n_strata, n_parents, nb;   /* nb = n_bins + 1 (the tail) */
    double *lw, *ll;               /* (1 + n_parents + n_strata) x nb rates per bin */
};

void model_hazard_params_init(model_hazard_params *p)
{
    p->n_bins = 12;
    p->bin_days = 30;
    p->prior = 20;
}

/* Rates of one level from its counts, shrunk toward `par` (NULL: none);
 * a bin with less than one bin of exposure over all rows takes the
 * previous bin's. */
static void level_rates(const double *ev_w, const double *ev_l, const double *ex, int nb, double prior,
                        const double *par_w, const double *par_l, double *lw, double *ll)
{
    for (int k = 0; k < nb; k++) {
        if (par_w) {
            lw[k] = (ev_w[k] + prior * par_w[k]) / (ex[k] + prior);
            ll[k] = (ev_l[k] + prior * par_l[k]) / (ex[k] + prior);
        } else if (ex[k] >= 1) {
            lw[k] = ev_w[k] / ex[k];
            ll[k] = ev_l[k] / ex[k];
        } else {
            lw[k] = k ? lw[k - 1] : 0;
            ll[k] = k ? ll[k - 1] : 0;
        }
    }
}

int model_hazard_fit(const model_hazard_row *rows, size_t n, int n_strata, const int32_t *parent,
                     int n_parents, const model_hazard_params *p, model_hazard **out, prm_error *err)
{
    *out = NULL;
    if (n_strata < 1 || n_parents < 1 || p->n_bins < 1 || !(p->bin_days > 0) || !(p->prior >= 0))
        return prm_error_set(err, "win hazard: bad parameters");
    for (int s = 0; s < n_strata; s++)
        if (parent[s] < 0 || parent[s] >= n_parents)
            return prm_error_set(err, "win hazard: stratum %d has parent %d, not in 0..%d", s, parent[s],
                                 n_parents - 1);
    int nb = p->n_bins + 1;
    size_t nl = (size_t)(1 + n_parents + n_strata), cells = nl * (size_t)nb;
    double *c = calloc(cells * 4, sizeof *c);  /* exposure, wins, losses, rows ending per (level, bin) */
    model_hazard *h = calloc(1, sizeof *h);
    if (h) {
        h->lw = malloc(sizeof(double) * cells);
        h->ll = malloc(sizeof(double) * cells);
    }
    if (!c || !h || !h->lw || !h->ll) {
        free(c);
        model_hazard_free(h);
        return prm_error_set(err, "out of memory");
    }
    double *ex = c, *ew = c + cells, *el = c + 2 * cells, *ends = c + 3 * cells;
    size_t events = 0;
    for (size_t i = 0; i < n; i++) {
        const model_hazard_row *r = &rows[i];
        if (r->stratum < 0 || r->stratum >= n_strata || !(r->days >= 0)) {
            free(c);
            model_hazard_free(h);
            return prm_error_set(err, "win hazard: row %zu has stratum %d, %g days", i + 1, r->stratum, r->days);
        }
        size_t lv[3] = { 0, 1 + (size_t)parent[r->stratum], 1 + (size_t)n_parents + (size_t)r->stratum };
        double t = r->days / p->bin_days;
        int kb = t >= p->n_bins ? p->n_bins : (int)t;
        for (int l = 0; l < 3; l++) {
            /* a full bin of exposure in each bin before kb: counted as a
             * row ending at kb, summed into the bins below once */
            ends[lv[l] * (size_t)nb + (size_t)kb] += 1;
            ex[lv[l] * (size_t)nb + (size_t)kb] += t - kb;
            if (r->event == 1) ew[lv[l] * (size_t)nb + (size_t)kb] += 1;
            if (r->event == 2) el[lv[l] * (size_t)nb + (size_t)kb] += 1;
        }
        events += r->event == 1 || r->event == 2;
    }
    for (size_t l = 0; l < nl; l++) {
        double later = 0;   /* rows ending in a later bin */
        for (int k = nb - 1; k >= 0; k--) {
            ex[l * (size_t)nb + (size_t)k] += later;
            later += ends[l * (size_t)nb + (size_t)k];
        }
    }
    if (!events) {
        free(c);
        model_hazard_free(h);
        return prm_error_set(err, "win hazard: no outcome among %zu rows", n);
    }
    level_rates(ew, el, ex, nb, p->prior, NULL, NULL, h->lw, h->ll);
    for (size_t l = 1; l < nl; l++) {
        size_t par = l <= (size_t)n_parents ? 0 : 1 + (size_t)parent[l - 1 - (size_t)n_parents];
        size_t o = l * (size_t)nb, po = par * (size_t)nb;
        level_rates(ew + o, el + o, ex + o, nb, p->prior, h->lw + po, h->ll + po, h->lw + o, h->ll + o);
    }
    free(c);
    h->n_strata = n_strata;
    h->n_parents = n_parents;
    h->nb = nb;
    *out = h;
    return 0;
}

double model_hazard_p_win(const model_hazard *h, int32_t stratum)
{
    size_t l = stratum < 0 || stratum >= h->n_strata ? 0 : 1 + (size_t)h->n_parents + (size_t)stratum;
    const double *lw = h->lw + l * (size_t)h->nb, *ll = h->ll + l * (size_t)h->nb;
    double S = 1, pw = 0;
    for (int k = 0; k < h->nb; k++) {
        double a = lw[k] + ll[k];
        if (!(a > 0)) continue;
        double share = lw[k] / a;
        if (k == h->nb - 1) return pw + S * share;     /* the open-ended tail */
        double q = 1 - exp(-a);
        pw += S * share * q;
        S *= 1 - q;
    }
    /* no event rate in the tail: what the bins gave, the rest as the pooled ratio */
    double a = h->lw[h->nb - 1] + h->ll[h->nb - 1];
    return pw + (a > 0 ? S * h->lw[h->nb - 1] / a : 0);
}

void model_hazard_free(model_hazard *h)
{
    if (!h) return;
    free(h->lw);
    free(h->ll);
    free(h);
}
