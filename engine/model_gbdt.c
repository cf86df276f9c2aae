/* model_gbdt.c - histogram-based gradient-boosted trees for binary log loss.
 *
 * The algorithm of LightGBM / scikit-learn's HistGradientBoostingClassifier:
 * - Binning: numeric columns into at most max_bins quantile bins of the
 *   training rows (one bin per distinct value when there are few); bin 255 is
 *   the missing bin. Categorical columns: one bin per training label (the 254
 *   most frequent when there are more than 255; the rest share bin 254), and
 *   missing or unseen labels go to bin 255.
 * - Trees grow leaf-wise (best gain first) up to max_leaf_nodes, with
 *   min_samples_leaf, max_depth and an l2 penalty on leaf values. Per node,
 *   per feature, a histogram of gradient / hessian sums; the larger child's
 *   histogram is the parent's minus the smaller child's. Features with few
 *   values are bundled: a bundle's joint histogram is built from the rows and
 *   then summed into its features' histograms, so the loop over rows does one
 *   add per bundle rather than one per feature. The children of the split
 *   that fills the tree get no histograms: they will not be split.
 * - Numeric splits are "bin <= t" with the missing bin sent to whichever side
 *   gains more (to the bigger child if the node had no missing values).
 *   Categorical splits sort the node's categories by g / (h + 10) and take the
 *   best prefix as the left set (Fisher's grouping, as both libraries do).
 * - Early stopping: the LAST validation_fraction of the rows (time-ordered
 *   data: the latest rows) is held out; boosting stops when its log loss has
 *   not improved by tol for n_iter_no_change trees, and the trees after the
 *   best iteration are dropped. With refit (the default) the model is then
 *   boosted again on all rows for that many trees, because on drifting
 *   deal data the latest rows are the most valuable to learn from (on the
 *   IBM benchmark, dropping them cost 0.02 AUC; see bench/RESULTS.md).
 * Everything is deterministic: no sampling, stable partitions, ties broken by
 * feature then bin order.
 */
#include "model_int.h"

#include <stdlib.h>
#include <string.h>

/* scikit-learn's MIN_CAT_SUPPORT, used as the smoothing of the sort key */
#define CAT_SMOOTH 10.0
#define MIN_HESS 1e-3

/* One histogram bin: gradient sum, hessian sum, row count, and padding to
 * 32 bytes, so that adding a row is a single 4-double vector add - one
 * store instead of three. The histogram loop is bound by those stores: with
 * the AVX2 clone below, tree training on the IBM benchmark took 0.46 s
 * instead of 0.73 s, with bit-identical sums. */
typedef struct hbin { double g, h, n, pad; } hbin;
typedef double v4d __attribute__((vector_size(32)));

/* x86-64 builds carry an AVX2 clone of the histogram loop, picked at load
 * time by the CPU (GNU ifunc); elsewhere the vector add is lowered to
 * whatever the target has. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && defined(__linux__)
#define HIST_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define HIST_CLONES
#endif

typedef struct split {
    double gain;
    int feature, is_cat, thr, missing_left;
    uint64_t bits[4];
    double gl, hl, nl;
} split;

typedef struct gbnode {          /* growth-time node info, parallel to the gnodes */
    size_t start, end;
    int depth;
    double g, h;
    hbin *hist;
    split best;
} gbnode;

/* A histogram group: one feature on its own, or a bundle of features with
 * few bins whose joint bin ("code") fits in a byte. A bundle gets one
 * histogram over its codes, which is then summed into its features' own
 * histograms: one vector add per row for the bundle instead of one per
 * feature. The histogram loop is bound by those adds (stores). */
#define GB_BUNDLE_MAX 8
#define GB_BUNDLE_VALUES 64             /* only features with at most this many values */
typedef struct hgroup {
    int n_feat;
    int feat[GB_BUNDLE_MAX];
    int n_codes;                          /* bundle: the product of (bins + 1) */
    uint8_t dec[GB_NBIN][GB_BUNDLE_MAX];  /* bundle: code -> each feature's bin */
} hgroup;

typedef struct grower {
    const model *m;
    size_t nf, n_tr;
    const uint8_t *B;            /* n x nf bins, row-major: histograms read rows */
    const uint8_t *Bc;           /* nf x stride bins, column-major: partitions read a column */
    size_t stride;
    const int *nb;               /* bins in use per feature, besides the missing bin */
    size_t ng;                   /* histogram groups */
    const hgroup *grp;
    const uint8_t *Bg;           /* n x gstride group codes, row-major */
    size_t gstride;              /* ng rounded up to 8: a row never straddles a cache line */
    hbin *joint;                 /* ng x GB_NBIN scratch for the bundles */
    size_t marg_cost;            /* bin adds to spread the bundles over their features */
    const double *gh;            /* row r's gradient at 2r, hessian at 2r + 1: one cache line */
    uint32_t *rows, *tmp;
    double *leaf_exp;            /* exp(-value) of each node of the last tree */
    gnode *nodes;
    gbnode *info;
    size_t n_nodes, cap;
    hbin **pool;                 /* free histograms */
    size_t n_pool;
} grower;

