/* model.c - the model handle: parameters, input checks, matching input
 * columns to the model's features, dispatch to the kinds (model_logit.c,
 * model_gbdt.c, model_base.c), driver sorting, calibration and the text
 * serialisation. See model.h for the contract.
 */
#include "model_int.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void *model_xcalloc(size_t n, size_t size)
{
    return calloc(n ? n : 1, size ? size : 1);
}

char *model_xstrdup(const char *s)
{
    size_t n = strlen(s);
    char *c = malloc(n + 1);
    if (c) memcpy(c, s, n + 1);
    return c;
}

/* ---- parameters ---- */

static const char *const logistic_names[] = { "l2", "max_iter", "tol", NULL };
static const char *const gbdt_names[] = {
    "learning_rate", "max_iter", "max_leaf_nodes", "max_depth", "min_samples_leaf",
    "l2_leaf", "max_bins", "early_stopping", "validation_fraction",
    "n_iter_no_change", "refit", "tol", NULL
};
static const char *const base_names[] = { "prior_strength", NULL };

const char *const *model_params_names(model_kind kind)
{
    switch (kind) {
    case MODEL_LOGISTIC: return logistic_names;
    case MODEL_GBDT: return gbdt_names;
    default: return base_names;
    }
}

const char *model_kind_name(model_kind kind)
{
    switch (kind) {
    case MODEL_LOGISTIC: return "logistic";
    case MODEL_GBDT: return "gbdt";
    case MODEL_BASERATE: return "baserate";
    }
    return "?";
}

int model_kind_parse(const char *name)
{
    if (strcmp(name, "logistic") == 0) return MODEL_LOGISTIC;
    if (strcmp(name, "gbdt") == 0) return MODEL_GBDT;
    if (strcmp(name, "baserate") == 0) return MODEL_BASERATE;
    return -1;
}

void model_params_init(model_params *p, model_kind kind)
{
    memset(p, 0, sizeof *p);
    p->kind = kind;
    p->l2 = 1.0;
    p->max_iter = 100;
    p->tol = kind == MODEL_GBDT ? 1e-7 : 0;   /* logistic: 0 = 1e-8 * n */
    p->learning_rate = 0.1;
    p->max_leaf_nodes = 31;
    p->max_depth = 0;
    p->min_samples_leaf = 20;
    p->l2_leaf = 0;
    p->max_bins = 255;
    p->early_stopping = -1;
    p->validation_fraction = 0.1;
    p->n_iter_no_change = 10;
    p->refit = 1;
    p->prior_strength = 0;
}

static int is_int(double v) { return v == floor(v) && fabs(v) < 1e9; }

int model_params_set(model_params *p, const char *key, double v, prm_error *err)
{
    const char *const *names = model_params_names(p->kind);
    int known = 0;
    for (size_t i = 0; names[i]; i++)
        if (strcmp(names[i], key) == 0) known = 1;
    if (!known)
        return prm_error_set(err, "unknown parameter '%s' for model kind '%s'", key,
                             model_kind_name(p->kind));
    if (!isfinite(v))
        return prm_error_set(err, "parameter '%s' must be a finite number", key);
#define NEED(cond, what) \
    if (!(cond)) return prm_error_set(err, "parameter '%s' must be %s (got %g)", key, what, v)
    if (strcmp(key, "l2") == 0) { NEED(v >= 0, ">= 0"); p->l2 = v; }
    else if (strcmp(key, "max_iter") == 0) { NEED(is_int(v) && v >= 1, "an integer >= 1"); p->max_iter = (int)v; }
    else if (strcmp(key, "tol") == 0) { NEED(v >= 0, ">= 0"); p->tol = v; }
    else if (strcmp(key, "learning_rate") == 0) { NEED(v > 0 && v <= 1, "in (0, 1]"); p->learning_rate = v; }
    else if (strcmp(key, "max_leaf_nodes") == 0) { NEED(is_int(v) && v >= 2 && v <= 4096, "an integer in [2, 4096]"); p->max_leaf_nodes = (int)v; }
    else if (strcmp(key, "max_depth") == 0) { NEED(is_int(v) && v >= 0 && v <= 64, "an integer in [0, 64] (0: unlimited)"); p->max_depth = (int)v; }
    else if (strcmp(key, "min_samples_leaf") == 0) { NEED(is_int(v) && v >= 1, "an integer >= 1"); p->min_samples_leaf = (int)v; }
    else if (strcmp(key, "l2_leaf") == 0) { NEED(v >= 0, ">= 0"); p->l2_leaf = v; }
    else if (strcmp(key, "max_bins") == 0) { NEED(is_int(v) && v >= 2 && v <= 255, "an integer in [2, 255]"); p->max_bins = (int)v; }
    else if (strcmp(key, "early_stopping") == 0) { NEED(v == -1 || v == 0 || v == 1, "-1 (auto), 0 or 1"); p->early_stopping = (int)v; }
    else if (strcmp(key, "validation_fraction") == 0) { NEED(v > 0 && v < 1, "in (0, 1)"); p->validation_fraction = v; }
    else if (strcmp(key, "n_iter_no_change") == 0) { NEED(is_int(v) && v >= 1, "an integer >= 1"); p->n_iter_no_change = (int)v; }
    else if (strcmp(key, "refit") == 0) { NEED(v == 0 || v == 1, "0 or 1"); p->refit = (int)v; }
    else if (strcmp(key, "prior_strength") == 0) { NEED(v >= 0, ">= 0 (0: estimate)"); p->prior_strength = v; }
#undef NEED
    return 0;
}

/* ---- features and input resolution ---- */

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void features_free(mfeature *f, size_t nf)
{
    if (!f) return;
    for (size_t j = 0; j < nf; j++) {
        free(f[j].name);
        for (size_t l = 0; l < f[j].n_levels; l++) free(f[j].levels[l]);
        free(f[j].levels);
        free(f[j].edges);
        free(f[j].level_bin);
    }
    free(f);
}

void model_free(model *m)
{
    if (!m) return;
    logit_free(m);
    gbdt_free(m);
    base_free(m);
    model_calib_free(m->calib);
    features_free(m->f, m->nf);
    free(m);
}

static int check_data(const model_data *d, prm_error *err)
{
    if (!d || !d->cols) return prm_error_set(err, "no data");
    for (size_t j = 0; j < d->n_cols; j++) {
        const model_column *c = &d->cols[j];
        if (!c->name || !*c->name) return prm_error_set(err, "column %zu has no name", j + 1);
        if (c->type == MODEL_NUMERIC) {
            if (!c->num && d->n_rows) return prm_error_set(err, "numeric column '%s' has no values", c->name);
        } else if (c->type == MODEL_CATEGORICAL) {
            if (!c->cat && d->n_rows) return prm_error_set(err, "categorical column '%s' has no codes", c->name);
            if (c->n_vocab && !c->vocab) return prm_error_set(err, "categorical column '%s' has no vocabulary", c->name);
            for (size_t k = 0; k < c->n_vocab; k++)
                if (!c->vocab[k]) return prm_error_set(err, "categorical column '%s': label %zu is NULL", c->name, k);
        } else {
            return prm_error_set(err, "column '%s' has an unknown type", c->name);
        }
    }
    return 0;
}

