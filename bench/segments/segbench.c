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
                metrics_interval iv[2] = {{80, ts_lower(&res, 0), ts_upper(&res, 0)},
                                          {95, ts_lower(&res, 1), ts_upper(&res, 1)}};
                metrics_result mr;
                if (metrics_compute(y + n, res.mean, h, y, n, FAM[f].m, iv, 2, &mr, &err) == 0) {
                    T[f].cov80 += mr.coverage[0] * mr.n / 100.0;
                    T[f].cov95 += mr.coverage[1] * mr.n / 100.0;
                    T[f].pts += mr.n;
                    if (isfinite(mr.mase)) {
                        T[f].mase += mr.mase;
                        T[f].nmase++;
                    }
                    T[f].nser++;
                }
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
    return 0;
}
