/* mc_timing.c - the close-timing model of mc.h: when deals really close
 * relative to the date stated at a snapshot (issue 9; docs/FORECAST.md).
 *
 * A discrete-time survival model of the slip (actual - stated close day),
 * fitted as hazards per bin: h_b = events in b / at risk in b. Censored rows
 * (still open at the cut-off) count as at risk in the bins they survived
 * entirely, each row with its weight (a still-open deal's chance to win);
 * delayed entry (a snapshot taken after its stated date, so slip >= entry)
 * starts a row's risk at entry's bin. Counts are kept per
 * cell of four levels, and the shrinkage is done at query time down the
 * hierarchy the query names (its tier and partner), so a partner that
 * changed tier is shrunk toward the tier it has now.
 */
#include "mc.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { L_ALL = 0, L_CONTEXT = 1, L_TIER = 2, L_PARTNER = 3, N_LEVELS = 4 };

typedef struct cell {
    uint64_t key;
    size_t at;        /* offset of this cell's 2 * n_bins counts in counts[] */
} cell;

struct mc_timing {
    mc_timing_params p;
    int n_bins;
    cell *tab;        /* open addressing, cap a power of two; key 0 = empty */
    size_t cap, n_cells;
    double *counts;   /* per cell: events[n_bins], then at risk[n_bins] */
    size_t n_counts;
};

void mc_timing_params_init(mc_timing_params *p)
{
    p->slip_min = -28;
    p->slip_max = 364;
    p->bin_days = 7;
    p->prior = 20;
}

/* Key: level (2 bits) + 1 so that 0 is never a key, stage, age, slips
 * (8 bits each), and the tier or partner id (32 bits). */
static uint64_t cell_key(int level, const mc_timing_row *r)
{
    uint64_t k = (uint64_t)(level + 1) << 56;
    if (level >= L_CONTEXT)
        k |= (uint64_t)(uint32_t)r->stage << 48 | (uint64_t)(uint32_t)r->age_bucket << 40 |
             (uint64_t)(uint32_t)r->n_slips << 32;
    if (level == L_TIER) k |= (uint32_t)r->tier;
    if (level == L_PARTNER) k |= (uint32_t)r->partner;
    return k;
}

static size_t hash_slot(uint64_t k, size_t cap)
{
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    return (size_t)k & (cap - 1);
}

static const cell *find(const mc_timing *t, uint64_t k)
{
    for (size_t i = hash_slot(k, t->cap);; i = (i + 1) & (t->cap - 1)) {
        if (t->tab[i].key == k) return &t->tab[i];
        if (t->tab[i].key == 0) return NULL;
    }
}

static int grow(mc_timing *t)
{
    size_t cap = t->cap ? t->cap * 2 : 1024;
    cell *tab = calloc(cap, sizeof *tab);
    if (!tab) return -1;
    for (size_t i = 0; i < t->cap; i++)
        if (t->tab[i].key) {
            size_t j = hash_slot(t->tab[i].key, cap);
            while (tab[j].key) j = (j + 1) & (cap - 1);
            tab[j] = t->tab[i];
        }
    free(t->tab);
    t->tab = tab;
    t->cap = cap;
    return 0;
}

/* The counts of cell k, created (zeroed) when new; NULL when out of memory. */
static double *get(mc_timing *t, uint64_t k)
{
    if (2 * (t->n_cells + 1) > t->cap && grow(t) < 0) return NULL;
    size_t i = hash_slot(k, t->cap);
    while (t->tab[i].key && t->tab[i].key != k) i = (i + 1) & (t->cap - 1);
    if (!t->tab[i].key) {
        size_t need = (t->n_cells + 1) * 2 * (size_t)t->n_bins;
        if (need > t->n_counts) {
            size_t nc = t->n_counts ? t->n_counts * 2 : 64 * 2 * (size_t)t->n_bins;
            while (nc < need) nc *= 2;
            double *c = realloc(t->counts, nc * sizeof *c);
            if (!c) return NULL;
            t->counts = c;
            t->n_counts = nc;
        }
        t->tab[i].key = k;
        t->tab[i].at = t->n_cells * 2 * (size_t)t->n_bins;
        memset(t->counts + t->tab[i].at, 0, 2 * (size_t)t->n_bins * sizeof *t->counts);
        t->n_cells++;
    }
    return t->counts + t->tab[i].at;
}

