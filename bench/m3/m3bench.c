/* m3bench.c - forecasts one M3 subset (yearly, quarterly, monthly, other)
 * with every prm.ts method and scores them, with R's forecasts
 * (r_forecast.R: ets, thetaf, auto.arima and their mean) and the original
 * M3 submissions, through engine/metrics.c.  Driven by bench/m3/run.sh.
 *
 *   m3bench M3_DIR SUBSET OUTDIR STEP [maxit_per_dim abstol [restarts]]
 *
 * Prints one markdown table.  Reads OUTDIR/r_SUBSET_{ets,thetaf,arima}.csv
 * and their _time.csv when present.  Writes OUTDIR/ours_SUBSET.csv (per
 * series and method: sMAPE, MASE).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "metrics.h"
#include "ts.h"
#include "ts_int.h"


#define MAXS 1500 /* monthly: 1428 */
#define MAXN 160
#define MAXH 18
#define MAXMETH 48

typedef struct series {
    char id[8];
    int n, h, m;
    double y[MAXN], test[MAXH];
} series;

static series S[MAXS];
static int NS;

typedef struct method {
    char name[32];
    double *fc;       /* NS * h * 5: mean lo80 hi80 lo95 hi95 */
    int has_pi, have;
    double wall, cpu; /* -1 when unknown */
    int nseries_timed;
} method;

static method M[MAXMETH];
static int NM;

static FILE *gz(const char *dir, const char *file)
{
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "gzip -dc '%s/%s'", dir, file);
    FILE *f = popen(cmd, "r");
    if (!f) {
        fprintf(stderr, "m3bench: cannot run %s\n", cmd);
        exit(1);
    }
    return f;
}

static int split(char *line, char **fld, int max)
{
    int k = 0;
    char *p = line;
    while (k < max) {
        fld[k++] = p;
        char *c = strchr(p, ',');
        if (!c)
            break;
        *c = 0;
        p = c + 1;
    }
    char *nl = strpbrk(fld[k - 1], "\r\n");
    if (nl)
        *nl = 0;
    return k;
}

static int find_series(const char *id)
{
    for (int i = 0; i < NS; i++)
        if (strcmp(S[i].id, id) == 0)
            return i;
    return -1;
}

static void load(const char *dir, const char *subset, int step)
{
    char file[256], *line = NULL, *fld[200];
    size_t cap = 0;
    snprintf(file, sizeof file, "m3_%s_train.csv.gz", subset);
    FILE *f = gz(dir, file);
    int row = 0;
    if (getline(&line, &cap, f) < 0)
        exit(1);
    while (getline(&line, &cap, f) > 0) {
        int nf = split(line, fld, 200);
        if (row++ % step != 0)
            continue;
        series *s = &S[NS++];
        snprintf(s->id, sizeof s->id, "%s", fld[0]);
        s->n = atoi(fld[2]);
        s->h = atoi(fld[3]);
        s->m = atoi(fld[4]);
        for (int i = 0; i < s->n && 7 + i < nf; i++)
            s->y[i] = atof(fld[7 + i]);
    }
    pclose(f);
    snprintf(file, sizeof file, "m3_%s_test.csv.gz", subset);
    f = gz(dir, file);
    if (getline(&line, &cap, f) < 0)
        exit(1);
    while (getline(&line, &cap, f) > 0) {
        int nf = split(line, fld, 200);
        int i = find_series(fld[0]);
        if (i < 0)
            continue;
        for (int k = 0; k < S[i].h && 7 + k < nf; k++)
            S[i].test[k] = atof(fld[7 + k]);
    }
    pclose(f);
    free(line);
}

static method *add_method(const char *name, int has_pi)
{
    for (int i = 0; i < NM; i++)
        if (strcmp(M[i].name, name) == 0)
            return &M[i];
    method *m = &M[NM++];
    snprintf(m->name, sizeof m->name, "%s", name);
    m->fc = calloc((size_t)NS * MAXH * 5, sizeof(double));
    for (int i = 0; i < NS * MAXH * 5; i++)
        m->fc[i] = NAN;
    m->has_pi = has_pi;
    m->wall = m->cpu = -1;
    return m;
}

