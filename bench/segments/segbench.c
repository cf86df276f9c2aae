/* segbench.c - a synthetic benchmark of segment series (issue 11): short,
 * noisy, often zero, sometimes shifting level, like a region x tier's
 * not-yet-registered revenue per month or quarter.  Every series comes from
 * a known generating process, its future from the same process, so the
 * coverage of the intervals can be measured against the truth.
 *
 *   segbench [NSERIES_PER_FAMILY [SEED]]      (bench/segments/run.sh)
 *
 * Prints one markdown table per method: per family the 80% and 95%
 * coverage (pooled over the forecast points), MASE, and the methods the
 * automatic choice took.  The generators (and their parameters) were fixed
 * before any forecast was scored; nothing in prm.ts reads this file.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"
#include "rng.h"
#include "ts.h"

#define MAXN 64
#define MAXH 12

typedef struct family {
    const char *name, *what;
    int m, nmin, nmax, h;
} family;

static const family FAM[] = {
    {"short_seasonal", "monthly, 13-23 obs (< 2 seasons), multiplicative season 30%, noise 15%",
     12, 13, 23, 6},
    {"short_flat", "monthly, 8-20 obs, a level with 25% noise", 12, 8, 20, 6},
    {"intermittent", "monthly, 24-48 obs, demand with probability 0.2-0.6, gamma sizes", 12,
     24, 48, 6},
    {"level_shift", "monthly, 30-48 obs, the level moves by -50%..+80% 3-12 months before "
     "the origin", 12, 30, 48, 6},
    {"trend_noisy", "monthly, 24-40 obs, a trend of +-2%/month, noise 20%", 12, 24, 40, 6},
    {"quarterly_short", "quarterly, 8-14 obs, season 20%, noise 12%", 4, 8, 14, 4},
    {"seasonal_zeros", "monthly, 36-60 obs, season 50%, one shutdown month a year, noise 15%",
     12, 36, 60, 6},
};
#define NFAM ((int)(sizeof FAM / sizeof *FAM))

/* One series of family f: n observations then h future values. */
static int generate(int f, rng *r, double *y, int *n_out)
{
    const family *fa = &FAM[f];
    int n = fa->nmin + (int)rng_below(r, (uint64_t)(fa->nmax - fa->nmin + 1));
    int h = fa->h, m = fa->m;
    double level = 50.0 + 200.0 * rng_uniform(r);
    double phase = 2.0 * M_PI * rng_uniform(r);
    int tot = n + h;
    switch (f) {
    case 0: /* short_seasonal */
        for (int t = 0; t < tot; t++)
            y[t] = level * (1.0 + 0.3 * sin(2.0 * M_PI * t / m + phase)) *
                   (1.0 + 0.15 * rng_normal(r));
        break;
    case 1: /* short_flat */
        for (int t = 0; t < tot; t++)
            y[t] = level * (1.0 + 0.25 * rng_normal(r));
        break;
    case 2: { /* intermittent */
        double p = 0.2 + 0.4 * rng_uniform(r);
        for (int t = 0; t < tot; t++)
            y[t] = rng_uniform(r) < p ? level * rng_gamma(r, 2.0) / 2.0 : 0.0;
        break;
    }
    case 3: { /* level_shift */
        int at = n - 3 - (int)rng_below(r, 10);
        double shift = -0.5 + 1.3 * rng_uniform(r);
        for (int t = 0; t < tot; t++)
            y[t] = level * (t >= at ? 1.0 + shift : 1.0) * (1.0 + 0.15 * rng_normal(r));
        break;
    }
    case 4: { /* trend_noisy */
        double g = -0.02 + 0.04 * rng_uniform(r);
        for (int t = 0; t < tot; t++)
            y[t] = level * exp(g * t) * (1.0 + 0.2 * rng_normal(r));
        break;
    }
    case 5: /* quarterly_short */
        for (int t = 0; t < tot; t++)
            y[t] = level * (1.0 + 0.2 * sin(2.0 * M_PI * t / m + phase)) *
                   (1.0 + 0.12 * rng_normal(r));
        break;
    default: { /* seasonal_zeros */
        int shut = (int)rng_below(r, (uint64_t)m);
        for (int t = 0; t < tot; t++)
            y[t] = t % m == shut ? 0.0
                                 : level * (1.0 + 0.5 * sin(2.0 * M_PI * t / m + phase)) *
                                       (1.0 + 0.15 * rng_normal(r));
        break;
    }
    }
    for (int t = 0; t < tot; t++)
        y[t] = fmax(0.0, round(y[t])); /* revenue: non-negative, whole units */
    *n_out = n;
    return h;
}

