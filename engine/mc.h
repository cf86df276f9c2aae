/* mc.h - the forecast's numeric core: Monte Carlo over open deals, the
 * period-effect estimator, and the close-timing model (issue 9; method and
 * measurements in docs/FORECAST.md).
 *
 * Plain arrays and structs in, status out; no Lua, no SQLite. The forecast
 * module builds an mc_input from the world as of T and calls mc_run:
 *
 *   mc_segment seg[2] = { { .closed = 1.2e6, .unreg = MC_UNREG_LOGNORMAL,
 *                           .unreg_mean = 3e5, .unreg_sd = 1e5, .group = 0 },
 *                         { .closed = 4e5, .group = 1 } };
 *   mc_input in = { .n_deals = n, .p_win = pw, .p_close = pc, .amount = amt,
 *                   .segment = seg_of_deal, .partner = partner_of_deal,
 *                   .n_segments = 2, .segments = seg,
 *                   .global_sd = 0.25, .n_groups = 2, .group_sd = gsd,
 *                   .n_partners = np, .quota = quota };
 *   mc_options o;
 *   mc_options_init(&o);               // 10,000 sims, seed 1
 *   mc_result r;
 *   if (mc_run(&in, &o, &r, &err) != 0) ... err.msg ...
 *   ... r.total_sum.p10, r.seg_sum[k].p50, r.partner[j].p_attain ...
 *   mc_result_free(&r);
 *
 * The model simulated (exactly, not approximated):
 * - Deal i counts in simulation s with probability
 *       q_is = p_close[i] * sigmoid(logit(p_win[i]) + g_s + h_{s,grp(seg i)})
 *   where g_s ~ N(0, global_sd^2) is the period's shared effect and h ~
 *   N(0, group_sd[k]^2) a further effect per shift group (a set of
 *   segments; group -1: the global effect only). Given the effects, deals
 *   are independent. The effects move the win odds only; close timing is
 *   independent of them.
 * - A deal that counts brings amount[i] * M, M drawn from its multiplier
 *   distribution mults[mult[i]] (a discrete distribution, e.g. the observed
 *   final/stated amount ratios of won deals at its stage), independently
 *   per simulation; mult NULL or -1: M = 1.
 * - Segment k adds closed (a constant) and a not-yet-registered draw:
 *   lognormal or normal with the given mean and sd, or one of the given
 *   samples (e.g. ts-core paths), each on a normal score correlated unreg_rho
 *   with the global effect (samples: the score's quantile picks the sample).
 * - Every simulation is summed: seg draws per segment, total = their sum,
 *   partner totals = partner_closed + that partner's deals, all the same
 *   draws. Quantiles are R type 7 (linear between order statistics).
 *
 * Determinism: the same input and seed give bit-identical results. Each
 * deal has its own stream, seeded from (seed, key[i]) (key NULL: the deal's
 * index), so a deal's draws do not depend on the other deals or their order.
 * Probabilities are resolved to 2^-53 (the comparison uses doubles); the
 * multiplier weights to 2^-32 (alias table thresholds).
 */
#ifndef PRM_MC_H
#define PRM_MC_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

#define MC_MAX_SIMS 1000000

/* A discrete distribution: n values with weights (NULL = equal weights). */
typedef struct mc_dist {
    size_t n;
    const double *value;
    const double *weight;
} mc_dist;

typedef enum mc_unreg_kind {
    MC_UNREG_NONE = 0,
    MC_UNREG_LOGNORMAL = 1,   /* matched mean and sd; needs mean > 0 */
    MC_UNREG_NORMAL = 2,      /* mean + sd * z; may go below 0 */
    MC_UNREG_SAMPLES = 3      /* the sample at the score's quantile */
} mc_unreg_kind;

typedef struct mc_segment {
    double closed;            /* won inside the period up to the as-of date */
    mc_unreg_kind unreg;
    double unreg_mean, unreg_sd;
    const double *unreg_samples;
    size_t n_unreg_samples;
    int group;                /* shift group, -1 = the global effect only */
} mc_segment;