static int bin_of(const mc_timing *t, int64_t d)
{
    if (d < t->p.slip_min) return 0;
    int64_t b = (d - t->p.slip_min) / t->p.bin_days;
    return b >= t->n_bins - 1 ? t->n_bins - 1 : (int)b;
}

void mc_timing_free(mc_timing *t)
{
    if (!t) return;
    free(t->tab);
    free(t->counts);
    free(t);
}

int mc_timing_n_bins(const mc_timing *t) { return t->n_bins; }

int mc_timing_fit(const mc_timing_row *rows, size_t n, const mc_timing_params *p,
                  mc_timing **out, prm_error *err)
{
    *out = NULL;
    mc_timing_params def;
    if (!p) {
        mc_timing_params_init(&def);
        p = &def;
    }
    if (p->bin_days < 1 || p->slip_max <= p->slip_min || !(p->prior >= 0))
        return prm_error_set(err, "mc_timing_fit: bins of %d days over [%d, %d), prior %g "
                             "(want bin_days >= 1, slip_max > slip_min, prior >= 0)",
                             p->bin_days, p->slip_min, p->slip_max, p->prior);
    int64_t span = (int64_t)p->slip_max - p->slip_min;
    int64_t nb = (span + p->bin_days - 1) / p->bin_days + 1;
    if (nb > 100000) return prm_error_set(err, "mc_timing_fit: %lld bins (at most 100000)", (long long)nb);
    if (n == 0) return prm_error_set(err, "mc_timing_fit: no rows");
    mc_timing *t = calloc(1, sizeof *t);
    if (!t) return prm_error_set(err, "mc_timing_fit: out of memory");
    t->p = *p;
    t->n_bins = (int)nb;
    const int B = t->n_bins;
    for (size_t i = 0; i < n; i++) {
        const mc_timing_row *r = &rows[i];
        if (r->stage < 0 || r->stage > 255 || r->age_bucket < 0 || r->age_bucket > 255 ||
            r->n_slips < 0 || r->n_slips > 255 || r->tier < -1 || r->partner < -1) {
            mc_timing_free(t);
            return prm_error_set(err, "mc_timing_fit: row %zu: stage %d, age bucket %d, slips %d "
                                 "(want 0..255), tier %d, partner %d (want >= -1)", i, r->stage,
                                 r->age_bucket, r->n_slips, r->tier, r->partner);
        }
        if (!(r->weight >= 0) || r->weight > 1e9) {
            mc_timing_free(t);
            return prm_error_set(err, "mc_timing_fit: row %zu: weight %g (want 0..1e9; 0 counts as 1)", i,
                                 r->weight);
        }
        double wt = r->weight > 0 ? r->weight : 1;
        int be = r->entry == INT32_MIN ? 0 : bin_of(t, r->entry), bl;
        int event;
        double part = 0;   /* exposure in the bin a censored row was last seen in */
        if (r->censored) {
            /* slip > slip: the bins ending at or before slip + 1 were survived,
             * and the bin holding slip + 1 partly: it counts as at risk for
             * the share of its days survived (constant hazard inside a bin). */
            int64_t d = (int64_t)r->slip + 1;
            bl = bin_of(t, d) - 1;
            if (bl + 1 < B - 1 && d > p->slip_min) {
                int64_t s0 = (int64_t)p->slip_min + (int64_t)(bl + 1) * p->bin_days;
                part = (double)(d - s0) / p->bin_days;
            }
            event = 0;
        } else {
            bl = bin_of(t, r->slip);
            event = 1;
        }
        if (be > bl) {
            if (!event && be > bl + 1) continue;   /* censored before its entry */
            if (event) be = bl;        /* closed before the stated entry: trust the close */
        }
        for (int level = 0; level < N_LEVELS; level++) {
            if (level == L_TIER && r->tier < 0) continue;
            if (level == L_PARTNER && r->partner < 0) continue;
            double *c = get(t, cell_key(level, r));
            if (!c) {
                mc_timing_free(t);
                return prm_error_set(err, "mc_timing_fit: out of memory");
            }
            /* at risk in be..bl: kept as a difference array until the end */
            if (be <= bl) {
                c[B + be] += wt;
                if (bl + 1 < B) c[B + bl + 1] -= wt;
            }
            if (part > 0) {            /* at risk `part` in bin bl + 1 only */
                c[B + bl + 1] += wt * part;
                if (bl + 2 < B) c[B + bl + 2] -= wt * part;
            }
            if (event) c[bl] += wt;
        }
    }
    for (size_t i = 0; i < t->cap; i++)
        if (t->tab[i].key) {
            double *risk = t->counts + t->tab[i].at + B;
            for (int b = 1; b < B; b++) risk[b] += risk[b - 1];
        }
    *out = t;
    return 0;
}