static inline int bit_get(const uint64_t *b, int k) { return (int)((b[k >> 6] >> (k & 63)) & 1); }
static inline void bit_set(uint64_t *b, int k) { b[k >> 6] |= (uint64_t)1 << (k & 63); }

static inline int goes_left(const gnode *q, int bin)
{
    if (q->is_cat) return bit_get(q->cat_left, bin);
    if (bin == GB_MISSING) return q->missing_left;
    return bin <= q->thr;
}

/* ---- binning ---- */

/* LSD radix sort of doubles (no NaNs) through their order-preserving bit
 * pattern: 8 passes of 8 bits. Binning sorts every numeric column once per
 * fit; in a profile of the IBM benchmark qsort took 13% of the whole run,
 * this takes 1%. */
static int sort_doubles(double *x, size_t n)
{
    uint64_t *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b);
    if (!a || !b) { free(a); free(b); return -1; }
    for (size_t i = 0; i < n; i++) {
        uint64_t u;
        double v = x[i] == 0 ? 0.0 : x[i];   /* -0 sorts with +0 */
        memcpy(&u, &v, sizeof u);
        a[i] = u >> 63 ? ~u : u | 0x8000000000000000ULL;
    }
    for (int shift = 0; shift < 64; shift += 8) {
        size_t cnt[257] = { 0 };
        for (size_t i = 0; i < n; i++) cnt[((a[i] >> shift) & 255) + 1]++;
        if (cnt[((a[0] >> shift) & 255) + 1] == n) continue;   /* one digit value */
        for (int k = 0; k < 256; k++) cnt[k + 1] += cnt[k];
        for (size_t i = 0; i < n; i++) b[cnt[(a[i] >> shift) & 255]++] = a[i];
        uint64_t *t = a;
        a = b;
        b = t;
    }
    for (size_t i = 0; i < n; i++) {
        uint64_t u = a[i] >> 63 ? a[i] & 0x7fffffffffffffffULL : ~a[i];
        memcpy(&x[i], &u, sizeof u);
    }
    free(a);
    free(b);
    return 0;
}

static int bin_numeric(mfeature *f, const double *x, size_t n, int max_bins)
{
    double *s = model_xcalloc(n, sizeof *s);
    if (!s) return -1;
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (!isnan(x[i])) s[k++] = x[i];
    if (k && sort_doubles(s, k) < 0) { free(s); return -1; }
    size_t nd = 0;   /* distinct values */
    for (size_t i = 0; i < k; i++) nd += i == 0 || s[i] != s[i - 1];
    f->edges = model_xcalloc((size_t)max_bins, sizeof *f->edges);
    if (!f->edges) { free(s); return -1; }
    f->n_edges = 0;
    if (nd <= (size_t)max_bins) {
        /* one bin per value: edges at the midpoints */
        double prev = 0;
        for (size_t i = 0; i < k; i++) {
            if (i > 0 && s[i] != prev) f->edges[f->n_edges++] = prev + (s[i] - prev) / 2;
            prev = s[i];
        }
    } else {
        for (int b = 1; b < max_bins; b++) {
            double pos = (double)b / max_bins * (double)(k - 1);
            size_t lo = (size_t)pos;
            double fr = pos - (double)lo;
            double q = lo + 1 < k ? s[lo] + fr * (s[lo + 1] - s[lo]) : s[lo];
            if (f->n_edges == 0 || q > f->edges[f->n_edges - 1]) f->edges[f->n_edges++] = q;
        }
    }
    free(s);
    return 0;
}

static inline uint8_t num_bin(const mfeature *f, double x)
{
    if (isnan(x)) return GB_MISSING;
    size_t lo = 0, hi = f->n_edges;   /* first edge >= x */
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (f->edges[mid] < x) lo = mid + 1; else hi = mid;
    }
    return (uint8_t)lo;
}

typedef struct lcount { size_t level, count; } lcount;

static int cmp_lcount(const void *a, const void *b)
{
    const lcount *x = a, *y = b;
    if (x->count != y->count) return x->count > y->count ? -1 : 1;
    return (x->level > y->level) - (x->level < y->level);
}

static int bin_categorical(mfeature *f, const mview *v, size_t n)
{
    f->level_bin = model_xcalloc(f->n_levels, 1);
    if (!f->level_bin) return -1;
    if (f->n_levels <= 255) {
        for (size_t l = 0; l < f->n_levels; l++) f->level_bin[l] = (uint8_t)l;
        return 0;
    }
    lcount *c = model_xcalloc(f->n_levels, sizeof *c);
    if (!c) return -1;
    for (size_t l = 0; l < f->n_levels; l++) c[l].level = l;
    for (size_t i = 0; i < n; i++) {
        int l = mview_level(v, i);
        if (l >= 0) c[l].count++;
    }
    qsort(c, f->n_levels, sizeof *c, cmp_lcount);
    for (size_t r = 0; r < f->n_levels; r++) f->level_bin[c[r].level] = (uint8_t)(r < 254 ? r : 254);
    free(c);
    return 0;
}

