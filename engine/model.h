/* model.h - deal-scoring models: logistic regression, gradient-boosted trees,
 * a grouped base-rate model, probability calibration and driver attribution.
 *
 * Part of the numeric core: plain arrays and structs in, status out; no Lua,
 * no SQLite. The store-side feature code builds a model_data (column-major,
 * one entry per column) and calls model_fit / model_predict / model_explain;
 * the registry stores what model_save returns and gives it back to model_load.
 *
 *   model_column cols[2] = {
 *       { .name = "amount", .type = MODEL_NUMERIC, .num = amount },
 *       { .name = "tier", .type = MODEL_CATEGORICAL, .cat = tier_codes,
 *         .vocab = tier_names, .n_vocab = 3 },
 *   };
 *   model_data d = { .n_rows = n, .n_cols = 2, .cols = cols };
 *   model_params p;
 *   model_params_init(&p, MODEL_GBDT);
 *   model *m;
 *   if (model_fit(MODEL_GBDT, &d, won, &p, &m, &err) < 0) ...
 *   model_predict(m, &d, prob, &err);
 *
 * Conventions shared by every kind:
 * - y holds 0 or 1, or an expected outcome in between (a censored row's
 *   P(win), feat.h); anything outside [0, 1] is an error naming the row.
 * - Numeric columns: NaN is a missing value. Categorical columns: codes index
 *   the column's own vocab; a negative code is missing. Vocabularies are
 *   matched by string, so the data given to predict may use other codes (or
 *   a bigger vocabulary) than the training data: the store maps names, not
 *   numbers. A label not seen in training is "unseen" (logistic: all of the
 *   column's indicators are zero; trees: the missing branch; base rate: the
 *   parent group's rate).
 * - predict / explain find columns by name; extra columns are ignored, a
 *   missing one or one of the wrong type is an error.
 * - Fitting is deterministic: no randomness, sums in a fixed order, so the
 *   same data and params give bit-identical parameters. The row order of the
 *   training data matters to gbdt only: its early-stopping validation slice
 *   is the LAST validation_fraction of the rows, so pass rows in time order.
 * - Contributions and base values are on the logit (log-odds) scale of the
 *   uncalibrated model; base + sum of all contributions = logit(raw p).
 */
#ifndef PRM_MODEL_H
#define PRM_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

typedef enum model_kind {
    MODEL_LOGISTIC = 0,   /* L2 logistic regression, Newton (IRLS) */
    MODEL_GBDT     = 1,   /* histogram gradient-boosted trees, leaf-wise */
    MODEL_BASERATE = 2    /* beta-binomial shrunk rates over 1-2 keys */
} model_kind;

typedef enum model_col_type {
    MODEL_NUMERIC = 0,
    MODEL_CATEGORICAL = 1
} model_col_type;

typedef struct model_column {
    const char *name;
    model_col_type type;
    const double *num;          /* MODEL_NUMERIC: n_rows values, NaN = missing */
    const int32_t *cat;         /* MODEL_CATEGORICAL: n_rows codes, <0 = missing */
    const char *const *vocab;   /* MODEL_CATEGORICAL: label of each code */
    size_t n_vocab;
} model_column;

typedef struct model_data {
    size_t n_rows;
    size_t n_cols;
    const model_column *cols;
} model_data;

/* Parameters of every kind in one struct; each kind reads its own fields.
 * model_params_init sets the defaults for a kind, model_params_set changes one
 * by name (what the Lua binding uses; an unknown or foreign key is an error
 * naming it). The defaults follow scikit-learn's so the benchmark compares
 * like with like. */
typedef struct model_params {
    model_kind kind;
    /* logistic: penalty l2/2 * |w|^2 added to the summed log loss, i.e.
     * l2 = 1/C in scikit-learn's LogisticRegression; the intercept is not
     * penalised. Features are standardised (numeric) or one-hot (categorical)
     * first, with a missing indicator for numeric columns that had NaNs. */
    double l2;                  /* 1.0 */
    int max_iter;               /* logistic: Newton steps (100); gbdt: trees (100) */
    double tol;                 /* logistic: max |gradient| (1e-8 * n);
                                   gbdt: early-stop improvement (1e-7) */
    /* gbdt */
    double learning_rate;       /* 0.1 */
    int max_leaf_nodes;         /* 31 */
    int max_depth;              /* 0 = unlimited */
    int min_samples_leaf;       /* 20 */
    double l2_leaf;             /* l2 on leaf values (0) */
    int max_bins;               /* numeric bins per feature, 2..255 (255) */
    int early_stopping;         /* -1 auto (on when n > 10000), 0 off, 1 on */
    double validation_fraction; /* last share of rows held out (0.1) */
    int n_iter_no_change;       /* 10 */
    int refit;                  /* 1: after early stopping, boost the chosen
                                   number of trees again on all rows (1) */
    /* baserate */
    double prior_strength;      /* pseudo-count m per level; <= 0: estimate by
                                   beta-binomial method of moments (0) */
} model_params;