static int check_train(const model_data *d, const double *y, prm_error *err)
{
    if (check_data(d, err) < 0) return -1;
    if (d->n_rows == 0) return prm_error_set(err, "no rows to fit");
    if (d->n_cols == 0) return prm_error_set(err, "no feature columns to fit");
    if (!y) return prm_error_set(err, "no y");
    size_t n1 = 0, n0 = 0;
    for (size_t i = 0; i < d->n_rows; i++) {
        if (!(y[i] >= 0 && y[i] <= 1))
            return prm_error_set(err, "y[%zu] is %g; y must be in [0, 1]", i + 1, y[i]);
        n1 += y[i] > 0;
        n0 += y[i] < 1;
    }
    if (n1 == 0 || n0 == 0)
        return prm_error_set(err, "y has a single class (%zu of %zu rows are 1); need both 0 and 1",
                             n1, d->n_rows);
    for (size_t j = 0; j < d->n_cols; j++) {
        for (size_t k = 0; k < j; k++)
            if (strcmp(d->cols[j].name, d->cols[k].name) == 0)
                return prm_error_set(err, "duplicate column '%s'", d->cols[j].name);
        const model_column *c = &d->cols[j];
        if (c->type == MODEL_CATEGORICAL)
            for (size_t i = 0; i < d->n_rows; i++)
                if (c->cat[i] >= 0 && (size_t)c->cat[i] >= c->n_vocab)
                    return prm_error_set(err, "column '%s' row %zu: code %d outside its vocabulary of %zu",
                                         c->name, i + 1, (int)c->cat[i], c->n_vocab);
        if (c->type == MODEL_NUMERIC)
            for (size_t i = 0; i < d->n_rows; i++)
                if (isinf(c->num[i]))
                    return prm_error_set(err, "column '%s' row %zu is infinite", c->name, i + 1);
    }
    return 0;
}

/* The model's features from the training data: names, the sorted labels
 * that occur, numeric mean / sd / missingness. */
static int features_init(model *m, const model_data *d, prm_error *err)
{
    m->nf = d->n_cols;
    m->f = model_xcalloc(m->nf, sizeof *m->f);
    if (!m->f) return prm_error_set(err, "out of memory");
    for (size_t j = 0; j < m->nf; j++) {
        const model_column *c = &d->cols[j];
        mfeature *f = &m->f[j];
        f->type = c->type;
        if (!(f->name = model_xstrdup(c->name))) return prm_error_set(err, "out of memory");
        if (c->type == MODEL_NUMERIC) {
            double s = 0, ss = 0;
            size_t k = 0;
            for (size_t i = 0; i < d->n_rows; i++) {
                double x = c->num[i];
                if (isnan(x)) { f->has_missing = 1; continue; }
                s += x;
                k++;
            }
            f->mean = k ? s / (double)k : 0;
            for (size_t i = 0; i < d->n_rows; i++)
                if (!isnan(c->num[i])) ss += (c->num[i] - f->mean) * (c->num[i] - f->mean);
            f->sd = k ? sqrt(ss / (double)k) : 0;
            if (!(f->sd > 1e-12 * (fabs(f->mean) + 1))) f->sd = 1;
        } else {
            char *used = model_xcalloc(c->n_vocab, 1);
            if (!used) return prm_error_set(err, "out of memory");
            for (size_t i = 0; i < d->n_rows; i++)
                if (c->cat[i] >= 0) used[c->cat[i]] = 1;
            size_t nl = 0;
            for (size_t k = 0; k < c->n_vocab; k++) nl += used[k] != 0;
            const char **tmp = model_xcalloc(nl, sizeof *tmp);
            if (!tmp) { free(used); return prm_error_set(err, "out of memory"); }
            nl = 0;
            for (size_t k = 0; k < c->n_vocab; k++)
                if (used[k]) tmp[nl++] = c->vocab[k];
            free(used);
            qsort(tmp, nl, sizeof *tmp, cmp_str);
            f->levels = model_xcalloc(nl, sizeof *f->levels);
            if (!f->levels) { free(tmp); return prm_error_set(err, "out of memory"); }
            for (size_t k = 0; k < nl; k++) {
                if (k && strcmp(tmp[k], tmp[k - 1]) == 0) continue;   /* duplicate labels */
                if (!(f->levels[f->n_levels] = model_xstrdup(tmp[k]))) {
                    free(tmp);
                    return prm_error_set(err, "out of memory");
                }
                f->n_levels++;
            }
            free(tmp);
        }
    }
    return 0;
}

void model_views_free(const model *m, mview *v)
{
    if (!v) return;
    for (size_t j = 0; j < m->nf; j++) free(v[j].map);
    free(v);
}

int model_resolve(const model *m, const model_data *d, mview **out, prm_error *err)
{
    *out = NULL;
    if (check_data(d, err) < 0) return -1;
    mview *v = model_xcalloc(m->nf, sizeof *v);
    if (!v) return prm_error_set(err, "out of memory");
    for (size_t j = 0; j < m->nf; j++) {
        const mfeature *f = &m->f[j];
        const model_column *c = NULL;
        for (size_t k = 0; k < d->n_cols && !c; k++)
            if (strcmp(d->cols[k].name, f->name) == 0) c = &d->cols[k];
        if (!c) {
            model_views_free(m, v);
            return prm_error_set(err, "missing column '%s'", f->name);
        }
        if (c->type != f->type) {
            model_views_free(m, v);
            return prm_error_set(err, "column '%s' must be %s", f->name,
                                 f->type == MODEL_NUMERIC ? "numeric" : "categorical");
        }
        if (c->type == MODEL_NUMERIC) {
            v[j].num = c->num;
            continue;
        }
        v[j].cat = c->cat;
        v[j].vocab = c->vocab;
        v[j].n_vocab = c->n_vocab;
        v[j].map = model_xcalloc(c->n_vocab, sizeof *v[j].map);
        if (!v[j].map) {
            model_views_free(m, v);
            return prm_error_set(err, "out of memory");
        }
        for (size_t k = 0; k < c->n_vocab; k++) {
            const char *key = c->vocab[k];
            char **hit = bsearch(&key, f->levels, f->n_levels, sizeof *f->levels, cmp_str);
            v[j].map[k] = hit ? (int32_t)(hit - f->levels) : -1;
        }
    }
    *out = v;
    return 0;
}

