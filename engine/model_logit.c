/* model_logit.c - L2-regularised logistic regression.
 *
 * Design: numeric columns standardised with the training mean and (population)
 * sd, a missing value imputed with the mean (0 after standardising) plus a
 * missing-indicator term when the training column had NaNs; categorical
 * columns one-hot over the training labels (an unseen or missing label sets
 * none of them), as scikit-learn's StandardScaler + OneHotEncoder
 * (handle_unknown="ignore"). Every row then has the same number of non-zero
 * slots (one or two per numeric column, one per categorical), which keeps the
 * Hessian cheap: O(n * slots^2) per Newton step instead of O(n * terms^2).
 *
 * Objective: sum_i logloss_i + l2/2 * |w|^2 (intercept unpenalised), i.e.
 * scikit-learn's C = 1/l2. Minimised by Newton's method with a backtracking
 * line search: a dense Cholesky solve up to DENSE_MAX terms, above that a
 * Jacobi-preconditioned conjugate-gradient solve with Hessian-vector products
 * (Newton-CG), so thousands of one-hot terms (partner ids) stay feasible.
 */
#include "model_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Dense Newton costs terms^2 memory and terms^3/3 per step; 600 terms is
 * 2.9 MB and ~0.07 s per Cholesky, beyond that Newton-CG is cheaper. */
#define DENSE_MAX 600

/* The slots of row i: idx/val for each feature's non-zero terms; returns the
 * slot count (fixed per model). Term indices are 1-based (0 = intercept). */
static size_t encode_row(const model *m, const mview *v, size_t i, uint32_t *idx, double *val)
{
    size_t k = 0;
    for (size_t j = 0; j < m->nf; j++) {
        const mfeature *f = &m->f[j];
        size_t t0 = m->term_start[j] + 1;
        if (f->type == MODEL_NUMERIC) {
            double x = v[j].num[i];
            int miss = isnan(x);
            idx[k] = (uint32_t)t0;
            val[k++] = miss ? 0 : (x - f->mean) / f->sd;
            if (f->has_missing) {
                idx[k] = (uint32_t)t0 + 1;
                val[k++] = miss;
            }
        } else {
            int l = mview_level(&v[j], i);
            idx[k] = l >= 0 ? (uint32_t)(t0 + (size_t)l) : 0;
            val[k++] = l >= 0 ? 1 : 0;
        }
    }
    return k;
}

/* The log loss of one row, and its probability into *q: one exp for both. */
static double row_loss(double eta, double y, double *q)
{
    double e = exp(-fabs(eta));
    *q = eta >= 0 ? 1 / (1 + e) : e / (1 + e);
    return (eta > 0 ? eta : 0) + log1p(e) - y * eta;
}

typedef struct design {
    size_t n, K, P;          /* rows, slots per row, parameters (1 + terms) */
    uint32_t *idx;
    double *val;
} design;

/* The penalised loss at th; fills q with each row's probability. */
static double objective(const design *X, const double *y, const double *th, double l2, double *q)
{
    double f = 0;
    for (size_t i = 0; i < X->n; i++) {
        const uint32_t *ix = X->idx + i * X->K;
        const double *vx = X->val + i * X->K;
        double e = th[0];
        for (size_t s = 0; s < X->K; s++) e += th[ix[s]] * vx[s];
        f += row_loss(e, y[i], &q[i]);
    }
    double r = 0;
    for (size_t a = 1; a < X->P; a++) r += th[a] * th[a];
    return f + 0.5 * l2 * r;
}

/* In-place Cholesky of the P x P matrix A (lower triangle used); returns -1
 * when A is not positive definite. */
static int cholesky(double *A, size_t P)
{
    for (size_t j = 0; j < P; j++) {
        double d = A[j * P + j];
        for (size_t k = 0; k < j; k++) d -= A[j * P + k] * A[j * P + k];
        if (!(d > 0)) return -1;
        d = sqrt(d);
        A[j * P + j] = d;
        for (size_t i = j + 1; i < P; i++) {
            double s = A[i * P + j];
            for (size_t k = 0; k < j; k++) s -= A[i * P + k] * A[j * P + k];
            A[i * P + j] = s / d;
        }
    }
    return 0;
}

