/* mc.c - see mc.h; the method and its measurements are in docs/FORECAST.md.
 *
 * How 10,000 simulations over 100,000 deals fit in 2 s on one core (1e9
 * deal-draws, so about 2 ns each): no uniform per deal per simulation.
 *
 * 1. The simulations are sorted, per shift group, by their effect c_s
 *    (g_s + h_s), and a deal visits them in that order 64 at a time (a
 *    "word"). q_i(c) is increasing in c, so inside a word every probability
 *    lies in [q_lo, q_hi], the values at the word's first simulation and at
 *    the next word's first: one division per word (exp(-c) is stored per
 *    position), shared with the next word.
 * 2. Most wins come from a 64-bit mask whose bits are independent
 *    Bernoulli(pA), pA = q_lo rounded down to K bits: reading pA's binary
 *    digits from the lowest set one up, m = bit ? m | R : m & R with a fresh
 *    random word R each step gives exactly P(bit) = pA; at most K draws of
 *    the generator for 64 simulations.
 * 3. The rest of each simulation's probability, (q_s - pA) / (1 - pA) for a
 *    bit not already set, is at most r = (q_hi - pA) / (1 - pA), small (the
 *    rounding plus the word's spread). Candidates come from an exponential
 *    clock of hazard lam = r / (1 - r) >= -log(1 - r) per position, carried
 *    across words (one log per candidate, none per empty word), and each is
 *    accepted with [(q_s - pA) / (1 - pA)] / (1 - e^-lam), q_s computed
 *    exactly. So P(win in s) = pA + (1 - pA)(q_s - pA)/(1 - pA) = q_s, to
 *    double precision, whatever K is; K only trades mask draws against
 *    exact corrections (K = 8 measured best, see MASK_BITS).
 * 4. A win draws its amount multiplier from an alias table (one draw) and
 *    adds to the simulation's segment row, the partner's running row, and
 *    the deal's moments. Rows are kept in the group's sorted order while
 *    simulating (a word's wins touch 512 bytes) and put back in simulation
 *    order once. Deals are processed grouped by partner, so partner totals
 *    need one row of scratch per shift group, not n_partners x n_sims.
 */
#include "mc.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "rng.h"

/* Bits of pA in the mask step: fewer bits mean fewer generator calls per
 * word and more exact corrections. Instructions of one bench/montecarlo run
 * at 20,000 deals x 2,000 sims (callgrind, whole program): K = 6: 982.9M,
 * K = 8: 976.8M, K = 10: 1006.3M, K = 12: 1045.2M, K = 16: 1128.7M. */
#define MASK_BITS 8

void mc_options_init(mc_options *o)
{
    memset(o, 0, sizeof *o);
    o->n_sims = 10000;
    o->seed = 1;
}