typedef struct tally {
    double cov80, cov95, mase;
    int pts, nser, nmase, fail;
    char chosen[6][32];
    int nchosen[6];
} tally;

static void note_method(tally *t, const char *name)
{
    char key[32];
    snprintf(key, sizeof key, "%.*s", (int)strcspn(name, "("), name);
    for (int i = 0; i < 6; i++) {
        if (t->nchosen[i] && strcmp(t->chosen[i], key) == 0) {
            t->nchosen[i]++;
            return;
        }
        if (!t->nchosen[i]) {
            snprintf(t->chosen[i], sizeof t->chosen[i], "%s", key);
            t->nchosen[i] = 1;
            return;
        }
    }
}

/* Scores one forecast of y[n .. n+h-1] (the history y[0..n-1]) into t. */
static void score_into(tally *t, const ts_result *res, const double *y, int n, int h, int m)
{
    metrics_interval iv[2] = {{80, ts_lower(res, 0), ts_upper(res, 0)},
                              {95, ts_lower(res, 1), ts_upper(res, 1)}};
    metrics_result mr;
    prm_error err;
    if (metrics_compute(y + n, res->mean, h, y, n, m, iv, 2, &mr, &err) != 0)
        return;
    t->cov80 += mr.coverage[0] * mr.n / 100.0;
    t->cov95 += mr.coverage[1] * mr.n / 100.0;
    t->pts += mr.n;
    if (isfinite(mr.mase)) {
        t->mase += mr.mase;
        t->nmase++;
    }
    t->nser++;
}

/* Sibling segments (issue 11, item 4): groups of SIB_K short monthly series
 * (13-20 observations, < 2 seasons, one length per group) with their own
 * levels and 15% noise, a 30% multiplicative season shared by the group
 * ("shared") or with its own phase per series ("differ").  Each series is
 * forecast by the default method without and with the seasonal indexes
 * pooled over its group's training data (ts_season_pool). */
#define SIB_K 8
static void sibling_table(int per, unsigned long long seed)
{
    static const char *fam[2] = {"siblings_shared", "siblings_differ"};
    printf("\n#### sibling segments: groups of %d monthly series of 13-20 observations, "
           "season 30%%, noise 15%%, h = 6\n\n", SIB_K);
    printf("| family | series | groups pooled | 80%% / 95%% cov, MASE without pooling | "
           "season pooled | season and widths pooled |\n|---|---:|---:|---|---|---|\n");
    for (int f = 0; f < 2; f++) {
        rng r;
        rng_seed(&r, seed + 7777777ULL * (unsigned long long)(f + 1));
        tally T[3];
        memset(T, 0, sizeof T);
        int groups = per / SIB_K, pooled = 0;
        for (int g = 0; g < groups; g++) {
            enum { H = 6, M = 12 };
            int n = 13 + (int)rng_below(&r, 8);
            double y[SIB_K][MAXN + MAXH], train[SIB_K * MAXN], fig[M];
            double gphase = 2.0 * M_PI * rng_uniform(&r);
            for (int s = 0; s < SIB_K; s++) {
                double level = 50.0 + 200.0 * rng_uniform(&r);
                double phase = f == 0 ? gphase : 2.0 * M_PI * rng_uniform(&r);
                for (int t = 0; t < n + H; t++)
                    y[s][t] = fmax(0.0, round(level * (1.0 + 0.3 * sin(2.0 * M_PI * t / M + phase)) *
                                              (1.0 + 0.15 * rng_normal(&r))));
                memcpy(train + s * n, y[s], (size_t)n * sizeof(double));
            }
            prm_error err;
            int use = ts_season_pool(train, SIB_K, n, M, fig, &err) == 1;
            pooled += use;
            /* w = 2: the widths pooled too (ts_calib_pool over the group) */
            ts_options wo;
            ts_options_init(&wo);
            wo.period = M;
            wo.h = H;
            wo.season = use ? fig : NULL;
            const double *rows[SIB_K];
            int lens[SIB_K];
            for (int s = 0; s < SIB_K; s++) {
                rows[s] = train + s * n;
                lens[s] = n;
            }
            ts_calib_pool(rows, lens, SIB_K, &wo, &err);
            for (int s = 0; s < SIB_K; s++)
                for (int w = 0; w < 3; w++) {
                    ts_options o;
                    ts_options_init(&o);
                    o.period = M;
                    o.h = H;
                    o.season = w && use ? fig : NULL;
                    if (w == 2)
                        memcpy(o.calib_pool, wo.calib_pool, sizeof o.calib_pool);
                    ts_result res;
                    if (ts_forecast(y[s], n, &o, &res, &err) != 0) {
                        T[w].fail++;
                        continue;
                    }
                    score_into(&T[w], &res, y[s], n, H, M);
                    ts_result_free(&res);
                }
        }
        printf("| %s | %d%s | %d of %d |", fam[f], T[0].nser,
               T[0].fail + T[1].fail + T[2].fail ? " (failures!)" : "", pooled, groups);
        for (int w = 0; w < 3; w++)
            printf(" %.1f%% / %.1f%%, %.3f |", 100.0 * T[w].cov80 / fmax(1, T[w].pts),
                   100.0 * T[w].cov95 / fmax(1, T[w].pts), T[w].mase / fmax(1, T[w].nmase));
        printf("\n");
    }
}