static double *slot(method *m, int i, int q)
{
    return m->fc + ((size_t)i * 5 + (size_t)q) * MAXH;
}

static double now_wall(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

/* M3_CALIB_DUMP=FILE: per series, the uncalibrated combination's
 * rolling-origin ratios |error| / half-width on its training data ("S id
 * level N ratios"), the length each ratio's forecast was fitted on ("L id n
 * N lengths", n the series' own) and the same ratios of its forecast on the
 * test ("T id level h ratios"); bench/m3/calib_rules.py scores width rules on them (run
 * with M3_TRAIN_HOLDOUT=1 to choose one without the test parts). */
static void dump_calibration(const char *file)
{
    FILE *f = fopen(file, "w");
    if (!f) {
        fprintf(stderr, "m3bench: cannot write %s\n", file);
        exit(1);
    }
    ts_options o;
    ts_options_init(&o);
    o.method = TS_COMBO;
    static double ratio[2 * TS_CALIB_ORIGINS * MAXH];
    static int fitlen[TS_CALIB_ORIGINS * MAXH];
    for (int i = 0; i < NS; i++) {
        o.period = S[i].m;
        o.h = S[i].h;
        o.calib_origins = 0;
        ts_result r;
        prm_error err;
        if (ts_forecast(S[i].y, S[i].n, &o, &r, &err) != 0)
            continue;
        o.calib_origins = TS_CALIB_ORIGINS;
        int cap = TS_CALIB_ORIGINS * o.h;
        int N = strncmp(r.method, "Combo", 5) == 0 ? ts_calib_ratios(S[i].y, S[i].n, &o, ratio, cap, fitlen) : 0;
        fprintf(f, "L %s %d %d", S[i].id, S[i].n, N);
        for (int k = 0; k < N; k++)
            fprintf(f, " %d", fitlen[k]);
        fprintf(f, "\n");
        for (int j = 0; j < 2; j++) {
            fprintf(f, "S %s %d %d", S[i].id, j, N);
            for (int k = 0; k < N; k++)
                fprintf(f, " %.5g", ratio[j * cap + k]);
            fprintf(f, "\nT %s %d %d", S[i].id, j, o.h);
            for (int t = 0; t < o.h; t++) {
                double e = S[i].test[t] - r.mean[t];
                double half = e >= 0 ? ts_upper(&r, j)[t] - r.mean[t] : r.mean[t] - ts_lower(&r, j)[t];
                fprintf(f, " %.5g", half > 0 ? fabs(e) / half : (e == 0 ? 0.0 : 1e9));
            }
            fprintf(f, "\n");
        }
        ts_result_free(&r);
    }
    fclose(f);
}

static char ETS_MODEL[MAXS][96];
static double ETS_LOGLIK[MAXS];

/* calib: 0 the default (the combination's widths calibrated on each series,
 * short series from the subset's pool, ts_calib_pool_keep over the training
 * parts, inside the timing; the forecasts reuse the pass's ratios), 1
 * uncalibrated, 2 without the pool. */
static void run_ours(const char *label, ts_method meth, int calib)
{
    method *m = add_method(label, 1);
    ts_options o;
    ts_options_init(&o);
    o.method = meth;
    if (calib == 1)
        o.calib_origins = 0;
    static ts_calib_cache cache;
    double w0 = now_wall();
    clock_t c0 = clock();
    if (calib == 0 && (meth == TS_COMBO || meth == TS_AUTO) && NS > 0) {
        static const double *ys[MAXS];
        static int ns[MAXS];
        for (int i = 0; i < NS; i++) {
            ys[i] = S[i].y;
            ns[i] = S[i].n;
        }
        o.period = S[0].m; /* one frequency and horizon per subset */
        o.h = S[0].h;
        prm_error err;
        /* the pool pass keeps each series' ratios; its forecast reuses them */
        if (ts_calib_pool_keep(ys, ns, NS, &o, &cache, &err) < 0)
            fprintf(stderr, "m3bench: %s: %s\n", label, err.msg);
        o.calib_cache = &cache;
    }
    for (int i = 0; i < NS; i++) {
        o.period = S[i].m;
        o.h = S[i].h;
        o.calib_index = i;
        ts_result r;
        prm_error err;
        if (ts_forecast(S[i].y, S[i].n, &o, &r, &err) != 0) {
            fprintf(stderr, "m3bench: %s %s: %s\n", label, S[i].id, err.msg);
            continue;
        }
        if (meth == TS_ETS) { /* for the optimiser comparison with R's ets */
            snprintf(ETS_MODEL[i], sizeof ETS_MODEL[i], "%s", r.method);
            ETS_LOGLIK[i] = r.loglik;
        }
        memcpy(slot(m, i, 0), r.mean, (size_t)o.h * sizeof(double));
        memcpy(slot(m, i, 1), ts_lower(&r, 0), (size_t)o.h * sizeof(double));
        memcpy(slot(m, i, 2), ts_upper(&r, 0), (size_t)o.h * sizeof(double));
        memcpy(slot(m, i, 3), ts_lower(&r, 1), (size_t)o.h * sizeof(double));
        memcpy(slot(m, i, 4), ts_upper(&r, 1), (size_t)o.h * sizeof(double));
        ts_result_free(&r);
    }
    ts_calib_cache_free(&cache);
    m->cpu = (double)(clock() - c0) / CLOCKS_PER_SEC;
    m->wall = now_wall() - w0;
    m->nseries_timed = NS;
    m->have = 1;
}

/* A combination of already computed members: mean or median of the means,
 * mean of the bounds. */
static void combine(const char *label, const char **names, int k, int median)
{
    method *mem[8];
    for (int j = 0; j < k; j++) {
        mem[j] = NULL;
        for (int i = 0; i < NM; i++)
            if (strcmp(M[i].name, names[j]) == 0)
                mem[j] = &M[i];
        if (!mem[j] || !mem[j]->have)
            return;
    }
    method *m = add_method(label, 1);
    for (int i = 0; i < NS; i++)
        for (int q = 0; q < 5; q++)
            for (int t = 0; t < S[i].h; t++) {
                double v[8], s = 0.0;
                for (int j = 0; j < k; j++) {
                    v[j] = slot(mem[j], i, q)[t];
                    s += v[j];
                }
                if (median && q == 0 && k == 3) {
                    double a = v[0], b = v[1], c = v[2];
                    s = fmax(fmin(a, b), fmin(fmax(a, b), c));
                } else {
                    s /= k;
                }
                slot(m, i, q)[t] = s;
            }
    m->have = 1;
}

static void load_r_file(const char *out, const char *subset, const char *meth)
{
    char file[1200], *line = NULL, *fld[16];
    size_t cap = 0;
    snprintf(file, sizeof file, "%s/r_%s_%s.csv", out, subset, meth);
    FILE *f = fopen(file, "r");
    if (!f)
        return;
    if (getline(&line, &cap, f) < 0)
        exit(1);
    while (getline(&line, &cap, f) > 0) {
        if (split(line, fld, 16) < 8)
            continue;
        int i = find_series(fld[0]);
        if (i < 0)
            continue;
        method *m = add_method(fld[1], 1);
        m->have = 1;
        int k = atoi(fld[2]) - 1;
        if (k < 0 || k >= MAXH)
            continue;
        for (int q = 0; q < 5; q++)
            slot(m, i, q)[k] = atof(fld[3 + q]);
    }
    fclose(f);
    snprintf(file, sizeof file, "%s/r_%s_%s_time.csv", out, subset, meth);
    f = fopen(file, "r");
    if (f) {
        if (getline(&line, &cap, f) < 0)
            exit(1);
        while (getline(&line, &cap, f) > 0) {
            if (split(line, fld, 16) < 4)
                continue;
            method *m = add_method(fld[0], 1);
            m->wall = atof(fld[1]);
            m->cpu = atof(fld[2]);
            m->nseries_timed = atoi(fld[3]);
        }
        fclose(f);
    }
    free(line);
}

static void load_r(const char *out, const char *subset)
{
    load_r_file(out, subset, "ets");
    load_r_file(out, subset, "thetaf");
    load_r_file(out, subset, "arima");
}

static void load_original(const char *dir)
{
    char *line = NULL, *fld[32];
    size_t cap = 0;
    FILE *f = gz(dir, "m3_original_forecasts.csv.gz");
    if (getline(&line, &cap, f) < 0)
        exit(1);
    while (getline(&line, &cap, f) > 0) {
        int nf = split(line, fld, 32);
        int i = find_series(fld[1]);
        if (i < 0)
            continue;
        char name[48];
        snprintf(name, sizeof name, "M3 %s", fld[0]);
        method *m = add_method(name, 0);
        m->have = 1;
        for (int k = 0; k < S[i].h && 2 + k < nf; k++)
            slot(m, i, 0)[k] = fld[2 + k][0] ? atof(fld[2 + k]) : NAN;
    }
    pclose(f);
    free(line);
}

typedef struct score {
    double smape, mase, cov80, cov95;
    int nseries;
} score;

static score score_method(method *m, FILE *per)
{
    score sc = {0, 0, 0, 0, 0};
    int npts = 0;
    for (int i = 0; i < NS; i++) {
        series *s = &S[i];
        if (isnan(slot(m, i, 0)[0]))
            continue;
        metrics_interval iv[2] = {{80, slot(m, i, 1), slot(m, i, 2)},
                                  {95, slot(m, i, 3), slot(m, i, 4)}};
        metrics_result r;
        prm_error err;
        if (metrics_compute(s->test, slot(m, i, 0), s->h, s->y, s->n, s->m, iv,
                            m->has_pi ? 2 : 0, &r, &err) != 0)
            continue;
        sc.smape += r.smape;
        sc.mase += r.mase;
        if (m->has_pi) {
            sc.cov80 += r.coverage[0] * r.n;
            sc.cov95 += r.coverage[1] * r.n;
        }
        npts += r.n;
        sc.nseries++;
        if (per)
            fprintf(per, "%s,%s,%.4f,%.4f\n", s->id, m->name, r.smape, r.mase);
    }
    if (sc.nseries) {
        sc.smape /= sc.nseries;
        sc.mase /= sc.nseries;
    }
    if (npts) {
        sc.cov80 /= npts;
        sc.cov95 /= npts;
    }
    return sc;
}

int main(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr, "usage: m3bench M3_DIR SUBSET OUTDIR STEP [maxit_per_dim abstol]\n");
        return 2;
    }
    const char *dir = argv[1], *subset = argv[2], *out = argv[3];
    int step = atoi(argv[4]);
    if (argc >= 7)
        ts_ets_set_effort(atoi(argv[5]), atof(argv[6]), argc >= 8 ? atoi(argv[7]) : -1);
    if (getenv("M3_ETS_BETA_PRIOR")) /* for choosing the prior's weight */
        ts_ets_set_beta_prior(atof(getenv("M3_ETS_BETA_PRIOR")));
    if (getenv("M3_ETS_FIT")) /* 0 own, 1 R's, 2 chosen by rolling origin (ts_ets_set_fit) */
        ts_ets_set_fit(atoi(getenv("M3_ETS_FIT")));
    load(dir, subset, step < 1 ? 1 : step);
    /* M3_TRAIN_HOLDOUT=1: the last h observations of each training part are
     * the test, the rest the training data; the real test part is never
     * read.  For choosing rules without looking at the evaluation data (R's
     * forecasts and the submissions, made for the real test, are left out). */
    /* M3_TRAIN_HOLDOUT=2 (3, ...): the origin 2h (3h) before the training
     * part's end, the h observations after it the test: the same rules at
     * other series lengths, still inside the training parts. */
    const char *holdout = getenv("M3_TRAIN_HOLDOUT");
    int pseudo = holdout ? atoi(holdout) : 0;
    if (pseudo > 0) {
        int k = 0;
        for (int i = 0; i < NS; i++) {
            if (S[i].n - pseudo * S[i].h < 8)
                continue;
            S[k] = S[i];
            S[k].n -= pseudo * S[k].h;
            memcpy(S[k].test, S[i].y + S[k].n, (size_t)S[k].h * sizeof(double));
            k++;
        }
        fprintf(stderr, "m3bench: training-part holdout %d, %d of %d series\n", pseudo, k, NS);
        NS = k;
    }
    const char *dump = getenv("M3_CALIB_DUMP");
    if (dump) {
        dump_calibration(dump);
        return 0;
    }
    const char *only = getenv("M3_METHODS"); /* e.g. "ets,theta" for a quick look */
    struct { const char *label; ts_method m; int calib; } ours[] = {
        {"prm auto-ETS", TS_ETS, 0}, {"prm Theta", TS_THETA, 0}, {"prm auto-ARIMA", TS_ARIMA, 0},
        {"prm combo (EAT, default)", TS_COMBO, 0}, {"prm combo unpooled", TS_COMBO, 2},
        {"prm combo uncalibrated", TS_COMBO, 1},
        {"prm damped ETS", TS_DAMPED, 0}, {"prm seasonal naive", TS_SNAIVE, 0},
        {"prm naive", TS_NAIVE, 0}, {"prm drift", TS_DRIFT, 0}};
    for (size_t j = 0; j < sizeof ours / sizeof *ours; j++) {
        const char *short_name = ts_method_name(ours[j].m);
        if (only && !strstr(only, short_name))
            continue;
        run_ours(ours[j].label, ours[j].m, ours[j].calib);
    }
    if (!pseudo) {
        load_r(out, subset);
        const char *reat[] = {"R_ets", "R_auto.arima", "R_thetaf"};
        combine("R mean ets+auto.arima+thetaf", reat, 3, 0);
        load_original(dir);
    }
    char file[1200];
    snprintf(file, sizeof file, "%s/ours_%s_ets_models.csv", out, subset);
    FILE *em = fopen(file, "w");
    if (em) {
        fprintf(em, "series,model,loglik\n");
        for (int i = 0; i < NS; i++)
            if (ETS_MODEL[i][0])
                fprintf(em, "%s,%s,%.6f\n", S[i].id, ETS_MODEL[i], ETS_LOGLIK[i]);
        fclose(em);
    }
    snprintf(file, sizeof file, "%s/ours_%s.csv", out, subset);
    FILE *per = fopen(file, "w");
    double rcpu = -1, acpu = -1;
    for (int i = 0; i < NM; i++) {
        if (strcmp(M[i].name, "R_ets") == 0 && M[i].nseries_timed == NS)
            rcpu = M[i].cpu;
        if (strcmp(M[i].name, "R_auto.arima") == 0 && M[i].nseries_timed == NS)
            acpu = M[i].cpu;
    }
    printf("\n### %s: %d series (every %d-th), h = %d\n\n", subset, NS, step, S[0].h);
    printf("| method | sMAPE | MASE | 80%% cov | 95%% cov | wall s | CPU s | R ets CPU / ours "
           "| R auto.arima CPU / ours |\n");
    printf("|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for (int i = 0; i < NM; i++) {
        method *m = &M[i];
        if (!m->have)
            continue;
        score sc = score_method(m, strncmp(m->name, "M3 ", 3) ? per : NULL);
        if (!sc.nseries)
            continue;
        char cov80[16] = "", cov95[16] = "", wall[16] = "", cpu[16] = "", ratio[24] = "",
             aratio[24] = "";
        if (m->has_pi) {
            snprintf(cov80, sizeof cov80, "%.1f%%", sc.cov80);
            snprintf(cov95, sizeof cov95, "%.1f%%", sc.cov95);
        }
        if (m->cpu >= 0 && m->nseries_timed == NS) {
            snprintf(wall, sizeof wall, "%.2f", m->wall);
            snprintf(cpu, sizeof cpu, "%.2f", m->cpu);
            if (rcpu > 0 && strncmp(m->name, "R_", 2) != 0)
                snprintf(ratio, sizeof ratio, "%.0fx", rcpu / fmax(m->cpu, 1e-3));
            if (acpu > 0 && strncmp(m->name, "R_", 2) != 0)
                snprintf(aratio, sizeof aratio, "%.0fx", acpu / fmax(m->cpu, 1e-3));
        }
        printf("| %s%s | %.3f | %.3f | %s | %s | %s | %s | %s | %s |\n", m->name,
               sc.nseries < NS ? " (partial)" : "", sc.smape, sc.mase, cov80, cov95, wall, cpu,
               ratio, aratio);
    }
    if (per)
        fclose(per);
    return 0;
}