static void chol_solve(const double *L, size_t P, double *b)
{
    for (size_t i = 0; i < P; i++) {
        double s = b[i];
        for (size_t k = 0; k < i; k++) s -= L[i * P + k] * b[k];
        b[i] = s / L[i * P + i];
    }
    for (size_t i = P; i-- > 0;) {
        double s = b[i];
        for (size_t k = i + 1; k < P; k++) s -= L[k * P + i] * b[k];
        b[i] = s / L[i * P + i];
    }
}

/* H v for H = X' W X + l2 * I (no penalty on the intercept). */
static void hess_vec(const design *X, const double *w, double l2, const double *v, double *out)
{
    memset(out, 0, X->P * sizeof *out);
    for (size_t i = 0; i < X->n; i++) {
        const uint32_t *ix = X->idx + i * X->K;
        const double *vx = X->val + i * X->K;
        double e = v[0];
        for (size_t s = 0; s < X->K; s++) e += v[ix[s]] * vx[s];
        e *= w[i];
        out[0] += e;
        for (size_t s = 0; s < X->K; s++) out[ix[s]] += e * vx[s];
    }
    for (size_t a = 1; a < X->P; a++) out[a] += l2 * v[a];
}

/* Solves H d = g approximately by preconditioned CG (Newton-CG). */
static int cg_solve(const design *X, const double *w, double l2, const double *g, double *d,
                    const double *diag, double *work)
{
    size_t P = X->P;
    double *r = work, *z = work + P, *q = work + 2 * P, *Hq = work + 3 * P;
    memset(d, 0, P * sizeof *d);
    memcpy(r, g, P * sizeof *r);
    double gn = 0;
    for (size_t a = 0; a < P; a++) gn += g[a] * g[a];
    for (size_t a = 0; a < P; a++) z[a] = r[a] / diag[a];
    memcpy(q, z, P * sizeof *q);
    double rz = 0;
    for (size_t a = 0; a < P; a++) rz += r[a] * z[a];
    for (size_t it = 0; it < 2 * P + 10; it++) {
        hess_vec(X, w, l2, q, Hq);
        double qHq = 0;
        for (size_t a = 0; a < P; a++) qHq += q[a] * Hq[a];
        if (!(qHq > 0)) break;
        double alpha = rz / qHq, rn = 0;
        for (size_t a = 0; a < P; a++) {
            d[a] += alpha * q[a];
            r[a] -= alpha * Hq[a];
            rn += r[a] * r[a];
        }
        if (rn <= 1e-20 * gn) break;
        double rz2 = 0;
        for (size_t a = 0; a < P; a++) { z[a] = r[a] / diag[a]; rz2 += r[a] * z[a]; }
        double beta = rz2 / rz;
        rz = rz2;
        for (size_t a = 0; a < P; a++) q[a] = z[a] + beta * q[a];
    }
    return 0;
}