static void bin_rows(const model *m, const mview *v, size_t n, uint8_t *B)
{
    size_t nf = m->nf;
    for (size_t j = 0; j < nf; j++) {
        const mfeature *f = &m->f[j];
        if (f->type == MODEL_NUMERIC) {
            for (size_t i = 0; i < n; i++) B[i * nf + j] = num_bin(f, v[j].num[i]);
        } else {
            for (size_t i = 0; i < n; i++) {
                int l = mview_level(&v[j], i);
                B[i * nf + j] = l >= 0 ? f->level_bin[l] : GB_MISSING;
            }
        }
    }
}

/* ---- growing one tree ---- */

static hbin *hist_get(grower *w)
{
    if (w->n_pool) return w->pool[--w->n_pool];
    return aligned_alloc(32, w->nf * GB_NBIN * sizeof(hbin));   /* a multiple of 32 */
}

static void hist_put(grower *w, hbin *h)
{
    if (h) w->pool[w->n_pool++] = h;
}

/* Zeroes only the bins in use: a full histogram is 6 KB per feature. */
static void hist_clear(const grower *w, hbin *h)
{
    for (size_t j = 0; j < w->nf; j++) {
        memset(h + j * GB_NBIN, 0, (size_t)w->nb[j] * sizeof *h);
        memset(h + j * GB_NBIN + GB_MISSING, 0, sizeof *h);
    }
}

HIST_CLONES
static void hist_rows(const grower *w, const gbnode *nd, hbin *h)
{
    size_t nf = w->nf;
    hist_clear(w, h);
    for (size_t k = nd->start; k < nd->end; k++) {
        uint32_t r = w->rows[k];
        const uint8_t *b = w->B + (size_t)r * nf;
        v4d add = { w->gh[2 * r], w->gh[2 * r + 1], 1, 0 };
        for (size_t j = 0; j < nf; j++) *(v4d *)&h[j * GB_NBIN + b[j]] += add;
    }
}

HIST_CLONES
static void hist_groups(const grower *w, const gbnode *nd, hbin *h)
{
    size_t ng = w->ng;
    hbin *base[ng];
    for (size_t s = 0; s < ng; s++) {
        const hgroup *q = &w->grp[s];
        if (q->n_feat == 1) {
            int j = q->feat[0];
            base[s] = h + (size_t)j * GB_NBIN;
            memset(base[s], 0, (size_t)w->nb[j] * sizeof *h);
            memset(base[s] + GB_MISSING, 0, sizeof *h);
        } else {
            base[s] = w->joint + s * GB_NBIN;
            memset(base[s], 0, (size_t)q->n_codes * sizeof *h);
        }
    }
    for (size_t k = nd->start; k < nd->end; k++) {
        uint32_t r = w->rows[k];
        const uint8_t *b = w->Bg + (size_t)r * w->gstride;
        v4d add = { w->gh[2 * r], w->gh[2 * r + 1], 1, 0 };
        for (size_t s = 0; s < ng; s++) *(v4d *)&base[s][b[s]] += add;
    }
    for (size_t s = 0; s < ng; s++) {
        const hgroup *q = &w->grp[s];
        if (q->n_feat == 1) continue;
        for (int m = 0; m < q->n_feat; m++) {
            hbin *hj = h + (size_t)q->feat[m] * GB_NBIN;
            memset(hj, 0, (size_t)w->nb[q->feat[m]] * sizeof *h);
            memset(hj + GB_MISSING, 0, sizeof *h);
        }
        const hbin *J = base[s];
        for (int c = 0; c < q->n_codes; c++) {
            if (J[c].n == 0) continue;
            v4d v = *(const v4d *)&J[c];
            for (int m = 0; m < q->n_feat; m++)
                *(v4d *)&h[(size_t)q->feat[m] * GB_NBIN + q->dec[c][m]] += v;
        }
    }
}

int gbdt_bundles = 1;

/* The bundles pay off when the node has enough rows to amortise spreading
 * their histograms over their features. */
static void hist_build(const grower *w, const gbnode *nd, hbin *h)
{
    size_t rows = nd->end - nd->start;
    if (gbdt_bundles && w->ng < w->nf && rows * (w->nf - w->ng) > w->marg_cost) hist_groups(w, nd, h);
    else hist_rows(w, nd, h);
}

static inline double score(double g, double h, double l2) { return g * g / (h + l2); }

typedef struct ckey { double key; int bin; } ckey;

static int cmp_ckey(const void *a, const void *b)
{
    const ckey *x = a, *y = b;
    if (x->key != y->key) return x->key < y->key ? -1 : 1;
    return x->bin - y->bin;
}

