/* ibm_bench.c - our side of bench/scoring/ibm.sh: the logistic and GBDT
 * models (engine/model*.c) on the IBM sales win/loss split.
 *
 * Usage: ibm_bench CSV.gz FEATURESET REPEATS [kind.param=value ...]
 * Reads the gzipped CSV through `gzip -dc`, splits it as sk_ibm.py does
 * (sorted unique Opportunity Number: the first 80% of ids train, the rest
 * test; rows in id order, so the GBDT's early-stopping slice is the latest
 * 10% of the training ids) and prints one line per model:
 *   ours <model> <featureset> auc logloss brier train_seconds n_train n_test
 * Train time is the best of REPEATS fits on one thread.
 *
 * Then a calibration check on held-out time: each model is fitted on the
 * first 90% of the training rows, isotonic and Platt maps are fitted on the
 * last 10%, and the test rows are scored with each:
 *   calib <model> <featureset> <none|isotonic|platt> auc logloss brier ece
 */
#include "clsmetrics.h"
#include "model.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAXCOL 32

static const char *const categorical[] = {
    "Supplies Subgroup", "Supplies Group", "Region", "Route To Market", "Competitor Type", NULL
};
/* known at registration; see sk_ibm.py for why the others are left out */
static const char *const registration[] = {
    "Supplies Subgroup", "Supplies Group", "Region", "Route To Market", "Competitor Type",
    "Opportunity Amount USD", "Client Size By Revenue", "Client Size By Employee Count",
    "Revenue From Client Past Two Years", "Deal Size Category", NULL
};

static int in_list(const char *const *l, const char *s)
{
    for (; *l; l++)
        if (strcmp(*l, s) == 0) return 1;
    return 0;
}

typedef struct table {
    size_t n, nc;
    char *name[MAXCOL];
    char ***cell;   /* cell[row][col] */
} table;

static int split_line(char *line, char **out, int max)
{
    int k = 0;
    line[strcspn(line, "\r\n")] = 0;
    for (char *p = line;; ) {
        if (k == max) return -1;
        out[k++] = p;
        char *c = strchr(p, ',');
        if (!c) break;
        *c = 0;
        p = c + 1;
    }
    return k;
}

static int read_csv(const char *path, table *t)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "gzip -dc '%s'", path);
    FILE *f = popen(cmd, "r");
    if (!f) return -1;
    char *line = NULL;
    size_t cap = 0, rows_cap = 0;
    ssize_t len;
    memset(t, 0, sizeof *t);
    while ((len = getline(&line, &cap, f)) > 0) {
        char *fields[MAXCOL];
        char *copy = strdup(line);
        int k = split_line(copy, fields, MAXCOL);
        if (k <= 0) { free(copy); continue; }
        if (t->nc == 0) {
            t->nc = (size_t)k;
            for (int j = 0; j < k; j++) t->name[j] = strdup(fields[j]);
            free(copy);
            continue;
        }
        if ((size_t)k != t->nc) { fprintf(stderr, "bad row %zu\n", t->n + 2); free(copy); continue; }
        if (t->n == rows_cap) {
            rows_cap = rows_cap ? rows_cap * 2 : 1024;
            t->cell = realloc(t->cell, rows_cap * sizeof *t->cell);
        }
        char **r = malloc(t->nc * sizeof *r);
        memcpy(r, fields, t->nc * sizeof *r);   /* r[0] is `copy`, freed with the row */
        t->cell[t->n++] = r;
    }
    free(line);
    return pclose(f) == 0 && t->n > 0 ? 0 : -1;
}

static int col_index(const table *t, const char *name)
{
    for (size_t j = 0; j < t->nc; j++)
        if (strcmp(t->name[j], name) == 0) return (int)j;
    return -1;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);   /* CPU time: the machine is shared */
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

typedef struct rowid { long id; size_t row; } rowid;

static int cmp_rowid(const void *a, const void *b)
{
    const rowid *x = a, *y = b;
    if (x->id != y->id) return x->id < y->id ? -1 : 1;
    return (x->row > y->row) - (x->row < y->row);   /* stable: file order */
}

static int cmp_long(const void *a, const void *b)
{
    long x = *(const long *)a, y = *(const long *)b;
    return (x > y) - (x < y);
}

/* Builds the columns of `rows` (indices into t) for the chosen features.
 * Categorical vocabularies are per data set, in order of first appearance:
 * the model matches labels by name, so train and test need not agree. */
