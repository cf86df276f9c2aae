/* model_int.h - what model.c shares with model_logit.c, model_gbdt.c and
 * model_base.c. Not a public header: callers use model.h.
 */
#ifndef PRM_MODEL_INT_H
#define PRM_MODEL_INT_H

#include "model.h"

#include <math.h>

#define GB_MISSING 255        /* the bin of a missing / unseen value */
#define GB_NBIN 256

/* One input column as the model knows it. */
typedef struct mfeature {
    char *name;
    model_col_type type;
    /* categorical: training labels, sorted bytewise */
    size_t n_levels;
    char **levels;
    /* numeric: training mean / sd of the non-missing values (logistic) */
    double mean, sd;
    int has_missing;
    /* gbdt numeric: bin b holds edges[b-1] < x <= edges[b] */
    size_t n_edges;
    double *edges;
    /* gbdt categorical: the bin of each level */
    uint8_t *level_bin;
} mfeature;

typedef struct gnode {
    int32_t left, right;      /* -1 on a leaf */
    int32_t feature;
    int32_t is_cat;
    int32_t thr;              /* numeric: bin <= thr goes left */
    int32_t missing_left;     /* numeric: where the missing bin goes */
    uint64_t cat_left[4];     /* categorical: bins that go left */
    double value;             /* the node's output: learning_rate * -G/(H+l2) */
} gnode;

typedef struct gtree {
    size_t n_nodes;
    gnode *nodes;
} gtree;

struct model_calib {
    model_calib_kind kind;
    size_t n;                 /* isotonic knots */
    double *x, *y;
    double a, b;              /* platt */
};

struct model {
    model_kind kind;
    model_params params;
    size_t nf;
    mfeature *f;
    int n_iter;
    model_calib *calib;
    /* logistic */
    size_t n_terms;
    double intercept;
    double *coef, *term_mean;
    char **term_names;
    size_t *term_start;       /* nf + 1: the terms of feature j */
    /* gbdt */
    double baseline;
    size_t n_trees;
    gtree *trees;
    /* baserate: rate1[l1]; rate2[l1 * n2 + l2] (NaN: no data, use rate1) */
    double p0, m1, m2;
    double *rate1, *rate2;
};

/* The input data resolved against a model's features: for feature j, the
 * numeric array or a map from input codes to model level (-1 unseen). */
typedef struct mview {
    const double *num;
    const int32_t *cat;
    int32_t *map;
    size_t n_vocab;
    const char *const *vocab;
} mview;

static inline int mview_level(const mview *v, size_t i)
{
    int32_t c = v->cat[i];
    if (c < 0 || (size_t)c >= v->n_vocab) return -1;
    return v->map[c];
}

int model_resolve(const model *m, const model_data *d, mview **out, prm_error *err);
void model_views_free(const model *m, mview *v);
void *model_xcalloc(size_t n, size_t size);
char *model_xstrdup(const char *s);

/* Per-kind entry points; m has its features set up by model.c. */
int logit_fit(model *m, const mview *v, size_t n, const double *y, prm_error *err);
void logit_predict(const model *m, const mview *v, size_t n, double *z);
void logit_explain(const model *m, const mview *v, size_t row, double *contrib, double *base);
void logit_free(model *m);

int gbdt_fit(model *m, const model_data *d, const mview *v, size_t n, const double *y,
             prm_error *err);
void gbdt_predict(const model *m, const mview *v, size_t n, double *z);
void gbdt_explain(const model *m, const mview *v, size_t row, double *contrib, double *base);
void gbdt_free(model *m);
/* 1 (default): features with few bins share joint histograms; 0 turns that
 * off. For the unit test, which checks that both grow the same trees. */
extern int gbdt_bundles;

int base_fit(model *m, const mview *v, size_t n, const double *y, prm_error *err);
void base_predict(const model *m, const mview *v, size_t n, double *z);
void base_explain(const model *m, const mview *v, size_t row, double *contrib, double *base);
void base_free(model *m);

static inline double model_sigmoid(double z)
{
    if (z >= 0) return 1.0 / (1.0 + exp(-z));
    double e = exp(z);
    return e / (1.0 + e);
}

static inline double model_logit(double p)
{
    if (p < 1e-15) p = 1e-15;
    if (p > 1 - 1e-15) p = 1 - 1e-15;
    return log(p / (1 - p));
}

#endif