static void consider(split *best, double G, double H, double N, double gl, double hl, double nl,
                     double l2, double msl, double parent)
{
    double gr = G - gl, hr = H - hl, nr = N - nl;
    if (nl < msl || nr < msl || hl < MIN_HESS || hr < MIN_HESS) return;
    double gain = score(gl, hl, l2) + score(gr, hr, l2) - parent;
    if (gain > best->gain) {
        best->gain = gain;
        best->gl = gl;
        best->hl = hl;
        best->nl = nl;
        best->feature = -2;   /* filled in by the caller */
    }
}

static void find_split(const grower *w, gbnode *nd)
{
    const model_params *p = &w->m->params;
    double G = nd->g, H = nd->h, N = (double)(nd->end - nd->start), l2 = p->l2_leaf;
    double msl = p->min_samples_leaf, parent = score(G, H, l2);
    split best;
    memset(&best, 0, sizeof best);
    best.feature = -1;
    best.gain = 1e-12 * (parent + 1);   /* a split must gain something */
    for (size_t j = 0; j < w->nf; j++) {
        const mfeature *f = &w->m->f[j];
        const hbin *h = nd->hist + j * GB_NBIN;
        const hbin *miss = &h[GB_MISSING];
        if (f->type == MODEL_NUMERIC) {
            int nb = (int)f->n_edges + 1;
            double gl = 0, hl = 0, nl = 0;
            for (int t = 0; t < nb; t++) {
                gl += h[t].g;
                hl += h[t].h;
                nl += h[t].n;
                if (h[t].n == 0 && t < nb - 1) continue;   /* same split as t-1 */
                if (t < nb - 1 || miss->n > 0) {
                    /* missing right (or, without missing values, to the bigger side) */
                    consider(&best, G, H, N, gl, hl, nl, l2, msl, parent);
                    if (best.feature == -2) {
                        best.feature = (int)j;
                        best.is_cat = 0;
                        best.thr = t;
                        best.missing_left = miss->n > 0 ? 0 : nl >= N - nl;
                    }
                }
                if (miss->n > 0 && t < nb - 1) {
                    consider(&best, G, H, N, gl + miss->g, hl + miss->h, nl + miss->n, l2, msl, parent);
                    if (best.feature == -2) {
                        best.feature = (int)j;
                        best.is_cat = 0;
                        best.thr = t;
                        best.missing_left = 1;
                    }
                }
            }
        } else {
            ckey c[GB_NBIN];
            int nc = 0;
            for (int b = 0; b < GB_NBIN; b++) {
                if (b == w->nb[j]) b = GB_MISSING;
                if (h[b].n > 0) {
                    c[nc].key = h[b].g / (h[b].h + CAT_SMOOTH);
                    c[nc].bin = b;
                    nc++;
                }
            }
            if (nc < 2) continue;
            qsort(c, (size_t)nc, sizeof *c, cmp_ckey);
            double gl = 0, hl = 0, nl = 0;
            for (int k = 0; k + 1 < nc; k++) {
                gl += h[c[k].bin].g;
                hl += h[c[k].bin].h;
                nl += h[c[k].bin].n;
                consider(&best, G, H, N, gl, hl, nl, l2, msl, parent);
                if (best.feature == -2) {
                    best.feature = (int)j;
                    best.is_cat = 1;
                    memset(best.bits, 0, sizeof best.bits);
                    for (int q = 0; q <= k; q++) bit_set(best.bits, c[q].bin);
                }
            }
        }
    }
    nd->best = best;
}

static int add_node(grower *w, size_t start, size_t end, int depth, double g, double h)
{
    if (w->n_nodes == w->cap) {
        size_t cap = w->cap ? 2 * w->cap : 64;
        gnode *a = realloc(w->nodes, cap * sizeof *a);
        if (!a) return -1;
        w->nodes = a;
        gbnode *b = realloc(w->info, cap * sizeof *b);
        if (!b) return -1;
        w->info = b;
        double *e = realloc(w->leaf_exp, cap * sizeof *e);
        if (!e) return -1;
        w->leaf_exp = e;
        w->cap = cap;
    }
    gnode *q = &w->nodes[w->n_nodes];
    memset(q, 0, sizeof *q);
    q->left = q->right = q->feature = -1;
    q->value = -w->m->params.learning_rate * g / (h + w->m->params.l2_leaf);
    gbnode *nd = &w->info[w->n_nodes];
    memset(nd, 0, sizeof *nd);
    nd->start = start;
    nd->end = end;
    nd->depth = depth;
    nd->g = g;
    nd->h = h;
    nd->best.feature = -1;
    return (int)w->n_nodes++;
}

static int splittable(const grower *w, const gbnode *nd)
{
    const model_params *p = &w->m->params;
    if (p->max_depth > 0 && nd->depth >= p->max_depth) return 0;
    return nd->end - nd->start >= 2 * (size_t)p->min_samples_leaf;
}