/* ---- fit / predict / explain ---- */

int model_fit(model_kind kind, const model_data *d, const double *y,
              const model_params *p, model **out, prm_error *err)
{
    *out = NULL;
    model_params defaults;
    if (!p) {
        model_params_init(&defaults, kind);
        p = &defaults;
    }
    if ((int)kind < MODEL_LOGISTIC || kind > MODEL_BASERATE)
        return prm_error_set(err, "model_fit: unknown model kind %d", (int)kind);
    if (p->kind != kind)
        return prm_error_set(err, "model_fit: params are for '%s', not '%s'",
                             model_kind_name(p->kind), model_kind_name(kind));
    if (check_train(d, y, err) < 0) return prm_error_prefix(err, "model_fit: ");
    if (kind == MODEL_BASERATE) {
        if (d->n_cols > 2)
            return prm_error_set(err, "model_fit: baserate takes one or two categorical keys, got %zu columns",
                                 d->n_cols);
        for (size_t j = 0; j < d->n_cols; j++)
            if (d->cols[j].type != MODEL_CATEGORICAL)
                return prm_error_set(err, "model_fit: baserate key '%s' must be categorical",
                                     d->cols[j].name);
    }
    model *m = model_xcalloc(1, sizeof *m);
    if (!m) return prm_error_set(err, "out of memory");
    m->kind = kind;
    m->params = *p;
    mview *v = NULL;
    int rc = features_init(m, d, err);
    if (rc == 0) rc = model_resolve(m, d, &v, err);
    if (rc == 0) {
        if (kind == MODEL_LOGISTIC) rc = logit_fit(m, v, d->n_rows, y, err);
        else if (kind == MODEL_GBDT) rc = gbdt_fit(m, d, v, d->n_rows, y, err);
        else rc = base_fit(m, v, d->n_rows, y, err);
    }
    model_views_free(m, v);
    if (rc < 0) {
        model_free(m);
        return prm_error_prefix(err, "model_fit %s: ", model_kind_name(kind));
    }
    *out = m;
    return 0;
}

int model_predict_logit(const model *m, const model_data *d, double *z, prm_error *err)
{
    mview *v;
    if (model_resolve(m, d, &v, err) < 0) return prm_error_prefix(err, "model_predict: ");
    if (m->kind == MODEL_LOGISTIC) logit_predict(m, v, d->n_rows, z);
    else if (m->kind == MODEL_GBDT) gbdt_predict(m, v, d->n_rows, z);
    else base_predict(m, v, d->n_rows, z);
    model_views_free(m, v);
    return 0;
}

int model_predict(const model *m, const model_data *d, double *p, prm_error *err)
{
    if (model_predict_logit(m, d, p, err) < 0) return -1;
    for (size_t i = 0; i < d->n_rows; i++) {
        p[i] = model_sigmoid(p[i]);
        if (m->calib) p[i] = model_calib_apply(m->calib, p[i]);
    }
    return 0;
}

static int cmp_driver(const void *a, const void *b)
{
    const model_driver *x = a, *y = b;
    double ax = fabs(x->contribution), ay = fabs(y->contribution);
    if (ax != ay) return ax > ay ? -1 : 1;
    return x->value < y->value ? -1 : x->value > y->value;   /* .value holds the feature index here */
}

struct model_explainer {
    const model *m;
    const model_data *d;
    mview *v;                  /* the columns resolved once for every row */
    double *c;
    model_driver *all;
};

void model_explainer_free(model_explainer *x)
{
    if (!x) return;
    model_views_free(x->m, x->v);
    free(x->c);
    free(x->all);
    free(x);
}

int model_explainer_open(const model *m, const model_data *d, model_explainer **out, prm_error *err)
{
    *out = NULL;
    model_explainer *x = model_xcalloc(1, sizeof *x);
    if (!x) return prm_error_set(err, "out of memory");
    x->m = m;
    x->d = d;
    if (model_resolve(m, d, &x->v, err) < 0) {
        free(x);
        return prm_error_prefix(err, "model_explain: ");
    }
    x->c = model_xcalloc(m->nf, sizeof *x->c);
    x->all = model_xcalloc(m->nf, sizeof *x->all);
    if (!x->c || !x->all) {
        model_explainer_free(x);
        return prm_error_set(err, "out of memory");
    }
    *out = x;
    return 0;
}

int model_explainer_row(model_explainer *x, size_t row, model_driver *out, size_t max, double *base,
                        prm_error *err)
{
    const model *m = x->m;
    const model_data *d = x->d;
    const mview *v = x->v;
    if (!d || row >= d->n_rows)
        return prm_error_set(err, "model_explain: row %zu out of range (%zu rows)", row + 1,
                             d ? d->n_rows : 0);
    double *c = x->c;
    model_driver *all = x->all;
    memset(c, 0, m->nf * sizeof *c);
    double b = 0;
    if (m->kind == MODEL_LOGISTIC) logit_explain(m, v, row, c, &b);
    else if (m->kind == MODEL_GBDT) gbdt_explain(m, v, row, c, &b);
    else base_explain(m, v, row, c, &b);
    for (size_t j = 0; j < m->nf; j++) {
        all[j].feature = m->f[j].name;
        all[j].contribution = c[j];
        all[j].value = (double)j;
        all[j].level = NULL;
    }
    qsort(all, m->nf, sizeof *all, cmp_driver);
    size_t k = max < m->nf ? max : m->nf;
    for (size_t i = 0; i < k; i++) {
        size_t j = (size_t)all[i].value;
        out[i] = all[i];
        out[i].value = NAN;
        out[i].level = NULL;
        if (m->f[j].type == MODEL_NUMERIC) {
            out[i].value = v[j].num[row];
        } else {
            int32_t code = v[j].cat[row];
            if (code >= 0 && (size_t)code < v[j].n_vocab) out[i].level = v[j].vocab[code];
        }
    }
    if (base) *base = b;
    return (int)k;
}

int model_explain(const model *m, const model_data *d, size_t row,
                  model_driver *out, size_t max, double *base, prm_error *err)
{
    if (!d || row >= d->n_rows)
        return prm_error_set(err, "model_explain: row %zu out of range (%zu rows)", row + 1,
                             d ? d->n_rows : 0);
    model_explainer *x;
    if (model_explainer_open(m, d, &x, err) < 0) return -1;
    int k = model_explainer_row(x, row, out, max, base, err);
    model_explainer_free(x);
    return k;
}

model_kind model_get_kind(const model *m) { return m->kind; }
size_t model_n_features(const model *m) { return m->nf; }
const char *model_feature_name(const model *m, size_t j) { return j < m->nf ? m->f[j].name : NULL; }
model_col_type model_feature_type(const model *m, size_t j) { return m->f[j].type; }
int model_n_iter(const model *m) { return m->n_iter; }