static uint64_t mix64(uint64_t z)
{
    z += 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* ---- quantiles ---- */

static void swapd(double *a, double *b) { double t = *a; *a = *b; *b = t; }

/* Puts the k-th smallest of x[0..n) at x[k], smaller ones before it. */
static void select_k(double *x, size_t n, size_t k)
{
    size_t lo = 0, hi = n - 1;
    while (hi > lo) {
        size_t mid = lo + (hi - lo) / 2;
        if (x[mid] < x[lo]) swapd(&x[mid], &x[lo]);
        if (x[hi] < x[lo]) swapd(&x[hi], &x[lo]);
        if (x[hi] < x[mid]) swapd(&x[hi], &x[mid]);
        double piv = x[mid];
        size_t i = lo, j = hi;
        while (i <= j) {
            while (x[i] < piv) i++;
            while (x[j] > piv) j--;
            if (i <= j) {
                swapd(&x[i], &x[j]);
                i++;
                if (j == 0) break;
                j--;
            }
        }
        if (k <= j) hi = j;
        else if (k >= i) lo = i;
        else return;
    }
}

double mc_quantile(double *x, size_t n, double q)
{
    if (n == 0) return NAN;
    double h = (double)(n - 1) * q;
    size_t lo = (size_t)floor(h);
    if (lo >= n - 1) {
        select_k(x, n, n - 1);
        return x[n - 1];
    }
    select_k(x, n, lo);
    double a = x[lo], b = x[lo + 1];
    for (size_t i = lo + 2; i < n; i++)
        if (x[i] < b) b = x[i];
    return a + (h - (double)lo) * (b - a);
}

/* P10, P50 and P90 of x[0..n) (reordered): each selection runs on the part
 * above the previous one, so the three cost about 2.5 passes, not 3 sorts. */
static void quantiles3(double *x, size_t n, double out[3])
{
    static const double qs[3] = { 0.1, 0.5, 0.9 };
    size_t from = 0;
    for (int k = 0; k < 3; k++) {
        double h = (double)(n - 1) * qs[k];
        size_t lo = (size_t)floor(h);
        select_k(x + from, n - from, lo - from);
        double a = x[lo], b = a;
        if (lo + 1 < n) {
            b = x[lo + 1];
            for (size_t i = lo + 2; i < n; i++)
                if (x[i] < b) b = x[i];
        }
        out[k] = a + (h - (double)lo) * (b - a);
        from = lo + 1 < n ? lo + 1 : lo;
    }
}

static void summarise(const double *d, size_t n, double *scratch, mc_summary *s)
{
    double sum = 0, ss = 0;
    for (size_t i = 0; i < n; i++) sum += d[i];
    double mean = sum / (double)n;
    for (size_t i = 0; i < n; i++) ss += (d[i] - mean) * (d[i] - mean);
    s->mean = mean;
    s->sd = n > 1 ? sqrt(ss / (double)(n - 1)) : 0;
    memcpy(scratch, d, n * sizeof *d);
    double q[3];
    quantiles3(scratch, n, q);
    s->p10 = q[0];
    s->p50 = q[1];
    s->p90 = q[2];
}

int mc_summarise(const double *draws, int n, double *scratch, mc_summary *s, prm_error *err)
{
    if (n < 1) return prm_error_set(err, "mc_summarise: %d draws", n);
    double *own = NULL;
    if (!scratch) {
        scratch = own = malloc((size_t)n * sizeof *own);
        if (!own) return prm_error_set(err, "mc_summarise: out of memory");
    }
    summarise(draws, (size_t)n, scratch, s);
    s->closed = s->pipeline = s->unregistered = NAN;
    free(own);
    return 0;
}

/* ---- alias tables (Vose) for the amount multipliers ---- */

typedef struct alias {
    size_t n;
    double *value;
    uint64_t *thr;        /* accept value[i] when the low 32 bits < thr[i] */
    uint32_t *other;
    double m1, m2;
} alias;

static int alias_build(const mc_dist *d, alias *a, size_t which, prm_error *err)
{
    size_t n = d->n;
    if (n == 0 || !d->value)
        return prm_error_set(err, "mc: multiplier distribution %zu is empty", which);
    if (n > UINT32_MAX) return prm_error_set(err, "mc: multiplier distribution %zu too big", which);
    double tot = 0;
    for (size_t i = 0; i < n; i++) {
        double w = d->weight ? d->weight[i] : 1;
        if (!(w >= 0) || !isfinite(w) || !isfinite(d->value[i]) || d->value[i] < 0)
            return prm_error_set(err, "mc: multiplier distribution %zu, entry %zu: value %g "
                                 "weight %g (want a finite value >= 0 and weight >= 0)",
                                 which, i, d->value[i], w);
        tot += w;
    }
    if (!(tot > 0)) return prm_error_set(err, "mc: multiplier distribution %zu has no weight", which);
    a->n = n;
    a->value = malloc(n * sizeof *a->value);
    a->thr = malloc(n * sizeof *a->thr);
    a->other = malloc(n * sizeof *a->other);
    double *p = malloc(n * sizeof *p);
    size_t *small = malloc(n * sizeof *small), *large = malloc(n * sizeof *large);
    if (!a->value || !a->thr || !a->other || !p || !small || !large) {
        free(p); free(small); free(large);
        return prm_error_set(err, "mc: out of memory");
    }
    size_t ns = 0, nl = 0;
    a->m1 = a->m2 = 0;
    for (size_t i = 0; i < n; i++) {
        double w = (d->weight ? d->weight[i] : 1) / tot;
        a->m1 += w * d->value[i];
        a->m2 += w * d->value[i] * d->value[i];
        a->value[i] = d->value[i];
        a->other[i] = (uint32_t)i;
        p[i] = w * (double)n;
        if (p[i] < 1) small[ns++] = i;
        else large[nl++] = i;
    }
    while (ns && nl) {
        size_t s = small[--ns], l = large[nl - 1];
        a->thr[s] = (uint64_t)(p[s] * 4294967296.0);
        a->other[s] = (uint32_t)l;
        p[l] -= 1 - p[s];
        if (p[l] < 1) {
            nl--;
            small[ns++] = l;
        }
    }
    while (nl) a->thr[large[--nl]] = 1ULL << 32;
    while (ns) a->thr[small[--ns]] = 1ULL << 32;   /* rounding leftovers */
    free(p); free(small); free(large);
    return 0;
}

static inline double alias_draw(const alias *a, rng *r)
{
    uint64_t x = rng_next(r);
    size_t i = (size_t)(((x >> 32) * (uint64_t)a->n) >> 32);
    return (x & 0xffffffffULL) < a->thr[i] ? a->value[i] : a->value[a->other[i]];
}

/* ---- the run ---- */

typedef struct order {        /* one shift group's simulations, sorted by effect */
    uint32_t *perm;           /* position -> simulation */
    double *c;                /* position -> effect, ascending */
    double *ec;               /* position -> exp(-effect) */
} order;

typedef struct ckey { double c; uint32_t s; } ckey;

static int ckey_cmp(const void *a, const void *b)
{
    const ckey *x = a, *y = b;
    if (x->c < y->c) return -1;
    if (x->c > y->c) return 1;
    return x->s < y->s ? -1 : x->s > y->s;
}

typedef struct dkey { int32_t partner, seg; uint32_t i; } dkey;

static int dkey_cmp(const void *a, const void *b)
{
    const dkey *x = a, *y = b;
    if (x->partner != y->partner) return x->partner < y->partner ? -1 : 1;
    if (x->seg != y->seg) return x->seg < y->seg ? -1 : 1;
    return x->i < y->i ? -1 : x->i > y->i;
}

/* q = p_close * sigmoid(z + c) as pc / (1 + exp(-z) exp(-c)): with exp(-c)
 * stored per position, no exp per word or per correction. */
static inline double qprob(double ez, double pc, double ec)
{
    return pc / (1 + ez * ec);
}

/* A 64-bit mask of independent Bernoulli(t / 2^MASK_BITS) bits; t > 0. */
static inline uint64_t bern_mask(rng *r, uint32_t t)
{
    int j = __builtin_ctz(t);
    uint64_t m = rng_next(r);
    for (j++; j < MASK_BITS; j++) {
        uint64_t R = rng_next(r);
        m = ((t >> j) & 1) ? (m | R) : (m & R);
    }
    return m;
}

typedef struct deal_acc {
    double sum, sumsq;        /* pass 1 */
    double xt, xs;            /* pass 2: sum of x * total, x * segment */
} deal_acc;

/* Simulates deal i over every simulation. Every row here is in the shift
 * group's position order (simulations sorted by effect), so the 64 wins of
 * a word land in one 512-byte stretch instead of anywhere in an 80 KB row.
 * Pass 1 scatters into segrow and prow (the partner's running row for this
 * group, or a spare one); pass 2 regenerates the same draws and accumulates
 * them against the final total and segment rows. */
static inline __attribute__((always_inline)) void
run_deal(const mc_input *in, const order *o, const alias *al, int S, uint64_t seed, size_t i,
         const int pass, double *segrow, double *prow, const double *total, deal_acc *acc,
         mc_result *res)
{
    double pw = in->p_win[i], pc = in->p_close ? in->p_close[i] : 1, amt = in->amount[i];
    if (!(pw > 0) || !(pc > 0) || !(amt > 0)) return;
    double ez = pw >= 1 ? 0 : (1 - pw) / pw;     /* exp(-logit(p_win)) */
    rng r;
    rng_seed(&r, mix64(mix64(seed) ^ (in->key ? in->key[i] : (uint64_t)i)));
    const double *ec = o->ec;
    const size_t nw = ((size_t)S + 63) / 64;
    const double scale = (double)(1u << MASK_BITS);
    double plo = qprob(ez, pc, ec[0]);
    /* The candidate clock: Exp(1) "time" left before the next candidate. */
    double clock = -log(rng_uniform(&r));
    uint64_t wins = 0, exact = 0;
    double a1 = 0, a2 = 0;
    for (size_t w = 0; w < nw; w++) {
        size_t base = w * 64, nb = (size_t)S - base < 64 ? (size_t)S - base : 64;
        double phi = qprob(ez, pc, ec[w + 1 < nw ? base + 64 : (size_t)S - 1]);
        uint32_t t = (uint32_t)(plo * scale);
        if (t >= (1u << MASK_BITS)) t = (1u << MASK_BITS) - 1;
        double pA = (double)t / scale;
        uint64_t m = t ? bern_mask(&r, t) : 0;
        if (phi > pA) {
            /* A bit not in the mask still wins with (q_s - pA) / (1 - pA) <= rr.
             * Candidates come at hazard lam >= -log(1 - rr) per position
             * (x / (1 - x) bounds -log(1 - x)), so a position is a candidate
             * with 1 - exp(-lam) >= rr, and is accepted with the ratio. */
            double rr = (phi - pA) / (1 - pA);
            double lam = rr < 0.5 ? rr / (1 - rr) : INFINITY;
            size_t j = 0;
            while (j < nb) {
                double left = (double)(nb - j) * lam;
                if (clock >= left) {
                    clock -= left;
                    break;
                }
                j += isinf(lam) ? 0 : (size_t)(clock / lam);
                if (j >= nb) j = nb - 1;      /* rounding at the word's end */
                if (!((m >> j) & 1)) {
                    double qs = qprob(ez, pc, ec[base + j]);
                    double pcand = isinf(lam) ? 1 : -expm1(-lam);
                    exact++;
                    if (rng_uniform(&r) * pcand * (1 - pA) < qs - pA) m |= 1ULL << j;
                }
                clock = -log(rng_uniform(&r));
                j++;
            }
        }
        if (nb < 64) m &= (1ULL << nb) - 1;
        while (m) {            /* (no popcount: without -mpopcnt it is a libgcc call) */
            int b = __builtin_ctzll(m);
            m &= m - 1;
            wins++;
            size_t s = base + (size_t)b;
            double x = al ? amt * alias_draw(al, &r) : amt;
            if (pass == 1) {
                segrow[s] += x;
                prow[s] += x;
                a1 += x;
                a2 += x * x;
            } else {
                a1 += x * total[s];
                a2 += x * segrow[s];
            }
        }
        plo = phi;
    }
    /* Local sums: through acc-> the compiler must assume they alias segrow. */
    if (pass == 1) {
        acc->sum = a1;
        acc->sumsq = a2;
    } else {
        acc->xt = a1;
        acc->xs = a2;
    }
    if (pass == 1) {
        res->n_words += nw;
        res->n_wins += wins;
        res->n_exact += exact;
    }
}

/* One copy per pass, so the pass test leaves the inner loop. */
static void run_deal1(const mc_input *in, const order *o, const alias *al, int S, uint64_t seed,
                      size_t i, double *segrow, double *prow, deal_acc *acc, mc_result *res)
{
    run_deal(in, o, al, S, seed, i, 1, segrow, prow, NULL, acc, res);
}

static void run_deal2(const mc_input *in, const order *o, const alias *al, int S, uint64_t seed,
                      size_t i, double *segrow, const double *total, deal_acc *acc)
{
    run_deal(in, o, al, S, seed, i, 2, segrow, NULL, total, acc, NULL);
}

static int check_input(const mc_input *in, const mc_options *opt, prm_error *err)
{
    if (!opt || opt->n_sims < 1 || opt->n_sims > MC_MAX_SIMS)
        return prm_error_set(err, "mc: n_sims %d outside 1..%d", opt ? opt->n_sims : 0, MC_MAX_SIMS);
    if (in->n_segments < 1 || !in->segments) return prm_error_set(err, "mc: no segments");
    if (in->n_segments > INT32_MAX || in->n_partners > INT32_MAX || in->n_deals > UINT32_MAX)
        return prm_error_set(err, "mc: too many segments, partners or deals");
    if (in->n_deals && (!in->p_win || !in->amount || !in->segment))
        return prm_error_set(err, "mc: p_win, amount and segment are required");
    /* 20 logits is far past any period effect, and keeps exp(-c) finite. */
    if (!(in->global_sd >= 0 && in->global_sd <= 20))
        return prm_error_set(err, "mc: global_sd %g outside 0..20", in->global_sd);
    if (!(in->unreg_rho >= -1 && in->unreg_rho <= 1))
        return prm_error_set(err, "mc: unreg_rho %g outside [-1, 1]", in->unreg_rho);
    if (in->n_groups && !in->group_sd) return prm_error_set(err, "mc: group_sd missing");
    for (size_t k = 0; k < in->n_groups; k++)
        if (!(in->group_sd[k] >= 0 && in->group_sd[k] <= 20))
            return prm_error_set(err, "mc: group %zu: sd %g outside 0..20", k, in->group_sd[k]);
    for (size_t k = 0; k < in->n_segments; k++) {
        const mc_segment *s = &in->segments[k];
        if (!isfinite(s->closed)) return prm_error_set(err, "mc: segment %zu: closed %g", k, s->closed);
        if (s->group < -1 || (s->group >= 0 && (size_t)s->group >= in->n_groups))
            return prm_error_set(err, "mc: segment %zu: group %d outside -1..%zu", k, s->group,
                                 in->n_groups);
        switch (s->unreg) {
        case MC_UNREG_NONE: break;
        case MC_UNREG_LOGNORMAL:
            if (!(s->unreg_mean > 0) || !(s->unreg_sd >= 0) || !isfinite(s->unreg_mean) ||
                !isfinite(s->unreg_sd))
                return prm_error_set(err, "mc: segment %zu: lognormal unregistered revenue "
                                     "needs mean > 0 and sd >= 0 (got %g, %g)", k,
                                     s->unreg_mean, s->unreg_sd);
            break;
        case MC_UNREG_NORMAL:
            if (!isfinite(s->unreg_mean) || !(s->unreg_sd >= 0) || !isfinite(s->unreg_sd))
                return prm_error_set(err, "mc: segment %zu: normal unregistered revenue "
                                     "(mean %g, sd %g)", k, s->unreg_mean, s->unreg_sd);
            break;
        case MC_UNREG_SAMPLES:
            if (!s->n_unreg_samples || !s->unreg_samples)
                return prm_error_set(err, "mc: segment %zu: no unregistered samples", k);
            for (size_t j = 0; j < s->n_unreg_samples; j++)
                if (!isfinite(s->unreg_samples[j]))
                    return prm_error_set(err, "mc: segment %zu: unregistered sample %zu is %g",
                                         k, j, s->unreg_samples[j]);
            break;
        default: return prm_error_set(err, "mc: segment %zu: unknown unregistered kind %d", k,
                                      (int)s->unreg);
        }
    }
    for (size_t i = 0; i < in->n_deals; i++) {
        double pw = in->p_win[i], pc = in->p_close ? in->p_close[i] : 1, a = in->amount[i];
        if (!(pw >= 0 && pw <= 1)) return prm_error_set(err, "mc: deal %zu: p_win %g outside [0, 1]", i, pw);
        if (!(pc >= 0 && pc <= 1)) return prm_error_set(err, "mc: deal %zu: p_close %g outside [0, 1]", i, pc);
        if (!(a >= 0) || !isfinite(a)) return prm_error_set(err, "mc: deal %zu: amount %g (want a finite value >= 0)", i, a);
        if (in->segment[i] < 0 || (size_t)in->segment[i] >= in->n_segments)
            return prm_error_set(err, "mc: deal %zu: segment %d outside 0..%zu", i, in->segment[i],
                                 in->n_segments - 1);
        if (in->partner && (in->partner[i] < -1 ||
                            (in->partner[i] >= 0 && (size_t)in->partner[i] >= in->n_partners)))
            return prm_error_set(err, "mc: deal %zu: partner %d outside -1..%zu", i, in->partner[i],
                                 in->n_partners);
        if (in->mult && (in->mult[i] < -1 || (in->mult[i] >= 0 && (size_t)in->mult[i] >= in->n_mults)))
            return prm_error_set(err, "mc: deal %zu: multiplier %d outside -1..%zu", i, in->mult[i],
                                 in->n_mults);
    }
    if (in->mult && in->n_mults && !in->mults) return prm_error_set(err, "mc: mults missing");
    if (in->partner_closed)
        for (size_t j = 0; j < in->n_partners; j++)
            if (!isfinite(in->partner_closed[j]))
                return prm_error_set(err, "mc: partner %zu: closed %g", j, in->partner_closed[j]);
    return 0;
}

void mc_result_free(mc_result *r)
{
    if (!r) return;
    free(r->total); free(r->seg); free(r->shift); free(r->seg_sum);
    free(r->deal_mean); free(r->deal_var); free(r->deal_cov_total); free(r->deal_cov_segment);
    free(r->partner); free(r->partner_draws);
    memset(r, 0, sizeof *r);
}

static void partner_stats(const mc_input *in, size_t j, double *row, int S, double *scratch,
                          size_t nd, int quantiles, mc_result *res)
{
    mc_partner *p = &res->partner[j];
    double closed = in->partner_closed ? in->partner_closed[j] : 0;
    double q = in->quota ? in->quota[j] : NAN;
    if (!(q > 0)) q = NAN;
    size_t hit = 0;
    for (int s = 0; s < S; s++) {
        row[s] += closed;
        if (row[s] >= q) hit++;
    }
    mc_summary sm;
    if (quantiles) {
        summarise(row, (size_t)S, scratch, &sm);
    } else {
        double sum = 0, ss = 0;
        for (int s = 0; s < S; s++) sum += row[s];
        sm.mean = sum / S;
        for (int s = 0; s < S; s++) ss += (row[s] - sm.mean) * (row[s] - sm.mean);
        sm.sd = S > 1 ? sqrt(ss / (S - 1)) : 0;
        sm.p10 = sm.p50 = sm.p90 = NAN;
    }
    p->mean = sm.mean; p->sd = sm.sd; p->p10 = sm.p10; p->p50 = sm.p50; p->p90 = sm.p90;
    p->closed = closed;
    p->quota = q;
    p->expected_attainment = isnan(q) ? NAN : sm.mean / q;
    p->p_attain = isnan(q) ? NAN : (double)hit / S;
    p->n_deals = nd;
    if (res->partner_draws) memcpy(res->partner_draws + j * (size_t)S, row, (size_t)S * sizeof *row);
}

int mc_run(const mc_input *in, const mc_options *opt, mc_result *out, prm_error *err)
{
    memset(out, 0, sizeof *out);
    if (check_input(in, opt, err) < 0) return -1;
    const int S = opt->n_sims;
    const size_t SS = (size_t)S, K = in->n_segments, G = in->n_groups, N = in->n_deals,
                 P = in->n_partners;
    int rc = -1;
    alias *al = NULL;
    order *ord = NULL;
    dkey *dk = NULL;
    ckey *ck = NULL;
    double *prow = NULL, *pg = NULL, *trash = NULL, *scratch = NULL, *segpos = NULL, *totpos = NULL, *zstd = NULL, *pipe = NULL;
    deal_acc *acc = NULL;
    unsigned char *pused = NULL;

    out->n_sims = S;
    out->n_segments = K;
    out->n_deals = N;
    out->n_partners = P;
    out->total = calloc(SS, sizeof *out->total);
    out->seg = calloc(K * SS, sizeof *out->seg);
    out->shift = calloc(SS, sizeof *out->shift);
    out->seg_sum = calloc(K, sizeof *out->seg_sum);
    out->deal_mean = calloc(N ? N : 1, sizeof(double));
    out->deal_var = calloc(N ? N : 1, sizeof(double));
    out->deal_cov_total = calloc(N ? N : 1, sizeof(double));
    out->deal_cov_segment = calloc(N ? N : 1, sizeof(double));
    out->partner = calloc(P ? P : 1, sizeof *out->partner);
    if (opt->keep_partner_draws && P) out->partner_draws = calloc(P * SS, sizeof(double));
    al = calloc(in->n_mults ? in->n_mults : 1, sizeof *al);
    ord = calloc(G + 1, sizeof *ord);
    dk = malloc((N ? N : 1) * sizeof *dk);
    ck = malloc(SS * sizeof *ck);
    prow = calloc(SS, sizeof *prow);
    pg = calloc((G + 1) * SS, sizeof *pg);
    pused = calloc(G + 1, 1);
    trash = calloc(SS, sizeof *trash);
    scratch = malloc(SS * sizeof *scratch);
    zstd = malloc(SS * sizeof *zstd);
    pipe = calloc(K, sizeof *pipe);
    acc = calloc(N ? N : 1, sizeof *acc);
    if (!out->total || !out->seg || !out->shift || !out->seg_sum || !out->deal_mean ||
        !out->deal_var || !out->deal_cov_total || !out->deal_cov_segment || !out->partner ||
        (opt->keep_partner_draws && P && !out->partner_draws) || !al || !ord || !dk || !ck ||
        !prow || !pg || !pused || !trash || !scratch || !zstd || !pipe || !acc) {
        prm_error_set(err, "mc: out of memory (%d sims, %zu segments, %zu deals)", S, K, N);
        goto done;
    }
    if (in->mult)
        for (size_t m = 0; m < in->n_mults; m++)
            if (alias_build(&in->mults[m], &al[m], m, err) < 0) goto done;

    /* Streams of the run: 0 the global effect, 1 the unregistered scores,
     * 2 + k group k's effect (successive jumps: rng_split's streams). */
    rng base, st;
    rng_seed(&base, opt->seed);
    st = base;
    rng_jump(&st);
    for (int s = 0; s < S; s++) {
        zstd[s] = rng_normal(&st);
        out->shift[s] = in->global_sd * zstd[s];
    }
    rng ust = st;
    rng_jump(&ust);
    rng gst = ust;
    for (size_t g = 0; g <= G; g++) {
        if (g < G) rng_jump(&gst);
        ord[g].perm = malloc(SS * sizeof *ord[g].perm);
        ord[g].c = malloc(SS * sizeof *ord[g].c);
        ord[g].ec = malloc(SS * sizeof *ord[g].ec);
        if (!ord[g].perm || !ord[g].c || !ord[g].ec) {
            prm_error_set(err, "mc: out of memory (shift groups)");
            goto done;
        }
        double sd = g < G ? in->group_sd[g] : 0;
        rng gr = gst;
        for (int s = 0; s < S; s++) {
            ck[s].c = out->shift[s] + (sd > 0 ? sd * rng_normal(&gr) : 0);
            ck[s].s = (uint32_t)s;
        }
        qsort(ck, SS, sizeof *ck, ckey_cmp);
        for (size_t s = 0; s < SS; s++) {
            ord[g].perm[s] = ck[s].s;
            ord[g].c[s] = ck[s].c;
            ord[g].ec[s] = exp(-ck[s].c);
        }
    }

    /* Pass 1: deals grouped by partner, simulated into segment rows. */
    for (size_t i = 0; i < N; i++) {
        dk[i].partner = in->partner ? in->partner[i] : -1;
        dk[i].seg = in->segment[i];
        dk[i].i = (uint32_t)i;
    }
    qsort(dk, N, sizeof *dk, dkey_cmp);
    size_t pstart = 0;
    for (size_t x = 0; x <= N; x++) {
        if (x > 0 && (x == N || dk[x].partner != dk[x - 1].partner) && dk[x - 1].partner >= 0) {
            /* the partner's rows per group, back into simulation order */
            for (size_t g = 0; g <= G; g++) {
                if (!pused[g]) continue;
                double *row = pg + g * SS;
                const uint32_t *perm = ord[g].perm;
                for (size_t pos = 0; pos < SS; pos++) prow[perm[pos]] += row[pos];
                memset(row, 0, SS * sizeof *row);
                pused[g] = 0;
            }
            partner_stats(in, (size_t)dk[x - 1].partner, prow, S, scratch, x - pstart,
                          opt->partner_quantiles, out);
            memset(prow, 0, SS * sizeof *prow);
        }
        if (x == N) break;
        if (x == 0 || dk[x].partner != dk[x - 1].partner) pstart = x;
        size_t i = dk[x].i, k = (size_t)dk[x].seg;
        size_t g = in->segments[k].group < 0 ? G : (size_t)in->segments[k].group;
        const alias *a = in->mult && in->mult[i] >= 0 ? &al[in->mult[i]] : NULL;
        /* deals without a partner scatter into a row nobody reads */
        if (dk[x].partner >= 0) pused[g] = 1;
        run_deal1(in, &ord[g], a, S, opt->seed, i, out->seg + k * SS,
                  dk[x].partner >= 0 ? pg + g * SS : trash, &acc[i], out);
        double mean = acc[i].sum / S;
        out->deal_mean[i] = mean;
        double v = acc[i].sumsq / S - mean * mean;
        out->deal_var[i] = v > 0 ? v : 0;
        out->deal_cov_total[i] = out->deal_cov_segment[i] = NAN;
    }
    /* Segment rows back into simulation order. */
    for (size_t k = 0; k < K; k++) {
        int g = in->segments[k].group;
        const uint32_t *perm = ord[g < 0 ? G : (size_t)g].perm;
        double *row = out->seg + k * SS;
        for (size_t pos = 0; pos < SS; pos++) scratch[perm[pos]] = row[pos];
        memcpy(row, scratch, SS * sizeof *row);
    }
    /* Partners without deals still get their closed revenue and quota. */
    for (size_t j = 0; j < P; j++)
        if (out->partner[j].n_deals == 0) {
            memset(prow, 0, SS * sizeof *prow);
            partner_stats(in, j, prow, S, scratch, 0, opt->partner_quantiles, out);
        }

    /* Closed and not-yet-registered revenue, then the total. */
    double rho = in->unreg_rho, rc2 = sqrt(1 - rho * rho);
    for (size_t k = 0; k < K; k++) {
        const mc_segment *sg = &in->segments[k];
        double *row = out->seg + k * SS, usum = 0;
        /* One stream per segment: seeded from (the unregistered stream, k),
         * which is O(1) where k jumps each would be O(K^2). */
        rng ur;
        rng_seed(&ur, mix64(ust.s[0] ^ mix64((uint64_t)k)));
        double psum = 0;
        for (int s = 0; s < S; s++) psum += row[s];
        pipe[k] = psum / S;
        for (int s = 0; s < S; s++) {
            double u = 0;
            if (sg->unreg != MC_UNREG_NONE) {
                double zz = rho * zstd[s] + rc2 * rng_normal(&ur);
                if (sg->unreg == MC_UNREG_LOGNORMAL) {
                    double cv2 = (sg->unreg_sd / sg->unreg_mean) * (sg->unreg_sd / sg->unreg_mean);
                    double sl = sqrt(log1p(cv2));
                    u = sg->unreg_mean * exp(sl * zz - 0.5 * sl * sl);
                } else if (sg->unreg == MC_UNREG_NORMAL) {
                    u = sg->unreg_mean + sg->unreg_sd * zz;
                } else {
                    double ph = 0.5 * erfc(-zz / sqrt(2.0));
                    size_t idx = (size_t)(ph * (double)sg->n_unreg_samples);
                    if (idx >= sg->n_unreg_samples) idx = sg->n_unreg_samples - 1;
                    u = sg->unreg_samples[idx];
                }
            }
            usum += u;
            row[s] += sg->closed + u;
            out->total[s] += row[s];
        }
        mc_summary *sm = &out->seg_sum[k];
        summarise(row, SS, scratch, sm);
        sm->closed = sg->closed;
        sm->pipeline = pipe[k];
        sm->unregistered = usum / S;
    }
    summarise(out->total, SS, scratch, &out->total_sum);
    out->total_sum.closed = out->total_sum.pipeline = out->total_sum.unregistered = 0;
    for (size_t k = 0; k < K; k++) {
        out->total_sum.closed += out->seg_sum[k].closed;
        out->total_sum.pipeline += out->seg_sum[k].pipeline;
        out->total_sum.unregistered += out->seg_sum[k].unregistered;
    }

    /* Pass 2 (optional): the same draws again, against the final rows. */
    if (opt->covariance) {
        /* The final rows in each group's position order; deals in pass 1's
         * order, so a segment's row stays in cache across its deals (input
         * order cost 2.4x the time of pass 1, measured). */
        segpos = malloc(K * SS * sizeof *segpos);
        totpos = malloc((G + 1) * SS * sizeof *totpos);
        if (!segpos || !totpos) {
            prm_error_set(err, "mc: out of memory (covariance pass)");
            goto done;
        }
        for (size_t g = 0; g <= G; g++)
            for (size_t pos = 0; pos < SS; pos++)
                totpos[g * SS + pos] = out->total[ord[g].perm[pos]];
        for (size_t k = 0; k < K; k++) {
            int g = in->segments[k].group;
            const uint32_t *perm = ord[g < 0 ? G : (size_t)g].perm;
            for (size_t pos = 0; pos < SS; pos++) segpos[k * SS + pos] = out->seg[k * SS + perm[pos]];
        }
        for (size_t x = 0; x < N; x++) {
            size_t i = dk[x].i, k = (size_t)in->segment[i];
            size_t g = in->segments[k].group < 0 ? G : (size_t)in->segments[k].group;
            const alias *a = in->mult && in->mult[i] >= 0 ? &al[in->mult[i]] : NULL;
            run_deal2(in, &ord[g], a, S, opt->seed, i, segpos + k * SS, totpos + g * SS, &acc[i]);
            out->deal_cov_total[i] = acc[i].xt / S - out->deal_mean[i] * out->total_sum.mean;
            out->deal_cov_segment[i] = acc[i].xs / S - out->deal_mean[i] * out->seg_sum[k].mean;
        }
    }
    rc = 0;
done:
    if (al)
        for (size_t m = 0; m < in->n_mults; m++) {
            free(al[m].value); free(al[m].thr); free(al[m].other);
        }
    if (ord)
        for (size_t g = 0; g <= G; g++) {
            free(ord[g].perm); free(ord[g].c); free(ord[g].ec);
        }
    free(al); free(ord); free(dk); free(ck); free(prow); free(pg); free(pused); free(trash); free(segpos); free(totpos); free(scratch); free(zstd); free(pipe);
    free(acc);
    if (rc < 0) mc_result_free(out);
    return rc;
}

/* ---- the period effect ---- */

void mc_period_moments(const double *p_win, const double *p_close, const double *amount,
                       const double *mult_m1, const double *mult_m2, size_t n,
                       double *mean, double *var_indep, double *sensitivity)
{
    double mu = 0, v = 0, d = 0;
    for (size_t i = 0; i < n; i++) {
        double pw = p_win[i], pc = p_close ? p_close[i] : 1, a = amount[i];
        double m1 = mult_m1 ? mult_m1[i] : 1, m2 = mult_m2 ? mult_m2[i] : 1;
        double q = pw * pc;
        mu += q * a * m1;
        v += a * a * (q * m2 - q * q * m1 * m1);
        d += a * m1 * pc * pw * (1 - pw);
    }
    *mean = mu;
    *var_indep = v;
    *sensitivity = d;
}

void mc_effect_free(mc_effect *e)
{
    if (!e) return;
    free(e->group_var);
    free(e->group_periods);
    e->group_var = NULL;
    e->group_periods = NULL;
}

typedef struct pkey { int period; size_t row; } pkey;

static int pkey_cmp(const void *a, const void *b)
{
    const pkey *x = a, *y = b;
    if (x->period != y->period) return x->period < y->period ? -1 : 1;
    return x->row < y->row ? -1 : x->row > y->row;
}

int mc_effect_estimate(const mc_period_obs *obs, size_t n, size_t n_groups,
                       double prior_periods, mc_effect *out, prm_error *err)
{
    memset(out, 0, sizeof *out);
    if (n_groups < 1) return prm_error_set(err, "mc_effect_estimate: no groups");
    for (size_t i = 0; i < n; i++) {
        const mc_period_obs *o = &obs[i];
        if (o->group < 0 || (size_t)o->group >= n_groups)
            return prm_error_set(err, "mc_effect_estimate: row %zu: group %d outside 0..%zu", i,
                                 o->group, n_groups - 1);
        if (!isfinite(o->predicted) || !isfinite(o->actual) || !(o->var_indep >= 0) ||
            !isfinite(o->var_indep) || !(o->sensitivity >= 0) || !isfinite(o->sensitivity))
            return prm_error_set(err, "mc_effect_estimate: row %zu: predicted %g, var %g, "
                                 "sensitivity %g, actual %g (want finite, var and "
                                 "sensitivity >= 0)", i, o->predicted, o->var_indep,
                                 o->sensitivity, o->actual);
    }
    double m0 = prior_periods > 0 ? prior_periods : 4;
    pkey *pk = malloc((n ? n : 1) * sizeof *pk);
    size_t *pstart = malloc((n + 1) * sizeof *pstart);
    double *num_g = calloc(n_groups, sizeof *num_g), *den_g = calloc(n_groups, sizeof *den_g);
    double *raw = calloc(n_groups, sizeof *raw);
    out->group_var = calloc(n_groups, sizeof *out->group_var);
    out->group_periods = calloc(n_groups, sizeof *out->group_periods);
    if (!pk || !pstart || !num_g || !den_g || !raw || !out->group_var || !out->group_periods) {
        free(pk); free(pstart); free(num_g); free(den_g); free(raw);
        mc_effect_free(out);
        return prm_error_set(err, "mc_effect_estimate: out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        pk[i].period = obs[i].period;
        pk[i].row = i;
    }
    qsort(pk, n, sizeof *pk, pkey_cmp);
    size_t np = 0;
    for (size_t i = 0; i < n; i++)
        if (i == 0 || pk[i].period != pk[i - 1].period) pstart[np++] = i;
    pstart[np] = n;
    out->n_periods = (int)np;
    if (np < 2) {
        free(pk); free(pstart); free(num_g); free(den_g); free(raw);
        mc_effect_free(out);
        return prm_error_set(err, "mc_effect_estimate: %zu period(s); need at least 2", np);
    }
    /* Per group: sum of b_tk = r_tk^2 - v_tk and of D_tk^2. */
    for (size_t i = 0; i < n; i++) {
        const mc_period_obs *o = &obs[i];
        double r = o->actual - o->predicted;
        num_g[o->group] += r * r - o->var_indep;
        den_g[o->group] += o->sensitivity * o->sensitivity;
    }
    for (size_t t = 0; t < np; t++)     /* periods seen per group */
        for (size_t i = pstart[t]; i < pstart[t + 1]; i++) {
            int g = obs[pk[i].row].group;
            int first = 1;
            for (size_t j = pstart[t]; j < i; j++)
                if (obs[pk[j].row].group == g) first = 0;
            if (first) out->group_periods[g]++;
        }
    /* the D-weighted mean shift: sum_t r_t D_t / sum_t D_t^2 */
    double bias_num = 0, bias_den = 0;
    for (size_t t = 0; t < np; t++) {
        double r = 0, d = 0;
        for (size_t i = pstart[t]; i < pstart[t + 1]; i++) {
            const mc_period_obs *o = &obs[pk[i].row];
            r += o->actual - o->predicted;
            d += o->sensitivity;
        }
        bias_num += r * d;
        bias_den += d * d;
    }
    double bias = bias_den > 0 ? bias_num / bias_den : 0, tgc = 0;
    double tg = 0;
    for (int it = 0; it < 50; it++) {
        /* global: sum_t (a_t - sum_k D_tk^2 tk) / sum_t D_t^2; centred:
         * a_t of r_t - bias D_t */
        double num = 0, den = 0, numc = 0;
        for (size_t t = 0; t < np; t++) {
            double mu = 0, v = 0, d = 0, y = 0, within = 0;
            for (size_t i = pstart[t]; i < pstart[t + 1]; i++) {
                const mc_period_obs *o = &obs[pk[i].row];
                mu += o->predicted;
                v += o->var_indep;
                d += o->sensitivity;
                y += o->actual;
                within += o->sensitivity * o->sensitivity * out->group_var[o->group];
            }
            num += (y - mu) * (y - mu) - v - within;
            numc += (y - mu - bias * d) * (y - mu - bias * d) - v - within;
            den += d * d;
        }
        double ntg = den > 0 && num > 0 ? num / den : 0;
        tgc = den > 0 && numc > 0 ? numc / den : 0;
        /* groups: raw, then shrunk toward the pooled (period-weighted) value */
        double pool_num = 0, pool_den = 0;
        for (size_t g = 0; g < n_groups; g++) {
            raw[g] = den_g[g] > 0 ? num_g[g] / den_g[g] - ntg : 0;
            if (raw[g] < 0) raw[g] = 0;
            pool_num += raw[g] * out->group_periods[g];
            pool_den += out->group_periods[g];
        }
        double pool = pool_den > 0 ? pool_num / pool_den : 0;
        double change = fabs(ntg - tg);
        for (size_t g = 0; g < n_groups; g++) {
            double ng = out->group_periods[g];
            double v = (ng * raw[g] + m0 * pool) / (ng + m0);
            change += fabs(v - out->group_var[g]);
            out->group_var[g] = v;
        }
        tg = ntg;
        if (change < 1e-12 * (1 + tg)) break;
    }
    out->global_var = tg;
    out->global_var_centred = tgc;
    out->global_bias = bias;
    free(pk); free(pstart); free(num_g); free(den_g); free(raw);
    return 0;
}