/* Grows one tree over rows[0..n_tr) into w->nodes. */
static int grow(grower *w)
{
    const model_params *p = &w->m->params;
    w->n_nodes = 0;
    for (size_t i = 0; i < w->n_tr; i++) w->rows[i] = (uint32_t)i;
    /* four running sums each: one chain of dependent adds was 4% of a fit */
    double g4[4] = { 0 }, h4[4] = { 0 };
    size_t i = 0;
    for (; i + 4 <= w->n_tr; i += 4)
        for (int k = 0; k < 4; k++) { g4[k] += w->gh[2 * (i + k)]; h4[k] += w->gh[2 * (i + k) + 1]; }
    for (; i < w->n_tr; i++) { g4[0] += w->gh[2 * i]; h4[0] += w->gh[2 * i + 1]; }
    double G = (g4[0] + g4[1]) + (g4[2] + g4[3]), H = (h4[0] + h4[1]) + (h4[2] + h4[3]);
    if (add_node(w, 0, w->n_tr, 0, G, H) < 0) return -1;
    if (splittable(w, &w->info[0])) {
        if (!(w->info[0].hist = hist_get(w))) return -1;
        hist_build(w, &w->info[0], w->info[0].hist);
        find_split(w, &w->info[0]);
    }
    int leaves = 1;
    while (leaves < p->max_leaf_nodes) {
        int pick = -1;
        for (size_t k = 0; k < w->n_nodes; k++) {
            const gbnode *nd = &w->info[k];
            if (w->nodes[k].left < 0 && nd->best.feature >= 0 &&
                (pick < 0 || nd->best.gain > w->info[pick].best.gain))
                pick = (int)k;
        }
        if (pick < 0) break;
        gbnode *nd = &w->info[pick];
        split s = nd->best;
        gnode q = w->nodes[pick];
        q.feature = s.feature;
        q.is_cat = s.is_cat;
        q.thr = s.thr;
        q.missing_left = s.missing_left;
        memcpy(q.cat_left, s.bits, sizeof q.cat_left);
        /* stable partition of the node's rows */
        size_t nl = 0, nr = 0, start = nd->start, end = nd->end;
        const uint8_t *col = w->Bc + (size_t)s.feature * w->stride;
        /* branch-free: which side a row goes is a coin flip to the CPU */
        uint32_t *lo = w->rows + start, *hi = w->tmp;
        uint8_t lut[GB_NBIN];
        for (int b = 0; b < GB_NBIN; b++) lut[b] = (uint8_t)goes_left(&q, b);
        for (size_t k = start; k < end; k++) {
            uint32_t r = w->rows[k];
            size_t l = lut[col[r]];
            lo[nl] = r;
            hi[nr] = r;
            nl += l;
            nr += 1 - l;
        }
        memcpy(w->rows + start + nl, w->tmp, nr * sizeof *w->rows);
        hbin *ph = nd->hist;
        int depth = nd->depth;
        double pg = nd->g, phh = nd->h;
        nd->hist = NULL;
        int L = add_node(w, start, start + nl, depth + 1, s.gl, s.hl);
        int R = L < 0 ? -1 : add_node(w, start + nl, end, depth + 1, pg - s.gl, phh - s.hl);
        if (R < 0) { free(ph); return -1; }
        q.left = L;
        q.right = R;
        w->nodes[pick] = q;
        w->info[pick].best.feature = -1;
        leaves++;
        gbnode *ln = &w->info[L], *rn = &w->info[R];
        /* once the tree is full its leaves never split: no histograms */
        int full = leaves >= p->max_leaf_nodes;
        int ls = !full && splittable(w, ln), rs = !full && splittable(w, rn);
        if (ls || rs) {
            /* the smaller child is built, the bigger one is parent - smaller */
            gbnode *small = nl <= nr ? ln : rn, *big = nl <= nr ? rn : ln;
            hbin *sh = hist_get(w);
            if (!sh) { free(ph); return -1; }
            hist_build(w, small, sh);
            for (size_t j = 0; j < w->nf; j++)
                for (int b = 0; b < GB_NBIN; b++) {
                    if (b == w->nb[j]) b = GB_MISSING;
                    size_t at = j * GB_NBIN + (size_t)b;
                    *(v4d *)&ph[at] -= *(const v4d *)&sh[at];
                }
            small->hist = sh;
            big->hist = ph;
            if (ls) find_split(w, ln);
            if (rs) find_split(w, rn);
            /* a leaf keeps its histogram until it is split (its children
             * subtract from it); one that cannot split gives it back now */
            if (ln->best.feature < 0) { hist_put(w, ln->hist); ln->hist = NULL; }
            if (rn->best.feature < 0) { hist_put(w, rn->hist); rn->hist = NULL; }
        } else {
            hist_put(w, ph);
        }
    }
    for (size_t k = 0; k < w->n_nodes; k++) {
        hist_put(w, w->info[k].hist);
        w->info[k].hist = NULL;
    }
    return 0;
}