void model_params_init(model_params *p, model_kind kind);
int model_params_set(model_params *p, const char *key, double value, prm_error *err);
/* The parameter names of a kind, NULL-terminated (for help and docs). */
const char *const *model_params_names(model_kind kind);

/* "logistic" / "gbdt" / "baserate" and back; model_kind_parse returns -1 for
 * an unknown name. */
const char *model_kind_name(model_kind kind);
int model_kind_parse(const char *name);

typedef struct model model;

/* Fits a model. Errors: no rows, no columns, y outside [0, 1], a single class,
 * duplicate column names, a column without its data, a code outside its
 * vocabulary; baserate also wants one or two categorical columns only (the
 * first is the outer key). *out is NULL after an error. */
int model_fit(model_kind kind, const model_data *d, const double *y,
              const model_params *p, model **out, prm_error *err);
void model_free(model *m);

/* Writes d->n_rows probabilities (calibrated when a calibrator is attached). */
int model_predict(const model *m, const model_data *d, double *p_out, prm_error *err);
/* Same, without the calibrator, as log-odds. */
int model_predict_logit(const model *m, const model_data *d, double *z_out, prm_error *err);

/* One input column's contribution to one row's log-odds. Linear model: exact,
 * w.(x - training mean) summed over the column's terms. Trees: Saabas path
 * attribution (change of the node value along the row's path). Base rate: the
 * change in logit from the parent group's rate to the group's. */
typedef struct model_driver {
    const char *feature;   /* points into the model: valid until model_free */
    double contribution;   /* log-odds */
    double value;          /* numeric input value (NaN if missing or categorical) */
    const char *level;     /* categorical label from the input, NULL otherwise */
} model_driver;

/* Fills out[0..k) with the drivers of d's row `row`, sorted by |contribution|
 * descending (ties by feature order), k = min(max, model_n_features(m)), and
 * *base (may be NULL) with the base value. Returns k, or -1 on error. */
int model_explain(const model *m, const model_data *d, size_t row,
                  model_driver *out, size_t max, double *base, prm_error *err);

/* model_explain for many rows of the same d: the columns are matched to
 * the model's features (names, types, level maps) once at open, not once
 * per row. d must outlive the explainer. Row results as model_explain. */
typedef struct model_explainer model_explainer;
int model_explainer_open(const model *m, const model_data *d, model_explainer **out, prm_error *err);
int model_explainer_row(model_explainer *x, size_t row, model_driver *out, size_t max, double *base,
                        prm_error *err);
void model_explainer_free(model_explainer *x);

/* Introspection. */
model_kind model_get_kind(const model *m);
size_t model_n_features(const model *m);
const char *model_feature_name(const model *m, size_t j);
model_col_type model_feature_type(const model *m, size_t j);
/* gbdt: trees in the model (after early stopping / refit); logistic: Newton steps; baserate: 0. */
int model_n_iter(const model *m);
/* Logistic only: the fitted terms, in the engine's design order (per input
 * column in the model's feature order: a numeric column gives "name" on the
 * standardised scale then "name=missing" when it had NaNs; a categorical one
 * gives "name=label" per training label, labels sorted bytewise). Pointers
 * stay valid until model_free. */
int model_coefs(const model *m, double *intercept, const double **coef,
                const char *const **names, size_t *n_terms, prm_error *err);

/* Serialisation: a text format ("prmcast-model 1" first line, doubles as C99
 * hex floats so a round trip is exact). model_save allocates *buf (free() it);
 * *len excludes the terminating NUL it also writes. */
int model_save(const model *m, char **buf, size_t *len, prm_error *err);
int model_load(const char *buf, size_t len, model **out, prm_error *err);

/* Calibration: a monotone map from raw probability to probability, fitted on
 * held-out (later) data. Isotonic: pool-adjacent-violators, interpolated
 * linearly between block means and clipped at the ends (as scikit-learn's
 * IsotonicRegression with out_of_bounds="clip"). Platt: sigmoid(a*logit(p)+b). */
typedef enum model_calib_kind {
    MODEL_CALIB_NONE = 0,
    MODEL_CALIB_ISOTONIC = 1,
    MODEL_CALIB_PLATT = 2
} model_calib_kind;

