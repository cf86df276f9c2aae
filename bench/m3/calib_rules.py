#!/usr/bin/env python3
"""bench/m3/calib_rules.py - scores interval-width rules on m3bench's
M3_CALIB_DUMP files (issue 11): coverage of the uncalibrated combination's
80/95% intervals times each rule's factor, per subset, and the summed
distance from nominal.  Run on the training-part holdout (M3_TRAIN_HOLDOUT=1)
to choose a rule without the test parts:

    M3_TRAIN_HOLDOUT=1 M3_CALIB_DUMP=build/m3ho/dump_yearly.txt \\
        build/m3ho/m3bench ../shared/data/m3 yearly build/m3ho 1   # and so on
    bench/m3/calib_rules.py build/m3ho/dump_{yearly,quarterly,monthly,other}.txt
"""
import math
import sys
from statistics import NormalDist

LEVELS = (80.0, 95.0)
FMIN, FMAX, MIN_ERR = 0.5, 4.0, 8
Z = [NormalDist().inv_cdf(0.5 + l / 200) for l in LEVELS]


def quantile(xs, p):  # type 7, as ts_quantile_sorted
    xs = sorted(xs)
    if not xs:
        return float("nan")
    h = (len(xs) - 1) * p
    lo = int(h)
    return xs[lo] + (h - lo) * (xs[min(lo + 1, len(xs) - 1)] - xs[lo])


def medfac(xs, j):
    return quantile(xs, 0.5) * Z[j] / 0.6744897501960817


def clamp(f):
    return min(FMAX, max(FMIN, f))


def load(path):
    S, T, L = {}, {}, {}
    for line in open(path):
        f = line.split()
        if f[0] == "L":  # series length, then each ratio's fit length
            L[f[1]] = (int(f[2]), [int(v) for v in f[4:]])
            continue
        key = (f[1], int(f[2]))
        vals = [float(v) for v in f[4:]]
        (S if f[0] == "S" else T)[key] = vals
    return S, T, L


BAND_MIN = 30  # ratios a length band needs, else the whole pool (fixed, not tuned)


def banded(S, L, j, keep):
    """own when n >= 8, else the level's quantile of the pooled ratios whose
    fit length passes keep(fit_length, series_length); the whole pool when
    fewer than BAND_MIN do."""
    pairs = [(fl, v) for (sid, jj), vs in S.items() if jj == j
             for fl, v in zip(L.get(sid, (0, []))[1], vs)]
    allr = [v for _, v in pairs]
    cache = {}

    def factor(n):
        if n not in cache:
            sel = [v for fl, v in pairs if keep(fl, n)]
            cache[n] = clamp(quantile(sel if len(sel) >= BAND_MIN else allr, LEVELS[j] / 100))
        return cache[n]
    return factor