typedef struct mc_input {
    size_t n_deals;
    const double *p_win;      /* in [0, 1] */
    const double *p_close;    /* P(close inside the period | win); NULL = 1 */
    const double *amount;     /* base currency, >= 0 */
    const int32_t *segment;   /* 0 .. n_segments-1 */
    const int32_t *partner;   /* 0 .. n_partners-1, -1 = none; NULL = none */
    const int32_t *mult;      /* 0 .. n_mults-1, -1 = none; NULL = none */
    const uint64_t *key;      /* stream key per deal (e.g. the deal id); NULL = index */
    size_t n_mults;
    const mc_dist *mults;
    size_t n_segments;
    const mc_segment *segments;
    double global_sd;         /* sd of the shared logit effect, 0..20 */
    size_t n_groups;
    const double *group_sd;   /* n_groups sds of the per-group effects, 0..20 */
    double unreg_rho;         /* correlation of unregistered with g, in [-1, 1] */
    size_t n_partners;
    const double *partner_closed; /* NULL = 0 */
    const double *quota;      /* NULL, or <= 0 / NaN = no quota */
} mc_input;

typedef struct mc_options {
    int n_sims;               /* 1 .. MC_MAX_SIMS (10000) */
    uint64_t seed;            /* (1) */
    int covariance;           /* 1: a second pass for each deal's covariance
                                 with the total and its segment (about 2x time) */
    int keep_partner_draws;   /* 1: keep n_partners x n_sims partner totals */
    int partner_quantiles;    /* 1: P10/P50/P90 per partner (NaN otherwise);
                                 about 0.15 s per 1,000 partners at 10k sims */
} mc_options;

typedef struct mc_summary {
    double mean, sd, p10, p50, p90;
    double closed, pipeline, unregistered;   /* the mean split into its parts */
} mc_summary;

typedef struct mc_partner {
    double mean, sd, p10, p50, p90;          /* closed + simulated deals; quantiles
                                                only with options.partner_quantiles */
    double closed, quota;                    /* quota NaN when none */
    double expected_attainment;              /* mean / quota */
    double p_attain;                         /* share of sims with total >= quota */
    size_t n_deals;
} mc_partner;

typedef struct mc_result {
    int n_sims;
    size_t n_segments, n_deals, n_partners;
    double *total;            /* n_sims draws of the total */
    double *seg;              /* n_segments * n_sims: row k = segment k */
    double *shift;            /* n_sims draws of the global effect g_s */
    mc_summary total_sum;
    mc_summary *seg_sum;      /* n_segments */
    /* Driver attribution, per deal in input order: the mean and variance of
     * its contribution; cov_total / cov_segment with the total and its own
     * segment (NaN unless options.covariance). Sum of cov_total over deals
     * plus the non-deal parts' covariance is Var(total), so cov_total /
     * Var(total) is the deal's share of the spread. */
    double *deal_mean, *deal_var, *deal_cov_total, *deal_cov_segment;
    mc_partner *partner;      /* n_partners */
    double *partner_draws;    /* n_partners * n_sims, or NULL */
    /* Work counters (for the benchmark): deal-words visited, wins, and
     * exact probability evaluations in the correction step. */
    uint64_t n_words, n_wins, n_exact;
} mc_result;

void mc_options_init(mc_options *o);

/* Runs the simulation. Errors name the offending deal, segment or partner:
 * a probability outside [0, 1] or NaN, a negative or non-finite amount, an
 * index out of range, an empty or negative-weighted multiplier distribution,
 * a lognormal with mean <= 0, n_sims out of range. *out needs no freeing on
 * failure. */
int mc_run(const mc_input *in, const mc_options *opt, mc_result *out, prm_error *err);
void mc_result_free(mc_result *r);

/* Summary of n draws (a roll-up of several segment rows, say); scratch holds
 * n doubles (NULL: allocated). closed/pipeline/unregistered are set to NaN. */
int mc_summarise(const double *draws, int n, double *scratch, mc_summary *s, prm_error *err);
/* The R type-7 quantile of x[0..n) (reorders x). */
double mc_quantile(double *x, size_t n, double q);

/* ---- the period effect: how much a whole period runs above or below the
 * model, estimated from past periods (method of moments, shrunk) ---- */

/* One past period and shift group: the model's predicted mean of the period's
 * revenue, its variance with deals independent (no shared effect), its
 * sensitivity to a logit shift (d mean / d shift at 0), and the actual. */
typedef struct mc_period_obs {
    int period;               /* any integer id; rows of one period share it */
    int group;                /* 0 .. n_groups-1 */
    double predicted, var_indep, sensitivity, actual;
} mc_period_obs;