static void build(const table *t, const size_t *rows, size_t n, const int *feat, size_t nf,
                  model_column *cols)
{
    for (size_t j = 0; j < nf; j++) {
        int c = feat[j];
        cols[j].name = t->name[c];
        if (!in_list(categorical, t->name[c])) {
            double *v = malloc(n * sizeof *v);
            for (size_t i = 0; i < n; i++) v[i] = strtod(t->cell[rows[i]][c], NULL);
            cols[j].type = MODEL_NUMERIC;
            cols[j].num = v;
            continue;
        }
        int32_t *code = malloc(n * sizeof *code);
        const char **vocab = malloc(n * sizeof *vocab);
        size_t nv = 0;
        for (size_t i = 0; i < n; i++) {
            const char *s = t->cell[rows[i]][c];
            size_t k = 0;
            while (k < nv && strcmp(vocab[k], s) != 0) k++;
            if (k == nv) vocab[nv++] = s;
            code[i] = (int32_t)k;
        }
        cols[j].type = MODEL_CATEGORICAL;
        cols[j].cat = code;
        cols[j].vocab = vocab;
        cols[j].n_vocab = nv;
    }
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: %s CSV.gz all|registration REPEATS [kind.param=value ...]\n", argv[0]);
        return 2;
    }
    const char *fset = argv[2];
    int repeats = atoi(argv[3]);
    table t;
    if (read_csv(argv[1], &t) < 0) { fprintf(stderr, "cannot read %s\n", argv[1]); return 1; }
    int cid = col_index(&t, "Opportunity Number"), cy = col_index(&t, "Opportunity Result");
    if (cid < 0 || cy < 0) { fprintf(stderr, "missing id / target column\n"); return 1; }
    int feat[MAXCOL];
    size_t nf = 0;
    for (size_t j = 0; j < t.nc; j++) {
        if ((int)j == cid || (int)j == cy) continue;
        if (strcmp(fset, "all") == 0 || in_list(registration, t.name[j])) feat[nf++] = (int)j;
    }
    rowid *ri = malloc(t.n * sizeof *ri);
    long *ids = malloc(t.n * sizeof *ids);
    for (size_t i = 0; i < t.n; i++) {
        ri[i].id = atol(t.cell[i][cid]);
        ri[i].row = i;
        ids[i] = ri[i].id;
    }
    qsort(ri, t.n, sizeof *ri, cmp_rowid);
    qsort(ids, t.n, sizeof *ids, cmp_long);
    size_t nu = 0;
    for (size_t i = 0; i < t.n; i++)
        if (nu == 0 || ids[i] != ids[nu - 1]) ids[nu++] = ids[i];
    long cut = ids[(size_t)((double)nu * 0.8) - 1];
    size_t *tr = malloc(t.n * sizeof *tr), *te = malloc(t.n * sizeof *te), ntr = 0, nte = 0;
    for (size_t i = 0; i < t.n; i++) {
        if (ri[i].id <= cut) tr[ntr++] = ri[i].row;
        else te[nte++] = ri[i].row;
    }
    double *ytr = malloc(ntr * sizeof *ytr), *yte = malloc(nte * sizeof *yte), *p = malloc(nte * sizeof *p);
    for (size_t i = 0; i < ntr; i++) ytr[i] = strcmp(t.cell[tr[i]][cy], "Won") == 0;
    for (size_t i = 0; i < nte; i++) yte[i] = strcmp(t.cell[te[i]][cy], "Won") == 0;
    model_column ctr[MAXCOL], cte[MAXCOL];
    build(&t, tr, ntr, feat, nf, ctr);
    build(&t, te, nte, feat, nf, cte);
    model_data dtr = { ntr, nf, ctr }, dte = { nte, nf, cte };

    const model_kind kinds[] = { MODEL_LOGISTIC, MODEL_GBDT };
    for (int k = 0; k < 2; k++) {
        model_params prm;
        model_params_init(&prm, kinds[k]);
        prm_error err;
        for (int a = 4; a < argc; a++) {   /* e.g. gbdt.learning_rate=0.05 */
            char key[128];
            const char *dot = strchr(argv[a], '.'), *eq = strchr(argv[a], '=');
            if (!dot || !eq || eq < dot || (size_t)(eq - dot) >= sizeof key) {
                fprintf(stderr, "bad parameter %s\n", argv[a]);
                return 2;
            }
            if (strncmp(argv[a], model_kind_name(kinds[k]), (size_t)(dot - argv[a])) != 0) continue;
            memcpy(key, dot + 1, (size_t)(eq - dot - 1));
            key[eq - dot - 1] = 0;
            if (model_params_set(&prm, key, atof(eq + 1), &err) < 0) {
                fprintf(stderr, "%s\n", err.msg);
                return 2;
            }
        }
        model *m = NULL;
        double best = 1e9;
        for (int r = 0; r < repeats; r++) {
            model_free(m);
            double t0 = now();
            if (model_fit(kinds[k], &dtr, ytr, &prm, &m, &err) < 0) {
                fprintf(stderr, "%s\n", err.msg);
                return 1;
            }
            double dt = now() - t0;
            if (dt < best) best = dt;
        }
        if (model_predict(m, &dte, p, &err) < 0) { fprintf(stderr, "%s\n", err.msg); return 1; }
        printf("ours %s %s %.4f %.4f %.4f %.4f %zu %zu %d\n", model_kind_name(kinds[k]), fset,
               cls_auc(p, yte, nte), cls_logloss(p, yte, nte), cls_brier(p, yte, nte), best, ntr, nte,
               model_n_iter(m));
        model_free(m);
    }
    /* calibration on held-out time */
    size_t nfit = ntr - ntr / 10;
    model_column ccal[MAXCOL];
    for (size_t j = 0; j < nf; j++) {
        ccal[j] = ctr[j];
        if (ccal[j].num) ccal[j].num += nfit;
        if (ccal[j].cat) ccal[j].cat += nfit;
    }
    model_data dfit = { nfit, nf, ctr }, dcal = { ntr - nfit, nf, ccal };
    static const char *const cname[] = { "none", "isotonic", "platt" };
    for (int k = 0; k < 2; k++) {
        prm_error err;
        model *m;
        if (model_fit(kinds[k], &dfit, ytr, NULL, &m, &err) < 0) { fprintf(stderr, "%s\n", err.msg); return 1; }
        for (int c = 0; c < 3; c++) {
            if (model_calibrate(m, &dcal, ytr + nfit, (model_calib_kind)c, &err) < 0 ||
                model_predict(m, &dte, p, &err) < 0) {
                fprintf(stderr, "%s\n", err.msg);
                return 1;
            }
            printf("calib %s %s %s %.4f %.4f %.4f %.4f\n", model_kind_name(kinds[k]), fset, cname[c],
                   cls_auc(p, yte, nte), cls_logloss(p, yte, nte), cls_brier(p, yte, nte),
                   cls_ece(p, yte, nte, 10));
        }
        model_free(m);
    }
    return 0;
}