int model_coefs(const model *m, double *intercept, const double **coef,
                const char *const **names, size_t *n_terms, prm_error *err)
{
    if (m->kind != MODEL_LOGISTIC)
        return prm_error_set(err, "model_coefs: a %s model has no coefficients", model_kind_name(m->kind));
    if (intercept) *intercept = m->intercept;
    if (coef) *coef = m->coef;
    if (names) *names = (const char *const *)m->term_names;
    if (n_terms) *n_terms = m->n_terms;
    return 0;
}

/* ---- calibration ---- */

void model_calib_free(model_calib *c)
{
    if (!c) return;
    free(c->x);
    free(c->y);
    free(c);
}

typedef struct pyi { double p, y; } pyi;

static int cmp_py(const void *a, const void *b)
{
    const pyi *x = a, *y = b;
    if (x->p != y->p) return x->p < y->p ? -1 : 1;
    return (x->y > y->y) - (x->y < y->y);
}

/* Pool adjacent violators over points sorted by p (ties pooled first, as
 * scikit-learn does), giving one knot per block at its mean p. */
static int fit_isotonic(model_calib *c, const double *p, const double *y, size_t n, prm_error *err)
{
    pyi *s = model_xcalloc(n, sizeof *s);
    double *bx = model_xcalloc(n, sizeof *bx), *by = model_xcalloc(n, sizeof *by),
           *bw = model_xcalloc(n, sizeof *bw);
    if (!s || !bx || !by || !bw) {
        free(s); free(bx); free(by); free(bw);
        return prm_error_set(err, "out of memory");
    }
    for (size_t i = 0; i < n; i++) { s[i].p = p[i]; s[i].y = y[i]; }
    qsort(s, n, sizeof *s, cmp_py);
    size_t nb = 0;
    for (size_t i = 0; i < n;) {
        size_t k = i;
        double sy = 0;
        while (k < n && s[k].p == s[i].p) sy += s[k++].y;
        bx[nb] = s[i].p * (double)(k - i);   /* weighted sums until the end */
        by[nb] = sy;
        bw[nb] = (double)(k - i);
        nb++;
        while (nb > 1 && by[nb - 2] / bw[nb - 2] >= by[nb - 1] / bw[nb - 1]) {
            bx[nb - 2] += bx[nb - 1];
            by[nb - 2] += by[nb - 1];
            bw[nb - 2] += bw[nb - 1];
            nb--;
        }
        i = k;
    }
    free(s);
    for (size_t b = 0; b < nb; b++) { bx[b] /= bw[b]; by[b] /= bw[b]; }
    free(bw);
    c->n = nb;
    c->x = bx;
    c->y = by;
    return 0;
}

/* Platt scaling on the logit of p: Newton on the two parameters, with
 * Platt's smoothed targets so that separable data stays finite. */
static int fit_platt(model_calib *c, const double *p, const double *y, size_t n, prm_error *err)
{
    double n1 = 0;
    for (size_t i = 0; i < n; i++) n1 += y[i];
    double t1 = (n1 + 1) / (n1 + 2), t0 = 1 / ((double)n - n1 + 2);
    double a = 1, b = 0;
    for (int it = 0; it < 100; it++) {
        double g0 = 0, g1 = 0, h00 = 1e-12, h01 = 0, h11 = 1e-12;
        for (size_t i = 0; i < n; i++) {
            double z = model_logit(p[i]), q = model_sigmoid(a * z + b);
            double t = t0 + y[i] * (t1 - t0), w = q * (1 - q);   /* a censored row's expected target */
            g0 += (q - t) * z;
            g1 += q - t;
            h00 += w * z * z;
            h01 += w * z;
            h11 += w;
        }
        double det = h00 * h11 - h01 * h01;
        if (!(det > 0)) break;
        double da = (h11 * g0 - h01 * g1) / det, db = (h00 * g1 - h01 * g0) / det;
        a -= da;
        b -= db;
        if (fabs(da) + fabs(db) < 1e-12) break;
    }
    if (!isfinite(a) || !isfinite(b)) return prm_error_set(err, "Platt scaling did not converge");
    c->a = a;
    c->b = b;
    return 0;
}

int model_calib_fit(model_calib_kind kind, const double *p, const double *y, size_t n,
                    model_calib **out, prm_error *err)
{
    *out = NULL;
    if (kind != MODEL_CALIB_ISOTONIC && kind != MODEL_CALIB_PLATT)
        return prm_error_set(err, "calibration: unknown method %d", (int)kind);
    if (n == 0) return prm_error_set(err, "calibration: no rows");
    size_t n1 = 0, n0 = 0;
    for (size_t i = 0; i < n; i++) {
        if (!(y[i] >= 0 && y[i] <= 1)) return prm_error_set(err, "calibration: y[%zu] is %g; must be in [0, 1]", i + 1, y[i]);
        if (!(p[i] >= 0 && p[i] <= 1)) return prm_error_set(err, "calibration: p[%zu] is %g; must be in [0, 1]", i + 1, p[i]);
        n1 += y[i] > 0;
        n0 += y[i] < 1;
    }
    if (n1 == 0 || n0 == 0) return prm_error_set(err, "calibration: y has a single class");
    model_calib *c = model_xcalloc(1, sizeof *c);
    if (!c) return prm_error_set(err, "out of memory");
    c->kind = kind;
    int rc = kind == MODEL_CALIB_ISOTONIC ? fit_isotonic(c, p, y, n, err) : fit_platt(c, p, y, n, err);
    if (rc < 0) { model_calib_free(c); return -1; }
    *out = c;
    return 0;
}

double model_calib_apply(const model_calib *c, double p)
{
    if (!c || isnan(p)) return p;
    if (c->kind == MODEL_CALIB_PLATT) return model_sigmoid(c->a * model_logit(p) + c->b);
    if (c->n == 0) return p;
    if (p <= c->x[0]) return c->y[0];
    if (p >= c->x[c->n - 1]) return c->y[c->n - 1];
    size_t lo = 0, hi = c->n - 1;   /* x[lo] < p < x[hi] */
    while (hi - lo > 1) {
        size_t mid = (lo + hi) / 2;
        if (c->x[mid] <= p) lo = mid; else hi = mid;
    }
    double t = (p - c->x[lo]) / (c->x[hi] - c->x[lo]);
    return c->y[lo] + t * (c->y[hi] - c->y[lo]);
}

size_t model_calib_knots(const model_calib *c, const double **x, const double **y)
{
    if (x) *x = c->x;
    if (y) *y = c->y;
    return c->kind == MODEL_CALIB_ISOTONIC ? c->n : 0;
}