/* Hazards from the deepest level with data, shrunk level by level. */
static int hazards(const mc_timing *t, const mc_timing_row *q, double *h, int *level)
{
    const int B = t->n_bins;
    const cell *c[N_LEVELS];
    int deepest = -1;
    for (int l = 0; l < N_LEVELS; l++) {
        c[l] = NULL;
        if (l == L_TIER && q->tier < 0) continue;
        if (l == L_PARTNER && q->partner < 0) continue;
        c[l] = find(t, cell_key(l, q));
        if (c[l]) deepest = l;
    }
    if (!c[0]) return -1;
    double m = t->p.prior;
    for (int b = 0; b < B; b++) {
        const double *c0 = t->counts + c[0]->at;
        double hb = c0[B + b] > 0 ? c0[b] / c0[B + b] : 0;
        for (int l = 1; l <= deepest; l++) {
            if (!c[l]) continue;
            const double *cl = t->counts + c[l]->at;
            double nr = cl[B + b];
            if (nr + m > 0) hb = (cl[b] + m * hb) / (nr + m);
        }
        h[b] = b == B - 1 ? 1 : hb;
    }
    if (level) *level = deepest;
    return 0;
}

int mc_timing_pmf(const mc_timing *t, const mc_timing_row *q, double *pmf, int *level,
                  prm_error *err)
{
    if (hazards(t, q, pmf, level) < 0) return prm_error_set(err, "mc_timing_pmf: empty model");
    double surv = 1;
    for (int b = 0; b < t->n_bins; b++) {
        double hb = pmf[b];
        pmf[b] = surv * hb;
        surv *= 1 - hb;
    }
    return 0;
}

double mc_timing_p_window(const mc_timing *t, const mc_timing_row *q, int32_t lo, int32_t hi,
                          int32_t entry)
{
    const int B = t->n_bins;
    double *pmf = malloc((size_t)B * sizeof *pmf);
    if (!pmf || mc_timing_pmf(t, q, pmf, NULL, NULL) < 0) {
        free(pmf);
        return NAN;
    }
    int be = entry == INT32_MIN ? 0 : bin_of(t, entry);
    double den = 0, num = 0;
    for (int b = be; b < B; b++) {
        den += pmf[b];
        if (b == B - 1) {
            if (hi == INT32_MAX) num += pmf[b];
            continue;
        }
        /* the bin's days, from the entry day when the entry falls inside it */
        double s = (double)t->p.slip_min + (double)b * t->p.bin_days;
        double e = s + t->p.bin_days;
        if (b == be && entry != INT32_MIN && entry > s) s = entry;
        double a = lo > s ? lo : s, z = hi < e ? hi : e;
        if (z > a) num += pmf[b] * (z - a) / (e - s);
    }
    free(pmf);
    return den > 0 ? num / den : NAN;
}