static double tree_raw(const gtree *t, const uint8_t *b)
{
    const gnode *q = &t->nodes[0];
    while (q->left >= 0) q = &t->nodes[goes_left(q, b[q->feature]) ? q->left : q->right];
    return q->value;
}

static size_t tree_leaf(const gtree *t, const uint8_t *b)
{
    size_t k = 0;
    while (t->nodes[k].left >= 0)
        k = (size_t)(goes_left(&t->nodes[k], b[t->nodes[k].feature]) ? t->nodes[k].left : t->nodes[k].right);
    return k;
}

/* The log-loss gradient and hessian from ex = exp(-raw), four rows at a
 * time (the compiler leaves the divisions scalar otherwise): q = sigmoid(raw),
 * g = q - y, h = q (1 - q). An infinite ex gives q = 0, a zero one q = 1. */
HIST_CLONES
static void gradients(const double *ex, const double *y, double *gh, size_t n)
{
    size_t i = 0;
    const v4d one = { 1, 1, 1, 1 };
    for (; i + 4 <= n; i += 4) {
        v4d e, yy;
        memcpy(&e, ex + i, sizeof e);
        memcpy(&yy, y + i, sizeof yy);
        v4d q = one / (one + e);
        v4d g = q - yy, h = q * (one - q);
        v4d a = __builtin_shufflevector(g, h, 0, 4, 1, 5), b = __builtin_shufflevector(g, h, 2, 6, 3, 7);
        memcpy(gh + 2 * i, &a, sizeof a);
        memcpy(gh + 2 * i + 4, &b, sizeof b);
    }
    for (; i < n; i++) {
        double q = 1 / (1 + ex[i]);
        gh[2 * i] = q - y[i];
        gh[2 * i + 1] = q * (1 - q);
    }
}

/* Boosts up to max_trees trees on rows [0, n_tr), watching the log loss of
 * rows [n_tr, n) when there are any; returns the number of trees to keep
 * (all of them without a validation slice), or -1 when out of memory. */
static long boost(model *m, grower *w, size_t n_tr, size_t n, const double *y, double *raw,
                  double *ex, double *gh, int max_trees)
{
    const model_params *p = &m->params;
    size_t nf = m->nf, n_val = n - n_tr;
    w->n_tr = n_tr;
    double ybar = 0;
    for (size_t i = 0; i < n_tr; i++) ybar += y[i];
    m->baseline = model_logit(ybar / (double)n_tr);
    for (size_t i = 0; i < n; i++) raw[i] = m->baseline;
    /* ex[i] = exp(-raw[i]), kept up to date by one multiplication per row
     * and one exp per leaf: an exp per row per tree was 10% of the fit */
    double e0 = exp(-m->baseline);
    for (size_t i = 0; i < n; i++) ex[i] = e0;
    double best_loss = INFINITY;
    size_t best_iter = 0;
    for (int it = 0; it < max_trees; it++) {
        gradients(ex, y, gh, n_tr);
        if (grow(w) < 0) return -1;
        gtree *t = &m->trees[m->n_trees];
        t->nodes = malloc(w->n_nodes * sizeof *t->nodes);
        if (!t->nodes) return -1;
        memcpy(t->nodes, w->nodes, w->n_nodes * sizeof *t->nodes);
        t->n_nodes = w->n_nodes;
        m->n_trees++;
        for (size_t k = 0; k < w->n_nodes; k++) {
            if (w->nodes[k].left >= 0) continue;
            double v = w->nodes[k].value, f = exp(-v);
            for (size_t s = w->info[k].start; s < w->info[k].end; s++) {
                raw[w->rows[s]] += v;
                ex[w->rows[s]] *= f;
            }
        }
        if (!n_val) continue;
        /* The validation log loss, sum of log(1 + e^-z) + (1 - y) z, with
         * e^-z kept per row like ex[] and the logs summed as the log of a
         * product (rescaled by 2^-500 when it gets big): no exp or log per
         * row. A factor too big for that (z < -340) is summed directly. */
        double *lexp = w->leaf_exp;
        for (size_t k = 0; k < w->n_nodes; k++)
            if (w->nodes[k].left < 0) lexp[k] = exp(-w->nodes[k].value);
        double prod = 1, lin = 0;
        long scale = 0;
        for (size_t i = n_tr; i < n; i++) {
            size_t k = tree_leaf(t, w->B + i * nf);
            raw[i] += t->nodes[k].value;
            ex[i] *= lexp[k];
            double z = raw[i], f = 1 + ex[i];
            lin += (1 - y[i]) * z;
            if (f < 0x1p500) {
                prod *= f;
                if (prod > 0x1p500) { prod *= 0x1p-500; scale++; }
            } else {
                lin += -z + log1p(exp(z));   /* log(1 + e^-z), z very negative */
            }
        }
        double loss = (log(prod) + (double)scale * 500 * M_LN2 + lin) / (double)n_val;
        if (loss < best_loss - p->tol) {
            best_loss = loss;
            best_iter = m->n_trees;
        } else if (m->n_trees - best_iter >= (size_t)p->n_iter_no_change) {
            break;
        }
    }
    return n_val ? (long)(best_iter ? best_iter : 1) : (long)m->n_trees;
}