int model_calibrate(model *m, const model_data *d, const double *y,
                    model_calib_kind kind, prm_error *err)
{
    if (kind == MODEL_CALIB_NONE) {
        model_calib_free(m->calib);
        m->calib = NULL;
        return 0;
    }
    if (!d || d->n_rows == 0) return prm_error_set(err, "model_calibrate: no rows");
    double *p = model_xcalloc(d->n_rows, sizeof *p);
    if (!p) return prm_error_set(err, "out of memory");
    model_calib *c = NULL;
    int rc = model_predict_logit(m, d, p, err);
    if (rc == 0) {
        for (size_t i = 0; i < d->n_rows; i++) p[i] = model_sigmoid(p[i]);
        rc = model_calib_fit(kind, p, y, d->n_rows, &c, err);
    }
    free(p);
    if (rc < 0) return prm_error_prefix(err, "model_calibrate: ");
    model_calib_free(m->calib);
    m->calib = c;
    return 0;
}

model_calib_kind model_calib_get_kind(const model *m)
{
    return m->calib ? m->calib->kind : MODEL_CALIB_NONE;
}

/* The offset c with sum sigmoid(z_i + c) = goal over z[0..n): the sum
 * rises with c, so Newton steps inside a bisection bracket on [-20, 20]. */
/* c with sum_i wt_i sigmoid(z_i + c) = goal (wt NULL: all 1), by
 * safeguarded Newton. */
static double anchor_offset(const double *z, const double *wt, size_t n, double goal)
{
    double lo = -20, hi = 20, c = 0;
    for (int it = 0; it < 100; it++) {
        double f = -goal, d = 0;
        for (size_t i = 0; i < n; i++) {
            double q = model_sigmoid(z[i] + c), u = wt ? wt[i] : 1;
            f += u * q;
            d += u * q * (1 - q);
        }
        if (f > 0) hi = c; else lo = c;
        if (fabs(f) < 1e-9 || hi - lo < 1e-12) break;
        double nc = d > 0 ? c - f / d : (lo + hi) / 2;
        c = nc > lo && nc < hi ? nc : (lo + hi) / 2;
    }
    return c;
}

int model_anchor(double *p, const int32_t *group, const double *target, size_t n, int n_groups,
                 double prior, prm_error *err)
{
    if (n_groups < 1 || !(prior >= 0)) return prm_error_set(err, "model_anchor: bad groups or prior");
    size_t ng = (size_t)n_groups, m = 0;
    size_t *start = model_xcalloc(ng + 2, sizeof *start);
    for (size_t i = 0; start && i < n; i++) {
        if (group[i] >= n_groups) {
            free(start);
            return prm_error_set(err, "model_anchor: row %zu has group %d, not in 0..%d", i + 1, group[i],
                                 n_groups - 1);
        }
        if (group[i] < 0 || isnan(p[i]) || isnan(target[i])) continue;
        if (!(p[i] > 0 && p[i] < 1 && target[i] > 0 && target[i] < 1)) {
            free(start);
            return prm_error_set(err, "model_anchor: row %zu has p %g, target %g; both must be in (0, 1)",
                                 i + 1, p[i], target[i]);
        }
        start[group[i] + 2]++;
        m++;
    }
    /* the counted rows' logits, grouped (a counting sort), and each group's goal */
    double *z = start ? model_xcalloc(m + 1, sizeof *z) : NULL, *goal = model_xcalloc(ng + 1, sizeof *goal);
    size_t *row = model_xcalloc(m + 1, sizeof *row);
    if (!start || !z || !goal || !row) {
        free(start); free(z); free(goal); free(row);
        return prm_error_set(err, "out of memory");
    }
    for (size_t g = 2; g < ng + 2; g++) start[g] += start[g - 1];
    double all = 0;
    for (size_t i = 0; i < n; i++) {
        if (group[i] < 0 || isnan(p[i]) || isnan(target[i])) continue;
        size_t k = start[group[i] + 1]++;
        z[k] = model_logit(p[i]);
        row[k] = i;
        goal[group[i]] += target[i];
        all += target[i];
    }
    /* now start[g] .. start[g + 1] are group g's rows */
    if (m > 0) {
        double c0 = anchor_offset(z, NULL, m, all);
        for (size_t g = 0; g < ng; g++) {
            size_t a = start[g], b = start[g + 1];
            if (b == a) continue;
            double cnt = (double)(b - a), cg = anchor_offset(z + a, NULL, b - a, goal[g]);
            double c = (cnt * cg + prior * c0) / (cnt + prior);
            for (size_t k = a; k < b; k++) p[row[k]] = model_sigmoid(z[k] + c);
        }
    }
    free(start);
    free(z);
    free(goal);
    free(row);
    return 0;
}

int model_logit_offsets(const double *p, const double *y, const double *w, const int32_t *group, size_t n,
                        int n_groups, double prior, double *offset, prm_error *err)
{
    if (n_groups < 1 || !(prior >= 0)) return prm_error_set(err, "model_logit_offsets: bad groups or prior");
    size_t ng = (size_t)n_groups;
    for (size_t i = 0; i < n; i++)
        if (group[i] >= n_groups || !(w[i] >= 0) || !(y[i] >= 0 && y[i] <= 1))
            return prm_error_set(err, "model_logit_offsets: row %zu has group %d (want < %d), weight %g"
                                 " (want >= 0), outcome %g (want 0..1)", i + 1, group[i], n_groups, w[i], y[i]);
    double *z = model_xcalloc(n + 1, sizeof *z), *u = model_xcalloc(n + 1, sizeof *u);
    double *goal = model_xcalloc(ng + 1, sizeof *goal), *mass = model_xcalloc(ng + 1, sizeof *mass);
    if (!z || !u || !goal || !mass) {
        free(z); free(u); free(goal); free(mass);
        return prm_error_set(err, "out of memory");
    }
    /* all rows first (for c_all), then each group's in turn */
    size_t m = 0;
    double all = 0;
    for (size_t i = 0; i < n; i++) {
        if (group[i] < 0 || !(w[i] > 0) || !(p[i] > 0 && p[i] < 1)) continue;
        z[m] = model_logit(p[i]);
        u[m++] = w[i];
        all += w[i] * y[i];
        goal[group[i]] += w[i] * y[i];
        mass[group[i]] += w[i];
    }
    double c0 = m ? anchor_offset(z, u, m, all) : 0;
    for (size_t g = 0; g < ng; g++) {
        if (!(mass[g] > 0)) {
            offset[g] = c0;
            continue;
        }
        size_t k = 0;
        for (size_t i = 0; i < n; i++) {
            if (group[i] != (int32_t)g || !(w[i] > 0) || !(p[i] > 0 && p[i] < 1)) continue;
            z[k] = model_logit(p[i]);
            u[k++] = w[i];
        }
        double cg = anchor_offset(z, u, k, goal[g]);
        offset[g] = (mass[g] * cg + prior * c0) / (mass[g] + prior);
    }
    free(z);
    free(u);
    free(goal);
    free(mass);
    return 0;
}