int logit_fit(model *m, const mview *v, size_t n, const double *y, prm_error *err)
{
    const model_params *p = &m->params;
    m->term_start = model_xcalloc(m->nf + 1, sizeof *m->term_start);
    if (!m->term_start) return prm_error_set(err, "out of memory");
    size_t K = 0;
    for (size_t j = 0; j < m->nf; j++) {
        const mfeature *f = &m->f[j];
        size_t nt = f->type == MODEL_NUMERIC ? 1 + (size_t)f->has_missing : f->n_levels;
        K += f->type == MODEL_NUMERIC ? 1 + (size_t)f->has_missing : 1;
        m->term_start[j + 1] = m->term_start[j] + nt;
    }
    m->n_terms = m->term_start[m->nf];
    size_t T = m->n_terms, P = T + 1;
    if (T > 200000) return prm_error_set(err, "%zu terms is too many", T);
    m->coef = model_xcalloc(T, sizeof *m->coef);
    m->term_mean = model_xcalloc(T, sizeof *m->term_mean);
    m->term_names = model_xcalloc(T, sizeof *m->term_names);
    if (!m->coef || !m->term_mean || !m->term_names) return prm_error_set(err, "out of memory");
    for (size_t j = 0; j < m->nf; j++) {
        const mfeature *f = &m->f[j];
        size_t t0 = m->term_start[j];
        for (size_t t = t0; t < m->term_start[j + 1]; t++) {
            const char *suffix = f->type == MODEL_CATEGORICAL ? f->levels[t - t0]
                                 : t > t0 ? "missing" : NULL;
            size_t len = strlen(f->name) + (suffix ? strlen(suffix) + 1 : 0) + 1;
            if (!(m->term_names[t] = malloc(len))) return prm_error_set(err, "out of memory");
            snprintf(m->term_names[t], len, suffix ? "%s=%s" : "%s", f->name, suffix ? suffix : "");
        }
    }

    design X = { n, K, P, NULL, NULL };
    X.idx = model_xcalloc(n * K, sizeof *X.idx);
    X.val = model_xcalloc(n * K, sizeof *X.val);
    double *th = model_xcalloc(P, sizeof *th), *g = model_xcalloc(P, sizeof *g),
           *d = model_xcalloc(P, sizeof *d), *tn = model_xcalloc(P, sizeof *tn),
           *prob = model_xcalloc(n, sizeof *prob), *prob2 = model_xcalloc(n, sizeof *prob2),
           *w = model_xcalloc(n, sizeof *w),
           *H = NULL, *work = NULL;
    int dense = P <= DENSE_MAX, rc = 0;
    if (dense) H = model_xcalloc(P * P, sizeof *H);
    else work = model_xcalloc(5 * P, sizeof *work);
    if (!X.idx || !X.val || !th || !g || !d || !tn || !prob || !prob2 || !w || (dense ? !H : !work)) {
        rc = prm_error_set(err, "out of memory");
        goto done;
    }
    double ybar = 0;
    for (size_t i = 0; i < n; i++) {
        encode_row(m, v, i, X.idx + i * K, X.val + i * K);
        ybar += y[i];
        for (size_t s = 0; s < K; s++)
            m->term_mean[X.idx[i * K + s] - 1 + (X.idx[i * K + s] == 0)] += X.val[i * K + s];
    }
    ybar /= (double)n;
    for (size_t t = 0; t < T; t++) m->term_mean[t] /= (double)n;
    th[0] = model_logit(ybar);   /* start at the base rate */
    double tol = p->tol > 0 ? p->tol : 1e-8 * (double)n, l2 = p->l2;
    double f = objective(&X, y, th, l2, prob);
    int it;
    for (it = 0; it < p->max_iter; it++) {
        memset(g, 0, P * sizeof *g);
        if (dense) memset(H, 0, P * P * sizeof *H);
        for (size_t i = 0; i < n; i++) {
            const uint32_t *ix = X.idx + i * K;
            const double *vx = X.val + i * K;
            double q = prob[i], r = q - y[i], wi = q * (1 - q);
            w[i] = wi;
            g[0] += r;
            for (size_t s = 0; s < K; s++) g[ix[s]] += r * vx[s];
            if (!dense) continue;
            /* Lower triangle, H[a][b] with a >= b. encode_row emits term
             * indices in ascending order, so t <= s gives b <= a; the one
             * exception, index 0 for a missing label, carries the value 0
             * and adds nothing either way. */
            H[0] += wi;
            for (size_t s = 0; s < K; s++) {
                double ws = wi * vx[s];
                if (ws == 0) continue;
                double *Ha = H + (size_t)ix[s] * P;
                Ha[0] += ws;
                for (size_t t = 0; t <= s; t++) Ha[ix[t]] += ws * vx[t];
            }
        }
        double gmax = 0;
        for (size_t a = 1; a < P; a++) g[a] += l2 * th[a];
        for (size_t a = 0; a < P; a++) gmax = fmax(gmax, fabs(g[a]));
        if (gmax <= tol) break;
        memcpy(d, g, P * sizeof *d);
        if (dense) {
            for (size_t a = 1; a < P; a++) H[a * P + a] += l2;
            /* a tiny ridge keeps an unpenalised, collinear design solvable */
            double ridge = 0;
            while (cholesky(H, P) < 0) {
                /* rebuilding H is simpler than keeping a copy; it is rare */
                ridge = ridge ? ridge * 100 : 1e-10 * (double)n;
                if (ridge > (double)n) { rc = prm_error_set(err, "Hessian is singular"); goto done; }
                memset(H, 0, P * P * sizeof *H);
                for (size_t i = 0; i < n; i++) {
                    const uint32_t *ix = X.idx + i * K;
                    const double *vx = X.val + i * K;
                    H[0] += w[i];
                    for (size_t s = 0; s < K; s++) {
                        size_t a = ix[s];
                        H[a * P] += w[i] * vx[s];
                        for (size_t t = 0; t < K; t++)
                            if (ix[t] <= a) H[a * P + ix[t]] += w[i] * vx[s] * vx[t];
                    }
                }
                for (size_t a = 0; a < P; a++) H[a * P + a] += (a ? l2 : 0) + ridge;
            }
            chol_solve(H, P, d);
        } else {
            double *diag = work + 4 * P;
            memset(diag, 0, P * sizeof *diag);
            for (size_t i = 0; i < n; i++) {
                diag[0] += w[i];
                for (size_t s = 0; s < K; s++) diag[X.idx[i * K + s]] += w[i] * X.val[i * K + s] * X.val[i * K + s];
            }
            for (size_t a = 0; a < P; a++) diag[a] += (a ? l2 : 0) + 1e-12 * (double)n;
            cg_solve(&X, w, l2, g, d, diag, work);
        }
        double slope = 0;
        for (size_t a = 0; a < P; a++) slope += g[a] * d[a];
        double step = 1, fn = f;
        int moved = 0;
        for (int ls = 0; ls < 40; ls++) {
            for (size_t a = 0; a < P; a++) tn[a] = th[a] - step * d[a];
            fn = objective(&X, y, tn, l2, prob2);
            if (fn <= f - 1e-4 * step * slope) { moved = 1; break; }
            step *= 0.5;
        }
        if (!moved) break;   /* no further decrease at double precision */
        memcpy(th, tn, P * sizeof *th);
        double *e = prob;   /* the accepted step's probabilities */
        prob = prob2;
        prob2 = e;
        f = fn;
    }
    if (!isfinite(f)) { rc = prm_error_set(err, "diverged"); goto done; }
    m->n_iter = it;
    m->intercept = th[0];
    memcpy(m->coef, th + 1, T * sizeof *m->coef);
done:
    free(X.idx); free(X.val); free(th); free(g); free(d); free(tn); free(prob); free(prob2); free(w);
    free(H); free(work);
    return rc;
}

