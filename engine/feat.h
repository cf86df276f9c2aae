/* feat.h - point-in-time deal features from the store, for training and
 * scoring the deal models (model.h).
 *
 * Everything is computed "as of" an instant D from what the store had
 * observed by D: a deal's stage, amount, close date, status and partner
 * probability come from its deal_history rows observed at or before D;
 * partner win rates, commit accuracy, FX rates and signals use only rows
 * dated at or before D. Attributes without history (product, budget,
 * competitor, completeness, partner tier) are taken as registration-time
 * facts. Training rows are snapshots of deals during their lives (one per
 * snapshot date while the deal was open), never their final state, labelled
 * with the outcome observed by the label cutoff.
 */
#ifndef PRM_FEAT_H
#define PRM_FEAT_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "model.h"

struct store;
typedef struct feat_world feat_world;

/* Loads deals, history, partners, FX, signals and commits once. */
int feat_load(struct store *s, feat_world **out, prm_error *err);
void feat_free(feat_world *w);
/* The latest observation instant in the store (seconds), for defaults. */
int64_t feat_last_observed(const feat_world *w);
size_t feat_n_deals(const feat_world *w);
/* The store's fiscal year start month (settings.fiscal_start_month). */
int feat_fiscal_start(const feat_world *w);

enum { FEAT_STAGES = 5 };

/* One row per (deal, snapshot). Columns are owned by the set. */
typedef struct feat_set {
    size_t n;
    model_data data;           /* columns in data.cols, names below */
    double *label;             /* 1 won, 0 lost; NaN when unknown (scoring) */
    size_t *deal;              /* index into the world's deals */
    int64_t *at;               /* snapshot instant (seconds) */
    /* storage */
    model_column *cols;
    double **num;
    int32_t **cat;
    size_t cap;
} feat_set;

/* Training/evaluation rows: for each snapshot instant in [from, to) every
 * `step_days`, every deal open at the snapshot whose outcome was observed
 * before `label_cutoff`. */
int feat_snapshots(const feat_world *w, int64_t from, int64_t to, int step_days,
                   int64_t label_cutoff, feat_set *out, prm_error *err);
/* Scoring rows: every deal open at `at`. The partner statistics of `at`
 * stay in the world for feat_view. */
int feat_open(feat_world *w, int64_t at, feat_set *out, prm_error *err);
void feat_set_free(feat_set *fs);

/* The deal's identity and derived facts at a snapshot, for rules and
 * explanations. Strings point into the world. */
typedef struct feat_deal_view {
    const char *external_id, *partner_id, *tier, *partner_type, *region, *account,
        *contact_name, *contact_email, *product_family, *stage, *status, *currency,
        *competitor, *notes;
    double amount, amount_usd, partner_probability, completeness;
    int budget_confirmed;                 /* 1, 0, -1 unknown */
    char created_at[11], expected_close[11], stage_changed_at[21], updated_at[21];
    int has_close;
    int age_days, days_in_stage, close_date_slips, days_slipped, stage_regressions;
    int stage_index;                      /* 0..4 while open */
    double partner_win_rate, partner_median_amount, tier_median_amount;
} feat_deal_view;

void feat_view(const feat_world *w, size_t deal, int64_t at, feat_deal_view *v);
/* The stage medians the last feat_open used (for the rules' context). */
const double *feat_open_medians(const feat_world *w);
/* Median days spent in each open stage, over stage spells completed before `at`. */
void feat_stage_medians(const feat_world *w, int64_t at, double med[FEAT_STAGES]);
const char *feat_deal_external_id(const feat_world *w, size_t deal);
const char *feat_deal_source(const feat_world *w, size_t deal);
int64_t feat_deal_rowid(const feat_world *w, size_t deal);
const char *feat_stage_name(int i);

#endif