/* ---- serialisation ----
 * Whitespace-separated tokens. Strings are "<len>:<bytes>" so any label
 * survives; doubles are "%a" hex floats, exact both ways. */

typedef struct wbuf { char *s; size_t n, cap; int oom; } wbuf;

__attribute__((format(printf, 2, 3)))
static void wr(wbuf *w, const char *fmt, ...)
{
    if (w->oom) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int k = vsnprintf(w->s ? w->s + w->n : NULL, w->cap - w->n, fmt, ap);
        va_end(ap);
        if (k < 0) { w->oom = 1; return; }
        if ((size_t)k < w->cap - w->n) { w->n += (size_t)k; return; }
        size_t cap = (w->cap + (size_t)k + 1) * 2;
        char *s = realloc(w->s, cap);
        if (!s) { w->oom = 1; return; }
        w->s = s;
        w->cap = cap;
    }
}

static void wr_str(wbuf *w, const char *s)
{
    wr(w, "%zu:", strlen(s));
    size_t k = strlen(s);
    if (w->oom) return;
    if (w->cap - w->n < k + 2) {
        size_t cap = (w->cap + k + 2) * 2;
        char *t = realloc(w->s, cap);
        if (!t) { w->oom = 1; return; }
        w->s = t;
        w->cap = cap;
    }
    memcpy(w->s + w->n, s, k);
    w->n += k;
    w->s[w->n++] = ' ';
    w->s[w->n] = 0;
}

static void wr_dbl(wbuf *w, double x) { wr(w, "%a ", x); }

int model_save(const model *m, char **buf, size_t *len, prm_error *err)
{
    wbuf w = { NULL, 0, 0, 0 };
    const model_params *p = &m->params;
    wr(&w, "prmcast-model 1\nkind %s\n", model_kind_name(m->kind));
    wr(&w, "params ");
    double pv[] = { p->l2, p->max_iter, p->tol, p->learning_rate, p->max_leaf_nodes, p->max_depth,
                    p->min_samples_leaf, p->l2_leaf, p->max_bins, p->early_stopping,
                    p->validation_fraction, p->n_iter_no_change, p->prior_strength, p->refit };
    wr(&w, "%zu ", sizeof pv / sizeof pv[0]);
    for (size_t i = 0; i < sizeof pv / sizeof pv[0]; i++) wr_dbl(&w, pv[i]);
    wr(&w, "\nn_iter %d\nfeatures %zu\n", m->n_iter, m->nf);
    for (size_t j = 0; j < m->nf; j++) {
        const mfeature *f = &m->f[j];
        wr_str(&w, f->name);
        if (f->type == MODEL_NUMERIC) {
            wr(&w, "num %d ", f->has_missing);
            wr_dbl(&w, f->mean);
            wr_dbl(&w, f->sd);
            wr(&w, "%zu ", f->n_edges);
            for (size_t e = 0; e < f->n_edges; e++) wr_dbl(&w, f->edges[e]);
        } else {
            wr(&w, "cat %zu %d ", f->n_levels, f->level_bin != NULL);
            for (size_t l = 0; l < f->n_levels; l++) {
                wr_str(&w, f->levels[l]);
                if (f->level_bin) wr(&w, "%u ", f->level_bin[l]);
            }
        }
        wr(&w, "\n");
    }
    if (m->kind == MODEL_LOGISTIC) {
        wr(&w, "terms %zu ", m->n_terms);
        wr_dbl(&w, m->intercept);
        wr(&w, "\n");
        for (size_t t = 0; t < m->n_terms; t++) {
            wr_str(&w, m->term_names[t]);
            wr_dbl(&w, m->coef[t]);
            wr_dbl(&w, m->term_mean[t]);
            wr(&w, "\n");
        }
        for (size_t j = 0; j <= m->nf; j++) wr(&w, "%zu ", m->term_start[j]);
        wr(&w, "\n");
    } else if (m->kind == MODEL_GBDT) {
        wr(&w, "trees %zu ", m->n_trees);
        wr_dbl(&w, m->baseline);
        wr(&w, "\n");
        for (size_t t = 0; t < m->n_trees; t++) {
            wr(&w, "%zu\n", m->trees[t].n_nodes);
            for (size_t k = 0; k < m->trees[t].n_nodes; k++) {
                const gnode *g = &m->trees[t].nodes[k];
                wr(&w, "%d %d %d %d %d %d ", g->left, g->right, g->feature, g->is_cat, g->thr,
                   g->missing_left);
                for (int q = 0; q < 4; q++) wr(&w, "%llx ", (unsigned long long)g->cat_left[q]);
                wr_dbl(&w, g->value);
                wr(&w, "\n");
            }
        }
    } else {
        wr(&w, "rates ");
        wr_dbl(&w, m->p0);
        wr_dbl(&w, m->m1);
        wr_dbl(&w, m->m2);
        wr(&w, "\n");
        size_t n1 = m->f[0].n_levels, n2 = m->nf > 1 ? m->f[1].n_levels : 0;
        for (size_t a = 0; a < n1; a++) wr_dbl(&w, m->rate1[a]);
        wr(&w, "\n");
        for (size_t a = 0; a < n1 * n2; a++) wr_dbl(&w, m->rate2[a]);
        wr(&w, "\n");
    }
    if (m->calib) {
        const model_calib *c = m->calib;
        wr(&w, "calib %d %zu ", (int)c->kind, c->n);
        wr_dbl(&w, c->a);
        wr_dbl(&w, c->b);
        for (size_t k = 0; k < c->n; k++) { wr_dbl(&w, c->x[k]); wr_dbl(&w, c->y[k]); }
        wr(&w, "\n");
    } else {
        wr(&w, "calib 0 0\n");
    }
    wr(&w, "end\n");
    if (w.oom) {
        free(w.s);
        return prm_error_set(err, "model_save: out of memory");
    }
    *buf = w.s;
    *len = w.n;
    return 0;
}

typedef struct rbuf { const char *s, *end; int bad; const char *what; } rbuf;

static void skip_ws(rbuf *r)
{
    while (r->s < r->end && (*r->s == ' ' || *r->s == '\n' || *r->s == '\t' || *r->s == '\r')) r->s++;
}

