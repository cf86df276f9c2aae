/* test_rng.c - rng.h: reproducibility per seed, moments of each
 * distribution, and non-overlapping split streams. Links libcore.a only. */
#include "rng.h"
#include "tap.h"

#include <stdint.h>

static void moments(double (*draw)(rng *, double, double), double a, double b, double mean,
                    double var, const char *name)
{
    rng r;
    rng_seed(&r, 7);
    enum { N = 400000 };
    double s = 0, s2 = 0;
    for (int i = 0; i < N; i++) {
        double x = draw(&r, a, b);
        s += x;
        s2 += x * x;
    }
    double m = s / N, v = s2 / N - m * m;
    char buf[96];
    snprintf(buf, sizeof buf, "%s: mean", name);
    T_NEAR(m, mean, 5 * sqrt(var / N) + 1e-9, buf);
    snprintf(buf, sizeof buf, "%s: variance", name);
    T_NEAR(v, var, 0.02 * var + 1e-9, buf);
}

static double d_uniform(rng *r, double a, double b) { (void)a; (void)b; return rng_uniform(r); }
static double d_normal(rng *r, double a, double b) { (void)a; (void)b; return rng_normal(r); }
static double d_gamma(rng *r, double a, double b) { (void)b; return rng_gamma(r, a); }
static double d_beta(rng *r, double a, double b) { return rng_beta(r, a, b); }

int main(void)
{
    rng a, b;
    rng_seed(&a, 42);
    rng_seed(&b, 42);
    int same = 1;
    for (int i = 0; i < 1000; i++) same &= rng_next(&a) == rng_next(&b);
    T_OK(same, "the same seed gives the same stream");
    rng_seed(&b, 43);
    T_OK(rng_next(&a) != rng_next(&b), "another seed gives another stream");

    rng_seed(&a, 1);
    double lo = 1, hi = 0;
    for (int i = 0; i < 1000000; i++) {
        double u = rng_uniform(&a);
        if (u < lo) lo = u;
        if (u > hi) hi = u;
    }
    T_OK(lo > 0 && hi < 1, "uniform stays inside (0, 1)");
    int hist[10] = { 0 }, okb = 1;
    for (int i = 0; i < 100000; i++) hist[rng_below(&a, 10)]++;
    for (int k = 0; k < 10; k++) okb &= hist[k] > 9500 && hist[k] < 10500;
    T_OK(okb, "rng_below(10) is uniform over 0..9");

    moments(d_uniform, 0, 0, 0.5, 1.0 / 12, "uniform");
    moments(d_normal, 0, 0, 0, 1, "normal");
    moments(d_gamma, 2.5, 0, 2.5, 2.5, "gamma(2.5)");
    moments(d_gamma, 0.3, 0, 0.3, 0.3, "gamma(0.3) (shape < 1)");
    moments(d_beta, 3, 7, 0.3, 21.0 / (100 * 11), "beta(3, 7)");
    T_OK(isnan(rng_gamma(&a, 0)), "gamma with shape 0 is NaN, not a hang");

    /* Split streams: reproducible, distinct from the base and each other. */
    rng base, s0, s1, s0b;
    rng_seed(&base, 9);
    rng_split(&base, 0, &s0);
    rng_split(&base, 1, &s1);
    rng_split(&base, 0, &s0b);
    T_OK(rng_next(&s0) == rng_next(&s0b), "split stream k is reproducible");
    uint64_t x0 = rng_next(&s0), x1 = rng_next(&s1), xb = rng_next(&base);
    T_OK(x0 != x1 && x0 != xb && x1 != xb, "split streams differ from each other and the base");
    rng j = base;
    rng_jump(&j);
    rng s1b;
    rng_split(&base, 1, &s1b);
    rng_jump(&j);
    T_OK(j.s[0] == s1b.s[0] && j.s[3] == s1b.s[3], "stream 1 is the base jumped twice");
    return t_done();
}