typedef struct model_calib model_calib;

int model_calib_fit(model_calib_kind kind, const double *p, const double *y, size_t n,
                    model_calib **out, prm_error *err);
double model_calib_apply(const model_calib *c, double p);
void model_calib_free(model_calib *c);
/* The knots of an isotonic map (x ascending, y non-decreasing); 0 for Platt. */
size_t model_calib_knots(const model_calib *c, const double **x, const double **y);

/* Fits a calibrator of `kind` on the model's raw predictions for (d, y) and
 * attaches it (replacing any previous one; MODEL_CALIB_NONE removes it). It
 * is saved with the model and applied by model_predict. */
int model_calibrate(model *m, const model_data *d, const double *y,
                    model_calib_kind kind, prm_error *err);
model_calib_kind model_calib_get_kind(const model *m);

/* Anchoring to a calibrated level: moves each group's probabilities by one
 * logit offset c_g so that their mean equals the mean of `target` over the
 * group (a probability known to be calibrated for that group, e.g. the win
 * hazard's P(win) of a stage x age stratum as of the scoring date), keeping
 * the order and spread inside the group. c_g is shrunk toward the offset
 * of all rows, (n_g c_g + prior c_all) / (n_g + prior), so a small group
 * moves with the rest. Rows with group < 0 or a NaN p or target are left
 * as they are and not counted. p in (0, 1) in place; group in
 * 0 .. n_groups-1. */
int model_anchor(double *p, const int32_t *group, const double *target, size_t n, int n_groups,
                 double prior, prm_error *err);
/* Recalibration on outcomes: per group, the logit offset c_g that makes the
 * weighted rows' sum_g w sigmoid(logit(p) + c_g) equal sum_g w y (y in
 * [0, 1], e.g. past periods' P(close inside the period) against whether
 * each won deal did), shrunk as model_anchor's toward all rows' offset,
 * (W_g c_g + prior c_all) / (W_g + prior) with W_g the group's weight.
 * Rows with group < 0, w = 0 or p outside (0, 1) are not counted; a group
 * with none gets c_all (0 without any row). offset[n_groups] out. */
int model_logit_offsets(const double *p, const double *y, const double *w, const int32_t *group, size_t n,
                        int n_groups, double prior, double *offset, prm_error *err);

/* ---- Win hazard (model_hazard.c): P(win) of a deal still open, from a
 * discrete-time competing-risks life table, so that censored deals count.
 *
 * A row is a deal followed from a landmark (a snapshot while it was open):
 * `days` from the landmark to its outcome, or to the cutoff when it was
 * still open then (censored: at risk for the days it was seen, no event).
 * Time since the landmark is cut into n_bins bins of bin_days plus an
 * open-ended tail; inside a bin the win and loss rates are constant (events
 * over exposure, exposure counted up to the event or censoring), so
 *     P(win) = sum_k S_k * lw_k/(lw_k+ll_k) * (1 - exp(-(lw_k+ll_k)))
 *            + S_end * lw_tail/(lw_tail+ll_tail),
 * S_k the probability of still being open at bin k's start. Rates of a
 * stratum are shrunk toward its parent's, the parent's toward all rows':
 * rate = (events + prior * parent rate) / (exposure + prior), exposure in
 * bins. A bin (or the tail) nobody was seen in takes the rates of the last
 * bin that had exposure: a young program's long-lived deals resolve as its
 * oldest observed ones did, neither all lost nor all won. */
typedef struct model_hazard_row {
    int32_t stratum;       /* 0 .. n_strata-1 */
    double days;           /* landmark to outcome or cutoff, >= 0 */
    int event;             /* 0 still open at the cutoff, 1 won, 2 lost */
} model_hazard_row;

typedef struct model_hazard_params {
    int n_bins;            /* 12 */
    double bin_days;       /* 30 */
    double prior;          /* pseudo-exposure of the parent, in bins: 20 */
} model_hazard_params;

typedef struct model_hazard model_hazard;

void model_hazard_params_init(model_hazard_params *p);
/* parent[s] in 0 .. n_parents-1 names stratum s's parent. Errors: no rows
 * with an event, a stratum or parent out of range, a negative duration. */
int model_hazard_fit(const model_hazard_row *rows, size_t n, int n_strata, const int32_t *parent,
                     int n_parents, const model_hazard_params *p, model_hazard **out, prm_error *err);
/* P(win) of a deal of the stratum seen open at a landmark (s < 0: the
 * pooled rates). */
double model_hazard_p_win(const model_hazard *h, int32_t stratum);
void model_hazard_free(model_hazard *h);

#endif