/* Reads one token into tok (NUL-terminated, truncated tokens are bad). */
static const char *rd_tok(rbuf *r, char *tok, size_t cap, const char *what)
{
    skip_ws(r);
    size_t k = 0;
    while (r->s < r->end && *r->s != ' ' && *r->s != '\n' && *r->s != '\t' && *r->s != '\r') {
        if (k + 1 >= cap) { r->bad = 1; break; }
        tok[k++] = *r->s++;
    }
    tok[k] = 0;
    if (k == 0 && !r->bad) { r->bad = 1; }
    if (r->bad && !r->what) r->what = what;
    return tok;
}

static void expect(rbuf *r, const char *word)
{
    char tok[64];
    if (r->bad) return;
    rd_tok(r, tok, sizeof tok, word);
    if (!r->bad && strcmp(tok, word) != 0) { r->bad = 1; r->what = word; }
}

static long long rd_int(rbuf *r, long long lo, long long hi, const char *what)
{
    char tok[64], *e;
    if (r->bad) return lo;
    rd_tok(r, tok, sizeof tok, what);
    if (r->bad) return lo;
    errno = 0;
    long long v = strtoll(tok, &e, 10);
    if (*e || errno || v < lo || v > hi) { r->bad = 1; r->what = what; return lo; }
    return v;
}

static double rd_dbl(rbuf *r, const char *what)
{
    char tok[64], *e;
    if (r->bad) return 0;
    rd_tok(r, tok, sizeof tok, what);
    if (r->bad) return 0;
    double v = strtod(tok, &e);
    if (*e) { r->bad = 1; r->what = what; return 0; }
    return v;
}

static char *rd_str(rbuf *r, const char *what)
{
    if (r->bad) return NULL;
    skip_ws(r);
    /* the length is digits then ':'; parse by hand so an unterminated
     * buffer is never read past its end */
    unsigned long long k = 0;
    const char *e = r->s;
    while (e < r->end && *e >= '0' && *e <= '9' && k < (1ULL << 40)) k = k * 10 + (unsigned)(*e++ - '0');
    if (e == r->s || e >= r->end || *e != ':' || k > (unsigned long long)(r->end - e - 1)) {
        r->bad = 1;
        r->what = what;
        return NULL;
    }
    char *s = malloc(k + 1);
    if (!s) { r->bad = 1; r->what = "memory"; return NULL; }
    memcpy(s, e + 1, k);
    s[k] = 0;
    if (strlen(s) != k) { free(s); r->bad = 1; r->what = what; return NULL; }
    r->s = e + 1 + k;
    return s;
}


