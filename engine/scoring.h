/* scoring.h - deal scoring end to end: training with time-honest splits and
 * a model registry in the store, scoring of open deals with drivers and
 * risk flags, and one deal's explanation.
 *
 * Training (scoring_train): as of T, the evaluation window is the newest
 * complete quarter before T; training snapshots cover `train_quarters`
 * before it, split in time into a fit part and a calibration part (the last
 * `calib_share` of the window). Fit rows only carry labels observed before
 * the calibration part starts, calibration rows before the evaluation
 * window, evaluation rows before T: no model sees an outcome from its own
 * future. Candidates (logistic, gbdt, and the tier x stage base-rate model)
 * are each fitted, isotonic-calibrated and scored on the evaluation window;
 * all are registered and the best by held-out log loss becomes active. Below
 * COLD_START_DEALS closed deals in the fit window only the base-rate model
 * is trained.
 */
#ifndef PRM_SCORING_H
#define PRM_SCORING_H

#include <stdint.h>
#include <stdio.h>

#include "error.h"
#include "feat.h"

struct store;

/* Closed deals needed in the fit window before the statistical models are
 * tried; below it the cold-start base-rate model is the only candidate.
 * Chosen from the benchmark: at ~300 closed deals logistic regression's
 * held-out log loss first beats the base rates on the sample program. */
#define COLD_START_DEALS 300

typedef struct train_opts {
    const char *as_of;         /* ISO date/instant; NULL: the last observation */
    int train_quarters;        /* 8 */
    int step_days;             /* snapshot spacing, 14 */
    double calib_share;        /* 0.2 */
    const char *kind;          /* "auto" (all candidates), or one kind */
    int activate;              /* 1: make the best active */
    /* 0: a best model worse (higher held-out log loss) than the active one
     * on the same evaluation window is registered but not activated. */
    int force_activate;
} train_opts;

#include "clsmetrics.h"

enum { TRAIN_REL_BINS = 10 };

typedef struct train_candidate {
    char kind[16];
    int64_t model_id;
    double auc, logloss, brier, ece;
    cls_bin rel[TRAIN_REL_BINS];   /* reliability on the evaluation window */
} train_candidate;

typedef struct train_result {
    char as_of[21], train_from[11], calib_from[11], eval_from[11], eval_to[11];
    size_t n_fit, n_calib, n_eval, closed_deals;
    int cold_start;
    train_candidate cand[3];
    int ncand, best;
    double partner_brier, partner_logloss, partner_auc;   /* the manual baseline */
    cls_bin partner_rel[TRAIN_REL_BINS];
    size_t partner_n;
    char data_hash[65];
    int activated;             /* the best was made active */
    int64_t kept_model_id;     /* > 0: the better active model kept */
    double kept_logloss;
} train_result;

void train_opts_init(train_opts *o);
int scoring_train(struct store *s, const train_opts *o, train_result *r, prm_error *err);

/* Risk flags for one deal: the rules engine (or NULL for none). Writes a
 * JSON array into out and returns how many flags fired, or -1. */
typedef int (*score_flags_fn)(void *ud, const feat_deal_view *v, const char *today,
                              const double stage_median[FEAT_STAGES], char *out, size_t cap);

/* The shipped risk-flag rules (the .lua files in rules/flags under the root,
 * with rules/config.lua overrides when present) as a score_flags_fn. */
void *scoring_rules_open(const char *root, prm_error *err);
int scoring_rules_flags(void *ud, const feat_deal_view *v, const char *today,
                        const double stage_median[FEAT_STAGES], char *out, size_t cap);
void scoring_rules_close(void *ud);

typedef struct score_opts {
    const char *as_of;         /* NULL: the last observation */
    int64_t model_id;          /* 0: the active model */
    score_flags_fn flags;
    void *flags_ud;
    int drivers;               /* drivers kept per deal (6: top 3 up, top 3 down) */
} score_opts;

typedef struct score_result {
    int64_t run_id, model_id;
    char as_of[21], model_kind[16];
    size_t deals, flagged;
    double mean_p, seconds_features, seconds_model, seconds_store;
} score_result;

void score_opts_init(score_opts *o);
int scoring_score(struct store *s, const score_opts *o, score_result *r, prm_error *err);

/* Prints one deal's latest score: probability, score, drivers, flags,
 * model and run; JSON when json is set. Returns 0, or -1 (unknown deal,
 * never scored). */
int scoring_explain(struct store *s, const char *deal, int json, FILE *out, prm_error *err);

#endif
