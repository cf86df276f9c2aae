/* rng.h - the engine's one random-number generator (numeric core).
 *
 *   rng r;
 *   rng_seed(&r, 42);               // splitmix64 expands the seed
 *   double u = rng_uniform(&r);     // (0, 1), never 0 or 1
 *   double z = rng_normal(&r);      // N(0, 1)
 *   double g = rng_gamma(&r, 2.5);  // Gamma(shape, 1)
 *   double b = rng_beta(&r, 3, 7);
 *   rng child = r; rng_jump(&child); // a stream 2^128 draws away
 *   rng_split(&r, k, &child);        // stream k of a run, for thread k
 *
 * xoshiro256** (Blackman & Vigna 2018): 4 words of state, period 2^256 - 1,
 * passes BigCrush, ~1 ns a draw. Splittable two ways: rng_jump advances a
 * copy by 2^128 draws, so streams made by successive jumps never overlap
 * in any run of realistic length; rng_split(seed-state, k) gives the k-th
 * such stream, so parallel simulations are reproducible whatever the number
 * of threads. Plain C; includes nothing of Lua or SQLite.
 */
#ifndef PRM_RNG_H
#define PRM_RNG_H

#include <stdint.h>

typedef struct rng {
    uint64_t s[4];
    int has_spare;          /* Box-Muller gives two normals per pair */
    double spare;
} rng;

void rng_seed(rng *r, uint64_t seed);
/* 64 random bits. Inline: the Monte Carlo draws ~1e9 of them (10-12% of
 * its CPU time was the call, measured with callgrind). */
static inline uint64_t rng_next(rng *r)
{
    uint64_t *s = r->s, x = s[1] * 5, res = ((x << 7) | (x >> 57)) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = (s[3] << 45) | (s[3] >> 19);
    return res;
}
double rng_uniform(rng *r);                      /* (0, 1) */
/* An integer in [0, n); n >= 1. Lemire's multiply-shift (bias < n / 2^64). */
uint64_t rng_below(rng *r, uint64_t n);
double rng_normal(rng *r);                       /* N(0, 1) */
double rng_gamma(rng *r, double shape);          /* Gamma(shape, 1), shape > 0 */
double rng_beta(rng *r, double a, double b);     /* Beta(a, b), a, b > 0 */
/* Advances r by 2^128 draws. */
void rng_jump(rng *r);
/* *out = the stream k (0-based) of base: base jumped k + 1 times. */
void rng_split(const rng *base, int k, rng *out);

#endif