int model_load(const char *buf, size_t len, model **out, prm_error *err)
{
    *out = NULL;
    rbuf r = { buf, buf + len, 0, NULL };
    char tok[64];
    /* every counted item takes at least two bytes of text, so no count in a
     * valid text exceeds this: corrupt counts cannot ask for huge blocks */
    long long max_count = (long long)(len / 2) + 1;
    expect(&r, "prmcast-model");
    if (r.bad) return prm_error_set(err, "model_load: not a prmcast model");
    if (rd_int(&r, 1, 1, "version") != 1 || r.bad)
        return prm_error_set(err, "model_load: unsupported format version");
    expect(&r, "kind");
    rd_tok(&r, tok, sizeof tok, "kind");
    int kind = r.bad ? -1 : model_kind_parse(tok);
    if (kind < 0) return prm_error_set(err, "model_load: unknown model kind");
    model *m = model_xcalloc(1, sizeof *m);
    if (!m) return prm_error_set(err, "out of memory");
    m->kind = (model_kind)kind;
    model_params_init(&m->params, m->kind);
    expect(&r, "params");
    long long np = rd_int(&r, 14, 14, "params");
    double pv[14] = { 0 };
    for (long long i = 0; i < np && !r.bad; i++) pv[i] = rd_dbl(&r, "params");
    model_params *p = &m->params;
    /* the integer parameters are cast below: out-of-range doubles would be
     * undefined behaviour, so a corrupt value is refused first */
    static const int int_slot[] = { 1, 4, 5, 6, 8, 9, 11, 13 };
    for (size_t k = 0; k < sizeof int_slot / sizeof int_slot[0]; k++)
        if (!(fabs(pv[int_slot[k]]) <= 1e9)) {
            pv[int_slot[k]] = 0;
            if (!r.bad) { r.bad = 1; r.what = "params"; }
        }
    p->l2 = pv[0]; p->max_iter = (int)pv[1]; p->tol = pv[2]; p->learning_rate = pv[3];
    p->max_leaf_nodes = (int)pv[4]; p->max_depth = (int)pv[5]; p->min_samples_leaf = (int)pv[6];
    p->l2_leaf = pv[7]; p->max_bins = (int)pv[8]; p->early_stopping = (int)pv[9];
    p->validation_fraction = pv[10]; p->n_iter_no_change = (int)pv[11]; p->prior_strength = pv[12];
    p->refit = (int)pv[13];
    expect(&r, "n_iter");
    m->n_iter = (int)rd_int(&r, 0, 1 << 30, "n_iter");
    expect(&r, "features");
    size_t nf = (size_t)rd_int(&r, 1, max_count, "features");
    if (!r.bad) {
        m->f = model_xcalloc(nf, sizeof *m->f);
        if (!m->f) r.bad = 1; else m->nf = nf;
    }
    for (size_t j = 0; j < m->nf && !r.bad; j++) {
        mfeature *f = &m->f[j];
        f->name = rd_str(&r, "feature name");
        rd_tok(&r, tok, sizeof tok, "feature type");
        if (r.bad) break;
        if (strcmp(tok, "num") == 0) {
            f->type = MODEL_NUMERIC;
            f->has_missing = (int)rd_int(&r, 0, 1, "has_missing");
            f->mean = rd_dbl(&r, "mean");
            f->sd = rd_dbl(&r, "sd");
            f->n_edges = (size_t)rd_int(&r, 0, 254, "edges");
            if (!r.bad && f->n_edges && !(f->edges = model_xcalloc(f->n_edges, sizeof *f->edges))) r.bad = 1;
            for (size_t e = 0; e < f->n_edges && !r.bad; e++) f->edges[e] = rd_dbl(&r, "edge");
        } else if (strcmp(tok, "cat") == 0) {
            f->type = MODEL_CATEGORICAL;
            size_t nl = (size_t)rd_int(&r, 0, max_count, "levels");
            int has_bins = (int)rd_int(&r, 0, 1, "level bins");
            if (r.bad) break;
            if (!(f->levels = model_xcalloc(nl, sizeof *f->levels))) { r.bad = 1; break; }
            if (has_bins && !(f->level_bin = model_xcalloc(nl, 1))) { r.bad = 1; break; }
            for (size_t l = 0; l < nl && !r.bad; l++) {
                f->levels[l] = rd_str(&r, "level");
                if (f->levels[l]) f->n_levels++;
                if (l && f->levels[l] && strcmp(f->levels[l - 1], f->levels[l]) >= 0) { r.bad = 1; r.what = "level order"; }
                if (has_bins) f->level_bin[l] = (uint8_t)rd_int(&r, 0, 254, "level bin");
            }
        } else {
            r.bad = 1;
            r.what = "feature type";
        }
    }
    if (!r.bad && m->kind == MODEL_LOGISTIC) {
        expect(&r, "terms");
        m->n_terms = (size_t)rd_int(&r, 0, max_count, "terms");
        m->intercept = rd_dbl(&r, "intercept");
        if (!r.bad) {
            m->coef = model_xcalloc(m->n_terms, sizeof *m->coef);
            m->term_mean = model_xcalloc(m->n_terms, sizeof *m->term_mean);
            m->term_names = model_xcalloc(m->n_terms, sizeof *m->term_names);
            m->term_start = model_xcalloc(m->nf + 1, sizeof *m->term_start);
            if (!m->coef || !m->term_mean || !m->term_names || !m->term_start) r.bad = 1;
        }
        for (size_t t = 0; t < m->n_terms && !r.bad; t++) {
            m->term_names[t] = rd_str(&r, "term name");
            m->coef[t] = rd_dbl(&r, "coef");
            m->term_mean[t] = rd_dbl(&r, "term mean");
        }
        for (size_t j = 0; j <= m->nf && !r.bad; j++) {
            m->term_start[j] = (size_t)rd_int(&r, 0, (long long)m->n_terms, "term start");
            if (j && m->term_start[j] < m->term_start[j - 1]) { r.bad = 1; r.what = "term start"; }
        }
        /* the design must agree with the features, or predict would read out of bounds */
        for (size_t j = 0; j < m->nf && !r.bad; j++) {
            const mfeature *f = &m->f[j];
            size_t want = f->type == MODEL_NUMERIC ? 1 + (size_t)f->has_missing : f->n_levels;
            if (m->term_start[j + 1] - m->term_start[j] != want) { r.bad = 1; r.what = "term layout"; }
        }
        if (!r.bad && m->term_start[m->nf] != m->n_terms) { r.bad = 1; r.what = "term layout"; }
    } else if (!r.bad && m->kind == MODEL_GBDT) {
        expect(&r, "trees");
        m->n_trees = (size_t)rd_int(&r, 0, max_count, "trees");
        m->baseline = rd_dbl(&r, "baseline");
        if (!r.bad && !(m->trees = model_xcalloc(m->n_trees, sizeof *m->trees))) r.bad = 1;
        for (size_t t = 0; t < m->n_trees && !r.bad; t++) {
            gtree *g = &m->trees[t];
            size_t nn = (size_t)rd_int(&r, 1, max_count < (1 << 20) ? max_count : (1 << 20), "nodes");
            if (r.bad || !(g->nodes = model_xcalloc(nn, sizeof *g->nodes))) { r.bad = 1; break; }
            g->n_nodes = nn;
            for (size_t k = 0; k < nn && !r.bad; k++) {
                gnode *q = &g->nodes[k];
                q->left = (int32_t)rd_int(&r, -1, (long long)nn - 1, "node");
                q->right = (int32_t)rd_int(&r, -1, (long long)nn - 1, "node");
                q->feature = (int32_t)rd_int(&r, -1, (long long)m->nf - 1, "node feature");
                q->is_cat = (int32_t)rd_int(&r, 0, 1, "node");
                q->thr = (int32_t)rd_int(&r, 0, 255, "node");
                q->missing_left = (int32_t)rd_int(&r, 0, 1, "node");
                for (int b = 0; b < 4 && !r.bad; b++) {
                    rd_tok(&r, tok, sizeof tok, "node bits");
                    char *e;
                    q->cat_left[b] = strtoull(tok, &e, 16);
                    if (*e) { r.bad = 1; r.what = "node bits"; }
                }
                q->value = rd_dbl(&r, "node value");
                /* children come after their parent, so traversal always ends */
                if (!r.bad && (q->left < 0) != (q->right < 0)) { r.bad = 1; r.what = "node"; }
                if (!r.bad && q->left >= 0 && (q->left <= (int32_t)k || q->right <= (int32_t)k || q->feature < 0)) {
                    r.bad = 1;
                    r.what = "node order";
                }
                if (!r.bad && q->left >= 0 && q->is_cat != (m->f[q->feature].type == MODEL_CATEGORICAL)) {
                    r.bad = 1;
                    r.what = "node feature type";
                }
            }
        }
    } else if (!r.bad) {
        expect(&r, "rates");
        m->p0 = rd_dbl(&r, "p0");
        m->m1 = rd_dbl(&r, "m1");
        m->m2 = rd_dbl(&r, "m2");
        if (!r.bad && (m->nf > 2 || m->f[0].type != MODEL_CATEGORICAL ||
                       (m->nf == 2 && m->f[1].type != MODEL_CATEGORICAL))) { r.bad = 1; r.what = "keys"; }
        size_t n1 = r.bad ? 0 : m->f[0].n_levels, n2 = !r.bad && m->nf > 1 ? m->f[1].n_levels : 0;
        if (!r.bad) {
            m->rate1 = model_xcalloc(n1, sizeof *m->rate1);
            m->rate2 = model_xcalloc(n1 * n2, sizeof *m->rate2);
            if (!m->rate1 || !m->rate2) r.bad = 1;
        }
        for (size_t a = 0; a < n1 && !r.bad; a++) m->rate1[a] = rd_dbl(&r, "rate");
        for (size_t a = 0; a < n1 * n2 && !r.bad; a++) m->rate2[a] = rd_dbl(&r, "rate");
    }
    expect(&r, "calib");
    int ck = (int)rd_int(&r, 0, 2, "calib");
    size_t cn = (size_t)rd_int(&r, 0, max_count, "calib");
    if (!r.bad && ck != MODEL_CALIB_NONE) {
        model_calib *c = model_xcalloc(1, sizeof *c);
        if (!c) r.bad = 1;
        else {
            m->calib = c;
            c->kind = (model_calib_kind)ck;
            c->a = rd_dbl(&r, "calib");
            c->b = rd_dbl(&r, "calib");
            if (cn) {
                c->x = model_xcalloc(cn, sizeof *c->x);
                c->y = model_xcalloc(cn, sizeof *c->y);
                if (!c->x || !c->y) r.bad = 1; else c->n = cn;
            }
            for (size_t k = 0; k < c->n && !r.bad; k++) {
                c->x[k] = rd_dbl(&r, "calib knot");
                c->y[k] = rd_dbl(&r, "calib knot");
            }
        }
    }
    expect(&r, "end");
    if (r.bad) {
        model_free(m);
        return prm_error_set(err, "model_load: corrupt model text (at %s)", r.what ? r.what : "?");
    }
    *out = m;
    return 0;
}