/* Groups the features for the histogram loop: those with at most 128 values
 * (bins plus missing), largest first, go into the first bundle whose joint
 * code still fits in a byte. Then codes every row. */
static int make_groups(grower *w, size_t n)
{
    size_t nf = w->nf;
    hgroup *g = model_xcalloc(nf, sizeof *g);
    int *ord = model_xcalloc(nf, sizeof *ord);
    if (!g || !ord) { free(g); free(ord); return -1; }
    size_t nord = 0, ng = 0;
    for (size_t j = 0; j < nf; j++)
        if (w->nb[j] + 1 <= GB_BUNDLE_VALUES) ord[nord++] = (int)j;
    for (size_t a = 1; a < nord; a++)   /* insertion sort: values descending, then index */
        for (size_t b = a; b > 0 && w->nb[ord[b]] > w->nb[ord[b - 1]]; b--) {
            int t = ord[b]; ord[b] = ord[b - 1]; ord[b - 1] = t;
        }
    for (size_t a = 0; a < nord; a++) {
        int j = ord[a], v = w->nb[j] + 1;
        size_t s = 0;
        while (s < ng && (g[s].n_codes * v > GB_NBIN || g[s].n_feat == GB_BUNDLE_MAX)) s++;
        if (s == ng) { ng++; g[s].n_codes = 1; }
        g[s].feat[g[s].n_feat++] = j;
        g[s].n_codes *= v;
    }
    free(ord);
    size_t nbundle = ng;
    for (size_t j = 0; j < nf; j++)
        if (w->nb[j] + 1 > GB_BUNDLE_VALUES) { g[ng].n_feat = 1; g[ng].feat[0] = (int)j; g[ng].n_codes = 0; ng++; }
    size_t cost = 0;
    for (size_t s = 0; s < nbundle; s++) {
        if (g[s].n_feat == 1) { g[s].n_codes = 0; continue; }
        cost += (size_t)g[s].n_codes * (size_t)(g[s].n_feat + 1);
        for (int c = 0; c < g[s].n_codes; c++) {   /* mixed radix, first feature fastest */
            int rest = c;
            for (int q = 0; q < g[s].n_feat; q++) {
                int v = w->nb[g[s].feat[q]] + 1, l = rest % v;
                rest /= v;
                g[s].dec[c][q] = (uint8_t)(l == v - 1 ? GB_MISSING : l);
            }
        }
    }
    w->grp = g;
    w->ng = ng;
    w->marg_cost = cost;
    if (ng == nf) return 0;   /* nothing bundled: hist_rows only */
    size_t gs = (ng + 7) / 8 * 8;
    if (gs > 8 && gs < 16) gs = 16;
    if (gs > 16 && gs < 32) gs = 32;
    w->gstride = gs;
    uint8_t *Bg = model_xcalloc(n * gs, 1);
    w->joint = aligned_alloc(32, ng * GB_NBIN * sizeof(hbin));
    w->Bg = Bg;
    if (!Bg || !w->joint) return -1;
    for (size_t i = 0; i < n; i++) {
        const uint8_t *b = w->B + i * nf;
        for (size_t s = 0; s < ng; s++) {
            if (g[s].n_feat == 1) { Bg[i * gs + s] = b[g[s].feat[0]]; continue; }
            int code = 0, mul = 1;
            for (int q = 0; q < g[s].n_feat; q++) {
                int j = g[s].feat[q], v = w->nb[j] + 1;
                code += (b[j] == GB_MISSING ? v - 1 : b[j]) * mul;
                mul *= v;
            }
            Bg[i * gs + s] = (uint8_t)code;
        }
    }
    return 0;
}