/* The three moments of a set of deals for mc_period_obs: mean, independent
 * variance and sensitivity, with amount multipliers of mean m1 and second
 * moment m2 (1, 1 for none; mult NULL). */
void mc_period_moments(const double *p_win, const double *p_close, const double *amount,
                       const double *mult_m1, const double *mult_m2, size_t n,
                       double *mean, double *var_indep, double *sensitivity);

typedef struct mc_effect {
    double global_var;        /* -> global_sd = sqrt */
    double global_bias;       /* the D-weighted mean shift, sum r D / sum D^2 */
    double global_var_centred;   /* global_var with the moments about that shift (r - bias D):
                                    the spread left for a forecast that moves its mean by it */
    int n_periods;
    double *group_var;        /* n_groups, shrunk; free() it */
    int *group_periods;       /* periods seen per group; free() it */
} mc_effect;

/* Estimates the between-period variances: with r = actual - predicted,
 * E[r_t^2] = D_t^2 tg + sum_k D_tk^2 tk + v_t for a period's total and
 * E[r_tk^2] = D_tk^2 (tg + tk) + v_tk per group; each moment equation is
 * solved D^2-weighted, floored at 0, and the group variances are shrunk
 * toward their pooled value with prior_periods pseudo-periods (<= 0: 4).
 * Needs at least 2 periods. Free the arrays with mc_effect_free. */
int mc_effect_estimate(const mc_period_obs *obs, size_t n, size_t n_groups,
                       double prior_periods, mc_effect *out, prm_error *err);
void mc_effect_free(mc_effect *e);

/* ---- close timing (mc_timing.c): when deals really close relative to the
 * date stated at a snapshot ----
 *
 * Training rows are snapshots of deals that went on to win (slip observed)
 * or were still open at the cut-off (censored, weighted by the chance they
 * win: `weight`): slip = actual close day -
 * stated close day at the snapshot, entry = snapshot day - stated close day
 * (the deal was open at the snapshot, so slip >= entry: delayed entry).
 * The slip is binned (bin_days wide from slip_min; the last bin is
 * "slip_max or later") and a discrete hazard is fitted per cell, shrunk
 * down the hierarchy
 *     all rows -> context (stage, age bucket, slips so far)
 *              -> tier x context -> partner x context
 * as h = (events + m h_parent) / (at risk + m), m = prior. */
typedef struct mc_timing_row {
    int32_t stage, age_bucket, n_slips;   /* >= 0 */
    int32_t tier, partner;                /* >= 0, or -1 unknown */
    int32_t slip;                         /* days; the last seen when censored */
    int32_t entry;                        /* days; INT32_MIN = no delayed entry */
    int32_t censored;                     /* 1: slip > this value only */
    double weight;                        /* the row's count, > 0 (0 counts as 1, so a zeroed
                                             row is a plain row; leave out a row that should
                                             not count): a censored row of a deal that may yet
                                             lose is weighted by its P(win), since the slip
                                             modelled is that of a win */
} mc_timing_row;

typedef struct mc_timing_params {
    int32_t slip_min, slip_max;   /* (-28, 364) */
    int32_t bin_days;             /* (7) */
    double prior;                 /* pseudo at-risk count per level (20) */
} mc_timing_params;

typedef struct mc_timing mc_timing;

void mc_timing_params_init(mc_timing_params *p);
int mc_timing_fit(const mc_timing_row *rows, size_t n, const mc_timing_params *p,
                  mc_timing **out, prm_error *err);
void mc_timing_free(mc_timing *t);
int mc_timing_n_bins(const mc_timing *t);
/* The slip distribution of a snapshot described by q (slip, entry and
 * censored are ignored), from the deepest level with data: pmf[0..n_bins),
 * bin b covers days [slip_min + b*bin_days, +bin_days), the last bin the
 * rest. *level (may be NULL): 0 all, 1 context, 2 tier, 3 partner. */
int mc_timing_pmf(const mc_timing *t, const mc_timing_row *q, double *pmf, int *level,
                  prm_error *err);
/* P(lo <= slip < hi | slip >= entry), days relative to the stated close
 * date; hi = INT32_MAX includes the last bin. Days inside a bin share its
 * mass evenly. Returns NaN when the entry is past every bin with mass. */
double mc_timing_p_window(const mc_timing *t, const mc_timing_row *q, int32_t lo, int32_t hi,
                          int32_t entry);

#endif