def rules(S, j, L=None):
    allr = [v for (sid, jj), vs in S.items() if jj == j for v in vs]
    pool_med = clamp(medfac(allr, j))
    pool_q = clamp(quantile(allr, LEVELS[j] / 100))
    shortr = [v for (sid, jj), vs in S.items() if jj == j and len(vs) < MIN_ERR for v in vs]
    pool_qs = clamp(quantile(shortr, LEVELS[j] / 100)) if len(shortr) >= MIN_ERR else pool_q
    out = {"none": lambda own, n: 1.0,
           "own (median, n >= 8; the 2026-12-02 rule)":
               lambda own, n: clamp(own) if n >= MIN_ERR else 1.0,
           "pool median only": lambda own, n: pool_med,
           "pool quantile only": lambda own, n: pool_q,
           "own, else pool median": lambda own, n: clamp(own) if n >= MIN_ERR else pool_med}
    for n0 in (6, 12, 24, 48, 96):
        out["shrink to pool median, N0 = %d" % n0] = (
            lambda own, n, n0=n0: clamp((n * (own if n else 0) + n0 * pool_med) / (n + n0)))
        out["shrink to pool quantile, N0 = %d" % n0] = (
            lambda own, n, n0=n0: clamp((n * (own if n else 0) + n0 * pool_q) / (n + n0)))
    for k in (MIN_ERR, 12, 18, 24):
        out["own when n >= %d, else pool quantile" % k] = (
            lambda own, n, k=k: clamp(own) if n >= k else pool_q)
    srt = sorted(allr)
    k = min(len(srt), max(1, math.ceil((len(srt) + 1) * LEVELS[j] / 100 - 1e-9)))
    pool_conf = clamp(srt[k - 1]) if srt else pool_q
    out["own when n >= 8, else pool conformal rank ceil((N+1)p) (ts.c since 2026-12-02 last)"] = (
        lambda own, n: clamp(own) if n >= MIN_ERR else pool_conf)
    # a uniform multiplier of the current rule (issue 11, ts7): on the
    # pooled factor only, and on every factor
    for c in [0.8 + 0.05 * i for i in range(17)]:
        out["current rule, pooled factor x %.2f" % c] = (
            lambda own, n, c=c: clamp(own) if n >= MIN_ERR else clamp(c * pool_conf))
        out["current rule, every factor x %.2f" % c] = (
            lambda own, n, c=c: clamp(c * (clamp(own) if n >= MIN_ERR else pool_conf)))
    out["own when n >= 8, else quantile of the short series' pool"] = (
        lambda own, n: clamp(own) if n >= MIN_ERR else pool_qs)
    out["max(own, pool median)"] = lambda own, n: max(clamp(own) if n >= MIN_ERR else 0, pool_med)
    if L:  # pools by the length of the fits behind the ratios (issue 11, 2026-12-02 last)
        for b in (2, 4):
            f = banded(S, L, j, lambda fl, n, b=b: abs(fl - n) <= b)
            out["own, else pool quantile of fits within %d of the series' length" % b] = f
        out["own, else pool quantile of fits at least as long as the series"] = banded(
            S, L, j, lambda fl, n: fl >= n)
        out["own, else pool quantile of fits within 25% of the series' length"] = banded(
            S, L, j, lambda fl, n: n / 1.25 <= fl <= n * 1.25)
    return out, pool_med, pool_q


def main():
    table = {}
    names = None
    for path in sys.argv[1:]:
        S, T, L = load(path)
        subset = path.rsplit("_", 1)[-1].split(".")[0]
        if path.split("/")[-2].endswith("2"):
            subset += "(ho2)"
        for j in range(2):
            rs, pm, pq = rules(S, j, L)
            names = list(rs)
            print("%s %d%%: pooled median factor %.3f, pooled quantile %.3f, %d ratios" % (
                subset, LEVELS[j], pm, pq, sum(len(v) for (s, jj), v in S.items() if jj == j)),
                file=sys.stderr)
            for name, rule in rs.items():
                hit = tot = 0
                for (sid, jj), tv in T.items():
                    if jj != j:
                        continue
                    own = S.get((sid, j), [])
                    if name.startswith("own, else pool quantile of fits"):
                        # a short series takes the pool of fits of its own length
                        f = clamp(medfac(own, j)) if len(own) >= MIN_ERR else rule(L[sid][0])
                    else:
                        f = rule(medfac(own, j) if own else 0.0, len(own))
                    hit += sum(1 for v in tv if v <= f)
                    tot += len(tv)
                table.setdefault(name, {}).setdefault(subset, [0, 0])[j] = 100.0 * hit / tot
    subsets = list(next(iter(table.values())).keys())
    print("| rule | " + " | ".join("%s 80 / 95" % s for s in subsets) + " | summed distance |")
    print("|---|" + "---:|" * (len(subsets) + 1))
    for name in names:
        row, dist = [], 0.0
        for s in subsets:
            c = table[name][s]
            row.append("%.1f / %.1f" % (c[0], c[1]))
            dist += abs(c[0] - 80) + abs(c[1] - 95)
        print("| %s | %s | %.1f |" % (name, " | ".join(row), dist))


if __name__ == "__main__":
    main()