int gbdt_fit(model *m, const model_data *d, const mview *v, size_t n, const double *y,
             prm_error *err)
{
    (void)d;
    const model_params *p = &m->params;
    size_t nf = m->nf;
    if (n > UINT32_MAX) return prm_error_set(err, "too many rows");
    int es = p->early_stopping < 0 ? n > 10000 : p->early_stopping;
    size_t n_val = es ? (size_t)((double)n * p->validation_fraction) : 0;
    if (es && (n_val < 1 || n - n_val < 2)) n_val = 0;
    size_t n_tr = n - n_val;
    double ybar = 0;
    for (size_t i = 0; i < n_tr; i++) ybar += y[i];
    if (ybar == 0 || ybar == (double)n_tr)
        return prm_error_set(err, "the training part (before the validation slice) has a single class");
    /* bins come from the training part only, as the validation slice
     * stands in for data the model has not seen */
    int rc = 0;
    for (size_t j = 0; j < nf && rc == 0; j++) {
        mfeature *f = &m->f[j];
        if (f->type == MODEL_NUMERIC) rc = bin_numeric(f, v[j].num, n_tr, p->max_bins);
        else rc = bin_categorical(f, &v[j], n_tr);
    }
    if (rc < 0) return prm_error_set(err, "out of memory");

    grower w;
    memset(&w, 0, sizeof w);
    w.m = m;
    w.nf = nf;
    w.stride = n;
    uint8_t *B = model_xcalloc(n * nf, 1), *Bc = model_xcalloc(n * nf, 1);
    int *nb = model_xcalloc(nf, sizeof *nb);
    double *raw = model_xcalloc(n, sizeof *raw), *ex = model_xcalloc(n, sizeof *ex),
           *gh = model_xcalloc(2 * n, sizeof *gh);
    w.rows = model_xcalloc(n, sizeof *w.rows);
    w.tmp = model_xcalloc(n, sizeof *w.tmp);
    /* live histograms: at most one per open leaf plus two in flight */
    w.pool = model_xcalloc((size_t)p->max_leaf_nodes * 2 + 4, sizeof *w.pool);
    m->trees = model_xcalloc((size_t)p->max_iter, sizeof *m->trees);
    if (!B || !Bc || !nb || !raw || !ex || !gh || !w.rows || !w.tmp || !w.pool || !m->trees) {
        rc = prm_error_set(err, "out of memory");
        goto done;
    }
    w.B = B;
    w.Bc = Bc;
    w.nb = nb;
    w.gh = gh;
    bin_rows(m, v, n, B);
    for (size_t j = 0; j < nf; j++) {
        const mfeature *f = &m->f[j];
        nb[j] = f->type == MODEL_NUMERIC ? (int)f->n_edges + 1 : f->n_levels < 255 ? (int)f->n_levels : 255;
        for (size_t i = 0; i < n; i++) Bc[j * n + i] = B[i * nf + j];
    }
    if (make_groups(&w, n) < 0) {
        rc = prm_error_set(err, "out of memory");
        goto done;
    }
    long keep = boost(m, &w, n_tr, n, y, raw, ex, gh, p->max_iter);
    if (keep >= 0 && n_val && p->refit) {
        /* The validation slice is the latest data, the most like what will
         * be scored: once it has chosen the number of trees, boost that many
         * again on every row. */
        gbdt_free(m);
        if (!(m->trees = model_xcalloc((size_t)keep, sizeof *m->trees))) keep = -1;
        else keep = boost(m, &w, n, n, y, raw, ex, gh, (int)keep);
    }
    if (keep < 0) {
        rc = prm_error_set(err, "out of memory");
        goto done;
    }
    while (m->n_trees > (size_t)keep) free(m->trees[--m->n_trees].nodes);
    m->n_iter = (int)m->n_trees;
done:
    free(B); free(Bc); free(nb); free(raw); free(ex); free(gh); free(w.rows); free(w.tmp);
    if (w.pool)
        for (size_t k = 0; k < w.n_pool; k++) free(w.pool[k]);
    free(w.pool);
    free((void *)w.grp);
    free((void *)w.Bg);
    free(w.joint);
    free(w.nodes);
    free(w.info);
    free(w.leaf_exp);
    return rc;
}

static void bin_row(const model *m, const mview *v, size_t i, uint8_t *b)
{
    for (size_t j = 0; j < m->nf; j++) {
        const mfeature *f = &m->f[j];
        if (f->type == MODEL_NUMERIC) {
            b[j] = num_bin(f, v[j].num[i]);
        } else {
            int l = mview_level(&v[j], i);
            b[j] = l >= 0 && f->level_bin ? f->level_bin[l] : GB_MISSING;
        }
    }
}

void gbdt_predict(const model *m, const mview *v, size_t n, double *z)
{
    uint8_t b[m->nf ? m->nf : 1];
    for (size_t i = 0; i < n; i++) {
        bin_row(m, v, i, b);
        double s = m->baseline;
        for (size_t t = 0; t < m->n_trees; t++) s += tree_raw(&m->trees[t], b);
        z[i] = s;
    }
}

/* Saabas: each split on the row's path credits its feature with the change
 * of the node value from parent to child; base = baseline + root values. */
void gbdt_explain(const model *m, const mview *v, size_t row, double *contrib, double *base)
{
    uint8_t b[m->nf ? m->nf : 1];
    bin_row(m, v, row, b);
    double s = m->baseline;
    for (size_t t = 0; t < m->n_trees; t++) {
        const gtree *tr = &m->trees[t];
        const gnode *q = &tr->nodes[0];
        s += q->value;
        while (q->left >= 0) {
            const gnode *c = &tr->nodes[goes_left(q, b[q->feature]) ? q->left : q->right];
            contrib[q->feature] += c->value - q->value;
            q = c;
        }
    }
    *base = s;
}

void gbdt_free(model *m)
{
    if (m->trees)
        for (size_t t = 0; t < m->n_trees; t++) free(m->trees[t].nodes);
    free(m->trees);
    m->trees = NULL;
    m->n_trees = 0;
}
