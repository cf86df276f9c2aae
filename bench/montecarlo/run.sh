#!/bin/sh
# bench/montecarlo/run.sh - the Monte Carlo core's benchmark (issue 9).
#
#   bench/montecarlo/run.sh [-r RUNS] [-n DEALS] [-s SIMS] [-g]
#
# Target: 10,000 simulations over 100,000 open deals in <= 2 s on one core.
# Builds build/libcore.a (make core) and bench/montecarlo/mcbench.c against
# it with -lm only, runs mc_run RUNS times (default 5) without and 3 times
# with the covariance pass, and prints a markdown section: median wall and
# CPU time, the machine's load average before and after (other engineers
# share the cores, so CPU time is the figure to read), and the work
# counters. -g adds valgrind --tool=callgrind instruction counts of one run
# (slow: about two minutes at the full size), which do not depend on load.
set -eu
cd "$(dirname "$0")/../.."
RUNS=5
N=100000
S=10000
CG=0
while getopts "r:n:s:g" opt; do
    case $opt in
    r) RUNS=$OPTARG ;;
    n) N=$OPTARG ;;
    s) S=$OPTARG ;;
    g) CG=1 ;;
    *) echo "usage: $0 [-r RUNS] [-n DEALS] [-s SIMS] [-g]" >&2; exit 2 ;;
    esac
done
OUT=${OUT:-build/montecarlo}
mkdir -p "$OUT"
make --no-print-directory core >/dev/null
CC=${CC:-cc}
$CC -std=c11 -O2 -g -D_DEFAULT_SOURCE -D_GNU_SOURCE -Wall -Wextra -Iengine \
    bench/montecarlo/mcbench.c build/libcore.a -lm -o "$OUT/mcbench"

load() { cut -d' ' -f1-3 /proc/loadavg; }
L0=$(load)
"$OUT/mcbench" -n "$N" -s "$S" -r "$RUNS" > "$OUT/plain.txt"
"$OUT/mcbench" -n "$N" -s "$S" -r 3 -c > "$OUT/cov.txt"
L1=$(load)

echo "## Monte Carlo core (issue 9)"
echo
echo "$(date -u +%Y-%m-%d), $(uname -m), $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')),"
echo "commit $(git describe --always --dirty 2>/dev/null || echo '?'), $($CC --version | head -1), -O2, one thread."
echo "Load average (1, 5, 15 min) before: $L0; after: $L1."
echo
echo '```'
cat "$OUT/plain.txt" "$OUT/cov.txt"
echo '```'
if [ "$CG" = 1 ]; then
    valgrind --tool=callgrind --callgrind-out-file="$OUT/callgrind.out" \
        "$OUT/mcbench" -q -n "$N" -s "$S" > /dev/null 2> "$OUT/callgrind.log"
    echo
    echo "callgrind, one run without covariance (includes building the synthetic input):"
    echo '```'
    grep 'refs' "$OUT/callgrind.log" | sed 's/^==[0-9]*== //'
    callgrind_annotate "$OUT/callgrind.out" 2>/dev/null | grep -E '^ *[0-9,]+ \(' | head -6
    echo '```'
fi
