/* mcbench.c - times mc_run (issue 9): N open deals x S simulations on one
 * core, on a synthetic pipeline shaped like the default sample's. Driven by
 * bench/montecarlo/run.sh; links build/libcore.a with -lm only.
 *
 *   mcbench [-n DEALS] [-s SIMS] [-r RUNS] [-c] [-q]
 *
 * Pipeline: p_win ~ Beta(1.2, 2.8) (mean 0.30), p_close | win ~ Beta(2, 1.6)
 * (mean 0.56), lognormal amounts (median 20k), 40 segments (8 regions x 5
 * tiers; shift group = region), 2,000 partners with quotas, one amount-
 * multiplier distribution per stage (5 stages x 25 observed ratios), global
 * effect sd 0.30, regional sd 0.15, unregistered revenue per segment.
 * Prints one line per run (wall and CPU seconds) and the median; -c adds the
 * covariance pass; -q runs once without timing lines (for callgrind).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "mc.h"
#include "rng.h"

static double now(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmpd(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    int n = 100000, S = 10000, runs = 5, cov = 0, quiet = 0, c;
    while ((c = getopt(argc, argv, "n:s:r:cq")) != -1) {
        switch (c) {
        case 'n': n = atoi(optarg); break;
        case 's': S = atoi(optarg); break;
        case 'r': runs = atoi(optarg); break;
        case 'c': cov = 1; break;
        case 'q': quiet = 1; runs = 1; break;
        default: fprintf(stderr, "usage: mcbench [-n DEALS] [-s SIMS] [-r RUNS] [-c] [-q]\n"); return 2;
        }
    }
    enum { NREG = 8, NTIER = 5, NSEG = NREG * NTIER, NPART = 2000, NSTAGE = 5, NRATIO = 25 };
    double *pw = malloc((size_t)n * sizeof *pw), *pc = malloc((size_t)n * sizeof *pc);
    double *amt = malloc((size_t)n * sizeof *amt);
    int32_t *seg = malloc((size_t)n * sizeof *seg), *part = malloc((size_t)n * sizeof *part);
    int32_t *mult = malloc((size_t)n * sizeof *mult);
    rng r;
    rng_seed(&r, 2026);
    int32_t preg[NPART], ptier[NPART];
    double quota[NPART];
    for (int j = 0; j < NPART; j++) {
        preg[j] = (int32_t)rng_below(&r, NREG);
        ptier[j] = (int32_t)rng_below(&r, NTIER);
        quota[j] = 0;
    }
    for (int i = 0; i < n; i++) {
        pw[i] = rng_beta(&r, 1.2, 2.8);
        pc[i] = rng_beta(&r, 2, 1.6);
        amt[i] = 20000 * exp(0.9 * rng_normal(&r));
        part[i] = (int32_t)rng_below(&r, NPART);
        seg[i] = preg[part[i]] * NTIER + ptier[part[i]];
        mult[i] = (int32_t)rng_below(&r, NSTAGE);
        quota[part[i]] += 0.9 * pw[i] * pc[i] * amt[i];
    }
    double ratios[NSTAGE][NRATIO];
    mc_dist md[NSTAGE];
    for (int k = 0; k < NSTAGE; k++) {
        for (int j = 0; j < NRATIO; j++) ratios[k][j] = exp((0.25 - 0.04 * k) * rng_normal(&r) - 0.05);
        md[k] = (mc_dist){ .n = NRATIO, .value = ratios[k] };
    }
    mc_segment sg[NSEG];
    for (int k = 0; k < NSEG; k++)
        sg[k] = (mc_segment){ .closed = 1e6, .unreg = MC_UNREG_LOGNORMAL, .unreg_mean = 3e5,
                              .unreg_sd = 1e5, .group = k / NTIER };
    double gsd[NREG];
    for (int g = 0; g < NREG; g++) gsd[g] = 0.15;
    mc_input in = { .n_deals = (size_t)n, .p_win = pw, .p_close = pc, .amount = amt,
                    .segment = seg, .partner = part, .mult = mult, .n_mults = NSTAGE,
                    .mults = md, .n_segments = NSEG, .segments = sg, .global_sd = 0.30,
                    .n_groups = NREG, .group_sd = gsd, .unreg_rho = 0.5,
                    .n_partners = NPART, .quota = quota };
    mc_options o;
    mc_options_init(&o);
    o.n_sims = S;
    o.seed = 42;
    o.covariance = cov;
    double *wall = malloc((size_t)runs * sizeof *wall), *cpu = malloc((size_t)runs * sizeof *cpu);
    mc_result res;
    prm_error err;
    for (int k = 0; k < runs; k++) {
        double w0 = now(CLOCK_MONOTONIC), c0 = now(CLOCK_PROCESS_CPUTIME_ID);
        if (mc_run(&in, &o, &res, &err) != 0) {
            fprintf(stderr, "mcbench: %s\n", err.msg);
            return 1;
        }
        wall[k] = now(CLOCK_MONOTONIC) - w0;
        cpu[k] = now(CLOCK_PROCESS_CPUTIME_ID) - c0;
        if (!quiet)
            printf("run %d: wall %.3f s, cpu %.3f s\n", k + 1, wall[k], cpu[k]);
        if (k + 1 < runs) mc_result_free(&res);
    }
    qsort(wall, (size_t)runs, sizeof *wall, cmpd);
    qsort(cpu, (size_t)runs, sizeof *cpu, cmpd);
    double sq = 0;
    for (int i = 0; i < n; i++) sq += pw[i] * pc[i];
    printf("deals %d, sims %d, covariance %s: median wall %.3f s, median cpu %.3f s (min %.3f)\n",
           n, S, cov ? "yes" : "no", wall[runs / 2], cpu[runs / 2], cpu[0]);
    printf("deal-draws %.3g, wins %llu (expected %.4g), words %llu, exact corrections %llu "
           "(%.3f per word)\n", (double)n * S, (unsigned long long)res.n_wins, sq * S,
           (unsigned long long)res.n_words, (unsigned long long)res.n_exact,
           (double)res.n_exact / (double)res.n_words);
    printf("total: mean %.4g, P10 %.4g, P50 %.4g, P90 %.4g (closed %.4g, pipeline %.4g, "
           "unregistered %.4g)\n", res.total_sum.mean, res.total_sum.p10, res.total_sum.p50,
           res.total_sum.p90, res.total_sum.closed, res.total_sum.pipeline,
           res.total_sum.unregistered);
    mc_result_free(&res);
    return 0;
}