int main(int argc, char **argv)
{
    int per = argc > 1 ? atoi(argv[1]) : 400;
    unsigned long long seed = argc > 2 ? strtoull(argv[2], NULL, 10) : 2026;
    const ts_method methods[] = {TS_AUTO, TS_COMBO, TS_ETS, TS_ARIMA, TS_THETA, TS_NAIVE};
    const int nm = (int)(sizeof methods / sizeof *methods);
    printf("### Synthetic segment series: %d per family, seed %llu\n\n", per, seed);
    printf("| family | generating process |\n|---|---|\n");
    for (int f = 0; f < NFAM; f++)
        printf("| %s | %s |\n", FAM[f].name, FAM[f].what);
    for (int j = 0; j < nm; j++) {
        tally T[NFAM + 1];
        memset(T, 0, sizeof T);
        for (int f = 0; f < NFAM; f++) {
            rng r;
            rng_seed(&r, seed + 1000003ULL * (unsigned long long)f); /* same series per method */
            for (int i = 0; i < per; i++) {
                double y[MAXN + MAXH];
                int n, h = generate(f, &r, y, &n);
                ts_options o;
                ts_options_init(&o);
                o.period = FAM[f].m;
                o.h = h;
                o.method = methods[j];
                ts_result res;
                prm_error err;
                if (ts_forecast(y, n, &o, &res, &err) != 0) {
                    T[f].fail++;
                    continue;
                }
                score_into(&T[f], &res, y, n, h, FAM[f].m);
                note_method(&T[f], res.method);
                ts_result_free(&res);
            }
            T[NFAM].cov80 += T[f].cov80;
            T[NFAM].cov95 += T[f].cov95;
            T[NFAM].pts += T[f].pts;
            T[NFAM].mase += T[f].mase;
            T[NFAM].nmase += T[f].nmase;
            T[NFAM].nser += T[f].nser;
            T[NFAM].fail += T[f].fail;
        }
        printf("\n#### method = \"%s\"\n\n", ts_method_name(methods[j]));
        printf("| family | series | 80%% cov | 95%% cov | MASE | methods taken |\n");
        printf("|---|---:|---:|---:|---:|---|\n");
        for (int f = 0; f <= NFAM; f++) {
            tally *t = &T[f];
            char taken[200] = "";
            int off = 0;
            for (int i = 0; f < NFAM && i < 6 && t->nchosen[i]; i++)
                off += snprintf(taken + off, sizeof taken - (size_t)off, "%s%s %d", i ? ", " : "",
                                t->chosen[i], t->nchosen[i]);
            printf("| %s | %d%s | %.1f%% | %.1f%% | %.3f | %s |\n", f < NFAM ? FAM[f].name : "**all**",
                   t->nser, t->fail ? " (failures!)" : "", 100.0 * t->cov80 / fmax(1, t->pts),
                   100.0 * t->cov95 / fmax(1, t->pts), t->mase / fmax(1, t->nmase), taken);
        }
    }
    sibling_table(per, seed);
    return 0;
}