void logit_predict(const model *m, const mview *v, size_t n, double *z)
{
    size_t K = 2 * m->nf;
    uint32_t idx[K ? K : 1];
    double val[K ? K : 1];
    for (size_t i = 0; i < n; i++) {
        size_t k = encode_row(m, v, i, idx, val);
        double e = m->intercept;
        for (size_t s = 0; s < k; s++)
            if (idx[s]) e += m->coef[idx[s] - 1] * val[s];
        z[i] = e;
    }
}

void logit_explain(const model *m, const mview *v, size_t row, double *contrib, double *base)
{
    size_t K = 2 * m->nf;
    uint32_t idx[K ? K : 1];
    double val[K ? K : 1];
    double *x = model_xcalloc(m->n_terms, sizeof *x);
    size_t k = encode_row(m, v, row, idx, val);
    double b = m->intercept;
    for (size_t t = 0; t < m->n_terms; t++) b += m->coef[t] * m->term_mean[t];
    if (x) {
        for (size_t s = 0; s < k; s++)
            if (idx[s]) x[idx[s] - 1] += val[s];
        for (size_t j = 0; j < m->nf; j++) {
            double c = 0;
            for (size_t t = m->term_start[j]; t < m->term_start[j + 1]; t++)
                c += m->coef[t] * (x[t] - m->term_mean[t]);
            contrib[j] = c;
        }
        free(x);
    }
    *base = b;
}

void logit_free(model *m)
{
    if (m->term_names)
        for (size_t t = 0; t < m->n_terms; t++) free(m->term_names[t]);
    free(m->term_names);
    free(m->coef);
    free(m->term_mean);
    free(m->term_start);
    m->term_names = NULL;
    m->coef = m->term_mean = NULL;
    m->term_start = NULL;
}
