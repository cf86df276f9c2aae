/* feat.h - point-in-time deal features over a world (world.h), for
 * training and scoring the deal models (model.h).
 *
 * Everything is computed "as of" an instant D from what the world says was
 * known at D (its rules of time): the deal's state and attributes, the
 * partner's tier, type and region at D, partner win rates, commit
 * accuracy, FX rates and signals from rows dated at or before D. Training rows are snapshots of deals during their lives (one per
 * snapshot date while the deal was open), never their final state, labelled
 * with the outcome observed by the label cutoff.
 */
#ifndef PRM_FEAT_H
#define PRM_FEAT_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "model.h"

#include "world.h"

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
 * `step_days`, every deal open at the snapshot whose label is observed by
 * `label_cutoff`. With `horizon_days` > 0 the label is "won within
 * horizon_days of the snapshot" and a row exists only when the horizon ended
 * by the cutoff, so every row's label is fully observed (no censoring: a
 * long-lived deal still open at the cutoff is a row labelled not won); with
 * 0 the label is the final outcome and only deals resolved before the
 * cutoff are rows (censored: slow outcomes are under-represented). */
int feat_snapshots(const world *w, int64_t from, int64_t to, int step_days,
                   int64_t label_cutoff, int horizon_days, feat_set *out, prm_error *err);
/* Scoring rows: every deal open at `at`. The partner statistics of `at`
 * stay in the world for feat_view. */
int feat_open(world *w, int64_t at, feat_set *out, prm_error *err);
/* The scoring row of one deal open at `at`. */
int feat_one(world *w, size_t deal, int64_t at, feat_set *out, prm_error *err);
void feat_set_free(feat_set *fs);

/* Partner statistics and stage medians as of `at` (feat_open does it;
 * feat_view uses the last prepared instant). */
int feat_prepare(world *w, int64_t at, prm_error *err);
/* The deal view (world_view) plus the partner statistics of the last
 * prepared instant when it is `at`. */
void feat_view(const world *w, size_t deal, int64_t at, deal_view *v);
/* The stage medians of the last prepared instant (NULL before one). */
const double *feat_medians(const world *w);
/* Median days spent in each open stage, over stage spells completed before `at`. */
void feat_stage_medians(const world *w, int64_t at, double med[FEAT_STAGES]);
const char *feat_stage_name(int i);

#endif
